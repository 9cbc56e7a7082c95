//! Benchmark PD: the cheapest system call a PD makes, a non-blocking wait on its own
//! notification with nothing pending (it returns at once with no bits). After `WARMUP`
//! calls it times `ROUNDS` more and prints the average.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_abi::pd::slot;
use atoll_microkit::{Handler, NullHandler, protection_domain};
use atoll_sys::{Cap, Notification};

use atoll_bench_pds::Mark;

const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;

/// `NBWait` on the PD's notification; the bits it returns.
fn poll() -> u64 {
    Cap::<Notification>::from_bits(slot::INPUT.into()).poll()
}

#[protection_domain]
fn init() -> impl Handler {
    for _ in 0..WARMUP {
        poll();
    }
    let start = Mark::now();
    for _ in 0..ROUNDS {
        core::hint::black_box(poll());
    }
    start.report("trivial system call", ROUNDS);
    NullHandler::new()
}
