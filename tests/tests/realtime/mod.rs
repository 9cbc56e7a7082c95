//! What the real-time and restart tests share: booting the real-time system under
//! `-icount` with QEMU's turns bounded, clients that load the I/O and storage replicas,
//! and reading the guest through QMP (`cargo xtask inspect`, the real-time statistics).
#![allow(
    dead_code,
    reason = "each test file that includes this module uses a part of it"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_channels::rt::{RT_REGION_BYTES, RtRegion, RtSnapshot};
use atoll_e2e::boot::image_of;
use atoll_e2e::service::{boot_with, free_port, fresh_disk, try_exchange};
use atoll_e2e::variants::Variant;
use atoll_runner::Running;
use atoll_runner::qmp::Qmp;
use zerocopy::FromBytes;

/// The longest turn QEMU gives a core, in virtual µs: long enough that QEMU's timer
/// for it costs little wall time, short enough that a release waits at most a few tens of
/// µs for its core's turn, far inside its 1 ms deadline (the bench bounds turns to 5 µs
/// for its jitter figures).
pub const TURN_US: u32 = 25;

/// Boots `variant` under `-icount` with QEMU's turns bounded and a fresh disk, runs
/// `checks` with QEMU and its port, and stops QEMU; on a failure, names the saved serial
/// log.
pub fn with_rt(
    board: &str,
    variant: &Variant,
    label: &str,
    extra: Vec<String>,
    checks: impl FnOnce(&mut Running, u16),
) -> String {
    let disk = fresh_disk(board, label);
    let port = free_port();
    let mut qemu = boot_with(board, variant, label, port, Some(&disk), |o| {
        o.icount = true;
        // The service's NIC gives the back-end the turns' timer hangs on.
        o.extra.extend(atoll_runner::bounded_turns(true, TURN_US));
        o.extra.extend(extra);
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        checks(&mut qemu, port);
    }));
    let outcome = qemu.stop().expect("the serial log is saved");
    if let Err(panic) = result {
        eprintln!("serial log saved at {}", outcome.log_path.display());
        std::panic::resume_unwind(panic);
    }
    outcome.serial
}

/// Clients that keep the I/O and storage replicas busy until stopped: `PUT`s of 4 KiB to 32
/// keys each and `GET /status`, one after another on fresh connections, four at a time.
/// Counts the answers that were successes.
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let clients = (0..4)
            .map(|c| {
                let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
                std::thread::spawn(move || {
                    let body = vec![b'a' + c as u8; 4096];
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let request = if i % 4 == 3 {
                            b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec()
                        } else {
                            let mut r = format!(
                                "PUT /kv/load-{c}-{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                                i % 32,
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&body);
                            r
                        };
                        let answer = try_exchange(port, &request).unwrap_or_default();
                        if answer.starts_with("HTTP/1.1 2") {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            clients,
        }
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            let _ = c.join();
        }
    }
}

/// The build's plan report for `variant`'s image of `board`.
pub fn plan_report(board: &str, variant: &Variant) -> serde_json::Value {
    let image = image_of(board, variant);
    let dir = image.parent().expect("the image's directory");
    atoll_runner::inspect::plan_report(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The guest-physical address of the `rt_stats` region in `variant`'s image, from the
/// build's report.
pub fn rt_stats_address(board: &str, variant: &Variant) -> u64 {
    let report = plan_report(board, variant);
    let region = report["memory_regions"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "rt_stats"))
        .expect("an rt_stats region");
    let address = region["phys_addr"].as_str().expect("its address");
    u64::from_str_radix(address.trim_start_matches("0x"), 16).expect("a hex address")
}

/// The real-time region at `address`, copied out of guest memory.
pub fn read_rt(qmp: &mut Qmp, address: u64, scratch: &Path) -> Option<RtSnapshot> {
    let bytes = qmp
        .read_physical(address, RT_REGION_BYTES as u64, scratch)
        .expect("the region");
    RtRegion::read_from_bytes(&bytes).ok()?.read(3)
}

/// QEMU's QMP socket for a test's boot, under `target/e2e-logs/`, and the arguments that
/// open it.
pub fn qmp_socket(board: &str, label: &str) -> (PathBuf, Vec<String>) {
    let socket = atoll_runner::target_dir()
        .join("e2e-logs")
        .join(format!("{board}-{label}.qmp"));
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).expect("the logs' directory");
    }
    let _ = std::fs::remove_file(&socket);
    let args = atoll_runner::qmp::server_args(&socket);
    (socket, args)
}

/// What `cargo xtask inspect --json` prints for the running `variant`, read through `qmp`.
pub fn inspect(board: &str, variant: &Variant, qmp: &mut Qmp, scratch: &Path) -> serde_json::Value {
    atoll_runner::inspect::snapshot(&plan_report(board, variant), qmp, scratch)
        .unwrap_or_else(|e| panic!("inspect: {e}"))
        .to_json()
}

/// The record of the cross-replica doorbell `from` -> `to` (replica names) in an
/// `inspect`.
pub fn doorbell<'a>(j: &'a serde_json::Value, from: &str, to: &str) -> &'a serde_json::Value {
    j["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter(|c| c["cross_replica"] == true)
        .flat_map(|c| c["doorbells"].as_array().into_iter().flatten())
        .find(|d| d["from"] == from && d["to"] == to)
        .unwrap_or_else(|| panic!("no doorbell {from} -> {to}: {j}"))
}

/// The entry of `list` whose `name` is `name`.
pub fn named<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}
