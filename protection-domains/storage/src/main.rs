//! The `storage` PD: the storage service PD of the default system. Its service code comes with the PD runtime's Microkit API; today
//! it is built, patched and packed, and the kernel does not start it yet.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() {}

atoll_microkit::entry!(init);
