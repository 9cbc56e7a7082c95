//! `cargo xtask bench`: measures Atoll and tracks each figure against its goal and the seL4
//! and Linux references of docs/performance.md. It fails only on a broken run (a figure that
//! cannot be measured, or an instruction count that differs between two identical runs),
//! never on a missed goal.
//!
//! It measures boot to every PD started and to every replica up (instructions under
//! `-icount shift=0,sleep=off`, and wall time), kernel `.text` and image size, and, with the
//! benchmark PDs of `protection-domains/bench/`, a trivial system call, interrupt to PD, PPC
//! round trips to passive and active servers, notify round trips on one replica and across
//! two, and the scale ratios: the same round trips with 60 channels per PD against 2, with
//! 4 replicas against 1, and with 60 channels crossing between two replicas against 1.

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
    let board = atoll_boards::by_name(BOARD).ok_or_else(|| anyhow!("no board {BOARD}"))?;
    let options = atoll_runner::QemuOptions {
        semihosting: true,
        icount,
        until: vec![until.into()],
        ..Default::default()
    };
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
fn bench_instructions(serial: &str, name: &str) -> Option<f64> {
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

/// Builds the benchmark system at `path` and boots it twice under icount; its figure `name`,
/// which must be the same both times.
fn measure_system(path: &std::path::Path, name: &str, out: &std::path::Path) -> Result<f64> {
    let system = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let label = system.trim_end_matches(".xml").to_string();
    let args = BuildArgs {
        board: BOARD.into(),
        system: Some(path.to_path_buf()),
        out: Some(out.join(&label)),
        ..BuildArgs::default()
    };
    let built = build(&args)?;
    let mut counts = Vec::new();
    for run in 1..=2 {
        let outcome = boot_until(
            &built.image,
            true,
            &format!("{label}-{run}"),
            &bench_marker(name),
        )?;
        counts.push(
            bench_instructions(&outcome.serial, name)
                .ok_or_else(|| anyhow!("{system}: no figure on its BENCH {name} line"))?,
        );
    }
    if counts[0] != counts[1] {
        bail!(
            "{system}: the instruction count differs between two identical runs: {} and {}",
            counts[0],
            counts[1]
        );
    }
    Ok(counts[0])
}

/// Runs the benchmarks; `smoke` checks the harness only (one quick boot), `compare` reports
/// each figure's change against `bench/baseline.json`.
pub fn run(compare: bool, smoke: bool) -> Result<()> {
    crate::setup::rust_targets()?;
    crate::setup::qemu(&["virt"])?;
    let out = workspace_root().join("target").join("bench");
    let args = BuildArgs {
        board: BOARD.into(),
        test: true,
        out: Some(out.join("image")),
        ..BuildArgs::default()
    };
    let built = build(&args)?;

    let first = boot(&built.image, true, "boot-icount-1")?;
    let (replicas_up, pds_started) = boot_figures(&first.serial)?;
    if smoke {
        println!(
            "bench smoke: boot to every PD started = {pds_started} instructions; harness works"
        );
        return Ok(());
    }
    let second = boot(&built.image, true, "boot-icount-2")?;
    let again = boot_figures(&second.serial)?;
    if again != (replicas_up, pds_started) {
        bail!(
            "the boot instruction counts differ between two identical runs: {:?} and {again:?}",
            (replicas_up, pds_started)
        );
    }
    // Wall times of three boots: QEMU started to every PD started, and to QEMU's first
    // output (the loader's first line), which is QEMU's own start-up; medians.
    let mut walls = Vec::new();
    let mut starts = Vec::new();
    for i in 0..3 {
        let outcome = boot(&built.image, false, &format!("boot-wall-{i}"))?;
        let (Some(all), Some(first)) = (outcome.until_seen, outcome.first_output) else {
            bail!("boot-wall-{i}: no time for the first output or for every PD started");
        };
        walls.push(all.as_secs_f64());
        starts.push(first.as_secs_f64());
    }
    walls.sort_by(f64::total_cmp);
    starts.sort_by(f64::total_cmp);

    let kernel = std::fs::read(out.join("image").join("atoll-kernel.elf"))
        .context("reading the kernel ELF")?;
    let file = object::File::parse(kernel.as_slice()).context("parsing the kernel ELF")?;
    let text = file
        .section_by_name(".text")
        .map(|s| s.size())
        .ok_or_else(|| anyhow!("kernel has no .text"))?;
    let image = std::fs::metadata(&built.image)?.len();
    let trivial = pd_benchmark("syscall.xml", "trivial system call", &out)?;
    let interrupt = pd_benchmark("irq.xml", "interrupt to PD", &out)?;
    let ppc_passive = pd_benchmark("ppc-passive.xml", "ppc round trip", &out)?;
    let ppc_active = pd_benchmark("ppc-active.xml", "ppc round trip", &out)?;
    let notify_same = pd_benchmark("notify-same.xml", "notify round trip", &out)?;
    let notify_cross = pd_benchmark("notify-cross.xml", "notify round trip", &out)?;
    let scaled = |label: &str, trip, channels, answer_core, replicas| {
        let name = match trip {
            Trip::Notify => "notify round trip",
            Trip::Call => "ppc round trip",
        };
        let xml = scale_system(trip, channels, answer_core, replicas);
        generated_benchmark(label, &xml, name, &out)
    };
    let notify_2 = scaled("notify-2ch", Trip::Notify, 2, 0, 1)?;
    let notify_60 = scaled("notify-60ch", Trip::Notify, 60, 0, 1)?;
    let call_2 = scaled("call-2ch", Trip::Call, 2, 0, 1)?;
    let call_60 = scaled("call-60ch", Trip::Call, 60, 0, 1)?;
    let notify_4r = scaled("notify-4rep", Trip::Notify, 1, 0, 4)?;
    let call_4r = scaled("call-4rep", Trip::Call, 1, 0, 4)?;
    let cross_60 = scaled("cross-60ch", Trip::Notify, 60, 1, 2)?;
    let mut figures = vec![
        Figure {
            name: "boot to every PD started (instructions, default system)",
            value: pds_started as f64,
            unit: "instructions",
            goal: Some(5_000_000.0),
            reference: "seL4 ~7 M to first PD; Linux ~850 M to init",
            exact: true,
        },
        Figure {
            name: "boot to every replica up (instructions, default system)",
            value: replicas_up as f64,
            unit: "instructions",
            goal: None,
            reference: "-",
            exact: true,
        },
        Figure {
            name: "boot to every PD started (wall, QEMU start included, median of 3)",
            value: walls[1],
            unit: "s",
            goal: Some(0.10),
            reference: "seL4 0.10-0.15 s to first PD; Linux 2.4 s",
            exact: false,
        },
        Figure {
            name: "QEMU start to its first output (wall, median of 3; part of the above)",
            value: starts[1],
            unit: "s",
            goal: None,
            reference: "QEMU's own start-up on this machine",
            exact: false,
        },
        Figure {
            name: "kernel .text (release)",
            value: text as f64,
            unit: "bytes",
            goal: Some(65_536.0),
            reference: "seL4 63,876 bytes",
            exact: true,
        },
        Figure {
            name: "trivial system call (NBWait, nothing pending)",
            value: trivial,
            unit: "instructions",
            goal: Some(100.0),
            reference: "Linux getpid 485",
            exact: true,
        },
        Figure {
            name: "interrupt to PD (timer interrupt raised to notified)",
            value: interrupt,
            unit: "instructions",
            goal: None,
            reference: "seL4 587 cycles to a user-level handler (A53 hardware)",
            exact: true,
        },
        Figure {
            name: "PPC + reply, passive server, same core",
            value: ppc_passive,
            unit: "instructions",
            goal: Some(580.0),
            reference: "seL4 + Microkit 721",
            exact: true,
        },
        Figure {
            name: "PPC + reply, active server, same core",
            value: ppc_active,
            unit: "instructions",
            goal: Some(800.0),
            reference: "seL4 + Microkit 2,473",
            exact: true,
        },
        Figure {
            name: "notify round trip, same replica (one core)",
            value: notify_same,
            unit: "instructions",
            goal: Some(1_200.0),
            reference: "seL4 2,394 (notify round trip); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas (two cores)",
            value: notify_cross,
            unit: "instructions",
            goal: Some(1_800.0),
            reference: "Microkit SMP two-hop 7,165 (A55); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas / same replica",
            value: ratio(notify_cross, notify_same),
            unit: "ratio",
            goal: Some(1.5),
            reference: "Microkit SMP 2.24 (7,165 / 3,197)",
            exact: true,
        },
        Figure {
            name: "image size (default system)",
            value: image as f64,
            unit: "bytes",
            goal: None,
            reference: "-",
            exact: true,
        },
    ];
    // The scale figures: each, and where it has one, its ratio to the same round trip in the
    // smaller system of this run.
    let scale = [
        ("notify round trip, 2 channels per PD", notify_2, None),
        (
            "notify round trip, 60 channels per PD",
            notify_60,
            Some(("scale: notify, 60 / 2 channels per PD", notify_2)),
        ),
        ("PPC + reply (active), 2 channels per PD", call_2, None),
        (
            "PPC + reply (active), 60 channels per PD",
            call_60,
            Some(("scale: PPC, 60 / 2 channels per PD", call_2)),
        ),
        (
            "notify round trip, same replica, 4 replicas running",
            notify_4r,
            Some(("scale: notify, 4 / 1 replicas", notify_same)),
        ),
        (
            "PPC + reply (active), 4 replicas running",
            call_4r,
            Some(("scale: PPC, 4 / 1 replicas", ppc_active)),
        ),
        (
            "notify round trip across replicas, 60 crossing channels",
            cross_60,
            Some((
                "scale: notify across replicas, 60 / 1 crossing channels",
                notify_cross,
            )),
        ),
    ];
    for (name, value, base) in scale {
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

    println!(
        "{:<66} {:>14} {:<13} {:>12}  reference",
        "figure", "value", "unit", "goal"
    );
    for f in &figures {
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
    let results: Vec<_> = figures
        .iter()
        .map(|f| json!({ "name": f.name, "value": f.value, "unit": f.unit, "goal": f.goal, "exact": f.exact }))
        .collect();
    std::fs::create_dir_all(&out)?;
    let path = out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("results written to {}", path.display());

    if compare {
        let baseline_path: PathBuf = workspace_root().join("bench").join("baseline.json");
        let baseline: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&baseline_path)
                .with_context(|| format!("reading {}", baseline_path.display()))?,
        )?;
        println!("\nchange against {}:", baseline_path.display());
        for f in &figures {
            let old = baseline
                .as_array()
                .and_then(|a| a.iter().find(|e| e["name"] == f.name))
                .and_then(|e| e["value"].as_f64());
            match old {
                Some(old) if f.exact && old != f.value => println!(
                    "  {}: {} -> {} ({})",
                    f.name,
                    format_value(old),
                    format_value(f.value),
                    format_change(f.value - old)
                ),
                Some(old) if f.exact => println!("  {}: unchanged ({})", f.name, format_value(old)),
                Some(old) => println!(
                    "  {}: {} -> {} (varies from run to run)",
                    f.name,
                    format_value(old),
                    format_value(f.value)
                ),
                None => println!("  {}: new ({})", f.name, format_value(f.value)),
            }
        }
    }
    Ok(())
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
