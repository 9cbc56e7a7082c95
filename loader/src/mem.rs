//! Bulk copying and zeroing for the loader, 64 bytes per loop step.
//!
//! The loader runs with its MMU off, where every access is to Device memory: unaligned
//! accesses fault (so the target is strict-alignment) and `dc zva` is not allowed. The
//! compiler's `memcpy` and `memset` then move eight bytes per loop step; these move
//! sixty-four with pairs of registers, which cuts the loader's share of the boot by more
//! than half. Anything unaligned or left over goes through the ordinary routines.

use core::arch::asm;

/// Bytes per loop step.
const STEP: usize = 64;

/// Zeroes `len` bytes at `dest`.
///
/// # Safety
///
/// `dest..dest + len` must be writable memory that nothing else accesses meanwhile.
pub unsafe fn zero(dest: *mut u8, len: usize) {
    let head = dest.align_offset(16).min(len);
    let body = (len - head) & !(STEP - 1);
    // SAFETY: every range written lies in `dest..dest + len`, which the caller lends us.
    unsafe {
        core::ptr::write_bytes(dest, 0, head);
        if body > 0 {
            asm!(
                "2:",
                "stp xzr, xzr, [{p}], #16",
                "stp xzr, xzr, [{p}], #16",
                "stp xzr, xzr, [{p}], #16",
                "stp xzr, xzr, [{p}], #16",
                "subs {n}, {n}, #64",
                "b.ne 2b",
                p = inout(reg) dest.add(head) => _,
                n = inout(reg) body => _,
                options(nostack),
            );
        }
        core::ptr::write_bytes(dest.add(head + body), 0, len - head - body);
    }
}

/// Copies `len` bytes from `src` to `dest`.
///
/// # Safety
///
/// `src..src + len` must be readable, `dest..dest + len` writable, the two must not
/// overlap, and nothing else may write either meanwhile.
pub unsafe fn copy(dest: *mut u8, src: *const u8, len: usize) {
    let body = if (dest as usize | src as usize).is_multiple_of(16) {
        len & !(STEP - 1)
    } else {
        0
    };
    // SAFETY: every range read lies in `src..src + len` and every range written in
    // `dest..dest + len`, both 16-byte aligned in the loop; the caller lends us both.
    unsafe {
        if body > 0 {
            asm!(
                "2:",
                "ldp {a}, {b}, [{s}], #16",
                "ldp {c}, {d}, [{s}], #16",
                "stp {a}, {b}, [{t}], #16",
                "stp {c}, {d}, [{t}], #16",
                "ldp {a}, {b}, [{s}], #16",
                "ldp {c}, {d}, [{s}], #16",
                "stp {a}, {b}, [{t}], #16",
                "stp {c}, {d}, [{t}], #16",
                "subs {n}, {n}, #64",
                "b.ne 2b",
                s = inout(reg) src => _,
                t = inout(reg) dest => _,
                n = inout(reg) body => _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                options(nostack),
            );
        }
        core::ptr::copy_nonoverlapping(src.add(body), dest.add(body), len - body);
    }
}
