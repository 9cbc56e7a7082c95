//! Benchmark PD: the key-value store on the storage replica, through the cross-replica
//! protocol of `atoll_channels::kv`, as one client on its own replica sees it.
//!
//! The PD attaches to its region (`kv_io`, channel 0 to the store), opens a session, makes
//! [`WARMUP`] PUTs of its own keys, then measures [`ROUNDS`] durable PUTs of 4 KiB values
//! under distinct new keys, then [`ROUNDS`] GETs of those keys, and prints the average of
//! each: `BENCH kv PUT 4 KiB durable: ...` and `BENCH kv GET 4 KiB: ...`.
//!
//! Distinct keys, so that every PUT appends a new record and creates its key, as a store
//! filling up does, and the log grows by a record per PUT (about 4.5 KiB: 9 blocks), which
//! leaves a log of a few MiB for the next boot's recovery to scan; and every GET reads a
//! different record, spread over that log.
//!
//! One request is in flight at a time, and the PD waits for the store's notification
//! between them (its core idles, so it adds no instructions of its own while the store
//! works). The counts are machine-wide (`-icount`): the client, both kernels on their
//! cores, the store with its disk waits, the block driver, and the replicas' timer ticks.
//! Each operation's count is the counter's difference from the previous operation's end,
//! summed in 64 bits, so the 32-bit counter never wraps within one difference.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use atoll_bench_pds::{
    instructions, instructions_between, report_average, ticks, ticks_per_second,
};
use atoll_channels::kv::{KV_REGION_BYTES, KvClient, KvError, KvRegion, Link, Request, Status};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, protection_domain, var,
};

/// The store.
const STORE: Channel = Channel::new(0);
/// PUTs before the measurement starts.
const WARMUP: u32 = 24;
/// PUTs measured, then GETs measured.
const ROUNDS: u32 = 1000;
/// Bytes of every value.
const VALUE_BYTES: usize = 4096;

/// What the PD is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// PUTs of warm-up keys.
    Warmup,
    /// PUTs measured.
    Put,
    /// GETs measured.
    Get,
    /// Finished, or stopped by an error.
    Done,
}

/// The measuring client.
struct Bench {
    client: Option<KvClient<'static>>,
    phase: Phase,
    /// Operations done in this phase.
    done: u32,
    /// Whether a request is in flight.
    waiting: bool,
    /// The instruction counter at the last operation's end (or the phase's start).
    last: u64,
    /// Instructions of this phase's operations so far.
    total: u64,
    /// The virtual counter at the phase's start.
    started: u64,
    /// A PUT's value: the key's number in its first 4 bytes, then a fixed pattern.
    value: [u8; VALUE_BYTES],
    /// A GET's value.
    out: [u8; VALUE_BYTES],
}

#[protection_domain]
fn init() -> Bench {
    let mut value = [0u8; VALUE_BYTES];
    for (i, byte) in value.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let mut bench = Bench {
        client: None,
        phase: Phase::Warmup,
        done: 0,
        waiting: false,
        last: 0,
        total: 0,
        started: 0,
        value,
        out: [0; VALUE_BYTES],
    };
    // The store sets the region up once its disk is open, and notifies: until then this
    // finds it not ready, and the notification brings the PD back.
    bench.step();
    bench
}

/// The region the description maps at `kv_io`, if the store has set it up.
#[allow(
    unsafe_code,
    reason = "the shared region, used only through the protocol's types"
)]
fn attach() -> Result<KvClient<'static>, KvError> {
    let vaddr = *var!(kv_io: u64 = 0);
    if vaddr == 0 {
        return Err(KvError::NotReady);
    }
    // SAFETY: the description maps `kv_io` (`KV_REGION_BYTES`) read-write into this PD and
    // the store only, for the PD's lifetime; it is used only through the protocol's types,
    // which access shared memory with atomics.
    let region = unsafe { KvRegion::attach_raw(vaddr as usize as *mut u8, KV_REGION_BYTES) }?;
    Ok(region.client())
}

/// Writes the key of warm-up or measured operation `n` into `buf` (`warm/00000012`,
/// `data/00000012`); its bytes.
fn key(buf: &mut [u8; 16], warmup: bool, n: u32) -> &[u8] {
    let prefix: &[u8; 5] = if warmup { b"warm/" } else { b"data/" };
    buf[..5].copy_from_slice(prefix);
    let mut digits = n;
    for slot in buf[5..13].iter_mut().rev() {
        *slot = b'0' + (digits % 10) as u8;
        digits /= 10;
    }
    &buf[..13]
}

impl Bench {
    /// Moves on as far as it can without waiting: attaches, opens the session, takes the
    /// answer in flight, sends the next request.
    fn step(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        if self.client.is_none() {
            match attach() {
                Ok(client) => self.client = Some(client),
                Err(KvError::NotReady) => return,
                Err(e) => return self.fail("attaching", e),
            }
        }
        loop {
            let Some(client) = self.client.as_mut() else {
                return;
            };
            if !client.is_open() {
                match client.connect() {
                    // The session is open: the first request goes out below.
                    Ok(Link::Open) => {}
                    Ok(Link::Requested) => {
                        STORE.notify();
                        return;
                    }
                    Ok(Link::Pending) | Err(KvError::NotReady) => return,
                    Err(e) => return self.fail("connecting", e),
                }
            }
            if self.waiting {
                let answer = match client.poll(&mut self.out) {
                    Ok(Some((_, response))) => response,
                    Ok(None) if client.ready_to_wait() => return,
                    Ok(None) => continue,
                    Err(e) => return self.fail("waiting for an answer", e),
                };
                let now = instructions();
                self.total += instructions_between(self.last, now);
                self.last = now;
                self.waiting = false;
                let expected = if self.phase == Phase::Get {
                    VALUE_BYTES
                } else {
                    0
                };
                if answer.status != Status::Ok || answer.len != expected {
                    debug_println!(
                        "bench_kv: operation {} answered {:?} with {} bytes; stopped",
                        self.done,
                        answer.status,
                        answer.len
                    );
                    self.phase = Phase::Done;
                }
                self.completed();
            }
            if self.phase == Phase::Done {
                return;
            }
            self.send();
        }
    }

    /// An operation of the phase answered: counts it, and ends the phase after the last.
    fn completed(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        self.done += 1;
        let end = match self.phase {
            Phase::Warmup => WARMUP,
            _ => ROUNDS,
        };
        if self.done < end {
            return;
        }
        let ns =
            u128::from(ticks() - self.started) * 1_000_000_000 / u128::from(ticks_per_second());
        match self.phase {
            Phase::Warmup => self.phase = Phase::Put,
            Phase::Put => {
                report_average("kv PUT 4 KiB durable", self.total, Some(ns), ROUNDS);
                self.phase = Phase::Get;
            }
            Phase::Get => {
                report_average("kv GET 4 KiB", self.total, Some(ns), ROUNDS);
                self.phase = Phase::Done;
                return;
            }
            Phase::Done => return,
        }
        self.done = 0;
        self.total = 0;
        self.started = ticks();
        self.last = instructions();
    }

    /// Sends the phase's next request.
    fn send(&mut self) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16];
        let key = key(&mut buf, self.phase == Phase::Warmup, self.done);
        let request = match self.phase {
            Phase::Warmup | Phase::Put => {
                // A value of its own per key, without rewriting all of it.
                self.value[..4].copy_from_slice(&self.done.to_le_bytes());
                Request::Put {
                    key,
                    value: &self.value,
                }
            }
            Phase::Get => Request::Get { key },
            Phase::Done => return,
        };
        match client.submit(&request) {
            Ok(_) => {
                self.waiting = true;
                if client.notify_needed() {
                    STORE.notify();
                }
            }
            Err(e) => self.fail("sending", e),
        }
    }

    /// Stops the benchmark after `e`.
    fn fail(&mut self, what: &str, e: KvError) {
        debug_println!("bench_kv: {what}: {e:?}; stopped");
        self.phase = Phase::Done;
    }
}

impl Handler for Bench {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(STORE) {
            self.step();
        }
        Ok(())
    }
}
