//! What the storage replica's test clients share (`kv_writer` and `kv_peer`, booted by
//! `tests/systems/storage-clients.xml`): the writes `kv_writer` makes, a wait for the store,
//! and a handler that ignores the store's notifications.

use core::fmt::Write;

use atoll_microkit::timer::{counter, counter_frequency};
use atoll_microkit::{ChannelSet, Handler, Infallible};

use crate::client::{KvError, StoreClient};

/// Writes `kv_writer` makes at most.
pub const WRITES: u32 = 100_000;

/// Waits (up to 60 s) until the store answers: it may come up after its clients.
pub fn wait_for_store(store: &mut StoreClient) -> bool {
    let until = counter().saturating_add(counter_frequency().saturating_mul(60));
    while counter() < until {
        match store.get(b"probe") {
            Ok(_) | Err(KvError::NotFound) => return true,
            Err(_) => core::hint::spin_loop(),
        }
    }
    false
}

/// A handler that takes the store's notifications (it announces itself, and answers are
/// waited for by spinning) and does nothing else.
pub struct Quiet;

impl Handler for Quiet {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The key of write `n`: `w-<n>`.
pub fn key(n: u32) -> Key {
    let mut k = Key {
        bytes: [0; 16],
        len: 0,
    };
    let _ = write!(k, "w-{n}");
    k
}

/// The value of write `n`: 512 bytes, each a function of `n` and its place.
pub fn value(n: u32, out: &mut [u8; 512]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (n as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
}

/// A short key formatted in place.
pub struct Key {
    bytes: [u8; 16],
    len: usize,
}

impl Key {
    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Write for Key {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.saturating_add(s.len());
        let into = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        into.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
