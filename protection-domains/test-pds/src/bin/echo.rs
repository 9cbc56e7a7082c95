//! Hostile-PD test (`tests/systems/hostile.xml`): on another replica than `chatter`, says it
//! heard it. Its line reaches the console only if the console-owning replica's kernel is
//! still draining every replica's log.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};

struct Echo;

impl Handler for Echo {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        debug_println!("{}: heard the chatter on {channels}", pd_name().unwrap());
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Echo
}
