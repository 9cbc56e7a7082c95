//! Builds aarch64 stage-1 translation tables with a 4 KiB granule. The kernel half (TTBR1)
//! translates 39 bits in three levels (1 GiB, 2 MiB and 4 KiB entries); the user half
//! (TTBR0) translates 40 bits, as seL4 gives user space on these boards, so its walk starts
//! one level higher, at a level-0 table of 512 GiB entries (of which only the first two are
//! used). A [`Root`] says which. Used by the loader to build each replica's kernel address
//! space and its trampoline's identity map, and by the kernel for its initialiser's address
//! space; the same code is exercised on the host.
//!
//! Mappings use 2 MiB blocks where virtual address, physical address and length allow, and
//! 4 KiB pages elsewhere; larger blocks are never made. Mapping over an existing entry is an
//! error, never a silent change.

use atoll_abi::spec::attrs;
use atoll_abi::spec::layout::{KERNEL_VA_BITS, USER_VA_BITS};

/// Entries per table.
pub const ENTRIES: usize = 512;
const PAGE: u64 = 0x1000;
const BLOCK_2M: u64 = 0x20_0000;
const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// Descriptor bits.
pub mod desc {
    /// Valid entry.
    pub const VALID: u64 = 1 << 0;
    /// Table (levels 1 and 2) or page (level 3); clear for a block.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// Memory attribute index 0: normal write-back (MAIR attr0).
    pub const ATTR_NORMAL: u64 = 0 << 2;
    /// Memory attribute index 1: device-nGnRE (MAIR attr1).
    pub const ATTR_DEVICE: u64 = 1 << 2;
    /// AP\[1\]: accessible from EL0.
    pub const USER: u64 = 1 << 6;
    /// AP\[2\]: read-only.
    pub const READ_ONLY: u64 = 1 << 7;
    /// Inner shareable.
    pub const INNER_SHAREABLE: u64 = 0b11 << 8;
    /// Access flag.
    pub const AF: u64 = 1 << 10;
    /// Not global: tagged with the address space's ASID.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    /// Privileged execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
}

/// MAIR_EL1 value matching [`desc::ATTR_NORMAL`] and [`desc::ATTR_DEVICE`].
pub const MAIR: u64 = 0xFF | (0x04 << 8);

/// TCR_EL1 for a 40-bit user half and a 39-bit kernel half, 4 KiB granules, write-back
/// walks, inner shareable, 40-bit physical addresses.
pub const TCR: u64 = {
    let t0sz = 64 - USER_VA_BITS as u64;
    let t1sz = 64 - KERNEL_VA_BITS as u64;
    let walk0 = (0b01 << 8) | (0b01 << 10) | (0b11 << 12); // IRGN0, ORGN0 WB-WA, SH0 inner
    let walk1 = (0b01 << 24) | (0b01 << 26) | (0b11 << 28); // IRGN1, ORGN1, SH1
    let tg1_4k = 0b10 << 30;
    let ips_40bit = 0b010 << 32;
    t0sz | (t1sz << 16) | walk0 | walk1 | tg1_4k | ips_40bit
};

/// The level a walk of `va_bits` bits starts at, 4 KiB granule: each level resolves 9 bits
/// above the page offset's 12, and level 3 is the last.
const fn root_level(va_bits: u32) -> u32 {
    3u32.saturating_sub(va_bits.saturating_sub(13) / 9)
}

/// The root of a tree of translation tables: where it is and the level it translates at.
/// Only the two roots the hardware is set up for exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    pa: u64,
    level: u32,
}

impl Root {
    /// A user (TTBR0) root at `pa`: 40-bit addresses, the walk starts at level 0.
    pub const fn user(pa: u64) -> Self {
        Self {
            pa,
            level: root_level(USER_VA_BITS),
        }
    }

    /// A kernel (TTBR1) root at `pa`: 39-bit addresses, the walk starts at level 1.
    pub const fn kernel(pa: u64) -> Self {
        Self {
            pa,
            level: root_level(KERNEL_VA_BITS),
        }
    }

    /// The root table's physical address.
    pub const fn pa(self) -> u64 {
        self.pa
    }

    /// The level the root table translates at.
    pub const fn level(self) -> u32 {
        self.level
    }

    /// Whether `[first, last]` lies in the half this root translates: below 1 TiB for a user
    /// root, in the top 512 GiB for a kernel root.
    const fn covers(self, first: u64, last: u64) -> bool {
        if self.level == root_level(USER_VA_BITS) {
            last < 1u64.wrapping_shl(USER_VA_BITS)
        } else {
            first >= 0u64.wrapping_sub(1u64.wrapping_shl(KERNEL_VA_BITS))
        }
    }
}

const _: () = assert!(Root::user(0).level == 0 && Root::kernel(0).level == 1);

/// Where tables come from.
pub trait TableMemory {
    /// A new zeroed 4 KiB table; its physical address, or `None` when out of space.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `pa` (one that `alloc_table` returned).
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES];
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Address or length not page aligned, or zero length.
    Misaligned,
    /// The range wraps around the address space, or leaves the half the root translates.
    Overflow,
    /// No table memory left.
    OutOfTables,
    /// Part of the range is already mapped.
    AlreadyMapped {
        /// First virtual address found mapped.
        va: u64,
    },
}

/// Descriptor attribute bits for an [`attrs`] set. Kernel mappings are never
/// user-accessible or user-executable; user mappings are never kernel-executable.
pub const fn descriptor_bits(mapping_attrs: u64) -> u64 {
    if mapping_attrs & attrs::USER != 0 {
        let mut bits = desc::AF | desc::USER | desc::NOT_GLOBAL | desc::PXN;
        bits |= if mapping_attrs & attrs::DEVICE != 0 {
            desc::ATTR_DEVICE
        } else {
            desc::ATTR_NORMAL | desc::INNER_SHAREABLE
        };
        if mapping_attrs & attrs::WRITE == 0 {
            bits |= desc::READ_ONLY;
        }
        if mapping_attrs & attrs::EXEC == 0
            || mapping_attrs & attrs::DEVICE != 0
            || mapping_attrs & attrs::WRITE != 0
        {
            bits |= desc::UXN; // writable user memory is never executable (W^X)
        }
        return bits;
    }
    let mut bits = desc::AF | desc::UXN;
    if mapping_attrs & attrs::DEVICE != 0 {
        bits |= desc::ATTR_DEVICE;
    } else {
        bits |= desc::ATTR_NORMAL | desc::INNER_SHAREABLE;
    }
    if mapping_attrs & attrs::WRITE == 0 {
        bits |= desc::READ_ONLY;
    }
    if mapping_attrs & attrs::EXEC == 0 || mapping_attrs & attrs::DEVICE != 0 {
        bits |= desc::PXN;
    }
    bits
}

/// Bits of `va` that index a level-`level` table (levels 0 to 3): always below 512.
const fn index(va: u64, level: u32) -> usize {
    (va.wrapping_shr(39u32.wrapping_sub(level.wrapping_mul(9))) & 0x1FF) as usize
}

/// Span translated by one entry of a level-`level` table (levels 0 to 3).
const fn span(level: u32) -> u64 {
    1u64.wrapping_shl(39u32.wrapping_sub(level.wrapping_mul(9)))
}

/// Whether entry `e` of a level-`level` table links a next-level table.
const fn links_table(e: u64, level: u32) -> bool {
    level < 3 && e & (desc::VALID | desc::TABLE_OR_PAGE) == desc::VALID | desc::TABLE_OR_PAGE
}

/// Entry `i` of a table (`index` keeps it below [`ENTRIES`]; the mask makes sure).
fn entry(table: &mut [u64; ENTRIES], i: usize) -> &mut u64 {
    #[expect(clippy::indexing_slicing, reason = "masked to the table's 512 entries")]
    &mut table[i & (ENTRIES - 1)]
}

/// Maps `size` bytes at `va` to `pa` in the tables rooted at `root`.
pub fn map<M: TableMemory>(
    mem: &mut M,
    root: Root,
    va: u64,
    pa: u64,
    size: u64,
    mapping_attrs: u64,
) -> Result<(), MapError> {
    if size == 0
        || !va.is_multiple_of(PAGE)
        || !pa.is_multiple_of(PAGE)
        || !size.is_multiple_of(PAGE)
    {
        return Err(MapError::Misaligned);
    }
    // Neither range wraps (so the sums below cannot overflow: offset < size).
    let last = size.wrapping_sub(1);
    let va_last = va.checked_add(last).ok_or(MapError::Overflow)?;
    pa.checked_add(last).ok_or(MapError::Overflow)?;
    if !root.covers(va, va_last) {
        return Err(MapError::Overflow);
    }
    first_mapped(mem, root, va, size).map_or(Ok(()), |va| Err(MapError::AlreadyMapped { va }))?;
    let bits = descriptor_bits(mapping_attrs);
    let mut offset = 0u64;
    while offset < size {
        let (v, p) = (va.wrapping_add(offset), pa.wrapping_add(offset));
        let block = v.is_multiple_of(BLOCK_2M)
            && p.is_multiple_of(BLOCK_2M)
            && size.wrapping_sub(offset) >= BLOCK_2M;
        let (leaf_level, leaf_bits) = if block {
            (2, p | bits | desc::VALID)
        } else {
            (3, p | bits | desc::VALID | desc::TABLE_OR_PAGE)
        };
        let mut table = root.pa;
        for level in root.level..leaf_level {
            table = next_table(mem, table, index(v, level), v)?;
        }
        let e = entry(mem.table(table), index(v, leaf_level));
        if *e != 0 {
            return Err(MapError::AlreadyMapped { va: v });
        }
        *e = leaf_bits;
        offset = offset.wrapping_add(span(leaf_level));
    }
    Ok(())
}

/// The first page of `[va, va + size)` that is already mapped, if any; the range is
/// checked whole before anything is written, so a failed `map` changes nothing.
fn first_mapped<M: TableMemory>(mem: &mut M, root: Root, va: u64, size: u64) -> Option<u64> {
    // `map` checked that the range does not wrap.
    let end = va.wrapping_add(size.wrapping_sub(1));
    let mut v = va;
    loop {
        let Some(step) = empty_span(mem, root, v) else {
            return Some(v);
        };
        let next = (v & !step.wrapping_sub(1)).checked_add(step)?;
        if next > end {
            return None;
        }
        v = next;
    }
}

/// Walks to `va`: the span of the empty entry the walk ends at, or `None` when something
/// (a page, a block, or an entry that is neither empty nor a table) is there.
fn empty_span<M: TableMemory>(mem: &mut M, root: Root, va: u64) -> Option<u64> {
    let mut table = root.pa;
    for level in root.level..=3 {
        let e = *entry(mem.table(table), index(va, level));
        if e == 0 {
            return Some(span(level));
        }
        if !links_table(e, level) {
            return None;
        }
        table = e & ADDRESS_MASK;
    }
    None
}

/// The next-level table behind `table[idx]`, created if absent.
fn next_table<M: TableMemory>(
    mem: &mut M,
    table: u64,
    idx: usize,
    va: u64,
) -> Result<u64, MapError> {
    let present = *entry(mem.table(table), idx);
    if present == 0 {
        let new = mem.alloc_table().ok_or(MapError::OutOfTables)?;
        *entry(mem.table(table), idx) = new | desc::VALID | desc::TABLE_OR_PAGE;
        Ok(new)
    } else if present & (desc::VALID | desc::TABLE_OR_PAGE) == desc::VALID | desc::TABLE_OR_PAGE {
        Ok(present & ADDRESS_MASK)
    } else {
        Err(MapError::AlreadyMapped { va })
    }
}

/// Walks the tables: the physical address and descriptor bits `va` translates to.
pub fn translate<M: TableMemory>(mem: &mut M, root: Root, va: u64) -> Option<(u64, u64)> {
    let mut table = root.pa;
    for level in root.level..=3 {
        let e = *entry(mem.table(table), index(va, level));
        if e & desc::VALID == 0 {
            return None;
        }
        if !links_table(e, level) {
            if level < 2 {
                return None; // 1 GiB and 512 GiB blocks are never created here.
            }
            let offset_mask = span(level).wrapping_sub(1);
            let pa = (e & ADDRESS_MASK & !offset_mask) | (va & offset_mask);
            return Some((pa, e & !ADDRESS_MASK));
        }
        table = e & ADDRESS_MASK;
    }
    None
}

/// An identity map of the low 4 GiB in 1 GiB level-1 blocks: normal cacheable memory where
/// `ram` lies, device memory elsewhere, nothing executable from devices. The loader uses it,
/// computed at compile time, to run with caches on before any Rust code runs.
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated at compile time only: a panic here is a build error"
)]
pub const fn identity_table_4gib(ram: atoll_abi::spec::PhysRange) -> [u64; ENTRIES] {
    let mut table = [0u64; ENTRIES];
    let mut gib = 0u64;
    while gib < 4 {
        let range = atoll_abi::spec::PhysRange {
            base: gib << 30,
            size: 1 << 30,
        };
        let kind = if range.overlaps(&ram) {
            desc::ATTR_NORMAL | desc::INNER_SHAREABLE
        } else {
            desc::ATTR_DEVICE | desc::PXN
        };
        table[gib as usize] = range.base | kind | desc::AF | desc::UXN | desc::VALID;
        gib += 1;
    }
    table
}

#[cfg(any(test, feature = "host-tables"))]
extern crate std;

/// Tables in host memory, at the addresses of a table area: what the `microkit` tool
/// checks an image with, and what the host tests build into (feature `host-tables` outside
/// this crate's tests).
#[cfg(any(test, feature = "host-tables"))]
#[derive(Debug)]
pub struct HostTables {
    area: atoll_abi::spec::PhysRange,
    tables: std::vec::Vec<[u64; ENTRIES]>,
    /// What `table` hands out for an address it never allocated: an empty table whose
    /// writes go nowhere.
    spare: [u64; ENTRIES],
}

#[cfg(any(test, feature = "host-tables"))]
impl HostTables {
    /// No tables yet, in the table area `area`.
    pub fn new(area: atoll_abi::spec::PhysRange) -> Self {
        Self {
            area,
            tables: std::vec::Vec::new(),
            spare: [0; ENTRIES],
        }
    }

    /// Tables handed out so far.
    pub fn used(&self) -> usize {
        self.tables.len()
    }
}

#[cfg(any(test, feature = "host-tables"))]
impl TableMemory for HostTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let offset = (self.tables.len() as u64).checked_mul(PAGE)?;
        let pa = self.area.base.checked_add(offset)?;
        if offset.checked_add(PAGE)? > self.area.size {
            return None;
        }
        self.tables.push([0; ENTRIES]);
        Some(pa)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        let index = usize::try_from(pa.wrapping_sub(self.area.base) / PAGE).unwrap_or(usize::MAX);
        match self.tables.get_mut(index) {
            Some(table) => table,
            None => &mut self.spare,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// Room for `n` tables from `base`.
    fn tables(n: u64, base: u64) -> HostTables {
        HostTables::new(atoll_abi::spec::PhysRange {
            base,
            size: n * PAGE,
        })
    }

    #[test]
    fn pages_blocks_and_translation() {
        let mut mem = tables(16, 0x1000_0000);
        let root = Root::kernel(mem.alloc_table().unwrap());
        let kva = 0xFFFF_FFFF_8000_0000;
        map(&mut mem, root, kva, 0x4100_0000, 0x3000, attrs::EXEC).unwrap();
        map(
            &mut mem,
            root,
            0xFFFF_FF80_0000_0000,
            0x4020_0000,
            0x40_0000,
            attrs::WRITE,
        )
        .unwrap();
        let (pa, bits) = translate(&mut mem, root, kva + 0x2010).unwrap();
        assert_eq!(pa, 0x4100_2010);
        assert_eq!(bits & desc::PXN, 0);
        assert_ne!(bits & desc::READ_ONLY, 0);
        let (pa, bits) = translate(&mut mem, root, 0xFFFF_FF80_0030_0008).unwrap();
        assert_eq!(pa, 0x4050_0008);
        assert_ne!(bits & desc::PXN, 0);
        assert_eq!(bits & desc::READ_ONLY, 0);
        assert_eq!(translate(&mut mem, root, kva + 0x3000), None);
        // Two 2 MiB blocks and 3 pages: root, L2 x2, L3 x1.
        assert_eq!(mem.used(), 4);
    }

    #[test]
    fn overlap_and_misalignment_are_errors() {
        let mut mem = tables(8, 0);
        let root = Root::user(mem.alloc_table().unwrap());
        map(
            &mut mem,
            root,
            0x20_0000,
            0x20_0000,
            0x20_0000,
            attrs::WRITE,
        )
        .unwrap();
        assert_eq!(
            map(&mut mem, root, 0x20_1000, 0x9000, 0x1000, 0),
            Err(MapError::AlreadyMapped { va: 0x20_1000 })
        );
        assert_eq!(
            map(&mut mem, root, 0x1001, 0, 0x1000, 0),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0x1000, 0, 0, 0),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, !0xFFF, 0, 0x2000, 0),
            Err(MapError::Overflow)
        );
    }

    #[test]
    fn user_space_is_one_tib_in_four_levels() {
        let mut mem = tables(16, 0x1000_0000);
        let root = Root::user(mem.alloc_table().unwrap());
        // At 512 GiB, where a 39-bit space ends: a 2 MiB block and a page.
        map(&mut mem, root, 1 << 39, 0x4020_0000, 0x20_0000, attrs::USER).unwrap();
        map(
            &mut mem,
            root,
            (1 << 39) + 0x40_0000,
            0x4100_0000,
            0x1000,
            attrs::USER | attrs::WRITE,
        )
        .unwrap();
        // Root, level 1, level 2 and level 3.
        assert_eq!(mem.used(), 4);
        // The top page, where the IPC buffer goes.
        map(&mut mem, root, (1 << 40) - 0x1000, 0x4200_0000, 0x1000, 0).unwrap();
        // The same level-1 table (the second 512 GiB); a new level 2 and level 3.
        assert_eq!(mem.used(), 6);
        let root_table = *mem.table(root.pa());
        assert!(root_table[2..].iter().all(|&e| e == 0));
        assert_eq!(
            translate(&mut mem, root, (1 << 39) + 0x1_2345).map(|t| t.0),
            Some(0x4021_2345)
        );
        assert_eq!(
            translate(&mut mem, root, (1 << 40) - 8).map(|t| t.0),
            Some(0x4200_0FF8)
        );
        assert_eq!(translate(&mut mem, root, 1 << 40), None);
        // Nothing at or above 1 TiB, and nothing that runs into it.
        assert_eq!(
            map(&mut mem, root, 1 << 40, 0, 0x1000, 0),
            Err(MapError::Overflow)
        );
        assert_eq!(
            map(&mut mem, root, (1 << 40) - 0x1000, 0, 0x2000, 0),
            Err(MapError::Overflow)
        );
        assert_eq!(mem.used(), 6, "a refused mapping makes no table");
    }

    #[test]
    fn a_root_maps_only_its_own_half() {
        let mut mem = tables(8, 0);
        let kernel = Root::kernel(mem.alloc_table().unwrap());
        let user = Root::user(mem.alloc_table().unwrap());
        let outside = [
            (kernel, 0x20_0000),
            (kernel, 0xFFFF_FF7F_FFFF_F000),
            (user, 0xFFFF_FF80_0000_0000),
        ];
        for (root, va) in outside {
            let refused = map(&mut mem, root, va, 0, 0x1000, 0);
            assert_eq!(refused, Err(MapError::Overflow), "{va:#x}");
        }
        map(&mut mem, kernel, 0xFFFF_FF80_0000_0000, 0, 0x1000, 0).unwrap();
    }

    #[test]
    fn a_block_on_the_walk_stops_a_mapping_before_any_write() {
        let mut mem = tables(8, 0);
        let root = Root::user(mem.alloc_table().unwrap());
        map(&mut mem, root, 0x40_0000, 0x40_0000, 0x20_0000, 0).unwrap();
        let before = (mem.used(), mem.tables.clone());
        assert_eq!(
            map(&mut mem, root, 0x3F_F000, 0, 0x2000, 0),
            Err(MapError::AlreadyMapped { va: 0x40_0000 })
        );
        assert_eq!((mem.used(), mem.tables.clone()), before);
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut mem = tables(3, 0);
        let root = Root::user(mem.alloc_table().unwrap());
        assert_eq!(
            map(&mut mem, root, 0x1000, 0x1000, 0x1000, 0),
            Err(MapError::OutOfTables)
        );
    }

    #[test]
    fn identity_map_marks_ram_normal_and_the_rest_device() {
        use atoll_abi::spec::PhysRange;
        let virt = identity_table_4gib(PhysRange {
            base: 0x4000_0000,
            size: 0x4000_0000,
        });
        assert_eq!(virt[0] & 0b11100, desc::ATTR_DEVICE);
        assert_eq!(virt[1] & 0b11100, desc::ATTR_NORMAL);
        assert_eq!(virt[1] & ADDRESS_MASK, 0x4000_0000);
        assert_eq!(
            virt[1] & (desc::VALID | desc::TABLE_OR_PAGE),
            desc::VALID,
            "a block, not a table"
        );
        let zynq = identity_table_4gib(PhysRange {
            base: 0,
            size: 0x8000_0000,
        });
        assert_eq!(zynq[0] & 0b11100, desc::ATTR_NORMAL);
        assert_eq!(zynq[3] & 0b11100, desc::ATTR_DEVICE);
        assert_ne!(zynq[3] & desc::PXN, 0);
        assert!(virt[4..].iter().all(|&d| d == 0));
    }

    #[test]
    fn user_mappings_are_user_only_and_w_xor_x() {
        let text = descriptor_bits(attrs::USER | attrs::EXEC);
        assert_ne!(text & desc::USER, 0);
        assert_ne!(text & desc::PXN, 0, "the kernel never executes user memory");
        assert_eq!(text & desc::UXN, 0);
        assert_ne!(text & desc::READ_ONLY, 0);
        let data = descriptor_bits(attrs::USER | attrs::WRITE | attrs::EXEC);
        assert_ne!(
            data & desc::UXN,
            0,
            "writable user memory is never executable"
        );
        assert_eq!(data & desc::READ_ONLY, 0);
        assert_ne!(data & desc::NOT_GLOBAL, 0);
        assert_eq!(
            descriptor_bits(attrs::WRITE) & desc::USER,
            0,
            "kernel mappings stay kernel-only"
        );
    }

    #[test]
    fn device_memory_is_never_executable() {
        let bits = descriptor_bits(attrs::DEVICE | attrs::EXEC | attrs::WRITE);
        assert_ne!(bits & desc::PXN, 0);
        assert_eq!(bits & 0b11100, desc::ATTR_DEVICE);
    }

    proptest::proptest! {
        /// Every page of every successful mapping translates to where it was mapped, and
        /// a failed mapping is reported rather than merged.
        #[test]
        fn mappings_translate_back(ranges in proptest::collection::vec((0u64..64, 1u64..700, 0u64..64), 1..8)) {
            let mut mem = tables(64, 0x8000_0000);
            let root = Root::kernel(mem.alloc_table().unwrap());
            let mut done: std::vec::Vec<(u64, u64, u64)> = std::vec::Vec::new();
            for (vslot, pages, pslot) in ranges {
                let va = 0xFFFF_FFC0_0000_0000 + vslot * 0x10_0000;
                let pa = 0x4000_0000 + pslot * 0x10_0000;
                let size = pages * PAGE;
                let overlaps = done.iter().any(|&(v, _, s)| va < v + s && v < va + size);
                match map(&mut mem, root, va, pa, size, attrs::WRITE) {
                    Ok(()) => { proptest::prop_assert!(!overlaps); done.push((va, pa, size)); }
                    Err(MapError::AlreadyMapped { .. }) => proptest::prop_assert!(overlaps),
                    Err(e) => proptest::prop_assert!(false, "unexpected {:?}", e),
                }
            }
            for (va, pa, size) in done {
                for page in (0..size).step_by(PAGE as usize * 7) {
                    proptest::prop_assert_eq!(translate(&mut mem, root, va + page).map(|t| t.0), Some(pa + page));
                }
            }
        }
    }
}
