//! Exception syndrome decoding, for fault reports people can read.

use core::fmt;

use crate::esr;

/// Name of an exception class.
pub const fn class_name(ec: u32) -> &'static str {
    match ec {
        esr::UNKNOWN => "unknown reason",
        esr::WFX => "trapped WFI/WFE",
        esr::FP_ASIMD => "FP/SIMD access trap",
        esr::ILLEGAL_STATE => "illegal execution state",
        esr::SVC64 => "SVC from AArch64",
        esr::HVC64 => "HVC from AArch64",
        esr::SMC64 => "SMC from AArch64",
        esr::SYS64 => "trapped system register access",
        esr::IABT_LOW => "instruction abort from a lower level",
        esr::IABT_CUR => "instruction abort",
        esr::PC_ALIGN => "PC alignment fault",
        esr::DABT_LOW => "data abort from a lower level",
        esr::DABT_CUR => "data abort",
        esr::SP_ALIGN => "SP alignment fault",
        esr::FP_EXC64 => "floating-point exception",
        esr::SERROR => "SError",
        esr::BREAKPT_LOW | esr::BREAKPT_CUR => "breakpoint",
        esr::SOFTSTP_LOW | esr::SOFTSTP_CUR => "software step",
        esr::WATCHPT_LOW | esr::WATCHPT_CUR => "watchpoint",
        esr::BRK64 => "BRK instruction",
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
        esr::is_abort(esr::class(self.0))
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = esr::class(self.0);
        write!(f, "{} (EC {ec:#04x})", class_name(ec))?;
        if self.is_abort() {
            let fsc = (self.0 & 0x3F) as u32;
            write!(f, ": {}", fault_status_name(fsc))?;
            if fsc <= 0b00_1111 {
                write!(f, " at level {}", fsc & 0b11)?;
            }
            if matches!(ec, esr::DABT_LOW | esr::DABT_CUR) {
                let write = self.0 & atoll_abi::fault::ESR_WNR != 0;
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
