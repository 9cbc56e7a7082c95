//! User address spaces: translation tables that live in retyped VSpace and PageTable
//! objects, four levels of 4 KiB tables over 40 bits (the VSpace is the level-0 root, of
//! which only entries 0 and 1 lie below [`USER_TOP`]); the invocations that map and unmap
//! page tables (PageTable_Map, PageTable_Unmap) and frames (Frame_Map, Frame_Unmap,
//! Frame_GetAddress).
//!
//! A page-table capability that maps a table records where (`data`): the address space's
//! ASID (its index plus one) in bits 0–11, the level the table serves (1, 2 or 3) in bits
//! 12–13, and the base of the range it translates above. A mapped frame capability records
//! the ASID in bits 0–11 and its virtual address above.
//!
//! A record can outlive its address space (whose index may then be reused): every removal
//! through a record checks that the entry it clears still points at the object, so a
//! stale record can only fail to find its entry.

use atoll_abi::error::Error;
use atoll_abi::pd::vspace::USER_TOP;
use atoll_abi::spec::attrs;
use atoll_abi::syscall::{label, vm_attr};

use super::invoke::{Answer, Args};
use super::objects::Objects;
use super::{Kernel, Machine};
use crate::cap::Rights;
use crate::id::{SlotId, ThreadId, VSpaceId};
use crate::pagetable::{desc, descriptor_bits};

const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;
const TABLE: u64 = desc::VALID | desc::TABLE_OR_PAGE;

/// Bits of `va` that index a level-`level` table (levels 0 to 3): always below 512.
const fn index(va: u64, level: u32) -> usize {
    (va.wrapping_shr(39u32.wrapping_sub(level.wrapping_mul(9))) & 0x1FF) as usize
}

/// Span translated by one entry of a level-`level` table (levels 0 to 3).
const fn span(level: u32) -> u64 {
    1u64.wrapping_shl(39u32.wrapping_sub(level.wrapping_mul(9)))
}

/// Entry `index(va, level)` of the table at `table`, if that is a page the kernel may use.
fn entry(m: &mut impl Machine, table: u64, va: u64, level: u32) -> Option<&mut u64> {
    m.page(table)?.get_mut(index(va, level))
}

/// The table of the given level on the walk to `va` (0 is the root), if present.
fn table_at(m: &mut impl Machine, root: u64, va: u64, level: u32) -> Option<u64> {
    let mut table = root;
    for l in 0..level {
        let entry = *entry(m, table, va, l)?;
        if entry & TABLE != TABLE {
            return None;
        }
        table = entry & ADDRESS_MASK;
    }
    Some(table)
}

/// The record of address space `vspace` in a capability's data: its ASID, 1 to 4095.
fn vspace_bits(vspace: VSpaceId) -> u64 {
    u64::from(vspace.asid())
}

/// The address space a record names.
fn decode_vspace(data: u64) -> Option<VSpaceId> {
    VSpaceId::new(usize::try_from(data & 0xFFF).ok()?.checked_sub(1)?)
}

/// A mapped frame capability's record.
pub(super) fn frame_record(vspace: VSpaceId, va: u64) -> u64 {
    (va & ADDRESS_MASK) | vspace_bits(vspace)
}

/// A mapped page-table capability's record (`base` is aligned to what it translates).
pub(super) fn table_record(vspace: VSpaceId, base: u64, level: u32) -> u64 {
    (base & ADDRESS_MASK) | (u64::from(level & 3) << 12) | vspace_bits(vspace)
}

/// Decodes a frame record: (address space, virtual address).
pub(super) fn frame_mapping(data: u64) -> Option<(VSpaceId, u64)> {
    Some((decode_vspace(data)?, data & ADDRESS_MASK))
}

/// Decodes a page-table record: (address space, base, level).
pub(super) fn table_mapping(data: u64) -> Option<(VSpaceId, u64, u32)> {
    let level = ((data >> 12) & 3) as u32;
    Some((decode_vspace(data)?, data & ADDRESS_MASK & !0x3FFF, level))
}

/// Installs the table at `table` as the next one missing on the walk to `va` (a table linked
/// from the level-0 root serves level 1, and so on to level 3); returns the level it now
/// serves.
pub(super) fn map_table(
    m: &mut impl Machine,
    root: u64,
    table: u64,
    va: u64,
) -> Result<u32, Error> {
    if va >= USER_TOP {
        return Err(Error::InvalidArgument);
    }
    let mut parent = root;
    for level in 0..=2 {
        let e = entry(m, parent, va, level).ok_or(Error::InvalidArgument)?;
        if *e == 0 {
            *e = table | TABLE;
            return Ok(level.saturating_add(1));
        }
        if *e & TABLE != TABLE {
            return Err(Error::DeleteFirst); // a block mapping is in the way
        }
        parent = *e & ADDRESS_MASK;
    }
    Err(Error::DeleteFirst)
}

/// Removes the table at `table` from the walk to `va` at `level`, if it is still there.
pub(super) fn unmap_table(m: &mut impl Machine, root: u64, table: u64, va: u64, level: u32) {
    let Some(above) = level.checked_sub(1) else {
        return;
    };
    if let Some(parent) = table_at(m, root, va, above)
        && let Some(e) = entry(m, parent, va, above)
        && *e & ADDRESS_MASK == table
        && *e & TABLE == TABLE
    {
        *e = 0;
    }
}

/// Maps a frame of `2^size_bits` bytes at `va` with descriptor bits `bits`. The table the
/// entry goes in must already be mapped (FailedLookup otherwise); an existing entry is
/// replaced only when `remap` (the same frame changing its rights).
pub(super) fn map_frame(
    m: &mut impl Machine,
    root: u64,
    pa: u64,
    size_bits: u8,
    va: u64,
    bits: u64,
    remap: bool,
) -> Result<(), Error> {
    let size = 1u64
        .checked_shl(u32::from(size_bits))
        .ok_or(Error::InvalidArgument)?;
    if !va.is_multiple_of(size) {
        return Err(Error::AlignmentError);
    }
    if va.checked_add(size).is_none_or(|end| end > USER_TOP) {
        return Err(Error::InvalidArgument);
    }
    let (level, leaf) = match size_bits {
        12 => (3, desc::VALID | desc::TABLE_OR_PAGE),
        21 => (2, desc::VALID),
        _ => return Err(Error::InvalidArgument),
    };
    let table = table_at(m, root, va, level).ok_or(Error::FailedLookup)?;
    let e = entry(m, table, va, level).ok_or(Error::FailedLookup)?;
    if *e != 0 && !(remap && *e & ADDRESS_MASK == pa) {
        return Err(Error::DeleteFirst);
    }
    *e = pa | bits | leaf;
    Ok(())
}

/// Removes the mapping of the frame at `pa` from `va`, if it is still there.
pub(super) fn unmap_frame(m: &mut impl Machine, root: u64, pa: u64, size_bits: u8, va: u64) {
    let level = if size_bits == 21 { 2 } else { 3 };
    if let Some(table) = table_at(m, root, va, level)
        && let Some(e) = entry(m, table, va, level)
        && *e & ADDRESS_MASK == pa
        && *e & desc::VALID != 0
    {
        *e = 0;
    }
}

/// The range a table serving `level` covers around `va`.
pub(super) fn table_base(va: u64, level: u32) -> u64 {
    va & !span(level.saturating_sub(1)).wrapping_sub(1)
}

/// A checked page-table invocation.
pub(super) enum PageTableInvocation {
    /// PageTable_Map: link the table into address space `vspace` (root table `root`) on
    /// the walk to `va`.
    Map {
        vspace: VSpaceId,
        root: u64,
        va: u64,
    },
    /// PageTable_Unmap: unlink it and empty it.
    Unmap { record: u64 },
}

/// A checked frame invocation.
pub(super) enum FrameInvocation {
    /// Frame_Map: map the frame at `va` in address space `vspace` (root table `root`) with
    /// descriptor bits `bits`; `remap` when it is mapped there already (its rights change).
    Map {
        vspace: VSpaceId,
        root: u64,
        va: u64,
        bits: u64,
        remap: bool,
    },
    /// Frame_Unmap: remove the mapping the capability records.
    Unmap { record: u64 },
    /// Frame_GetAddress.
    GetAddress,
}

impl Kernel {
    /// Decodes an invocation of the page-table capability in `slot` whose mapping record
    /// is `record` (0: unmapped).
    #[inline(always)]
    pub(super) fn decode_page_table(
        &self,
        t: ThreadId,
        slot: SlotId,
        record: u64,
        op: u64,
        args: &Args,
    ) -> Result<PageTableInvocation, Error> {
        match op {
            label::PAGE_TABLE_MAP => {
                if record != 0 {
                    return Err(Error::IllegalOperation); // already mapped
                }
                let vspace = self.vspace_arg(t, args.get(0)?)?;
                let va = args.get(1)?;
                let root = self.objects.vspaces[vspace].ok_or(Error::InvalidCapability)?;
                Ok(PageTableInvocation::Map { vspace, root, va })
            }
            label::PAGE_TABLE_UNMAP => {
                // Copies name the same mapping: only the last may undo it (as seL4).
                if !self.caps.is_final(slot) {
                    return Err(Error::RevokeFirst);
                }
                Ok(PageTableInvocation::Unmap { record })
            }
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs an invocation of the page table at `base` through the capability in
    /// `slot`; mapping fails where the walk has no room for it.
    #[inline(always)]
    pub(super) fn invoke_page_table(
        &mut self,
        m: &mut impl Machine,
        slot: SlotId,
        base: u64,
        request: PageTableInvocation,
    ) -> Result<(), Error> {
        match request {
            PageTableInvocation::Map { vspace, root, va } => {
                let level = map_table(m, root, base, va)?;
                let record = table_record(vspace, table_base(va, level), level);
                self.caps.set_data(slot, record)
            }
            PageTableInvocation::Unmap { record } => {
                self.objects.unlink_table(m, base, record);
                self.caps.set_data(slot, 0)
            }
        }
    }

    /// Decodes an invocation of a frame capability with rights `have` and mapping record
    /// `record` (0: unmapped).
    #[inline(always)]
    pub(super) fn decode_frame(
        &self,
        t: ThreadId,
        record: u64,
        have: Rights,
        op: u64,
        args: &Args,
    ) -> Result<FrameInvocation, Error> {
        match op {
            label::FRAME_MAP => {
                let vspace = self.vspace_arg(t, args.get(0)?)?;
                let va = args.get(1)?;
                let want = Rights::from_bits(args.get(2)? as u8).intersect(have);
                let vm = args.get(3)?;
                if !want.contains(Rights::READ) {
                    return Err(Error::InvalidArgument);
                }
                let remap = match frame_mapping(record) {
                    None => false,
                    Some((mv, mva)) if mv == vspace && mva == va => true,
                    Some(_) => return Err(Error::IllegalOperation), // mapped elsewhere
                };
                let mut a = attrs::USER;
                if want.contains(Rights::WRITE) {
                    a |= attrs::WRITE;
                } else if vm & vm_attr::EXECUTE != 0 {
                    a |= attrs::EXEC;
                }
                if vm & vm_attr::CACHED == 0 {
                    a |= attrs::DEVICE;
                }
                let root = self.objects.vspaces[vspace].ok_or(Error::InvalidCapability)?;
                Ok(FrameInvocation::Map {
                    vspace,
                    root,
                    va,
                    bits: descriptor_bits(a),
                    remap,
                })
            }
            label::FRAME_UNMAP => Ok(FrameInvocation::Unmap { record }),
            label::FRAME_GET_ADDRESS => Ok(FrameInvocation::GetAddress),
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs an invocation of the frame of `2^size_bits` bytes at `base` through the
    /// capability in `slot`; mapping fails where the walk has no table or no room for it.
    #[inline(always)]
    pub(super) fn invoke_frame(
        &mut self,
        m: &mut impl Machine,
        slot: SlotId,
        (base, size_bits): (u64, u8),
        request: FrameInvocation,
    ) -> Result<Answer, Error> {
        match request {
            FrameInvocation::Map {
                vspace,
                root,
                va,
                bits,
                remap,
            } => {
                map_frame(m, root, base, size_bits, va, bits, remap)?;
                if remap {
                    m.flush_tlb(vspace.asid(), Some(va));
                }
                self.caps.set_data(slot, frame_record(vspace, va))?;
            }
            FrameInvocation::Unmap { record } => {
                self.objects.unmap_frame(m, base, size_bits, record);
                self.caps.set_data(slot, 0)?;
            }
            FrameInvocation::GetAddress => {
                return Ok(Answer {
                    len: 1,
                    mrs: [base, 0, 0, 0, 0, 0, 0, 0],
                });
            }
        }
        Ok(Answer::EMPTY)
    }
}

impl Objects {
    /// Removes the mapping a frame capability records, if its entry still maps the frame.
    pub fn unmap_frame(&mut self, m: &mut impl Machine, base: u64, size_bits: u8, data: u64) {
        if let Some((v, va)) = frame_mapping(data)
            && let Some(root) = self.vspaces[v]
        {
            unmap_frame(m, root, base, size_bits, va);
            m.flush_tlb(v.asid(), Some(va));
        }
    }

    /// Unlinks the page table at `base` from where its capabilities record it is mapped (if
    /// that address space lives and still links it there), and empties it: an unlinked
    /// table holds no translation, so linking it again can map nothing stale.
    pub fn unlink_table(&mut self, m: &mut impl Machine, base: u64, data: u64) {
        if let Some((v, va, level)) = table_mapping(data)
            && let Some(root) = self.vspaces[v]
        {
            unmap_table(m, root, base, va, level);
            m.flush_tlb(v.asid(), None);
        }
        if let Some(table) = m.page(base) {
            table.fill(0);
        }
    }
}
