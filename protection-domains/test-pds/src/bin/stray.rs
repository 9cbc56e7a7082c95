//! Uses the runtime wrongly on purpose: it notifies a channel it does not own. The runtime
//! refuses with a message naming the PD and the channel, and the monitor stops it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!(
        "{}: notifying channel 7, which it does not own",
        pd_name().unwrap()
    );
    Channel::new(7).notify();
    debug_println!("{}: FAILED: the notify went through", pd_name().unwrap());
    NullHandler::new()
}
