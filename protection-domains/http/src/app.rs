//! The API: the [`App`] trait the PD implements, the plain-data records it fills, and the
//! routes that serve them.
//!
//! | route | methods | answers |
//! | --- | --- | --- |
//! | `/` | `GET`, `HEAD` | `200`, the [`DASHBOARD`] page (`text/html`) |
//! | `/status` | `GET`, `HEAD` | `200`, [`SystemStatus`] as JSON |
//! | `/rt` | `GET`, `HEAD` | `200`, [`RtStats`] as JSON; `503` if the app has none |
//! | `/kv/{key}` | `GET`, `HEAD` | `200` with the value (`application/octet-stream`); `404` |
//! | `/kv/{key}` | `PUT` | the body is the value: `201` if the key is new, `204` if replaced |
//! | `/kv/{key}` | `DELETE` | `204`; `404` if there was no such key |
//! | anything else | any | `404` |
//!
//! A key is the rest of the path after `/kv/` (up to `?`), percent-decoded; it must be
//! valid UTF-8 of 1 to [`MAX_KEY`] bytes (it may contain `/`), else `400`. A store that
//! cannot be reached answers `503`, a full one `507`. Errors have a JSON body
//! `{"error":"..."}`. A known method a route does not list is `405` with `Allow`; a method
//! not known at all is `501` whatever the path.
//!
//! The records serialise with `serde-json-core`, which cannot write `char`s, tuple variants
//! or custom errors (it would panic): the records use none, and they contain nothing that
//! comes from a request.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::Serialize;

use crate::percent::percent_decode;
use crate::response::{HTML, JSON, OCTETS, Response};
use crate::{DASHBOARD, MAX_JSON, MAX_KEY};

/// What the API serves: implemented by the PD that owns the connections.
pub trait App {
    /// The system's status for `GET /status`, read when the request arrives.
    fn status(&mut self) -> SystemStatus;

    /// The real-time statistics for `GET /rt`; `None` (no real-time PD, or it has not
    /// reported yet) is answered `503`.
    fn rt(&mut self) -> Option<RtStats>;

    /// The value stored under `key`.
    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, KvError>;

    /// Stores `value` under `key`, saying whether the key is new.
    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<Stored, KvError>;

    /// Removes `key`; [`KvError::NotFound`] if there was no such key.
    fn kv_delete(&mut self, key: &str) -> Result<(), KvError>;
}

/// Why a key-value operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// No such key: `404`.
    NotFound,
    /// The storage service cannot be reached (or is down): `503`.
    Unavailable,
    /// The store has no room for the value: `507`.
    Full,
}

/// What a successful [`App::kv_put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The key is new: `201 Created`.
    Created,
    /// The key's old value was replaced: `204 No Content`.
    Replaced,
}

/// The whole system, as `GET /status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SystemStatus {
    /// Every replica, in the order the dashboard lists them.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica (a kernel instance on its own cores).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    /// Its name in the system description.
    pub name: String,
    /// The indices of its cores.
    pub cores: Vec<u32>,
    /// Its life-cycle state.
    pub state: ReplicaState,
    /// Timer ticks its primary core has seen.
    pub ticks: u64,
    /// Its protection domains.
    pub pds: Vec<PdStatus>,
    /// Counters of the channels it has to other replicas; empty if not known.
    pub channels: Vec<ChannelStatus>,
}

/// A replica's life cycle (the same states as `atoll_abi::shared::ReplicaState`); JSON has
/// the lower-case names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Not started yet.
    Offline,
    /// Its kernel is setting up.
    Booting,
    /// Running.
    Up,
    /// Stopped after a fatal error.
    Down,
}

/// One protection domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PdStatus {
    /// Its name in the system description.
    pub name: String,
    /// What it is doing.
    pub state: PdState,
    /// Faults it has taken since boot, whatever became of them (it was restarted, or
    /// stopped); `None` (JSON `null`) where nobody published them (its replica has not
    /// named it yet, or the status page has no PD records).
    pub faults: Option<u64>,
}

/// A protection domain's state (the kernels' `atoll_abi::shared::PdState`, but for its
/// "nothing published", which the I/O PD shows as `Starting`); JSON has the lower-case
/// names, which `docs/services.md` documents and clients rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PdState {
    /// Not started yet, or being started.
    Starting,
    /// Started or restarted: running, or blocked waiting for events.
    Running,
    /// Stopped by a fault and not restarted (yet).
    Faulted,
    /// Stopped on purpose, or its replica is down.
    Stopped,
}

/// The counters of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    /// The channel's name.
    pub name: String,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Messages dropped (ring full, or rejected as corrupt).
    pub dropped: u64,
}

/// Statistics of the real-time PD's periodic job, as `GET /rt` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtStats {
    /// The job's period, in nanoseconds.
    pub period_ns: u64,
    /// Activations so far.
    pub activations: u64,
    /// Activations that finished after their deadline.
    pub deadline_misses: u64,
    /// The smallest release latency seen, in nanoseconds.
    pub latency_min_ns: u64,
    /// The mean release latency, in nanoseconds.
    pub latency_mean_ns: u64,
    /// The largest release latency seen, in nanoseconds.
    pub latency_max_ns: u64,
}

/// The methods this server knows (RFC 9110's and `PATCH`); any other is `501`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A resource of the API.
enum Route<'a> {
    Dashboard,
    Status,
    Rt,
    /// The raw (still percent-encoded) key.
    Kv(&'a str),
}

impl Route<'_> {
    /// The `Allow` header: the methods the route answers.
    fn allow(&self) -> &'static str {
        match self {
            Route::Dashboard | Route::Status | Route::Rt => "GET, HEAD",
            Route::Kv(_) => "GET, HEAD, PUT, DELETE",
        }
    }

    /// Which route `path` (without query) names.
    fn find(path: &str) -> Option<Route<'_>> {
        match path {
            "/" => Some(Route::Dashboard),
            "/status" => Some(Route::Status),
            "/rt" => Some(Route::Rt),
            _ => path.strip_prefix("/kv/").map(Route::Kv),
        }
    }
}

/// Answers one complete request: `method` and `target` as in the request line, `body` as
/// framed by `Content-Length`.
pub(crate) fn respond(method: &str, target: &str, body: &[u8], app: &mut impl App) -> Response {
    if !KNOWN_METHODS.contains(&method) {
        return Response::error(501, "method not implemented");
    }
    let Some(route) = path(target).and_then(Route::find) else {
        return Response::error(404, "not found");
    };
    let read = matches!(method, "GET" | "HEAD");
    match route {
        Route::Dashboard if read => Response::new(200, HTML, Cow::Borrowed(DASHBOARD.as_bytes())),
        Route::Status if read => json(&app.status()),
        Route::Rt if read => match app.rt() {
            Some(stats) => json(&stats),
            None => Response::error(503, "rt statistics unavailable"),
        },
        Route::Kv(raw) if read || matches!(method, "PUT" | "DELETE") => {
            let Some(key) = key(raw) else {
                return Response::error(400, "invalid key");
            };
            match method {
                "PUT" => match app.kv_put(&key, body) {
                    Ok(Stored::Created) => {
                        Response::new(201, "text/plain; charset=utf-8", Cow::Borrowed(b""))
                    }
                    Ok(Stored::Replaced) => Response::no_content(),
                    Err(e) => kv_error(e),
                },
                "DELETE" => match app.kv_delete(&key) {
                    Ok(()) => Response::no_content(),
                    Err(e) => kv_error(e),
                },
                _ => match app.kv_get(&key) {
                    Ok(value) => Response::new(200, OCTETS, Cow::Owned(value)),
                    Err(e) => kv_error(e),
                },
            }
        }
        route => {
            let mut response = Response::error(405, "method not allowed");
            response.allow = Some(route.allow());
            response
        }
    }
}

/// The path of a request target, without its query: origin form (`/a?b`) or absolute form
/// (`http://host/a?b`, which RFC 9112 §3.2.2 requires servers to accept). `None` for the
/// asterisk and authority forms, which name no resource here.
fn path(target: &str) -> Option<&str> {
    let path = if target.starts_with('/') {
        target
    } else {
        let scheme_end = target.find("://")?;
        let scheme = target.get(..scheme_end)?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let rest = target.get(scheme_end.saturating_add(3)..)?;
        match rest.find(['/', '?']) {
            Some(i) if rest.get(i..)?.starts_with('/') => rest.get(i..)?,
            _ => "/",
        }
    };
    Some(match path.find(['?', '#']) {
        Some(end) => path.get(..end)?,
        None => path,
    })
}

/// The key a raw `/kv/` path segment names: percent-decoded, UTF-8, 1 to [`MAX_KEY`] bytes.
fn key(raw: &str) -> Option<String> {
    let bytes = percent_decode(raw.as_bytes()).ok()?;
    if bytes.is_empty() || bytes.len() > MAX_KEY {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The response to a failed key-value operation.
fn kv_error(e: KvError) -> Response {
    match e {
        KvError::NotFound => Response::error(404, "key not found"),
        KvError::Unavailable => Response::error(503, "storage unavailable"),
        KvError::Full => Response::error(507, "storage full"),
    }
}

/// `200` with `value` as JSON, or `500` if it takes more than [`MAX_JSON`] bytes.
fn json(value: &impl Serialize) -> Response {
    let mut size = 1024;
    loop {
        let mut buf = vec![0; size];
        if let Ok(len) = serde_json_core::to_slice(value, &mut buf) {
            buf.truncate(len);
            return Response::new(200, JSON, Cow::Owned(buf));
        }
        if size >= MAX_JSON {
            return Response::error(500, "response too large");
        }
        size = size.saturating_mul(2).min(MAX_JSON);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_targets() {
        for (target, expected) in [
            ("/", Some("/")),
            ("/status?x=1", Some("/status")),
            ("/kv/a%20b?", Some("/kv/a%20b")),
            ("http://host/status", Some("/status")),
            ("HTTPS://host:80/kv/x?y", Some("/kv/x")),
            ("http://host", Some("/")),
            ("http://host?q", Some("/")),
            ("ftp://host/status", None),
            ("*", None),
            ("host:80", None),
            ("", None),
        ] {
            assert_eq!(path(target), expected, "{target}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(key("a").as_deref(), Some("a"));
        assert_eq!(key("a%2Fb/c").as_deref(), Some("a/b/c"));
        assert_eq!(key("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(key(""), None);
        assert_eq!(key("%ff"), None);
        assert_eq!(key("%zz"), None);
        let long = "k".repeat(MAX_KEY);
        assert_eq!(key(&long).as_deref(), Some(long.as_str()));
        assert_eq!(key(&"k".repeat(MAX_KEY + 1)), None);
        // 255 bytes after decoding, though the raw segment is three times as long.
        assert!(key(&"%41".repeat(MAX_KEY)).is_some());
    }

    /// The PD states and fault counts `GET /status` shows (`docs/services.md`): the names
    /// are stable, and a count nobody published is `null`.
    #[test]
    fn pd_states_and_fault_counts_as_json() {
        for (state, faults, expected) in [
            (
                PdState::Starting,
                None,
                r#""state":"starting","faults":null"#,
            ),
            (PdState::Running, Some(0), r#""state":"running","faults":0"#),
            (PdState::Faulted, Some(3), r#""state":"faulted","faults":3"#),
            (
                PdState::Stopped,
                Some(u64::from(u32::MAX)),
                r#""state":"stopped","faults":4294967295"#,
            ),
        ] {
            let pd = PdStatus {
                name: "p".into(),
                state,
                faults,
            };
            let response = json(&pd);
            assert_eq!(response.status, 200);
            let expected = alloc::format!(r#"{{"name":"p",{expected}}}"#);
            assert_eq!(&*response.body, expected.as_bytes());
        }
    }

    #[test]
    fn json_grows_its_buffer() {
        let big = SystemStatus {
            replicas: vec![
                ReplicaStatus {
                    name: "r".repeat(3000),
                    cores: vec![0, 1],
                    state: ReplicaState::Up,
                    ticks: u64::MAX,
                    pds: vec![],
                    channels: vec![],
                };
                2
            ],
        };
        let response = json(&big);
        assert_eq!(response.status, 200);
        assert!(response.body.len() > 6000);
        let too_big = SystemStatus {
            replicas: vec![big.replicas[0].clone(); MAX_JSON / 3000 + 1],
        };
        assert_eq!(json(&too_big).status, 500);
    }
}
