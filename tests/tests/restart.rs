//! A replica that stops comes back (`<replica restart="true">`), on every board, in the
//! real-time test system (`tests/systems/rt.xml`, every replica restartable), under
//! `-icount` with QEMU's turns bounded:
//!
//! - the storage replica faults while clients write to the store through the I/O replica
//!   and the real-time job runs: it comes back with epoch 1, the store recovers every
//!   acknowledged write from disk, `/kv` serves again, no request from before the fault is
//!   carried out after it, and the real-time job misses no deadline and hears nothing;
//! - each replica stops in turn, the boot replica included: storage and I/O by a fault,
//!   the real-time replica by a hang its peers find (`hung_after_ms`) and stop; each comes
//!   back, and the service serves throughout what it can;
//! - a replica that faults as it comes up, in every life, is restarted once and then given
//!   up (`failed`), and the others serve on;
//! - a fault in the loader while it restarts a replica gives that restart up, and the next
//!   replica's restart still happens (the restart lock was given back).

mod realtime;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atoll_e2e::service::{try_exchange, wait_for_store, wait_until_serving};
use atoll_e2e::variants::{
    RESTART_EACH, RESTART_LOADER_FAULT, RESTART_LOOP, RESTART_STORAGE, Variant,
};
use atoll_runner::Running;
use atoll_runner::qmp::Qmp;
use realtime::{Load, doorbell, inspect, named, qmp_socket, read_rt, rt_stats_address, with_rt};

/// How long a step may take in wall time.
const PATIENCE: Duration = Duration::from_secs(300);

/// Waits until the serial log holds `line`.
fn wait_for_line(qemu: &mut Running, line: &str) {
    let until = Instant::now() + PATIENCE;
    while !qemu.serial().contains(line) {
        assert!(qemu.is_running(), "QEMU stopped before {line:?}");
        assert!(Instant::now() < until, "no {line:?} in time");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One request on a fresh connection; the answer, or "" when the connection failed.
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> String {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    try_exchange(port, &r).unwrap_or_default()
}

/// The body of a `200` answer to `GET path`, if that is what came back.
fn get(port: u16, path: &str) -> Option<String> {
    let answer = request(port, "GET", path, b"");
    answer.starts_with("HTTP/1.1 200").then(|| {
        answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string()
    })
}

/// Writes `value` under `key`; whether the store acknowledged it.
fn put(port: u16, key: &str, value: &str) -> bool {
    request(port, "PUT", &format!("/kv/{key}"), value.as_bytes()).starts_with("HTTP/1.1 2")
}

/// Writes `value` under `key` until the store acknowledges it (a write that meets the store
/// restarting is refused, and sent again).
fn put_acked(port: u16, key: &str, value: &str) {
    let until = Instant::now() + PATIENCE;
    while !put(port, key, value) {
        assert!(Instant::now() < until, "PUT {key} never acknowledged");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `GET path` answers `200`.
fn wait_for_get(port: u16, path: &str) -> String {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(body) = get(port, path) {
            return body;
        }
        assert!(Instant::now() < until, "GET {path} never answered 200");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A client that writes one key, `seq`, with 1, 2, 3, … one request after another,
/// across whatever happens to the store: the last value the store acknowledged, and the
/// last one sent.
struct Sequence {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    client: std::thread::JoinHandle<()>,
}

impl Sequence {
    fn start(port: u16) -> Sequence {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let client = {
            let (stop, acked, sent) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&sent));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    sent.store(i, Ordering::Relaxed);
                    if put(port, "seq", &i.to_string()) {
                        acked.store(i, Ordering::Relaxed);
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        };
        Sequence {
            stop,
            acked,
            sent,
            client,
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops the client: (last acknowledged, last sent).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.join();
        (
            self.acked.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

/// Checks one replica in an `inspect`: up on its cores with `epoch`, marked restartable,
/// and, once restarted, the epitaph of its last stop on one of its cores (`esr_nonzero`:
/// a fault, not a stop asked for by a peer).
fn assert_replica(j: &serde_json::Value, name: &str, cores: &[u64], epoch: u64, esr_nonzero: bool) {
    let r = named(&j["replicas"], name);
    assert_eq!(r["state"], "up", "{r}");
    assert_eq!(r["epoch"], epoch, "{r}");
    assert_eq!(r["restarts"], epoch, "{r}");
    assert_eq!(r["restart"], true, "{r}");
    assert_eq!(r["cores"], serde_json::json!(cores), "{r}");
    assert_eq!(r["cores_online"], serde_json::json!(cores), "{r}");
    assert_eq!(r["settled"], true, "{r}");
    if epoch == 0 {
        assert!(r["fault"].is_null(), "{r}");
        return;
    }
    let fault = &r["fault"];
    assert!(
        cores.iter().any(|&c| fault["core"] == c),
        "the last stop on a core of the replica: {r}"
    );
    if esr_nonzero {
        assert!(fault["esr"].as_str().is_some_and(|e| e != "0x0"), "{r}");
    }
}

/// The PDs of `replica` in an `inspect`, all running without faults.
fn assert_pds_running(j: &serde_json::Value, pds: &[&str]) {
    for pd in pds {
        let p = named(&j["pds"], pd);
        assert_eq!(p["state"], "running", "{p}");
        assert_eq!(p["faults"], 0, "{p}");
    }
}

/// The epochs `GET /status` reports, by replica name.
fn status_epochs(port: u16) -> Vec<(String, String, u64)> {
    let body = wait_for_get(port, "/status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
    status["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                r["state"].as_str().unwrap_or("").to_string(),
                r["epoch"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// Lines of the serial log that report an error, but for those `expected` names.
fn unexpected_errors<'a>(serial: &'a str, expected: &[&str]) -> Vec<&'a str> {
    serial
        .lines()
        .filter(|l| l.contains("|ERROR") || l.contains("panicked") || l.contains("faulted"))
        .filter(|l| !expected.iter().any(|e| l.contains(e)))
        .collect()
}

fn storage_restarts(board: &str) {
    let variant: &Variant = &RESTART_STORAGE;
    let label = "restart-storage";
    let (socket, extra) = qmp_socket(board, label);
    let scratch = socket.with_extension("mem");
    let address = rt_stats_address(board, variant);
    let serial = with_rt(board, variant, label, extra, |qemu, port| {
        wait_until_serving(qemu, port);
        wait_for_store(port);
        // Writes the store acknowledged before the fault.
        for i in 0..8 {
            assert!(
                put(port, &format!("kept-{i}"), &format!("value {i}")),
                "kept-{i}"
            );
        }
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let before = read_rt(&mut qmp, address, &scratch).expect("the job's statistics");

        // Clients at work across the fault (`--inject-fault storage:4`).
        let sequence = Sequence::start(port);
        let load = Load::start(port);
        wait_for_line(qemu, "K2|FATAL");
        wait_for_line(qemu, "K2|INFO: restart time:");
        // The store serves again, and a write after the restart is acknowledged.
        assert_eq!(wait_for_get(port, "/kv/kept-0"), "value 0");
        let acked_at_restart = sequence.acked();
        let until = Instant::now() + PATIENCE;
        while sequence.acked() < acked_at_restart + 5 {
            assert!(
                Instant::now() < until,
                "no write acknowledged after the restart"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        load.stop();
        let (acked, sent) = sequence.stop();

        // Nothing acknowledged is lost, and no write from before the fault is carried
        // out after a later one: the value is the last acknowledged, or one sent after it.
        let seq: u64 = wait_for_get(port, "/kv/seq").parse().expect("a number");
        assert!(
            (acked..=sent).contains(&seq),
            "seq is {seq}: acknowledged up to {acked}, sent up to {sent}"
        );
        for i in 0..8 {
            assert_eq!(
                get(port, &format!("/kv/kept-{i}")).as_deref(),
                Some(&*format!("value {i}"))
            );
        }
        put_acked(port, "after", "the restart");
        assert_eq!(get(port, "/kv/after").as_deref(), Some("the restart"));

        // The real-time job went on, missed nothing, and heard nothing of it.
        let until = Instant::now() + PATIENCE;
        let after = loop {
            let now = read_rt(&mut qmp, address, &scratch);
            if let Some(s) = now.filter(|s| s.total.periods >= before.total.periods + 5000) {
                break s;
            }
            assert!(qemu.is_running(), "QEMU stopped");
            assert!(Instant::now() < until, "the job did not go on: {now:?}");
            std::thread::sleep(Duration::from_millis(500));
        };
        let (a, b) = (&before.total, &after.total);
        assert_eq!(b.deadline_misses, a.deadline_misses, "new misses");
        assert_eq!(
            b.skipped_releases, a.skipped_releases,
            "new skipped releases"
        );
        assert_eq!(
            b.interference.foreign_irqs, a.interference.foreign_irqs,
            "the job's core was interrupted"
        );

        // What `cargo xtask inspect` and `GET /status` show.
        let j = inspect(board, variant, &mut qmp, &scratch);
        assert_replica(&j, "storage", &[2, 3], 1, true);
        assert_replica(&j, "io", &[0], 0, false);
        assert_replica(&j, "rt", &[1], 0, false);
        assert_pds_running(&j, &["storage", "blk_driver", "io", "net_driver", "rt"]);
        // The restarted kernel's notice to io is a notification like any other: taken no
        // more often than sent, in both directions.
        for (from, to) in [("io", "storage"), ("storage", "io")] {
            let d = doorbell(&j, from, to);
            let (sent, received) = (d["sent"].as_u64(), d["received"].as_u64());
            assert!(
                sent.is_some_and(|s| s > 0) && received <= sent,
                "{from} -> {to}: {d}"
            );
        }
        let epochs = status_epochs(port);
        for (name, state, epoch) in [("io", "up", 0), ("rt", "up", 0), ("storage", "up", 1)] {
            assert!(
                epochs.contains(&(name.into(), state.into(), epoch)),
                "{name}: {epochs:?}"
            );
        }
    });
    for line in [
        "K0|INFO: restarting K2: its core 2 starts at the loader's restart entry",
        "LDR|INFO: restarting K2 on core 2 (epoch 1)",
        "K2|INFO: restarted: epoch 1",
        "K0|INFO: K2 is back: restarted, epoch 1",
        "io: the store's replica restarted; the next request opens a new session",
        "K2|INFO: restart time: ",
    ] {
        assert!(
            serial.contains(line),
            "no {line:?} in the serial log:\n{serial}"
        );
    }
    let errors = unexpected_errors(&serial, &["K0|ERROR: K2 is down"]);
    assert!(errors.is_empty(), "{errors:#?}");
}

fn each_in_turn(board: &str) {
    let variant: &Variant = &RESTART_EACH;
    let label = "restart-each";
    let (socket, extra) = qmp_socket(board, label);
    let scratch = socket.with_extension("mem");
    let serial = with_rt(board, variant, label, extra, |qemu, port| {
        wait_until_serving(qemu, port);
        wait_for_store(port);
        put_acked(port, "kept", "through every restart");
        // Storage stops at 3 s (a fault), the boot replica at 6 s (a fault), the real-time
        // replica hangs at 9 s and its keeper, the boot replica, stops it.
        wait_for_line(qemu, "K2|INFO: restart time:");
        assert_eq!(wait_for_get(port, "/kv/kept"), "through every restart");
        wait_for_line(qemu, "K0|INFO: restart time:");
        assert_eq!(wait_for_get(port, "/kv/kept"), "through every restart");
        wait_for_line(qemu, "K0|ERROR: K1 is hung");
        wait_for_line(qemu, "K1|INFO: restart time:");
        assert_eq!(wait_for_get(port, "/kv/kept"), "through every restart");
        let epochs = status_epochs(port);
        for name in ["io", "rt", "storage"] {
            assert!(
                epochs.contains(&(name.into(), "up".into(), 1)),
                "{name}: {epochs:?}"
            );
        }
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let j = inspect(board, variant, &mut qmp, &scratch);
        assert_replica(&j, "storage", &[2, 3], 1, true);
        assert_replica(&j, "io", &[0], 1, true);
        assert_replica(&j, "rt", &[1], 1, false);
        assert_pds_running(&j, &["storage", "blk_driver", "io", "net_driver", "rt"]);
    });
    for line in [
        "LDR|INFO: restarting K2 on core 2 (epoch 1)",
        // The boot replica, which owns the console, restarted by the next one up.
        "K0|FATAL: data abort",
        "K1|INFO: restarting K0: its core 0 starts at the loader's restart entry",
        "LDR|INFO: restarting K0 on core 0 (epoch 1)",
        "K1|INFO: K0 is back: restarted, epoch 1",
        "io: address 10.0.2.15/24",
        // The hang: found, stopped through its interrupts, restarted.
        "K1|INFO: self-test: hanging on purpose",
        "K1|FATAL: stopped by a peer that found this replica hung on core 1 of replica 1",
        "LDR|INFO: restarting K1 on core 1 (epoch 1)",
        "K0|INFO: K1 is back: restarted, epoch 1",
    ] {
        assert!(
            serial.contains(line),
            "no {line:?} in the serial log:\n{serial}"
        );
    }
    // Replica 0 reports every replica that stops, itself included as it stops.
    let errors = unexpected_errors(
        &serial,
        &[
            "K0|ERROR: K2 is down",
            "K0|ERROR: K0 is down",
            "K0|ERROR: K1 is hung",
            "K0|ERROR: K1 is down",
        ],
    );
    assert!(errors.is_empty(), "{errors:#?}");
}

fn given_up(board: &str) {
    let variant: &Variant = &RESTART_LOOP;
    let label = "restart-loop";
    let (socket, extra) = qmp_socket(board, label);
    let scratch = socket.with_extension("mem");
    let serial = with_rt(board, variant, label, extra, |qemu, port| {
        wait_for_line(qemu, "K0|ERROR: K2 is not restarted again: it stopped ");
        wait_until_serving(qemu, port);
        // The store is gone for good; the rest serves.
        let answer = request(port, "GET", "/kv/anything", b"");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let epochs = status_epochs(port);
        assert!(
            epochs.contains(&("storage".into(), "failed".into(), 1)),
            "{epochs:?}"
        );
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let j = inspect(board, variant, &mut qmp, &scratch);
        let storage = named(&j["replicas"], "storage");
        assert_eq!(storage["state"], "failed", "{storage}");
        assert_eq!(storage["epoch"], 1, "{storage}");
        assert_eq!(storage["cores_online"], serde_json::json!([]), "{storage}");
        assert!(
            storage["fault"]["esr"].as_str().is_some_and(|e| e != "0x0"),
            "{storage}"
        );
        assert_replica(&j, "io", &[0], 0, false);
        assert_replica(&j, "rt", &[1], 0, false);
    });
    // Restarted once, and stopped again at once: never a third life.
    assert_eq!(serial.matches("K2|FATAL").count(), 2, "{serial}");
    assert!(
        serial.contains("LDR|INFO: restarting K2 on core 2 (epoch 1)"),
        "{serial}"
    );
    assert!(!serial.contains("(epoch 2)"), "{serial}");
}

fn loader_fault_in_a_restart(board: &str) {
    let variant: &Variant = &RESTART_LOADER_FAULT;
    let label = "restart-loader-fault";
    let (socket, extra) = qmp_socket(board, label);
    let scratch = socket.with_extension("mem");
    let serial = with_rt(board, variant, label, extra, |qemu, port| {
        // Storage stops at 3 s and the loader faults as it restarts it; the real-time
        // replica stops at 5 s and is restarted: the restart lock was given back.
        wait_for_line(qemu, "LDR|ERROR: K2 cannot be restarted: loader exception");
        wait_for_line(qemu, "K1|INFO: restart time:");
        wait_until_serving(qemu, port);
        let epochs = status_epochs(port);
        for (name, state, epoch) in [("io", "up", 0), ("rt", "up", 1), ("storage", "failed", 1)] {
            assert!(
                epochs.contains(&(name.into(), state.into(), epoch)),
                "{name}: {epochs:?}"
            );
        }
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let j = inspect(board, variant, &mut qmp, &scratch);
        let storage = named(&j["replicas"], "storage");
        assert_eq!(storage["state"], "failed", "{storage}");
        assert_eq!(storage["cores_online"], serde_json::json!([]), "{storage}");
        assert_replica(&j, "rt", &[1], 1, true);
        assert_replica(&j, "io", &[0], 0, false);
    });
    for line in [
        "LDR|INFO: restarting K2 on core 2 (epoch 1)",
        "LDR|INFO: self-test: faulting on purpose in the restart",
        "LDR|INFO: restarting K1 on core 1 (epoch 1)",
        "K0|INFO: K1 is back: restarted, epoch 1",
    ] {
        assert!(
            serial.contains(line),
            "no {line:?} in the serial log:\n{serial}"
        );
    }
    // The loader wrote nothing to the console another replica owns.
    assert!(!serial.contains("LDR|FATAL"), "{serial}");
}

#[test]
fn qemu_virt_aarch64_a_loader_fault_in_a_restart_gives_only_that_restart_up() {
    loader_fault_in_a_restart("qemu_virt_aarch64");
}

#[test]
fn zcu102_a_loader_fault_in_a_restart_gives_only_that_restart_up() {
    loader_fault_in_a_restart("zcu102");
}

#[test]
fn imx8mp_evk_a_loader_fault_in_a_restart_gives_only_that_restart_up() {
    loader_fault_in_a_restart("imx8mp_evk");
}

#[test]
fn qemu_virt_aarch64_a_replica_that_fails_at_once_is_given_up() {
    given_up("qemu_virt_aarch64");
}

#[test]
fn zcu102_a_replica_that_fails_at_once_is_given_up() {
    given_up("zcu102");
}

#[test]
fn imx8mp_evk_a_replica_that_fails_at_once_is_given_up() {
    given_up("imx8mp_evk");
}

#[test]
fn qemu_virt_aarch64_storage_restarts_while_io_serves_and_rt_keeps_time() {
    storage_restarts("qemu_virt_aarch64");
}

#[test]
fn zcu102_storage_restarts_while_io_serves_and_rt_keeps_time() {
    storage_restarts("zcu102");
}

#[test]
fn imx8mp_evk_storage_restarts_while_io_serves_and_rt_keeps_time() {
    storage_restarts("imx8mp_evk");
}

#[test]
fn qemu_virt_aarch64_each_replica_restarts_in_turn() {
    each_in_turn("qemu_virt_aarch64");
}

#[test]
fn zcu102_each_replica_restarts_in_turn() {
    each_in_turn("zcu102");
}

#[test]
fn imx8mp_evk_each_replica_restarts_in_turn() {
    each_in_turn("imx8mp_evk");
}
