//! Storage replica test PD (`tests/systems/storage-clients.xml`): a second client of the
//! store, on a replica that stays up. It keeps making round trips (a write and a read back)
//! and watches the writer's replica through a channel to it; once that replica is down, it
//! reads back every write the writer made, checks each whole, and goes on making round trips.
#![no_std]
#![no_main]

use atoll_microkit::{Channel, debug_println, protection_domain, var};
use atoll_pd_storage::client::{KvError, StoreClient};
use atoll_pd_storage::testing::{Quiet, key, value, wait_for_store};

/// The channel to `kv_writer`, only ever used to learn whether its replica is up.
const WRITER: Channel = Channel::new(1);
/// Round trips to make after the writer's replica stopped.
const AFTER: u32 = 100;

#[protection_domain(heap_size = 0x4_0000)]
fn init() -> Quiet {
    // SAFETY: the description maps this PD's region shared with the store at `kv_peer`
    // (or leaves it 0), read-write, for the PD's lifetime; only this client uses it.
    let mut store = unsafe { StoreClient::new(*var!(kv_peer: u64 = 0), Channel::new(0)) };
    if !wait_for_store(&mut store) {
        debug_println!("kv_peer: the store did not come up");
        return Quiet;
    }
    let mut down_at = None;
    let mut trips: u32 = 0;
    loop {
        let k = [b'p', (trips % 251) as u8 + 1];
        let v = trips.to_le_bytes();
        let ok = store.put(&k, &v).is_ok() && store.get(&k).is_ok_and(|got| got == v);
        if !ok {
            debug_println!("kv_peer: round trip {trips} failed");
            break;
        }
        trips += 1;
        if down_at.is_none() && trips.is_multiple_of(20) && WRITER.try_notify().is_err() {
            down_at = Some(trips);
            read_back(&mut store);
        }
        if down_at.is_some_and(|at| trips == at + AFTER) {
            debug_println!(
                "kv_peer: still served after the writer's replica stopped: {AFTER} more round trips"
            );
            break;
        }
    }
    Quiet
}

/// Reads the writer's writes back in order until the first absent one, checking each.
fn read_back(store: &mut StoreClient) {
    let mut expected = [0u8; 512];
    let mut n = 0;
    loop {
        match store.get(key(n).as_bytes()) {
            Ok(got) => {
                value(n, &mut expected);
                if got != expected {
                    debug_println!("kv_peer: write {n} of the writer reads back wrong");
                    return;
                }
                n += 1;
            }
            Err(KvError::NotFound) => break,
            Err(e) => {
                debug_println!("kv_peer: reading write {n} of the writer failed: {e:?}");
                return;
            }
        }
    }
    debug_println!("kv_peer: the writer's replica is down; {n} of its writes read back whole");
}
