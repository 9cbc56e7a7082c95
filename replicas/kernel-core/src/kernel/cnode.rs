//! CNodes: deleting, revoking, copying, minting, moving and mutating the capabilities in
//! their slots.

use atoll_abi::error::Error;
use atoll_abi::syscall::label;

use super::invoke::Args;
use super::{Kernel, Machine};
use crate::cap::{Cap, Rights};
use crate::id::{SlotId, ThreadId};

/// A checked CNode invocation: the slots it names are found (whether they hold what the
/// operation needs is the capability table's to check).
pub(super) enum CNodeInvocation {
    /// CNode_Delete.
    Delete(SlotId),
    /// CNode_Revoke.
    Revoke(SlotId),
    /// CNode_Copy.
    Copy {
        src: SlotId,
        dest: SlotId,
        rights: Rights,
    },
    /// CNode_Mint.
    Mint {
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        badge: u64,
    },
    /// CNode_Move.
    Move { src: SlotId, dest: SlotId },
    /// CNode_Mutate (see [`Kernel::mutate`]).
    Mutate {
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        data: u64,
    },
}

impl Kernel {
    /// Decodes an invocation of `cnode`: its slot (index, depth), then for the two-slot
    /// operations the source (root in `t`'s space, index, depth), rights and badge or data.
    #[inline(always)]
    pub(super) fn decode_cnode(
        &self,
        t: ThreadId,
        cnode: Cap,
        op: u64,
        args: &Args,
    ) -> Result<CNodeInvocation, Error> {
        let here = self.slot_in(&cnode, args.get(0)?, args.get(1)?)?;
        let source = || self.dest_slot(t, args.get(2)?, args.get(3)?, args.get(4)?);
        let rights = || Ok::<_, Error>(Rights::from_bits(args.get(5)? as u8));
        Ok(match op {
            label::CNODE_DELETE => CNodeInvocation::Delete(here),
            label::CNODE_REVOKE => CNodeInvocation::Revoke(here),
            label::CNODE_COPY => CNodeInvocation::Copy {
                src: source()?,
                dest: here,
                rights: rights()?,
            },
            label::CNODE_MINT => CNodeInvocation::Mint {
                src: source()?,
                dest: here,
                rights: rights()?,
                badge: args.get(6)?,
            },
            label::CNODE_MOVE => CNodeInvocation::Move {
                src: source()?,
                dest: here,
            },
            label::CNODE_MUTATE => CNodeInvocation::Mutate {
                src: source()?,
                dest: here,
                rights: rights()?,
                data: args.get(6)?,
            },
            _ => return Err(Error::IllegalOperation),
        })
    }

    /// Performs a CNode invocation.
    #[inline(always)]
    pub(super) fn invoke_cnode(
        &mut self,
        m: &mut impl Machine,
        request: CNodeInvocation,
    ) -> Result<(), Error> {
        match request {
            CNodeInvocation::Delete(slot) => self.delete_slot(m, slot),
            CNodeInvocation::Revoke(slot) => {
                let Kernel { caps, objects, .. } = self;
                caps.revoke_with(slot, &mut |s, cap, last| objects.gone(m, s, cap, last))?;
            }
            CNodeInvocation::Copy { src, dest, rights } => self.caps.copy(src, dest, rights)?,
            CNodeInvocation::Mint {
                src,
                dest,
                rights,
                badge,
            } => self.caps.mint(src, dest, rights, badge)?,
            CNodeInvocation::Move { src, dest } => self.caps.move_cap(src, dest)?,
            CNodeInvocation::Mutate {
                src,
                dest,
                rights,
                data,
            } => self.mutate(src, dest, rights, data)?,
        }
        Ok(())
    }

    /// Deletes a capability, destroying its object when it was the last one.
    pub(super) fn delete_slot(&mut self, m: &mut impl Machine, slot: SlotId) {
        let Kernel { caps, objects, .. } = self;
        caps.delete_with(slot, &mut |s, cap, last| objects.gone(m, s, cap, last));
    }

    /// seL4's Mutate: for a CNode, `data` sets its guard (bits 58–63 the guard's width, the
    /// rest its value); for an unbadged endpoint, notification or doorbell, a badge.
    fn mutate(
        &mut self,
        src: SlotId,
        dest: SlotId,
        rights: Rights,
        data: u64,
    ) -> Result<(), Error> {
        if !matches!(self.caps.get(src), Cap::CNode { .. }) {
            let badge = (data != 0).then_some(data);
            return self.caps.mutate(src, dest, rights, badge);
        }
        self.caps.mutate(src, dest, rights, None)?;
        if data != 0 {
            let bits = (data >> 58) as u8;
            let guard = data & ((1 << 58) - 1);
            if let Err(e) = self.caps.set_guard(dest, guard, bits) {
                let _ = self.caps.move_cap(dest, src);
                return Err(e);
            }
        }
        Ok(())
    }
}
