//! Model checking of the protocols replicas share through memory, over every interleaving
//! `loom` can produce. The models drive the same protocol functions the kernels run
//! (`atoll_abi::shared::doorbell`, `atoll_channels::ring`), on loom's atomics; the model of
//! the cross-core wake-up inside one replica ([`smp_wake`]) holds the protocol itself, as
//! the kernel is to follow it.
#![deny(unsafe_code)]

use atoll_abi::shared::doorbell::PendingWord;

// Its threads' saved registers are loom's checked cell, read and written through raw pointers.
#[allow(unsafe_code)]
pub mod smp_wake;

/// A pending word on loom's atomics.
#[derive(Debug, Default)]
pub struct LoomWord(pub loom::sync::atomic::AtomicU64);

impl PendingWord for LoomWord {
    fn or_release(&self, bits: u64) -> u64 {
        self.0.fetch_or(bits, loom::sync::atomic::Ordering::Release)
    }

    fn take_acquire(&self) -> u64 {
        self.0.swap(0, loom::sync::atomic::Ordering::Acquire)
    }
}

/// A ring on loom's atomics, for model-checking `atoll_channels::ring::{send, recv}`.
pub mod ring {
    use atoll_channels::ring::{RingMemory, Word32, Word64};
    use core::sync::atomic::Ordering;
    use loom::sync::atomic::{AtomicU32, AtomicU64};

    /// An index word.
    #[derive(Debug, Default)]
    pub struct L32(AtomicU32);
    /// A data word.
    #[derive(Debug, Default)]
    pub struct L64(AtomicU64);

    impl Word32 for L32 {
        fn load(&self, order: Ordering) -> u32 {
            self.0.load(order)
        }
        fn store(&self, value: u32, order: Ordering) {
            self.0.store(value, order);
        }
    }

    impl Word64 for L64 {
        fn load(&self, order: Ordering) -> u64 {
            self.0.load(order)
        }
        fn store(&self, value: u64, order: Ordering) {
            self.0.store(value, order);
        }
    }

    /// Two slots of one data word each.
    #[derive(Debug, Default)]
    pub struct LoomRing {
        head: L32,
        tail: L32,
        lens: [L64; 2],
        words: [L64; 2],
    }

    impl RingMemory for LoomRing {
        type W32 = L32;
        type W64 = L64;
        fn slot_count(&self) -> usize {
            2
        }
        fn word_count(&self) -> usize {
            1
        }
        fn head(&self) -> &L32 {
            &self.head
        }
        fn tail(&self) -> &L32 {
            &self.tail
        }
        fn len(&self, slot: usize) -> &L64 {
            &self.lens[slot]
        }
        fn word(&self, slot: usize, _word: usize) -> &L64 {
            &self.words[slot]
        }
    }
}
