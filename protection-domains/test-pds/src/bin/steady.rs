//! Test PD: the lowest priority of its system, so it runs after the others have faulted,
//! and shows they did not disturb it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, NullHandler, debug_println, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("steady: still running after the others faulted");
    NullHandler::new()
}
