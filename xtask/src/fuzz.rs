//! `cargo xtask fuzz-kernel`: the kernel's system-call fuzzer, a long run. It builds
//! `tests/systems/fuzz.xml` with the seed and the number of calls, boots it, and judges the
//! run as the short one in `cargo xtask test` is judged: no kernel fault, no error from a
//! kernel or a monitor, no lost heartbeat, no changed memory.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::BuildArgs;
use crate::build::{board, build, workspace_root};
use crate::setup;
use atoll_e2e::fuzz::{FUZZ_END, FUZZ_FAILURES, fuzz_verdict};
use atoll_runner::{QemuOptions, run};

/// The options of `cargo xtask fuzz-kernel`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// The seed: the same seed makes the same calls.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// System calls to make.
    #[arg(long, default_value_t = 1_000_000)]
    pub iterations: u64,
    /// Boards to run on.
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: Vec<String>,
}

/// Runs the fuzzer on every board asked for; fails on the first failed run.
pub fn run_fuzz(args: &FuzzArgs) -> Result<()> {
    setup::rust_targets()?;
    for name in &args.board {
        let b = board(name)?;
        setup::qemu(&[b.qemu.machine])?;
        let out = workspace_root()
            .join("target")
            .join("fuzz-kernel")
            .join(b.name);
        let built = build(&BuildArgs {
            board: b.name.into(),
            system: Some(workspace_root().join("tests/systems/fuzz.xml")),
            out: Some(out.clone()),
            pd_env: vec![
                ("ATOLL_FUZZ_SEED".into(), args.seed.to_string()),
                ("ATOLL_FUZZ_CALLS".into(), args.iterations.to_string()),
            ],
            ..BuildArgs::default()
        })?;
        let options = QemuOptions {
            until: vec![FUZZ_END.into()],
            stop_on: FUZZ_FAILURES.iter().map(|(s, _)| s.to_string()).collect(),
            ..QemuOptions::default()
        };
        // About 6,000 calls a second on a QEMU core; a generous margin for a busy machine.
        let timeout = Duration::from_secs(120 + args.iterations / 1000);
        let log = out.join(format!("seed-{}.log", args.seed));
        eprintln!(
            "xtask fuzz-kernel: {} calls with seed {} on {} (timeout {:?})",
            args.iterations, args.seed, b.name, timeout
        );
        let outcome = run(b, &built.image, &options, timeout, &log)?;
        match fuzz_verdict(&outcome.serial, args.iterations) {
            Ok(r) => eprintln!(
                "xtask fuzz-kernel: {}: passed in {:.1?}: seed {}, {} calls ({} returned), {} restarts, faults: {} capability, {} unknown system call, {} other; witness {} beats, canary {} beats, both intact; log {}",
                b.name,
                outcome.elapsed,
                r.seed,
                r.calls,
                r.returned,
                r.restarts,
                r.faults[0],
                r.faults[1],
                r.faults[2],
                r.beats[0],
                r.beats[1],
                log.display()
            ),
            Err(e) => bail!(
                "{}: fuzz run with seed {} failed: {e}; serial log {}",
                b.name,
                args.seed,
                log.display()
            ),
        }
    }
    Ok(())
}
