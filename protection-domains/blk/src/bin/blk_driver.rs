//! The block driver PD: drives the board's disk (`disk0`) and serves one client, the
//! key-value store.
//!
//! It owns the disk controller's registers (`blk_regs`, mapped uncached into it alone), its
//! interrupt (channel 0) and its private DMA memory (`blk_dma`, for virtio-blk's virtqueue;
//! `blk_rings`, uncached, for the SD controllers' ADMA2 tables),
//! and serves the client on channel 1 through the two queues of the `blk_queues` region and
//! the buffers of the `blk_data` region (see `atoll_channels::block`). Which controller it
//! drives follows from the physical address of its registers (`atoll_pd_blk::disk_device`),
//! so one program serves every board. With no disk it still serves the client, answering
//! every request "no disk", so that the store can say so.
#![no_std]
#![no_main]

use atoll_channels::block::{BlockQueues, DiskInfo, geometry};
use atoll_channels::queue::DataRegion;
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, memory_region_symbol,
    protection_domain, var,
};
use atoll_pd_blk::driver::{Counters, Disk, Driver, NoDisk, Region};
use atoll_pd_blk::sdhci::SdhciDisk;
use atoll_pd_blk::usdhc::UsdhcDisk;
use atoll_pd_blk::virtio::{DMA_BYTES as VIRTIO_DMA_BYTES, DmaWindow, VirtioDisk, find_disk};
use atoll_pd_blk::{BLOCK_DATA_BYTES, BLOCK_QUEUE_SLOTS, BLOCK_QUEUES_BYTES, DeviceKind};
use atoll_pd_net::crossed_power_of_two;
use virtio_drivers::transport::mmio::MmioTransport;

/// The disk's interrupt.
const DEVICE: Channel = Channel::new(0);
/// The client (the key-value store).
const CLIENT: Channel = Channel::new(1);

/// Bytes of the disk controller's register page.
const REGS_BYTES: usize = 0x1000;
/// Bytes of the private DMA region, as the description declares it.
const DMA_BYTES: usize = 0x1_0000;
/// Bytes of the private uncached region for the SD controllers' ADMA2 tables.
const RINGS_BYTES: usize = 0x1000;

const _: () = assert!(VIRTIO_DMA_BYTES <= DMA_BYTES);

#[protection_domain(stack_size = 0x10000)]
fn init() -> BlkDriver {
    debug_println!("blk_driver: running at EL0");
    let regs = memory_region_symbol!(blk_regs: *mut u8, bytes = REGS_BYTES);
    let regs_paddr = *var!(blk_regs_paddr: u64 = 0);
    let dma = memory_region_symbol!(blk_dma: *mut u8, bytes = DMA_BYTES);
    let dma = DmaWindow {
        vaddr: dma.as_ptr() as usize,
        paddr: *var!(blk_dma_paddr: u64 = 0),
        size: DMA_BYTES,
    };
    let queues = memory_region_symbol!(blk_queues: *mut u8, bytes = BLOCK_QUEUES_BYTES);
    let data = memory_region_symbol!(blk_data: *mut u8, bytes = BLOCK_DATA_BYTES);
    let region = Region {
        vaddr: data.as_ptr() as usize,
        paddr: *var!(blk_data_paddr: u64 = 0),
    };

    let rings = memory_region_symbol!(blk_rings: *mut u8, bytes = RINGS_BYTES);
    let rings_paddr = *var!(blk_rings_paddr: u64 = 0);

    let device = atoll_pd_blk::disk_device(regs_paddr);
    let kind = device.map(|d| d.kind);
    let disk = match device {
        Some(device) if device.kind == DeviceKind::VirtioMmio => {
            // The transport's place in the mapped page, by the board's device table.
            let offset = (device.regs.base & 0xFFF) as usize;
            let len = (device.regs.size as usize).min(REGS_BYTES - offset);
            // SAFETY: the description maps `blk_regs` (the board's `disk0`) uncached into
            // this PD alone, and the transport lies inside that page (`offset + len` is at
            // most the page); nothing else here touches it.
            let transport = unsafe { find_disk(regs.byte_add(offset), len) };
            // SAFETY: `blk_dma` is mapped read-write into this PD alone, at the physical
            // address the tool patched, for the PD's lifetime.
            match transport.and_then(|transport| unsafe { VirtioDisk::new(transport, dma) }) {
                Ok(disk) => Some(Card::Virtio(disk)),
                Err(e) => {
                    debug_println!(
                        "blk_driver: no virtio-blk disk at the board's disk0 ({e:?}): answering no disk"
                    );
                    None
                }
            }
        }
        Some(device) if matches!(device.kind, DeviceKind::Sdhci | DeviceKind::ImxUsdhc) => {
            let rings = rings.as_ptr() as usize;
            let card = if device.kind == DeviceKind::Sdhci {
                // SAFETY: the description maps `blk_regs` (the board's `disk0`, the SD
                // controller) and `blk_rings` (for the ADMA2 table, at the physical address
                // the tool patched) uncached into this PD alone, for its lifetime; nothing
                // else here touches them.
                unsafe { SdhciDisk::new(regs, rings, rings_paddr, RINGS_BYTES) }.map(Card::Sdhci)
            } else {
                // SAFETY: as for the SDHCI above.
                unsafe { UsdhcDisk::new(regs, rings, rings_paddr, RINGS_BYTES) }.map(Card::Usdhc)
            };
            match card {
                Ok(card) => Some(card),
                Err(e) => {
                    debug_println!(
                        "blk_driver: no SD card ready in the {:?} controller at {regs_paddr:#x} ({e}): answering no disk",
                        device.kind
                    );
                    None
                }
            }
        }
        _ => {
            debug_println!(
                "blk_driver: no disk controller known at {regs_paddr:#x} ({kind:?}): answering no disk"
            );
            None
        }
    };
    let info = disk.as_ref().map_or(DiskInfo::default(), Card::info);

    // SAFETY: `blk_queues` is mapped read-write into this PD and its client only, for the
    // PD's lifetime, and is only used through the queue types (atomics).
    let pair = unsafe {
        BlockQueues::<BLOCK_QUEUE_SLOTS>::init_raw(
            queues.as_ptr(),
            BLOCK_QUEUES_BYTES,
            geometry(),
            &info,
        )
    }
    .unwrap_or_else(|e| panic!("blk_queues: {e:?}"));
    // SAFETY: `blk_data` is mapped read-write into this PD and its client only, for the PD's
    // lifetime; this PD reads and writes it only through `DataRegion`s (the disk reaches it
    // by DMA at the addresses the driver gives it).
    let data = unsafe { DataRegion::from_raw(data.as_ptr(), BLOCK_DATA_BYTES, geometry()) }
        .unwrap_or_else(|e| panic!("blk_data: {e:?}"));
    let queues = pair.driver();
    let cache = if info.write_cache {
        "a write cache that a flush empties"
    } else {
        "write-through (a flush completes at once)"
    };
    let read_only = if info.read_only { ", read-only" } else { "" };
    let mut driver = match disk {
        Some(card) => {
            debug_println!(
                "blk_driver: {} disk, {} blocks, {cache}{read_only}, queues ready",
                card.name(),
                info.blocks
            );
            match card {
                Card::Virtio(d) => BlkDriver::Virtio(Driver::new(Some(d), queues, data, region)),
                Card::Sdhci(d) => BlkDriver::Sdhci(Driver::new(Some(d), queues, data, region)),
                Card::Usdhc(d) => BlkDriver::Usdhc(Driver::new(Some(d), queues, data, region)),
            }
        }
        None => {
            debug_println!("blk_driver: no disk, queues ready");
            BlkDriver::NoDisk(Driver::new(None, queues, data, region))
        }
    };
    // The client waits for the queues to be set up before it attaches.
    CLIENT.notify();
    let _ = driver.notified(ChannelSet::from_badge(0));
    driver
}

/// A disk that is set up (held only until its driver is made).
enum Card {
    Virtio(VirtioDisk<MmioTransport<'static>>),
    Sdhci(SdhciDisk),
    Usdhc(UsdhcDisk),
}

impl Card {
    fn name(&self) -> &'static str {
        match self {
            Card::Virtio(_) => "virtio-blk",
            Card::Sdhci(_) => "SD card (SDHCI)",
            Card::Usdhc(_) => "SD card (uSDHC)",
        }
    }

    /// What the client is told about the disk. SD cards are write-through: they answer a
    /// write only once it is programmed, and their optional cache stays off.
    fn info(&self) -> DiskInfo {
        match self {
            Card::Virtio(disk) => DiskInfo {
                blocks: disk.blocks(),
                read_only: disk.read_only(),
                write_cache: disk.flush_supported(),
            },
            Card::Sdhci(disk) => DiskInfo {
                blocks: disk.blocks(),
                read_only: false,
                write_cache: false,
            },
            Card::Usdhc(disk) => DiskInfo {
                blocks: disk.blocks(),
                read_only: false,
                write_cache: false,
            },
        }
    }
}

/// The driver of the board's disk, or of none.
enum BlkDriver {
    Virtio(Driver<'static, VirtioDisk<MmioTransport<'static>>>),
    Sdhci(Driver<'static, SdhciDisk>),
    Usdhc(Driver<'static, UsdhcDisk>),
    NoDisk(Driver<'static, NoDisk>),
}

impl Handler for BlkDriver {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        match self {
            BlkDriver::Virtio(driver) => serve(driver, channels),
            BlkDriver::Sdhci(driver) => serve(driver, channels),
            BlkDriver::Usdhc(driver) => serve(driver, channels),
            BlkDriver::NoDisk(driver) => serve(driver, channels),
        }
        Ok(())
    }
}

/// Serves after `channels` fired: lets the disk handle its interrupt, moves what can move,
/// tells the client if it asked, and takes the next interrupt.
fn serve<D: Disk>(driver: &mut Driver<'static, D>, channels: ChannelSet) {
    let irq = channels.contains(DEVICE);
    let before = driver.counters;
    if driver.notified(irq) {
        CLIENT.notify();
    }
    report(&before, &driver.counters);
    if irq {
        let _ = DEVICE.irq_ack();
    }
}

/// Logs the client's bad requests and the disk's errors when their count reaches a power of
/// two, so that a flood of them cannot flood the log.
fn report(before: &Counters, now: &Counters) {
    let crossed = crossed_power_of_two;
    if crossed(before.bad, now.bad) {
        debug_println!(
            "blk_driver: {} bad requests from the client so far",
            now.bad
        );
    }
    if crossed(before.dropped, now.dropped) {
        debug_println!(
            "blk_driver: {} descriptors from the client dropped so far",
            now.dropped
        );
    }
    if crossed(before.device_errors, now.device_errors) {
        debug_println!("blk_driver: the disk failed {} requests", now.device_errors);
    }
    if crossed(before.disk_faults, now.disk_faults) {
        debug_println!(
            "blk_driver: the disk reported {} completions of no request",
            now.disk_faults
        );
    }
}
