//! Model checking of the protocols replicas share through memory, over every interleaving
//! `loom` can produce. The models drive the same protocol functions the kernels run
//! (`atoll_abi::shared::doorbell`), on loom's atomics.
#![forbid(unsafe_code)]

use atoll_abi::shared::doorbell::PendingWord;

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
