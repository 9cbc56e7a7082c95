//! Block driver PDs: each drives one board's disk controller and serves one client (the
//! storage service) through the block queues of `atoll_channels::block` (seL4 sDDF's
//! shape).
//!
//! The device-independent part is here: the protocol's constants, shared with the client
//! (re-exported from `atoll_channels::block`), and the loop that serves it ([`driver`])
//! over any controller ([`driver::Disk`]): it checks every request against the data region,
//! the buffers it holds and the disk's size, gives the disk one request at a time, and
//! answers each in the request's own buffer. The controllers are in their modules
//! ([`virtio`] for QEMU `virt`'s virtio-blk, [`sdhci`] for the ZynqMP's SDHCI, [`usdhc`] for
//! the i.MX 8M Plus's uSDHC). One driver program serves every board: it finds which
//! controller it drives from the physical address of the registers the description mapped
//! into it ([`disk_device`]), by the boards' own device table. Cache maintenance for the
//! controllers that do not snoop the caches is the network drivers' ([`cache`]).
#![no_std]

pub mod driver;
pub mod sd;
#[cfg(test)]
mod sdfake;
pub mod sdhci;
pub mod sdhost;
pub mod usdhc;
pub mod virtio;

pub use atoll_boards::{Device, DeviceKind};
pub use atoll_channels::block::{
    BLOCK_BUF_SIZE, BLOCK_BUFFERS, BLOCK_DATA_BYTES, BLOCK_HEADER, BLOCK_MAX_BLOCKS,
    BLOCK_QUEUE_SLOTS, BLOCK_QUEUES_BYTES, BLOCK_SIZE, geometry,
};
pub use atoll_pd_net::cache;

/// The most blocks the driver gives a [`driver::Disk`] in one request (the protocol's
/// [`BLOCK_MAX_BLOCKS`]).
pub const BLK_MAX_BLOCKS: u32 = BLOCK_MAX_BLOCKS;

/// The board device whose register block lies in the 4 KiB page at `paddr` (the page the
/// description maps as `blk_regs`) and that can be a disk (a virtio-mmio transport or an
/// SD controller), on one of the boards Atoll knows ([`atoll_boards::device_in_page`]).
/// `None` for an address no board's device table has, or a device that is no disk.
pub fn disk_device(paddr: u64) -> Option<&'static Device> {
    atoll_boards::device_in_page(paddr).filter(|device| {
        matches!(
            device.kind,
            DeviceKind::VirtioMmio | DeviceKind::Sdhci | DeviceKind::ImxUsdhc
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_boards_disk_is_found_by_its_registers_page() {
        for board in atoll_boards::BOARDS {
            let disk = board.device("disk0").expect(board.name);
            assert_eq!(disk_device(disk.regs.base & !0xFFF), Some(disk));
            assert_eq!(disk_device(disk.regs.base), Some(disk));
        }
        let virt = disk_device(0x0A00_2000).expect("virt's disk");
        assert_eq!(
            (virt.kind, virt.regs.base & 0xFFF),
            (DeviceKind::VirtioMmio, 0xE00)
        );
        assert_eq!(
            disk_device(0xFF17_0000).map(|d| d.kind),
            Some(DeviceKind::Sdhci)
        );
        assert_eq!(disk_device(0x4000_0000), None);
        // The NIC's page holds a device, but no disk.
        assert_eq!(disk_device(0xFF0E_0000), None);
    }
}
