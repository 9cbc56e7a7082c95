//! A parent that restarts its faulting child (`parent/system.xml`): each fault of child 0
//! arrives at `fault`, is printed in words, and the child starts again at its entry point
//! (at most three times). The child says on channel 0 when it got through.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_microkit::{
    Channel, ChannelSet, Child, ENTRY_POINT, Handler, Infallible, MessageInfo, debug_println,
    pd_name, protection_domain,
};

const CHILD: Child = Child::new(0);
const CHILD_CHANNEL: Channel = Channel::new(0);
/// Restarts allowed before the child is stopped for good.
const MAX_RESTARTS: u32 = 3;

struct Parent {
    restarts: u32,
}

#[protection_domain]
fn init() -> impl Handler {
    Parent { restarts: 0 }
}

impl Handler for Parent {
    type Error = Infallible;

    fn fault(
        &mut self,
        child: Child,
        msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let fault = msg_info.fault();
        if child != CHILD || self.restarts == MAX_RESTARTS {
            debug_println!(
                "{}: child {} {fault}; stopped",
                pd_name().unwrap(),
                child.index()
            );
            child.stop();
            return Ok(None);
        }
        self.restarts += 1;
        debug_println!(
            "{}: child {} {fault}; restarting it ({} of {MAX_RESTARTS})",
            pd_name().unwrap(),
            child.index(),
            self.restarts
        );
        // Restarting ends the fault's call, so there is nothing to reply to.
        child.restart(ENTRY_POINT);
        Ok(None)
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(CHILD_CHANNEL) {
            debug_println!(
                "{}: the child got through after {} restarts",
                pd_name().unwrap(),
                self.restarts
            );
        }
        Ok(())
    }
}
