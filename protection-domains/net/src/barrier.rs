//! The barriers between a driver's accesses to its card's ring memory and registers and
//! the card's own (the GEM's and the ENET's rings are uncached memory the card reads and
//! writes by DMA). On the host (tests) each is a fence of the same strength.

/// Orders earlier writes to ring memory before later ones, as the card sees them.
pub fn ring_writes() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only.
    unsafe {
        core::arch::asm!("dmb oshst", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
}

/// Orders the read of a word the card wrote (its ownership or status bits) before the
/// reads of the rest of its descriptor.
pub fn ring_reads() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only.
    unsafe {
        core::arch::asm!("dmb oshld", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
}

/// Orders earlier writes to ring memory before later reads of it.
pub fn ring_full() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only.
    unsafe {
        core::arch::asm!("dmb osh", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}

/// Completes the writes to ring memory before the register write that sends the card
/// looking for them (ring memory and registers are different devices to the interconnect,
/// so ordering alone is not enough).
pub fn before_kick() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only.
    unsafe {
        core::arch::asm!("dsb st", options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}
