//! The replica's portable kernel (`atoll_kernel_core::kernel`) and the machine it runs on.
//!
//! The portable kernel holds every object and decides who runs; [`Hw`] is the machine as
//! it sees it: this replica's RAM through the linear map, the threads' debug lines, TLB
//! maintenance, interrupts and doorbells. All of it lives in one static under the replica
//! lock ([`with`]). The timer, doorbell and device interrupts reach the kernel here.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::limits::{LOG_LINE_BYTES, PAGE_SIZE, PD_TIMER_INTID};
use atoll_abi::syscall::fault;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::id::{Table, ThreadId};
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
    /// The thread this core last returned to.
    pub loaded: Option<ThreadId>,
    /// Its address space (root, ASID), to skip needless switches.
    pub space: (u64, u16),
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
        loaded: None,
        space: (0, 0),
        fp: FpSwitch::new(),
        lines: Table::filled(LineBuf::new()),
        started: false,
    }),
};

/// Runs `f` on the replica's kernel state with the replica lock held.
pub fn with<T>(f: impl FnOnce(&mut Inner) -> T) -> T {
    let _guard = KERNEL.lock.lock();
    // SAFETY: the lock is held for the whole borrow, so it is the only one.
    f(unsafe { &mut *KERNEL.inner.get() })
}

/// Counter value when budgets were last charged.
static LAST_CHARGE: AtomicU64 = AtomicU64::new(0);

/// Budgets are charged from now on (the first thread is about to run).
pub fn start_charging() {
    LAST_CHARGE.store(arch::counter(), Ordering::Relaxed);
}

/// The machine as the portable kernel sees it.
pub struct Hw<'a> {
    r: &'a Replica,
    lines: &'a mut Lines,
    fp: &'a mut FpSwitch,
}

impl Inner {
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
        arch::flush_user_tlb(asid, va);
    }

    fn claim_irq(&mut self, irq: u32, _edge: bool) -> bool {
        if irq == PD_TIMER_INTID {
            // The tool puts the timer's PD alone in its replica; it programs the timer
            // from EL0 on this core, the one that runs the replica's threads.
            arch::allow_user_physical_timer();
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
        // A per-core interrupt (the PD timer) is this core's: the one that runs the
        // replica's threads. It cannot fail: this core's redistributor was found when the
        // core came up.
        let mpidr = self.r.core_mpidr(self.r.spec.primary_core());
        let _ = self.r.gic.set_enabled(irq, mpidr, enabled);
    }

    fn ring_doorbell(&mut self, replica: u32, word: u32, bits: u64) -> bool {
        doorbell::ring_pd_word(self.r, replica as usize, word, bits)
    }

    fn take_pending_word(&mut self, word: u32) -> Option<u64> {
        doorbell::take_pd_word(self.r, word)
    }

    fn ticks_per_us(&self) -> u64 {
        (self.r.counter_hz / 1_000_000).max(1)
    }

    fn thread_created(&mut self, thread: ThreadId) {
        self.lines[thread].clear();
        self.fp.thread_created(thread);
    }

    fn firmware_call(&mut self, regs: [u64; 8]) -> [u64; 8] {
        atoll_boards::firmware::forward(self.r.psci, regs)
    }
}

/// The timer fired on the primary core: budgets pay for the time since the last charge.
pub fn on_timer() {
    let now = arch::counter();
    let elapsed = now.saturating_sub(LAST_CHARGE.swap(now, Ordering::Relaxed));
    with(|inner| {
        if inner.started {
            inner.kernel.timer(elapsed);
        }
    });
}

/// The doorbell SGI arrived on the primary core: the PDs' cross-replica channel words are
/// taken and their notifications signalled.
pub fn on_doorbell(r: &Replica) {
    with(|inner| {
        // Before the initialiser starts nothing is watched; it takes what is pending when
        // it sets each watch up.
        if inner.started {
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            kernel.doorbell(&mut hw);
        }
    });
}

/// A device interrupt owned by this replica: its handler's notification is signalled.
pub fn on_device_irq(r: &Replica, irq: u32) {
    with(|inner| {
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        kernel.interrupt(&mut hw, irq);
    });
}
