//! SMP test PD (`tests/systems/smp.xml`): protected procedure calls across cores. It runs on
//! core 2 and calls `smp_server`, a passive server whose description puts it on core 3,
//! `CALLS` times on channel 0 with two arguments; each answer must be the server's sum
//! `a * b + n` with its own count `n` of calls. It prints how many were right.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, MessageInfo, NullHandler, debug_println, get_mr, pd_name, protection_domain,
    set_mr,
};

const SERVER: Channel = Channel::new(0);
const CALLS: u64 = 1000;

#[protection_domain]
fn init() -> impl Handler {
    let mut right = 0;
    for n in 1..=CALLS {
        let (a, b) = (n, n.wrapping_mul(0x9E37_79B9) >> 7);
        set_mr(0, a);
        set_mr(1, b);
        let reply = SERVER.pp_call(MessageInfo::new(7, 2));
        if reply.label() == 0
            && reply.count() == 2
            && get_mr(0) == a.wrapping_mul(b).wrapping_add(n)
            && get_mr(1) == n
        {
            right += 1;
        }
    }
    let name = pd_name().unwrap();
    if right == CALLS {
        debug_println!("{name}: {right} calls to the passive server on core 3 answered right");
    } else {
        debug_println!("{name}: FAILED: {right} of {CALLS} calls answered right");
    }
    NullHandler::new()
}
