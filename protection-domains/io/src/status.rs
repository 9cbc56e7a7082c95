//! `GET /status`: every replica as the kernels publish it on their status page (the first
//! page of the kernel shared area, mapped read-only into this PD: `device="atoll_status"`),
//! named from the system's directory the tool patched into this PD (`<setvar
//! directory="system">`).
//!
//! Nothing read here is trusted: the page is written by every replica's kernel, and a
//! replica that has failed may have left anything in its record. A state that is no state
//! reads as `down`, a replica index beyond the header's count is left out, and cores are
//! reported from the directory (what the description gives the replica), with the cores
//! the kernel says are online alongside.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use atoll_abi::directory::Directory;
use atoll_abi::limits::MAX_REPLICAS;
use atoll_abi::shared::{ReplicaState as Raw, StatusPage};
use atoll_http::{PdState, PdStatus, ReplicaState, ReplicaStatus, SystemStatus};

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
                }
            });
            let ticks = record.map_or(0, |r| r.ticks.load(Ordering::Relaxed));
            let online = record.map_or(0, |r| r.cores_online.load(Ordering::Relaxed));
            let entry = named.then(|| directory.replicas().nth(index)).flatten();
            let name = entry.map_or_else(|| alloc::format!("replica {index}"), |e| e.name().into());
            let cores_of = entry.map_or(online, |e| e.cores);
            let pds = if named {
                directory
                    .pds_of(index)
                    .map(|pd| PdStatus {
                        name: String::from(pd.name()),
                        // The monitors do not publish their PDs' states yet: a PD of a
                        // replica that is up was started by its monitor.
                        state: match state {
                            ReplicaState::Up => PdState::Running,
                            ReplicaState::Down => PdState::Stopped,
                            ReplicaState::Offline | ReplicaState::Booting => PdState::Starting,
                        },
                        faults: None,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ReplicaStatus {
                name,
                cores: (0..64).filter(|c| cores_of & (1 << c) != 0).collect(),
                state,
                ticks,
                pds,
                channels: Vec::new(),
            }
        })
        .collect();
    SystemStatus { replicas }
}
