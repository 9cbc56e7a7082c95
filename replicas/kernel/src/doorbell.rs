//! Doorbells between replicas: bits in the receiver's pending word for the sender, and the
//! one doorbell SGI when the word goes from empty to non-empty (see `atoll_abi::shared`).
//! The kernels' own bells use the inboxes of the shared area (what they mean is `inbox`'s);
//! PDs' cross-replica channels use the channel words after it, one per (receiving PD,
//! sending replica), with the same SGI.
//!
//! This is the sending and taking only: it never acts on a bell, so every layer above may
//! ring one.

use core::sync::atomic::AtomicU64;

use atoll_abi::shared::{doorbell, pd_words};

use crate::replica::Replica;

/// Rings peer replica `target`'s kernel inbox with `bits`. `false`, with nothing sent, when
/// `target` is unknown, this replica, or down (a stopped replica is never waited on).
pub fn ring_peer(r: &Replica, target: usize, bits: u64) -> bool {
    ring_word(r, target, || {
        r.shared
            .doorbells
            .get(target)
            .and_then(|inbox| inbox.ring(r.index, bits))
    })
}

/// Rings peer replica `target` through `set`, which sets the bits in its pending word and
/// says whether the word was empty (`None`: there is no such word); raises the doorbell
/// SGI when it was. `false`, with nothing set, when `target` is unknown, this replica, or
/// down, or there is no word.
fn ring_word(r: &Replica, target: usize, set: impl FnOnce() -> Option<bool>) -> bool {
    let Some(status) = r.status_of(target) else {
        return false;
    };
    if target == r.index || !status.reachable() {
        return false;
    }
    match set() {
        Some(first) => {
            if first {
                raise(r, target);
            }
            true
        }
        None => false,
    }
}

/// Sends the doorbell SGI to the core of replica `target` that runs its PDs.
fn raise(r: &Replica, target: usize) {
    if let Some(core) = r.spec.first_core_of(target as u32) {
        let mpidr = r.core_mpidr(core);
        r.gic.send_sgi(r.spec.gic.doorbell_sgi, mpidr, core);
    }
}

/// Cross-replica channel word `index` (see `atoll_abi::shared::pd_words`), if it exists.
fn pd_word(r: &Replica, index: u32) -> Option<&'static AtomicU64> {
    let offset = pd_words::offset(u64::from(index), r.spec.shared.size)?;
    // SAFETY: the kernel maps the whole shared region (`spec.shared`) read-write at `va`
    // for its whole life, and `pd_words::offset` checked that the word lies inside it. The
    // offset is a multiple of 64 past a page boundary, so the word is aligned; any bit
    // pattern is a valid `AtomicU64`, and every access to it (here and in peer kernels) is
    // atomic.
    Some(unsafe { &*(r.spec.shared.va.wrapping_add(offset) as *const AtomicU64) })
}

/// A PD's notify across replicas: sets `bits` in channel word `word` of replica `target`
/// and raises its doorbell when the word was empty. `false`, with nothing set, when the
/// target is unknown, this replica, or down (its status record says so), or the word does
/// not exist: the sender can tell, and never waits on a stopped replica.
pub fn ring_pd_word(r: &Replica, target: usize, word: u32, bits: u64) -> bool {
    let delivered = ring_word(r, target, || {
        pd_word(r, word).map(|w| doorbell::ring(w, bits))
    });
    // Counted on the status page: a notify delivered, or refused by a replica that is down
    // (not one to an unknown replica or word, which is the sender's mistake).
    if let Some(record) = usize::try_from(word)
        .ok()
        .and_then(|w| r.shared.words.get(w))
        && (delivered || is_down(r, target))
    {
        record.count_send(r.index, target, delivered);
    }
    delivered
}

/// Whether `target` is another replica of the system that is not reachable: down, being
/// restarted, or hung.
fn is_down(r: &Replica, target: usize) -> bool {
    target != r.index && r.status_of(target).is_some_and(|s| !s.reachable())
}

/// Takes every bit pending in channel word `word` (this replica's side, after the doorbell
/// SGI was acknowledged); `None` if the word does not exist.
pub fn take_pd_word(r: &Replica, word: u32) -> Option<u64> {
    let bits = pd_word(r, word).map(doorbell::take)?;
    if bits != 0
        && let Some(record) = usize::try_from(word)
            .ok()
            .and_then(|w| r.shared.words.get(w))
    {
        record.count_take();
    }
    Some(bits)
}
