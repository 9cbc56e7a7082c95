//! Interrupts: IRQ control (IRQControl_Get, which hands out a handler capability, and
//! IRQControl_WatchPendingWord, which has a cross-replica channel word signal a
//! notification) and IRQ handlers (IRQHandler_Ack, IRQHandler_SetNotification,
//! IRQHandler_Clear).

use atoll_abi::error::Error;
use atoll_abi::limits::PD_TIMER_INTID;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::label;

use super::invoke::Args;
use super::objects::Objects;
use super::{Kernel, Machine};
use crate::cap::{Cap, Rights};
use crate::id::{IrqId, NotificationId, SlotId, ThreadId};

/// An interrupt: whether a handler capability exists, and what it signals.
#[derive(Clone, Copy, Debug)]
pub(super) struct Irq {
    pub handler: bool,
    pub ntfn: Option<NotificationId>,
    pub badge: u64,
}

impl Irq {
    /// No handler, nothing to signal.
    pub const UNCLAIMED: Irq = Irq {
        handler: false,
        ntfn: None,
        badge: 0,
    };
}

/// A checked IRQ control invocation.
pub(super) enum IrqControlInvocation {
    /// IRQControl_Get: interrupt `irq` (edge-triggered if `edge`) gets a handler
    /// capability in `dest`, if the machine gives it to this replica.
    Get {
        irq: IrqId,
        edge: bool,
        dest: SlotId,
    },
    /// IRQControl_WatchPendingWord.
    Watch { word: u32, ntfn: NotificationId },
}

/// A checked IRQ handler invocation.
pub(super) enum IrqHandlerInvocation {
    /// IRQHandler_Ack: unmask the interrupt.
    Ack,
    /// IRQHandler_SetNotification: what it signals, and with which badge.
    SetNotification(NotificationId, u64),
    /// IRQHandler_Clear: it signals nothing.
    Clear,
}

impl Kernel {
    /// Decodes an IRQ control invocation by thread `t`.
    #[inline(always)]
    pub(super) fn decode_irq_control(
        &self,
        t: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<IrqControlInvocation, Error> {
        match op {
            label::IRQ_CONTROL_GET => {
                let number = args.get(0)?;
                let dest = self.dest_slot(t, args.get(2)?, args.get(3)?, args.get(4)?)?;
                let irq = usize::try_from(number)
                    .ok()
                    .and_then(IrqId::new)
                    .ok_or(Error::RangeError)?;
                if self.objects.irqs[irq].handler {
                    return Err(Error::RevokeFirst);
                }
                let edge = args.get(1)? != 0;
                Ok(IrqControlInvocation::Get { irq, edge, dest })
            }
            label::IRQ_CONTROL_WATCH_PENDING_WORD => {
                let word = u32::try_from(args.get(0)?).map_err(|_| Error::RangeError)?;
                // The kernel signals the notification for the other replica: the send right.
                let (ntfn, _) = self.notification_arg(t, args.get(1)?, Rights::WRITE)?;
                Ok(IrqControlInvocation::Watch { word, ntfn })
            }
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs an IRQ control invocation: the machine may refuse the interrupt, the slot
    /// may be full, the word may be watched already.
    #[inline(always)]
    pub(super) fn invoke_irq_control(
        &mut self,
        m: &mut impl Machine,
        request: IrqControlInvocation,
    ) -> Result<(), Error> {
        match request {
            IrqControlInvocation::Get { irq, edge, dest } => {
                if !m.claim_irq(irq.intid(), edge) {
                    return Err(Error::RangeError);
                }
                self.caps.insert_original(
                    dest,
                    Cap::Object {
                        kind: ObjectKind::IrqHandler,
                        base: u64::from(irq.intid()),
                        size_bits: 0,
                        rights: Rights::ALL,
                        badge: 0,
                        data: irq.data(),
                    },
                )?;
                self.objects.irqs[irq].handler = true;
                Ok(())
            }
            IrqControlInvocation::Watch { word, ntfn } => self.watch(m, word, ntfn),
        }
    }

    /// Decodes an invocation of an interrupt's handler by thread `t`.
    #[inline(always)]
    pub(super) fn decode_irq_handler(
        &self,
        t: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<IrqHandlerInvocation, Error> {
        match op {
            label::IRQ_HANDLER_ACK => Ok(IrqHandlerInvocation::Ack),
            label::IRQ_HANDLER_SET_NOTIFICATION => {
                // The interrupt signals it: the send right (as seL4).
                let (n, badge) = self.notification_arg(t, args.get(0)?, Rights::WRITE)?;
                Ok(IrqHandlerInvocation::SetNotification(n, badge))
            }
            label::IRQ_HANDLER_CLEAR => Ok(IrqHandlerInvocation::Clear),
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs an invocation of the handler of interrupt `irq` by thread `t`.
    #[inline(always)]
    pub(super) fn invoke_irq_handler(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        irq: IrqId,
        request: IrqHandlerInvocation,
    ) {
        let intid = irq.intid();
        let entry = &mut self.objects.irqs[irq];
        match request {
            IrqHandlerInvocation::Ack => {
                if intid == PD_TIMER_INTID {
                    self.objects.pd_timer_owner = Some(t);
                }
                m.set_irq_enabled(intid, true);
            }
            IrqHandlerInvocation::SetNotification(n, badge) => {
                entry.ntfn = Some(n);
                entry.badge = badge;
                m.set_irq_enabled(intid, true);
            }
            IrqHandlerInvocation::Clear => {
                entry.ntfn = None;
                if intid == PD_TIMER_INTID {
                    self.objects.pd_timer_owner = None;
                }
                m.set_irq_enabled(intid, false);
            }
        }
    }
}

impl Kernel {
    /// Whether `thread` may program its core's physical timer ([`PD_TIMER_INTID`]) from
    /// EL0: it is the thread that last acknowledged the timer's interrupt through its
    /// handler capability. Other PDs sharing its replica cannot touch the timer.
    #[inline]
    pub fn handles_pd_timer(&self, thread: ThreadId) -> bool {
        self.objects.pd_timer_owner == Some(thread)
    }
}

impl Objects {
    /// Thread `t` is going: it owns no interrupt any more.
    pub(super) fn disown_irqs(&mut self, t: ThreadId) {
        if self.pd_timer_owner == Some(t) {
            self.pd_timer_owner = None;
        }
    }

    /// The last capability to the handler of interrupt `irq` went: it signals nothing and
    /// stays masked.
    pub(super) fn destroy_irq_handler(&mut self, m: &mut impl Machine, irq: IrqId) {
        if irq.intid() == PD_TIMER_INTID {
            self.pd_timer_owner = None;
        }
        self.irqs[irq] = Irq::UNCLAIMED;
        m.set_irq_enabled(irq.intid(), false);
    }
}
