//! Reply objects: who waits for a reply through one, from whom, and whether the caller lent
//! the server its scheduling context for the call (seL4 MCS's reply objects). A reply object
//! has no invocations; the ReplyRecv system call and the IPC paths use it.

use atoll_abi::error::Error;
use atoll_abi::syscall::MessageInfo;

use super::Machine;
use super::objects::Objects;
use super::tcb::PdChange;
use crate::id::{ReplyId, ThreadId};

/// A reply object: who waits for a reply through it, from whom, and whether the caller
/// lent the server its scheduling context for the call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reply {
    pub live: bool,
    pub caller: Option<ThreadId>,
    pub server: Option<ThreadId>,
    pub lent: bool,
}

impl Reply {
    pub const FREE: Reply = Reply {
        live: false,
        caller: None,
        server: None,
        lent: false,
    };
}

impl Objects {
    /// Reply object `r` no longer answers `caller`.
    #[inline(always)]
    pub(super) fn unbind_caller(&mut self, r: ReplyId, caller: ThreadId) {
        let reply = &mut self.replies[r];
        reply.caller = None;
        reply.lent = false;
        self.tcbs[caller].caller_reply = None;
    }

    /// The reply object `server` named in its receive, if it is free for a caller.
    pub fn free_reply(&self, server: ThreadId) -> Option<ReplyId> {
        let r = self.tcbs[server].recv_reply?;
        let reply = &self.replies[r];
        (reply.live && reply.caller.is_none()).then_some(r)
    }

    /// A call from `caller` reached `server`: bind the server's reply object to the caller
    /// and lend a server without a scheduling context the caller's. Without a reply object
    /// the call fails at once.
    pub fn bind_reply(&mut self, caller: ThreadId, server: ThreadId) {
        let Some(r) = self.free_reply(server) else {
            let _ = self.threads.reply(server, caller);
            let ctx = &mut self.tcbs[caller].ctx;
            ctx.x[0] = 0;
            ctx.x[1] = MessageInfo::new(Error::IllegalOperation as u64, 0).0;
            self.tcbs[caller].fault_label = 0;
            self.sync(caller);
            return;
        };
        // A server with a context of its own is lent nothing (the scheduler refuses).
        let lent = self.sched.lend(caller, server).is_ok();
        self.bind_caller(r, caller, server, lent);
    }

    /// Reply object `r` answers `caller`'s call to `server`, which runs on the caller's
    /// context if `lent`.
    #[inline(always)]
    pub(super) fn bind_caller(
        &mut self,
        r: ReplyId,
        caller: ThreadId,
        server: ThreadId,
        lent: bool,
    ) {
        self.replies[r] = Reply {
            live: true,
            caller: Some(caller),
            server: Some(server),
            lent,
        };
        self.tcbs[caller].caller_reply = Some(r);
    }

    pub fn reply(&mut self, m: &mut impl Machine, t: ThreadId, r: ReplyId, info: MessageInfo) {
        let Reply {
            caller: Some(caller),
            server,
            lent,
            ..
        } = self.replies[r]
        else {
            return;
        };
        match server {
            Some(server) => self.answer(m, t, r, (caller, server, lent), info),
            // Its server is gone: the binding goes, the caller stays as it is.
            None => self.unbind_caller(r, caller),
        }
    }

    /// `t` replies through reply object `r`, bound to `caller` waiting for `server` (which
    /// ran on the caller's context if `lent`): the binding goes, the caller gets the
    /// message (or, after a fault, resumes or stays stopped), and its context comes back.
    /// The fast ReplyRecv delivers its reply through [`Objects::deliver_reply`] too.
    #[inline(always)]
    pub fn answer(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        r: ReplyId,
        (caller, server, lent): (ThreadId, ThreadId, bool),
        info: MessageInfo,
    ) {
        if !self.deliver_reply(m, t, r, (caller, server), info) {
            return;
        }
        if lent {
            let _ = self.sched.give_back(server, caller);
        }
        self.sync(caller);
    }

    /// The message side of [`Objects::answer`]: the binding goes and the caller gets the
    /// message (or, after a fault, resumes or stays stopped). Returns whether `caller` was
    /// waiting for `server`'s reply.
    #[inline(always)]
    pub(super) fn deliver_reply(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        r: ReplyId,
        (caller, server): (ThreadId, ThreadId),
        info: MessageInfo,
    ) -> bool {
        self.unbind_caller(r, caller);
        if self.threads.reply(server, caller).is_err() {
            return false;
        }
        if self.tcbs[caller].fault_label != 0 {
            // A reply to a fault: label 0 resumes the thread, anything else leaves it stopped
            // (and its PD `faulted`).
            self.tcbs[caller].fault_label = 0;
            if info.label() != 0 {
                self.threads.cancel(caller, &mut self.eps, &mut self.ntfns);
            } else {
                self.publish(m, caller, PdChange::Running);
            }
        } else {
            self.transfer(m, t, caller, 0, info);
        }
        true
    }

    pub(super) fn destroy_reply(&mut self, r: ReplyId) {
        let Reply {
            caller,
            server,
            lent,
            ..
        } = self.replies[r];
        self.replies[r] = Reply::FREE;
        for tcb in self.tcbs.values_mut() {
            if tcb.recv_reply == Some(r) {
                tcb.recv_reply = None;
            }
        }
        let Some(c) = caller else {
            return;
        };
        self.tcbs[c].caller_reply = None;
        if let Some(s) = server {
            let _ = self.threads.reply(s, c);
            if lent {
                let _ = self.sched.give_back(s, c);
            }
        }
        self.tcbs[c].fault_label = 0;
        self.threads.cancel(c, &mut self.eps, &mut self.ntfns);
        self.release([c]);
    }
}
