//! The `rt` PD: the real-time PD of the default system. Its initialiser starts it at EL0; it
//! announces itself and waits for events (its service code comes with the PD runtime's API).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

fn init() {
    atoll_microkit::debug_println!("{}: running at EL0", atoll_microkit::pd_name());
}

atoll_microkit::entry!(init);
