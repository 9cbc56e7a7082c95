//! The replica kernel without the CPU: objects, capabilities, system calls, invocations,
//! faults and scheduling, in the style of seL4 (MCS).
//!
//! The aarch64 kernel saves a trapped thread's registers into its [`Context`], calls one
//! entry point here ([`Kernel::syscall`], [`Kernel::user_fault`], [`Kernel::interrupt`],
//! [`Kernel::timer`]) and then runs whichever thread [`Kernel::current`] names. Everything
//! the CPU or the memory must do is asked of a [`Machine`]. Host tests drive the same entry
//! points with a plain-memory machine.
//!
//! Objects are created only by retyping untyped memory. The memory is consumed (and
//! zeroed); the kernel keeps each object's state in a per-replica table, found through the
//! typed id its capabilities carry (`Cap::Object::data`). Address spaces and page tables
//! are real translation tables in the retyped memory.
//!
//! Nothing here trusts a thread: every capability address, index and argument is checked,
//! and a thread that misbehaves gets an error or a fault message, never a kernel panic.
//! Nothing a thread runs with outlives the capability that authorises it: a TCB keeps
//! copies of its spaces, IPC buffer and fault handler in slots of its own (`TcbSlot`), so
//! revoking the memory under them takes them from the thread too; an unlinked page table is
//! always empty, so no translation outlives its object.

mod fastpath;
mod invoke;
mod objects;
mod vspace;

#[cfg(test)]
mod tests;

use atoll_abi::error::Error;
use atoll_abi::microkit::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, fault};

use crate::cap::{Cap, CapTable, NO_DATA, Rights};
use crate::id::{
    CAP_SLOTS, EndpointId, IrqId, NotificationId, ReplyId, SlotId, TCB_SLOTS_BASE, TcbSlot,
    ThreadId, VSpaceId,
};
use crate::ipc::ThreadState;

pub use crate::id::{
    MAX_DOORBELLS, MAX_ENDPOINTS, MAX_IRQS, MAX_NOTIFICATIONS, MAX_REPLIES, MAX_SCHED_CONTEXTS,
    MAX_THREADS, MAX_VSPACES,
};
pub use objects::MAX_WATCHES;

use objects::Objects;

/// A thread's user registers, as the exception entry saves them. The layout is the CPU
/// side's: its exception entry stores the registers here directly (16-byte aligned, as a
/// stack pointer must be).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Context {
    /// `x0`–`x30`.
    pub x: [u64; 31],
    /// `SP_EL0`.
    pub sp: u64,
    /// Where it resumes (`ELR_EL1`).
    pub pc: u64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// `TPIDR_EL0`.
    pub tpidr: u64,
}

const _: () = {
    assert!(core::mem::offset_of!(Context, x) == 0);
    assert!(core::mem::offset_of!(Context, sp) == 248);
    assert!(core::mem::offset_of!(Context, pc) == 256);
    assert!(core::mem::offset_of!(Context, spsr) == 264);
    assert!(core::mem::offset_of!(Context, tpidr) == 272);
    assert!(core::mem::size_of::<Context>() == 288);
};

/// Bytes of the `svc` instruction: a thread blocked in a system call resumes this far
/// back to make the call again.
const SVC_BYTES: u64 = 4;

/// What the kernel needs from the CPU and memory.
pub trait Machine {
    /// The 4 KiB page at physical address `pa` (page aligned) if it is RAM of this replica
    /// that the kernel may touch.
    fn page(&mut self, pa: u64) -> Option<&mut [u64; 512]>;
    /// Zeroes `[pa, pa + size)` if it is the replica's object memory; returns whether it
    /// did (memory loaded at boot and device memory are never zeroed).
    fn zero(&mut self, pa: u64, size: u64) -> bool;
    /// Writes one character of a thread's debug output.
    fn put_char(&mut self, thread: ThreadId, c: u8);
    /// A thread faulted with no fault endpoint to tell: the kernel stops it.
    fn unhandled_fault(&mut self, thread: ThreadId, label: u64, mrs: &[u64; 4]);
    /// Translations of address space `asid` changed (for `va`, or all of them).
    fn flush_tlb(&mut self, asid: u16, va: Option<u64>);
    /// Whether interrupt `irq` belongs to this replica; configures its trigger if so.
    fn claim_irq(&mut self, irq: u32, edge: bool) -> bool;
    /// Unmasks (`true`) or masks an interrupt.
    fn set_irq_enabled(&mut self, irq: u32, enabled: bool);
    /// Sets `bits` in cross-replica channel word `word`, watched on replica `replica`, and
    /// raises that replica's doorbell if the word was empty; `false` (nothing set) when the
    /// replica is down or unknown or the word does not exist.
    fn ring_doorbell(&mut self, replica: u32, word: u32, bits: u64) -> bool;
    /// Takes every bit pending in this replica's cross-replica channel word `word`; `None`
    /// if the word does not exist.
    fn take_pending_word(&mut self, word: u32) -> Option<u64>;
    /// Timer units per microsecond (for scheduling parameters).
    fn ticks_per_us(&self) -> u64;
    /// A new thread was made with id `thread`, which a destroyed thread may have had:
    /// whatever the machine keeps per thread (FP registers, a part-written debug line)
    /// must start afresh, so nothing of the old thread reaches the new one.
    fn thread_created(&mut self, thread: ThreadId);
}

/// The replica's capability table: CNodes' slots, then the TCBs' own at the top.
type Caps = CapTable<SlotId, CAP_SLOTS>;

/// Where the initialiser's boot objects lie (physical addresses of zeroed boot memory; the
/// address space's tables already built in `vspace`) and how it runs.
#[derive(Clone, Copy, Debug)]
pub struct InitialiserBoot {
    /// Its root CNode, of `syscall::initial::ROOT_RADIX` slots.
    pub cnode: u64,
    /// Its TCB.
    pub tcb: u64,
    /// Its scheduling context.
    pub sched_context: u64,
    /// The root table of its address space.
    pub vspace: u64,
    /// Its IPC buffer page, mapped at `syscall::initial::IPC_BUFFER_VADDR`.
    pub ipc_buffer: u64,
    /// Budget per period, equal to the period (counter ticks): it is never throttled.
    pub budget: u64,
    /// Priority (its maximum controlled priority is 255).
    pub priority: u8,
    /// Its first registers.
    pub ctx: Context,
}

/// One replica's kernel state.
pub struct Kernel {
    caps: Caps,
    /// Every object but the capabilities, apart so that a deletion's callback can reach it.
    objects: Objects,
    /// Whether the fast path (`fastpath.rs`) is off: only tests that compare the two paths
    /// turn it off, so other builds have no flag to test on every system call.
    #[cfg(test)]
    no_fastpath: bool,
}

/// A capability a system call named, as [`Kernel::resolve`] reads it.
#[derive(Clone, Copy)]
struct Target {
    slot: SlotId,
    /// The object's kind; `None` for CNode and untyped capabilities.
    kind: Option<ObjectKind>,
    rights: Rights,
    badge: u64,
    data: u64,
}

impl Target {
    /// The endpoint named, if the capability is one with `right`.
    fn endpoint(&self, right: Rights) -> Option<EndpointId> {
        (self.kind == Some(ObjectKind::Endpoint) && self.rights.contains(right))
            .then(|| EndpointId::from_data(self.data))
            .flatten()
    }

    /// The endpoint named, if the capability may call it: send, and have the caller
    /// replied to (grant or grant-reply; seL4's rule for a call and for a fault handler).
    fn call_endpoint(&self) -> Option<EndpointId> {
        self.endpoint(Rights::WRITE)
            .filter(|_| self.rights.any_of(Rights::GRANT.union(Rights::GRANT_REPLY)))
    }

    /// The notification named, if the capability is one with `right`.
    fn notification(&self, right: Rights) -> Option<NotificationId> {
        (self.kind == Some(ObjectKind::Notification) && self.rights.contains(right))
            .then(|| NotificationId::from_data(self.data))
            .flatten()
    }

    /// The reply object named, if the capability is one.
    fn reply(&self) -> Option<ReplyId> {
        (self.kind == Some(ObjectKind::Reply))
            .then(|| ReplyId::from_data(self.data))
            .flatten()
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

impl Kernel {
    /// An empty kernel: no capabilities, no threads.
    pub const fn new() -> Self {
        Self {
            caps: CapTable::new(0, TCB_SLOTS_BASE),
            objects: Objects::new(),
            #[cfg(test)]
            no_fastpath: false,
        }
    }

    /// Turns the fast path on or off (it is on from the start). Results are the same either
    /// way; tests compare the two paths.
    #[cfg(test)]
    fn set_fastpath(&mut self, on: bool) {
        self.no_fastpath = !on;
    }

    /// Whether system calls may take the fast path.
    fn fastpath_on(&self) -> bool {
        #[cfg(test)]
        return !self.no_fastpath;
        #[cfg(not(test))]
        true
    }

    /// The thread to run now, if any.
    pub fn current(&self) -> Option<ThreadId> {
        self.objects.current
    }

    /// A thread's registers.
    pub fn context(&self, thread: ThreadId) -> Option<&Context> {
        let tcb = &self.objects.tcbs[thread];
        tcb.live.then_some(&tcb.ctx)
    }

    /// A thread's registers, to save a trap into.
    pub fn context_mut(&mut self, thread: ThreadId) -> Option<&mut Context> {
        let tcb = &mut self.objects.tcbs[thread];
        tcb.live.then_some(&mut tcb.ctx)
    }

    /// The address space a thread runs in, from the copy in its own slot.
    fn vspace_of(&self, thread: ThreadId) -> Option<VSpaceId> {
        match *self.caps.get_ref(thread.own_slot(TcbSlot::VSpace)) {
            Cap::Object {
                kind: ObjectKind::VSpace,
                data,
                ..
            } => VSpaceId::from_data(data),
            _ => None,
        }
    }

    /// The translation table root and ASID of a thread's address space.
    pub fn address_space(&self, thread: ThreadId) -> Option<(u64, u16)> {
        if !self.objects.tcbs[thread].live {
            return None;
        }
        let v = self.vspace_of(thread)?;
        Some((self.objects.vspaces[v]?, v.asid()))
    }

    /// A thread's IPC state (for tests and diagnostics).
    pub fn thread_state(&self, thread: ThreadId) -> ThreadState {
        self.objects.threads.state(thread)
    }

    /// The capability in a table slot (for tests and diagnostics).
    pub fn cap(&self, slot: SlotId) -> Cap {
        self.caps.get(slot)
    }

    /// Time until the next scheduling event (budget end or refill), if any.
    pub fn next_event(&self) -> Option<u64> {
        self.objects.sched.next_event(self.current())
    }

    // ----- boot ---------------------------------------------------------------------

    /// Boot: builds the initialiser over boot memory the caller prepared (zeroed, the
    /// address space's tables already built in it), gives it the capabilities of
    /// `syscall::initial` (its root CNode, which owns table slots from 0, its TCB,
    /// scheduling context, address space and IPC buffer, IRQ and scheduling control, and
    /// `untyped` from `FIRST_UNTYPED` on) and starts it. Returns its thread.
    pub fn boot_initialiser(
        &mut self,
        b: &InitialiserBoot,
        untyped: impl IntoIterator<Item = Cap>,
    ) -> Result<ThreadId, Error> {
        use atoll_abi::syscall::initial;
        let radix = initial::ROOT_RADIX;
        if (1usize << radix) > TCB_SLOTS_BASE {
            return Err(Error::RangeError);
        }
        let slot = |s: u64| SlotId::from_data(s).ok_or(Error::RangeError);
        let cspace = Cap::CNode {
            base: b.cnode,
            radix,
            first: 0,
            guard: 0,
            guard_bits: 64 - radix,
        };
        self.caps.insert_original(slot(initial::CNODE)?, cspace)?;
        let objects = [
            (initial::TCB, ObjectKind::Tcb, b.tcb, 11),
            (
                initial::SCHED_CONTEXT,
                ObjectKind::SchedContext,
                b.sched_context,
                8,
            ),
            (initial::VSPACE, ObjectKind::VSpace, b.vspace, 12),
            (
                initial::IPC_BUFFER_FRAME,
                ObjectKind::Frame,
                b.ipc_buffer,
                12,
            ),
            (initial::IRQ_CONTROL, ObjectKind::IrqControl, 0, 0),
            (initial::SCHED_CONTROL, ObjectKind::SchedControl, 0, 0),
        ];
        for (s, kind, base, size_bits) in objects {
            let indexed = !matches!(
                kind,
                ObjectKind::Frame | ObjectKind::IrqControl | ObjectKind::SchedControl
            );
            let cap = Cap::Object {
                kind,
                base,
                size_bits,
                rights: Rights::ALL,
                badge: 0,
                data: if indexed { NO_DATA } else { 0 },
            };
            self.caps.insert_original(slot(s)?, cap)?;
            self.init_object(slot(s)?)?;
        }
        let mut untyped = untyped.into_iter();
        for (s, cap) in (initial::FIRST_UNTYPED..initial::FIRST_FREE).zip(&mut untyped) {
            self.caps.insert_original(slot(s)?, cap)?;
        }
        if untyped.next().is_some() {
            return Err(Error::RangeError);
        }

        let t = self.object_index(slot(initial::TCB)?, ObjectKind::Tcb, ThreadId::from_data)?;
        let sc = self.object_index(
            slot(initial::SCHED_CONTEXT)?,
            ObjectKind::SchedContext,
            crate::id::SchedContextId::from_data,
        )?;
        // The thread's own copies of its spaces and IPC buffer, as TCB_Configure makes.
        for (which, from) in [
            (TcbSlot::CSpace, initial::CNODE),
            (TcbSlot::VSpace, initial::VSPACE),
            (TcbSlot::IpcBuffer, initial::IPC_BUFFER_FRAME),
        ] {
            self.caps
                .copy(slot(from)?, t.own_slot(which), Rights::ALL)?;
        }
        let o = &mut self.objects;
        o.sched
            .configure(sc, b.budget, b.budget)
            .map_err(|_| Error::InvalidArgument)?;
        let tcb = &mut o.tcbs[t];
        tcb.ipc_buffer = Some(b.ipc_buffer);
        tcb.mcp = 255;
        tcb.ctx = b.ctx;
        o.sched
            .set_priority(t, b.priority)
            .map_err(|_| Error::InvalidArgument)?;
        o.sched.bind(t, sc).map_err(|_| Error::InvalidArgument)?;
        o.resume(t);
        o.schedule();
        Ok(t)
    }

    /// Boot and tests: places an original capability in table slot `slot` (a slot of the
    /// initialiser's root CNode).
    pub fn boot_insert(&mut self, slot: SlotId, cap: Cap) -> Result<(), Error> {
        self.caps.insert_original(slot, cap)
    }

    /// The table id of the object the capability in `slot` names, if it is of `want`.
    fn object_index<I>(
        &self,
        slot: SlotId,
        want: ObjectKind,
        id: fn(u64) -> Option<I>,
    ) -> Result<I, Error> {
        match self.caps.get(slot) {
            Cap::Object { kind, data, .. } if kind == want => {
                id(data).ok_or(Error::InvalidCapability)
            }
            _ => Err(Error::InvalidCapability),
        }
    }

    // ----- entry points -------------------------------------------------------------

    /// The current thread made a system call (number in `x7`); its registers are in its
    /// context.
    pub fn syscall(&mut self, m: &mut impl Machine) {
        let Some(t) = self.current() else {
            return;
        };
        // Only the registers the calls read, not the whole context.
        let ctx = &self.objects.tcbs[t].ctx;
        let (x0, x6, x7, x8) = (ctx.x[0], ctx.x[6], ctx.x[7], ctx.x[8]);
        let (pc, sp) = (ctx.pc, ctx.sp);
        let number = x7 as i64;
        if self.fastpath_on() && self.fastpath(m, t, number) {
            return;
        }
        match number {
            syscall::CALL => self.sys_send(m, t, x0, true, true),
            syscall::SEND => self.sys_send(m, t, x0, true, false),
            syscall::NB_SEND => self.sys_send(m, t, x0, false, false),
            syscall::RECV => self.sys_recv(m, t, x0, x6, true),
            syscall::NB_RECV => self.sys_recv(m, t, x0, x6, false),
            syscall::WAIT => self.sys_recv(m, t, x0, 0, true),
            syscall::NB_WAIT => self.sys_recv(m, t, x0, 0, false),
            syscall::REPLY_RECV => {
                if self.sys_reply(m, t, x6) {
                    self.sys_recv(m, t, x0, x6, true);
                }
            }
            syscall::NB_SEND_RECV => {
                self.sys_send(m, t, x8, false, false);
                self.sys_recv(m, t, x0, x6, true);
            }
            syscall::NB_SEND_WAIT => {
                self.sys_send(m, t, x8, false, false);
                self.sys_recv(m, t, x0, 0, true);
            }
            syscall::YIELD => {
                let _ = self.objects.sched.yield_now(t);
            }
            syscall::DEBUG_PUT_CHAR => m.put_char(t, x0 as u8),
            syscall::DEBUG_HALT => self.objects.suspend(t),
            _ => self.fault(m, t, fault::UNKNOWN_SYSCALL, [pc, sp, x7, 0]),
        }
        self.objects.schedule();
    }

    /// Whether some thread wants to run but waits for its budget: a core with nothing to
    /// run is then not settled, only between periods.
    pub fn waiting_for_budget(&self) -> bool {
        self.objects.sched.any_waiting_for_budget()
    }

    /// The machine has loaded the current thread (its address space, FP access and budget
    /// timer): from here on, [`Kernel::caller_goes_on`] tracks what changes.
    pub fn note_loaded(&mut self) {
        self.objects.changed = false;
    }

    /// Whether the caller of the last system call, `t`, goes on as the machine last loaded
    /// it: it is still the current thread, and since it was loaded no object was invoked
    /// and no fault raised, which is how an address space, a scheduling parameter or a
    /// budget changes. (Only system calls run between two loads: every other kernel entry
    /// chooses and loads a thread again.) The machine can then return to it as it is.
    pub fn caller_goes_on(&self, t: ThreadId) -> bool {
        self.objects.current == Some(t) && !self.objects.changed
    }

    /// The current thread took an exception that is not a system call: a memory access
    /// (`label` [`fault::VM_FAULT`]) or another exception ([`fault::USER_EXCEPTION`]), with
    /// the message registers of that fault.
    pub fn user_fault(&mut self, m: &mut impl Machine, label: u64, mrs: [u64; 4]) {
        if let Some(t) = self.current() {
            self.fault(m, t, label, mrs);
        }
        self.objects.schedule();
    }

    /// Device interrupt `irq` arrived: its notification is signalled and the interrupt
    /// stays masked until the handler acknowledges it.
    pub fn interrupt(&mut self, m: &mut impl Machine, irq: u32) {
        m.set_irq_enabled(irq, false);
        if let Some(irq) = usize::try_from(irq).ok().and_then(IrqId::new) {
            let handler = self.objects.irqs[irq];
            if let (true, Some(n)) = (handler.handler, handler.ntfn) {
                self.objects.signal(n, handler.badge);
            }
        }
        self.objects.schedule();
    }

    /// The doorbell interrupt arrived (and was acknowledged): every watched cross-replica
    /// channel word is taken, and its bits signal its notification.
    pub fn doorbell(&mut self, m: &mut impl Machine) {
        for i in 0..self.objects.watch_count() {
            let Some(watch) = self.objects.watch(i) else {
                break;
            };
            if let Some(bits) = m.take_pending_word(watch.word)
                && bits != 0
            {
                self.objects.signal(watch.ntfn, bits);
            }
        }
        self.objects.schedule();
    }

    /// `elapsed` timer units passed: the running thread's budget pays, periods refill, and
    /// the thread goes to the back of its priority (round robin).
    pub fn timer(&mut self, elapsed: u64) {
        let running = self.current();
        self.objects.sched.tick(running, elapsed);
        if let Some(t) = running {
            let _ = self.objects.sched.yield_now(t);
        }
        self.objects.schedule();
    }

    // ----- system calls -------------------------------------------------------------

    /// Resolves a capability address in thread `t`'s space to a non-empty slot, reading
    /// only the fields the IPC paths use (a whole capability is copied only to invoke it).
    #[inline(always)]
    fn resolve(&self, t: ThreadId, cptr: u64) -> Option<Target> {
        let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
        let slot = self.caps.lookup_from(root, cptr, 64).ok()?;
        Some(match *self.caps.get_ref(slot) {
            Cap::Null => return None,
            Cap::Object {
                kind,
                rights,
                badge,
                data,
                ..
            } => Target {
                slot,
                kind: Some(kind),
                rights,
                badge,
                data,
            },
            Cap::CNode { .. } | Cap::Untyped { .. } => Target {
                slot,
                kind: None,
                rights: Rights::NONE,
                badge: 0,
                data: 0,
            },
        })
    }

    fn sys_send(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        cptr: u64,
        blocking: bool,
        call: bool,
    ) {
        let Some(target) = self.resolve(t, cptr) else {
            if blocking || call {
                self.cap_fault(m, t, cptr);
            }
            return;
        };
        let info = MessageInfo(self.objects.tcbs[t].ctx.x[1]);
        match target.kind {
            Some(ObjectKind::Endpoint) => {
                // A call needs a right to be replied to (seL4 leaves a caller without one
                // blocked for good; Atoll faults it).
                let ep = if call {
                    target.call_endpoint()
                } else {
                    target.endpoint(Rights::WRITE)
                };
                match ep {
                    Some(ep) => self
                        .objects
                        .send(m, t, ep, target.badge, info, blocking, call),
                    None => self.cap_fault(m, t, cptr),
                }
            }
            Some(ObjectKind::Notification) => match target.notification(Rights::WRITE) {
                Some(n) => {
                    self.objects.signal(n, target.badge);
                    if call {
                        // A call answers whether the signal went through (it always does
                        // within a replica), as a call on a doorbell does.
                        self.objects.tcbs[t].ctx.x[1] = 0;
                    }
                }
                None if blocking || call => self.cap_fault(m, t, cptr),
                None => {}
            },
            Some(ObjectKind::Doorbell)
                if !(call && info.label() == syscall::label::DOORBELL_CONFIGURE) =>
            {
                if !target.rights.contains(Rights::WRITE) {
                    if blocking || call {
                        self.cap_fault(m, t, cptr);
                    }
                    return;
                }
                let delivered = self.objects.ring(m, target.data, target.badge);
                if call {
                    self.objects.tcbs[t].ctx.x[1] = if delivered {
                        0
                    } else {
                        MessageInfo::new(Error::IllegalOperation as u64, 0).0
                    };
                }
            }
            _ => {
                self.objects.changed = true;
                let cap = self.caps.get(target.slot);
                let result = self.invoke(m, t, target.slot, cap, info);
                // The invoker may have deleted itself.
                if self.objects.tcbs[t].live && call {
                    let (label, len, results) = match result {
                        Ok(r) => (0, r.len, r.mrs),
                        Err(e) => (e as u64, 0, [0; 4]),
                    };
                    let ctx = &mut self.objects.tcbs[t].ctx;
                    ctx.x[0] = 0;
                    ctx.x[1] = MessageInfo::new(label, len as u64).0;
                    let [a, b, c, d] = results;
                    ctx.x[2] = a;
                    ctx.x[3] = b;
                    ctx.x[4] = c;
                    ctx.x[5] = d;
                }
            }
        }
    }

    fn sys_recv(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        cptr: u64,
        reply_cptr: u64,
        blocking: bool,
    ) {
        let Some(target) = self.resolve(t, cptr) else {
            self.cap_fault(m, t, cptr);
            return;
        };
        if let Some(ep) = target.endpoint(Rights::READ) {
            self.objects.tcbs[t].recv_reply = self.resolve(t, reply_cptr).and_then(|r| r.reply());
            self.objects.recv(m, t, ep, blocking);
        } else if let Some(n) = target.notification(Rights::READ)
            // Only its own thread waits on a bound notification (as in seL4).
            && self.objects.ntfn_bound[n].is_none_or(|b| b == t)
        {
            self.objects.wait(t, n, blocking);
        } else {
            self.cap_fault(m, t, cptr);
        }
    }

    /// Replies through the reply object at `reply_cptr`; `false` if the thread faulted.
    fn sys_reply(&mut self, m: &mut impl Machine, t: ThreadId, reply_cptr: u64) -> bool {
        let target = self.resolve(t, reply_cptr);
        if let Some(r) = target.and_then(|r| r.reply()) {
            let info = MessageInfo(self.objects.tcbs[t].ctx.x[1]);
            self.objects.reply(m, t, r, info);
            return true;
        }
        // Replying through an empty slot is a no-op, as in seL4 (nobody called).
        if target.is_none() && reply_cptr == 0 {
            return true;
        }
        self.cap_fault(m, t, reply_cptr);
        false
    }

    /// A capability lookup for system call `x7` of thread `t` failed on `cptr`.
    fn cap_fault(&mut self, m: &mut impl Machine, t: ThreadId, cptr: u64) {
        let ctx = &self.objects.tcbs[t].ctx;
        let mrs = [ctx.pc, cptr, ctx.x[7], 0];
        self.fault(m, t, fault::CAP_FAULT, mrs);
    }

    /// The fault handler a thread's own slot holds: the endpoint and the badge to send
    /// with (checked to have the rights seL4 requires when it was installed).
    fn fault_handler(&self, t: ThreadId) -> Option<(EndpointId, u64)> {
        match *self.caps.get_ref(t.own_slot(TcbSlot::FaultHandler)) {
            Cap::Object {
                kind: ObjectKind::Endpoint,
                data,
                badge,
                ..
            } => Some((EndpointId::from_data(data)?, badge)),
            _ => None,
        }
    }

    /// Thread `t` faulted: it calls its fault endpoint with the fault message, or stops if
    /// it has none (or faulted while sending a fault).
    fn fault(&mut self, m: &mut impl Machine, t: ThreadId, label: u64, mrs: [u64; 4]) {
        self.objects.changed = true;
        let handler = self.fault_handler(t);
        let tcb = &mut self.objects.tcbs[t];
        let (Some((ep, badge)), 0) = (handler, tcb.fault_label) else {
            m.unhandled_fault(t, label, &mrs);
            self.objects.suspend(t);
            return;
        };
        tcb.fault_label = label;
        tcb.fault_mrs = mrs;
        let info = MessageInfo::new(label, 4);
        self.objects.send(m, t, ep, badge, info, true, true);
    }
}

/// How a thread blocked in a system call is taken out of it: seL4's restart point. Its
/// saved `pc` is just past the `svc`; moving it back makes the thread make the call again
/// when it next runs, with the registers it made it with (a receive receives again, and
/// nothing it did not get is reported as received).
fn restart_point(ctx: &mut Context) {
    ctx.pc = ctx.pc.wrapping_sub(SVC_BYTES);
}
