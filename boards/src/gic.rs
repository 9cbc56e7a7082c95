//! Arm Generic Interrupt Controller drivers, v2 (GIC-400) and v3.
//!
//! Division of work, so that no replica takes a lock another replica holds: the loader sets
//! up the distributor once, before any replica runs ([`Gic::init_distributor`]); afterwards
//! each core touches only its own banked or per-core state (its redistributor or CPU
//! interface) and the write-one-to-set/clear distributor registers, which need no lock.
//!
//! Who owns the interrupt groups depends on the security state the GIC shows Atoll
//! ([`Security`]). Under QEMU without firmware the GIC has a single security state (GICv3
//! `GICD_CTLR.DS` reads 1; QEMU's GICv2s lack the Security Extensions), and Atoll chooses
//! every group itself, as it always has. On a board booted through TF-A Atoll runs
//! Non-secure: the group registers, `GICR_WAKER` and the Secure half of `GICD_CTLR` belong
//! to the firmware, which has already put the Non-secure shared, private and software
//! interrupts in Non-secure Group 1; Atoll then writes only what a Non-secure access may
//! (Non-secure accesses to Secure-only registers are ignored by the hardware, so writing them
//! would not fail, but it would be wrong to rely on that) and enables only Non-secure
//! Group 1. The decisions are host-tested against a model of both kinds of GIC
//! (`tests` below); real TF-A boards are where the Non-secure path runs.

/// Register access to one register frame: volatile device accesses ([`Mmio`]) on the
/// machine, a model of the device in host tests.
pub trait Registers: Copy {
    /// Reads the 32-bit register at byte `offset`.
    fn read32(self, offset: usize) -> u32;
    /// Writes the 32-bit register at byte `offset`.
    fn write32(self, offset: usize, value: u32);
    /// Reads the 64-bit register at byte `offset`.
    fn read64(self, offset: usize) -> u64;
    /// Writes the 64-bit register at byte `offset`.
    fn write64(self, offset: usize, value: u64);
    /// The frame starting at byte `offset` of this one.
    fn at(self, offset: usize) -> Self;
}

/// A frame of device registers at a mapped address.
#[derive(Clone, Copy, Debug)]
pub struct Mmio(usize);

impl Mmio {
    /// The register at byte `offset`, as a pointer: the frame's address becomes a pointer
    /// first and the offset is added to that, so that the compiler addresses a register
    /// of a sub-frame (`at`) with the offset as an immediate.
    #[inline(always)]
    fn register<T>(self, offset: usize) -> *mut T {
        (self.0 as *mut u8).wrapping_add(offset).cast::<T>()
    }
}

impl Registers for Mmio {
    #[inline(always)]
    fn read32(self, offset: usize) -> u32 {
        // SAFETY: `Gic::new`'s contract: the frame is mapped as device memory, and every
        // offset the driver uses lies inside it (checked where it is computed).
        unsafe { self.register::<u32>(offset).read_volatile() }
    }
    #[inline(always)]
    fn write32(self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { self.register::<u32>(offset).write_volatile(value) }
    }
    #[inline(always)]
    fn read64(self, offset: usize) -> u64 {
        // SAFETY: as in `read32`; the 64-bit registers used are 8-byte aligned.
        unsafe { self.register::<u64>(offset).read_volatile() }
    }
    #[inline(always)]
    fn write64(self, offset: usize, value: u64) {
        // SAFETY: as in `read64`.
        unsafe { self.register::<u64>(offset).write_volatile(value) }
    }
    #[inline(always)]
    fn at(self, offset: usize) -> Self {
        Mmio(self.0.wrapping_add(offset))
    }
}

// Distributor registers (the parts v2 and v3 share, v2's SGIR and ITARGETSR, v3's IROUTER).
const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ICPENDR: usize = 0x0280;
const GICD_CPENDSGIR: usize = 0x0F10;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ITARGETSR: usize = 0x0800;
const GICD_ICFGR: usize = 0x0C00;
const GICD_SGIR: usize = 0x0F00;
const GICD_IROUTER: usize = 0x6000;
// GICv2 CPU interface.
const GICC_CTLR: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_BPR: usize = 0x0008;
const GICC_IAR: usize = 0x000C;
const GICC_EOIR: usize = 0x0010;
const GICC_APR: usize = 0x00D0;
const GICC_NSAPR: usize = 0x00E0;
// GICv3 redistributor: the RD_base frame...
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
// ...then the SGI_base frame, 64 KiB after it.
const SGI_FRAME_OFFSET: usize = 0x1_0000;
const GICR_IGROUPR0: usize = 0x0080;
const GICR_ISENABLER0: usize = 0x0100;
const GICR_ICENABLER0: usize = 0x0180;
const GICR_ICPENDR0: usize = 0x0280;
const GICR_ICACTIVER0: usize = 0x0380;
const GICR_IPRIORITYR: usize = 0x0400;
const REDISTRIBUTOR_STRIDE: usize = 0x2_0000;

const GICD_CTLR_RWP: u32 = 1 << 31;
/// `GICD_CTLR.DS` (GICv3): reads 1 when the GIC has a single security state.
const GICD_CTLR_DS: u32 = 1 << 6;
/// One security state (GICv3, DS = 1): enable affinity routing, Group 1 and Group 0.
const GICD_CTLR_ENABLE_V3: u32 = (1 << 4) | (1 << 1) | (1 << 0);
/// GICv3 `GICD_CTLR` as a Non-secure access sees it with two security states: bit 4 is
/// `ARE_NS` (affinity routing for the Non-secure state, which TF-A turns on) and, with
/// `ARE_NS` set, bit 1 is `EnableGrp1A`, the Non-secure Group 1 enable (bit 0 is then
/// RES0); nothing else is writable from Non-secure.
const GICD_CTLR_NS_ARE_NS: u32 = 1 << 4;
const GICD_CTLR_NS_ENABLE_GRP1A: u32 = 1 << 1;
/// GICv2 `GICD_CTLR` and `GICC_CTLR` bit 0: the Group 0 enable with one security state (or
/// a Secure access), and the Non-secure Group 1 enable in a Non-secure access's view.
const GIC_V2_ENABLE: u32 = 1;
/// `GICD_TYPER.SecurityExtn` (GICv2): the GIC implements the Security Extensions.
const GICD_TYPER_SECURITY_EXTN: u32 = 1 << 10;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_TYPER_LAST: u64 = 1 << 4;
/// Priority given to every interrupt Atoll enables (the middle of the range; a Non-secure
/// access to a two-security-state GIC sees and writes its own view of priorities, in which
/// 0x80 reads back as written).
const DEFAULT_PRIORITY: u8 = 0x80;
/// First shared peripheral interrupt.
const FIRST_SPI: u32 = 32;
/// INTIDs at or above this are special (spurious and friends).
const SPECIAL_INTID: u32 = 1020;
/// Polls of `GICR_WAKER` or `GICD_CTLR.RWP` before giving up.
const SPIN_LIMIT: u32 = 1_000_000;

/// Offset of `GICD_PIDR2` in a GICv2 distributor (its 4 KiB frame); in a GICv3 one this
/// word is reserved, read as zero (QEMU's `arm_gicv3_dist.c` answers it so, too).
const GICD_PIDR2_V2: usize = 0xFE8;
/// Offset of `GICD_PIDR2` in a GICv3 or GICv4 distributor (its 64 KiB frame).
const GICD_PIDR2_V3: usize = 0xFFE8;

/// The architecture version the distributor at `distributor` reports (`GICD_PIDR2.ArchRev`,
/// bits 7:4: 2 for GICv2, 3 for GICv3, 4 for GICv4, 1 for GICv1), or 0 when neither place
/// holds one. It reads where a GICv2 keeps the register first, which is harmless on a
/// GICv3, and then, unless that found a GICv2 and if `frame` (the bytes of distributor
/// registers there may be) reaches it, where a GICv3 keeps it: reading there on a GICv2,
/// whose distributor has 4 KiB of registers, could fault.
///
/// # Safety
///
/// `frame` bytes from `distributor` must be a distributor's registers, mapped as device
/// memory (or identity-mapped with the MMU off).
pub unsafe fn arch_version(distributor: usize, frame: usize) -> u32 {
    let read = |offset: usize| {
        // SAFETY: the caller's contract: `offset` lies inside the mapped frame (checked
        // below for the GICv3 offset); an ID register read has no side effect.
        let pidr2 = unsafe { ((distributor.wrapping_add(offset)) as *const u32).read_volatile() };
        (pidr2 >> 4) & 0xF
    };
    let v2 = read(GICD_PIDR2_V2);
    if v2 != 0 || frame < GICD_PIDR2_V3.wrapping_add(4) {
        return v2;
    }
    read(GICD_PIDR2_V3)
}

/// The security state the GIC shows Atoll, which decides who owns the interrupt groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// One security state as far as Atoll can tell: a GICv3 whose `GICD_CTLR.DS` reads 1,
    /// or a GICv2 whose group registers Atoll can write (no Security Extensions, as in
    /// QEMU's). Atoll puts its interrupts in one group and enables it itself: Group 1 on a
    /// GICv3, Group 0 on a GICv2 (which, with `GICC_CTLR.FIQEn` clear, a GICv2 signals as
    /// IRQ and acknowledges through `GICC_IAR`).
    Single,
    /// Non-secure, under Secure firmware: interrupts are Non-secure Group 1, configured by the
    /// firmware; Atoll enables that group and never writes a Secure-only register.
    NonSecure,
}

/// Why set-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// No redistributor frame answers to this core's affinity.
    NoRedistributor,
    /// The redistributor did not wake up: `GICR_WAKER.ProcessorSleep` is set and cannot be
    /// cleared from here (the firmware should have woken it), or `ChildrenAsleep` stayed set.
    RedistributorAsleep,
    /// A GICv3 seen from Non-secure has affinity routing off for the Non-secure state
    /// (`GICD_CTLR.ARE_NS` reads 0): the firmware left the GIC in its legacy mode, which
    /// Atoll does not drive.
    AffinityRoutingOff,
    /// `GICD_CTLR.RWP` never cleared after a write.
    DistributorBusy,
}

impl GicError {
    /// What went wrong, in words.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NoRedistributor => "no redistributor answers to this core's affinity",
            Self::RedistributorAsleep => {
                "the redistributor stays asleep (GICR_WAKER), which firmware should have woken"
            }
            Self::AffinityRoutingOff => {
                "the GICv3 has affinity routing off for the Non-secure state (GICD_CTLR.ARE_NS \
                 reads 0); the firmware must turn it on"
            }
            Self::DistributorBusy => "the distributor never finished a write (GICD_CTLR.RWP)",
        }
    }
}

/// An acknowledged interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Interrupt id.
    pub intid: u32,
    raw: u32,
}

/// A GIC: its distributor, and its CPU interface (v2) or redistributors (v3), reached
/// through `R`.
#[derive(Clone, Copy, Debug)]
pub struct Gic<R: Registers = Mmio> {
    version: u32,
    dist: R,
    cpu: R,
    cpu_size: usize,
    security: Security,
}

impl Gic<Mmio> {
    /// A driver for a GIC of `version` (2 or 3) with the distributor mapped at `distributor`
    /// and the CPU interface (v2) or redistributors (v3, `cpu_size` bytes) at `cpu`. It
    /// finds the GIC's [`Security`] state at once: on a GICv3 by reading `GICD_CTLR.DS`; on
    /// a GICv2 with the Security Extensions by writing one of the calling core's own banked
    /// group bits and reading it back (a Non-secure access cannot change it), then putting
    /// it back.
    ///
    /// # Safety
    ///
    /// The addresses must map the device's registers as device memory for as long as the
    /// driver is used, and no other code may set up the calling core's interface meanwhile.
    pub unsafe fn new(version: u32, distributor: usize, cpu: usize, cpu_size: usize) -> Self {
        Gic::over(version, Mmio(distributor), Mmio(cpu), cpu_size)
    }
}

impl<R: Registers> Gic<R> {
    /// The driver over register frames `dist` and `cpu` (`cpu_size` bytes), with its
    /// security state probed.
    fn over(version: u32, dist: R, cpu: R, cpu_size: usize) -> Self {
        let mut gic = Self {
            version,
            dist,
            cpu,
            cpu_size,
            security: Security::Single,
        };
        gic.security = gic.probe_security();
        gic
    }

    /// The architecture version this driver speaks.
    pub const fn version(&self) -> u32 {
        self.version
    }

    /// The security state found when the driver was made.
    pub const fn security(&self) -> Security {
        self.security
    }

    fn probe_security(&self) -> Security {
        let d = self.dist;
        if self.version == 3 {
            // With two security states DS is a Secure-only bit that a Non-secure access
            // reads as 0 (and Atoll never runs Secure: an EL3 entry stops the loader).
            return if d.read32(GICD_CTLR) & GICD_CTLR_DS != 0 {
                Security::Single
            } else {
                Security::NonSecure
            };
        }
        if d.read32(GICD_TYPER) & GICD_TYPER_SECURITY_EXTN == 0 {
            return Security::Single;
        }
        // With the Security Extensions, GICD_IGROUPRn are Secure-only: a Non-secure access
        // reads 0 and its writes are ignored. Word 0 is banked per CPU interface, so this
        // touches only the calling core's SGI 0.
        let old = d.read32(GICD_IGROUPR);
        let flipped = old ^ 1;
        d.write32(GICD_IGROUPR, flipped);
        if d.read32(GICD_IGROUPR) == flipped {
            d.write32(GICD_IGROUPR, old);
            Security::Single
        } else {
            Security::NonSecure
        }
    }

    /// The value of a 32-bit group register word for interrupts Atoll owns, when it owns the
    /// groups: Group 1 on a GICv3, Group 0 on a GICv2.
    const fn owned_group_word(&self) -> u32 {
        if self.version == 3 { u32::MAX } else { 0 }
    }

    /// The RD_base frame of the redistributor of the core whose MPIDR is `mpidr`.
    fn redistributor(&self, mpidr: u64) -> Result<R, GicError> {
        let wanted = affinity_value(mpidr);
        let frames = self.cpu_size / REDISTRIBUTOR_STRIDE;
        for index in 0..frames {
            // Inside the `cpu_size` bytes of the frame: no overflow.
            let rd = self.cpu.at(index.wrapping_mul(REDISTRIBUTOR_STRIDE));
            let typer = rd.read64(GICR_TYPER);
            if (typer >> 32) as u32 == wanted {
                return Ok(rd);
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
        }
        Err(GicError::NoRedistributor)
    }

    /// Global set-up, done once by the loader before any replica runs: every shared
    /// interrupt disabled, then the distributor enabled. With a single security state the
    /// distributor is first disabled and every shared interrupt put in Atoll's group; seen
    /// from Non-secure the groups and the Secure enables are the firmware's, and only the
    /// Non-secure Group 1 enable is set (the distributor stays on throughout).
    pub fn init_distributor(&self) -> Result<(), GicError> {
        let d = self.dist;
        let single = self.security == Security::Single;
        if self.version == 3 && !single && d.read32(GICD_CTLR) & GICD_CTLR_NS_ARE_NS == 0 {
            return Err(GicError::AffinityRoutingOff);
        }
        if single {
            d.write32(GICD_CTLR, 0);
            self.wait_for_distributor()?;
        }
        let group = self.owned_group_word();
        // Word 0 (SGIs and PPIs) is per core: each core sets its own up.
        for n in (FIRST_SPI / 32) as usize..(self.lines() / 32) as usize {
            // At most 32 words: inside the distributor.
            let word = n.wrapping_mul(4);
            // A Non-secure write here disables only the Non-secure interrupts.
            d.write32(GICD_ICENABLER.wrapping_add(word), u32::MAX);
            if single {
                d.write32(GICD_IGROUPR.wrapping_add(word), group);
            }
        }
        let enable = match (self.version, single) {
            (3, true) => GICD_CTLR_ENABLE_V3,
            (3, false) => GICD_CTLR_NS_ARE_NS | GICD_CTLR_NS_ENABLE_GRP1A,
            _ => GIC_V2_ENABLE,
        };
        d.write32(GICD_CTLR, enable);
        self.wait_for_distributor()
    }

    /// Interrupt lines the distributor implements (`GICD_TYPER.ITLinesNumber`), at most
    /// 1024.
    fn lines(&self) -> u32 {
        ((self.dist.read32(GICD_TYPER) & 0x1F).wrapping_add(1)).wrapping_mul(32)
    }

    fn wait_for_distributor(&self) -> Result<(), GicError> {
        if self.version == 3 {
            spin_until(|| self.dist.read32(GICD_CTLR) & GICD_CTLR_RWP == 0)
                .ok_or(GicError::DistributorBusy)?;
        }
        Ok(())
    }

    /// Routes shared interrupt `intid` to one core (by MPIDR on v3, by CPU interface number
    /// `core_index` on v2), level- or edge-triggered, default priority, in Atoll's group
    /// when Atoll owns the groups; it stays disabled until its owner enables it. Done by the
    /// loader before any replica runs. Returns whether the distributor took the route and
    /// the priority (read back): seen from Non-secure, an interrupt the firmware kept Secure
    /// reads as zero there, and is refused.
    pub fn route_spi(&self, intid: u32, mpidr: u64, core_index: u32, edge: bool) -> bool {
        if !(FIRST_SPI..self.lines().min(SPECIAL_INTID)).contains(&intid) {
            return false;
        }
        let d = self.dist;
        // Below 1020: every register offset below lies inside the distributor.
        let i = intid as usize;
        let bit = 1u32 << (intid % 32);
        d.write32(word_of(GICD_ICENABLER, i, 32), bit);
        if self.security == Security::Single {
            let group = word_of(GICD_IGROUPR, i, 32);
            let others = d.read32(group) & !bit;
            d.write32(group, others | (self.owned_group_word() & bit));
        }
        let cfg = word_of(GICD_ICFGR, i, 16);
        let shift = (intid % 16).wrapping_mul(2);
        let value = (d.read32(cfg) & !(0b11 << shift)) | (u32::from(edge) << (shift | 1));
        d.write32(cfg, value);
        let prio = word_of(GICD_IPRIORITYR, i, 4);
        let pshift = (intid % 4).wrapping_mul(8);
        let value = (d.read32(prio) & !(0xFF << pshift)) | (u32::from(DEFAULT_PRIORITY) << pshift);
        d.write32(prio, value);
        let prio_taken = (d.read32(prio) >> pshift) & 0xFF == u32::from(DEFAULT_PRIORITY);
        let route_taken = if self.version == 3 {
            let affinity = mpidr & 0xFF_00FF_FFFF;
            let route = GICD_IROUTER.wrapping_add(i.wrapping_mul(8));
            d.write64(route, affinity);
            d.read64(route) == affinity
        } else {
            let target = word_of(GICD_ITARGETSR, i, 4);
            let tshift = (intid % 4).wrapping_mul(8);
            let cpu = 1u32 << (core_index & 7);
            d.write32(
                target,
                (d.read32(target) & !(0xFF << tshift)) | (cpu << tshift),
            );
            (d.read32(target) >> tshift) & 0xFF == cpu
        };
        prio_taken && route_taken
    }

    /// Clears shared interrupt `intid`'s pending and active states (nothing for another id):
    /// the loader's restart path does it for the interrupts of the replica it places again,
    /// whose handler may have stopped half-way.
    pub fn clear_spi(&self, intid: u32) {
        if !(FIRST_SPI..self.lines().min(SPECIAL_INTID)).contains(&intid) {
            return;
        }
        let i = intid as usize;
        let bit = 1u32 << (intid % 32);
        // Below 1020: inside the distributor.
        self.dist.write32(word_of(GICD_ICPENDR, i, 32), bit);
        self.dist.write32(word_of(GICD_ICACTIVER, i, 32), bit);
    }

    /// Enables (unmasks) or disables interrupt `intid`: a shared one at the distributor, an
    /// SGI or PPI on the calling core, whose MPIDR is `mpidr`.
    pub fn set_enabled(&self, intid: u32, mpidr: u64, enabled: bool) -> Result<(), GicError> {
        if intid < FIRST_SPI {
            self.set_local_enabled(mpidr, intid, enabled)
        } else {
            self.set_spi_enabled(intid, enabled);
            Ok(())
        }
    }

    /// Enables (unmasks) or disables a shared interrupt at the distributor. Ids outside
    /// the shared range are ignored.
    fn set_spi_enabled(&self, intid: u32, enabled: bool) {
        if !(FIRST_SPI..SPECIAL_INTID).contains(&intid) {
            return;
        }
        let bank = if enabled {
            GICD_ISENABLER
        } else {
            GICD_ICENABLER
        };
        // Below 1020: inside the distributor.
        let reg = word_of(bank, intid as usize, 32);
        self.dist.write32(reg, 1 << (intid % 32));
    }

    /// Per-core set-up on the calling core (`mpidr` is its own): wake its redistributor if
    /// it sleeps, or enable its CPU interface; disable its SGIs and PPIs, put them in Atoll's
    /// group if Atoll owns the groups, give them the default priority, unmask all priorities.
    pub fn init_cpu(&self, mpidr: u64) -> Result<(), GicError> {
        let single = self.security == Security::Single;
        let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        if self.version == 3 {
            let rd = self.redistributor(mpidr)?;
            wake(rd)?;
            let sgi = rd.at(SGI_FRAME_OFFSET);
            sgi.write32(GICR_ICENABLER0, u32::MAX);
            if single {
                sgi.write32(GICR_IGROUPR0, u32::MAX);
            }
            for n in 0..8 {
                sgi.write32(word_of(GICR_IPRIORITYR, n, 1), prio);
            }
            // A core restarted after its replica stopped may have left an interrupt active
            // (a fault inside a handler) or pending (a stop request): the CPU interface's
            // state was reset with the core, the redistributor's was not. What a pending
            // doorbell announced is in the shared words, which the kernel reads at start.
            sgi.write32(GICR_ICPENDR0, u32::MAX);
            sgi.write32(GICR_ICACTIVER0, u32::MAX);
            sysreg::init_cpu_interface();
        } else {
            let d = self.dist;
            d.write32(GICD_ICENABLER, u32::MAX);
            // A core restarted after its replica stopped may have left interrupts active
            // (a fault inside a handler), and the CPU interface's active priorities with them,
            // or pending (a stop request): a GICv2 keeps all of it across a core's reset.
            // Zeroing the active priority registers (the one value other than a saved one
            // the architecture allows) makes the interface idle; then this core's SGIs and
            // PPIs are deactivated and their pending states cleared (its shared interrupts
            // are its replica's, which the loader clears on a restart). What a pending
            // doorbell announced is in the shared words, which the kernel reads at start.
            for n in 0..4 {
                self.cpu.write32(word_of(GICC_APR, n, 1), 0);
                self.cpu.write32(word_of(GICC_NSAPR, n, 1), 0);
                d.write32(word_of(GICD_CPENDSGIR, n, 1), u32::MAX);
            }
            d.write32(GICD_ICPENDR, u32::MAX);
            d.write32(GICD_ICACTIVER, u32::MAX);
            if single {
                d.write32(GICD_IGROUPR, 0);
            }
            for n in 0..8 {
                d.write32(word_of(GICD_IPRIORITYR, n, 1), prio);
            }
            let c = self.cpu;
            c.write32(GICC_PMR, 0xFF);
            c.write32(GICC_BPR, 0);
            // Group 0 with one security state, Non-secure Group 1 in a Non-secure view: the
            // group Atoll's interrupts are in, either way.
            c.write32(GICC_CTLR, GIC_V2_ENABLE);
        }
        Ok(())
    }

    /// Enables an SGI or PPI (`intid < 32`) on the calling core.
    pub fn enable_local(&self, mpidr: u64, intid: u32) -> Result<(), GicError> {
        self.set_local_enabled(mpidr, intid, true)
    }

    /// Enables (unmasks) or disables an SGI or PPI (`intid < 32`) on the calling core, whose
    /// MPIDR is `mpidr` (GICv2 banks these registers per core).
    fn set_local_enabled(&self, mpidr: u64, intid: u32, enabled: bool) -> Result<(), GicError> {
        let bit = 1u32 << (intid % 32);
        if self.version == 3 {
            let sgi = self.redistributor(mpidr)?.at(SGI_FRAME_OFFSET);
            if enabled {
                sgi.write32(GICR_ISENABLER0, bit);
            } else {
                sgi.write32(GICR_ICENABLER0, bit);
            }
        } else if enabled {
            self.dist.write32(GICD_ISENABLER, bit);
        } else {
            self.dist.write32(GICD_ICENABLER, bit);
        }
        Ok(())
    }

    /// Acknowledges the highest-priority pending interrupt, if any. Memory the sender wrote
    /// before raising an SGI is visible after this returns (a `dmb` follows the read).
    pub fn acknowledge(&self) -> Option<Acked> {
        let raw = if self.version == 3 {
            sysreg::read_iar1()
        } else {
            self.cpu.read32(GICC_IAR)
        };
        sysreg::barrier_after_acknowledge();
        let intid = raw & 0x3FF;
        (intid < SPECIAL_INTID).then_some(Acked { intid, raw })
    }

    /// Signals the end of an acknowledged interrupt.
    pub fn end_of_interrupt(&self, acked: Acked) {
        if self.version == 3 {
            sysreg::write_eoir1(acked.raw);
        } else {
            self.cpu.write32(GICC_EOIR, acked.raw);
        }
    }

    /// Sends SGI `sgi` to one core, named by its MPIDR (v3) and core index (v2 target list).
    /// Memory written before the call is visible to the target when it takes the interrupt
    /// (a `dsb` precedes the SGI).
    pub fn send_sgi(&self, sgi: u32, target_mpidr: u64, target_index: u32) {
        sysreg::barrier_before_sgi();
        if self.version == 3 {
            let aff0 = target_mpidr & 0xF;
            let aff1 = (target_mpidr >> 8) & 0xFF;
            let aff2 = (target_mpidr >> 16) & 0xFF;
            let aff3 = (target_mpidr >> 32) & 0xFF;
            let value = (aff3 << 48)
                | (aff2 << 32)
                | (u64::from(sgi & 0xF) << 24)
                | (aff1 << 16)
                | (1 << aff0);
            sysreg::write_sgi1r(value);
        } else {
            let targets = 1u32 << (target_index & 7);
            self.dist.write32(GICD_SGIR, (targets << 16) | (sgi & 0xF));
        }
    }
}

/// The register of a bank starting at `base` that holds interrupt `intid`'s field, with
/// `per_word` interrupts to a 32-bit word.
const fn word_of(base: usize, intid: usize, per_word: usize) -> usize {
    let index = match intid.checked_div(per_word) {
        Some(index) => index,
        None => 0,
    };
    base.wrapping_add(index.wrapping_mul(4))
}

/// Wakes the redistributor whose RD_base frame is `rd` if `GICR_WAKER.ProcessorSleep` says
/// it sleeps, and waits for its interface to the core to come up. Seen from Non-secure the
/// register belongs to the firmware (reads 0, ignores writes), which woke the redistributor
/// before starting the core: nothing is written then.
fn wake<R: Registers>(rd: R) -> Result<(), GicError> {
    let value = rd.read32(GICR_WAKER);
    if value & GICR_WAKER_PROCESSOR_SLEEP != 0 {
        rd.write32(GICR_WAKER, value & !GICR_WAKER_PROCESSOR_SLEEP);
        if rd.read32(GICR_WAKER) & GICR_WAKER_PROCESSOR_SLEEP != 0 {
            return Err(GicError::RedistributorAsleep);
        }
    }
    spin_until(|| rd.read32(GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0)
        .ok_or(GicError::RedistributorAsleep)
}

/// Polls `done` until it holds, at most [`SPIN_LIMIT`] times; `None` if it never did.
fn spin_until(mut done: impl FnMut() -> bool) -> Option<()> {
    for _ in 0..SPIN_LIMIT {
        if done() {
            return Some(());
        }
        core::hint::spin_loop();
    }
    None
}

/// MPIDR affinity as GICR_TYPER reports it: Aff3.Aff2.Aff1.Aff0.
const fn affinity_value(mpidr: u64) -> u32 {
    let aff0 = mpidr & 0xFF;
    let aff1 = (mpidr >> 8) & 0xFF;
    let aff2 = (mpidr >> 16) & 0xFF;
    let aff3 = (mpidr >> 32) & 0xFF;
    ((aff3 << 24) | (aff2 << 16) | (aff1 << 8) | aff0) as u32
}

/// GICv3 CPU interface system registers.
mod sysreg {
    /// The same writes serve both security states: at Non-secure EL1 under TF-A,
    /// `ICC_IGRPEN1_EL1` is the Non-secure Group 1 enable, and `ICC_PMR_EL1`, `ICC_BPR1_EL1`
    /// and `ICC_CTLR_EL1` are their Non-secure views (EL3 may keep some of `ICC_CTLR_EL1`'s
    /// bits read-only, which then ignore the write). `ICC_SRE_EL1` is writable because EL3
    /// (`ICC_SRE_EL3.Enable`, TF-A's doing) and EL2 (`ICC_SRE_EL2.Enable`, the loader's
    /// `drop_to_el1`) let EL1 use the system registers.
    #[cfg(target_arch = "aarch64")]
    pub fn init_cpu_interface() {
        // SAFETY: writes to this core's own GIC CPU interface registers; system-register
        // access was enabled for EL1 by the loader (ICC_SRE_EL2) when entered at EL2.
        unsafe {
            core::arch::asm!(
                "mrs {t}, S3_0_C12_C12_5", // ICC_SRE_EL1
                "orr {t}, {t}, #1",
                "msr S3_0_C12_C12_5, {t}",
                "isb",
                "mov {t}, #0xFF",
                "msr S3_0_C4_C6_0, {t}",   // ICC_PMR_EL1: unmask all priorities
                "msr S3_0_C12_C12_3, xzr", // ICC_BPR1_EL1
                "msr S3_0_C12_C12_4, xzr", // ICC_CTLR_EL1: EOI also deactivates
                "mov {t}, #1",
                "msr S3_0_C12_C12_7, {t}", // ICC_IGRPEN1_EL1
                "isb",
                t = out(reg) _,
            );
        }
    }

    #[cfg(target_arch = "aarch64")]
    pub fn read_iar1() -> u32 {
        let v: u64;
        // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt on this core only.
        unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) v) };
        v as u32
    }

    #[cfg(target_arch = "aarch64")]
    pub fn write_eoir1(raw: u32) {
        // SAFETY: ends an interrupt this core acknowledged.
        unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", in(reg) u64::from(raw)) };
    }

    #[cfg(target_arch = "aarch64")]
    pub fn write_sgi1r(value: u64) {
        // SAFETY: generates an SGI; has no effect on this core's state.
        unsafe { core::arch::asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value) };
    }

    #[cfg(target_arch = "aarch64")]
    pub fn barrier_before_sgi() {
        // SAFETY: a barrier; it only orders this core's memory accesses.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    }

    #[cfg(target_arch = "aarch64")]
    pub fn barrier_after_acknowledge() {
        // SAFETY: a barrier; it only orders this core's memory accesses.
        unsafe { core::arch::asm!("dmb ish", options(nostack, preserves_flags)) };
    }

    // Host builds (tests of the board tables) never drive a GIC.
    #[cfg(not(target_arch = "aarch64"))]
    pub fn barrier_before_sgi() {}
    #[cfg(not(target_arch = "aarch64"))]
    pub fn barrier_after_acknowledge() {}
    #[cfg(not(target_arch = "aarch64"))]
    pub fn init_cpu_interface() {}
    #[cfg(not(target_arch = "aarch64"))]
    pub fn read_iar1() -> u32 {
        1023
    }
    #[cfg(not(target_arch = "aarch64"))]
    pub fn write_eoir1(_raw: u32) {}
    #[cfg(not(target_arch = "aarch64"))]
    pub fn write_sgi1r(_value: u64) {}
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "host tests")]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    /// A distributor's 64 KiB of registers, all zero but `GICD_PIDR2` at `offset`.
    fn frame_with_pidr2(offset: usize, pidr2: u32) -> Vec<u32> {
        let mut frame = vec![0u32; 0x1_0000 / 4];
        frame[offset / 4] = pidr2;
        frame
    }

    #[test]
    fn the_architecture_version_is_read_where_each_version_keeps_it() {
        // The values QEMU's GIC models give (hw/intc/arm_gic.c, gicv3_internal.h).
        let v2 = frame_with_pidr2(0xFE8, 0x2B);
        let v3 = frame_with_pidr2(0xFFE8, 0x3B);
        let v4 = frame_with_pidr2(0xFFE8, 0x4B);
        let version = |frame: &Vec<u32>, size: usize| {
            // SAFETY: `size` bytes of the vector stand for the registers.
            unsafe { super::arch_version(frame.as_ptr() as usize, size) }
        };
        assert_eq!(version(&v2, 0x1000), 2);
        assert_eq!(version(&v2, 0x1_0000), 2);
        assert_eq!(version(&v3, 0x1_0000), 3);
        assert_eq!(version(&v4, 0x1_0000), 4);
        // A 4 KiB frame is never read at the GICv3 offset.
        assert_eq!(version(&v3, 0x1000), 0);
        assert_eq!(version(&frame_with_pidr2(0, 0), 0x1_0000), 0);
    }

    #[test]
    fn affinity_packs_like_gicr_typer() {
        assert_eq!(super::affinity_value(0x0000_0001_0002_0304), 0x0102_0304);
        assert_eq!(super::affinity_value(3), 3);
    }

    /// A model of one GIC register frame as Atoll's accesses see it: with a single security
    /// state every register is plain; seen from Non-secure under a GIC with two (the
    /// architecture's rules, as QEMU's `arm_gic.c`, `arm_gicv3_dist.c` and
    /// `arm_gicv3_redist.c` also model them), the group registers and `GICR_WAKER` read as
    /// zero and ignore writes, fields of interrupts the firmware kept Secure do too,
    /// priorities are in the Non-secure view, and `GICD_CTLR` shows only its Non-secure bits.
    /// Every write is logged, ignored or not.
    mod model {
        extern crate std;

        use core::cell::RefCell;
        use std::collections::BTreeMap;
        use std::vec::Vec;

        use super::super::*;

        const SGI_IGROUPR0: usize = SGI_FRAME_OFFSET + GICR_IGROUPR0;

        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Kind {
            Distributor,
            CpuInterface,
            Redistributors,
        }

        pub struct Frame {
            pub kind: Kind,
            pub version: u32,
            pub non_secure: bool,
            /// Interrupts the firmware kept Secure.
            pub secure: Vec<u32>,
            /// `GICR_WAKER.ProcessorSleep` cannot be cleared.
            pub stuck_asleep: bool,
            pub regs: RefCell<BTreeMap<usize, u64>>,
            pub writes: RefCell<Vec<(usize, u64)>>,
        }

        impl Frame {
            pub fn new(kind: Kind, version: u32, non_secure: bool) -> Self {
                Frame {
                    kind,
                    version,
                    non_secure,
                    secure: Vec::new(),
                    stuck_asleep: false,
                    regs: RefCell::new(BTreeMap::new()),
                    writes: RefCell::new(Vec::new()),
                }
            }

            pub fn set(&self, offset: usize, value: u64) {
                self.regs.borrow_mut().insert(offset, value);
            }

            fn get(&self, offset: usize) -> u64 {
                self.regs.borrow().get(&offset).copied().unwrap_or(0)
            }

            /// Offsets written, in order.
            pub fn written(&self) -> Vec<usize> {
                self.writes.borrow().iter().map(|&(o, _)| o).collect()
            }

            /// Values written at `offset`, in order.
            pub fn values_at(&self, offset: usize) -> Vec<u64> {
                let writes = self.writes.borrow();
                writes
                    .iter()
                    .filter(|w| w.0 == offset)
                    .map(|w| w.1)
                    .collect()
            }

            fn is_secure(&self, intid: usize) -> bool {
                self.non_secure && self.secure.contains(&(intid as u32))
            }

            /// Bits of a 32-interrupt bitmap word `n` a Non-secure access may touch.
            fn ns_mask(&self, n: usize) -> u32 {
                (0..32)
                    .filter(|b| !self.is_secure(n * 32 + b))
                    .fold(0, |m, b| m | 1 << b)
            }

            /// A word of one byte per interrupt (priorities, targets), from `first`.
            fn bytes(&self, first: usize, value: u32, priority: bool, write: bool) -> u32 {
                let old = self.get(first) as u32;
                let mut out = 0;
                for k in 0..4 {
                    let shift = k * 8;
                    let (new, kept) = ((value >> shift) & 0xFF, (old >> shift) & 0xFF);
                    let byte = if self.is_secure((first & 0x3FF) + k) {
                        if write { kept } else { 0 }
                    } else if !(priority && self.non_secure) {
                        if write { new } else { kept }
                    } else if write {
                        0x80 | (new >> 1)
                    } else {
                        (kept << 1) & 0xFF
                    };
                    out |= byte << shift;
                }
                out
            }

            fn access(&self, offset: usize, value: Option<u64>) -> u64 {
                let ns = self.non_secure;
                match (self.kind, offset) {
                    (Kind::Distributor, GICD_CTLR) => {
                        let old = self.get(offset) as u32;
                        let (readable, writable) = match (self.version, ns) {
                            (3, true) => (
                                GICD_CTLR_NS_ARE_NS | GICD_CTLR_NS_ENABLE_GRP1A,
                                GICD_CTLR_NS_ENABLE_GRP1A,
                            ),
                            (3, false) => (0x17, 0x17),
                            (_, true) => (1, 1),
                            _ => (3, 3),
                        };
                        let ds = if self.version == 3 && !ns {
                            GICD_CTLR_DS
                        } else {
                            0
                        };
                        match value {
                            Some(v) => {
                                let new = (old & !writable) | (v as u32 & writable);
                                self.set(offset, u64::from(new));
                                0
                            }
                            None => u64::from((old & readable) | ds),
                        }
                    }
                    (Kind::Distributor, o) if (GICD_IGROUPR..GICD_ISENABLER).contains(&o) && ns => {
                        0
                    }
                    (Kind::Distributor, o)
                        if (GICD_ISENABLER..GICD_ISENABLER + 0x100).contains(&o) =>
                    {
                        let n = (o & 0x7F) / 4;
                        let key = GICD_ISENABLER + n * 4;
                        let old = self.get(key) as u32;
                        if let Some(v) = value {
                            let v = v as u32 & self.ns_mask(n);
                            let new = if o < GICD_ICENABLER {
                                old | v
                            } else {
                                old & !v
                            };
                            self.set(key, u64::from(new));
                        }
                        u64::from(old & self.ns_mask(n))
                    }
                    (Kind::Distributor, o) if (GICD_IPRIORITYR..GICD_ICFGR).contains(&o) => {
                        let priority = o < GICD_ITARGETSR;
                        let v = value.unwrap_or(0) as u32;
                        let out = self.bytes(o, v, priority, value.is_some());
                        if value.is_some() {
                            self.set(o, u64::from(out));
                        }
                        u64::from(out)
                    }
                    (Kind::Distributor, o) if o >= GICD_IROUTER => {
                        if self.is_secure((o - GICD_IROUTER) / 8) {
                            return 0;
                        }
                        self.plain(o, value)
                    }
                    (Kind::Redistributors, o) => match o % REDISTRIBUTOR_STRIDE {
                        GICR_WAKER | SGI_IGROUPR0 if ns => 0,
                        GICR_WAKER => {
                            if let Some(v) = value {
                                let asleep =
                                    v as u32 & GICR_WAKER_PROCESSOR_SLEEP != 0 || self.stuck_asleep;
                                let bits = if asleep { 0b110 } else { 0 };
                                self.set(o, bits);
                            }
                            self.get(o)
                        }
                        _ => self.plain(o, value),
                    },
                    _ => self.plain(offset, value),
                }
            }

            fn plain(&self, offset: usize, value: Option<u64>) -> u64 {
                match value {
                    Some(v) => {
                        self.set(offset, v);
                        0
                    }
                    None => self.get(offset),
                }
            }
        }

        /// Part of a frame, from byte `base` (offsets in the log are from the frame's start).
        #[derive(Clone, Copy)]
        pub struct View<'a> {
            pub frame: &'a Frame,
            pub base: usize,
        }

        impl Registers for View<'_> {
            fn read32(self, offset: usize) -> u32 {
                self.frame.access(self.base + offset, None) as u32
            }
            fn write32(self, offset: usize, value: u32) {
                self.write64(offset, u64::from(value));
            }
            fn read64(self, offset: usize) -> u64 {
                self.frame.access(self.base + offset, None)
            }
            fn write64(self, offset: usize, value: u64) {
                let offset = self.base + offset;
                self.frame.writes.borrow_mut().push((offset, value));
                self.frame.access(offset, Some(value));
            }
            fn at(self, offset: usize) -> Self {
                View {
                    frame: self.frame,
                    base: self.base + offset,
                }
            }
        }
    }

    use super::{
        GICC_CTLR, GICD_CTLR, GICD_CTLR_ENABLE_V3, GICD_CTLR_NS_ARE_NS, GICD_CTLR_NS_ENABLE_GRP1A,
        GICD_ICENABLER, GICD_IGROUPR, GICD_ISENABLER, GICD_TYPER, GICD_TYPER_SECURITY_EXTN,
        GICR_IGROUPR0, GICR_TYPER, GICR_WAKER, Gic, GicError, REDISTRIBUTOR_STRIDE,
        SGI_FRAME_OFFSET, Security,
    };
    use model::{Frame, Kind, View};

    /// 192 lines, as on the ZCU102 and the i.MX 8M Plus: six words of 32.
    const TYPER_192_LINES: u64 = 5;

    /// A GICv3 distributor and four cores' redistributors (MPIDRs 0 to 3, the last one
    /// marked last), as `non_secure` accesses see them.
    fn gicv3(non_secure: bool) -> (Frame, Frame) {
        let d = Frame::new(Kind::Distributor, 3, non_secure);
        d.set(GICD_TYPER, TYPER_192_LINES);
        let r = Frame::new(Kind::Redistributors, 3, non_secure);
        for core in 0..4u64 {
            let frame = core as usize * REDISTRIBUTOR_STRIDE;
            let last = if core == 3 { 1 << 4 } else { 0 };
            r.set(frame + GICR_TYPER, core << 32 | last);
            // Asleep, as out of reset (QEMU's too); seen from Non-secure it reads 0.
            r.set(frame + GICR_WAKER, 0b110);
        }
        (d, r)
    }

    /// A GICv2 distributor (with the Security Extensions when `non_secure`) and a CPU
    /// interface.
    fn gicv2(non_secure: bool) -> (Frame, Frame) {
        let d = Frame::new(Kind::Distributor, 2, non_secure);
        let extn = if non_secure {
            GICD_TYPER_SECURITY_EXTN
        } else {
            0
        };
        d.set(GICD_TYPER, TYPER_192_LINES | u64::from(extn));
        (d, Frame::new(Kind::CpuInterface, 2, non_secure))
    }

    fn driver<'a>(version: u32, d: &'a Frame, c: &'a Frame) -> Gic<View<'a>> {
        let size = if version == 3 {
            4 * REDISTRIBUTOR_STRIDE
        } else {
            0x2000
        };
        let view = |frame| View { frame, base: 0 };
        Gic::over(version, view(d), view(c), size)
    }

    fn igroupr_writes(frame: &Frame) -> usize {
        frame
            .written()
            .iter()
            .filter(|&&o| (GICD_IGROUPR..GICD_ISENABLER).contains(&o))
            .count()
    }

    /// QEMU's GICv3s (`virt` without EL3, `imx8mp-evk`) have DS = 1: the loader programs
    /// the distributor register for register as Atoll always has (disable, every SPI
    /// disabled and in Group 1, enable both groups with affinity routing), and each core
    /// wakes its redistributor and puts its SGIs and PPIs in Group 1.
    #[test]
    fn a_gicv3_with_one_security_state_is_programmed_as_before() {
        let (d, r) = gicv3(false);
        let gic = driver(3, &d, &r);
        assert_eq!(gic.security(), Security::Single);
        assert!(d.writes.borrow().is_empty(), "the probe only reads");
        gic.init_distributor().expect("set up");
        let mut expected = std::vec![(GICD_CTLR, 0)];
        for n in 1..6 {
            expected.push((GICD_ICENABLER + 4 * n, u64::from(u32::MAX)));
            expected.push((GICD_IGROUPR + 4 * n, u64::from(u32::MAX)));
        }
        expected.push((GICD_CTLR, u64::from(GICD_CTLR_ENABLE_V3)));
        assert_eq!(*d.writes.borrow(), expected);
        d.set(GICD_IGROUPR + 4, 0);
        assert!(gic.route_spi(59, 2, 2, false));
        assert_eq!(
            d.values_at(GICD_IGROUPR + 4).last(),
            Some(&(1 << 27)),
            "Group 1"
        );
        gic.init_cpu(2).expect("core 2 set up");
        let frame = 2 * REDISTRIBUTOR_STRIDE;
        // ProcessorSleep cleared (ChildrenAsleep, read-only, written back as read).
        assert_eq!(r.values_at(frame + GICR_WAKER), [0b100], "woken");
        assert_eq!(
            r.values_at(frame + SGI_FRAME_OFFSET + GICR_IGROUPR0),
            [u64::from(u32::MAX)]
        );
    }

    /// Under TF-A (DS = 0, Non-secure): no group register, no Secure enable and no
    /// `GICR_WAKER` is written, the distributor is never disabled, only Non-secure Group 1
    /// is enabled (`EnableGrp1A`), and an interrupt the firmware kept Secure is refused.
    #[test]
    fn a_non_secure_gicv3_leaves_groups_and_secure_state_to_the_firmware() {
        let (mut d, r) = gicv3(true);
        d.secure = std::vec![42];
        // What TF-A leaves: affinity routing on for both states.
        d.set(GICD_CTLR, u64::from(GICD_CTLR_NS_ARE_NS));
        let gic = driver(3, &d, &r);
        assert_eq!(gic.security(), Security::NonSecure);
        gic.init_distributor().expect("set up");
        assert_eq!(igroupr_writes(&d), 0);
        assert_eq!(
            d.values_at(GICD_CTLR),
            [u64::from(GICD_CTLR_NS_ARE_NS | GICD_CTLR_NS_ENABLE_GRP1A)],
            "written once, never with the enables clear"
        );
        assert_eq!(
            d.regs.borrow().get(&GICD_CTLR).copied(),
            Some(u64::from(GICD_CTLR_NS_ARE_NS | GICD_CTLR_NS_ENABLE_GRP1A))
        );
        assert!(gic.route_spi(59, 1, 1, false), "a Non-secure SPI is routed");
        assert!(!gic.route_spi(42, 1, 1, false), "a Secure one is refused");
        assert_eq!(igroupr_writes(&d), 0);
        gic.init_cpu(1).expect("core 1 set up");
        let frame = REDISTRIBUTOR_STRIDE;
        assert!(
            r.values_at(frame + GICR_WAKER).is_empty(),
            "the firmware's register"
        );
        assert!(
            r.values_at(frame + SGI_FRAME_OFFSET + GICR_IGROUPR0)
                .is_empty()
        );
        // Enabling and disabling write only the set/clear-enable registers.
        gic.set_enabled(59, 1, true).expect("SPI");
        assert_eq!(d.values_at(GICD_ISENABLER + 4), [1 << 27]);
    }

    /// Firmware that left affinity routing off for the Non-secure state: refused before any
    /// write, with the reason.
    #[test]
    fn a_non_secure_gicv3_without_affinity_routing_is_refused() {
        let (d, r) = gicv3(true);
        let gic = driver(3, &d, &r);
        assert_eq!(gic.init_distributor(), Err(GicError::AffinityRoutingOff));
        assert!(d.writes.borrow().is_empty());
        assert!(GicError::AffinityRoutingOff.describe().contains("ARE_NS"));
    }

    /// A redistributor that sleeps and cannot be woken from here is an error; one already
    /// awake is not written.
    #[test]
    fn a_redistributor_is_woken_only_when_it_sleeps_and_can_be() {
        let (d, mut r) = gicv3(false);
        r.stuck_asleep = true;
        let gic = driver(3, &d, &r);
        assert_eq!(gic.init_cpu(0), Err(GicError::RedistributorAsleep));
        let (d, r) = gicv3(false);
        r.set(GICR_WAKER, 0);
        let gic = driver(3, &d, &r);
        gic.init_cpu(0).expect("core 0 set up");
        assert!(r.values_at(GICR_WAKER).is_empty());
        assert_eq!(gic.init_cpu(7), Err(GicError::NoRedistributor));
    }

    /// QEMU's GICv2s (no Security Extensions): Atoll owns the groups and uses Group 0, which
    /// it enables at the distributor and CPU interface (so a shared interrupt reaches the
    /// core: in Group 1 with only Group 0 enabled it never would).
    #[test]
    fn a_gicv2_with_one_security_state_uses_group_0() {
        let (d, c) = gicv2(false);
        let gic = driver(2, &d, &c);
        assert_eq!(gic.security(), Security::Single);
        gic.init_distributor().expect("set up");
        for n in 1..6 {
            assert_eq!(d.values_at(GICD_IGROUPR + 4 * n), [0]);
        }
        assert_eq!(d.values_at(GICD_CTLR), [0, 1]);
        d.set(GICD_IGROUPR + 4, u64::from(u32::MAX));
        assert!(gic.route_spi(33, 0, 0, false));
        assert_eq!(
            d.values_at(GICD_IGROUPR + 4).last(),
            Some(&u64::from(!2u32))
        );
        gic.init_cpu(0).expect("set up");
        assert_eq!(d.values_at(GICD_IGROUPR).last(), Some(&0));
        assert_eq!(c.values_at(GICC_CTLR), [1]);
    }

    /// A GIC-400 under TF-A, seen from Non-secure: the probe's write to the core's own group
    /// bit does not take, so nothing else goes to a group register; the distributor is
    /// enabled (Non-secure Group 1) without being disabled first; a Secure SPI is refused.
    #[test]
    fn a_non_secure_gicv2_leaves_groups_to_the_firmware() {
        let (mut d, c) = gicv2(true);
        d.secure = std::vec![40];
        let gic = driver(2, &d, &c);
        assert_eq!(gic.security(), Security::NonSecure);
        assert_eq!(igroupr_writes(&d), 1, "the probe's write, ignored");
        gic.init_distributor().expect("set up");
        gic.init_cpu(0).expect("set up");
        assert_eq!(igroupr_writes(&d), 1);
        assert_eq!(d.values_at(GICD_CTLR), [1]);
        assert!(gic.route_spi(53, 0, 0, false));
        assert!(!gic.route_spi(40, 0, 0, false));
        assert_eq!(c.values_at(GICC_CTLR), [1]);
    }
}
