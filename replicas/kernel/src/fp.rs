//! Threads' FP/SIMD registers, switched lazily on each core.
//!
//! The kernel itself is soft-float and never touches these registers. A thread's first FP
//! instruction after a switch traps (`CPACR_EL1.FPEN` off); only then are the registers
//! saved for their owner and loaded for it. A thread that keeps the registers runs with
//! FP on and never traps again until another thread takes them.
//!
//! Each core of a replica has its own registers and owner. A thread that moves to another
//! core (a passive server called from there, `TCB_SetAffinity`) may have left its registers
//! in the old core's: the core it traps on then asks the old core to save them
//! ([`FpSwitch::trap`] returns the core to ask, [`request_flush`] asks and waits), and the
//! old core does so without the replica lock, which the asking core holds throughout: the
//! request's interrupt brings the old core into the kernel (or out of `wfi`), where it
//! waits for that lock, and a core waiting for a lock serves the request ([`service`]).

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use atoll_abi::limits::MAX_CORES;
use atoll_kernel_core::id::{CoreId, Table, ThreadId};
use atoll_kernel_core::kernel::MAX_THREADS;

use crate::arch;

/// FP/SIMD state of a thread: q0–q31, then FPSR and FPCR.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct FpState([u64; 66]);

impl FpState {
    /// The state a thread starts with (FPCR 0 is the architectural default).
    const ZERO: Self = Self([0; 66]);
}

/// Per core: the thread whose registers it holds (thread index + 1; 0: none). Written by
/// that core only; read by the others to find a thread's live registers.
static OWNER: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(0) }; MAX_CORES];
/// Per core: whether EL0 may use FP/SIMD now (`CPACR_EL1.FPEN`), to skip needless writes.
/// Touched by that core only.
static ENABLED: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];
/// Per core: where another core asks it to save its owner's registers (null: no request).
static FLUSH: [AtomicPtr<FpState>; MAX_CORES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CORES];

fn owner(core: usize) -> Option<ThreadId> {
    let raw = OWNER.get(core)?.load(Ordering::Relaxed);
    ThreadId::new((raw as usize).checked_sub(1)?)
}

fn set_owner(core: usize, t: Option<ThreadId>) {
    if let Some(o) = OWNER.get(core) {
        o.store(
            t.map_or(0, |t| (t.index() as u32).wrapping_add(1)),
            Ordering::Relaxed,
        );
    }
}

fn set_enabled(core: usize, on: bool) {
    if let Some(e) = ENABLED.get(core)
        && e.load(Ordering::Relaxed) != on
    {
        arch::set_fp_enabled(on);
        e.store(on, Ordering::Relaxed);
    }
}

/// Every thread's saved FP/SIMD registers (kept under the replica lock).
pub struct FpSwitch {
    states: Table<ThreadId, FpState, MAX_THREADS>,
}

impl FpSwitch {
    /// Every state zeroed.
    pub const fn new() -> Self {
        Self {
            states: Table::filled(FpState::ZERO),
        }
    }

    /// Before `core` returns to `t`: FP access on only if its registers are the core's.
    #[inline(always)]
    pub fn load_for(&mut self, core: usize, t: ThreadId) {
        set_enabled(core, owner(core) == Some(t));
    }

    /// `t` trapped on an FP/SIMD instruction on `core`: if another core holds its
    /// registers, returns that core, which must save them first ([`request_flush`]) before
    /// this is called again. Otherwise hands the registers to `t`.
    pub fn trap(&mut self, core: usize, t: ThreadId) -> Result<(), CoreId> {
        if owner(core) == Some(t) {
            set_enabled(core, true);
            return Ok(());
        }
        if let Some(other) =
            CoreId::all().find(|c| c.index() != core && owner(c.index()) == Some(t))
        {
            return Err(other);
        }
        set_enabled(core, true);
        if let Some(old) = owner(core) {
            // SAFETY: FP access is enabled; the state buffer is the owner's.
            unsafe { fp_save(&mut self.states[old]) };
        }
        // SAFETY: as above; a thread's state starts zeroed (FPCR 0 is the architectural
        // default).
        unsafe { fp_restore(&self.states[t]) };
        set_owner(core, Some(t));
        Ok(())
    }

    /// Where `core` should save `t`'s registers when asked to.
    pub fn state_of(&mut self, t: ThreadId) -> *mut FpState {
        &mut self.states[t]
    }

    /// `t` was just created: its state starts zeroed. A core may still hold a destroyed
    /// thread's FP registers as this id's: they are not the new thread's (its first FP
    /// instruction loads its own, zeroed, state).
    pub fn thread_created(&mut self, t: ThreadId) {
        self.states[t] = FpState::ZERO;
        for c in 0..MAX_CORES {
            if owner(c) == Some(t) {
                // The core's registers hold nothing anyone will ask for; it is not running
                // `t` (a thread being created runs nowhere).
                set_owner(c, None);
            }
        }
    }
}

/// Asks `core` to save its owner's registers at `state` and waits until it has (the caller
/// holds the replica lock and has interrupted `core`, which serves the request at its next
/// exception or while it waits for a lock, see [`service`]).
pub fn request_flush(core: CoreId, state: *mut FpState, interrupt: impl FnOnce()) {
    let Some(slot) = FLUSH.get(core.index()) else {
        return;
    };
    slot.store(state, Ordering::Release);
    interrupt();
    // A core waiting for a lock sleeps until an event.
    arch::send_event();
    while !slot.load(Ordering::Acquire).is_null() {
        core::hint::spin_loop();
    }
}

/// Serves a request to save this core's FP/SIMD registers (see [`request_flush`]); cheap
/// when there is none. Called at every exception from EL0, on interrupts, and while
/// spinning for a lock.
#[inline]
pub fn service(core: usize) {
    let Some(slot) = FLUSH.get(core) else {
        return;
    };
    let state = slot.load(Ordering::Acquire);
    if state.is_null() {
        return;
    }
    set_enabled(core, true);
    // SAFETY: the asking core found this core the owner of the thread whose buffer
    // `state` is; it holds the replica lock and waits until the slot is cleared, so the
    // buffer is this core's to write until then.
    unsafe { fp_save(state) };
    set_owner(core, None);
    set_enabled(core, false);
    slot.store(core::ptr::null_mut(), Ordering::Release);
}

unsafe extern "C" {
    /// Saves the FP/SIMD registers to `state` (528 bytes, 16-byte aligned).
    fn fp_save(state: *mut FpState);
    /// Loads the FP/SIMD registers from `state`.
    fn fp_restore(state: *const FpState);
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".section .text.fp, \"ax\"",
    ".global fp_save",
    "fp_save:",
    "    stp q0, q1, [x0, #0]",
    "    stp q2, q3, [x0, #32]",
    "    stp q4, q5, [x0, #64]",
    "    stp q6, q7, [x0, #96]",
    "    stp q8, q9, [x0, #128]",
    "    stp q10, q11, [x0, #160]",
    "    stp q12, q13, [x0, #192]",
    "    stp q14, q15, [x0, #224]",
    "    stp q16, q17, [x0, #256]",
    "    stp q18, q19, [x0, #288]",
    "    stp q20, q21, [x0, #320]",
    "    stp q22, q23, [x0, #352]",
    "    stp q24, q25, [x0, #384]",
    "    stp q26, q27, [x0, #416]",
    "    stp q28, q29, [x0, #448]",
    "    stp q30, q31, [x0, #480]",
    "    mrs x1, fpsr",
    "    mrs x2, fpcr",
    "    add x3, x0, #512",
    "    stp x1, x2, [x3]",
    "    ret",
    ".global fp_restore",
    "fp_restore:",
    "    ldp q0, q1, [x0, #0]",
    "    ldp q2, q3, [x0, #32]",
    "    ldp q4, q5, [x0, #64]",
    "    ldp q6, q7, [x0, #96]",
    "    ldp q8, q9, [x0, #128]",
    "    ldp q10, q11, [x0, #160]",
    "    ldp q12, q13, [x0, #192]",
    "    ldp q14, q15, [x0, #224]",
    "    ldp q16, q17, [x0, #256]",
    "    ldp q18, q19, [x0, #288]",
    "    ldp q20, q21, [x0, #320]",
    "    ldp q22, q23, [x0, #352]",
    "    ldp q24, q25, [x0, #384]",
    "    ldp q26, q27, [x0, #416]",
    "    ldp q28, q29, [x0, #448]",
    "    ldp q30, q31, [x0, #480]",
    "    add x3, x0, #512",
    "    ldp x1, x2, [x3]",
    "    msr fpsr, x1",
    "    msr fpcr, x2",
    "    ret",
);
