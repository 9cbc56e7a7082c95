//! The boot protocol between replicas, run by the boot replica (replica 0): wait until every
//! replica has published a final boot state, print the one-line summary of all replicas,
//! send the ping round the ring (0 -> 1 -> ... -> 0), and in test builds power off once
//! done. Every step is driven by doorbells and timer ticks; nothing spins on another
//! replica.
//!
//! The rules (phases, timeouts, who passes the ping where) are
//! `atoll_kernel_core::ping_ring`'s, tested on the host; this module reads the status
//! records, rings the doorbells and prints.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::shared::{ReplicaState, bell};
use atoll_abi::spec::flags;
use atoll_boards::firmware;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::{CoreSet, LineBuf};
use atoll_kernel_core::ping_ring::{Hop, PingRing, PingStart, Tick, since_reset, write_path};

use crate::console::{self, klog};
use crate::replica::Replica;
use crate::{arch, doorbell};

/// This replica's progress (only replica 0's leaves the wait).
static RING: PingRing = PingRing::new();

/// Ticks the channel traffic must stay unchanged before the boot replica reports it.
const TRAFFIC_QUIET_TICKS: u64 = 100;
/// The channel traffic's sum of counts at the last tick, when it last changed, and when
/// it was last reported (replica 0's primary core alone writes them, on its ticks).
static TRAFFIC_SEEN: AtomicU64 = AtomicU64::new(0);
static TRAFFIC_CHANGED_AT: AtomicU64 = AtomicU64::new(0);
static TRAFFIC_REPORTED: AtomicU64 = AtomicU64::new(0);

/// This replica's tick count now.
fn now(r: &Replica) -> u64 {
    r.status().ticks.load(Ordering::Relaxed)
}

/// This replica's user space has just settled for the first time: tell the boot replica.
pub fn on_user_settled(r: &Replica) {
    if r.index == 0 {
        on_status(r);
    } else {
        doorbell::ring_peer(r, 0, bell::STATUS);
    }
}

/// A replica's status changed.
pub fn on_status(r: &Replica) {
    report_new_failures(r);
    report_pds_started(r);
    if let Some(start) = RING.on_status(now(r), r.replica_count(), || all_final(r)) {
        summarise(r, "all replicas settled");
        start_ping(r, start);
    }
}

/// A timer tick on replica 0's primary core.
pub fn on_tick(r: &Replica, ticks: u64) {
    report_new_failures(r);
    report_pds_started(r);
    report_quiet_traffic(r, ticks);
    let exit = r.spec.has_flag(flags::EXIT_WHEN_DONE);
    match RING.on_tick(ticks, r.replica_count(), exit, || users_settled(r)) {
        Tick::Idle => {}
        Tick::Status => on_status(r),
        Tick::BootTimeout(start) => {
            klog!("WARN", "boot timeout: not every replica came up");
            summarise(r, "boot timed out");
            start_ping(r, start);
        }
        Tick::PingTimeout => klog!("ERROR", "ping ring timed out: the ping did not come back"),
        Tick::PowerOff { settled } => power_off(r, settled),
    }
}

/// Prints the final status and powers the machine off (test builds).
fn power_off(r: &Replica, settled: bool) {
    if !settled {
        klog!(
            "WARN",
            "user space of some replica never settled; powering off anyway"
        );
    }
    // A replica may have settled since the report at the top of this tick.
    report_pds_started(r);
    summarise(r, "final status");
    report_channel_traffic(r);
    klog!("INFO", "boot checks done; powering off");
    console::drain(r);
    if let Some(uart) = r.console {
        uart.flush();
    }
    let err = firmware::system_off(r.psci);
    klog!("ERROR", "PSCI SYSTEM_OFF failed: {}", err.name());
}

/// Once every replica has published a final state and every replica that is up has had its
/// user space settle, logs when the last one settled: boot to every PD started (its `init`
/// done and waiting for its first event).
fn report_pds_started(r: &Replica) {
    if !RING.pds_started(|| all_final(r), || users_settled(r)) {
        return;
    }
    let last = r
        .statuses()
        .filter(|s| s.state() == Some(ReplicaState::Up))
        .map(|s| s.settled_at.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let (ms, us, ns) = since_reset(last, r.counter_hz);
    klog!(
        "INFO",
        "every PD started and waiting for events at {ms}.{us:03} ms, {ns} ns"
    );
}

/// Whether every replica that is up has had its user space settle (its PDs started and
/// waiting).
fn users_settled(r: &Replica) -> bool {
    r.statuses()
        .all(|s| s.state() != Some(ReplicaState::Up) || s.user_settled.load(Ordering::Acquire) != 0)
}

/// Whether every replica has published a final boot state (up or down).
fn all_final(r: &Replica) -> bool {
    r.statuses().all(|s| {
        matches!(
            s.state(),
            Some(ReplicaState::Up | ReplicaState::Down | ReplicaState::Failed)
        )
    })
}

/// Prints the epitaph of every replica that went down since the last call.
fn report_new_failures(r: &Replica) {
    for (index, status) in r.statuses().enumerate() {
        if status.state() != Some(ReplicaState::Down) || !RING.newly_down(index) {
            continue;
        }
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
    for (index, status) in r.statuses().enumerate() {
        if index > 0 {
            let _ = line.write_str(" | ");
        }
        let state = status.state().map_or("corrupt", ReplicaState::name);
        let cores = status.cores_online.load(Ordering::Acquire);
        let ticks = status.ticks.load(Ordering::Relaxed);
        let _ = write!(line, "K{index} {state} {} ticks {ticks}", CoreSet(cores));
    }
    let (ms, us, nanos) = since_reset(arch::counter(), r.counter_hz);
    let text = core::str::from_utf8(line.as_bytes()).unwrap_or("?");
    klog!(
        "INFO",
        "multikernel ({what} at {ms}.{us:03} ms, {nanos} ns): {text}"
    );
}

/// Reports the channel traffic once it has changed and then stayed the same for
/// [`TRAFFIC_QUIET_TICKS`] ticks: a burst of notifies across replicas is logged once, with
/// its final counts, when it is over.
fn report_quiet_traffic(r: &Replica, ticks: u64) {
    let sum = r
        .shared
        .words
        .iter()
        .filter_map(|w| w.read(r.replica_count()))
        .fold(0u64, |sum, v| {
            sum.wrapping_add(v.sent)
                .wrapping_add(v.received)
                .wrapping_add(v.dropped)
        });
    if sum != TRAFFIC_SEEN.load(Ordering::Relaxed) {
        TRAFFIC_SEEN.store(sum, Ordering::Relaxed);
        TRAFFIC_CHANGED_AT.store(ticks, Ordering::Relaxed);
        return;
    }
    let quiet = ticks.saturating_sub(TRAFFIC_CHANGED_AT.load(Ordering::Relaxed));
    if sum != TRAFFIC_REPORTED.load(Ordering::Relaxed) && quiet >= TRAFFIC_QUIET_TICKS {
        TRAFFIC_REPORTED.store(sum, Ordering::Relaxed);
        report_channel_traffic(r);
    }
}

/// Logs, for each pair of replicas whose PDs notified across, the traffic the kernels
/// counted on the status page: `channel traffic K0 -> K1: dropped 0, sent 62, received 9`
/// (received: the receiver's takes; notifies coalesce until it takes them).
fn report_channel_traffic(r: &Replica) {
    let count = r.replica_count();
    for from in 0..count {
        for to in 0..count {
            let mut total: Option<(u64, u64, u64)> = None;
            for view in r.shared.words.iter().filter_map(|w| w.read(count)) {
                if view.from == from && view.to == to {
                    let (s, v, d) = total.unwrap_or((0, 0, 0));
                    total = Some((
                        s.saturating_add(view.sent),
                        v.saturating_add(view.received),
                        d.saturating_add(view.dropped),
                    ));
                }
            }
            if let Some((sent, received, dropped)) = total {
                klog!(
                    "INFO",
                    "channel traffic K{from} -> K{to}: dropped {dropped}, sent {sent}, received {received}"
                );
            }
        }
    }
}

/// The wait is over: starts the ping (replica 0).
fn start_ping(r: &Replica, start: PingStart) {
    match start {
        PingStart::Single => klog!("INFO", "single replica: no ping ring"),
        PingStart::Send => {
            klog!("INFO", "ping ring: sending to K1");
            if !doorbell::ring_peer(r, 1, bell::PING) {
                klog!("WARN", "ping ring broken at the start: K1 is down");
                RING.not_sent(now(r));
            }
        }
    }
}

/// A ping arrived from `sender`: pass it on, or (on replica 0) finish the ring.
pub fn on_ping(r: &Replica, sender: usize) {
    match RING.on_ping(now(r), r.index, r.replica_count(), sender) {
        Hop::Ignore { expected } => klog!(
            "WARN",
            "ping from K{sender}, expected it from K{expected}; ignored"
        ),
        Hop::Complete => {
            let mut path: LineBuf<LOG_LINE_BYTES> = LineBuf::new();
            let _ = write_path(&mut path, r.replica_count());
            let text = core::str::from_utf8(path.as_bytes()).unwrap_or("?");
            klog!("INFO", "ping ring complete: {text}");
        }
        Hop::Pass { next } => {
            klog!("INFO", "ping from K{sender}, passing to K{next}");
            if !doorbell::ring_peer(r, next, bell::PING) {
                klog!("WARN", "cannot pass the ping: K{next} is down");
                doorbell::ring_peer(r, 0, bell::PING_BROKEN);
            }
        }
    }
}

/// Replica `sender` could not pass the ping on.
pub fn on_ping_broken(r: &Replica, sender: usize) {
    if let Some(next) = RING.on_ping_broken(now(r), r.replica_count(), sender) {
        klog!("WARN", "ping ring broken after K{sender}: K{next} is down");
    }
}
