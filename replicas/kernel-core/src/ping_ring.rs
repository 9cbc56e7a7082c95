//! The boot protocol between replicas, and its ping ring, as a state machine.
//!
//! Replica 0 waits until every replica has published a final boot state (`up` or `down`),
//! prints a summary, and sends a ping round the ring of replicas (0 -> 1 -> ... -> 0); each
//! replica passes it to the next. In test builds replica 0 then powers the machine off,
//! once every replica's user space has settled. Doorbells and timer ticks drive each step;
//! no replica waits on another, and each wait has a timeout.
//!
//! [`PingRing`] holds replica 0's progress and decides each step; the kernel reads the
//! replicas' status records, sends the doorbells, and prints. Its state lives in atomics so
//! that the kernel keeps it in a `static` and any core of the replica may report an event;
//! each transition is claimed by one compare-and-swap, so an event reported twice, or on
//! two cores at once, acts once.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Ticks replica 0 waits for every replica to publish a final state before it summarises
/// without them.
pub const BOOT_TIMEOUT_TICKS: u64 = 500;
/// Ticks it waits for the ping to come back.
pub const PING_TIMEOUT_TICKS: u64 = 500;
/// Ticks between finishing and powering off in test builds (shows that replicas keep
/// ticking).
pub const EXIT_DELAY_TICKS: u64 = 3;
/// Ticks it waits, in test builds, for every replica's user space to settle before
/// powering off anyway.
pub const SETTLE_TIMEOUT_TICKS: u64 = 500;

/// Where replica 0 is in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for every replica to publish a final state.
    Waiting = 0,
    /// The ping is on its way round.
    Pinging = 1,
    /// The ring is complete, broken or timed out.
    Done = 2,
    /// Powering off (test builds).
    Exiting = 3,
}

impl Phase {
    const fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Waiting,
            1 => Self::Pinging,
            2 => Self::Done,
            _ => Self::Exiting,
        }
    }
}

/// How the ping starts, once the wait is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingStart {
    /// A single replica has no ring: the protocol is done.
    Single,
    /// Ring replica 1 with the ping. If it cannot be rung (it is down), call
    /// [`PingRing::not_sent`].
    Send,
}

/// What the kernel does on a timer tick of replica 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing to do.
    Idle,
    /// Still waiting: act as on a status change ([`PingRing::on_status`]).
    Status,
    /// Not every replica came up in time: summarise anyway and start the ping.
    BootTimeout(PingStart),
    /// The ping did not come back in time; the protocol is done.
    PingTimeout,
    /// Power off now. `settled` says whether every replica's user space settled, or the
    /// wait for it timed out.
    PowerOff {
        /// Whether every replica's user space settled.
        settled: bool,
    },
}

/// What a replica does with a ping from `sender`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// The ping came from another replica than the one before this one on the ring: it is
    /// ignored.
    Ignore {
        /// The replica it should have come from.
        expected: usize,
    },
    /// Back at replica 0: the ring is complete.
    Complete,
    /// Pass it to `next`. If `next` cannot be rung, tell replica 0 the ring is broken.
    Pass {
        /// The next replica on the ring.
        next: usize,
    },
}

/// The replica after `i` on the ring of `replicas` (the last one's is replica 0).
pub const fn next_replica(i: usize, replicas: usize) -> usize {
    let next = i.saturating_add(1);
    if next < replicas { next } else { 0 }
}

/// The replica before `i` on the ring of `replicas` (replica 0's is the last one).
pub const fn previous_replica(i: usize, replicas: usize) -> usize {
    match i.checked_sub(1) {
        Some(previous) => previous,
        None => replicas.saturating_sub(1),
    }
}

/// Writes the ring's path, `K0 -> K1 -> ... -> K0`.
pub fn write_path(out: &mut impl core::fmt::Write, replicas: usize) -> core::fmt::Result {
    for i in 0..replicas {
        write!(out, "K{i} -> ")?;
    }
    out.write_str("K0")
}

/// A virtual counter value `count` at `hz` as time since reset: whole milliseconds, the
/// microseconds past them, and the whole in nanoseconds (0 for a frequency of 0).
#[inline(never)]
pub fn since_reset(count: u64, hz: u64) -> (u64, u64, u64) {
    let nanos = u128::from(count)
        .saturating_mul(1_000_000_000)
        .checked_div(u128::from(hz))
        .map_or(0, |n| u64::try_from(n).unwrap_or(u64::MAX));
    let micros = nanos / 1000;
    (micros / 1000, micros % 1000, nanos)
}

/// Replica 0's progress through the protocol. Every replica has one, to answer pings
/// ([`PingRing::on_ping`]), but only replica 0's ever leaves [`Phase::Waiting`].
pub struct PingRing {
    phase: AtomicU8,
    /// The tick the phase began.
    since: AtomicU64,
    /// Replicas whose going down has been reported (bit n: replica n).
    down_reported: AtomicU64,
    /// Whether "every PD started" has been reported.
    pds_started_reported: AtomicBool,
}

impl Default for PingRing {
    fn default() -> Self {
        Self::new()
    }
}

impl PingRing {
    /// Waiting, from tick 0, nothing reported.
    pub const fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Waiting as u8),
            since: AtomicU64::new(0),
            down_reported: AtomicU64::new(0),
            pds_started_reported: AtomicBool::new(false),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_raw(self.phase.load(Ordering::Relaxed))
    }

    /// Moves from `from` to `to` at tick `now`; `false` (nothing changes) if the phase is
    /// not `from`, so each transition happens once. (Out of line: transitions are rare,
    /// and one copy keeps the kernel small.)
    #[inline(never)]
    fn advance(&self, from: Phase, to: Phase, now: u64) -> bool {
        let moved = self
            .phase
            .compare_exchange(from as u8, to as u8, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if moved {
            self.since.store(now, Ordering::Relaxed);
        }
        moved
    }

    /// Ends the wait at tick `now` (once): the ping starts, unless there is only one
    /// replica.
    fn end_wait(&self, now: u64, replicas: usize) -> Option<PingStart> {
        let (to, start) = if replicas < 2 {
            (Phase::Done, PingStart::Single)
        } else {
            (Phase::Pinging, PingStart::Send)
        };
        self.advance(Phase::Waiting, to, now).then_some(start)
    }

    /// A replica's status changed at tick `now`. While waiting, and once `all_final` says
    /// every replica has published a final state, the wait ends: the kernel prints the
    /// summary and starts the ping as returned.
    pub fn on_status(
        &self,
        now: u64,
        replicas: usize,
        all_final: impl FnOnce() -> bool,
    ) -> Option<PingStart> {
        if self.phase() == Phase::Waiting && all_final() {
            self.end_wait(now, replicas)
        } else {
            None
        }
    }

    /// The first ring of the ping could not be sent at tick `now` (replica 1 is down):
    /// the protocol is done.
    pub fn not_sent(&self, now: u64) {
        self.advance(Phase::Pinging, Phase::Done, now);
    }

    /// A timer tick: `now` is replica 0's tick count. `exit_when_done` is the test builds'
    /// power-off flag, `users_settled` whether every replica's user space has settled.
    pub fn on_tick(
        &self,
        now: u64,
        replicas: usize,
        exit_when_done: bool,
        users_settled: impl Fn() -> bool,
    ) -> Tick {
        let since = now.saturating_sub(self.since.load(Ordering::Relaxed));
        match self.phase() {
            Phase::Waiting if since >= BOOT_TIMEOUT_TICKS => self
                .end_wait(now, replicas)
                .map_or(Tick::Idle, Tick::BootTimeout),
            Phase::Waiting => Tick::Status,
            Phase::Pinging if since >= PING_TIMEOUT_TICKS => {
                if self.advance(Phase::Pinging, Phase::Done, now) {
                    Tick::PingTimeout
                } else {
                    Tick::Idle
                }
            }
            Phase::Done
                if exit_when_done
                    && since >= EXIT_DELAY_TICKS
                    && (users_settled() || since >= SETTLE_TIMEOUT_TICKS) =>
            {
                if self.advance(Phase::Done, Phase::Exiting, now) {
                    Tick::PowerOff {
                        settled: users_settled(),
                    }
                } else {
                    Tick::Idle
                }
            }
            _ => Tick::Idle,
        }
    }

    /// Replica `me` of `replicas` got the ping from `sender` at tick `now`.
    pub fn on_ping(&self, now: u64, me: usize, replicas: usize, sender: usize) -> Hop {
        let expected = previous_replica(me, replicas);
        if sender != expected {
            return Hop::Ignore { expected };
        }
        if me == 0 {
            // A ping that comes back after its timeout still completes the ring, but the
            // protocol is done already.
            self.advance(Phase::Pinging, Phase::Done, now);
            return Hop::Complete;
        }
        Hop::Pass {
            next: next_replica(me, replicas),
        }
    }

    /// Replica `sender` could not pass the ping on, at tick `now`. While the ping is on its
    /// way, the protocol is done and this returns the replica that is down (the one after
    /// `sender`); otherwise (a late report) nothing changes.
    pub fn on_ping_broken(&self, now: u64, replicas: usize, sender: usize) -> Option<usize> {
        self.advance(Phase::Pinging, Phase::Done, now)
            .then(|| next_replica(sender, replicas))
    }

    /// Replica `index` (below 64) is down: whether to report it (once, the first time).
    pub fn newly_down(&self, index: usize) -> bool {
        let bit = 1u64.wrapping_shl(index as u32);
        self.down_reported.load(Ordering::Relaxed) & bit == 0
            && self.down_reported.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Whether to report now that every PD has started: once, when every replica has a
    /// final state (`all_final`) and every replica that is up has settled
    /// (`users_settled`).
    pub fn pds_started(
        &self,
        all_final: impl FnOnce() -> bool,
        users_settled: impl FnOnce() -> bool,
    ) -> bool {
        !self.pds_started_reported.load(Ordering::Relaxed)
            && all_final()
            && users_settled()
            && !self.pds_started_reported.swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    use super::*;

    /// A ring of four replicas, seen from replica 0, after the wait at tick 10.
    fn pinging() -> PingRing {
        let ring = PingRing::new();
        assert_eq!(ring.on_status(10, 4, || true), Some(PingStart::Send));
        ring
    }

    /// Replica 0 done at tick 20 (the ping came back).
    fn done() -> PingRing {
        let ring = pinging();
        assert_eq!(ring.on_ping(20, 0, 4, 3), Hop::Complete);
        ring
    }

    /// Asserts that a tick of four replicas just before `at` gives `before` and one at
    /// `at` gives `then`; `settled` is what every replica's user space is.
    fn fires_at(ring: &PingRing, at: u64, settled: bool, before: Tick, then: Tick) {
        assert_eq!(
            ring.on_tick(at - 1, 4, true, || settled),
            before,
            "tick {at} - 1"
        );
        assert_eq!(ring.on_tick(at, 4, true, || settled), then, "tick {at}");
    }

    #[test]
    fn the_wait_ends_only_when_every_replica_is_final() {
        let ring = PingRing::new();
        assert_eq!(ring.on_status(1, 4, || false), None);
        assert_eq!(ring.phase(), Phase::Waiting);
        assert_eq!(ring.on_tick(2, 4, false, || false), Tick::Status);
        assert_eq!(ring.on_status(3, 4, || true), Some(PingStart::Send));
        assert_eq!(ring.phase(), Phase::Pinging);
    }

    #[test]
    fn the_wait_ends_once() {
        let ring = pinging();
        // Later status changes (a replica going down, another settling) start nothing.
        assert_eq!(ring.on_status(11, 4, || true), None);
        assert_eq!(ring.on_tick(12, 4, false, || true), Tick::Idle);
        assert_eq!(ring.phase(), Phase::Pinging);
    }

    #[test]
    fn the_final_states_are_not_looked_at_once_the_wait_is_over() {
        let ring = pinging();
        let looked = core::cell::Cell::new(false);
        ring.on_status(11, 4, || {
            looked.set(true);
            true
        });
        assert!(!looked.get());
    }

    #[test]
    fn a_single_replica_has_no_ring() {
        let ring = PingRing::new();
        assert_eq!(ring.on_status(5, 1, || true), Some(PingStart::Single));
        assert_eq!(ring.phase(), Phase::Done);
    }

    #[test]
    fn the_boot_times_out_from_the_start_of_the_wait() {
        let ring = PingRing::new();
        let timeout = Tick::BootTimeout(PingStart::Send);
        fires_at(&ring, BOOT_TIMEOUT_TICKS, false, Tick::Status, timeout);
        assert_eq!(ring.phase(), Phase::Pinging);
        let single = PingRing::new();
        assert_eq!(
            single.on_tick(BOOT_TIMEOUT_TICKS, 1, false, || false),
            Tick::BootTimeout(PingStart::Single)
        );
    }

    #[test]
    fn a_first_ring_that_cannot_be_sent_ends_the_protocol() {
        let ring = pinging();
        ring.not_sent(11);
        assert_eq!(ring.phase(), Phase::Done);
    }

    #[test]
    fn the_ping_times_out_from_when_it_was_sent() {
        let ring = pinging();
        fires_at(
            &ring,
            10 + PING_TIMEOUT_TICKS,
            false,
            Tick::Idle,
            Tick::PingTimeout,
        );
        assert_eq!(ring.phase(), Phase::Done);
        // Timed out once.
        assert_eq!(
            ring.on_tick(11 + PING_TIMEOUT_TICKS, 4, false, || true),
            Tick::Idle
        );
    }

    #[test]
    fn each_replica_passes_the_ping_to_the_next_and_replica_0_completes_it() {
        let ring = PingRing::new();
        assert_eq!(ring.on_ping(0, 1, 4, 0), Hop::Pass { next: 2 });
        assert_eq!(ring.on_ping(0, 2, 4, 1), Hop::Pass { next: 3 });
        assert_eq!(ring.on_ping(0, 3, 4, 2), Hop::Pass { next: 0 });
        // Passing the ping moves no replica's phase.
        assert_eq!(ring.phase(), Phase::Waiting);
        let zero = pinging();
        assert_eq!(zero.on_ping(20, 0, 4, 3), Hop::Complete);
        assert_eq!(zero.phase(), Phase::Done);
    }

    #[test]
    fn a_ping_back_after_its_timeout_completes_the_ring_but_restarts_nothing() {
        let ring = pinging();
        assert_eq!(
            ring.on_tick(10 + PING_TIMEOUT_TICKS, 4, true, || true),
            Tick::PingTimeout
        );
        assert_eq!(ring.on_ping(600, 0, 4, 3), Hop::Complete);
        // The exit delay still counts from the timeout.
        assert_eq!(
            ring.on_tick(10 + PING_TIMEOUT_TICKS + EXIT_DELAY_TICKS, 4, true, || true),
            Tick::PowerOff { settled: true }
        );
    }

    #[test]
    fn a_ping_from_the_wrong_neighbour_is_ignored() {
        let ring = pinging();
        assert_eq!(ring.on_ping(20, 0, 4, 1), Hop::Ignore { expected: 3 });
        assert_eq!(ring.on_ping(20, 2, 4, 0), Hop::Ignore { expected: 1 });
        assert_eq!(ring.phase(), Phase::Pinging);
    }

    #[test]
    fn a_broken_ring_names_the_replica_that_is_down_and_ends_the_protocol() {
        let ring = pinging();
        assert_eq!(ring.on_ping_broken(15, 4, 1), Some(2));
        assert_eq!(ring.phase(), Phase::Done);
        // The last replica could not reach replica 0.
        let ring = pinging();
        assert_eq!(ring.on_ping_broken(15, 4, 3), Some(0));
    }

    #[test]
    fn a_broken_ring_reported_outside_the_ping_changes_nothing() {
        let ring = PingRing::new();
        assert_eq!(ring.on_ping_broken(5, 4, 1), None);
        assert_eq!(ring.phase(), Phase::Waiting);
        let ring = done();
        assert_eq!(ring.on_ping_broken(25, 4, 1), None);
        assert_eq!(ring.phase(), Phase::Done);
    }

    #[test]
    fn power_off_needs_the_flag() {
        let ring = done();
        assert_eq!(ring.on_tick(1000, 4, false, || true), Tick::Idle);
        assert_eq!(ring.phase(), Phase::Done);
    }

    #[test]
    fn power_off_waits_a_few_ticks_after_the_ring() {
        let ring = done();
        let off = Tick::PowerOff { settled: true };
        fires_at(&ring, 20 + EXIT_DELAY_TICKS, true, Tick::Idle, off);
        assert_eq!(ring.phase(), Phase::Exiting);
        // Once.
        assert_eq!(ring.on_tick(100, 4, true, || true), Tick::Idle);
    }

    #[test]
    fn power_off_waits_for_user_space_until_its_timeout() {
        let ring = done();
        assert_eq!(ring.on_tick(30, 4, true, || false), Tick::Idle);
        let off = Tick::PowerOff { settled: false };
        fires_at(&ring, 20 + SETTLE_TIMEOUT_TICKS, false, Tick::Idle, off);
    }

    #[test]
    fn power_off_follows_a_broken_or_timed_out_ring_too() {
        let ring = pinging();
        ring.on_ping_broken(15, 4, 1);
        assert_eq!(
            ring.on_tick(15 + EXIT_DELAY_TICKS, 4, true, || true),
            Tick::PowerOff { settled: true }
        );
        let ring = PingRing::new();
        assert_eq!(ring.on_status(0, 1, || true), Some(PingStart::Single));
        assert_eq!(
            ring.on_tick(EXIT_DELAY_TICKS, 1, true, || true),
            Tick::PowerOff { settled: true }
        );
    }

    #[test]
    fn each_replica_going_down_is_reported_once() {
        let ring = PingRing::new();
        assert!(ring.newly_down(2));
        assert!(!ring.newly_down(2));
        assert!(ring.newly_down(1));
        assert!(ring.newly_down(0));
        assert!(!ring.newly_down(1));
        assert!(!ring.newly_down(2));
    }

    #[test]
    fn every_pd_started_is_reported_once_and_only_when_all_is_settled() {
        let ring = PingRing::new();
        assert!(!ring.pds_started(|| false, || true));
        assert!(!ring.pds_started(|| true, || false));
        assert!(ring.pds_started(|| true, || true));
        assert!(!ring.pds_started(|| true, || true));
    }

    #[test]
    fn the_ring_runs_in_index_order_and_wraps() {
        assert_eq!(next_replica(0, 4), 1);
        assert_eq!(next_replica(3, 4), 0);
        assert_eq!(previous_replica(0, 4), 3);
        assert_eq!(previous_replica(2, 4), 1);
        // A lone replica is its own neighbour.
        assert_eq!(next_replica(0, 1), 0);
        assert_eq!(previous_replica(0, 1), 0);
        let mut path = String::new();
        write_path(&mut path, 3).unwrap();
        assert_eq!(path, "K0 -> K1 -> K2 -> K0");
    }

    #[test]
    fn time_since_reset_splits_into_milliseconds_and_microseconds() {
        // 62.5 MHz: 16 ns a count.
        assert_eq!(since_reset(131_325, 62_500_000), (2, 101, 2_101_200));
        assert_eq!(
            since_reset(u64::MAX, 1),
            (u64::MAX / 1_000_000, 551, u64::MAX)
        );
        assert_eq!(since_reset(5, 0), (0, 0, 0));
    }
}
