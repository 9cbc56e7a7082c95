//! The doorbell protocol under every interleaving: two senders each publish a payload and
//! ring their bit (raising the interrupt only when the word was empty); the receiver, on
//! each interrupt, acknowledges it and takes the word. Checked: no wakeup is lost (once the
//! senders are done and every pending interrupt is handled, every bit has been taken), every
//! bit is taken exactly once, and a taken bit's payload is visible to the receiver.

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

fn sender(shared: Arc<Shared>, me: usize) {
    shared.payload[me].store(100 + me as u64, Ordering::Relaxed);
    if doorbell::ring(&shared.word, 1 << me) {
        shared.interrupt.swap(true, Ordering::AcqRel);
    }
}

#[test]
fn no_wakeup_is_lost_and_every_bit_arrives_once() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            word: LoomWord::default(),
            payload: [AtomicU64::new(0), AtomicU64::new(0)],
            interrupt: AtomicBool::new(false),
        });
        let senders: Vec<_> = (0..2)
            .map(|me| {
                let s = Arc::clone(&shared);
                thread::spawn(move || sender(s, me))
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
        assert_eq!(delivered, 0b11, "a wakeup was lost");
        assert_eq!(doorbell::take(&shared.word), 0);
    });
}

/// The receiver that takes the word before acknowledging the interrupt would lose wakeups;
/// the model finds it. (Guards the model itself: it must be able to fail.)
#[test]
#[should_panic(expected = "a wakeup was lost")]
fn taking_before_acknowledging_loses_wakeups() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            word: LoomWord::default(),
            payload: [AtomicU64::new(0), AtomicU64::new(0)],
            interrupt: AtomicBool::new(false),
        });
        let wrong = |s: &Shared, delivered: &mut u64| {
            if s.interrupt.load(Ordering::Acquire) {
                let bits = doorbell::take(&s.word);
                s.interrupt.swap(false, Ordering::AcqRel); // acknowledged too late
                *delivered |= bits;
            }
        };
        let senders: Vec<_> = (0..2)
            .map(|me| {
                let s = Arc::clone(&shared);
                thread::spawn(move || sender(s, me))
            })
            .collect();
        let receiver = {
            let s = Arc::clone(&shared);
            thread::spawn(move || {
                let mut delivered = 0;
                wrong(&s, &mut delivered);
                delivered
            })
        };
        for s in senders {
            s.join().expect("sender");
        }
        let mut delivered = receiver.join().expect("receiver");
        wrong(&shared, &mut delivered);
        assert_eq!(delivered, 0b11, "a wakeup was lost");
    });
}

/// The model relies on the interrupt controller updating its pending state atomically. If a
/// raise could be reordered like a plain store, an acknowledgement could absorb a later
/// sender's interrupt and that bit would never be taken; the model finds it. (This also
/// shows the model can fail on this protocol, not only on a wrong receiver.)
#[test]
#[should_panic(expected = "a wakeup was lost")]
fn a_raise_reordered_like_a_plain_store_loses_wakeups() {
    loom::model(|| {
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
                        s.interrupt.store(true, Ordering::Release); // not a serialized update
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
        handle(&shared, &mut delivered);
        assert_eq!(delivered, 0b11, "a wakeup was lost");
    });
}
