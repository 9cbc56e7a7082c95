//! `cargo xtask bench`: measures Atoll and tracks each figure against its goal and the seL4
//! and Linux references of docs/performance.md. It fails only on a broken run (a figure that
//! cannot be measured, or an instruction count that differs between two identical runs),
//! never on a missed goal.
//!
//! It measures boot to every PD started and to every replica up (instructions under
//! `-icount shift=0,sleep=off`, and wall time), kernel `.text` and image size, and, with the
//! benchmark PDs of `protection-domains/bench/`, a trivial system call, interrupt to PD, PPC
//! round trips to passive and active servers, notify round trips on one replica and across
//! two, the same across the two cores of one replica (a notify round trip, and a PPC to a
//! passive server placed on the other core), and the scale ratios: the same round trips
//! with 60 channels per PD against 2, with 4 replicas against 1, with 60 channels crossing
//! between two replicas against 1, and a round trip on one core of a two-core replica with
//! the other core busy against idle; the HTTP service's cost per request and its `wrk`
//! figures (`bench_http`); and the key-value store's cost per durable `PUT` and per `GET`
//! across replicas, and per MiB of log it recovers (`bench_kv`). `ATOLL_BENCH_ONLY=kv` or
//! `=http` measures one of the last two only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use object::{Object, ObjectSection};
use serde_json::json;

use crate::BuildArgs;
use crate::build::{build, workspace_root};

/// The goal for a scale ratio: the same cost, give or take the other replicas' timer ticks.
/// The instruction counter counts every core, so in a system with more replicas the measured
/// window also holds their kernels' 100 Hz ticks (a few thousand instructions in 10,000
/// rounds, under 0.1%); a cost that grew with the system would add whole instructions to
/// every round.
const SCALE_GOAL: f64 = 1.01;

/// One measured figure.
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    /// The goal (at most this).
    goal: Option<f64>,
    /// seL4 + Microkit and Linux reference figures, as text.
    reference: &'static str,
    /// Whether the figure repeats exactly (instruction counts, sizes) or varies (wall time).
    exact: bool,
}

const BOARD: &str = "qemu_virt_aarch64";
/// The boot replica's summary once every replica has published its boot state.
const REPLICAS_UP: &str = "all replicas settled at ";
/// The boot replica's line once every PD of every replica has started and is waiting.
const PDS_STARTED: &str = "every PD started and waiting for events at ";

/// The number just before `unit` after `marker` on the first line holding `marker`.
fn figure<T: std::str::FromStr>(serial: &str, marker: &str, unit: &str) -> Option<T> {
    let line = serial.lines().find(|l| l.contains(marker))?;
    let after = line.split(marker).nth(1)?;
    after
        .split(unit)
        .next()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The `ns` figure of the kernel line holding `marker` (`... at 4.914 ms, 4914832 ns`):
/// under icount, instructions since reset.
fn boot_instructions(serial: &str, marker: &str) -> Option<u64> {
    figure(serial, marker, " ns")
}

/// Boots the default system until every PD has started.
fn boot(image: &std::path::Path, icount: bool, label: &str) -> Result<atoll_runner::Outcome> {
    boot_until(image, icount, label, PDS_STARTED)
}

/// Both boot figures of a run: to every replica up, and to every PD started.
fn boot_figures(serial: &str) -> Result<(u64, u64)> {
    let up = boot_instructions(serial, REPLICAS_UP)
        .ok_or_else(|| anyhow!("no 'all replicas settled' figure in the serial log"))?;
    let started = boot_instructions(serial, PDS_STARTED)
        .ok_or_else(|| anyhow!("no 'every PD started' figure in the serial log"))?;
    Ok((up, started))
}

/// Boots `image` until its output shows the line holding `until`.
fn boot_until(
    image: &std::path::Path,
    icount: bool,
    label: &str,
    until: &str,
) -> Result<atoll_runner::Outcome> {
    boot_on_cores(image, icount, label, until, None)
}

/// A fresh disk for `board` at `disk`: any old one removed, a new one prepared.
pub(crate) fn fresh_disk(board: &atoll_boards::Board, disk: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(disk) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", disk.display())),
    }
    atoll_runner::prepare_disk(board, disk)
        .with_context(|| format!("creating {}", disk.display()))?;
    Ok(())
}

/// The board every benchmark runs on.
pub(crate) fn bench_board() -> Result<&'static atoll_boards::Board> {
    atoll_boards::by_name(BOARD).ok_or_else(|| anyhow!("no board {BOARD}"))
}

/// How a benchmark boots under QEMU: semihosting, `icount` if asked, stopped once its
/// output shows `until`, on a machine of `cores` cores instead of the board's (`None`).
pub(crate) fn bench_options(
    icount: bool,
    until: &str,
    cores: Option<u32>,
) -> atoll_runner::QemuOptions {
    atoll_runner::QemuOptions {
        semihosting: true,
        icount,
        until: vec![until.into()],
        // A later `-smp` takes the place of the board's.
        extra: cores
            .map(|n| vec!["-smp".to_string(), n.to_string()])
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// [`boot_until`] on a machine of `cores` cores instead of the board's (`None`).
fn boot_on_cores(
    image: &std::path::Path,
    icount: bool,
    label: &str,
    until: &str,
    cores: Option<u32>,
) -> Result<atoll_runner::Outcome> {
    let board = bench_board()?;
    let options = bench_options(icount, until, cores);
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{label}.log"));
    let outcome = atoll_runner::run(board, image, &options, Duration::from_secs(60), &log)?;
    if outcome.until_seen.is_none() {
        bail!(
            "the run did not print '{until}'; serial log {}",
            log.display()
        );
    }
    Ok(outcome)
}

/// The instruction count on a benchmark PD's line `BENCH <name>: <n> instructions, ...`.
pub(crate) fn bench_instructions(serial: &str, name: &str) -> Option<f64> {
    figure(serial, &bench_marker(name), " instructions")
}

/// The start of a benchmark PD's line for figure `name`.
fn bench_marker(name: &str) -> String {
    format!("BENCH {name}: ")
}

/// Builds the benchmark system `system` (under `protection-domains/bench/systems/`) and
/// boots it twice under icount; its figure `name`, which must be the same both times.
fn pd_benchmark(system: &str, name: &str, out: &std::path::Path) -> Result<f64> {
    let path = workspace_root()
        .join("protection-domains")
        .join("bench")
        .join("systems")
        .join(system);
    measure_system(&path, name, out)
}

/// Busy host processes, stopped when dropped.
struct HostLoad(Vec<std::process::Child>);

impl HostLoad {
    /// Starts `n` processes that spin for as long as they live.
    fn start(n: usize) -> Result<Self> {
        let mut children = Vec::new();
        for _ in 0..n {
            children.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .context("starting a busy process")?,
            );
        }
        Ok(Self(children))
    }
}

impl Drop for HostLoad {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The figures hold on a busy machine: the PPC round trip to a passive server and the round
/// trip between two cores of a replica (whose cores QEMU runs in turn) and the interrupt
/// latency (across an idle core's `wfi`) are measured on an idle host, then while two busy
/// processes compete for the host's cores, and the counts must be the same. Under `-icount`
/// QEMU counts guest instructions only, so nothing of the host's speed may reach a measured
/// window.
pub fn steady_under_load() -> Result<()> {
    crate::setup::rust_targets()?;
    crate::setup::qemu(&["virt"])?;
    let out = workspace_root().join("target").join("bench").join("load");
    for (system, name) in [
        ("ppc-passive.xml", "ppc round trip"),
        ("notify-smp.xml", "notify round trip"),
        ("irq.xml", "interrupt to PD"),
    ] {
        let idle = pd_benchmark(system, name, &out)?;
        let loaded = {
            let _load = HostLoad::start(2)?;
            pd_benchmark(system, name, &out)?
        };
        if idle != loaded {
            bail!("{system}: {idle} instructions on an idle host, {loaded} on a busy one");
        }
        println!("bench under load: {system} gives {idle} instructions idle, {loaded} loaded");
    }
    Ok(())
}

/// Writes the generated benchmark system `xml` to `out/systems/<label>.xml` and measures its
/// figure `name` as [`pd_benchmark`] does.
fn generated_benchmark(label: &str, xml: &str, name: &str, out: &std::path::Path) -> Result<f64> {
    let dir = out.join("systems");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{label}.xml"));
    std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
    measure_system(&path, name, out)
}

/// What a generated scale system measures.
#[derive(Clone, Copy)]
enum Trip {
    /// `bench_ping` notifies `pong` on channel 0 and waits for the answer.
    Notify,
    /// `bench_client` calls the active `bench_server` on channel 0.
    Call,
}

/// A benchmark system for the scale figures: the measuring pair of `trip` joined by
/// `channels` channels (the measured one is channel 0), the answering side on core
/// `answer_core` (0: the same replica), and one idle PD on each further core up to
/// `replicas`. Without `<replica>` elements each core used becomes its own replica.
fn scale_system(trip: Trip, channels: u32, answer_core: u32, replicas: u32) -> String {
    use std::fmt::Write;
    let (measuring, answering, program, answer_program) = match trip {
        Trip::Notify => ("bench_ping", "bench_pong", "bench_ping.elf", "pong.elf"),
        Trip::Call => (
            "bench_client",
            "bench_server",
            "bench_client.elf",
            "bench_server.elf",
        ),
    };
    let pd = |xml: &mut String, name: &str, priority: u32, core: u32, program: &str| {
        let _ = writeln!(
            xml,
            r#"  <protection_domain name="{name}" priority="{priority}" cpu="{core}">
    <program_image path="{program}" />
  </protection_domain>"#
        );
    };
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by cargo xtask bench: {channels} channels, the answering PD on core {answer_core}, {replicas} replicas. -->
<system>
"#
    );
    pd(&mut xml, measuring, 100, 0, program);
    pd(&mut xml, answering, 110, answer_core, answer_program);
    for core in (1..replicas).filter(|&c| c != answer_core) {
        pd(
            &mut xml,
            &format!("idle{core}"),
            100,
            core,
            "bench_server.elf",
        );
    }
    for id in 0..channels {
        // pong answers on its channel 1; the server takes calls on its channel 0.
        let (answer_id, pp) = match trip {
            Trip::Notify => (id + 1, ""),
            Trip::Call => (id, if id == 0 { r#" pp="true""# } else { "" }),
        };
        let _ = writeln!(
            xml,
            r#"  <channel>
    <end pd="{measuring}" id="{id}"{pp} />
    <end pd="{answering}" id="{answer_id}" />
  </channel>"#
        );
    }
    xml + "</system>\n"
}

/// How many cores a built system's replicas reach (one more than the highest they use),
/// from the tool's report.
fn cores_used(report: &std::path::Path) -> Result<u32> {
    let text =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", report.display()))?;
    json["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["cores"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_u64)
        .max()
        .and_then(|c| u32::try_from(c).ok()?.checked_add(1))
        .ok_or_else(|| anyhow!("{}: no replica's cores", report.display()))
}

/// Builds the benchmark system at `path` into `out` for the benchmark board; the image,
/// and the cores its replicas reach (the machine it boots on has that many).
pub(crate) fn build_benchmark(
    path: &std::path::Path,
    out: &std::path::Path,
) -> Result<(crate::build::Built, u32)> {
    let built = build(&BuildArgs {
        board: BOARD.into(),
        system: Some(path.to_path_buf()),
        out: Some(out.to_path_buf()),
        ..BuildArgs::default()
    })?;
    let cores = cores_used(&out.join("report.json"))?;
    Ok((built, cores))
}

/// Builds the benchmark system at `path` and boots it twice under icount; its figure `name`,
/// which must be the same both times.
///
/// The machine has only the cores the system's replicas use: QEMU runs the cores of a
/// machine in turn on one host thread under icount, and with more than one it switches
/// between them on a timer its main loop re-arms at host-dependent moments.
///
/// A core that goes idle does so through `arch::wait_for_interrupt`, whose `yield` makes QEMU
/// count every instruction before the `wfi` before its main loop can see the core halted;
/// without it, QEMU sometimes moved virtual time past the next timer event by the
/// instructions it had not counted yet, and the interrupt latency differed by 0.01 to 0.3
/// instruction a round between boots.
fn measure_system(path: &std::path::Path, name: &str, out: &std::path::Path) -> Result<f64> {
    let system = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let label = system.trim_end_matches(".xml").to_string();
    let (built, cores) = build_benchmark(path, &out.join(&label))?;
    let mut counts = Vec::new();
    for run in 1..=2 {
        let outcome = boot_on_cores(
            &built.image,
            true,
            &format!("{label}-{run}"),
            &bench_marker(name),
            Some(cores),
        )?;
        counts.push(
            bench_instructions(&outcome.serial, name)
                .ok_or_else(|| anyhow!("{system}: no figure on its BENCH {name} line"))?,
        );
    }
    let (a, b) = (counts[0], counts[1]);
    if a != b {
        bail!("{system}: the instruction count differs between two identical runs: {a} and {b}");
    }
    Ok(a)
}

/// Runs the benchmarks; `smoke` checks the harness only (one quick boot), `compare` reports
/// each figure's change against `bench/baseline.json`.
pub fn run(compare: bool, smoke: bool) -> Result<()> {
    crate::setup::rust_targets()?;
    crate::setup::qemu(&["virt"])?;
    let out = workspace_root().join("target").join("bench");
    if let Ok(part) = std::env::var(ONLY) {
        return run_part(&out, &part);
    }
    let built = build_default_image(&out)?;

    let first = boot(&built.image, true, "boot-icount-1")?;
    let counts = boot_figures(&first.serial)?;
    if smoke {
        println!(
            "bench smoke: boot to every PD started = {} instructions; harness works",
            counts.1
        );
        return Ok(());
    }
    let boot = measure_boot(&built.image, counts)?;
    let sizes = measure_sizes(&out, &built.image)?;
    let trips = measure_round_trips(&out)?;
    let scale = measure_scale(&out)?;
    let http = crate::bench_http::measure(&out)?;
    let kv = crate::bench_kv::measure(&out)?;
    let rt = crate::bench_rt::measure(&out)?;
    let restarts = crate::bench_restart::measure(&out)?;

    let mut figures = headline_figures(&boot, &sizes, &trips);
    figures.extend(scale_figures(&scale, &trips));
    figures.extend(http_figures(&http));
    figures.extend(kv_figures(&kv));
    figures.extend(rt_figures(&rt));
    figures.extend(restart_figures(&restarts));
    print_table(&figures);
    print_rt_table(&out, &rt)?;
    write_results(&out, &figures)?;
    if compare {
        compare_with_baseline(&figures)?;
    }
    Ok(())
}

/// The environment variable that makes `cargo xtask bench` measure one part only, to work
/// on it: `kv` (the key-value store's figures), `http` (the HTTP service's), `rt` (the
/// real-time cells) or `restart` (replica restart times). It prints
/// that part's table and writes no results.
const ONLY: &str = "ATOLL_BENCH_ONLY";

/// Measures only the part `part` of the benchmarks ([`ONLY`]) and prints its figures.
fn run_part(out: &std::path::Path, part: &str) -> Result<()> {
    let figures = match part {
        "kv" => kv_figures(&crate::bench_kv::measure(out)?),
        "http" => http_figures(&crate::bench_http::measure(out)?),
        "rt" => {
            let rt = crate::bench_rt::measure(out)?;
            print_rt_table(out, &rt)?;
            rt_figures(&rt)
        }
        "restart" => restart_figures(&crate::bench_restart::measure(out)?),
        _ => bail!("{ONLY}={part}: the parts are kv, http, rt and restart"),
    };
    print_table(&figures);
    Ok(())
}

/// Builds the default system as a test image into `out/image`.
fn build_default_image(out: &std::path::Path) -> Result<crate::build::Built> {
    let args = BuildArgs {
        board: BOARD.into(),
        test: true,
        out: Some(out.join("image")),
        ..BuildArgs::default()
    };
    build(&args)
}

/// The boot figures of the default system.
struct BootMeasures {
    /// Instructions to every replica up.
    replicas_up: u64,
    /// Instructions to every PD started.
    pds_started: u64,
    /// Median wall time from starting QEMU to every PD started, in seconds.
    wall: f64,
    /// Median wall time from starting QEMU to its first output, in seconds.
    qemu_start: f64,
}

/// Completes the boot figures of `image`, whose first icount boot counted `first` (to every
/// replica up, to every PD started): a second icount boot must count the same, then three
/// boots give the wall times.
fn measure_boot(image: &std::path::Path, first: (u64, u64)) -> Result<BootMeasures> {
    let second = boot(image, true, "boot-icount-2")?;
    let again = boot_figures(&second.serial)?;
    if again != first {
        bail!(
            "the boot instruction counts differ between two identical runs: {first:?} and {again:?}"
        );
    }
    let (wall, qemu_start) = boot_wall_times(image)?;
    Ok(BootMeasures {
        replicas_up: first.0,
        pds_started: first.1,
        wall,
        qemu_start,
    })
}

/// Wall times of three boots: QEMU started to every PD started, and to QEMU's first output
/// (the loader's first line), which is QEMU's own start-up; the medians, in seconds.
fn boot_wall_times(image: &std::path::Path) -> Result<(f64, f64)> {
    let mut walls = Vec::new();
    let mut starts = Vec::new();
    for i in 0..3 {
        let outcome = boot(image, false, &format!("boot-wall-{i}"))?;
        let (Some(all), Some(first)) = (outcome.until_seen, outcome.first_output) else {
            bail!("boot-wall-{i}: no time for the first output or for every PD started");
        };
        walls.push(all.as_secs_f64());
        starts.push(first.as_secs_f64());
    }
    walls.sort_by(f64::total_cmp);
    starts.sort_by(f64::total_cmp);
    Ok((walls[1], starts[1]))
}

/// The sizes of the default build, in bytes.
struct Sizes {
    /// The release kernel's `.text`.
    kernel_text: u64,
    /// The release kernel's `.data`: initialised state the image must carry and the loader
    /// checksum and copy for every replica (none while the kernel's initial state is zeros).
    kernel_data: u64,
    /// The packed image.
    image: u64,
}

/// Reads the kernel's `.text` and `.data` sizes from the ELF beside the image in
/// `out/image`, and the image's size.
fn measure_sizes(out: &std::path::Path, image: &std::path::Path) -> Result<Sizes> {
    let kernel = std::fs::read(out.join("image").join("atoll-kernel.elf"))
        .context("reading the kernel ELF")?;
    let file = object::File::parse(kernel.as_slice()).context("parsing the kernel ELF")?;
    let kernel_text = file
        .section_by_name(".text")
        .map(|s| s.size())
        .ok_or_else(|| anyhow!("kernel has no .text"))?;
    let kernel_data = file.section_by_name(".data").map_or(0, |s| s.size());
    let image = std::fs::metadata(image)?.len();
    Ok(Sizes {
        kernel_text,
        kernel_data,
        image,
    })
}

/// The instruction counts of the benchmark systems under `protection-domains/bench/systems/`.
struct RoundTrips {
    trivial: f64,
    interrupt: f64,
    ppc_passive: f64,
    ppc_active: f64,
    notify_same: f64,
    notify_cross: f64,
    /// Across the two cores of one replica.
    notify_smp: f64,
    /// To a passive server on the other core of the caller's replica.
    ppc_passive_smp: f64,
}

/// Measures each system of [`RoundTrips`].
fn measure_round_trips(out: &std::path::Path) -> Result<RoundTrips> {
    Ok(RoundTrips {
        trivial: pd_benchmark("syscall.xml", "trivial system call", out)?,
        interrupt: pd_benchmark("irq.xml", "interrupt to PD", out)?,
        ppc_passive: pd_benchmark("ppc-passive.xml", "ppc round trip", out)?,
        ppc_active: pd_benchmark("ppc-active.xml", "ppc round trip", out)?,
        notify_same: pd_benchmark("notify-same.xml", "notify round trip", out)?,
        notify_cross: pd_benchmark("notify-cross.xml", "notify round trip", out)?,
        notify_smp: pd_benchmark("notify-smp.xml", "notify round trip", out)?,
        ppc_passive_smp: pd_benchmark("ppc-passive-smp.xml", "ppc round trip", out)?,
    })
}

/// The instruction counts of the generated scale systems.
struct Scale {
    notify_2: f64,
    notify_60: f64,
    call_2: f64,
    call_60: f64,
    notify_4r: f64,
    call_4r: f64,
    cross_60: f64,
    /// On core 0 of a two-core replica, core 1 idle.
    notify_1busy: f64,
    /// The same with a spinner keeping core 1 busy.
    notify_2busy: f64,
}

/// Measures each system of [`Scale`].
fn measure_scale(out: &std::path::Path) -> Result<Scale> {
    Ok(Scale {
        notify_2: scale_benchmark("notify-2ch", Trip::Notify, 2, 0, 1, out)?,
        notify_60: scale_benchmark("notify-60ch", Trip::Notify, 60, 0, 1, out)?,
        call_2: scale_benchmark("call-2ch", Trip::Call, 2, 0, 1, out)?,
        call_60: scale_benchmark("call-60ch", Trip::Call, 60, 0, 1, out)?,
        notify_4r: scale_benchmark("notify-4rep", Trip::Notify, 1, 0, 4, out)?,
        call_4r: scale_benchmark("call-4rep", Trip::Call, 1, 0, 4, out)?,
        cross_60: scale_benchmark("cross-60ch", Trip::Notify, 60, 1, 2, out)?,
        notify_1busy: pd_benchmark("notify-smp-1busy.xml", "notify round trip", out)?,
        notify_2busy: pd_benchmark("notify-smp-2busy.xml", "notify round trip", out)?,
    })
}

/// Generates the scale system of [`scale_system`] as `label` and measures its round trip.
fn scale_benchmark(
    label: &str,
    trip: Trip,
    channels: u32,
    answer_core: u32,
    replicas: u32,
    out: &std::path::Path,
) -> Result<f64> {
    let name = match trip {
        Trip::Notify => "notify round trip",
        Trip::Call => "ppc round trip",
    };
    let xml = scale_system(trip, channels, answer_core, replicas);
    generated_benchmark(label, &xml, name, out)
}

/// The table's figures before the scale figures: boot, sizes and round trips, with their
/// goals and references.
fn headline_figures(boot: &BootMeasures, sizes: &Sizes, trips: &RoundTrips) -> Vec<Figure> {
    let mut figures = boot_table(boot);
    figures.push(Figure {
        name: "kernel .text (release)",
        value: sizes.kernel_text as f64,
        unit: "bytes",
        goal: Some(65_536.0),
        reference: "seL4 63,876 bytes",
        exact: true,
    });
    figures.push(Figure {
        name: "kernel .data (release)",
        value: sizes.kernel_data as f64,
        unit: "bytes",
        goal: Some(0.0),
        reference: "-",
        exact: true,
    });
    figures.extend(round_trip_table(trips));
    figures.push(Figure {
        name: "image size (default system)",
        value: sizes.image as f64,
        unit: "bytes",
        goal: None,
        reference: "-",
        exact: true,
    });
    figures
}

/// The boot figures' rows.
fn boot_table(boot: &BootMeasures) -> Vec<Figure> {
    vec![
        Figure {
            name: "boot to every PD started (instructions, default system)",
            value: boot.pds_started as f64,
            unit: "instructions",
            goal: Some(5_000_000.0),
            reference: "seL4 ~7 M to first PD; Linux ~850 M to init",
            exact: true,
        },
        Figure {
            name: "boot to every replica up (instructions, default system)",
            value: boot.replicas_up as f64,
            unit: "instructions",
            goal: None,
            reference: "-",
            exact: true,
        },
        Figure {
            name: "boot to every PD started (wall, QEMU start included, median of 3)",
            value: boot.wall,
            unit: "s",
            goal: Some(0.10),
            reference: "seL4 0.10-0.15 s to first PD; Linux 2.4 s",
            exact: false,
        },
        Figure {
            name: "QEMU start to its first output (wall, median of 3; part of the above)",
            value: boot.qemu_start,
            unit: "s",
            goal: None,
            reference: "QEMU's own start-up on this machine",
            exact: false,
        },
    ]
}

/// The round-trip figures' rows, with the cost of crossing replicas as a ratio.
fn round_trip_table(trips: &RoundTrips) -> Vec<Figure> {
    vec![
        Figure {
            name: "trivial system call (NBWait, nothing pending)",
            value: trips.trivial,
            unit: "instructions",
            goal: Some(100.0),
            reference: "Linux getpid 485",
            exact: true,
        },
        Figure {
            name: "interrupt to PD (timer interrupt raised to notified)",
            value: trips.interrupt,
            unit: "instructions",
            goal: None,
            reference: "seL4 587 cycles to a user-level handler (A53 hardware)",
            exact: true,
        },
        Figure {
            name: "PPC + reply, passive server, same core",
            value: trips.ppc_passive,
            unit: "instructions",
            goal: Some(580.0),
            reference: "seL4 + Microkit 721",
            exact: true,
        },
        Figure {
            name: "PPC + reply, active server, same core",
            value: trips.ppc_active,
            unit: "instructions",
            goal: Some(800.0),
            reference: "seL4 + Microkit 2,473",
            exact: true,
        },
        Figure {
            name: "notify round trip, same replica (one core)",
            value: trips.notify_same,
            unit: "instructions",
            goal: Some(1_200.0),
            reference: "seL4 2,394 (notify round trip); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas (two cores)",
            value: trips.notify_cross,
            unit: "instructions",
            goal: Some(1_800.0),
            reference: "Microkit SMP two-hop 7,165 (A55); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas / same replica",
            value: ratio(trips.notify_cross, trips.notify_same),
            unit: "ratio",
            goal: Some(1.5),
            reference: "Microkit SMP 2.24 (7,165 / 3,197)",
            exact: true,
        },
        Figure {
            name: "notify round trip, same replica, across cores",
            value: trips.notify_smp,
            unit: "instructions",
            goal: None,
            reference: "Microkit SMP two-hop 7,165 (A55); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, same replica, across cores / one core",
            value: ratio(trips.notify_smp, trips.notify_same),
            unit: "ratio",
            goal: Some(1.2),
            reference: "Microkit SMP 2.24 (7,165 / 3,197)",
            exact: true,
        },
        Figure {
            name: "PPC + reply, passive server on another core of the replica",
            value: trips.ppc_passive_smp,
            unit: "instructions",
            goal: None,
            reference: "-",
            exact: true,
        },
    ]
}

/// The HTTP service's figures (see `bench_http`): instructions per request are exact only
/// to the batching of frames, which follows the host's timing, so they vary a little
/// between runs; the `wrk` figures are wall time.
fn http_figures(http: &crate::bench_http::Http) -> Vec<Figure> {
    let row = |name, value, unit, reference| Figure {
        name,
        value,
        unit,
        goal: None,
        reference,
        exact: false,
    };
    vec![
        row(
            "GET /status round trip, kept connection (machine-wide)",
            http.get_status,
            "instructions",
            "-",
        ),
        row(
            "PUT /kv 1 KiB round trip, durable, kept connection (machine-wide)",
            http.put_1k,
            "instructions",
            "-",
        ),
        row(
            "wrk GET /status, 64 connections, 10 s",
            http.wrk_rps,
            "requests/s",
            "reported, wall time",
        ),
        row(
            "wrk GET /status, 99th percentile latency",
            http.wrk_p99_ms,
            "ms",
            "reported, wall time",
        ),
        row(
            "wrk PUT /kv 4 KiB durable, 64 connections, 10 s",
            http.wrk_put_rps,
            "requests/s",
            "reported, wall time",
        ),
        row(
            "wrk PUT /kv 4 KiB durable, 99th percentile latency",
            http.wrk_put_p99_ms,
            "ms",
            "reported, wall time",
        ),
        row(
            "QEMU user networking: host CPU per request (QEMU main thread)",
            http.slirp_us,
            "µs",
            "reported, wall time",
        ),
    ]
}

/// The key-value store's figures (see `bench_kv`): machine-wide instruction counts that
/// hold the store's polling while the host carries out its disk requests, so they vary a
/// little between runs and with the host's disk; reported, without goals.
fn kv_figures(kv: &crate::bench_kv::Kv) -> Vec<Figure> {
    let row = |name, value, unit| Figure {
        name,
        value,
        unit,
        goal: None,
        reference: "reported; holds the store's disk waits",
        exact: false,
    };
    vec![
        row(
            "kv PUT 4 KiB durable, new key, cross-replica (machine-wide)",
            kv.put_4k,
            "instructions",
        ),
        row(
            "kv GET 4 KiB, cross-replica (machine-wide)",
            kv.get_4k,
            "instructions",
        ),
        row(
            "kv recovery per MiB of log (store open, machine-wide)",
            kv.recovery_per_mib(),
            "instructions",
        ),
        row("kv log recovered for the figure above", kv.log_mib, "MiB"),
    ]
}

/// Replica restart times (`bench_restart`), in virtual time under `-icount shift=0` (the
/// machine's instructions): to every PD of the replica started, against the goal, and to
/// every PD waiting for events, reported.
fn restart_figures(restarts: &[crate::bench_restart::Restart]) -> Vec<Figure> {
    let mut figures = Vec::new();
    for r in restarts {
        let (started, waiting) = crate::bench_restart::figure_names(r.name);
        figures.push(Figure {
            name: started,
            value: r.started,
            unit: "ns (virtual)",
            goal: Some(10_000_000.0),
            reference: "goal 10 ms; Linux multikernel work: well under 1 s; seL4 + Microkit: none",
            exact: true,
        });
        figures.push(Figure {
            name: waiting,
            value: r.waiting,
            unit: "ns (virtual)",
            goal: None,
            reference: "reported; holds the PDs' own start-up (store recovery, DHCP)",
            exact: false,
        });
    }
    figures
}

/// The real-time cells' figures (`bench_rt`): per cell, the job's jitter and response, and
/// what its core suffered. The multikernel layout's interference counters have their goal,
/// 0 under load; the jitter figures are virtual time under `-icount`, which holds QEMU's
/// round robin of the cores (the "other cores spinning" row is that share alone).
fn rt_figures(rt: &crate::bench_rt::Rt) -> Vec<Figure> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut figures = Vec::new();
    for c in rt.cells.iter().chain(std::iter::once(&rt.spinning)) {
        let w = &c.window;
        let counted_goal = (c.name == "multikernel loaded").then_some(0.0);
        let mut row = |what: &str, value: u64, unit, goal: Option<f64>, exact| {
            figures.push(Figure {
                name: leak(format!("rt {}: {what}", c.name)),
                value: value as f64,
                unit,
                goal,
                reference: "virtual time, 10,000 periods of 1 ms",
                exact,
            });
        };
        // A window the plugin could not time has no core-clock figures, only its count.
        if c.core_clock.jobs > 0 {
            row("core-clock jitter max", c.core_clock.max, "ns", None, false);
            row(
                "core-clock jitter p99.9",
                c.core_clock.p999,
                "ns",
                None,
                false,
            );
            row(
                "core-clock jitter mean",
                c.core_clock.mean.round() as u64,
                "ns",
                None,
                false,
            );
        }
        row(
            "core-clock untimed releases",
            c.core_clock.untimed,
            "periods",
            None,
            false,
        );
        row("jitter max", w.jitter[4], "ns", None, false);
        row("jitter p99.9", w.jitter[3], "ns", None, false);
        row("jitter mean", w.jitter[1], "ns", None, false);
        row("kernel path max", w.path.1, "ns", None, false);
        row("kernel path mean", w.path.0, "ns", None, false);
        row("response max", w.response[4], "ns", None, false);
        row("deadline misses", w.missed, "periods", None, false);
        row(
            "foreign interrupts",
            w.foreign_irqs.0,
            "irqs",
            counted_goal,
            false,
        );
        row("lock wait time", w.lock_waits.1, "ns", counted_goal, false);
        row(
            "broadcast maintenance",
            w.broadcasts.0,
            "instructions",
            counted_goal,
            false,
        );
    }
    // The jitter goal, on the job's core's own clock: loaded within 1 µs of idle.
    let cell = |name: &str| rt.cells.iter().find(|c| c.name == name);
    if let (Some(idle), Some(loaded)) = (cell("multikernel idle"), cell("multikernel loaded"))
        && idle.core_clock.jobs > 0
        && loaded.core_clock.jobs > 0
    {
        figures.push(Figure {
            name: "rt multikernel: core-clock jitter max, loaded less idle",
            value: loaded.core_clock.max as f64 - idle.core_clock.max as f64,
            unit: "ns",
            goal: Some(1_000.0),
            reference: "the job's core's own instructions, 10,000 periods of 1 ms",
            exact: false,
        });
    }
    figures
}

/// Prints the real-time cells' table and writes it to `out/rt-table.md`.
fn print_rt_table(out: &std::path::Path, rt: &crate::bench_rt::Rt) -> Result<()> {
    let table = crate::bench_rt::table(rt);
    println!("\nreal-time cells (virtual time under -icount; see docs/performance.md):\n{table}");
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("rt-table.md"), &table)?;
    Ok(())
}

/// The scale figures: each, and where it has one, its ratio to the same round trip in the
/// smaller system of this run.
fn scale_figures(scale: &Scale, trips: &RoundTrips) -> Vec<Figure> {
    let rows = [
        ("notify round trip, 2 channels per PD", scale.notify_2, None),
        (
            "notify round trip, 60 channels per PD",
            scale.notify_60,
            Some(("scale: notify, 60 / 2 channels per PD", scale.notify_2)),
        ),
        (
            "PPC + reply (active), 2 channels per PD",
            scale.call_2,
            None,
        ),
        (
            "PPC + reply (active), 60 channels per PD",
            scale.call_60,
            Some(("scale: PPC, 60 / 2 channels per PD", scale.call_2)),
        ),
        (
            "notify round trip, same replica, 4 replicas running",
            scale.notify_4r,
            Some(("scale: notify, 4 / 1 replicas", trips.notify_same)),
        ),
        (
            "PPC + reply (active), 4 replicas running",
            scale.call_4r,
            Some(("scale: PPC, 4 / 1 replicas", trips.ppc_active)),
        ),
        (
            "notify round trip across replicas, 60 crossing channels",
            scale.cross_60,
            Some((
                "scale: notify across replicas, 60 / 1 crossing channels",
                trips.notify_cross,
            )),
        ),
        (
            "notify round trip, same core, 1 of the replica's 2 cores busy",
            scale.notify_1busy,
            None,
        ),
        (
            "notify round trip, same core, 2 of the replica's 2 cores busy",
            scale.notify_2busy,
            Some((
                "scale: notify same core, 2 / 1 of the replica's cores busy",
                scale.notify_1busy,
            )),
        ),
    ];
    let mut figures = Vec::new();
    for (name, value, base) in rows {
        figures.push(Figure {
            name,
            value,
            unit: "instructions",
            goal: None,
            reference: "-",
            exact: true,
        });
        if let Some((name, base)) = base {
            figures.push(Figure {
                name,
                value: ratio(value, base),
                unit: "ratio",
                goal: Some(SCALE_GOAL),
                reference: "the same cost at any size",
                exact: true,
            });
        }
    }
    figures
}

/// Prints the figures as a table, each against its goal and references.
fn print_table(figures: &[Figure]) {
    println!(
        "{:<66} {:>14} {:<13} {:>12}  reference",
        "figure", "value", "unit", "goal"
    );
    for f in figures {
        let goal = f.goal.map_or("-".to_string(), |g| format!("<= {g}"));
        let met = match f.goal {
            Some(g) if f.value <= g => " (met)",
            Some(_) => " (MISSED)",
            None => "",
        };
        println!(
            "{:<66} {:>14} {:<13} {:>12}  {}{met}",
            f.name,
            format_value(f.value),
            f.unit,
            goal,
            f.reference
        );
    }
}

/// Writes the figures to `out/results.json`, the form `bench/baseline.json` keeps.
fn write_results(out: &std::path::Path, figures: &[Figure]) -> Result<()> {
    let results: Vec<_> = figures
        .iter()
        .map(|f| json!({ "name": f.name, "value": f.value, "unit": f.unit, "goal": f.goal, "exact": f.exact }))
        .collect();
    std::fs::create_dir_all(out)?;
    let path = out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("results written to {}", path.display());
    Ok(())
}

/// Prints each figure's change against `bench/baseline.json`.
fn compare_with_baseline(figures: &[Figure]) -> Result<()> {
    let baseline_path: PathBuf = workspace_root().join("bench").join("baseline.json");
    let baseline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&baseline_path)
            .with_context(|| format!("reading {}", baseline_path.display()))?,
    )?;
    println!("\nchange against {}:", baseline_path.display());
    for f in figures {
        let old = baseline
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == f.name))
            .and_then(|e| e["value"].as_f64());
        println!("  {}", change_line(f, old));
    }
    Ok(())
}

/// How figure `f` moved from its baseline value `old`, for [`compare_with_baseline`].
fn change_line(f: &Figure, old: Option<f64>) -> String {
    match old {
        Some(old) if f.exact && old != f.value => format!(
            "{}: {} -> {} ({})",
            f.name,
            format_value(old),
            format_value(f.value),
            format_change(f.value - old)
        ),
        Some(old) if f.exact => format!("{}: unchanged ({})", f.name, format_value(old)),
        Some(old) => format!(
            "{}: {} -> {} (varies from run to run)",
            f.name,
            format_value(old),
            format_value(f.value)
        ),
        None => format!("{}: new ({})", f.name, format_value(f.value)),
    }
}

/// `value / base`, to three decimals.
fn ratio(value: f64, base: f64) -> f64 {
    (value / base.max(1.0) * 1000.0).round() / 1000.0
}

/// Whole numbers as such (sizes, boot counts); averages, ratios and seconds to three
/// decimals.
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// A change, signed, rounded as [`format_value`] rounds.
fn format_change(d: f64) -> String {
    let d = (d * 1000.0).round() / 1000.0;
    if d.fract() == 0.0 {
        format!("{d:+.0}")
    } else {
        format!("{d:+.3}")
    }
}

#[cfg(test)]
mod tests {
    /// Every generated scale system checks clean, with the channels, PDs and replicas it
    /// promises.
    #[test]
    fn scale_systems_are_valid_descriptions() {
        use super::{Trip, scale_system};
        let board = atoll_boards::by_name(super::BOARD).expect("board");
        for (trip, channels, answer_core, replicas, pds) in [
            (Trip::Notify, 2, 0, 1, 2),
            (Trip::Notify, 60, 0, 1, 2),
            (Trip::Call, 2, 0, 1, 2),
            (Trip::Call, 60, 0, 1, 2),
            (Trip::Notify, 1, 0, 4, 5),
            (Trip::Call, 1, 0, 4, 5),
            (Trip::Notify, 60, 1, 2, 2),
        ] {
            let xml = scale_system(trip, channels, answer_core, replicas);
            let checked = atoll_tool::check(&xml, board, false);
            assert!(
                checked.diagnostics.is_empty(),
                "{xml}\n{:?}",
                checked.diagnostics
            );
            let system = checked.system.expect("a system");
            assert_eq!(system.channels.len(), channels as usize, "{xml}");
            assert_eq!(system.protection_domains.len(), pds, "{xml}");
            assert_eq!(system.replicas.len(), replicas as usize, "{xml}");
        }
    }

    /// A figure's line against the baseline: exact figures by their change, wall times as
    /// varying, figures the baseline lacks as new.
    #[test]
    fn change_lines_say_how_a_figure_moved() {
        use super::{Figure, change_line};
        let figure = |value, exact| Figure {
            name: "f",
            value,
            unit: "instructions",
            goal: None,
            reference: "-",
            exact,
        };
        assert_eq!(
            change_line(&figure(1900.89, true), Some(1912.89)),
            "f: 1912.890 -> 1900.890 (-12)"
        );
        assert_eq!(
            change_line(&figure(479.0, true), Some(479.0)),
            "f: unchanged (479)"
        );
        assert_eq!(
            change_line(&figure(0.173, false), Some(0.151)),
            "f: 0.151 -> 0.173 (varies from run to run)"
        );
        assert_eq!(change_line(&figure(2.0, true), None), "f: new (2.000)");
    }

    /// Each scale figure is followed by its ratio to the smaller system, where it has one.
    #[test]
    fn scale_figures_pair_each_count_with_its_ratio() {
        use super::{RoundTrips, Scale, scale_figures};
        let trips = RoundTrips {
            trivial: 1.0,
            interrupt: 1.0,
            ppc_passive: 1.0,
            ppc_active: 1000.0,
            notify_same: 2000.0,
            notify_cross: 3000.0,
            notify_smp: 4000.0,
            ppc_passive_smp: 2000.0,
        };
        let scale = Scale {
            notify_2: 2000.0,
            notify_60: 2020.0,
            call_2: 1000.0,
            call_60: 1000.0,
            notify_4r: 2000.0,
            call_4r: 1000.0,
            cross_60: 3000.0,
            notify_1busy: 2000.0,
            notify_2busy: 2010.0,
        };
        let figures = scale_figures(&scale, &trips);
        let units: Vec<_> = figures.iter().map(|f| f.unit).collect();
        assert_eq!(
            units,
            [
                "instructions",
                "instructions",
                "ratio",
                "instructions",
                "instructions",
                "ratio",
                "instructions",
                "ratio",
                "instructions",
                "ratio",
                "instructions",
                "ratio",
                "instructions",
                "instructions",
                "ratio"
            ]
        );
        assert_eq!(figures[2].name, "scale: notify, 60 / 2 channels per PD");
        assert_eq!(figures[2].value, 1.01);
        assert_eq!(figures[11].value, 1.0);
        assert_eq!(
            figures[14].name,
            "scale: notify same core, 2 / 1 of the replica's cores busy"
        );
        assert_eq!(figures[14].value, 1.005);
    }

    #[test]
    fn bench_figure_is_read_from_the_pd_line() {
        let serial = "bench_ping: BENCH notify round trip: 1862.05 instructions, 1862 ns virtual time, over 10000 rounds\n";
        assert_eq!(
            super::bench_instructions(serial, "notify round trip"),
            Some(1862.05)
        );
        assert_eq!(super::bench_instructions(serial, "ppc round trip"), None);
        assert_eq!(
            super::bench_instructions("bench_ping: ready", "notify round trip"),
            None
        );
    }

    #[test]
    fn boot_figures_are_read_from_the_kernel_lines() {
        let serial = "K0|INFO: up\n\
            K0|INFO: multikernel (all replicas settled at 2.370 ms, 2370432 ns): K0 up {0} ticks 0\n\
            K0|INFO: every PD started and waiting for events at 2.510 ms, 2510016 ns\n";
        assert_eq!(
            super::boot_figures(serial).ok(),
            Some((2_370_432, 2_510_016))
        );
        assert!(
            super::boot_figures(
                "K0|INFO: multikernel (all replicas settled at 2.370 ms, 2370432 ns)"
            )
            .is_err()
        );
        assert_eq!(
            super::boot_instructions("nothing", super::PDS_STARTED),
            None
        );
    }
}
