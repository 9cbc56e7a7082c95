//! Invocations: operations on capabilities that are not endpoints, notifications or
//! doorbells rung (retype, CNode operations, thread control, mapping, interrupts,
//! scheduling, doorbell set-up). [`Kernel::invoke`] sends each to its object's module,
//! which decodes it, as seL4's `decode…Invocation` does (every argument and capability
//! checked for its kind and for the rights seL4 requires, into a typed request; nothing
//! changes), then performs it, as seL4's `invoke…` does. `docs/kernel.md` lists the rights,
//! and where Atoll's rule is stricter than seL4's.
//!
//! Also here: the helpers every decoder uses to read an invocation's arguments and the
//! capabilities they name.

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, ipc_buffer, label};

use super::objects::Objects;
use super::{Kernel, Machine, Target};
use crate::cap::{Cap, Rights};
use crate::id::{
    CoreId, IrqId, NotificationId, SchedContextId, SlotId, TcbSlot, ThreadId, VSpaceId,
};

/// What an invocation replies with (beyond success).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Answer {
    pub len: usize,
    /// The reply's message registers: the first four travel in `x2`–`x5`, the rest in
    /// the caller's IPC buffer.
    pub mrs: [u64; 8],
}

impl Answer {
    /// Success and nothing more.
    pub const EMPTY: Answer = Answer {
        len: 0,
        mrs: [0; 8],
    };
}

/// An invocation's arguments: its first message registers.
pub(super) struct Args {
    values: [u64; 8],
    len: usize,
}

impl Args {
    /// Argument `i`, or `TruncatedMessage` if the message is shorter.
    pub fn get(&self, i: usize) -> Result<u64, Error> {
        if i < self.len {
            self.values.get(i).copied().ok_or(Error::TruncatedMessage)
        } else {
            Err(Error::TruncatedMessage)
        }
    }

    /// Argument `i`, 0 when the message is shorter.
    pub fn or_zero(&self, i: usize) -> u64 {
        self.get(i).unwrap_or(0)
    }

    /// The arguments of thread `t`'s message `info`: its first message registers, from
    /// its registers and then from its IPC buffer (0 without one), whose page is looked
    /// up once.
    fn read(objects: &Objects, m: &mut impl Machine, t: ThreadId, info: MessageInfo) -> Args {
        let tcb = &objects.tcbs[t];
        let len = info.length();
        let [_, _, a, b, c, d, ..] = tcb.ctx.x;
        let mut values = [a, b, c, d, 0, 0, 0, 0];
        if len > syscall::REGISTER_MESSAGE_REGISTERS
            && let Some(page) = tcb.ipc_buffer.and_then(|pa| m.page(pa))
        {
            for (i, v) in values
                .iter_mut()
                .enumerate()
                .skip(syscall::REGISTER_MESSAGE_REGISTERS)
            {
                *v = page
                    .get(ipc_buffer::MR0.saturating_add(i))
                    .copied()
                    .unwrap_or(0);
            }
        }
        Args { values, len }
    }
}

/// Whether invoking `cap` may change what a thread on another core runs with: its
/// registers or state (TCB), its capabilities and the objects they name (CNode), its
/// scheduling (scheduling contexts and control, domains). Those invocations stop the
/// replica's other cores first (`Kernel::stall_others`).
fn may_change_other_threads(cap: &Cap) -> bool {
    match cap {
        Cap::CNode { .. } => true,
        Cap::Object { kind, .. } => matches!(
            kind,
            ObjectKind::Tcb
                | ObjectKind::SchedContext
                | ObjectKind::SchedControl
                | ObjectKind::DomainSet
        ),
        _ => false,
    }
}

impl Kernel {
    /// A core argument: a core of this replica.
    pub(super) fn core_arg(&self, value: u64) -> Result<CoreId, Error> {
        usize::try_from(value)
            .ok()
            .and_then(CoreId::new)
            .filter(|c| self.objects.cores & c.bit() != 0)
            .ok_or(Error::InvalidArgument)
    }

    /// Performs the invocation `info.label()` on the capability `cap` in `slot` for thread
    /// `t`: the object's decoder checks it, and only a request it accepts is performed.
    /// Kept out of the system-call handler, whose IPC paths it would otherwise slow with
    /// the registers it needs.
    #[inline(never)]
    pub(super) fn invoke(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        slot: SlotId,
        cap: Cap,
        info: MessageInfo,
    ) -> Result<Answer, Error> {
        let args = Args::read(&self.objects, m, t, info);
        let op = info.label();
        if may_change_other_threads(&cap) && self.objects.cores & !self.objects.core().bit() != 0 {
            self.stall_others(m);
        }
        match cap {
            Cap::Untyped { .. } if op == label::UNTYPED_RETYPE => {
                let request = self.decode_retype(t, slot, &args)?;
                self.invoke_retype(m, request)?;
            }
            Cap::CNode { .. } => {
                let request = self.decode_cnode(t, cap, op, &args)?;
                self.invoke_cnode(m, request)?;
            }
            Cap::Object {
                kind,
                data,
                base,
                size_bits,
                rights,
                badge,
            } => match kind {
                ObjectKind::Tcb => {
                    let target = ThreadId::from_data(data).ok_or(Error::InvalidCapability)?;
                    let request = self.decode_tcb(m, t, target, op, &args)?;
                    return self.invoke_tcb(m, target, request);
                }
                ObjectKind::SchedControl if op == label::SCHED_CONTROL_CONFIGURE => {
                    let request = self.decode_sched_control(m, t, &args)?;
                    self.invoke_sched_control(request)?;
                }
                ObjectKind::SchedContext => {
                    let sc = SchedContextId::from_data(data).ok_or(Error::InvalidCapability)?;
                    let request = self.decode_sched_context(t, sc, op, &args)?;
                    self.invoke_sched_context(sc, request)?;
                }
                ObjectKind::PageTable => {
                    let request = self.decode_page_table(t, slot, data, op, &args)?;
                    self.invoke_page_table(m, slot, base, request)?;
                }
                ObjectKind::Frame => {
                    let request = self.decode_frame(t, data, rights, op, &args)?;
                    return self.invoke_frame(m, slot, (base, size_bits), request);
                }
                ObjectKind::IrqControl => {
                    let request = self.decode_irq_control(t, op, &args)?;
                    self.invoke_irq_control(m, request)?;
                }
                ObjectKind::IrqHandler => {
                    let irq = IrqId::from_data(data).ok_or(Error::InvalidCapability)?;
                    let request = self.decode_irq_handler(t, op, &args)?;
                    self.invoke_irq_handler(m, t, irq, request);
                }
                ObjectKind::DomainSet => {
                    let request = self.decode_domain(m, t, op, &args)?;
                    self.invoke_domain(request)?;
                }
                ObjectKind::Smc => {
                    let regs = Self::decode_smc(op, badge, &args)?;
                    return Ok(Self::invoke_smc(m, regs));
                }
                ObjectKind::Doorbell if op == label::DOORBELL_CONFIGURE => {
                    let (d, bell) = self.decode_doorbell(data, rights, badge, &args)?;
                    self.invoke_doorbell(d, bell);
                }
                _ => return Err(Error::IllegalOperation),
            },
            _ => return Err(Error::IllegalOperation),
        }
        Ok(Answer::EMPTY)
    }

    // ----- capability arguments ------------------------------------------------------

    /// A capability argument in `t`'s space (`FailedLookup` if the slot is empty).
    pub(super) fn arg(&self, t: ThreadId, cptr: u64) -> Result<Target, Error> {
        self.resolve_walk(t, cptr).ok_or(Error::FailedLookup)
    }

    /// An argument naming an object of `kind`: its id.
    fn object_arg<I>(
        &self,
        t: ThreadId,
        cptr: u64,
        kind: ObjectKind,
        id: fn(u64) -> Option<I>,
    ) -> Result<I, Error> {
        let target = self.arg(t, cptr)?;
        if target.kind != Some(kind) {
            return Err(Error::InvalidCapability);
        }
        id(target.data).ok_or(Error::InvalidCapability)
    }

    /// A scheduling-context argument.
    pub(super) fn sched_context_arg(
        &self,
        t: ThreadId,
        cptr: u64,
    ) -> Result<SchedContextId, Error> {
        self.object_arg(t, cptr, ObjectKind::SchedContext, SchedContextId::from_data)
    }

    /// A TCB argument.
    pub(super) fn tcb_arg(&self, t: ThreadId, cptr: u64) -> Result<ThreadId, Error> {
        self.object_arg(t, cptr, ObjectKind::Tcb, ThreadId::from_data)
    }

    /// An address-space argument.
    pub(super) fn vspace_arg(&self, t: ThreadId, cptr: u64) -> Result<VSpaceId, Error> {
        self.object_arg(t, cptr, ObjectKind::VSpace, VSpaceId::from_data)
    }

    /// A notification argument with `right`; `InvalidCapability` without it.
    pub(super) fn notification_arg(
        &self,
        t: ThreadId,
        cptr: u64,
        right: Rights,
    ) -> Result<(NotificationId, u64), Error> {
        let target = self.arg(t, cptr)?;
        let n = target.notification(right).ok_or(Error::InvalidCapability)?;
        Ok((n, target.badge))
    }

    /// A CNode capability argument.
    pub(super) fn cnode_arg(&self, t: ThreadId, cptr: u64) -> Result<(SlotId, Cap), Error> {
        let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
        let slot = self
            .caps
            .lookup_from(root, cptr, 64)
            .map_err(|_| Error::FailedLookup)?;
        match self.caps.get(slot) {
            cap @ Cap::CNode { .. } => Ok((slot, cap)),
            Cap::Null => Err(Error::FailedLookup),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// A slot named by (root CNode, index, depth).
    pub(super) fn slot_in(&self, root: &Cap, index: u64, depth: u64) -> Result<SlotId, Error> {
        self.caps
            .lookup_from(root, index, u8::try_from(depth.min(64)).unwrap_or(64))
            .map_err(|_| Error::FailedLookup)
    }

    /// A slot named by (root CNode in `t`'s space, index, depth).
    pub(super) fn dest_slot(
        &self,
        t: ThreadId,
        root: u64,
        index: u64,
        depth: u64,
    ) -> Result<SlotId, Error> {
        let (_, root) = self.cnode_arg(t, root)?;
        self.slot_in(&root, index, depth)
    }
}
