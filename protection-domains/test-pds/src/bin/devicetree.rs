//! Device-tree test (`tests/systems/devicetree.xml`): the loader fills this PD's
//! `prefill_bootinfo="fdt"` region with the device tree the firmware handed it, zero past
//! the tree, or leaves it all zero when there is none. The PD reads the tree's header (its
//! magic, 0xd00dfeed big-endian, and its size) and checks the zeroes after it.
#![no_std]
#![no_main]

use atoll_microkit::{
    Handler, NullHandler, debug_println, memory_region_symbol, pd_name, protection_domain,
};

/// The region's size in `tests/systems/devicetree.xml`.
const REGION: usize = 0x10_0000;
const MAGIC: u32 = 0xd00d_feed;

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap_or("devicetree");
    let region = memory_region_symbol!(device_tree: *mut [u8], n = REGION);
    // SAFETY: the tool maps the region (REGION bytes, read-only here) for the PD's whole
    // life, and nothing writes it once the loader has filled it.
    let bytes: &[u8] = unsafe { region.as_ref() };
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u32::from_be_bytes)
    };
    let (magic, size) = (word(0), word(4) as usize);
    let zero_from = |at: usize| {
        bytes
            .get(at..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
    };
    if magic == MAGIC && size <= REGION && zero_from(size) {
        debug_println!("{name}: device tree magic {magic:#010x}, {size} bytes, zero after it");
    } else if zero_from(0) {
        debug_println!("{name}: no device tree: the region is all zero");
    } else {
        debug_println!(
            "{name}: FAILED: the region starts {magic:#010x} {size:#x} and is not zero after"
        );
    }
    NullHandler::new()
}
