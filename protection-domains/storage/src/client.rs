//! A synchronous client of the store, for PDs on other replicas: each call sends one
//! request through the client's region (`atoll_channels::kv`) and the channel to the
//! store, and waits for its answer, spinning on the region (a durable write takes the
//! store a disk write and a flush). A PD of a higher priority on the same core still runs
//! meanwhile.
//!
//! A store that does not answer within [`PATIENCE_MS`] (or has not set its region up, or
//! is on a stopped replica, which a waiting call notices within 100 ms) is
//! [`KvError::Unavailable`]; a request that timed out keeps its
//! buffer until the store answers it, and when all of them are held, calls are
//! `Unavailable` until then.

use alloc::vec;
use alloc::vec::Vec;

use atoll_channels::kv::{
    KV_MAX_VALUE, KV_REGION_BYTES, KvClient, KvError as Protocol, KvRegion, Link, Request,
    Response, Status,
};
use atoll_microkit::Channel;
use atoll_microkit::timer::{counter, counter_frequency};

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// No such key.
    NotFound,
    /// The store cannot be reached, did not answer in time, or failed.
    Unavailable,
    /// The store has no room for the value.
    Full,
}

/// How long a request may wait for the store's answer, in milliseconds.
pub const PATIENCE_MS: u64 = 10_000;
/// How long the store may take to accept a session, in milliseconds.
const SESSION_MS: u64 = 1_000;
/// How often a waiting call checks that the store's replica is still up, in milliseconds.
const LOOK_MS: u64 = 100;

/// A client of the store.
pub struct StoreClient {
    /// The region's address here (0: the description maps none).
    vaddr: u64,
    /// The channel to the store.
    store: Channel,
    client: Option<KvClient<'static>>,
    /// A GET's value, as the store sent it.
    value: Vec<u8>,
}

/// A deadline `ms` milliseconds from now, in counter ticks.
fn deadline(ms: u64) -> u64 {
    counter().saturating_add(counter_frequency().saturating_mul(ms) / 1000)
}

impl StoreClient {
    /// A client of the store over the region at `vaddr` (`KV_REGION_BYTES`, as the tool
    /// patched it into a `setvar_vaddr` symbol; 0 if the description maps none: every
    /// call is then `Unavailable`) and the channel `store`. It attaches when it first
    /// needs the region.
    ///
    /// # Safety
    ///
    /// A non-zero `vaddr` must be where the description maps the client's region
    /// read-write into this PD, for the PD's lifetime, shared with the store only and used
    /// in this PD only through this client.
    pub unsafe fn new(vaddr: u64, store: Channel) -> Self {
        Self {
            vaddr,
            store,
            client: None,
            value: vec![0; KV_MAX_VALUE],
        }
    }

    /// Forgets the region and every request in flight, after the store's replica restarted
    /// (the store sets the region up afresh): the next call attaches again and opens a new
    /// session.
    pub fn forget(&mut self) {
        self.client = None;
    }

    /// The client, attached if the store has set its region up.
    fn attached<'c>(
        client: &'c mut Option<KvClient<'static>>,
        vaddr: u64,
    ) -> Result<&'c mut KvClient<'static>, KvError> {
        if client.is_none() {
            if vaddr == 0 {
                return Err(KvError::Unavailable);
            }
            // SAFETY: `new`'s caller guarantees the region; it is used only through the
            // protocol's types, which access shared memory with atomics.
            let region =
                unsafe { KvRegion::attach_raw(vaddr as usize as *mut u8, KV_REGION_BYTES) };
            *client = Some(region.map_err(|_| KvError::Unavailable)?.client());
        }
        client.as_mut().ok_or(KvError::Unavailable)
    }

    /// Opens a session with the store if there is none.
    fn session(&mut self) -> Result<(), KvError> {
        let client = Self::attached(&mut self.client, self.vaddr)?;
        let until = deadline(SESSION_MS);
        loop {
            match client.connect() {
                Ok(Link::Open) => return Ok(()),
                // A store on a stopped replica is not waited for.
                Ok(Link::Requested) => {
                    self.store.try_notify().map_err(|_| KvError::Unavailable)?;
                }
                Ok(Link::Pending) if counter() < until => core::hint::spin_loop(),
                Ok(Link::Pending) => return Err(KvError::Unavailable),
                // The store restarted: ask again (the next call requests a new session).
                Err(Protocol::SessionLost) => {}
                Err(_) => return Err(KvError::Unavailable),
            }
        }
    }

    /// Sends `request` and waits for its answer: the response, its result in
    /// [`StoreClient::result`].
    fn call(&mut self, request: &Request<'_>) -> Result<Response, KvError> {
        self.session()?;
        let client = Self::attached(&mut self.client, self.vaddr)?;
        let ticket = client.submit(request).map_err(|_| KvError::Unavailable)?;
        if client.notify_needed() {
            self.store.try_notify().map_err(|_| KvError::Unavailable)?;
        }
        let until = deadline(PATIENCE_MS);
        let mut look = deadline(LOOK_MS);
        loop {
            match client.poll(&mut self.value) {
                Ok(Some((t, response))) if t == ticket => return Ok(response),
                // The late answer of a request that timed out: its buffer is back.
                Ok(Some(_)) => {}
                Ok(None) if counter() >= until => return Err(KvError::Unavailable),
                // Every so often, whether the store's replica stopped meanwhile (a spare
                // notification costs the store one look at its queues).
                Ok(None) if counter() >= look => {
                    self.store.try_notify().map_err(|_| KvError::Unavailable)?;
                    look = deadline(LOOK_MS);
                }
                Ok(None) => core::hint::spin_loop(),
                Err(Protocol::BadResponse { ticket: t, .. })
                | Err(Protocol::OutputTooSmall { ticket: t, .. })
                    if t == ticket =>
                {
                    return Err(KvError::Unavailable);
                }
                Err(Protocol::SessionLost) => return Err(KvError::Unavailable),
                // Something the store broke about another buffer: dropped and counted.
                Err(_) => {}
            }
        }
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Vec<u8>, KvError> {
        let response = self.call(&Request::Get { key })?;
        match response.status {
            Status::Ok => Ok(self.value.get(..response.len).unwrap_or_default().to_vec()),
            status => Err(error(status)),
        }
    }

    /// Stores `value` under `key`; whether the key is new.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, KvError> {
        let response = self.call(&Request::Put { key, value })?;
        match response.status {
            Status::Ok => Ok(response.created()),
            status => Err(error(status)),
        }
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), KvError> {
        let response = self.call(&Request::Delete { key })?;
        match response.status {
            Status::Ok => Ok(()),
            status => Err(error(status)),
        }
    }
}

/// The error for a store's answer other than `Ok`.
fn error(status: Status) -> KvError {
    match status {
        Status::NotFound => KvError::NotFound,
        Status::Full => KvError::Full,
        _ => KvError::Unavailable,
    }
}
