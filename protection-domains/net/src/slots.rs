//! Which slots of a card's descriptor ring the card holds, in the order it gives them back,
//! and the tag of the buffer in each: the bookkeeping of every ring of the GEM and the ENET,
//! whose descriptors differ but whose slots are handed over and back the same way.

use crate::NET_BUFFERS;

/// Descriptors in each ring: one per buffer of a data region.
pub(crate) const SLOTS: usize = NET_BUFFERS as usize;

/// The slots of one ring the card holds.
pub(crate) struct Slots {
    /// The tag of the buffer in each slot the card holds.
    tags: [u64; SLOTS],
    /// The slot the next buffer goes into.
    next_post: usize,
    /// The oldest slot the card holds: the one it gives back next.
    next_take: usize,
    /// Slots the card holds.
    held: usize,
}

impl Slots {
    /// None held.
    pub(crate) const fn new() -> Self {
        Self {
            tags: [0; SLOTS],
            next_post: 0,
            next_take: 0,
            held: 0,
        }
    }

    /// Whether another slot can be handed over.
    pub(crate) const fn has_room(&self) -> bool {
        self.held < SLOTS
    }

    /// How many slots the card holds.
    pub(crate) const fn held(&self) -> usize {
        self.held
    }

    /// The slot the next hand-over uses.
    pub(crate) const fn next_post(&self) -> usize {
        self.next_post
    }

    /// The oldest slot the card holds, if it holds any.
    pub(crate) const fn oldest(&self) -> Option<usize> {
        if self.held == 0 {
            None
        } else {
            Some(self.next_take)
        }
    }

    /// Records `tag` in the slot [`Slots::next_post`] names, handed to the card (the caller
    /// checked [`Slots::has_room`] and wrote the descriptor).
    pub(crate) fn post(&mut self, tag: u64) {
        if let Some(slot) = self.tags.get_mut(self.next_post) {
            *slot = tag;
        }
        self.next_post = (self.next_post + 1) % SLOTS;
        self.held += 1;
    }

    /// The oldest slot came back (the caller saw [`Slots::oldest`] done): its tag.
    pub(crate) fn take(&mut self) -> u64 {
        let tag = self.tags.get(self.next_take).copied().unwrap_or(0);
        self.next_take = (self.next_take + 1) % SLOTS;
        self.held = self.held.saturating_sub(1);
        tag
    }

    /// The slots the card holds, oldest first.
    pub(crate) fn held_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.held).map(|i| (self.next_take + i) % SLOTS)
    }
}
