//! Benchmark PD: notify round trips on channel 0 with the ping-pong example's `pong`
//! ([`atoll_bench_pds::ping`]), measured with a [`Mark`].
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, protection_domain};

use atoll_bench_pds::{Mark, ping};

#[protection_domain]
fn init() -> impl Handler {
    ping::start::<Mark>()
}
