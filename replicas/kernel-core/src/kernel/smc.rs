//! Firmware calls: SMC_Call on the replica's SMC capability (seL4's `ARM_SMC_Call`), for
//! PDs whose description says `smc="true"`.
//!
//! The eight arguments go to the firmware in `x0`–`x7` and the eight registers it returns
//! come back as the reply. Two checks come first. A badge other than 0 limits the
//! capability to the one function id it names, as seL4's does. And the power-state calls
//! of PSCI are refused whatever the badge: on a multikernel the cores and the machine
//! they would switch off or on belong to every replica, not to the caller. PSCI's version
//! and feature queries stay allowed. Everything else (the SiP and OEM services a board's
//! firmware offers, the Arm architecture calls) is passed on.

use atoll_abi::error::Error;
use atoll_abi::syscall::label;

use super::invoke::{Answer, Args};
use super::{Kernel, Machine};

/// SMCCC function ids: bits 29..24 are the owning service (4: standard secure services,
/// which hold PSCI); bits 15..0 the function number.
mod smccc {
    /// Bits that name the service that owns a call.
    pub const OWNER_MASK: u64 = 0x3F00_0000;
    /// The standard secure services (PSCI among them).
    pub const OWNER_STANDARD: u64 = 0x0400_0000;
    /// Bits that number a call within its service.
    pub const FUNCTION_MASK: u64 = 0xFFFF;
    /// PSCI's own range of function numbers.
    pub const PSCI_FUNCTIONS: u64 = 0x1F;
    /// `PSCI_VERSION` and `PSCI_FEATURES`, the queries that change nothing.
    pub const PSCI_QUERIES: [u64; 2] = [0x0, 0xA];
}

/// Whether firmware call `function` (the value of `x0`) is a PSCI call that changes the
/// power state of a core or of the machine.
pub(crate) fn is_power_state_call(function: u64) -> bool {
    let f = function & 0xFFFF_FFFF;
    f & smccc::OWNER_MASK == smccc::OWNER_STANDARD
        && f & smccc::FUNCTION_MASK <= smccc::PSCI_FUNCTIONS
        && !smccc::PSCI_QUERIES.contains(&(f & smccc::FUNCTION_MASK))
}

impl Kernel {
    /// Decodes SMC_Call: the eight argument registers, checked against the badge and the
    /// power-state rule.
    pub(super) fn decode_smc(op: u64, badge: u64, args: &Args) -> Result<[u64; 8], Error> {
        if op != label::ARM_SMC_CALL {
            return Err(Error::IllegalOperation);
        }
        let mut regs = [0u64; 8];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = args.get(i)?;
        }
        let [function, ..] = regs;
        if badge != 0 && badge != function {
            return Err(Error::InvalidArgument);
        }
        if is_power_state_call(function) {
            return Err(Error::IllegalOperation);
        }
        Ok(regs)
    }

    /// Performs SMC_Call: the firmware's eight result registers are the answer.
    pub(super) fn invoke_smc(m: &mut impl Machine, regs: [u64; 8]) -> Answer {
        Answer {
            len: 8,
            mrs: m.firmware_call(regs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_power_state_call;

    #[test]
    fn power_state_calls_are_psci_calls_other_than_its_queries() {
        for f in [
            0x8400_0002u64,
            0xC400_0003,
            0x8400_0008,
            0x8400_0009,
            0xC400_000C,
        ] {
            assert!(is_power_state_call(f), "{f:#x}");
        }
        for f in [
            0x8400_0000u64,
            0x8400_000A,
            0x8000_0000,
            0x8200_0001,
            0xC200_0001,
        ] {
            assert!(!is_power_state_call(f), "{f:#x}");
        }
        // Bits above the 32-bit function id do not hide a call.
        assert!(is_power_state_call(0xFFFF_FFFF_8400_0008));
    }
}
