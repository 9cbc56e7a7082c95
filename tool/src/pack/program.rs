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
        if let Err(error) = patched {
            errors.push(error.into_pack_error(&pd.name, &patch.symbol));
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

/// Why a symbol could not be patched.
#[derive(Debug, PartialEq, Eq)]
enum PatchError {
    /// Missing, outside the segments, or the wrong size for a word or a name.
    Symbol(String),
    /// Too small for the system directory: its size, and the directory's.
    DirectoryTooSmall(u64, usize),
    /// Too small for a `<setvar value>`'s 8 bytes: its size, and the value.
    LiteralTooSmall(u64, u64),
}

impl PatchError {
    fn into_pack_error(self, pd: &str, symbol: &str) -> PackError {
        let (pd, symbol) = (pd.to_string(), symbol.to_string());
        match self {
            Self::Symbol(reason) => PackError::Symbol { pd, symbol, reason },
            Self::DirectoryTooSmall(size, needed) => PackError::DirectorySymbol {
                pd,
                symbol,
                size,
                needed,
            },
            Self::LiteralTooSmall(size, value) => PackError::ValueSymbol {
                pd,
                symbol,
                size,
                value,
            },
        }
    }
}

/// Whether a symbol of `size` bytes takes `value`, `len` bytes once encoded: a word or a
/// prefill size exactly 8 bytes, an array of words exactly its size, a name more than its
/// length (so that a NUL follows it), the system directory and a literal at least their
/// size (the rest is zeroed).
fn check_size(value: &PatchValue, size: u64, len: usize) -> Result<(), PatchError> {
    let len64 = len as u64;
    match value {
        PatchValue::Word(_) | PatchValue::PrefillSize(_) if size != 8 => Err(PatchError::Symbol(
            format!("it is {size} bytes; it must be 8"),
        )),
        PatchValue::Words(_) if size != len64 => Err(PatchError::Symbol(format!(
            "it is {size} bytes; it must be {len}"
        ))),
        PatchValue::Bytes(_) if size <= len64 => Err(PatchError::Symbol(format!(
            "it is {size} bytes; it must be more than {len}"
        ))),
        PatchValue::Directory(_) if size < len64 => Err(PatchError::DirectoryTooSmall(size, len)),
        PatchValue::Literal(value) if size < len64 => {
            Err(PatchError::LiteralTooSmall(size, *value))
        }
        _ => Ok(()),
    }
}

/// Writes one symbol's value into `bytes` (the program flattened from `base`, zero-filled
/// sections included). A symbol must lie inside a loadable segment's memory: in its file
/// bytes (`.data`) or in its zero-filled tail (`.bss`, where a C program's plain
/// `uint64_t x;` goes), as Microkit patches either. An optional symbol the program lacks
/// is skipped; one it has is checked and written like any other.
fn patch_symbol(
    symbols: &ElfFile64<'_, Endianness>,
    segments: &[Segment<'_>],
    patch: &SymbolPatch,
    prefill_sizes: &dyn Fn(&str) -> Option<u64>,
    base: u64,
    bytes: &mut [u8],
) -> Result<(), PatchError> {
    let Some(symbol) = symbols
        .symbols()
        .find(|s| s.name() == Ok(patch.symbol.as_str()))
    else {
        if patch.optional {
            return Ok(());
        }
        return Err(PatchError::Symbol("not found in the program".into()));
    };
    let (addr, size) = (symbol.address(), symbol.size());
    let inside = segments.iter().any(|s| {
        addr >= s.vaddr && addr.saturating_add(size) <= s.vaddr.saturating_add(s.mem_size)
    });
    if !inside {
        return Err(PatchError::Symbol(
            "not inside a loadable segment of the program".into(),
        ));
    }
    let value: Vec<u8> = match &patch.value {
        PatchValue::Word(w) => w.to_le_bytes().to_vec(),
        PatchValue::PrefillSize(region) => {
            prefill_sizes(region).unwrap_or(0).to_le_bytes().to_vec()
        }
        PatchValue::Bytes(b) => b.as_bytes().to_vec(),
        PatchValue::Directory(directory) => directory.bytes.clone(),
        PatchValue::Literal(value) => value.to_le_bytes().to_vec(),
        PatchValue::Words(words) => words.iter().flat_map(|w| w.to_le_bytes()).collect(),
    };
    check_size(&patch.value, size, value.len())?;
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use atoll_abi::directory::Directory;

    use super::*;
    use crate::plan::{DirectoryPatch, PdPlan};

    const SEGMENT: u64 = 0x20_0000;
    const SEGMENT_BYTES: u64 = 0x4000;

    /// A minimal AArch64 ELF: one read-write loadable segment of [`SEGMENT_BYTES`] at
    /// [`SEGMENT`] (its first page in the file, the rest zero-filled), and a global
    /// object symbol per `(name, offset in the segment, size)`.
    fn elf(symbols: &[(&str, u64, u64)]) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, at: usize, bytes: &[u8]) {
            if out.len() < at + bytes.len() {
                out.resize(at + bytes.len(), 0);
            }
            out[at..at + bytes.len()].copy_from_slice(bytes);
        }
        const DATA: usize = 0x1000;
        let mut out = vec![0u8; DATA + 0x1000];
        out[DATA..].fill(0x55);
        // String and symbol tables after the segment's bytes.
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        for &(name, offset, size) in symbols {
            let mut sym = Vec::new();
            sym.extend((strtab.len() as u32).to_le_bytes());
            sym.extend([0x11, 0]); // STB_GLOBAL, STT_OBJECT
            sym.extend(0xfff1u16.to_le_bytes()); // SHN_ABS
            sym.extend((SEGMENT + offset).to_le_bytes());
            sym.extend(size.to_le_bytes());
            symtab.extend(sym);
            strtab.extend(name.as_bytes());
            strtab.push(0);
        }
        let shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0";
        let (symtab_at, strtab_at) = (out.len(), out.len() + symtab.len());
        let shstrtab_at = strtab_at + strtab.len();
        let sections_at = (shstrtab_at + shstrtab.len()).next_multiple_of(8);
        put(&mut out, symtab_at, &symtab);
        put(&mut out, strtab_at, &strtab);
        put(&mut out, shstrtab_at, shstrtab);
        let section = |name: u32, kind: u32, at: usize, size: usize, link: u32, entsize: u64| {
            let mut s = Vec::new();
            s.extend(name.to_le_bytes());
            s.extend(kind.to_le_bytes());
            s.extend(0u64.to_le_bytes()); // flags
            s.extend(0u64.to_le_bytes()); // addr
            s.extend((at as u64).to_le_bytes());
            s.extend((size as u64).to_le_bytes());
            s.extend(link.to_le_bytes());
            s.extend(1u32.to_le_bytes()); // info: the first global symbol
            s.extend(8u64.to_le_bytes()); // addralign
            s.extend(entsize.to_le_bytes());
            s
        };
        let mut sections = vec![0u8; 64];
        sections.extend(section(1, 2, symtab_at, symtab.len(), 2, 24)); // SHT_SYMTAB
        sections.extend(section(9, 3, strtab_at, strtab.len(), 0, 0)); // SHT_STRTAB
        sections.extend(section(17, 3, shstrtab_at, shstrtab.len(), 0, 0));
        put(&mut out, sections_at, &sections);
        // The ELF header and the one program header.
        let mut header = Vec::new();
        header.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        header.extend(2u16.to_le_bytes()); // ET_EXEC
        header.extend(183u16.to_le_bytes()); // EM_AARCH64
        header.extend(1u32.to_le_bytes());
        header.extend(SEGMENT.to_le_bytes()); // entry
        header.extend(64u64.to_le_bytes()); // program headers
        header.extend((sections_at as u64).to_le_bytes());
        header.extend(0u32.to_le_bytes());
        for half in [64u16, 56, 1, 64, 4, 3] {
            header.extend(half.to_le_bytes());
        }
        header.extend(1u32.to_le_bytes()); // PT_LOAD
        header.extend(6u32.to_le_bytes()); // PF_R | PF_W
        header.extend((DATA as u64).to_le_bytes());
        header.extend(SEGMENT.to_le_bytes());
        header.extend(SEGMENT.to_le_bytes());
        header.extend(0x1000u64.to_le_bytes()); // file size
        header.extend(SEGMENT_BYTES.to_le_bytes()); // memory size
        header.extend(0x1000u64.to_le_bytes()); // align
        put(&mut out, 0, &header);
        out
    }

    /// The plan of the `io` PD of a system shaped like the repository's `system.xml`, with
    /// only its directory symbol left to patch.
    fn io_plan() -> PdPlan {
        let text = include_str!("../../tests/fixtures/examples/directory.xml");
        let plan = crate::check(text, &atoll_boards::QEMU_VIRT_AARCH64, false)
            .plan
            .expect("a plan");
        let mut pd = plan
            .replicas
            .iter()
            .flat_map(|r| &r.protection_domains)
            .find(|pd| pd.name == "io")
            .expect("the io PD")
            .clone();
        pd.symbols
            .retain(|s| matches!(s.value, PatchValue::Directory(_)));
        assert_eq!(pd.symbols.len(), 1);
        pd
    }

    /// Loads `pd`'s program, written as `elf` in a directory of its own, named after
    /// `test`.
    fn load_elf(
        test: &str,
        pd: &PdPlan,
        elf: &[u8],
        errors: &mut Vec<PackError>,
    ) -> Option<Program> {
        let dir: PathBuf =
            std::env::temp_dir().join(format!("atoll-tool-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(Path::new(&pd.program_image)), elf).unwrap();
        let program = load(pd, None, std::slice::from_ref(&dir), &|_| None, errors);
        std::fs::remove_dir_all(&dir).unwrap();
        program
    }

    const DIRECTORY_BYTES: u64 = size_of::<Directory>() as u64;

    #[test]
    fn the_directory_is_written_over_a_symbol_that_holds_it() {
        let pd = io_plan();
        // A symbol larger than the directory, from the file's bytes into the zero-filled
        // tail: zeroed past the directory.
        let elf = elf(&[("atoll_directory", 0x800, DIRECTORY_BYTES + 8)]);
        let mut errors = Vec::new();
        let program = load_elf("directory-fits", &pd, &elf, &mut errors).expect("a program");
        assert_eq!(errors, []);
        let at = (SEGMENT + 0x800 - program.base) as usize;
        let directory = Directory::read(&program.bytes[at..]).expect("a valid directory");
        let names: Vec<&str> = directory.replicas().map(|r| r.name()).collect();
        assert_eq!(names, ["io", "rt", "storage"]);
        let end = at + DIRECTORY_BYTES as usize;
        assert_eq!(program.bytes[end..end + 8], [0; 8]);
        // The bytes before the symbol are the file's.
        assert_eq!(program.bytes[at - 8..at], [0x55; 8]);
    }

    #[test]
    fn a_symbol_smaller_than_the_directory_is_refused_with_both_sizes() {
        let pd = io_plan();
        let elf = elf(&[("atoll_directory", 0x100, 8)]);
        let mut errors = Vec::new();
        load_elf("directory-too-small", &pd, &elf, &mut errors);
        assert_eq!(
            errors,
            [PackError::DirectorySymbol {
                pd: "io".into(),
                symbol: "atoll_directory".into(),
                size: 8,
                needed: DIRECTORY_BYTES as usize,
            }]
        );
        let message = errors[0].to_string();
        for part in ["'io'", "'atoll_directory'", "8 bytes", "5440"] {
            assert!(message.contains(part), "{message}");
        }
    }

    /// The plan of a PD given its address by `<setvar value="10.0.2.15">`, with only that
    /// symbol left to patch.
    fn literal_plan() -> PdPlan {
        let text = r#"<system>
  <protection_domain name="io" priority="100">
    <program_image path="io.elf" />
    <setvar symbol="net_ipv4_address" value="10.0.2.15" />
  </protection_domain>
</system>"#;
        let checked = crate::check(text, &atoll_boards::QEMU_VIRT_AARCH64, false);
        assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
        let mut pd = checked.plan.expect("a plan").replicas[0].protection_domains[0].clone();
        pd.symbols
            .retain(|s| matches!(s.value, PatchValue::Literal(_)));
        assert_eq!(pd.symbols.len(), 1);
        pd
    }

    #[test]
    fn a_literal_is_written_little_endian_and_zeroed_past_its_eight_bytes() {
        let pd = literal_plan();
        for (test, size) in [("literal-8", 8), ("literal-16", 16)] {
            let elf = elf(&[("net_ipv4_address", 0x800, size)]);
            let mut errors = Vec::new();
            let program = load_elf(test, &pd, &elf, &mut errors).expect("a program");
            assert_eq!(errors, []);
            let at = (SEGMENT + 0x800 - program.base) as usize;
            assert_eq!(
                program.bytes[at..at + 8],
                0x0a00_020f_u64.to_le_bytes(),
                "{size}"
            );
            let end = at + size as usize;
            assert_eq!(program.bytes[at + 8..end], vec![0; size as usize - 8]);
            // The file's bytes on either side are untouched.
            assert_eq!(program.bytes[at - 8..at], [0x55; 8]);
            assert_eq!(program.bytes[end..end + 8], [0x55; 8]);
        }
    }

    #[test]
    fn a_symbol_smaller_than_a_literal_is_refused_with_its_size_and_the_value() {
        let pd = literal_plan();
        let elf = elf(&[("net_ipv4_address", 0x100, 4)]);
        let mut errors = Vec::new();
        load_elf("literal-too-small", &pd, &elf, &mut errors);
        assert_eq!(
            errors,
            [PackError::ValueSymbol {
                pd: "io".into(),
                symbol: "net_ipv4_address".into(),
                size: 4,
                value: 0x0a00_020f,
            }]
        );
        let message = errors[0].to_string();
        for part in [
            "'io'",
            "'net_ipv4_address'",
            "0xa00020f",
            "4 bytes",
            "the value 8",
        ] {
            assert!(message.contains(part), "{message}");
        }
    }

    /// The plan of PD `a` on replica `r0`, with channels 3 and 5 to `b` on replica `r1`.
    fn peer_plan() -> PdPlan {
        let text = r#"<system>
  <replica name="r0" cores="0" />
  <replica name="r1" cores="1" restart="true" />
  <protection_domain name="a" replica="r0"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="b" replica="r1"><program_image path="b.elf" /></protection_domain>
  <channel><end pd="a" id="3" /><end pd="b" id="0" /></channel>
  <channel><end pd="a" id="5" /><end pd="b" id="1" /></channel>
</system>"#;
        let checked = crate::check(text, &atoll_boards::QEMU_VIRT_AARCH64, false);
        assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
        checked.plan.expect("a plan").replicas[0].protection_domains[0].clone()
    }

    /// `pd` with only its optional patches (`optional`) or only its others.
    fn only(mut pd: PdPlan, optional: bool) -> PdPlan {
        pd.symbols.retain(|s| s.optional == optional);
        pd
    }

    #[test]
    fn peer_channels_are_written_as_eight_little_endian_words() {
        let pd = only(peer_plan(), true);
        assert_eq!(pd.symbols.len(), 1);
        let elf = elf(&[("atoll_peer_channels", 0x800, 64)]);
        let mut errors = Vec::new();
        let program = load_elf("peer-channels", &pd, &elf, &mut errors).expect("a program");
        assert_eq!(errors, []);
        let at = (SEGMENT + 0x800 - program.base) as usize;
        let words: Vec<u64> = program.bytes[at..at + 64]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(words, [0, 1 << 3 | 1 << 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(program.bytes[at - 8..at], [0x55; 8]);
        assert_eq!(program.bytes[at + 64..at + 72], [0x55; 8]);
    }

    #[test]
    fn a_program_without_peer_channels_is_left_as_it_is() {
        let pd = only(peer_plan(), true);
        let elf = elf(&[("something_else", 0x800, 64)]);
        let mut errors = Vec::new();
        let program = load_elf("no-peer-channels", &pd, &elf, &mut errors).expect("a program");
        assert_eq!(errors, []);
        assert!(program.bytes[..0x1000].iter().all(|&b| b == 0x55));
    }

    #[test]
    fn peer_channels_of_the_wrong_size_are_refused() {
        let pd = only(peer_plan(), true);
        let elf = elf(&[("atoll_peer_channels", 0x800, 8)]);
        let mut errors = Vec::new();
        load_elf("peer-channels-small", &pd, &elf, &mut errors);
        assert_eq!(
            errors,
            [PackError::Symbol {
                pd: "a".into(),
                symbol: "atoll_peer_channels".into(),
                reason: "it is 8 bytes; it must be 64".into(),
            }]
        );
    }

    #[test]
    fn microkit_symbols_stay_mandatory() {
        let pd = only(peer_plan(), false);
        let elf = elf(&[]);
        let mut errors = Vec::new();
        load_elf("mandatory", &pd, &elf, &mut errors);
        let missing: Vec<&str> = errors
            .iter()
            .map(|e| match e {
                PackError::Symbol { symbol, reason, .. } => {
                    assert_eq!(reason, "not found in the program");
                    symbol.as_str()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            missing,
            [
                "microkit_name",
                "microkit_passive",
                "microkit_notifications",
                "microkit_pps",
                "microkit_irqs"
            ]
        );
    }

    #[test]
    fn symbol_sizes_each_value_takes() {
        let directory = PatchValue::Directory(DirectoryPatch {
            replicas: 0,
            pds: 0,
            bytes: vec![0; 16],
        });
        let word = PatchValue::Word(1);
        let name = PatchValue::Bytes("io".into());
        let ok = |value: &PatchValue, size: u64, len: usize| check_size(value, size, len).is_ok();
        assert!(ok(&word, 8, 8) && !ok(&word, 16, 8) && !ok(&word, 4, 8));
        assert!(ok(&name, 3, 2) && !ok(&name, 2, 2));
        assert!(ok(&directory, 16, 16) && ok(&directory, 17, 16));
        let literal = PatchValue::Literal(7);
        assert!(ok(&literal, 8, 8) && ok(&literal, 16, 8));
        let words = PatchValue::Words(vec![0; 8]);
        assert!(ok(&words, 64, 64) && !ok(&words, 72, 64) && !ok(&words, 8, 64));
        assert_eq!(
            check_size(&literal, 4, 8),
            Err(PatchError::LiteralTooSmall(4, 7))
        );
        assert_eq!(
            check_size(&directory, 15, 16),
            Err(PatchError::DirectoryTooSmall(15, 16))
        );
    }
}
