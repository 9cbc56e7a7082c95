//! NXP's uSDHC (`imx8mp_evk`'s uSDHC2, the EVK's SD card slot; QEMU's `imx-usdhc`).
//!
//! The driver is the family's ([`crate::sdhost`]): the uSDHC keeps the standard SDHCI
//! layout for the command, argument, response, block, present-state, interrupt and ADMA
//! registers, the software resets and the data timeout, and reads the same ADMA2
//! descriptors. This file holds where it differs, as NXP's reference manual describes it
//! and QEMU's `usdhc_read`/`usdhc_write` translate it:
//!
//! - the transfer mode is `MIX_CTRL` (0x48; same bits as the SDHCI's transfer mode), and
//!   the low half of `CMD_XFR_TYP` (0x0C) is reserved and written 0;
//! - `PROT_CTRL` (0x28) holds the bus width in bits 2:1 (`DTW`), the byte order in 5:4
//!   (`EMODE`, little-endian 10b) and the DMA engine in 9:8 (`DMASEL`, ADMA2 10b); there is
//!   no power control (the board switches the card's supply);
//! - `SYS_CTRL` (0x2C) sets the SD clock as a prescaler (`SDCLKFS`, bits 15:8: divide by
//!   twice the value, 0 for 1) times a divisor (`DVS`, bits 7:4: value + 1); its bits 3:0
//!   are written 1111b, their reset value (QEMU's model takes them as the SDHCI's clock
//!   enables, without which it issues no command);
//! - the clock is stable when `PRES_STATE` bit 3 (`SDSTB`) is set;
//! - the capabilities' ADMA bit is bit 20 (`ADMAS`; QEMU reports the SDHCI's bit 19).

use crate::sdhost::{Bus, Port, SdDisk, Variant, reg};

/// An SD card behind NXP's uSDHC, as a [`crate::driver::Disk`].
pub type UsdhcDisk = SdDisk<Usdhc>;

/// The uSDHC's ways (the [`Variant`] of [`UsdhcDisk`]).
pub struct Usdhc;

/// The mixer control register: the transfer mode.
const MIX_CTRL: usize = 0x48;
/// The `MIX_CTRL` bits the transfer mode sets (DMA, block count, auto-CMD12, direction,
/// multiple blocks, auto-CMD23); the others (tuning, DDR) are kept.
const MIX_CTRL_MODE: u32 = 0xB7;

/// `PROT_CTRL` fields.
mod protocol {
    /// Data transfer width (bits 2:1).
    pub const WIDTH_MASK: u32 = 0b11 << 1;
    /// 4-bit data bus.
    pub const FOUR_BIT: u32 = 0b01 << 1;
    /// Endian mode (bits 5:4).
    pub const ENDIAN_MASK: u32 = 0b11 << 4;
    /// Little-endian.
    pub const LITTLE_ENDIAN: u32 = 0b10 << 4;
    /// DMA select (bits 9:8).
    pub const DMA_MASK: u32 = 0b11 << 8;
    /// ADMA2.
    pub const ADMA2: u32 = 0b10 << 8;
}

/// `SYS_CTRL` bits 3:0, written as their reset value.
const SYS_CTRL_LOW: u16 = 0xF;
/// `PRES_STATE`: the SD clock is stable.
const CLOCK_STABLE: u32 = 1 << 3;

/// The uSDHC's root clock the driver assumes: the i.MX 8M Plus's usual 400 MHz (a slower
/// root clock only makes the card slower).
const ROOT_HZ: u32 = 400_000_000;

impl Variant for Usdhc {
    /// The uSDHC has no SDMA boundary field: bits 12:0 are the block size.
    const BLOCK_BOUNDARY: u32 = 0;

    fn has_adma2(capabilities: u32) -> bool {
        capabilities & (0b11 << 19) != 0
    }

    fn power_on<B: Bus>(_port: &mut Port<B>, _capabilities: u32) {
        // The board's regulator powers the card; the controller has no power control.
    }

    fn clock_divider(_capabilities: u32, _version: u8, hz: u32) -> u16 {
        let hz = hz.max(1);
        let ratio = ROOT_HZ.div_ceil(hz).max(1);
        // The smallest prescaler (1, 2, 4, ... 256) whose divisor (1 to 16) reaches it.
        let mut prescaler = 1u32;
        while prescaler < 256 && prescaler * 16 < ratio {
            prescaler *= 2;
        }
        let divisor = ratio.div_ceil(prescaler).clamp(1, 16);
        (((prescaler / 2) << 8) | ((divisor - 1) << 4)) as u16
    }

    fn start_clock<B: Bus>(port: &mut Port<B>, divider: u16) -> Option<u16> {
        let running = divider | SYS_CTRL_LOW;
        let timeout = port.read(reg::CLOCK) & 0x000F_0000;
        port.write(reg::CLOCK, timeout | u32::from(running));
        port.wait(reg::PRESENT, 100_000, |present| present & CLOCK_STABLE != 0)
            .then_some(running)
    }

    fn host_control<B: Bus>(port: &mut Port<B>, four_bit: bool, adma2: bool) {
        let mut value = port.read(reg::HOST_CONTROL)
            & !(protocol::WIDTH_MASK | protocol::ENDIAN_MASK | protocol::DMA_MASK);
        value |= protocol::LITTLE_ENDIAN;
        if four_bit {
            value |= protocol::FOUR_BIT;
        }
        if adma2 {
            value |= protocol::ADMA2;
        }
        port.write(reg::HOST_CONTROL, value);
    }

    fn issue<B: Bus>(port: &mut Port<B>, mode: u16, command: u16) {
        let mix = (port.read(MIX_CTRL) & !MIX_CTRL_MODE) | (u32::from(mode) & MIX_CTRL_MODE);
        port.write(MIX_CTRL, mix);
        port.write(reg::COMMAND, u32::from(command) << 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SD clock `SYS_CTRL` bits 15:4 give from the root clock.
    fn frequency(divider: u16) -> u32 {
        let prescaler = u32::from(divider >> 8).max(1) * if divider >> 8 == 0 { 1 } else { 2 };
        let divisor = u32::from((divider >> 4) & 0xF) + 1;
        ROOT_HZ / (prescaler * divisor)
    }

    #[test]
    fn clock_dividers() {
        let slow = Usdhc::clock_divider(0, 0, 400_000);
        assert!(frequency(slow) <= 400_000 && frequency(slow) > 300_000);
        assert_eq!(Usdhc::clock_divider(0, 0, 25_000_000), 0x00F0);
        assert_eq!(
            frequency(Usdhc::clock_divider(0, 0, 25_000_000)),
            25_000_000
        );
        for hz in [
            1,
            100_000,
            400_000,
            20_000_000,
            50_000_000,
            400_000_000,
            u32::MAX,
        ] {
            let f = frequency(Usdhc::clock_divider(0, 0, hz));
            assert!(f <= hz.max(ROOT_HZ / 4096), "{f} > {hz}");
        }
    }

    #[test]
    fn adma_capability() {
        // QEMU's default capabilities and the real uSDHC's ADMAS bit.
        assert!(Usdhc::has_adma2(0x0578_34B4));
        assert!(Usdhc::has_adma2(1 << 20));
        assert!(!Usdhc::has_adma2(1 << 22));
    }
}
