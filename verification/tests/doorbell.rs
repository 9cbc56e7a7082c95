//! The doorbell protocol under every interleaving: two senders each publish a payload and
//! ring their bit (raising the interrupt only when the word was empty); the receiver, on
//! each interrupt, acknowledges it and takes the word. Checked: no wakeup is lost (once the
//! senders are done and every pending interrupt is handled, every bit has been taken), every
//! bit is taken exactly once, and a taken bit's payload is visible to the receiver.
#![forbid(unsafe_code)]

use atoll_abi::shared::doorbell;
use atoll_verification::LoomWord;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;

/// The shared state: the pending word, the payloads, and the GIC's pending flag for the
/// receiver's doorbell interrupt. Raising and acknowledging the interrupt are modelled as
/// acquire-release read-modify-writes of that flag: the GIC keeps one pending state, and the
/// kernel puts a `dsb` before raising and a `dmb` after acknowledging.
struct Shared {
    word: LoomWord,
    payload: [AtomicU64; 2],
    interrupt: AtomicBool,
}

/// One run of the receiver's interrupt handler, if the interrupt is pending: acknowledge,
/// then take. Returns the bits taken.
fn handle(shared: &Shared, delivered: &mut u64) {
    if !shared.interrupt.swap(false, Ordering::AcqRel) {
        return;
    }
    let bits = doorbell::take(&shared.word);
    assert_eq!(bits & *delivered, 0, "bit delivered twice");
    for sender in 0..2 {
        if bits & (1 << sender) != 0 {
            assert_eq!(
                shared.payload[sender].load(Ordering::Relaxed),
                100 + sender as u64,
                "payload not visible"
            );
        }
    }
    *delivered |= bits;
}

/// A sender's way of raising the interrupt, and a receiver's way of handling it.
type Raise = fn(&Shared);
type Handle = fn(&Shared, &mut u64);

/// The serialized raise the GIC provides.
fn raise(shared: &Shared) {
    shared.interrupt.swap(true, Ordering::AcqRel);
}

/// One run of the model: two senders, a receiver that handles the interrupt twice, then
/// whatever interrupt is still pending once everyone is done. Returns the bits delivered.
fn run(raise: Raise, handle: Handle) -> u64 {
    let shared = Arc::new(Shared {
        word: LoomWord::default(),
        payload: [AtomicU64::new(0), AtomicU64::new(0)],
        interrupt: AtomicBool::new(false),
    });
    let senders: Vec<_> = (0..2)
        .map(|me| {
            let s = Arc::clone(&shared);
            thread::spawn(move || {
                s.payload[me].store(100 + me as u64, Ordering::Relaxed);
                if doorbell::ring(&s.word, 1 << me) {
                    raise(&s);
                }
            })
        })
        .collect();
    let receiver = {
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            let mut delivered = 0;
            handle(&s, &mut delivered);
            handle(&s, &mut delivered);
            delivered
        })
    };
    for s in senders {
        s.join().expect("sender");
    }
    let mut delivered = receiver.join().expect("receiver");
    // Quiescence: bits still pending must have an interrupt pending to deliver them.
    handle(&shared, &mut delivered);
    assert_eq!(
        doorbell::take(&shared.word) | delivered,
        0b11,
        "a bit vanished"
    );
    delivered
}

#[test]
fn no_wakeup_is_lost_and_every_bit_arrives_once() {
    loom::model(|| {
        let delivered = run(raise, handle);
        assert_eq!(delivered, 0b11, "a wakeup was lost");
    });
}

/// The receiver that takes the word before acknowledging the interrupt would lose wakeups;
/// the model finds it. (Guards the model itself: it must be able to fail.)
#[test]
#[should_panic(expected = "a wakeup was lost")]
fn taking_before_acknowledging_loses_wakeups() {
    fn wrong(s: &Shared, delivered: &mut u64) {
        if s.interrupt.load(Ordering::Acquire) {
            let bits = doorbell::take(&s.word);
            s.interrupt.swap(false, Ordering::AcqRel); // acknowledged too late
            *delivered |= bits;
        }
    }
    loom::model(|| {
        let delivered = run(raise, wrong);
        assert_eq!(delivered, 0b11, "a wakeup was lost");
    });
}

/// The model relies on the interrupt controller updating its pending state atomically. If a
/// raise could be reordered like a plain store, an acknowledgement could absorb a later
/// sender's interrupt and that bit would never be taken; the model finds it.
#[test]
#[should_panic(expected = "a wakeup was lost")]
fn a_raise_reordered_like_a_plain_store_loses_wakeups() {
    fn plain(s: &Shared) {
        s.interrupt.store(true, Ordering::Release);
    }
    loom::model(|| {
        let delivered = run(plain, handle);
        assert_eq!(delivered, 0b11, "a wakeup was lost");
    });
}

/// One sender rings the same bit twice, publishing a new payload each time, while the
/// receiver handles interrupts. Coalescing may merge the two rings into one delivery, but the
/// second ring is never lost: some delivery happens after it and sees its payload, and the
/// bit is never delivered more often than it was rung.
#[test]
fn a_bit_rung_again_is_delivered_again() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            word: LoomWord::default(),
            payload: [AtomicU64::new(0), AtomicU64::new(0)],
            interrupt: AtomicBool::new(false),
        });
        let sender = {
            let s = Arc::clone(&shared);
            thread::spawn(move || {
                for round in 1..=2 {
                    s.payload[0].store(round, Ordering::Relaxed);
                    if doorbell::ring(&s.word, 1) {
                        raise(&s);
                    }
                }
            })
        };
        // Each delivery of the bit records the payload it saw.
        let take = |s: &Shared, seen: &mut Vec<u64>| {
            if s.interrupt.swap(false, Ordering::AcqRel) && doorbell::take(&s.word) & 1 != 0 {
                seen.push(s.payload[0].load(Ordering::Relaxed));
            }
        };
        let receiver = {
            let s = Arc::clone(&shared);
            thread::spawn(move || {
                let mut seen = Vec::new();
                take(&s, &mut seen);
                take(&s, &mut seen);
                seen
            })
        };
        sender.join().expect("sender");
        let mut seen = receiver.join().expect("receiver");
        take(&shared, &mut seen);
        assert!(
            !seen.is_empty() && seen.len() <= 2,
            "deliveries {seen:?} for two rings"
        );
        assert_eq!(seen.last(), Some(&2), "the second ring was lost: {seen:?}");
        assert_eq!(doorbell::take(&shared.word), 0, "a bit was left behind");
    });
}
