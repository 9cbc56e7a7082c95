//! `libmicrokit.a` for Atoll's SDK: Microkit's C API for protection domains written in C
//! against `microkit.h` (in `include/`, installed by `cargo xtask sdk`).
//!
//! The archive is the PD runtime built with its `c-api` feature: the program entry, the
//! event loop that calls the C program's `init`, `notified`, `protected` and `fault`, the
//! symbols the `microkit` tool patches, and the `microkit_*` and `seL4_*` functions the
//! headers declare (`atoll_microkit::capi`). Building it as a crate of its own keeps that
//! feature away from Rust PDs, which define their own entry. See `docs/c-api.md`.
#![no_std]

// Links the runtime (and with it the C API's exported symbols) into the archive.
pub use atoll_microkit::capi;
