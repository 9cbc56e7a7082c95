//! The system-call fuzzer (`tests/systems/fuzz.xml`): makes the calls of its seed one after
//! the other from its `init`, with random numbers, capability addresses, message tags,
//! registers and IPC-buffer words, across every capability Microkit gives a PD (and its
//! child's TCB). Its progress lives in a shared region, so when it blocks itself for good
//! (a call on its own endpoint, a halt) and its parent, the watchdog, restarts it, it goes
//! on with the next call of the same sequence.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_microkit::{
    Channel, ChannelSet, Child, Handler, Infallible, MessageInfo, debug_println, pd_name,
    protection_domain, set_mr, sys,
};
use atoll_test_pds::fuzz::{self, bump};

/// After the run: whatever arrives (its child's faults, notifications) is ignored.
struct Finished;

impl Handler for Finished {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }

    fn protected(&mut self, _: Channel, _: MessageInfo) -> Result<MessageInfo, Self::Error> {
        Ok(MessageInfo::new(0, 0))
    }

    fn fault(&mut self, _: Child, _: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        Ok(None)
    }
}

#[protection_domain]
fn init() -> impl Handler {
    let p = fuzz::progress();
    let (seed, calls) = (fuzz::seed(), fuzz::calls());
    if p.next.load(Ordering::Relaxed) == 0 {
        debug_println!("{}: seed {seed}, {calls} calls", pd_name().unwrap());
    }
    loop {
        // Counted before it is made: a restart after this call blocked skips it. Once
        // past the last call, `next` is past `calls`: the run is finished.
        let i = p.next.fetch_add(1, Ordering::AcqRel);
        if i >= calls {
            debug_println!("{}: all {calls} calls made", pd_name().unwrap());
            return Finished;
        }
        let c = fuzz::call(seed, i);
        for (k, &word) in c.buffer.iter().take(c.buffer_words).enumerate() {
            set_mr(4 + k, word);
        }
        let _ = sys::full(c.number, c.cap, c.tag, c.mrs, c.reply, c.send);
        bump(&p.returned);
    }
}
