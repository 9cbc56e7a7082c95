//! Benchmark PD: interrupt latency, from the moment the core's EL1 physical timer (IRQ 30,
//! on this PD's channel 0) raises its interrupt to this PD's `notified`.
//!
//! The PD sets the timer a fixed delay ahead and returns to its event loop, so the core is
//! idle when the timer fires. Under `-icount shift=0,sleep=off` QEMU then moves virtual time
//! straight to the deadline, so the interrupt is raised at exactly `deadline × ns per tick`,
//! and from there virtual time advances one nanosecond per instruction executed (the other
//! cores are off). `notified` reads the instruction counter at once, then finds the next
//! tick boundary of the virtual counter to place that reading in virtual time; the
//! difference to the deadline is the latency in instructions, to within the few
//! instructions of one polling step.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_bench_pds::{
    instructions, instructions_between, report_average, ticks, ticks_per_second,
};
use atoll_microkit::timer::{arm_physical_timer as arm, disarm_physical_timer as disarm};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

const TIMER: Channel = Channel::new(0);
const WARMUP: u32 = 100;
const ROUNDS: u32 = 10_000;
/// Ticks from setting the timer to its interrupt: long enough for the PD to block first.
const DELAY_TICKS: u64 = 1_000;

struct Latency {
    deadline: u64,
    rounds: u32,
    /// Sum of the measured rounds' latencies, in instructions.
    total: u64,
}

#[protection_domain]
fn init() -> impl Handler {
    if let Err(e) = atoll_microkit::timer::claim_physical_timer(TIMER) {
        debug_println!("{}: cannot claim the timer: {e:?}", pd_name().unwrap());
    }
    let deadline = ticks() + DELAY_TICKS;
    arm(deadline);
    Latency {
        deadline,
        rounds: 0,
        total: 0,
    }
}

impl Handler for Latency {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let woken = instructions();
        if !channels.contains(TIMER) {
            return Ok(());
        }
        // Poll until the virtual counter next ticks over; that boundary's virtual time is
        // exact, and the instructions since `woken` place the wake-up before it.
        let start = ticks();
        let (boundary, at) = loop {
            let at = instructions();
            let now = ticks();
            if now != start {
                break (now, at);
            }
        };
        // Nanoseconds per tick of the virtual counter (16 at QEMU's 62.5 MHz).
        let ns = 1_000_000_000 / ticks_per_second();
        let woken_ns = (boundary * ns).wrapping_sub(instructions_between(woken, at));
        let latency = woken_ns.wrapping_sub(self.deadline * ns);
        self.rounds += 1;
        if self.rounds > WARMUP {
            self.total += latency;
        }
        disarm();
        if let Err(e) = TIMER.irq_ack() {
            debug_println!("{}: irq_ack failed: {e:?}", pd_name().unwrap());
            return Ok(());
        }
        if self.rounds == WARMUP + ROUNDS {
            report_average("interrupt to PD", self.total, None, ROUNDS);
            return Ok(());
        }
        self.deadline = ticks() + DELAY_TICKS;
        arm(self.deadline);
        Ok(())
    }
}
