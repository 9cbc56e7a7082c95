//! Where each memory region's memory comes from, and where it is placed.

use atoll_abi::spec::PhysRange;
use atoll_boards::Board;

use super::ram::Bump;
use super::{RegionHome, RegionPlan, error};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{Prefill, SystemDescription};

/// Each region's home, in document order.
pub(super) fn homes(system: &SystemDescription, board: &Board) -> Vec<RegionHome> {
    system
        .memory_regions
        .values()
        .map(|mr| match (mr.phys_addr, mr.replicas.as_slice()) {
            (Some(_), _) if mr.status_page => RegionHome::Status,
            (Some(pa), _)
                if PhysRange {
                    base: pa,
                    size: mr.page_size,
                }
                .overlaps(&board.ram) =>
            {
                RegionHome::FixedRam
            }
            (Some(_), _) => RegionHome::Device,
            (None, []) => RegionHome::Unused,
            (None, [one]) => RegionHome::Replica(system.replicas[*one].name.clone()),
            (None, _) => RegionHome::Shared,
        })
        .collect()
}

/// Places the shared regions in `pool` and each replica's own regions after its kernel's
/// reserve; regions at fixed addresses keep them. Returns each region's address.
pub(super) fn place(
    system: &SystemDescription,
    homes: &[RegionHome],
    sizes: &[u64],
    pool: &mut Bump,
    replica_ram: &mut [Bump],
    errors: &mut Vec<Diagnostic>,
) -> Vec<Option<u64>> {
    let mut region_addr: Vec<Option<u64>> = system
        .memory_regions
        .values()
        .map(|mr| mr.phys_addr)
        .collect();
    // Large pages first so small ones do not fragment the 2 MiB alignment.
    let mut order: Vec<usize> = (0..system.memory_regions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(system.memory_regions[i].page_size));
    for i in order {
        let mr = &system.memory_regions[i];
        let size = sizes[i].next_multiple_of(mr.page_size).max(mr.page_size);
        let placed = match &homes[i] {
            RegionHome::Shared => pool.take(size, mr.page_size),
            RegionHome::Replica(_) => replica_ram[mr.replicas[0]].take(size, mr.page_size),
            RegionHome::Device | RegionHome::FixedRam | RegionHome::Status | RegionHome::Unused => {
                continue;
            }
        };
        match placed {
            Some(pa) => region_addr[i] = Some(pa),
            None => errors.push(error(
                Code::OutOfMemory,
                mr.span,
                format!(
                    "not enough RAM to place memory region '{}' ({size:#x} bytes)",
                    mr.name
                ),
            )),
        }
    }
    region_addr
}

/// The planned regions, in document order.
pub(super) fn plans(
    system: &SystemDescription,
    homes: &[RegionHome],
    sizes: &[u64],
    region_addr: &[Option<u64>],
) -> Vec<RegionPlan> {
    system
        .memory_regions
        .values()
        .enumerate()
        .map(|(i, mr)| RegionPlan {
            name: mr.name.clone(),
            size: sizes[i],
            page_size: mr.page_size,
            phys_addr: region_addr[i],
            home: homes[i].clone(),
            prefill: match &mr.prefill {
                Some(Prefill::File(path)) => Some(path.clone()),
                Some(Prefill::DeviceTree) => Some("<device tree>".into()),
                None => None,
            },
        })
        .collect()
}
