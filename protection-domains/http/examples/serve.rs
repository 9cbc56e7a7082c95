//! Serves the API on the host with made-up data, to try the dashboard in a browser or the
//! API with curl: `cargo run -p atoll-http --example serve [ADDRESS]` (default
//! `127.0.0.1:8080`). One thread per connection, each feeding a `Connection` what the
//! socket reads, as the PD does with its TCP sockets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atoll_channels::rt::{Period, PeriodInterference, RtHeader, RtSnapshot, Window};
use atoll_http::{
    App, ChannelStatus, Connection, KvError, Outcome, PdState, PdStatus, ReplicaState,
    ReplicaStatus, RtStats, Stored, SystemStatus,
};

struct Demo {
    started: Instant,
    kv: BTreeMap<String, Vec<u8>>,
    rt: DemoRt,
}

/// Periods of the demo's made-up real-time job per window.
const WINDOW_PERIODS: u64 = 5_000;

/// A made-up real-time job of 1 ms periods, recorded up to the time of each `GET /rt`.
struct DemoRt {
    total: Window,
    last: Window,
    current: Window,
    /// Periods recorded so far.
    releases: u64,
    /// The state of a xorshift generator.
    random: u64,
}

impl DemoRt {
    fn new() -> Self {
        Self {
            total: Window::new(0),
            last: Window::new(0),
            current: Window::new(1),
            releases: 0,
            random: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    /// Records periods until `releases` have passed.
    fn run_until(&mut self, releases: u64) {
        while self.releases < releases {
            let r = self.next_random();
            // Mostly 1 to 2 µs of jitter, with a rare tail of interference.
            let noisy = r.is_multiple_of(500);
            let jitter_ns = 1_000 + r % 1_000 + if noisy { (r >> 20) % 40_000 } else { 0 };
            let response_ns = jitter_ns + 150_000 + (r >> 10) % 20_000;
            let period = Period {
                jitter_ns,
                response_ns,
                missed: response_ns > 1_000_000,
                skipped: 0,
                path_ns: Some(600 + r % 100),
                interference: PeriodInterference {
                    foreign_irqs: u64::from(noisy) * (1 + (r >> 30) % 3),
                    lock_waits: u64::from(noisy),
                    lock_wait_ns: u64::from(noisy) * 700,
                    broadcasts: u64::from(r.is_multiple_of(97)),
                    kernel_entries: 2,
                },
            };
            self.total.record(&period);
            self.current.record(&period);
            if self.current.periods == WINDOW_PERIODS {
                let next = Window::new(self.current.index + 1);
                self.last = std::mem::replace(&mut self.current, next);
            }
            self.releases += 1;
        }
    }
}

/// The demo shared by the connections' threads.
#[derive(Clone)]
struct Shared(Arc<Mutex<Demo>>);

impl App for Shared {
    fn status(&mut self) -> SystemStatus {
        let ticks = self.0.lock().unwrap().started.elapsed().as_millis() as u64;
        let pd = |name: &str, state, faults| PdStatus {
            name: name.into(),
            state,
            faults: Some(faults),
        };
        SystemStatus {
            replicas: vec![
                ReplicaStatus {
                    name: "main".into(),
                    cores: vec![0, 1],
                    state: ReplicaState::Up,
                    epoch: 0,
                    ticks,
                    pds: vec![
                        pd("net", PdState::Running, 0),
                        pd("web", PdState::Running, 0),
                    ],
                    channels: vec![ChannelStatus {
                        name: "main-rt".into(),
                        sent: ticks / 10,
                        received: ticks / 10,
                        dropped: 0,
                    }],
                },
                ReplicaStatus {
                    name: "rt".into(),
                    cores: vec![2],
                    state: ReplicaState::Up,
                    epoch: 0,
                    ticks: ticks / 2,
                    pds: vec![pd("rt", PdState::Running, 0)],
                    channels: vec![],
                },
                ReplicaStatus {
                    name: "storage".into(),
                    cores: vec![3],
                    state: ReplicaState::Down,
                    epoch: 0,
                    ticks: 4711,
                    pds: vec![pd("storage", PdState::Faulted, 3)],
                    channels: vec![],
                },
            ],
        }
    }

    fn rt(&mut self) -> Option<RtStats> {
        let mut demo = self.0.lock().unwrap();
        let releases = demo.started.elapsed().as_millis() as u64;
        demo.rt.run_until(releases);
        Some(RtStats::from_snapshot(&RtSnapshot {
            header: RtHeader {
                period_ns: 1_000_000,
                budget_ns: 500_000,
                window_periods: WINDOW_PERIODS,
                releases,
                core: 2,
                plant_output: (releases % 2_000) as i64 - 1_000,
            },
            total: demo.rt.total,
            last: demo.rt.last,
        }))
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, KvError> {
        let demo = self.0.lock().unwrap();
        demo.kv.get(key).cloned().ok_or(KvError::NotFound)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<Stored, KvError> {
        let mut demo = self.0.lock().unwrap();
        match demo.kv.insert(key.into(), value.into()) {
            None => Ok(Stored::Created),
            Some(_) => Ok(Stored::Replaced),
        }
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        let mut demo = self.0.lock().unwrap();
        demo.kv.remove(key).map(|_| ()).ok_or(KvError::NotFound)
    }
}

fn serve(mut stream: TcpStream, mut app: Shared) -> std::io::Result<()> {
    let mut connection = Connection::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut out = Vec::new();
        let outcome = connection.receive(&buf[..n], &mut app, &mut out);
        stream.write_all(&out)?;
        if outcome == Outcome::Close {
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let listener = TcpListener::bind(&address)?;
    eprintln!("serving on http://{address}/");
    let app = Shared(Arc::new(Mutex::new(Demo {
        started: Instant::now(),
        kv: BTreeMap::new(),
        rt: DemoRt::new(),
    })));
    for stream in listener.incoming() {
        let app = app.clone();
        let stream = stream?;
        std::thread::spawn(move || serve(stream, app));
    }
    Ok(())
}
