//! Cross-replica transport, usable from PDs on both sides of a shared memory region.
//!
//! Design principles: fixed layouts (`#[repr(C)]`, zerocopy, checked at compile time);
//! every shared word accessed through atomics, so a peer writing at the wrong time is never
//! undefined behaviour; nothing read from shared memory trusted: indices and lengths are
//! checked, and a corrupt ring is an error the caller sees, not a crash.
//!
//! [`ring`] carries small messages between replicas; [`queue`] carries buffers of a shared
//! data region between a device driver and its client, in the shape of seL4's sDDF;
//! [`rt`] publishes the real-time PD's statistics to other replicas.
#![no_std]

pub mod block;
pub mod kv;
pub mod queue;
pub mod ring;
pub mod rt;
