//! The replica's objects other than capabilities (threads, endpoints, notifications,
//! replies, scheduling contexts, address spaces, doorbells and interrupts), how messages
//! and signals move between them, and what happens when one is destroyed.
//!
//! A passive thread (one without a scheduling context of its own) runs on a context it is
//! given: its caller's for a call (lent with the call, given back with the reply, recorded
//! in the reply object), or the context bound to its notification while it handles a
//! signal (donated when the signal wakes it, taken back when it blocks to receive again),
//! as in seL4's MCS kernel.

use atoll_abi::error::Error;
use atoll_abi::microkit::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, ipc_buffer};

use super::{Context, Machine, restart_point, vspace};
use crate::cap::Cap;
use crate::id::{
    DoorbellId, EndpointId, IrqId, MAX_DOORBELLS, MAX_ENDPOINTS, MAX_IRQS, MAX_NOTIFICATIONS,
    MAX_REPLIES, MAX_SCHED_CONTEXTS, MAX_THREADS, MAX_VSPACES, NotificationId, ReplyId,
    SchedContextId, SlotId, Table, TableIndex, TcbSlot, ThreadId, VSpaceId,
};
use crate::ipc::{
    Endpoint, EndpointQueue, Endpoints, Notification, Notifications, Queue, RecvOutcome,
    SendOutcome, ThreadState, Threads, WaitOutcome,
};
use crate::sched::Scheduler;

/// Cross-replica channel words one replica can watch.
pub const MAX_WATCHES: usize = 128;

/// A thread control block.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tcb {
    /// Saved registers.
    pub ctx: Context,
    pub live: bool,
    /// The physical address of its IPC buffer: the frame in its `IpcBuffer` slot, kept
    /// here for the IPC paths (cleared when that slot's capability goes).
    pub ipc_buffer: Option<u64>,
    pub bound: Option<NotificationId>,
    pub mcp: u8,
    /// Reply object named by its current receive, bound to a caller when a call arrives.
    pub recv_reply: Option<ReplyId>,
    /// Reply object its own pending call will be answered through.
    pub caller_reply: Option<ReplyId>,
    /// A fault message it is sending (label, registers), label 0 when none.
    pub fault_label: u64,
    pub fault_mrs: [u64; 4],
}

impl Tcb {
    pub const EMPTY: Tcb = Tcb {
        ctx: Context {
            x: [0; 31],
            sp: 0,
            pc: 0,
            spsr: 0,
            tpidr: 0,
        },
        live: false,
        ipc_buffer: None,
        bound: None,
        mcp: 0,
        recv_reply: None,
        caller_reply: None,
        fault_label: 0,
        fault_mrs: [0; 4],
    };
}

/// A reply object: who waits for a reply through it, from whom, and whether the caller
/// lent the server its scheduling context for the call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reply {
    pub live: bool,
    pub caller: Option<ThreadId>,
    pub server: Option<ThreadId>,
    pub lent: bool,
}

impl Reply {
    const FREE: Reply = Reply {
        live: false,
        caller: None,
        server: None,
        lent: false,
    };
}

/// An interrupt: whether a handler capability exists, and what it signals.
#[derive(Clone, Copy, Debug)]
pub(super) struct Irq {
    pub handler: bool,
    pub ntfn: Option<NotificationId>,
    pub badge: u64,
}

/// Where a doorbell rings: a pending word watched on another replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bell {
    pub replica: u32,
    pub word: u32,
}

/// A doorbell table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Doorbell {
    Free,
    Unconfigured,
    Rings(Bell),
}

/// A cross-replica channel word of this replica and the notification it signals.
#[derive(Clone, Copy, Debug)]
pub(super) struct Watch {
    pub word: u32,
    pub ntfn: NotificationId,
}

/// Everything but the capability table, so that a deletion's callback can reach it.
pub(super) struct Objects {
    pub threads: Threads,
    pub sched: Scheduler,
    pub tcbs: Table<ThreadId, Tcb, MAX_THREADS>,
    pub eps: Endpoints,
    pub ep_live: Table<EndpointId, bool, MAX_ENDPOINTS>,
    pub ntfns: Notifications,
    pub ntfn_live: Table<NotificationId, bool, MAX_NOTIFICATIONS>,
    /// The thread each notification is bound to.
    pub ntfn_bound: Table<NotificationId, Option<ThreadId>, MAX_NOTIFICATIONS>,
    /// The scheduling context bound to each notification (and the other way round).
    pub ntfn_sc: Table<NotificationId, Option<SchedContextId>, MAX_NOTIFICATIONS>,
    pub sc_ntfn: Table<SchedContextId, Option<NotificationId>, MAX_SCHED_CONTEXTS>,
    pub sc_live: Table<SchedContextId, bool, MAX_SCHED_CONTEXTS>,
    pub replies: Table<ReplyId, Reply, MAX_REPLIES>,
    /// Each live address space's root table.
    pub vspaces: Table<VSpaceId, Option<u64>, MAX_VSPACES>,
    pub doorbells: Table<DoorbellId, Doorbell, MAX_DOORBELLS>,
    /// Watched words in `watches[..watch_count]`, kept together so the doorbell handler
    /// looks at those only.
    watches: [Option<Watch>; MAX_WATCHES],
    watch_count: usize,
    pub irqs: Table<IrqId, Irq, MAX_IRQS>,
    pub current: Option<ThreadId>,
    /// An object was invoked, or a fault raised, since the machine last loaded the current
    /// thread (`Kernel::note_loaded`): something a thread runs with (its address space,
    /// scheduling parameters, budget) may have changed (see `Kernel::caller_goes_on`).
    pub changed: bool,
}

/// Takes the first free entry of a table of live flags.
pub(super) fn alloc<I: TableIndex, const N: usize>(live: &mut Table<I, bool, N>) -> Option<I> {
    let i = live.find(|l| !*l)?;
    live[i] = true;
    Some(i)
}

/// How many entries of a table of live flags are free.
pub(super) fn free_count<I: TableIndex, const N: usize>(live: &Table<I, bool, N>) -> usize {
    live.values().filter(|l| !**l).count()
}

/// Writes the first `count` of `mrs` into the register message registers (`x2`–`x5`) and
/// zeroes the rest, so a receiver never sees registers the sender did not send. Written out
/// element by element: a variable-length copy would call `memcpy` on the IPC path.
fn set_registers(ctx: &mut Context, mrs: [u64; syscall::REGISTER_MESSAGE_REGISTERS], count: usize) {
    let [a, b, c, d] = mrs;
    ctx.x[2] = if count > 0 { a } else { 0 };
    ctx.x[3] = if count > 1 { b } else { 0 };
    ctx.x[4] = if count > 2 { c } else { 0 };
    ctx.x[5] = if count > 3 { d } else { 0 };
}

impl Objects {
    pub const fn new() -> Self {
        Self {
            threads: Threads::new(),
            sched: Scheduler::new(),
            tcbs: Table::filled(Tcb::EMPTY),
            eps: Table::filled(Endpoint {
                kind: EndpointQueue::Idle,
                queue: Queue::EMPTY,
            }),
            ep_live: Table::filled(false),
            ntfns: Table::filled(Notification {
                word: 0,
                active: false,
                waiters: Queue::EMPTY,
            }),
            ntfn_live: Table::filled(false),
            ntfn_bound: Table::filled(None),
            ntfn_sc: Table::filled(None),
            sc_ntfn: Table::filled(None),
            sc_live: Table::filled(false),
            replies: Table::filled(Reply::FREE),
            vspaces: Table::filled(None),
            doorbells: Table::filled(Doorbell::Free),
            watches: [None; MAX_WATCHES],
            watch_count: 0,
            irqs: Table::filled(Irq {
                handler: false,
                ntfn: None,
                badge: 0,
            }),
            current: None,
            changed: true,
        }
    }

    /// Makes the scheduler agree with a thread's IPC state.
    pub fn sync(&mut self, t: ThreadId) {
        let _ = if self.threads.state(t) == ThreadState::Running {
            self.sched.wake(t)
        } else {
            self.sched.block(t)
        };
    }

    pub fn schedule(&mut self) {
        self.current = self.sched.choose();
    }

    pub fn resume(&mut self, t: ThreadId) {
        self.threads.resume(t);
        self.sync(t);
    }

    /// Stops a thread: out of any queue, its pending call's reply binding dropped (and the
    /// scheduling context it lent for the call back with it, as seL4's `reply_remove`). A
    /// thread blocked in a system call (not in sending a fault) is set to make the call
    /// again when it is resumed, as seL4's restart does.
    pub fn suspend(&mut self, t: ThreadId) {
        let tcb = &mut self.tcbs[t];
        if self.threads.state(t).is_blocked() && tcb.fault_label == 0 {
            restart_point(&mut tcb.ctx);
        }
        self.threads.cancel(t, &mut self.eps, &mut self.ntfns);
        if let Some(r) = self.tcbs[t].caller_reply {
            let Reply { server, lent, .. } = self.replies[r];
            self.unbind_caller(r, t);
            if let (Some(server), true) = (server, lent) {
                let _ = self.sched.give_back(server, t);
            }
        }
        self.tcbs[t].fault_label = 0;
        self.sync(t);
    }

    /// Reply object `r` no longer answers `caller`.
    #[inline(always)]
    fn unbind_caller(&mut self, r: ReplyId, caller: ThreadId) {
        let reply = &mut self.replies[r];
        reply.caller = None;
        reply.lent = false;
        self.tcbs[caller].caller_reply = None;
    }

    /// Message register `i` of thread `t`.
    pub fn mr(&mut self, m: &mut impl Machine, t: ThreadId, i: usize) -> u64 {
        let tcb = &self.tcbs[t];
        if let Some(&v) = tcb
            .ctx
            .x
            .get(2..2 + syscall::REGISTER_MESSAGE_REGISTERS)
            .and_then(|r| r.get(i))
        {
            return v;
        }
        let Some(pa) = tcb.ipc_buffer else {
            return 0;
        };
        m.page(pa)
            .and_then(|p| p.get(ipc_buffer::MR0.saturating_add(i)).copied())
            .unwrap_or(0)
    }

    pub fn set_mr(&mut self, m: &mut impl Machine, t: ThreadId, i: usize, value: u64) {
        let tcb = &mut self.tcbs[t];
        if let Some(r) = tcb
            .ctx
            .x
            .get_mut(2..2 + syscall::REGISTER_MESSAGE_REGISTERS)
            .and_then(|r| r.get_mut(i))
        {
            *r = value;
            return;
        }
        if let Some(pa) = tcb.ipc_buffer
            && let Some(word) = m
                .page(pa)
                .and_then(|p| p.get_mut(ipc_buffer::MR0.saturating_add(i)))
        {
            *word = value;
        }
    }

    /// Copies a message from `from` to `to`: the badge in `x0`, the tag in `x1`, and the
    /// message registers (past the first four only when both have an IPC buffer).
    pub fn transfer(
        &mut self,
        m: &mut impl Machine,
        from: ThreadId,
        to: ThreadId,
        badge: u64,
        info: MessageInfo,
    ) {
        let f = &self.tcbs[from];
        let (fault_label, from_buffer) = (f.fault_label, f.ipc_buffer);
        let (label, len) = if fault_label != 0 {
            let mrs = f.fault_mrs;
            set_registers(&mut self.tcbs[to].ctx, mrs, 4);
            (fault_label, 4)
        } else {
            let regs = info.length().min(syscall::REGISTER_MESSAGE_REGISTERS);
            let sent = [f.ctx.x[2], f.ctx.x[3], f.ctx.x[4], f.ctx.x[5]];
            set_registers(&mut self.tcbs[to].ctx, sent, regs);
            // Past the registers only when both have an IPC buffer.
            let len = if from_buffer.is_none() || self.tcbs[to].ipc_buffer.is_none() {
                regs
            } else {
                info.length()
            };
            for i in regs..len {
                let v = self.mr(m, from, i);
                self.set_mr(m, to, i, v);
            }
            (info.label(), len)
        };
        let ctx = &mut self.tcbs[to].ctx;
        ctx.x[0] = badge;
        ctx.x[1] = MessageInfo::new(label, len as u64).0;
    }

    /// The reply object `server` named in its receive, if it is free for a caller.
    pub fn free_reply(&self, server: ThreadId) -> Option<ReplyId> {
        let r = self.tcbs[server].recv_reply?;
        let reply = &self.replies[r];
        (reply.live && reply.caller.is_none()).then_some(r)
    }

    /// A call from `caller` reached `server`: bind the server's reply object to the caller
    /// and lend a server without a scheduling context the caller's. Without a reply object
    /// the call fails at once.
    pub fn bind_reply(&mut self, caller: ThreadId, server: ThreadId) {
        let Some(r) = self.free_reply(server) else {
            let _ = self.threads.reply(server, caller);
            let ctx = &mut self.tcbs[caller].ctx;
            ctx.x[0] = 0;
            ctx.x[1] = MessageInfo::new(Error::IllegalOperation as u64, 0).0;
            self.tcbs[caller].fault_label = 0;
            self.sync(caller);
            return;
        };
        // A server with a context of its own is lent nothing (the scheduler refuses).
        let lent = self.sched.lend(caller, server).is_ok();
        self.replies[r] = Reply {
            live: true,
            caller: Some(caller),
            server: Some(server),
            lent,
        };
        self.tcbs[caller].caller_reply = Some(r);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        ep: EndpointId,
        badge: u64,
        info: MessageInfo,
        blocking: bool,
        call: bool,
    ) {
        let Ok(outcome) = self
            .threads
            .send(&mut self.eps[ep], ep, t, badge, blocking, call)
        else {
            return;
        };
        match outcome {
            SendOutcome::Delivered { to } => {
                self.transfer(m, t, to, badge, info);
                if call {
                    self.bind_reply(t, to);
                }
                self.sync(to);
                self.sync(t);
            }
            SendOutcome::Blocked => self.sync(t),
            SendOutcome::Dropped => {}
        }
    }

    pub fn recv(&mut self, m: &mut impl Machine, t: ThreadId, ep: EndpointId, blocking: bool) {
        let bound = self.tcbs[t].bound;
        if let Some(n) = bound {
            // A bound notification with bits pending is delivered first.
            if self.ntfns[n].active {
                self.ntfns[n].active = false;
                let bits = core::mem::take(&mut self.ntfns[n].word);
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = bits;
                ctx.x[1] = 0;
                self.donate_from(n, t);
                return;
            }
            // Receiving again: the notification's context goes back to it.
            if blocking {
                self.return_to(n, t);
            }
        }
        let Ok(outcome) = self.threads.recv(&mut self.eps[ep], ep, t, blocking) else {
            return;
        };
        match outcome {
            RecvOutcome::Received { from, badge, call } => {
                let info = MessageInfo(self.tcbs[from].ctx.x[1]);
                self.transfer(m, from, t, badge, info);
                if call {
                    self.bind_reply(from, t);
                }
                self.sync(from);
            }
            RecvOutcome::Blocked => self.sync(t),
            RecvOutcome::Nothing => {
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = 0;
                ctx.x[1] = 0;
            }
        }
    }

    pub fn reply(&mut self, m: &mut impl Machine, t: ThreadId, r: ReplyId, info: MessageInfo) {
        let Reply {
            caller: Some(caller),
            server,
            lent,
            ..
        } = self.replies[r]
        else {
            return;
        };
        match server {
            Some(server) => self.answer(m, t, r, (caller, server, lent), info),
            // Its server is gone: the binding goes, the caller stays as it is.
            None => self.unbind_caller(r, caller),
        }
    }

    /// `t` replies through reply object `r`, bound to `caller` waiting for `server` (which
    /// ran on the caller's context if `lent`): the binding goes, the caller gets the
    /// message (or, after a fault, resumes or stays stopped), and its context comes back.
    /// The fast ReplyRecv makes its reply through this too.
    #[inline(always)]
    pub fn answer(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        r: ReplyId,
        (caller, server, lent): (ThreadId, ThreadId, bool),
        info: MessageInfo,
    ) {
        self.unbind_caller(r, caller);
        if self.threads.reply(server, caller).is_err() {
            return;
        }
        if self.tcbs[caller].fault_label != 0 {
            // A reply to a fault: label 0 resumes the thread, anything else leaves it stopped.
            self.tcbs[caller].fault_label = 0;
            if info.label() != 0 {
                self.threads.cancel(caller, &mut self.eps, &mut self.ntfns);
            }
        } else {
            self.transfer(m, t, caller, 0, info);
        }
        if lent {
            let _ = self.sched.give_back(server, caller);
        }
        self.sync(caller);
    }

    pub fn wait(&mut self, t: ThreadId, n: NotificationId, blocking: bool) {
        let signalled = self.ntfns[n].active;
        match self.threads.wait(&mut self.ntfns[n], n, t, blocking) {
            Ok(WaitOutcome::Got(bits)) => {
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = bits;
                ctx.x[1] = 0;
                if signalled {
                    self.donate_from(n, t);
                }
            }
            Ok(WaitOutcome::Blocked) => {
                self.return_to(n, t);
                self.sync(t);
            }
            Err(_) => {}
        }
    }

    /// Signals notification `n` with `badge`: a waiter gets it, or the thread bound to it
    /// if that thread waits on an endpoint, or the bits wait in the word. A woken thread
    /// without a scheduling context runs on the notification's, if it has a free one.
    pub fn signal(&mut self, n: NotificationId, badge: u64) {
        if !self.ntfn_live[n] {
            return;
        }
        if let Some((woken, bits)) = self.threads.signal(&mut self.ntfns[n], badge) {
            let ctx = &mut self.tcbs[woken].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.donate_from(n, woken);
            self.sync(woken);
            return;
        }
        if let Some(b) = self.ntfn_bound[n]
            && matches!(self.threads.state(b), ThreadState::Receiving(_))
        {
            self.ntfns[n].active = false;
            let bits = core::mem::take(&mut self.ntfns[n].word);
            self.threads.cancel(b, &mut self.eps, &mut self.ntfns);
            self.threads.resume(b);
            let ctx = &mut self.tcbs[b].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.donate_from(n, b);
            self.sync(b);
        }
    }

    /// seL4's `maybeDonateSchedContext`: `t`, if it has no scheduling context, gets
    /// notification `n`'s while nobody else runs on it (the scheduler refuses otherwise).
    #[inline]
    fn donate_from(&mut self, n: NotificationId, t: ThreadId) {
        if let Some(sc) = self.ntfn_sc[n] {
            let _ = self.sched.donate(sc, t);
        }
    }

    /// seL4's `maybeReturnSchedContext`: `t` blocks to receive, so notification `n`'s
    /// scheduling context, if `t` runs on it, goes back to the notification.
    #[inline]
    pub fn return_to(&mut self, n: NotificationId, t: ThreadId) {
        if let Some(sc) = self.ntfn_sc[n] {
            self.sched.reclaim(sc, t);
        }
    }

    /// Rings doorbell `data` (a capability's kernel data) with `bits`: whether they were
    /// delivered to the other replica.
    pub fn ring(&mut self, m: &mut impl Machine, data: u64, bits: u64) -> bool {
        match DoorbellId::from_data(data).map(|d| self.doorbells[d]) {
            Some(Doorbell::Rings(bell)) => m.ring_doorbell(bell.replica, bell.word, bits),
            _ => false,
        }
    }

    /// How many words are watched.
    pub fn watch_count(&self) -> usize {
        self.watch_count
    }

    /// Watch `i` of `0..watch_count()`.
    pub fn watch(&self, i: usize) -> Option<Watch> {
        self.watches.get(i).copied().flatten()
    }

    /// Whether word `word` can be watched: it is not yet, and there is room.
    pub fn check_watch(&self, word: u32) -> Result<(), Error> {
        let count = self.watch_count;
        let watched = self.watches.get(..count).unwrap_or_default();
        if watched.iter().flatten().any(|w| w.word == word) {
            return Err(Error::IllegalOperation);
        }
        if count >= MAX_WATCHES {
            return Err(Error::NotEnoughMemory);
        }
        Ok(())
    }

    /// Has cross-replica channel word `word` signal notification `n`.
    pub fn add_watch(&mut self, word: u32, n: NotificationId) -> Result<(), Error> {
        self.check_watch(word)?;
        let count = self.watch_count;
        let free = self.watches.get_mut(count).ok_or(Error::NotEnoughMemory)?;
        *free = Some(Watch { word, ntfn: n });
        self.watch_count = count.saturating_add(1);
        Ok(())
    }

    /// Notification `n` is destroyed: its watches go, the others close up.
    fn remove_watches(&mut self, n: NotificationId) {
        let mut kept = 0usize;
        for j in 0..self.watch_count {
            let w = self.watch(j);
            if let Some(w) = w.filter(|w| w.ntfn != n)
                && let Some(slot) = self.watches.get_mut(kept)
            {
                *slot = Some(w);
                kept = kept.saturating_add(1);
            }
        }
        for slot in self.watches.iter_mut().skip(kept) {
            *slot = None;
        }
        self.watch_count = kept;
    }

    /// Removes the mapping a frame capability records, if its entry still maps the frame.
    pub fn unmap_frame(&mut self, m: &mut impl Machine, base: u64, size_bits: u8, data: u64) {
        if let Some((v, va)) = vspace::decode_frame(data)
            && let Some(root) = self.vspaces[v]
        {
            vspace::unmap_frame(m, root, base, size_bits, va);
            m.flush_tlb(v.asid(), Some(va));
        }
    }

    /// Unlinks the page table at `base` from where its capabilities record it is mapped (if
    /// that address space lives and still links it there), and empties it: an unlinked
    /// table holds no translation, so linking it again can map nothing stale.
    pub fn unlink_table(&mut self, m: &mut impl Machine, base: u64, data: u64) {
        if let Some((v, va, level)) = vspace::decode_table(data)
            && let Some(root) = self.vspaces[v]
        {
            vspace::unmap_table(m, root, base, va, level);
            m.flush_tlb(v.asid(), None);
        }
        if let Some(table) = m.page(base) {
            table.fill(0);
        }
    }

    /// Releases every thread queued on a destroyed endpoint or notification: its operation
    /// fails with an error tag.
    fn release(&mut self, waiters: impl IntoIterator<Item = ThreadId>) {
        for w in waiters {
            self.threads.resume(w);
            let ctx = &mut self.tcbs[w].ctx;
            ctx.x[0] = 0;
            ctx.x[1] = MessageInfo::new(Error::InvalidCapability as u64, 0).0;
            self.sync(w);
        }
    }

    /// The threads queued on `queue`, taken before the queue is emptied.
    fn waiters(&self, queue: &Queue) -> [Option<ThreadId>; MAX_THREADS] {
        let mut out = [None; MAX_THREADS];
        for (slot, w) in out.iter_mut().zip(self.threads.queued(queue)) {
            *slot = Some(w);
        }
        out
    }

    /// A capability was deleted from `slot` (`last`: it was the last one to its object).
    pub fn gone(&mut self, m: &mut impl Machine, slot: SlotId, cap: Cap, last: bool) {
        if let Some((thread, TcbSlot::IpcBuffer)) = slot.tcb_slot() {
            self.tcbs[thread].ipc_buffer = None;
        }
        let Cap::Object {
            kind,
            base,
            size_bits,
            data,
            ..
        } = cap
        else {
            return; // a CNode's contents go with it (the table sees to that)
        };
        match kind {
            // Each frame capability maps the frame on its own: the mapping goes with it.
            ObjectKind::Frame => self.unmap_frame(m, base, size_bits, data),
            // A table's capabilities share its one mapping: it goes with the last.
            ObjectKind::PageTable if last => self.unlink_table(m, base, data),
            _ => {}
        }
        if last {
            self.destroy(m, kind, data);
        }
    }

    /// The last capability to an object of `kind` with kernel data `data` went.
    fn destroy(&mut self, m: &mut impl Machine, kind: ObjectKind, data: u64) {
        match kind {
            ObjectKind::Tcb => {
                if let Some(t) = ThreadId::from_data(data) {
                    self.destroy_thread(t);
                }
            }
            ObjectKind::Endpoint => {
                if let Some(e) = EndpointId::from_data(data) {
                    let waiters = self.waiters(&self.eps[e].queue);
                    self.threads.destroy_endpoint(&mut self.eps[e]);
                    self.ep_live[e] = false;
                    self.release(waiters.into_iter().flatten());
                }
            }
            ObjectKind::Notification => {
                if let Some(n) = NotificationId::from_data(data) {
                    self.destroy_notification(n);
                }
            }
            ObjectKind::Reply => {
                if let Some(r) = ReplyId::from_data(data) {
                    self.destroy_reply(r);
                }
            }
            ObjectKind::SchedContext => {
                if let Some(sc) = SchedContextId::from_data(data) {
                    self.sched.remove_sc(sc);
                    if let Some(n) = self.sc_ntfn[sc].take() {
                        self.ntfn_sc[n] = None;
                    }
                    self.sc_live[sc] = false;
                }
            }
            ObjectKind::VSpace => {
                if let Some(v) = VSpaceId::from_data(data) {
                    self.vspaces[v] = None;
                    m.flush_tlb(v.asid(), None);
                }
            }
            ObjectKind::Doorbell => {
                if let Some(d) = DoorbellId::from_data(data) {
                    self.doorbells[d] = Doorbell::Free;
                }
            }
            ObjectKind::IrqHandler => {
                if let Some(i) = IrqId::from_data(data) {
                    self.irqs[i] = Irq {
                        handler: false,
                        ntfn: None,
                        badge: 0,
                    };
                    if let Ok(irq) = u32::try_from(i.index()) {
                        m.set_irq_enabled(irq, false);
                    }
                }
            }
            _ => {}
        }
    }

    fn destroy_thread(&mut self, t: ThreadId) {
        if self.current == Some(t) {
            self.current = None;
        }
        self.suspend(t);
        if let Some(n) = self.tcbs[t].bound {
            self.ntfn_bound[n] = None;
        }
        for r in self.replies.values_mut() {
            if r.server == Some(t) {
                r.server = None;
            }
        }
        self.sched.remove_thread(t);
        self.tcbs[t] = Tcb::EMPTY;
    }

    fn destroy_notification(&mut self, n: NotificationId) {
        let waiters = self.waiters(&self.ntfns[n].waiters);
        self.threads.destroy_notification(&mut self.ntfns[n]);
        if let Some(b) = self.ntfn_bound[n].take() {
            self.tcbs[b].bound = None;
        }
        if let Some(sc) = self.ntfn_sc[n].take() {
            self.sc_ntfn[sc] = None;
            if let Some(t) = self.sched.serves(sc) {
                self.sched.reclaim(sc, t);
            }
        }
        for irq in self.irqs.values_mut() {
            if irq.ntfn == Some(n) {
                irq.ntfn = None;
            }
        }
        self.remove_watches(n);
        self.ntfn_live[n] = false;
        self.release(waiters.into_iter().flatten());
    }

    fn destroy_reply(&mut self, r: ReplyId) {
        let Reply {
            caller,
            server,
            lent,
            ..
        } = self.replies[r];
        self.replies[r] = Reply::FREE;
        for tcb in self.tcbs.values_mut() {
            if tcb.recv_reply == Some(r) {
                tcb.recv_reply = None;
            }
        }
        let Some(c) = caller else {
            return;
        };
        self.tcbs[c].caller_reply = None;
        if let Some(s) = server {
            let _ = self.threads.reply(s, c);
            if lent {
                let _ = self.sched.give_back(s, c);
            }
        }
        self.tcbs[c].fault_label = 0;
        self.threads.cancel(c, &mut self.eps, &mut self.ntfns);
        self.release([c]);
    }
}
