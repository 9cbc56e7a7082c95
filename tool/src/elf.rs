//! Reading ELF files: the loadable segments of any program, and the loader, kernel and
//! initialiser flattened into the bytes the image carries.

use object::elf::{PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::spec::attrs;

/// Why reading an ELF file or writing the image failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinaryError {
    /// An ELF file could not be read.
    #[error("{what}: not a usable ELF file: {reason}")]
    Elf {
        /// Which file.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The image does not fit the board, or the loader was built for another.
    #[error("replica layout: {0}")]
    Layout(String),
}

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

fn elf_error(what: &'static str, reason: impl ToString) -> BinaryError {
    BinaryError::Elf {
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

/// The loader, kernel and initialiser, flattened.
pub struct Binaries {
    /// The loader.
    pub loader: LoaderImage,
    /// The kernel every replica runs.
    pub kernel: KernelImage,
    /// The initialiser every replica starts, if the image carries one.
    pub initialiser: Option<KernelImage>,
}

impl Binaries {
    /// Flattens the kernel, loader and initialiser ELF files.
    pub fn read(
        kernel: &[u8],
        loader: &[u8],
        initialiser: Option<&[u8]>,
    ) -> Result<Self, BinaryError> {
        Ok(Self {
            kernel: flatten_kernel(kernel)?,
            loader: flatten_loader(loader)?,
            initialiser: initialiser
                .map(|elf| flatten_program("initialiser", elf))
                .transpose()?,
        })
    }
}

/// A loadable segment of an ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Virtual address.
    pub vaddr: u64,
    /// Physical (load) address.
    pub paddr: u64,
    /// The bytes the file stores for it.
    pub bytes: &'a [u8],
    /// Bytes it occupies in memory (at least `bytes.len()`).
    pub mem_size: u64,
    /// `PF_*` flags.
    pub flags: u32,
}

/// The loadable segments of an ELF file, by virtual address; a segment whose stored bytes
/// run past the file, or past its memory size, is refused.
pub fn segments<'a>(
    file: &ElfFile64<'a, Endianness>,
    data: &'a [u8],
) -> Result<Vec<Segment<'a>>, &'static str> {
    let endian = file.endian();
    let mut out = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let (offset, file_size) = (ph.p_offset(endian), ph.p_filesz(endian));
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(file_size).ok())
            .and_then(|(at, len)| data.get(at..at.checked_add(len)?))
            .filter(|_| file_size <= ph.p_memsz(endian))
            .ok_or("a segment runs past the end of the file")?;
        out.push(Segment {
            vaddr: ph.p_vaddr(endian),
            paddr: ph.p_paddr(endian),
            bytes,
            mem_size: ph.p_memsz(endian),
            flags: ph.p_flags(endian),
        });
    }
    out.sort_by_key(|s| s.vaddr);
    if out.is_empty() {
        return Err("no loadable segments");
    }
    Ok(out)
}

/// Flattens a kernel ELF.
pub fn flatten_kernel(data: &[u8]) -> Result<KernelImage, BinaryError> {
    flatten_program("kernel", data)
}

/// Flattens any program ELF (the kernel, the initialiser): loadable segments on pages of
/// their own, none both writable and executable.
pub fn flatten_program(what: &'static str, data: &[u8]) -> Result<KernelImage, BinaryError> {
    let file = ElfFile64::<Endianness>::parse(data).map_err(|e| elf_error(what, e))?;
    let segments = segments(&file, data).map_err(|e| elf_error(what, e))?;
    let vaddr = page_down(segments[0].vaddr);
    let mut bytes = Vec::new();
    let mut end = vaddr;
    let mut mappings = Vec::new();
    for segment in &segments {
        let (va, file_bytes, mem_size, flags) = (
            segment.vaddr,
            segment.bytes,
            segment.mem_size,
            segment.flags,
        );
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
pub fn flatten_loader(data: &[u8]) -> Result<LoaderImage, BinaryError> {
    const WHAT: &str = "loader";
    let file = ElfFile64::<Endianness>::parse(data).map_err(|e| elf_error(WHAT, e))?;
    let segments = segments(&file, data).map_err(|e| elf_error(WHAT, e))?;
    let base = segments[0].paddr;
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
    for segment in &segments {
        let (pa, file_bytes) = (segment.paddr, segment.bytes);
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
