//! SMP test PD (`tests/systems/smp-hog.xml`): spins for ever on core 2, below the other
//! PDs of its core, after telling `smp_worker` (channel 0) and `smp_low` (channel 1) that
//! it has started.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};

const WORKER: Channel = Channel::new(0);
const LOW: Channel = Channel::new(1);

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: spinning for ever on core 2", pd_name().unwrap());
    WORKER.notify();
    LOW.notify();
    loop {
        core::hint::spin_loop();
    }
    #[allow(unreachable_code, reason = "the type init must return")]
    NullHandler::new()
}
