//! Exception classes: the `EC` field of `ESR_EL1` (bits 31:26), named.
//!
//! Each constant carries the Arm Architecture Reference Manual's name for its class (the
//! `ESR_EL1` description, field `EC`); the constant names are Linux's (`ESR_ELx_EC_*`).
//! They are plain `u32` values, not an enum, so the kernel's trap path matches on the field
//! as read, with no conversion; [`class`] reads it.
//!
//! "Lower level" classes are exceptions taken from EL0 (a user thread); "current level"
//! ones are taken by the kernel at EL1.

/// The exception class field of an `ESR_ELx` value.
#[inline(always)]
pub const fn class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3F) as u32
}

/// "Unknown reason": an undefined or unallocated instruction, among others.
pub const UNKNOWN: u32 = 0x00;
/// "Trapped WF* instruction execution".
pub const WFX: u32 = 0x01;
/// "Access to SME, SVE, Advanced SIMD or floating-point functionality trapped by
/// CPACR_EL1.FPEN": the kernel's lazy FP/SIMD switch.
pub const FP_ASIMD: u32 = 0x07;
/// "Illegal Execution state".
pub const ILLEGAL_STATE: u32 = 0x0E;
/// "SVC instruction execution in AArch64 state": a system call.
pub const SVC64: u32 = 0x15;
/// "HVC instruction execution in AArch64 state".
pub const HVC64: u32 = 0x16;
/// "SMC instruction execution in AArch64 state".
pub const SMC64: u32 = 0x17;
/// "Trapped MSR, MRS or System instruction execution in AArch64 state".
pub const SYS64: u32 = 0x18;
/// "Instruction Abort from a lower Exception level": a thread's instruction fetch faulted.
pub const IABT_LOW: u32 = 0x20;
/// "Instruction Abort taken without a change in Exception level".
pub const IABT_CUR: u32 = 0x21;
/// "PC alignment fault exception".
pub const PC_ALIGN: u32 = 0x22;
/// "Data Abort exception from a lower Exception level": a thread's load or store faulted.
pub const DABT_LOW: u32 = 0x24;
/// "Data Abort exception taken without a change in Exception level".
pub const DABT_CUR: u32 = 0x25;
/// "SP alignment fault exception".
pub const SP_ALIGN: u32 = 0x26;
/// "Trapped floating-point exception taken from AArch64 state".
pub const FP_EXC64: u32 = 0x2C;
/// "SError exception".
pub const SERROR: u32 = 0x2F;
/// "Breakpoint exception from a lower Exception level".
pub const BREAKPT_LOW: u32 = 0x30;
/// "Breakpoint exception taken without a change in Exception level".
pub const BREAKPT_CUR: u32 = 0x31;
/// "Software Step exception from a lower Exception level".
pub const SOFTSTP_LOW: u32 = 0x32;
/// "Software Step exception taken without a change in Exception level".
pub const SOFTSTP_CUR: u32 = 0x33;
/// "Watchpoint exception from a lower Exception level".
pub const WATCHPT_LOW: u32 = 0x34;
/// "Watchpoint exception taken without a change in Exception level".
pub const WATCHPT_CUR: u32 = 0x35;
/// "BRK instruction execution in AArch64 state".
pub const BRK64: u32 = 0x3C;

/// Whether the class is an instruction or data abort, at either level (FAR holds the
/// faulting address).
pub const fn is_abort(ec: u32) -> bool {
    matches!(ec, IABT_LOW | IABT_CUR | DABT_LOW | DABT_CUR)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fault::class_name;

    /// Every named class, with the words a fault report prints for it.
    const NAMED: [(u32, &str); 23] = [
        (UNKNOWN, "unknown reason"),
        (WFX, "trapped WFI/WFE"),
        (FP_ASIMD, "FP/SIMD access trap"),
        (ILLEGAL_STATE, "illegal execution state"),
        (SVC64, "SVC from AArch64"),
        (HVC64, "HVC from AArch64"),
        (SMC64, "SMC from AArch64"),
        (SYS64, "trapped system register access"),
        (IABT_LOW, "instruction abort from a lower level"),
        (IABT_CUR, "instruction abort"),
        (PC_ALIGN, "PC alignment fault"),
        (DABT_LOW, "data abort from a lower level"),
        (DABT_CUR, "data abort"),
        (SP_ALIGN, "SP alignment fault"),
        (FP_EXC64, "floating-point exception"),
        (SERROR, "SError"),
        (BREAKPT_LOW, "breakpoint"),
        (BREAKPT_CUR, "breakpoint"),
        (SOFTSTP_LOW, "software step"),
        (SOFTSTP_CUR, "software step"),
        (WATCHPT_LOW, "watchpoint"),
        (WATCHPT_CUR, "watchpoint"),
        (BRK64, "BRK instruction"),
    ];

    #[test]
    fn every_named_class_is_what_fault_reports_call_it() {
        for (ec, name) in NAMED {
            assert_eq!(class_name(ec), name, "EC {ec:#x}");
        }
    }

    #[test]
    fn the_class_is_bits_31_to_26_and_nothing_else() {
        // An SVC #0 from EL0 as the CPU reports it: EC 0x15, IL set, ISS 0.
        assert_eq!(class(0x5600_0000), SVC64);
        // A data abort from EL0 with every ISS bit and the upper half set.
        assert_eq!(
            class(0xFFFF_FFFF_0000_0000 | (0x24 << 26) | 0x3FF_FFFF),
            DABT_LOW
        );
        assert_eq!(class(0x03FF_FFFF), UNKNOWN);
        assert_eq!(class(0xFC00_0000), 0x3F);
    }

    #[test]
    fn lower_and_current_level_aborts_differ_in_bit_0_only() {
        // The trap path tells a thread's faults from the kernel's by these pairs.
        for (low, cur) in [
            (IABT_LOW, IABT_CUR),
            (DABT_LOW, DABT_CUR),
            (BREAKPT_LOW, BREAKPT_CUR),
            (SOFTSTP_LOW, SOFTSTP_CUR),
            (WATCHPT_LOW, WATCHPT_CUR),
        ] {
            assert_eq!(low | 1, cur);
            assert_eq!(low & 1, 0);
        }
    }

    #[test]
    fn aborts_are_the_four_abort_classes() {
        let aborts: std::vec::Vec<u32> = (0..64).filter(|&ec| is_abort(ec)).collect();
        assert_eq!(aborts, [IABT_LOW, IABT_CUR, DABT_LOW, DABT_CUR]);
    }
}

/// One of the core's EL1 physical timer registers EL0 may use (the `CNTP_*_EL0` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysTimerReg {
    /// `CNTP_TVAL_EL0`: the time left to the deadline (op2 0).
    Tval,
    /// `CNTP_CTL_EL0`: enable, mask, status (op2 1).
    Ctl,
    /// `CNTP_CVAL_EL0`: the deadline (op2 2).
    Cval,
}

/// A trapped `MRS`/`MSR` of a physical timer register ([`SYS64`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysTimerAccess {
    /// The register.
    pub reg: PhysTimerReg,
    /// The general register: 0–30, or 31 for `xzr`.
    pub rt: usize,
    /// `MRS` (a read into `rt`) rather than `MSR`.
    pub read: bool,
}

/// The physical timer access an `ESR_EL1` of class [`SYS64`] describes, if it is one
/// (`op0` 3, `op1` 3, `CRn` 14, `CRm` 2, `op2` 0 to 2; the ISS layout of the Arm ARM's
/// "ISS encoding for an exception from MSR, MRS, or System instruction execution").
pub const fn phys_timer_access(esr: u64) -> Option<PhysTimerAccess> {
    if class(esr) != SYS64 {
        return None;
    }
    let iss = esr & 0x1FF_FFFF;
    let read = iss & 1 == 1;
    let crm = (iss >> 1) & 0xF;
    let rt = ((iss >> 5) & 0x1F) as usize;
    let crn = (iss >> 10) & 0xF;
    let op1 = (iss >> 14) & 0x7;
    let op2 = (iss >> 17) & 0x7;
    let op0 = (iss >> 20) & 0x3;
    if op0 != 3 || op1 != 3 || crn != 14 || crm != 2 {
        return None;
    }
    let reg = match op2 {
        0 => PhysTimerReg::Tval,
        1 => PhysTimerReg::Ctl,
        2 => PhysTimerReg::Cval,
        _ => return None,
    };
    Some(PhysTimerAccess { reg, rt, read })
}

#[cfg(test)]
mod timer_tests {
    use super::*;

    /// The ESR of a trapped access: class 0x18, IL set, and the ISS fields.
    fn esr(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
        (u64::from(SYS64) << 26)
            | 1 << 25
            | op0 << 20
            | op2 << 17
            | op1 << 14
            | crn << 10
            | rt << 5
            | crm << 1
            | u64::from(read)
    }

    #[test]
    fn physical_timer_accesses_are_recognised_and_nothing_else() {
        // msr cntp_cval_el0, x5 (the io PD's arm); the ESR a real trap of it gives.
        assert_eq!(
            phys_timer_access(0x6234_f904 | 1 << 25),
            Some(PhysTimerAccess {
                reg: PhysTimerReg::Cval,
                rt: 8,
                read: false
            })
        );
        assert_eq!(
            phys_timer_access(esr(3, 3, 14, 2, 1, 31, false)),
            Some(PhysTimerAccess {
                reg: PhysTimerReg::Ctl,
                rt: 31,
                read: false
            })
        );
        assert_eq!(
            phys_timer_access(esr(3, 3, 14, 2, 0, 3, true)),
            Some(PhysTimerAccess {
                reg: PhysTimerReg::Tval,
                rt: 3,
                read: true
            })
        );
        // The virtual timer (CRm 3), the counter (CRm 0), PMU registers, another class.
        assert_eq!(phys_timer_access(esr(3, 3, 14, 3, 1, 0, false)), None);
        assert_eq!(phys_timer_access(esr(3, 3, 14, 0, 1, 0, true)), None);
        assert_eq!(phys_timer_access(esr(3, 3, 9, 12, 0, 0, false)), None);
        assert_eq!(phys_timer_access(esr(3, 3, 14, 2, 3, 0, false)), None);
        assert_eq!(phys_timer_access(u64::from(SVC64) << 26), None);
    }
}
