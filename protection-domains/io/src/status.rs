//! `GET /status`: every replica as the kernels publish it on their status page (the first
//! page of the kernel shared area, mapped read-only into this PD: `device="atoll_status"`),
//! named from the system's directory the tool patched into this PD (`<setvar
//! directory="system">`).
//!
//! Each PD's `state` and `faults` come from its record in the page's PD table, at its
//! index in the directory, which its replica's kernel writes as the PD starts, faults, is
//! restarted and stops.
//!
//! Nothing read here is trusted: the page is written by every replica's kernel, and a
//! replica that has failed may have left anything in its record. A state that is no state
//! reads as `down` (a replica) or `stopped` (a PD), a replica index beyond the header's
//! count is left out, a fault count is just a number, and cores are reported from the
//! directory (what the description gives the replica), with the cores the kernel says are
//! online alongside. The PDs of a replica that is `down` are `stopped`, whatever their
//! records last said.
//!
//! A replica's `channels` are its cross-replica channel traffic, one entry per replica it
//! has notified (`"io → storage"`), summed over the channel words the kernels count on the
//! page: notifies `sent`, taken by the receiver (`received`: notifies coalesce until the
//! receiver takes them, so at most `sent`), and `dropped` because the receiver was down. A page of an older layout has no PD table: then, as before it had
//! one, a PD's state is guessed from its replica's and `faults` is `null`.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use atoll_abi::directory::Directory;
use atoll_abi::limits::MAX_REPLICAS;
use atoll_abi::shared::{PdState as RawPd, PdView, ReplicaState as Raw, StatusPage};
use atoll_http::{ChannelStatus, PdState, PdStatus, ReplicaState, ReplicaStatus, SystemStatus};

/// The system's status from the page (if mapped) and the directory.
pub fn read(page: Option<&StatusPage>, directory: &Directory) -> SystemStatus {
    let published = match page {
        Some(p) if p.header.is_current() => (p.header.replica_count as usize).min(MAX_REPLICAS),
        _ => 0,
    };
    let named = directory.check().is_ok();
    let count = if named {
        directory.replicas().count()
    } else {
        published
    };
    let names: Vec<String> = (0..count)
        .map(|index| {
            named
                .then(|| directory.replicas().nth(index))
                .flatten()
                .map_or_else(|| alloc::format!("replica {index}"), |e| e.name().into())
        })
        .collect();
    let replicas = (0..count)
        .map(|index| {
            let record = page
                .and_then(|p| p.status.get(index))
                .filter(|_| index < published);
            let state = record.map_or(ReplicaState::Offline, |r| {
                match Raw::from_raw(r.state.load(Ordering::Acquire)) {
                    Some(Raw::Offline) => ReplicaState::Offline,
                    Some(Raw::Booting) => ReplicaState::Booting,
                    Some(Raw::Up) => ReplicaState::Up,
                    Some(Raw::Down) | None => ReplicaState::Down,
                    Some(Raw::Restarting) => ReplicaState::Restarting,
                    Some(Raw::Hung) => ReplicaState::Hung,
                    Some(Raw::Failed) => ReplicaState::Failed,
                }
            });
            let epoch = record.map_or(0, |r| r.epoch.load(Ordering::Relaxed));
            let ticks = record.map_or(0, |r| r.ticks.load(Ordering::Relaxed));
            let online = record.map_or(0, |r| r.cores_online.load(Ordering::Relaxed));
            let entry = named.then(|| directory.replicas().nth(index)).flatten();
            let name = names.get(index).cloned().unwrap_or_default();
            let cores_of = entry.map_or(online, |e| e.cores);
            // The replica's PDs are `first_pd..` in the directory, as `pds_of` lists them.
            let first = entry.map_or(0, |e| e.first_pd as usize);
            let pds = if named {
                directory
                    .pds_of(index)
                    .enumerate()
                    .map(|(i, pd)| {
                        let record = page.and_then(|p| p.pd(first.saturating_add(i)));
                        let (state, faults) = pd_state(record, state);
                        PdStatus {
                            name: String::from(pd.name()),
                            state,
                            faults,
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ReplicaStatus {
                name,
                cores: (0..64).filter(|c| cores_of & (1 << c) != 0).collect(),
                state,
                epoch,
                ticks,
                pds,
                channels: page.map_or_else(Vec::new, |p| channels_of(p, index, &names)),
            }
        })
        .collect();
    SystemStatus { replicas }
}

/// A PD's state and fault count from its record (`None`: the page is absent or of an older
/// layout) and its replica's state.
fn pd_state(record: Option<PdView>, replica: ReplicaState) -> (PdState, Option<u64>) {
    let Some(view) = record else {
        // No PD table: a PD of a replica that is up was started by its monitor.
        let guess = match replica {
            ReplicaState::Up => PdState::Running,
            ReplicaState::Down | ReplicaState::Hung | ReplicaState::Failed => PdState::Stopped,
            ReplicaState::Offline | ReplicaState::Booting | ReplicaState::Restarting => {
                PdState::Starting
            }
        };
        return (guess, None);
    };
    let faults = Some(u64::from(view.faults));
    match (replica, view.state) {
        // Its kernel stopped with everything it ran (or hangs, cut off).
        (
            ReplicaState::Down | ReplicaState::Hung | ReplicaState::Failed,
            Some(RawPd::Unpublished),
        ) => (PdState::Stopped, None),
        (ReplicaState::Down | ReplicaState::Hung | ReplicaState::Failed, _) => {
            (PdState::Stopped, faults)
        }
        // Being placed again: its PDs start afresh, whatever their records still say.
        (ReplicaState::Restarting, _) => (PdState::Starting, None),
        // Not named yet: its replica's boot program has not reached it.
        (_, Some(RawPd::Unpublished)) => (PdState::Starting, None),
        (_, Some(RawPd::Starting)) => (PdState::Starting, faults),
        (_, Some(RawPd::Running)) => (PdState::Running, faults),
        (_, Some(RawPd::Faulted)) => (PdState::Faulted, faults),
        (_, Some(RawPd::Stopped) | None) => (PdState::Stopped, faults),
    }
}

/// The traffic replica `from` sent across replicas, one entry per receiving replica (in
/// index order), summed over the channel words counted on the page.
fn channels_of(page: &StatusPage, from: usize, names: &[String]) -> Vec<ChannelStatus> {
    let mut channels: Vec<(usize, ChannelStatus)> = Vec::new();
    for word in page.words().filter(|w| w.from == from) {
        let at = match channels.iter().position(|(to, _)| *to == word.to) {
            Some(at) => at,
            None => {
                let name = |r: usize| names.get(r).map_or("?", String::as_str);
                let entry = ChannelStatus {
                    name: alloc::format!("{} → {}", name(from), name(word.to)),
                    sent: 0,
                    received: 0,
                    dropped: 0,
                };
                channels.push((word.to, entry));
                channels.len() - 1
            }
        };
        if let Some((_, entry)) = channels.get_mut(at) {
            entry.sent = entry.sent.saturating_add(word.sent);
            entry.received = entry.received.saturating_add(word.received);
            entry.dropped = entry.dropped.saturating_add(word.dropped);
        }
    }
    channels.sort_by_key(|(to, _)| *to);
    channels.into_iter().map(|(_, c)| c).collect()
}
