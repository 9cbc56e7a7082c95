//! Endpoints: synchronous messages between threads (send, receive, call). An endpoint
//! has no invocations; the Send, Call and Recv system calls use it.

use atoll_abi::syscall::MessageInfo;

use super::Machine;
use super::objects::Objects;
use crate::id::{EndpointId, ThreadId};
use crate::ipc::{RecvOutcome, SendOutcome};

impl Objects {
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        ep: EndpointId,
        badge: u64,
        info: MessageInfo,
        blocking: bool,
        call: bool,
    ) {
        let Ok(outcome) = self
            .threads
            .send(&mut self.eps[ep], ep, t, badge, blocking, call)
        else {
            return;
        };
        match outcome {
            SendOutcome::Delivered { to } => {
                self.transfer(m, t, to, badge, info);
                if call {
                    self.bind_reply(t, to);
                }
                self.sync(to);
                self.sync(t);
            }
            SendOutcome::Blocked => self.sync(t),
            SendOutcome::Dropped => {}
        }
    }

    pub fn recv(&mut self, m: &mut impl Machine, t: ThreadId, ep: EndpointId, blocking: bool) {
        let bound = self.tcbs[t].bound;
        if let Some(n) = bound {
            // A bound notification with bits pending is delivered first.
            if self.ntfns[n].active {
                self.ntfns[n].active = false;
                let bits = core::mem::take(&mut self.ntfns[n].word);
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = bits;
                ctx.x[1] = 0;
                self.donate_from(n, t);
                return;
            }
            // Receiving again: the notification's context goes back to it.
            if blocking {
                self.return_to(n, t);
            }
        }
        let Ok(outcome) = self.threads.recv(&mut self.eps[ep], ep, t, blocking) else {
            return;
        };
        match outcome {
            RecvOutcome::Received { from, badge, call } => {
                let info = MessageInfo(self.tcbs[from].ctx.x[1]);
                self.transfer(m, from, t, badge, info);
                if call {
                    self.bind_reply(from, t);
                }
                self.sync(from);
            }
            RecvOutcome::Blocked => self.sync(t),
            RecvOutcome::Nothing => {
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = 0;
                ctx.x[1] = 0;
            }
        }
    }

    /// The last capability to endpoint `e` went: its queued threads are released.
    pub(super) fn destroy_endpoint(&mut self, e: EndpointId) {
        let waiters = self.waiters(&self.eps[e].queue);
        self.threads.destroy_endpoint(&mut self.eps[e]);
        self.ep_live[e] = false;
        self.release(waiters.into_iter().flatten());
    }
}
