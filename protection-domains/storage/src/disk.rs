//! The store's disk: [`atoll_kv::BlockDevice`] over the block driver's queues, used
//! synchronously.
//!
//! Each call starts one request, notifies the driver (on the replica's other core) if it
//! asked, and spins on the answer: the store has its core to itself, and a request takes
//! microseconds to milliseconds. A driver that does not answer within [`PATIENCE_MS`] fails
//! the call (the store then refuses changes until it is opened again); the request's
//! buffer stays the driver's until it does answer.

use atoll_channels::block::{
    BLOCK_MAX_BLOCKS, BLOCK_SIZE, BlockClient, BlockOp, BlockStatus, ClientError,
};
use atoll_kv::{BlockDevice, IoError};
use atoll_microkit::timer::{counter, counter_frequency};
use atoll_microkit::{Channel, debug_println};

/// How long one request may take before the call fails, in milliseconds.
pub const PATIENCE_MS: u64 = 5_000;

/// Bytes of the largest request.
const MAX_BYTES: usize = (BLOCK_MAX_BLOCKS * BLOCK_SIZE) as usize;

/// Why a request failed.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// The client side refused it, or the driver's answer broke the protocol.
    Refused(ClientError),
    /// The driver answered it with this status.
    Answered(BlockStatus),
    /// No answer within [`PATIENCE_MS`].
    NoAnswer,
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Refused(e) => write!(f, "{e:?}"),
            Failure::Answered(status) => write!(f, "the driver answered {status:?}"),
            Failure::NoAnswer => write!(f, "no answer within {PATIENCE_MS} ms"),
        }
    }
}

/// What the disk did.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskCounters {
    /// Requests made.
    pub requests: u64,
    /// Requests that failed (the device's error, a broken answer, or no answer in time).
    pub failed: u64,
}

/// The disk behind the block driver.
pub struct Disk<'a> {
    client: BlockClient<'a>,
    driver: Channel,
    blocks: u64,
    counters: DiskCounters,
}

impl<'a> Disk<'a> {
    /// A disk of `blocks` blocks served by the driver on `driver` through `client`.
    pub fn new(client: BlockClient<'a>, driver: Channel, blocks: u64) -> Self {
        Self {
            client,
            driver,
            blocks,
            counters: DiskCounters::default(),
        }
    }

    /// The disk's size in blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Makes one request and waits for its answer. Failures are logged when their count
    /// reaches a power of two, so a failing disk cannot flood the log.
    fn request(
        &mut self,
        op: BlockOp,
        block: u64,
        count: u32,
        write: Option<&[u8]>,
        read: &mut [u8],
    ) -> Result<(), IoError> {
        self.counters.requests += 1;
        let result = self.wait(op, block, count, write, read);
        if let Err(why) = result {
            self.counters.failed += 1;
            if self.counters.failed.is_power_of_two() {
                debug_println!(
                    "storage: the disk failed a {op:?} of {count} blocks at {block}: {why} ({} failures so far)",
                    self.counters.failed
                );
            }
        }
        result.map_err(|_| IoError)
    }

    fn wait(
        &mut self,
        op: BlockOp,
        block: u64,
        count: u32,
        write: Option<&[u8]>,
        read: &mut [u8],
    ) -> Result<(), Failure> {
        let ticket = self
            .client
            .start(op, block, count, write)
            .map_err(Failure::Refused)?;
        if self.client.signal_needed() {
            self.driver.notify();
        }
        let deadline = counter().saturating_add(counter_frequency() * PATIENCE_MS / 1000);
        loop {
            match self.client.poll(ticket, read) {
                Ok(Some(BlockStatus::Ok)) => return Ok(()),
                Ok(Some(status)) => return Err(Failure::Answered(status)),
                Err(e) => return Err(Failure::Refused(e)),
                Ok(None) if counter() > deadline => return Err(Failure::NoAnswer),
                Ok(None) => core::hint::spin_loop(),
            }
        }
    }

    /// Moves `bytes` (whole blocks) from or to the disk from `block` on, in requests of at
    /// most [`BLOCK_MAX_BLOCKS`] blocks.
    fn chunks(
        &mut self,
        block: u64,
        len: usize,
        mut each: impl FnMut(&mut Self, u64, core::ops::Range<usize>) -> Result<(), IoError>,
    ) -> Result<(), IoError> {
        let mut at = 0;
        let mut n = block;
        while at < len {
            let end = (at + MAX_BYTES).min(len);
            each(self, n, at..end)?;
            n = n
                .checked_add(((end - at) / BLOCK_SIZE as usize) as u64)
                .ok_or(IoError)?;
            at = end;
        }
        Ok(())
    }
}

impl BlockDevice for Disk<'_> {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut atoll_kv::Block) -> Result<(), IoError> {
        self.request(BlockOp::Read, block, 1, None, buf)
    }

    fn write(&mut self, block: u64, buf: &atoll_kv::Block) -> Result<(), IoError> {
        self.request(BlockOp::Write, block, 1, Some(buf), &mut [])
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.request(BlockOp::Flush, 0, 0, None, &mut [])
    }

    fn read_blocks(&mut self, block: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let len = buf.len() - buf.len() % BLOCK_SIZE as usize;
        self.chunks(block, len, |disk, n, range| {
            let count = (range.len() / BLOCK_SIZE as usize) as u32;
            let into = buf.get_mut(range).ok_or(IoError)?;
            disk.request(BlockOp::Read, n, count, None, into)
        })
    }

    fn write_blocks(&mut self, block: u64, buf: &[u8]) -> Result<(), IoError> {
        let len = buf.len() - buf.len() % BLOCK_SIZE as usize;
        self.chunks(block, len, |disk, n, range| {
            let count = (range.len() / BLOCK_SIZE as usize) as u32;
            let from = buf.get(range).ok_or(IoError)?;
            disk.request(BlockOp::Write, n, count, Some(from), &mut [])
        })
    }

    fn zero_blocks(&mut self, block: u64, count: u64) -> Result<(), IoError> {
        let zeros = alloc::vec![0u8; MAX_BYTES];
        let len = usize::try_from(count.checked_mul(u64::from(BLOCK_SIZE)).ok_or(IoError)?)
            .map_err(|_| IoError)?;
        self.chunks(block, len, |disk, n, range| {
            let count = (range.len() / BLOCK_SIZE as usize) as u32;
            let from = zeros.get(..range.len()).ok_or(IoError)?;
            disk.request(BlockOp::Write, n, count, Some(from), &mut [])
        })
    }
}
