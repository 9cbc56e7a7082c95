//! Test PD: announces itself, then reads memory its address space does not map, so the
//! monitor reports the fault with its name and (as its description asks) restarts it.
#![no_std]
#![no_main]

/// Far above anything the tool maps for a PD.
const UNMAPPED: usize = 0x70_0000_0000;

fn init() {
    let name = atoll_microkit::pd_name();
    atoll_microkit::debug_println!("{name}: starting, about to touch unmapped memory");
    // SAFETY: deliberately faults; the kernel stops this thread and tells the monitor.
    let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    atoll_microkit::debug_println!("{name}: FAILED, the read did not fault");
}

atoll_microkit::entry!(init);
