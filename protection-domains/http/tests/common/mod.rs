//! A recording app and helpers to read responses back, shared by the host tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use atoll_http::{
    App, ChannelStatus, Connection, KvError, Outcome, PdState, PdStatus, ReplicaState,
    ReplicaStatus, RtStats, Stored, SystemStatus,
};

/// An app with an in-memory store that can be made unavailable or full.
#[derive(Clone, Debug)]
pub struct Mock {
    pub kv: BTreeMap<String, Vec<u8>>,
    pub rt: Option<RtStats>,
    pub store: Result<(), KvError>,
    /// The keys the store was asked about, in order.
    pub keys: Vec<String>,
}

impl Default for Mock {
    fn default() -> Self {
        Self {
            kv: BTreeMap::new(),
            rt: None,
            store: Ok(()),
            keys: Vec::new(),
        }
    }
}

/// Two replicas, the second with a PD that faulted and a channel.
pub fn system() -> SystemStatus {
    SystemStatus {
        replicas: vec![
            ReplicaStatus {
                name: "main".into(),
                cores: vec![0],
                state: ReplicaState::Up,
                epoch: 0,
                ticks: 123,
                pds: vec![PdStatus {
                    name: "net".into(),
                    state: PdState::Running,
                    faults: Some(0),
                }],
                channels: vec![],
            },
            ReplicaStatus {
                name: "rt \"1\"".into(),
                cores: vec![2, 3],
                state: ReplicaState::Booting,
                epoch: 3,
                ticks: u64::MAX,
                pds: vec![PdStatus {
                    name: "ctl".into(),
                    state: PdState::Faulted,
                    faults: Some(2),
                }],
                channels: vec![ChannelStatus {
                    name: "main-rt".into(),
                    sent: 5,
                    received: 4,
                    dropped: 1,
                }],
            },
        ],
    }
}

/// [`system`] as JSON, written out by hand.
pub const SYSTEM_JSON: &str = concat!(
    r#"{"replicas":["#,
    r#"{"name":"main","cores":[0],"state":"up","epoch":0,"ticks":123,"#,
    r#""pds":[{"name":"net","state":"running","faults":0}],"channels":[]},"#,
    r#"{"name":"rt \"1\"","cores":[2,3],"state":"booting","epoch":3,"ticks":18446744073709551615,"#,
    r#""pds":[{"name":"ctl","state":"faulted","faults":2}],"#,
    r#""channels":[{"name":"main-rt","sent":5,"received":4,"dropped":1}]}"#,
    r#"]}"#
);

impl App for Mock {
    fn status(&mut self) -> SystemStatus {
        system()
    }

    fn rt(&mut self) -> Option<RtStats> {
        self.rt.clone()
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, KvError> {
        self.keys.push(key.into());
        self.store?;
        self.kv.get(key).cloned().ok_or(KvError::NotFound)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<Stored, KvError> {
        self.keys.push(key.into());
        self.store?;
        match self.kv.insert(key.into(), value.into()) {
            None => Ok(Stored::Created),
            Some(_) => Ok(Stored::Replaced),
        }
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.keys.push(key.into());
        self.store?;
        self.kv.remove(key).map(|_| ()).ok_or(KvError::NotFound)
    }
}

/// Feeds `chunks` one `receive` each to a new connection; the output and the last outcome.
/// Checks on the way that a closed connection stays closed and silent.
pub fn feed(app: &mut Mock, chunks: &[&[u8]]) -> (Vec<u8>, Outcome) {
    let mut connection = Connection::new();
    let mut out = Vec::new();
    let mut outcome = Outcome::Open;
    for chunk in chunks {
        let before = out.len();
        let was_closed = connection.is_closed();
        outcome = connection.receive(chunk, app, &mut out);
        assert_eq!(outcome == Outcome::Close, connection.is_closed());
        if was_closed {
            assert_eq!(out.len(), before, "a closed connection wrote");
            assert_eq!(outcome, Outcome::Close);
        }
    }
    (out, outcome)
}

/// One request in one piece to a fresh mock.
pub fn one(request: &[u8]) -> (Vec<u8>, Outcome) {
    feed(&mut Mock::default(), &[request])
}

/// A response read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (case-insensitive); panics if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let value = values.next();
        assert!(values.next().is_none(), "{name} repeated");
        value
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// The message of a JSON error body, checking its shape.
    pub fn error(&self) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"));
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 1);
        object["error"].as_str().unwrap().to_owned()
    }
}

/// Splits `out` into responses, checking each is well formed: `HTTP/1.1`, a known reason,
/// `Content-Length` and `Content-Type` on all but 100 and 204 (which have no body),
/// `Cache-Control: no-store`. `head` says which responses answer `HEAD` (no body).
pub fn replies_with_head(mut out: &[u8], head: &[bool]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(out) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "unparsable response {other:?}: {:?}",
                String::from_utf8_lossy(out)
            ),
        };
        assert!(out.starts_with(b"HTTP/1.1 "));
        let status = response.code.unwrap();
        assert!(
            !response.reason.unwrap().is_empty(),
            "no reason for {status}"
        );
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let body_len = if status == 100 || status == 204 {
            assert_eq!(reply.header("content-length"), None);
            assert_eq!(reply.header("content-type"), None);
            0
        } else {
            assert!(reply.header("content-type").is_some());
            reply.header("content-length").unwrap().parse().unwrap()
        };
        if status != 100 {
            assert_eq!(reply.header("cache-control"), Some("no-store"));
        }
        let body_len = if status != 100 && head.get(replies.len()).copied().unwrap_or(false) {
            0
        } else {
            body_len
        };
        reply.body = out[len..len + body_len].to_vec();
        out = &out[len + body_len..];
        replies.push(reply);
    }
    replies
}

/// [`replies_with_head`] for output answering no `HEAD`.
pub fn replies(out: &[u8]) -> Vec<Reply> {
    replies_with_head(out, &[])
}

/// The single response in `out`.
pub fn reply(out: &[u8]) -> Reply {
    let mut all = replies(out);
    assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(out));
    all.pop().unwrap()
}
