//! The `io` PD: the I/O service PD of the default system. Its initialiser starts it at EL0; it
//! announces itself and waits for events (its service code comes with the cross-replica
//! channel work).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: running at EL0", pd_name().unwrap());
    NullHandler::new()
}
