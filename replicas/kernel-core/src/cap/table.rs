//! The capability table: its slots, the derivation tree that links them, and every
//! operation on them (copy, mint, mutate, move, delete, revoke, retype, lookup).

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;

use super::{Cap, LookupFault, NO_DATA, RetypeKind, Rights};
use crate::id::{MAX_THREADS, TCB_SLOTS, Table, TableIndex};

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
/// slots from there up to `TCB_BASE`; the slots from `TCB_BASE` up are the TCBs' own,
/// [`TCB_SLOTS`] per thread in thread order. (The layout is a parameter of the type, not
/// a field, so that a new kernel's state is all zeros and takes no room in its image.)
pub struct CapTable<I, const N: usize, const TCB_BASE: usize> {
    slots: Table<I, Slot<I>, N>,
    roots: usize,
    /// Every CNode run ever handed out ends at or below this slot, so a new run can start
    /// here without a search while it fits.
    cnode_top: usize,
    /// Work list of a cascading deletion (kept here, not on the kernel stack).
    work: Work<I, N>,
    /// Changes made to the table (see [`CapTable::generation`]).
    changes: u64,
}

/// Where a walk ([`CapTable::lookup_from`]) ended: the slot, and the last CNode level it
/// went through (its first slot and radix, and whether it used up the address's bits).
struct Walk<I> {
    slot: I,
    first: usize,
    radix: u32,
    used_up: bool,
}

/// The last CNode level of a lookup that it resolved in full (see
/// [`CapTable::lookup_leaf`]):
/// while the table does not change, every address whose bits above the level's index are
/// `high` resolves to slot `first` plus its low `radix` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The address bits above the index (`cptr >> radix`).
    pub high: u64,
    /// The level's first slot.
    pub first: usize,
    /// The level's index bits, 1 to 63.
    pub radix: u32,
}

impl<I: TableIndex + PartialEq + core::fmt::Debug, const N: usize, const TCB_BASE: usize>
    CapTable<I, N, TCB_BASE>
{
    /// The first of the TCBs' own slots (`TCB_BASE`, at most `N`).
    const TCB: usize = if TCB_BASE < N { TCB_BASE } else { N };

    /// A table whose first `roots` slots stand alone and whose slots from `TCB_BASE` up
    /// hold the TCBs' own capabilities; CNodes get the slots between.
    pub const fn new(roots: usize) -> Self {
        let roots = if roots < Self::TCB { roots } else { Self::TCB };
        Self {
            slots: Table::filled(Slot::EMPTY),
            roots,
            cnode_top: roots,
            work: Work::new(),
            changes: 0,
        }
    }

    /// A count that moves on with every change to the table: a lookup's result, or a
    /// [`Leaf`], holds for as long as it is the same. It starts at 1, so a kept result
    /// can use 0 for "none" (and a new kernel's state is all zeros); it would come back to
    /// 0 only after 2^64 changes.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.changes.wrapping_add(1)
    }

    /// Every change to the table goes through here first.
    fn changing(&mut self) {
        self.changes = self.changes.wrapping_add(1);
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
    /// own slots (thread `t`'s are the `TCB_SLOTS` from `TCB_BASE + t * TCB_SLOTS`: with the
    /// kernel's `TCB_BASE`, the layout of `ThreadId::own_slot`). (first slot index, count)
    fn owned_slots(&self, cap: Cap) -> Option<(usize, usize)> {
        match cap {
            Cap::CNode { .. } => Self::cnode_slots(cap).map(|(first, n)| (first.index(), n)),
            Cap::Object {
                kind: ObjectKind::Tcb,
                data,
                ..
            } => {
                let thread = usize::try_from(data).ok().filter(|&t| t < MAX_THREADS)?;
                let first = Self::TCB.checked_add(thread.checked_mul(TCB_SLOTS)?)?;
                Some((first, TCB_SLOTS))
            }
            _ => None,
        }
    }

    /// Boot: places an original capability (untyped memory, IRQ control) in an empty slot.
    pub fn insert_original(&mut self, slot: I, cap: Cap) -> Result<(), Error> {
        self.changing();
        self.empty(slot)?;
        if let Some((first, len)) = Self::cnode_slots(cap) {
            self.cnode_top = self
                .cnode_top
                .max(first.index().saturating_add(len).min(Self::TCB));
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
        self.changing();
        self.derive(src, dest, rights, None)
    }

    /// Copy with reduced rights and a badge (endpoints, notifications, doorbells only; the
    /// source must be unbadged).
    pub fn mint(&mut self, src: I, dest: I, rights: Rights, badge: u64) -> Result<(), Error> {
        self.changing();
        self.derive(src, dest, rights, Some(badge))
    }

    /// seL4's Mutate: moves the capability to `dest`, reducing its rights and (for an
    /// unbadged endpoint, notification, doorbell or SMC capability) setting a badge; its place in the
    /// derivation tree moves with it.
    pub fn mutate(
        &mut self,
        src: I,
        dest: I,
        rights: Rights,
        badge: Option<u64>,
    ) -> Result<(), Error> {
        self.changing();
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
                // An SMC capability's badge is the one function id it may call (seL4's).
                let badgeable = matches!(
                    kind,
                    ObjectKind::Endpoint
                        | ObjectKind::Notification
                        | ObjectKind::Doorbell
                        | ObjectKind::Smc
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
        self.changing();
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
        self.changing();
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
        self.changing();
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
        self.changing();
        let Cap::Untyped {
            base,
            size_bits,
            watermark,
            device,
            read_only,
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
                    read_only,
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
                    rights: if read_only { Rights::READ } else { Rights::ALL },
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
            read_only,
        };
        Ok(())
    }

    /// A run of `want` slots past the root slots that no live CNode owns: above every run
    /// handed out so far while that fits, else the first free one.
    fn find_free_run(&self, want: usize) -> Option<usize> {
        if self.cnode_top.checked_add(want)? <= Self::TCB {
            return Some(self.cnode_top);
        }
        let mut at = self.roots;
        loop {
            let end = at.checked_add(want)?;
            if end > Self::TCB {
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
        self.walk(root, cptr, depth).map(|w| w.slot)
    }

    /// The full-depth (64-bit) lookup of `cptr` from `root`, with the CNode level that ended
    /// it if the lookup ended by using up the address's bits in a CNode (not by reaching a
    /// slot that holds no CNode): every address with the same bits above that level's index
    /// then takes the same path, guards included, and ends in the same level.
    pub fn lookup_leaf(&self, root: &Cap, cptr: u64) -> Result<(I, Option<Leaf>), LookupFault> {
        let w = self.walk(root, cptr, 64)?;
        let leaf = (w.used_up && (1..64).contains(&w.radix)).then(|| Leaf {
            high: cptr.wrapping_shr(w.radix),
            first: w.first,
            radix: w.radix,
        });
        Ok((w.slot, leaf))
    }

    /// seL4's guarded walk of `depth` bits of `cptr` from `root`: each level checks its
    /// guard, then indexes `radix` bits, and follows a CNode found in the slot while bits
    /// remain.
    #[inline(always)]
    fn walk(&self, root: &Cap, cptr: u64, depth: u8) -> Result<Walk<I>, LookupFault> {
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
                return Ok(Walk {
                    slot,
                    first: first as usize,
                    radix: u32::from(radix),
                    used_up: left == 0,
                });
            }
            cap = next;
        }
    }

    /// Sets the kernel data of an object capability (see [`Cap::Object`]).
    pub fn set_data(&mut self, slot: I, value: u64) -> Result<(), Error> {
        self.changing();
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
        self.changing();
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
