//! The boot protocol, run by the boot replica (replica 0): wait until every replica has
//! published a final boot state, print the one-line summary of all replicas, send the
//! ping round the ring (0 -> 1 -> ... -> 0), and in test builds power off once done.
//! Every step is driven by doorbells and timer ticks; nothing spins on another replica.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::shared::{ReplicaState, bell};
use atoll_abi::spec::flags;
use atoll_boards::firmware;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::{CoreSet, LineBuf};

use crate::{Replica, arch, console, doorbell, klog};

const WAITING: u32 = 0;
const PINGING: u32 = 1;
const DONE: u32 = 2;
const EXITING: u32 = 3;

/// Ticks to wait for replicas before summarising without them.
const BOOT_TIMEOUT_TICKS: u64 = 500;
/// Ticks to wait for the ping to come back.
const PING_TIMEOUT_TICKS: u64 = 500;
/// Ticks between finishing and powering off in test builds (shows replicas keep ticking).
const EXIT_DELAY_TICKS: u64 = 3;
/// Ticks to wait, in test builds, for every replica's user space to settle.
const SETTLE_TIMEOUT_TICKS: u64 = 500;

static PHASE: AtomicU32 = AtomicU32::new(WAITING);
static PHASE_SINCE: AtomicU64 = AtomicU64::new(0);
static DOWN_REPORTED: AtomicU64 = AtomicU64::new(0);
static PDS_STARTED_REPORTED: AtomicBool = AtomicBool::new(false);

fn enter(phase: u32, r: &Replica) {
    PHASE.store(phase, Ordering::Relaxed);
    PHASE_SINCE.store(r.status().ticks.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// This replica's user space has just settled for the first time: tell the boot replica.
pub fn on_user_settled(r: &Replica) {
    if r.index == 0 {
        on_status(r);
    } else {
        doorbell::ring(r, 0, bell::STATUS);
    }
}

/// A replica's status changed.
pub fn on_status(r: &Replica) {
    report_new_failures(r);
    report_pds_started(r);
    if PHASE.load(Ordering::Relaxed) == WAITING && all_settled(r) {
        summarise(r, "all replicas settled");
        start_ping(r);
    }
}

/// A timer tick on replica 0's primary core.
pub fn on_tick(r: &Replica, ticks: u64) {
    report_new_failures(r);
    report_pds_started(r);
    let since = ticks.saturating_sub(PHASE_SINCE.load(Ordering::Relaxed));
    match PHASE.load(Ordering::Relaxed) {
        WAITING if since >= BOOT_TIMEOUT_TICKS => {
            klog!("WARN", "boot timeout: not every replica came up");
            summarise(r, "boot timed out");
            start_ping(r);
        }
        WAITING => on_status(r),
        PINGING if since >= PING_TIMEOUT_TICKS => {
            klog!("ERROR", "ping ring timed out: the ping did not come back");
            enter(DONE, r);
        }
        DONE if r.spec.has_flag(flags::EXIT_WHEN_DONE)
            && since >= EXIT_DELAY_TICKS
            && (user_settled(r) || since >= SETTLE_TIMEOUT_TICKS) =>
        {
            if !user_settled(r) {
                klog!(
                    "WARN",
                    "user space of some replica never settled; powering off anyway"
                );
            }
            // A replica may have settled since the report at the top of this tick.
            report_pds_started(r);
            enter(EXITING, r);
            summarise(r, "final status");
            klog!("INFO", "boot checks done; powering off");
            console::drain(r);
            if let Some(uart) = r.console {
                uart.flush();
            }
            let err = firmware::system_off(r.psci);
            klog!("ERROR", "PSCI SYSTEM_OFF failed: {}", err.name());
        }
        _ => {}
    }
}

/// Once every replica has published a final state and every replica that is up has had its
/// user space settle, logs when the last one settled: boot to every PD started (its `init`
/// done and waiting for its first event).
fn report_pds_started(r: &Replica) {
    if PDS_STARTED_REPORTED.load(Ordering::Relaxed) || !all_settled(r) || !user_settled(r) {
        return;
    }
    PDS_STARTED_REPORTED.store(true, Ordering::Relaxed);
    let last = r
        .shared
        .status
        .iter()
        .take(r.replica_count())
        .filter(|s| s.state() == Some(ReplicaState::Up))
        .map(|s| s.settled_at.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let (ms, us, ns) = since_reset(r, last);
    klog!(
        "INFO",
        "every PD started and waiting for events at {ms}.{us:03} ms, {ns} ns"
    );
}

/// A virtual counter value as time since reset: whole milliseconds, the microseconds past
/// them, and the whole in nanoseconds (under `-icount shift=0` the machine's instruction
/// count, plus any time skipped while every core was idle).
fn since_reset(r: &Replica, count: u64) -> (u64, u64, u64) {
    let nanos = u128::from(count)
        .saturating_mul(1_000_000_000)
        .checked_div(u128::from(r.counter_hz))
        .map_or(0, |n| u64::try_from(n).unwrap_or(u64::MAX));
    let micros = nanos / 1000;
    (micros / 1000, micros % 1000, nanos)
}

/// Whether every replica that is up has had its user space settle (its PDs started and
/// waiting).
fn user_settled(r: &Replica) -> bool {
    r.shared
        .status
        .iter()
        .take(r.replica_count())
        .all(|s| s.state() != Some(ReplicaState::Up) || s.user_settled.load(Ordering::Acquire) != 0)
}

fn all_settled(r: &Replica) -> bool {
    r.shared
        .status
        .iter()
        .take(r.replica_count())
        .all(|s| matches!(s.state(), Some(ReplicaState::Up | ReplicaState::Down)))
}

/// Prints the epitaph of every replica that went down since the last call.
fn report_new_failures(r: &Replica) {
    for (index, status) in r.shared.status.iter().enumerate().take(r.replica_count()) {
        if status.state() != Some(ReplicaState::Down)
            || DOWN_REPORTED.load(Ordering::Relaxed) & (1 << index) != 0
        {
            continue;
        }
        DOWN_REPORTED.fetch_or(1 << index, Ordering::Relaxed);
        let esr = status.fault_esr.load(Ordering::Acquire);
        klog!(
            "ERROR",
            "K{index} is down: {} FAR {:#x} ELR {:#x} on core {}",
            Syndrome(esr),
            status.fault_far.load(Ordering::Acquire),
            status.fault_elr.load(Ordering::Acquire),
            status.fault_core.load(Ordering::Acquire)
        );
    }
}

/// The one-line view of every replica: `K0 up {0} ticks 5 | K1 up {1} ticks 4 | ...`.
fn summarise(r: &Replica, what: &str) {
    let mut line: LineBuf<LOG_LINE_BYTES> = LineBuf::new();
    for (index, status) in r.shared.status.iter().enumerate().take(r.replica_count()) {
        if index > 0 {
            let _ = line.write_str(" | ");
        }
        let state = status.state().map_or("corrupt", ReplicaState::name);
        let cores = status.cores_online.load(Ordering::Acquire);
        let ticks = status.ticks.load(Ordering::Relaxed);
        let _ = write!(line, "K{index} {state} {} ticks {ticks}", CoreSet(cores));
    }
    let (ms, us, nanos) = since_reset(r, arch::counter());
    let text = core::str::from_utf8(line.as_bytes()).unwrap_or("?");
    klog!(
        "INFO",
        "multikernel ({what} at {ms}.{us:03} ms, {nanos} ns): {text}"
    );
}

fn start_ping(r: &Replica) {
    if r.replica_count() < 2 {
        klog!("INFO", "single replica: no ping ring");
        enter(DONE, r);
        return;
    }
    enter(PINGING, r);
    klog!("INFO", "ping ring: sending to K1");
    if !doorbell::ring(r, 1, bell::PING) {
        klog!("WARN", "ping ring broken at the start: K1 is down");
        enter(DONE, r);
    }
}

/// A ping arrived from `sender`: pass it on, or (on replica 0) finish the ring.
pub fn on_ping(r: &Replica, sender: usize) {
    let expected = r.previous_replica(r.index);
    if sender != expected {
        klog!(
            "WARN",
            "ping from K{sender}, expected it from K{expected}; ignored"
        );
        return;
    }
    if r.index == 0 {
        let mut path: LineBuf<LOG_LINE_BYTES> = LineBuf::new();
        for i in 0..r.replica_count() {
            let _ = write!(path, "K{i} -> ");
        }
        let _ = path.write_str("K0");
        let text = core::str::from_utf8(path.as_bytes()).unwrap_or("?");
        klog!("INFO", "ping ring complete: {text}");
        enter(DONE, r);
        return;
    }
    let next = r.next_replica(r.index);
    klog!("INFO", "ping from K{sender}, passing to K{next}");
    if !doorbell::ring(r, next, bell::PING) {
        klog!("WARN", "cannot pass the ping: K{next} is down");
        doorbell::ring(r, 0, bell::PING_BROKEN);
    }
}

/// Replica `sender` could not pass the ping on.
pub fn on_ping_broken(r: &Replica, sender: usize) {
    if PHASE.load(Ordering::Relaxed) == PINGING {
        let next = r.next_replica(sender);
        klog!("WARN", "ping ring broken after K{sender}: K{next} is down");
        enter(DONE, r);
    }
}
