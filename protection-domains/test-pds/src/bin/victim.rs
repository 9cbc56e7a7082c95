//! Cross-replica test PD (`tests/systems/cross.xml`): on replica c, which one test stops on
//! purpose; reports the first notification from `prober`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};

struct Victim {
    notified: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    Victim { notified: false }
}

impl Handler for Victim {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !self.notified {
            self.notified = true;
            debug_println!("{}: notified on {channels}", pd_name().unwrap());
        }
        Ok(())
    }
}
