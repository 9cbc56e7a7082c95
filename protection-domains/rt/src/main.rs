//! The `rt` PD: the default system's real-time job. Its core's physical timer (IRQ 30,
//! `<irq irq="30" id="1">`) releases it every period (`<setvar symbol="rt_period_us">`,
//! 1,000 µs by default); each period it runs the same fixed amount of control work
//! ([`atoll_pd_rt::Controller`]), then measures:
//!
//! - release jitter and response time, with the virtual counter;
//! - what its core suffered since the last release, from the kernel's interference
//!   counters on the status page (`<map mr="replica_status">`): foreign interrupts, lock
//!   waits, and broadcast maintenance executed anywhere on the chip.
//!
//! It keeps the statistics since its start and per window of `rt_window` periods (10,000
//! by default), publishes both in the region `rt_stats` for `GET /rt` (a few times a
//! second and at each window's end), and prints two lines per window (a kernel log line
//! holds 248 bytes, so they are terse):
//!
//! ```text
//! rt: window 3: 10000 periods, 0 missed, 0 skipped; jitter ns 736 752 767 895 1424; response ns 7872 7907 8191 8560 8560; path ns 689 1824
//! rt: window 3 core: foreign 0 max 0; lock waits 0 ns 0 max 0; broadcasts 0 max 0; entries 40011
//! ```
//!
//! Jitter and response are min, mean, p99, p99.9 and max, in ns; the kernel path (from
//! when the core's kernel took the timer's interrupt to the job's start) mean and max. The
//! second line: the window's foreign interrupts on the core and the most in one period, its
//! lock waits, their ns and the most ns in one period, the broadcast maintenance on the chip
//! and the most in one period, and the kernel entries on the core.
//!
//! Without the status page it measures no interference; without the region it publishes
//! nothing; without the timer it says so and waits. Its statistics live on its stack: give
//! it `stack_size="0x10000"`.
#![no_std]
#![no_main]

use atoll_abi::directory::Directory;
use atoll_abi::shared::{CoreView, StatusPage};
use atoll_channels::rt::{PeriodInterference, RtHeader, RtRegion, Window};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain, timer, var,
};
use atoll_pd_rt::{Controller, Schedule};

/// The core's physical timer.
const TIMER: Channel = Channel::new(1);
/// Control steps per period: the job's fixed work.
const STEPS: u32 = 64;
/// Periods between publications of the statistics since the start.
const PUBLISH_EVERY: u64 = 100;

struct Rt {
    schedule: Schedule,
    control: Controller,
    /// The core's counters at the last release, and the chip's broadcasts.
    page: Option<&'static StatusPage>,
    core: usize,
    seen: (CoreView, u64),
    region: Option<&'static RtRegion>,
    header: RtHeader,
    total: Window,
    window: Window,
    last: Window,
}

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap_or("rt");
    debug_println!("{name}: running at EL0");
    let period_us = (*var!(rt_period_us: u64 = 1_000)).clamp(10, 1_000_000);
    let window = (*var!(rt_window: u64 = 10_000)).max(1);
    let budget_us = *var!(rt_budget_us: u64 = 0);
    let page = *var!(replica_status: u64 = 0);
    // SAFETY: a patched address is where the description maps the status page (a whole,
    // page-aligned 4 KiB) read-only into this PD for its lifetime. `StatusPage` is plain
    // data whose every bit pattern is valid and whose fields are atomics: the kernels write
    // it, and this PD only loads from it.
    let page: Option<&'static StatusPage> =
        (page != 0).then(|| unsafe { &*(page as usize as *const StatusPage) });
    let region = *var!(rt_stats: u64 = 0);
    // SAFETY: a patched address is where the description maps `rt_stats` (one whole,
    // page-aligned 4 KiB page, the size of `RtRegion`) read-write into this PD, its only
    // writer, for its lifetime. Every field is an atomic, and every bit pattern is valid.
    let region: Option<&'static RtRegion> =
        (region != 0).then(|| unsafe { &*(region as usize as *const RtRegion) });
    let directory = var!(atoll_directory: Directory = Directory::EMPTY);
    let core = directory
        .pds()
        .find(|pd| pd.name() == name)
        .map_or(usize::MAX, |pd| pd.core as usize);
    let hz = timer::counter_frequency();
    let header = RtHeader {
        period_ns: period_us.saturating_mul(1_000),
        budget_ns: budget_us.saturating_mul(1_000),
        window_periods: window,
        releases: 0,
        core: core as u64,
        plant_output: 0,
    };
    let mut rt = Rt {
        schedule: Schedule::new(header.period_ns, hz, timer::counter()),
        control: Controller::new(STEPS),
        page,
        core,
        seen: (CoreView::default(), 0),
        region,
        header,
        total: Window::new(0),
        window: Window::new(1),
        last: Window::new(0),
    };
    if let Err(e) = timer::claim_physical_timer(TIMER) {
        debug_println!(
            "{name}: no timer ({e:?}): give it <irq irq=\"30\" id=\"1\" />; not running"
        );
        return rt;
    }
    debug_println!(
        "{name}: period {period_us} us, window {window} periods, core {core}, {}{}",
        if page.is_some() {
            "counting interference"
        } else {
            "no status page: no interference counts"
        },
        if region.is_some() {
            ", publishing to rt_stats"
        } else {
            ""
        },
    );
    rt.publish();
    // The first release one period from now: what came before (the line above goes out
    // through the kernel) is not the job's.
    rt.schedule = Schedule::new(header.period_ns, hz, timer::counter());
    rt.seen = rt.counters();
    timer::arm_physical_timer(rt.schedule.release());
    rt
}

impl Rt {
    /// The core's interference counters now, and the chip's broadcasts.
    fn counters(&self) -> (CoreView, u64) {
        match self.page {
            Some(page) => (page.core(self.core).unwrap_or_default(), page.broadcasts()),
            None => (CoreView::default(), 0),
        }
    }

    fn publish(&self) {
        if let Some(region) = self.region {
            region.publish(&self.header, &self.total, &self.last);
        }
    }

    /// One period: the job, then its measurements.
    fn run_job(&mut self) {
        // The bench's instrumented emulator times the release to here on the core's own clock.
        timer::mark::<{ atoll_abi::marks::JOB_START }>();
        let start = timer::counter();
        let (core, broadcasts) = self.counters();
        let output = self.control.period();
        let end = timer::counter();
        let release = self.schedule.release();
        let mut period = self.schedule.complete(start, end);
        // The kernel's share of the jitter: from when it took this release's interrupt (a
        // time at or after the release; an older one is the last period's) to the start.
        period.path_ns = (core.pd_timer_at >= release && core.pd_timer_at <= start)
            .then(|| self.schedule.ns(start - core.pd_timer_at));
        // The timer stays asserted until it is set past the counter: set it, then take the
        // next interrupt.
        timer::arm_physical_timer(self.schedule.release());
        let _ = TIMER.irq_ack();

        // What the core suffered since the last release (the period that has just ended).
        let d = core.since(&self.seen.0);
        period.interference = PeriodInterference {
            foreign_irqs: d.foreign_irqs(),
            lock_waits: d.lock_waits,
            lock_wait_ns: self.schedule.ns(d.lock_wait_ticks),
            broadcasts: broadcasts.saturating_sub(self.seen.1),
            kernel_entries: d.entries,
        };
        self.seen = (core, broadcasts);
        self.total.record(&period);
        self.window.record(&period);
        self.header.releases = self.schedule.releases();
        self.header.plant_output = output;

        if self.window.periods >= self.header.window_periods {
            self.last = self.window;
            self.window = Window::new(self.last.index.saturating_add(1));
            self.publish();
            self.report();
            // The report's own kernel entries are not the next period's interference.
            self.seen = self.counters();
        } else if self.total.periods.is_multiple_of(PUBLISH_EVERY) {
            self.publish();
        }
    }

    /// Prints the last window's line.
    fn report(&self) {
        let w = &self.last;
        let (j, r, i) = (&w.jitter, &w.response, &w.interference);
        // Two lines: a kernel log line holds 248 bytes.
        debug_println!(
            "rt: window {}: {} periods, {} missed, {} skipped; jitter ns {} {} {} {} {}; \
             response ns {} {} {} {} {}; path ns {} {}",
            w.index,
            w.periods,
            w.deadline_misses,
            w.skipped_releases,
            j.min(),
            j.mean(),
            j.quantile(990_000),
            j.quantile(999_000),
            j.max,
            r.min(),
            r.mean(),
            r.quantile(990_000),
            r.quantile(999_000),
            r.max,
            w.path_mean_ns(),
            w.path_max_ns,
        );
        debug_println!(
            "rt: window {} core: foreign {} max {}; lock waits {} ns {} max {}; \
             broadcasts {} max {}; entries {}",
            w.index,
            i.foreign_irqs,
            i.foreign_irqs_max,
            i.lock_waits,
            i.lock_wait_ns,
            i.lock_wait_ns_max,
            i.broadcasts,
            i.broadcasts_max,
            i.kernel_entries,
        );
    }
}

impl Handler for Rt {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(TIMER) {
            self.run_job();
        }
        Ok(())
    }
}
