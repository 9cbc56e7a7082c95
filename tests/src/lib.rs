//! What the end-to-end tests share with `cargo xtask`: the table of test images
//! ([`variants`]), booting one in a test ([`boot`]), and judging a kernel fuzz run
//! ([`fuzz`]). The tests themselves are in `tests/boot.rs`; the QEMU runner is the
//! `atoll-runner` crate.
#![forbid(unsafe_code)]

pub mod boot;
pub mod fuzz;
pub mod variants;
