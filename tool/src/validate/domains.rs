//! The domain scheduler (`<domains>`): domain names and ids, the schedule's limits, the
//! domain of every PD, and the rule that a system with domains runs on one core.
//!
//! The limits are seL4's as Microkit configures it (`atoll_abi::syscall::domains`): ids
//! below 16; fewer than 100 entries, `index_shift` included, because the kernel's last
//! entry always stays an end marker. Ids not written are given in document order, each the
//! lowest id no domain has.

use indexmap::IndexMap;

use atoll_abi::syscall::domains::{COUNT, SCHEDULE_LENGTH};

use super::*;
use crate::model::{Domains, Replica, ScheduleEntry};
use crate::parse::{DomainsDecl, EntryDecl, ScheduleDecl};

impl<'d> Validator<'d> {
    /// Checks `<domains>` and every PD's `domain`; returns the scheduler and each PD's
    /// domain id, in declaration order.
    pub(super) fn domains(&mut self, replicas: &[Replica]) -> (Option<Domains>, Vec<Option<u8>>) {
        let decls = self.decls;
        let Some(decl) = &decls.domains else {
            for (pd, domain) in decls
                .protection_domains
                .iter()
                .filter_map(|pd| Some((pd, pd.domain.as_ref()?)))
            {
                self.push(
                    Diagnostic::error(
                        Code::UnknownDomain,
                        domain.span,
                        format!(
                            "protection domain '{}' names domain '{}', but the system declares no <domains>",
                            pd.name.value, domain.value
                        ),
                    )
                    .with_help("declare the domains and their schedule in <domains>, or remove the attribute"),
                );
            }
            return (None, vec![None; decls.protection_domains.len()]);
        };
        self.one_core(decl, replicas);
        let ids = self.domain_ids(decl);
        let pds = decls
            .protection_domains
            .iter()
            .map(|pd| self.pd_domain(pd, &ids))
            .collect();
        let domains = decl.schedule.as_ref().map(|schedule| {
            let (entries, start_index, index_shift) = self.schedule(schedule, &ids);
            Domains {
                ids,
                schedule: entries,
                start_index,
                index_shift,
                span: decl.tag,
            }
        });
        (domains, pds)
    }

    /// seL4's domain scheduler runs on one core: Microkit refuses `<domains>` on a
    /// multicore build, and Atoll on a system of more than one replica or core.
    fn one_core(&mut self, decl: &DomainsDecl, replicas: &[Replica]) {
        const HELP: &str = "seL4's domain scheduler runs on one core (Microkit refuses <domains> \
                            on multicore builds): keep every PD on one core, with no 'cpu' or \
                            <replica> naming another";
        if let Some(second) = replicas.get(1) {
            self.push(
                Diagnostic::error(
                    Code::DomainsMulticore,
                    decl.tag,
                    format!(
                        "the domain scheduler needs a system of one replica on one core; this one has {} replicas",
                        replicas.len()
                    ),
                )
                .with_secondary(second.span, format!("replica '{}'", second.name))
                .with_help(HELP),
            );
        } else if let Some(replica) = replicas.first().filter(|r| r.cores.len() > 1) {
            self.push(
                Diagnostic::error(
                    Code::DomainsMulticore,
                    decl.tag,
                    format!(
                        "the domain scheduler needs a system on one core; replica '{}' has {} cores",
                        replica.name,
                        replica.cores.len()
                    ),
                )
                .with_secondary(replica.span, format!("replica '{}'", replica.name))
                .with_help(HELP),
            );
        }
    }

    /// Domain names (unique) and ids: those written must be below [`COUNT`] and distinct,
    /// the others get the lowest free id in document order.
    fn domain_ids(&mut self, decl: &'d DomainsDecl) -> IndexMap<String, u8> {
        self.unique_names(decl.domains.iter().map(|d| &d.name), "domain");
        let mut taken: HashMap<u64, Span> = HashMap::new();
        for id in decl.domains.iter().filter_map(|d| d.id.as_ref()) {
            if id.value >= COUNT {
                self.push(
                    Diagnostic::error(
                        Code::DomainId,
                        id.span,
                        format!("domain id must be less than {COUNT}, got {}", id.value),
                    )
                    .with_help(format!(
                        "seL4 as Microkit configures it has {COUNT} domains, 0 to {}",
                        COUNT - 1
                    )),
                );
                continue;
            }
            if let Some(&first) = taken.get(&id.value) {
                let message = format!("domain id {} is already taken", id.value);
                let error = Diagnostic::error(Code::DuplicateDomainId, id.span, message);
                self.push(error.with_secondary(first, "first given here"));
            } else {
                taken.insert(id.value, id.span);
            }
        }
        let mut ids = IndexMap::new();
        for domain in &decl.domains {
            if ids.contains_key(&domain.name.value) {
                continue; // a duplicate name, reported
            }
            let id = match &domain.id {
                Some(id) => id.value,
                None => match (0..COUNT).find(|i| !taken.contains_key(i)) {
                    Some(free) => {
                        taken.insert(free, domain.name.span);
                        free
                    }
                    None => {
                        self.push(
                            Diagnostic::error(
                                Code::DomainId,
                                domain.name.span,
                                format!(
                                    "no domain id is left for domain '{}': all {COUNT} are taken",
                                    domain.name.value
                                ),
                            )
                            .with_help(format!("a system has at most {COUNT} domains")),
                        );
                        0
                    }
                },
            };
            ids.insert(domain.name.value.clone(), u8::try_from(id).unwrap_or(0));
        }
        ids
    }

    /// The id of the domain `name` (written as `what`), or an error.
    fn domain_id(
        &mut self,
        name: &Spanned<String>,
        what: &str,
        ids: &IndexMap<String, u8>,
    ) -> Option<u8> {
        let id = ids.get(&name.value).copied();
        if id.is_none() {
            self.push(
                Diagnostic::error(
                    Code::UnknownDomain,
                    name.span,
                    format!("{what} names unknown domain '{}'", name.value),
                )
                .with_suggestion(&name.value, ids.keys().map(String::as_str)),
            );
        }
        id
    }

    /// A PD's domain: required when the system has domains.
    fn pd_domain(&mut self, pd: &PdDecl, ids: &IndexMap<String, u8>) -> Option<u8> {
        let Some(domain) = &pd.domain else {
            self.push(
                Diagnostic::error(
                    Code::MissingAttribute,
                    pd.tag,
                    format!("protection domain '{}' has no 'domain'", pd.name.value),
                )
                .with_help(
                    "with <domains> declared, every protection domain names the domain it runs in: domain=\"…\"",
                ),
            );
            return None;
        };
        let what = format!("protection domain '{}'", pd.name.value);
        self.domain_id(domain, &what, ids)
    }

    /// The schedule's entries, start index and shift, checked against the kernel's limits.
    fn schedule(
        &mut self,
        decl: &ScheduleDecl,
        ids: &IndexMap<String, u8>,
    ) -> (Vec<ScheduleEntry>, u64, u64) {
        let mut entries = Vec::new();
        for entry in &decl.entries {
            entries.push(match entry {
                EntryDecl::Run {
                    domain, duration, ..
                } => ScheduleEntry::Run {
                    domain: self.domain_id(domain, "schedule entry", ids).unwrap_or(0),
                    duration: *duration,
                },
                // An invalid entry was reported; a placeholder keeps the indices.
                EntryDecl::EndMarker(_) | EntryDecl::Invalid => ScheduleEntry::EndMarker,
            });
        }
        let length = entries.len() as u64;
        if length >= SCHEDULE_LENGTH {
            self.push(
                Diagnostic::error(
                    Code::DomainSchedule,
                    decl.tag,
                    format!(
                        "the domain schedule has {length} entries; at most {} fit",
                        SCHEDULE_LENGTH - 1
                    ),
                )
                .with_help(format!(
                    "the kernel's schedule has {SCHEDULE_LENGTH} entries, and its last is always an end marker"
                )),
            );
        }
        let start = decl.start_index.as_ref().map_or(0, |s| s.value);
        let start_span = decl.start_index.as_ref().map_or(decl.tag, |s| s.span);
        if start >= length {
            let message = if length == 0 {
                "the domain schedule has no entries".to_string()
            } else {
                format!("start_index {start} is past the last of the schedule's {length} entries")
            };
            self.push(
                Diagnostic::error(Code::DomainSchedule, start_span, message)
                    .with_help("start_index counts the schedule's entries from 0"),
            );
        } else if let Some(EntryDecl::EndMarker(marker)) = decl.entries.get(start as usize) {
            self.push(
                Diagnostic::error(
                    Code::DomainSchedule,
                    start_span,
                    format!("the schedule's start entry, {start}, is an end marker"),
                )
                .with_secondary(*marker, "this end marker")
                .with_help("the kernel cannot start a domain schedule at an end marker"),
            );
        }
        let shift = decl.index_shift.as_ref().map_or(0, |s| s.value);
        if let Some(attribute) = &decl.index_shift
            && shift.saturating_add(length) >= SCHEDULE_LENGTH
        {
            self.push(
                Diagnostic::error(
                    Code::DomainSchedule,
                    attribute.span,
                    format!(
                        "index_shift {shift} and {length} entries do not fit the kernel's schedule of {SCHEDULE_LENGTH} entries"
                    ),
                )
                .with_help(format!(
                    "index_shift plus the number of entries must be below {SCHEDULE_LENGTH}"
                )),
            );
        }
        self.monitor_turn(decl, &entries, start);
        (entries, start, shift)
    }

    /// Warns when the schedule, from its start entry to its end, gives domain 0 no turn:
    /// the monitor runs there, so after the schedule starts it would never run again.
    fn monitor_turn(&mut self, decl: &ScheduleDecl, entries: &[ScheduleEntry], start: u64) {
        let mut turns = entries
            .iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take_while(|e| matches!(e, ScheduleEntry::Run { .. }))
            .peekable();
        if turns.peek().is_none() {
            return; // no schedule to run: an error already
        }
        if !turns.any(|e| matches!(e, ScheduleEntry::Run { domain: 0, .. })) {
            self.push(
                Diagnostic::warning(
                    Code::MonitorDomainIdle,
                    decl.tag,
                    "the domain schedule gives domain 0, where the monitor runs, no turn",
                )
                .with_help(
                    "once the schedule starts, the monitor would never run: PD faults would go \
                     unreported and passive PDs would never become passive; give domain 0 a \
                     <schedule_entry> between the start entry and the end",
                ),
            );
        }
    }
}
