//! Cross-replica test PD (`tests/systems/cross.xml`): the slow receiver of `fanout`'s
//! notifications. It records every channel bit delivered and spins after each delivery, so
//! notifications coalesce. When channel 61 (sent last) arrives, every bit `fanout` set
//! before it must have arrived with it or earlier.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};

const SPREAD_MASK: u64 = (1 << 60) - 1;
const FLOOD_BIT: u64 = 1 << 60;
const DONE_BIT: u64 = 1 << 61;
/// Iterations of busy work after each delivery.
const SLOW: u64 = 20_000;

struct Fanin {
    seen: u64,
    deliveries: u32,
    floods: u32,
    spread_reported: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    Fanin {
        seen: 0,
        deliveries: 0,
        floods: 0,
        spread_reported: false,
    }
}

impl Handler for Fanin {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let bits = channels.bits();
        self.deliveries += 1;
        self.seen |= bits;
        if bits & FLOOD_BIT != 0 {
            self.floods += 1;
        }
        if !self.spread_reported && self.seen & SPREAD_MASK == SPREAD_MASK {
            self.spread_reported = true;
            debug_println!("{}: all 60 channels delivered", pd_name());
        }
        if bits & DONE_BIT != 0 {
            let missing = (SPREAD_MASK | FLOOD_BIT) & !self.seen;
            if missing == 0 {
                debug_println!(
                    "{}: flood over: channel 60 delivered {} times, {} deliveries in all; no bit lost",
                    pd_name(),
                    self.floods,
                    self.deliveries
                );
            } else {
                debug_println!("{}: FAILED: bits {missing:#x} never arrived", pd_name());
            }
        }
        for i in 0..SLOW {
            core::hint::black_box(i);
        }
        Ok(())
    }
}
