//! The real-time PD's statistics: how they are kept ([`Histogram`], [`Window`]) and the
//! region it publishes them in for other replicas to read ([`RtRegion`]).
//!
//! # What is measured
//!
//! The real-time PD runs a job every period, released by its core's timer at the period's
//! start (the *release*). For each period it records
//!
//! - the **release jitter**: when the job started, less the release (nanoseconds);
//! - the **response time**: when the job finished, less the release;
//! - the **kernel path**: when the job started, less when its core's kernel took the
//!   timer's interrupt (the kernel's counter on the status page): the part of the jitter
//!   the kernel spends, apart from the interrupt's way to it;
//! - the **interference** its core suffered during the period, from the kernel's counters
//!   on the status page ([`Interference`]): interrupts foreign to the core, waits for a
//!   kernel lock, and broadcast maintenance executed anywhere on the chip.
//!
//! A job that finishes after its period has ended (the next release) missed its
//! deadline; a release that passes while a job still runs is skipped and counted.
//!
//! # Histograms
//!
//! A [`Histogram`] counts values in [`BUCKETS`] log-linear buckets: exact below
//! [`SUB_BUCKETS`] ns, then [`SUB_BUCKETS`] buckets per power of two, so a bucket is at most
//! 12.5 % wide; the last bucket takes everything from [`Histogram::bucket_start`]`(BUCKETS -
//! 1)` up. It also keeps the exact minimum, maximum and sum. A percentile is the end of the
//! bucket that holds it, never above the maximum: an upper bound, within a bucket's width.
//!
//! # The shared region
//!
//! The PD publishes, every few periods and at the end of each window of
//! [`RtRegion::window_periods`] periods, two [`Window`]s: the one since it started and the
//! last complete one. The region ([`RtRegion`], [`RT_REGION_BYTES`]) has one writer, the PD,
//! and any number of readers mapping it read-only. The writer brackets each publication
//! with a sequence word (odd while it writes); a reader copies the region out and keeps the
//! copy only if the word was even and unchanged around it ([`RtRegion::read`]). Every word is
//! an atomic, so a reader racing the writer, or a writer that wrote anything at all, is
//! never undefined behaviour: a reader trusts nothing in the copy beyond its arithmetic.
//!
//! | offset | field |
//! |---|---|
//! | 0x000 | [`RtRegion::magic`] ([`RT_MAGIC`]), [`RtRegion::version`] ([`RT_VERSION`]), [`RtRegion::seq`] |
//! | 0x010 | period, budget, window length, periods so far, core, the plant's state |
//! | 0x040 | [`RtRegion::total`]: a [`SharedWindow`] since the start |
//! | 0x678 | [`RtRegion::last`]: the last complete window |

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// "ATOLLRT" and a zero: the region holds real-time statistics.
pub const RT_MAGIC: u64 = u64::from_le_bytes(*b"ATOLLRT\0");
/// The layout's version.
pub const RT_VERSION: u32 = 1;
/// Buckets per power of two above the exact ones.
pub const SUB_BUCKETS: usize = 8;
/// Buckets of a [`Histogram`]: exact up to 8 ns, then 8 per power of two up to 16.8 ms.
pub const BUCKETS: usize = 176;
/// Bytes of the shared region (one page).
pub const RT_REGION_BYTES: usize = 4096;

/// A histogram of nanosecond values, with their exact minimum, maximum and sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Values recorded.
    pub count: u64,
    /// The smallest (`u64::MAX` while empty).
    pub min: u64,
    /// The largest.
    pub max: u64,
    /// Their sum (saturating).
    pub sum: u64,
    /// Values per bucket (saturating).
    pub buckets: [u32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
            buckets: [0; BUCKETS],
        }
    }

    /// The bucket that counts `value`.
    pub fn bucket_of(value: u64) -> usize {
        const SUB: u64 = SUB_BUCKETS as u64;
        if value < SUB {
            return value as usize;
        }
        // value >= 8, so its top bit is at least bit 3.
        let top = 63 - u64::from(value.leading_zeros());
        let sub = (value >> (top - 3)) & (SUB - 1);
        let index = (top - 2) * SUB + sub;
        (index as usize).min(BUCKETS - 1)
    }

    /// The smallest value bucket `index` counts (for an index past the last bucket, the
    /// end of the last one).
    pub fn bucket_start(index: usize) -> u64 {
        if index < SUB_BUCKETS {
            return index as u64;
        }
        let index = index.min(BUCKETS) as u64;
        let top = index / SUB_BUCKETS as u64 + 2;
        let sub = index % SUB_BUCKETS as u64;
        (SUB_BUCKETS as u64 + sub) << (top - 3)
    }

    /// Counts `value`.
    pub fn record(&mut self, value: u64) {
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum = self.sum.saturating_add(value);
        if let Some(b) = self.buckets.get_mut(Self::bucket_of(value)) {
            *b = b.saturating_add(1);
        }
    }

    /// The smallest value, 0 while empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    /// The mean, rounded down; 0 while empty.
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// An upper bound of the `per_million`th quantile (990,000 for p99): the end of the
    /// bucket holding it, but not above the maximum; 0 while empty.
    pub fn quantile(&self, per_million: u64) -> u64 {
        let total: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        if total == 0 {
            return 0;
        }
        // The rank of the quantile's value, 1-based: ceil(total * q).
        let rank = (u128::from(total) * u128::from(per_million.min(1_000_000))).div_ceil(1_000_000);
        let rank = u64::try_from(rank).unwrap_or(u64::MAX).max(1);
        let mut seen = 0u64;
        for (i, &b) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(u64::from(b));
            if seen >= rank {
                let end = Self::bucket_start(i + 1).saturating_sub(1);
                return if i + 1 >= BUCKETS {
                    self.max
                } else {
                    end.min(self.max)
                };
            }
        }
        self.max
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum = self.sum.saturating_add(other.sum);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

/// What a core suffered over some periods, from the kernel's counters on the status page
/// (`atoll_abi::shared::CoreCounters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interference {
    /// Interrupts foreign to the core (software-generated and device interrupts).
    pub foreign_irqs: u64,
    /// The most foreign interrupts in one period.
    pub foreign_irqs_max: u64,
    /// Times the core waited for a kernel lock.
    pub lock_waits: u64,
    /// Nanoseconds it spent waiting for one.
    pub lock_wait_ns: u64,
    /// The longest wait for a lock in one period, in nanoseconds.
    pub lock_wait_ns_max: u64,
    /// Broadcast maintenance executed anywhere on the chip (each reaches this core).
    pub broadcasts: u64,
    /// The most broadcast maintenance in one period.
    pub broadcasts_max: u64,
    /// Kernel entries on the core.
    pub kernel_entries: u64,
}

/// One period's interference, as the PD measured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeriodInterference {
    /// Interrupts foreign to the core.
    pub foreign_irqs: u64,
    /// Waits for a kernel lock.
    pub lock_waits: u64,
    /// Nanoseconds spent in them.
    pub lock_wait_ns: u64,
    /// Broadcast maintenance executed on the chip.
    pub broadcasts: u64,
    /// Kernel entries on the core.
    pub kernel_entries: u64,
}

impl Interference {
    /// The fields as words, in their declared order: the layout of
    /// [`SharedWindow::interference`].
    fn to_words(self) -> [u64; 8] {
        [
            self.foreign_irqs,
            self.foreign_irqs_max,
            self.lock_waits,
            self.lock_wait_ns,
            self.lock_wait_ns_max,
            self.broadcasts,
            self.broadcasts_max,
            self.kernel_entries,
        ]
    }

    /// The fields from [`Interference::to_words`]'s words.
    fn from_words(words: [u64; 8]) -> Interference {
        let [
            foreign_irqs,
            foreign_irqs_max,
            lock_waits,
            lock_wait_ns,
            lock_wait_ns_max,
            broadcasts,
            broadcasts_max,
            kernel_entries,
        ] = words;
        Interference {
            foreign_irqs,
            foreign_irqs_max,
            lock_waits,
            lock_wait_ns,
            lock_wait_ns_max,
            broadcasts,
            broadcasts_max,
            kernel_entries,
        }
    }

    /// Counts one period's interference.
    pub fn record(&mut self, p: &PeriodInterference) {
        self.foreign_irqs = self.foreign_irqs.saturating_add(p.foreign_irqs);
        self.foreign_irqs_max = self.foreign_irqs_max.max(p.foreign_irqs);
        self.lock_waits = self.lock_waits.saturating_add(p.lock_waits);
        self.lock_wait_ns = self.lock_wait_ns.saturating_add(p.lock_wait_ns);
        self.lock_wait_ns_max = self.lock_wait_ns_max.max(p.lock_wait_ns);
        self.broadcasts = self.broadcasts.saturating_add(p.broadcasts);
        self.broadcasts_max = self.broadcasts_max.max(p.broadcasts);
        self.kernel_entries = self.kernel_entries.saturating_add(p.kernel_entries);
    }
}

/// The statistics of a run of periods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Which window (0 for the one since the start, else 1, 2, ... in order).
    pub index: u64,
    /// Periods whose job ran.
    pub periods: u64,
    /// Jobs that finished after their deadline (the next release).
    pub deadline_misses: u64,
    /// Releases skipped because the job of an earlier one still ran.
    pub skipped_releases: u64,
    /// Release jitter: start less release, in nanoseconds.
    pub jitter: Histogram,
    /// Response time: end less release, in nanoseconds.
    pub response: Histogram,
    /// What the core suffered.
    pub interference: Interference,
    /// The kernel path: the longest, in nanoseconds.
    pub path_max_ns: u64,
    /// The kernel paths' sum (saturating), in nanoseconds.
    pub path_sum_ns: u64,
    /// Periods whose kernel path is known (the kernel had taken the release's interrupt).
    pub path_count: u64,
}

/// One period's measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    /// Release jitter, in nanoseconds.
    pub jitter_ns: u64,
    /// Response time, in nanoseconds.
    pub response_ns: u64,
    /// Whether the job ended after its deadline.
    pub missed: bool,
    /// Releases that passed while the job ran (skipped).
    pub skipped: u64,
    /// The kernel path (start less when the kernel took the release's interrupt), if known.
    pub path_ns: Option<u64>,
    /// The core's interference.
    pub interference: PeriodInterference,
}

impl Window {
    /// An empty window numbered `index`.
    pub const fn new(index: u64) -> Self {
        Self {
            index,
            periods: 0,
            deadline_misses: 0,
            skipped_releases: 0,
            jitter: Histogram::new(),
            response: Histogram::new(),
            interference: Interference {
                foreign_irqs: 0,
                foreign_irqs_max: 0,
                lock_waits: 0,
                lock_wait_ns: 0,
                lock_wait_ns_max: 0,
                broadcasts: 0,
                broadcasts_max: 0,
                kernel_entries: 0,
            },
            path_max_ns: 0,
            path_sum_ns: 0,
            path_count: 0,
        }
    }

    /// The mean kernel path, in nanoseconds; 0 when none is known.
    pub fn path_mean_ns(&self) -> u64 {
        self.path_sum_ns.checked_div(self.path_count).unwrap_or(0)
    }

    /// Counts one period.
    pub fn record(&mut self, p: &Period) {
        self.periods = self.periods.saturating_add(1);
        self.deadline_misses = self.deadline_misses.saturating_add(u64::from(p.missed));
        self.skipped_releases = self.skipped_releases.saturating_add(p.skipped);
        self.jitter.record(p.jitter_ns);
        self.response.record(p.response_ns);
        self.interference.record(&p.interference);
        if let Some(path) = p.path_ns {
            self.path_max_ns = self.path_max_ns.max(path);
            self.path_sum_ns = self.path_sum_ns.saturating_add(path);
            self.path_count = self.path_count.saturating_add(1);
        }
    }
}

/// A [`Histogram`] in shared memory.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct SharedHistogram {
    /// [`Histogram::count`].
    pub count: AtomicU64,
    /// [`Histogram::min`].
    pub min: AtomicU64,
    /// [`Histogram::max`].
    pub max: AtomicU64,
    /// [`Histogram::sum`].
    pub sum: AtomicU64,
    /// [`Histogram::buckets`].
    pub buckets: [AtomicU32; BUCKETS],
}

/// A [`Window`] in shared memory.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct SharedWindow {
    /// [`Window::index`].
    pub index: AtomicU64,
    /// [`Window::periods`].
    pub periods: AtomicU64,
    /// [`Window::deadline_misses`].
    pub deadline_misses: AtomicU64,
    /// [`Window::skipped_releases`].
    pub skipped_releases: AtomicU64,
    /// [`Window::jitter`].
    pub jitter: SharedHistogram,
    /// [`Window::response`].
    pub response: SharedHistogram,
    /// [`Window::interference`], field by field in its order.
    pub interference: [AtomicU64; 8],
    /// [`Window::path_max_ns`], [`Window::path_sum_ns`], [`Window::path_count`].
    pub path: [AtomicU64; 3],
}

/// The real-time PD's region: see the module's documentation.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct RtRegion {
    /// [`RT_MAGIC`] once the writer has published.
    pub magic: AtomicU64,
    /// [`RT_VERSION`].
    pub version: AtomicU32,
    /// Odd while the writer publishes; bumped twice per publication.
    pub seq: AtomicU32,
    /// The job's period, in nanoseconds.
    pub period_ns: AtomicU64,
    /// The job's budget (its scheduling context's), in nanoseconds.
    pub budget_ns: AtomicU64,
    /// Periods per window.
    pub window_periods: AtomicU64,
    /// Periods since the PD started (also counting the skipped ones).
    pub releases: AtomicU64,
    /// The core the PD runs on.
    pub core: AtomicU64,
    /// The simulated plant's output, in millionths.
    pub plant_output: AtomicU64,
    /// Everything since the start.
    pub total: SharedWindow,
    /// The last complete window (index 0 until one completes).
    pub last: SharedWindow,
    /// Zero, to the end of the page.
    pub pad: [u8; RT_REGION_BYTES - 64 - 2 * size_of::<SharedWindow>()],
}

const _: () = assert!(size_of::<SharedHistogram>() == 32 + 4 * BUCKETS);
const _: () = assert!(size_of::<SharedWindow>() == 0x638);
const _: () = assert!(offset_of!(SharedWindow, jitter) == 32);
const _: () = assert!(offset_of!(SharedWindow, interference) == 0x5e0);
const _: () = assert!(offset_of!(RtRegion, seq) == 12);
const _: () = assert!(offset_of!(RtRegion, total) == 0x40);
const _: () = assert!(offset_of!(RtRegion, last) == 0x678);
const _: () = assert!(size_of::<RtRegion>() == RT_REGION_BYTES);

/// The region's header, as the writer sets it and a reader sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtHeader {
    /// The job's period, in nanoseconds.
    pub period_ns: u64,
    /// Its budget, in nanoseconds.
    pub budget_ns: u64,
    /// Periods per window.
    pub window_periods: u64,
    /// Releases since the start.
    pub releases: u64,
    /// The PD's core.
    pub core: u64,
    /// The plant's output, in millionths.
    pub plant_output: i64,
}

/// One consistent copy of the region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtSnapshot {
    /// The header.
    pub header: RtHeader,
    /// Everything since the start.
    pub total: Window,
    /// The last complete window.
    pub last: Window,
}

fn store_histogram(to: &SharedHistogram, from: &Histogram) {
    to.count.store(from.count, Ordering::Relaxed);
    to.min.store(from.min, Ordering::Relaxed);
    to.max.store(from.max, Ordering::Relaxed);
    to.sum.store(from.sum, Ordering::Relaxed);
    for (t, f) in to.buckets.iter().zip(from.buckets.iter()) {
        t.store(*f, Ordering::Relaxed);
    }
}

fn load_histogram(from: &SharedHistogram) -> Histogram {
    let mut h = Histogram {
        count: from.count.load(Ordering::Relaxed),
        min: from.min.load(Ordering::Relaxed),
        max: from.max.load(Ordering::Relaxed),
        sum: from.sum.load(Ordering::Relaxed),
        buckets: [0; BUCKETS],
    };
    for (t, f) in h.buckets.iter_mut().zip(from.buckets.iter()) {
        *t = f.load(Ordering::Relaxed);
    }
    h
}

fn store_window(to: &SharedWindow, from: &Window) {
    to.index.store(from.index, Ordering::Relaxed);
    to.periods.store(from.periods, Ordering::Relaxed);
    to.deadline_misses
        .store(from.deadline_misses, Ordering::Relaxed);
    to.skipped_releases
        .store(from.skipped_releases, Ordering::Relaxed);
    store_histogram(&to.jitter, &from.jitter);
    store_histogram(&to.response, &from.response);
    for (t, f) in to.interference.iter().zip(from.interference.to_words()) {
        t.store(f, Ordering::Relaxed);
    }
    let path = [from.path_max_ns, from.path_sum_ns, from.path_count];
    for (t, f) in to.path.iter().zip(path) {
        t.store(f, Ordering::Relaxed);
    }
}

fn load_window(from: &SharedWindow) -> Window {
    let interference = from
        .interference
        .each_ref()
        .map(|w| w.load(Ordering::Relaxed));
    let [path_max_ns, path_sum_ns, path_count] =
        from.path.each_ref().map(|w| w.load(Ordering::Relaxed));
    Window {
        index: from.index.load(Ordering::Relaxed),
        periods: from.periods.load(Ordering::Relaxed),
        deadline_misses: from.deadline_misses.load(Ordering::Relaxed),
        skipped_releases: from.skipped_releases.load(Ordering::Relaxed),
        jitter: load_histogram(&from.jitter),
        response: load_histogram(&from.response),
        interference: Interference::from_words(interference),
        path_max_ns,
        path_sum_ns,
        path_count,
    }
}

impl RtRegion {
    /// Writer: publishes the header and both windows as one consistent update.
    pub fn publish(&self, header: &RtHeader, total: &Window, last: &Window) {
        let seq = self.seq.load(Ordering::Relaxed);
        // Odd: readers that see it, or see it change, retry.
        self.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.period_ns.store(header.period_ns, Ordering::Relaxed);
        self.budget_ns.store(header.budget_ns, Ordering::Relaxed);
        self.window_periods
            .store(header.window_periods, Ordering::Relaxed);
        self.releases.store(header.releases, Ordering::Relaxed);
        self.core.store(header.core, Ordering::Relaxed);
        self.plant_output
            .store(header.plant_output as u64, Ordering::Relaxed);
        store_window(&self.total, total);
        store_window(&self.last, last);
        self.version.store(RT_VERSION, Ordering::Relaxed);
        self.magic.store(RT_MAGIC, Ordering::Relaxed);
        self.seq.store((seq | 1).wrapping_add(1), Ordering::Release);
    }

    /// Reader: one consistent copy, if the region holds this layout's statistics and the
    /// writer did not publish throughout `attempts` tries.
    pub fn read(&self, attempts: usize) -> Option<RtSnapshot> {
        for _ in 0..attempts {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            if self.magic.load(Ordering::Relaxed) != RT_MAGIC
                || self.version.load(Ordering::Relaxed) != RT_VERSION
            {
                return None;
            }
            let snapshot = RtSnapshot {
                header: RtHeader {
                    period_ns: self.period_ns.load(Ordering::Relaxed),
                    budget_ns: self.budget_ns.load(Ordering::Relaxed),
                    window_periods: self.window_periods.load(Ordering::Relaxed),
                    releases: self.releases.load(Ordering::Relaxed),
                    core: self.core.load(Ordering::Relaxed),
                    plant_output: self.plant_output.load(Ordering::Relaxed) as i64,
                },
                total: load_window(&self.total),
                last: load_window(&self.last),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(snapshot);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    use proptest::prelude::*;
    use zerocopy::FromZeros;

    use super::*;

    #[test]
    fn buckets_are_exact_then_log_linear() {
        for v in 0..16 {
            assert_eq!(Histogram::bucket_of(v), v as usize);
            assert_eq!(Histogram::bucket_start(v as usize), v);
        }
        assert_eq!(Histogram::bucket_of(16), 16);
        assert_eq!(Histogram::bucket_of(17), 16);
        assert_eq!(Histogram::bucket_of(18), 17);
        assert_eq!(Histogram::bucket_start(16), 16);
        assert_eq!(Histogram::bucket_start(17), 18);
        assert_eq!(Histogram::bucket_start(24), 32);
        // The last bucket starts at 15 << 20 ns (15.7 ms) and takes everything above.
        assert_eq!(Histogram::bucket_start(BUCKETS - 1), 15 << 20);
        assert_eq!(Histogram::bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(Histogram::bucket_of(15 << 20), BUCKETS - 1);
        assert_eq!(Histogram::bucket_of((15 << 20) - 1), BUCKETS - 2);
    }

    proptest! {
        #[test]
        fn a_value_lies_in_its_bucket(v in any::<u64>()) {
            let b = Histogram::bucket_of(v);
            prop_assert!(Histogram::bucket_start(b) <= v);
            if b + 1 < BUCKETS {
                prop_assert!(v < Histogram::bucket_start(b + 1));
                // At most an eighth of the value wide.
                let width = Histogram::bucket_start(b + 1) - Histogram::bucket_start(b);
                prop_assert!(width == 1 || width * 8 <= v.max(8));
            }
        }

        #[test]
        fn quantiles_bound_the_exact_ones(
            mut values in proptest::collection::vec(0u64..20_000_000, 1..400),
            q in 1u64..=1_000_000,
        ) {
            let mut h = Histogram::new();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            let rank = (values.len() as u64 * q).div_ceil(1_000_000).max(1);
            let exact = values[(rank - 1) as usize];
            let bound = h.quantile(q);
            prop_assert!(bound >= exact, "bound {} below the exact {}", bound, exact);
            prop_assert!(bound <= *values.last().unwrap());
            // Within the bucket's width (the last bucket is open).
            let b = Histogram::bucket_of(exact);
            if b + 1 < BUCKETS {
                prop_assert!(bound < Histogram::bucket_start(b + 1));
            }
            prop_assert_eq!(h.count, values.len() as u64);
            prop_assert_eq!(h.min(), values[0]);
            prop_assert_eq!(h.max, *values.last().unwrap());
            prop_assert_eq!(h.mean(), values.iter().sum::<u64>() / values.len() as u64);
        }
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        let h = Histogram::new();
        assert_eq!(
            (h.min(), h.mean(), h.quantile(990_000), h.max),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn merging_equals_recording_both() {
        let (mut a, mut b, mut both) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in [3, 90, 1_000, 77_000] {
            a.record(v);
            both.record(v);
        }
        for v in [5, 1_200_000] {
            b.record(v);
            both.record(v);
        }
        a.merge(&b);
        assert_eq!(a, both);
    }

    #[test]
    fn a_window_counts_misses_skips_and_interference() {
        let mut w = Window::new(1);
        let quiet = Period {
            jitter_ns: 100,
            response_ns: 9_000,
            ..Period::default()
        };
        let noisy = Period {
            jitter_ns: 4_000,
            response_ns: 1_200_000,
            missed: true,
            skipped: 1,
            path_ns: Some(700),
            interference: PeriodInterference {
                foreign_irqs: 3,
                lock_waits: 2,
                lock_wait_ns: 800,
                broadcasts: 1,
                kernel_entries: 9,
            },
        };
        w.record(&quiet);
        w.record(&noisy);
        w.record(&quiet);
        assert_eq!(
            (w.periods, w.deadline_misses, w.skipped_releases),
            (3, 1, 1)
        );
        assert_eq!(w.jitter.max, 4_000);
        assert_eq!(w.response.min(), 9_000);
        let i = w.interference;
        assert_eq!((i.foreign_irqs, i.foreign_irqs_max), (3, 3));
        assert_eq!(
            (i.lock_waits, i.lock_wait_ns, i.lock_wait_ns_max),
            (2, 800, 800)
        );
        assert_eq!(
            (i.broadcasts, i.broadcasts_max, i.kernel_entries),
            (1, 1, 9)
        );
        assert_eq!(
            (w.path_max_ns, w.path_mean_ns(), w.path_count),
            (700, 700, 1)
        );
    }

    fn region() -> Box<RtRegion> {
        RtRegion::new_box_zeroed().unwrap()
    }

    #[test]
    fn a_publication_reads_back_whole() {
        let r = region();
        assert_eq!(r.read(3), None, "nothing published yet");
        let mut total = Window::new(0);
        let mut last = Window::new(4);
        for v in [10, 20_000, 300] {
            let p = Period {
                jitter_ns: v,
                response_ns: v * 2,
                path_ns: Some(v / 2),
                interference: PeriodInterference {
                    foreign_irqs: v % 7,
                    ..PeriodInterference::default()
                },
                ..Period::default()
            };
            total.record(&p);
            last.record(&p);
        }
        let header = RtHeader {
            period_ns: 1_000_000,
            budget_ns: 500_000,
            window_periods: 10_000,
            releases: 3,
            core: 1,
            plant_output: -42,
        };
        r.publish(&header, &total, &last);
        let s = r.read(3).unwrap();
        assert_eq!(s.header, header);
        assert_eq!(s.total, total);
        assert_eq!(s.last, last);
        assert_eq!(r.seq.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_reader_never_takes_a_publication_in_progress() {
        let r = region();
        r.publish(&RtHeader::default(), &Window::new(0), &Window::new(0));
        r.seq.store(3, Ordering::Relaxed);
        assert_eq!(r.read(5), None);
        r.seq.store(4, Ordering::Relaxed);
        r.version.store(RT_VERSION + 1, Ordering::Relaxed);
        assert_eq!(r.read(5), None, "another layout");
    }

    #[test]
    fn concurrent_readers_see_only_whole_publications() {
        let r: &'static RtRegion = Box::leak(region());
        let writer = std::thread::spawn(move || {
            for n in 1..=2_000u64 {
                let mut w = Window::new(n);
                w.periods = n;
                w.deadline_misses = n;
                r.publish(
                    &RtHeader {
                        releases: n,
                        ..RtHeader::default()
                    },
                    &w,
                    &w,
                );
            }
        });
        let mut seen = Vec::new();
        while !writer.is_finished() {
            if let Some(s) = r.read(100) {
                assert_eq!(s.header.releases, s.total.periods);
                assert_eq!(s.total.periods, s.last.deadline_misses);
                assert_eq!(s.total.index, s.last.index);
                seen.push(s.header.releases);
            }
        }
        writer.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "publications go forward"
        );
    }

    proptest! {
        #[test]
        fn any_region_contents_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), RT_REGION_BYTES)) {
            let r = RtRegion::read_from_bytes(&bytes).unwrap();
            if let Some(s) = r.read(2) {
                for w in [&s.total, &s.last] {
                    let _ = (w.jitter.quantile(999_000), w.jitter.mean(), w.response.quantile(990_000));
                }
            }
        }
    }
}
