//! Console UART drivers: transmit only, polled. Used by the loader and by the replica that
//! owns the console; nobody else touches the device.

use atoll_abi::spec::UartKind;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// Arm PL011.
    Pl011Regs {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x018 => fr: ReadOnly<u32>),
        (0x01C => _reserved1),
        (0x030 => cr: ReadWrite<u32>),
        (0x034 => @END),
    },
    /// Cadence UART (ZynqMP).
    CadenceRegs {
        (0x000 => cr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x02C => sr: ReadOnly<u32>),
        (0x030 => fifo: ReadWrite<u32>),
        (0x034 => @END),
    },
    /// NXP i.MX UART.
    ImxRegs {
        (0x000 => _reserved0),
        (0x040 => utxd: ReadWrite<u32>),
        (0x044 => _reserved1),
        (0x080 => ucr1: ReadWrite<u32>),
        (0x084 => ucr2: ReadWrite<u32>),
        (0x088 => _reserved2),
        (0x098 => usr2: ReadOnly<u32>),
        (0x09C => _reserved3),
        (0x0B4 => uts: ReadOnly<u32>),
        (0x0B8 => @END),
    }
}

const PL011_FR_TXFF: u32 = 1 << 5;
const PL011_FR_BUSY: u32 = 1 << 3;
const PL011_CR_UARTEN_TXE_RXE: u32 = (1 << 0) | (1 << 8) | (1 << 9);
const CADENCE_CR_TXEN_RXEN: u32 = (1 << 4) | (1 << 2);
const CADENCE_SR_TXFULL: u32 = 1 << 4;
const CADENCE_SR_TXEMPTY: u32 = 1 << 3;
const IMX_UCR1_UARTEN: u32 = 1 << 0;
const IMX_UCR2_SRST_RXEN_TXEN_WS_IRTS: u32 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 5) | (1 << 14);
const IMX_UTS_TXFULL: u32 = 1 << 4;
const IMX_USR2_TXDC: u32 = 1 << 3;

/// What code without Rust (the loader's assembly, which reports an EL3 entry or an exception
/// taken while handling one) needs to print on a UART with the MMU off: two set-up steps,
/// each `register = (register & !clear) | set` (what [`Uart::init`] does), then per byte:
/// wait while bit `full_bit` of the status register is set, write the byte to the transmit
/// register. Offsets are from the UART's base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyUart {
    /// The two set-up steps: (offset, bits cleared, bits set).
    pub init: [(usize, u32, u32); 2],
    /// Offset of the status register.
    pub status: usize,
    /// Bit of the status register that is set while the transmit FIFO is full.
    pub full_bit: u32,
    /// Offset of the transmit register.
    pub tx: usize,
}

impl EarlyUart {
    /// The description for a UART of `kind`.
    pub const fn of(kind: UartKind) -> Self {
        match kind {
            UartKind::Pl011 => EarlyUart {
                init: [(0x030, 0, PL011_CR_UARTEN_TXE_RXE); 2],
                status: 0x018,
                full_bit: PL011_FR_TXFF.trailing_zeros(),
                tx: 0x000,
            },
            UartKind::Cadence => EarlyUart {
                init: [(0x000, u32::MAX, CADENCE_CR_TXEN_RXEN); 2],
                status: 0x02C,
                full_bit: CADENCE_SR_TXFULL.trailing_zeros(),
                tx: 0x030,
            },
            UartKind::Imx => EarlyUart {
                init: [
                    (0x080, 0, IMX_UCR1_UARTEN),
                    (0x084, 0, IMX_UCR2_SRST_RXEN_TXEN_WS_IRTS),
                ],
                status: 0x0B4,
                full_bit: IMX_UTS_TXFULL.trailing_zeros(),
                tx: 0x040,
            },
        }
    }
}

/// A console UART at a mapped address.
#[derive(Clone, Copy, Debug)]
pub struct Uart {
    kind: UartKind,
    base: usize,
}

impl Uart {
    /// A driver for the UART of `kind` whose registers are mapped at `base`.
    ///
    /// # Safety
    ///
    /// `base` must map the device's registers (device memory) for as long as the driver is
    /// used, and no other code may drive the same device concurrently.
    pub const unsafe fn new(kind: UartKind, base: usize) -> Self {
        Self { kind, base }
    }

    fn pl011(&self) -> &Pl011Regs {
        // SAFETY: `new`'s contract: `base` maps a PL011's registers.
        unsafe { &*(self.base as *const Pl011Regs) }
    }

    fn cadence(&self) -> &CadenceRegs {
        // SAFETY: `new`'s contract: `base` maps a Cadence UART's registers.
        unsafe { &*(self.base as *const CadenceRegs) }
    }

    fn imx(&self) -> &ImxRegs {
        // SAFETY: `new`'s contract: `base` maps an i.MX UART's registers.
        unsafe { &*(self.base as *const ImxRegs) }
    }

    /// Enables the transmitter (firmware normally did, QEMU may not have).
    pub fn init(&self) {
        match self.kind {
            UartKind::Pl011 => {
                let r = self.pl011();
                r.cr.set(r.cr.get() | PL011_CR_UARTEN_TXE_RXE);
            }
            UartKind::Cadence => self.cadence().cr.set(CADENCE_CR_TXEN_RXEN),
            UartKind::Imx => {
                let r = self.imx();
                r.ucr1.set(r.ucr1.get() | IMX_UCR1_UARTEN);
                r.ucr2.set(r.ucr2.get() | IMX_UCR2_SRST_RXEN_TXEN_WS_IRTS);
            }
        }
    }

    /// Writes one byte, waiting for room in the FIFO.
    pub fn put_byte(&self, byte: u8) {
        match self.kind {
            UartKind::Pl011 => {
                let r = self.pl011();
                while r.fr.get() & PL011_FR_TXFF != 0 {
                    core::hint::spin_loop();
                }
                r.dr.set(u32::from(byte));
            }
            UartKind::Cadence => {
                let r = self.cadence();
                while r.sr.get() & CADENCE_SR_TXFULL != 0 {
                    core::hint::spin_loop();
                }
                r.fifo.set(u32::from(byte));
            }
            UartKind::Imx => {
                let r = self.imx();
                while r.uts.get() & IMX_UTS_TXFULL != 0 {
                    core::hint::spin_loop();
                }
                r.utxd.set(u32::from(byte));
            }
        }
    }

    /// Writes bytes, turning `\n` into `\r\n`.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
    }

    /// Waits until everything written has left the transmitter.
    pub fn flush(&self) {
        match self.kind {
            UartKind::Pl011 => {
                while self.pl011().fr.get() & PL011_FR_BUSY != 0 {
                    core::hint::spin_loop();
                }
            }
            UartKind::Cadence => {
                while self.cadence().sr.get() & CADENCE_SR_TXEMPTY == 0 {
                    core::hint::spin_loop();
                }
            }
            UartKind::Imx => {
                while self.imx().usr2.get() & IMX_USR2_TXDC == 0 {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;

    /// The assembly's offsets are the driver's registers.
    #[test]
    fn the_early_description_matches_the_driver() {
        let pl011 = EarlyUart::of(UartKind::Pl011);
        assert_eq!(pl011.init[0].0, offset_of!(Pl011Regs, cr));
        assert_eq!(pl011.status, offset_of!(Pl011Regs, fr));
        assert_eq!(pl011.tx, offset_of!(Pl011Regs, dr));
        assert_eq!(1 << pl011.full_bit, PL011_FR_TXFF);
        let cadence = EarlyUart::of(UartKind::Cadence);
        assert_eq!(cadence.init[0].0, offset_of!(CadenceRegs, cr));
        assert_eq!(cadence.status, offset_of!(CadenceRegs, sr));
        assert_eq!(cadence.tx, offset_of!(CadenceRegs, fifo));
        assert_eq!(1 << cadence.full_bit, CADENCE_SR_TXFULL);
        let imx = EarlyUart::of(UartKind::Imx);
        assert_eq!(imx.init[0].0, offset_of!(ImxRegs, ucr1));
        assert_eq!(imx.init[1].0, offset_of!(ImxRegs, ucr2));
        assert_eq!(imx.status, offset_of!(ImxRegs, uts));
        assert_eq!(imx.tx, offset_of!(ImxRegs, utxd));
        assert_eq!(1 << imx.full_bit, IMX_UTS_TXFULL);
    }
}
