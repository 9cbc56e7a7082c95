//! SMP test PD (`tests/systems/smp-hog.xml`): high-priority work on core 3 while
//! `smp_hog` spins on core 2. Once the hog says on channel 0 that it spins, it computes a
//! checksum and prints it, then makes `ROUNDS` notify round trips on channel 1 with
//! `smp_partner` (the ping-pong example's `pong`), which runs on the hog's core above the
//! hog's priority, and prints how long they took.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain, timer,
};

const HOG: Channel = Channel::new(0);
const PARTNER: Channel = Channel::new(1);
const ROUNDS: u32 = 1000;
/// Steps of the computation.
const STEPS: u64 = 100_000;

struct Worker {
    rounds: u32,
    start: u64,
}

#[protection_domain]
fn init() -> impl Handler {
    Worker {
        rounds: 0,
        start: 0,
    }
}

/// A checksum of `STEPS` steps of a 64-bit mix, which the test knows.
fn checksum() -> u64 {
    let mut x = 0u64;
    for i in 0..STEPS {
        x = (x ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    }
    x
}

impl Handler for Worker {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let name = pd_name().unwrap();
        if channels.contains(HOG) {
            debug_println!(
                "{name}: computed {:#018x} on core 3 while smp_hog spins on core 2",
                checksum()
            );
            self.start = timer::counter();
            PARTNER.notify();
        }
        if channels.contains(PARTNER) {
            self.rounds += 1;
            if self.rounds < ROUNDS {
                PARTNER.notify();
            } else {
                let ms = (timer::counter() - self.start) * 1000 / timer::counter_frequency();
                debug_println!(
                    "{name}: {} round trips with smp_partner on the hog's core in {ms} ms",
                    self.rounds
                );
            }
        }
        Ok(())
    }
}
