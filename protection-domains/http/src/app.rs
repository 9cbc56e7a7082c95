//! The API: the [`App`] trait the PD implements, the plain-data records it fills, and the
//! routes that serve them.
//!
//! | route | methods | answers |
//! | --- | --- | --- |
//! | `/` | `GET`, `HEAD` | `200`, the [`DASHBOARD`] page (`text/html`) |
//! | `/status` | `GET`, `HEAD` | `200`, [`SystemStatus`] as JSON |
//! | `/rt` | `GET`, `HEAD` | `200`, [`RtStats`] (the real-time PD's statistics) as JSON; `503` if the app has none |
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

use atoll_channels::rt::{Histogram, RtSnapshot, Window};
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
    /// How many times it was restarted (0 from the first boot).
    pub epoch: u32,
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
    /// Being placed again after it stopped (`restart="true"`).
    Restarting,
    /// Its tick count stayed frozen past its `hung_after_ms`.
    Hung,
    /// Stopped, and not restarted again.
    Failed,
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

/// The real-time PD's statistics, as `GET /rt` shows them: its job's parameters and two
/// [`RtWindow`]s, built from a consistent copy of the region it publishes
/// ([`RtStats::from_snapshot`]). Times are in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtStats {
    /// The job's period.
    pub period_ns: u64,
    /// The job's budget (its scheduling context's).
    pub budget_ns: u64,
    /// Periods per window.
    pub window_periods: u64,
    /// Releases since the PD started, skipped ones included.
    pub releases: u64,
    /// The core the PD runs on.
    pub core: u64,
    /// The simulated plant's output, in millionths.
    pub plant_output_ppm: i64,
    /// Everything since the PD started (index 0).
    pub total: RtWindow,
    /// The last complete window (index 0, and empty, until one completes).
    pub last: RtWindow,
}

/// The statistics of a run of periods (`atoll_channels::rt::Window`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtWindow {
    /// Which window: 0 for the one since the start, else 1, 2, ... in order.
    pub index: u64,
    /// Periods whose job ran.
    pub periods: u64,
    /// Jobs that finished after their deadline (the next release).
    pub deadline_misses: u64,
    /// Releases skipped because an earlier job still ran.
    pub skipped_releases: u64,
    /// Release jitter: when the job started, less its release.
    pub jitter_ns: RtDistribution,
    /// Response time: when the job finished, less its release.
    pub response_ns: RtDistribution,
    /// The kernel path: when the job started, less when its core's kernel took the timer's
    /// interrupt (the kernel's share of the jitter); mean and max.
    pub path_ns: RtPath,
    /// What the PD's core suffered.
    pub interference: RtInterference,
    /// The jitter histogram's non-empty buckets in order, each `[start_ns, count]`: the
    /// bucket counts values from its start up to the next bucket's start (the last bucket
    /// takes everything above its start).
    pub jitter_histogram: Vec<[u64; 2]>,
}

/// The kernel path's mean and maximum, in nanoseconds (0 while none is known).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtPath {
    /// The mean, rounded down.
    pub mean: u64,
    /// The largest.
    pub max: u64,
}

/// A summary of a histogram of nanosecond values; all 0 while it is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtDistribution {
    /// The smallest value (exact).
    pub min: u64,
    /// The mean, rounded down (exact).
    pub mean: u64,
    /// The 99th percentile: an upper bound, the end of the bucket holding it (at most
    /// 12.5 % above it), never above `max`.
    pub p99: u64,
    /// The 99.9th percentile, bounded the same way.
    pub p99_9: u64,
    /// The largest value (exact).
    pub max: u64,
}

/// Interference the PD's core suffered over a window (`atoll_channels::rt::Interference`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RtInterference {
    /// Interrupts foreign to the core (software-generated and device interrupts).
    pub foreign_irqs: u64,
    /// The most of them in one period.
    pub foreign_irqs_max_per_period: u64,
    /// Times the core waited for a kernel lock.
    pub lock_waits: u64,
    /// Nanoseconds it spent waiting.
    pub lock_wait_ns: u64,
    /// The longest waiting in one period, in nanoseconds.
    pub lock_wait_ns_max_per_period: u64,
    /// Broadcast maintenance executed anywhere on the chip (each reaches the core).
    pub broadcasts: u64,
    /// The most of it in one period.
    pub broadcasts_max_per_period: u64,
    /// Kernel entries on the core.
    pub kernel_entries: u64,
}

impl RtStats {
    /// The statistics in `snapshot`. Nothing in it is trusted beyond its arithmetic (the
    /// region is written by another replica's PD): any contents give some record, never a
    /// panic.
    pub fn from_snapshot(snapshot: &RtSnapshot) -> Self {
        let h = &snapshot.header;
        Self {
            period_ns: h.period_ns,
            budget_ns: h.budget_ns,
            window_periods: h.window_periods,
            releases: h.releases,
            core: h.core,
            plant_output_ppm: h.plant_output,
            total: RtWindow::from_window(&snapshot.total),
            last: RtWindow::from_window(&snapshot.last),
        }
    }
}

impl RtWindow {
    /// The record of `w`.
    pub fn from_window(w: &Window) -> Self {
        let i = &w.interference;
        Self {
            index: w.index,
            periods: w.periods,
            deadline_misses: w.deadline_misses,
            skipped_releases: w.skipped_releases,
            jitter_ns: RtDistribution::from_histogram(&w.jitter),
            response_ns: RtDistribution::from_histogram(&w.response),
            path_ns: RtPath {
                mean: w.path_mean_ns(),
                max: w.path_max_ns,
            },
            interference: RtInterference {
                foreign_irqs: i.foreign_irqs,
                foreign_irqs_max_per_period: i.foreign_irqs_max,
                lock_waits: i.lock_waits,
                lock_wait_ns: i.lock_wait_ns,
                lock_wait_ns_max_per_period: i.lock_wait_ns_max,
                broadcasts: i.broadcasts,
                broadcasts_max_per_period: i.broadcasts_max,
                kernel_entries: i.kernel_entries,
            },
            jitter_histogram: w
                .jitter
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &count)| count != 0)
                .map(|(i, &count)| [Histogram::bucket_start(i), u64::from(count)])
                .collect(),
        }
    }
}

impl RtDistribution {
    /// The summary of `h`: p99 is `quantile(990_000)`, p99.9 `quantile(999_000)`.
    pub fn from_histogram(h: &Histogram) -> Self {
        Self {
            min: h.min(),
            mean: h.mean(),
            p99: h.quantile(990_000),
            p99_9: h.quantile(999_000),
            max: h.max,
        }
    }
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
    use atoll_channels::rt::BUCKETS;

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

    /// A snapshot with known values: `total` 1,000 periods, mostly quiet with a tail;
    /// `last` window 7, two periods.
    fn snapshot() -> RtSnapshot {
        use atoll_channels::rt::{Period, PeriodInterference, RtHeader};
        let mut total = Window::new(0);
        let quiet = Period {
            jitter_ns: 1_000,
            response_ns: 21_000,
            interference: PeriodInterference {
                kernel_entries: 2,
                ..PeriodInterference::default()
            },
            ..Period::default()
        };
        let busy = Period {
            jitter_ns: 5_000,
            response_ns: 25_000,
            interference: PeriodInterference {
                foreign_irqs: 1,
                kernel_entries: 2,
                ..PeriodInterference::default()
            },
            ..Period::default()
        };
        let late = Period {
            jitter_ns: 50_000,
            response_ns: 70_000,
            missed: true,
            skipped: 1,
            interference: PeriodInterference {
                foreign_irqs: 4,
                lock_waits: 3,
                lock_wait_ns: 1_500,
                broadcasts: 2,
                kernel_entries: 10,
            },
            path_ns: None,
        };
        for _ in 0..990 {
            total.record(&quiet);
        }
        for _ in 0..9 {
            total.record(&busy);
        }
        total.record(&late);
        let mut last = Window::new(7);
        for (jitter_ns, response_ns) in [(100, 9_000), (4_000, 12_000)] {
            last.record(&Period {
                jitter_ns,
                response_ns,
                ..Period::default()
            });
        }
        RtSnapshot {
            header: RtHeader {
                period_ns: 1_000_000,
                budget_ns: 500_000,
                window_periods: 10_000,
                releases: 12_345,
                core: 1,
                plant_output: -42,
            },
            total,
            last,
        }
    }

    /// The JSON of [`snapshot`], worked out by hand from the bucket layout (8 per power of
    /// two: 1,000 ns is in [960, 1024), 5,000 in [4,608, 5,120), 50,000 in [49,152, 53,248),
    /// 21,000 in [20,480, 22,528), 25,000 in [24,576, 26,624), 100 in [96, 104), 4,000 in
    /// [3,840, 4,096)); a percentile is its bucket's end, capped at the maximum.
    const SNAPSHOT_JSON: &str = concat!(
        r#"{"period_ns":1000000,"budget_ns":500000,"window_periods":10000,"releases":12345,"#,
        r#""core":1,"plant_output_ppm":-42,"#,
        r#""total":{"index":0,"periods":1000,"deadline_misses":1,"skipped_releases":1,"#,
        r#""jitter_ns":{"min":1000,"mean":1085,"p99":1023,"p99_9":5119,"max":50000},"#,
        r#""response_ns":{"min":21000,"mean":21085,"p99":22527,"p99_9":26623,"max":70000},"#,
        r#""path_ns":{"mean":0,"max":0},"#,
        r#""interference":{"foreign_irqs":13,"foreign_irqs_max_per_period":4,"lock_waits":3,"#,
        r#""lock_wait_ns":1500,"lock_wait_ns_max_per_period":1500,"broadcasts":2,"#,
        r#""broadcasts_max_per_period":2,"kernel_entries":2008},"#,
        r#""jitter_histogram":[[960,990],[4608,9],[49152,1]]},"#,
        r#""last":{"index":7,"periods":2,"deadline_misses":0,"skipped_releases":0,"#,
        r#""jitter_ns":{"min":100,"mean":2050,"p99":4000,"p99_9":4000,"max":4000},"#,
        r#""response_ns":{"min":9000,"mean":10500,"p99":12000,"p99_9":12000,"max":12000},"#,
        r#""path_ns":{"mean":0,"max":0},"#,
        r#""interference":{"foreign_irqs":0,"foreign_irqs_max_per_period":0,"lock_waits":0,"#,
        r#""lock_wait_ns":0,"lock_wait_ns_max_per_period":0,"broadcasts":0,"#,
        r#""broadcasts_max_per_period":0,"kernel_entries":0},"#,
        r#""jitter_histogram":[[96,1],[3840,1]]}}"#
    );

    #[test]
    fn rt_stats_from_a_snapshot_as_json() {
        let stats = RtStats::from_snapshot(&snapshot());
        assert_eq!(stats.total.jitter_ns.p99, 1_023, "an upper bound of 1,000");
        let response = json(&stats);
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type, JSON);
        assert_eq!(core::str::from_utf8(&response.body), Ok(SNAPSHOT_JSON));
    }

    #[test]
    fn rt_stats_of_nothing_recorded_are_zero() {
        let stats = RtStats::from_snapshot(&RtSnapshot::default());
        assert_eq!(stats, RtStats::default());
        let body = json(&stats).body;
        let text = core::str::from_utf8(&body).unwrap();
        assert!(
            text.contains(r#""jitter_ns":{"min":0,"mean":0,"p99":0,"p99_9":0,"max":0}"#),
            "{text}"
        );
        assert!(text.ends_with(r#""jitter_histogram":[]}}"#), "{text}");
    }

    /// The largest record (every bucket of both windows counted, every number at its
    /// widest) fits in [`MAX_JSON`], and the histogram lists all buckets in order.
    #[test]
    fn the_largest_rt_stats_fit() {
        let mut s = snapshot();
        s.header.plant_output = i64::MIN;
        for w in [&mut s.total, &mut s.last] {
            w.periods = u64::MAX;
            w.jitter.buckets = [u32::MAX; BUCKETS];
            w.jitter.max = u64::MAX;
            w.jitter.sum = u64::MAX;
        }
        let stats = RtStats::from_snapshot(&s);
        assert_eq!(stats.total.jitter_histogram.len(), BUCKETS);
        assert!(
            stats
                .total
                .jitter_histogram
                .windows(2)
                .all(|p| p[0][0] < p[1][0])
        );
        assert_eq!(
            stats.total.jitter_histogram[BUCKETS - 1],
            [15 << 20, u64::from(u32::MAX)]
        );
        let response = json(&stats);
        assert_eq!(response.status, 200);
        assert!(response.body.len() < 16 * 1024, "{}", response.body.len());
    }

    #[test]
    fn json_grows_its_buffer() {
        let big = SystemStatus {
            replicas: vec![
                ReplicaStatus {
                    name: "r".repeat(3000),
                    cores: vec![0, 1],
                    state: ReplicaState::Up,
                    epoch: 0,
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
