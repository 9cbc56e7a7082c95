//! The core's EL1 physical timer, which a PD that owns its interrupt (IRQ 30, alone in its
//! replica) programs from EL0: the canary of `tests/systems/fuzz.xml` ticks on it.

/// The virtual counter (EL0 may read it).
pub fn now() -> u64 {
    let v: u64;
    // SAFETY: reads CNTVCT_EL0, which has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Counter ticks per second.
pub fn frequency() -> u64 {
    let v: u64;
    // SAFETY: reads CNTFRQ_EL0, which has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Sets the physical timer to fire at counter value `deadline`, enabled and unmasked.
pub fn arm(deadline: u64) {
    // SAFETY: writes the EL1 physical timer's compare value and control; the kernel grants
    // EL0 access (CNTKCTL_EL1.EL0PTEN) to the PD that owns the timer's interrupt. No memory
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

/// Stops the timer, which lowers its (level) interrupt.
pub fn disarm() {
    // SAFETY: as for `arm`.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}
