//! Benchmark PD: keeps its core busy for ever, counting its iterations in the shared word
//! `bench_spins` ([`busy::spins`]) with a loop of exactly [`busy::SPIN_INSTRUCTIONS`]
//! instructions, so that the measuring PD can leave them out of its figure.
#![no_std]
#![no_main]

use atoll_bench_pds::busy;
use atoll_microkit::{Handler, NullHandler, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    let word = busy::spins().as_ptr();
    // SAFETY: the loop only writes the shared word `bench_spins`, which is mapped
    // read-write for the PD's whole life and aligned to 8 bytes (an aligned 64-bit store is
    // single-copy atomic, as the reader's atomic load expects); it touches no stack and
    // never returns, so the count register it changes is never seen again.
    unsafe {
        core::arch::asm!(
            "2:",
            "add {n}, {n}, #1",
            "str {n}, [{word}]",
            "b 2b",
            n = in(reg) 0u64,
            word = in(reg) word,
            options(noreturn, nostack),
        );
    }
    #[allow(unreachable_code, reason = "the type init must return")]
    NullHandler::new()
}
