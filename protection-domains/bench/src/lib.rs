//! What the benchmark PDs share: the two counters they read, their report line, the
//! notify ping-pong's measuring side, and the count a spinning PD keeps so that a
//! measuring PD can leave its instructions out.
#![no_std]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, memory_region_symbol, pd_name,
};

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
        self.finish(name, rounds, done, end, 0);
    }

    /// [`Mark::report`], less `excluded()` instructions, which it reads just after the
    /// counters: what other cores executed meanwhile that is not the rounds' work.
    pub fn report_less(self, name: &str, rounds: u32, excluded: impl FnOnce() -> u64) {
        let (done, end) = (instructions(), ticks());
        let excluded = excluded();
        self.finish(name, rounds, done, end, excluded);
    }

    /// Prints the averages from this mark to the readings `done` and `end`, less
    /// `excluded` instructions and the cost of reading the counter.
    fn finish(self, name: &str, rounds: u32, done: u64, end: u64, excluded: u64) {
        let read_cost = {
            let first = instructions();
            instructions_between(first, instructions())
        };
        let executed = instructions_between(self.instructions, done)
            .wrapping_sub(read_cost)
            .wrapping_sub(excluded);
        let ns = u128::from(end - self.ticks) * 1_000_000_000 / u128::from(ticks_per_second());
        report_average(name, executed, Some(ns), rounds);
    }
}

/// Where a measurement starts, and how it is reported: a [`Mark`], or a
/// [`busy::Spins`].
pub trait Start: Copy + Default {
    /// Now.
    fn now() -> Self;
    /// Prints the `BENCH` line of `rounds` rounds since this start.
    fn report(self, name: &str, rounds: u32);
}

impl Start for Mark {
    fn now() -> Self {
        Mark::now()
    }

    fn report(self, name: &str, rounds: u32) {
        Mark::report(self, name, rounds);
    }
}

/// Notify round trips on channel 0 with the ping-pong example's `pong` (`bench_ping`,
/// `bench_ping_busy`). After [`ping::WARMUP`] round trips it starts measuring (`S`), runs
/// [`ping::ROUNDS`] more and prints the averages: instructions executed (on every core)
/// and virtual nanoseconds, which under `-icount shift=0` also include the time QEMU skips
/// while every core is idle.
pub mod ping {
    use super::*;

    /// The channel to `pong`.
    pub const PONG: Channel = Channel::new(0);
    /// Round trips before the measurement starts.
    pub const WARMUP: u32 = 100;
    /// Round trips measured.
    pub const ROUNDS: u32 = 10_000;

    /// The measuring side's state.
    pub struct Ping<S> {
        rounds: u32,
        start: S,
    }

    /// Sends the first notification; the handler for the rest.
    pub fn start<S: Start>() -> Ping<S> {
        PONG.notify();
        Ping {
            rounds: 0,
            start: S::default(),
        }
    }

    impl<S: Start> Handler for Ping<S> {
        type Error = Infallible;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
            if !channels.contains(PONG) {
                return Ok(());
            }
            self.rounds += 1;
            if self.rounds == WARMUP {
                self.start = S::now();
            }
            if self.rounds == WARMUP + ROUNDS {
                self.start.report("notify round trip", ROUNDS);
                return Ok(());
            }
            PONG.notify();
            Ok(())
        }
    }
}

/// A PD spinning on another core (`bench_spin`) keeps a core busy without the measuring
/// PD counting its instructions. Under `-icount` the instruction counter counts what every
/// core executes, so a spinner's instructions would fill the measured window (QEMU runs
/// the cores in turn, each for a slice of the time to the next timer event); instead the
/// spinner runs a loop of exactly [`SPIN_INSTRUCTIONS`] instructions that counts its
/// iterations in the shared word `bench_spins`, and the measuring PD leaves out that many
/// instructions per iteration made in its window ([`Spins`]).
pub mod busy {
    use super::*;

    /// Instructions in one iteration of the spinner's loop (`add`, `str`, `b`).
    pub const SPIN_INSTRUCTIONS: u64 = 3;

    /// The shared word `bench_spins` (region of one page, mapped read-write in the spinner
    /// and the measuring PD for their whole lives): the spinner's iterations so far.
    #[allow(
        unsafe_code,
        reason = "the one shared word, read and written atomically"
    )]
    pub fn spins() -> &'static AtomicU64 {
        let word = memory_region_symbol!(bench_spins: *mut AtomicU64, bytes = 0x1000);
        // SAFETY: the region is mapped read-write at a page-aligned address for the PD's
        // whole life; every bit pattern is a valid `AtomicU64`; the spinner writes the word
        // only with single-copy-atomic aligned 64-bit stores, and this PD only reads it
        // through the atomic.
        unsafe { word.as_ref() }
    }

    /// A [`Mark`] that also notes the spinner's count.
    #[derive(Clone, Copy, Default)]
    pub struct Spins {
        mark: Mark,
        spins: u64,
    }

    impl Start for Spins {
        /// Now: the spinner's count, then the counters.
        fn now() -> Self {
            let spins = spins().load(Ordering::Relaxed);
            Self {
                mark: Mark::now(),
                spins,
            }
        }

        /// [`Mark::report`], less the spinner's instructions since this mark.
        fn report(self, name: &str, rounds: u32) {
            self.mark.report_less(name, rounds, || {
                let spun = spins().load(Ordering::Relaxed).wrapping_sub(self.spins);
                spun.wrapping_mul(SPIN_INSTRUCTIONS)
            });
        }
    }
}
