//! Unit tests of the format, of recovery over damaged logs and of the store over a RAM
//! device.

use super::*;
use alloc::format;
use alloc::vec;

const NONCE: u64 = 0x0123_4567_89ab_cdef;

/// A RAM device that counts how often each block is read.
struct Counting {
    ram: RamDevice,
    reads: Vec<u32>,
}

impl Counting {
    fn new(ram: RamDevice) -> Self {
        let n = ram.blocks.len();
        Counting {
            ram,
            reads: vec![0; n],
        }
    }
}

impl BlockDevice for Counting {
    fn block_count(&self) -> u64 {
        self.ram.block_count()
    }
    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        if let Some(r) = self.reads.get_mut(block as usize) {
            *r += 1;
        }
        self.ram.read(block, buf)
    }
    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        self.ram.write(block, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

#[test]
fn a_record_encodes_to_whole_blocks_and_reads_back() {
    let key = b"config/name";
    let value = vec![7u8; 600];
    let bytes = encode_record(NONCE, 5, Kind::Put, key, &value);
    assert_eq!(bytes.len(), 2 * BLOCK_SIZE);
    assert_eq!(record_blocks(key.len(), value.len()), 2);
    let mut dev = RamDevice::new(8);
    write_blocks(&mut dev, 3, &bytes).unwrap();
    let r = read_record(&mut dev, NONCE, 2, 3, 1, 5).unwrap().unwrap();
    assert_eq!(
        (r.seq, r.kind, &r.key[..], &r.value[..]),
        (5, Kind::Put, &key[..], &value[..])
    );
    assert_eq!(decode_record(NONCE, &bytes), Some(r));
    // The wrong sequence number, a record running past the half, the wrong nonce: no record.
    assert_eq!(read_record(&mut dev, NONCE, 2, 3, 1, 6).unwrap(), None);
    assert_eq!(read_record(&mut dev, NONCE, 2, 2, 1, 5).unwrap(), None);
    assert_eq!(read_record(&mut dev, NONCE ^ 1, 2, 3, 1, 5).unwrap(), None);
    // A flipped value bit fails the body check but leaves the header valid.
    dev.blocks[4][10] ^= 1;
    assert_eq!(read_record(&mut dev, NONCE, 2, 3, 1, 5).unwrap(), None);
    assert!(parse_header(NONCE, &dev.blocks[3]).is_some());
    // A flipped header bit fails the header check, wherever it is.
    for byte in 0..HEADER_LEN {
        let mut b = dev.blocks[3];
        b[byte] ^= 0x10;
        assert!(parse_header(NONCE, &b).is_none(), "byte {byte}");
    }
}

#[test]
fn the_checks_are_keyed_with_the_nonce() {
    let bytes = encode_record(1, 9, Kind::Put, b"k", b"v");
    assert!(decode_record(1, &bytes).is_some());
    assert!(decode_record(2, &bytes).is_none());
    assert!(parse_header(2, &bytes).is_none());
    // Even a header re-checked for the other nonce keeps a body check that fails for it.
    let other = encode_record(2, 9, Kind::Put, b"k", b"w");
    let mut mixed = other.clone();
    mixed[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(b"kv");
    assert!(decode_record(2, &mixed).is_none());
}

#[test]
fn record_sizes_at_the_limits() {
    assert_eq!(record_blocks(1, 0), 1);
    assert_eq!(record_blocks(255, 512 - 32 - 255), 1);
    assert_eq!(record_blocks(255, 512 - 32 - 254), 2);
    assert_eq!(record_blocks(MAX_KEY, MAX_VALUE), 129);
    let d = encode_record(NONCE, 0, Kind::Delete, b"k", &[]);
    assert_eq!(d.len(), BLOCK_SIZE);
}

#[test]
fn the_valid_superblock_of_the_higher_generation_wins() {
    let sb = |generation| Superblock {
        generation,
        start_seq: 9,
        half_blocks: 10,
        active: (generation % 2) as u8,
        nonce: NONCE,
    };
    let (a, b) = (sb(4).encode(), sb(5).encode());
    assert_eq!(Superblock::decode(&a, 22), Some(sb(4)));
    assert_eq!(Superblock::decode(&a, 22).unwrap().nonce, NONCE);
    assert_eq!(choose_superblock(&a, &b, 22), (Some(sb(5)), 2));
    assert_eq!(choose_superblock(&b, &a, 22), (Some(sb(5)), 2));
    let mut torn = b;
    torn[20] ^= 0x80;
    assert_eq!(choose_superblock(&a, &torn, 22), (Some(sb(4)), 1));
    assert_eq!(choose_superblock(&[0; BLOCK_SIZE], &torn, 22), (None, 0));
    // Halves that do not fit the device make a superblock invalid.
    assert_eq!(Superblock::decode(&a, 21), None);
    // So does a flipped nonce byte.
    let mut n = a;
    n[41] ^= 1;
    assert_eq!(Superblock::decode(&n, 22), None);
    // Debug output keeps the nonce out.
    assert!(!format!("{:?}", sb(4)).contains(&format!("{NONCE}")));
}

#[test]
fn put_get_delete_list_and_reopen() {
    let mut s = Store::format(RamDevice::new(64), NONCE).unwrap();
    s.put(b"a/1", b"one").unwrap();
    s.put(b"a/2", &[2; 1000]).unwrap();
    s.put(b"b", b"").unwrap();
    s.put(b"a/1", b"uno").unwrap();
    assert!(s.delete(b"b").unwrap());
    assert!(!s.delete(b"b").unwrap());
    assert_eq!(s.get(b"a/1").unwrap().as_deref(), Some(&b"uno"[..]));
    assert_eq!(s.list(b"a/"), vec![b"a/1".to_vec(), b"a/2".to_vec()]);
    assert_eq!(s.get(b""), Err(Error::KeyLength));
    assert_eq!(s.put(&[1; 256], b""), Err(Error::KeyLength));
    assert_eq!(
        s.put(b"x", &vec![0; MAX_VALUE + 1]),
        Err(Error::ValueTooLarge)
    );
    assert_eq!(s.superblock().nonce, NONCE);
    let (mut s, rec) = Store::open(s.into_inner()).unwrap();
    assert_eq!(rec.records_kept, 5);
    assert_eq!(rec.log_blocks, 7);
    assert!(
        !rec.damaged() && !rec.torn_tail && rec.resyncs == 0,
        "{rec}"
    );
    assert_eq!(s.get(b"a/2").unwrap(), Some(vec![2; 1000]));
    assert_eq!(s.get(b"b").unwrap(), None);
    assert_eq!(s.len(), 2);
}

#[test]
fn compaction_keeps_the_live_records_and_full_is_reported() {
    // Halves of 5 blocks.
    let mut s = Store::format(RamDevice::new(12), NONCE).unwrap();
    for i in 0..40u8 {
        s.put(&[i % 3 + 1], &[i; 100]).unwrap();
    }
    assert!(s.superblock().generation > 1);
    assert_eq!(s.put(b"big", &[0; 3000]), Err(Error::Full));
    let (mut s, rec) = Store::open(s.into_inner()).unwrap();
    assert!(!rec.damaged(), "{rec}");
    assert_eq!(s.get(&[1]).unwrap(), Some(vec![39; 100]));
    assert_eq!(s.get(&[2]).unwrap(), Some(vec![37; 100]));
    assert_eq!(s.get(&[3]).unwrap(), Some(vec![38; 100]));
}

#[test]
fn a_blank_or_tiny_device_is_no_store() {
    assert_eq!(Store::open(RamDevice::new(16)).err(), Some(Error::NoStore));
    assert_eq!(
        Store::open(RamDevice::new(3)).err(),
        Some(Error::DeviceTooSmall)
    );
    assert_eq!(
        Store::format(RamDevice::new(3), NONCE).err(),
        Some(Error::DeviceTooSmall)
    );
}

/// A store of 10 one-block records `k0..k9` (key `[i]`, value `[i; 100]`), with each
/// record's first block, in a half of 40 blocks.
fn ten_records() -> RamDevice {
    let mut s = Store::format(RamDevice::new(82), NONCE).unwrap();
    for i in 0..10u8 {
        s.put(&[i], &[i; 100]).unwrap();
    }
    s.into_inner()
}

/// The device block of record `i` of [`ten_records`].
fn at(i: usize) -> usize {
    2 + i
}

fn values(s: &mut Store<RamDevice>) -> Vec<u8> {
    s.list(b"")
        .into_iter()
        .map(|k| {
            let v = s.get(&k).unwrap().unwrap();
            assert_eq!(v, vec![k[0]; 100]);
            k[0]
        })
        .collect()
}

#[test]
fn a_damaged_body_in_the_middle_is_skipped_and_reported() {
    let mut dev = ten_records();
    dev.blocks[at(3)][HEADER_LEN + 5] ^= 0x40;
    let (mut s, rec) = Store::open(dev).unwrap();
    assert_eq!(values(&mut s), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert_eq!(
        (rec.records_kept, rec.records_damaged, rec.blocks_damaged),
        (9, 1, 1)
    );
    assert_eq!((rec.seqs_lost, rec.resyncs, rec.torn_tail), (0, 0, false));
    assert_eq!((rec.dropped(), rec.log_blocks), (1, 10));
    // The next record goes after the last, and numbers go on.
    s.put(b"new", b"x").unwrap();
    let (mut s, rec) = Store::open(s.into_inner()).unwrap();
    assert_eq!((rec.records_kept, rec.records_damaged), (10, 1));
    assert_eq!(s.get(b"new").unwrap().as_deref(), Some(&b"x"[..]));
}

#[test]
fn a_damaged_header_in_the_middle_resyncs() {
    let mut dev = ten_records();
    dev.blocks[at(2)][6] ^= 1;
    dev.blocks[at(3)][0] ^= 1;
    let (mut s, rec) = Store::open(dev).unwrap();
    assert_eq!(values(&mut s), [0, 1, 4, 5, 6, 7, 8, 9]);
    assert_eq!((rec.records_kept, rec.seqs_lost, rec.resyncs), (8, 2, 1));
    assert_eq!((rec.records_damaged, rec.torn_tail), (0, false));
    assert_eq!(rec.dropped(), 2);
}

#[test]
fn damage_to_the_last_header_looks_like_the_end_and_is_overwritten() {
    let mut dev = ten_records();
    dev.blocks[at(9)][20] ^= 1;
    let (mut s, rec) = Store::open(dev).unwrap();
    assert_eq!(values(&mut s), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!((rec.records_kept, rec.dropped(), rec.log_blocks), (9, 0, 9));
    s.put(b"new", b"x").unwrap();
    let (_, rec) = Store::open(s.into_inner()).unwrap();
    assert_eq!((rec.records_kept, rec.dropped()), (10, 0));
}

#[test]
fn a_torn_tail_is_reported_and_later_known_as_crash_residue() {
    // A two-block record whose second block never reached the disk.
    let mut s = Store::open(ten_records()).unwrap().0;
    s.put(b"torn", &[5; 700]).unwrap();
    let mut dev = s.into_inner();
    dev.blocks[at(11)] = [0; BLOCK_SIZE];
    let (mut s, rec) = Store::open(dev).unwrap();
    assert_eq!(rec.records_kept, 10);
    assert!(
        rec.torn_tail && rec.torn_blocks == 2 && !rec.damaged(),
        "{rec}"
    );
    assert_eq!(rec.log_blocks, 12);
    assert_eq!(s.get(b"torn").unwrap(), None);
    // The next record goes after it, says so, and the torn one is no damage later.
    s.put(b"after", b"y").unwrap();
    let (mut s, rec) = Store::open(s.into_inner()).unwrap();
    assert_eq!((rec.records_kept, rec.old_torn), (11, 1));
    assert!(!rec.torn_tail && !rec.damaged(), "{rec}");
    assert_eq!(s.get(b"after").unwrap().as_deref(), Some(&b"y"[..]));
    // Without the flag, the same bad record is damage in the middle.
    let mut dev = s.into_inner();
    let last = decode_record(NONCE, &dev.blocks[at(12)]).unwrap();
    let plain = encode_record(NONCE, last.seq, last.kind, &last.key, &last.value);
    dev.blocks[at(12)].copy_from_slice(&plain);
    let (_, rec) = Store::open(dev).unwrap();
    assert_eq!(
        (rec.old_torn, rec.records_damaged, rec.blocks_damaged),
        (0, 1, 2)
    );
}

#[test]
fn a_bad_body_after_a_bad_header_is_skipped_in_the_resync() {
    let mut dev = ten_records();
    dev.blocks[at(4)][1] ^= 1;
    dev.blocks[at(5)][HEADER_LEN + 3] ^= 1;
    let (mut s, rec) = Store::open(dev).unwrap();
    assert_eq!(values(&mut s), [0, 1, 2, 3, 6, 7, 8, 9]);
    assert_eq!(
        (rec.records_kept, rec.records_damaged, rec.seqs_lost),
        (8, 1, 1)
    );
    // At the end of the log, a resync that finds only bad bodies leaves the tail past them.
    let mut dev = ten_records();
    dev.blocks[at(8)][1] ^= 1;
    dev.blocks[at(9)][HEADER_LEN + 3] ^= 1;
    let (s, rec) = Store::open(dev).unwrap();
    assert_eq!(
        (rec.records_kept, rec.seqs_lost, rec.torn_tail),
        (8, 1, true)
    );
    assert_eq!(rec.log_blocks, 10);
    assert_eq!(s.next_seq, 10);
}

#[test]
fn a_record_forged_with_another_nonce_is_not_taken_by_a_resync() {
    for (nonce, taken) in [(NONCE ^ 0x8000, false), (NONCE, true)] {
        let mut s = Store::open(ten_records()).unwrap().0;
        // A value holding, at its second block, a whole record of a far later number.
        let forged = encode_record(nonce, 1 << 20, Kind::Put, b"forged", b"evil");
        let key = b"carrier";
        let mut value = vec![0; BLOCK_SIZE - HEADER_LEN - key.len()];
        value.extend_from_slice(&forged);
        s.put(key, &value).unwrap();
        s.put(b"later", b"z").unwrap();
        let mut dev = s.into_inner();
        // Damage the carrier's header: the resync reads its value's blocks.
        dev.blocks[at(10)][4] ^= 1;
        let (mut s, rec) = Store::open(dev).unwrap();
        assert_eq!(s.get(b"forged").unwrap().is_some(), taken, "{rec}");
        assert_eq!(s.get(b"later").unwrap().is_some(), !taken, "{rec}");
        assert_eq!(s.get(b"carrier").unwrap(), None);
        if !taken {
            assert_eq!((rec.records_kept, rec.seqs_lost, rec.resyncs), (11, 1, 1));
        }
    }
}

#[test]
fn a_resync_reads_each_block_once() {
    // Damage spread over a long log with multi-block records; a half of 300 blocks.
    let mut s = Store::format(RamDevice::new(602), NONCE).unwrap();
    for i in 0..60u32 {
        s.put(
            &[(i % 7) as u8 + 1],
            &vec![i as u8; (i as usize * 97) % 2000],
        )
        .unwrap();
    }
    let mut dev = s.into_inner();
    for b in [5usize, 6, 40, 41, 42, 90, 150] {
        dev.blocks[b][(b * 13) % BLOCK_SIZE] ^= 0x20;
    }
    let (s, rec) = Store::open(Counting::new(dev)).unwrap();
    assert!(rec.damaged(), "{rec}");
    let dev = s.into_inner();
    assert!(dev.reads.iter().all(|r| *r <= 1), "{:?}", dev.reads);
}

#[test]
fn recovery_displays_on_one_line() {
    let r = Recovery {
        generation: 3,
        superblocks_valid: 2,
        records_kept: 9,
        log_blocks: 12,
        records_damaged: 1,
        blocks_damaged: 2,
        seqs_lost: 3,
        resyncs: 1,
        old_torn: 0,
        torn_tail: true,
        torn_blocks: 1,
    };
    let line = format!("{r}");
    assert!(!line.contains('\n'));
    assert_eq!(
        line,
        "generation 3 (2/2 superblocks valid): 9 records kept in 12 blocks, 1 damaged \
         dropped (2 blocks), 3 lost to 1 resyncs, 0 old torn, torn tail of 1 blocks"
    );
    assert_eq!(r.dropped(), 4);
}

#[test]
fn open_or_format_formats_only_a_blank_device() {
    // Blank: formatted, and then opened (not formatted again) with what was put.
    let (mut store, recovery) = Store::open_or_format(RamDevice::new(64), 7).expect("formatted");
    assert!(recovery.is_none());
    store.put(b"k", b"v").expect("put");
    let (mut store, recovery) = Store::open_or_format(store.into_inner(), 8).expect("opened");
    assert!(recovery.is_some());
    assert_eq!(store.get(b"k").expect("get"), Some(b"v".to_vec()));
    // Not blank and no valid superblock: refused, nothing written.
    let mut dev = store.into_inner();
    dev.write(0, &[0xA5; BLOCK_SIZE]).expect("write");
    dev.write(1, &[0x5A; BLOCK_SIZE]).expect("write");
    assert_eq!(Store::open_or_format(dev, 9).err(), Some(Error::NoStore));
}
