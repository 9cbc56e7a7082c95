//! Hostile-PD test (`tests/systems/hostile.xml`): fills its kernel's line buffer for debug
//! output exactly, then keeps writing, without a newline. The kernel must cut the line, not
//! panic (this once took down the console-owning replica and every replica's log with it).
//! It then prints control bytes and UTF-8, which reach the console as they are, and an
//! escape sequence, whose escape byte does not, and tells `echo`, on another replica, which
//! answers through the same console.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_microkit::{
    Channel, Handler, NullHandler, debug_print, debug_println, pd_name, protection_domain,
};

const ECHO: Channel = Channel::new(0);

#[protection_domain]
fn init() -> impl Handler {
    // Exactly full, then one more, then far more; only then a newline.
    for _ in 0..LOG_LINE_BYTES {
        debug_print("a");
    }
    debug_print("b");
    for _ in 0..1000 {
        debug_print("c");
    }
    debug_print("\n");
    debug_println!(
        "{}: still here after a {} byte line",
        pd_name().unwrap(),
        LOG_LINE_BYTES + 1001
    );
    debug_println!(
        "{}: bytes \u{4}\t\u{e9} pass, an escape does not: \u{1b}[2J",
        pd_name().unwrap()
    );
    ECHO.notify();
    NullHandler::new()
}
