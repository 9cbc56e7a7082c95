//! Benchmark PD: answers every notification on channel 0 with one back.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, ChannelSet, Handler, Infallible, protection_domain};

const PING: Channel = Channel::new(0);

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
