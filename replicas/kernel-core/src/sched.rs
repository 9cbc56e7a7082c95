//! The replica's scheduler: for every core of the replica, fixed priorities 0–255 (higher
//! runs first) with round robin within a priority; and scheduling contexts that give each
//! thread a budget per period (Microkit's `budget` and `period`), accounted exactly as
//! seL4's MCS kernel does.
//!
//! **Cores.** A thread runs on the core of the scheduling context it runs on: each context
//! has a core ([`Scheduler::configure`], [`Scheduler::set_core`]), and each core has its
//! own ready queues, its own release queue and its own running context. So a passive server
//! called from a thread on core 1 runs on core 1 on the context it was lent, and one called
//! from core 2 runs on core 2. The kernel asks [`Scheduler::choose`] for one core at a time;
//! [`Scheduler::take_touched`] tells it which other cores' queues changed, so that it can
//! ask those cores to choose again.
//!
//! **Time.** The kernel reports the counter at every kernel entry ([`Scheduler::update`]):
//! the time since the core's last report is added to what its running context has consumed,
//! and when that reaches what the context may use, the context is charged and its thread
//! stops. Consumption is *committed* to a context's refills when the core switches to
//! another context ([`Scheduler::switch_to`]) or when it runs out, as seL4's `commitTime`.
//! [`Scheduler::next_event`] says when the core must next enter the kernel: when its running
//! context runs out, when a thread in its release queue gets its budget back, or when the
//! domain slot ends; there is no periodic tick.
//!
//! **Budgets.** A context whose budget equals its period is a *round-robin* context: it is
//! never throttled, and its budget is a time slice after which its thread goes to the back
//! of its priority. Any other context is a *sporadic server* (seL4 MCS): its budget is held
//! as up to [`MAX_REFILLS`] refills, each an amount usable from a time; the head refill is
//! what the context may use now. Time used from a refill, starting at `t`, comes back as a
//! new refill at `t + period`, so every piece of budget consumed is replenished one period
//! after it was consumed, piece by piece. Within a refill, budget is used in order and at
//! most at the rate time passes, so a unit of budget used at `t` is not usable again before
//! `t + period`: in any window of one period a context never runs for more than its budget.
//! Merging two refills (when they follow on, or when there are too many) only ever makes
//! budget usable later, never earlier.
//!
//! With a domain schedule running ([`crate::domains`]), only threads of the current domain
//! are chosen: [`Scheduler::choose`] then walks the ready queues from the highest priority
//! for the first such thread (O(ready threads)). Without one, which is every system that
//! does not ask for domains, the cost is one test in `choose`, and nothing anywhere else.
//!
//! Everything is fixed-size; every operation is O(1) except placing a thread in a release
//! queue (O(threads waiting there)) and the domain walk.

use crate::domains::{DomainError, Schedule};
use crate::id::{
    CoreId, MAX_CORES, MAX_SCHED_CONTEXTS, MAX_THREADS, PRIORITIES, SchedContextId, Table, ThreadId,
};

/// Most refills a sporadic context keeps (seL4's default `extra_refills` + 2 is similar).
pub const MAX_REFILLS: usize = 8;

/// Most refills one charge walks through; usage beyond them (a core that entered the kernel
/// very late) is not charged again, as every refill has then been moved a period on.
const CHARGE_STEPS: usize = 2 * MAX_REFILLS;

/// Which queue a thread is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    /// None: blocked, or without a scheduling context.
    None,
    /// The ready queue of its priority on a core.
    Ready(CoreId),
    /// A core's release queue: it wants to run but its context has no budget until its
    /// head refill's time.
    Release(CoreId),
}

/// What an IPC hand-over ([`Scheduler::hand_over`]) does with the context the blocking
/// thread runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOver {
    /// Nothing: both threads keep theirs.
    Keep,
    /// A call: lent to the woken thread, if that has none.
    Lend,
    /// A reply: given back to the woken thread, if it was lent (not the blocking
    /// thread's own) and the woken thread has none.
    GiveBack,
}

/// A direct switch as [`Scheduler::swap_case`] finds it possible.
#[derive(Clone, Copy)]
struct Swap {
    /// The core both threads are on.
    core: CoreId,
    /// The context the blocking thread runs on.
    lends: SchedContextId,
    /// Whether the context moves to the woken thread.
    moves: bool,
    from_priority: u8,
    to_priority: u8,
}

/// The highest priority a ready-queue bitmap marks.
#[inline(always)]
fn highest(bitmap: &[u64; PRIORITIES / 64]) -> Option<u8> {
    let [b0, b1, b2, b3] = *bitmap;
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
    Some(base | (bits.leading_zeros() ^ 63) as u8)
}

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug)]
struct Thread {
    priority: u8,
    /// Scheduling context it runs on now (own, lent or donated), if any.
    sc: Option<SchedContextId>,
    /// Its own scheduling context, if it is not passive.
    own_sc: Option<SchedContextId>,
    /// Wants to run (not blocked); it may still be off the ready queues for lack of budget.
    runnable: bool,
    queue: Queue,
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
        runnable: false,
        queue: Queue::None,
        next: None,
        prev: None,
        exists: false,
        domain: 0,
    };
}

/// An amount of budget usable from a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refill {
    /// From when it may be used.
    pub at: u64,
    /// How much.
    pub amount: u64,
}

const NO_REFILL: Refill = Refill { at: 0, amount: 0 };

/// A scheduling context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedContext {
    /// Time it may run per period.
    pub budget: u64,
    /// Length of a period.
    pub period: u64,
    /// The core its threads run on.
    pub core: CoreId,
    /// Round robin only: time used of the current slice.
    used: u64,
    /// Sporadic only: the refills, a ring of `len` entries from `first`; their amounts add
    /// up to the budget.
    refills: [Refill; MAX_REFILLS],
    first: usize,
    len: usize,
}

/// Position `i` of a refill ring.
const fn ring(i: usize) -> usize {
    i & (MAX_REFILLS - 1)
}

const _: () = assert!(MAX_REFILLS.is_power_of_two() && MAX_REFILLS >= 2);

impl SchedContext {
    fn new(budget: u64, period: u64, core: CoreId, now: u64) -> Self {
        let mut refills = [NO_REFILL; MAX_REFILLS];
        refills[0] = Refill {
            at: now,
            amount: budget,
        };
        Self {
            budget,
            period,
            core,
            used: 0,
            refills,
            first: 0,
            len: 1,
        }
    }

    /// Whether it is a round-robin context (budget equal to its period: never throttled).
    #[inline]
    pub fn round_robin(&self) -> bool {
        self.budget >= self.period
    }

    /// Refill `i` from the head.
    #[inline]
    fn refill(&self, i: usize) -> Refill {
        if i >= self.len {
            return NO_REFILL;
        }
        self.refills
            .get(ring(self.first.wrapping_add(i)))
            .copied()
            .unwrap_or(NO_REFILL)
    }

    /// The refills, head first (a round-robin context has one, its whole budget).
    pub fn refills(&self) -> impl Iterator<Item = Refill> + '_ {
        (0..self.len).map(|i| self.refill(i))
    }

    /// Budget it may use from `now` on, before consumption not yet committed.
    #[inline]
    pub fn available(&self, now: u64) -> u64 {
        if self.round_robin() {
            return self.budget.saturating_sub(self.used);
        }
        let head = self.refill(0);
        if head.at <= now { head.amount } else { 0 }
    }

    /// When it next has budget (0 for a round-robin context, which always has).
    pub fn ready_at(&self) -> u64 {
        if self.round_robin() {
            0
        } else {
            self.refill(0).at
        }
    }

    fn pop_head(&mut self) -> Refill {
        let head = self.refill(0);
        if self.len > 0 {
            self.first = ring(self.first.wrapping_add(1));
            self.len = self.len.saturating_sub(1);
        }
        head
    }

    fn push_head(&mut self, r: Refill) {
        if self.len >= MAX_REFILLS {
            return;
        }
        self.first = ring(self.first.wrapping_add(MAX_REFILLS - 1));
        if let Some(slot) = self.refills.get_mut(self.first) {
            *slot = r;
        }
        self.len = self.len.saturating_add(1);
    }

    /// Schedules used budget to come back (seL4's `schedule_used`): appended to the last
    /// refill when it follows on from it or when the ring is full (the last refill is then
    /// moved later as far as needed for the appended budget not to come back early),
    /// otherwise a refill of its own.
    fn schedule_used(&mut self, r: Refill) {
        let tail = ring(self.first.wrapping_add(self.len.wrapping_sub(1)));
        if self.len > 0
            && let Some(last) = self.refills.get_mut(tail)
            && (last.at.saturating_add(last.amount) >= r.at || self.len >= MAX_REFILLS)
        {
            last.at = last.at.max(r.at.saturating_sub(last.amount));
            last.amount = last.amount.saturating_add(r.amount);
            return;
        }
        let slot = ring(self.first.wrapping_add(self.len));
        if let Some(slot) = self.refills.get_mut(slot) {
            *slot = r;
            self.len = self.len.saturating_add(1);
        }
    }

    /// Charges `usage` that ended at `now` (seL4's `refill_budget_check`): each piece taken
    /// from a refill comes back one period after the piece began.
    fn charge(&mut self, usage: u64, now: u64, min_budget: u64) {
        if self.round_robin() {
            self.used = self.used.saturating_add(usage);
            return;
        }
        let mut left = usage;
        let mut cursor = now.saturating_sub(usage);
        for _ in 0..CHARGE_STEPS {
            if left == 0 || self.len == 0 {
                break;
            }
            let head = self.pop_head();
            let start = head.at.max(cursor);
            let take = head.amount.min(left);
            left = left.saturating_sub(take);
            cursor = start.saturating_add(take);
            if take < head.amount {
                self.push_head(Refill {
                    at: cursor,
                    amount: head.amount.saturating_sub(take),
                });
            }
            self.schedule_used(Refill {
                at: start.saturating_add(self.period),
                amount: take,
            });
        }
        self.tidy(min_budget);
    }

    /// Merges refills at the head: the next one into the head when it follows on from it
    /// (seL4's `refill_unblock_check` merge), and a head too small to be worth running on
    /// into the next (seL4's minimum budget).
    fn tidy(&mut self, min_budget: u64) {
        while self.len >= 2 {
            let head = self.refill(0);
            let next = self.refill(1);
            let merged = if next.at <= head.at.saturating_add(head.amount) {
                Refill {
                    at: head.at,
                    amount: head.amount.saturating_add(next.amount),
                }
            } else if head.amount < min_budget {
                Refill {
                    at: next.at,
                    amount: head.amount.saturating_add(next.amount),
                }
            } else {
                break;
            };
            self.pop_head();
            self.pop_head();
            self.push_head(merged);
        }
    }
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

/// One core's queues and clock.
#[derive(Clone, Copy)]
struct Core {
    heads: Table<u8, Option<ThreadId>, PRIORITIES>,
    tails: Table<u8, Option<ThreadId>, PRIORITIES>,
    /// Bit `p % 64` of word `p / 64` is set when priority `p` has a ready thread.
    bitmap: [u64; PRIORITIES / 64],
    /// Threads waiting for their context's head refill, earliest first.
    release: Option<ThreadId>,
    /// The context whose time this core counts now.
    running_sc: Option<SchedContextId>,
    /// Time it has consumed and not yet been charged.
    consumed: u64,
    /// When the core last reported the time.
    since: u64,
    /// Its next event as [`Scheduler::keep_next_event`] last worked it out, when the mark
    /// of [`Scheduler::take_timer_change`] was taken (0, before: nothing is known to be
    /// quiet).
    due: u64,
}

impl Core {
    const EMPTY: Core = Core {
        heads: Table::filled(None),
        tails: Table::filled(None),
        bitmap: [0; PRIORITIES / 64],
        release: None,
        running_sc: None,
        consumed: 0,
        since: 0,
        due: 0,
    };
}

/// The replica's scheduler.
pub struct Scheduler {
    threads: Table<ThreadId, Thread, MAX_THREADS>,
    scs: Table<SchedContextId, Option<SchedContext>, MAX_SCHED_CONTEXTS>,
    /// Which thread each context serves now.
    sc_thread: Table<SchedContextId, Option<ThreadId>, MAX_SCHED_CONTEXTS>,
    cores: Table<CoreId, Core, MAX_CORES>,
    /// The latest time any core reported.
    now: u64,
    /// The smallest head refill worth running on (timer units).
    min_budget: u64,
    /// Bit `c` is set when core `c`'s ready queues changed since [`Scheduler::take_touched`].
    touched: u32,
    /// Bit `c` is set when core `c`'s next event has not moved since it last took the
    /// mark ([`Scheduler::take_timer_change`]); clear, it may have. (Kept this way round so
    /// that a new scheduler is all zeros, and the kernel's state needs no image space.)
    timer_clean: u32,
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
            cores: Table::filled(Core::EMPTY),
            now: 0,
            min_budget: 0,
            touched: 0,
            timer_clean: 0,
            domains: Schedule::new(),
            domains_running: false,
        }
    }

    /// The latest time reported.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Sets the smallest head refill worth running on: smaller ones are merged into the
    /// next (the kernel uses a few microseconds, the cost of entering it).
    pub fn set_min_budget(&mut self, min_budget: u64) {
        self.min_budget = min_budget;
    }

    /// Starts counting time on `core` from `now` (its first thread is about to run).
    pub fn start_core(&mut self, core: CoreId, now: u64) {
        self.now = self.now.max(now);
        let c = &mut self.cores[core];
        c.since = now;
        c.consumed = 0;
    }

    /// Creates a blocked thread at `priority`.
    pub fn add_thread(&mut self, thread: ThreadId, priority: u8) {
        self.threads[thread] = Thread {
            priority,
            exists: true,
            ..Thread::EMPTY
        };
    }

    /// Configures scheduling context `sc` with `budget` per `period` on `core`, full from
    /// now. Whatever it had consumed is forgotten; its thread moves to `core`.
    pub fn configure(
        &mut self,
        sc: SchedContextId,
        budget: u64,
        period: u64,
        core: CoreId,
    ) -> Result<(), SchedError> {
        if budget == 0 || budget > period {
            return Err(SchedError::BadParameters);
        }
        self.stop_counting(sc);
        self.timers_moved();
        self.scs[sc] = Some(SchedContext::new(budget, period, core, self.now));
        if let Some(thread) = self.sc_thread[sc] {
            self.requeue(thread);
        }
        Ok(())
    }

    /// Moves context `sc` (and the thread it serves) to `core`, keeping its budget.
    pub fn set_core(&mut self, sc: SchedContextId, core: CoreId) -> Result<(), SchedError> {
        if self.scs[sc].is_none() {
            return Err(SchedError::NoSuch);
        }
        self.commit_if_running(sc);
        self.stop_counting(sc);
        // A thread's queue is its context's core: leave the old one first.
        let thread = self.sc_thread[sc];
        if let Some(t) = thread {
            self.unqueue(t);
        }
        if let Some(c) = self.scs[sc].as_mut() {
            c.core = core;
        }
        if let Some(t) = thread {
            self.requeue(t);
        }
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
        self.unqueue(thread);
        let t = &mut self.threads[thread];
        t.own_sc = Some(sc);
        if t.sc.is_none() {
            t.sc = Some(sc);
            self.sc_thread[sc] = Some(thread);
        }
        self.requeue(thread);
        Ok(())
    }

    /// Whether `thread` is in a ready queue.
    pub fn is_ready(&self, thread: ThreadId) -> bool {
        matches!(self.threads[thread].queue, Queue::Ready(_))
    }

    /// The core `thread` runs on: its context's (`None` without one).
    pub fn core_of(&self, thread: ThreadId) -> Option<CoreId> {
        let sc = self.threads[thread].sc?;
        Some(self.scs[sc].as_ref()?.core)
    }

    /// The queue the thread belongs in now.
    fn wanted_queue(&self, thread: ThreadId) -> Queue {
        let t = &self.threads[thread];
        if !t.exists || !t.runnable {
            return Queue::None;
        }
        let Some(c) = t.sc.and_then(|sc| self.scs[sc].as_ref()) else {
            return Queue::None;
        };
        if c.available(self.now) > 0 {
            Queue::Ready(c.core)
        } else {
            Queue::Release(c.core)
        }
    }

    /// Puts the thread in the queue that matches its state.
    fn requeue(&mut self, thread: ThreadId) {
        let want = self.wanted_queue(thread);
        if want == self.threads[thread].queue {
            return;
        }
        self.unqueue(thread);
        match want {
            Queue::Ready(core) => self.enqueue(core, thread),
            Queue::Release(core) => self.enqueue_release(core, thread),
            Queue::None => {}
        }
    }

    /// Takes the thread out of whichever queue holds it.
    fn unqueue(&mut self, thread: ThreadId) {
        match self.threads[thread].queue {
            Queue::Ready(core) => self.dequeue(core, thread),
            Queue::Release(core) => self.dequeue_release(core, thread),
            Queue::None => {}
        }
    }

    #[inline]
    fn touch(&mut self, core: CoreId) {
        self.touched |= 1u32.wrapping_shl(core.index() as u32);
    }

    fn set_bit(&mut self, core: CoreId, priority: u8, on: bool) {
        if let Some(word) = self.cores[core].bitmap.get_mut(usize::from(priority / 64)) {
            let bit = 1u64 << (priority % 64);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    fn enqueue(&mut self, core: CoreId, thread: ThreadId) {
        let p = self.threads[thread].priority;
        let tail = self.cores[core].tails[p];
        let t = &mut self.threads[thread];
        t.prev = tail;
        t.next = None;
        t.queue = Queue::Ready(core);
        match tail {
            None => self.cores[core].heads[p] = Some(thread),
            Some(tail) => self.threads[tail].next = Some(thread),
        }
        self.cores[core].tails[p] = Some(thread);
        self.set_bit(core, p, true);
        self.touch(core);
    }

    fn dequeue(&mut self, core: CoreId, thread: ThreadId) {
        let Thread {
            priority: p,
            next,
            prev,
            ..
        } = self.threads[thread];
        match prev {
            None => self.cores[core].heads[p] = next,
            Some(prev) => self.threads[prev].next = next,
        }
        match next {
            None => self.cores[core].tails[p] = prev,
            Some(next) => self.threads[next].prev = prev,
        }
        if self.cores[core].heads[p].is_none() {
            self.set_bit(core, p, false);
        }
        let t = &mut self.threads[thread];
        t.queue = Queue::None;
        t.next = None;
        t.prev = None;
        self.touch(core);
    }

    /// When the thread's context next has budget.
    fn release_time(&self, thread: ThreadId) -> u64 {
        self.threads[thread]
            .sc
            .and_then(|sc| self.scs[sc].as_ref())
            .map_or(u64::MAX, SchedContext::ready_at)
    }

    /// Places the thread in `core`'s release queue, ordered by release time.
    #[cold]
    #[inline(never)]
    fn enqueue_release(&mut self, core: CoreId, thread: ThreadId) {
        let at = self.release_time(thread);
        let mut prev = None;
        let mut next = self.cores[core].release;
        // The queue holds at most every thread once.
        for _ in 0..MAX_THREADS {
            match next {
                Some(n) if self.release_time(n) <= at => {
                    prev = Some(n);
                    next = self.threads[n].next;
                }
                _ => break,
            }
        }
        self.timer_moved(core);
        let t = &mut self.threads[thread];
        t.prev = prev;
        t.next = next;
        t.queue = Queue::Release(core);
        match prev {
            None => self.cores[core].release = Some(thread),
            Some(p) => self.threads[p].next = Some(thread),
        }
        if let Some(n) = next {
            self.threads[n].prev = Some(thread);
        }
    }

    #[cold]
    #[inline(never)]
    fn dequeue_release(&mut self, core: CoreId, thread: ThreadId) {
        self.timer_moved(core);
        let Thread { next, prev, .. } = self.threads[thread];
        match prev {
            None => self.cores[core].release = next,
            Some(p) => self.threads[p].next = next,
        }
        if let Some(n) = next {
            self.threads[n].prev = prev;
        }
        let t = &mut self.threads[thread];
        t.queue = Queue::None;
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
        if let Queue::Ready(core) = self.threads[thread].queue {
            self.dequeue(core, thread);
            self.enqueue(core, thread);
        }
        Ok(())
    }

    /// Changes a thread's priority (it keeps its place among the ready, at the back).
    pub fn set_priority(&mut self, thread: ThreadId, priority: u8) -> Result<(), SchedError> {
        self.exists(thread)?;
        let queue = self.threads[thread].queue;
        if let Queue::Ready(core) = queue {
            self.dequeue(core, thread);
        }
        self.threads[thread].priority = priority;
        if let Queue::Ready(core) = queue {
            self.enqueue(core, thread);
        }
        Ok(())
    }

    /// The thread's priority.
    pub fn priority(&self, thread: ThreadId) -> u8 {
        self.threads[thread].priority
    }

    /// Puts the thread in domain `domain`.
    pub fn set_domain(&mut self, thread: ThreadId, domain: u8) -> Result<(), SchedError> {
        self.exists(thread)?;
        self.threads[thread].domain = domain;
        if let Queue::Ready(core) = self.threads[thread].queue {
            self.touch(core);
        }
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
        self.touched = u32::MAX;
        self.timers_moved();
        Ok(())
    }

    /// The domain whose threads run now.
    pub fn current_domain(&self) -> u8 {
        self.domains.current()
    }

    /// Whether some thread wants to run but waits for its budget to be refilled (or for a
    /// scheduling context).
    pub fn any_waiting_for_budget(&self) -> bool {
        self.threads
            .values()
            .any(|t| t.exists && t.runnable && !matches!(t.queue, Queue::Ready(_)))
    }

    /// The thread `core` should run: the first ready thread of the highest ready priority
    /// on it (of the current domain, when a domain schedule runs).
    #[inline]
    pub fn choose(&self, core: CoreId) -> Option<ThreadId> {
        if self.domains_running {
            return self.choose_in_domain(core);
        }
        let c = &self.cores[core];
        c.heads[highest(&c.bitmap)?]
    }

    /// The first ready thread of the current domain on `core`, highest priority first;
    /// `None` (the core idles) when that domain has none there.
    #[cold]
    fn choose_in_domain(&self, core: CoreId) -> Option<ThreadId> {
        let domain = self.domains.current();
        let c = &self.cores[core];
        // Only the priorities the bitmap marks as having ready threads, highest first.
        for (word, &bits) in c.bitmap.iter().enumerate().rev() {
            let mut left = bits;
            while left != 0 {
                let bit = left.leading_zeros() ^ 63; // the highest set bit, 0..=63
                left ^= 1u64.wrapping_shl(bit);
                // word < 4 and bit < 64: below 256.
                let p = (word as u32).wrapping_mul(64).wrapping_add(bit) as u8;
                let mut next = c.heads[p];
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

    /// The cores whose ready queues changed since the last call (bit `c` for core `c`).
    pub fn take_touched(&mut self) -> u32 {
        core::mem::take(&mut self.touched)
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

    /// Lends `caller`'s scheduling context to `server` for a call: the server runs on it
    /// (on its core), the caller waits for the reply without one.
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

    /// An IPC hand-over, as the fast path makes it: `from` blocks and `to` wakes, and the
    /// context `from` runs on moves to `to` as `sc` says. The end state is the one
    /// [`Scheduler::block`], [`Scheduler::lend`] or [`Scheduler::give_back`], and
    /// [`Scheduler::wake`] reach in any order, with each thread's queue worked out once.
    /// Returns whether a context moved.
    pub fn hand_over(&mut self, from: ThreadId, to: ThreadId, sc: HandOver) -> bool {
        match self.swap_alone(from, to, sc) {
            Some(moved) => moved,
            None => self.hand_over_in_steps(from, to, sc),
        }
    }

    /// Whether a hand-over from `f` to `t` moves `f`'s context to `t`: `t` has none, and
    /// `f`'s is lent on a call, or given back on a reply when it was lent (not `f`'s own).
    fn context_moves(f: &Thread, t: &Thread, sc: HandOver) -> bool {
        t.sc.is_none()
            && f.sc.is_some()
            && match sc {
                HandOver::Keep => false,
                HandOver::Lend => true,
                HandOver::GiveBack => f.sc != f.own_sc,
            }
    }

    /// [`Scheduler::hand_over`] in any case: each thread's queue worked out from its state.
    fn hand_over_in_steps(&mut self, from: ThreadId, to: ThreadId, sc: HandOver) -> bool {
        let (f, t) = (&self.threads[from], &self.threads[to]);
        let moved = f.exists && t.exists && Self::context_moves(f, t, sc);
        if f.exists {
            self.threads[from].runnable = false;
            self.unqueue(from);
        }
        if moved && let Some(sc) = self.threads[from].sc.take() {
            self.threads[to].sc = Some(sc);
            self.sc_thread[sc] = Some(to);
        }
        if self.threads[to].exists {
            self.threads[to].runnable = true;
            self.requeue(to);
        }
        moved
    }

    /// A hand-over in the case where it is a direct switch: `from` is ready on its
    /// context's core and alone at its priority there; `to` is in no queue, will run on
    /// that core (on the context that moves to it, or on its own) and has no other ready
    /// thread at its priority there; and that context has budget now. Then `to` takes
    /// `from`'s place in constant steps: two queue heads, two bitmap bits and the two
    /// threads. The end state is the hand-over in steps' (the scheduler tests compare
    /// them). Returns whether the context moved, or `None` (nothing changed) when the case
    /// does not apply.
    #[inline]
    fn swap_alone(&mut self, from: ThreadId, to: ThreadId, sc: HandOver) -> Option<bool> {
        let swap = self.swap_case(from, to, sc)?;
        self.swap(from, to, swap);
        self.touch(swap.core);
        Some(swap.moves)
    }

    /// The switch of a protected procedure call or of its reply on `core`, made before the
    /// kernel entry's accounting: `from` runs on `core`, and the context it runs on moves
    /// with the call ([`HandOver::Lend`]) or with the reply ([`HandOver::GiveBack`]) to
    /// `to`, which then runs on it. It applies in the direct switch's case, where
    /// [`Scheduler::hand_over`] needs no queue walk (`from` alone at its priority on
    /// `core`, `to` in no queue, the context with budget), when besides the context is
    /// the one `core` counts, no domain schedule runs, and no other thread on `core` is
    /// ready at `to`'s priority or above. Then `to` takes `from`'s place,
    /// [`Scheduler::choose`] gives `to`, and `core` goes on counting the same context, so
    /// its next event does not move and no other core needs to know. `false`: nothing
    /// changed.
    ///
    /// It checks the direct switch's conditions itself rather than sharing them: on
    /// the passive PPC's path, which this is, the shared form measured 85 instructions a
    /// round trip more (the general case works out which context the woken thread runs
    /// on, and hands back a description the switch does not need). The scheduler tests
    /// hold both to the hand-over in steps.
    #[inline(always)]
    pub fn switch(&mut self, core: CoreId, from: ThreadId, to: ThreadId, sc: HandOver) -> bool {
        let (f, t) = (&self.threads[from], &self.threads[to]);
        let Some(lends) = f.sc else {
            return false;
        };
        if self.domains_running
            || f.queue != Queue::Ready(core)
            || !f.exists
            || !t.exists
            || t.queue != Queue::None
            || !Self::context_moves(f, t, sc)
            || self.cores[core].running_sc != Some(lends)
        {
            return false;
        }
        match &self.scs[lends] {
            Some(c) if c.core == core && c.available(self.now) > 0 => {}
            _ => return false,
        }
        let (p, q) = (f.priority, t.priority);
        let c = &self.cores[core];
        if c.heads[p] != Some(from) || c.tails[p] != Some(from) {
            return false;
        }
        // The highest priority ready on the core besides `from`'s, which only `from` holds,
        // must be below `to`'s (so nothing else is at `to`'s either).
        let mut bitmap = c.bitmap;
        if let Some(word) = bitmap.get_mut(usize::from(p / 64)) {
            *word &= !(1u64 << (p % 64));
        }
        if highest(&bitmap).is_some_and(|h| h >= q) {
            return false;
        }
        let swap = Swap {
            core,
            lends,
            moves: true,
            from_priority: p,
            to_priority: q,
        };
        self.swap(from, to, swap);
        true
    }

    /// Whether a hand-over from `from` to `to` is [`Scheduler::swap_alone`]'s case, and
    /// how, without changing anything.
    #[inline(always)]
    fn swap_case(&self, from: ThreadId, to: ThreadId, sc: HandOver) -> Option<Swap> {
        let (f, t) = (&self.threads[from], &self.threads[to]);
        let (Queue::Ready(core), Some(lends)) = (f.queue, f.sc) else {
            return None;
        };
        let moves = Self::context_moves(f, t, sc);
        let runs_on = if moves { lends } else { t.sc? };
        if !f.exists || !t.exists || t.queue != Queue::None {
            return None;
        }
        if !self.scs[runs_on]
            .as_ref()
            .is_some_and(|c| c.core == core && c.available(self.now) > 0)
        {
            return None;
        }
        let (p, q) = (f.priority, t.priority);
        let c = &self.cores[core];
        if c.heads[p] != Some(from) || c.tails[p] != Some(from) || (p != q && c.heads[q].is_some())
        {
            return None;
        }
        Some(Swap {
            core,
            lends,
            moves,
            from_priority: p,
            to_priority: q,
        })
    }

    /// `to` takes `from`'s place as [`Scheduler::swap_case`] found it.
    #[inline(always)]
    fn swap(&mut self, from: ThreadId, to: ThreadId, swap: Swap) {
        let Swap {
            core,
            lends,
            moves,
            from_priority: p,
            to_priority: q,
            ..
        } = swap;
        let c = &mut self.cores[core];
        c.heads[p] = None;
        c.tails[p] = None;
        self.set_bit(core, p, false);
        let c = &mut self.cores[core];
        c.heads[q] = Some(to);
        c.tails[q] = Some(to);
        self.set_bit(core, q, true);
        let f = &mut self.threads[from];
        f.runnable = false;
        f.queue = Queue::None;
        if moves {
            f.sc = None;
        }
        let t = &mut self.threads[to];
        t.runnable = true;
        t.queue = Queue::Ready(core);
        t.next = None;
        t.prev = None;
        if moves {
            t.sc = Some(lends);
            self.sc_thread[lends] = Some(to);
        }
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
        self.unqueue(thread);
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
        self.stop_counting(sc);
        if let Some(thread) = self.sc_thread[sc].take() {
            self.unqueue(thread);
            let t = &mut self.threads[thread];
            if t.own_sc == Some(sc) {
                t.own_sc = None;
            }
            if t.sc == Some(sc) {
                t.sc = None;
            }
        }
        self.scs[sc] = None;
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

    /// Any core that counts `sc`'s time stops counting it (the time is dropped: the
    /// context is reconfigured, moved or destroyed).
    fn stop_counting(&mut self, sc: SchedContextId) {
        self.timers_moved();
        for c in self.cores.values_mut() {
            if c.running_sc == Some(sc) {
                c.running_sc = None;
                c.consumed = 0;
            }
        }
    }

    /// Charges whatever a core consumed on `sc` (before it moves).
    fn commit_if_running(&mut self, sc: SchedContextId) {
        if let Some(core) = self.cores.find(|c| c.running_sc == Some(sc)) {
            self.commit(core);
        }
    }

    /// Charges `core`'s running context with what it consumed; its thread leaves the ready
    /// queue if that spent its budget, and goes to the back of its priority if it ended a
    /// round-robin slice.
    #[inline(never)]
    fn commit(&mut self, core: CoreId) {
        let consumed = core::mem::take(&mut self.cores[core].consumed);
        self.timer_moved(core);
        let Some(sc) = self.cores[core].running_sc else {
            return;
        };
        let (now, min_budget) = (self.now, self.min_budget);
        let Some(c) = self.scs[sc].as_mut() else {
            return;
        };
        c.charge(consumed, now, min_budget);
        let slice_over = c.round_robin() && c.used >= c.budget;
        if slice_over {
            c.used = 0;
        }
        if let Some(thread) = self.sc_thread[sc] {
            self.requeue(thread);
            if slice_over {
                let _ = self.yield_now(thread);
            }
        }
    }

    /// `core` entered the kernel at time `now`: its running context has consumed the time
    /// since the last report, and is charged when that spends what it may use; threads in
    /// its release queue whose budget is back become ready, and the domain schedule moves
    /// on. Returns whether the running context ran out.
    #[inline]
    pub fn update(&mut self, core: CoreId, now: u64) -> bool {
        self.now = self.now.max(now);
        let c = &mut self.cores[core];
        c.consumed = c.consumed.saturating_add(now.saturating_sub(c.since));
        c.since = c.since.max(now);
        let mut out = false;
        if let Some(sc) = c.running_sc
            && let Some(ctx) = self.scs[sc].as_ref()
            && c.consumed >= ctx.available(self.now)
        {
            self.commit(core);
            out = true;
        }
        if self.cores[core].release.is_some() {
            self.release_due(core);
        }
        if self.domains_running && self.domains.advance(self.now) {
            // A new domain's threads are chosen on every core.
            self.touched = u32::MAX;
            self.timers_moved();
        }
        out
    }

    /// Moves the threads of `core`'s release queue whose budget is back to its ready queue.
    #[cold]
    fn release_due(&mut self, core: CoreId) {
        for _ in 0..MAX_THREADS {
            let Some(t) = self.cores[core].release else {
                return;
            };
            if self.release_time(t) > self.now {
                return;
            }
            self.requeue(t);
            if self.cores[core].release == Some(t) {
                // Still not ready (no context any more): out of the way.
                self.dequeue_release(core, t);
            }
        }
    }

    /// `core` now runs `thread` (or idles): if that changes the context whose time it
    /// counts, the previous one is charged first.
    #[inline]
    pub fn switch_to(&mut self, core: CoreId, thread: Option<ThreadId>) {
        let sc = thread.and_then(|t| self.sc(t));
        if self.cores[core].running_sc != sc {
            self.commit(core);
            self.cores[core].running_sc = sc;
            self.timer_moved(core);
        }
    }

    /// `core`'s next event may have moved.
    #[inline]
    fn timer_moved(&mut self, core: CoreId) {
        self.timer_clean &= !core.bit();
    }

    /// Every core's next event may have moved.
    fn timers_moved(&mut self) {
        self.timer_clean = 0;
    }

    /// Whether `core`'s next event may have moved since the last call (its running context
    /// changed or was charged, its release queue changed, a context was configured, the
    /// domain changed); the mark is taken.
    pub fn take_timer_change(&mut self, core: CoreId) -> bool {
        let changed = self.timer_clean & core.bit() == 0;
        self.timer_clean |= core.bit();
        changed
    }

    /// [`Scheduler::next_event`], kept for [`Scheduler::quiet`]: the machine asks for it
    /// each time it takes the mark and finds it changed.
    pub fn keep_next_event(&mut self, core: CoreId) -> Option<u64> {
        let next = self.next_event(core);
        self.cores[core].due = next.unwrap_or(u64::MAX);
        next
    }

    /// Whether nothing is due on `core` at counter time `now`: its running context has
    /// budget left, no thread in its release queue has its budget back, and the domain slot
    /// goes on, so an entry's accounting ([`Scheduler::update`]) would only count the time.
    /// Known without working it out while the core's next event has not moved since the
    /// mark was last taken and the event kept: every change that may move it clears the
    /// mark, and what the accounting alone does to the running context (time consumed,
    /// from a later point) leaves it where it was. Otherwise `false`.
    #[inline(always)]
    pub fn quiet(&self, core: CoreId, now: u64) -> bool {
        self.timer_clean & core.bit() != 0 && now < self.cores[core].due
    }

    /// The cores whose next event may have moved and that have not taken the mark yet.
    pub fn timer_dirty(&self) -> u32 {
        !self.timer_clean
    }

    /// The context whose time `core` counts.
    pub fn running_sc(&self, core: CoreId) -> Option<SchedContextId> {
        self.cores[core].running_sc
    }

    /// When (counter time) `core` must enter the kernel again: its running context runs
    /// out, a thread in its release queue gets budget back, or the domain slot ends. `None`:
    /// nothing is due.
    #[inline]
    pub fn next_event(&self, core: CoreId) -> Option<u64> {
        let c = &self.cores[core];
        let mut due = u64::MAX;
        if let Some(sc) = c.running_sc
            && let Some(ctx) = &self.scs[sc]
        {
            let left = ctx.available(self.now).saturating_sub(c.consumed);
            due = c.since.saturating_add(left);
        }
        if let Some(t) = c.release {
            due = due.min(self.release_time(t));
        }
        if self.domains_running
            && let Some(end) = self.domains.ends_at()
        {
            due = due.min(end);
        }
        (due != u64::MAX).then_some(due)
    }
}

#[cfg(test)]
mod tests;
