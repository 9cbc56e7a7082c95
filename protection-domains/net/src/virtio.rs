//! The virtio-net NIC of QEMU's `virt` machine, through `virtio-drivers` on the virtio-mmio
//! transport.
//!
//! Memory the device reaches:
//! - The virtqueues come from the driver's private DMA region (`net_dma`), handed out a page
//!   at a time by [`DmaPool`] and never given back (the queues live as long as the driver).
//! - Frames are received into, and sent from, the buffers of the data regions the driver
//!   shares with its client, without a copy: [`AtollHal::share`] turns a buffer's address
//!   into its physical address by the region's offset.
//!
//! Each buffer keeps [`HEADROOM`](crate::HEADROOM) bytes in front of its frame; the device's
//! `virtio_net_hdr` (12 bytes, virtio 1.0) lies in the last bytes of it, so the frame starts
//! at the same place in a buffer whichever way it goes.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use crate::driver::{Buffer, Nic};
use crate::{HEADROOM, NET_BUF_SIZE};

/// Requests in flight in each virtqueue.
const VIRTQ: usize = 64;
/// Bytes of the card's header in front of a frame (virtio 1.0: `virtio_net_hdr` with
/// `num_buffers`).
const VIRTIO_HEADER: usize = 12;
/// Where in a buffer the card's part starts.
const CARD_START: usize = HEADROOM as usize - VIRTIO_HEADER;

/// The virtio-mmio magic value ("virt", little-endian) at offset 0 of a transport.
const MMIO_MAGIC: u32 = 0x7472_6976;
/// Bytes of one virtio-mmio transport on `virt`.
pub const MMIO_SLOT: usize = 0x200;
/// Virtio's device ID of a network card.
const DEVICE_ID_NET: u32 = 1;

/// A range of memory the device may reach: where the driver sees it and its physical address.
#[derive(Clone, Copy, Debug)]
pub struct DmaWindow {
    /// The driver's address of the first byte.
    pub vaddr: usize,
    /// The physical address of the first byte.
    pub paddr: u64,
    /// Bytes.
    pub size: usize,
}

impl DmaWindow {
    /// The physical address of `[vaddr, vaddr + len)`, if it lies inside the window.
    pub fn translate(&self, vaddr: usize, len: usize) -> Option<u64> {
        let offset = vaddr.checked_sub(self.vaddr)?;
        let end = offset.checked_add(len)?;
        (end <= self.size).then(|| self.paddr + offset as u64)
    }
}

/// The windows [`AtollHal`] knows: the virtqueue pool, and the receive and transmit data
/// regions. Set once by [`DmaPool::init`], before the device is set up.
static WINDOWS: spin_once::Once<[DmaWindow; 3]> = spin_once::Once::new();
/// Bytes of the pool handed out so far.
static POOL_USED: AtomicUsize = AtomicUsize::new(0);

/// The driver's DMA memory for virtqueues, and the data regions it shares with its client.
pub struct DmaPool;

impl DmaPool {
    /// Records the pool and the two data regions. Called once, before [`VirtioNic::new`].
    pub fn init(pool: DmaWindow, rx: DmaWindow, tx: DmaWindow) {
        WINDOWS.set([pool, rx, tx]);
    }
}

/// `virtio-drivers`' view of the machine: DMA from [`DmaPool`], buffers in the data regions.
pub struct AtollHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned, never-reused pages of the pool (a
// region mapped into this PD alone); `share` gives the physical address of memory inside
// the windows `DmaPool::init` recorded, whose physical addresses the tool patched.
unsafe impl Hal for AtollHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let windows = WINDOWS.get();
        let pool = windows[0];
        let bytes = pages.saturating_mul(PAGE_SIZE);
        let start = POOL_USED.fetch_add(bytes, Ordering::Relaxed);
        let fits = start.checked_add(bytes).is_some_and(|end| end <= pool.size);
        // The pool is sized for the two virtqueues of the device, which are allocated once at
        // start: running out is a mistake in the description, found at the first boot.
        assert!(fits, "net_dma is too small for the virtqueues");
        let vaddr = pool.vaddr + start;
        // SAFETY: inside the pool, which is mapped read-write into this PD; these pages were
        // never handed out before.
        unsafe { core::ptr::write_bytes(vaddr as *mut u8, 0, bytes) };
        let paddr = pool.paddr + start as u64;
        (
            paddr as PhysAddr,
            NonNull::new(vaddr as *mut u8).unwrap_or(NonNull::dangling()),
        )
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The virtqueues live as long as the driver.
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks, and this driver uses virtio-mmio.
        unreachable!("virtio-mmio does not translate BARs")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.cast::<u8>().as_ptr() as usize;
        let len = buffer.len();
        let windows = WINDOWS.get();
        let paddr = windows.iter().find_map(|w| w.translate(vaddr, len));
        // The driver passes only buffers of the data regions (checked descriptors) and
        // memory of the pool.
        paddr.expect("a buffer outside the DMA windows") as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Virtio devices see the guest's memory coherently: nothing to copy back.
    }
}

/// The first virtio-net transport among the `MMIO_SLOT`-sized transports in `regs`
/// (`len` bytes, mapped uncached into this PD alone).
///
/// # Safety
///
/// `regs` must point at `len` bytes of virtio-mmio transports, mapped uncached, that nothing
/// else in this PD uses.
pub unsafe fn find_net(regs: NonNull<u8>, len: usize) -> Option<MmioTransport<'static>> {
    let mut offset = 0;
    while offset + MMIO_SLOT <= len {
        // SAFETY: inside `regs`, as the caller promises.
        let slot = unsafe { regs.byte_add(offset) };
        // SAFETY: as above; the magic and device ID are the first and third words.
        let (magic, device) = unsafe {
            (
                slot.cast::<u32>().read_volatile(),
                slot.cast::<u32>().add(2).read_volatile(),
            )
        };
        if magic == MMIO_MAGIC && device == DEVICE_ID_NET {
            // SAFETY: a virtio-mmio transport of `MMIO_SLOT` bytes, used only from here on.
            let transport = unsafe { MmioTransport::new(slot.cast::<VirtIOHeader>(), MMIO_SLOT) };
            if let Ok(transport) = transport
                && transport.device_type() == DeviceType::Network
            {
                return Some(transport);
            }
        }
        offset += MMIO_SLOT;
    }
    None
}

/// QEMU `virt`'s virtio-net card, through `virtio-drivers`' raw interface: a buffer is
/// handed to the card from [`HEADROOM`] − 12 bytes on, so the card's header fills the end of
/// the headroom and the frame starts at [`HEADROOM`].
pub struct VirtioNic {
    raw: VirtIONetRaw<AtollHal, MmioTransport<'static>, VIRTQ>,
    /// The tag and buffer of each receive request in flight, by the card's token.
    rx: [Option<(u64, Buffer)>; VIRTQ],
    /// The same for sends, with the bytes handed to the card.
    tx: [Option<(u64, Buffer, usize)>; VIRTQ],
}

impl VirtioNic {
    /// Sets the card up (after [`DmaPool::init`]) with its interrupts on.
    pub fn new(transport: MmioTransport<'static>) -> Result<Self, virtio_drivers::Error> {
        let mut raw = VirtIONetRaw::new(transport)?;
        raw.enable_interrupts();
        Ok(Self {
            raw,
            rx: [None; VIRTQ],
            tx: [None; VIRTQ],
        })
    }

    /// The card's part of `buffer`: from [`CARD_START`] to the buffer's end.
    fn card_part(buffer: &Buffer) -> &'static mut [u8] {
        // SAFETY: the driver passes only buffers of the data regions it holds (checked
        // descriptors and its ledgers), mapped into this PD. The slice is only handed to
        // the card (its physical address) and its header written: a client that breaks the
        // protocol and writes the buffer meanwhile changes only the frame it gets or sends.
        unsafe {
            core::slice::from_raw_parts_mut(
                (buffer.vaddr + CARD_START) as *mut u8,
                NET_BUF_SIZE as usize - CARD_START,
            )
        }
    }
}

impl Nic for VirtioNic {
    // Virtio devices see the guest's memory coherently.
    const COHERENT: bool = true;

    fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    fn ack_interrupt(&mut self) {
        self.raw.ack_interrupt();
    }

    fn rx_room(&self) -> bool {
        self.rx.iter().any(Option::is_none)
    }

    fn rx_post(&mut self, tag: u64, buffer: Buffer) -> bool {
        // SAFETY: the driver holds the buffer until the card completes this request.
        let Ok(token) = (unsafe { self.raw.receive_begin(Self::card_part(&buffer)) }) else {
            return false;
        };
        match self.rx.get_mut(usize::from(token)) {
            Some(slot) => {
                *slot = Some((tag, buffer));
                true
            }
            // The queue has VIRTQ entries, so its tokens are below VIRTQ.
            None => false,
        }
    }

    fn rx_take(&mut self) -> Option<(u64, u32)> {
        let token = self.raw.poll_receive()?;
        // A token the driver did not hand out (a broken card) has no buffer to give back.
        let (tag, buffer) = self.rx.get_mut(usize::from(token)).and_then(Option::take)?;
        // SAFETY: the same buffer as handed to `receive_begin` for this token.
        let len = match unsafe { self.raw.receive_complete(token, Self::card_part(&buffer)) } {
            Ok((header, frame)) if header == VIRTIO_HEADER => frame as u32,
            _ => 0,
        };
        Some((tag, len))
    }

    fn tx_room(&self) -> bool {
        self.tx.iter().any(Option::is_none)
    }

    fn tx_post(&mut self, tag: u64, buffer: Buffer, len: u32) -> bool {
        let part = Self::card_part(&buffer);
        let mut header = [0u8; VIRTIO_HEADER];
        let _ = self.raw.fill_buffer_header(&mut header);
        part[..VIRTIO_HEADER].copy_from_slice(&header);
        let bytes = VIRTIO_HEADER + len as usize;
        // SAFETY: the driver holds the buffer until the card completes this request.
        let Ok(token) = (unsafe { self.raw.transmit_begin(&part[..bytes]) }) else {
            return false;
        };
        match self.tx.get_mut(usize::from(token)) {
            Some(slot) => {
                *slot = Some((tag, buffer, bytes));
                true
            }
            None => false,
        }
    }

    fn tx_take(&mut self) -> Option<u64> {
        let token = self.raw.poll_transmit()?;
        let (tag, buffer, bytes) = self.tx.get_mut(usize::from(token)).and_then(Option::take)?;
        // SAFETY: the same bytes as handed to `transmit_begin` for this token.
        let _ = unsafe {
            self.raw
                .transmit_complete(token, &Self::card_part(&buffer)[..bytes])
        };
        Some(tag)
    }
}

/// A set-once value for `no_std` statics (the driver sets its windows once, before any
/// reader).
mod spin_once {
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, Ordering};

    /// A value set once and read after.
    pub struct Once<T> {
        set: AtomicBool,
        value: UnsafeCell<Option<T>>,
    }

    // SAFETY: the value is written once, before `set` is published with release ordering,
    // and only read after `set` is seen with acquire ordering.
    unsafe impl<T: Sync> Sync for Once<T> {}

    impl<T> Once<T> {
        /// Not set yet.
        pub const fn new() -> Self {
            Self {
                set: AtomicBool::new(false),
                value: UnsafeCell::new(None),
            }
        }

        /// Sets the value; a second call is ignored.
        pub fn set(&self, value: T) {
            if self.set.load(Ordering::Acquire) {
                return;
            }
            // SAFETY: the PD is single-threaded and nothing has read the value yet (it was
            // not set), so no reference to it exists.
            unsafe { *self.value.get() = Some(value) };
            self.set.store(true, Ordering::Release);
        }

        /// The value; panics if it was not set (a driver that uses DMA before setting up
        /// its windows).
        pub fn get(&self) -> &T {
            assert!(
                self.set.load(Ordering::Acquire),
                "DMA windows used before they were set"
            );
            // SAFETY: set, and never written again.
            match unsafe { &*self.value.get() } {
                Some(value) => value,
                None => unreachable!(),
            }
        }
    }
}
