//! Everything the loader decides about an image before it starts a replica, in one check
//! that the `microkit` tool runs on every image it writes: an image the tool writes is never
//! one the loader refuses.
//!
//! [`check`] applies the layout rules of [`atoll_abi::placement`] (the memory the firmware
//! reports included: [`Machine::memory`]), then ([`prepare`]), replica by replica,
//! puts the machine's interrupt controller in the spec ([`use_gic`]), builds the kernel page
//! tables the spec asks for with [`pagetable`], finds the spec in the kernel's mappings, and
//! checks that the GIC has every interrupt the replica routes; last, it finds the replica
//! the boot core belongs to. The tables are built in memory the caller
//! hands over for each replica's table area: the loader hands over the area itself, so the
//! tables the check built are the ones the replica runs on; the tool hands over plain host
//! memory at the same addresses.
//!
//! The placement rules live in `atoll-abi`, which cannot use the page-table builder here;
//! this crate depends on `atoll-abi` and is host-tested, so the whole check sits here.

use atoll_abi::image::Part;
use atoll_abi::limits::MAX_REPLICAS;
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::placement::{self, GicDevice, Machine, Placement, PlacementError, Specs};
use atoll_abi::spec::{DeviceWindow, PhysRange, ReplicaSpec, attrs};

use crate::pagetable::{self, MapError, Root, TableMemory};

/// Why the loader would refuse an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The layout breaks a placement rule.
    Placement(PlacementError),
    /// A replica's kernel page tables cannot be built from its spec.
    Tables {
        /// The replica.
        replica: u32,
        /// Why.
        error: MapError,
    },
}

impl From<PlacementError> for LoadError {
    fn from(e: PlacementError) -> Self {
        Self::Placement(e)
    }
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Placement(e) => write!(f, "{e}"),
            Self::Tables { replica, error } => write!(
                f,
                "replica {replica}: cannot build kernel page tables: {error:?}"
            ),
        }
    }
}

fn refuse(why: &'static str, replica: u32) -> LoadError {
    LoadError::Placement(PlacementError::Replica { replica, why })
}

/// What the loader needs to start one replica, besides its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaStart {
    /// Root of the identity map of the loader's code (TTBR0).
    pub ttbr0: u64,
    /// Root of the kernel's tables (TTBR1).
    pub ttbr1: u64,
    /// The spec's kernel virtual address, the kernel's first argument.
    pub spec_va: u64,
}

/// Each replica's start, by replica index.
pub type Starts = [Option<ReplicaStart>; MAX_REPLICAS];

/// Checks an image's parts on `machine` as [`placement::check`] does (filling `specs`,
/// which must start empty), and then everything else the loader needs of it, filling
/// `starts` (a table the caller owns, as `specs` is: the loader keeps its tables small and
/// unmoved). Each spec in `specs` is left describing `machine.gic` ([`use_gic`]), as the
/// loader writes it for the kernel. `tables` gives the memory for one replica's table area
/// (the physical range it is handed).
pub fn check<'a, I, M: TableMemory>(
    machine: &Machine,
    parts: impl Fn() -> I,
    specs: &mut Specs,
    starts: &mut Starts,
    tables: impl FnMut(PhysRange) -> M,
) -> Result<Placement<'a>, LoadError>
where
    I: Iterator<Item = Part<'a>>,
{
    let placement = placement::check(machine, parts, specs)?;
    prepare(machine, &placement, specs, starts, tables)?;
    Ok(placement)
}

/// The rest of [`check`] once [`placement::check`] has passed, with its `placement` and the
/// `specs` it filled: each replica's GIC, interrupts, spec address and kernel page tables
/// (written through `tables`), then the boot core. The loader runs the two steps apart, so
/// that it writes nothing outside its own range (the tables) before the placement rules,
/// the firmware's memory included, have passed, and can do what must come first in between
/// (filling `prefill_bootinfo="fdt"` regions while the firmware's device tree is intact).
pub fn prepare<M: TableMemory>(
    machine: &Machine,
    placement: &Placement<'_>,
    specs: &mut Specs,
    starts: &mut Starts,
    mut tables: impl FnMut(PhysRange) -> M,
) -> Result<(), LoadError> {
    let mut boot_core_found = false;
    // `placement::check` proved the specs of replicas `0..count` present, and no others.
    for (entry, start) in specs
        .iter_mut()
        .zip(starts.iter_mut())
        .take(placement.count)
    {
        let Some((spec, spec_offset)) = entry else {
            continue;
        };
        *start = Some(prepare_replica(machine, spec, *spec_offset, &mut tables)?);
        boot_core_found |= spec.core_mask.checked_shr(machine.boot_core).unwrap_or(0) & 1 != 0;
    }
    if !boot_core_found {
        return Err(refuse("boot core belongs to no replica", 0));
    }
    Ok(())
}

/// [`prepare`]'s work for one replica: its GIC, interrupts, spec address and kernel page
/// tables (written through `tables`, into its table area alone). The loader's restart path
/// runs it for the replica it places again, and writes nothing of the others'.
pub fn prepare_replica<M: TableMemory>(
    machine: &Machine,
    spec: &mut ReplicaSpec,
    spec_offset: u64,
    tables: &mut impl FnMut(PhysRange) -> M,
) -> Result<ReplicaStart, LoadError> {
    let replica = spec.replica;
    use_gic(spec, &machine.gic)?;
    check_routes(machine, spec)?;
    let spec_va = spec_va(spec, spec_offset)?;
    let (ttbr0, ttbr1) = build_tables(&mut tables(table_area(spec)), spec, machine)
        .map_err(|error| LoadError::Tables { replica, error })?;
    Ok(ReplicaStart {
        ttbr0,
        ttbr1,
        spec_va,
    })
}

/// The replica's page-table area (inside its RAM, as the placement rules proved).
pub fn table_area(spec: &ReplicaSpec) -> PhysRange {
    PhysRange {
        base: spec.ram.base.saturating_add(spec.tables_offset),
        size: spec.tables_size,
    }
}

/// Puts the machine's interrupt controller `gic` in the spec, if the spec describes another:
/// the `microkit` tool plans every image for the board's GIC, and on a machine that has the
/// board's alternative instead (QEMU `virt`'s default GICv2) the loader found that one. Each
/// register window that differs moves to `gic`'s registers at the same virtual address, and
/// so does the kernel mapping of it, which must be there, a device mapping of exactly that
/// window; whether the moved mappings still fit is for the page-table build to find.
pub fn use_gic(spec: &mut ReplicaSpec, gic: &GicDevice) -> Result<(), LoadError> {
    let replica = spec.replica;
    let mut windows = [spec.gic.distributor, spec.gic.cpu];
    for (window, registers) in windows.iter_mut().zip([gic.distributor, gic.cpu]) {
        if window.pa == registers.base && window.size == registers.size {
            continue;
        }
        let mapping = spec
            .mappings_mut()
            .iter_mut()
            .find(|m| {
                m.va == window.va
                    && m.pa == window.pa
                    && m.attrs & attrs::DEVICE != 0
                    && Some(m.size) == window.size.checked_next_multiple_of(PAGE_SIZE)
            })
            .ok_or(refuse(
                "the interrupt controller's registers are not mapped as the spec says",
                replica,
            ))?;
        let size = registers
            .size
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(refuse(
                "the machine's interrupt controller is too large",
                replica,
            ))?;
        mapping.pa = registers.base;
        mapping.size = size;
        *window = DeviceWindow {
            pa: registers.base,
            size: registers.size,
            ..*window
        };
    }
    [spec.gic.distributor, spec.gic.cpu] = windows;
    spec.gic.version = gic.version;
    Ok(())
}

/// Every interrupt the replica routes is a shared interrupt this machine's GIC has (the
/// spec's own check keeps it a shared interrupt id routed to one of the replica's cores).
fn check_routes(machine: &Machine, spec: &ReplicaSpec) -> Result<(), LoadError> {
    if spec
        .irq_routes()
        .iter()
        .any(|r| r.intid >= machine.gic.lines)
    {
        return Err(refuse(
            "an interrupt cannot be routed (not a shared interrupt of this GIC)",
            spec.replica,
        ));
    }
    Ok(())
}

/// Where the kernel finds its spec: the spec's physical address in a kernel mapping.
fn spec_va(spec: &ReplicaSpec, spec_offset: u64) -> Result<u64, LoadError> {
    let pa = spec.ram.base.saturating_add(spec_offset);
    spec.mappings()
        .iter()
        .find(|m| m.pa <= pa && pa.wrapping_sub(m.pa) < m.size)
        .and_then(|m| m.va.checked_add(pa.wrapping_sub(m.pa)))
        .ok_or(refuse(
            "boot spec is not in any kernel mapping",
            spec.replica,
        ))
}

/// Builds the replica's TTBR1 tables from its spec, and a TTBR0 identity map of the loader's
/// code (the trampoline runs there while the MMU comes on, under the kernel's TCR, so the
/// TTBR0 root is a user-half root): the roots' addresses, TTBR0's and TTBR1's.
pub fn build_tables<M: TableMemory>(
    mem: &mut M,
    spec: &ReplicaSpec,
    machine: &Machine,
) -> Result<(u64, u64), MapError> {
    let ttbr1 = Root::kernel(mem.alloc_table().ok_or(MapError::OutOfTables)?);
    for m in spec.mappings() {
        pagetable::map(mem, ttbr1, m.va, m.pa, m.size, m.attrs)?;
    }
    let ttbr0 = Root::user(mem.alloc_table().ok_or(MapError::OutOfTables)?);
    let code = machine.loader_code;
    pagetable::map(mem, ttbr0, code.base, code.base, code.size, attrs::EXEC)?;
    Ok((ttbr0.pa(), ttbr1.pa()))
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    reason = "host tests"
)]
mod tests {
    extern crate std;

    use std::string::{String, ToString};
    use std::vec::Vec;

    use atoll_abi::fixture::{self, MACHINE, MIB, SPEC_OFFSET};
    use atoll_abi::image::{ALL_REPLICAS, PartEntry, PartKind};
    use atoll_abi::spec::{IrqRoute, Mapping, layout};
    use zerocopy::IntoBytes;

    use super::*;
    use crate::pagetable::HostTables;

    const KERNEL_VA: u64 = layout::KERNEL_IMAGE_BASE;
    const LINEAR_VA: u64 = layout::LINEAR_MAP_BASE;

    /// Replica `replica` of `count`, its kernel's first 2 MiB mapped at the kernel's address
    /// and the rest of its RAM linearly.
    fn spec(replica: u32, count: u32) -> ReplicaSpec {
        let mut spec = fixture::spec(replica, count);
        let ram = spec.ram;
        spec.mappings[0] = Mapping {
            va: KERNEL_VA,
            pa: ram.base,
            size: 2 * MIB,
            attrs: attrs::EXEC,
        };
        spec.mappings[1] = Mapping {
            va: LINEAR_VA,
            pa: ram.base + 2 * MIB,
            size: ram.size - 2 * MIB,
            attrs: attrs::WRITE,
        };
        spec.mapping_count = 2;
        spec
    }

    /// The count of replicas and their starts, if `specs` pass on `machine`.
    fn checked(specs: &[ReplicaSpec], machine: &Machine) -> Result<(usize, Starts), String> {
        checked_specs(specs, machine).map(|(count, starts, _)| (count, starts))
    }

    /// An image's parts: a kernel and `specs`.
    fn parts_of(specs: &[ReplicaSpec]) -> Vec<Part<'static>> {
        let kernel = Part {
            entry: PartEntry::new(PartKind::Kernel, ALL_REPLICAS, 0, 0x1_0000, 0),
            kind: PartKind::Kernel,
            bytes: &[],
        };
        // The specs' bytes live as long as the test: leak them.
        let specs: &'static [ReplicaSpec] = Vec::leak(specs.to_vec());
        [kernel]
            .into_iter()
            .chain(specs.iter().map(|s| Part {
                entry: PartEntry::new(PartKind::ReplicaSpec, s.replica, 0, 0, SPEC_OFFSET),
                kind: PartKind::ReplicaSpec,
                bytes: s.as_bytes(),
            }))
            .collect()
    }

    /// The count of replicas, their starts and their specs as the check leaves them, if
    /// `specs` pass on `machine`.
    fn checked_specs(
        specs: &[ReplicaSpec],
        machine: &Machine,
    ) -> Result<(usize, Starts, Specs), String> {
        let parts = parts_of(specs);
        let mut table: Specs = [None; MAX_REPLICAS];
        let mut starts: Starts = [None; MAX_REPLICAS];
        check(
            machine,
            || parts.iter().copied(),
            &mut table,
            &mut starts,
            HostTables::new,
        )
        .map(|placement| (placement.count, starts, table))
        .map_err(|e| e.to_string())
    }

    fn good() -> Vec<ReplicaSpec> {
        (0..2).map(|r| spec(r, 2)).collect()
    }

    #[test]
    fn a_good_image_gets_its_tables_and_spec_address() {
        let specs = good();
        let (count, starts) = checked(&specs, &MACHINE).unwrap();
        assert_eq!(count, 2);
        let start = starts[1].unwrap();
        assert_eq!(start.spec_va, KERNEL_VA + SPEC_OFFSET);
        let area = table_area(&specs[1]);
        assert_eq!((start.ttbr1, start.ttbr0), (area.base, area.base + 0x3000));
        assert!(starts[2].is_none());
        // The tables the check built map what the spec says, on any board's memory.
        let mut mem = HostTables::new(area);
        let (ttbr0, ttbr1) = build_tables(&mut mem, &specs[1], &MACHINE).unwrap();
        let (pa, _) =
            pagetable::translate(&mut mem, Root::kernel(ttbr1), LINEAR_VA + 0x1234).unwrap();
        assert_eq!(pa, specs[1].ram.base + 2 * MIB + 0x1234);
        let code = MACHINE.loader_code.base;
        let identity = pagetable::translate(&mut mem, Root::user(ttbr0), code);
        assert_eq!(identity.unwrap().0, code);
    }

    #[test]
    fn the_boot_core_must_belong_to_a_replica() {
        let machine = Machine {
            boot_core: 3,
            ..MACHINE
        };
        assert_eq!(
            checked(&good(), &machine).err().unwrap(),
            "replica 0: boot core belongs to no replica"
        );
        let machine = Machine {
            boot_core: 1,
            ..MACHINE
        };
        assert!(checked(&good(), &machine).is_ok());
    }

    #[test]
    fn the_spec_must_be_in_a_kernel_mapping() {
        let mut specs = good();
        specs[1].mappings[0].pa += SPEC_OFFSET + 0x1000;
        specs[1].mappings[0].size -= SPEC_OFFSET + 0x1000;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            "replica 1: boot spec is not in any kernel mapping"
        );
    }

    #[test]
    fn every_routed_interrupt_is_on_the_gic() {
        let mut specs = good();
        specs[1].irq_routes[0] = IrqRoute {
            intid: 287,
            core: 1,
            edge: 0,
            reserved: 0,
        };
        specs[1].irq_route_count = 1;
        assert!(checked(&specs, &MACHINE).is_ok());
        specs[1].irq_routes[0].intid = 288;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            "replica 1: an interrupt cannot be routed (not a shared interrupt of this GIC)"
        );
    }

    /// The specs of [`good`], with the kernel mapping [`MACHINE`]'s GIC as the tool does.
    fn good_with_gic_mappings() -> Vec<ReplicaSpec> {
        let mut specs = good();
        for spec in &mut specs {
            let n = spec.mapping_count as usize;
            for (i, window) in [spec.gic.distributor, spec.gic.cpu].iter().enumerate() {
                spec.mappings[n + i] = Mapping {
                    va: window.va,
                    pa: window.pa,
                    size: window.size,
                    attrs: attrs::WRITE | attrs::DEVICE,
                };
            }
            spec.mapping_count += 2;
        }
        specs
    }

    #[test]
    fn a_spec_describing_the_machines_gic_is_left_as_it_is() {
        let specs = good_with_gic_mappings();
        let (_, _, table) = checked_specs(&specs, &MACHINE).unwrap();
        let (spec, _) = table[1].unwrap();
        assert_eq!(spec.gic.version, 3);
        assert_eq!(spec.mappings(), specs[1].mappings());
    }

    #[test]
    fn a_spec_planned_for_gicv3_is_moved_to_the_gicv2_the_machine_has() {
        let machine = Machine {
            gic: fixture::GICV2,
            ..MACHINE
        };
        let specs = good_with_gic_mappings();
        let (count, starts, table) = checked_specs(&specs, &machine).unwrap();
        assert_eq!(count, 2);
        for replica in 0..count {
            let (spec, _) = table[replica].unwrap();
            assert_eq!(spec.gic.version, 2);
            let (distributor, cpu) = (spec.gic.distributor, spec.gic.cpu);
            assert_eq!((distributor.pa, distributor.size), (0x0800_0000, 0x1000));
            assert_eq!((cpu.pa, cpu.size), (0x0801_0000, 0x2000));
            assert_eq!(
                (distributor.va, cpu.va),
                (fixture::GIC_VA[0], fixture::GIC_VA[1])
            );
            // The tables the check built map the CPU interface where the redistributors
            // were, and nothing of the redistributors' 512 KiB beyond it.
            let start = starts[replica].unwrap();
            let mut mem = HostTables::new(table_area(&spec));
            let (_, ttbr1) = build_tables(&mut mem, &spec, &machine).unwrap();
            assert_eq!(ttbr1, start.ttbr1);
            let root = Root::kernel(ttbr1);
            let (pa, _) = pagetable::translate(&mut mem, root, cpu.va + 0x1004).unwrap();
            assert_eq!(pa, 0x0801_1004);
            assert!(pagetable::translate(&mut mem, root, cpu.va + 0x2000).is_none());
            assert!(pagetable::translate(&mut mem, root, distributor.va + 0x1000).is_none());
        }
    }

    #[test]
    fn a_gic_the_spec_does_not_map_as_it_says_cannot_be_moved() {
        let machine = Machine {
            gic: fixture::GICV2,
            ..MACHINE
        };
        let mut specs = good_with_gic_mappings();
        let n = specs[1].mapping_count as usize;
        specs[1].mappings[n - 1].pa += 0x2_0000;
        assert_eq!(
            checked(&specs, &machine).err().unwrap(),
            "replica 1: the interrupt controller's registers are not mapped as the spec says"
        );
        // On the machine the spec was planned for, nothing needs moving.
        assert!(checked(&specs, &MACHINE).is_ok());
        // A spec without the mappings at all is refused as well.
        assert!(checked(&good(), &machine).is_err());
    }

    #[test]
    fn the_kernel_tables_must_be_buildable() {
        let mut specs = good();
        specs[0].mappings[1].va = KERNEL_VA;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            std::format!(
                "replica 0: cannot build kernel page tables: {:?}",
                MapError::AlreadyMapped { va: KERNEL_VA }
            )
        );
        let mut specs = good();
        specs[1].mappings[1].size -= 0x800;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            "replica 1: cannot build kernel page tables: Misaligned"
        );
        let mut specs = good();
        specs[1].tables_size = 0x2000;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            "replica 1: cannot build kernel page tables: OutOfTables"
        );
    }

    /// Less RAM than the image needs is refused before a single table is built: the
    /// loader builds them in the replicas' RAM, which may not exist.
    #[test]
    fn the_firmwares_memory_is_checked_before_any_table_is_built() {
        let parts = parts_of(&good());
        let machine = Machine {
            memory: atoll_abi::memory_map::MemoryMap::of_ram(PhysRange {
                base: 0x4000_0000,
                size: 0x0400_0000,
            }),
            ..MACHINE
        };
        let mut table: Specs = [None; MAX_REPLICAS];
        let mut starts: Starts = [None; MAX_REPLICAS];
        let mut built = 0;
        let refusal = check(
            &machine,
            || parts.iter().copied(),
            &mut table,
            &mut starts,
            |area| {
                built += 1;
                HostTables::new(area)
            },
        )
        .unwrap_err();
        assert!(
            matches!(refusal, LoadError::Placement(PlacementError::Memory(_))),
            "{refusal}"
        );
        assert!(
            refusal
                .to_string()
                .starts_with("this image needs RAM 0x40080000-"),
            "{refusal}"
        );
        assert_eq!(built, 0);
        assert!(starts.iter().all(Option::is_none));
    }

    #[test]
    fn placement_rules_come_first() {
        let mut specs = good();
        specs[1].core_mask = 1;
        assert_eq!(
            checked(&specs, &MACHINE).err().unwrap(),
            "replica 1: cores are shared with another replica or do not exist"
        );
    }
}
