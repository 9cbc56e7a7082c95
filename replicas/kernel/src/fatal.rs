//! Exceptions the kernel cannot handle. Each prints one decoded `K<n>|FATAL:` line, leaves
//! an epitaph in the replica's status record, stops every core of this replica and
//! nothing else: other replicas see the record go down and carry on.

use core::sync::atomic::Ordering;

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::shared::{ReplicaState, bell};
use atoll_boards::firmware;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::LineBuf;

use crate::{Replica, arch, console, doorbell, replica};

/// Exception kinds, as `entry.S` numbers them.
pub const KIND_SYNC: u64 = 0;
pub const KIND_IRQ: u64 = 1;
/// Exception sources, as `entry.S` numbers them (exceptions from EL0 have their own entry,
/// `user::handle_user_exception`).
const SOURCE_EL1_SPX: u64 = 1;

/// Bytes `entry.S` reserves on the stack for a [`Frame`] (`FRAME_SIZE` there).
pub const FRAME_SIZE: u64 = 288;
const _: () = assert!(core::mem::size_of::<Frame>() as u64 <= FRAME_SIZE);

/// Saved registers, laid out by `entry.S`.
#[derive(Default)]
#[repr(C)]
pub struct Frame {
    /// x0-x30.
    pub x: [u64; 31],
    /// Exception return address.
    pub elr: u64,
    /// Saved program status.
    pub spsr: u64,
    pad: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 272);

/// Common vector entry for exceptions taken in the kernel.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(_frame: &mut Frame, kind: u64, source: u64) {
    let Some(r) = replica() else { park_forever() };
    let Some(core) = crate::current_core(r.spec) else {
        park_forever()
    };
    if kind == KIND_IRQ && source == SOURCE_EL1_SPX {
        return crate::handle_irq(r, core);
    }
    stop_unexpected(r, core);
}

/// An exception the kernel never expects (a kernel fault, FIQ, SError): the replica stops.
pub fn stop_unexpected(r: &Replica, core: u32) -> ! {
    let (esr, far, elr) = arch::exception_registers();
    stop_replica(
        r,
        core,
        esr,
        far,
        elr,
        format_args!("{} FAR {far:#x} ELR {elr:#x}", Syndrome(esr)),
    )
}

/// Records the epitaph, reports, stops the other cores of this replica, then this core.
pub fn stop_replica(
    r: &Replica,
    core: u32,
    esr: u64,
    far: u64,
    elr: u64,
    what: core::fmt::Arguments<'_>,
) -> ! {
    let status = r.status();
    status.fault_esr.store(esr, Ordering::Relaxed);
    status.fault_far.store(far, Ordering::Relaxed);
    status.fault_elr.store(elr, Ordering::Relaxed);
    status.fault_core.store(u64::from(core), Ordering::Relaxed);
    let mut line: LineBuf<LOG_LINE_BYTES> = console::format_line(r.index, "FATAL", what);
    let _ = core::fmt::Write::write_fmt(
        &mut line,
        format_args!(" on core {core} of replica {}; replica stopped", r.index),
    );
    if r.owns_console() {
        console::write_direct(r, line.as_bytes());
    } else if let Some(_guard) = r.log_lock.try_lock() {
        r.log.push(line.as_bytes());
    }
    status.set_state(ReplicaState::Down);
    doorbell::ring(r, 0, bell::STATUS | bell::LOG);
    let others = status.cores_online.load(Ordering::Acquire) & !(1 << core);
    for other in 0..64u32 {
        if others & (1 << other) != 0 {
            let mpidr = r.core_mpidr(other);
            r.gic.send_sgi(r.spec.gic.stop_sgi, mpidr, other);
        }
    }
    stop_this_core(r, core)
}

/// Takes this core offline (PSCI CPU_OFF).
pub fn stop_this_core(r: &Replica, core: u32) -> ! {
    arch::irq_save();
    r.status()
        .cores_online
        .fetch_and(!(1 << core), Ordering::AcqRel);
    let _refused = firmware::cpu_off(r.psci);
    park_forever()
}

/// Stops this core without reporting (nothing trustworthy to report with).
pub fn park_forever() -> ! {
    arch::irq_save();
    loop {
        arch::wait_for_event();
    }
}

/// Called by `entry.S` on this core's emergency stack when an exception arrived with the
/// kernel stack nearly exhausted.
#[unsafe(no_mangle)]
extern "C" fn kernel_stack_overflow() -> ! {
    let (esr, far, elr) = arch::exception_registers();
    match replica() {
        Some(r) => {
            let core = crate::current_core(r.spec).unwrap_or(0);
            stop_replica(
                r,
                core,
                esr,
                far,
                elr,
                format_args!(
                    "kernel stack overflow ({}) FAR {far:#x} ELR {elr:#x}",
                    Syndrome(esr)
                ),
            )
        }
        None => park_forever(),
    }
}

/// Self-test: recurses until the kernel stack runs into its guard.
#[inline(never)]
pub fn selftest_stack_overflow(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0; // never reached: the guard stops the recursion long before
    }
    let frame = core::hint::black_box([depth; 32]);
    let kept = frame.get((depth % 32) as usize).copied().unwrap_or(0);
    kept.wrapping_add(selftest_stack_overflow(core::hint::black_box(
        depth.wrapping_add(1),
    )))
}

/// Self-test: a read from an address no replica maps.
pub fn selftest_fault() {
    const UNMAPPED: usize = 0xFFFF_FFEE_0000_0000;
    // SAFETY: deliberately faults; the data abort handler stops this replica and never
    // returns here.
    let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match replica() {
        Some(r) => {
            let core = crate::current_core(r.spec).unwrap_or(0);
            stop_replica(r, core, 0, 0, 0, format_args!("kernel panic: {info}"))
        }
        None => park_forever(),
    }
}
