//! The host side of Atoll's image format.
//!
//! - [`elf`]: turns the loader and kernel ELF files into the flat bytes the image carries.
//! - [`plan`]: splits a board into replicas (cores, RAM, shared area) and writes each
//!   replica's boot spec. Until the `microkit` tool plans from `system.xml`, this is how
//!   `cargo xtask build` lays out the default system.
//! - [`image`]: packs the loader, kernel and specs into one bootable file.
//!
//! Everything here is deterministic: the same inputs give byte-identical images.
#![forbid(unsafe_code)]

pub mod elf;
pub mod image;
pub mod plan;

/// Why packing failed.
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
    /// The requested layout does not fit the board.
    #[error("replica layout: {0}")]
    Layout(String),
}
