//! The receive side of Microkit's event loop, as `sel4-microkit`'s hidden `ipc` module
//! offers it to support crates that run their own loop: [`recv`], [`reply_recv`],
//! [`reply`] and the [`Event`] they return. [`crate::Handler::run`] is built on them.

use atoll_abi::pd::{FAULT_BADGE, MAX_CHANNELS, PPC_BADGE, slot};
use atoll_abi::syscall;
use atoll_sys::{Any, Cap, Endpoint, Reply, Returned};

use crate::channel::{Channel, Child};
pub use crate::channel::{ChannelSet, ChannelSetIter, DisplayChannelSet};
use crate::debug_println;
use crate::message::{MessageInfo, incoming, outgoing};

/// What a receive delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A notification: the channels that signalled.
    Notified(ChannelSet),
    /// A protected procedure call on the channel, with its message; answer it with
    /// [`reply`] or [`reply_recv`].
    Protected(Channel, MessageInfo),
    /// A fault of the child, with its fault message.
    Fault(Child, MessageInfo),
}

/// The endpoint every event of this PD arrives on.
const INPUT: Cap<Endpoint> = Cap::from_bits(slot::INPUT as u64);
/// The reply object a call's reply goes through.
const REPLY: Cap<Reply> = Cap::from_bits(slot::REPLY as u64);

/// Decodes what the kernel returned from a receive by its badge: bit 63 a protected
/// procedure call on channel `badge & 63`, bit 62 a fault of child `badge & 63`, anything
/// else a notification whose set bits are the channels. The first four message registers
/// came in CPU registers and go to the IPC buffer. `None` for a call or fault badge whose
/// id is past the last channel, which only a damaged description could mint: it is
/// reported and dropped.
#[inline(always)]
fn decode(received: Returned) -> Option<Event> {
    let info = MessageInfo::from_inner(received.tag());
    let badge = received.badge;
    let id = (badge & 0x3F) as usize;
    if badge & (PPC_BADGE | FAULT_BADGE) == 0 {
        return Some(Event::Notified(ChannelSet::from_badge(badge)));
    }
    if id >= MAX_CHANNELS as usize {
        ignored(badge);
        return None;
    }
    incoming(info, received.mrs);
    Some(if badge & PPC_BADGE != 0 {
        Event::Protected(Channel::new(id), info)
    } else {
        Event::Fault(Child::new(id), info)
    })
}

/// Reports a message dropped by [`decode`] (kept out of line: it never happens in a
/// well-formed system).
#[cold]
#[inline(never)]
fn ignored(badge: u64) {
    debug_println!(
        "{}: ignored a message with badge {badge:#x}",
        crate::name_or_placeholder()
    );
}

/// The event `received` carries, or (when it carries none) the next one.
#[inline(always)]
fn event_or_next(received: Returned) -> Event {
    match decode(received) {
        Some(event) => event,
        None => recv(),
    }
}

/// Waits for the next event.
#[inline]
pub fn recv() -> Event {
    loop {
        if let Some(event) = decode(INPUT.recv(REPLY)) {
            return event;
        }
    }
}

/// Replies to the protected procedure call (or fault) just received, with `msg_info` and
/// the message registers, and returns at once.
pub fn reply(msg_info: MessageInfo) {
    REPLY.send(msg_info.into_inner(), outgoing(msg_info));
}

/// Replies as [`reply`] does and waits for the next event, in one system call.
#[inline]
pub fn reply_recv(msg_info: MessageInfo) -> Event {
    event_or_next(INPUT.reply_recv(REPLY, msg_info.into_inner(), outgoing(msg_info)))
}

/// Sends `tag` (no message registers) on `cap` without blocking and waits for the next
/// event, in one system call: a deferred action, or a passive PD's "ready".
#[inline]
pub(crate) fn nb_send_recv(cap: Cap<Any>, tag: syscall::MessageInfo) -> Event {
    event_or_next(INPUT.nb_send_recv(REPLY, cap, tag))
}

/// A passive PD's "ready" to the monitor (label 0, no registers), sent with its first
/// receive.
pub(crate) fn ready() -> (Cap<Any>, syscall::MessageInfo) {
    (
        Cap::from_bits(slot::MONITOR_ENDPOINT.into()),
        syscall::MessageInfo(0),
    )
}
