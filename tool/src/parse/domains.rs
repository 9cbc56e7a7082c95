//! Reading `<domains>`: the domains of seL4's domain scheduler and their schedule, as
//! Microkit writes them. Names are resolved and limits checked in `validate`.

use super::*;
use crate::model::DomainDuration;

impl Parser<'_> {
    /// `<domains>` with its `<domain>` children and one `<domain_schedule>`.
    pub(super) fn domains(&mut self, element: Element<'_, '_>) {
        self.attributes(element, &[]);
        let mut decl = DomainsDecl {
            tag: element.tag,
            domains: Vec::new(),
            schedule: None,
        };
        for child in self.children(element) {
            match child.name() {
                "domain" => {
                    self.attributes(child, &["name", "id"]);
                    self.leaf(child);
                    let name = self.name_attribute(child, "name");
                    let id = self.number(child, "id");
                    decl.domains
                        .extend(name.map(|name| DomainDecl { name, id }));
                }
                "domain_schedule" => {
                    let schedule = self.domain_schedule(child);
                    if let Some(first) = &decl.schedule {
                        self.given_twice(child, first.tag);
                    } else {
                        decl.schedule = Some(schedule);
                    }
                }
                _ => self.unknown_element(child, "domains", &["domain", "domain_schedule"]),
            }
        }
        let has_domain = element.node.children().any(|c| c.has_tag_name("domain"));
        if !has_domain {
            self.error(
                Code::ElementCount,
                element.tag,
                "'<domains>' declares no '<domain>'",
            )
            .help = Some("declare each domain with <domain name=\"…\" />".into());
        }
        if decl.schedule.is_none() {
            self.error(
                Code::ElementCount,
                element.tag,
                "'<domains>' has no '<domain_schedule>'",
            )
            .help = Some(
                "add <domain_schedule> with a <schedule_entry domain=\"…\" duration=\"… us\" /> \
                 for each turn of a domain"
                    .into(),
            );
        }
        if let Some(first) = &self.decls.domains {
            self.given_twice(element, first.tag);
        } else {
            self.decls.domains = Some(decl);
        }
    }

    /// Reports a second `element`, where the first was at `first`.
    fn given_twice(&mut self, element: Element<'_, '_>, first: Span) {
        let message = format!("'<{}>' must only be given once", element.name());
        self.error(Code::ElementCount, element.tag, message)
            .secondary
            .push((first, "first given here".into()));
    }

    /// `<domain_schedule start_index index_shift>` and its entries, in order.
    fn domain_schedule(&mut self, element: Element<'_, '_>) -> ScheduleDecl {
        self.attributes(element, &["start_index", "index_shift"]);
        let mut entries = Vec::new();
        for child in self.children(element) {
            match child.name() {
                "schedule_entry" => entries.push(self.schedule_entry(child)),
                "schedule_end_marker" => {
                    self.attributes(child, &[]);
                    self.leaf(child);
                    entries.push(EntryDecl::EndMarker(child.tag));
                }
                _ => self.unknown_element(
                    child,
                    "domain_schedule",
                    &["schedule_entry", "schedule_end_marker"],
                ),
            }
        }
        ScheduleDecl {
            tag: element.tag,
            start_index: self.number(element, "start_index"),
            index_shift: self.number(element, "index_shift"),
            entries,
        }
    }

    /// `<schedule_entry domain duration>`; [`EntryDecl::Invalid`] after an error, so that
    /// the entries after it keep their indices.
    fn schedule_entry(&mut self, element: Element<'_, '_>) -> EntryDecl {
        self.attributes(element, &["domain", "duration"]);
        self.leaf(element);
        let domain = self.required_string(element, "domain");
        let duration = self
            .required_string(element, "duration")
            .and_then(|text| self.duration(&text));
        match (domain, duration) {
            (Some(domain), Some(duration)) => EntryDecl::Run {
                tag: element.tag,
                domain,
                duration,
            },
            _ => EntryDecl::Invalid,
        }
    }

    /// A duration as Microkit writes it: a non-zero number, one space, `us` or `ticks`.
    fn duration(&mut self, text: &Spanned<String>) -> Option<DomainDuration> {
        const HELP: &str = "write a non-zero number and a unit, e.g. \"1000 us\" or \"50 ticks\"";
        let Some((number, unit)) = text.value.split_once(' ') else {
            self.error(
                Code::InvalidValue,
                text.span,
                format!(
                    "duration '{}' must be a value and a unit, e.g. '1000 us'",
                    text.value
                ),
            )
            .help = Some(HELP.into());
            return None;
        };
        let value = match parse_number(number) {
            Ok(value) => value,
            Err(_) => {
                self.error(
                    Code::InvalidNumber,
                    text.span,
                    format!("duration '{}' does not start with a number", text.value),
                )
                .help = Some(HELP.into());
                return None;
            }
        };
        let problem = match unit {
            _ if value == 0 => format!("duration '{}' must not be zero", text.value),
            "us" => return Some(DomainDuration::Microseconds(value)),
            "ticks" => return Some(DomainDuration::Ticks(value)),
            _ => format!(
                "duration '{}' must be in 'us' or 'ticks', not '{unit}'",
                text.value
            ),
        };
        self.error(Code::InvalidValue, text.span, problem).help = Some(HELP.into());
        None
    }
}
