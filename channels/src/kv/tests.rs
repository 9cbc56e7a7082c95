//! Tests of the key-value protocol: round trips of every op against a model store, every
//! malformed field on both sides, sessions and restarts, signalling, and property tests of a
//! hostile client against the store's end and a hostile store against the client's end.

extern crate std;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::vec;
use std::vec::Vec;

use super::*;
use proptest::prelude::*;

/// A cache line, so test regions have the alignment a shared page has.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C, align(64))]
struct Line([u64; 8]);

fn memory() -> Vec<Line> {
    vec![Line([0; 8]); KV_REGION_BYTES / 64]
}

/// A request with its bytes owned, to remember what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Get(Vec<u8>),
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    List(Vec<u8>, Vec<u8>),
}

impl Owned {
    fn request(&self) -> Request<'_> {
        match self {
            Self::Get(key) => Request::Get { key },
            Self::Put(key, value) => Request::Put { key, value },
            Self::Delete(key) => Request::Delete { key },
            Self::List(prefix, start_after) => Request::List {
                prefix,
                start_after,
            },
        }
    }

    fn of(request: &Request<'_>) -> Self {
        match *request {
            Request::Get { key } => Self::Get(key.to_vec()),
            Request::Put { key, value } => Self::Put(key.to_vec(), value.to_vec()),
            Request::Delete { key } => Self::Delete(key.to_vec()),
            Request::List {
                prefix,
                start_after,
            } => Self::List(prefix.to_vec(), start_after.to_vec()),
        }
    }
}

/// The store behind the server in these tests.
#[derive(Default)]
struct Model {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys the store holds before it is full (0: no limit).
    max_keys: usize,
}

impl Model {
    fn handle(&mut self, request: &Request<'_>) -> (Status, u32, Vec<u8>) {
        match *request {
            Request::Get { key } => match self.map.get(key) {
                Some(value) => (Status::Ok, 0, value.clone()),
                None => (Status::NotFound, 0, vec![]),
            },
            Request::Put { key, value } => {
                let created = !self.map.contains_key(key);
                if created && self.max_keys != 0 && self.map.len() >= self.max_keys {
                    return (Status::Full, 0, vec![]);
                }
                self.map.insert(key.to_vec(), value.to_vec());
                (
                    Status::Ok,
                    if created { KV_FLAG_CREATED } else { 0 },
                    vec![],
                )
            }
            Request::Delete { key } => match self.map.remove(key) {
                Some(_) => (Status::Ok, 0, vec![]),
                None => (Status::NotFound, 0, vec![]),
            },
            Request::List {
                prefix,
                start_after,
            } => {
                let mut out = vec![0u8; KV_MAX_VALUE];
                let mut writer = ListWriter::new(&mut out);
                for key in self.map.keys() {
                    if key.starts_with(prefix) && key.as_slice() > start_after && !writer.push(key)
                    {
                        break;
                    }
                }
                (Status::Ok, writer.flags(), writer.body().to_vec())
            }
        }
    }
}

/// Drains the server, answering every request from `model`; returns what it saw, each
/// request with its id and the answer sent.
#[allow(clippy::type_complexity, reason = "a test's record")]
fn serve(
    server: &mut KvServer<'_>,
    model: &mut Model,
) -> Vec<Result<(u64, Owned, (Status, u32, Vec<u8>)), Rejected>> {
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    let mut seen = vec![];
    while let Some(next) = server.next(&mut scratch) {
        match next {
            Ok((token, request)) => {
                let answer = model.handle(&request);
                let id = token.request_id();
                let owned = Owned::of(&request);
                server.reply(token, answer.0, answer.1, &answer.2).unwrap();
                seen.push(Ok((id, owned, answer)));
            }
            Err(rejected) => seen.push(Err(rejected)),
        }
        assert!(seen.len() <= KV_QUEUE_SLOTS, "more than the queue holds");
    }
    seen
}

/// A region set up by the store, with a client attached and its session open.
fn open(mem: &mut [Line]) -> (KvRegion<'_>, KvServer<'_>, KvClient<'_>) {
    let region = KvRegion::init(mem.as_mut_bytes()).unwrap();
    let mut server = region.clone().server();
    let mut client = region.clone().client();
    assert_eq!(client.connect(), Ok(Link::Requested));
    assert!(server.notify_needed(), "the store announces itself");
    assert!(!server.ready_to_wait(), "a session request is waiting");
    assert!(serve(&mut server, &mut Model::default()).is_empty());
    assert!(server.notify_needed(), "the store announces the session");
    assert!(!server.notify_needed());
    assert_eq!(client.connect(), Ok(Link::Open));
    (region, server, client)
}

/// Submits `request`, serves it and polls its response.
fn call(
    server: &mut KvServer<'_>,
    client: &mut KvClient<'_>,
    model: &mut Model,
    request: &Request<'_>,
) -> (Response, Vec<u8>) {
    let ticket = client.submit(request).unwrap();
    let seen = serve(server, model);
    assert_eq!(seen.len(), 1);
    let mut out = vec![0u8; KV_MAX_VALUE];
    let (got, response) = client.poll(&mut out).unwrap().unwrap();
    assert_eq!(got, ticket);
    assert_eq!(client.poll(&mut out), Ok(None));
    out.truncate(response.len);
    (response, out)
}

#[test]
fn the_layout_is_the_documented_one() {
    assert_eq!(KV_BUF_SIZE, 65856);
    assert_eq!(KV_VALUE_OFFSET, 320);
    assert_eq!(KV_REGION_BYTES, 270336);
    assert_eq!(KV_DATA_OFFSET + KV_DATA_BYTES, 4096 + 4 * 65856);
    assert_eq!(KV_GEOMETRY.buffers(), 4);
    assert_eq!(KV_SCRATCH_BYTES, 256 + 65536);
}

#[test]
fn attach_tells_a_store_not_up_yet_from_one_that_is() {
    let mut mem = memory();
    let bytes = mem.as_mut_bytes();
    assert_eq!(KvRegion::attach(bytes).err(), Some(KvError::NotReady));
    let bad = Some(KvError::Region(QueueError::BadRegion));
    assert_eq!(KvRegion::attach(&mut bytes[8..]).err(), bad, "misaligned");
    assert_eq!(KvRegion::init(&mut bytes[..8192]).err(), bad, "short");
    // SAFETY: a null base is refused before it is used.
    let null = unsafe { KvRegion::attach_raw(core::ptr::null_mut(), KV_REGION_BYTES) };
    assert_eq!(null.err(), bad);
    {
        let region = KvRegion::init(bytes).unwrap();
        let store = region.store_control();
        assert_eq!(store.epoch.load(Ordering::Relaxed), 1);
        store.version.store(2, Ordering::Relaxed);
    }
    assert_eq!(
        KvRegion::attach(bytes).err(),
        Some(KvError::Version { store: 2 })
    );
    {
        let region = KvRegion::init(bytes).unwrap();
        let epoch = region.store_control().epoch.load(Ordering::Relaxed);
        assert_eq!(epoch, 2, "a new epoch");
    }
    {
        let region = KvRegion::attach(bytes).unwrap();
        // A queue header gone bad reads as a store not set up.
        let magic = &region.responses().shared().header.magic;
        magic.store(0, Ordering::Relaxed);
    }
    assert_eq!(KvRegion::attach(bytes).err(), Some(KvError::NotReady));
    // The store sets such a queue up afresh.
    KvRegion::init(bytes).unwrap();
    assert!(KvRegion::attach(bytes).is_ok());
}

#[test]
fn a_session_opens_only_once_the_store_accepts_it() {
    let mut mem = memory();
    let region = KvRegion::init(mem.as_mut_bytes()).unwrap();
    let mut server = region.clone().server();
    let mut client = region.clone().client();
    let get = Request::Get { key: b"k" };
    assert_eq!(client.submit(&get), Err(KvError::NotReady));
    assert_eq!(client.poll(&mut []), Ok(None));
    assert!(client.ready_to_wait());
    assert!(server.ready_to_wait(), "no session: nothing to do");
    assert!(!server.is_open());
    assert_eq!(client.connect(), Ok(Link::Requested));
    assert_eq!(client.connect(), Ok(Link::Pending));
    assert!(client.ready_to_wait(), "the store notifies when it accepts");
    assert_eq!(client.submit(&get), Err(KvError::NotReady));
    assert!(!server.ready_to_wait());
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    assert!(server.next(&mut scratch).is_none());
    assert!(server.is_open() && server.ready_to_wait());
    assert_eq!(server.stats().sessions, 1);
    assert_eq!(client.connect(), Ok(Link::Open));
    assert_eq!(client.connect(), Ok(Link::Open));
    assert!(client.is_open());
    assert_eq!((client.free_buffers(), client.in_flight()), (4, 0));
    client.submit(&get).unwrap();
    assert_eq!((client.free_buffers(), client.in_flight()), (3, 1));
}

#[test]
fn every_op_goes_round() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let mut model = Model::default();
    let mut call =
        |model: &mut Model, request: Request<'_>| call(&mut server, &mut client, model, &request);

    let (r, _) = call(&mut model, Request::Get { key: b"missing" });
    assert_eq!((r.op, r.status, r.len), (Op::Get, Status::NotFound, 0));
    let (r, _) = call(
        &mut model,
        Request::Put {
            key: b"a/1",
            value: b"one",
        },
    );
    assert_eq!((r.op, r.status, r.created()), (Op::Put, Status::Ok, true));
    let (r, _) = call(
        &mut model,
        Request::Put {
            key: b"a/1",
            value: b"uno",
        },
    );
    assert_eq!((r.status, r.created()), (Status::Ok, false));
    let (r, value) = call(&mut model, Request::Get { key: b"a/1" });
    assert_eq!((r.status, &value[..]), (Status::Ok, &b"uno"[..]));
    let (r, _) = call(
        &mut model,
        Request::Put {
            key: b"a/2",
            value: b"",
        },
    );
    assert!(r.created());
    let (r, value) = call(&mut model, Request::Get { key: b"a/2" });
    assert_eq!((r.status, r.len, value.len()), (Status::Ok, 0, 0));
    call(
        &mut model,
        Request::Put {
            key: b"b",
            value: b"bee",
        },
    );
    let (r, keys) = call(
        &mut model,
        Request::List {
            prefix: b"a/",
            start_after: b"",
        },
    );
    assert_eq!(
        (r.op, r.status, r.truncated()),
        (Op::List, Status::Ok, false)
    );
    let keys: Vec<&[u8]> = list_keys(&keys).collect();
    assert_eq!(keys, [&b"a/1"[..], b"a/2"]);
    let (_, keys) = call(
        &mut model,
        Request::List {
            prefix: b"",
            start_after: b"a/1",
        },
    );
    assert_eq!(list_keys(&keys).collect::<Vec<_>>(), [&b"a/2"[..], b"b"]);
    let (r, _) = call(&mut model, Request::Delete { key: b"a/1" });
    assert_eq!((r.op, r.status), (Op::Delete, Status::Ok));
    let (r, _) = call(&mut model, Request::Delete { key: b"a/1" });
    assert_eq!(r.status, Status::NotFound);

    // The largest key and value.
    let key = [0x5a; KV_MAX_KEY];
    let value: Vec<u8> = (0..KV_MAX_VALUE).map(|i| (i * 7) as u8).collect();
    let (r, _) = call(
        &mut model,
        Request::Put {
            key: &key,
            value: &value,
        },
    );
    assert_eq!(r.status, Status::Ok);
    let (r, got) = call(&mut model, Request::Get { key: &key });
    assert_eq!((r.len, got == value), (KV_MAX_VALUE, true));

    // A full store.
    model.max_keys = model.map.len();
    let (r, _) = call(
        &mut model,
        Request::Put {
            key: b"new",
            value: b"x",
        },
    );
    assert_eq!(r.status, Status::Full);
    assert_eq!(server.stats().requests, 14);
    assert_eq!(client.stats().completed, 14);
}

#[test]
fn a_long_list_is_truncated_and_continues() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let mut model = Model::default();
    for i in 0..300u16 {
        let mut key = [b'k'; KV_MAX_KEY];
        key[..2].copy_from_slice(&i.to_be_bytes());
        model.map.insert(key.to_vec(), vec![]);
    }
    let list = |start_after| Request::List {
        prefix: b"",
        start_after,
    };
    let (r, body) = call(&mut server, &mut client, &mut model, &list(b""));
    assert!(r.truncated());
    let first: Vec<Vec<u8>> = list_keys(&body).map(<[u8]>::to_vec).collect();
    // 256 entries of 1 + 255 bytes fill the value area exactly.
    assert_eq!((first.len(), r.len), (256, KV_MAX_VALUE));
    assert_eq!(check_list(&body), Ok(256));
    let last = first.last().unwrap().clone();
    let (r, body) = call(&mut server, &mut client, &mut model, &list(&last));
    assert!(!r.truncated());
    let rest: Vec<Vec<u8>> = list_keys(&body).map(<[u8]>::to_vec).collect();
    assert_eq!(rest.len(), 44);
    let all: Vec<Vec<u8>> = first.into_iter().chain(rest).collect();
    assert_eq!(all, model.map.keys().cloned().collect::<Vec<_>>());
}

#[test]
fn the_list_helpers_refuse_what_is_not_keys() {
    let mut out = [0u8; 10];
    let mut writer = ListWriter::new(&mut out);
    assert!(!writer.push(b""), "not a key");
    assert!(!writer.push(&[1; 256]), "not a key");
    assert!(!writer.truncated());
    assert!(writer.push(b"abcd"));
    assert!(!writer.push(b"efghi"), "does not fit");
    assert!(!writer.push(b"j"), "no more once truncated");
    assert_eq!((writer.keys(), writer.truncated()), (1, true));
    assert_eq!(writer.flags(), KV_FLAG_TRUNCATED);
    assert_eq!(writer.body(), b"\x04abcd");
    for bad in [&b"\x00"[..], b"\x03ab", b"\x01a\x00", b"\x01a\x02b"] {
        assert_eq!(check_list(bad), Err(Malformed::ListBody), "{bad:?}");
    }
    assert_eq!(check_list(b""), Ok(0));
    assert_eq!(list_keys(b"\x01a\x05b").collect::<Vec<_>>(), [b"a"]);
}

#[test]
fn submit_never_blocks_and_refuses_what_the_protocol_cannot_carry() {
    let mut mem = memory();
    let (region, mut server, mut client) = open(&mut mem);
    let long = [1u8; 256];
    let huge = vec![0u8; KV_MAX_VALUE + 1];
    for (request, why) in [
        (Request::Get { key: b"" }, Malformed::KeyLength(0)),
        (Request::Delete { key: &long }, Malformed::KeyLength(256)),
        (
            Request::Put {
                key: b"k",
                value: &huge,
            },
            Malformed::ValueLength(65537),
        ),
        (
            Request::List {
                prefix: &long,
                start_after: b"",
            },
            Malformed::KeyLength(256),
        ),
        (
            Request::List {
                prefix: b"",
                start_after: &long,
            },
            Malformed::ValueLength(256),
        ),
    ] {
        assert_eq!(client.submit(&request), Err(KvError::Invalid(why)));
    }
    assert_eq!(region.requests().producer().in_flight(), Ok(0));
    let get = Request::Get { key: b"k" };
    for _ in 0..4 {
        client.submit(&get).unwrap();
    }
    assert_eq!(client.submit(&get), Err(KvError::NoBuffer));
    assert_eq!(serve(&mut server, &mut Model::default()).len(), 4);
    let mut out = [0u8; 8];
    for _ in 0..4 {
        assert!(client.poll(&mut out).unwrap().is_some());
    }
    assert_eq!(client.free_buffers(), 4);
    client.submit(&get).unwrap();
}

/// A change a test makes to a request after the client wrote it.
enum Tamper {
    /// Bytes at this offset of the buffer.
    Bytes(usize, Vec<u8>),
    /// The descriptor's length.
    Len(u32),
}

#[test]
fn every_malformed_field_is_answered_bad_request() {
    let word = |at: usize, v: u32| Tamper::Bytes(at, v.to_ne_bytes().to_vec());
    let get = Owned::Get(b"key".to_vec());
    let put = Owned::Put(b"key".to_vec(), b"value".to_vec());
    let list = Owned::List(vec![], vec![]);
    let cases = [
        (&get, word(0, 2), Malformed::Version(2), Status::BadVersion),
        (&get, word(4, 0), Malformed::Op(0), Status::BadRequest),
        (&get, word(4, 9), Malformed::Op(9), Status::BadRequest),
        (
            &get,
            word(16, 0),
            Malformed::KeyLength(0),
            Status::BadRequest,
        ),
        (
            &list,
            word(16, 256),
            Malformed::KeyLength(256),
            Status::BadRequest,
        ),
        (
            &get,
            word(20, 1),
            Malformed::ValueLength(1),
            Status::BadRequest,
        ),
        (
            &put,
            word(20, 65537),
            Malformed::ValueLength(65537),
            Status::BadRequest,
        ),
        (
            &list,
            word(20, 256),
            Malformed::ValueLength(256),
            Status::BadRequest,
        ),
        (
            &put,
            word(20, 4),
            Malformed::Length(325),
            Status::BadRequest,
        ),
        (
            &put,
            Tamper::Len(330),
            Malformed::Length(330),
            Status::BadRequest,
        ),
        (&get, word(24, 1), Malformed::Status(1), Status::BadRequest),
        (&get, word(28, 1), Malformed::Flags(1), Status::BadRequest),
        (&get, word(60, 1), Malformed::Reserved, Status::BadRequest),
        (
            &get,
            Tamper::Len(63),
            Malformed::Short(63),
            Status::BadRequest,
        ),
        (
            &get,
            Tamper::Len(0),
            Malformed::Short(0),
            Status::BadRequest,
        ),
    ];
    for (request, tamper, why, status) in cases {
        let mut mem = memory();
        let (region, mut server, mut client) = open(&mut mem);
        let ticket = client.submit(&request.request()).unwrap();
        match tamper {
            Tamper::Bytes(at, bytes) => region.data().buffer(0).unwrap().write(at, &bytes).unwrap(),
            Tamper::Len(len) => region.requests().shared().slots[0]
                .len
                .store(len, Ordering::Relaxed),
        }
        let seen = serve(&mut server, &mut Model::default());
        assert_eq!(seen, [Err(Rejected::Malformed(why))], "{why:?}");
        assert_eq!(server.stats().malformed, 1);
        assert_eq!(server.held(), 0, "answered");
        let mut out = [0u8; 16];
        match (client.poll(&mut out), why) {
            // The store echoes what it read: an op or id the client never sent.
            (Err(KvError::BadResponse { ticket: t, why: w }), Malformed::Op(_)) => {
                assert_eq!((t, w), (ticket, why));
            }
            (Err(KvError::BadResponse { ticket: t, why: w }), Malformed::Short(_)) => {
                assert_eq!(t, ticket);
                assert!(matches!(w, Malformed::RequestId { got: 0, .. }));
            }
            (Ok(Some((t, r))), _) => assert_eq!((t, r.status, r.len), (ticket, status, 0)),
            (other, _) => panic!("{why:?}: {other:?}"),
        }
        assert_eq!(client.free_buffers(), 4);
    }
}

#[test]
fn bad_descriptors_are_dropped_unanswered() {
    let mut mem = memory();
    let (region, mut server, mut client) = open(&mut mem);
    let get = Request::Get { key: b"k" };
    let slots = &region.requests().shared().slots;
    let head = &region.requests().shared().producer.value;
    // Four requests, then the test rewrites their descriptors.
    for _ in 0..4 {
        client.submit(&get).unwrap();
    }
    let b = u64::from(KV_BUF_SIZE);
    for (slot, (offset, len)) in
        slots
            .iter()
            .zip([(4 * b, 320), (8, 320), (b, KV_BUF_SIZE + 1), (b, 320)])
    {
        slot.offset.store(offset, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
    }
    let seen = serve(&mut server, &mut Model::default());
    assert!(matches!(
        seen[..],
        [
            Err(Rejected::Corrupt(Corrupt::Offset(_))),
            Err(Rejected::Corrupt(Corrupt::Offset(_))),
            Err(Rejected::Corrupt(Corrupt::Length(_))),
            Ok(_),
        ]
    ));
    // The same buffer twice, while the store still holds it.
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    slots[0].offset.store(0, Ordering::Relaxed);
    slots[0].len.store(320, Ordering::Relaxed);
    slots[1].offset.store(0, Ordering::Relaxed);
    slots[1].len.store(320, Ordering::Relaxed);
    head.store(6, Ordering::Relaxed);
    let (token, _) = server.next(&mut scratch).unwrap().unwrap();
    let dup = server.next(&mut scratch).unwrap();
    assert_eq!(dup, Err(Rejected::Duplicate(Desc::new(0, 320))));
    assert!(server.next(&mut scratch).is_none());
    assert_eq!(server.held(), 1);
    server.reply(token, Status::NotFound, 0, &[]).unwrap();
    assert_eq!(server.stats().dropped, 4);
    // An impossible index: nothing taken, nothing reported, no spinning.
    head.store(100, Ordering::Relaxed);
    assert!(server.next(&mut scratch).is_none());
    assert!(server.ready_to_wait(), "nothing the store can do");
    assert_eq!(server.stats().stuck, 1);
}

#[test]
fn a_short_scratch_is_the_stores_error() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let ticket = client
        .submit(&Request::Put {
            key: b"k",
            value: &[7; 100],
        })
        .unwrap();
    let mut scratch = [0u8; 300];
    let next = server.next(&mut scratch);
    assert_eq!(next, Some(Err(Rejected::ScratchTooSmall(356))));
    let mut out = [0u8; 8];
    let (t, r) = client.poll(&mut out).unwrap().unwrap();
    assert_eq!((t, r.status), (ticket, Status::StoreError));
}

#[test]
fn the_store_refuses_to_send_an_answer_that_does_not_fit() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    let huge = vec![0u8; KV_MAX_VALUE + 1];
    let cases: [(Request<'_>, Status, u32, &[u8], Malformed); 6] = [
        (
            Request::Get { key: b"k" },
            Status::Ok,
            KV_FLAG_CREATED,
            b"v",
            Malformed::Flags(1),
        ),
        (
            Request::Delete { key: b"k" },
            Status::Ok,
            0,
            b"v",
            Malformed::ValueLength(1),
        ),
        (
            Request::Get { key: b"k" },
            Status::NotFound,
            0,
            b"v",
            Malformed::ValueLength(1),
        ),
        (
            Request::Get { key: b"k" },
            Status::Ok,
            0,
            &huge,
            Malformed::ValueLength(65537),
        ),
        (
            Request::List {
                prefix: b"",
                start_after: b"",
            },
            Status::Ok,
            0,
            b"\x05ab",
            Malformed::ListBody,
        ),
        (
            Request::Put {
                key: b"k",
                value: b"",
            },
            Status::Ok,
            KV_FLAG_TRUNCATED,
            b"",
            Malformed::Flags(2),
        ),
    ];
    for (request, status, flags, body, why) in cases {
        let ticket = client.submit(&request).unwrap();
        let (token, _) = server.next(&mut scratch).unwrap().unwrap();
        assert_eq!(
            server.reply(token, status, flags, body),
            Err(ReplyError::Invalid(why))
        );
        let mut out = vec![0u8; KV_MAX_VALUE];
        let (t, r) = client.poll(&mut out).unwrap().unwrap();
        assert_eq!((t, r.status, r.len), (ticket, Status::StoreError, 0));
    }
}

/// What a forged response changes.
enum Forge {
    Header(KvHeader),
    Len(u32),
}

#[test]
fn the_client_refuses_every_response_that_does_not_fit_its_request() {
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    let good = |op: Op, id| KvHeader {
        version: KV_PROTOCOL_VERSION,
        op: op as u32,
        request_id: id,
        status: Status::Ok as u32,
        ..KvHeader::default()
    };
    let with = |op, f: &dyn Fn(&mut KvHeader)| {
        let mut h = good(op, 1);
        f(&mut h);
        Forge::Header(h)
    };
    let cases = [
        (
            Op::Get,
            with(Op::Get, &|h| h.request_id = 7),
            Malformed::RequestId {
                expected: 1,
                got: 7,
            },
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.status = 0),
            Malformed::Status(0),
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.status = 99),
            Malformed::Status(99),
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.version = 3),
            Malformed::Version(3),
        ),
        (Op::Get, with(Op::Get, &|h| h.op = 2), Malformed::Op(2)),
        (
            Op::Get,
            with(Op::Get, &|h| h.key_len = 1),
            Malformed::KeyLength(1),
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.reserved[7] = 1),
            Malformed::Reserved,
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.flags = KV_FLAG_CREATED),
            Malformed::Flags(1),
        ),
        (
            Op::Put,
            with(Op::Put, &|h| h.flags = KV_FLAG_CREATED | 8),
            Malformed::Flags(9),
        ),
        (
            Op::Get,
            with(Op::Get, &|h| h.value_len = 5),
            Malformed::Length(320),
        ),
        (Op::Get, Forge::Len(319), Malformed::Length(319)),
        (
            Op::Get,
            Forge::Len(KV_BUF_SIZE + 1),
            Malformed::Length(KV_BUF_SIZE + 1),
        ),
    ];
    for (op, forge, why) in cases {
        let mut mem = memory();
        let (region, mut server, mut client) = open(&mut mem);
        let request = match op {
            Op::Put => Request::Put {
                key: b"k",
                value: b"",
            },
            _ => Request::Get { key: b"k" },
        };
        let ticket = client.submit(&request).unwrap();
        let (_token, _) = server.next(&mut scratch).unwrap().unwrap();
        let (header, len) = match forge {
            Forge::Header(h) => (h, 320),
            Forge::Len(len) => (good(op, 1), len),
        };
        let buffer = region.data().buffer(0).unwrap();
        buffer.write(0, header.as_bytes()).unwrap();
        let slot = &region.responses().shared().slots[0];
        slot.offset.store(0, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        region
            .responses()
            .shared()
            .producer
            .value
            .store(1, Ordering::Release);
        let mut out = [0u8; 64];
        assert_eq!(
            client.poll(&mut out),
            Err(KvError::BadResponse { ticket, why }),
            "{why:?}"
        );
        assert_eq!(client.free_buffers(), 4, "the buffer is the client's again");
        assert_eq!(client.stats().bad_responses, 1);
    }
}

#[test]
fn the_client_drops_buffers_it_did_not_send_and_results_it_cannot_hold() {
    let mut mem = memory();
    let (region, mut server, mut client) = open(&mut mem);
    let mut model = Model::default();
    model.map.insert(b"k".to_vec(), vec![9; 100]);
    let ticket = client.submit(&Request::Get { key: b"k" }).unwrap();
    serve(&mut server, &mut model);
    let mut small = [0u8; 99];
    assert_eq!(
        client.poll(&mut small),
        Err(KvError::OutputTooSmall {
            ticket,
            needed: 100
        })
    );
    assert_eq!(client.free_buffers(), 4);
    // The store hands back buffer 2, which the client never sent, then a foreign offset.
    let responses = region.responses().shared();
    let b = u64::from(KV_BUF_SIZE);
    for (slot, offset) in responses.slots[1..3].iter().zip([2 * b, 3]) {
        slot.offset.store(offset, Ordering::Relaxed);
        slot.len.store(320, Ordering::Relaxed);
    }
    responses.producer.value.store(3, Ordering::Release);
    assert_eq!(
        client.poll(&mut small),
        Err(KvError::NotInFlight(Desc::new(2 * b, 320)))
    );
    assert!(matches!(
        client.poll(&mut small),
        Err(KvError::Corrupt(Corrupt::Offset(_)))
    ));
    assert_eq!(client.poll(&mut small), Ok(None));
    // A descriptor too long for a buffer with no request in it is dropped too.
    responses.slots[3].offset.store(b, Ordering::Relaxed);
    responses.slots[3]
        .len
        .store(KV_BUF_SIZE + 8, Ordering::Relaxed);
    responses.producer.value.store(4, Ordering::Release);
    assert!(matches!(
        client.poll(&mut small),
        Err(KvError::Corrupt(Corrupt::Length(_)))
    ));
    // An impossible index: nothing to take, no spinning.
    responses.producer.value.store(400, Ordering::Release);
    assert_eq!(client.poll(&mut small), Ok(None));
    assert!(client.ready_to_wait());
    assert_eq!(client.stats().dropped, 3);
    assert_eq!(client.stats().stuck, 1);
    assert_eq!(client.free_buffers(), 4);
}

#[test]
fn a_store_restart_voids_every_ticket_and_a_new_session_starts_clean() {
    let mut mem = memory();
    let (region, mut server, mut client) = open(&mut mem);
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    let get = Request::Get { key: b"k" };
    client.submit(&get).unwrap();
    client.submit(&get).unwrap();
    let (token, _) = server.next(&mut scratch).unwrap().unwrap();
    server.restart();
    assert_eq!(region.store_control().epoch.load(Ordering::Relaxed), 2);
    assert_eq!(
        server.reply(token, Status::Ok, 0, b""),
        Err(ReplyError::Stale)
    );
    assert!(server.notify_needed(), "the store tells the client");
    // The restarted store accepts the session the client had asked for before: the epoch
    // tells the client it is not the one it had.
    assert!(serve(&mut server, &mut Model::default()).is_empty());
    assert!(!client.ready_to_wait(), "the client must look");
    assert_eq!(client.poll(&mut []), Err(KvError::SessionLost));
    assert_eq!(client.poll(&mut []), Ok(None), "lost once");
    assert_eq!(client.submit(&get), Err(KvError::NotReady));
    assert_eq!(client.connect(), Ok(Link::Requested));
    assert!(serve(&mut server, &mut Model::default()).is_empty());
    assert_eq!(client.connect(), Ok(Link::Open));
    assert_eq!(client.free_buffers(), 4);
    let mut model = Model::default();
    let (r, _) = call(&mut server, &mut client, &mut model, &get);
    assert_eq!(r.status, Status::NotFound);
    assert_eq!(client.stats().sessions_lost, 1);

    // A restart the client sees in connect (and one in submit).
    server.restart();
    assert_eq!(client.connect(), Err(KvError::SessionLost));
    assert_eq!(client.connect(), Ok(Link::Requested));
    serve(&mut server, &mut model);
    assert_eq!(client.connect(), Ok(Link::Open));
    server.restart();
    assert_eq!(client.submit(&get), Err(KvError::SessionLost));
    // While the store sets the region up, there is no store.
    region.store_control().magic.store(0, Ordering::Relaxed);
    assert_eq!(client.connect(), Err(KvError::NotReady));
}

#[test]
fn a_client_that_gives_up_takes_every_buffer_back_through_a_new_session() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    let get = Request::Get { key: b"k" };
    for _ in 0..4 {
        client.submit(&get).unwrap();
    }
    // The store takes two and sits on them.
    let (t1, _) = server.next(&mut scratch).unwrap().unwrap();
    let (t2, _) = server.next(&mut scratch).unwrap().unwrap();
    assert_eq!(server.held(), 2);
    client.close();
    assert!(!client.is_open());
    assert_eq!(client.connect(), Ok(Link::Requested));
    assert_eq!(client.connect(), Ok(Link::Pending));
    // The store accepts: it forgets what it held and the requests still queued.
    assert!(server.next(&mut scratch).is_none());
    assert_eq!(server.held(), 0);
    assert_eq!(server.reply(t1, Status::Ok, 0, b""), Err(ReplyError::Stale));
    assert_eq!(server.reply(t2, Status::Ok, 0, b""), Err(ReplyError::Stale));
    assert_eq!(client.connect(), Ok(Link::Open));
    assert_eq!(client.free_buffers(), 4);
    let (r, _) = call(&mut server, &mut client, &mut Model::default(), &get);
    assert_eq!(r.status, Status::NotFound);
    assert_eq!(server.stats().sessions, 2);
}

#[test]
fn each_side_notifies_only_when_the_other_asked() {
    let mut mem = memory();
    let (_region, mut server, mut client) = open(&mut mem);
    let get = Request::Get { key: b"k" };
    client.submit(&get).unwrap();
    assert!(!client.notify_needed(), "the store did not ask");
    assert!(!server.ready_to_wait(), "a request is waiting");
    serve(&mut server, &mut Model::default());
    assert!(!server.notify_needed(), "the client did not ask");
    assert!(!client.ready_to_wait(), "a response is waiting");
    client.poll(&mut []).unwrap().unwrap();
    assert!(client.ready_to_wait());
    assert!(server.ready_to_wait());
    client.submit(&get).unwrap();
    assert!(client.notify_needed());
    assert!(!client.notify_needed(), "once per request for a signal");
    serve(&mut server, &mut Model::default());
    assert!(server.notify_needed());
    assert!(!server.notify_needed());
}

/// One write a hostile peer makes: any word of the control lines or queues (padding aside,
/// which nothing reads), or any bytes of the data region.
#[derive(Clone, Debug)]
enum Poke {
    Store(usize, u32),
    Client(u32),
    Queue(bool, usize, u64),
    Data(u32, usize, Vec<u8>),
}

fn poke() -> impl Strategy<Value = Poke> {
    // Mostly values that pass the first checks: small numbers, lengths around the areas'
    // sizes, offsets of buffers.
    let small = prop_oneof![
        0..8u64,
        Just(320),
        Just(u64::from(KV_BUF_SIZE)),
        (0..5u64).prop_map(|k| k * u64::from(KV_BUF_SIZE)),
        any::<u64>()
    ];
    let at = prop_oneof![0..64usize, 0..KV_BUF_SIZE as usize];
    // Control-line pokes end the session nearly always: rarer, so that the runs get deep.
    prop_oneof![
        1 => (0..4usize, small.clone()).prop_map(|(w, v)| Poke::Store(w, v as u32)),
        1 => small.clone().prop_map(|v| Poke::Client(v as u32)),
        6 => (any::<bool>(), 0..20usize, small).prop_map(|(r, w, v)| Poke::Queue(r, w, v)),
        8 => (
            0..4u32,
            at,
            proptest::collection::vec(prop_oneof![0..8u8, any::<u8>()], 1..9)
        )
            .prop_map(|(b, at, bytes)| Poke::Data(b, at, bytes)),
    ]
}

fn apply(region: &KvRegion<'_>, poke: &Poke) {
    let r = Ordering::Relaxed;
    match *poke {
        Poke::Store(word, v) => {
            let s = region.store_control();
            [&s.magic, &s.version, &s.epoch, &s.accepted][word].store(v, r);
        }
        Poke::Client(v) => region.client_control().requested.store(v, r),
        Poke::Queue(responses, word, v) => {
            let q = if responses {
                region.responses()
            } else {
                region.requests()
            };
            let q = q.shared();
            let v32 = v as u32;
            match word {
                0 => q.header.magic.store(v32, r),
                1 => q.header.version.store(v32, r),
                2 => q.header.capacity.store(v32, r),
                3 => q.header.buffers.store(v32, r),
                4 => q.header.buf_size.store(v32, r),
                5 => q.producer.value.store(v32, r),
                6 => q.consumer.value.store(v32, r),
                7 => q.signal.wanted.store(v32, r),
                w => {
                    let slot = &q.slots[(w - 8) / 3];
                    match (w - 8) % 3 {
                        0 => slot.offset.store(v, r),
                        1 => slot.len.store(v32, r),
                        _ => slot.flags.store(v32, r),
                    }
                }
            }
        }
        Poke::Data(buffer, at, ref bytes) => {
            let window = region.data().buffer(buffer).unwrap();
            let at = at.min(window.len() - bytes.len());
            window.write(at, bytes).unwrap();
        }
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(b'a'..b'd', 1..4),
        proptest::collection::vec(any::<u8>(), 1..=KV_MAX_KEY),
    ]
}

fn request() -> impl Strategy<Value = Owned> {
    let value = proptest::collection::vec(any::<u8>(), 0..64);
    let prefix = proptest::collection::vec(b'a'..b'd', 0..3);
    prop_oneof![
        key().prop_map(Owned::Get),
        (key(), value).prop_map(|(k, v)| Owned::Put(k, v)),
        key().prop_map(Owned::Delete),
        (prefix.clone(), prefix).prop_map(|(p, s)| Owned::List(p, s)),
    ]
}

/// A step of the honest model test.
#[derive(Clone, Debug)]
enum Step {
    Submit(Owned),
    Serve,
    Poll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => request().prop_map(Step::Submit),
        1 => Just(Step::Serve),
        1 => Just(Step::Poll),
    ]
}

/// A step of the hostile tests: the honest side's calls, the peer's pokes, or the peer
/// starting over.
#[derive(Clone, Debug)]
enum Hostile {
    Pokes(Vec<Poke>),
    Submit(Owned),
    Serve,
    Poll,
    Connect,
    /// Connect, let the store accept, connect again.
    Reconnect,
    Close,
    Restart,
    Signals,
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        4 => proptest::collection::vec(poke(), 1..4).prop_map(Hostile::Pokes),
        3 => request().prop_map(Hostile::Submit),
        3 => Just(Hostile::Serve),
        3 => Just(Hostile::Poll),
        1 => Just(Hostile::Connect),
        2 => Just(Hostile::Reconnect),
        1 => Just(Hostile::Close),
        1 => Just(Hostile::Restart),
        1 => Just(Hostile::Signals),
    ]
}

proptest! {
    /// Honest client and store: every request arrives as sent, every answer comes back to
    /// its ticket as sent, and every buffer is the client's, in flight, or the store's.
    #[test]
    fn honest_sides_deliver_every_answer_to_its_request(
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let mut mem = memory();
        let (_region, mut server, mut client) = open(&mut mem);
        let mut model = Model::default();
        let mut sent: HashMap<u64, Owned> = HashMap::new();
        let mut answered: HashMap<u64, (Status, u32, Vec<u8>)> = HashMap::new();
        let mut out = vec![0u8; KV_MAX_VALUE];
        for step in steps {
            match step {
                Step::Submit(request) => match client.submit(&request.request()) {
                    Ok(ticket) => {
                        prop_assert!(sent.insert(ticket.id(), request).is_none());
                    }
                    Err(KvError::NoBuffer) => prop_assert_eq!(client.in_flight(), 4),
                    Err(e) => prop_assert!(false, "submit: {:?}", e),
                },
                Step::Serve => for seen in serve(&mut server, &mut model) {
                    let Ok((id, request, answer)) = seen else {
                        return Err(TestCaseError::fail(std::format!("{seen:?}")));
                    };
                    prop_assert_eq!(sent.get(&id), Some(&request));
                    answered.insert(id, answer);
                },
                Step::Poll => while let Some((ticket, r)) = client.poll(&mut out).unwrap() {
                    let (status, flags, body) = answered.remove(&ticket.id()).unwrap();
                    sent.remove(&ticket.id());
                    prop_assert_eq!((r.status, r.flags), (status, flags));
                    prop_assert_eq!(&out[..r.len], &body[..]);
                },
            }
            prop_assert_eq!(server.held(), 0);
            prop_assert_eq!(client.free_buffers() + client.in_flight(), 4);
            prop_assert_eq!(client.in_flight() as usize, sent.len());
        }
        let stats = server.stats();
        prop_assert_eq!((stats.malformed, stats.dropped, stats.lost), (0, 0, 0));
    }

    /// A hostile client (an honest one plus writes to anything in the region between the
    /// store's steps, session requests included): the store never panics, never takes more
    /// than the queue holds in one drain, hands its caller only requests within the limits,
    /// never holds more than the buffers, and its answers fail only as lost.
    #[test]
    fn a_hostile_client_cannot_break_the_store(
        steps in proptest::collection::vec(hostile(), 0..120),
    ) {
        let mut mem = memory();
        let (region, mut server, mut client) = open(&mut mem);
        let mut model = Model::default();
        let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
        let mut out = vec![0u8; KV_MAX_VALUE];
        for step in steps {
            match step {
                Hostile::Pokes(pokes) => pokes.iter().for_each(|p| apply(&region, p)),
                Hostile::Submit(request) => { let _ = client.submit(&request.request()); }
                Hostile::Serve => {
                    let mut taken = 0;
                    while let Some(next) = server.next(&mut scratch) {
                        taken += 1;
                        prop_assert!(taken <= KV_QUEUE_SLOTS, "more than the queue holds");
                        prop_assert!(server.held() <= KV_BUFFERS);
                        if let Ok((token, request)) = next {
                            prop_assert!(request.check().is_ok());
                            prop_assert_eq!(token.op(), request.op());
                            let (status, flags, body) = model.handle(&request);
                            match server.reply(token, status, flags, &body) {
                                Ok(()) | Err(ReplyError::Lost(_)) => {}
                                Err(e) => prop_assert!(false, "reply: {:?}", e),
                            }
                        }
                    }
                    prop_assert_eq!(server.held(), 0);
                }
                Hostile::Poll => for _ in 0..=KV_QUEUE_SLOTS + 1 {
                    if let Ok(None) = client.poll(&mut out) { break; }
                },
                Hostile::Connect => { let _ = client.connect(); }
                Hostile::Reconnect => {
                    let _ = client.connect();
                    serve_anyhow(&mut server, &mut model);
                    let _ = client.connect();
                }
                Hostile::Close => client.close(),
                Hostile::Restart => server.restart(),
                Hostile::Signals => {
                    let _ = (server.notify_needed(), server.ready_to_wait());
                }
            }
        }
        prop_assert!(server.held() <= KV_BUFFERS);
    }

    /// A hostile store (an honest one plus writes to anything in the region between the
    /// client's steps, restarts included): the client never panics, never takes more than
    /// the queue holds in one drain, returns each ticket it issued at most once (and none
    /// from a lost session), results only within the caller's buffer and lists only well
    /// formed, and always has each buffer free or in flight.
    #[test]
    fn a_hostile_store_cannot_break_the_client(
        steps in proptest::collection::vec(hostile(), 0..120),
    ) {
        let mut mem = memory();
        let (region, mut server, mut client) = open(&mut mem);
        let mut model = Model::default();
        let mut out = vec![0u8; 1024];
        let mut outstanding: BTreeSet<Ticket> = BTreeSet::new();
        for step in steps {
            match step {
                Hostile::Pokes(pokes) => pokes.iter().for_each(|p| apply(&region, p)),
                Hostile::Submit(request) => match client.submit(&request.request()) {
                    Ok(ticket) => prop_assert!(outstanding.insert(ticket)),
                    Err(KvError::SessionLost) => outstanding.clear(),
                    Err(_) => {}
                },
                Hostile::Serve => { serve_anyhow(&mut server, &mut model); }
                Hostile::Poll => {
                    let mut taken = 0;
                    loop {
                        taken += 1;
                        prop_assert!(taken <= KV_QUEUE_SLOTS + 2, "more than the queue holds");
                        match client.poll(&mut out) {
                            Ok(None) => break,
                            Ok(Some((ticket, r))) => {
                                prop_assert!(outstanding.remove(&ticket), "{:?} not in flight", ticket);
                                prop_assert!(r.len <= out.len());
                                prop_assert_eq!(check_answer(r.op, r.status, r.flags, r.len), Ok(()));
                                if r.op == Op::List && r.status == Status::Ok {
                                    prop_assert!(check_list(&out[..r.len]).is_ok());
                                }
                            }
                            Err(KvError::BadResponse { ticket, .. } | KvError::OutputTooSmall { ticket, .. }) => {
                                prop_assert!(outstanding.remove(&ticket), "{:?} not in flight", ticket);
                            }
                            Err(KvError::SessionLost) => outstanding.clear(),
                            Err(KvError::Corrupt(_) | KvError::NotInFlight(_)) => {}
                            Err(e) => prop_assert!(false, "poll: {:?}", e),
                        }
                    }
                }
                Hostile::Connect => match client.connect() {
                    Err(KvError::SessionLost) => outstanding.clear(),
                    Ok(Link::Open) => {}
                    _ => prop_assert!(outstanding.is_empty()),
                },
                Hostile::Reconnect => {
                    for _ in 0..2 {
                        match client.connect() {
                            Err(KvError::SessionLost) => outstanding.clear(),
                            Ok(Link::Open) => {}
                            _ => prop_assert!(outstanding.is_empty()),
                        }
                        serve_anyhow(&mut server, &mut model);
                    }
                }
                Hostile::Close => { client.close(); outstanding.clear(); }
                Hostile::Restart => server.restart(),
                Hostile::Signals => {
                    let _ = (client.notify_needed(), client.ready_to_wait());
                }
            }
            if client.is_open() {
                prop_assert_eq!(client.free_buffers() + client.in_flight(), 4);
                prop_assert_eq!(client.in_flight() as usize, outstanding.len());
            } else {
                prop_assert_eq!(client.in_flight(), 0);
            }
        }
    }
}

/// The honest store's drain, whatever the pokes did to it.
fn serve_anyhow(server: &mut KvServer<'_>, model: &mut Model) {
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    for _ in 0..=KV_QUEUE_SLOTS {
        match server.next(&mut scratch) {
            None => return,
            Some(Ok((token, request))) => {
                let (status, flags, body) = model.handle(&request);
                let _ = server.reply(token, status, flags, &body);
            }
            Some(Err(_)) => {}
        }
    }
    panic!("the store took more than the queue holds");
}
