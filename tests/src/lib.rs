//! What the end-to-end tests share with `cargo xtask`: the table of test images
//! ([`variants`]), booting one in a test ([`boot`]), judging a kernel fuzz run ([`fuzz`])
//! and the C API test system's log ([`c_api`]). The tests themselves are in
//! `tests/boot.rs`; the QEMU runner is the `atoll-runner` crate.
#![forbid(unsafe_code)]

pub mod boot;
pub mod c_api;
pub mod fuzz;
pub mod variants;
