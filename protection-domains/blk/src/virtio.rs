//! The virtio-blk disk of QEMU's `virt` machine, on the virtio-mmio transport.
//!
//! The transport (device status, feature negotiation, configuration space, the queue and
//! interrupt registers) is `virtio-drivers`' [`MmioTransport`]. The virtqueue is this
//! module's own, and so is the request: `virtio-drivers`' `VirtIOBlk` wants the data as a
//! `&mut [u8]` (a Rust reference into the client's shared buffer, which the client may write
//! at any time: undefined behaviour) and its flush is a blocking call that spins on the used
//! ring. The driver loop gives the disk one request at a time, so a split virtqueue of
//! [`QUEUE_SIZE`] descriptors with one three-descriptor chain in it (request header, data,
//! status byte) is all there is to write, and the data descriptor carries the buffer's
//! physical address: no reference into shared memory is ever made.
//!
//! Memory the device reaches: the virtqueue, the request header and the status byte lie in
//! the driver's private DMA region (`blk_dma`, [`DMA_BYTES`] of it, laid out so that both the
//! modern and the legacy transport accept it: descriptors and available ring in the first
//! page, the used ring at the start of the second); the data is the client's buffer.
//! Virtio devices see the guest's memory coherently, so there is no cache maintenance.
//!
//! Flush: `VIRTIO_BLK_F_FLUSH` is negotiated when the device offers it, and [`Op::Flush`]
//! becomes a `VIRTIO_BLK_T_FLUSH` request. A device that does not offer it has no volatile
//! write cache (it is write-through: a write is durable when it completes), so a flush
//! completes at once, successfully.
//!
//! Completions are found on the used ring; the interrupt ([`Disk::interrupt`]) only
//! acknowledges the transport's interrupt status. The disk's size is read once from the
//! configuration space at set-up.

use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

use virtio_drivers::transport::mmio::{MmioTransport, MmioVersion, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use crate::driver::{Disk, Op};

pub use atoll_pd_net::virtio::DmaWindow;

/// Descriptors in the virtqueue: one request of three.
pub const QUEUE_SIZE: u16 = 4;
/// Bytes of the DMA region the disk uses: descriptors and available ring, used ring,
/// request header and status, a page each.
pub const DMA_BYTES: usize = 0x3000;

/// The virtio-mmio magic value ("virt", little-endian) at offset 0 of a transport.
const MMIO_MAGIC: u32 = 0x7472_6976;
/// Virtio's device ID of a block device.
const DEVICE_ID_BLOCK: u32 = 2;
/// The only queue of a virtio-blk device without multi-queue.
const QUEUE: u16 = 0;

/// Feature bits (virtio 1.x, 5.2.3 and 6).
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;

/// Request types (5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// What the device writes into the status byte of a request that succeeded.
const S_OK: u8 = 0;
/// What the driver writes there first: a device that completes without writing fails it.
const S_UNWRITTEN: u8 = 0xFF;

/// Descriptor flags (2.7.5).
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// Where things lie in the DMA region. The legacy layout wants the available ring right
/// after the descriptors and the used ring on the next page boundary.
const DESC_AT: usize = 0;
const AVAIL_AT: usize = DESC_AT + 16 * QUEUE_SIZE as usize;
const USED_AT: usize = 0x1000;
const HEADER_AT: usize = 0x2000;
const STATUS_AT: usize = HEADER_AT + 16;

const _: () = assert!(QUEUE_SIZE.is_power_of_two());
const _: () = assert!(AVAIL_AT + 6 + 2 * QUEUE_SIZE as usize <= USED_AT);
const _: () = assert!(USED_AT + 6 + 8 * QUEUE_SIZE as usize <= HEADER_AT);
const _: () = assert!(STATUS_AT < DMA_BYTES);

/// Why there is no virtio-blk disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    /// No virtio-mmio transport at the registers.
    NotVirtio,
    /// A transport with no device behind it (QEMU started without a disk).
    NoDevice,
    /// A device that is not a block device (its virtio device ID).
    NotBlock(u32),
    /// The transport is of a version `virtio-drivers` does not know.
    Transport,
    /// The device did not accept the features the driver chose.
    FeaturesRefused,
    /// The device's queue 0 is in use or smaller than [`QUEUE_SIZE`].
    Queue,
    /// The DMA region is smaller than [`DMA_BYTES`].
    DmaTooSmall,
    /// The configuration space could not be read.
    Config,
}

/// The private DMA memory: where this PD sees it and its physical address.
struct Dma {
    vaddr: NonNull<u8>,
    paddr: u64,
}

impl Dma {
    fn write<T: Copy>(&self, at: usize, value: T) {
        debug_assert!(at + size_of::<T>() <= DMA_BYTES && at.is_multiple_of(align_of::<T>()));
        // SAFETY: `at` is one of this module's offsets, inside the first DMA_BYTES of the
        // region (checked at set-up) and aligned for `T` (the layout's constants); the region
        // is mapped into this PD alone and shared only with the device, hence volatile.
        unsafe { self.vaddr.byte_add(at).cast::<T>().write_volatile(value) }
    }

    fn read<T: Copy>(&self, at: usize) -> T {
        debug_assert!(at + size_of::<T>() <= DMA_BYTES && at.is_multiple_of(align_of::<T>()));
        // SAFETY: as in `write`.
        unsafe { self.vaddr.byte_add(at).cast::<T>().read_volatile() }
    }

    /// Writes descriptor `index`.
    fn descriptor(&self, index: u16, paddr: u64, len: u32, flags: u16, next: u16) {
        let at = DESC_AT + 16 * usize::from(index);
        self.write(at, paddr);
        self.write(at + 8, len);
        self.write(at + 12, flags);
        self.write(at + 14, next);
    }
}

/// The first transport of a virtio block device at `regs`: checks the magic value and the
/// device ID before anything else touches the registers (a transport `virtio-drivers` builds
/// resets its device when dropped, so it is built only for the disk).
///
/// # Safety
///
/// `regs` must point at `len` bytes of one virtio-mmio transport's registers, mapped
/// uncached into this PD, that nothing else in it uses.
pub unsafe fn find_disk(
    regs: NonNull<u8>,
    len: usize,
) -> Result<MmioTransport<'static>, VirtioError> {
    if len < 0x100 {
        return Err(VirtioError::NotVirtio);
    }
    // SAFETY: the magic value and the device ID are the transport's first and third
    // registers, inside `regs` as the caller promises; reading them has no side effect.
    let (magic, device) = unsafe {
        (
            regs.cast::<u32>().read_volatile(),
            regs.cast::<u32>().add(2).read_volatile(),
        )
    };
    match (magic, device) {
        (MMIO_MAGIC, 0) => return Err(VirtioError::NoDevice),
        (MMIO_MAGIC, DEVICE_ID_BLOCK) => {}
        (MMIO_MAGIC, other) => return Err(VirtioError::NotBlock(other)),
        _ => return Err(VirtioError::NotVirtio),
    }
    // SAFETY: a virtio-mmio transport of `len` bytes, used only through this from here on.
    let transport = unsafe { MmioTransport::new(regs.cast::<VirtIOHeader>(), len) }
        .map_err(|_| VirtioError::Transport)?;
    if transport.device_type() != DeviceType::Block {
        return Err(VirtioError::NotBlock(device));
    }
    Ok(transport)
}

/// Whether a transport is virtio-mmio's legacy one (set-up differs a little).
pub trait Legacy {
    /// `true` for a legacy (version 1) transport.
    fn legacy(&self) -> bool;
}

impl Legacy for MmioTransport<'_> {
    fn legacy(&self) -> bool {
        self.version() == MmioVersion::Legacy
    }
}

/// QEMU `virt`'s virtio-blk disk, one request at a time.
pub struct VirtioDisk<T: Transport> {
    transport: T,
    dma: Dma,
    capacity: u64,
    flush: bool,
    read_only: bool,
    /// The next index of the available ring.
    avail_idx: u16,
    /// The used ring's index as far as the driver has read it.
    used_idx: u16,
    /// The tag of the request on the device.
    in_flight: Option<u64>,
    /// A request completed without the device (a flush of a write-through disk).
    done: Option<(u64, bool)>,
}

impl<T: Transport + Legacy> VirtioDisk<T> {
    /// Sets the device up (virtio 1.x, 3.1.1) with its queue in `dma` (at least
    /// [`DMA_BYTES`], mapped into this PD alone) and its interrupts on.
    ///
    /// # Safety
    ///
    /// `dma` must describe memory mapped read-write into this PD alone (the device aside),
    /// at the physical address it names, for the disk's lifetime.
    pub unsafe fn new(mut transport: T, dma: DmaWindow) -> Result<Self, VirtioError> {
        if dma.size < DMA_BYTES {
            return Err(VirtioError::DmaTooSmall);
        }
        let vaddr = NonNull::new(dma.vaddr as *mut u8).ok_or(VirtioError::DmaTooSmall)?;
        let dma = Dma {
            vaddr,
            paddr: dma.paddr,
        };
        let base = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER;
        transport.set_status(DeviceStatus::empty());
        transport.set_status(DeviceStatus::ACKNOWLEDGE);
        transport.set_status(base);
        let offered = transport.read_device_features();
        let features = offered & (F_FLUSH | F_RO | F_VERSION_1);
        transport.write_driver_features(features);
        if !transport.legacy() {
            transport.set_status(base | DeviceStatus::FEATURES_OK);
            if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
                transport.set_status(base | DeviceStatus::FAILED);
                return Err(VirtioError::FeaturesRefused);
            }
        }
        transport.set_guest_page_size(0x1000);
        if transport.queue_used(QUEUE) || transport.max_queue_size(QUEUE) < u32::from(QUEUE_SIZE) {
            transport.set_status(base | DeviceStatus::FAILED);
            return Err(VirtioError::Queue);
        }
        for at in (0..DMA_BYTES).step_by(8) {
            dma.write(at, 0u64);
        }
        fence(Ordering::SeqCst);
        transport.queue_set(
            QUEUE,
            u32::from(QUEUE_SIZE),
            dma.paddr + DESC_AT as u64,
            dma.paddr + AVAIL_AT as u64,
            dma.paddr + USED_AT as u64,
        );
        let capacity = transport
            .read_consistent(|| {
                let low = transport.read_config_space::<u32>(0)?;
                let high = transport.read_config_space::<u32>(4)?;
                Ok(u64::from(low) | u64::from(high) << 32)
            })
            .map_err(|_| VirtioError::Config)?;
        let ready = base | DeviceStatus::DRIVER_OK;
        transport.set_status(if transport.legacy() {
            ready
        } else {
            ready | DeviceStatus::FEATURES_OK
        });
        Ok(Self {
            transport,
            dma,
            capacity,
            flush: features & F_FLUSH != 0,
            read_only: features & F_RO != 0,
            avail_idx: 0,
            used_idx: 0,
            in_flight: None,
            done: None,
        })
    }
}

impl<T: Transport> VirtioDisk<T> {
    /// Whether the device has a write cache that [`Op::Flush`] empties (`VIRTIO_BLK_F_FLUSH`);
    /// if not, it is write-through and a flush completes at once.
    pub fn flush_supported(&self) -> bool {
        self.flush
    }

    /// Whether the device refuses writes (`VIRTIO_BLK_F_RO`): they fail.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Puts the chain starting at descriptor 0 on the available ring and tells the device.
    fn publish(&mut self) {
        let slot = usize::from(self.avail_idx % QUEUE_SIZE);
        self.dma.write(AVAIL_AT + 4 + 2 * slot, 0u16);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The descriptors and the ring entry before the index the device reads them by.
        fence(Ordering::SeqCst);
        self.dma.write(AVAIL_AT + 2, self.avail_idx);
        // The index before the register write that sends the device looking.
        fence(Ordering::SeqCst);
        self.transport.notify(QUEUE);
    }
}

impl<T: Transport> Disk for VirtioDisk<T> {
    // Virtio devices see the guest's memory coherently.
    const COHERENT: bool = true;

    fn blocks(&self) -> u64 {
        self.capacity
    }

    fn idle(&self) -> bool {
        self.in_flight.is_none() && self.done.is_none()
    }

    fn submit(&mut self, tag: u64, op: Op, block: u64, count: u32, paddr: u64) -> bool {
        if !self.idle() {
            return false;
        }
        let kind = match op {
            Op::Read => T_IN,
            Op::Write => T_OUT,
            Op::Flush if !self.flush => {
                // Write-through: every write that completed is durable already.
                self.done = Some((tag, true));
                return true;
            }
            Op::Flush => T_FLUSH,
        };
        let header = self.dma.paddr + HEADER_AT as u64;
        let status = self.dma.paddr + STATUS_AT as u64;
        self.dma.write(HEADER_AT, kind);
        self.dma.write(HEADER_AT + 4, 0u32);
        self.dma
            .write(HEADER_AT + 8, if op == Op::Flush { 0 } else { block });
        self.dma.write(STATUS_AT, S_UNWRITTEN);
        if op == Op::Flush {
            self.dma.descriptor(0, header, 16, DESC_F_NEXT, 1);
            self.dma.descriptor(1, status, 1, DESC_F_WRITE, 0);
        } else {
            let Some(bytes) = count.checked_mul(crate::BLOCK_SIZE) else {
                return false;
            };
            let data_flags = if op == Op::Read {
                DESC_F_NEXT | DESC_F_WRITE
            } else {
                DESC_F_NEXT
            };
            self.dma.descriptor(0, header, 16, DESC_F_NEXT, 1);
            self.dma.descriptor(1, paddr, bytes, data_flags, 2);
            self.dma.descriptor(2, status, 1, DESC_F_WRITE, 0);
        }
        self.in_flight = Some(tag);
        self.publish();
        true
    }

    fn interrupt(&mut self) {
        let _ = self.transport.ack_interrupt();
    }

    fn take(&mut self) -> Option<(u64, bool)> {
        if let Some(done) = self.done.take() {
            return Some(done);
        }
        let tag = self.in_flight?;
        let used = self.dma.read::<u16>(USED_AT + 2);
        if used == self.used_idx {
            return None;
        }
        // The index before the entry and the status byte it publishes.
        fence(Ordering::SeqCst);
        let slot = usize::from(self.used_idx % QUEUE_SIZE);
        let head = self.dma.read::<u32>(USED_AT + 4 + 8 * slot);
        let status = self.dma.read::<u8>(STATUS_AT);
        // One request was on the ring: a device that reports more, or another chain, is
        // broken, and the request fails. Everything it reported is consumed.
        let ok = used == self.used_idx.wrapping_add(1) && head == 0 && status == S_OK;
        self.used_idx = used;
        self.in_flight = None;
        Some((tag, ok))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    use virtio_drivers::transport::InterruptStatus;
    use virtio_drivers::{Error, PhysAddr};
    use zerocopy::{FromBytes, Immutable, IntoBytes};

    use super::*;

    /// A virtio-blk device in host memory: physical addresses are host addresses. It serves
    /// the available ring when notified.
    struct FakeDevice {
        offered: u64,
        accepted: u64,
        status: DeviceStatus,
        refuse_features: bool,
        queue: Option<(u32, u64, u64, u64)>,
        disk: Vec<u8>,
        last_avail: u16,
        interrupt: u32,
        requests: Vec<(u32, u64, u32)>,
        legacy: bool,
    }

    impl FakeDevice {
        fn new(offered: u64) -> Self {
            Self {
                offered,
                accepted: 0,
                status: DeviceStatus::empty(),
                refuse_features: false,
                queue: None,
                disk: vec![0; 64 * 512],
                last_avail: 0,
                interrupt: 0,
                requests: Vec::new(),
                legacy: false,
            }
        }

        fn read<V: FromBytes>(addr: u64) -> V {
            // SAFETY: addresses the driver under test gave the device: its DMA memory or a
            // test buffer, alive for the test.
            unsafe { (addr as *const V).read_unaligned() }
        }

        fn write<V: IntoBytes + Immutable>(addr: u64, value: V) {
            // SAFETY: as in `read`.
            unsafe { (addr as *mut V).write_unaligned(value) }
        }

        /// Serves every chain on the available ring.
        fn serve(&mut self) {
            let (size, desc, avail, used) = self.queue.expect("queue set up");
            let size = size as u16;
            let avail_idx: u16 = Self::read(avail + 2);
            while self.last_avail != avail_idx {
                let head: u16 = Self::read(avail + 4 + 2 * u64::from(self.last_avail % size));
                let mut chain = Vec::new();
                let mut at = head;
                loop {
                    let d = desc + 16 * u64::from(at);
                    let (addr, len, flags, next): (u64, u32, u16, u16) = (
                        Self::read(d),
                        Self::read(d + 8),
                        Self::read(d + 12),
                        Self::read(d + 14),
                    );
                    chain.push((addr, len, flags));
                    if flags & DESC_F_NEXT == 0 {
                        break;
                    }
                    at = next;
                }
                let kind: u32 = Self::read(chain[0].0);
                let sector: u64 = Self::read(chain[0].0 + 8);
                let status_addr = chain.last().unwrap().0;
                let mut status = 0u8;
                if let [_, (data, len, flags), _] = chain[..] {
                    self.requests.push((kind, sector, len));
                    let start = sector as usize * 512;
                    match self.disk.get_mut(start..start + len as usize) {
                        Some(bytes) if kind == T_IN && flags & DESC_F_WRITE != 0 => {
                            for (i, b) in bytes.iter().enumerate() {
                                Self::write(data + i as u64, *b);
                            }
                        }
                        Some(bytes) if kind == T_OUT && flags & DESC_F_WRITE == 0 => {
                            for (i, b) in bytes.iter_mut().enumerate() {
                                *b = Self::read(data + i as u64);
                            }
                        }
                        _ => status = 1,
                    }
                } else {
                    self.requests.push((kind, sector, 0));
                    if kind != T_FLUSH {
                        status = 2;
                    }
                }
                Self::write(status_addr, status);
                let used_idx: u16 = Self::read(used + 2);
                let slot = used + 4 + 8 * u64::from(used_idx % size);
                Self::write(slot, u32::from(head));
                Self::write(slot + 4, 0u32);
                Self::write(used + 2, used_idx.wrapping_add(1));
                self.last_avail = self.last_avail.wrapping_add(1);
                self.interrupt = 1;
            }
        }
    }

    impl Legacy for FakeDevice {
        fn legacy(&self) -> bool {
            self.legacy
        }
    }

    impl Transport for FakeDevice {
        fn device_type(&self) -> DeviceType {
            DeviceType::Block
        }
        fn read_device_features(&mut self) -> u64 {
            self.offered
        }
        fn write_driver_features(&mut self, driver_features: u64) {
            self.accepted = driver_features;
        }
        fn max_queue_size(&mut self, _queue: u16) -> u32 {
            128
        }
        fn notify(&mut self, _queue: u16) {
            self.serve();
        }
        fn get_status(&self) -> DeviceStatus {
            self.status
        }
        fn set_status(&mut self, status: DeviceStatus) {
            let features_ok = status.contains(DeviceStatus::FEATURES_OK);
            self.status = if features_ok && self.refuse_features {
                status - DeviceStatus::FEATURES_OK
            } else {
                status
            };
        }
        fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
        fn requires_legacy_layout(&self) -> bool {
            self.legacy
        }
        fn queue_set(
            &mut self,
            _q: u16,
            size: u32,
            desc: PhysAddr,
            driver: PhysAddr,
            device: PhysAddr,
        ) {
            self.queue = Some((size, desc, driver, device));
        }
        fn queue_unset(&mut self, _queue: u16) {
            self.queue = None;
        }
        fn queue_used(&mut self, _queue: u16) -> bool {
            self.queue.is_some()
        }
        fn ack_interrupt(&mut self) -> InterruptStatus {
            let status = InterruptStatus::from_bits_truncate(self.interrupt);
            self.interrupt = 0;
            status
        }
        fn read_config_generation(&self) -> u32 {
            0
        }
        fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V, Error> {
            let capacity = (self.disk.len() / 512) as u64;
            let bytes = capacity.to_le_bytes();
            V::read_from_bytes(&bytes[offset..offset + size_of::<V>()])
                .map_err(|_| Error::ConfigSpaceTooSmall)
        }
        fn write_config_space<V: IntoBytes + Immutable>(
            &mut self,
            _o: usize,
            _v: V,
        ) -> Result<(), Error> {
            Ok(())
        }
    }

    /// Page-aligned DMA memory for one test, leaked.
    #[derive(Clone, Copy)]
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn dma() -> DmaWindow {
        let pages = Box::leak(vec![Page([0xAA; 4096]); 4].into_boxed_slice());
        let vaddr = pages.as_mut_ptr() as usize;
        DmaWindow {
            vaddr,
            paddr: vaddr as u64,
            size: 4 * 4096,
        }
    }

    fn disk(device: FakeDevice) -> Result<VirtioDisk<FakeDevice>, VirtioError> {
        // SAFETY: leaked memory, used by this disk alone.
        unsafe { VirtioDisk::new(device, dma()) }
    }

    #[test]
    fn set_up_negotiates_flush_and_reads_the_capacity() {
        let d = disk(FakeDevice::new(F_FLUSH | F_VERSION_1 | 1 << 6 | 1 << 12)).unwrap();
        assert_eq!(d.transport.accepted, F_FLUSH | F_VERSION_1);
        assert!(
            d.transport
                .status
                .contains(DeviceStatus::DRIVER_OK | DeviceStatus::FEATURES_OK)
        );
        assert_eq!(
            (d.blocks(), d.flush_supported(), d.read_only()),
            (64, true, false)
        );
        let (size, desc, avail, used) = d.transport.queue.unwrap();
        assert_eq!((size, avail - desc, used - desc), (4, 64, 0x1000));
        let mut refusing = FakeDevice::new(F_VERSION_1);
        refusing.refuse_features = true;
        assert_eq!(disk(refusing).err(), Some(VirtioError::FeaturesRefused));
        let small = DmaWindow {
            size: 0x2000,
            ..dma()
        };
        // SAFETY: as in `disk`.
        let refused = unsafe { VirtioDisk::new(FakeDevice::new(0), small) };
        assert_eq!(refused.err(), Some(VirtioError::DmaTooSmall));
    }

    #[test]
    fn reads_writes_and_flushes_go_through_the_virtqueue() {
        let mut d = disk(FakeDevice::new(F_FLUSH | F_VERSION_1)).unwrap();
        let mut buffer = vec![0u8; 4096];
        let paddr = buffer.as_mut_ptr() as u64;
        buffer[..1024]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8);
        // More requests than the queue has descriptors: its indices wrap.
        for round in 0..6u64 {
            assert!(d.idle());
            assert!(d.submit(10 + round, Op::Write, 3, 2, paddr));
            assert!(
                !d.idle() && !d.submit(99, Op::Read, 0, 1, paddr),
                "one at a time"
            );
            d.interrupt();
            assert_eq!(d.take(), Some((10 + round, true)));
            assert_eq!(d.take(), None);
        }
        assert_eq!(&d.transport.disk[3 * 512..5 * 512], &buffer[..1024]);
        assert!(d.submit(20, Op::Flush, 0, 0, 0));
        assert_eq!(d.take(), Some((20, true)));
        let mut back = vec![0u8; 1024];
        assert!(d.submit(21, Op::Read, 3, 2, back.as_mut_ptr() as u64));
        assert_eq!(d.take(), Some((21, true)));
        assert_eq!(back, &buffer[..1024]);
        assert!(d.submit(22, Op::Read, 63, 2, paddr), "the device fails it");
        assert_eq!(d.take(), Some((22, false)));
        assert_eq!(d.transport.requests.last(), Some(&(T_IN, 63, 1024)));
        assert!(d.transport.requests.contains(&(T_FLUSH, 0, 0)));
    }

    #[test]
    fn without_the_flush_feature_a_flush_completes_at_once() {
        let mut d = disk(FakeDevice::new(F_VERSION_1)).unwrap();
        assert!(!d.flush_supported());
        assert!(d.submit(5, Op::Flush, 0, 0, 0));
        assert!(!d.idle());
        assert_eq!(d.take(), Some((5, true)));
        assert!(d.idle());
        assert!(d.transport.requests.is_empty(), "the device saw nothing");
    }

    #[test]
    fn a_legacy_transport_is_set_up_without_features_ok() {
        let mut device = FakeDevice::new(F_FLUSH);
        device.legacy = true;
        let d = disk(device).unwrap();
        assert!(!d.transport.status.contains(DeviceStatus::FEATURES_OK));
        assert!(d.transport.status.contains(DeviceStatus::DRIVER_OK));
    }
}
