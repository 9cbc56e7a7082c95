//! The probe's child (`probe/system.xml`): sets a panic hook, then panics on purpose. The
//! hook's line replaces the runtime's own panic message, and the panic still reaches the
//! parent as a fault.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use sel4_microkit::panicking::set_hook;
use sel4_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

fn hook(info: &PanicInfo<'_>) {
    debug_println!("{}: hook: {}", pd_name().unwrap(), info.message());
}

// The package's runtime links `alloc` (feature `full`), so every PD of it has a heap.
#[protection_domain(heap_size = 0x1000)]
fn init() -> impl Handler {
    set_hook(&hook);
    panic!("on purpose, after setting a hook");
    #[allow(unreachable_code, reason = "the type init must return")]
    NullHandler::new()
}
