//! What every replica of a running (or stopped) system is doing, read from outside the guest:
//! the kernels' shared area and the channels' pending words, copied out of guest physical
//! memory through QMP ([`crate::qmp`]), decoded with the layouts of `atoll_abi::shared` and
//! named with the image's plan report (`report.json`, written beside the image by the
//! `microkit` tool).
//!
//! Nothing read is trusted: a replica that failed may have written anything into its
//! records. A value that decodes to nothing known is shown as such (`"corrupt"`), never a
//! panic.

use std::path::Path;
use std::sync::atomic::Ordering;

use atoll_abi::shared::{
    ReplicaState, SHARED_MAGIC, SHARED_VERSION, SharedArea, pd_words::WORD_BYTES,
};
use serde_json::{Value, json};
use zerocopy::{FromZeros, IntoBytes};

use crate::qmp::Qmp;

/// One look at the whole system.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The board the image was planned for.
    pub board: String,
    /// The shared area's layout version.
    pub version: u32,
    /// Every replica of the plan.
    pub replicas: Vec<Replica>,
    /// Every PD of the plan.
    pub pds: Vec<Pd>,
    /// Every channel of the plan.
    pub channels: Vec<Channel>,
    /// Each core's interference counters.
    pub cores: Vec<Core>,
}

/// A replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    /// Its name in `system.xml`.
    pub name: String,
    /// Its index.
    pub index: usize,
    /// Its cores.
    pub cores: Vec<u64>,
    /// Its published state (`offline`, `booting`, `up`, `down`, `restarting`, `hung`, or
    /// `corrupt`).
    pub state: String,
    /// Its epoch: how many times it was restarted (0 from the first boot).
    pub epoch: u32,
    /// Whether it is restarted when it stops (`restart="true"`, from the plan report).
    pub restart: bool,
    /// Cores running, as published.
    pub cores_online: Vec<u32>,
    /// Its primary core's timer ticks.
    pub ticks: u64,
    /// Whether its user space has settled once (every PD started and waiting).
    pub settled: bool,
    /// Its last fatal fault: once it is down, and after a restart (the previous life's).
    pub fault: Option<Fault>,
    /// Its log ring: lines waiting for the console's owner.
    pub log_queued: u32,
    /// Its log ring: lines dropped since the console's owner last looked.
    pub log_dropped: u32,
    /// Its doorbell inbox: pending bits from each sending replica (non-zero only).
    pub doorbells: Vec<(String, u64)>,
}

/// A replica's epitaph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The core it was taken on.
    pub core: u64,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `ELR_EL1`.
    pub elr: u64,
}

/// A PD.
#[derive(Clone, Debug, PartialEq)]
pub struct Pd {
    /// Its name.
    pub name: String,
    /// Its replica's name.
    pub replica: String,
    /// Its core.
    pub core: u64,
    /// Its priority.
    pub priority: u64,
    /// Its budget and period in µs.
    pub budget_us: u64,
    /// Its period in µs.
    pub period_us: u64,
    /// Its state as its kernel published it (`unpublished`, `starting`, `running`,
    /// `faulted`, `stopped`, or `corrupt`).
    pub state: String,
    /// Faults it has taken.
    pub faults: u32,
}

/// A channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Its ends: PD and channel id.
    pub ends: [(String, u64); 2],
    /// Whether its ends are in different replicas.
    pub cross_replica: bool,
    /// Its doorbells, one per direction that notifies across replicas.
    pub doorbells: Vec<Doorbell>,
}

/// One direction of a cross-replica channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doorbell {
    /// The sending PD.
    pub from: String,
    /// The receiving PD.
    pub to: String,
    /// The channel's bit in the receiver's word.
    pub bit: u64,
    /// Whether the bit is pending (rung, not yet taken by the receiving kernel).
    pub pending: bool,
    /// Notifies sent through the word (every channel of the word).
    pub sent: u64,
    /// Notifies refused because the receiver was down.
    pub dropped: u64,
    /// Times the receiving kernel took the word.
    pub received: u64,
}

/// One core's interference counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    /// The core's index.
    pub index: usize,
    /// Its replica.
    pub replica: String,
    /// Kernel entries.
    pub entries: u64,
    /// Interrupts: the kernel's timer, SGIs, devices.
    pub irqs: (u64, u64, u64),
    /// Replica-lock waits and their ticks.
    pub lock_waits: (u64, u64),
    /// Broadcast maintenance executed.
    pub broadcasts: u64,
}

fn hex(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key)
        .ok_or_else(|| format!("the plan report has no `{key}` here: {}", short(v)))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(120).collect()
}

fn number(v: &Value, key: &str) -> Result<u64, String> {
    hex(field(v, key)?).ok_or_else(|| format!("`{key}` is no number in {}", short(v)))
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    field(v, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{key}` is no string in {}", short(v)))
}

fn list<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    field(v, key)?
        .as_array()
        .ok_or_else(|| format!("`{key}` is no list in {}", short(v)))
}

/// The plan report the build writes beside the image in `dir` (`report.json`), which
/// [`snapshot`] and the GDB script (`crate::gdb`) name what they find with.
///
/// # Errors
/// The file is missing or is no JSON, said with its path.
pub fn plan_report(dir: &Path) -> Result<Value, String> {
    let path = dir.join("report.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// The kernel shared region of the plan `report`: its base and size.
///
/// # Errors
/// The report has no such region.
pub fn shared_region(report: &Value) -> Result<(u64, u64), String> {
    let region = field(report, "kernel_shared")?;
    Ok((number(region, "base")?, number(region, "size")?))
}

/// Reads the system's state through `qmp` (`scratch` is a host file QEMU may write) and
/// names it with the plan `report`.
///
/// # Errors
/// QEMU could not be read, the report is not a plan report, or the shared area is not one
/// of this layout (the system is not booted yet, or is another version of Atoll).
pub fn snapshot(report: &Value, qmp: &mut Qmp, scratch: &Path) -> Result<Snapshot, String> {
    let (base, size) = shared_region(report)?;
    let bytes = qmp.read_physical(base, size, scratch)?;
    decode(report, &bytes)
}

/// Decodes the kernel shared region's `bytes` (from its base) with the plan `report`.
///
/// # Errors
/// As [`snapshot`].
pub fn decode(report: &Value, bytes: &[u8]) -> Result<Snapshot, String> {
    let (base, _) = shared_region(report)?;
    let mut area = SharedArea::new_box_zeroed().map_err(|_| "out of memory".to_string())?;
    let image = area.as_mut_bytes();
    let prefix = bytes.get(..image.len()).ok_or_else(|| {
        format!(
            "{} bytes of shared region; its area needs {}",
            bytes.len(),
            image.len()
        )
    })?;
    image.copy_from_slice(prefix);
    let header = &area.header;
    if header.magic != SHARED_MAGIC {
        return Err(format!(
            "no Atoll shared area at {base:#x} (magic {:02x?}): the loader has not run yet, or this is not the image of this report",
            header.magic
        ));
    }
    if header.version != SHARED_VERSION {
        return Err(format!(
            "the shared area's layout is version {}; this tool reads version {SHARED_VERSION}",
            header.version
        ));
    }

    let mut replicas = Vec::new();
    let mut pds = Vec::new();
    for r in list(report, "replicas")? {
        let name = text(r, "name")?;
        let index = number(r, "index")? as usize;
        let cores: Vec<u64> = list(r, "cores")?.iter().filter_map(hex).collect();
        let status = area
            .status
            .get(index)
            .ok_or_else(|| format!("replica index {index} is beyond the status table"))?;
        let state = status.state();
        let online = status.cores_online.load(Ordering::Relaxed);
        let epoch = status.epoch.load(Ordering::Relaxed);
        let stopped = matches!(
            state,
            Some(ReplicaState::Down | ReplicaState::Restarting | ReplicaState::Failed)
        );
        let fault = (stopped || epoch != 0).then(|| Fault {
            core: u64::from(status.fault_core.load(Ordering::Relaxed)),
            esr: status.fault_esr.load(Ordering::Relaxed),
            far: status.fault_far.load(Ordering::Relaxed),
            elr: status.fault_elr.load(Ordering::Relaxed),
        });
        let log = area.logs.get(index);
        let (log_queued, log_dropped) = log.map_or((0, 0), |l| {
            let head = l.producer.head.load(Ordering::Relaxed);
            let tail = l.consumer.tail.load(Ordering::Relaxed);
            (
                head.wrapping_sub(tail),
                l.producer.dropped.load(Ordering::Relaxed),
            )
        });
        replicas.push(Replica {
            name: name.clone(),
            index,
            cores,
            state: state.map_or("corrupt", ReplicaState::name).to_string(),
            epoch,
            restart: r.get("restart").and_then(Value::as_bool).unwrap_or(false),
            cores_online: (0..64).filter(|b| online & (1 << b) != 0).collect(),
            ticks: status.ticks.load(Ordering::Relaxed),
            settled: status.user_settled.load(Ordering::Relaxed) == 1,
            fault,
            log_queued,
            log_dropped,
            doorbells: Vec::new(),
        });
        for pd in list(r, "protection_domains")? {
            let record = area.pds.get(number(pd, "status_index")? as usize);
            let view = record.map(atoll_abi::shared::PdRecord::read);
            pds.push(Pd {
                name: text(pd, "name")?,
                replica: name.clone(),
                core: number(pd, "core")?,
                priority: number(pd, "priority")?,
                budget_us: number(pd, "budget_us")?,
                period_us: number(pd, "period_us")?,
                state: view
                    .and_then(|v| v.state)
                    .map_or("corrupt", |s| s.name())
                    .to_string(),
                faults: view.map_or(0, |v| v.faults),
            });
        }
    }
    // Each inbox's pending bits, by sending replica's name.
    let name_of = |index: usize| {
        replicas
            .iter()
            .find(|r| r.index == index)
            .map_or_else(|| format!("replica {index}"), |r| r.name.clone())
    };
    let pending: Vec<Vec<(String, u64)>> = replicas
        .iter()
        .map(|r| {
            area.doorbells
                .get(r.index)
                .into_iter()
                .flat_map(|inbox| inbox.from.iter().enumerate())
                .map(|(from, word)| (from, word.bits.load(Ordering::Relaxed)))
                .filter(|&(_, bits)| bits != 0)
                .map(|(from, bits)| (name_of(from), bits))
                .collect()
        })
        .collect();
    for (replica, pending) in replicas.iter_mut().zip(pending) {
        replica.doorbells = pending;
    }

    let mut channels = Vec::new();
    for c in list(report, "channels")? {
        let ends = list(c, "ends")?;
        let end = |i: usize| -> Result<(String, u64), String> {
            let e = ends
                .get(i)
                .and_then(Value::as_array)
                .ok_or_else(|| format!("a channel without two ends: {}", short(c)))?;
            let pd = e.first().and_then(Value::as_str).unwrap_or("?").to_string();
            let id = e.get(1).and_then(hex).unwrap_or(0);
            Ok((pd, id))
        };
        let mut doorbells = Vec::new();
        for d in c
            .get("doorbells")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let word = number(d, "pending_word")?;
            let bit = number(d, "bit")?;
            let offset = word.checked_sub(base).map(|o| o as usize);
            let bits = offset
                .and_then(|o| bytes.get(o..o.checked_add(WORD_BYTES as usize)?))
                .and_then(|w| w.get(..8))
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .map_or(0, u64::from_le_bytes);
            let record = area
                .words
                .get(number(d, "word")? as usize)
                .and_then(|w| w.read(replicas.len()));
            doorbells.push(Doorbell {
                from: text(d, "from")?,
                to: text(d, "to")?,
                bit,
                pending: bit < 64 && bits & (1 << bit) != 0,
                sent: record.map_or(0, |w| w.sent),
                dropped: record.map_or(0, |w| w.dropped),
                received: record.map_or(0, |w| w.received),
            });
        }
        channels.push(Channel {
            ends: [end(0)?, end(1)?],
            cross_replica: c
                .get("cross_replica")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            doorbells,
        });
    }

    let mut cores = Vec::new();
    for r in &replicas {
        for &core in &r.cores {
            if let Some(c) = area.cores.get(core as usize) {
                let v = c.read();
                cores.push(Core {
                    index: core as usize,
                    replica: r.name.clone(),
                    entries: v.entries,
                    irqs: (v.timer_irqs, v.sgis, v.devices),
                    lock_waits: (v.lock_waits, v.lock_wait_ticks),
                    broadcasts: v.broadcasts,
                });
            }
        }
    }
    cores.sort_by_key(|c| c.index);

    Ok(Snapshot {
        board: text(report, "board")?,
        version: header.version,
        replicas,
        pds,
        channels,
        cores,
    })
}

impl Snapshot {
    /// The snapshot as JSON (`cargo xtask inspect --json`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let hex = |v: u64| format!("{v:#x}");
        json!({
            "board": self.board,
            "shared_version": self.version,
            "replicas": self.replicas.iter().map(|r| json!({
                "name": r.name,
                "index": r.index,
                "cores": r.cores,
                "state": r.state,
                "epoch": r.epoch,
                "restarts": r.epoch,
                "restart": r.restart,
                "cores_online": r.cores_online,
                "ticks": r.ticks,
                "settled": r.settled,
                "fault": r.fault.map(|f| json!({
                    "core": f.core,
                    "esr": hex(f.esr),
                    "exception_class": hex((f.esr >> 26) & 0x3f),
                    "far": hex(f.far),
                    "elr": hex(f.elr),
                })),
                "log": { "queued": r.log_queued, "dropped": r.log_dropped },
                "doorbells_pending": r.doorbells.iter().map(|(from, bits)| json!({
                    "from": from, "bits": hex(*bits),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "pds": self.pds.iter().map(|p| json!({
                "name": p.name,
                "replica": p.replica,
                "core": p.core,
                "priority": p.priority,
                "budget_us": p.budget_us,
                "period_us": p.period_us,
                "state": p.state,
                "faults": p.faults,
            })).collect::<Vec<_>>(),
            "channels": self.channels.iter().map(|c| json!({
                "ends": c.ends.iter().map(|(pd, id)| json!([pd, id])).collect::<Vec<_>>(),
                "cross_replica": c.cross_replica,
                "doorbells": c.doorbells.iter().map(|d| json!({
                    "from": d.from,
                    "to": d.to,
                    "bit": d.bit,
                    "pending": d.pending,
                    "sent": d.sent,
                    "dropped": d.dropped,
                    "received": d.received,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "cores": self.cores.iter().map(|c| json!({
                "index": c.index,
                "replica": c.replica,
                "entries": c.entries,
                "timer_irqs": c.irqs.0,
                "sgis": c.irqs.1,
                "device_irqs": c.irqs.2,
                "lock_waits": c.lock_waits.0,
                "lock_wait_ticks": c.lock_waits.1,
                "broadcasts": c.broadcasts,
            })).collect::<Vec<_>>(),
        })
    }

    /// The snapshot as tables for a terminal (`cargo xtask inspect`).
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = format!(
            "board {} (shared area v{})\n\nREPLICA   STATE      EPOCH  CORES    ONLINE   TICKS      LOG  DROPPED  LAST FAULT\n",
            self.board, self.version
        );
        let cores = |c: &[u64]| c.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        for r in &self.replicas {
            let online: Vec<u64> = r.cores_online.iter().map(|&c| u64::from(c)).collect();
            let fault = r.fault.map_or_else(
                || "-".to_string(),
                |f| {
                    format!(
                        "core {} ESR {:#x} (class {:#x}) FAR {:#x} ELR {:#x}",
                        f.core,
                        f.esr,
                        (f.esr >> 26) & 0x3f,
                        f.far,
                        f.elr
                    )
                },
            );
            t.push_str(&format!(
                "{:<9} {:<10} {:<6} {:<8} {:<8} {:<10} {:<4} {:<8} {}\n",
                r.name,
                r.state,
                r.epoch,
                cores(&r.cores),
                cores(&online),
                r.ticks,
                r.log_queued,
                r.log_dropped,
                fault
            ));
        }
        t.push_str(
            "\nPD             REPLICA   CORE  PRIO  BUDGET/PERIOD us  STATE        FAULTS\n",
        );
        for p in &self.pds {
            t.push_str(&format!(
                "{:<14} {:<9} {:<5} {:<5} {:<17} {:<12} {}\n",
                p.name,
                p.replica,
                p.core,
                p.priority,
                format!("{}/{}", p.budget_us, p.period_us),
                p.state,
                p.faults
            ));
        }
        t.push_str("\nCHANNEL (cross-replica)           PENDING  SENT      DROPPED  RECEIVED\n");
        for c in self.channels.iter().filter(|c| c.cross_replica) {
            for d in &c.doorbells {
                t.push_str(&format!(
                    "{:<33} {:<8} {:<9} {:<8} {}\n",
                    format!("{} -> {} (bit {})", d.from, d.to, d.bit),
                    if d.pending { "yes" } else { "-" },
                    d.sent,
                    d.dropped,
                    d.received
                ));
            }
        }
        let pending: Vec<String> = self
            .replicas
            .iter()
            .flat_map(|r| {
                r.doorbells
                    .iter()
                    .map(move |(from, bits)| format!("{from} -> {}: {bits:#x}", r.name))
            })
            .collect();
        if !pending.is_empty() {
            t.push_str(&format!(
                "doorbell inboxes pending: {}\n",
                pending.join("; ")
            ));
        }
        t.push_str(
            "\nCORE  REPLICA   ENTRIES     TIMER IRQS  SGIS      DEVICE IRQS  LOCK WAITS  BROADCASTS\n",
        );
        for c in &self.cores {
            t.push_str(&format!(
                "{:<5} {:<9} {:<11} {:<11} {:<9} {:<12} {:<11} {}\n",
                c.index,
                c.replica,
                c.entries,
                c.irqs.0,
                c.irqs.1,
                c.irqs.2,
                c.lock_waits.0,
                c.broadcasts
            ));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_abi::shared::{PdState, SHARED_AREA_SIZE};

    fn report() -> Value {
        json!({
            "board": "qemu_virt_aarch64",
            "kernel_shared": { "base": "0x41000000", "size": "0x50000" },
            "replicas": [
                { "name": "io", "index": 0, "cores": [0], "protection_domains": [
                    { "name": "io", "core": 0, "priority": 150, "budget_us": 1000,
                      "period_us": 1000, "status_index": 1 } ] },
                { "name": "storage", "index": 1, "cores": [2, 3], "protection_domains": [
                    { "name": "storage", "core": 2, "priority": 100, "budget_us": 500,
                      "period_us": 1000, "status_index": 0 } ] },
            ],
            "channels": [
                { "ends": [["io", 0], ["storage", 0]], "cross_replica": true, "doorbells": [
                    { "from": "io", "to": "storage", "bit": 0, "word": 0,
                      "pending_word": format!("{:#x}", 0x4100_0000 + SHARED_AREA_SIZE) },
                    { "from": "storage", "to": "io", "bit": 3, "word": 1,
                      "pending_word": format!("{:#x}", 0x4100_0000 + SHARED_AREA_SIZE + 64) },
                ] },
            ],
        })
    }

    /// A shared region as a booted system leaves it: the io replica down after a fault,
    /// storage up.
    fn region() -> Vec<u8> {
        let mut area = SharedArea::new_box_zeroed().unwrap();
        area.header.magic = SHARED_MAGIC;
        area.header.version = SHARED_VERSION;
        area.header.replica_count = 2;
        area.status[0].set_state(ReplicaState::Down);
        area.status[0]
            .fault_esr
            .store(0x9600_0045, Ordering::Relaxed);
        area.status[0].fault_far.store(0xdead, Ordering::Relaxed);
        area.status[1].set_state(ReplicaState::Up);
        area.status[1].ticks.store(420, Ordering::Relaxed);
        area.status[1].cores_online.store(0b1100, Ordering::Relaxed);
        area.pds[0].publish(PdState::Running, 0);
        area.pds[1].publish(PdState::Faulted, 2);
        area.words[0].count_send(0, 1, true);
        area.words[0].count_send(0, 1, false);
        area.logs[1].push(b"a line");
        area.doorbells[1].from[0].bits.store(1, Ordering::Relaxed);
        let mut bytes = area.as_mut_bytes().to_vec();
        bytes.resize(0x50000, 0);
        // The storage-to-io word has bit 3 pending.
        let word = SHARED_AREA_SIZE as usize + 64;
        bytes[word..word + 8].copy_from_slice(&8u64.to_le_bytes());
        bytes
    }

    #[test]
    fn a_region_is_decoded_and_named() {
        let s = decode(&report(), &region()).unwrap();
        let io = &s.replicas[0];
        assert_eq!(io.state, "down");
        assert_eq!(io.fault.unwrap().esr, 0x9600_0045);
        let storage = &s.replicas[1];
        assert_eq!(
            (
                storage.state.as_str(),
                storage.ticks,
                storage.cores_online.clone()
            ),
            ("up", 420, vec![2, 3])
        );
        assert_eq!(storage.fault, None);
        assert_eq!(storage.log_queued, 1);
        assert_eq!(storage.doorbells, vec![("io".to_string(), 1)]);
        assert_eq!(
            (
                s.pds[0].name.as_str(),
                s.pds[0].state.as_str(),
                s.pds[0].faults
            ),
            ("io", "faulted", 2)
        );
        assert_eq!((s.pds[1].state.as_str(), s.pds[1].faults), ("running", 0));
        let d = &s.channels[0].doorbells;
        assert_eq!((d[0].pending, d[0].sent, d[0].dropped), (false, 1, 1));
        assert!(d[1].pending);
        let j = s.to_json();
        assert_eq!(j["replicas"][0]["fault"]["exception_class"], "0x25");
        assert_eq!(j["channels"][0]["doorbells"][1]["pending"], true);
        assert!(s.table().contains("ESR 0x96000045"));
    }

    #[test]
    fn garbage_is_refused_or_shown_as_corrupt_never_a_panic() {
        let report = report();
        assert!(decode(&report, &[0; 16]).unwrap_err().contains("bytes"));
        assert!(
            decode(&report, &vec![0; 0x50000])
                .unwrap_err()
                .contains("magic")
        );
        let mut bytes = region();
        bytes[8] = 99; // the version
        assert!(decode(&report, &bytes).unwrap_err().contains("version 99"));
        let mut bytes = region();
        // A state word and a PD record that decode to nothing.
        let state = std::mem::offset_of!(SharedArea, status);
        bytes[state..state + 4].copy_from_slice(&77u32.to_le_bytes());
        let pd = std::mem::offset_of!(SharedArea, pds);
        bytes[pd..pd + 4].copy_from_slice(&77u32.to_le_bytes());
        let s = decode(&report, &bytes).unwrap();
        assert_eq!(s.replicas[0].state, "corrupt");
        assert_eq!(s.pds[1].state, "corrupt");
        // A report that is no plan report.
        assert!(decode(&json!({}), &bytes).is_err());
        assert!(decode(&json!({"kernel_shared": {"base": 1, "size": 2}}), &bytes).is_err());
    }
}
