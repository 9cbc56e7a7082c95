//! Test PD: the lowest priority of its system, so it runs after the others have faulted,
//! and shows they did not disturb it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() {
    atoll_microkit::debug_println!("steady: still running after the others faulted");
}

atoll_microkit::entry!(init);
