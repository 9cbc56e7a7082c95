//! The passive server of `passive/system.xml`, in upstream style: a notification from the
//! client is answered by a notify deferred into the server's next receive (so it runs on
//! the scheduling context bound to its notification), and a call is answered on the
//! context the caller lends.
#![no_std]
#![no_main]

use sel4_microkit::{
    Channel, ChannelSet, DeferredAction, DeferredActionSlot, Handler, IrqAckError, MessageInfo,
    debug_println, get_mr, pd_is_passive, pd_name, protection_domain, set_mr,
};

/// The client.
const CLIENT: Channel = Channel::new(0);
/// The operation that doubles its argument.
const DOUBLE: u64 = 1;
/// The answer to an operation it does not know.
const UNKNOWN: u64 = 1;

struct Server {
    deferred: DeferredActionSlot,
}

impl Handler for Server {
    type Error = IrqAckError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(CLIENT) {
            self.deferred.defer_notify(CLIENT)?;
        }
        Ok(())
    }

    fn protected(
        &mut self,
        _channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        if msg_info.label() != DOUBLE || msg_info.count() != 1 {
            return Ok(MessageInfo::new(UNKNOWN, 0));
        }
        set_mr(0, get_mr(0) * 2);
        Ok(MessageInfo::new(0, 1))
    }

    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        self.deferred.take()
    }
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!(
        "{}: ready (passive: {})",
        pd_name().unwrap(),
        pd_is_passive()
    );
    Server {
        deferred: DeferredActionSlot::new(),
    }
}
