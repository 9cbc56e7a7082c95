//! Atoll's shared ABI: everything two separately built programs must agree on.
//!
//! Design principles:
//! - Every layout that crosses a program boundary (image file, boot spec, the shared area
//!   between replicas) is `#[repr(C)]`, derives zerocopy traits and has its size and field
//!   offsets checked at compile time, so a change that moves a byte fails the build.
//! - Every structure carries a magic and a version; readers refuse what they do not know.
//! - Readers never trust their input: parsing returns `Result`, never panics.
//!
//! Each module's own documentation says what it holds (rustdoc lists them).
#![no_std]
// The kernels and the loader decode these formats from memory others wrote (the image, a
// peer replica's shared records): outside the host tests, the constructs that can panic
// are refused; the exceptions are compile-time tables, marked where they are.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod bootprog;
pub mod directory;
pub mod error;
pub mod fault;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod image;
pub mod limits;
pub mod marks;
pub mod memory_map;
pub mod object;
pub mod pd;
pub mod placement;
pub mod shared;
pub mod spec;
pub mod syscall;

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) used by the image checksum.
///
/// The loader checks a whole image with it before trusting a byte, so it is the largest
/// single cost of a boot. Built with the Armv8 CRC32 instructions (`+crc`, as the kernel
/// target is in `.cargo/config.toml`) it takes eight bytes per instruction; elsewhere it
/// uses slicing-by-8 tables (eight bytes per step instead of one).
pub mod crc32 {
    /// `TABLES[0]` is the classic byte table; `TABLES[k][b]` is the CRC of byte `b`
    /// followed by `k` zero bytes, so eight table lookups advance eight bytes at once.
    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    #[allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "evaluated at compile time only: a panic here is a build error"
    )]
    const fn make_tables() -> [[u32; 256]; 8] {
        let mut tables = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            tables[0][i] = c;
            i += 1;
        }
        let mut t = 1;
        while t < 8 {
            let mut i = 0;
            while i < 256 {
                let prev = tables[t - 1][i];
                tables[t][i] = tables[0][(prev & 0xFF) as usize] ^ (prev >> 8);
                i += 1;
            }
            t += 1;
        }
        tables
    }

    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    static TABLES: [[u32; 256]; 8] = make_tables();

    /// Running CRC-32 state: feed bytes with [`Crc32::update`], read with [`Crc32::finish`].
    #[derive(Clone, Copy, Debug)]
    pub struct Crc32(u32);

    impl Default for Crc32 {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Crc32 {
        /// A fresh checksum.
        pub const fn new() -> Self {
            Self(0xFFFF_FFFF)
        }

        /// Feeds `bytes`.
        pub fn update(&mut self, bytes: &[u8]) {
            // Whole aligned words in the middle: on a strict-alignment target (the kernel
            // and loader) an unaligned word would be read a byte at a time.
            // SAFETY: every bit pattern is a valid `u64`.
            let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
            let mut c = self.0;
            for &b in head {
                c = step1(c, b);
            }
            for &word in words {
                c = step8(c, u64::from_le(word));
            }
            for &b in tail {
                c = step1(c, b);
            }
            self.0 = c;
        }

        /// The checksum of everything fed so far.
        pub const fn finish(self) -> u32 {
            !self.0
        }
    }

    #[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
    fn step8(c: u32, word: u64) -> u32 {
        // SAFETY: this code is compiled only with the `crc` target feature enabled, so the
        // instruction exists on every core the program may run on.
        unsafe { core::arch::aarch64::__crc32d(c, word) }
    }

    #[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
    fn step1(c: u32, byte: u8) -> u32 {
        // SAFETY: this code is compiled only with the `crc` target feature enabled, so the
        // instruction exists on every core the program may run on.
        unsafe { core::arch::aarch64::__crc32b(c, byte) }
    }

    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    fn step8(c: u32, word: u64) -> u32 {
        let x = word ^ u64::from(c);
        let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
        let t = |table: &[u32; 256], shift: u32| lookup(table, (x >> shift) as u8);
        t(t7, 0) ^ t(t6, 8) ^ t(t5, 16) ^ t(t4, 24) ^ t(t3, 32) ^ t(t2, 40) ^ t(t1, 48) ^ t(t0, 56)
    }

    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    fn step1(c: u32, byte: u8) -> u32 {
        let [t0, ..] = &TABLES;
        lookup(t0, (c as u8) ^ byte) ^ (c >> 8)
    }

    /// Entry `i` of a 256-entry table (a byte always indexes one).
    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    fn lookup(table: &[u32; 256], i: u8) -> u32 {
        table.get(usize::from(i)).copied().unwrap_or(0)
    }

    /// CRC-32 of one buffer.
    pub fn checksum(bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(bytes);
        c.finish()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn known_vector() {
            assert_eq!(super::checksum(b"123456789"), 0xCBF4_3926);
            assert_eq!(super::checksum(b""), 0);
        }

        /// The eight-byte step agrees with feeding one byte at a time, whatever the split.
        #[test]
        fn word_steps_match_byte_steps() {
            let data: [u8; 61] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5A);
            let mut bytewise = super::Crc32::new();
            for b in &data {
                bytewise.update(core::slice::from_ref(b));
            }
            for split in 0..data.len() {
                let mut c = super::Crc32::new();
                c.update(&data[..split]);
                c.update(&data[split..]);
                assert_eq!(c.finish(), bytewise.finish(), "split at {split}");
            }
            assert_eq!(
                super::checksum(b"The quick brown fox jumps over the lazy dog"),
                0x414F_A339
            );
        }
    }
}
