//! Fuzz target: any bytes, as the device tree the firmware hands the loader, must be read
//! or refused without panicking; a tree read is consistent (its size within the bytes, its
//! RAM ranges ascending and apart) and every message about it renders.
#![no_main]
#![forbid(unsafe_code)]

use std::fmt::Write;

use atoll_boards::devicetree::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut text = String::new();
    match decode(data, 0x4800_0000, atoll_boards::QEMU_VIRT_AARCH64.ram) {
        Ok(tree) => {
            assert!(tree.size <= data.len());
            let ram = tree.memory.ram();
            assert!(ram.windows(2).all(|w| w[0].end() < w[1].base));
            for note in tree.notes.iter() {
                let _ = write!(text, "{note}");
            }
            for reserved in tree.memory.reserved() {
                let _ = write!(text, "{}", reserved.source());
            }
        }
        Err(e) => {
            let _ = write!(text, "{e}");
        }
    }
});
