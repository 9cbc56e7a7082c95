//! Hostile-PD test (`tests/systems/hostile.xml`): fills its kernel's line buffer for debug
//! output exactly, then keeps writing, without a newline. The kernel must cut the line, not
//! panic (this once took down the console-owning replica and every replica's log with it).
//! It then tells `echo`, on another replica, which answers through the same console.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::syscall;
use atoll_microkit::{
    Channel, Handler, NullHandler, debug_println, pd_name, protection_domain, sys,
};

const ECHO: Channel = Channel::new(0);

fn put(c: u8) {
    sys::raw(syscall::DEBUG_PUT_CHAR, u64::from(c), 0, [0; 4], 0);
}

#[protection_domain]
fn init() -> impl Handler {
    // Exactly full, then one more, then far more; only then a newline.
    for _ in 0..LOG_LINE_BYTES {
        put(b'a');
    }
    put(b'b');
    for _ in 0..1000 {
        put(b'c');
    }
    put(b'\n');
    debug_println!(
        "{}: still here after a {} byte line",
        pd_name(),
        LOG_LINE_BYTES + 1001
    );
    ECHO.notify();
    NullHandler::new()
}
