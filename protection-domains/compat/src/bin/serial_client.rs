//! The serial client of `serial/system.xml`, in upstream style (the shape of the assistant
//! in rust-sel4's banscii example): it reads the bytes the driver received from the ring in
//! region `serial_rx`, and for every line writes `echo: <the line in capitals>` back
//! through the ring in region `serial_tx`, then notifies the driver to transmit it. It
//! notifies the driver after every batch it takes, so a driver that stopped receiving
//! because the ring was full knows there is room again.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::NonNull;

use atoll_channels::ring::{Consumer, Producer, RingError, SharedRing};
use sel4_microkit::{
    Channel, ChannelSet, Handler, debug_println, memory_region_symbol, pd_name, protection_domain,
};

/// The driver.
const DRIVER: Channel = Channel::new(0);

/// 16 messages of up to 56 bytes, each way (the driver's geometry).
type Ring = SharedRing<16, 7>;
/// Bytes of each ring's region.
const REGION: usize = 0x1000;
/// The longest line kept; the rest of a longer one is dropped.
const LINE: usize = 80;

/// A ring that cannot be used.
#[derive(Debug)]
struct Error(RingError);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring: {:?}", self.0)
    }
}

fn region(base: NonNull<[u8]>) -> &'static mut [u8] {
    // SAFETY: the description maps the region read-write for this PD's whole life, and
    // both PDs use it only through a ring of this geometry.
    unsafe { &mut *base.as_ptr() }
}

struct Client {
    rx: Option<Consumer<'static, 16, 7>>,
    tx: Producer<'static, 16, 7>,
    line: [u8; LINE],
    len: usize,
}

impl Client {
    /// Queues `echo: <line in capitals>` and a line end for the driver, a message at a
    /// time.
    fn answer(&mut self) -> Result<(), Error> {
        let mut out = [0u8; 6 + LINE + 2];
        out[..6].copy_from_slice(b"echo: ");
        for (o, b) in out[6..].iter_mut().zip(&self.line[..self.len]) {
            *o = b.to_ascii_uppercase();
        }
        let end = 6 + self.len;
        out[end..end + 2].copy_from_slice(b"\r\n");
        for chunk in out[..end + 2].chunks(Ring::MESSAGE_BYTES) {
            match self.tx.try_send(chunk) {
                // The driver, of higher priority, empties the ring as soon as it is
                // notified; then there is room.
                Err(RingError::WouldBlock) => {
                    DRIVER.notify();
                    self.tx.try_send(chunk).map_err(Error)?;
                }
                result => result.map_err(Error)?,
            }
        }
        Ok(())
    }

    fn take(&mut self, byte: u8) -> Result<bool, Error> {
        match byte {
            b'\r' | b'\n' if self.len > 0 => {
                self.answer()?;
                self.len = 0;
                Ok(true)
            }
            b'\r' | b'\n' => Ok(false),
            _ if self.len < LINE => {
                self.line[self.len] = byte;
                self.len += 1;
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

impl Client {
    /// Takes every message the driver queued; whether a line was answered.
    fn pump(&mut self, rx: &mut Consumer<'static, 16, 7>) -> Result<bool, Error> {
        let mut message = [0u8; Ring::MESSAGE_BYTES];
        let mut answered = false;
        loop {
            let len = match rx.try_recv(&mut message) {
                Ok(len) => len,
                Err(RingError::WouldBlock) => return Ok(answered),
                Err(e) => return Err(Error(e)),
            };
            for &b in &message[..len] {
                answered |= self.take(b)?;
            }
        }
    }
}

impl Handler for Client {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(DRIVER) {
            return Ok(());
        }
        let mut rx = match self.rx.take() {
            Some(rx) => rx,
            None => {
                let base = memory_region_symbol!(serial_rx: *mut [u8], n = REGION);
                Ring::attach(region(base))
                    .and_then(|ring| ring.consumer())
                    .map_err(Error)?
            }
        };
        let answered = self.pump(&mut rx);
        self.rx = Some(rx);
        answered?;
        DRIVER.notify();
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    let base = memory_region_symbol!(serial_tx: *mut [u8], n = REGION);
    let tx = Ring::init(region(base)).and_then(|ring| ring.producer());
    debug_println!("{}: ready", pd_name().unwrap());
    Client {
        rx: None,
        tx: tx.unwrap(),
        line: [0; LINE],
        len: 0,
    }
}
