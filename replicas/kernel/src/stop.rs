//! Stopping a core or the whole replica, and the panic handler.
//!
//! A fault the kernel cannot handle prints one decoded `K<n>|FATAL:` line, leaves an
//! epitaph in the replica's status record, stops every core of this replica and nothing
//! else: other replicas see the record go down and carry on.

use core::sync::atomic::Ordering;

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::shared::{ReplicaState, bell};
use atoll_boards::firmware;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::LineBuf;

use crate::console::klog;
use crate::replica::{Replica, current_core, replica};
use crate::{arch, console, inbox};

/// An exception the kernel never expects (a kernel fault, FIQ, SError): the replica stops.
pub fn stop_unexpected(r: &Replica, core: u32) -> ! {
    let (esr, far, elr) = arch::exception_registers();
    stop_replica(
        r,
        core,
        esr,
        far,
        elr,
        format_args!("{} FAR {far:#x} ELR {elr:#x}", Syndrome(esr)),
    )
}

/// Records the epitaph, reports, stops the other cores of this replica, then this core.
pub fn stop_replica(
    r: &Replica,
    core: u32,
    esr: u64,
    far: u64,
    elr: u64,
    what: core::fmt::Arguments<'_>,
) -> ! {
    let status = r.status();
    status.fault_esr.store(esr, Ordering::Relaxed);
    status.fault_far.store(far, Ordering::Relaxed);
    status.fault_elr.store(elr, Ordering::Relaxed);
    status.fault_core.store(core, Ordering::Relaxed);
    // Once down, `settled_at` says when it stopped: a restart reports its time from it.
    status.settled_at.store(arch::counter(), Ordering::Relaxed);
    let mut line: LineBuf<LOG_LINE_BYTES> = console::format_line(r.index, "FATAL", what);
    let _ = core::fmt::Write::write_fmt(
        &mut line,
        format_args!(" on core {core} of replica {}; replica stopped", r.index),
    );
    if r.owns_console() {
        console::write_direct(r, line.as_bytes());
    } else if let Some(_guard) = r.log_lock.try_lock() {
        r.log.push(line.as_bytes());
    }
    status.set_state(ReplicaState::Down);
    inbox::ring(r, 0, bell::STATUS | bell::LOG);
    let others = status.cores_online.load(Ordering::Acquire) & !(1 << core);
    for other in 0..64u32 {
        if others & (1 << other) != 0 {
            let mpidr = r.core_mpidr(other);
            r.gic.send_sgi(r.spec.gic.stop_sgi, mpidr, other);
        }
    }
    stop_this_core(r, core)
}

/// Takes this core offline (PSCI CPU_OFF). The last core of a replica with `restart="true"`
/// to go rings its keeper's status bell first (the lowest-numbered peer that is up, which
/// restarts it), so that the restart need not wait for the keeper's next tick; no other
/// peer is disturbed.
pub fn stop_this_core(r: &Replica, core: u32) -> ! {
    arch::irq_save();
    let before = r
        .status()
        .cores_online
        .fetch_and(!(1 << core), Ordering::AcqRel);
    if before & !(1 << core) == 0
        && r.status().state() == Some(ReplicaState::Down)
        && r.spec.restarts(r.index)
    {
        let states = r.statuses().map(atoll_abi::shared::ReplicaStatus::state);
        if let Some(keeper) = atoll_kernel_core::watch::keeper_of(states, r.index) {
            inbox::ring(r, keeper, bell::STATUS);
        }
    }
    let _refused = firmware::cpu_off(r.psci);
    park_forever()
}

/// The stop interrupt arrived on `core`: a sibling core stopping the replica (which
/// published `down` first), or a peer that found the replica hung (which published `hung`
/// first). The latter stops the replica with an epitaph saying so. In any other state the
/// request is stale (a restarted core's interrupt controller kept it) and is ignored.
pub fn on_stop_interrupt(r: &Replica, core: u32) {
    let state = r.status().state();
    if !matches!(state, Some(ReplicaState::Down | ReplicaState::Hung)) {
        klog!("WARN", "core {core}: a stale stop request ignored");
        return;
    }
    if state == Some(ReplicaState::Hung) {
        let elr = arch::exception_registers().2;
        stop_replica(
            r,
            core,
            0,
            0,
            elr,
            format_args!("stopped by a peer that found this replica hung"),
        )
    }
    stop_this_core(r, core)
}

/// Stops this core without reporting (nothing trustworthy to report with).
pub fn park_forever() -> ! {
    arch::irq_save();
    loop {
        arch::wait_for_event();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match replica() {
        Some(r) => {
            let core = current_core(r.spec).unwrap_or(0);
            stop_replica(r, core, 0, 0, 0, format_args!("kernel panic: {info}"))
        }
        None => park_forever(),
    }
}

/// Self-test: a read from an address no replica maps, which stops this replica through the
/// kernel's data abort handler.
pub fn selftest_fault() {
    const UNMAPPED: usize = 0xFFFF_FFEE_0000_0000;
    // SAFETY: deliberately faults; the data abort handler stops this replica and never
    // returns here.
    let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
}
