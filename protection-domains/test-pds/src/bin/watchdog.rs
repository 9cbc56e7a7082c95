//! The watchdog (`tests/systems/fuzz.xml`): the fuzzer's parent, and the judge of a run.
//!
//! Its clock is the canary's tick, which crosses replicas. On every tick it kicks the
//! fuzzer (a notification frees it from a receive on its own endpoint), pokes the witness
//! and reads the three shared records:
//! - a fuzzer that made no call for [`STALL_TICKS`] ticks has blocked itself for good: it is
//!   restarted and goes on with its next call;
//! - a witness that did not beat for [`LOST_TICKS`] ticks has lost its heartbeat;
//! - a witness or canary that found its own memory changed says so.
//!
//! The fuzzer's faults come here: a capability fault or an unknown system call is what
//! random calls make, and the fuzzer resumes after the call; any other fault restarts it.
//! When every call is made it prints the verdict line the tests read.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use atoll_abi::syscall::fault;
use atoll_microkit::{
    Channel, ChannelSet, Child, ENTRY_POINT, Handler, Infallible, MessageInfo, debug_println,
    pd_name, protection_domain,
};
use atoll_test_pds::fuzz::{self, Heartbeat};

const FUZZER: Child = Child::new(0);
const TICK: Channel = Channel::new(0);
const KICK: Channel = Channel::new(1);
const POKE: Channel = Channel::new(2);
/// Ticks without a call before the fuzzer is restarted.
const STALL_TICKS: u64 = 3;
/// Ticks without a beat before the witness counts as lost.
const LOST_TICKS: u64 = 2000;
/// Ticks between progress lines.
const REPORT_TICKS: u64 = 5000;

#[derive(Default)]
struct Watchdog {
    ticks: u64,
    last_next: u64,
    stalled: u64,
    restarts: u64,
    /// Faults by kind: capability, unknown system call, other.
    faults: [u64; 3],
    last_beats: u64,
    silent: u64,
    lost: bool,
    changed_reported: [bool; 2],
    done: bool,
}

impl Watchdog {
    fn restart(&mut self) {
        self.restarts += 1;
        self.stalled = 0;
        FUZZER.restart(ENTRY_POINT);
    }

    fn tick(&mut self) {
        self.ticks += 1;
        KICK.notify();
        POKE.notify();
        let p = fuzz::progress();
        let next = p.next.load(Ordering::Relaxed);
        let finished = p.finished();
        if !finished {
            if next == self.last_next {
                self.stalled += 1;
                if self.stalled >= STALL_TICKS {
                    self.restart();
                }
            } else {
                self.stalled = 0;
            }
        }
        self.last_next = next;
        let (w, c) = (fuzz::witness_beat(), fuzz::canary_beat());
        let beats = w.beats.load(Ordering::Relaxed);
        if beats == self.last_beats {
            self.silent += 1;
            if self.silent == LOST_TICKS {
                self.lost = true;
                debug_println!(
                    "{}: lost heartbeat: the witness has not beaten for {LOST_TICKS} ticks",
                    pd_name().unwrap()
                );
            }
        } else {
            self.silent = 0;
            self.last_beats = beats;
        }
        for (i, (who, record)) in [("witness", w), ("canary", c)].into_iter().enumerate() {
            let at = record.changed.load(Ordering::Relaxed);
            if at != 0 && !self.changed_reported[i] {
                self.changed_reported[i] = true;
                debug_println!(
                    "{}: the {who}'s memory changed (word {})",
                    pd_name().unwrap(),
                    at - 1
                );
            }
        }
        if self.ticks.is_multiple_of(REPORT_TICKS) && !self.done {
            debug_println!(
                "{}: {next} calls, {} restarts after {} ticks",
                pd_name().unwrap(),
                self.restarts,
                self.ticks
            );
        }
        if finished && !self.done {
            self.done = true;
            self.verdict();
        }
    }

    fn verdict(&self) {
        let (p, w, c) = (fuzz::progress(), fuzz::witness_beat(), fuzz::canary_beat());
        let intact = |h: &Heartbeat| {
            if h.changed.load(Ordering::Relaxed) == 0 {
                "intact"
            } else {
                "CHANGED"
            }
        };
        debug_println!(
            "fuzz: done: seed {}, {} calls made, {} returned, {} restarts, faults: {} capability, {} unknown, {} other",
            fuzz::seed(),
            // The calls counted before they were made, less the one counted past the end.
            p.next.load(Ordering::Relaxed).saturating_sub(1),
            p.returned.load(Ordering::Relaxed),
            self.restarts,
            self.faults[0],
            self.faults[1],
            self.faults[2],
        );
        debug_println!(
            "fuzz: witness {} beats, {} pokes, memory {}{}; canary {} beats, {} pokes, memory {}",
            w.beats.load(Ordering::Relaxed),
            w.pokes.load(Ordering::Relaxed),
            intact(w),
            if self.lost { ", heartbeat lost" } else { "" },
            c.beats.load(Ordering::Relaxed),
            c.pokes.load(Ordering::Relaxed),
            intact(c),
        );
        debug_println!("fuzz: end of run");
    }
}

impl Handler for Watchdog {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(TICK) {
            self.tick();
        }
        Ok(())
    }

    fn fault(
        &mut self,
        child: Child,
        info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        if child != FUZZER {
            return Ok(None);
        }
        match info.label() {
            fault::CAP_FAULT => self.faults[0] += 1,
            fault::UNKNOWN_SYSCALL => self.faults[1] += 1,
            _ => {
                // A memory fault, an exception, a panic, or a message the fuzzer sent to
                // its own fault endpoint: start it again at its next call.
                self.faults[2] += 1;
                self.restart();
                return Ok(None);
            }
        }
        // Resume after the system call that faulted.
        Ok(Some(MessageInfo::new(0, 0)))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("{}: watching the fuzzer", pd_name().unwrap());
    Watchdog::default()
}
