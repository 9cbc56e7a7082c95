//! IPC state machines: notifications (Signal / Wait / Poll) and endpoints (Send / Recv /
//! Call / Reply), with FIFO wait queues threaded through a table of thread states.
//!
//! These functions only move threads between states and queues and report what happened;
//! the kernel then copies message registers, lends scheduling contexts and tells the
//! scheduler who became runnable. Destroying an object releases every waiter with an error.

/// A thread, by index.
pub type ThreadId = usize;

const NONE: u16 = u16::MAX;

/// What a thread is doing, as far as IPC is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Not started, suspended or stopped.
    Inactive,
    /// Able to run.
    Running,
    /// Waiting on a notification.
    WaitingOnNotification(usize),
    /// Waiting to send on an endpoint (with its badge; `call` when it will wait for a reply).
    Sending {
        /// The endpoint.
        endpoint: usize,
        /// The badge of the capability it sends with.
        badge: u64,
        /// Whether it made a call.
        call: bool,
    },
    /// Waiting to receive on an endpoint.
    Receiving(usize),
    /// Waiting for the reply to a call, from the given thread.
    WaitingForReply(ThreadId),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    state: ThreadState,
    next: u16,
    prev: u16,
}

/// A FIFO queue of threads (head and tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    head: u16,
    tail: u16,
}

impl Default for Queue {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Queue {
    /// An empty queue.
    pub const EMPTY: Queue = Queue {
        head: NONE,
        tail: NONE,
    };

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.head == NONE
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
    /// No such thread.
    NoSuchThread,
    /// The thread is not running, so it cannot start an IPC operation.
    NotRunning,
    /// The thread does not wait for a reply from this replier.
    NoReplyExpected,
}

/// The IPC state of up to `T` threads (`T` < 65535).
pub struct Threads<const T: usize> {
    entries: [Entry; T],
}

impl<const T: usize> Default for Threads<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const T: usize> Threads<T> {
    /// Every thread inactive.
    pub const fn new() -> Self {
        Self {
            entries: [Entry {
                state: ThreadState::Inactive,
                next: NONE,
                prev: NONE,
            }; T],
        }
    }

    /// A thread's state (`Inactive` for an unknown one).
    pub fn state(&self, thread: ThreadId) -> ThreadState {
        self.entries
            .get(thread)
            .map_or(ThreadState::Inactive, |e| e.state)
    }

    /// Marks an inactive thread running (TCB Resume), or leaves any other state alone.
    pub fn resume(&mut self, thread: ThreadId) -> Result<(), IpcError> {
        let e = self.entries.get_mut(thread).ok_or(IpcError::NoSuchThread)?;
        if e.state == ThreadState::Inactive {
            e.state = ThreadState::Running;
        }
        Ok(())
    }

    fn running(&self, thread: ThreadId) -> Result<(), IpcError> {
        match self.entries.get(thread) {
            None => Err(IpcError::NoSuchThread),
            Some(e) if e.state == ThreadState::Running => Ok(()),
            Some(_) => Err(IpcError::NotRunning),
        }
    }

    fn push(&mut self, queue: &mut Queue, thread: ThreadId) {
        let tail = queue.tail;
        self.entries[thread].prev = tail;
        self.entries[thread].next = NONE;
        if tail == NONE {
            queue.head = thread as u16;
        } else {
            self.entries[tail as usize].next = thread as u16;
        }
        queue.tail = thread as u16;
    }

    fn pop(&mut self, queue: &mut Queue) -> Option<ThreadId> {
        let head = queue.head;
        if head == NONE {
            return None;
        }
        self.remove(queue, head as usize);
        Some(head as usize)
    }

    fn remove(&mut self, queue: &mut Queue, thread: ThreadId) {
        let Entry { next, prev, .. } = self.entries[thread];
        if prev == NONE {
            queue.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NONE {
            queue.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        self.entries[thread].next = NONE;
        self.entries[thread].prev = NONE;
    }

    /// The threads in a queue, first to last.
    pub fn queued(&self, queue: &Queue) -> impl Iterator<Item = ThreadId> + '_ {
        let mut next = queue.head;
        core::iter::from_fn(move || {
            (next != NONE).then(|| {
                let t = next as usize;
                next = self.entries[t].next;
                t
            })
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
        notification: usize,
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
        endpoint: usize,
        thread: ThreadId,
        badge: u64,
        blocking: bool,
        call: bool,
    ) -> Result<SendOutcome, IpcError> {
        self.running(thread)?;
        if ep.kind == EndpointQueue::Recv {
            let receiver = self.pop(&mut ep.queue).ok_or(IpcError::NoSuchThread)?;
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
        endpoint: usize,
        thread: ThreadId,
        blocking: bool,
    ) -> Result<RecvOutcome, IpcError> {
        self.running(thread)?;
        if ep.kind == EndpointQueue::Send {
            let sender = self.pop(&mut ep.queue).ok_or(IpcError::NoSuchThread)?;
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
        match self.entries.get(caller).map(|e| e.state) {
            None => Err(IpcError::NoSuchThread),
            Some(ThreadState::WaitingForReply(r)) if r == replier => {
                self.entries[caller].state = ThreadState::Running;
                Ok(())
            }
            Some(_) => Err(IpcError::NoReplyExpected),
        }
    }

    /// The endpoint is destroyed: every waiter runs again (its operation fails). Returns how
    /// many were released.
    pub fn destroy_endpoint(&mut self, ep: &mut Endpoint) -> usize {
        let mut released = 0;
        while let Some(t) = self.pop(&mut ep.queue) {
            self.entries[t].state = ThreadState::Running;
            released += 1;
        }
        // Callers waiting for a reply from a receiver are not on the queue; they are freed
        // when their reply object goes (outside this state machine).
        ep.kind = EndpointQueue::Idle;
        released
    }

    /// The notification is destroyed: every waiter runs again (its wait fails).
    pub fn destroy_notification(&mut self, n: &mut Notification) -> usize {
        let mut released = 0;
        while let Some(t) = self.pop(&mut n.waiters) {
            self.entries[t].state = ThreadState::Running;
            released += 1;
        }
        n.word = 0;
        n.active = false;
        released
    }

    /// Takes a thread out of whatever it waits on (TCB Suspend, or the thread is deleted).
    pub fn cancel(
        &mut self,
        thread: ThreadId,
        endpoints: &mut [Endpoint],
        notifications: &mut [Notification],
    ) {
        let Some(state) = self.entries.get(thread).map(|e| e.state) else {
            return;
        };
        match state {
            ThreadState::Sending { endpoint, .. } | ThreadState::Receiving(endpoint) => {
                if let Some(ep) = endpoints.get_mut(endpoint) {
                    self.remove(&mut ep.queue, thread);
                    if ep.queue.is_empty() {
                        ep.kind = EndpointQueue::Idle;
                    }
                }
            }
            ThreadState::WaitingOnNotification(n) => {
                if let Some(n) = notifications.get_mut(n) {
                    self.remove(&mut n.waiters, thread);
                }
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

    fn threads() -> Threads<T> {
        let mut t = Threads::new();
        for i in 0..T {
            t.resume(i).unwrap();
        }
        t
    }

    #[test]
    fn signals_coalesce_until_taken() {
        let mut t = threads();
        let mut n = Notification::default();
        assert_eq!(t.signal(&mut n, 0b001), None);
        assert_eq!(t.signal(&mut n, 0b100), None);
        assert_eq!(t.wait(&mut n, 0, 0, true), Ok(WaitOutcome::Got(0b101)));
        assert_eq!(
            t.wait(&mut n, 0, 0, false),
            Ok(WaitOutcome::Got(0)),
            "poll finds nothing"
        );
        assert_eq!(t.wait(&mut n, 0, 0, true), Ok(WaitOutcome::Blocked));
        assert_eq!(t.state(0), ThreadState::WaitingOnNotification(0));
        assert_eq!(t.wait(&mut n, 0, 0, true), Err(IpcError::NotRunning));
        assert_eq!(t.signal(&mut n, 0b010), Some((0, 0b010)));
        assert_eq!(n.word, 0);
        assert_eq!(t.state(0), ThreadState::Running);
    }

    #[test]
    fn call_and_reply() {
        let mut t = threads();
        let mut ep = Endpoint::default();
        assert_eq!(t.recv(&mut ep, 0, 1, true), Ok(RecvOutcome::Blocked));
        assert_eq!(
            t.send(&mut ep, 0, 0, 7, true, true),
            Ok(SendOutcome::Delivered { to: 1 })
        );
        assert_eq!(t.state(0), ThreadState::WaitingForReply(1));
        assert_eq!(t.state(1), ThreadState::Running);
        assert_eq!(t.reply(2, 0), Err(IpcError::NoReplyExpected));
        t.reply(1, 0).unwrap();
        assert_eq!(t.state(0), ThreadState::Running);
        assert_eq!(ep.kind, EndpointQueue::Idle);
    }

    #[test]
    fn senders_queue_in_order_and_nonblocking_sends_drop() {
        let mut t = threads();
        let mut ep = Endpoint::default();
        assert_eq!(
            t.send(&mut ep, 0, 0, 1, false, false),
            Ok(SendOutcome::Dropped)
        );
        assert_eq!(
            t.send(&mut ep, 0, 0, 10, true, false),
            Ok(SendOutcome::Blocked)
        );
        assert_eq!(
            t.send(&mut ep, 0, 1, 11, true, true),
            Ok(SendOutcome::Blocked)
        );
        assert_eq!(
            t.recv(&mut ep, 0, 2, true),
            Ok(RecvOutcome::Received {
                from: 0,
                badge: 10,
                call: false
            })
        );
        assert_eq!(t.state(0), ThreadState::Running);
        assert_eq!(
            t.recv(&mut ep, 0, 2, false),
            Ok(RecvOutcome::Received {
                from: 1,
                badge: 11,
                call: true
            })
        );
        assert_eq!(t.state(1), ThreadState::WaitingForReply(2));
        assert_eq!(t.recv(&mut ep, 0, 2, false), Ok(RecvOutcome::Nothing));
    }

    #[test]
    fn destroying_objects_releases_waiters_and_cancel_unqueues() {
        let mut t = threads();
        let mut eps = [Endpoint::default()];
        let mut ns = [Notification::default()];
        t.recv(&mut eps[0], 0, 0, true).unwrap();
        t.recv(&mut eps[0], 0, 1, true).unwrap();
        t.wait(&mut ns[0], 0, 2, true).unwrap();
        t.cancel(0, &mut eps, &mut ns);
        assert_eq!(t.state(0), ThreadState::Inactive);
        assert_eq!(t.queued(&eps[0].queue).collect::<Vec<_>>(), [1]);
        assert_eq!(t.destroy_endpoint(&mut eps[0]), 1);
        assert_eq!(t.state(1), ThreadState::Running);
        assert_eq!(t.destroy_notification(&mut ns[0]), 1);
        assert_eq!(t.state(2), ThreadState::Running);
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
            let mut eps = [Endpoint::default()];
            let mut ns = [Notification::default()];
            let mut signalled: Vec<u64> = Vec::new(); // bits signalled, in order
            let mut delivered = 0u64; // union of bits handed out so far
            for op in ops {
                match op {
                    Op::Signal(bit) => {
                        signalled.push(1 << bit);
                        if let Some((_, bits)) = t.signal(&mut ns[0], 1 << bit) {
                            delivered |= bits;
                        }
                    }
                    Op::Wait(th, blocking) => {
                        if let Ok(WaitOutcome::Got(bits)) = t.wait(&mut ns[0], 0, th, blocking) {
                            delivered |= bits;
                        }
                    }
                    Op::Send(th, badge, blocking, call) => { let _ = t.send(&mut eps[0], 0, th, u64::from(badge), blocking, call); }
                    Op::Recv(th, blocking) => { let _ = t.recv(&mut eps[0], 0, th, blocking); }
                    Op::Reply(caller) => {
                        if let ThreadState::WaitingForReply(r) = t.state(caller) { t.reply(r, caller).unwrap(); }
                    }
                    Op::Cancel(th) => t.cancel(th, &mut eps, &mut ns),
                    Op::Resume(th) => t.resume(th).unwrap(),
                }
                // Waiters wait only while no bits are pending.
                prop_assert!(ns[0].waiters.is_empty() || !ns[0].active);
                // Queues and states agree.
                for th in 0..T {
                    let on_ep = t.queued(&eps[0].queue).filter(|&x| x == th).count();
                    let on_n = t.queued(&ns[0].waiters).filter(|&x| x == th).count();
                    match t.state(th) {
                        ThreadState::Sending { .. } | ThreadState::Receiving(_) => prop_assert_eq!((on_ep, on_n), (1, 0)),
                        ThreadState::WaitingOnNotification(_) => prop_assert_eq!((on_ep, on_n), (0, 1)),
                        _ => prop_assert_eq!((on_ep, on_n), (0, 0)),
                    }
                }
                match eps[0].kind {
                    EndpointQueue::Idle => prop_assert!(eps[0].queue.is_empty()),
                    EndpointQueue::Send => {
                        let all_senders = t.queued(&eps[0].queue).all(|x| matches!(t.state(x), ThreadState::Sending { .. }));
                        prop_assert!(all_senders);
                    }
                    EndpointQueue::Recv => {
                        let all_receivers = t.queued(&eps[0].queue).all(|x| matches!(t.state(x), ThreadState::Receiving(_)));
                        prop_assert!(all_receivers);
                    }
                }
            }
            // Nothing lost: every signalled bit was delivered or is still pending.
            let all: u64 = signalled.iter().fold(0, |a, b| a | b);
            prop_assert_eq!(all, delivered | ns[0].word);
        }
    }
}
