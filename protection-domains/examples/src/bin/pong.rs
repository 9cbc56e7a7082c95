//! Notify ping-pong, the answering side (`pingpong/system.xml`): every notification from
//! `ping` on channel 1 is answered with one back.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, ChannelSet, Handler, Infallible, protection_domain};

const PING: Channel = Channel::new(1);

struct Pong;

#[protection_domain]
fn init() -> impl Handler {
    Pong
}

impl Handler for Pong {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(PING) {
            PING.notify();
        }
        Ok(())
    }
}
