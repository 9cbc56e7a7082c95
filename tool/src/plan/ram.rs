//! How a board's RAM is divided, and the allocator that hands it out.
//!
//! Physical layout of a board's RAM:
//!
//! ```text
//! ram.base                         boot stub, loader and image (board.boot_reserved)
//! ram.base + boot_reserved         kernel shared area (2 MiB)
//! ...                              shared pool, replica 0, replica 1, ... (2 MiB aligned,
//!                                  around the fixed regions inside RAM)
//! ```
//!
//! Inside a replica's RAM: the kernel's reserve ([`KERNEL_RESERVE`]: kernel, boot spec,
//! page tables, kernel stacks, initialiser), then the replica's regions and kernel objects.

use atoll_abi::limits::LARGE_PAGE_SIZE;
use atoll_abi::spec::PhysRange;
use atoll_boards::Board;

use super::RegionHome;
use crate::model::{MemoryRegion, SystemDescription};

/// Bytes at the start of every replica's RAM kept for its kernel image, boot spec and
/// boot page tables; the rest is the replica's to allocate.
pub const KERNEL_RESERVE: u64 = LARGE_PAGE_SIZE;

/// How a board's RAM is divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamSplit {
    /// The kernel-to-kernel shared area (status records, doorbells, log rings).
    pub kernel_shared: PhysRange,
    /// Memory for regions mapped by PDs of more than one replica (may be empty).
    pub shared_pool: PhysRange,
    /// Each replica's own RAM, in replica order, 2 MiB aligned.
    pub replicas: Vec<PhysRange>,
}

/// How to divide a board's RAM among replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamRequest {
    /// Per replica: its RAM in bytes (a 2 MiB multiple), or `None` for an equal share of
    /// what the explicit ones leave.
    pub shares: Vec<Option<u64>>,
    /// Bytes of regions mapped in several replicas.
    pub shared_pool: u64,
    /// RAM that belongs to no replica (regions at fixed physical addresses).
    pub reserved: Vec<PhysRange>,
}

/// How `system` divides `board`'s RAM: explicit replica shares, the pool for the regions
/// whose home is [`RegionHome::Shared`], and the fixed regions inside RAM, which belong to
/// no replica (the status page lies in the kernel shared area, outside the split).
pub fn ram_request(
    system: &SystemDescription,
    board: &Board,
    homes: &[RegionHome],
    region_size: &dyn Fn(&MemoryRegion) -> u64,
) -> RamRequest {
    let shared_pool = system
        .memory_regions
        .values()
        .zip(homes)
        .filter(|(_, home)| **home == RegionHome::Shared)
        .map(|(mr, _)| region_size(mr).next_multiple_of(mr.page_size))
        .sum();
    let reserved = system
        .memory_regions
        .values()
        .filter(|mr| !mr.status_page)
        .filter_map(|mr| {
            mr.phys_addr.map(|pa| PhysRange {
                base: pa,
                size: region_size(mr).max(mr.page_size),
            })
        })
        .filter(|r| r.overlaps(&board.ram))
        .collect();
    let shares = if system.replicas.is_empty() {
        vec![None]
    } else {
        system.replicas.values().map(|r| r.ram).collect()
    };
    RamRequest {
        shares,
        shared_pool,
        reserved,
    }
}

/// The kernel-to-kernel shared area: the first 2 MiB after the boot area.
pub fn kernel_shared_area(board: &Board) -> PhysRange {
    PhysRange {
        base: (board.ram.base + board.boot_reserved).next_multiple_of(LARGE_PAGE_SIZE),
        size: LARGE_PAGE_SIZE,
    }
}

/// RAM no region may claim: the boot stub, loader and image, and the kernel shared area.
pub fn boot_area(board: &Board) -> PhysRange {
    PhysRange {
        base: board.ram.base,
        size: kernel_shared_area(board).end() - board.ram.base,
    }
}

/// 2 MiB-aligned stretches of RAM free for the pool and the replicas.
fn free_stretches(from: u64, end: u64, reserved: &[PhysRange]) -> Vec<PhysRange> {
    let mut holes: Vec<PhysRange> = reserved.to_vec();
    holes.sort_by_key(|r| r.base);
    let mut out = Vec::new();
    let mut at = from;
    for hole in holes.iter().chain([&PhysRange { base: end, size: 0 }]) {
        let stop = (hole.base & !(LARGE_PAGE_SIZE - 1)).min(end);
        let start = at.next_multiple_of(LARGE_PAGE_SIZE);
        if stop > start {
            out.push(PhysRange {
                base: start,
                size: stop - start,
            });
        }
        at = at.max(hole.end());
    }
    out
}

/// Takes `size` bytes from the first stretch that holds them.
fn take(stretches: &mut [PhysRange], size: u64) -> Option<PhysRange> {
    let s = stretches.iter_mut().find(|s| s.size >= size)?;
    let got = PhysRange { base: s.base, size };
    s.base += size;
    s.size -= size;
    Some(got)
}

/// Divides `board`'s RAM: boot area, kernel shared area, then, around reserved ranges, a
/// pool for cross-replica regions and one contiguous, 2 MiB-aligned share per replica
/// (explicit sizes as asked, the rest equal). How many replicas there may be is checked
/// with the description (`crate::validate::replicas`).
pub fn split_ram(board: &Board, request: &RamRequest) -> Result<RamSplit, String> {
    let kernel_shared = kernel_shared_area(board);
    let boot = boot_area(board);
    for r in &request.reserved {
        if r.overlaps(&boot) {
            return Err(format!(
                "a fixed region at {:#x} overlaps the memory Atoll boots from ({:#x}-{:#x})",
                r.base,
                boot.base,
                boot.end()
            ));
        }
    }
    let mut stretches = free_stretches(kernel_shared.end(), board.ram.end(), &request.reserved);
    let pool_size = request.shared_pool.next_multiple_of(LARGE_PAGE_SIZE);
    let shared_pool = if pool_size == 0 {
        PhysRange {
            base: kernel_shared.end(),
            size: 0,
        }
    } else {
        take(&mut stretches, pool_size)
            .ok_or_else(|| format!("no room for {} KiB of shared regions", pool_size >> 10))?
    };
    for (i, share) in request.shares.iter().enumerate() {
        if let Some(size) = share
            && (*size <= KERNEL_RESERVE || !size.is_multiple_of(LARGE_PAGE_SIZE))
        {
            return Err(format!(
                "replica {i}: RAM {size:#x} must be a multiple of 2 MiB above {KERNEL_RESERVE:#x}"
            ));
        }
    }
    let replicas = replica_shares(board, request, &stretches)?;
    Ok(RamSplit {
        kernel_shared,
        shared_pool,
        replicas,
    })
}

/// One share per replica from `stretches`: explicit sizes as asked, the rest equal.
fn replica_shares(
    board: &Board,
    request: &RamRequest,
    stretches: &[PhysRange],
) -> Result<Vec<PhysRange>, String> {
    let count = request.shares.len();
    let explicit: u64 = request.shares.iter().flatten().sum();
    let implicit = request.shares.iter().filter(|s| s.is_none()).count() as u64;
    let free: u64 = stretches.iter().map(|s| s.size).sum();
    // An equal share that fits: start from the ideal and shrink until every replica finds a
    // contiguous stretch (reserved ranges can fragment RAM).
    let mut share = free
        .saturating_sub(explicit)
        .checked_div(implicit)
        .unwrap_or(0)
        & !(LARGE_PAGE_SIZE - 1);
    loop {
        if implicit > 0 && share <= KERNEL_RESERVE {
            return Err(format!(
                "{} has too little RAM for {count} replicas ({} KiB free after the boot area, shared regions and explicit shares)",
                board.name,
                free.saturating_sub(explicit) >> 10
            ));
        }
        let mut trial = stretches.to_vec();
        let placed: Option<Vec<PhysRange>> = request
            .shares
            .iter()
            .map(|s| take(&mut trial, s.unwrap_or(share)))
            .collect();
        match placed {
            Some(replicas) => return Ok(replicas),
            None if implicit == 0 => {
                return Err(format!(
                    "{} has too little RAM for the replicas' explicit shares",
                    board.name
                ));
            }
            None => share -= LARGE_PAGE_SIZE,
        }
    }
}

/// A bump allocator over one physical range.
pub(super) struct Bump {
    pub(super) next: u64,
    pub(super) end: u64,
}

impl Bump {
    /// Over `range`.
    pub(super) fn over(range: PhysRange) -> Self {
        Self {
            next: range.base,
            end: range.end(),
        }
    }

    /// `size` bytes aligned to `align`, if they fit.
    pub(super) fn take(&mut self, size: u64, align: u64) -> Option<u64> {
        let at = self.next.checked_next_multiple_of(align)?;
        let end = at.checked_add(size)?;
        (end <= self.end).then(|| {
            self.next = end;
            at
        })
    }

    /// Bytes not handed out.
    pub(super) fn left(&self) -> u64 {
        self.end.saturating_sub(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_refused_with_reasons() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let ram = |shares: Vec<Option<u64>>, pool: u64, reserved: Vec<PhysRange>| RamRequest {
            shares,
            shared_pool: pool,
            reserved,
        };
        assert!(
            split_ram(board, &ram(vec![None; 3], 0x4000_0000, vec![]))
                .unwrap_err()
                .contains("no room")
        );
        assert!(
            split_ram(board, &ram(vec![None; 3], 0x3E80_0000, vec![]))
                .unwrap_err()
                .contains("too little RAM")
        );
        let split = split_ram(board, &ram(vec![None; 2], 0x30_0000, vec![])).unwrap();
        assert_eq!(split.shared_pool.size, 0x40_0000, "pool rounded to 2 MiB");
        assert!(!split.shared_pool.overlaps(&split.replicas[0]));
        assert!(!split.shared_pool.overlaps(&split.kernel_shared));
    }

    #[test]
    fn explicit_shares_and_reserved_ranges() {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let hole = PhysRange {
            base: 0x5000_1000,
            size: 0x3000,
        };
        let request = RamRequest {
            shares: vec![Some(0x400_0000), None, None],
            shared_pool: 0,
            reserved: vec![hole],
        };
        let split = split_ram(board, &request).unwrap();
        assert_eq!(split.replicas[0].size, 0x400_0000, "explicit share kept");
        assert_eq!(
            split.replicas[1].size, split.replicas[2].size,
            "the rest split equally"
        );
        for (i, r) in split.replicas.iter().enumerate() {
            assert!(!r.overlaps(&hole), "replica {i} covers the reserved range");
            assert_eq!(r.base % LARGE_PAGE_SIZE, 0);
            assert!(board.ram.contains(r));
            for other in &split.replicas[i + 1..] {
                assert!(!r.overlaps(other));
            }
        }
        let boot = RamRequest {
            shares: vec![None],
            shared_pool: 0,
            reserved: vec![PhysRange {
                base: 0x4000_1000,
                size: 0x1000,
            }],
        };
        assert!(
            split_ram(board, &boot)
                .unwrap_err()
                .contains("overlaps the memory Atoll boots from")
        );
        let odd = RamRequest {
            shares: vec![Some(0x30_0000)],
            shared_pool: 0,
            reserved: vec![],
        };
        assert!(
            split_ram(board, &odd)
                .unwrap_err()
                .contains("multiple of 2 MiB")
        );
        let greedy = RamRequest {
            shares: vec![Some(0x8000_0000)],
            shared_pool: 0,
            reserved: vec![],
        };
        assert!(
            split_ram(board, &greedy)
                .unwrap_err()
                .contains("explicit shares")
        );
    }
}
