//! Fault messages decoded: the label and message registers a thread's fault arrives with
//! at its fault endpoint ([`crate::syscall::fault`]), as one value that reads in words. The
//! replica monitor and the PD runtime's parent handlers both use it.

use core::fmt;

use crate::syscall::fault as label;

/// `ESR_EL1.ISS.WnR`, the syndrome bit that tells a data abort on a write from one on a
/// read.
pub const ESR_WNR: u64 = 1 << 6;

/// A thread's fault, from its message's label and first four message registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// It invoked a capability it does not hold.
    CapFault {
        /// Where.
        pc: u64,
        /// The capability address it used.
        address: u64,
    },
    /// It made a system call the kernel does not know.
    UnknownSyscall {
        /// Where.
        pc: u64,
        /// The system call number.
        number: u64,
    },
    /// An undefined instruction or another exception.
    UserException {
        /// Where.
        pc: u64,
        /// The exception syndrome (ESR_EL1).
        esr: u64,
    },
    /// A memory access its address space does not allow.
    VmFault {
        /// Where.
        pc: u64,
        /// The address it accessed.
        address: u64,
        /// Whether it was an instruction fetch.
        instruction: bool,
        /// The exception syndrome (ESR_EL1).
        esr: u64,
    },
    /// It panicked (the runtime's panic handler reports this).
    Panic {
        /// Where the panic handler runs.
        pc: u64,
    },
    /// A label this runtime does not know.
    Other {
        /// The label.
        label: u64,
        /// The first message register.
        pc: u64,
    },
}

impl Fault {
    /// The fault with label `label` and first four message registers `mrs`.
    pub const fn from_parts(fault_label: u64, mrs: [u64; 4]) -> Self {
        let [pc, a, b, c] = mrs;
        match fault_label {
            label::CAP_FAULT => Self::CapFault { pc, address: a },
            label::UNKNOWN_SYSCALL => Self::UnknownSyscall { pc, number: b },
            label::USER_EXCEPTION => Self::UserException { pc, esr: b },
            label::VM_FAULT => Self::VmFault {
                pc,
                address: a,
                instruction: b != 0,
                esr: c,
            },
            label::PANIC => Self::Panic { pc },
            other => Self::Other { label: other, pc },
        }
    }

    /// Where it happened.
    pub const fn pc(&self) -> u64 {
        match *self {
            Self::CapFault { pc, .. }
            | Self::UnknownSyscall { pc, .. }
            | Self::UserException { pc, .. }
            | Self::VmFault { pc, .. }
            | Self::Panic { pc }
            | Self::Other { pc, .. } => pc,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CapFault { address, .. } => write!(
                f,
                "invoked a capability it does not hold (address {address:#x})"
            ),
            Self::UnknownSyscall { number, .. } => {
                write!(f, "made unknown system call {}", number as i64)
            }
            Self::UserException { esr, .. } => write!(
                f,
                "raised an undefined instruction or other exception (ESR {esr:#x})"
            ),
            Self::VmFault {
                address,
                instruction: true,
                ..
            } => write!(
                f,
                "fetched an instruction from {address:#x}, which its address space does not map executable"
            ),
            Self::VmFault { address, esr, .. } => {
                let verb = if esr & ESR_WNR != 0 {
                    "wrote to"
                } else {
                    "read from"
                };
                write!(
                    f,
                    "{verb} {address:#x}, which its address space does not allow"
                )
            }
            Self::Panic { .. } => f.write_str("panicked"),
            Self::Other { label, .. } => write!(f, "faulted with kind {label}"),
        }?;
        write!(f, " at pc {:#x}", self.pc())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn faults_decode_and_read_in_words() {
        let read = Fault::from_parts(label::VM_FAULT, [0x20_0010, 0x1000, 0, 0x9200_0007]);
        assert_eq!(
            read.to_string(),
            "read from 0x1000, which its address space does not allow at pc 0x200010"
        );
        let write = Fault::from_parts(label::VM_FAULT, [4, 8, 0, 1 << 6]);
        assert!(write.to_string().starts_with("wrote to 0x8"));
        assert_eq!(
            Fault::from_parts(label::PANIC, [0x20_1234, 0, 0, 0]),
            Fault::Panic { pc: 0x20_1234 }
        );
        assert_eq!(
            Fault::from_parts(label::UNKNOWN_SYSCALL, [1, 2, 42, 0]).to_string(),
            "made unknown system call 42 at pc 0x1"
        );
        assert_eq!(
            Fault::from_parts(99, [5, 0, 0, 0]),
            Fault::Other { label: 99, pc: 5 }
        );
    }
}
