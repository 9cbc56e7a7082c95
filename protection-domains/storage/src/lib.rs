//! The storage service's library: its request handling, apart from the PD around it so
//! it is tested on the host ([`handle`] carries out one request of the key-value protocol,
//! `atoll_channels::kv`, on an `atoll_kv::Store` and says what to answer), and the
//! synchronous client other PDs reach the store with ([`client`]).
//!
//! The PD (`src/main.rs`) runs the store on its disk (the block driver behind the queues of
//! `atoll_channels::block`, `src/disk.rs`) and serves each client's region with a
//! `KvServer`, answering every request with what [`handle`] decided.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(any(test, target_arch = "aarch64"))]
extern crate alloc;

// It waits on the PD runtime's counter, which exists only on the target.
#[cfg(target_arch = "aarch64")]
pub mod client;
#[cfg(target_arch = "aarch64")]
pub mod testing;

use atoll_channels::kv::{KV_FLAG_CREATED, KV_MAX_KEY, KV_MAX_VALUE, ListWriter, Request, Status};
use atoll_kv::{BlockDevice, Error, Store};

const _: () = assert!(KV_MAX_KEY == atoll_kv::MAX_KEY && KV_MAX_VALUE == atoll_kv::MAX_VALUE);

/// What to answer a request with: its status, its flags and how many bytes of the output
/// buffer are the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: Status,
    /// `KV_FLAG_CREATED` for a PUT of a new key, `KV_FLAG_TRUNCATED` for a LIST that did
    /// not fit; else 0.
    pub flags: u32,
    /// Bytes of the body at the start of the output buffer.
    pub len: usize,
}

impl Answer {
    const fn bare(status: Status) -> Self {
        Self {
            status,
            flags: 0,
            len: 0,
        }
    }
}

/// The status a store error is answered with.
pub fn status_of(error: Error) -> Status {
    match error {
        Error::Full => Status::Full,
        Error::KeyLength | Error::ValueTooLarge => Status::BadRequest,
        _ => Status::StoreError,
    }
}

/// Whether `error` leaves the store needing to be opened again before it changes anything
/// (a device error, or one the store met earlier).
pub fn needs_reopen(error: Error) -> bool {
    matches!(error, Error::Io(_) | Error::Poisoned | Error::Corrupt)
}

/// Carries out `request` on `store`, writing a GET's value or a LIST's keys into `out`
/// (pass `KV_MAX_VALUE` bytes); the answer, and the store's error if it failed.
pub fn handle<D: BlockDevice>(
    store: &mut Store<D>,
    request: &Request<'_>,
    out: &mut [u8],
) -> (Answer, Option<Error>) {
    match *request {
        Request::Get { key } => match store.get(key) {
            Ok(Some(value)) => match out.get_mut(..value.len()) {
                Some(into) => {
                    into.copy_from_slice(&value);
                    (
                        Answer {
                            status: Status::Ok,
                            flags: 0,
                            len: value.len(),
                        },
                        None,
                    )
                }
                None => (Answer::bare(Status::StoreError), None),
            },
            Ok(None) => (Answer::bare(Status::NotFound), None),
            Err(e) => (Answer::bare(status_of(e)), Some(e)),
        },
        Request::Put { key, value } => {
            let created = !store.contains_key(key);
            match store.put(key, value) {
                Ok(()) => (
                    Answer {
                        status: Status::Ok,
                        flags: if created { KV_FLAG_CREATED } else { 0 },
                        len: 0,
                    },
                    None,
                ),
                Err(e) => (Answer::bare(status_of(e)), Some(e)),
            }
        }
        Request::Delete { key } => match store.delete(key) {
            Ok(true) => (Answer::bare(Status::Ok), None),
            Ok(false) => (Answer::bare(Status::NotFound), None),
            Err(e) => (Answer::bare(status_of(e)), Some(e)),
        },
        Request::List {
            prefix,
            start_after,
        } => {
            let keys = store.list(prefix);
            let mut writer = ListWriter::new(out);
            for key in keys.iter().filter(|k| k.as_slice() > start_after) {
                if !writer.push(key) {
                    break;
                }
            }
            (
                Answer {
                    status: Status::Ok,
                    flags: writer.flags(),
                    len: writer.body().len(),
                },
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests;
