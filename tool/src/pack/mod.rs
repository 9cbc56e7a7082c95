//! The tool's pipeline after checking: read the files the description names, plan, place
//! each PD's program, plan the boot programs and boot specs, write the image, and check the
//! written image with the loader's own rules.
//!
//! [`pack`] is the pipeline, one named step a line. Every problem is collected (a missing
//! program does not hide a bad symbol in another), and nothing here panics on a malformed
//! ELF file.

pub mod elf;
mod program;
pub mod write;

use std::path::{Path, PathBuf};

use atoll_abi::image::{ALL_REPLICAS, ImageView, PartEntry, PartKind};
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::placement;
use atoll_abi::spec::{PhysRange, ReplicaSpec};
use atoll_boards::Board;
use atoll_kernel_core::loadcheck;
use atoll_kernel_core::pagetable::HostTables;
use zerocopy::IntoBytes;

use crate::model::{Prefill, SystemDescription};
use crate::plan::{BootProgram, ImagePlacement, Plan, RegionHome, SpecInputs};
use elf::{KernelImage, LoaderImage};
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

/// Why packing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PackError {
    /// A file named by the description is not in any search path.
    #[error("{what} '{path}' was not found in {searched}")]
    #[diagnostic(
        code(microkit::not_found),
        help("add its directory with --search-path")
    )]
    NotFound {
        /// What the file is for.
        what: String,
        /// The path as written.
        path: String,
        /// The directories searched.
        searched: String,
    },
    /// A program image is not a usable ELF file.
    #[error("program image '{path}' of '{pd}': {reason}")]
    #[diagnostic(code(microkit::bad_program))]
    BadProgram {
        /// The PD.
        pd: String,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A symbol to patch is missing or has the wrong size.
    #[error("could not patch symbol '{symbol}' in '{pd}': {reason}")]
    #[diagnostic(
        code(microkit::symbol),
        help("setvar symbols must be 8-byte variables kept in .data (see docs/pd-api.md)")
    )]
    Symbol {
        /// The PD.
        pd: String,
        /// The symbol.
        symbol: String,
        /// What is wrong.
        reason: String,
    },
    /// A program segment overlaps a mapping of the PD.
    #[error(
        "'{pd}': program segment {segment:#x}+{size:#x} overlaps the mapping of '{what}' at {vaddr:#x}"
    )]
    #[diagnostic(code(microkit::overlap))]
    Overlap {
        /// The PD.
        pd: String,
        /// Segment start.
        segment: u64,
        /// Segment size.
        size: u64,
        /// The mapping.
        what: String,
        /// The mapping's address.
        vaddr: u64,
    },
    /// A prefill file cannot be used.
    #[error("prefill file for region '{region}': {reason}")]
    #[diagnostic(code(microkit::prefill))]
    Prefill {
        /// The region.
        region: String,
        /// What is wrong.
        reason: String,
    },
    /// Programs do not fit the replica's RAM.
    #[error("replica '{replica}' has too little RAM left for the program of '{pd}'")]
    #[diagnostic(code(microkit::out_of_memory))]
    OutOfMemory {
        /// The replica.
        replica: String,
        /// The PD whose program did not fit.
        pd: String,
    },
    /// The kernel, loader or boot layout was refused.
    #[error("{0}")]
    #[diagnostic(code(microkit::layout))]
    Layout(String),
}

/// Finds `path` as written, or under each search path in order.
pub fn find(path: &str, search_paths: &[PathBuf]) -> Option<PathBuf> {
    let direct = Path::new(path);
    if direct.is_absolute() {
        return direct.is_file().then(|| direct.to_path_buf());
    }
    search_paths
        .iter()
        .map(|dir| dir.join(path))
        .find(|p| p.is_file())
}

fn searched(search_paths: &[PathBuf]) -> String {
    let dirs: Vec<String> = search_paths
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect();
    if dirs.is_empty() {
        "no search path".into()
    } else {
        dirs.join(", ")
    }
}

/// A prefill file, read once: its length sizes the region and patches symbols.
struct PrefillFile {
    region: String,
    path: String,
    bytes: Vec<u8>,
}

/// The loader, kernel and initialiser, flattened.
struct Binaries {
    loader: LoaderImage,
    kernel: KernelImage,
    initialiser: Option<KernelImage>,
}

/// A part the planner placed, with its bytes.
struct OwnedPart {
    entry: PartEntry,
    bytes: Vec<u8>,
}

/// Packs `system` (checked from `text`) into a bootable image.
pub fn pack(
    system: &SystemDescription,
    text: &str,
    inputs: &Inputs<'_>,
) -> Result<Packed, Vec<PackError>> {
    let mut errors = Vec::new();
    let prefills = read_prefills(system, inputs.search_paths, &mut errors);
    let mut plan = match plan(system, text, inputs, &prefills) {
        Ok(plan) => plan,
        Err(more) => {
            errors.extend(more);
            return Err(errors);
        }
    };
    let binaries = read_binaries(inputs).map_err(|e| vec![e])?;
    let programs = place_programs(
        &mut plan,
        system,
        inputs.search_paths,
        &prefills,
        &mut errors,
    );
    let mut boot_programs = Vec::new();
    if errors.is_empty() {
        let mut problems = Vec::new();
        boot_programs = crate::plan::boot_programs(&mut plan, &mut problems);
        errors.extend(problems.into_iter().map(PackError::Layout));
    }
    let regions = region_parts(&plan, &prefills, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let specs = crate::plan::boot_specs(
        &plan,
        &SpecInputs {
            board: inputs.board,
            kernel: &binaries.kernel,
            initialiser: binaries.initialiser.as_ref(),
            flags: inputs.replica_flags,
            boot_programs: &boot_programs,
        },
    )
    .map_err(|e| vec![PackError::Layout(format!("replica layout: {e}"))])?;
    let boot_programs = boot_program_parts(&plan, boot_programs);
    let parts: Vec<OwnedPart> = [programs, boot_programs, regions]
        .into_iter()
        .flatten()
        .collect();
    let image = write_image(inputs.board, &binaries, &specs, &parts).map_err(|e| vec![e])?;
    check_image(inputs.board, &binaries.loader, &image).map_err(|e| vec![e])?;
    Ok(Packed { image, plan })
}

/// Finds and reads every region's prefill file.
fn read_prefills(
    system: &SystemDescription,
    search_paths: &[PathBuf],
    errors: &mut Vec<PackError>,
) -> Vec<PrefillFile> {
    let mut prefills = Vec::new();
    for mr in system.memory_regions.values() {
        let Some(Prefill::File(path)) = &mr.prefill else {
            continue;
        };
        let prefill_error = |reason: String| PackError::Prefill {
            region: mr.name.clone(),
            reason,
        };
        match find(path, search_paths).map(std::fs::read) {
            Some(Ok(bytes)) if bytes.is_empty() => {
                errors.push(prefill_error(format!("'{path}' is empty")));
            }
            Some(Ok(bytes)) if mr.size.is_some_and(|s| bytes.len() as u64 > s) => {
                errors.push(prefill_error(format!(
                    "'{path}' has {} bytes, more than the region's {:#x}",
                    bytes.len(),
                    mr.size.unwrap_or(0)
                )));
            }
            Some(Ok(bytes)) => prefills.push(PrefillFile {
                region: mr.name.clone(),
                path: path.clone(),
                bytes,
            }),
            Some(Err(e)) => errors.push(prefill_error(e.to_string())),
            None => errors.push(PackError::NotFound {
                what: format!("prefill file of region '{}'", mr.name),
                path: path.clone(),
                searched: searched(search_paths),
            }),
        }
    }
    prefills
}

/// Plans `system` knowing the prefill files' lengths and the programs' extents.
fn plan(
    system: &SystemDescription,
    text: &str,
    inputs: &Inputs<'_>,
    prefills: &[PrefillFile],
) -> Result<Plan, Vec<PackError>> {
    let prefill_len = |path: &str| {
        prefills
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.bytes.len() as u64)
    };
    crate::plan::plan_with_prefills(system, text, inputs.board, &prefill_len, &|path| {
        program::extent(path, inputs.search_paths)
    })
    .map_err(|diagnostics| {
        diagnostics
            .into_iter()
            .map(|d| PackError::Layout(d.message))
            .collect()
    })
}

/// Flattens the loader, the kernel and the initialiser.
fn read_binaries(inputs: &Inputs<'_>) -> Result<Binaries, PackError> {
    let layout = |e: elf::BinaryError| PackError::Layout(e.to_string());
    let kernel = elf::flatten_kernel(inputs.kernel_elf).map_err(layout)?;
    let loader = elf::flatten_loader(inputs.loader_elf).map_err(layout)?;
    let initialiser = inputs
        .initialiser_elf
        .map(|elf| elf::flatten_program("initialiser", elf))
        .transpose()
        .map_err(layout)?;
    Ok(Binaries {
        loader,
        kernel,
        initialiser,
    })
}

/// Reads, patches and places each PD's program in its replica's free memory, recording
/// where in the plan.
fn place_programs(
    plan: &mut Plan,
    system: &SystemDescription,
    search_paths: &[PathBuf],
    prefills: &[PrefillFile],
    errors: &mut Vec<PackError>,
) -> Vec<OwnedPart> {
    let prefill_size = |region: &str| {
        prefills
            .iter()
            .find(|p| p.region == region)
            .map(|p| p.bytes.len() as u64)
    };
    let mut parts = Vec::new();
    for replica in &mut plan.replicas {
        let ram_end = replica.ram.base + replica.ram.size;
        let mut next = ram_end - replica.free_bytes;
        for pd in &mut replica.protection_domains {
            let symbols_path = system
                .protection_domains
                .get(pd.name.as_str())
                .and_then(|p| p.program_image.path_for_symbols.as_deref());
            let Some(program) =
                program::load(pd, symbols_path, search_paths, &prefill_size, errors)
            else {
                continue;
            };
            let Some(pa) = next
                .checked_next_multiple_of(PAGE_SIZE)
                .filter(|pa| pa + program.mem_size <= ram_end)
            else {
                errors.push(PackError::OutOfMemory {
                    replica: replica.name.clone(),
                    pd: pd.name.clone(),
                });
                continue;
            };
            next = pa + program.mem_size;
            let mut entry = PartEntry::new(
                PartKind::PdImage,
                replica.index as u32,
                program.bytes.len() as u64,
                program.mem_size,
                pa - replica.ram.base,
            );
            (entry.vaddr, entry.entry) = (program.base, program.entry);
            pd.image = Some(ImagePlacement {
                phys_addr: pa,
                size: program.mem_size,
                entry: program.entry,
                segments: program.segments,
            });
            parts.push(OwnedPart {
                entry,
                bytes: program.bytes,
            });
        }
        replica.free_bytes = ram_end.saturating_sub(next);
    }
    parts
}

/// The boot programs as parts of their replicas.
fn boot_program_parts(plan: &Plan, programs: Vec<BootProgram>) -> Vec<OwnedPart> {
    programs
        .into_iter()
        .filter_map(|program| {
            let replica = plan.replicas.get(program.replica)?;
            let entry = PartEntry::new(
                PartKind::BootProgram,
                replica.index as u32,
                program.bytes.len() as u64,
                program.bytes.len().next_multiple_of(PAGE_SIZE as usize) as u64,
                program.phys_addr - replica.ram.base,
            );
            Some(OwnedPart {
                entry,
                bytes: program.bytes,
            })
        })
        .collect()
}

/// Each placed region's contents (its prefill file, or nothing), which the loader writes
/// and zeroes past: Microkit zeroes RAM-backed regions. A region in one replica's RAM is
/// that replica's part; one outside every replica's RAM is placed at its address.
fn region_parts(
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
        let mem_size = region
            .size
            .next_multiple_of(region.page_size)
            .max(region.page_size);
        let part = |replica: u32, dest_offset: u64, bytes: Option<Vec<u8>>| {
            let bytes = bytes.unwrap_or_default();
            OwnedPart {
                entry: PartEntry::new(
                    PartKind::RegionData,
                    replica,
                    bytes.len() as u64,
                    mem_size,
                    dest_offset,
                ),
                bytes,
            }
        };
        match (&region.home, region.phys_addr) {
            (RegionHome::Replica(name), Some(pa)) => {
                if let Some(replica) = plan.replicas.iter().find(|r| &r.name == name) {
                    parts.push(part(replica.index as u32, pa - replica.ram.base, bytes));
                }
            }
            (RegionHome::Shared | RegionHome::FixedRam, Some(pa)) => {
                parts.push(part(ALL_REPLICAS, pa, bytes));
            }
            (RegionHome::Device, _) if bytes.is_some() => errors.push(PackError::Prefill {
                region: region.name.clone(),
                reason: "a device region (fixed physical address outside RAM) cannot be prefilled"
                    .into(),
            }),
            _ => {}
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
fn write_image(
    board: &Board,
    binaries: &Binaries,
    specs: &[(ReplicaSpec, u64)],
    placed: &[OwnedPart],
) -> Result<Vec<u8>, PackError> {
    let kernel = &binaries.kernel;
    let mut parts = vec![ImagePart {
        entry: program_entry(PartKind::Kernel, kernel, 0),
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
/// the tool refuses at build time what the loader would refuse at boot.
pub fn check_image(board: &Board, loader: &LoaderImage, image: &[u8]) -> Result<(), PackError> {
    let refused =
        |why: String| PackError::Layout(format!("the loader would refuse this image: {why}"));
    let proper = image.get(loader.bytes.len()..).unwrap_or_default();
    let view = ImageView::parse(proper, Some(board.name)).map_err(|e| refused(e.to_string()))?;
    let machine = board.machine(PhysRange {
        base: loader.base,
        size: loader.bytes.len() as u64,
    });
    let mut specs: placement::Specs = [None; atoll_abi::limits::MAX_REPLICAS];
    let mut starts: loadcheck::Starts = [None; atoll_abi::limits::MAX_REPLICAS];
    loadcheck::check(
        &machine,
        || view.parts(),
        &mut specs,
        &mut starts,
        HostTables::new,
    )
    .map_err(|e| refused(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::boot_tests::{fake_kernel, planned, specs};

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
