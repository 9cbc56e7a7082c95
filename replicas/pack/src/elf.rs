//! ELF flattening for the loader and the kernel.

use object::elf::{PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::spec::attrs;

use crate::PackError;

/// A kernel ready to be placed: flat bytes from its lowest loadable address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// Stored bytes (loadable segments at their offsets from `vaddr`, gaps zeroed).
    pub bytes: Vec<u8>,
    /// Virtual address of `bytes[0]` (page aligned).
    pub vaddr: u64,
    /// Bytes occupied in memory, page rounded (includes `.bss`).
    pub mem_size: u64,
    /// Entry point.
    pub entry: u64,
    /// One mapping per loadable segment: virtual address, size, [`attrs`] bits.
    pub segments: Vec<(u64, u64, u64)>,
}

/// The loader as the first bytes of the image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderImage {
    /// Bytes from its load address up to `__loader_end` (bss included, as zeros).
    pub bytes: Vec<u8>,
    /// Its load (physical) address.
    pub base: u64,
}

fn elf_error(what: &'static str, reason: impl ToString) -> PackError {
    PackError::Elf {
        what,
        reason: reason.to_string(),
    }
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

fn page_up(x: u64) -> u64 {
    x.next_multiple_of(PAGE_SIZE)
}

/// A loadable segment: (vaddr, paddr, file bytes, mem size, flags).
type Segment<'a> = (u64, u64, &'a [u8], u64, u32);

/// The loadable segments, by address.
fn load_segments<'a>(
    what: &'static str,
    file: &ElfFile64<'a, Endianness>,
    data: &'a [u8],
) -> Result<Vec<Segment<'a>>, PackError> {
    let endian = file.endian();
    let mut out = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, data)
            .map_err(|_| elf_error(what, "segment data out of bounds"))?;
        out.push((
            ph.p_vaddr(endian),
            ph.p_paddr(endian),
            bytes,
            ph.p_memsz(endian),
            ph.p_flags(endian),
        ));
    }
    out.sort_by_key(|s| s.0);
    if out.is_empty() {
        return Err(elf_error(what, "no loadable segments"));
    }
    Ok(out)
}

/// Flattens a kernel ELF.
pub fn flatten_kernel(data: &[u8]) -> Result<KernelImage, PackError> {
    flatten_program("kernel", data)
}

/// Flattens any program ELF (the kernel, the initialiser): loadable segments on pages of
/// their own, none both writable and executable.
pub fn flatten_program(what: &'static str, data: &[u8]) -> Result<KernelImage, PackError> {
    let file = ElfFile64::<Endianness>::parse(data).map_err(|e| elf_error(what, e))?;
    let segments = load_segments(what, &file, data)?;
    let vaddr = page_down(segments[0].0);
    let mut bytes = Vec::new();
    let mut end = vaddr;
    let mut mappings = Vec::new();
    for &(va, _, file_bytes, mem_size, flags) in &segments {
        let start = page_down(va);
        if start < end {
            return Err(elf_error(
                what,
                format!("segment at {va:#x} shares a page with the previous one"),
            ));
        }
        let offset = (va - vaddr) as usize;
        if !file_bytes.is_empty() {
            bytes.resize(offset, 0);
            bytes.extend_from_slice(file_bytes);
        }
        end = page_up(va + mem_size);
        let mut a = 0;
        if flags & PF_W != 0 {
            a |= attrs::WRITE;
        }
        if flags & PF_X != 0 {
            a |= attrs::EXEC;
        }
        if a & attrs::WRITE != 0 && a & attrs::EXEC != 0 {
            return Err(elf_error(
                what,
                format!("segment at {va:#x} is both writable and executable"),
            ));
        }
        mappings.push((start, end - start, a));
    }
    Ok(KernelImage {
        bytes,
        vaddr,
        mem_size: end - vaddr,
        entry: file.entry(),
        segments: mappings,
    })
}

/// Flattens the loader ELF, which must define `__loader_end`.
pub fn flatten_loader(data: &[u8]) -> Result<LoaderImage, PackError> {
    const WHAT: &str = "loader";
    let file = ElfFile64::<Endianness>::parse(data).map_err(|e| elf_error(WHAT, e))?;
    let segments = load_segments(WHAT, &file, data)?;
    let base = segments[0].1;
    let end = file
        .symbols()
        .find(|s| s.name() == Ok("__loader_end"))
        .map(|s| s.address())
        .ok_or_else(|| elf_error(WHAT, "no __loader_end symbol"))?;
    if end <= base || end % PAGE_SIZE != 0 {
        return Err(elf_error(
            WHAT,
            "__loader_end is not a page boundary after the start",
        ));
    }
    let mut bytes = vec![0u8; (end - base) as usize];
    for &(_, pa, file_bytes, _, _) in &segments {
        let at = pa
            .checked_sub(base)
            .ok_or_else(|| elf_error(WHAT, "segment below the load address"))?
            as usize;
        let dest = bytes
            .get_mut(at..at + file_bytes.len())
            .ok_or_else(|| elf_error(WHAT, "segment past __loader_end"))?;
        dest.copy_from_slice(file_bytes);
    }
    if bytes.get(0x38..0x3C) != Some(b"ARM\x64") {
        return Err(elf_error(WHAT, "no arm64 Image header at the start"));
    }
    Ok(LoaderImage { bytes, base })
}
