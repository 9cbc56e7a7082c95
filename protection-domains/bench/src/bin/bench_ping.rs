//! Benchmark PD: notify round trips with `bench_pong` on channel 0. After `WARMUP` round
//! trips it reads the instruction counter and the virtual counter, runs `ROUNDS` more,
//! reads them again and prints the averages: instructions executed (on every core) and
//! virtual nanoseconds, which under `-icount shift=0` also include the time QEMU skips
//! while every core is idle.
#![no_std]
#![no_main]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

const PONG: Channel = Channel::new(0);
const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;

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

struct Ping {
    rounds: u32,
    start: (u64, u64),
}

#[protection_domain]
fn init() -> impl Handler {
    PONG.notify();
    Ping {
        rounds: 0,
        start: (0, 0),
    }
}

impl Handler for Ping {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PONG) {
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds == WARMUP {
            self.start = (instructions(), counter().0);
        }
        if self.rounds == WARMUP + ROUNDS {
            let (done, (end, hz)) = (instructions(), counter());
            // The PMU counter is 32 bits wide. The counter reads that frame the rounds cost
            // a few instructions in all, below the figure's resolution.
            let executed = done.wrapping_sub(self.start.0) & 0xFFFF_FFFF;
            let ns = u128::from(end - self.start.1) * 1_000_000_000 / u128::from(hz.max(1));
            debug_println!(
                "{}: BENCH notify round trip: {} instructions, {} ns virtual time, over {ROUNDS} rounds",
                pd_name(),
                executed / u64::from(ROUNDS),
                ns / u128::from(ROUNDS)
            );
            return Ok(());
        }
        PONG.notify();
        Ok(())
    }
}
