//! Hostile-PD test (`tests/systems/hostile.xml`): a PD with `smc="true"` calls the
//! firmware. PSCI's version query and the Arm architecture's SMCCC version query go
//! through (where no firmware answers the board's conduit, the answer is SMCCC's
//! NOT_SUPPORTED, -1); PSCI's power-state calls, which would switch off the machine or
//! the cores of other replicas, are refused and the machine stays up.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain, smc};

const PSCI_VERSION: u64 = 0x8400_0000;
const SMCCC_VERSION: u64 = 0x8000_0000;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_CPU_ON: u64 = 0xC400_0003;

/// `function` with no arguments: what comes back in `x0`, or the kernel's refusal.
fn call(function: u64) -> Result<i64, atoll_abi::error::Error> {
    smc::call([function, 0, 0, 0, 0, 0, 0, 0]).map(|[x0, ..]| x0 as i64)
}

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap();
    match call(PSCI_VERSION) {
        Ok(v) if v > 0 => {
            debug_println!("{name}: PSCI_VERSION answered {}.{}", v >> 16, v & 0xFFFF)
        }
        other => debug_println!("{name}: FAILED: PSCI_VERSION answered {other:?}"),
    }
    debug_println!("{name}: SMCCC_VERSION answered {:?}", call(SMCCC_VERSION));
    for (what, function) in [
        ("SYSTEM_OFF", PSCI_SYSTEM_OFF),
        ("CPU_OFF", PSCI_CPU_OFF),
        ("CPU_ON", PSCI_CPU_ON),
    ] {
        debug_println!("{name}: {what}: {:?}", call(function));
    }
    debug_println!("{name}: still running");
    NullHandler::new()
}
