//! The generic timer from EL0 (an Atoll extension: `sel4-microkit` has no timer). Every PD
//! may read the virtual counter and its frequency. A PD that owns its core's EL1 physical
//! timer interrupt (IRQ 30; the tool allows that only for a PD alone in its replica) may
//! also program that timer, and gets its interrupt on the channel of its `<irq>`.

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

/// Sets the core's physical timer to fire at counter value `deadline`, enabled and
/// unmasked. Only for the PD that owns its interrupt: for any other PD the kernel denies
/// EL0 access, and the write is an undefined-instruction fault.
#[inline]
pub fn arm_physical_timer(deadline: u64) {
    // SAFETY: writes the EL1 physical timer's compare value and control; EL0 access is
    // granted by CNTKCTL_EL1.EL0PTEN to the PD that owns the timer's interrupt. No memory
    // is touched.
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
