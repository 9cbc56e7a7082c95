//! Protected procedure calls, the calling side (`ppc/system.xml`): asks `server` on
//! channel 0 to add numbers passed in message registers, and checks each answer.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, MessageInfo, NullHandler, debug_println, get_mr, pd_name, protection_domain,
    set_mr,
};

const SERVER: Channel = Channel::new(0);
/// The server's "add" operation.
const ADD: u64 = 1;

#[protection_domain]
fn init() -> impl Handler {
    // Four values travel in CPU registers; the other two in the IPC buffer.
    let values = [1u64, 2, 3, 4, 5, 6];
    for (i, &v) in values.iter().enumerate() {
        set_mr(i, v);
    }
    let reply = SERVER.pp_call(MessageInfo::new(ADD, values.len()));
    let sum = get_mr(0);
    debug_println!(
        "{}: server added {} values: {} (label {}, {} register)",
        pd_name(),
        values.len(),
        sum,
        reply.label(),
        reply.count()
    );
    let unknown = SERVER.pp_call(MessageInfo::new(99, 0));
    debug_println!(
        "{}: unknown operation answered with label {}",
        pd_name(),
        unknown.label()
    );
    NullHandler::new()
}
