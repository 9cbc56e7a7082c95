//! Threads on several cores of one replica: where they run, how another core learns it must
//! choose again, moving a thread, and stopping a core before changing its thread.

use super::*;

const CORE1: CoreId = match CoreId::new(1) {
    Some(c) => c,
    None => unreachable!(),
};

impl Sys {
    /// A scheduling context of `budget` per `period` on `core`.
    fn sched_context_on(&mut self, budget: u64, period: u64, core: u64) -> u64 {
        let sc = self.make(ObjectKind::SchedContext, 0);
        self.invoke(
            initial::SCHED_CONTROL,
            label::SCHED_CONTROL_CONFIGURE,
            &[sc, budget, period, core],
        )
        .unwrap();
        sc
    }

    /// A started thread at `priority` on its own context on `core`, holding `caps`.
    fn thread_on(&mut self, priority: u64, core: u64, caps: &[u64]) -> (u64, ThreadId) {
        let (tcb, t) = self.thread(priority, true, caps);
        let sc = self.sched_context_on(1000, 1000, core);
        self.invoke(
            tcb,
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, priority, priority, sc, 0],
        )
        .unwrap();
        self.start(tcb);
        (tcb, t)
    }

    /// Core `core` takes an interrupt at time `now`, chooses and returns to its choice.
    fn run_core(&mut self, core: CoreId, now: u64) -> Option<ThreadId> {
        self.k.enter(core, now);
        self.k.timer();
        self.k.note_loaded();
        self.k.current()
    }

    /// Back to core 0, where the root thread runs.
    fn back_to_core0(&mut self, now: u64) {
        self.k.enter(CoreId::MIN, now);
    }
}

#[test]
fn a_thread_runs_on_its_contexts_core_and_that_core_is_kicked() {
    let mut s = boot();
    s.k.take_kicks();
    let (_, t) = s.thread_on(100, 1, &[]);
    assert_eq!(
        s.k.current(),
        Some(s.root),
        "core 0 goes on with the root thread"
    );
    assert_eq!(s.k.take_kicks(), CORE1.bit(), "core 1 must choose again");
    assert_eq!(s.k.objects.sched.core_of(t), Some(CORE1));
    assert_eq!(s.run_core(CORE1, 10), Some(t), "core 1 runs it");
    s.back_to_core0(10);
    assert_eq!(s.k.current(), Some(s.root));
}

#[test]
fn a_core_outside_the_replica_is_refused() {
    let mut s = boot();
    let sc = s.make(ObjectKind::SchedContext, 0);
    for core in [2, 7, 8, u64::MAX] {
        assert_eq!(
            s.invoke(
                initial::SCHED_CONTROL,
                label::SCHED_CONTROL_CONFIGURE,
                &[sc, 100, 1000, core]
            ),
            Err(Error::InvalidArgument),
            "core {core}"
        );
    }
    let (tcb, _) = s.thread(100, true, &[]);
    assert_eq!(
        s.invoke(tcb, label::TCB_SET_AFFINITY, &[1]),
        Err(Error::IllegalOperation),
        "a passive thread has no core of its own"
    );
    let (tcb, _) = s.thread_on(100, 0, &[]);
    assert_eq!(
        s.invoke(tcb, label::TCB_SET_AFFINITY, &[3]),
        Err(Error::InvalidArgument)
    );
}

#[test]
fn set_affinity_stops_the_threads_core_and_moves_it() {
    let mut s = boot();
    let (tcb, t) = s.thread_on(100, 1, &[]);
    assert_eq!(s.run_core(CORE1, 5), Some(t));
    let pc = s.k.context(t).unwrap().pc;
    s.back_to_core0(6);
    s.m.stall_in_syscall = true;
    s.k.take_kicks();
    s.invoke(tcb, label::TCB_SET_AFFINITY, &[0]).unwrap();
    assert_eq!(s.m.stalls, [CORE1], "core 1 was stopped first");
    assert_eq!(
        s.k.context(t).unwrap().pc,
        pc - 4,
        "the system call it was making is made again"
    );
    assert_eq!(s.k.objects.sched.core_of(t), Some(CoreId::MIN));
    let n = s.park_root();
    assert_eq!(s.k.current(), Some(t), "it runs on core 0 now");
    assert_eq!(s.run_core(CORE1, 7), None, "core 1 idles");
    s.back_to_core0(8);
    s.signal(n, 1);
    s.k.objects.schedule();
    assert_eq!(s.k.current(), Some(s.root));
    s.m.stalls.clear();
    s.invoke(tcb, label::TCB_SET_AFFINITY, &[1]).unwrap();
    assert!(s.m.stalls.is_empty(), "core 1 was idle: nothing to stop");
    assert_eq!(s.run_core(CORE1, 9), Some(t), "and back on core 1");
}

#[test]
fn a_passive_server_runs_on_each_callers_core() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let reply = s.make(ObjectKind::Reply, 0);
    let (server_tcb, server) = s.thread(200, true, &[ep, reply]);
    let sc = s.sched_context(1000, 1000);
    s.invoke(
        server_tcb,
        label::TCB_SET_SCHED_PARAMS,
        &[initial::TCB, 200, 200, sc, 0],
    )
    .unwrap();
    s.start(server_tcb);
    let (_, c1) = s.thread_on(50, 1, &[ep]);
    let n = s.park_root();
    s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
    s.k.objects.sched.unbind(server);
    assert_eq!(s.run_core(CORE1, 1), Some(c1));
    // The client on core 1 calls: the server runs there, on the client's context.
    s.sys(
        c1,
        syscall::CALL,
        &[(0, 1), (1, MessageInfo::new(0, 1).0), (2, 41)],
    );
    assert_eq!(s.k.current(), Some(server), "on the caller's core");
    assert_eq!(s.k.objects.sched.core_of(server), Some(CORE1));
    s.k.note_loaded();
    s.sys(
        server,
        syscall::REPLY_RECV,
        &[(0, 1), (1, MessageInfo::new(0, 1).0), (6, 2)],
    );
    assert_eq!(s.k.current(), Some(c1));
    let _ = n;
}

#[test]
fn microseconds_become_counter_ticks_exactly() {
    use crate::kernel::ticks_from_us;
    // QEMU's 62.5 MHz counter: 62.5 ticks a microsecond, not 62.
    assert_eq!(ticks_from_us(10_000, 62_500_000), Some(625_000));
    assert_eq!(ticks_from_us(1, 62_500_000), Some(62));
    assert_eq!(ticks_from_us(u64::MAX, 1_000_000), Some(u64::MAX));
    assert_eq!(ticks_from_us(u64::MAX, 2_000_000), None);
}

/// A device interrupt is served by whichever core of the replica takes it. Taken on the core
/// its handler's thread runs on (where the loader routes a shared interrupt: the core of
/// the PD that declares it), it wakes the thread there and no other core is interrupted;
/// taken on another core (the thread was moved since), it kicks the thread's core, which
/// then runs it.
#[test]
fn an_interrupt_wakes_its_handler_thread_on_the_threads_own_core() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let badged = s.mint(n, rights::ALL, 1 << 2);
    let handler = s.slot();
    s.invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_GET,
        &[33, 1, initial::CNODE, handler, 64],
    )
    .unwrap();
    s.invoke(handler, label::IRQ_HANDLER_SET_NOTIFICATION, &[badged])
        .unwrap();
    let (_, t) = s.thread_on(100, 1, &[n, handler]);
    assert_eq!(s.run_core(CORE1, 10), Some(t));
    s.sys(t, syscall::WAIT, &[(0, 1)]);
    assert_eq!(s.k.current(), None, "core 1 idles while its thread waits");
    s.back_to_core0(11);
    s.k.take_kicks();

    // Taken on core 1, the thread's own core: it runs there at once.
    s.k.enter(CORE1, 12);
    s.k.interrupt(&mut s.m, 33);
    assert_eq!(s.k.current(), Some(t), "woken on the core that took it");
    assert_eq!(
        s.k.context(t).unwrap().x[0],
        1 << 2,
        "with the handler's badge"
    );
    assert_eq!(s.k.take_kicks(), 0, "no other core is interrupted");
    assert_eq!(s.m.irqs.get(&33), Some(&false), "masked until acknowledged");
    s.k.note_loaded();
    let ack = MessageInfo::new(label::IRQ_HANDLER_ACK, 0).0;
    s.sys(t, syscall::CALL, &[(0, 2), (1, ack)]);
    assert_eq!(s.m.irqs.get(&33), Some(&true), "acknowledged from core 1");
    s.sys(t, syscall::WAIT, &[(0, 1)]);
    assert_eq!(s.k.current(), None);

    // Taken on core 0, where the root thread runs on: core 1 is kicked and runs the thread.
    s.back_to_core0(13);
    s.k.interrupt(&mut s.m, 33);
    assert_eq!(
        s.k.current(),
        Some(s.root),
        "core 0 goes on with the root thread"
    );
    assert_eq!(
        s.k.take_kicks(),
        CORE1.bit(),
        "the thread's core must choose again"
    );
    assert_eq!(s.run_core(CORE1, 14), Some(t), "and runs it");
    assert_eq!(s.k.context(t).unwrap().x[0], 1 << 2);
}
