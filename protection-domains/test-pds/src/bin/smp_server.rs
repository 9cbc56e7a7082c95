//! SMP test PD (`tests/systems/smp.xml`): a passive server on core 3 of the replica, called
//! by `smp_client` on core 2. Each call with label 7 and arguments `a` and `b` is answered
//! with `a * b + n` and `n`, its count of such calls; anything else with label 1.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, Infallible, MessageInfo, get_mr, protection_domain, set_mr,
};

struct Server {
    calls: u64,
}

#[protection_domain]
fn init() -> impl Handler {
    Server { calls: 0 }
}

impl Handler for Server {
    type Error = Infallible;

    fn protected(&mut self, _: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        if info.label() != 7 || info.count() != 2 {
            return Ok(MessageInfo::new(1, 0));
        }
        self.calls += 1;
        let (a, b) = (get_mr(0), get_mr(1));
        set_mr(0, a.wrapping_mul(b).wrapping_add(self.calls));
        set_mr(1, self.calls);
        Ok(MessageInfo::new(0, 2))
    }
}
