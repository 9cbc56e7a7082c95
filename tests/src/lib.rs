//! Runs Atoll images under QEMU for `cargo xtask run` and the end-to-end tests.
//!
//! [`qemu_args`] builds the command line for a board; [`run`] boots an image with a
//! timeout, collects the serial output and saves it under `target/` so a failing test can
//! point at it.
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {QEMU}: {e} (run `cargo xtask test`, which installs it)"),
            )
        })?;
    let stdout = child.stdout.take().map(|s| collect(Box::new(s)));
    let stderr = child.stderr.take().map(|s| collect(Box::new(s)));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let text = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv().ok())
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
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
    })
}

/// Reads a stream to its end on a thread; the bytes arrive on the returned channel.
fn collect(mut stream: Box<dyn Read + Send>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
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
