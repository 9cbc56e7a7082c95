//! The fast path for the system calls of a protected procedure call and of a notification:
//! Call, when a server already waits on the endpoint; ReplyRecv, when the caller waits for
//! the reply and no sender is queued; Signal and Wait on a notification. Each skips the
//! general dispatch and the checks that cannot fail in its case.
//!
//! Each function first checks every precondition without changing anything and returns
//! `false` if one fails; the general path then serves the call with the same result. Past
//! the checks, the state changes are the general path's own primitives in the same order,
//! so the two paths cannot disagree on what a call does: the host tests run every call
//! through both (see `tests/mod.rs`).

use atoll_abi::syscall::{self, MessageInfo};

use super::{Kernel, Machine};
use crate::cap::Rights;
use crate::id::{NotificationId, ThreadId};
use crate::ipc::{EndpointQueue, RecvOutcome, SendOutcome, ThreadState};

impl Kernel {
    /// Serves system call `number` of the current thread `t` on the fast path when it can;
    /// returns whether it did (when `false`, nothing changed).
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
        &self,
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
        if o.free_reply(server).is_none() {
            return false;
        }
        let badge = target.badge;
        let Ok(SendOutcome::Delivered { to }) =
            o.threads.send(&mut o.eps[ep], ep, t, badge, true, true)
        else {
            // Unreachable: a receiver was queued and the caller runs. The general path
            // would have done the same, so there is nothing to undo.
            return true;
        };
        o.transfer(m, t, to, badge, info);
        o.bind_reply(t, to);
        o.sync(to);
        o.sync(t);
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
        let lent = o.replies[r].lent;
        o.answer(m, t, r, (caller, t, lent), info);
        // The receive, as `Objects::recv` makes it when nothing is pending and nobody sends.
        o.tcbs[t].recv_reply = Some(r);
        if let Some(n) = o.tcbs[t].bound {
            o.return_to(n, t);
        }
        if let Ok(RecvOutcome::Blocked) = o.threads.recv(&mut o.eps[ep], ep, t, true) {
            o.sync(t);
        }
        o.schedule();
        true
    }
}
