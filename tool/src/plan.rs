//! Planning: from a validated description to each replica's memory, kernel objects,
//! capabilities, mappings, interrupt routes, doorbells and the symbols to patch.
//!
//! The plan is data, fully determined by the description and the board, so that reports
//! can be diffed and the replica initialiser can replay it object by object. It follows
//! Microkit's capability layout and badge encoding (`atoll_abi::microkit`), with one change
//! for replicas: a notification towards a PD on another replica is a Doorbell capability.
//!
//! Memory:
//! - The board's RAM is split by `atoll_pack::plan::split_ram`: boot area, kernel shared
//!   area, a pool for regions that PDs of several replicas map, then equal replica shares.
//! - A region with `phys_addr` is device memory and keeps its address (inside RAM it is not
//!   supported yet). A region mapped in one replica only comes from that replica's RAM; one
//!   mapped in several comes from the shared pool.
//! - In a replica's RAM, after the kernel's reserve: its regions, then every kernel object,
//!   largest first so each is naturally aligned; the rest stays free (untyped memory).

use std::collections::{BTreeMap, BTreeSet};

use atoll_abi::limits::{LARGE_PAGE_SIZE, PAGE_SIZE};
use atoll_abi::microkit::{
    CNODE_SLOT_BITS, FAULT_BADGE, ObjectKind, PD_NAME_LENGTH, PPC_BADGE, slot, vspace,
};
use atoll_abi::spec::PhysRange;
use atoll_boards::Board;
use atoll_pack::plan::{KERNEL_RESERVE, RamRequest, split_ram};
use serde::Serialize;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::model::{ChannelEnd, Perms, Prefill, SystemDescription, Trigger};

/// The whole plan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    /// Board name.
    pub board: String,
    /// Hash of the description text and board, printed at boot to match logs with builds.
    #[serde(serialize_with = "hex18")]
    pub system_hash: u64,
    /// The kernel-to-kernel shared area.
    pub kernel_shared: Range,
    /// Pool for regions mapped in several replicas.
    pub shared_pool: Range,
    /// Memory regions, in document order.
    pub memory_regions: Vec<RegionPlan>,
    /// Replicas, in order.
    pub replicas: Vec<ReplicaPlan>,
    /// Channels, in document order.
    pub channels: Vec<ChannelPlan>,
    /// How RAM was divided (for the boot specs, which must agree).
    #[serde(skip)]
    pub ram_request: RamRequest,
}

/// A physical range, printed in hex.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    #[serde(serialize_with = "hex")]
    pub base: u64,
    /// Length.
    #[serde(serialize_with = "hex")]
    pub size: u64,
}

impl From<PhysRange> for Range {
    fn from(r: PhysRange) -> Self {
        Self {
            base: r.base,
            size: r.size,
        }
    }
}

fn hex<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#x}"))
}

/// A 64-bit hash as `0x` and 16 hex digits.
fn hex18<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#018x}"))
}

fn hex_opt<S: serde::Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&format!("{v:#x}")),
        None => s.serialize_none(),
    }
}

/// Where a region's memory comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RegionHome {
    /// A fixed physical address outside RAM (a device).
    Device,
    /// A fixed physical address inside RAM: it belongs to no replica, and the loader zeroes
    /// (or prefills) it.
    FixedRam,
    /// The RAM of one replica.
    Replica(String),
    /// The shared pool: PDs of several replicas map it.
    Shared,
    /// Mapped by nobody: not allocated.
    Unused,
}

/// A planned memory region.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RegionPlan {
    /// Name.
    pub name: String,
    /// Bytes.
    #[serde(serialize_with = "hex")]
    pub size: u64,
    /// Page size.
    #[serde(serialize_with = "hex")]
    pub page_size: u64,
    /// Physical address, once placed.
    #[serde(serialize_with = "hex_opt")]
    pub phys_addr: Option<u64>,
    /// Where its memory comes from.
    pub home: RegionHome,
    /// Bytes prefilled from a file, if any (the file is read when packing).
    pub prefill: Option<String>,
}

/// A planned replica.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaPlan {
    /// Name.
    pub name: String,
    /// Index.
    pub index: usize,
    /// Cores.
    pub cores: Vec<u32>,
    /// Its RAM.
    pub ram: Range,
    /// RAM left free (untyped) after regions and kernel objects.
    #[serde(serialize_with = "hex")]
    pub free_bytes: u64,
    /// Its kernel objects, in allocation order.
    pub objects: Vec<KernelObject>,
    /// Its protection domains.
    pub protection_domains: Vec<PdPlan>,
    /// Device interrupts it owns.
    pub irqs: Vec<IrqRoute>,
}

/// One kernel object (or a run of identical frames).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KernelObject {
    /// Unique name within the replica.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// log2 of one object's size.
    pub size_bits: u32,
    /// How many (frames of one region or stack come as a run).
    pub count: u64,
    /// Physical address of the first; `None` for device frames placed by their region.
    #[serde(serialize_with = "hex_opt")]
    pub phys_addr: Option<u64>,
    /// Kind-specific detail (priority, budget, target of a doorbell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A planned PD.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PdPlan {
    /// Name.
    pub name: String,
    /// Program image path as written.
    pub program_image: String,
    /// Priority.
    pub priority: u8,
    /// Budget, µs.
    pub budget_us: u64,
    /// Period, µs.
    pub period_us: u64,
    /// Passive server.
    pub passive: bool,
    /// Restarted by the monitor when it faults.
    pub restart: bool,
    /// Core it runs on.
    pub core: u32,
    /// Parent PD and child id.
    pub parent: Option<(String, u8)>,
    /// Capabilities in its Microkit CNode, by slot.
    pub capabilities: Vec<CapSlot>,
    /// Its address space.
    pub maps: Vec<MapPlan>,
    /// Symbols to patch in its program image.
    pub symbols: Vec<SymbolPatch>,
    /// Where its program was placed (filled in when packing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImagePlacement>,
}

/// A PD program placed in its replica's RAM.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImagePlacement {
    /// Physical address of its lowest page.
    #[serde(serialize_with = "hex")]
    pub phys_addr: u64,
    /// Bytes from its lowest to its highest page.
    #[serde(serialize_with = "hex")]
    pub size: u64,
    /// Entry point.
    #[serde(serialize_with = "hex")]
    pub entry: u64,
    /// Loadable segments: virtual address, size, permissions.
    pub segments: Vec<(u64, u64, String)>,
}

/// One capability slot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CapSlot {
    /// Slot in the Microkit CNode.
    pub slot: u32,
    /// What it names (an object in the replica, or `irq <n>`).
    pub object: String,
    /// Rights: r (read/receive), w (write/send), g (grant), c (grant reply).
    pub rights: &'static str,
    /// Badge.
    #[serde(serialize_with = "hex")]
    pub badge: u64,
}

/// One mapping in a PD's address space.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MapPlan {
    /// What is mapped: a region name, `stack` or `ipc_buffer`.
    pub what: String,
    /// Virtual address.
    #[serde(serialize_with = "hex")]
    pub vaddr: u64,
    /// Physical address, when the memory is placed.
    #[serde(serialize_with = "hex_opt")]
    pub phys_addr: Option<u64>,
    /// Bytes.
    #[serde(serialize_with = "hex")]
    pub size: u64,
    /// Permissions, e.g. `rw-`.
    pub perms: String,
    /// Cached.
    pub cached: bool,
    /// Size of the pages it is mapped with.
    #[serde(skip)]
    pub page_size: u64,
}

/// A value to write into a symbol of a PD's program image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SymbolPatch {
    /// Symbol.
    pub symbol: String,
    /// Value: a word, or bytes for `microkit_name`.
    pub value: PatchValue,
}

/// A patch value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PatchValue {
    /// An 8-byte word.
    Word(#[serde(serialize_with = "hex")] u64),
    /// Raw bytes (NUL padded to the symbol's size when patched).
    Bytes(String),
    /// The length of this region's prefill file, known once the file is read.
    PrefillSize(String),
}

/// A device interrupt and where it goes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IrqRoute {
    /// Interrupt number.
    pub irq: u32,
    /// Trigger.
    pub trigger: &'static str,
    /// Core it is routed to.
    pub core: u32,
    /// Receiving PD.
    pub pd: String,
    /// Channel id it arrives on.
    pub id: u8,
}

/// A planned channel.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelPlan {
    /// The two ends: PD name and id.
    pub ends: [(String, u8); 2],
    /// Whether the ends are on different replicas.
    pub cross_replica: bool,
    /// Whether the first end may notify the second, and the other way round.
    pub notify: [bool; 2],
    /// Which end (0 or 1) may call the other, if any.
    pub pp_caller: Option<usize>,
    /// For cross-replica notifications: the pending word each sending end sets.
    pub doorbells: Vec<DoorbellPlan>,
}

/// A cross-replica notification path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DoorbellPlan {
    /// Sending PD.
    pub from: String,
    /// Receiving PD.
    pub to: String,
    /// Bit set in the receiver's pending word (its channel id).
    pub bit: u8,
    /// Index of the pending word among the cross-replica channel words
    /// (`atoll_abi::shared::pd_words`).
    pub word: u32,
    /// Physical address of the pending word (in the kernel shared area).
    #[serde(serialize_with = "hex")]
    pub pending_word: u64,
}

/// FNV-1a of the description and the board name.
pub fn system_hash(text: &str, board: &Board) -> u64 {
    let mut h = atoll_pack::plan::fnv1a(text.as_bytes(), 0xCBF2_9CE4_8422_2325);
    h = atoll_pack::plan::fnv1a(board.name.as_bytes(), h);
    h
}

fn perms_text(p: Perms) -> String {
    [(p.read, 'r'), (p.write, 'w'), (p.execute, 'x')]
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect()
}

/// A bump allocator over one physical range.
struct Bump {
    next: u64,
    end: u64,
}

impl Bump {
    fn take(&mut self, size: u64, align: u64) -> Option<u64> {
        let at = self.next.checked_next_multiple_of(align)?;
        let end = at.checked_add(size)?;
        (end <= self.end).then(|| {
            self.next = end;
            at
        })
    }
}

fn error(code: Code, span: Span, message: String) -> Diagnostic {
    Diagnostic::error(code, span, message)
}

/// How `system` divides `board`'s RAM: explicit replica shares, the pool for the regions
/// whose home is [`RegionHome::Shared`], and the fixed regions inside RAM, which belong to
/// no replica.
pub fn ram_request(
    system: &SystemDescription,
    board: &Board,
    homes: &[RegionHome],
    region_size: &dyn Fn(&crate::model::MemoryRegion) -> u64,
) -> RamRequest {
    let shared_pool = system
        .memory_regions
        .values()
        .zip(homes)
        .filter(|(_, home)| **home == RegionHome::Shared)
        .map(|(mr, _)| region_size(mr).next_multiple_of(mr.page_size))
        .sum();
    let reserved = system
        .memory_regions
        .values()
        .filter_map(|mr| {
            mr.phys_addr.map(|pa| PhysRange {
                base: pa,
                size: region_size(mr).max(mr.page_size),
            })
        })
        .filter(|r| r.overlaps(&board.ram))
        .collect();
    let shares = if system.replicas.is_empty() {
        vec![None]
    } else {
        system.replicas.values().map(|r| r.ram).collect()
    };
    RamRequest {
        shares,
        shared_pool,
        reserved,
    }
}

/// Plans `system` (validated from `text`) on `board`. A region sized only by its prefill
/// file is planned at one page; [`plan_with_prefills`] plans it at the file's size.
pub fn plan(
    system: &SystemDescription,
    text: &str,
    board: &Board,
) -> Result<Plan, Vec<Diagnostic>> {
    plan_with_prefills(system, text, board, &|_| None, &|_| None)
}

/// Like [`plan`], with `prefill_len(path)` giving the length of a prefill file and
/// `program_extent(path)` the virtual range a program image's segments span (which decides
/// the translation tables its PD needs).
pub fn plan_with_prefills(
    system: &SystemDescription,
    text: &str,
    board: &Board,
    prefill_len: &dyn Fn(&str) -> Option<u64>,
    program_extent: &dyn Fn(&str) -> Option<(u64, u64)>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let region_size = |mr: &crate::model::MemoryRegion| match (mr.size, &mr.prefill) {
        (Some(size), _) => size,
        (None, Some(Prefill::File(path))) => prefill_len(path)
            .unwrap_or(0)
            .next_multiple_of(mr.page_size)
            .max(mr.page_size),
        (None, _) => mr.page_size,
    };
    if let Some((_, first)) = system.replicas.first()
        && !first.cores.contains(&0)
    {
        errors.push(error(
            Code::BootCoreReplica,
            first.span,
            format!(
                "the first replica ('{}') must include core 0, the boot core, which starts every other replica",
                first.name
            ),
        ));
    }

    // Regions: where each one's memory comes from.
    let homes: Vec<RegionHome> = system
        .memory_regions
        .values()
        .map(|mr| match (mr.phys_addr, mr.replicas.as_slice()) {
            (Some(pa), _)
                if PhysRange {
                    base: pa,
                    size: mr.page_size,
                }
                .overlaps(&board.ram) =>
            {
                RegionHome::FixedRam
            }
            (Some(_), _) => RegionHome::Device,
            (None, []) => RegionHome::Unused,
            (None, [one]) => RegionHome::Replica(system.replicas[*one].name.clone()),
            (None, _) => RegionHome::Shared,
        })
        .collect();
    let boot = atoll_pack::plan::boot_area(board);
    for mr in system.memory_regions.values() {
        if let Some(pa) = mr.phys_addr {
            let range = PhysRange {
                base: pa,
                size: region_size(mr).max(PAGE_SIZE),
            };
            if range.overlaps(&boot) {
                errors.push(error(
                    Code::FixedRegionInBootArea,
                    mr.span,
                    format!(
                        "memory region '{}' at {pa:#x} overlaps the memory Atoll boots from ({:#x}-{:#x})",
                        mr.name,
                        boot.base,
                        boot.end()
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let request = ram_request(system, board, &homes, &region_size);
    let split = match split_ram(board, &request) {
        Ok(split) => split,
        Err(e) => {
            let span = system
                .replicas
                .first()
                .map_or(Span::default(), |(_, r)| r.span);
            errors.push(error(Code::OutOfMemory, span, e.to_string()));
            return Err(errors);
        }
    };

    // Place shared regions, then each replica's own regions.
    let mut region_addr: Vec<Option<u64>> = system
        .memory_regions
        .values()
        .map(|mr| mr.phys_addr)
        .collect();
    let mut pool = Bump {
        next: split.shared_pool.base,
        end: split.shared_pool.end(),
    };
    let mut replica_bump: Vec<Bump> = split
        .replicas
        .iter()
        .map(|r| Bump {
            next: r.base + KERNEL_RESERVE,
            end: r.end(),
        })
        .collect();
    // Large pages first so small ones do not fragment the 2 MiB alignment.
    let mut order: Vec<usize> = (0..system.memory_regions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(system.memory_regions[i].page_size));
    for i in order {
        let mr = &system.memory_regions[i];
        let size = region_size(mr)
            .next_multiple_of(mr.page_size)
            .max(mr.page_size);
        let placed = match &homes[i] {
            RegionHome::Shared => pool.take(size, mr.page_size),
            RegionHome::Replica(_) => {
                let r = mr.replicas[0];
                replica_bump[r].take(size, mr.page_size)
            }
            RegionHome::Device | RegionHome::FixedRam | RegionHome::Unused => continue,
        };
        match placed {
            Some(pa) => region_addr[i] = Some(pa),
            None => errors.push(error(
                Code::OutOfMemory,
                mr.span,
                format!(
                    "not enough RAM to place memory region '{}' ({size:#x} bytes)",
                    mr.name
                ),
            )),
        }
    }

    let memory_regions: Vec<RegionPlan> = system
        .memory_regions
        .values()
        .enumerate()
        .map(|(i, mr)| RegionPlan {
            name: mr.name.clone(),
            size: region_size(mr),
            page_size: mr.page_size,
            phys_addr: region_addr[i],
            home: homes[i].clone(),
            prefill: match &mr.prefill {
                Some(Prefill::File(path)) => Some(path.clone()),
                Some(Prefill::DeviceTree) => Some("<device tree>".into()),
                None => None,
            },
        })
        .collect();

    // Doorbell pending words: one per (receiving PD, sending replica), after the kernel's
    // own shared-area structures (`atoll_abi::shared::pd_words`, which the kernels use too).
    use atoll_abi::shared::pd_words;
    let mut pending_words: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let mut channels = Vec::new();
    for channel in &system.channels {
        let [a, b] = &channel.ends;
        let mut doorbells = Vec::new();
        if channel.cross_replica {
            for (from, to) in [(a, b), (b, a)] {
                if !from.notify {
                    continue;
                }
                let key = (to.pd, system.protection_domains[from.pd].replica);
                let next = pending_words.len() as u64;
                let word = *pending_words.entry(key).or_insert(next);
                doorbells.push(DoorbellPlan {
                    from: system.protection_domains[from.pd].name.clone(),
                    to: system.protection_domains[to.pd].name.clone(),
                    bit: to.id,
                    word: u32::try_from(word).unwrap_or(u32::MAX),
                    // A word past the region's end is reported below.
                    pending_word: split.kernel_shared.base
                        + pd_words::offset(word, split.kernel_shared.size).unwrap_or(0),
                });
            }
        }
        channels.push(ChannelPlan {
            ends: [a, b].map(|e| (system.protection_domains[e.pd].name.clone(), e.id)),
            cross_replica: channel.cross_replica,
            notify: [a.notify, b.notify],
            pp_caller: [a, b].iter().position(|e| e.pp),
            doorbells,
        });
    }
    if pending_words.len() as u64 > pd_words::count(split.kernel_shared.size) {
        errors.push(error(
            Code::OutOfMemory,
            Span::default(),
            format!(
                "{} cross-replica doorbell words do not fit the shared area",
                pending_words.len()
            ),
        ));
    }

    let mut replicas = Vec::new();
    let sizes: Vec<u64> = system.memory_regions.values().map(region_size).collect();
    for (index, replica) in system.replicas.values().enumerate() {
        let builder = ReplicaBuilder {
            system,
            index,
            region_addr: &region_addr,
            region_sizes: &sizes,
            channels: &channels,
            program_extent,
        };
        let (protection_domains, mut objects, irqs) = builder.build();
        // Kernel objects: largest first, each naturally aligned.
        objects.sort_by_key(|o| std::cmp::Reverse(o.size_bits));
        let bump = &mut replica_bump[index];
        for object in &mut objects {
            if object.kind == ObjectKind::Frame.name() && object.phys_addr.is_some() {
                continue; // region frames were placed with their region
            }
            let size = (1u64 << object.size_bits) * object.count;
            match bump.take(size, 1 << object.size_bits) {
                Some(pa) => object.phys_addr = Some(pa),
                None => {
                    errors.push(error(
                        Code::OutOfMemory,
                        replica.span,
                        format!(
                            "replica '{}' has too little RAM for its kernel objects (at '{}')",
                            replica.name, object.name
                        ),
                    ));
                    break;
                }
            }
        }
        replicas.push(ReplicaPlan {
            name: replica.name.clone(),
            index,
            cores: replica.cores.clone(),
            ram: split.replicas[index].into(),
            free_bytes: bump.end.saturating_sub(bump.next),
            objects,
            protection_domains,
            irqs,
        });
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Plan {
        board: board.name.to_string(),
        system_hash: system_hash(text, board),
        kernel_shared: split.kernel_shared.into(),
        shared_pool: split.shared_pool.into(),
        memory_regions,
        replicas,
        channels,
        ram_request: request,
    })
}

/// Builds one replica's PDs, objects and interrupt routes.
struct ReplicaBuilder<'a> {
    system: &'a SystemDescription,
    index: usize,
    region_addr: &'a [Option<u64>],
    region_sizes: &'a [u64],
    channels: &'a [ChannelPlan],
    program_extent: &'a dyn Fn(&str) -> Option<(u64, u64)>,
}

impl ReplicaBuilder<'_> {
    fn object(kind: ObjectKind, name: String, detail: Option<String>) -> KernelObject {
        KernelObject {
            name,
            kind: kind.name(),
            size_bits: kind.fixed_size_bits().unwrap_or(12),
            count: 1,
            phys_addr: None,
            detail,
        }
    }

    /// Whether a PD receives on an endpoint (children or PPC callers), as Microkit decides.
    fn has_endpoint(&self, pd: usize) -> bool {
        let has_children = self
            .system
            .protection_domains
            .values()
            .any(|p| p.parent.is_some_and(|(parent, _)| parent == pd));
        let is_callee = self.system.channels.iter().any(|c| {
            let [a, b] = &c.ends;
            (a.pp && b.pd == pd) || (b.pp && a.pd == pd)
        });
        has_children || is_callee
    }

    fn build(&self) -> (Vec<PdPlan>, Vec<KernelObject>, Vec<IrqRoute>) {
        let system = self.system;
        let mut objects = vec![
            Self::object(
                ObjectKind::Endpoint,
                "monitor_endpoint".into(),
                Some("fault endpoint of the replica's monitor".into()),
            ),
            Self::object(
                ObjectKind::Reply,
                "monitor_reply".into(),
                Some("the monitor's reply object".into()),
            ),
        ];
        let mut pds = Vec::new();
        let mut irqs = Vec::new();
        let local: Vec<usize> = system
            .protection_domains
            .values()
            .enumerate()
            .filter(|(_, p)| p.replica == self.index)
            .map(|(i, _)| i)
            .collect();
        for (local_index, &pd_index) in local.iter().enumerate() {
            let pd = &system.protection_domains[pd_index];
            let name = &pd.name;
            objects.push(Self::object(
                ObjectKind::Tcb,
                format!("tcb_{name}"),
                Some(format!("priority {}", pd.priority)),
            ));
            objects.push(Self::object(
                ObjectKind::SchedContext,
                format!("sched_context_{name}"),
                Some(format!("budget {} us, period {} us", pd.budget, pd.period)),
            ));
            objects.push(Self::object(
                ObjectKind::VSpace,
                format!("vspace_{name}"),
                None,
            ));
            let mut root = Self::object(ObjectKind::CNode, format!("cnode_root_{name}"), None);
            root.size_bits = slot::ROOT_CNODE_SLOTS.trailing_zeros() + CNODE_SLOT_BITS;
            objects.push(root);
            let mut cnode = Self::object(ObjectKind::CNode, format!("cnode_{name}"), None);
            cnode.size_bits = slot::CNODE_SLOTS.trailing_zeros() + CNODE_SLOT_BITS;
            objects.push(cnode);
            objects.push(Self::object(
                ObjectKind::Notification,
                format!("notification_{name}"),
                None,
            ));
            objects.push(Self::object(
                ObjectKind::Reply,
                format!("reply_{name}"),
                None,
            ));
            let endpoint = self.has_endpoint(pd_index);
            if endpoint {
                objects.push(Self::object(
                    ObjectKind::Endpoint,
                    format!("endpoint_{name}"),
                    None,
                ));
            }
            let ipc = KernelObject {
                count: 1,
                ..Self::object(ObjectKind::Frame, format!("ipc_buffer_{name}"), None)
            };
            objects.push(ipc);
            let stack_pages = pd.stack_size / PAGE_SIZE;
            objects.push(KernelObject {
                count: stack_pages,
                ..Self::object(ObjectKind::Frame, format!("stack_{name}"), None)
            });

            let mut caps = Vec::new();
            let input = if endpoint {
                format!("endpoint_{name}")
            } else {
                format!("notification_{name}")
            };
            caps.push(CapSlot {
                slot: slot::INPUT,
                object: input,
                rights: "rwgc",
                badge: 0,
            });
            let (fault_target, fault_badge) = match pd.parent {
                Some((parent, child_id)) => (
                    format!("endpoint_{}", system.protection_domains[parent].name),
                    FAULT_BADGE | u64::from(child_id),
                ),
                None => ("monitor_endpoint".to_string(), local_index as u64 + 1),
            };
            caps.push(CapSlot {
                slot: slot::FAULT_ENDPOINT,
                object: fault_target,
                rights: "wgc",
                badge: fault_badge,
            });
            caps.push(CapSlot {
                slot: slot::VSPACE,
                object: format!("vspace_{name}"),
                rights: "rw",
                badge: 0,
            });
            caps.push(CapSlot {
                slot: slot::REPLY,
                object: format!("reply_{name}"),
                rights: "rwg",
                badge: 0,
            });
            if pd.passive {
                caps.push(CapSlot {
                    slot: slot::MONITOR_ENDPOINT,
                    object: "monitor_endpoint".into(),
                    rights: "w",
                    badge: local_index as u64 + 1,
                });
            }
            let mut notify_mask = 0u64;
            let mut pp_mask = 0u64;
            let mut id_symbols = Vec::new();
            for (channel, planned) in system.channels.iter().zip(self.channels) {
                for (me, peer) in [
                    (&channel.ends[0], &channel.ends[1]),
                    (&channel.ends[1], &channel.ends[0]),
                ] {
                    if me.pd != pd_index {
                        continue;
                    }
                    if let Some(symbol) = &me.setvar_id {
                        id_symbols.push((symbol.clone(), u64::from(me.id)));
                    }
                    self.end_caps(
                        me,
                        peer,
                        planned,
                        &mut caps,
                        &mut objects,
                        &mut notify_mask,
                        &mut pp_mask,
                    );
                }
            }
            let mut irq_mask = 0u64;
            for irq in &pd.irqs {
                irq_mask |= 1 << irq.id;
                caps.push(CapSlot {
                    slot: slot::IRQ_HANDLER + u32::from(irq.id),
                    object: format!("irq {}", irq.number),
                    rights: "rw",
                    badge: 0,
                });
                irqs.push(IrqRoute {
                    irq: irq.number,
                    trigger: match irq.trigger {
                        Trigger::Level => "level",
                        Trigger::Edge => "edge",
                    },
                    core: pd.core,
                    pd: name.clone(),
                    id: irq.id,
                });
                if let Some(symbol) = &irq.setvar_id {
                    id_symbols.push((symbol.clone(), u64::from(irq.id)));
                }
            }
            for child in system.protection_domains.values() {
                if let Some((parent, id)) = child.parent
                    && parent == pd_index
                {
                    caps.push(CapSlot {
                        slot: slot::CHILD_TCB + u32::from(id),
                        object: format!("tcb_{}", child.name),
                        rights: "rwgc",
                        badge: 0,
                    });
                    if let Some(symbol) = &child.setvar_id {
                        id_symbols.push((symbol.clone(), u64::from(id)));
                    }
                }
            }
            caps.sort_by_key(|c| c.slot);

            let mut maps = Vec::new();
            let mut symbols = vec![
                SymbolPatch {
                    symbol: "microkit_name".into(),
                    value: PatchValue::Bytes(truncate_name(name)),
                },
                SymbolPatch {
                    symbol: "microkit_passive".into(),
                    value: PatchValue::Word(u64::from(pd.passive)),
                },
                SymbolPatch {
                    symbol: "microkit_notifications".into(),
                    value: PatchValue::Word(notify_mask),
                },
                SymbolPatch {
                    symbol: "microkit_pps".into(),
                    value: PatchValue::Word(pp_mask),
                },
                SymbolPatch {
                    symbol: "microkit_irqs".into(),
                    value: PatchValue::Word(irq_mask),
                },
            ];
            for map in &pd.maps {
                let mr = &system.memory_regions[map.mr];
                let size = self.region_sizes[map.mr];
                maps.push(MapPlan {
                    what: mr.name.clone(),
                    vaddr: map.vaddr,
                    phys_addr: self.region_addr[map.mr],
                    size,
                    perms: perms_text(map.perms),
                    cached: map.cached,
                    page_size: mr.page_size,
                });
                for (symbol, value) in [(&map.setvar_vaddr, map.vaddr), (&map.setvar_size, size)] {
                    if let Some(symbol) = symbol {
                        symbols.push(SymbolPatch {
                            symbol: symbol.clone(),
                            value: PatchValue::Word(value),
                        });
                    }
                }
                if let Some(symbol) = &map.setvar_prefill_size {
                    // The prefill file's length is only known when packing.
                    symbols.push(SymbolPatch {
                        symbol: symbol.clone(),
                        value: PatchValue::Bytes("<prefill size>".into()),
                    });
                }
            }
            maps.push(MapPlan {
                what: "stack".into(),
                vaddr: vspace::STACK_TOP - pd.stack_size,
                phys_addr: None,
                size: pd.stack_size,
                perms: "rw-".into(),
                cached: true,
                page_size: PAGE_SIZE,
            });
            maps.push(MapPlan {
                what: "ipc_buffer".into(),
                vaddr: vspace::IPC_BUFFER,
                phys_addr: None,
                size: PAGE_SIZE,
                perms: "rw-".into(),
                cached: true,
                page_size: PAGE_SIZE,
            });
            let program = (self.program_extent)(&pd.program_image.path);
            let tables = page_tables_needed(&maps, program);
            objects.push(KernelObject {
                count: tables,
                ..Self::object(ObjectKind::PageTable, format!("page_tables_{name}"), None)
            });
            for setvar in &pd.setvars {
                let value = self.region_addr[setvar.region_paddr].unwrap_or(0);
                symbols.push(SymbolPatch {
                    symbol: setvar.symbol.clone(),
                    value: PatchValue::Word(value),
                });
            }
            for (symbol, value) in id_symbols {
                symbols.push(SymbolPatch {
                    symbol,
                    value: PatchValue::Word(value),
                });
            }
            pds.push(PdPlan {
                name: name.clone(),
                program_image: pd.program_image.path.clone(),
                priority: pd.priority,
                budget_us: pd.budget,
                period_us: pd.period,
                passive: pd.passive,
                restart: pd.restart,
                core: pd.core,
                parent: pd
                    .parent
                    .map(|(p, id)| (system.protection_domains[p].name.clone(), id)),
                capabilities: caps,
                maps,
                symbols,
                image: None,
            });
        }
        (pds, objects, irqs)
    }

    /// Capabilities one channel end gives its PD.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; the accumulators are the point"
    )]
    fn end_caps(
        &self,
        me: &ChannelEnd,
        peer: &ChannelEnd,
        planned: &ChannelPlan,
        caps: &mut Vec<CapSlot>,
        objects: &mut Vec<KernelObject>,
        notify_mask: &mut u64,
        pp_mask: &mut u64,
    ) {
        let peer_name = &self.system.protection_domains[peer.pd].name;
        let my_name = &self.system.protection_domains[me.pd].name;
        if me.notify {
            *notify_mask |= 1 << me.id;
            let target = if planned.cross_replica {
                let doorbell = format!("doorbell_{my_name}_{}", me.id);
                let word = planned
                    .doorbells
                    .iter()
                    .find(|d| &d.from == my_name)
                    .map_or(0, |d| d.pending_word);
                let detail = format!(
                    "sets bit {} of {peer_name}'s pending word at {word:#x}",
                    peer.id
                );
                objects.push(Self::object(
                    ObjectKind::Doorbell,
                    doorbell.clone(),
                    Some(detail),
                ));
                doorbell
            } else {
                format!("notification_{peer_name}")
            };
            caps.push(CapSlot {
                slot: slot::OUTPUT_NOTIFICATION + u32::from(me.id),
                object: target,
                rights: "w",
                badge: 1 << peer.id,
            });
        }
        if me.pp {
            *pp_mask |= 1 << me.id;
            caps.push(CapSlot {
                slot: slot::OUTPUT_ENDPOINT + u32::from(me.id),
                object: format!("endpoint_{peer_name}"),
                rights: "wgc",
                badge: PPC_BADGE | u64::from(peer.id),
            });
        }
    }
}

/// The name as patched: at most 63 bytes, so a NUL always follows.
pub(crate) fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(PD_NAME_LENGTH - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Translation tables below the VSpace root a PD needs for its mappings and its program
/// (39-bit, 4 KiB granule: the root covers 512 GiB; a level-2 table per GiB touched and a
/// level-3 table per 2 MiB mapped with small pages).
fn page_tables_needed(maps: &[MapPlan], program: Option<(u64, u64)>) -> u64 {
    let ranges = maps.iter().map(|m| (m.vaddr, m.size, m.page_size));
    let program = program.map(|(lo, hi)| (lo, hi.saturating_sub(lo), PAGE_SIZE));
    let (l2, l3) = table_vaddrs(ranges.chain(program));
    (l2.len() + l3.len()) as u64
}

/// The virtual addresses (bases) of the level-2 and level-3 tables that `(vaddr, size,
/// page size)` ranges need, in address order.
pub fn table_vaddrs(
    ranges: impl IntoIterator<Item = (u64, u64, u64)>,
) -> (BTreeSet<u64>, BTreeSet<u64>) {
    const GIB: u64 = 1 << 30;
    let (mut l2, mut l3) = (BTreeSet::new(), BTreeSet::new());
    for (vaddr, size, page) in ranges {
        let last = vaddr + size.max(1) - 1;
        let mut v = vaddr & !(LARGE_PAGE_SIZE - 1);
        while v <= last {
            l2.insert(v & !(GIB - 1));
            if page < LARGE_PAGE_SIZE {
                l3.insert(v);
            }
            v += LARGE_PAGE_SIZE;
        }
    }
    (l2, l3)
}
