//! The generic timer from EL0 (an Atoll extension: `sel4-microkit` has no timer). Every PD
//! may read the virtual counter and its frequency. A PD that owns its core's EL1 physical
//! timer interrupt (IRQ 30; the tool allows that only for a PD alone in its replica) may
//! also program that timer, and gets its interrupt on the channel of its `<irq>`.

pub use atoll_sys::counter::{
    arm_physical_timer, counter, counter_frequency, disarm_physical_timer,
};
