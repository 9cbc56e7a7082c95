//! Replica-local synchronisation: a one-time initialised cell and an IRQ-safe spin lock.
//! Both live in the replica's own kernel image; no other replica can reach them.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use atoll_abi::limits::MAX_CORES;
use atoll_abi::shared::CoreCounters;

use crate::arch;

/// Where each core counts its waits for a lock: its interference counters on the status
/// page, given once the replica's state is set up (`count_waits_in`); a wait before that
/// is not counted.
static WAIT_COUNTERS: [InitOnce<&'static CoreCounters>; MAX_CORES] =
    [const { InitOnce::new() }; MAX_CORES];

/// Has core `core` count its waits for a lock in `counters` (the replica's primary core,
/// once for each core of the replica, before the others start).
pub fn count_waits_in(core: usize, counters: &'static CoreCounters) {
    if let Some(slot) = WAIT_COUNTERS.get(core) {
        let _ = slot.init(counters);
    }
}

/// A value written once by the replica's primary core and read by every core after.
pub struct InitOnce<T> {
    ready: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once before `ready` is released and never mutated after;
// readers acquire `ready` first. `T: Sync` makes the shared reads sound.
unsafe impl<T: Sync> Sync for InitOnce<T> {}

impl<T> InitOnce<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            ready: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Stores the value and returns it; `None` (the value is dropped) if it was already set.
    pub fn init(&self, value: T) -> Option<&T> {
        if self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: only the replica's primary core calls `init`, once, before any reader can
        // observe `ready`; no reference to the contents exists yet.
        unsafe { (*self.value.get()).write(value) };
        self.ready.store(true, Ordering::Release);
        arch::send_event();
        self.get()
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&T> {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: `ready` is only set after the value was written, and it is never
            // written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

/// A spin lock that masks IRQs on the holding core, so an interrupt handler on the same
/// core can never deadlock against the code it interrupted.
pub struct IrqSpinLock {
    locked: AtomicBool,
}

/// Proof of holding an [`IrqSpinLock`].
pub struct IrqGuard<'a> {
    lock: &'a IrqSpinLock,
    saved: u64,
}

impl IrqSpinLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
        }
    }

    /// Takes the lock, spinning.
    #[inline(always)]
    pub fn lock(&self) -> IrqGuard<'_> {
        let saved = arch::irq_save();
        self.acquire();
        IrqGuard { lock: self, saved }
    }

    /// Takes the lock, spinning, on a path where IRQs are masked already (an exception
    /// taken from EL0 masks them, and the kernel leaves them masked while it serves one):
    /// there is no mask to save, and the guard leaves it as it is.
    #[inline(always)]
    pub fn lock_masked(&self) -> MaskedGuard<'_> {
        debug_assert!(arch::irqs_masked());
        self.acquire();
        MaskedGuard { lock: self }
    }

    #[inline(always)]
    fn acquire(&self) {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.spin();
        }
    }

    #[inline(always)]
    fn release(&self) {
        self.locked.store(false, Ordering::Release);
        // Wakes the cores waiting for the lock (`IrqSpinLock::spin`).
        arch::send_event();
    }

    /// Waits for the lock held by another core, serving that core's requests meanwhile, and
    /// counts the wait in the core's interference counters.
    #[cold]
    #[inline(never)]
    fn spin(&self) {
        let core = arch::this_core();
        let since = arch::counter();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // The lock's holder may be waiting for this core to save its FP registers.
            crate::fp::service(arch::this_core());
            // Until the holder releases the lock (or asks for the registers): its release
            // sends the event. Under QEMU this also lets the holder's core run.
            arch::wait_for_event();
        }
        // The core's interference counters: one more wait, and how long it took.
        if let Some(c) = WAIT_COUNTERS.get(core).and_then(InitOnce::get) {
            CoreCounters::add(&c.lock_waits, 1);
            CoreCounters::add(&c.lock_wait_ticks, arch::counter().wrapping_sub(since));
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<IrqGuard<'_>> {
        let saved = arch::irq_save();
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(IrqGuard { lock: self, saved })
        } else {
            arch::irq_restore(saved);
            None
        }
    }
}

impl Drop for IrqGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
        arch::irq_restore(self.saved);
    }
}

/// Proof of holding an [`IrqSpinLock`] taken with IRQs masked already
/// ([`IrqSpinLock::lock_masked`]).
pub struct MaskedGuard<'a> {
    lock: &'a IrqSpinLock,
}

impl Drop for MaskedGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}
