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

mod boot;
mod cnode;
mod domain;
mod doorbell;
mod endpoint;
mod entry;
#[cfg(any(test, feature = "fake-machine"))]
pub mod fake;
mod fastpath;
mod invoke;
mod irq;
mod message;
mod notification;
mod objects;
mod reply;
mod sched_context;
mod smc;
mod syscall;
mod tcb;
mod untyped;
mod vspace;

#[cfg(test)]
mod tests;

use crate::cap::{Cap, CapTable};
use crate::id::{CAP_SLOTS, CoreId, SlotId, TCB_SLOTS_BASE, Table, TcbSlot, ThreadId, VSpaceId};
use crate::ipc::ThreadState;

pub use crate::id::{
    MAX_DOORBELLS, MAX_ENDPOINTS, MAX_IRQS, MAX_NOTIFICATIONS, MAX_REPLIES, MAX_SCHED_CONTEXTS,
    MAX_THREADS, MAX_VSPACES,
};
pub use doorbell::MAX_WATCHES;
pub use fastpath::Entered;

use atoll_abi::object::ObjectKind;
use atoll_abi::shared::PdState;
use objects::Objects;
use syscall::Target;

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
    /// Every replica's epoch (how many times it was restarted), and how many replicas
    /// there are (the rest of the array is zero).
    fn replica_epochs(&mut self) -> (usize, [u32; atoll_abi::limits::MAX_REPLICAS]);
    /// The counter's frequency in Hz (scheduling parameters come in microseconds).
    fn counter_hz(&self) -> u64;
    /// A new thread was made with id `thread`, which a destroyed thread may have had:
    /// whatever the machine keeps per thread (FP registers, a part-written debug line)
    /// must start afresh, so nothing of the old thread reaches the new one.
    fn thread_created(&mut self, thread: ThreadId);
    /// Calls the firmware with `x0`–`x7` (through the board's firmware conduit) and
    /// returns the registers it leaves in them.
    fn firmware_call(&mut self, regs: [u64; 8]) -> [u64; 8];
    /// Publishes the state and fault count of the PD whose index in the system directory
    /// is `index` (below `atoll_abi::shared::PD_RECORDS`: the kernel checks it when the
    /// thread is named), in its record of the status page's PD table. Only threads the
    /// boot program named (`TCB_SetStatusIndex`) publish.
    fn publish_pd(&mut self, index: u32, state: PdState, faults: u32);
    /// Stops `core`, another core of the replica that may be running a thread at EL0: it
    /// is interrupted, and this returns once the thread's registers are saved in its
    /// context (the core then waits for the replica's kernel). Returns whether the core
    /// had trapped for a system call (its thread's `pc` is then just past the `svc`).
    fn stall(&mut self, core: CoreId) -> bool;
}

/// `us` microseconds in counter ticks at `hz`, exactly (62.5 MHz is 62.5 ticks a
/// microsecond), `None` past `u64::MAX`.
fn ticks_from_us(us: u64, hz: u64) -> Option<u64> {
    let ticks = u128::from(us).checked_mul(u128::from(hz))? / 1_000_000;
    u64::try_from(ticks).ok()
}

/// The replica's capability table: CNodes' slots, then the TCBs' own at the top.
type Caps = CapTable<SlotId, CAP_SLOTS, TCB_SLOTS_BASE>;

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
    /// The replica's cores (bit `c` for core `c`); the initialiser runs on the first.
    pub cores: u32,
    /// The smallest budget worth running on (counter ticks): a sporadic context's refill
    /// smaller than this is merged into the next.
    pub min_budget: u64,
    /// Its first registers.
    pub ctx: Context,
}

/// The last CNode level a thread's capability lookups ended in, and the capability
/// table's generation when it was found ([`Kernel::resolve`]).
#[derive(Clone, Copy, Debug)]
struct LookupCache {
    generation: u64,
    leaf: crate::cap::Leaf,
}

impl LookupCache {
    /// Matches no generation the table reaches (it is never 0).
    const NONE: LookupCache = LookupCache {
        generation: 0,
        leaf: crate::cap::Leaf {
            high: 0,
            first: 0,
            // Never read (no generation matches); 0 keeps a new kernel's state all zeros.
            radix: 0,
        },
    };
}

/// One replica's kernel state.
pub struct Kernel {
    caps: Caps,
    /// Each thread's last lookup level (`Kernel::resolve`).
    lookup_cache: Table<ThreadId, LookupCache, MAX_THREADS>,
    /// Each thread's address space as last found, with the capability table's generation
    /// then (`Kernel::address_space`).
    space_cache: Table<ThreadId, (u64, Option<(u64, u16)>), MAX_THREADS>,
    /// Every object but the capabilities, apart so that a deletion's callback can reach it.
    objects: Objects,
    /// Whether the fast path (`fastpath.rs`) is off: only tests that compare the two paths
    /// turn it off, so other builds have no flag to test on every system call.
    #[cfg(test)]
    no_fastpath: bool,
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
            caps: CapTable::new(0),
            lookup_cache: Table::filled(LookupCache::NONE),
            space_cache: Table::filled((0, None)),
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

    /// The thread this core is to run now, if any.
    pub fn current(&self) -> Option<ThreadId> {
        self.objects.current[self.objects.core()]
    }

    /// A kernel entry on core `core` at counter time `now`: the core's running scheduling
    /// context pays for the time since its last entry (charged if that spends its budget),
    /// threads whose budget is back become ready, and the domain schedule moves on. Every
    /// entry point below then serves this core.
    pub fn enter(&mut self, core: CoreId, now: u64) {
        self.objects.set_core(core);
        if self.objects.sched.update(core, now) {
            self.objects.unchanged = false;
        }
    }

    /// The core the current kernel entry serves.
    pub fn core(&self) -> CoreId {
        self.objects.core()
    }

    /// The thread this core last returned to, whose registers an exception from EL0 saved:
    /// `None` when it was idle, or when another core stopped it and took the entry over
    /// ([`Machine::stall`]).
    pub fn loaded(&self) -> Option<ThreadId> {
        self.objects.loaded[self.objects.core()]
    }

    /// The cores to interrupt so that they choose again (bit `c` for core `c`), taken.
    pub fn take_kicks(&mut self) -> u32 {
        core::mem::take(&mut self.objects.kicks)
    }

    /// Starts counting time on this core from `now` (its first thread is about to run).
    pub fn start_core(&mut self, now: u64) {
        self.objects.sched.start_core(self.objects.core(), now);
    }

    /// Before an invocation that may change what another core's thread runs with (its
    /// registers, its state, its capabilities or scheduling): every other core running a
    /// thread is stopped, and its pending entry is taken over, so that no core returns to
    /// or saves into a thread this entry changes. A system call the stopped thread was
    /// making is made again when it next runs (the registers it made it with are intact).
    #[cold]
    pub(super) fn stall_others(&mut self, m: &mut impl Machine) {
        let me = self.objects.core();
        for c in CoreId::all() {
            if c == me {
                continue;
            }
            let Some(t) = self.objects.loaded[c] else {
                continue;
            };
            let in_syscall = m.stall(c);
            let tcb = &mut self.objects.tcbs[t];
            if in_syscall && tcb.live {
                restart_point(&mut tcb.ctx);
            }
            self.objects.loaded[c] = None;
            // It chooses again when it takes the kernel after this entry (the machine
            // interrupted it).
            self.objects.current[c] = None;
        }
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

    /// The translation table root and ASID of a thread's address space. What it was last
    /// found to be is kept with the capability table's generation: only a change to the
    /// table (a new space for the thread, a space or the thread destroyed or made) changes
    /// it.
    #[inline]
    pub fn address_space(&mut self, thread: ThreadId) -> Option<(u64, u16)> {
        let generation = self.caps.generation();
        let kept = self.space_cache[thread];
        if kept.0 == generation {
            #[cfg(test)]
            assert_eq!(kept.1, self.find_address_space(thread));
            return kept.1;
        }
        let space = self.find_address_space(thread);
        self.space_cache[thread] = (generation, space);
        space
    }

    /// [`Kernel::address_space`] from the thread's own slot.
    fn find_address_space(&self, thread: ThreadId) -> Option<(u64, u16)> {
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

    /// Whether this core's next event ([`Kernel::next_event`]) may have moved since the
    /// machine last asked (the mark is taken).
    pub fn timer_changed(&mut self) -> bool {
        self.objects.sched.take_timer_change(self.objects.core())
    }

    /// [`Kernel::next_event`], kept so that a switch on the fast path can tell that
    /// nothing is due yet without working it out: the machine asks for it whenever
    /// [`Kernel::timer_changed`] says it may have moved.
    pub fn keep_next_event(&mut self) -> Option<u64> {
        self.objects.sched.keep_next_event(self.objects.core())
    }

    /// When (counter time) this core must enter the kernel next: its running context's
    /// budget ends, a thread waiting for budget on it is refilled, or the domain slot ends.
    pub fn next_event(&self) -> Option<u64> {
        self.objects.sched.next_event(self.objects.core())
    }

    /// Whether the replica has settled: no core runs a thread or has one ready (another core
    /// may not have chosen it yet), and no thread waits
    /// for its budget (a core with nothing to run then is only between periods).
    pub fn settled(&self) -> bool {
        let cores = self.objects.cores;
        CoreId::all().all(|c| {
            cores & c.bit() == 0
                || (self.objects.current[c].is_none() && self.objects.sched.choose(c).is_none())
        }) && !self.objects.sched.any_waiting_for_budget()
    }

    /// The machine has loaded the current thread (its address space, FP access and budget
    /// timer): from here on, [`Kernel::caller_goes_on`] tracks what changes.
    pub fn note_loaded(&mut self) {
        let me = self.objects.core();
        self.objects.loaded[me] = self.objects.current[me];
        self.objects.unchanged = true;
    }

    /// Whether the caller of the last system call, `t`, goes on as the machine last loaded
    /// it: it is still the current thread, and since it was loaded no object was invoked
    /// and no fault raised, which is how an address space, a scheduling parameter or a
    /// budget changes. (Only system calls run between two loads: every other kernel entry
    /// chooses and loads a thread again.) The machine can then return to it as it is.
    pub fn caller_goes_on(&self, t: ThreadId) -> bool {
        self.current() == Some(t) && self.objects.unchanged
    }
}

/// How a thread blocked in a system call is taken out of it: seL4's restart point. Its
/// saved `pc` is just past the `svc`; moving it back makes the thread make the call again
/// when it next runs, with the registers it made it with (a receive receives again, and
/// nothing it did not get is reported as received).
fn restart_point(ctx: &mut Context) {
    ctx.pc = ctx.pc.wrapping_sub(SVC_BYTES);
}
