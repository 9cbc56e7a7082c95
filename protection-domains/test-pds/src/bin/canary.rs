//! The canary (`tests/systems/fuzz.xml`), alone on another replica than the fuzzer's: it
//! owns its core's physical timer and, every millisecond, checks that its own memory still
//! holds its pattern, beats, and notifies the watchdog across replicas (the watchdog's
//! clock). The fuzzer can notify it at random.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::AtomicU64;

use atoll_microkit::timer::{
    arm_physical_timer, claim_physical_timer, counter, counter_frequency, disarm_physical_timer,
};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};
use atoll_test_pds::fuzz::{self, bump};

const TIMER: Channel = Channel::new(0);
const WATCHDOG: Channel = Channel::new(1);
/// Distinguishes this PD's pattern from the witness's.
const OWNER: u64 = 2;
const WORDS: usize = 2048;

static MEMORY: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

struct Canary {
    period: u64,
    deadline: u64,
}

impl Handler for Canary {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let beat = fuzz::canary_beat();
        if !channels.contains(TIMER) {
            bump(&beat.pokes);
            return Ok(());
        }
        disarm_physical_timer();
        fuzz::beat(OWNER, &MEMORY, beat);
        WATCHDOG.notify();
        // The next tick a period after the last deadline, or from now if that has passed.
        self.deadline = (self.deadline + self.period).max(counter() + 1);
        arm_physical_timer(self.deadline);
        if TIMER.irq_ack().is_err() {
            debug_println!("{}: cannot acknowledge the timer", pd_name().unwrap());
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    fuzz::fill(OWNER, &MEMORY);
    let period = (counter_frequency() / 1000).max(1);
    if claim_physical_timer(TIMER).is_err() {
        debug_println!("{}: cannot claim the timer", pd_name().unwrap_or("canary"));
    }
    let deadline = counter() + period;
    arm_physical_timer(deadline);
    Canary { period, deadline }
}
