//! Replica layout: which cores form which replica, how RAM is split, and each replica's
//! boot spec with its kernel mappings.
//!
//! Physical layout of a board's RAM:
//!
//! ```text
//! ram.base                         boot stub, loader and image (board.boot_reserved)
//! ram.base + boot_reserved         shared area (2 MiB)
//! ...                              replica 0, replica 1, ... (equal 2 MiB-aligned shares)
//! ```
//!
//! Inside a replica's RAM: the kernel at offset 0, its spec, its page tables, then free
//! memory from the first 2 MiB boundary after them.

use atoll_abi::limits::{LARGE_PAGE_SIZE, MAX_CORES, MAX_KERNEL_MAPPINGS, MAX_REPLICAS, PAGE_SIZE};
use atoll_abi::spec::{
    DEFAULT_TICK_HZ, DOORBELL_SGI, DeviceWindow, GicSpec, Mapping, PhysRange, ReplicaSpec,
    SPEC_SIZE, STOP_SGI, attrs, layout,
};
use atoll_boards::Board;

use crate::PackError;
use crate::elf::KernelImage;

/// Page tables reserved per replica for the loader to build its kernel address space.
pub const TABLE_PAGES: u64 = 32;

/// What to lay out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRequest {
    /// Cores of each replica, replica 0 first. Replica 0 owns the console and must hold
    /// the boot core (core 0).
    pub clusters: Vec<Vec<u32>>,
    /// Spec flags per replica (missing entries are zero).
    pub flags: Vec<u32>,
    /// Timer ticks per second.
    pub tick_hz: u32,
    /// Bytes of regions shared between replicas (see [`split_ram`]).
    pub shared_pool: u64,
    /// Explicit RAM per replica (see [`RamRequest::shares`]); empty for equal shares.
    pub ram_shares: Vec<Option<u64>>,
    /// RAM that belongs to no replica (see [`RamRequest::reserved`]).
    pub reserved: Vec<PhysRange>,
    /// The initialiser every replica starts, if any.
    pub initialiser: Option<KernelImage>,
    /// The system hash to print at boot; `None` hashes this request ([`system_hash`]).
    pub system_hash: Option<u64>,
    /// Per replica, the device interrupts it owns (missing entries: none).
    pub irq_routes: Vec<Vec<atoll_abi::spec::IrqRoute>>,
}

impl LayoutRequest {
    /// The board's default clusters, no flags.
    pub fn default_for(board: &Board) -> Self {
        Self {
            clusters: board.default_clusters.iter().map(|c| c.to_vec()).collect(),
            flags: Vec::new(),
            tick_hz: DEFAULT_TICK_HZ,
            shared_pool: 0,
            ram_shares: Vec::new(),
            reserved: Vec::new(),
            initialiser: None,
            system_hash: None,
            irq_routes: Vec::new(),
        }
    }
}

/// A planned replica.
#[derive(Clone, Debug)]
pub struct PlannedReplica {
    /// Its spec.
    pub spec: ReplicaSpec,
    /// Where the spec goes, as an offset in the replica's RAM.
    pub spec_offset: u64,
}

fn layout_error(msg: impl Into<String>) -> PackError {
    PackError::Layout(msg.into())
}

/// FNV-1a, 64 bit: the system hash printed at boot so a log can be matched with its build.
pub fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// Hash of the planning inputs.
pub fn system_hash(board: &Board, request: &LayoutRequest) -> u64 {
    let mut h = fnv1a(board.name.as_bytes(), 0xCBF2_9CE4_8422_2325);
    for (i, cluster) in request.clusters.iter().enumerate() {
        h = fnv1a(&(i as u32).to_le_bytes(), h);
        for core in cluster {
            h = fnv1a(&core.to_le_bytes(), h);
        }
        h = fnv1a(&request.flags.get(i).copied().unwrap_or(0).to_le_bytes(), h);
    }
    fnv1a(&request.tick_hz.to_le_bytes(), h)
}

fn check_clusters(board: &Board, clusters: &[Vec<u32>]) -> Result<Vec<u64>, PackError> {
    if clusters.is_empty() {
        return Err(layout_error("at least one replica is needed"));
    }
    if clusters.len() > MAX_REPLICAS {
        return Err(layout_error(format!(
            "{} replicas requested; at most {MAX_REPLICAS} are supported",
            clusters.len()
        )));
    }
    let mut seen = 0u64;
    let mut masks = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        if cluster.is_empty() {
            return Err(layout_error(format!("replica {i} has no cores")));
        }
        let mut mask = 0u64;
        for &core in cluster {
            if core as usize >= board.cores.len() || core as usize >= MAX_CORES {
                return Err(layout_error(format!(
                    "replica {i}: core {core} does not exist on {} ({} cores)",
                    board.name,
                    board.cores.len()
                )));
            }
            if (seen | mask) & (1 << core) != 0 {
                return Err(layout_error(format!(
                    "replica {i}: core {core} is already in another replica"
                )));
            }
            mask |= 1 << core;
        }
        seen |= mask;
        masks.push(mask);
    }
    if masks[0] & 1 == 0 {
        return Err(layout_error("replica 0 must include core 0, the boot core"));
    }
    Ok(masks)
}

/// How a board's RAM is divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamSplit {
    /// The kernel-to-kernel shared area (status records, doorbells, log rings).
    pub kernel_shared: PhysRange,
    /// Memory for regions mapped by PDs of more than one replica (may be empty).
    pub shared_pool: PhysRange,
    /// Each replica's own RAM, in replica order, equal and 2 MiB aligned.
    pub replicas: Vec<PhysRange>,
}

/// Bytes at the start of every replica's RAM kept for its kernel image, boot spec and
/// boot page tables; the rest is the replica's to allocate.
pub const KERNEL_RESERVE: u64 = LARGE_PAGE_SIZE;

/// How to divide a board's RAM among replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamRequest {
    /// Per replica: its RAM in bytes (a 2 MiB multiple), or `None` for an equal share of
    /// what the explicit ones leave.
    pub shares: Vec<Option<u64>>,
    /// Bytes of regions mapped in several replicas.
    pub shared_pool: u64,
    /// RAM that belongs to no replica (regions at fixed physical addresses).
    pub reserved: Vec<PhysRange>,
}

/// The kernel-to-kernel shared area: the first 2 MiB after the boot area.
pub fn kernel_shared_area(board: &Board) -> PhysRange {
    PhysRange {
        base: (board.ram.base + board.boot_reserved).next_multiple_of(LARGE_PAGE_SIZE),
        size: LARGE_PAGE_SIZE,
    }
}

/// RAM no region may claim: the boot stub, loader and image, and the kernel shared area.
pub fn boot_area(board: &Board) -> PhysRange {
    PhysRange {
        base: board.ram.base,
        size: kernel_shared_area(board).end() - board.ram.base,
    }
}

/// 2 MiB-aligned stretches of RAM free for the pool and the replicas.
fn free_stretches(from: u64, end: u64, reserved: &[PhysRange]) -> Vec<PhysRange> {
    let mut holes: Vec<PhysRange> = reserved.to_vec();
    holes.sort_by_key(|r| r.base);
    let mut out = Vec::new();
    let mut at = from;
    for hole in holes.iter().chain([&PhysRange { base: end, size: 0 }]) {
        let stop = (hole.base & !(LARGE_PAGE_SIZE - 1)).min(end);
        let start = at.next_multiple_of(LARGE_PAGE_SIZE);
        if stop > start {
            out.push(PhysRange {
                base: start,
                size: stop - start,
            });
        }
        at = at.max(hole.end());
    }
    out
}

/// Takes `size` bytes from the first stretch that holds them.
fn take(stretches: &mut [PhysRange], size: u64) -> Option<PhysRange> {
    let s = stretches.iter_mut().find(|s| s.size >= size)?;
    let got = PhysRange { base: s.base, size };
    s.base += size;
    s.size -= size;
    Some(got)
}

/// Divides `board`'s RAM: boot area, kernel shared area, then, around reserved ranges, a
/// pool for cross-replica regions and one contiguous, 2 MiB-aligned share per replica
/// (explicit sizes as asked, the rest equal).
pub fn split_ram(board: &Board, request: &RamRequest) -> Result<RamSplit, PackError> {
    let count = request.shares.len();
    if count == 0 || count > MAX_REPLICAS {
        return Err(layout_error(format!(
            "{count} replicas requested; 1 to {MAX_REPLICAS} are supported"
        )));
    }
    let kernel_shared = PhysRange {
        base: (board.ram.base + board.boot_reserved).next_multiple_of(LARGE_PAGE_SIZE),
        size: LARGE_PAGE_SIZE,
    };
    let boot = PhysRange {
        base: board.ram.base,
        size: kernel_shared.end() - board.ram.base,
    };
    for r in &request.reserved {
        if r.overlaps(&boot) {
            return Err(layout_error(format!(
                "a fixed region at {:#x} overlaps the memory Atoll boots from ({:#x}-{:#x})",
                r.base,
                boot.base,
                boot.end()
            )));
        }
    }
    let mut stretches = free_stretches(kernel_shared.end(), board.ram.end(), &request.reserved);
    let pool_size = request.shared_pool.next_multiple_of(LARGE_PAGE_SIZE);
    let shared_pool = if pool_size == 0 {
        PhysRange {
            base: kernel_shared.end(),
            size: 0,
        }
    } else {
        take(&mut stretches, pool_size).ok_or_else(|| {
            layout_error(format!(
                "no room for {} KiB of shared regions",
                pool_size >> 10
            ))
        })?
    };
    for (i, share) in request.shares.iter().enumerate() {
        if let Some(size) = share
            && (*size <= KERNEL_RESERVE || !size.is_multiple_of(LARGE_PAGE_SIZE))
        {
            return Err(layout_error(format!(
                "replica {i}: RAM {size:#x} must be a multiple of 2 MiB above {KERNEL_RESERVE:#x}"
            )));
        }
    }
    let explicit: u64 = request.shares.iter().flatten().sum();
    let implicit = request.shares.iter().filter(|s| s.is_none()).count() as u64;
    let free: u64 = stretches.iter().map(|s| s.size).sum();
    // An equal share that fits: start from the ideal and shrink until every replica finds a
    // contiguous stretch (reserved ranges can fragment RAM).
    let mut share = free
        .saturating_sub(explicit)
        .checked_div(implicit)
        .unwrap_or(0)
        & !(LARGE_PAGE_SIZE - 1);
    loop {
        if implicit > 0 && share <= KERNEL_RESERVE {
            return Err(layout_error(format!(
                "{} has too little RAM for {count} replicas ({} KiB free after the boot area, shared regions and explicit shares)",
                board.name,
                free.saturating_sub(explicit) >> 10
            )));
        }
        let mut trial = stretches.clone();
        let placed: Option<Vec<PhysRange>> = request
            .shares
            .iter()
            .map(|s| take(&mut trial, s.unwrap_or(share)))
            .collect();
        match placed {
            Some(replicas) => {
                return Ok(RamSplit {
                    kernel_shared,
                    shared_pool,
                    replicas,
                });
            }
            None if implicit == 0 => {
                return Err(layout_error(format!(
                    "{} has too little RAM for the replicas' explicit shares",
                    board.name
                )));
            }
            None => share -= LARGE_PAGE_SIZE,
        }
    }
}

/// Plans every replica of `request` on `board` for `kernel`.
pub fn plan(
    board: &Board,
    request: &LayoutRequest,
    kernel: &KernelImage,
) -> Result<Vec<PlannedReplica>, PackError> {
    let masks = check_clusters(board, &request.clusters)?;
    if request.tick_hz == 0 || request.tick_hz > 10_000 {
        return Err(layout_error("tick rate must be 1-10000 Hz"));
    }
    if kernel.vaddr != layout::KERNEL_IMAGE_BASE {
        return Err(layout_error(format!(
            "kernel is linked at {:#x}, expected {:#x}",
            kernel.vaddr,
            layout::KERNEL_IMAGE_BASE
        )));
    }
    let count = masks.len() as u64;
    let split = split_ram(
        board,
        &RamRequest {
            shares: if request.ram_shares.is_empty() {
                vec![None; masks.len()]
            } else {
                request.ram_shares.clone()
            },
            shared_pool: request.shared_pool,
            reserved: request.reserved.clone(),
        },
    )?;
    if split.replicas.len() != masks.len() {
        return Err(layout_error("one RAM share per replica is needed"));
    }
    let shared = split.kernel_shared;
    let share = split.replicas[0].size;

    let spec_offset = kernel.mem_size.next_multiple_of(PAGE_SIZE);
    let tables_offset = (spec_offset + SPEC_SIZE as u64).next_multiple_of(PAGE_SIZE);
    let tables_size = TABLE_PAGES * PAGE_SIZE;
    // Kernel stacks follow the tables: one per core of the replica, mapped with a guard.
    let stacks_offset = tables_offset + tables_size;
    let max_cores = masks
        .iter()
        .map(|m| m.count_ones() as u64)
        .max()
        .unwrap_or(1);
    // The initialiser follows the stacks, still inside the kernel's reserve.
    let init_offset =
        (stacks_offset + max_cores * layout::KERNEL_STACK_SIZE).next_multiple_of(0x1_0000);
    let init_size = request.initialiser.as_ref().map_or(0, |p| p.mem_size);
    let free_offset = (init_offset + init_size).next_multiple_of(PAGE_SIZE);
    // The kernel builds the initialiser's boot objects just past it.
    if free_offset + atoll_abi::syscall::initial::BOOT_PAGES_BYTES > KERNEL_RESERVE {
        return Err(layout_error(format!(
            "the kernel image, boot spec, boot page tables and the initialiser's boot objects need {} KiB; each replica reserves {} KiB for them",
            (free_offset + atoll_abi::syscall::initial::BOOT_PAGES_BYTES) >> 10,
            KERNEL_RESERVE >> 10
        )));
    }
    if share <= free_offset {
        return Err(layout_error(format!(
            "{} has too little RAM for {count} replicas: each would get {} KiB",
            board.name,
            share >> 10
        )));
    }

    let hash = request
        .system_hash
        .unwrap_or_else(|| system_hash(board, request));
    let mut replica_cores = [0u64; MAX_REPLICAS];
    replica_cores[..masks.len()].copy_from_slice(&masks);
    let mut core_mpidr = [0u64; MAX_CORES];
    for (i, &m) in board.cores.iter().enumerate().take(MAX_CORES) {
        core_mpidr[i] = m;
    }
    let gic_dist_va = layout::DEVICE_BASE;
    let gic_cpu_va = layout::DEVICE_BASE + layout::DEVICE_SLOT;
    let console_va = layout::DEVICE_BASE + 2 * layout::DEVICE_SLOT;

    let mut planned = Vec::new();
    for (i, &mask) in masks.iter().enumerate() {
        let ram = split.replicas[i];
        let mut spec = ReplicaSpec::new_zeroed();
        spec.replica = i as u32;
        spec.replica_count = count as u32;
        spec.flags = request.flags.get(i).copied().unwrap_or(0);
        spec.tick_hz = request.tick_hz;
        spec.core_mask = mask;
        spec.system_hash = hash;
        let routes = request.irq_routes.get(i).map_or(&[][..], Vec::as_slice);
        if routes.len() > spec.irq_routes.len() {
            return Err(layout_error(format!(
                "replica {i} owns {} interrupts; at most {} are supported",
                routes.len(),
                spec.irq_routes.len()
            )));
        }
        spec.irq_routes[..routes.len()].copy_from_slice(routes);
        spec.irq_route_count = routes.len() as u32;
        spec.ram = ram;
        spec.free_offset = free_offset;
        spec.tables_offset = tables_offset;
        spec.tables_size = tables_size;
        spec.shared = DeviceWindow {
            kind: 0,
            intid: 0,
            pa: shared.base,
            va: layout::SHARED_AREA_BASE,
            size: shared.size,
        };
        spec.gic = GicSpec {
            version: board.gic.version,
            doorbell_sgi: DOORBELL_SGI,
            stop_sgi: STOP_SGI,
            timer_intid: board.timer_intid,
            distributor: DeviceWindow {
                kind: 0,
                intid: 0,
                pa: board.gic.distributor.base,
                va: gic_dist_va,
                size: board.gic.distributor.size,
            },
            cpu: DeviceWindow {
                kind: 0,
                intid: 0,
                pa: board.gic.cpu.base,
                va: gic_cpu_va,
                size: board.gic.cpu.size,
            },
        };
        if i == 0 {
            spec.console = DeviceWindow {
                kind: board.uart.kind as u32,
                intid: board.uart.intid,
                pa: board.uart.base,
                va: console_va,
                size: board.uart.size,
            };
        }
        if let Some(init) = &request.initialiser {
            let text_size = init
                .segments
                .first()
                .filter(|s| s.2 & attrs::EXEC != 0)
                .map_or(0, |s| s.1);
            spec.initialiser = atoll_abi::spec::ProgramPart {
                offset: init_offset,
                mem_size: init.mem_size,
                vaddr: init.vaddr,
                entry: init.entry,
                text_size,
                reserved: 0,
            };
        }
        spec.core_mpidr = core_mpidr;
        spec.replica_cores = replica_cores;

        let mut maps: Vec<Mapping> = kernel
            .segments
            .iter()
            .map(|&(va, size, a)| Mapping {
                va,
                pa: ram.base + (va - kernel.vaddr),
                size,
                attrs: a,
            })
            .collect();
        maps.push(Mapping {
            va: layout::LINEAR_MAP_BASE + spec_offset,
            pa: ram.base + spec_offset,
            size: ram.size - spec_offset,
            attrs: attrs::WRITE,
        });
        maps.push(Mapping {
            va: layout::SHARED_AREA_BASE,
            pa: shared.base,
            size: shared.size,
            attrs: attrs::WRITE,
        });
        let mut stack = 0;
        for core in 0..MAX_CORES as u64 {
            if mask & (1 << core) != 0 {
                maps.push(Mapping {
                    va: layout::KERNEL_STACKS_BASE
                        + core * layout::KERNEL_STACK_SLOT
                        + (layout::KERNEL_STACK_SLOT - layout::KERNEL_STACK_SIZE),
                    pa: ram.base + stacks_offset + stack * layout::KERNEL_STACK_SIZE,
                    size: layout::KERNEL_STACK_SIZE,
                    attrs: attrs::WRITE,
                });
                stack += 1;
            }
        }
        for w in [spec.gic.distributor, spec.gic.cpu, spec.console] {
            if w.size != 0 {
                maps.push(Mapping {
                    va: w.va,
                    pa: w.pa,
                    size: w.size.next_multiple_of(PAGE_SIZE),
                    attrs: attrs::WRITE | attrs::DEVICE,
                });
            }
        }
        if maps.len() > MAX_KERNEL_MAPPINGS {
            return Err(layout_error(format!(
                "replica {i} needs {} kernel mappings; at most {MAX_KERNEL_MAPPINGS}",
                maps.len()
            )));
        }
        spec.mapping_count = maps.len() as u32;
        spec.mappings[..maps.len()].copy_from_slice(&maps);
        spec.check()
            .map_err(|e| layout_error(format!("replica {i}: {e}")))?;
        planned.push(PlannedReplica { spec, spec_offset });
    }
    Ok(planned)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses a cluster list such as `0;1;2,3` (replicas separated by `;`, cores by `,`).
    fn parse_clusters(text: &str) -> Result<Vec<Vec<u32>>, PackError> {
        text.split(';')
            .map(|replica| {
                replica
                    .split(',')
                    .map(|core| {
                        core.trim().parse::<u32>().map_err(|_| {
                            layout_error(format!("`{core}` is not a core number in `{text}`"))
                        })
                    })
                    .collect()
            })
            .collect()
    }

    use atoll_boards::BOARDS;
    use proptest::prelude::*;

    pub(crate) fn fake_kernel() -> KernelImage {
        let base = layout::KERNEL_IMAGE_BASE;
        KernelImage {
            bytes: vec![0xAA; 0x5000],
            vaddr: base,
            mem_size: 0x2_6000,
            entry: base,
            segments: vec![
                (base, 0x5000, attrs::EXEC),
                (base + 0x5000, 0x1000, 0),
                (base + 0x6000, 0x2_0000, attrs::WRITE),
            ],
        }
    }

    fn check_invariants(board: &Board, planned: &[PlannedReplica]) {
        let shared = PhysRange {
            base: planned[0].spec.shared.pa,
            size: planned[0].spec.shared.size,
        };
        assert!(board.ram.contains(&shared));
        assert!(shared.base >= board.ram.base + board.boot_reserved);
        for (i, a) in planned.iter().enumerate() {
            assert!(board.ram.contains(&a.spec.ram));
            assert!(!a.spec.ram.overlaps(&shared));
            assert_eq!(a.spec.ram.base % LARGE_PAGE_SIZE, 0);
            assert!(a.spec.free_offset < a.spec.ram.size);
            for b in &planned[i + 1..] {
                assert!(!a.spec.ram.overlaps(&b.spec.ram), "replica RAM overlaps");
                assert_eq!(a.spec.core_mask & b.spec.core_mask, 0);
            }
            let maps = a.spec.mappings();
            for (j, m) in maps.iter().enumerate() {
                let r = PhysRange {
                    base: m.pa,
                    size: m.size,
                };
                if m.attrs & attrs::DEVICE == 0 {
                    assert!(
                        a.spec.ram.contains(&r) || shared.contains(&r),
                        "mapping reaches foreign memory"
                    );
                }
                for n in &maps[j + 1..] {
                    assert!(
                        m.va + m.size <= n.va || n.va + n.size <= m.va,
                        "virtual ranges overlap"
                    );
                }
            }
            assert_eq!(
                a.spec.console.kind != 0,
                i == 0,
                "only replica 0 owns the console"
            );
        }
    }

    #[test]
    fn default_layouts_plan_on_every_board() {
        for board in BOARDS {
            let planned = plan(board, &LayoutRequest::default_for(board), &fake_kernel()).unwrap();
            assert_eq!(planned.len(), 3);
            assert_eq!(planned[2].spec.core_mask, 0b1100);
            check_invariants(board, &planned);
        }
    }

    #[test]
    fn bad_layouts_are_refused_with_reasons() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let k = fake_kernel();
        let req = |c: &str| LayoutRequest {
            clusters: parse_clusters(c).unwrap(),
            flags: vec![],
            tick_hz: 100,
            shared_pool: 0,
            ram_shares: vec![],
            reserved: vec![],
            initialiser: None,
            system_hash: None,
            irq_routes: Vec::new(),
        };
        let err = |c: &str| plan(board, &req(c), &k).unwrap_err().to_string();
        assert!(err("0;1;1").contains("core 1 is already in another replica"));
        assert!(err("0;7").contains("core 7 does not exist"));
        assert!(err("1;0").contains("must include core 0"));
        assert!(parse_clusters("0;x").is_err());
        let ram = |shares: Vec<Option<u64>>, pool: u64, reserved: Vec<PhysRange>| RamRequest {
            shares,
            shared_pool: pool,
            reserved,
        };
        assert!(
            split_ram(board, &ram(vec![None; 3], 0x4000_0000, vec![]))
                .unwrap_err()
                .to_string()
                .contains("no room")
        );
        assert!(
            split_ram(board, &ram(vec![None; 3], 0x3E80_0000, vec![]))
                .unwrap_err()
                .to_string()
                .contains("too little RAM")
        );
        let split = split_ram(board, &ram(vec![None; 2], 0x30_0000, vec![])).unwrap();
        assert_eq!(split.shared_pool.size, 0x40_0000, "pool rounded to 2 MiB");
        assert!(!split.shared_pool.overlaps(&split.replicas[0]));
        assert!(!split.shared_pool.overlaps(&split.kernel_shared));
        let mut huge = fake_kernel();
        huge.mem_size = 0x1000_0000;
        assert!(
            plan(board, &req("0;1;2;3"), &huge)
                .unwrap_err()
                .to_string()
                .contains("each replica reserves 2048 KiB")
        );
    }

    #[test]
    fn hash_depends_on_layout() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let a = LayoutRequest::default_for(board);
        let mut b = a.clone();
        b.flags = vec![0, 0, 2];
        assert_ne!(system_hash(board, &a), system_hash(board, &b));
        assert_eq!(system_hash(board, &a), system_hash(board, &a.clone()));
    }

    #[test]
    fn explicit_shares_and_reserved_ranges() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let hole = PhysRange {
            base: 0x5000_1000,
            size: 0x3000,
        };
        let request = RamRequest {
            shares: vec![Some(0x400_0000), None, None],
            shared_pool: 0,
            reserved: vec![hole],
        };
        let split = split_ram(board, &request).unwrap();
        assert_eq!(split.replicas[0].size, 0x400_0000, "explicit share kept");
        assert_eq!(
            split.replicas[1].size, split.replicas[2].size,
            "the rest split equally"
        );
        for (i, r) in split.replicas.iter().enumerate() {
            assert!(!r.overlaps(&hole), "replica {i} covers the reserved range");
            assert_eq!(r.base % LARGE_PAGE_SIZE, 0);
            assert!(board.ram.contains(r));
            for other in &split.replicas[i + 1..] {
                assert!(!r.overlaps(other));
            }
        }
        let boot = RamRequest {
            shares: vec![None],
            shared_pool: 0,
            reserved: vec![PhysRange {
                base: 0x4000_1000,
                size: 0x1000,
            }],
        };
        assert!(
            split_ram(board, &boot)
                .unwrap_err()
                .to_string()
                .contains("overlaps the memory Atoll boots from")
        );
        let odd = RamRequest {
            shares: vec![Some(0x30_0000)],
            shared_pool: 0,
            reserved: vec![],
        };
        assert!(
            split_ram(board, &odd)
                .unwrap_err()
                .to_string()
                .contains("multiple of 2 MiB")
        );
        let greedy = RamRequest {
            shares: vec![Some(0x8000_0000)],
            shared_pool: 0,
            reserved: vec![],
        };
        assert!(
            split_ram(board, &greedy)
                .unwrap_err()
                .to_string()
                .contains("explicit shares")
        );
    }

    proptest! {
        #[test]
        fn any_valid_partition_plans_with_disjoint_memory(assign in proptest::collection::vec(0usize..4, 4), board_index in 0usize..3) {
            let board = BOARDS[board_index];
            // Core c goes to replica assign[c] (renumbered densely, core 0's replica first).
            let mut clusters: Vec<Vec<u32>> = Vec::new();
            let mut order: Vec<usize> = vec![assign[0]];
            for &a in &assign { if !order.contains(&a) { order.push(a); } }
            for r in &order {
                clusters.push((0..4u32).filter(|&c| assign[c as usize] == *r).collect());
            }
            let req = LayoutRequest { clusters, flags: vec![], tick_hz: 100, shared_pool: 0, ram_shares: vec![], reserved: vec![], initialiser: None, system_hash: None, irq_routes: vec![] };
            let planned = plan(board, &req, &fake_kernel()).unwrap();
            check_invariants(board, &planned);
        }
    }
}
