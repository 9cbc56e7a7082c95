//! Each replica's protection domains, kernel objects, capabilities and interrupt routes,
//! following Microkit's capability layout (`atoll_abi::pd`).

use std::collections::BTreeSet;

use atoll_abi::limits::{LARGE_PAGE_SIZE, MAX_REPLICAS, PAGE_SIZE};
use atoll_abi::object::{CNODE_SLOT_BITS, ObjectKind};
use atoll_abi::pd::{FAULT_BADGE, PD_NAME_LENGTH, PPC_BADGE, slot, vspace};

use super::ram::{Bump, RamSplit};
use super::{
    CapSlot, ChannelPlan, DirectoryPatch, DomainPlan, IrqRoute, KernelObject, MapPlan, PatchValue,
    PdPlan, ReplicaPlan, SymbolPatch, error,
};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{
    CapKind, ChannelEnd, Perms, ProtectionDomain, SetvarValue, SystemDescription, Trigger,
};

/// What every replica's plan is built from: the description and the shared decisions.
pub(super) struct Layout<'a> {
    pub(super) system: &'a SystemDescription,
    /// The system directory, when a PD asks for it.
    pub(super) directory: Option<&'a DirectoryPatch>,
    pub(super) region_addr: &'a [Option<u64>],
    pub(super) region_sizes: &'a [u64],
    pub(super) channels: &'a [ChannelPlan],
    pub(super) program_extent: &'a dyn Fn(&str) -> Option<(u64, u64)>,
}

/// The capabilities of one PD as they are collected, with the masks and id symbols they
/// imply.
#[derive(Default)]
struct PdCaps {
    caps: Vec<CapSlot>,
    notify_mask: u64,
    pp_mask: u64,
    irq_mask: u64,
    /// Per replica: the PD's channel ids whose other end is a PD of that replica, for
    /// replicas other than the PD's own (whose entry stays 0).
    peer_channels: [u64; MAX_REPLICAS],
    id_symbols: Vec<(String, u64)>,
}

impl PdCaps {
    fn push(&mut self, slot: u32, object: String, rights: &'static str, badge: u64) {
        self.caps.push(CapSlot {
            slot,
            object,
            rights,
            badge,
        });
    }
}

fn object(kind: ObjectKind, name: String, detail: Option<String>) -> KernelObject {
    KernelObject {
        name,
        kind: kind.name(),
        size_bits: kind.fixed_size_bits().unwrap_or(12),
        count: 1,
        phys_addr: None,
        detail,
    }
}

fn perms_text(p: Perms) -> String {
    [(p.read, 'r'), (p.write, 'w'), (p.execute, 'x')]
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect()
}

fn word(symbol: String, value: u64) -> SymbolPatch {
    SymbolPatch {
        symbol,
        value: PatchValue::Word(value),
        optional: false,
    }
}

/// The optional symbol that receives a PD's channels by the replica of their other end:
/// `[u64; MAX_REPLICAS]`, element `r` with bit `id` for each of the PD's channel ids whose
/// other end is a PD of replica `r`, 0 for the PD's own replica.
pub const PEER_CHANNELS_SYMBOL: &str = "atoll_peer_channels";

impl Layout<'_> {
    /// Every replica's plan; kernel objects are placed in `replica_ram`.
    pub(super) fn replicas(
        &self,
        split: &RamSplit,
        replica_ram: &mut [Bump],
        errors: &mut Vec<Diagnostic>,
    ) -> Vec<ReplicaPlan> {
        let mut replicas = Vec::new();
        for (index, replica) in self.system.replicas.values().enumerate() {
            let (protection_domains, mut objects, irqs) = self.replica(index);
            let ram = &mut replica_ram[index];
            if let Some(at) = place_objects(&mut objects, ram) {
                errors.push(error(
                    Code::OutOfMemory,
                    replica.span,
                    format!(
                        "replica '{}' has too little RAM for its kernel objects (at '{at}')",
                        replica.name
                    ),
                ));
            }
            replicas.push(ReplicaPlan {
                name: replica.name.clone(),
                index,
                cores: replica.cores.clone(),
                restart: replica.restarts(),
                hung_after_ms: replica.hung_after_ms,
                ram: split.replicas[index].into(),
                free_bytes: ram.left(),
                objects,
                protection_domains,
                irqs,
                domain_schedule: self.system.domains.as_ref().map(super::domains::plan),
            });
        }
        replicas
    }

    /// One replica's PDs, objects and interrupt routes.
    fn replica(&self, index: usize) -> (Vec<PdPlan>, Vec<KernelObject>, Vec<IrqRoute>) {
        let mut objects = vec![
            object(
                ObjectKind::Endpoint,
                "monitor_endpoint".into(),
                Some("fault endpoint of the replica's monitor".into()),
            ),
            object(
                ObjectKind::Reply,
                "monitor_reply".into(),
                Some("the monitor's reply object".into()),
            ),
        ];
        let mut pds = Vec::new();
        let mut irqs = Vec::new();
        let local = self
            .system
            .protection_domains
            .values()
            .enumerate()
            .filter(|(_, p)| p.replica == index)
            .map(|(i, _)| i);
        for (local_index, pd_index) in local.enumerate() {
            pds.push(self.protection_domain(pd_index, local_index, &mut objects, &mut irqs));
        }
        (pds, objects, irqs)
    }

    /// PD `pd_index`'s index in the system directory: its place among every replica's PDs,
    /// replicas in index order, as `directory::encode` lists them. Validation keeps a
    /// system below the directory's `MAX_DIRECTORY_PDS` (63), so it fits the status page's
    /// PD table; a PD no replica lists (none after validation) gets `u32::MAX`, no record,
    /// and the boot program names no thread with an index past the table.
    fn status_index(&self, pd_index: usize) -> u32 {
        self.system
            .replicas
            .values()
            .flat_map(|r| r.protection_domains.iter())
            .position(|&p| p == pd_index)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(u32::MAX)
    }

    /// Whether a PD receives on an endpoint (children or PPC callers), as Microkit decides.
    fn has_endpoint(&self, pd: usize) -> bool {
        let has_children = self
            .system
            .protection_domains
            .values()
            .any(|p| p.parent.is_some_and(|(parent, _)| parent == pd));
        let is_callee = self.system.channels.iter().any(|c| {
            let [a, b] = &c.ends;
            (a.pp && b.pd == pd) || (b.pp && a.pd == pd)
        });
        has_children || is_callee
    }

    /// One PD: its objects (added to `objects`), capabilities, address space, symbols and
    /// interrupt routes (added to `irqs`).
    fn protection_domain(
        &self,
        pd_index: usize,
        local_index: usize,
        objects: &mut Vec<KernelObject>,
        irqs: &mut Vec<IrqRoute>,
    ) -> PdPlan {
        let system = self.system;
        let pd = &system.protection_domains[pd_index];
        let endpoint = self.has_endpoint(pd_index);
        pd_objects(pd, endpoint, objects);
        let mut caps = PdCaps::default();
        self.own_caps(pd, endpoint, local_index, &mut caps);
        for (channel, planned) in system.channels.iter().zip(self.channels) {
            for (me, peer) in [
                (&channel.ends[0], &channel.ends[1]),
                (&channel.ends[1], &channel.ends[0]),
            ] {
                if me.pd != pd_index {
                    continue;
                }
                if let Some(symbol) = &me.setvar_id {
                    caps.id_symbols.push((symbol.clone(), u64::from(me.id)));
                }
                let peer_replica = system.protection_domains[peer.pd].replica;
                if peer_replica != pd.replica
                    && let Some(mask) = caps.peer_channels.get_mut(peer_replica)
                {
                    *mask |= 1 << me.id;
                }
                self.end_caps(me, peer, planned, &mut caps, objects);
            }
        }
        irq_caps(pd, &mut caps, irqs);
        self.child_caps(pd_index, &mut caps);
        caps.caps.sort_by_key(|c| c.slot);
        let (maps, symbols) = self.address_space(pd, &caps);
        let program = (self.program_extent)(&pd.program_image.path);
        objects.push(KernelObject {
            count: page_tables_needed(&maps, program),
            ..object(
                ObjectKind::PageTable,
                format!("page_tables_{}", pd.name),
                None,
            )
        });
        PdPlan {
            name: pd.name.clone(),
            program_image: pd.program_image.path.clone(),
            priority: pd.priority,
            budget_us: pd.budget,
            period_us: pd.period,
            passive: pd.passive,
            restart: pd.restart,
            core: pd.core,
            status_index: self.status_index(pd_index),
            domain: system
                .domains
                .as_ref()
                .zip(pd.domain)
                .map(|(domains, id)| DomainPlan {
                    name: super::domains::domain_name(domains, id),
                    id,
                }),
            parent: pd
                .parent
                .map(|(p, id)| (system.protection_domains[p].name.clone(), id)),
            capabilities: caps.caps,
            root_capabilities: self.root_caps(pd),
            maps,
            symbols,
            image: None,
        }
    }

    /// The `<cspace>` capabilities of `pd`: another (or its own) PD's TCB, scheduling
    /// context or VSpace, in root CNode slots. Validation keeps the target in the same
    /// replica.
    fn root_caps(&self, pd: &ProtectionDomain) -> Vec<CapSlot> {
        let mut caps: Vec<CapSlot> = pd
            .caps
            .iter()
            .map(|cap| {
                let target = &self.system.protection_domains[cap.pd].name;
                let object = match cap.kind {
                    CapKind::Tcb => format!("tcb_{target}"),
                    CapKind::SchedContext => format!("sched_context_{target}"),
                    CapKind::VSpace => format!("vspace_{target}"),
                };
                CapSlot {
                    slot: u32::from(cap.slot),
                    object,
                    rights: "rwgc",
                    badge: 0,
                }
            })
            .collect();
        caps.sort_by_key(|c| c.slot);
        caps
    }

    /// The capabilities every PD has: its input, fault endpoint, VSpace and reply, and, for
    /// a passive PD, the monitor's endpoint.
    fn own_caps(
        &self,
        pd: &ProtectionDomain,
        endpoint: bool,
        local_index: usize,
        caps: &mut PdCaps,
    ) {
        let name = &pd.name;
        let input = if endpoint {
            format!("endpoint_{name}")
        } else {
            format!("notification_{name}")
        };
        caps.push(slot::INPUT, input, "rwgc", 0);
        let (fault_target, fault_badge) = match pd.parent {
            Some((parent, child_id)) => (
                format!("endpoint_{}", self.system.protection_domains[parent].name),
                FAULT_BADGE | u64::from(child_id),
            ),
            None => ("monitor_endpoint".to_string(), local_index as u64 + 1),
        };
        caps.push(slot::FAULT_ENDPOINT, fault_target, "wgc", fault_badge);
        caps.push(slot::VSPACE, format!("vspace_{name}"), "rw", 0);
        caps.push(slot::REPLY, format!("reply_{name}"), "rwg", 0);
        if pd.smc {
            caps.push(slot::ARM_SMC, "smc".into(), "rw", 0);
        }
        if pd.passive {
            caps.push(
                slot::MONITOR_ENDPOINT,
                "monitor_endpoint".into(),
                "w",
                local_index as u64 + 1,
            );
        }
    }

    /// Capabilities one channel end gives its PD.
    fn end_caps(
        &self,
        me: &ChannelEnd,
        peer: &ChannelEnd,
        planned: &ChannelPlan,
        caps: &mut PdCaps,
        objects: &mut Vec<KernelObject>,
    ) {
        let peer_name = &self.system.protection_domains[peer.pd].name;
        let my_name = &self.system.protection_domains[me.pd].name;
        if me.notify {
            caps.notify_mask |= 1 << me.id;
            let target = if planned.cross_replica {
                let doorbell = format!("doorbell_{my_name}_{}", me.id);
                let word = planned
                    .doorbells
                    .iter()
                    .find(|d| &d.from == my_name)
                    .map_or(0, |d| d.pending_word);
                let detail = format!(
                    "sets bit {} of {peer_name}'s pending word at {word:#x}",
                    peer.id
                );
                objects.push(object(ObjectKind::Doorbell, doorbell.clone(), Some(detail)));
                doorbell
            } else {
                format!("notification_{peer_name}")
            };
            let slot = slot::OUTPUT_NOTIFICATION + u32::from(me.id);
            caps.push(slot, target, "w", 1 << peer.id);
        }
        if me.pp {
            caps.pp_mask |= 1 << me.id;
            caps.push(
                slot::OUTPUT_ENDPOINT + u32::from(me.id),
                format!("endpoint_{peer_name}"),
                "wgc",
                PPC_BADGE | u64::from(peer.id),
            );
        }
    }

    /// A capability to each child's TCB.
    fn child_caps(&self, pd_index: usize, caps: &mut PdCaps) {
        for child in self.system.protection_domains.values() {
            if let Some((parent, id)) = child.parent
                && parent == pd_index
            {
                let slot = slot::CHILD_TCB + u32::from(id);
                caps.push(slot, format!("tcb_{}", child.name), "rwgc", 0);
                if let Some(symbol) = &child.setvar_id {
                    caps.id_symbols.push((symbol.clone(), u64::from(id)));
                }
            }
        }
    }

    /// A PD's mappings (its regions, stack and IPC buffer) and the symbols to patch in its
    /// program.
    fn address_space(
        &self,
        pd: &ProtectionDomain,
        caps: &PdCaps,
    ) -> (Vec<MapPlan>, Vec<SymbolPatch>) {
        let mut maps = Vec::new();
        let mut symbols = vec![
            SymbolPatch {
                symbol: "microkit_name".into(),
                value: PatchValue::Bytes(truncate_name(&pd.name)),
                optional: false,
            },
            word("microkit_passive".into(), u64::from(pd.passive)),
            word("microkit_notifications".into(), caps.notify_mask),
            word("microkit_pps".into(), caps.pp_mask),
            word("microkit_irqs".into(), caps.irq_mask),
            SymbolPatch {
                symbol: PEER_CHANNELS_SYMBOL.into(),
                value: PatchValue::Words(caps.peer_channels.to_vec()),
                optional: true,
            },
        ];
        for map in &pd.maps {
            let mr = &self.system.memory_regions[map.mr];
            let size = self.region_sizes[map.mr];
            maps.push(MapPlan {
                what: mr.name.clone(),
                vaddr: map.vaddr,
                phys_addr: self.region_addr[map.mr],
                size,
                perms: perms_text(map.perms),
                cached: map.cached,
                page_size: mr.page_size,
            });
            for (symbol, value) in [(&map.setvar_vaddr, map.vaddr), (&map.setvar_size, size)] {
                if let Some(symbol) = symbol {
                    symbols.push(word(symbol.clone(), value));
                }
            }
            if let Some(symbol) = &map.setvar_prefill_size {
                // The prefill file's length is patched in when the program is read.
                symbols.push(SymbolPatch {
                    symbol: symbol.clone(),
                    value: PatchValue::PrefillSize(mr.name.clone()),
                    optional: false,
                });
            }
        }
        for (what, vaddr, size) in [
            ("stack", vspace::STACK_TOP - pd.stack_size, pd.stack_size),
            ("ipc_buffer", vspace::IPC_BUFFER, PAGE_SIZE),
        ] {
            maps.push(MapPlan {
                what: what.into(),
                vaddr,
                phys_addr: None,
                size,
                perms: "rw-".into(),
                cached: true,
                page_size: PAGE_SIZE,
            });
        }
        for setvar in &pd.setvars {
            match setvar.value {
                SetvarValue::RegionPaddr(mr) => {
                    let value = self.region_addr[mr].unwrap_or(0);
                    symbols.push(word(setvar.symbol.clone(), value));
                }
                SetvarValue::Directory => {
                    // Planned whenever a PD asks for it (an error otherwise).
                    if let Some(directory) = self.directory {
                        symbols.push(SymbolPatch {
                            symbol: setvar.symbol.clone(),
                            value: PatchValue::Directory(directory.clone()),
                            optional: false,
                        });
                    }
                }
                SetvarValue::Value(value) => symbols.push(SymbolPatch {
                    symbol: setvar.symbol.clone(),
                    value: PatchValue::Literal(value),
                    optional: false,
                }),
            }
        }
        for (symbol, value) in &caps.id_symbols {
            symbols.push(word(symbol.clone(), *value));
        }
        (maps, symbols)
    }
}

/// A PD's own objects: TCB, scheduling context, VSpace, CNodes, notification, reply, an
/// endpoint if it receives on one, IPC buffer and stack.
fn pd_objects(pd: &ProtectionDomain, endpoint: bool, objects: &mut Vec<KernelObject>) {
    let name = &pd.name;
    objects.push(object(
        ObjectKind::Tcb,
        format!("tcb_{name}"),
        Some(format!("priority {}", pd.priority)),
    ));
    objects.push(object(
        ObjectKind::SchedContext,
        format!("sched_context_{name}"),
        Some(format!("budget {} us, period {} us", pd.budget, pd.period)),
    ));
    objects.push(object(ObjectKind::VSpace, format!("vspace_{name}"), None));
    let mut root = object(ObjectKind::CNode, format!("cnode_root_{name}"), None);
    root.size_bits = slot::ROOT_CNODE_SLOTS.trailing_zeros() + CNODE_SLOT_BITS;
    objects.push(root);
    let mut cnode = object(ObjectKind::CNode, format!("cnode_{name}"), None);
    cnode.size_bits = slot::CNODE_SLOTS.trailing_zeros() + CNODE_SLOT_BITS;
    objects.push(cnode);
    objects.push(object(
        ObjectKind::Notification,
        format!("notification_{name}"),
        None,
    ));
    objects.push(object(ObjectKind::Reply, format!("reply_{name}"), None));
    if endpoint {
        objects.push(object(
            ObjectKind::Endpoint,
            format!("endpoint_{name}"),
            None,
        ));
    }
    objects.push(KernelObject {
        count: 1,
        ..object(ObjectKind::Frame, format!("ipc_buffer_{name}"), None)
    });
    objects.push(KernelObject {
        count: pd.stack_size / PAGE_SIZE,
        ..object(ObjectKind::Frame, format!("stack_{name}"), None)
    });
}

/// A handler capability for each of the PD's interrupts, and the route of each.
fn irq_caps(pd: &ProtectionDomain, caps: &mut PdCaps, irqs: &mut Vec<IrqRoute>) {
    for irq in &pd.irqs {
        caps.irq_mask |= 1 << irq.id;
        let slot = slot::IRQ_HANDLER + u32::from(irq.id);
        caps.push(slot, format!("irq {}", irq.number), "rw", 0);
        irqs.push(IrqRoute {
            irq: irq.number,
            trigger: match irq.trigger {
                Trigger::Level => "level",
                Trigger::Edge => "edge",
            },
            core: pd.core,
            pd: pd.name.clone(),
            id: irq.id,
        });
        if let Some(symbol) = &irq.setvar_id {
            caps.id_symbols.push((symbol.clone(), u64::from(irq.id)));
        }
    }
}

/// Places a replica's kernel objects, largest first so each is naturally aligned. Returns
/// the name of the first object that did not fit, if one did not.
fn place_objects(objects: &mut [KernelObject], ram: &mut Bump) -> Option<String> {
    objects.sort_by_key(|o| std::cmp::Reverse(o.size_bits));
    for object in objects {
        if object.kind == ObjectKind::Frame.name() && object.phys_addr.is_some() {
            continue; // region frames were placed with their region
        }
        let size = (1u64 << object.size_bits) * object.count;
        match ram.take(size, 1 << object.size_bits) {
            Some(pa) => object.phys_addr = Some(pa),
            None => return Some(object.name.clone()),
        }
    }
    None
}

/// The name as patched: at most 63 bytes, so a NUL always follows.
pub(crate) fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(PD_NAME_LENGTH - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Translation tables below the VSpace root a PD needs for its mappings and its program
/// (40-bit, 4 KiB granule: the root covers 1 TiB in 512 GiB entries; a level-1 table per
/// 512 GiB touched, a level-2 table per GiB touched and a level-3 table per 2 MiB mapped
/// with small pages).
fn page_tables_needed(maps: &[MapPlan], program: Option<(u64, u64)>) -> u64 {
    let ranges = maps.iter().map(|m| (m.vaddr, m.size, m.page_size));
    let program = program.map(|(lo, hi)| (lo, hi.saturating_sub(lo), PAGE_SIZE));
    table_vaddrs(ranges.chain(program)).count() as u64
}

/// The bases of the translation tables below a VSpace root that some ranges need, by level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableVaddrs {
    /// Level-1 tables, one per 512 GiB touched.
    pub level1: BTreeSet<u64>,
    /// Level-2 tables, one per GiB touched.
    pub level2: BTreeSet<u64>,
    /// Level-3 tables, one per 2 MiB mapped with small pages.
    pub level3: BTreeSet<u64>,
}

impl TableVaddrs {
    /// How many tables.
    pub fn count(&self) -> usize {
        self.level1.len() + self.level2.len() + self.level3.len()
    }

    /// Every table's base in the order they can be mapped: each level before the next, each
    /// in address order.
    pub fn in_map_order(&self) -> impl Iterator<Item = u64> + '_ {
        self.level1
            .iter()
            .chain(&self.level2)
            .chain(&self.level3)
            .copied()
    }
}

/// The virtual addresses (bases) of the level-1, level-2 and level-3 tables that `(vaddr,
/// size, page size)` ranges need.
pub fn table_vaddrs(ranges: impl IntoIterator<Item = (u64, u64, u64)>) -> TableVaddrs {
    const GIB: u64 = 1 << 30;
    const LEVEL1_SPAN: u64 = 1 << 39;
    let mut tables = TableVaddrs::default();
    for (vaddr, size, page) in ranges {
        let last = vaddr + size.max(1) - 1;
        let mut v = vaddr & !(LARGE_PAGE_SIZE - 1);
        while v <= last {
            tables.level1.insert(v & !(LEVEL1_SPAN - 1));
            tables.level2.insert(v & !(GIB - 1));
            if page < LARGE_PAGE_SIZE {
                tables.level3.insert(v);
            }
            v += LARGE_PAGE_SIZE;
        }
    }
    tables
}
