//! Hostile-PD test (`tests/systems/hostile.xml`): a passive server that is both notified and
//! called. It counts the notifications it handles and answers each call with the count. A
//! passive PD handles notifications on the scheduling context bound to its notification; a
//! notification once left it unable to run, and every later call unanswered.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, MessageInfo, protection_domain, set_mr,
};

const CALLS: Channel = Channel::new(0);
const NOTIFIES: Channel = Channel::new(1);

struct Server {
    notified: u64,
}

impl Handler for Server {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(NOTIFIES) {
            self.notified += 1;
        }
        Ok(())
    }

    fn protected(&mut self, channel: Channel, _: MessageInfo) -> Result<MessageInfo, Self::Error> {
        if channel != CALLS {
            return Ok(MessageInfo::new(1, 0));
        }
        set_mr(0, self.notified);
        Ok(MessageInfo::new(0, 1))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Server { notified: 0 }
}
