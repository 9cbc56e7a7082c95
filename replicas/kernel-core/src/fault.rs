//! Exception syndrome decoding, for fault reports people can read.

use core::fmt;

/// Exception class field of ESR_ELx.
pub const fn exception_class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3F) as u32
}

/// Name of an exception class.
pub const fn class_name(ec: u32) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "trapped WFI/WFE",
        0x07 => "FP/SIMD access trap",
        0x0E => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "trapped system register access",
        0x20 => "instruction abort from a lower level",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower level",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2C => "floating-point exception",
        0x2F => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3C => "BRK instruction",
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
        matches!(exception_class(self.0), 0x20 | 0x21 | 0x24 | 0x25)
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
            if matches!(ec, 0x24 | 0x25) {
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
