//! Benchmark PD: `bench_ping`'s notify round trips ([`atoll_bench_pds::ping`]) with `pong`
//! on its own core, in a replica whose other core may be kept busy by `bench_spin`. It
//! reports as `bench_ping` does, less the spinner's instructions in its window
//! ([`busy::Spins`]), so that its figure is the round trip's work on this core plus what
//! the kernel does on the other.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, protection_domain};

use atoll_bench_pds::{busy, ping};

#[protection_domain]
fn init() -> impl Handler {
    ping::start::<busy::Spins>()
}
