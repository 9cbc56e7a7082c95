//! The ZynqMP's SD controllers (`zcu102`'s SD1, the board's SD card slot): standard SDHCI
//! (Arasan, host controller specification 3.00; QEMU's `sysbus-sdhci` with
//! `sd-spec-version` 3 and the ZynqMP's capabilities, ADMA2 among them).
//!
//! The driver is the family's ([`crate::sdhost`]); this file holds what the standard
//! controller does its own way: the transfer mode shares the command's 32-bit register
//! word, the card's power is the controller's (power control register), the host control
//! register selects the DMA engine in bits 4:3, and the SD clock divider is the
//! specification's (10-bit `base / 2N` from version 3.00, a power of two before).

use crate::sdhost::{Bus, Port, SdDisk, Variant, reg};

/// An SD card behind a standard SDHCI, as a [`crate::driver::Disk`].
pub type SdhciDisk = SdDisk<Sdhci>;

/// The standard SDHCI's ways (the [`Variant`] of [`SdhciDisk`]).
pub struct Sdhci;

/// Host control (byte 0 of the word at 0x28) bits.
mod host {
    /// 4-bit data bus.
    pub const FOUR_BIT: u32 = 1 << 1;
    /// DMA select (bits 4:3): 00 SDMA, 10 32-bit ADMA2.
    pub const DMA_MASK: u32 = 0b11 << 3;
    /// 32-bit ADMA2.
    pub const ADMA2: u32 = 0b10 << 3;
    /// 8-bit data bus (cleared: SD cards have four lines).
    pub const EIGHT_BIT: u32 = 1 << 5;
    /// The power control byte (byte 1): bus power on.
    pub const POWER_ON: u32 = 1 << 8;
}

/// Clock control bits.
mod clock {
    /// The internal clock runs.
    pub const INTERNAL_ENABLE: u16 = 1 << 0;
    /// The internal clock is stable.
    pub const INTERNAL_STABLE: u32 = 1 << 1;
    /// The SD clock runs.
    pub const SD_ENABLE: u16 = 1 << 2;
}

/// The base clock the driver assumes when the capabilities leave it 0 ("get it another
/// way"): the ZynqMP's usual 100 MHz (a slower real clock only makes the card slower).
const FALLBACK_BASE_HZ: u32 = 100_000_000;

impl Variant for Sdhci {
    /// The largest boundary (512 KiB): SDMA stops at fewest boundaries.
    const BLOCK_BOUNDARY: u32 = 0b111 << 12;

    fn has_adma2(capabilities: u32) -> bool {
        capabilities & (1 << 19) != 0
    }

    fn power_on<B: Bus>(port: &mut Port<B>, capabilities: u32) {
        // The highest voltage the controller offers: SD cards start at 3.3 V.
        let voltage = if capabilities & (1 << 24) != 0 {
            0b111
        } else if capabilities & (1 << 25) != 0 {
            0b110
        } else {
            0b101
        };
        port.write(reg::HOST_CONTROL, (voltage << 9) | host::POWER_ON);
    }

    fn clock_divider(capabilities: u32, version: u8, hz: u32) -> u16 {
        let hz = hz.max(1);
        let spec3 = version >= 2;
        let mhz = if spec3 {
            (capabilities >> 8) & 0xFF
        } else {
            (capabilities >> 8) & 0x3F
        };
        let base = if mhz == 0 {
            FALLBACK_BASE_HZ
        } else {
            mhz * 1_000_000
        };
        if spec3 {
            // f = base / 2N (N = 0: base), N of 10 bits in 15:8 and 7:6.
            let n = if base <= hz {
                0
            } else {
                base.div_ceil(2 * hz).min(0x3FF)
            };
            (((n & 0xFF) << 8) | ((n >> 8) << 6)) as u16
        } else {
            // f = base / d, d a power of two up to 256, d / 2 in 15:8.
            let mut divisor = 1u32;
            while divisor < 256 && base / divisor > hz {
                divisor *= 2;
            }
            ((divisor / 2) << 8) as u16
        }
    }

    fn start_clock<B: Bus>(port: &mut Port<B>, divider: u16) -> Option<u16> {
        let internal = divider | clock::INTERNAL_ENABLE;
        let timeout = port.read(reg::CLOCK) & 0x000F_0000;
        port.write(reg::CLOCK, timeout | u32::from(internal));
        if !port.wait(reg::CLOCK, 100_000, |value| {
            value & clock::INTERNAL_STABLE != 0
        }) {
            return None;
        }
        let running = internal | clock::SD_ENABLE;
        port.write(reg::CLOCK, timeout | u32::from(running));
        Some(running)
    }

    fn host_control<B: Bus>(port: &mut Port<B>, four_bit: bool, adma2: bool) {
        let mut value =
            port.read(reg::HOST_CONTROL) & !(host::FOUR_BIT | host::DMA_MASK | host::EIGHT_BIT);
        if four_bit {
            value |= host::FOUR_BIT;
        }
        if adma2 {
            value |= host::ADMA2;
        }
        port.write(reg::HOST_CONTROL, value);
    }

    fn issue<B: Bus>(port: &mut Port<B>, mode: u16, command: u16) {
        port.write(reg::COMMAND, (u32::from(command) << 16) | u32::from(mode));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ZynqMP's capabilities in QEMU (low word): 100 MHz base clock, ADMA2, SDMA, 3.3 V.
    const ZYNQMP: u32 = 0x37EC_6481;

    /// The SD clock a divider gives, from `base`.
    fn frequency(divider: u16, base: u32, spec3: bool) -> u32 {
        if spec3 {
            let n = u32::from(divider >> 8) | (u32::from((divider >> 6) & 3) << 8);
            if n == 0 { base } else { base / (2 * n) }
        } else {
            let d = u32::from(divider >> 8);
            if d == 0 { base } else { base / (2 * d) }
        }
    }

    #[test]
    fn zynqmp_capabilities() {
        assert!(Sdhci::has_adma2(ZYNQMP));
        // The identification clock: 100 MHz / 250 = 400 kHz.
        let slow = Sdhci::clock_divider(ZYNQMP, 2, 400_000);
        assert_eq!(frequency(slow, 100_000_000, true), 400_000);
        assert_eq!(slow, 0x7D00);
        let fast = Sdhci::clock_divider(ZYNQMP, 2, 25_000_000);
        assert_eq!(frequency(fast, 100_000_000, true), 25_000_000);
    }

    #[test]
    fn dividers_never_exceed_the_target() {
        for (caps, version, base) in [(ZYNQMP, 2, 100_000_000), (0x0578_34B4, 1, 52_000_000)] {
            for hz in [
                100_000,
                400_000,
                1_000_000,
                25_000_000,
                50_000_000,
                200_000_000,
            ] {
                let divider = Sdhci::clock_divider(caps, version, hz);
                let f = frequency(divider, base, version >= 2);
                let slowest = if version >= 2 {
                    base / 2046
                } else {
                    base / 256
                };
                assert!(f <= hz.max(slowest), "{f} > {hz}");
            }
        }
    }
}
