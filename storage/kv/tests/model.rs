//! The model test: a simulated disk with a volatile write cache crashes at random points
//! (any subset of the pending writes lost, the last kept one torn); after recovery the
//! store must equal a `BTreeMap` of the acknowledged operations, with the operation in
//! flight at the crash wholly present or wholly absent. The damaged-disk test: random byte
//! flips in the active log; every record they leave intact is still served, and what was
//! dropped is reported. And recovery over arbitrary bytes never panics and reads each block
//! at most once.

use std::collections::BTreeMap;

use atoll_kv::{
    BLOCK_SIZE, Block, BlockDevice, Error, HEADER_LEN, IoError, Kind, RamDevice, Record, Store,
    Superblock, decode_record, encode_record, record_blocks,
};
use proptest::prelude::*;

/// A disk with a volatile write cache: `durable` survives a crash, `pending` writes may
/// not. After `budget` writes and flushes, every call fails (the machine is going down).
struct SimDisk {
    durable: Vec<Block>,
    pending: Vec<(usize, Block)>,
    budget: u64,
    reads: u64,
}

impl SimDisk {
    fn new(blocks: Vec<Block>, budget: u64) -> Self {
        SimDisk {
            durable: blocks,
            pending: Vec::new(),
            budget,
            reads: 0,
        }
    }

    fn spend(&mut self) -> Result<(), IoError> {
        if self.budget == 0 {
            return Err(IoError);
        }
        self.budget -= 1;
        Ok(())
    }

    /// The disk after a crash: a random subset of the pending writes reaches it, in
    /// order, and the last of them is torn (its first `cut` bytes new, the rest old).
    fn crash(mut self, rng: &mut Rng) -> Vec<Block> {
        let kept: Vec<(usize, Block)> = self
            .pending
            .drain(..)
            .filter(|_| rng.next().is_multiple_of(2))
            .collect();
        let n = kept.len();
        for (i, (b, data)) in kept.into_iter().enumerate() {
            if i + 1 == n && rng.next().is_multiple_of(2) {
                let cut = (rng.next() % BLOCK_SIZE as u64) as usize;
                self.durable[b][..cut].copy_from_slice(&data[..cut]);
            } else {
                self.durable[b] = data;
            }
        }
        self.durable
    }
}

impl BlockDevice for SimDisk {
    fn block_count(&self) -> u64 {
        self.durable.len() as u64
    }

    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        self.reads += 1;
        let b = block as usize;
        *buf = *self.durable.get(b).ok_or(IoError)?;
        // Reads see the cache.
        if let Some((_, data)) = self.pending.iter().rev().find(|(p, _)| *p == b) {
            *buf = *data;
        }
        Ok(())
    }

    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        self.spend()?;
        let b = block as usize;
        if b >= self.durable.len() {
            return Err(IoError);
        }
        self.pending.push((b, *buf));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.spend()?;
        for (b, data) in self.pending.drain(..) {
            self.durable[b] = data;
        }
        Ok(())
    }
}

/// xorshift64*, for the crash's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    // Few short keys, so overwrites and deletes hit; values up to 3 blocks.
    let key = prop::collection::vec(0u8..4, 1..3);
    prop_oneof![
        3 => (key.clone(), prop::collection::vec(any::<u8>(), 0..1200)).prop_map(|(k, v)| Op::Put(k, v)),
        1 => key.prop_map(Op::Delete),
    ]
}

fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &Op) {
    match op {
        Op::Put(k, v) => {
            model.insert(k.clone(), v.clone());
        }
        Op::Delete(k) => {
            model.remove(k);
        }
    }
}

fn contents(store: &mut Store<SimDisk>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .list(b"")
        .into_iter()
        .map(|k| {
            let v = store
                .get(&k)
                .expect("a listed key reads back")
                .expect("a listed key is present");
            (k, v)
        })
        .collect()
}

const BLOCKS: usize = 2 + 2 * 12;
const NONCE: u64 = 0x5ec2_e7a7_0110_5eed;

/// Runs `ops` from `start`, with `budget` device calls before the crash, crashes, recovers
/// and checks against the model. Returns the disk after recovery and the model.
fn run_and_crash(
    start: Vec<Block>,
    mut model: BTreeMap<Vec<u8>, Vec<u8>>,
    ops: &[Op],
    budget: u64,
    rng: &mut Rng,
) -> (Vec<Block>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let (mut store, _) = Store::open(SimDisk::new(start, budget)).expect("a store opens");
    let mut in_flight = None;
    for op in ops {
        let result = match op {
            Op::Put(k, v) => store.put(k, v),
            Op::Delete(k) => store.delete(k).map(|_| ()),
        };
        match result {
            Ok(()) => apply(&mut model, op),
            Err(Error::Full) => {}
            Err(Error::Io(_)) => {
                in_flight = Some(op.clone());
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let disk = store.into_inner().crash(rng);
    let (mut store, recovery) =
        Store::open(SimDisk::new(disk, u64::MAX)).expect("the store reopens after a crash");
    // A crash is not damage: at most a torn tail, and earlier torn records known as such.
    assert!(!recovery.damaged(), "{recovery}");
    let got = contents(&mut store);
    if got != model {
        let mut with = model.clone();
        apply(
            &mut with,
            in_flight
                .as_ref()
                .expect("without an operation in flight, the model"),
        );
        assert_eq!(
            got, with,
            "neither the model nor the model with the operation in flight"
        );
        model = with;
    }
    (store.into_inner().durable, model)
}

fn formatted() -> Vec<Block> {
    Store::format(RamDevice::new(BLOCKS), NONCE)
        .expect("format")
        .into_inner()
        .blocks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Several crash-and-recover rounds in a row, each at a random device call.
    #[test]
    fn crashes_keep_exactly_the_acknowledged_operations(
        rounds in prop::collection::vec((prop::collection::vec(op(), 1..30), 0u64..120), 1..8),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed | 1);
        let mut disk = formatted();
        let mut model = BTreeMap::new();
        for (ops, budget) in &rounds {
            (disk, model) = run_and_crash(disk, model, ops, *budget, &mut rng);
        }
    }

    /// Arbitrary bytes, with or without a valid superblock over them, never panic, and
    /// opening reads each block at most once.
    #[test]
    fn recovery_over_arbitrary_bytes_is_bounded(
        bytes in prop::collection::vec(any::<u8>(), BLOCK_SIZE * 4..BLOCK_SIZE * 40),
        superblock in any::<Option<(u64, u8)>>(),
        records in prop::collection::vec((any::<u16>(), any::<u64>(), any::<bool>(), 0usize..1500), 0..8),
    ) {
        let mut blocks: Vec<Block> = bytes.chunks_exact(BLOCK_SIZE).map(|c| c.try_into().unwrap()).collect();
        let n = blocks.len();
        if let Some((start_seq, active)) = superblock {
            let sb = Superblock { generation: 3, start_seq: start_seq % 4, half_blocks: (n as u64 - 2) / 2, active: active % 2, nonce: NONCE };
            blocks[1] = sb.encode();
        }
        // Records valid for the nonce in random places (whole, or only their first block,
        // so some run past the half or have bad bodies), with sequence numbers near the
        // start, so the scan keeps, skips and resyncs over hostile bytes.
        for (at, seq, whole, len) in records {
            let b = 2 + usize::from(at) % (n - 2);
            let bytes = encode_record(NONCE, seq % 6, Kind::Put, b"key", &vec![7; len]);
            let take = if whole { (n - b).min(bytes.len() / BLOCK_SIZE) } else { 1 };
            for (i, chunk) in bytes.chunks_exact(BLOCK_SIZE).take(take).enumerate() {
                blocks[b + i].copy_from_slice(chunk);
            }
        }
        if let Ok((store, _)) = Store::open(SimDisk::new(blocks, u64::MAX)) {
            let disk = store.into_inner();
            prop_assert!(disk.reads <= n as u64, "{} reads of {} blocks", disk.reads, n);
            let (mut store, _) = Store::open(disk).expect("it opened once");
            for k in store.list(b"") {
                let _ = store.get(&k);
            }
            let _ = store.put(b"k", b"v");
            let _ = store.delete(b"k");
        }
    }
}

/// Every device call of a fixed workload, in turn, as the crash point.
#[test]
fn a_crash_at_every_device_call() {
    let ops: Vec<Op> = (0..40u8)
        .map(|i| match i % 5 {
            4 => Op::Delete(vec![i % 3]),
            _ => Op::Put(vec![i % 4], vec![i; usize::from(i) * 37]),
        })
        .collect();
    let mut rng = Rng(0x5eed);
    // The whole workload, uncrashed: it compacts, and fits in the budgets below.
    let (mut store, _) = Store::open(SimDisk::new(formatted(), 400)).unwrap();
    for op in &ops {
        match op {
            Op::Put(k, v) => store.put(k, v).unwrap(),
            Op::Delete(k) => drop(store.delete(k).unwrap()),
        }
    }
    assert!(
        store.superblock().generation >= 4,
        "{:?}",
        store.superblock()
    );
    assert!(store.into_inner().budget > 0);
    let mut points = 0;
    for budget in 0..400 {
        for _ in 0..4 {
            run_and_crash(formatted(), BTreeMap::new(), &ops, budget, &mut rng);
            points += 1;
        }
    }
    assert!(points >= 1600);
}

/// Opening reads each block at most once, whatever the disk holds.
#[test]
fn opening_reads_each_block_at_most_once() {
    let mut rng = Rng(77);
    for _ in 0..200 {
        let mut blocks = formatted();
        let mut s = Store::open(SimDisk::new(blocks.clone(), u64::MAX))
            .unwrap()
            .0;
        for i in 0..(rng.next() % 30) {
            let _ = s.put(
                &[(i % 5) as u8 + 1],
                &vec![i as u8; (rng.next() % 900) as usize],
            );
        }
        blocks = s.into_inner().durable;
        // Flip a random byte.
        let b = (rng.next() as usize) % blocks.len();
        let o = (rng.next() as usize) % BLOCK_SIZE;
        blocks[b][o] ^= 1 << (rng.next() % 8);
        let n = blocks.len() as u64;
        if let Ok((store, _)) = Store::open(SimDisk::new(blocks, u64::MAX)) {
            assert!(store.into_inner().reads <= n);
        }
    }
}

/// A record of the active log, where it lies.
struct Placed {
    /// Its first block, as an offset in the half.
    offset: usize,
    /// The bytes its checks cover: header, key and value (not the padding).
    len: usize,
    record: Record,
}

/// Walks the active log of an undamaged store the way recovery does without damage: each
/// record in turn, from the superblock's first sequence number, until one does not decode.
fn walk_log(blocks: &[Block], sb: &Superblock) -> Vec<Placed> {
    let half = sb.half_blocks as usize;
    let start = 2 + half * usize::from(sb.active);
    let bytes: Vec<u8> = blocks[start..start + half].concat();
    let mut log = Vec::new();
    let (mut offset, mut seq) = (0, sb.start_seq);
    while offset < half {
        let Some(record) = decode_record(sb.nonce, &bytes[offset * BLOCK_SIZE..]) else {
            break;
        };
        if record.seq != seq {
            break;
        }
        let len = HEADER_LEN + record.key.len() + record.value.len();
        let next = offset + record_blocks(record.key.len(), record.value.len()) as usize;
        log.push(Placed {
            offset,
            len,
            record,
        });
        (offset, seq) = (next, seq + 1);
    }
    log
}

/// What a key reads as after replaying `records`: its last record's value, or absent.
fn result_of(record: &Record) -> Option<Vec<u8>> {
    match record.kind {
        Kind::Put => Some(record.value.clone()),
        Kind::Delete => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The damaged-disk test. Random operations through the API (with compactions), then
    /// random byte flips anywhere in the used part of the active half. The store opens;
    /// every record the flips left intact is kept; a key whose last record is intact reads
    /// exactly as acknowledged; a key whose last record was damaged reads as one of its
    /// records from its last intact one on (an older value, absent if that is a delete or
    /// there is none: what dropping a damaged record means); and the drops are reported.
    #[test]
    fn byte_flips_in_the_log_drop_only_the_damaged_records(
        ops in prop::collection::vec(op(), 1..80),
        flips in prop::collection::vec((any::<u32>(), any::<u16>(), 1u8..=255), 1..10),
    ) {
        // Halves of 40 blocks: the workloads compact.
        let mut store = Store::format(RamDevice::new(2 + 2 * 40), NONCE).expect("format");
        let mut model = BTreeMap::new();
        for op in &ops {
            let result = match op {
                Op::Put(k, v) => store.put(k, v),
                Op::Delete(k) => store.delete(k).map(|_| ()),
            };
            match result {
                Ok(()) => apply(&mut model, op),
                Err(Error::Full) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        let sb = store.superblock();
        let mut blocks = store.into_inner().blocks;
        let log = walk_log(&blocks, &sb);
        let mut replay = BTreeMap::new();
        for p in &log {
            match result_of(&p.record) {
                Some(v) => replay.insert(p.record.key.clone(), v),
                None => replay.remove(&p.record.key),
            };
        }
        prop_assert_eq!(&replay, &model, "the log walk is the acknowledged state");
        let used = log.last().map_or(0, |p| p.offset + record_blocks(p.record.key.len(), p.record.value.len()) as usize);
        prop_assume!(used > 0);

        // Flip bytes in the used part of the active half.
        let start = 2 + sb.half_blocks as usize * usize::from(sb.active);
        let before = blocks.clone();
        for (block, byte, mask) in flips {
            let b = start + block as usize % used;
            blocks[b][usize::from(byte) % BLOCK_SIZE] ^= mask;
        }
        let covered = |blocks: &[Block], p: &Placed| -> Vec<u8> {
            blocks[start + p.offset..].concat()[..p.len].to_vec()
        };
        let intact: Vec<bool> = log.iter().map(|p| covered(&before, p) == covered(&blocks, p)).collect();

        let n = blocks.len() as u64;
        let (store, rec) = Store::open(SimDisk::new(blocks, u64::MAX)).expect("a damaged store opens");
        let disk = store.into_inner();
        prop_assert!(disk.reads <= n, "{} reads of {} blocks", disk.reads, n);
        let (mut store, rec2) = Store::open(disk).expect("it opens again");
        prop_assert_eq!(rec, rec2);

        // Every intact record is kept, and every damaged one before the last intact one is
        // reported as dropped.
        let kept = intact.iter().filter(|i| **i).count() as u64;
        let damaged = intact.iter().filter(|i| !**i).count() as u64;
        let last_intact = intact.iter().rposition(|i| *i);
        let damaged_before = last_intact.map_or(0, |l| intact[..l].iter().filter(|i| !**i).count() as u64);
        prop_assert_eq!(rec.records_kept, kept, "{}", rec);
        prop_assert!(rec.dropped() >= damaged_before, "{}", rec);
        prop_assert!(rec.dropped() + u64::from(rec.torn_tail) <= damaged, "{}", rec);
        prop_assert_eq!(rec.old_torn, 0);

        // Each key reads as its last intact record says, or as a later (damaged) one of its
        // records would if the damage spared its checks (never, in practice).
        let keys: std::collections::BTreeSet<Vec<u8>> = log.iter().map(|p| p.record.key.clone()).collect();
        for key in &keys {
            let mine: Vec<usize> = (0..log.len()).filter(|i| log[*i].record.key == *key).collect();
            let from = mine.iter().rposition(|i| intact[*i]);
            let mut allowed: Vec<Option<Vec<u8>>> = match from {
                Some(f) => mine[f..].iter().map(|i| result_of(&log[*i].record)).collect(),
                None => mine.iter().map(|i| result_of(&log[*i].record)).chain([None]).collect(),
            };
            if from == Some(mine.len() - 1) {
                allowed.truncate(1);
                prop_assert_eq!(&allowed[0], &model.get(key).cloned(), "an intact last record is the acknowledged state");
            }
            let got = store.get(key).expect("a kept record reads back");
            prop_assert!(allowed.contains(&got), "key {:?} read {:?}; {}", key, got.map(|v| v.len()), rec);
        }
        prop_assert!(store.list(b"").iter().all(|k| keys.contains(k)), "nothing from nowhere");

        // The store goes on: a new record lands after the kept ones and survives a reopen.
        let before_put: BTreeMap<Vec<u8>, Option<Vec<u8>>> = keys.iter().map(|k| (k.clone(), store.get(k).unwrap())).collect();
        match store.put(b"after damage", b"still works") {
            Ok(()) | Err(Error::Full) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        let put_ok = store.get(b"after damage").unwrap().is_some();
        let (mut store, rec3) = Store::open(store.into_inner()).expect("it opens after the put");
        prop_assert_eq!(store.get(b"after damage").unwrap().is_some(), put_ok, "{}", rec3);
        for (k, v) in before_put {
            prop_assert_eq!(store.get(&k).unwrap(), v);
        }
    }
}
