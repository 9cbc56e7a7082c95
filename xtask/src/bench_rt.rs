//! The real-time figures for `cargo xtask bench`: the real-time job's timing and what its
//! core suffered, in four cells, {multikernel, single kernel} × {idle, loaded}, and the
//! emulator's own share beside them.
//!
//! - **Layouts.** The multikernel is the default `system.xml` (the job alone in replica
//!   `rt` on core 1). The single kernel is `systems/single-kernel.xml`: the same PDs on the
//!   same cores, in one replica over the four cores, under one kernel lock.
//! - **Cells.** Each boots its layout under `-icount shift=0,sleep=off` with a fresh disk and
//!   the HTTP port forwarded, waits until the service answers and the store takes a `PUT`,
//!   then takes the first whole window of 10,000 periods (10 s of virtual time) that starts
//!   after that: idle. Then it starts the load, `wrk` with 64 connections of durable 4 KiB
//!   `PUT`s (the I/O and storage replicas, and the disk) and `wrk` with 16 connections of
//!   `GET /status`, at the rate the system sustains, and takes the first whole window that
//!   starts under it: loaded. The figures are the window's line as the job printed it.
//! - **The emulator's share.** Under `-icount` QEMU runs the four cores one after another
//!   on one host thread, each for a share of the time to the next event on its clocks. A
//!   release that falls due while another core runs waits for the job's core's turn: with
//!   plain `-icount` that wait reached 2 ms with nothing touching the job's core. Every cell
//!   therefore runs with QEMU's turns bounded to [`TURN_US`] ([`bounded_turns`]), which
//!   brings the wait down to a few µs. What remains: while `n` cores are busy, each
//!   advances at `1/n` of virtual time, so the job's own instructions take up to four times
//!   as long in virtual time as when it runs alone. `protection-domains/bench/systems/
//!   rt-spin.xml` measures that share alone: the job on core 1 and the three other cores
//!   spinning at EL0 (no system call, no interrupt, no device, nothing that can reach core
//!   1), reported beside the cells. The interference counters have no such share: they
//!   count what the kernels did.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use atoll_e2e::rt::WindowLine;

use crate::BuildArgs;
use crate::build::{build, workspace_root};

/// How long one window of 10,000 periods may take in wall time, under load.
const WINDOW_WAIT: Duration = Duration::from_secs(1800);

/// The longest turn QEMU gives a core, in virtual µs, in the cells measured with bounded
/// turns: a QEMU timer every this many µs (a network filter's release timer on the virtual
/// clock, which touches no guest state) ends every core's turn at least that often.
pub(crate) const TURN_US: u32 = 5;

/// The QEMU arguments that bound every core's turn to [`TURN_US`]: QEMU gives each core at
/// most a share of the time to the next timer event on its clocks, and a `filter-buffer`
/// on the network back-end arms one every `interval` µs (it only holds the back-end's
/// outgoing packets for up to that long). `net0` is the back-end `nic_args` creates; a
/// system without a NIC gets one of its own, unconnected.
fn bounded_turns(has_nic: bool) -> Vec<String> {
    let mut args = Vec::new();
    if !has_nic {
        args.extend(["-netdev".into(), "user,id=net0".into()]);
    }
    args.extend([
        "-object".into(),
        format!("filter-buffer,id=turns,netdev=net0,queue=tx,interval={TURN_US}"),
    ]);
    args
}

/// One cell's measurement.
pub(crate) struct Cell {
    /// "multikernel idle", ...
    pub name: &'static str,
    /// The window the job reported.
    pub window: WindowLine,
    /// Requests per second the load got from the service, if it was loaded: (PUT, GET).
    pub load_rps: Option<(f64, f64)>,
}

/// The real-time figures: the four cells and the emulator's share.
pub(crate) struct Rt {
    /// Multikernel idle, multikernel loaded, single kernel idle, single kernel loaded.
    pub cells: Vec<Cell>,
    /// The job with the other cores spinning.
    pub spinning: Cell,
}

/// Builds the three systems and measures them.
pub(crate) fn measure(out: &Path) -> Result<Rt> {
    let board = crate::bench::bench_board()?;
    let root = workspace_root();
    let image = |system: Option<&str>, dir: &str| -> Result<PathBuf> {
        let args = BuildArgs {
            board: board.name.into(),
            system: system.map(|s| root.join(s)),
            out: Some(out.join(dir)),
            ..BuildArgs::default()
        };
        Ok(build(&args)?.image)
    };
    let multikernel = image(None, "rt-multikernel")?;
    let single = image(Some("systems/single-kernel.xml"), "rt-single-kernel")?;
    let spin = image(
        Some("protection-domains/bench/systems/rt-spin.xml"),
        "rt-spin",
    )?;
    let script = out.join("wrk-put.lua");
    std::fs::write(&script, crate::bench_http::WRK_PUT_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;

    let mut cells = Vec::new();
    for (image, label, names) in [
        (
            &multikernel,
            "rt-multikernel",
            ["multikernel idle", "multikernel loaded"],
        ),
        (
            &single,
            "rt-single-kernel",
            ["single kernel idle", "single kernel loaded"],
        ),
    ] {
        cells.extend(idle_and_loaded(board, image, label, names, &script)?);
    }
    let spinning = spinning(board, &spin)?;
    Ok(Rt { cells, spinning })
}

/// Waits for window `index` in QEMU's output.
fn wait_for_window(qemu: &mut atoll_runner::Running, index: u64) -> Result<WindowLine> {
    atoll_e2e::rt::wait_for(qemu, index, WINDOW_WAIT).map_err(|e| anyhow!(e))
}

/// `wrk` running on until stopped, at `connections` connections against `url`.
fn start_wrk(url: &str, connections: u32, script: Option<&Path>) -> Result<Child> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", "1", "-c", &connections.to_string(), "-d", "3600s"]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running wrk (cargo xtask test installs it)")
}

/// Stops `wrk` the way an interrupted run ends (it then reports) and returns its requests
/// per second.
fn stop_wrk(child: Child) -> Result<f64> {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().context("waiting for wrk")?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("cannot read wrk's report:\n{report}"))?;
    Ok(rps)
}

/// One layout's idle and loaded cells.
fn idle_and_loaded(
    board: &'static atoll_boards::Board,
    image: &Path,
    label: &str,
    names: [&'static str; 2],
    script: &Path,
) -> Result<Vec<Cell>> {
    let (mut qemu, port) =
        crate::bench_http::serve(board, image, true, label, &bounded_turns(true))?;
    let result = (|| -> Result<Vec<Cell>> {
        let next = atoll_e2e::rt::last_index(&qemu.serial()) + 2;
        let idle = wait_for_window(&mut qemu, next)?;
        println!("bench rt: {}: {idle:?}", names[0]);
        let url = format!("http://127.0.0.1:{port}");
        let put = start_wrk(&format!("{url}/kv/"), 64, Some(script))?;
        let get = start_wrk(&format!("{url}/status"), 16, None)?;
        let next = atoll_e2e::rt::last_index(&qemu.serial()) + 2;
        let loaded = wait_for_window(&mut qemu, next);
        let rps = (stop_wrk(put), stop_wrk(get));
        let loaded = loaded?;
        let rps = (rps.0?, rps.1?);
        println!(
            "bench rt: {}: {loaded:?}, load {:.0} PUT/s and {:.0} GET/s",
            names[1], rps.0, rps.1
        );
        if rps.0 < 1.0 || rps.1 < 1.0 {
            bail!("the load got no answers: {rps:?}");
        }
        Ok(vec![
            Cell {
                name: names[0],
                window: idle,
                load_rps: None,
            },
            Cell {
                name: names[1],
                window: loaded,
                load_rps: Some(rps),
            },
        ])
    })();
    let outcome = qemu.stop();
    result.with_context(|| {
        let log = outcome.map_or_else(|_| "(unsaved)".into(), |o| o.log_path.display().to_string());
        format!("{label}: serial log {log}")
    })
}

/// The job with the other cores spinning: the emulator's share of the jitter.
fn spinning(board: &'static atoll_boards::Board, image: &Path) -> Result<Cell> {
    let options = atoll_runner::QemuOptions {
        icount: true,
        extra: bounded_turns(false),
        ..Default::default()
    };
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join("rt-spin.log");
    let mut qemu = atoll_runner::spawn(board, image, &options, &log)?;
    // The first window holds the boot; the second is the first whole one after it.
    let window = wait_for_window(&mut qemu, 2);
    let outcome = qemu.stop();
    let window = window.with_context(|| {
        let log = outcome.map_or_else(|_| "(unsaved)".into(), |o| o.log_path.display().to_string());
        format!("rt-spin: serial log {log}")
    })?;
    println!("bench rt: other cores spinning: {window:?}");
    Ok(Cell {
        name: "multikernel, other cores spinning",
        window,
        load_rps: None,
    })
}

/// Nanoseconds as microseconds, for the table.
fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// The four-cell table and the emulator's share, in Markdown (`docs/performance.md` keeps
/// it).
pub(crate) fn table(rt: &Rt) -> String {
    let mut t = String::from(
        "| cell | periods | missed | jitter max µs | jitter p99.9 µs | jitter mean µs | kernel path max µs | kernel path mean µs | response max µs | foreign irqs (max per period) | lock waits, ns (max per period) | broadcasts (max per period) | load PUT/s, GET/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in rt.cells.iter().chain(std::iter::once(&rt.spinning)) {
        let w = &c.window;
        let load = c
            .load_rps
            .map_or("-".to_string(), |(p, g)| format!("{p:.0}, {g:.0}"));
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} ({}) | {} |\n",
            c.name,
            w.periods,
            w.missed,
            us(w.jitter[4]),
            us(w.jitter[3]),
            us(w.jitter[1]),
            us(w.path.1),
            us(w.path.0),
            us(w.response[4]),
            w.foreign_irqs.0,
            w.foreign_irqs.1,
            w.lock_waits.1,
            w.lock_waits.2,
            w.broadcasts.0,
            w.broadcasts.1,
            load,
        ));
    }
    t
}
