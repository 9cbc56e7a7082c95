//! The generic timer from EL0 (an Atoll extension: `sel4-microkit` has no timer). Every PD
//! may read the virtual counter and its frequency. A PD given its core's EL1 physical timer
//! interrupt (`<irq irq="30">`, on its replica's first core) claims the timer with
//! [`claim_physical_timer`] and may then program it, and gets its interrupt on the channel
//! of its `<irq>`. Each access traps and the kernel makes it for the claiming thread alone:
//! other PDs of the replica cannot touch the timer.

pub use atoll_sys::counter::{
    arm_physical_timer, counter, counter_frequency, disarm_physical_timer, instructions, mark,
};

use crate::{Channel, IrqAckError};

/// Why [`claim_physical_timer`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerClaimError {
    /// The channel is no interrupt of this PD: the description gives it no `<irq>` there.
    NotAnInterrupt,
    /// The kernel refused the acknowledgement (the interrupt is not the timer's, or its
    /// handler capability is gone).
    Refused(IrqAckError),
}

/// Claims the core's physical timer for this PD, whose interrupt arrives on `channel` (the
/// `id` of its `<irq irq="30">`): acknowledging the interrupt through its handler capability
/// is what makes the kernel let this thread program the timer. Call it once before the
/// first [`arm_physical_timer`]; arming without the claim is an undefined-instruction
/// fault. Unlike [`Channel::irq_ack`], it does not panic on a channel that is no
/// interrupt of this PD, so a PD can run with or without a timer in its description.
pub fn claim_physical_timer(channel: Channel) -> Result<(), TimerClaimError> {
    if crate::channel::irqs() & (1 << channel.index()) == 0 {
        return Err(TimerClaimError::NotAnInterrupt);
    }
    channel.irq_ack().map_err(TimerClaimError::Refused)
}
