//! Host tests against recorded requests: every route and status code, framing (split and
//! pipelined requests), persistence, and each malformed case.

mod common;

use atoll_channels::rt::{Period, PeriodInterference, RtHeader, RtSnapshot, Window};
use atoll_http::{Connection, DASHBOARD, KvError, MAX_BODY, MAX_HEAD, Outcome, RtStats};
use common::{Mock, SYSTEM_JSON, feed, one, replies, replies_with_head, reply};

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: atoll\r\n\r\n").into_bytes()
}

fn put(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "PUT {path} HTTP/1.1\r\nHost: atoll\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn delete(path: &str) -> Vec<u8> {
    format!("DELETE {path} HTTP/1.1\r\nHost: atoll\r\n\r\n").into_bytes()
}

/// Runs `requests` in one connection with `app`, one `receive` each.
fn session(app: &mut Mock, requests: &[Vec<u8>]) -> (Vec<common::Reply>, Outcome) {
    let chunks: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    let (out, outcome) = feed(app, &chunks);
    (replies(&out), outcome)
}

// ---- routes ----

#[test]
fn status_is_the_apps_status_as_json() {
    let (out, outcome) = one(&get("/status"));
    assert_eq!(outcome, Outcome::Open);
    let r = reply(&out);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("connection"), None);
    assert_eq!(r.body_str(), SYSTEM_JSON);
    let parsed: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(parsed["replicas"][1]["name"], "rt \"1\"");
    assert_eq!(parsed["replicas"][1]["pds"][0]["faults"], 2);
}

#[test]
fn status_with_a_query_and_in_absolute_form() {
    for request in [
        &b"GET /status?pretty=1 HTTP/1.1\r\nHost: atoll\r\n\r\n"[..],
        b"GET http://atoll/status HTTP/1.1\r\nHost: atoll\r\n\r\n",
    ] {
        let r = reply(&one(request).0);
        assert_eq!((r.status, r.body_str()), (200, SYSTEM_JSON));
    }
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let (out, outcome) = one(b"HEAD /status HTTP/1.1\r\nHost: atoll\r\n\r\n");
    assert_eq!(outcome, Outcome::Open);
    let all = replies_with_head(&out, &[true]);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, 200);
    assert_eq!(
        all[0].header("content-length"),
        Some(SYSTEM_JSON.len().to_string().as_str())
    );
    assert!(out.ends_with(b"\r\n\r\n"));
}

#[test]
fn dashboard_is_one_self_contained_page() {
    let r = reply(&one(&get("/")).0);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.body_str(), DASHBOARD);
    assert!(DASHBOARD.starts_with("<!doctype html>"));
    assert!(DASHBOARD.contains("<style>") && DASHBOARD.contains("<script>"));
    assert!(DASHBOARD.contains("fetch(\"/status\""));
    assert!(DASHBOARD.contains("fetch(\"/rt\""));
    assert!(
        DASHBOARD.contains("dataset.replica = r.name"),
        "rows need data-replica"
    );
    assert!(DASHBOARD.contains("setTimeout(loop, 1000)"));
    for external in ["src=", "href=", "http://", "https://", "@import"] {
        assert!(!DASHBOARD.contains(external), "external asset: {external}");
    }
    // Names are inserted as text, never as HTML.
    assert!(!DASHBOARD.contains("innerHTML"));
}

#[test]
fn rt_statistics_or_503() {
    let mut app = Mock::default();
    let r = reply(&feed(&mut app, &[&get("/rt")]).0);
    assert_eq!(r.status, 503);
    assert_eq!(r.error(), "rt statistics unavailable");

    let mut total = Window::new(0);
    let mut last = Window::new(2);
    for (jitter_ns, response_ns, missed) in [(800, 40_000, false), (3_000, 1_100_000, true)] {
        let period = Period {
            jitter_ns,
            response_ns,
            missed,
            interference: PeriodInterference {
                foreign_irqs: 2,
                broadcasts: 1,
                ..PeriodInterference::default()
            },
            ..Period::default()
        };
        total.record(&period);
        last.record(&period);
    }
    total.record(&Period {
        jitter_ns: 800,
        response_ns: 41_000,
        ..Period::default()
    });
    let snapshot = RtSnapshot {
        header: RtHeader {
            period_ns: 1_000_000,
            budget_ns: 500_000,
            window_periods: 2,
            releases: 3,
            core: 1,
            plant_output: -42,
        },
        total,
        last,
    };
    app.rt = Some(RtStats::from_snapshot(&snapshot));
    let (out, _) = feed(
        &mut app,
        &[&get("/rt"), b"HEAD /rt HTTP/1.1\r\nHost: atoll\r\n\r\n"],
    );
    let all = replies_with_head(&out, &[false, true]);
    let r = &all[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(all[1].status, 200);
    assert_eq!(all[1].header("content-length"), r.header("content-length"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let header: Vec<_> = [
        "period_ns",
        "budget_ns",
        "window_periods",
        "releases",
        "core",
    ]
    .iter()
    .map(|k| v[k].as_u64().unwrap())
    .collect();
    assert_eq!(header, [1_000_000, 500_000, 2, 3, 1]);
    assert_eq!(v["plant_output_ppm"], -42);
    let total = &v["total"];
    assert_eq!(
        (total["index"].as_u64(), total["periods"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(total["deadline_misses"], 1);
    assert_eq!(total["skipped_releases"], 0);
    assert_eq!(
        total["jitter_ns"],
        serde_json::json!({"min": 800, "mean": 1533, "p99": 3000, "p99_9": 3000, "max": 3000})
    );
    assert_eq!(total["response_ns"]["max"], 1_100_000);
    assert_eq!(total["interference"]["foreign_irqs"], 4);
    assert_eq!(total["interference"]["foreign_irqs_max_per_period"], 2);
    assert_eq!(total["interference"]["broadcasts"], 2);
    // 800 ns is in the bucket [768, 832), 3,000 in [2,816, 3,072).
    assert_eq!(
        total["jitter_histogram"],
        serde_json::json!([[768, 2], [2816, 1]])
    );
    let last = &v["last"];
    assert_eq!(
        (last["index"].as_u64(), last["periods"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        last["jitter_histogram"],
        serde_json::json!([[768, 1], [2816, 1]])
    );
    let windows = [
        "index",
        "periods",
        "deadline_misses",
        "skipped_releases",
        "jitter_ns",
    ];
    for key in windows
        .iter()
        .chain(&["response_ns", "path_ns", "interference", "jitter_histogram"])
    {
        assert!(last.get(key).is_some(), "no {key}");
    }
    assert_eq!(last.as_object().unwrap().len(), 9);
    assert_eq!(last["path_ns"], serde_json::json!({"mean": 0, "max": 0}));
    assert_eq!(v.as_object().unwrap().len(), 8);

    // And 503 again once the app has none.
    app.rt = None;
    assert_eq!(reply(&feed(&mut app, &[&get("/rt")]).0).status, 503);
}

#[test]
fn kv_life_cycle() {
    let mut app = Mock::default();
    let (all, outcome) = session(
        &mut app,
        &[
            get("/kv/a"),
            put("/kv/a", b"one"),
            get("/kv/a"),
            put("/kv/a", b"\x00two\xff"),
            get("/kv/a"),
            delete("/kv/a"),
            get("/kv/a"),
            delete("/kv/a"),
            put("/kv/empty", b""),
            get("/kv/empty"),
        ],
    );
    assert_eq!(outcome, Outcome::Open);
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 201, 200, 204, 200, 204, 404, 404, 201, 200]);
    assert_eq!(all[0].error(), "key not found");
    assert_eq!(all[2].body, b"one");
    assert_eq!(
        all[2].header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(all[4].body, b"\x00two\xff");
    assert_eq!(all[1].header("content-length"), Some("0"));
    assert_eq!(all[9].body, b"");
    assert_eq!(app.kv.len(), 1);
}

#[test]
fn kv_keys_are_percent_decoded() {
    let mut app = Mock::default();
    let (all, _) = session(
        &mut app,
        &[
            put("/kv/a%20b%2Fc/d?ignored", b"v"),
            get("/kv/%E2%82%AC"),
            get(&format!("/kv/{}", "k".repeat(255))),
            get(&format!("/kv/{}", "%6B".repeat(255))),
        ],
    );
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 404, 404, 404]
    );
    assert_eq!(app.keys[0], "a b/c/d");
    assert_eq!(app.keys[1], "€");
    assert_eq!(app.keys[2], "k".repeat(255));
    assert_eq!(app.keys[3], "k".repeat(255));
}

#[test]
fn kv_invalid_keys_are_400() {
    for path in [
        "/kv/".to_owned(),
        "/kv/%ff".to_owned(),
        "/kv/%C3%28".to_owned(),
        "/kv/%zz".to_owned(),
        "/kv/100%".to_owned(),
        "/kv/?q".to_owned(),
        format!("/kv/{}", "k".repeat(256)),
        format!("/kv/{}", "%6B".repeat(256)),
    ] {
        for request in [get(&path), put(&path, b"x"), delete(&path)] {
            let mut app = Mock::default();
            let (out, outcome) = feed(&mut app, &[&request]);
            let r = reply(&out);
            assert_eq!((r.status, outcome), (400, Outcome::Open), "{path}");
            assert_eq!(r.error(), "invalid key");
            assert!(app.keys.is_empty(), "the store saw an invalid key");
        }
    }
}

#[test]
fn kv_store_unavailable_or_full() {
    for (error, status, message) in [
        (KvError::Unavailable, 503, "storage unavailable"),
        (KvError::Full, 507, "storage full"),
    ] {
        let mut app = Mock {
            store: Err(error),
            ..Mock::default()
        };
        let (all, outcome) = session(
            &mut app,
            &[get("/kv/a"), put("/kv/a", b"v"), delete("/kv/a")],
        );
        assert_eq!(outcome, Outcome::Open);
        for r in all {
            assert_eq!(r.status, status);
            assert_eq!(r.error(), message);
            assert_eq!(r.body_str(), format!("{{\"error\":\"{message}\"}}"));
        }
    }
}

#[test]
fn unknown_paths_are_404() {
    for path in [
        "/nope", "/kv", "/statu", "/status/", "/STATUS", "/rt/x", "//status", "*",
    ] {
        let (out, outcome) = one(&get(path));
        let r = reply(&out);
        assert_eq!((r.status, outcome), (404, Outcome::Open), "{path}");
        assert_eq!(r.error(), "not found");
    }
    // A known method on an unknown path is 404 too.
    let r = reply(&one(b"POST /nope HTTP/1.1\r\nHost: atoll\r\nContent-Length: 1\r\n\r\nx").0);
    assert_eq!(r.status, 404);
}

#[test]
fn known_methods_not_allowed_are_405_with_allow() {
    for (request, allow) in [
        (
            &b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"[..],
            "GET, HEAD",
        ),
        (b"PUT /status HTTP/1.1\r\nHost: a\r\n\r\n", "GET, HEAD"),
        (b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", "GET, HEAD"),
        (b"OPTIONS /rt HTTP/1.1\r\nHost: a\r\n\r\n", "GET, HEAD"),
        (
            b"PATCH /kv/a HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET, HEAD, PUT, DELETE",
        ),
        (
            b"POST /kv/%ff HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET, HEAD, PUT, DELETE",
        ),
    ] {
        let (out, outcome) = one(request);
        let r = reply(&out);
        assert_eq!((r.status, outcome), (405, Outcome::Open));
        assert_eq!(r.header("allow"), Some(allow));
        assert_eq!(r.error(), "method not allowed");
    }
}

#[test]
fn unknown_methods_are_501() {
    for request in [
        &b"FOO /status HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"get /status HTTP/1.1\r\nHost: a\r\n\r\n",
        b"BREW /nope HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROPFIND /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let (out, outcome) = one(request);
        let r = reply(&out);
        assert_eq!((r.status, outcome), (501, Outcome::Open));
        assert_eq!(r.header("allow"), None);
        assert_eq!(r.error(), "method not implemented");
    }
}

// ---- framing ----

/// A conversation touching every route, with bodies, ending with `Connection: close`, and
/// bytes after it that must be ignored.
fn script() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(get("/status"));
    s.extend(put("/kv/k%20y", b"hello\r\n\r\nworld"));
    s.extend(get("/kv/k%20y"));
    s.extend(b"HEAD /kv/k%20y HTTP/1.1\r\nHost: a\r\n\r\n");
    s.extend(get("/rt"));
    s.extend(b"GET / HTTP/1.1\nHost: a\n\n");
    s.extend(b"\r\nPOST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    s.extend(delete("/kv/k%20y"));
    s.extend(b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    s.extend(get("/status"));
    s
}

fn script_statuses(out: &[u8]) -> Vec<u16> {
    replies_with_head(out, &[false, false, false, true])
        .iter()
        .map(|r| r.status)
        .collect()
}

#[test]
fn the_script_in_one_piece() {
    let (out, outcome) = one(&script());
    assert_eq!(outcome, Outcome::Close);
    assert_eq!(
        script_statuses(&out),
        [200, 201, 200, 200, 503, 200, 405, 204, 404]
    );
}

#[test]
fn requests_split_at_every_byte_give_the_same_responses() {
    let script = script();
    let (whole, whole_outcome) = one(&script);
    for split in 0..=script.len() {
        let (a, b) = script.split_at(split);
        let (out, outcome) = feed(&mut Mock::default(), &[a, b]);
        assert_eq!(outcome, whole_outcome, "split at {split}");
        assert!(out == whole, "split at {split}");
    }
    // And one byte at a time.
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    let (out, outcome) = feed(&mut Mock::default(), &bytes);
    assert_eq!((out, outcome), (whole, whole_outcome));
}

#[test]
fn requests_split_in_three_give_the_same_responses() {
    let script = script();
    let (whole, _) = one(&script);
    for i in (0..script.len()).step_by(7) {
        for j in (i..script.len()).step_by(11) {
            let (out, _) = feed(
                &mut Mock::default(),
                &[&script[..i], &script[i..j], &script[j..]],
            );
            assert!(out == whole, "split at {i} and {j}");
        }
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut input = put("/kv/x", b"1");
    input.extend(get("/kv/x"));
    input.extend(get("/kv/y"));
    let mut app = Mock::default();
    let (out, outcome) = feed(&mut app, &[&input]);
    assert_eq!(outcome, Outcome::Open);
    let all = replies(&out);
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 200, 404]
    );
    assert_eq!(all[1].body, b"1");
}

#[test]
fn many_pipelined_requests_beyond_the_buffer_limit() {
    // More than MAX_HEAD + MAX_BODY bytes in one call: answered as the buffer frees.
    let request = get("/kv/k");
    let count = (MAX_HEAD + MAX_BODY) / request.len() * 2;
    let input = request.repeat(count);
    let mut connection = Connection::new();
    let mut out = Vec::new();
    let outcome = connection.receive(&input, &mut Mock::default(), &mut out);
    assert_eq!(outcome, Outcome::Open);
    let all = replies(&out);
    assert_eq!(all.len(), count);
    assert!(all.iter().all(|r| r.status == 404));
}

#[test]
fn large_bodies_pipelined() {
    let body = vec![b'x'; MAX_BODY];
    let mut input = put("/kv/a", &body);
    input.extend(put("/kv/b", &body));
    input.extend(get("/kv/a"));
    let mut app = Mock::default();
    let (out, outcome) = feed(&mut app, &[&input]);
    assert_eq!(outcome, Outcome::Open);
    let all = replies(&out);
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 201, 200]
    );
    assert_eq!(all[2].body, body);
}

#[test]
fn expect_100_continue() {
    let head =
        b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    // The body still to come: 100 first.
    let (out, outcome) = feed(&mut Mock::default(), &[head, b"abc"]);
    assert_eq!(outcome, Outcome::Open);
    assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"));
    assert_eq!(
        replies(&out).iter().map(|r| r.status).collect::<Vec<_>>(),
        [100, 201]
    );
    // The body there already: no 100.
    let (out, _) = one(&[&head[..], b"abc"].concat());
    assert_eq!(reply(&out).status, 201);
    // Too large: 413 instead of 100.
    let (out, outcome) = one(
        b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 65537\r\n\r\n",
    );
    assert_eq!((reply(&out).status, outcome), (413, Outcome::Close));
    // HTTP/1.0 expectations are ignored.
    let (out, _) = one(
        b"PUT /kv/a HTTP/1.0\r\nExpect: 100-continue\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n",
    );
    assert!(out.is_empty());
}

// ---- persistence ----

#[test]
fn http11_keeps_alive_by_default() {
    let (all, outcome) = session(&mut Mock::default(), &[get("/status"), get("/rt")]);
    assert_eq!(outcome, Outcome::Open);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|r| r.header("connection").is_none()));
}

#[test]
fn connection_close_is_honoured() {
    for value in [
        "close",
        "Close",
        "keep-alive, close",
        " CLOSE ",
        "upgrade,close",
    ] {
        let request = format!("GET /status HTTP/1.1\r\nHost: a\r\nConnection: {value}\r\n\r\n");
        let (out, outcome) = one(request.as_bytes());
        let r = reply(&out);
        assert_eq!((r.status, outcome), (200, Outcome::Close), "{value}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Pipelined requests after it are ignored, and so is later input.
    let mut input = b"GET /rt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    input.extend(get("/status"));
    let (out, outcome) = feed(&mut Mock::default(), &[&input, &get("/status")]);
    assert_eq!(outcome, Outcome::Close);
    assert_eq!(reply(&out).status, 503);
}

#[test]
fn http10_closes_unless_keep_alive() {
    let (out, outcome) = one(b"GET /status HTTP/1.0\r\n\r\n");
    let r = reply(&out);
    assert_eq!((r.status, outcome), (200, Outcome::Close));
    assert_eq!(r.header("connection"), Some("close"));

    let keep = b"GET /status HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n".to_vec();
    let (all, outcome) = session(&mut Mock::default(), &[keep.clone(), keep]);
    assert_eq!(outcome, Outcome::Open);
    assert_eq!(all.len(), 2);
    for r in &all {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }

    let (out, outcome) = one(b"GET /status HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert_eq!(reply(&out).header("connection"), Some("close"));
    assert_eq!(outcome, Outcome::Close);
}

// ---- malformed requests ----

/// `input` is answered with `status` and the connection closes.
fn refused(input: &[u8], status: u16) -> String {
    let (out, outcome) = one(input);
    let r = reply(&out);
    assert_eq!(
        (r.status, outcome),
        (status, Outcome::Close),
        "{:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(r.header("connection"), Some("close"));
    r.error()
}

#[test]
fn bad_request_lines_are_400() {
    for input in [
        &b"GET\r\n\r\n"[..],
        b"GET /status\r\n\r\n",
        b"GET /status HTTP/1.1 extra\r\nHost: a\r\n\r\n",
        b"GET /status HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET /status HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET /status FTP/1.1\r\nHost: a\r\n\r\n",
        b" GET /status HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  /status HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /sta tus HTTP/1.1\r\nHost: a\r\n\r\n",
        b"G(T /status HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET /status HTTP/1.1\rHost: a\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost a\r\n\r\n",
        b"GET /status HTTP/1.1\r\nBad Name: a\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(refused(input, 400), "bad request");
    }
}

#[test]
fn http11_needs_exactly_one_host() {
    for input in [
        &b"GET /status HTTP/1.1\r\n\r\n"[..],
        b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        assert_eq!(refused(input, 400), "missing or repeated host");
    }
}

#[test]
fn oversized_heads_are_431() {
    // No end in sight: refused as soon as MAX_HEAD bytes have arrived.
    let mut input = b"GET /status HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
    input.resize(MAX_HEAD, b'a');
    let (out, outcome) = feed(&mut Mock::default(), &[&input[..MAX_HEAD - 1]]);
    assert_eq!((out.len(), outcome), (0, Outcome::Open));
    assert_eq!(refused(&input, 431), "request header fields too large");

    // A head of exactly MAX_HEAD bytes is accepted; one more byte is not.
    let head = |len: usize| {
        let mut h = b"GET /status HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
        h.resize(len - 4, b'p');
        h.extend(b"\r\n\r\n");
        h
    };
    let (out, outcome) = one(&head(MAX_HEAD));
    assert_eq!((reply(&out).status, outcome), (200, Outcome::Open));
    refused(&head(MAX_HEAD + 1), 431);

    // Too many headers.
    let mut many = b"GET /status HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..64 {
        many.extend(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    refused(&many, 431);
}

#[test]
fn oversized_bodies_are_413_before_the_body() {
    for length in [
        "65537",
        "1000000",
        "18446744073709551616",
        "99999999999999999999999999",
    ] {
        let input = format!("PUT /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\n");
        assert_eq!(refused(input.as_bytes(), 413), "content too large");
    }
    // Exactly MAX_BODY is fine.
    let (out, outcome) = one(&put("/kv/a", &vec![0; MAX_BODY]));
    assert_eq!((reply(&out).status, outcome), (201, Outcome::Open));
}

#[test]
fn bad_content_lengths_are_400() {
    for value in ["abc", "-1", "+5", "0x5", "5,5", "5 5", "1.0", "", " "] {
        let input =
            format!("PUT /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n12345");
        assert_eq!(
            refused(input.as_bytes(), 400),
            "invalid content-length",
            "{value:?}"
        );
    }
    refused(
        b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n123456",
        400,
    );
    // The same value twice is the same length (RFC 9112 §6.3).
    let (out, outcome) = one(
        b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length:  005 \r\n\r\n12345",
    );
    assert_eq!((reply(&out).status, outcome), (201, Outcome::Open));
}

#[test]
fn transfer_encoding_is_not_implemented() {
    assert_eq!(
        refused(
            b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            501
        ),
        "transfer-encoding not implemented"
    );
    for input in [
        &b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"[..],
        b"PUT /kv/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        assert_eq!(refused(input, 400), "content-length with transfer-encoding");
    }
}

#[test]
fn a_bad_request_after_good_ones() {
    let mut input = get("/status");
    input.extend(b"NOT HTTP AT ALL\r\n\r\n");
    input.extend(get("/status"));
    let (out, outcome) = one(&input);
    assert_eq!(outcome, Outcome::Close);
    assert_eq!(
        replies(&out).iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 400]
    );
}

#[test]
fn empty_input_does_nothing() {
    let (out, outcome) = feed(&mut Mock::default(), &[b"", b"", b"\r\n"]);
    assert_eq!((out.len(), outcome), (0, Outcome::Open));
}
