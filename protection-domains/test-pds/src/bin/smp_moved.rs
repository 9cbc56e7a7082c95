//! SMP test PD (`tests/systems/smp.xml`): the child that `smp_mover` moves between the
//! replica's cores. It answers each notification on channel 0 by counting it in the shared
//! word [`smp::HANDLED`] and notifying back; it reports when it has answered them all.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, pd_name, protection_domain,
};
use atoll_test_pds::smp::{self, HANDLED};

const PARENT: Channel = Channel::new(0);
/// Notifications the parent sends: 10 phases of 5 rounds.
const EXPECTED: u64 = 50;

struct Moved;

#[protection_domain]
fn init() -> impl Handler {
    Moved
}

impl Handler for Moved {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PARENT) {
            return Ok(());
        }
        let handled = smp::shared()[HANDLED].fetch_add(1, Ordering::AcqRel) + 1;
        PARENT.notify();
        if handled == EXPECTED {
            debug_println!(
                "{}: answered all {handled} notifications while moved between cores",
                pd_name().unwrap()
            );
        }
        Ok(())
    }
}
