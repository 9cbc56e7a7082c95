//! Unit tests of the format and of the store over a RAM device.

use super::*;
use alloc::vec;

#[test]
fn a_record_encodes_to_whole_blocks_and_reads_back() {
    let key = b"config/name";
    let value = vec![7u8; 600];
    let bytes = encode_record(5, Kind::Put, key, &value);
    assert_eq!(bytes.len(), 2 * BLOCK_SIZE);
    assert_eq!(record_blocks(key.len(), value.len()), 2);
    let mut dev = RamDevice::new(8);
    write_blocks(&mut dev, 3, &bytes).unwrap();
    match read_record(&mut dev, 2, 3, 1, 5).unwrap() {
        Read::Valid(r, blocks) => {
            assert_eq!(blocks, 2);
            assert_eq!(
                (r.seq, r.kind, &r.key[..], &r.value[..]),
                (5, Kind::Put, &key[..], &value[..])
            );
        }
        _ => panic!("record not read back"),
    }
    // The wrong sequence number is the end of the log, not a torn record.
    assert!(matches!(
        read_record(&mut dev, 2, 3, 1, 6).unwrap(),
        Read::End
    ));
    // A record running past the half is torn.
    assert!(matches!(
        read_record(&mut dev, 2, 2, 1, 5).unwrap(),
        Read::Torn(1)
    ));
    // A flipped payload bit fails the CRC.
    dev.blocks[4][10] ^= 1;
    assert!(matches!(
        read_record(&mut dev, 2, 3, 1, 5).unwrap(),
        Read::Torn(2)
    ));
}

#[test]
fn record_sizes_at_the_limits() {
    assert_eq!(record_blocks(1, 0), 1);
    assert_eq!(record_blocks(255, 512 - 24 - 255), 1);
    assert_eq!(record_blocks(255, 512 - 24 - 254), 2);
    assert_eq!(record_blocks(MAX_KEY, MAX_VALUE), 129);
    let d = encode_record(0, Kind::Delete, b"k", &[]);
    assert_eq!(d.len(), BLOCK_SIZE);
}

#[test]
fn the_valid_superblock_of_the_higher_generation_wins() {
    let sb = |generation| Superblock {
        generation,
        start_seq: 9,
        half_blocks: 10,
        active: (generation % 2) as u8,
    };
    let (a, b) = (sb(4).encode(), sb(5).encode());
    assert_eq!(Superblock::decode(&a, 22), Some(sb(4)));
    assert_eq!(choose_superblock(&a, &b, 22), (Some(sb(5)), 2));
    assert_eq!(choose_superblock(&b, &a, 22), (Some(sb(5)), 2));
    let mut torn = b;
    torn[20] ^= 0x80;
    assert_eq!(choose_superblock(&a, &torn, 22), (Some(sb(4)), 1));
    assert_eq!(choose_superblock(&[0; BLOCK_SIZE], &torn, 22), (None, 0));
    // Halves that do not fit the device make a superblock invalid.
    assert_eq!(Superblock::decode(&a, 21), None);
}

#[test]
fn put_get_delete_list_and_reopen() {
    let mut s = Store::format(RamDevice::new(64)).unwrap();
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
    let (mut s, rec) = Store::open(s.into_inner()).unwrap();
    assert_eq!(rec.records_kept, 5);
    assert_eq!(rec.records_discarded, 0);
    assert_eq!(s.get(b"a/2").unwrap(), Some(vec![2; 1000]));
    assert_eq!(s.get(b"b").unwrap(), None);
    assert_eq!(s.len(), 2);
}

#[test]
fn compaction_keeps_the_live_records_and_full_is_reported() {
    // Halves of 5 blocks.
    let mut s = Store::format(RamDevice::new(12)).unwrap();
    for i in 0..40u8 {
        s.put(&[i % 3 + 1], &[i; 100]).unwrap();
    }
    assert!(s.superblock().generation > 1);
    assert_eq!(s.put(b"big", &[0; 3000]), Err(Error::Full));
    let (mut s, _) = Store::open(s.into_inner()).unwrap();
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
        Store::format(RamDevice::new(3)).err(),
        Some(Error::DeviceTooSmall)
    );
}
