//! Cross-replica test PD (`tests/systems/cross.xml`): streams `MESSAGES` messages to
//! `consumer`, on another replica, through a ring in the shared region `stream`. It sets the
//! ring up, sends while there is room, notifies, and goes on when the consumer says it made
//! room; at the end it prints its checksum of what it sent.
#![no_std]
#![no_main]

use atoll_channels::ring::RingError;
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

use atoll_test_pds::stream::{self, Checksum, MESSAGES, Ring, Tx};

const CONSUMER: Channel = Channel::new(0);

struct Producer {
    tx: Tx,
    sum: Checksum,
    failed: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    // SAFETY: `stream::region` is mapped read-write for the PD's whole life, and both PDs
    // use it only through a ring of this geometry.
    let ring = Ring::init(unsafe { stream::region().as_mut() });
    let Ok(tx) = ring.and_then(|r| r.producer()) else {
        panic!("the stream region cannot hold the ring");
    };
    let mut p = Producer {
        tx,
        sum: Checksum::new(),
        failed: false,
    };
    p.pump();
    p
}

impl Producer {
    /// Sends until the ring is full or everything is sent, then tells the consumer.
    fn pump(&mut self) {
        let mut buffer = [0; Ring::MESSAGE_BYTES];
        while self.sum.messages < MESSAGES && !self.failed {
            let message = stream::message(self.sum.messages, &mut buffer);
            match self.tx.try_send(message) {
                Ok(()) => {
                    self.sum.add(message);
                    if self.sum.messages == MESSAGES {
                        debug_println!("{}: sent {}", pd_name().unwrap(), self.sum);
                    }
                }
                Err(RingError::WouldBlock) => break,
                Err(e) => {
                    debug_println!("{}: the ring failed: {e:?}", pd_name().unwrap());
                    self.failed = true;
                }
            }
        }
        CONSUMER.notify();
    }
}

impl Handler for Producer {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(CONSUMER) {
            self.pump();
        }
        Ok(())
    }
}
