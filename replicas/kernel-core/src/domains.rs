//! The domain scheduler's schedule (seL4's, as Microkit's `<domains>` configures it): a
//! list of entries, each a domain and how long it runs, that repeats. While a domain's
//! entry runs, only threads of that domain are scheduled; with none ready, the core idles.
//!
//! An entry of duration 0 is an end marker: reaching one (or the end of the list) goes
//! back to the start entry. Until the schedule is started every thread runs as if all
//! were in one domain, which is seL4's behaviour with a single domain.

use atoll_abi::syscall::domains;

/// Entries in a schedule.
pub const LENGTH: usize = domains::SCHEDULE_LENGTH as usize;
/// Domains.
pub const COUNT: u8 = domains::COUNT as u8;

/// One entry: `domain` runs for `duration` time units (0: an end marker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The domain.
    pub domain: u8,
    /// How long, in the scheduler's time units.
    pub duration: u64,
}

/// Why a schedule change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainError {
    /// An index past the schedule (the last entry stays an end marker), or a domain past
    /// the last.
    Range,
    /// An end marker with a domain other than 0, an end marker at the start entry of a
    /// running schedule, or a start at an end marker.
    Invalid,
}

/// A replica's domain schedule and where it is.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    entries: [Entry; LENGTH],
    /// Where the schedule starts again after an end marker.
    start: usize,
    /// The running entry.
    at: usize,
    /// When the running entry ends.
    ends_at: u64,
    running: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Schedule {
    /// A schedule of end markers, not running.
    pub const fn new() -> Self {
        Self {
            entries: [Entry {
                domain: 0,
                duration: 0,
            }; LENGTH],
            start: 0,
            at: 0,
            ends_at: 0,
            running: false,
        }
    }

    /// Whether it was started (domains then decide who runs).
    pub fn running(&self) -> bool {
        self.running
    }

    /// The domain whose threads run now (0 when the schedule is not running).
    pub fn current(&self) -> u8 {
        match self.entries.get(self.at) {
            Some(e) if self.running => e.domain,
            _ => 0,
        }
    }

    /// When the running entry ends (`None` when the schedule is not running).
    pub fn ends_at(&self) -> Option<u64> {
        self.running.then_some(self.ends_at)
    }

    /// Sets entry `index` (seL4's `DomainSet_ScheduleConfigure`).
    pub fn configure(
        &mut self,
        index: usize,
        domain: u8,
        duration: u64,
    ) -> Result<(), DomainError> {
        if index >= LENGTH.saturating_sub(1) || domain >= COUNT {
            return Err(DomainError::Range);
        }
        if duration == 0 && (domain != 0 || (self.running && index == self.start)) {
            return Err(DomainError::Invalid);
        }
        let entry = self.entries.get_mut(index).ok_or(DomainError::Range)?;
        *entry = Entry { domain, duration };
        Ok(())
    }

    /// Starts the schedule at entry `index` at time `now` (seL4's
    /// `DomainSet_ScheduleSetStart`); it also becomes where the schedule comes back to.
    pub fn start(&mut self, index: usize, now: u64) -> Result<(), DomainError> {
        let entry = self.entries.get(index).ok_or(DomainError::Range)?;
        if entry.duration == 0 {
            return Err(DomainError::Invalid);
        }
        self.start = index;
        self.at = index;
        self.ends_at = now.saturating_add(entry.duration);
        self.running = true;
        Ok(())
    }

    /// Time has reached `now`: moves past every entry that has ended. Returns whether the
    /// running entry changed.
    pub fn advance(&mut self, now: u64) -> bool {
        if !self.running || now < self.ends_at {
            return false;
        }
        // Each step moves `ends_at` forward by a non-zero duration; a whole round is at
        // most `LENGTH` steps, so a long absence is cut short after one round and the
        // entry then running starts afresh at `now`.
        for _ in 0..LENGTH {
            self.at = self.next(self.at);
            let duration = self.entry(self.at).duration;
            self.ends_at = self.ends_at.saturating_add(duration);
            if now < self.ends_at {
                return true;
            }
        }
        self.ends_at = now.saturating_add(self.entry(self.at).duration);
        true
    }

    /// The entry after `at`: the start entry after the last one or at an end marker.
    fn next(&self, at: usize) -> usize {
        let next = at.saturating_add(1);
        if next >= LENGTH || self.entry(next).duration == 0 {
            self.start
        } else {
            next
        }
    }

    fn entry(&self, index: usize) -> Entry {
        self.entries.get(index).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_run_in_turn_and_the_schedule_wraps_to_its_start() {
        let mut s = Schedule::new();
        assert_eq!((s.running(), s.current(), s.ends_at()), (false, 0, None));
        s.configure(0, 3, 100).unwrap();
        s.configure(1, 1, 10).unwrap();
        s.configure(2, 2, 20).unwrap();
        s.configure(3, 0, 0).unwrap(); // end marker
        s.start(1, 1000).unwrap();
        assert_eq!((s.current(), s.ends_at()), (1, Some(1010)));
        assert!(!s.advance(1009));
        assert!(s.advance(1010));
        assert_eq!((s.current(), s.ends_at()), (2, Some(1030)));
        // The end marker sends it back to the start entry, 1, not to entry 0.
        assert!(s.advance(1030));
        assert_eq!((s.current(), s.ends_at()), (1, Some(1040)));
        // A long absence: it lands where the rounds would have got to, without drifting
        // (1215 falls in entry 1's ten units from 1210).
        assert!(s.advance(1040 + 30 * 5 + 25));
        assert_eq!((s.current(), s.ends_at()), (1, Some(1220)));
    }

    #[test]
    fn sel4_rules_for_indices_domains_and_end_markers() {
        let mut s = Schedule::new();
        assert_eq!(s.configure(LENGTH - 1, 0, 5), Err(DomainError::Range));
        assert_eq!(s.configure(0, COUNT, 5), Err(DomainError::Range));
        assert_eq!(s.configure(0, 2, 0), Err(DomainError::Invalid));
        assert_eq!(s.start(0, 0), Err(DomainError::Invalid), "an end marker");
        assert_eq!(s.start(LENGTH, 0), Err(DomainError::Range));
        s.configure(0, 2, 5).unwrap();
        s.start(0, 0).unwrap();
        assert_eq!(
            s.configure(0, 0, 0),
            Err(DomainError::Invalid),
            "the running schedule's start cannot become an end marker"
        );
        // With no end marker after it, a lone entry repeats.
        assert!(s.advance(5));
        assert_eq!((s.current(), s.ends_at()), (2, Some(10)));
    }
}
