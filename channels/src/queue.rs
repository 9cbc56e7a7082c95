//! Buffer queues between a device driver and its client, in the shape of seL4's sDDF.
//!
//! # Shape
//!
//! A driver PD and its client PD share two kinds of memory:
//!
//! - a **data region** of `buffers` equal buffers of `buf_size` bytes ([`Geometry`],
//!   [`DataRegion`]), named by their byte offset from the region's start (offsets, not
//!   addresses: each PD maps the region where it likes, and a driver adds the region's
//!   physical address to hand a buffer to its device);
//! - **queues** ([`SharedQueue`]): single-producer single-consumer rings of 16-byte
//!   descriptors ([`Desc`]: a buffer's offset, a length and a flags word), which carry buffers,
//!   never data.
//!
//! A network driver and its client share four queues ([`NetQueues`]), a pair per direction,
//! as sDDF's:
//!
//! | queue | producer → consumer | carries |
//! |---|---|---|
//! | rx `free` | client → driver | empty buffers for the driver to fill with received frames |
//! | rx `active` | driver → client | received frames |
//! | tx `active` | client → driver | frames to send |
//! | tx `free` | driver → client | the buffers of frames sent, for the client to reuse |
//!
//! [`DriverSide`] and [`ClientSide`] hold the producer or consumer end of each, as that side
//! uses it. A block driver and its client use a pair of the same queues ([`crate::block`]),
//! and so do the store and each of its clients ([`crate::kv`]).
//!
//! # Ownership
//!
//! A buffer is owned by exactly one side at a time: the side holding its offset, or the queue
//! it is in. Enqueueing a descriptor hands the buffer to the peer: from then on this side
//! neither reads nor writes it until the buffer comes back through the other queue of the
//! pair. At the start the client owns every buffer of both directions and posts the rx
//! buffers on rx `free`. A length of 0 on a `free` queue is usual (the buffer is empty).
//!
//! A peer may break this. What it enqueues is checked when it is dequeued: a descriptor
//! whose offset is no buffer's start (beyond the region, or not a multiple of `buf_size`) or
//! whose length exceeds `buf_size` is consumed and returned as a [`Corrupt`] error, never as
//! a buffer. A duplicate (an offset this side already owns: handed back twice, or never
//! handed over) passes those checks; a [`Ledger`] of the buffers a side owns catches it. A
//! driver drops any such descriptor and counts it: it does not touch the buffer, does not
//! return it, and never panics.
//!
//! # Layout and ordering
//!
//! [`SharedQueue<N>`]: a header (magic, version, capacity and the data region's geometry),
//! the producer's index, the consumer's index and the signal flag, each on a cache line of
//! its own, then `N` descriptor slots, four to a cache line. `N` is a power of two (so the
//! free-running `u32` indices wrap onto the same slots). As in [`crate::ring`]: the producer
//! checks there is room (acquire load of the consumer's index), writes a slot, then publishes
//! it with a release store of its index; the consumer loads that index with acquire ordering,
//! copies the slot out, then frees it with a release store of its own index. Each side keeps
//! its index privately and only writes it to shared memory; what it reads from the peer (its
//! index, the descriptors) is checked against the queue's capacity and the geometry this side
//! was given, never against the header, which is checked once, at [`SharedQueue::attach`],
//! and never read again.
//!
//! # Signalling
//!
//! A producer notifies the consumer only when the consumer asked (sDDF's `signal_flag`): a
//! consumer that found the queue empty sets the flag ([`Consumer::request_signal`]) and checks
//! the queue once more before it waits ([`Consumer::ready_to_wait`] does both); a producer
//! that enqueued checks and clears the flag ([`Producer::signal_needed`]) and notifies if it
//! was set. Both put a sequentially consistent fence between their store and their load, so
//! either the producer sees the request or the consumer sees the descriptor: no wake-up is
//! lost. A hostile peer can only cost notifications on its own side, or spurious ones.
//!
//! # The data region is shared memory
//!
//! The peer can write any buffer at any time, one it has handed over included. A Rust
//! reference (`&[u8]` or `&mut [u8]`) into the region would promise the compiler that the
//! bytes do not change behind it (a `&mut` also that nobody else reads them), which a
//! concurrent write breaks: undefined behaviour. So the region is only ever accessed through
//! relaxed atomic 64-bit words ([`Window::read`], [`Window::write`], [`DataRegion::copy_out`],
//! [`DataRegion::copy_in`]): a racing peer can make this side read garbage, never undefined
//! behaviour. (`buf_size` is a multiple of 8, so a buffer is whole words; a write that ends
//! mid-word rewrites the rest of that word, which is the same buffer's.) The queue's release
//! and acquire order these copies: what the producer wrote before enqueueing, the consumer
//! reads after dequeueing. Copy a frame out before parsing it, so what is checked is what is
//! used.
//!
//! # Why not a `SharedRing<N, 2>`
//!
//! A descriptor would fit [`crate::ring::SharedRing`]'s slot (a length word and two data
//! words), but this is a dedicated ring with the same discipline, for four reasons: its slots
//! are the descriptor itself (16 bytes instead of 24, no length word to check); its header
//! carries the data region's geometry and the signal flag, which a ring's header has no room
//! for (adding them would change the ring's version for its existing users); a bad
//! descriptor is consumed and dropped, where the ring stops at a bad slot; and the signal
//! handshake needs a fence the ring does not. It reuses the ring's index line ([`Index`]) and
//! word traits ([`Word32`], [`Word64`]), and, like the ring's [`send`](crate::ring::send) and
//! [`recv`](crate::ring::recv), its protocol is written once, generic over [`QueueMemory`],
//! so the loom models in `verification/` check the same code.

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{Index, Word32, Word64};

/// Magic in a queue's header.
pub const QUEUE_MAGIC: u32 = 0x4154_5155; // "ATQU"
/// Queue layout version.
pub const QUEUE_VERSION: u32 = 1;

/// A buffer handed from one side to the other: where it is in the data region and how many
/// of its bytes are used.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Desc {
    /// The buffer's byte offset in the data region: a multiple of `buf_size`.
    pub offset: u64,
    /// Bytes used, from the buffer's start: at most `buf_size`.
    pub len: u32,
    /// Reserved for the protocol using the queue (0 for the network queues); passed through
    /// unchecked.
    pub flags: u32,
}

impl Desc {
    /// A descriptor with no flags.
    pub const fn new(offset: u64, len: u32) -> Self {
        Self {
            offset,
            len,
            flags: 0,
        }
    }
}

/// The data region's shape: `buffers` buffers of `buf_size` bytes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    buffers: u32,
    buf_size: u32,
}

impl Geometry {
    /// A geometry; `buffers` must be at least 1, `buf_size` a non-zero multiple of 8.
    pub const fn new(buffers: u32, buf_size: u32) -> Result<Self, QueueError> {
        if buffers == 0 || buf_size == 0 || !buf_size.is_multiple_of(8) {
            return Err(QueueError::BadGeometry);
        }
        Ok(Self { buffers, buf_size })
    }

    /// Buffers in the region.
    pub const fn buffers(self) -> u32 {
        self.buffers
    }

    /// Bytes per buffer.
    pub const fn buf_size(self) -> u32 {
        self.buf_size
    }

    /// Bytes the region spans.
    pub const fn region_bytes(self) -> u64 {
        self.buffers as u64 * self.buf_size as u64
    }

    /// The offset of buffer `index`, if there is one.
    pub const fn offset(self, index: u32) -> Option<u64> {
        if index < self.buffers {
            Some(index as u64 * self.buf_size as u64)
        } else {
            None
        }
    }

    /// The buffer starting at `offset`, if one does.
    pub const fn index(self, offset: u64) -> Option<u32> {
        let size = self.buf_size as u64;
        if offset < self.region_bytes() && offset.is_multiple_of(size) {
            Some((offset / size) as u32)
        } else {
            None
        }
    }

    /// Checks a descriptor against the region, returning its buffer's index.
    pub const fn check(self, desc: &Desc) -> Result<u32, Corrupt> {
        match self.index(desc.offset) {
            None => Err(Corrupt::Offset(*desc)),
            Some(_) if desc.len > self.buf_size => Err(Corrupt::Length(*desc)),
            Some(index) => Ok(index),
        }
    }
}

/// Why a queue, a data region or a copy cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The region is too small or misaligned for this layout.
    BadRegion,
    /// The header is not a queue of this version (wrong or missing set-up).
    BadHeader,
    /// The geometry is invalid, or is not the one the queue was set up with.
    BadGeometry,
    /// No room in the queue.
    Full,
    /// The peer broke the protocol (see [`Corrupt`]).
    Corrupt(Corrupt),
    /// A descriptor this side passed names no buffer of the region, or is longer than one.
    BadDescriptor,
    /// The bytes do not fit: more than a buffer holds, or a destination shorter than the
    /// descriptor's length.
    TooLarge,
}

/// What a peer did wrong. The offending descriptor is consumed: the queue moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corrupt {
    /// The peer's index claims more descriptors in flight than the queue holds. Nothing is
    /// consumed; the queue stays unusable until the peer's index is sane again.
    Index,
    /// The offset names no buffer's start (a foreign offset).
    Offset(Desc),
    /// The offset is a buffer's, but the length exceeds a buffer. The peer has given the
    /// buffer up; the caller may take it back (through its [`Ledger`]) or drop it.
    Length(Desc),
}

/// The header both sides check before use.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct QueueHeader {
    /// [`QUEUE_MAGIC`], stored last by the set-up.
    pub magic: AtomicU32,
    /// [`QUEUE_VERSION`].
    pub version: AtomicU32,
    /// Descriptor slots in the queue.
    pub capacity: AtomicU32,
    /// Buffers in the data region.
    pub buffers: AtomicU32,
    /// Bytes per buffer.
    pub buf_size: AtomicU32,
    /// Padding to a cache line.
    pub pad: [u32; 11],
}

/// The consumer's request for a notification, on its own cache line.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct SignalFlag {
    /// Non-zero: the consumer is about to wait and wants a notification. Set by the
    /// consumer, cleared by either side.
    pub wanted: AtomicU32,
    /// Padding.
    pub pad: [u32; 15],
}

/// One descriptor slot, [`Desc`]'s layout in atomics.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct DescSlot {
    /// [`Desc::offset`].
    pub offset: AtomicU64,
    /// [`Desc::len`].
    pub len: AtomicU32,
    /// [`Desc::flags`].
    pub flags: AtomicU32,
}

/// A queue as it lies in shared memory.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct SharedQueue<const N: usize> {
    /// Geometry, written once by whoever sets the region up.
    pub header: QueueHeader,
    /// Written only by the producer.
    pub producer: Index,
    /// Written only by the consumer.
    pub consumer: Index,
    /// Set by the consumer, cleared by either side.
    pub signal: SignalFlag,
    /// The descriptors.
    pub slots: [DescSlot; N],
}

/// The four queues of a network driver and its client, in one shared region.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct NetQueues<const N: usize> {
    /// Client → driver: empty buffers to receive into.
    pub rx_free: SharedQueue<N>,
    /// Driver → client: received frames.
    pub rx_active: SharedQueue<N>,
    /// Driver → client: buffers of sent frames.
    pub tx_free: SharedQueue<N>,
    /// Client → driver: frames to send.
    pub tx_active: SharedQueue<N>,
}

const _: () = assert!(size_of::<QueueHeader>() == 64);
const _: () = assert!(size_of::<SignalFlag>() == 64);
const _: () = assert!(size_of::<DescSlot>() == 16 && size_of::<Desc>() == 16);
const _: () = assert!(offset_of!(DescSlot, offset) == offset_of!(Desc, offset));
const _: () = assert!(offset_of!(DescSlot, len) == offset_of!(Desc, len));
const _: () = assert!(offset_of!(DescSlot, flags) == offset_of!(Desc, flags));
const _: () = assert!(offset_of!(SharedQueue<4>, producer) == 64);
const _: () = assert!(offset_of!(SharedQueue<4>, consumer) == 128);
const _: () = assert!(offset_of!(SharedQueue<4>, signal) == 192);
const _: () = assert!(offset_of!(SharedQueue<4>, slots) == 256);
const _: () = assert!(size_of::<SharedQueue<4>>() == 320);
const _: () = assert!(offset_of!(NetQueues<4>, rx_active) == 320);
const _: () = assert!(offset_of!(NetQueues<4>, tx_free) == 640);
const _: () = assert!(offset_of!(NetQueues<4>, tx_active) == 960);

/// Views `region` as a `T` after checking its size and alignment.
fn view<T: FromBytes + KnownLayout>(region: &mut [u8]) -> Result<&T, QueueError> {
    if region.len() < size_of::<T>() || region.as_ptr().align_offset(align_of::<T>()) != 0 {
        return Err(QueueError::BadRegion);
    }
    // SAFETY: the region is at least as large and as aligned as `T`; every bit pattern is a
    // valid `T` (it is `FromBytes`); and the exclusive borrow of the bytes for the returned
    // lifetime becomes a shared borrow of atomics, through which every access (ours and, in
    // shared memory, the peer's) is atomic.
    Ok(unsafe { &*region.as_mut_ptr().cast::<T>() })
}

/// Zeroes the start of `region` that a `T` covers and views it.
fn zero_and_view<T: FromBytes + KnownLayout>(region: &mut [u8]) -> Result<&T, QueueError> {
    region
        .get_mut(..size_of::<T>())
        .ok_or(QueueError::BadRegion)?
        .fill(0);
    view(region)
}

/// `base..base + len` as bytes, or [`QueueError::BadRegion`] for a null `base`.
///
/// # Safety
///
/// As [`SharedQueue::attach_raw`].
unsafe fn raw_region<'a>(base: *mut u8, len: usize) -> Result<&'a mut [u8], QueueError> {
    if base.is_null() {
        return Err(QueueError::BadRegion);
    }
    // SAFETY: the caller guarantees the range is mapped, lives for 'a and is only used
    // through atomics, so an exclusive byte view of it is sound here.
    Ok(unsafe { core::slice::from_raw_parts_mut(base, len) })
}

impl<const N: usize> SharedQueue<N> {
    /// Descriptors the queue holds: a power of two up to 2^31, checked at compile time
    /// wherever the queue is set up or attached.
    ///
    /// ```compile_fail
    /// let _ = atoll_channels::queue::SharedQueue::<3>::CAPACITY;
    /// ```
    pub const CAPACITY: u32 = {
        assert!(
            N.is_power_of_two() && N <= 1 << 31,
            "a queue's capacity is a power of two up to 2^31"
        );
        N as u32
    };

    /// Sets up a queue in `region` (zeroing it) for a data region of `geometry`. Done once, by
    /// one side or by the system's set-up code, before the other side attaches.
    pub fn init(region: &mut [u8], geometry: Geometry) -> Result<Queue<'_, N>, QueueError> {
        let shared = zero_and_view::<Self>(region)?;
        shared.write_header(geometry);
        Ok(Queue { shared, geometry })
    }

    /// Views a queue set up in `region`, checking magic, version, capacity and that it was
    /// set up for `geometry`.
    pub fn attach(region: &mut [u8], geometry: Geometry) -> Result<Queue<'_, N>, QueueError> {
        let shared = view::<Self>(region)?;
        shared.check_header(geometry)?;
        Ok(Queue { shared, geometry })
    }

    /// [`SharedQueue::attach`] at `base`, as a PD does with the address the `microkit` tool
    /// patched into it.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be memory mapped into this address space for `'a` and used
    /// by nobody (the peer included) except through the atomics of this layout.
    pub unsafe fn attach_raw<'a>(
        base: *mut u8,
        len: usize,
        geometry: Geometry,
    ) -> Result<Queue<'a, N>, QueueError> {
        // SAFETY: the caller's guarantee is `raw_region`'s.
        Self::attach(unsafe { raw_region(base, len) }?, geometry)
    }

    fn write_header(&self, geometry: Geometry) {
        let h = &self.header;
        h.version.store(QUEUE_VERSION, Ordering::Relaxed);
        h.capacity.store(Self::CAPACITY, Ordering::Relaxed);
        h.buffers.store(geometry.buffers, Ordering::Relaxed);
        h.buf_size.store(geometry.buf_size, Ordering::Relaxed);
        h.magic.store(QUEUE_MAGIC, Ordering::Release);
    }

    fn check_header(&self, geometry: Geometry) -> Result<(), QueueError> {
        let h = &self.header;
        if h.magic.load(Ordering::Acquire) != QUEUE_MAGIC
            || h.version.load(Ordering::Relaxed) != QUEUE_VERSION
        {
            return Err(QueueError::BadHeader);
        }
        if h.capacity.load(Ordering::Relaxed) != Self::CAPACITY
            || h.buffers.load(Ordering::Relaxed) != geometry.buffers
            || h.buf_size.load(Ordering::Relaxed) != geometry.buf_size
        {
            return Err(QueueError::BadGeometry);
        }
        Ok(())
    }
}

/// A checked queue and the geometry its descriptors are checked against (this side's, not
/// the header's).
#[derive(Clone, Copy)]
pub struct Queue<'a, const N: usize> {
    shared: &'a SharedQueue<N>,
    geometry: Geometry,
}

impl<'a, const N: usize> Queue<'a, N> {
    /// The producer's end. Only one may exist at a time, on one side.
    pub fn producer(self) -> Producer<'a, N> {
        Producer {
            head: self.shared.producer.value.load(Ordering::Relaxed),
            queue: self,
        }
    }

    /// The consumer's end. Only one may exist at a time, on one side.
    pub fn consumer(self) -> Consumer<'a, N> {
        Consumer {
            tail: self.shared.consumer.value.load(Ordering::Relaxed),
            queue: self,
        }
    }

    /// The queue in shared memory.
    pub fn shared(self) -> &'a SharedQueue<N> {
        self.shared
    }

    /// The data region's geometry.
    pub fn geometry(self) -> Geometry {
        self.geometry
    }
}

/// The shared words of a queue, as the protocol uses them. [`SharedQueue`] provides them over
/// core atomics; `verification/` provides them over loom's, so the model checks [`enqueue`],
/// [`dequeue`] and the signal handshake themselves, orderings and fences included.
pub trait QueueMemory {
    /// Index and length word type.
    type W32: Word32;
    /// Offset word type.
    type W64: Word64;
    /// Slots in the queue (a power of two).
    fn capacity(&self) -> usize;
    /// The producer's index.
    fn head(&self) -> &Self::W32;
    /// The consumer's index.
    fn tail(&self) -> &Self::W32;
    /// The consumer's request for a notification.
    fn signal(&self) -> &Self::W32;
    /// A slot's offset word (`slot < capacity()`).
    fn offset(&self, slot: usize) -> &Self::W64;
    /// A slot's length word (`slot < capacity()`).
    fn len(&self, slot: usize) -> &Self::W32;
    /// A slot's flags word (`slot < capacity()`).
    fn flags(&self, slot: usize) -> &Self::W32;
    /// A sequentially consistent fence, in the same memory model as the words.
    fn fence(&self);
}

impl<const N: usize> QueueMemory for SharedQueue<N> {
    type W32 = AtomicU32;
    type W64 = AtomicU64;
    fn capacity(&self) -> usize {
        Self::CAPACITY as usize
    }
    fn head(&self) -> &AtomicU32 {
        &self.producer.value
    }
    fn tail(&self) -> &AtomicU32 {
        &self.consumer.value
    }
    fn signal(&self) -> &AtomicU32 {
        &self.signal.wanted
    }
    fn offset(&self, slot: usize) -> &AtomicU64 {
        &self.slots[slot].offset
    }
    fn len(&self, slot: usize) -> &AtomicU32 {
        &self.slots[slot].len
    }
    fn flags(&self, slot: usize) -> &AtomicU32 {
        &self.slots[slot].flags
    }
    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// Producer: descriptors enqueued and not yet taken, as far as this side can tell; `head` is
/// the producer's private index.
pub fn in_flight<M: QueueMemory>(queue: &M, head: u32) -> Result<usize, Corrupt> {
    let n = head.wrapping_sub(queue.tail().load(Ordering::Acquire)) as usize;
    if n > queue.capacity() {
        Err(Corrupt::Index)
    } else {
        Ok(n)
    }
}

/// Producer: enqueues `desc` (checked against `geometry` first, so the peer never sees a bad
/// one from this side) if there is room; `head` is the producer's private index.
pub fn enqueue<M: QueueMemory>(
    queue: &M,
    head: &mut u32,
    geometry: Geometry,
    desc: Desc,
) -> Result<(), QueueError> {
    if geometry.check(&desc).is_err() {
        return Err(QueueError::BadDescriptor);
    }
    let in_flight = in_flight(queue, *head).map_err(QueueError::Corrupt)?;
    if in_flight == queue.capacity() {
        return Err(QueueError::Full);
    }
    // in_flight < capacity, so capacity > 0.
    let slot = *head as usize % queue.capacity();
    queue.offset(slot).store(desc.offset, Ordering::Relaxed);
    queue.len(slot).store(desc.len, Ordering::Relaxed);
    queue.flags(slot).store(desc.flags, Ordering::Relaxed);
    *head = head.wrapping_add(1);
    queue.head().store(*head, Ordering::Release);
    Ok(())
}

/// Consumer: descriptors waiting; `tail` is the consumer's private index.
pub fn pending<M: QueueMemory>(queue: &M, tail: u32) -> Result<usize, Corrupt> {
    let n = queue.head().load(Ordering::Acquire).wrapping_sub(tail) as usize;
    if n > queue.capacity() {
        Err(Corrupt::Index)
    } else {
        Ok(n)
    }
}

/// Consumer: dequeues one descriptor, `None` if there is none; `tail` is the consumer's
/// private index. A descriptor that fails `geometry`'s check is consumed and returned as the
/// error: a peer cannot block the queue with one.
pub fn dequeue<M: QueueMemory>(
    queue: &M,
    tail: &mut u32,
    geometry: Geometry,
) -> Result<Option<Desc>, Corrupt> {
    if pending(queue, *tail)? == 0 {
        return Ok(None);
    }
    // pending > 0 and at most the capacity, so capacity > 0.
    let slot = *tail as usize % queue.capacity();
    let desc = Desc {
        offset: queue.offset(slot).load(Ordering::Relaxed),
        len: queue.len(slot).load(Ordering::Relaxed),
        flags: queue.flags(slot).load(Ordering::Relaxed),
    };
    *tail = tail.wrapping_add(1);
    queue.tail().store(*tail, Ordering::Release);
    geometry.check(&desc)?;
    Ok(Some(desc))
}

/// Consumer: asks for a notification on the next enqueue. The fence orders the request before
/// the consumer's next look at the queue.
pub fn request_signal<M: QueueMemory>(queue: &M) {
    queue.signal().store(1, Ordering::Relaxed);
    queue.fence();
}

/// Consumer: withdraws a request for a notification.
pub fn cancel_signal<M: QueueMemory>(queue: &M) {
    queue.signal().store(0, Ordering::Relaxed);
}

/// Consumer: requests a notification, then looks at the queue again: `true` if it is still
/// empty and the consumer may wait; `false` (request withdrawn) if a descriptor arrived.
pub fn ready_to_wait<M: QueueMemory>(queue: &M, tail: u32) -> Result<bool, Corrupt> {
    request_signal(queue);
    match pending(queue, tail) {
        Ok(0) => Ok(true),
        other => {
            cancel_signal(queue);
            other.map(|_| false)
        }
    }
}

/// Producer, after enqueueing: whether the consumer asked for a notification. If it did, the
/// request is cleared and the caller must notify the consumer. (The clear may erase a request
/// the consumer made meanwhile; the notification that follows answers that one too.)
pub fn signal_needed<M: QueueMemory>(queue: &M) -> bool {
    queue.fence();
    if queue.signal().load(Ordering::Relaxed) == 0 {
        return false;
    }
    queue.signal().store(0, Ordering::Relaxed);
    true
}

/// The enqueueing end of a queue.
pub struct Producer<'a, const N: usize> {
    queue: Queue<'a, N>,
    head: u32,
}

impl<const N: usize> Producer<'_, N> {
    /// Hands `desc`'s buffer to the peer, if there is room and the descriptor is valid
    /// ([`QueueError::Full`], [`QueueError::BadDescriptor`], or [`QueueError::Corrupt`] if
    /// the consumer's index is impossible).
    pub fn enqueue(&mut self, desc: Desc) -> Result<(), QueueError> {
        enqueue(self.queue.shared, &mut self.head, self.queue.geometry, desc)
    }

    /// Descriptors the consumer has not taken yet (as far as this side can tell).
    pub fn in_flight(&self) -> Result<usize, Corrupt> {
        in_flight(self.queue.shared, self.head)
    }

    /// Whether to notify the consumer after enqueueing (see [`signal_needed`]).
    pub fn signal_needed(&self) -> bool {
        signal_needed(self.queue.shared)
    }

    /// The data region's geometry.
    pub fn geometry(&self) -> Geometry {
        self.queue.geometry
    }
}

/// The dequeueing end of a queue.
pub struct Consumer<'a, const N: usize> {
    queue: Queue<'a, N>,
    tail: u32,
}

impl<const N: usize> Consumer<'_, N> {
    /// Takes the next buffer the peer handed over, `None` if there is none; a descriptor that
    /// is not a buffer of the region is consumed and returned as the error (see [`dequeue`]).
    pub fn dequeue(&mut self) -> Result<Option<Desc>, Corrupt> {
        dequeue(self.queue.shared, &mut self.tail, self.queue.geometry)
    }

    /// Descriptors waiting.
    pub fn pending(&self) -> Result<usize, Corrupt> {
        pending(self.queue.shared, self.tail)
    }

    /// Asks for a notification on the next enqueue (see [`request_signal`]).
    pub fn request_signal(&self) {
        request_signal(self.queue.shared);
    }

    /// Withdraws a request for a notification.
    pub fn cancel_signal(&self) {
        cancel_signal(self.queue.shared);
    }

    /// Requests a notification and checks the queue is still empty (see [`ready_to_wait`]).
    pub fn ready_to_wait(&self) -> Result<bool, Corrupt> {
        ready_to_wait(self.queue.shared, self.tail)
    }

    /// The data region's geometry.
    pub fn geometry(&self) -> Geometry {
        self.queue.geometry
    }
}

impl<const N: usize> NetQueues<N> {
    /// Sets up the four queues in `region` (zeroing it), the rx pair for a data region of
    /// `rx`, the tx pair for one of `tx`.
    pub fn init(region: &mut [u8], rx: Geometry, tx: Geometry) -> Result<Net<'_, N>, QueueError> {
        let shared = zero_and_view::<Self>(region)?;
        shared.rx_free.write_header(rx);
        shared.rx_active.write_header(rx);
        shared.tx_free.write_header(tx);
        shared.tx_active.write_header(tx);
        Ok(shared.handles(rx, tx))
    }

    /// Views the four queues set up in `region`, checking each header.
    pub fn attach(region: &mut [u8], rx: Geometry, tx: Geometry) -> Result<Net<'_, N>, QueueError> {
        let shared = view::<Self>(region)?;
        shared.rx_free.check_header(rx)?;
        shared.rx_active.check_header(rx)?;
        shared.tx_free.check_header(tx)?;
        shared.tx_active.check_header(tx)?;
        Ok(shared.handles(rx, tx))
    }

    /// [`NetQueues::attach`] at `base`.
    ///
    /// # Safety
    ///
    /// As [`SharedQueue::attach_raw`].
    pub unsafe fn attach_raw<'a>(
        base: *mut u8,
        len: usize,
        rx: Geometry,
        tx: Geometry,
    ) -> Result<Net<'a, N>, QueueError> {
        // SAFETY: the caller's guarantee is `raw_region`'s.
        Self::attach(unsafe { raw_region(base, len) }?, rx, tx)
    }

    fn handles(&self, rx: Geometry, tx: Geometry) -> Net<'_, N> {
        let queue = |shared, geometry| Queue { shared, geometry };
        Net {
            rx_free: queue(&self.rx_free, rx),
            rx_active: queue(&self.rx_active, rx),
            tx_free: queue(&self.tx_free, tx),
            tx_active: queue(&self.tx_active, tx),
        }
    }
}

/// The four checked queues of a network driver and its client.
#[derive(Clone, Copy)]
pub struct Net<'a, const N: usize> {
    /// Client → driver: empty buffers to receive into.
    pub rx_free: Queue<'a, N>,
    /// Driver → client: received frames.
    pub rx_active: Queue<'a, N>,
    /// Driver → client: buffers of sent frames.
    pub tx_free: Queue<'a, N>,
    /// Client → driver: frames to send.
    pub tx_active: Queue<'a, N>,
}

impl<'a, const N: usize> Net<'a, N> {
    /// The driver's ends.
    pub fn driver(self) -> DriverSide<'a, N> {
        DriverSide {
            rx_free: self.rx_free.consumer(),
            rx_active: self.rx_active.producer(),
            tx_free: self.tx_free.producer(),
            tx_active: self.tx_active.consumer(),
        }
    }

    /// The client's ends.
    pub fn client(self) -> ClientSide<'a, N> {
        ClientSide {
            rx_free: self.rx_free.producer(),
            rx_active: self.rx_active.consumer(),
            tx_free: self.tx_free.consumer(),
            tx_active: self.tx_active.producer(),
        }
    }
}

/// A network driver's ends of the four queues.
pub struct DriverSide<'a, const N: usize> {
    /// Empty buffers from the client, to receive into.
    pub rx_free: Consumer<'a, N>,
    /// Received frames, to the client.
    pub rx_active: Producer<'a, N>,
    /// Buffers of sent frames, back to the client.
    pub tx_free: Producer<'a, N>,
    /// Frames to send, from the client.
    pub tx_active: Consumer<'a, N>,
}

/// A network client's ends of the four queues.
pub struct ClientSide<'a, const N: usize> {
    /// Empty buffers, to the driver.
    pub rx_free: Producer<'a, N>,
    /// Received frames, from the driver.
    pub rx_active: Consumer<'a, N>,
    /// Buffers of sent frames, from the driver.
    pub tx_free: Consumer<'a, N>,
    /// Frames to send, to the driver.
    pub tx_active: Producer<'a, N>,
}

/// The data region, accessed only through atomic words (see the module's documentation).
#[derive(Clone, Copy)]
pub struct DataRegion<'a> {
    words: &'a [AtomicU64],
    geometry: Geometry,
}

impl<'a> DataRegion<'a> {
    /// Views the start of `region` as a data region of `geometry`; it must be 8-byte aligned
    /// and at least `geometry.region_bytes()` long.
    pub fn new(region: &'a mut [u8], geometry: Geometry) -> Result<Self, QueueError> {
        let bytes = usize::try_from(geometry.region_bytes()).map_err(|_| QueueError::BadRegion)?;
        let region = region.get_mut(..bytes).ok_or(QueueError::BadRegion)?;
        let words = <[AtomicU64]>::mut_from_bytes(region).map_err(|_| QueueError::BadRegion)?;
        Ok(Self { words, geometry })
    }

    /// [`DataRegion::new`] at `base`, as a PD does with the address the `microkit` tool
    /// patched into it.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be memory mapped into this address space for `'a` and used
    /// by nobody in this address space except through [`DataRegion`]s; the peer may write it
    /// at any time.
    pub unsafe fn from_raw(
        base: *mut u8,
        len: usize,
        geometry: Geometry,
    ) -> Result<Self, QueueError> {
        // SAFETY: the caller's guarantee, and every access through `Self` is atomic.
        Self::new(unsafe { raw_region(base, len) }?, geometry)
    }

    /// The region's geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The whole of buffer `index` (`buf_size` bytes), if there is one.
    pub fn buffer(&self, index: u32) -> Option<Window<'a>> {
        let per = self.geometry.buf_size as usize / 8;
        let start = (index as usize).checked_mul(per)?;
        let words = self.words.get(start..start.checked_add(per)?)?;
        Some(Window { words })
    }

    /// The whole of the buffer `desc` names (`buf_size` bytes, whatever `desc.len`), after
    /// checking `desc` against the geometry.
    pub fn window(&self, desc: &Desc) -> Result<Window<'a>, QueueError> {
        let index = self
            .geometry
            .check(desc)
            .map_err(|_| QueueError::BadDescriptor)?;
        self.buffer(index).ok_or(QueueError::BadDescriptor)
    }

    /// Copies the `desc.len` bytes of `desc`'s buffer into `dst`, returning that length.
    pub fn copy_out(&self, desc: &Desc, dst: &mut [u8]) -> Result<usize, QueueError> {
        let len = desc.len as usize;
        let dst = dst.get_mut(..len).ok_or(QueueError::TooLarge)?;
        self.window(desc)?.read(0, dst)?;
        Ok(len)
    }

    /// Copies `src` to the start of `desc`'s buffer (whatever `desc.len`) and returns the
    /// descriptor to enqueue: the same buffer and flags, `src.len()` long.
    pub fn copy_in(&self, desc: &Desc, src: &[u8]) -> Result<Desc, QueueError> {
        let buffer = Desc { len: 0, ..*desc };
        self.window(&buffer)?.write(0, src)?;
        let len = u32::try_from(src.len()).map_err(|_| QueueError::TooLarge)?;
        Ok(Desc { len, ..*desc })
    }
}

/// One buffer of the data region: the `&[u8]`/`&mut [u8]` of shared memory, read and written
/// only by copying through atomic words.
#[derive(Clone, Copy)]
pub struct Window<'a> {
    words: &'a [AtomicU64],
}

impl Window<'_> {
    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.words.len() * 8
    }

    /// Whether the buffer has no bytes (never, for a valid geometry).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words holding bytes `at..at + len`, and where in the first one they start.
    fn span(&self, at: usize, len: usize) -> Result<(&[AtomicU64], usize), QueueError> {
        let end = at.checked_add(len).ok_or(QueueError::TooLarge)?;
        if end > self.len() {
            return Err(QueueError::TooLarge);
        }
        if len == 0 {
            return Ok((&[], 0));
        }
        let words = self
            .words
            .get(at / 8..end.div_ceil(8))
            .ok_or(QueueError::TooLarge)?;
        Ok((words, at % 8))
    }

    /// Copies bytes `at..at + dst.len()` of the buffer into `dst`.
    pub fn read(&self, at: usize, dst: &mut [u8]) -> Result<(), QueueError> {
        let (words, mut skip) = self.span(at, dst.len())?;
        let mut dst = dst;
        for word in words {
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            let n = (8 - skip).min(dst.len());
            let (head, rest) = dst.split_at_mut(n);
            head.copy_from_slice(&bytes[skip..skip + n]);
            dst = rest;
            skip = 0;
        }
        Ok(())
    }

    /// Copies `src` into the buffer at `at`. A word only partly covered is read, merged and
    /// written back: its other bytes are this buffer's too.
    pub fn write(&self, at: usize, src: &[u8]) -> Result<(), QueueError> {
        let (words, mut skip) = self.span(at, src.len())?;
        let mut src = src;
        for word in words {
            let n = (8 - skip).min(src.len());
            let (head, rest) = src.split_at(n);
            let value = if n == 8 {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(head);
                bytes
            } else {
                let mut bytes = word.load(Ordering::Relaxed).to_ne_bytes();
                bytes[skip..skip + n].copy_from_slice(head);
                bytes
            };
            word.store(u64::from_ne_bytes(value), Ordering::Relaxed);
            src = rest;
            skip = 0;
        }
        Ok(())
    }
}

/// Which buffers of a data region this side owns, one bit each (up to `64 * WORDS` buffers):
/// catches a peer handing over a buffer this side already owns.
#[derive(Clone, Debug)]
pub struct Ledger<const WORDS: usize> {
    owned: [u64; WORDS],
    geometry: Geometry,
}

/// Why a buffer cannot change hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// The offset is no buffer's start.
    Foreign,
    /// Received a buffer this side already owns.
    Duplicate,
    /// Gave away a buffer this side does not own.
    NotOwned,
}

impl<const WORDS: usize> Ledger<WORDS> {
    /// A ledger for a region of `geometry`, owning every buffer or none.
    pub fn new(geometry: Geometry, owns_all: bool) -> Result<Self, QueueError> {
        if geometry.buffers as usize > WORDS * 64 {
            return Err(QueueError::BadGeometry);
        }
        let mut ledger = Self {
            owned: [0; WORDS],
            geometry,
        };
        if owns_all {
            for index in 0..geometry.buffers {
                ledger.set(index, true);
            }
        }
        Ok(ledger)
    }

    fn set(&mut self, index: u32, owned: bool) {
        if let Some(word) = self.owned.get_mut(index as usize / 64) {
            let bit = 1 << (index % 64);
            if owned {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// Whether this side owns buffer `index`.
    pub fn owns(&self, index: u32) -> bool {
        self.owned
            .get(index as usize / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// Buffers this side owns.
    pub fn owned(&self) -> u32 {
        self.owned.iter().map(|word| word.count_ones()).sum()
    }

    /// Some buffer this side owns (the lowest), if any.
    pub fn any(&self) -> Option<u32> {
        self.owned
            .iter()
            .enumerate()
            .find(|(_, word)| **word != 0)
            .map(|(i, word)| i as u32 * 64 + word.trailing_zeros())
    }

    /// Records `desc`'s buffer as received from the peer, returning its index; a duplicate
    /// or foreign one is refused (drop it and count it).
    pub fn receive(&mut self, desc: &Desc) -> Result<u32, LedgerError> {
        let index = self
            .geometry
            .index(desc.offset)
            .ok_or(LedgerError::Foreign)?;
        if self.owns(index) {
            return Err(LedgerError::Duplicate);
        }
        self.set(index, true);
        Ok(index)
    }

    /// Records `desc`'s buffer as given to the peer, returning its index; refused if this
    /// side does not own it.
    pub fn give(&mut self, desc: &Desc) -> Result<u32, LedgerError> {
        let index = self
            .geometry
            .index(desc.offset)
            .ok_or(LedgerError::Foreign)?;
        if !self.owns(index) {
            return Err(LedgerError::NotOwned);
        }
        self.set(index, false);
        Ok(index)
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

    const N: usize = 4;
    type Q = SharedQueue<N>;

    /// A cache line, so test regions have the alignment a shared page has.
    #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
    #[repr(C, align(64))]
    struct Line([u64; 8]);

    fn lines(bytes: usize) -> Vec<Line> {
        vec![Line([0; 8]); bytes.div_ceil(64)]
    }

    fn geometry(buffers: u32, buf_size: u32) -> Geometry {
        Geometry::new(buffers, buf_size).unwrap()
    }

    /// Backing for a data region (8-byte aligned).
    fn data(g: Geometry) -> Vec<u64> {
        vec![0; g.region_bytes() as usize / 8]
    }

    #[test]
    fn descriptors_arrive_in_order_until_full() {
        let g = geometry(8, 64);
        let mut mem = lines(size_of::<Q>());
        let q = Q::init(mem.as_mut_bytes(), g).unwrap();
        let (mut tx, mut rx) = (q.producer(), q.consumer());
        assert_eq!(rx.dequeue(), Ok(None));
        for i in 0..4u32 {
            tx.enqueue(Desc::new(u64::from(i) * 64, i)).unwrap();
        }
        assert_eq!(tx.enqueue(Desc::new(4 * 64, 0)), Err(QueueError::Full));
        assert_eq!((tx.in_flight(), rx.pending()), (Ok(4), Ok(4)));
        for i in 0..4u32 {
            assert_eq!(rx.dequeue(), Ok(Some(Desc::new(u64::from(i) * 64, i))));
        }
        assert_eq!(rx.dequeue(), Ok(None));
        assert_eq!(tx.in_flight(), Ok(0));
    }

    #[test]
    fn geometry_names_buffers_by_offset() {
        assert_eq!(Geometry::new(0, 64), Err(QueueError::BadGeometry));
        assert_eq!(Geometry::new(4, 0), Err(QueueError::BadGeometry));
        assert_eq!(
            Geometry::new(4, 12),
            Err(QueueError::BadGeometry),
            "not whole words"
        );
        let g = geometry(3, 24);
        assert_eq!(g.region_bytes(), 72);
        assert_eq!((g.offset(2), g.offset(3)), (Some(48), None));
        assert_eq!(
            (g.index(48), g.index(72), g.index(20)),
            (Some(2), None, None)
        );
        assert_eq!(g.check(&Desc::new(24, 24)), Ok(1));
        let long = Desc::new(24, 25);
        assert_eq!(g.check(&long), Err(Corrupt::Length(long)));
        let foreign = Desc::new(u64::MAX - 7, 0);
        assert_eq!(g.check(&foreign), Err(Corrupt::Offset(foreign)));
    }

    #[test]
    fn attach_checks_the_header_and_region() {
        let (g, other) = (geometry(8, 64), geometry(8, 128));
        let mut mem = lines(size_of::<SharedQueue<8>>());
        let bytes = mem.as_mut_bytes();
        assert_eq!(
            Q::attach(bytes, g).err(),
            Some(QueueError::BadHeader),
            "not set up"
        );
        Q::init(bytes, g).unwrap();
        assert!(Q::attach(bytes, g).is_ok());
        assert_eq!(Q::attach(bytes, other).err(), Some(QueueError::BadGeometry));
        assert_eq!(
            SharedQueue::<8>::attach(bytes, g).err(),
            Some(QueueError::BadGeometry),
            "other capacity"
        );
        assert_eq!(
            Q::attach(&mut bytes[..100], g).err(),
            Some(QueueError::BadRegion)
        );
        assert_eq!(
            Q::attach(&mut bytes[8..], g).err(),
            Some(QueueError::BadRegion)
        );
        {
            let q = Q::attach(bytes, g).unwrap();
            q.shared()
                .header
                .version
                .store(QUEUE_VERSION + 1, Ordering::Relaxed);
        }
        assert_eq!(
            Q::attach(bytes, g).err(),
            Some(QueueError::BadHeader),
            "other version"
        );
        // SAFETY: a null base is refused before it is used.
        let null = unsafe { Q::attach_raw(core::ptr::null_mut(), 4096, g) };
        assert_eq!(null.err(), Some(QueueError::BadRegion));
    }

    #[test]
    fn a_bad_descriptor_is_consumed_as_an_error() {
        let g = geometry(4, 64);
        let mut mem = lines(size_of::<Q>());
        let q = Q::init(mem.as_mut_bytes(), g).unwrap();
        let mut rx = q.consumer();
        let shared = q.shared();
        let bad = [
            Desc::new(256, 0), // beyond the region
            Desc::new(32, 0),  // inside a buffer
            Desc::new(64, 65), // longer than a buffer
            Desc::new(192, 64),
        ];
        for (slot, d) in shared.slots.iter().zip(bad) {
            slot.offset.store(d.offset, Ordering::Relaxed);
            slot.len.store(d.len, Ordering::Relaxed);
        }
        shared.producer.value.store(4, Ordering::Relaxed);
        assert_eq!(rx.dequeue(), Err(Corrupt::Offset(bad[0])));
        assert_eq!(rx.dequeue(), Err(Corrupt::Offset(bad[1])));
        assert_eq!(rx.dequeue(), Err(Corrupt::Length(bad[2])));
        assert_eq!(rx.dequeue(), Ok(Some(bad[3])), "the queue moved on");
        assert_eq!(rx.dequeue(), Ok(None));
        // The producer's index jumps beyond the queue: refused, and nothing consumed.
        shared.producer.value.store(100, Ordering::Relaxed);
        assert_eq!(rx.dequeue(), Err(Corrupt::Index));
        assert_eq!(rx.pending(), Err(Corrupt::Index));
        assert_eq!(shared.consumer.value.load(Ordering::Relaxed), 4);
        shared.producer.value.store(4, Ordering::Relaxed);
        assert_eq!(rx.dequeue(), Ok(None));
    }

    #[test]
    fn the_producer_refuses_bad_descriptors_and_a_corrupt_consumer() {
        let g = geometry(4, 64);
        let mut mem = lines(size_of::<Q>());
        let q = Q::init(mem.as_mut_bytes(), g).unwrap();
        let mut tx = q.producer();
        for d in [Desc::new(256, 0), Desc::new(8, 0), Desc::new(0, 65)] {
            assert_eq!(tx.enqueue(d), Err(QueueError::BadDescriptor));
        }
        assert_eq!(tx.in_flight(), Ok(0), "nothing was enqueued");
        tx.enqueue(Desc::new(0, 64)).unwrap();
        // The consumer's index runs ahead of the producer.
        q.shared().consumer.value.store(500, Ordering::Relaxed);
        let corrupt = Err(QueueError::Corrupt(Corrupt::Index));
        assert_eq!(tx.enqueue(Desc::new(64, 0)), corrupt);
        assert_eq!(tx.in_flight(), Err(Corrupt::Index));
    }

    #[test]
    fn the_producer_signals_only_when_asked() {
        let g = geometry(4, 64);
        let mut mem = lines(size_of::<Q>());
        let q = Q::init(mem.as_mut_bytes(), g).unwrap();
        let (mut tx, mut rx) = (q.producer(), q.consumer());
        tx.enqueue(Desc::new(0, 1)).unwrap();
        assert!(!tx.signal_needed(), "not asked");
        assert_eq!(rx.ready_to_wait(), Ok(false), "a descriptor is waiting");
        assert!(!tx.signal_needed(), "the request was withdrawn");
        rx.dequeue().unwrap();
        assert_eq!(rx.ready_to_wait(), Ok(true));
        tx.enqueue(Desc::new(64, 1)).unwrap();
        assert!(tx.signal_needed());
        assert!(!tx.signal_needed(), "one notification per request");
        rx.request_signal();
        rx.cancel_signal();
        assert!(!tx.signal_needed());
        q.shared().producer.value.store(99, Ordering::Relaxed);
        assert_eq!(rx.ready_to_wait(), Err(Corrupt::Index));
        assert!(!tx.signal_needed(), "no request left behind");
    }

    #[test]
    fn data_is_copied_to_and_from_the_right_bytes() {
        let g = geometry(3, 24);
        let mut mem = data(g);
        {
            let region = DataRegion::new(mem.as_mut_bytes(), g).unwrap();
            let frame = b"twenty-one bytes long";
            let desc = region.copy_in(&Desc::new(24, 0), frame).unwrap();
            assert_eq!(desc, Desc::new(24, 21));
            let mut out = [0u8; 24];
            assert_eq!(region.copy_out(&desc, &mut out), Ok(21));
            assert_eq!(&out[..21], frame);
            assert_eq!(
                region.copy_out(&desc, &mut out[..20]),
                Err(QueueError::TooLarge)
            );
            let big = [0u8; 25];
            assert_eq!(region.copy_in(&desc, &big), Err(QueueError::TooLarge));
            let bad = Desc::new(30, 0);
            assert_eq!(region.copy_in(&bad, b"x"), Err(QueueError::BadDescriptor));
            assert_eq!(
                region.copy_out(&bad, &mut out),
                Err(QueueError::BadDescriptor)
            );
            assert_eq!(
                region.window(&Desc::new(0, 25)).err(),
                Some(QueueError::BadDescriptor)
            );
            // A write ending mid-word keeps the rest of the word.
            let w = region.buffer(2).unwrap();
            assert_eq!(w.len(), 24);
            w.write(0, &[0xaa; 24]).unwrap();
            w.write(3, &[1, 2]).unwrap();
            let mut back = [0u8; 8];
            w.read(0, &mut back).unwrap();
            assert_eq!(back, [0xaa, 0xaa, 0xaa, 1, 2, 0xaa, 0xaa, 0xaa]);
            assert_eq!(w.read(20, &mut back), Err(QueueError::TooLarge));
            assert_eq!(w.write(usize::MAX, &back), Err(QueueError::TooLarge));
            assert!(region.buffer(3).is_none());
        }
        // The bytes are where the offsets say, in memory order.
        let bytes = mem.as_bytes();
        assert_eq!(&bytes[24..45], b"twenty-one bytes long");
        assert!(bytes[..24].iter().all(|b| *b == 0), "buffer 0 untouched");
        assert_eq!(&bytes[48..56], &[0xaa, 0xaa, 0xaa, 1, 2, 0xaa, 0xaa, 0xaa]);
        let short = &mut mem.as_mut_bytes()[..64];
        assert_eq!(DataRegion::new(short, g).err(), Some(QueueError::BadRegion));
        let misaligned = &mut mem.as_mut_bytes()[1..];
        assert_eq!(
            DataRegion::new(misaligned, g).err(),
            Some(QueueError::BadRegion)
        );
    }

    #[test]
    fn the_ledger_catches_duplicates_and_foreign_buffers() {
        let g = geometry(70, 8);
        assert_eq!(
            Ledger::<1>::new(g, false).err(),
            Some(QueueError::BadGeometry)
        );
        let mut all = Ledger::<2>::new(g, true).unwrap();
        assert_eq!((all.owned(), all.any()), (70, Some(0)));
        assert!(all.owns(69) && !all.owns(70));
        let mut none = Ledger::<2>::new(g, false).unwrap();
        assert_eq!((none.owned(), none.any()), (0, None));
        let d = Desc::new(65 * 8, 0);
        assert_eq!(none.give(&d), Err(LedgerError::NotOwned));
        assert_eq!(all.give(&d), Ok(65));
        assert_eq!(none.receive(&d), Ok(65));
        assert_eq!(none.receive(&d), Err(LedgerError::Duplicate));
        assert_eq!(none.any(), Some(65));
        assert_eq!(all.receive(&Desc::new(3, 0)), Err(LedgerError::Foreign));
        assert_eq!(all.give(&Desc::new(70 * 8, 0)), Err(LedgerError::Foreign));
    }

    #[test]
    fn a_frame_goes_round_both_directions() {
        let (rx_g, tx_g) = (geometry(4, 64), geometry(2, 32));
        let mut mem = lines(size_of::<NetQueues<N>>());
        let (mut rx_mem, mut tx_mem) = (data(rx_g), data(tx_g));
        let rx_data = DataRegion::new(rx_mem.as_mut_bytes(), rx_g).unwrap();
        let tx_data = DataRegion::new(tx_mem.as_mut_bytes(), tx_g).unwrap();
        NetQueues::<N>::init(mem.as_mut_bytes(), rx_g, tx_g).unwrap();
        let swapped = NetQueues::<N>::attach(mem.as_mut_bytes(), tx_g, rx_g);
        assert_eq!(swapped.err(), Some(QueueError::BadGeometry));
        let net = NetQueues::<N>::attach(mem.as_mut_bytes(), rx_g, tx_g).unwrap();
        let (mut driver, mut client) = (net.driver(), net.client());

        // Receive: the client posts an empty buffer, the driver fills it.
        assert_eq!(driver.rx_free.ready_to_wait(), Ok(true));
        client.rx_free.enqueue(Desc::new(128, 0)).unwrap();
        assert!(client.rx_free.signal_needed());
        let empty = driver.rx_free.dequeue().unwrap().unwrap();
        let frame = rx_data.copy_in(&empty, b"a received frame").unwrap();
        driver.rx_active.enqueue(frame).unwrap();
        let got = client.rx_active.dequeue().unwrap().unwrap();
        let mut buf = [0u8; 64];
        let n = rx_data.copy_out(&got, &mut buf).unwrap();
        assert_eq!((got.offset, &buf[..n]), (128, &b"a received frame"[..]));

        // Send: the client fills a buffer, the driver sends it and gives it back.
        let out = tx_data.copy_in(&Desc::new(32, 0), b"to send").unwrap();
        client.tx_active.enqueue(out).unwrap();
        let sending = driver.tx_active.dequeue().unwrap().unwrap();
        let n = tx_data.copy_out(&sending, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"to send");
        driver.tx_free.enqueue(sending).unwrap();
        assert_eq!(client.tx_free.dequeue(), Ok(Some(out)));
        // A tx offset is checked against the tx region, not the rx one.
        assert_eq!(
            client.tx_active.enqueue(Desc::new(64, 0)),
            Err(QueueError::BadDescriptor)
        );
    }

    /// What one side does to the network queues in the model test.
    #[derive(Clone, Debug)]
    enum Op {
        /// Client: post an empty rx buffer on rx free.
        PostRx,
        /// Driver: take an empty rx buffer.
        TakeRx,
        /// Driver: fill its oldest rx buffer with a frame and hand it over.
        DeliverRx(Vec<u8>),
        /// Client: take a received frame.
        RecvRx,
        /// Client: fill a tx buffer with a frame and hand it over.
        SendTx(Vec<u8>),
        /// Driver: take a frame to send.
        TakeTx,
        /// Driver: give its oldest sent buffer back.
        ReleaseTx,
        /// Client: take back a sent buffer.
        ReclaimTx,
    }

    fn op() -> impl Strategy<Value = Op> {
        let frame = || proptest::collection::vec(any::<u8>(), 0..=RX_SIZE as usize);
        prop_oneof![
            Just(Op::PostRx),
            Just(Op::TakeRx),
            frame().prop_map(Op::DeliverRx),
            Just(Op::RecvRx),
            frame().prop_map(Op::SendTx),
            Just(Op::TakeTx),
            Just(Op::ReleaseTx),
            Just(Op::ReclaimTx),
        ]
    }

    const RX_SIZE: u32 = 40;
    const TX_SIZE: u32 = 24;

    /// Each buffer of a region is in exactly one place: owned by one side, or in one queue.
    fn conserved(g: Geometry, ledgers: [&Ledger<1>; 2], queued: &[u64]) -> bool {
        (0..g.buffers()).all(|i| {
            let offset = g.offset(i).unwrap();
            let owners = ledgers.iter().filter(|l| l.owns(i)).count()
                + queued.iter().filter(|o| **o == offset).count();
            owners == 1
        })
    }

    /// A poke at one word of a queue: every word of the region but padding, which nothing
    /// reads.
    #[derive(Clone, Copy, Debug)]
    enum Word {
        Magic,
        Version,
        Capacity,
        Buffers,
        BufSize,
        Head,
        Tail,
        Signal,
        Offset(usize),
        Len(usize),
        Flags(usize),
    }

    fn poke() -> impl Strategy<Value = (usize, Word, u64)> {
        let word = prop_oneof![
            Just(Word::Magic),
            Just(Word::Version),
            Just(Word::Capacity),
            Just(Word::Buffers),
            Just(Word::BufSize),
            Just(Word::Head),
            Just(Word::Tail),
            Just(Word::Signal),
            (0..N).prop_map(Word::Offset),
            (0..N).prop_map(Word::Len),
            (0..N).prop_map(Word::Flags),
        ];
        // Mostly small values, the ones that pass the first checks: indices a few ahead,
        // offsets and lengths around the buffer size.
        let value = prop_oneof![0..8u64, (0..16u64).prop_map(|k| k * 8), any::<u64>()];
        (0..4usize, word, value)
    }

    fn write(q: &SharedQueue<N>, word: Word, value: u64) {
        let v32 = value as u32;
        let r = Ordering::Relaxed;
        match word {
            Word::Magic => q.header.magic.store(v32, r),
            Word::Version => q.header.version.store(v32, r),
            Word::Capacity => q.header.capacity.store(v32, r),
            Word::Buffers => q.header.buffers.store(v32, r),
            Word::BufSize => q.header.buf_size.store(v32, r),
            Word::Head => q.producer.value.store(v32, r),
            Word::Tail => q.consumer.value.store(v32, r),
            Word::Signal => q.signal.wanted.store(v32, r),
            Word::Offset(s) => q.slots[s].offset.store(value, r),
            Word::Len(s) => q.slots[s].len.store(v32, r),
            Word::Flags(s) => q.slots[s].flags.store(v32, r),
        }
    }

    /// The driver drains `from` (at most the capacity, as nobody writes meanwhile): every
    /// descriptor returned names a buffer it can copy, the rest are errors; each buffer
    /// received is recorded, and sent on through `to` if there is room; a duplicate is
    /// dropped.
    fn drain(
        from: &mut Consumer<'_, N>,
        to: &mut Producer<'_, N>,
        region: &DataRegion<'_>,
        ledger: &mut Ledger<1>,
    ) -> Result<(), TestCaseError> {
        let g = region.geometry();
        let mut taken = 0;
        loop {
            match from.dequeue() {
                Ok(None) | Err(Corrupt::Index) => break,
                Ok(Some(d)) => {
                    prop_assert!(g.check(&d).is_ok());
                    let mut buf = [0u8; RX_SIZE as usize];
                    prop_assert_eq!(region.copy_out(&d, &mut buf), Ok(d.len as usize));
                    let filled = region.copy_in(&d, &buf[..d.len as usize]);
                    prop_assert_eq!(filled, Ok(d));
                    match ledger.receive(&d) {
                        Ok(_) => match to.enqueue(d) {
                            Ok(()) => {
                                ledger.give(&d).unwrap();
                            }
                            Err(QueueError::Full | QueueError::Corrupt(Corrupt::Index)) => {}
                            Err(e) => prop_assert!(false, "enqueue: {:?}", e),
                        },
                        Err(LedgerError::Duplicate) => {}
                        Err(e) => prop_assert!(false, "ledger: {:?}", e),
                    }
                }
                Err(Corrupt::Offset(d)) => {
                    prop_assert!(g.index(d.offset).is_none());
                }
                Err(Corrupt::Length(d)) => {
                    prop_assert!(d.len > g.buf_size());
                }
            }
            taken += 1;
            prop_assert!(taken <= N, "more descriptors than the queue holds");
        }
        Ok(())
    }

    proptest! {
        /// Both sides against a model of the four queues: FIFO, the data that went in comes
        /// out, and every buffer is always in exactly one place (never lost, never
        /// duplicated), across index wraparound (indices start near u32::MAX) and full
        /// queues (six rx buffers, four slots).
        #[test]
        fn the_network_queues_never_lose_or_duplicate_a_buffer(
            start in prop_oneof![Just(0u32), Just(u32::MAX - 2)],
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let (rx_g, tx_g) = (geometry(6, RX_SIZE), geometry(5, TX_SIZE));
            let mut mem = lines(size_of::<NetQueues<N>>());
            let (mut rx_mem, mut tx_mem) = (data(rx_g), data(tx_g));
            let rx_data = DataRegion::new(rx_mem.as_mut_bytes(), rx_g).unwrap();
            let tx_data = DataRegion::new(tx_mem.as_mut_bytes(), tx_g).unwrap();
            let net = NetQueues::<N>::init(mem.as_mut_bytes(), rx_g, tx_g).unwrap();
            for q in [net.rx_free, net.rx_active, net.tx_free, net.tx_active] {
                q.shared().producer.value.store(start, Ordering::Relaxed);
                q.shared().consumer.value.store(start, Ordering::Relaxed);
            }
            let (mut driver, mut client) = (net.driver(), net.client());
            let (mut client_rx, mut driver_rx) = (Ledger::<1>::new(rx_g, true).unwrap(), Ledger::<1>::new(rx_g, false).unwrap());
            let (mut client_tx, mut driver_tx) = (Ledger::<1>::new(tx_g, true).unwrap(), Ledger::<1>::new(tx_g, false).unwrap());
            let (mut driver_rx_held, mut driver_tx_held) = (VecDeque::new(), VecDeque::new());
            let mut rx_free: VecDeque<Desc> = VecDeque::new();
            let mut rx_active: VecDeque<(Desc, Vec<u8>)> = VecDeque::new();
            let mut tx_active: VecDeque<(Desc, Vec<u8>)> = VecDeque::new();
            let mut tx_free: VecDeque<Desc> = VecDeque::new();
            let mut buf = [0u8; RX_SIZE as usize];
            for op in ops {
                match op {
                    Op::PostRx => if let Some(i) = client_rx.any() {
                        let d = Desc::new(rx_g.offset(i).unwrap(), 0);
                        match client.rx_free.enqueue(d) {
                            Ok(()) => {
                                client_rx.give(&d).unwrap();
                                rx_free.push_back(d);
                            }
                            Err(QueueError::Full) => prop_assert_eq!(rx_free.len(), N),
                            Err(e) => prop_assert!(false, "{:?}", e),
                        }
                    },
                    Op::TakeRx => match (driver.rx_free.dequeue(), rx_free.pop_front()) {
                        (Ok(Some(d)), Some(want)) => {
                            prop_assert_eq!(d, want);
                            prop_assert!(driver_rx.receive(&d).is_ok());
                            driver_rx_held.push_back(d);
                        }
                        (Ok(None), None) => {}
                        (got, want) => prop_assert!(false, "queue {:?}, model {:?}", got, want),
                    },
                    Op::DeliverRx(frame) => if let Some(&empty) = driver_rx_held.front() {
                        let d = rx_data.copy_in(&empty, &frame).unwrap();
                        match driver.rx_active.enqueue(d) {
                            Ok(()) => {
                                driver_rx.give(&d).unwrap();
                                driver_rx_held.pop_front();
                                rx_active.push_back((d, frame));
                            }
                            Err(QueueError::Full) => prop_assert_eq!(rx_active.len(), N),
                            Err(e) => prop_assert!(false, "{:?}", e),
                        }
                    },
                    Op::RecvRx => match (client.rx_active.dequeue(), rx_active.pop_front()) {
                        (Ok(Some(d)), Some((want, frame))) => {
                            prop_assert_eq!(d, want);
                            let n = rx_data.copy_out(&d, &mut buf).unwrap();
                            prop_assert_eq!(&buf[..n], &frame[..]);
                            prop_assert!(client_rx.receive(&d).is_ok());
                        }
                        (Ok(None), None) => {}
                        (got, want) => prop_assert!(false, "queue {:?}, model {:?}", got, want),
                    },
                    Op::SendTx(frame) => if let Some(i) = client_tx.any() {
                        let empty = Desc::new(tx_g.offset(i).unwrap(), 0);
                        let d = match tx_data.copy_in(&empty, &frame) {
                            Ok(d) => d,
                            Err(e) => {
                                prop_assert_eq!(e, QueueError::TooLarge);
                                prop_assert!(frame.len() > TX_SIZE as usize);
                                continue;
                            }
                        };
                        match client.tx_active.enqueue(d) {
                            Ok(()) => {
                                client_tx.give(&d).unwrap();
                                tx_active.push_back((d, frame));
                            }
                            Err(QueueError::Full) => prop_assert_eq!(tx_active.len(), N),
                            Err(e) => prop_assert!(false, "{:?}", e),
                        }
                    },
                    Op::TakeTx => match (driver.tx_active.dequeue(), tx_active.pop_front()) {
                        (Ok(Some(d)), Some((want, frame))) => {
                            prop_assert_eq!(d, want);
                            let n = tx_data.copy_out(&d, &mut buf).unwrap();
                            prop_assert_eq!(&buf[..n], &frame[..]);
                            prop_assert!(driver_tx.receive(&d).is_ok());
                            driver_tx_held.push_back(d);
                        }
                        (Ok(None), None) => {}
                        (got, want) => prop_assert!(false, "queue {:?}, model {:?}", got, want),
                    },
                    Op::ReleaseTx => if let Some(&d) = driver_tx_held.front() {
                        match driver.tx_free.enqueue(d) {
                            Ok(()) => {
                                driver_tx.give(&d).unwrap();
                                driver_tx_held.pop_front();
                                tx_free.push_back(d);
                            }
                            Err(QueueError::Full) => prop_assert_eq!(tx_free.len(), N),
                            Err(e) => prop_assert!(false, "{:?}", e),
                        }
                    },
                    Op::ReclaimTx => match (client.tx_free.dequeue(), tx_free.pop_front()) {
                        (Ok(Some(d)), Some(want)) => {
                            prop_assert_eq!(d, want);
                            prop_assert!(client_tx.receive(&d).is_ok());
                        }
                        (Ok(None), None) => {}
                        (got, want) => prop_assert!(false, "queue {:?}, model {:?}", got, want),
                    },
                }
                let queued: Vec<u64> = rx_free.iter().chain(rx_active.iter().map(|(d, _)| d)).map(|d| d.offset).collect();
                prop_assert!(conserved(rx_g, [&client_rx, &driver_rx], &queued), "rx buffers");
                let queued: Vec<u64> = tx_free.iter().chain(tx_active.iter().map(|(d, _)| d)).map(|d| d.offset).collect();
                prop_assert!(conserved(tx_g, [&client_tx, &driver_tx], &queued), "tx buffers");
                prop_assert_eq!(driver.rx_free.pending(), Ok(rx_free.len()));
                prop_assert_eq!(client.tx_active.in_flight(), Ok(tx_active.len()));
            }
        }

        /// A hostile client writes any value to any word of the four queues between the
        /// driver's steps: the driver never panics, every descriptor it gets names a buffer
        /// it can copy (the others are errors), it never takes more than a queue holds in
        /// one drain, and its own enqueues fail only as full or corrupt.
        #[test]
        fn a_hostile_client_cannot_break_the_driver(
            steps in proptest::collection::vec((proptest::collection::vec(poke(), 0..4), 0u8..4), 0..64),
        ) {
            let (rx_g, tx_g) = (geometry(8, RX_SIZE), geometry(8, TX_SIZE));
            let mut mem = lines(size_of::<NetQueues<N>>());
            let (mut rx_mem, mut tx_mem) = (data(rx_g), data(tx_g));
            let rx_data = DataRegion::new(rx_mem.as_mut_bytes(), rx_g).unwrap();
            let tx_data = DataRegion::new(tx_mem.as_mut_bytes(), tx_g).unwrap();
            let net = NetQueues::<N>::init(mem.as_mut_bytes(), rx_g, tx_g).unwrap();
            let queues = [net.rx_free, net.rx_active, net.tx_free, net.tx_active].map(Queue::shared);
            let mut driver = net.driver();
            let (mut rx_owned, mut tx_owned) = (Ledger::<1>::new(rx_g, false).unwrap(), Ledger::<1>::new(tx_g, false).unwrap());
            for (pokes, step) in steps {
                for (q, word, value) in pokes {
                    write(queues[q], word, value);
                }
                match step {
                    0 => drain(&mut driver.rx_free, &mut driver.rx_active, &rx_data, &mut rx_owned)?,
                    1 => drain(&mut driver.tx_active, &mut driver.tx_free, &tx_data, &mut tx_owned)?,
                    2 => {
                        let _ = (driver.rx_active.signal_needed(), driver.tx_free.signal_needed());
                        for c in [&driver.rx_free, &driver.tx_active] {
                            prop_assert!(matches!(c.ready_to_wait(), Ok(_) | Err(Corrupt::Index)));
                        }
                    }
                    _ => {
                        for p in [&driver.rx_active, &driver.tx_free] {
                            prop_assert!(p.in_flight().is_ok_and(|n| n <= N) || p.in_flight() == Err(Corrupt::Index));
                        }
                    }
                }
            }
            // Whatever the client did, the driver never owns more than the regions hold.
            prop_assert!(rx_owned.owned() <= rx_g.buffers() && tx_owned.owned() <= tx_g.buffers());
        }

        /// Window reads and writes at any position and length match a plain byte array.
        #[test]
        fn windows_copy_like_byte_arrays(ops in proptest::collection::vec((0usize..48, proptest::collection::vec(any::<u8>(), 0..48), any::<bool>()), 0..64)) {
            let g = geometry(3, 40);
            let mut mem = data(g);
            let region = DataRegion::new(mem.as_mut_bytes(), g).unwrap();
            let (w, others) = (region.buffer(1).unwrap(), [region.buffer(0).unwrap(), region.buffer(2).unwrap()]);
            let mut model = [0u8; 40];
            for (at, bytes, is_write) in ops {
                let fits = at + bytes.len() <= 40;
                if is_write {
                    let r = w.write(at, &bytes);
                    prop_assert_eq!(r.is_ok(), fits);
                    if fits {
                        model[at..at + bytes.len()].copy_from_slice(&bytes);
                    }
                } else {
                    let mut out = vec![0u8; bytes.len()];
                    let r = w.read(at, &mut out);
                    prop_assert_eq!(r.is_ok(), fits);
                    if fits {
                        prop_assert_eq!(&out[..], &model[at..at + bytes.len()]);
                    }
                }
            }
            let mut all = [0u8; 40];
            w.read(0, &mut all).unwrap();
            prop_assert_eq!(all, model);
            for other in others {
                other.read(0, &mut all).unwrap();
                prop_assert_eq!(all, [0u8; 40], "a neighbour changed");
            }
        }
    }
}
