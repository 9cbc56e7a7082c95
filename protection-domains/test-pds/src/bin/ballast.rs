//! Ballast (`tests/systems/ballast.xml`): a PD whose program carries 640 KiB of constant
//! data, so that the image is large enough for the loader-relocation tests to load it where
//! it overlaps its own link address, whatever the rest of the system weighs. At start it
//! checks that every byte of the data arrived as built and says so.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain};

/// Bytes of ballast.
const SIZE: usize = 640 * 1024;
/// What every byte holds.
const PATTERN: u8 = 0xa5;

/// In the program's read-only data, so in the image.
static BALLAST: [u8; SIZE] = [PATTERN; SIZE];

struct Ballast;

impl Handler for Ballast {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    // Read through `black_box` so that the compiler cannot answer from the constant.
    let data = core::hint::black_box(&BALLAST);
    let intact = data.iter().filter(|&&b| b == PATTERN).count();
    let name = pd_name().unwrap_or("ballast");
    if intact == SIZE {
        debug_println!("{name}: running at EL0, {SIZE} bytes of ballast intact");
    } else {
        debug_println!("{name}: running at EL0, only {intact} of {SIZE} bytes of ballast intact");
    }
    Ballast
}
