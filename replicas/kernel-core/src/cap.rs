//! Capabilities, their slots and their derivation tree, in the style of seL4.
//!
//! A replica's capabilities live in one table of slots. A CNode object owns a run of
//! `2^radix` slots in it, handed out when the CNode is retyped; a TCB owns
//! [`TCB_SLOTS`] slots at the top of the table, where the kernel keeps copies of the
//! capabilities the thread runs with (its spaces, IPC buffer and fault handler), as seL4's
//! TCB CNode does. Every capability records where it came from in the **derivation tree**:
//! retype makes object capabilities children of the untyped capability, and copy, mint and
//! mutate make the new capability a child of its source. Revoking a capability deletes
//! every descendant; deleting one keeps its descendants, which move up to its parent;
//! deleting the last capability to an object destroys the object (the slots it owns are
//! deleted with it).
//!
//! Nothing here allocates or recurses: trees are linked through slot ids, and cascades
//! (revoke, destruction of an object that owns slots) use bounded work lists. Every
//! operation checks its arguments and returns an `Error`; none panics on any input.

use atoll_abi::error::Error;
use atoll_abi::microkit::{CNODE_SLOT_BITS, ObjectKind};

use crate::id::{MAX_THREADS, TCB_SLOTS, Table, TableIndex};

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

    /// Whether any right in `other` is here.
    pub const fn any_of(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The rights in either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The rights in both.
    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// The kernel data of an object capability whose object has no table entry yet (between
/// retype and the kernel's initialisation of the object).
pub const NO_DATA: u64 = u64::MAX;

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
        /// replies, scheduling contexts, address spaces and doorbells ([`NO_DATA`] until
        /// the kernel gives it one); for a frame or page table, where this capability maps
        /// it (see the kernel), 0 when unmapped. A copy of a frame capability starts
        /// unmapped; a copy of a page-table capability names the same mapping.
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
            } => Some((base, 1u64.checked_shl(u32::from(size_bits))?)),
            Cap::CNode { base, radix, .. } => Some((
                base,
                1u64.checked_shl(u32::from(radix).saturating_add(CNODE_SLOT_BITS))?,
            )),
            Cap::Null => None,
        }
    }
}

/// One slot: a capability and its place in the derivation tree.
#[derive(Clone, Copy, Debug)]
struct Slot<I> {
    cap: Cap,
    parent: Option<I>,
    first_child: Option<I>,
    next_sibling: Option<I>,
    prev_sibling: Option<I>,
}

impl<I: Copy> Slot<I> {
    const EMPTY: Slot<I> = Slot {
        cap: Cap::Null,
        parent: None,
        first_child: None,
        next_sibling: None,
        prev_sibling: None,
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

/// A stack of at most `N` ids: the work list of a cascade.
struct Work<I, const N: usize> {
    items: [Option<I>; N],
    len: usize,
}

impl<I: Copy, const N: usize> Work<I, N> {
    const fn new() -> Self {
        Self {
            items: [None; N],
            len: 0,
        }
    }

    fn push(&mut self, id: I) {
        if let Some(item) = self.items.get_mut(self.len) {
            *item = Some(id);
            self.len = self.len.saturating_add(1);
        }
    }

    fn pop(&mut self) -> Option<I> {
        self.len = self.len.checked_sub(1)?;
        self.items.get_mut(self.len)?.take()
    }
}

/// The capability table of a replica: `N` slots indexed by `I`. The first `roots` slots
/// stand alone (the initial slots the kernel hands out at boot); CNodes get runs of the
/// slots from there up to `tcb_base`; the slots from `tcb_base` up are the TCBs' own,
/// [`TCB_SLOTS`] per thread in thread order.
pub struct CapTable<I, const N: usize> {
    slots: Table<I, Slot<I>, N>,
    roots: usize,
    tcb_base: usize,
    /// Every CNode run ever handed out ends at or below this slot, so a new run can start
    /// here without a search while it fits.
    cnode_top: usize,
    /// Work list of a cascading deletion (kept here, not on the kernel stack).
    work: Work<I, N>,
}

impl<I: TableIndex + PartialEq + core::fmt::Debug, const N: usize> CapTable<I, N> {
    /// A table whose first `roots` slots stand alone and whose slots from `tcb_base` up
    /// hold the TCBs' own capabilities; CNodes get the slots between.
    pub const fn new(roots: usize, tcb_base: usize) -> Self {
        let tcb_base = if tcb_base < N { tcb_base } else { N };
        let roots = if roots < tcb_base { roots } else { tcb_base };
        Self {
            slots: Table::filled(Slot::EMPTY),
            roots,
            tcb_base,
            cnode_top: roots,
            work: Work::new(),
        }
    }

    /// The capability in `slot`.
    pub fn get(&self, slot: I) -> Cap {
        self.slots[slot].cap
    }

    /// The capability in `slot`, without copying it.
    pub fn get_ref(&self, slot: I) -> &Cap {
        &self.slots[slot].cap
    }

    /// The parent of `slot` in the derivation tree.
    pub fn parent(&self, slot: I) -> Option<I> {
        self.slots[slot].parent
    }

    /// The children of `slot` in the derivation tree, in insertion order (newest first).
    pub fn children(&self, slot: I) -> impl Iterator<Item = I> + '_ {
        let mut next = self.slots[slot].first_child;
        core::iter::from_fn(move || {
            let current = next?;
            next = self.slots[current].next_sibling;
            Some(current)
        })
    }

    fn empty(&self, slot: I) -> Result<(), Error> {
        if self.slots[slot].cap.is_null() {
            Ok(())
        } else {
            Err(Error::DeleteFirst)
        }
    }

    fn full(&self, slot: I) -> Result<Cap, Error> {
        match self.slots[slot].cap {
            Cap::Null => Err(Error::FailedLookup),
            cap => Ok(cap),
        }
    }

    /// The slots the object of `cap` owns and that go with it: a CNode's contents, a TCB's
    /// own slots (thread `t`'s are the `TCB_SLOTS` from `tcb_base + t * TCB_SLOTS`: with the
    /// kernel's `tcb_base`, the layout of `ThreadId::own_slot`). (first slot index, count)
    fn owned_slots(&self, cap: Cap) -> Option<(usize, usize)> {
        match cap {
            Cap::CNode { .. } => Self::cnode_slots(cap).map(|(first, n)| (first.index(), n)),
            Cap::Object {
                kind: ObjectKind::Tcb,
                data,
                ..
            } => {
                let thread = usize::try_from(data).ok().filter(|&t| t < MAX_THREADS)?;
                let first = self.tcb_base.checked_add(thread.checked_mul(TCB_SLOTS)?)?;
                Some((first, TCB_SLOTS))
            }
            _ => None,
        }
    }

    /// Boot: places an original capability (untyped memory, IRQ control) in an empty slot.
    pub fn insert_original(&mut self, slot: I, cap: Cap) -> Result<(), Error> {
        self.empty(slot)?;
        if let Some((first, len)) = Self::cnode_slots(cap) {
            self.cnode_top = self
                .cnode_top
                .max(first.index().saturating_add(len).min(self.tcb_base));
        }
        self.slots[slot] = Slot { cap, ..Slot::EMPTY };
        Ok(())
    }

    fn link_child(&mut self, parent: I, child: I) {
        let old_first = self.slots[parent].first_child;
        self.slots[child].parent = Some(parent);
        self.slots[child].prev_sibling = None;
        self.slots[child].next_sibling = old_first;
        if let Some(old) = old_first {
            self.slots[old].prev_sibling = Some(child);
        }
        self.slots[parent].first_child = Some(child);
    }

    fn unlink(&mut self, slot: I) {
        let Slot {
            parent,
            prev_sibling,
            next_sibling,
            ..
        } = self.slots[slot];
        match (prev_sibling, parent) {
            (Some(prev), _) => self.slots[prev].next_sibling = next_sibling,
            (None, Some(parent)) => self.slots[parent].first_child = next_sibling,
            (None, None) => {}
        }
        if let Some(next) = next_sibling {
            self.slots[next].prev_sibling = prev_sibling;
        }
        self.slots[slot].parent = None;
        self.slots[slot].prev_sibling = None;
        self.slots[slot].next_sibling = None;
    }

    /// Copy with rights no wider than the source's; the copy is a child of the source.
    pub fn copy(&mut self, src: I, dest: I, rights: Rights) -> Result<(), Error> {
        self.derive(src, dest, rights, None)
    }

    /// Copy with reduced rights and a badge (endpoints, notifications, doorbells only; the
    /// source must be unbadged).
    pub fn mint(&mut self, src: I, dest: I, rights: Rights, badge: u64) -> Result<(), Error> {
        self.derive(src, dest, rights, Some(badge))
    }

    /// seL4's Mutate: moves the capability to `dest`, reducing its rights and (for an
    /// unbadged endpoint, notification or doorbell) setting a badge; its place in the
    /// derivation tree moves with it.
    pub fn mutate(
        &mut self,
        src: I,
        dest: I,
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
                let data = match kind {
                    // A copy of a frame capability is a fresh, unmapped one: each maps the
                    // frame on its own.
                    ObjectKind::Frame if copy => 0,
                    // A page table is linked in one place, through the capability that
                    // mapped it; copies name that mapping. An unmapped table has exactly
                    // one capability, so that mapping it links it once (as seL4 refuses to
                    // derive an unmapped page-table capability).
                    ObjectKind::PageTable if copy && data == 0 => {
                        return Err(Error::IllegalOperation);
                    }
                    _ => data,
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

    fn derive(&mut self, src: I, dest: I, rights: Rights, badge: Option<u64>) -> Result<(), Error> {
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
    pub fn move_cap(&mut self, src: I, dest: I) -> Result<(), Error> {
        let _ = self.full(src)?;
        self.empty(dest)?;
        if src == dest {
            return Ok(());
        }
        let moved = self.slots[src];
        self.slots[dest] = moved;
        // Re-point neighbours at the new slot.
        match (moved.prev_sibling, moved.parent) {
            (Some(prev), _) => self.slots[prev].next_sibling = Some(dest),
            (None, Some(parent)) => self.slots[parent].first_child = Some(dest),
            (None, None) => {}
        }
        if let Some(next) = moved.next_sibling {
            self.slots[next].prev_sibling = Some(dest);
        }
        let mut child = moved.first_child;
        while let Some(c) = child {
            self.slots[c].parent = Some(dest);
            child = self.slots[c].next_sibling;
        }
        self.slots[src] = Slot::EMPTY;
        Ok(())
    }

    /// Whether `slot` holds the only capability to its object (seL4's final capability).
    pub fn is_final(&self, slot: I) -> bool {
        !self.has_other_reference(slot)
    }

    /// Whether any other slot names the same object as `slot`.
    fn has_other_reference(&self, slot: I) -> bool {
        let Some(object) = self.slots[slot].cap.object() else {
            return false;
        };
        self.slots
            .iter()
            .any(|(i, s)| i != slot && s.cap.object() == Some(object))
    }

    /// Deletes the capability in `slot`. Its children move up to its parent. If it was the
    /// last capability to its object, the object is destroyed (the slots it owns with it).
    ///
    /// The cascade through owned slots uses the table's own work list (each slot enters it
    /// at most once: only an object's last capability pushes the slots it owns, and each
    /// slot belongs to one object). It is not preemptible: a replica's table is small
    /// enough (see the kernel's limits) that the longest cascade is bounded, where seL4
    /// needs zombies.
    pub fn delete(&mut self, slot: I) {
        self.delete_with(slot, &mut |_, _, _| {});
    }

    /// [`CapTable::delete`], telling `gone` about every capability removed, the slot it
    /// was in, and whether it was the last one to its object (so the kernel can destroy the
    /// object: release its waiters, unmap a frame, free its table entry).
    pub fn delete_with(&mut self, slot: I, gone: &mut dyn FnMut(I, Cap, bool)) {
        self.work.push(slot);
        while let Some(slot) = self.work.pop() {
            let cap = self.slots[slot].cap;
            if cap.is_null() {
                continue;
            }
            let last = !self.has_other_reference(slot);
            let parent = self.slots[slot].parent;
            while let Some(child) = self.slots[slot].first_child {
                self.unlink(child);
                if let Some(parent) = parent {
                    self.link_child(parent, child);
                }
            }
            self.unlink(slot);
            self.slots[slot] = Slot::EMPTY;
            gone(slot, cap, last);
            if let (true, Some((first, count))) = (last, self.owned_slots(cap)) {
                for inner in first..first.saturating_add(count) {
                    if let Some(inner) = I::from_index(inner)
                        && !self.slots[inner].cap.is_null()
                    {
                        self.work.push(inner);
                    }
                }
            }
        }
    }

    /// Deletes every capability derived from the one in `slot`.
    pub fn revoke(&mut self, slot: I) -> Result<(), Error> {
        self.revoke_with(slot, &mut |_, _, _| {})
    }

    /// [`CapTable::revoke`], telling `gone` about every capability removed (see
    /// [`CapTable::delete_with`]).
    pub fn revoke_with(
        &mut self,
        slot: I,
        gone: &mut dyn FnMut(I, Cap, bool),
    ) -> Result<(), Error> {
        let _ = self.full(slot)?;
        // Deleting the deepest descendants first keeps every step a plain leaf deletion.
        while let Some(mut leaf) = self.slots[slot].first_child {
            while let Some(child) = self.slots[leaf].first_child {
                leaf = child;
            }
            self.delete_with(leaf, gone);
        }
        if let Cap::Untyped { watermark, .. } = &mut self.slots[slot].cap {
            *watermark = 0;
        }
        Ok(())
    }

    /// Retypes part of the untyped memory in `untyped` into `count` objects of `kind`
    /// (`size_bits` for frames and untyped, the radix for CNodes), placing their
    /// capabilities in the empty slots from `dest` on. Objects that get a kernel table
    /// entry start with [`NO_DATA`].
    pub fn retype(
        &mut self,
        untyped: I,
        kind: RetypeKind,
        count: usize,
        dest: I,
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
        let slot_at = |i: usize| dest.index().checked_add(i).and_then(I::from_index);
        for i in 0..count {
            self.empty(slot_at(i).ok_or(Error::RangeError)?)?;
        }
        let object_bits = kind.size_bits()?;
        if object_bits > size_bits {
            return Err(Error::NotEnoughMemory);
        }
        let size = 1u64 << object_bits;
        // A fresh untyped (no children) starts again from its base.
        let watermark = if self.slots[untyped].first_child.is_none() {
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
        let mut cnode_first = 0;
        if let RetypeKind::CNode { radix } = kind {
            let want = (1usize << radix)
                .checked_mul(count)
                .ok_or(Error::NotEnoughMemory)?;
            let first = self.find_free_run(want).ok_or(Error::NotEnoughMemory)?;
            self.cnode_top = self.cnode_top.max(first.saturating_add(want));
            cnode_first = first;
        }
        for i in 0..count {
            let (Some(slot), Some(offset)) = (slot_at(i), size.checked_mul(i as u64)) else {
                continue; // checked above
            };
            // Below `base + end`, which the untyped block covers.
            let object_base = base.wrapping_add(start).wrapping_add(offset);
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
                    // Below the table's length, as `find_free_run` placed the runs.
                    first: u32::try_from(cnode_first.saturating_add(i << radix))
                        .unwrap_or(u32::MAX),
                    guard: 0,
                    guard_bits: 0,
                },
                RetypeKind::Object(kind) | RetypeKind::Frame { kind, .. } => Cap::Object {
                    kind,
                    base: object_base,
                    size_bits: object_bits,
                    rights: Rights::ALL,
                    badge: 0,
                    data: if matches!(kind, ObjectKind::Frame | ObjectKind::PageTable) {
                        0
                    } else {
                        NO_DATA
                    },
                },
            };
            self.slots[slot] = Slot { cap, ..Slot::EMPTY };
            self.link_child(untyped, slot);
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
        if self.cnode_top.checked_add(want)? <= self.tcb_base {
            return Some(self.cnode_top);
        }
        let mut at = self.roots;
        loop {
            let end = at.checked_add(want)?;
            if end > self.tcb_base {
                return None;
            }
            let clash = self.slots.values().find_map(|s| match s.cap {
                Cap::CNode { first, radix, .. } => {
                    let first = first as usize;
                    let run_end = first.saturating_add(1usize << radix);
                    (at < run_end && first < end).then_some(run_end)
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
    pub fn lookup(&self, root: I, cptr: u64, depth: u8) -> Result<I, LookupFault> {
        self.lookup_from(self.get_ref(root), cptr, depth)
    }

    /// [`CapTable::lookup`] from a CNode capability held outside the table (a thread's
    /// capability-space root).
    #[inline]
    pub fn lookup_from(&self, root: &Cap, cptr: u64, depth: u8) -> Result<I, LookupFault> {
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
            let level = u32::from(radix).saturating_add(u32::from(guard_bits));
            if level == 0 || level > left {
                return Err(LookupFault::DepthMismatch {
                    bits_left: left as u8,
                });
            }
            // `shift + width <= left <= 64` for both fields below, so a field of width 1 or
            // more has a shift below 64, and `64 - width` is below 64: no shift wraps.
            let bits = |shift: u32, width: u32| {
                if width == 0 {
                    0
                } else {
                    cptr.wrapping_shr(shift) & u64::MAX.wrapping_shr(64u32.wrapping_sub(width))
                }
            };
            if bits(
                left.wrapping_sub(u32::from(guard_bits)),
                u32::from(guard_bits),
            ) != guard
            {
                return Err(LookupFault::GuardMismatch {
                    bits_left: left as u8,
                });
            }
            let index = bits(left.wrapping_sub(level), u32::from(radix));
            let slot = (first as usize)
                .checked_add(index as usize)
                .and_then(I::from_index)
                .ok_or(LookupFault::InvalidRoot)?;
            left = left.wrapping_sub(level);
            let next = self.get_ref(slot);
            if left == 0 || !matches!(next, Cap::CNode { .. }) {
                return Ok(slot);
            }
            cap = next;
        }
    }

    /// Sets the kernel data of an object capability (see [`Cap::Object`]).
    pub fn set_data(&mut self, slot: I, value: u64) -> Result<(), Error> {
        match &mut self.slots[slot].cap {
            Cap::Object { data, .. } => {
                *data = value;
                Ok(())
            }
            _ => Err(Error::InvalidCapability),
        }
    }

    /// The slots of the CNode capability `cnode` (first slot, count), if it is one.
    pub fn cnode_slots(cnode: Cap) -> Option<(I, usize)> {
        match cnode {
            Cap::CNode { first, radix, .. } => Some((
                I::from_index(first as usize)?,
                1usize.checked_shl(u32::from(radix))?,
            )),
            _ => None,
        }
    }

    /// Sets a CNode capability's guard (seL4's Mutate data for CNodes).
    pub fn set_guard(&mut self, slot: I, guard: u64, guard_bits: u8) -> Result<(), Error> {
        let Cap::CNode {
            base, radix, first, ..
        } = self.full(slot)?
        else {
            return Err(Error::InvalidCapability);
        };
        if u32::from(guard_bits).saturating_add(u32::from(radix)) > 64
            || guard.checked_shr(u32::from(guard_bits)).unwrap_or(0) != 0
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
                Ok(radix.saturating_add(CNODE_SLOT_BITS as u8))
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

    const SLOTS: usize = 128;
    const ROOTS: usize = 32;
    /// The CNode runs get the 64 slots past the roots; the rest are TCB slots.
    const TCB_BASE: usize = 96;
    const UNTYPED_BASE: u64 = 0x4000_0000;

    crate::id::table_id!(
        /// A slot of the small test table.
        TestSlot,
        SLOTS
    );

    type Table = CapTable<TestSlot, SLOTS>;

    fn s(i: usize) -> TestSlot {
        TestSlot::new(i).unwrap()
    }

    fn table() -> Table {
        let mut t = CapTable::new(ROOTS, TCB_BASE);
        t.insert_original(
            s(0),
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

    fn endpoint(t: &mut Table, dest: TestSlot) {
        t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, dest)
            .unwrap();
    }

    #[test]
    fn retype_places_objects_aligned_and_refuses_overflow() {
        let mut t = table();
        t.retype(s(0), RetypeKind::Object(ObjectKind::Tcb), 2, s(1))
            .unwrap();
        t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, s(3))
            .unwrap();
        assert_eq!(t.get(s(1)).range(), Some((UNTYPED_BASE, 0x800)));
        assert_eq!(t.get(s(2)).range(), Some((UNTYPED_BASE + 0x800, 0x800)));
        assert_eq!(t.get(s(3)).range(), Some((UNTYPED_BASE + 0x1000, 0x10)));
        assert_eq!(
            t.retype(s(0), RetypeKind::Untyped { size_bits: 16 }, 1, s(4)),
            Err(Error::NotEnoughMemory)
        );
        assert_eq!(
            t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, s(3)),
            Err(Error::DeleteFirst)
        );
        assert_eq!(
            t.retype(s(1), RetypeKind::Object(ObjectKind::Endpoint), 1, s(5)),
            Err(Error::InvalidCapability)
        );
        assert_eq!(
            t.retype(s(9), RetypeKind::Object(ObjectKind::Endpoint), 1, s(5)),
            Err(Error::FailedLookup)
        );
        assert_eq!(
            t.retype(
                s(0),
                RetypeKind::Frame {
                    kind: ObjectKind::Frame,
                    size_bits: 13
                },
                1,
                s(5)
            ),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            t.retype(
                s(0),
                RetypeKind::Object(ObjectKind::Endpoint),
                2,
                s(SLOTS - 1)
            ),
            Err(Error::RangeError),
            "the second object would fall past the table's end"
        );
    }

    #[test]
    fn mint_badges_once_and_only_ipc_objects() {
        let mut t = table();
        endpoint(&mut t, s(1));
        t.mint(s(1), s(2), Rights::WRITE, 0x42).unwrap();
        assert!(
            matches!(t.get(s(2)), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE)
        );
        assert_eq!(
            t.mint(s(2), s(3), Rights::ALL, 7),
            Err(Error::IllegalOperation),
            "badge already set"
        );
        t.copy(s(2), s(3), Rights::ALL).unwrap();
        assert!(
            matches!(t.get(s(3)), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE),
            "copies never widen rights"
        );
        t.retype(s(0), RetypeKind::Object(ObjectKind::Tcb), 1, s(4))
            .unwrap();
        assert_eq!(
            t.mint(s(4), s(5), Rights::ALL, 1),
            Err(Error::IllegalOperation)
        );
        assert_eq!(
            t.copy(s(0), s(6), Rights::ALL),
            Err(Error::IllegalOperation),
            "untyped is never copied"
        );
    }

    #[test]
    fn revoke_removes_every_descendant_and_frees_untyped() {
        let mut t = table();
        endpoint(&mut t, s(1));
        t.copy(s(1), s(2), Rights::ALL).unwrap();
        t.mint(s(2), s(3), Rights::WRITE, 9).unwrap();
        t.copy(s(3), s(4), Rights::WRITE).unwrap();
        t.revoke(s(1)).unwrap();
        assert!(!t.get(s(1)).is_null());
        for i in 2..=4 {
            assert!(t.get(s(i)).is_null(), "slot {i} survived revoke");
        }
        t.revoke(s(0)).unwrap();
        assert!(t.get(s(1)).is_null());
        assert!(matches!(t.get(s(0)), Cap::Untyped { watermark: 0, .. }));
    }

    #[test]
    fn delete_keeps_descendants_under_the_grandparent() {
        let mut t = table();
        endpoint(&mut t, s(1));
        t.copy(s(1), s(2), Rights::ALL).unwrap();
        t.copy(s(2), s(3), Rights::ALL).unwrap();
        t.delete(s(2));
        assert_eq!(t.parent(s(3)), Some(s(1)));
        t.revoke(s(1)).unwrap();
        assert!(t.get(s(3)).is_null());
    }

    #[test]
    fn move_keeps_the_tree() {
        let mut t = table();
        endpoint(&mut t, s(1));
        t.copy(s(1), s(2), Rights::ALL).unwrap();
        t.move_cap(s(1), s(5)).unwrap();
        assert!(t.get(s(1)).is_null());
        assert_eq!(t.parent(s(2)), Some(s(5)));
        assert_eq!(t.parent(s(5)), Some(s(0)));
        t.move_cap(s(0), s(6)).unwrap();
        assert_eq!(t.parent(s(5)), Some(s(6)));
        assert_eq!(t.move_cap(s(1), s(7)), Err(Error::FailedLookup));
        assert_eq!(t.move_cap(s(5), s(2)), Err(Error::DeleteFirst));
    }

    #[test]
    fn guarded_lookup_through_two_levels() {
        let mut t = table();
        t.retype(s(0), RetypeKind::CNode { radix: 4 }, 1, s(1))
            .unwrap();
        t.retype(s(0), RetypeKind::CNode { radix: 3 }, 1, s(2))
            .unwrap();
        let Cap::CNode { first: top, .. } = t.get(s(1)) else {
            panic!("CNode")
        };
        let Cap::CNode { first: leaf, .. } = t.get(s(2)) else {
            panic!("CNode")
        };
        // Top level: guard 0b10 (2 bits) then 4 index bits; second level: 3 index bits.
        t.set_guard(s(1), 0b10, 2).unwrap();
        t.move_cap(s(2), s(top as usize + 5)).unwrap();
        endpoint(&mut t, s(3));
        t.move_cap(s(3), s(leaf as usize + 6)).unwrap();
        let cptr = (0b10 << 7) | (5 << 3) | 6;
        assert_eq!(t.lookup(s(1), cptr, 9), Ok(s(leaf as usize + 6)));
        assert_eq!(
            t.lookup(s(1), cptr >> 3, 6),
            Ok(s(top as usize + 5)),
            "stops at the depth asked"
        );
        assert_eq!(
            t.lookup(s(1), (0b11 << 7) | (5 << 3) | 6, 9),
            Err(LookupFault::GuardMismatch { bits_left: 9 })
        );
        assert_eq!(
            t.lookup(s(1), cptr, 4),
            Err(LookupFault::DepthMismatch { bits_left: 4 })
        );
        assert_eq!(t.lookup(s(3), cptr, 9), Err(LookupFault::InvalidRoot));
    }

    #[test]
    fn deleting_the_last_cnode_capability_deletes_its_contents() {
        let mut t = table();
        t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(1))
            .unwrap();
        let Cap::CNode { first, .. } = t.get(s(1)) else {
            panic!("CNode")
        };
        endpoint(&mut t, s(2));
        t.move_cap(s(2), s(first as usize + 1)).unwrap();
        t.copy(s(1), s(3), Rights::ALL).unwrap();
        t.delete(s(1));
        assert!(
            !t.get(s(first as usize + 1)).is_null(),
            "a copy still names the CNode"
        );
        t.delete(s(3));
        assert!(
            t.get(s(first as usize + 1)).is_null(),
            "contents outlived their CNode"
        );
    }

    #[test]
    fn cnode_runs_go_above_the_last_one_and_freed_runs_are_reused_once_the_top_is_reached() {
        let mut t = table();
        let first = |t: &Table, slot: usize| match t.get(s(slot)) {
            Cap::CNode { first, .. } => first as usize,
            other => panic!("slot {slot} holds {other:?}, not a CNode"),
        };
        // Four runs of 16 fill the 64 slots past the roots, in order.
        for slot in 1..=4 {
            t.retype(s(0), RetypeKind::CNode { radix: 4 }, 1, s(slot))
                .unwrap();
            assert_eq!(first(&t, slot), ROOTS + (slot - 1) * 16);
        }
        assert_eq!(
            t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(5)),
            Err(Error::NotEnoughMemory)
        );
        // The second run's slots come back and are handed out again.
        t.delete(s(2));
        t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(5))
            .unwrap();
        assert_eq!(first(&t, 5), ROOTS + 16);
        t.retype(s(0), RetypeKind::CNode { radix: 3 }, 1, s(6))
            .unwrap();
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
        fn new(t: &Table) -> Self {
            Self {
                caps: (0..SLOTS).map(|i| t.get(s(i))).collect(),
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
        fn apply(&mut self, op: &Op, t: &Table) {
            match *op {
                Op::Retype {
                    untyped,
                    count,
                    dest,
                    ..
                } => {
                    for d in dest..dest + count {
                        self.caps[d] = t.get(s(d)); // placement is checked by the invariants
                        self.parent[d] = Some(untyped);
                    }
                    self.caps[untyped] = t.get(s(untyped));
                }
                Op::Copy { src, dest, .. } | Op::Mint { src, dest, .. } => {
                    self.caps[dest] = t.get(s(dest));
                    self.parent[dest] = Some(src);
                }
                Op::Mutate { src, dest, .. } | Op::Move { src, dest } => {
                    for p in self.parent.iter_mut() {
                        if *p == Some(src) {
                            *p = Some(dest);
                        }
                    }
                    self.parent[dest] = self.parent[src].take();
                    self.caps[dest] = t.get(s(dest));
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

    /// Runs an operation; a slot number past the table cannot be named (as the kernel's
    /// lookups refuse it before the table sees it).
    fn run(t: &mut Table, op: &Op) -> Result<(), Error> {
        let id = |i: usize| TestSlot::new(i).ok_or(Error::RangeError);
        match *op {
            Op::Retype {
                untyped,
                kind,
                count,
                dest,
            } => t.retype(id(untyped)?, retype_kind(kind), count, id(dest)?),
            Op::Copy { src, dest, rights } => {
                t.copy(id(src)?, id(dest)?, Rights::from_bits(rights))
            }
            Op::Mint {
                src,
                dest,
                rights,
                badge,
            } => t.mint(id(src)?, id(dest)?, Rights::from_bits(rights), badge),
            Op::Mutate { src, dest, badge } => t.mutate(id(src)?, id(dest)?, Rights::ALL, badge),
            Op::Move { src, dest } => t.move_cap(id(src)?, id(dest)?),
            Op::Delete { slot } => {
                t.delete(id(slot)?);
                Ok(())
            }
            Op::Revoke { slot } => t.revoke(id(slot)?),
        }
    }

    /// The invariants, computed from the table alone.
    fn invariants(t: &Table) -> Result<(), std::string::String> {
        let ancestors = |i: usize| {
            let mut at = s(i);
            let mut out = Vec::new();
            while let Some(p) = t.parent(at) {
                if out.contains(&p.index()) || out.len() > SLOTS {
                    return None; // a cycle
                }
                out.push(p.index());
                at = p;
            }
            Some(out)
        };
        // The tree is well formed: parents and children agree, no cycles, empty slots are
        // outside the tree.
        for i in 0..SLOTS {
            let Some(up) = ancestors(i) else {
                return Err(std::format!("cycle above slot {i}"));
            };
            if t.get(s(i)).is_null()
                && (t.parent(s(i)).is_some() || t.children(s(i)).next().is_some())
            {
                return Err(std::format!("empty slot {i} is in the tree"));
            }
            if let Some(&p) = up.first()
                && !t.children(s(p)).any(|c| c == s(i))
            {
                return Err(std::format!("slot {i} is not among its parent's children"));
            }
            for c in t.children(s(i)) {
                if t.parent(c) != Some(s(i)) {
                    return Err(std::format!("child {c:?} of {i} disagrees"));
                }
            }
        }
        // Memory is never handed out twice: distinct objects never overlap, and every object
        // inside a live untyped block is one of its descendants below its watermark.
        let mut objects: Vec<((u64, ObjectKind), (u64, u64))> = Vec::new();
        for i in 0..SLOTS {
            let cap = t.get(s(i));
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
            } = t.get(s(u))
            else {
                continue;
            };
            let end = base + (1u64 << size_bits);
            for i in 0..SLOTS {
                let Some((ob, ol)) = t.get(s(i)).range() else {
                    continue;
                };
                if i == u || !(ob < end && base < ob + ol) {
                    continue;
                }
                let below = ancestors(i).is_some_and(|a| a.contains(&u));
                if !below {
                    if matches!(t.get(s(i)), Cap::Untyped { .. }) && ob <= base && end <= ob + ol {
                        continue; // an enclosing untyped block: `u` lies inside it
                    }
                    return Err(std::format!(
                        "slot {i} overlaps untyped {u} without deriving from it"
                    ));
                }
                if t.children(s(u)).next().is_some() && ob + ol > base + watermark {
                    return Err(std::format!("slot {i} lies above untyped {u}'s watermark"));
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
                    prop_assert!(t.children(s(slot)).next().is_none(), "revoke left descendants");
                }
                for i in 0..SLOTS {
                    prop_assert_eq!(t.get(s(i)), model.caps[i], "slot {} after {:?}", i, op);
                    prop_assert_eq!(t.parent(s(i)).map(TestSlot::index), model.parent[i], "parent of {} after {:?}", i, op);
                }
                if let Err(broken) = invariants(&t) {
                    prop_assert!(false, "{} after {:?}", broken, op);
                }
            }
            // Every object still named lies in memory the root untyped covers.
            let live: BTreeSet<u64> = (0..SLOTS).filter_map(|i| t.get(s(i)).range()).map(|r| r.0).collect();
            prop_assert!(live.iter().all(|&b| (UNTYPED_BASE..UNTYPED_BASE + 0x1_0000).contains(&b)));
        }
    }
}
