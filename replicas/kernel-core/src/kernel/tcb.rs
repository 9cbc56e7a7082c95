//! Thread control blocks: a thread's registers and IPC state, and the invocations that
//! configure, schedule, start and stop it (TCB_Configure, TCB_SetPriority,
//! TCB_SetMCPriority, TCB_SetSchedParams, TCB_ReadRegisters, TCB_WriteRegisters,
//! TCB_Resume, TCB_Suspend, TCB_BindNotification, TCB_UnbindNotification, and Atoll's
//! TCB_SetStatusIndex).
//!
//! A thread the boot program named with TCB_SetStatusIndex is a PD of the system directory:
//! the kernel publishes its PD's life cycle and fault count through
//! [`Machine::publish_pd`] (the status page's PD table) as it starts, faults, is
//! restarted and stops ([`Objects::publish`]). Threads without an index publish nothing.

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::shared::{PD_RECORDS, PdState};
use atoll_abi::syscall::label;

use super::invoke::{Answer, Args};
use super::objects::Objects;
use super::{Context, Kernel, Machine};
use crate::cap::{Cap, Rights};
use crate::id::{CoreId, NotificationId, ReplyId, SchedContextId, SlotId, TcbSlot, ThreadId};
use crate::ipc::ThreadState;

/// A thread control block.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tcb {
    /// Saved registers.
    pub ctx: Context,
    pub live: bool,
    /// The physical address of its IPC buffer: the frame in its `IpcBuffer` slot, kept
    /// here for the IPC paths (cleared when that slot's capability goes).
    pub ipc_buffer: Option<u64>,
    pub bound: Option<NotificationId>,
    pub mcp: u8,
    /// Reply object named by its current receive, bound to a caller when a call arrives.
    pub recv_reply: Option<ReplyId>,
    /// Reply object its own pending call will be answered through.
    pub caller_reply: Option<ReplyId>,
    /// A fault message it is sending (label, registers), label 0 when none.
    pub fault_label: u64,
    pub fault_mrs: [u64; 4],
    /// Its PD's record in the status page's PD table, once named (TCB_SetStatusIndex).
    pub published: Option<Published>,
}

/// A named thread's record in the status page's PD table and what was last published
/// there: the kernel keeps the count itself, so that it never reads the shared page back.
#[derive(Clone, Copy, Debug)]
pub(super) struct Published {
    /// Its PD's index in the system directory, below [`PD_RECORDS`].
    pub index: u8,
    /// The state last published, as its raw value: a [`PdState`] field would let `None`
    /// of `Option<Published>` take a non-zero value of it, and the kernel's zeroed tables
    /// would then need initialised data (`.data`) instead of `.bss`.
    pub state: u32,
    /// Faults since it was named (saturating).
    pub faults: u32,
}

/// What happened to a named thread's PD, for [`Objects::publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PdChange {
    /// Resumed or restarted: TCB_Resume, TCB_WriteRegisters with `resume`, or a reply with
    /// label 0 to its fault.
    Running,
    /// It faulted (whatever becomes of the fault): counted.
    Fault,
    /// Suspended: TCB_Suspend, or TCB_WriteRegisters without `resume`. A PD stopped after
    /// a fault (as its monitor does before restarting or giving up on it) stays `Faulted`.
    Suspended,
    /// Its TCB was destroyed.
    Gone,
}

impl Tcb {
    pub const EMPTY: Tcb = Tcb {
        ctx: Context {
            x: [0; 31],
            sp: 0,
            pc: 0,
            spsr: 0,
            tpidr: 0,
        },
        live: false,
        ipc_buffer: None,
        bound: None,
        mcp: 0,
        recv_reply: None,
        caller_reply: None,
        fault_label: 0,
        fault_mrs: [0; 4],
        published: None,
    };
}

/// A checked TCB invocation on a thread other than (where that matters) the caller.
pub(super) enum TcbInvocation {
    /// TCB_Configure: copies into the thread's own slots, then its IPC buffer's address.
    Configure(Configure),
    /// TCB_SetPriority, within the authority's maximum controlled priority.
    SetPriority(u8),
    /// TCB_SetMCPriority, within the authority's.
    SetMcPriority(u8),
    /// TCB_SetSchedParams.
    SetSchedParams(SchedParams),
    /// TCB_ReadRegisters.
    ReadRegisters,
    /// TCB_WriteRegisters: pc, sp and `x0`–`x3`; then restarts the thread if `resume`.
    WriteRegisters {
        resume: bool,
        pc: u64,
        sp: u64,
        x: [u64; 4],
    },
    /// TCB_SetAffinity: its own scheduling context moves to this core.
    SetAffinity(SchedContextId, CoreId),
    /// TCB_Resume.
    Resume,
    /// TCB_Suspend.
    Suspend,
    /// TCB_BindNotification.
    BindNotification(NotificationId),
    /// TCB_UnbindNotification of the notification the thread is bound to.
    UnbindNotification(NotificationId),
    /// TCB_SetStatusIndex: the thread is this PD of the system directory (below
    /// [`PD_RECORDS`]).
    SetStatusIndex(u8),
}

/// A checked TCB_Configure: the slots whose capabilities go into the thread's own slots,
/// and the physical address of its new IPC buffer.
pub(super) struct Configure {
    installs: [Option<(TcbSlot, SlotId)>; 4],
    buffer: Option<u64>,
}

/// A checked TCB_SetSchedParams.
pub(super) struct SchedParams {
    mcp: u8,
    priority: u8,
    /// Its own scheduling context from now on (`None`: none).
    sc: Option<SchedContextId>,
    /// The slot of its new fault handler, if it gets one.
    fault: Option<SlotId>,
}

impl Kernel {
    /// Decodes an invocation by thread `t` of the TCB of thread `target`.
    #[inline(always)]
    pub(super) fn decode_tcb(
        &self,
        m: &mut impl Machine,
        t: ThreadId,
        target: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<TcbInvocation, Error> {
        Ok(match op {
            label::TCB_CONFIGURE => TcbInvocation::Configure(self.decode_configure(m, t, args)?),
            label::TCB_SET_PRIORITY | label::TCB_SET_MC_PRIORITY => {
                let auth = self.tcb_arg(t, args.get(0)?)?;
                let value = u8::try_from(args.get(1)?).map_err(|_| Error::RangeError)?;
                if value > self.objects.tcbs[auth].mcp {
                    return Err(Error::RangeError);
                }
                if op == label::TCB_SET_PRIORITY {
                    TcbInvocation::SetPriority(value)
                } else {
                    TcbInvocation::SetMcPriority(value)
                }
            }
            label::TCB_SET_SCHED_PARAMS => {
                TcbInvocation::SetSchedParams(self.decode_sched_params(t, target, args)?)
            }
            label::TCB_READ_REGISTERS => {
                if target == t {
                    return Err(Error::IllegalOperation); // they are being used
                }
                TcbInvocation::ReadRegisters
            }
            label::TCB_WRITE_REGISTERS => {
                let resume = args.get(0)? != 0;
                let (pc, sp) = (args.get(1)?, args.get(2)?);
                if target == t {
                    return Err(Error::IllegalOperation); // they are being used
                }
                let x = [3, 4, 5, 6].map(|i| args.or_zero(i));
                TcbInvocation::WriteRegisters { resume, pc, sp, x }
            }
            label::TCB_SET_AFFINITY => {
                let core = self.core_arg(args.get(0)?)?;
                // A passive thread runs where its lender does: it has no core to move.
                let sc = self
                    .objects
                    .sched
                    .own_sc(target)
                    .ok_or(Error::IllegalOperation)?;
                TcbInvocation::SetAffinity(sc, core)
            }
            label::TCB_RESUME => TcbInvocation::Resume,
            label::TCB_SUSPEND => TcbInvocation::Suspend,
            label::TCB_BIND_NOTIFICATION => {
                // As seL4: the receive right, and a notification nobody waits on or is
                // bound to; every failure is an illegal operation.
                let (n, _) = self
                    .notification_arg(t, args.get(0)?, Rights::READ)
                    .map_err(|_| Error::IllegalOperation)?;
                let o = &self.objects;
                if o.tcbs[target].bound.is_some()
                    || o.ntfn_bound[n].is_some()
                    || !o.ntfns[n].waiters.is_empty()
                {
                    return Err(Error::IllegalOperation);
                }
                TcbInvocation::BindNotification(n)
            }
            label::TCB_UNBIND_NOTIFICATION => TcbInvocation::UnbindNotification(
                self.objects.tcbs[target]
                    .bound
                    .ok_or(Error::IllegalOperation)?,
            ),
            label::TCB_SET_STATUS_INDEX => {
                let index = usize::try_from(args.get(0)?)
                    .ok()
                    .filter(|&i| i < PD_RECORDS)
                    .and_then(|i| u8::try_from(i).ok())
                    .ok_or(Error::RangeError)?;
                // Once per TCB: a PD holding another's TCB capability cannot move that
                // PD's record onto a third's.
                if self.objects.tcbs[target].published.is_some() {
                    return Err(Error::IllegalOperation);
                }
                TcbInvocation::SetStatusIndex(index)
            }
            _ => return Err(Error::IllegalOperation),
        })
    }

    /// Performs a TCB invocation on thread `target`. Only the steps that delete a
    /// capability or restart the thread can fail (see [`Kernel::install`] and
    /// [`Kernel::restart`]).
    #[inline(always)]
    pub(super) fn invoke_tcb(
        &mut self,
        m: &mut impl Machine,
        target: ThreadId,
        request: TcbInvocation,
    ) -> Result<Answer, Error> {
        let o = &mut self.objects;
        match request {
            TcbInvocation::Configure(configure) => self.configure(m, target, configure)?,
            TcbInvocation::SetPriority(priority) => {
                let _ = o.sched.set_priority(target, priority);
            }
            TcbInvocation::SetMcPriority(mcp) => o.tcbs[target].mcp = mcp,
            TcbInvocation::SetAffinity(sc, core) => {
                let _ = o.sched.set_core(sc, core);
            }
            TcbInvocation::SetSchedParams(params) => self.set_sched_params(m, target, params)?,
            TcbInvocation::ReadRegisters => {
                let c = o.tcbs[target].ctx;
                return Ok(Answer {
                    len: 4,
                    mrs: [c.pc, c.sp, c.x[0], c.x[1], 0, 0, 0, 0],
                });
            }
            TcbInvocation::WriteRegisters { resume, pc, sp, x } => {
                // Out of whatever it was blocked in: it goes on from the new registers.
                o.suspend(target);
                let ctx = &mut o.tcbs[target].ctx;
                *ctx = Default::default();
                ctx.pc = pc;
                ctx.sp = sp;
                let [x0, x1, x2, x3] = x;
                ctx.x[0] = x0;
                ctx.x[1] = x1;
                ctx.x[2] = x2;
                ctx.x[3] = x3;
                // Stopped by now; running again if it can be restarted.
                let restarted = if resume { self.restart(target) } else { Ok(()) };
                let change = match (resume, restarted) {
                    (true, Ok(())) => PdChange::Running,
                    _ => PdChange::Suspended,
                };
                self.objects.publish(m, target, change);
                restarted?;
            }
            TcbInvocation::Resume => {
                self.restart(target)?;
                self.objects.publish(m, target, PdChange::Running);
            }
            TcbInvocation::Suspend => {
                o.suspend(target);
                o.publish(m, target, PdChange::Suspended);
            }
            TcbInvocation::BindNotification(n) => {
                o.tcbs[target].bound = Some(n);
                o.ntfn_bound[n] = Some(target);
            }
            TcbInvocation::UnbindNotification(n) => {
                o.tcbs[target].bound = None;
                o.ntfn_bound[n] = None;
            }
            TcbInvocation::SetStatusIndex(index) => {
                // Named before it is started, as the boot program does: `Starting`.
                let state = if o.threads.state(target) == ThreadState::Inactive {
                    PdState::Starting
                } else {
                    PdState::Running
                };
                o.tcbs[target].published = Some(Published {
                    index,
                    state: state as u32,
                    faults: 0,
                });
                m.publish_pd(u32::from(index), state, 0);
            }
        }
        Ok(Answer::EMPTY)
    }

    /// Decodes TCB_Configure (fault handler, capability space, address space, IPC buffer
    /// address and frame; 0 leaves one as it is): every argument is checked before
    /// anything changes.
    fn decode_configure(
        &self,
        m: &mut impl Machine,
        t: ThreadId,
        args: &Args,
    ) -> Result<Configure, Error> {
        let (fault, cspace, vspace) = (args.get(0)?, args.get(1)?, args.get(2)?);
        let (ipc_va, ipc_frame) = (args.get(3)?, args.get(4)?);
        let mut installs: [Option<(TcbSlot, SlotId)>; 4] = [None; 4];
        if fault != 0 {
            // An endpoint it can send to and be replied through (seL4's `validFaultHandler`).
            let target = self.arg(t, fault)?;
            if target.call_endpoint().is_none() {
                return Err(Error::InvalidCapability);
            }
            installs[0] = Some((TcbSlot::FaultHandler, target.slot));
        }
        if cspace != 0 {
            let (slot, _) = self.cnode_arg(t, cspace)?;
            installs[1] = Some((TcbSlot::CSpace, slot));
        }
        if vspace != 0 {
            let target = self.arg(t, vspace)?;
            if target.kind != Some(ObjectKind::VSpace) {
                return Err(Error::InvalidCapability);
            }
            installs[2] = Some((TcbSlot::VSpace, target.slot));
        }
        let mut buffer = None;
        if ipc_frame != 0 {
            if !ipc_va.is_multiple_of(0x1000) {
                return Err(Error::AlignmentError);
            }
            let target = self.arg(t, ipc_frame)?;
            let Cap::Object {
                kind: ObjectKind::Frame,
                base,
                rights,
                ..
            } = self.caps.get(target.slot)
            else {
                return Err(Error::IllegalOperation);
            };
            // The kernel reads and writes messages there: a frame of the replica's RAM that
            // the capability lets the thread both read and write.
            if !rights.contains(Rights::READ.union(Rights::WRITE)) || m.page(base).is_none() {
                return Err(Error::IllegalOperation);
            }
            installs[3] = Some((TcbSlot::IpcBuffer, target.slot));
            buffer = Some(base);
        }
        Ok(Configure { installs, buffer })
    }

    /// Performs TCB_Configure: each capability is copied into the thread's own slot.
    fn configure(
        &mut self,
        m: &mut impl Machine,
        target: ThreadId,
        Configure { installs, buffer }: Configure,
    ) -> Result<(), Error> {
        for (which, source) in installs.into_iter().flatten() {
            self.install(m, target, which, source)?;
        }
        if let Some(pa) = buffer {
            self.objects.tcbs[target].ipc_buffer = Some(pa);
        }
        Ok(())
    }

    /// Puts a copy of the capability in `source` into `target`'s own slot `which`, deleting
    /// what was there. Deleting it may destroy objects (it may have been the last capability
    /// to them), so the target and the source are checked again before the copy.
    fn install(
        &mut self,
        m: &mut impl Machine,
        target: ThreadId,
        which: TcbSlot,
        source: SlotId,
    ) -> Result<(), Error> {
        let expected = self.caps.get(source);
        let dest = target.own_slot(which);
        self.delete_slot(m, dest);
        if !self.objects.tcbs[target].live || self.caps.get(source) != expected {
            return Err(Error::IllegalOperation);
        }
        self.caps.copy(source, dest, Rights::ALL)
    }

    /// Decodes TCB_SetSchedParams (authority, MCP, priority, scheduling context, fault
    /// handler) for thread `target`.
    fn decode_sched_params(
        &self,
        t: ThreadId,
        target: ThreadId,
        args: &Args,
    ) -> Result<SchedParams, Error> {
        let auth = self.tcb_arg(t, args.get(0)?)?;
        let mcp = u8::try_from(args.get(1)?).map_err(|_| Error::RangeError)?;
        let priority = u8::try_from(args.get(2)?).map_err(|_| Error::RangeError)?;
        let o = &self.objects;
        let limit = o.tcbs[auth].mcp;
        if mcp > limit || priority > limit {
            return Err(Error::RangeError);
        }
        let sc = match args.get(3)? {
            0 => None,
            c => Some(self.sched_context_arg(t, c)?),
        };
        let fault = match args.get(4)? {
            0 => None,
            c => {
                let handler = self.arg(t, c)?;
                if handler.call_endpoint().is_none() {
                    return Err(Error::InvalidCapability);
                }
                Some(handler.slot)
            }
        };
        if let Some(sc) = sc {
            if o.sched.sched_context(sc).is_none() {
                return Err(Error::InvalidCapability); // not configured yet
            }
            if o.sc_ntfn[sc].is_some() {
                return Err(Error::IllegalOperation); // a notification's
            }
            if o.sched.own_sc(target) != Some(sc) && o.sched.serves(sc).is_some() {
                return Err(Error::IllegalOperation); // another thread's
            }
        }
        Ok(SchedParams {
            mcp,
            priority,
            sc,
            fault,
        })
    }

    /// Performs TCB_SetSchedParams on thread `target`.
    fn set_sched_params(
        &mut self,
        m: &mut impl Machine,
        target: ThreadId,
        params: SchedParams,
    ) -> Result<(), Error> {
        let o = &mut self.objects;
        match params.sc {
            Some(sc) if o.sched.own_sc(target) == Some(sc) => {}
            Some(sc) => {
                o.sched.unbind(target);
                o.sched
                    .bind(target, sc)
                    .map_err(|_| Error::IllegalOperation)?;
            }
            None => {
                o.sched.unbind(target);
            }
        }
        o.tcbs[target].mcp = params.mcp;
        let _ = o.sched.set_priority(target, params.priority);
        if let Some(source) = params.fault {
            self.install(m, target, TcbSlot::FaultHandler, source)?;
        }
        Ok(())
    }

    /// Restarts a thread that has an address space and a capability space to run in, as
    /// seL4's `restart`: a thread that is stopped or blocked (on a fault's reply too) gives up
    /// whatever it waited for and runs (a thread blocked in a system call makes it again);
    /// a running one is left alone.
    fn restart(&mut self, target: ThreadId) -> Result<(), Error> {
        let has_cspace = matches!(
            self.caps.get_ref(target.own_slot(TcbSlot::CSpace)),
            Cap::CNode { .. }
        );
        if self.vspace_of(target).is_none() || !has_cspace {
            return Err(Error::IllegalOperation);
        }
        if self.objects.threads.state(target) != ThreadState::Running {
            self.objects.suspend(target);
            self.objects.resume(target);
        }
        Ok(())
    }
}

impl Objects {
    /// Publishes `change` of thread `t`'s PD, if the boot program named the thread
    /// (TCB_SetStatusIndex); a thread without an index publishes nothing.
    pub(super) fn publish(&mut self, m: &mut impl Machine, t: ThreadId, change: PdChange) {
        let Some(p) = self.tcbs[t].published.as_mut() else {
            return;
        };
        let state = match change {
            PdChange::Running => PdState::Running,
            PdChange::Fault => {
                p.faults = p.faults.saturating_add(1);
                PdState::Faulted
            }
            PdChange::Suspended if p.state == PdState::Faulted as u32 => PdState::Faulted,
            PdChange::Suspended | PdChange::Gone => PdState::Stopped,
        };
        p.state = state as u32;
        m.publish_pd(u32::from(p.index), state, p.faults);
    }

    /// The last capability to thread `t` went: it stops, and nothing names it any more.
    pub(super) fn destroy_thread(&mut self, t: ThreadId) {
        for c in CoreId::all() {
            if self.current[c] == Some(t) {
                self.current[c] = None;
                self.kicks |= c.bit();
            }
            if self.loaded[c] == Some(t) {
                self.loaded[c] = None;
            }
        }
        self.suspend(t);
        if let Some(n) = self.tcbs[t].bound {
            self.ntfn_bound[n] = None;
        }
        for r in self.replies.values_mut() {
            if r.server == Some(t) {
                r.server = None;
            }
        }
        self.sched.remove_thread(t);
        self.tcbs[t] = Tcb::EMPTY;
    }
}
