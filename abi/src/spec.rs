//! The per-replica boot spec: everything a replica kernel needs to know about itself.
//!
//! The host (today `xtask`, later the `microkit` tool) writes one spec per replica into the
//! image; the loader copies it into the replica's RAM, fills the [`LoaderFilled`] fields,
//! builds the replica's page tables from [`ReplicaSpec::mappings`] and passes the spec's
//! virtual address to every core of the replica. The kernel itself holds no board data.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::limits::{MAX_CORES, MAX_IRQ_ROUTES, MAX_KERNEL_MAPPINGS, MAX_REPLICAS};

/// Magic at the start of a spec.
pub const SPEC_MAGIC: [u8; 8] = *b"ATOLLSPC";
/// Size of a spec in bytes (checked against the struct at compile time).
pub const SPEC_SIZE: usize = 2632;
/// Current spec version.
pub const SPEC_VERSION: u32 = 4;

/// Kernel virtual address layout (TTBR1, 39-bit VA, 4 KiB granule). The same in every replica,
/// so one kernel ELF serves them all and a debugger sees the same addresses everywhere.
pub mod layout {
    /// Lowest TTBR1 address with a 39-bit VA space.
    pub const KERNEL_SPACE_BASE: u64 = 0xFFFF_FF80_0000_0000;
    /// Linear map of the replica's RAM: `LINEAR_MAP_BASE + (pa - ram.base)`.
    pub const LINEAR_MAP_BASE: u64 = 0xFFFF_FF80_0000_0000;
    /// The kernel-to-kernel shared area.
    pub const SHARED_AREA_BASE: u64 = 0xFFFF_FFC0_0000_0000;
    /// Device windows, one 2 MiB slot each.
    pub const DEVICE_BASE: u64 = 0xFFFF_FFD0_0000_0000;
    /// Size of one device slot.
    pub const DEVICE_SLOT: u64 = 0x20_0000;
    /// Where the kernel ELF is linked.
    pub const KERNEL_IMAGE_BASE: u64 = 0xFFFF_FFFF_8000_0000;
    /// Per-core kernel stacks: core `c` owns the slot at `KERNEL_STACKS_BASE + c *
    /// KERNEL_STACK_SLOT`, whose lower half is an unmapped guard and whose upper half is
    /// its stack (the stack starts at the top of the slot).
    pub const KERNEL_STACKS_BASE: u64 = 0xFFFF_FFFF_C000_0000;
    /// Size of one core's stack slot (guard and stack).
    pub const KERNEL_STACK_SLOT: u64 = 0x8000;
    /// Bytes of stack in a slot (the upper half).
    pub const KERNEL_STACK_SIZE: u64 = 0x4000;
    /// Virtual-address bits the kernel half translates (T1SZ = 64 - KERNEL_VA_BITS): three
    /// levels of 4 KiB tables.
    pub const KERNEL_VA_BITS: u32 = 39;
    /// Virtual-address bits the user half translates (T0SZ = 64 - USER_VA_BITS): 1 TiB, what
    /// seL4 gives user space on these boards, so four levels of 4 KiB tables.
    pub const USER_VA_BITS: u32 = 40;
}

/// SGI that rings a replica's doorbell (one number serves every doorbell).
pub const DOORBELL_SGI: u32 = 1;
/// SGI that tells the other cores of a replica to stop after a fatal error.
pub const STOP_SGI: u32 = 2;
/// Default timer tick rate.
pub const DEFAULT_TICK_HZ: u32 = 100;

/// Spec flags.
pub mod flags {
    /// Test builds: once the boot checks finish, the boot replica powers the machine off.
    pub const EXIT_WHEN_DONE: u32 = 1 << 0;
    /// Self-test: this replica faults on purpose during boot, to prove that a fault stops
    /// only its own replica.
    pub const SELFTEST_FAULT: u32 = 1 << 1;
    /// Self-test: this replica's primary core overflows its kernel stack on purpose, to
    /// prove the guard catches it and stops only this replica.
    pub const SELFTEST_STACK_OVERFLOW: u32 = 1 << 2;
    /// Self-test: this replica's initialiser touches unmapped memory on purpose, to prove a
    /// user fault never disturbs the kernel or the replica.
    pub const SELFTEST_USER_FAULT: u32 = 1 << 3;
    /// Self-test: this replica's initialiser exercises the kernel's API with test threads,
    /// hostile cases included, and reports each check.
    pub const SELFTEST_KERNEL_API: u32 = 1 << 4;
    /// Self-test, read by the loader on the boot replica's spec: the loader faults on
    /// purpose, and its exception handler faults again while reporting it, to prove the
    /// second exception is reported (by assembly alone) instead of recursing or hanging.
    pub const SELFTEST_LOADER_FAULT: u32 = 1 << 5;
    /// Self-test, read by the loader on the boot replica's spec: the loader probes PSCI
    /// through the conduit the board does not use here, which no firmware answers, to prove
    /// it refuses to boot with a message instead of hanging.
    pub const SELFTEST_PSCI_UNANSWERED: u32 = 1 << 6;
    // Bit 7 was the late-fault self-test's; `ReplicaSpec::fault_late_ticks` now carries it
    // alone.
    /// Self-test, read by the loader on this replica's spec when it restarts the replica:
    /// the loader faults on purpose during the restart, to prove the restart is given up
    /// (`failed`) and the restart lock given back, so that other replicas still restart.
    pub const SELFTEST_RESTART_FAULT: u32 = 1 << 8;
}

/// The tick of `--selftest-fault-late`'s deliberate fault
/// ([`ReplicaSpec::fault_late_ticks`]): 5 s at 100 Hz.
pub const LATE_FAULT_TICKS: u32 = 500;

/// A physical range.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PhysRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl PhysRange {
    /// One past the last byte (saturating).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.size != 0 && other.size != 0 && self.base < other.end() && other.base < self.end()
    }

    /// Whether `other` lies entirely inside `self`.
    pub const fn contains(&self, other: &PhysRange) -> bool {
        other.base >= self.base && other.end() <= self.end()
    }
}

/// Memory attributes of a kernel mapping.
pub mod attrs {
    /// Writable.
    pub const WRITE: u64 = 1 << 0;
    /// Executable at EL1.
    pub const EXEC: u64 = 1 << 1;
    /// Device-nGnRE memory (otherwise normal write-back cacheable).
    pub const DEVICE: u64 = 1 << 2;
    /// A user (EL0) mapping: accessible from EL0, not global, never executable at EL1;
    /// `EXEC` then means executable at EL0.
    pub const USER: u64 = 1 << 3;
}

/// One kernel mapping the loader creates in the replica's TTBR1 tables.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Mapping {
    /// Virtual address (page aligned).
    pub va: u64,
    /// Physical address (page aligned).
    pub pa: u64,
    /// Length in bytes (page multiple).
    pub size: u64,
    /// [`attrs`] bits.
    pub attrs: u64,
}

/// A device interrupt this replica owns, and the core the loader routes it to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct IrqRoute {
    /// GIC interrupt id (a shared peripheral interrupt, 32 or more).
    pub intid: u32,
    /// Core index it is routed to (one of the replica's cores).
    pub core: u32,
    /// 1 for edge-triggered, 0 for level.
    pub edge: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A user program the kernel starts itself (the initialiser), as placed by the loader.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ProgramPart {
    /// Offset in the replica's RAM of its first page.
    pub offset: u64,
    /// Bytes it occupies (page multiple).
    pub mem_size: u64,
    /// Virtual address of its first page.
    pub vaddr: u64,
    /// Entry point.
    pub entry: u64,
    /// Bytes from `vaddr` that are text (mapped executable, read-only); the rest is data.
    pub text_size: u64,
    /// Reserved, zero.
    pub reserved: u64,
}

/// Console UART models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum UartKind {
    /// Arm PL011 (QEMU virt).
    Pl011 = 1,
    /// Cadence UART (ZynqMP).
    Cadence = 2,
    /// NXP i.MX UART.
    Imx = 3,
}

impl UartKind {
    /// Decodes a raw kind.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Pl011),
            2 => Some(Self::Cadence),
            3 => Some(Self::Imx),
            _ => None,
        }
    }
}

/// A device the kernel drives, with where it is mapped.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DeviceWindow {
    /// Model (e.g. a [`UartKind`] as `u32`); zero when absent.
    pub kind: u32,
    /// Its interrupt id, if any.
    pub intid: u32,
    /// Physical base.
    pub pa: u64,
    /// Kernel virtual base.
    pub va: u64,
    /// Bytes mapped.
    pub size: u64,
}

/// The interrupt controller.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GicSpec {
    /// 2 or 3.
    pub version: u32,
    /// SGI that rings a replica's doorbell.
    pub doorbell_sgi: u32,
    /// SGI that tells a core its replica has stopped.
    pub stop_sgi: u32,
    /// Generic-timer PPI the kernel ticks on (virtual timer).
    pub timer_intid: u32,
    /// Distributor.
    pub distributor: DeviceWindow,
    /// GICv3: redistributors of all cores; GICv2: the CPU interface.
    pub cpu: DeviceWindow,
}

/// Fields the loader fills in at boot (the host writes zero).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct LoaderFilled {
    /// A [`PsciConduit`] as `u32`.
    pub psci_conduit: u32,
    /// Exception level the loader was entered at (1 or 2).
    pub entry_el: u32,
    /// Physical address of the loader's trampoline, for a kernel that restarts a core.
    pub trampoline: u64,
    /// Physical address of the loader's restart entry: a surviving kernel starts a core of
    /// a stopped replica there with PSCI `CPU_ON`, the replica's index as its context, and
    /// the loader places that replica again and enters it (`restart="true"`).
    pub restart_entry: u64,
}

/// How to call PSCI firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PsciConduit {
    /// `HVC #0`.
    Hvc = 1,
    /// `SMC #0`.
    Smc = 2,
}

impl PsciConduit {
    /// Decodes a raw conduit.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Hvc),
            2 => Some(Self::Smc),
            _ => None,
        }
    }
}

/// One replica's boot spec.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ReplicaSpec {
    /// [`SPEC_MAGIC`].
    pub magic: [u8; 8],
    /// [`SPEC_VERSION`].
    pub version: u32,
    /// `size_of::<ReplicaSpec>()`.
    pub size: u32,
    /// This replica's index.
    pub replica: u32,
    /// Number of replicas in the system.
    pub replica_count: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Timer ticks per second.
    pub tick_hz: u32,
    /// Cores this replica runs on (bit i = core index i).
    pub core_mask: u64,
    /// Hash of the system description this spec was planned from.
    pub system_hash: u64,
    /// This replica's own RAM.
    pub ram: PhysRange,
    /// Offset in `ram` where memory free for the kernel's own use begins.
    pub free_offset: u64,
    /// Offset in `ram` reserved for the page tables the loader builds.
    pub tables_offset: u64,
    /// Bytes reserved for those page tables.
    pub tables_size: u64,
    /// The kernel-to-kernel shared area (physical, and where it is mapped).
    pub shared: DeviceWindow,
    /// The console UART; `kind == 0` when another replica owns the console.
    pub console: DeviceWindow,
    /// The interrupt controller.
    pub gic: GicSpec,
    /// Core index → MPIDR affinity (Aff0..Aff3 as in MPIDR_EL1).
    pub core_mpidr: [u64; MAX_CORES],
    /// Replica index → its core mask, for targeting doorbells.
    pub replica_cores: [u64; MAX_REPLICAS],
    /// Number of valid [`ReplicaSpec::mappings`].
    pub mapping_count: u32,
    /// Self-test and fault injection: the replica tick at which the replica faults on
    /// purpose, while its PDs are at work, to prove that the other replicas lose nothing of
    /// what they were doing with it (`--selftest-fault-late`, `--inject-fault`); 0: never.
    pub fault_late_ticks: u32,
    /// Kernel mappings, in the order they should be created.
    pub mappings: [Mapping; MAX_KERNEL_MAPPINGS],
    /// Filled by the loader.
    pub loader: LoaderFilled,
    /// Number of valid [`ReplicaSpec::irq_routes`].
    pub irq_route_count: u32,
    /// Reserved, zero.
    pub reserved1: u32,
    /// Device interrupts this replica owns.
    pub irq_routes: [IrqRoute; MAX_IRQ_ROUTES],
    /// The initialiser, if the image carries one (`mem_size == 0` otherwise).
    pub initialiser: ProgramPart,
    /// Offset in `ram` of the initialiser's boot program (`crate::bootprog`), placed by
    /// the loader like a PD image; 0 with `boot_program_size == 0` when there is none.
    pub boot_program_offset: u64,
    /// Its bytes.
    pub boot_program_size: u64,
    /// The replicas that are restarted when they stop (bit i = replica i; `<replica
    /// restart="true">`), the same in every replica's spec: a surviving kernel restarts them.
    pub restart_mask: u32,
    /// Self-test and fault injection: the replica tick at which the replica's kernel hangs on
    /// purpose (its timer stopped, interrupts still taken), to show its peers report it hung
    /// and stop it (`--inject-hang`); 0: never.
    pub hang_late_ticks: u32,
    /// Per replica: how long its tick count may stay frozen, in milliseconds, before the
    /// others report it hung (`<replica hung_after_ms>`); 0: never checked.
    pub hung_after_ms: [u32; MAX_REPLICAS],
    /// The cross-replica channel words this replica receives on (bit w = word w of
    /// `shared::pd_words`), which a restart of it clears.
    pub words_in: u64,
    /// The cross-replica channel words this replica sends on, which a restart of it clears.
    pub words_out: u64,
    /// Per cross-replica channel word (below 64): every bit its sender may set, the
    /// receiving PD's ids of its channels to the sending replica. A restarted kernel rings
    /// these bits in the words it sends on, so that each PD with a channel to it is notified
    /// on that channel and learns of the restart (`words_out`).
    pub word_bits: [u64; 64],
    /// Per cross-replica channel word (below 64): the index of the replica that receives on
    /// it ([`NO_REPLICA`] for a word that does not exist). A restarted kernel rings each word
    /// it sends on with its `word_bits`, through the receiving replica's doorbell.
    pub word_receiver: [u8; 64],
}

/// [`ReplicaSpec::word_receiver`] of a word that does not exist.
pub const NO_REPLICA: u8 = u8::MAX;

const _: () = assert!(offset_of!(ReplicaSpec, core_mask) == 32);
const _: () = assert!(offset_of!(ReplicaSpec, ram) == 48);
const _: () = assert!(offset_of!(ReplicaSpec, boot_program_offset) == 1984);
const _: () = assert!(offset_of!(ReplicaSpec, restart_mask) == 2000);
const _: () = assert!(offset_of!(ReplicaSpec, words_out) == 2048);
const _: () = assert!(size_of::<ReplicaSpec>() == SPEC_SIZE);
const _: () = assert!(size_of::<ReplicaSpec>().is_multiple_of(8));

/// Why a spec was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Fewer bytes than a spec.
    Truncated,
    /// Wrong magic.
    BadMagic,
    /// Unknown version.
    UnsupportedVersion(u32),
    /// A field is out of range.
    BadField(&'static str),
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "boot spec truncated"),
            Self::BadMagic => write!(f, "boot spec has a bad magic"),
            Self::UnsupportedVersion(v) => write!(f, "boot spec version {v} is not supported"),
            Self::BadField(what) => write!(f, "boot spec field out of range: {what}"),
        }
    }
}

impl ReplicaSpec {
    /// An all-zero spec with magic, version and size set.
    pub fn new_zeroed() -> Self {
        let mut spec = <Self as zerocopy::FromZeros>::new_zeroed();
        spec.magic = SPEC_MAGIC;
        spec.version = SPEC_VERSION;
        spec.size = size_of::<Self>() as u32;
        spec
    }

    /// Reads and checks a spec from bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, SpecError> {
        let (spec, _) = Self::read_from_prefix(bytes).map_err(|_| SpecError::Truncated)?;
        spec.check()?;
        Ok(spec)
    }

    /// Checks the fields every reader relies on.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.magic != SPEC_MAGIC {
            return Err(SpecError::BadMagic);
        }
        if self.version != SPEC_VERSION {
            return Err(SpecError::UnsupportedVersion(self.version));
        }
        if self.size as usize != size_of::<Self>() {
            return Err(SpecError::BadField("size"));
        }
        if self.replica_count == 0 || self.replica_count as usize > MAX_REPLICAS {
            return Err(SpecError::BadField("replica_count"));
        }
        if self.replica >= self.replica_count {
            return Err(SpecError::BadField("replica"));
        }
        if self.core_mask == 0 || self.core_mask >> MAX_CORES != 0 {
            return Err(SpecError::BadField("core_mask"));
        }
        if self.mapping_count as usize > MAX_KERNEL_MAPPINGS {
            return Err(SpecError::BadField("mapping_count"));
        }
        if self.irq_route_count as usize > MAX_IRQ_ROUTES {
            return Err(SpecError::BadField("irq_route_count"));
        }
        for route in self.irq_routes() {
            if route.intid < 32
                || route.intid >= 1020
                || route.core as usize >= MAX_CORES
                || self.core_mask & (1 << route.core) == 0
            {
                return Err(SpecError::BadField("irq route"));
            }
        }
        if self.tick_hz == 0 {
            return Err(SpecError::BadField("tick_hz"));
        }
        if !matches!(self.gic.version, 2 | 3) {
            return Err(SpecError::BadField("gic.version"));
        }
        if self.gic.doorbell_sgi > 15 || self.gic.stop_sgi > 15 {
            return Err(SpecError::BadField("gic SGI numbers"));
        }
        if self.free_offset > self.ram.size
            || self.tables_offset.saturating_add(self.tables_size) > self.ram.size
            || (self.boot_program_size != 0
                && (self.boot_program_offset < self.free_offset
                    || !self.boot_program_offset.is_multiple_of(8)
                    || self
                        .boot_program_offset
                        .checked_add(self.boot_program_size)
                        .is_none_or(|end| end > self.ram.size)))
        {
            return Err(SpecError::BadField("ram layout"));
        }
        Ok(())
    }

    /// The valid mappings.
    pub fn mappings(&self) -> &[Mapping] {
        let n = (self.mapping_count as usize).min(MAX_KERNEL_MAPPINGS);
        self.mappings.get(..n).unwrap_or_default()
    }

    /// The valid mappings, to change.
    pub fn mappings_mut(&mut self) -> &mut [Mapping] {
        let n = (self.mapping_count as usize).min(MAX_KERNEL_MAPPINGS);
        self.mappings.get_mut(..n).unwrap_or_default()
    }

    /// The valid interrupt routes.
    pub fn irq_routes(&self) -> &[IrqRoute] {
        let n = (self.irq_route_count as usize).min(MAX_IRQ_ROUTES);
        self.irq_routes.get(..n).unwrap_or_default()
    }

    /// The first (lowest-numbered) core of a replica, if the replica exists.
    pub fn first_core_of(&self, replica: u32) -> Option<u32> {
        let mask = *self.replica_cores.get(replica as usize)?;
        (mask != 0).then(|| mask.trailing_zeros())
    }

    /// This replica's first core: the one that sets the replica up.
    pub fn primary_core(&self) -> u32 {
        self.core_mask.trailing_zeros()
    }

    /// Whether the given flag is set.
    pub const fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Whether replica `replica` is restarted when it stops (`restart="true"`).
    pub fn restarts(&self, replica: usize) -> bool {
        replica < (self.replica_count as usize).min(MAX_REPLICAS)
            && u32::try_from(replica).is_ok_and(|r| self.restart_mask & (1 << r) != 0)
    }

    /// How long replica `replica`'s tick count may stay frozen before it is reported hung, in
    /// milliseconds (`None`: never checked).
    pub fn hung_after_ms(&self, replica: usize) -> Option<u32> {
        self.hung_after_ms
            .get(replica)
            .copied()
            .filter(|&ms| ms != 0 && replica < self.replica_count as usize)
    }
}
