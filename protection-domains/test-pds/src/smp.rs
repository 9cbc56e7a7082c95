//! What the PDs of the SMP tests share (`tests/systems/smp*.xml`, issue 18: PDs on every
//! core of a replica): the shared region's words, and a clock that tells the time a
//! spinning PD ran from the time it was kept off its core.

use core::sync::atomic::AtomicU64;

use atoll_microkit::{memory_region_symbol, timer};

/// Bytes of the shared region `smp_shared` (one page).
pub const REGION_BYTES: usize = 0x1000;

/// Word of `smp_shared` in which `smp_moved` writes how many notifications it handled.
pub const HANDLED: usize = 0;
/// Word of `smp_shared` in which `smp_background` writes the counter ticks it ran.
pub const BACKGROUND_RAN: usize = 1;

/// The shared region `smp_shared` as words, which the description maps read-write for the
/// PD's whole life in every PD that uses it.
pub fn shared() -> &'static [AtomicU64] {
    let words = memory_region_symbol!(smp_shared: *mut [AtomicU64], bytes = REGION_BYTES);
    // SAFETY: the region is mapped read-write at a page-aligned address for the PD's whole
    // life; every bit pattern is a valid `AtomicU64`, and the PDs sharing it touch it only
    // through these atomics, so no non-atomic access races with them.
    unsafe { words.as_ref() }
}

/// A spinning PD's view of time: it reads the counter over and over, and a step between
/// two readings longer than [`Clock::GAP_US`] is time it did not run (another PD ran, or
/// its budget ran out); shorter steps are time it ran, kernel entries included (the kernel
/// charges those to the thread it interrupted).
pub struct Clock {
    /// The last reading.
    pub last: u64,
    /// Ticks run so far.
    pub ran: u64,
    gap: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A step longer than this (in microseconds) is a gap: far longer than any kernel entry
    /// (a few microseconds, under QEMU too), far shorter than being kept off the core for
    /// the rest of a period.
    pub const GAP_US: u64 = 100;

    /// Starts now.
    pub fn new() -> Self {
        Self {
            last: timer::counter(),
            ran: 0,
            gap: timer::counter_frequency() * Self::GAP_US / 1_000_000,
        }
    }

    /// Reads the counter: whether the step since the last reading was a gap.
    pub fn step(&mut self) -> bool {
        let now = timer::counter();
        let step = now.wrapping_sub(self.last);
        self.last = now;
        if step > self.gap {
            return true;
        }
        self.ran += step;
        false
    }
}
