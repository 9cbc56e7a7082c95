//! Benchmark PD: the cheapest system call a PD makes, a non-blocking wait on its own
//! notification with nothing pending (it returns at once with no bits). After `WARMUP`
//! calls it times `ROUNDS` more and prints the average.
#![no_std]
#![no_main]

use atoll_abi::microkit::slot;
use atoll_abi::syscall;
use atoll_microkit::{Handler, NullHandler, protection_domain};

#[path = "../counters.rs"]
mod counters;
use counters::Mark;

const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;

/// `NBWait` on the PD's notification; the bits it returns.
fn poll() -> u64 {
    let mut x0 = u64::from(slot::INPUT);
    // SAFETY: a system call: the kernel changes only the registers declared here (x0, x1 and
    // the message registers x2–x5) and touches no memory of this program.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") x0,
            out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            in("x7") syscall::NB_WAIT as u64,
            options(nostack),
        );
    }
    x0
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
