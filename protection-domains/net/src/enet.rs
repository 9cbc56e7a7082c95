//! The NXP ENET of the i.MX 8M Plus (`imx8mp_evk`'s ENET1; QEMU `imx.enet`).
//!
//! Not written yet: [`EnetNic::new`] reports that the card has no driver.

use core::ptr::NonNull;

use crate::driver::{Buffer, Nic, Region};

/// The card.
pub struct EnetNic {
    _regs: NonNull<u8>,
}

impl EnetNic {
    /// Resets the card and sets it up with its descriptor rings in `rings` (uncached,
    /// `rings_bytes` bytes), its interrupts on; `None` if it cannot.
    ///
    /// # Safety
    ///
    /// `regs` must be the card's register block (a page), mapped uncached into this PD
    /// alone, and `rings` a region mapped uncached into this PD alone.
    pub unsafe fn new(regs: NonNull<u8>, rings: Region, rings_bytes: usize) -> Option<Self> {
        let _ = (regs, rings, rings_bytes);
        None
    }
}

impl Nic for EnetNic {
    const COHERENT: bool = false;

    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }

    fn ack_interrupt(&mut self) {}

    fn rx_room(&self) -> bool {
        false
    }

    fn rx_post(&mut self, _tag: u64, _buffer: Buffer) -> bool {
        false
    }

    fn rx_take(&mut self) -> Option<(u64, u32)> {
        None
    }

    fn tx_room(&self) -> bool {
        false
    }

    fn tx_post(&mut self, _tag: u64, _buffer: Buffer, _len: u32) -> bool {
        false
    }

    fn tx_take(&mut self) -> Option<u64> {
        None
    }
}
