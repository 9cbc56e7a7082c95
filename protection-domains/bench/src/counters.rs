//! The two counters a benchmark PD reads, and its report line.

use atoll_microkit::{debug_println, pd_name};

/// Instructions retired so far (PMU event counter 0, which the kernel sets up and lets EL0
/// read). Under `-icount` it counts what every core executed, and not the virtual time
/// QEMU skips while all cores are idle.
fn instructions() -> u64 {
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

/// The virtual counter and its frequency (the kernel lets EL0 read both).
fn counter() -> (u64, u64) {
    let (count, hz): (u64, u64);
    // SAFETY: reads two EL0-accessible system registers (CNTKCTL_EL1.EL0VCTEN is set by the
    // kernel); no memory is touched.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {c}, cntvct_el0",
            "mrs {f}, cntfrq_el0",
            c = out(reg) count,
            f = out(reg) hz,
            options(nomem, nostack),
        );
    }
    (count, hz)
}

/// A reading of both counters.
#[derive(Clone, Copy, Default)]
pub struct Mark {
    instructions: u64,
    ticks: u64,
}

impl Mark {
    /// Now.
    pub fn now() -> Self {
        Self {
            instructions: instructions(),
            ticks: counter().0,
        }
    }

    /// Prints `BENCH <name>: <instructions> instructions, <ns> ns virtual time, over
    /// <rounds> rounds`, the averages since this mark, less the cost of reading the
    /// instruction counter (measured here by two reads back to back).
    pub fn report(self, name: &str, rounds: u32) {
        let (done, (end, hz)) = (instructions(), counter());
        let read_cost = {
            let first = instructions();
            instructions().wrapping_sub(first)
        };
        // The PMU counter is 32 bits wide.
        let executed = done.wrapping_sub(self.instructions).wrapping_sub(read_cost) & 0xFFFF_FFFF;
        let ns = u128::from(end - self.ticks) * 1_000_000_000 / u128::from(hz.max(1));
        let rounds = u64::from(rounds.max(1));
        // Hundredths of an instruction: the average is exact to the count, so two decimals
        // show a change of one instruction in a hundred rounds.
        let hundredths = executed * 100 / rounds;
        debug_println!(
            "{}: BENCH {name}: {}.{:02} instructions, {} ns virtual time, over {rounds} rounds",
            pd_name(),
            hundredths / 100,
            hundredths % 100,
            ns / u128::from(rounds)
        );
    }
}
