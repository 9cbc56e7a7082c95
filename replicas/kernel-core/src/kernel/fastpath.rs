//! The fast path for the system calls of a protected procedure call and of a notification:
//! Call, when a server already waits on the endpoint; ReplyRecv, when the caller waits for
//! the reply and no sender is queued; Signal and Wait on a notification. Each skips the
//! general dispatch and the checks that cannot fail in its case.
//!
//! Before even those, [`Kernel::syscall_entry`] serves the non-blocking calls that change
//! nothing the scheduler knows (a poll, a signal nobody waits for, a doorbell ring) without
//! the kernel entry's accounting: the time they take is charged at the core's next entry.
//!
//! Each function first checks every precondition without changing anything and returns
//! `false` if one fails; the general path then serves the call with the same result. Past
//! the checks, the state changes are the general path's own primitives in the same order,
//! so the two paths cannot disagree on what a call does: the host tests run every call
//! through both (see `tests/mod.rs`).

use atoll_abi::syscall::{self, MessageInfo};

use super::syscall::Target;
use super::{Kernel, Machine};
use crate::cap::Rights;
use crate::id::{CoreId, NotificationId, ThreadId};
use crate::ipc::{EndpointQueue, SendOutcome, ThreadState};
use crate::sched::HandOver;

/// What a system call entry ([`Kernel::syscall_entry`]) came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// Served before the accounting: the caller goes on as it was loaded.
    Light(ThreadId),
    /// Served by the general entry for this caller ([`Kernel::caller_goes_on`] says
    /// whether it goes on as loaded).
    General(ThreadId),
    /// Another core had stopped this one and taken its entry over: the core chooses again.
    Stalled,
}

impl Kernel {
    /// A system call on `core` at counter time `now`, from the thread the core last
    /// returned to. One that changes nothing the scheduler knows is served first, before
    /// the entry's accounting: NBWait (Poll) on a notification whose signal lends no
    /// scheduling context, a Send or NBSend on a notification that wakes nobody, or one on
    /// a doorbell; a signal that wakes a thread is served in the same step, after the
    /// accounting. Any other is served after [`Kernel::enter`], by [`Kernel::syscall`]
    /// (fast path first).
    ///
    /// The time a light call takes is charged at the core's next entry, which measures
    /// from the last one. A budget that ends meanwhile has its timer interrupt pending when
    /// the caller resumes, so the core enters the kernel again at once; a thread another
    /// core made ready here has its reschedule interrupt pending the same way.
    pub fn syscall_entry(&mut self, m: &mut impl Machine, core: CoreId, now: u64) -> Entered {
        if let Some(t) = self.objects.loaded[core] {
            let ctx = &self.objects.tcbs[t].ctx;
            let (number, cptr) = (ctx.x[7] as i64, ctx.x[0]);
            if matches!(number, syscall::NB_WAIT | syscall::SEND | syscall::NB_SEND)
                && self.fastpath_on()
                && self.objects.current[core] == Some(t)
                && let Some(target) = self.resolve(t, cptr)
                && let Some(entered) = self.light_syscall(m, (core, now), t, number, target)
            {
                return entered;
            }
        }
        self.enter(core, now);
        let Some(t) = self.loaded() else {
            // Another core stopped this one and took its entry over (the thread makes its
            // system call again when it next runs): only choose again.
            self.timer();
            return Entered::Stalled;
        };
        self.syscall(m);
        Entered::General(t)
    }

    /// [`Kernel::syscall_entry`]'s first attempt, for system call `number` of `t`, the
    /// current thread of `core`, on the capability `target` that `x0` names. A signal that
    /// wakes a thread is served here too, after the accounting, so that the capability is
    /// not looked up twice. `None` (nothing changed) when the call needs the general entry.
    #[inline(never)]
    fn light_syscall(
        &mut self,
        m: &mut impl Machine,
        (core, now): (CoreId, u64),
        t: ThreadId,
        number: i64,
        target: Target,
    ) -> Option<Entered> {
        if number == syscall::NB_WAIT {
            return self.light_poll(t, target).then_some(Entered::Light(t));
        }
        if let Some(n) = target.notification(Rights::WRITE) {
            if !self.objects.signal_wakes(n) {
                self.objects.signal(n, target.badge);
                return Some(Entered::Light(t));
            }
            // The fast Signal, after the accounting.
            self.enter(core, now);
            self.objects.signal(n, target.badge);
            self.objects.schedule();
            return Some(Entered::General(t));
        }
        if target.kind == Some(atoll_abi::object::ObjectKind::Doorbell)
            && target.rights.contains(Rights::WRITE)
        {
            self.objects.ring(m, target.data, target.badge);
            return Some(Entered::Light(t));
        }
        None
    }

    /// Poll: NBWait on a notification with the read right, unbound or bound to `t`, unless
    /// a pending signal would lend the poller the notification's scheduling context.
    fn light_poll(&mut self, t: ThreadId, target: Target) -> bool {
        let Some(n) = target.notification(Rights::READ) else {
            return false;
        };
        let o = &mut self.objects;
        if o.ntfn_bound[n].is_some_and(|b| b != t) || (o.ntfns[n].active && o.ntfn_sc[n].is_some())
        {
            return false;
        }
        o.wait(t, n, false);
        true
    }

    pub(super) fn fastpath(&mut self, m: &mut impl Machine, t: ThreadId, number: i64) -> bool {
        match number {
            syscall::CALL => self.fast_call(m, t),
            syscall::REPLY_RECV => self.fast_reply_recv(m, t),
            syscall::SEND | syscall::NB_SEND => self.fast_signal(t),
            syscall::WAIT => self.fast_wait(t),
            _ => false,
        }
    }

    /// The notification at `cptr` in `t`'s space if the capability has `right`: (id,
    /// badge).
    fn fast_notification(
        &mut self,
        t: ThreadId,
        cptr: u64,
        right: Rights,
    ) -> Option<(NotificationId, u64)> {
        let target = self.resolve(t, cptr)?;
        Some((target.notification(right)?, target.badge))
    }

    /// Signal: a Send on a notification capability with the write right.
    fn fast_signal(&mut self, t: ThreadId) -> bool {
        let cptr = self.objects.tcbs[t].ctx.x[0];
        let Some((n, badge)) = self.fast_notification(t, cptr, Rights::WRITE) else {
            return false;
        };
        self.objects.signal(n, badge);
        self.objects.schedule();
        true
    }

    /// Wait on a notification capability with the read right, unbound or bound to `t`.
    fn fast_wait(&mut self, t: ThreadId) -> bool {
        let cptr = self.objects.tcbs[t].ctx.x[0];
        let Some((n, _)) = self.fast_notification(t, cptr, Rights::READ) else {
            return false;
        };
        if self.objects.ntfn_bound[n].is_some_and(|b| b != t) {
            return false;
        }
        self.objects.wait(t, n, true);
        self.objects.schedule();
        true
    }

    /// Call: a server waits on the endpoint with a free reply object; the capability may
    /// send and be replied through.
    fn fast_call(&mut self, m: &mut impl Machine, t: ThreadId) -> bool {
        let ctx = &self.objects.tcbs[t].ctx;
        let (cptr, info) = (ctx.x[0], MessageInfo(ctx.x[1]));
        let Some(target) = self.resolve(t, cptr) else {
            return false;
        };
        let Some(ep) = target.call_endpoint() else {
            return false;
        };
        let o = &mut self.objects;
        if o.eps[ep].kind != EndpointQueue::Recv {
            return false;
        }
        let Some(server) = o.threads.queued(&o.eps[ep].queue).next() else {
            return false;
        };
        let Some(r) = o.free_reply(server) else {
            return false;
        };
        let badge = target.badge;
        let Ok(SendOutcome::Delivered { to }) =
            o.threads.send(&mut o.eps[ep], ep, t, badge, true, true)
        else {
            // Unreachable: a receiver was queued and the caller runs. The general path
            // would have done the same, so there is nothing to undo.
            return true;
        };
        // The queue's head received it, and sending changed no reply object.
        debug_assert_eq!(to, server);
        o.transfer(m, t, to, badge, info);
        // `bind_reply`, `sync(to)` and `sync(t)` of the general path in one hand-over.
        let lent = o.sched.hand_over(t, to, HandOver::Lend);
        o.bind_caller(r, t, to, lent);
        o.schedule();
        true
    }

    /// ReplyRecv: the reply object has a caller waiting for a normal (not fault) reply, the
    /// endpoint has no sender queued and no notification is pending for the server.
    fn fast_reply_recv(&mut self, m: &mut impl Machine, t: ThreadId) -> bool {
        let ctx = &self.objects.tcbs[t].ctx;
        let (cptr, info, reply_cptr) = (ctx.x[0], MessageInfo(ctx.x[1]), ctx.x[6]);
        let Some(r) = self.resolve(t, reply_cptr).and_then(|r| r.reply()) else {
            return false;
        };
        let Some(ep) = self
            .resolve(t, cptr)
            .and_then(|target| target.endpoint(Rights::READ))
        else {
            return false;
        };
        let o = &mut self.objects;
        let Some(caller) = o.replies[r].caller else {
            return false;
        };
        if o.replies[r].server != Some(t)
            || o.tcbs[caller].fault_label != 0
            || o.threads.state(caller) != ThreadState::WaitingForReply(t)
            || o.eps[ep].kind == EndpointQueue::Send
        {
            return false;
        }
        if o.tcbs[t].bound.is_some_and(|n| o.ntfns[n].active) {
            return false;
        }
        // The reply's message, as `Objects::answer` delivers it...
        let lent = o.replies[r].lent;
        o.deliver_reply(m, t, r, (caller, t), info);
        // ... then the receive, as `Objects::recv` makes it when nothing is pending and
        // nobody sends ...
        o.tcbs[t].recv_reply = Some(r);
        if let Some(n) = o.tcbs[t].bound {
            o.return_to(n, t);
        }
        let _ = o.threads.recv(&mut o.eps[ep], ep, t, true);
        // ... and the scheduler's side of both in one hand-over.
        let sc = if lent {
            HandOver::GiveBack
        } else {
            HandOver::Keep
        };
        o.sched.hand_over(t, caller, sc);
        o.schedule();
        true
    }
}
