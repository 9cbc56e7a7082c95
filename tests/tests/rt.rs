//! The real-time replica on every board, in the default multikernel layout with windows of
//! 5,000 periods (`tests/systems/rt.xml`):
//!
//! - idle, then under load (HTTP clients writing to the store and reading `/status`), a
//!   whole window meets every deadline, and its core suffers no foreign interrupt, no lock
//!   wait and no broadcast maintenance; `GET /rt` serves the statistics;
//! - with the I/O replica's kernel stopped on purpose while the job runs, the job goes on
//!   for another 5,000 periods with nothing new on its core: read from its statistics region
//!   in the guest's memory through QEMU's monitor, since the console went down with the I/O
//!   replica.
//!
//! Every boot runs under `-icount` (virtual time): the host's own load cannot make a job
//! late. QEMU then runs the four cores one after another, and a release that falls due
//! while another core runs waits for its core's turn: with long turns, a job can end after
//! its deadline in virtual time although nothing reached its core (with the other cores
//! merely spinning, up to 34 such misses in 10,000 periods, `docs/performance.md`). Every
//! boot therefore bounds QEMU's turns to [`realtime::TURN_US`] µs, as `cargo xtask bench` does
//! (`atoll_runner::bounded_turns`), and then every deadline must be met, idle and under
//! load.

mod realtime;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atoll_e2e::boot::image_of;
use atoll_e2e::rt::WindowLine;
use atoll_e2e::service::{exchange, wait_for_store, wait_until_serving};
use atoll_e2e::variants::{RT, RT_IO_FAULT};
use atoll_runner::Running;
use atoll_runner::qmp::Qmp;
use realtime::{Load, inspect, named, qmp_socket, read_rt, rt_stats_address, with_rt};

/// How long one window of 5,000 periods may take in wall time, under load.
const WINDOW_WAIT: Duration = Duration::from_secs(300);
/// Periods per window in the test system.
const PERIODS: u64 = 5_000;

/// The highest window index the serial log shows so far (0: none yet).
fn last_window(qemu: &Running) -> u64 {
    atoll_e2e::rt::last_index(&qemu.serial())
}

/// Waits for window `index`'s lines.
fn wait_for_window(qemu: &mut Running, index: u64) -> WindowLine {
    atoll_e2e::rt::wait_for(qemu, index, WINDOW_WAIT).unwrap_or_else(|e| panic!("{e}"))
}

/// A whole window with nothing foreign on the job's core.
fn assert_undisturbed(w: &WindowLine, what: &str) {
    assert_eq!(w.periods, PERIODS, "{what}: {w:?}");
    assert_eq!(w.foreign_irqs, (0, 0), "{what}: foreign interrupts: {w:?}");
    assert_eq!(w.lock_waits, (0, 0, 0), "{what}: lock waits: {w:?}");
    assert_eq!(w.broadcasts, (0, 0), "{what}: broadcast maintenance: {w:?}");
}

fn idle_and_loaded(board: &str) {
    let (socket, extra) = qmp_socket(board, "rt");
    let scratch = socket.with_extension("mem");
    let serial = with_rt(board, &RT, "rt", extra, |qemu, port| {
        wait_until_serving(qemu, port);
        wait_for_store(port);

        // Idle: the first window that starts after the service is up.
        let idle = wait_for_window(qemu, last_window(qemu) + 2);
        assert_undisturbed(&idle, "idle");
        assert!(idle.on_time(), "idle: a deadline missed: {idle:?}");

        // What `cargo xtask inspect` shows of the system before the load.
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let calm = inspect(board, &RT, &mut qmp, &scratch);

        // Under load: a window that starts after the clients have.
        let load = Load::start(port);
        let first = last_window(qemu) + 2;
        wait_for_window(qemu, first - 1);
        let before = load.answered();
        let loaded = wait_for_window(qemu, first);
        let during = load.answered() - before;
        // And at work: nothing new on the job's core but its own timer and entries.
        let inspected = inspect(board, &RT, &mut qmp, &scratch);
        load.stop();
        assert_inspected(board, &inspected, &[], true);
        let (was, is) = (job_core(&calm), job_core(&inspected));
        for quiet in ["sgis", "device_irqs", "lock_waits", "broadcasts"] {
            assert_eq!(was[quiet], is[quiet], "{quiet} under load: {was} then {is}");
        }
        assert!(
            is["timer_irqs"].as_u64() > was["timer_irqs"].as_u64(),
            "{was} then {is}"
        );
        assert!(
            during >= 20,
            "the load got only {during} answers during the window: no load"
        );
        assert_undisturbed(&loaded, "under load");
        assert!(
            loaded.on_time(),
            "under load: a deadline missed: {loaded:?}"
        );

        // The statistics through the API.
        let answer = exchange(
            port,
            b"GET /rt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let rt: serde_json::Value = serde_json::from_str(body).expect("/rt is JSON");
        assert_eq!(rt["period_ns"], 1_000_000, "{body}");
        assert_eq!(rt["window_periods"], PERIODS, "{body}");
        assert_eq!(rt["core"], 1, "{body}");
        let last = &rt["last"];
        assert!(
            last["index"].as_u64().unwrap_or(0) >= loaded.index,
            "{body}"
        );
        assert_eq!(last["periods"], PERIODS, "{body}");
        assert_eq!(last["interference"]["foreign_irqs"], 0, "{body}");
        assert!(
            rt["total"]["periods"].as_u64().unwrap_or(0) >= loaded.index * PERIODS,
            "{body}"
        );
        assert!(
            rt["total"]["jitter_histogram"]
                .as_array()
                .is_some_and(|h| !h.is_empty()),
            "{body}"
        );
    });
    for bad in ["|ERROR", "panicked", "faulted"] {
        assert!(
            !serial.contains(bad),
            "the serial log has {bad:?}:\n{serial}"
        );
    }
}

#[test]
fn qemu_virt_aarch64_rt_meets_every_deadline_idle_and_under_load() {
    idle_and_loaded("qemu_virt_aarch64");
}

#[test]
fn zcu102_rt_meets_every_deadline_idle_and_under_load() {
    idle_and_loaded("zcu102");
}

#[test]
fn imx8mp_evk_rt_meets_every_deadline_idle_and_under_load() {
    idle_and_loaded("imx8mp_evk");
}

/// The default layout's replicas, their cores and their PDs, as `inspect` must show them.
const LAYOUT: [(&str, &[u64], &[&str]); 3] = [
    ("io", &[0], &["net_driver", "io"]),
    ("rt", &[1], &["rt"]),
    ("storage", &[2, 3], &["storage", "blk_driver"]),
];

/// Checks an `inspect` of the default layout field by field, with the replicas in `down`
/// stopped by a fault and the others up; with `traffic`, the I/O and storage replicas have
/// notified each other both ways.
fn assert_inspected(board: &str, j: &serde_json::Value, down: &[&str], traffic: bool) {
    assert_eq!(j["board"], board, "{j}");
    assert_eq!(
        j["shared_version"],
        atoll_abi::shared::SHARED_VERSION,
        "{j}"
    );
    assert_eq!(j["replicas"].as_array().map(Vec::len), Some(3), "{j}");
    for (index, (name, cores, pds)) in LAYOUT.iter().enumerate() {
        let r = named(&j["replicas"], name);
        assert_eq!(r["index"], index, "{r}");
        assert_eq!(r["cores"], serde_json::json!(cores), "{r}");
        assert!(r["ticks"].as_u64().unwrap_or(0) > 100, "{r}");
        assert_eq!(r["settled"], true, "{r}");
        assert!(
            r["log"]["queued"].is_u64() && r["log"]["dropped"].is_u64(),
            "{r}"
        );
        if down.contains(name) {
            assert_eq!(r["state"], "down", "{r}");
            let fault = &r["fault"];
            assert!(fault["esr"].as_str().is_some_and(|e| e != "0x0"), "{r}");
            assert!(
                cores.iter().any(|&c| fault["core"] == c),
                "the fault on a core of the replica: {r}"
            );
        } else {
            assert_eq!(r["state"], "up", "{r}");
            assert_eq!(r["cores_online"], serde_json::json!(cores), "{r}");
            assert!(r["fault"].is_null(), "{r}");
        }
        for pd in *pds {
            let p = named(&j["pds"], pd);
            assert_eq!(p["replica"], *name, "{p}");
            assert!(cores.iter().any(|&c| p["core"] == c), "{p}");
            // A down replica's PDs keep the state their kernel published last.
            assert_eq!(p["state"], "running", "{p}");
            assert_eq!(p["faults"], 0, "{p}");
        }
    }
    if down.contains(&"io") {
        // The console's owner is gone: the job's window lines wait in its replica's ring.
        let queued = named(&j["replicas"], "rt")["log"]["queued"].as_u64();
        assert!(queued.is_some_and(|q| q >= 2), "{j}");
    }
    let rt = named(&j["pds"], "rt");
    assert_eq!(
        (&rt["priority"], &rt["budget_us"], &rt["period_us"]),
        (
            &serde_json::json!(200),
            &serde_json::json!(500),
            &serde_json::json!(1000)
        ),
        "{rt}"
    );
    // The io <-> storage channel, both ways.
    for (from, to) in [("io", "storage"), ("storage", "io")] {
        let d = realtime::doorbell(j, from, to);
        let (Some(sent), Some(received)) = (d["sent"].as_u64(), d["received"].as_u64()) else {
            panic!("no counts: {d}");
        };
        assert!(received <= sent, "{d}");
        assert!(!traffic || received > 0, "no traffic: {d}");
        assert!(d["dropped"].is_u64() && d["pending"].is_boolean(), "{d}");
    }
    let core = job_core(j);
    assert_eq!(core["replica"], "rt", "{core}");
    assert!(core["entries"].as_u64().unwrap_or(0) > 1000, "{core}");
    // Since boot: the ping round the replicas at boot is one doorbell to each.
    assert!(core["sgis"].as_u64().is_some_and(|n| n <= 1), "{core}");
    for quiet in ["device_irqs", "lock_waits", "lock_wait_ticks", "broadcasts"] {
        assert_eq!(core[quiet], 0, "{quiet}: {core}");
    }
}

/// The job's core's counters in an `inspect`.
fn job_core(j: &serde_json::Value) -> &serde_json::Value {
    j["cores"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["index"] == 1))
        .expect("core 1")
}

fn through_io_fault(board: &str) {
    let scratch: PathBuf = atoll_runner::target_dir()
        .join("e2e-logs")
        .join(format!("{board}-rt-io-fault.region"));
    let (socket, extra) = qmp_socket(board, "rt-io-fault");
    let address = rt_stats_address(board, &RT_IO_FAULT);
    with_rt(board, &RT_IO_FAULT, "rt-io-fault", extra, |qemu, _port| {
        // The I/O replica (K0, the console's owner) stops 4 s after boot
        // (`--inject-fault io:4`: at its 400th tick).
        let until = Instant::now() + WINDOW_WAIT;
        while !qemu.serial().contains("K0|FATAL") {
            assert!(qemu.is_running(), "QEMU stopped");
            assert!(Instant::now() < until, "the I/O replica never stopped");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            qemu.serial()
                .contains("faulting on purpose 400 ticks after boot"),
            "the fault at the tick asked for:\n{}",
            qemu.serial()
        );
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(30)).expect("QMP");
        let at_fault = read_rt(&mut qmp, address, &scratch).expect("the job's statistics");
        let until = Instant::now() + WINDOW_WAIT;
        let later = loop {
            let now = read_rt(&mut qmp, address, &scratch);
            if let Some(s) = now.filter(|s| s.header.releases >= at_fault.header.releases + PERIODS)
            {
                break s;
            }
            assert!(qemu.is_running(), "QEMU stopped");
            assert!(
                Instant::now() < until,
                "the job did not go on after the I/O replica stopped: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let (a, b) = (&at_fault.total, &later.total);
        assert!(b.periods >= a.periods + PERIODS, "{a:?} then {b:?}");
        assert_eq!(b.deadline_misses, a.deadline_misses, "new misses");
        assert_eq!(
            b.skipped_releases, a.skipped_releases,
            "new skipped releases"
        );
        assert_eq!(b.interference.foreign_irqs, a.interference.foreign_irqs);
        assert_eq!(b.interference.lock_waits, a.interference.lock_waits);
        assert_eq!(b.interference.broadcasts, a.interference.broadcasts);

        // What `cargo xtask inspect` shows: the I/O replica down with its epitaph, the
        // others up, read from memory although the console went down with it.
        let j = inspect(board, &RT_IO_FAULT, &mut qmp, &scratch);
        assert_inspected(board, &j, &["io"], false);
    });
}

/// The bench's core clock (`runner/coreclock`, the plugin `cargo xtask bench` times each
/// real-time release with on its core's own instructions), on `virt` (the plugin is the
/// same for every board): every job of an idle window has its release timed, and idle, with
/// no other core busy, the core's own clock and virtual time agree on the jitter.
#[test]
fn qemu_virt_aarch64_core_clock_times_every_release() {
    let board = "qemu_virt_aarch64";
    let lib = atoll_runner::coreclock::library();
    assert!(
        lib.exists(),
        "{} is missing: `cargo xtask test` builds it",
        lib.display()
    );
    let out = atoll_runner::target_dir()
        .join("e2e-logs")
        .join(format!("{board}-rt-coreclock.records"));
    let kernel = image_of(board, &RT).with_file_name("atoll-kernel.elf");
    let args = atoll_runner::coreclock::qemu_args(&lib, &kernel, &out).expect("the plugin");
    with_rt(board, &RT, "rt-coreclock", args, |qemu, _port| {
        // The first window holds the boot; the second is idle.
        let w = wait_for_window(qemu, 2);
        assert_undisturbed(&w, "idle");
        let records = atoll_runner::coreclock::records(&out).expect("the records");
        let window = records
            .get(PERIODS as usize..2 * PERIODS as usize)
            .unwrap_or_else(|| panic!("{} records for {w:?}", records.len()));
        let timed: Vec<u64> = window.iter().flatten().map(|&v| u64::from(v)).collect();
        assert_eq!(timed.len(), window.len(), "untimed releases: {window:?}");
        let mean = timed.iter().sum::<u64>() as f64 / timed.len() as f64;
        let max = timed.iter().copied().max().unwrap_or(0);
        // The kernel's path alone is some hundreds of instructions.
        assert!(timed.iter().all(|&v| v >= 100), "{timed:?}");
        let virtual_mean = w.jitter[1] as f64;
        assert!(
            (mean - virtual_mean).abs() <= virtual_mean * 0.2,
            "core clock mean {mean} ns against virtual time's {virtual_mean} ns: {w:?}"
        );
        assert!(
            max <= w.jitter[4] + 500,
            "core clock max {max} ns against virtual time's {}: {w:?}",
            w.jitter[4]
        );
    });
}

#[test]
fn qemu_virt_aarch64_rt_keeps_time_while_the_io_replica_stops() {
    through_io_fault("qemu_virt_aarch64");
}

#[test]
fn zcu102_rt_keeps_time_while_the_io_replica_stops() {
    through_io_fault("zcu102");
}

#[test]
fn imx8mp_evk_rt_keeps_time_while_the_io_replica_stops() {
    through_io_fault("imx8mp_evk");
}
