//! Portable kernel logic, built for the target and tested on the host.
//!
//! Design principles: nothing here touches a register or an address it was not handed; the
//! aarch64 kernel and the loader supply memory through small traits, and the host tests
//! supply plain buffers. Nothing here panics on data a peer or a PD controls.
//!
//! The modules below say what each holds in their own documentation, from which rustdoc
//! builds the crate's module list; `kernel` is the replica kernel itself, organised by
//! object (`docs/kernel.md` maps its files).

#![no_std]
// Nothing here needs `unsafe`: memory comes through safe traits and typed tables.
#![forbid(unsafe_code)]
// Nothing a thread, a peer replica or a device controls may panic a kernel: outside the
// host tests, the constructs that can panic are refused. The exceptions are each marked
// `#[expect]` with their reason (the tables' masked index, compile-time tables).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod bootcheck;
pub mod cap;
pub mod domains;
pub mod esr;
pub mod fault;
pub mod id;
pub mod ipc;
pub mod kernel;
pub mod line;
pub mod loadcheck;
pub mod pagetable;
pub mod ping_ring;
pub mod sched;
pub mod watch;
