//! The single-producer single-consumer ring (`atoll_channels::ring::send` / `recv`) under
//! every interleaving: three messages through two slots arrive whole, in order, and neither
//! side ever sees the ring as corrupt.
#![forbid(unsafe_code)]

use atoll_channels::ring::{RingError, recv, send};
use atoll_verification::ring::LoomRing;
use loom::sync::Arc;
use loom::thread;

#[test]
fn messages_arrive_whole_and_in_order() {
    loom::model(|| {
        let ring = Arc::new(LoomRing::default());
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut head = 0;
                for m in 1u8..=3 {
                    let message = [m; 8];
                    loop {
                        match send(&*ring, &mut head, &message) {
                            Ok(()) => break,
                            Err(RingError::WouldBlock) => thread::yield_now(),
                            Err(e) => panic!("producer saw {e:?}"),
                        }
                    }
                }
            })
        };
        let mut tail = 0;
        let mut buffer = [0u8; 8];
        for m in 1u8..=3 {
            loop {
                match recv(&*ring, &mut tail, &mut buffer) {
                    Ok(len) => {
                        assert_eq!(len, 8);
                        assert_eq!(buffer, [m; 8], "message torn or out of order");
                        break;
                    }
                    Err(RingError::WouldBlock) => thread::yield_now(),
                    Err(e) => panic!("consumer saw {e:?}"),
                }
            }
        }
        producer.join().expect("producer");
    });
}
