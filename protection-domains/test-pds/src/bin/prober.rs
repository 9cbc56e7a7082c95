//! Cross-replica test PD (`tests/systems/cross.xml`): notifies `victim`, on replica c, with
//! `try_notify` every so often. When replica c is up every notify is delivered; when the
//! test stops it on purpose, a notify towards it is a no-op the prober is told about, and
//! the prober carries on rather than hang.
//!
//! The attempts are spread over two seconds of counter time, not a number of loop
//! iterations: the cores run in host time, and on a loaded host replica c may take far
//! longer than usual to reach (and fail) its boot while replica a runs on.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::timer::{counter, counter_frequency};
use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};

const VICTIM: Channel = Channel::new(0);
const ATTEMPTS: u64 = 50;
/// Milliseconds between attempts: the 50 span two seconds.
const PAUSE_MS: u64 = 40;

#[protection_domain]
fn init() -> impl Handler {
    let pause = counter_frequency() * PAUSE_MS / 1000;
    for attempt in 1..=ATTEMPTS {
        if let Err(e) = VICTIM.try_notify() {
            debug_println!("{}: notify {attempt}: {e}; carrying on", pd_name().unwrap());
            return NullHandler::new();
        }
        let until = counter() + pause;
        while counter() < until {
            core::hint::spin_loop();
        }
    }
    debug_println!("{}: {ATTEMPTS} notifies delivered", pd_name().unwrap());
    NullHandler::new()
}
