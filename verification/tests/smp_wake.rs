//! The cross-core wake-up protocol inside one replica (`atoll_verification::smp_wake`) under
//! every interleaving: a kernel operation on one core wakes, rewrites or moves a thread whose
//! home is another core, while that core runs at EL0 or idles and takes its reschedule SGI
//! whenever one is pending. Checked:
//!
//! - no wake-up is lost: once the operations are done and every pending SGI is taken, each
//!   core runs the thread it would choose;
//! - no thread runs at EL0 on two cores at once;
//! - a stall waits for the stalled core's save: the staller reads the registers that core
//!   saved last (loom reports any unordered access to them), and the stalled core's pending
//!   entry does not write them after;
//! - kicks coalesce: a core is never sent a reschedule SGI while one it has not answered by
//!   clearing `kick_pending` is in flight.
//!
//! Each property also has a test that breaks one step of the protocol and sees it fail.
#![forbid(unsafe_code)]

use atoll_verification::smp_wake::{
    CORES, Core, KickAt, Mutation, Protocol, Replica, SYSCALL_PC, THREADS, Thread,
};
use loom::sync::Arc;
use loom::thread;

/// A kernel operation (a system call's work), run by a core that is in the kernel
/// throughout and not otherwise modelled.
type Operation = fn(&Replica);

/// The cores that run threads; core 0 (and, with two operations, another core) runs the
/// operations.
const B: usize = 1;
const C: usize = 2;

/// A replica's starting state.
struct Start {
    threads: [Thread; THREADS],
    pcs: [u64; THREADS],
    loaded: [Option<usize>; CORES],
}

/// A thread at home on `home` with `priority`, ready or blocked.
const fn thread(home: usize, priority: u8, ready: bool) -> Thread {
    Thread {
        home,
        priority,
        ready,
    }
}

/// One run of the model: `operations` run concurrently with the cores in `cores`, which stop
/// once the operations are done and no SGI is pending. Checks the replica then and returns
/// what each core runs.
fn run(
    protocol: Protocol,
    start: &Start,
    cores: &[usize],
    operations: &[Operation],
) -> [Core; CORES] {
    run_keeping(protocol, start, cores, operations).0
}

/// [`run`], also returning the replica.
fn run_keeping(
    protocol: Protocol,
    start: &Start,
    cores: &[usize],
    operations: &[Operation],
) -> ([Core; CORES], Arc<Replica>) {
    let (replica, mut now) = Replica::new(protocol, start.threads, start.pcs, start.loaded);
    let replica = Arc::new(replica);
    let cores: Vec<_> = cores
        .iter()
        .map(|&c| {
            let r = Arc::clone(&replica);
            let from = now[c];
            (c, thread::spawn(move || r.run_core(c, from)))
        })
        .collect();
    // The first operation runs on this thread (one thread fewer to interleave).
    let (&first, others) = operations.split_first().expect("an operation");
    let others: Vec<_> = others
        .iter()
        .map(|&op| {
            let r = Arc::clone(&replica);
            thread::spawn(move || op(&r))
        })
        .collect();
    first(&replica);
    for op in others {
        op.join().expect("kernel operation");
    }
    replica.stop();
    for (c, core) in cores {
        now[c] = core.join().expect("core");
    }
    replica.check_quiescent(now);
    (now, replica)
}

/// Core B idles; its threads 0 (priority 2) and 1 (priority 1) are blocked.
const B_IDLE: Start = Start {
    threads: [thread(B, 2, false), thread(B, 1, false)],
    pcs: [1, 1],
    loaded: [None; CORES],
};

/// Wakes thread 1, then thread 0.
fn wake_1_then_0(r: &Replica) {
    r.wake(1);
    r.wake(0);
}

/// One operation wakes both threads of an idle core, the lower-priority one first: the
/// core ends up running the higher one, whether the waker kicks inside the lock or after.
fn wake_both(protocol: Protocol) {
    loom::model(move || {
        let end = run(protocol, &B_IDLE, &[B], &[wake_1_then_0]);
        assert_eq!(end[B], Core::User { thread: 0, pc: 1 });
    });
}

#[test]
fn a_woken_thread_runs_on_its_home_core() {
    wake_both(Protocol::correct(KickAt::InsideLock));
    wake_both(Protocol::correct(KickAt::AfterUnlock));
}

/// A core that clears `kick_pending` after choosing, outside the lock, can absorb the kick
/// for a thread woken after it chose, and run the lower-priority thread for good.
#[test]
#[should_panic(expected = "lost wake-up")]
fn clearing_the_kick_after_choosing_loses_a_wake_up() {
    wake_both(Protocol::broken(
        KickAt::InsideLock,
        Mutation::ClearKickAfterChoosing,
    ));
}

/// Two operations on different cores each wake one of core B's threads at once.
fn two_wakers(protocol: Protocol) {
    loom::model(move || {
        let end = run(protocol, &B_IDLE, &[B], &[|r| r.wake(0), |r| r.wake(1)]);
        assert_eq!(end[B], Core::User { thread: 0, pc: 1 });
    });
}

#[test]
fn two_wakers_coalesce_their_kicks() {
    two_wakers(Protocol::correct(KickAt::InsideLock));
    two_wakers(Protocol::correct(KickAt::AfterUnlock));
}

/// Outside the lock, a kick tested with a load and set with a separate store lets both
/// wakers send the SGI.
#[test]
#[should_panic(expected = "more than one reschedule SGI in flight")]
fn a_kick_that_is_not_one_swap_sends_two_sgis() {
    two_wakers(Protocol::broken(
        KickAt::AfterUnlock,
        Mutation::KickWithLoadThenStore,
    ));
}

/// Core B runs thread 0 at EL0, about to make a system call (which moves its program
/// counter from 0 to 1). An operation writes the thread's registers (program counter 100,
/// code that makes no call), stalling core B first. The write is the last: the thread ends up
/// running at 100, whether its call was handled before the stall or abandoned by it.
fn stall(protocol: Protocol) {
    const START: Start = Start {
        threads: [thread(B, 1, true), thread(C, 1, false)],
        pcs: [SYSCALL_PC, 1],
        loaded: [None, Some(0), None],
    };
    loom::model(move || {
        let end = run(
            protocol,
            &START,
            &[B],
            &[|r| {
                let read = r.write_registers(0, 100);
                assert!(read == SYSCALL_PC || read == SYSCALL_PC + 1, "read {read}");
            }],
        );
        assert_eq!(
            end[B],
            Core::User { thread: 0, pc: 100 },
            "the stalled core wrote the registers after the stall"
        );
    });
}

#[test]
fn a_stall_sees_the_last_save_and_nothing_writes_after_it() {
    stall(Protocol::correct(KickAt::InsideLock));
    stall(Protocol::correct(KickAt::AfterUnlock));
}

/// Core B runs thread 0 at EL0, about to make a system call; thread 1, of higher priority,
/// is blocked. One operation writes thread 0's registers (stalling core B) while another
/// wakes thread 1. Core B ends up running thread 1, and thread 0's registers hold the write.
fn stall_and_wake(protocol: Protocol) {
    const START: Start = Start {
        threads: [thread(B, 1, true), thread(B, 2, false)],
        pcs: [SYSCALL_PC, 1],
        loaded: [None, Some(0), None],
    };
    loom::model(move || {
        let (end, replica) = run_keeping(
            protocol,
            &START,
            &[B],
            &[
                |r| {
                    r.write_registers(0, 100);
                },
                |r| r.wake(1),
            ],
        );
        assert_eq!(end[B], Core::User { thread: 1, pc: 1 });
        assert_eq!(
            replica.saved_pc(0),
            100,
            "the stalled core wrote the registers after the stall"
        );
    });
}

#[test]
fn a_stall_racing_a_wake_up_leaves_the_written_registers() {
    stall_and_wake(Protocol::correct(KickAt::InsideLock));
}

#[test]
#[should_panic(expected = "the stalled core wrote the registers after the stall")]
fn a_stall_racing_a_wake_up_needs_the_cancel() {
    stall_and_wake(Protocol::broken(KickAt::InsideLock, Mutation::IgnoreCancel));
}

/// Clearing `at_el0` before the save lets the staller read the registers while they are
/// being written.
#[test]
#[should_panic(expected = "Causality violation")]
fn clearing_at_el0_before_saving_races_with_the_staller() {
    stall(Protocol::broken(
        KickAt::InsideLock,
        Mutation::ClearAtEl0BeforeSaving,
    ));
}

/// A stalled core that handles its system call anyway overwrites the staller's registers.
#[test]
#[should_panic(expected = "the stalled core wrote the registers after the stall")]
fn a_stalled_entry_that_is_not_cancelled_writes_after_the_stall() {
    stall(Protocol::broken(KickAt::InsideLock, Mutation::IgnoreCancel));
}

/// Setting `at_el0` after releasing the lock lets a staller see the core as out of EL0 while
/// it goes back to the thread.
#[test]
#[should_panic(expected = "Causality violation")]
fn setting_at_el0_outside_the_lock_defeats_the_stall() {
    stall(Protocol::broken(
        KickAt::InsideLock,
        Mutation::SetAtEl0AfterUnlock,
    ));
}

/// Core B runs thread 0 at EL0 and core C idles; an operation moves the thread to C. It ends
/// up running on C, never on both.
fn migrate(protocol: Protocol) {
    const START: Start = Start {
        threads: [thread(B, 1, true), thread(B, 1, false)],
        pcs: [1, 1],
        loaded: [None, Some(0), None],
    };
    loom::model(move || {
        let end = run(protocol, &START, &[B, C], &[|r| r.migrate(0, C)]);
        assert_eq!(end[B], Core::Idle);
        assert_eq!(
            end[C],
            Core::User {
                thread: 0,
                pc: SYSCALL_PC + 1
            }
        );
    });
}

#[test]
fn a_migrated_thread_runs_on_its_new_core_only() {
    migrate(Protocol::correct(KickAt::InsideLock));
    migrate(Protocol::correct(KickAt::AfterUnlock));
}

/// Moving a thread without stalling (or kicking) the core that runs it lets the new core run
/// it too.
#[test]
#[should_panic(expected = "at EL0 on cores")]
fn migrating_without_a_stall_runs_a_thread_twice() {
    migrate(Protocol::broken(
        KickAt::InsideLock,
        Mutation::MigrateWithoutStall,
    ));
}

/// Under the lock (where the core also clears it), `kick_pending` needs no swap: a load and
/// a store coalesce as well. The swap is for kicks sent after the lock is released.
#[test]
fn under_the_lock_a_kick_needs_no_swap() {
    two_wakers(Protocol::broken(
        KickAt::InsideLock,
        Mutation::KickWithLoadThenStore,
    ));
}
