//! Packing: find every PD's program image, patch the symbols the plan lists, place the
//! programs and prefill contents in their replicas' memory, write each replica's boot spec
//! and pack everything with the loader and kernel into one bootable image.
//!
//! Every problem is collected (a missing program does not hide a bad symbol in another),
//! and nothing here panics on a malformed ELF file.

use std::path::{Path, PathBuf};

use atoll_abi::image::{PartEntry, PartKind};
use atoll_abi::limits::PAGE_SIZE;
use atoll_boards::Board;
use atoll_pack::image::ExtraPart;
use atoll_pack::plan::LayoutRequest;
use object::elf::{PF_R, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

use crate::model::{Prefill, SystemDescription};
use crate::plan::{ImagePlacement, MapPlan, PatchValue, Plan, RegionHome};

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

/// A program image read and checked.
struct Program {
    /// Flat bytes from `base` (page aligned), patched.
    bytes: Vec<u8>,
    base: u64,
    mem_size: u64,
    entry: u64,
    segments: Vec<(u64, u64, String)>,
}

/// Reads one PD's program, patches it and flattens it.
fn load_program(
    pd: &crate::plan::PdPlan,
    path_for_symbols: Option<&str>,
    search_paths: &[PathBuf],
    prefill_sizes: &dyn Fn(&str) -> Option<u64>,
    errors: &mut Vec<PackError>,
) -> Option<Program> {
    let bad = |reason: String| PackError::BadProgram {
        pd: pd.name.clone(),
        path: pd.program_image.clone(),
        reason,
    };
    let Some(path) = find(&pd.program_image, search_paths) else {
        errors.push(PackError::NotFound {
            what: format!("program image of '{}'", pd.name),
            path: pd.program_image.clone(),
            searched: searched(search_paths),
        });
        return None;
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            errors.push(bad(e.to_string()));
            return None;
        }
    };
    // The symbols come from the program itself unless a separate file is named.
    let separate_symbols = match path_for_symbols {
        Some(p) => match find(p, search_paths).map(std::fs::read) {
            Some(Ok(d)) => Some(d),
            _ => {
                errors.push(PackError::NotFound {
                    what: format!("symbol file of '{}'", pd.name),
                    path: p.to_string(),
                    searched: searched(search_paths),
                });
                return None;
            }
        },
        None => None,
    };
    let symbol_data = separate_symbols.as_deref().unwrap_or(&data);
    let file = match ElfFile64::<Endianness>::parse(data.as_slice()) {
        Ok(f) => f,
        Err(e) => {
            errors.push(bad(format!("not a 64-bit ELF file ({e})")));
            return None;
        }
    };
    let symbols = match ElfFile64::<Endianness>::parse(symbol_data) {
        Ok(f) => f,
        Err(e) => {
            errors.push(bad(format!("symbol file is not a 64-bit ELF file ({e})")));
            return None;
        }
    };
    let endian = file.endian();
    // (vaddr, file offset, file size, mem size, flags)
    let mut segments: Vec<(u64, u64, u64, u64, u32)> = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == PT_LOAD && ph.p_memsz(endian) > 0 {
            let (offset, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
            if offset
                .checked_add(filesz)
                .is_none_or(|end| end > data.len() as u64)
                || filesz > ph.p_memsz(endian)
            {
                errors.push(bad("a segment runs past the end of the file".into()));
                return None;
            }
            segments.push((
                ph.p_vaddr(endian),
                offset,
                filesz,
                ph.p_memsz(endian),
                ph.p_flags(endian),
            ));
        }
    }
    segments.sort_by_key(|s| s.0);
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        errors.push(bad("no loadable segments".into()));
        return None;
    };
    let base = first.0 & !(PAGE_SIZE - 1);
    let Some(end) = last
        .0
        .checked_add(last.3)
        .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
    else {
        errors.push(bad("segment addresses overflow".into()));
        return None;
    };
    if end - base > 0x1000_0000 {
        errors.push(bad(format!(
            "loadable segments span {:#x} bytes",
            end - base
        )));
        return None;
    }
    for &(vaddr, _, _, mem, _) in &segments {
        for map in &pd.maps {
            if overlaps(vaddr, mem, map) {
                errors.push(PackError::Overlap {
                    pd: pd.name.clone(),
                    segment: vaddr,
                    size: mem,
                    what: map.what.clone(),
                    vaddr: map.vaddr,
                });
            }
        }
    }
    let mut bytes = vec![0u8; (end - base) as usize];
    for &(vaddr, offset, filesz, _, _) in &segments {
        let at = (vaddr - base) as usize;
        bytes[at..at + filesz as usize]
            .copy_from_slice(&data[offset as usize..(offset + filesz) as usize]);
    }
    // Patch: a symbol must lie in file-backed bytes of a loadable segment.
    for patch in &pd.symbols {
        let fail = |reason: &str| PackError::Symbol {
            pd: pd.name.clone(),
            symbol: patch.symbol.clone(),
            reason: reason.into(),
        };
        let Some(symbol) = symbols
            .symbols()
            .find(|s| s.name() == Ok(patch.symbol.as_str()))
        else {
            errors.push(fail("not found in the program"));
            continue;
        };
        let (addr, size) = (symbol.address(), symbol.size());
        let backed = segments
            .iter()
            .any(|&(v, _, filesz, _, _)| addr >= v && addr.saturating_add(size) <= v + filesz);
        if !backed {
            errors.push(fail(
                "not in initialised data (make it a non-zero or .data static)",
            ));
            continue;
        }
        let value: Vec<u8> = match &patch.value {
            PatchValue::Word(w) => w.to_le_bytes().to_vec(),
            PatchValue::PrefillSize(region) => {
                prefill_sizes(region).unwrap_or(0).to_le_bytes().to_vec()
            }
            PatchValue::Bytes(b) => b.as_bytes().to_vec(),
        };
        let word = !matches!(patch.value, PatchValue::Bytes(_));
        if (word && size != 8) || (!word && (size as usize) <= value.len()) {
            errors.push(fail(&format!(
                "it is {size} bytes; it must be {}",
                if word {
                    "8".to_string()
                } else {
                    format!("more than {}", value.len())
                }
            )));
            continue;
        }
        let at = (addr - base) as usize;
        let slot = &mut bytes[at..at + size as usize];
        slot.fill(0);
        slot[..value.len()].copy_from_slice(&value);
    }
    let segments = segments
        .iter()
        .map(|&(v, _, _, mem, flags)| {
            let perms: String = [(PF_R, 'r'), (PF_W, 'w'), (PF_X, 'x')]
                .iter()
                .map(|&(bit, c)| if flags & bit != 0 { c } else { '-' })
                .collect();
            (v, mem, perms)
        })
        .collect();
    Some(Program {
        bytes,
        base,
        mem_size: end - base,
        entry: file.entry(),
        segments,
    })
}

/// The virtual range `[lo, hi)` a program's loadable segments span, if it can be read
/// (problems are reported when the program is loaded).
fn program_extent(path: &str, search_paths: &[PathBuf]) -> Option<(u64, u64)> {
    let data = std::fs::read(find(path, search_paths)?).ok()?;
    let file = ElfFile64::<Endianness>::parse(data.as_slice()).ok()?;
    let endian = file.endian();
    let loads = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD && ph.p_memsz(endian) > 0)
        .map(|ph| {
            (
                ph.p_vaddr(endian),
                ph.p_vaddr(endian).saturating_add(ph.p_memsz(endian)),
            )
        });
    loads.fold(None, |acc, (lo, hi)| match acc {
        None => Some((lo, hi)),
        Some((a, b)) => Some((a.min(lo), b.max(hi))),
    })
}

fn overlaps(vaddr: u64, size: u64, map: &MapPlan) -> bool {
    vaddr < map.vaddr.saturating_add(map.size) && map.vaddr < vaddr.saturating_add(size)
}

/// Packs `system` (checked from `text`) into a bootable image.
pub fn pack(
    system: &SystemDescription,
    text: &str,
    inputs: &Inputs<'_>,
) -> Result<Packed, Vec<PackError>> {
    let mut errors = Vec::new();
    // Prefill files: found and read once, their lengths used by the plan and the patches.
    // (region, file as written, contents)
    let mut prefills: Vec<(String, String, Vec<u8>)> = Vec::new();
    for mr in system.memory_regions.values() {
        if let Some(Prefill::File(path)) = &mr.prefill {
            match find(path, inputs.search_paths).map(std::fs::read) {
                Some(Ok(bytes)) if bytes.is_empty() => errors.push(PackError::Prefill {
                    region: mr.name.clone(),
                    reason: format!("'{path}' is empty"),
                }),
                Some(Ok(bytes)) if mr.size.is_some_and(|s| bytes.len() as u64 > s) => {
                    errors.push(PackError::Prefill {
                        region: mr.name.clone(),
                        reason: format!(
                            "'{path}' has {} bytes, more than the region's {:#x}",
                            bytes.len(),
                            mr.size.unwrap_or(0)
                        ),
                    })
                }
                Some(Ok(bytes)) => prefills.push((mr.name.clone(), path.clone(), bytes)),
                Some(Err(e)) => errors.push(PackError::Prefill {
                    region: mr.name.clone(),
                    reason: e.to_string(),
                }),
                None => errors.push(PackError::NotFound {
                    what: format!("prefill file of region '{}'", mr.name),
                    path: path.clone(),
                    searched: searched(inputs.search_paths),
                }),
            }
        }
    }
    let prefill_by_path = |path: &str| {
        prefills
            .iter()
            .find(|(_, p, _)| *p == path)
            .map(|(_, _, b)| b.len() as u64)
    };
    let prefill_by_region = |region: &str| {
        prefills
            .iter()
            .find(|(n, _, _)| n == region)
            .map(|(_, _, b)| b.len() as u64)
    };
    let mut plan = match crate::plan::plan_with_prefills(
        system,
        text,
        inputs.board,
        &prefill_by_path,
        &|path| program_extent(path, inputs.search_paths),
    ) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            errors.extend(
                diagnostics
                    .into_iter()
                    .map(|d| PackError::Layout(d.message)),
            );
            return Err(errors);
        }
    };

    let kernel = atoll_pack::elf::flatten_kernel(inputs.kernel_elf)
        .map_err(|e| vec![PackError::Layout(e.to_string())])?;
    let loader = atoll_pack::elf::flatten_loader(inputs.loader_elf)
        .map_err(|e| vec![PackError::Layout(e.to_string())])?;
    let initialiser = match inputs.initialiser_elf {
        Some(elf) => Some(
            atoll_pack::elf::flatten_program("initialiser", elf)
                .map_err(|e| vec![PackError::Layout(e.to_string())])?,
        ),
        None => None,
    };

    let mut extra = Vec::new();
    for replica in &mut plan.replicas {
        let ram_end = replica.ram.base + replica.ram.size;
        let mut next = ram_end - replica.free_bytes;
        for pd in &mut replica.protection_domains {
            let symbols_path = system
                .protection_domains
                .get(pd.name.as_str())
                .and_then(|p| p.program_image.path_for_symbols.as_deref());
            let Some(program) = load_program(
                pd,
                symbols_path,
                inputs.search_paths,
                &prefill_by_region,
                &mut errors,
            ) else {
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
            extra.push(ExtraPart {
                entry: PartEntry {
                    kind: PartKind::PdImage as u32,
                    replica: replica.index as u32,
                    offset: 0,
                    file_size: program.bytes.len() as u64,
                    mem_size: program.mem_size,
                    dest_offset: pa - replica.ram.base,
                    vaddr: program.base,
                    entry: program.entry,
                    reserved: 0,
                },
                bytes: program.bytes,
            });
            pd.image = Some(ImagePlacement {
                phys_addr: pa,
                size: program.mem_size,
                entry: program.entry,
                segments: program.segments,
            });
        }
        replica.free_bytes = ram_end.saturating_sub(next);
    }
    // Boot programs, at the top of each replica's RAM (sized by trying).
    let mut boot_programs = Vec::new();
    if errors.is_empty() {
        for replica in &plan.replicas {
            let ram_end = replica.ram.base + replica.ram.size;
            let mut reserve = 0x1_0000u64;
            let program = loop {
                let pa = ram_end - reserve;
                if reserve > replica.free_bytes {
                    errors.push(PackError::Layout(format!(
                        "replica '{}' has too little RAM left for its boot program",
                        replica.name
                    )));
                    break None;
                }
                match crate::bootprog::generate(&plan, replica, pa) {
                    Ok(bytes) if bytes.len() as u64 <= reserve => break Some((pa, bytes)),
                    Ok(bytes) => reserve = (bytes.len() as u64).next_power_of_two(),
                    Err(e) => {
                        errors.push(PackError::Layout(e));
                        break None;
                    }
                }
                if reserve > atoll_abi::bootprog::MAX_SIZE {
                    errors.push(PackError::Layout(format!(
                        "replica '{}': its boot program is larger than {:#x} bytes",
                        replica.name,
                        atoll_abi::bootprog::MAX_SIZE
                    )));
                    break None;
                }
            };
            let Some((pa, bytes)) = program else { continue };
            extra.push(ExtraPart {
                entry: PartEntry {
                    kind: PartKind::BootProgram as u32,
                    replica: replica.index as u32,
                    offset: 0,
                    file_size: bytes.len() as u64,
                    mem_size: bytes.len().next_multiple_of(PAGE_SIZE as usize) as u64,
                    dest_offset: pa - replica.ram.base,
                    vaddr: 0,
                    entry: 0,
                    reserved: 0,
                },
                bytes,
            });
            boot_programs.push((replica.index, reserve));
        }
    }
    // What the boot program reserves is no longer free.
    for &(index, reserve) in &boot_programs {
        if let Some(replica) = plan.replicas.get_mut(index) {
            replica.free_bytes = replica.free_bytes.saturating_sub(reserve);
        }
    }
    for region in &plan.memory_regions {
        let bytes = prefills
            .iter()
            .find(|(n, _, _)| *n == region.name)
            .map(|(_, _, b)| b.clone());
        let mem_size = region
            .size
            .next_multiple_of(region.page_size)
            .max(region.page_size);
        let part = |replica: u32, dest_offset: u64, bytes: Vec<u8>| ExtraPart {
            entry: PartEntry {
                kind: PartKind::RegionData as u32,
                replica,
                offset: 0,
                file_size: bytes.len() as u64,
                mem_size,
                dest_offset,
                vaddr: 0,
                entry: 0,
                reserved: 0,
            },
            bytes,
        };
        match (&region.home, region.phys_addr) {
            // Microkit zeroes RAM-backed regions: the loader writes their contents, if any,
            // and zeroes the rest, in a replica's RAM or outside all of them.
            (RegionHome::Replica(name), Some(pa)) => {
                if let Some(replica) = plan.replicas.iter().find(|r| &r.name == name) {
                    let dest = pa - replica.ram.base;
                    extra.push(part(replica.index as u32, dest, bytes.unwrap_or_default()));
                }
            }
            (RegionHome::Shared | RegionHome::FixedRam, Some(pa)) => {
                extra.push(part(
                    atoll_abi::image::ALL_REPLICAS,
                    pa,
                    bytes.unwrap_or_default(),
                ));
            }
            (RegionHome::Device, _) if bytes.is_some() => errors.push(PackError::Prefill {
                region: region.name.clone(),
                reason: "a device region (fixed physical address outside RAM) cannot be prefilled"
                    .into(),
            }),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let request = LayoutRequest {
        clusters: plan.replicas.iter().map(|r| r.cores.clone()).collect(),
        flags: inputs.replica_flags.to_vec(),
        tick_hz: atoll_abi::spec::DEFAULT_TICK_HZ,
        shared_pool: plan.ram_request.shared_pool,
        ram_shares: plan.ram_request.shares.clone(),
        reserved: plan.ram_request.reserved.clone(),
        initialiser: initialiser.clone(),
        system_hash: Some(plan.system_hash),
        irq_routes: plan
            .replicas
            .iter()
            .map(|r| {
                // The loader routes shared interrupts; a per-core one (the PD timer) needs
                // no route.
                r.irqs
                    .iter()
                    .filter(|irq| u64::from(irq.irq) >= crate::limits::FIRST_DEVICE_IRQ)
                    .map(|irq| atoll_abi::spec::IrqRoute {
                        intid: irq.irq,
                        core: irq.core,
                        edge: u32::from(irq.trigger == "edge"),
                        reserved: 0,
                    })
                    .collect()
            })
            .collect(),
    };
    let mut specs = atoll_pack::plan::plan(inputs.board, &request, &kernel)
        .map_err(|e| vec![PackError::Layout(e.to_string())])?;
    for part in extra
        .iter()
        .filter(|p| p.entry.kind == PartKind::BootProgram as u32)
    {
        if let Some(planned) = specs.get_mut(part.entry.replica as usize) {
            planned.spec.boot_program_offset = part.entry.dest_offset;
            planned.spec.boot_program_size = part.entry.file_size;
        }
    }
    for (spec, replica) in specs.iter().zip(&plan.replicas) {
        if spec.spec.ram.base != replica.ram.base || spec.spec.ram.size != replica.ram.size {
            return Err(vec![PackError::Layout(format!(
                "replica '{}': boot spec and plan disagree on its RAM",
                replica.name
            ))]);
        }
    }
    let image = atoll_pack::image::bootable_image(
        inputs.board,
        &loader,
        &kernel,
        initialiser.as_ref(),
        &specs,
        &extra,
    )
    .map_err(|e| vec![PackError::Layout(e.to_string())])?;
    Ok(Packed { image, plan })
}
