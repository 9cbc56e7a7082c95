//! Scheduling contexts and scheduling control: SchedControl_Configure (a context's budget
//! and period), SchedContext_Bind and SchedContext_UnbindObject (to and from a thread or
//! a notification).

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::label;

use super::invoke::Args;
use super::objects::Objects;
use super::{Kernel, Machine};
use crate::cap::Rights;
use crate::id::{CoreId, NotificationId, SchedContextId, ThreadId};

/// A checked SchedControl_Configure: a context's budget and period in timer units.
pub(super) struct SchedConfigure {
    sc: SchedContextId,
    budget: u64,
    period: u64,
    core: CoreId,
}

/// A checked invocation of a scheduling context.
pub(super) enum SchedContextInvocation {
    /// It becomes the thread's own context.
    BindThread(ThreadId),
    /// It becomes the notification's: a passive thread bound to the notification runs on
    /// it while it handles a signal.
    BindNotification(NotificationId),
    /// It stops being the thread's own context.
    UnbindThread(ThreadId),
    /// It stops being the notification's.
    UnbindNotification(NotificationId),
}

impl Kernel {
    /// Decodes SchedControl_Configure (scheduling context, budget and period in
    /// microseconds).
    #[inline(always)]
    pub(super) fn decode_sched_control(
        &self,
        m: &impl Machine,
        t: ThreadId,
        args: &Args,
    ) -> Result<SchedConfigure, Error> {
        let sc = self.sched_context_arg(t, args.get(0)?)?;
        let hz = m.counter_hz();
        let ticks = |us: u64| super::ticks_from_us(us, hz).unwrap_or(u64::MAX);
        let budget = ticks(args.get(1)?);
        let period = ticks(args.get(2)?);
        // The core is optional: the replica's first core unless given.
        let core = match args.get(3) {
            Ok(core) => self.core_arg(core)?,
            Err(_) => CoreId::first_of(self.objects.cores).ok_or(Error::InvalidArgument)?,
        };
        Ok(SchedConfigure {
            sc,
            budget,
            period,
            core,
        })
    }

    /// Performs SchedControl_Configure; the scheduler refuses parameters it cannot keep.
    #[inline(always)]
    pub(super) fn invoke_sched_control(&mut self, request: SchedConfigure) -> Result<(), Error> {
        let SchedConfigure {
            sc,
            budget,
            period,
            core,
        } = request;
        self.objects
            .sched
            .configure(sc, budget, period, core)
            .map_err(|_| Error::RangeError)
    }

    /// Decodes SchedContext_Bind and SchedContext_UnbindObject of context `sc` by thread
    /// `t`: the object (argument 0) is a TCB or a notification.
    #[inline(always)]
    pub(super) fn decode_sched_context(
        &self,
        t: ThreadId,
        sc: SchedContextId,
        op: u64,
        args: &Args,
    ) -> Result<SchedContextInvocation, Error> {
        let object = self.arg(t, args.get(0)?)?;
        let thread = match object.kind {
            Some(ObjectKind::Tcb) => {
                Some(ThreadId::from_data(object.data).ok_or(Error::InvalidCapability)?)
            }
            Some(ObjectKind::Notification) => None,
            _ => return Err(Error::InvalidCapability),
        };
        let o = &self.objects;
        match (op, thread) {
            (label::SCHED_CONTEXT_BIND, _) if o.sched.sched_context(sc).is_none() => {
                Err(Error::InvalidCapability) // not configured yet
            }
            (label::SCHED_CONTEXT_BIND, _)
                if o.sc_ntfn[sc].is_some() || o.sched.serves(sc).is_some() =>
            {
                Err(Error::IllegalOperation) // in use
            }
            (label::SCHED_CONTEXT_BIND, Some(thread)) => {
                Ok(SchedContextInvocation::BindThread(thread))
            }
            (label::SCHED_CONTEXT_BIND, None) => {
                // Binding a context to a notification decides who runs when it is
                // signalled: the receive right is needed (seL4 checks no right here).
                let n = object
                    .notification(Rights::READ)
                    .ok_or(Error::InvalidCapability)?;
                if o.ntfn_sc[n].is_some() {
                    return Err(Error::IllegalOperation);
                }
                Ok(SchedContextInvocation::BindNotification(n))
            }
            (label::SCHED_CONTEXT_UNBIND_OBJECT, Some(thread)) => {
                // A thread cannot take its own context away while it runs on it.
                if o.sched.own_sc(thread) != Some(sc) || thread == t {
                    return Err(Error::IllegalOperation);
                }
                Ok(SchedContextInvocation::UnbindThread(thread))
            }
            (label::SCHED_CONTEXT_UNBIND_OBJECT, None) => {
                let n = NotificationId::from_data(object.data).ok_or(Error::InvalidCapability)?;
                if o.sc_ntfn[sc] != Some(n) {
                    return Err(Error::IllegalOperation);
                }
                Ok(SchedContextInvocation::UnbindNotification(n))
            }
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs an invocation of context `sc`; the scheduler may refuse a thread's binding.
    #[inline(always)]
    pub(super) fn invoke_sched_context(
        &mut self,
        sc: SchedContextId,
        request: SchedContextInvocation,
    ) -> Result<(), Error> {
        let o = &mut self.objects;
        match request {
            SchedContextInvocation::BindThread(thread) => {
                return o
                    .sched
                    .bind(thread, sc)
                    .map_err(|_| Error::IllegalOperation);
            }
            SchedContextInvocation::BindNotification(n) => {
                o.ntfn_sc[n] = Some(sc);
                o.sc_ntfn[sc] = Some(n);
            }
            SchedContextInvocation::UnbindThread(thread) => {
                o.sched.unbind(thread);
            }
            SchedContextInvocation::UnbindNotification(n) => {
                o.sc_ntfn[sc] = None;
                o.ntfn_sc[n] = None;
                // A thread running on it while it handled a signal gives it up.
                if let Some(running) = o.sched.serves(sc) {
                    o.sched.reclaim(sc, running);
                }
            }
        }
        Ok(())
    }
}

impl Objects {
    /// The last capability to scheduling context `sc` went.
    pub(super) fn destroy_sched_context(&mut self, sc: SchedContextId) {
        self.sched.remove_sc(sc);
        if let Some(n) = self.sc_ntfn[sc].take() {
            self.ntfn_sc[n] = None;
        }
        self.sc_live[sc] = false;
    }
}
