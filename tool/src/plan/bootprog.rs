//! Boot programs: each replica's plan turned into the invocations its initialiser makes
//! (`atoll_abi::bootprog`), as Microkit's tool turns its plan into the monitor's.
//!
//! The initialiser gets exactly the untyped memory listed here: device blocks over the
//! memory whose contents must survive (regions outside the replica's RAM, regions and PD
//! programs the loader filled in it), and ordinary blocks over the rest of the replica's
//! RAM past the kernel's reserve. Objects are retyped in plan order from the block that
//! holds their planned address; since the kernel places each object at its untyped
//! block's watermark rounded up to the object's size, replaying the plan's bump allocation
//! lands every object where the report says, and the generator checks that it does.
//!
//! Slots: everything lives in the initialiser's root CNode from
//! `syscall::initial::FIRST_FREE` on; each PD's CNodes are filled with `CNode_Mint` from
//! there, following Microkit's layout (`atoll_abi::pd::slot`).

use std::collections::BTreeMap;

use atoll_abi::bootprog::{self, Invocation, Pd, Untyped, pd_flags, untyped_flags};
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::object::{CNODE_SLOT_BITS, ObjectKind};
use atoll_abi::pd::{slot, vspace};
use atoll_abi::shared::PD_RECORDS;
use atoll_abi::syscall::{initial, label, object_kind, rights, vm_attr};

use super::{
    ImagePlacement, KERNEL_RESERVE, KernelObject, MapPlan, PdPlan, Plan, RegionHome, ReplicaPlan,
    table_vaddrs, truncate_name,
};

/// The plan's name of a replica's monitor endpoint.
const MONITOR_ENDPOINT: &str = "monitor_endpoint";

/// Every object kind a plan names, by its report name.
const KINDS: [ObjectKind; 10] = [
    ObjectKind::Tcb,
    ObjectKind::SchedContext,
    ObjectKind::CNode,
    ObjectKind::Endpoint,
    ObjectKind::Notification,
    ObjectKind::Reply,
    ObjectKind::VSpace,
    ObjectKind::PageTable,
    ObjectKind::Frame,
    ObjectKind::Doorbell,
];

/// One untyped block as the kernel will hand it out, with the watermark a replay leaves.
struct Block {
    base: u64,
    bits: u32,
    device: bool,
    watermark: u64,
}

impl Block {
    fn end(&self) -> u64 {
        self.base + (1 << self.bits)
    }
}

/// A boot program under construction for one replica.
struct Builder<'a> {
    replica: &'a ReplicaPlan,
    blocks: Vec<Block>,
    invocations: Vec<Invocation>,
    next_slot: u64,
    /// Object name → first slot (runs take consecutive slots).
    slots: BTreeMap<String, u64>,
    /// Region name → (first slot, count) of its frames, made once and copied for every
    /// further mapping.
    region_frames: BTreeMap<String, (u64, u64)>,
}

fn invocation(cap: u64, op: u64, args: &[u64]) -> Invocation {
    let mut a = [0u64; bootprog::MAX_ARGS];
    a[..args.len()].copy_from_slice(args);
    Invocation {
        cap,
        label: op as u32,
        length: args.len() as u32,
        args: a,
    }
}

/// Rights bits from report text (`r`, `w`, `g`, `c` in any order).
fn rights_bits(text: &str) -> u64 {
    text.chars()
        .map(|c| match c {
            'r' => rights::READ,
            'w' => rights::WRITE,
            'g' => rights::GRANT,
            'c' => rights::GRANT_REPLY,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// Frame-map rights and attributes from permissions text (`rwx`, `-` for absent).
fn map_args(perms: &str, cached: bool) -> (u64, u64) {
    let mut r = rights::READ;
    let mut attrs = if cached { vm_attr::CACHED } else { 0 };
    if perms.contains('w') {
        r |= rights::WRITE;
    }
    if perms.contains('x') {
        attrs |= vm_attr::EXECUTE;
    }
    (r, attrs)
}

impl Builder<'_> {
    fn call(&mut self, cap: u64, op: u64, args: &[u64]) {
        self.invocations.push(invocation(cap, op, args));
    }

    fn slots(&mut self, count: u64) -> Result<u64, String> {
        let first = self.next_slot;
        self.next_slot += count;
        if self.next_slot > 1 << initial::ROOT_RADIX {
            return Err(format!(
                "replica '{}' needs more than the initialiser's {} capability slots",
                self.replica.name,
                (1u64 << initial::ROOT_RADIX) - initial::FIRST_FREE
            ));
        }
        Ok(first)
    }

    fn slot_of(&self, name: &str) -> Result<u64, String> {
        self.slots.get(name).copied().ok_or_else(|| {
            format!(
                "internal: no object '{name}' in replica '{}'",
                self.replica.name
            )
        })
    }

    /// Adds the untyped blocks of `[base, end)`.
    fn add_range(&mut self, base: u64, end: u64, device: bool) {
        for (b, bits) in initial::untyped_blocks(base, end) {
            self.blocks.push(Block {
                base: b,
                bits: u32::from(bits),
                device,
                watermark: 0,
            });
        }
    }

    /// Retypes `count` objects (`kind` number, retype size argument, `2^bits` bytes each)
    /// at `pa` into slots from `dest`, from the blocks that hold them, checking each lands
    /// at its planned address.
    fn retype_at(
        &mut self,
        what: &str,
        (kind, size_arg, bits): (u64, u64, u32),
        pa: u64,
        count: u64,
        dest: u64,
    ) -> Result<(), String> {
        let size = 1u64 << bits;
        let mut i = 0;
        while i < count {
            let at = pa + i * size;
            let Some(index) = self
                .blocks
                .iter()
                .position(|b| b.base <= at && at + size <= b.end())
            else {
                return Err(format!(
                    "internal: '{what}' at {at:#x} lies in no untyped block"
                ));
            };
            let b = &mut self.blocks[index];
            let start = b.base + b.watermark.next_multiple_of(size);
            if start != at {
                return Err(format!(
                    "internal: '{what}' would land at {start:#x}, not at its planned {at:#x}"
                ));
            }
            // As many of the run as this block holds.
            let run = ((b.end() - at) / size).min(count - i);
            b.watermark = at + run * size - b.base;
            let u = initial::FIRST_UNTYPED + index as u64;
            let args = [kind, size_arg, initial::CNODE, 0, 0, dest + i, run];
            self.call(u, label::UNTYPED_RETYPE, &args);
            i += run;
        }
        Ok(())
    }

    /// Retypes every planned object.
    fn objects(&mut self) -> Result<(), String> {
        for object in &self.replica.objects {
            let KernelObject {
                name,
                kind,
                size_bits,
                count,
                phys_addr,
                ..
            } = object;
            let kind = KINDS
                .iter()
                .copied()
                .find(|k| k.name() == *kind)
                .ok_or_else(|| format!("internal: unknown object kind '{kind}'"))?;
            let pa = phys_addr.ok_or_else(|| format!("internal: '{name}' has no address"))?;
            let size_arg = match kind {
                ObjectKind::CNode => u64::from(size_bits - CNODE_SLOT_BITS),
                ObjectKind::Frame => u64::from(*size_bits),
                _ => 0,
            };
            let dest = self.slots(*count)?;
            self.slots.insert(name.clone(), dest);
            let object = (object_kind::number(kind), size_arg, *size_bits);
            self.retype_at(name, object, pa, *count, dest)?;
        }
        Ok(())
    }

    /// Frames over `[pa, pa + size)` of `page` bytes each, from device blocks.
    fn frames(&mut self, what: &str, pa: u64, size: u64, page: u64) -> Result<u64, String> {
        let count = size.div_ceil(page);
        let dest = self.slots(count)?;
        let bits = page.trailing_zeros();
        let kind = object_kind::number(ObjectKind::Frame);
        self.retype_at(what, (kind, u64::from(bits), bits), pa, count, dest)?;
        Ok(dest)
    }
}

impl Builder<'_> {
    /// Mints the capability at `src` into `dest`, both slots of the initialiser's root
    /// CNode.
    fn mint(&mut self, dest: u64, src: u64, rights: u64, badge: u64) {
        let args = [dest, 64, initial::CNODE, src, 64, rights, badge];
        self.call(initial::CNODE, label::CNODE_MINT, &args);
    }

    /// Builds one PD: its address space, scheduling context, capability spaces and thread.
    /// Returns its record for the monitor.
    fn protection_domain(&mut self, plan: &Plan, pd: &PdPlan) -> Result<Pd, String> {
        let name = &pd.name;
        let image = pd
            .image
            .as_ref()
            .ok_or_else(|| format!("internal: PD '{name}' has no placed program"))?;
        let vspace_slot = self.address_space(plan, pd, image)?;
        // The context decides the core the PD's thread runs on. A passive PD runs its
        // `init` on the replica's first core, beside the monitor (see `Pd::init_core`); the
        // monitor moves the context to the PD's core when it binds it to the notification.
        let init_core = self.init_core(pd);
        let sc = self.slot_of(&format!("sched_context_{name}"))?;
        self.call(
            initial::SCHED_CONTROL,
            label::SCHED_CONTROL_CONFIGURE,
            &[sc, pd.budget_us, pd.period_us, u64::from(init_core)],
        );
        let cspace = self.cspace(pd)?;
        // The thread, its faults going to its parent or the monitor, badged.
        let fault = pd
            .capabilities
            .iter()
            .find(|c| c.slot == slot::FAULT_ENDPOINT)
            .ok_or_else(|| format!("internal: PD '{name}' has no fault endpoint"))?;
        let fault_ep = self.slots(1)?;
        let fault_object = self.slot_of(&fault.object)?;
        self.mint(fault_ep, fault_object, rights::ALL, fault.badge);
        let tcb = self.slot_of(&format!("tcb_{name}"))?;
        let ipc = self.slot_of(&format!("ipc_buffer_{name}"))?;
        self.call(
            tcb,
            label::TCB_CONFIGURE,
            &[fault_ep, cspace, vspace_slot, vspace::IPC_BUFFER, ipc],
        );
        let prio = u64::from(pd.priority);
        self.call(
            tcb,
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, prio, prio, sc, fault_ep],
        );
        // Its PD's record on the status page, where its kernel publishes its state and
        // faults from now on: named before it is started, so it reads `starting` first.
        if (pd.status_index as usize) < PD_RECORDS {
            let index = u64::from(pd.status_index);
            self.call(tcb, label::TCB_SET_STATUS_INDEX, &[index]);
        }
        let input = pd.capabilities.iter().find(|c| c.slot == slot::INPUT);
        let ntfn = self.slot_of(&format!("notification_{name}"))?;
        if input.is_some_and(|c| c.object.starts_with("endpoint_")) {
            self.call(tcb, label::TCB_BIND_NOTIFICATION, &[ntfn]);
        }
        if let Some(domain) = &pd.domain {
            let args = [u64::from(domain.id), tcb];
            self.call(initial::DOMAIN_SET, label::DOMAIN_SET_SET, &args);
        }
        let mut pd_name = [0u8; 64];
        let short = truncate_name(name);
        pd_name[..short.len()].copy_from_slice(short.as_bytes());
        Ok(Pd {
            name: pd_name,
            tcb,
            sc,
            notification: ntfn,
            // The monitor tells PDs apart by the badge of their fault endpoint; a child's
            // faults go to its parent instead.
            fault_badge: if fault.object == MONITOR_ENDPOINT {
                fault.badge
            } else {
                0
            },
            entry: image.entry,
            stack_top: vspace::STACK_TOP,
            flags: if pd.restart { pd_flags::RESTART } else { 0 }
                | if pd.passive { pd_flags::PASSIVE } else { 0 },
            core: u16::try_from(pd.core).map_err(|_| format!("internal: PD '{name}' core"))?,
            init_core: u16::try_from(init_core)
                .map_err(|_| format!("internal: PD '{name}' core"))?,
        })
    }

    /// The core a PD's `init` runs on: its own, or for a passive PD its replica's first.
    fn init_core(&self, pd: &PdPlan) -> u32 {
        match self.replica.cores.iter().min() {
            Some(&first) if pd.passive => first,
            _ => pd.core,
        }
    }

    /// Maps a PD's translation tables (level 1, then 2, then 3), its program page by page
    /// with its segments' permissions, its stack, IPC buffer and regions. Returns its
    /// VSpace's slot.
    fn address_space(
        &mut self,
        plan: &Plan,
        pd: &PdPlan,
        image: &ImagePlacement,
    ) -> Result<u64, String> {
        let name = &pd.name;
        let vspace_slot = self.slot_of(&format!("vspace_{name}"))?;
        let image_base = image.segments.first().map_or(0, |s| s.0 & !(PAGE_SIZE - 1));
        let ranges = pd
            .maps
            .iter()
            .map(|m| (m.vaddr, m.size, m.page_size))
            .chain([(image_base, image.size, PAGE_SIZE)]);
        let tables_needed = table_vaddrs(ranges);
        let object = format!("page_tables_{name}");
        let tables = self.slot_of(&object)?;
        let planned = self
            .replica
            .objects
            .iter()
            .find(|o| o.name == object)
            .map_or(0, |o| o.count);
        if tables_needed.count() as u64 > planned {
            return Err(format!(
                "internal: PD '{name}' needs {} translation tables, {planned} were planned",
                tables_needed.count()
            ));
        }
        for (i, va) in tables_needed.in_map_order().enumerate() {
            let table = tables + i as u64;
            self.call(table, label::PAGE_TABLE_MAP, &[vspace_slot, va]);
        }
        let what = format!("program of '{name}'");
        let frames = self.frames(&what, image.phys_addr, image.size, PAGE_SIZE)?;
        for page in 0..image.size / PAGE_SIZE {
            let va = image_base + page * PAGE_SIZE;
            let perms: String = image
                .segments
                .iter()
                .filter(|(sv, ss, _)| *sv < va + PAGE_SIZE && va < sv + ss)
                .map(|(_, _, sp)| sp.as_str())
                .collect();
            if perms.contains('w') && perms.contains('x') {
                return Err(format!(
                    "PD '{name}': the program page at {va:#x} is both writable and executable; link text and data on separate pages"
                ));
            }
            let (r, attrs) = map_args(&perms, true);
            self.call(
                frames + page,
                label::FRAME_MAP,
                &[vspace_slot, va, r, attrs],
            );
        }
        for map in &pd.maps {
            let (first, count) = match map.what.as_str() {
                "stack" | "ipc_buffer" => {
                    let object = format!("{}_{name}", map.what);
                    (self.slot_of(&object)?, map.size / PAGE_SIZE)
                }
                region => self.region_frames(plan, region, map)?,
            };
            let (r, attrs) = map_args(&map.perms, map.cached);
            for i in 0..count {
                let va = map.vaddr + i * map.page_size;
                self.call(first + i, label::FRAME_MAP, &[vspace_slot, va, r, attrs]);
            }
        }
        Ok(vspace_slot)
    }

    /// Frames of `region` for one more mapping: made on its first mapping, copies after.
    /// Returns (first slot, count).
    fn region_frames(
        &mut self,
        plan: &Plan,
        region: &str,
        map: &MapPlan,
    ) -> Result<(u64, u64), String> {
        if let Some(&(original, count)) = self.region_frames.get(region) {
            let first = self.slots(count)?;
            for i in 0..count {
                let args = [first + i, 64, initial::CNODE, original + i, 64, rights::ALL];
                self.call(initial::CNODE, label::CNODE_COPY, &args);
            }
            return Ok((first, count));
        }
        let pa = plan
            .memory_regions
            .iter()
            .find(|r| r.name == region)
            .and_then(|r| r.phys_addr)
            .ok_or_else(|| format!("internal: region '{region}' is not placed"))?;
        let first = self.frames(region, pa, map.size, map.page_size)?;
        let count = map.size.div_ceil(map.page_size);
        self.region_frames
            .insert(region.to_string(), (first, count));
        Ok((first, count))
    }

    /// Fills a PD's Microkit CNode (claiming its interrupts and binding them to its
    /// notification with the channel's bit as badge) and lays out its capability space as
    /// Microkit's: the root CNode (64 slots, no guard) indexed by the address's top 6 bits,
    /// its slot 0 the Microkit CNode guarded by the next 49 bits, so the PD names Microkit
    /// slot `n` by the plain number `n` and root slot `k` (a `<cspace>` capability) by
    /// `k << 58`. Returns the slot of the root CNode capability.
    fn cspace(&mut self, pd: &PdPlan) -> Result<u64, String> {
        let name = &pd.name;
        let cnode = self.slot_of(&format!("cnode_{name}"))?;
        let depth = u64::from(slot::CNODE_SLOTS.trailing_zeros());
        for cap in &pd.capabilities {
            let source = match cap.object.strip_prefix("irq ") {
                Some(irq) => self.irq_handler(pd, irq, cap.slot - slot::IRQ_HANDLER)?,
                None => self.slot_of(&cap.object)?,
            };
            let args = [
                u64::from(cap.slot),
                depth,
                initial::CNODE,
                source,
                64,
                rights_bits(cap.rights),
                cap.badge,
            ];
            self.call(cnode, label::CNODE_MINT, &args);
        }
        let root = self.slot_of(&format!("cnode_root_{name}"))?;
        let root_depth = u64::from(slot::ROOT_CNODE_SLOTS.trailing_zeros());
        // A copy of the Microkit CNode's capability, guarded as it moves into root slot 0.
        let copy = self.slots(1)?;
        let args = [copy, 64, initial::CNODE, cnode, 64, rights::ALL];
        self.call(initial::CNODE, label::CNODE_COPY, &args);
        let guard_bits = 64 - root_depth - depth;
        let args = [
            0,
            root_depth,
            initial::CNODE,
            copy,
            64,
            rights::ALL,
            guard_bits << 58,
        ];
        self.call(root, label::CNODE_MUTATE, &args);
        for cap in &pd.root_capabilities {
            let source = self.slot_of(&cap.object)?;
            let args = [
                u64::from(cap.slot),
                root_depth,
                initial::CNODE,
                source,
                64,
                rights_bits(cap.rights),
            ];
            self.call(root, label::CNODE_COPY, &args);
        }
        Ok(root)
    }

    /// Claims interrupt `irq` (text) and binds it to the PD's notification with badge
    /// `1 << id`; returns the handler's slot.
    fn irq_handler(&mut self, pd: &PdPlan, irq: &str, id: u32) -> Result<u64, String> {
        let irq: u64 = irq
            .parse()
            .map_err(|_| format!("internal: bad interrupt '{irq}'"))?;
        let edge = self
            .replica
            .irqs
            .iter()
            .any(|r| u64::from(r.irq) == irq && r.trigger == "edge");
        let handler = self.slots(2)?;
        self.call(
            initial::IRQ_CONTROL,
            label::IRQ_CONTROL_GET,
            &[irq, u64::from(edge), initial::CNODE, handler, 64],
        );
        let ntfn = self.slot_of(&format!("notification_{}", pd.name))?;
        self.mint(handler + 1, ntfn, rights::ALL, 1 << id);
        self.call(handler, label::IRQ_HANDLER_SET_NOTIFICATION, &[handler + 1]);
        Ok(handler)
    }

    /// With `<domains>`: writes the domain schedule's entries.
    fn domain_schedule_entries(&mut self) {
        let replica = self.replica;
        for e in replica.domain_schedule.iter().flat_map(|s| &s.entries) {
            let args = [e.index, u64::from(e.domain), e.duration, e.unit.abi()];
            self.call(
                initial::DOMAIN_SET,
                label::DOMAIN_SET_SCHEDULE_CONFIGURE,
                &args,
            );
        }
    }

    /// With `<domains>`: starts the domain schedule, as the boot program's last step.
    ///
    /// Last, after the PDs, as seL4's capDL initialiser starts it after the threads. Until
    /// then every thread runs as if in one domain and the initialiser, above every PD in
    /// priority, keeps its core: the replay is never cut into domain 0's turns, nor stalled
    /// by a schedule without one. Once started, the schedule switches at once to its start
    /// entry; the initialiser, in domain 0 as Microkit's monitor is, then reports the start
    /// and serves as the monitor in domain 0's turns.
    fn start_domain_schedule(&mut self) {
        if let Some(schedule) = &self.replica.domain_schedule {
            let args = [schedule.start];
            self.call(initial::DOMAIN_SET, label::DOMAIN_SET_SCHEDULE_START, &args);
        }
    }
}

/// The replica's memory ranges whose contents must survive, as `(base, end)`: regions its
/// PDs map and their programs.
fn kept_ranges(plan: &Plan, replica: &ReplicaPlan) -> Vec<(u64, u64, bool)> {
    let mut ranges: Vec<(u64, u64, bool)> = Vec::new();
    for pd in &replica.protection_domains {
        for map in &pd.maps {
            let Some(region) = plan.memory_regions.iter().find(|r| r.name == map.what) else {
                continue; // stack and IPC buffer: planned objects
            };
            let Some(pa) = region.phys_addr else { continue };
            let size = region
                .size
                .next_multiple_of(region.page_size)
                .max(region.page_size);
            let in_ram = matches!(region.home, RegionHome::Replica(_));
            if !ranges.iter().any(|r| r.0 == pa) {
                ranges.push((pa, pa + size, in_ram));
            }
        }
        if let Some(image) = &pd.image {
            ranges.push((image.phys_addr, image.phys_addr + image.size, true));
        }
    }
    // A region placed in this replica's RAM that no PD maps (one only `<setvar
    // region_paddr>` names) is kept out of the untyped memory all the same.
    for region in &plan.memory_regions {
        let here = matches!(&region.home, RegionHome::Replica(name) if *name == replica.name);
        if let (true, Some(pa)) = (here, region.phys_addr)
            && !ranges.iter().any(|r| r.0 == pa)
        {
            let size = region
                .size
                .next_multiple_of(region.page_size)
                .max(region.page_size);
            ranges.push((pa, pa + size, true));
        }
    }
    ranges
}

/// The boot program of `replica`, whose own bytes will sit at `[program_pa, ram end)`.
pub fn generate(plan: &Plan, replica: &ReplicaPlan, program_pa: u64) -> Result<Vec<u8>, String> {
    let mut b = Builder {
        replica,
        blocks: Vec::new(),
        invocations: Vec::new(),
        next_slot: initial::FIRST_FREE,
        // The replica's own authorities the PDs' capabilities come from.
        slots: BTreeMap::from([("smc".to_string(), initial::SMC)]),
        region_frames: BTreeMap::new(),
    };
    // Untyped memory: kept ranges as device blocks, the rest of the RAM as ordinary ones.
    let kept = kept_ranges(plan, replica);
    for &(base, end, _) in &kept {
        b.add_range(base, end, true);
    }
    let mut in_ram: Vec<(u64, u64)> = kept.iter().filter(|r| r.2).map(|r| (r.0, r.1)).collect();
    in_ram.sort_unstable();
    let mut at = replica.ram.base + KERNEL_RESERVE;
    for (base, end) in in_ram.into_iter().chain([(program_pa, program_pa)]) {
        if base > at {
            b.add_range(at, base, false);
        }
        at = at.max(end);
    }
    let limit = (initial::FIRST_FREE - initial::FIRST_UNTYPED) as usize;
    if b.blocks.len() > limit {
        return Err(format!(
            "replica '{}' needs {} untyped blocks; the initialiser holds at most {limit}",
            replica.name,
            b.blocks.len()
        ));
    }
    let untyped: Vec<Untyped> = b
        .blocks
        .iter()
        .map(|blk| Untyped {
            base: blk.base,
            size_bits: blk.bits,
            flags: match (blk.device, blk.base == plan.kernel_shared.base) {
                // The kernels' status page: the kernel makes read-only frames of it.
                (true, true) => untyped_flags::DEVICE | untyped_flags::READ_ONLY,
                (true, false) => untyped_flags::DEVICE,
                (false, _) => 0,
            },
        })
        .collect();

    b.objects()?;
    let mut pds = Vec::new();
    for pd in &replica.protection_domains {
        pds.push(b.protection_domain(plan, pd)?);
    }
    // Cross-replica channels. On the sending side each doorbell rings its pending word on
    // the replica of the PD it notifies (the plan names a doorbell after its sending PD and
    // that PD's end of the channel); on the receiving side the kernel watches each word for
    // the receiving PD's notification.
    let replica_of = |pd: &str| {
        plan.replicas
            .iter()
            .find(|r| r.protection_domains.iter().any(|p| p.name == pd))
            .map(|r| r.index as u64)
    };
    let mut watched = Vec::new();
    let here = Some(replica.index as u64);
    for channel in &plan.channels {
        for d in &channel.doorbells {
            let Some((_, id)) = channel.ends.iter().find(|(pd, _)| *pd == d.from) else {
                continue;
            };
            if replica_of(&d.from) == here {
                let name = format!("doorbell_{}_{id}", d.from);
                let target = replica_of(&d.to)
                    .ok_or_else(|| format!("internal: doorbell '{name}' has no target"))?;
                let slot = b.slot_of(&name)?;
                b.call(
                    slot,
                    label::DOORBELL_CONFIGURE,
                    &[target, u64::from(d.word)],
                );
            }
            if replica_of(&d.to) == here && !watched.contains(&d.word) {
                watched.push(d.word);
                let ntfn = b.slot_of(&format!("notification_{}", d.to))?;
                b.call(
                    initial::IRQ_CONTROL,
                    label::IRQ_CONTROL_WATCH_PENDING_WORD,
                    &[u64::from(d.word), ntfn],
                );
            }
        }
    }
    b.domain_schedule_entries();
    // Start every PD.
    for pd in &pds {
        b.call(
            pd.tcb,
            label::TCB_WRITE_REGISTERS,
            &[1, pd.entry, pd.stack_top],
        );
    }
    b.start_domain_schedule();
    let monitor = (b.slot_of(MONITOR_ENDPOINT)?, b.slot_of("monitor_reply")?);
    let mut out = Vec::new();
    bootprog::write(
        &mut out,
        monitor,
        b.next_slot as u32,
        &untyped,
        &pds,
        &b.invocations,
    );
    Ok(out)
}
