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

use atoll_abi::bootprog::rules::{AfterFault, Monitor, Replay, ReplayState, Verdict};
use atoll_abi::bootprog::{self, BootProgram, Pd};
use atoll_sys::{Cap, Notification, SchedContext, Tcb};

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

/// Makes every invocation of `p` in order, stopping at the first that fails; whether all
/// succeeded.
pub(crate) fn replay(p: &BootProgram<'_>) -> bool {
    let mut replay = Replay::new(p);
    while let Some(step) = replay.next_step() {
        if let Err(e) = sys::invoke(step.cap, step.label, step.args) {
            replay.fail(&step);
            let mut out = Out::new();
            out.str("boot program step ")
                .num(step.index as u64)
                .str(" (invocation ")
                .num(step.label)
                .str(" on slot ")
                .num(step.cap)
                .str(") failed: ")
                .str(error_name(e))
                .str("; no PD of this replica is started");
            out.line("ERROR");
        }
    }
    if replay.state() != ReplayState::Done {
        return false;
    }
    let mut out = Out::new();
    out.str("started ").num(p.pds().len() as u64).str(" PDs");
    for (i, pd) in p.pds().iter().enumerate() {
        out.str(if i == 0 { ": " } else { ", " }).str(pd.name());
    }
    out.line("INFO");
    true
}

/// Serves as the monitor for good: reports each fault and stops or restarts the PD, and
/// makes each passive PD passive when it reports ready.
pub(crate) fn monitor(p: &BootProgram<'_>) -> ! {
    let (endpoint, reply) = (p.header().monitor_endpoint, p.header().monitor_reply);
    let mut monitor = Monitor::new();
    loop {
        let msg = sys::recv(endpoint, reply);
        match monitor.on_message(p, msg.badge, msg.tag().label()) {
            Verdict::MakePassive(pd) => make_passive(pd),
            Verdict::UnknownReady => Out::new()
                .str("a \"ready\" message with badge ")
                .hex(msg.badge)
                .str(", which names no passive PD, reached the monitor; ignored")
                .line("WARN"),
            Verdict::UnknownFault => Out::new()
                .str("a message with unknown badge ")
                .hex(msg.badge)
                .str(" reached the monitor; ignored")
                .line("WARN"),
            Verdict::Fault { pd, then } => fault(pd, then, &msg),
        }
    }
}

/// Reports the fault `msg` of `pd`, stops the PD and then does `then`.
fn fault(pd: &Pd, then: AfterFault, msg: &sys::Reply) {
    let mut out = Out::new();
    out.str("PD '").str(pd.name()).str("' ");
    describe(&mut out, msg);
    let tcb: Cap<Tcb> = sys::cap(pd.tcb);
    let _ = tcb.suspend();
    match then {
        AfterFault::Restart { count, passive } => {
            if passive {
                // It runs `init` again on its own context, then reports ready again.
                // (It still has the context if it faulted before it first reported;
                // then the notification does not.)
                // On the core beside the monitor again, so that its "ready" reaches it.
                let sc: Cap<SchedContext> = sys::cap(pd.sc);
                let _ = sc.unbind_object(sys::cap::<Notification>(pd.notification));
                let _ = sc.bind(tcb);
                let _ = tcb.set_affinity(u64::from(pd.init_core));
            }
            match tcb.restart_at(pd.entry, pd.stack_top) {
                Ok(()) => out
                    .str("; restarted (")
                    .num(u64::from(count))
                    .str(" of ")
                    .num(u64::from(bootprog::MAX_RESTARTS))
                    .str(")"),
                Err(e) => out.str("; restarting it failed: ").str(error_name(e)),
            };
        }
        AfterFault::RestartedTooOften => {
            out.str("; restarted too often, stopped");
        }
        AfterFault::Stop => {
            out.str("; stopped");
        }
    }
    out.line("ERROR");
}

/// Takes the scheduling context away from the passive PD `pd`, which reported that its
/// `init` is done, and binds it to the PD's notification, as Microkit's monitor does: from
/// now on it runs on its callers' contexts for their calls, and on that context while it
/// handles a notification.
fn make_passive(pd: &Pd) {
    let sc: Cap<SchedContext> = sys::cap(pd.sc);
    let tcb = sys::cap::<Tcb>(pd.tcb);
    // Its `init` ran beside the monitor; its notifications are handled on its own core.
    let passive = tcb
        .set_affinity(u64::from(pd.core))
        .and_then(|()| sc.unbind_object(tcb))
        .and_then(|()| sc.bind(sys::cap::<Notification>(pd.notification)));
    let mut out = Out::new();
    out.str("PD '").str(pd.name());
    match passive {
        Ok(()) => out.str("' finished init and is passive").line("INFO"),
        Err(e) => out
            .str("' could not be made passive: ")
            .str(error_name(e))
            .line("ERROR"),
    }
}

/// The fault in words: what happened, where, and the instruction that did it.
pub(crate) fn describe(out: &mut Out, msg: &sys::Reply) {
    let fault = atoll_abi::fault::Fault::from_parts(msg.tag().label(), msg.mrs);
    let _ = core::fmt::Write::write_fmt(out, format_args!("{fault}"));
}
