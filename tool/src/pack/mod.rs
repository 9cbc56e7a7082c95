//! The last step of the pipeline: gather the bytes of every part the plan placed (each PD's
//! program, read and patched with the plan's symbols; the boot programs; the regions'
//! prefill files), write the image, and check the written image with the loader's own
//! rules. Where each part goes is the plan's decision (`plan::PartPlace`); this step only
//! gathers and writes bytes. `crate::build_planned` runs it.
//!
//! Every problem is collected (a missing program does not hide a bad symbol in another),
//! and nothing here panics on a malformed ELF file.

mod program;
pub mod write;

use std::path::PathBuf;

use atoll_abi::image::{ALL_REPLICAS, ImageView, PartEntry, PartKind};
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::placement;
use atoll_abi::spec::{PhysRange, ReplicaSpec};
use atoll_boards::Board;
use atoll_kernel_core::loadcheck;
use atoll_kernel_core::pagetable::HostTables;
use zerocopy::IntoBytes;

use crate::elf::{Binaries, KernelImage, LoaderImage};
use crate::error::PackError;
use crate::files::PrefillFile;
use crate::model::{Prefill, SystemDescription};
use crate::plan::{
    BootProgram, KERNEL_OFFSET, PartPlace, PdPlan, Plan, ProgramShape, ProgramSource, ReplicaPlan,
};
use write::ImagePart;

/// What packing needs besides the description.
pub struct Inputs<'a> {
    /// The board.
    pub board: &'static Board,
    /// The kernel ELF.
    pub kernel_elf: &'a [u8],
    /// The loader ELF, built for `board`.
    pub loader_elf: &'a [u8],
    /// Where program images and prefill files are looked up, in order.
    pub search_paths: &'a [PathBuf],
    /// Boot-spec flags per replica (`atoll_abi::spec::flags`); missing entries are zero.
    pub replica_flags: &'a [u32],
    /// The tick of each replica's deliberate late fault
    /// (`atoll_abi::spec::ReplicaSpec::fault_late_ticks`); missing entries are zero (none).
    pub fault_late_ticks: &'a [u32],
    /// Each replica's tick of a deliberate hang, by replica index
    /// (`atoll_abi::spec::ReplicaSpec::hang_late_ticks`); missing entries are zero (none).
    pub hang_late_ticks: &'a [u32],
    /// The replica initialiser ELF, if the image should carry one.
    pub initialiser_elf: Option<&'a [u8]>,
}

/// A packed system.
#[derive(Debug)]
pub struct Packed {
    /// The bootable image.
    pub image: Vec<u8>,
    /// The plan, with where each program went.
    pub plan: Plan,
}

/// A part the planner placed, with its bytes.
pub(crate) struct OwnedPart {
    entry: PartEntry,
    bytes: Vec<u8>,
}

impl OwnedPart {
    /// A part of `kind` with `bytes`, where the plan put it.
    fn new(kind: PartKind, place: PartPlace, bytes: Vec<u8>) -> Self {
        let entry = PartEntry::new(
            kind,
            place.replica,
            bytes.len() as u64,
            place.mem_size,
            place.dest_offset,
        );
        Self { entry, bytes }
    }
}

/// The PD programs, read and patched as the plan places them (`plan::place_programs`
/// asks for each in turn); problems go to `errors`.
pub(crate) struct ProgramParts<'a> {
    system: &'a SystemDescription,
    search_paths: &'a [PathBuf],
    prefills: &'a [PrefillFile],
    errors: &'a mut Vec<PackError>,
    /// The program last read, waiting for its place: bytes, virtual base, entry point.
    read: Option<(Vec<u8>, u64, u64)>,
    parts: Vec<OwnedPart>,
}

impl<'a> ProgramParts<'a> {
    /// Reads programs from `search_paths`, patching in the lengths of `prefills`.
    pub(crate) fn new(
        system: &'a SystemDescription,
        search_paths: &'a [PathBuf],
        prefills: &'a [PrefillFile],
        errors: &'a mut Vec<PackError>,
    ) -> Self {
        Self {
            system,
            search_paths,
            prefills,
            errors,
            read: None,
            parts: Vec::new(),
        }
    }

    /// The placed programs.
    pub(crate) fn into_parts(self) -> Vec<OwnedPart> {
        self.parts
    }
}

impl ProgramSource for ProgramParts<'_> {
    fn read(&mut self, pd: &PdPlan) -> Option<ProgramShape> {
        let prefill_size = |region: &str| {
            self.prefills
                .iter()
                .find(|p| p.region == region)
                .map(|p| p.bytes.len() as u64)
        };
        let symbols_path = self
            .system
            .protection_domains
            .get(pd.name.as_str())
            .and_then(|p| p.program_image.path_for_symbols.as_deref());
        let program = program::load(
            pd,
            symbols_path,
            self.search_paths,
            &prefill_size,
            self.errors,
        )?;
        self.read = Some((program.bytes, program.base, program.shape.entry));
        Some(program.shape)
    }

    fn placed(&mut self, replica: &ReplicaPlan, pd: &PdPlan, place: Option<PartPlace>) {
        let Some((bytes, vaddr, entry)) = self.read.take() else {
            return;
        };
        let Some(place) = place else {
            self.errors.push(PackError::OutOfMemory {
                replica: replica.name.clone(),
                pd: pd.name.clone(),
            });
            return;
        };
        let mut part = OwnedPart::new(PartKind::PdImage, place, without_zero_tail(bytes));
        (part.entry.vaddr, part.entry.entry) = (vaddr, entry);
        self.parts.push(part);
    }
}

/// `bytes` without the whole pages of zeros at their end: the loader zeroes a part's memory
/// past the bytes it carries, so a program's `.bss` (a PD's heap, for one), flattened as
/// zeros for symbol patching, need not be carried in the image, copied and checksummed.
fn without_zero_tail(mut bytes: Vec<u8>) -> Vec<u8> {
    let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let kept = used.next_multiple_of(PAGE_SIZE as usize).min(bytes.len());
    bytes.truncate(kept);
    bytes
}

/// The boot programs as parts of their replicas.
pub(crate) fn boot_program_parts(programs: Vec<BootProgram>) -> Vec<OwnedPart> {
    programs
        .into_iter()
        .map(|p| OwnedPart::new(PartKind::BootProgram, p.place, p.bytes))
        .collect()
}

/// Each placed region's contents: its prefill file, or nothing (the loader zeroes past
/// what it writes); a `prefill_bootinfo="fdt"` region is a part of its own kind, which the
/// loader fills with the firmware's device tree.
pub(crate) fn region_parts(
    system: &SystemDescription,
    plan: &Plan,
    prefills: &[PrefillFile],
    errors: &mut Vec<PackError>,
) -> Vec<OwnedPart> {
    let mut parts = Vec::new();
    for region in &plan.memory_regions {
        let bytes = prefills
            .iter()
            .find(|p| p.region == region.name)
            .map(|p| p.bytes.clone());
        let device_tree = system
            .memory_regions
            .get(region.name.as_str())
            .is_some_and(|mr| mr.prefill == Some(Prefill::DeviceTree));
        let kind = if device_tree {
            PartKind::DeviceTree
        } else {
            PartKind::RegionData
        };
        match region.part_place(plan, bytes.is_some() || device_tree) {
            Ok(Some(place)) => parts.push(OwnedPart::new(kind, place, bytes.unwrap_or_default())),
            Ok(None) => {}
            Err(reason) => errors.push(PackError::Prefill {
                region: region.name.clone(),
                reason,
            }),
        }
    }
    parts
}

/// A program every replica runs: one copy in the image, at `dest_offset` in each replica.
fn program_entry(kind: PartKind, program: &KernelImage, dest_offset: u64) -> PartEntry {
    let mut entry = PartEntry::new(
        kind,
        ALL_REPLICAS,
        program.bytes.len() as u64,
        program.mem_size,
        dest_offset,
    );
    (entry.vaddr, entry.entry) = (program.vaddr, program.entry);
    entry
}

/// Writes the image: the loader, then the kernel, the initialiser, the boot specs and the
/// placed parts.
pub(crate) fn write_image(
    board: &Board,
    binaries: &Binaries,
    specs: &[(ReplicaSpec, u64)],
    placed: &[OwnedPart],
) -> Result<Vec<u8>, PackError> {
    let kernel = &binaries.kernel;
    let mut parts = vec![ImagePart {
        entry: program_entry(PartKind::Kernel, kernel, KERNEL_OFFSET),
        bytes: &kernel.bytes,
    }];
    if let (Some(init), Some((first, _))) = (&binaries.initialiser, specs.first()) {
        let entry = program_entry(PartKind::Initialiser, init, first.initialiser.offset);
        parts.push(ImagePart {
            entry,
            bytes: &init.bytes,
        });
    }
    for (spec, offset) in specs {
        let bytes = spec.as_bytes();
        let size = bytes.len() as u64;
        let entry = PartEntry::new(PartKind::ReplicaSpec, spec.replica, size, size, *offset);
        parts.push(ImagePart { entry, bytes });
    }
    parts.extend(placed.iter().map(|p| ImagePart {
        entry: p.entry,
        bytes: &p.bytes,
    }));
    write::bootable_image(board, &binaries.loader, &parts)
        .map_err(|e| PackError::Layout(e.to_string()))
}

/// Checks a written image as the loader will: the same parser and the same check
/// (`atoll_kernel_core::loadcheck`, with the kernel page tables built in host memory), so
/// the tool refuses at build time what the loader would refuse at boot. The check runs once
/// for each interrupt controller the board's machine may have (QEMU `virt`: GICv3 or GICv2),
/// since the loader uses the one it finds.
pub fn check_image(board: &Board, loader: &LoaderImage, image: &[u8]) -> Result<(), PackError> {
    let proper = image.get(loader.bytes.len()..).unwrap_or_default();
    let view = ImageView::parse(proper, Some(board.name))
        .map_err(|e| PackError::Layout(format!("the loader would refuse this image: {e}")))?;
    let loader_code = PhysRange {
        base: loader.base,
        size: loader.bytes.len() as u64,
    };
    for (i, gic) in board.gics().enumerate() {
        let machine = board.machine(loader_code, *gic);
        let mut specs: placement::Specs = [None; atoll_abi::limits::MAX_REPLICAS];
        let mut starts: loadcheck::Starts = [None; atoll_abi::limits::MAX_REPLICAS];
        loadcheck::check(
            &machine,
            || view.parts(),
            &mut specs,
            &mut starts,
            HostTables::new,
        )
        .map_err(|e| {
            let on = if i == 0 {
                String::new()
            } else {
                format!(" on a {} with GICv{}", board.name, gic.version)
            };
            PackError::Layout(format!("the loader would refuse this image{on}: {e}"))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::boot_tests::{fake_kernel, planned, specs};

    #[test]
    fn whole_zero_pages_at_the_end_are_left_out() {
        let mut bytes = vec![0u8; 5 * 0x1000];
        bytes[0x1100] = 7;
        assert_eq!(without_zero_tail(bytes.clone()).len(), 0x2000);
        // A non-zero byte in the last page keeps everything.
        bytes[5 * 0x1000 - 1] = 1;
        assert_eq!(without_zero_tail(bytes).len(), 5 * 0x1000);
        // All zeros: nothing is carried.
        assert!(without_zero_tail(vec![0; 0x3000]).is_empty());
        // A short program keeps its length.
        assert_eq!(without_zero_tail(vec![1; 10]).len(), 10);
    }

    const BOARD: &Board = &atoll_boards::QEMU_VIRT_AARCH64;

    fn binaries() -> Binaries {
        Binaries {
            loader: LoaderImage {
                bytes: vec![0; 0x2000],
                base: BOARD.ram.base + BOARD.image_offset,
            },
            kernel: fake_kernel(),
            initialiser: None,
        }
    }

    /// The image of replicas on `clusters` with `placed` parts, their specs changed by
    /// `spoil`, if it passes the loader's checks.
    fn image_of(
        clusters: &str,
        spoil: impl Fn(&mut [(ReplicaSpec, u64)]),
        placed: &[OwnedPart],
    ) -> Result<Vec<u8>, PackError> {
        let binaries = binaries();
        let plan = planned(BOARD, clusters);
        let mut specs = specs(BOARD, &plan, &binaries.kernel).unwrap();
        spoil(&mut specs);
        let image = write_image(BOARD, &binaries, &specs, placed)?;
        check_image(BOARD, &binaries.loader, &image)?;
        Ok(image)
    }

    /// The image of three replicas with `placed` parts.
    fn image(placed: &[OwnedPart]) -> Result<Vec<u8>, PackError> {
        image_of("0;1;2,3", |_| {}, placed)
    }

    /// Why the loader would refuse the image of replicas on `clusters` with specs changed
    /// by `spoil`.
    fn refusal(clusters: &str, spoil: impl Fn(&mut [(ReplicaSpec, u64)])) -> String {
        image_of(clusters, spoil, &[]).unwrap_err().to_string()
    }

    fn pd_image(dest_offset: u64) -> OwnedPart {
        OwnedPart {
            entry: PartEntry::new(PartKind::PdImage, 1, 0x1000, 0x1000, dest_offset),
            bytes: vec![0x55; 0x1000],
        }
    }

    /// A `prefill_bootinfo="fdt"` region is a device-tree part, in its replica's memory
    /// at the region's size, storing nothing; a file-prefilled region stays region data.
    #[test]
    fn a_device_tree_region_is_a_part_of_its_own_kind() {
        let text = r#"<system>
            <memory_region name="dtb" size="0x10_0000" prefill_bootinfo="fdt" />
            <memory_region name="plain" size="0x1000" />
            <protection_domain name="a">
                <program_image path="a.elf" />
                <map mr="dtb" vaddr="0x1000_0000" />
                <map mr="plain" vaddr="0x2000_0000" />
            </protection_domain>
        </system>"#;
        let checked = crate::check(text, BOARD, false);
        let (Some(system), Some(plan)) = (&checked.system, &checked.plan) else {
            panic!("{:?}", checked.diagnostics);
        };
        let mut errors = Vec::new();
        let parts = region_parts(system, plan, &[], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let kinds: Vec<(u32, u64, usize)> = parts
            .iter()
            .map(|p| (p.entry.kind, p.entry.mem_size, p.bytes.len()))
            .collect();
        assert_eq!(
            kinds,
            [
                (PartKind::DeviceTree as u32, 0x10_0000, 0),
                (PartKind::RegionData as u32, 0x1000, 0)
            ]
        );
        let replica = &plan.replicas[0];
        let dtb = plan.memory_regions[0].phys_addr.unwrap();
        assert_eq!(parts[0].entry.dest_offset, dtb - replica.ram.base);
    }

    /// The status page lies in the kernel shared area, which the loader zeroes and whose
    /// header it writes: the image carries no part for it (the loader's check refuses any
    /// region part there), so nothing overwrites the records the kernels publish.
    #[test]
    fn the_status_page_is_no_part_of_the_image() {
        let text = r#"<system>
            <memory_region name="replica_status" device="atoll_status" />
            <protection_domain name="a">
                <program_image path="a.elf" />
                <map mr="replica_status" vaddr="0x1000_0000" perms="r" />
            </protection_domain>
        </system>"#;
        let checked = crate::check(text, BOARD, false);
        let (Some(system), Some(plan)) = (&checked.system, &checked.plan) else {
            panic!("{:?}", checked.diagnostics);
        };
        let mut errors = Vec::new();
        let parts = region_parts(system, plan, &[], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(parts.len(), 0);
    }

    #[test]
    fn a_planned_image_passes_the_loaders_checks() {
        let image = image(&[pd_image(crate::plan::KERNEL_RESERVE)]).unwrap();
        assert!(image.len() > 0x2000);
    }

    #[test]
    fn an_image_the_loader_would_refuse_is_refused() {
        // A program inside the kernel's reserve would overwrite the kernel at boot.
        let error = image(&[pd_image(0)]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "the loader would refuse this image: replica 1: a program or region part lies \
             outside the replica's free memory"
        );
        // A region outside the replicas over the kernels' shared area.
        let shared = crate::plan::kernel_shared_area(BOARD).base;
        let mut region = pd_image(0);
        region.entry = PartEntry::new(PartKind::RegionData, ALL_REPLICAS, 0, 0x1000, shared);
        let error = image(&[region]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "the loader would refuse this image: a region outside the replicas lies outside RAM \
             or over memory it may not touch"
        );
    }

    #[test]
    fn an_image_whose_kernel_tables_cannot_be_built_is_refused() {
        let error = refusal("0;1;2,3", |specs| specs[1].0.tables_size = 0x1000);
        assert_eq!(
            error,
            "the loader would refuse this image: replica 1: cannot build kernel page tables: \
             OutOfTables"
        );
        let error = refusal("0;1;2,3", |specs| {
            let spec = &mut specs[2].0;
            spec.mappings[1].va = spec.mappings[0].va;
        });
        assert!(
            error.starts_with(
                "the loader would refuse this image: replica 2: cannot build kernel page \
                 tables: AlreadyMapped"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_image_whose_spec_the_kernel_cannot_see_is_refused() {
        let error = refusal("0;1;2,3", |specs| {
            let (spec, offset) = &mut specs[0];
            let pa = spec.ram.base + *offset;
            let count = spec.mapping_count as usize;
            let found = spec.mappings[..count]
                .iter()
                .position(|m| m.pa <= pa && pa < m.pa + m.size)
                .unwrap();
            spec.mappings[found] = spec.mappings[count - 1];
            spec.mapping_count -= 1;
        });
        assert_eq!(
            error,
            "the loader would refuse this image: replica 0: boot spec is not in any kernel mapping"
        );
    }

    #[test]
    fn an_image_is_checked_with_every_gic_the_board_allows() {
        assert_eq!(BOARD.gics().count(), 2);
        // Without the kernel mapping of its GICv3 redistributors, an image still boots on
        // a virt with GICv3 (the kernel would fault, not the loader), but the loader cannot
        // move that mapping to a GICv2's CPU interface: the tool says so.
        let error = refusal("0;1;2,3", |specs| {
            let spec = &mut specs[0].0;
            let cpu = spec.gic.cpu;
            let count = spec.mapping_count as usize;
            let found = spec.mappings[..count]
                .iter()
                .position(|m| m.va == cpu.va && m.pa == cpu.pa)
                .unwrap();
            spec.mappings[found].pa += 0x2_0000;
            spec.mappings[found].size -= 0x2_0000;
        });
        assert_eq!(
            error,
            "the loader would refuse this image on a qemu_virt_aarch64 with GICv2: replica 0: \
             the interrupt controller's registers are not mapped as the spec says"
        );
    }

    #[test]
    fn an_image_routing_an_interrupt_the_gic_lacks_is_refused() {
        assert_eq!(BOARD.gic.lines, 288);
        let route = |intid| {
            move |specs: &mut [(ReplicaSpec, u64)]| {
                let spec = &mut specs[1].0;
                let n = spec.irq_route_count as usize;
                spec.irq_routes[n] = atoll_abi::spec::IrqRoute {
                    intid,
                    core: 1,
                    edge: 0,
                    reserved: 0,
                };
                spec.irq_route_count += 1;
            }
        };
        assert!(image_of("0;1;2,3", route(287), &[]).is_ok());
        assert_eq!(
            refusal("0;1;2,3", route(288)),
            "the loader would refuse this image: replica 1: an interrupt cannot be routed (not a \
             shared interrupt of this GIC)"
        );
    }

    #[test]
    fn an_image_without_the_boot_core_is_refused() {
        // Replica 0 moved from core 0, the boot core, to core 3.
        let error = refusal("0;1;2", |specs| {
            let spec = &mut specs[0].0;
            spec.core_mask = 1 << 3;
            let n = spec.irq_route_count as usize;
            for route in &mut spec.irq_routes[..n] {
                route.core = 3;
            }
        });
        assert_eq!(
            error,
            "the loader would refuse this image: replica 0: boot core belongs to no replica"
        );
    }
}
