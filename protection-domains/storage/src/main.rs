//! The `storage` PD: the key-value store of the default system, on core 2 of the `storage`
//! replica. It keeps the store (`atoll-kv`) on the board's disk, reached through the block
//! driver on the replica's other core (`blk_driver`, channel 1), and serves the store to
//! clients on other replicas through the key-value protocol of `atoll_channels::kv`: the
//! I/O service over the region `kv_io` and channel 0, and a second client, if the
//! description maps one, over `kv_peer` and channel 2.
//!
//! Start-up: the block driver sets up the block queues and notifies; this PD then attaches,
//! reads the disk's size, opens the store (recovering its log, and reporting what recovery
//! kept and dropped) or, on a disk with no store, formats one, and only then sets up the
//! client's region and announces itself. A client asks before that are answered
//! `Unavailable` by its own side (the region is not set up yet).
//!
//! The store's calls wait for the disk synchronously (`disk.rs`): this PD has its core to
//! itself. After a disk error the store refuses changes until it is opened again, which
//! this PD does at once, so a transient error costs the requests in flight, never the data.
#![no_std]
#![no_main]

extern crate alloc;

mod disk;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use atoll_channels::block::{
    BLOCK_DATA_BYTES, BLOCK_QUEUE_SLOTS, BLOCK_QUEUES_BYTES, BlockClient, BlockQueues, geometry,
    read_info,
};
use atoll_channels::kv::{
    KV_MAX_VALUE, KV_QUEUE_SLOTS, KV_REGION_BYTES, KV_SCRATCH_BYTES, KvRegion, KvServer, Status,
};
use atoll_channels::queue::DataRegion;
use atoll_kv::{Error, Store};
use atoll_microkit::timer::{counter, counter_frequency, instructions};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, protection_domain, var,
};
use atoll_pd_storage::{Answer, handle, needs_reopen};

use disk::Disk;

/// The I/O service, the store's client (region `kv_io`).
const IO: Channel = Channel::new(0);
/// A second client, if the description gives one (region `kv_peer`).
const PEER: Channel = Channel::new(2);
/// The block driver.
const BLOCK: Channel = Channel::new(1);

/// Where the store is in its start-up.
enum State {
    /// Waiting for the block driver to set up its queues.
    Starting,
    /// Serving: the store (if the disk has one) and the clients.
    Serving(Box<Service>),
}

/// The store and what serves it.
struct Service {
    /// `None`: no disk, or the store could not be opened: every request is answered
    /// `Unavailable`.
    store: Option<Store<Disk<'static>>>,
    /// Each client's region, with its channel: the I/O service's and, if the description
    /// maps one, a second client's.
    clients: Vec<(KvServer<'static>, Channel)>,
    /// A request's key and value, copied out of shared memory.
    scratch: Vec<u8>,
    /// A GET's value or a LIST's keys.
    out: Vec<u8>,
}

struct Storage {
    state: State,
}

#[protection_domain(stack_size = 0x10000, heap_size = 0x10_0000)]
fn init() -> Storage {
    debug_println!("storage: running at EL0");
    let mut storage = Storage {
        state: State::Starting,
    };
    // The driver usually runs first and has notified already; if not, its notification
    // brings us here again.
    storage.start();
    storage
}

impl Storage {
    /// Attaches to the block driver's queues if it has set them up, opens the store and
    /// starts serving.
    fn start(&mut self) {
        if !matches!(self.state, State::Starting) {
            return;
        }
        let queues = *var!(blk_queues: u64 = 0) as usize as *mut u8;
        let data = *var!(blk_data: u64 = 0) as usize as *mut u8;
        // SAFETY: the description maps both regions read-write into this PD and the block
        // driver only, for the PD's lifetime (an unpatched, null one is refused as
        // `BadRegion`); they are used only through the queue types, which access shared
        // memory with atomics.
        let attached = unsafe {
            BlockQueues::<BLOCK_QUEUE_SLOTS>::attach_raw(queues, BLOCK_QUEUES_BYTES, geometry())
                .and_then(|pair| {
                    Ok((
                        pair,
                        read_info(queues, BLOCK_QUEUES_BYTES),
                        DataRegion::from_raw(data, BLOCK_DATA_BYTES, geometry())?,
                    ))
                })
        };
        let Ok((pair, info, data)) = attached else {
            // Not set up yet: the driver's notification comes later.
            return;
        };
        let store = match info {
            Some(info) if info.blocks > 0 => match BlockClient::new(pair.client(), data) {
                Ok(client) => open(Disk::new(client, BLOCK, info.blocks)),
                Err(e) => {
                    debug_println!("storage: the block queues are unusable ({e:?}): no store");
                    None
                }
            },
            _ => {
                debug_println!("storage: no disk: the key-value store is unavailable");
                None
            }
        };
        let clients = [(*var!(kv_io: u64 = 0), IO), (*var!(kv_peer: u64 = 0), PEER)]
            .into_iter()
            .filter_map(|(vaddr, channel)| Some((kv_region(vaddr)?, channel)))
            .collect();
        let mut service = Box::new(Service {
            store,
            clients,
            scratch: vec![0; KV_SCRATCH_BYTES],
            out: vec![0; KV_MAX_VALUE],
        });
        service.serve();
        self.state = State::Serving(service);
    }
}

/// Sets up a client's region at `vaddr` (0: the description maps none).
fn kv_region(vaddr: u64) -> Option<KvServer<'static>> {
    if vaddr == 0 {
        return None;
    }
    // SAFETY: the description maps the region (`KV_REGION_BYTES`, checked by the tool's
    // size) read-write into this PD and its one client only, for the PD's lifetime; it is
    // used only through the protocol's types, which access shared memory with atomics.
    match unsafe { KvRegion::init_raw(vaddr as usize as *mut u8, KV_REGION_BYTES) } {
        Ok(region) => Some(region.server()),
        Err(e) => {
            debug_println!("storage: the client region at {vaddr:#x} is unusable: {e:?}");
            None
        }
    }
}

/// A fresh nonce for a new store: the counter's value and frequency, mixed.
fn nonce() -> u64 {
    let mut x = counter() ^ counter_frequency().rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64's finaliser: every bit of the input moves every bit of the output.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Opens the store on `disk`, formatting a new one on a blank disk.
fn open(disk: Disk<'static>) -> Option<Store<Disk<'static>>> {
    let blocks = disk.blocks();
    let started = counter();
    let first = instructions();
    match Store::open_or_format(disk, nonce()) {
        Ok((store, recovery)) => {
            // Machine-wide under `-icount` (the benchmarks' recovery figure); 32 bits wide.
            let executed = instructions().wrapping_sub(first) & 0xFFFF_FFFF;
            let ms = (counter() - started) * 1000 / counter_frequency();
            match recovery {
                Some(recovery) => debug_println!(
                    "storage: opened the store on a disk of {blocks} blocks in {ms} ms, {executed} instructions: {} keys; {recovery}",
                    store.len()
                ),
                None => debug_println!(
                    "storage: opened the store: a new one on a blank disk of {blocks} blocks, formatted in {ms} ms"
                ),
            }
            Some(store)
        }
        Err(Error::NoStore) => {
            debug_println!(
                "storage: the disk ({blocks} blocks) holds no valid store and is not blank: left as it is (no store; erase it to start anew)"
            );
            None
        }
        Err(e) => {
            debug_println!("storage: the store could not be opened ({e}): no store");
            None
        }
    }
}

impl Service {
    /// Serves every client's waiting requests, a client at a time and at most a queue's
    /// worth of each in a round, so that no client can hold the store from the others;
    /// then asks each to notify it of its next ones.
    fn serve(&mut self) {
        loop {
            let mut waiting = false;
            for index in 0..self.clients.len() {
                waiting |= self.serve_one(index);
            }
            if !waiting {
                return;
            }
        }
    }

    /// Serves up to a queue's worth of client `index`'s requests; whether it may have more.
    fn serve_one(&mut self, index: usize) -> bool {
        let Some((server, channel)) = self.clients.get_mut(index) else {
            return false;
        };
        for _ in 0..KV_QUEUE_SLOTS {
            // Each `Some` takes a descriptor off the queue.
            let Some(next) = server.next(&mut self.scratch) else {
                break;
            };
            // A rejected request was answered or dropped by the protocol already, and
            // counted there.
            let Ok((token, request)) = next else {
                continue;
            };
            let (answer, error) = match self.store.as_mut() {
                Some(store) => handle(store, &request, &mut self.out),
                None => (
                    Answer {
                        status: Status::Unavailable,
                        flags: 0,
                        len: 0,
                    },
                    None,
                ),
            };
            let body = self.out.get(..answer.len).unwrap_or_default();
            if let Err(e) = server.reply(token, answer.status, answer.flags, body) {
                debug_println!("storage: an answer was lost: {e:?}");
            }
            if let Some(e) = error.filter(|e| needs_reopen(*e)) {
                self.store = reopen(self.store.take(), e);
            }
        }
        if server.notify_needed() {
            // A client on a stopped replica is not told; the others go on.
            let _ = channel.try_notify();
        }
        !server.ready_to_wait()
    }
}

/// Opens the store again after `error`, which left it refusing changes.
fn reopen(store: Option<Store<Disk<'static>>>, error: Error) -> Option<Store<Disk<'static>>> {
    let disk = store?.into_inner();
    debug_println!("storage: the store failed ({error}): opening it again");
    open(disk)
}

impl Handler for Storage {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(BLOCK) {
            self.start();
        }
        if let State::Serving(service) = &mut self.state {
            service.serve();
        }
        Ok(())
    }
}
