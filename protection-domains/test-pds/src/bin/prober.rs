//! Cross-replica test PD (`tests/systems/cross.xml`): notifies `victim`, on replica c, with
//! `try_notify` every so often. When replica c is up every notify is delivered; when the
//! test stops it on purpose, a notify towards it is a no-op the prober is told about, and
//! the prober carries on rather than hang.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};

const VICTIM: Channel = Channel::new(0);
const ATTEMPTS: u32 = 50;
/// Iterations of busy work between attempts.
const PAUSE: u64 = 100_000;

#[protection_domain]
fn init() -> impl Handler {
    for attempt in 1..=ATTEMPTS {
        if let Err(e) = VICTIM.try_notify() {
            debug_println!("{}: notify {attempt}: {e}; carrying on", pd_name().unwrap());
            return NullHandler::new();
        }
        for i in 0..PAUSE {
            core::hint::black_box(i);
        }
    }
    debug_println!("{}: {ATTEMPTS} notifies delivered", pd_name().unwrap());
    NullHandler::new()
}
