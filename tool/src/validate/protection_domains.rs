//! Each protection domain: priority, budget, period, stack, capabilities and child ids.

use atoll_abi::directory::{PD_NAME_BYTES, REPLICA_NAME_BYTES};

use super::*;

impl Validator<'_> {
    pub(super) fn protection_domain(
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
        let resolved = self.irqs.get(index).cloned().unwrap_or_default();
        let mut irqs = Vec::new();
        for (irq, resolved) in pd.irqs.iter().zip(resolved) {
            let id = self.claim_id(index, &irq.id, "IRQ");
            let setvar_id = self.symbol_opt(index, irq.setvar_id.as_ref());
            // One naming an unknown device is reported already.
            irqs.extend(resolved.map(|resolved| Irq {
                number: resolved.number.min(u64::from(u32::MAX)) as u32,
                id,
                trigger: resolved.trigger,
                setvar_id,
                span: resolved.span,
            }));
        }
        let mut setvars = Vec::new();
        for setvar in &pd.setvars {
            let symbol = self.symbol(index, &setvar.symbol);
            let region = match &setvar.value {
                SetvarSource::Directory(_) => {
                    setvars.extend(symbol.map(|symbol| Setvar {
                        symbol,
                        value: SetvarValue::Directory,
                    }));
                    continue;
                }
                SetvarSource::Value(value) => {
                    setvars.extend(symbol.map(|symbol| Setvar {
                        symbol,
                        value: SetvarValue::Value(value.value),
                    }));
                    continue;
                }
                SetvarSource::RegionPaddr(region) => region,
            };
            let Some(mr) = lookup.mr(region, "setvar", &mut self.diagnostics) else {
                continue;
            };
            if regions[mr].phys_addr.is_none() {
                regions[mr].tool_allocated = true;
                // Placed in this PD's replica even if no PD maps it, so that its address
                // exists to be patched (as Microkit allocates it).
                if !regions[mr].replicas.contains(&replica) {
                    regions[mr].replicas.push(replica);
                    regions[mr].replicas.sort_unstable();
                }
            }
            setvars.extend(symbol.map(|symbol| Setvar {
                symbol,
                value: SetvarValue::RegionPaddr(mr),
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
            smc: pd.smc,
            domain: None, // set by `domains`
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

    /// With a `<setvar directory="system">` anywhere, every replica's and every PD's name
    /// must fit the directory's name fields (a NUL always follows a name).
    pub(super) fn directory_names(&mut self, placement: &Placement) {
        let decls = self.decls;
        let Some(asked) = decls
            .protection_domains
            .iter()
            .flat_map(|pd| &pd.setvars)
            .find_map(|setvar| match setvar.value {
                SetvarSource::Directory(span) => Some(span),
                SetvarSource::RegionPaddr(_) | SetvarSource::Value(_) => None,
            })
        else {
            return;
        };
        let replicas = placement
            .replicas
            .iter()
            .map(|r| ("replica", r.name.as_str(), r.span, REPLICA_NAME_BYTES));
        let pds = decls.protection_domains.iter().map(|pd| {
            (
                "protection domain",
                pd.name.value.as_str(),
                pd.name.span,
                PD_NAME_BYTES,
            )
        });
        let long: Vec<_> = replicas
            .chain(pds)
            .filter(|&(_, name, _, field)| name.len() >= field)
            .collect();
        for (kind, name, span, field) in long {
            self.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    span,
                    format!(
                        "{kind} name '{name}' is {} bytes; the system directory holds {kind} \
                         names of at most {} bytes",
                        name.len(),
                        field - 1
                    ),
                )
                .with_secondary(asked, "the system directory asked for here")
                .with_help("shorten the name, or patch no directory"),
            );
        }
    }

    pub(super) fn priority(&mut self, pd: &PdDecl) -> u8 {
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

    pub(super) fn budget_period(&mut self, pd: &PdDecl) -> (u64, u64) {
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

    pub(super) fn stack_size(&mut self, pd: &PdDecl) -> u64 {
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

    /// A `<cspace>` capability names an object of the PD's own replica: a kernel's objects
    /// cannot be invoked from another replica.
    pub(super) fn caps_in_one_replica(
        &mut self,
        pds: &[ProtectionDomain],
        placement: &super::replicas::Placement,
    ) {
        let replica_of = |pd: usize| placement.pds.get(pd).map(|&(replica, _)| replica);
        let replica_name = |r: Option<usize>| {
            r.and_then(|r| placement.replicas.get(r))
                .map_or("?", |r| r.name.as_str())
        };
        for (index, pd) in pds.iter().enumerate() {
            for (cap, decl) in pd
                .caps
                .iter()
                .zip(&self.decls.protection_domains[index].caps)
            {
                let (mine, theirs) = (replica_of(index), replica_of(cap.pd));
                if mine != theirs {
                    self.push(
                        Diagnostic::error(
                            Code::CapAcrossReplicas,
                            decl.pd.span,
                            format!(
                                "'{}' runs in replica '{}' but '{}' in replica '{}': a capability \
                                 can only name an object of the PD's own replica",
                                pd.name,
                                replica_name(mine),
                                pds[cap.pd].name,
                                replica_name(theirs)
                            ),
                        )
                        .with_help("place both PDs in one replica, or drop the capability"),
                    );
                }
            }
        }
    }

    pub(super) fn caps(&mut self, pd: &PdDecl, lookup: &Lookup<'_>) -> Vec<SharedCap> {
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

    pub(super) fn child_ids(&mut self) {
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
}
