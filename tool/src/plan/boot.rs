//! The last planning steps, once the PD programs are placed: each replica's boot program
//! (at the top of its RAM) and boot spec (cores, RAM, the kernel's reserve and mappings,
//! devices, interrupt routes, where its initialiser and boot program are).
//!
//! Inside a replica's RAM, the kernel's reserve ([`KERNEL_RESERVE`]) holds, in order: the
//! kernel image, the boot spec, the kernel's page tables, one kernel stack per core, the
//! initialiser, and the initialiser's boot objects, which the kernel builds.

use crate::elf::KernelImage;
use atoll_abi::limits::{MAX_CORES, MAX_KERNEL_MAPPINGS, MAX_REPLICAS, PAGE_SIZE};
use atoll_abi::spec::{
    DOORBELL_SGI, DeviceWindow, GicSpec, Mapping, PhysRange, ProgramPart, ReplicaSpec, SPEC_SIZE,
    STOP_SGI, attrs, layout,
};
use atoll_boards::Board;

use super::{KERNEL_RESERVE, PartPlace, Plan, ReplicaPlan};

/// Page tables reserved per replica for the loader to build its kernel address space.
pub const TABLE_PAGES: u64 = 32;

/// RAM kept at the top of a replica for its boot program at first; doubled until the
/// program fits.
const FIRST_BOOT_PROGRAM_RESERVE: u64 = 0x1_0000;

/// A replica's boot program, placed.
#[derive(Clone, Debug)]
pub struct BootProgram {
    /// The replica.
    pub replica: usize,
    /// Physical address of its first byte.
    pub phys_addr: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Where the loader writes it.
    pub place: PartPlace,
}

/// Each replica's boot program, at the top of its RAM: the RAM it needs is found by trying
/// (the program describes the untyped memory it leaves), then no longer free. Problems are
/// added to `errors`.
pub fn boot_programs(plan: &mut Plan, errors: &mut Vec<String>) -> Vec<BootProgram> {
    let mut programs = Vec::new();
    let mut reserves = Vec::new();
    for replica in &plan.replicas {
        match boot_program(plan, replica) {
            Ok((program, reserve)) => {
                programs.push(program);
                reserves.push((replica.index, reserve));
            }
            Err(e) => errors.push(e),
        }
    }
    for (index, reserve) in reserves {
        if let Some(replica) = plan.replicas.get_mut(index) {
            replica.free_bytes = replica.free_bytes.saturating_sub(reserve);
        }
    }
    programs
}

/// One replica's boot program and the RAM it reserves.
fn boot_program(plan: &Plan, replica: &ReplicaPlan) -> Result<(BootProgram, u64), String> {
    let ram_end = replica.ram.base + replica.ram.size;
    let mut reserve = FIRST_BOOT_PROGRAM_RESERVE;
    loop {
        let pa = ram_end - reserve;
        if reserve > replica.free_bytes {
            return Err(format!(
                "replica '{}' has too little RAM left for its boot program",
                replica.name
            ));
        }
        let bytes = super::bootprog::generate(plan, replica, pa)?;
        if bytes.len() as u64 <= reserve {
            let program = BootProgram {
                replica: replica.index,
                phys_addr: pa,
                place: super::programs::boot_program_place(replica, pa, bytes.len()),
                bytes,
            };
            return Ok((program, reserve));
        }
        reserve = (bytes.len() as u64).next_power_of_two();
        if reserve > atoll_abi::bootprog::MAX_SIZE {
            return Err(format!(
                "replica '{}': its boot program is larger than {:#x} bytes",
                replica.name,
                atoll_abi::bootprog::MAX_SIZE
            ));
        }
    }
}

/// Where the kernel's reserve puts things, as offsets in a replica's RAM.
#[derive(Clone, Copy, Debug)]
struct Reserve {
    spec: u64,
    tables: u64,
    stacks: u64,
    initialiser: u64,
    free: u64,
}

/// Lays out the kernel's reserve for `kernel`, `initialiser` and replicas of at most
/// `max_cores` cores.
fn reserve(
    kernel: &KernelImage,
    initialiser: Option<&KernelImage>,
    max_cores: u64,
) -> Result<Reserve, String> {
    if kernel.vaddr != layout::KERNEL_IMAGE_BASE {
        return Err(format!(
            "kernel is linked at {:#x}, expected {:#x}",
            kernel.vaddr,
            layout::KERNEL_IMAGE_BASE
        ));
    }
    let spec = kernel.mem_size.next_multiple_of(PAGE_SIZE);
    let tables = (spec + SPEC_SIZE as u64).next_multiple_of(PAGE_SIZE);
    // Kernel stacks follow the tables: one per core of the replica, mapped with a guard.
    let stacks = tables + TABLE_PAGES * PAGE_SIZE;
    // The initialiser follows the stacks, still inside the kernel's reserve.
    let init = (stacks + max_cores * layout::KERNEL_STACK_SIZE).next_multiple_of(0x1_0000);
    let free = (init + initialiser.map_or(0, |p| p.mem_size)).next_multiple_of(PAGE_SIZE);
    // The kernel builds the initialiser's boot objects just past it.
    let needed = free + atoll_abi::syscall::initial::BOOT_PAGES_BYTES;
    if needed > KERNEL_RESERVE {
        return Err(format!(
            "the kernel image, boot spec, boot page tables and the initialiser's boot objects need {} KiB; each replica reserves {} KiB for them",
            needed >> 10,
            KERNEL_RESERVE >> 10
        ));
    }
    Ok(Reserve {
        spec,
        tables,
        stacks,
        initialiser: init,
        free,
    })
}

/// What the boot specs are written from besides the plan.
pub struct SpecInputs<'a> {
    /// The board.
    pub board: &'a Board,
    /// The kernel every replica runs.
    pub kernel: &'a KernelImage,
    /// The initialiser every replica starts, if any.
    pub initialiser: Option<&'a KernelImage>,
    /// Spec flags per replica (`atoll_abi::spec::flags`); missing entries are zero.
    pub flags: &'a [u32],
    /// The tick of each replica's deliberate late fault (`ReplicaSpec::fault_late_ticks`);
    /// missing entries are zero (none).
    pub fault_late_ticks: &'a [u32],
    /// The tick of each replica's deliberate hang (`ReplicaSpec::hang_late_ticks`); missing
    /// entries are zero (none).
    pub hang_late_ticks: &'a [u32],
    /// The replicas' boot programs.
    pub boot_programs: &'a [BootProgram],
}

/// Each replica's boot spec and where it goes in the replica's RAM, in replica order.
pub fn boot_specs(plan: &Plan, inputs: &SpecInputs<'_>) -> Result<Vec<(ReplicaSpec, u64)>, String> {
    if plan.replicas.is_empty() {
        return Err("at least one replica is needed".into());
    }
    let masks: Vec<u64> = plan
        .replicas
        .iter()
        .map(|r| r.cores.iter().fold(0, |m, &c| m | (1 << c)))
        .collect();
    let max_cores = masks
        .iter()
        .map(|m| u64::from(m.count_ones()))
        .max()
        .unwrap_or(1);
    let reserve = reserve(inputs.kernel, inputs.initialiser, max_cores)?;
    let count = plan.replicas.len();
    let smallest = plan.replicas.iter().map(|r| r.ram.size).min().unwrap_or(0);
    if smallest <= reserve.free {
        return Err(format!(
            "{} has too little RAM for {count} replicas: each would get {} KiB",
            inputs.board.name,
            smallest >> 10
        ));
    }
    let mut replica_cores = [0u64; MAX_REPLICAS];
    replica_cores[..count].copy_from_slice(&masks);
    let words = super::channels::word_masks(plan);
    let word_bits = super::channels::word_bits(plan);
    let receivers = super::channels::word_receivers(plan);
    plan.replicas
        .iter()
        .map(|replica| {
            let mut spec = common_spec(plan, inputs, &reserve, count);
            spec.replica_cores = replica_cores;
            spec.word_bits = word_bits;
            replica_spec(&mut spec, replica, masks[replica.index], inputs, &reserve)?;
            (spec.words_in, spec.words_out) = words.get(replica.index).copied().unwrap_or((0, 0));
            spec.word_receiver = receivers;
            spec.check()
                .map_err(|e| format!("replica {}: {e}", replica.index))?;
            Ok((spec, reserve.spec))
        })
        .collect()
}

const GIC_DIST_VA: u64 = layout::DEVICE_BASE;
const GIC_CPU_VA: u64 = layout::DEVICE_BASE + layout::DEVICE_SLOT;
const CONSOLE_VA: u64 = layout::DEVICE_BASE + 2 * layout::DEVICE_SLOT;

/// What every replica's spec holds alike: the count, tick, shared area, interrupt
/// controller, cores, system hash, the kernel's reserve, and which replicas are restarted
/// and checked for hangs.
fn common_spec(
    plan: &Plan,
    inputs: &SpecInputs<'_>,
    reserve: &Reserve,
    count: usize,
) -> ReplicaSpec {
    let board = inputs.board;
    let mut spec = ReplicaSpec::new_zeroed();
    spec.replica_count = count as u32;
    spec.tick_hz = crate::limits::TICK_HZ;
    spec.system_hash = plan.system_hash;
    for (index, replica) in plan.replicas.iter().enumerate().take(MAX_REPLICAS) {
        if replica.restart {
            spec.restart_mask |= 1 << index;
        }
        spec.hung_after_ms[index] = replica.hung_after_ms.unwrap_or(0);
    }
    spec.free_offset = reserve.free;
    spec.tables_offset = reserve.tables;
    spec.tables_size = TABLE_PAGES * PAGE_SIZE;
    spec.shared = DeviceWindow {
        kind: 0,
        intid: 0,
        pa: plan.kernel_shared.base,
        va: layout::SHARED_AREA_BASE,
        size: plan.kernel_shared.size,
    };
    let window = |pa: u64, va: u64, size: u64| DeviceWindow {
        kind: 0,
        intid: 0,
        pa,
        va,
        size,
    };
    spec.gic = GicSpec {
        version: board.gic.version,
        doorbell_sgi: DOORBELL_SGI,
        stop_sgi: STOP_SGI,
        timer_intid: board.timer_intid,
        distributor: window(
            board.gic.distributor.base,
            GIC_DIST_VA,
            board.gic.distributor.size,
        ),
        cpu: window(board.gic.cpu.base, GIC_CPU_VA, board.gic.cpu.size),
    };
    for (slot, &mpidr) in spec.core_mpidr.iter_mut().zip(board.cores) {
        *slot = mpidr;
    }
    if let Some(init) = inputs.initialiser {
        let text_size = init
            .segments
            .first()
            .filter(|s| s.2 & attrs::EXEC != 0)
            .map_or(0, |s| s.1);
        spec.initialiser = ProgramPart {
            offset: reserve.initialiser,
            mem_size: init.mem_size,
            vaddr: init.vaddr,
            entry: init.entry,
            text_size,
            reserved: 0,
        };
    }
    spec
}

/// Fills in what is one replica's own: index, cores, flags, RAM, console, interrupt routes,
/// boot program and kernel mappings.
fn replica_spec(
    spec: &mut ReplicaSpec,
    replica: &ReplicaPlan,
    mask: u64,
    inputs: &SpecInputs<'_>,
    reserve: &Reserve,
) -> Result<(), String> {
    let i = replica.index;
    let board = inputs.board;
    spec.replica = i as u32;
    spec.flags = inputs.flags.get(i).copied().unwrap_or(0);
    spec.fault_late_ticks = inputs.fault_late_ticks.get(i).copied().unwrap_or(0);
    spec.hang_late_ticks = inputs.hang_late_ticks.get(i).copied().unwrap_or(0);
    spec.core_mask = mask;
    spec.ram = PhysRange {
        base: replica.ram.base,
        size: replica.ram.size,
    };
    if i == 0 {
        spec.console = DeviceWindow {
            kind: board.uart.kind as u32,
            intid: board.uart.intid,
            pa: board.uart.base,
            va: CONSOLE_VA,
            size: board.uart.size,
        };
    }
    let routes = irq_routes(replica);
    if routes.len() > spec.irq_routes.len() {
        return Err(format!(
            "replica {i} owns {} interrupts; at most {} are supported",
            routes.len(),
            spec.irq_routes.len()
        ));
    }
    spec.irq_routes[..routes.len()].copy_from_slice(&routes);
    spec.irq_route_count = routes.len() as u32;
    if let Some(program) = inputs.boot_programs.iter().find(|p| p.replica == i) {
        spec.boot_program_offset = program.phys_addr - replica.ram.base;
        spec.boot_program_size = program.bytes.len() as u64;
    }
    let maps = kernel_mappings(spec, inputs.kernel, reserve);
    if maps.len() > MAX_KERNEL_MAPPINGS {
        return Err(format!(
            "replica {i} needs {} kernel mappings; at most {MAX_KERNEL_MAPPINGS}",
            maps.len()
        ));
    }
    spec.mapping_count = maps.len() as u32;
    spec.mappings[..maps.len()].copy_from_slice(&maps);
    Ok(())
}

/// The shared interrupts the loader routes for a replica; a per-core one (the PD timer)
/// needs no route.
fn irq_routes(replica: &ReplicaPlan) -> Vec<atoll_abi::spec::IrqRoute> {
    replica
        .irqs
        .iter()
        .filter(|irq| u64::from(irq.irq) >= crate::limits::FIRST_DEVICE_IRQ)
        .map(|irq| atoll_abi::spec::IrqRoute {
            intid: irq.irq,
            core: irq.core,
            edge: u32::from(irq.trigger == "edge"),
            reserved: 0,
        })
        .collect()
}

/// The kernel's address space: its segments, the linear map of the replica's RAM from the
/// spec on, the shared area, one stack per core and the devices.
fn kernel_mappings(spec: &ReplicaSpec, kernel: &KernelImage, reserve: &Reserve) -> Vec<Mapping> {
    let ram = spec.ram;
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
        va: layout::LINEAR_MAP_BASE + reserve.spec,
        pa: ram.base + reserve.spec,
        size: ram.size - reserve.spec,
        attrs: attrs::WRITE,
    });
    maps.push(Mapping {
        va: layout::SHARED_AREA_BASE,
        pa: spec.shared.pa,
        size: spec.shared.size,
        attrs: attrs::WRITE,
    });
    let cores = (0..MAX_CORES as u64).filter(|core| spec.core_mask & (1 << core) != 0);
    for (stack, core) in (0u64..).zip(cores) {
        maps.push(Mapping {
            va: layout::KERNEL_STACKS_BASE
                + core * layout::KERNEL_STACK_SLOT
                + (layout::KERNEL_STACK_SLOT - layout::KERNEL_STACK_SIZE),
            pa: ram.base + reserve.stacks + stack * layout::KERNEL_STACK_SIZE,
            size: layout::KERNEL_STACK_SIZE,
            attrs: attrs::WRITE,
        });
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
    maps
}

#[cfg(test)]
pub(crate) mod tests {
    use atoll_boards::BOARDS;
    use proptest::prelude::*;

    use super::*;

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

    /// The plan of one PD per replica, replicas given as core lists (`0;1;2,3`).
    pub(crate) fn planned(board: &Board, clusters: &str) -> Plan {
        let mut xml = String::from("<system>\n");
        for (i, cores) in clusters.split(';').enumerate() {
            xml += &format!(
                "<replica name=\"r{i}\" cores=\"{cores}\" />\n\
                 <protection_domain name=\"pd{i}\" replica=\"r{i}\">\
                 <program_image path=\"pd.elf\" /></protection_domain>\n"
            );
        }
        xml += "</system>\n";
        let checked = crate::check(&xml, board, false);
        checked
            .plan
            .unwrap_or_else(|| panic!("{xml}: {:?}", checked.diagnostics))
    }

    pub(crate) fn specs(
        board: &Board,
        plan: &Plan,
        kernel: &KernelImage,
    ) -> Result<Vec<(ReplicaSpec, u64)>, String> {
        boot_specs(
            plan,
            &SpecInputs {
                board,
                kernel,
                initialiser: None,
                flags: &[],
                fault_late_ticks: &[],
                hang_late_ticks: &[],
                boot_programs: &[],
            },
        )
    }

    fn check_invariants(board: &Board, specs: &[(ReplicaSpec, u64)]) {
        let shared = PhysRange {
            base: specs[0].0.shared.pa,
            size: specs[0].0.shared.size,
        };
        assert!(board.ram.contains(&shared));
        assert!(shared.base >= board.ram.base + board.boot_reserved);
        for (i, (a, _)) in specs.iter().enumerate() {
            assert!(board.ram.contains(&a.ram));
            assert!(!a.ram.overlaps(&shared));
            assert_eq!(a.ram.base % atoll_abi::limits::LARGE_PAGE_SIZE, 0);
            assert!(a.free_offset < a.ram.size);
            for (b, _) in &specs[i + 1..] {
                assert!(!a.ram.overlaps(&b.ram), "replica RAM overlaps");
                assert_eq!(a.core_mask & b.core_mask, 0);
            }
            let maps = a.mappings();
            for (j, m) in maps.iter().enumerate() {
                let r = PhysRange {
                    base: m.pa,
                    size: m.size,
                };
                if m.attrs & attrs::DEVICE == 0 {
                    assert!(
                        a.ram.contains(&r) || shared.contains(&r),
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
                a.console.kind != 0,
                i == 0,
                "only replica 0 owns the console"
            );
        }
    }

    #[test]
    fn default_layouts_plan_on_every_board() {
        for board in BOARDS {
            let plan = planned(board, "0;1;2,3");
            let specs = specs(board, &plan, &fake_kernel()).unwrap();
            assert_eq!(specs.len(), 3);
            assert_eq!(specs[2].0.core_mask, 0b1100);
            assert_eq!(specs[1].0.system_hash, plan.system_hash);
            check_invariants(board, &specs);
        }
    }

    /// The boot specs of `xml`, planned on QEMU `virt` with the fake kernel.
    fn specs_of(xml: &str) -> Vec<ReplicaSpec> {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let checked = crate::check(xml, board, false);
        let plan = checked
            .plan
            .unwrap_or_else(|| panic!("{xml}: {:?}", checked.diagnostics));
        specs(board, &plan, &fake_kernel())
            .unwrap()
            .into_iter()
            .map(|(spec, _)| spec)
            .collect()
    }

    #[test]
    fn every_spec_says_which_replicas_restart_and_when_each_is_hung() {
        let specs = specs_of(
            r#"<system>
  <replica name="r0" cores="0" />
  <replica name="r1" cores="1" restart="true" hung_after_ms="100" />
  <replica name="r2" cores="2-3" restart="true" hung_after_ms="0x7530" />
  <protection_domain name="a" replica="r0"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="b" replica="r1"><program_image path="b.elf" /></protection_domain>
  <protection_domain name="c" replica="r2"><program_image path="c.elf" /></protection_domain>
</system>"#,
        );
        assert_eq!(specs.len(), 3);
        for spec in &specs {
            assert_eq!(spec.restart_mask, 0b110);
            assert_eq!(spec.hung_after_ms, [0, 100, 30_000, 0, 0, 0, 0, 0]);
            assert_eq!(spec.hang_late_ticks, 0);
            assert_eq!(spec.loader.restart_entry, 0);
            assert_eq!(spec.tick_hz, 100);
            assert!(!spec.restarts(0) && spec.restarts(1) && spec.restarts(2));
            assert_eq!(spec.hung_after_ms(0), None);
            assert_eq!(spec.hung_after_ms(1), Some(100));
            // No cross-replica channel: no word.
            assert_eq!((spec.words_in, spec.words_out), (0, 0));
        }
        // Without the attributes, nothing restarts and nothing is watched.
        let specs = specs_of(
            r#"<system>
  <protection_domain name="a" cpu="0"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="b" cpu="1"><program_image path="b.elf" /></protection_domain>
</system>"#,
        );
        for spec in &specs {
            assert_eq!(
                (spec.restart_mask, spec.hung_after_ms),
                (0, [0; MAX_REPLICAS])
            );
        }
    }

    #[test]
    fn each_spec_has_the_words_its_replica_receives_and_sends_on() {
        // Words, one per (receiving PD, sending replica), in channel order: a to b is word
        // 0, b to a word 1; a's second channel to b reuses word 0; a to c is word 2, and c
        // to a reuses word 1 (c is on b's replica). A channel within r1 has none.
        let specs = specs_of(
            r#"<system>
  <replica name="r0" cores="0" />
  <replica name="r1" cores="1-2" restart="true" />
  <protection_domain name="a" replica="r0"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="b" replica="r1"><program_image path="b.elf" /></protection_domain>
  <protection_domain name="c" replica="r1"><program_image path="c.elf" /></protection_domain>
  <channel><end pd="a" id="3" /><end pd="b" id="5" /></channel>
  <channel><end pd="a" id="4" /><end pd="b" id="6" notify="false" /></channel>
  <channel><end pd="a" id="7" /><end pd="c" id="0" /></channel>
  <channel><end pd="b" id="9" /><end pd="c" id="1" /></channel>
</system>"#,
        );
        let words: Vec<(u64, u64)> = specs.iter().map(|s| (s.words_in, s.words_out)).collect();
        assert_eq!(words, [(0b010, 0b101), (0b101, 0b010)]);
        // Word 0 (to b), 1 (to a), 2 (to c): received on r1, r0, r1; no more words.
        let mut receivers = [atoll_abi::spec::NO_REPLICA; 64];
        receivers[..3].copy_from_slice(&[1, 0, 1]);
        assert!(specs.iter().all(|s| s.word_receiver == receivers));
        // Each word's bits, the same in both: b's ids 5 and 6 (not 9: within r1), a's 3
        // and 7, c's 0.
        let mut bits = [0u64; 64];
        bits[..3].copy_from_slice(&[1 << 5 | 1 << 6, 1 << 3 | 1 << 7, 1 << 0]);
        assert!(specs.iter().all(|s| s.word_bits == bits));
        // The same restart mask in both.
        assert!(specs.iter().all(|s| s.restart_mask == 0b10));
    }

    #[test]
    fn a_kernel_too_large_for_the_reserve_is_refused() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let mut huge = fake_kernel();
        huge.mem_size = 0x1000_0000;
        let error = specs(board, &planned(board, "0;1;2;3"), &huge).unwrap_err();
        assert!(error.contains("each replica reserves 2048 KiB"), "{error}");
        let mut moved = fake_kernel();
        moved.vaddr += 0x1000;
        let error = specs(board, &planned(board, "0"), &moved).unwrap_err();
        assert!(error.contains("kernel is linked at"), "{error}");
    }

    #[test]
    fn hash_depends_on_text_and_board() {
        let text = "<system />";
        let qemu = &atoll_boards::QEMU_VIRT_AARCH64;
        assert_eq!(
            super::super::system_hash(text, qemu),
            super::super::system_hash(text, qemu)
        );
        assert_ne!(
            super::super::system_hash(text, qemu),
            super::super::system_hash("<system/>", qemu)
        );
        assert_ne!(
            super::super::system_hash(text, qemu),
            super::super::system_hash(text, BOARDS[1])
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn any_valid_partition_plans_with_disjoint_memory(assign in proptest::collection::vec(0usize..4, 4), board_index in 0usize..3) {
            let board = BOARDS[board_index];
            // Core c goes to replica assign[c] (renumbered densely, core 0's replica first).
            let mut order: Vec<usize> = vec![assign[0]];
            for &a in &assign { if !order.contains(&a) { order.push(a); } }
            let clusters: Vec<String> = order
                .iter()
                .map(|r| {
                    let cores: Vec<String> = (0..4).filter(|&c| assign[c] == *r).map(|c| c.to_string()).collect();
                    cores.join(",")
                })
                .collect();
            let plan = planned(board, &clusters.join(";"));
            let specs = specs(board, &plan, &fake_kernel()).unwrap();
            check_invariants(board, &specs);
        }
    }
}
