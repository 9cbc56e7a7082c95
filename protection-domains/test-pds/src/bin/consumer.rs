//! Cross-replica test PD (`tests/systems/cross.xml`): receives `producer`'s stream through
//! the ring in the shared region `stream`, checksums it, and tells the producer each time it
//! made room. It attaches to the ring on the producer's first notification, when the ring is
//! set up; everything it reads from the ring is checked by the ring.
#![no_std]
#![no_main]

use atoll_channels::ring::RingError;
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};

use atoll_test_pds::stream::{self, Checksum, MESSAGES, REGION_BYTES, Ring, Rx};

const PRODUCER: Channel = Channel::new(0);

struct Consumer {
    rx: Option<Rx>,
    sum: Checksum,
    failed: bool,
}

#[protection_domain]
fn init() -> impl Handler {
    Consumer {
        rx: None,
        sum: Checksum::new(),
        failed: false,
    }
}

impl Consumer {
    fn attach() -> Result<Rx, RingError> {
        // SAFETY: `stream::region` is mapped read-write for the PD's whole life, and both
        // PDs use it only through a ring of this geometry.
        let ring =
            unsafe { Ring::attach_raw(stream::region().cast::<u8>().as_ptr(), REGION_BYTES) }?;
        ring.consumer()
    }

    /// Takes every message waiting; whether it took any.
    fn drain(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        let mut buffer = [0; Ring::MESSAGE_BYTES];
        let mut took = false;
        loop {
            match rx.try_recv(&mut buffer) {
                Ok(n) => {
                    took = true;
                    let mut expected = [0; Ring::MESSAGE_BYTES];
                    if buffer[..n] != *stream::message(self.sum.messages, &mut expected) {
                        debug_println!(
                            "{}: FAILED: message {} differs from what was sent",
                            pd_name().unwrap(),
                            self.sum.messages
                        );
                    }
                    self.sum.add(&buffer[..n]);
                    if self.sum.messages == MESSAGES {
                        debug_println!("{}: received {}", pd_name().unwrap(), self.sum);
                    }
                }
                Err(RingError::WouldBlock) => return took,
                Err(e) => {
                    debug_println!("{}: the ring failed: {e:?}", pd_name().unwrap());
                    self.failed = true;
                    return took;
                }
            }
        }
    }
}

impl Handler for Consumer {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PRODUCER) || self.failed {
            return Ok(());
        }
        if self.rx.is_none() {
            match Self::attach() {
                Ok(rx) => self.rx = Some(rx),
                Err(e) => {
                    debug_println!("{}: cannot attach to the ring: {e:?}", pd_name().unwrap());
                    self.failed = true;
                    return Ok(());
                }
            }
        }
        if self.drain() {
            PRODUCER.notify();
        }
        Ok(())
    }
}
