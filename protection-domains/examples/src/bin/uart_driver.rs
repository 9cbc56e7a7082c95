//! A UART receive driver (`uart/system.xml`): the PL011's receive interrupt arrives on
//! channel 0; each time, the driver drains the receive FIFO into a line buffer and prints
//! every complete line. The interrupt is acknowledged as a deferred action, so the
//! acknowledgement and the next receive are one system call.
#![no_std]
#![no_main]

use core::ptr::NonNull;

use atoll_microkit::{
    Channel, ChannelSet, DeferredAction, DeferredActionSlot, Handler, IrqAckError, debug_println,
    memory_region_symbol, pd_name, protection_domain,
};

/// The PL011's receive interrupt.
const RX_IRQ: Channel = Channel::new(0);

/// PL011 registers (byte offsets) and bits (Arm PrimeCell UART PL011 TRM).
mod pl011 {
    /// Data: reading pops the receive FIFO; bits 8..11 are the error flags.
    pub const DR: usize = 0x000;
    /// Flags.
    pub const FR: usize = 0x018;
    /// Receive FIFO empty.
    pub const FR_RXFE: u32 = 1 << 4;
    /// Interrupt mask set/clear.
    pub const IMSC: usize = 0x038;
    /// Interrupt clear.
    pub const ICR: usize = 0x044;
    /// Receive and receive-timeout interrupts.
    pub const RX_INTERRUPTS: u32 = (1 << 4) | (1 << 6);
    /// Framing, parity, break and overrun errors in DR.
    pub const DR_ERRORS: u32 = 0xF00;
}

/// The longest line kept; longer lines are cut and marked.
const LINE: usize = 80;

/// The PL011's registers, mapped uncached at the address the tool patched.
struct Pl011 {
    base: NonNull<u32>,
}

impl Pl011 {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the register offsets above, inside the 4 KiB device
        // page the description maps read-write and uncached at `base`.
        unsafe { self.base.byte_add(offset).read_volatile() }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.base.byte_add(offset).write_volatile(value) }
    }

    /// The next received byte and whether it arrived with an error, if any is waiting.
    fn receive(&self) -> Option<(u8, bool)> {
        if self.read(pl011::FR) & pl011::FR_RXFE != 0 {
            return None;
        }
        let data = self.read(pl011::DR);
        Some((data as u8, data & pl011::DR_ERRORS != 0))
    }
}

struct Driver {
    uart: Pl011,
    line: [u8; LINE],
    len: usize,
    cut: bool,
    lines: u64,
    errors: u64,
    ack: DeferredActionSlot,
}

impl Driver {
    /// Clears the receive interrupts, then empties the FIFO. In that order: a byte that
    /// arrives after the last read raises the interrupt again rather than being missed.
    fn drain(&mut self) {
        self.uart.write(pl011::ICR, pl011::RX_INTERRUPTS);
        while let Some((byte, error)) = self.uart.receive() {
            if error {
                self.errors += 1;
                debug_println!(
                    "{}: receive error {} (byte dropped)",
                    pd_name().unwrap(),
                    self.errors
                );
                continue;
            }
            self.take(byte);
        }
    }

    fn take(&mut self, byte: u8) {
        match byte {
            b'\r' | b'\n' => {
                if self.len > 0 || self.cut {
                    self.lines += 1;
                    let text =
                        core::str::from_utf8(&self.line[..self.len]).unwrap_or("<not UTF-8>");
                    let more = if self.cut { "..." } else { "" };
                    debug_println!("{}: line {}: {text}{more}", pd_name().unwrap(), self.lines);
                }
                self.len = 0;
                self.cut = false;
            }
            _ if self.len < LINE => {
                self.line[self.len] = byte;
                self.len += 1;
            }
            _ => self.cut = true,
        }
    }
}

#[protection_domain]
fn init() -> impl Handler {
    let uart = Pl011 {
        base: memory_region_symbol!(pl011_base: *mut u32),
    };
    // Interrupt on received bytes and on a receive timeout.
    uart.write(pl011::IMSC, uart.read(pl011::IMSC) | pl011::RX_INTERRUPTS);
    debug_println!("{}: listening", pd_name().unwrap());
    let mut driver = Driver {
        uart,
        line: [0; LINE],
        len: 0,
        cut: false,
        lines: 0,
        errors: 0,
        ack: DeferredActionSlot::new(),
    };
    // Bytes typed before now raised no interrupt we can still see.
    driver.drain();
    driver
}

impl Handler for Driver {
    type Error = IrqAckError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(RX_IRQ) {
            return Ok(());
        }
        self.drain();
        self.ack.defer_irq_ack(RX_IRQ)
    }

    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        self.ack.take()
    }
}
