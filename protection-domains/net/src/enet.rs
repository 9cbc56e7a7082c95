//! The NXP ENET of the i.MX 8M Plus (`imx8mp_evk`'s ENET1; QEMU's `imx.enet`).
//!
//! The card moves frames through two rings of buffer descriptors in the driver's private,
//! uncached `net_rings` region: a receive ring and a transmit ring of [`SLOTS`] descriptors
//! each. A descriptor names one buffer of the data regions the driver shares with its client
//! (the frame at [`HEADROOM`](crate::HEADROOM) in it), so frames go to and from the card
//! without a copy; the tag of the buffer in each slot is kept beside the ring.
//!
//! Descriptors are the ENET's legacy 8-byte ones (ECR.EN1588 clear): a 16-bit length, a
//! 16-bit status word and the buffer's 32-bit physical address. Both QEMU's `imx.enet` and
//! the real ENET accept them, and the driver needs nothing the 32-byte enhanced ones add
//! (timestamps, checksum offload); QEMU's enhanced mode would also raise the frame
//! interrupts only for descriptors that ask for them. The real ENET reads descriptors in the
//! CPU's (little-endian) byte order only with ECR.DBSWP set, which its manual asks for after
//! every reset; QEMU reads them little-endian whatever ECR says.
//!
//! Ring memory is uncached (Device memory), so it is accessed only by naturally aligned
//! volatile 16- and 32-bit reads and writes, and only barriers order them against the card:
//! a descriptor's address and length are written before its status word hands it over, the
//! status word before the card is told to look (RDAR, TDAR), and a status word the card gave
//! back is read before the rest.
//!
//! Everything the card writes is checked before it is believed: a received length outside
//! what a buffer holds, a frame the card flagged broken or one spread over more than one
//! buffer is handed on with length 0.

use core::ptr::NonNull;

use crate::MAX_FRAME;
use crate::barrier;
use crate::driver::{Buffer, Nic, Region, is_station};
use crate::regs::Regs;
use crate::slots::{SLOTS, Slots};

/// The card's registers the driver uses, by their offset in the register block. All of them
/// lie in its first 4 KiB page, the part the description maps.
mod reg {
    /// Interrupt events (write 1 to clear).
    pub const EIR: usize = 0x004;
    /// Interrupt mask: the events that raise the interrupt line.
    pub const EIMR: usize = 0x008;
    /// Receive descriptors active: written after receive descriptors were made empty.
    pub const RDAR: usize = 0x010;
    /// Transmit descriptors active: written after transmit descriptors were made ready.
    pub const TDAR: usize = 0x014;
    /// Ethernet control: reset, enable, descriptor format and byte order, link speed.
    pub const ECR: usize = 0x024;
    /// Receive control: interface mode, loopback, the longest frame.
    pub const RCR: usize = 0x084;
    /// Transmit control: duplex.
    pub const TCR: usize = 0x0C4;
    /// The MAC address's first four bytes (the first in the top byte).
    pub const PALR: usize = 0x0E4;
    /// The MAC address's last two bytes (in the top half).
    pub const PAUR: usize = 0x0E8;
    /// Individual (unicast) address hash, upper half.
    pub const IAUR: usize = 0x118;
    /// Individual address hash, lower half.
    pub const IALR: usize = 0x11C;
    /// Group (multicast) address hash, upper half.
    pub const GAUR: usize = 0x120;
    /// Group address hash, lower half.
    pub const GALR: usize = 0x124;
    /// Transmit FIFO watermark.
    pub const TFWR: usize = 0x144;
    /// The receive ring's physical address.
    pub const RDSR: usize = 0x180;
    /// The transmit ring's physical address.
    pub const TDSR: usize = 0x184;
    /// Bytes the card may write into one receive buffer.
    pub const MRBR: usize = 0x188;
    /// The length beyond which received frames are truncated.
    pub const FTRL: usize = 0x1B0;
    /// Transmit accelerator functions (checksums, SHIFT16).
    pub const TACC: usize = 0x1C0;
    /// Receive accelerator functions (checksums, padding removal, SHIFT16).
    pub const RACC: usize = 0x1C4;
    /// The highest offset used.
    pub const LAST: usize = RACC;
}

/// ECR: resets the card (clears itself when done).
const ECR_RESET: u32 = 1 << 0;
/// ECR: enables the MAC and its DMA.
const ECR_ETHEREN: u32 = 1 << 1;
/// ECR: 1 Gb/s (the real card's link speed; QEMU ignores it).
const ECR_SPEED: u32 = 1 << 5;
/// ECR: descriptors in little-endian byte order (the real card; QEMU ignores it).
const ECR_DBSWP: u32 = 1 << 8;

/// EIR/EIMR: a whole frame was sent (its last descriptor handed back).
const INT_TXF: u32 = 1 << 27;
/// EIR/EIMR: a whole frame was received.
const INT_RXF: u32 = 1 << 25;

/// RDAR/TDAR: the value that tells the card to look at its ring.
const DESCRIPTORS_ACTIVE: u32 = 1 << 24;

/// RCR: loopback (set after reset; must be off).
const RCR_LOOP: u32 = 1 << 0;
/// RCR: MII or RMII/RGMII interface (not 7-wire); the manual says always set.
const RCR_MII_MODE: u32 = 1 << 2;
/// RCR: RGMII interface.
const RCR_RGMII_EN: u32 = 1 << 6;
/// RCR: RMII interface.
const RCR_RMII_MODE: u32 = 1 << 8;
/// RCR: RMII at 10 Mb/s.
const RCR_RMII_10T: u32 = 1 << 9;
/// RCR: the interface bits firmware chose for the board's PHY.
const RCR_INTERFACE: u32 = RCR_RGMII_EN | RCR_RMII_MODE | RCR_RMII_10T;
/// RCR: where the longest accepted frame (with its FCS) goes.
const RCR_MAX_FL_SHIFT: u32 = 16;

/// TCR: full duplex.
const TCR_FDEN: u32 = 1 << 2;

/// TFWR: start sending only once the whole frame is in the FIFO (no underruns).
const TFWR_STRFWD: u32 = 1 << 8;

/// Descriptor status: the card owns it (receive: empty; transmit: ready). The same bit for
/// both directions.
const BD_OWNED: u16 = 1 << 15;
/// Descriptor status: the last descriptor of the ring (the card goes back to the first).
const BD_WRAP: u16 = 1 << 13;
/// Descriptor status: the last buffer of a frame.
const BD_LAST: u16 = 1 << 11;
/// Transmit status: the card appends the frame check sequence.
const BD_TX_CRC: u16 = 1 << 10;
/// Receive status: longer than RCR's limit.
const BD_RX_LONG: u16 = 1 << 5;
/// Receive status: not a whole number of bytes.
const BD_RX_NON_OCTET: u16 = 1 << 4;
/// Receive status: bad frame check sequence.
const BD_RX_CRC: u16 = 1 << 2;
/// Receive status: the FIFO overran.
const BD_RX_OVERRUN: u16 = 1 << 1;
/// Receive status: truncated.
const BD_RX_TRUNCATED: u16 = 1 << 0;
/// Receive status: any of the errors (meaningful in a frame's last descriptor).
const BD_RX_ERRORS: u16 =
    BD_RX_LONG | BD_RX_NON_OCTET | BD_RX_CRC | BD_RX_OVERRUN | BD_RX_TRUNCATED;

/// Bytes of a (legacy) buffer descriptor.
const DESC_BYTES: usize = 8;
/// Where in `net_rings` the receive ring starts.
const RX_RING: usize = 0;
/// Where the transmit ring starts.
const TX_RING: usize = RX_RING + SLOTS * DESC_BYTES;
/// Bytes of `net_rings` the rings take.
const RINGS_NEEDED: usize = TX_RING + SLOTS * DESC_BYTES;
/// The rings' alignment: the card needs 8 bytes; its manual recommends 64 (one burst).
const RING_ALIGN: usize = 64;

/// Bytes the card may write into a receive buffer (MRBR): everything after the headroom.
/// The register holds a multiple of 16 up to 0x3FF0.
const RX_BUFFER_BYTES: u32 = MAX_FRAME;
/// The frame check sequence the card leaves at the end of every received frame (QEMU
/// always does: it keeps no RCR.CRCFWD, so the real card is not told to strip it either).
const FCS: u32 = 4;
/// The longest frame accepted, with its FCS (RCR.MAX_FL): a full frame with a VLAN tag.
const MAX_FRAME_LENGTH: u32 = 1522;
/// The shortest frame handed on: an Ethernet header and the FCS.
const MIN_FRAME_LENGTH: u32 = 14 + FCS;

/// Reads of ECR to wait for the reset to finish (the real card takes a few clock cycles;
/// QEMU none).
const RESET_POLLS: u32 = 100_000;
/// The MAC address used when neither firmware nor the card's reset left a usable one: locally
/// administered and unicast. (The real board's address is in its OCOTP fuses, which this
/// PD does not map; U-Boot copies it into PALR/PAUR when it brings the card up.)
const FALLBACK_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x1e, 0x8e, 0x01];

const _: () = assert!(reg::LAST + 4 <= 0x1000);
const _: () = assert!(RINGS_NEEDED <= 0x4000);
const _: () = assert!(RX_BUFFER_BYTES.is_multiple_of(16) && RX_BUFFER_BYTES <= 0x3FF0);
const _: () = assert!(MAX_FRAME_LENGTH <= RX_BUFFER_BYTES && MAX_FRAME_LENGTH < 1 << 14);
const _: () = assert!(MAX_FRAME <= u16::MAX as u32);

/// One buffer descriptor, by the driver's address of its first byte in ring memory.
#[derive(Clone, Copy)]
struct Descriptor(usize);

impl Descriptor {
    /// The length: of the frame the card received (in a frame's last descriptor), or of the
    /// frame to send.
    fn length(self) -> u16 {
        // SAFETY: the descriptor lies inside the rings (checked by `EnetNic::start`),
        // 8-byte aligned, mapped into this PD alone; the length is its first half-word.
        u16::from_le(unsafe { (self.0 as *const u16).read_volatile() })
    }

    /// The status word.
    fn status(self) -> u16 {
        // SAFETY: as in `length`; the status is the second half-word.
        u16::from_le(unsafe { ((self.0 + 2) as *const u16).read_volatile() })
    }

    /// Sets the length.
    fn set_length(self, length: u16) {
        // SAFETY: as in `length`.
        unsafe { (self.0 as *mut u16).write_volatile(length.to_le()) }
    }

    /// Sets the status word (handing the descriptor to the card if it sets [`BD_OWNED`]).
    fn set_status(self, status: u16) {
        // SAFETY: as in `status`.
        unsafe { ((self.0 + 2) as *mut u16).write_volatile(status.to_le()) }
    }

    /// Sets the buffer's physical address.
    fn set_address(self, paddr: u32) {
        // SAFETY: as in `length`; the address is the second word.
        unsafe { ((self.0 + 4) as *mut u32).write_volatile(paddr.to_le()) }
    }
}

/// A ring of [`SLOTS`] descriptors and the slots the card holds in it. The card works
/// through the ring in order, so the driver hands it slots and takes them back in the same
/// order.
struct Ring {
    /// The driver's address of the first descriptor.
    base: usize,
    /// The slots the card holds, with their buffers' tags.
    slots: Slots,
}

impl Ring {
    /// An empty ring at `base` (its descriptors are set up by [`Ring::clear`]).
    const fn new(base: usize) -> Self {
        Self {
            base,
            slots: Slots::new(),
        }
    }

    /// The descriptor of `slot` (below [`SLOTS`]).
    fn descriptor(&self, slot: usize) -> Descriptor {
        Descriptor(self.base + (slot % SLOTS) * DESC_BYTES)
    }

    /// The status bits every descriptor of `slot` carries: the wrap bit on the last one.
    const fn wrap(slot: usize) -> u16 {
        if slot == SLOTS - 1 { BD_WRAP } else { 0 }
    }

    /// Makes every descriptor the driver's (neither empty nor ready), with no buffer.
    fn clear(&mut self) {
        for slot in 0..SLOTS {
            let descriptor = self.descriptor(slot);
            descriptor.set_address(0);
            descriptor.set_length(0);
            descriptor.set_status(Self::wrap(slot));
        }
    }

    /// Whether a slot is free.
    fn has_room(&self) -> bool {
        self.slots.has_room()
    }

    /// Hands the card the next slot, with the buffer at `paddr`, `length` and `status`
    /// (which includes [`BD_OWNED`]); the card is told to look afterwards, at `kick`.
    fn post(&mut self, regs: Regs, kick: usize, tag: u64, paddr: u32, length: u16, status: u16) {
        let slot = self.slots.next_post();
        let descriptor = self.descriptor(slot);
        descriptor.set_address(paddr);
        descriptor.set_length(length);
        // The card must see the buffer before the status word that gives it the slot.
        barrier::ring_writes();
        descriptor.set_status(status | Self::wrap(slot));
        self.slots.post(tag);
        // The descriptor must have reached memory before the card looks for it.
        barrier::before_kick();
        regs.write(kick, DESCRIPTORS_ACTIVE);
    }

    /// The oldest slot the card gave back: its tag, status word and length; `None` while the
    /// card still holds it (or holds nothing).
    fn take(&mut self) -> Option<(u64, u16, u16)> {
        let descriptor = self.descriptor(self.slots.oldest()?);
        let status = descriptor.status();
        if status & BD_OWNED != 0 {
            return None;
        }
        // The rest of the descriptor is read after the status word that gave it back.
        barrier::ring_reads();
        let length = descriptor.length();
        Some((self.slots.take(), status, length))
    }
}

/// How the card reaches its PHY: the interface and link settings the reset clears. QEMU
/// ignores all of them (it has no PHY timing); the real board needs the ones firmware chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    /// RCR's interface bits ([`RCR_INTERFACE`]).
    rcr: u32,
    /// ECR's speed bit ([`ECR_SPEED`]).
    ecr: u32,
    /// TCR's duplex bit ([`TCR_FDEN`]).
    tcr: u32,
}

impl Link {
    /// The EVK's ENET1 as its device tree describes it: RGMII to a gigabit PHY, full
    /// duplex. Used when firmware did not set the card up.
    const EVK: Link = Link {
        rcr: RCR_RGMII_EN,
        ecr: ECR_SPEED,
        tcr: TCR_FDEN,
    };

    /// The settings firmware left in the card (U-Boot keeps them when it stops the card,
    /// and sets RCR.MII_MODE whenever it sets it up), or the EVK's if it left none.
    fn from_firmware(rcr: u32, ecr: u32, tcr: u32) -> Link {
        if rcr & RCR_MII_MODE == 0 {
            return Link::EVK;
        }
        Link {
            rcr: rcr & RCR_INTERFACE,
            ecr: ecr & ECR_SPEED,
            tcr: tcr & TCR_FDEN,
        }
    }
}

/// The MAC address in PALR and PAUR, if it is one a card may use (not zero, not multicast).
fn mac_from(palr: u32, paur: u32) -> Option<[u8; 6]> {
    let [a, b, c, d] = palr.to_be_bytes();
    let [e, f, _, _] = paur.to_be_bytes();
    let mac = [a, b, c, d, e, f];
    is_station(mac).then_some(mac)
}

/// The i.MX ENET.
pub struct EnetNic {
    /// The card's registers.
    regs: Regs,
    /// Its MAC address (in PALR/PAUR until the client sends from another).
    mac: [u8; 6],
    /// The station address the client sends from, once it is not the card's: PALR/PAUR hold
    /// it from then on, so that frames to it come in (the real card filters unicast frames
    /// by that one address; QEMU does not filter).
    client_mac: Option<[u8; 6]>,
    /// Empty buffers the card receives into.
    rx: Ring,
    /// Frames the card sends.
    tx: Ring,
    /// Set between a received frame's first and last buffers when it took more than one
    /// (the card should never do this, each buffer holding the longest frame it accepts):
    /// those buffers are handed on empty.
    rx_split: bool,
}

impl EnetNic {
    /// Resets the card and sets it up with its descriptor rings in `rings` (uncached,
    /// `rings_bytes` bytes), its interrupts on; `None` if it cannot (its reset never ends,
    /// or the rings do not fit or lie where the card cannot reach them).
    ///
    /// The MAC address and the link's settings are those firmware left in the card (U-Boot
    /// on the real board; QEMU sets the address from its `-nic` at reset): the reset clears
    /// them on the real card, so they are read before it.
    ///
    /// # Safety
    ///
    /// `regs` must be the card's register block (a page), mapped uncached into this PD
    /// alone, and `rings` a region mapped uncached into this PD alone.
    pub unsafe fn new(regs: NonNull<u8>, rings: Region, rings_bytes: usize) -> Option<Self> {
        let regs = Regs(regs);
        let firmware_mac = mac_from(regs.read(reg::PALR), regs.read(reg::PAUR));
        let link = Link::from_firmware(
            regs.read(reg::RCR),
            regs.read(reg::ECR),
            regs.read(reg::TCR),
        );
        regs.write(reg::ECR, ECR_RESET);
        let mut polls = 0;
        while regs.read(reg::ECR) & ECR_RESET != 0 {
            if polls == RESET_POLLS {
                return None;
            }
            polls += 1;
            core::hint::spin_loop();
        }
        let mac = firmware_mac
            .or_else(|| mac_from(regs.read(reg::PALR), regs.read(reg::PAUR)))
            .unwrap_or(FALLBACK_MAC);
        // SAFETY: the caller's promise about `regs` and `rings`.
        unsafe { Self::start(regs, rings, rings_bytes, mac, link) }
    }

    /// Sets up the card, just out of reset, and starts it: `mac` as its address, the `link`
    /// settings, its rings in `rings`, the frame interrupts on.
    ///
    /// # Safety
    ///
    /// As for [`EnetNic::new`]: `regs` is the card's register page and `rings` a region of
    /// `rings_bytes` bytes, both mapped uncached into this PD alone.
    unsafe fn start(
        regs: Regs,
        rings: Region,
        rings_bytes: usize,
        mac: [u8; 6],
        link: Link,
    ) -> Option<Self> {
        // The card takes 32-bit ring and buffer addresses; the rings must be aligned.
        let reachable = rings
            .paddr
            .checked_add(RINGS_NEEDED as u64)
            .is_some_and(|end| end <= 1 << 32);
        let aligned =
            rings.paddr.is_multiple_of(RING_ALIGN as u64) && rings.vaddr.is_multiple_of(RING_ALIGN);
        if rings_bytes < RINGS_NEEDED || !reachable || !aligned {
            return None;
        }
        regs.write(reg::EIMR, 0);
        regs.write(reg::EIR, u32::MAX);

        let mut rx = Ring::new(rings.vaddr + RX_RING);
        let mut tx = Ring::new(rings.vaddr + TX_RING);
        rx.clear();
        tx.clear();

        let [a, b, c, d, e, f] = mac;
        regs.write(reg::PALR, u32::from_be_bytes([a, b, c, d]));
        regs.write(reg::PAUR, u32::from_be_bytes([e, f, 0, 0]));
        // Only frames to this address and broadcasts are wanted (the real card filters; QEMU
        // hands the guest every frame of its network, which is only ever this card's).
        for hash in [reg::IAUR, reg::IALR, reg::GAUR, reg::GALR] {
            regs.write(hash, 0);
        }
        // RCR.LOOP (set by the reset) goes off with this write.
        regs.write(
            reg::RCR,
            ((MAX_FRAME_LENGTH << RCR_MAX_FL_SHIFT) | RCR_MII_MODE | link.rcr) & !RCR_LOOP,
        );
        regs.write(reg::TCR, link.tcr);
        regs.write(reg::TFWR, TFWR_STRFWD);
        // Frames at the buffers' start, as sent and received: no SHIFT16, no offloads.
        regs.write(reg::RACC, 0);
        regs.write(reg::TACC, 0);
        regs.write(reg::MRBR, RX_BUFFER_BYTES);
        // Frames longer than a buffer are cut to one (the real card; QEMU's legacy mode
        // ignores FTRL and spreads them over more buffers, which `rx_split` handles).
        regs.write(reg::FTRL, RX_BUFFER_BYTES);
        // Fit in 32 bits (checked above).
        regs.write(reg::RDSR, (rings.paddr + RX_RING as u64) as u32);
        regs.write(reg::TDSR, (rings.paddr + TX_RING as u64) as u32);
        // The rings are set up before the card starts reading them.
        barrier::before_kick();
        regs.write(reg::ECR, ECR_ETHEREN | ECR_DBSWP | link.ecr);
        regs.write(reg::EIMR, INT_RXF | INT_TXF);
        Some(Self {
            regs,
            mac,
            rx,
            tx,
            client_mac: None,
            rx_split: false,
        })
    }

    /// The 32-bit physical address of `buffer`'s frame, if the card can reach all of the
    /// buffer from there.
    fn frame_address(buffer: &Buffer) -> Option<u32> {
        let paddr = buffer.frame_paddr();
        let end = paddr.checked_add(u64::from(MAX_FRAME))?;
        (end <= 1 << 32).then_some(paddr as u32)
    }

    /// The length to hand on for a received buffer with `status` and `length` from the card:
    /// the frame without its FCS, or 0 for a broken frame, a piece of a split one, or a
    /// length no buffer holds.
    fn received_length(&mut self, status: u16, length: u16) -> u32 {
        let last = status & BD_LAST != 0;
        if self.rx_split || !last {
            // A piece of a frame spread over buffers: the frame is dropped whole.
            self.rx_split = !last;
            return 0;
        }
        let length = u32::from(length);
        if status & BD_RX_ERRORS != 0 || !(MIN_FRAME_LENGTH..=MAX_FRAME + FCS).contains(&length) {
            return 0;
        }
        length - FCS
    }
}

impl Nic for EnetNic {
    // The real ENET does not snoop the caches (QEMU's does not need to).
    const COHERENT: bool = false;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ack_interrupt(&mut self) {
        // Clears exactly the events seen: one that comes after is kept (and raises the
        // line again once the kernel unmasks it).
        let events = self.regs.read(reg::EIR);
        self.regs.write(reg::EIR, events);
    }

    fn rx_room(&self) -> bool {
        self.rx.has_room()
    }

    fn rx_post(&mut self, tag: u64, buffer: Buffer) -> bool {
        let Some(paddr) = Self::frame_address(&buffer) else {
            return false;
        };
        if !self.rx.has_room() {
            return false;
        }
        self.rx.post(self.regs, reg::RDAR, tag, paddr, 0, BD_OWNED);
        true
    }

    fn rx_take(&mut self) -> Option<(u64, u32)> {
        let (tag, status, length) = self.rx.take()?;
        Some((tag, self.received_length(status, length)))
    }

    fn tx_room(&self) -> bool {
        self.tx.has_room()
    }

    fn tx_post(&mut self, tag: u64, buffer: Buffer, len: u32) -> bool {
        let Some(paddr) = Self::frame_address(&buffer) else {
            return false;
        };
        // The driver passes 14 to MAX_FRAME bytes; anything else is refused, not cut.
        let Ok(length) = u16::try_from(len) else {
            return false;
        };
        if !(14..=MAX_FRAME).contains(&len) || !self.tx.has_room() {
            return false;
        }
        self.learn_source(&buffer);
        // One buffer per frame; the card appends the FCS.
        self.tx.post(
            self.regs,
            reg::TDAR,
            tag,
            paddr,
            length,
            BD_OWNED | BD_LAST | BD_TX_CRC,
        );
        true
    }

    fn tx_take(&mut self) -> Option<u64> {
        self.tx.take().map(|(tag, _, _)| tag)
    }
}

impl EnetNic {
    /// Takes the source address of the frame in `buffer` as the client's, if it is a
    /// station's other than the card's and new: the card's own address becomes it (the
    /// ENET has one unicast address; pause frames go out from it too).
    fn learn_source(&mut self, buffer: &Buffer) {
        let Some(source) = buffer.source_station() else {
            return;
        };
        if source == self.mac || self.client_mac == Some(source) {
            return;
        }
        self.client_mac = Some(source);
        let [a, b, c, d, e, f] = source;
        self.regs.write(reg::PALR, u32::from_be_bytes([a, b, c, d]));
        self.regs.write(reg::PAUR, u32::from_be_bytes([e, f, 0, 0]));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::{HEADROOM, NET_BUF_SIZE};

    /// Memory standing in for the register page and the rings (a card that never moves).
    #[repr(C, align(64))]
    struct Memory {
        regs: [u32; 0x400],
        rings: [u8; 0x4000],
    }

    /// The fake card's memory, reached only through a raw pointer (the driver holds
    /// pointers into it too).
    struct Fake(*mut Memory);

    impl Drop for Fake {
        fn drop(&mut self) {
            // SAFETY: from `Box::into_raw` in `Fake::new`, dropped once.
            drop(unsafe { Box::from_raw(self.0) });
        }
    }

    /// Where the fake rings are "physically".
    const RINGS_PADDR: u64 = 0x4010_0000;
    /// Where the fake data region is.
    const DATA_PADDR: u64 = 0x4100_0000;

    impl Fake {
        fn new() -> Self {
            let memory = Box::new(Memory {
                regs: [0xFFFF_FFFF; 0x400],
                rings: [0xA5; 0x4000],
            });
            Self(Box::into_raw(memory))
        }

        /// The fake register at `offset`.
        fn reg_ptr(&self, offset: usize) -> *mut u32 {
            assert!(offset < 0x1000 && offset.is_multiple_of(4));
            // SAFETY: inside the allocation.
            unsafe { (&raw mut (*self.0).regs).cast::<u32>().add(offset / 4) }
        }

        /// The fake rings' byte at `offset`.
        fn ring_ptr(&self, offset: usize) -> *mut u8 {
            assert!(offset < 0x4000);
            // SAFETY: inside the allocation.
            unsafe { (&raw mut (*self.0).rings).cast::<u8>().add(offset) }
        }

        fn reg(&self, offset: usize) -> u32 {
            // SAFETY: inside the allocation, aligned.
            unsafe { self.reg_ptr(offset).read_volatile() }
        }

        fn set_reg(&self, offset: usize, value: u32) {
            // SAFETY: as in `reg`.
            unsafe { self.reg_ptr(offset).write_volatile(value) }
        }

        fn ring_bytes<const N: usize>(&self, offset: usize) -> [u8; N] {
            // SAFETY: inside the allocation (`ring_ptr` checks the start; the tests read
            // whole descriptors).
            unsafe { self.ring_ptr(offset).cast::<[u8; N]>().read_volatile() }
        }

        fn set_ring_bytes<const N: usize>(&self, offset: usize, bytes: [u8; N]) {
            // SAFETY: as in `ring_bytes`.
            unsafe {
                self.ring_ptr(offset)
                    .cast::<[u8; N]>()
                    .write_volatile(bytes)
            }
        }

        /// Starts a driver on this memory.
        fn start(&self) -> EnetNic {
            let regs = Regs(NonNull::new(self.reg_ptr(0).cast()).expect("allocated"));
            let rings = Region {
                vaddr: self.ring_ptr(0) as usize,
                paddr: RINGS_PADDR,
            };
            // SAFETY: both are this test's memory, reached only through raw pointers.
            unsafe { EnetNic::start(regs, rings, 0x4000, [2, 0, 0, 0, 0, 9], Link::EVK) }
                .expect("the rings fit")
        }

        /// The descriptor at `offset` in the rings: length, status, address.
        fn descriptor(&self, offset: usize) -> (u16, u16, u32) {
            let [a, b, c, d, e, f, g, h] = self.ring_bytes::<8>(offset);
            (
                u16::from_le_bytes([a, b]),
                u16::from_le_bytes([c, d]),
                u32::from_le_bytes([e, f, g, h]),
            )
        }

        /// Plays the card: gives back the descriptor at `offset` with `length` and `status`.
        fn complete(&self, offset: usize, length: u16, status: u16) {
            let (_, old, _) = self.descriptor(offset);
            self.set_ring_bytes(offset, length.to_le_bytes());
            let status = (old & BD_WRAP) | status;
            self.set_ring_bytes(offset + 2, status.to_le_bytes());
        }
    }

    /// Buffer `index` of a data region in this test's memory (zeroed: its frames have no
    /// source address to learn until a test writes one).
    fn buffer(index: u64) -> Buffer {
        use std::sync::OnceLock;
        static DATA: OnceLock<usize> = OnceLock::new();
        let base = *DATA.get_or_init(|| {
            let bytes = 128 * NET_BUF_SIZE as usize;
            std::boxed::Box::leak(std::vec![0u8; bytes].into_boxed_slice()).as_ptr() as usize
        });
        Buffer {
            vaddr: base + (index % 128) as usize * NET_BUF_SIZE as usize,
            paddr: DATA_PADDR + index * u64::from(NET_BUF_SIZE),
        }
    }

    #[test]
    fn the_card_takes_the_address_the_client_sends_from() {
        let fake = Fake::new();
        let mut nic = fake.start();
        let frame = buffer(100);
        let source = [0x02, 0xa7, 0x01, 0x00, 0x00, 0x01];
        for (i, byte) in source.iter().enumerate() {
            // SAFETY: inside the test's data region (`buffer`); no other reference to it.
            unsafe { ((frame.frame_vaddr() + 6 + i) as *mut u8).write_volatile(*byte) };
        }
        assert!(nic.tx_post(7, frame, 60));
        assert_eq!(fake.reg(reg::PALR), 0x02a7_0100);
        assert_eq!(fake.reg(reg::PAUR), 0x0001_0000);
        assert_eq!(
            nic.mac(),
            [2, 0, 0, 0, 0, 9],
            "the card's own address is unchanged"
        );
    }

    #[test]
    fn start_programs_the_card_and_clears_the_rings() {
        let fake = Fake::new();
        let nic = fake.start();
        assert_eq!(nic.mac(), [2, 0, 0, 0, 0, 9]);
        assert_eq!(fake.reg(reg::PALR), 0x0200_0000);
        assert_eq!(fake.reg(reg::PAUR), 0x0009_0000);
        assert_eq!(fake.reg(reg::RDSR), RINGS_PADDR as u32);
        assert_eq!(fake.reg(reg::TDSR), (RINGS_PADDR + TX_RING as u64) as u32);
        assert_eq!(fake.reg(reg::MRBR), 2032);
        assert_eq!(fake.reg(reg::RACC), 0);
        assert_eq!(fake.reg(reg::TACC), 0);
        let rcr = fake.reg(reg::RCR);
        assert_eq!(rcr >> 16, 1522);
        assert_eq!(rcr & (RCR_LOOP | RCR_MII_MODE), RCR_MII_MODE);
        let ecr = fake.reg(reg::ECR);
        assert_eq!(
            ecr & (ECR_ETHEREN | ECR_DBSWP | 1 << 4),
            ECR_ETHEREN | ECR_DBSWP
        );
        assert_eq!(fake.reg(reg::EIMR), INT_RXF | INT_TXF);
        for slot in 0..2 * SLOTS {
            let (length, status, address) = fake.descriptor(slot * DESC_BYTES);
            let wrap = if slot % SLOTS == SLOTS - 1 {
                BD_WRAP
            } else {
                0
            };
            assert_eq!((length, status, address), (0, wrap, 0), "slot {slot}");
        }
        assert!(nic.rx_room() && nic.tx_room());
    }

    #[test]
    fn received_frames_come_back_in_order_without_their_fcs() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.set_reg(reg::RDAR, 0);
        assert!(nic.rx_post(7, buffer(3)));
        assert!(nic.rx_post(9, buffer(4)));
        assert_eq!(fake.reg(reg::RDAR), DESCRIPTORS_ACTIVE);
        let (_, status, address) = fake.descriptor(0);
        assert_eq!(status, BD_OWNED);
        assert_eq!(u64::from(address), buffer(3).paddr + u64::from(HEADROOM));
        assert_eq!(nic.rx_take(), None);
        fake.complete(0, 64 + 4, BD_LAST);
        assert_eq!(nic.rx_take(), Some((7, 64)));
        assert_eq!(nic.rx_take(), None);
        fake.complete(8, 1514 + 4, BD_LAST);
        assert_eq!(nic.rx_take(), Some((9, 1514)));
        assert_eq!(nic.rx_take(), None);
    }

    #[test]
    fn broken_frames_and_impossible_lengths_come_back_empty() {
        let fake = Fake::new();
        let mut nic = fake.start();
        let cases: [(u16, u16, u32); 8] = [
            (64, BD_LAST | BD_RX_CRC, 0),
            (64, BD_LAST | BD_RX_OVERRUN, 0),
            (1600, BD_LAST | BD_RX_LONG, 0),
            (3, BD_LAST, 0),
            (17, BD_LAST, 0),
            (18, BD_LAST, 14),
            (2036, BD_LAST, 2032),
            (u16::MAX, BD_LAST, 0),
        ];
        for (tag, (length, status, expected)) in cases.into_iter().enumerate() {
            assert!(nic.rx_post(tag as u64, buffer(tag as u64)));
            fake.complete(tag * DESC_BYTES, length, status);
            assert_eq!(
                nic.rx_take(),
                Some((tag as u64, expected)),
                "{length} {status:#x}"
            );
        }
    }

    #[test]
    fn a_frame_over_several_buffers_is_dropped_whole() {
        let fake = Fake::new();
        let mut nic = fake.start();
        for tag in 0..4 {
            assert!(nic.rx_post(tag, buffer(tag)));
        }
        fake.complete(0, 2032, 0);
        fake.complete(8, 100, BD_LAST);
        fake.complete(16, 68, BD_LAST);
        assert_eq!(nic.rx_take(), Some((0, 0)));
        assert_eq!(nic.rx_take(), Some((1, 0)));
        assert_eq!(nic.rx_take(), Some((2, 64)));
        assert_eq!(nic.rx_take(), None);
    }

    #[test]
    fn the_rings_wrap_and_fill_up() {
        let fake = Fake::new();
        let mut nic = fake.start();
        for round in 0..3u64 {
            let tags: Vec<u64> = (0..SLOTS as u64).map(|i| round * 1000 + i).collect();
            for &tag in &tags {
                assert!(nic.rx_room() && nic.tx_room());
                assert!(nic.rx_post(tag, buffer(tag % 128)));
                assert!(nic.tx_post(tag, buffer(tag % 128), 60));
            }
            assert!(!nic.rx_room() && !nic.tx_room());
            assert!(!nic.rx_post(1, buffer(1)));
            assert!(!nic.tx_post(1, buffer(1), 60));
            let (_, last, _) = fake.descriptor((SLOTS - 1) * DESC_BYTES);
            assert_eq!(last, BD_OWNED | BD_WRAP);
            let (length, tx, _) = fake.descriptor(TX_RING + (SLOTS - 1) * DESC_BYTES);
            assert_eq!((length, tx), (60, BD_OWNED | BD_WRAP | BD_LAST | BD_TX_CRC));
            for slot in 0..SLOTS {
                fake.complete(slot * DESC_BYTES, 100, BD_LAST);
                fake.complete(TX_RING + slot * DESC_BYTES, 60, BD_LAST | BD_TX_CRC);
            }
            for &tag in &tags {
                assert_eq!(nic.rx_take(), Some((tag, 96)));
                assert_eq!(nic.tx_take(), Some(tag));
            }
            assert_eq!((nic.rx_take(), nic.tx_take()), (None, None));
        }
    }

    #[test]
    fn sends_are_handed_over_whole_and_bad_ones_refused() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.set_reg(reg::TDAR, 0);
        assert!(!nic.tx_post(1, buffer(1), 13));
        assert!(!nic.tx_post(1, buffer(1), MAX_FRAME + 1));
        let far = Buffer {
            vaddr: 0x1000,
            paddr: (1 << 32) - u64::from(NET_BUF_SIZE) + 8,
        };
        assert!(!nic.tx_post(1, far, 60));
        assert!(!nic.rx_post(1, far));
        assert_eq!(fake.reg(reg::TDAR), 0);
        assert!(nic.tx_post(5, buffer(2), 1514));
        assert_eq!(fake.reg(reg::TDAR), DESCRIPTORS_ACTIVE);
        let (length, status, address) = fake.descriptor(TX_RING);
        assert_eq!((length, status), (1514, BD_OWNED | BD_LAST | BD_TX_CRC));
        assert_eq!(u64::from(address), buffer(2).frame_paddr());
        assert_eq!(nic.tx_take(), None);
        fake.complete(TX_RING, 1514, BD_LAST | BD_TX_CRC);
        assert_eq!(nic.tx_take(), Some(5));
        assert_eq!(nic.tx_take(), None);
    }

    #[test]
    fn the_interrupt_is_acknowledged_by_writing_back_what_was_seen() {
        let fake = Fake::new();
        let mut nic = fake.start();
        fake.set_reg(reg::EIR, INT_RXF | INT_TXF | 1 << 24);
        nic.ack_interrupt();
        // The fake keeps what was written: the same bits, written back to clear them.
        assert_eq!(fake.reg(reg::EIR), INT_RXF | INT_TXF | 1 << 24);
    }

    #[test]
    fn the_mac_address_is_taken_only_if_usable() {
        assert_eq!(
            mac_from(0x5254_0012, 0x3456_8808),
            Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(mac_from(0, 0x0000_8808), None);
        assert_eq!(mac_from(0xFFFF_FFFF, 0xFFFF_8808), None);
        assert_eq!(mac_from(0x0100_5E00, 0x0001_8808), None);
        assert_eq!(FALLBACK_MAC[0] & 3, 2);
    }

    #[test]
    fn the_link_follows_firmware_or_the_evk() {
        assert_eq!(Link::from_firmware(0x05EE_0001, 0xF000_0000, 0), Link::EVK);
        let rmii = Link::from_firmware(0x05EE_0104 | RCR_RMII_10T, 0xF000_0102, 0);
        assert_eq!(
            rmii,
            Link {
                rcr: RCR_RMII_MODE | RCR_RMII_10T,
                ecr: 0,
                tcr: 0
            }
        );
    }

    proptest::proptest! {
        /// A hostile card writes anything anywhere in the rings between the driver's
        /// steps: the driver never panics, hands back only tags it holds (each once), and
        /// never a length beyond a buffer's frame.
        #[test]
        fn a_hostile_card_gets_back_only_what_it_was_given(
            writes in proptest::collection::vec((0usize..0x4000, proptest::num::u8::ANY), 0..400),
            steps in proptest::collection::vec(0u8..4, 1..200),
        ) {
            let fake = Fake::new();
            let mut nic = fake.start();
            let mut rx_held = std::collections::BTreeSet::new();
            let mut tx_held = std::collections::BTreeSet::new();
            let mut next = 0u64;
            let mut writes = writes.into_iter();
            for step in steps {
                for (offset, byte) in writes.by_ref().take(3) {
                    fake.set_ring_bytes(offset, [byte]);
                }
                match step {
                    0 => {
                        if nic.rx_room() && nic.rx_post(next, buffer(next)) {
                            rx_held.insert(next);
                        }
                        next += 1;
                    }
                    1 => {
                        if nic.tx_room() && nic.tx_post(next, buffer(next), 60) {
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
