//! The device-independent half of every block driver: it takes the client's requests from
//! the block queues, checks each against the data region and the disk, hands it to a
//! [`Disk`], and returns the answer.

/// What a request asks of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `count` blocks starting at `block` into the buffer.
    Read,
    /// Write `count` blocks from the buffer starting at `block`.
    Write,
    /// Make every write the disk completed before this request durable (a no-op on a
    /// write-through disk).
    Flush,
}

/// A disk controller, as the driver loop drives it. Blocks are 512 bytes. A tag is the
/// driver's name for a request; the disk hands it back when the request completes.
///
/// The loop gives the disk one request at a time: it calls [`Disk::submit`] only when
/// [`Disk::idle`] is true, and waits for that request's completion before the next. So a
/// flush always follows the completion of every earlier write.
pub trait Disk {
    /// Whether the controller sees memory coherently with the CPU's caches. One that does
    /// not gets every buffer cleaned from the caches before it reads it and invalidated
    /// around the time it writes it.
    const COHERENT: bool;

    /// The disk's size in 512-byte blocks.
    fn blocks(&self) -> u64;
    /// Whether the disk can take a request now (none is in flight).
    fn idle(&self) -> bool;
    /// Starts a request. For [`Op::Read`] and [`Op::Write`], `paddr` is the physical address
    /// of `count * 512` bytes of the client's buffer (at least 4-byte aligned, contiguous),
    /// `count` is 1 to [`crate::BLK_MAX_BLOCKS`] and `block + count` is at most
    /// [`Disk::blocks`]; for [`Op::Flush`] `block`, `count` and `paddr` are 0. `false` if it
    /// cannot start it (the request then fails).
    fn submit(&mut self, tag: u64, op: Op, block: u64, count: u32, paddr: u64) -> bool;
    /// Clears the controller's interrupt condition and moves the request in flight on (a
    /// controller that needs several commands for one request issues the next here).
    fn interrupt(&mut self);
    /// The request that completed, if one did since the last call: its tag and whether it
    /// succeeded.
    fn take(&mut self) -> Option<(u64, bool)>;
}
