//! Channels, and the pending words their cross-replica notifications set.

use std::collections::BTreeMap;

use atoll_abi::shared::pd_words;
use atoll_abi::spec::PhysRange;

use super::{ChannelPlan, DoorbellPlan, Plan, error};
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::RESTART_WORDS;
use crate::model::SystemDescription;

/// The planned channels, in document order. Each cross-replica notification gets a
/// pending word: one per (receiving PD, sending replica), after the kernel's own
/// shared-area structures (`atoll_abi::shared::pd_words`, which the kernels use too).
pub(super) fn plan(
    system: &SystemDescription,
    kernel_shared: PhysRange,
    errors: &mut Vec<Diagnostic>,
) -> Vec<ChannelPlan> {
    let mut pending_words: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let mut channels = Vec::new();
    for channel in &system.channels {
        let [a, b] = &channel.ends;
        let mut doorbells = Vec::new();
        if channel.cross_replica {
            for (from, to) in [(a, b), (b, a)] {
                if !from.notify {
                    continue;
                }
                let key = (to.pd, system.protection_domains[from.pd].replica);
                let next = pending_words.len() as u64;
                let word = *pending_words.entry(key).or_insert(next);
                doorbells.push(DoorbellPlan {
                    from: system.protection_domains[from.pd].name.clone(),
                    to: system.protection_domains[to.pd].name.clone(),
                    bit: to.id,
                    word: u32::try_from(word).unwrap_or(u32::MAX),
                    // A word past the region's end is reported below.
                    pending_word: kernel_shared.base
                        + pd_words::offset(word, kernel_shared.size).unwrap_or(0),
                });
            }
        }
        channels.push(ChannelPlan {
            ends: [a, b].map(|e| (system.protection_domains[e.pd].name.clone(), e.id)),
            cross_replica: channel.cross_replica,
            notify: [a.notify, b.notify],
            pp_caller: [a, b].iter().position(|e| e.pp),
            doorbells,
        });
    }
    restart_words(system, &pending_words, errors);
    if pending_words.len() as u64 > pd_words::count(kernel_shared.size) {
        errors.push(error(
            Code::OutOfMemory,
            Span::default(),
            format!(
                "{} cross-replica doorbell words do not fit the shared area",
                pending_words.len()
            ),
        ));
    }
    channels
}

/// Refuses a restartable replica (`restart="true"`) that receives or sends on a word
/// numbered [`RESTART_WORDS`] or more: its restart clears its words by the 64-bit masks of
/// its boot spec ([`word_masks`]), which have no bit for such a word. `pending_words` maps
/// (receiving PD, sending replica) to the word.
fn restart_words(
    system: &SystemDescription,
    pending_words: &BTreeMap<(usize, usize), u64>,
    errors: &mut Vec<Diagnostic>,
) {
    for (index, replica) in system.replicas.values().enumerate() {
        let Some(restart) = replica.restart else {
            continue;
        };
        let mut past = pending_words.iter().filter(|&(&(to, from), &word)| {
            word >= RESTART_WORDS
                && (from == index || system.protection_domains[to].replica == index)
        });
        let Some((&(to, from), &word)) = past.next() else {
            continue;
        };
        let more = past.count();
        let sender = system
            .replicas
            .get_index(from)
            .map_or("?", |(name, _)| name.as_str());
        let others = match more {
            0 => String::new(),
            n => format!(", nor for {n} more"),
        };
        errors.push(
            error(
                Code::ReplicaRestart,
                restart,
                format!(
                    "replica '{}' has too many cross-replica channel words to be restarted: a \
                     restart clears its words by a {RESTART_WORDS}-bit mask, which has no bit \
                     for its word {word} (from replica '{sender}' to PD '{}'){others}",
                    replica.name, system.protection_domains[to].name
                ),
            )
            .with_help(
                "each (receiving PD, sending replica) pair of a cross-replica channel has a \
                 word, numbered in channel order: declare this replica's channels first, \
                 join fewer PDs across replicas, or drop restart=\"true\"",
            ),
        );
    }
}

/// Per replica (by index): the cross-replica channel words it receives on (the receiving
/// PD is one of its PDs) and those it sends on (the sending PD is), as masks, bit `w` for
/// word `w`, from the planned doorbells. A word numbered [`RESTART_WORDS`] or more has no
/// bit; no restartable replica has one ([`plan`] refuses it).
pub(super) fn word_masks(plan: &Plan) -> Vec<(u64, u64)> {
    let replica_of = |pd: &str| {
        plan.replicas
            .iter()
            .position(|r| r.protection_domains.iter().any(|p| p.name == pd))
    };
    let mut masks = vec![(0, 0); plan.replicas.len()];
    for doorbell in plan.channels.iter().flat_map(|c| &c.doorbells) {
        let Some(bit) = 1u64.checked_shl(doorbell.word) else {
            continue;
        };
        if let Some((words_in, _)) = replica_of(&doorbell.to).and_then(|r| masks.get_mut(r)) {
            *words_in |= bit;
        }
        if let Some((_, words_out)) = replica_of(&doorbell.from).and_then(|r| masks.get_mut(r)) {
            *words_out |= bit;
        }
    }
    masks
}

/// Per cross-replica channel word below [`RESTART_WORDS`]: the index of the replica that
/// receives on it (`NO_REPLICA` for a word that does not exist).
pub(super) fn word_receivers(plan: &Plan) -> [u8; RESTART_WORDS as usize] {
    let replica_of = |pd: &str| {
        plan.replicas
            .iter()
            .position(|r| r.protection_domains.iter().any(|p| p.name == pd))
    };
    let mut receivers = [atoll_abi::spec::NO_REPLICA; RESTART_WORDS as usize];
    for doorbell in plan.channels.iter().flat_map(|c| &c.doorbells) {
        if let (Some(to), Some(slot)) = (
            replica_of(&doorbell.to).and_then(|r| u8::try_from(r).ok()),
            receivers.get_mut(doorbell.word as usize),
        ) {
            *slot = to;
        }
    }
    receivers
}

/// Per cross-replica channel word below [`RESTART_WORDS`]: every bit its sender may set,
/// the receiving PD's ids of its notifying channels from the sending replica (what a
/// restart of that replica sets in the word to tell the PD, `ReplicaSpec::word_bits`).
pub(super) fn word_bits(plan: &Plan) -> [u64; RESTART_WORDS as usize] {
    let mut bits = [0; RESTART_WORDS as usize];
    for doorbell in plan.channels.iter().flat_map(|c| &c.doorbells) {
        if let Some(word) = bits.get_mut(doorbell.word as usize) {
            *word |= 1 << doorbell.bit;
        }
    }
    bits
}
