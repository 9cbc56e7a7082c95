//! The HTTP service's figures for `cargo xtask bench`: what one request costs the whole
//! machine, in instructions under `-icount`, and what `wrk` gets from it in wall time.
//!
//! - The default system is built with `ATOLL_IO_BENCH` set, so the `io` PD prints the
//!   machine's instruction count at every 1,000th `GET /status` and `PUT /kv`
//!   (`BENCH-HTTP status #2000: <n> instructions`). Under `-icount` the counter counts what
//!   every core executed, so the difference between two marks is what 1,000 requests cost
//!   the driver, the stack, the kernels and the other replicas' ticks meanwhile; QEMU's
//!   user networking, on the host, costs none of it.
//! - Every boot has a fresh disk image (`target/bench/http-disk.img`, 64 MiB), so the
//!   storage replica's store formats it and serves `/kv`: a `PUT` is a durable write (a
//!   record written and flushed) before it is answered.
//! - The requests go one after another over one kept connection: 3,000 `GET /status` (the
//!   figure is the last 1,000, after the connection and the caches have warmed up) and
//!   2,000 `PUT /kv/bench` with a 1 KiB body (the last 1,000; each replaces the value).
//! - `wrk` then runs for 10 s at 64 connections against a boot without `-icount`: first
//!   `GET /status`, then durable 4 KiB `PUT`s (a Lua script, `target/bench/wrk-put.lua`,
//!   sets the method and the body and goes round 256 keys per thread, so the live data
//!   stays small: a log that fills its half compacts to little). Requests per second and the
//!   99th percentile latency are reported, not goals (wall time on a shared machine). The
//!   host CPU time QEMU's main thread spends during the `GET` run, where QEMU's user
//!   networking (libslirp) runs, divided by the requests, is what the user networking costs
//!   per request on its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::BuildArgs;
use crate::build::{build, workspace_root};

/// Requests of each kind between two marks.
const PER_MARK: u64 = 1000;

/// The HTTP figures.
pub(crate) struct Http {
    /// Instructions, machine-wide, per `GET /status` round trip.
    pub get_status: f64,
    /// Instructions, machine-wide, per 1 KiB `PUT /kv` round trip.
    pub put_1k: f64,
    /// `wrk` requests per second.
    pub wrk_rps: f64,
    /// `wrk`'s 99th percentile latency, in milliseconds.
    pub wrk_p99_ms: f64,
    /// `wrk` durable 4 KiB `PUT`s per second.
    pub wrk_put_rps: f64,
    /// `wrk`'s 99th percentile latency of those `PUT`s, in milliseconds.
    pub wrk_put_p99_ms: f64,
    /// Host CPU time of QEMU's main thread (user networking) per request, in microseconds.
    pub slirp_us: f64,
}

/// Builds the bench build of the default system and measures it.
pub(crate) fn measure(out: &Path) -> Result<Http> {
    let board = crate::bench::bench_board()?;
    let args = BuildArgs {
        board: board.name.into(),
        out: Some(out.join("http-image")),
        pd_env: vec![("ATOLL_IO_BENCH".into(), "1".into())],
        ..BuildArgs::default()
    };
    let image = build(&args)?.image;
    let (get_status, put_1k) = instructions_per_request(board, &image)?;
    let wrk = wrk(board, &image, out)?;
    Ok(Http {
        get_status,
        put_1k,
        wrk_rps: wrk.get.rps,
        wrk_p99_ms: wrk.get.p99_ms,
        wrk_put_rps: wrk.put.rps,
        wrk_put_p99_ms: wrk.put.p99_ms,
        slirp_us: wrk.slirp_us,
    })
}

/// A port on 127.0.0.1 nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh (zeroed) disk image for a boot of the HTTP benchmarks.
fn fresh_disk(board: &atoll_boards::Board) -> Result<PathBuf> {
    let disk = workspace_root()
        .join("target")
        .join("bench")
        .join("http-disk.img");
    match std::fs::remove_file(&disk) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", disk.display())),
    }
    atoll_runner::prepare_disk(board, &disk)
        .with_context(|| format!("creating {}", disk.display()))?;
    Ok(disk)
}

/// Boots `image` on a fresh disk with the guest's port 80 forwarded to a free port (and
/// `extra` QEMU arguments), and waits until it answers `GET /status` and its store takes a
/// `PUT`.
pub(crate) fn serve(
    board: &atoll_boards::Board,
    image: &Path,
    icount: bool,
    label: &str,
    extra: &[String],
) -> Result<(atoll_runner::Running, u16)> {
    let port = free_port()?;
    let options = atoll_runner::QemuOptions {
        icount,
        extra: extra.to_vec(),
        forward: Some(atoll_runner::Forward {
            host: port,
            guest: 80,
        }),
        disk: Some(fresh_disk(board)?),
        ..Default::default()
    };
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{label}.log"));
    let mut qemu = atoll_runner::spawn(board, image, &options, &log)?;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let _ =
                stream.write_all(b"GET /status HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            if answer.starts_with(b"HTTP/1.1 200") && store_ready(port) {
                return Ok((qemu, port));
            }
        }
        if !qemu.is_running() || Instant::now() > until {
            let outcome = qemu.stop()?;
            bail!(
                "the service did not answer; serial log {}",
                outcome.log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the service's store takes a `PUT` (it answers `503` until the storage replica
/// has opened its disk).
fn store_ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    round_trip(
        &mut stream,
        b"PUT /kv/ready HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\n\r\n1",
    )
    .is_ok_and(|status| stored(&status))
}

/// Whether a `PUT /kv` answer's status line says the value was stored (`201` created,
/// `204` replaced).
fn stored(status: &str) -> bool {
    status.starts_with("HTTP/1.1 201") || status.starts_with("HTTP/1.1 204")
}

/// Sends `request` on `stream` and reads its whole answer (head and `Content-Length` body);
/// the status line.
fn round_trip(stream: &mut TcpStream, request: &[u8]) -> Result<String> {
    stream.write_all(request)?;
    let answer = atoll_e2e::service::read_one(stream)
        .ok_or_else(|| anyhow!("the service closed the connection mid-answer"))?;
    Ok(answer.head.lines().next().unwrap_or_default().to_string())
}

/// Instructions per `GET /status` and per 1 KiB `PUT /kv` round trip, under `-icount`.
fn instructions_per_request(board: &atoll_boards::Board, image: &Path) -> Result<(f64, f64)> {
    let (qemu, port) = serve(board, image, true, "http-icount", &[])?;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let get = b"GET /status HTTP/1.1\r\nHost: b\r\n\r\n";
    let mut put = b"PUT /kv/bench HTTP/1.1\r\nHost: b\r\nContent-Length: 1024\r\n\r\n".to_vec();
    put.extend(std::iter::repeat_n(b'x', 1024));
    let result = (|| -> Result<()> {
        for _ in 0..3 * PER_MARK {
            let status = round_trip(&mut stream, get)?;
            if !status.starts_with("HTTP/1.1 200") {
                bail!("GET /status answered {status}");
            }
        }
        for _ in 0..2 * PER_MARK {
            let status = round_trip(&mut stream, &put)?;
            if !stored(&status) {
                bail!("PUT /kv answered {status}");
            }
        }
        Ok(())
    })();
    drop(stream);
    let outcome = qemu.stop()?;
    result.with_context(|| format!("serial log {}", outcome.log_path.display()))?;
    let get = per_request(&outcome.serial, "status").ok_or_else(|| {
        anyhow!(
            "no two GET marks; serial log {}",
            outcome.log_path.display()
        )
    })?;
    let put = per_request(&outcome.serial, "put").ok_or_else(|| {
        anyhow!(
            "no two PUT marks; serial log {}",
            outcome.log_path.display()
        )
    })?;
    Ok((get, put))
}

/// The instructions per request between the last two marks of kind `what` (the counter is
/// 32 bits wide).
fn per_request(serial: &str, what: &str) -> Option<f64> {
    let marker = format!("BENCH-HTTP {what} #");
    let marks: Vec<(u64, u64)> = serial
        .lines()
        .filter_map(|l| {
            let rest = l.split(&marker).nth(1)?;
            let (n, tail) = rest.split_once(": ")?;
            let count = tail.split_whitespace().next()?;
            Some((n.parse().ok()?, count.parse().ok()?))
        })
        .collect();
    let [.., (n0, c0), (n1, c1)] = marks.as_slice() else {
        return None;
    };
    (*n1 == n0 + PER_MARK).then(|| (c1.wrapping_sub(*c0) & 0xFFFF_FFFF) as f64 / PER_MARK as f64)
}

/// What one `wrk` run gives.
struct WrkRun {
    /// Requests per second.
    rps: f64,
    /// The 99th percentile latency, in milliseconds.
    p99_ms: f64,
}

/// The `wrk` figures of one boot.
struct WrkFigures {
    /// `GET /status`.
    get: WrkRun,
    /// Durable 4 KiB `PUT /kv/...`.
    put: WrkRun,
    /// QEMU's main-thread CPU time per `GET /status`, in µs.
    slirp_us: f64,
}

/// The Lua script that makes `wrk` send 4 KiB `PUT`s: each thread goes round 256 keys of
/// its own (`/kv/wrk-<thread>-<n>`).
pub(crate) const WRK_PUT_SCRIPT: &str = r#"-- Written by cargo xtask bench: durable 4 KiB PUTs to the key-value store.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local body = string.rep("v", 4096)
local n = 0
function request()
  n = n + 1
  return wrk.format("PUT", "/kv/wrk-" .. id .. "-" .. (n % 256), nil, body)
end
"#;

/// `wrk` for 10 s at 64 connections without `-icount`, on one boot: `GET /status`, then
/// durable 4 KiB `PUT`s (the script written into `out`).
fn wrk(board: &atoll_boards::Board, image: &Path, out: &Path) -> Result<WrkFigures> {
    let script = out.join("wrk-put.lua");
    std::fs::create_dir_all(out)?;
    std::fs::write(&script, WRK_PUT_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let (qemu, port) = serve(board, image, false, "http-wrk", &[])?;
    let url = format!("http://127.0.0.1:{port}");
    let pid = qemu_pid(port);
    let cpu_before = pid.and_then(main_thread_cpu);
    let get = run_wrk(&format!("{url}/status"), None);
    let cpu_after = pid.and_then(main_thread_cpu);
    let put = get
        .is_ok()
        .then(|| run_wrk(&format!("{url}/kv/"), Some(&script)));
    let outcome = qemu.stop();
    let log = outcome.map_or_else(
        |_| "(the serial log could not be read)".to_string(),
        |o| o.log_path.display().to_string(),
    );
    let (get, requests) = get.with_context(|| format!("wrk GET /status; serial log {log}"))?;
    let (put, _) = put
        .unwrap_or_else(|| Err(anyhow!("not run")))
        .with_context(|| format!("wrk PUT /kv; serial log {log}"))?;
    let slirp_us = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if requests > 0.0 => (b - a) * 1e6 / requests,
        _ => f64::NAN,
    };
    Ok(WrkFigures { get, put, slirp_us })
}

/// One `wrk` run of 10 s at 64 connections against `url` (with the Lua `script`, if
/// any): its figures and its request count. Fails if no answer at all was a success.
fn run_wrk(url: &str, script: Option<&Path>) -> Result<(WrkRun, f64)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", "2", "-c", "64", "-d", "10s", "--latency"]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("running wrk (cargo xtask test installs it)")?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rps, p99_ms, requests) =
        parse_wrk(&report).ok_or_else(|| anyhow!("cannot read wrk's report:\n{report}"))?;
    let failed = non_success(&report);
    if failed > 0.0 {
        println!("bench http: {failed} of {requests} answers from {url} were not 2xx or 3xx");
    }
    if requests == 0.0 || failed >= requests {
        bail!("no answer from {url} was a success:\n{report}");
    }
    Ok((WrkRun { rps, p99_ms }, requests))
}

/// The answers a `wrk` report counts as neither 2xx nor 3xx (0 when it has no such line).
fn non_success(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Requests per second, the 99th percentile in ms, and the request count of a `wrk
/// --latency` report.
pub(crate) fn parse_wrk(report: &str) -> Option<(f64, f64, f64)> {
    let rps = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))?;
    let requests = report.lines().find_map(|l| {
        l.trim()
            .split_once(" requests in ")
            .and_then(|(n, _)| n.trim().parse().ok())
    })?;
    Some((rps, p99, requests))
}

/// A wrk duration (`812.00us`, `5.59ms`, `1.67s`) in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// The process id of the QEMU forwarding `port`.
fn qemu_pid(port: u16) -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("hostfwd=tcp:127.0.0.1:{port}-")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU seconds of process `pid`'s main thread (QEMU's main loop, where
/// the user networking runs; the vCPUs have threads of their own).
fn main_thread_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / USER_HZ)
}

/// Clock ticks per second of `/proc` times: Linux's `USER_HZ`, 100 on every architecture it
/// exports to user space (what `sysconf(_SC_CLK_TCK)` returns).
const USER_HZ: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_two_marks_give_the_cost_per_request() {
        let serial = "io: x\nBENCH-HTTP status #1000: 4294967000 instructions\n\
                      BENCH-HTTP status #2000: 100000296 instructions\n\
                      BENCH-HTTP status #3000: 200000296 instructions\n";
        assert_eq!(per_request(serial, "status"), Some(100_000.0));
        let wrapped = "BENCH-HTTP put #1000: 4294967000 instructions\n\
                       BENCH-HTTP put #2000: 99999704 instructions\n";
        assert_eq!(per_request(wrapped, "put"), Some(100_000.0));
        assert_eq!(
            per_request("BENCH-HTTP put #1000: 5 instructions\n", "put"),
            None
        );
    }

    #[test]
    fn a_wrk_report_is_read() {
        let report = "Running 10s test @ http://127.0.0.1:1/status\n\
            \x20 Latency Distribution\n\
            \x20    50%  812.00us\n\
            \x20    99%    5.59ms\n\
            \x20 454821 requests in 30.02s, 256.33MB read\n\
            Requests/sec:  15150.16\n";
        assert_eq!(parse_wrk(report), Some((15150.16, 5.59, 454821.0)));
        assert_eq!(non_success(report), 0.0);
        assert_eq!(
            non_success("  Non-2xx or 3xx responses: 17\nRequests/sec: 1.0\n"),
            17.0
        );
        assert_eq!(duration_ms("1.67s"), Some(1670.0));
        assert_eq!(duration_ms("812.00us"), Some(0.812));
    }
}
