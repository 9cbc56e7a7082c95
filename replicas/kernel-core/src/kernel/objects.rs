//! The replica's objects other than capabilities, in one structure the capability table's
//! deletion callback can reach: the tables of threads, endpoints, notifications, replies,
//! scheduling contexts, address spaces, doorbells and interrupts, the IPC state machines
//! and the scheduler. What happens when an object is destroyed starts here and goes on in
//! the object's own module.
//!
//! A passive thread (one without a scheduling context of its own) runs on a context it is
//! given: its caller's for a call (lent with the call, given back with the reply, recorded
//! in the reply object), or the context bound to its notification while it handles a
//! signal (donated when the signal wakes it, taken back when it blocks to receive again),
//! as in seL4's MCS kernel.

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::MessageInfo;

use super::doorbell::{Doorbell, Watches};
use super::irq::Irq;
use super::reply::Reply;
use super::tcb::{PdChange, Tcb};
use super::{Machine, restart_point};
use crate::cap::Cap;
use crate::id::{
    CoreId, DoorbellId, EndpointId, IrqId, MAX_CORES, MAX_DOORBELLS, MAX_ENDPOINTS, MAX_IRQS,
    MAX_NOTIFICATIONS, MAX_REPLIES, MAX_SCHED_CONTEXTS, MAX_THREADS, MAX_VSPACES, NotificationId,
    ReplyId, SchedContextId, SlotId, Table, TableIndex, TcbSlot, ThreadId, VSpaceId,
};
use crate::ipc::{
    Endpoint, EndpointQueue, Endpoints, Notification, Notifications, Queue, ThreadState, Threads,
};
use crate::sched::Scheduler;

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
    /// The cross-replica channel words watched, and what each signals.
    pub watches: Watches,
    pub irqs: Table<IrqId, Irq, MAX_IRQS>,
    /// The thread each core should run, as the last scheduling decision for it left it.
    pub current: Table<CoreId, Option<ThreadId>, MAX_CORES>,
    /// The thread each core last returned to and may be running at EL0 (`None`: idle, or
    /// stopped by another core, see `Kernel::stall_others`).
    pub loaded: Table<CoreId, Option<ThreadId>, MAX_CORES>,
    /// The index of the core this kernel entry serves ([`Objects::core`]; an index, not a
    /// `CoreId`, so that a new kernel's state is all zeros).
    serving: u16,
    /// The replica's cores (bit `c` for core `c`).
    pub cores: u32,
    /// Cores asked to choose again (bit `c`), for the machine to interrupt.
    pub kicks: u32,
    /// No object was invoked and no fault raised since the machine last loaded the current
    /// thread (`Kernel::note_loaded`); when false, something a thread runs with (its
    /// address space, scheduling parameters, budget) may have changed (see
    /// `Kernel::caller_goes_on`). False until a thread is first loaded.
    pub unchanged: bool,
    /// The thread that last acknowledged the core's physical timer's interrupt
    /// ([`PD_TIMER_INTID`](atoll_abi::limits::PD_TIMER_INTID)) through its handler
    /// capability: the one thread the kernel programs that timer for (holding the handler
    /// capability is the authority, and acknowledging claims it).
    pub pd_timer_owner: Option<ThreadId>,
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

impl Objects {
    /// The core this kernel entry serves.
    #[inline]
    pub fn core(&self) -> CoreId {
        CoreId::wrapping(usize::from(self.serving))
    }

    /// This kernel entry serves `core`.
    #[inline]
    pub fn set_core(&mut self, core: CoreId) {
        self.serving = core.index() as u16;
    }

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
            watches: Watches::new(),
            irqs: Table::filled(Irq::UNCLAIMED),
            current: Table::filled(None),
            loaded: Table::filled(None),
            serving: 0,
            cores: 0,
            kicks: 0,
            unchanged: false,
            pd_timer_owner: None,
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

    /// Chooses what this core runs, and asks every other core of the replica whose queues
    /// changed, and whose choice is now another thread, to choose again.
    pub fn schedule(&mut self) {
        let me = self.core();
        let next = self.sched.choose(me);
        self.current[me] = next;
        self.sched.switch_to(me, next);
        let others = self.cores & !me.bit();
        let touched = self.sched.take_touched() & others;
        // Another core whose next event moved (a thread now waits there for its budget)
        // must arm its timer again.
        let timers = self.sched.timer_dirty() & others;
        if touched | timers != 0 {
            self.kick_changed(touched, timers);
        }
    }

    /// Kicks each core of `touched` whose choice changed, and each core of `timers`.
    #[cold]
    fn kick_changed(&mut self, touched: u32, timers: u32) {
        self.kicks |= timers;
        for c in CoreId::all() {
            if touched & c.bit() != 0 && self.sched.choose(c) != self.current[c] {
                self.kicks |= c.bit();
            }
        }
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

    /// Releases every thread queued on a destroyed endpoint or notification: its operation
    /// fails with an error tag.
    pub(super) fn release(&mut self, waiters: impl IntoIterator<Item = ThreadId>) {
        for w in waiters {
            self.threads.resume(w);
            let ctx = &mut self.tcbs[w].ctx;
            ctx.x[0] = 0;
            ctx.x[1] = MessageInfo::new(Error::InvalidCapability as u64, 0).0;
            self.sync(w);
        }
    }

    /// The threads queued on `queue`, taken before the queue is emptied.
    pub(super) fn waiters(&self, queue: &Queue) -> [Option<ThreadId>; MAX_THREADS] {
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
                    self.publish(m, t, PdChange::Gone);
                    self.disown_irqs(t);
                    self.destroy_thread(t);
                }
            }
            ObjectKind::Endpoint => {
                if let Some(e) = EndpointId::from_data(data) {
                    self.destroy_endpoint(e);
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
                    self.destroy_sched_context(sc);
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
                if let Some(irq) = IrqId::from_data(data) {
                    self.destroy_irq_handler(m, irq);
                }
            }
            _ => {}
        }
    }
}
