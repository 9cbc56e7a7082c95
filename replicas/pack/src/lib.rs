//! The host side of Atoll's image format, below the `microkit` tool's planner.
//!
//! - [`elf`]: reads ELF files: the loadable segments of any program, and the loader,
//!   kernel and initialiser flattened into the bytes the image carries.
//! - [`image`]: writes the loader and the planned parts into one bootable file. It only
//!   writes bytes; what goes where is planned by the tool (`tool/src/plan/`), and the
//!   tool checks the result with the loader's own rules (`atoll_abi::placement`).
//!
//! Everything here is deterministic: the same inputs give byte-identical images.
#![forbid(unsafe_code)]

pub mod elf;
pub mod image;

/// Why reading an ELF file or writing the image failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
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
