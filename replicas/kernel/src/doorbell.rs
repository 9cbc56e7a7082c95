//! Doorbells between replicas: bits in the receiver's pending word for the sender, and the
//! one doorbell SGI when the word goes from empty to non-empty (see `atoll_abi::shared`).

use atoll_abi::shared::{ReplicaState, bell};

use crate::{Replica, boot, console, klog};

/// Rings replica `target` with `bits`. Returns `false` if `target` does not exist or is
/// down (nothing is sent then: a stopped replica is never waited on).
pub fn ring(r: &Replica, target: usize, bits: u64) -> bool {
    if target >= r.replica_count() {
        return false;
    }
    if target == r.index {
        // Our own bells are handled at once, on this core.
        dispatch(r, r.index, bits);
        return true;
    }
    if r.shared.status[target].state() == Some(ReplicaState::Down) {
        return false;
    }
    let Some(first) = r
        .shared
        .doorbells
        .get(target)
        .and_then(|inbox| inbox.ring(r.index, bits))
    else {
        return false;
    };
    if first && let Some(core) = r.spec.first_core_of(target as u32) {
        let mpidr = r.spec.core_mpidr.get(core as usize).copied().unwrap_or(0);
        r.gic.send_sgi(r.spec.gic.doorbell_sgi, mpidr, core);
    }
    true
}

/// Takes every pending bit from every sender and acts on it. Called after acknowledging the
/// doorbell SGI, and once at start-up for bells rung before our interrupts were live.
pub fn service(r: &Replica) {
    let inbox = &r.shared.doorbells[r.index];
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
        boot::on_ping(r, sender);
    }
    if bits & bell::PING_BROKEN != 0 && r.index == 0 {
        boot::on_ping_broken(r, sender);
    }
    if bits & bell::STATUS != 0 && r.index == 0 {
        boot::on_status(r);
    }
    let unknown = bits & !(bell::LOG | bell::PING | bell::PING_BROKEN | bell::STATUS);
    if unknown != 0 {
        klog!("WARN", "K{sender} rang unknown doorbell bits {unknown:#x}");
    }
}
