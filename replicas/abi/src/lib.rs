//! Atoll's shared ABI: everything two separately built programs must agree on.
//!
//! Design principles:
//! - Every layout that crosses a program boundary (image file, boot spec, the shared area
//!   between replicas) is `#[repr(C)]`, derives zerocopy traits and has its size and field
//!   offsets checked at compile time, so a change that moves a byte fails the build.
//! - Every structure carries a magic and a version; readers refuse what they do not know.
//! - Readers never trust their input: parsing returns `Result`, never panics.
//!
//! Modules:
//! - [`error`]: invocation errors, numbered as seL4 numbers them.
//! - [`image`]: the bootable image (header, table of parts, checksum) and its parser.
//! - [`spec`]: the per-replica boot spec the loader and kernel read.
//! - [`shared`]: the kernel-to-kernel shared area (status records, log rings, doorbells).
//! - [`limits`]: named limits.
//! - [`microkit`]: the PD capability layout, badges, user address space and object sizes.
#![no_std]

pub mod error;
pub mod image;
pub mod limits;
pub mod microkit;
pub mod shared;
pub mod spec;
pub mod syscall;

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) used by the image checksum.
pub mod crc32 {
    const fn make_table() -> [u32; 256] {
        let mut table = [0u32; 256];
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
            table[i] = c;
            i += 1;
        }
        table
    }

    static TABLE: [u32; 256] = make_table();

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
            let mut c = self.0;
            for &b in bytes {
                c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
            }
            self.0 = c;
        }

        /// The checksum of everything fed so far.
        pub const fn finish(self) -> u32 {
            !self.0
        }
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
    }
}
