//! What the end-to-end tests share with `cargo xtask`: the table of test images
//! ([`variants`]), booting one in a test ([`boot`]), judging a kernel fuzz run ([`fuzz`]),
//! the C API test system's log ([`c_api`]) and booting the service with a disk and talking
//! HTTP to it ([`service`]). The tests themselves are in `tests/`; the QEMU runner is the
//! `atoll-runner` crate.
#![forbid(unsafe_code)]

pub mod boot;
pub mod c_api;
pub mod fuzz;
pub mod rt;
pub mod service;
pub mod variants;
