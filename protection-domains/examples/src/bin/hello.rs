//! The smallest PD: it greets and has nothing else to do (`hello/system.xml`).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: hello, world", pd_name());
    NullHandler::new()
}
