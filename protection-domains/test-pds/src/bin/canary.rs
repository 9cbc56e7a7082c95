//! The canary (`tests/systems/fuzz.xml`), alone on another replica than the fuzzer's: it
//! owns its core's physical timer and, every millisecond, checks that its own memory still
//! holds its pattern, beats, and notifies the watchdog across replicas (the watchdog's
//! clock). The fuzzer can notify it at random.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, memory_region_symbol, pd_name,
    protection_domain,
};
use atoll_test_pds::fuzz::{self, Heartbeat, bump};
use atoll_test_pds::timer;

const TIMER: Channel = Channel::new(0);
const WATCHDOG: Channel = Channel::new(1);
/// Distinguishes this PD's pattern from the witness's.
const OWNER: u64 = 2;
const WORDS: usize = 2048;

static MEMORY: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

fn heartbeat() -> &'static Heartbeat {
    fuzz::record(memory_region_symbol!(canary_beat: *mut Heartbeat))
}

struct Canary {
    period: u64,
    deadline: u64,
}

impl Handler for Canary {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let beat = heartbeat();
        if !channels.contains(TIMER) {
            bump(&beat.pokes);
            return Ok(());
        }
        timer::disarm();
        let changed = MEMORY
            .iter()
            .enumerate()
            .find(|(i, w)| w.load(Ordering::Relaxed) != fuzz::pattern(OWNER, *i));
        if let Some((i, _)) = changed
            && beat.changed.load(Ordering::Relaxed) == 0
        {
            beat.changed.store(i as u64 + 1, Ordering::Relaxed);
            debug_println!("{}: memory changed at word {i}", pd_name());
        }
        bump(&beat.beats);
        WATCHDOG.notify();
        // The next tick a period after the last deadline, or from now if that has passed.
        self.deadline = (self.deadline + self.period).max(timer::now() + 1);
        timer::arm(self.deadline);
        if TIMER.irq_ack().is_err() {
            debug_println!("{}: cannot acknowledge the timer", pd_name());
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    for (i, word) in MEMORY.iter().enumerate() {
        word.store(fuzz::pattern(OWNER, i), Ordering::Relaxed);
    }
    let period = (timer::frequency() / 1000).max(1);
    let deadline = timer::now() + period;
    timer::arm(deadline);
    Canary { period, deadline }
}
