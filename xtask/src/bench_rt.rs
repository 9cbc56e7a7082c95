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
//! - **The core's own clock.** Every cell also runs QEMU with the `atoll-coreclock` plugin
//!   (`runner/coreclock`), which counts each core's own instructions and times every
//!   release from its interrupt's entry to the job's start on that count (one instruction
//!   per virtual ns under `shift=0`). A core halted in `wfi` costs nothing until its
//!   interrupt, so that clock holds what the job's core itself executed for the release,
//!   including anything another replica made it do, and none of the emulator's turns or
//!   shared time. The bench reads the plugin's record of every job of the cell's window
//!   ([`CoreClock::window`]) and reports it beside the virtual-time figures; the goal, a
//!   loaded worst case within 1 µs of the idle one, is judged on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use atoll_e2e::rt::WindowLine;

use crate::BuildArgs;
use crate::build::{build, cargo, workspace_root};

/// How long one window of 10,000 periods may take in wall time, under load.
const WINDOW_WAIT: Duration = Duration::from_secs(1800);

/// The longest turn QEMU gives a core, in virtual µs, in the cells measured with bounded
/// turns: a QEMU timer every this many µs (a network filter's release timer on the virtual
/// clock, which touches no guest state) ends every core's turn at least that often.
pub(crate) const TURN_US: u32 = 5;

/// The QEMU arguments that bound every core's turn to [`TURN_US`]
/// ([`atoll_runner::bounded_turns`]).
fn bounded_turns(has_nic: bool) -> Vec<String> {
    atoll_runner::bounded_turns(has_nic, TURN_US)
}

/// One cell's measurement.
pub(crate) struct Cell {
    /// "multikernel idle", ...
    pub name: &'static str,
    /// The window the job reported.
    pub window: WindowLine,
    /// Requests per second the load got from the service, if it was loaded: (PUT, GET).
    pub load_rps: Option<(f64, f64)>,
    /// The window's releases on the job's core's own clock.
    pub core_clock: CoreJitter,
}

/// The releases of one window on the job's core's own clock (`atoll-coreclock`), in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct CoreJitter {
    /// Jobs with a release timed.
    pub jobs: u64,
    /// Jobs the plugin saw no release for (a release it could not time).
    pub untimed: u64,
    /// Mean.
    pub mean: f64,
    /// 99.9th percentile (nearest rank).
    pub p999: u64,
    /// Worst.
    pub max: u64,
}

impl CoreJitter {
    /// The figures of `values` (ns each; `None` for an untimed job).
    pub(crate) fn of(values: &[Option<u32>]) -> CoreJitter {
        let mut timed: Vec<u64> = values.iter().flatten().map(|&v| u64::from(v)).collect();
        timed.sort_unstable();
        let jobs = timed.len() as u64;
        let rank = (jobs * 999).div_ceil(1000).max(1) as usize;
        CoreJitter {
            jobs,
            untimed: values.len() as u64 - jobs,
            mean: if jobs == 0 {
                0.0
            } else {
                timed.iter().sum::<u64>() as f64 / jobs as f64
            },
            p999: timed.get(rank - 1).copied().unwrap_or(0),
            max: timed.last().copied().unwrap_or(0),
        }
    }
}

/// The `atoll-coreclock` plugin, for one QEMU run: its arguments and the file it writes.
struct CoreClock {
    /// QEMU's arguments that load it.
    args: Vec<String>,
    out: PathBuf,
}

/// Builds the plugin, a host library ([`atoll_runner::coreclock::library`]), once for the
/// cells.
fn build_core_clock() -> Result<()> {
    let status = cargo()
        .args(["build", "--quiet", "-p", "atoll-coreclock"])
        .status()
        .context("running cargo build -p atoll-coreclock")?;
    if !status.success() {
        bail!("building atoll-coreclock failed");
    }
    Ok(())
}

impl CoreClock {
    /// The plugin ([`build_core_clock`]) for the image whose kernel ELF is in `image_dir`;
    /// it will write `out`.
    fn new(image_dir: &Path, out: PathBuf) -> Result<CoreClock> {
        let args = atoll_runner::coreclock::qemu_args(
            &atoll_runner::coreclock::library(),
            &image_dir.join("atoll-kernel.elf"),
            &out,
        )
        .map_err(|e| anyhow!(e))?;
        Ok(CoreClock { args, out })
    }

    /// The figures of the jobs of window `w` (window `i` holds jobs `(i - 1) * periods` to
    /// `i * periods`, counted from the job's first).
    fn window(&self, w: &WindowLine) -> Result<CoreJitter> {
        let records = atoll_runner::coreclock::records(&self.out).map_err(|e| anyhow!(e))?;
        let start = w.index.saturating_sub(1).saturating_mul(w.periods) as usize;
        let end = start.saturating_add(w.periods as usize);
        let jobs = records.get(start..end).ok_or_else(|| {
            anyhow!(
                "the core-clock plugin recorded {} jobs; window {} needs {end}",
                records.len(),
                w.index
            )
        })?;
        Ok(CoreJitter::of(jobs))
    }
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
    // The image; its kernel ELF is beside it.
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
    build_core_clock()?;
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
    let clock = core_clock(image, label)?;
    let mut extra = bounded_turns(true);
    extra.extend(clock.args.iter().cloned());
    let (mut qemu, port) = crate::bench_http::serve(board, image, true, label, &extra)?;
    let result = (|| -> Result<Vec<Cell>> {
        let next = atoll_e2e::rt::last_index(&qemu.serial()) + 2;
        let idle = wait_for_window(&mut qemu, next)?;
        let idle_clock = clock.window(&idle)?;
        println!("bench rt: {}: {idle:?}, {idle_clock:?}", names[0]);
        let url = format!("http://127.0.0.1:{port}");
        let put = start_wrk(&format!("{url}/kv/"), 64, Some(script))?;
        let get = start_wrk(&format!("{url}/status"), 16, None)?;
        let next = atoll_e2e::rt::last_index(&qemu.serial()) + 2;
        let loaded = wait_for_window(&mut qemu, next);
        let rps = (stop_wrk(put), stop_wrk(get));
        let loaded = loaded?;
        let rps = (rps.0?, rps.1?);
        let loaded_clock = clock.window(&loaded)?;
        println!(
            "bench rt: {}: {loaded:?}, {loaded_clock:?}, load {:.0} PUT/s and {:.0} GET/s",
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
                core_clock: idle_clock,
            },
            Cell {
                name: names[1],
                window: loaded,
                load_rps: Some(rps),
                core_clock: loaded_clock,
            },
        ])
    })();
    let outcome = qemu.stop();
    result.with_context(|| {
        let log = outcome.map_or_else(|_| "(unsaved)".into(), |o| o.log_path.display().to_string());
        format!("{label}: serial log {log}")
    })
}

/// The core-clock plugin for a run of `image` labelled `label`, writing under
/// `target/bench/`.
fn core_clock(image: &Path, label: &str) -> Result<CoreClock> {
    let dir = image
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", image.display()))?;
    let out = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{label}.coreclock"));
    CoreClock::new(dir, out)
}

/// The job with the other cores spinning: the emulator's share of the jitter.
fn spinning(board: &'static atoll_boards::Board, image: &Path) -> Result<Cell> {
    let clock = core_clock(image, "rt-spin")?;
    let mut extra = bounded_turns(false);
    extra.extend(clock.args.iter().cloned());
    let options = atoll_runner::QemuOptions {
        icount: true,
        extra,
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
    let core_clock = clock.window(&window)?;
    println!("bench rt: other cores spinning: {window:?}, {core_clock:?}");
    Ok(Cell {
        name: "multikernel, other cores spinning",
        window,
        load_rps: None,
        core_clock,
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
        "| cell | periods | missed | core clock: jitter max µs | core clock: jitter p99.9 µs | core clock: jitter mean µs | jitter max µs | jitter p99.9 µs | jitter mean µs | kernel path max µs | kernel path mean µs | response max µs | foreign irqs (max per period) | lock waits, ns (max per period) | broadcasts (max per period) | load PUT/s, GET/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in rt.cells.iter().chain(std::iter::once(&rt.spinning)) {
        let w = &c.window;
        let k = &c.core_clock;
        // A window whose releases the plugin could not time shows as such.
        let (kmax, kp999, kmean) = if k.jobs == 0 {
            ("n/a".to_string(), "n/a".to_string(), "n/a".to_string())
        } else {
            let untimed = if k.untimed > 0 {
                format!(" ({} untimed)", k.untimed)
            } else {
                String::new()
            };
            (
                us(k.max),
                us(k.p999),
                format!("{:.2}{untimed}", k.mean / 1000.0),
            )
        };
        let load = c
            .load_rps
            .map_or("-".to_string(), |(p, g)| format!("{p:.0}, {g:.0}"));
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} ({}) | {} |\n",
            c.name,
            w.periods,
            w.missed,
            kmax,
            kp999,
            kmean,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_clock_figures_are_exact_and_count_the_untimed() {
        let mut values: Vec<Option<u32>> = (1..=2000).map(Some).collect();
        values.push(None);
        let f = CoreJitter::of(&values);
        assert_eq!(f.jobs, 2000);
        assert_eq!(f.untimed, 1);
        assert_eq!(f.max, 2000);
        // Nearest rank: the 1,998th of 2,000.
        assert_eq!(f.p999, 1998);
        assert!((f.mean - 1000.5).abs() < 1e-9);
        assert_eq!(CoreJitter::of(&[None]).jobs, 0);
        assert_eq!(CoreJitter::of(&[Some(7)]).p999, 7);
    }
}
