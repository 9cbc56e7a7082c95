//! Rules that span elements: names, ids, priorities, memory layout, the board's devices,
//! replicas, domains. Every rule is checked and every violation reported; the model is
//! returned only when there are no errors.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use atoll_boards::Board;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::{
    CAP_SLOT_COUNT, CHANNEL_ID_COUNT, DEFAULT_BUDGET_US, DEFAULT_STACK_SIZE, FIRST_DEVICE_IRQ,
    IRQ_LIMIT, LARGE_PAGE_SIZE, MAX_PDS, MAX_PRIORITY, MAX_STACK_SIZE, MIN_STACK_SIZE, PAGE_SIZE,
    PAGES_ABOVE_STACK, USER_VSPACE_TOP,
};
use crate::model::{
    Channel, ChannelEnd, Irq, Map, MemoryRegion, Prefill, ProgramImage, ProtectionDomain, Setvar,
    SetvarValue, SharedCap, SystemDescription,
};
use crate::parse::{Declarations, EndDecl, MapDecl, MrDecl, PdDecl, SetvarSource, Spanned};

mod channels;
mod devices;
mod domains;
mod memory;
mod protection_domains;
pub mod replicas;

use devices::ResolvedIrq;
use memory::{AddressSpace, upgrade_page_size};
use replicas::Placement;

/// Checks `decls` against every rule; returns the model when nothing is wrong.
pub fn validate(
    decls: &Declarations,
    board: &Board,
) -> (Option<SystemDescription>, Vec<Diagnostic>) {
    let mut v = Validator {
        decls,
        board,
        diagnostics: Vec::new(),
        symbols: HashMap::new(),
        ids: HashMap::new(),
        irqs: Vec::new(),
    };
    v.pd_count();
    let pd_names = v.unique_names(
        decls.protection_domains.iter().map(|pd| &pd.name),
        "protection domain",
    );
    let mr_names = v.unique_names(
        decls.memory_regions.iter().map(|mr| &mr.name),
        "memory region",
    );
    v.reserved_names();
    let placement = replicas::place(decls, board, &mut v.diagnostics);
    v.directory_names(&placement);
    v.irqs = v.resolve_irqs();
    let mut memory_regions: Vec<MemoryRegion> = decls
        .memory_regions
        .iter()
        .map(|mr| v.memory_region(mr))
        .collect();
    v.fixed_overlaps(&memory_regions);
    let lookup = Lookup {
        pds: &pd_names,
        mrs: &mr_names,
        decls,
    };
    let mut used = vec![false; memory_regions.len()];
    let mut protection_domains: Vec<ProtectionDomain> = decls
        .protection_domains
        .iter()
        .enumerate()
        .map(|(index, pd)| {
            v.protection_domain(
                index,
                pd,
                &placement,
                &lookup,
                &mut memory_regions,
                &mut used,
            )
        })
        .collect();
    let (domains, pd_domains) = v.domains(&placement.replicas);
    for (pd, domain) in protection_domains.iter_mut().zip(pd_domains) {
        pd.domain = domain;
    }
    v.child_ids();
    v.caps_in_one_replica(&protection_domains, &placement);
    v.irq_numbers(&placement);
    let channels: Vec<Channel> = decls
        .channels
        .iter()
        .filter_map(|channel| v.channel(channel.tag, &channel.ends, &placement, &lookup))
        .collect();
    for (index, mr) in memory_regions.iter_mut().enumerate() {
        upgrade_page_size(index, mr, &protection_domains);
    }
    for (index, mr) in memory_regions.iter().enumerate() {
        if !used[index] {
            v.diagnostics.push(
                Diagnostic::warning(
                    Code::UnusedRegion,
                    mr.span,
                    format!("memory region '{}' is never mapped", mr.name),
                )
                .with_help("map it into a PD with <map mr=\"…\" vaddr=\"…\" />, or remove it"),
            );
        }
    }
    let diagnostics = v.diagnostics;
    if diagnostics.iter().any(Diagnostic::is_error) {
        return (None, diagnostics);
    }
    let system = SystemDescription {
        replicas: placement
            .replicas
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect(),
        protection_domains: protection_domains
            .into_iter()
            .map(|pd| (pd.name.clone(), pd))
            .collect(),
        memory_regions: memory_regions
            .into_iter()
            .map(|mr| (mr.name.clone(), mr))
            .collect(),
        channels,
        domains,
    };
    (Some(system), diagnostics)
}

/// Name → index maps (first declaration wins).
struct Lookup<'d> {
    pds: &'d HashMap<&'d str, usize>,
    mrs: &'d HashMap<&'d str, usize>,
    decls: &'d Declarations,
}

impl Lookup<'_> {
    fn pd(
        &self,
        name: &Spanned<String>,
        what: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<usize> {
        let names = self.decls.protection_domains.iter().map(|pd| &pd.name);
        let unknown = (Code::UnknownPd, "protection domain");
        find(self.pds, names, name, what, unknown, diagnostics)
    }

    fn mr(
        &self,
        name: &Spanned<String>,
        what: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<usize> {
        let names = self.decls.memory_regions.iter().map(|mr| &mr.name);
        let unknown = (Code::UnknownMr, "memory region");
        find(self.mrs, names, name, what, unknown, diagnostics)
    }
}

/// The index of `name` in `index`, or an error with `code` (suggesting a close name among
/// `names`) saying that `what` names an unknown `kind`.
fn find<'a>(
    index: &HashMap<&str, usize>,
    names: impl Iterator<Item = &'a Spanned<String>>,
    name: &Spanned<String>,
    what: &str,
    (code, kind): (Code, &str),
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<usize> {
    let found = index.get(name.value.as_str()).copied();
    if found.is_none() {
        diagnostics.push(
            Diagnostic::error(
                code,
                name.span,
                format!("{what} names unknown {kind} '{}'", name.value),
            )
            .with_suggestion(&name.value, names.map(|n| n.value.as_str())),
        );
    }
    found
}

struct Validator<'d> {
    decls: &'d Declarations,
    board: &'d Board,
    diagnostics: Vec<Diagnostic>,
    /// Per PD: symbol → where it was first patched.
    symbols: HashMap<(usize, String), Span>,
    /// Per PD: channel/IRQ id → where it was first used.
    ids: HashMap<(usize, u64), Span>,
    /// Per PD, per `<irq>`: its interrupt, `None` when it names an unknown device.
    irqs: Vec<Vec<Option<ResolvedIrq>>>,
}

impl<'d> Validator<'d> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn pd_count(&mut self) {
        let decls = self.decls;
        if decls.protection_domain_elements == 0 {
            self.push(
                Diagnostic::error(
                    Code::PdCount,
                    decls.system,
                    "at least one protection domain must be defined",
                )
                .with_help(
                    "add a <protection_domain name=\"…\"> with a <program_image path=\"…\" />",
                ),
            );
        } else if let Some(extra) = decls.protection_domains.get(MAX_PDS) {
            self.push(
                Diagnostic::error(
                    Code::PdCount,
                    extra.tag,
                    format!(
                        "too many protection domains ({}) defined; the maximum is {MAX_PDS}",
                        decls.protection_domains.len()
                    ),
                )
                .with_label(format!(
                    "protection domain number {} (counting children)",
                    MAX_PDS + 1
                )),
            );
        }
    }

    fn unique_names(
        &mut self,
        names: impl Iterator<Item = &'d Spanned<String>>,
        kind: &str,
    ) -> HashMap<&'d str, usize> {
        let mut seen: HashMap<&'d str, usize> = HashMap::new();
        let mut spans: HashMap<&'d str, Span> = HashMap::new();
        for (index, name) in names.enumerate() {
            if name.value.is_empty() {
                continue;
            }
            match spans.entry(name.value.as_str()) {
                Entry::Occupied(first) => {
                    let first = *first.get();
                    self.push(
                        Diagnostic::error(
                            Code::DuplicateName,
                            name.span,
                            format!("duplicate {kind} name '{}'", name.value),
                        )
                        .with_secondary(first, "first defined here"),
                    );
                }
                Entry::Vacant(slot) => {
                    slot.insert(name.span);
                    seen.insert(&name.value, index);
                }
            }
        }
        seen
    }

    fn reserved_names(&mut self) {
        let decls = self.decls;
        for pd in decls
            .protection_domains
            .iter()
            .filter(|pd| pd.name.value == "monitor")
        {
            self.push(
                Diagnostic::error(
                    Code::ReservedName,
                    pd.name.span,
                    "the name 'monitor' is reserved for the system's fault handler",
                )
                .with_help("rename the protection domain"),
            );
        }
    }

    fn symbol(&mut self, pd: usize, symbol: &Spanned<String>) -> Option<String> {
        match self.symbols.entry((pd, symbol.value.clone())) {
            Entry::Occupied(first) => {
                let first = *first.get();
                self.push(
                    Diagnostic::error(
                        Code::DuplicateSymbol,
                        symbol.span,
                        format!(
                            "setvar on symbol '{}' already exists in this protection domain",
                            symbol.value
                        ),
                    )
                    .with_secondary(first, "first set here"),
                );
            }
            Entry::Vacant(slot) => {
                slot.insert(symbol.span);
            }
        }
        Some(symbol.value.clone())
    }

    fn symbol_opt(&mut self, pd: usize, symbol: Option<&Spanned<String>>) -> Option<String> {
        symbol.and_then(|symbol| self.symbol(pd, symbol))
    }

    /// Reports an id outside 0..62; returns whether it is in range.
    fn check_id_range(&mut self, id: &Spanned<u64>, what: &str) -> bool {
        if id.value < CHANNEL_ID_COUNT {
            return true;
        }
        self.push(Diagnostic::error(
            Code::IdRange,
            id.span,
            format!(
                "{what} id must be less than {CHANNEL_ID_COUNT}, got {}",
                id.value
            ),
        ));
        false
    }

    /// Checks a channel or IRQ id and claims it in `pd`'s id space.
    fn claim_id(&mut self, pd: usize, id: &Spanned<u64>, what: &str) -> u8 {
        if !self.check_id_range(id, what) {
            return 0;
        }
        match self.ids.entry((pd, id.value)) {
            Entry::Occupied(first) => {
                let first = *first.get();
                let name = &self.decls.protection_domains[pd].name.value;
                self.push(
                    Diagnostic::error(
                        Code::DuplicateId,
                        id.span,
                        format!(
                            "id {} is already used in protection domain '{name}'",
                            id.value
                        ),
                    )
                    .with_secondary(first, "first used here")
                    .with_help("channel ends and IRQs of one PD share the ids 0 to 61"),
                );
            }
            Entry::Vacant(slot) => {
                slot.insert(id.span);
            }
        }
        id.value as u8
    }
}

#[cfg(test)]
mod tests {
    use super::memory::overlapping;

    #[test]
    fn finds_overlaps() {
        assert_eq!(overlapping(&[(0, 10), (10, 20)]), vec![]);
        assert_eq!(overlapping(&[(10, 20), (0, 11)]), vec![(1, 0)]);
        assert_eq!(
            overlapping(&[(0, 100), (10, 20), (30, 40)]),
            vec![(1, 0), (2, 0)]
        );
        assert_eq!(overlapping(&[(5, 6), (5, 6)]), vec![(1, 0)]);
    }
}
