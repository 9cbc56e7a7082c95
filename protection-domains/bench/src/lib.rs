//! What the benchmark PDs share: the two counters they read, and their report line.
#![no_std]
#![forbid(unsafe_code)]

use atoll_microkit::{debug_println, pd_name};

/// Instructions retired so far (PMU event counter 0, which the kernel sets up and lets EL0
/// read). Under `-icount` it counts what every core executed, and not the virtual time
/// QEMU skips while all cores are idle.
pub use atoll_sys::counter::instructions;

/// Instructions retired from reading `from` to reading `to` (the counter is 32 bits wide).
pub fn instructions_between(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & 0xFFFF_FFFF
}

/// The virtual counter (the kernel lets EL0 read it).
pub use atoll_microkit::timer::counter as ticks;
/// The virtual counter's frequency in hertz (never 0).
pub use atoll_microkit::timer::counter_frequency as ticks_per_second;

/// Prints `BENCH <name>: <average> instructions[, <ns> ns virtual time], over <rounds>
/// rounds`: `instructions` and `ns` are totals over the rounds. The average has two
/// decimals: it is exact to the count, so they show a change of one instruction in a
/// hundred rounds.
pub fn report_average(name: &str, instructions: u64, ns: Option<u128>, rounds: u32) {
    /// `, <ns> ns virtual time`, or nothing.
    struct VirtualTime(Option<u128>);
    impl core::fmt::Display for VirtualTime {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                Some(ns) => write!(f, ", {ns} ns virtual time"),
                None => Ok(()),
            }
        }
    }
    let rounds = u64::from(rounds.max(1));
    let hundredths = instructions * 100 / rounds;
    debug_println!(
        "{}: BENCH {name}: {}.{:02} instructions{}, over {rounds} rounds",
        pd_name().unwrap(),
        hundredths / 100,
        hundredths % 100,
        VirtualTime(ns.map(|ns| ns / u128::from(rounds)))
    );
}

/// A reading of both counters.
#[derive(Clone, Copy, Default)]
pub struct Mark {
    instructions: u64,
    ticks: u64,
}

impl Mark {
    /// Now.
    pub fn now() -> Self {
        Self {
            instructions: instructions(),
            ticks: ticks(),
        }
    }

    /// Prints `BENCH <name>: <instructions> instructions, <ns> ns virtual time, over
    /// <rounds> rounds`, the averages since this mark, less the cost of reading the
    /// instruction counter (measured here by two reads back to back).
    pub fn report(self, name: &str, rounds: u32) {
        let (done, end) = (instructions(), ticks());
        let read_cost = {
            let first = instructions();
            instructions_between(first, instructions())
        };
        let executed = instructions_between(self.instructions, done).wrapping_sub(read_cost);
        let ns = u128::from(end - self.ticks) * 1_000_000_000 / u128::from(ticks_per_second());
        report_average(name, executed, Some(ns), rounds);
    }
}
