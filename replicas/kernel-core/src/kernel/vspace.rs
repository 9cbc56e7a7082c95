//! User address spaces: translation tables that live in retyped VSpace and PageTable
//! objects, three levels of 4 KiB tables over 39 bits, as the kernel half uses.
//!
//! A page-table capability that maps a table records where (`data`): the address space's
//! index plus one in bits 0–11, the level the table serves (2 or 3) in bits 12–13, and the
//! base of the range it translates above. A mapped frame capability records the address
//! space's index plus one in bits 0–11 and its virtual address above.

use atoll_abi::error::Error;
use atoll_abi::microkit::vspace::USER_TOP;

use super::Machine;
use crate::pagetable::desc;

const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;
const TABLE: u64 = desc::VALID | desc::TABLE_OR_PAGE;

const fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & 0x1FF) as usize
}

/// Span translated by one entry of a level-`level` table.
const fn span(level: u32) -> u64 {
    1 << (39 - 9 * level)
}

/// The table of the given level on the walk to `va` (1 is the root), if present.
fn table_at(m: &mut impl Machine, root: u64, va: u64, level: u32) -> Option<u64> {
    let mut table = root;
    for l in 1..level {
        let entry = m.page(table)?[index(va, l)];
        if entry & TABLE != TABLE {
            return None;
        }
        table = entry & ADDRESS_MASK;
    }
    Some(table)
}

/// A mapped frame capability's record.
pub(super) fn frame_record(vspace: usize, va: u64) -> u64 {
    (va & ADDRESS_MASK) | (vspace as u64 + 1)
}

/// A mapped page-table capability's record (`base` is aligned to what it translates).
pub(super) fn table_record(vspace: usize, base: u64, level: u32) -> u64 {
    (base & ADDRESS_MASK) | (u64::from(level) << 12) | (vspace as u64 + 1)
}

/// Decodes a frame record: (address-space index, virtual address).
pub(super) fn decode_frame(data: u64) -> Option<(usize, u64)> {
    let v = data & 0xFFF;
    (v != 0).then(|| ((v - 1) as usize, data & ADDRESS_MASK))
}

/// Decodes a page-table record: (address-space index, base, level).
pub(super) fn decode_table(data: u64) -> Option<(usize, u64, u32)> {
    let v = data & 0xFFF;
    (v != 0).then(|| {
        (
            (v - 1) as usize,
            data & ADDRESS_MASK & !0x3FFF,
            ((data >> 12) & 3) as u32,
        )
    })
}

/// Installs the table at `table` as the next one missing on the walk to `va`; returns the
/// level it now serves.
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
    for level in 1..=2 {
        let page = m.page(parent).ok_or(Error::InvalidArgument)?;
        let entry = page[index(va, level)];
        if entry == 0 {
            page[index(va, level)] = table | TABLE;
            return Ok(level + 1);
        }
        if entry & TABLE != TABLE {
            return Err(Error::DeleteFirst); // a block mapping is in the way
        }
        parent = entry & ADDRESS_MASK;
    }
    Err(Error::DeleteFirst)
}

/// Removes the table at `table` from the walk to `va` at `level`, if it is still there.
pub(super) fn unmap_table(m: &mut impl Machine, root: u64, table: u64, va: u64, level: u32) {
    if let Some(parent) = table_at(m, root, va, level - 1)
        && let Some(page) = m.page(parent)
    {
        let e = &mut page[index(va, level - 1)];
        if *e & ADDRESS_MASK == table && *e & TABLE == TABLE {
            *e = 0;
        }
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
    let size = 1u64 << size_bits;
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
    let page = m.page(table).ok_or(Error::FailedLookup)?;
    let e = &mut page[index(va, level)];
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
        && let Some(page) = m.page(table)
    {
        let e = &mut page[index(va, level)];
        if *e & ADDRESS_MASK == pa && *e & desc::VALID != 0 {
            *e = 0;
        }
    }
}

/// The range a table serving `level` covers around `va`.
pub(super) fn table_base(va: u64, level: u32) -> u64 {
    va & !(span(level - 1) - 1)
}
