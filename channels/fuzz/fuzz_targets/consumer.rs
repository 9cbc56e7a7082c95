//! The ring consumer against a hostile producer: the fuzz input is the whole ring region
//! (indices, lengths, payload) behind a valid header. The consumer must never panic, never
//! return more than its buffer, and stop after at most the ring's capacity.
#![no_main]
#![forbid(unsafe_code)]

use atoll_channels::ring::SharedRing;
use libfuzzer_sys::fuzz_target;

type Ring = SharedRing<8, 4>;

#[repr(C, align(64))]
struct Region([u8; 64 * 64]);

fuzz_target!(|data: &[u8]| {
    let mut region = Region([0; 64 * 64]);
    let size = core::mem::size_of::<Ring>();
    assert!(size <= region.0.len());
    if Ring::init(&mut region.0).is_err() {
        return;
    }
    // Everything after the header comes from the hostile producer.
    let n = data.len().min(size - 64);
    region.0[64..64 + n].copy_from_slice(&data[..n]);
    let Ok(ring) = Ring::attach(&mut region.0) else { return };
    let Ok(mut consumer) = ring.consumer() else { return };
    let mut buffer = [0u8; 32];
    let mut received = 0;
    while let Ok(len) = consumer.try_recv(&mut buffer) {
        assert!(len <= buffer.len());
        received += 1;
        assert!(received <= 8, "more messages than slots");
    }
});
