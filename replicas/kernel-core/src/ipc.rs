//! IPC state machines: notifications (Signal / Wait / Poll) and endpoints (Send / Recv /
//! Call / Reply), with FIFO wait queues threaded through a table of thread states.
//!
//! These functions only move threads between states and queues and report what happened;
//! the kernel then copies message registers, lends scheduling contexts and tells the
//! scheduler who became runnable. Destroying an object releases every waiter with an error.

use crate::id::{
    EndpointId, MAX_ENDPOINTS, MAX_NOTIFICATIONS, MAX_THREADS, NotificationId, Table, ThreadId,
};

/// Every endpoint of a replica.
pub type Endpoints = Table<EndpointId, Endpoint, MAX_ENDPOINTS>;
/// Every notification of a replica.
pub type Notifications = Table<NotificationId, Notification, MAX_NOTIFICATIONS>;

/// What a thread is doing, as far as IPC is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Not started, suspended or stopped.
    Inactive,
    /// Able to run.
    Running,
    /// Waiting on a notification.
    WaitingOnNotification(NotificationId),
    /// Waiting to send on an endpoint (with its badge; `call` when it will wait for a reply).
    Sending {
        /// The endpoint.
        endpoint: EndpointId,
        /// The badge of the capability it sends with.
        badge: u64,
        /// Whether it made a call.
        call: bool,
    },
    /// Waiting to receive on an endpoint.
    Receiving(EndpointId),
    /// Waiting for the reply to a call, from the given thread.
    WaitingForReply(ThreadId),
}

impl ThreadState {
    /// Whether the thread is blocked in an IPC operation (on an object or for a reply).
    pub fn is_blocked(self) -> bool {
        !matches!(self, ThreadState::Inactive | ThreadState::Running)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    state: ThreadState,
    next: Option<ThreadId>,
    prev: Option<ThreadId>,
}

/// A FIFO queue of threads (head and tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    head: Option<ThreadId>,
    tail: Option<ThreadId>,
}

impl Default for Queue {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Queue {
    /// An empty queue.
    pub const EMPTY: Queue = Queue {
        head: None,
        tail: None,
    };

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }
}

/// A notification object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// Signalled bits not yet taken.
    pub word: u64,
    /// Signalled and not yet taken (as seL4's active state: a signal with badge 0 still
    /// counts).
    pub active: bool,
    /// Threads waiting.
    pub waiters: Queue,
}

/// Which way an endpoint's queue points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointQueue {
    /// Nobody waits.
    #[default]
    Idle,
    /// Senders wait.
    Send,
    /// Receivers wait.
    Recv,
}

/// An endpoint object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Who waits.
    pub kind: EndpointQueue,
    /// The waiting threads.
    pub queue: Queue,
}

/// What a wait on a notification did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Bits were pending: here they are (0 for a poll that found none).
    Got(u64),
    /// The thread now waits.
    Blocked,
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// A waiting receiver got the message: the kernel copies it and wakes `to`.
    Delivered {
        /// The receiver.
        to: ThreadId,
    },
    /// The sender now waits.
    Blocked,
    /// Nobody waited and the send was non-blocking: the message is dropped, as in seL4.
    Dropped,
}

/// What a receive did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvOutcome {
    /// A waiting sender's message: the kernel copies it. A plain sender runs again; a caller
    /// now waits for the receiver's reply.
    Received {
        /// The sender.
        from: ThreadId,
        /// Its badge.
        badge: u64,
        /// Whether it called (and waits for a reply).
        call: bool,
    },
    /// The receiver now waits.
    Blocked,
    /// Nothing was there and the receive was non-blocking.
    Nothing,
}

/// Why an IPC operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcError {
    /// The thread is not running, so it cannot start an IPC operation.
    NotRunning,
    /// The thread does not wait for a reply from this replier.
    NoReplyExpected,
}

/// The IPC state of a replica's threads.
pub struct Threads {
    entries: Table<ThreadId, Entry, MAX_THREADS>,
}

impl Default for Threads {
    fn default() -> Self {
        Self::new()
    }
}

impl Threads {
    /// Every thread inactive.
    pub const fn new() -> Self {
        Self {
            entries: Table::filled(Entry {
                state: ThreadState::Inactive,
                next: None,
                prev: None,
            }),
        }
    }

    /// A thread's state.
    pub fn state(&self, thread: ThreadId) -> ThreadState {
        self.entries[thread].state
    }

    /// Marks an inactive thread running (TCB Resume), or leaves any other state alone.
    pub fn resume(&mut self, thread: ThreadId) {
        let e = &mut self.entries[thread];
        if e.state == ThreadState::Inactive {
            e.state = ThreadState::Running;
        }
    }

    fn running(&self, thread: ThreadId) -> Result<(), IpcError> {
        if self.entries[thread].state == ThreadState::Running {
            Ok(())
        } else {
            Err(IpcError::NotRunning)
        }
    }

    fn push(&mut self, queue: &mut Queue, thread: ThreadId) {
        let tail = queue.tail;
        self.entries[thread].prev = tail;
        self.entries[thread].next = None;
        match tail {
            None => queue.head = Some(thread),
            Some(tail) => self.entries[tail].next = Some(thread),
        }
        queue.tail = Some(thread);
    }

    fn pop(&mut self, queue: &mut Queue) -> Option<ThreadId> {
        let head = queue.head?;
        self.remove(queue, head);
        Some(head)
    }

    fn remove(&mut self, queue: &mut Queue, thread: ThreadId) {
        let Entry { next, prev, .. } = self.entries[thread];
        match prev {
            None => queue.head = next,
            Some(prev) => self.entries[prev].next = next,
        }
        match next {
            None => queue.tail = prev,
            Some(next) => self.entries[next].prev = prev,
        }
        self.entries[thread].next = None;
        self.entries[thread].prev = None;
    }

    /// The threads in a queue, first to last.
    pub fn queued(&self, queue: &Queue) -> impl Iterator<Item = ThreadId> + '_ {
        let mut next = queue.head;
        core::iter::from_fn(move || {
            let t = next?;
            next = self.entries[t].next;
            Some(t)
        })
    }

    /// Signal: wakes the first waiter, which receives exactly `badge` (a thread only waits
    /// while the word is empty), or ORs `badge` into the word. Returns the woken thread and
    /// its bits.
    pub fn signal(&mut self, n: &mut Notification, badge: u64) -> Option<(ThreadId, u64)> {
        match self.pop(&mut n.waiters) {
            Some(woken) => {
                self.entries[woken].state = ThreadState::Running;
                Some((woken, badge))
            }
            None => {
                n.word |= badge;
                n.active = true;
                None
            }
        }
    }

    /// Wait (blocking) or Poll (`blocking == false`) on a notification.
    pub fn wait(
        &mut self,
        n: &mut Notification,
        notification: NotificationId,
        thread: ThreadId,
        blocking: bool,
    ) -> Result<WaitOutcome, IpcError> {
        self.running(thread)?;
        if n.active || !blocking {
            n.active = false;
            let bits = core::mem::take(&mut n.word);
            return Ok(WaitOutcome::Got(bits));
        }
        self.entries[thread].state = ThreadState::WaitingOnNotification(notification);
        self.push(&mut n.waiters, thread);
        Ok(WaitOutcome::Blocked)
    }

    /// Send or Call on an endpoint with the badge of the capability used.
    pub fn send(
        &mut self,
        ep: &mut Endpoint,
        endpoint: EndpointId,
        thread: ThreadId,
        badge: u64,
        blocking: bool,
        call: bool,
    ) -> Result<SendOutcome, IpcError> {
        self.running(thread)?;
        if ep.kind == EndpointQueue::Recv {
            // An endpoint marked receiving always has a receiver queued.
            let receiver = self.pop(&mut ep.queue).ok_or(IpcError::NotRunning)?;
            if ep.queue.is_empty() {
                ep.kind = EndpointQueue::Idle;
            }
            self.entries[receiver].state = ThreadState::Running;
            if call {
                self.entries[thread].state = ThreadState::WaitingForReply(receiver);
            }
            return Ok(SendOutcome::Delivered { to: receiver });
        }
        if !blocking && !call {
            return Ok(SendOutcome::Dropped);
        }
        self.entries[thread].state = ThreadState::Sending {
            endpoint,
            badge,
            call,
        };
        self.push(&mut ep.queue, thread);
        ep.kind = EndpointQueue::Send;
        Ok(SendOutcome::Blocked)
    }

    /// Recv (blocking) or NBRecv on an endpoint.
    pub fn recv(
        &mut self,
        ep: &mut Endpoint,
        endpoint: EndpointId,
        thread: ThreadId,
        blocking: bool,
    ) -> Result<RecvOutcome, IpcError> {
        self.running(thread)?;
        if ep.kind == EndpointQueue::Send {
            // An endpoint marked sending always has a sender queued.
            let sender = self.pop(&mut ep.queue).ok_or(IpcError::NotRunning)?;
            if ep.queue.is_empty() {
                ep.kind = EndpointQueue::Idle;
            }
            let ThreadState::Sending { badge, call, .. } = self.entries[sender].state else {
                return Err(IpcError::NotRunning);
            };
            self.entries[sender].state = if call {
                ThreadState::WaitingForReply(thread)
            } else {
                ThreadState::Running
            };
            return Ok(RecvOutcome::Received {
                from: sender,
                badge,
                call,
            });
        }
        if !blocking {
            return Ok(RecvOutcome::Nothing);
        }
        self.entries[thread].state = ThreadState::Receiving(endpoint);
        self.push(&mut ep.queue, thread);
        ep.kind = EndpointQueue::Recv;
        Ok(RecvOutcome::Blocked)
    }

    /// Reply: the caller waiting for `replier` runs again.
    pub fn reply(&mut self, replier: ThreadId, caller: ThreadId) -> Result<(), IpcError> {
        match self.entries[caller].state {
            ThreadState::WaitingForReply(r) if r == replier => {
                self.entries[caller].state = ThreadState::Running;
                Ok(())
            }
            _ => Err(IpcError::NoReplyExpected),
        }
    }

    /// The endpoint is destroyed: every waiter runs again (its operation fails). Returns how
    /// many were released.
    pub fn destroy_endpoint(&mut self, ep: &mut Endpoint) -> usize {
        let mut released = 0usize;
        while let Some(t) = self.pop(&mut ep.queue) {
            self.entries[t].state = ThreadState::Running;
            released = released.saturating_add(1);
        }
        // Callers waiting for a reply from a receiver are not on the queue; they are freed
        // when their reply object goes (outside this state machine).
        ep.kind = EndpointQueue::Idle;
        released
    }

    /// The notification is destroyed: every waiter runs again (its wait fails).
    pub fn destroy_notification(&mut self, n: &mut Notification) -> usize {
        let mut released = 0usize;
        while let Some(t) = self.pop(&mut n.waiters) {
            self.entries[t].state = ThreadState::Running;
            released = released.saturating_add(1);
        }
        n.word = 0;
        n.active = false;
        released
    }

    /// Takes a thread out of whatever it waits on (TCB Suspend, or the thread is deleted).
    pub fn cancel(
        &mut self,
        thread: ThreadId,
        endpoints: &mut Endpoints,
        notifications: &mut Notifications,
    ) {
        match self.entries[thread].state {
            ThreadState::Sending { endpoint, .. } | ThreadState::Receiving(endpoint) => {
                let ep = &mut endpoints[endpoint];
                self.remove(&mut ep.queue, thread);
                if ep.queue.is_empty() {
                    ep.kind = EndpointQueue::Idle;
                }
            }
            ThreadState::WaitingOnNotification(n) => {
                self.remove(&mut notifications[n].waiters, thread);
            }
            ThreadState::Inactive | ThreadState::Running | ThreadState::WaitingForReply(_) => {}
        }
        self.entries[thread].state = ThreadState::Inactive;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    const T: usize = 6;

    fn th(i: usize) -> ThreadId {
        ThreadId::new(i).unwrap()
    }

    const E0: EndpointId = EndpointId::new(0).unwrap();
    const N0: NotificationId = NotificationId::new(0).unwrap();

    fn threads() -> Threads {
        let mut t = Threads::new();
        for i in 0..T {
            t.resume(th(i));
        }
        t
    }

    #[test]
    fn signals_coalesce_until_taken() {
        let mut t = threads();
        let mut n = Notification::default();
        assert_eq!(t.signal(&mut n, 0b001), None);
        assert_eq!(t.signal(&mut n, 0b100), None);
        assert_eq!(t.wait(&mut n, N0, th(0), true), Ok(WaitOutcome::Got(0b101)));
        assert_eq!(
            t.wait(&mut n, N0, th(0), false),
            Ok(WaitOutcome::Got(0)),
            "poll finds nothing"
        );
        assert_eq!(t.wait(&mut n, N0, th(0), true), Ok(WaitOutcome::Blocked));
        assert_eq!(t.state(th(0)), ThreadState::WaitingOnNotification(N0));
        assert_eq!(t.wait(&mut n, N0, th(0), true), Err(IpcError::NotRunning));
        assert_eq!(t.signal(&mut n, 0b010), Some((th(0), 0b010)));
        assert_eq!(n.word, 0);
        assert_eq!(t.state(th(0)), ThreadState::Running);
    }

    #[test]
    fn call_and_reply() {
        let mut t = threads();
        let mut ep = Endpoint::default();
        assert_eq!(t.recv(&mut ep, E0, th(1), true), Ok(RecvOutcome::Blocked));
        assert_eq!(
            t.send(&mut ep, E0, th(0), 7, true, true),
            Ok(SendOutcome::Delivered { to: th(1) })
        );
        assert_eq!(t.state(th(0)), ThreadState::WaitingForReply(th(1)));
        assert_eq!(t.state(th(1)), ThreadState::Running);
        assert_eq!(t.reply(th(2), th(0)), Err(IpcError::NoReplyExpected));
        t.reply(th(1), th(0)).unwrap();
        assert_eq!(t.state(th(0)), ThreadState::Running);
        assert_eq!(ep.kind, EndpointQueue::Idle);
    }

    #[test]
    fn senders_queue_in_order_and_nonblocking_sends_drop() {
        let mut t = threads();
        let mut ep = Endpoint::default();
        assert_eq!(
            t.send(&mut ep, E0, th(0), 1, false, false),
            Ok(SendOutcome::Dropped)
        );
        assert_eq!(
            t.send(&mut ep, E0, th(0), 10, true, false),
            Ok(SendOutcome::Blocked)
        );
        assert_eq!(
            t.send(&mut ep, E0, th(1), 11, true, true),
            Ok(SendOutcome::Blocked)
        );
        assert_eq!(
            t.recv(&mut ep, E0, th(2), true),
            Ok(RecvOutcome::Received {
                from: th(0),
                badge: 10,
                call: false
            })
        );
        assert_eq!(t.state(th(0)), ThreadState::Running);
        assert_eq!(
            t.recv(&mut ep, E0, th(2), false),
            Ok(RecvOutcome::Received {
                from: th(1),
                badge: 11,
                call: true
            })
        );
        assert_eq!(t.state(th(1)), ThreadState::WaitingForReply(th(2)));
        assert_eq!(t.recv(&mut ep, E0, th(2), false), Ok(RecvOutcome::Nothing));
    }

    #[test]
    fn destroying_objects_releases_waiters_and_cancel_unqueues() {
        let mut t = threads();
        let mut eps = Endpoints::filled(Endpoint::default());
        let mut ns = Notifications::filled(Notification::default());
        t.recv(&mut eps[E0], E0, th(0), true).unwrap();
        t.recv(&mut eps[E0], E0, th(1), true).unwrap();
        t.wait(&mut ns[N0], N0, th(2), true).unwrap();
        t.cancel(th(0), &mut eps, &mut ns);
        assert_eq!(t.state(th(0)), ThreadState::Inactive);
        assert_eq!(t.queued(&eps[E0].queue).collect::<Vec<_>>(), [th(1)]);
        assert_eq!(t.destroy_endpoint(&mut eps[E0]), 1);
        assert_eq!(t.state(th(1)), ThreadState::Running);
        assert_eq!(t.destroy_notification(&mut ns[N0]), 1);
        assert_eq!(t.state(th(2)), ThreadState::Running);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Signal(u8),
        Wait(usize, bool),
        Send(usize, u8, bool, bool),
        Recv(usize, bool),
        Reply(usize),
        Cancel(usize),
        Resume(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..62).prop_map(Op::Signal),
            (0..T, any::<bool>()).prop_map(|(t, b)| Op::Wait(t, b)),
            (0..T, 0u8..4, any::<bool>(), any::<bool>())
                .prop_map(|(t, b, bl, c)| Op::Send(t, b, bl, c)),
            (0..T, any::<bool>()).prop_map(|(t, b)| Op::Recv(t, b)),
            (0..T).prop_map(Op::Reply),
            (0..T).prop_map(Op::Cancel),
            (0..T).prop_map(Op::Resume),
        ]
    }

    proptest! {
        /// Every signalled bit is delivered exactly once (to a waiter, or by a later wait),
        /// queues and thread states always agree, and an endpoint never has both senders and
        /// receivers waiting.
        #[test]
        fn ipc_state_stays_consistent_and_no_signal_is_lost(ops in proptest::collection::vec(op(), 1..300)) {
            let mut t = threads();
            let mut eps = Endpoints::filled(Endpoint::default());
            let mut ns = Notifications::filled(Notification::default());
            let mut signalled: Vec<u64> = Vec::new(); // bits signalled, in order
            let mut delivered = 0u64; // union of bits handed out so far
            for op in ops {
                match op {
                    Op::Signal(bit) => {
                        signalled.push(1 << bit);
                        if let Some((_, bits)) = t.signal(&mut ns[N0], 1 << bit) {
                            delivered |= bits;
                        }
                    }
                    Op::Wait(i, blocking) => {
                        if let Ok(WaitOutcome::Got(bits)) = t.wait(&mut ns[N0], N0, th(i), blocking) {
                            delivered |= bits;
                        }
                    }
                    Op::Send(i, badge, blocking, call) => { let _ = t.send(&mut eps[E0], E0, th(i), u64::from(badge), blocking, call); }
                    Op::Recv(i, blocking) => { let _ = t.recv(&mut eps[E0], E0, th(i), blocking); }
                    Op::Reply(caller) => {
                        if let ThreadState::WaitingForReply(r) = t.state(th(caller)) { t.reply(r, th(caller)).unwrap(); }
                    }
                    Op::Cancel(i) => t.cancel(th(i), &mut eps, &mut ns),
                    Op::Resume(i) => t.resume(th(i)),
                }
                // Waiters wait only while no bits are pending.
                prop_assert!(ns[N0].waiters.is_empty() || !ns[N0].active);
                // Queues and states agree.
                for i in 0..T {
                    let on_ep = t.queued(&eps[E0].queue).filter(|&x| x == th(i)).count();
                    let on_n = t.queued(&ns[N0].waiters).filter(|&x| x == th(i)).count();
                    match t.state(th(i)) {
                        ThreadState::Sending { .. } | ThreadState::Receiving(_) => prop_assert_eq!((on_ep, on_n), (1, 0)),
                        ThreadState::WaitingOnNotification(_) => prop_assert_eq!((on_ep, on_n), (0, 1)),
                        _ => prop_assert_eq!((on_ep, on_n), (0, 0)),
                    }
                }
                match eps[E0].kind {
                    EndpointQueue::Idle => prop_assert!(eps[E0].queue.is_empty()),
                    EndpointQueue::Send => {
                        let all_senders = t.queued(&eps[E0].queue).all(|x| matches!(t.state(x), ThreadState::Sending { .. }));
                        prop_assert!(all_senders);
                    }
                    EndpointQueue::Recv => {
                        let all_receivers = t.queued(&eps[E0].queue).all(|x| matches!(t.state(x), ThreadState::Receiving(_)));
                        prop_assert!(all_receivers);
                    }
                }
            }
            // Nothing lost: every signalled bit was delivered or is still pending.
            let all: u64 = signalled.iter().fold(0, |a, b| a | b);
            prop_assert_eq!(all, delivered | ns[N0].word);
        }
    }
}
