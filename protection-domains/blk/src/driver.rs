//! The device-independent half of every block driver: it takes the client's requests from
//! the block queues, checks each against the data region and the disk, hands it to a
//! [`Disk`], and returns the answer.
//!
//! Nothing the client writes is trusted: a descriptor that names no buffer, or one the
//! driver holds already (a [`Ledger`]), is dropped and counted, never followed; a request in
//! a buffer of the driver's is decoded from one copy of its header
//! ([`atoll_channels::block::decode_request`]) and checked against the disk's size, and a bad
//! one is answered with [`BlockStatus::BadRequest`] without the disk seeing it. Nothing the
//! disk hands back is trusted either: a completion whose tag is not the request in flight is
//! counted and ignored, and a disk that goes idle without completing its request fails it.
//!
//! Requests go to the disk one at a time, in queue order, each only after the previous one
//! completed: a flush is answered only after every write before it.

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

use atoll_channels::block::{
    BLOCK_QUEUE_SLOTS, BlockDriverSide, BlockOp, BlockStatus, Request, answer, decode_request,
};
use atoll_channels::queue::{Corrupt, DataRegion, Desc, Ledger};
pub use atoll_pd_net::driver::Region;

use crate::geometry;

/// The ledger's words: one bit per buffer.
const LEDGER_WORDS: usize = (crate::BLOCK_BUFFERS as usize).div_ceil(64);
const _: () = assert!(crate::BLOCK_BUFFERS as usize <= LEDGER_WORDS * 64);

/// Completions taken from the disk per round: one is due (a request at a time); the rest
/// bound what a broken disk that never stops reporting completions can cost.
const TAKES_PER_ROUND: usize = 4;

/// No disk: the type of a driver that answers every request with [`BlockStatus::NoDisk`]
/// (it has no values, so a `Driver<NoDisk>` never holds one).
pub enum NoDisk {}

impl Disk for NoDisk {
    const COHERENT: bool = true;
    fn blocks(&self) -> u64 {
        match *self {}
    }
    fn idle(&self) -> bool {
        match *self {}
    }
    fn submit(&mut self, _tag: u64, _op: Op, _block: u64, _count: u32, _paddr: u64) -> bool {
        match *self {}
    }
    fn interrupt(&mut self) {
        match *self {}
    }
    fn take(&mut self) -> Option<(u64, bool)> {
        match *self {}
    }
}

/// What the driver counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered (whatever the status).
    pub requests: u64,
    /// Requests answered with [`BlockStatus::BadRequest`].
    pub bad: u64,
    /// Descriptors from the client dropped unanswered: no buffer's, one the driver held
    /// already, or a request queue whose indices the client broke.
    pub dropped: u64,
    /// Requests the disk failed (answered with [`BlockStatus::DeviceError`]).
    pub device_errors: u64,
    /// Completions the disk reported for no request in flight, and requests it dropped.
    pub disk_faults: u64,
}

/// The request on the disk.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    request: Request,
    tag: u64,
}

/// A driver: a disk (or none) and the client's queues.
pub struct Driver<'a, D: Disk> {
    /// The disk; `None` answers every well-formed request with [`BlockStatus::NoDisk`].
    pub disk: Option<D>,
    queues: BlockDriverSide<'a, BLOCK_QUEUE_SLOTS>,
    /// The data region, through its atomic copies (headers).
    data: DataRegion<'a>,
    /// The same region's addresses (the disk's DMA, cache maintenance).
    region: Region,
    /// The buffers the driver holds (from the client, not yet answered).
    held: Ledger<LEDGER_WORDS>,
    in_flight: Option<InFlight>,
    next_tag: u64,
    /// What happened so far.
    pub counters: Counters,
}

impl<'a, D: Disk> Driver<'a, D> {
    /// A driver of `disk` serving the client on `queues`, with the data region `data` (of
    /// [`geometry`]) at `region`.
    pub fn new(
        disk: Option<D>,
        queues: BlockDriverSide<'a, BLOCK_QUEUE_SLOTS>,
        data: DataRegion<'a>,
        region: Region,
    ) -> Self {
        let held = match Ledger::new(geometry(), false) {
            Ok(ledger) => ledger,
            // The geometry's buffers fit the ledger's words (checked at compile time).
            Err(_) => unreachable!("the ledger holds every buffer"),
        };
        Self {
            disk,
            queues,
            data,
            region,
            held,
            in_flight: None,
            next_tag: 1,
            counters: Counters::default(),
        }
    }

    /// Serves after a notification: lets the disk handle its interrupt if `irq` (the
    /// device's channel fired), then moves everything that can move until nothing does; the
    /// caller then waits. Returns whether the client asked to be notified of the answers.
    pub fn notified(&mut self, irq: bool) -> bool {
        if irq && let Some(disk) = self.disk.as_mut() {
            disk.interrupt();
        }
        self.serve()
    }

    /// Moves everything that can move (see [`Driver::notified`]).
    pub fn serve(&mut self) -> bool {
        let mut notify = false;
        loop {
            let answered_before = self.counters.requests;
            let moved = self.complete() | self.start();
            if self.counters.requests != answered_before {
                notify |= self.queues.responses.signal_needed();
            }
            if moved {
                continue;
            }
            // Waiting on the disk (a request in flight, or a disk still busy with one it
            // reported early): its interrupt comes. Otherwise ask the client for a
            // notification and look once more (a request enqueued in between is found now).
            // With no room for an answer (only a client that does not take its answers), take
            // no request, but ask to hear of the next one.
            let quiet = self.in_flight.is_some()
                || !self.disk_idle()
                || if self.room_for_answer() {
                    self.queues.requests.ready_to_wait().unwrap_or(true)
                } else {
                    self.queues.requests.request_signal();
                    true
                };
            if quiet {
                return notify;
            }
        }
    }

    /// Whether the response queue has room for one more answer.
    fn room_for_answer(&self) -> bool {
        self.queues
            .responses
            .in_flight()
            .is_ok_and(|n| n < BLOCK_QUEUE_SLOTS)
    }

    /// The disk's completions: the request in flight's answered, any other counted and
    /// ignored (a broken disk cannot make the driver answer a request twice or early).
    fn complete(&mut self) -> bool {
        let Some(disk) = self.disk.as_mut() else {
            return false;
        };
        let mut drained = false;
        for _ in 0..TAKES_PER_ROUND {
            let Some((tag, ok)) = disk.take() else {
                drained = true;
                break;
            };
            match self.in_flight {
                Some(flight) if flight.tag == tag => {
                    self.in_flight = None;
                    self.finish(flight.request, ok);
                    return true;
                }
                _ => self.counters.disk_faults += 1,
            }
        }
        if let Some(flight) = self.in_flight
            && drained
            && disk.idle()
        {
            // Idle, yet the request never completed: the disk lost it.
            self.counters.disk_faults += 1;
            self.in_flight = None;
            self.finish(flight.request, false);
            return true;
        }
        false
    }

    /// Whether the disk (if any) can take a request.
    fn disk_idle(&self) -> bool {
        self.disk.as_ref().is_none_or(Disk::idle)
    }

    /// Answers `request`, which the disk completed (`ok`) or failed.
    fn finish(&mut self, request: Request, ok: bool) {
        let read = request.op == BlockOp::Read;
        if read && !D::COHERENT {
            // Lines the CPU fetched (speculatively) while the disk wrote are stale.
            let vaddr = self.region.vaddr + request.data_offset() as usize;
            crate::cache::clean_invalidate(vaddr, request.data_bytes() as usize);
        }
        if ok {
            let blocks = if read { request.count } else { 0 };
            self.reply(request.offset, BlockStatus::Ok, blocks);
        } else {
            self.counters.device_errors += 1;
            self.reply(request.offset, BlockStatus::DeviceError, 0);
        }
    }

    /// Takes requests while the disk is idle: answers the bad ones and those of a missing
    /// disk at once, and gives the first good one to the disk.
    fn start(&mut self) -> bool {
        let mut moved = false;
        // At most a queue's worth each round: a client cannot keep the driver here.
        for _ in 0..BLOCK_QUEUE_SLOTS {
            if self.in_flight.is_some() || !self.disk_idle() || !self.room_for_answer() {
                break;
            }
            let desc = match self.queues.requests.dequeue() {
                Ok(None) => break,
                Ok(Some(desc)) => desc,
                // A buffer's, with a length beyond it: the buffer is handed over, the
                // request malformed.
                Err(Corrupt::Length(desc)) => Desc {
                    len: u32::MAX,
                    ..desc
                },
                Err(Corrupt::Offset(_)) => {
                    moved = true;
                    self.counters.dropped += 1;
                    continue;
                }
                Err(Corrupt::Index) => {
                    self.counters.dropped += 1;
                    break;
                }
            };
            moved = true;
            if self.held.receive(&desc).is_err() {
                self.counters.dropped += 1;
                continue;
            }
            let request = match decode_request(&self.data, &desc) {
                Ok(request) => request,
                Err(_) => {
                    self.bad(desc.offset);
                    continue;
                }
            };
            self.submit(request);
        }
        moved
    }

    /// Gives `request` to the disk, or answers it at once.
    fn submit(&mut self, request: Request) {
        let Some(disk) = self.disk.as_mut() else {
            self.reply(request.offset, BlockStatus::NoDisk, 0);
            return;
        };
        if !request.within(disk.blocks()) {
            self.bad(request.offset);
            return;
        }
        let vaddr = self.region.vaddr + request.data_offset() as usize;
        let bytes = request.data_bytes() as usize;
        let (op, paddr) = match request.op {
            BlockOp::Read => (Op::Read, self.region.paddr + request.data_offset()),
            BlockOp::Write => (Op::Write, self.region.paddr + request.data_offset()),
            BlockOp::Flush => (Op::Flush, 0),
        };
        if !D::COHERENT {
            match op {
                // The disk reads memory: the CPU's writes must be there.
                Op::Write => crate::cache::clean(vaddr, bytes),
                // No dirty line may be written back over what the disk writes.
                Op::Read => crate::cache::clean_invalidate(vaddr, bytes),
                Op::Flush => {}
            }
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        if disk.submit(tag, op, request.block, request.count, paddr) {
            self.in_flight = Some(InFlight { request, tag });
        } else {
            self.counters.device_errors += 1;
            self.reply(request.offset, BlockStatus::DeviceError, 0);
        }
    }

    /// Answers the request in the buffer at `offset` as malformed.
    fn bad(&mut self, offset: u64) {
        self.counters.bad += 1;
        self.reply(offset, BlockStatus::BadRequest, 0);
    }

    /// Writes `status` into the buffer at `offset` (one the driver holds) and hands it back.
    fn reply(&mut self, offset: u64, status: BlockStatus, data_blocks: u32) {
        self.counters.requests += 1;
        let Ok(desc) = answer(&self.data, offset, status, data_blocks) else {
            return;
        };
        // The buffer is the client's again whether or not the answer fits: a response queue
        // with no room (checked before the request was taken) is one the client broke.
        let _ = self.held.give(&desc);
        if self.queues.responses.enqueue(desc).is_err() {
            self.counters.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    use core::sync::atomic::Ordering;

    use atoll_channels::block::{
        BLOCK_BUF_SIZE, BLOCK_QUEUES_BYTES, BlockClient, BlockCommand, BlockQueues, ClientError,
        DiskInfo,
    };
    use atoll_channels::queue::SharedQueue;
    use proptest::prelude::*;
    use zerocopy::IntoBytes;

    use super::*;

    const N: usize = BLOCK_QUEUE_SLOTS;
    const REGION: Region = Region {
        vaddr: 0x10_0000,
        paddr: 0x8000_0000,
    };
    /// Blocks on the fake disk.
    const BLOCKS: u64 = 256;

    /// A disk that keeps its blocks in memory, takes requests as the contract says (and
    /// fails the test if the driver breaks it), and completes them when the test says.
    struct FakeDisk {
        data: DataRegion<'static>,
        blocks: Vec<[u8; 512]>,
        /// The request it holds: tag, op, block, count, paddr.
        pending: Option<(u64, Op, u64, u32, u64)>,
        /// Every request it was given, in order.
        log: Vec<(Op, u64, u32)>,
        /// Completions it reports, whatever it holds (a hostile disk's).
        extra: VecDeque<(u64, bool)>,
        /// Whether it accepts requests.
        accepts: bool,
        /// Whether requests fail.
        fails: bool,
        /// Whether it forgets what it holds when asked for completions.
        forgets: bool,
        done: Option<(u64, bool)>,
    }

    impl FakeDisk {
        fn new(data: DataRegion<'static>) -> Self {
            Self {
                data,
                blocks: vec![[0; 512]; BLOCKS as usize],
                pending: None,
                log: Vec::new(),
                extra: VecDeque::new(),
                accepts: true,
                fails: false,
                forgets: false,
                done: None,
            }
        }

        /// Completes the request it holds, moving its data.
        fn complete(&mut self) {
            let Some((tag, op, block, count, paddr)) = self.pending.take() else {
                return;
            };
            if !self.fails && op != Op::Flush {
                let offset = paddr - REGION.paddr;
                let index = (offset / u64::from(BLOCK_BUF_SIZE)) as u32;
                let at = (offset % u64::from(BLOCK_BUF_SIZE)) as usize;
                let window = self.data.buffer(index).expect("a buffer of the region");
                for i in 0..count as usize {
                    let disk = &mut self.blocks[block as usize + i];
                    match op {
                        Op::Read => window.write(at + i * 512, disk).unwrap(),
                        Op::Write => window.read(at + i * 512, disk).unwrap(),
                        Op::Flush => {}
                    }
                }
            }
            self.done = Some((tag, !self.fails));
        }
    }

    impl Disk for FakeDisk {
        const COHERENT: bool = false;
        fn blocks(&self) -> u64 {
            BLOCKS
        }
        fn idle(&self) -> bool {
            self.pending.is_none() && self.done.is_none()
        }
        fn submit(&mut self, tag: u64, op: Op, block: u64, count: u32, paddr: u64) -> bool {
            assert!(self.idle(), "a request while one is in flight");
            match op {
                Op::Flush => assert_eq!((block, count, paddr), (0, 0, 0)),
                Op::Read | Op::Write => {
                    assert!((1..=crate::BLK_MAX_BLOCKS).contains(&count));
                    assert!(block + u64::from(count) <= BLOCKS);
                    let offset = paddr - REGION.paddr;
                    let at = offset % u64::from(BLOCK_BUF_SIZE);
                    assert_eq!(at, 64, "the data after the header");
                    assert!(offset / u64::from(BLOCK_BUF_SIZE) < 8);
                }
            }
            if !self.accepts {
                return false;
            }
            self.log.push((op, block, count));
            self.pending = Some((tag, op, block, count, paddr));
            true
        }
        fn interrupt(&mut self) {}
        fn take(&mut self) -> Option<(u64, bool)> {
            if let Some(extra) = self.extra.pop_front() {
                return Some(extra);
            }
            if self.forgets {
                self.pending = None;
            }
            self.done.take()
        }
    }

    /// A cache line, so the queues have the alignment a shared page has.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u8; 64]);

    /// Shared memory for one test, leaked so that both sides hold `'static` views.
    fn leak_bytes(lines: usize) -> (*mut u8, usize) {
        let memory = Box::leak(vec![Line([0; 64]); lines].into_boxed_slice());
        (memory.as_mut_ptr().cast::<u8>(), lines * 64)
    }

    struct Setup {
        driver: Driver<'static, FakeDisk>,
        client: BlockClient<'static>,
        requests: &'static SharedQueue<N>,
        responses: &'static SharedQueue<N>,
        data: DataRegion<'static>,
    }

    fn setup(disk: bool) -> Setup {
        let (queues, queues_len) = leak_bytes(BLOCK_QUEUES_BYTES.div_ceil(64));
        let (data, data_len) = leak_bytes((geometry().region_bytes() as usize).div_ceil(64));
        // SAFETY: leaked memory, used only through the queue and data-region types.
        let info = DiskInfo {
            blocks: if disk { BLOCKS } else { 0 },
            ..DiskInfo::default()
        };
        // SAFETY: as above.
        let pair =
            unsafe { BlockQueues::<N>::init_raw(queues, queues_len, geometry(), &info) }.unwrap();
        // SAFETY: as above.
        let client_pair =
            unsafe { BlockQueues::<N>::attach_raw(queues, queues_len, geometry()) }.unwrap();
        // SAFETY: as above.
        let region = || unsafe { DataRegion::from_raw(data, data_len, geometry()) }.unwrap();
        let fake = disk.then(|| FakeDisk::new(region()));
        Setup {
            driver: Driver::new(fake, pair.driver(), region(), REGION),
            client: BlockClient::new(client_pair.client(), region()).unwrap(),
            requests: pair.requests.shared(),
            responses: pair.responses.shared(),
            data: region(),
        }
    }

    impl Setup {
        fn disk(&mut self) -> &mut FakeDisk {
            self.driver.disk.as_mut().unwrap()
        }

        /// Serves until the disk has nothing left, completing each request.
        fn run(&mut self) {
            self.driver.notified(false);
            while self.disk().pending.is_some() {
                self.disk().complete();
                self.driver.notified(true);
            }
        }
    }

    #[test]
    fn a_write_a_flush_and_a_read_reach_the_disk_in_order() {
        let mut s = setup(true);
        let data: Vec<u8> = (0..3 * 512).map(|i| (i % 251) as u8).collect();
        let w = s.client.start(BlockOp::Write, 7, 3, Some(&data)).unwrap();
        let f = s.client.start(BlockOp::Flush, 0, 0, None).unwrap();
        let r = s.client.start(BlockOp::Read, 8, 2, None).unwrap();
        s.driver.notified(false);
        assert_eq!(s.disk().log, [(Op::Write, 7, 3)], "one at a time");
        let mut back = vec![0u8; 1024];
        assert_eq!(s.client.poll(w, &mut back), Ok(None));
        s.run();
        assert_eq!(
            s.disk().log,
            [(Op::Write, 7, 3), (Op::Flush, 0, 0), (Op::Read, 8, 2)]
        );
        assert_eq!(s.client.poll(w, &mut back), Ok(Some(BlockStatus::Ok)));
        assert_eq!(s.client.poll(f, &mut back), Ok(Some(BlockStatus::Ok)));
        assert_eq!(s.client.poll(r, &mut back), Ok(Some(BlockStatus::Ok)));
        assert_eq!(back, &data[512..]);
        assert_eq!(s.driver.counters.requests, 3);
        assert_eq!(s.driver.held.owned(), 0);
    }

    #[test]
    fn the_driver_notifies_only_when_the_client_asks() {
        let mut s = setup(true);
        let t = s.client.start(BlockOp::Read, 0, 1, None).unwrap();
        s.driver.notified(false);
        s.disk().complete();
        assert!(!s.driver.notified(true), "not asked");
        assert!(s.client.poll(t, &mut [0; 512]).is_ok());
        let t = s.client.start(BlockOp::Read, 0, 1, None).unwrap();
        assert!(s.client.ready_to_wait(), "nothing answered yet");
        s.driver.notified(false);
        s.disk().complete();
        assert!(s.driver.notified(true), "asked");
        assert_eq!(s.client.poll(t, &mut [0; 512]), Ok(Some(BlockStatus::Ok)));
    }

    #[test]
    fn bad_requests_are_answered_without_the_disk() {
        let mut s = setup(true);
        let beyond = s.client.start(BlockOp::Read, BLOCKS - 1, 2, None).unwrap();
        // A header the client breaks after starting: op 9.
        let broken = s
            .client
            .start(BlockOp::Write, 0, 1, Some(&[0; 512]))
            .unwrap();
        s.data
            .buffer(1)
            .unwrap()
            .write(0, &9u32.to_ne_bytes())
            .unwrap();
        s.run();
        let mut buf = [0u8; 1024];
        assert_eq!(
            s.client.poll(beyond, &mut buf),
            Ok(Some(BlockStatus::BadRequest))
        );
        assert_eq!(
            s.client.poll(broken, &mut buf),
            Ok(Some(BlockStatus::BadRequest))
        );
        assert!(s.disk().log.is_empty());
        assert_eq!(s.driver.counters.bad, 2);
    }

    #[test]
    fn foreign_descriptors_are_dropped_unanswered() {
        let mut s = setup(true);
        let (mut client, _) = (
            // SAFETY: the queues `setup` made, used through the queue types only.
            unsafe {
                BlockQueues::<N>::attach_raw(
                    (s.requests as *const SharedQueue<N>).cast_mut().cast(),
                    BLOCK_QUEUES_BYTES,
                    geometry(),
                )
            }
            .unwrap()
            .client(),
            (),
        );
        let command = BlockCommand::new(BlockOp::Read, 0, 1, 5);
        s.data
            .buffer(0)
            .unwrap()
            .write(0, command.as_bytes())
            .unwrap();
        client.requests.enqueue(Desc::new(0, 64 + 512)).unwrap();
        client.requests.enqueue(Desc::new(0, 64 + 512)).unwrap();
        // Foreign offsets and lengths are written straight into the slots.
        let slot = &s.requests.slots[2];
        slot.offset.store(3, Ordering::Relaxed);
        let slot = &s.requests.slots[3];
        slot.offset
            .store(u64::from(BLOCK_BUF_SIZE), Ordering::Relaxed);
        slot.len.store(BLOCK_BUF_SIZE + 1, Ordering::Relaxed);
        s.requests.producer.value.store(4, Ordering::Relaxed);
        s.run();
        // The same buffer twice: the driver answers the first before it takes the second,
        // so the second is a new request in the same buffer (the client's own confusion).
        assert_eq!(s.disk().log, [(Op::Read, 0, 1), (Op::Read, 0, 1)]);
        assert_eq!(s.driver.counters.dropped, 1, "the foreign one");
        assert_eq!(
            s.driver.counters.bad, 1,
            "the one too long, in a buffer of the region"
        );
        assert_eq!(client.responses.dequeue(), Ok(Some(Desc::new(0, 64 + 512))));
        assert_eq!(client.responses.dequeue(), Ok(Some(Desc::new(0, 64 + 512))));
        let long = client.responses.dequeue().unwrap().unwrap();
        assert_eq!(long, Desc::new(u64::from(BLOCK_BUF_SIZE), 64));
        // A producer index beyond the queue: nothing taken, and the driver returns.
        s.requests.producer.value.store(1000, Ordering::Relaxed);
        s.driver.notified(false);
        assert_eq!(s.requests.consumer.value.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn with_no_disk_every_request_is_answered_no_disk() {
        let mut s = setup(false);
        let t = s
            .client
            .start(BlockOp::Write, 0, 1, Some(&[1; 512]))
            .unwrap();
        let f = s.client.start(BlockOp::Flush, 0, 0, None).unwrap();
        s.driver.notified(true);
        assert_eq!(s.client.poll(t, &mut []), Ok(Some(BlockStatus::NoDisk)));
        assert_eq!(s.client.poll(f, &mut []), Ok(Some(BlockStatus::NoDisk)));
        assert_eq!(s.client.poll(f, &mut []), Err(ClientError::UnknownTicket));
    }

    #[test]
    fn a_hostile_disk_cannot_answer_a_request_it_was_not_given() {
        let mut s = setup(true);
        let t = s.client.start(BlockOp::Read, 1, 1, None).unwrap();
        s.driver.notified(false);
        let tag = s.disk().pending.unwrap().0;
        s.disk()
            .extra
            .extend([(tag + 1, true), (0, true), (u64::MAX, false)]);
        s.driver.notified(true);
        assert_eq!(s.driver.counters.disk_faults, 3);
        assert_eq!(s.client.poll(t, &mut [0; 512]), Ok(None), "still in flight");
        s.disk().complete();
        s.disk().extra.push_back((tag, true));
        s.driver.notified(true);
        assert_eq!(s.client.poll(t, &mut [0; 512]), Ok(Some(BlockStatus::Ok)));
        // Its own completion, reported again, answers nothing.
        s.driver.notified(true);
        assert_eq!(s.driver.counters.requests, 1);
        assert_eq!(s.driver.counters.disk_faults, 4);
    }

    #[test]
    fn a_disk_that_fails_refuses_or_loses_a_request_answers_device_error() {
        let mut s = setup(true);
        let mut buf = [0u8; 512];
        s.disk().fails = true;
        let t = s.client.start(BlockOp::Read, 1, 1, None).unwrap();
        s.run();
        assert_eq!(
            s.client.poll(t, &mut buf),
            Ok(Some(BlockStatus::DeviceError))
        );
        s.disk().fails = false;
        s.disk().accepts = false;
        let t = s.client.start(BlockOp::Write, 1, 1, Some(&buf)).unwrap();
        s.run();
        assert_eq!(
            s.client.poll(t, &mut buf),
            Ok(Some(BlockStatus::DeviceError))
        );
        s.disk().accepts = true;
        s.disk().forgets = true;
        let t = s.client.start(BlockOp::Flush, 0, 0, None).unwrap();
        s.driver.notified(false);
        s.driver.notified(true);
        assert_eq!(
            s.client.poll(t, &mut buf),
            Ok(Some(BlockStatus::DeviceError))
        );
        assert_eq!(s.driver.counters.device_errors, 3);
        assert_eq!(s.driver.counters.disk_faults, 1);
    }

    /// What a hostile client (or disk) does between the driver's rounds.
    #[derive(Clone, Debug)]
    enum Step {
        /// Writes a value to a word of the request queue (0 producer index, 1 the response
        /// queue's consumer index, 2.. a slot's word).
        Queue(usize, u64),
        /// Writes a word of a buffer's header.
        Header(u32, usize, u64),
        /// Starts a request through the client.
        Start(u8, u64, u32),
        /// The disk completes what it holds.
        Complete,
        /// The disk reports a completion of any tag.
        Stray(u64),
        /// The driver serves (after an interrupt or not).
        Serve(bool),
        /// The client takes its answers.
        Poll,
    }

    fn step() -> impl Strategy<Value = Step> {
        let value = prop_oneof![
            0..20u64,
            (0..9u64).prop_map(|k| k * u64::from(BLOCK_BUF_SIZE)),
            any::<u64>()
        ];
        prop_oneof![
            (0..(2 + 3 * N), value.clone()).prop_map(|(w, v)| Step::Queue(w, v)),
            (0..8u32, 0..8usize, value).prop_map(|(b, w, v)| Step::Header(b, w, v)),
            (1..4u8, 0..300u64, 0..70u32).prop_map(|(o, b, c)| Step::Start(o, b, c)),
            Just(Step::Complete),
            (0..8u64).prop_map(Step::Stray),
            any::<bool>().prop_map(Step::Serve),
            Just(Step::Poll),
        ]
    }

    proptest! {
        /// A client that writes any word it can between the driver's rounds, and a disk
        /// that reports stray completions: the driver never panics, never breaks the disk's
        /// contract (the fake disk checks every request), holds at most the one buffer on
        /// the disk between rounds, and answers nothing twice.
        #[test]
        fn a_hostile_client_and_disk_cannot_break_the_driver(steps in proptest::collection::vec(step(), 0..120)) {
            let mut s = setup(true);
            let mut tickets = Vec::new();
            let mut buf = vec![0u8; 64 * 512];
            let r = Ordering::Relaxed;
            for step in steps {
                match step {
                    Step::Queue(0, v) => s.requests.producer.value.store(v as u32, r),
                    Step::Queue(1, v) => s.responses.consumer.value.store(v as u32, r),
                    Step::Queue(w, v) => {
                        let slot = &s.requests.slots[(w - 2) / 3];
                        match (w - 2) % 3 {
                            0 => slot.offset.store(v, r),
                            1 => slot.len.store(v as u32, r),
                            _ => slot.flags.store(v as u32, r),
                        }
                    }
                    Step::Header(b, w, v) => {
                        s.data.buffer(b).unwrap().write(w * 8, &v.to_ne_bytes()).unwrap();
                    }
                    Step::Start(op, block, count) => {
                        let op = BlockOp::from_u32(u32::from(op)).unwrap();
                        let bytes = vec![op as u8; (count * 512) as usize];
                        let data = (op == BlockOp::Write).then_some(&bytes[..]);
                        let (block, count) = if op == BlockOp::Flush { (0, 0) } else { (block, count) };
                        if let Ok(t) = s.client.start(op, block, count, data) {
                            tickets.push(t);
                        }
                    }
                    Step::Complete => s.disk().complete(),
                    Step::Stray(t) => s.disk().extra.push_back((t, true)),
                    Step::Serve(irq) => {
                        let before = s.driver.counters;
                        s.driver.notified(irq);
                        let after = s.driver.counters;
                        prop_assert!(after.requests >= before.requests);
                        prop_assert!(s.driver.held.owned() <= 1);
                        prop_assert_eq!(s.driver.held.owned() == 1, s.driver.in_flight.is_some());
                    }
                    Step::Poll => {
                        tickets.retain(|t| matches!(s.client.poll(*t, &mut buf), Ok(None)));
                    }
                }
            }
            prop_assert!(s.driver.counters.bad <= s.driver.counters.requests);
        }
    }
}
