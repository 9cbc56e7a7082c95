//! The kernel-API self-test (test images, `--selftest-api`): the initialiser builds small
//! threads in its own address space from untyped memory, with ordinary invocations, and
//! exercises the kernel for real, hostile cases included. It serves as their monitor: each
//! thread's faults come to its endpoint, and it reports them in words and stops the thread.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::bootprog::{self, BootProgram};
use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::{fault, initial, label, object_kind, rights, vm_attr};

use crate::sys;
use crate::{Out, error_name};
use atoll_sys::Tcb;

/// Where the test threads' stacks are mapped (one 2 MiB range, 4 KiB stack + guard each).
const STACKS: u64 = 0x20_0000_0000;
/// Round trips timed per figure.
const ROUNDS: u64 = 10_000;

/// Capabilities the test threads use (root-CNode addresses), set before they start.
static EP: AtomicU64 = AtomicU64::new(0);
static CLIENT_EP: AtomicU64 = AtomicU64::new(0);
static READ_ONLY_EP: AtomicU64 = AtomicU64::new(0);
static REPLY: AtomicU64 = AtomicU64::new(0);
static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
/// Results the threads hand back.
static RESULT: AtomicU64 = AtomicU64::new(0);
static ELAPSED: AtomicU64 = AtomicU64::new(0);

/// UntypedRetype's arguments: `count` objects of kind number `kind` into the root CNode's
/// slots from `dest`.
pub(crate) fn retype_args(kind: u64, size_bits: u64, dest: u64, count: u64) -> [u64; 7] {
    [kind, size_bits, initial::CNODE, 0, 0, dest, count]
}

/// The fault endpoint of the thread [`FaultWatch::fault_of`] started last: a thread that was
/// to fault but did not says so there, so the test never waits for good.
pub(crate) static HANDLER: AtomicU64 = AtomicU64::new(0);

/// The self-test's fault watch (not the replica's monitor): the endpoint (badged per thread) where test threads' faults
/// arrive, and its reply object.
pub(crate) struct FaultWatch {
    pub endpoint: u64,
    pub reply: u64,
    next_badge: u64,
}

impl FaultWatch {
    /// Starts a thread at `entry` (its pc and stack pointer then replaced by `regs`, if
    /// given) whose faults come here with a badge of its own, waits for its fault, reports
    /// it and stops the thread. Returns the fault's label (0 if another thread's arrived).
    pub(crate) fn fault_of(
        &mut self,
        b: &mut Builder<'_>,
        name: &str,
        entry: extern "C" fn() -> !,
        regs: Option<(u64, u64)>,
    ) -> Result<u64, Error> {
        self.next_badge += 1;
        let badge = self.next_badge;
        let handler = b.mint(self.endpoint, rights::ALL, badge)?;
        HANDLER.store(handler, Ordering::Relaxed);
        let t = b.thread(200, (1000, 1000), handler, entry)?;
        if let Some((pc, sp)) = regs {
            sys::invoke(t, label::TCB_SUSPEND, &[])?;
            sys::invoke(t, label::TCB_WRITE_REGISTERS, &[1, pc, sp])?;
        }
        let msg = sys::recv(self.endpoint, self.reply);
        report_fault(name, &msg);
        sys::invoke(t, label::TCB_SUSPEND, &[])?;
        Ok(if msg.badge == badge {
            msg.tag().label()
        } else {
            0
        })
    }
}

/// A test thread: its priority, its budget and period in microseconds, and its entry.
type Thread = (u64, (u64, u64), extern "C" fn() -> !);

pub(crate) struct Builder<'a> {
    next_slot: u64,
    /// The untyped blocks, in slot order (device blocks are never used: their memory
    /// belongs to PD programs and regions).
    untyped: &'a [bootprog::Untyped],
    stacks: u64,
    passed: u32,
    failed: u32,
}

impl Builder<'_> {
    pub(crate) fn slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot - 1
    }

    /// The slots of the untyped blocks of ordinary memory (device blocks make only frames,
    /// and their memory belongs to PD programs and regions).
    pub(crate) fn ordinary_untyped(&self) -> impl Iterator<Item = u64> + use<'_> {
        (initial::FIRST_UNTYPED..)
            .zip(self.untyped)
            .filter(|(_, u)| u.flags & bootprog::untyped_flags::DEVICE == 0)
            .map(|(slot, _)| slot)
    }

    /// The first untyped block of ordinary memory.
    pub(crate) fn first_untyped(&self) -> u64 {
        self.ordinary_untyped()
            .next()
            .unwrap_or(initial::FIRST_UNTYPED)
    }

    /// Retypes one object (from the first untyped block with room) into a fresh slot.
    pub(crate) fn make(&mut self, kind: u64, size_bits: u64) -> Result<u64, Error> {
        let dest = self.slot();
        let mut last = Error::NotEnoughMemory;
        for u in self.ordinary_untyped() {
            let args = retype_args(kind, size_bits, dest, 1);
            match sys::invoke(u, label::UNTYPED_RETYPE, &args) {
                Ok(_) => return Ok(dest),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Retypes one object from the untyped memory at `untyped` into a fresh slot.
    pub(crate) fn make_from(
        &mut self,
        untyped: u64,
        kind: ObjectKind,
        size_bits: u64,
    ) -> Result<u64, Error> {
        let dest = self.slot();
        let args = retype_args(object_kind::number(kind), size_bits, dest, 1);
        sys::invoke(untyped, label::UNTYPED_RETYPE, &args).map(|_| dest)
    }

    pub(crate) fn object(&mut self, kind: ObjectKind, size_bits: u64) -> Result<u64, Error> {
        self.make(object_kind::number(kind), size_bits)
    }

    pub(crate) fn mint(&mut self, src: u64, rights: u64, badge: u64) -> Result<u64, Error> {
        let dest = self.slot();
        let args = [dest, 64, initial::CNODE, src, 64, rights, badge];
        sys::invoke(initial::CNODE, label::CNODE_MINT, &args).map(|_| dest)
    }

    /// A scheduling context configured with `budget_us` per `period_us`.
    pub(crate) fn sched_context(&mut self, budget_us: u64, period_us: u64) -> Result<u64, Error> {
        let sc = self.object(ObjectKind::SchedContext, 0)?;
        let params = [sc, budget_us, period_us];
        sys::invoke(
            initial::SCHED_CONTROL,
            label::SCHED_CONTROL_CONFIGURE,
            &params,
        )?;
        Ok(sc)
    }

    pub(crate) fn check(&mut self, name: &str, ok: bool) {
        let mut out = Out::new();
        out.str(if ok { "TEST " } else { "FAILED " }).str(name);
        out.line("INFO");
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }

    /// A thread in the initialiser's own spaces at `priority`, with a scheduling context of
    /// `budget_us` per `period_us`, faults going to `fault_ep`; started at `entry`.
    pub(crate) fn thread(
        &mut self,
        priority: u64,
        (budget_us, period_us): (u64, u64),
        fault_ep: u64,
        entry: extern "C" fn() -> !,
    ) -> Result<u64, Error> {
        let sc = self.sched_context(budget_us, period_us)?;
        self.thread_on(priority, sc, fault_ep, entry)
    }

    /// Starts a thread for each of `threads` (faults going to `fault_ep`), waits until
    /// one of them signals `done`, and suspends them all.
    fn run_until_done<const N: usize>(
        &mut self,
        fault_ep: u64,
        done: u64,
        threads: [Thread; N],
    ) -> Result<(), Error> {
        let mut tcbs = [0; N];
        for (tcb, (priority, budget, entry)) in tcbs.iter_mut().zip(threads) {
            *tcb = self.thread(priority, budget, fault_ep, entry)?;
        }
        sys::wait(done);
        for tcb in tcbs {
            sys::cap::<Tcb>(tcb).suspend()?;
        }
        Ok(())
    }

    /// [`Builder::thread`], running on the scheduling context `sc`.
    pub(crate) fn thread_on(
        &mut self,
        priority: u64,
        sc: u64,
        fault_ep: u64,
        entry: extern "C" fn() -> !,
    ) -> Result<u64, Error> {
        let tcb = self.object(ObjectKind::Tcb, 0)?;
        let stack = self.object(ObjectKind::Frame, 12)?;
        let stack_va = STACKS + self.stacks * 0x2000 + 0x1000; // a guard page below each
        self.stacks += 1;
        let map = [
            initial::VSPACE,
            stack_va,
            rights::READ | rights::WRITE,
            vm_attr::CACHED,
        ];
        sys::invoke(stack, label::FRAME_MAP, &map)?;
        let config = [fault_ep, initial::CNODE, initial::VSPACE, 0, 0];
        sys::invoke(tcb, label::TCB_CONFIGURE, &config)?;
        let sched = [initial::TCB, priority, priority, sc, fault_ep];
        sys::invoke(tcb, label::TCB_SET_SCHED_PARAMS, &sched)?;
        let regs = [1, entry as usize as u64, stack_va + 0x1000];
        sys::invoke(tcb, label::TCB_WRITE_REGISTERS, &regs)?;
        Ok(tcb)
    }
}

extern "C" fn calls_an_empty_slot() -> ! {
    sys::call(1000, 1, &[]);
    sys::halt()
}

extern "C" fn sends_without_the_right() -> ! {
    sys::call(READ_ONLY_EP.load(Ordering::Relaxed), 1, &[]);
    sys::halt()
}

extern "C" fn touches_unmapped_memory() -> ! {
    // SAFETY: deliberately faults; the monitor stops this thread.
    let _ = unsafe { core::ptr::read_volatile(0x60_0000_0000 as *const u64) };
    sys::halt()
}

extern "C" fn runs_an_undefined_instruction() -> ! {
    // SAFETY: deliberately raises an undefined-instruction exception.
    unsafe { core::arch::asm!("udf #0") };
    sys::halt()
}

extern "C" fn writes_the_pmu_control_register() -> ! {
    // SAFETY: deliberately writes PMCR_EL0 from EL0, which the kernel does not allow (EL0
    // may only read the counters): the write traps.
    unsafe { core::arch::asm!("msr pmcr_el0, xzr") };
    sys::halt()
}

extern "C" fn server() -> ! {
    let (ep, reply) = (EP.load(Ordering::Relaxed), REPLY.load(Ordering::Relaxed));
    let mut msg = sys::recv(ep, reply);
    loop {
        let sum = msg.mrs[..msg.tag().length().min(4)].iter().sum::<u64>();
        msg = sys::reply_recv(ep, reply, 0, &[sum + msg.badge]);
    }
}

extern "C" fn client() -> ! {
    let ep = CLIENT_EP.load(Ordering::Relaxed);
    let first = sys::call(ep, 5, &[1, 2, 3]);
    RESULT.store(first.mrs[0], Ordering::Relaxed);
    let start = sys::counter();
    for _ in 0..ROUNDS {
        sys::call(ep, 0, &[]);
    }
    ELAPSED.store(sys::counter() - start, Ordering::Relaxed);
    sys::signal(DONE.load(Ordering::Relaxed));
    sys::halt()
}

extern "C" fn ponger() -> ! {
    let (ping, pong) = (PING.load(Ordering::Relaxed), PONG.load(Ordering::Relaxed));
    loop {
        sys::wait(ping);
        sys::signal(pong);
    }
}

extern "C" fn pinger() -> ! {
    let (ping, pong) = (PING.load(Ordering::Relaxed), PONG.load(Ordering::Relaxed));
    let start = sys::counter();
    for _ in 0..ROUNDS {
        sys::signal(ping);
        sys::wait(pong);
    }
    ELAPSED.store(sys::counter() - start, Ordering::Relaxed);
    sys::signal(DONE.load(Ordering::Relaxed));
    sys::halt()
}

extern "C" fn spinner() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

extern "C" fn worker() -> ! {
    RESULT.store(42, Ordering::Relaxed);
    sys::signal(DONE.load(Ordering::Relaxed));
    sys::halt()
}

/// Nanoseconds per round trip (instructions, under `-icount shift=0`).
fn per_round(ticks: u64) -> u64 {
    let hz = sys::counter_frequency();
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz) / u128::from(ROUNDS)) as u64
}

/// Runs every check; prints one line each and a verdict.
pub fn run(program: Option<&BootProgram<'_>>) {
    let mut b = Builder {
        // Past what the boot program used.
        next_slot: program.map_or(initial::FIRST_FREE, |p| u64::from(p.header().free_slot)),
        untyped: program.map_or(&[], |p| p.untyped()),
        stacks: 0,
        passed: 0,
        failed: 0,
    };
    match build_and_run(&mut b) {
        Ok(()) => {}
        Err(e) => {
            let mut out = Out::new();
            out.str("FAILED set-up: ").str(error_name(e));
            out.line("ERROR");
            b.failed += 1;
        }
    }
    let mut out = Out::new();
    if b.failed == 0 {
        out.str("kernel API self-test passed (")
            .num(u64::from(b.passed))
            .str(" checks)");
    } else {
        out.str("kernel API self-test FAILED (")
            .num(u64::from(b.failed))
            .str(" failed)");
    }
    out.line("INFO");
}

fn build_and_run(b: &mut Builder<'_>) -> Result<(), Error> {
    // Tables for the stacks' 2 MiB range: level 2, then level 3 (the level-1 table of the
    // low 512 GiB is there already: the kernel made it for the initialiser's program).
    for _ in 0..2 {
        let table = b.object(ObjectKind::PageTable, 0)?;
        sys::invoke(table, label::PAGE_TABLE_MAP, &[initial::VSPACE, STACKS])?;
    }
    invocation_errors(b)?;

    // Faulting threads report to the monitor endpoint, badged with their number.
    let monitor = b.object(ObjectKind::Endpoint, 0)?;
    let monitor_reply = b.object(ObjectKind::Reply, 0)?;
    let ep = b.object(ObjectKind::Endpoint, 0)?;
    EP.store(ep, Ordering::Relaxed);
    READ_ONLY_EP.store(b.mint(ep, rights::READ, 0)?, Ordering::Relaxed);
    let mut faults = FaultWatch {
        endpoint: monitor,
        reply: monitor_reply,
        next_badge: 0,
    };
    faulting_threads(b, &mut faults)?;

    // Call and ReplyRecv between two threads.
    let reply = b.object(ObjectKind::Reply, 0)?;
    REPLY.store(reply, Ordering::Relaxed);
    let done = b.object(ObjectKind::Notification, 0)?;
    DONE.store(done, Ordering::Relaxed);
    // The server receives on the endpoint; the client calls through a badged copy.
    CLIENT_EP.store(b.mint(ep, rights::ALL, 100)?, Ordering::Relaxed);
    let pair: [Thread; 2] = [(200, (1000, 1000), server), (150, (1000, 1000), client)];
    b.run_until_done(monitor, done, pair)?;
    b.check(
        "call and reply carry the badge and message registers",
        RESULT.load(Ordering::Relaxed) == 106,
    );
    report_figure("call+reply round trip", ELAPSED.load(Ordering::Relaxed));

    // Signal and Wait between two threads.
    PING.store(b.object(ObjectKind::Notification, 0)?, Ordering::Relaxed);
    PONG.store(b.object(ObjectKind::Notification, 0)?, Ordering::Relaxed);
    let pair: [Thread; 2] = [(140, (1000, 1000), ponger), (130, (1000, 1000), pinger)];
    b.run_until_done(monitor, done, pair)?;
    b.check(
        "signal and wait ping-pong",
        ELAPSED.load(Ordering::Relaxed) > 0,
    );
    report_figure("signal+wait round trip", ELAPSED.load(Ordering::Relaxed));

    // A thread spinning at high priority is held to its budget: a low-priority one runs.
    RESULT.store(0, Ordering::Relaxed);
    let pair: [Thread; 2] = [(254, (2000, 10_000), spinner), (10, (1000, 1000), worker)];
    b.run_until_done(monitor, done, pair)?;
    b.check(
        "a spinning high-priority thread keeps to its budget",
        RESULT.load(Ordering::Relaxed) == 42,
    );

    // The hostile cases that need an initialiser's authority.
    crate::hostile::run(b, &mut faults)
}

/// Invocations the kernel must refuse, each with its error.
fn invocation_errors(b: &mut Builder<'_>) -> Result<(), Error> {
    let dest = b.slot();
    let too_much = retype_args(object_kind::number(ObjectKind::Frame), 21, dest, 600);
    let ordinary = b.first_untyped();
    let r = sys::invoke(ordinary, label::UNTYPED_RETYPE, &too_much);
    b.check(
        "retyping more than the untyped holds: not enough memory",
        r == Err(Error::NotEnoughMemory),
    );
    let over = retype_args(
        object_kind::number(ObjectKind::Endpoint),
        0,
        initial::TCB,
        1,
    );
    let r = sys::invoke(ordinary, label::UNTYPED_RETYPE, &over);
    b.check(
        "retyping into an occupied slot: delete first",
        r == Err(Error::DeleteFirst),
    );
    let a = b.object(ObjectKind::Frame, 12)?;
    let c = b.object(ObjectKind::Frame, 12)?;
    let va = STACKS + 0x1F_F000;
    let map = [
        initial::VSPACE,
        va,
        rights::READ | rights::WRITE,
        vm_attr::CACHED,
    ];
    sys::invoke(a, label::FRAME_MAP, &map)?;
    b.check(
        "mapping over an existing mapping: delete first",
        sys::invoke(c, label::FRAME_MAP, &map) == Err(Error::DeleteFirst),
    );
    let r = sys::invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_GET,
        &[5, 0, initial::CNODE, b.slot(), 64],
    );
    b.check(
        "claiming a per-core interrupt: range error",
        r == Err(Error::RangeError),
    );
    Ok(())
}

/// Threads that must fault, each with the fault it must raise.
#[inline(always)]
fn faulting_threads(b: &mut Builder<'_>, faults: &mut FaultWatch) -> Result<(), Error> {
    let hostile: [(&str, extern "C" fn() -> !, u64); 5] = [
        (
            "invoking an empty slot",
            calls_an_empty_slot,
            fault::CAP_FAULT,
        ),
        (
            "sending without the write right",
            sends_without_the_right,
            fault::CAP_FAULT,
        ),
        (
            "touching unmapped memory",
            touches_unmapped_memory,
            fault::VM_FAULT,
        ),
        (
            "an undefined instruction",
            runs_an_undefined_instruction,
            fault::USER_EXCEPTION,
        ),
        (
            "writing the PMU control register",
            writes_the_pmu_control_register,
            fault::USER_EXCEPTION,
        ),
    ];
    for (name, entry, want) in hostile {
        let got = faults.fault_of(b, name, entry, None)?;
        b.check(name, got == want);
    }
    Ok(())
}

/// Prints a fault the way the monitor reports it.
fn report_fault(name: &str, msg: &sys::Reply) {
    let mut out = Out::new();
    out.str("fault from thread ")
        .num(msg.badge)
        .str(" (")
        .str(name)
        .str("): ");
    crate::boot::describe(&mut out, msg);
    out.str("; thread stopped");
    out.line("INFO");
}

fn report_figure(name: &str, ticks: u64) {
    let mut out = Out::new();
    out.str("BENCH ")
        .str(name)
        .str(": ")
        .num(per_round(ticks))
        .str(" ns (instructions under -icount shift=0) over ")
        .num(ROUNDS);
    out.line("INFO");
}
