//! The cross-core wake-up protocol inside one replica, for user threads on every core of it
//! (issue 18), written as the steps each core takes, on loom's atomics, lock and cell.
//!
//! The cores of a replica share one kernel lock. Each core `c` also has two atomics:
//!
//! - `at_el0[c]`: core `c` runs (or is about to run) a user thread at EL0. Core `c` sets it
//!   while holding the lock, just before it releases the lock and returns to the thread; it
//!   clears it (release) as the first step of an exception entry from EL0, once the thread's
//!   registers are saved, before it takes the lock.
//! - `kick_pending[c]`: coalesces reschedule SGIs. A kicker sends the SGI only when it turns
//!   the flag from false to true; core `c` clears it under the lock just before it chooses
//!   what to run.
//!
//! Under the lock: every thread has a home core, a priority and a ready flag; `loaded[c]` is
//! the thread core `c` runs (its registers may be live on that core); `choose(c)` is the
//! highest-priority ready thread whose home is `c`. A core that makes a thread ready, or moves
//! it, kicks every core whose choice no longer matches what it runs. Before a core reads or
//! writes the saved registers of a thread another core may be running, it stalls that core:
//! kicks it, waits for its `at_el0` to clear (acquire), and marks the stalled core's pending
//! exception entry cancelled, so that entry leaves the thread alone.
//!
//! The kernel does not run user threads on more than one core yet. This is the protocol it is
//! to follow; `tests/smp_wake.rs` checks it, and [`Mutation`] breaks one step at a time so the
//! tests can show each property can fail.
//!
//! Besides the protocol, [`Replica`] keeps observers the protocol never reads: which core runs
//! each thread at EL0, the SGIs sent and the clears of `kick_pending`. Their checks panic with
//! the messages the tests expect. The threads' saved registers are loom's checked cell: loom
//! reports any two accesses to them that the protocol leaves unordered.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Mutex, MutexGuard};
use loom::thread;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool as StdBool, AtomicUsize as StdUsize, Ordering::SeqCst};

/// Cores of the modelled replica.
pub const CORES: usize = 3;
/// Threads of the modelled replica.
pub const THREADS: usize = 2;
/// A program counter at which a thread makes a system call. A thread runs by its saved
/// registers, modelled as its program counter alone: at this value it traps with a system
/// call, at any other it computes without trapping until an interrupt comes.
pub const SYSCALL_PC: u64 = 0;
/// `running_on` value of a thread no core runs at EL0.
const NOBODY: usize = usize::MAX;

/// When a kernel operation sends the kicks it decided on under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickAt {
    /// Before releasing the lock (what the kernel does: the SGI goes out under the lock).
    InsideLock,
    /// After releasing it.
    AfterUnlock,
}

/// One step of the protocol done wrong, to show the checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// An exception entry clears `at_el0` before saving the thread's registers.
    ClearAtEl0BeforeSaving,
    /// A core clears `kick_pending` after choosing, once it has released the lock.
    ClearKickAfterChoosing,
    /// A core sets `at_el0` after releasing the lock rather than while holding it.
    SetAtEl0AfterUnlock,
    /// A stalled core's exception entry handles its system call all the same.
    IgnoreCancel,
    /// Migration moves a thread without stalling the core that runs it, and kicks only its
    /// new home.
    MigrateWithoutStall,
    /// A kicker tests `kick_pending` with a load and sets it with a separate store.
    KickWithLoadThenStore,
}

/// How the modelled kernel behaves.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// Where kicks are sent.
    pub kick_at: KickAt,
    /// The step done wrong, if any.
    pub mutation: Option<Mutation>,
}

impl Protocol {
    /// The protocol as designed, kicking at `kick_at`.
    pub const fn correct(kick_at: KickAt) -> Self {
        Self {
            kick_at,
            mutation: None,
        }
    }

    /// The protocol with one step done wrong.
    pub const fn broken(kick_at: KickAt, mutation: Mutation) -> Self {
        Self {
            kick_at,
            mutation: Some(mutation),
        }
    }

    fn is(&self, mutation: Mutation) -> bool {
        self.mutation == Some(mutation)
    }
}

/// A thread's scheduling state, under the lock.
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    /// The core that may run it.
    pub home: usize,
    /// Higher runs first.
    pub priority: u8,
    /// Runnable.
    pub ready: bool,
}

/// The kernel state the replica's lock protects.
#[derive(Debug)]
pub struct Kernel {
    /// Every thread.
    pub threads: [Thread; THREADS],
    /// The thread each core runs, whose registers may be live on that core.
    pub loaded: [Option<usize>; CORES],
    /// The core's pending exception entry was cancelled by a stall.
    pub cancelled: [bool; CORES],
}

impl Kernel {
    /// The highest-priority ready thread whose home is `core`.
    pub fn choose(&self, core: usize) -> Option<usize> {
        (0..THREADS)
            .filter(|&t| self.threads[t].ready && self.threads[t].home == core)
            .max_by_key(|&t| self.threads[t].priority)
    }

    /// Whether `core` must be kicked to choose again.
    fn stale(&self, core: usize) -> bool {
        self.choose(core) != self.loaded[core]
    }
}

/// A thread's saved registers in its TCB: plain memory, which loom checks is never accessed
/// by two cores without a happens-before edge between them.
#[derive(Debug)]
pub struct Registers(UnsafeCell<u64>);

impl Registers {
    fn read(&self) -> u64 {
        // SAFETY: loom's cell checks that no write races with this read (the protocol is
        // what orders them; a race panics the model); the pointer is valid for the cell's
        // life.
        self.0.with(|p| unsafe { *p })
    }

    fn write(&self, value: u64) {
        // SAFETY: as in `read`: loom checks that no other access races with this write.
        self.0.with_mut(|p| unsafe { *p = value });
    }
}

/// What a core is doing, as only that core knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Core {
    /// Running a thread at EL0 with these live registers.
    User {
        /// The thread.
        thread: usize,
        /// Its live program counter.
        pc: u64,
    },
    /// Waiting for an interrupt with nothing to run.
    Idle,
}

/// Why a core entered the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// The reschedule SGI (or any interrupt) ended EL0 or woke the idle core.
    Sgi,
    /// The thread made a system call.
    Syscall,
}

/// One replica: its lock and kernel state, its per-core atomics, the GIC's pending state of
/// each core's reschedule SGI, the threads' saved registers, and the observers.
#[derive(Debug)]
pub struct Replica {
    protocol: Protocol,
    kernel: Mutex<Kernel>,
    at_el0: [AtomicBool; CORES],
    kick_pending: [AtomicBool; CORES],
    /// The SGI's pending state; raising and acknowledging it are acquire-release
    /// read-modify-writes, as in the doorbell model (the GIC keeps one pending state).
    sgi: [AtomicBool; CORES],
    registers: [Registers; THREADS],
    /// Set once every kernel operation the scenario runs has finished (plumbing as
    /// `handles`: the final checks follow joins, which order everything).
    stop: StdBool,
    /// Each core's loom thread, to wake it from `wfi` (plumbing: loom runs every thread on
    /// one host thread, so the cell needs no ordering of its own).
    handles: [OnceLock<thread::Thread>; CORES],
    /// The core is in `wfi` or about to be (the SGI wakes it). Plumbing as `handles`.
    waiting: [StdBool; CORES],
    // Observers, outside the model: loom runs one thread at a time, so they record the
    // order in which things happened, without adding interleavings or ordering.
    running_on: [StdUsize; THREADS],
    sgis_sent: [StdUsize; CORES],
    kicks_cleared: [StdUsize; CORES],
}

impl Replica {
    /// A replica whose threads are `threads`, with `pcs` their saved registers, and whose
    /// cores run `loaded` at EL0 (a thread that runs must be ready and at home there).
    /// Returns it with each core's own view of what it runs.
    pub fn new(
        protocol: Protocol,
        threads: [Thread; THREADS],
        pcs: [u64; THREADS],
        loaded: [Option<usize>; CORES],
    ) -> (Self, [Core; CORES]) {
        let cores = loaded.map(|l| match l {
            Some(thread) => Core::User {
                thread,
                pc: pcs[thread],
            },
            None => Core::Idle,
        });
        let running_on = core::array::from_fn(|t| {
            let on = (0..CORES).find(|&c| loaded[c] == Some(t));
            StdUsize::new(on.unwrap_or(NOBODY))
        });
        let replica = Self {
            protocol,
            kernel: Mutex::new(Kernel {
                threads,
                loaded,
                cancelled: [false; CORES],
            }),
            at_el0: core::array::from_fn(|c| AtomicBool::new(loaded[c].is_some())),
            kick_pending: core::array::from_fn(|_| AtomicBool::new(false)),
            sgi: core::array::from_fn(|_| AtomicBool::new(false)),
            registers: pcs.map(|pc| Registers(UnsafeCell::new(pc))),
            stop: StdBool::new(false),
            handles: core::array::from_fn(|_| OnceLock::new()),
            waiting: core::array::from_fn(|_| StdBool::new(false)),
            running_on,
            sgis_sent: core::array::from_fn(|_| StdUsize::new(0)),
            kicks_cleared: core::array::from_fn(|_| StdUsize::new(0)),
        };
        (replica, cores)
    }

    fn lock(&self) -> MutexGuard<'_, Kernel> {
        self.kernel.lock().expect("a model thread panicked")
    }

    /// Kicks `core`: raises its reschedule SGI unless a kick is already pending.
    fn kick(&self, core: usize) {
        let first = if self.protocol.is(Mutation::KickWithLoadThenStore) {
            let was = self.kick_pending[core].load(Ordering::Acquire);
            if !was {
                self.kick_pending[core].store(true, Ordering::Release);
            }
            !was
        } else {
            !self.kick_pending[core].swap(true, Ordering::AcqRel)
        };
        if first {
            self.send_sgi(core);
        }
    }

    fn send_sgi(&self, core: usize) {
        // Observer: every SGI but one needs a clear of `kick_pending` before it.
        let sent = self.sgis_sent[core].fetch_add(1, SeqCst) + 1;
        let cleared = self.kicks_cleared[core].load(SeqCst);
        assert!(
            sent <= cleared + 1,
            "more than one reschedule SGI in flight to core {core}: \
             {sent} sent, kick_pending cleared {cleared} times"
        );
        self.sgi[core].swap(true, Ordering::AcqRel);
        self.interrupt(core);
    }

    /// Ends `core`'s `wfi`, if it is in one, after an SGI or the end of the scenario.
    fn interrupt(&self, core: usize) {
        if self.waiting[core].load(SeqCst)
            && let Some(handle) = self.handles[core].get()
        {
            // loom orders everything before the unpark before the woken core's next step;
            // the core's next step is to acknowledge the SGI (acquire), which orders as much.
            handle.unpark();
        }
    }

    /// Kicks each core in `stale`, now.
    fn kick_all(&self, stale: [bool; CORES]) {
        for (core, &s) in stale.iter().enumerate() {
            if s {
                self.kick(core);
            }
        }
    }

    /// Ends a kernel operation: kicks the cores whose choice changed, before or after
    /// releasing the lock.
    fn finish(&self, kernel: MutexGuard<'_, Kernel>) {
        let stale = core::array::from_fn(|c| kernel.stale(c));
        match self.protocol.kick_at {
            KickAt::InsideLock => {
                self.kick_all(stale);
                drop(kernel);
            }
            KickAt::AfterUnlock => {
                drop(kernel);
                self.kick_all(stale);
            }
        }
    }

    /// Stalls every core that runs `thread`: kicks it, waits until it has left EL0 (its
    /// registers saved), and cancels its pending exception entry. Called with the lock held;
    /// afterwards the caller may access the thread's saved registers.
    fn stall(&self, kernel: &mut Kernel, thread: usize) {
        for core in 0..CORES {
            if kernel.loaded[core] != Some(thread) {
                continue;
            }
            self.kick(core);
            while self.at_el0[core].load(Ordering::Acquire) {
                thread::yield_now();
            }
            kernel.cancelled[core] = true;
            kernel.loaded[core] = None;
        }
    }

    /// A kernel operation on some core (signal, reply, resume): makes `thread` ready.
    pub fn wake(&self, thread: usize) {
        let mut kernel = self.lock();
        kernel.threads[thread].ready = true;
        self.finish(kernel);
    }

    /// `TCB_WriteRegisters` on `thread`, which may be running on another core: stalls it,
    /// reads its saved registers, writes `pc`. Returns what it read.
    pub fn write_registers(&self, thread: usize, pc: u64) -> u64 {
        let mut kernel = self.lock();
        self.stall(&mut kernel, thread);
        // loom reports this read and write unless the stalled core's save (and every other
        // access) happens before them: then the read sees the last value saved.
        let saved = self.registers[thread].read();
        self.registers[thread].write(pc);
        self.finish(kernel);
        saved
    }

    /// `TCB_SetAffinity`: moves `thread` to core `to`, stalling the core that runs it.
    pub fn migrate(&self, thread: usize, to: usize) {
        let mut kernel = self.lock();
        if self.protocol.is(Mutation::MigrateWithoutStall) {
            kernel.threads[thread].home = to;
            self.kick(to);
            return;
        }
        self.stall(&mut kernel, thread);
        kernel.threads[thread].home = to;
        self.finish(kernel);
    }

    /// Core `core`'s life from `start`: at EL0 or idle, it takes its reschedule SGI whenever
    /// one is pending, and its thread makes a system call whenever its program counter is at
    /// one; it stops once every kernel operation has finished and no SGI is pending. Returns
    /// what it runs then.
    pub fn run_core(&self, core: usize, start: Core) -> Core {
        // Set once, by this thread: only its own core's entry is ever set.
        let _ = self.handles[core].set(thread::current());
        let mut now = start;
        loop {
            let stopping = self.stop.load(SeqCst);
            if self.sgi[core].swap(false, Ordering::AcqRel) {
                now = self.exception_entry(core, now, Cause::Sgi);
            } else if matches!(now, Core::User { pc: SYSCALL_PC, .. }) {
                now = self.exception_entry(core, now, Cause::Syscall);
            } else if stopping {
                return now;
            } else {
                self.wait_for_interrupt(core);
            }
        }
    }

    /// Waits until an SGI is pending or the scenario ends: the idle core's `wfi`, and the
    /// time a thread computes at EL0 until an interrupt comes (the model's threads only trap
    /// on it or at a system call).
    fn wait_for_interrupt(&self, core: usize) {
        self.waiting[core].store(true, SeqCst);
        // Only read-modify-writes raise and take the SGI, so one sees the latest: an SGI
        // raised before `waiting` was set is seen here, and one raised after unparks the core.
        if !self.sgi[core].fetch_or(false, Ordering::Relaxed) && !self.stop.load(SeqCst) {
            thread::park();
        }
        self.waiting[core].store(false, SeqCst);
    }

    /// Lets every core stop once nothing is pending. Call when every kernel operation has
    /// finished.
    pub fn stop(&self) {
        self.stop.store(true, SeqCst);
        for core in 0..CORES {
            self.interrupt(core);
        }
    }

    /// An exception entry from EL0 (or the idle core's wake-up), through choosing what to
    /// run and returning to it.
    fn exception_entry(&self, core: usize, now: Core, cause: Cause) -> Core {
        let p = self.protocol;
        if let Core::User { thread, pc } = now {
            // Observer: the thread stops running at EL0 when the exception is taken.
            let was = self.running_on[thread].swap(NOBODY, SeqCst);
            assert_eq!(was, core, "thread {thread} ran at EL0 unrecorded");
            if p.is(Mutation::ClearAtEl0BeforeSaving) {
                self.at_el0[core].store(false, Ordering::Release);
            }
            self.registers[thread].write(pc);
            if !p.is(Mutation::ClearAtEl0BeforeSaving) {
                self.at_el0[core].store(false, Ordering::Release);
            }
        }
        let mut kernel = self.lock();
        let cancelled = core::mem::take(&mut kernel.cancelled[core]);
        if let (Cause::Syscall, Core::User { thread, .. }) = (cause, now)
            && (!cancelled || p.is(Mutation::IgnoreCancel))
        {
            // The system call's result: the thread goes on past its `svc`.
            let pc = self.registers[thread].read();
            self.registers[thread].write(pc + 1);
        }
        if !p.is(Mutation::ClearKickAfterChoosing) {
            self.clear_kick(core);
        }
        let next = kernel.choose(core);
        kernel.loaded[core] = next;
        if let Some(thread) = next {
            // Observer: no other core may run the thread at EL0 now.
            let was = self.running_on[thread].swap(core, SeqCst);
            assert_eq!(
                was, NOBODY,
                "thread {thread} runs at EL0 on cores {was} and {core} at once"
            );
            if !p.is(Mutation::SetAtEl0AfterUnlock) {
                self.at_el0[core].store(true, Ordering::Relaxed);
            }
        }
        drop(kernel);
        if p.is(Mutation::ClearKickAfterChoosing) {
            self.clear_kick(core);
        }
        match next {
            Some(thread) => {
                if p.is(Mutation::SetAtEl0AfterUnlock) {
                    self.at_el0[core].store(true, Ordering::Relaxed);
                }
                // Returning to EL0 loads the registers from the TCB, after the lock is gone.
                Core::User {
                    thread,
                    pc: self.registers[thread].read(),
                }
            }
            None => Core::Idle,
        }
    }

    fn clear_kick(&self, core: usize) {
        self.kicks_cleared[core].fetch_add(1, SeqCst);
        self.kick_pending[core].store(false, Ordering::Relaxed);
    }

    /// A thread's saved program counter, once every core has stopped.
    pub fn saved_pc(&self, thread: usize) -> u64 {
        self.registers[thread].read()
    }

    /// Checks the replica once every core has stopped, given what each core says it runs:
    /// every core runs what it would choose (no wake-up was lost), and agrees with the
    /// kernel's record.
    pub fn check_quiescent(&self, cores: [Core; CORES]) {
        let kernel = self.lock();
        for (core, now) in cores.iter().enumerate() {
            let chosen = kernel.choose(core);
            assert_eq!(
                kernel.loaded[core], chosen,
                "lost wake-up: core {core} runs {:?} with {chosen:?} to run",
                kernel.loaded[core]
            );
            let running = match *now {
                Core::User { thread, .. } => Some(thread),
                Core::Idle => None,
            };
            assert_eq!(
                running, chosen,
                "core {core} runs {running:?}, the kernel records {chosen:?}"
            );
        }
    }
}
