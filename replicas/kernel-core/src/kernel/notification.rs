//! Notifications: words of signal bits (signal, wait), and the scheduling context a
//! notification may lend the passive thread that handles its signals. A notification has
//! no invocations; the Send and Wait system calls, interrupts and doorbells use it.

use super::objects::Objects;
use crate::id::{NotificationId, ThreadId};
use crate::ipc::{ThreadState, WaitOutcome};

impl Objects {
    pub fn wait(&mut self, t: ThreadId, n: NotificationId, blocking: bool) {
        let signalled = self.ntfns[n].active;
        match self.threads.wait(&mut self.ntfns[n], n, t, blocking) {
            Ok(WaitOutcome::Got(bits)) => {
                let ctx = &mut self.tcbs[t].ctx;
                ctx.x[0] = bits;
                ctx.x[1] = 0;
                if signalled {
                    self.donate_from(n, t);
                }
            }
            Ok(WaitOutcome::Blocked) => {
                self.return_to(n, t);
                self.sync(t);
            }
            Err(_) => {}
        }
    }

    /// Whether a signal on `n` wakes a thread ([`Objects::signal`]'s two cases: a waiter,
    /// or the bound thread receiving on its endpoint), so that the caller must be charged
    /// and a thread chosen. (A destroyed notification has neither.)
    #[inline]
    pub(super) fn signal_wakes(&self, n: NotificationId) -> bool {
        !self.ntfns[n].waiters.is_empty()
            || self.ntfn_bound[n]
                .is_some_and(|b| matches!(self.threads.state(b), ThreadState::Receiving(_)))
    }

    /// Signals notification `n` with `badge`: a waiter gets it, or the thread bound to it
    /// if that thread waits on an endpoint, or the bits wait in the word. A woken thread
    /// without a scheduling context runs on the notification's, if it has a free one.
    pub fn signal(&mut self, n: NotificationId, badge: u64) {
        if !self.ntfn_live[n] {
            return;
        }
        if let Some((woken, bits)) = self.threads.signal(&mut self.ntfns[n], badge) {
            let ctx = &mut self.tcbs[woken].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.donate_from(n, woken);
            self.sync(woken);
            return;
        }
        if let Some(b) = self.ntfn_bound[n]
            && matches!(self.threads.state(b), ThreadState::Receiving(_))
        {
            self.ntfns[n].active = false;
            let bits = core::mem::take(&mut self.ntfns[n].word);
            self.threads.cancel(b, &mut self.eps, &mut self.ntfns);
            self.threads.resume(b);
            let ctx = &mut self.tcbs[b].ctx;
            ctx.x[0] = bits;
            ctx.x[1] = 0;
            self.donate_from(n, b);
            self.sync(b);
        }
    }

    /// seL4's `maybeDonateSchedContext`: `t`, if it has no scheduling context, gets
    /// notification `n`'s while nobody else runs on it (the scheduler refuses otherwise).
    #[inline]
    pub(super) fn donate_from(&mut self, n: NotificationId, t: ThreadId) {
        if let Some(sc) = self.ntfn_sc[n] {
            let _ = self.sched.donate(sc, t);
        }
    }

    /// seL4's `maybeReturnSchedContext`: `t` blocks to receive, so notification `n`'s
    /// scheduling context, if `t` runs on it, goes back to the notification.
    #[inline]
    pub fn return_to(&mut self, n: NotificationId, t: ThreadId) {
        if let Some(sc) = self.ntfn_sc[n] {
            self.sched.reclaim(sc, t);
        }
    }

    pub(super) fn destroy_notification(&mut self, n: NotificationId) {
        let waiters = self.waiters(&self.ntfns[n].waiters);
        self.threads.destroy_notification(&mut self.ntfns[n]);
        if let Some(b) = self.ntfn_bound[n].take() {
            self.tcbs[b].bound = None;
        }
        if let Some(sc) = self.ntfn_sc[n].take() {
            self.sc_ntfn[sc] = None;
            if let Some(t) = self.sched.serves(sc) {
                self.sched.reclaim(sc, t);
            }
        }
        for irq in self.irqs.values_mut() {
            if irq.ntfn == Some(n) {
                irq.ntfn = None;
            }
        }
        self.watches.remove(n);
        self.ntfn_live[n] = false;
        self.release(waiters.into_iter().flatten());
    }
}
