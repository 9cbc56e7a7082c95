//! A crash-safe log-structured key-value store over a block device of 512-byte blocks
//! whose writes are durable only after a flush (a volatile write cache), which serves every
//! undamaged record of a damaged disk.
//!
//! Keys are 1..=255 bytes, values 0..=65536 bytes. [`Store::put`] and [`Store::delete`]
//! return `Ok` only after the device has flushed the record: that is the acknowledged
//! point, and an acknowledged operation survives any crash. An operation in flight at a
//! crash is either wholly present or wholly absent after [`Store::open`].
//!
//! # On-disk format (version 2; all integers little-endian)
//!
//! - **Superblocks**, blocks 0 and 1. Bytes 0..8 magic `AtollKVs`, 8..12 format version,
//!   12..20 generation, 20..28 the sequence number of the active half's first record,
//!   28..36 the blocks in each half, 36..40 the active half (0 or 1), 40..48 the store's
//!   secret nonce, 48..52 CRC-32 of bytes 0..48; the rest zero. Generation `g` is written
//!   to block `g % 2`, so a new superblock never overwrites the one in force; the valid
//!   superblock with the higher generation wins.
//! - **Halves**: blocks `2..2 + h` and `2 + h..2 + 2h`, `h = (blocks - 2) / 2` (at most
//!   [`MAX_HALF_BLOCKS`]). The active half holds an append-only log of records from its
//!   first block.
//! - **Record**: a 32-byte header, then the key, then the value, padded with zeros to whole
//!   blocks. Header: 0..4 magic `AKVr`, 4..12 sequence number, 12 kind (1 put, 2 delete),
//!   13 key length, 14 flags (bit 0: the record just before this one was found torn when
//!   this one was appended), 15 zero, 16..20 value length, 20..24 the body check, 24..28
//!   zero, 28..32 the header check. A delete has no value. The body check is the CRC-32 of
//!   the nonce's 8 bytes followed by the key and the value; the header check is the CRC-32
//!   of the nonce's 8 bytes followed by header bytes 0..28.
//!
//! # Recovery
//!
//! [`Store::open`] takes the superblock in force and scans the active half from its start,
//! expecting the superblock's first sequence number and then each next one. A record whose
//! header is valid (magic, header check, possible lengths that fit in the half) and carries
//! the expected number is kept if its body check is right; if not it is *skipped by its
//! length* and counted as damaged (or as the torn tail, if nothing valid follows). When the
//! block at the scan position holds no valid header with the expected number, the scan
//! *resyncs*: it looks at every later block of the half for a valid header with a number at
//! least the expected one and a valid body, and resumes there, counting the numbers it
//! jumped over as lost. If there is none, the log ends. Every step is reported in
//! [`Recovery`]. A dropped record is as if it had never been written: its key reads as its
//! previous whole record says (an older value, or a deleted key back), which the report's
//! [`Recovery::damaged`] flags.
//!
//! This cannot take stale data: sequence numbers only grow over a store's life
//! (compaction numbers its records above every earlier attempt's), every record of the
//! active half's current use has a number at least the superblock's first one, and each
//! record is written only after the one before it is flushed, so no block beyond the true
//! end of the log holds a valid header with a number at least the expected one unless it is
//! a real later record left behind by damage. The checks are keyed with the nonce, so a
//! value a client stored that holds bytes shaped like a record cannot pass as one when a
//! resync looks inside old data (unless the client knows the nonce). Opening reads each
//! block of the active half at most once, in chunks.
//!
//! # Compaction
//!
//! When a record does not fit in the active half, every live record (with the operation
//! in flight folded in) is written to the other half, flushed, and then a superblock of
//! the next generation naming that half is written and flushed. A crash before that last
//! flush leaves the old half in force, intact; after it, the new one.
//!
//! Nothing on the disk can make this crate panic or loop: lengths are checked, arithmetic
//! is checked, and every scan is bounded by the half's size.
#![no_std]
// Nothing on a disk may panic the store: outside the host tests, the constructs that can
// panic are refused.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// The size of a block, in bytes.
pub const BLOCK_SIZE: usize = 512;
/// The longest key, in bytes.
pub const MAX_KEY: usize = 255;
/// The longest value, in bytes.
pub const MAX_VALUE: usize = 65536;
/// The on-disk format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The smallest device a store fits on: two superblocks and two halves of one block.
pub const MIN_BLOCKS: u64 = 4;
/// The largest half (1 TiB): [`Store::format`] uses no more of a larger device. It keeps the
/// sequence numbers one half's log can use below the [`SEQ_PER_GENERATION`] a compaction
/// reserves for each generation.
pub const MAX_HALF_BLOCKS: u64 = 1 << 31;

/// One block's bytes.
pub type Block = [u8; BLOCK_SIZE];

const SUPER_MAGIC: [u8; 8] = *b"AtollKVs";
const RECORD_MAGIC: [u8; 4] = *b"AKVr";
/// The bytes of a record header.
pub const HEADER_LEN: usize = 32;
/// The header bytes the header check covers (all but the check itself).
const HEADER_CHECKED: usize = 28;
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
/// Header flag: the record just before this one was found torn by the recovery after which
/// this one was appended, so that one is crash residue, not damage.
const FLAG_AFTER_TORN: u8 = 1;
/// Blocks a recovery scan asks the device for at once.
const SCAN_CHUNK: u64 = 64;
/// The superblock bytes its CRC covers.
const SUPER_CHECKED: usize = 48;

/// A block device of 512-byte blocks with a volatile write cache: a write is durable only
/// after [`BlockDevice::flush`] returns `Ok`.
pub trait BlockDevice {
    /// The number of blocks.
    fn block_count(&self) -> u64;
    /// Reads block `block` into `buf`.
    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError>;
    /// Writes `buf` to block `block` (durable after the next flush).
    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError>;
    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), IoError>;

    /// Reads the `buf.len() / 512` blocks from `block` on into `buf` (a whole number of
    /// blocks; a partial one at the end is left as it is). By default one block at a time; a
    /// device that moves several blocks per request does it in fewer.
    fn read_blocks(&mut self, block: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let mut n = block;
        for chunk in buf.chunks_exact_mut(BLOCK_SIZE) {
            let one: &mut Block = chunk.try_into().map_err(|_| IoError)?;
            self.read(n, one)?;
            n = n.checked_add(1).ok_or(IoError)?;
        }
        Ok(())
    }

    /// Writes the `buf.len() / 512` whole blocks of `buf` from `block` on (durable after
    /// the next flush, each block on its own: a crash may keep any of them). By default
    /// one block at a time.
    fn write_blocks(&mut self, block: u64, buf: &[u8]) -> Result<(), IoError> {
        let mut n = block;
        for chunk in buf.chunks_exact(BLOCK_SIZE) {
            let one: &Block = chunk.try_into().map_err(|_| IoError)?;
            self.write(n, one)?;
            n = n.checked_add(1).ok_or(IoError)?;
        }
        Ok(())
    }

    /// Writes zeros to the `count` blocks from `block` on. By default one block at a time.
    fn zero_blocks(&mut self, block: u64, count: u64) -> Result<(), IoError> {
        let zero = [0; BLOCK_SIZE];
        for i in 0..count {
            self.write(block.checked_add(i).ok_or(IoError)?, &zero)?;
        }
        Ok(())
    }
}

/// A device error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError;

/// What can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The device failed.
    Io(IoError),
    /// A key of no bytes or more than [`MAX_KEY`].
    KeyLength,
    /// A value of more than [`MAX_VALUE`] bytes.
    ValueTooLarge,
    /// The live records and this one do not fit in a half.
    Full,
    /// Neither superblock is valid for this device: no store (see [`Store::format`]).
    NoStore,
    /// The device has fewer than [`MIN_BLOCKS`] blocks.
    DeviceTooSmall,
    /// A record the index points to no longer reads back right.
    Corrupt,
    /// An earlier device error left the disk's state unknown: open the store again.
    Poisoned,
}

impl From<IoError> for Error {
    fn from(e: IoError) -> Self {
        Error::Io(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Io(_) => "device error",
            Error::KeyLength => "key length not in 1..=255",
            Error::ValueTooLarge => "value longer than 65536 bytes",
            Error::Full => "store full",
            Error::NoStore => "no valid superblock",
            Error::DeviceTooSmall => "device too small",
            Error::Corrupt => "record corrupt",
            Error::Poisoned => "store poisoned by an earlier device error",
        })
    }
}

/// What [`Store::open`] found. Its `Display` is one line for a log.
///
/// Every sequence number from the superblock's first to the one after the last record of
/// the log is accounted for exactly once: `records_kept + records_damaged + old_torn +
/// torn_tail + seqs_lost`. Damage to the last records of the log that breaks their headers
/// cannot be told from a crash before they were written: those records are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// The generation of the superblock in force.
    pub generation: u64,
    /// How many of the two superblocks were valid.
    pub superblocks_valid: u8,
    /// Records of the active log kept.
    pub records_kept: u64,
    /// Blocks of the active half the log takes (where the next record goes).
    pub log_blocks: u64,
    /// Damaged records dropped: a valid header but a bad body, with a later record after
    /// them (damage in the middle of the log, not a crash).
    pub records_damaged: u64,
    /// Blocks the damaged records took.
    pub blocks_damaged: u64,
    /// Sequence numbers the scan jumped over when it resynced past blocks with no valid
    /// header: records lost with their headers.
    pub seqs_lost: u64,
    /// How many times the scan resynced and found a later record.
    pub resyncs: u64,
    /// Records with a bad body that an earlier recovery already found as its torn tail (the
    /// record after each says so): residue of an earlier crash, not damage.
    pub old_torn: u64,
    /// Whether the log ends in a torn record: a valid header, a bad body, nothing valid
    /// after it. Normally the operation in flight at a crash (never acknowledged); damage
    /// to the body of the last acknowledged record looks the same.
    pub torn_tail: bool,
    /// Blocks the torn record took.
    pub torn_blocks: u64,
}

impl Recovery {
    /// Records of the log dropped because of damage: damaged bodies and records lost with
    /// their headers (not the torn tail or old torn records, which a crash explains).
    pub fn dropped(&self) -> u64 {
        self.records_damaged.saturating_add(self.seqs_lost)
    }

    /// Whether recovery found damage (anything a crash does not explain).
    pub fn damaged(&self) -> bool {
        self.dropped() > 0
    }
}

impl core::fmt::Display for Recovery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "generation {} ({}/2 superblocks valid): {} records kept in {} blocks, \
             {} damaged dropped ({} blocks), {} lost to {} resyncs, {} old torn, ",
            self.generation,
            self.superblocks_valid,
            self.records_kept,
            self.log_blocks,
            self.records_damaged,
            self.blocks_damaged,
            self.seqs_lost,
            self.resyncs,
            self.old_torn,
        )?;
        if self.torn_tail {
            write!(f, "torn tail of {} blocks", self.torn_blocks)
        } else {
            f.write_str("no torn tail")
        }
    }
}

/// A superblock's contents.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Grows by one at each compaction.
    pub generation: u64,
    /// The sequence number of the active half's first record.
    pub start_seq: u64,
    /// The blocks in each half.
    pub half_blocks: u64,
    /// The active half, 0 or 1.
    pub active: u8,
    /// The store's secret, chosen at [`Store::format`]: it keys every record's checks, so
    /// bytes a client stored cannot pass as a record. Kept out of `Debug` output.
    pub nonce: u64,
}

impl core::fmt::Debug for Superblock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Superblock")
            .field("generation", &self.generation)
            .field("start_seq", &self.start_seq)
            .field("half_blocks", &self.half_blocks)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// A CRC-32 keyed with the store's nonce: the nonce's bytes, then the data.
fn keyed_crc(nonce: u64, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&nonce.to_le_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn copy_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

impl Superblock {
    /// The block bytes of this superblock.
    pub fn encode(&self) -> Block {
        let mut v = Vec::with_capacity(SUPER_CHECKED.saturating_add(4));
        v.extend_from_slice(&SUPER_MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&self.generation.to_le_bytes());
        v.extend_from_slice(&self.start_seq.to_le_bytes());
        v.extend_from_slice(&self.half_blocks.to_le_bytes());
        v.extend_from_slice(&u32::from(self.active).to_le_bytes());
        v.extend_from_slice(&self.nonce.to_le_bytes());
        let c = crc(&[&v]);
        v.extend_from_slice(&c.to_le_bytes());
        let mut b = [0; BLOCK_SIZE];
        copy_into(&mut b, &v);
        b
    }

    /// The superblock in `b`, if its magic, version, CRC and fields are right for a device
    /// of `block_count` blocks.
    pub fn decode(b: &Block, block_count: u64) -> Option<Self> {
        let (magic, rest) = b.split_first_chunk::<8>()?;
        let (version, rest) = rest.split_first_chunk::<4>()?;
        let (generation, rest) = rest.split_first_chunk::<8>()?;
        let (start_seq, rest) = rest.split_first_chunk::<8>()?;
        let (half_blocks, rest) = rest.split_first_chunk::<8>()?;
        let (active, rest) = rest.split_first_chunk::<4>()?;
        let (nonce, rest) = rest.split_first_chunk::<8>()?;
        let (stored, _) = rest.split_first_chunk::<4>()?;
        if *magic != SUPER_MAGIC || u32::from_le_bytes(*version) != FORMAT_VERSION {
            return None;
        }
        if crc(&[b.get(..SUPER_CHECKED)?]) != u32::from_le_bytes(*stored) {
            return None;
        }
        let half_blocks = u64::from_le_bytes(*half_blocks);
        let needed = half_blocks.checked_mul(2)?.checked_add(2)?;
        let active = match u32::from_le_bytes(*active) {
            0 => 0,
            1 => 1,
            _ => return None,
        };
        if half_blocks == 0 || half_blocks > MAX_HALF_BLOCKS || needed > block_count {
            return None;
        }
        Some(Superblock {
            generation: u64::from_le_bytes(*generation),
            start_seq: u64::from_le_bytes(*start_seq),
            half_blocks,
            active,
            nonce: u64::from_le_bytes(*nonce),
        })
    }

    /// The first block of half `half`.
    fn half_start(&self, half: u8) -> Option<u64> {
        self.half_blocks
            .checked_mul(u64::from(half))?
            .checked_add(2)
    }
}

/// The superblock in force among blocks 0 and 1: the valid one of the higher generation.
pub fn choose_superblock(b0: &Block, b1: &Block, block_count: u64) -> (Option<Superblock>, u8) {
    let s0 = Superblock::decode(b0, block_count);
    let s1 = Superblock::decode(b1, block_count);
    let valid = u8::from(s0.is_some()).saturating_add(u8::from(s1.is_some()));
    let chosen = match (s0, s1) {
        (Some(a), Some(b)) => Some(if b.generation > a.generation { b } else { a }),
        (a, b) => a.or(b),
    };
    (chosen, valid)
}

/// A record's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sets a key's value.
    Put,
    /// Removes a key.
    Delete,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// Put or delete.
    pub kind: Kind,
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a delete).
    pub value: Vec<u8>,
}

/// The blocks a record of these lengths takes.
pub fn record_blocks(key_len: usize, value_len: usize) -> u64 {
    let bytes = HEADER_LEN.saturating_add(key_len).saturating_add(value_len);
    u64::try_from(bytes.div_ceil(BLOCK_SIZE)).unwrap_or(u64::MAX)
}

/// The blocks of a record of a store with secret `nonce`, padded to whole blocks. The
/// lengths must be valid (key 1..=255, value at most 65536, none for a delete).
pub fn encode_record(nonce: u64, seq: u64, kind: Kind, key: &[u8], value: &[u8]) -> Vec<u8> {
    encode_with_flags(nonce, seq, kind, 0, key, value)
}

fn encode_with_flags(
    nonce: u64,
    seq: u64,
    kind: Kind,
    flags: u8,
    key: &[u8],
    value: &[u8],
) -> Vec<u8> {
    let blocks = record_blocks(key.len(), value.len());
    let padded = usize::try_from(blocks)
        .ok()
        .and_then(|b| b.checked_mul(BLOCK_SIZE))
        .unwrap_or(0);
    let mut v = Vec::with_capacity(padded);
    v.extend_from_slice(&RECORD_MAGIC);
    v.extend_from_slice(&seq.to_le_bytes());
    v.push(match kind {
        Kind::Put => KIND_PUT,
        Kind::Delete => KIND_DELETE,
    });
    v.push(u8::try_from(key.len()).unwrap_or(0));
    v.extend_from_slice(&[flags, 0]);
    v.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
    v.extend_from_slice(&keyed_crc(nonce, &[key, value]).to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    let check = keyed_crc(nonce, &[&v]);
    v.extend_from_slice(&check.to_le_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v.resize(padded.max(v.len()), 0);
    v
}

/// A valid record header's fields.
#[derive(Debug, Clone, Copy)]
struct Header {
    seq: u64,
    kind: Kind,
    flags: u8,
    key_len: usize,
    value_len: usize,
    body_check: u32,
}

impl Header {
    /// The blocks the record takes.
    fn blocks(&self) -> u64 {
        record_blocks(self.key_len, self.value_len)
    }
}

/// The header at the start of `b`, if it is a valid one for a store with secret `nonce`:
/// magic, header check, zeros where zeros belong, a known kind and possible lengths.
fn parse_header(nonce: u64, b: &[u8]) -> Option<Header> {
    let (head, _) = b.split_first_chunk::<HEADER_LEN>()?;
    let (magic, rest) = head.split_first_chunk::<4>()?;
    if *magic != RECORD_MAGIC {
        return None;
    }
    let (seq, rest) = rest.split_first_chunk::<8>()?;
    let (fields, rest) = rest.split_first_chunk::<4>()?;
    let (value_len, rest) = rest.split_first_chunk::<4>()?;
    let (body_check, rest) = rest.split_first_chunk::<4>()?;
    let (reserved, rest) = rest.split_first_chunk::<4>()?;
    let (check, _) = rest.split_first_chunk::<4>()?;
    if keyed_crc(nonce, &[head.get(..HEADER_CHECKED)?]) != u32::from_le_bytes(*check) {
        return None;
    }
    let [kind, key_len, flags, zero] = *fields;
    let kind = match kind {
        KIND_PUT => Kind::Put,
        KIND_DELETE => Kind::Delete,
        _ => return None,
    };
    let value_len = usize::try_from(u32::from_le_bytes(*value_len)).ok()?;
    let valid = key_len != 0
        && zero == 0
        && *reserved == [0; 4]
        && flags & !FLAG_AFTER_TORN == 0
        && value_len <= MAX_VALUE
        && (kind == Kind::Put || value_len == 0);
    valid.then_some(Header {
        seq: u64::from_le_bytes(*seq),
        kind,
        flags,
        key_len: usize::from(key_len),
        value_len,
        body_check: u32::from_le_bytes(*body_check),
    })
}

/// The key and value of the record whose header is `h` and whose blocks start `bytes`, if
/// its body check is right.
fn check_body<'a>(nonce: u64, h: &Header, bytes: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let key_end = HEADER_LEN.checked_add(h.key_len)?;
    let value_end = key_end.checked_add(h.value_len)?;
    let key = bytes.get(HEADER_LEN..key_end)?;
    let value = bytes.get(key_end..value_end)?;
    (keyed_crc(nonce, &[key, value]) == h.body_check).then_some((key, value))
}

/// The record at the start of `bytes` (its header and as many of its blocks as `bytes`
/// holds), if both of its checks pass for a store with secret `nonce`.
pub fn decode_record(nonce: u64, bytes: &[u8]) -> Option<Record> {
    let h = parse_header(nonce, bytes)?;
    let (key, value) = check_body(nonce, &h, bytes)?;
    Some(Record {
        seq: h.seq,
        kind: h.kind,
        key: key.to_vec(),
        value: value.to_vec(),
    })
}

/// Reads the record at `offset` of the half starting at block `start` of `half_blocks`
/// blocks, expecting sequence number `seq`: `None` unless it is there, whole and valid.
/// Reads only blocks inside the half.
fn read_record<D: BlockDevice>(
    dev: &mut D,
    nonce: u64,
    start: u64,
    half_blocks: u64,
    offset: u64,
    seq: u64,
) -> Result<Option<Record>, IoError> {
    let Some(room) = half_blocks.checked_sub(offset).filter(|r| *r > 0) else {
        return Ok(None);
    };
    let Some(first) = start.checked_add(offset) else {
        return Ok(None);
    };
    let mut block = [0; BLOCK_SIZE];
    dev.read(first, &mut block)?;
    let Some(header) = parse_header(nonce, &block).filter(|h| h.seq == seq) else {
        return Ok(None);
    };
    let blocks = header.blocks();
    let Some(len) = usize::try_from(blocks)
        .ok()
        .and_then(|b| b.checked_mul(BLOCK_SIZE))
        .filter(|_| blocks <= room)
    else {
        return Ok(None);
    };
    let mut bytes = vec![0; len];
    copy_into(&mut bytes, &block);
    if blocks > 1 {
        let (Some(second), Some(rest)) = (first.checked_add(1), bytes.get_mut(BLOCK_SIZE..)) else {
            return Ok(None);
        };
        dev.read_blocks(second, rest)?;
    }
    Ok(
        check_body(nonce, &header, &bytes).map(|(key, value)| Record {
            seq: header.seq,
            kind: header.kind,
            key: key.to_vec(),
            value: value.to_vec(),
        }),
    )
}

/// Writes a record's blocks from block `first`.
fn write_blocks<D: BlockDevice>(dev: &mut D, first: u64, bytes: &[u8]) -> Result<(), Error> {
    if !bytes.len().is_multiple_of(BLOCK_SIZE) {
        return Err(Error::Corrupt);
    }
    dev.write_blocks(first, bytes)?;
    Ok(())
}

/// The bytes of `blocks` blocks, if they fit in a `usize`.
fn block_bytes(blocks: u64) -> Option<usize> {
    usize::try_from(blocks).ok()?.checked_mul(BLOCK_SIZE)
}

/// A forward-only window over one half for the recovery scan: it reads each block at most
/// once, in chunks of [`SCAN_CHUNK`], and forgets blocks before the earliest one a later
/// request may still ask for. Requests must never go back before an earlier request's
/// first block.
struct Window<'d, D: BlockDevice> {
    dev: &'d mut D,
    /// The device block of the half's first block.
    start: u64,
    /// The blocks in the half.
    half_blocks: u64,
    /// The half offset of the first block in `buf`.
    base: u64,
    /// Blocks `base..` of the half, as read.
    buf: Vec<u8>,
}

impl<'d, D: BlockDevice> Window<'d, D> {
    fn new(dev: &'d mut D, start: u64, half_blocks: u64) -> Self {
        Window {
            dev,
            start,
            half_blocks,
            base: 0,
            buf: Vec::new(),
        }
    }

    /// The half offset just past the blocks read so far.
    fn loaded_end(&self) -> u64 {
        let blocks = u64::try_from(self.buf.len() / BLOCK_SIZE).unwrap_or(u64::MAX);
        self.base.saturating_add(blocks)
    }

    /// The bytes of half blocks `from..to`, or `None` if they are not all in the half (or
    /// lie before what was already forgotten).
    fn get(&mut self, from: u64, to: u64) -> Result<Option<&[u8]>, IoError> {
        if from < self.base || from >= to || to > self.half_blocks {
            return Ok(None);
        }
        let end = self.loaded_end();
        if from >= end {
            self.buf.clear();
            self.base = from;
        } else if from.saturating_sub(self.base) >= SCAN_CHUNK {
            let Some(n) = block_bytes(from.saturating_sub(self.base)) else {
                return Ok(None);
            };
            self.buf.drain(..n.min(self.buf.len()));
            self.base = from;
        }
        let end = self.loaded_end();
        if to > end {
            let want = to.max(end.saturating_add(SCAN_CHUNK)).min(self.half_blocks);
            let (Some(add), Some(first)) = (
                block_bytes(want.saturating_sub(end)),
                self.start.checked_add(end),
            ) else {
                return Ok(None);
            };
            let old = self.buf.len();
            self.buf.resize(old.saturating_add(add), 0);
            let Some(dst) = self.buf.get_mut(old..) else {
                return Ok(None);
            };
            self.dev.read_blocks(first, dst)?;
        }
        let (Some(lo), Some(hi)) = (
            block_bytes(from.saturating_sub(self.base)),
            block_bytes(to.saturating_sub(self.base)),
        ) else {
            return Ok(None);
        };
        Ok(self.buf.get(lo..hi))
    }
}

/// A header-valid record with a bad body, not yet known to be damage, crash residue or the
/// torn tail.
#[derive(Debug, Clone, Copy)]
struct Bad {
    seq: u64,
    end: u64,
    blocks: u64,
}

/// The state of a recovery scan of the active half.
struct Scan {
    nonce: u64,
    half_blocks: u64,
    start_seq: u64,
    /// The half offset to look at next.
    pos: u64,
    /// The sequence number expected there.
    expected: u64,
    /// Where the next record goes: the end of the last record kept or skipped.
    tail: u64,
    bad: Option<Bad>,
    index: BTreeMap<Vec<u8>, Entry>,
    recovery: Recovery,
}

impl Scan {
    /// Settles the pending bad record now that a header-valid record `h` follows at `at`:
    /// crash residue if `h` says its predecessor was torn and follows it directly, damage
    /// otherwise.
    fn settle(&mut self, h: &Header, at: u64) {
        if let Some(b) = self.bad.take() {
            let residue = h.flags & FLAG_AFTER_TORN != 0
                && b.end == at
                && b.seq.checked_add(1) == Some(h.seq);
            if residue {
                self.recovery.old_torn = self.recovery.old_torn.saturating_add(1);
            } else {
                self.recovery.records_damaged = self.recovery.records_damaged.saturating_add(1);
                self.recovery.blocks_damaged =
                    self.recovery.blocks_damaged.saturating_add(b.blocks);
            }
        }
    }

    /// Takes the valid record `h` with key `key` at `at`.
    fn keep(&mut self, h: &Header, key: Vec<u8>, at: u64) {
        self.settle(h, at);
        match h.kind {
            Kind::Put => {
                self.index.insert(
                    key,
                    Entry {
                        offset: at,
                        seq: h.seq,
                        value_len: h.value_len,
                    },
                );
            }
            Kind::Delete => {
                self.index.remove(&key);
            }
        }
        self.recovery.records_kept = self.recovery.records_kept.saturating_add(1);
        let end = at.saturating_add(h.blocks());
        self.tail = self.tail.max(end);
        self.pos = end;
        self.expected = self.expected.max(h.seq.saturating_add(1));
    }

    /// Skips the header-valid record `h` at `at` whose body is bad.
    fn skip(&mut self, h: &Header, at: u64) {
        self.settle(h, at);
        let blocks = h.blocks();
        let end = at.saturating_add(blocks);
        self.bad = Some(Bad {
            seq: h.seq,
            end,
            blocks,
        });
        self.tail = self.tail.max(end);
        self.pos = self.pos.max(end);
        self.expected = self.expected.max(h.seq.saturating_add(1));
    }

    /// The valid header at half offset `at` whose record fits in the half, if any.
    fn header_at<D: BlockDevice>(
        &self,
        w: &mut Window<'_, D>,
        at: u64,
    ) -> Result<Option<Header>, IoError> {
        let Some(end) = at.checked_add(1) else {
            return Ok(None);
        };
        let header = w.get(at, end)?.and_then(|b| parse_header(self.nonce, b));
        Ok(header.filter(|h| {
            at.checked_add(h.blocks())
                .is_some_and(|e| e <= self.half_blocks)
        }))
    }

    /// The key of the record `h` at `at` if its body is valid.
    fn body_at<D: BlockDevice>(
        &self,
        w: &mut Window<'_, D>,
        h: &Header,
        at: u64,
    ) -> Result<Option<Vec<u8>>, IoError> {
        let end = at.saturating_add(h.blocks());
        Ok(w.get(at, end)?
            .and_then(|b| check_body(self.nonce, h, b))
            .map(|(key, _)| key.to_vec()))
    }

    /// One step of the scan at `pos`: `false` at the end of the log.
    fn step<D: BlockDevice>(&mut self, w: &mut Window<'_, D>) -> Result<bool, IoError> {
        let at = self.pos;
        if at >= self.half_blocks {
            return Ok(false);
        }
        if let Some(h) = self.header_at(w, at)?.filter(|h| h.seq == self.expected) {
            match self.body_at(w, &h, at)? {
                Some(key) => self.keep(&h, key, at),
                None => self.skip(&h, at),
            }
            return Ok(true);
        }
        self.resync(w)
    }

    /// Looks at every block from `pos` on for a valid header with a sequence number at
    /// least the expected one and a valid body, and resumes there. Header-valid records
    /// with bad bodies met on the way are skipped (so the tail ends up past them, and the
    /// next sequence number above theirs). `false` if there is no such record: the end of
    /// the log.
    fn resync<D: BlockDevice>(&mut self, w: &mut Window<'_, D>) -> Result<bool, IoError> {
        let mut at = self.pos;
        while at < self.half_blocks {
            if let Some(h) = self.header_at(w, at)?.filter(|h| h.seq >= self.expected) {
                match self.body_at(w, &h, at)? {
                    Some(key) => {
                        self.recovery.resyncs = self.recovery.resyncs.saturating_add(1);
                        self.keep(&h, key, at);
                        return Ok(true);
                    }
                    None => self.skip(&h, at),
                }
            }
            at = at.saturating_add(1);
        }
        Ok(false)
    }

    /// The recovery report, once the scan has ended.
    fn finish(mut self) -> (BTreeMap<Vec<u8>, Entry>, u64, u64, Option<u64>, Recovery) {
        let mut torn_end = None;
        if let Some(b) = self.bad.take() {
            self.recovery.torn_tail = true;
            self.recovery.torn_blocks = b.blocks;
            torn_end = Some(b.end);
        }
        let r = &mut self.recovery;
        r.log_blocks = self.tail;
        r.seqs_lost = self
            .expected
            .saturating_sub(self.start_seq)
            .saturating_sub(r.records_kept)
            .saturating_sub(r.records_damaged)
            .saturating_sub(r.old_torn)
            .saturating_sub(u64::from(r.torn_tail));
        // The flag the next record carries is only meaningful right after the torn one.
        let after_torn = torn_end.filter(|e| *e == self.tail);
        (
            self.index,
            self.tail,
            self.expected,
            after_torn,
            self.recovery,
        )
    }
}

/// Where a live value is: its record's offset in the active half and sequence number.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    seq: u64,
    value_len: usize,
}

/// Sequence numbers each superblock generation may use for a compaction's base: a
/// compaction of reservation generation `r` numbers its records from `r *
/// SEQ_PER_GENERATION` (or the next sequence number, if higher), so no two attempts share
/// a number. Far more records than a half holds (see [`MAX_HALF_BLOCKS`]).
pub const SEQ_PER_GENERATION: u64 = 1 << 32;

/// The store over a device `D`.
pub struct Store<D: BlockDevice> {
    dev: D,
    sb: Superblock,
    /// Blocks of the active half in use.
    tail: u64,
    next_seq: u64,
    index: BTreeMap<Vec<u8>, Entry>,
    /// Blocks the live records would take after a compaction.
    live_blocks: u64,
    /// The log ends in a torn record: the next record appended says so.
    after_torn: bool,
    poisoned: bool,
}

impl<D: BlockDevice> core::fmt::Debug for Store<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("superblock", &self.sb)
            .field("tail", &self.tail)
            .field("next_seq", &self.next_seq)
            .field("keys", &self.index.len())
            .finish_non_exhaustive()
    }
}

fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::KeyLength);
    }
    Ok(())
}

impl<D: BlockDevice> Store<D> {
    /// Makes a new, empty store on `dev`, erasing (zeroing) every block first, so that no
    /// earlier contents can ever be read as records. `nonce` is the store's secret: it keys
    /// every record's checks, so that bytes a client stores can never pass as a record.
    /// Choose it at random (from the platform's entropy source) and never show it to a
    /// client; it is kept in the superblock.
    pub fn format(mut dev: D, nonce: u64) -> Result<Self, Error> {
        let count = dev.block_count();
        if count < MIN_BLOCKS {
            return Err(Error::DeviceTooSmall);
        }
        dev.zero_blocks(0, count)?;
        dev.flush()?;
        let sb = Superblock {
            generation: 1,
            start_seq: 0,
            half_blocks: (count.saturating_sub(2) / 2).min(MAX_HALF_BLOCKS),
            active: 0,
            nonce,
        };
        dev.write(1, &sb.encode())?;
        dev.flush()?;
        Ok(Store {
            dev,
            sb,
            tail: 0,
            next_seq: 0,
            index: BTreeMap::new(),
            live_blocks: 0,
            after_torn: false,
            poisoned: false,
        })
    }

    /// Opens the store on `dev` ([`Store::open`]), or, if the device is blank (both
    /// superblock blocks all zeros, as a new disk image is), formats a new one with `nonce`
    /// ([`Store::format`]): `None` in place of the recovery report then. A device that holds
    /// no valid superblock but is not blank is refused with [`Error::NoStore`] and left as
    /// it is: its contents may be someone's data (or a store whose superblocks were both
    /// destroyed), and formatting would erase them.
    pub fn open_or_format(mut dev: D, nonce: u64) -> Result<(Self, Option<Recovery>), Error> {
        if dev.block_count() < MIN_BLOCKS {
            return Err(Error::DeviceTooSmall);
        }
        let (mut b0, mut b1) = ([0; BLOCK_SIZE], [0; BLOCK_SIZE]);
        dev.read(0, &mut b0)?;
        dev.read(1, &mut b1)?;
        if b0.iter().chain(b1.iter()).all(|b| *b == 0) {
            return Ok((Self::format(dev, nonce)?, None));
        }
        let (store, recovery) = Self::open(dev)?;
        Ok((store, Some(recovery)))
    }

    /// Opens the store on `dev`, recovering the log of the superblock in force: every
    /// record with valid checks is served, damaged ones are dropped and reported.
    pub fn open(mut dev: D) -> Result<(Self, Recovery), Error> {
        let count = dev.block_count();
        if count < MIN_BLOCKS {
            return Err(Error::DeviceTooSmall);
        }
        let (mut b0, mut b1) = ([0; BLOCK_SIZE], [0; BLOCK_SIZE]);
        dev.read(0, &mut b0)?;
        dev.read(1, &mut b1)?;
        let (sb, valid) = choose_superblock(&b0, &b1, count);
        let sb = sb.ok_or(Error::NoStore)?;
        let start = sb.half_start(sb.active).ok_or(Error::NoStore)?;
        let mut scan = Scan {
            nonce: sb.nonce,
            half_blocks: sb.half_blocks,
            start_seq: sb.start_seq,
            pos: 0,
            expected: sb.start_seq,
            tail: 0,
            bad: None,
            index: BTreeMap::new(),
            recovery: Recovery {
                generation: sb.generation,
                superblocks_valid: valid,
                ..Recovery::default()
            },
        };
        let mut window = Window::new(&mut dev, start, sb.half_blocks);
        // Each step moves `pos` forward by at least one block, or ends: bounded by the half.
        while scan.step(&mut window)? {}
        let (index, tail, next_seq, after_torn, recovery) = scan.finish();
        let mut store = Store {
            dev,
            sb,
            tail,
            next_seq,
            index,
            live_blocks: 0,
            after_torn: after_torn.is_some(),
            poisoned: false,
        };
        store.live_blocks = store.count_live();
        Ok((store, recovery))
    }

    fn count_live(&self) -> u64 {
        self.index
            .iter()
            .map(|(k, e)| record_blocks(k.len(), e.value_len))
            .fold(0u64, u64::saturating_add)
    }

    /// The device, back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    /// The number of live keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The superblock in force. It holds the store's secret nonce: the only way to get it
    /// back, not for clients' eyes.
    pub fn superblock(&self) -> Superblock {
        self.sb
    }

    /// The value of `key`, read from the device (and checked again).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let Some(entry) = self.index.get(key).copied() else {
            return Ok(None);
        };
        let start = self.sb.half_start(self.sb.active).ok_or(Error::Corrupt)?;
        match read_record(
            &mut self.dev,
            self.sb.nonce,
            start,
            self.sb.half_blocks,
            entry.offset,
            entry.seq,
        )? {
            Some(r) if r.kind == Kind::Put && r.key == key => Ok(Some(r.value)),
            _ => Err(Error::Corrupt),
        }
    }

    /// Whether `key` is live (from the index: no device access).
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// The live keys starting with `prefix`, in order.
    pub fn list(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.index
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Sets `key` to `value`; `Ok` once durable.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        check_key(key)?;
        if value.len() > MAX_VALUE {
            return Err(Error::ValueTooLarge);
        }
        self.mutate(key, Some(value))
    }

    /// Removes `key`; `Ok(false)` (and nothing written) if it was absent, `Ok(true)` once
    /// the removal is durable.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        check_key(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        self.mutate(key, None)?;
        Ok(true)
    }

    fn mutate(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let need = record_blocks(key.len(), value.map_or(0, <[u8]>::len));
        let result = if self
            .tail
            .checked_add(need)
            .is_some_and(|end| end <= self.sb.half_blocks)
        {
            self.append(key, value, need)
        } else {
            let old = self
                .index
                .get(key)
                .map_or(0, |e| record_blocks(key.len(), e.value_len));
            let after = self
                .live_blocks
                .saturating_sub(old)
                .saturating_add(if value.is_some() { need } else { 0 });
            if after > self.sb.half_blocks {
                return Err(Error::Full);
            }
            self.compact(key, value)
        };
        if matches!(result, Err(Error::Io(_))) {
            self.poisoned = true;
        }
        result
    }

    fn append(&mut self, key: &[u8], value: Option<&[u8]>, need: u64) -> Result<(), Error> {
        let seq = self.next_seq;
        let next_seq = seq.checked_add(1).ok_or(Error::Full)?;
        let kind = if value.is_some() {
            Kind::Put
        } else {
            Kind::Delete
        };
        let value = value.unwrap_or(&[]);
        let flags = if self.after_torn { FLAG_AFTER_TORN } else { 0 };
        let bytes = encode_with_flags(self.sb.nonce, seq, kind, flags, key, value);
        let start = self.sb.half_start(self.sb.active).ok_or(Error::Corrupt)?;
        let first = start.checked_add(self.tail).ok_or(Error::Full)?;
        write_blocks(&mut self.dev, first, &bytes)?;
        self.dev.flush()?;
        // Acknowledged: now the index.
        let old = self
            .index
            .get(key)
            .map_or(0, |e| record_blocks(key.len(), e.value_len));
        self.live_blocks = self.live_blocks.saturating_sub(old);
        if kind == Kind::Put {
            self.index.insert(
                key.to_vec(),
                Entry {
                    offset: self.tail,
                    seq,
                    value_len: value.len(),
                },
            );
            self.live_blocks = self.live_blocks.saturating_add(need);
        } else {
            self.index.remove(key);
        }
        self.tail = self.tail.saturating_add(need);
        self.next_seq = next_seq;
        self.after_torn = false;
        Ok(())
    }

    /// Writes every live record, with `key` set to `value` (or removed), to the other
    /// half, then switches to it with a superblock of the next generation.
    fn compact(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), Error> {
        // First a superblock of the next generation naming the same half (a reservation,
        // durable before any record of this compaction is written): the records then take
        // sequence numbers from a base no earlier attempt could have used, `generation`
        // shifted into the high bits. A compaction that crashed before its switch leaves
        // records in the other half; a later one must not let one of them pass as a
        // record of its own log (the next after its last, or one a resync finds).
        let reservation = Superblock {
            generation: self.sb.generation.checked_add(1).ok_or(Error::Full)?,
            ..self.sb
        };
        self.dev
            .write(reservation.generation % 2, &reservation.encode())?;
        self.dev.flush()?;
        self.sb = reservation;
        let base = reservation
            .generation
            .checked_mul(SEQ_PER_GENERATION)
            .ok_or(Error::Full)?
            .max(self.next_seq);
        let sb = self.sb;
        let old_start = sb.half_start(sb.active).ok_or(Error::Corrupt)?;
        let other = if sb.active == 0 { 1 } else { 0 };
        let new_start = sb.half_start(other).ok_or(Error::Corrupt)?;
        let generation = sb.generation.checked_add(1).ok_or(Error::Full)?;
        let mut index = BTreeMap::new();
        let mut offset = 0u64;
        let mut seq = base;
        let mut write = |dev: &mut D, k: &[u8], v: &[u8], offset: &mut u64, seq: &mut u64| {
            let blocks = record_blocks(k.len(), v.len());
            let end = offset.checked_add(blocks).ok_or(Error::Full)?;
            if end > sb.half_blocks {
                return Err(Error::Full);
            }
            let first = new_start.checked_add(*offset).ok_or(Error::Full)?;
            write_blocks(dev, first, &encode_record(sb.nonce, *seq, Kind::Put, k, v))?;
            index.insert(
                k.to_vec(),
                Entry {
                    offset: *offset,
                    seq: *seq,
                    value_len: v.len(),
                },
            );
            *offset = end;
            *seq = seq.checked_add(1).ok_or(Error::Full)?;
            Ok(())
        };
        for (k, e) in &self.index {
            if k.as_slice() == key {
                continue;
            }
            let record = match read_record(
                &mut self.dev,
                sb.nonce,
                old_start,
                sb.half_blocks,
                e.offset,
                e.seq,
            )? {
                Some(r) if r.kind == Kind::Put && r.key == *k => r,
                _ => return Err(Error::Corrupt),
            };
            write(&mut self.dev, k, &record.value, &mut offset, &mut seq)?;
        }
        if let Some(v) = value {
            write(&mut self.dev, key, v, &mut offset, &mut seq)?;
        }
        self.dev.flush()?;
        let new_sb = Superblock {
            generation,
            start_seq: base,
            active: other,
            ..sb
        };
        self.dev.write(generation % 2, &new_sb.encode())?;
        self.dev.flush()?;
        self.sb = new_sb;
        self.tail = offset;
        self.next_seq = seq;
        self.index = index;
        self.live_blocks = self.count_live();
        self.after_torn = false;
        Ok(())
    }
}

/// A device in RAM whose writes are durable at once (for tests and fuzzing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamDevice {
    /// The blocks.
    pub blocks: Vec<Block>,
}

impl RamDevice {
    /// A zeroed device of `count` blocks.
    pub fn new(count: usize) -> Self {
        RamDevice {
            blocks: vec![[0; BLOCK_SIZE]; count],
        }
    }
}

impl BlockDevice for RamDevice {
    fn block_count(&self) -> u64 {
        u64::try_from(self.blocks.len()).unwrap_or(u64::MAX)
    }

    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        let b = usize::try_from(block).map_err(|_| IoError)?;
        *buf = *self.blocks.get(b).ok_or(IoError)?;
        Ok(())
    }

    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        let b = usize::try_from(block).map_err(|_| IoError)?;
        *self.blocks.get_mut(b).ok_or(IoError)? = *buf;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
