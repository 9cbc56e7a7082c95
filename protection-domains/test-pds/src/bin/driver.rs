//! Hostile-PD test (`tests/systems/hostile.xml`): notifies and calls the passive server
//! `pserver`, in both orders, a hundred rounds; each call must answer with the number of
//! notifications sent so far (the server is higher, so it handles each at once).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, MessageInfo, NullHandler, debug_println, get_mr, pd_name, protection_domain,
};

const CALLS: Channel = Channel::new(0);
const NOTIFIES: Channel = Channel::new(1);
const ROUNDS: u64 = 100;

#[protection_domain]
fn init() -> impl Handler {
    let (mut notified, mut answered) = (0u64, 0u64);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            NOTIFIES.notify();
            notified += 1;
        }
        let reply = CALLS.pp_call(MessageInfo::new(0, 0));
        if reply.label() == 0 && get_mr(0) == notified {
            answered += 1;
        }
        if round % 2 == 1 {
            NOTIFIES.notify();
            notified += 1;
        }
    }
    if answered == ROUNDS {
        debug_println!(
            "{}: {answered} calls answered and {notified} notifications handled by the passive server",
            pd_name().unwrap()
        );
    } else {
        debug_println!(
            "{}: FAILED: {answered} of {ROUNDS} calls answered correctly",
            pd_name().unwrap()
        );
    }
    NullHandler::new()
}
