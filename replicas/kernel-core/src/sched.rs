//! The per-core scheduler: fixed priorities 0–255 (higher runs first), round robin within a
//! priority, and scheduling contexts that give each thread a budget per period (Microkit's
//! `budget` and `period`).
//!
//! A thread runs only on a scheduling context: its own, or one it was given for a while:
//! a passive server runs on the context its caller lends it for a call ([`Scheduler::lend`],
//! [`Scheduler::give_back`]), or on the context bound to its notification while it handles
//! a signal ([`Scheduler::donate`], [`Scheduler::reclaim`]). A context that has spent its
//! budget leaves the ready queues until its next period begins.
//!
//! With a domain schedule running ([`crate::domains`]), only threads of the current domain
//! are chosen: [`Scheduler::choose`] then walks the ready queues from the highest priority
//! for the first such thread (O(ready threads)). Without one, which is every system that
//! does not ask for domains, the cost is one test in `choose`, and nothing anywhere else.
//!
//! Time is counted in whatever unit the caller uses (the kernel uses counter ticks).
//! Everything is fixed-size and O(1) per operation except [`Scheduler::tick`], which scans
//! the contexts.

use crate::domains::{DomainError, Schedule};
use crate::id::{MAX_SCHED_CONTEXTS, MAX_THREADS, PRIORITIES, SchedContextId, Table, ThreadId};

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug)]
struct Thread {
    priority: u8,
    /// Scheduling context it runs on now (own, lent or donated), if any.
    sc: Option<SchedContextId>,
    /// Its own scheduling context, if it is not passive.
    own_sc: Option<SchedContextId>,
    ready: bool,
    /// Wants to run (not blocked); it may still be off the queues for lack of budget.
    runnable: bool,
    next: Option<ThreadId>,
    prev: Option<ThreadId>,
    exists: bool,
    /// Its domain (seL4's `DomainSet_Set`); 0 unless set.
    domain: u8,
}

impl Thread {
    const EMPTY: Thread = Thread {
        priority: 0,
        sc: None,
        own_sc: None,
        ready: false,
        runnable: false,
        next: None,
        prev: None,
        exists: false,
        domain: 0,
    };
}

/// A scheduling context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedContext {
    /// Time it may run per period.
    pub budget: u64,
    /// Length of a period.
    pub period: u64,
    /// Budget left in the current period.
    pub remaining: u64,
    /// When the current period ends and the budget is refilled.
    pub refill_at: u64,
}

/// Why a scheduler call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No such thread or scheduling context.
    NoSuch,
    /// Budget zero, or budget above period.
    BadParameters,
    /// The context already runs another thread, or the thread already has one.
    InUse,
}

/// Threads' and scheduling contexts' tables.
type Threads = Table<ThreadId, Thread, MAX_THREADS>;

/// One core's scheduler.
pub struct Scheduler {
    threads: Threads,
    scs: Table<SchedContextId, Option<SchedContext>, MAX_SCHED_CONTEXTS>,
    /// Which thread each context serves now.
    sc_thread: Table<SchedContextId, Option<ThreadId>, MAX_SCHED_CONTEXTS>,
    heads: Table<u8, Option<ThreadId>, PRIORITIES>,
    tails: Table<u8, Option<ThreadId>, PRIORITIES>,
    /// Bit `p % 64` of word `p / 64` is set when priority `p` has a ready thread.
    bitmap: [u64; PRIORITIES / 64],
    now: u64,
    /// The next time something is due: the earliest refill among contexts that have spent
    /// part of their budget, or the end of the running domain slot (`u64::MAX`: none),
    /// kept by every change so that [`Scheduler::next_event`] is O(1) and reads nothing
    /// of the domain schedule.
    next_refill: u64,
    /// The domain schedule.
    domains: Schedule,
    /// Whether it was started: the one thing the common path reads of it.
    domains_running: bool,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// An empty scheduler at time 0.
    pub const fn new() -> Self {
        Self {
            threads: Table::filled(Thread::EMPTY),
            scs: Table::filled(None),
            sc_thread: Table::filled(None),
            heads: Table::filled(None),
            tails: Table::filled(None),
            bitmap: [0; PRIORITIES / 64],
            now: 0,
            next_refill: u64::MAX,
            domains: Schedule::new(),
            domains_running: false,
        }
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Creates a blocked thread at `priority`.
    pub fn add_thread(&mut self, thread: ThreadId, priority: u8) {
        self.threads[thread] = Thread {
            priority,
            exists: true,
            ..Thread::EMPTY
        };
    }

    /// Configures scheduling context `sc` with `budget` per `period`, full.
    pub fn configure(
        &mut self,
        sc: SchedContextId,
        budget: u64,
        period: u64,
    ) -> Result<(), SchedError> {
        if budget == 0 || budget > period {
            return Err(SchedError::BadParameters);
        }
        self.scs[sc] = Some(SchedContext {
            budget,
            period,
            remaining: budget,
            refill_at: self.now.saturating_add(period),
        });
        self.update_next_refill();
        Ok(())
    }

    /// A context's state, once it is configured.
    pub fn sched_context(&self, sc: SchedContextId) -> Option<SchedContext> {
        self.scs[sc]
    }

    /// The thread a context serves now, if any.
    pub fn serves(&self, sc: SchedContextId) -> Option<ThreadId> {
        self.sc_thread[sc]
    }

    fn exists(&self, thread: ThreadId) -> Result<(), SchedError> {
        if self.threads[thread].exists {
            Ok(())
        } else {
            Err(SchedError::NoSuch)
        }
    }

    /// Binds the configured context `sc` to `thread` as its own (a passive thread has
    /// none).
    pub fn bind(&mut self, thread: ThreadId, sc: SchedContextId) -> Result<(), SchedError> {
        self.exists(thread)?;
        if self.scs[sc].is_none() {
            return Err(SchedError::NoSuch);
        }
        if self.sc_thread[sc].is_some() || self.threads[thread].own_sc.is_some() {
            return Err(SchedError::InUse);
        }
        let t = &mut self.threads[thread];
        t.own_sc = Some(sc);
        if t.sc.is_none() {
            t.sc = Some(sc);
            self.sc_thread[sc] = Some(thread);
        }
        self.requeue(thread);
        Ok(())
    }

    /// Whether `thread` is in the ready queues.
    pub fn is_ready(&self, thread: ThreadId) -> bool {
        self.threads[thread].ready
    }

    fn has_budget(&self, thread: ThreadId) -> bool {
        self.threads[thread]
            .sc
            .and_then(|sc| self.scs[sc].as_ref())
            .is_some_and(|c| c.remaining > 0)
    }

    /// Puts the thread in or out of the queues to match its state.
    fn requeue(&mut self, thread: ThreadId) {
        let should = self.threads[thread].runnable && self.has_budget(thread);
        match (self.threads[thread].ready, should) {
            (false, true) => self.enqueue(thread),
            (true, false) => self.dequeue(thread),
            _ => {}
        }
    }

    fn set_bit(&mut self, priority: u8, on: bool) {
        if let Some(word) = self.bitmap.get_mut(usize::from(priority / 64)) {
            let bit = 1u64 << (priority % 64);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    fn enqueue(&mut self, thread: ThreadId) {
        let p = self.threads[thread].priority;
        let tail = self.tails[p];
        self.threads[thread].prev = tail;
        self.threads[thread].next = None;
        match tail {
            None => self.heads[p] = Some(thread),
            Some(tail) => self.threads[tail].next = Some(thread),
        }
        self.tails[p] = Some(thread);
        self.set_bit(p, true);
        self.threads[thread].ready = true;
    }

    fn dequeue(&mut self, thread: ThreadId) {
        let Thread {
            priority: p,
            next,
            prev,
            ..
        } = self.threads[thread];
        match prev {
            None => self.heads[p] = next,
            Some(prev) => self.threads[prev].next = next,
        }
        match next {
            None => self.tails[p] = prev,
            Some(next) => self.threads[next].prev = prev,
        }
        if self.heads[p].is_none() {
            self.set_bit(p, false);
        }
        let t = &mut self.threads[thread];
        t.ready = false;
        t.next = None;
        t.prev = None;
    }

    /// The thread wants to run (it was resumed or woken).
    pub fn wake(&mut self, thread: ThreadId) -> Result<(), SchedError> {
        self.exists(thread)?;
        self.threads[thread].runnable = true;
        self.requeue(thread);
        Ok(())
    }

    /// The thread blocks (waits for IPC, is suspended).
    pub fn block(&mut self, thread: ThreadId) -> Result<(), SchedError> {
        self.exists(thread)?;
        self.threads[thread].runnable = false;
        self.requeue(thread);
        Ok(())
    }

    /// Moves the thread to the back of its priority's queue.
    pub fn yield_now(&mut self, thread: ThreadId) -> Result<(), SchedError> {
        self.exists(thread)?;
        if self.threads[thread].ready {
            self.dequeue(thread);
            self.enqueue(thread);
        }
        Ok(())
    }

    /// Changes a thread's priority (it keeps its place among the ready, at the back).
    pub fn set_priority(&mut self, thread: ThreadId, priority: u8) -> Result<(), SchedError> {
        self.exists(thread)?;
        let was_ready = self.threads[thread].ready;
        if was_ready {
            self.dequeue(thread);
        }
        self.threads[thread].priority = priority;
        if was_ready {
            self.enqueue(thread);
        }
        Ok(())
    }

    /// Puts the thread in domain `domain` (it leaves the queues if that domain is not
    /// running).
    pub fn set_domain(&mut self, thread: ThreadId, domain: u8) -> Result<(), SchedError> {
        self.exists(thread)?;
        self.threads[thread].domain = domain;
        Ok(())
    }

    /// Sets entry `index` of the domain schedule to `domain` for `duration`.
    pub fn configure_domain(
        &mut self,
        index: usize,
        domain: u8,
        duration: u64,
    ) -> Result<(), DomainError> {
        self.domains.configure(index, domain, duration)
    }

    /// Starts the domain schedule at entry `index`, now: only the threads of its domain
    /// stay ready.
    pub fn start_domains(&mut self, index: usize) -> Result<(), DomainError> {
        self.domains.start(index, self.now)?;
        self.domains_running = true;
        self.update_next_refill();
        Ok(())
    }

    /// The domain whose threads run now.
    pub fn current_domain(&self) -> u8 {
        self.domains.current()
    }

    /// Whether some thread wants to run but is off the queues until its budget is refilled
    /// (or until it gets a scheduling context).
    pub fn any_waiting_for_budget(&self) -> bool {
        self.threads
            .values()
            .any(|t| t.exists && t.runnable && !t.ready)
    }

    /// The thread to run: the first ready thread of the highest ready priority (of the
    /// current domain, when a domain schedule runs).
    #[inline]
    pub fn choose(&self) -> Option<ThreadId> {
        if self.domains_running {
            return self.choose_in_domain();
        }
        let [b0, b1, b2, b3] = self.bitmap;
        let (base, bits) = if b3 != 0 {
            (192u8, b3)
        } else if b2 != 0 {
            (128, b2)
        } else if b1 != 0 {
            (64, b1)
        } else if b0 != 0 {
            (0, b0)
        } else {
            return None;
        };
        // `bits` is non-zero, so its highest set bit, 63 - leading zeros, is 0..=63.
        let p = base | (bits.leading_zeros() ^ 63) as u8;
        self.heads[p]
    }

    /// The first ready thread of the current domain, highest priority first; `None` (the
    /// core idles) when that domain has none, whatever other domains have ready.
    #[cold]
    fn choose_in_domain(&self) -> Option<ThreadId> {
        let domain = self.domains.current();
        // Only the priorities the bitmap marks as having ready threads, highest first.
        for (word, &bits) in self.bitmap.iter().enumerate().rev() {
            let mut left = bits;
            while left != 0 {
                let bit = left.leading_zeros() ^ 63; // the highest set bit, 0..=63
                left ^= 1u64.wrapping_shl(bit);
                // word < 4 and bit < 64: below 256.
                let p = (word as u32).wrapping_mul(64).wrapping_add(bit) as u8;
                let mut next = self.heads[p];
                while let Some(t) = next {
                    if self.threads[t].domain == domain {
                        return Some(t);
                    }
                    next = self.threads[t].next;
                }
            }
        }
        None
    }

    /// Moves `sc` from `from` (which runs on it) to `to` (which has none).
    fn move_sc(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        self.exists(from)?;
        self.exists(to)?;
        let Some(sc) = self.threads[from].sc else {
            return Err(SchedError::InUse);
        };
        if self.threads[to].sc.is_some() {
            return Err(SchedError::InUse);
        }
        self.threads[from].sc = None;
        self.threads[to].sc = Some(sc);
        self.sc_thread[sc] = Some(to);
        self.requeue(from);
        self.requeue(to);
        Ok(())
    }

    /// Lends `caller`'s scheduling context to `server` for a call: the server runs on it,
    /// the caller waits for the reply without one.
    pub fn lend(&mut self, caller: ThreadId, server: ThreadId) -> Result<(), SchedError> {
        self.move_sc(caller, server)
    }

    /// The server replies: the context it was lent goes back to `caller`.
    pub fn give_back(&mut self, server: ThreadId, caller: ThreadId) -> Result<(), SchedError> {
        let sc = self.threads[server].sc;
        if sc.is_some() && self.threads[server].own_sc == sc {
            return Err(SchedError::InUse); // its own: nothing was lent
        }
        self.move_sc(server, caller)
    }

    /// Gives `thread`, which has no context, the unused context `sc` (a notification's,
    /// while the thread handles a signal).
    pub fn donate(&mut self, sc: SchedContextId, thread: ThreadId) -> Result<(), SchedError> {
        self.exists(thread)?;
        if self.scs[sc].is_none() {
            return Err(SchedError::NoSuch);
        }
        if self.threads[thread].sc.is_some() || self.sc_thread[sc].is_some() {
            return Err(SchedError::InUse);
        }
        self.threads[thread].sc = Some(sc);
        self.sc_thread[sc] = Some(thread);
        self.requeue(thread);
        Ok(())
    }

    /// Takes `sc` back from `thread` if the thread runs on it and it is not the thread's
    /// own; returns whether it did.
    pub fn reclaim(&mut self, sc: SchedContextId, thread: ThreadId) -> bool {
        let t = self.threads[thread];
        if !t.exists || t.sc != Some(sc) || t.own_sc == Some(sc) {
            return false;
        }
        self.threads[thread].sc = None;
        self.sc_thread[sc] = None;
        self.requeue(thread);
        true
    }

    /// Removes a thread (its TCB is destroyed): it leaves the queues, and the scheduling
    /// context it runs on (own or lent) serves nobody.
    pub fn remove_thread(&mut self, thread: ThreadId) {
        if self.exists(thread).is_err() {
            return;
        }
        self.threads[thread].runnable = false;
        self.requeue(thread);
        if let Some(sc) = self.threads[thread].sc
            && self.sc_thread[sc] == Some(thread)
        {
            self.sc_thread[sc] = None;
        }
        self.threads[thread] = Thread::EMPTY;
    }

    /// Takes `thread`'s own scheduling context away, making it passive. Returns the context,
    /// if it had one.
    pub fn unbind(&mut self, thread: ThreadId) -> Option<SchedContextId> {
        self.exists(thread).ok()?;
        let own = self.threads[thread].own_sc.take()?;
        if self.threads[thread].sc == Some(own) {
            self.threads[thread].sc = None;
            self.sc_thread[own] = None;
        }
        self.requeue(thread);
        Some(own)
    }

    /// Destroys a scheduling context: the thread it serves (if any) loses it.
    pub fn remove_sc(&mut self, sc: SchedContextId) {
        self.scs[sc] = None;
        self.update_next_refill();
        if let Some(thread) = self.sc_thread[sc].take() {
            let t = &mut self.threads[thread];
            if t.own_sc == Some(sc) {
                t.own_sc = None;
            }
            if t.sc == Some(sc) {
                t.sc = None;
            }
            self.requeue(thread);
        }
    }

    /// The thread's own scheduling context; `None` when it is passive.
    pub fn own_sc(&self, thread: ThreadId) -> Option<SchedContextId> {
        let t = &self.threads[thread];
        t.own_sc.filter(|_| t.exists)
    }

    /// Whether the thread has a scheduling context of its own.
    pub fn has_own_sc(&self, thread: ThreadId) -> bool {
        self.own_sc(thread).is_some()
    }

    /// The scheduling context the thread runs on now (own, lent or donated), if any.
    pub fn sc(&self, thread: ThreadId) -> Option<SchedContextId> {
        let t = &self.threads[thread];
        t.sc.filter(|_| t.exists)
    }

    /// Whether the thread has a scheduling context at all (own, lent or donated).
    pub fn has_sc(&self, thread: ThreadId) -> bool {
        self.sc(thread).is_some()
    }

    /// Time until the next scheduling event: `running`'s budget runs out, some context's
    /// period ends or the domain slot ends. `None` when nothing is scheduled to happen.
    pub fn next_event(&self, running: Option<ThreadId>) -> Option<u64> {
        let budget = running
            .and_then(|t| self.threads[t].sc)
            .and_then(|sc| self.scs[sc].as_ref())
            .map(|c| c.remaining);
        let refill =
            (self.next_refill != u64::MAX).then(|| self.next_refill.saturating_sub(self.now));
        match (budget, refill) {
            (Some(b), Some(r)) => Some(b.min(r)),
            (b, r) => b.or(r),
        }
    }

    /// Recomputes [`Scheduler::next_refill`].
    fn update_next_refill(&mut self) {
        let refill = self
            .scs
            .values()
            .flatten()
            .filter(|c| c.remaining < c.budget)
            .map(|c| c.refill_at)
            .min()
            .unwrap_or(u64::MAX);
        self.next_refill = refill.min(self.domains.ends_at().unwrap_or(u64::MAX));
    }

    /// Time passes by `elapsed` while `running` runs: its context pays, and every context
    /// whose period has ended is refilled. Returns whether `running` must stop (no budget).
    pub fn tick(&mut self, running: Option<ThreadId>, elapsed: u64) -> bool {
        self.now = self.now.saturating_add(elapsed);
        let mut out_of_budget = false;
        if let Some(thread) = running.filter(|&t| self.threads[t].exists) {
            if let Some(c) = self.threads[thread].sc.and_then(|sc| self.scs[sc].as_mut()) {
                c.remaining = c.remaining.saturating_sub(elapsed);
                out_of_budget = c.remaining == 0;
            }
            if out_of_budget {
                self.requeue(thread);
            }
        }
        let now = self.now;
        for sc in SchedContextId::all() {
            let Some(c) = self.scs[sc].as_mut().filter(|c| now >= c.refill_at) else {
                continue;
            };
            // `period` is at least the budget, which is at least 1.
            let since = now.saturating_sub(c.refill_at);
            let periods = since.checked_div(c.period).unwrap_or(0).saturating_add(1);
            c.refill_at = c.refill_at.saturating_add(periods.saturating_mul(c.period));
            c.remaining = c.budget;
            if let Some(thread) = self.sc_thread[sc] {
                self.requeue(thread);
            }
        }
        // A new domain's threads are chosen from the next `choose`.
        self.domains.advance(now);
        self.update_next_refill();
        out_of_budget
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    type Sched = Scheduler;

    fn t(i: usize) -> ThreadId {
        ThreadId::new(i).unwrap()
    }

    fn c(i: usize) -> SchedContextId {
        SchedContextId::new(i).unwrap()
    }

    fn thread(s: &mut Sched, i: usize, priority: u8, budget: u64, period: u64) {
        s.add_thread(t(i), priority);
        s.configure(c(i), budget, period).unwrap();
        s.bind(t(i), c(i)).unwrap();
        s.wake(t(i)).unwrap();
    }

    #[test]
    fn highest_priority_first_then_round_robin() {
        let mut s = Sched::new();
        thread(&mut s, 0, 10, 100, 100);
        thread(&mut s, 1, 200, 100, 100);
        thread(&mut s, 2, 200, 100, 100);
        assert_eq!(s.choose(), Some(t(1)));
        s.yield_now(t(1)).unwrap();
        assert_eq!(s.choose(), Some(t(2)));
        s.block(t(2)).unwrap();
        s.block(t(1)).unwrap();
        assert_eq!(s.choose(), Some(t(0)));
        s.set_priority(t(0), 255).unwrap();
        s.wake(t(1)).unwrap();
        assert_eq!(s.choose(), Some(t(0)));
    }

    #[test]
    fn a_spent_budget_waits_for_its_next_period() {
        let mut s = Sched::new();
        thread(&mut s, 0, 250, 30, 100); // a high-priority spinner with a budget
        thread(&mut s, 1, 10, 100, 100);
        assert_eq!(s.choose(), Some(t(0)));
        assert!(!s.tick(Some(t(0)), 20));
        assert!(!s.any_waiting_for_budget());
        assert!(s.tick(Some(t(0)), 10), "budget spent");
        assert!(s.any_waiting_for_budget());
        assert_eq!(
            s.choose(),
            Some(t(1)),
            "the low-priority thread runs meanwhile"
        );
        s.tick(Some(t(1)), 69);
        assert_eq!(s.choose(), Some(t(1)));
        s.tick(Some(t(1)), 1); // t = 100: a new period
        assert!(!s.any_waiting_for_budget());
        assert_eq!(s.choose(), Some(t(0)));
        assert_eq!(s.sched_context(c(0)).map(|c| c.remaining), Some(30));
    }

    #[test]
    fn passive_servers_run_only_on_a_lent_context() {
        let mut s = Sched::new();
        thread(&mut s, 0, 100, 100, 100); // client
        s.add_thread(t(1), 150); // passive server: no context of its own
        s.wake(t(1)).unwrap();
        assert_eq!(
            s.choose(),
            Some(t(0)),
            "a passive thread is never chosen on its own"
        );
        s.lend(t(0), t(1)).unwrap(); // the call
        assert_eq!(s.choose(), Some(t(1)));
        assert!(!s.is_ready(t(0)));
        s.tick(Some(t(1)), 40);
        assert_eq!(
            s.sched_context(c(0)).map(|c| c.remaining),
            Some(60),
            "the server spends the client's budget"
        );
        s.give_back(t(1), t(0)).unwrap(); // the reply
        assert_eq!(s.choose(), Some(t(0)));
        assert!(!s.is_ready(t(1)));
        assert_eq!(s.give_back(t(1), t(0)), Err(SchedError::InUse));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut s = Sched::new();
        assert_eq!(s.configure(c(0), 0, 10), Err(SchedError::BadParameters));
        assert_eq!(s.configure(c(0), 11, 10), Err(SchedError::BadParameters));
        assert_eq!(SchedContextId::new(99), None, "no context 99 can be named");
        assert_eq!(
            s.wake(t(3)),
            Err(SchedError::NoSuch),
            "a thread that was never added"
        );
        thread(&mut s, 0, 1, 1, 1);
        s.add_thread(t(1), 1);
        assert_eq!(
            s.bind(t(1), c(0)),
            Err(SchedError::InUse),
            "a context serves one thread"
        );
        assert_eq!(
            s.bind(t(1), c(5)),
            Err(SchedError::NoSuch),
            "not configured"
        );
    }

    #[test]
    fn a_donated_context_runs_its_thread_until_it_is_reclaimed() {
        let mut s = Sched::new();
        thread(&mut s, 0, 10, 100, 100);
        s.add_thread(t(1), 150); // a passive thread
        s.configure(c(1), 50, 100).unwrap(); // a notification's context
        s.wake(t(1)).unwrap();
        assert_eq!(s.choose(), Some(t(0)));
        s.donate(c(1), t(1)).unwrap();
        assert_eq!(s.choose(), Some(t(1)));
        assert_eq!(s.serves(c(1)), Some(t(1)));
        assert_eq!(s.donate(c(1), t(1)), Err(SchedError::InUse));
        assert_eq!(
            s.give_back(t(1), t(0)),
            Err(SchedError::InUse),
            "a donated context is not a loan to the caller"
        );
        assert!(!s.reclaim(c(0), t(1)), "it does not run on that one");
        assert!(s.reclaim(c(1), t(1)));
        assert_eq!(s.serves(c(1)), None);
        assert_eq!(s.choose(), Some(t(0)));
        assert!(
            !s.reclaim(c(0), t(0)),
            "a thread's own context is never reclaimed"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Wake(usize),
        Block(usize),
        Yield(usize),
        SetPriority(usize, u8),
        Run(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8).prop_map(Op::Wake),
            (0usize..8).prop_map(Op::Block),
            (0usize..8).prop_map(Op::Yield),
            (0usize..8, 0u8..4).prop_map(|(t, p)| Op::SetPriority(t, p * 60)),
            (1u64..40).prop_map(Op::Run),
        ]
    }

    proptest! {
        /// Whatever happens, the chosen thread is runnable, has budget, and no runnable
        /// thread with budget has a higher priority; no thread ever runs past its budget in
        /// one period.
        #[test]
        fn the_choice_is_always_a_highest_priority_thread_with_budget(
            params in proptest::collection::vec((0u8..4, 1u64..50, 0u64..50), 8),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut s = Sched::new();
            let mut runnable = [false; 8];
            let mut priority = [0u8; 8];
            for (i, &(p, budget, extra)) in params.iter().enumerate() {
                priority[i] = p * 60;
                s.add_thread(t(i), priority[i]);
                s.configure(c(i), budget, budget + extra).unwrap();
                s.bind(t(i), c(i)).unwrap();
            }
            let mut spent = [0u64; 8];
            let mut period_start = [0u64; 8];
            for op in ops {
                match op {
                    Op::Wake(i) => { s.wake(t(i)).unwrap(); runnable[i] = true; }
                    Op::Block(i) => { s.block(t(i)).unwrap(); runnable[i] = false; }
                    Op::Yield(i) => s.yield_now(t(i)).unwrap(),
                    Op::SetPriority(i, p) => { s.set_priority(t(i), p).unwrap(); priority[i] = p; }
                    Op::Run(dt) => {
                        let running = s.choose();
                        if let Some(th) = running {
                            let i = th.index();
                            let sc = s.sched_context(c(i)).unwrap();
                            // Track spending per period independently of the scheduler.
                            let start = sc.refill_at - sc.period;
                            if start != period_start[i] { period_start[i] = start; spent[i] = 0; }
                            spent[i] += dt.min(sc.remaining);
                            prop_assert!(spent[i] <= sc.budget, "thread {} overran its budget", i);
                        }
                        s.tick(running, dt);
                    }
                }
                let with_budget: Vec<usize> = (0..8).filter(|&i| runnable[i] && s.sched_context(c(i)).unwrap().remaining > 0).collect();
                match s.choose() {
                    None => prop_assert!(with_budget.is_empty(), "idle while {:?} could run", with_budget),
                    Some(th) => {
                        let i = th.index();
                        prop_assert!(with_budget.contains(&i), "chose {} which cannot run", i);
                        let best = with_budget.iter().map(|&u| priority[u]).max().unwrap();
                        prop_assert_eq!(priority[i], best);
                    }
                }
                // The cached next refill agrees with a scan of every context.
                let running = s.choose();
                let mut scan = (0..8)
                    .filter_map(|i| s.sched_context(c(i)))
                    .filter(|sc| sc.remaining < sc.budget)
                    .map(|sc| sc.refill_at - s.now())
                    .min();
                if let Some(sc) = running.and_then(|th| s.sched_context(c(th.index()))) {
                    scan = Some(scan.map_or(sc.remaining, |n| n.min(sc.remaining)));
                }
                prop_assert_eq!(s.next_event(running), scan);
            }
        }
    }
}
