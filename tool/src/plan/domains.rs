//! The domain scheduler's plan: each domain's id and the entries of the kernel's schedule
//! as the boot program configures them.
//!
//! As Microkit (through seL4's capDL initialiser) does, entry `n` of the description goes
//! to the kernel's entry `index_shift + n`, and the schedule starts at `index_shift +
//! start_index`, where it also comes back to after an end marker. Microkit's schedule
//! always ends with an implicit end marker; the plan writes it after the last entry unless
//! that is one already, or the kernel's last entry, which is always one, follows.

use atoll_abi::syscall::domains::SCHEDULE_LENGTH;
use serde::Serialize;

use crate::model::{DomainDuration, Domains, ScheduleEntry};

/// A domain: name and id.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainPlan {
    /// Name.
    pub name: String,
    /// Id.
    pub id: u8,
}

/// A replica's domain schedule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SchedulePlan {
    /// The domains, in document order.
    pub domains: Vec<DomainPlan>,
    /// The kernel's entries the boot program sets, in order.
    pub entries: Vec<EntryPlan>,
    /// The kernel's entry the schedule starts at (and comes back to).
    pub start: u64,
}

/// One entry of the kernel's domain schedule.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct EntryPlan {
    /// Index in the kernel's schedule.
    pub index: u64,
    /// Domain id (0 for an end marker).
    pub domain: u8,
    /// Duration in `unit`s (0 for an end marker).
    pub duration: u64,
    /// Unit of the duration.
    pub unit: Unit,
}

/// What an entry's duration counts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Microseconds.
    Us,
    /// Ticks of the generic counter.
    Ticks,
    /// None: an end marker.
    EndMarker,
}

impl Unit {
    /// The unit as the kernel's schedule-configure invocation takes it.
    pub fn abi(self) -> u64 {
        match self {
            Unit::Ticks => atoll_abi::syscall::domains::COUNTER_TICKS,
            Unit::Us | Unit::EndMarker => atoll_abi::syscall::domains::MICROSECONDS,
        }
    }
}

/// The name of domain `id`, or `?` (the model names every id it uses).
pub fn domain_name(domains: &Domains, id: u8) -> String {
    domains
        .ids
        .iter()
        .find(|&(_, &i)| i == id)
        .map_or_else(|| "?".to_string(), |(name, _)| name.clone())
}

/// The plan of `domains`.
pub fn plan(domains: &Domains) -> SchedulePlan {
    let mut entries: Vec<EntryPlan> = domains
        .schedule
        .iter()
        .zip(domains.index_shift..)
        .map(|(entry, index)| match *entry {
            ScheduleEntry::Run { domain, duration } => {
                let (duration, unit) = match duration {
                    DomainDuration::Microseconds(us) => (us, Unit::Us),
                    DomainDuration::Ticks(ticks) => (ticks, Unit::Ticks),
                };
                EntryPlan {
                    index,
                    domain,
                    duration,
                    unit,
                }
            }
            ScheduleEntry::EndMarker => end_marker(index),
        })
        .collect();
    let next = domains.index_shift + domains.schedule.len() as u64;
    let ends_open = entries.last().is_some_and(|e| e.unit != Unit::EndMarker);
    if ends_open && next < SCHEDULE_LENGTH - 1 {
        entries.push(end_marker(next));
    }
    SchedulePlan {
        domains: domains
            .ids
            .iter()
            .map(|(name, &id)| DomainPlan {
                name: name.clone(),
                id,
            })
            .collect(),
        entries,
        start: domains.index_shift + domains.start_index,
    }
}

fn end_marker(index: u64) -> EntryPlan {
    EntryPlan {
        index,
        domain: 0,
        duration: 0,
        unit: Unit::EndMarker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Span;

    fn domains(schedule: Vec<ScheduleEntry>, start_index: u64, index_shift: u64) -> Domains {
        Domains {
            ids: [("a".to_string(), 0), ("b".to_string(), 3)]
                .into_iter()
                .collect(),
            schedule,
            start_index,
            index_shift,
            span: Span::default(),
        }
    }

    fn run(domain: u8, duration: DomainDuration) -> ScheduleEntry {
        ScheduleEntry::Run { domain, duration }
    }

    #[test]
    fn entries_are_shifted_and_closed_by_an_end_marker() {
        let d = domains(
            vec![
                run(0, DomainDuration::Microseconds(500)),
                run(3, DomainDuration::Ticks(7)),
            ],
            1,
            10,
        );
        let plan = plan(&d);
        assert_eq!(plan.start, 11);
        let got: Vec<(u64, u8, u64, Unit)> = plan
            .entries
            .iter()
            .map(|e| (e.index, e.domain, e.duration, e.unit))
            .collect();
        assert_eq!(
            got,
            [
                (10, 0, 500, Unit::Us),
                (11, 3, 7, Unit::Ticks),
                (12, 0, 0, Unit::EndMarker)
            ]
        );
        assert_eq!(
            Unit::Ticks.abi(),
            atoll_abi::syscall::domains::COUNTER_TICKS
        );
        assert_eq!(Unit::Us.abi(), atoll_abi::syscall::domains::MICROSECONDS);
        assert_eq!(domain_name(&d, 3), "b");
        assert_eq!(domain_name(&d, 9), "?");
    }

    #[test]
    fn a_written_end_marker_is_not_doubled_and_the_kernels_last_entry_is_left_alone() {
        let marked = domains(
            vec![
                run(3, DomainDuration::Microseconds(1)),
                ScheduleEntry::EndMarker,
            ],
            0,
            0,
        );
        assert_eq!(plan(&marked).entries.len(), 2);
        // Entries 97 and 98: entry 99, the kernel's last, is an end marker already.
        let full = domains(
            vec![
                run(3, DomainDuration::Microseconds(1)),
                run(0, DomainDuration::Microseconds(1)),
            ],
            0,
            SCHEDULE_LENGTH - 3,
        );
        let entries = plan(&full).entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].index, SCHEDULE_LENGTH - 2);
    }
}
