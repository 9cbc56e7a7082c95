//! Test PD: announces itself, then reads memory its address space does not map, so the
//! monitor reports the fault with its name and (as its description asks) restarts it.
#![no_std]
#![no_main]

use atoll_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

/// Far above anything the tool maps for a PD.
const UNMAPPED: usize = 0x70_0000_0000;

#[protection_domain]
fn init() -> impl Handler {
    debug_println!(
        "{}: starting, about to touch unmapped memory",
        pd_name().unwrap()
    );
    // SAFETY: deliberately faults; the kernel stops this thread and tells the monitor.
    let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    debug_println!("{}: FAILED, the read did not fault", pd_name().unwrap());
    NullHandler::new()
}
