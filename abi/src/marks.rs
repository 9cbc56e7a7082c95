//! Marks: two no-op instructions the kernel and the real-time PD execute at fixed points of
//! a timer release, so that an instrumented emulator can time the release on the core's own
//! clock.
//!
//! Under QEMU's `-icount` every core shares one virtual clock that advances with the
//! instructions of *all* cores, run one after another. A job's release jitter read from that
//! clock therefore holds the other cores' instructions too, which no real machine would add.
//! The bench's QEMU plugin (`runner/coreclock`) counts each core's own instructions instead,
//! and times a release from the interrupt's entry to the job's start on that count:
//!
//! 1. the core starts on an interrupt: it wakes from a `wfi` (where the kernel waits with
//!    interrupts masked), or takes one at an exception vector's IRQ entry (found by address);
//! 2. the kernel finds it is the PD timer's ([`RELEASE_TAKEN`], in its IRQ dispatch);
//! 3. the job starts ([`JOB_START`], the first thing the real-time PD's job does).
//!
//! The marks are `HINT #imm` with an immediate the Arm architecture leaves unallocated: every
//! Armv8-A core executes it as a no-op (Arm ARM, "HINT"), and so does QEMU. Each costs one
//! instruction per release.

/// `HINT` immediate the kernel executes when it takes the PD timer's interrupt (IRQ 30).
pub const RELEASE_TAKEN: u32 = 0x7c;

/// `HINT` immediate the real-time PD executes as its job starts.
pub const JOB_START: u32 = 0x7d;

/// Executes the mark `HINT #IMM` ([`RELEASE_TAKEN`] or [`JOB_START`]): a no-op on every
/// core, seen by the bench's instrumented emulator. The kernel and the real-time PD (through
/// `atoll_sys::counter::mark`) both call this one.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn mark<const IMM: u32>() {
    // SAFETY: a `hint` with an immediate the architecture leaves unallocated is a no-op: it
    // touches no memory, register or flag.
    unsafe {
        core::arch::asm!("hint #{imm}", imm = const IMM, options(nomem, nostack, preserves_flags));
    }
}

/// The A64 encoding of `HINT #imm` (`imm` is 7 bits).
#[must_use]
pub const fn hint_encoding(imm: u32) -> u32 {
    0xd503_201f | ((imm & 0x7f) << 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_hints_and_distinct() {
        // `nop` is `hint #0`; `yield` is `hint #1`.
        assert_eq!(hint_encoding(0), 0xd503_201f);
        assert_eq!(hint_encoding(1), 0xd503_203f);
        assert_eq!(hint_encoding(RELEASE_TAKEN), 0xd503_2f9f);
        assert_eq!(hint_encoding(JOB_START), 0xd503_2fbf);
        assert_ne!(RELEASE_TAKEN, JOB_START);
    }
}
