//! The device-independent half of every network driver: it moves buffers between the
//! client's four queues and a [`Nic`], checking everything the client (and the card) hands
//! it.
//!
//! Nothing the client writes is trusted: every descriptor is checked against the data
//! region's geometry and against the buffers the driver holds (a [`Ledger`]); a bad one is
//! dropped and counted, never followed. A tag the card hands back that the driver did not
//! give it is dropped too: a broken card cannot make the driver give the client a buffer
//! twice.

use atoll_channels::queue::{Consumer, Corrupt, Desc, DriverSide, Ledger};

use crate::{HEADROOM, MAX_FRAME, NET_BUF_SIZE, NET_BUFFERS, NET_QUEUE_SLOTS, geometry};

/// The ledger's words: one bit per buffer.
const LEDGER_WORDS: usize = (NET_BUFFERS as usize).div_ceil(64);

/// A buffer of a data region: where the driver sees its first byte and where the card does.
/// It holds [`NET_BUF_SIZE`] bytes; the frame starts at [`HEADROOM`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// The driver's address of the buffer's first byte.
    pub vaddr: usize,
    /// Its physical address.
    pub paddr: u64,
}

impl Buffer {
    /// The physical address of the frame (after the headroom).
    pub const fn frame_paddr(&self) -> u64 {
        self.paddr + HEADROOM as u64
    }

    /// The driver's address of the frame.
    pub const fn frame_vaddr(&self) -> usize {
        self.vaddr + HEADROOM as usize
    }

    /// The source address of the frame to send in this buffer (at least an Ethernet
    /// header: the driver checked its length), if it is a station's (not zero, not a group
    /// address). Cards whose client uses an address of its own (the `io` PD's locally
    /// administered one) learn it from here and let frames to it in.
    pub fn source_station(&self) -> Option<[u8; 6]> {
        let mut source = [0u8; 6];
        for (i, byte) in source.iter_mut().enumerate() {
            // SAFETY: the driver passes only buffers of the transmit data region it holds
            // (checked descriptors and its ledger), mapped into this PD, with a frame of at
            // least 14 bytes at `frame_vaddr`; the source address is bytes 6 to 11. A client
            // that writes the buffer meanwhile changes only the address the card accepts.
            *byte = unsafe { ((self.frame_vaddr() + 6 + i) as *const u8).read_volatile() };
        }
        is_station(source).then_some(source)
    }
}

/// Whether `mac` may be a station's address: not zero, not a group (multicast) address.
pub fn is_station(mac: [u8; 6]) -> bool {
    mac != [0; 6] && mac[0] & 1 == 0
}

/// One data region as the driver sees it: its address here and its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The driver's address of the region's first byte.
    pub vaddr: usize,
    /// The physical address of its first byte (patched in by the tool).
    pub paddr: u64,
}

impl Region {
    /// The buffer at `offset` (an offset the geometry check accepted).
    const fn buffer(&self, offset: u64) -> Buffer {
        Buffer {
            vaddr: self.vaddr + offset as usize,
            paddr: self.paddr + offset,
        }
    }
}

/// A network card, as the driver loop drives it. A tag is the buffer's offset in its data
/// region; the card keeps it with the buffer and hands it back when it is done with it.
pub trait Nic {
    /// Whether the card sees memory coherently with the CPU's caches. A card that does not
    /// gets every buffer cleaned from the caches before it reads it and invalidated around
    /// the time it writes it.
    const COHERENT: bool;

    /// The card's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Clears the card's interrupt condition (before the driver looks at its rings).
    fn ack_interrupt(&mut self);
    /// Whether the card can take another receive buffer now.
    fn rx_room(&self) -> bool;
    /// Hands the card an empty buffer to receive into (the frame at [`HEADROOM`], at most
    /// [`MAX_FRAME`] bytes). `false` if it has no room after all; the buffer stays the
    /// driver's.
    fn rx_post(&mut self, tag: u64, buffer: Buffer) -> bool;
    /// The next buffer the card filled: its tag and the frame's length (0 for a frame the
    /// card reported broken, at most [`MAX_FRAME`]).
    fn rx_take(&mut self) -> Option<(u64, u32)>;
    /// Whether the card can take another frame to send now.
    fn tx_room(&self) -> bool;
    /// Hands the card a frame of `len` bytes (at [`HEADROOM`] in the buffer, 14 to
    /// [`MAX_FRAME`] bytes) to send. `false` if it has no room after all.
    fn tx_post(&mut self, tag: u64, buffer: Buffer, len: u32) -> bool;
    /// The tag of the next buffer the card has sent.
    fn tx_take(&mut self) -> Option<u64>;
}

/// What the driver counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the client.
    pub received: u64,
    /// Frames the card sent.
    pub sent: u64,
    /// Descriptors from the client that named no buffer, or one the driver already held.
    pub bad: u64,
    /// Frames the client asked to send that were too short or too long.
    pub refused: u64,
    /// Tags the card handed back that the driver had not given it (a broken card).
    pub card_errors: u64,
}

/// A driver: a card and the client's queues.
pub struct Driver<'a, N: Nic> {
    /// The card.
    pub nic: N,
    queues: DriverSide<'a, NET_QUEUE_SLOTS>,
    rx: Region,
    tx: Region,
    /// The receive buffers the driver holds (from the client, not yet returned).
    rx_held: Ledger<LEDGER_WORDS>,
    /// The transmit buffers the driver holds.
    tx_held: Ledger<LEDGER_WORDS>,
    /// What happened so far.
    pub counters: Counters,
}

impl<'a, N: Nic> Driver<'a, N> {
    /// A driver of `nic` serving the client on `queues`, with the data regions `rx` and
    /// `tx` (each of [`geometry`]).
    pub fn new(nic: N, queues: DriverSide<'a, NET_QUEUE_SLOTS>, rx: Region, tx: Region) -> Self {
        let ledger = || match Ledger::new(geometry(), false) {
            Ok(ledger) => ledger,
            // The geometry's buffers fit the ledger's words (checked at compile time below).
            Err(_) => unreachable!("the ledger holds every buffer"),
        };
        Self {
            nic,
            queues,
            rx,
            tx,
            rx_held: ledger(),
            tx_held: ledger(),
            counters: Counters::default(),
        }
    }

    /// Moves everything that can move, until nothing does; the caller then waits for the
    /// card's interrupt or the client's notification. Returns whether the client asked to
    /// be notified of what the driver put in its queues.
    pub fn serve(&mut self) -> bool {
        let mut notify = false;
        loop {
            let mut moved = self.collect_received();
            moved |= self.collect_sent();
            moved |= self.post_receive_buffers();
            moved |= self.send();
            // Both flags are taken (and cleared) every round.
            let rx_wanted = self.queues.rx_active.signal_needed();
            let tx_wanted = self.queues.tx_free.signal_needed();
            notify |= rx_wanted || tx_wanted;
            if moved {
                continue;
            }
            // Ask the client for a notification on the queues it fills, then look once more:
            // a descriptor enqueued in between is found now rather than lost. A queue whose
            // card ring is full waits for the card instead (its interrupt).
            let rx_quiet =
                !self.nic.rx_room() || self.queues.rx_free.ready_to_wait().unwrap_or(true);
            let tx_quiet =
                !self.nic.tx_room() || self.queues.tx_active.ready_to_wait().unwrap_or(true);
            if rx_quiet && tx_quiet {
                return notify;
            }
        }
    }

    /// Frames the card received, to the client.
    fn collect_received(&mut self) -> bool {
        let mut moved = false;
        while let Some((tag, len)) = self.nic.rx_take() {
            moved = true;
            let len = if len > MAX_FRAME { 0 } else { len };
            let frame = Desc::new(tag, HEADROOM + len);
            if self.rx_held.give(&frame).is_err() {
                self.counters.card_errors += 1;
                continue;
            }
            if !N::COHERENT {
                // Lines the CPU fetched (speculatively) while the card wrote are stale (EL0
                // may not discard lines, but they are clean by then).
                crate::cache::clean_invalidate(self.rx.buffer(tag).vaddr, NET_BUF_SIZE as usize);
            }
            self.counters.received += 1;
            // The client posted at most as many buffers as the queue has slots.
            if self.queues.rx_active.enqueue(frame).is_err() {
                self.counters.bad += 1;
            }
        }
        moved
    }

    /// Buffers of sent frames, back to the client.
    fn collect_sent(&mut self) -> bool {
        let mut moved = false;
        while let Some(tag) = self.nic.tx_take() {
            moved = true;
            if self.give_back_tx(tag) {
                self.counters.sent += 1;
            } else {
                self.counters.card_errors += 1;
            }
        }
        moved
    }

    /// Returns transmit buffer `tag` to the client; `false` if the driver did not hold it.
    fn give_back_tx(&mut self, tag: u64) -> bool {
        let empty = Desc::new(tag, 0);
        if self.tx_held.give(&empty).is_err() {
            return false;
        }
        if self.queues.tx_free.enqueue(empty).is_err() {
            self.counters.bad += 1;
        }
        true
    }

    /// Empty buffers from the client, to the card.
    fn post_receive_buffers(&mut self) -> bool {
        let mut moved = false;
        while self.nic.rx_room() {
            let Some(desc) = handed_over(
                &mut self.queues.rx_free,
                &mut self.rx_held,
                &mut self.counters,
            ) else {
                break;
            };
            moved = true;
            let buffer = self.rx.buffer(desc.offset);
            if !N::COHERENT {
                // No dirty line may be written back over what the card writes.
                crate::cache::clean_invalidate(buffer.vaddr, NET_BUF_SIZE as usize);
            }
            if !self.nic.rx_post(desc.offset, buffer) {
                // The card is full after all: hand the buffer straight back, empty.
                let empty = Desc::new(desc.offset, HEADROOM);
                let _ = self.rx_held.give(&empty);
                let _ = self.queues.rx_active.enqueue(empty);
                break;
            }
        }
        moved
    }

    /// Frames from the client, to the card.
    fn send(&mut self) -> bool {
        let mut moved = false;
        while self.nic.tx_room() {
            let Some(desc) = handed_over(
                &mut self.queues.tx_active,
                &mut self.tx_held,
                &mut self.counters,
            ) else {
                break;
            };
            moved = true;
            // An Ethernet frame has at least its 14-byte header; the geometry check bounds
            // the length by the buffer.
            let len = desc.len.saturating_sub(HEADROOM);
            if !(14..=MAX_FRAME).contains(&len) {
                self.counters.refused += 1;
                self.give_back_tx(desc.offset);
                continue;
            }
            let buffer = self.tx.buffer(desc.offset);
            if !N::COHERENT {
                crate::cache::clean(buffer.frame_vaddr(), len as usize);
            }
            if !self.nic.tx_post(desc.offset, buffer, len) {
                self.counters.refused += 1;
                self.give_back_tx(desc.offset);
                break;
            }
        }
        moved
    }
}

/// The next buffer the client handed over on `queue` that is one of the region's and not
/// one the driver holds already (recorded in `held`); bad descriptors are dropped and
/// counted. `None` once the queue is empty.
fn handed_over(
    queue: &mut Consumer<'_, NET_QUEUE_SLOTS>,
    held: &mut Ledger<LEDGER_WORDS>,
    counters: &mut Counters,
) -> Option<Desc> {
    loop {
        match queue.dequeue() {
            Ok(Some(desc)) if held.receive(&desc).is_ok() => return Some(desc),
            // An impossible producer index consumes nothing: looking again would find it
            // again, for ever. Count it and stop until the client notifies once more.
            Err(Corrupt::Index) => {
                counters.bad += 1;
                return None;
            }
            Ok(Some(_)) | Err(_) => counters.bad += 1,
            Ok(None) => return None,
        }
    }
}

const _: () = assert!(NET_BUFFERS as usize <= LEDGER_WORDS * 64);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    use atoll_channels::queue::{ClientSide, NetQueues};

    use super::*;
    use crate::QUEUES_BYTES;

    /// A card that keeps what it is given and completes it when the test says.
    #[derive(Default)]
    struct FakeCard {
        rx_posted: VecDeque<(u64, Buffer)>,
        rx_done: VecDeque<(u64, u32)>,
        tx_posted: VecDeque<(u64, Buffer, u32)>,
        tx_done: VecDeque<u64>,
        room: usize,
    }

    impl Nic for FakeCard {
        const COHERENT: bool = false;
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 1]
        }
        fn ack_interrupt(&mut self) {}
        fn rx_room(&self) -> bool {
            self.rx_posted.len() < self.room
        }
        fn rx_post(&mut self, tag: u64, buffer: Buffer) -> bool {
            self.rx_posted.push_back((tag, buffer));
            true
        }
        fn rx_take(&mut self) -> Option<(u64, u32)> {
            self.rx_done.pop_front()
        }
        fn tx_room(&self) -> bool {
            self.tx_posted.len() < self.room
        }
        fn tx_post(&mut self, tag: u64, buffer: Buffer, len: u32) -> bool {
            self.tx_posted.push_back((tag, buffer, len));
            true
        }
        fn tx_take(&mut self) -> Option<u64> {
            self.tx_done.pop_front()
        }
    }

    /// Shared memory for the queues, aligned as a page is.
    #[derive(Clone, Copy)]
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    const RX: Region = Region {
        vaddr: 0x10_0000,
        paddr: 0x8000_0000,
    };
    const TX: Region = Region {
        vaddr: 0x20_0000,
        paddr: 0x9000_0000,
    };

    /// A driver of a fake card and the client's ends of its queues.
    fn setup(
        memory: &mut Vec<Page>,
    ) -> (
        Driver<'static, FakeCard>,
        ClientSide<'static, NET_QUEUE_SLOTS>,
    ) {
        let base = memory.as_mut_ptr().cast::<u8>();
        let bytes = memory.len() * 4096;
        // SAFETY: the memory outlives the test (leaked below) and is only used through the
        // queue types.
        let region = unsafe { core::slice::from_raw_parts_mut(base, bytes) };
        let driver_side = NetQueues::<NET_QUEUE_SLOTS>::init(region, geometry(), geometry())
            .expect("queues")
            .driver();
        // SAFETY: as above; both sides use the region through atomics only.
        let client = unsafe {
            NetQueues::<NET_QUEUE_SLOTS>::attach_raw(base, bytes, geometry(), geometry())
        }
        .expect("attach")
        .client();
        let card = FakeCard {
            room: 8,
            ..FakeCard::default()
        };
        (Driver::new(card, driver_side, RX, TX), client)
    }

    fn memory() -> &'static mut Vec<Page> {
        std::boxed::Box::leak(std::boxed::Box::new(vec![
            Page([0; 4096]);
            QUEUES_BYTES.div_ceil(4096)
        ]))
    }

    #[test]
    fn received_frames_reach_the_client_with_their_length() {
        let (mut driver, mut client) = setup(memory());
        for i in 0..3 {
            client
                .rx_free
                .enqueue(Desc::new(i * 2048, 0))
                .expect("room");
        }
        driver.serve();
        let posted: Vec<_> = driver
            .nic
            .rx_posted
            .iter()
            .map(|(tag, b)| (*tag, b.frame_paddr()))
            .collect();
        assert_eq!(
            posted,
            [(0, 0x8000_0010), (2048, 0x8000_0810), (4096, 0x8000_1010)]
        );
        driver.nic.rx_done.push_back((2048, 60));
        driver.nic.rx_done.push_back((0, 1514));
        driver.serve();
        assert_eq!(
            client.rx_active.dequeue(),
            Ok(Some(Desc::new(2048, HEADROOM + 60)))
        );
        assert_eq!(
            client.rx_active.dequeue(),
            Ok(Some(Desc::new(0, HEADROOM + 1514)))
        );
        assert_eq!(client.rx_active.dequeue(), Ok(None));
        assert_eq!(driver.counters.received, 2);
    }

    #[test]
    fn a_hostile_client_cannot_hand_a_buffer_over_twice_or_name_a_foreign_one() {
        let (mut driver, mut client) = setup(memory());
        client.rx_free.enqueue(Desc::new(0, 0)).expect("room");
        client.rx_free.enqueue(Desc::new(0, 0)).expect("room");
        client
            .tx_active
            .enqueue(Desc::new(4096, HEADROOM + 60))
            .expect("room");
        client
            .tx_active
            .enqueue(Desc::new(4096, HEADROOM + 60))
            .expect("room");
        driver.serve();
        assert_eq!(driver.nic.rx_posted.len(), 1, "the duplicate is dropped");
        assert_eq!(driver.nic.tx_posted.len(), 1);
        assert_eq!(driver.counters.bad, 2);
    }

    /// A client that sets its producer index beyond the queue's capacity cannot make the
    /// driver loop: the index is counted as bad each time the driver looks, and nothing
    /// else happens until the client repairs it.
    #[test]
    fn an_impossible_producer_index_does_not_hang_the_driver() {
        let memory = memory();
        let base = memory.as_mut_ptr().cast::<u8>();
        let (mut driver, mut client) = setup(memory);
        client.rx_free.enqueue(Desc::new(0, 0)).expect("room");
        // SAFETY: the test's region holds the queues at its start; the driver and the
        // client use it through atomics only, as this does.
        let shared = unsafe { &*base.cast::<NetQueues<NET_QUEUE_SLOTS>>() };
        for queue in [&shared.rx_free, &shared.tx_active] {
            queue.producer.value.store(
                NET_QUEUE_SLOTS as u32 * 3,
                core::sync::atomic::Ordering::Relaxed,
            );
        }
        driver.serve();
        assert!(driver.nic.rx_posted.is_empty());
        assert_eq!(driver.counters.bad, 2);
        shared
            .rx_free
            .producer
            .value
            .store(1, core::sync::atomic::Ordering::Relaxed);
        driver.serve();
        assert_eq!(
            driver.nic.rx_posted.len(),
            1,
            "served once the index is repaired"
        );
    }

    #[test]
    fn a_broken_card_cannot_give_the_client_a_buffer_it_was_not_given() {
        let (mut driver, mut client) = setup(memory());
        client.rx_free.enqueue(Desc::new(0, 0)).expect("room");
        driver.serve();
        driver.nic.rx_done.push_back((0, 100));
        driver.nic.rx_done.push_back((0, 100));
        driver.nic.rx_done.push_back((2048, 100));
        driver.nic.tx_done.push_back(0);
        driver.serve();
        assert_eq!(
            client.rx_active.dequeue(),
            Ok(Some(Desc::new(0, HEADROOM + 100)))
        );
        assert_eq!(client.rx_active.dequeue(), Ok(None));
        assert_eq!(client.tx_free.dequeue(), Ok(None));
        assert_eq!(driver.counters.card_errors, 3);
    }

    #[test]
    fn frames_too_short_or_too_long_to_send_come_back_unsent() {
        let (mut driver, mut client) = setup(memory());
        client
            .tx_active
            .enqueue(Desc::new(0, HEADROOM + 13))
            .expect("room");
        client
            .tx_active
            .enqueue(Desc::new(2048, HEADROOM + 14))
            .expect("room");
        client
            .tx_active
            .enqueue(Desc::new(4096, HEADROOM))
            .expect("room");
        driver.serve();
        let sent: Vec<_> = driver
            .nic
            .tx_posted
            .iter()
            .map(|(tag, b, len)| (*tag, b.frame_paddr(), *len))
            .collect();
        assert_eq!(sent, [(2048, 0x9000_0810, 14)]);
        assert_eq!(client.tx_free.dequeue(), Ok(Some(Desc::new(0, 0))));
        assert_eq!(client.tx_free.dequeue(), Ok(Some(Desc::new(4096, 0))));
        assert_eq!(driver.counters.refused, 2);
        driver.nic.tx_done.push_back(2048);
        driver.serve();
        assert_eq!(client.tx_free.dequeue(), Ok(Some(Desc::new(2048, 0))));
        assert_eq!(driver.counters.sent, 1);
    }

    #[test]
    fn a_full_card_leaves_buffers_in_the_queue() {
        let (mut driver, mut client) = setup(memory());
        for i in 0..10 {
            client
                .rx_free
                .enqueue(Desc::new(i * 2048, 0))
                .expect("room");
        }
        driver.serve();
        assert_eq!(driver.nic.rx_posted.len(), 8);
        assert_eq!(client.rx_free.in_flight(), Ok(2));
    }
}
