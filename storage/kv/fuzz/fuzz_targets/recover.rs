//! Recovery over arbitrary disk contents: the fuzz input is the disk (cut to whole blocks).
//! When the first input byte is odd, a valid superblock is written over block 1 and a few
//! records valid for its nonce are planted where the next input bytes say (whole, or only
//! their first block), so the log scan, its skips and its resyncs see hostile bytes around
//! real headers. Opening must never panic and must read each block at most once; reading
//! back every listed key and one put and delete must not panic.
#![no_main]
#![forbid(unsafe_code)]

use atoll_kv::{
    BLOCK_SIZE, Block, BlockDevice, IoError, Kind, RamDevice, Store, Superblock, encode_record,
};
use libfuzzer_sys::fuzz_target;

/// The nonce of the superblock the target writes.
const NONCE: u64 = 0xf022_0000_0000_0001;

/// A RAM device that counts its reads.
struct Counting {
    ram: RamDevice,
    reads: u64,
}

impl BlockDevice for Counting {
    fn block_count(&self) -> u64 {
        self.ram.block_count()
    }
    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        self.reads += 1;
        self.ram.read(block, buf)
    }
    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        self.ram.write(block, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut blocks: Vec<Block> = data
        .chunks_exact(BLOCK_SIZE)
        .map(|c| c.try_into().expect("a whole block"))
        .collect();
    let n = blocks.len();
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    if n >= 4 && byte(0) % 2 == 1 {
        blocks[1] = Superblock {
            generation: 2,
            start_seq: u64::from(byte(1) % 4),
            half_blocks: (n as u64 - 2) / 2,
            active: byte(2) % 2,
            nonce: NONCE,
        }
        .encode();
        // Up to 7 planted records, 4 control bytes each: where, sequence number, value
        // length, whole or first block only.
        for i in 0..usize::from(byte(3) % 8) {
            let c = 4 + 4 * i;
            let at = 2 + usize::from(byte(c)) % (n - 2);
            let value = vec![byte(c + 2); usize::from(byte(c + 2)) * 8];
            let bytes = encode_record(
                NONCE,
                u64::from(byte(c + 1) % 8),
                Kind::Put,
                b"fuzz",
                &value,
            );
            let take = if byte(c + 3) % 2 == 0 { 1 } else { n - at };
            for (j, chunk) in bytes.chunks_exact(BLOCK_SIZE).take(take).enumerate() {
                blocks[at + j].copy_from_slice(chunk);
            }
        }
    }
    let dev = Counting {
        ram: RamDevice { blocks },
        reads: 0,
    };
    let Ok((store, _)) = Store::open(dev) else {
        return;
    };
    let dev = store.into_inner();
    assert!(dev.reads <= n as u64, "{} reads of {n} blocks", dev.reads);
    let Ok((mut store, _)) = Store::open(dev) else {
        panic!("a store that opened once opens again");
    };
    for key in store.list(b"") {
        let _ = store.get(&key);
    }
    let _ = store.put(b"fuzz", b"value");
    let _ = store.delete(b"fuzz");
});
