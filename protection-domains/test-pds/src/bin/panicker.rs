//! Test PD: panics in `init`; the runtime reports the panic to the monitor, which stops it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{NullHandler, protection_domain};

#[protection_domain]
fn init() -> NullHandler {
    atoll_microkit::debug_println!("panicker: about to panic");
    panic!("on purpose");
}
