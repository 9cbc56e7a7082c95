//! A single-producer single-consumer ring of fixed-size messages in shared memory.
//!
//! Layout (`SharedRing<N, W>`): a header (magic, version, geometry), the producer's index
//! and the consumer's index on cache lines of their own, then `N` slots of a length word and
//! `W` data words (`8 * W` payload bytes). The producer writes a slot, then publishes it
//! by storing its index with release ordering; the consumer loads that index with acquire
//! ordering, reads the slot, then frees it by storing its own index with release ordering.
//!
//! Each side keeps its own index privately and only *writes* it to shared memory, so a peer
//! that scribbles on the other's index cannot confuse it; what it reads from the peer is
//! checked (at most `N` messages in flight, lengths at most the slot size).

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// Magic in a ring's header.
pub const RING_MAGIC: u32 = 0x4154_5247; // "ATRG"
/// Ring layout version.
pub const RING_VERSION: u32 = 1;

/// The header both sides check before use.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct RingHeader {
    /// [`RING_MAGIC`].
    pub magic: AtomicU32,
    /// [`RING_VERSION`].
    pub version: AtomicU32,
    /// Slots in the ring.
    pub slots: AtomicU32,
    /// Data words per slot.
    pub words: AtomicU32,
    /// Padding to a cache line.
    pub pad: [u64; 6],
}

/// An index on its own cache line.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct Index {
    /// Messages written (producer) or read (consumer), wrapping.
    pub value: AtomicU32,
    /// Padding.
    pub pad: [u32; 15],
}

/// One message slot. (Generic layouts cannot derive `IntoBytes`; the ring is only ever
/// read from a region, which needs `FromBytes`.)
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct Slot<const W: usize> {
    /// Payload length in bytes.
    pub len: AtomicU64,
    /// Payload, as words.
    pub data: [AtomicU64; W],
}

/// The ring as it lies in shared memory.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct SharedRing<const N: usize, const W: usize> {
    /// Geometry, written once by whoever sets the region up.
    pub header: RingHeader,
    /// Written only by the producer.
    pub producer: Index,
    /// Written only by the consumer.
    pub consumer: Index,
    /// The messages.
    pub slots: [Slot<W>; N],
}

const _: () = assert!(size_of::<RingHeader>() == 64);
const _: () = assert!(size_of::<Index>() == 64);
const _: () = assert!(offset_of!(SharedRing<4, 2>, producer) == 64);
const _: () = assert!(offset_of!(SharedRing<4, 2>, consumer) == 128);
const _: () = assert!(offset_of!(SharedRing<4, 2>, slots) == 192);
const _: () = assert!(size_of::<Slot<7>>() == 64);

/// Why a ring cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The region is too small or misaligned for this ring.
    BadRegion,
    /// The header does not describe a ring of this geometry (wrong or damaged set-up).
    BadHeader,
    /// The peer's index is impossible: the ring is corrupt.
    Corrupt,
    /// No room (producer) or no message (consumer).
    WouldBlock,
    /// The message is longer than a slot, or the buffer shorter than the message.
    TooLarge,
}

impl<const N: usize, const W: usize> SharedRing<N, W> {
    /// Payload bytes per message.
    pub const MESSAGE_BYTES: usize = W * 8;

    /// Views `region` as a ring after checking its size and alignment.
    fn view(region: &mut [u8]) -> Result<&Self, RingError> {
        if region.len() < size_of::<Self>() || region.as_ptr().align_offset(align_of::<Self>()) != 0
        {
            return Err(RingError::BadRegion);
        }
        // SAFETY: the region is at least as large and as aligned as `Self`; every bit
        // pattern is a valid `Self` (it derives `FromBytes`); and the exclusive borrow of the
        // bytes for the returned lifetime becomes a shared borrow of atomics, through which
        // every access (ours and, in shared memory, the peer's) is atomic.
        Ok(unsafe { &*region.as_mut_ptr().cast::<Self>() })
    }

    /// Sets up a ring in `region` (zeroing it) and returns it. Done once, by one side or by
    /// the system's set-up code, before either side attaches.
    pub fn init(region: &mut [u8]) -> Result<&Self, RingError> {
        let size = size_of::<Self>();
        region.get_mut(..size).ok_or(RingError::BadRegion)?.fill(0);
        let ring = Self::view(region)?;
        ring.header.magic.store(RING_MAGIC, Ordering::Relaxed);
        ring.header.version.store(RING_VERSION, Ordering::Relaxed);
        ring.header.slots.store(N as u32, Ordering::Relaxed);
        ring.header.words.store(W as u32, Ordering::Release);
        Ok(ring)
    }

    /// Views an initialised ring in `region`, checking its header against this geometry.
    pub fn attach(region: &mut [u8]) -> Result<&Self, RingError> {
        let ring = Self::view(region)?;
        ring.check_header()?;
        Ok(ring)
    }

    /// Views the initialised ring at `base`, as a PD does with the address the `microkit`
    /// tool patched into it.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be memory mapped into this address space for `'a` and used
    /// by nobody (the peer included) except through a [`SharedRing`] of this geometry.
    pub unsafe fn attach_raw<'a>(base: *mut u8, len: usize) -> Result<&'a Self, RingError> {
        if base.is_null() {
            return Err(RingError::BadRegion);
        }
        // SAFETY: the caller guarantees the range is mapped, lives for 'a and is only used
        // through atomics of this layout, so an exclusive byte view of it is sound here.
        let region = unsafe { core::slice::from_raw_parts_mut(base, len) };
        Self::attach(region)
    }

    fn check_header(&self) -> Result<(), RingError> {
        let h = &self.header;
        let ok = h.words.load(Ordering::Acquire) == W as u32
            && h.magic.load(Ordering::Relaxed) == RING_MAGIC
            && h.version.load(Ordering::Relaxed) == RING_VERSION
            && h.slots.load(Ordering::Relaxed) == N as u32;
        if ok {
            Ok(())
        } else {
            Err(RingError::BadHeader)
        }
    }

    /// The producer's end. Only one may exist at a time, on one side.
    pub fn producer(&self) -> Result<Producer<'_, N, W>, RingError> {
        self.check_header()?;
        Ok(Producer {
            ring: self,
            head: self.producer.value.load(Ordering::Relaxed),
        })
    }

    /// The consumer's end. Only one may exist at a time, on one side.
    pub fn consumer(&self) -> Result<Consumer<'_, N, W>, RingError> {
        self.check_header()?;
        Ok(Consumer {
            ring: self,
            tail: self.consumer.value.load(Ordering::Relaxed),
        })
    }
}

/// An atomic 32-bit word (an index).
pub trait Word32 {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u32;
    /// Atomic store.
    fn store(&self, value: u32, order: Ordering);
}

/// An atomic 64-bit word (a length or payload word).
pub trait Word64 {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, value: u64, order: Ordering);
}

impl Word32 for AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    fn store(&self, value: u32, order: Ordering) {
        AtomicU32::store(self, value, order);
    }
}

impl Word64 for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order);
    }
}

/// The shared words of a ring, as the protocol uses them. [`SharedRing`] provides them over
/// core atomics; `verification/` provides them over loom's, so the model checks [`send`] and
/// [`recv`] themselves, orderings included.
pub trait RingMemory {
    /// Index word type.
    type W32: Word32;
    /// Data word type.
    type W64: Word64;
    /// Slots in the ring.
    fn slot_count(&self) -> usize;
    /// Data words per slot.
    fn word_count(&self) -> usize;
    /// The producer's index.
    fn head(&self) -> &Self::W32;
    /// The consumer's index.
    fn tail(&self) -> &Self::W32;
    /// A slot's length word (`slot < slot_count()`).
    fn len(&self, slot: usize) -> &Self::W64;
    /// A slot's data word (`slot < slot_count()`, `word < word_count()`).
    fn word(&self, slot: usize, word: usize) -> &Self::W64;
}

/// Producer: sends `message` if there is room; `head` is the producer's private index.
pub fn send<M: RingMemory>(ring: &M, head: &mut u32, message: &[u8]) -> Result<(), RingError> {
    let (slots, words) = (ring.slot_count(), ring.word_count());
    if message.len() > words * 8 {
        return Err(RingError::TooLarge);
    }
    let tail = ring.tail().load(Ordering::Acquire);
    let in_flight = head.wrapping_sub(tail) as usize;
    if in_flight > slots {
        return Err(RingError::Corrupt);
    }
    if in_flight == slots {
        return Err(RingError::WouldBlock);
    }
    let slot = *head as usize % slots;
    ring.len(slot)
        .store(message.len() as u64, Ordering::Relaxed);
    for (i, chunk) in message.chunks(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        ring.word(slot, i)
            .store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
    *head = head.wrapping_add(1);
    ring.head().store(*head, Ordering::Release);
    Ok(())
}

/// Consumer: receives one message into `buffer`, returning its length; `tail` is the
/// consumer's private index.
pub fn recv<M: RingMemory>(
    ring: &M,
    tail: &mut u32,
    buffer: &mut [u8],
) -> Result<usize, RingError> {
    let (slots, words) = (ring.slot_count(), ring.word_count());
    let head = ring.head().load(Ordering::Acquire);
    let available = head.wrapping_sub(*tail) as usize;
    if available == 0 {
        return Err(RingError::WouldBlock);
    }
    if available > slots {
        return Err(RingError::Corrupt);
    }
    let slot = *tail as usize % slots;
    let len = ring.len(slot).load(Ordering::Relaxed);
    if len > (words * 8) as u64 {
        return Err(RingError::Corrupt);
    }
    let len = len as usize;
    if len > buffer.len() {
        return Err(RingError::TooLarge);
    }
    for (i, chunk) in buffer[..len].chunks_mut(8).enumerate() {
        let bytes = ring.word(slot, i).load(Ordering::Relaxed).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    *tail = tail.wrapping_add(1);
    ring.tail().store(*tail, Ordering::Release);
    Ok(len)
}

impl<const N: usize, const W: usize> RingMemory for SharedRing<N, W> {
    type W32 = AtomicU32;
    type W64 = AtomicU64;
    fn slot_count(&self) -> usize {
        N
    }
    fn word_count(&self) -> usize {
        W
    }
    fn head(&self) -> &AtomicU32 {
        &self.producer.value
    }
    fn tail(&self) -> &AtomicU32 {
        &self.consumer.value
    }
    fn len(&self, slot: usize) -> &AtomicU64 {
        &self.slots[slot].len
    }
    fn word(&self, slot: usize, word: usize) -> &AtomicU64 {
        &self.slots[slot].data[word]
    }
}

/// The sending end.
pub struct Producer<'a, const N: usize, const W: usize> {
    ring: &'a SharedRing<N, W>,
    head: u32,
}

impl<const N: usize, const W: usize> Producer<'_, N, W> {
    /// Sends one message if there is room.
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), RingError> {
        send(self.ring, &mut self.head, message)
    }

    /// Messages the consumer has not taken yet (as far as this side can tell).
    pub fn in_flight(&self) -> Result<usize, RingError> {
        let n = self
            .head
            .wrapping_sub(self.ring.consumer.value.load(Ordering::Acquire))
            as usize;
        if n > N {
            Err(RingError::Corrupt)
        } else {
            Ok(n)
        }
    }
}

/// The receiving end.
pub struct Consumer<'a, const N: usize, const W: usize> {
    ring: &'a SharedRing<N, W>,
    tail: u32,
}

impl<const N: usize, const W: usize> Consumer<'_, N, W> {
    /// Receives one message into `buffer`, returning its length.
    pub fn try_recv(&mut self, buffer: &mut [u8]) -> Result<usize, RingError> {
        recv(self.ring, &mut self.tail, buffer)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    type Ring = SharedRing<4, 2>; // 4 messages of 16 bytes

    /// A cache line, so test regions have the alignment a shared page has.
    #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
    #[repr(C, align(64))]
    struct Line([u64; 8]);

    fn region() -> Vec<Line> {
        vec![Line([0; 8]); size_of::<Ring>().div_ceil(64)]
    }

    fn bytes(lines: &mut [Line]) -> &mut [u8] {
        lines.as_mut_bytes()
    }

    #[test]
    fn messages_arrive_in_order_until_full() {
        let mut mem = region();
        let ring = Ring::init(bytes(&mut mem)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut buf = [0u8; 16];
        assert_eq!(rx.try_recv(&mut buf), Err(RingError::WouldBlock));
        for i in 0..4u8 {
            tx.try_send(&[i; 9]).unwrap();
        }
        assert_eq!(tx.try_send(b"x"), Err(RingError::WouldBlock));
        assert_eq!(tx.try_send(&[0; 17]), Err(RingError::TooLarge));
        for i in 0..4u8 {
            assert_eq!(rx.try_recv(&mut buf), Ok(9));
            assert_eq!(&buf[..9], &[i; 9]);
        }
        assert_eq!(tx.in_flight(), Ok(0));
    }

    #[test]
    fn attach_checks_the_header_and_region() {
        let mut mem = region();
        assert_eq!(
            Ring::attach(bytes(&mut mem)).err(),
            Some(RingError::BadHeader),
            "not initialised"
        );
        Ring::init(bytes(&mut mem)).unwrap();
        assert!(Ring::attach(bytes(&mut mem)).is_ok());
        assert_eq!(
            SharedRing::<8, 2>::attach(bytes(&mut mem)).err(),
            Some(RingError::BadRegion),
            "too small for 8 slots"
        );
        assert_eq!(
            SharedRing::<2, 2>::attach(bytes(&mut mem)).err(),
            Some(RingError::BadHeader),
            "other geometry"
        );
        let short = &mut bytes(&mut mem)[..100];
        assert_eq!(Ring::attach(short).err(), Some(RingError::BadRegion));
    }

    #[test]
    fn a_corrupt_peer_is_an_error() {
        let mut mem = region();
        let ring = Ring::init(bytes(&mut mem)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_send(b"ok").unwrap();
        // The producer's index jumps beyond the ring: the consumer refuses it.
        ring.producer.value.store(1000, Ordering::Relaxed);
        let mut buf = [0u8; 16];
        assert_eq!(rx.try_recv(&mut buf), Err(RingError::Corrupt));
        // A slot claims more than a slot holds.
        ring.producer.value.store(1, Ordering::Relaxed);
        ring.slots[0].len.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(rx.try_recv(&mut buf), Err(RingError::Corrupt));
        // The consumer's index runs ahead of the producer: the producer refuses it.
        ring.consumer.value.store(500, Ordering::Relaxed);
        assert_eq!(tx.try_send(b"x"), Err(RingError::Corrupt));
    }

    proptest! {
        /// Against a queue model: FIFO, no loss, bounded by the slot count, across index
        /// wraparound (indices start near u32::MAX).
        #[test]
        fn behaves_like_a_bounded_queue(start in prop_oneof![Just(0u32), Just(u32::MAX - 3)], ops in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 0..200)) {
            let mut mem = region();
            let ring = Ring::init(bytes(&mut mem)).unwrap();
            ring.producer.value.store(start, Ordering::Relaxed);
            ring.consumer.value.store(start, Ordering::Relaxed);
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut buf = [0u8; 16];
            for op in ops {
                match op {
                    Some(msg) => match tx.try_send(&msg) {
                        Ok(()) => model.push_back(msg),
                        Err(RingError::TooLarge) => prop_assert!(msg.len() > 16),
                        Err(RingError::WouldBlock) => prop_assert_eq!(model.len(), 4),
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    },
                    None => match (rx.try_recv(&mut buf), model.pop_front()) {
                        (Ok(n), Some(want)) => prop_assert_eq!(&buf[..n], &want[..]),
                        (Err(RingError::WouldBlock), None) => {}
                        (got, want) => prop_assert!(false, "ring {:?}, model {:?}", got, want),
                    },
                }
            }
        }

        /// A hostile producer writes anything anywhere in the region between receives: the
        /// consumer never panics, never reads past its buffer, and never reports more
        /// messages than the ring can hold.
        #[test]
        fn a_hostile_producer_cannot_break_the_consumer(writes in proptest::collection::vec((0usize..size_of::<Ring>() / 8, any::<u64>()), 0..64)) {
            let mut mem = region();
            {
                let ring = Ring::init(bytes(&mut mem)).unwrap();
                let mut tx = ring.producer().unwrap();
                tx.try_send(b"hello").unwrap();
            }
            for (at, value) in writes {
                if at >= size_of::<RingHeader>() / 8 {
                    mem[at / 8].0[at % 8] = value; // leave the header alone so attach succeeds
                }
                let ring = Ring::attach(bytes(&mut mem)).unwrap();
                let mut rx = ring.consumer().unwrap();
                let mut buf = [0u8; 16];
                let mut received = 0;
                while let Ok(n) = rx.try_recv(&mut buf) {
                    prop_assert!(n <= 16);
                    received += 1;
                    prop_assert!(received <= 4);
                }
            }
        }
    }
}
