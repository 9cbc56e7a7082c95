//! The `storage` PD: the storage service PD of the default system, on core 2 of the
//! `storage` replica. Its initialiser starts it at EL0; it announces itself, then shakes
//! hands with its block-device side (`storage_blk`, on the replica's other core): it
//! notifies it on channel 1 and reports its answer. Its service code comes with the
//! cross-replica channel work.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

/// The channel to `storage_blk`.
const BLOCK: Channel = Channel::new(1);

struct Storage {
    /// Whether the block side has answered the start-up notification.
    answered: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: running at EL0", pd_name().unwrap());
    BLOCK.notify();
    Storage { answered: false }
}

impl Handler for Storage {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(BLOCK) && !self.answered {
            self.answered = true;
            debug_println!("{}: block side answered", pd_name().unwrap());
        }
        Ok(())
    }
}
