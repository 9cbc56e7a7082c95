//! The fast path for the system calls of a protected procedure call and of a notification:
//! Call, when a server already waits on the endpoint; ReplyRecv, when the caller waits for
//! the reply and no sender is queued; Signal and Wait on a notification. Each is served
//! with one-level capability lookups, the message in registers only, and no general
//! dispatch.
//!
//! Each function first checks every precondition without changing anything and returns
//! `false` if one fails; the general path then serves the call with the same result. Past
//! the checks, the state changes are the general path's own primitives in the same order,
//! so the two paths cannot disagree on what a call does: the host tests run every call
//! through both (see `tests.rs`).

use atoll_abi::microkit::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo};

use super::{Kernel, NONE, set_registers};
use crate::cap::{Cap, Rights};
use crate::ipc::{EndpointQueue, RecvOutcome, SendOutcome, ThreadState};

impl Kernel {
    /// Serves system call `number` of the current thread `t` on the fast path when it can;
    /// returns whether it did (when `false`, nothing changed).
    pub(super) fn fastpath(&mut self, t: usize, number: i64) -> bool {
        match number {
            syscall::CALL => self.fast_call(t),
            syscall::REPLY_RECV => self.fast_reply_recv(t),
            syscall::SEND | syscall::NB_SEND => self.fast_signal(t),
            syscall::WAIT => self.fast_wait(t),
            _ => false,
        }
    }

    /// The capability at `cptr` in `t`'s space when that space is one CNode resolving all
    /// 64 bits (guard and radix), as the tool builds every PD's; `None` otherwise (the
    /// general lookup then decides).
    fn one_level_lookup(&self, t: usize, cptr: u64) -> Option<&Cap> {
        let Cap::CNode {
            radix,
            first,
            guard,
            guard_bits,
            ..
        } = self.o.tcbs[t].cspace
        else {
            return None;
        };
        if radix == 0 || radix >= 64 || u32::from(radix) + u32::from(guard_bits) != 64 {
            return None;
        }
        if cptr >> radix != guard {
            return None;
        }
        let index = cptr & (u64::MAX >> (64 - u32::from(radix)));
        Some(self.caps.get_ref(first as usize + index as usize))
    }

    /// The endpoint at `cptr` if the capability has `right`: (index, badge).
    fn fast_endpoint(&self, t: usize, cptr: u64, right: Rights) -> Option<(usize, u64)> {
        match *self.one_level_lookup(t, cptr)? {
            Cap::Object {
                kind: ObjectKind::Endpoint,
                rights,
                badge,
                data,
                ..
            } if rights.contains(right) => Some((data as usize, badge)),
            _ => None,
        }
    }

    /// The notification at `cptr` if the capability has `right`: (index, badge).
    fn fast_notification(&self, t: usize, cptr: u64, right: Rights) -> Option<(usize, u64)> {
        match *self.one_level_lookup(t, cptr)? {
            Cap::Object {
                kind: ObjectKind::Notification,
                rights,
                badge,
                data,
                ..
            } if rights.contains(right) => Some((data as usize, badge)),
            _ => None,
        }
    }

    /// Signal: a Send on a notification capability with the write right.
    fn fast_signal(&mut self, t: usize) -> bool {
        let cptr = self.o.tcbs[t].ctx.x[0];
        let Some((n, badge)) = self.fast_notification(t, cptr, Rights::WRITE) else {
            return false;
        };
        self.o.signal(n, badge);
        self.o.schedule();
        true
    }

    /// Wait on a notification capability with the read right.
    fn fast_wait(&mut self, t: usize) -> bool {
        let cptr = self.o.tcbs[t].ctx.x[0];
        let Some((n, _)) = self.fast_notification(t, cptr, Rights::READ) else {
            return false;
        };
        self.o.wait(t, n, true);
        self.o.schedule();
        true
    }

    /// Call: a server waits on the endpoint with a free reply object.
    fn fast_call(&mut self, t: usize) -> bool {
        let ctx = &self.o.tcbs[t].ctx;
        let (cptr, info) = (ctx.x[0], MessageInfo(ctx.x[1]));
        let len = info.length();
        if len > syscall::REGISTER_MESSAGE_REGISTERS {
            return false;
        }
        let Some((ep, badge)) = self.fast_endpoint(t, cptr, Rights::WRITE) else {
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
        let mrs = [
            ctx_mr(o, t, 0),
            ctx_mr(o, t, 1),
            ctx_mr(o, t, 2),
            ctx_mr(o, t, 3),
        ];
        let sctx = &mut o.tcbs[server].ctx;
        set_registers(sctx, mrs, len);
        sctx.x[0] = badge;
        sctx.x[1] = MessageInfo::new(info.label(), len as u64).0;
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
    fn fast_reply_recv(&mut self, t: usize) -> bool {
        let ctx = &self.o.tcbs[t].ctx;
        let (cptr, info, reply_cptr) = (ctx.x[0], MessageInfo(ctx.x[1]), ctx.x[6]);
        let len = info.length();
        if len > syscall::REGISTER_MESSAGE_REGISTERS {
            return false;
        }
        let r = match self.one_level_lookup(t, reply_cptr) {
            Some(&Cap::Object {
                kind: ObjectKind::Reply,
                data,
                ..
            }) => data as usize,
            _ => return false,
        };
        let Some((ep, _)) = self.fast_endpoint(t, cptr, Rights::READ) else {
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
        let mrs = [
            ctx_mr(o, t, 0),
            ctx_mr(o, t, 1),
            ctx_mr(o, t, 2),
            ctx_mr(o, t, 3),
        ];
        let cctx = &mut o.tcbs[caller].ctx;
        set_registers(cctx, mrs, len);
        cctx.x[0] = 0;
        cctx.x[1] = MessageInfo::new(info.label(), len as u64).0;
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

/// Register message register `i` of thread `t`.
fn ctx_mr(o: &super::Objects, t: usize, i: usize) -> u64 {
    o.tcbs[t].ctx.x[2 + i]
}
