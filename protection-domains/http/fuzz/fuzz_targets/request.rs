//! One HTTP connection against a hostile peer: the fuzz input is a sequence of chunks, each
//! passed to one `Connection::receive`, as TCP segments would be. The connection must never
//! panic, write only HTTP/1.1 responses, and stay closed and silent once it said to close.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use atoll_http::{
    App, Connection, KvError, Outcome, PdState, PdStatus, ReplicaState, ReplicaStatus, RtStats,
    Stored, SystemStatus,
};
use libfuzzer_sys::fuzz_target;

/// A store of at most a few keys, so that every store answer is reached.
#[derive(Default)]
struct Stub {
    kv: BTreeMap<String, Vec<u8>>,
    calls: u64,
}

impl App for Stub {
    fn status(&mut self) -> SystemStatus {
        SystemStatus {
            replicas: vec![ReplicaStatus {
                name: "main".into(),
                cores: vec![0, 1],
                state: ReplicaState::Up,
                ticks: self.calls,
                pds: vec![PdStatus {
                    name: "web".into(),
                    state: PdState::Running,
                    faults: Some(0),
                }],
                channels: vec![],
            }],
        }
    }

    fn rt(&mut self) -> Option<RtStats> {
        self.calls += 1;
        (self.calls % 2 == 0).then(RtStats::default)
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, KvError> {
        self.kv.get(key).cloned().ok_or(KvError::NotFound)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<Stored, KvError> {
        if key == "down" {
            return Err(KvError::Unavailable);
        }
        if self.kv.len() >= 4 && !self.kv.contains_key(key) {
            return Err(KvError::Full);
        }
        match self.kv.insert(key.into(), value.into()) {
            None => Ok(Stored::Created),
            Some(_) => Ok(Stored::Replaced),
        }
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.kv.remove(key).map(|_| ()).ok_or(KvError::NotFound)
    }
}

fuzz_target!(|chunks: Vec<Vec<u8>>| {
    let mut connection = Connection::new();
    let mut app = Stub::default();
    let mut out = Vec::new();
    for chunk in &chunks {
        let closed = connection.is_closed();
        let before = out.len();
        let outcome = connection.receive(chunk, &mut app, &mut out);
        assert_eq!(outcome == Outcome::Close, connection.is_closed());
        if closed {
            assert_eq!((outcome, out.len()), (Outcome::Close, before));
        }
        assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "));
    }
});
