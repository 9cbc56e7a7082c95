//! The minimum protection domain: `init` runs once and returns the handler, then the
//! runtime's event loop calls the handler for every notification (and, when the description
//! gives it callers or children, every protected procedure call and child fault).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

/// A channel of this PD, by its id in the description.
const PEER: Channel = Channel::new(0);

struct Template {
    notifications: u64,
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: ready", pd_name().unwrap());
    Template { notifications: 0 }
}

impl Handler for Template {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(PEER) {
            self.notifications += 1;
            debug_println!(
                "{}: notification {}",
                pd_name().unwrap(),
                self.notifications
            );
        }
        Ok(())
    }
}
