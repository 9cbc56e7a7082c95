//! Interrupts, on any core of the replica: the stop SGI, the timer, the doorbell SGI and
//! the devices the replica owns.

use core::sync::atomic::{AtomicBool, Ordering};

use atoll_abi::limits::PD_TIMER_INTID;

use crate::console::{self, klog};
use crate::replica::Replica;
use crate::stop;
use crate::{arch, inbox, machine, ping_ring, restart};

/// Serves every interrupt pending for this core, `core`, counting each by its source in the
/// core's interference counters (`atoll_abi::shared::CoreCounters`). The doorbell SGI doubles as the
/// replica's reschedule interrupt: another core of the replica sends it when this core
/// should choose again (`machine::kick`), or to bring it to the replica lock, where it
/// saves FP registers another core asks for (`fp::request_flush`). Device interrupts are
/// served on every core of the replica, not only its first.
pub fn handle_irq(r: &Replica, core: u32) {
    while let Some(acked) = r.gic.acknowledge() {
        let intid = acked.intid;
        if intid == r.spec.gic.stop_sgi {
            r.gic.end_of_interrupt(acked);
            stop::on_stop_interrupt(r, core);
            continue;
        }
        let primary = core == r.spec.primary_core();
        let c = core as usize;
        if intid == r.spec.gic.timer_intid {
            r.count(c, |c| &c.timer_irqs);
            tick(r, core);
        } else if intid == r.spec.gic.doorbell_sgi {
            r.count(c, |c| &c.sgis);
            inbox::service(r);
            machine::on_doorbell_sgi(r, c, primary);
        } else if intid >= 32 || intid == PD_TIMER_INTID {
            // Whichever core of the replica takes it: the loader routes a shared interrupt
            // to the core of the PD that declares it, and the physical timer's is the
            // core's own. The handler's thread may run on another core of the replica (it
            // was moved, or waits elsewhere): signalling its notification kicks that core.
            if intid == PD_TIMER_INTID {
                atoll_abi::marks::mark::<{ atoll_abi::marks::RELEASE_TAKEN }>();
                if let Some(counters) = r.counters(c) {
                    counters
                        .pd_timer_at
                        .store(arch::counter(), Ordering::Relaxed);
                }
            } else {
                r.count(c, |c| &c.devices);
            }
            machine::on_device_irq(r, c, intid);
        } else {
            klog!("WARN", "core {core}: unexpected interrupt {intid}");
        }
        r.gic.end_of_interrupt(acked);
        if HANG.load(Ordering::Relaxed) && core == r.spec.primary_core() {
            hang();
        }
    }
}

/// Set by the primary core's housekeeping at the tick of `--inject-hang`.
static HANG: AtomicBool = AtomicBool::new(false);

/// The `--inject-hang` self-test: the primary core stops its timer and loops in the kernel,
/// with interrupts taken, as a kernel that lost its tick would: its tick count freezes, its
/// peers report it hung (`hung_after_ms`) and send it the stop interrupt, which stops the
/// replica (and restarts it with `restart="true"`).
fn hang() -> ! {
    klog!(
        "INFO",
        "self-test: hanging on purpose: timer stopped, interrupts still taken"
    );
    arch::disarm_timer();
    loop {
        arch::irq_enable();
        arch::wait_for_interrupt();
    }
}

/// This core's timer fired: on the primary core, the replica's housekeeping tick when it
/// is due; on every core, the scheduler's event (a budget's end, a refill, a domain slot's
/// end). There is no periodic tick on the other cores.
fn tick(r: &Replica, core: u32) {
    if core == r.spec.primary_core()
        && let Some(due) = r.next_tick.get(core as usize)
    {
        let now = arch::counter();
        if now >= due.load(Ordering::Relaxed) {
            due.store(now.saturating_add(r.tick_interval), Ordering::Relaxed);
            housekeeping(r);
        }
    }
    machine::on_timer(r, core as usize);
}

/// The primary core's periodic work: the replica's tick count, the console and the ping
/// ring.
fn housekeeping(r: &Replica) {
    if let Some(core_ticks) = r.core_ticks.get(r.spec.primary_core() as usize) {
        core_ticks.fetch_add(1, Ordering::Relaxed);
    }
    let ticks = r
        .status()
        .ticks
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    if r.owns_console() {
        console::drain(r);
    }
    if r.index == 0 {
        ping_ring::on_tick(r, ticks);
    }
    restart::watch(r);
    // The deliberate fault and hang come in the replica's first life only, not again after
    // a restart.
    let hang_at = r.spec.hang_late_ticks;
    if hang_at != 0 && ticks == u64::from(hang_at) && r.status().epoch.load(Ordering::Relaxed) == 0
    {
        HANG.store(true, Ordering::Relaxed);
    }
    let fault_at = r.spec.fault_late_ticks;
    if fault_at != 0
        && ticks == u64::from(fault_at)
        && r.status().epoch.load(Ordering::Relaxed) == 0
    {
        klog!(
            "INFO",
            "self-test: faulting on purpose {ticks} ticks after boot, PDs at work, to show only this replica stops"
        );
        stop::selftest_fault();
    }
}
