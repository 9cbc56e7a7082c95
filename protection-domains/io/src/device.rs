//! smoltcp's view of the network driver PD: frames come and go through the queues of
//! `atoll_channels::queue`, as its client side.
//!
//! At the start this PD owns every buffer of both data regions; it posts the receive buffers
//! on rx `free` and keeps the transmit buffers. A received frame is copied out of its buffer
//! (the driver could still write it: shared memory is read once, then parsed) and the buffer
//! is posted again at once. A frame to send is built in a local buffer, copied into a
//! transmit buffer and put on tx `active`; the buffer comes back on tx `free` once sent.

use atoll_channels::queue::{ClientSide, DataRegion, Desc, Ledger};
use atoll_pd_net::{HEADROOM, MAX_FRAME, NET_BUFFERS, NET_QUEUE_SLOTS, geometry};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// One bit per buffer.
const LEDGER_WORDS: usize = (NET_BUFFERS as usize).div_ceil(64);

/// What the device counts.
#[derive(Default, Clone, Copy)]
pub struct Counters {
    /// Frames received.
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// Descriptors from the driver that named no buffer or one this side holds: dropped.
    pub bad: u64,
    /// Frames smoltcp wanted to send with no transmit buffer free: dropped.
    pub no_buffer: u64,
}

/// The client side of the driver's queues.
pub struct NetDevice {
    queues: ClientSide<'static, NET_QUEUE_SLOTS>,
    rx: DataRegion<'static>,
    tx: DataRegion<'static>,
    /// The receive buffers this side holds (none once they are all posted).
    rx_held: Ledger<LEDGER_WORDS>,
    /// The transmit buffers this side holds: free to use.
    tx_held: Ledger<LEDGER_WORDS>,
    /// Whether the driver should be told that a queue it reads has something.
    pub kick: bool,
    /// What the device counted.
    pub counters: Counters,
}

impl NetDevice {
    /// The device over the driver's queues; posts every receive buffer.
    pub fn new(
        queues: ClientSide<'static, NET_QUEUE_SLOTS>,
        rx: DataRegion<'static>,
        tx: DataRegion<'static>,
    ) -> Self {
        let ledger = || Ledger::new(geometry(), true).unwrap_or_else(|e| panic!("{e:?}"));
        let mut device = Self {
            queues,
            rx,
            tx,
            rx_held: ledger(),
            tx_held: ledger(),
            kick: false,
            counters: Counters::default(),
        };
        for index in 0..NET_BUFFERS {
            if let Some(offset) = geometry().offset(index) {
                device.post_rx(Desc::new(offset, 0));
            }
        }
        device
    }

    /// Hands receive buffer `desc` to the driver.
    fn post_rx(&mut self, desc: Desc) {
        let empty = Desc::new(desc.offset, 0);
        if self.rx_held.give(&empty).is_ok() && self.queues.rx_free.enqueue(empty).is_ok() {
            self.kick |= self.queues.rx_free.signal_needed();
        }
    }

    /// Takes back the transmit buffers the driver has sent.
    fn reclaim_tx(&mut self) {
        loop {
            match self.queues.tx_free.dequeue() {
                Ok(Some(desc)) => {
                    if self.tx_held.receive(&desc).is_err() {
                        self.counters.bad += 1;
                    }
                }
                Ok(None) => return,
                Err(_) => self.counters.bad += 1,
            }
        }
    }

    /// Whether nothing is waiting in the queues this side reads; asks the driver for a
    /// notification when something arrives (looking once more after asking).
    pub fn ready_to_wait(&mut self) -> bool {
        self.reclaim_tx();
        let rx = self.queues.rx_active.ready_to_wait().unwrap_or(true);
        let tx = self.queues.tx_free.ready_to_wait().unwrap_or(true);
        rx && tx
    }
}

/// A received frame, copied out of its buffer.
pub struct Rx {
    frame: [u8; MAX_FRAME as usize],
    len: usize,
}

impl phy::RxToken for Rx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame.get(..self.len).unwrap_or(&[]))
    }
}

/// Room to send one frame.
pub struct Tx<'a>(&'a mut NetDevice);

impl phy::TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let device = self.0;
        let mut frame = [0u8; MAX_FRAME as usize];
        let len = len.min(frame.len());
        let result = f(&mut frame[..len]);
        device.reclaim_tx();
        let Some(index) = device.tx_held.any() else {
            device.counters.no_buffer += 1;
            return result;
        };
        let Some(offset) = geometry().offset(index) else {
            return result;
        };
        let desc = Desc::new(offset, HEADROOM + len as u32);
        let written = device
            .tx
            .window(&Desc::new(offset, 0))
            .and_then(|window| window.write(HEADROOM as usize, &frame[..len]));
        if written.is_ok()
            && device.tx_held.give(&desc).is_ok()
            && device.queues.tx_active.enqueue(desc).is_ok()
        {
            device.counters.sent += 1;
            device.kick |= device.queues.tx_active.signal_needed();
        }
        result
    }
}

impl phy::Device for NetDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // A frame is taken in only with room to answer it: smoltcp may send at once (an
        // ACK, a reply), and a frame it sends with no buffer to carry it would be lost until
        // its retransmission. Without room, frames wait in the queue until the driver hands
        // transmit buffers back (it notifies then).
        self.reclaim_tx();
        self.tx_held.any()?;
        loop {
            let desc = match self.queues.rx_active.dequeue() {
                Ok(Some(desc)) => desc,
                Ok(None) => return None,
                Err(_) => {
                    self.counters.bad += 1;
                    continue;
                }
            };
            if self.rx_held.receive(&desc).is_err() {
                self.counters.bad += 1;
                continue;
            }
            let mut rx = Rx {
                frame: [0; MAX_FRAME as usize],
                len: (desc.len.saturating_sub(HEADROOM) as usize).min(MAX_FRAME as usize),
            };
            let copied = self
                .rx
                .window(&desc)
                .and_then(|window| window.read(HEADROOM as usize, &mut rx.frame[..rx.len]));
            self.post_rx(desc);
            if copied.is_err() || rx.len == 0 {
                self.counters.bad += 1;
                continue;
            }
            self.counters.received += 1;
            return Some((rx, Tx(self)));
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.reclaim_tx();
        self.tx_held.any().is_some().then_some(Tx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME as usize;
        caps
    }
}
