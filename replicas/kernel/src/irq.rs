//! Interrupts, on any core of the replica: the stop SGI, the timer, the doorbell SGI and
//! the devices the replica owns.

use core::sync::atomic::Ordering;

use atoll_abi::limits::PD_TIMER_INTID;

use crate::console::{self, klog};
use crate::replica::Replica;
use crate::stop::stop_this_core;
use crate::{arch, inbox, machine, ping_ring};

/// Acknowledges and serves every pending interrupt (from the vectors, or from an idle
/// core's `wfi`).
pub fn handle_irq(r: &Replica, core: u32) {
    while let Some(acked) = r.gic.acknowledge() {
        let intid = acked.intid;
        if intid == r.spec.gic.stop_sgi {
            r.gic.end_of_interrupt(acked);
            stop_this_core(r, core);
        }
        if intid == r.spec.gic.timer_intid {
            tick(r, core);
        } else if intid == r.spec.gic.doorbell_sgi {
            inbox::service(r);
            if core == r.spec.primary_core() {
                machine::on_doorbell(r);
            }
        } else if (intid >= 32 || intid == PD_TIMER_INTID) && core == r.spec.primary_core() {
            machine::on_device_irq(r, intid);
        } else {
            klog!("WARN", "core {core}: unexpected interrupt {intid}");
        }
        r.gic.end_of_interrupt(acked);
    }
}

/// The timer fired: budgets are charged on the primary core (the timer may fire early for
/// a budget), and once per tick interval the housekeeping runs.
fn tick(r: &Replica, core: u32) {
    let primary = core == r.spec.primary_core();
    if primary {
        machine::on_timer();
    }
    let now = arch::counter();
    let (Some(due), Some(core_ticks)) = (
        r.next_tick.get(core as usize),
        r.core_ticks.get(core as usize),
    ) else {
        return;
    };
    let deadline = due.load(Ordering::Relaxed);
    if now < deadline {
        arch::arm_timer(deadline.wrapping_sub(now));
        return;
    }
    due.store(now.saturating_add(r.tick_interval), Ordering::Relaxed);
    arch::arm_timer(r.tick_interval);
    core_ticks.fetch_add(1, Ordering::Relaxed);
    if !primary {
        return;
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
}
