//! Planning: from a validated description to each replica's memory, kernel objects,
//! capabilities, mappings, interrupt routes, doorbells and the symbols to patch, and, once
//! the programs are read, to each replica's boot program and boot spec. This is the tool's
//! one planner: every layout rule is here, and the image writer (`crate::pack`) only
//! gathers and writes the bytes it is given.
//!
//! The plan is data, fully determined by the description and the board, so that reports
//! can be diffed and the replica initialiser can replay it object by object. It follows
//! Microkit's capability layout and badge encoding (`atoll_abi::pd`), with one change
//! for replicas: a notification towards a PD on another replica is a Doorbell capability.
//!
//! The steps, each a module:
//! - [`ram`]: the board's RAM is split into the boot area, the kernel shared area, a pool
//!   for regions that PDs of several replicas map, then one share per replica.
//! - `regions`: a region with `phys_addr` keeps its address (a device outside RAM, or
//!   fixed RAM that belongs to no replica); the built-in `atoll_status` region is the
//!   first page of the kernel shared area; a region mapped in one replica comes from that
//!   replica's RAM, one mapped in several from the shared pool.
//! - `channels`: each cross-replica notification gets a pending word in the shared area.
//! - `replica`: each replica's PDs, kernel objects and capabilities; in its RAM, after
//!   the kernel's reserve, its regions, then every kernel object, largest first so each is
//!   naturally aligned; the rest stays free (untyped memory).
//! - [`directory`]: when a PD asks for it (`<setvar directory="system">`), the system's
//!   directory, encoded once for every such symbol.
//! - [`domains`]: with `<domains>`, each PD's domain and the kernel's domain schedule (a
//!   system with domains has one replica, which holds the schedule).
//! - `programs`: once the programs are read, each PD's program goes in its replica's free
//!   RAM, page aligned, in PD order; and where the loader writes each boot program and each
//!   region's contents.
//! - `boot`: then each replica's boot program (encoded by [`bootprog`]) and boot spec.
//!
//! `tests/docs.rs` checks that this list names every module of the planner.

mod boot;
pub mod bootprog;
mod channels;
pub mod directory;
pub mod domains;
mod programs;
pub mod ram;
mod regions;
mod replica;

use atoll_abi::spec::PhysRange;
use atoll_boards::Board;
use serde::Serialize;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::files::Files;
use crate::model::{MemoryRegion, Prefill, SystemDescription};

#[cfg(test)]
pub(crate) use boot::tests as boot_tests;
pub use boot::{BootProgram, SpecInputs, TABLE_PAGES, boot_programs, boot_specs};
pub use directory::DirectoryPatch;
pub use domains::{DomainPlan, EntryPlan, SchedulePlan, Unit};
pub use programs::{KERNEL_OFFSET, PartPlace, ProgramShape, ProgramSource, place_programs};
pub use ram::{KERNEL_RESERVE, RamRequest, RamSplit, boot_area, kernel_shared_area, split_ram};
pub(crate) use replica::truncate_name;
pub use replica::{PEER_CHANNELS_SYMBOL, TableVaddrs, table_vaddrs};

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

fn hex_words<S: serde::Serializer>(values: &[u64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| format!("{v:#x}")))
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
    /// The status page (`device="atoll_status"`): the first page of the kernel shared area,
    /// which the kernels write and the loader initialises with the rest of that area (it is
    /// no part of the image). PDs map it read-only, as normal cacheable memory.
    Status,
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
    /// The prefill file, if any (a build reads it before planning).
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
    /// Restarted when it stops (`restart="true"`, Atoll extension).
    pub restart: bool,
    /// How long its tick count may stay frozen before the others report it hung, in
    /// milliseconds (`hung_after_ms`, Atoll extension); `None`: never checked.
    pub hung_after_ms: Option<u32>,
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
    /// Its domain schedule, when the system has `<domains>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_schedule: Option<SchedulePlan>,
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
    /// Its index in the system directory (`atoll_abi::directory`: PDs grouped by replica,
    /// each replica's in document order, children included), which is also its record in
    /// the status page's PD table: the boot program names its thread with it
    /// (`TCB_SET_STATUS_INDEX`), and its kernel publishes its state and faults there.
    pub status_index: u32,
    /// Its domain, when the system has `<domains>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainPlan>,
    /// Parent PD and child id.
    pub parent: Option<(String, u8)>,
    /// Capabilities in its Microkit CNode, by slot.
    pub capabilities: Vec<CapSlot>,
    /// `<cspace>` capabilities in its root CNode, by slot (slot 0 holds the Microkit CNode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub root_capabilities: Vec<CapSlot>,
    /// Its address space.
    pub maps: Vec<MapPlan>,
    /// Symbols to patch in its program image.
    pub symbols: Vec<SymbolPatch>,
    /// Where its program was placed (filled in as the build reads it).
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
    /// Value: a word, bytes for `microkit_name`, the system directory, a literal or an
    /// array of words (`atoll_peer_channels`).
    pub value: PatchValue,
    /// A program without the symbol is left as it is (`atoll_peer_channels`, which C PDs
    /// and older programs lack); otherwise a missing symbol is an error.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
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
    /// The system directory (`<setvar directory="system">`, Atoll extension): an encoded
    /// `atoll_abi::directory::Directory`, written over the symbol, which must hold it.
    Directory(DirectoryPatch),
    /// A literal (`<setvar value>`, Atoll extension): 8 little-endian bytes written over a
    /// symbol of at least 8 (zeroed past them). Not a [`Self::Word`], whose symbol must be
    /// exactly 8 bytes as Microkit's are; the reports also tell the two apart.
    Literal(#[serde(serialize_with = "hex")] u64),
    /// An array of 8-byte words, each little-endian, in order (`atoll_peer_channels`); the
    /// symbol must be exactly that size.
    Words(#[serde(serialize_with = "hex_words")] Vec<u64>),
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

/// FNV-1a, 64 bit.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// The system hash printed at boot so a log can be matched with its build: FNV-1a of the
/// description and the board name.
pub fn system_hash(text: &str, board: &Board) -> u64 {
    fnv1a(
        board.name.as_bytes(),
        fnv1a(text.as_bytes(), 0xCBF2_9CE4_8422_2325),
    )
}

fn error(code: Code, span: Span, message: String) -> Diagnostic {
    Diagnostic::error(code, span, message)
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

/// Like [`plan`], knowing the files the description names (read by the step before).
pub fn plan_with_files(
    system: &SystemDescription,
    text: &str,
    board: &Board,
    files: &Files,
) -> Result<Plan, Vec<Diagnostic>> {
    plan_with_prefills(
        system,
        text,
        board,
        &|path| files.prefill_len(path),
        &|path| files.program_extent(path),
    )
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
    let region_size = |mr: &MemoryRegion| match (mr.size, &mr.prefill) {
        (Some(size), _) => size,
        (None, Some(Prefill::File(path))) => prefill_len(path)
            .unwrap_or(0)
            .next_multiple_of(mr.page_size)
            .max(mr.page_size),
        (None, _) => mr.page_size,
    };
    let mut errors = check_boot_rules(system, board, &region_size);
    if !errors.is_empty() {
        return Err(errors);
    }
    let homes = regions::homes(system, board);
    let request = ram::ram_request(system, board, &homes, &region_size);
    let split = split_ram(board, &request).map_err(|e| {
        let span = system
            .replicas
            .first()
            .map_or(Span::default(), |(_, r)| r.span);
        vec![error(
            Code::OutOfMemory,
            span,
            format!("replica layout: {e}"),
        )]
    })?;
    let mut replica_ram: Vec<ram::Bump> = split
        .replicas
        .iter()
        .map(|r| ram::Bump {
            next: r.base + KERNEL_RESERVE,
            end: r.end(),
        })
        .collect();
    let sizes: Vec<u64> = system.memory_regions.values().map(region_size).collect();
    let region_addr = regions::place(
        system,
        &homes,
        &sizes,
        &mut ram::Bump::over(split.shared_pool),
        &mut replica_ram,
        &mut errors,
    );
    let memory_regions = regions::plans(system, &homes, &sizes, &region_addr);
    let channels = channels::plan(system, split.kernel_shared, &mut errors);
    let directory = directory::plan(system, &mut errors);
    let layout = replica::Layout {
        system,
        directory: directory.as_ref(),
        region_addr: &region_addr,
        region_sizes: &sizes,
        channels: &channels,
        program_extent,
    };
    let replicas = layout.replicas(&split, &mut replica_ram, &mut errors);
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
    })
}

/// The rules of booting: the first replica holds the boot core, and no region at a fixed
/// address lies in the memory Atoll boots from (but the status page, which is the first
/// page of the kernel shared area by definition).
fn check_boot_rules(
    system: &SystemDescription,
    board: &Board,
    region_size: &dyn Fn(&MemoryRegion) -> u64,
) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
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
    let boot = boot_area(board);
    for mr in system.memory_regions.values().filter(|mr| !mr.status_page) {
        if let Some(pa) = mr.phys_addr {
            let range = PhysRange {
                base: pa,
                size: region_size(mr).max(atoll_abi::limits::PAGE_SIZE),
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
    errors
}
