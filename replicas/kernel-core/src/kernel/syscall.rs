//! System calls: [`Kernel::syscall`] maps each system call to its handler, in one place
//! (the fast path, `fastpath.rs`, serves the common cases first), and the handlers of
//! the calls that send, receive and reply. A Send or Call on a capability that is not an
//! endpoint, notification or doorbell is an invocation (`invoke.rs`).

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, fault};

use super::LookupCache;
use super::{Kernel, Machine};
use crate::cap::{Cap, Rights};
use crate::id::{EndpointId, NotificationId, ReplyId, SlotId, TableIndex, TcbSlot, ThreadId};

/// A capability a system call named, as [`Kernel::resolve`] reads it.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub slot: SlotId,
    /// The object's kind; `None` for CNode and untyped capabilities.
    pub kind: Option<ObjectKind>,
    pub rights: Rights,
    pub badge: u64,
    pub data: u64,
}

impl Target {
    /// The endpoint named, if the capability is one with `right`.
    pub(super) fn endpoint(&self, right: Rights) -> Option<EndpointId> {
        (self.kind == Some(ObjectKind::Endpoint) && self.rights.contains(right))
            .then(|| EndpointId::from_data(self.data))
            .flatten()
    }

    /// The endpoint named, if the capability may call it: send, and have the caller
    /// replied to (grant or grant-reply; seL4's rule for a call and for a fault handler).
    pub(super) fn call_endpoint(&self) -> Option<EndpointId> {
        self.endpoint(Rights::WRITE)
            .filter(|_| self.rights.any_of(Rights::GRANT.union(Rights::GRANT_REPLY)))
    }

    /// The notification named, if the capability is one with `right`.
    pub(super) fn notification(&self, right: Rights) -> Option<NotificationId> {
        (self.kind == Some(ObjectKind::Notification) && self.rights.contains(right))
            .then(|| NotificationId::from_data(self.data))
            .flatten()
    }

    /// The reply object named, if the capability is one.
    pub(super) fn reply(&self) -> Option<ReplyId> {
        (self.kind == Some(ObjectKind::Reply))
            .then(|| ReplyId::from_data(self.data))
            .flatten()
    }
}

impl Kernel {
    /// The current thread made a system call (number in `x7`); its registers are in its
    /// context.
    pub fn syscall(&mut self, m: &mut impl Machine) {
        let Some(t) = self.current() else {
            return;
        };
        // Only the registers the calls read, not the whole context.
        let ctx = &self.objects.tcbs[t].ctx;
        let (x0, x6, x7, x8) = (ctx.x[0], ctx.x[6], ctx.x[7], ctx.x[8]);
        let (pc, sp) = (ctx.pc, ctx.sp);
        let number = x7 as i64;
        if self.fastpath_on() && self.fastpath(t, number) {
            return;
        }
        match number {
            syscall::CALL => self.sys_send(m, t, x0, true, true),
            syscall::SEND => self.sys_send(m, t, x0, true, false),
            syscall::NB_SEND => self.sys_send(m, t, x0, false, false),
            syscall::RECV => self.sys_recv(m, t, x0, x6, true),
            syscall::NB_RECV => self.sys_recv(m, t, x0, x6, false),
            syscall::WAIT => self.sys_recv(m, t, x0, 0, true),
            syscall::NB_WAIT => self.sys_recv(m, t, x0, 0, false),
            syscall::REPLY_RECV => {
                if self.sys_reply(m, t, x6) {
                    self.sys_recv(m, t, x0, x6, true);
                }
            }
            syscall::NB_SEND_RECV => {
                self.sys_send(m, t, x8, false, false);
                self.sys_recv(m, t, x0, x6, true);
            }
            syscall::NB_SEND_WAIT => {
                self.sys_send(m, t, x8, false, false);
                self.sys_recv(m, t, x0, 0, true);
            }
            syscall::YIELD => {
                let _ = self.objects.sched.yield_now(t);
            }
            syscall::DEBUG_PUT_CHAR => m.put_char(t, x0 as u8),
            syscall::DEBUG_HALT => self.objects.suspend(t),
            syscall::REPLICA_EPOCHS => {
                let (count, epochs) = m.replica_epochs();
                let ctx = &mut self.objects.tcbs[t].ctx;
                if let Some(x0) = ctx.x.first_mut() {
                    *x0 = count as u64;
                }
                let registers = ctx.x.iter_mut().skip(2).take(4);
                for (register, pair) in registers.zip(epochs.chunks(2)) {
                    let low = u64::from(pair.first().copied().unwrap_or(0));
                    let high = u64::from(pair.get(1).copied().unwrap_or(0));
                    *register = low | (high << 32);
                }
            }
            _ => self.fault(m, t, fault::UNKNOWN_SYSCALL, [pc, sp, x7, 0]),
        }
        self.objects.schedule();
    }

    /// Resolves a capability address in thread `t`'s space to a non-empty slot, reading
    /// only the fields the IPC paths use (a whole capability is copied only to invoke it).
    ///
    /// One step for the common case: each thread keeps the last CNode level its lookups
    /// ended in (for a PD, its Microkit CNode under its root), and while the capability
    /// table has not changed since, an address with the same bits above that level's index
    /// is that level's first slot plus its low bits, as the full walk would find.
    #[inline(always)]
    pub(super) fn resolve(&mut self, t: ThreadId, cptr: u64) -> Option<Target> {
        let cache = self.lookup_cache[t];
        let generation = self.caps.generation();
        let leaf = cache.leaf;
        let slot = if cache.generation == generation && cptr.wrapping_shr(leaf.radix) == leaf.high {
            // `radix` is 1 to 63 in a kept leaf: the mask keeps the index bits.
            let index = cptr & u64::MAX.wrapping_shr(64u32.wrapping_sub(leaf.radix));
            let slot = leaf
                .first
                .checked_add(index as usize)
                .and_then(SlotId::from_index)?;
            #[cfg(test)]
            {
                let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
                assert_eq!(Ok(slot), self.caps.lookup_from(root, cptr, 64), "{cptr:#x}");
            }
            slot
        } else {
            self.resolve_slow(t, cptr)?
        };
        self.target_at(slot)
    }

    /// [`Kernel::resolve`] by the full walk alone, keeping nothing (the invocations'
    /// capability arguments).
    pub(super) fn resolve_walk(&self, t: ThreadId, cptr: u64) -> Option<Target> {
        let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
        let slot = self.caps.lookup_from(root, cptr, 64).ok()?;
        self.target_at(slot)
    }

    /// What the IPC paths read of the capability in `slot`; `None` if it is empty.
    #[inline(always)]
    fn target_at(&self, slot: SlotId) -> Option<Target> {
        Some(match *self.caps.get_ref(slot) {
            Cap::Null => return None,
            Cap::Object {
                kind,
                rights,
                badge,
                data,
                ..
            } => Target {
                slot,
                kind: Some(kind),
                rights,
                badge,
                data,
            },
            Cap::CNode { .. } | Cap::Untyped { .. } => Target {
                slot,
                kind: None,
                rights: Rights::NONE,
                badge: 0,
                data: 0,
            },
        })
    }

    /// [`Kernel::resolve`]'s full walk, which keeps the level it ended in for the thread's
    /// next lookups.
    #[inline(never)]
    fn resolve_slow(&mut self, t: ThreadId, cptr: u64) -> Option<SlotId> {
        let root = self.caps.get_ref(t.own_slot(TcbSlot::CSpace));
        let (slot, leaf) = self.caps.lookup_leaf(root, cptr).ok()?;
        if let Some(leaf) = leaf {
            self.lookup_cache[t] = LookupCache {
                generation: self.caps.generation(),
                leaf,
            };
        }
        Some(slot)
    }

    fn sys_send(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        cptr: u64,
        blocking: bool,
        call: bool,
    ) {
        let Some(target) = self.resolve(t, cptr) else {
            if blocking || call {
                self.cap_fault(m, t, cptr);
            }
            return;
        };
        let info = MessageInfo(self.objects.tcbs[t].ctx.x[1]);
        match target.kind {
            Some(ObjectKind::Endpoint) => {
                // A call needs a right to be replied to (seL4 leaves a caller without one
                // blocked for good; Atoll faults it).
                let ep = if call {
                    target.call_endpoint()
                } else {
                    target.endpoint(Rights::WRITE)
                };
                match ep {
                    Some(ep) => self
                        .objects
                        .send(m, t, ep, target.badge, info, blocking, call),
                    None => self.cap_fault(m, t, cptr),
                }
            }
            Some(ObjectKind::Notification) => match target.notification(Rights::WRITE) {
                Some(n) => {
                    self.objects.signal(n, target.badge);
                    if call {
                        // A call answers whether the signal went through (it always does
                        // within a replica), as a call on a doorbell does.
                        self.objects.tcbs[t].ctx.x[1] = 0;
                    }
                }
                None if blocking || call => self.cap_fault(m, t, cptr),
                None => {}
            },
            // Sending on a reply object answers the call it holds, as in seL4 MCS; the
            // sender goes on running (a reply never blocks).
            Some(ObjectKind::Reply) if !call => {
                if let Some(r) = target.reply() {
                    self.objects.reply(m, t, r, info);
                }
            }
            Some(ObjectKind::Doorbell)
                if !(call && info.label() == syscall::label::DOORBELL_CONFIGURE) =>
            {
                if !target.rights.contains(Rights::WRITE) {
                    if blocking || call {
                        self.cap_fault(m, t, cptr);
                    }
                    return;
                }
                let delivered = self.objects.ring(m, target.data, target.badge);
                if call {
                    self.objects.tcbs[t].ctx.x[1] = if delivered {
                        0
                    } else {
                        MessageInfo::new(Error::IllegalOperation as u64, 0).0
                    };
                }
            }
            _ => self.sys_invoke(m, t, target, info, call),
        }
    }

    /// An invocation made by Send or Call on a capability that is not an endpoint,
    /// notification or doorbell, and (for a call) its answer in the caller's registers
    /// and IPC buffer. Out of line, so that the IPC paths of `sys_send` keep a small frame.
    #[inline(never)]
    fn sys_invoke(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        target: Target,
        info: MessageInfo,
        call: bool,
    ) {
        self.objects.unchanged = false;
        let cap = self.caps.get(target.slot);
        let result = self.invoke(m, t, target.slot, cap, info);
        // The invoker may have deleted itself.
        if self.objects.tcbs[t].live && call {
            let (label, len, results) = match result {
                Ok(r) => (0, r.len, r.mrs),
                Err(e) => (e as u64, 0, [0; 8]),
            };
            let ctx = &mut self.objects.tcbs[t].ctx;
            ctx.x[0] = 0;
            ctx.x[1] = MessageInfo::new(label, len as u64).0;
            for r in ctx.x.iter_mut().skip(2).take(4) {
                *r = 0;
            }
            // The first four in x2-x5, the rest (if any) in its IPC buffer.
            for (i, &value) in results.iter().enumerate().take(len) {
                self.objects.set_mr(m, t, i, value);
            }
        }
    }

    fn sys_recv(
        &mut self,
        m: &mut impl Machine,
        t: ThreadId,
        cptr: u64,
        reply_cptr: u64,
        blocking: bool,
    ) {
        let Some(target) = self.resolve(t, cptr) else {
            self.cap_fault(m, t, cptr);
            return;
        };
        if let Some(ep) = target.endpoint(Rights::READ) {
            self.objects.tcbs[t].recv_reply = self.resolve(t, reply_cptr).and_then(|r| r.reply());
            self.objects.recv(m, t, ep, blocking);
        } else if let Some(n) = target.notification(Rights::READ)
            // Only its own thread waits on a bound notification (as in seL4).
            && self.objects.ntfn_bound[n].is_none_or(|b| b == t)
        {
            self.objects.wait(t, n, blocking);
        } else {
            self.cap_fault(m, t, cptr);
        }
    }

    /// Replies through the reply object at `reply_cptr`; `false` if the thread faulted.
    fn sys_reply(&mut self, m: &mut impl Machine, t: ThreadId, reply_cptr: u64) -> bool {
        let target = self.resolve(t, reply_cptr);
        if let Some(r) = target.and_then(|r| r.reply()) {
            let info = MessageInfo(self.objects.tcbs[t].ctx.x[1]);
            self.objects.reply(m, t, r, info);
            return true;
        }
        // Replying through an empty slot is a no-op, as in seL4 (nobody called).
        if target.is_none() && reply_cptr == 0 {
            return true;
        }
        self.cap_fault(m, t, reply_cptr);
        false
    }

    /// A capability lookup for system call `x7` of thread `t` failed on `cptr`.
    fn cap_fault(&mut self, m: &mut impl Machine, t: ThreadId, cptr: u64) {
        let ctx = &self.objects.tcbs[t].ctx;
        let mrs = [ctx.pc, cptr, ctx.x[7], 0];
        self.fault(m, t, fault::CAP_FAULT, mrs);
    }
}
