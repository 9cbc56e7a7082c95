//! The worker of `domains/system.xml`: a PD of low priority in another domain than the
//! spinner. It runs only in its domain's slots, so it sees the clock jump each time the
//! schedule gives the core to the spinner's domain; after three such gaps it reports
//! them. (The clock is Atoll's `timer` extension.)
#![no_std]
#![no_main]

use sel4_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain, timer};

/// Gaps to see.
const GAPS: usize = 3;

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap();
    let per_us = timer::counter_frequency() / 1_000_000;
    // A jump of more than 0.5 ms between two readings is a slot of the other domain.
    let threshold = per_us * 500;
    let mut gaps = [0u64; GAPS];
    let mut seen = 0;
    let mut last = timer::counter();
    while seen < GAPS {
        let now = timer::counter();
        if now.saturating_sub(last) > threshold {
            gaps[seen] = (now - last) / per_us.max(1);
            seen += 1;
        }
        last = now;
    }
    debug_println!(
        "{name}: ran in {} slots of its domain while a higher-priority PD spins in another",
        GAPS + 1
    );
    debug_println!(
        "{name}: gaps of {} us, {} us and {} us",
        gaps[0],
        gaps[1],
        gaps[2]
    );
    NullHandler::new()
}
