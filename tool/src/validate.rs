//! Rules that span elements: names, ids, priorities, memory layout, replicas. Every rule is
//! checked and every violation reported; the model is returned only when there are no errors.

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
    SharedCap, SystemDescription,
};
use crate::parse::{Declarations, EndDecl, MapDecl, MrDecl, PdDecl, Spanned};
use crate::replicas::{self, Placement};

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
    let protection_domains: Vec<ProtectionDomain> = decls
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
    v.child_ids();
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
        let found = self.pds.get(name.value.as_str()).copied();
        if found.is_none() {
            let names = self
                .decls
                .protection_domains
                .iter()
                .map(|pd| pd.name.value.as_str());
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownPd,
                    name.span,
                    format!("{what} names unknown protection domain '{}'", name.value),
                )
                .with_suggestion(&name.value, names),
            );
        }
        found
    }

    fn mr(
        &self,
        name: &Spanned<String>,
        what: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<usize> {
        let found = self.mrs.get(name.value.as_str()).copied();
        if found.is_none() {
            let names = self
                .decls
                .memory_regions
                .iter()
                .map(|mr| mr.name.value.as_str());
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownMr,
                    name.span,
                    format!("{what} names unknown memory region '{}'", name.value),
                )
                .with_suggestion(&name.value, names),
            );
        }
        found
    }
}

struct Validator<'d> {
    decls: &'d Declarations,
    board: &'d Board,
    diagnostics: Vec<Diagnostic>,
    /// Per PD: symbol → where it was first patched.
    symbols: HashMap<(usize, String), Span>,
    /// Per PD: channel/IRQ id → where it was first used.
    ids: HashMap<(usize, u64), Span>,
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

    fn memory_region(&mut self, mr: &MrDecl) -> MemoryRegion {
        let page_size = match &mr.page_size {
            Some(page) if page.value != PAGE_SIZE && page.value != LARGE_PAGE_SIZE => {
                self.push(
                    Diagnostic::error(
                        Code::PageSize,
                        page.span,
                        format!("page size {:#x} is not supported", page.value),
                    )
                    .with_help(format!(
                        "use {PAGE_SIZE:#x} (4 KiB) or {LARGE_PAGE_SIZE:#x} (2 MiB)"
                    )),
                );
                PAGE_SIZE
            }
            Some(page) => page.value,
            None => PAGE_SIZE,
        };
        let prefill = match (&mr.prefill_path, &mr.prefill_bootinfo) {
            (Some(path), Some(info)) => {
                self.push(
                    Diagnostic::error(
                        Code::Prefill,
                        info.span,
                        "a memory region takes 'prefill_path' or 'prefill_bootinfo', not both",
                    )
                    .with_secondary(path.span, "prefill file given here"),
                );
                Some(Prefill::File(path.value.clone()))
            }
            (Some(path), None) => Some(Prefill::File(path.value.clone())),
            (None, Some(_)) => Some(Prefill::DeviceTree),
            (None, None) => None,
        };
        let size = match &mr.size {
            Some(size) if size.value == 0 => {
                self.push(Diagnostic::error(
                    Code::RegionSize,
                    size.span,
                    "a memory region's size must not be zero",
                ));
                None
            }
            Some(size) if size.value % page_size != 0 => {
                let rounded = size.value.div_ceil(page_size).saturating_mul(page_size);
                self.push(
                    Diagnostic::error(
                        Code::RegionSize,
                        size.span,
                        format!(
                            "size {:#x} is not a multiple of the page size {page_size:#x}",
                            size.value
                        ),
                    )
                    .with_help(format!("round it up to {rounded:#x}")),
                );
                None
            }
            Some(size) => Some(size.value),
            None if prefill == Some(Prefill::DeviceTree) => Some(page_size),
            None => None,
        };
        if let Some(phys) = &mr.phys_addr {
            if phys.value % page_size != 0 {
                self.push(
                    Diagnostic::error(
                        Code::PhysAddr,
                        phys.span,
                        format!(
                            "physical address {:#x} is not a multiple of the page size \
                             {page_size:#x}",
                            phys.value
                        ),
                    )
                    .with_help("memory regions start on a page boundary"),
                );
            } else if phys.value.checked_add(size.unwrap_or(page_size)).is_none() {
                self.push(Diagnostic::error(
                    Code::PhysAddr,
                    phys.span,
                    "memory region extends beyond the 64-bit address space",
                ));
            }
        }
        MemoryRegion {
            name: mr.name.value.clone(),
            size,
            page_size,
            page_size_given: mr.page_size.is_some(),
            phys_addr: mr.phys_addr.as_ref().map(|p| p.value),
            prefill,
            tool_allocated: false,
            replicas: Vec::new(),
            span: mr.name.span,
        }
    }

    fn fixed_overlaps(&mut self, regions: &[MemoryRegion]) {
        let decls = self.decls;
        let fixed: Vec<(usize, (u64, u64))> = regions
            .iter()
            .enumerate()
            .filter_map(|(index, mr)| {
                let base = mr.phys_addr?;
                Some((
                    index,
                    (base, base.saturating_add(mr.size.unwrap_or(mr.page_size))),
                ))
            })
            .collect();
        let ranges: Vec<(u64, u64)> = fixed.iter().map(|&(_, range)| range).collect();
        for (later, earlier) in overlapping(&ranges) {
            let ((index, (base, end)), (other, (other_base, other_end))) =
                (fixed[later], fixed[earlier]);
            let span = |i: usize| {
                decls.memory_regions[i]
                    .phys_addr
                    .as_ref()
                    .map_or(regions[i].span, |p| p.span)
            };
            self.push(
                Diagnostic::error(
                    Code::OverlappingRegions,
                    span(index),
                    format!(
                        "memory region '{}' [{base:#x}, {end:#x}) overlaps '{}' \
                         [{other_base:#x}, {other_end:#x})",
                        regions[index].name, regions[other].name
                    ),
                )
                .with_secondary(span(other), "overlapping region placed here"),
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

    fn protection_domain(
        &mut self,
        index: usize,
        pd: &PdDecl,
        placement: &Placement,
        lookup: &Lookup<'_>,
        regions: &mut [MemoryRegion],
        used: &mut [bool],
    ) -> ProtectionDomain {
        let priority = self.priority(pd);
        let (budget, period) = self.budget_period(pd);
        let stack_size = self.stack_size(pd);
        let (replica, core) = placement.pds.get(index).copied().unwrap_or((0, 0));
        let parent = pd.parent.map(|parent| {
            let id = pd.child_id.as_ref().map_or(0, |id| {
                if id.value >= CHANNEL_ID_COUNT {
                    self.push(Diagnostic::error(
                        Code::IdRange,
                        id.span,
                        format!(
                            "child id must be less than {CHANNEL_ID_COUNT}, got {}",
                            id.value
                        ),
                    ));
                    0
                } else {
                    id.value as u8
                }
            });
            (parent, id)
        });
        let setvar_id = pd
            .parent
            .and_then(|parent| self.symbol_opt(parent, pd.setvar_id.as_ref()));
        let space = AddressSpace {
            pd: index,
            replica,
            stack_bottom: USER_VSPACE_TOP - PAGES_ABOVE_STACK * PAGE_SIZE - stack_size,
        };
        let maps = self.maps(space, &pd.maps, lookup, regions, used);
        let irqs = pd
            .irqs
            .iter()
            .map(|irq| Irq {
                number: irq.irq.value.min(u64::from(u32::MAX)) as u32,
                id: self.claim_id(index, &irq.id, "IRQ"),
                trigger: irq.trigger,
                setvar_id: self.symbol_opt(index, irq.setvar_id.as_ref()),
                span: irq.irq.span,
            })
            .collect();
        let mut setvars = Vec::new();
        for setvar in &pd.setvars {
            let symbol = self.symbol(index, &setvar.symbol);
            let Some(mr) = lookup.mr(&setvar.region_paddr, "setvar", &mut self.diagnostics) else {
                continue;
            };
            if regions[mr].phys_addr.is_none() {
                regions[mr].tool_allocated = true;
            }
            setvars.extend(symbol.map(|symbol| Setvar {
                symbol,
                region_paddr: mr,
            }));
        }
        let caps = self.caps(pd, lookup);
        ProtectionDomain {
            name: pd.name.value.clone(),
            priority,
            budget,
            period,
            passive: pd.passive,
            restart: pd.restart,
            stack_size,
            core,
            replica,
            fpu: pd.fpu,
            parent,
            setvar_id,
            program_image: pd.program_image.as_ref().map_or(
                ProgramImage {
                    path: String::new(),
                    path_for_symbols: None,
                },
                |image| ProgramImage {
                    path: image.path.value.clone(),
                    path_for_symbols: image.path_for_symbols.as_ref().map(|p| p.value.clone()),
                },
            ),
            maps,
            irqs,
            setvars,
            caps,
            span: pd.name.span,
        }
    }

    /// Checks one PD's mappings: region, alignment, range, overlap and setvars.
    fn maps(
        &mut self,
        space: AddressSpace,
        decls: &[MapDecl],
        lookup: &Lookup<'_>,
        regions: &mut [MemoryRegion],
        used: &mut [bool],
    ) -> Vec<Map> {
        let mut maps: Vec<Map> = Vec::new();
        let mut extents: Vec<(u64, u64)> = Vec::new();
        let mut extent_maps: Vec<usize> = Vec::new();
        for map in decls {
            let Some(mr) = lookup.mr(&map.mr, "map", &mut self.diagnostics) else {
                continue;
            };
            used[mr] = true;
            let region = &regions[mr];
            if let Some(prefill_size) = &map.setvar_prefill_size
                && !matches!(region.prefill, Some(Prefill::File(_)))
            {
                self.push(
                    Diagnostic::error(
                        Code::Prefill,
                        prefill_size.span,
                        format!(
                            "'setvar_prefill_size' needs a prefilled region, and '{}' has no \
                             'prefill_path'",
                            region.name
                        ),
                    )
                    .with_secondary(region.span, "region declared here"),
                );
            }
            let (vaddr, page) = (map.vaddr.value, region.page_size);
            let size = region.size.unwrap_or(page);
            if vaddr % page != 0 {
                self.push(
                    Diagnostic::error(
                        Code::VaddrAlignment,
                        map.vaddr.span,
                        format!(
                            "vaddr {vaddr:#x} is not a multiple of the page size {page:#x} of '{}'",
                            region.name
                        ),
                    )
                    .with_help(format!("use {:#x}", vaddr - vaddr % page)),
                );
            }
            match vaddr.checked_add(size) {
                Some(end) if end <= space.stack_bottom => {
                    extents.push((vaddr, end));
                    extent_maps.push(maps.len());
                }
                _ => self.push(
                    Diagnostic::error(
                        Code::VaddrRange,
                        map.vaddr.span,
                        format!(
                            "mapping of '{}' ({size:#x} bytes at {vaddr:#x}) does not end below \
                             {:#x}",
                            region.name, space.stack_bottom
                        ),
                    )
                    .with_help(
                        "mappings must end at or below the bottom of the PD's stack, which sits \
                         under the IPC buffer at the top of the address space",
                    ),
                ),
            }
            if !regions[mr].replicas.contains(&space.replica) {
                regions[mr].replicas.push(space.replica);
                regions[mr].replicas.sort_unstable();
            }
            maps.push(Map {
                mr,
                vaddr,
                perms: map.perms,
                cached: map.cached,
                setvar_vaddr: self.symbol_opt(space.pd, map.setvar_vaddr.as_ref()),
                setvar_size: self.symbol_opt(space.pd, map.setvar_size.as_ref()),
                setvar_prefill_size: self.symbol_opt(space.pd, map.setvar_prefill_size.as_ref()),
                span: map.vaddr.span,
            });
        }
        for (later, earlier) in overlapping(&extents) {
            let (map, other) = (&maps[extent_maps[later]], &maps[extent_maps[earlier]]);
            let ((start, end), (other_start, other_end)) = (extents[later], extents[earlier]);
            self.push(
                Diagnostic::error(
                    Code::OverlappingMaps,
                    map.span,
                    format!(
                        "mapping of '{}' at [{start:#x}, {end:#x}) overlaps the mapping of '{}' \
                         at [{other_start:#x}, {other_end:#x})",
                        regions[map.mr].name, regions[other.mr].name
                    ),
                )
                .with_secondary(other.span, "overlapping mapping here"),
            );
        }
        maps
    }

    fn priority(&mut self, pd: &PdDecl) -> u8 {
        match &pd.priority {
            Some(priority) if priority.value > MAX_PRIORITY => {
                self.push(
                    Diagnostic::error(
                        Code::PriorityRange,
                        priority.span,
                        format!(
                            "priority must be between 0 and {MAX_PRIORITY}, got {}",
                            priority.value
                        ),
                    )
                    .with_help("priority 255 belongs to the monitor"),
                );
                MAX_PRIORITY as u8
            }
            Some(priority) => priority.value as u8,
            None => 0,
        }
    }

    fn budget_period(&mut self, pd: &PdDecl) -> (u64, u64) {
        let budget = pd.budget.as_ref().map_or(DEFAULT_BUDGET_US, |b| b.value);
        let period = pd.period.as_ref().map_or(budget, |p| p.value);
        if budget > period {
            let (span, secondary) = match (&pd.budget, &pd.period) {
                (Some(b), Some(p)) => (b.span, Some(p.span)),
                (None, Some(p)) => (p.span, None),
                _ => (pd.name.span, None),
            };
            let mut diagnostic = Diagnostic::error(
                Code::BudgetExceedsPeriod,
                span,
                format!("budget ({budget}) must be less than, or equal to, period ({period})"),
            );
            if let Some(secondary) = secondary {
                diagnostic = diagnostic.with_secondary(secondary, "period declared here");
            } else {
                diagnostic =
                    diagnostic.with_help(format!("the default budget is {DEFAULT_BUDGET_US} µs"));
            }
            self.push(diagnostic);
        }
        (budget, period)
    }

    fn stack_size(&mut self, pd: &PdDecl) -> u64 {
        let Some(stack) = &pd.stack_size else {
            return DEFAULT_STACK_SIZE;
        };
        if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&stack.value) {
            self.push(Diagnostic::error(
                Code::StackSize,
                stack.span,
                format!(
                    "stack size must be between {MIN_STACK_SIZE:#x} and {MAX_STACK_SIZE:#x} \
                     bytes, got {:#x}",
                    stack.value
                ),
            ));
            DEFAULT_STACK_SIZE
        } else if stack.value % PAGE_SIZE != 0 {
            self.push(
                Diagnostic::error(
                    Code::StackSize,
                    stack.span,
                    format!(
                        "stack size {:#x} must be aligned to the smallest page size {PAGE_SIZE:#x}",
                        stack.value
                    ),
                )
                .with_help(format!(
                    "use {:#x}",
                    stack.value.div_ceil(PAGE_SIZE) * PAGE_SIZE
                )),
            );
            DEFAULT_STACK_SIZE
        } else {
            stack.value
        }
    }

    fn caps(&mut self, pd: &PdDecl, lookup: &Lookup<'_>) -> Vec<SharedCap> {
        let mut slots: HashMap<u64, Span> = HashMap::new();
        let mut caps = Vec::new();
        for cap in &pd.caps {
            let slot = &cap.slot;
            if slot.value == 0 {
                self.push(
                    Diagnostic::error(
                        Code::CapSlot,
                        slot.span,
                        "slot 0 is reserved for the Microkit CNode",
                    )
                    .with_help(format!("use a slot from 1 to {}", CAP_SLOT_COUNT - 1)),
                );
            } else if slot.value >= CAP_SLOT_COUNT {
                self.push(Diagnostic::error(
                    Code::CapSlot,
                    slot.span,
                    format!(
                        "slot must be less than {CAP_SLOT_COUNT}, got {}",
                        slot.value
                    ),
                ));
            } else if let Some(first) = slots.insert(slot.value, slot.span) {
                self.push(
                    Diagnostic::error(
                        Code::OverlappingCaps,
                        slot.span,
                        format!("overlapping user caps in slot {}", slot.value),
                    )
                    .with_secondary(first, "slot first used here"),
                );
            }
            if let Some(target) = lookup.pd(&cap.pd, "cap", &mut self.diagnostics) {
                caps.push(SharedCap {
                    kind: cap.kind,
                    slot: slot.value.min(u64::from(u8::MAX)) as u8,
                    pd: target,
                });
            }
        }
        caps
    }

    fn child_ids(&mut self) {
        let decls = self.decls;
        let mut seen: HashMap<(usize, u64), Span> = HashMap::new();
        for pd in &decls.protection_domains {
            let (Some(parent), Some(id)) = (pd.parent, &pd.child_id) else {
                continue;
            };
            if id.value >= CHANNEL_ID_COUNT {
                continue;
            }
            if let Some(first) = seen.insert((parent, id.value), id.span) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateChildId,
                        id.span,
                        format!(
                            "child id {} is already used by a sibling under '{}'",
                            id.value, decls.protection_domains[parent].name.value
                        ),
                    )
                    .with_secondary(first, "first used here"),
                );
            }
        }
    }

    fn irq_numbers(&mut self, placement: &Placement) {
        let decls = self.decls;
        let board = self.board;
        let timer = u64::from(atoll_abi::limits::PD_TIMER_INTID);
        // Shared interrupts are claimed machine-wide; the per-core timer once per replica.
        let mut seen: HashMap<(u64, Option<usize>), (Span, &str)> = HashMap::new();
        for (index, pd) in decls.protection_domains.iter().enumerate() {
            let replica = placement.pds.get(index).map_or(0, |p| p.0);
            for irq in &pd.irqs {
                let (number, span) = (irq.irq.value, irq.irq.span);
                let key = (number, (number == timer).then_some(replica));
                if number == timer {
                    self.pd_timer(placement, index, replica, span);
                }
                if number != timer && !(FIRST_DEVICE_IRQ..IRQ_LIMIT).contains(&number) {
                    let help = format!(
                        "device interrupts are shared GIC interrupts, ids {FIRST_DEVICE_IRQ} to {}; \
                         ids below {FIRST_DEVICE_IRQ} are per-core (the kernels' doorbells and timers), \
                         except {timer}, the core's physical timer",
                        IRQ_LIMIT - 1
                    );
                    let message = format!("IRQ {number} is not a device interrupt");
                    self.push(Diagnostic::error(Code::IrqNumber, span, message).with_help(help));
                } else if number == u64::from(board.timer_intid) {
                    let message = format!(
                        "IRQ {number} is the kernel's timer on board '{}'",
                        board.name
                    );
                    self.push(Diagnostic::error(Code::IrqNumber, span, message));
                } else if let Some(&(first, owner)) = seen.get(&key) {
                    let message = format!(
                        "duplicate irq: {number} in protection domain '{}' is already claimed \
                         by '{owner}'",
                        pd.name.value
                    );
                    self.push(
                        Diagnostic::error(Code::DuplicateIrq, span, message)
                            .with_secondary(first, "first claimed here"),
                    );
                } else {
                    seen.insert(key, (span, &pd.name.value));
                }
            }
        }
    }

    /// The physical timer's interrupt opens that core's timer registers to EL0, so its PD
    /// must be alone in its replica: no other PD could then disturb its timer.
    fn pd_timer(&mut self, placement: &Placement, pd: usize, replica: usize, span: Span) {
        let Some(r) = placement.replicas.get(replica) else {
            return;
        };
        let Some(&other) = r.protection_domains.iter().find(|&&p| p != pd) else {
            return;
        };
        let name = |i: usize| &self.decls.protection_domains[i].name.value;
        let message = format!(
            "IRQ {} is the core's physical timer, which its PD programs itself, so '{}' must be \
             alone in its replica; '{}' shares replica '{}' with it",
            atoll_abi::limits::PD_TIMER_INTID,
            name(pd),
            name(other),
            r.name
        );
        self.push(Diagnostic::error(Code::IrqNumber, span, message).with_help(
            "put the timer's PD in a replica of its own (a <replica> element, or a cpu no \
             other PD uses)",
        ));
    }

    fn channel(
        &mut self,
        tag: Span,
        ends: &[EndDecl; 2],
        placement: &Placement,
        lookup: &Lookup<'_>,
    ) -> Option<Channel> {
        let pds = ends
            .each_ref()
            .map(|end| lookup.pd(&end.pd, "channel end", &mut self.diagnostics));
        let ids = [0, 1].map(|i| match pds[i] {
            Some(pd) => Some(self.claim_id(pd, &ends[i].id, "channel")),
            None => {
                // The PD is unknown (already reported), but a bad id is an error of its own.
                self.check_id_range(&ends[i].id, "channel");
                None
            }
        });
        let setvars =
            [0, 1].map(|i| pds[i].and_then(|pd| self.symbol_opt(pd, ends[i].setvar_id.as_ref())));
        let pp = ends
            .each_ref()
            .map(|end| end.pp.as_ref().filter(|pp| pp.value));
        if let (Some(first), Some(second)) = (pp[0], pp[1]) {
            let message = "cannot ppc bidirectionally: both ends have pp=\"true\"";
            self.push(
                Diagnostic::error(Code::PpBothEnds, second.span, message)
                    .with_secondary(first.span, "other end also calls")
                    .with_help(
                        "a protected procedure call goes one way, towards the higher priority; \
                         keep 'pp' on the caller only",
                    ),
            );
        }
        let [Some(a), Some(b)] = pds else { return None };
        let replica = |pd: usize| placement.pds.get(pd).map(|p| p.0);
        let cross_replica = replica(a) != replica(b);
        match (pp[0], pp[1]) {
            (Some(pp), None) => self.ppc(pp.span, a, b, placement),
            (None, Some(pp)) => self.ppc(pp.span, b, a, placement),
            _ => {}
        }
        let [setvar_a, setvar_b] = setvars;
        let end = |pd: usize, i: usize, setvar_id: Option<String>| ChannelEnd {
            pd,
            id: ids[i].unwrap_or(0),
            pp: pp[i].is_some(),
            notify: ends[i].notify,
            setvar_id,
        };
        let ends = [end(a, 0, setvar_a), end(b, 1, setvar_b)];
        Some(Channel {
            ends,
            cross_replica,
            span: tag,
        })
    }

    /// Checks a protected procedure call from `caller` to `callee` (`pp` marks the call).
    fn ppc(&mut self, pp: Span, caller: usize, callee: usize, placement: &Placement) {
        let decls = self.decls;
        let (caller_pd, callee_pd) = (
            &decls.protection_domains[caller],
            &decls.protection_domains[callee],
        );
        let replica = |pd: usize| {
            let index = placement.pds.get(pd).map(|p| p.0);
            index
                .and_then(|i| placement.replicas.get(i))
                .map_or("?", |r| r.name.as_str())
        };
        if replica(caller) != replica(callee) {
            let message = format!(
                "protected procedure call from '{}' (replica '{}') to '{}' (replica '{}'): PPC \
                 across replicas is not supported yet",
                caller_pd.name.value,
                replica(caller),
                callee_pd.name.value,
                replica(callee)
            );
            self.push(
                Diagnostic::error(Code::CrossReplicaPpc, pp, message)
                    .with_secondary(callee_pd.name.span, "callee declared here")
                    .with_help(
                        "place both PDs in one replica, or use notifications and a shared \
                         memory region",
                    ),
            );
            return;
        }
        let priority = |pd: &PdDecl| pd.priority.as_ref().map_or(0, |p| p.value);
        let (caller_priority, callee_priority) = (priority(caller_pd), priority(callee_pd));
        if callee_priority > caller_priority {
            return;
        }
        let callee_span = callee_pd
            .priority
            .as_ref()
            .map_or(callee_pd.name.span, |p| p.span);
        let message = format!(
            "PPCs must be to protection domains of strictly higher priorities; '{}' (priority \
             {caller_priority}) calls '{}' (priority {callee_priority})",
            caller_pd.name.value, callee_pd.name.value
        );
        let help = format!(
            "give '{}' a priority above {caller_priority}",
            callee_pd.name.value
        );
        self.push(
            Diagnostic::error(Code::PpPriority, pp, message)
                .with_secondary(callee_span, "callee declared here")
                .with_help(help),
        );
    }
}

/// Microkit's page-size upgrade: a region whose page size was not given gets 2 MiB pages when
/// its size, physical address and every mapping address are 2 MiB aligned.
fn upgrade_page_size(index: usize, mr: &mut MemoryRegion, pds: &[ProtectionDomain]) {
    let aligned = |value: u64| value.is_multiple_of(LARGE_PAGE_SIZE);
    let Some(size) = mr.size else { return };
    let maps_aligned = pds
        .iter()
        .flat_map(|pd| &pd.maps)
        .filter(|map| map.mr == index)
        .all(|map| aligned(map.vaddr));
    if !mr.page_size_given && aligned(size) && mr.phys_addr.is_none_or(aligned) && maps_aligned {
        mr.page_size = LARGE_PAGE_SIZE;
    }
}

/// A PD's address space, as the mapping checks need it.
#[derive(Clone, Copy)]
struct AddressSpace {
    pd: usize,
    replica: usize,
    /// Mappings must end at or below this address.
    stack_bottom: u64,
}

/// Overlapping pairs `(later, earlier)` among half-open `ranges`, by index, in index order;
/// every range that overlaps some other is reported at least once, in O(n log n).
fn overlapping(ranges: &[(u64, u64)]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].0, i));
    let mut reach: Option<usize> = None;
    let mut pairs = Vec::new();
    for i in order {
        match reach {
            Some(r) => {
                if ranges[i].0 < ranges[r].1 {
                    pairs.push((i.max(r), i.min(r)));
                }
                if ranges[i].1 > ranges[r].1 {
                    reach = Some(i);
                }
            }
            None => reach = Some(i),
        }
    }
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::overlapping;

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
