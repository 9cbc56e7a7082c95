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
//! index its capabilities carry (`Cap::Object::data`). Address spaces and page tables are
//! real translation tables in the retyped memory.
//!
//! Nothing here trusts a thread: every capability address, index and argument is checked,
//! and a thread that misbehaves gets an error or a fault message, never a kernel panic.

mod fastpath;
mod invoke;
mod vspace;

#[cfg(test)]
mod tests;

use atoll_abi::error::Error;
use atoll_abi::microkit::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, fault, ipc_buffer};

use crate::cap::{Cap, CapTable, Rights, SlotId};
use crate::ipc::{
    Endpoint, Notification, RecvOutcome, SendOutcome, ThreadState, Threads, WaitOutcome,
};
use crate::sched::Scheduler;

/// Threads per replica.
pub const MAX_THREADS: usize = 64;
/// Endpoints per replica.
pub const MAX_ENDPOINTS: usize = 128;
/// Notifications per replica.
pub const MAX_NOTIFICATIONS: usize = 128;
/// Reply objects per replica.
pub const MAX_REPLIES: usize = 64;
/// Scheduling contexts per replica.
pub const MAX_SCS: usize = 64;
/// Address spaces per replica (each is also an ASID).
pub const MAX_VSPACES: usize = 32;
/// Doorbells per replica.
pub const MAX_DOORBELLS: usize = 128;
/// Interrupt ids (GIC SPIs and below).
pub const MAX_IRQS: usize = 1020;
/// Capability slots per replica.
pub const CAP_SLOTS: usize = 8192;

const NONE: u16 = u16::MAX;

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

/// What the kernel needs from the CPU and memory.
pub trait Machine {
    /// The 4 KiB page at physical address `pa` (page aligned) if it is RAM of this replica
    /// that the kernel may touch.
    fn page(&mut self, pa: u64) -> Option<&mut [u64; 512]>;
    /// Zeroes `[pa, pa + size)` if it is the replica's object memory; returns whether it
    /// did (memory loaded at boot and device memory are never zeroed).
    fn zero(&mut self, pa: u64, size: u64) -> bool;
    /// Writes one character of a thread's debug output.
    fn put_char(&mut self, thread: usize, c: u8);
    /// A thread faulted with no fault endpoint to tell: the kernel stops it.
    fn unhandled_fault(&mut self, thread: usize, label: u64, mrs: &[u64; 4]);
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
}

/// A thread control block.
#[derive(Clone, Copy, Debug)]
pub struct Tcb {
    /// Saved registers.
    pub ctx: Context,
    live: bool,
    /// Capability-space root (a CNode capability), `Null` until configured.
    cspace: Cap,
    vspace: u16,
    ipc_buffer_va: u64,
    ipc_buffer_pa: u64,
    fault_ep: u16,
    fault_badge: u64,
    bound: u16,
    mcp: u8,
    priority: u8,
    /// Reply object named by its current receive, bound to a caller when a call arrives.
    recv_reply: u16,
    /// Reply object its own pending call will be answered through.
    caller_reply: u16,
    /// A fault message it is sending (label, registers), label 0 when none.
    fault_label: u64,
    fault_mrs: [u64; 4],
}

impl Tcb {
    const EMPTY: Tcb = Tcb {
        ctx: Context {
            x: [0; 31],
            sp: 0,
            pc: 0,
            spsr: 0,
            tpidr: 0,
        },
        live: false,
        cspace: Cap::Null,
        vspace: NONE,
        ipc_buffer_va: 0,
        ipc_buffer_pa: 0,
        fault_ep: NONE,
        fault_badge: 0,
        bound: NONE,
        mcp: 0,
        priority: 0,
        recv_reply: NONE,
        caller_reply: NONE,
        fault_label: 0,
        fault_mrs: [0; 4],
    };
}

#[derive(Clone, Copy, Debug)]
struct Reply {
    live: bool,
    caller: u16,
    server: u16,
}

#[derive(Clone, Copy, Debug)]
struct Irq {
    handler: bool,
    ntfn: u16,
    badge: u64,
}

/// Which table entries are in use.
struct Pool<const N: usize> {
    live: [bool; N],
}

impl<const N: usize> Pool<N> {
    const fn new() -> Self {
        Self { live: [false; N] }
    }

    fn free_count(&self) -> usize {
        self.live.iter().filter(|l| !**l).count()
    }

    fn alloc(&mut self) -> Option<usize> {
        let i = self.live.iter().position(|l| !*l)?;
        self.live[i] = true;
        Some(i)
    }

    fn free(&mut self, i: usize) {
        if let Some(l) = self.live.get_mut(i) {
            *l = false;
        }
    }
}

/// Everything but the capability table, so that a deletion's callback can reach it.
struct Objects {
    threads: Threads<MAX_THREADS>,
    sched: Scheduler<MAX_THREADS, MAX_SCS>,
    tcbs: [Tcb; MAX_THREADS],
    eps: [Endpoint; MAX_ENDPOINTS],
    ep_pool: Pool<MAX_ENDPOINTS>,
    ntfns: [Notification; MAX_NOTIFICATIONS],
    ntfn_bound: [u16; MAX_NOTIFICATIONS],
    ntfn_pool: Pool<MAX_NOTIFICATIONS>,
    replies: [Reply; MAX_REPLIES],
    sc_pool: Pool<MAX_SCS>,
    vspaces: [u64; MAX_VSPACES],
    vspace_pool: Pool<MAX_VSPACES>,
    doorbells: [Bell; MAX_DOORBELLS],
    doorbell_pool: Pool<MAX_DOORBELLS>,
    /// Watched words in `watches[..watch_count]`, kept together so the doorbell handler
    /// looks at those only.
    watches: [Watch; MAX_WATCHES],
    watch_count: usize,
    irqs: [Irq; MAX_IRQS],
    current: u16,
    /// An object was invoked, or a fault raised, since the machine last loaded the current
    /// thread ([`Kernel::note_loaded`]): something a thread runs with (its address space,
    /// scheduling parameters, budget) may have changed (see [`Kernel::caller_goes_on`]).
    changed: bool,
}

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
    caps: CapTable<CAP_SLOTS>,
    o: Objects,
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

/// Unconfigured doorbell.
const NO_REPLICA: u32 = u32::MAX;

/// Where a doorbell rings: a pending word watched on another replica.
#[derive(Clone, Copy, Debug)]
struct Bell {
    replica: u32,
    word: u32,
}

impl Bell {
    const UNCONFIGURED: Self = Self {
        replica: NO_REPLICA,
        word: 0,
    };
}

/// A cross-replica channel word of this replica and the notification it signals.
#[derive(Clone, Copy, Debug)]
struct Watch {
    word: u32,
    ntfn: u16,
}

impl Watch {
    const FREE: Self = Self {
        word: 0,
        ntfn: NONE,
    };
}

/// Cross-replica channel words one replica can watch.
pub const MAX_WATCHES: usize = 128;

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

impl Kernel {
    /// An empty kernel: no capabilities, no threads.
    pub const fn new() -> Self {
        Self {
            caps: CapTable::new(0),
            o: Objects {
                threads: Threads::new(),
                sched: Scheduler::new(),
                tcbs: [Tcb::EMPTY; MAX_THREADS],
                eps: [Endpoint {
                    kind: crate::ipc::EndpointQueue::Idle,
                    queue: crate::ipc::Queue::EMPTY,
                }; MAX_ENDPOINTS],
                ep_pool: Pool::new(),
                ntfns: [Notification {
                    word: 0,
                    active: false,
                    waiters: crate::ipc::Queue::EMPTY,
                }; MAX_NOTIFICATIONS],
                ntfn_bound: [NONE; MAX_NOTIFICATIONS],
                ntfn_pool: Pool::new(),
                replies: [Reply {
                    live: false,
                    caller: NONE,
                    server: NONE,
                }; MAX_REPLIES],
                sc_pool: Pool::new(),
                vspaces: [0; MAX_VSPACES],
                vspace_pool: Pool::new(),
                doorbells: [Bell::UNCONFIGURED; MAX_DOORBELLS],
                doorbell_pool: Pool::new(),
                watches: [Watch::FREE; MAX_WATCHES],
                watch_count: 0,
                irqs: [Irq {
                    handler: false,
                    ntfn: NONE,
                    badge: 0,
                }; MAX_IRQS],
                current: NONE,
                changed: true,
            },
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
    pub fn current(&self) -> Option<usize> {
        (self.o.current != NONE).then_some(self.o.current as usize)
    }

    /// A thread's registers.
    pub fn context(&self, thread: usize) -> Option<&Context> {
        self.o.tcbs.get(thread).filter(|t| t.live).map(|t| &t.ctx)
    }

    /// A thread's registers, to save a trap into.
    pub fn context_mut(&mut self, thread: usize) -> Option<&mut Context> {
        self.o
            .tcbs
            .get_mut(thread)
            .filter(|t| t.live)
            .map(|t| &mut t.ctx)
    }

    /// The translation table root and ASID of a thread's address space.
    pub fn address_space(&self, thread: usize) -> Option<(u64, u16)> {
        let t = self.o.tcbs.get(thread).filter(|t| t.live)?;
        let v = t.vspace;
        (v != NONE).then(|| (self.o.vspaces[v as usize], v + 1))
    }

    /// A thread's IPC state (for tests and diagnostics).
    pub fn thread_state(&self, thread: usize) -> ThreadState {
        self.o.threads.state(thread)
    }

    /// The capability in a table slot (for tests and diagnostics).
    pub fn cap(&self, slot: SlotId) -> Cap {
        self.caps.get(slot)
    }

    /// Time until the next scheduling event (budget end or refill), if any.
    pub fn next_event(&self) -> Option<u64> {
        self.o.sched.next_event(self.current())
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
    ) -> Result<usize, Error> {
        use atoll_abi::syscall::initial;
        let radix = initial::ROOT_RADIX;
        if (1usize << radix) > CAP_SLOTS {
            return Err(Error::RangeError);
        }
        let cspace = Cap::CNode {
            base: b.cnode,
            radix,
            first: 0,
            guard: 0,
            guard_bits: 64 - radix,
        };
        self.caps.insert_original(initial::CNODE as usize, cspace)?;
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
        for (slot, kind, base, size_bits) in objects {
            let cap = Cap::Object {
                kind,
                base,
                size_bits,
                rights: Rights::ALL,
                badge: 0,
                data: 0,
            };
            self.caps.insert_original(slot as usize, cap)?;
            self.init_object(slot as usize)?;
        }
        let slots = initial::FIRST_UNTYPED as usize..initial::FIRST_FREE as usize;
        let mut untyped = untyped.into_iter();
        for (slot, cap) in slots.zip(&mut untyped) {
            self.caps.insert_original(slot, cap)?;
        }
        if untyped.next().is_some() {
            return Err(Error::RangeError);
        }

        let t = self.object_index(initial::TCB as usize, ObjectKind::Tcb)?;
        let v = self.object_index(initial::VSPACE as usize, ObjectKind::VSpace)?;
        let sc = self.object_index(initial::SCHED_CONTEXT as usize, ObjectKind::SchedContext)?;
        let o = &mut self.o;
        o.sched
            .configure(sc, b.budget, b.budget)
            .map_err(|_| Error::InvalidArgument)?;
        let tcb = &mut o.tcbs[t];
        tcb.cspace = cspace;
        tcb.vspace = v as u16;
        tcb.ipc_buffer_va = initial::IPC_BUFFER_VADDR;
        tcb.ipc_buffer_pa = b.ipc_buffer;
        tcb.mcp = 255;
        tcb.priority = b.priority;
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
    pub fn boot_insert(&mut self, slot: usize, cap: Cap) -> Result<(), Error> {
        self.caps.insert_original(slot, cap)
    }

    fn object_index(&self, slot: usize, want: ObjectKind) -> Result<usize, Error> {
        match self.caps.get(slot) {
            Cap::Object { kind, data, .. } if kind == want => Ok(data as usize),
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
        let ctx = &self.o.tcbs[t].ctx;
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
                let _ = self.o.sched.yield_now(t);
            }
            syscall::DEBUG_PUT_CHAR => m.put_char(t, x0 as u8),
            syscall::DEBUG_HALT => self.o.suspend(t),
            _ => self.fault(m, t, fault::UNKNOWN_SYSCALL, [pc, sp, x7, 0]),
        }
        self.o.schedule();
    }

    /// Whether some thread wants to run but waits for its budget: a core with nothing to
    /// run is then not settled, only between periods.
    pub fn waiting_for_budget(&self) -> bool {
        self.o.sched.any_waiting_for_budget()
    }

    /// The machine has loaded the current thread (its address space, FP access and budget
    /// timer): from here on, [`Kernel::caller_goes_on`] tracks what changes.
    pub fn note_loaded(&mut self) {
        self.o.changed = false;
    }

    /// Whether the caller of the last system call, `t`, goes on as the machine last loaded
    /// it: it is still the current thread, and since it was loaded no object was invoked
    /// and no fault raised, which is how an address space, a scheduling parameter or a
    /// budget changes. (Only system calls run between two loads: every other kernel entry
    /// chooses and loads a thread again.) The machine can then return to it as it is.
    pub fn caller_goes_on(&self, t: usize) -> bool {
        usize::from(self.o.current) == t && !self.o.changed
    }

    /// The current thread took an exception that is not a system call: a memory access
    /// (`label` [`fault::VM_FAULT`]) or another exception ([`fault::USER_EXCEPTION`]), with
    /// the message registers of that fault.
    pub fn user_fault(&mut self, m: &mut impl Machine, label: u64, mrs: [u64; 4]) {
        if let Some(t) = self.current() {
            self.fault(m, t, label, mrs);
        }
        self.o.schedule();
    }

    /// Device interrupt `irq` arrived: its notification is signalled and the interrupt
    /// stays masked until the handler acknowledges it.
    pub fn interrupt(&mut self, m: &mut impl Machine, irq: u32) {
        m.set_irq_enabled(irq, false);
        if let Some(&Irq {
            handler: true,
            ntfn,
            badge,
        }) = self.o.irqs.get(irq as usize)
            && ntfn != NONE
        {
            self.o.signal(ntfn as usize, badge);
        }
        self.o.schedule();
    }

    /// The doorbell interrupt arrived (and was acknowledged): every watched cross-replica
    /// channel word is taken, and its bits signal its notification.
    pub fn doorbell(&mut self, m: &mut impl Machine) {
        let count = self.o.watch_count.min(MAX_WATCHES);
        for i in 0..count {
            let Watch { word, ntfn } = self.o.watches[i];
            if let Some(bits) = m.take_pending_word(word)
                && bits != 0
            {
                self.o.signal(usize::from(ntfn), bits);
            }
        }
        self.o.schedule();
    }

    /// `elapsed` timer units passed: the running thread's budget pays, periods refill, and
    /// the thread goes to the back of its priority (round robin).
    pub fn timer(&mut self, elapsed: u64) {
        let running = self.current();
        self.o.sched.tick(running, elapsed);
        if let Some(t) = running {
            let _ = self.o.sched.yield_now(t);
        }
        self.o.schedule();
    }

    // ----- system calls -------------------------------------------------------------

    /// Resolves a capability address in thread `t`'s space to a non-empty slot, reading
    /// only the fields the IPC paths use (a whole capability is copied only to invoke it).
    #[inline(always)]
    fn resolve(&self, t: usize, cptr: u64) -> Option<Target> {
        let slot = self
            .caps
            .lookup_from(&self.o.tcbs[t].cspace, cptr, 64)
            .ok()?;
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

    fn sys_send(&mut self, m: &mut impl Machine, t: usize, cptr: u64, blocking: bool, call: bool) {
        let Some(target) = self.resolve(t, cptr) else {
            if blocking || call {
                self.cap_fault(m, t, cptr);
            }
            return;
        };
        let Target {
            slot,
            kind,
            rights,
            badge,
            data,
        } = target;
        match kind {
            Some(ObjectKind::Endpoint) => {
                if !rights.contains(Rights::WRITE) {
                    self.cap_fault(m, t, cptr);
                    return;
                }
                let info = MessageInfo(self.o.tcbs[t].ctx.x[1]);
                self.o
                    .send(m, t, data as usize, badge, info, blocking, call);
            }
            Some(ObjectKind::Notification) => {
                if rights.contains(Rights::WRITE) {
                    self.o.signal(data as usize, badge);
                    if call {
                        // A call answers whether the signal went through (it always does
                        // within a replica), as a call on a doorbell does.
                        self.o.tcbs[t].ctx.x[1] = 0;
                    }
                } else if blocking || call {
                    self.cap_fault(m, t, cptr);
                }
            }
            Some(ObjectKind::Doorbell)
                if !(call
                    && MessageInfo(self.o.tcbs[t].ctx.x[1]).label()
                        == syscall::label::DOORBELL_CONFIGURE) =>
            {
                let bell = self
                    .o
                    .doorbells
                    .get(data as usize)
                    .copied()
                    .unwrap_or(Bell::UNCONFIGURED);
                let delivered =
                    bell.replica != NO_REPLICA && m.ring_doorbell(bell.replica, bell.word, badge);
                if call {
                    let ctx = &mut self.o.tcbs[t].ctx;
                    ctx.x[1] = if delivered {
                        0
                    } else {
                        MessageInfo::new(Error::IllegalOperation as u64, 0).0
                    };
                }
            }
            _ => {
                self.o.changed = true;
                let info = MessageInfo(self.o.tcbs[t].ctx.x[1]);
                let cap = self.caps.get(slot);
                let result = self.invoke(m, t, slot, cap, info);
                // The invoker may have deleted itself.
                if self.o.tcbs[t].live {
                    let (label, len, results) = match result {
                        Ok(r) => (0, r.len, r.mrs),
                        Err(e) => (e as u64, 0, [0; 4]),
                    };
                    if call {
                        let ctx = &mut self.o.tcbs[t].ctx;
                        ctx.x[0] = 0;
                        ctx.x[1] = MessageInfo::new(label, len as u64).0;
                        ctx.x[2..6].copy_from_slice(&results);
                    }
                }
            }
        }
    }

    fn sys_recv(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        cptr: u64,
        reply_cptr: u64,
        blocking: bool,
    ) {
        let Some(Target {
            kind, rights, data, ..
        }) = self.resolve(t, cptr)
        else {
            self.cap_fault(m, t, cptr);
            return;
        };
        match kind {
            Some(ObjectKind::Endpoint) if rights.contains(Rights::READ) => {
                let reply = match self.resolve(t, reply_cptr) {
                    Some(Target {
                        kind: Some(ObjectKind::Reply),
                        data,
                        ..
                    }) => data as u16,
                    _ => NONE,
                };
                self.o.tcbs[t].recv_reply = reply;
                self.o.recv(m, t, data as usize, blocking);
            }
            Some(ObjectKind::Notification) if rights.contains(Rights::READ) => {
                self.o.wait(t, data as usize, blocking)
            }
            _ => {
                self.cap_fault(m, t, cptr);
            }
        }
    }

    /// Replies through the reply object at `reply_cptr`; `false` if the thread faulted.
    fn sys_reply(&mut self, m: &mut impl Machine, t: usize, reply_cptr: u64) -> bool {
        match self.resolve(t, reply_cptr) {
            Some(Target {
                kind: Some(ObjectKind::Reply),
                data,
                ..
            }) => {
                let info = MessageInfo(self.o.tcbs[t].ctx.x[1]);
                self.o.reply(m, t, data as usize, info);
                true
            }
            // Replying through an empty slot is a no-op, as in seL4 (nobody called).
            None if reply_cptr == 0 => true,
            _ => {
                self.cap_fault(m, t, reply_cptr);
                false
            }
        }
    }

    /// A capability lookup for system call `x7` of thread `t` failed on `cptr`.
    fn cap_fault(&mut self, m: &mut impl Machine, t: usize, cptr: u64) {
        let ctx = &self.o.tcbs[t].ctx;
        let mrs = [ctx.pc, cptr, ctx.x[7], 0];
        self.fault(m, t, fault::CAP_FAULT, mrs);
    }

    /// Thread `t` faulted: it calls its fault endpoint with the fault message, or stops if
    /// it has none (or faulted while sending a fault).
    fn fault(&mut self, m: &mut impl Machine, t: usize, label: u64, mrs: [u64; 4]) {
        self.o.changed = true;
        let tcb = &self.o.tcbs[t];
        let ep = tcb.fault_ep;
        if ep == NONE || tcb.fault_label != 0 || !self.o.ep_pool.live[ep as usize] {
            m.unhandled_fault(t, label, &mrs);
            self.o.suspend(t);
            return;
        }
        let badge = tcb.fault_badge;
        let tcb = &mut self.o.tcbs[t];
        tcb.fault_label = label;
        tcb.fault_mrs = mrs;
        let info = MessageInfo::new(label, 4);
        self.o.send(m, t, ep as usize, badge, info, true, true);
    }
}

/// Writes the first `count` of `mrs` into the register message registers (`x2`–`x5`) and
/// zeroes the rest, so a receiver never sees registers the sender did not send. Written out
/// element by element: a variable-length copy would call `memcpy` on the IPC path.
fn set_registers(ctx: &mut Context, mrs: [u64; syscall::REGISTER_MESSAGE_REGISTERS], count: usize) {
    let pick = |i: usize| if i < count { mrs[i] } else { 0 };
    ctx.x[2] = pick(0);
    ctx.x[3] = pick(1);
    ctx.x[4] = pick(2);
    ctx.x[5] = pick(3);
}

impl Objects {
    /// Makes the scheduler agree with a thread's IPC state.
    fn sync(&mut self, t: usize) {
        let _ = if self.threads.state(t) == ThreadState::Running {
            self.sched.wake(t)
        } else {
            self.sched.block(t)
        };
    }

    fn schedule(&mut self) {
        self.current = self.sched.choose().map_or(NONE, |t| t as u16);
    }

    fn resume(&mut self, t: usize) {
        let _ = self.threads.resume(t);
        self.sync(t);
    }

    /// Stops a thread: out of any queue, its pending call's reply binding dropped.
    fn suspend(&mut self, t: usize) {
        self.threads.cancel(t, &mut self.eps, &mut self.ntfns);
        let r = core::mem::replace(&mut self.tcbs[t].caller_reply, NONE);
        if r != NONE {
            self.replies[r as usize].caller = NONE;
        }
        self.tcbs[t].fault_label = 0;
        self.sync(t);
    }

    /// Message register `i` of thread `t`.
    fn mr(&mut self, m: &mut impl Machine, t: usize, i: usize) -> u64 {
        let tcb = &self.tcbs[t];
        if i < syscall::REGISTER_MESSAGE_REGISTERS {
            return tcb.ctx.x[2 + i];
        }
        let pa = tcb.ipc_buffer_pa;
        if pa == 0 {
            return 0;
        }
        m.page(pa).map_or(0, |p| p[ipc_buffer::MR0 + i])
    }

    fn set_mr(&mut self, m: &mut impl Machine, t: usize, i: usize, value: u64) {
        if i < syscall::REGISTER_MESSAGE_REGISTERS {
            self.tcbs[t].ctx.x[2 + i] = value;
            return;
        }
        let pa = self.tcbs[t].ipc_buffer_pa;
        if pa != 0
            && let Some(p) = m.page(pa)
        {
            p[ipc_buffer::MR0 + i] = value;
        }
    }

    /// Copies a message from `from` to `to`: the badge in `x0`, the tag in `x1`, and the
    /// message registers (past the first four only when both have an IPC buffer).
    fn transfer(
        &mut self,
        m: &mut impl Machine,
        from: usize,
        to: usize,
        badge: u64,
        info: MessageInfo,
    ) {
        let f = &self.tcbs[from];
        let (fault_label, from_buffer) = (f.fault_label, f.ipc_buffer_pa);
        let (label, len) = if fault_label != 0 {
            let mrs = f.fault_mrs;
            set_registers(&mut self.tcbs[to].ctx, mrs, 4);
            (fault_label, 4)
        } else {
            let regs = info.length().min(syscall::REGISTER_MESSAGE_REGISTERS);
            let sent = [f.ctx.x[2], f.ctx.x[3], f.ctx.x[4], f.ctx.x[5]];
            set_registers(&mut self.tcbs[to].ctx, sent, regs);
            // Past the registers only when both have an IPC buffer.
            let len = if from_buffer == 0 || self.tcbs[to].ipc_buffer_pa == 0 {
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

    /// A call from `caller` reached `server`: bind the server's reply object to the caller
    /// and lend a passive server the caller's scheduling context. Without a reply object
    /// the call fails at once.
    fn bind_reply(&mut self, caller: usize, server: usize) {
        let r = self.tcbs[server].recv_reply;
        if r == NONE || !self.replies[r as usize].live || self.replies[r as usize].caller != NONE {
            let _ = self.threads.reply(server, caller);
            self.tcbs[caller].ctx.x[0] = 0;
            self.tcbs[caller].ctx.x[1] = MessageInfo::new(Error::IllegalOperation as u64, 0).0;
            self.tcbs[caller].fault_label = 0;
            self.sync(caller);
            return;
        }
        self.replies[r as usize].caller = caller as u16;
        self.replies[r as usize].server = server as u16;
        self.tcbs[caller].caller_reply = r;
        if !self.sched.has_sc(server) {
            let _ = self.sched.lend(caller, server);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        m: &mut impl Machine,
        t: usize,
        ep: usize,
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

    fn recv(&mut self, m: &mut impl Machine, t: usize, ep: usize, blocking: bool) {
        // A bound notification with bits pending is delivered first.
        let bound = self.tcbs[t].bound;
        if bound != NONE && self.ntfns[bound as usize].active {
            self.ntfns[bound as usize].active = false;
            let bits = core::mem::take(&mut self.ntfns[bound as usize].word);
            let ctx = &mut self.tcbs[t].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            return;
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

    fn reply(&mut self, m: &mut impl Machine, t: usize, r: usize, info: MessageInfo) {
        let caller = self.replies[r].caller;
        if caller == NONE {
            return;
        }
        let caller = caller as usize;
        let server = self.replies[r].server as usize;
        self.replies[r].caller = NONE;
        self.tcbs[caller].caller_reply = NONE;
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
        if self.sched.runs_on_loan(server) {
            let _ = self.sched.give_back(server, caller);
        }
        self.sync(caller);
    }

    fn wait(&mut self, t: usize, n: usize, blocking: bool) {
        match self.threads.wait(&mut self.ntfns[n], n, t, blocking) {
            Ok(WaitOutcome::Got(bits)) => {
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = bits;
                ctx.x[1] = 0;
            }
            Ok(WaitOutcome::Blocked) => self.sync(t),
            Err(_) => {}
        }
    }

    /// Signals notification `n` with `badge`: a waiter gets it, or the thread bound to it
    /// if that thread waits on an endpoint, or the bits wait in the word.
    fn signal(&mut self, n: usize, badge: u64) {
        if n >= MAX_NOTIFICATIONS || !self.ntfn_pool.live[n] {
            return;
        }
        if let Some((woken, bits)) = self.threads.signal(&mut self.ntfns[n], badge) {
            let ctx = &mut self.tcbs[woken].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.sync(woken);
            return;
        }
        let bound = self.ntfn_bound[n];
        if bound != NONE
            && matches!(
                self.threads.state(bound as usize),
                ThreadState::Receiving(_)
            )
        {
            let b = bound as usize;
            self.ntfns[n].active = false;
            let bits = core::mem::take(&mut self.ntfns[n].word);
            self.threads.cancel(b, &mut self.eps, &mut self.ntfns);
            let _ = self.threads.resume(b);
            let ctx = &mut self.tcbs[b].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.sync(b);
        }
    }
}
