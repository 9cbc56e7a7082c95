//! Block driver PDs: each drives one board's disk controller and serves one client (the
//! storage service) through the block queues of `atoll_channels::block` (seL4 sDDF's
//! shape).
//!
//! The device-independent part is here: the queue and buffer constants shared with the
//! client and the loop that serves it ([`driver`]) over any controller ([`driver::Disk`]).
//! The controllers are in their modules ([`virtio`] for QEMU `virt`'s virtio-blk,
//! [`sdhci`] for the ZynqMP's SDHCI, [`usdhc`] for the i.MX 8M Plus's uSDHC).
#![no_std]

pub mod driver;
pub mod sdhci;
pub mod usdhc;
pub mod virtio;
