//! The kernel binary has no panic path: nothing a PD, a peer replica, a device or the
//! firmware controls can reach a panic if the linked kernel contains none of the standard
//! library's panic entry points (bounds checks, arithmetic checks, `unwrap`, `expect`,
//! `panic!` all end in them). The kernel crates' lints refuse the constructs that panic;
//! this checks what the linker kept, after inlining and LTO.

use std::path::Path;

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSymbol};

/// Parts of the symbol names of the standard library's panic entry points (mangled names
/// contain them as plain text in both the legacy and the v0 scheme).
const PANIC_ENTRY_POINTS: &[&str] = &[
    "panicking",
    "rust_begin_unwind",
    "unwrap_failed",
    "expect_failed",
    "index_len_fail",
    "index_order_fail",
    "index_overflow_fail",
    "assert_failed",
];

/// The symbols of `elf` that are panic entry points.
pub fn panic_symbols(elf: &[u8]) -> Result<Vec<String>> {
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    let mut found: Vec<String> = file
        .symbols()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|name| PANIC_ENTRY_POINTS.iter().any(|p| name.contains(p)))
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Fails, naming them, if the kernel ELF `elf` (read from `path`) links any panic entry
/// point. Every release build checks its kernel so.
pub fn check_kernel(path: &Path, elf: &[u8]) -> Result<()> {
    let found = panic_symbols(elf)?;
    if !found.is_empty() {
        bail!(
            "the kernel {} links panic entry points, so some input can reach a panic: {}",
            path.display(),
            found.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_panic_entry_points_and_they_are_found() {
        // A host binary links the standard library's panic machinery: the check must see
        // it (it would be useless if it found nothing anywhere).
        let me = std::env::current_exe().expect("the test binary");
        let elf = std::fs::read(me).expect("readable");
        let found = panic_symbols(&elf).expect("an ELF");
        assert!(
            found.iter().any(|s| s.contains("panicking")),
            "found only {found:?}"
        );
    }
}
