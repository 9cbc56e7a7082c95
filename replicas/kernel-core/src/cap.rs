//! Capabilities, their slots and their derivation tree, in the style of seL4.
//!
//! A replica's capabilities live in one table of slots; a CNode object owns a run of
//! `2^radix` slots in it, handed out when the CNode is retyped. Every capability records
//! where it came from in the **derivation tree**: retype makes object capabilities children
//! of the untyped capability, and copy, mint and mutate make the new capability a child of
//! its source. Revoking a capability deletes every descendant; deleting one keeps its
//! descendants, which move up to its parent; deleting the last capability to an object
//! destroys the object (a CNode's contents are deleted with it).
//!
//! Nothing here allocates or recurses: trees are linked through slot indices, and cascades
//! (revoke, CNode destruction) use bounded work lists. Every operation checks its arguments
//! and returns an `Error`; none panics on any input.

use atoll_abi::error::Error;
use atoll_abi::microkit::{CNODE_SLOT_BITS, ObjectKind};

/// Index of a slot in the table.
pub type SlotId = usize;

const NONE: u32 = u32::MAX;

/// Access rights of a capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// Receive / read.
    pub const READ: Self = Self(1);
    /// Send / write.
    pub const WRITE: Self = Self(2);
    /// Pass capabilities along with a message.
    pub const GRANT: Self = Self(4);
    /// Let the receiver reply.
    pub const GRANT_REPLY: Self = Self(8);
    /// Every right.
    pub const ALL: Self = Self(15);
    /// No right.
    pub const NONE: Self = Self(0);

    /// From raw bits (unknown bits dropped).
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 15)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every right in `other` is here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights in both.
    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// A capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cap {
    /// An empty slot.
    #[default]
    Null,
    /// Untyped memory: `2^size_bits` bytes at `base`; `watermark` bytes already retyped.
    Untyped {
        /// Physical base.
        base: u64,
        /// log2 of its size.
        size_bits: u8,
        /// Bytes from `base` already handed out.
        watermark: u64,
        /// Device memory, or memory the loader filled: only frames (and smaller untyped
        /// blocks) are made from it, and the kernel never zeroes it (seL4's device untyped).
        device: bool,
    },
    /// A CNode of `2^radix` slots starting at table slot `first`.
    CNode {
        /// Physical base of the object.
        base: u64,
        /// log2 of its slot count.
        radix: u8,
        /// First table slot it owns.
        first: u32,
        /// Guard value.
        guard: u64,
        /// Guard width in bits.
        guard_bits: u8,
    },
    /// Any other kernel object.
    Object {
        /// What it is.
        kind: ObjectKind,
        /// Physical base of the object.
        base: u64,
        /// log2 of its size.
        size_bits: u8,
        /// Rights.
        rights: Rights,
        /// Badge (endpoints, notifications, doorbells).
        badge: u64,
        /// Kernel data: the object's table index for threads, endpoints, notifications,
        /// replies, scheduling contexts, address spaces and doorbells; for a frame or page
        /// table, where this capability maps it (see the kernel), 0 when unmapped. A copy of
        /// a frame or page-table capability starts unmapped.
        data: u64,
    },
}

impl Cap {
    /// The object this capability names (base, kind), if any; untyped memory is not an
    /// object.
    pub fn object(&self) -> Option<(u64, ObjectKind)> {
        match *self {
            Cap::CNode { base, .. } => Some((base, ObjectKind::CNode)),
            Cap::Object { kind, base, .. } => Some((base, kind)),
            Cap::Null | Cap::Untyped { .. } => None,
        }
    }

    /// Whether the slot is empty.
    pub fn is_null(&self) -> bool {
        matches!(self, Cap::Null)
    }

    /// Physical range the capability covers (untyped or object); `None` for the
    /// authorities that are not memory.
    pub fn range(&self) -> Option<(u64, u64)> {
        match *self {
            Cap::Object {
                kind: ObjectKind::IrqControl | ObjectKind::IrqHandler | ObjectKind::SchedControl,
                ..
            } => None,
            Cap::Untyped {
                base, size_bits, ..
            }
            | Cap::Object {
                base, size_bits, ..
            } => Some((base, 1u64 << size_bits)),
            Cap::CNode { base, radix, .. } => {
                Some((base, 1u64 << (u32::from(radix) + CNODE_SLOT_BITS)))
            }
            Cap::Null => None,
        }
    }
}

/// One slot: a capability and its place in the derivation tree.
#[derive(Clone, Copy, Debug)]
struct Slot {
    cap: Cap,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    prev_sibling: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        cap: Cap::Null,
        parent: NONE,
        first_child: NONE,
        next_sibling: NONE,
        prev_sibling: NONE,
    };
}

/// Why a capability lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFault {
    /// The root is not a CNode.
    InvalidRoot,
    /// A guard did not match.
    GuardMismatch {
        /// Bits left to resolve when it failed.
        bits_left: u8,
    },
    /// The address ran out of bits in the middle of a level.
    DepthMismatch {
        /// Bits left to resolve when it failed.
        bits_left: u8,
    },
}

/// The capability table of a replica: `N` slots, of which the first `roots` are free
/// standing (the initial slots the kernel hands out at boot) and the rest are handed to
/// CNodes as they are retyped.
pub struct CapTable<const N: usize> {
    slots: [Slot; N],
    roots: usize,
    /// Every CNode run ever handed out ends at or below this slot, so a new run can start
    /// here without a search while it fits.
    cnode_top: usize,
    /// Work list of a cascading deletion (kept here, not on the kernel stack).
    work: [u32; N],
}

impl<const N: usize> CapTable<N> {
    /// A table whose first `roots` slots stand alone; the rest back CNodes.
    pub const fn new(roots: usize) -> Self {
        let roots = if roots < N { roots } else { N };
        Self {
            slots: [Slot::EMPTY; N],
            roots,
            cnode_top: roots,
            work: [NONE; N],
        }
    }

    /// The capability in `slot` (`Null` for an index out of range).
    pub fn get(&self, slot: SlotId) -> Cap {
        *self.get_ref(slot)
    }

    /// The capability in `slot` (`Null` if out of range), without copying it.
    pub fn get_ref(&self, slot: SlotId) -> &Cap {
        self.slots.get(slot).map_or(&Cap::Null, |s| &s.cap)
    }

    /// The parent of `slot` in the derivation tree.
    pub fn parent(&self, slot: SlotId) -> Option<SlotId> {
        let p = self.slots.get(slot)?.parent;
        (p != NONE).then_some(p as usize)
    }

    /// The children of `slot` in the derivation tree, in insertion order (newest first).
    pub fn children(&self, slot: SlotId) -> impl Iterator<Item = SlotId> + '_ {
        let mut next = self.slots.get(slot).map_or(NONE, |s| s.first_child);
        core::iter::from_fn(move || {
            (next != NONE).then(|| {
                let current = next as usize;
                next = self.slots[current].next_sibling;
                current
            })
        })
    }

    fn check(&self, slot: SlotId) -> Result<(), Error> {
        if slot < N {
            Ok(())
        } else {
            Err(Error::RangeError)
        }
    }

    fn empty(&self, slot: SlotId) -> Result<(), Error> {
        self.check(slot)?;
        if self.slots[slot].cap.is_null() {
            Ok(())
        } else {
            Err(Error::DeleteFirst)
        }
    }

    fn full(&self, slot: SlotId) -> Result<Cap, Error> {
        self.check(slot)?;
        match self.slots[slot].cap {
            Cap::Null => Err(Error::FailedLookup),
            cap => Ok(cap),
        }
    }

    /// Boot: places an original capability (untyped memory, IRQ control) in an empty slot.
    pub fn insert_original(&mut self, slot: SlotId, cap: Cap) -> Result<(), Error> {
        self.empty(slot)?;
        if let Some((first, len)) = Self::cnode_slots(cap) {
            self.cnode_top = self.cnode_top.max(first.saturating_add(len).min(N));
        }
        self.slots[slot] = Slot { cap, ..Slot::EMPTY };
        Ok(())
    }

    fn link_child(&mut self, parent: SlotId, child: SlotId) {
        let old_first = self.slots[parent].first_child;
        self.slots[child].parent = parent as u32;
        self.slots[child].prev_sibling = NONE;
        self.slots[child].next_sibling = old_first;
        if old_first != NONE {
            self.slots[old_first as usize].prev_sibling = child as u32;
        }
        self.slots[parent].first_child = child as u32;
    }

    fn unlink(&mut self, slot: SlotId) {
        let Slot {
            parent,
            prev_sibling,
            next_sibling,
            ..
        } = self.slots[slot];
        if prev_sibling != NONE {
            self.slots[prev_sibling as usize].next_sibling = next_sibling;
        } else if parent != NONE {
            self.slots[parent as usize].first_child = next_sibling;
        }
        if next_sibling != NONE {
            self.slots[next_sibling as usize].prev_sibling = prev_sibling;
        }
        self.slots[slot].parent = NONE;
        self.slots[slot].prev_sibling = NONE;
        self.slots[slot].next_sibling = NONE;
    }

    /// Copy with rights no wider than the source's; the copy is a child of the source.
    pub fn copy(&mut self, src: SlotId, dest: SlotId, rights: Rights) -> Result<(), Error> {
        self.derive(src, dest, rights, None)
    }

    /// Copy with reduced rights and a badge (endpoints, notifications, doorbells only; the
    /// source must be unbadged).
    pub fn mint(
        &mut self,
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        badge: u64,
    ) -> Result<(), Error> {
        self.derive(src, dest, rights, Some(badge))
    }

    /// seL4's Mutate: moves the capability to `dest`, reducing its rights and (for an
    /// unbadged endpoint, notification or doorbell) setting a badge; its place in the
    /// derivation tree moves with it.
    pub fn mutate(
        &mut self,
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        badge: Option<u64>,
    ) -> Result<(), Error> {
        let cap = self.full(src)?;
        self.empty(dest)?;
        let changed = Self::transform(cap, rights, badge, false)?;
        self.move_cap(src, dest)?;
        self.slots[dest].cap = changed;
        Ok(())
    }

    /// The capability a copy, mint (`copy`) or mutate of `cap` produces.
    fn transform(cap: Cap, rights: Rights, badge: Option<u64>, copy: bool) -> Result<Cap, Error> {
        Ok(match (cap, badge) {
            (Cap::Untyped { .. } | Cap::CNode { .. }, Some(_)) => {
                return Err(Error::IllegalOperation);
            }
            (Cap::Untyped { .. } | Cap::CNode { .. }, None) => cap,
            (
                Cap::Object {
                    kind,
                    base,
                    size_bits,
                    rights: have,
                    badge: old,
                    data,
                },
                badge,
            ) => {
                let badgeable = matches!(
                    kind,
                    ObjectKind::Endpoint | ObjectKind::Notification | ObjectKind::Doorbell
                );
                let badge = match badge {
                    None => old,
                    // As in seL4, minting badge 0 onto an object without badges is a copy.
                    Some(0) if !badgeable => old,
                    Some(new) => {
                        if !badgeable {
                            return Err(Error::IllegalOperation);
                        }
                        if old != 0 {
                            return Err(Error::IllegalOperation); // a badge is set once
                        }
                        new
                    }
                };
                // A copy of a mapping capability is a fresh, unmapped one.
                let data = if copy && matches!(kind, ObjectKind::Frame | ObjectKind::PageTable) {
                    0
                } else {
                    data
                };
                Cap::Object {
                    kind,
                    base,
                    size_bits,
                    rights: have.intersect(rights),
                    badge,
                    data,
                }
            }
            (Cap::Null, _) => return Err(Error::FailedLookup),
        })
    }

    fn derive(
        &mut self,
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        badge: Option<u64>,
    ) -> Result<(), Error> {
        let cap = self.full(src)?;
        self.empty(dest)?;
        // Two capabilities to the same untyped memory could each retype it: untyped memory is
        // moved or retyped into smaller untyped blocks, never copied.
        if matches!(cap, Cap::Untyped { .. }) {
            return Err(Error::IllegalOperation);
        }
        let derived = Self::transform(cap, rights, badge, true)?;
        self.slots[dest] = Slot {
            cap: derived,
            ..Slot::EMPTY
        };
        self.link_child(src, dest);
        Ok(())
    }

    /// Moves a capability, keeping its place in the derivation tree.
    pub fn move_cap(&mut self, src: SlotId, dest: SlotId) -> Result<(), Error> {
        let _ = self.full(src)?;
        self.empty(dest)?;
        if src == dest {
            return Ok(());
        }
        let moved = self.slots[src];
        self.slots[dest] = moved;
        // Re-point neighbours at the new slot.
        if moved.prev_sibling != NONE {
            self.slots[moved.prev_sibling as usize].next_sibling = dest as u32;
        } else if moved.parent != NONE {
            self.slots[moved.parent as usize].first_child = dest as u32;
        }
        if moved.next_sibling != NONE {
            self.slots[moved.next_sibling as usize].prev_sibling = dest as u32;
        }
        let mut child = moved.first_child;
        while child != NONE {
            self.slots[child as usize].parent = dest as u32;
            child = self.slots[child as usize].next_sibling;
        }
        self.slots[src] = Slot::EMPTY;
        Ok(())
    }

    /// Whether any other slot names the same object as `slot`.
    fn has_other_reference(&self, slot: SlotId) -> bool {
        let Some(object) = self.slots[slot].cap.object() else {
            return false;
        };
        self.slots
            .iter()
            .enumerate()
            .any(|(i, s)| i != slot && s.cap.object() == Some(object))
    }

    /// Deletes the capability in `slot`. Its children move up to its parent. If it was the
    /// last capability to its object, the object is destroyed (a CNode's contents with it).
    ///
    /// The cascade through nested CNodes uses the table's own work list (each slot enters
    /// it at most once). It is not preemptible: a replica's table is small enough (see the
    /// kernel's limits) that the longest cascade is bounded, where seL4 needs zombies.
    pub fn delete(&mut self, slot: SlotId) -> Result<(), Error> {
        self.delete_with(slot, &mut |_, _| {})
    }

    /// [`CapTable::delete`], telling `gone` about every capability removed and whether it
    /// was the last one to its object (so the kernel can destroy the object: release its
    /// waiters, unmap a frame, free its table entry).
    pub fn delete_with(
        &mut self,
        slot: SlotId,
        gone: &mut dyn FnMut(Cap, bool),
    ) -> Result<(), Error> {
        self.check(slot)?;
        // Every slot is pushed at most once: only a CNode's last capability pushes its
        // contents, and each slot belongs to one CNode.
        self.work[0] = slot as u32;
        let mut pending = 1;
        while pending > 0 {
            pending -= 1;
            let slot = self.work[pending] as usize;
            let cap = self.slots[slot].cap;
            if cap.is_null() {
                continue;
            }
            let last = !self.has_other_reference(slot);
            let parent = self.slots[slot].parent;
            while self.slots[slot].first_child != NONE {
                let child = self.slots[slot].first_child as usize;
                self.unlink(child);
                if parent != NONE {
                    self.link_child(parent as usize, child);
                }
            }
            self.unlink(slot);
            self.slots[slot] = Slot::EMPTY;
            gone(cap, last);
            if let (true, Cap::CNode { radix, first, .. }) = (last, cap) {
                let first = first as usize;
                for inner in first..first.saturating_add(1usize << radix).min(N) {
                    if !self.slots[inner].cap.is_null() && pending < N {
                        self.work[pending] = inner as u32;
                        pending += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes every capability derived from the one in `slot`.
    pub fn revoke(&mut self, slot: SlotId) -> Result<(), Error> {
        self.revoke_with(slot, &mut |_, _| {})
    }

    /// [`CapTable::revoke`], telling `gone` about every capability removed (see
    /// [`CapTable::delete_with`]).
    pub fn revoke_with(
        &mut self,
        slot: SlotId,
        gone: &mut dyn FnMut(Cap, bool),
    ) -> Result<(), Error> {
        let _ = self.full(slot)?;
        // Deleting the deepest descendants first keeps every step a plain leaf deletion.
        loop {
            let mut leaf = match self.slots[slot].first_child {
                NONE => break,
                c => c as usize,
            };
            while self.slots[leaf].first_child != NONE {
                leaf = self.slots[leaf].first_child as usize;
            }
            self.delete_with(leaf, gone)?;
        }
        if let Cap::Untyped { watermark, .. } = &mut self.slots[slot].cap {
            *watermark = 0;
        }
        Ok(())
    }

    /// Retypes part of the untyped memory in `untyped` into `count` objects of `kind`
    /// (`size_bits` for frames and untyped, the radix for CNodes), placing their
    /// capabilities in the empty slots `dest..dest + count`.
    pub fn retype(
        &mut self,
        untyped: SlotId,
        kind: RetypeKind,
        count: usize,
        dest: SlotId,
    ) -> Result<(), Error> {
        let Cap::Untyped {
            base,
            size_bits,
            watermark,
            device,
        } = self.full(untyped)?
        else {
            return Err(Error::InvalidCapability);
        };
        if device && !matches!(kind, RetypeKind::Frame { .. } | RetypeKind::Untyped { .. }) {
            return Err(Error::InvalidArgument);
        }
        if count == 0 || count > N {
            return Err(Error::RangeError);
        }
        for d in dest..dest.checked_add(count).ok_or(Error::RangeError)? {
            self.empty(d)?;
        }
        let object_bits = kind.size_bits()?;
        if u32::from(object_bits) > u32::from(size_bits) {
            return Err(Error::NotEnoughMemory);
        }
        let size = 1u64 << object_bits;
        // A fresh untyped (no children) starts again from its base.
        let watermark = if self.slots[untyped].first_child == NONE {
            0
        } else {
            watermark
        };
        let start = watermark
            .checked_next_multiple_of(size)
            .ok_or(Error::NotEnoughMemory)?;
        let needed = size
            .checked_mul(count as u64)
            .ok_or(Error::NotEnoughMemory)?;
        let end = start.checked_add(needed).ok_or(Error::NotEnoughMemory)?;
        if end > 1u64 << size_bits {
            return Err(Error::NotEnoughMemory);
        }
        // CNodes need table slots for their contents.
        let mut cnode_first = [0u32; 1];
        if let RetypeKind::CNode { radix } = kind {
            let want = (1usize << radix)
                .checked_mul(count)
                .ok_or(Error::NotEnoughMemory)?;
            let first = self.find_free_run(want).ok_or(Error::NotEnoughMemory)?;
            self.cnode_top = self.cnode_top.max(first + want);
            cnode_first[0] = first as u32;
        }
        for i in 0..count {
            let object_base = base + start + i as u64 * size;
            let cap = match kind {
                RetypeKind::Untyped { size_bits } => Cap::Untyped {
                    base: object_base,
                    size_bits,
                    watermark: 0,
                    device,
                },
                RetypeKind::CNode { radix } => Cap::CNode {
                    base: object_base,
                    radix,
                    first: cnode_first[0] + (i << radix) as u32,
                    guard: 0,
                    guard_bits: 0,
                },
                RetypeKind::Object(kind) | RetypeKind::Frame { kind, .. } => Cap::Object {
                    kind,
                    base: object_base,
                    size_bits: object_bits,
                    rights: Rights::ALL,
                    badge: 0,
                    data: 0,
                },
            };
            self.slots[dest + i] = Slot { cap, ..Slot::EMPTY };
            self.link_child(untyped, dest + i);
        }
        self.slots[untyped].cap = Cap::Untyped {
            base,
            size_bits,
            watermark: end,
            device,
        };
        Ok(())
    }

    /// A run of `want` slots past the root slots that no live CNode owns: above every run
    /// handed out so far while that fits, else the first free one.
    fn find_free_run(&self, want: usize) -> Option<usize> {
        if self.cnode_top.checked_add(want)? <= N {
            return Some(self.cnode_top);
        }
        let mut at = self.roots;
        loop {
            if at.checked_add(want)? > N {
                return None;
            }
            let clash = self.slots.iter().find_map(|s| match s.cap {
                Cap::CNode { first, radix, .. } => {
                    let (first, len) = (first as usize, 1usize << radix);
                    (at < first + len && first < at + want).then_some(first + len)
                }
                _ => None,
            });
            match clash {
                Some(next) => at = next,
                None => return Some(at),
            }
        }
    }

    /// Resolves `depth` bits of `cptr` through the CNode in `root` (seL4's guarded
    /// addressing): each level checks its guard, then indexes `radix` bits, and follows a
    /// CNode found in the slot while bits remain.
    pub fn lookup(&self, root: SlotId, cptr: u64, depth: u8) -> Result<SlotId, LookupFault> {
        self.lookup_from(self.get_ref(root), cptr, depth)
    }

    /// [`CapTable::lookup`] from a CNode capability held outside the table (a thread's
    /// capability-space root).
    #[inline]
    pub fn lookup_from(&self, root: &Cap, cptr: u64, depth: u8) -> Result<SlotId, LookupFault> {
        let mut cap = root;
        let mut left = u32::from(depth.min(64));
        loop {
            let Cap::CNode {
                radix,
                first,
                guard,
                guard_bits,
                ..
            } = *cap
            else {
                return Err(LookupFault::InvalidRoot);
            };
            let level = u32::from(radix) + u32::from(guard_bits);
            if level == 0 || level > left {
                return Err(LookupFault::DepthMismatch {
                    bits_left: left as u8,
                });
            }
            let bits = |shift: u32, width: u32| {
                if width == 0 {
                    0
                } else {
                    (cptr >> shift) & (u64::MAX >> (64 - width))
                }
            };
            if bits(left - u32::from(guard_bits), u32::from(guard_bits)) != guard {
                return Err(LookupFault::GuardMismatch {
                    bits_left: left as u8,
                });
            }
            let index = bits(left - level, u32::from(radix)) as usize;
            let slot = first as usize + index;
            left -= level;
            let next = self.get_ref(slot);
            if left == 0 || !matches!(next, Cap::CNode { .. }) {
                return Ok(slot);
            }
            cap = next;
        }
    }

    /// Sets the kernel data of an object capability (see [`Cap::Object`]).
    pub fn set_data(&mut self, slot: SlotId, value: u64) -> Result<(), Error> {
        match self.slots.get_mut(slot).map(|s| &mut s.cap) {
            Some(Cap::Object { data, .. }) => {
                *data = value;
                Ok(())
            }
            _ => Err(Error::InvalidCapability),
        }
    }

    /// The slots of the CNode capability `cnode` (first slot, count), if it is one.
    pub fn cnode_slots(cnode: Cap) -> Option<(SlotId, usize)> {
        match cnode {
            Cap::CNode { first, radix, .. } => Some((first as usize, 1usize << radix)),
            _ => None,
        }
    }

    /// Sets a CNode capability's guard (seL4's Mutate data for CNodes).
    pub fn set_guard(&mut self, slot: SlotId, guard: u64, guard_bits: u8) -> Result<(), Error> {
        let Cap::CNode {
            base, radix, first, ..
        } = self.full(slot)?
        else {
            return Err(Error::InvalidCapability);
        };
        if u32::from(guard_bits) + u32::from(radix) > 64
            || (guard_bits < 64 && guard >> guard_bits != 0)
        {
            return Err(Error::RangeError);
        }
        self.slots[slot].cap = Cap::CNode {
            base,
            radix,
            first,
            guard,
            guard_bits,
        };
        Ok(())
    }
}

/// What to retype untyped memory into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetypeKind {
    /// Smaller untyped blocks.
    Untyped {
        /// log2 of each block's size.
        size_bits: u8,
    },
    /// CNodes of `2^radix` slots.
    CNode {
        /// log2 of the slot count.
        radix: u8,
    },
    /// A fixed-size object (not a CNode or frame).
    Object(ObjectKind),
    /// Frames of `2^size_bits` bytes (12 or 21).
    Frame {
        /// Always `ObjectKind::Frame`.
        kind: ObjectKind,
        /// log2 of the frame size.
        size_bits: u8,
    },
}

impl RetypeKind {
    /// log2 of one object's size, or why the request is invalid.
    pub fn size_bits(self) -> Result<u8, Error> {
        match self {
            RetypeKind::Untyped { size_bits } if (4..=47).contains(&size_bits) => Ok(size_bits),
            RetypeKind::CNode { radix } if (1..=12).contains(&radix) => {
                Ok(radix + CNODE_SLOT_BITS as u8)
            }
            RetypeKind::Frame {
                kind: ObjectKind::Frame,
                size_bits: bits @ (12 | 21),
            } => Ok(bits),
            RetypeKind::Object(kind) => kind
                .fixed_size_bits()
                .map(|b| b as u8)
                .ok_or(Error::InvalidArgument),
            _ => Err(Error::InvalidArgument),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    const SLOTS: usize = 96;
    const ROOTS: usize = 32;
    const UNTYPED_BASE: u64 = 0x4000_0000;

    fn table() -> CapTable<SLOTS> {
        let mut t = CapTable::new(ROOTS);
        t.insert_original(
            0,
            Cap::Untyped {
                base: UNTYPED_BASE,
                size_bits: 16,
                watermark: 0,
                device: false,
            },
        )
        .unwrap();
        t
    }

    fn endpoint(t: &mut CapTable<SLOTS>, dest: SlotId) {
        t.retype(0, RetypeKind::Object(ObjectKind::Endpoint), 1, dest)
            .unwrap();
    }

    #[test]
    fn retype_places_objects_aligned_and_refuses_overflow() {
        let mut t = table();
        t.retype(0, RetypeKind::Object(ObjectKind::Tcb), 2, 1)
            .unwrap();
        t.retype(0, RetypeKind::Object(ObjectKind::Endpoint), 1, 3)
            .unwrap();
        assert_eq!(t.get(1).range(), Some((UNTYPED_BASE, 0x800)));
        assert_eq!(t.get(2).range(), Some((UNTYPED_BASE + 0x800, 0x800)));
        assert_eq!(t.get(3).range(), Some((UNTYPED_BASE + 0x1000, 0x10)));
        assert_eq!(
            t.retype(0, RetypeKind::Untyped { size_bits: 16 }, 1, 4),
            Err(Error::NotEnoughMemory)
        );
        assert_eq!(
            t.retype(0, RetypeKind::Object(ObjectKind::Endpoint), 1, 3),
            Err(Error::DeleteFirst)
        );
        assert_eq!(
            t.retype(1, RetypeKind::Object(ObjectKind::Endpoint), 1, 5),
            Err(Error::InvalidCapability)
        );
        assert_eq!(
            t.retype(9, RetypeKind::Object(ObjectKind::Endpoint), 1, 5),
            Err(Error::FailedLookup)
        );
        assert_eq!(
            t.retype(
                0,
                RetypeKind::Frame {
                    kind: ObjectKind::Frame,
                    size_bits: 13
                },
                1,
                5
            ),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            t.retype(0, RetypeKind::Object(ObjectKind::Endpoint), 1, SLOTS),
            Err(Error::RangeError)
        );
    }

    #[test]
    fn mint_badges_once_and_only_ipc_objects() {
        let mut t = table();
        endpoint(&mut t, 1);
        t.mint(1, 2, Rights::WRITE, 0x42).unwrap();
        assert!(
            matches!(t.get(2), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE)
        );
        assert_eq!(
            t.mint(2, 3, Rights::ALL, 7),
            Err(Error::IllegalOperation),
            "badge already set"
        );
        t.copy(2, 3, Rights::ALL).unwrap();
        assert!(
            matches!(t.get(3), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE),
            "copies never widen rights"
        );
        t.retype(0, RetypeKind::Object(ObjectKind::Tcb), 1, 4)
            .unwrap();
        assert_eq!(t.mint(4, 5, Rights::ALL, 1), Err(Error::IllegalOperation));
        assert_eq!(
            t.copy(0, 6, Rights::ALL),
            Err(Error::IllegalOperation),
            "untyped is never copied"
        );
    }

    #[test]
    fn revoke_removes_every_descendant_and_frees_untyped() {
        let mut t = table();
        endpoint(&mut t, 1);
        t.copy(1, 2, Rights::ALL).unwrap();
        t.mint(2, 3, Rights::WRITE, 9).unwrap();
        t.copy(3, 4, Rights::WRITE).unwrap();
        t.revoke(1).unwrap();
        assert!(!t.get(1).is_null());
        for s in 2..=4 {
            assert!(t.get(s).is_null(), "slot {s} survived revoke");
        }
        t.revoke(0).unwrap();
        assert!(t.get(1).is_null());
        assert!(matches!(t.get(0), Cap::Untyped { watermark: 0, .. }));
    }

    #[test]
    fn delete_keeps_descendants_under_the_grandparent() {
        let mut t = table();
        endpoint(&mut t, 1);
        t.copy(1, 2, Rights::ALL).unwrap();
        t.copy(2, 3, Rights::ALL).unwrap();
        t.delete(2).unwrap();
        assert_eq!(t.parent(3), Some(1));
        t.revoke(1).unwrap();
        assert!(t.get(3).is_null());
    }

    #[test]
    fn move_keeps_the_tree() {
        let mut t = table();
        endpoint(&mut t, 1);
        t.copy(1, 2, Rights::ALL).unwrap();
        t.move_cap(1, 5).unwrap();
        assert!(t.get(1).is_null());
        assert_eq!(t.parent(2), Some(5));
        assert_eq!(t.parent(5), Some(0));
        t.move_cap(0, 6).unwrap();
        assert_eq!(t.parent(5), Some(6));
        assert_eq!(t.move_cap(1, 7), Err(Error::FailedLookup));
        assert_eq!(t.move_cap(5, 2), Err(Error::DeleteFirst));
    }

    #[test]
    fn guarded_lookup_through_two_levels() {
        let mut t = table();
        t.retype(0, RetypeKind::CNode { radix: 4 }, 1, 1).unwrap();
        t.retype(0, RetypeKind::CNode { radix: 3 }, 1, 2).unwrap();
        let Cap::CNode { first: top, .. } = t.get(1) else {
            panic!("CNode")
        };
        let Cap::CNode { first: leaf, .. } = t.get(2) else {
            panic!("CNode")
        };
        // Top level: guard 0b10 (2 bits) then 4 index bits; second level: 3 index bits.
        t.set_guard(1, 0b10, 2).unwrap();
        t.move_cap(2, top as usize + 5).unwrap();
        endpoint(&mut t, 3);
        t.move_cap(3, leaf as usize + 6).unwrap();
        let cptr = (0b10 << 7) | (5 << 3) | 6;
        assert_eq!(t.lookup(1, cptr, 9), Ok(leaf as usize + 6));
        assert_eq!(
            t.lookup(1, cptr >> 3, 6),
            Ok(top as usize + 5),
            "stops at the depth asked"
        );
        assert_eq!(
            t.lookup(1, (0b11 << 7) | (5 << 3) | 6, 9),
            Err(LookupFault::GuardMismatch { bits_left: 9 })
        );
        assert_eq!(
            t.lookup(1, cptr, 4),
            Err(LookupFault::DepthMismatch { bits_left: 4 })
        );
        assert_eq!(t.lookup(3, cptr, 9), Err(LookupFault::InvalidRoot));
    }

    #[test]
    fn deleting_the_last_cnode_capability_deletes_its_contents() {
        let mut t = table();
        t.retype(0, RetypeKind::CNode { radix: 2 }, 1, 1).unwrap();
        let Cap::CNode { first, .. } = t.get(1) else {
            panic!("CNode")
        };
        endpoint(&mut t, 2);
        t.move_cap(2, first as usize + 1).unwrap();
        t.copy(1, 3, Rights::ALL).unwrap();
        t.delete(1).unwrap();
        assert!(
            !t.get(first as usize + 1).is_null(),
            "a copy still names the CNode"
        );
        t.delete(3).unwrap();
        assert!(
            t.get(first as usize + 1).is_null(),
            "contents outlived their CNode"
        );
    }

    #[test]
    fn cnode_runs_go_above_the_last_one_and_freed_runs_are_reused_once_the_top_is_reached() {
        let mut t = table();
        let first = |t: &CapTable<SLOTS>, slot: SlotId| match t.get(slot) {
            Cap::CNode { first, .. } => first as usize,
            other => panic!("slot {slot} holds {other:?}, not a CNode"),
        };
        // Four runs of 16 fill the 64 slots past the roots, in order.
        for slot in 1..=4 {
            t.retype(0, RetypeKind::CNode { radix: 4 }, 1, slot)
                .unwrap();
            assert_eq!(first(&t, slot), ROOTS + (slot - 1) * 16);
        }
        assert_eq!(
            t.retype(0, RetypeKind::CNode { radix: 2 }, 1, 5),
            Err(Error::NotEnoughMemory)
        );
        // The second run's slots come back and are handed out again.
        t.delete(2).unwrap();
        t.retype(0, RetypeKind::CNode { radix: 2 }, 1, 5).unwrap();
        assert_eq!(first(&t, 5), ROOTS + 16);
        t.retype(0, RetypeKind::CNode { radix: 3 }, 1, 6).unwrap();
        assert_eq!(
            first(&t, 6),
            ROOTS + 20,
            "the first free slots, right after run 5"
        );
    }

    /// Operations the state machine draws from.
    #[derive(Clone, Debug)]
    enum Op {
        Retype {
            untyped: usize,
            kind: u8,
            count: usize,
            dest: usize,
        },
        Copy {
            src: usize,
            dest: usize,
            rights: u8,
        },
        Mint {
            src: usize,
            dest: usize,
            rights: u8,
            badge: u64,
        },
        Mutate {
            src: usize,
            dest: usize,
            badge: Option<u64>,
        },
        Move {
            src: usize,
            dest: usize,
        },
        Delete {
            slot: usize,
        },
        Revoke {
            slot: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let slot = 0..SLOTS + 2; // a little past the end, to test range checks
        prop_oneof![
            3 => (slot.clone(), 0u8..8, 1usize..4, slot.clone()).prop_map(|(untyped, kind, count, dest)| Op::Retype { untyped, kind, count, dest }),
            2 => (slot.clone(), slot.clone(), 0u8..16).prop_map(|(src, dest, rights)| Op::Copy { src, dest, rights }),
            2 => (slot.clone(), slot.clone(), 0u8..16, 0u64..4).prop_map(|(src, dest, rights, badge)| Op::Mint { src, dest, rights, badge }),
            1 => (slot.clone(), slot.clone(), proptest::option::of(0u64..4)).prop_map(|(src, dest, badge)| Op::Mutate { src, dest, badge }),
            2 => (slot.clone(), slot.clone()).prop_map(|(src, dest)| Op::Move { src, dest }),
            2 => slot.clone().prop_map(|slot| Op::Delete { slot }),
            1 => slot.prop_map(|slot| Op::Revoke { slot }),
        ]
    }

    fn retype_kind(kind: u8) -> RetypeKind {
        match kind {
            0 => RetypeKind::Untyped { size_bits: 12 },
            1 => RetypeKind::CNode { radix: 2 },
            2 => RetypeKind::Object(ObjectKind::Endpoint),
            3 => RetypeKind::Object(ObjectKind::Notification),
            4 => RetypeKind::Object(ObjectKind::Tcb),
            5 => RetypeKind::Frame {
                kind: ObjectKind::Frame,
                size_bits: 12,
            },
            6 => RetypeKind::Untyped { size_bits: 10 },
            _ => RetypeKind::Object(ObjectKind::Reply),
        }
    }

    /// The reference model: what each slot holds and its parent, as plain vectors; the
    /// tree is recomputed by scanning rather than linked.
    #[derive(Clone)]
    struct Model {
        caps: Vec<Cap>,
        parent: Vec<Option<usize>>,
    }

    impl Model {
        fn new(t: &CapTable<SLOTS>) -> Self {
            Self {
                caps: (0..SLOTS).map(|s| t.get(s)).collect(),
                parent: std::vec![None; SLOTS],
            }
        }

        fn descendants(&self, slot: usize) -> Vec<usize> {
            let mut out = Vec::new();
            let mut frontier = std::vec![slot];
            while let Some(s) = frontier.pop() {
                for (c, p) in self.parent.iter().enumerate() {
                    if *p == Some(s) {
                        out.push(c);
                        frontier.push(c);
                    }
                }
            }
            out
        }

        fn others_name(&self, slot: usize) -> bool {
            let object = self.caps[slot].object();
            object.is_some()
                && self
                    .caps
                    .iter()
                    .enumerate()
                    .any(|(i, c)| i != slot && c.object() == object)
        }

        fn remove(&mut self, slot: usize) {
            let mut work = std::vec![slot];
            while let Some(slot) = work.pop() {
                if self.caps[slot].is_null() {
                    continue;
                }
                let last = !self.others_name(slot);
                let grand = self.parent[slot];
                for p in self.parent.iter_mut() {
                    if *p == Some(slot) {
                        *p = grand;
                    }
                }
                let cap = core::mem::take(&mut self.caps[slot]);
                self.parent[slot] = None;
                if let (true, Cap::CNode { first, radix, .. }) = (last, cap) {
                    work.extend(
                        (first as usize..first as usize + (1 << radix))
                            .filter(|&s| !self.caps[s].is_null()),
                    );
                }
            }
        }

        /// Applies an operation the table accepted, with the model's own rules for the tree.
        fn apply(&mut self, op: &Op, t: &CapTable<SLOTS>) {
            match *op {
                Op::Retype {
                    untyped,
                    count,
                    dest,
                    ..
                } => {
                    for d in dest..dest + count {
                        self.caps[d] = t.get(d); // placement is checked by the invariants
                        self.parent[d] = Some(untyped);
                    }
                    self.caps[untyped] = t.get(untyped);
                }
                Op::Copy { src, dest, .. } | Op::Mint { src, dest, .. } => {
                    self.caps[dest] = t.get(dest);
                    self.parent[dest] = Some(src);
                }
                Op::Mutate { src, dest, .. } | Op::Move { src, dest } => {
                    for p in self.parent.iter_mut() {
                        if *p == Some(src) {
                            *p = Some(dest);
                        }
                    }
                    self.parent[dest] = self.parent[src].take();
                    self.caps[dest] = t.get(dest);
                    self.caps[src] = Cap::Null;
                }
                Op::Delete { slot } => self.remove(slot),
                Op::Revoke { slot } => {
                    // Deepest first, as a deletion of descendants in any order.
                    let mut doomed = self.descendants(slot);
                    doomed.reverse();
                    for d in doomed {
                        if !self.caps[d].is_null() {
                            self.remove(d);
                        }
                    }
                    if let Cap::Untyped { watermark, .. } = &mut self.caps[slot] {
                        *watermark = 0;
                    }
                }
            }
        }
    }

    fn run(t: &mut CapTable<SLOTS>, op: &Op) -> Result<(), Error> {
        match *op {
            Op::Retype {
                untyped,
                kind,
                count,
                dest,
            } => t.retype(untyped, retype_kind(kind), count, dest),
            Op::Copy { src, dest, rights } => t.copy(src, dest, Rights::from_bits(rights)),
            Op::Mint {
                src,
                dest,
                rights,
                badge,
            } => t.mint(src, dest, Rights::from_bits(rights), badge),
            Op::Mutate { src, dest, badge } => t.mutate(src, dest, Rights::ALL, badge),
            Op::Move { src, dest } => t.move_cap(src, dest),
            Op::Delete { slot } => t.delete(slot),
            Op::Revoke { slot } => t.revoke(slot),
        }
    }

    /// The invariants, computed from the table alone.
    fn invariants(t: &CapTable<SLOTS>) -> Result<(), std::string::String> {
        let ancestors = |mut s: usize| {
            let mut out = Vec::new();
            while let Some(p) = t.parent(s) {
                if out.contains(&p) || out.len() > SLOTS {
                    return None; // a cycle
                }
                out.push(p);
                s = p;
            }
            Some(out)
        };
        // The tree is well formed: parents and children agree, no cycles, empty slots are
        // outside the tree.
        for s in 0..SLOTS {
            let Some(up) = ancestors(s) else {
                return Err(std::format!("cycle above slot {s}"));
            };
            if t.get(s).is_null() && (t.parent(s).is_some() || t.children(s).next().is_some()) {
                return Err(std::format!("empty slot {s} is in the tree"));
            }
            if let Some(p) = up.first()
                && !t.children(*p).any(|c| c == s)
            {
                return Err(std::format!("slot {s} is not among its parent's children"));
            }
            for c in t.children(s) {
                if t.parent(c) != Some(s) {
                    return Err(std::format!("child {c} of {s} disagrees"));
                }
            }
        }
        // Memory is never handed out twice: distinct objects never overlap, and every object
        // inside a live untyped block is one of its descendants below its watermark.
        let mut objects: Vec<((u64, ObjectKind), (u64, u64))> = Vec::new();
        for s in 0..SLOTS {
            let cap = t.get(s);
            if let (Some(object), Some(range)) = (cap.object(), cap.range())
                && !objects.iter().any(|(o, _)| *o == object)
            {
                objects.push((object, range));
            }
        }
        for (i, (a, (ab, al))) in objects.iter().enumerate() {
            for (b, (bb, bl)) in &objects[i + 1..] {
                if ab < &(bb + bl) && bb < &(ab + al) {
                    return Err(std::format!("objects {a:?} and {b:?} overlap"));
                }
            }
        }
        for u in 0..SLOTS {
            let Cap::Untyped {
                base,
                size_bits,
                watermark,
                ..
            } = t.get(u)
            else {
                continue;
            };
            let end = base + (1u64 << size_bits);
            for s in 0..SLOTS {
                let Some((ob, ol)) = t.get(s).range() else {
                    continue;
                };
                if s == u || !(ob < end && base < ob + ol) {
                    continue;
                }
                let below = ancestors(s).is_some_and(|a| a.contains(&u));
                if !below {
                    if matches!(t.get(s), Cap::Untyped { .. }) && ob <= base && end <= ob + ol {
                        continue; // an enclosing untyped block: `u` lies inside it
                    }
                    return Err(std::format!(
                        "slot {s} overlaps untyped {u} without deriving from it"
                    ));
                }
                if t.children(u).next().is_some() && ob + ol > base + watermark {
                    return Err(std::format!("slot {s} lies above untyped {u}'s watermark"));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Thousands of random operation sequences: after every step the table agrees with
        /// the reference model and every invariant holds; a revoke leaves no descendant.
        #[test]
        fn capability_operations_keep_every_invariant(ops in proptest::collection::vec(op(), 1..60)) {
            let mut t = table();
            let mut model = Model::new(&t);
            for op in &ops {
                let before = model.clone();
                match run(&mut t, op) {
                    Ok(()) => model.apply(op, &t),
                    Err(_) => model = before,
                }
                if let Op::Revoke { slot } = *op
                    && slot < SLOTS
                {
                    prop_assert!(t.children(slot).next().is_none(), "revoke left descendants");
                }
                for s in 0..SLOTS {
                    prop_assert_eq!(t.get(s), model.caps[s], "slot {} after {:?}", s, op);
                    prop_assert_eq!(t.parent(s), model.parent[s], "parent of {} after {:?}", s, op);
                }
                if let Err(broken) = invariants(&t) {
                    prop_assert!(false, "{} after {:?}", broken, op);
                }
            }
            // Every object still named lies in memory the root untyped covers.
            let live: BTreeSet<u64> = (0..SLOTS).filter_map(|s| t.get(s).range()).map(|r| r.0).collect();
            prop_assert!(live.iter().all(|&b| (UNTYPED_BASE..UNTYPED_BASE + 0x1_0000).contains(&b)));
        }
    }
}
