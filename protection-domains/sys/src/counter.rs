//! The counters and the timer EL0 may use. Every thread may read the virtual counter and
//! its frequency, and the PMU's instruction counter (event counter 0, which the kernel
//! sets up). Only the thread that acknowledged its core's EL1 physical timer interrupt
//! (IRQ 30) last, through the interrupt's handler capability, may program that timer: for
//! any other thread the kernel denies EL0 access, and the write is an
//! undefined-instruction fault.

/// The virtual counter.
#[inline]
pub fn counter() -> u64 {
    let count: u64;
    // SAFETY: reads the EL0-readable virtual counter (the kernel sets CNTKCTL_EL1.EL0VCTEN);
    // no memory is touched.
    unsafe {
        core::arch::asm!("isb", "mrs {c}, cntvct_el0", c = out(reg) count, options(nomem, nostack));
    }
    count
}

/// The counter's frequency in hertz (never 0).
#[inline]
pub fn counter_frequency() -> u64 {
    let hz: u64;
    // SAFETY: reads the EL0-readable counter frequency; no memory is touched.
    unsafe {
        core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) hz, options(nomem, nostack));
    }
    hz.max(1)
}

/// Instructions retired so far (PMU event counter 0, 32 bits wide). Under `-icount` it
/// counts what every core executed, and not the virtual time QEMU skips while all cores
/// are idle.
pub fn instructions() -> u64 {
    let count: u64;
    // SAFETY: reads an EL0-readable PMU register (PMUSERENR_EL0.ER is set by the kernel);
    // no memory is touched.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {c}, pmevcntr0_el0",
            c = out(reg) count,
            options(nomem, nostack),
        );
    }
    count
}

/// Sets the core's physical timer to fire at counter value `deadline`, enabled and
/// unmasked. Only for the PD that owns its interrupt.
#[inline]
pub fn arm_physical_timer(deadline: u64) {
    // SAFETY: writes the EL1 physical timer's compare value and control: each write traps,
    // and the kernel makes it for the thread that owns the timer's interrupt (any other
    // thread faults). No memory is touched.
    unsafe {
        core::arch::asm!(
            "msr cntp_cval_el0, {d}",
            "msr cntp_ctl_el0, {on}",
            "isb",
            d = in(reg) deadline,
            on = in(reg) 1u64,
            options(nomem, nostack),
        );
    }
}

/// Stops the core's physical timer, which lowers its (level) interrupt. As
/// [`arm_physical_timer`], only for the PD that owns its interrupt.
#[inline]
pub fn disarm_physical_timer() {
    // SAFETY: as for `arm_physical_timer`.
    unsafe {
        core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack));
    }
}

/// The mark `HINT #IMM` (`atoll_abi::marks`): a no-op the bench's instrumented emulator sees.
pub use atoll_abi::marks::mark;
