//! Channels, and the pending words their cross-replica notifications set.

use std::collections::BTreeMap;

use atoll_abi::shared::pd_words;
use atoll_abi::spec::PhysRange;

use super::{ChannelPlan, DoorbellPlan, error};
use crate::diagnostics::{Code, Diagnostic, Span};
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
