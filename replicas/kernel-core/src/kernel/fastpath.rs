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
use crate::id::{CoreId, EndpointId, NotificationId, ReplyId, ThreadId};
use crate::ipc::{EndpointQueue, ThreadState};
use crate::sched::HandOver;

/// What a system call entry ([`Kernel::syscall_entry`]) came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// Served before the accounting: the caller goes on as it was loaded.
    Light(ThreadId),
    /// A protected procedure call or its reply switched straight to this thread, before
    /// the accounting, on the context the core already counts (the fast Call and
    /// ReplyRecv's direct switch): the machine loads it; the core's next event has not
    /// moved.
    Switched(ThreadId),
    /// Served by the general entry for this caller ([`Kernel::caller_goes_on`] says
    /// whether it goes on as loaded).
    General(ThreadId),
    /// Another core had stopped this one and taken its entry over: the core chooses again.
    Stalled,
}

/// A Call in the fast path's case, as [`Kernel::call_case`] finds it.
#[derive(Clone, Copy)]
struct FastCall {
    ep: EndpointId,
    /// The server waiting at the head of the endpoint's queue.
    server: ThreadId,
    /// Its free reply object.
    reply: ReplyId,
    badge: u64,
    info: MessageInfo,
}

/// A ReplyRecv in the fast path's case, as [`Kernel::reply_recv_case`] finds it.
#[derive(Clone, Copy)]
struct FastReply {
    reply: ReplyId,
    /// The endpoint it receives on next.
    ep: EndpointId,
    /// The thread waiting for the reply.
    caller: ThreadId,
    /// Whether the caller lent the replier the context it runs on.
    lent: bool,
    info: MessageInfo,
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
            if self.fastpath_on() && self.objects.current[core] == Some(t) {
                if matches!(number, syscall::CALL | syscall::REPLY_RECV)
                    && let Some(entered) = self.fast_ipc(m, (core, now), t, number)
                {
                    return entered;
                }
                if matches!(number, syscall::NB_WAIT | syscall::SEND | syscall::NB_SEND)
                    && let Some(target) = self.resolve(t, cptr)
                    && let Some(entered) = self.light_syscall(m, (core, now), t, number, target)
                {
                    return entered;
                }
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

    /// Call or ReplyRecv, by `number`, on the fast path: `None` (nothing changed) when the
    /// call is not its case, and the general entry serves it.
    #[inline(always)]
    fn fast_ipc(
        &mut self,
        m: &mut impl Machine,
        (core, now): (CoreId, u64),
        t: ThreadId,
        number: i64,
    ) -> Option<Entered> {
        if number == syscall::CALL {
            let call = self.call_case(t)?;
            Some(self.fast_call(m, (core, now), t, call))
        } else {
            let reply = self.reply_recv_case(t)?;
            Some(self.fast_reply_recv(m, (core, now), t, reply))
        }
    }

    /// Whether `t`'s Call is the fast path's case: the capability may send and have the
    /// caller replied to, and a server waits on the endpoint with a free reply object.
    /// Nothing changes.
    #[inline(always)]
    fn call_case(&mut self, t: ThreadId) -> Option<FastCall> {
        let ctx = &self.objects.tcbs[t].ctx;
        let (cptr, info) = (ctx.x[0], MessageInfo(ctx.x[1]));
        let target = self.resolve(t, cptr)?;
        let ep = target.call_endpoint()?;
        let o = &self.objects;
        if o.eps[ep].kind != EndpointQueue::Recv {
            return None;
        }
        let server = o.threads.queued(&o.eps[ep].queue).next()?;
        let reply = o.free_reply(server)?;
        Some(FastCall {
            ep,
            server,
            reply,
            badge: target.badge,
            info,
        })
    }

    /// The fast Call, [`Kernel::call_case`] found. With a passive server, when the
    /// scheduler's [`switch`](crate::sched::Scheduler::switch) applies and nothing is due
    /// on the core yet ([`Scheduler::quiet`](crate::sched::Scheduler::quiet)), it is seL4's
    /// direct switch: before the entry's
    /// accounting, the server takes the caller's place on the caller's context, which the
    /// core goes on counting. Otherwise, after the accounting, one hand-over does the
    /// scheduler's side of the call, and the core chooses. Both end where the general
    /// path's send, `bind_reply` and choice would.
    #[inline(always)]
    fn fast_call(
        &mut self,
        m: &mut impl Machine,
        (core, now): (CoreId, u64),
        t: ThreadId,
        c: FastCall,
    ) -> Entered {
        let switched = !self.objects.sched.has_sc(c.server)
            && self.objects.sched.quiet(core, now)
            && self.objects.sched.switch(core, t, c.server, HandOver::Lend);
        if !switched {
            self.enter(core, now);
        }
        let o = &mut self.objects;
        // The endpoint's head receives it (`call_case`), so this is a delivery, and it
        // changes no reply object.
        let _ = o
            .threads
            .send(&mut o.eps[c.ep], c.ep, t, c.badge, true, true);
        o.transfer(m, t, c.server, c.badge, c.info);
        if switched {
            o.bind_caller(c.reply, t, c.server, true);
            o.set_core(core);
            o.current[core] = Some(c.server);
            return Entered::Switched(c.server);
        }
        let lent = o.sched.hand_over(t, c.server, HandOver::Lend);
        o.bind_caller(c.reply, t, c.server, lent);
        o.schedule();
        Entered::General(t)
    }

    /// Whether `t`'s ReplyRecv is the fast path's case: the reply object has a caller
    /// waiting for `t`'s normal (not fault) reply, the endpoint may be received from and
    /// has no sender queued, and no notification is pending for `t`. Nothing changes.
    #[inline(always)]
    fn reply_recv_case(&mut self, t: ThreadId) -> Option<FastReply> {
        let ctx = &self.objects.tcbs[t].ctx;
        let (cptr, info, reply_cptr) = (ctx.x[0], MessageInfo(ctx.x[1]), ctx.x[6]);
        let reply = self.resolve(t, reply_cptr)?.reply()?;
        let ep = self.resolve(t, cptr)?.endpoint(Rights::READ)?;
        let o = &self.objects;
        let r = o.replies[reply];
        let caller = r.caller?;
        if r.server != Some(t)
            || o.tcbs[caller].fault_label != 0
            || !matches!(o.threads.state(caller), ThreadState::WaitingForReply(s) if s == t)
            || o.eps[ep].kind == EndpointQueue::Send
            || o.tcbs[t].bound.is_some_and(|n| o.ntfns[n].active)
        {
            return None;
        }
        Some(FastReply {
            reply,
            ep,
            caller,
            lent: r.lent,
            info,
        })
    }

    /// The fast ReplyRecv, [`Kernel::reply_recv_case`] found. When the caller lent `t` its
    /// context, the scheduler's [`switch`](crate::sched::Scheduler::switch) applies,
    /// nothing is due on the core yet, and `t`'s bound notification has no context to
    /// take back from it, it is the direct switch: before the accounting, the caller runs
    /// on its context again in `t`'s place. Otherwise, after the accounting, one hand-over
    /// does the scheduler's side of the reply and the receive. Both end where the general
    /// path's `answer`, receive and choice would.
    #[inline(always)]
    fn fast_reply_recv(
        &mut self,
        m: &mut impl Machine,
        (core, now): (CoreId, u64),
        t: ThreadId,
        c: FastReply,
    ) -> Entered {
        let switched = c.lent
            && self.nothing_to_take(t)
            && self.objects.sched.quiet(core, now)
            && self
                .objects
                .sched
                .switch(core, t, c.caller, HandOver::GiveBack);
        if !switched {
            self.enter(core, now);
        }
        let o = &mut self.objects;
        // The reply's message, as `Objects::answer` delivers it...
        o.deliver_reply(m, t, c.reply, (c.caller, t), c.info);
        // ... then the receive, as `Objects::recv` makes it when nothing is pending and
        // nobody sends ...
        o.tcbs[t].recv_reply = Some(c.reply);
        if !switched && let Some(n) = o.tcbs[t].bound {
            o.return_to(n, t);
        }
        let _ = o.threads.recv(&mut o.eps[c.ep], c.ep, t, true);
        if switched {
            o.set_core(core);
            o.current[core] = Some(c.caller);
            return Entered::Switched(c.caller);
        }
        // ... and the scheduler's side of both in one hand-over.
        let sc = if c.lent {
            HandOver::GiveBack
        } else {
            HandOver::Keep
        };
        o.sched.hand_over(t, c.caller, sc);
        o.schedule();
        Entered::General(t)
    }

    /// Whether `t`'s bound notification, if any, has no context to take back from `t` when
    /// `t` waits again ([`Objects::return_to`](super::objects::Objects::return_to) does
    /// nothing).
    #[inline(always)]
    fn nothing_to_take(&self, t: ThreadId) -> bool {
        let o = &self.objects;
        o.tcbs[t]
            .bound
            .is_none_or(|n| o.ntfn_sc[n].is_none_or(|sc| o.sched.sc(t) != Some(sc)))
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

    pub(super) fn fastpath(&mut self, t: ThreadId, number: i64) -> bool {
        match number {
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
}
