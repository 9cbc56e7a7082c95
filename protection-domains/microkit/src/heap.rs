//! The heap behind `#[protection_domain(heap_size = N)]`: a first-fit allocator over an
//! `N`-byte arena in the program's `.bss`, with a free list kept in address order and
//! neighbouring free blocks merged on every free.
//!
//! Each allocation is preceded by a 16-byte header holding where its block starts and how
//! big the block is, so any alignment up to the arena's size can be served.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

/// Block granule and header size.
const UNIT: usize = 16;

/// A free block, stored in the block itself.
#[repr(C)]
struct Free {
    size: usize,
    next: Option<NonNull<Free>>,
}

/// The arena, aligned so every block is.
#[repr(C, align(16))]
struct Arena<const N: usize>([u8; N]);

struct State<const N: usize> {
    arena: Arena<N>,
    head: Option<NonNull<Free>>,
    started: bool,
}

/// A heap of `N` bytes (rounded down to 16).
pub struct Heap<const N: usize> {
    lock: AtomicBool,
    state: UnsafeCell<State<N>>,
}

// SAFETY: every access to `state` happens with `lock` held.
unsafe impl<const N: usize> Sync for Heap<N> {}

impl<const N: usize> Default for Heap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Heap<N> {
    /// An empty heap; the arena becomes one free block at the first allocation.
    pub const fn new() -> Self {
        Self {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                arena: Arena([0; N]),
                head: None,
                started: false,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State<N>) -> T) -> T {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference.
        let out = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        out
    }

    /// Bytes in free blocks (for tests and statistics).
    pub fn free_bytes(&self) -> usize {
        self.with(|s| {
            s.start();
            let mut total = 0;
            let mut at = s.head;
            while let Some(b) = at {
                // SAFETY: free-list entries are blocks inside the arena.
                let b = unsafe { b.as_ref() };
                total += b.size;
                at = b.next;
            }
            total
        })
    }
}

impl<const N: usize> State<N> {
    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let size = N / UNIT * UNIT;
        if size < 2 * UNIT {
            return;
        }
        let first = self.arena.0.as_mut_ptr().cast::<Free>();
        // SAFETY: the arena is 16-byte aligned and at least 32 bytes long.
        unsafe { first.write(Free { size, next: None }) };
        self.head = NonNull::new(first);
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.start();
        let align = layout.align().max(UNIT);
        let Some(want) = layout
            .size()
            .checked_add(UNIT)
            .and_then(|s| s.checked_next_multiple_of(UNIT))
        else {
            return ptr::null_mut();
        };
        let mut prev: Option<NonNull<Free>> = None;
        let mut at = self.head;
        while let Some(block) = at {
            // SAFETY: free-list entries are valid blocks inside the arena.
            let Free { size, next } = unsafe { block.read() };
            let start = block.as_ptr() as usize;
            // The user pointer: the first `align`-aligned address past the header.
            let user = (start + UNIT).next_multiple_of(align);
            let used = (user - start) + (want - UNIT);
            if used <= size {
                let used = used.next_multiple_of(UNIT);
                let rest = size - used;
                // A tail big enough for a block stays free; a smaller one goes with this one.
                let (replacement, taken) = if rest >= 2 * UNIT {
                    let tail = (start + used) as *mut Free;
                    // SAFETY: the tail lies inside this free block, 16-byte aligned.
                    unsafe { tail.write(Free { size: rest, next }) };
                    (NonNull::new(tail), used)
                } else {
                    (next, size)
                };
                match prev {
                    // SAFETY: `prev` is a valid free block.
                    Some(mut p) => unsafe { p.as_mut().next = replacement },
                    None => self.head = replacement,
                }
                let header = (user - UNIT) as *mut [usize; 2];
                // SAFETY: the header lies inside the block, 16 bytes before `user`.
                unsafe { header.write([start, taken]) };
                return user as *mut u8;
            }
            prev = Some(block);
            at = next;
        }
        ptr::null_mut()
    }

    fn free(&mut self, user: *mut u8) {
        // SAFETY: `user` came from `alloc`, so its header precedes it.
        let [start, size] = unsafe { ((user as usize - UNIT) as *const [usize; 2]).read() };
        // Find the neighbours in address order.
        let mut prev: Option<NonNull<Free>> = None;
        let mut at = self.head;
        while let Some(b) = at {
            if b.as_ptr() as usize > start {
                break;
            }
            prev = Some(b);
            // SAFETY: a valid free block.
            at = unsafe { b.as_ref().next };
        }
        let block = start as *mut Free;
        // SAFETY: the block is ours again, 16-byte aligned and at least 32 bytes.
        unsafe { block.write(Free { size, next: at }) };
        let mut block = NonNull::new(block).expect("arena addresses are non-null");
        // Merge with the next block.
        if let Some(next) = at
            && start + size == next.as_ptr() as usize
        {
            // SAFETY: both are valid free blocks.
            unsafe {
                let n = next.read();
                block.as_mut().size += n.size;
                block.as_mut().next = n.next;
            }
        }
        match prev {
            Some(mut p) => {
                // SAFETY: `p` is a valid free block just below this one.
                unsafe {
                    let p_end = p.as_ptr() as usize + p.as_ref().size;
                    if p_end == start {
                        p.as_mut().size += block.as_ref().size;
                        p.as_mut().next = block.as_ref().next;
                    } else {
                        p.as_mut().next = Some(block);
                    }
                }
            }
            None => self.head = Some(block),
        }
    }
}

// SAFETY: `alloc` returns blocks inside the arena that no other live allocation overlaps,
// aligned as asked, or null; `dealloc` takes back only what `alloc` gave.
unsafe impl<const N: usize> GlobalAlloc for Heap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|s| s.alloc(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        self.with(|s| s.free(ptr));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec::Vec;

    proptest! {
        #[test]
        fn allocations_never_overlap_and_everything_comes_back(
            ops in proptest::collection::vec((any::<bool>(), 1usize..300, 0u32..7, any::<u8>()), 1..200)
        ) {
            let heap: Box<Heap<8192>> = Box::default();
            let total = heap.free_bytes();
            let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
            for (free, size, align_log, fill) in ops {
                if free && !live.is_empty() {
                    let (p, layout, fill) = live.remove(usize::from(fill) % live.len());
                    // SAFETY: p was allocated with layout and filled with `fill`.
                    unsafe {
                        prop_assert!(core::slice::from_raw_parts(p, layout.size()).iter().all(|&b| b == fill));
                        heap.dealloc(p, layout);
                    }
                    continue;
                }
                let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                // SAFETY: a valid layout.
                let p = unsafe { heap.alloc(layout) };
                if p.is_null() {
                    continue;
                }
                prop_assert_eq!(p as usize % layout.align(), 0);
                let (lo, hi) = (p as usize, p as usize + size);
                for &(q, l, _) in &live {
                    prop_assert!(hi <= q as usize || q as usize + l.size() <= lo, "overlap");
                }
                // SAFETY: freshly allocated, `size` bytes.
                unsafe { core::ptr::write_bytes(p, fill, size) };
                live.push((p, layout, fill));
            }
            for (p, layout, _) in live {
                // SAFETY: allocated with this layout.
                unsafe { heap.dealloc(p, layout) };
            }
            prop_assert_eq!(heap.free_bytes(), total, "free blocks did not merge back");
        }
    }

    #[test]
    fn an_oversized_request_is_refused() {
        let heap: Box<Heap<1024>> = Box::default();
        // SAFETY: a valid layout.
        let p = unsafe { heap.alloc(Layout::from_size_align(4096, 8).unwrap()) };
        assert!(p.is_null());
    }
}
