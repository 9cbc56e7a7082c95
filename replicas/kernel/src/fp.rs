//! Threads' FP/SIMD registers, switched lazily.
//!
//! The kernel itself is soft-float and never touches these registers. A thread's first FP
//! instruction after a switch traps (`CPACR_EL1.FPEN` off); only then are the registers
//! saved for their owner and loaded for it. A thread that keeps the registers runs with
//! FP on and never traps again until another thread takes them.

use atoll_kernel_core::id::{Table, ThreadId};
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

/// Whose FP/SIMD registers the CPU holds, and every thread's saved ones.
pub struct FpSwitch {
    /// The thread whose FP/SIMD registers are in the CPU.
    owner: Option<ThreadId>,
    /// Whether EL0 may use FP/SIMD now (`CPACR_EL1.FPEN`), to skip needless writes.
    enabled: bool,
    states: Table<ThreadId, FpState, MAX_THREADS>,
}

impl FpSwitch {
    /// Nobody's registers loaded, FP access off, every state zeroed.
    pub const fn new() -> Self {
        Self {
            owner: None,
            enabled: false,
            states: Table::filled(FpState::ZERO),
        }
    }

    /// Before returning to `t`: FP access on only if its registers are the CPU's.
    #[inline(always)]
    pub fn load_for(&mut self, t: ThreadId) {
        let fp = self.owner == Some(t);
        if fp != self.enabled {
            arch::set_fp_enabled(fp);
            self.enabled = fp;
        }
    }

    /// `t` trapped on an FP/SIMD instruction: hand the registers to it.
    pub fn trap(&mut self, t: ThreadId) {
        arch::set_fp_enabled(true);
        self.enabled = true;
        if self.owner != Some(t) {
            if let Some(owner) = self.owner {
                // SAFETY: FP access is enabled; the state buffer is the owner's.
                unsafe { fp_save(&mut self.states[owner]) };
            }
            // SAFETY: as above; a thread's state starts zeroed (FPCR 0 is the
            // architectural default).
            unsafe { fp_restore(&self.states[t]) };
            self.owner = Some(t);
        }
    }

    /// `t` was just created: its state starts zeroed. The CPU may still hold a destroyed
    /// thread's FP registers as this id's: they are not the new thread's (its first FP
    /// instruction loads its own, zeroed, state).
    pub fn thread_created(&mut self, t: ThreadId) {
        self.states[t] = FpState::ZERO;
        if self.owner == Some(t) {
            self.owner = None;
        }
    }
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
