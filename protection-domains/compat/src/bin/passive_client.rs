//! The client of `passive/system.xml`, in upstream style: it notifies the passive server,
//! and each time the server notifies back (from a deferred action), calls it with the
//! round number and checks the answer. Three rounds: a passive server that has been
//! notified must go on answering both notifications and calls.
#![no_std]
#![no_main]

use core::fmt;

use sel4_microkit::{
    Channel, ChannelSet, Handler, MessageInfo, debug_println, get_mr, pd_name, protection_domain,
    set_mr,
};

/// The server: notifications both ways, calls from here.
const SERVER: Channel = Channel::new(0);
/// The operation the server doubles its argument for.
const DOUBLE: u64 = 1;
const ROUNDS: u64 = 3;

/// A wrong answer.
#[derive(Debug)]
struct WrongAnswer {
    round: u64,
    label: u64,
    value: u64,
}

impl fmt::Display for WrongAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {}: the server answered label {} value {}",
            self.round, self.label, self.value
        )
    }
}

struct Client {
    round: u64,
}

impl Handler for Client {
    type Error = WrongAnswer;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(SERVER) {
            return Ok(());
        }
        self.round += 1;
        let round = self.round;
        set_mr(0, round);
        let reply = SERVER.pp_call(MessageInfo::new(DOUBLE, 1));
        let value = get_mr(0);
        if reply.label() != 0 || reply.count() != 1 || value != 2 * round {
            return Err(WrongAnswer {
                round,
                label: reply.label(),
                value,
            });
        }
        let me = pd_name().unwrap();
        debug_println!("{me}: round {round}: notified back, then the call answered {value}");
        if round < ROUNDS {
            SERVER.notify();
        } else {
            debug_println!(
                "{me}: the passive server answered {ROUNDS} notifications and {ROUNDS} calls"
            );
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    SERVER.notify();
    Client { round: 0 }
}
