//! A block driver's ends of the block queues against a hostile client: the fuzz input is
//! first the bytes of the shared regions (the two queues, headers included when the first
//! byte's low bit says so, and the buffers' command headers), then a sequence of steps, each a
//! write of any value to a word of the queues or a header, or a driver round (dequeue,
//! ledger, decode, answer). The driver side must never panic or loop: it takes at most a
//! queue's worth of descriptors per round, accepts only well-formed requests of the region's
//! buffers, and answers only buffers it received.
#![no_main]
#![forbid(unsafe_code)]

use atoll_channels::block::{
    BLOCK_HEADER, BLOCK_MAX_BLOCKS, BLOCK_QUEUES_BYTES, BlockQueues, BlockStatus, DiskInfo, answer,
    decode_request, request_len,
};
use atoll_channels::queue::{Corrupt, DataRegion, Desc, Geometry, Ledger, QueueError, SharedQueue};
use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;

const N: usize = 4;
/// Buffers of the fuzzed region: the protocol's header and four blocks each.
const BUFFERS: u32 = 4;
const BUF_SIZE: u32 = BLOCK_HEADER + 4 * 512;

#[repr(C, align(64))]
struct Queues([u8; 2048]);

#[repr(C, align(64))]
struct Data([u8; (BUFFERS * BUF_SIZE) as usize]);

fuzz_target!(|input: &[u8]| {
    let Ok(g) = Geometry::new(BUFFERS, BUF_SIZE) else {
        return;
    };
    assert!(core::mem::size_of::<BlockQueues<N>>() <= 2048 && BLOCK_QUEUES_BYTES >= 1088);
    let mut queues = Queues([0; 2048]);
    let mut data = Data([0; (BUFFERS * BUF_SIZE) as usize]);
    let (keep_headers, mut input) = match input.split_first() {
        Some((first, rest)) => (first & 1 == 0, rest),
        None => (true, input),
    };
    // The queues: set up, then overwritten by the input (the header lines too, unless
    // kept), so that attach sees whatever a client could leave there.
    let info = DiskInfo {
        blocks: 1 << 20,
        ..DiskInfo::default()
    };
    if BlockQueues::<N>::init(&mut queues.0, g, &info).is_err() {
        return;
    }
    let queue = core::mem::size_of::<SharedQueue<N>>();
    let whole = core::mem::size_of::<BlockQueues<N>>();
    for (at, byte) in queues.0[..whole].iter_mut().enumerate() {
        if keep_headers && (at < 64 || (queue..queue + 64).contains(&at)) {
            continue;
        }
        let Some((b, rest)) = input.split_first() else {
            break;
        };
        *byte = *b;
        input = rest;
    }
    // Each buffer's command header.
    for buffer in 0..BUFFERS as usize {
        let start = buffer * BUF_SIZE as usize;
        for byte in &mut data.0[start..start + BLOCK_HEADER as usize] {
            let Some((b, rest)) = input.split_first() else {
                break;
            };
            *byte = *b;
            input = rest;
        }
    }
    let Ok(pair) = BlockQueues::<N>::attach(&mut queues.0, g) else {
        return;
    };
    let _ = pair.info();
    let Ok(region) = DataRegion::new(&mut data.0, g) else {
        return;
    };
    let (requests, responses) = (pair.requests.shared(), pair.responses.shared());
    let mut driver = pair.driver();
    let Ok(mut held) = Ledger::<1>::new(g, false) else {
        return;
    };
    let mut steps = input.iter().copied();
    while let Some(step) = steps.next() {
        if step % 4 != 0 {
            let mut value = [0u8; 8];
            for (byte, b) in value.iter_mut().zip(&mut steps) {
                *byte = b;
            }
            let (value, r) = (u64::from_le_bytes(value), Ordering::Relaxed);
            let word = usize::from(step >> 2);
            match word % (3 + 3 * N + 1) {
                0 => requests.producer.value.store(value as u32, r),
                1 => responses.consumer.value.store(value as u32, r),
                2 => requests.signal.wanted.store(value as u32, r),
                w if w < 3 + 3 * N => {
                    let slot = &requests.slots[(w - 3) / 3];
                    match (w - 3) % 3 {
                        0 => slot.offset.store(value, r),
                        1 => slot.len.store(value as u32, r),
                        _ => slot.flags.store(value as u32, r),
                    }
                }
                _ => {
                    let window = region.buffer(u32::from(step) % BUFFERS);
                    if let Some(window) = window {
                        let at = (word / 16) % 8 * 8;
                        assert!(window.write(at, &value.to_ne_bytes()).is_ok());
                    }
                }
            }
            continue;
        }
        // A driver round: everything waiting, at most a queue's worth.
        let mut taken = 0;
        loop {
            let desc = match driver.requests.dequeue() {
                Ok(None) | Err(Corrupt::Index) => break,
                Err(Corrupt::Offset(desc)) => {
                    assert!(g.index(desc.offset).is_none());
                    taken += 1;
                    assert!(taken <= N, "more descriptors than the queue holds");
                    continue;
                }
                Err(Corrupt::Length(desc)) => Desc {
                    len: u32::MAX,
                    ..desc
                },
                Ok(Some(desc)) => desc,
            };
            taken += 1;
            assert!(taken <= N, "more descriptors than the queue holds");
            if held.receive(&desc).is_err() {
                continue;
            }
            let status = match decode_request(&region, &desc) {
                Ok(request) => {
                    assert!(request.count <= BLOCK_MAX_BLOCKS);
                    assert_eq!(desc.len, request_len(request.op, request.count));
                    assert!(desc.len <= BUF_SIZE && request.offset == desc.offset);
                    if request.within(1 << 20) {
                        BlockStatus::Ok
                    } else {
                        BlockStatus::BadRequest
                    }
                }
                Err(_) => BlockStatus::BadRequest,
            };
            let Ok(reply) = answer(&region, desc.offset, status, 0) else {
                panic!("an answer in a buffer the driver holds");
            };
            match driver.responses.enqueue(reply) {
                Ok(()) | Err(QueueError::Full | QueueError::Corrupt(Corrupt::Index)) => {}
                Err(e) => panic!("enqueue: {e:?}"),
            }
            assert!(held.give(&reply).is_ok());
        }
        let _ = driver.responses.signal_needed();
        assert!(matches!(
            driver.requests.ready_to_wait(),
            Ok(_) | Err(Corrupt::Index)
        ));
        assert_eq!(held.owned(), 0);
    }
});
