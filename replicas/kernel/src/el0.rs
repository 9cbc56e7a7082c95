//! Exceptions from EL0: system calls, FP traps, threads' faults, and IRQs taken while a
//! thread runs; and the return into whichever thread the kernel chose.
//!
//! While a thread runs, the kernel stack pointer points at the thread's saved registers in
//! its TCB, so `entry.S` saves them there directly. The kernel then serves the exception
//! under the replica lock and returns into the thread it chose, switching address space
//! (by ASID) only when it changes. With nothing to run, the core waits for an interrupt
//! inside the exception.
//!
//! Every core of the replica runs user threads: each chooses among the threads whose
//! scheduling context is on it. A core marks itself as at EL0 (`Replica::at_el0`) under
//! the lock just before it returns to a thread, and clears the mark at its next exception
//! once the thread's registers are saved, so another core can stop it and know when the
//! thread's registers are in memory (`Machine::stall`).

use core::sync::atomic::Ordering;

use atoll_abi::syscall::fault;
use atoll_kernel_core::esr;
use atoll_kernel_core::id::{CoreId, ThreadId};
use atoll_kernel_core::kernel::{Context, Entered};

use crate::entry::{KIND_IRQ, KIND_SYNC, return_to_user};
use crate::machine::{self, Inner};
use crate::replica::{Replica, replica};
use crate::stop::{park_forever, stop_unexpected};
use crate::{arch, fp, initialiser, irq, ping_ring, restart};

/// Builds the initialiser and runs it on this (the primary) core; never returns. Without
/// one (an image that carries none, or one that cannot be built), the core just serves
/// interrupts.
pub fn run_initialiser(r: &Replica) -> ! {
    if !initialiser::build(r) {
        idle_forever();
    }
    run(r, r.spec.primary_core() as usize)
}

/// Runs user threads on this core, `core`, for good: whichever the kernel chooses for it,
/// waiting for an interrupt while there is none.
pub fn run(r: &Replica, core: usize) -> ! {
    // Interrupts are served only where the kernel waits for them (in `resume`) from here
    // on: one taken at EL1 between choosing a thread and returning to it would choose
    // again behind this core's back (it did: the core went on with the thread it had
    // chosen while the kernel had another one current for it).
    let _ = arch::irq_save();
    arch::enable_low_half(0);
    arch::set_fp_enabled(false);
    machine::with(|inner| {
        inner.enter(core);
        inner.kernel.start_core(arch::counter());
    });
    let ctx = resume(r, core);
    // SAFETY: `ctx` is the chosen thread's saved registers, in its TCB inside the static
    // kernel state, where they stay; no other core returns to this thread while this core
    // may run it (a thread is chosen on its scheduling context's core only, and a core
    // that moves it stops this one first).
    unsafe { return_to_user(ctx) }
}

/// Serves interrupts until the machine stops.
pub fn idle_forever() -> ! {
    arch::irq_enable();
    loop {
        arch::wait_for_interrupt();
    }
}

/// Chooses the thread to return to on `core` (waiting for one if there is none) and returns
/// its saved registers. IRQs stay masked throughout: `wfi` wakes on a pending one.
fn resume(r: &Replica, core: usize) -> *mut Context {
    loop {
        if let Some(ctx) = machine::with_masked(|inner| choose(r, inner, core)) {
            return ctx;
        }
        let status = r.status();
        // Settled: every core idles and every thread is blocked, none merely out of budget
        // until its next period (the initialiser can run out of budget while it builds the
        // PDs). Whichever core idles last sees it.
        if status.user_settled.load(Ordering::Relaxed) == 0
            && machine::with_masked(|inner| {
                // Under the lock, so that only one core marks it.
                let first = inner.started
                    && inner.kernel.settled()
                    && status.user_settled.load(Ordering::Relaxed) == 0;
                if first {
                    status.settled_at.store(arch::counter(), Ordering::Relaxed);
                    status.user_settled.store(1, Ordering::Release);
                }
                first
            })
        {
            ping_ring::on_user_settled(r);
            restart::on_settled(r);
        }
        arch::wait_for_interrupt();
        r.count(core, |c| &c.entries);
        irq::handle_irq(r, core as u32);
    }
}

/// Loads the thread the kernel chose for `core`, if any: its address space and FP access,
/// and the timer armed for the core's next scheduling event. Returns its saved registers.
/// A chosen thread without an address space is stopped, and the kernel chooses again.
fn choose(r: &Replica, inner: &mut Inner, core: usize) -> Option<*mut Context> {
    if !inner.started {
        inner.arm_timer(r, core, false);
        return None;
    }
    if inner.kernel.core().index() != core {
        // Another core entered the kernel since this one: this core's time is charged, and
        // what that changed for it is chosen again.
        inner.enter(core);
        inner.kernel.timer();
    }
    let chosen = loop {
        let Some(t) = inner.kernel.current() else {
            break None;
        };
        let Some(space) = inner.kernel.address_space(t) else {
            let pc = inner.kernel.context(t).map_or(0, |c| c.pc);
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [pc, 0, 0, 0]);
            continue;
        };
        let ctx: *mut Context = inner.kernel.context_mut(t)?;
        load_space(inner, core, space);
        inner.fp.load_for(core, t);
        break Some(ctx);
    };
    inner.kernel.note_loaded();
    inner.arm_timer(r, core, false);
    if chosen.is_some()
        && let Some(at_el0) = r.at_el0.get(core)
    {
        // Released with the lock: a core that takes it next sees this core at EL0.
        at_el0.store(true, Ordering::Relaxed);
    }
    chosen
}

/// An exception from EL0 (`kind` as `entry.S` numbers them), the thread's registers
/// already saved in its TCB: the kernel serves it and returns the saved registers of the
/// thread to run next.
#[unsafe(no_mangle)]
extern "C" fn handle_user_exception(kind: u64) -> *mut Context {
    let Some(r) = replica() else { park_forever() };
    let core = arch::this_core();
    r.count(core, |c| &c.entries);
    let esr = arch::exception_syndrome();
    if let (Some(at_el0), Some(svc)) = (r.at_el0.get(core), r.entry_svc.get(core)) {
        svc.store(
            kind == KIND_SYNC && esr::class(esr) == esr::SVC64,
            Ordering::Relaxed,
        );
        // The thread's registers are saved (`entry.S`): a core waiting to stop this one
        // may now read and change them.
        at_el0.store(false, Ordering::Release);
    }
    match kind {
        KIND_SYNC => return handle_user_sync(r, core, esr),
        KIND_IRQ => irq::handle_irq(r, core as u32),
        _ => stop_unexpected(r, core as u32),
    }
    resume(r, core)
}

/// A synchronous exception from EL0 on `core`: a system call, an FP/SIMD trap, or a fault.
/// Returns the caller's registers when the caller goes on as it was.
///
/// It runs with IRQs masked, as the exception left them, so the replica lock is taken
/// without saving the mask.
fn handle_user_sync(r: &Replica, core: usize, esr: u64) -> *mut Context {
    let class = esr::class(esr);
    if class == esr::SYS64 {
        return system_register_trap(r, core, esr);
    }
    let next = machine::with_masked(|inner| {
        if class == esr::SVC64
            && let Some(c) = CoreId::new(core)
        {
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            return match kernel.syscall_entry(&mut hw, c, arch::counter()) {
                Entered::Light(t) => back_to(r, inner, core, t),
                Entered::Switched(t) => switched_to(r, inner, core, t),
                Entered::General(t) if inner.kernel.caller_goes_on(t) => back_to(r, inner, core, t),
                Entered::General(_) | Entered::Stalled => choose(r, inner, core),
            };
        }
        inner.enter(core);
        let Some(t) = inner.kernel.loaded() else {
            // Another core stopped this one and took its entry over: only choose again.
            inner.kernel.timer();
            return choose(r, inner, core);
        };
        if class == esr::FP_ASIMD {
            fp_trap(r, inner, core, t);
            return choose(r, inner, core);
        }

        // Nothing since the exception was taken has taken another: its registers hold.
        let (_, far, elr) = arch::exception_registers();
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        match class {
            esr::IABT_LOW | esr::DABT_LOW => {
                let fetch = u64::from(class == esr::IABT_LOW);
                kernel.user_fault(&mut hw, fault::VM_FAULT, [elr, far, fetch, esr]);
            }
            _ => {
                let sp = kernel.context(t).map_or(0, |c| c.sp);
                kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [elr, sp, esr, 0]);
            }
        }
        choose(r, inner, core)
    });
    next.unwrap_or_else(|| resume(r, core))
}

/// The caller of a system call, `t`, goes on on `core` as it was loaded: its saved
/// registers, with the core marked at EL0 again.
fn back_to(r: &Replica, inner: &mut Inner, core: usize, t: ThreadId) -> Option<*mut Context> {
    if let Some(at_el0) = r.at_el0.get(core) {
        at_el0.store(true, Ordering::Relaxed);
    }
    inner.kernel.context_mut(t).map(|c| c as *mut Context)
}

/// Loads address space `space` on `core`, unless it is loaded already.
#[inline(always)]
fn load_space(inner: &mut Inner, core: usize, space: (u64, u16)) {
    if let Some(loaded) = inner.space.get_mut(core)
        && space != *loaded
    {
        arch::switch_user_space(space.0, space.1);
        *loaded = space;
    }
}

/// A trapped `MRS`/`MSR` from EL0 on `core`: the physical timer's owner programming it
/// ([`emulate_pd_timer`]), or the thread's fault. Apart from [`handle_user_sync`]'s
/// closure, so that the system-call path there is compiled as if it did not exist (the
/// call inside it cost the round trips 22 instructions of register saving).
#[cold]
#[inline(never)]
fn system_register_trap(r: &Replica, core: usize, esr: u64) -> *mut Context {
    let next = machine::with_masked(|inner| {
        inner.enter(core);
        let Some(t) = inner.kernel.loaded() else {
            inner.kernel.timer();
            return choose(r, inner, core);
        };
        if !emulate_pd_timer(inner, t, esr) {
            let (_, _, elr) = arch::exception_registers();
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            let sp = kernel.context(t).map_or(0, |c| c.sp);
            kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [elr, sp, esr, 0]);
        }
        choose(r, inner, core)
    });
    next.unwrap_or_else(|| resume(r, core))
}

/// Makes the physical timer access the trapped `esr` describes for thread `t`, if it is
/// one and `t` owns the core's physical timer (it acknowledged the timer's interrupt last:
/// `Kernel::handles_pd_timer`): reads or writes the register at EL1 with `t`'s general
/// register and steps `t` past the instruction. `false` if not, and the trap is `t`'s
/// fault. EL0 never gets the registers themselves (`CNTKCTL_EL1.EL0PTEN` stays clear), so
/// the other PDs of the replica cannot touch the timer and a change of thread costs
/// nothing; the owner pays a trap each time it programs the timer.
fn emulate_pd_timer(inner: &mut Inner, t: ThreadId, esr: u64) -> bool {
    let Some(access) = atoll_kernel_core::esr::phys_timer_access(esr) else {
        return false;
    };
    if !inner.kernel.handles_pd_timer(t) {
        return false;
    }
    let Some(ctx) = inner.kernel.context_mut(t) else {
        return false;
    };
    if access.read {
        let value = arch::read_phys_timer(access.reg);
        if let Some(x) = ctx.x.get_mut(access.rt) {
            *x = value;
        }
    } else {
        // x31 is xzr here.
        let value = ctx.x.get(access.rt).copied().unwrap_or(0);
        arch::write_phys_timer(access.reg, value);
    }
    ctx.pc = ctx.pc.wrapping_add(4);
    true
}

/// A call or reply switched `core` straight to `t` ([`Entered::Switched`]): only what
/// differs from the thread it leaves is loaded, its address space and FP access. The core
/// counts the same context, so the timer is rearmed only if another entry moved the
/// core's next event meanwhile.
fn switched_to(r: &Replica, inner: &mut Inner, core: usize, t: ThreadId) -> Option<*mut Context> {
    let Some(space) = inner.kernel.address_space(t) else {
        return choose(r, inner, core);
    };
    load_space(inner, core, space);
    inner.fp.load_for(core, t);
    inner.kernel.note_loaded();
    inner.arm_timer(r, core, false);
    back_to(r, inner, core, t)
}

/// `t` trapped on an FP/SIMD instruction on `core`: its registers are loaded, first saved
/// by the core that still holds them, if one does.
fn fp_trap(r: &Replica, inner: &mut Inner, core: usize, t: ThreadId) {
    for _ in 0..2 {
        let Err(other) = inner.fp.trap(core, t) else {
            return;
        };
        let state = inner.fp.state_of(t);
        fp::request_flush(other, state, || machine::kick(r, other.index()));
    }
}
