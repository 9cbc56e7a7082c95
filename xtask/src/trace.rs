//! `cargo xtask bench --trace SYSTEM`: where a benchmark's instructions go, function by
//! function (the per-symbol trace of docs/performance.md, "Where the instructions go").
//!
//! It builds the benchmark system, boots it under `-icount shift=0,sleep=off` with QEMU's
//! `-d in_asm,exec,nochain` log, and counts the instructions executed between the
//! benchmark's two reads of the cycle counter (`pmevcntr0_el0`, which every benchmark PD
//! reads once before its measured rounds and once after).
//!
//! The log names each translated block once (`IN:`, with its instructions) and each
//! execution of a block by its host address and guest address (`Trace`). A guest address
//! may be translated into blocks of different lengths, so an execution is weighted by the
//! length of the block its *host* address was translated into: keyed by guest address, the
//! counts came out a third short. Each kernel instruction is then given to the function
//! symbol that holds it (inlined code counts for the function it was inlined into), and the
//! counts are divided by the rounds (the window's total over the benchmark's figure).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use object::{Object, ObjectSymbol, SymbolKind};

use crate::bench::{bench_board, bench_instructions, bench_options, build_benchmark};
use crate::build::workspace_root;

/// Where the kernel's code lies: everything below is user code.
const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// The instruction that marks the window (the counter read of the benchmark PDs).
const WINDOW_MARK: &str = "pmevcntr0_el0";
/// Functions printed.
const TOP: usize = 40;

/// Traces the benchmark `system`: a path, or the name of one of
/// `protection-domains/bench/systems/`.
pub fn run(system: &str) -> Result<()> {
    let path = if system.contains('/') || system.ends_with(".xml") {
        PathBuf::from(system)
    } else {
        workspace_root()
            .join("protection-domains/bench/systems")
            .join(format!("{system}.xml"))
    };
    let label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{}: not a system description", path.display()))?;
    let out = workspace_root().join("target/bench/trace").join(&label);
    let (built, cores) = build_benchmark(&path, &out)?;
    let log = out.join("trace.log");
    let mut options = bench_options(true, "BENCH ", Some(cores));
    options.extra.extend(
        ["-d", "in_asm,exec,nochain", "-D"]
            .iter()
            .map(|s| s.to_string())
            .chain([log.display().to_string()]),
    );
    println!(
        "trace: booting {} with QEMU's execution log",
        path.display()
    );
    let outcome = atoll_runner::run(
        bench_board()?,
        &built.image,
        &options,
        Duration::from_secs(300),
        &out.join("serial.log"),
    )?;
    let (name, figure) = bench_figure(&outcome.serial).ok_or_else(|| {
        anyhow!(
            "no BENCH line in the serial output ({})",
            out.join("serial.log").display()
        )
    })?;
    let counts = window_counts(&log)?;
    let symbols = kernel_symbols(&out.join("atoll-kernel.elf"))?;
    report(&name, figure, &counts, &symbols);
    // The log is large (hundreds of megabytes); the figures are printed.
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// The benchmark's name and figure from its `BENCH <name>: <n> instructions` line.
fn bench_figure(serial: &str) -> Option<(String, f64)> {
    let line = serial.lines().find(|l| l.contains("BENCH "))?;
    let name = line.split_once("BENCH ")?.1.split_once(": ")?.0;
    Some((name.to_string(), bench_instructions(serial, name)?))
}

/// Instructions executed at each guest address between the first execution of the first
/// counter read and the first execution of the second one after it.
fn window_counts(log: &Path) -> Result<HashMap<u64, u64>> {
    let file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    // Blocks translated but not yet executed, by guest address; then by host address.
    let mut pending: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut by_host: HashMap<String, Vec<u64>> = HashMap::new();
    let mut marks: Vec<u64> = Vec::new();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let (mut in_block, mut block) = (false, Vec::new());
    let mut started = false;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.starts_with("IN:") {
            in_block = true;
            block.clear();
            continue;
        }
        if in_block {
            if let Some(pc) = block_line_pc(&line) {
                if line.contains(WINDOW_MARK) && marks.len() < 2 && !marks.contains(&pc) {
                    marks.push(pc);
                }
                block.push(pc);
                continue;
            }
            if let Some(&first) = block.first() {
                pending.insert(first, std::mem::take(&mut block));
            }
            in_block = false;
        }
        let Some((host, pc)) = trace_line(&line) else {
            continue;
        };
        if let Some(b) = pending.remove(&pc) {
            by_host.insert(host.to_string(), b);
        }
        // The second read's block is translated only when the window ends, so the end mark
        // is known only then.
        if !started {
            started = marks.first() == Some(&pc);
            continue;
        }
        if marks.get(1) == Some(&pc) {
            return Ok(counts);
        }
        match by_host.get(host) {
            Some(pcs) => pcs.iter().for_each(|p| *counts.entry(*p).or_default() += 1),
            None => *counts.entry(pc).or_default() += 1,
        }
    }
    bail!(
        "{}: the log holds no complete window between two counter reads",
        log.display()
    )
}

/// The guest address of an instruction line of an `IN:` block (`0x...:  ...`).
fn block_line_pc(line: &str) -> Option<u64> {
    let hex = line.strip_prefix("0x")?.split(':').next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// The host and guest addresses of a `Trace` line (`Trace 0: 0x<host> [<a>/<pc>/...]`).
fn trace_line(line: &str) -> Option<(&str, u64)> {
    let rest = line.strip_prefix("Trace ")?;
    let host = rest.split_whitespace().nth(1)?;
    let pc = rest.split_once('[')?.1.split('/').nth(1)?;
    Some((host, u64::from_str_radix(pc, 16).ok()?))
}

/// The kernel's function symbols, by address, demangled.
fn kernel_symbols(elf: &Path) -> Result<Vec<(u64, String)>> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(data.as_slice()).context("parsing the kernel ELF")?;
    let mut symbols: Vec<(u64, String)> = file
        .symbols()
        // Functions, and the assembly entry's labels (which carry no type); not the
        // ELF mapping symbols (`$x`, `$d`) or local labels.
        .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown))
        .filter(|s| s.address() >= KERNEL_BASE)
        .filter_map(|s| {
            let name = s
                .name()
                .ok()
                .filter(|n| !n.starts_with(['$', '.']) && !n.is_empty())?;
            Some((s.address(), demangle(name)))
        })
        .collect();
    symbols.sort();
    Ok(symbols)
}

/// A symbol's name demangled, without its hash.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Prints the window per round: the total, the PDs' share, and the kernel's by function.
fn report(name: &str, figure: f64, counts: &HashMap<u64, u64>, symbols: &[(u64, String)]) {
    let total: u64 = counts.values().sum();
    let rounds = if figure > 0.0 {
        (total as f64 / figure).round().max(1.0)
    } else {
        1.0
    };
    let mut by_function: HashMap<&str, u64> = HashMap::new();
    let mut user = 0;
    for (&pc, &n) in counts {
        if pc < KERNEL_BASE {
            user += n;
            continue;
        }
        let at = symbols.partition_point(|(a, _)| *a <= pc);
        let function = at
            .checked_sub(1)
            .and_then(|i| symbols.get(i))
            .map_or("?", |(_, s)| s.as_str());
        *by_function.entry(function).or_default() += n;
    }
    let per_round = |n: u64| n as f64 / rounds;
    println!(
        "trace: {name}: {figure} instructions a round; the window holds {total} over {rounds} rounds"
    );
    println!("{:>10.1}  total", per_round(total));
    println!("{:>10.1}  the PDs' own code", per_round(user));
    let mut functions: Vec<_> = by_function.into_iter().collect();
    functions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (function, n) in functions.iter().take(TOP) {
        println!("{:>10.1}  {function}", per_round(*n));
    }
    if functions.len() > TOP {
        let rest: u64 = functions.iter().skip(TOP).map(|(_, n)| n).sum();
        println!(
            "{:>10.1}  {} other functions",
            per_round(rest),
            functions.len() - TOP
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_demangled_without_their_hash() {
        assert_eq!(
            demangle("_ZN17atoll_kernel_core5sched9Scheduler9hand_over17hbae3ea37385bf1cdE"),
            "atoll_kernel_core::sched::Scheduler::hand_over"
        );
        assert_eq!(
            demangle("_ZN12atoll_kernel3el06choose17hb14fe1d34efe04a4E"),
            "atoll_kernel::el0::choose"
        );
        assert_eq!(demangle("return_to_user"), "return_to_user");
    }

    #[test]
    fn log_lines_are_read() {
        assert_eq!(
            trace_line("Trace 0: 0x7f1234 [00000000/ffffffff80001a1c/00000000/ff000000] x"),
            Some(("0x7f1234", 0xffff_ffff_8000_1a1c))
        );
        assert_eq!(
            block_line_pc("0x002003b0:  d53be800  mrs      x0, pmevcntr0_el0"),
            Some(0x2003b0)
        );
        assert_eq!(block_line_pc("IN: "), None);
        assert_eq!(
            bench_figure("x\nbench_client: BENCH ppc round trip: 1687.49 instructions, 1687 ns\n"),
            Some(("ppc round trip".into(), 1687.49))
        );
    }
}
