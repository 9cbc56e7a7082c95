//! Test PD: announces itself, then reads memory its address space does not map, so the
//! monitor reports the fault with its name and (as its description asks) restarts it.
#![no_std]
#![no_main]

/// Far above anything the tool maps for a PD.
const UNMAPPED: usize = 0x70_0000_0000;

fn init() {
    atoll_microkit::debug_print(atoll_microkit::pd_name());
    atoll_microkit::debug_print(": starting, about to touch unmapped memory\n");
    // SAFETY: deliberately faults; the kernel stops this thread and tells the monitor.
    let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    atoll_microkit::debug_print(atoll_microkit::pd_name());
    atoll_microkit::debug_print(": FAILED, the read did not fault\n");
}

atoll_microkit::entry!(init);
