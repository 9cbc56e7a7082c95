//! Booting the default system's service images with the guest's port 80 forwarded to the
//! host, and talking HTTP to them: shared by the service tests and the storage tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atoll_runner::{Forward, QemuOptions, Running, spawn, target_dir};

use crate::boot::image_of;
use crate::variants::Variant;

/// How long the service may take to answer its first request after QEMU starts.
pub const START: Duration = Duration::from_secs(60);
/// How long one exchange may take.
pub const EXCHANGE: Duration = Duration::from_secs(20);

/// A port of 127.0.0.1 nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Boots the `variant` image of `board` with the guest's port 80 on `port` and, if given,
/// `disk` as its `disk0`; the serial log goes to `target/e2e-logs/<board>-<label>.log`.
pub fn boot(
    board: &str,
    variant: &Variant,
    label: &str,
    port: u16,
    disk: Option<&Path>,
) -> Running {
    boot_with(board, variant, label, port, disk, |_| {})
}

/// [`boot`], with `adjust` changing the QEMU options first (`-icount`, more arguments).
pub fn boot_with(
    board: &str,
    variant: &Variant,
    label: &str,
    port: u16,
    disk: Option<&Path>,
    adjust: impl FnOnce(&mut QemuOptions),
) -> Running {
    let name = board;
    let board = atoll_boards::by_name(board).expect("the board");
    let mut options = QemuOptions {
        forward: Some(Forward {
            host: port,
            guest: 80,
        }),
        disk: disk.map(Path::to_path_buf),
        ..QemuOptions::default()
    };
    adjust(&mut options);
    let log = target_dir()
        .join("e2e-logs")
        .join(format!("{name}-{label}.log"));
    spawn(board, &image_of(name, variant), &options, &log).expect("QEMU starts")
}

/// Bytes of the tests' disk images: 8 MiB (a power of two, as QEMU's SD cards need), so
/// that the store formats it quickly and its log compacts within a test.
pub const TEST_DISK_BYTES: u64 = 8 * 1024 * 1024;

/// How long the store may take to answer after the HTTP service does (it formats a blank
/// disk first).
pub const STORE_START: Duration = Duration::from_secs(90);

/// A fresh disk image for a test, `target/e2e-disks/<board>-<label>.img`
/// ([`TEST_DISK_BYTES`] of zeros; any earlier one is removed).
pub fn fresh_disk(board: &str, label: &str) -> PathBuf {
    let path = target_dir()
        .join("e2e-disks")
        .join(format!("{board}-{label}.img"));
    let _ = std::fs::remove_file(&path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the disks' directory");
    }
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(TEST_DISK_BYTES))
        .expect("a disk image");
    let board = atoll_boards::by_name(board).expect("the board");
    atoll_runner::prepare_disk(board, &path).expect("a disk image the board takes");
    path
}

/// Waits until the key-value store answers through the HTTP API (a `GET` that is not
/// `503`).
pub fn wait_for_store(port: u16) {
    let until = Instant::now() + STORE_START;
    while Instant::now() < until {
        let answer = try_exchange(
            port,
            b"GET /kv/probe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap_or_default();
        if answer.starts_with("HTTP/1.1 ") && !answer.starts_with("HTTP/1.1 503") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the store did not answer within {STORE_START:?}");
}

/// Sends `request` on a new connection and reads until the server closes it.
pub fn exchange(port: u16, request: &[u8]) -> String {
    try_exchange(port, request).expect("connect and send")
}

/// [`exchange`], or the error if the connection cannot be made.
pub fn try_exchange(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(EXCHANGE))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// One response read from a kept connection: the status code, the head and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (0 if the status line could not be read).
    pub code: u16,
    /// The status line and headers.
    pub head: String,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Reads one response (head and `Content-Length` body) from a kept connection; `None` if
/// the connection ends or fails first.
pub fn read_one(stream: &mut TcpStream) -> Option<Response> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let code = head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return Some(Response {
                    code,
                    head,
                    body: bytes[end + 4..end + 4 + length].to_vec(),
                });
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads one response from a kept connection as text (what arrived, if it ends early).
pub fn read_response(stream: &mut TcpStream) -> String {
    match read_one(stream) {
        Some(r) => format!("{}\r\n\r\n{}", r.head, String::from_utf8_lossy(&r.body)),
        None => String::new(),
    }
}

/// Waits until the service answers `GET /status`.
pub fn wait_until_serving(qemu: &mut Running, port: u16) {
    let until = Instant::now() + START;
    while Instant::now() < until {
        // QEMU forwards the port only once it has started: refused until then.
        let answer = try_exchange(
            port,
            b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            qemu.is_running(),
            "QEMU stopped before the service answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the service did not answer within {START:?}");
}

/// Boots the `variant` image of `board` on `disk`, waits until the service answers, runs
/// `checks` on its port and stops QEMU (a kill); fails if QEMU stopped during the checks or
/// the log shows an error, a panic or a fault, and returns the serial log. On a failure the
/// saved log is named.
pub fn with_running(
    board: &str,
    variant: &Variant,
    label: &str,
    disk: &Path,
    checks: impl FnOnce(u16),
) -> String {
    let port = free_port();
    let mut qemu = boot(board, variant, label, port, Some(disk));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until_serving(&mut qemu, port);
        checks(port);
    }));
    let running = qemu.is_running();
    let outcome = qemu.stop().expect("the serial log is saved");
    if let Err(panic) = result {
        eprintln!("serial log saved at {}", outcome.log_path.display());
        std::panic::resume_unwind(panic);
    }
    assert!(
        running,
        "QEMU stopped during the checks; serial log {}",
        outcome.log_path.display()
    );
    for bad in ["|ERROR", "panicked", "faulted"] {
        assert!(
            !outcome.serial.contains(bad),
            "the serial log has {bad:?}: {}\n----\n{}",
            outcome.log_path.display(),
            outcome.serial
        );
    }
    outcome.serial
}
