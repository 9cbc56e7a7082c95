//! Invocations: operations on capabilities that are not endpoints, notifications or
//! doorbells (retype, CNode operations, thread control, mapping, interrupts, scheduling),
//! and the creation of the objects behind them. Every capability argument is checked for
//! its kind and for the rights seL4 requires (`docs/kernel.md` lists them, and where
//! Atoll's rule is stricter).

use atoll_abi::error::Error;
use atoll_abi::microkit::ObjectKind;
use atoll_abi::spec::attrs;
use atoll_abi::syscall::{MessageInfo, label, object_kind, vm_attr};

use super::objects::{Bell, Doorbell, Tcb, alloc, free_count};
use super::{Caps, Kernel, Machine, Target, vspace};
use crate::cap::{Cap, RetypeKind, Rights};
use crate::id::{IrqId, NotificationId, SchedContextId, SlotId, TcbSlot, ThreadId, VSpaceId};
use crate::ipc::ThreadState;
use crate::pagetable::descriptor_bits;

/// What an invocation replies with (beyond success).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Answer {
    pub len: usize,
    pub mrs: [u64; 4],
}

impl Answer {
    const NONE: Answer = Answer {
        len: 0,
        mrs: [0; 4],
    };
}

/// An invocation's arguments: its first message registers.
struct Args {
    values: [u64; 8],
    len: usize,
}

impl Args {
    /// Argument `i`, or `TruncatedMessage` if the message is shorter.
    fn get(&self, i: usize) -> Result<u64, Error> {
        if i < self.len {
            self.values.get(i).copied().ok_or(Error::TruncatedMessage)
        } else {
            Err(Error::TruncatedMessage)
        }
    }

    /// Argument `i`, 0 when the message is shorter.
    fn or_zero(&self, i: usize) -> u64 {
        self.get(i).unwrap_or(0)
    }
}

impl Kernel {
    /// Performs the invocation `info.label()` on the capability in `slot` for thread `t`.
    pub(super) fn invoke(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        slot: SlotId,
        cap: Cap,
        info: MessageInfo,
    ) -> Result<Answer, Error> {
        let mut args = Args {
            values: [0; 8],
            len: info.length(),
        };
        for (i, v) in args.values.iter_mut().enumerate().take(args.len) {
            *v = self.objects.mr(m, t, i);
        }
        let op = info.label();
        match cap {
            Cap::Untyped { .. } if op == label::UNTYPED_RETYPE => self.retype(m, t, slot, &args),
            Cap::CNode { .. } => self.cnode_op(m, t, cap, op, &args),
            Cap::Object {
                kind,
                data,
                base,
                size_bits,
                rights,
                badge,
            } => match kind {
                ObjectKind::Tcb => {
                    let target = ThreadId::from_data(data).ok_or(Error::InvalidCapability)?;
                    self.tcb_op(m, t, target, op, &args)
                }
                ObjectKind::SchedControl if op == label::SCHED_CONTROL_CONFIGURE => {
                    let sc = self.sched_context_arg(t, args.get(0)?)?;
                    let tpu = m.ticks_per_us().max(1);
                    let budget = args.get(1)?.saturating_mul(tpu);
                    let period = args.get(2)?.saturating_mul(tpu);
                    self.objects
                        .sched
                        .configure(sc, budget, period)
                        .map_err(|_| Error::RangeError)?;
                    Ok(Answer::NONE)
                }
                ObjectKind::SchedContext => {
                    let sc = SchedContextId::from_data(data).ok_or(Error::InvalidCapability)?;
                    self.sched_context_op(t, sc, op, &args)?;
                    Ok(Answer::NONE)
                }
                ObjectKind::PageTable => self.page_table_op(m, t, slot, base, data, op, &args),
                ObjectKind::Frame => {
                    self.frame_op(m, t, slot, (base, size_bits), rights, data, op, &args)
                }
                ObjectKind::IrqControl => self.irq_control_op(m, t, op, &args),
                ObjectKind::IrqHandler => {
                    let irq = IrqId::from_data(data).ok_or(Error::InvalidCapability)?;
                    self.irq_handler_op(m, t, irq, op, &args)
                }
                ObjectKind::Doorbell if op == label::DOORBELL_CONFIGURE => {
                    // Where a doorbell rings is set once, through its original capability:
                    // a badged or reduced copy only rings it.
                    if badge != 0 || rights != Rights::ALL {
                        return Err(Error::IllegalOperation);
                    }
                    let d =
                        crate::id::DoorbellId::from_data(data).ok_or(Error::InvalidCapability)?;
                    let bell = Bell {
                        replica: u32::try_from(args.get(0)?)
                            .ok()
                            .filter(|&r| r != u32::MAX)
                            .ok_or(Error::RangeError)?,
                        word: u32::try_from(args.get(1)?).map_err(|_| Error::RangeError)?,
                    };
                    if self.objects.doorbells[d] != Doorbell::Unconfigured {
                        return Err(Error::IllegalOperation);
                    }
                    self.objects.doorbells[d] = Doorbell::Rings(bell);
                    Ok(Answer::NONE)
                }
                _ => Err(Error::IllegalOperation),
            },
            _ => Err(Error::IllegalOperation),
        }
    }

    // ----- capability arguments ------------------------------------------------------

    /// A capability argument in `t`'s space (`FailedLookup` if the slot is empty).
    fn arg(&self, t: ThreadId, cptr: u64) -> Result<Target, Error> {
        self.resolve(t, cptr).ok_or(Error::FailedLookup)
    }

    /// An argument naming an object of `kind`: its id.
    fn object_arg<I>(
        &self,
        t: ThreadId,
        cptr: u64,
        kind: ObjectKind,
        id: fn(u64) -> Option<I>,
    ) -> Result<I, Error> {
        let target = self.arg(t, cptr)?;
        if target.kind != Some(kind) {
            return Err(Error::InvalidCapability);
        }
        id(target.data).ok_or(Error::InvalidCapability)
    }

    /// A scheduling-context argument.
    fn sched_context_arg(&self, t: ThreadId, cptr: u64) -> Result<SchedContextId, Error> {
        self.object_arg(t, cptr, ObjectKind::SchedContext, SchedContextId::from_data)
    }

    /// A TCB argument.
    fn tcb_arg(&self, t: ThreadId, cptr: u64) -> Result<ThreadId, Error> {
        self.object_arg(t, cptr, ObjectKind::Tcb, ThreadId::from_data)
    }

    /// A notification argument with `right`; `InvalidCapability` without it.
    fn notification_arg(
        &self,
        t: ThreadId,
        cptr: u64,
        right: Rights,
    ) -> Result<(NotificationId, u64), Error> {
        let target = self.arg(t, cptr)?;
        let n = target.notification(right).ok_or(Error::InvalidCapability)?;
        Ok((n, target.badge))
    }

    /// A CNode capability argument.
    fn cnode_arg(&self, t: ThreadId, cptr: u64) -> Result<(SlotId, Cap), Error> {
        let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
        let slot = self
            .caps
            .lookup_from(root, cptr, 64)
            .map_err(|_| Error::FailedLookup)?;
        match self.caps.get(slot) {
            cap @ Cap::CNode { .. } => Ok((slot, cap)),
            Cap::Null => Err(Error::FailedLookup),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// A slot named by (root CNode, index, depth).
    fn slot_in(&self, root: &Cap, index: u64, depth: u64) -> Result<SlotId, Error> {
        self.caps
            .lookup_from(root, index, u8::try_from(depth.min(64)).unwrap_or(64))
            .map_err(|_| Error::FailedLookup)
    }

    /// A slot named by (root CNode in `t`'s space, index, depth).
    fn dest_slot(&self, t: ThreadId, root: u64, index: u64, depth: u64) -> Result<SlotId, Error> {
        let (_, root) = self.cnode_arg(t, root)?;
        self.slot_in(&root, index, depth)
    }

    // ----- untyped ---------------------------------------------------------------------

    fn retype(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        untyped: SlotId,
        args: &Args,
    ) -> Result<Answer, Error> {
        let (kind, size_bits) = (args.get(0)?, args.get(1)?);
        let (root, node_index, node_depth) = (args.get(2)?, args.get(3)?, args.get(4)?);
        let (offset, count) = (args.get(5)?, args.get(6)?);
        let size_bits = u8::try_from(size_bits).map_err(|_| Error::RangeError)?;
        let kind = if kind == object_kind::UNTYPED {
            RetypeKind::Untyped { size_bits }
        } else {
            match object_kind::from_number(kind).ok_or(Error::InvalidArgument)? {
                ObjectKind::CNode => RetypeKind::CNode { radix: size_bits },
                ObjectKind::Frame => RetypeKind::Frame {
                    kind: ObjectKind::Frame,
                    size_bits,
                },
                ObjectKind::IrqControl | ObjectKind::IrqHandler | ObjectKind::SchedControl => {
                    return Err(Error::InvalidArgument);
                }
                k => RetypeKind::Object(k),
            }
        };
        // The destination CNode: the root itself (depth 0) or a CNode inside it.
        let (_, root) = self.cnode_arg(t, root)?;
        let node = if node_depth == 0 {
            root
        } else {
            match self.caps.get(self.slot_in(&root, node_index, node_depth)?) {
                c @ Cap::CNode { .. } => c,
                _ => return Err(Error::FailedLookup),
            }
        };
        let (first, slots) = Caps::cnode_slots(node).ok_or(Error::InvalidCapability)?;
        let slots = slots as u64;
        if count == 0 || offset >= slots || count > slots.saturating_sub(offset) {
            return Err(Error::RangeError);
        }
        // Both below the CNode's slot count, which is at most 2^12.
        let (offset, count) = (offset as usize, count as usize);
        // Room in the object tables, checked before any memory is taken.
        if let RetypeKind::Object(k) = kind {
            let o = &self.objects;
            let free = match k {
                ObjectKind::Tcb => o.tcbs.values().filter(|t| !t.live).count(),
                ObjectKind::Endpoint => free_count(&o.ep_live),
                ObjectKind::Notification => free_count(&o.ntfn_live),
                ObjectKind::Reply => o.replies.values().filter(|r| !r.live).count(),
                ObjectKind::SchedContext => free_count(&o.sc_live),
                ObjectKind::VSpace => o.vspaces.values().filter(|v| v.is_none()).count(),
                ObjectKind::Doorbell => o
                    .doorbells
                    .values()
                    .filter(|d| **d == Doorbell::Free)
                    .count(),
                _ => usize::MAX,
            };
            if free < count {
                return Err(Error::NotEnoughMemory);
            }
        }
        let dest = first
            .index()
            .checked_add(offset)
            .and_then(SlotId::new)
            .ok_or(Error::RangeError)?;
        // Device memory (and what the loader filled) keeps its contents.
        let device = matches!(self.caps.get(untyped), Cap::Untyped { device: true, .. });
        self.caps.retype(untyped, kind, count, dest)?;
        let new_slots = (dest.index()..dest.index().saturating_add(count)).filter_map(SlotId::new);
        for s in new_slots.clone() {
            let cleared = if device {
                Ok(())
            } else {
                self.clear_memory(m, s)
            };
            if let Err(e) = cleared.and_then(|()| self.init_object(s)) {
                // Undo: none of the new objects is used yet; those not yet given a table
                // entry have none to free.
                for undo in new_slots {
                    self.delete_slot(m, undo);
                }
                return Err(e);
            }
            if let Cap::Object {
                kind: ObjectKind::Tcb,
                data,
                ..
            } = self.caps.get(s)
                && let Some(t) = ThreadId::from_data(data)
            {
                m.thread_created(t);
            }
        }
        Ok(Answer::NONE)
    }

    /// Zeroes the memory of the new object in `slot` where that matters: translation
    /// tables must start empty (and so must lie in the replica's object memory); frames are
    /// zeroed unless they are device memory or memory the loader filled.
    fn clear_memory(&self, m: &mut impl Machine, slot: SlotId) -> Result<(), Error> {
        if let Cap::Object {
            kind,
            base,
            size_bits,
            ..
        } = self.caps.get(slot)
        {
            let size = 1u64.checked_shl(u32::from(size_bits)).unwrap_or(0);
            let zeroed = m.zero(base, size);
            if !zeroed && matches!(kind, ObjectKind::VSpace | ObjectKind::PageTable) {
                return Err(Error::InvalidArgument);
            }
        }
        Ok(())
    }

    /// Gives the new object in `slot` its table entry.
    pub(super) fn init_object(&mut self, slot: SlotId) -> Result<(), Error> {
        let Cap::Object { kind, base, .. } = self.caps.get(slot) else {
            return Ok(()); // untyped and CNodes need nothing
        };
        let o = &mut self.objects;
        let data = match kind {
            ObjectKind::Tcb => {
                let i = o.tcbs.find(|t| !t.live).ok_or(Error::NotEnoughMemory)?;
                o.tcbs[i] = Tcb {
                    live: true,
                    ..Tcb::EMPTY
                };
                o.sched.add_thread(i, 0);
                i.data()
            }
            ObjectKind::Endpoint => {
                let i = alloc(&mut o.ep_live).ok_or(Error::NotEnoughMemory)?;
                o.eps[i] = Default::default();
                i.data()
            }
            ObjectKind::Notification => {
                let i = alloc(&mut o.ntfn_live).ok_or(Error::NotEnoughMemory)?;
                o.ntfns[i] = Default::default();
                o.ntfn_bound[i] = None;
                o.ntfn_sc[i] = None;
                i.data()
            }
            ObjectKind::Reply => {
                let i = o.replies.find(|r| !r.live).ok_or(Error::NotEnoughMemory)?;
                o.replies[i].live = true;
                i.data()
            }
            ObjectKind::SchedContext => {
                let i = alloc(&mut o.sc_live).ok_or(Error::NotEnoughMemory)?;
                o.sc_ntfn[i] = None;
                i.data()
            }
            ObjectKind::VSpace => {
                let i = o
                    .vspaces
                    .find(Option::is_none)
                    .ok_or(Error::NotEnoughMemory)?;
                o.vspaces[i] = Some(base);
                i.data()
            }
            ObjectKind::Doorbell => {
                let i = o
                    .doorbells
                    .find(|d| *d == Doorbell::Free)
                    .ok_or(Error::NotEnoughMemory)?;
                o.doorbells[i] = Doorbell::Unconfigured;
                i.data()
            }
            _ => return Ok(()),
        };
        self.caps.set_data(slot, data)
    }

    // ----- CNodes ----------------------------------------------------------------------

    /// Deletes a capability, destroying its object when it was the last one.
    pub(super) fn delete_slot(&mut self, m: &mut impl Machine, slot: SlotId) {
        let Kernel { caps, objects, .. } = self;
        caps.delete_with(slot, &mut |s, cap, last| objects.gone(m, s, cap, last));
    }

    fn cnode_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        cnode: Cap,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        let here = self.slot_in(&cnode, args.get(0)?, args.get(1)?)?;
        match op {
            label::CNODE_DELETE => self.delete_slot(m, here),
            label::CNODE_REVOKE => {
                let Kernel { caps, objects, .. } = self;
                caps.revoke_with(here, &mut |s, cap, last| objects.gone(m, s, cap, last))?;
            }
            label::CNODE_COPY | label::CNODE_MINT | label::CNODE_MOVE | label::CNODE_MUTATE => {
                let dest = here;
                let src = self.dest_slot(t, args.get(2)?, args.get(3)?, args.get(4)?)?;
                match op {
                    label::CNODE_COPY => {
                        let rights = Rights::from_bits(args.get(5)? as u8);
                        self.caps.copy(src, dest, rights)?;
                    }
                    label::CNODE_MINT => {
                        let rights = Rights::from_bits(args.get(5)? as u8);
                        self.caps.mint(src, dest, rights, args.get(6)?)?;
                    }
                    label::CNODE_MOVE => self.caps.move_cap(src, dest)?,
                    _ => self.mutate(
                        src,
                        dest,
                        Rights::from_bits(args.get(5)? as u8),
                        args.get(6)?,
                    )?,
                }
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    /// seL4's Mutate: for a CNode, `data` sets its guard (bits 58–63 the guard's width, the
    /// rest its value); for an unbadged endpoint, notification or doorbell, a badge.
    fn mutate(
        &mut self,
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        data: u64,
    ) -> Result<(), Error> {
        if !matches!(self.caps.get(src), Cap::CNode { .. }) {
            let badge = (data != 0).then_some(data);
            return self.caps.mutate(src, dest, rights, badge);
        }
        self.caps.mutate(src, dest, rights, None)?;
        if data != 0 {
            let bits = (data >> 58) as u8;
            let guard = data & ((1 << 58) - 1);
            if let Err(e) = self.caps.set_guard(dest, guard, bits) {
                let _ = self.caps.move_cap(dest, src);
                return Err(e);
            }
        }
        Ok(())
    }

    // ----- TCBs ------------------------------------------------------------------------

    fn tcb_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        target: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        match op {
            label::TCB_CONFIGURE => self.tcb_configure(m, t, target, args)?,
            label::TCB_SET_PRIORITY | label::TCB_SET_MC_PRIORITY => {
                let auth = self.tcb_arg(t, args.get(0)?)?;
                let value = u8::try_from(args.get(1)?).map_err(|_| Error::RangeError)?;
                if value > self.objects.tcbs[auth].mcp {
                    return Err(Error::RangeError);
                }
                if op == label::TCB_SET_PRIORITY {
                    let _ = self.objects.sched.set_priority(target, value);
                } else {
                    self.objects.tcbs[target].mcp = value;
                }
            }
            label::TCB_SET_SCHED_PARAMS => self.tcb_set_sched_params(m, t, target, args)?,
            label::TCB_READ_REGISTERS => {
                if target == t {
                    return Err(Error::IllegalOperation); // they are being used
                }
                let c = self.objects.tcbs[target].ctx;
                return Ok(Answer {
                    len: 4,
                    mrs: [c.pc, c.sp, c.x[0], c.x[1]],
                });
            }
            label::TCB_WRITE_REGISTERS => {
                let resume = args.get(0)? != 0;
                let (pc, sp) = (args.get(1)?, args.get(2)?);
                if target == t {
                    return Err(Error::IllegalOperation); // they are being used
                }
                // Out of whatever it was blocked in: it goes on from the new registers.
                self.objects.suspend(target);
                let ctx = &mut self.objects.tcbs[target].ctx;
                *ctx = Default::default();
                ctx.pc = pc;
                ctx.sp = sp;
                ctx.x[0] = args.or_zero(3);
                ctx.x[1] = args.or_zero(4);
                ctx.x[2] = args.or_zero(5);
                ctx.x[3] = args.or_zero(6);
                if resume {
                    self.restart(target)?;
                }
            }
            label::TCB_RESUME => self.restart(target)?,
            label::TCB_SUSPEND => self.objects.suspend(target),
            label::TCB_BIND_NOTIFICATION => {
                // As seL4: the receive right, and a notification nobody waits on or is
                // bound to; every failure is an illegal operation.
                let (n, _) = self
                    .notification_arg(t, args.get(0)?, Rights::READ)
                    .map_err(|_| Error::IllegalOperation)?;
                let o = &mut self.objects;
                if o.tcbs[target].bound.is_some()
                    || o.ntfn_bound[n].is_some()
                    || !o.ntfns[n].waiters.is_empty()
                {
                    return Err(Error::IllegalOperation);
                }
                o.tcbs[target].bound = Some(n);
                o.ntfn_bound[n] = Some(target);
            }
            label::TCB_UNBIND_NOTIFICATION => {
                let n = self.objects.tcbs[target]
                    .bound
                    .take()
                    .ok_or(Error::IllegalOperation)?;
                self.objects.ntfn_bound[n] = None;
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    /// TCB_Configure (fault handler, capability space, address space, IPC buffer address and
    /// frame; 0 leaves one as it is): every argument is checked before anything changes,
    /// then each is copied into the thread's own slot.
    fn tcb_configure(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        target: ThreadId,
        args: &Args,
    ) -> Result<(), Error> {
        let (fault, cspace, vspace) = (args.get(0)?, args.get(1)?, args.get(2)?);
        let (ipc_va, ipc_frame) = (args.get(3)?, args.get(4)?);
        let mut installs: [Option<(TcbSlot, SlotId)>; 4] = [None; 4];
        if fault != 0 {
            // An endpoint it can send to and be replied through (seL4's `validFaultHandler`).
            let target = self.arg(t, fault)?;
            if target.call_endpoint().is_none() {
                return Err(Error::InvalidCapability);
            }
            installs[0] = Some((TcbSlot::FaultHandler, target.slot));
        }
        if cspace != 0 {
            let (slot, _) = self.cnode_arg(t, cspace)?;
            installs[1] = Some((TcbSlot::CSpace, slot));
        }
        if vspace != 0 {
            let target = self.arg(t, vspace)?;
            if target.kind != Some(ObjectKind::VSpace) {
                return Err(Error::InvalidCapability);
            }
            installs[2] = Some((TcbSlot::VSpace, target.slot));
        }
        let mut buffer = None;
        if ipc_frame != 0 {
            if !ipc_va.is_multiple_of(0x1000) {
                return Err(Error::AlignmentError);
            }
            let target = self.arg(t, ipc_frame)?;
            let Cap::Object {
                kind: ObjectKind::Frame,
                base,
                rights,
                ..
            } = self.caps.get(target.slot)
            else {
                return Err(Error::IllegalOperation);
            };
            // The kernel reads and writes messages there: a frame of the replica's RAM that
            // the capability lets the thread both read and write.
            if !rights.contains(Rights::READ.union(Rights::WRITE)) || m.page(base).is_none() {
                return Err(Error::IllegalOperation);
            }
            installs[3] = Some((TcbSlot::IpcBuffer, target.slot));
            buffer = Some(base);
        }
        for (which, source) in installs.into_iter().flatten() {
            self.install(m, target, which, source)?;
        }
        if let Some(pa) = buffer {
            self.objects.tcbs[target].ipc_buffer = Some(pa);
        }
        Ok(())
    }

    /// Puts a copy of the capability in `source` into `target`'s own slot `which`, deleting
    /// what was there. Deleting it may destroy objects (it may have been the last capability
    /// to them), so the target and the source are checked again before the copy.
    fn install(
        &mut self,
        m: &mut impl Machine,
        target: ThreadId,
        which: TcbSlot,
        source: SlotId,
    ) -> Result<(), Error> {
        let expected = self.caps.get(source);
        let dest = target.own_slot(which);
        self.delete_slot(m, dest);
        if !self.objects.tcbs[target].live || self.caps.get(source) != expected {
            return Err(Error::IllegalOperation);
        }
        self.caps.copy(source, dest, Rights::ALL)
    }

    /// TCB_SetSchedParams (authority, MCP, priority, scheduling context, fault handler).
    fn tcb_set_sched_params(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        target: ThreadId,
        args: &Args,
    ) -> Result<(), Error> {
        let auth = self.tcb_arg(t, args.get(0)?)?;
        let mcp = u8::try_from(args.get(1)?).map_err(|_| Error::RangeError)?;
        let prio = u8::try_from(args.get(2)?).map_err(|_| Error::RangeError)?;
        let limit = self.objects.tcbs[auth].mcp;
        if mcp > limit || prio > limit {
            return Err(Error::RangeError);
        }
        let sc = match args.get(3)? {
            0 => None,
            c => Some(self.sched_context_arg(t, c)?),
        };
        let fault = match args.get(4)? {
            0 => None,
            c => {
                let handler = self.arg(t, c)?;
                if handler.call_endpoint().is_none() {
                    return Err(Error::InvalidCapability);
                }
                Some(handler.slot)
            }
        };
        if let Some(sc) = sc {
            if self.objects.sched.sched_context(sc).is_none() {
                return Err(Error::InvalidCapability); // not configured yet
            }
            if self.objects.sc_ntfn[sc].is_some() {
                return Err(Error::IllegalOperation); // a notification's
            }
            if self.objects.sched.own_sc(target) != Some(sc) {
                if self.objects.sched.serves(sc).is_some() {
                    return Err(Error::IllegalOperation);
                }
                self.objects.sched.unbind(target);
                self.objects
                    .sched
                    .bind(target, sc)
                    .map_err(|_| Error::IllegalOperation)?;
            }
        } else {
            self.objects.sched.unbind(target);
        }
        self.objects.tcbs[target].mcp = mcp;
        let _ = self.objects.sched.set_priority(target, prio);
        if let Some(source) = fault {
            self.install(m, target, TcbSlot::FaultHandler, source)?;
        }
        Ok(())
    }

    /// Restarts a thread that has an address space and a capability space to run in, as
    /// seL4's `restart`: a thread that is stopped or blocked (on a fault's reply too) gives up
    /// whatever it waited for and runs (a thread blocked in a system call makes it again);
    /// a running one is left alone.
    fn restart(&mut self, target: ThreadId) -> Result<(), Error> {
        let has_cspace = matches!(
            self.caps.get_ref(target.own_slot(TcbSlot::CSpace)),
            Cap::CNode { .. }
        );
        if self.vspace_of(target).is_none() || !has_cspace {
            return Err(Error::IllegalOperation);
        }
        if self.objects.threads.state(target) != ThreadState::Running {
            self.objects.suspend(target);
            self.objects.resume(target);
        }
        Ok(())
    }

    // ----- scheduling contexts -----------------------------------------------------------

    /// SchedContext_Bind and SchedContext_UnbindObject: the object (argument 0) is a TCB,
    /// whose own context it becomes or stops being, or a notification, whose context it
    /// becomes or stops being (a passive thread bound to it runs on it while it handles a
    /// signal).
    fn sched_context_op(
        &mut self,
        t: ThreadId,
        sc: SchedContextId,
        op: u64,
        args: &Args,
    ) -> Result<(), Error> {
        let object = self.arg(t, args.get(0)?)?;
        let thread = match object.kind {
            Some(ObjectKind::Tcb) => {
                Some(ThreadId::from_data(object.data).ok_or(Error::InvalidCapability)?)
            }
            Some(ObjectKind::Notification) => None,
            _ => return Err(Error::InvalidCapability),
        };
        let o = &mut self.objects;
        match (op, thread) {
            (label::SCHED_CONTEXT_BIND, _) if o.sched.sched_context(sc).is_none() => {
                Err(Error::InvalidCapability) // not configured yet
            }
            (label::SCHED_CONTEXT_BIND, _)
                if o.sc_ntfn[sc].is_some() || o.sched.serves(sc).is_some() =>
            {
                Err(Error::IllegalOperation) // in use
            }
            (label::SCHED_CONTEXT_BIND, Some(thread)) => o
                .sched
                .bind(thread, sc)
                .map_err(|_| Error::IllegalOperation),
            (label::SCHED_CONTEXT_BIND, None) => {
                // Binding a context to a notification decides who runs when it is
                // signalled: the receive right is needed (seL4 checks no right here).
                let n = object
                    .notification(Rights::READ)
                    .ok_or(Error::InvalidCapability)?;
                if o.ntfn_sc[n].is_some() {
                    return Err(Error::IllegalOperation);
                }
                o.ntfn_sc[n] = Some(sc);
                o.sc_ntfn[sc] = Some(n);
                Ok(())
            }
            (label::SCHED_CONTEXT_UNBIND_OBJECT, Some(thread)) => {
                // A thread cannot take its own context away while it runs on it.
                if o.sched.own_sc(thread) != Some(sc) || thread == t {
                    return Err(Error::IllegalOperation);
                }
                o.sched.unbind(thread);
                Ok(())
            }
            (label::SCHED_CONTEXT_UNBIND_OBJECT, None) => {
                let n = NotificationId::from_data(object.data).ok_or(Error::InvalidCapability)?;
                if o.sc_ntfn[sc] != Some(n) {
                    return Err(Error::IllegalOperation);
                }
                o.sc_ntfn[sc] = None;
                o.ntfn_sc[n] = None;
                // A thread running on it while it handled a signal gives it up.
                if let Some(running) = o.sched.serves(sc) {
                    o.sched.reclaim(sc, running);
                }
                Ok(())
            }
            _ => Err(Error::IllegalOperation),
        }
    }

    // ----- translation -----------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn page_table_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        slot: SlotId,
        base: u64,
        data: u64,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        match op {
            label::PAGE_TABLE_MAP => {
                if data != 0 {
                    return Err(Error::IllegalOperation); // already mapped
                }
                let v = self.vspace_arg(t, args.get(0)?)?;
                let va = args.get(1)?;
                let root = self.objects.vspaces[v].ok_or(Error::InvalidCapability)?;
                let level = vspace::map_table(m, root, base, va)?;
                let record = vspace::table_record(v, vspace::table_base(va, level), level);
                self.caps.set_data(slot, record)?;
            }
            label::PAGE_TABLE_UNMAP => {
                // Copies name the same mapping: only the last may undo it (as seL4).
                if !self.caps.is_final(slot) {
                    return Err(Error::RevokeFirst);
                }
                self.objects.unlink_table(m, base, data);
                self.caps.set_data(slot, 0)?;
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    /// An address-space argument.
    fn vspace_arg(&self, t: ThreadId, cptr: u64) -> Result<VSpaceId, Error> {
        self.object_arg(t, cptr, ObjectKind::VSpace, VSpaceId::from_data)
    }

    #[allow(clippy::too_many_arguments)]
    fn frame_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        slot: SlotId,
        (base, size_bits): (u64, u8),
        have: Rights,
        data: u64,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        match op {
            label::FRAME_MAP => {
                let v = self.vspace_arg(t, args.get(0)?)?;
                let va = args.get(1)?;
                let want = Rights::from_bits(args.get(2)? as u8).intersect(have);
                let vm = args.get(3)?;
                if !want.contains(Rights::READ) {
                    return Err(Error::InvalidArgument);
                }
                let remap = match vspace::decode_frame(data) {
                    None => false,
                    Some((mv, mva)) if mv == v && mva == va => true,
                    Some(_) => return Err(Error::IllegalOperation), // mapped elsewhere
                };
                let mut a = attrs::USER;
                if want.contains(Rights::WRITE) {
                    a |= attrs::WRITE;
                } else if vm & vm_attr::EXECUTE != 0 {
                    a |= attrs::EXEC;
                }
                if vm & vm_attr::CACHED == 0 {
                    a |= attrs::DEVICE;
                }
                let root = self.objects.vspaces[v].ok_or(Error::InvalidCapability)?;
                vspace::map_frame(m, root, base, size_bits, va, descriptor_bits(a), remap)?;
                if remap {
                    m.flush_tlb(v.asid(), Some(va));
                }
                self.caps.set_data(slot, vspace::frame_record(v, va))?;
            }
            label::FRAME_UNMAP => {
                self.objects.unmap_frame(m, base, size_bits, data);
                self.caps.set_data(slot, 0)?;
            }
            label::FRAME_GET_ADDRESS => {
                return Ok(Answer {
                    len: 1,
                    mrs: [base, 0, 0, 0],
                });
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    // ----- interrupts --------------------------------------------------------------------

    fn irq_control_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        match op {
            label::IRQ_CONTROL_GET => {
                let number = args.get(0)?;
                let dest = self.dest_slot(t, args.get(2)?, args.get(3)?, args.get(4)?)?;
                let irq = usize::try_from(number)
                    .ok()
                    .and_then(IrqId::new)
                    .ok_or(Error::RangeError)?;
                let intid = u32::try_from(number).map_err(|_| Error::RangeError)?;
                if self.objects.irqs[irq].handler {
                    return Err(Error::RevokeFirst);
                }
                if !m.claim_irq(intid, args.get(1)? != 0) {
                    return Err(Error::RangeError);
                }
                self.caps.insert_original(
                    dest,
                    Cap::Object {
                        kind: ObjectKind::IrqHandler,
                        base: number,
                        size_bits: 0,
                        rights: Rights::ALL,
                        badge: 0,
                        data: irq.data(),
                    },
                )?;
                self.objects.irqs[irq].handler = true;
            }
            label::IRQ_CONTROL_WATCH_PENDING_WORD => {
                let word = u32::try_from(args.get(0)?).map_err(|_| Error::RangeError)?;
                // The kernel signals the notification for the other replica: the send right.
                let (n, _) = self.notification_arg(t, args.get(1)?, Rights::WRITE)?;
                self.watch(m, word, n)?;
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    fn irq_handler_op(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        irq: IrqId,
        op: u64,
        args: &Args,
    ) -> Result<Answer, Error> {
        let intid = u32::try_from(irq.index()).map_err(|_| Error::RangeError)?;
        match op {
            label::IRQ_HANDLER_ACK => m.set_irq_enabled(intid, true),
            label::IRQ_HANDLER_SET_NOTIFICATION => {
                // The interrupt signals it: the send right (as seL4).
                let (n, badge) = self.notification_arg(t, args.get(0)?, Rights::WRITE)?;
                self.objects.irqs[irq].ntfn = Some(n);
                self.objects.irqs[irq].badge = badge;
                m.set_irq_enabled(intid, true);
            }
            label::IRQ_HANDLER_CLEAR => {
                self.objects.irqs[irq].ntfn = None;
                m.set_irq_enabled(intid, false);
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    /// Has cross-replica channel word `word` signal notification `n`. Bits rung before the
    /// watch began are delivered at once: their senders found the word non-empty and
    /// raised no doorbell, so nothing else would.
    fn watch(&mut self, m: &mut impl Machine, word: u32, n: NotificationId) -> Result<(), Error> {
        self.objects.check_watch(word)?;
        let pending = m.take_pending_word(word).ok_or(Error::RangeError)?;
        self.objects.add_watch(word, n)?;
        if pending != 0 {
            self.objects.signal(n, pending);
        }
        Ok(())
    }
}
