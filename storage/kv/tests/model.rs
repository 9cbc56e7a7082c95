//! The model test: a simulated disk with a volatile write cache crashes at random points
//! (any subset of the pending writes lost, the last kept one torn); after recovery the
//! store must equal a `BTreeMap` of the acknowledged operations, with the operation in
//! flight at the crash wholly present or wholly absent. And recovery over arbitrary bytes
//! never panics and reads each block at most once.

use std::collections::BTreeMap;

use atoll_kv::{BLOCK_SIZE, Block, BlockDevice, Error, IoError, RamDevice, Store, Superblock};
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
    let (mut store, _) =
        Store::open(SimDisk::new(disk, u64::MAX)).expect("the store reopens after a crash");
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
    Store::format(RamDevice::new(BLOCKS))
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
        records in prop::collection::vec((any::<u16>(), any::<u64>()), 0..8),
    ) {
        let mut blocks: Vec<Block> = bytes.chunks_exact(BLOCK_SIZE).map(|c| c.try_into().unwrap()).collect();
        let n = blocks.len();
        if let Some((start_seq, active)) = superblock {
            let sb = Superblock { generation: 3, start_seq: start_seq % 4, half_blocks: (n as u64 - 2) / 2, active: active % 2 };
            blocks[1] = sb.encode();
        }
        // Record magics in random places, to get past the first check.
        for (at, seq) in records {
            let b = 2 + usize::from(at) % (n - 2);
            blocks[b][..4].copy_from_slice(b"AKVr");
            blocks[b][4..12].copy_from_slice(&(seq % 4).to_le_bytes());
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
