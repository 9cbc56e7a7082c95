//! The network driver PD for QEMU `virt`'s virtio-net card (the board's `net0`).
//!
//! It owns the card's registers (mapped uncached into it alone), its interrupt (channel 0)
//! and its virtqueues (the private region `net_dma`), and serves one client, the network
//! stack, on channel 1 through the four queues of the `net_queues` region and the buffers of
//! the `net_rx_data` and `net_tx_data` regions (see `atoll_channels::queue`).
//!
//! Frames go between the card and the client's buffers without a copy: a buffer is handed
//! to the card from [`HEADROOM`] − 12 bytes on, so the card's header fills the end of the
//! headroom and the frame starts at [`HEADROOM`], where the client reads and writes it.
//!
//! Nothing the client writes is trusted: every descriptor is checked against the data
//! region's geometry and against the buffers the driver holds (a [`Ledger`]); a bad one is
//! dropped and counted, never followed.
#![no_std]
#![no_main]

use core::ptr::NonNull;

use atoll_channels::queue::{Consumer, Desc, DriverSide, Ledger, NetQueues};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, memory_region_symbol,
    protection_domain, var,
};
use atoll_pd_net::virtio::{AtollHal, DmaPool, DmaWindow, find_net};
use atoll_pd_net::{HEADROOM, NET_BUF_SIZE, NET_QUEUE_SLOTS, QUEUES_BYTES, geometry};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::MmioTransport;

/// The card's interrupt.
const DEVICE: Channel = Channel::new(0);
/// The client (the network stack).
const CLIENT: Channel = Channel::new(1);

/// Requests in flight in each virtqueue.
const VIRTQ: usize = 64;
/// Bytes of the card's header in front of a frame (virtio 1.0: `virtio_net_hdr` with
/// `num_buffers`).
const VIRTIO_HEADER: usize = 12;
/// Where in a buffer the card's part starts.
const CARD_START: usize = HEADROOM as usize - VIRTIO_HEADER;

/// Bytes of the data regions, as the description declares them.
const DATA_BYTES: usize = atoll_pd_net::NET_BUFFERS as usize * NET_BUF_SIZE as usize;
/// Bytes of the private virtqueue region.
const DMA_BYTES: usize = 0x1_0000;
/// Bytes of the card's register page.
const REGS_BYTES: usize = 0x1000;
/// The ledger's words: one bit per buffer.
const LEDGER_WORDS: usize = (atoll_pd_net::NET_BUFFERS as usize).div_ceil(64);

type Nic = VirtIONetRaw<AtollHal, MmioTransport<'static>, VIRTQ>;

/// What the driver counts (reported when it changes by a power of two, so a flood of bad
/// descriptors cannot flood the log).
#[derive(Default)]
struct Counters {
    received: u64,
    sent: u64,
    /// Descriptors from the client that named no buffer, or one the driver already held.
    bad: u64,
    /// Frames the client asked to send that were too short or too long.
    refused: u64,
}

struct Driver {
    nic: Nic,
    queues: DriverSide<'static, NET_QUEUE_SLOTS>,
    rx_base: usize,
    tx_base: usize,
    /// The receive buffers the driver holds (from the client, not yet returned).
    rx_held: Ledger<LEDGER_WORDS>,
    /// The transmit buffers the driver holds.
    tx_held: Ledger<LEDGER_WORDS>,
    /// The buffer of each virtqueue request in flight, by the card's token.
    rx_tokens: [Option<Desc>; VIRTQ],
    tx_tokens: [Option<Desc>; VIRTQ],
    counters: Counters,
}

#[protection_domain(stack_size = 0x10000)]
fn init() -> NetDriver {
    debug_println!("net_driver: running at EL0");
    let regs = memory_region_symbol!(net_regs: *mut u8, bytes = REGS_BYTES);
    let dma = memory_region_symbol!(net_dma: *mut u8, bytes = DMA_BYTES);
    let rx = memory_region_symbol!(net_rx_data: *mut u8, bytes = DATA_BYTES);
    let tx = memory_region_symbol!(net_tx_data: *mut u8, bytes = DATA_BYTES);
    let queues = memory_region_symbol!(net_queues: *mut u8, bytes = QUEUES_BYTES);
    let window = |vaddr: NonNull<u8>, paddr: u64, size: usize| DmaWindow {
        vaddr: vaddr.as_ptr() as usize,
        paddr,
        size,
    };
    DmaPool::init(
        window(dma, *var!(net_dma_paddr: u64 = 0), DMA_BYTES),
        window(rx, *var!(net_rx_data_paddr: u64 = 0), DATA_BYTES),
        window(tx, *var!(net_tx_data_paddr: u64 = 0), DATA_BYTES),
    );
    // SAFETY: the description maps `net_regs` (the board's `net0`) uncached into this PD
    // alone, and nothing else here touches it.
    let Some(transport) = (unsafe { find_net(regs, REGS_BYTES) }) else {
        // The board's NIC is not a virtio-net card (or QEMU was started without one): no
        // network, and nothing else changes.
        debug_println!("net_driver: no virtio-net card at the board's net0: no network");
        return NetDriver::NoCard;
    };
    let nic = Nic::new(transport).unwrap_or_else(|e| panic!("virtio-net set-up failed: {e:?}"));
    // SAFETY: `net_queues` is mapped read-write into this PD and its client only, for the
    // PD's lifetime, and is only used through the queue types (atomics).
    let region = unsafe { core::slice::from_raw_parts_mut(queues.as_ptr(), QUEUES_BYTES) };
    let net = NetQueues::<NET_QUEUE_SLOTS>::init(region, geometry(), geometry())
        .unwrap_or_else(|e| panic!("net_queues: {e:?}"));
    let mac = nic.mac_address();
    debug_println!(
        "net_driver: virtio-net card {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, queues ready",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );
    let mut driver = Driver {
        nic,
        queues: net.driver(),
        rx_base: rx.as_ptr() as usize,
        tx_base: tx.as_ptr() as usize,
        rx_held: Ledger::new(geometry(), false).unwrap_or_else(|e| panic!("{e:?}")),
        tx_held: Ledger::new(geometry(), false).unwrap_or_else(|e| panic!("{e:?}")),
        rx_tokens: [None; VIRTQ],
        tx_tokens: [None; VIRTQ],
        counters: Counters::default(),
    };
    driver.nic.enable_interrupts();
    // The client waits for the queues to be set up before it posts its buffers.
    CLIENT.notify();
    driver.serve();
    NetDriver::Serving(driver)
}

/// The driver, or nothing to drive. (Boxing the driver would need a heap for nothing: the
/// PD holds one of these for its lifetime.)
#[expect(clippy::large_enum_variant)]
enum NetDriver {
    Serving(Driver),
    NoCard,
}

impl Driver {
    /// The card's view of buffer `desc` of the region at `base`: from [`CARD_START`] to the
    /// buffer's end.
    fn card_buffer(base: usize, desc: &Desc) -> &'static mut [u8] {
        let start = base + desc.offset as usize + CARD_START;
        // SAFETY: `desc` passed the geometry check (its buffer lies inside the data region,
        // mapped into this PD), and the ledger shows the driver holds it: the client has
        // handed it over. The slice is only passed to the card (its physical address), never
        // read through: a client that breaks the protocol and writes the buffer meanwhile
        // changes only the frame it gets or sends.
        unsafe {
            core::slice::from_raw_parts_mut(start as *mut u8, NET_BUF_SIZE as usize - CARD_START)
        }
    }

    /// Moves everything that can move, until nothing does.
    fn serve(&mut self) {
        loop {
            let mut moved = self.collect_received();
            moved |= self.collect_sent();
            moved |= self.post_receive_buffers();
            moved |= self.send();
            // Both flags are taken (and cleared) every round.
            let rx_wanted = self.queues.rx_active.signal_needed();
            let tx_wanted = self.queues.tx_free.signal_needed();
            if rx_wanted || tx_wanted {
                CLIENT.notify();
            }
            if moved {
                continue;
            }
            // Ask the client for a notification on the queues it fills, then look once more:
            // a descriptor enqueued in between is found now rather than lost. A queue whose
            // virtqueue is full waits for the card instead (its interrupt).
            let rx_room = self.rx_tokens.iter().any(Option::is_none);
            let tx_room = self.tx_tokens.iter().any(Option::is_none);
            let rx_quiet = !rx_room || self.queues.rx_free.ready_to_wait().unwrap_or(true);
            let tx_quiet = !tx_room || self.queues.tx_active.ready_to_wait().unwrap_or(true);
            if rx_quiet && tx_quiet {
                return;
            }
        }
    }

    /// Frames the card received, to the client.
    fn collect_received(&mut self) -> bool {
        let mut moved = false;
        while let Some(token) = self.nic.poll_receive() {
            let Some(desc) = self
                .rx_tokens
                .get_mut(token as usize)
                .and_then(Option::take)
            else {
                // A token the driver did not hand out: the card is broken. Nothing to give.
                debug_println!("net_driver: the card completed unknown receive {token}");
                return moved;
            };
            let buffer = Self::card_buffer(self.rx_base, &desc);
            // SAFETY: the same buffer as handed to `receive_begin` for this token.
            let len = match unsafe { self.nic.receive_complete(token, buffer) } {
                Ok((header, frame)) if header == VIRTIO_HEADER => frame,
                _ => 0,
            };
            moved = true;
            self.counters.received += 1;
            let frame = Desc::new(desc.offset, HEADROOM + len as u32);
            let _ = self.rx_held.give(&frame);
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
        while let Some(token) = self.nic.poll_transmit() {
            let Some(desc) = self
                .tx_tokens
                .get_mut(token as usize)
                .and_then(Option::take)
            else {
                debug_println!("net_driver: the card completed unknown send {token}");
                return moved;
            };
            let buffer = Self::card_buffer(self.tx_base, &desc);
            // SAFETY: the same buffer as handed to `transmit_begin` for this token.
            let _ = unsafe {
                self.nic
                    .transmit_complete(token, &buffer[..desc.len as usize - CARD_START])
            };
            moved = true;
            self.counters.sent += 1;
            self.give_back_tx(desc);
        }
        moved
    }

    fn give_back_tx(&mut self, desc: Desc) {
        let empty = Desc::new(desc.offset, 0);
        let _ = self.tx_held.give(&empty);
        if self.queues.tx_free.enqueue(empty).is_err() {
            self.counters.bad += 1;
        }
    }

    /// Empty buffers from the client, to the card.
    fn post_receive_buffers(&mut self) -> bool {
        let mut moved = false;
        while self.rx_tokens.iter().any(Option::is_none) {
            let Some(desc) = handed_over(
                &mut self.queues.rx_free,
                &mut self.rx_held,
                &mut self.counters,
            ) else {
                break;
            };
            moved = true;
            let buffer = Self::card_buffer(self.rx_base, &desc);
            // SAFETY: the driver holds the buffer until the card completes this request.
            match unsafe { self.nic.receive_begin(buffer) } {
                Ok(token) => match self.rx_tokens.get_mut(token as usize) {
                    Some(slot) => *slot = Some(desc),
                    None => self.counters.count_bad(),
                },
                Err(_) => {
                    // The virtqueue is full after all: hand the buffer straight back.
                    let _ = self.rx_held.give(&desc);
                    let _ = self
                        .queues
                        .rx_active
                        .enqueue(Desc::new(desc.offset, HEADROOM));
                    break;
                }
            }
        }
        moved
    }

    /// Frames from the client, to the card.
    fn send(&mut self) -> bool {
        let mut moved = false;
        while self.tx_tokens.iter().any(Option::is_none) {
            let Some(desc) = handed_over(
                &mut self.queues.tx_active,
                &mut self.tx_held,
                &mut self.counters,
            ) else {
                break;
            };
            moved = true;
            // An Ethernet frame has at least its 14-byte header.
            if desc.len < HEADROOM + 14 {
                self.counters.refused += 1;
                self.give_back_tx(desc);
                continue;
            }
            let buffer = Self::card_buffer(self.tx_base, &desc);
            let mut header = [0u8; VIRTIO_HEADER];
            let _ = self.nic.fill_buffer_header(&mut header);
            buffer[..VIRTIO_HEADER].copy_from_slice(&header);
            let frame = &buffer[..desc.len as usize - CARD_START];
            // SAFETY: the driver holds the buffer until the card completes this request.
            match unsafe { self.nic.transmit_begin(frame) } {
                Ok(token) => match self.tx_tokens.get_mut(token as usize) {
                    Some(slot) => *slot = Some(desc),
                    None => self.counters.count_bad(),
                },
                Err(_) => {
                    self.counters.refused += 1;
                    self.give_back_tx(desc);
                    break;
                }
            }
        }
        moved
    }
}

impl Counters {
    /// Counts a bad descriptor, logging at powers of two.
    fn count_bad(&mut self) {
        self.bad += 1;
        if self.bad.is_power_of_two() {
            debug_println!(
                "net_driver: {} bad descriptors from the client so far (dropped)",
                self.bad
            );
        }
    }
}

/// The next buffer the client handed over on `queue` that is one of the region's and not
/// one the driver holds already (recorded in `held`); bad descriptors are dropped and
/// counted. `None` once the queue is empty.
fn handed_over(
    queue: &mut Consumer<'static, NET_QUEUE_SLOTS>,
    held: &mut Ledger<LEDGER_WORDS>,
    counters: &mut Counters,
) -> Option<Desc> {
    loop {
        match queue.dequeue() {
            Ok(Some(desc)) if held.receive(&desc).is_ok() => return Some(desc),
            Ok(Some(_)) | Err(_) => counters.count_bad(),
            Ok(None) => return None,
        }
    }
}

impl Handler for NetDriver {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let NetDriver::Serving(driver) = self else {
            return Ok(());
        };
        driver.notified(channels);
        Ok(())
    }
}

impl Driver {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(DEVICE) {
            self.nic.ack_interrupt();
        }
        self.serve();
        if channels.contains(DEVICE) {
            let _ = DEVICE.irq_ack();
        }
    }
}
