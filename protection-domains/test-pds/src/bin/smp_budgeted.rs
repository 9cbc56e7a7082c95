//! SMP test PD (`tests/systems/smp-budget.xml`): a spinner with a budget of 2 ms in every
//! 10 ms period, on core 3, above `smp_background`, which spins on the same core.
//!
//! It reads the counter over and over ([`Clock`]): each gap is the rest of a period, which
//! its budget does not cover. It starts measuring at the end of its second gap (the start
//! of a period) and stops at the end of the gap `PERIODS` gaps later, so exactly `PERIODS`
//! periods lie between; it then prints the counter ticks it ran in them, the ticks
//! between, and the ticks `smp_background` ran meanwhile (its running total in the shared
//! word [`smp::BACKGROUND_RAN`], read while it is preempted). The test checks the share.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain, timer};
use atoll_test_pds::smp::{self, BACKGROUND_RAN, Clock};

/// Periods measured.
const PERIODS: u32 = 100;

#[protection_domain]
fn init() -> impl Handler {
    let background = &smp::shared()[BACKGROUND_RAN];
    let mut clock = Clock::new();
    // The first gap may come from the boot; the second ends where a period starts.
    for _ in 0..2 {
        while !clock.step() {}
    }
    let (start, ran, background_ran) = (clock.last, clock.ran, background.load(Ordering::Acquire));
    for _ in 0..PERIODS {
        while !clock.step() {}
    }
    let wall = clock.last - start;
    let ran = clock.ran - ran;
    let background_ran = background.load(Ordering::Acquire) - background_ran;
    let hundredths = ran * 10_000 / wall.max(1);
    debug_println!(
        "{}: {PERIODS} periods: ran {ran} ticks of {wall} ({}.{:02}%), the lower-priority spinner {background_ran}; counter at {} Hz",
        pd_name().unwrap(),
        hundredths / 100,
        hundredths % 100,
        timer::counter_frequency()
    );
    NullHandler::new()
}
