//! Reading the files a description names, found in the search paths: each region's prefill
//! file, and what planning needs of each PD's program image (the virtual range its segments
//! span). This step comes before planning, so that the one plan knows every size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::Endianness;
use object::read::elf::ElfFile64;

use crate::elf::segments;
use crate::error::PackError;
use crate::model::{Prefill, SystemDescription};

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

/// The search paths as an error message lists them.
pub(crate) fn searched(search_paths: &[PathBuf]) -> String {
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

/// Reads `path` as found in the search paths; `what` names it in the error.
pub(crate) fn read(
    path: &str,
    what: String,
    search_paths: &[PathBuf],
) -> Result<Vec<u8>, PackError> {
    let not_found = || PackError::NotFound {
        what,
        path: path.to_string(),
        searched: searched(search_paths),
    };
    let found = find(path, search_paths).ok_or_else(not_found)?;
    std::fs::read(found).map_err(|e| PackError::BadProgram {
        pd: String::new(),
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// A prefill file, read once: its length sizes the region and patches symbols.
pub(crate) struct PrefillFile {
    /// The region it fills.
    pub(crate) region: String,
    /// The path as written.
    pub(crate) path: String,
    /// Its contents.
    pub(crate) bytes: Vec<u8>,
}

/// The files a description names, as read before planning. The default reads nothing: a
/// region sized only by its prefill file is then planned at one page, and a PD's page
/// tables cover only its mappings (what `--check` and `--plan-only` report).
#[derive(Default)]
pub struct Files {
    /// Every prefill file that could be used, in document order.
    pub(crate) prefills: Vec<PrefillFile>,
    /// The virtual range `[lo, hi)` each readable program image's segments span, by path.
    extents: HashMap<String, (u64, u64)>,
    /// Problems with prefill files, reported with packing's (a program that cannot be read
    /// is reported when it is loaded).
    pub(crate) errors: Vec<PackError>,
}

impl Files {
    /// Reads every prefill file and program image `system` names.
    pub fn read(system: &SystemDescription, search_paths: &[PathBuf]) -> Self {
        let mut errors = Vec::new();
        let prefills = read_prefills(system, search_paths, &mut errors);
        let extents = system
            .protection_domains
            .values()
            .filter_map(|pd| {
                let path = &pd.program_image.path;
                Some((path.clone(), extent(path, search_paths)?))
            })
            .collect();
        Self {
            prefills,
            extents,
            errors,
        }
    }

    /// What is wrong with the prefill files `system` names: each must be found in the
    /// search paths, be readable, hold at least one byte and fit its region. `--check` runs
    /// this (and reads no other file), so it refuses what a build would.
    pub fn prefill_errors(system: &SystemDescription, search_paths: &[PathBuf]) -> Vec<PackError> {
        let mut errors = Vec::new();
        read_prefills(system, search_paths, &mut errors);
        errors
    }

    /// The length of the prefill file at `path`, if it was read.
    pub fn prefill_len(&self, path: &str) -> Option<u64> {
        self.prefills
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.bytes.len() as u64)
    }

    /// The virtual range the program image at `path` spans, if it could be read.
    pub fn program_extent(&self, path: &str) -> Option<(u64, u64)> {
        self.extents.get(path).copied()
    }
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

/// The virtual range `[lo, hi)` a program's loadable segments span, if it can be read
/// (problems are reported when the program is loaded).
fn extent(path: &str, search_paths: &[PathBuf]) -> Option<(u64, u64)> {
    let data = std::fs::read(find(path, search_paths)?).ok()?;
    let file = ElfFile64::<Endianness>::parse(data.as_slice()).ok()?;
    let segments = segments(&file, &data).ok()?;
    let lo = segments.iter().map(|s| s.vaddr).min()?;
    let hi = segments
        .iter()
        .map(|s| s.vaddr.saturating_add(s.mem_size))
        .max()?;
    Some((lo, hi))
}
