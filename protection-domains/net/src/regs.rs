//! A device's register page: 32-bit volatile accesses at byte offsets, checked to lie in the
//! page, so a wrong offset reads 0 and writes nothing rather than touching other memory.

use core::ptr::NonNull;

/// Bytes of a card's register page.
const PAGE: usize = 0x1000;

/// A card's register page, mapped uncached into the driver alone.
#[derive(Clone, Copy)]
pub struct Regs(pub(crate) NonNull<u8>);

impl Regs {
    /// The register page at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be a device's register page (4 KiB), mapped uncached into this PD for one
    /// driver alone, for as long as the returned value (or a copy) is used.
    pub const unsafe fn new(base: NonNull<u8>) -> Self {
        Self(base)
    }

    /// Whether `offset` names an aligned word of the page.
    const fn valid(offset: usize) -> bool {
        offset.is_multiple_of(4) && offset + 4 <= PAGE
    }

    /// Reads the register at `offset` (0 for an offset outside the page).
    pub fn read(self, offset: usize) -> u32 {
        if !Self::valid(offset) {
            return 0;
        }
        // SAFETY: an aligned word of the register page, which the caller of the card's
        // constructor (or of `Regs::new`) promised is mapped uncached into this PD for its
        // driver alone.
        unsafe { self.0.byte_add(offset).cast::<u32>().read_volatile() }
    }

    /// Writes the register at `offset` (nothing for an offset outside the page).
    pub fn write(self, offset: usize, value: u32) {
        if !Self::valid(offset) {
            return;
        }
        // SAFETY: as in `read`.
        unsafe { self.0.byte_add(offset).cast::<u32>().write_volatile(value) }
    }
}
