//! The block protocol between a block driver and its client (the storage service), in the
//! shape of seL4 sDDF's block queues, over the buffer queues of [`crate::queue`].
//!
//! # Shape
//!
//! The driver and its client share two regions:
//!
//! - a **queues** region ([`BlockQueues`], [`BLOCK_QUEUES_BYTES`]): the **request** queue
//!   (client → driver) and the **response** queue (driver → client), each a
//!   [`SharedQueue`] of [`BLOCK_QUEUE_SLOTS`] descriptors, then the disk's information
//!   ([`DiskInfo`]: its size in blocks, 0 for no disk; whether it is read-only and whether it
//!   has a write cache), which the driver writes before the queues' headers;
//! - a **data** region ([`BLOCK_DATA_BYTES`], of [`geometry`]): [`BLOCK_BUFFERS`] buffers of
//!   [`BLOCK_BUF_SIZE`] bytes each. A buffer starts with a [`BLOCK_HEADER`]-byte command
//!   header ([`BlockCommand`]) and carries up to [`BLOCK_MAX_BLOCKS`] blocks of
//!   [`BLOCK_SIZE`] bytes after it (32 KiB); the data starts on a cache line of its own.
//!
//! # A request and its answer
//!
//! The client writes a [`BlockCommand`] (`op`, `count`, `block`, its own `id`, the
//! [`BLOCK_PROTOCOL_VERSION`]; `status` set to [`STATUS_PENDING`]) at the start of a buffer it
//! owns, and for a write the data after it, then enqueues the buffer on the request queue:
//! `Desc { offset: the buffer's, len: BLOCK_HEADER + count * 512 }` for a read or a write,
//! `len: BLOCK_HEADER` for a flush (whose `count` and `block` are 0).
//!
//! The driver answers every request whose descriptor names one of its buffers (and one it
//! does not hold already) by writing `status` ([`BlockStatus`]) into the header and enqueueing
//! the same buffer on the response queue. The answer's length says how much of the buffer
//! carries the answer: `BLOCK_HEADER + count * 512` for a read that succeeded (the data is
//! after the header), `BLOCK_HEADER` for everything else. The driver changes nothing else in
//! the buffer: `id` comes back as the client wrote it.
//!
//! | status | meaning |
//! |---|---|
//! | 0 [`BlockStatus::Ok`] | done; for a write, the disk has the data (durable after a flush) |
//! | 1 [`BlockStatus::DeviceError`] | the disk failed the request |
//! | 2 [`BlockStatus::BadRequest`] | refused unseen by the disk: unknown op or version, `count` 0 or above [`BLOCK_MAX_BLOCKS`], beyond the disk's end, a descriptor length that does not match, a reserved word not 0 |
//! | 3 [`BlockStatus::NoDisk`] | the driver has no disk |
//!
//! A descriptor that names no buffer (or one the driver holds already) is dropped and
//! counted by the driver: it is not answered, as there is no buffer to answer in.
//!
//! # Ownership and ordering
//!
//! As in [`crate::queue`]: a buffer belongs to the client until it enqueues it as a request,
//! then to the driver until the driver enqueues its answer. The queues' release and acquire
//! order the header and data writes before the hand-over. The driver serves requests one at
//! a time in queue order, each completing on the disk before the next starts, so a flush is
//! answered only after every write enqueued before it completed, and its success makes them
//! durable. Answers come back in request order.
//!
//! # Nothing read from the peer is trusted
//!
//! The header lives in shared memory that the peer may rewrite at any time, so each side
//! copies it out once through the atomic copies of [`DataRegion`] and
//! [`Window`](crate::queue::Window), checks the copy, and uses only what it checked
//! ([`decode_request`] on the driver's side, [`BlockClient`] on the client's). A client
//! that breaks the protocol gets status 2 or is ignored; a driver that breaks it (an answer
//! for a buffer not in flight, a wrong length, an unknown status, a changed `id`) is caught
//! by [`BlockClient`], which never panics.
//!
//! # Signalling
//!
//! sDDF's: a producer notifies its consumer only when the consumer asked, through the queue's
//! signal flag ([`Producer::signal_needed`], [`Consumer::ready_to_wait`]). The driver sets up
//! the queues ([`BlockQueues::init`]) and then notifies the client, which attaches
//! ([`BlockQueues::attach`]).

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::queue::{
    Consumer, Corrupt, DataRegion, Desc, Geometry, Producer, Queue, QueueError, SharedQueue,
};

/// Bytes per block.
pub const BLOCK_SIZE: u32 = 512;
/// Bytes of command header at the start of every buffer; the data follows.
pub const BLOCK_HEADER: u32 = 64;
/// The most blocks one request moves (32 KiB).
pub const BLOCK_MAX_BLOCKS: u32 = 64;
/// Bytes per buffer: the header and the most data a request moves (a multiple of 64, so
/// each buffer's data starts on a cache line of its own).
pub const BLOCK_BUF_SIZE: u32 = BLOCK_HEADER + BLOCK_MAX_BLOCKS * BLOCK_SIZE;
/// Buffers in the data region.
pub const BLOCK_BUFFERS: u32 = 8;
/// Descriptor slots in each queue (a power of two, at least [`BLOCK_BUFFERS`], so neither
/// queue can be full while its producer has something to send).
pub const BLOCK_QUEUE_SLOTS: usize = 16;
/// Bytes the two queues span ([`BlockQueues`] of [`BLOCK_QUEUE_SLOTS`]); the description
/// declares a 4 KiB region for them.
pub const BLOCK_QUEUES_BYTES: usize = size_of::<BlockQueues<BLOCK_QUEUE_SLOTS>>();
/// Bytes of the data region as the description declares it: the buffers, rounded up to
/// 4 KiB pages.
pub const BLOCK_DATA_BYTES: usize =
    (BLOCK_BUFFERS as usize * BLOCK_BUF_SIZE as usize).next_multiple_of(4096);
/// The version of [`BlockCommand`]'s layout and meaning, in every command.
pub const BLOCK_PROTOCOL_VERSION: u32 = 1;
/// What the client writes into `status` before the hand-over: no answer yet.
pub const STATUS_PENDING: u32 = u32::MAX;

const _: () = assert!(BLOCK_BUF_SIZE == 32832 && BLOCK_BUF_SIZE.is_multiple_of(64));
const _: () = assert!(BLOCK_BUFFERS as usize <= BLOCK_QUEUE_SLOTS);
const _: () = assert!(BLOCK_QUEUES_BYTES <= 4096);
const _: () = assert!(BLOCK_DATA_BYTES == 0x41000);

/// The data region's geometry.
pub const fn geometry() -> Geometry {
    match Geometry::new(BLOCK_BUFFERS, BLOCK_BUF_SIZE) {
        Ok(geometry) => geometry,
        Err(_) => panic!("invalid block buffer geometry"),
    }
}

/// What a request asks, as [`BlockCommand::op`] encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BlockOp {
    /// Read `count` blocks from `block` into the buffer, after the header.
    Read = 1,
    /// Write `count` blocks from the buffer (after the header) to `block`.
    Write = 2,
    /// Make every write answered before this request durable.
    Flush = 3,
}

impl BlockOp {
    /// The op `value` encodes, if any.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Read),
            2 => Some(Self::Write),
            3 => Some(Self::Flush),
            _ => None,
        }
    }

    /// Whether the op moves data (read or write).
    pub const fn moves_data(self) -> bool {
        !matches!(self, Self::Flush)
    }
}

/// The driver's answer to a request, as [`BlockCommand::status`] encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BlockStatus {
    /// Done.
    Ok = 0,
    /// The disk failed the request.
    DeviceError = 1,
    /// The request was malformed or beyond the disk's end; the disk never saw it.
    BadRequest = 2,
    /// The driver has no disk.
    NoDisk = 3,
}

impl BlockStatus {
    /// The status `value` encodes, if any.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Ok),
            1 => Some(Self::DeviceError),
            2 => Some(Self::BadRequest),
            3 => Some(Self::NoDisk),
            _ => None,
        }
    }
}

/// The command header at the start of every buffer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BlockCommand {
    /// [`BlockOp`]: 1 read, 2 write, 3 flush.
    pub op: u32,
    /// Blocks to move: 1 to [`BLOCK_MAX_BLOCKS`] for a read or write, 0 for a flush.
    pub count: u32,
    /// The first block (0 for a flush).
    pub block: u64,
    /// [`BlockStatus`], written by the driver; [`STATUS_PENDING`] from the client.
    pub status: u32,
    /// The client's name for the request, passed back unchanged.
    pub id: u32,
    /// [`BLOCK_PROTOCOL_VERSION`].
    pub version: u32,
    /// Reserved: 0.
    pub reserved: [u32; 9],
}

const _: () = assert!(size_of::<BlockCommand>() == BLOCK_HEADER as usize);
const _: () = assert!(offset_of!(BlockCommand, op) == 0);
const _: () = assert!(offset_of!(BlockCommand, count) == 4);
const _: () = assert!(offset_of!(BlockCommand, block) == 8);
const _: () = assert!(offset_of!(BlockCommand, status) == 16);
const _: () = assert!(offset_of!(BlockCommand, id) == 20);
const _: () = assert!(offset_of!(BlockCommand, version) == 24);
const _: () = assert!(offset_of!(BlockCommand, reserved) == 28);

impl BlockCommand {
    /// A command of this version, with no answer yet.
    pub const fn new(op: BlockOp, block: u64, count: u32, id: u32) -> Self {
        Self {
            op: op as u32,
            count,
            block,
            status: STATUS_PENDING,
            id,
            version: BLOCK_PROTOCOL_VERSION,
            reserved: [0; 9],
        }
    }
}

/// The length of the descriptor of a request for `op` of `count` blocks (the header, and the
/// data of a read or write).
pub const fn request_len(op: BlockOp, count: u32) -> u32 {
    if op.moves_data() {
        BLOCK_HEADER + count * BLOCK_SIZE
    } else {
        BLOCK_HEADER
    }
}

/// Magic of the disk-information record ("ATBI"), stored last by the driver.
pub const BLOCK_INFO_MAGIC: u32 = 0x4154_4249;

/// What the client learns of the disk: written by the driver before it sets the queues up,
/// read by the client after it attached them ([`read_info`], [`BlockPair::info`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskInfo {
    /// The disk's size in [`BLOCK_SIZE`]-byte blocks; 0 when the driver has no disk (it then
    /// answers every request [`BlockStatus::NoDisk`]).
    pub blocks: u64,
    /// Writes fail (the device is read-only).
    pub read_only: bool,
    /// The disk has a volatile write cache that a flush empties; if not, it is
    /// write-through and a flush completes at once.
    pub write_cache: bool,
}

/// [`DiskInfo`] in shared memory, on a cache line of its own after the queues.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct InfoRecord {
    /// [`BLOCK_INFO_MAGIC`], stored last (release) by the driver.
    pub magic: AtomicU32,
    /// [`BLOCK_PROTOCOL_VERSION`].
    pub version: AtomicU32,
    /// [`DiskInfo::blocks`].
    pub blocks: AtomicU64,
    /// Bit 0 [`DiskInfo::read_only`], bit 1 [`DiskInfo::write_cache`].
    pub flags: AtomicU32,
    /// Padding to a cache line.
    pub pad: [u32; 11],
}

const _: () = assert!(size_of::<InfoRecord>() == 64);
const _: () = assert!(offset_of!(InfoRecord, blocks) == 8 && offset_of!(InfoRecord, flags) == 16);

impl InfoRecord {
    fn write(&self, info: &DiskInfo) {
        let flags = u32::from(info.read_only) | u32::from(info.write_cache) << 1;
        self.version
            .store(BLOCK_PROTOCOL_VERSION, Ordering::Relaxed);
        self.blocks.store(info.blocks, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.magic.store(BLOCK_INFO_MAGIC, Ordering::Release);
    }

    fn read(&self) -> Option<DiskInfo> {
        if self.magic.load(Ordering::Acquire) != BLOCK_INFO_MAGIC
            || self.version.load(Ordering::Relaxed) != BLOCK_PROTOCOL_VERSION
        {
            return None;
        }
        let flags = self.flags.load(Ordering::Relaxed);
        Some(DiskInfo {
            blocks: self.blocks.load(Ordering::Relaxed),
            read_only: flags & 1 != 0,
            write_cache: flags & 2 != 0,
        })
    }
}

/// The two queues of a block driver and its client, and what the client learns of the
/// disk, in one shared region.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct BlockQueues<const N: usize> {
    /// Client → driver: requests.
    pub requests: SharedQueue<N>,
    /// Driver → client: answered requests.
    pub responses: SharedQueue<N>,
    /// The disk's size and properties.
    pub info: InfoRecord,
}

const _: () = assert!(
    offset_of!(BlockQueues<BLOCK_QUEUE_SLOTS>, responses)
        == size_of::<SharedQueue<BLOCK_QUEUE_SLOTS>>()
);
const _: () = assert!(offset_of!(BlockQueues<BLOCK_QUEUE_SLOTS>, info) == 1024);
const _: () = assert!(size_of::<BlockQueues<BLOCK_QUEUE_SLOTS>>() == 1088);

/// The three parts of the region.
type Parts<'a> = (&'a mut [u8], &'a mut [u8], &'a InfoRecord);

impl<const N: usize> BlockQueues<N> {
    /// The region split into the two queues and the information record, after checking its
    /// size (the queues check their own alignment).
    fn parts(region: &mut [u8]) -> Result<Parts<'_>, QueueError> {
        if region.len() < size_of::<Self>() {
            return Err(QueueError::BadRegion);
        }
        let (queues, info) = region.split_at_mut(offset_of!(Self, info));
        let (requests, responses) = queues.split_at_mut(offset_of!(Self, responses));
        let (info, _) = InfoRecord::mut_from_prefix(info).map_err(|_| QueueError::BadRegion)?;
        Ok((requests, responses, info))
    }

    /// Sets up both queues in `region` (zeroing them) for a data region of `geometry`,
    /// with `info` about the disk written first, so that a client that attached finds it:
    /// done by the driver, before it notifies the client.
    pub fn init<'a>(
        region: &'a mut [u8],
        geometry: Geometry,
        info: &DiskInfo,
    ) -> Result<BlockPair<'a, N>, QueueError> {
        let (requests, responses, record) = Self::parts(region)?;
        record.write(info);
        Ok(BlockPair {
            requests: SharedQueue::init(requests, geometry)?,
            responses: SharedQueue::init(responses, geometry)?,
            info: record,
        })
    }

    /// Views both queues set up in `region`, checking each header against `geometry`.
    pub fn attach(region: &mut [u8], geometry: Geometry) -> Result<BlockPair<'_, N>, QueueError> {
        let (requests, responses, info) = Self::parts(region)?;
        Ok(BlockPair {
            requests: SharedQueue::attach(requests, geometry)?,
            responses: SharedQueue::attach(responses, geometry)?,
            info,
        })
    }

    /// [`BlockQueues::init`] at `base`, as the driver PD does with the address the tool
    /// patched into it.
    ///
    /// # Safety
    ///
    /// As [`SharedQueue::attach_raw`].
    pub unsafe fn init_raw<'a>(
        base: *mut u8,
        len: usize,
        geometry: Geometry,
        info: &DiskInfo,
    ) -> Result<BlockPair<'a, N>, QueueError> {
        // SAFETY: the caller's guarantee.
        Self::init(unsafe { raw_region(base, len) }?, geometry, info)
    }

    /// [`BlockQueues::attach`] at `base`.
    ///
    /// # Safety
    ///
    /// As [`SharedQueue::attach_raw`].
    pub unsafe fn attach_raw<'a>(
        base: *mut u8,
        len: usize,
        geometry: Geometry,
    ) -> Result<BlockPair<'a, N>, QueueError> {
        // SAFETY: the caller's guarantee.
        Self::attach(unsafe { raw_region(base, len) }?, geometry)
    }
}

/// What the driver published about the disk in the queues region at `base`
/// ([`BlockQueues`] of [`BLOCK_QUEUE_SLOTS`], `len` bytes): `None` until the driver has set
/// the region up (or if it is too small or of another version).
///
/// # Safety
///
/// As [`SharedQueue::attach_raw`].
pub unsafe fn read_info(base: *mut u8, len: usize) -> Option<DiskInfo> {
    // SAFETY: the caller's guarantee.
    let region = unsafe { raw_region(base, len) }.ok()?;
    let (_, _, info) = BlockQueues::<BLOCK_QUEUE_SLOTS>::parts(region).ok()?;
    info.read()
}

/// `base..base + len` as bytes, or [`QueueError::BadRegion`] for a null `base`.
///
/// # Safety
///
/// As [`SharedQueue::attach_raw`].
unsafe fn raw_region<'a>(base: *mut u8, len: usize) -> Result<&'a mut [u8], QueueError> {
    if base.is_null() {
        return Err(QueueError::BadRegion);
    }
    // SAFETY: the caller guarantees the range is mapped for 'a and used only through the
    // queues' atomics.
    Ok(unsafe { core::slice::from_raw_parts_mut(base, len) })
}

/// The two checked queues of a block driver and its client, and the disk's information.
#[derive(Clone, Copy)]
pub struct BlockPair<'a, const N: usize> {
    /// Client → driver: requests.
    pub requests: Queue<'a, N>,
    /// Driver → client: answers.
    pub responses: Queue<'a, N>,
    info: &'a InfoRecord,
}

impl<'a, const N: usize> BlockPair<'a, N> {
    /// What the driver published about the disk (`None` if it did not, or in another
    /// version).
    pub fn info(&self) -> Option<DiskInfo> {
        self.info.read()
    }

    /// The driver's ends.
    pub fn driver(self) -> BlockDriverSide<'a, N> {
        BlockDriverSide {
            requests: self.requests.consumer(),
            responses: self.responses.producer(),
        }
    }

    /// The client's ends.
    pub fn client(self) -> BlockClientSide<'a, N> {
        BlockClientSide {
            requests: self.requests.producer(),
            responses: self.responses.consumer(),
        }
    }
}

/// A block driver's ends of the two queues.
pub struct BlockDriverSide<'a, const N: usize> {
    /// Requests, from the client.
    pub requests: Consumer<'a, N>,
    /// Answers, to the client.
    pub responses: Producer<'a, N>,
}

/// A block client's ends of the two queues.
pub struct BlockClientSide<'a, const N: usize> {
    /// Requests, to the driver.
    pub requests: Producer<'a, N>,
    /// Answers, from the driver.
    pub responses: Consumer<'a, N>,
}

/// A request the driver checked: what it asks, from a copy of its header taken once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The buffer's offset in the data region.
    pub offset: u64,
    /// What it asks.
    pub op: BlockOp,
    /// The first block (0 for a flush).
    pub block: u64,
    /// Blocks (0 for a flush, else 1 to [`BLOCK_MAX_BLOCKS`]).
    pub count: u32,
}

impl Request {
    /// Whether the request lies inside a disk of `blocks` blocks.
    pub const fn within(&self, blocks: u64) -> bool {
        match self.block.checked_add(self.count as u64) {
            Some(end) => end <= blocks,
            None => false,
        }
    }

    /// The offset of its data from the buffer's start.
    pub const fn data_offset(&self) -> u64 {
        self.offset + BLOCK_HEADER as u64
    }

    /// Bytes of data it moves.
    pub const fn data_bytes(&self) -> u32 {
        self.count * BLOCK_SIZE
    }
}

/// Why [`decode_request`] refused a request (its answer is [`BlockStatus::BadRequest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// The descriptor names no buffer of the region.
    Buffer,
    /// Another protocol version.
    Version(u32),
    /// No such op.
    Op(u32),
    /// A read or write of 0 or too many blocks, or a flush of some.
    Count(u32),
    /// A flush with a block number.
    Block(u64),
    /// The descriptor's length is not the one the header implies.
    Length(u32),
    /// A reserved word is not 0.
    Reserved,
}

/// Checks the request in `desc`'s buffer (a descriptor the request queue accepted): copies
/// its header out of shared memory once and checks the copy and the descriptor's length.
/// The disk's size is checked apart ([`Request::within`]).
pub fn decode_request(data: &DataRegion<'_>, desc: &Desc) -> Result<Request, BadRequest> {
    let window = data.window(desc).map_err(|_| BadRequest::Buffer)?;
    let mut bytes = [0u8; BLOCK_HEADER as usize];
    window.read(0, &mut bytes).map_err(|_| BadRequest::Buffer)?;
    let command = BlockCommand::read_from_bytes(&bytes).map_err(|_| BadRequest::Buffer)?;
    if command.version != BLOCK_PROTOCOL_VERSION {
        return Err(BadRequest::Version(command.version));
    }
    if command.reserved != [0; 9] {
        return Err(BadRequest::Reserved);
    }
    let op = BlockOp::from_u32(command.op).ok_or(BadRequest::Op(command.op))?;
    let most =
        BLOCK_MAX_BLOCKS.min(data.geometry().buf_size().saturating_sub(BLOCK_HEADER) / BLOCK_SIZE);
    let count_ok = match op {
        BlockOp::Flush => command.count == 0,
        BlockOp::Read | BlockOp::Write => (1..=most).contains(&command.count),
    };
    if !count_ok {
        return Err(BadRequest::Count(command.count));
    }
    if op == BlockOp::Flush && command.block != 0 {
        return Err(BadRequest::Block(command.block));
    }
    if desc.len != request_len(op, command.count) {
        return Err(BadRequest::Length(desc.len));
    }
    Ok(Request {
        offset: desc.offset,
        op,
        block: command.block,
        count: command.count,
    })
}

/// Writes `status` into the header of the buffer at `offset` and returns the answer's
/// descriptor: the header, and `data_blocks` blocks of data after it (those of a read that
/// succeeded, else 0).
pub fn answer(
    data: &DataRegion<'_>,
    offset: u64,
    status: BlockStatus,
    data_blocks: u32,
) -> Result<Desc, QueueError> {
    let len = data_blocks
        .checked_mul(BLOCK_SIZE)
        .and_then(|bytes| bytes.checked_add(BLOCK_HEADER))
        .ok_or(QueueError::TooLarge)?;
    let desc = Desc::new(offset, len);
    let window = data.window(&desc)?;
    window.write(
        offset_of!(BlockCommand, status),
        &(status as u32).to_ne_bytes(),
    )?;
    Ok(desc)
}

/// Why [`BlockClient`] could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Every buffer is in flight: poll for answers first.
    Busy,
    /// Bad arguments: a read or write of 0 or more than [`BLOCK_MAX_BLOCKS`] blocks, write
    /// data that is not `count` blocks long (or none), or a read destination too short.
    Invalid,
    /// The request queue refused the request (full, or corrupt: the driver broke it).
    Queue(QueueError),
    /// The ticket names no request in flight (answered already, or never made).
    UnknownTicket,
    /// The driver's answer to this request broke the protocol (a wrong length, an unknown
    /// status, a changed `id`): the buffer is back, the request's outcome unknown.
    BrokenAnswer,
}

/// A request in flight, as [`BlockClient::start`] made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    buffer: u32,
    id: u32,
}

impl Ticket {
    /// The client's `id` of the request.
    pub const fn id(&self) -> u32 {
        self.id
    }
}

/// Where one of the client's buffers is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// With the client, unused.
    Free,
    /// With the driver.
    InFlight(Sent),
    /// Back with a checked answer, not yet polled.
    Answered(Sent, Result<BlockStatus, ClientError>),
}

/// What the client sent in a buffer (its own record, not shared memory's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    op: BlockOp,
    count: u32,
    id: u32,
}

/// The client's side of a block driver, used synchronously: [`BlockClient::start`] a
/// request, notify the driver if [`BlockClient::signal_needed`], then
/// [`BlockClient::poll`] its ticket (waiting for the driver's notification when
/// [`BlockClient::ready_to_wait`] says so) until it is answered.
///
/// Everything the driver hands back is checked against the client's own record of what it
/// sent: an answer naming a buffer that is not in flight is dropped and counted
/// ([`BlockClient::faults`]); one with a wrong length, an unknown status or a changed `id`
/// ends its request with [`ClientError::BrokenAnswer`].
pub struct BlockClient<'a> {
    queues: BlockClientSide<'a, BLOCK_QUEUE_SLOTS>,
    data: DataRegion<'a>,
    slots: [Slot; BLOCK_BUFFERS as usize],
    next_id: u32,
    faults: u64,
}

impl<'a> BlockClient<'a> {
    /// A client on `queues` (attached after the driver's start-up notification) and the data
    /// region `data` (of [`geometry`]); it owns every buffer.
    pub fn new(
        queues: BlockClientSide<'a, BLOCK_QUEUE_SLOTS>,
        data: DataRegion<'a>,
    ) -> Result<Self, QueueError> {
        if data.geometry() != geometry() || queues.requests.geometry() != geometry() {
            return Err(QueueError::BadGeometry);
        }
        Ok(Self {
            queues,
            data,
            slots: [Slot::Free; BLOCK_BUFFERS as usize],
            next_id: 1,
            faults: 0,
        })
    }

    /// Answers the driver handed back that named no buffer in flight, or broke a queue.
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Requests with the driver (started and not yet answered).
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::InFlight(_)))
            .count()
    }

    /// Starts a request: `op` of `count` blocks from `block` (both 0 for a flush), with
    /// `count * 512` bytes of `write_data` for a write (and none otherwise). The caller then
    /// notifies the driver if [`BlockClient::signal_needed`].
    pub fn start(
        &mut self,
        op: BlockOp,
        block: u64,
        count: u32,
        write_data: Option<&[u8]>,
    ) -> Result<Ticket, ClientError> {
        let count_ok = match op {
            BlockOp::Flush => count == 0 && block == 0,
            BlockOp::Read | BlockOp::Write => (1..=BLOCK_MAX_BLOCKS).contains(&count),
        };
        let data_ok = match (op, write_data) {
            (BlockOp::Write, Some(bytes)) => bytes.len() == (count * BLOCK_SIZE) as usize,
            (BlockOp::Write, None) => false,
            (_, data) => data.is_none(),
        };
        if !count_ok || !data_ok {
            return Err(ClientError::Invalid);
        }
        let buffer = self
            .slots
            .iter()
            .position(|s| *s == Slot::Free)
            .ok_or(ClientError::Busy)?;
        let index = u32::try_from(buffer).map_err(|_| ClientError::Busy)?;
        let window = self
            .data
            .buffer(index)
            .ok_or(ClientError::Queue(QueueError::BadDescriptor))?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let command = BlockCommand::new(op, block, count, id);
        window
            .write(0, command.as_bytes())
            .map_err(ClientError::Queue)?;
        if let Some(bytes) = write_data {
            window
                .write(BLOCK_HEADER as usize, bytes)
                .map_err(ClientError::Queue)?;
        }
        let offset = geometry()
            .offset(index)
            .ok_or(ClientError::Queue(QueueError::BadDescriptor))?;
        self.queues
            .requests
            .enqueue(Desc::new(offset, request_len(op, count)))
            .map_err(ClientError::Queue)?;
        if let Some(slot) = self.slots.get_mut(buffer) {
            *slot = Slot::InFlight(Sent { op, count, id });
        }
        Ok(Ticket { buffer: index, id })
    }

    /// Whether the driver asked to be notified of new requests (clearing its request): call
    /// after [`BlockClient::start`], and notify the driver if so.
    pub fn signal_needed(&self) -> bool {
        self.queues.requests.signal_needed()
    }

    /// Asks the driver for a notification of its next answer and checks once more that none
    /// is waiting: `true` if the caller may wait (a corrupt queue counts as nothing waiting).
    pub fn ready_to_wait(&self) -> bool {
        self.queues.responses.ready_to_wait().unwrap_or(true)
    }

    /// Takes the driver's answers and returns `ticket`'s, if it came: its status, with a
    /// read's data (`count * 512` bytes) copied into the start of `read_into` when it
    /// succeeded. `Ok(None)` while the driver holds the request.
    pub fn poll(
        &mut self,
        ticket: Ticket,
        read_into: &mut [u8],
    ) -> Result<Option<BlockStatus>, ClientError> {
        self.collect();
        let index = ticket.buffer as usize;
        let slot = self.slots.get(index).copied();
        let (sent, result) = match slot {
            Some(Slot::InFlight(sent)) if sent.id == ticket.id => return Ok(None),
            Some(Slot::Answered(sent, result)) if sent.id == ticket.id => (sent, result),
            _ => return Err(ClientError::UnknownTicket),
        };
        if result == Ok(BlockStatus::Ok) && sent.op == BlockOp::Read {
            let bytes = (sent.count * BLOCK_SIZE) as usize;
            let into = read_into.get_mut(..bytes).ok_or(ClientError::Invalid)?;
            let window = self
                .data
                .buffer(ticket.buffer)
                .ok_or(ClientError::UnknownTicket)?;
            window
                .read(BLOCK_HEADER as usize, into)
                .map_err(ClientError::Queue)?;
        }
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot::Free;
        }
        result.map(Some)
    }

    /// Takes every answer waiting (at most a queue's worth), checking each.
    fn collect(&mut self) {
        for _ in 0..BLOCK_QUEUE_SLOTS {
            let desc = match self.queues.responses.dequeue() {
                Ok(None) => return,
                Ok(Some(desc)) => desc,
                // A length beyond the buffer: the buffer is back, the answer broken.
                Err(Corrupt::Length(desc)) => Desc {
                    len: u32::MAX,
                    ..desc
                },
                Err(Corrupt::Offset(_)) => {
                    self.faults += 1;
                    continue;
                }
                Err(Corrupt::Index) => {
                    self.faults += 1;
                    return;
                }
            };
            let Some(index) = geometry().index(desc.offset) else {
                self.faults += 1;
                continue;
            };
            let Some(Slot::InFlight(sent)) = self.slots.get(index as usize).copied() else {
                // Not in flight: answered twice, or never sent.
                self.faults += 1;
                continue;
            };
            let result = self.check(index, &desc, sent);
            if let Some(slot) = self.slots.get_mut(index as usize) {
                *slot = Slot::Answered(sent, result);
            }
        }
    }

    /// Checks the answer `desc` in buffer `index` to the request `sent`.
    fn check(&self, index: u32, desc: &Desc, sent: Sent) -> Result<BlockStatus, ClientError> {
        let window = self.data.buffer(index).ok_or(ClientError::BrokenAnswer)?;
        let mut bytes = [0u8; BLOCK_HEADER as usize];
        window
            .read(0, &mut bytes)
            .map_err(|_| ClientError::BrokenAnswer)?;
        let command =
            BlockCommand::read_from_bytes(&bytes).map_err(|_| ClientError::BrokenAnswer)?;
        let status = BlockStatus::from_u32(command.status).ok_or(ClientError::BrokenAnswer)?;
        if command.id != sent.id {
            return Err(ClientError::BrokenAnswer);
        }
        let data_blocks = if status == BlockStatus::Ok && sent.op == BlockOp::Read {
            sent.count
        } else {
            0
        };
        if desc.len != BLOCK_HEADER + data_blocks * BLOCK_SIZE {
            return Err(ClientError::BrokenAnswer);
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use core::sync::atomic::Ordering;

    use proptest::prelude::*;

    use super::*;

    const N: usize = BLOCK_QUEUE_SLOTS;
    const INFO: DiskInfo = DiskInfo {
        blocks: 100,
        read_only: false,
        write_cache: true,
    };

    /// A cache line, so test regions have the alignment a shared page has.
    #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
    #[repr(C, align(64))]
    struct Line([u64; 8]);

    /// Shared memory for the queues and the data region.
    struct Memory {
        queues: Vec<Line>,
        data: Vec<u64>,
    }

    fn memory() -> Memory {
        Memory {
            queues: vec![Line([0; 8]); BLOCK_QUEUES_BYTES.div_ceil(64)],
            data: vec![0; geometry().region_bytes() as usize / 8],
        }
    }

    /// The two queues in shared memory, for a test to break.
    struct Shared<'a> {
        requests: &'a SharedQueue<N>,
        responses: &'a SharedQueue<N>,
    }

    /// Both sides over `memory`: the driver's ends and data view, and a client.
    fn sides(
        memory: &mut Memory,
    ) -> (
        BlockDriverSide<'_, N>,
        DataRegion<'_>,
        BlockClient<'_>,
        Shared<'_>,
    ) {
        let base = memory.queues.as_mut_ptr().cast::<u8>();
        let len = memory.queues.len() * 64;
        // SAFETY: the memory outlives the returned borrows and is only used through the
        // queue types (atomics).
        let pair = unsafe { BlockQueues::<N>::init_raw(base, len, geometry(), &INFO) }.unwrap();
        // SAFETY: as above; both sides use it through atomics only.
        let client_pair = unsafe { BlockQueues::<N>::attach_raw(base, len, geometry()) }.unwrap();
        let data_base = memory.data.as_mut_ptr().cast::<u8>();
        let data_len = memory.data.len() * 8;
        // SAFETY: as above, through the data region's atomic words only.
        let data = unsafe { DataRegion::from_raw(data_base, data_len, geometry()) }.unwrap();
        // SAFETY: as above.
        let client_data = unsafe { DataRegion::from_raw(data_base, data_len, geometry()) }.unwrap();
        let client = BlockClient::new(client_pair.client(), client_data).unwrap();
        let whole = Shared {
            requests: pair.requests.shared(),
            responses: pair.responses.shared(),
        };
        (pair.driver(), data, client, whole)
    }

    /// The driver's part: takes one request, decodes it and answers, the model of a disk of
    /// `disk` blocks kept in `blocks` (reads and writes of whole blocks).
    fn serve_one(
        driver: &mut BlockDriverSide<'_, N>,
        data: &DataRegion<'_>,
        disk: &mut [[u8; 512]],
    ) -> Option<BlockStatus> {
        let desc = driver.requests.dequeue().ok()??;
        let (status, blocks) = match decode_request(data, &desc) {
            Err(_) => (BlockStatus::BadRequest, 0),
            Ok(r) if !r.within(disk.len() as u64) => (BlockStatus::BadRequest, 0),
            Ok(r) => {
                let window = data.window(&desc).unwrap();
                for i in 0..r.count as usize {
                    let at = BLOCK_HEADER as usize + i * 512;
                    let block = &mut disk[r.block as usize + i];
                    match r.op {
                        BlockOp::Read => window.write(at, block).unwrap(),
                        BlockOp::Write => window.read(at, block).unwrap(),
                        BlockOp::Flush => {}
                    }
                }
                let blocks = if r.op == BlockOp::Read { r.count } else { 0 };
                (BlockStatus::Ok, blocks)
            }
        };
        let reply = answer(data, desc.offset, status, blocks).unwrap();
        // A hostile test driver may have broken its own queue meanwhile.
        let _ = driver.responses.enqueue(reply);
        Some(status)
    }

    #[test]
    fn the_regions_have_the_sizes_the_description_declares() {
        assert_eq!(BLOCK_BUF_SIZE, 32832);
        assert_eq!(BLOCK_QUEUES_BYTES, 1088);
        assert_eq!(BLOCK_DATA_BYTES, 0x41000);
        assert!(geometry().region_bytes() <= BLOCK_DATA_BYTES as u64);
        assert_eq!(request_len(BlockOp::Read, 2), 64 + 1024);
        assert_eq!(request_len(BlockOp::Flush, 0), 64);
    }

    #[test]
    fn a_write_then_a_read_go_round() {
        let mut mem = memory();
        let (mut driver, data, mut client, _) = sides(&mut mem);
        let mut disk = vec![[0u8; 512]; 100];
        let payload: Vec<u8> = (0..1024).map(|i| (i * 7) as u8).collect();
        let t = client.start(BlockOp::Write, 10, 2, Some(&payload)).unwrap();
        assert_eq!(client.poll(t, &mut []), Ok(None), "not answered yet");
        assert_eq!(
            serve_one(&mut driver, &data, &mut disk),
            Some(BlockStatus::Ok)
        );
        assert_eq!(client.poll(t, &mut []), Ok(Some(BlockStatus::Ok)));
        assert_eq!(client.poll(t, &mut []), Err(ClientError::UnknownTicket));
        assert_eq!(&disk[10][..], &payload[..512]);
        assert_eq!(&disk[11][..], &payload[512..]);

        let t = client.start(BlockOp::Read, 10, 2, None).unwrap();
        let f = client.start(BlockOp::Flush, 0, 0, None).unwrap();
        assert_eq!(client.in_flight(), 2);
        serve_one(&mut driver, &data, &mut disk);
        serve_one(&mut driver, &data, &mut disk);
        let mut back = vec![0u8; 1024];
        assert_eq!(client.poll(f, &mut []), Ok(Some(BlockStatus::Ok)));
        assert_eq!(client.poll(t, &mut back[..100]), Err(ClientError::Invalid));
        assert_eq!(client.poll(t, &mut back), Ok(Some(BlockStatus::Ok)));
        assert_eq!(back, payload);
        assert_eq!((client.in_flight(), client.faults()), (0, 0));

        let t = client.start(BlockOp::Read, 99, 2, None).unwrap();
        serve_one(&mut driver, &data, &mut disk);
        assert_eq!(client.poll(t, &mut back), Ok(Some(BlockStatus::BadRequest)));
    }

    #[test]
    fn the_client_refuses_bad_arguments_and_runs_out_of_buffers() {
        let mut mem = memory();
        let (_, _, mut client, _) = sides(&mut mem);
        let invalid = Err(ClientError::Invalid);
        let block = [0u8; 512];
        assert_eq!(client.start(BlockOp::Read, 0, 0, None), invalid);
        assert_eq!(client.start(BlockOp::Read, 0, 65, None), invalid);
        assert_eq!(client.start(BlockOp::Read, 0, 1, Some(&block)), invalid);
        assert_eq!(client.start(BlockOp::Write, 0, 1, None), invalid);
        assert_eq!(client.start(BlockOp::Write, 0, 2, Some(&block)), invalid);
        assert_eq!(client.start(BlockOp::Flush, 0, 1, None), invalid);
        assert_eq!(client.start(BlockOp::Flush, 3, 0, None), invalid);
        for _ in 0..BLOCK_BUFFERS {
            client.start(BlockOp::Read, 0, 64, None).unwrap();
        }
        assert_eq!(
            client.start(BlockOp::Read, 0, 1, None),
            Err(ClientError::Busy)
        );
        assert_eq!(client.in_flight(), BLOCK_BUFFERS as usize);
    }

    /// Writes `command` into buffer `index` and returns the descriptor of `len`.
    fn place(data: &DataRegion<'_>, index: u32, command: &BlockCommand, len: u32) -> Desc {
        data.buffer(index)
            .unwrap()
            .write(0, command.as_bytes())
            .unwrap();
        Desc::new(geometry().offset(index).unwrap(), len)
    }

    #[test]
    fn every_bad_request_is_refused() {
        let mut mem = memory();
        let (_, data, _, _) = sides(&mut mem);
        let good = BlockCommand::new(BlockOp::Write, 5, 3, 9);
        let len = request_len(BlockOp::Write, 3);
        let cases: [(BlockCommand, u32, BadRequest); 10] = [
            (
                BlockCommand { version: 2, ..good },
                len,
                BadRequest::Version(2),
            ),
            (
                BlockCommand { version: 0, ..good },
                len,
                BadRequest::Version(0),
            ),
            (
                BlockCommand {
                    reserved: [0, 0, 0, 0, 0, 0, 0, 0, 1],
                    ..good
                },
                len,
                BadRequest::Reserved,
            ),
            (BlockCommand { op: 0, ..good }, len, BadRequest::Op(0)),
            (BlockCommand { op: 4, ..good }, len, BadRequest::Op(4)),
            (BlockCommand { count: 0, ..good }, 64, BadRequest::Count(0)),
            (
                BlockCommand { count: 65, ..good },
                BLOCK_BUF_SIZE,
                BadRequest::Count(65),
            ),
            (
                BlockCommand::new(BlockOp::Flush, 0, 1, 1),
                64,
                BadRequest::Count(1),
            ),
            (
                BlockCommand::new(BlockOp::Flush, 7, 0, 1),
                64,
                BadRequest::Block(7),
            ),
            (good, len + 512, BadRequest::Length(len + 512)),
        ];
        for (i, (command, len, why)) in cases.into_iter().enumerate() {
            let desc = place(&data, i as u32 % BLOCK_BUFFERS, &command, len);
            assert_eq!(decode_request(&data, &desc), Err(why), "case {i}");
        }
        let desc = place(&data, 1, &good, len);
        let request = decode_request(&data, &desc).unwrap();
        assert_eq!(
            request,
            Request {
                offset: u64::from(BLOCK_BUF_SIZE),
                op: BlockOp::Write,
                block: 5,
                count: 3
            }
        );
        assert!(request.within(8) && !request.within(7));
        let far = Request {
            block: u64::MAX,
            ..request
        };
        assert!(!far.within(u64::MAX), "no overflow");
        assert_eq!(
            decode_request(&data, &Desc::new(7, 64)),
            Err(BadRequest::Buffer)
        );
        let flush = place(&data, 2, &BlockCommand::new(BlockOp::Flush, 0, 0, 1), 64);
        assert_eq!(
            decode_request(&data, &flush).map(|r| r.op),
            Ok(BlockOp::Flush)
        );
        // The answer writes the status and nothing else.
        let reply = answer(&data, desc.offset, BlockStatus::DeviceError, 0).unwrap();
        assert_eq!(reply, Desc::new(desc.offset, 64));
        let mut bytes = [0u8; 64];
        data.buffer(1).unwrap().read(0, &mut bytes).unwrap();
        let back = BlockCommand::read_from_bytes(&bytes).unwrap();
        assert_eq!(back, BlockCommand { status: 1, ..good });
        assert!(answer(&data, desc.offset, BlockStatus::Ok, 65).is_err());
    }

    #[test]
    fn the_queues_attach_only_as_set_up() {
        let mut mem = memory();
        let bytes = mem.queues.as_mut_bytes();
        assert_eq!(
            BlockQueues::<N>::attach(bytes, geometry()).err(),
            Some(QueueError::BadHeader)
        );
        let info = |bytes: &mut [u8], len: usize| {
            assert!(len <= bytes.len());
            // SAFETY: the test's own region (at least `len` bytes), used through the queue
            // types only.
            unsafe { read_info(bytes.as_mut_ptr(), len) }
        };
        let len = bytes.len();
        assert_eq!(info(bytes, len), None, "not set up");
        BlockQueues::<N>::init(bytes, geometry(), &INFO).unwrap();
        assert_eq!(info(bytes, len), Some(INFO));
        assert_eq!(info(bytes, 1000), None, "too small");
        assert_eq!(
            BlockQueues::<N>::attach(bytes, geometry()).map(|p| p.info()),
            Ok(Some(INFO))
        );
        let other = Geometry::new(4, BLOCK_BUF_SIZE).unwrap();
        assert_eq!(
            BlockQueues::<N>::attach(bytes, other).err(),
            Some(QueueError::BadGeometry)
        );
        assert_eq!(
            BlockQueues::<N>::attach(&mut bytes[..1000], geometry()).err(),
            Some(QueueError::BadRegion)
        );
        assert!(BlockQueues::<N>::attach(bytes, geometry()).is_ok());
        // SAFETY: a null base is refused before use.
        let null = unsafe { BlockQueues::<N>::attach_raw(core::ptr::null_mut(), 4096, geometry()) };
        assert_eq!(null.err(), Some(QueueError::BadRegion));
    }

    #[test]
    fn a_broken_answer_ends_its_request_and_a_stray_one_is_counted() {
        let mut mem = memory();
        let (mut driver, data, mut client, _) = sides(&mut mem);
        let a = client.start(BlockOp::Read, 0, 1, None).unwrap();
        let b = client.start(BlockOp::Read, 0, 1, None).unwrap();
        let c = client.start(BlockOp::Write, 0, 1, Some(&[1; 512])).unwrap();
        let (da, db, dc) = (
            driver.requests.dequeue().unwrap().unwrap(),
            driver.requests.dequeue().unwrap().unwrap(),
            driver.requests.dequeue().unwrap().unwrap(),
        );
        // a: a read that succeeded, answered without its data.
        let reply = answer(&data, da.offset, BlockStatus::Ok, 0).unwrap();
        driver.responses.enqueue(reply).unwrap();
        // b: an unknown status.
        data.window(&db).unwrap().write(16, &[9, 0, 0, 0]).unwrap();
        driver.responses.enqueue(Desc::new(db.offset, 64)).unwrap();
        // c: its id changed.
        let reply = answer(&data, dc.offset, BlockStatus::Ok, 0).unwrap();
        data.window(&dc).unwrap().write(20, &[0xee; 4]).unwrap();
        driver.responses.enqueue(reply).unwrap();
        // A stray answer for a free buffer, and a second one for c.
        driver
            .responses
            .enqueue(Desc::new(7 * u64::from(BLOCK_BUF_SIZE), 64))
            .unwrap();
        driver.responses.enqueue(reply).unwrap();
        let mut buf = [0u8; 512];
        assert_eq!(client.poll(a, &mut buf), Err(ClientError::BrokenAnswer));
        assert_eq!(client.poll(b, &mut buf), Err(ClientError::BrokenAnswer));
        assert_eq!(client.poll(c, &mut buf), Err(ClientError::BrokenAnswer));
        assert_eq!((client.faults(), client.in_flight()), (2, 0));
    }

    /// A poke at one word a driver may write: the response queue's producer index and
    /// slots, the request queue's consumer index, and any word of the buffers' headers.
    fn hostile_driver_poke() -> impl Strategy<Value = (u8, usize, u64)> {
        let value = prop_oneof![
            0..20u64,
            (0..9u64).prop_map(|k| k * u64::from(BLOCK_BUF_SIZE)),
            any::<u64>()
        ];
        (0..4u8, 0..(N * 3 + 8), value)
    }

    proptest! {
        /// A driver that answers, or breaks any word it can write, between the client's
        /// steps: the client never panics, a ticket is answered at most once, and each
        /// answer is either a status the driver really wrote with the right length, or
        /// broken.
        #[test]
        fn a_hostile_driver_cannot_break_the_client(
            steps in proptest::collection::vec((proptest::collection::vec(hostile_driver_poke(), 0..4), 0u8..6, 0u32..4), 0..80),
        ) {
            let mut mem = memory();
            let (mut driver, data, mut client, whole) = sides(&mut mem);
            let mut disk = vec![[0u8; 512]; 16];
            let mut tickets: Vec<Ticket> = Vec::new();
            let mut buf = vec![0u8; 64 * 512];
            for (pokes, step, arg) in steps {
                for (kind, at, value) in pokes {
                    let r = Ordering::Relaxed;
                    match kind {
                        0 => whole.responses.producer.value.store(value as u32, r),
                        1 => whole.requests.consumer.value.store(value as u32, r),
                        2 => {
                            let slot = &whole.responses.slots[at % N];
                            match at % 3 {
                                0 => slot.offset.store(value, r),
                                1 => slot.len.store(value as u32, r),
                                _ => slot.flags.store(value as u32, r),
                            }
                        }
                        _ => {
                            let w = data.buffer((at % 8) as u32).unwrap();
                            w.write((at % 8) * 8, &value.to_ne_bytes()).unwrap();
                        }
                    }
                }
                match step {
                    0 => if let Ok(t) = client.start(BlockOp::Read, u64::from(arg), arg + 1, None) {
                        tickets.push(t);
                    },
                    1 => if let Ok(t) = client.start(BlockOp::Write, u64::from(arg), 1, Some(&[arg as u8; 512])) {
                        tickets.push(t);
                    },
                    2 => { let _ = serve_one(&mut driver, &data, &mut disk); }
                    3 => {
                        // A driver handing back whatever it dequeued, unanswered.
                        if let Ok(Some(d)) = driver.requests.dequeue() {
                            let _ = driver.responses.enqueue(d);
                        }
                    }
                    _ => {
                        let before = client.in_flight();
                        let mut still = Vec::new();
                        for t in tickets.drain(..) {
                            match client.poll(t, &mut buf) {
                                Ok(None) => still.push(t),
                                Ok(Some(_)) | Err(ClientError::BrokenAnswer) => {
                                    prop_assert_eq!(client.poll(t, &mut buf), Err(ClientError::UnknownTicket));
                                }
                                Err(e) => prop_assert!(false, "poll: {:?}", e),
                            }
                        }
                        tickets = still;
                        prop_assert!(client.in_flight() <= before);
                        prop_assert_eq!(client.in_flight(), tickets.len());
                    }
                }
                let _ = (client.signal_needed(), client.ready_to_wait());
                prop_assert!(client.in_flight() <= BLOCK_BUFFERS as usize);
            }
        }

        /// Whatever header and descriptor length a client hands over, the driver's decoding
        /// agrees with a plain reading of the protocol: it accepts exactly the well-formed
        /// requests, and what it accepts is what the header said.
        #[test]
        fn decoding_accepts_exactly_the_well_formed_requests(
            op in prop_oneof![1..4u32, any::<u32>()],
            count in prop_oneof![0..70u32, any::<u32>()],
            block in prop_oneof![0..4u64, any::<u64>()],
            version in prop_oneof![Just(BLOCK_PROTOCOL_VERSION), any::<u32>()],
            reserved in prop_oneof![Just(0u32), any::<u32>()],
            len in prop_oneof![Just(None), (0..=BLOCK_BUF_SIZE).prop_map(Some)],
            status in any::<u32>(),
            id in any::<u32>(),
        ) {
            let mut mem = memory();
            let (_, data, _, _) = sides(&mut mem);
            let mut reserved_words = [0u32; 9];
            reserved_words[(status % 9) as usize] = reserved;
            let command = BlockCommand { op, count, block, status, id, version, reserved: reserved_words };
            let natural = BLOCK_HEADER.saturating_add(count.saturating_mul(BLOCK_SIZE));
            let len = len.unwrap_or(if op == 3 { BLOCK_HEADER } else { natural.min(BLOCK_BUF_SIZE) });
            let desc = place(&data, 3, &command, len);
            let well_formed = version == BLOCK_PROTOCOL_VERSION
                && reserved == 0
                && match op {
                    1 | 2 => (1..=64).contains(&count) && len == 64 + count * 512,
                    3 => count == 0 && block == 0 && len == 64,
                    _ => false,
                };
            match decode_request(&data, &desc) {
                Ok(r) => {
                    prop_assert!(well_formed);
                    prop_assert_eq!((r.op as u32, r.block, r.count, r.offset), (op, block, count, desc.offset));
                    prop_assert!(u64::from(r.data_bytes()) + u64::from(BLOCK_HEADER) <= u64::from(BLOCK_BUF_SIZE));
                }
                Err(_) => prop_assert!(!well_formed),
            }
        }

        /// A client that writes any word of the request queue and any header between the
        /// driver's steps: the driver side never panics, never takes more than the queue
        /// holds in one pass, answers only buffers it received (once each), and every
        /// request it accepts is in range.
        #[test]
        fn a_hostile_client_cannot_break_the_driver_side(
            steps in proptest::collection::vec((proptest::collection::vec(hostile_driver_poke(), 0..6), any::<bool>()), 0..60),
        ) {
            let mut mem = memory();
            let (mut driver, data, _, whole) = sides(&mut mem);
            let mut held = crate::queue::Ledger::<1>::new(geometry(), false).unwrap();
            for (pokes, serve) in steps {
                for (kind, at, value) in pokes {
                    let r = Ordering::Relaxed;
                    match kind {
                        0 => whole.requests.producer.value.store(value as u32, r),
                        1 => whole.responses.consumer.value.store(value as u32, r),
                        2 => {
                            let slot = &whole.requests.slots[at % N];
                            match at % 3 {
                                0 => slot.offset.store(value, r),
                                1 => slot.len.store(value as u32, r),
                                _ => slot.flags.store(value as u32, r),
                            }
                        }
                        _ => {
                            let w = data.buffer((at % 8) as u32).unwrap();
                            w.write((at % 8) * 8, &value.to_ne_bytes()).unwrap();
                        }
                    }
                }
                if !serve {
                    continue;
                }
                let mut taken = 0;
                loop {
                    let desc = match driver.requests.dequeue() {
                        Ok(None) | Err(Corrupt::Index) => break,
                        Err(Corrupt::Offset(_)) => {
                            taken += 1;
                            prop_assert!(taken <= N, "more than the queue holds");
                            continue;
                        }
                        Err(Corrupt::Length(d)) | Ok(Some(d)) => d,
                    };
                    taken += 1;
                    prop_assert!(taken <= N, "more than the queue holds");
                    if held.receive(&desc).is_err() {
                        continue;
                    }
                    let status = match decode_request(&data, &desc) {
                        Ok(r) => {
                            prop_assert!(r.count <= BLOCK_MAX_BLOCKS);
                            prop_assert_eq!(desc.len, request_len(r.op, r.count));
                            if r.within(1000) { BlockStatus::Ok } else { BlockStatus::BadRequest }
                        }
                        Err(_) => BlockStatus::BadRequest,
                    };
                    let reply = answer(&data, desc.offset, status, 0).unwrap();
                    match driver.responses.enqueue(reply) {
                        Ok(()) | Err(QueueError::Full | QueueError::Corrupt(Corrupt::Index)) => {
                            prop_assert!(held.give(&reply).is_ok());
                        }
                        Err(e) => prop_assert!(false, "enqueue: {:?}", e),
                    }
                }
                prop_assert_eq!(held.owned(), 0);
            }
        }
    }
}
