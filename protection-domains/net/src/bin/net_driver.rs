//! The network driver PD: drives the board's NIC (`net0`) and serves one client, the
//! network stack.
//!
//! It owns the card's registers (mapped uncached into it alone), its interrupt (channel 0)
//! and its private DMA memory (`net_dma` for virtqueues), and serves the client on channel 1
//! through the four queues of the `net_queues` region and the buffers of the `net_rx_data`
//! and `net_tx_data` regions (see `atoll_channels::queue`). Which card it drives follows from
//! the physical address of its registers (`atoll_pd_net::card_kind`), so one program serves
//! every board.
#![no_std]
#![no_main]

use core::ptr::NonNull;

use atoll_channels::queue::NetQueues;
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, memory_region_symbol,
    protection_domain, var,
};
use atoll_pd_net::driver::{Counters, Driver, Nic, Region};
use atoll_pd_net::enet::EnetNic;
use atoll_pd_net::gem::GemNic;
use atoll_pd_net::virtio::{DmaPool, DmaWindow, VirtioNic, find_net};
use atoll_pd_net::{
    DeviceKind, NET_BUF_SIZE, NET_QUEUE_SLOTS, QUEUES_BYTES, card_kind, crossed_power_of_two,
    geometry,
};

/// The card's interrupt.
const DEVICE: Channel = Channel::new(0);
/// The client (the network stack).
const CLIENT: Channel = Channel::new(1);

/// Bytes of the data regions, as the description declares them.
const DATA_BYTES: usize = atoll_pd_net::NET_BUFFERS as usize * NET_BUF_SIZE as usize;
/// Bytes of the private DMA region.
const DMA_BYTES: usize = 0x1_0000;
/// Bytes of the private uncached region of descriptor rings.
const RINGS_BYTES: usize = 0x4000;
/// Bytes of the card's register page.
const REGS_BYTES: usize = 0x1000;

#[protection_domain(stack_size = 0x10000)]
fn init() -> NetDriver {
    debug_println!("net_driver: running at EL0");
    let regs = memory_region_symbol!(net_regs: *mut u8, bytes = REGS_BYTES);
    let regs_paddr = *var!(net_regs_paddr: u64 = 0);
    let dma = memory_region_symbol!(net_dma: *mut u8, bytes = DMA_BYTES);
    let rx = memory_region_symbol!(net_rx_data: *mut u8, bytes = DATA_BYTES);
    let tx = memory_region_symbol!(net_tx_data: *mut u8, bytes = DATA_BYTES);
    let queues = memory_region_symbol!(net_queues: *mut u8, bytes = QUEUES_BYTES);
    let region = |vaddr: NonNull<u8>, paddr: u64| Region {
        vaddr: vaddr.as_ptr() as usize,
        paddr,
    };
    let rx = region(rx, *var!(net_rx_data_paddr: u64 = 0));
    let tx = region(tx, *var!(net_tx_data_paddr: u64 = 0));
    let window = |region: Region, size: usize| DmaWindow {
        vaddr: region.vaddr,
        paddr: region.paddr,
        size,
    };
    let dma = region(dma, *var!(net_dma_paddr: u64 = 0));
    let rings = memory_region_symbol!(net_rings: *mut u8, bytes = RINGS_BYTES);
    let rings = region(rings, *var!(net_rings_paddr: u64 = 0));

    // SAFETY (for the three cards' set-up below): the description maps `net_regs` (the
    // board's `net0`) and `net_rings` uncached into this PD alone, and nothing else here
    // touches them.
    let kind = card_kind(regs_paddr);
    let nic = match kind {
        Some(DeviceKind::VirtioMmio) => {
            DmaPool::init(
                window(dma, DMA_BYTES),
                window(rx, DATA_BYTES),
                window(tx, DATA_BYTES),
            );
            // SAFETY: see above.
            let Some(transport) = (unsafe { find_net(regs, REGS_BYTES) }) else {
                // QEMU was started without a card: no network, and nothing else changes.
                debug_println!("net_driver: no virtio-net card at the board's net0: no network");
                return NetDriver::NoCard;
            };
            VirtioNic::new(transport).ok().map(Card::Virtio)
        }
        Some(DeviceKind::CadenceGem) => {
            // SAFETY: see above.
            unsafe { GemNic::new(regs, rings, RINGS_BYTES) }.map(Card::Gem)
        }
        Some(DeviceKind::ImxEnet) => {
            // SAFETY: see above.
            unsafe { EnetNic::new(regs, rings, RINGS_BYTES) }.map(Card::Enet)
        }
        _ => None,
    };
    let Some(nic) = nic else {
        debug_println!(
            "net_driver: the card at {regs_paddr:#x} ({kind:?}) could not be set up: no network"
        );
        return NetDriver::NoCard;
    };
    // SAFETY: `net_queues` is mapped read-write into this PD and its client only, for the
    // PD's lifetime, and is only used through the queue types (atomics).
    let shared = unsafe { core::slice::from_raw_parts_mut(queues.as_ptr(), QUEUES_BYTES) };
    let net = NetQueues::<NET_QUEUE_SLOTS>::init(shared, geometry(), geometry())
        .unwrap_or_else(|e| panic!("net_queues: {e:?}"));
    let queues = net.driver();
    let mut driver = match nic {
        Card::Virtio(nic) => NetDriver::Virtio(Driver::new(nic, queues, rx, tx)),
        Card::Gem(nic) => NetDriver::Gem(Driver::new(nic, queues, rx, tx)),
        Card::Enet(nic) => NetDriver::Enet(Driver::new(nic, queues, rx, tx)),
    };
    let [a, b, c, d, e, f] = driver.mac();
    debug_println!(
        "net_driver: {kind:?} card {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}, queues ready"
    );
    // The client waits for the queues to be set up before it posts its buffers.
    CLIENT.notify();
    let _ = driver.notified(ChannelSet::from_badge(0));
    driver
}

/// A card that is set up (held only until its driver is made).
#[expect(clippy::large_enum_variant)]
enum Card {
    Virtio(VirtioNic),
    Gem(GemNic),
    Enet(EnetNic),
}

/// The driver of the board's card, or nothing to drive. (Boxing the driver would need a
/// heap for nothing: the PD holds one of these for its lifetime.)
#[expect(clippy::large_enum_variant)]
enum NetDriver {
    Virtio(Driver<'static, VirtioNic>),
    Gem(Driver<'static, GemNic>),
    Enet(Driver<'static, EnetNic>),
    NoCard,
}

impl NetDriver {
    fn mac(&self) -> [u8; 6] {
        match self {
            NetDriver::Virtio(driver) => driver.nic.mac(),
            NetDriver::Gem(driver) => driver.nic.mac(),
            NetDriver::Enet(driver) => driver.nic.mac(),
            NetDriver::NoCard => [0; 6],
        }
    }
}

impl Handler for NetDriver {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        match self {
            NetDriver::Virtio(driver) => serve(driver, channels),
            NetDriver::Gem(driver) => serve(driver, channels),
            NetDriver::Enet(driver) => serve(driver, channels),
            NetDriver::NoCard => {}
        }
        Ok(())
    }
}

/// Serves after `channels` fired: clears the card's interrupt, moves what can move, tells
/// the client if it asked, and takes the next interrupt.
fn serve<N: Nic>(driver: &mut Driver<'static, N>, channels: ChannelSet) {
    let device = channels.contains(DEVICE);
    if device {
        driver.nic.ack_interrupt();
    }
    let before = driver.counters;
    if driver.serve() {
        CLIENT.notify();
    }
    report(&before, &driver.counters);
    if device {
        let _ = DEVICE.irq_ack();
    }
}

/// Logs the client's bad descriptors and the card's errors when their count reaches a
/// power of two, so that a flood of them cannot flood the log.
fn report(before: &Counters, now: &Counters) {
    let crossed = crossed_power_of_two;
    if crossed(before.bad, now.bad) {
        debug_println!(
            "net_driver: {} bad descriptors from the client so far (dropped)",
            now.bad
        );
    }
    if crossed(before.card_errors, now.card_errors) {
        debug_println!(
            "net_driver: the card returned {} buffers it was not given",
            now.card_errors
        );
    }
}
