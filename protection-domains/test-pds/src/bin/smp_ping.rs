//! SMP test PD (`tests/systems/smp.xml`): notify ping-pong across the two cores of one
//! replica. It runs on core 2 and notifies `smp_pong` (the ping-pong example's `pong`, on
//! core 3) on channel 0; each notification that comes back starts the next round. After
//! `ROUNDS` round trips it prints the count and the time they took.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain, timer,
};

const PONG: Channel = Channel::new(0);
const ROUNDS: u32 = 100_000;

struct Ping {
    rounds: u32,
    start: u64,
}

#[protection_domain]
fn init() -> impl Handler {
    let start = timer::counter();
    PONG.notify();
    Ping { rounds: 0, start }
}

impl Handler for Ping {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PONG) {
            debug_println!(
                "{}: FAILED: unexpected notification from {channels}",
                pd_name().unwrap()
            );
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds < ROUNDS {
            PONG.notify();
            return Ok(());
        }
        let ms = (timer::counter() - self.start) * 1000 / timer::counter_frequency();
        debug_println!(
            "{}: {} round trips with smp_pong on the other core in {ms} ms",
            pd_name().unwrap(),
            self.rounds
        );
        Ok(())
    }
}
