//! The driver↔client buffer queue (`atoll_channels::queue::{enqueue, dequeue}` and its
//! signal handshake) under every interleaving (two rounds of the handshake within three
//! preemptions): descriptors through a two-slot queue arrive whole and in order, and a
//! consumer that waits only when `ready_to_wait` says so never misses the producer's
//! notification, which takes both sides' fences.
#![forbid(unsafe_code)]

use atoll_channels::queue::{
    Desc, Geometry, QueueError, QueueMemory, dequeue, enqueue, ready_to_wait, signal_needed,
};
use atoll_verification::ring::{L32, L64};
use loom::sync::atomic::{Ordering, fence};
use loom::sync::{Arc, Notify};
use loom::thread;

/// Two descriptor slots on loom's atomics; `unfenced` leaves out the fences, to show
/// the model notices.
#[derive(Default)]
struct LoomQueue {
    head: L32,
    tail: L32,
    signal: L32,
    offsets: [L64; 2],
    lens: [L32; 2],
    flags: [L32; 2],
    unfenced: bool,
}

impl QueueMemory for LoomQueue {
    type W32 = L32;
    type W64 = L64;
    fn capacity(&self) -> usize {
        2
    }
    fn head(&self) -> &L32 {
        &self.head
    }
    fn tail(&self) -> &L32 {
        &self.tail
    }
    fn signal(&self) -> &L32 {
        &self.signal
    }
    fn offset(&self, slot: usize) -> &L64 {
        &self.offsets[slot]
    }
    fn len(&self, slot: usize) -> &L32 {
        &self.lens[slot]
    }
    fn flags(&self, slot: usize) -> &L32 {
        &self.flags[slot]
    }
    fn fence(&self) {
        if !self.unfenced {
            fence(Ordering::SeqCst);
        }
    }
}

/// Preemptions explored in the two-round model: every interleaving takes most of a minute
/// even optimised; three (loom suggests two or three) take a fraction of a second.
const PREEMPTIONS: usize = 3;

fn geometry() -> Geometry {
    Geometry::new(4, 64).expect("geometry")
}

/// The `i`th descriptor the producer sends: a different buffer, length and flags each time.
fn desc(i: u32) -> Desc {
    Desc {
        offset: u64::from(i % 4) * 64,
        len: i + 1,
        flags: i,
    }
}

#[test]
fn descriptors_arrive_whole_and_in_order() {
    loom::model(|| {
        let queue = Arc::new(LoomQueue::default());
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut head = 0;
                for i in 0..3 {
                    loop {
                        match enqueue(&*queue, &mut head, geometry(), desc(i)) {
                            Ok(()) => break,
                            Err(QueueError::Full) => thread::yield_now(),
                            Err(e) => panic!("producer saw {e:?}"),
                        }
                    }
                }
            })
        };
        let mut tail = 0;
        for i in 0..3 {
            loop {
                match dequeue(&*queue, &mut tail, geometry()) {
                    Ok(Some(d)) => {
                        assert_eq!(d, desc(i), "descriptor torn or out of order");
                        break;
                    }
                    Ok(None) => thread::yield_now(),
                    Err(e) => panic!("consumer saw {e:?}"),
                }
            }
        }
        producer.join().expect("producer");
    });
}

/// The producer enqueues `sent` descriptors and notifies when `signal_needed` says so; the
/// consumer drains, and waits for a notification when `ready_to_wait` says so. A lost
/// wake-up leaves the consumer waiting for ever, which loom reports as a deadlock.
/// `preemptions` bounds the interleavings explored (`None`: all of them).
fn no_wakeup_is_lost(sent: u32, preemptions: Option<usize>, unfenced: bool) {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = preemptions;
    model.check(move || {
        let queue = Arc::new(LoomQueue {
            unfenced,
            ..LoomQueue::default()
        });
        let bell = Arc::new(Notify::new());
        let producer = {
            let (queue, bell) = (Arc::clone(&queue), Arc::clone(&bell));
            thread::spawn(move || {
                let mut head = 0;
                for i in 0..sent {
                    enqueue(&*queue, &mut head, geometry(), desc(i)).expect("room");
                    if signal_needed(&*queue) {
                        bell.notify();
                    }
                }
            })
        };
        let (mut tail, mut received) = (0, 0);
        while received < sent {
            while let Some(d) = dequeue(&*queue, &mut tail, geometry()).expect("sane") {
                assert_eq!(d, desc(received));
                received += 1;
            }
            if received < sent && ready_to_wait(&*queue, tail).expect("sane") {
                bell.wait();
            }
        }
        producer.join().expect("producer");
    });
}

#[test]
fn no_wakeup_is_lost_with_the_fences() {
    no_wakeup_is_lost(1, None, false);
}

/// Two rounds, so a producer's clearing of one request can meet the consumer's next.
#[test]
fn no_wakeup_is_lost_over_two_rounds() {
    no_wakeup_is_lost(2, Some(PREEMPTIONS), false);
}

#[test]
#[should_panic(expected = "deadlock")]
fn without_the_fences_a_wakeup_is_lost() {
    no_wakeup_is_lost(1, None, true);
}
