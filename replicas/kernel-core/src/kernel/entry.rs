//! Kernel entries other than system calls (a thread's fault, a device interrupt, the
//! doorbell interrupt, the timer) and the delivery of a fault to the thread's handler.

use atoll_abi::syscall::MessageInfo;

use super::tcb::PdChange;
use super::{Kernel, Machine};
use crate::cap::Cap;
use crate::id::{EndpointId, IrqId, TcbSlot, ThreadId};
use atoll_abi::object::ObjectKind;

impl Kernel {
    /// The current thread took an exception that is not a system call: a memory access
    /// (`label` [`VM_FAULT`](atoll_abi::syscall::fault::VM_FAULT)) or another exception ([`USER_EXCEPTION`](atoll_abi::syscall::fault::USER_EXCEPTION)), with
    /// the message registers of that fault.
    pub fn user_fault(&mut self, m: &mut impl Machine, label: u64, mrs: [u64; 4]) {
        if let Some(t) = self.current() {
            self.fault(m, t, label, mrs);
        }
        self.objects.schedule();
    }

    /// Device interrupt `irq` arrived: its notification is signalled and the interrupt
    /// stays masked until the handler acknowledges it.
    pub fn interrupt(&mut self, m: &mut impl Machine, irq: u32) {
        m.set_irq_enabled(irq, false);
        if let Some(irq) = usize::try_from(irq).ok().and_then(IrqId::new) {
            let handler = self.objects.irqs[irq];
            if let (true, Some(n)) = (handler.handler, handler.ntfn) {
                self.objects.signal(n, handler.badge);
            }
        }
        self.objects.schedule();
    }

    /// The doorbell interrupt arrived (and was acknowledged): every watched cross-replica
    /// channel word is taken, and its bits signal its notification.
    pub fn doorbell(&mut self, m: &mut impl Machine) {
        for i in 0..self.objects.watches.count() {
            let Some(watch) = self.objects.watches.get(i) else {
                break;
            };
            if let Some(bits) = m.take_pending_word(watch.word)
                && bits != 0
            {
                self.objects.signal(watch.ntfn, bits);
            }
        }
        self.objects.schedule();
    }

    /// The core's timer fired: [`Kernel::enter`] charged the budget and released what was
    /// due; the core chooses again.
    pub fn timer(&mut self) {
        self.objects.schedule();
    }

    /// The fault handler a thread's own slot holds: the endpoint and the badge to send
    /// with (checked to have the rights seL4 requires when it was installed).
    fn fault_handler(&self, t: ThreadId) -> Option<(EndpointId, u64)> {
        match *self.caps.get_ref(t.own_slot(TcbSlot::FaultHandler)) {
            Cap::Object {
                kind: ObjectKind::Endpoint,
                data,
                badge,
                ..
            } => Some((EndpointId::from_data(data)?, badge)),
            _ => None,
        }
    }

    /// Thread `t` faulted: it calls its fault endpoint with the fault message, or stops if
    /// it has none (or faulted while sending a fault). Either way a named thread's PD is
    /// published `faulted`, its count one higher.
    pub(super) fn fault(&mut self, m: &mut impl Machine, t: ThreadId, label: u64, mrs: [u64; 4]) {
        self.objects.unchanged = false;
        self.objects.publish(m, t, PdChange::Fault);
        let handler = self.fault_handler(t);
        let tcb = &mut self.objects.tcbs[t];
        let (Some((ep, badge)), 0) = (handler, tcb.fault_label) else {
            m.unhandled_fault(t, label, &mrs);
            self.objects.suspend(t);
            return;
        };
        tcb.fault_label = label;
        tcb.fault_mrs = mrs;
        let info = MessageInfo::new(label, 4);
        self.objects.send(m, t, ep, badge, info, true, true);
    }
}
