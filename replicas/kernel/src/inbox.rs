//! The kernels' own bells: what each bit of a replica's inbox means, and acting on it.
//!
//! A bell rung to this replica itself is acted on at once, on this core; one rung to a peer
//! goes through `doorbell`.

use atoll_abi::shared::bell;

use crate::console::{self, klog};
use crate::doorbell;
use crate::replica::Replica;
use crate::{ping_ring, restart};

/// Rings replica `target` with `bits`. Returns `false` if `target` does not exist or is
/// down (nothing is sent then: a stopped replica is never waited on).
pub fn ring(r: &Replica, target: usize, bits: u64) -> bool {
    if target == r.index && target < r.replica_count() {
        // Our own bells are handled at once, on this core.
        dispatch(r, r.index, bits);
        return true;
    }
    doorbell::ring_peer(r, target, bits)
}

/// Takes every pending bit from every sender and acts on it. Called after acknowledging the
/// doorbell SGI, and once at start-up for bells rung before our interrupts were live.
pub fn service(r: &Replica) {
    let Some(inbox) = r.shared.doorbells.get(r.index) else {
        return;
    };
    for sender in 0..r.replica_count() {
        let bits = inbox.take(sender);
        if bits != 0 {
            dispatch(r, sender, bits);
        }
    }
}

fn dispatch(r: &Replica, sender: usize, bits: u64) {
    if bits & bell::LOG != 0 && r.owns_console() {
        console::drain(r);
    }
    if bits & bell::PING != 0 {
        ping_ring::on_ping(r, sender);
    }
    if bits & bell::PING_BROKEN != 0 && r.index == 0 {
        ping_ring::on_ping_broken(r, sender);
    }
    if bits & bell::STATUS != 0 {
        if r.index == 0 {
            ping_ring::on_status(r);
        }
        restart::watch(r);
    }
    let unknown = bits & !(bell::LOG | bell::PING | bell::PING_BROKEN | bell::STATUS);
    if unknown != 0 {
        klog!("WARN", "K{sender} rang unknown doorbell bits {unknown:#x}");
    }
}
