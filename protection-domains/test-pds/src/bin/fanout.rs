//! Cross-replica test PD (`tests/systems/cross.xml`): notifies `fanin`, on another replica,
//! once on each of channels 0–59, then floods channel 60 (with a channel of 0–59 every 97
//! notifies) while `fanin` handles each notification slowly, and finally notifies channel
//! 61. A lost wakeup would leave bits in the pending word with no doorbell to fetch them.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};
use atoll_test_pds::fan::{DONE, FLOOD, SPREAD};

/// Notifies in the flood.
const FLOOD_NOTIFIES: usize = 5000;

#[protection_domain]
fn init() -> impl Handler {
    debug_println!(
        "{}: notifying channels 0 to {}",
        pd_name().unwrap(),
        SPREAD - 1
    );
    for id in 0..SPREAD {
        Channel::new(id).notify();
    }
    debug_println!(
        "{}: flooding channel 60 with {FLOOD_NOTIFIES} notifies",
        pd_name().unwrap()
    );
    for i in 0..FLOOD_NOTIFIES {
        FLOOD.notify();
        if i % 97 == 0 {
            Channel::new(i / 97 % SPREAD).notify();
        }
    }
    DONE.notify();
    debug_println!("{}: done", pd_name().unwrap());
    NullHandler::new()
}
