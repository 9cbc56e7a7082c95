//! The serial driver of `serial/system.xml`, in upstream style (the shape of the serial
//! driver in rust-sel4's banscii example): it owns the PL011. Received bytes go to the
//! client through the ring in region `serial_rx`, followed by a notify; bytes the client
//! puts in the ring in region `serial_tx` (then notifies) are transmitted. The receive
//! interrupt is acknowledged as a deferred action.
//!
//! Nothing typed is lost: when the client's ring is full, the driver stops taking bytes
//! from the UART and masks its receive interrupt, so input waits in the UART's FIFO (and,
//! past that, in whatever feeds the line) until the client has taken messages and
//! notified; then the driver drains again.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::NonNull;

use atoll_channels::ring::{Consumer, Producer, RingError, SharedRing};
use sel4_microkit::{
    Channel, ChannelSet, DeferredAction, DeferredActionSlot, Handler, IrqAckError, debug_println,
    memory_region_symbol, pd_name, protection_domain,
};

/// The PL011's receive interrupt.
const IRQ: Channel = Channel::new(0);
/// The client.
const CLIENT: Channel = Channel::new(1);

/// 16 messages of up to 56 bytes, each way.
type Ring = SharedRing<16, 7>;
/// Bytes of each ring's region.
const REGION: usize = 0x1000;

/// PL011 registers (byte offsets) and bits (Arm PrimeCell UART PL011 TRM).
mod pl011 {
    pub const DR: usize = 0x000;
    pub const FR: usize = 0x018;
    /// Receive FIFO empty.
    pub const FR_RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const FR_TXFF: u32 = 1 << 5;
    pub const IMSC: usize = 0x038;
    pub const ICR: usize = 0x044;
    /// Receive and receive-timeout interrupts.
    pub const RX_INTERRUPTS: u32 = (1 << 4) | (1 << 6);
}

struct Pl011(NonNull<u32>);

impl Pl011 {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the register offsets above, inside the 4 KiB device
        // page the description maps read-write and uncached for this PD.
        unsafe { self.0.byte_add(offset).read_volatile() }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.0.byte_add(offset).write_volatile(value) }
    }

    fn receive(&self) -> Option<u8> {
        (self.read(pl011::FR) & pl011::FR_RXFE == 0).then(|| self.read(pl011::DR) as u8)
    }

    fn transmit(&self, byte: u8) {
        while self.read(pl011::FR) & pl011::FR_TXFF != 0 {}
        self.write(pl011::DR, u32::from(byte));
    }
}

/// What stops the driver: a ring it cannot use.
#[derive(Debug)]
enum Error {
    Ring(RingError),
    Irq(IrqAckError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ring(e) => write!(f, "ring: {e:?}"),
            Error::Irq(e) => write!(f, "{e}"),
        }
    }
}

struct Driver {
    uart: Pl011,
    rx: Producer<'static, 16, 7>,
    tx: Option<Consumer<'static, 16, 7>>,
    /// Bytes taken from the UART that the full ring could not take yet.
    held: [u8; Ring::MESSAGE_BYTES],
    held_len: usize,
    /// The ring was full: receive interrupts are masked until the client makes room.
    stalled: bool,
    ack: DeferredActionSlot,
}

/// The region a ring lives in, as the tool patched its address.
fn region(base: NonNull<[u8]>) -> &'static mut [u8] {
    // SAFETY: the description maps the region read-write for this PD's whole life, and
    // both PDs use it only through a ring of this geometry.
    unsafe { &mut *base.as_ptr() }
}

impl Driver {
    /// Clears the receive interrupts, then empties the FIFO into the ring, a message of up
    /// to 56 bytes at a time. When the ring is full, the message in hand is held, the
    /// receive interrupts are masked and the rest stays in the FIFO; `Ok(true)` if
    /// anything went to the client.
    fn drain(&mut self) -> Result<bool, Error> {
        self.uart.write(pl011::ICR, pl011::RX_INTERRUPTS);
        let mut sent = false;
        loop {
            while self.held_len < self.held.len()
                && let Some(byte) = self.uart.receive()
            {
                self.held[self.held_len] = byte;
                self.held_len += 1;
            }
            if self.held_len == 0 {
                break;
            }
            match self.rx.try_send(&self.held[..self.held_len]) {
                Ok(()) => {
                    sent = true;
                    self.held_len = 0;
                }
                Err(RingError::WouldBlock) => {
                    self.stall(true);
                    return Ok(sent);
                }
                Err(e) => return Err(Error::Ring(e)),
            }
        }
        self.stall(false);
        Ok(sent)
    }

    /// Masks (`true`) or unmasks the receive interrupts.
    fn stall(&mut self, stalled: bool) {
        if stalled != self.stalled {
            let mask = self.uart.read(pl011::IMSC);
            let mask = if stalled {
                mask & !pl011::RX_INTERRUPTS
            } else {
                mask | pl011::RX_INTERRUPTS
            };
            self.uart.write(pl011::IMSC, mask);
            self.stalled = stalled;
        }
    }

    /// Transmits everything the client has queued.
    fn transmit(&mut self) -> Result<(), Error> {
        let tx = match &mut self.tx {
            Some(tx) => tx,
            None => {
                let base = memory_region_symbol!(serial_tx: *mut [u8], n = REGION);
                let ring = Ring::attach(region(base)).map_err(Error::Ring)?;
                self.tx.insert(ring.consumer().map_err(Error::Ring)?)
            }
        };
        let uart = &self.uart;
        let mut message = [0u8; Ring::MESSAGE_BYTES];
        loop {
            match tx.try_recv(&mut message) {
                Ok(len) => message[..len].iter().for_each(|&b| uart.transmit(b)),
                Err(RingError::WouldBlock) => return Ok(()),
                Err(e) => return Err(Error::Ring(e)),
            }
        }
    }
}

impl Handler for Driver {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        // The client notifies after taking messages (room in the ring) and after queueing
        // output; either way a stalled receive side may go on.
        let drain = channels.contains(IRQ) || (channels.contains(CLIENT) && self.stalled);
        if channels.contains(CLIENT) {
            self.transmit()?;
        }
        if drain && self.drain()? {
            CLIENT.notify();
        }
        if channels.contains(IRQ) {
            self.ack.defer_irq_ack(IRQ).map_err(Error::Irq)?;
        }
        Ok(())
    }

    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        self.ack.take()
    }
}

#[protection_domain]
fn init() -> impl Handler {
    let uart = Pl011(memory_region_symbol!(pl011_base: *mut u32));
    uart.write(pl011::IMSC, uart.read(pl011::IMSC) | pl011::RX_INTERRUPTS);
    let base = memory_region_symbol!(serial_rx: *mut [u8], n = REGION);
    let rx = Ring::init(region(base)).and_then(|ring| ring.producer());
    let mut driver = Driver {
        uart,
        rx: rx.unwrap(),
        tx: None,
        held: [0; Ring::MESSAGE_BYTES],
        held_len: 0,
        stalled: false,
        ack: DeferredActionSlot::new(),
    };
    debug_println!("{}: ready", pd_name().unwrap());
    // Bytes typed before now raised no interrupt that is still visible.
    if driver.drain().unwrap() {
        CLIENT.notify();
    }
    driver
}
