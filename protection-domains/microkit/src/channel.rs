//! Channels, channel sets and children, checked against the masks the tool patches.

use core::fmt;

use atoll_abi::pd::{MAX_CHANNELS, slot};
use atoll_sys::{Cap, Endpoint, IrqHandler, Notification, Tcb};

use crate::message::{MessageInfo, incoming, outgoing};
use crate::patched;

/// The channels this PD may notify.
pub(crate) fn notifications() -> u64 {
    patched::read(&raw const patched::microkit_notifications)
}

/// The channels this PD may call.
pub(crate) fn pps() -> u64 {
    patched::read(&raw const patched::microkit_pps)
}

/// The channels that are interrupts of this PD.
pub(crate) fn irqs() -> u64 {
    patched::read(&raw const patched::microkit_irqs)
}

/// One end of a channel of this PD, by its id (0–61) in the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(usize);

/// An interrupt acknowledgement the kernel refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqAckError(u64);

impl fmt::Display for IrqAckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the kernel refused the interrupt acknowledgement (error {})",
            self.0
        )
    }
}

/// A notify across replicas that was not delivered: the replica of the PD at the other end
/// of the channel is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerDown(usize);

impl PeerDown {
    /// The channel.
    pub const fn channel(&self) -> Channel {
        Channel(self.0)
    }
}

impl fmt::Display for PeerDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the notification on channel {} was not delivered: the peer's replica is down",
            self.0
        )
    }
}

impl Channel {
    /// Channel `index` (panics at compile or run time past 61).
    pub const fn new(index: usize) -> Self {
        assert!(index < MAX_CHANNELS as usize, "channel ids are 0 to 61");
        Self(index)
    }

    /// Its id.
    pub const fn index(&self) -> usize {
        self.0
    }

    fn bit(&self) -> u64 {
        1 << self.0
    }

    /// Panics with a message naming the PD, the channel and what it is not, unless
    /// `allowed` has this channel's bit.
    fn check(&self, allowed: u64, operation: &str, what: &str) {
        if allowed & self.bit() == 0 {
            panic!(
                "{operation} on channel {}, which is not {what} of this PD",
                self.0
            );
        }
    }

    /// The capability this PD signals the other end through, for support crates (as
    /// `sel4-microkit`'s). Panics, as [`Channel::notify`] does, if this PD has no
    /// notification on the channel.
    #[doc(hidden)]
    #[inline(always)]
    pub fn notification(&self) -> Cap<Notification> {
        self.check(notifications(), "notify", "a notification channel");
        Cap::from_bits(u64::from(slot::OUTPUT_NOTIFICATION) + self.0 as u64)
    }

    /// The capability of the interrupt this channel delivers. Panics, as
    /// [`Channel::irq_ack`] does, if the channel is not an interrupt of this PD.
    #[doc(hidden)]
    #[inline(always)]
    pub fn irq_handler(&self) -> Cap<IrqHandler> {
        self.check(irqs(), "irq_ack", "an interrupt");
        Cap::from_bits(u64::from(slot::IRQ_HANDLER) + self.0 as u64)
    }

    /// The endpoint this PD calls the other end through. Panics, as
    /// [`Channel::pp_call`] does, if this PD may not call on the channel.
    #[doc(hidden)]
    #[inline(always)]
    pub fn endpoint(&self) -> Cap<Endpoint> {
        self.check(pps(), "pp_call", "a protected procedure channel");
        Cap::from_bits(u64::from(slot::OUTPUT_ENDPOINT) + self.0 as u64)
    }

    /// Signals the PD at the other end. Panics if this PD has no notification on it.
    pub fn notify(&self) {
        self.notification().signal();
    }

    /// Signals the PD at the other end and reports whether the signal was delivered. Within
    /// a replica it always is; across replicas it is not when the peer's replica is down,
    /// and then nothing is sent. Panics if this PD has no notification on it.
    pub fn try_notify(&self) -> Result<(), PeerDown> {
        self.notification()
            .invoke(0, &[])
            .map(drop)
            .map_err(|_| PeerDown(self.0))
    }

    /// Acknowledges the interrupt this channel delivers, so it can arrive again. Panics if
    /// the channel is not an interrupt of this PD.
    pub fn irq_ack(&self) -> Result<(), IrqAckError> {
        self.irq_handler().ack().map_err(|e| IrqAckError(e as u64))
    }

    /// Calls the PD at the other end (a protected procedure call) with the message in the
    /// message registers; returns its reply, whose registers replace them. Panics if this
    /// PD may not call on the channel.
    pub fn pp_call(&self, info: MessageInfo) -> MessageInfo {
        let r = self.endpoint().call(info.into_inner(), outgoing(info));
        let reply = MessageInfo::from_inner(r.tag());
        incoming(reply, r.mrs);
        reply
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel {}", self.0)
    }
}

/// The channels of one notification: each set bit is one channel that signalled since the
/// PD last received (signals on one channel coalesce).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// From a notification badge.
    pub const fn from_badge(badge: u64) -> Self {
        Self(badge & ((1 << MAX_CHANNELS) - 1))
    }

    /// Whether `channel` signalled.
    pub fn contains(&self, channel: Channel) -> bool {
        self.0 & channel.bit() != 0
    }

    /// The channels that signalled, lowest id first.
    pub fn iter(&self) -> ChannelSetIter {
        ChannelSetIter(self.0)
    }

    /// Whether no channel signalled.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The badge bits.
    pub const fn bits(&self) -> u64 {
        self.0
    }

    /// Shows the set as `{1, 4}`.
    pub fn display(&self) -> DisplayChannelSet<'_> {
        DisplayChannelSet(self)
    }
}

/// The channels of a [`ChannelSet`], lowest id first (from [`ChannelSet::iter`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct ChannelSetIter(u64);

impl Iterator for ChannelSetIter {
    type Item = Channel;

    fn next(&mut self) -> Option<Channel> {
        (self.0 != 0).then(|| {
            let i = self.0.trailing_zeros() as usize;
            self.0 &= self.0 - 1;
            Channel(i)
        })
    }
}

/// A [`ChannelSet`] shown as `{1, 4}` (from [`ChannelSet::display`]).
#[derive(Clone, Copy, Debug)]
pub struct DisplayChannelSet<'a>(&'a ChannelSet);

impl fmt::Display for DisplayChannelSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl fmt::Display for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (n, c) in self.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", c.0)?;
        }
        f.write_str("}")
    }
}

/// A child PD of this PD, by its id in the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child(usize);

impl Child {
    /// Child `index` (0–61).
    pub const fn new(index: usize) -> Self {
        assert!(index < MAX_CHANNELS as usize, "child ids are 0 to 61");
        Self(index)
    }

    /// Its id.
    pub const fn index(&self) -> usize {
        self.0
    }

    /// The child's thread capability, for support crates (as `sel4-microkit`'s).
    #[doc(hidden)]
    pub fn tcb(&self) -> Cap<Tcb> {
        Cap::from_bits(u64::from(slot::CHILD_TCB) + self.0 as u64)
    }

    /// Starts the child again at `entry` with its stack pointer back at the top (its data
    /// is not reloaded), as Microkit's `microkit_pd_restart`. Panics if the kernel refuses
    /// (the child is not this PD's).
    pub fn restart(&self, entry: u64) {
        let top = atoll_abi::pd::vspace::STACK_TOP;
        if let Err(e) = self.tcb().restart_at(entry, top) {
            panic!("cannot restart child {}: error {}", self.0, e as u64);
        }
    }

    /// Stops the child (`microkit_pd_stop`).
    pub fn stop(&self) {
        if let Err(e) = self.tcb().suspend() {
            panic!("cannot stop child {}: error {}", self.0, e as u64);
        }
    }

    /// Moves the child to `core`, a board core index of this PD's replica (the `cpu`
    /// numbering of the description): from then on the child runs on that core. An Atoll
    /// extension, not in `sel4-microkit` (the C library's `microkit_pd_set_affinity`).
    /// Panics if the kernel refuses (the child is not this PD's, or the core is not one of
    /// the replica's).
    pub fn set_affinity(&self, core: u32) {
        if let Err(e) = self.tcb().set_affinity(u64::from(core)) {
            panic!(
                "cannot move child {} to core {core}: error {}",
                self.0, e as u64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn channel_sets_list_lowest_first_and_ignore_the_kind_bits() {
        let set = ChannelSet::from_badge((1 << 63) | (1 << 61) | 0b1010);
        let ids: Vec<usize> = set.iter().map(|c| c.index()).collect();
        assert_eq!(ids, [1, 3, 61]);
        assert!(set.contains(Channel::new(3)) && !set.contains(Channel::new(0)));
        assert_eq!(set.display().to_string(), "{1, 3, 61}");
        assert!(ChannelSet::from_badge(1 << 62).is_empty());
    }

    #[test]
    fn channel_sets_order_and_hash_by_their_bits() {
        use std::collections::BTreeSet;
        let (a, b) = (ChannelSet::from_badge(0b01), ChannelSet::from_badge(0b10));
        assert!(a < b);
        let sets: BTreeSet<ChannelSet> = [b, a, b].into_iter().collect();
        assert_eq!(sets.len(), 2);
        let shown: DisplayChannelSet<'_> = b.display();
        assert_eq!(shown.to_string(), "{1}");
    }
}
