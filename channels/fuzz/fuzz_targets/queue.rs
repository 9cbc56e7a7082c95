//! The network driver's ends of the buffer queues against a hostile client: the fuzz input is
//! a sequence of steps, each either a write of any value to any word of the four queues (all
//! but padding, which nothing reads) or a driver step. The driver must never panic; every
//! descriptor it dequeues must name a buffer of its region that it can copy (the others are
//! errors), a drain must never take more than a queue holds, and its own enqueues and signal
//! checks must fail only as full or corrupt.
#![no_main]
#![forbid(unsafe_code)]

use atoll_channels::queue::{
    Consumer, Corrupt, DataRegion, Geometry, Ledger, LedgerError, NetQueues, Producer, QueueError,
    SharedQueue,
};
use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;

const N: usize = 4;

#[repr(C, align(64))]
struct Region([u8; 64 * 32]);

#[repr(C, align(64))]
struct Data([u8; 8 * 64]);

/// Writes `value` to word `word` of `queue`: the header's five, the three index and flag
/// words, then each slot's offset, length and flags.
fn poke(queue: &SharedQueue<N>, word: u8, value: u64) {
    let (r, v32) = (Ordering::Relaxed, value as u32);
    match word as usize % (8 + 3 * N) {
        0 => queue.header.magic.store(v32, r),
        1 => queue.header.version.store(v32, r),
        2 => queue.header.capacity.store(v32, r),
        3 => queue.header.buffers.store(v32, r),
        4 => queue.header.buf_size.store(v32, r),
        5 => queue.producer.value.store(v32, r),
        6 => queue.consumer.value.store(v32, r),
        7 => queue.signal.wanted.store(v32, r),
        w => {
            let slot = &queue.slots[(w - 8) / 3];
            match (w - 8) % 3 {
                0 => slot.offset.store(value, r),
                1 => slot.len.store(v32, r),
                _ => slot.flags.store(v32, r),
            }
        }
    }
}

/// Takes what `from` holds (at most its capacity: nobody writes meanwhile), checks each
/// buffer can be copied, records it and sends it on through `to` if there is room.
fn drain(
    from: &mut Consumer<'_, N>,
    to: &mut Producer<'_, N>,
    region: &DataRegion<'_>,
    owned: &mut Ledger<1>,
) {
    let g = region.geometry();
    let mut buffer = [0u8; 128];
    for _ in 0..=N {
        match from.dequeue() {
            Ok(None) | Err(Corrupt::Index) => return,
            Ok(Some(desc)) => {
                assert!(g.check(&desc).is_ok(), "an unchecked descriptor");
                assert_eq!(region.copy_out(&desc, &mut buffer), Ok(desc.len as usize));
                let frame = &buffer[..desc.len as usize];
                assert_eq!(region.copy_in(&desc, frame), Ok(desc));
                match owned.receive(&desc) {
                    Ok(_) => match to.enqueue(desc) {
                        Ok(()) => assert!(owned.give(&desc).is_ok()),
                        Err(QueueError::Full | QueueError::Corrupt(Corrupt::Index)) => {}
                        Err(e) => panic!("enqueue: {e:?}"),
                    },
                    Err(LedgerError::Duplicate) => {}
                    Err(e) => panic!("ledger: {e:?}"),
                }
            }
            Err(Corrupt::Offset(desc)) => assert!(g.index(desc.offset).is_none()),
            Err(Corrupt::Length(desc)) => assert!(desc.len > g.buf_size()),
        }
    }
    panic!("more descriptors than the queue holds");
}

fuzz_target!(|data: &[u8]| {
    let (Ok(rx), Ok(tx)) = (Geometry::new(8, 64), Geometry::new(4, 128)) else {
        return;
    };
    let mut region = Region([0; 64 * 32]);
    let (mut rx_mem, mut tx_mem) = (Data([0; 512]), Data([0; 512]));
    assert!(core::mem::size_of::<NetQueues<N>>() <= region.0.len());
    let (Ok(rx_data), Ok(tx_data)) = (
        DataRegion::new(&mut rx_mem.0, rx),
        DataRegion::new(&mut tx_mem.0, tx),
    ) else {
        return;
    };
    let Ok(net) = NetQueues::<N>::init(&mut region.0, rx, tx) else {
        return;
    };
    let queues = [net.rx_free, net.rx_active, net.tx_free, net.tx_active].map(|q| q.shared());
    let mut driver = net.driver();
    let (Ok(mut rx_owned), Ok(mut tx_owned)) =
        (Ledger::<1>::new(rx, false), Ledger::new(tx, false))
    else {
        return;
    };
    let mut input = data.iter().copied();
    while let Some(step) = input.next() {
        match step % 8 {
            0..4 => {
                let queue = queues[usize::from(step >> 3) % 4];
                let word = input.next().unwrap_or(0);
                let mut value = [0u8; 8];
                for (byte, b) in value.iter_mut().zip(&mut input) {
                    *byte = b;
                }
                poke(queue, word, u64::from_le_bytes(value));
            }
            4 => drain(
                &mut driver.rx_free,
                &mut driver.rx_active,
                &rx_data,
                &mut rx_owned,
            ),
            5 => drain(
                &mut driver.tx_active,
                &mut driver.tx_free,
                &tx_data,
                &mut tx_owned,
            ),
            6 => {
                let _ = (
                    driver.rx_active.signal_needed(),
                    driver.tx_free.signal_needed(),
                );
                for c in [&driver.rx_free, &driver.tx_active] {
                    assert!(matches!(c.ready_to_wait(), Ok(_) | Err(Corrupt::Index)));
                }
            }
            _ => {
                for p in [&driver.rx_active, &driver.tx_free] {
                    assert!(p.in_flight().map_or(true, |n| n <= N));
                }
                for c in [&driver.rx_free, &driver.tx_active] {
                    assert!(c.pending().map_or(true, |n| n <= N));
                }
            }
        }
    }
    assert!(rx_owned.owned() <= rx.buffers() && tx_owned.owned() <= tx.buffers());
});
