//! Doorbells: signals to another replica. A doorbell rings a cross-replica channel word
//! watched on another replica (DoorbellConfigure sets which, once); ringing it is a Send
//! or a Call on its capability. The receiving side is the replica's watches: each watched
//! word signals a notification when the doorbell interrupt arrives
//! (IRQControl_WatchPendingWord sets one up).

use atoll_abi::error::Error;

use super::invoke::Args;
use super::objects::Objects;
use super::{Kernel, Machine};
use crate::cap::Rights;
use crate::id::{DoorbellId, NotificationId};

/// Cross-replica channel words one replica can watch.
pub const MAX_WATCHES: usize = 128;

/// Where a doorbell rings: a pending word watched on another replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bell {
    pub replica: u32,
    pub word: u32,
}

/// A doorbell table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Doorbell {
    Free,
    Unconfigured,
    Rings(Bell),
}

/// A cross-replica channel word of this replica and the notification it signals.
#[derive(Clone, Copy, Debug)]
pub(super) struct Watch {
    pub word: u32,
    pub ntfn: NotificationId,
}

/// The words this replica watches, kept together in `watches[..count]` so the doorbell
/// handler looks at those only.
pub(super) struct Watches {
    watches: [Option<Watch>; MAX_WATCHES],
    count: usize,
}

impl Watches {
    /// No word watched.
    pub const fn new() -> Self {
        Self {
            watches: [None; MAX_WATCHES],
            count: 0,
        }
    }

    /// How many words are watched.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Watch `i` of `0..count()`.
    pub fn get(&self, i: usize) -> Option<Watch> {
        self.watches.get(i).copied().flatten()
    }

    /// Whether word `word` can be watched: it is not yet, and there is room.
    pub fn check(&self, word: u32) -> Result<(), Error> {
        let count = self.count;
        let watched = self.watches.get(..count).unwrap_or_default();
        if watched.iter().flatten().any(|w| w.word == word) {
            return Err(Error::IllegalOperation);
        }
        if count >= MAX_WATCHES {
            return Err(Error::NotEnoughMemory);
        }
        Ok(())
    }

    /// Has cross-replica channel word `word` signal notification `n`.
    pub fn add(&mut self, word: u32, n: NotificationId) -> Result<(), Error> {
        self.check(word)?;
        let count = self.count;
        let free = self.watches.get_mut(count).ok_or(Error::NotEnoughMemory)?;
        *free = Some(Watch { word, ntfn: n });
        self.count = count.saturating_add(1);
        Ok(())
    }

    /// Notification `n` is destroyed: its watches go, the others close up.
    pub fn remove(&mut self, n: NotificationId) {
        let mut kept = 0usize;
        for j in 0..self.count {
            let w = self.get(j);
            if let Some(w) = w.filter(|w| w.ntfn != n)
                && let Some(slot) = self.watches.get_mut(kept)
            {
                *slot = Some(w);
                kept = kept.saturating_add(1);
            }
        }
        for slot in self.watches.iter_mut().skip(kept) {
            *slot = None;
        }
        self.count = kept;
    }
}

impl Objects {
    /// Rings doorbell `data` (a capability's kernel data) with `bits`: whether they were
    /// delivered to the other replica.
    pub fn ring(&mut self, m: &mut impl Machine, data: u64, bits: u64) -> bool {
        match DoorbellId::from_data(data).map(|d| self.doorbells[d]) {
            Some(Doorbell::Rings(bell)) => m.ring_doorbell(bell.replica, bell.word, bits),
            _ => false,
        }
    }
}

impl Kernel {
    /// Decodes DoorbellConfigure (replica, word) on a doorbell capability with kernel data
    /// `data`. Where a doorbell rings is set once, through its original capability: a
    /// badged or reduced copy only rings it.
    #[inline(always)]
    pub(super) fn decode_doorbell(
        &self,
        data: u64,
        rights: Rights,
        badge: u64,
        args: &Args,
    ) -> Result<(DoorbellId, Bell), Error> {
        if badge != 0 || rights != Rights::ALL {
            return Err(Error::IllegalOperation);
        }
        let d = DoorbellId::from_data(data).ok_or(Error::InvalidCapability)?;
        let bell = Bell {
            replica: u32::try_from(args.get(0)?)
                .ok()
                .filter(|&r| r != u32::MAX)
                .ok_or(Error::RangeError)?,
            word: u32::try_from(args.get(1)?).map_err(|_| Error::RangeError)?,
        };
        if self.objects.doorbells[d] != Doorbell::Unconfigured {
            return Err(Error::IllegalOperation);
        }
        Ok((d, bell))
    }

    /// Performs DoorbellConfigure: doorbell `d` rings `bell` from now on.
    #[inline(always)]
    pub(super) fn invoke_doorbell(&mut self, d: DoorbellId, bell: Bell) {
        self.objects.doorbells[d] = Doorbell::Rings(bell);
    }

    /// Has cross-replica channel word `word` signal notification `n`. Bits rung before the
    /// watch began are delivered at once: their senders found the word non-empty and
    /// raised no doorbell, so nothing else would.
    pub(super) fn watch(
        &mut self,
        m: &mut impl Machine,
        word: u32,
        n: NotificationId,
    ) -> Result<(), Error> {
        let o = &mut self.objects;
        o.watches.check(word)?;
        let pending = m.take_pending_word(word).ok_or(Error::RangeError)?;
        o.watches.add(word, n)?;
        if pending != 0 {
            o.signal(n, pending);
        }
        Ok(())
    }
}
