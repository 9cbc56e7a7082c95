//! Data-cache maintenance for cards that do not snoop the CPU's caches (the ZynqMP's GEM
//! and the i.MX 8M Plus's ENET on the real boards). Runs at EL0: Atoll's kernels set
//! `SCTLR_EL1.UCT` and `.UCI`, so a PD reads the line size from `CTR_EL0` and cleans or
//! invalidates by virtual address, which reaches only memory its own mappings allow.
//! On the host (tests) the operations do nothing.

/// Writes the dirty lines of `[vaddr, vaddr + len)` back to memory, before a card reads it.
pub fn clean(vaddr: usize, len: usize) {
    for_each_line(vaddr, len, |line| {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: cleaning a line by address changes no memory contents; the caller's range
        // is mapped into this PD (a fault would be the PD's own).
        unsafe {
            core::arch::asm!("dc cvac, {line}", line = in(reg) line, options(nostack, preserves_flags));
        }
        #[cfg(not(target_arch = "aarch64"))]
        let _ = line;
    });
}

/// Writes back and drops the lines of `[vaddr, vaddr + len)`: no stale or dirty line stays
/// over what a card writes there.
pub fn clean_invalidate(vaddr: usize, len: usize) {
    for_each_line(vaddr, len, |line| {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as in `clean`; a line's dirty data is written back before it is dropped,
        // so nothing the CPU wrote is lost.
        unsafe {
            core::arch::asm!("dc civac, {line}", line = in(reg) line, options(nostack, preserves_flags));
        }
        #[cfg(not(target_arch = "aarch64"))]
        let _ = line;
    });
}

/// Calls `f` with the address of each cache line in the range, then waits for the
/// maintenance to complete.
fn for_each_line(vaddr: usize, len: usize, mut f: impl FnMut(usize)) {
    let line = line_size();
    let mut at = vaddr & !(line - 1);
    let end = vaddr.saturating_add(len);
    while at < end {
        f(at);
        at += line;
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier only.
    unsafe {
        core::arch::asm!("dsb sy", options(nostack, preserves_flags));
    }
}

/// The smallest data-cache line, in bytes (`CTR_EL0.DminLine`).
fn line_size() -> usize {
    #[cfg(target_arch = "aarch64")]
    {
        let ctr: u64;
        // SAFETY: reads an ID register EL0 may read (`SCTLR_EL1.UCT`).
        unsafe {
            core::arch::asm!("mrs {ctr}, ctr_el0", ctr = out(reg) ctr, options(nomem, nostack, preserves_flags));
        }
        4 << ((ctr >> 16) & 0xF)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        64
    }
}
