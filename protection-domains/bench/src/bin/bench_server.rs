//! Benchmark PD: answers every protected procedure call at once with one message register.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{Channel, Handler, Infallible, MessageInfo, protection_domain, set_mr};

struct Server;

#[protection_domain]
fn init() -> impl Handler {
    Server
}

impl Handler for Server {
    type Error = Infallible;

    fn protected(&mut self, _: Channel, _: MessageInfo) -> Result<MessageInfo, Self::Error> {
        set_mr(0, 2);
        Ok(MessageInfo::new(0, 1))
    }
}
