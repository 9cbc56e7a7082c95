//! SMP test PD (`tests/systems/smp-budget.xml`): spins for ever on core 3 below
//! `smp_budgeted`, keeping the running total of the counter ticks it ran ([`Clock`]) in
//! the shared word [`smp::BACKGROUND_RAN`].
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_microkit::{Handler, NullHandler, protection_domain};
use atoll_test_pds::smp::{self, BACKGROUND_RAN, Clock};

#[protection_domain]
fn init() -> impl Handler {
    let ran = &smp::shared()[BACKGROUND_RAN];
    let mut clock = Clock::new();
    loop {
        clock.step();
        ran.store(clock.ran, Ordering::Release);
    }
    #[allow(unreachable_code, reason = "the type init must return")]
    NullHandler::new()
}
