//! Watching the other replicas: restarting those that stopped (`restart="true"`), reporting
//! those that hang (`hung_after_ms`), and noticing those that came back.
//!
//! Every replica looks when a peer rings its status bell (a stopping replica's last core
//! rings every peer, and a restarted one rings every peer once it is up) and at each of its
//! primary core's ticks. For each stopped or silent peer one replica acts: the *keeper*,
//! the lowest-numbered replica that is up, other than the peer. The keeper of a stopped
//! peer that restarts claims it (`down` to `restarting`, one compare-and-swap), waits for
//! its primary core to be off (PSCI `AFFINITY_INFO`, yielding to the other cores meanwhile)
//! and starts that core at the loader's restart entry (PSCI `CPU_ON`), which places the
//! replica again and enters its kernel (the loader's `restart.rs`). That costs the keeper
//! a few PSCI calls; the work itself runs on the stopped replica's own core.
//!
//! A peer whose tick count stays frozen longer than its `hung_after_ms` is published `hung`
//! by its keeper (`up` to `hung`), which peers treat as down (nothing is delivered to it),
//! and its cores are sent the stop interrupt: a kernel that still takes interrupts stops
//! with an epitaph saying so, and is restarted like any stopped replica. PSCI has no call
//! that stops another core, so a core looping with interrupts masked stays as it is. If
//! the peer's ticks move again, it is published `up` again.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use atoll_abi::limits::MAX_REPLICAS;
use atoll_abi::shared::{ReplicaState, ReplicaStatus};
use atoll_boards::firmware;

use atoll_kernel_core::ping_ring::since_reset;
use atoll_kernel_core::watch::{self, TickWatch, Ticks};

use crate::console::klog;
use crate::replica::Replica;
use crate::{arch, doorbell};

/// Times the keeper asks whether a stopped replica's primary core is off, in one look,
/// before it leaves the restart to its next look.
const OFF_POLLS: u32 = 100;
/// Looks (a status bell or a tick each) after which a core that stays on makes the keeper
/// give the replica up: a second at 100 Hz.
const OFF_LOOKS: u32 = 100;

/// Per peer: looks in a row that found its primary core still on.
static OFF_TRIES: [AtomicU32; MAX_REPLICAS] = [const { AtomicU32::new(0) }; MAX_REPLICAS];

/// A restarted replica that stops again within this many of its ticks (1 s at 100 Hz) is
/// not restarted again (it is published `failed`): its own start-up fails, and a restart
/// would only repeat it.
const GRACE_TICKS: u64 = 100;

/// Per peer: the epoch this replica last saw.
static SEEN_EPOCH: [AtomicU32; MAX_REPLICAS] = [const { AtomicU32::new(0) }; MAX_REPLICAS];
/// Per peer: its tick count when this replica last looked, and since when.
static TICKS: [TickWatch; MAX_REPLICAS] = [const { TickWatch::new() }; MAX_REPLICAS];

/// Looks at every peer (a status bell, or a tick of the primary core).
pub fn watch(r: &Replica) {
    for (peer, status) in r.statuses().enumerate() {
        if peer == r.index {
            continue;
        }
        let keeper = keeper_of(r, peer) == Some(r.index);
        notice_epoch(peer, status, keeper);
        if !keeper {
            continue;
        }
        match status.state() {
            Some(ReplicaState::Down) if r.spec.restarts(peer) => restart(r, peer, status),
            Some(ReplicaState::Up | ReplicaState::Hung) => watch_ticks(r, peer, status),
            _ => {}
        }
    }
}

/// Notes a peer that came back with a new epoch; its keeper logs it.
fn notice_epoch(peer: usize, status: &ReplicaStatus, keeper: bool) {
    let Some(seen) = SEEN_EPOCH.get(peer) else {
        return;
    };
    let epoch = status.epoch.load(Ordering::Acquire);
    let up = status.state() == Some(ReplicaState::Up);
    if up && seen.swap(epoch, Ordering::Relaxed) != epoch && keeper {
        klog!("INFO", "K{peer} is back: restarted, epoch {epoch}");
    }
}

/// The replica that acts for `peer` (`atoll_kernel_core::watch::keeper_of`).
fn keeper_of(r: &Replica, peer: usize) -> Option<usize> {
    watch::keeper_of(r.statuses().map(ReplicaStatus::state), peer)
}

/// Claims the stopped `peer` and starts its primary core at the loader's restart entry.
fn restart(r: &Replica, peer: usize, status: &ReplicaStatus) {
    let Ok(index) = u32::try_from(peer) else {
        return;
    };
    let Some(core) = r.spec.first_core_of(index) else {
        return;
    };
    if status.cores_online.load(Ordering::Acquire) != 0 {
        return; // its cores are still stopping; the last one rings us
    }
    let epoch = status.epoch.load(Ordering::Acquire);
    let ticks = status.ticks.load(Ordering::Relaxed);
    if epoch != 0 && ticks < GRACE_TICKS {
        give_up(
            peer,
            status,
            format_args!(
                "it stopped {ticks} ticks into its restart (epoch {epoch}), and a restart \
                 would repeat it"
            ),
        );
        return;
    }
    let mpidr = r.core_mpidr(core);
    // A few polls at a look, with a `yield` between (which lets the stopping core run on a
    // machine that shares one host thread among the cores, as QEMU's round-robin does).
    if !firmware::is_off(r.psci, mpidr, OFF_POLLS, arch::yield_hint).unwrap_or(false) {
        // Still on: the next look tries again, for a while.
        let tries = OFF_TRIES.get(peer).map_or(u32::MAX, |t| {
            t.fetch_add(1, Ordering::Relaxed).saturating_add(1)
        });
        if tries >= OFF_LOOKS {
            give_up(
                peer,
                status,
                format_args!("its core {core} does not turn off (PSCI CPU_OFF refused?)"),
            );
        }
        return;
    }
    if let Some(t) = OFF_TRIES.get(peer) {
        t.store(0, Ordering::Relaxed);
    }
    if !status.swap_state(ReplicaState::Down, ReplicaState::Restarting) {
        return;
    }
    let entry = r.spec.loader.restart_entry;
    match firmware::cpu_on(r.psci, mpidr, entry, u64::from(index)) {
        Ok(()) => klog!(
            "INFO",
            "restarting K{peer}: its core {core} starts at the loader's restart entry"
        ),
        Err(e) => {
            status.set_state(ReplicaState::Down);
            klog!(
                "WARN",
                "K{peer} cannot be restarted now: PSCI CPU_ON core {core} answered {}; \
                 trying again at the next tick",
                e.name()
            );
        }
    }
}

/// Publishes `peer` failed (from down), and logs why, once.
fn give_up(peer: usize, status: &ReplicaStatus, why: core::fmt::Arguments<'_>) {
    if status.swap_state(ReplicaState::Down, ReplicaState::Failed) {
        klog!("ERROR", "K{peer} is not restarted again: {why}");
    }
}

/// Reports `peer` hung when its ticks stay frozen past its limit, and up again when they
/// move.
fn watch_ticks(r: &Replica, peer: usize, status: &ReplicaStatus) {
    let (Some(limit_ms), Some(seen)) = (r.spec.hung_after_ms(peer), TICKS.get(peer)) else {
        return;
    };
    let ticks = status.ticks.load(Ordering::Relaxed);
    let frozen = match seen.look(ticks, arch::counter()) {
        Ticks::Moving => {
            if status.swap_state(ReplicaState::Hung, ReplicaState::Up) {
                klog!(
                    "INFO",
                    "K{peer} is no longer hung: its ticks move again ({ticks})"
                );
            }
            return;
        }
        Ticks::Frozen(frozen) => frozen,
    };
    if !watch::is_hung(frozen, limit_ms, r.counter_hz)
        || !status.swap_state(ReplicaState::Up, ReplicaState::Hung)
    {
        return;
    }
    klog!(
        "ERROR",
        "K{peer} is hung: its ticks stayed at {ticks} for more than {limit_ms} ms; nothing is \
         delivered to it, and its cores are asked to stop"
    );
    let Some(&cores) = r.spec.replica_cores.get(peer) else {
        return;
    };
    for core in (0..64u32).filter(|c| cores & (1 << c) != 0) {
        r.gic
            .send_sgi(r.spec.gic.stop_sgi, r.core_mpidr(core), core);
    }
}

/// Back after a restart: rings every cross-replica channel word this replica sends on with
/// every bit its sender may set (`ReplicaSpec::word_bits`), through the receiving replica's
/// doorbell as any notification, so that each PD with a channel from this replica is
/// notified on it and its runtime, seeing the new epoch, tells it its peer restarted. A
/// peer with no channel from this replica is not interrupted. The restart cleared the words
/// before the new epoch was published, so these are the first bits of the new life.
pub fn announce(r: &Replica) {
    if r.status().epoch.load(Ordering::Acquire) == 0 {
        return;
    }
    let words = (0..64u32).zip(r.spec.word_bits).zip(r.spec.word_receiver);
    for ((word, bits), receiver) in words {
        if r.spec.words_out & (1 << word) != 0 && bits != 0 {
            doorbell::ring_pd_word(r, usize::from(receiver), word, bits);
        }
    }
}

/// The counter when this replica's previous life stopped, kept at start if it was
/// restarted (the stopping kernel left it in `settled_at`).
static STOPPED_AT: AtomicU64 = AtomicU64::new(0);

/// Called by the primary core as the replica starts: notes the peers' epochs, and keeps
/// when its previous life stopped, if it was restarted, and logs the restart.
pub fn on_start(r: &Replica) {
    // The peers' epochs as this life finds them: only later restarts are news.
    for (seen, status) in SEEN_EPOCH.iter().zip(r.statuses()) {
        seen.store(status.epoch.load(Ordering::Acquire), Ordering::Relaxed);
    }
    let epoch = r.status().epoch.load(Ordering::Acquire);
    if epoch == 0 {
        return;
    }
    let stopped = r.status().settled_at.load(Ordering::Relaxed);
    STOPPED_AT.store(stopped, Ordering::Relaxed);
    let (ms, us, ns) = since_reset(arch::counter().saturating_sub(stopped), r.counter_hz);
    klog!(
        "INFO",
        "restarted: epoch {epoch}, kernel started {ms}.{us:03} ms ({ns} ns) after the stop"
    );
}

/// The counter when a PD of this replica was last started (resumed by the initialiser, or
/// restarted), until user space first settles.
static PD_STARTED_AT: AtomicU64 = AtomicU64::new(0);

/// A PD of this replica was started.
pub fn pd_started() {
    if STOPPED_AT.load(Ordering::Relaxed) != 0 {
        PD_STARTED_AT.store(arch::counter(), Ordering::Relaxed);
    }
}

/// Called once user space has settled: logs how long the restart took, from the stop to
/// the last PD started (the initialiser starts them all before it finishes), and to every
/// PD waiting for events (which includes their own start-up work, a store's recovery).
pub fn on_settled(r: &Replica) {
    let stopped = STOPPED_AT.swap(0, Ordering::Relaxed);
    if stopped == 0 {
        return;
    }
    let started = PD_STARTED_AT.load(Ordering::Relaxed);
    let settled = r.status().settled_at.load(Ordering::Relaxed);
    let (ms, us, ns) = since_reset(started.saturating_sub(stopped), r.counter_hz);
    let (sms, sus, sns) = since_reset(settled.saturating_sub(stopped), r.counter_hz);
    klog!(
        "INFO",
        "restart time: {ms}.{us:03} ms ({ns} ns) from the stop to every PD started, \
         {sms}.{sus:03} ms ({sns} ns) to every PD waiting for events; epoch {}",
        r.status().epoch.load(Ordering::Relaxed)
    );
}
