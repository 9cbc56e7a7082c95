//! Network driver PDs: each drives one board's NIC and serves one client (the network stack)
//! through the queues of `atoll_channels::queue` (seL4 sDDF's shape).
//!
//! The device-independent part is here: [`NET_QUEUE_SLOTS`] and the data regions'
//! [`geometry`], shared with the client, and the loop that serves the client
//! ([`driver::Driver`]) over any card ([`driver::Nic`]). The cards are in their modules
//! ([`virtio`] for QEMU `virt`'s virtio-net, [`gem`] for the ZynqMP's Cadence GEM,
//! [`enet`] for the i.MX 8M Plus's ENET). One driver program serves every board: it
//! finds which card it drives from the physical address of the registers the description
//! mapped into it ([`card_kind`]), by the boards' own device table.
#![no_std]

pub mod barrier;
pub mod cache;
pub mod driver;
pub mod enet;
pub mod gem;
pub mod regs;
mod slots;
pub mod virtio;

pub use atoll_boards::DeviceKind;

use atoll_channels::queue::Geometry;

/// Descriptor slots in each of the four queues (a power of two).
pub const NET_QUEUE_SLOTS: usize = 256;
/// Buffers in each data region (receive and transmit).
pub const NET_BUFFERS: u32 = 128;
/// Bytes per buffer: an Ethernet frame of 1,514 bytes after [`HEADROOM`], rounded up.
pub const NET_BUF_SIZE: u32 = 2048;
/// Bytes at the start of every buffer that carry no frame: the frame starts at this offset
/// and a descriptor's length counts them. The driver may use them for its device's own
/// header (virtio-net's 12-byte `virtio_net_hdr` lies just before the frame), so frames go
/// to and from the device without a copy.
pub const HEADROOM: u32 = 16;
/// The longest frame a buffer holds.
pub const MAX_FRAME: u32 = NET_BUF_SIZE - HEADROOM;

/// The geometry of each data region.
pub const fn geometry() -> Geometry {
    match Geometry::new(NET_BUFFERS, NET_BUF_SIZE) {
        Ok(geometry) => geometry,
        Err(_) => panic!("invalid network buffer geometry"),
    }
}

/// Bytes of the region that holds the four queues.
pub const QUEUES_BYTES: usize =
    core::mem::size_of::<atoll_channels::queue::NetQueues<NET_QUEUE_SLOTS>>();

const _: () = assert!(NET_BUF_SIZE.is_multiple_of(8) && HEADROOM.is_multiple_of(8));
const _: () = assert!(MAX_FRAME >= 1514);

/// Which card has its registers at `paddr` on one of the boards Atoll knows
/// ([`atoll_boards::device_in_page`]). `None` for an address no board's device table has (a
/// description that maps something else).
pub fn card_kind(paddr: u64) -> Option<DeviceKind> {
    atoll_boards::device_in_page(paddr).map(|device| device.kind)
}

/// Whether a count that went from `old` to `new` reached a power of two on the way: the
/// driver PDs log their error counts then, so that a flood of errors cannot flood the log.
pub const fn crossed_power_of_two(old: u64, new: u64) -> bool {
    // The largest power of two up to `new` (`new` is at least 1 here) lies above `old`.
    new > old && (1u64 << new.ilog2()) > old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_boards_nic_is_found_by_its_registers_page() {
        assert_eq!(card_kind(0x0A00_3000), Some(DeviceKind::VirtioMmio));
        assert_eq!(card_kind(0xFF0E_0000), Some(DeviceKind::CadenceGem));
        assert_eq!(card_kind(0x30BE_0000), Some(DeviceKind::ImxEnet));
        assert_eq!(card_kind(0x4000_0000), None);
    }

    #[test]
    fn a_power_of_two_is_crossed_exactly_when_one_lies_in_the_step() {
        for old in 0..70u64 {
            for new in 0..140u64 {
                let expected = new > old && (old + 1..=new).any(u64::is_power_of_two);
                assert_eq!(crossed_power_of_two(old, new), expected, "{old} -> {new}");
            }
        }
        assert!(!crossed_power_of_two(u64::MAX - 1, u64::MAX));
        assert!(crossed_power_of_two((1 << 63) - 1, 1 << 63));
    }
}
