//! The scheduler's unit tests, and a model-based property test of its budget accounting
//! over several cores.

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

fn core(i: usize) -> CoreId {
    CoreId::new(i).unwrap()
}

/// Thread `i` with its own context `i` on `on`, woken.
fn thread(s: &mut Sched, i: usize, priority: u8, budget: u64, period: u64, on: usize) {
    s.add_thread(t(i), priority);
    s.configure(c(i), budget, period, core(on)).unwrap();
    s.bind(t(i), c(i)).unwrap();
    s.wake(t(i)).unwrap();
}

/// Core `on` enters the kernel at `now` and switches to its choice, which it returns.
fn enter(s: &mut Sched, on: usize, now: u64) -> Option<ThreadId> {
    s.update(core(on), now);
    let next = s.choose(core(on));
    s.switch_to(core(on), next);
    next
}

#[test]
fn highest_priority_first_then_round_robin() {
    let mut s = Sched::new();
    thread(&mut s, 0, 10, 100, 100, 0);
    thread(&mut s, 1, 200, 100, 100, 0);
    thread(&mut s, 2, 200, 100, 100, 0);
    assert_eq!(s.choose(core(0)), Some(t(1)));
    s.yield_now(t(1)).unwrap();
    assert_eq!(s.choose(core(0)), Some(t(2)));
    s.block(t(2)).unwrap();
    s.block(t(1)).unwrap();
    assert_eq!(s.choose(core(0)), Some(t(0)));
    s.set_priority(t(0), 255).unwrap();
    s.wake(t(1)).unwrap();
    assert_eq!(s.choose(core(0)), Some(t(0)));
}

#[test]
fn each_core_chooses_among_its_own_threads() {
    let mut s = Sched::new();
    thread(&mut s, 0, 10, 100, 100, 0);
    thread(&mut s, 1, 200, 100, 100, 1);
    s.take_touched();
    assert_eq!(
        s.choose(core(0)),
        Some(t(0)),
        "core 0 never sees core 1's thread"
    );
    assert_eq!(s.choose(core(1)), Some(t(1)));
    assert_eq!(s.choose(core(2)), None);
    s.set_core(c(1), core(0)).unwrap();
    assert_eq!(s.take_touched(), 0b11, "both cores' queues changed");
    assert_eq!(s.choose(core(0)), Some(t(1)));
    assert_eq!(s.choose(core(1)), None);
    assert_eq!(s.core_of(t(1)), Some(core(0)));
}

#[test]
fn a_round_robin_slice_ends_at_its_budget() {
    let mut s = Sched::new();
    thread(&mut s, 0, 100, 50, 50, 0);
    thread(&mut s, 1, 100, 50, 50, 0);
    assert_eq!(enter(&mut s, 0, 0), Some(t(0)));
    assert_eq!(s.next_event(core(0)), Some(50), "the slice ends at 50");
    assert_eq!(enter(&mut s, 0, 30), Some(t(0)));
    assert_eq!(
        enter(&mut s, 0, 50),
        Some(t(1)),
        "slice over: the other one"
    );
    assert_eq!(s.next_event(core(0)), Some(100));
    assert!(
        !s.any_waiting_for_budget(),
        "round robin is never throttled"
    );
}

#[test]
fn a_spent_budget_comes_back_one_period_after_it_was_used() {
    let mut s = Sched::new();
    thread(&mut s, 0, 250, 30, 100, 0); // a high-priority spinner with a budget
    thread(&mut s, 1, 10, 100, 100, 0);
    assert_eq!(enter(&mut s, 0, 0), Some(t(0)));
    assert_eq!(
        s.next_event(core(0)),
        Some(30),
        "exactly when the budget ends"
    );
    assert_eq!(enter(&mut s, 0, 30), Some(t(1)), "budget spent");
    assert!(s.any_waiting_for_budget());
    assert_eq!(
        s.next_event(core(0)),
        Some(100),
        "the refill, before t1's slice end"
    );
    assert_eq!(enter(&mut s, 0, 100), Some(t(0)), "refilled one period on");
    let refills: Vec<Refill> = s.sched_context(c(0)).unwrap().refills().collect();
    assert_eq!(
        refills,
        [Refill {
            at: 100,
            amount: 30
        }]
    );
}

#[test]
fn a_budget_used_in_pieces_is_replenished_piece_by_piece() {
    let mut s = Sched::new();
    thread(&mut s, 0, 250, 30, 100, 0);
    assert_eq!(enter(&mut s, 0, 0), Some(t(0)));
    s.block(t(0)).unwrap();
    assert_eq!(enter(&mut s, 0, 10), None, "used 10 from 0");
    s.wake(t(0)).unwrap();
    assert_eq!(enter(&mut s, 0, 50), Some(t(0)));
    assert_eq!(enter(&mut s, 0, 70), None, "used 20 from 50: spent");
    let refills: Vec<Refill> = s.sched_context(c(0)).unwrap().refills().collect();
    assert_eq!(
        refills,
        [
            Refill {
                at: 100,
                amount: 10
            },
            Refill {
                at: 150,
                amount: 20
            }
        ]
    );
    assert_eq!(s.next_event(core(0)), Some(100));
    assert_eq!(enter(&mut s, 0, 100), Some(t(0)));
    assert_eq!(
        s.next_event(core(0)),
        Some(110),
        "only the first piece is back"
    );
}

#[test]
fn passive_servers_run_on_the_lent_context_and_its_core() {
    let mut s = Sched::new();
    thread(&mut s, 0, 100, 100, 100, 1); // client, on core 1
    s.add_thread(t(1), 150); // passive server: no context of its own
    s.wake(t(1)).unwrap();
    assert_eq!(s.choose(core(1)), Some(t(0)), "never chosen on its own");
    s.lend(t(0), t(1)).unwrap(); // the call
    assert_eq!(
        s.choose(core(1)),
        Some(t(1)),
        "it runs on the caller's core"
    );
    assert_eq!(s.core_of(t(1)), Some(core(1)));
    assert!(!s.is_ready(t(0)));
    s.give_back(t(1), t(0)).unwrap(); // the reply
    assert_eq!(s.choose(core(1)), Some(t(0)));
    assert!(!s.is_ready(t(1)));
    assert_eq!(s.give_back(t(1), t(0)), Err(SchedError::InUse));
}

/// The fast path's hand-over ends where block, lend or give back, and wake end, one by one.
#[test]
fn a_hand_over_ends_as_its_steps_one_by_one() {
    // Each case: (`to` passive, what happens to the context); both schedulers start with
    // the client (0, core 1) running and a server (1) blocked.
    for (passive, sc) in [
        (true, HandOver::Lend),
        (false, HandOver::Lend),
        (true, HandOver::Keep),
        (false, HandOver::GiveBack),
    ] {
        let mut stepwise = Sched::new();
        let mut at_once = Sched::new();
        for s in [&mut stepwise, &mut at_once] {
            thread(s, 0, 100, 100, 100, 1);
            if passive {
                s.add_thread(t(1), 150);
            } else {
                thread(s, 1, 150, 100, 100, 1);
                s.block(t(1)).unwrap();
            }
            thread(s, 2, 150, 100, 100, 1); // ahead of the server at its priority
        }
        let moved_stepwise = match sc {
            HandOver::Lend => stepwise.lend(t(0), t(1)).is_ok(),
            HandOver::GiveBack => stepwise.give_back(t(0), t(1)).is_ok(),
            HandOver::Keep => false,
        };
        stepwise.block(t(0)).unwrap();
        stepwise.wake(t(1)).unwrap();
        let moved = at_once.hand_over(t(0), t(1), sc);
        assert_eq!(moved, moved_stepwise, "{passive} {sc:?}");
        assert_eq!(moved, passive && sc == HandOver::Lend, "{passive} {sc:?}");
        for i in 0..3 {
            assert_eq!(at_once.sc(t(i)), stepwise.sc(t(i)), "{passive} {sc:?}");
            assert_eq!(
                at_once.is_ready(t(i)),
                stepwise.is_ready(t(i)),
                "{passive} {sc:?}"
            );
        }
        // The woken server queues behind the thread already at its priority.
        assert_eq!(at_once.choose(core(1)), stepwise.choose(core(1)));
        at_once.block(t(2)).unwrap();
        stepwise.block(t(2)).unwrap();
        assert_eq!(at_once.choose(core(1)), stepwise.choose(core(1)));
    }
    // A reply gives back only a lent context, never the replier's own.
    let mut s = Sched::new();
    thread(&mut s, 0, 100, 100, 100, 1);
    s.add_thread(t(1), 100);
    assert!(!s.hand_over(t(0), t(1), HandOver::GiveBack));
    assert_eq!(s.sc(t(0)), Some(c(0)));
    assert_eq!(s.sc(t(1)), None);
}

/// Everything the scheduler keeps about threads, contexts and queues, to compare two.
fn state(s: &Sched) -> Vec<std::string::String> {
    let mut out: Vec<_> = s.threads.values().map(|t| std::format!("{t:?}")).collect();
    out.extend(s.sc_thread.values().map(|t| std::format!("{t:?}")));
    for c in s.cores.values() {
        out.push(std::format!("{:?} {:?}", c.bitmap, c.running_sc));
        for p in 0..=255u8 {
            out.push(std::format!("{:?} {:?}", c.heads[p], c.tails[p]));
        }
    }
    out.push(std::format!("{} {}", s.touched, s.timer_clean));
    out
}

/// The direct switch (a thread alone at its priority hands its context to one that takes
/// its place) ends exactly where the hand-over in steps ends, and where it does not apply
/// it changes nothing.
#[test]
fn a_direct_switch_ends_as_the_hand_over_in_steps() {
    // (client priority, another thread at the client's priority and one at the server's,
    // the server passive, the client out of budget, what the context does, and whether the
    // hand-over is the call or the reply that follows it)
    let (mut applied, mut switches) = (0, 0);
    for (client_p, reply) in [100u8, 150, 200]
        .into_iter()
        .flat_map(|p| [(p, false), (p, true)])
    {
        for others in 0..8u8 {
            for passive in [true, false] {
                for spent in [false, true] {
                    for sc in [HandOver::Lend, HandOver::GiveBack, HandOver::Keep] {
                        let setup = |s: &mut Sched| {
                            s.set_min_budget(1);
                            thread(s, 0, client_p, 50, 100, 1);
                            if passive {
                                s.add_thread(t(1), 150);
                            } else {
                                thread(s, 1, 150, 100, 100, 1);
                                s.block(t(1)).unwrap();
                            }
                            if others & 1 != 0 {
                                thread(s, 2, client_p, 100, 100, 1);
                            }
                            if others & 2 != 0 {
                                thread(s, 3, 150, 100, 100, 1);
                            }
                            if others & 4 != 0 {
                                thread(s, 5, 220, 100, 100, 1);
                                s.block(t(5)).unwrap();
                            }
                            thread(s, 4, 250, 100, 100, 0); // on another core
                            enter(s, 1, 0);
                            if spent {
                                s.update(core(1), 60); // the client's 50 are used up
                            } else {
                                s.update(core(1), 10);
                            }
                            if reply {
                                s.hand_over_in_steps(t(0), t(1), HandOver::Lend);
                            }
                            s.take_touched();
                        };
                        let (from, to) = if reply { (t(1), t(0)) } else { (t(0), t(1)) };
                        let (mut direct, mut steps) = (Sched::new(), Sched::new());
                        setup(&mut direct);
                        setup(&mut steps);
                        let mut switched = Sched::new();
                        setup(&mut switched);
                        if others & 4 != 0 {
                            // Ready above both, but not chosen yet: made ready by another
                            // core, with this one's interrupt on its way.
                            for s in [&mut direct, &mut steps, &mut switched] {
                                s.wake(t(5)).unwrap();
                                s.take_touched();
                            }
                        }
                        let before = state(&direct);
                        let case =
                            std::format!("{client_p} {reply} {others} {passive} {spent} {sc:?}");
                        let running = steps.running_sc(core(1));
                        if let Some(moved) = direct.swap_alone(from, to, sc) {
                            applied += 1;
                            assert_eq!(moved, steps.hand_over_in_steps(from, to, sc), "{case}");
                            assert_eq!(state(&direct), state(&steps), "{case}");
                        } else {
                            assert_eq!(state(&direct), before, "{case}");
                        }
                        // The switch before the accounting: where it applies, it ends as
                        // the hand-over does, the core chooses `to` and counts the same
                        // context; elsewhere it changes nothing.
                        if switched.switch(core(1), from, to, sc) {
                            switches += 1;
                            assert_eq!(switched.choose(core(1)), Some(to), "{case}");
                            assert_eq!(switched.running_sc(core(1)), running, "{case}");
                            assert_eq!(switched.sc(to), running, "{case}");
                            direct.take_touched();
                            assert_eq!(state(&switched), state(&direct), "{case}");
                        } else {
                            assert_eq!(state(&switched), before, "{case}");
                        }
                    }
                }
            }
        }
    }
    assert!(
        applied >= 12,
        "the direct switch applied in {applied} cases"
    );
    assert!(switches >= 6, "the switch applied in {switches} cases");
}

#[test]
fn bad_parameters_are_refused() {
    let mut s = Sched::new();
    assert_eq!(
        s.configure(c(0), 0, 10, core(0)),
        Err(SchedError::BadParameters)
    );
    assert_eq!(
        s.configure(c(0), 11, 10, core(0)),
        Err(SchedError::BadParameters)
    );
    assert_eq!(s.wake(t(3)), Err(SchedError::NoSuch));
    assert_eq!(s.set_core(c(4), core(1)), Err(SchedError::NoSuch));
    thread(&mut s, 0, 1, 1, 1, 0);
    s.add_thread(t(1), 1);
    assert_eq!(s.bind(t(1), c(0)), Err(SchedError::InUse));
    assert_eq!(s.bind(t(1), c(5)), Err(SchedError::NoSuch));
}

#[test]
fn a_donated_context_runs_its_thread_until_it_is_reclaimed() {
    let mut s = Sched::new();
    thread(&mut s, 0, 10, 100, 100, 0);
    s.add_thread(t(1), 150); // a passive thread
    s.configure(c(1), 50, 100, core(0)).unwrap(); // a notification's context
    s.wake(t(1)).unwrap();
    assert_eq!(s.choose(core(0)), Some(t(0)));
    s.donate(c(1), t(1)).unwrap();
    assert_eq!(s.choose(core(0)), Some(t(1)));
    assert_eq!(s.donate(c(1), t(1)), Err(SchedError::InUse));
    assert_eq!(s.give_back(t(1), t(0)), Err(SchedError::InUse));
    assert!(!s.reclaim(c(0), t(1)));
    assert!(s.reclaim(c(1), t(1)));
    assert_eq!(s.choose(core(0)), Some(t(0)));
    assert!(!s.reclaim(c(0), t(0)));
}

#[test]
fn refills_merge_when_the_ring_is_full_without_coming_back_early() {
    let mut sc = SchedContext::new(100, 1000, core(0), 0);
    // Twenty separate pieces of 1, ten apart: more pieces than refills.
    for i in 0..20u64 {
        sc.charge(1, i * 10 + 1, 0);
    }
    let refills: Vec<Refill> = sc.refills().collect();
    assert!(refills.len() <= MAX_REFILLS);
    assert_eq!(refills.iter().map(|r| r.amount).sum::<u64>(), 100);
    let (unused, used): (Vec<Refill>, Vec<Refill>) = refills.iter().partition(|r| r.at < 1000);
    assert_eq!(unused.iter().map(|r| r.amount).sum::<u64>(), 80);
    // Budget comes back no faster than it was used, one period later: what the used
    // refills make usable by time x is at most what was used by x - 1000.
    for x in 1000..1400u64 {
        let back: u64 = used
            .iter()
            .map(|r| r.amount.min(x.saturating_sub(r.at)))
            .sum();
        let used_by = (0..20u64)
            .map(|i| (x - 1000).saturating_sub(i * 10).min(1))
            .sum::<u64>();
        assert!(
            back <= used_by,
            "at {x}: {back} back, {used_by} used a period before"
        );
    }
}

// The model: several cores, threads with their own contexts on random cores with random
// budgets and periods. Time only advances up to the next event the scheduler asks for on
// any core (the kernel arms each core's timer for it), and between two steps one core
// enters the kernel: for its timer, or for a thread's system call (wake, block, yield).
// The model tracks when each context's thread ran, independently of the scheduler's
// refills, and checks:
// - within any window of one period, no sporadic context ran for more than its budget;
// - after each entry, the core runs the highest-priority thread that is runnable, has its
//   context on that core and has budget now (so a released thread runs within one entry);
// - a thread never runs on two cores at once.

const CORES: usize = 2;
const THREADS: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    /// Time passes (up to the next event), then this core enters for its timer.
    Run(usize, u64),
    /// A thread on this core's entry wakes thread `i`.
    Wake(usize, usize),
    /// The running thread of this core blocks.
    Block(usize),
    /// The running thread of this core yields.
    Yield(usize),
    /// Thread `i` moves to core `c` (TCB_SetAffinity on some core's entry).
    Move(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CORES, 1u64..60).prop_map(|(c, dt)| Op::Run(c, dt)),
        2 => (0..CORES, 0..THREADS).prop_map(|(c, i)| Op::Wake(c, i)),
        2 => (0..CORES).prop_map(Op::Block),
        1 => (0..CORES).prop_map(Op::Yield),
        1 => (0..THREADS, 0..CORES).prop_map(|(i, c)| Op::Move(i, c)),
    ]
}

struct Model {
    s: Sched,
    now: u64,
    running: [Option<ThreadId>; CORES],
    since: [u64; CORES],
    runnable: [bool; THREADS],
    priority: [u8; THREADS],
    /// When each thread ran: (from, to).
    ran: Vec<Vec<(u64, u64)>>,
}

impl Model {
    fn close(&mut self, on: usize) {
        if let Some(th) = self.running[on]
            && self.now > self.since[on]
        {
            self.ran[th.index()].push((self.since[on], self.now));
        }
        self.since[on] = self.now;
    }

    fn enter(&mut self, on: usize, action: impl FnOnce(&mut Self)) {
        self.close(on);
        self.s.update(core(on), self.now);
        action(self);
        let next = self.s.choose(core(on));
        self.s.switch_to(core(on), next);
        self.running[on] = next;
        // Every core whose queues changed chooses again at once (the kick).
        let touched = self.s.take_touched();
        for other in 0..CORES {
            if other != on && touched & (1 << other) != 0 {
                self.close(other);
                self.s.update(core(other), self.now);
                let next = self.s.choose(core(other));
                self.s.switch_to(core(other), next);
                self.running[other] = next;
            }
        }
    }

    /// Time passes up to `dt`, stopping at the first event due on any core; every core
    /// with an event due then enters.
    fn advance(&mut self, dt: u64) {
        let due = (0..CORES)
            .filter_map(|k| self.s.next_event(core(k)))
            .min()
            .unwrap_or(u64::MAX);
        self.now = self.now.saturating_add(dt).min(due.max(self.now));
        for k in 0..CORES {
            if self.s.next_event(core(k)).is_some_and(|e| e <= self.now) {
                self.enter(k, |_| {});
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn budgets_are_exact_and_the_best_thread_runs_on_every_core(
        params in proptest::collection::vec((0u8..4, 5u64..60, 0u64..80, 0..CORES), THREADS),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut m = Model {
            s: Sched::new(),
            now: 0,
            running: [None; CORES],
            since: [0; CORES],
            runnable: [false; THREADS],
            priority: [0; THREADS],
            ran: (0..THREADS).map(|_| Vec::new()).collect(),
        };
        for (i, &(p, budget, extra, on)) in params.iter().enumerate() {
            m.priority[i] = p * 60;
            m.s.add_thread(t(i), m.priority[i]);
            m.s.configure(c(i), budget, budget + extra, core(on)).unwrap();
            m.s.bind(t(i), c(i)).unwrap();
        }
        for op in ops {
            match op {
                Op::Run(on, dt) => {
                    m.advance(dt);
                    m.enter(on, |_| {});
                }
                Op::Wake(on, i) => m.enter(on, |m| {
                    m.s.wake(t(i)).unwrap();
                    m.runnable[i] = true;
                }),
                Op::Block(on) => m.enter(on, |m| {
                    if let Some(th) = m.s.choose(core(on)) {
                        m.s.block(th).unwrap();
                        m.runnable[th.index()] = false;
                    }
                }),
                Op::Yield(on) => m.enter(on, |m| {
                    if let Some(th) = m.s.choose(core(on)) {
                        m.s.yield_now(th).unwrap();
                    }
                }),
                Op::Move(i, to) => {
                    // The kernel stops the thread's core first (it may be running there).
                    if let Some(from) = (0..CORES).find(|&k| m.running[k] == Some(t(i))) {
                        m.enter(from, |_| {});
                    }
                    m.enter(to, |m| m.s.set_core(c(i), core(to)).unwrap());
                }
            }
            // No thread on two cores at once.
            for a in 0..CORES {
                for b in a + 1..CORES {
                    prop_assert!(m.running[a].is_none() || m.running[a] != m.running[b]);
                }
            }
            // Each core runs the best thread it may run.
            for k in 0..CORES {
                let eligible: Vec<usize> = (0..THREADS)
                    .filter(|&i| {
                        let sc = m.s.sched_context(c(i)).unwrap();
                        m.runnable[i] && sc.core == core(k) && sc.available(m.now) > 0
                    })
                    .collect();
                match m.running[k] {
                    None => prop_assert!(eligible.is_empty(), "core {} idles while {:?} could run", k, eligible),
                    Some(th) => {
                        let i = th.index();
                        prop_assert!(eligible.contains(&i), "core {} runs {} which cannot run there", k, i);
                        let best = eligible.iter().map(|&u| m.priority[u]).max().unwrap();
                        prop_assert_eq!(m.priority[i], best);
                    }
                }
            }
            // The refills always hold the whole budget, in at most MAX_REFILLS pieces.
            for i in 0..THREADS {
                let sc = m.s.sched_context(c(i)).unwrap();
                if !sc.round_robin() {
                    prop_assert!(sc.refills().count() <= MAX_REFILLS);
                    prop_assert_eq!(sc.refills().map(|r| r.amount).sum::<u64>(), sc.budget);
                }
            }
        }
        for k in 0..CORES {
            m.close(k);
        }
        // No window of one period holds more than the budget of running.
        for i in 0..THREADS {
            let sc = m.s.sched_context(c(i)).unwrap();
            if sc.round_robin() {
                continue;
            }
            for &(from, _) in &m.ran[i] {
                let end = from + sc.period;
                let used: u64 = m.ran[i]
                    .iter()
                    .map(|&(a, b)| b.min(end).saturating_sub(a.max(from)))
                    .sum();
                prop_assert!(
                    used <= sc.budget,
                    "thread {} ran {} in [{}, {}) with a budget of {}: {:?}",
                    i, used, from, end, sc.budget, m.ran[i]
                );
            }
        }
    }
}
