//! The fuzzer's child (`tests/systems/fuzz.xml`): gives the fuzzer a TCB to invoke at
//! random. It waits for notifications and ignores them.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, protection_domain};

struct Puppet;

impl Handler for Puppet {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Puppet
}
