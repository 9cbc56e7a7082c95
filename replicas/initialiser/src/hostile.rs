//! The hostile-case suite at initialiser level (test images, `--selftest-api`): attacks
//! that need more authority than a PD has (retype, revoke, map, unmap, delete while in use,
//! rights, priorities above the MCP, registers pointing into the kernel), each with the
//! outcome the kernel must give, checked on the real machine. The threads run in the
//! initialiser's own spaces; their faults arrive at the self-test's monitor endpoint.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::pd::vspace::USER_TOP;
use atoll_abi::syscall::{fault, initial, label, object_kind, rights, vm_attr};

use crate::api::{Builder, FaultWatch, HANDLER, retype_args};
use crate::sys;

/// Capabilities and results the suite's threads share with it.
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static REPLY: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
static RESULT: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicU64 = AtomicU64::new(0);
static ADDRESS: AtomicU64 = AtomicU64::new(0);

/// The label a thread reports with when an access that should have faulted succeeded.
const DID_NOT_FAULT: u64 = 0x99;

/// A kernel address: the start of the kernel's text in every replica.
const KERNEL_ADDRESS: u64 = 0xFFFF_FFFF_8000_0000;
/// A 1 GiB range of the initialiser's address space nothing else uses.
const SCRATCH: u64 = 0x30_0000_0000;
/// A word that would map everything user-writable if it reached a page table.
const HOSTILE_DESCRIPTOR: u64 = 0x0060_0000_4000_0FC3;

/// Receives once on `ENDPOINT`, records the answer's label and length, says so.
extern "C" fn receives_once() -> ! {
    let msg = sys::recv(
        ENDPOINT.load(Ordering::Relaxed),
        REPLY.load(Ordering::Relaxed),
    );
    RESULT.store(
        (msg.tag().label() << 8) | msg.tag().length() as u64,
        Ordering::Relaxed,
    );
    sys::signal(DONE.load(Ordering::Relaxed));
    sys::halt()
}

/// Receives forever on `ENDPOINT`, recording each badge and counting the receives.
extern "C" fn receives_forever() -> ! {
    loop {
        let msg = sys::recv(
            ENDPOINT.load(Ordering::Relaxed),
            REPLY.load(Ordering::Relaxed),
        );
        RESULT.store(msg.badge, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        sys::signal(DONE.load(Ordering::Relaxed));
    }
}

/// Reads the word at `ADDRESS`; should it not fault, says so on its fault endpoint.
extern "C" fn reads_the_address() -> ! {
    let at = ADDRESS.load(Ordering::Relaxed) as *const u64;
    // SAFETY: deliberately reads an address that may not be mapped; a fault stops this
    // thread and reaches the monitor.
    let value = unsafe { at.read_volatile() };
    sys::call(HANDLER.load(Ordering::Relaxed), DID_NOT_FAULT, &[value]);
    sys::halt()
}

/// Pushes onto its stack; should it not fault, says so on its fault endpoint.
extern "C" fn pushes() -> ! {
    // SAFETY: deliberately stores below the stack pointer, which the test points at the
    // kernel; a fault stops this thread and reaches the monitor.
    unsafe { core::arch::asm!("stp xzr, xzr, [sp, #-16]!", "add sp, sp, #16") };
    sys::call(HANDLER.load(Ordering::Relaxed), DID_NOT_FAULT, &[]);
    sys::halt()
}

/// A passive server: each notification is counted; each call is answered with the count.
extern "C" fn passive_server() -> ! {
    let (ep, reply) = (
        ENDPOINT.load(Ordering::Relaxed),
        REPLY.load(Ordering::Relaxed),
    );
    let mut msg = sys::recv(ep, reply);
    loop {
        if msg.badge == 0 {
            // Not a call (they come badged): the bound notification.
            COUNT.fetch_add(1, Ordering::Relaxed);
            sys::signal(DONE.load(Ordering::Relaxed));
            msg = sys::recv(ep, reply);
        } else {
            msg = sys::reply_recv(ep, reply, 0, &[COUNT.load(Ordering::Relaxed)]);
        }
    }
}

/// Runs every hostile case; each prints a TEST or FAILED line.
pub(crate) fn run(b: &mut Builder<'_>, faults: &mut FaultWatch) -> Result<(), Error> {
    let done = b.object(ObjectKind::Notification, 0)?;
    DONE.store(done, Ordering::Relaxed);
    invocation_rules(b)?;
    rights(b)?;
    priorities(b)?;
    delete_while_in_use(b)?;
    revoked_ipc_buffer(b)?;
    page_tables(b, faults)?;
    kernel_addresses(b, faults)?;
    restart(b)?;
    passive_server_notified_and_called(b)?;
    Ok(())
}

fn invocation_rules(b: &mut Builder<'_>) -> Result<(), Error> {
    let untyped = b.first_untyped();
    let slot = b.slot();
    let r = sys::invoke(untyped, label::UNTYPED_RETYPE, &retype_args(99, 0, slot, 1));
    b.check(
        "retyping an unknown object kind: invalid argument",
        r == Err(Error::InvalidArgument),
    );
    let kind = object_kind::number(ObjectKind::Endpoint);
    let r = sys::invoke(
        untyped,
        label::UNTYPED_RETYPE,
        // Five objects from two slots before the root CNode's end.
        &retype_args(kind, 0, (1 << initial::ROOT_RADIX) - 2, 5),
    );
    b.check(
        "retyping past the end of the CNode: range error",
        r == Err(Error::RangeError),
    );
    let frame = b.object(ObjectKind::Frame, 12)?;
    let map = [
        initial::VSPACE,
        KERNEL_ADDRESS,
        rights::READ | rights::WRITE,
        vm_attr::CACHED,
    ];
    b.check(
        "mapping a frame at a kernel address: invalid argument",
        sys::invoke(frame, label::FRAME_MAP, &map) == Err(Error::InvalidArgument),
    );
    let table = b.object(ObjectKind::PageTable, 0)?;
    b.check(
        "mapping a page table above user space: invalid argument",
        sys::invoke(table, label::PAGE_TABLE_MAP, &[initial::VSPACE, USER_TOP])
            == Err(Error::InvalidArgument),
    );
    let copy = b.slot();
    let r = sys::invoke(
        initial::CNODE,
        label::CNODE_COPY,
        &[copy, 64, initial::CNODE, table, 64, rights::ALL],
    );
    b.check(
        "copying an unmapped page table: illegal operation",
        r == Err(Error::IllegalOperation),
    );
    Ok(())
}

fn rights(b: &mut Builder<'_>) -> Result<(), Error> {
    let n = b.object(ObjectKind::Notification, 0)?;
    let send_only = b.mint(n, rights::WRITE, 1)?;
    let receive_only = b.mint(n, rights::READ, 0)?;
    let tcb = b.object(ObjectKind::Tcb, 0)?;
    b.check(
        "binding a notification through a send-only capability: illegal operation",
        sys::invoke(tcb, label::TCB_BIND_NOTIFICATION, &[send_only])
            == Err(Error::IllegalOperation),
    );
    let r = sys::invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_WATCH_PENDING_WORD,
        &[0, receive_only],
    );
    b.check(
        "watching a channel word for a receive-only notification: invalid capability",
        r == Err(Error::InvalidCapability),
    );
    let sc = b.sched_context(1000, 1000)?;
    b.check(
        "binding a scheduling context to a notification without the receive right: invalid capability",
        sys::invoke(sc, label::SCHED_CONTEXT_BIND, &[send_only]) == Err(Error::InvalidCapability),
    );
    let ep = b.object(ObjectKind::Endpoint, 0)?;
    let write_only = b.mint(ep, rights::WRITE, 1)?;
    b.check(
        "a fault handler that cannot be replied through: invalid capability",
        sys::invoke(tcb, label::TCB_CONFIGURE, &[write_only, 0, 0, 0, 0])
            == Err(Error::InvalidCapability),
    );
    let frame = b.object(ObjectKind::Frame, 12)?;
    let read_only = b.mint(frame, rights::READ, 0)?;
    b.check(
        "an IPC buffer the thread may not write: illegal operation",
        sys::invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, SCRATCH, read_only])
            == Err(Error::IllegalOperation),
    );
    let bell = b.object(ObjectKind::Doorbell, 0)?;
    let badged = b.mint(bell, rights::ALL, 1)?;
    b.check(
        "configuring a doorbell through a badged copy: illegal operation",
        sys::invoke(badged, label::DOORBELL_CONFIGURE, &[0, 0]) == Err(Error::IllegalOperation),
    );
    Ok(())
}

fn priorities(b: &mut Builder<'_>) -> Result<(), Error> {
    let authority = b.object(ObjectKind::Tcb, 0)?;
    sys::invoke(
        authority,
        label::TCB_SET_SCHED_PARAMS,
        &[initial::TCB, 100, 100, 0, 0],
    )?;
    let target = b.object(ObjectKind::Tcb, 0)?;
    b.check(
        "a priority above the authority's maximum: range error",
        sys::invoke(target, label::TCB_SET_PRIORITY, &[authority, 150]) == Err(Error::RangeError),
    );
    b.check(
        "a maximum priority above the authority's: range error",
        sys::invoke(target, label::TCB_SET_MC_PRIORITY, &[authority, 200])
            == Err(Error::RangeError),
    );
    b.check(
        "scheduling parameters above the authority's maximum: range error",
        sys::invoke(
            target,
            label::TCB_SET_SCHED_PARAMS,
            &[authority, 101, 50, 0, 0],
        ) == Err(Error::RangeError),
    );
    Ok(())
}

/// A thread waits on an endpoint; the endpoint is deleted under it: its receive fails
/// with an error, and it runs on.
fn delete_while_in_use(b: &mut Builder<'_>) -> Result<(), Error> {
    let sc = b.sched_context(1000, 1000)?;
    let (ep, t) = receiver(b, 200, sc, receives_once)?;
    // Let it reach its receive (it is lower than the initialiser).
    yield_to_lower(b)?;
    sys::invoke(initial::CNODE, label::CNODE_DELETE, &[ep, 64])?;
    sys::wait(DONE.load(Ordering::Relaxed));
    b.check(
        "deleting an endpoint a thread waits on: its receive fails",
        RESULT.load(Ordering::Relaxed) >> 8 == Error::InvalidCapability as u64,
    );
    sys::invoke(t, label::TCB_SUSPEND, &[])?;
    Ok(())
}

/// Lets every thread that is ready run until it blocks: the initialiser waits for `DONE`,
/// which a helper thread at the lowest priority signals when it runs, and that is only
/// once every higher thread has blocked.
fn yield_to_lower(b: &mut Builder<'_>) -> Result<(), Error> {
    extern "C" fn signals_done() -> ! {
        sys::signal(DONE.load(Ordering::Relaxed));
        sys::halt()
    }
    let handler = unused_handler(b)?;
    let t = b.thread(1, (1000, 1000), handler, signals_done)?;
    sys::wait(DONE.load(Ordering::Relaxed));
    sys::invoke(t, label::TCB_SUSPEND, &[])?;
    Ok(())
}

/// A thread at `priority` on scheduling context `sc`, running `entry` on a fresh endpoint
/// and reply object (`ENDPOINT`, `REPLY`; `COUNT` starts again), its faults going nowhere:
/// (the endpoint, the thread).
fn receiver(
    b: &mut Builder<'_>,
    priority: u64,
    sc: u64,
    entry: extern "C" fn() -> !,
) -> Result<(u64, u64), Error> {
    let ep = b.object(ObjectKind::Endpoint, 0)?;
    let reply = b.object(ObjectKind::Reply, 0)?;
    ENDPOINT.store(ep, Ordering::Relaxed);
    REPLY.store(reply, Ordering::Relaxed);
    COUNT.store(0, Ordering::Relaxed);
    let handler = unused_handler(b)?;
    let t = b.thread_on(priority, sc, handler, entry)?;
    Ok((ep, t))
}

/// A fault handler for a thread that is not expected to fault (nobody receives there).
fn unused_handler(b: &mut Builder<'_>) -> Result<u64, Error> {
    let ep = b.object(ObjectKind::Endpoint, 0)?;
    b.mint(ep, rights::ALL, 1)
}

/// A thread's IPC buffer frame is deleted and its memory revoked and made a page table; a
/// long message to the thread then carries only its register part, and nothing is written
/// into the table.
fn revoked_ipc_buffer(b: &mut Builder<'_>) -> Result<(), Error> {
    let block = b.make(object_kind::UNTYPED, 16)?;
    let frame = b.make_from(block, ObjectKind::Frame, 12)?;
    let sc = b.sched_context(1000, 1000)?;
    let (ep, t) = receiver(b, 200, sc, receives_once)?;
    sys::invoke(t, label::TCB_CONFIGURE, &[0, 0, 0, SCRATCH, frame])?;
    yield_to_lower(b)?;
    sys::invoke(initial::CNODE, label::CNODE_DELETE, &[frame, 64])?;
    sys::invoke(initial::CNODE, label::CNODE_REVOKE, &[block, 64])?;
    b.make_from(block, ObjectKind::PageTable, 0)?;
    sys::send_long(ep, 5, 120, HOSTILE_DESCRIPTOR);
    sys::wait(DONE.load(Ordering::Relaxed));
    let got = RESULT.load(Ordering::Relaxed);
    b.check(
        "a revoked IPC buffer is gone from its thread: a long message keeps only its registers",
        got == (5 << 8) | 4,
    );
    sys::invoke(t, label::TCB_SUSPEND, &[])?;
    Ok(())
}

/// Page tables: unmapping needs the last capability, and an unmapped table is empty when
/// it is linked again, so a frame mapped through it before is not reachable.
fn page_tables(b: &mut Builder<'_>, faults: &mut FaultWatch) -> Result<(), Error> {
    let level2 = b.object(ObjectKind::PageTable, 0)?;
    let level3 = b.object(ObjectKind::PageTable, 0)?;
    let frame = b.object(ObjectKind::Frame, 12)?;
    sys::invoke(level2, label::PAGE_TABLE_MAP, &[initial::VSPACE, SCRATCH])?;
    sys::invoke(level3, label::PAGE_TABLE_MAP, &[initial::VSPACE, SCRATCH])?;
    let map = [
        initial::VSPACE,
        SCRATCH,
        rights::READ | rights::WRITE,
        vm_attr::CACHED,
    ];
    sys::invoke(frame, label::FRAME_MAP, &map)?;
    // SAFETY: the frame was just mapped read-write at SCRATCH in this address space.
    unsafe { (SCRATCH as *mut u64).write_volatile(0x5EED) };
    let copy = b.slot();
    sys::invoke(
        initial::CNODE,
        label::CNODE_COPY,
        &[copy, 64, initial::CNODE, level3, 64, rights::ALL],
    )?;
    b.check(
        "unmapping a page table another capability names: revoke first",
        sys::invoke(level3, label::PAGE_TABLE_UNMAP, &[]) == Err(Error::RevokeFirst),
    );
    sys::invoke(initial::CNODE, label::CNODE_DELETE, &[copy, 64])?;
    sys::invoke(level3, label::PAGE_TABLE_UNMAP, &[])?;
    sys::invoke(level3, label::PAGE_TABLE_MAP, &[initial::VSPACE, SCRATCH])?;
    ADDRESS.store(SCRATCH, Ordering::Relaxed);
    let name = "reading through a page table unmapped and mapped again";
    let got = faults.fault_of(b, name, reads_the_address, None)?;
    b.check(
        "an unmapped page table is empty when it is linked again: a read faults",
        got == fault::VM_FAULT,
    );
    Ok(())
}

/// Threads whose registers point into the kernel fault; the kernel goes on.
fn kernel_addresses(b: &mut Builder<'_>, faults: &mut FaultWatch) -> Result<(), Error> {
    let pushes = pushes as extern "C" fn() -> ! as usize as u64;
    let cases = [
        (
            "a thread whose pc is a kernel address",
            "a thread whose pc is a kernel address: a fault",
            KERNEL_ADDRESS,
            0x20_0000_1000,
        ),
        (
            "a thread whose stack pointer is a kernel address",
            "a thread whose stack pointer is a kernel address: a fault",
            pushes,
            KERNEL_ADDRESS + 0x1000,
        ),
    ];
    for (name, check, pc, sp) in cases {
        let got = faults.fault_of(b, name, reads_the_address, Some((pc, sp)))?;
        b.check(check, got == fault::VM_FAULT);
    }
    ADDRESS.store(KERNEL_ADDRESS, Ordering::Relaxed);
    let got = faults.fault_of(b, "a thread reading kernel memory", reads_the_address, None)?;
    b.check(
        "a thread reading kernel memory: a fault",
        got == fault::VM_FAULT,
    );
    Ok(())
}

/// A thread blocked in a receive is resumed: it receives again (seL4's restart) rather
/// than returning with the capability address it passed as if it were a badge.
fn restart(b: &mut Builder<'_>) -> Result<(), Error> {
    let sc = b.sched_context(1000, 1000)?;
    // At the initialiser's priority, so that a yield lets it run.
    let (ep, t) = receiver(b, 255, sc, receives_forever)?;
    sys::yield_now();
    sys::invoke(t, label::TCB_RESUME, &[])?;
    sys::yield_now();
    let phantom = COUNT.load(Ordering::Relaxed);
    let sender = b.mint(ep, rights::WRITE | rights::GRANT, 7)?;
    sys::signal(sender);
    sys::wait(DONE.load(Ordering::Relaxed));
    b.check(
        "resuming a thread blocked in a receive: it receives again, no phantom message",
        phantom == 0 && RESULT.load(Ordering::Relaxed) == 7,
    );
    sys::invoke(t, label::TCB_SUSPEND, &[])?;
    Ok(())
}

/// A passive server (its context bound to its notification, as the monitor makes a passive
/// PD) is notified and called, in both orders, fifty times each.
fn passive_server_notified_and_called(b: &mut Builder<'_>) -> Result<(), Error> {
    let n = b.object(ObjectKind::Notification, 0)?;
    let sc = b.sched_context(1000, 1000)?;
    let (ep, server) = receiver(b, 200, sc, passive_server)?;
    sys::invoke(server, label::TCB_BIND_NOTIFICATION, &[n])?;
    // Let it reach its receive on `sc`, which then moves to its notification.
    yield_to_lower(b)?;
    sys::invoke(sc, label::SCHED_CONTEXT_UNBIND_OBJECT, &[server])?;
    sys::invoke(sc, label::SCHED_CONTEXT_BIND, &[n])?;
    let client = b.mint(ep, rights::WRITE | rights::GRANT, 1)?;
    let done = DONE.load(Ordering::Relaxed);
    let (mut notified, mut answered) = (0u64, 0u32);
    for round in 0..100u64 {
        // Even rounds notify, then call; odd rounds call, then notify. Each call answers
        // how many notifications the server has handled.
        if round % 2 == 0 {
            sys::signal(n);
            sys::wait(done);
            notified += 1;
        }
        if sys::call(client, 0, &[]).mrs[0] == notified {
            answered += 1;
        }
        if round % 2 == 1 {
            sys::signal(n);
            sys::wait(done);
            notified += 1;
        }
    }
    b.check(
        "a passive server notified and called in both orders: every call answered",
        answered == 100 && COUNT.load(Ordering::Relaxed) == notified,
    );
    sys::invoke(server, label::TCB_SUSPEND, &[])?;
    Ok(())
}
