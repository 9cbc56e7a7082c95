//! Arm Generic Interrupt Controller drivers, v2 (GIC-400) and v3.
//!
//! Division of work, so that no replica takes a lock another replica holds: the loader sets
//! up the distributor once, before any replica runs ([`Gic::init_distributor`]); afterwards
//! each core touches only its own banked or per-core state (its redistributor or CPU
//! interface) and the write-one-to-set/clear distributor registers, which need no lock.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// Distributor (the parts v2 and v3 share, plus v2's SGIR and v3's IROUTER).
    DistributorRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x07FC => _reserved2),
        (0x0800 => itargetsr: [ReadWrite<u32>; 255]),
        (0x0BFC => _reserved3),
        (0x0C00 => icfgr: [ReadWrite<u32>; 64]),
        (0x0D00 => _reserved4),
        (0x0F00 => sgir: WriteOnly<u32>),
        (0x0F04 => _reserved5),
        (0x6000 => irouter: [ReadWrite<u64>; 1020]),
        (0x7FE0 => @END),
    },
    /// GICv2 CPU interface.
    CpuInterfaceRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => pmr: ReadWrite<u32>),
        (0x0008 => bpr: ReadWrite<u32>),
        (0x000C => iar: ReadOnly<u32>),
        (0x0010 => eoir: WriteOnly<u32>),
        (0x0014 => @END),
    },
    /// GICv3 redistributor, RD_base frame.
    RedistributorRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => _reserved0),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved1),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => @END),
    },
    /// GICv3 redistributor, SGI_base frame (64 KiB after RD_base).
    RedistributorSgiRegs {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x0420 => @END),
    }
}

const GICD_CTLR_RWP: u32 = 1 << 31;
/// Enable group 0 and group 1, and affinity routing (GICv3; harmless bits on v2).
const GICD_CTLR_ENABLE_V3: u32 = (1 << 4) | (1 << 1) | (1 << 0);
const GICD_CTLR_ENABLE_V2: u32 = 1;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_TYPER_LAST: u64 = 1 << 4;
const REDISTRIBUTOR_STRIDE: usize = 0x2_0000;
const SGI_FRAME_OFFSET: usize = 0x1_0000;
/// Priority given to every interrupt Atoll enables (the middle of the range).
const DEFAULT_PRIORITY: u8 = 0x80;
/// First shared peripheral interrupt.
const FIRST_SPI: u32 = 32;
/// INTIDs at or above this are special (spurious and friends).
const SPECIAL_INTID: u32 = 1020;

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

/// Why per-core set-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// No redistributor frame answers to this core's affinity.
    NoRedistributor,
    /// The redistributor did not wake up.
    RedistributorAsleep,
}

/// An acknowledged interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Interrupt id.
    pub intid: u32,
    raw: u32,
}

/// A GIC at mapped addresses.
#[derive(Clone, Copy, Debug)]
pub struct Gic {
    version: u32,
    distributor: usize,
    cpu: usize,
    cpu_size: usize,
}

impl Gic {
    /// A driver for a GIC of `version` (2 or 3) with the distributor mapped at `distributor`
    /// and the CPU interface (v2) or redistributors (v3, `cpu_size` bytes) at `cpu`.
    ///
    /// # Safety
    ///
    /// The addresses must map the device's registers as device memory for as long as the
    /// driver is used.
    pub const unsafe fn new(version: u32, distributor: usize, cpu: usize, cpu_size: usize) -> Self {
        Self {
            version,
            distributor,
            cpu,
            cpu_size,
        }
    }

    /// The architecture version this driver speaks.
    pub const fn version(&self) -> u32 {
        self.version
    }

    fn dist(&self) -> &DistributorRegs {
        // SAFETY: `new`'s contract: `distributor` maps the distributor.
        unsafe { &*(self.distributor as *const DistributorRegs) }
    }

    fn cpu_interface(&self) -> &CpuInterfaceRegs {
        // SAFETY: `new`'s contract: on v2, `cpu` maps this core's banked CPU interface.
        unsafe { &*(self.cpu as *const CpuInterfaceRegs) }
    }

    fn redistributor_frame(&self, mpidr: u64) -> Result<usize, GicError> {
        let wanted = affinity_value(mpidr);
        let frames = self.cpu_size / REDISTRIBUTOR_STRIDE;
        for index in 0..frames {
            // Inside the `cpu_size` bytes mapped from `cpu`: no overflow.
            let base = self
                .cpu
                .wrapping_add(index.wrapping_mul(REDISTRIBUTOR_STRIDE));
            // SAFETY: `new`'s contract: `cpu_size` bytes of redistributor frames are mapped.
            let rd = unsafe { &*(base as *const RedistributorRegs) };
            let typer = rd.typer.get();
            if (typer >> 32) as u32 == wanted {
                return Ok(base);
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
        }
        Err(GicError::NoRedistributor)
    }

    fn sgi_frame(&self, frame: usize) -> &RedistributorSgiRegs {
        // SAFETY: `frame` came from `redistributor_frame`, inside the mapped range; the SGI
        // frame follows RD_base within the same 128 KiB stride.
        unsafe { &*(frame.wrapping_add(SGI_FRAME_OFFSET) as *const RedistributorSgiRegs) }
    }

    /// Global set-up, done once by the loader before any replica runs: every shared
    /// interrupt disabled and in group 1, then the distributor enabled.
    pub fn init_distributor(&self) {
        let d = self.dist();
        d.ctlr.set(0);
        self.wait_for_distributor();
        let lines = self.lines();
        for n in (FIRST_SPI / 32) as usize..(lines / 32) as usize {
            if let (Some(enable), Some(group)) = (d.icenabler.get(n), d.igroupr.get(n)) {
                enable.set(u32::MAX);
                group.set(u32::MAX);
            }
        }
        if self.version == 3 {
            d.ctlr.set(GICD_CTLR_ENABLE_V3);
        } else {
            d.ctlr.set(GICD_CTLR_ENABLE_V2);
        }
        self.wait_for_distributor();
    }

    /// Interrupt lines the distributor implements (`GICD_TYPER.ITLinesNumber`), at most
    /// 1024.
    fn lines(&self) -> u32 {
        ((self.dist().typer.get() & 0x1F).wrapping_add(1)).wrapping_mul(32)
    }

    fn wait_for_distributor(&self) {
        if self.version == 3 {
            while self.dist().ctlr.get() & GICD_CTLR_RWP != 0 {
                core::hint::spin_loop();
            }
        }
    }

    /// Routes shared interrupt `intid` to one core (by MPIDR on v3, by CPU interface number
    /// `core_index` on v2), level- or edge-triggered, group 1, default priority; it stays
    /// disabled until its owner enables it. Done by the loader before any replica runs.
    /// Returns whether the distributor took the route (read back).
    pub fn route_spi(&self, intid: u32, mpidr: u64, core_index: u32, edge: bool) -> bool {
        if !(FIRST_SPI..self.lines().min(SPECIAL_INTID)).contains(&intid) {
            return false;
        }
        let d = self.dist();
        let i = intid as usize;
        let (Some(enable), Some(group), Some(cfg), Some(prio)) = (
            d.icenabler.get(i / 32),
            d.igroupr.get(i / 32),
            d.icfgr.get(i / 16),
            d.ipriorityr.get(i / 4),
        ) else {
            return false;
        };
        let bit = 1u32 << (intid % 32);
        enable.set(bit);
        group.set(group.get() | bit);
        let shift = (intid % 16).wrapping_mul(2);
        cfg.set((cfg.get() & !(0b11 << shift)) | (u32::from(edge) << (shift | 1)));
        let pshift = (intid % 4).wrapping_mul(8);
        prio.set((prio.get() & !(0xFF << pshift)) | (u32::from(DEFAULT_PRIORITY) << pshift));
        if self.version == 3 {
            let affinity = mpidr & 0xFF_00FF_FFFF;
            let Some(route) = d.irouter.get(i) else {
                return false;
            };
            route.set(affinity);
            route.get() == affinity
        } else {
            let Some(target) = d.itargetsr.get(i / 4) else {
                return false;
            };
            let tshift = (intid % 4).wrapping_mul(8);
            let cpu = 1u32 << (core_index & 7);
            target.set((target.get() & !(0xFF << tshift)) | (cpu << tshift));
            (target.get() >> tshift) & 0xFF == cpu
        }
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
        let d = self.dist();
        let (word, bit) = ((intid / 32) as usize, intid % 32);
        let bank = if enabled { &d.isenabler } else { &d.icenabler };
        if let Some(reg) = bank.get(word) {
            reg.set(1 << bit);
        }
    }

    /// Per-core set-up on the calling core (`mpidr` is its own): wake its redistributor or
    /// enable its CPU interface, put SGIs and PPIs in group 1, unmask all priorities.
    pub fn init_cpu(&self, mpidr: u64) -> Result<(), GicError> {
        if self.version == 3 {
            let frame = self.redistributor_frame(mpidr)?;
            // SAFETY: found by `redistributor_frame` inside the mapped range.
            let rd = unsafe { &*(frame as *const RedistributorRegs) };
            rd.waker.set(rd.waker.get() & !GICR_WAKER_PROCESSOR_SLEEP);
            let mut spins = 0u32;
            while rd.waker.get() & GICR_WAKER_CHILDREN_ASLEEP != 0 {
                spins = spins.saturating_add(1);
                if spins > 1_000_000 {
                    return Err(GicError::RedistributorAsleep);
                }
                core::hint::spin_loop();
            }
            let sgi = self.sgi_frame(frame);
            sgi.icenabler0.set(u32::MAX);
            sgi.igroupr0.set(u32::MAX);
            let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
            for reg in &sgi.ipriorityr {
                reg.set(prio);
            }
            sysreg::init_cpu_interface();
        } else {
            let d = self.dist();
            let [local, ..] = &d.icenabler;
            local.set(u32::MAX);
            let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
            for reg in d.ipriorityr.iter().take(8) {
                reg.set(prio);
            }
            let c = self.cpu_interface();
            c.pmr.set(0xFF);
            c.bpr.set(0);
            c.ctlr.set(1);
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
            let sgi = self.sgi_frame(self.redistributor_frame(mpidr)?);
            if enabled {
                sgi.isenabler0.set(bit);
            } else {
                sgi.icenabler0.set(bit);
            }
        } else if enabled {
            self.dist().isenabler[0].set(bit);
        } else {
            self.dist().icenabler[0].set(bit);
        }
        Ok(())
    }

    /// Acknowledges the highest-priority pending interrupt, if any. Memory the sender wrote
    /// before raising an SGI is visible after this returns (a `dmb` follows the read).
    pub fn acknowledge(&self) -> Option<Acked> {
        let raw = if self.version == 3 {
            sysreg::read_iar1()
        } else {
            self.cpu_interface().iar.get()
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
            self.cpu_interface().eoir.set(acked.raw);
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
            self.dist().sgir.set((targets << 16) | (sgi & 0xF));
        }
    }
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
}
