//! The `Handler` trait and Microkit's event loop.

use core::fmt;

use atoll_abi::limits::MAX_REPLICAS;
use atoll_abi::syscall::{self, label};
use atoll_sys::{Any, Cap};

use crate::channel::{Channel, ChannelSet, Child, irqs};
use crate::ipc::{self, Event};
use crate::message::MessageInfo;
use crate::{debug_println, pd_is_passive};

/// What a PD does with the events it receives. Every method has a default that panics
/// (the PD did not expect the event), so a PD implements only what it uses.
pub trait Handler {
    /// The error its methods may return; the runtime prints it and stops the PD.
    type Error: fmt::Display;

    /// Channels in `channels` signalled (interrupts among them too).
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        panic!("unexpected notification from {channels}");
    }

    /// A protected procedure call arrived on `channel`; the returned tag (with the message
    /// registers) is the reply.
    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let _ = msg_info;
        panic!("unexpected protected procedure call on {channel}");
    }

    /// Child `child` faulted (`msg_info` is the fault message). `Some(tag)` replies, which
    /// resumes the child when the label is 0; `None` leaves it stopped.
    fn fault(
        &mut self,
        child: Child,
        msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        panic!(
            "unexpected fault from child {} (label {})",
            child.index(),
            msg_info.label()
        );
    }

    /// Atoll extension (not in `sel4-microkit`): the PD at the other end of `channel` lives
    /// on another replica, which stopped and was restarted (`<replica restart="true">`)
    /// since this PD last heard from it. Everything that PD had (its memory, its view of
    /// shared regions, notifications in flight) is gone; shared-memory protocols start
    /// again (sessions, queue indices). Called once per channel to the restarted replica,
    /// before [`Handler::notified`] with the event that revealed it. The default does
    /// nothing.
    fn peer_restarted(&mut self, channel: Channel) -> Result<(), Self::Error> {
        let _ = channel;
        Ok(())
    }

    /// An action to perform together with the next receive, if any (see
    /// [`DeferredActionSlot`]).
    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        None
    }

    /// Microkit's event loop on this handler, which returns only with an error from one
    /// of its methods: tell the monitor a passive PD is ready, acknowledge every interrupt
    /// once (so the first one can arrive), then receive, dispatch by badge and reply,
    /// forever. [`run_main`] runs it on `init`'s handler; support crates may call it
    /// themselves, as with `sel4-microkit`.
    #[doc(hidden)]
    fn run(&mut self) -> Result<Never, Self::Error> {
        // A passive PD's "ready" goes to the monitor as the send half of its first
        // receive, so it is already waiting when the monitor takes its scheduling context
        // away.
        let mut ready = pd_is_passive();
        let mut peers = Peers::new();
        ack_every_irq();
        let mut reply: Option<MessageInfo> = None;
        loop {
            let event = match (reply.take(), self.take_deferred_action()) {
                (Some(tag), deferred) => {
                    perform_now(deferred);
                    ipc::reply_recv(tag)
                }
                (None, deferred) => {
                    let send = if core::mem::take(&mut ready) {
                        perform_now(deferred);
                        Some(ipc::ready())
                    } else {
                        deferred.map(|action| action.send_half())
                    };
                    match send {
                        Some((cap, tag)) => ipc::nb_send_recv(cap, tag),
                        None => ipc::recv(),
                    }
                }
            };
            match event {
                Event::Notified(channels) => {
                    for channel in peers.restarted(channels).iter() {
                        self.peer_restarted(channel)?;
                    }
                    self.notified(channels)?
                }
                Event::Protected(channel, info) => reply = Some(self.protected(channel, info)?),
                Event::Fault(child, info) => reply = self.fault(child, info)?,
            }
        }
    }
}

/// The epochs of the replicas this PD has channels to, as it last saw them.
struct Peers {
    channels: [u64; MAX_REPLICAS],
    any: u64,
    epochs: [u32; MAX_REPLICAS],
}

impl Peers {
    fn new() -> Self {
        let channels = crate::patched::peer_channels();
        let any = channels.iter().fold(0, |all, c| all | c);
        let epochs = if any == 0 {
            [0; MAX_REPLICAS]
        } else {
            atoll_sys::call::replica_epochs().1
        };
        Self {
            channels,
            any,
            epochs,
        }
    }

    /// The channels whose peer replica restarted since last time, if `signalled` holds a
    /// channel to another replica (one system call then; none otherwise).
    fn restarted(&mut self, signalled: ChannelSet) -> ChannelSet {
        if signalled.bits() & self.any == 0 {
            return ChannelSet::from_badge(0);
        }
        let (_, now) = atoll_sys::call::replica_epochs();
        let mut restarted = 0;
        for ((seen, now), channels) in self.epochs.iter_mut().zip(now).zip(self.channels) {
            if *seen != now {
                *seen = now;
                restarted |= channels;
            }
        }
        ChannelSet::from_badge(restarted)
    }
}

/// An error type with no values: core's, as `sel4-microkit` re-exports it.
pub use core::convert::Infallible;

/// A handler that expects no event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullHandler(());

impl NullHandler {
    /// The handler.
    pub const fn new() -> Self {
        Self(())
    }
}

impl Handler for NullHandler {
    type Error = Infallible;
}

/// A boxed handler handles as the handler it holds (feature `alloc`).
#[cfg(feature = "alloc")]
impl<T: Handler + ?Sized> Handler for alloc::boxed::Box<T> {
    type Error = T::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        (**self).notified(channels)
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        (**self).protected(channel, msg_info)
    }

    fn fault(
        &mut self,
        child: Child,
        msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        (**self).fault(child, msg_info)
    }

    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        (**self).take_deferred_action()
    }

    fn run(&mut self) -> Result<Never, Self::Error> {
        (**self).run()
    }
}

/// A type with no values, as `sel4-microkit`'s: a handler that can never exist, for code
/// that must name a handler type it never builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Never {}

impl Handler for Never {
    type Error = Infallible;
}

/// What a deferred action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeferredActionInterface {
    /// Notify the channel.
    Notify,
    /// Acknowledge the channel's interrupt.
    IrqAck,
}

/// An action the event loop fuses into its next receive (one system call instead of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeferredAction {
    channel: Channel,
    interface: DeferredActionInterface,
}

impl DeferredAction {
    /// `interface` on `channel`.
    pub const fn new(channel: Channel, interface: DeferredActionInterface) -> Self {
        Self { channel, interface }
    }

    /// A deferred notify.
    pub const fn new_notify(channel: Channel) -> Self {
        Self::new(channel, DeferredActionInterface::Notify)
    }

    /// A deferred interrupt acknowledgement.
    pub const fn new_irq_ack(channel: Channel) -> Self {
        Self::new(channel, DeferredActionInterface::IrqAck)
    }

    /// Its channel.
    pub const fn channel(&self) -> Channel {
        self.channel
    }

    /// What it does.
    pub const fn interface(&self) -> DeferredActionInterface {
        self.interface
    }

    /// Performs it now instead.
    pub fn execute_now(self) -> Result<(), crate::IrqAckError> {
        match self.interface {
            DeferredActionInterface::Notify => {
                self.channel.notify();
                Ok(())
            }
            DeferredActionInterface::IrqAck => self.channel.irq_ack(),
        }
    }

    /// The capability and tag of the send half of NBSendRecv. Checks the channel as the
    /// immediate form does.
    fn send_half(&self) -> (Cap<Any>, syscall::MessageInfo) {
        match self.interface {
            DeferredActionInterface::Notify => {
                (self.channel.notification().cast(), syscall::MessageInfo(0))
            }
            DeferredActionInterface::IrqAck => {
                let tag = syscall::MessageInfo::new(label::IRQ_HANDLER_ACK, 0);
                (self.channel.irq_handler().cast(), tag)
            }
        }
    }
}

/// Holds at most one deferred action for a handler's `take_deferred_action`. Deferring a
/// second one performs the first at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeferredActionSlot {
    inner: Option<DeferredAction>,
}

impl DeferredActionSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        Self { inner: None }
    }

    /// Takes the deferred action out.
    pub fn take(&mut self) -> Option<DeferredAction> {
        self.inner.take()
    }

    /// Defers `action`; an action already waiting is performed now.
    pub fn defer(&mut self, action: DeferredAction) -> Result<(), crate::IrqAckError> {
        match self.inner.replace(action) {
            Some(previous) => previous.execute_now(),
            None => Ok(()),
        }
    }

    /// Defers a notify on `channel`.
    pub fn defer_notify(&mut self, channel: Channel) -> Result<(), crate::IrqAckError> {
        self.defer(DeferredAction::new_notify(channel))
    }

    /// Defers an interrupt acknowledgement on `channel`.
    pub fn defer_irq_ack(&mut self, channel: Channel) -> Result<(), crate::IrqAckError> {
        self.defer(DeferredAction::new_irq_ack(channel))
    }
}

/// The runtime's main: runs `init`, then Microkit's event loop on its handler
/// ([`Handler::run`]). Called by the entry `#[protection_domain]` generates. A handler
/// error is printed and stops the PD, as a panic does.
pub fn run_main<H: Handler>(init: impl FnOnce() -> H) -> ! {
    let mut handler = init();
    match handler.run() {
        Ok(never) => match never {},
        Err(e) => panic!("handler error: {e}"),
    }
}

/// Acknowledges every interrupt channel of the PD once, so that each can arrive: the event
/// loop's first step (Rust's and the C library's).
pub(crate) fn ack_every_irq() {
    for channel in ChannelSet::from_badge(irqs()).iter() {
        let _ = channel.irq_ack();
    }
}

/// Performs a deferred action that cannot ride on the next receive.
fn perform_now(deferred: Option<DeferredAction>) {
    if let Some(action) = deferred
        && let Err(e) = action.execute_now()
    {
        debug_println!(
            "{}: deferred action failed: {e}",
            crate::name_or_placeholder()
        );
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    extern crate std;

    use alloc::boxed::Box;

    use super::*;

    /// Counts what it is given.
    #[derive(Default)]
    struct Counter {
        notified: u64,
        deferred: bool,
    }

    impl Handler for Counter {
        type Error = Infallible;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
            self.notified |= channels.bits();
            Ok(())
        }

        fn take_deferred_action(&mut self) -> Option<DeferredAction> {
            self.deferred = true;
            None
        }
    }

    #[test]
    fn a_boxed_handler_handles_as_the_handler_it_holds() {
        fn drive<H: Handler<Error = Infallible>>(handler: &mut H) {
            let _ = handler.notified(ChannelSet::from_badge(0b101));
            let _ = handler.take_deferred_action();
        }
        let mut boxed: Box<Counter> = Box::default();
        drive(&mut boxed);
        assert_eq!(boxed.notified, 0b101);
        assert!(boxed.deferred);
    }
}
