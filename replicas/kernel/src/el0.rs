//! Exceptions from EL0: system calls, FP traps, threads' faults, and IRQs taken while a
//! thread runs; and the return into whichever thread the kernel chose.
//!
//! While a thread runs, the kernel stack pointer points at the thread's saved registers in
//! its TCB, so `entry.S` saves them there directly. The kernel then serves the exception
//! under the replica lock and returns into the thread it chose, switching address space
//! (by ASID) only when it changes. With nothing to run, the core waits for an interrupt
//! inside the exception.
//!
//! User threads run on the replica's primary core only; its other cores serve their own
//! interrupts.

use core::sync::atomic::Ordering;

use atoll_abi::syscall::fault;
use atoll_kernel_core::esr;
use atoll_kernel_core::kernel::Context;

use crate::entry::{KIND_IRQ, KIND_SYNC, return_to_user};
use crate::machine::{self, Inner};
use crate::replica::{Replica, replica};
use crate::stop::{park_forever, stop_unexpected};
use crate::{arch, initialiser, irq, ping_ring};

/// Builds the initialiser and runs it on this (the primary) core; never returns. Without
/// one (an image that carries none, or one that cannot be built), the core just serves
/// interrupts.
pub fn run_initialiser(r: &Replica) -> ! {
    if !initialiser::build(r) {
        idle_forever();
    }
    machine::start_charging();
    arch::enable_low_half(0);
    arch::set_fp_enabled(false);
    let ctx = resume(r);
    // SAFETY: `ctx` is the chosen thread's saved registers, in its TCB inside the static
    // kernel state, where they stay; only this core runs user threads.
    unsafe { return_to_user(ctx) }
}

/// Serves interrupts until the machine stops.
pub fn idle_forever() -> ! {
    arch::irq_enable();
    loop {
        arch::wait_for_interrupt();
    }
}

/// Chooses the thread to return to (waiting for one if there is none) and returns its
/// saved registers.
fn resume(r: &Replica) -> *mut Context {
    loop {
        if let Some(ctx) = machine::with(|inner| choose(r, inner)) {
            return ctx;
        }
        let status = r.status();
        // Settled: every thread is blocked, none merely out of budget until its next period
        // (the initialiser can run out of budget while it builds the PDs).
        if status.user_settled.load(Ordering::Relaxed) == 0
            && !machine::with(|inner| inner.kernel.waiting_for_budget())
        {
            status.settled_at.store(arch::counter(), Ordering::Relaxed);
            status.user_settled.store(1, Ordering::Release);
            ping_ring::on_user_settled(r);
        }
        inner_idle(r);
    }
}

/// Loads the thread the kernel chose, if any: its address space and FP access, and the
/// timer armed for its budget. Returns its saved registers. A chosen thread without an
/// address space is stopped, and the kernel chooses again.
fn choose(r: &Replica, inner: &mut Inner) -> Option<*mut Context> {
    loop {
        let t = inner.kernel.current()?;
        let Some(space) = inner.kernel.address_space(t) else {
            let pc = inner.kernel.context(t).map_or(0, |c| c.pc);
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [pc, 0, 0, 0]);
            continue;
        };
        let ctx: *mut Context = inner.kernel.context_mut(t)?;
        if space != inner.space {
            arch::switch_user_space(space.0, space.1);
            inner.space = space;
        }
        inner.fp.load_for(t);
        inner.loaded = Some(t);
        inner.kernel.note_loaded();
        if let Some(next) = inner.kernel.next_event() {
            let next = next.clamp(1, i64::MAX as u64) as i64;
            if next < arch::timer_remaining() {
                arch::arm_timer(next as u64);
            }
        }
        return Some(ctx);
    }
}

/// Waits for an interrupt and serves it here, interrupts still masked. A pending interrupt
/// ends `wfi` whether or not PSTATE masks it (the architecture's wake-up rule, which Linux's
/// idle loop also relies on), so the kernel reads and handles it directly instead of taking
/// the exception: no vector, no register frame, no return from exception. A spurious wake-up
/// finds nothing to acknowledge.
fn inner_idle(r: &Replica) {
    arch::wait_for_interrupt();
    // Only the primary core runs user threads, so only it gets here.
    irq::handle_irq(r, r.spec.primary_core());
}

/// An exception from EL0 (`kind` as `entry.S` numbers them), the thread's registers
/// already saved in its TCB: the kernel serves it and returns the saved registers of the
/// thread to run next.
#[unsafe(no_mangle)]
extern "C" fn handle_user_exception(kind: u64) -> *mut Context {
    let Some(r) = replica() else { park_forever() };
    match kind {
        KIND_SYNC => {
            if let Some(ctx) = handle_user_sync(r) {
                return ctx;
            }
        }
        _ => {
            // Only a replica's primary core runs user threads.
            let core = r.spec.primary_core();
            if kind == KIND_IRQ {
                irq::handle_irq(r, core);
            } else {
                stop_unexpected(r, core);
            }
        }
    }
    resume(r)
}

/// A synchronous exception from EL0: a system call, an FP trap, or a fault of the thread.
/// Returns the registers of the thread to run next, chosen under the same lock, or `None`
/// when there is none.
fn handle_user_sync(r: &Replica) -> Option<*mut Context> {
    let (esr, far, elr) = arch::exception_registers();
    let class = esr::class(esr);
    machine::with(|inner| {
        // Only a loaded thread runs at EL0, so one is.
        let Some(t) = inner.loaded else {
            return choose(r, inner);
        };
        if class == esr::FP_ASIMD {
            inner.fp.trap(t);
            return choose(r, inner);
        }
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        match class {
            esr::SVC64 => {
                kernel.syscall(&mut hw);
                // The caller goes on, and nothing it runs with changed since it was loaded
                // (address space, FP access, budget timer): return to it as it is.
                if kernel.caller_goes_on(t) {
                    return kernel.context_mut(t).map(|c| c as *mut Context);
                }
            }
            esr::IABT_LOW | esr::DABT_LOW => {
                let fetch = u64::from(class == esr::IABT_LOW);
                kernel.user_fault(&mut hw, fault::VM_FAULT, [elr, far, fetch, esr]);
            }
            _ => {
                let sp = kernel.context(t).map_or(0, |c| c.sp);
                kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [elr, sp, esr, 0]);
            }
        }
        choose(r, inner)
    })
}
