//! Hostile-PD test (`tests/systems/hostile.xml`): `meddler`'s child. It waits for
//! notifications and prints each set it gets. Its parent resumes and suspends it while it
//! waits; it must never report a notification nobody sent (a resumed receive once returned
//! its own capability address, which read as channel 0).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};

struct Sleeper;

impl Handler for Sleeper {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        debug_println!("{}: notified on {channels}", pd_name().unwrap());
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: waiting", pd_name().unwrap());
    Sleeper
}
