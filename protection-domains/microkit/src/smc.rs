//! Firmware calls for a PD whose description says `smc="true"` (an Atoll extension to
//! `sel4-microkit`; Microkit's C library has `microkit_arm_smc_call`).

use atoll_abi::pd::slot;
use atoll_sys::{Cap, Error, Smc};

use crate::message::BUFFER;

/// Calls the firmware with `regs` in `x0`–`x7` and returns the registers it leaves there.
/// The kernel refuses PSCI's power-state calls (they would reach other replicas' cores)
/// with `IllegalOperation`; a call no firmware answers returns `NOT_SUPPORTED` (-1) in
/// `x0`. A PD without `smc="true"` has no capability to call through and takes a
/// capability fault, as under Microkit.
pub fn call(regs: [u64; 8]) -> Result<[u64; 8], Error> {
    Cap::<Smc>::from_bits(slot::ARM_SMC.into()).call(BUFFER, regs)
}
