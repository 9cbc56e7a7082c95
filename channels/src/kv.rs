//! Key-value requests and responses between the storage replica's store and its clients on
//! other replicas, over one shared region per client (see `docs/kv-protocol.md`).
//!
//! # Shape
//!
//! Each client (the `io` PD, test PDs) shares one region with the store ([`KV_REGION_BYTES`]
//! long, page aligned) and a notification channel in each direction. The region holds
//! [`KvQueues`] at its start: two control lines (the store's, the client's) for the session
//! handshake, a request queue (client → store) and a response queue (store → client), each a
//! [`SharedQueue`] of [`KV_QUEUE_SLOTS`] descriptors. At [`KV_DATA_OFFSET`] follows a data
//! region of [`KV_BUFFERS`] buffers of [`KV_BUF_SIZE`] bytes ([`KV_GEOMETRY`]): a 64-byte
//! [`KvHeader`], a 256-byte key area, a value area of [`KV_MAX_VALUE`] bytes.
//!
//! A request is one of the client's buffers handed over on the request queue; its answer is
//! the same buffer handed back on the response queue, its header rewritten (status, flags,
//! result length, the request id echoed) and the result (a value, or a list of keys) in the
//! value area. The client owns every buffer while it has no request in flight, so it never
//! blocks: with all four in flight, [`KvClient::submit`] fails with [`KvError::NoBuffer`].
//!
//! # Sessions
//!
//! The store sets the region up ([`KvRegion::init`]): both queue headers, then its control
//! line, its magic stored last. Until then a client's [`KvRegion::attach`] fails with
//! [`KvError::NotReady`], which is how it tells a store that has not come up yet from one that
//! has. The client then asks for a *session* ([`KvClient::connect`]): it writes a new session
//! number to its control line and notifies the store; the store, on its next
//! [`KvServer::next`], forgets every buffer it holds, invalidates every [`Token`] it handed
//! out, zeroes both queues' indices and publishes the number as accepted; the client, seeing
//! its number accepted under an unchanged store epoch, owns all buffers and starts with empty
//! queues. The same handshake recovers from everything that loses track of buffers:
//!
//! - a store that restarts runs [`KvRegion::init`] again, which bumps the epoch: the client's
//!   next call sees the epoch change, returns [`KvError::SessionLost`] (every ticket in flight
//!   is void: its request may or may not have been carried out) and connects again;
//! - a client that restarts, or gives up on requests the store never answered
//!   ([`KvClient::close`]), connects again: the store drops what it held.
//!
//! # What each side checks
//!
//! Both sides copy what they read from shared memory before looking at it, once: the store
//! copies a request's header into a local and its key and value into the caller's scratch
//! buffer, then parses only the copies; the client copies a response's header and value out
//! the same way. Every descriptor is checked against [`KV_GEOMETRY`] and a [`Ledger`] of the
//! buffers the side owns. The store answers a malformed request in a valid buffer with
//! [`Status::BadRequest`] (or [`Status::BadVersion`]) and drops a descriptor that names no
//! buffer, or one it already holds, counting it. The client checks that a response comes in a
//! buffer it has in flight and that everything in it (request id, op, version, status, flags,
//! lengths, a list's encoding) fits the request; a response that does not fails that request
//! ([`KvError::BadResponse`]) and the buffer is the client's again. Neither side panics,
//! loops or reads out of bounds whatever the other writes; a hostile peer costs only its own
//! requests.
//!
//! # Signalling
//!
//! As sDDF, through the queues' signal flags: a side notifies its peer after enqueueing only
//! if the peer asked ([`KvClient::notify_needed`], [`KvServer::notify_needed`]), and asks
//! before it waits ([`KvClient::ready_to_wait`], [`KvServer::ready_to_wait`]). Outside the
//! queues: the client always notifies after requesting a session ([`Link::Requested`]), and
//! the store always notifies after setting the region up and after accepting a session.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, Ordering, fence};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::queue::{
    Consumer, Corrupt, DataRegion, Desc, Geometry, Ledger, Producer, QUEUE_MAGIC, QUEUE_VERSION,
    Queue, QueueError, SharedQueue, Window,
};

/// Version of this protocol: the header's meaning, the layout of the region, the session
/// handshake. Any change to one of them changes it.
pub const KV_PROTOCOL_VERSION: u32 = 1;
/// Magic in the store's control line, stored last when the store sets the region up.
pub const KV_MAGIC: u32 = 0x4154_4B56; // "ATKV"
/// Longest key (a key has 1 to 255 bytes).
pub const KV_MAX_KEY: usize = 255;
/// Longest value.
pub const KV_MAX_VALUE: usize = 65536;
/// Bytes of a buffer's header ([`KvHeader`]).
pub const KV_HEADER_BYTES: usize = 64;
/// Where a buffer's key area starts (a key, or a LIST's prefix).
pub const KV_KEY_OFFSET: usize = KV_HEADER_BYTES;
/// Bytes of a buffer's key area.
pub const KV_KEY_AREA: usize = 256;
/// Where a buffer's value area starts (a PUT's value, a LIST's `start_after` key, a GET's
/// value or a LIST's keys in a response).
pub const KV_VALUE_OFFSET: usize = KV_KEY_OFFSET + KV_KEY_AREA;
/// Bytes per buffer: header, key area, value area.
pub const KV_BUF_SIZE: u32 = (KV_VALUE_OFFSET + KV_MAX_VALUE) as u32;
/// Buffers in a client's data region: its requests in flight at most.
pub const KV_BUFFERS: u32 = 4;
/// Descriptor slots per queue: room for every buffer, so an honest side never finds a queue
/// full.
pub const KV_QUEUE_SLOTS: usize = 4;
/// Where the data region starts in the shared region (page aligned).
pub const KV_DATA_OFFSET: usize = 4096;
/// Bytes of the data region.
pub const KV_DATA_BYTES: usize = KV_BUFFERS as usize * KV_BUF_SIZE as usize;
/// Bytes of the whole shared region, rounded up to 4 KiB pages: the size of its
/// `memory_region`.
pub const KV_REGION_BYTES: usize = (KV_DATA_OFFSET + KV_DATA_BYTES).next_multiple_of(4096);
/// Scratch bytes [`KvServer::next`] needs for any request: a buffer without its header.
pub const KV_SCRATCH_BYTES: usize = KV_BUF_SIZE as usize - KV_HEADER_BYTES;
/// The data region's geometry.
pub const KV_GEOMETRY: Geometry = match Geometry::new(KV_BUFFERS, KV_BUF_SIZE) {
    Ok(geometry) => geometry,
    Err(_) => panic!("the kv data region's geometry is invalid"),
};
/// Response flag: a PUT created its key (clear: it replaced a value).
pub const KV_FLAG_CREATED: u32 = 1;
/// Response flag: a LIST's answer holds only the first matching keys; ask again with the
/// last one as `start_after` for the rest.
pub const KV_FLAG_TRUNCATED: u32 = 2;
/// The status word of a request (every response status is non-zero).
pub const KV_STATUS_REQUEST: u32 = 0;

const S: usize = KV_QUEUE_SLOTS;
const BUFFERS: usize = KV_BUFFERS as usize;

/// An operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Op {
    /// Read a key's value.
    Get = 1,
    /// Set a key's value.
    Put = 2,
    /// Remove a key.
    Delete = 3,
    /// The keys starting with a prefix, in ascending byte order.
    List = 4,
}

impl Op {
    /// The op a header's word names, if any.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Get),
            2 => Some(Self::Put),
            3 => Some(Self::Delete),
            4 => Some(Self::List),
            _ => None,
        }
    }

    /// The key lengths the op accepts (a LIST's prefix may be empty).
    const fn min_key(self) -> usize {
        match self {
            Self::List => 0,
            _ => 1,
        }
    }

    /// The longest value area the op's request may use.
    const fn max_value(self) -> usize {
        match self {
            Self::Get | Self::Delete => 0,
            Self::Put => KV_MAX_VALUE,
            Self::List => KV_MAX_KEY,
        }
    }
}

/// How the store answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Done; a GET's value or a LIST's keys follow.
    Ok = 1,
    /// GET or DELETE of a key the store does not hold.
    NotFound = 2,
    /// The store has no room for the PUT (or the DELETE's record).
    Full = 3,
    /// The request breaks the protocol (lengths, op, flags); nothing was done.
    BadRequest = 4,
    /// The request's version is not the store's; the response's version word is the store's.
    BadVersion = 5,
    /// The store failed (device error, a record that no longer reads back, an earlier error
    /// left it unusable, or it misconfigured itself); the operation may not have been done.
    StoreError = 6,
    /// The store is up but has no store to serve from (no device, not formatted).
    Unavailable = 7,
}

impl Status {
    /// The status a header's word names, if any (never for [`KV_STATUS_REQUEST`]).
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Ok),
            2 => Some(Self::NotFound),
            3 => Some(Self::Full),
            4 => Some(Self::BadRequest),
            5 => Some(Self::BadVersion),
            6 => Some(Self::StoreError),
            7 => Some(Self::Unavailable),
            _ => None,
        }
    }
}

/// A buffer's first 64 bytes, in a request and in its response. Neither side reads it in
/// place: it is copied out whole ([`Window::read`]) and checked as a copy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct KvHeader {
    /// [`KV_PROTOCOL_VERSION`] (a [`Status::BadVersion`] response: the store's version).
    pub version: u32,
    /// An [`Op`]; echoed in the response.
    pub op: u32,
    /// Chosen by the client, echoed by the store.
    pub request_id: u64,
    /// Request: bytes of the key (1..=255), or of a LIST's prefix (0..=255), at
    /// [`KV_KEY_OFFSET`]. Response: 0.
    pub key_len: u32,
    /// Request: bytes of a PUT's value (0..=65536) or of a LIST's `start_after` key
    /// (0..=255, 0 for the first key), at [`KV_VALUE_OFFSET`]; 0 for GET and DELETE.
    /// Response: bytes of the result there (a GET's value, a LIST's keys), 0 for the rest.
    pub value_len: u32,
    /// Request: [`KV_STATUS_REQUEST`]. Response: a [`Status`].
    pub status: u32,
    /// Request: 0. Response: [`KV_FLAG_CREATED`], [`KV_FLAG_TRUNCATED`].
    pub flags: u32,
    /// Zero in both directions.
    pub reserved: [u32; 8],
}

const _: () = assert!(size_of::<KvHeader>() == KV_HEADER_BYTES);
const _: () = assert!(offset_of!(KvHeader, version) == 0);
const _: () = assert!(offset_of!(KvHeader, op) == 4);
const _: () = assert!(offset_of!(KvHeader, request_id) == 8);
const _: () = assert!(offset_of!(KvHeader, key_len) == 16);
const _: () = assert!(offset_of!(KvHeader, value_len) == 20);
const _: () = assert!(offset_of!(KvHeader, status) == 24);
const _: () = assert!(offset_of!(KvHeader, flags) == 28);
const _: () = assert!(offset_of!(KvHeader, reserved) == 32);
const _: () = assert!(KV_KEY_AREA > KV_MAX_KEY && KV_KEY_AREA.is_multiple_of(8));
const _: () = assert!(KV_BUF_SIZE == 64 + 256 + 65536);

/// The store's control line: written by the store only.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct StoreControl {
    /// [`KV_MAGIC`] once the region is set up; 0 while the store sets it up.
    pub magic: AtomicU32,
    /// The store's [`KV_PROTOCOL_VERSION`].
    pub version: AtomicU32,
    /// Bumped (never to 0) each time the store sets the region up: a client that sees it
    /// change knows the store restarted.
    pub epoch: AtomicU32,
    /// The client session the store serves (0: none yet).
    pub accepted: AtomicU32,
    /// Padding to a cache line.
    pub pad: [u32; 12],
}

/// The client's control line: written by the client only.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct ClientControl {
    /// The session the client asks for (never 0): a new number asks the store to start over.
    pub requested: AtomicU32,
    /// Padding to a cache line.
    pub pad: [u32; 15],
}

/// The start of a client's shared region: the control lines and the two queues. The data
/// region follows at [`KV_DATA_OFFSET`].
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct KvQueues {
    /// Written by the store.
    pub store: StoreControl,
    /// Written by the client.
    pub client: ClientControl,
    /// Client → store: requests.
    pub requests: SharedQueue<KV_QUEUE_SLOTS>,
    /// Store → client: responses.
    pub responses: SharedQueue<KV_QUEUE_SLOTS>,
}

const STORE_AT: usize = offset_of!(KvQueues, store);
const CLIENT_AT: usize = offset_of!(KvQueues, client);
const REQUESTS_AT: usize = offset_of!(KvQueues, requests);
const RESPONSES_AT: usize = offset_of!(KvQueues, responses);
const QUEUE_BYTES: usize = size_of::<SharedQueue<KV_QUEUE_SLOTS>>();

const _: () = assert!(size_of::<StoreControl>() == 64 && size_of::<ClientControl>() == 64);
const _: () = assert!(STORE_AT == 0 && CLIENT_AT == 64);
const _: () = assert!(REQUESTS_AT == 128 && RESPONSES_AT == 448 && QUEUE_BYTES == 320);
const _: () = assert!(size_of::<KvQueues>() == 768 && size_of::<KvQueues>() <= KV_DATA_OFFSET);
const _: () = assert!(KV_DATA_OFFSET.is_multiple_of(4096));
const _: () = assert!(KV_REGION_BYTES == 0x42000);
const _: () = assert!(KV_QUEUE_SLOTS >= KV_BUFFERS as usize);
const _: () = assert!(KV_BUFFERS as usize <= 64, "one ledger word");

/// What a side found wrong in a header or a body (a request's, or a response's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The descriptor is shorter than a header (its length).
    Short(u32),
    /// Another protocol version (the word).
    Version(u32),
    /// An unknown op, or not the request's (the word).
    Op(u32),
    /// A key length the op does not allow (the word).
    KeyLength(u32),
    /// A value length the op (or status) does not allow (the word).
    ValueLength(u32),
    /// The descriptor's length is not the value area's offset plus the value length (the
    /// descriptor's length).
    Length(u32),
    /// A request whose status word is not [`KV_STATUS_REQUEST`], or a response's unknown
    /// status (the word).
    Status(u32),
    /// Flags the op and status do not allow (the word).
    Flags(u32),
    /// A reserved word is not zero.
    Reserved,
    /// The response echoes another request id than the request's.
    RequestId {
        /// The request's.
        expected: u64,
        /// The response's.
        got: u64,
    },
    /// A LIST's keys are not a sequence of a length byte (1..=255) and that many bytes.
    ListBody,
}

/// A request, as the client submits it and as the store receives it (its slices then point
/// into the store's scratch copy, never into shared memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// The value of `key`.
    Get {
        /// 1..=255 bytes.
        key: &'a [u8],
    },
    /// Set `key` to `value`.
    Put {
        /// 1..=255 bytes.
        key: &'a [u8],
        /// 0..=65536 bytes.
        value: &'a [u8],
    },
    /// Remove `key`.
    Delete {
        /// 1..=255 bytes.
        key: &'a [u8],
    },
    /// The keys starting with `prefix` and greater than `start_after`, ascending, as many as
    /// fit in a value area.
    List {
        /// 0..=255 bytes (empty: every key).
        prefix: &'a [u8],
        /// 0..=255 bytes (empty: from the first key); to continue a truncated answer, its
        /// last key.
        start_after: &'a [u8],
    },
}

impl<'a> Request<'a> {
    /// The request's op.
    pub const fn op(&self) -> Op {
        match self {
            Self::Get { .. } => Op::Get,
            Self::Put { .. } => Op::Put,
            Self::Delete { .. } => Op::Delete,
            Self::List { .. } => Op::List,
        }
    }

    /// What goes in the key area and what in the value area.
    const fn areas(&self) -> (&'a [u8], &'a [u8]) {
        match *self {
            Self::Get { key } | Self::Delete { key } => (key, &[]),
            Self::Put { key, value } => (key, value),
            Self::List {
                prefix,
                start_after,
            } => (prefix, start_after),
        }
    }

    /// Checks the lengths against the protocol's limits.
    pub fn check(&self) -> Result<(), Malformed> {
        let op = self.op();
        let (key, value) = self.areas();
        if key.len() < op.min_key() || key.len() > KV_MAX_KEY {
            return Err(Malformed::KeyLength(saturate(key.len())));
        }
        if value.len() > op.max_value() {
            return Err(Malformed::ValueLength(saturate(value.len())));
        }
        Ok(())
    }
}

fn saturate(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Checks a request's header (a copy) against the descriptor's length, returning its op.
fn check_request(header: &KvHeader, desc_len: u32) -> Result<Op, Malformed> {
    if header.version != KV_PROTOCOL_VERSION {
        return Err(Malformed::Version(header.version));
    }
    if header.status != KV_STATUS_REQUEST {
        return Err(Malformed::Status(header.status));
    }
    if header.flags != 0 {
        return Err(Malformed::Flags(header.flags));
    }
    if header.reserved != [0; 8] {
        return Err(Malformed::Reserved);
    }
    let op = Op::from_u32(header.op).ok_or(Malformed::Op(header.op))?;
    let key_len = header.key_len as usize;
    if key_len < op.min_key() || key_len > KV_MAX_KEY {
        return Err(Malformed::KeyLength(header.key_len));
    }
    if header.value_len as usize > op.max_value() {
        return Err(Malformed::ValueLength(header.value_len));
    }
    if u64::from(desc_len) != KV_VALUE_OFFSET as u64 + u64::from(header.value_len) {
        return Err(Malformed::Length(desc_len));
    }
    Ok(op)
}

/// Checks that a response's status, flags and result length fit its op: flags only on a
/// successful PUT (created) or LIST (truncated), a result only from a successful GET or LIST.
fn check_answer(op: Op, status: Status, flags: u32, len: usize) -> Result<(), Malformed> {
    let ok = status == Status::Ok;
    let allowed = match op {
        Op::Put if ok => KV_FLAG_CREATED,
        Op::List if ok => KV_FLAG_TRUNCATED,
        _ => 0,
    };
    if flags & !allowed != 0 {
        return Err(Malformed::Flags(flags));
    }
    let bodied = ok && matches!(op, Op::Get | Op::List);
    if len > KV_MAX_VALUE || (len > 0 && !bodied) {
        return Err(Malformed::ValueLength(saturate(len)));
    }
    Ok(())
}

/// The keys of a LIST's answer: each a length byte (1..=255) and that many bytes.
/// Stops at the end, or at the first entry that is not well formed ([`check_list`] tells
/// them apart).
#[derive(Clone, Debug)]
pub struct ListKeys<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ListKeys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            self.rest = &[];
            return None;
        }
        let (key, rest) = tail.split_at(len);
        self.rest = rest;
        Some(key)
    }
}

/// Iterates over the keys of a LIST's answer.
pub fn list_keys(body: &[u8]) -> ListKeys<'_> {
    ListKeys { rest: body }
}

/// Checks a LIST's answer is a whole sequence of keys, returning how many.
pub fn check_list(body: &[u8]) -> Result<u32, Malformed> {
    let mut rest = body;
    let mut keys = 0u32;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            return Err(Malformed::ListBody);
        }
        rest = &tail[len..];
        keys = keys.saturating_add(1);
    }
    Ok(keys)
}

/// Builds a LIST's answer in a caller's buffer (up to [`KV_MAX_VALUE`] bytes of it).
pub struct ListWriter<'b> {
    out: &'b mut [u8],
    len: usize,
    keys: u32,
    truncated: bool,
}

impl<'b> ListWriter<'b> {
    /// An empty answer in `out`.
    pub fn new(out: &'b mut [u8]) -> Self {
        Self {
            out,
            len: 0,
            keys: 0,
            truncated: false,
        }
    }

    /// Appends `key`, if it is a key (1..=255 bytes) and fits; once one did not fit, the
    /// answer is truncated and takes no more keys (push them in ascending order).
    pub fn push(&mut self, key: &[u8]) -> bool {
        if self.truncated || key.is_empty() || key.len() > KV_MAX_KEY {
            return false;
        }
        let end = self.len + 1 + key.len();
        let capacity = self.out.len().min(KV_MAX_VALUE);
        let Some(entry) = self.out.get_mut(self.len..end).filter(|_| end <= capacity) else {
            self.truncated = true;
            return false;
        };
        entry[0] = key.len() as u8;
        entry[1..].copy_from_slice(key);
        self.len = end;
        self.keys += 1;
        true
    }

    /// The answer so far, for [`KvServer::reply`].
    pub fn body(&self) -> &[u8] {
        &self.out[..self.len]
    }

    /// Keys in the answer.
    pub fn keys(&self) -> u32 {
        self.keys
    }

    /// Whether a key did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The response flags for [`KvServer::reply`].
    pub fn flags(&self) -> u32 {
        if self.truncated { KV_FLAG_TRUNCATED } else { 0 }
    }
}

/// What can go wrong for a client, or when setting a region up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The region is too small or misaligned, or its queues are not what the store set up.
    Region(QueueError),
    /// The store has not set the region up (yet, or it is setting it up again); or the
    /// client has no open session ([`KvClient::connect`]).
    NotReady,
    /// The store speaks another protocol version.
    Version {
        /// The store's.
        store: u32,
    },
    /// The store restarted or started another session: every ticket in flight is void (its
    /// request may or may not have been carried out); connect again.
    SessionLost,
    /// Every buffer has a request in flight.
    NoBuffer,
    /// The request is outside the protocol's limits; nothing was sent.
    Invalid(Malformed),
    /// The request queue refused the request (the store's index is impossible); nothing was
    /// sent.
    Queue(QueueError),
    /// The store returned a descriptor that names no buffer; dropped.
    Corrupt(Corrupt),
    /// The store returned a buffer that had no request in flight; dropped.
    NotInFlight(Desc),
    /// The response to `ticket` does not fit its request: the request failed (it may or may
    /// not have been carried out), its buffer is the client's again.
    BadResponse {
        /// The request.
        ticket: Ticket,
        /// What was wrong.
        why: Malformed,
    },
    /// The response to `ticket` has a result longer than the caller's buffer: the result is
    /// lost, the buffer is the client's again.
    OutputTooSmall {
        /// The request.
        ticket: Ticket,
        /// The result's length.
        needed: usize,
    },
}

/// The checked views of a client's shared region, for the store ([`KvRegion::init`],
/// [`KvRegion::server`]) or for a client ([`KvRegion::attach`], [`KvRegion::client`]).
#[derive(Clone)]
pub struct KvRegion<'a> {
    store: &'a StoreControl,
    client: &'a ClientControl,
    requests: Queue<'a, S>,
    responses: Queue<'a, S>,
    data: DataRegion<'a>,
    /// A ledger owning nothing, made here so handing out ends cannot fail.
    none: Ledger<1>,
}

/// The region cut at the layout's offsets.
struct Parts<'a> {
    store: &'a StoreControl,
    client: &'a ClientControl,
    requests: &'a mut [u8],
    responses: &'a mut [u8],
    data: DataRegion<'a>,
    none: Ledger<1>,
}

impl<'a> Parts<'a> {
    fn split(region: &'a mut [u8]) -> Result<Self, KvError> {
        let bad = KvError::Region(QueueError::BadRegion);
        if region.len() < KV_DATA_OFFSET + KV_DATA_BYTES || region.as_ptr().align_offset(64) != 0 {
            return Err(bad);
        }
        let (queues, data) = region.split_at_mut(KV_DATA_OFFSET);
        let (store, rest) = queues.split_at_mut(CLIENT_AT);
        let (client, rest) = rest.split_at_mut(REQUESTS_AT - CLIENT_AT);
        let (requests, rest) = rest.split_at_mut(QUEUE_BYTES);
        let responses = rest.get_mut(..QUEUE_BYTES).ok_or(bad)?;
        // The control lines are whole atomics: every access to them, this side's and the
        // peer's, is atomic.
        let store: &'a StoreControl = StoreControl::mut_from_bytes(store).map_err(|_| bad)?;
        let client: &'a ClientControl = ClientControl::mut_from_bytes(client).map_err(|_| bad)?;
        Ok(Self {
            store,
            client,
            requests,
            responses,
            data: DataRegion::new(data, KV_GEOMETRY).map_err(KvError::Region)?,
            none: Ledger::new(KV_GEOMETRY, false).map_err(KvError::Region)?,
        })
    }
}

/// `base..base + len` as bytes.
///
/// # Safety
///
/// As [`KvRegion::init_raw`].
unsafe fn raw_region<'a>(base: *mut u8, len: usize) -> Result<&'a mut [u8], KvError> {
    if base.is_null() {
        return Err(KvError::Region(QueueError::BadRegion));
    }
    // SAFETY: the caller guarantees the range is mapped for 'a and only accessed through
    // this module's atomics (and the peer's), so this byte view is only ever handed to code
    // that reinterprets it as atomics.
    Ok(unsafe { core::slice::from_raw_parts_mut(base, len) })
}

/// The store's queue: the one in `bytes` if its header is intact (a restart: nothing but
/// atomics touches it), else a freshly zeroed one.
fn store_queue(bytes: &mut [u8]) -> Result<Queue<'_, S>, KvError> {
    let intact = SharedQueue::<S>::attach(&mut *bytes, KV_GEOMETRY).is_ok();
    let queue = if intact {
        SharedQueue::attach(bytes, KV_GEOMETRY)
    } else {
        SharedQueue::init(bytes, KV_GEOMETRY)
    };
    queue.map_err(KvError::Region)
}

/// Writes a queue's header and zeroes its indices and signal flag, all through atomics.
fn reset_queue(queue: Queue<'_, S>) {
    let q = queue.shared();
    let h = &q.header;
    let r = Ordering::Relaxed;
    h.version.store(QUEUE_VERSION, r);
    h.capacity.store(SharedQueue::<S>::CAPACITY, r);
    h.buffers.store(KV_GEOMETRY.buffers(), r);
    h.buf_size.store(KV_GEOMETRY.buf_size(), r);
    h.magic.store(QUEUE_MAGIC, Ordering::Release);
    q.producer.value.store(0, r);
    q.consumer.value.store(0, r);
    q.signal.wanted.store(0, r);
}

impl<'a> KvRegion<'a> {
    /// The store's set-up, at boot and after a restart: both queues, then the control line
    /// with a new epoch and no session, the magic last. (A queue whose header is intact is
    /// reset through atomics only; one whose header is not is zeroed first.) Then notify
    /// the client ([`KvServer::notify_needed`] says so).
    pub fn init(region: &'a mut [u8]) -> Result<Self, KvError> {
        let parts = Parts::split(region)?;
        let this = Self {
            requests: store_queue(parts.requests)?,
            responses: store_queue(parts.responses)?,
            store: parts.store,
            client: parts.client,
            data: parts.data,
            none: parts.none,
        };
        this.setup();
        Ok(this)
    }

    /// The client's view of a region the store set up: [`KvError::NotReady`] if it has not
    /// (yet: try again when the store notifies), [`KvError::Version`] if it speaks another
    /// version.
    pub fn attach(region: &'a mut [u8]) -> Result<Self, KvError> {
        let parts = Parts::split(region)?;
        if parts.store.magic.load(Ordering::Acquire) != KV_MAGIC {
            return Err(KvError::NotReady);
        }
        let version = parts.store.version.load(Ordering::Relaxed);
        if version != KV_PROTOCOL_VERSION {
            return Err(KvError::Version { store: version });
        }
        let queue = |bytes| {
            SharedQueue::<S>::attach(bytes, KV_GEOMETRY).map_err(|e| match e {
                QueueError::BadHeader => KvError::NotReady,
                e => KvError::Region(e),
            })
        };
        Ok(Self {
            requests: queue(parts.requests)?,
            responses: queue(parts.responses)?,
            store: parts.store,
            client: parts.client,
            data: parts.data,
            none: parts.none,
        })
    }

    /// [`KvRegion::init`] at `base`, as the store PD does with its region's address.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be memory mapped into this address space for `'a`, and
    /// nothing in this address space may access it except through [`KvRegion`]s (the peer
    /// may write it at any time).
    pub unsafe fn init_raw(base: *mut u8, len: usize) -> Result<Self, KvError> {
        // SAFETY: the caller's guarantee is `raw_region`'s.
        Self::init(unsafe { raw_region(base, len) }?)
    }

    /// [`KvRegion::attach`] at `base`, as a client PD does with its region's address.
    ///
    /// # Safety
    ///
    /// As [`KvRegion::init_raw`].
    pub unsafe fn attach_raw(base: *mut u8, len: usize) -> Result<Self, KvError> {
        // SAFETY: the caller's guarantee is `raw_region`'s.
        Self::attach(unsafe { raw_region(base, len) }?)
    }

    /// The store's end.
    pub fn server(self) -> KvServer<'a> {
        KvServer {
            ledger: self.none.clone(),
            region: self,
            session: 0,
            ends: None,
            generation: 0,
            notify: true,
            enqueued: false,
            stats: ServerStats::default(),
        }
    }

    /// The client's end, with no session yet ([`KvClient::connect`]).
    pub fn client(self) -> KvClient<'a> {
        KvClient {
            ledger: self.none.clone(),
            region: self,
            state: State::Closed,
            pending: [None; BUFFERS],
            next_id: 1,
            enqueued: false,
            stats: ClientStats::default(),
        }
    }

    /// The store's control line (for diagnostics and tests).
    pub fn store_control(&self) -> &'a StoreControl {
        self.store
    }

    /// The client's control line (for diagnostics and tests).
    pub fn client_control(&self) -> &'a ClientControl {
        self.client
    }

    /// The request queue (for diagnostics and tests).
    pub fn requests(&self) -> Queue<'a, S> {
        self.requests
    }

    /// The response queue (for diagnostics and tests).
    pub fn responses(&self) -> Queue<'a, S> {
        self.responses
    }

    /// The data region (for diagnostics and tests).
    pub fn data(&self) -> DataRegion<'a> {
        self.data
    }

    /// Writes the set-up through atomics (see [`KvRegion::init`]).
    fn setup(&self) {
        let s = self.store;
        let old = if s.magic.load(Ordering::Acquire) == KV_MAGIC {
            s.epoch.load(Ordering::Relaxed)
        } else {
            0
        };
        // A client that sees any of what follows, then looks at the magic, sees it invalid.
        s.magic.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        s.accepted.store(0, Ordering::Relaxed);
        reset_queue(self.requests);
        reset_queue(self.responses);
        s.version.store(KV_PROTOCOL_VERSION, Ordering::Relaxed);
        let epoch = match old.wrapping_add(1) {
            0 => 1,
            epoch => epoch,
        };
        // Release: a client that reads this epoch also sees `accepted` reset.
        s.epoch.store(epoch, Ordering::Release);
        s.magic.store(KV_MAGIC, Ordering::Release);
    }

    /// The buffer `index` names and its descriptor.
    fn buffer(&self, index: u32) -> Option<(Window<'a>, u64)> {
        Some((self.data.buffer(index)?, KV_GEOMETRY.offset(index)?))
    }
}

/// The store's right to answer one request: handed out by [`KvServer::next`], consumed by
/// [`KvServer::reply`]. A session that starts over voids it. Dropping one unanswered leaves
/// its buffer with the store until the client starts a new session.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the client's buffer stays with the store until the token is replied to"]
pub struct Token {
    index: u32,
    generation: u32,
    op: Op,
    request_id: u64,
}

impl Token {
    /// The request's op.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The client's id of the request.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }
}

/// A request the store did not hand to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A descriptor naming no buffer (or, for [`Corrupt::Length`], longer than one): dropped,
    /// not answered.
    Corrupt(Corrupt),
    /// A buffer the store already holds: dropped, not answered.
    Duplicate(Desc),
    /// A malformed request in a valid buffer: answered [`Status::BadRequest`] (a version
    /// mismatch [`Status::BadVersion`]).
    Malformed(Malformed),
    /// The caller's scratch buffer is shorter than the request (the bytes it needs): answered
    /// [`Status::StoreError`]. Pass [`KV_SCRATCH_BYTES`].
    ScratchTooSmall(usize),
}

/// Why [`KvServer::reply`] did not deliver an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The token is from a session the client has since replaced (or from a store set up
    /// again): the buffer is not the store's any more; nothing was written.
    Stale,
    /// The answer does not fit the request (flags, a result where none belongs, a result
    /// longer than a value, a LIST answer not made of keys): [`Status::StoreError`] was
    /// sent instead.
    Invalid(Malformed),
    /// The response queue refused the answer (only a client that broke its index does
    /// that): the answer is lost, the buffer left to the client.
    Lost(QueueError),
}

/// The store's counters for one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests handed to the caller.
    pub requests: u64,
    /// Malformed requests answered.
    pub malformed: u64,
    /// Descriptors dropped (naming no buffer, or a buffer the store held).
    pub dropped: u64,
    /// Answers the response queue refused.
    pub lost: u64,
    /// Times the request queue's producer index was impossible.
    pub stuck: u64,
    /// Sessions accepted.
    pub sessions: u64,
}

/// The store's end of one client's region.
pub struct KvServer<'a> {
    region: KvRegion<'a>,
    session: u32,
    ends: Option<(Consumer<'a, S>, Producer<'a, S>)>,
    ledger: Ledger<1>,
    generation: u32,
    notify: bool,
    enqueued: bool,
    stats: ServerStats,
}

impl<'a> KvServer<'a> {
    /// Sets the region up again, as after a restart (the client sees its session lost):
    /// every token is void, every buffer forgotten.
    pub fn restart(&mut self) {
        self.region.setup();
        self.drop_session();
        self.session = 0;
        self.notify = true;
    }

    fn drop_session(&mut self) {
        self.ends = None;
        self.ledger = self.region.none.clone();
        self.generation = self.generation.wrapping_add(1);
    }

    /// Starts the session the client asked for, if it asked for a new one.
    fn check_session(&mut self) {
        let requested = self.region.client.requested.load(Ordering::Acquire);
        if requested == 0 || requested == self.session {
            return;
        }
        self.drop_session();
        for queue in [self.region.requests, self.region.responses] {
            let q = queue.shared();
            q.producer.value.store(0, Ordering::Relaxed);
            q.consumer.value.store(0, Ordering::Relaxed);
            q.signal.wanted.store(0, Ordering::Relaxed);
        }
        self.ends = Some((
            self.region.requests.consumer(),
            self.region.responses.producer(),
        ));
        self.session = requested;
        // Release: a client that reads its number here sees the queues empty.
        self.region
            .store
            .accepted
            .store(requested, Ordering::Release);
        self.notify = true;
        self.stats.sessions += 1;
    }

    /// The next request, copied into `scratch` (pass [`KV_SCRATCH_BYTES`]): its key and value
    /// point there. `None` when there is none (or no session); each `Some` takes one
    /// descriptor off the queue, so a caller that loops until `None` stops after at most
    /// what the client enqueued. A malformed request is answered here and returned as the
    /// error; so is a descriptor that was dropped.
    pub fn next<'s>(
        &mut self,
        scratch: &'s mut [u8],
    ) -> Option<Result<(Token, Request<'s>), Rejected>> {
        self.check_session();
        let (requests, _) = self.ends.as_mut()?;
        let desc = match requests.dequeue() {
            Ok(None) => return None,
            Ok(Some(desc)) => desc,
            Err(Corrupt::Index) => {
                // Nothing was consumed: reporting it would have a draining caller spin.
                self.stats.stuck += 1;
                return None;
            }
            Err(corrupt) => {
                self.stats.dropped += 1;
                return Some(Err(Rejected::Corrupt(corrupt)));
            }
        };
        let Ok(index) = self.ledger.receive(&desc) else {
            self.stats.dropped += 1;
            return Some(Err(Rejected::Duplicate(desc)));
        };
        Some(self.take(index, desc.len, scratch))
    }

    /// Copies and parses the request in buffer `index` (`len` bytes), answering it if it is
    /// malformed.
    fn take<'s>(
        &mut self,
        index: u32,
        len: u32,
        scratch: &'s mut [u8],
    ) -> Result<(Token, Request<'s>), Rejected> {
        let mut raw = [0u8; KV_HEADER_BYTES];
        let window = self.region.data.buffer(index);
        let header = match window.map(|w| w.read(0, &mut raw)) {
            Some(Ok(())) if len as usize >= KV_HEADER_BYTES => {
                KvHeader::read_from_bytes(&raw).unwrap_or_default()
            }
            _ => {
                self.malformed(index, &KvHeader::default(), Status::BadRequest);
                return Err(Rejected::Malformed(Malformed::Short(len)));
            }
        };
        let op = match check_request(&header, len) {
            Ok(op) => op,
            Err(why) => {
                let status = match why {
                    Malformed::Version(_) => Status::BadVersion,
                    _ => Status::BadRequest,
                };
                self.malformed(index, &header, status);
                return Err(Rejected::Malformed(why));
            }
        };
        // check_request: len == KV_VALUE_OFFSET + value_len, so the body is the key area and
        // the value.
        let body_len = len as usize - KV_HEADER_BYTES;
        let Some(body) = scratch.get_mut(..body_len) else {
            let _ = self.answer(index, &header, Status::StoreError, 0, &[]);
            return Err(Rejected::ScratchTooSmall(body_len));
        };
        if window.map(|w| w.read(KV_HEADER_BYTES, &mut *body)) != Some(Ok(())) {
            // Not reached: check_request bounded the length by the buffer's.
            self.malformed(index, &header, Status::BadRequest);
            return Err(Rejected::Malformed(Malformed::Length(len)));
        }
        let copied: &'s [u8] = body;
        let key = copied.get(..header.key_len as usize).unwrap_or_default();
        let value = copied
            .get(KV_KEY_AREA..KV_KEY_AREA + header.value_len as usize)
            .unwrap_or_default();
        let request = match op {
            Op::Get => Request::Get { key },
            Op::Put => Request::Put { key, value },
            Op::Delete => Request::Delete { key },
            Op::List => Request::List {
                prefix: key,
                start_after: value,
            },
        };
        self.stats.requests += 1;
        let token = Token {
            index,
            generation: self.generation,
            op,
            request_id: header.request_id,
        };
        Ok((token, request))
    }

    fn malformed(&mut self, index: u32, header: &KvHeader, status: Status) {
        self.stats.malformed += 1;
        let _ = self.answer(index, header, status, 0, &[]);
    }

    /// Writes an answer into buffer `index` and hands it back; the store lets the buffer go
    /// whatever the queue says.
    fn answer(
        &mut self,
        index: u32,
        request: &KvHeader,
        status: Status,
        flags: u32,
        body: &[u8],
    ) -> Result<(), QueueError> {
        let (window, offset) = self.region.buffer(index).ok_or(QueueError::BadDescriptor)?;
        let header = KvHeader {
            version: KV_PROTOCOL_VERSION,
            op: request.op,
            request_id: request.request_id,
            key_len: 0,
            value_len: u32::try_from(body.len()).map_err(|_| QueueError::TooLarge)?,
            status: status as u32,
            flags,
            reserved: [0; 8],
        };
        window.write(KV_VALUE_OFFSET, body)?;
        window.write(0, header.as_bytes())?;
        let desc = Desc::new(offset, (KV_VALUE_OFFSET + body.len()) as u32);
        let _ = self.ledger.give(&desc);
        let Some((_, responses)) = self.ends.as_mut() else {
            return Err(QueueError::BadDescriptor);
        };
        match responses.enqueue(desc) {
            Ok(()) => {
                self.enqueued = true;
                Ok(())
            }
            Err(e) => {
                self.stats.lost += 1;
                Err(e)
            }
        }
    }

    /// Answers the request `token` stands for: `status`, `flags` ([`KV_FLAG_CREATED`] for a
    /// PUT that created its key, [`ListWriter::flags`] for a LIST) and the result `body` (a
    /// GET's value, [`ListWriter::body`] for a LIST, empty otherwise).
    pub fn reply(
        &mut self,
        token: Token,
        status: Status,
        flags: u32,
        body: &[u8],
    ) -> Result<(), ReplyError> {
        if token.generation != self.generation || !self.ledger.owns(token.index) {
            return Err(ReplyError::Stale);
        }
        let request = KvHeader {
            op: token.op as u32,
            request_id: token.request_id,
            ..KvHeader::default()
        };
        let mut check = check_answer(token.op, status, flags, body.len());
        if check.is_ok() && token.op == Op::List && status == Status::Ok {
            check = check_list(body).map(|_| ());
        }
        if let Err(why) = check {
            let _ = self.answer(token.index, &request, Status::StoreError, 0, &[]);
            return Err(ReplyError::Invalid(why));
        }
        self.answer(token.index, &request, status, flags, body)
            .map_err(ReplyError::Lost)
    }

    /// Whether to notify the client now: the store set the region up or accepted a session
    /// since the last call, or answered and the client asked for a signal.
    pub fn notify_needed(&mut self) -> bool {
        let mut needed = core::mem::take(&mut self.notify);
        if core::mem::take(&mut self.enqueued)
            && let Some((_, responses)) = &self.ends
        {
            needed |= responses.signal_needed();
        }
        needed
    }

    /// Asks the client for a notification on its next request and checks once more:
    /// `true` if there is nothing to do and the store may wait, `false` if a request or a
    /// session request arrived (call [`KvServer::next`] again). A request queue whose index
    /// is impossible counts as nothing to do.
    pub fn ready_to_wait(&mut self) -> bool {
        let requested = self.region.client.requested.load(Ordering::Acquire);
        if requested != 0 && requested != self.session {
            return false;
        }
        match &self.ends {
            None => true,
            Some((requests, _)) => !matches!(requests.ready_to_wait(), Ok(false)),
        }
    }

    /// Whether a client session is open.
    pub fn is_open(&self) -> bool {
        self.ends.is_some()
    }

    /// Buffers the store holds (requests taken and not answered).
    pub fn held(&self) -> u32 {
        self.ledger.owned()
    }

    /// The counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }
}

/// A request in flight, as [`KvClient::submit`] returned it and [`KvClient::poll`] returns
/// it with its response. Ids are unique for the client's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The request id in its header.
    pub const fn id(self) -> u64 {
        self.0
    }
}

/// A response, checked: its result is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's op.
    pub op: Op,
    /// How the store answered.
    pub status: Status,
    /// [`KV_FLAG_CREATED`], [`KV_FLAG_TRUNCATED`].
    pub flags: u32,
    /// Bytes of the result at the start of the caller's buffer: a GET's value, a LIST's keys
    /// ([`list_keys`]; checked to be well formed).
    pub len: usize,
}

impl Response {
    /// A PUT created its key.
    pub fn created(&self) -> bool {
        self.flags & KV_FLAG_CREATED != 0
    }

    /// A LIST's answer holds only the first keys.
    pub fn truncated(&self) -> bool {
        self.flags & KV_FLAG_TRUNCATED != 0
    }
}

/// Where a client's session stands ([`KvClient::connect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A session was just requested: notify the store now, then wait for its notification.
    Requested,
    /// The store has not accepted the session yet.
    Pending,
    /// Requests can be submitted.
    Open,
}

/// The client's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests submitted.
    pub submitted: u64,
    /// Responses returned.
    pub completed: u64,
    /// Responses that did not fit their requests.
    pub bad_responses: u64,
    /// Descriptors dropped (naming no buffer, or a buffer not in flight).
    pub dropped: u64,
    /// Times the response queue's producer index was impossible.
    pub stuck: u64,
    /// Sessions lost.
    pub sessions_lost: u64,
}

#[derive(Clone, Copy)]
struct Pending {
    id: u64,
    op: Op,
}

enum State<'a> {
    Closed,
    Requested {
        session: u32,
    },
    Open {
        session: u32,
        epoch: u32,
        requests: Producer<'a, S>,
        responses: Consumer<'a, S>,
    },
}

/// A client's end of its region.
///
/// A request the caller gave up on (a timeout) keeps its buffer until the store returns it:
/// the store may still be writing its answer there. Its response then comes from
/// [`KvClient::poll`] with its ticket, which the caller ignores. To take every buffer back
/// without waiting, [`KvClient::close`] and [`KvClient::connect`] again: the store accepts
/// the new session only after it has forgotten every buffer.
pub struct KvClient<'a> {
    region: KvRegion<'a>,
    state: State<'a>,
    ledger: Ledger<1>,
    pending: [Option<Pending>; BUFFERS],
    next_id: u64,
    enqueued: bool,
    stats: ClientStats,
}

impl<'a> KvClient<'a> {
    /// Moves the session on: from none, asks for one ([`Link::Requested`]: notify the store);
    /// then reports [`Link::Pending`] until the store accepts it and [`Link::Open`] after.
    /// [`KvError::NotReady`] while the store sets the region up, [`KvError::Version`] if it
    /// came back speaking another version, [`KvError::SessionLost`] if an open session was
    /// lost (call again to ask for a new one).
    pub fn connect(&mut self) -> Result<Link, KvError> {
        let (store, client) = (self.region.store, self.region.client);
        match self.state {
            State::Closed => {
                if store.magic.load(Ordering::Acquire) != KV_MAGIC {
                    return Err(KvError::NotReady);
                }
                let version = store.version.load(Ordering::Relaxed);
                if version != KV_PROTOCOL_VERSION {
                    return Err(KvError::Version { store: version });
                }
                let accepted = store.accepted.load(Ordering::Relaxed);
                let mut session = client.requested.load(Ordering::Relaxed).wrapping_add(1);
                while session == 0 || session == accepted {
                    session = session.wrapping_add(1);
                }
                client.requested.store(session, Ordering::Release);
                self.state = State::Requested { session };
                Ok(Link::Requested)
            }
            State::Requested { session } => {
                let before = store.epoch.load(Ordering::Acquire);
                let accepted = store.accepted.load(Ordering::Acquire);
                let epoch = store.epoch.load(Ordering::Acquire);
                let magic = store.magic.load(Ordering::Acquire);
                if magic != KV_MAGIC || accepted != session || before != epoch {
                    return Ok(Link::Pending);
                }
                let version = store.version.load(Ordering::Relaxed);
                if version != KV_PROTOCOL_VERSION {
                    self.state = State::Closed;
                    return Err(KvError::Version { store: version });
                }
                let mut ledger = self.region.none.clone();
                for index in 0..KV_BUFFERS {
                    if let Some(offset) = KV_GEOMETRY.offset(index) {
                        let _ = ledger.receive(&Desc::new(offset, 0));
                    }
                }
                self.ledger = ledger;
                self.pending = [None; BUFFERS];
                self.enqueued = false;
                self.state = State::Open {
                    session,
                    epoch,
                    requests: self.region.requests.producer(),
                    responses: self.region.responses.consumer(),
                };
                Ok(Link::Open)
            }
            State::Open { .. } => {
                self.check_open()?;
                Ok(Link::Open)
            }
        }
    }

    /// Abandons the session: every ticket in flight is void. [`KvClient::connect`] asks for
    /// a new one.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.pending = [None; BUFFERS];
    }

    /// Whether requests can be submitted (as far as the last call saw).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// `Ok` if the session is open and still the store's; closes it if it was lost.
    fn check_open(&mut self) -> Result<(), KvError> {
        let State::Open { session, epoch, .. } = self.state else {
            return Err(KvError::NotReady);
        };
        let store = self.region.store;
        if store.magic.load(Ordering::Acquire) == KV_MAGIC
            && store.epoch.load(Ordering::Acquire) == epoch
            && store.accepted.load(Ordering::Acquire) == session
        {
            return Ok(());
        }
        self.close();
        self.stats.sessions_lost += 1;
        Err(KvError::SessionLost)
    }

    /// Sends `request` in a free buffer; never blocks. Then ask [`KvClient::notify_needed`]
    /// whether to notify the store.
    pub fn submit(&mut self, request: &Request<'_>) -> Result<Ticket, KvError> {
        self.check_open()?;
        request.check().map_err(KvError::Invalid)?;
        let index = self.ledger.any().ok_or(KvError::NoBuffer)?;
        let (window, offset) = self
            .region
            .buffer(index)
            .ok_or(KvError::Region(QueueError::BadDescriptor))?;
        let (key, value) = request.areas();
        let header = KvHeader {
            version: KV_PROTOCOL_VERSION,
            op: request.op() as u32,
            request_id: self.next_id,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            status: KV_STATUS_REQUEST,
            flags: 0,
            reserved: [0; 8],
        };
        let write = |at: usize, bytes: &[u8]| window.write(at, bytes).map_err(KvError::Region);
        write(0, header.as_bytes())?;
        write(KV_KEY_OFFSET, key)?;
        write(KV_VALUE_OFFSET, value)?;
        let desc = Desc::new(offset, (KV_VALUE_OFFSET + value.len()) as u32);
        let State::Open { requests, .. } = &mut self.state else {
            return Err(KvError::NotReady);
        };
        requests.enqueue(desc).map_err(KvError::Queue)?;
        let _ = self.ledger.give(&desc);
        let ticket = Ticket(self.next_id);
        self.pending[index as usize] = Some(Pending {
            id: ticket.0,
            op: request.op(),
        });
        self.next_id += 1;
        self.enqueued = true;
        self.stats.submitted += 1;
        Ok(ticket)
    }

    /// The next response, its result copied into `value_out` (pass [`KV_MAX_VALUE`] bytes to
    /// take any). `Ok(None)` when there is none (or no open session). Each error but
    /// [`KvError::SessionLost`] took one descriptor off the queue, so a caller that loops
    /// until `Ok(None)` stops after at most what the store enqueued; `SessionLost` closes
    /// the session, so it comes once.
    pub fn poll(&mut self, value_out: &mut [u8]) -> Result<Option<(Ticket, Response)>, KvError> {
        if !self.is_open() {
            return Ok(None);
        }
        self.check_open()?;
        let State::Open { responses, .. } = &mut self.state else {
            return Ok(None);
        };
        let desc = match responses.dequeue() {
            Ok(None) => return Ok(None),
            Ok(Some(desc)) => desc,
            Err(Corrupt::Index) => {
                self.stats.stuck += 1;
                return Ok(None);
            }
            Err(Corrupt::Length(desc)) => {
                // A buffer of ours, too long: the request it carried failed.
                return Err(match self.reclaim(&desc) {
                    Some((ticket, _)) => self.bad(ticket, Malformed::Length(desc.len)),
                    None => self.dropped(KvError::Corrupt(Corrupt::Length(desc))),
                });
            }
            Err(corrupt) => return Err(self.dropped(KvError::Corrupt(corrupt))),
        };
        let Some((ticket, pending)) = self.reclaim(&desc) else {
            return Err(self.dropped(KvError::NotInFlight(desc)));
        };
        let mut raw = [0u8; KV_HEADER_BYTES];
        let window = self
            .region
            .data
            .buffer(KV_GEOMETRY.index(desc.offset).unwrap_or(0));
        let Some(window) = window.filter(|w| w.read(0, &mut raw).is_ok()) else {
            return Err(self.bad(ticket, Malformed::Short(desc.len)));
        };
        let header = KvHeader::read_from_bytes(&raw).unwrap_or_default();
        let (status, len) = match check_response(&header, pending, desc.len) {
            Ok(checked) => checked,
            Err(why) => return Err(self.bad(ticket, why)),
        };
        let Some(out) = value_out.get_mut(..len) else {
            self.stats.bad_responses += 1;
            return Err(KvError::OutputTooSmall {
                ticket,
                needed: len,
            });
        };
        if window.read(KV_VALUE_OFFSET, out).is_err() {
            return Err(self.bad(ticket, Malformed::Length(desc.len)));
        }
        if pending.op == Op::List
            && status == Status::Ok
            && let Err(why) = check_list(out)
        {
            return Err(self.bad(ticket, why));
        }
        self.stats.completed += 1;
        let response = Response {
            op: pending.op,
            status,
            flags: header.flags,
            len,
        };
        Ok(Some((ticket, response)))
    }

    /// Takes back the buffer `desc` names, if it has a request in flight.
    fn reclaim(&mut self, desc: &Desc) -> Option<(Ticket, Pending)> {
        let index = self.ledger.receive(desc).ok()?;
        let pending = self.pending.get_mut(index as usize)?.take()?;
        Some((Ticket(pending.id), pending))
    }

    fn bad(&mut self, ticket: Ticket, why: Malformed) -> KvError {
        self.stats.bad_responses += 1;
        KvError::BadResponse { ticket, why }
    }

    fn dropped(&mut self, error: KvError) -> KvError {
        self.stats.dropped += 1;
        error
    }

    /// Whether to notify the store now: a request was submitted since the last call and the
    /// store asked for a signal.
    pub fn notify_needed(&mut self) -> bool {
        let enqueued = core::mem::take(&mut self.enqueued);
        match &self.state {
            State::Open { requests, .. } if enqueued => requests.signal_needed(),
            _ => false,
        }
    }

    /// Asks the store for a notification on its next response and checks once more: `true`
    /// if the client may wait (nothing arrived, or no session is open, or one is pending:
    /// the store notifies when it accepts it), `false` if a response arrived or the session
    /// was lost (call [`KvClient::poll`]).
    pub fn ready_to_wait(&mut self) -> bool {
        let State::Open {
            session,
            epoch,
            responses,
            ..
        } = &self.state
        else {
            return true;
        };
        let store = self.region.store;
        if store.magic.load(Ordering::Acquire) != KV_MAGIC
            || store.epoch.load(Ordering::Acquire) != *epoch
            || store.accepted.load(Ordering::Acquire) != *session
        {
            return false;
        }
        !matches!(responses.ready_to_wait(), Ok(false))
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.pending.iter().flatten().count() as u32
    }

    /// Buffers free for [`KvClient::submit`] (0 without an open session).
    pub fn free_buffers(&self) -> u32 {
        if self.is_open() {
            self.ledger.owned()
        } else {
            0
        }
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }
}

/// Checks a response's header (a copy) against the request in flight and the descriptor's
/// length, returning its status and result length.
fn check_response(
    header: &KvHeader,
    pending: Pending,
    desc_len: u32,
) -> Result<(Status, usize), Malformed> {
    if header.request_id != pending.id {
        return Err(Malformed::RequestId {
            expected: pending.id,
            got: header.request_id,
        });
    }
    let status = Status::from_u32(header.status).ok_or(Malformed::Status(header.status))?;
    if status != Status::BadVersion && header.version != KV_PROTOCOL_VERSION {
        return Err(Malformed::Version(header.version));
    }
    if header.op != pending.op as u32 {
        return Err(Malformed::Op(header.op));
    }
    if header.key_len != 0 {
        return Err(Malformed::KeyLength(header.key_len));
    }
    if header.reserved != [0; 8] {
        return Err(Malformed::Reserved);
    }
    if u64::from(desc_len) != KV_VALUE_OFFSET as u64 + u64::from(header.value_len) {
        return Err(Malformed::Length(desc_len));
    }
    let len = header.value_len as usize;
    check_answer(pending.op, status, header.flags, len)?;
    Ok((status, len))
}

#[cfg(test)]
mod tests;
