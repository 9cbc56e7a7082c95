//! Benchmark PD: notify round trips on channel 0 with the ping-pong example's `pong`. After
//! `WARMUP` round trips it reads the instruction counter and the virtual counter, runs
//! `ROUNDS` more, reads them again and prints the averages: instructions executed (on every
//! core) and virtual nanoseconds, which under `-icount shift=0` also include the time QEMU
//! skips while every core is idle.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, ChannelSet, Handler, Infallible, protection_domain};

use atoll_bench_pds::Mark;

const PONG: Channel = Channel::new(0);
const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;

struct Ping {
    rounds: u32,
    start: Mark,
}

#[protection_domain]
fn init() -> impl Handler {
    PONG.notify();
    Ping {
        rounds: 0,
        start: Mark::default(),
    }
}

impl Handler for Ping {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PONG) {
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds == WARMUP {
            self.start = Mark::now();
        }
        if self.rounds == WARMUP + ROUNDS {
            self.start.report("notify round trip", ROUNDS);
            return Ok(());
        }
        PONG.notify();
        Ok(())
    }
}
