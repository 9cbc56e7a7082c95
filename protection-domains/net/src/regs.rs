//! A card's register page: 32-bit volatile accesses at byte offsets, checked to lie in the
//! page, so a wrong offset reads 0 and writes nothing rather than touching other memory.

use core::ptr::NonNull;

/// Bytes of a card's register page.
const PAGE: usize = 0x1000;

/// A card's register page, mapped uncached into the driver alone.
#[derive(Clone, Copy)]
pub(crate) struct Regs(pub(crate) NonNull<u8>);

impl Regs {
    /// Whether `offset` names an aligned word of the page.
    const fn valid(offset: usize) -> bool {
        offset.is_multiple_of(4) && offset + 4 <= PAGE
    }

    /// Reads the register at `offset` (0 for an offset outside the page).
    pub(crate) fn read(self, offset: usize) -> u32 {
        if !Self::valid(offset) {
            return 0;
        }
        // SAFETY: an aligned word of the register page, which the card's constructor's
        // caller promised is mapped uncached into this PD for its driver alone.
        unsafe { self.0.byte_add(offset).cast::<u32>().read_volatile() }
    }

    /// Writes the register at `offset` (nothing for an offset outside the page).
    pub(crate) fn write(self, offset: usize, value: u32) {
        if !Self::valid(offset) {
            return;
        }
        // SAFETY: as in `read`.
        unsafe { self.0.byte_add(offset).cast::<u32>().write_volatile(value) }
    }
}
