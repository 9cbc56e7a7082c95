//! Benchmark PD: protected procedure calls to `bench_server` on channel 0, one message
//! register each way. After `WARMUP` calls it times `ROUNDS` more and prints the average.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, MessageInfo, NullHandler, protection_domain, set_mr};

use atoll_bench_pds::Mark;

const SERVER: Channel = Channel::new(0);
const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;

#[protection_domain]
fn init() -> impl Handler {
    let call = || {
        set_mr(0, 1);
        SERVER.pp_call(MessageInfo::new(0, 1))
    };
    for _ in 0..WARMUP {
        call();
    }
    let start = Mark::now();
    for _ in 0..ROUNDS {
        call();
    }
    start.report("ppc round trip", ROUNDS);
    NullHandler::new()
}
