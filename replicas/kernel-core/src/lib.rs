//! Portable kernel logic, built for the target and tested on the host.
//!
//! Design principles: nothing here touches a register or an address it was not handed; the
//! aarch64 kernel and the loader supply memory through small traits, and the host tests
//! supply plain buffers. Nothing here panics on data a peer or a PD controls.
//!
//! Modules:
//! - [`id`]: typed ids of the kernel's fixed tables, and the tables.
//! - [`kernel`]: the replica kernel without the CPU: objects, system calls, invocations.
//! - [`sched`]: the per-core scheduler: priorities, round robin, budgets and periods.
//! - [`pagetable`]: builds 4 KiB-granule, 39-bit translation tables from mapping lists.
//! - [`cap`]: capabilities, the derivation tree, retype and guarded CNode lookup.
//! - [`fault`]: decodes ESR values into words for fault reports.
//! - [`ipc`]: notification and endpoint state machines (signal, wait, send, receive, call, reply).
//! - [`line`]: a fixed-size line buffer for log lines, and core-set formatting.
#![no_std]
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
pub mod esr;
pub mod fault;
pub mod id;
pub mod ipc;
pub mod kernel;
pub mod line;
pub mod pagetable;
pub mod ping_ring;
pub mod sched;
