//! Storage replica test PD (`tests/systems/storage-clients.xml`): on the replica the test
//! stops on purpose, it streams durable writes to the store (`w-<n>`, each value a
//! function of `n`) and says every 10th that was acknowledged. The store must lose none of
//! them when this replica stops with a write in flight.
#![no_std]
#![no_main]

use atoll_microkit::{Channel, debug_println, protection_domain, var};
use atoll_pd_storage::client::StoreClient;
use atoll_pd_storage::testing::{Quiet, WRITES, key, value, wait_for_store};

#[protection_domain(heap_size = 0x4_0000)]
fn init() -> Quiet {
    // SAFETY: the description maps this PD's region shared with the store at `kv_io`
    // (or leaves it 0), read-write, for the PD's lifetime; only this client uses it.
    let mut store = unsafe { StoreClient::new(*var!(kv_io: u64 = 0), Channel::new(0)) };
    if !wait_for_store(&mut store) {
        debug_println!("kv_writer: the store did not come up");
        return Quiet;
    }
    let mut value_buf = [0u8; 512];
    for n in 0..WRITES {
        value(n, &mut value_buf);
        match store.put(key(n).as_bytes(), &value_buf) {
            Ok(_) if (n + 1) % 10 == 0 => debug_println!("kv_writer: {} acknowledged", n + 1),
            Ok(_) => {}
            Err(e) => {
                debug_println!("kv_writer: write {n} failed: {e:?}");
                break;
            }
        }
    }
    debug_println!("kv_writer: done");
    Quiet
}
