//! What the end-to-end test PDs share.
#![no_std]

pub mod fuzz;
pub mod smp;
pub mod stream;

/// The channels `fanout` notifies and `fanin` receives (`tests/systems/cross.xml`).
pub mod fan {
    use atoll_microkit::Channel;

    /// Channels `0..SPREAD` are each notified once at the start.
    pub const SPREAD: usize = 60;
    /// The channel flooded next.
    pub const FLOOD: Channel = Channel::new(60);
    /// The channel notified last.
    pub const DONE: Channel = Channel::new(61);
}
