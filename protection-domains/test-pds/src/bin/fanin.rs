//! Cross-replica test PD (`tests/systems/cross.xml`): the slow receiver of `fanout`'s
//! notifications. It records every channel bit delivered and spins after each delivery, so
//! notifications coalesce. When channel 61 (sent last) arrives, every bit `fanout` set
//! before it must have arrived with it or earlier.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};
use atoll_test_pds::fan::{DONE, FLOOD, SPREAD};

const SPREAD_MASK: u64 = (1 << SPREAD) - 1;
/// Iterations of busy work after each delivery.
const SLOW: u64 = 20_000;

struct Fanin {
    seen: u64,
    deliveries: u32,
    floods: u32,
}

#[protection_domain]
fn init() -> impl Handler {
    Fanin {
        seen: 0,
        deliveries: 0,
        floods: 0,
    }
}

impl Handler for Fanin {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let before = self.seen;
        self.deliveries += 1;
        self.seen |= channels.bits();
        if channels.contains(FLOOD) {
            self.floods += 1;
        }
        let spread = |seen: u64| seen & SPREAD_MASK == SPREAD_MASK;
        if !spread(before) && spread(self.seen) {
            debug_println!("{}: all {SPREAD} channels delivered", pd_name().unwrap());
        }
        if channels.contains(DONE) {
            let missing = (SPREAD_MASK | 1 << FLOOD.index()) & !self.seen;
            if missing == 0 {
                debug_println!(
                    "{}: flood over: channel 60 delivered {} times, {} deliveries in all; no bit lost",
                    pd_name().unwrap(),
                    self.floods,
                    self.deliveries
                );
            } else {
                debug_println!(
                    "{}: FAILED: bits {missing:#x} never arrived",
                    pd_name().unwrap()
                );
            }
        }
        for i in 0..SLOW {
            core::hint::black_box(i);
        }
        Ok(())
    }
}
