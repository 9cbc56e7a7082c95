//! Recovery over arbitrary disk contents: the fuzz input is the disk (cut to whole blocks),
//! with a valid superblock written over block 1 when the first input byte is odd, so the
//! log scan itself sees hostile bytes. Opening must never panic and must read each block
//! at most once; reading back every listed key and one put and delete must not panic.
#![no_main]
#![forbid(unsafe_code)]

use atoll_kv::{BLOCK_SIZE, Block, BlockDevice, IoError, RamDevice, Store, Superblock};
use libfuzzer_sys::fuzz_target;

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
    let n = blocks.len() as u64;
    if n >= 4 && data.first().is_some_and(|b| b % 2 == 1) {
        let start_seq = u64::from(data.get(1).copied().unwrap_or(0) % 4);
        let active = data.get(2).copied().unwrap_or(0) % 2;
        blocks[1] = Superblock {
            generation: 2,
            start_seq,
            half_blocks: (n - 2) / 2,
            active,
        }
        .encode();
    }
    let dev = Counting {
        ram: RamDevice { blocks },
        reads: 0,
    };
    let Ok((store, _)) = Store::open(dev) else {
        return;
    };
    let dev = store.into_inner();
    assert!(dev.reads <= n, "{} reads of {n} blocks", dev.reads);
    let Ok((mut store, _)) = Store::open(dev) else {
        panic!("a store that opened once opens again");
    };
    for key in store.list(b"") {
        let _ = store.get(&key);
    }
    let _ = store.put(b"fuzz", b"value");
    let _ = store.delete(b"fuzz");
});
