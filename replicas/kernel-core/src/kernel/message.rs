//! Messages: a thread's message registers (the first four in registers, the rest in its
//! IPC buffer) and the copy of a message from sender to receiver.

use atoll_abi::syscall::{self, MessageInfo, ipc_buffer};

use super::objects::Objects;
use super::{Context, Machine};
use crate::id::ThreadId;

/// Writes the first `count` of `mrs` into the register message registers (`x2`–`x5`) and
/// zeroes the rest, so a receiver never sees registers the sender did not send. Written out
/// element by element: a variable-length copy would call `memcpy` on the IPC path.
fn set_registers(ctx: &mut Context, mrs: [u64; syscall::REGISTER_MESSAGE_REGISTERS], count: usize) {
    let [a, b, c, d] = mrs;
    ctx.x[2] = if count > 0 { a } else { 0 };
    ctx.x[3] = if count > 1 { b } else { 0 };
    ctx.x[4] = if count > 2 { c } else { 0 };
    ctx.x[5] = if count > 3 { d } else { 0 };
}

impl Objects {
    /// Message register `i` of thread `t`. Always inlined, as [`Objects::set_mr`] is: in
    /// `transfer`, a call would make it save and restore the callee-saved registers on
    /// every message, short ones included.
    #[inline(always)]
    pub fn mr(&mut self, m: &mut impl Machine, t: ThreadId, i: usize) -> u64 {
        let tcb = &self.tcbs[t];
        if let Some(&v) = tcb
            .ctx
            .x
            .get(2..2 + syscall::REGISTER_MESSAGE_REGISTERS)
            .and_then(|r| r.get(i))
        {
            return v;
        }
        let Some(pa) = tcb.ipc_buffer else {
            return 0;
        };
        m.page(pa)
            .and_then(|p| p.get(ipc_buffer::MR0.saturating_add(i)).copied())
            .unwrap_or(0)
    }

    /// Sets message register `i` of thread `t` (always inlined, as [`Objects::mr`] is).
    #[inline(always)]
    pub fn set_mr(&mut self, m: &mut impl Machine, t: ThreadId, i: usize, value: u64) {
        let tcb = &mut self.tcbs[t];
        if let Some(r) = tcb
            .ctx
            .x
            .get_mut(2..2 + syscall::REGISTER_MESSAGE_REGISTERS)
            .and_then(|r| r.get_mut(i))
        {
            *r = value;
            return;
        }
        if let Some(pa) = tcb.ipc_buffer
            && let Some(word) = m
                .page(pa)
                .and_then(|p| p.get_mut(ipc_buffer::MR0.saturating_add(i)))
        {
            *word = value;
        }
    }

    /// Copies a message from `from` to `to`: the badge in `x0`, the tag in `x1`, and the
    /// message registers (past the first four only when both have an IPC buffer).
    ///
    /// The common message, one that fits the registers from a thread that is not sending
    /// a fault, is copied inline; any other goes through [`Objects::transfer_any`].
    #[inline(always)]
    pub fn transfer(
        &mut self,
        m: &mut impl Machine,
        from: ThreadId,
        to: ThreadId,
        badge: u64,
        info: MessageInfo,
    ) {
        let f = &self.tcbs[from];
        let len = info.length();
        if f.fault_label != 0 || len > syscall::REGISTER_MESSAGE_REGISTERS {
            return self.transfer_any(m, from, to, badge, info);
        }
        let sent = [f.ctx.x[2], f.ctx.x[3], f.ctx.x[4], f.ctx.x[5]];
        let ctx = &mut self.tcbs[to].ctx;
        set_registers(ctx, sent, len);
        ctx.x[0] = badge;
        ctx.x[1] = MessageInfo::new(info.label(), len as u64).0;
    }

    /// [`Objects::transfer`] of any message: a fault's, or one past the registers.
    #[inline(never)]
    fn transfer_any(
        &mut self,
        m: &mut impl Machine,
        from: ThreadId,
        to: ThreadId,
        badge: u64,
        info: MessageInfo,
    ) {
        let f = &self.tcbs[from];
        let (fault_label, from_buffer) = (f.fault_label, f.ipc_buffer);
        let (label, len) = if fault_label != 0 {
            let mrs = f.fault_mrs;
            set_registers(&mut self.tcbs[to].ctx, mrs, 4);
            (fault_label, 4)
        } else {
            let regs = info.length().min(syscall::REGISTER_MESSAGE_REGISTERS);
            let sent = [f.ctx.x[2], f.ctx.x[3], f.ctx.x[4], f.ctx.x[5]];
            set_registers(&mut self.tcbs[to].ctx, sent, regs);
            // Past the registers only when both have an IPC buffer.
            let len = if from_buffer.is_none() || self.tcbs[to].ipc_buffer.is_none() {
                regs
            } else {
                info.length()
            };
            for i in regs..len {
                let v = self.mr(m, from, i);
                self.set_mr(m, to, i, v);
            }
            (info.label(), len)
        };
        let ctx = &mut self.tcbs[to].ctx;
        ctx.x[0] = badge;
        ctx.x[1] = MessageInfo::new(label, len as u64).0;
    }
}
