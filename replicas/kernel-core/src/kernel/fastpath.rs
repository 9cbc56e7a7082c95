//! The fast path for the system calls of a protected procedure call and of a notification:
//! Call, when a server already waits on the endpoint; ReplyRecv, when the caller waits for
//! the reply and no sender is queued; Signal and Wait on a notification. Each skips the
//! general dispatch and the checks that cannot fail in its case.
//!
//! Each function first checks every precondition without changing anything and returns
//! `false` if one fails; the general path then serves the call with the same result. Past
//! the checks, the state changes are the general path's own primitives in the same order,
//! so the two paths cannot disagree on what a call does: the host tests run every call
//! through both (see `tests.rs`).

use atoll_abi::microkit::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo};

use super::{Kernel, Machine, NONE};
use crate::cap::Rights;
use crate::ipc::{EndpointQueue, RecvOutcome, SendOutcome, ThreadState};

impl Kernel {
    /// Serves system call `number` of the current thread `t` on the fast path when it can;
    /// returns whether it did (when `false`, nothing changed).
    pub(super) fn fastpath(&mut self, m: &mut impl Machine, t: usize, number: i64) -> bool {
        match number {
            syscall::CALL => self.fast_call(m, t),
            syscall::REPLY_RECV => self.fast_reply_recv(m, t),
            syscall::SEND | syscall::NB_SEND => self.fast_signal(t),
            syscall::WAIT => self.fast_wait(t),
            _ => false,
        }
    }

    /// The object of `kind` at `cptr` in `t`'s space if the capability has `right`:
    /// (index, badge).
    fn fast_object(
        &self,
        t: usize,
        cptr: u64,
        kind: ObjectKind,
        right: Rights,
    ) -> Option<(usize, u64)> {
        let target = self.resolve(t, cptr)?;
        (target.kind == Some(kind) && target.rights.contains(right))
            .then_some((target.data as usize, target.badge))
    }

    /// Signal: a Send on a notification capability with the write right.
    fn fast_signal(&mut self, t: usize) -> bool {
        let cptr = self.o.tcbs[t].ctx.x[0];
        let Some((n, badge)) = self.fast_object(t, cptr, ObjectKind::Notification, Rights::WRITE)
        else {
            return false;
        };
        self.o.signal(n, badge);
        self.o.schedule();
        true
    }

    /// Wait on a notification capability with the read right.
    fn fast_wait(&mut self, t: usize) -> bool {
        let cptr = self.o.tcbs[t].ctx.x[0];
        let Some((n, _)) = self.fast_object(t, cptr, ObjectKind::Notification, Rights::READ) else {
            return false;
        };
        self.o.wait(t, n, true);
        self.o.schedule();
        true
    }

    /// Call: a server waits on the endpoint with a free reply object.
    fn fast_call(&mut self, m: &mut impl Machine, t: usize) -> bool {
        let ctx = &self.o.tcbs[t].ctx;
        let (cptr, info) = (ctx.x[0], MessageInfo(ctx.x[1]));
        let Some((ep, badge)) = self.fast_object(t, cptr, ObjectKind::Endpoint, Rights::WRITE)
        else {
            return false;
        };
        let o = &mut self.o;
        if o.eps[ep].kind != EndpointQueue::Recv {
            return false;
        }
        let Some(server) = o.threads.queued(&o.eps[ep].queue).next() else {
            return false;
        };
        let r = o.tcbs[server].recv_reply;
        if r == NONE || !o.replies[r as usize].live || o.replies[r as usize].caller != NONE {
            return false;
        }
        let Ok(SendOutcome::Delivered { to }) =
            o.threads.send(&mut o.eps[ep], ep, t, badge, true, true)
        else {
            // Unreachable: a receiver was queued and the caller runs. The general path
            // would have done the same, so there is nothing to undo.
            return true;
        };
        debug_assert_eq!(to, server);
        o.transfer(m, t, server, badge, info);
        o.replies[r as usize].caller = t as u16;
        o.replies[r as usize].server = server as u16;
        o.tcbs[t].caller_reply = r;
        if !o.sched.has_sc(server) {
            let _ = o.sched.lend(t, server);
        }
        o.sync(server);
        o.sync(t);
        o.schedule();
        true
    }

    /// ReplyRecv: the reply object has a caller waiting for a normal (not fault) reply, the
    /// endpoint has no sender queued and no notification is pending for the server.
    fn fast_reply_recv(&mut self, m: &mut impl Machine, t: usize) -> bool {
        let ctx = &self.o.tcbs[t].ctx;
        let (cptr, info, reply_cptr) = (ctx.x[0], MessageInfo(ctx.x[1]), ctx.x[6]);
        let Some((r, _)) = self.fast_object(t, reply_cptr, ObjectKind::Reply, Rights::NONE) else {
            return false;
        };
        let Some((ep, _)) = self.fast_object(t, cptr, ObjectKind::Endpoint, Rights::READ) else {
            return false;
        };
        let o = &mut self.o;
        let caller = o.replies[r].caller;
        if caller == NONE
            || o.replies[r].server as usize != t
            || o.tcbs[caller as usize].fault_label != 0
            || o.threads.state(caller as usize) != ThreadState::WaitingForReply(t)
            || o.eps[ep].kind == EndpointQueue::Send
        {
            return false;
        }
        let bound = o.tcbs[t].bound;
        if bound != NONE && o.ntfns[bound as usize].active {
            return false;
        }
        let caller = caller as usize;
        // The reply, as `Objects::reply` makes it.
        o.replies[r].caller = NONE;
        o.tcbs[caller].caller_reply = NONE;
        let _ = o.threads.reply(t, caller);
        o.transfer(m, t, caller, 0, info);
        if o.sched.runs_on_loan(t) {
            let _ = o.sched.give_back(t, caller);
        }
        o.sync(caller);
        // The receive, as `Objects::recv` makes it when nobody sends.
        o.tcbs[t].recv_reply = r as u16;
        if let Ok(RecvOutcome::Blocked) = o.threads.recv(&mut o.eps[ep], ep, t, true) {
            o.sync(t);
        }
        o.schedule();
        true
    }
}
