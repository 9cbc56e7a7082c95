//! The IPC buffer: the page where a thread's message registers past the first four live
//! (word `1 + i` holds register `i`, as in seL4). The kernel copies them from buffer to
//! buffer; the first four travel in `x2`–`x5`.

use atoll_abi::syscall::{MAX_MESSAGE_REGISTERS, ipc_buffer::MR0};

/// Message registers a message can carry.
const MRS: usize = MAX_MESSAGE_REGISTERS;

/// The calling thread's IPC buffer, at the address its program maps it.
#[derive(Clone, Copy, Debug)]
pub struct IpcBuffer {
    vaddr: usize,
}

impl IpcBuffer {
    /// The IPC buffer at `vaddr`.
    ///
    /// # Safety
    ///
    /// A page must be mapped read-write at `vaddr` for as long as the value is used, be
    /// the IPC buffer of every thread that uses the value, and be reached by no Rust
    /// reference but those this type makes, which live only during one of its calls.
    #[inline(always)]
    pub const unsafe fn at(vaddr: u64) -> Self {
        Self {
            vaddr: vaddr as usize,
        }
    }

    /// The first message register's word.
    #[inline(always)]
    fn registers(self) -> *mut u64 {
        (self.vaddr as *mut u64).wrapping_add(MR0)
    }

    /// Message register `i` (panics if `i` is past the last one).
    #[inline(always)]
    pub fn mr(self, i: usize) -> u64 {
        assert!(
            i < MRS,
            "message register {i} does not exist (there are {MRS})"
        );
        // SAFETY: the buffer is mapped (`at`'s contract) and `1 + i` is inside its page;
        // no reference to it is live.
        unsafe { self.registers().add(i).read_volatile() }
    }

    /// Sets message register `i` (panics if `i` is past the last one).
    #[inline(always)]
    pub fn set_mr(self, i: usize, value: u64) {
        assert!(
            i < MRS,
            "message register {i} does not exist (there are {MRS})"
        );
        // SAFETY: as in `mr`.
        unsafe { self.registers().add(i).write_volatile(value) }
    }

    /// Runs `f` on the message registers.
    pub fn with_mrs<T>(self, f: impl FnOnce(&[u64]) -> T) -> T {
        // SAFETY: the registers are inside the mapped buffer; the slice lives only for
        // `f`, during which this thread makes no system call that writes the buffer.
        f(unsafe { core::slice::from_raw_parts(self.registers(), MRS) })
    }

    /// Runs `f` on the message registers, mutably.
    pub fn with_mrs_mut<T>(self, f: impl FnOnce(&mut [u64]) -> T) -> T {
        // SAFETY: as in `with_mrs`; this is the only reference for the duration of `f`.
        f(unsafe { core::slice::from_raw_parts_mut(self.registers(), MRS) })
    }

    /// Runs `f` on the message registers as bytes (register 0's bytes first, little
    /// endian).
    pub fn with_bytes<T>(self, f: impl FnOnce(&[u8]) -> T) -> T {
        // SAFETY: as in `with_mrs`; u8 has no alignment or validity requirement.
        f(unsafe { core::slice::from_raw_parts(self.registers().cast::<u8>(), MRS * 8) })
    }

    /// Runs `f` on the message registers as bytes, mutably.
    pub fn with_bytes_mut<T>(self, f: impl FnOnce(&mut [u8]) -> T) -> T {
        // SAFETY: as in `with_mrs_mut`.
        f(unsafe { core::slice::from_raw_parts_mut(self.registers().cast::<u8>(), MRS * 8) })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;

    #[test]
    fn register_i_is_word_one_plus_i_and_its_bytes_are_little_endian() {
        let mut page = vec![0u64; 512];
        // SAFETY: `page` outlives `buffer` and is reached only through it below.
        let buffer = unsafe { IpcBuffer::at(page.as_mut_ptr() as u64) };
        buffer.set_mr(0, 0x0807_0605_0403_0201);
        buffer.set_mr(119, 7);
        assert_eq!(buffer.mr(119), 7);
        buffer.with_bytes(|b| assert_eq!(b[..2], [1, 2]));
        buffer.with_mrs_mut(|m| m[1] = 9);
        assert_eq!(
            (page[0], page[1], page[2], page[120]),
            (0, 0x0807_0605_0403_0201, 9, 7)
        );
    }

    #[test]
    #[should_panic(expected = "message register 120 does not exist")]
    fn a_register_past_the_last_is_refused() {
        let mut page = vec![0u64; 512];
        // SAFETY: as above.
        let buffer = unsafe { IpcBuffer::at(page.as_mut_ptr() as u64) };
        buffer.set_mr(120, 1);
    }
}
