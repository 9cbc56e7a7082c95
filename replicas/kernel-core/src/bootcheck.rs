//! What the kernel checks before it hands its initialiser the boot program and the untyped
//! memory the program lists.
//!
//! The tool writes the boot program and the loader places it, but neither is trusted with
//! the replica's memory: the kernel refuses a program it cannot map, and hands out only
//! untyped memory that no other owner has a claim on. These are the rules, apart from the
//! CPU: the aarch64 kernel reads the spec, calls them, and reports a refusal.

use atoll_abi::bootprog::{self, BootProgramError, Untyped, untyped_flags};
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::spec::PhysRange;
use atoll_abi::syscall::initial;

/// The most untyped blocks the initialiser can receive: the slots of its root CNode from
/// `FIRST_UNTYPED` up to `FIRST_FREE`.
pub const MAX_UNTYPED: usize = (initial::FIRST_FREE - initial::FIRST_UNTYPED) as usize;

/// Where the boot program lies in the replica's RAM (`ram_base + offset`, `size` bytes), if
/// the spec names one (`size` is not 0). The spec check already keeps it inside the RAM
/// and 8-byte aligned; the kernel maps it whole pages at a time, so it must start on a
/// page, and it must fit the initialiser's window for it (`bootprog::MAX_SIZE`).
pub fn program_range(
    ram_base: u64,
    offset: u64,
    size: u64,
) -> Result<Option<PhysRange>, BootProgramError> {
    if size == 0 {
        return Ok(None);
    }
    if !offset.is_multiple_of(PAGE_SIZE) || size > bootprog::MAX_SIZE {
        return Err(BootProgramError::BadField("placement"));
    }
    Ok(Some(PhysRange {
        base: ram_base.saturating_add(offset),
        size,
    }))
}

/// The memory an untyped block covers. The blocks come from a parsed boot program
/// (`BootProgram::untyped`), whose parser refuses sizes outside 12 to 47 bits.
pub fn untyped_range(u: &Untyped) -> PhysRange {
    PhysRange {
        base: u.base,
        size: 1u64.wrapping_shl(u.size_bits),
    }
}

/// Why the kernel refuses a boot program's untyped list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UntypedRefusal {
    /// More blocks than the initialiser has slots for ([`MAX_UNTYPED`]).
    TooMany,
    /// The block at this base is not the replica's to hand out, or overlaps an earlier one.
    NotAllowed(u64),
}

/// The memory an untyped block may and may not cover.
#[derive(Clone, Copy, Debug)]
pub struct UntypedRules {
    /// The replica's RAM.
    pub ram: PhysRange,
    /// The end of the kernel's boot objects (the initialiser's CNode, TCB, tables and
    /// stack): RAM below it is the kernel's.
    pub kernel_end: u64,
    /// The boot program (size 0 when there is none).
    pub program: PhysRange,
    /// The kernel-to-kernel shared area.
    pub shared: PhysRange,
}

impl UntypedRules {
    /// Whether one block may be handed out: inside the replica's RAM past the kernel's boot
    /// objects, or, for device memory, wholly outside the RAM and the shared area; never
    /// over the boot program. The one exception in the shared area is its status page,
    /// exactly, as read-only device memory: user space may read the replicas' status
    /// records, never write them or reach the doorbells and logs after them.
    pub fn allows(&self, u: &Untyped) -> bool {
        let block = untyped_range(u);
        let in_ram = self.ram.contains(&block) && block.base >= self.kernel_end;
        let is_device = u.flags & untyped_flags::DEVICE != 0;
        let device = is_device && !self.ram.overlaps(&block) && !self.shared.overlaps(&block);
        let status_page = is_device
            && u.flags & untyped_flags::READ_ONLY != 0
            && block.base == self.shared.base
            && block.size == atoll_abi::shared::STATUS_PAGE_BYTES;
        (in_ram || device || status_page) && !self.program.overlaps(&block)
    }

    /// Checks a whole untyped list: no more than [`MAX_UNTYPED`] blocks, each allowed, none
    /// overlapping an earlier one. Returns their total size in bytes.
    ///
    /// The tool lists blocks in a few ascending runs (the kept ranges, then the rest of the
    /// RAM in address order), so the check follows runs: a block that starts at or past the
    /// end of the one before it extends the current run, and lies clear of every block of
    /// that run, which all end at or below the previous one's end; it is compared only
    /// with the blocks before the run. Any other block starts a run and is compared with
    /// every block before it. The answer is that of comparing every pair, in about a third
    /// of the comparisons for a tool-written list.
    pub fn check(&self, blocks: &[Untyped]) -> Result<u64, UntypedRefusal> {
        if blocks.len() > MAX_UNTYPED {
            return Err(UntypedRefusal::TooMany);
        }
        let mut total = 0u64;
        let mut run_start = 0;
        let mut run_end = 0;
        for (i, u) in blocks.iter().enumerate() {
            let block = untyped_range(u);
            if i == 0 || block.base < run_end {
                run_start = i;
            }
            run_end = block.end();
            let before = blocks.get(..run_start).unwrap_or_default();
            if !self.allows(u) || before.iter().any(|o| untyped_range(o).overlaps(&block)) {
                return Err(UntypedRefusal::NotAllowed(u.base));
            }
            total = total.saturating_add(block.size);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const MIB: u64 = 1 << 20;
    const RAM: PhysRange = PhysRange {
        base: 0x4000_0000,
        size: 48 * MIB,
    };
    /// Kernel, spec and boot objects take the first 2 MiB; the program sits at 16 MiB.
    const RULES: UntypedRules = UntypedRules {
        ram: RAM,
        kernel_end: RAM.base + 2 * MIB,
        program: PhysRange {
            base: RAM.base + 16 * MIB,
            size: 0x3000,
        },
        shared: PhysRange {
            base: 0x3000_0000,
            size: MIB,
        },
    };

    fn ram(base: u64, size_bits: u32) -> Untyped {
        Untyped {
            base,
            size_bits,
            flags: 0,
        }
    }

    fn device(base: u64, size_bits: u32) -> Untyped {
        Untyped {
            flags: untyped_flags::DEVICE,
            ..ram(base, size_bits)
        }
    }

    #[test]
    fn ram_past_the_boot_objects_is_handed_out() {
        let blocks = [ram(RAM.base + 2 * MIB, 21), ram(RAM.base + 4 * MIB, 22)];
        assert_eq!(RULES.check(&blocks), Ok(2 * MIB + 4 * MIB));
    }

    #[test]
    fn the_kernels_own_ram_is_refused() {
        // The boot objects lie below `kernel_end`, even though the block is in the RAM.
        assert!(!RULES.allows(&ram(RAM.base, 21)));
        assert!(!RULES.allows(&ram(RAM.base + MIB, 20)));
        // Marking it device memory does not help: it is still the replica's RAM.
        assert!(!RULES.allows(&device(RAM.base, 21)));
    }

    #[test]
    fn ram_blocks_must_lie_wholly_inside_the_replica() {
        // Starts inside the RAM and ends past it.
        assert!(!RULES.allows(&ram(RAM.base + 32 * MIB, 25)));
        assert!(!RULES.allows(&ram(RAM.end(), 12)));
        // An ordinary block outside the RAM is another replica's memory.
        assert!(!RULES.allows(&ram(0x8000_0000, 21)));
    }

    #[test]
    fn device_memory_outside_the_ram_and_the_shared_area_is_handed_out() {
        assert!(RULES.allows(&device(0x0900_0000, 12)));
        // The shared area, or a block covering part of it, is the kernels'.
        assert!(!RULES.allows(&device(0x3000_0000, 12)));
        assert!(!RULES.allows(&device(0x2000_0000, 29)));
        // Covering the RAM and more.
        assert!(!RULES.allows(&device(0x4000_0000, 27)));
    }

    #[test]
    fn the_status_page_alone_is_handed_out_and_only_read_only() {
        let status = Untyped {
            flags: untyped_flags::DEVICE | untyped_flags::READ_ONLY,
            ..device(0x3000_0000, 12)
        };
        assert!(RULES.allows(&status));
        // Not without the read-only flag, not as ordinary memory, not larger, not the
        // doorbells' page after it.
        assert!(!RULES.allows(&device(0x3000_0000, 12)));
        assert!(!RULES.allows(&Untyped {
            flags: untyped_flags::READ_ONLY,
            ..status
        }));
        assert!(!RULES.allows(&Untyped {
            size_bits: 13,
            ..status
        }));
        assert!(!RULES.allows(&Untyped {
            base: 0x3000_1000,
            ..status
        }));
    }

    #[test]
    fn no_block_covers_the_boot_program() {
        assert!(!RULES.allows(&ram(RAM.base + 16 * MIB, 12)));
        assert!(!RULES.allows(&ram(RAM.base + 16 * MIB, 24)));
        // The page after it is free.
        assert!(RULES.allows(&ram(RULES.program.end(), 12)));
        // Without a program, the same page is free.
        let none = UntypedRules {
            program: PhysRange { base: 0, size: 0 },
            ..RULES
        };
        assert!(none.allows(&ram(RAM.base + 16 * MIB, 12)));
    }

    #[test]
    fn an_overlapping_block_is_refused_by_its_base_and_the_first_one_stands() {
        let first = ram(RAM.base + 4 * MIB, 22);
        let inside = ram(RAM.base + 5 * MIB, 20);
        assert_eq!(
            RULES.check(&[first, inside]),
            Err(UntypedRefusal::NotAllowed(inside.base))
        );
        // The same block twice.
        assert_eq!(
            RULES.check(&[first, first]),
            Err(UntypedRefusal::NotAllowed(first.base))
        );
        // Adjacent blocks share no byte.
        assert!(RULES.check(&[first, ram(RAM.base + 8 * MIB, 22)]).is_ok());
    }

    #[test]
    fn the_first_refused_block_is_the_one_reported() {
        let blocks = [
            ram(RAM.base + 2 * MIB, 21),
            ram(RAM.base, 12),
            device(0x3000_0000, 12),
        ];
        assert_eq!(
            RULES.check(&blocks),
            Err(UntypedRefusal::NotAllowed(RAM.base))
        );
    }

    #[test]
    fn the_rules_only_see_sizes_of_12_to_47_bits() {
        // The blocks come from a parsed program, and the parser refuses other sizes.
        let parse = |u: Untyped| {
            let mut bytes = Vec::new();
            bootprog::write(&mut bytes, (0, 0), 256, &[u], &[], &[]);
            bootprog::BootProgram::parse(&bytes).map(|p| p.untyped().len())
        };
        let refused = Err(BootProgramError::BadField("untyped block"));
        assert_eq!(parse(device(0x0900_0000, 11)), refused);
        assert_eq!(parse(device(0, 48)), refused);
        assert_eq!(parse(device(0, 64)), refused);
        assert_eq!(parse(device(0, 47)), Ok(1));
        assert_eq!(untyped_range(&device(0, 47)).size, 1 << 47);
    }

    #[test]
    fn the_initialisers_slots_bound_the_list() {
        assert_eq!(MAX_UNTYPED, 240);
        let blocks: Vec<Untyped> = (0..MAX_UNTYPED as u64)
            .map(|i| device(0x1_0000_0000 + (i << 12), 12))
            .collect();
        assert_eq!(RULES.check(&blocks), Ok(MAX_UNTYPED as u64 * 4096));
        let mut more = blocks.clone();
        more.push(device(0x2_0000_0000, 12));
        assert_eq!(RULES.check(&more), Err(UntypedRefusal::TooMany));
        // Too many is refused before any block is looked at.
        more.insert(0, ram(RAM.base, 12));
        assert_eq!(RULES.check(&more), Err(UntypedRefusal::TooMany));
    }

    /// Every pair compared, as the rule reads.
    fn naive(rules: &UntypedRules, blocks: &[Untyped]) -> Result<u64, UntypedRefusal> {
        let mut total = 0u64;
        for (i, u) in blocks.iter().enumerate() {
            let block = untyped_range(u);
            if !rules.allows(u)
                || blocks[..i]
                    .iter()
                    .any(|o| untyped_range(o).overlaps(&block))
            {
                return Err(UntypedRefusal::NotAllowed(u.base));
            }
            total += block.size;
        }
        Ok(total)
    }

    proptest::proptest! {
        /// Following runs gives the answer of comparing every pair, for lists in any
        /// order: ascending runs, repeats, overlaps inside and across runs, device and RAM
        /// blocks mixed.
        #[test]
        fn following_runs_agrees_with_comparing_every_pair(
            picks in proptest::collection::vec((0u64..48, 12u32..16, proptest::bool::ANY), 0..24)
        ) {
            // Blocks on a 4 KiB grid across the RAM past the boot objects, and device
            // blocks below the shared area, each naturally aligned.
            let blocks: Vec<Untyped> = picks
                .iter()
                .map(|&(page, bits, dev)| {
                    let base = if dev { 0x0900_0000 } else { RULES.kernel_end } + (page << 12);
                    let base = base & !((1u64 << bits) - 1);
                    if dev { device(base, bits) } else { ram(base, bits) }
                })
                .collect();
            proptest::prop_assert_eq!(RULES.check(&blocks), naive(&RULES, &blocks));
            let mut sorted = blocks.clone();
            sorted.sort_by_key(|u| u.base);
            proptest::prop_assert_eq!(RULES.check(&sorted), naive(&RULES, &sorted));
        }
    }

    #[test]
    fn a_block_overlapping_an_earlier_run_is_found_after_a_new_run_starts() {
        // Run 1: two device blocks; run 2: RAM blocks ascending; then a device block
        // ascending from the RAM's end is fine, but one inside run 1 is refused.
        let first = device(0x0900_0000, 12);
        let blocks = [
            first,
            device(0x0900_1000, 12),
            ram(RAM.base + 2 * MIB, 21),
            ram(RAM.base + 4 * MIB, 22),
            device(0x8000_0000, 12),
        ];
        assert!(RULES.check(&blocks).is_ok());
        let mut bad = blocks;
        bad[4] = device(0x0900_1000, 12);
        assert_eq!(
            RULES.check(&bad),
            Err(UntypedRefusal::NotAllowed(0x0900_1000))
        );
        // Within a run a repeat does not extend the run, so it is caught.
        bad[4] = ram(RAM.base + 4 * MIB, 22);
        assert_eq!(
            RULES.check(&bad),
            Err(UntypedRefusal::NotAllowed(RAM.base + 4 * MIB))
        );
    }

    #[test]
    fn an_empty_list_hands_out_nothing() {
        assert_eq!(RULES.check(&[]), Ok(0));
    }

    #[test]
    fn the_program_must_start_on_a_page_and_fit_its_window() {
        assert_eq!(program_range(RAM.base, 0x1000, 0), Ok(None));
        assert_eq!(
            program_range(RAM.base, 16 * MIB, 0x2008),
            Ok(Some(PhysRange {
                base: RAM.base + 16 * MIB,
                size: 0x2008
            }))
        );
        let placement = Err(BootProgramError::BadField("placement"));
        assert_eq!(program_range(RAM.base, 16 * MIB + 8, 0x2000), placement);
        assert_eq!(
            program_range(RAM.base, 0, bootprog::MAX_SIZE + 1),
            placement
        );
        assert!(program_range(RAM.base, 0, bootprog::MAX_SIZE).is_ok());
    }
}
