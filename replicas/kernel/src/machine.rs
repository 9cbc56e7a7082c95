//! The replica's portable kernel (`atoll_kernel_core::kernel`) and the machine it runs on.
//!
//! The portable kernel holds every object and decides who runs; [`Hw`] is the machine as
//! it sees it: this replica's RAM through the linear map, the threads' debug lines, TLB
//! maintenance, interrupts and doorbells. All of it lives in one static under the replica
//! lock ([`with`]). The timer, doorbell and device interrupts reach the kernel here.
//!
//! Every core of the replica runs threads. Each kernel entry first tells the portable
//! kernel which core it serves and the counter's time ([`Inner::enter`]: budgets are
//! charged exactly, at every entry); when it is done, the other cores whose choice it
//! changed are interrupted ([`kick`]), one interrupt at a time per core.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering;

use atoll_abi::limits::MAX_CORES;
use atoll_abi::limits::{LOG_LINE_BYTES, PAGE_SIZE, PD_TIMER_INTID};
use atoll_abi::shared::PdState;
use atoll_abi::syscall::fault;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::id::{CoreId, Table, ThreadId};
use atoll_kernel_core::kernel::{Kernel, MAX_THREADS, Machine};
use atoll_kernel_core::line::LineBuf;

use crate::console::{self, klog};
use crate::fp::FpSwitch;
use crate::replica::Replica;
use crate::sync::IrqSpinLock;
use crate::{arch, doorbell};

/// The replica's kernel and the CPU-side state that goes with it, under the replica lock.
struct KernelCell {
    lock: IrqSpinLock,
    inner: UnsafeCell<Inner>,
}

/// Each thread's debug output line so far.
type Lines = Table<ThreadId, LineBuf<LOG_LINE_BYTES>, MAX_THREADS>;

/// The kernel and what the CPU side keeps with it.
pub struct Inner {
    /// The portable kernel.
    pub kernel: Kernel,
    /// Each core's user address space (root, ASID), to skip needless switches.
    pub space: [(u64, u16); MAX_CORES],
    /// Each core's timer deadline, to skip needless writes: its complement, so that the
    /// initial zeros read as `u64::MAX`, stopped (and the kernel's state takes no room in
    /// its image). `!0`, deadline 0, forces the next write.
    pub armed: [u64; MAX_CORES],
    /// The threads' FP/SIMD registers.
    pub fp: FpSwitch,
    lines: Lines,
    /// Whether the initialiser was built: before, nothing is charged or watched.
    pub started: bool,
}

// SAFETY: `inner` is only reached through `with`, which holds `lock`.
unsafe impl Sync for KernelCell {}

static KERNEL: KernelCell = KernelCell {
    lock: IrqSpinLock::new(),
    inner: UnsafeCell::new(Inner {
        kernel: Kernel::new(),
        space: [(0, 0); MAX_CORES],
        armed: [0; MAX_CORES],
        fp: FpSwitch::new(),
        lines: Table::filled(LineBuf::new()),
        started: false,
    }),
};

/// Runs `f` on the replica's kernel state with the replica lock held.
///
/// The cores the kernel asked to choose again are interrupted once the lock is released, so
/// that they do not wait for it.
pub fn with<T>(f: impl FnOnce(&mut Inner) -> T) -> T {
    locked(KERNEL.lock.lock(), f)
}

/// [`with`] on a path where IRQs are masked already: serving an exception from EL0.
#[inline(always)]
pub fn with_masked<T>(f: impl FnOnce(&mut Inner) -> T) -> T {
    locked(KERNEL.lock.lock_masked(), f)
}

/// Runs `f` on the kernel state under `guard`, a hold on the replica lock, then releases
/// it and interrupts the cores the kernel asked to choose again.
#[inline(always)]
fn locked<G, T>(guard: G, f: impl FnOnce(&mut Inner) -> T) -> T {
    // SAFETY: `guard` holds the lock for the whole borrow, so it is the only one.
    let inner = unsafe { &mut *KERNEL.inner.get() };
    let out = f(inner);
    let kicks = inner.kernel.take_kicks();
    drop(guard);
    if kicks != 0
        && let Some(r) = crate::replica::replica()
    {
        kick_all(r, kicks);
    }
    out
}

/// Interrupts `core` so that it enters the kernel and chooses again, unless an interrupt
/// is already on its way there (it clears the mark when it chooses).
pub fn kick(r: &Replica, core: usize) {
    if let Some(pending) = r.kick_pending.get(core)
        && !pending.swap(true, Ordering::AcqRel)
    {
        let core = core as u32;
        r.gic
            .send_sgi(r.spec.gic.doorbell_sgi, r.core_mpidr(core), core);
    }
}

/// Interrupts every core of `cores` (bit `c` for core `c`).
fn kick_all(r: &Replica, cores: u32) {
    for core in 0..MAX_CORES {
        if cores & (1 << core) != 0 {
            kick(r, core);
        }
    }
}

/// The machine as the portable kernel sees it.
pub struct Hw<'a> {
    r: &'a Replica,
    lines: &'a mut Lines,
    fp: &'a mut FpSwitch,
}

impl Inner {
    /// A kernel entry on `core` (this core) now: the portable kernel charges the time since
    /// the core's last entry and serves this core from here on.
    pub fn enter(&mut self, core: usize) {
        if let Some(c) = CoreId::new(core) {
            self.kernel.enter(c, arch::counter());
        }
    }

    /// Arms `core`'s (this core's) timer for its next scheduling event, and on the primary
    /// core for the replica's housekeeping tick; stops it when nothing is due.
    /// Unless `force`d (the timer fired: its deadline has passed), the timer is left as it
    /// is when the kernel says the core's next event has not moved.
    #[inline]
    pub fn arm_timer(&mut self, r: &Replica, core: usize, force: bool) {
        let ours = self.started && self.kernel.core().index() == core;
        let changed = ours && self.kernel.timer_changed();
        if changed || force {
            self.write_timer(r, core, ours);
        }
    }

    /// [`Inner::arm_timer`] once the core's next event may have moved (`ours`: the
    /// kernel's current entry serves this core, whose next event counts).
    #[inline(never)]
    fn write_timer(&mut self, r: &Replica, core: usize, ours: bool) {
        let mut due = if ours {
            self.kernel.keep_next_event().unwrap_or(u64::MAX)
        } else {
            u64::MAX
        };
        if core == r.spec.primary_core() as usize
            && let Some(tick) = r.next_tick.get(core)
        {
            due = due.min(tick.load(Ordering::Relaxed));
        }
        let Some(armed) = self.armed.get_mut(core) else {
            return;
        };
        if due == !*armed {
            return;
        }
        *armed = !due;
        if due == u64::MAX {
            arch::disarm_timer();
        } else {
            arch::arm_timer_at(due);
        }
    }

    /// The kernel and the machine it works on (this replica, and the threads' output
    /// lines), borrowed apart.
    pub fn kernel_and_hw<'a>(&'a mut self, r: &'a Replica) -> (&'a mut Kernel, Hw<'a>) {
        let hw = Hw {
            r,
            lines: &mut self.lines,
            fp: &mut self.fp,
        };
        (&mut self.kernel, hw)
    }
}

impl Hw<'_> {
    /// The kernel's pointer to `[pa, pa + size)` if it lies in this replica's RAM.
    fn linear(&self, pa: u64, size: u64) -> Option<*mut u8> {
        let ram = self.r.spec.ram;
        let end = pa.checked_add(size)?;
        (pa >= ram.base && end <= ram.end()).then(|| self.r.linear(pa))
    }
}

impl Machine for Hw<'_> {
    fn page(&mut self, pa: u64) -> Option<&mut [u64; 512]> {
        if !pa.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        let p = self.linear(pa, PAGE_SIZE)?;
        // SAFETY: the page is replica RAM, mapped by the linear map; the kernel's objects
        // (tables, IPC buffers) are only touched under the replica lock, which is held.
        Some(unsafe { &mut *p.cast::<[u64; 512]>() })
    }

    fn zero(&mut self, pa: u64, size: u64) -> bool {
        // Only memory past the loader's area: what the loader filled keeps its contents.
        let free = self.r.spec.ram.base.saturating_add(self.r.spec.free_offset);
        if pa < free {
            return false;
        }
        let Some(p) = self.linear(pa, size) else {
            return false;
        };
        // SAFETY: free replica RAM, retyped into the object being created, which nothing
        // else uses.
        unsafe { core::ptr::write_bytes(p, 0, size as usize) };
        true
    }

    fn put_char(&mut self, thread: ThreadId, c: u8) {
        let line = &mut self.lines[thread];
        if c == b'\n' {
            console::log_raw(self.r, line.as_bytes());
            line.clear();
        } else {
            // Bytes pass through, but those the shared console may not take.
            line.push_bytes(&[atoll_kernel_core::line::console_byte(c)]);
        }
    }

    fn unhandled_fault(&mut self, thread: ThreadId, label: u64, mrs: &[u64; 4]) {
        let thread = thread.index();
        let [pc, a, b, c] = *mrs;
        let tail = "it is stopped, the replica goes on";
        match label {
            fault::VM_FAULT => klog!(
                "ERROR",
                "thread {thread} faulted: {} FAR {a:#x} PC {pc:#x}; {tail}",
                Syndrome(c)
            ),
            fault::USER_EXCEPTION => klog!(
                "ERROR",
                "thread {thread} faulted: {} PC {pc:#x}; {tail}",
                Syndrome(b)
            ),
            fault::CAP_FAULT => klog!(
                "ERROR",
                "thread {thread} faulted: no usable capability at address {a:#x} for system call {} PC {pc:#x}; {tail}",
                b as i64
            ),
            fault::UNKNOWN_SYSCALL => klog!(
                "ERROR",
                "thread {thread} faulted: unknown system call {} PC {pc:#x}; {tail}",
                b as i64
            ),
            _ => klog!(
                "ERROR",
                "thread {thread} faulted ({label}) PC {pc:#x}; {tail}"
            ),
        }
    }

    fn flush_tlb(&mut self, asid: u16, va: Option<u64>) {
        // A one-core replica's address spaces are used on that core alone, and no other
        // replica's core ever loads one of its ASIDs: nothing outside this core can hold
        // the translations. A larger replica's other cores may, and the broadcast that
        // reaches them reaches the whole chip, so it is counted.
        let broadcast = !self.r.single_core();
        arch::flush_user_tlb(asid, va, broadcast);
        if broadcast {
            self.r.count(arch::this_core(), |c| &c.broadcasts);
        }
    }

    fn claim_irq(&mut self, irq: u32, _edge: bool) -> bool {
        if irq == PD_TIMER_INTID {
            // The thread that acknowledges it programs the timer of the core it runs on
            // from EL0: its accesses trap and the kernel makes them for it
            // (`el0::emulate_pd_timer`).
            return true;
        }
        // The loader routed (and set the trigger of) every shared interrupt the spec gives
        // us.
        self.r
            .spec
            .irq_routes()
            .iter()
            .any(|route| route.intid == irq)
    }

    fn set_irq_enabled(&mut self, irq: u32, enabled: bool) {
        // A shared interrupt is enabled at the distributor, from any core. A per-core one
        // (the PD timer) is the calling core's: the core of the thread that acknowledges
        // it, whose timer that thread programs, or the core that took it. A GICv2 banks
        // the register per core, so no other core's could be reached anyway. It cannot
        // fail: this core's redistributor was found when the core came up.
        let mpidr = atoll_boards::firmware::current_affinity();
        let _ = self.r.gic.set_enabled(irq, mpidr, enabled);
    }

    fn ring_doorbell(&mut self, replica: u32, word: u32, bits: u64) -> bool {
        doorbell::ring_pd_word(self.r, replica as usize, word, bits)
    }

    fn take_pending_word(&mut self, word: u32) -> Option<u64> {
        doorbell::take_pd_word(self.r, word)
    }

    fn replica_epochs(&mut self) -> (usize, [u32; atoll_abi::limits::MAX_REPLICAS]) {
        let mut epochs = [0; atoll_abi::limits::MAX_REPLICAS];
        for (epoch, status) in epochs.iter_mut().zip(self.r.statuses()) {
            *epoch = status.epoch.load(core::sync::atomic::Ordering::Acquire);
        }
        (self.r.replica_count(), epochs)
    }

    fn counter_hz(&self) -> u64 {
        self.r.counter_hz
    }

    fn thread_created(&mut self, thread: ThreadId) {
        self.lines[thread].clear();
        self.fp.thread_created(thread);
    }

    fn firmware_call(&mut self, regs: [u64; 8]) -> [u64; 8] {
        atoll_boards::firmware::forward(self.r.psci, regs)
    }

    fn publish_pd(&mut self, index: u32, state: PdState, faults: u32) {
        // The kernel checked the index when the thread was named; a record past the table
        // is ignored all the same. Each record has this replica as its one writer.
        if let Some(record) = usize::try_from(index)
            .ok()
            .and_then(|i| self.r.shared.pds.get(i))
        {
            record.publish(state, faults);
        }
        if state == PdState::Running {
            crate::restart::pd_started();
        }
    }

    fn stall(&mut self, core: CoreId) -> bool {
        let c = core.index();
        let (Some(at_el0), Some(svc)) = (self.r.at_el0.get(c), self.r.entry_svc.get(c)) else {
            return false;
        };
        if at_el0.load(Ordering::Acquire) {
            kick(self.r, c);
            // It clears the mark once its thread's registers are saved (`el0.rs`); it is
            // at EL0 with interrupts on, so it takes the interrupt.
            while at_el0.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        }
        svc.load(Ordering::Relaxed)
    }
}

/// Runs one kernel entry point on `core` (this core): the time since the core's last
/// entry is charged first, and the cores whose choice the entry changed are interrupted
/// after it. Interrupts are served with IRQs masked, as taking one left them.
fn entry(r: &Replica, core: usize, f: impl FnOnce(&mut Kernel, &mut Hw<'_>)) {
    with_masked(|inner| {
        // Before the initialiser starts nothing runs, is charged or watched.
        if !inner.started {
            return;
        }
        inner.enter(core);
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        f(kernel, &mut hw);
    });
}

/// The timer fired on `core`: a budget ran out, a refill is due, a domain slot ended, or
/// (on the primary core) the housekeeping tick is due. The timer is armed again for
/// whatever is due next.
pub fn on_timer(r: &Replica, core: usize) {
    with_masked(|inner| {
        if inner.started {
            inner.enter(core);
            inner.kernel.timer();
        }
        // The deadline has passed: whatever the cache says, the timer must be written.
        if let Some(armed) = inner.armed.get_mut(core) {
            *armed = !0; // deadline 0
        }
        inner.arm_timer(r, core, true);
    });
}

/// The doorbell SGI arrived on `core`: another core of the replica asked it to choose
/// again, and on the primary core, another replica may have rung the PDs' cross-replica
/// channel words, which are taken and their notifications signalled.
pub fn on_doorbell_sgi(r: &Replica, core: usize, primary: bool) {
    entry(r, core, |kernel, hw| {
        // Under the lock, just before this core chooses: a kick made after this sends a new
        // interrupt (`verification/src/smp_wake.rs` checks the order). Kicks come only from
        // kernel entries, so none is marked before the initialiser starts.
        if let Some(pending) = r.kick_pending.get(core) {
            pending.store(false, Ordering::Release);
        }
        if primary {
            kernel.doorbell(hw);
        } else {
            kernel.timer();
        }
    });
}

/// A device interrupt owned by this replica, taken on `core` (any of the replica's): its
/// handler's notification is signalled, and the core of a thread that wakes is kicked if it
/// is another.
pub fn on_device_irq(r: &Replica, core: usize, irq: u32) {
    entry(r, core, |kernel, hw| kernel.interrupt(hw, irq));
}
