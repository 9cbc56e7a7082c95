//! Reading the serial log of a kernel fuzz run (`tests/systems/fuzz.xml`): what fails it
//! and the figures of a finished one. `cargo xtask fuzz-kernel` and the end-to-end test
//! judge runs with the same [`fuzz_verdict`].

/// The figures of a finished kernel fuzz run (`tests/systems/fuzz.xml`), as its watchdog
/// printed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzRun {
    /// The seed.
    pub seed: u64,
    /// System calls made.
    pub calls: u64,
    /// Calls that returned to the fuzzer.
    pub returned: u64,
    /// Times the watchdog restarted the fuzzer.
    pub restarts: u64,
    /// The fuzzer's faults: capability faults, unknown system calls, others.
    pub faults: [u64; 3],
    /// The witness's and the canary's beats.
    pub beats: [u64; 2],
}

/// The line a fuzz run ends with.
pub const FUZZ_END: &str = "fuzz: end of run";

/// What in a fuzz run's serial log fails it, and what that means: a long run can stop at
/// the first (`atoll_runner::QemuOptions::stop_on`), and [`fuzz_verdict`] names it. The watchdog says
/// "lost heartbeat" and "memory changed" as it happens, and its closing figures carry
/// "heartbeat lost" and "memory CHANGED".
pub const FUZZ_FAILURES: &[(&str, &str)] = &[
    ("|FATAL:", "a kernel stopped"),
    ("|ERROR:", "a kernel or a monitor reported an error"),
    ("lost heartbeat", "the witness lost its heartbeat"),
    ("heartbeat lost", "the witness lost its heartbeat"),
    ("memory changed", "a PD found its own memory changed"),
    ("memory CHANGED", "a PD found its own memory changed"),
];

/// Judges the serial log of a kernel fuzz run that was to make `calls` system calls: it
/// must have finished, with no kernel fault, no error from a kernel or a monitor, no lost
/// heartbeat and no changed memory, and the witness and the canary must have beaten.
pub fn fuzz_verdict(serial: &str, calls: u64) -> Result<FuzzRun, String> {
    let lines: Vec<&str> = serial.lines().collect();
    for (needle, what) in FUZZ_FAILURES {
        if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
            return Err(format!("{what}: {line}"));
        }
    }
    if !lines.iter().any(|l| l.trim_end() == FUZZ_END) {
        return Err("the run did not finish".into());
    }
    let done = lines
        .iter()
        .find_map(|l| l.strip_prefix("fuzz: done: "))
        .ok_or("no `fuzz: done` line")?;
    let beats = lines
        .iter()
        .find_map(|l| l.strip_prefix("fuzz: witness "))
        .ok_or("no `fuzz: witness` line")?;
    let done_numbers = numbers(done);
    let beat_numbers = numbers(beats);
    let [seed, made, returned, restarts, capability, unknown, other] = done_numbers[..] else {
        return Err(format!("cannot read `fuzz: done: {done}`"));
    };
    let [witness, _, canary, _] = beat_numbers[..] else {
        return Err(format!("cannot read `fuzz: witness {beats}`"));
    };
    if made != calls {
        return Err(format!("{made} calls made, not {calls}"));
    }
    if witness == 0 || canary == 0 {
        return Err(format!(
            "the witness beat {witness} times, the canary {canary}"
        ));
    }
    Ok(FuzzRun {
        seed,
        calls: made,
        returned,
        restarts,
        faults: [capability, unknown, other],
        beats: [witness, canary],
    })
}

/// The decimal numbers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "K0|INFO: up\n\
        fuzz: done: seed 7, 20000 calls made, 18743 returned, 1258 restarts, faults: 10670 capability, 396 unknown, 898 other\n\
        fuzz: witness 2256 beats, 599 pokes, memory intact; canary 2561 beats, 480 pokes, memory intact\n\
        fuzz: end of run\n";

    #[test]
    fn a_finished_clean_run_passes_with_its_figures() {
        let run = fuzz_verdict(GOOD, 20_000).expect("a clean run");
        assert_eq!(run.seed, 7);
        assert_eq!(run.returned, 18_743);
        assert_eq!(run.restarts, 1258);
        assert_eq!(run.faults, [10_670, 396, 898]);
        assert_eq!(run.beats, [2256, 2561]);
    }

    #[test]
    fn every_failure_is_named() {
        let cases = [
            (GOOD.to_string(), 30_000, "not 30000"),
            (
                format!("K0|FATAL: kernel panic: ...\n{GOOD}"),
                20_000,
                "kernel stopped",
            ),
            (
                format!(
                    "watchdog: lost heartbeat: the witness has not beaten for 200 ticks\n{GOOD}"
                ),
                20_000,
                "lost its heartbeat",
            ),
            (
                GOOD.replace("memory intact;", "memory intact, heartbeat lost;"),
                20_000,
                "lost its heartbeat",
            ),
            (
                format!("canary: memory changed at word 3\n{GOOD}"),
                20_000,
                "memory changed",
            ),
            (
                GOOD.replace(
                    "canary 2561 beats, 480 pokes, memory intact",
                    "canary 2561 beats, 480 pokes, memory CHANGED",
                ),
                20_000,
                "memory changed",
            ),
            (GOOD.replace(FUZZ_END, ""), 20_000, "did not finish"),
            (
                format!("MON0|ERROR: PD 'witness' read from 0x0\n{GOOD}"),
                20_000,
                "reported an error",
            ),
            (
                GOOD.replace("fuzz: done: ", "fuzz: finished: "),
                20_000,
                "no `fuzz: done` line",
            ),
            (
                GOOD.replace("1258 restarts, ", ""),
                20_000,
                "cannot read `fuzz: done",
            ),
            (
                GOOD.replace("fuzz: witness 2256 beats", "fuzz: witness 0 beats"),
                20_000,
                "beat 0 times",
            ),
        ];
        for (serial, calls, named) in cases {
            let err = fuzz_verdict(&serial, calls).expect_err(named);
            assert!(err.contains(named), "{named:?} not in {err:?}");
        }
    }
}
