//! Protected procedure calls, the passive serving side (`ppc/system.xml`): adds the message
//! registers of each call on channel 1 and replies with the sum; label 1 is "add", any
//! other label is answered with label 1 ("unknown operation").
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, Handler, Infallible, MessageInfo, debug_println, pd_name, protection_domain, set_mr,
    with_msg_regs,
};

const CLIENT: Channel = Channel::new(1);
const ADD: u64 = 1;

struct Server;

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: ready", pd_name().unwrap());
    Server
}

impl Handler for Server {
    type Error = Infallible;

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        if channel != CLIENT || msg_info.label() != ADD {
            return Ok(MessageInfo::new(1, 0));
        }
        let sum = with_msg_regs(|mrs| mrs[..msg_info.count()].iter().sum::<u64>());
        set_mr(0, sum);
        Ok(MessageInfo::new(0, 1))
    }
}
