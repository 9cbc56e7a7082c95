//! The smallest PD: it greets and has nothing else to do (`hello/system.xml`). Its greeting
//! is formatted on the heap that `heap_size` gives it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

#[protection_domain(stack_size = 0x4000, heap_size = 0x1000)]
fn init() -> impl Handler {
    let greeting = alloc::format!("{}: hello, world", pd_name().unwrap());
    debug_println!("{greeting}");
    NullHandler::new()
}
