//! Replaying the boot program and serving as the replica's monitor.
//!
//! The boot program (`atoll_abi::bootprog`, written by the `microkit` tool) is mapped
//! read-only at its fixed address. Its invocations build and start the replica's PDs; each
//! is an ordinary system call, and the first that fails stops the replay with a report of
//! which step failed and why. Afterwards the initialiser waits on the monitor endpoint:
//! every fault of a PD without a parent arrives there, badged with the PD's number, and is
//! reported in words with the PD's name. The PD is then stopped, or restarted from its
//! entry point when its description asks (`restart="true"`), at most
//! [`bootprog::MAX_RESTARTS`] times. A passive PD's message with label 0 on the same
//! endpoint says its `init` is done; the monitor then takes its scheduling context away
//! and binds it to the PD's notification, as Microkit's monitor does: the PD runs on its
//! callers' contexts for their calls, and on that one while it handles a notification.

use atoll_abi::bootprog::{self, BootProgram, pd_flags};
use atoll_abi::syscall::label;

use crate::{Out, error_name, sys};

/// The boot program the kernel mapped, checked; `None` (reported) if it is absent or bad.
pub(crate) fn program(size: u64) -> Option<BootProgram<'static>> {
    if size == 0 {
        Out::new()
            .str("no boot program: this replica starts no PDs")
            .line("INFO");
        return None;
    }
    // SAFETY: the kernel maps `size` bytes of the boot program read-only at its address
    // for the initialiser's whole life; nothing writes them.
    let bytes = unsafe { core::slice::from_raw_parts(bootprog::VADDR as *const u8, size as usize) };
    match BootProgram::parse(bytes) {
        Ok(p) => Some(p),
        Err(e) => {
            let mut out = Out::new();
            out.str("boot program refused: ");
            let _ = core::fmt::Write::write_fmt(&mut out, format_args!("{e}"));
            out.line("ERROR");
            None
        }
    }
}

/// Makes every invocation of `p`; whether all succeeded.
pub(crate) fn replay(p: &BootProgram<'_>) -> bool {
    for (step, inv) in p.invocations().iter().enumerate() {
        let args = &inv.args[..(inv.length as usize).min(bootprog::MAX_ARGS)];
        if let Err(e) = sys::invoke(inv.cap, u64::from(inv.label), args) {
            let mut out = Out::new();
            out.str("boot program step ")
                .num(step as u64)
                .str(" (invocation ")
                .num(u64::from(inv.label))
                .str(" on slot ")
                .num(inv.cap)
                .str(") failed: ")
                .str(error_name(e))
                .str("; no PD of this replica is started");
            out.line("ERROR");
            return false;
        }
    }
    let mut out = Out::new();
    out.str("started ").num(p.pds().len() as u64).str(" PDs");
    for (i, pd) in p.pds().iter().enumerate() {
        out.str(if i == 0 { ": " } else { ", " }).str(pd.name());
    }
    out.line("INFO");
    true
}

/// Serves as the monitor for good: reports each fault and stops or restarts the PD.
pub(crate) fn monitor(p: &BootProgram<'_>) -> ! {
    let (endpoint, reply) = (p.header().monitor_endpoint, p.header().monitor_reply);
    let mut restarts = [0u32; 64];
    loop {
        let msg = sys::recv(endpoint, reply);
        if msg.info.label() == 0 {
            // Not a fault (their labels start at 1): a passive PD's "init is done".
            make_passive(p, msg.badge);
            continue;
        }
        let Some((index, pd)) = p
            .pds()
            .iter()
            .enumerate()
            .find(|(_, pd)| pd.fault_badge != 0 && pd.fault_badge == msg.badge)
        else {
            let mut out = Out::new();
            out.str("a message with unknown badge ")
                .hex(msg.badge)
                .str(" reached the monitor; ignored");
            out.line("WARN");
            continue;
        };
        let mut out = Out::new();
        out.str("PD '").str(pd.name()).str("' ");
        describe(&mut out, &msg);
        let _ = sys::invoke(pd.tcb, label::TCB_SUSPEND, &[]);
        // (A replica has fewer threads than `restarts` has entries.)
        match restarts
            .get_mut(index)
            .filter(|_| pd.flags & pd_flags::RESTART != 0)
        {
            Some(n) if *n < bootprog::MAX_RESTARTS => {
                *n += 1;
                if pd.flags & pd_flags::PASSIVE != 0 {
                    // It runs `init` again on its own context, then reports ready again.
                    // (It still has the context if it faulted before it first reported;
                    // then the notification does not.)
                    let _ = sys::invoke(
                        pd.sc,
                        label::SCHED_CONTEXT_UNBIND_OBJECT,
                        &[pd.notification],
                    );
                    let _ = sys::invoke(pd.sc, label::SCHED_CONTEXT_BIND, &[pd.tcb]);
                }
                let regs = [1, pd.entry, pd.stack_top];
                match sys::invoke(pd.tcb, label::TCB_WRITE_REGISTERS, &regs) {
                    Ok(_) => out
                        .str("; restarted (")
                        .num(u64::from(*n))
                        .str(" of ")
                        .num(u64::from(bootprog::MAX_RESTARTS))
                        .str(")"),
                    Err(e) => out.str("; restarting it failed: ").str(error_name(e)),
                };
            }
            Some(_) => {
                out.str("; restarted too often, stopped");
            }
            None => {
                out.str("; stopped");
            }
        }
        out.line("ERROR");
    }
}

/// Takes the scheduling context away from the passive PD whose "ready" message (badge:
/// its index on this replica plus one) arrived and binds it to the PD's notification, as
/// Microkit's monitor does: from now on it runs on its callers' contexts for their calls,
/// and on that context while it handles a notification.
fn make_passive(p: &BootProgram<'_>, badge: u64) {
    let pd = usize::try_from(badge)
        .ok()
        .and_then(|b| b.checked_sub(1))
        .and_then(|i| p.pds().get(i))
        .filter(|pd| pd.flags & pd_flags::PASSIVE != 0);
    let mut out = Out::new();
    match pd {
        None => {
            out.str("a \"ready\" message with badge ")
                .hex(badge)
                .str(", which names no passive PD, reached the monitor; ignored")
                .line("WARN");
        }
        Some(pd) => {
            out.str("PD '").str(pd.name());
            let passive = sys::invoke(pd.sc, label::SCHED_CONTEXT_UNBIND_OBJECT, &[pd.tcb])
                .and_then(|_| sys::invoke(pd.sc, label::SCHED_CONTEXT_BIND, &[pd.notification]));
            match passive {
                Ok(_) => out.str("' finished init and is passive").line("INFO"),
                Err(e) => out
                    .str("' could not be made passive: ")
                    .str(error_name(e))
                    .line("ERROR"),
            }
        }
    }
}

/// The fault in words: what happened, where, and the instruction that did it.
pub(crate) fn describe(out: &mut Out, msg: &sys::Reply) {
    let fault = atoll_abi::fault::Fault::from_parts(msg.info.label(), msg.mrs);
    let _ = core::fmt::Write::write_fmt(out, format_args!("{fault}"));
}
