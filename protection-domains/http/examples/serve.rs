//! Serves the API on the host with made-up data, to try the dashboard in a browser or the
//! API with curl: `cargo run -p atoll-http --example serve [ADDRESS]` (default
//! `127.0.0.1:8080`). One thread per connection, each feeding a `Connection` what the
//! socket reads, as the PD does with its TCP sockets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atoll_http::{
    App, ChannelStatus, Connection, KvError, Outcome, PdState, PdStatus, ReplicaState,
    ReplicaStatus, RtStats, Stored, SystemStatus,
};

struct Demo {
    started: Instant,
    kv: BTreeMap<String, Vec<u8>>,
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
                    ticks: ticks / 2,
                    pds: vec![pd("rt", PdState::Running, 0)],
                    channels: vec![],
                },
                ReplicaStatus {
                    name: "storage".into(),
                    cores: vec![3],
                    state: ReplicaState::Down,
                    ticks: 4711,
                    pds: vec![pd("storage", PdState::Faulted, 3)],
                    channels: vec![],
                },
            ],
        }
    }

    fn rt(&mut self) -> Option<RtStats> {
        let activations = self.0.lock().unwrap().started.elapsed().as_millis() as u64;
        Some(RtStats {
            period_ns: 1_000_000,
            activations,
            deadline_misses: activations / 5000,
            latency_min_ns: 820,
            latency_mean_ns: 1_130,
            latency_max_ns: 9_400,
        })
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
    })));
    for stream in listener.incoming() {
        let app = app.clone();
        let stream = stream?;
        std::thread::spawn(move || serve(stream, app));
    }
    Ok(())
}
