//! The generic timer from EL0 (an Atoll extension: `sel4-microkit` has no timer). Every PD
//! may read the virtual counter and its frequency. A PD given its core's EL1 physical timer
//! interrupt (`<irq irq="30">`, on its replica's first core) claims the timer with
//! [`claim_physical_timer`] and may then program it, and gets its interrupt on the channel
//! of its `<irq>`. Other PDs of the replica cannot touch the timer: the kernel opens its
//! registers to EL0 only while the claiming thread runs.

pub use atoll_sys::counter::{
    arm_physical_timer, counter, counter_frequency, disarm_physical_timer,
};

use crate::{Channel, IrqAckError};

/// Claims the core's physical timer for this PD, whose interrupt arrives on `channel` (the
/// `id` of its `<irq irq="30">`): acknowledging the interrupt through its handler capability
/// is what makes the kernel let this thread program the timer. Call it once before the
/// first [`arm_physical_timer`]; it fails if the channel is not the timer's interrupt, and
/// arming without the claim is an undefined-instruction fault.
pub fn claim_physical_timer(channel: Channel) -> Result<(), IrqAckError> {
    channel.irq_ack()
}
