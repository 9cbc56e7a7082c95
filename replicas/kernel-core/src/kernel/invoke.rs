//! Invocations: operations on capabilities that are not endpoints, notifications or
//! doorbells (retype, CNode operations, thread control, mapping, interrupts, scheduling),
//! and the creation and destruction of the objects behind them.

use atoll_abi::error::Error;
use atoll_abi::microkit::ObjectKind;
use atoll_abi::spec::attrs;
use atoll_abi::syscall::{MessageInfo, label, object_kind, vm_attr};

use super::vspace;
use super::{Bell, Kernel, Machine, NO_REPLICA, NONE, Objects, Target, Tcb, Watch};
use crate::cap::{Cap, CapTable, RetypeKind, Rights, SlotId};
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

impl Kernel {
    /// Performs the invocation `info.label()` on the capability in `slot` for thread `t`.
    pub(super) fn invoke(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        slot: SlotId,
        cap: Cap,
        info: MessageInfo,
    ) -> Result<Answer, Error> {
        let len = info.length();
        let mut a = [0u64; 8];
        for (i, v) in a.iter_mut().enumerate().take(len) {
            *v = self.o.mr(m, t, i);
        }
        let arg = |i: usize| -> Result<u64, Error> {
            if i < len {
                Ok(a[i])
            } else {
                Err(Error::TruncatedMessage)
            }
        };
        let op = info.label();
        match cap {
            Cap::Untyped { .. } if op == label::UNTYPED_RETYPE => self.retype(
                m,
                t,
                slot,
                [
                    arg(0)?,
                    arg(1)?,
                    arg(2)?,
                    arg(3)?,
                    arg(4)?,
                    arg(5)?,
                    arg(6)?,
                ],
            ),
            Cap::CNode { .. } => self.cnode_op(m, t, cap, op, &arg),
            Cap::Object {
                kind,
                data,
                base,
                size_bits,
                rights,
                ..
            } => match kind {
                ObjectKind::Tcb => self.tcb_op(m, t, data as usize, op, &arg),
                ObjectKind::SchedControl if op == label::SCHED_CONTROL_CONFIGURE => {
                    let sc = self.resolve_kind(t, arg(0)?, ObjectKind::SchedContext)?;
                    let tpu = m.ticks_per_us().max(1);
                    let budget = arg(1)?.saturating_mul(tpu);
                    let period = arg(2)?.saturating_mul(tpu);
                    self.o
                        .sched
                        .configure(sc, budget, period)
                        .map_err(|_| Error::RangeError)?;
                    Ok(Answer::NONE)
                }
                ObjectKind::SchedContext => {
                    let thread = self.resolve_kind(t, arg(0)?, ObjectKind::Tcb)?;
                    self.sched_context_op(data as usize, thread, op)?;
                    Ok(Answer::NONE)
                }
                ObjectKind::PageTable => self.page_table_op(m, t, slot, base, data, op, &arg),
                ObjectKind::Frame => {
                    self.frame_op(m, t, slot, base, size_bits, rights, data, op, &arg)
                }
                ObjectKind::IrqControl if op == label::IRQ_CONTROL_GET => {
                    let irq = arg(0)?;
                    let dest = self.dest_slot(t, arg(2)?, arg(3)?, arg(4)?)?;
                    let state = self.o.irqs.get(irq as usize).ok_or(Error::RangeError)?;
                    if state.handler {
                        return Err(Error::RevokeFirst);
                    }
                    if !m.claim_irq(irq as u32, arg(1)? != 0) {
                        return Err(Error::RangeError);
                    }
                    self.caps.insert_original(
                        dest,
                        Cap::Object {
                            kind: ObjectKind::IrqHandler,
                            base: irq,
                            size_bits: 0,
                            rights: Rights::ALL,
                            badge: 0,
                            data: irq,
                        },
                    )?;
                    self.o.irqs[irq as usize].handler = true;
                    Ok(Answer::NONE)
                }
                ObjectKind::IrqHandler => {
                    let irq = data as usize;
                    match op {
                        label::IRQ_HANDLER_ACK => m.set_irq_enabled(irq as u32, true),
                        label::IRQ_HANDLER_SET_NOTIFICATION => {
                            let (n, badge) = self.resolve_notification(t, arg(0)?)?;
                            self.o.irqs[irq].ntfn = n as u16;
                            self.o.irqs[irq].badge = badge;
                            m.set_irq_enabled(irq as u32, true);
                        }
                        label::IRQ_HANDLER_CLEAR => {
                            self.o.irqs[irq].ntfn = NONE;
                            m.set_irq_enabled(irq as u32, false);
                        }
                        _ => return Err(Error::IllegalOperation),
                    }
                    Ok(Answer::NONE)
                }
                ObjectKind::Doorbell if op == label::DOORBELL_CONFIGURE => {
                    let bell = Bell {
                        replica: u32::try_from(arg(0)?)
                            .ok()
                            .filter(|&r| r != NO_REPLICA)
                            .ok_or(Error::RangeError)?,
                        word: u32::try_from(arg(1)?).map_err(|_| Error::RangeError)?,
                    };
                    let d = &mut self.o.doorbells[data as usize];
                    if d.replica != NO_REPLICA {
                        return Err(Error::IllegalOperation);
                    }
                    *d = bell;
                    Ok(Answer::NONE)
                }
                ObjectKind::IrqControl if op == label::IRQ_CONTROL_WATCH_PENDING_WORD => {
                    let word = u32::try_from(arg(0)?).map_err(|_| Error::RangeError)?;
                    let (n, _) = self.resolve_notification(t, arg(1)?)?;
                    self.watch(m, word, n)?;
                    Ok(Answer::NONE)
                }
                _ => Err(Error::IllegalOperation),
            },
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Has cross-replica channel word `word` signal notification `n`. Bits rung before the
    /// watch began are delivered at once: their senders found the word non-empty and
    /// raised no doorbell, so nothing else would.
    fn watch(&mut self, m: &mut impl Machine, word: u32, n: usize) -> Result<(), Error> {
        let pending = m.take_pending_word(word).ok_or(Error::RangeError)?;
        let count = self.o.watch_count;
        if self.o.watches[..count].iter().any(|w| w.word == word) {
            return Err(Error::IllegalOperation);
        }
        let free = self
            .o
            .watches
            .get_mut(count)
            .ok_or(Error::NotEnoughMemory)?;
        *free = Watch {
            word,
            ntfn: n as u16,
        };
        self.o.watch_count = count + 1;
        if pending != 0 {
            self.o.signal(n, pending);
        }
        Ok(())
    }

    /// Resolves a capability argument in `t`'s space that must be of `kind`; its index.
    fn resolve_kind(&self, t: usize, cptr: u64, want: ObjectKind) -> Result<usize, Error> {
        match self.resolve(t, cptr) {
            Some(Target {
                kind: Some(kind),
                data,
                ..
            }) if kind == want => Ok(data as usize),
            Some(_) => Err(Error::InvalidCapability),
            None => Err(Error::FailedLookup),
        }
    }

    /// An optional fault-endpoint argument (0: none): the endpoint's index and badge.
    fn resolve_fault_endpoint(&self, t: usize, cptr: u64) -> Result<Option<(u16, u64)>, Error> {
        if cptr == 0 {
            return Ok(None);
        }
        match self.resolve(t, cptr) {
            Some(Target {
                kind: Some(ObjectKind::Endpoint),
                data,
                badge,
                ..
            }) => Ok(Some((data as u16, badge))),
            Some(_) => Err(Error::InvalidCapability),
            None => Err(Error::FailedLookup),
        }
    }

    fn resolve_notification(&self, t: usize, cptr: u64) -> Result<(usize, u64), Error> {
        match self.resolve(t, cptr) {
            Some(Target {
                kind: Some(ObjectKind::Notification),
                data,
                badge,
                ..
            }) => Ok((data as usize, badge)),
            Some(_) => Err(Error::InvalidCapability),
            None => Err(Error::FailedLookup),
        }
    }

    /// A CNode capability argument.
    fn resolve_cnode(&self, t: usize, cptr: u64) -> Result<Cap, Error> {
        let slot = self
            .caps
            .lookup_from(&self.o.tcbs[t].cspace, cptr, 64)
            .map_err(|_| Error::FailedLookup)?;
        match self.caps.get(slot) {
            cap @ Cap::CNode { .. } => Ok(cap),
            Cap::Null => Err(Error::FailedLookup),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// A slot named by (root CNode in `t`'s space, index, depth).
    fn dest_slot(&self, t: usize, root: u64, index: u64, depth: u64) -> Result<SlotId, Error> {
        let root = self.resolve_cnode(t, root)?;
        self.caps
            .lookup_from(&root, index, depth.min(64) as u8)
            .map_err(|_| Error::FailedLookup)
    }

    fn retype(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        untyped: SlotId,
        a: [u64; 7],
    ) -> Result<Answer, Error> {
        let [kind, size_bits, root, node_index, node_depth, offset, count] = a;
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
        let root = self.resolve_cnode(t, root)?;
        let node = if node_depth == 0 {
            root
        } else {
            let s = self
                .caps
                .lookup_from(&root, node_index, node_depth.min(64) as u8)
                .map_err(|_| Error::FailedLookup)?;
            match self.caps.get(s) {
                c @ Cap::CNode { .. } => c,
                _ => return Err(Error::FailedLookup),
            }
        };
        let (first, slots) = CapTable::<1>::cnode_slots(node).ok_or(Error::InvalidCapability)?;
        if count == 0 || offset >= slots as u64 || count > slots as u64 - offset {
            return Err(Error::RangeError);
        }
        let (offset, count) = (offset as usize, count as usize);
        // Room in the object tables, checked before any memory is taken.
        if let RetypeKind::Object(k) = kind {
            let free = match k {
                ObjectKind::Tcb => self.o.tcbs.iter().filter(|t| !t.live).count(),
                ObjectKind::Endpoint => self.o.ep_pool.free_count(),
                ObjectKind::Notification => self.o.ntfn_pool.free_count(),
                ObjectKind::Reply => self.o.replies.iter().filter(|r| !r.live).count(),
                ObjectKind::SchedContext => self.o.sc_pool.free_count(),
                ObjectKind::VSpace => self.o.vspace_pool.free_count(),
                ObjectKind::Doorbell => self.o.doorbell_pool.free_count(),
                _ => usize::MAX,
            };
            if free < count {
                return Err(Error::NotEnoughMemory);
            }
        }
        let dest = first + offset;
        // Device memory (and what the loader filled) keeps its contents.
        let device = matches!(self.caps.get(untyped), Cap::Untyped { device: true, .. });
        self.caps.retype(untyped, kind, count, dest)?;
        for s in dest..dest + count {
            let cleared = if device {
                Ok(())
            } else {
                self.clear_memory(m, s)
            };
            if let Err(e) = cleared.and_then(|()| self.init_object(s)) {
                // Undo: none of the new objects is used yet.
                for undo in dest..dest + count {
                    let _ = self.delete_slot(m, undo);
                }
                return Err(e);
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
            let zeroed = m.zero(base, 1 << size_bits);
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
        let o = &mut self.o;
        let index = match kind {
            ObjectKind::Tcb => {
                let i = o
                    .tcbs
                    .iter()
                    .position(|t| !t.live)
                    .ok_or(Error::NotEnoughMemory)?;
                o.tcbs[i] = Tcb {
                    live: true,
                    ..Tcb::EMPTY
                };
                let _ = o.sched.add_thread(i, 0);
                i
            }
            ObjectKind::Endpoint => {
                let i = o.ep_pool.alloc().ok_or(Error::NotEnoughMemory)?;
                o.eps[i] = Default::default();
                i
            }
            ObjectKind::Notification => {
                let i = o.ntfn_pool.alloc().ok_or(Error::NotEnoughMemory)?;
                o.ntfns[i] = Default::default();
                o.ntfn_bound[i] = NONE;
                i
            }
            ObjectKind::Reply => {
                let i = o
                    .replies
                    .iter()
                    .position(|r| !r.live)
                    .ok_or(Error::NotEnoughMemory)?;
                o.replies[i].live = true;
                o.replies[i].caller = NONE;
                o.replies[i].server = NONE;
                i
            }
            ObjectKind::SchedContext => o.sc_pool.alloc().ok_or(Error::NotEnoughMemory)?,
            ObjectKind::VSpace => {
                let i = o.vspace_pool.alloc().ok_or(Error::NotEnoughMemory)?;
                o.vspaces[i] = base;
                i
            }
            ObjectKind::Doorbell => {
                let i = o.doorbell_pool.alloc().ok_or(Error::NotEnoughMemory)?;
                o.doorbells[i] = Bell::UNCONFIGURED;
                i
            }
            _ => 0,
        };
        self.caps.set_data(slot, index as u64)
    }

    /// Deletes a capability, destroying its object when it was the last one.
    pub(super) fn delete_slot(&mut self, m: &mut impl Machine, slot: SlotId) -> Result<(), Error> {
        let Kernel { caps, o, .. } = self;
        caps.delete_with(slot, &mut |cap, last| o.gone(m, cap, last))
    }

    fn cnode_op(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        cnode: Cap,
        op: u64,
        arg: &dyn Fn(usize) -> Result<u64, Error>,
    ) -> Result<Answer, Error> {
        let here = |i: usize| -> Result<SlotId, Error> {
            self.caps
                .lookup_from(&cnode, arg(i)?, arg(i + 1)?.min(64) as u8)
                .map_err(|_| Error::FailedLookup)
        };
        match op {
            label::CNODE_DELETE => {
                let s = here(0)?;
                self.delete_slot(m, s)?;
            }
            label::CNODE_REVOKE => {
                let s = here(0)?;
                let Kernel { caps, o, .. } = self;
                caps.revoke_with(s, &mut |cap, last| o.gone(m, cap, last))?;
            }
            label::CNODE_COPY | label::CNODE_MINT | label::CNODE_MOVE | label::CNODE_MUTATE => {
                let dest = here(0)?;
                let src_root = self.resolve_cnode(t, arg(2)?)?;
                let src = self
                    .caps
                    .lookup_from(&src_root, arg(3)?, arg(4)?.min(64) as u8)
                    .map_err(|_| Error::FailedLookup)?;
                match op {
                    label::CNODE_COPY => {
                        let rights = Rights::from_bits(arg(5)? as u8);
                        self.caps.copy(src, dest, rights)?;
                    }
                    label::CNODE_MINT => {
                        let rights = Rights::from_bits(arg(5)? as u8);
                        self.caps.mint(src, dest, rights, arg(6)?)?;
                    }
                    label::CNODE_MOVE => self.caps.move_cap(src, dest)?,
                    _ => {
                        let rights = Rights::from_bits(arg(5)? as u8);
                        let data = arg(6)?;
                        if matches!(self.caps.get(src), Cap::CNode { .. }) {
                            self.caps.mutate(src, dest, rights, None)?;
                            if data != 0 {
                                let bits = (data >> 58) as u8;
                                let guard = data & ((1 << 58) - 1);
                                if let Err(e) = self.caps.set_guard(dest, guard, bits) {
                                    let _ = self.caps.move_cap(dest, src);
                                    return Err(e);
                                }
                            }
                        } else {
                            let badge = (data != 0).then_some(data);
                            self.caps.mutate(src, dest, rights, badge)?;
                        }
                    }
                }
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    fn tcb_op(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        target: usize,
        op: u64,
        arg: &dyn Fn(usize) -> Result<u64, Error>,
    ) -> Result<Answer, Error> {
        match op {
            label::TCB_CONFIGURE => {
                let fault = arg(0)?;
                let (cspace, vspace, ipc_va, ipc_frame) = (arg(1)?, arg(2)?, arg(3)?, arg(4)?);
                let fault = self.resolve_fault_endpoint(t, fault)?;
                let cspace = if cspace != 0 {
                    Some(self.resolve_cnode(t, cspace)?)
                } else {
                    None
                };
                let vspace = if vspace != 0 {
                    Some(self.resolve_kind(t, vspace, ObjectKind::VSpace)? as u16)
                } else {
                    None
                };
                let ipc = if ipc_frame != 0 {
                    if !ipc_va.is_multiple_of(0x1000) {
                        return Err(Error::AlignmentError);
                    }
                    match self
                        .resolve(t, ipc_frame)
                        .map(|f| self.caps.get_ref(f.slot))
                    {
                        Some(&Cap::Object {
                            kind: ObjectKind::Frame,
                            base,
                            ..
                        }) => Some(base),
                        Some(_) => return Err(Error::InvalidCapability),
                        None => return Err(Error::FailedLookup),
                    }
                } else {
                    None
                };
                let tcb = &mut self.o.tcbs[target];
                if let Some((ep, badge)) = fault {
                    tcb.fault_ep = ep;
                    tcb.fault_badge = badge;
                }
                if let Some(c) = cspace {
                    tcb.cspace = c;
                }
                if let Some(v) = vspace {
                    tcb.vspace = v;
                }
                if let Some(pa) = ipc {
                    tcb.ipc_buffer_pa = pa;
                    tcb.ipc_buffer_va = ipc_va;
                }
            }
            label::TCB_SET_PRIORITY | label::TCB_SET_MC_PRIORITY => {
                let auth = self.resolve_kind(t, arg(0)?, ObjectKind::Tcb)?;
                let value = u8::try_from(arg(1)?).map_err(|_| Error::RangeError)?;
                if value > self.o.tcbs[auth].mcp {
                    return Err(Error::RangeError);
                }
                if op == label::TCB_SET_PRIORITY {
                    self.o.tcbs[target].priority = value;
                    let _ = self.o.sched.set_priority(target, value);
                } else {
                    self.o.tcbs[target].mcp = value;
                }
            }
            label::TCB_SET_SCHED_PARAMS => {
                let auth = self.resolve_kind(t, arg(0)?, ObjectKind::Tcb)?;
                let mcp = u8::try_from(arg(1)?).map_err(|_| Error::RangeError)?;
                let prio = u8::try_from(arg(2)?).map_err(|_| Error::RangeError)?;
                let limit = self.o.tcbs[auth].mcp;
                if mcp > limit || prio > limit {
                    return Err(Error::RangeError);
                }
                let sc = match arg(3)? {
                    0 => None,
                    c => Some(self.resolve_kind(t, c, ObjectKind::SchedContext)?),
                };
                let fault = self.resolve_fault_endpoint(t, arg(4)?)?;
                if let Some(sc) = sc {
                    if self.o.sched.sched_context(sc).is_none() {
                        return Err(Error::InvalidCapability); // not configured yet
                    }
                    if self.o.sched.has_own_sc(target) {
                        self.o.sched.unbind(target);
                    }
                    self.o
                        .sched
                        .bind(target, sc)
                        .map_err(|_| Error::IllegalOperation)?;
                } else {
                    self.o.sched.unbind(target);
                }
                let tcb = &mut self.o.tcbs[target];
                tcb.mcp = mcp;
                tcb.priority = prio;
                if let Some((ep, badge)) = fault {
                    tcb.fault_ep = ep;
                    tcb.fault_badge = badge;
                }
                let _ = self.o.sched.set_priority(target, prio);
            }
            label::TCB_READ_REGISTERS => {
                let c = self.o.tcbs[target].ctx;
                return Ok(Answer {
                    len: 4,
                    mrs: [c.pc, c.sp, c.x[0], c.x[1]],
                });
            }
            label::TCB_WRITE_REGISTERS => {
                let resume = arg(0)? != 0;
                let (pc, sp) = (arg(1)?, arg(2)?);
                let regs = [
                    arg(3).unwrap_or(0),
                    arg(4).unwrap_or(0),
                    arg(5).unwrap_or(0),
                    arg(6).unwrap_or(0),
                ];
                if target == t {
                    return Err(Error::IllegalOperation); // its registers are being used
                }
                let ctx = &mut self.o.tcbs[target].ctx;
                *ctx = Default::default();
                ctx.pc = pc;
                ctx.sp = sp;
                ctx.x[..4].copy_from_slice(&regs);
                if resume {
                    self.resume_checked(target)?;
                }
            }
            label::TCB_RESUME => self.resume_checked(target)?,
            label::TCB_SUSPEND => self.o.suspend(target),
            label::TCB_BIND_NOTIFICATION => {
                let (n, _) = self.resolve_notification(t, arg(0)?)?;
                if self.o.tcbs[target].bound != NONE || self.o.ntfn_bound[n] != NONE {
                    return Err(Error::IllegalOperation);
                }
                self.o.tcbs[target].bound = n as u16;
                self.o.ntfn_bound[n] = target as u16;
            }
            label::TCB_UNBIND_NOTIFICATION => {
                let n = core::mem::replace(&mut self.o.tcbs[target].bound, NONE);
                if n == NONE {
                    return Err(Error::IllegalOperation);
                }
                self.o.ntfn_bound[n as usize] = NONE;
            }
            _ => return Err(Error::IllegalOperation),
        }
        let _ = m;
        Ok(Answer::NONE)
    }

    /// Binds scheduling context `sc` to `thread`, or takes it away from it.
    fn sched_context_op(&mut self, sc: usize, thread: usize, op: u64) -> Result<(), Error> {
        match op {
            label::SCHED_CONTEXT_BIND => {
                if self.o.sched.sched_context(sc).is_none() {
                    return Err(Error::InvalidCapability); // not configured yet
                }
                if self.o.sched.has_own_sc(thread) {
                    return Err(Error::IllegalOperation);
                }
                self.o
                    .sched
                    .bind(thread, sc)
                    .map_err(|_| Error::IllegalOperation)
            }
            label::SCHED_CONTEXT_UNBIND_OBJECT => {
                if self.o.sched.own_sc(thread) != Some(sc) {
                    return Err(Error::IllegalOperation);
                }
                self.o.sched.unbind(thread);
                Ok(())
            }
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Restarts a thread that has an address space and a capability space to run in, as
    /// seL4's `restart`: a thread that is stopped or blocked (on a fault's reply too) gives up
    /// whatever it waited for and runs; a running one is left alone.
    fn resume_checked(&mut self, target: usize) -> Result<(), Error> {
        let tcb = &self.o.tcbs[target];
        if tcb.vspace == NONE || tcb.cspace.is_null() {
            return Err(Error::IllegalOperation);
        }
        if self.o.threads.state(target) != crate::ipc::ThreadState::Running {
            self.o.suspend(target);
            self.o.resume(target);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn page_table_op(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        slot: SlotId,
        base: u64,
        data: u64,
        op: u64,
        arg: &dyn Fn(usize) -> Result<u64, Error>,
    ) -> Result<Answer, Error> {
        match op {
            label::PAGE_TABLE_MAP => {
                if data != 0 {
                    return Err(Error::IllegalOperation); // already mapped
                }
                let v = self.resolve_kind(t, arg(0)?, ObjectKind::VSpace)?;
                let va = arg(1)?;
                let level = vspace::map_table(m, self.o.vspaces[v], base, va)?;
                let record = vspace::table_record(v, vspace::table_base(va, level), level);
                self.caps.set_data(slot, record)?;
            }
            label::PAGE_TABLE_UNMAP => {
                if let Some((v, va, level)) = vspace::decode_table(data)
                    && self.o.vspace_pool.live[v]
                {
                    vspace::unmap_table(m, self.o.vspaces[v], base, va, level);
                    m.flush_tlb(v as u16 + 1, None);
                }
                self.caps.set_data(slot, 0)?;
            }
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::NONE)
    }

    #[allow(clippy::too_many_arguments)]
    fn frame_op(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        slot: SlotId,
        base: u64,
        size_bits: u8,
        have: Rights,
        data: u64,
        op: u64,
        arg: &dyn Fn(usize) -> Result<u64, Error>,
    ) -> Result<Answer, Error> {
        match op {
            label::FRAME_MAP => {
                let v = self.resolve_kind(t, arg(0)?, ObjectKind::VSpace)?;
                let va = arg(1)?;
                let want = Rights::from_bits(arg(2)? as u8).intersect(have);
                let vm = arg(3)?;
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
                let root = self.o.vspaces[v];
                vspace::map_frame(m, root, base, size_bits, va, descriptor_bits(a), remap)?;
                if remap {
                    m.flush_tlb(v as u16 + 1, Some(va));
                }
                self.caps.set_data(slot, vspace::frame_record(v, va))?;
            }
            label::FRAME_UNMAP => {
                self.o.unmap_frame(m, base, size_bits, data);
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
}

impl Objects {
    fn unmap_frame(&mut self, m: &mut impl Machine, base: u64, size_bits: u8, data: u64) {
        if let Some((v, va)) = vspace::decode_frame(data)
            && v < self.vspaces.len()
            && self.vspace_pool.live[v]
        {
            vspace::unmap_frame(m, self.vspaces[v], base, size_bits, va);
            m.flush_tlb(v as u16 + 1, Some(va));
        }
    }

    /// Releases every thread queued on a destroyed endpoint or notification: its operation
    /// fails with an error tag.
    fn release(&mut self, waiters: &[u16; super::MAX_THREADS], n: usize) {
        for &w in &waiters[..n] {
            let w = w as usize;
            let _ = self.threads.resume(w);
            self.tcbs[w].ctx.x[0] = 0;
            self.tcbs[w].ctx.x[1] = MessageInfo::new(Error::InvalidCapability as u64, 0).0;
            self.sync(w);
        }
    }

    /// A capability was deleted (`last`: it was the last one to its object).
    pub(super) fn gone(&mut self, m: &mut impl Machine, cap: Cap, last: bool) {
        let Cap::Object {
            kind,
            base,
            size_bits,
            data,
            ..
        } = cap
        else {
            if let (true, Cap::CNode { base, .. }) = (last, cap) {
                for t in self.tcbs.iter_mut().filter(|t| t.live) {
                    if matches!(t.cspace, Cap::CNode { base: b, .. } if b == base) {
                        t.cspace = Cap::Null;
                    }
                }
            }
            return;
        };
        // Each mapping capability maps on its own: it goes with the capability.
        match kind {
            ObjectKind::Frame => self.unmap_frame(m, base, size_bits, data),
            ObjectKind::PageTable => {
                if let Some((v, va, level)) = vspace::decode_table(data)
                    && self.vspace_pool.live[v]
                {
                    vspace::unmap_table(m, self.vspaces[v], base, va, level);
                    m.flush_tlb(v as u16 + 1, None);
                }
            }
            _ => {}
        }
        if !last {
            return;
        }
        let i = data as usize;
        let mut waiters = [0u16; super::MAX_THREADS];
        match kind {
            ObjectKind::Tcb => {
                if self.current == i as u16 {
                    self.current = NONE;
                }
                self.suspend(i);
                let n = self.tcbs[i].bound;
                if n != NONE {
                    self.ntfn_bound[n as usize] = NONE;
                }
                for r in self.replies.iter_mut() {
                    if r.server == i as u16 {
                        r.server = NONE;
                    }
                }
                self.sched.remove_thread(i);
                self.tcbs[i] = Tcb::EMPTY;
            }
            ObjectKind::Endpoint => {
                let mut n = 0;
                for w in self.threads.queued(&self.eps[i].queue) {
                    waiters[n] = w as u16;
                    n += 1;
                }
                self.threads.destroy_endpoint(&mut self.eps[i]);
                for t in self.tcbs.iter_mut().filter(|t| t.fault_ep == i as u16) {
                    t.fault_ep = NONE;
                }
                self.ep_pool.free(i);
                self.release(&waiters, n);
            }
            ObjectKind::Notification => {
                let mut n = 0;
                for w in self.threads.queued(&self.ntfns[i].waiters) {
                    waiters[n] = w as u16;
                    n += 1;
                }
                self.threads.destroy_notification(&mut self.ntfns[i]);
                let b = core::mem::replace(&mut self.ntfn_bound[i], NONE);
                if b != NONE {
                    self.tcbs[b as usize].bound = NONE;
                }
                for irq in self.irqs.iter_mut().filter(|q| q.ntfn == i as u16) {
                    irq.ntfn = NONE;
                }
                // Its watches go; the others close up.
                let mut kept = 0;
                for j in 0..self.watch_count.min(self.watches.len()) {
                    if self.watches[j].ntfn != i as u16 {
                        self.watches[kept] = self.watches[j];
                        kept += 1;
                    }
                }
                self.watches[kept..].fill(Watch::FREE);
                self.watch_count = kept;
                self.ntfn_pool.free(i);
                self.release(&waiters, n);
            }
            ObjectKind::Reply => {
                let caller = self.replies[i].caller;
                let server = self.replies[i].server;
                self.replies[i] = super::Reply {
                    live: false,
                    caller: NONE,
                    server: NONE,
                };
                for t in self.tcbs.iter_mut().filter(|t| t.recv_reply == i as u16) {
                    t.recv_reply = NONE;
                }
                if caller != NONE {
                    let c = caller as usize;
                    self.tcbs[c].caller_reply = NONE;
                    if server != NONE {
                        let s = server as usize;
                        let _ = self.threads.reply(s, c);
                        if self.sched.runs_on_loan(s) {
                            let _ = self.sched.give_back(s, c);
                        }
                    }
                    waiters[0] = caller;
                    self.tcbs[c].fault_label = 0;
                    self.threads.cancel(c, &mut self.eps, &mut self.ntfns);
                    self.release(&waiters, 1);
                }
            }
            ObjectKind::SchedContext => {
                self.sched.remove_sc(i);
                self.sc_pool.free(i);
            }
            ObjectKind::VSpace => {
                for t in self.tcbs.iter_mut().filter(|t| t.vspace == i as u16) {
                    t.vspace = NONE;
                }
                self.vspace_pool.free(i);
                m.flush_tlb(i as u16 + 1, None);
            }
            ObjectKind::Doorbell => self.doorbell_pool.free(i),
            ObjectKind::IrqHandler => {
                if let Some(q) = self.irqs.get_mut(i) {
                    q.handler = false;
                    q.ntfn = NONE;
                    m.set_irq_enabled(i as u32, false);
                }
            }
            _ => {}
        }
    }
}
