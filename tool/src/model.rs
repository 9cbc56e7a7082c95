//! The validated system: what planning and packing consume. Every name is resolved to an
//! index, every default is applied, every rule of the description format holds.

use indexmap::IndexMap;

use crate::diagnostics::Span;

/// Index of a replica in [`SystemDescription::replicas`].
pub type ReplicaIndex = usize;
/// Index of a PD in [`SystemDescription::protection_domains`].
pub type PdIndex = usize;
/// Index of a memory region in [`SystemDescription::memory_regions`].
pub type MrIndex = usize;

/// A whole, valid system description, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDescription {
    /// Replicas by name: declared with `<replica>`, or one per core in use.
    pub replicas: IndexMap<String, Replica>,
    /// PDs by name, children right after their parent (depth first, as Microkit numbers them).
    pub protection_domains: IndexMap<String, ProtectionDomain>,
    /// Memory regions by name.
    pub memory_regions: IndexMap<String, MemoryRegion>,
    /// Channels in document order.
    pub channels: Vec<Channel>,
    /// The domain scheduler, when `<domains>` is given.
    pub domains: Option<Domains>,
}

impl SystemDescription {
    /// Every IRQ with the PD that receives it.
    pub fn irqs(&self) -> impl Iterator<Item = (PdIndex, &Irq)> {
        self.protection_domains
            .values()
            .enumerate()
            .flat_map(|(pd, domain)| domain.irqs.iter().map(move |irq| (pd, irq)))
    }
}

/// One kernel replica: a cluster of cores with its own kernel, memory and PDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Bytes of RAM asked for with `ram`, if any (else an equal share).
    pub ram: Option<u64>,
    /// Declared name, or `core<N>` for a replica implied by `cpu="N"`.
    pub name: String,
    /// Core indices, ascending.
    pub cores: Vec<u32>,
    /// Declared with `<replica>` (false: implied by the `cpu` attributes).
    pub declared: bool,
    /// PDs that run on it, in document order.
    pub protection_domains: Vec<PdIndex>,
    /// Atoll extension (`restart="true"`): when the replica stops after a fatal fault, a
    /// surviving replica has the loader place it again from the image and start it; the
    /// span of the attribute value. `None`: it stays down (`restart` false or not given).
    pub restart: Option<Span>,
    /// Atoll extension (`hung_after_ms`): how long, in milliseconds, its tick count may
    /// stay frozen before the other replicas report it hung (`None`: never checked).
    pub hung_after_ms: Option<u32>,
    /// The `<replica>` element, or the first PD that implied it.
    pub span: Span,
}

impl Replica {
    /// Whether the replica is restarted when it stops (`restart="true"`).
    pub fn restarts(&self) -> bool {
        self.restart.is_some()
    }
}

/// A protection domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Unique name.
    pub name: String,
    /// 0..=254.
    pub priority: u8,
    /// Microseconds of CPU time per period.
    pub budget: u64,
    /// Microseconds.
    pub period: u64,
    /// Runs on its callers' scheduling contexts after `init`.
    pub passive: bool,
    /// Atoll extension: the monitor restarts the PD when it faults (otherwise it stops it).
    pub restart: bool,
    /// Bytes, a multiple of 4 KiB.
    pub stack_size: u64,
    /// Core the PD's thread runs on.
    pub core: u32,
    /// Replica that owns the PD.
    pub replica: ReplicaIndex,
    /// May use the FPU.
    pub fpu: bool,
    /// May call the firmware (`smc="true"`): holds the replica's SMC capability.
    pub smc: bool,
    /// Its domain's id, when the system has `<domains>`.
    pub domain: Option<u8>,
    /// Parent PD and this PD's id in the parent's child table.
    pub parent: Option<(PdIndex, u8)>,
    /// Parent's symbol that receives the child id.
    pub setvar_id: Option<String>,
    /// The ELF to run.
    pub program_image: ProgramImage,
    /// Mappings of memory regions, in document order.
    pub maps: Vec<Map>,
    /// Interrupts delivered to this PD.
    pub irqs: Vec<Irq>,
    /// `<setvar>` symbols.
    pub setvars: Vec<Setvar>,
    /// `<cspace>` capabilities shared into this PD.
    pub caps: Vec<SharedCap>,
    /// The PD's name attribute.
    pub span: Span,
}

/// `<program_image>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramImage {
    /// ELF path, looked up on the search path.
    pub path: String,
    /// Optional second ELF used only for symbols.
    pub path_for_symbols: Option<String>,
}

/// Access rights of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl Perms {
    /// Microkit's default, `rw`.
    pub const READ_WRITE: Perms = Perms {
        read: true,
        write: true,
        execute: false,
    };
}

/// A mapping of a memory region into a PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// The region.
    pub mr: MrIndex,
    /// Virtual address, a multiple of the region's page size.
    pub vaddr: u64,
    /// Access rights (never write-only).
    pub perms: Perms,
    /// Cacheable.
    pub cached: bool,
    /// Symbol ← `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// Symbol ← region size.
    pub setvar_size: Option<String>,
    /// Symbol ← prefill byte count.
    pub setvar_prefill_size: Option<String>,
    /// The `vaddr` attribute value.
    pub span: Span,
}

/// Interrupt trigger mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// Level-sensitive (Microkit's default).
    #[default]
    Level,
    /// Edge-triggered.
    Edge,
}

/// A hardware interrupt delivered on a PD-local channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// GIC interrupt id.
    pub number: u32,
    /// Channel id in the receiving PD, 0..=61.
    pub id: u8,
    /// Trigger mode.
    pub trigger: Trigger,
    /// Symbol ← `id`.
    pub setvar_id: Option<String>,
    /// The `irq` attribute value, or the `device` one (Atoll extension).
    pub span: Span,
}

/// `<setvar symbol region_paddr>`, `<setvar symbol directory="system">` or
/// `<setvar symbol value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setvar {
    /// Symbol to patch.
    pub symbol: String,
    /// What it receives.
    pub value: SetvarValue,
}

/// What a `<setvar>` symbol receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetvarValue {
    /// The physical address of this region (`region_paddr`).
    RegionPaddr(MrIndex),
    /// Atoll extension (`directory="system"`): the system's directory, an
    /// `atoll_abi::directory::Directory` naming every replica, its cores and its PDs.
    Directory,
    /// Atoll extension (`value="…"`): this literal, a number or an IPv4 address, written as
    /// 8 little-endian bytes.
    Value(u64),
}

/// Kind of capability a `<cspace>` entry shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapKind {
    /// `<cap_tcb>`.
    Tcb,
    /// `<cap_sc>`.
    SchedContext,
    /// `<cap_vspace>`.
    VSpace,
}

/// A capability to another PD's object, placed in this PD's root CNode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCap {
    /// Which object.
    pub kind: CapKind,
    /// Root CNode slot, 1..=127.
    pub slot: u8,
    /// PD that owns the object.
    pub pd: PdIndex,
}

/// Where a memory region's initial contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefill {
    /// A file on the search path.
    File(String),
    /// The device tree (`prefill_bootinfo="fdt"`).
    DeviceTree,
}

/// A memory region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Unique name.
    pub name: String,
    /// Bytes; `None` until the prefill file is measured (size taken from the file).
    pub size: Option<u64>,
    /// 4 KiB or 2 MiB (upgraded to 2 MiB when not given and everything is 2 MiB aligned).
    pub page_size: u64,
    /// Whether `page_size` was written in the file.
    pub page_size_given: bool,
    /// Fixed physical address: `phys_addr`, or for `device="…"` (Atoll extension) the first
    /// page of the board device's registers (the size then covers their last page), or for
    /// `device="atoll_status"` the start of the kernel shared area.
    pub phys_addr: Option<u64>,
    /// `device="atoll_status"` (Atoll extension, built in on every board): the status page,
    /// the first page of the kernel shared area (`atoll_abi::shared::STATUS_PAGE_BYTES`),
    /// which the kernels write and PDs may only read, cached.
    pub status_page: bool,
    /// Initial contents.
    pub prefill: Option<Prefill>,
    /// Named by `<setvar region_paddr>` without `phys_addr`: the tool picks a contiguous
    /// physical range.
    pub tool_allocated: bool,
    /// Replicas whose PDs map it, ascending (more than one: shared between replicas).
    pub replicas: Vec<ReplicaIndex>,
    /// The name attribute.
    pub span: Span,
}

/// One end of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEnd {
    /// The PD.
    pub pd: PdIndex,
    /// Channel id in that PD, 0..=61.
    pub id: u8,
    /// This end may call the other (which has strictly higher priority).
    pub pp: bool,
    /// This end may notify the other.
    pub notify: bool,
    /// Symbol ← `id`.
    pub setvar_id: Option<String>,
}

/// A channel between two PDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The two ends, in document order.
    pub ends: [ChannelEnd; 2],
    /// The ends are in different replicas: notifications travel by doorbell.
    pub cross_replica: bool,
    /// The `<channel>` element name.
    pub span: Span,
}

/// seL4's domain scheduler as `<domains>` sets it up: named domains and a schedule of
/// turns that repeats from its start entry. Only in a system of one single-core replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domains {
    /// Domain ids (below `atoll_abi::syscall::domains::COUNT`) by name, in document order.
    pub ids: IndexMap<String, u8>,
    /// The schedule's entries in order (fewer than
    /// `atoll_abi::syscall::domains::SCHEDULE_LENGTH`, shift included).
    pub schedule: Vec<ScheduleEntry>,
    /// The entry the schedule starts at, and comes back to at an end marker, counted from
    /// its first entry (not shifted); never an end marker.
    pub start_index: u64,
    /// Where the first entry goes in the kernel's schedule (`index_shift`, default 0).
    pub index_shift: u64,
    /// The `<domains>` element name.
    pub span: Span,
}

/// One entry of a domain schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleEntry {
    /// The domain with this id runs for this long.
    Run {
        /// Domain id.
        domain: u8,
        /// Non-zero.
        duration: DomainDuration,
    },
    /// `<schedule_end_marker>`: the schedule goes back to its start entry.
    EndMarker,
}

/// How long one turn of a domain lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainDuration {
    /// Microseconds (`"… us"`).
    Microseconds(u64),
    /// Ticks of the generic counter (`"… ticks"`).
    Ticks(u64),
}
