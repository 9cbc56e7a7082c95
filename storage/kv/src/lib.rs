//! A crash-safe log-structured key-value store over a block device of 512-byte blocks
//! whose writes are durable only after a flush (a volatile write cache).
//!
//! Keys are 1..=255 bytes, values 0..=65536 bytes. [`Store::put`] and [`Store::delete`]
//! return `Ok` only after the device has flushed the record: that is the acknowledged
//! point, and an acknowledged operation survives any crash. An operation in flight at a
//! crash is either wholly present or wholly absent after [`Store::open`].
//!
//! # On-disk format (version 1; all integers little-endian)
//!
//! - **Superblocks**, blocks 0 and 1. Bytes 0..8 magic `AtollKVs`, 8..12 format version,
//!   12..20 generation, 20..28 the sequence number of the active half's first record,
//!   28..36 the blocks in each half, 36..40 the active half (0 or 1), 40..44 CRC-32 of
//!   bytes 0..40; the rest zero. Generation `g` is written to block `g % 2`, so a new
//!   superblock never overwrites the one in force; the valid superblock with the higher
//!   generation wins.
//! - **Halves**: blocks `2..2 + h` and `2 + h..2 + 2h`, `h = (blocks - 2) / 2`. The
//!   active half holds an append-only log of records from its first block.
//! - **Record**: a 24-byte header (0..4 magic `AKVr`, 4..12 sequence number, 12 kind:
//!   1 put, 2 delete, 13 key length, 14..16 zero, 16..20 value length, 20..24 CRC-32 of
//!   header bytes 0..20, the key and the value), then the key, then the value, padded
//!   with zeros to whole blocks. A delete has no value.
//!
//! # Recovery
//!
//! [`Store::open`] takes the superblock in force and scans the active half from its
//! start: a record counts only if its magic is right, its sequence number is exactly the
//! next one expected, its lengths fit the half and its CRC is right. The first record
//! that fails ends the log: what follows is discarded (counted in [`Recovery`] when it
//! was the torn record: right magic and sequence, bad CRC or lengths). Sequence numbers
//! only grow over a store's life, so a stale record left in a half from an earlier use
//! can never pass for the next one. The scan reads each block of the half at most once.
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
pub const FORMAT_VERSION: u32 = 1;
/// The smallest device a store fits on: two superblocks and two halves of one block.
pub const MIN_BLOCKS: u64 = 4;

/// One block's bytes.
pub type Block = [u8; BLOCK_SIZE];

const SUPER_MAGIC: [u8; 8] = *b"AtollKVs";
const RECORD_MAGIC: [u8; 4] = *b"AKVr";
/// The bytes of a record header.
pub const HEADER_LEN: usize = 24;
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

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

/// What [`Store::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// The generation of the superblock in force.
    pub generation: u64,
    /// How many of the two superblocks were valid.
    pub superblocks_valid: u8,
    /// Records of the active log kept.
    pub records_kept: u64,
    /// Blocks of the active half the kept records take.
    pub log_blocks: u64,
    /// Records discarded at the tail (0 or 1: the torn record, with the right magic and
    /// sequence number but a bad CRC or lengths).
    pub records_discarded: u64,
    /// Blocks the discarded record claimed (bounded by the half).
    pub blocks_discarded: u64,
}

/// A superblock's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Grows by one at each compaction.
    pub generation: u64,
    /// The sequence number of the active half's first record.
    pub start_seq: u64,
    /// The blocks in each half.
    pub half_blocks: u64,
    /// The active half, 0 or 1.
    pub active: u8,
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
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
        let mut v = Vec::with_capacity(44);
        v.extend_from_slice(&SUPER_MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&self.generation.to_le_bytes());
        v.extend_from_slice(&self.start_seq.to_le_bytes());
        v.extend_from_slice(&self.half_blocks.to_le_bytes());
        v.extend_from_slice(&u32::from(self.active).to_le_bytes());
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
        let (stored, _) = rest.split_first_chunk::<4>()?;
        if *magic != SUPER_MAGIC || u32::from_le_bytes(*version) != FORMAT_VERSION {
            return None;
        }
        if crc(&[b.get(..40)?]) != u32::from_le_bytes(*stored) {
            return None;
        }
        let half_blocks = u64::from_le_bytes(*half_blocks);
        let needed = half_blocks.checked_mul(2)?.checked_add(2)?;
        let active = match u32::from_le_bytes(*active) {
            0 => 0,
            1 => 1,
            _ => return None,
        };
        if half_blocks == 0 || needed > block_count {
            return None;
        }
        Some(Superblock {
            generation: u64::from_le_bytes(*generation),
            start_seq: u64::from_le_bytes(*start_seq),
            half_blocks,
            active,
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

/// The blocks of a record, padded to whole blocks. The lengths must be valid
/// (key 1..=255, value at most 65536, none for a delete).
pub fn encode_record(seq: u64, kind: Kind, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(
        HEADER_LEN
            .saturating_add(key.len())
            .saturating_add(value.len()),
    );
    v.extend_from_slice(&RECORD_MAGIC);
    v.extend_from_slice(&seq.to_le_bytes());
    v.push(match kind {
        Kind::Put => KIND_PUT,
        Kind::Delete => KIND_DELETE,
    });
    v.push(u8::try_from(key.len()).unwrap_or(0));
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
    let c = crc(&[&v, key, value]);
    v.extend_from_slice(&c.to_le_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    let blocks = record_blocks(key.len(), value.len());
    let padded = usize::try_from(blocks)
        .ok()
        .and_then(|b| b.checked_mul(BLOCK_SIZE))
        .unwrap_or(v.len());
    v.resize(padded, 0);
    v
}

/// A record header's fields.
struct Header {
    seq: u64,
    kind: Kind,
    key_len: usize,
    value_len: usize,
    crc: u32,
}

/// The header at the start of `b` if its magic is right (`Ok`), or `Err(())` if not;
/// `Ok(None)` for the right magic with impossible fields.
fn parse_header(b: &Block) -> Result<Option<(u64, Option<Header>)>, ()> {
    let (magic, rest) = b.split_first_chunk::<4>().ok_or(())?;
    if *magic != RECORD_MAGIC {
        return Err(());
    }
    let (seq, rest) = rest.split_first_chunk::<8>().ok_or(())?;
    let seq = u64::from_le_bytes(*seq);
    let (fields, rest) = rest.split_first_chunk::<4>().ok_or(())?;
    let (value_len, rest) = rest.split_first_chunk::<4>().ok_or(())?;
    let (stored, _) = rest.split_first_chunk::<4>().ok_or(())?;
    let [kind, key_len, r0, r1] = *fields;
    let value_len = usize::try_from(u32::from_le_bytes(*value_len)).unwrap_or(usize::MAX);
    let kind = match kind {
        KIND_PUT => Kind::Put,
        KIND_DELETE => Kind::Delete,
        _ => return Ok(Some((seq, None))),
    };
    let valid = key_len != 0
        && r0 == 0
        && r1 == 0
        && value_len <= MAX_VALUE
        && (kind == Kind::Put || value_len == 0);
    Ok(Some((
        seq,
        valid.then_some(Header {
            seq,
            kind,
            key_len: usize::from(key_len),
            value_len,
            crc: u32::from_le_bytes(*stored),
        }),
    )))
}

/// What reading at a log position found.
enum Read {
    /// A valid record of this many blocks.
    Valid(Record, u64),
    /// The end of the log: no record with the expected sequence number starts here.
    End,
    /// The torn record: right magic and sequence, bad CRC or lengths; its blocks.
    Torn(u64),
}

/// Reads the record at `offset` of the half starting at block `start` of `half_blocks`
/// blocks, expecting sequence number `seq`. Reads only blocks inside the half.
fn read_record<D: BlockDevice>(
    dev: &mut D,
    start: u64,
    half_blocks: u64,
    offset: u64,
    seq: u64,
) -> Result<Read, IoError> {
    let Some(room) = half_blocks.checked_sub(offset).filter(|r| *r > 0) else {
        return Ok(Read::End);
    };
    let Some(first) = start.checked_add(offset) else {
        return Ok(Read::End);
    };
    let mut block = [0; BLOCK_SIZE];
    dev.read(first, &mut block)?;
    let header = match parse_header(&block) {
        Err(()) => return Ok(Read::End),
        Ok(None) => return Ok(Read::End),
        Ok(Some((s, _))) if s != seq => return Ok(Read::End),
        Ok(Some((_, None))) => return Ok(Read::Torn(1)),
        Ok(Some((_, Some(h)))) => h,
    };
    let blocks = record_blocks(header.key_len, header.value_len);
    if blocks > room {
        return Ok(Read::Torn(room));
    }
    let mut bytes = Vec::with_capacity(
        usize::try_from(blocks)
            .unwrap_or(0)
            .saturating_mul(BLOCK_SIZE),
    );
    bytes.extend_from_slice(&block);
    for i in 1..blocks {
        let Some(n) = first.checked_add(i) else {
            return Ok(Read::Torn(blocks));
        };
        dev.read(n, &mut block)?;
        bytes.extend_from_slice(&block);
    }
    let key_end = HEADER_LEN.saturating_add(header.key_len);
    let value_end = key_end.saturating_add(header.value_len);
    let (Some(head), Some(key), Some(value)) = (
        bytes.get(..20),
        bytes.get(HEADER_LEN..key_end),
        bytes.get(key_end..value_end),
    ) else {
        return Ok(Read::Torn(blocks));
    };
    if crc(&[head, key, value]) != header.crc {
        return Ok(Read::Torn(blocks));
    }
    Ok(Read::Valid(
        Record {
            seq: header.seq,
            kind: header.kind,
            key: key.to_vec(),
            value: value.to_vec(),
        },
        blocks,
    ))
}

/// Writes a record's blocks from block `first`.
fn write_blocks<D: BlockDevice>(dev: &mut D, first: u64, bytes: &[u8]) -> Result<(), Error> {
    let mut n = first;
    for chunk in bytes.chunks_exact(BLOCK_SIZE) {
        let block: &Block = chunk.try_into().map_err(|_| Error::Corrupt)?;
        dev.write(n, block)?;
        n = n.checked_add(1).ok_or(Error::Full)?;
    }
    Ok(())
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
/// a number. Far more records than a half holds.
const SEQ_PER_GENERATION: u64 = 1 << 32;

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
    /// earlier contents can ever be read as records.
    pub fn format(mut dev: D) -> Result<Self, Error> {
        let count = dev.block_count();
        if count < MIN_BLOCKS {
            return Err(Error::DeviceTooSmall);
        }
        let zero = [0; BLOCK_SIZE];
        for b in 0..count {
            dev.write(b, &zero)?;
        }
        dev.flush()?;
        let sb = Superblock {
            generation: 1,
            start_seq: 0,
            half_blocks: count.saturating_sub(2) / 2,
            active: 0,
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
            poisoned: false,
        })
    }

    /// Opens the store on `dev`, recovering the log of the superblock in force.
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
        let mut recovery = Recovery {
            generation: sb.generation,
            superblocks_valid: valid,
            ..Recovery::default()
        };
        let mut index = BTreeMap::new();
        let mut tail = 0u64;
        let mut seq = sb.start_seq;
        // Each step advances `tail` by at least one block; bounded by the half.
        while tail < sb.half_blocks {
            match read_record(&mut dev, start, sb.half_blocks, tail, seq)? {
                Read::End => break,
                Read::Torn(blocks) => {
                    recovery.records_discarded = 1;
                    recovery.blocks_discarded = blocks;
                    break;
                }
                Read::Valid(record, blocks) => {
                    match record.kind {
                        Kind::Put => {
                            index.insert(
                                record.key,
                                Entry {
                                    offset: tail,
                                    seq,
                                    value_len: record.value.len(),
                                },
                            );
                        }
                        Kind::Delete => {
                            index.remove(&record.key);
                        }
                    }
                    recovery.records_kept = recovery.records_kept.saturating_add(1);
                    tail = tail.saturating_add(blocks.max(1));
                    let Some(next) = seq.checked_add(1) else {
                        break;
                    };
                    seq = next;
                }
            }
        }
        recovery.log_blocks = tail;
        let mut store = Store {
            dev,
            sb,
            tail,
            next_seq: seq,
            index,
            live_blocks: 0,
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

    /// The superblock in force.
    pub fn superblock(&self) -> Superblock {
        self.sb
    }

    /// The value of `key`, read from the device.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let Some(entry) = self.index.get(key).copied() else {
            return Ok(None);
        };
        let start = self.sb.half_start(self.sb.active).ok_or(Error::Corrupt)?;
        match read_record(
            &mut self.dev,
            start,
            self.sb.half_blocks,
            entry.offset,
            entry.seq,
        )? {
            Read::Valid(r, _) if r.kind == Kind::Put && r.key == key => Ok(Some(r.value)),
            _ => Err(Error::Corrupt),
        }
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
        let bytes = encode_record(seq, kind, key, value);
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
        Ok(())
    }

    /// Writes every live record, with `key` set to `value` (or removed), to the other
    /// half, then switches to it with a superblock of the next generation.
    fn compact(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), Error> {
        // First a superblock of the next generation naming the same half (a reservation,
        // durable before any record of this compaction is written): the records then take
        // sequence numbers from a base no earlier attempt could have used, `generation`
        // shifted into the high bits. A compaction that crashed before its switch leaves
        // records in the other half; a later one must not let one of them pass as the
        // next record after its own last.
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
            write_blocks(dev, first, &encode_record(*seq, Kind::Put, k, v))?;
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
            let record =
                match read_record(&mut self.dev, old_start, sb.half_blocks, e.offset, e.seq)? {
                    Read::Valid(r, _) if r.kind == Kind::Put && r.key == *k => r,
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
            half_blocks: sb.half_blocks,
            active: other,
        };
        self.dev.write(generation % 2, &new_sb.encode())?;
        self.dev.flush()?;
        self.sb = new_sb;
        self.tail = offset;
        self.next_seq = seq;
        self.index = index;
        self.live_blocks = self.count_live();
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
