//! `cargo xtask bench`: measures Atoll and tracks each figure against its goal and the seL4
//! and Linux references in PERFORMANCE.md. It fails only on a broken run (a figure that
//! cannot be measured, or an instruction count that differs between two identical runs),
//! never on a missed goal.
//!
//! It measures boot to every replica up (instructions under `-icount shift=0,sleep=off`, and
//! wall time), kernel `.text` and image size, and, with the benchmark PDs of
//! `protection-domains/bench/`, a trivial system call, PPC round trips to passive and active
//! servers and notify round trips on one replica and across two.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use object::{Object, ObjectSection};
use serde_json::json;

use crate::BuildArgs;
use crate::build::{build, workspace_root};

/// One measured figure.
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    /// The goal (at most this), from PERFORMANCE.md.
    goal: Option<f64>,
    /// seL4 + Microkit and Linux reference figures, as text.
    reference: &'static str,
    /// Whether the figure repeats exactly (instruction counts, sizes) or varies (wall time).
    exact: bool,
}

const BOARD: &str = "qemu_virt_aarch64";
const SETTLED: &str = "all replicas settled at ";

/// The boot instruction count: the `ns` figure of the boot summary under icount.
fn boot_instructions(serial: &str) -> Option<u64> {
    let line = serial.lines().find(|l| l.contains(SETTLED))?;
    let after = line.split(", ").nth(1)?;
    after.split(" ns").next()?.trim().parse().ok()
}

fn boot(image: &std::path::Path, icount: bool, label: &str) -> Result<atoll_e2e::Outcome> {
    boot_until(image, icount, label, SETTLED, "every replica up")
}

/// Boots `image` until its output shows `until` (which names `what` in errors).
fn boot_until(
    image: &std::path::Path,
    icount: bool,
    label: &str,
    until: &str,
    what: &str,
) -> Result<atoll_e2e::Outcome> {
    let board = atoll_boards::by_name(BOARD).ok_or_else(|| anyhow!("no board {BOARD}"))?;
    let options = atoll_e2e::QemuOptions {
        semihosting: true,
        icount,
        until: vec![until.into()],
        ..Default::default()
    };
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{label}.log"));
    let outcome = atoll_e2e::run(board, image, &options, Duration::from_secs(60), &log)?;
    if !outcome.serial.contains(until) {
        bail!("the run did not reach {what}; serial log {}", log.display());
    }
    Ok(outcome)
}

/// The instruction count on a benchmark PD's line `BENCH <name>: <n> instructions, ...`.
fn bench_instructions(serial: &str, name: &str) -> Option<u64> {
    let marker = format!("BENCH {name}: ");
    let line = serial.lines().find(|l| l.contains(&marker))?;
    let after = line.split(&marker).nth(1)?;
    after.split(" instructions").next()?.trim().parse().ok()
}

/// Builds the benchmark system `system` (under `protection-domains/bench/systems/`) and
/// boots it twice under icount; its figure `name`, which must be the same both times.
fn pd_benchmark(system: &str, name: &str, out: &std::path::Path) -> Result<u64> {
    let label = system.trim_end_matches(".xml");
    let args = BuildArgs {
        board: BOARD.into(),
        system: Some(
            workspace_root()
                .join("protection-domains")
                .join("bench")
                .join("systems")
                .join(system),
        ),
        out: Some(out.join(label)),
        ..BuildArgs::default()
    };
    let built = build(&args)?;
    let mut counts = Vec::new();
    for run in 1..=2 {
        let outcome = boot_until(
            &built.image,
            true,
            &format!("{label}-{run}"),
            " instructions, ",
            "its BENCH line",
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
    let instructions = boot_instructions(&first.serial)
        .ok_or_else(|| anyhow!("no boot figure in the serial log"))?;
    if smoke {
        println!(
            "bench smoke: boot to all replicas up = {instructions} instructions; harness works"
        );
        return Ok(());
    }
    let second = boot(&built.image, true, "boot-icount-2")?;
    let again = boot_instructions(&second.serial)
        .ok_or_else(|| anyhow!("no boot figure in the second run"))?;
    if again != instructions {
        bail!(
            "boot instruction count differs between two identical runs: {instructions} and {again}"
        );
    }
    let mut walls: Vec<f64> = (0..3)
        .map(|i| {
            boot(&built.image, false, &format!("boot-wall-{i}")).map(|o| o.elapsed.as_secs_f64())
        })
        .collect::<Result<_>>()?;
    walls.sort_by(f64::total_cmp);

    let kernel = std::fs::read(out.join("image").join("atoll-kernel.elf"))
        .context("reading the kernel ELF")?;
    let file = object::File::parse(kernel.as_slice()).context("parsing the kernel ELF")?;
    let text = file
        .section_by_name(".text")
        .map(|s| s.size())
        .ok_or_else(|| anyhow!("kernel has no .text"))?;
    let image = std::fs::metadata(&built.image)?.len();
    let trivial = pd_benchmark("syscall.xml", "trivial system call", &out)?;
    let ppc_passive = pd_benchmark("ppc-passive.xml", "ppc round trip", &out)?;
    let ppc_active = pd_benchmark("ppc-active.xml", "ppc round trip", &out)?;
    let notify_same = pd_benchmark("notify-same.xml", "notify round trip", &out)?;
    let notify_cross = pd_benchmark("notify-cross.xml", "notify round trip", &out)?;

    let figures = [
        Figure {
            name: "boot to all replicas up (instructions, default system)",
            value: instructions as f64,
            unit: "instructions",
            goal: Some(5_000_000.0),
            reference: "seL4 ~7 M to first PD; Linux ~850 M to init",
            exact: true,
        },
        Figure {
            name: "boot to all replicas up (wall, QEMU start included, median of 3)",
            value: walls[1],
            unit: "s",
            goal: Some(0.10),
            reference: "seL4 0.10-0.15 s to first PD; Linux 2.4 s",
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
            value: trivial as f64,
            unit: "instructions",
            goal: Some(100.0),
            reference: "Linux getpid 485",
            exact: true,
        },
        Figure {
            name: "PPC + reply, passive server, same core",
            value: ppc_passive as f64,
            unit: "instructions",
            goal: Some(580.0),
            reference: "seL4 + Microkit 721",
            exact: true,
        },
        Figure {
            name: "PPC + reply, active server, same core",
            value: ppc_active as f64,
            unit: "instructions",
            goal: Some(800.0),
            reference: "seL4 + Microkit 2,473",
            exact: true,
        },
        Figure {
            name: "notify round trip, same replica (one core)",
            value: notify_same as f64,
            unit: "instructions",
            goal: Some(1_200.0),
            reference: "seL4 2,394 (notify round trip); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas (two cores)",
            value: notify_cross as f64,
            unit: "instructions",
            goal: Some(1_800.0),
            reference: "Microkit SMP two-hop 7,165 (A55); Linux eventfd 17,620",
            exact: true,
        },
        Figure {
            name: "notify round trip, across replicas / same replica",
            value: (notify_cross as f64 / notify_same.max(1) as f64 * 1000.0).round() / 1000.0,
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
                    "  {}: {} -> {} ({:+})",
                    f.name,
                    format_value(old),
                    format_value(f.value),
                    f.value - old
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

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_figure_is_read_from_the_pd_line() {
        let serial = "bench_ping: BENCH notify round trip: 1862 instructions, 1862 ns virtual time, over 10000 rounds\n";
        assert_eq!(
            super::bench_instructions(serial, "notify round trip"),
            Some(1862)
        );
        assert_eq!(super::bench_instructions(serial, "ppc round trip"), None);
        assert_eq!(
            super::bench_instructions("bench_ping: ready", "notify round trip"),
            None
        );
    }

    #[test]
    fn boot_figure_is_read_from_the_summary() {
        let serial = "K0|INFO: up\nK0|INFO: multikernel (all replicas settled at 2.370 ms, 2370432 ns): K0 up {0} ticks 0\n";
        assert_eq!(super::boot_instructions(serial), Some(2_370_432));
        assert_eq!(super::boot_instructions("nothing"), None);
    }
}
