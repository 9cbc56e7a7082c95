//! The witness (`tests/systems/fuzz.xml`), on the fuzzer's replica: whenever the watchdog
//! pokes it, it checks that its own memory still holds its pattern and beats. The fuzzer
//! can call and notify it at random; it answers each call with its beat count.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, MessageInfo, protection_domain, set_mr,
};
use atoll_test_pds::fuzz::{self, bump};

const POKE: Channel = Channel::new(0);
/// Distinguishes this PD's pattern from the canary's.
const OWNER: u64 = 1;
const WORDS: usize = 2048;

static MEMORY: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

struct Witness;

impl Handler for Witness {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let beat = fuzz::witness_beat();
        if channels.contains(POKE) {
            fuzz::beat(OWNER, &MEMORY, beat);
        } else {
            bump(&beat.pokes);
        }
        Ok(())
    }

    fn protected(&mut self, _: Channel, _: MessageInfo) -> Result<MessageInfo, Self::Error> {
        set_mr(0, fuzz::witness_beat().beats.load(Ordering::Relaxed));
        Ok(MessageInfo::new(0, 1))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    fuzz::fill(OWNER, &MEMORY);
    Witness
}
