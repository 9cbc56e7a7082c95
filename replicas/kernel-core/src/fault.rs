//! Exception syndrome decoding, for fault reports people can read.

use core::fmt;

/// Exception class field of ESR_ELx.
pub const fn exception_class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3F) as u32
}

/// Exception classes (ESR_ELx.EC), by name.
pub mod class {
    /// Unknown reason.
    pub const UNKNOWN: u32 = 0x00;
    /// A trapped WFI or WFE.
    pub const WFI_WFE: u32 = 0x01;
    /// FP/SIMD access while it is trapped.
    pub const FP_ACCESS: u32 = 0x07;
    /// Illegal execution state.
    pub const ILLEGAL_STATE: u32 = 0x0E;
    /// SVC from AArch64: a system call.
    pub const SVC64: u32 = 0x15;
    /// HVC from AArch64.
    pub const HVC64: u32 = 0x16;
    /// SMC from AArch64.
    pub const SMC64: u32 = 0x17;
    /// A trapped system-register access.
    pub const SYSTEM_REGISTER: u32 = 0x18;
    /// Instruction abort from a lower exception level (from EL0 for the kernel).
    pub const INSTRUCTION_ABORT_LOWER: u32 = 0x20;
    /// Instruction abort at the same level.
    pub const INSTRUCTION_ABORT: u32 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGNMENT: u32 = 0x22;
    /// Data abort from a lower exception level (from EL0 for the kernel).
    pub const DATA_ABORT_LOWER: u32 = 0x24;
    /// Data abort at the same level.
    pub const DATA_ABORT: u32 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGNMENT: u32 = 0x26;
    /// Floating-point exception.
    pub const FP_EXCEPTION: u32 = 0x2C;
    /// SError interrupt.
    pub const SERROR: u32 = 0x2F;
    /// Breakpoint, from a lower level.
    pub const BREAKPOINT_LOWER: u32 = 0x30;
    /// Breakpoint at the same level.
    pub const BREAKPOINT: u32 = 0x31;
    /// Software step, from a lower level.
    pub const SOFTWARE_STEP_LOWER: u32 = 0x32;
    /// Software step at the same level.
    pub const SOFTWARE_STEP: u32 = 0x33;
    /// Watchpoint, from a lower level.
    pub const WATCHPOINT_LOWER: u32 = 0x34;
    /// Watchpoint at the same level.
    pub const WATCHPOINT: u32 = 0x35;
    /// A BRK instruction.
    pub const BRK: u32 = 0x3C;
}

/// Name of an exception class.
pub const fn class_name(ec: u32) -> &'static str {
    match ec {
        class::UNKNOWN => "unknown reason",
        class::WFI_WFE => "trapped WFI/WFE",
        class::FP_ACCESS => "FP/SIMD access trap",
        class::ILLEGAL_STATE => "illegal execution state",
        class::SVC64 => "SVC from AArch64",
        class::HVC64 => "HVC from AArch64",
        class::SMC64 => "SMC from AArch64",
        class::SYSTEM_REGISTER => "trapped system register access",
        class::INSTRUCTION_ABORT_LOWER => "instruction abort from a lower level",
        class::INSTRUCTION_ABORT => "instruction abort",
        class::PC_ALIGNMENT => "PC alignment fault",
        class::DATA_ABORT_LOWER => "data abort from a lower level",
        class::DATA_ABORT => "data abort",
        class::SP_ALIGNMENT => "SP alignment fault",
        class::FP_EXCEPTION => "floating-point exception",
        class::SERROR => "SError",
        class::BREAKPOINT_LOWER | class::BREAKPOINT => "breakpoint",
        class::SOFTWARE_STEP_LOWER | class::SOFTWARE_STEP => "software step",
        class::WATCHPOINT_LOWER | class::WATCHPOINT => "watchpoint",
        class::BRK => "BRK instruction",
        _ => "unexpected exception class",
    }
}

/// Name of an abort's fault status code (DFSC/IFSC).
pub const fn fault_status_name(fsc: u32) -> &'static str {
    match fsc {
        0b00_0000..=0b00_0011 => "address size fault",
        0b00_0100..=0b00_0111 => "translation fault",
        0b00_1001..=0b00_1011 => "access flag fault",
        0b00_1101..=0b00_1111 => "permission fault",
        0b01_0000 => "synchronous external abort",
        0b10_0001 => "alignment fault",
        0b11_0000 => "TLB conflict abort",
        _ => "other fault",
    }
}

/// A decoded syndrome: `Display` renders e.g.
/// `data abort (EC 0x25): translation fault at level 1 on a read`.
#[derive(Clone, Copy, Debug)]
pub struct Syndrome(pub u64);

impl Syndrome {
    /// Whether this is an instruction or data abort (FAR is meaningful).
    pub const fn is_abort(&self) -> bool {
        matches!(
            exception_class(self.0),
            class::INSTRUCTION_ABORT_LOWER
                | class::INSTRUCTION_ABORT
                | class::DATA_ABORT_LOWER
                | class::DATA_ABORT
        )
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = exception_class(self.0);
        write!(f, "{} (EC {ec:#04x})", class_name(ec))?;
        if self.is_abort() {
            let fsc = (self.0 & 0x3F) as u32;
            write!(f, ": {}", fault_status_name(fsc))?;
            if fsc <= 0b00_1111 {
                write!(f, " at level {}", fsc & 0b11)?;
            }
            if matches!(ec, class::DATA_ABORT_LOWER | class::DATA_ABORT) {
                let write = self.0 & (1 << 6) != 0;
                f.write_str(if write { " on a write" } else { " on a read" })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn data_abort_read_translation_fault() {
        // EC 0x25, IL, DFSC 0b000101 (translation fault level 1), WnR 0.
        let esr = (0x25u64 << 26) | (1 << 25) | 0b00_0101;
        assert_eq!(
            format!("{}", Syndrome(esr)),
            "data abort (EC 0x25): translation fault at level 1 on a read"
        );
    }

    #[test]
    fn write_permission_fault_from_el0() {
        let esr = (0x24u64 << 26) | (1 << 6) | 0b00_1111;
        assert_eq!(
            format!("{}", Syndrome(esr)),
            "data abort from a lower level (EC 0x24): permission fault at level 3 on a write"
        );
    }

    #[test]
    fn non_abort_classes() {
        assert_eq!(format!("{}", Syndrome(0)), "unknown reason (EC 0x00)");
        assert_eq!(
            format!("{}", Syndrome(0x3Cu64 << 26)),
            "BRK instruction (EC 0x3c)"
        );
        assert!(!Syndrome(0x15u64 << 26).is_abort());
    }
}
