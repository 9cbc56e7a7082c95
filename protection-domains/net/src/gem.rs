//! The Cadence GEM of the ZynqMP (`zcu102`'s GEM3; QEMU's `cadence_gem`).
//!
//! The card moves frames through rings of buffer descriptors in the driver's private,
//! uncached `net_rings` region: for its priority queue 0, a receive ring and a transmit
//! ring with a descriptor for each buffer of a data region. A descriptor names one buffer
//! of the data regions the driver shares with its client (the frame at [`HEADROOM`] in
//! it), so frames go to and from the card without a copy; the tag of the buffer in each
//! slot is kept beside the ring, never in memory the card writes.
//!
//! Descriptors are the GEM's 8-byte ones: DMACFG's 64-bit addressing and extended
//! (timestamp) descriptors are off, so the card (QEMU's and the real one) takes 32-bit
//! buffer addresses, which the zcu102's low DDR has. The ZynqMP's GEM has a second priority
//! queue (QEMU: `num-priority-queues` = 2): its rings must be valid too, or the card walks
//! whatever its base registers point at (QEMU: address 0). It gets a receive descriptor the
//! card never owns and a transmit descriptor already sent, both with the wrap bit, and its
//! interrupts stay off; no frame is ever steered to it (the screeners are cleared).
//!
//! How the card is told to look:
//! - Transmit: NWCTRL's TXSTART after each frame is posted. QEMU sends everything ready
//!   right inside that register write; the real card keeps going until it meets a sent
//!   descriptor. A frame posted just as the real card stopped would sit, so a "used bit
//!   read" interrupt with frames still waiting writes TXSTART again.
//! - Receive: QEMU reads the next receive descriptor as soon as it filled one, and if the
//!   driver has not handed it over yet, it keeps that stale copy (and holds back incoming
//!   frames) until NWCTRL is written with receive enabled. So posting a buffer into the
//!   slot the card may have looked at already (the one before is filled, or was never
//!   posted) writes NWCTRL, and so does a "used bit read" interrupt while the card holds an
//!   empty buffer. The real card reads the descriptor again for each frame; the writes
//!   change nothing there.
//!
//! Ring memory is uncached (Device memory), so it is accessed only by naturally aligned
//! volatile 32-bit reads and writes, and only barriers order them against the card: a
//! descriptor's address is written before the word that hands it over, every ring write
//! completes before the register write that sends the card looking, and a word the card
//! handed back is read before the rest of its descriptor.
//!
//! Everything the card writes is checked before it is believed: a received length outside
//! what a buffer holds, or a frame not in one buffer, is handed on with length 0; tags and
//! slots come from the driver's own bookkeeping.
//!
//! The card takes frames to two addresses (and broadcasts): its own, in the first
//! specific-address filter, and the one its client sends from, in the second. The network
//! stack has an address of its own rather than the card's, and nothing but its frames
//! tells the driver which: the source address of the frames it sends is taken as its
//! address (QEMU's virtio-net takes every frame; the GEM, QEMU's and the real one, takes
//! only frames its filters match).
//!
//! On the real board the driver relies on firmware (U-Boot) for what QEMU does not model:
//! the PHY brought up over MDIO, the GEM's clocks set for the negotiated speed, and NWCFG's
//! speed, duplex, interface and MDC settings, which the driver keeps. It reads the MAC
//! address firmware (or QEMU, from its `-nic`) left in the first specific-address filter.

use core::ptr::NonNull;

use crate::barrier;
use crate::driver::{Buffer, Nic, Region, is_station};
use crate::regs::Regs;
use crate::slots::{SLOTS, Slots};
use crate::{HEADROOM, MAX_FRAME};

/// The card's registers the driver uses, by their offset in the register block. All of them
/// lie in its first 4 KiB page, the part the description maps.
mod reg {
    /// Network control: receive and transmit enable, transmit start, MDIO enable.
    pub const NWCTRL: usize = 0x000;
    /// Network configuration: speed, duplex, address filtering, FCS removal, bus width.
    pub const NWCFG: usize = 0x004;
    /// DMA configuration: receive buffer size, burst length, descriptor format.
    pub const DMACFG: usize = 0x010;
    /// Transmit status (write 1 to clear).
    pub const TXSTATUS: usize = 0x014;
    /// Queue 0's receive ring (its physical address).
    pub const RXQBASE: usize = 0x018;
    /// Queue 0's transmit ring.
    pub const TXQBASE: usize = 0x01C;
    /// Receive status (write 1 to clear).
    pub const RXSTATUS: usize = 0x020;
    /// Queue 0's interrupt status. QEMU clears it when it is read; the driver also writes
    /// back the bits it read, which clears them where it is write-1-to-clear (as Xilinx's
    /// own driver does on the ZynqMP).
    pub const ISR: usize = 0x024;
    /// Interrupt enable: a 1 unmasks the event.
    pub const IER: usize = 0x028;
    /// Interrupt disable: a 1 masks the event.
    pub const IDR: usize = 0x02C;
    /// The hash filter's lower half.
    pub const HASHLO: usize = 0x080;
    /// The hash filter's upper half.
    pub const HASHHI: usize = 0x084;
    /// The first specific-address filter's first four bytes (writing it turns the filter
    /// off).
    pub const SPADDR1LO: usize = 0x088;
    /// Its last two bytes (writing it turns the filter on).
    pub const SPADDR1HI: usize = 0x08C;
    /// Bytes between one specific-address filter and the next.
    pub const SPADDR_STRIDE: usize = 8;
    /// The second specific-address filter's first four bytes.
    pub const SPADDR2LO: usize = SPADDR1LO + SPADDR_STRIDE;
    /// Its last two bytes.
    pub const SPADDR2HI: usize = SPADDR1HI + SPADDR_STRIDE;
    /// Design configuration 1: the data bus width the card was built with.
    pub const DESCONF1: usize = 0x280;
    /// Design configuration 6: which priority queues besides queue 0 exist.
    pub const DESCONF6: usize = 0x294;
    /// Design configuration 8: how many screeners of each type exist.
    pub const DESCONF8: usize = 0x29C;
    /// Queue 1's interrupt status (queues 2 to 7 follow, a word each).
    pub const Q1_ISR: usize = 0x400;
    /// Queue 1's transmit ring.
    pub const Q1_TXQBASE: usize = 0x440;
    /// Queue 1's receive ring.
    pub const Q1_RXQBASE: usize = 0x480;
    /// The upper halves of the transmit rings' addresses (64-bit addressing only).
    pub const TXQBASE_HIGH: usize = 0x4C8;
    /// The upper halves of the receive rings' addresses.
    pub const RXQBASE_HIGH: usize = 0x4D4;
    /// The first type 1 screener (by DS/TC or UDP port).
    pub const SCREEN1: usize = 0x500;
    /// The first type 2 screener (by EtherType or compared fields).
    pub const SCREEN2: usize = 0x540;
    /// Queue 1's interrupt disable.
    pub const Q1_IDR: usize = 0x620;
}

/// NWCTRL: the receiver on.
const NWCTRL_RX_ENABLE: u32 = 1 << 2;
/// NWCTRL: the transmitter on.
const NWCTRL_TX_ENABLE: u32 = 1 << 3;
/// NWCTRL: the MDIO port on (kept as firmware left it).
const NWCTRL_MDIO_ENABLE: u32 = 1 << 4;
/// NWCTRL: zeroes the statistics counters.
const NWCTRL_CLEAR_STATS: u32 = 1 << 5;
/// NWCTRL: start sending the transmit ring's ready descriptors.
const NWCTRL_TX_START: u32 = 1 << 9;

/// NWCFG: 100 Mb/s (firmware's, for the link).
const NWCFG_SPEED: u32 = 1 << 0;
/// NWCFG: full duplex (firmware's).
const NWCFG_FULL_DUPLEX: u32 = 1 << 1;
/// NWCFG: accept frames of up to 1,536 bytes (VLAN-tagged full-size frames).
const NWCFG_RX_1536: u32 = 1 << 8;
/// NWCFG: 1 Gb/s (firmware's).
const NWCFG_GIGABIT: u32 = 1 << 10;
/// NWCFG: the PCS (SGMII) interface (firmware's).
const NWCFG_PCS_SELECT: u32 = 1 << 11;
/// NWCFG: drop the FCS of received frames.
const NWCFG_FCS_REMOVE: u32 = 1 << 17;
/// NWCFG: the MDC clock divisor (firmware's).
const NWCFG_MDC_DIVISOR: u32 = 0b111 << 18;
/// NWCFG: where the data bus width goes (0: 32 bits, 1: 64, 2: 128).
const NWCFG_BUS_WIDTH_SHIFT: u32 = 21;
/// NWCFG: pause frames are not copied to memory.
const NWCFG_NO_PAUSE_COPY: u32 = 1 << 23;
/// NWCFG: SGMII mode (firmware's).
const NWCFG_SGMII: u32 = 1 << 27;
/// NWCFG: the link settings firmware chose for the board's PHY, kept as they are.
const NWCFG_LINK: u32 = NWCFG_SPEED
    | NWCFG_FULL_DUPLEX
    | NWCFG_GIGABIT
    | NWCFG_PCS_SELECT
    | NWCFG_MDC_DIVISOR
    | NWCFG_SGMII;

/// DMACFG: bursts of up to 16 beats.
const DMACFG_BURST_16: u32 = 0x10;
/// DMACFG: all of the receive packet buffer memory.
const DMACFG_RX_PBUF_FULL: u32 = 0b11 << 8;
/// DMACFG: all of the transmit packet buffer memory.
const DMACFG_TX_PBUF_FULL: u32 = 1 << 10;
/// DMACFG: where the receive buffer size goes, in 64-byte units.
const DMACFG_RX_BUF_SHIFT: u32 = 16;

/// Interrupt: a frame was received.
const INT_RX_COMPLETE: u32 = 1 << 1;
/// Interrupt: the card met a receive descriptor it does not own (no empty buffer).
const INT_RX_USED: u32 = 1 << 2;
/// Interrupt: the card met a transmit descriptor already sent (it stopped sending).
const INT_TX_USED: u32 = 1 << 3;
/// Interrupt: a frame was sent.
const INT_TX_COMPLETE: u32 = 1 << 7;
/// The interrupts the driver takes.
const INTERRUPTS: u32 = INT_RX_COMPLETE | INT_RX_USED | INT_TX_USED | INT_TX_COMPLETE;

/// Receive descriptor, word 0: software owns it (the card filled it, or it has no buffer).
const RX_USED: u32 = 1 << 0;
/// Receive descriptor, word 0: the ring's last descriptor.
const RX_WRAP: u32 = 1 << 1;
/// Receive descriptor, word 0: the buffer's address (the low bits are the flags above).
const RX_ADDRESS: u32 = !0b11;
/// Receive descriptor, word 1: the frame's length (FCS removed).
const RX_LENGTH: u32 = 0x1FFF;
/// Receive descriptor, word 1: the frame starts in this buffer.
const RX_START: u32 = 1 << 14;
/// Receive descriptor, word 1: the frame ends in this buffer.
const RX_END: u32 = 1 << 15;

/// Transmit descriptor, word 1: the buffer's length.
const TX_LENGTH: u32 = 0x3FFF;
/// Transmit descriptor, word 1: the frame's last buffer.
const TX_LAST: u32 = 1 << 15;
/// Transmit descriptor, word 1: the ring's last descriptor.
const TX_WRAP: u32 = 1 << 30;
/// Transmit descriptor, word 1: software owns it (sent, or never ready).
const TX_USED: u32 = 1 << 31;

/// Bytes of a descriptor (two words: 32-bit addressing, no timestamps).
const DESC_BYTES: usize = 8;
/// Where the receive ring lies in the rings region.
const RX_RING: usize = 0;
/// Where the transmit ring lies. QEMU rewrites 24 bytes from a sent frame's descriptor
/// (up to 16 past the ring's end), so the ring ends well before anything else.
const TX_RING: usize = 0x800;
/// The receive descriptor of the priority queues the driver does not use.
const RX_IDLE: usize = 0x1000;
/// Their transmit descriptor.
const TX_IDLE: usize = 0x1040;
/// Bytes of the rings region the driver uses.
const RINGS_NEEDED: usize = TX_IDLE + DESC_BYTES;
/// Alignment of each ring (and of the region): enough for any data bus width and burst.
const RING_ALIGN: usize = 64;
/// The highest priority queue whose registers are at the offsets in [`reg`].
const MAX_QUEUE: usize = 7;
/// Screeners of each type the driver clears at most (the GEM has no more).
const MAX_SCREENERS: u32 = 16;

/// Bytes the card may write into a receive buffer: all that follows the headroom, rounded
/// down to DMACFG's 64-byte units (1,984: more than the longest frame the card accepts).
const RX_BUFFER_BYTES: u32 = MAX_FRAME / 64 * 64;
/// Alignment of a receive buffer: the width of the widest data bus (128 bits).
const RX_BUFFER_ALIGN: u64 = 16;
/// The shortest frame there is: an Ethernet header.
const MIN_FRAME: u32 = 14;
/// The longest frame the card sends without jumbo frames (QEMU stops its transmit ring at
/// a longer one): 1,514 bytes and a VLAN tag, without the FCS the card adds.
const MAX_TX_FRAME: u32 = 1518;

/// The address used when firmware left none (or a broken one) in the card: locally
/// administered, so it clashes with no vendor's.
const FALLBACK_MAC: [u8; 6] = [0x02, 0x0a, 0x35, 0x00, 0x00, 0x03];

const _: () = assert!(TX_RING >= RX_RING + SLOTS * DESC_BYTES);
const _: () = assert!(RX_IDLE >= TX_RING + SLOTS * DESC_BYTES + 16);
const _: () = assert!(TX_IDLE >= RX_IDLE + DESC_BYTES);
const _: () = assert!(RX_RING.is_multiple_of(RING_ALIGN) && TX_RING.is_multiple_of(RING_ALIGN));
const _: () = assert!(RX_IDLE.is_multiple_of(RING_ALIGN) && TX_IDLE.is_multiple_of(RING_ALIGN));
const _: () = assert!(RINGS_NEEDED <= 0x4000);
const _: () = assert!(RX_BUFFER_BYTES / 64 <= 0xFF && RX_BUFFER_BYTES >= 1538);
const _: () = assert!(MAX_TX_FRAME <= MAX_FRAME && MAX_TX_FRAME <= TX_LENGTH);
const _: () = assert!((HEADROOM as u64).is_multiple_of(RX_BUFFER_ALIGN));

/// The rings region, one aligned word at a time.
#[derive(Clone, Copy)]
struct RingMemory {
    /// The driver's address of the region's first byte.
    vaddr: usize,
}

impl RingMemory {
    /// Reads the word at byte `offset` (0 outside the part the driver uses).
    fn load(self, offset: usize) -> u32 {
        if !offset.is_multiple_of(4) || offset + 4 > RINGS_NEEDED {
            return 0;
        }
        // SAFETY: an aligned word inside the rings region (at least `RINGS_NEEDED` bytes,
        // checked in `GemNic::new`), mapped uncached into this PD for the driver alone.
        unsafe { ((self.vaddr + offset) as *const u32).read_volatile() }
    }

    /// Writes the word at byte `offset` (nothing outside the part the driver uses).
    fn store(self, offset: usize, value: u32) {
        if !offset.is_multiple_of(4) || offset + 4 > RINGS_NEEDED {
            return;
        }
        // SAFETY: as in `load`.
        unsafe { ((self.vaddr + offset) as *mut u32).write_volatile(value) }
    }
}

/// The slot before `slot` in a ring.
const fn previous(slot: usize) -> usize {
    (slot + SLOTS - 1) % SLOTS
}

/// The receive ring: which buffers the card holds, in the order it fills them.
struct RxRing {
    /// The slots the card holds (filled or not, until taken).
    slots: Slots,
}

impl RxRing {
    /// An empty ring.
    const fn new() -> Self {
        Self {
            slots: Slots::new(),
        }
    }

    /// Where word 0 of `slot`'s descriptor is.
    const fn word0(slot: usize) -> usize {
        RX_RING + slot * DESC_BYTES
    }

    /// Where word 1 of `slot`'s descriptor is.
    const fn word1(slot: usize) -> usize {
        Self::word0(slot) + 4
    }

    /// `slot`'s wrap flag.
    const fn wrap(slot: usize) -> u32 {
        if slot == SLOTS - 1 { RX_WRAP } else { 0 }
    }

    /// Makes every descriptor software's (the card fills none).
    fn clear(&mut self, ring: RingMemory) {
        for slot in 0..SLOTS {
            ring.store(Self::word1(slot), 0);
            ring.store(Self::word0(slot), RX_USED | Self::wrap(slot));
        }
        *self = Self::new();
    }

    /// Whether the card can take another buffer.
    const fn has_room(&self) -> bool {
        self.slots.has_room()
    }

    /// Hands the card the buffer at `paddr` (its frame's start) with `tag`. `None` if the
    /// ring is full; otherwise whether the card may have read this slot before it was
    /// handed over (so it must be told to read it again).
    fn post(&mut self, ring: RingMemory, tag: u64, paddr: u32) -> Option<bool> {
        if !self.has_room() {
            return None;
        }
        let slot = self.slots.next_post();
        ring.store(Self::word1(slot), 0);
        barrier::ring_writes();
        ring.store(Self::word0(slot), (paddr & RX_ADDRESS) | Self::wrap(slot));
        self.slots.post(tag);
        // The card reads a slot right after filling the one before. If that one is not
        // filled yet, the card reads this slot later, as handed over now; otherwise it may
        // have read it already. The hand-over must be seen before the slot before is looked
        // at.
        barrier::ring_full();
        let before_filled =
            self.slots.held() == 1 || ring.load(Self::word0(previous(slot))) & RX_USED != 0;
        Some(before_filled)
    }

    /// The tag and length of the oldest buffer the card filled, if it did.
    fn take(&mut self, ring: RingMemory) -> Option<(u64, u32)> {
        let slot = self.slots.oldest()?;
        if ring.load(Self::word0(slot)) & RX_USED == 0 {
            return None;
        }
        barrier::ring_reads();
        let status = ring.load(Self::word1(slot));
        if status == 0 {
            // The card wrote word 0 of its write-back, not yet word 1 (its interrupt for
            // this frame comes after both).
            return None;
        }
        Some((self.slots.take(), received_length(status)))
    }

    /// Whether the card holds an empty buffer: a slot it holds that it has not filled.
    fn card_has_empty(&self, ring: RingMemory) -> bool {
        self.slots
            .held_slots()
            .any(|slot| ring.load(Self::word0(slot)) & RX_USED == 0)
    }
}

/// The length to hand on for a received buffer whose descriptor's word 1 is `status`: the
/// frame's, or 0 for a frame not wholly in this buffer or a length the buffer cannot hold.
fn received_length(status: u32) -> u32 {
    let length = status & RX_LENGTH;
    let whole = status & (RX_START | RX_END) == RX_START | RX_END;
    if whole && (MIN_FRAME..=RX_BUFFER_BYTES.min(MAX_FRAME)).contains(&length) {
        length
    } else {
        0
    }
}

/// The transmit ring: which frames the card holds, in the order it sends them.
struct TxRing {
    /// The slots the card holds (sent or not, until taken).
    slots: Slots,
}

impl TxRing {
    /// An empty ring.
    const fn new() -> Self {
        Self {
            slots: Slots::new(),
        }
    }

    /// Where word 0 of `slot`'s descriptor is.
    const fn word0(slot: usize) -> usize {
        TX_RING + slot * DESC_BYTES
    }

    /// Where word 1 of `slot`'s descriptor is.
    const fn word1(slot: usize) -> usize {
        Self::word0(slot) + 4
    }

    /// `slot`'s wrap flag.
    const fn wrap(slot: usize) -> u32 {
        if slot == SLOTS - 1 { TX_WRAP } else { 0 }
    }

    /// Makes every descriptor software's (the card sends none).
    fn clear(&mut self, ring: RingMemory) {
        for slot in 0..SLOTS {
            ring.store(Self::word0(slot), 0);
            ring.store(Self::word1(slot), TX_USED | Self::wrap(slot));
        }
        *self = Self::new();
    }

    /// Whether the card can take another frame.
    const fn has_room(&self) -> bool {
        self.slots.has_room()
    }

    /// Hands the card the frame of `len` bytes at `paddr`, with `tag`; `false` if the ring
    /// is full.
    fn post(&mut self, ring: RingMemory, tag: u64, paddr: u32, len: u32) -> bool {
        if !self.has_room() {
            return false;
        }
        let slot = self.slots.next_post();
        ring.store(Self::word0(slot), paddr);
        barrier::ring_writes();
        // One buffer per frame; the used bit clear hands it over, and the card adds the FCS.
        ring.store(
            Self::word1(slot),
            (len & TX_LENGTH) | TX_LAST | Self::wrap(slot),
        );
        self.slots.post(tag);
        true
    }

    /// The tag of the oldest frame the card sent, if it did.
    fn take(&mut self, ring: RingMemory) -> Option<u64> {
        let slot = self.slots.oldest()?;
        if ring.load(Self::word1(slot)) & TX_USED == 0 {
            return None;
        }
        barrier::ring_reads();
        Some(self.slots.take())
    }

    /// Whether the card holds a frame it has not sent.
    fn card_has_unsent(&self, ring: RingMemory) -> bool {
        self.slots
            .oldest()
            .is_some_and(|slot| ring.load(Self::word1(slot)) & TX_USED == 0)
    }
}

/// The MAC address in a specific-address filter's two registers, if it is one a card may
/// have ([`is_station`]).
fn mac_from(low: u32, high: u32) -> Option<[u8; 6]> {
    let [a, b, c, d] = low.to_le_bytes();
    let [e, f, _, _] = high.to_le_bytes();
    let mac = [a, b, c, d, e, f];
    is_station(mac).then_some(mac)
}

/// The values of a specific-address filter's two registers for `mac`.
fn filter_words(mac: [u8; 6]) -> (u32, u32) {
    let [a, b, c, d, e, f] = mac;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, 0, 0]),
    )
}

/// The priority queues besides queue 0 the card has (DESCONF6's bits 1 to 7), which the
/// driver parks.
fn extra_queues(desconf6: u32) -> impl Iterator<Item = usize> {
    (1..=MAX_QUEUE).filter(move |queue| desconf6 & (1 << queue) != 0)
}

/// NWCFG's data bus width field for the width DESCONF1 reports (32 bits if it reports
/// none the driver knows).
const fn bus_width(desconf1: u32) -> u32 {
    match (desconf1 >> 25) & 0b111 {
        2 => 1,
        4 => 2,
        _ => 0,
    }
}

/// The card.
pub struct GemNic {
    /// Its registers.
    regs: Regs,
    /// The rings region.
    ring: RingMemory,
    /// Its MAC address.
    mac: [u8; 6],
    /// The address the client sends from, once seen (and not the card's): the second
    /// filter's.
    client_mac: Option<[u8; 6]>,
    /// NWCTRL while running: receive and transmit on (and MDIO as firmware left it).
    control: u32,
    /// Frames received.
    rx: RxRing,
    /// Frames to send.
    tx: TxRing,
}

impl GemNic {
    /// Resets the card and sets it up with its descriptor rings in `rings` (uncached,
    /// `rings_bytes` bytes), its interrupts on; `None` if it cannot (the rings do not fit,
    /// are misaligned, or lie where 32-bit addresses do not reach).
    ///
    /// The GEM has no reset bit: it is stopped (which also sends its transmitter back to
    /// the start of its ring), its interrupts masked and cleared, and every setting the
    /// driver depends on written, whatever firmware left (firmware's link settings and MAC
    /// address are kept).
    ///
    /// # Safety
    ///
    /// `regs` must be the card's register block (a page), mapped uncached into this PD
    /// alone, and `rings` a region mapped uncached into this PD alone.
    pub unsafe fn new(regs: NonNull<u8>, rings: Region, rings_bytes: usize) -> Option<Self> {
        let reachable = rings
            .paddr
            .checked_add(RINGS_NEEDED as u64)
            .is_some_and(|end| end <= 1 << 32);
        let aligned =
            rings.paddr.is_multiple_of(RING_ALIGN as u64) && rings.vaddr.is_multiple_of(RING_ALIGN);
        if rings_bytes < RINGS_NEEDED || !reachable || !aligned {
            return None;
        }
        let regs = Regs(regs);
        let mac =
            mac_from(regs.read(reg::SPADDR1LO), regs.read(reg::SPADDR1HI)).unwrap_or(FALLBACK_MAC);
        let mut nic = Self {
            regs,
            ring: RingMemory { vaddr: rings.vaddr },
            mac,
            client_mac: None,
            control: (regs.read(reg::NWCTRL) & NWCTRL_MDIO_ENABLE)
                | NWCTRL_RX_ENABLE
                | NWCTRL_TX_ENABLE,
            rx: RxRing::new(),
            tx: TxRing::new(),
        };
        // Below 4 GiB (checked above).
        nic.start(rings.paddr as u32);
        Some(nic)
    }

    /// Stops the card, clears what firmware may have left in it, sets it up with its rings
    /// at `rings_paddr` and starts it.
    fn start(&mut self, rings_paddr: u32) {
        let regs = self.regs;
        let mdio = self.control & NWCTRL_MDIO_ENABLE;
        // Receiver and transmitter off (the ring registers may only change then), the
        // statistics zeroed.
        regs.write(reg::NWCTRL, mdio);
        regs.write(reg::NWCTRL, mdio | NWCTRL_CLEAR_STATS);
        let queues = regs.read(reg::DESCONF6);
        regs.write(reg::IDR, u32::MAX);
        for queue in extra_queues(queues) {
            regs.write(reg::Q1_IDR + 4 * (queue - 1), u32::MAX);
        }
        // Interrupt status: read (clear-on-read GEMs) and written back (write-1-to-clear
        // ones); the two status registers are write-1-to-clear.
        let status = regs.read(reg::ISR);
        regs.write(reg::ISR, status);
        for queue in extra_queues(queues) {
            let offset = reg::Q1_ISR + 4 * (queue - 1);
            let status = regs.read(offset);
            regs.write(offset, status);
        }
        regs.write(reg::TXSTATUS, u32::MAX);
        regs.write(reg::RXSTATUS, u32::MAX);

        self.rx.clear(self.ring);
        self.tx.clear(self.ring);
        self.ring.store(RX_IDLE, RX_USED | RX_WRAP);
        self.ring.store(RX_IDLE + 4, 0);
        self.ring.store(TX_IDLE, 0);
        self.ring.store(TX_IDLE + 4, TX_USED | TX_WRAP);

        // 8-byte descriptors with 32-bit addresses, little-endian data and descriptors, no
        // checksum offload (the network stack computes checksums).
        regs.write(
            reg::DMACFG,
            ((RX_BUFFER_BYTES / 64) << DMACFG_RX_BUF_SHIFT)
                | DMACFG_TX_PBUF_FULL
                | DMACFG_RX_PBUF_FULL
                | DMACFG_BURST_16,
        );
        // Frames to this card's address and broadcasts, FCS removed, at the start of each
        // buffer; no promiscuity, hashes, jumbo frames or receive checksum offload.
        let config = regs.read(reg::NWCFG) & NWCFG_LINK;
        regs.write(
            reg::NWCFG,
            config
                | (bus_width(regs.read(reg::DESCONF1)) << NWCFG_BUS_WIDTH_SHIFT)
                | NWCFG_FCS_REMOVE
                | NWCFG_RX_1536
                | NWCFG_NO_PAUSE_COPY,
        );
        regs.write(reg::HASHLO, 0);
        regs.write(reg::HASHHI, 0);
        // Filters 2 to 4 off (writing the lower half does it) until the client's address is
        // known; filter 1 holds the card's, on once its upper half is written (QEMU matches
        // no unicast frame until then, whatever it preset).
        for filter in 1..4 {
            regs.write(reg::SPADDR1LO + filter * reg::SPADDR_STRIDE, 0);
        }
        let (low, high) = filter_words(self.mac);
        regs.write(reg::SPADDR1LO, low);
        regs.write(reg::SPADDR1HI, high);
        // No screener steers a frame away from queue 0.
        let screeners = regs.read(reg::DESCONF8);
        let type1 = ((screeners >> 24) & 0xFF).min(MAX_SCREENERS) as usize;
        let type2 = ((screeners >> 16) & 0xFF).min(MAX_SCREENERS) as usize;
        for screener in 0..type1 {
            regs.write(reg::SCREEN1 + 4 * screener, 0);
        }
        for screener in 0..type2 {
            regs.write(reg::SCREEN2 + 4 * screener, 0);
        }

        regs.write(reg::RXQBASE, rings_paddr + RX_RING as u32);
        regs.write(reg::TXQBASE, rings_paddr + TX_RING as u32);
        regs.write(reg::RXQBASE_HIGH, 0);
        regs.write(reg::TXQBASE_HIGH, 0);
        for queue in extra_queues(queues) {
            regs.write(
                reg::Q1_RXQBASE + 4 * (queue - 1),
                rings_paddr + RX_IDLE as u32,
            );
            regs.write(
                reg::Q1_TXQBASE + 4 * (queue - 1),
                rings_paddr + TX_IDLE as u32,
            );
        }

        // The rings are written before the card starts reading them.
        barrier::before_kick();
        regs.write(reg::IER, INTERRUPTS);
        regs.write(reg::NWCTRL, self.control);
    }

    /// Tells the card to look at its rings: receive (it reads its next receive descriptor
    /// again) and, if `send`, transmit.
    fn kick(&self, send: bool) {
        barrier::before_kick();
        let start = if send { NWCTRL_TX_START } else { 0 };
        self.regs.write(reg::NWCTRL, self.control | start);
    }

    /// Takes the source address of the frame in `buffer` (at least an Ethernet header) as
    /// the client's, if it is a station's other than the card's: the second filter gets it,
    /// so frames to it come in. A change of address moves the filter (frames to the old one
    /// no longer come in).
    fn learn_source(&mut self, buffer: &Buffer) {
        let Some(source) = buffer.source_station() else {
            return;
        };
        if source == self.mac || self.client_mac == Some(source) {
            return;
        }
        self.client_mac = Some(source);
        let (low, high) = filter_words(source);
        // The lower half turns the filter off, the upper half on again.
        self.regs.write(reg::SPADDR2LO, low);
        self.regs.write(reg::SPADDR2HI, high);
    }

    /// The 32-bit physical address of the frame in `buffer`, if the card can reach `len`
    /// bytes from there and the address is aligned for a receive buffer.
    fn frame_address(buffer: &Buffer, len: u32) -> Option<u32> {
        let paddr = buffer.frame_paddr();
        let end = paddr.checked_add(u64::from(len))?;
        (end <= 1 << 32 && paddr.is_multiple_of(RX_BUFFER_ALIGN)).then_some(paddr as u32)
    }
}

impl Nic for GemNic {
    // The ZynqMP's GEM does not snoop the caches (QEMU's does not need to).
    const COHERENT: bool = false;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ack_interrupt(&mut self) {
        let status = self.regs.read(reg::ISR);
        self.regs.write(reg::ISR, status);
        // The card stopped with work waiting: it looked at a slot before it was handed
        // over. Telling it to look again when it has nothing to do would only make it
        // report the same again.
        let receive = status & INT_RX_USED != 0 && self.rx.card_has_empty(self.ring);
        let send = status & INT_TX_USED != 0 && self.tx.card_has_unsent(self.ring);
        if receive || send {
            self.kick(send);
        }
    }

    fn rx_room(&self) -> bool {
        self.rx.has_room()
    }

    fn rx_post(&mut self, tag: u64, buffer: Buffer) -> bool {
        let Some(paddr) = Self::frame_address(&buffer, RX_BUFFER_BYTES) else {
            return false;
        };
        match self.rx.post(self.ring, tag, paddr) {
            Some(looked) => {
                if looked {
                    self.kick(false);
                }
                true
            }
            None => false,
        }
    }

    fn rx_take(&mut self) -> Option<(u64, u32)> {
        self.rx.take(self.ring)
    }

    fn tx_room(&self) -> bool {
        self.tx.has_room()
    }

    fn tx_post(&mut self, tag: u64, buffer: Buffer, len: u32) -> bool {
        if !(MIN_FRAME..=MAX_TX_FRAME).contains(&len) {
            return false;
        }
        let Some(paddr) = Self::frame_address(&buffer, len) else {
            return false;
        };
        if !self.tx.has_room() {
            return false;
        }
        self.learn_source(&buffer);
        if !self.tx.post(self.ring, tag, paddr, len) {
            return false;
        }
        self.kick(true);
        true
    }

    fn tx_take(&mut self) -> Option<u64> {
        self.tx.take(self.ring)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;

    use super::*;
    use crate::NET_BUF_SIZE;

    /// Memory standing in for the register page and the rings region.
    #[repr(C, align(64))]
    struct Memory {
        /// The register page.
        regs: [u32; 0x400],
        /// The rings region.
        rings: [u32; 0x1000],
    }

    /// A card that never moves by itself, and a transmit data region: memory reached only
    /// through raw pointers (the driver holds pointers into it too). The tests play the
    /// card's part.
    struct Fake {
        /// The registers and rings.
        memory: *mut Memory,
        /// The data region's buffers.
        data: *mut [u64],
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            // SAFETY: from `Box::into_raw` in `Fake::new`, dropped once.
            drop(unsafe { Box::from_raw(self.memory) });
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(self.data) });
        }
    }

    /// Where the fake rings are "physically".
    const RINGS_PADDR: u64 = 0x7000_0000;
    /// Where the fake data region is.
    const DATA_PADDR: u64 = 0x7100_0000;
    /// QEMU's default MAC address, 52:54:00:12:34:56, as it presets SPADDR1.
    const QEMU_MAC: (u32, u32) = (0x1200_5452, 0x0000_5634);

    impl Fake {
        /// Fresh memory with registers as QEMU's ZynqMP GEM has them after reset, and the
        /// rings full of garbage.
        fn new() -> Self {
            let data = std::vec![0u64; SLOTS * NET_BUF_SIZE as usize / 8].into_boxed_slice();
            let fake = Self {
                memory: Box::into_raw(Box::new(Memory {
                    regs: [0; 0x400],
                    rings: [0xA5A5_A5A5; 0x1000],
                })),
                data: Box::into_raw(data),
            };
            fake.set_reg(reg::NWCFG, 0x0008_0000);
            fake.set_reg(reg::DMACFG, 0x4002_0784);
            fake.set_reg(reg::SPADDR1LO, QEMU_MAC.0);
            fake.set_reg(reg::SPADDR1HI, QEMU_MAC.1);
            fake.set_reg(reg::DESCONF1, 0x02D0_0111);
            fake.set_reg(reg::DESCONF6, (1 << 23) | (1 << 1));
            fake
        }

        /// The fake register at `offset`.
        fn reg_ptr(&self, offset: usize) -> *mut u32 {
            assert!(offset < 0x1000 && offset.is_multiple_of(4));
            // SAFETY: inside the allocation.
            unsafe { (&raw mut (*self.memory).regs).cast::<u32>().add(offset / 4) }
        }

        /// The fake rings' word at byte `offset`.
        fn ring_ptr(&self, offset: usize) -> *mut u32 {
            assert!(offset < 0x4000 && offset.is_multiple_of(4));
            // SAFETY: inside the allocation.
            unsafe {
                (&raw mut (*self.memory).rings)
                    .cast::<u32>()
                    .add(offset / 4)
            }
        }

        /// Reads a fake register.
        fn reg(&self, offset: usize) -> u32 {
            // SAFETY: inside the allocation, aligned.
            unsafe { self.reg_ptr(offset).read_volatile() }
        }

        /// Writes a fake register.
        fn set_reg(&self, offset: usize, value: u32) {
            // SAFETY: as in `reg`.
            unsafe { self.reg_ptr(offset).write_volatile(value) }
        }

        /// Reads a word of the rings.
        fn word(&self, offset: usize) -> u32 {
            // SAFETY: inside the allocation, aligned.
            unsafe { self.ring_ptr(offset).read_volatile() }
        }

        /// Writes a word of the rings.
        fn set_word(&self, offset: usize, value: u32) {
            // SAFETY: as in `word`.
            unsafe { self.ring_ptr(offset).write_volatile(value) }
        }

        /// The rings region as the driver sees it.
        fn rings(&self) -> Region {
            Region {
                vaddr: self.ring_ptr(0) as usize,
                paddr: RINGS_PADDR,
            }
        }

        /// Starts a driver on this memory.
        fn start(&self) -> GemNic {
            let regs = NonNull::new(self.reg_ptr(0).cast()).expect("allocated");
            // SAFETY: both are this test's memory, reached only through raw pointers.
            unsafe { GemNic::new(regs, self.rings(), 0x4000) }.expect("the rings fit")
        }

        /// Plays the card: fills receive `slot` with a frame whose word 1 is `status`.
        fn receive(&self, slot: usize, status: u32) {
            self.set_word(RxRing::word1(slot), status);
            let word0 = self.word(RxRing::word0(slot));
            self.set_word(RxRing::word0(slot), word0 | RX_USED);
        }

        /// Plays the card: marks transmit `slot` sent.
        fn send(&self, slot: usize) {
            let word1 = self.word(TxRing::word1(slot));
            self.set_word(TxRing::word1(slot), word1 | TX_USED);
        }

        /// Whether the driver wrote NWCTRL since the last call (with TXSTART if `Some(true)`).
        fn kicked(&self) -> Option<bool> {
            let control = self.reg(reg::NWCTRL);
            self.set_reg(reg::NWCTRL, 0);
            (control != 0).then_some(control & NWCTRL_TX_START != 0)
        }
    }

    impl Fake {
        /// Buffer `index` of the data region.
        fn buffer(&self, index: u64) -> Buffer {
            let offset = index as usize * NET_BUF_SIZE as usize;
            assert!(offset < self.data.len() * 8);
            Buffer {
                vaddr: self.data.cast::<u8>() as usize + offset,
                paddr: DATA_PADDR + offset as u64,
            }
        }

        /// Writes `frame` into buffer `index`, at the headroom.
        fn write_frame(&self, index: u64, frame: &[u8]) {
            let at = self.buffer(index).frame_vaddr() as *mut u8;
            for (i, byte) in frame.iter().enumerate() {
                // SAFETY: inside the buffer (frames here are short).
                unsafe { at.add(i).write_volatile(*byte) }
            }
        }
    }

    /// The frame address of buffer `index`, as the card gets it.
    fn frame(index: u64) -> u32 {
        (DATA_PADDR + HEADROOM as u64 + index * u64::from(NET_BUF_SIZE)) as u32
    }

    /// A whole received frame of `len` bytes, as the card reports it.
    const fn whole(len: u32) -> u32 {
        RX_START | RX_END | len
    }

    #[test]
    fn start_programs_the_card_and_both_queues() {
        let fake = Fake::new();
        fake.set_reg(reg::NWCTRL, NWCTRL_MDIO_ENABLE);
        let nic = fake.start();
        assert_eq!(nic.mac(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(fake.reg(reg::SPADDR1LO), QEMU_MAC.0);
        assert_eq!(fake.reg(reg::SPADDR1HI), QEMU_MAC.1);
        assert_eq!(
            fake.reg(reg::NWCTRL),
            NWCTRL_MDIO_ENABLE | NWCTRL_RX_ENABLE | NWCTRL_TX_ENABLE
        );
        // 32-bit descriptors, 1,984-byte receive buffers.
        let dmacfg = fake.reg(reg::DMACFG);
        assert_eq!(dmacfg & (0b111 << 28), 0);
        assert_eq!((dmacfg >> 16) & 0xFF, 31);
        let nwcfg = fake.reg(reg::NWCFG);
        assert_eq!(nwcfg & NWCFG_MDC_DIVISOR, 0x0008_0000);
        assert_eq!(nwcfg & (0b11 << 14), 0, "no receive buffer offset");
        assert_ne!(nwcfg & NWCFG_FCS_REMOVE, 0);
        assert_eq!(
            nwcfg & 0xF0,
            0,
            "no promiscuity, broadcasts taken, no hashes"
        );
        assert_eq!(fake.reg(reg::IER), INTERRUPTS);
        assert_eq!(fake.reg(reg::RXQBASE), RINGS_PADDR as u32);
        assert_eq!(
            fake.reg(reg::TXQBASE),
            (RINGS_PADDR as u32) + TX_RING as u32
        );
        assert_eq!(
            fake.reg(reg::Q1_RXQBASE),
            (RINGS_PADDR as u32) + RX_IDLE as u32
        );
        assert_eq!(
            fake.reg(reg::Q1_TXQBASE),
            (RINGS_PADDR as u32) + TX_IDLE as u32
        );
        assert_eq!(fake.reg(reg::Q1_RXQBASE + 4), 0, "queue 2 does not exist");
        assert_eq!(fake.reg(reg::Q1_IDR), u32::MAX);
        assert_eq!(fake.word(RX_IDLE), RX_USED | RX_WRAP);
        assert_eq!(fake.word(TX_IDLE + 4), TX_USED | TX_WRAP);
        for slot in 0..SLOTS {
            let last = slot == SLOTS - 1;
            assert_eq!(
                fake.word(RxRing::word0(slot)),
                RX_USED | if last { RX_WRAP } else { 0 }
            );
            assert_eq!(
                fake.word(TxRing::word1(slot)),
                TX_USED | if last { TX_WRAP } else { 0 }
            );
        }
    }

    #[test]
    fn a_missing_or_group_address_gives_the_fallback() {
        let fake = Fake::new();
        fake.set_reg(reg::SPADDR1LO, 0);
        fake.set_reg(reg::SPADDR1HI, 0);
        assert_eq!(fake.start().mac(), FALLBACK_MAC);
        assert_eq!(fake.reg(reg::SPADDR1LO), 0x0035_0a02);
        assert_eq!(mac_from(0x0000_0001, 0), None);
        assert_eq!(mac_from(0x0403_0202, 0x0605), Some([2, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn rings_the_card_cannot_reach_are_refused() {
        let fake = Fake::new();
        let regs = NonNull::new(fake.reg_ptr(0).cast()).expect("allocated");
        let high = Region {
            paddr: (1 << 32) - 0x1000,
            ..fake.rings()
        };
        let misaligned = Region {
            paddr: RINGS_PADDR + 8,
            ..fake.rings()
        };
        // SAFETY: this test's memory (nothing is written: the checks come first).
        unsafe {
            assert!(GemNic::new(regs, high, 0x4000).is_none());
            assert!(GemNic::new(regs, misaligned, 0x4000).is_none());
            assert!(GemNic::new(regs, fake.rings(), RINGS_NEEDED - 8).is_none());
        }
    }

    #[test]
    fn received_frames_come_back_with_their_tags_in_order() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.kicked();
        assert!(nic.rx_post(10, fake.buffer(1)));
        assert_eq!(fake.kicked(), Some(false), "the card may have read slot 0");
        assert!(nic.rx_post(20, fake.buffer(2)));
        assert_eq!(fake.kicked(), None, "slot 0 is still empty");
        assert_eq!(fake.word(RxRing::word0(0)), frame(1));
        assert_eq!(fake.word(RxRing::word1(0)), 0);
        assert_eq!(nic.rx_take(), None);

        fake.receive(0, whole(60));
        assert_eq!(nic.rx_take(), Some((10, 60)));
        assert_eq!(nic.rx_take(), None);
        fake.receive(1, whole(1514));
        assert!(nic.rx_post(30, fake.buffer(3)));
        assert_eq!(fake.kicked(), Some(false), "the card may have read slot 2");
        assert_eq!(nic.rx_take(), Some((20, 1514)));
        assert_eq!(nic.rx_take(), None);
    }

    #[test]
    fn what_the_card_reports_is_checked() {
        assert_eq!(received_length(whole(14)), 14);
        assert_eq!(received_length(whole(RX_BUFFER_BYTES)), RX_BUFFER_BYTES);
        assert_eq!(received_length(whole(RX_BUFFER_BYTES + 1)), 0);
        assert_eq!(received_length(whole(RX_LENGTH)), 0);
        assert_eq!(received_length(whole(13)), 0);
        assert_eq!(received_length(RX_START | 100), 0, "the frame goes on");
        assert_eq!(received_length(RX_END | 100), 0, "the frame started before");

        let fake = Fake::new();
        let mut nic = fake.start();
        assert!(nic.rx_post(10, fake.buffer(1)));
        // Word 0 written back, word 1 not yet.
        let word0 = fake.word(RxRing::word0(0));
        fake.set_word(RxRing::word0(0), word0 | RX_USED);
        assert_eq!(nic.rx_take(), None);
        fake.set_word(RxRing::word1(0), RX_START | 3000);
        assert_eq!(nic.rx_take(), Some((10, 0)));
    }

    #[test]
    fn the_receive_ring_fills_and_wraps() {
        let fake = Fake::new();
        let mut nic = fake.start();
        for index in 0..SLOTS as u64 {
            assert!(nic.rx_room());
            assert!(nic.rx_post(index * 2048, fake.buffer(index)));
        }
        assert!(!nic.rx_room());
        assert!(!nic.rx_post(1, fake.buffer(0)));
        assert_eq!(
            fake.word(RxRing::word0(SLOTS - 1)),
            frame(SLOTS as u64 - 1) | RX_WRAP
        );
        for slot in 0..SLOTS {
            fake.receive(slot, whole(100));
            assert_eq!(nic.rx_take(), Some((slot as u64 * 2048, 100)));
        }
        assert_eq!(nic.rx_take(), None);
        fake.kicked();
        // Around again: slot 0 follows the filled slot 127.
        assert!(nic.rx_post(7, fake.buffer(7)));
        assert_eq!(fake.kicked(), Some(false));
        assert_eq!(fake.word(RxRing::word0(0)), frame(7));
        fake.receive(0, whole(64));
        assert_eq!(nic.rx_take(), Some((7, 64)));
    }

    #[test]
    fn sent_frames_come_back_with_their_tags_in_order() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.kicked();
        assert!(nic.tx_post(5, fake.buffer(5), 60));
        assert_eq!(fake.kicked(), Some(true));
        assert!(nic.tx_post(6, fake.buffer(6), 1514));
        assert_eq!(fake.kicked(), Some(true));
        assert_eq!(fake.word(TxRing::word0(0)), frame(5));
        assert_eq!(fake.word(TxRing::word1(0)), 60 | TX_LAST);
        assert_eq!(fake.word(TxRing::word1(1)), 1514 | TX_LAST);
        assert_eq!(nic.tx_take(), None);
        fake.send(0);
        assert_eq!(nic.tx_take(), Some(5));
        assert_eq!(nic.tx_take(), None);
        fake.send(1);
        assert_eq!(nic.tx_take(), Some(6));
        assert_eq!(nic.tx_take(), None);
    }

    #[test]
    fn the_clients_source_address_is_let_in() {
        let fake = Fake::new();
        let mut nic = fake.start();
        let client = [0x02, 0xa7, 0x01, 0x00, 0x00, 0x01];
        let mut header = [0xFFu8; 14];
        header[6..12].copy_from_slice(&client);
        fake.write_frame(1, &header);
        assert_eq!(fake.reg(reg::SPADDR2LO), 0);
        assert!(nic.tx_post(1, fake.buffer(1), 60));
        assert_eq!(fake.reg(reg::SPADDR2LO), 0x0001_a702);
        assert_eq!(fake.reg(reg::SPADDR2HI), 0x0000_0100);
        // Written once only.
        fake.set_reg(reg::SPADDR2HI, 0);
        assert!(nic.tx_post(2, fake.buffer(1), 60));
        assert_eq!(fake.reg(reg::SPADDR2HI), 0);
        // Neither the card's own address nor a group address moves the filter.
        header[6..12].copy_from_slice(&nic.mac());
        fake.write_frame(2, &header);
        header[6] = 0x03;
        fake.write_frame(3, &header);
        assert!(nic.tx_post(3, fake.buffer(2), 60));
        assert!(nic.tx_post(4, fake.buffer(3), 60));
        assert_eq!(fake.reg(reg::SPADDR2LO), 0x0001_a702);
        // A new address does.
        header[6..12].copy_from_slice(&client);
        header[6] = 0x06;
        fake.write_frame(4, &header);
        assert!(nic.tx_post(5, fake.buffer(4), 60));
        assert_eq!(fake.reg(reg::SPADDR2LO), 0x0001_a706);
        assert_eq!(fake.reg(reg::SPADDR2HI), 0x0000_0100);
    }

    #[test]
    fn frames_the_card_cannot_send_are_refused() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.kicked();
        assert!(!nic.tx_post(1, fake.buffer(1), 13));
        assert!(!nic.tx_post(1, fake.buffer(1), MAX_TX_FRAME + 1));
        let high = Buffer {
            vaddr: 0x1000_0000,
            paddr: 1 << 32,
        };
        assert!(!nic.tx_post(1, high, 60));
        assert!(!nic.rx_post(1, high));
        assert_eq!(fake.kicked(), None);
        assert_eq!(nic.tx_take(), None);
    }

    #[test]
    fn the_transmit_ring_fills_and_wraps() {
        let fake = Fake::new();
        let mut nic = fake.start();
        for index in 0..SLOTS as u64 {
            assert!(nic.tx_room());
            assert!(nic.tx_post(index, fake.buffer(index), 100));
        }
        assert!(!nic.tx_room());
        assert!(!nic.tx_post(99, fake.buffer(0), 100));
        assert_eq!(fake.word(TxRing::word1(SLOTS - 1)), 100 | TX_LAST | TX_WRAP);
        for slot in 0..SLOTS {
            fake.send(slot);
            assert_eq!(nic.tx_take(), Some(slot as u64));
        }
        assert!(nic.tx_post(200, fake.buffer(3), 42));
        assert_eq!(fake.word(TxRing::word1(0)), 42 | TX_LAST);
        fake.send(0);
        assert_eq!(nic.tx_take(), Some(200));
    }

    #[test]
    fn a_stopped_card_is_restarted_only_with_work_waiting() {
        let fake = Fake::new();
        let mut nic = fake.start();
        // Nothing waiting: no restart, whatever the card reports.
        fake.kicked();
        fake.set_reg(reg::ISR, INT_RX_USED | INT_TX_USED | INT_TX_COMPLETE);
        nic.ack_interrupt();
        assert_eq!(fake.kicked(), None);

        assert!(nic.tx_post(1, fake.buffer(1), 60));
        assert!(nic.rx_post(2, fake.buffer(2)));
        fake.kicked();
        fake.set_reg(reg::ISR, INT_TX_USED);
        nic.ack_interrupt();
        assert_eq!(fake.kicked(), Some(true), "a frame waits to be sent");
        fake.set_reg(reg::ISR, INT_RX_USED);
        nic.ack_interrupt();
        assert_eq!(fake.kicked(), Some(false), "the card has an empty buffer");

        fake.send(0);
        fake.receive(0, whole(60));
        fake.set_reg(reg::ISR, INT_RX_USED | INT_TX_USED);
        nic.ack_interrupt();
        assert_eq!(fake.kicked(), None, "all done: nothing to restart");
        assert_eq!(nic.tx_take(), Some(1));
        assert_eq!(nic.rx_take(), Some((2, 60)));
    }

    #[test]
    fn the_bus_width_follows_the_design() {
        assert_eq!(bus_width(0x02D0_0111), 0);
        assert_eq!(bus_width(2 << 25), 1);
        assert_eq!(bus_width(4 << 25), 2);
        assert_eq!(
            extra_queues(0x0080_0006).collect::<std::vec::Vec<_>>(),
            [1, 2]
        );
    }

    proptest::proptest! {
        /// A hostile card writes anything anywhere in the rings between the driver's
        /// steps: the driver never panics, hands back only tags it holds (each once), and
        /// never a length beyond a buffer's frame.
        #[test]
        fn a_hostile_card_gets_back_only_what_it_was_given(
            writes in proptest::collection::vec((0usize..0x1000, proptest::num::u32::ANY), 0..400),
            steps in proptest::collection::vec(0u8..4, 1..200),
        ) {
            let fake = Fake::new();
            let mut nic = fake.start();
            let mut rx_held = std::collections::BTreeSet::new();
            let mut tx_held = std::collections::BTreeSet::new();
            let mut next = 0u64;
            let mut writes = writes.into_iter();
            for step in steps {
                for (word, value) in writes.by_ref().take(3) {
                    fake.set_word(word * 4, value);
                }
                match step {
                    0 => {
                        if nic.rx_room() && nic.rx_post(next, fake.buffer(next % 128)) {
                            rx_held.insert(next);
                        }
                        next += 1;
                    }
                    1 => {
                        if nic.tx_room() && nic.tx_post(next, fake.buffer(next % 128), 60) {
                            tx_held.insert(next);
                        }
                        next += 1;
                    }
                    2 => {
                        if let Some((tag, len)) = nic.rx_take() {
                            proptest::prop_assert!(rx_held.remove(&tag), "rx tag {} not held", tag);
                            proptest::prop_assert!(len <= MAX_FRAME);
                        }
                    }
                    _ => {
                        if let Some(tag) = nic.tx_take() {
                            proptest::prop_assert!(tx_held.remove(&tag), "tx tag {} not held", tag);
                        }
                    }
                }
            }
        }
    }
}
