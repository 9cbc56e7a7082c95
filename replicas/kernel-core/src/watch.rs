//! The rules by which replicas watch each other: which replica acts for a peer that stopped
//! or hangs (its *keeper*), and when a peer's frozen tick count makes it hung.
//!
//! The kernel (`replicas/kernel/src/restart.rs`) reads the status records, asks these
//! rules, and acts: it restarts a stopped peer, or reports a hung one and stops its cores.
//! The rules read only what they are handed; a status record a faulty replica scribbled on
//! decodes to `None` and is treated as not up.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::shared::ReplicaState;

/// The replica that acts for `peer`, given every replica's state in index order: the
/// lowest-numbered one that is up, other than `peer`. Every replica computes the same
/// answer from the same records; while they change, two may disagree for a moment, which
/// is why the acts themselves are claimed by compare-and-swap.
pub fn keeper_of(
    states: impl IntoIterator<Item = Option<ReplicaState>>,
    peer: usize,
) -> Option<usize> {
    states
        .into_iter()
        .enumerate()
        .find(|&(i, s)| i != peer && s == Some(ReplicaState::Up))
        .map(|(i, _)| i)
}

/// What a look at a peer's tick count found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ticks {
    /// The count moved since the last look (or this is the first look): the clock restarts.
    Moving,
    /// The same count as before, for this many counter ticks so far.
    Frozen(u64),
}

/// One peer's tick count as a watcher last saw it, and since when (counter ticks); in
/// atomics, so that a kernel keeps one per peer in a `static`.
pub struct TickWatch {
    seen: AtomicU64,
    since: AtomicU64,
}

impl TickWatch {
    /// Nothing seen yet.
    pub const fn new() -> Self {
        Self {
            seen: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Looks at the peer's tick count `ticks` at counter `now`.
    pub fn look(&self, ticks: u64, now: u64) -> Ticks {
        let first = self.since.load(Ordering::Relaxed) == 0;
        if self.seen.swap(ticks, Ordering::Relaxed) != ticks || first {
            // A counter of 0 is taken for "never looked": start from 1 at worst.
            self.since.store(now.max(1), Ordering::Relaxed);
            return Ticks::Moving;
        }
        Ticks::Frozen(now.saturating_sub(self.since.load(Ordering::Relaxed)))
    }
}

impl Default for TickWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// The counter ticks in `ms` milliseconds at `hz`.
pub fn ms_to_ticks(ms: u32, hz: u64) -> u64 {
    hz.saturating_mul(u64::from(ms)) / 1000
}

/// Whether a peer frozen for `frozen` counter ticks is hung under a limit of `limit_ms`
/// milliseconds at `hz`.
pub fn is_hung(frozen: u64, limit_ms: u32, hz: u64) -> bool {
    frozen > ms_to_ticks(limit_ms, hz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicaState::{Booting, Down, Hung, Restarting, Up};

    #[test]
    fn the_keeper_is_the_lowest_replica_up_but_the_peer() {
        assert_eq!(keeper_of([Some(Up), Some(Up), Some(Down)], 2), Some(0));
        assert_eq!(keeper_of([Some(Down), Some(Up), Some(Up)], 0), Some(1));
        assert_eq!(keeper_of([Some(Up), Some(Up)], 0), Some(1));
        // Replicas that are not up do not keep anyone.
        assert_eq!(
            keeper_of(
                [
                    Some(Hung),
                    Some(Restarting),
                    Some(Booting),
                    Some(Up),
                    Some(Down)
                ],
                4
            ),
            Some(3)
        );
        // A scribbled record is not up.
        assert_eq!(keeper_of([None, Some(Up), Some(Down)], 2), Some(1));
        // Nobody left.
        assert_eq!(keeper_of([Some(Down), Some(Up)], 1), None);
        assert_eq!(keeper_of([Some(Up)], 0), None);
    }

    #[test]
    fn a_peer_is_hung_once_its_ticks_stay_frozen_past_the_limit() {
        let hz = 62_500_000;
        let limit = 200;
        let w = TickWatch::new();
        // The first look starts the clock, whatever the count.
        assert_eq!(w.look(7, 1_000), Ticks::Moving);
        assert_eq!(
            w.look(7, 1_000 + ms_to_ticks(100, hz)),
            Ticks::Frozen(ms_to_ticks(100, hz))
        );
        let Ticks::Frozen(f) = w.look(7, 1_000 + ms_to_ticks(200, hz)) else {
            panic!("frozen");
        };
        assert!(!is_hung(f, limit, hz), "exactly the limit is not past it");
        let Ticks::Frozen(f) = w.look(7, 1_001 + ms_to_ticks(200, hz)) else {
            panic!("frozen");
        };
        assert!(is_hung(f, limit, hz));
        // Moving again restarts the clock.
        assert_eq!(w.look(8, 2_000_000_000), Ticks::Moving);
        assert_eq!(w.look(8, 2_000_000_000), Ticks::Frozen(0));
    }

    #[test]
    fn a_first_look_at_counter_zero_still_starts_the_clock() {
        let w = TickWatch::new();
        assert_eq!(w.look(0, 0), Ticks::Moving);
        assert_eq!(w.look(0, 5), Ticks::Frozen(4));
    }

    #[test]
    fn limits_convert_without_overflow() {
        assert_eq!(ms_to_ticks(200, 62_500_000), 12_500_000);
        assert_eq!(ms_to_ticks(60_000, u64::MAX), u64::MAX / 1000);
        assert!(!is_hung(u64::MAX / 1000, 60_000, u64::MAX));
        assert!(is_hung(u64::MAX, 60_000, u64::MAX));
    }
}
