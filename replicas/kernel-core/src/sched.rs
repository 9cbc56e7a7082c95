//! The per-core scheduler: fixed priorities 0–255 (higher runs first), round robin within a
//! priority, and scheduling contexts that give each thread a budget per period (Microkit's
//! `budget` and `period`).
//!
//! A thread runs only on a scheduling context: its own, or, for a passive server, the one
//! its caller lends it for the call (the IPC code moves the context; see
//! [`Scheduler::lend`] and [`Scheduler::give_back`]). A context that has spent its budget
//! leaves the ready queues until its next period begins.
//!
//! Time is counted in whatever unit the caller uses (the kernel uses timer ticks or counter
//! cycles). Everything is fixed-size and O(1) per operation except [`Scheduler::tick`],
//! which scans the depleted contexts.

/// Priorities, 0 (lowest) to 255 (highest).
pub const PRIORITIES: usize = 256;

/// A thread, by index.
pub type ThreadId = usize;
/// A scheduling context, by index.
pub type ScId = usize;

const NONE: u16 = u16::MAX;

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug)]
struct Thread {
    priority: u8,
    /// Scheduling context it runs on now (own or lent), if any.
    sc: u16,
    /// Its own scheduling context, if it is not passive.
    own_sc: u16,
    ready: bool,
    /// Wants to run (not blocked); it may still be off the queues for lack of budget.
    runnable: bool,
    next: u16,
    prev: u16,
    exists: bool,
}

impl Thread {
    const EMPTY: Thread = Thread {
        priority: 0,
        sc: NONE,
        own_sc: NONE,
        ready: false,
        runnable: false,
        next: NONE,
        prev: NONE,
        exists: false,
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
    /// The context already runs another thread.
    InUse,
}

/// One core's scheduler for up to `T` threads and `S` scheduling contexts (`T`, `S` < 65535).
pub struct Scheduler<const T: usize, const S: usize> {
    threads: [Thread; T],
    scs: [Option<SchedContext>; S],
    /// Which thread each context serves now.
    sc_thread: [u16; S],
    heads: [u16; PRIORITIES],
    tails: [u16; PRIORITIES],
    bitmap: [u64; PRIORITIES / 64],
    now: u64,
    /// Earliest refill among contexts that have spent part of their budget (`u64::MAX`:
    /// none), kept by every change so that [`Scheduler::next_event`] is O(1).
    next_refill: u64,
}

impl<const T: usize, const S: usize> Default for Scheduler<T, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const T: usize, const S: usize> Scheduler<T, S> {
    /// An empty scheduler at time 0.
    pub const fn new() -> Self {
        Self {
            threads: [Thread::EMPTY; T],
            scs: [None; S],
            sc_thread: [NONE; S],
            heads: [NONE; PRIORITIES],
            tails: [NONE; PRIORITIES],
            bitmap: [0; PRIORITIES / 64],
            now: 0,
            next_refill: u64::MAX,
        }
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Creates a blocked thread at `priority`.
    pub fn add_thread(&mut self, thread: ThreadId, priority: u8) -> Result<(), SchedError> {
        let t = self.threads.get_mut(thread).ok_or(SchedError::NoSuch)?;
        *t = Thread {
            priority,
            exists: true,
            ..Thread::EMPTY
        };
        Ok(())
    }

    /// Configures scheduling context `sc` with `budget` per `period`, full.
    pub fn configure(&mut self, sc: ScId, budget: u64, period: u64) -> Result<(), SchedError> {
        if budget == 0 || budget > period {
            return Err(SchedError::BadParameters);
        }
        let slot = self.scs.get_mut(sc).ok_or(SchedError::NoSuch)?;
        *slot = Some(SchedContext {
            budget,
            period,
            remaining: budget,
            refill_at: self.now + period,
        });
        self.update_next_refill();
        Ok(())
    }

    /// A context's state.
    pub fn sched_context(&self, sc: ScId) -> Option<SchedContext> {
        *self.scs.get(sc)?
    }

    /// Binds `sc` to `thread` as its own (a passive thread has none).
    pub fn bind(&mut self, thread: ThreadId, sc: ScId) -> Result<(), SchedError> {
        if !self.threads.get(thread).is_some_and(|t| t.exists)
            || self.scs.get(sc).is_none_or(Option::is_none)
        {
            return Err(SchedError::NoSuch);
        }
        if self.sc_thread[sc] != NONE {
            return Err(SchedError::InUse);
        }
        let t = &mut self.threads[thread];
        t.own_sc = sc as u16;
        if t.sc == NONE {
            t.sc = sc as u16;
            self.sc_thread[sc] = thread as u16;
        }
        self.requeue(thread);
        Ok(())
    }

    fn exists(&self, thread: ThreadId) -> Result<(), SchedError> {
        if self.threads.get(thread).is_some_and(|t| t.exists) {
            Ok(())
        } else {
            Err(SchedError::NoSuch)
        }
    }

    /// Whether `thread` is in the ready queues.
    pub fn is_ready(&self, thread: ThreadId) -> bool {
        self.threads.get(thread).is_some_and(|t| t.ready)
    }

    fn has_budget(&self, thread: ThreadId) -> bool {
        let sc = self.threads[thread].sc;
        sc != NONE && self.scs[sc as usize].is_some_and(|c| c.remaining > 0)
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

    fn enqueue(&mut self, thread: ThreadId) {
        let p = self.threads[thread].priority as usize;
        let tail = self.tails[p];
        self.threads[thread].prev = tail;
        self.threads[thread].next = NONE;
        if tail == NONE {
            self.heads[p] = thread as u16;
        } else {
            self.threads[tail as usize].next = thread as u16;
        }
        self.tails[p] = thread as u16;
        self.bitmap[p / 64] |= 1 << (p % 64);
        self.threads[thread].ready = true;
    }

    fn dequeue(&mut self, thread: ThreadId) {
        let Thread {
            priority,
            next,
            prev,
            ..
        } = self.threads[thread];
        let p = priority as usize;
        if prev == NONE {
            self.heads[p] = next;
        } else {
            self.threads[prev as usize].next = next;
        }
        if next == NONE {
            self.tails[p] = prev;
        } else {
            self.threads[next as usize].prev = prev;
        }
        if self.heads[p] == NONE {
            self.bitmap[p / 64] &= !(1 << (p % 64));
        }
        let t = &mut self.threads[thread];
        t.ready = false;
        t.next = NONE;
        t.prev = NONE;
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

    /// Whether some thread wants to run but is off the queues until its budget is refilled
    /// (or until it gets a scheduling context).
    pub fn any_waiting_for_budget(&self) -> bool {
        self.threads
            .iter()
            .any(|t| t.exists && t.runnable && !t.ready)
    }

    /// The thread to run: the first ready thread of the highest ready priority.
    pub fn choose(&self) -> Option<ThreadId> {
        for word in (0..PRIORITIES / 64).rev() {
            let bits = self.bitmap[word];
            if bits != 0 {
                let p = word * 64 + 63 - bits.leading_zeros() as usize;
                return Some(self.heads[p] as usize);
            }
        }
        None
    }

    /// Lends `caller`'s scheduling context to `server` for a call: the server runs on it,
    /// the caller waits for the reply without one.
    pub fn lend(&mut self, caller: ThreadId, server: ThreadId) -> Result<(), SchedError> {
        self.exists(caller)?;
        self.exists(server)?;
        let sc = self.threads[caller].sc;
        if sc == NONE || self.threads[server].sc != NONE {
            return Err(SchedError::InUse);
        }
        self.threads[caller].sc = NONE;
        self.threads[server].sc = sc;
        self.sc_thread[sc as usize] = server as u16;
        self.requeue(caller);
        self.requeue(server);
        Ok(())
    }

    /// The server replies: the context goes back to `caller`.
    pub fn give_back(&mut self, server: ThreadId, caller: ThreadId) -> Result<(), SchedError> {
        self.exists(caller)?;
        self.exists(server)?;
        let sc = self.threads[server].sc;
        if sc == NONE || self.threads[server].own_sc == sc || self.threads[caller].sc != NONE {
            return Err(SchedError::InUse);
        }
        self.threads[server].sc = NONE;
        self.threads[caller].sc = sc;
        self.sc_thread[sc as usize] = caller as u16;
        self.requeue(server);
        self.requeue(caller);
        Ok(())
    }

    /// Removes a thread (its TCB is destroyed): it leaves the queues, and the scheduling
    /// context it runs on (own or lent) serves nobody.
    pub fn remove_thread(&mut self, thread: ThreadId) {
        if self.exists(thread).is_err() {
            return;
        }
        self.threads[thread].runnable = false;
        self.requeue(thread);
        let sc = self.threads[thread].sc;
        if sc != NONE && self.sc_thread[sc as usize] == thread as u16 {
            self.sc_thread[sc as usize] = NONE;
        }
        self.threads[thread] = Thread::EMPTY;
    }

    /// Takes `thread`'s own scheduling context away, making it passive. Returns the context,
    /// if it had one.
    pub fn unbind(&mut self, thread: ThreadId) -> Option<ScId> {
        self.exists(thread).ok()?;
        let own = self.threads[thread].own_sc;
        if own == NONE {
            return None;
        }
        self.threads[thread].own_sc = NONE;
        if self.threads[thread].sc == own {
            self.threads[thread].sc = NONE;
            self.sc_thread[own as usize] = NONE;
        }
        self.requeue(thread);
        Some(own as usize)
    }

    /// Destroys a scheduling context: the thread it serves (if any) loses it.
    pub fn remove_sc(&mut self, sc: ScId) {
        let Some(slot) = self.scs.get_mut(sc) else {
            return;
        };
        *slot = None;
        self.update_next_refill();
        let thread = core::mem::replace(&mut self.sc_thread[sc], NONE);
        if thread != NONE {
            let t = &mut self.threads[thread as usize];
            if t.own_sc == sc as u16 {
                t.own_sc = NONE;
            }
            if t.sc == sc as u16 {
                t.sc = NONE;
            }
            self.requeue(thread as usize);
        }
    }

    /// The thread's own scheduling context; `None` when it is passive.
    pub fn own_sc(&self, thread: ThreadId) -> Option<ScId> {
        self.threads
            .get(thread)
            .filter(|t| t.exists && t.own_sc != NONE)
            .map(|t| usize::from(t.own_sc))
    }

    /// Whether the thread has a scheduling context of its own.
    pub fn has_own_sc(&self, thread: ThreadId) -> bool {
        self.own_sc(thread).is_some()
    }

    /// Whether the thread runs on a context lent to it.
    pub fn runs_on_loan(&self, thread: ThreadId) -> bool {
        self.threads
            .get(thread)
            .is_some_and(|t| t.exists && t.sc != NONE && t.sc != t.own_sc)
    }

    /// Whether the thread has a scheduling context at all (own or lent).
    pub fn has_sc(&self, thread: ThreadId) -> bool {
        self.threads
            .get(thread)
            .is_some_and(|t| t.exists && t.sc != NONE)
    }

    /// Time until the next scheduling event: `running`'s budget runs out or some context's
    /// period ends. `None` when nothing is scheduled to happen.
    pub fn next_event(&self, running: Option<ThreadId>) -> Option<u64> {
        let mut next = None::<u64>;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = running.filter(|&t| t < T) {
            let sc = self.threads[t].sc;
            if let Some(Some(c)) = self.scs.get(sc as usize) {
                consider(c.remaining);
            }
        }
        if self.next_refill != u64::MAX {
            consider(self.next_refill.saturating_sub(self.now));
        }
        next
    }

    /// Recomputes [`Scheduler::next_refill`].
    fn update_next_refill(&mut self) {
        self.next_refill = self
            .scs
            .iter()
            .flatten()
            .filter(|c| c.remaining < c.budget)
            .map(|c| c.refill_at)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Time passes by `elapsed` while `running` runs: its context pays, and every context
    /// whose period has ended is refilled. Returns whether `running` must stop (no budget).
    pub fn tick(&mut self, running: Option<ThreadId>, elapsed: u64) -> bool {
        self.now = self.now.saturating_add(elapsed);
        let mut out_of_budget = false;
        if let Some(thread) = running.filter(|&t| t < T && self.threads[t].exists) {
            let sc = self.threads[thread].sc;
            if let Some(Some(c)) = self.scs.get_mut(sc as usize) {
                c.remaining = c.remaining.saturating_sub(elapsed);
                out_of_budget = c.remaining == 0;
            }
            if out_of_budget {
                self.requeue(thread);
            }
        }
        for sc in 0..S {
            let Some(c) = self.scs[sc].as_mut() else {
                continue;
            };
            if self.now >= c.refill_at {
                let periods = (self.now - c.refill_at) / c.period + 1;
                c.refill_at = c.refill_at.saturating_add(periods.saturating_mul(c.period));
                c.remaining = c.budget;
                let thread = self.sc_thread[sc];
                if thread != NONE {
                    self.requeue(thread as usize);
                }
            }
        }
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

    type Sched = Scheduler<16, 16>;

    fn thread(s: &mut Sched, t: usize, priority: u8, budget: u64, period: u64) {
        s.add_thread(t, priority).unwrap();
        s.configure(t, budget, period).unwrap();
        s.bind(t, t).unwrap();
        s.wake(t).unwrap();
    }

    #[test]
    fn highest_priority_first_then_round_robin() {
        let mut s = Sched::new();
        thread(&mut s, 0, 10, 100, 100);
        thread(&mut s, 1, 200, 100, 100);
        thread(&mut s, 2, 200, 100, 100);
        assert_eq!(s.choose(), Some(1));
        s.yield_now(1).unwrap();
        assert_eq!(s.choose(), Some(2));
        s.block(2).unwrap();
        s.block(1).unwrap();
        assert_eq!(s.choose(), Some(0));
        s.set_priority(0, 255).unwrap();
        s.wake(1).unwrap();
        assert_eq!(s.choose(), Some(0));
    }

    #[test]
    fn a_spent_budget_waits_for_its_next_period() {
        let mut s = Sched::new();
        thread(&mut s, 0, 250, 30, 100); // a high-priority spinner with a budget
        thread(&mut s, 1, 10, 100, 100);
        assert_eq!(s.choose(), Some(0));
        assert!(!s.tick(Some(0), 20));
        assert!(!s.any_waiting_for_budget());
        assert!(s.tick(Some(0), 10), "budget spent");
        assert!(s.any_waiting_for_budget());
        assert_eq!(
            s.choose(),
            Some(1),
            "the low-priority thread runs meanwhile"
        );
        s.tick(Some(1), 69);
        assert_eq!(s.choose(), Some(1));
        s.tick(Some(1), 1); // t = 100: a new period
        assert!(!s.any_waiting_for_budget());
        assert_eq!(s.choose(), Some(0));
        assert_eq!(s.sched_context(0).map(|c| c.remaining), Some(30));
    }

    #[test]
    fn passive_servers_run_only_on_a_lent_context() {
        let mut s = Sched::new();
        thread(&mut s, 0, 100, 100, 100); // client
        s.add_thread(1, 150).unwrap(); // passive server: no context of its own
        s.wake(1).unwrap();
        assert_eq!(
            s.choose(),
            Some(0),
            "a passive thread is never chosen on its own"
        );
        s.lend(0, 1).unwrap(); // the call
        assert_eq!(s.choose(), Some(1));
        assert!(!s.is_ready(0));
        s.tick(Some(1), 40);
        assert_eq!(
            s.sched_context(0).map(|c| c.remaining),
            Some(60),
            "the server spends the client's budget"
        );
        s.give_back(1, 0).unwrap(); // the reply
        assert_eq!(s.choose(), Some(0));
        assert!(!s.is_ready(1));
        assert_eq!(s.give_back(1, 0), Err(SchedError::InUse));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut s = Sched::new();
        assert_eq!(s.configure(0, 0, 10), Err(SchedError::BadParameters));
        assert_eq!(s.configure(0, 11, 10), Err(SchedError::BadParameters));
        assert_eq!(s.configure(99, 1, 10), Err(SchedError::NoSuch));
        assert_eq!(s.wake(99), Err(SchedError::NoSuch));
        assert_eq!(
            s.wake(3),
            Err(SchedError::NoSuch),
            "a thread that was never added"
        );
        thread(&mut s, 0, 1, 1, 1);
        s.add_thread(1, 1).unwrap();
        assert_eq!(
            s.bind(1, 0),
            Err(SchedError::InUse),
            "a context serves one thread"
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
            for (t, &(p, budget, extra)) in params.iter().enumerate() {
                priority[t] = p * 60;
                s.add_thread(t, priority[t]).unwrap();
                s.configure(t, budget, budget + extra).unwrap();
                s.bind(t, t).unwrap();
            }
            let mut spent = [0u64; 8];
            let mut period_start = [0u64; 8];
            for op in ops {
                match op {
                    Op::Wake(t) => { s.wake(t).unwrap(); runnable[t] = true; }
                    Op::Block(t) => { s.block(t).unwrap(); runnable[t] = false; }
                    Op::Yield(t) => s.yield_now(t).unwrap(),
                    Op::SetPriority(t, p) => { s.set_priority(t, p).unwrap(); priority[t] = p; }
                    Op::Run(dt) => {
                        let running = s.choose();
                        if let Some(t) = running {
                            let c = s.sched_context(t).unwrap();
                            // Track spending per period independently of the scheduler.
                            let start = c.refill_at - c.period;
                            if start != period_start[t] { period_start[t] = start; spent[t] = 0; }
                            spent[t] += dt.min(c.remaining);
                            prop_assert!(spent[t] <= c.budget, "thread {} overran its budget", t);
                        }
                        s.tick(running, dt);
                    }
                }
                let with_budget: Vec<usize> = (0..8).filter(|&t| runnable[t] && s.sched_context(t).unwrap().remaining > 0).collect();
                match s.choose() {
                    None => prop_assert!(with_budget.is_empty(), "idle while {:?} could run", with_budget),
                    Some(t) => {
                        prop_assert!(with_budget.contains(&t), "chose {} which cannot run", t);
                        let best = with_budget.iter().map(|&u| priority[u]).max().unwrap();
                        prop_assert_eq!(priority[t], best);
                    }
                }
                // The cached next refill agrees with a scan of every context.
                let running = s.choose();
                let mut scan = (0..8)
                    .filter_map(|c| s.sched_context(c))
                    .filter(|c| c.remaining < c.budget)
                    .map(|c| c.refill_at - s.now())
                    .min();
                if let Some(c) = running.and_then(|t| s.sched_context(t)) {
                    scan = Some(scan.map_or(c.remaining, |n| n.min(c.remaining)));
                }
                prop_assert_eq!(s.next_event(running), scan);
            }
        }
    }
}
