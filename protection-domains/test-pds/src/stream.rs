//! What `producer` and `consumer` share: the ring's geometry, the messages and the
//! checksum, so both sides compute the same figures independently.

use core::fmt;
use core::ptr::NonNull;

use atoll_channels::ring::{Consumer, Producer, SharedRing};
use atoll_microkit::memory_region_symbol;

/// 64 slots of 56 bytes.
pub type Ring = SharedRing<64, 7>;
/// The producer's end of the ring.
pub type Tx = Producer<'static, 64, 7>;
/// The consumer's end of the ring.
pub type Rx = Consumer<'static, 64, 7>;
/// Messages streamed.
pub const MESSAGES: u32 = 2000;
/// Bytes of the shared region `stream`.
pub const REGION_BYTES: usize = 0x1_0000;

/// The shared region `stream`, which the description maps read-write for the PD's whole
/// life; both PDs use it only through a ring of this geometry.
pub fn region() -> NonNull<[u8]> {
    memory_region_symbol!(stream: *mut [u8], bytes = REGION_BYTES)
}

/// Message `n`: 1 to 56 bytes, each a function of `n` and its position.
pub fn message(n: u32, buffer: &mut [u8; Ring::MESSAGE_BYTES]) -> &[u8] {
    let h = mix(u64::from(n));
    let len = 1 + (h % Ring::MESSAGE_BYTES as u64) as usize;
    for (i, b) in buffer[..len].iter_mut().enumerate() {
        *b = (mix(h ^ i as u64) >> 24) as u8;
    }
    &buffer[..len]
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x
}

/// A running FNV-1a checksum over each message's length and bytes.
#[derive(Clone, Copy)]
pub struct Checksum {
    /// The hash so far.
    pub hash: u64,
    /// Messages folded in.
    pub messages: u32,
    /// Bytes folded in.
    pub bytes: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    /// Nothing yet.
    pub const fn new() -> Self {
        Self {
            hash: 0xCBF2_9CE4_8422_2325,
            messages: 0,
            bytes: 0,
        }
    }

    /// Folds in one message.
    pub fn add(&mut self, message: &[u8]) {
        for &b in core::iter::once(&(message.len() as u8)).chain(message) {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        self.messages += 1;
        self.bytes += message.len() as u64;
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages, {} bytes, checksum {:#018x}",
            self.messages, self.bytes, self.hash
        )
    }
}
