//! Cross-replica transport, usable from PDs on both sides of a shared memory region.
//!
//! Design principles: fixed layouts (`#[repr(C)]`, zerocopy, checked at compile time);
//! every shared word accessed through atomics, so a peer writing at the wrong time is never
//! undefined behaviour; nothing read from shared memory trusted: indices and lengths are
//! checked, and a corrupt ring is an error the caller sees, not a crash.
#![no_std]

pub mod ring;
