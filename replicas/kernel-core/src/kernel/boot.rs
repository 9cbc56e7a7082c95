//! Boot: the initialiser built over boot memory, with the capabilities of
//! `syscall::initial`, and original capabilities placed by the boot code.

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;

use super::{InitialiserBoot, Kernel};
use crate::cap::{Cap, NO_DATA, Rights};
use crate::id::{CoreId, SlotId, TCB_SLOTS_BASE, TcbSlot, ThreadId};

impl Kernel {
    /// Boot: builds the initialiser over boot memory the caller prepared (zeroed, the
    /// address space's tables already built in it), gives it the capabilities of
    /// `syscall::initial` (its root CNode, which owns table slots from 0, its TCB,
    /// scheduling context, address space and IPC buffer, IRQ and scheduling control, and
    /// `untyped` from `FIRST_UNTYPED` on) and starts it. Returns its thread.
    pub fn boot_initialiser(
        &mut self,
        b: &InitialiserBoot,
        untyped: impl IntoIterator<Item = Cap>,
    ) -> Result<ThreadId, Error> {
        use atoll_abi::syscall::initial;
        let radix = initial::ROOT_RADIX;
        if (1usize << radix) > TCB_SLOTS_BASE {
            return Err(Error::RangeError);
        }
        let slot = |s: u64| SlotId::from_data(s).ok_or(Error::RangeError);
        let cspace = Cap::CNode {
            base: b.cnode,
            radix,
            first: 0,
            guard: 0,
            guard_bits: 64 - radix,
        };
        self.caps.insert_original(slot(initial::CNODE)?, cspace)?;
        let objects = [
            (initial::TCB, ObjectKind::Tcb, b.tcb, 11),
            (
                initial::SCHED_CONTEXT,
                ObjectKind::SchedContext,
                b.sched_context,
                8,
            ),
            (initial::VSPACE, ObjectKind::VSpace, b.vspace, 12),
            (
                initial::IPC_BUFFER_FRAME,
                ObjectKind::Frame,
                b.ipc_buffer,
                12,
            ),
            (initial::IRQ_CONTROL, ObjectKind::IrqControl, 0, 0),
            (initial::SCHED_CONTROL, ObjectKind::SchedControl, 0, 0),
            (initial::SMC, ObjectKind::Smc, 0, 0),
            (initial::DOMAIN_SET, ObjectKind::DomainSet, 0, 0),
        ];
        for (s, kind, base, size_bits) in objects {
            let indexed = !(kind == ObjectKind::Frame || kind.is_authority());
            let cap = Cap::Object {
                kind,
                base,
                size_bits,
                rights: Rights::ALL,
                badge: 0,
                data: if indexed { NO_DATA } else { 0 },
            };
            self.caps.insert_original(slot(s)?, cap)?;
            self.init_object(slot(s)?)?;
        }
        let mut untyped = untyped.into_iter();
        for (s, cap) in (initial::FIRST_UNTYPED..initial::FIRST_FREE).zip(&mut untyped) {
            self.caps.insert_original(slot(s)?, cap)?;
        }
        if untyped.next().is_some() {
            return Err(Error::RangeError);
        }

        let t = self.object_index(slot(initial::TCB)?, ObjectKind::Tcb, ThreadId::from_data)?;
        let sc = self.object_index(
            slot(initial::SCHED_CONTEXT)?,
            ObjectKind::SchedContext,
            crate::id::SchedContextId::from_data,
        )?;
        // The thread's own copies of its spaces and IPC buffer, as TCB_Configure makes.
        for (which, from) in [
            (TcbSlot::CSpace, initial::CNODE),
            (TcbSlot::VSpace, initial::VSPACE),
            (TcbSlot::IpcBuffer, initial::IPC_BUFFER_FRAME),
        ] {
            self.caps
                .copy(slot(from)?, t.own_slot(which), Rights::ALL)?;
        }
        let o = &mut self.objects;
        let core = CoreId::first_of(b.cores).ok_or(Error::InvalidArgument)?;
        o.cores = b.cores;
        o.set_core(core);
        o.sched.set_min_budget(b.min_budget);
        o.sched
            .configure(sc, b.budget, b.budget, core)
            .map_err(|_| Error::InvalidArgument)?;
        let tcb = &mut o.tcbs[t];
        tcb.ipc_buffer = Some(b.ipc_buffer);
        tcb.mcp = 255;
        tcb.ctx = b.ctx;
        o.sched
            .set_priority(t, b.priority)
            .map_err(|_| Error::InvalidArgument)?;
        o.sched.bind(t, sc).map_err(|_| Error::InvalidArgument)?;
        o.resume(t);
        o.schedule();
        Ok(t)
    }

    /// Boot and tests: places an original capability in table slot `slot` (a slot of the
    /// initialiser's root CNode).
    pub fn boot_insert(&mut self, slot: SlotId, cap: Cap) -> Result<(), Error> {
        self.caps.insert_original(slot, cap)
    }

    /// The table id of the object the capability in `slot` names, if it is of `want`.
    fn object_index<I>(
        &self,
        slot: SlotId,
        want: ObjectKind,
        id: fn(u64) -> Option<I>,
    ) -> Result<I, Error> {
        match self.caps.get(slot) {
            Cap::Object { kind, data, .. } if kind == want => {
                id(data).ok_or(Error::InvalidCapability)
            }
            _ => Err(Error::InvalidCapability),
        }
    }
}
