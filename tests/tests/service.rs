//! The default system's HTTP service, driven from the host by real clients through QEMU's
//! user networking: `curl` for every endpoint and status code, 1,000 requests on one kept
//! connection, 64 connections at once, every malformed request the server must refuse,
//! idle connections beyond the table, and the dashboard rendered by headless Chromium.
//!
//! The image is the default `system.xml` as `cargo xtask run` builds it (it runs on); the
//! guest's port 80 is forwarded to a free port of 127.0.0.1. Every check runs on every
//! board, each through its own NIC (virtio-net on `virt`, the Cadence GEM on `zcu102`, the
//! i.MX ENET on `imx8mp_evk`); the 30 s `wrk` load runs on `virt`. On `virt` too, the same
//! system with a static address (`tests/systems/service-static.xml`) serves without DHCP.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use atoll_e2e::service::{
    EXCHANGE, exchange, fresh_disk, read_response, wait_for_store, with_running,
};
use atoll_e2e::variants::{SERVICE, SERVICE_STATIC, Variant};
use atoll_runner::target_dir;

/// The board the load test runs on.
const LOAD_BOARD: &str = "qemu_virt_aarch64";

/// A check on every board: `$check(board)` as one test per board, `$check::<board>`.
macro_rules! on_every_board {
    ($check:ident) => {
        mod $check {
            #[test]
            fn qemu_virt_aarch64() {
                super::$check("qemu_virt_aarch64");
            }
            #[test]
            fn zcu102() {
                super::$check("zcu102");
            }
            #[test]
            fn imx8mp_evk() {
                super::$check("imx8mp_evk");
            }
        }
    };
}

/// `curl` with `args`; its standard output.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "20"])
        .args(args)
        .output()
        .expect("curl runs (cargo xtask test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status code and body of `curl` with `args` on `url`.
fn curl_code(args: &[&str], url: &str) -> (u16, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-w", "\n%{http_code}", url]);
    let out = curl(&all);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs `checks` on a booted service of `board`; on failure, the serial log is saved and
/// named.
fn with_service(board: &str, label: &str, checks: impl FnOnce(u16)) {
    with_image(board, &SERVICE, label, checks);
}

/// [`with_service`] on the `variant` image of the service; the serial log.
fn with_image(board: &str, variant: &Variant, label: &str, checks: impl FnOnce(u16)) -> String {
    with_running(board, variant, label, &fresh_disk(board, label), checks)
}

on_every_board!(answers_every_endpoint);

fn answers_every_endpoint(board: &str) {
    with_service(board, "service-endpoints", |port| {
        let base = format!("http://127.0.0.1:{port}");
        let (code, body) = curl_code(&[], &format!("{base}/status"));
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
        assert!(status["replicas"].is_array(), "{body}");
        // Every PD as its kernel publishes it: running, and never faulted.
        let pds: Vec<(&str, &str, u64)> = status["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .flat_map(|r| r["pds"].as_array().expect("pds"))
            .map(|pd| {
                (
                    pd["name"].as_str().unwrap_or("?"),
                    pd["state"].as_str().unwrap_or("?"),
                    pd["faults"].as_u64().expect("a published fault count"),
                )
            })
            .collect();
        assert_eq!(
            pds,
            [
                ("net_driver", "running", 0),
                ("io", "running", 0),
                ("rt", "running", 0),
                ("storage", "running", 0),
                ("blk_driver", "running", 0)
            ],
            "{body}"
        );

        // The real-time job's statistics, published by the rt replica every 100 periods
        // (and once at its start, before its first period): wait for a publication of
        // periods that ran.
        let until = Instant::now() + Duration::from_secs(30);
        let (rt, body) = loop {
            let (code, body) = curl_code(&[], &format!("{base}/rt"));
            assert_eq!(code, 200, "{body}");
            let rt: serde_json::Value = serde_json::from_str(&body).expect("/rt is JSON");
            if rt["releases"].as_u64().unwrap_or(0) > 0 || Instant::now() > until {
                break (rt, body);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(rt["period_ns"], 1_000_000, "{body}");
        assert!(rt["releases"].as_u64().unwrap_or(0) > 0, "{body}");
        assert!(rt["total"]["periods"].as_u64().unwrap_or(0) > 0, "{body}");
        assert!(rt["total"]["jitter_ns"]["max"].is_u64(), "{body}");

        let (code, body) = curl_code(&[], &format!("{base}/"));
        assert_eq!(code, 200);
        assert!(body.contains("<html") && body.contains("/status"), "{body}");

        let (code, body) = curl_code(&["-I"], &format!("{base}/status"));
        assert_eq!(code, 200, "{body}");
        assert!(
            body.to_ascii_lowercase()
                .contains("content-type: application/json")
        );

        // The key-value store on the storage replica, on the test's fresh disk (formatted
        // at start: waited for): created, read, replaced, deleted.
        wait_for_store(port);
        for (args, want, body) in [
            (&[][..], 404, None),
            (&["-X", "PUT", "--data-binary", "hello"][..], 201, None),
            (&[][..], 200, Some("hello")),
            (
                &["-X", "PUT", "--data-binary", "hello again"][..],
                204,
                None,
            ),
            (&[][..], 200, Some("hello again")),
            (&["-X", "DELETE"][..], 204, None),
            (&["-X", "DELETE"][..], 404, None),
            (&[][..], 404, None),
        ] {
            let (code, got) = curl_code(args, &format!("{base}/kv/greeting"));
            assert_eq!(code, want, "{args:?}: {got}");
            if let Some(body) = body {
                assert_eq!(got, body, "{args:?}");
            }
        }
        for (args, path, want) in [
            (&[][..], "/kv/%ff", 400),
            (&[][..], "/nowhere", 404),
            (&["-X", "POST", "--data", "x"][..], "/status", 405),
            (&["-X", "BREW"][..], "/", 501),
        ] {
            let (code, body) = curl_code(args, &format!("{base}{path}"));
            assert_eq!(code, want, "{args:?} {path}: {body}");
            let error: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{args:?} {path}: not JSON ({e}): {body}"));
            assert!(error["error"].is_string(), "{args:?} {path}: {body}");
        }
        let allow = curl(&["-i", "-X", "POST", "--data", "x", &format!("{base}/status")]);
        assert!(
            allow.to_ascii_lowercase().contains("allow: get, head"),
            "{allow}"
        );
    });
}

/// The address given in the description (`<setvar value>` on `net_ipv4_address`,
/// `net_ipv4_prefix` and `net_ipv4_gateway`) instead of DHCP's: the `io` PD says so, runs
/// no DHCP client, and answers through QEMU's forwarded port, which reaches only
/// 10.0.2.15.
#[test]
fn qemu_virt_aarch64_serves_on_a_static_address() {
    let serial = with_image(
        "qemu_virt_aarch64",
        &SERVICE_STATIC,
        "service-static",
        |port| {
            let (code, body) = curl_code(&[], &format!("http://127.0.0.1:{port}/status"));
            assert_eq!(code, 200, "{body}");
            let status: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
            assert!(status["replicas"].is_array(), "{body}");
        },
    );
    assert!(
        serial.contains("io: address 10.0.2.15/24 (static); serving HTTP on port 80"),
        "{serial}"
    );
    assert!(!serial.contains("(DHCP)"), "a DHCP client ran:\n{serial}");
}

on_every_board!(keeps_connections_and_serves_many_at_once);

fn keeps_connections_and_serves_many_at_once(board: &str) {
    with_service(board, "service-connections", |port| {
        // 1,000 requests in a row, on one kept connection.
        let url = format!("url = \"http://127.0.0.1:{port}/status\"\noutput = \"/dev/null\"\n");
        let config = target_dir().join("e2e-logs").join("service-1000.curl");
        std::fs::create_dir_all(config.parent().expect("a directory")).expect("mkdir");
        std::fs::write(&config, url.repeat(1000)).expect("curl config");
        let out = curl(&[
            "-K",
            &config.display().to_string(),
            "-w",
            "%{http_code} %{num_connects}\n",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1000, "{out}");
        assert!(lines.iter().all(|l| l.starts_with("200 ")), "{out}");
        let connects: u32 = lines
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
            .sum();
        assert_eq!(
            connects, 1,
            "curl opened {connects} connections for 1,000 requests"
        );

        // 64 connections open at once, each asking once, then each asking again.
        let mut streams: Vec<TcpStream> = (0..64)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
            .collect();
        for round in 0..2 {
            for stream in &mut streams {
                stream.set_read_timeout(Some(EXCHANGE)).expect("timeout");
                stream
                    .write_all(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
                    .expect("send");
            }
            for (i, stream) in streams.iter_mut().enumerate() {
                let answer = read_response(stream);
                assert!(
                    answer.starts_with("HTTP/1.1 200"),
                    "round {round}, connection {i}: {answer:?}"
                );
            }
        }
        drop(streams);

        // 100 connections that never send: the oldest idle ones make room, and a new
        // client is still served.
        let idle: Vec<TcpStream> = (0..100)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let answer = exchange(
            port,
            b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        drop(idle);
    });
}

on_every_board!(refuses_malformed_requests);

fn refuses_malformed_requests(board: &str) {
    with_service(board, "service-malformed", |port| {
        let huge_header = format!(
            "GET /status HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9000)
        );
        let cases: [(&str, &[u8], &str); 7] = [
            ("a request line that is not one", b"GARBAGE\r\n\r\n", "400"),
            ("an unknown HTTP version", b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", "400"),
            ("headers beyond 8 KiB", huge_header.as_bytes(), "431"),
            (
                "a body beyond 64 KiB",
                b"PUT /kv/a HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n",
                "413",
            ),
            (
                "a Content-Length that is not a number",
                b"PUT /kv/a HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n",
                "400",
            ),
            (
                "two different Content-Lengths",
                b"PUT /kv/a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                "400",
            ),
            (
                "a key that is not UTF-8",
                b"GET /kv/%C3%28 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                "400",
            ),
        ];
        for (what, request, code) in cases {
            let answer = exchange(port, request);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {code}")),
                "{what}: wanted {code}, got {answer:?}"
            );
        }
        // The service still answers after all of them.
        let answer = exchange(
            port,
            b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

        // 24 clients each part-way through a 64 KiB body hold more than the service's budget
        // for unfinished requests: some are answered 503 and closed, nothing crashes, and a
        // new client is served.
        let body = vec![b'x'; 40 * 1024];
        let mut slow: Vec<TcpStream> = (0..24)
            .map(|_| {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream
                    .write_all(b"PUT /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: 65536\r\n\r\n")
                    .expect("send the head");
                stream
            })
            .collect();
        for stream in &mut slow {
            stream
                .set_write_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let _ = stream.write_all(&body);
        }
        std::thread::sleep(Duration::from_secs(1));
        let refused = slow
            .iter_mut()
            .map(|stream| {
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                let mut head = [0u8; 12];
                stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 503")
            })
            .filter(|&refused| refused)
            .count();
        assert!(refused > 0, "no unfinished request was refused");
        drop(slow);
        let answer = exchange(
            port,
            b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    });
}

on_every_board!(dashboard_shows_every_replica_in_a_browser);

fn dashboard_shows_every_replica_in_a_browser(board: &str) {
    with_service(board, "service-dashboard", |port| {
        let status = curl(&[&format!("http://127.0.0.1:{port}/status")]);
        let status: serde_json::Value = serde_json::from_str(&status).expect("/status is JSON");
        let names: Vec<String> = status["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .filter_map(|r| r["name"].as_str().map(String::from))
            .collect();
        assert_eq!(names, ["io", "rt", "storage"], "{status}");
        // A profile of its own per board: the boards' tests run at the same time, and
        // Chromium refuses a profile another instance holds.
        let profile = target_dir()
            .join("e2e-logs")
            .join(format!("chromium-profile-{board}"));
        let _ = std::fs::remove_dir_all(&profile);
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Let the page's script fetch /status and render before the DOM is dumped.
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("chromium runs (cargo xtask test installs it)");
        let dom = String::from_utf8_lossy(&out.stdout);
        for name in &names {
            assert!(
                dom.contains(&format!("data-replica=\"{name}\"")),
                "no row for replica {name} in the rendered dashboard:\n{dom}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// The ticks of every replica, by name, from `GET /status`.
fn ticks(port: u16) -> Vec<(String, u64)> {
    let status = curl(&[&format!("http://127.0.0.1:{port}/status")]);
    let status: serde_json::Value =
        serde_json::from_str(&status).unwrap_or_else(|e| panic!("/status ({e}): {status}"));
    status["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("?").to_string(),
                r["ticks"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// `wrk` at 64 connections for 30 s on `GET /status`: no socket error, every answer a
/// 2xx, and the other replicas' ticks advance as usual meanwhile (100 Hz: at least 80% of
/// the wall time's ticks, since QEMU runs slower than real time when the host is busy).
#[test]
fn qemu_virt_aarch64_service_holds_a_load_of_64_connections_for_30_seconds() {
    with_service(LOAD_BOARD, "service-wrk", |port| {
        let before = ticks(port);
        let started = Instant::now();
        // QEMU's user networking listens on the forwarded port with a backlog of one
        // (libslirp's `listen(s, 1)`), so of 64 simultaneous connects the host's kernel
        // admits two at a time, at its SYN-ACK retransmission times (1 s, then doubling):
        // the last connections open up to half a minute late, and their first request
        // waits in the host's accept queue, not in Atoll. wrk's timeout is set past that
        // wait, so that a timeout still means an answer Atoll failed to give.
        let out = Command::new("wrk")
            .args([
                "-t",
                "2",
                "-c",
                "64",
                "-d",
                "30s",
                "--timeout",
                "40s",
                "--latency",
            ])
            .arg(format!("http://127.0.0.1:{port}/status"))
            .output()
            .expect("wrk runs (cargo xtask test installs it)");
        let elapsed = started.elapsed();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{report}");
        assert!(out.status.success(), "wrk failed: {report}");
        assert!(!report.contains("Non-2xx or 3xx responses"), "{report}");
        let requests: u64 = report
            .lines()
            .find_map(|l| {
                l.trim()
                    .split_once(" requests in ")
                    .map(|(n, _)| n.trim().to_string())
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(requests > 0, "{report}");
        // wrk's socket errors: none on connect, read or write, and no request left
        // unanswered.
        if let Some(line) = report.lines().find(|l| l.contains("Socket errors:")) {
            let count = |what: &str| -> u64 {
                line.split(',')
                    .find_map(|part| part.trim().strip_prefix(what))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(u64::MAX)
            };
            let errors = (
                count("Socket errors: connect"),
                count("read"),
                count("write"),
                count("timeout"),
            );
            assert_eq!(errors, (0, 0, 0, 0), "{report}");
        }
        let after = ticks(port);
        // QEMU's virtual clock follows the host's without icount: ticks follow wall time.
        let expected = elapsed.as_secs_f64() * 100.0;
        for ((name, t0), (_, t1)) in before.iter().zip(&after) {
            let advanced = t1.saturating_sub(*t0) as f64;
            assert!(
                advanced >= expected * 0.8,
                "replica {name} ticked {advanced} times in {elapsed:?} under load (expected about {expected})"
            );
        }
    });
}
