//! The spinner of `domains/system.xml`: a PD of high priority that never stops running.
//! Without domains it would starve every PD of lower priority on its core; in its own
//! domain it runs only in that domain's slots of the schedule.
#![no_std]
#![no_main]

use sel4_microkit::{Handler, NullHandler, debug_println, pd_name, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: spinning for ever", pd_name().unwrap());
    loop {
        core::hint::spin_loop();
    }
    #[allow(unreachable_code, reason = "the type init must return")]
    NullHandler::new()
}
