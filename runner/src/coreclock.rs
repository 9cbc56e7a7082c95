//! Running QEMU with the bench's `atoll-coreclock` plugin (`runner/coreclock`), which times
//! every release of the real-time job on its core's own instruction count, and reading what
//! it recorded.

use std::path::{Path, PathBuf};

/// The plugin's library as `cargo build -p atoll-coreclock` leaves it.
#[must_use]
pub fn library() -> PathBuf {
    crate::target_dir()
        .join("debug")
        .join("libatoll_coreclock.so")
}

/// The address of the kernel's exception vectors (`kernel_vectors` in its `entry.S`) in
/// the kernel ELF `elf`.
///
/// # Errors
/// The bytes are no ELF, or have no such symbol.
pub fn kernel_vectors(elf: &[u8]) -> Result<u64, String> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(elf).map_err(|e| format!("the kernel ELF: {e}"))?;
    file.symbols()
        .find(|s| s.name() == Ok("kernel_vectors"))
        .map(|s| s.address())
        .ok_or_else(|| "the kernel ELF has no kernel_vectors symbol".to_string())
}

/// The QEMU arguments that load the plugin at `lib` for the image whose kernel ELF is
/// `kernel`, recording into `out`.
///
/// # Errors
/// The kernel ELF cannot be read, or a path has a comma (QEMU's option syntax has no
/// escape for it).
pub fn qemu_args(lib: &Path, kernel: &Path, out: &Path) -> Result<Vec<String>, String> {
    let elf = std::fs::read(kernel).map_err(|e| format!("reading {}: {e}", kernel.display()))?;
    let vectors = kernel_vectors(&elf)?;
    for path in [lib, out] {
        if path.to_string_lossy().contains(',') {
            return Err(format!(
                "QEMU's -plugin option cannot take a path with a comma: {}",
                path.display()
            ));
        }
    }
    Ok(vec![
        "-plugin".into(),
        format!(
            "{},vectors={vectors:#x},out={}",
            lib.display(),
            out.display()
        ),
    ])
}

/// What the plugin recorded in `out`: one entry per job, in order, the instructions of its
/// release (`None`: a release the plugin could not time).
///
/// # Errors
/// The file cannot be read.
pub fn records(out: &Path) -> Result<Vec<Option<u32>>, String> {
    let bytes = std::fs::read(out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    Ok(atoll_coreclock::read_records(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_a_comma_is_refused_and_garbage_has_no_vectors() {
        assert!(kernel_vectors(b"not an elf").is_err());
        let err = qemu_args(
            Path::new("/a,b.so"),
            Path::new("/nonexistent"),
            Path::new("/o"),
        );
        assert!(err.is_err());
    }
}
