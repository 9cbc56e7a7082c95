//! Untyped memory: Untyped_Retype, which makes new objects out of it, and the creation of
//! each object's table entry (as seL4's `createObject`).

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::object_kind;

use super::doorbell::Doorbell;
use super::invoke::Args;
use super::objects::{alloc, free_count};
use super::tcb::Tcb;
use super::{Caps, Kernel, Machine};
use crate::cap::{Cap, RetypeKind};
use crate::id::{SlotId, ThreadId};

/// A checked Untyped_Retype: `count` objects of `kind` from the untyped memory in
/// `untyped`, their capabilities in the empty slots from `dest` on.
pub(super) struct Retype {
    untyped: SlotId,
    kind: RetypeKind,
    count: usize,
    dest: SlotId,
}

impl Kernel {
    /// Decodes Untyped_Retype (kind, size, destination CNode as root, index and depth,
    /// offset in it, count): the kind, the destination range and the room in the object
    /// tables are checked; the memory and the slots are checked as the retype is made.
    #[inline(always)]
    pub(super) fn decode_retype(
        &self,
        t: ThreadId,
        untyped: SlotId,
        args: &Args,
    ) -> Result<Retype, Error> {
        let (kind, size_bits) = (args.get(0)?, args.get(1)?);
        let (root, node_index, node_depth) = (args.get(2)?, args.get(3)?, args.get(4)?);
        let (offset, count) = (args.get(5)?, args.get(6)?);
        let size_bits = u8::try_from(size_bits).map_err(|_| Error::RangeError)?;
        let kind = if kind == object_kind::UNTYPED {
            RetypeKind::Untyped { size_bits }
        } else {
            match object_kind::from_number(kind).ok_or(Error::InvalidArgument)? {
                ObjectKind::CNode => RetypeKind::CNode { radix: size_bits },
                ObjectKind::Frame => RetypeKind::Frame {
                    kind: ObjectKind::Frame,
                    size_bits,
                },
                k if k.is_authority() => return Err(Error::InvalidArgument),
                k => RetypeKind::Object(k),
            }
        };
        // The destination CNode: the root itself (depth 0) or a CNode inside it.
        let (_, root) = self.cnode_arg(t, root)?;
        let node = if node_depth == 0 {
            root
        } else {
            match self.caps.get(self.slot_in(&root, node_index, node_depth)?) {
                c @ Cap::CNode { .. } => c,
                _ => return Err(Error::FailedLookup),
            }
        };
        let (first, slots) = Caps::cnode_slots(node).ok_or(Error::InvalidCapability)?;
        let slots = slots as u64;
        if count == 0 || offset >= slots || count > slots.saturating_sub(offset) {
            return Err(Error::RangeError);
        }
        // Both below the CNode's slot count, which is at most 2^12.
        let (offset, count) = (offset as usize, count as usize);
        // Room in the object tables, checked before any memory is taken.
        if let RetypeKind::Object(k) = kind
            && self.free_entries(k) < count
        {
            return Err(Error::NotEnoughMemory);
        }
        let dest = first
            .index()
            .checked_add(offset)
            .and_then(SlotId::new)
            .ok_or(Error::RangeError)?;
        Ok(Retype {
            untyped,
            kind,
            count,
            dest,
        })
    }

    /// How many more objects of `kind` the tables have room for.
    fn free_entries(&self, kind: ObjectKind) -> usize {
        let o = &self.objects;
        match kind {
            ObjectKind::Tcb => o.tcbs.values().filter(|t| !t.live).count(),
            ObjectKind::Endpoint => free_count(&o.ep_live),
            ObjectKind::Notification => free_count(&o.ntfn_live),
            ObjectKind::Reply => o.replies.values().filter(|r| !r.live).count(),
            ObjectKind::SchedContext => free_count(&o.sc_live),
            ObjectKind::VSpace => o.vspaces.values().filter(|v| v.is_none()).count(),
            ObjectKind::Doorbell => o
                .doorbells
                .values()
                .filter(|d| **d == Doorbell::Free)
                .count(),
            _ => usize::MAX,
        }
    }

    /// Performs a retype: takes the memory, zeroes it where it must be and gives each new
    /// object its table entry; if one fails, every new capability goes again.
    #[inline(always)]
    pub(super) fn invoke_retype(
        &mut self,
        m: &mut impl Machine,
        request: Retype,
    ) -> Result<(), Error> {
        let Retype {
            untyped,
            kind,
            count,
            dest,
        } = request;
        // Device memory (and what the loader filled) keeps its contents.
        let device = matches!(self.caps.get(untyped), Cap::Untyped { device: true, .. });
        self.caps.retype(untyped, kind, count, dest)?;
        let new_slots = (dest.index()..dest.index().saturating_add(count)).filter_map(SlotId::new);
        for s in new_slots.clone() {
            let cleared = if device {
                Ok(())
            } else {
                self.clear_memory(m, s)
            };
            if let Err(e) = cleared.and_then(|()| self.init_object(s)) {
                // Undo: none of the new objects is used yet; those not yet given a table
                // entry have none to free.
                for undo in new_slots {
                    self.delete_slot(m, undo);
                }
                return Err(e);
            }
            if let Cap::Object {
                kind: ObjectKind::Tcb,
                data,
                ..
            } = self.caps.get(s)
                && let Some(t) = ThreadId::from_data(data)
            {
                m.thread_created(t);
            }
        }
        Ok(())
    }

    /// Zeroes the memory of the new object in `slot` where that matters: translation
    /// tables must start empty (and so must lie in the replica's object memory); frames are
    /// zeroed unless they are device memory or memory the loader filled.
    fn clear_memory(&self, m: &mut impl Machine, slot: SlotId) -> Result<(), Error> {
        if let Cap::Object {
            kind,
            base,
            size_bits,
            ..
        } = self.caps.get(slot)
        {
            let size = 1u64.checked_shl(u32::from(size_bits)).unwrap_or(0);
            let zeroed = m.zero(base, size);
            if !zeroed && matches!(kind, ObjectKind::VSpace | ObjectKind::PageTable) {
                return Err(Error::InvalidArgument);
            }
        }
        Ok(())
    }

    /// Gives the new object in `slot` its table entry.
    pub(super) fn init_object(&mut self, slot: SlotId) -> Result<(), Error> {
        let Cap::Object { kind, base, .. } = self.caps.get(slot) else {
            return Ok(()); // untyped and CNodes need nothing
        };
        let o = &mut self.objects;
        let data = match kind {
            ObjectKind::Tcb => {
                let i = o.tcbs.find(|t| !t.live).ok_or(Error::NotEnoughMemory)?;
                o.tcbs[i] = Tcb {
                    live: true,
                    ..Tcb::EMPTY
                };
                o.sched.add_thread(i, 0);
                i.data()
            }
            ObjectKind::Endpoint => {
                let i = alloc(&mut o.ep_live).ok_or(Error::NotEnoughMemory)?;
                o.eps[i] = Default::default();
                i.data()
            }
            ObjectKind::Notification => {
                let i = alloc(&mut o.ntfn_live).ok_or(Error::NotEnoughMemory)?;
                o.ntfns[i] = Default::default();
                o.ntfn_bound[i] = None;
                o.ntfn_sc[i] = None;
                i.data()
            }
            ObjectKind::Reply => {
                let i = o.replies.find(|r| !r.live).ok_or(Error::NotEnoughMemory)?;
                o.replies[i].live = true;
                i.data()
            }
            ObjectKind::SchedContext => {
                let i = alloc(&mut o.sc_live).ok_or(Error::NotEnoughMemory)?;
                o.sc_ntfn[i] = None;
                i.data()
            }
            ObjectKind::VSpace => {
                let i = o
                    .vspaces
                    .find(Option::is_none)
                    .ok_or(Error::NotEnoughMemory)?;
                o.vspaces[i] = Some(base);
                i.data()
            }
            ObjectKind::Doorbell => {
                let i = o
                    .doorbells
                    .find(|d| *d == Doorbell::Free)
                    .ok_or(Error::NotEnoughMemory)?;
                o.doorbells[i] = Doorbell::Unconfigured;
                i.data()
            }
            _ => return Ok(()),
        };
        self.caps.set_data(slot, data)
    }
}
