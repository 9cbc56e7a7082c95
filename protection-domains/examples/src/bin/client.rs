//! Protected procedure calls, the calling side (`ppc/system.xml`): asks a passive server on
//! channel 0 and an active one on channel 1 to add numbers passed in message registers,
//! and reports each answer.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, MessageInfo, NullHandler, debug_println, get_mr, pd_name, protection_domain,
    set_mr,
};

/// The servers: (channel, description).
const SERVERS: [(Channel, &str); 2] = [
    (Channel::new(0), "passive server"),
    (Channel::new(1), "active server"),
];
/// The servers' "add" operation.
const ADD: u64 = 1;

#[protection_domain]
fn init() -> impl Handler {
    for (server, what) in SERVERS {
        // Four values travel in CPU registers; the other two in the IPC buffer.
        let values = [1u64, 2, 3, 4, 5, 6].map(|v| v * (server.index() as u64 + 1));
        for (i, &v) in values.iter().enumerate() {
            set_mr(i, v);
        }
        let reply = server.pp_call(MessageInfo::new(ADD, values.len()));
        let sum = get_mr(0);
        debug_println!(
            "{}: {what} added {} values: {} (label {}, {} register)",
            pd_name().unwrap(),
            values.len(),
            sum,
            reply.label(),
            reply.count()
        );
        let unknown = server.pp_call(MessageInfo::new(99, 0));
        debug_println!(
            "{}: {what} answered an unknown operation with label {}",
            pd_name().unwrap(),
            unknown.label()
        );
    }
    NullHandler::new()
}
