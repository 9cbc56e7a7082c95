//! The `storage_blk` PD: the block-device side of the default system's storage service, on
//! core 3 of the `storage` replica (the service itself runs on core 2). Its initialiser
//! starts it at EL0; it announces itself and answers each notification from `storage` on
//! channel 0 with one back, which is the two PDs' start-up handshake. Its device code comes
//! with the storage work.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

/// The channel to `storage`.
const STORAGE: Channel = Channel::new(0);

struct Block;

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: running at EL0", pd_name().unwrap());
    Block
}

impl Handler for Block {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(STORAGE) {
            STORAGE.notify();
        }
        Ok(())
    }
}
