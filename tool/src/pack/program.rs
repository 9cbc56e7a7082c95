//! A PD's program: found, read, checked against the PD's mappings, flattened and patched
//! with the symbols the plan lists.

use std::path::PathBuf;

use crate::elf::{Segment, segments};
use atoll_abi::limits::PAGE_SIZE;
use object::elf::{PF_R, PF_W, PF_X};
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSymbol};

use crate::error::PackError;
use crate::files::{read, searched};
use crate::plan::{MapPlan, PatchValue, PdPlan, ProgramShape, SymbolPatch};

/// The largest span a program's loadable segments may cover.
const MAX_PROGRAM_SPAN: u64 = 0x1000_0000;

/// A program image read and checked.
pub(super) struct Program {
    /// Flat bytes from `base` (page aligned), patched.
    pub(super) bytes: Vec<u8>,
    /// Virtual address of `bytes[0]`.
    pub(super) base: u64,
    /// What placing it needs.
    pub(super) shape: ProgramShape,
}

/// Reads one PD's program (and its separate symbol file, if one is named), checks it,
/// flattens it and patches it. Every problem found is added to `errors`.
pub(super) fn load(
    pd: &PdPlan,
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
    let what = format!("program image of '{}'", pd.name);
    let data = match read(&pd.program_image, what, search_paths) {
        Ok(data) => data,
        Err(PackError::BadProgram { reason, .. }) => {
            errors.push(bad(reason));
            return None;
        }
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    // The symbols come from the program itself unless a separate file is named.
    let separate_symbols = match path_for_symbols {
        Some(p) => {
            let what = format!("symbol file of '{}'", pd.name);
            match read(p, what.clone(), search_paths) {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(PackError::NotFound {
                        what,
                        path: p.to_string(),
                        searched: searched(search_paths),
                    });
                    return None;
                }
            }
        }
        None => None,
    };
    let file = ElfFile64::<Endianness>::parse(data.as_slice())
        .map_err(|e| errors.push(bad(format!("not a 64-bit ELF file ({e})"))))
        .ok()?;
    let symbols = ElfFile64::<Endianness>::parse(separate_symbols.as_deref().unwrap_or(&data))
        .map_err(|e| errors.push(bad(format!("symbol file is not a 64-bit ELF file ({e})"))))
        .ok()?;
    let segments = segments(&file, &data)
        .map_err(|e| errors.push(bad(e.into())))
        .ok()?;
    let (base, end) = span(&segments).map_err(|e| errors.push(bad(e))).ok()?;
    check_overlaps(pd, &segments, errors);
    let mut bytes = vec![0u8; (end - base) as usize];
    for segment in &segments {
        let at = (segment.vaddr - base) as usize;
        bytes[at..at + segment.bytes.len()].copy_from_slice(segment.bytes);
    }
    for patch in &pd.symbols {
        let patched = patch_symbol(&symbols, &segments, patch, prefill_sizes, base, &mut bytes);
        if let Err(reason) = patched {
            errors.push(PackError::Symbol {
                pd: pd.name.clone(),
                symbol: patch.symbol.clone(),
                reason,
            });
        }
    }
    Some(Program {
        bytes,
        base,
        shape: ProgramShape {
            mem_size: end - base,
            entry: file.entry(),
            segments: segments.iter().map(described).collect(),
        },
    })
}

/// The page-aligned span `[base, end)` of the segments, if it is not too large.
fn span(segments: &[Segment<'_>]) -> Result<(u64, u64), String> {
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err("no loadable segments".into());
    };
    let base = first.vaddr & !(PAGE_SIZE - 1);
    let end = last
        .vaddr
        .checked_add(last.mem_size)
        .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
        .ok_or("segment addresses overflow")?;
    if end - base > MAX_PROGRAM_SPAN {
        return Err(format!("loadable segments span {:#x} bytes", end - base));
    }
    Ok((base, end))
}

/// Reports each segment that overlaps one of the PD's mappings.
fn check_overlaps(pd: &PdPlan, segments: &[Segment<'_>], errors: &mut Vec<PackError>) {
    for segment in segments {
        for map in pd.maps.iter().filter(|m| overlaps(segment, m)) {
            errors.push(PackError::Overlap {
                pd: pd.name.clone(),
                segment: segment.vaddr,
                size: segment.mem_size,
                what: map.what.clone(),
                vaddr: map.vaddr,
            });
        }
    }
}

fn overlaps(segment: &Segment<'_>, map: &MapPlan) -> bool {
    segment.vaddr < map.vaddr.saturating_add(map.size)
        && map.vaddr < segment.vaddr.saturating_add(segment.mem_size)
}

/// Writes one symbol's value into `bytes` (the program flattened from `base`, zero-filled
/// sections included). A symbol must lie inside a loadable segment's memory: in its file
/// bytes (`.data`) or in its zero-filled tail (`.bss`, where a C program's plain
/// `uint64_t x;` goes), as Microkit patches either.
fn patch_symbol(
    symbols: &ElfFile64<'_, Endianness>,
    segments: &[Segment<'_>],
    patch: &SymbolPatch,
    prefill_sizes: &dyn Fn(&str) -> Option<u64>,
    base: u64,
    bytes: &mut [u8],
) -> Result<(), String> {
    let symbol = symbols
        .symbols()
        .find(|s| s.name() == Ok(patch.symbol.as_str()))
        .ok_or("not found in the program")?;
    let (addr, size) = (symbol.address(), symbol.size());
    let inside = segments.iter().any(|s| {
        addr >= s.vaddr && addr.saturating_add(size) <= s.vaddr.saturating_add(s.mem_size)
    });
    if !inside {
        return Err("not inside a loadable segment of the program".into());
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
        let needed = if word {
            "8".to_string()
        } else {
            format!("more than {}", value.len())
        };
        return Err(format!("it is {size} bytes; it must be {needed}"));
    }
    let at = (addr - base) as usize;
    let slot = &mut bytes[at..at + size as usize];
    slot.fill(0);
    slot[..value.len()].copy_from_slice(&value);
    Ok(())
}

/// A segment as the report shows it: virtual address, memory size, `rwx` permissions.
fn described(segment: &Segment<'_>) -> (u64, u64, String) {
    let perms: String = [(PF_R, 'r'), (PF_W, 'w'), (PF_X, 'x')]
        .iter()
        .map(|&(bit, c)| if segment.flags & bit != 0 { c } else { '-' })
        .collect();
    (segment.vaddr, segment.mem_size, perms)
}
