//! Runs Atoll images under QEMU for `cargo xtask run` and the end-to-end tests.
//!
//! [`qemu_args`] builds the command line for a board; [`run`] boots an image with a
//! timeout, collects the serial output and saves it under `target/` so a failing test can
//! point at it.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use atoll_boards::Board;

/// The QEMU binary for every board.
pub const QEMU: &str = "qemu-system-aarch64";

/// Options for one QEMU run.
#[derive(Clone, Debug, Default)]
pub struct QemuOptions {
    /// Enable semihosting (test builds exit through it on loader errors).
    pub semihosting: bool,
    /// Run with `-icount shift=0,sleep=off`: one instruction per virtual nanosecond.
    pub icount: bool,
    /// Serial on stdio with the monitor multiplexed (interactive runs).
    pub interactive: bool,
    /// Further arguments passed through.
    pub extra: Vec<String>,
    /// Stop QEMU as soon as the serial output's complete lines contain every one of these
    /// texts (for images that run on); empty: wait for QEMU to exit or the timeout.
    pub until: Vec<String>,
    /// Stop QEMU as soon as the serial output's complete lines contain any of these texts
    /// (a failure that makes waiting any longer pointless).
    pub stop_on: Vec<String>,
    /// Bytes typed into the serial port: written to QEMU's standard input at the start
    /// (QEMU holds them until the UART has room), which stays open until QEMU stops.
    pub input: Vec<u8>,
}

/// QEMU arguments to boot `image` on `board`.
pub fn qemu_args(board: &Board, image: &Path, options: &QemuOptions) -> Vec<String> {
    let q = &board.qemu;
    let mut args: Vec<String> = vec!["-machine".into(), q.machine.into()];
    if let Some(cpu) = q.cpu {
        args.extend(["-cpu".into(), cpu.into()]);
    }
    if let Some(smp) = q.smp {
        args.extend(["-smp".into(), smp.to_string()]);
    }
    args.extend(["-m".into(), q.memory.into()]);
    args.extend(q.extra.iter().map(|s| s.to_string()));
    if options.interactive {
        args.extend(["-nographic".into(), "-serial".into(), "mon:stdio".into()]);
    } else {
        args.extend([
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-serial".into(),
            "stdio".into(),
        ]);
    }
    args.extend([
        "-no-reboot".into(),
        "-kernel".into(),
        image.display().to_string(),
    ]);
    if options.semihosting {
        args.extend([
            "-semihosting-config".into(),
            "enable=on,target=native".into(),
        ]);
    }
    if options.icount {
        args.extend(["-icount".into(), "shift=0,sleep=off".into()]);
    }
    args.extend(options.extra.iter().cloned());
    args
}

/// What one boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` if it was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// Everything the guest printed on its serial port (and QEMU on stderr, appended).
    pub serial: String,
    /// Where the serial log was saved.
    pub log_path: PathBuf,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Wall time from starting QEMU until it first printed something (to within the 5 ms
    /// the runner polls at).
    pub first_output: Option<Duration>,
    /// Wall time from starting QEMU until every `until` line had appeared (to within 5 ms).
    pub until_seen: Option<Duration>,
}

impl Outcome {
    /// QEMU's exit code, if it exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Boots `image` on `board`, waiting at most `timeout`; saves the serial log to `log_path`.
pub fn run(
    board: &Board,
    image: &Path,
    options: &QemuOptions,
    timeout: Duration,
    log_path: &Path,
) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(qemu_args(board, image, options))
        .stdin(if options.input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {QEMU}: {e} (run `cargo xtask test`, which installs it)"),
            )
        })?;
    // Kept until QEMU has stopped: closing it would be an end of input on the serial port.
    let mut stdin = child.stdin.take();
    if let Some(input) = stdin.as_mut() {
        input.write_all(&options.input)?;
        input.flush()?;
    }
    let stdout = child.stdout.take().map(|s| collect(Box::new(s)));
    let stderr = child.stderr.take().map(|s| collect(Box::new(s)));
    let (mut first_output, mut until_seen) = (None, None);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let now = start.elapsed();
        // Only whole lines count: a line still being printed could match a prefix of an
        // awaited text, and QEMU would be stopped before the rest of it arrives.
        let (printed, all_seen, failed) =
            stdout.as_ref().map_or((false, false, false), |(o, _)| {
                let out = o.lock().unwrap_or_else(|e| e.into_inner());
                let whole = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let lines = String::from_utf8_lossy(&out[..whole]);
                let all =
                    !options.until.is_empty() && options.until.iter().all(|u| lines.contains(u));
                let failed = options.stop_on.iter().any(|s| lines.contains(s));
                (!out.is_empty(), all, failed)
            });
        if first_output.is_none() && printed {
            first_output = Some(now);
        }
        if now > timeout || all_seen || failed {
            until_seen = all_seen.then_some(now);
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    drop(stdin);
    // QEMU has exited, so its pipes are closed: the readers finish with everything it wrote.
    let text = |stream: Option<Collected>| {
        stream
            .map(|(b, reader)| {
                let _ = reader.join();
                String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner()))
                    .replace('\r', "")
            })
            .unwrap_or_default()
    };
    let mut serial = text(stdout);
    let errors = text(stderr);
    if !errors.trim().is_empty() {
        serial.push_str("\n--- qemu stderr ---\n");
        serial.push_str(&errors);
    }
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(log_path, &serial)?;
    Ok(Outcome {
        status,
        serial,
        log_path: log_path.to_path_buf(),
        elapsed: start.elapsed(),
        first_output,
        until_seen,
    })
}

/// A stream being read on a thread into a buffer the caller can watch grow.
type Collected = (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>);

/// Reads a stream on a thread into a shared buffer, so the caller can watch it grow.
fn collect(mut stream: Box<dyn Read + Send>) -> Collected {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let reader = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buffer, reader)
}

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new(".."))
                .join("target")
        })
}

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
/// the first (`QemuOptions::stop_on`), and [`fuzz_verdict`] names it. The watchdog says
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
