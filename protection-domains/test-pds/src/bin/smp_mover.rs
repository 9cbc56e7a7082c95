//! SMP test PD (`tests/systems/smp.xml`): a parent on core 2 that moves its child,
//! `smp_moved`, between the replica's cores 2 and 3 while they exchange notifications.
//!
//! The child starts on core 2, as the description places it. Phase by phase the parent
//! moves it to the other core (`Child::set_affinity`), then runs `ROUNDS` rounds: it
//! notifies the child, which counts the notification in the shared word [`smp::HANDLED`]
//! and notifies back. Where the child is shows in what the parent sees while it spins
//! right after its notify:
//! - with the child on core 3, the child runs beside it and the count moves while the
//!   parent is still spinning;
//! - with the child on core 2, below the parent's priority, the child cannot run until the
//!   parent waits, so the count stays put for the whole spin.
//!
//! At the end it prints what it saw; any round that saw otherwise is a failure.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_microkit::{
    Channel, ChannelSet, Child, Handler, Infallible, debug_println, pd_name, protection_domain,
    timer,
};
use atoll_test_pds::smp::{self, HANDLED};

const CHILD: Child = Child::new(0);
const CHILD_CHANNEL: Channel = Channel::new(0);
/// Phases: the child's core alternates 2 (as placed), 3, 2, 3, ...; so `PHASES - 1` moves.
const PHASES: u32 = 10;
/// Rounds of notify and answer in each phase.
const ROUNDS: u32 = 5;
/// How long the parent spins after a notify with the child on its own core (the child
/// must not run meanwhile), in microseconds.
const SAME_CORE_SPIN_US: u64 = 1000;
/// How long the parent waits at most for the child on the other core to run beside it, in
/// microseconds: generous, for QEMU on a loaded host.
const OTHER_CORE_TIMEOUT_US: u64 = 5_000_000;

/// The core the child is on in `phase`.
fn core_of(phase: u32) -> u32 {
    if phase.is_multiple_of(2) { 2 } else { 3 }
}

struct Mover {
    phase: u32,
    round: u32,
    /// The child's count before the round's notify.
    before: u64,
    /// Rounds in which the child ran beside the parent, on core 3.
    beside: u32,
    /// Rounds in which the child waited for the parent, on core 2.
    waited: u32,
    failed: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    let mut mover = Mover {
        phase: 0,
        round: 0,
        before: 0,
        beside: 0,
        waited: 0,
        failed: false,
    };
    mover.next_round();
    mover
}

impl Mover {
    /// Notifies the child and watches its count while spinning.
    fn next_round(&mut self) {
        let handled = &smp::shared()[HANDLED];
        self.before = handled.load(Ordering::Acquire);
        let per_us = (timer::counter_frequency() / 1_000_000).max(1);
        let start = timer::counter();
        CHILD_CHANNEL.notify();
        if core_of(self.phase) == 3 {
            let limit = OTHER_CORE_TIMEOUT_US * per_us;
            while handled.load(Ordering::Acquire) == self.before {
                if timer::counter() - start > limit {
                    self.fail("the child on core 3 did not run while I spun on core 2");
                    return;
                }
                core::hint::spin_loop();
            }
            self.beside += 1;
        } else {
            while timer::counter() - start < SAME_CORE_SPIN_US * per_us {
                core::hint::spin_loop();
            }
            if handled.load(Ordering::Acquire) != self.before {
                self.fail("the child on core 2 ran while I, of higher priority, spun there");
                return;
            }
            self.waited += 1;
        }
    }

    fn fail(&mut self, what: &str) {
        debug_println!(
            "{}: FAILED: phase {} round {}: {what}",
            pd_name().unwrap(),
            self.phase,
            self.round
        );
        self.failed = true;
    }
}

impl Handler for Mover {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(CHILD_CHANNEL) || self.failed {
            return Ok(());
        }
        let handled = smp::shared()[HANDLED].load(Ordering::Acquire);
        if handled != self.before + 1 {
            self.fail("the child's count is not one more after its answer");
            return Ok(());
        }
        self.round += 1;
        if self.round == ROUNDS {
            self.round = 0;
            self.phase += 1;
            if self.phase == PHASES {
                debug_println!(
                    "{}: moved my child {} times between cores 2 and 3: it ran beside me \
                     in {} rounds on core 3 and waited for me in {} rounds on core 2",
                    pd_name().unwrap(),
                    PHASES - 1,
                    self.beside,
                    self.waited
                );
                return Ok(());
            }
            // Panics, which the monitor reports, if the kernel refuses.
            CHILD.set_affinity(core_of(self.phase));
        }
        self.next_round();
        Ok(())
    }
}
