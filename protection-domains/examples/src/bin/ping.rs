//! Notify ping-pong, the pinging side (`pingpong/system.xml`): it notifies `pong` on
//! channel 0 and counts the notifications that come back.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

const PONG: Channel = Channel::new(0);
const ROUNDS: u32 = 100;

struct Ping {
    rounds: u32,
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: sending {ROUNDS} pings", pd_name().unwrap());
    PONG.notify();
    Ping { rounds: 0 }
}

impl Handler for Ping {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PONG) {
            debug_println!(
                "{}: unexpected notification from {channels}",
                pd_name().unwrap()
            );
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds < ROUNDS {
            PONG.notify();
        } else {
            debug_println!("{}: {} round trips done", pd_name().unwrap(), self.rounds);
        }
        Ok(())
    }
}
