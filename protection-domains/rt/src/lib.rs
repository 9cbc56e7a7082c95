//! The real-time PD's logic, apart from the PD around it so that it is tested on the host:
//! the control law it runs each period ([`Controller`], a PID loop on a simulated plant in
//! fixed point) and the period bookkeeping ([`Schedule`]: releases, jitter, response,
//! deadline misses and skipped releases, in counter ticks turned into nanoseconds).
//!
//! The PD (`src/main.rs`) is released by its core's physical timer at each period's start,
//! measures itself with the virtual counter and the kernel's interference counters, and
//! publishes what it measured (`atoll_channels::rt`).
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use atoll_channels::rt::Period;

/// Fixed point: values in millionths.
const ONE: i64 = 1_000_000;

/// A PID controller holding a simulated first-order plant at a setpoint that steps
/// between two levels. Every [`Controller::period`] runs the same number of integer
/// steps, so the job's work is the same every period.
#[derive(Clone, Debug)]
pub struct Controller {
    /// Plant output, in millionths.
    output: i64,
    /// Integral of the error.
    integral: i64,
    /// The last error, for the derivative.
    last_error: i64,
    /// Periods run.
    periods: u64,
    /// Integration steps per period.
    steps: u32,
}

/// Controller gains and plant constant, in millionths: kp 0.6, ki 0.1 (on a quarter of
/// each step's error), kd 0.1; the plant
/// moves a fiftieth of the way to its input each step.
const KP: i64 = 600_000;
const KI: i64 = 100_000;
const KD: i64 = 100_000;
const PLANT_RATE: i64 = 20_000;
/// Periods between setpoint steps.
const STEP_PERIODS: u64 = 500;
/// Bounds of the actuator and of the integral (anti-windup), in millionths.
const LIMIT: i64 = 4 * ONE;
const INTEGRAL_LIMIT: i64 = 40 * ONE;

impl Controller {
    /// A controller at rest that runs `steps` integration steps per period (at least 1).
    pub const fn new(steps: u32) -> Self {
        Self {
            output: 0,
            integral: 0,
            last_error: 0,
            periods: 0,
            steps: if steps == 0 { 1 } else { steps },
        }
    }

    /// The setpoint of period `n`: 1.0 and 0.25 in turn, [`STEP_PERIODS`] periods each.
    pub fn setpoint(n: u64) -> i64 {
        if (n / STEP_PERIODS).is_multiple_of(2) {
            ONE
        } else {
            ONE / 4
        }
    }

    /// Runs one period: the control law and the plant, [`Self::steps`] times. Returns the
    /// plant's output, in millionths.
    pub fn period(&mut self) -> i64 {
        let setpoint = Self::setpoint(self.periods);
        self.periods = self.periods.wrapping_add(1);
        for _ in 0..self.steps {
            let error = setpoint.saturating_sub(self.output);
            self.integral = self
                .integral
                .saturating_add(error / 4)
                .clamp(-INTEGRAL_LIMIT, INTEGRAL_LIMIT);
            let derivative = error.saturating_sub(self.last_error);
            self.last_error = error;
            let u = mul(KP, error)
                .saturating_add(mul(KI, self.integral))
                .saturating_add(mul(KD, derivative))
                .clamp(-LIMIT, LIMIT);
            let change = mul(PLANT_RATE, u.saturating_sub(self.output));
            self.output = self.output.saturating_add(change);
        }
        self.output
    }

    /// The plant's output, in millionths.
    pub fn output(&self) -> i64 {
        self.output
    }
}

/// `a * b` in millionths.
fn mul(a: i64, b: i64) -> i64 {
    // ONE is not 0.
    let p = i128::from(a)
        .saturating_mul(i128::from(b))
        .checked_div(i128::from(ONE))
        .unwrap_or(0);
    i64::try_from(p).unwrap_or(if p < 0 { i64::MIN } else { i64::MAX })
}

/// The job's releases: where the next one is, and what a job that started and ended at
/// given counter values measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Counter ticks per period (at least 1).
    period: u64,
    /// Counter frequency, in hertz (at least 1).
    hz: u64,
    /// The release of the job that runs next (or runs now).
    release: u64,
    /// Releases so far, skipped ones included.
    releases: u64,
}

impl Schedule {
    /// A schedule of `period_ns` periods on a counter of `hz` hertz, the first release one
    /// period after `now`.
    pub fn new(period_ns: u64, hz: u64, now: u64) -> Self {
        let hz = hz.max(1);
        // Below 2^128: both factors are below 2^64.
        let ticks = u128::from(period_ns).saturating_mul(u128::from(hz)) / 1_000_000_000;
        let period = u64::try_from(ticks).unwrap_or(u64::MAX).max(1);
        Self {
            period,
            hz,
            release: now.saturating_add(period),
            releases: 0,
        }
    }

    /// The counter value the timer is set to: the next release.
    pub fn release(&self) -> u64 {
        self.release
    }

    /// Releases so far.
    pub fn releases(&self) -> u64 {
        self.releases
    }

    /// Ticks per period.
    pub fn period_ticks(&self) -> u64 {
        self.period
    }

    /// Counter ticks as nanoseconds.
    pub fn ns(&self, ticks: u64) -> u64 {
        // `hz` is at least 1 (`new`).
        let ns = u128::from(ticks)
            .saturating_mul(1_000_000_000)
            .checked_div(u128::from(self.hz))
            .unwrap_or(u128::MAX);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The job released at [`Self::release`] started at `start` and ended at `end`
    /// (counter values): what it measured (the interference left empty), and the schedule
    /// moves to the next release that has not passed at `end`; those that have are skipped.
    /// A job that ended after the next release missed its deadline.
    pub fn complete(&mut self, start: u64, end: u64) -> Period {
        let release = self.release;
        let deadline = release.saturating_add(self.period);
        let mut next = deadline;
        let mut skipped = 0u64;
        if end >= next {
            // Whole periods that passed: skip to the first release after `end`.
            // `end >= next`; `period` is at least 1 (`new`).
            let behind = end
                .saturating_sub(next)
                .checked_div(self.period)
                .unwrap_or(0)
                .saturating_add(1);
            skipped = behind;
            next = next.saturating_add(behind.saturating_mul(self.period));
        }
        self.release = next;
        self.releases = self.releases.saturating_add(1).saturating_add(skipped);
        Period {
            jitter_ns: self.ns(start.saturating_sub(release)),
            response_ns: self.ns(end.saturating_sub(release)),
            missed: end > deadline,
            skipped,
            ..Period::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_plant_follows_the_setpoint() {
        let mut c = Controller::new(32);
        let mut out = 0;
        for _ in 0..STEP_PERIODS {
            out = c.period();
        }
        assert!((out - ONE).abs() < ONE / 50, "settled at 1.0: {out}");
        for _ in 0..STEP_PERIODS {
            out = c.period();
        }
        assert!((out - ONE / 4).abs() < ONE / 50, "settled at 0.25: {out}");
    }

    #[test]
    fn a_job_on_time_measures_its_jitter_and_response() {
        // 62.5 MHz: 16 ns per tick, 62,500 ticks per millisecond.
        let mut s = Schedule::new(1_000_000, 62_500_000, 1_000);
        assert_eq!(s.period_ticks(), 62_500);
        assert_eq!(s.release(), 63_500);
        let p = s.complete(63_510, 64_000);
        assert_eq!(
            (p.jitter_ns, p.response_ns, p.missed, p.skipped),
            (160, 8_000, false, 0)
        );
        assert_eq!((s.release(), s.releases()), (126_000, 1));
    }

    #[test]
    fn a_late_job_misses_and_skips_the_releases_it_overran() {
        let mut s = Schedule::new(1_000_000, 62_500_000, 0);
        // Ends 2.5 periods after its release: the next two releases have passed.
        let p = s.complete(62_500, 62_500 + 156_250);
        assert!(p.missed);
        assert_eq!(p.skipped, 2);
        assert_eq!(s.release(), 62_500 * 4);
        assert_eq!(s.releases(), 3);
        // Ending exactly at the deadline is not a miss, but that release has passed.
        let mut s = Schedule::new(1_000_000, 62_500_000, 0);
        let p = s.complete(62_500, 125_000);
        assert!(!p.missed);
        assert_eq!(p.skipped, 1);
    }

    proptest! {
        #[test]
        fn the_next_release_is_always_after_the_end(
            period_ns in 1u64..10_000_000,
            hz in 1u64..1_000_000_000,
            now in 0u64..1 << 50,
            start_after in 0u64..1 << 30,
            run in 0u64..1 << 30,
        ) {
            let mut s = Schedule::new(period_ns, hz, now);
            let release = s.release();
            let start = release + start_after;
            let end = start + run;
            let p = s.complete(start, end);
            prop_assert!(s.release() > end);
            prop_assert_eq!((s.release() - release) % s.period_ticks(), 0);
            prop_assert_eq!(p.missed, end > release + s.period_ticks());
            prop_assert!(p.jitter_ns <= p.response_ns);
        }
    }
}
