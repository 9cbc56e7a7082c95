//! System call numbers (in `x7`, as seL4 passes them) and the debug calls of debug builds, and the
//! message, invocation and fault encodings.
//! The numbering follows seL4's MCS configuration.

/// Call: send and wait for the reply, on one capability.
pub const CALL: i64 = -1;
/// Reply to the last caller, then receive.
pub const REPLY_RECV: i64 = -2;
/// Send without blocking, then receive.
pub const NB_SEND_RECV: i64 = -3;
/// Send without blocking, then wait on a notification.
pub const NB_SEND_WAIT: i64 = -4;
/// Send, blocking.
pub const SEND: i64 = -5;
/// Send without blocking.
pub const NB_SEND: i64 = -6;
/// Receive, blocking.
pub const RECV: i64 = -7;
/// Receive without blocking.
pub const NB_RECV: i64 = -8;
/// Wait on a notification.
pub const WAIT: i64 = -9;
/// Poll a notification.
pub const NB_WAIT: i64 = -10;
/// Give up the rest of the time slice.
pub const YIELD: i64 = -11;
/// Debug builds: write one character (`x0`) to the console.
pub const DEBUG_PUT_CHAR: i64 = -12;
/// Debug builds: stop the calling thread for good.
pub const DEBUG_HALT: i64 = -13;
/// Reads every replica's epoch (how many times it was restarted; Atoll extension): `x0` the
/// number of replicas, `x2`–`x5` the epochs, two `u32` a register, replica `2i` in the low
/// half of register `i`. The PD runtime asks when a cross-replica channel signals, to tell a
/// restarted peer from the one it knew.
pub const REPLICA_EPOCHS: i64 = -14;

/// A message's tag (`x1`), laid out as seL4 lays it out: the label in bits 12 and up, the
/// number of extra capabilities in bits 7–8 (Atoll passes none: capability arguments of
/// invocations are capability addresses in message registers) and the length in message
/// registers in bits 0–6. For the reply to an invocation, the label is 0 on success or an
/// [`crate::error::Error`] number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo(pub u64);

impl MessageInfo {
    /// A tag with `label` and `length` message registers.
    pub const fn new(label: u64, length: u64) -> Self {
        Self((label << 12) | (length & 0x7F))
    }

    /// The label.
    pub const fn label(self) -> u64 {
        self.0 >> 12
    }

    /// Message registers used, at most [`MAX_MESSAGE_REGISTERS`].
    pub const fn length(self) -> usize {
        let n = (self.0 & 0x7F) as usize;
        if n > MAX_MESSAGE_REGISTERS {
            MAX_MESSAGE_REGISTERS
        } else {
            n
        }
    }
}

/// Message registers in a message: the first [`REGISTER_MESSAGE_REGISTERS`] travel in `x2`–`x5`,
/// the rest in the IPC buffer.
pub const MAX_MESSAGE_REGISTERS: usize = 120;
/// Message registers passed in CPU registers (`x2`–`x5`).
pub const REGISTER_MESSAGE_REGISTERS: usize = 4;

/// The IPC buffer: one page at a thread's configured address. Word 0 is the tag, word
/// `1 + i` message register `i`, as in seL4.
pub mod ipc_buffer {
    /// Word index of message register 0.
    pub const MR0: usize = 1;
}

/// Labels of invocations: a Call or Send on a capability that is not an endpoint,
/// notification or doorbell. Arguments are message registers in the order listed; a
/// capability argument is a capability address in the caller's space (resolved to depth 64).
pub mod label {
    /// Untyped: (kind, size_bits, root, node_index, node_depth, node_offset, count). `kind`
    /// is an [`crate::object::ObjectKind`] number ([`super::object_kind`]); `size_bits` the
    /// log2 size of frames or untyped blocks, or the radix of CNodes.
    pub const UNTYPED_RETYPE: u64 = 1;
    /// CNode: (index, depth).
    pub const CNODE_REVOKE: u64 = 2;
    /// CNode: (index, depth).
    pub const CNODE_DELETE: u64 = 3;
    /// CNode: (dest_index, dest_depth, src_root, src_index, src_depth, rights).
    pub const CNODE_COPY: u64 = 4;
    /// CNode: (dest_index, dest_depth, src_root, src_index, src_depth, rights, badge).
    pub const CNODE_MINT: u64 = 5;
    /// CNode: (dest_index, dest_depth, src_root, src_index, src_depth).
    pub const CNODE_MOVE: u64 = 6;
    /// CNode: (dest_index, dest_depth, src_root, src_index, src_depth, rights, badge); a
    /// badge of 0 leaves it unset. On a CNode capability, `badge` sets the guard:
    /// `guard_bits << 58 | guard`.
    pub const CNODE_MUTATE: u64 = 7;
    /// TCB: (fault_ep, cspace_root, vspace, ipc_buffer_vaddr, ipc_buffer_frame). A null
    /// capability address (0) leaves that field unset.
    pub const TCB_CONFIGURE: u64 = 10;
    /// TCB: (authority_tcb, priority).
    pub const TCB_SET_PRIORITY: u64 = 11;
    /// TCB: (authority_tcb, mcp).
    pub const TCB_SET_MC_PRIORITY: u64 = 12;
    /// TCB: (authority_tcb, mcp, priority, sched_context, fault_ep); a null scheduling
    /// context makes the thread passive.
    pub const TCB_SET_SCHED_PARAMS: u64 = 13;
    /// TCB: (). Replies with pc, sp, spsr, x0..x7.
    pub const TCB_READ_REGISTERS: u64 = 14;
    /// TCB: (resume, pc, sp, x0, x1, x2, x3): sets the entry state; with `resume`, also
    /// as [`TCB_RESUME`].
    pub const TCB_WRITE_REGISTERS: u64 = 15;
    /// TCB: (). Restarts a stopped or blocked thread, as seL4's `restart`: whatever it
    /// waited for (a message, a notification, the reply to a call or fault) is cancelled.
    pub const TCB_RESUME: u64 = 16;
    /// TCB: ().
    pub const TCB_SUSPEND: u64 = 17;
    /// TCB: (notification).
    pub const TCB_BIND_NOTIFICATION: u64 = 18;
    /// TCB: ().
    pub const TCB_UNBIND_NOTIFICATION: u64 = 19;
    /// TCB: (core). Moves the thread to `core` (a board core index of the thread's
    /// replica), as seL4's `TCB_SetAffinity`; with MCS scheduling it moves the thread's
    /// own scheduling context, which is what decides the core a thread runs on.
    pub const TCB_SET_AFFINITY: u64 = 23;
    /// TCB: (index). Atoll's, harmless metadata as seL4's `DebugNameThread`: the thread is
    /// PD `index` of the system directory ([`crate::directory`]), and its kernel publishes
    /// the PD's state and fault count in record `index` of the status page's PD table
    /// ([`crate::shared::PdRecord`]) from now on. The boot program sets it for every PD
    /// before starting it. Set once per TCB, so that a PD holding another's TCB capability
    /// cannot move that PD's record onto a third's: a second one is `IllegalOperation`, an
    /// index at or past [`crate::shared::PD_RECORDS`] is `RangeError`.
    pub const TCB_SET_STATUS_INDEX: u64 = 24;
    /// Scheduling control: (sched_context, budget_us, period_us[, core]). The context's
    /// threads run on `core` (a board core index of the replica; default: the replica's
    /// first core), as seL4's per-core SchedControl capabilities decide.
    pub const SCHED_CONTROL_CONFIGURE: u64 = 20;
    /// Scheduling context: (tcb). Gives an unbound scheduling context to a thread that has
    /// none of its own, as seL4's `SchedContext_Bind`.
    pub const SCHED_CONTEXT_BIND: u64 = 21;
    /// Scheduling context: (tcb). Takes the scheduling context away from the thread it
    /// is bound to, which becomes passive, as seL4's `SchedContext_UnbindObject`.
    pub const SCHED_CONTEXT_UNBIND_OBJECT: u64 = 22;
    /// Page table: (vspace, vaddr). Installed as the next table missing on the walk to
    /// `vaddr` (level 2, then level 3).
    pub const PAGE_TABLE_MAP: u64 = 30;
    /// Page table: ().
    pub const PAGE_TABLE_UNMAP: u64 = 31;
    /// Frame: (vspace, vaddr, rights, attributes): rights are [`crate::syscall::rights`]
    /// bits (read, write; execute when write is absent and `attributes` has
    /// [`super::vm_attr::EXECUTE`]).
    pub const FRAME_MAP: u64 = 32;
    /// Frame: ().
    pub const FRAME_UNMAP: u64 = 33;
    /// Frame: (). Replies with the physical address.
    pub const FRAME_GET_ADDRESS: u64 = 34;
    /// IRQ control: (irq, trigger (1 edge, 0 level), root, index, depth).
    pub const IRQ_CONTROL_GET: u64 = 40;
    /// IRQ handler: ().
    pub const IRQ_HANDLER_ACK: u64 = 41;
    /// IRQ handler: (notification).
    pub const IRQ_HANDLER_SET_NOTIFICATION: u64 = 42;
    /// IRQ handler: ().
    pub const IRQ_HANDLER_CLEAR: u64 = 43;
    /// IRQ control: (word, notification). Pending word `word` of this replica's
    /// cross-replica channel words ([`crate::shared::pd_words`]) signals `notification` with
    /// the bits other replicas' doorbells set in it. A word has at most one watcher.
    pub const IRQ_CONTROL_WATCH_PENDING_WORD: u64 = 44;
    /// Doorbell: (replica, word). Points an unconfigured doorbell at pending word `word` of
    /// the cross-replica channel words, watched on replica `replica`; its badge (set by
    /// minting) is the bits it sets there. Sending on it rings; a call also answers whether
    /// the bits were delivered (label 0) or the replica is down or unknown (an error).
    pub const DOORBELL_CONFIGURE: u64 = 50;
    /// SMC: (x0 … x7), eight arguments, as seL4's `ARM_SMC_Call`. The kernel passes them to
    /// the firmware in registers `x0`–`x7` through the board's firmware call (`smc`, or
    /// `hvc` where the firmware listens there) and replies with the eight registers it
    /// returns. Refused with `InvalidArgument` when the capability's badge is not 0 and not
    /// the function id in `x0`, and with `IllegalOperation` for the power-state calls
    /// (PSCI, other than `PSCI_VERSION` and `PSCI_FEATURES`), which would reach cores and
    /// replicas beyond the caller's.
    pub const ARM_SMC_CALL: u64 = 60;
    /// Domain set: (domain, tcb). Puts the thread in `domain` (below
    /// [`super::domains::COUNT`]), as seL4's `DomainSet_Set`; a thread runs only while the
    /// replica's domain schedule is in its domain. Every thread starts in domain 0.
    pub const DOMAIN_SET_SET: u64 = 61;
    /// Domain set: (index, domain, duration, unit). Entry `index` (below
    /// [`super::domains::SCHEDULE_LENGTH`]) of the replica's domain schedule: `domain`
    /// runs for `duration` microseconds (`unit` 0) or counter ticks (`unit` 1). A duration
    /// of 0 ends the schedule there (Microkit's `schedule_end_marker`): at an end marker,
    /// or after the last entry, the schedule goes back to its start entry.
    pub const DOMAIN_SET_SCHEDULE_CONFIGURE: u64 = 62;
    /// Domain set: (start index). Starts the domain schedule at entry `start index`, now.
    /// Until it is started, every thread runs as if in one domain.
    pub const DOMAIN_SET_SCHEDULE_START: u64 = 63;
}

/// The domain scheduler's limits (seL4's `KernelNumDomains` and
/// `KernelNumDomainSchedules` as Microkit's SDK sets them).
pub mod domains {
    /// Domains: 0 to 15.
    pub const COUNT: u64 = 16;
    /// Entries in a domain schedule.
    pub const SCHEDULE_LENGTH: u64 = 100;
    /// Duration unit: microseconds.
    pub const MICROSECONDS: u64 = 0;
    /// Duration unit: ticks of the generic counter.
    pub const COUNTER_TICKS: u64 = 1;
}

/// Object kinds as [`label::UNTYPED_RETYPE`] numbers them.
pub mod object_kind {
    use crate::object::ObjectKind;

    /// Untyped memory (not an [`ObjectKind`]).
    pub const UNTYPED: u64 = 0;

    /// The number of a kind.
    pub const fn number(kind: ObjectKind) -> u64 {
        match kind {
            ObjectKind::Tcb => 1,
            ObjectKind::SchedContext => 2,
            ObjectKind::CNode => 3,
            ObjectKind::Endpoint => 4,
            ObjectKind::Notification => 5,
            ObjectKind::Reply => 6,
            ObjectKind::VSpace => 7,
            ObjectKind::PageTable => 8,
            ObjectKind::Frame => 9,
            ObjectKind::Doorbell => 10,
            ObjectKind::IrqControl => 11,
            ObjectKind::IrqHandler => 12,
            ObjectKind::SchedControl => 13,
            ObjectKind::Smc => 14,
            ObjectKind::DomainSet => 15,
        }
    }

    /// The kind of a number.
    pub const fn from_number(n: u64) -> Option<ObjectKind> {
        Some(match n {
            1 => ObjectKind::Tcb,
            2 => ObjectKind::SchedContext,
            3 => ObjectKind::CNode,
            4 => ObjectKind::Endpoint,
            5 => ObjectKind::Notification,
            6 => ObjectKind::Reply,
            7 => ObjectKind::VSpace,
            8 => ObjectKind::PageTable,
            9 => ObjectKind::Frame,
            10 => ObjectKind::Doorbell,
            11 => ObjectKind::IrqControl,
            12 => ObjectKind::IrqHandler,
            13 => ObjectKind::SchedControl,
            14 => ObjectKind::Smc,
            15 => ObjectKind::DomainSet,
            _ => return None,
        })
    }
}

/// Capability rights bits, as invocations take them.
pub mod rights {
    /// Receive; map readable.
    pub const READ: u64 = 1;
    /// Send; map writable.
    pub const WRITE: u64 = 2;
    /// Pass capabilities.
    pub const GRANT: u64 = 4;
    /// Let the receiver reply.
    pub const GRANT_REPLY: u64 = 8;
    /// Every right.
    pub const ALL: u64 = 15;
}

/// Frame mapping attributes.
pub mod vm_attr {
    /// Normal write-back cacheable memory (otherwise device memory).
    pub const CACHED: u64 = 1;
    /// Executable (only for mappings without write rights).
    pub const EXECUTE: u64 = 2;
}

/// Fault messages: a thread's fault arrives at its fault endpoint as a Call with one of
/// these labels, and the message registers listed.
pub mod fault {
    /// A capability lookup failed in a system call: (pc, capability address, syscall).
    pub const CAP_FAULT: u64 = 1;
    /// An unknown system call: (pc, sp, syscall number).
    pub const UNKNOWN_SYSCALL: u64 = 2;
    /// An undefined instruction or other exception: (pc, sp, ESR).
    pub const USER_EXCEPTION: u64 = 3;
    /// A memory access the thread's address space does not allow: (pc, address, is
    /// instruction fetch, ESR).
    pub const VM_FAULT: u64 = 6;
    /// The thread panicked (sent by the PD runtime, not the kernel): (pc, 0, 0).
    pub const PANIC: u64 = 7;
}

/// The capabilities the kernel hands the initialiser, by slot of its root CNode (radix
/// [`initial::ROOT_RADIX`], addressed with depth 64 by the slot number).
pub mod initial {
    /// Its root CNode.
    pub const CNODE: u64 = 1;
    /// Its TCB.
    pub const TCB: u64 = 2;
    /// Its address space.
    pub const VSPACE: u64 = 3;
    /// The replica's IRQ control.
    pub const IRQ_CONTROL: u64 = 4;
    /// The replica's scheduling control.
    pub const SCHED_CONTROL: u64 = 5;
    /// Its scheduling context.
    pub const SCHED_CONTEXT: u64 = 6;
    /// Its IPC buffer frame.
    pub const IPC_BUFFER_FRAME: u64 = 7;
    /// The replica's authority to call the firmware.
    pub const SMC: u64 = 8;
    /// The replica's authority over its domain scheduler.
    pub const DOMAIN_SET: u64 = 9;
    /// First untyped capability; they follow in address order.
    pub const FIRST_UNTYPED: u64 = 16;
    /// First slot free for the initialiser's own use.
    pub const FIRST_FREE: u64 = 256;
    /// log2 of the root CNode's slot count.
    pub const ROOT_RADIX: u8 = 11;
    /// Where its IPC buffer is mapped.
    pub const IPC_BUFFER_VADDR: u64 = 0x3F_F000_0000;
    /// Bytes of replica RAM past the initialiser's program that the kernel keeps for the
    /// initialiser's boot objects (root CNode, TCB, scheduling context, IPC buffer, stack
    /// and translation tables); untyped memory starts after them.
    pub const BOOT_PAGES_BYTES: u64 = 0x8_0000;

    /// Splits `[base, end)` into the largest naturally aligned power-of-two blocks, in
    /// address order: the untyped capabilities the kernel hands out for that memory (the
    /// tool computes the same list to plan retypes). Blocks are at least 4 KiB; a ragged
    /// head or tail smaller than that is left out.
    pub fn untyped_blocks(base: u64, end: u64) -> impl Iterator<Item = (u64, u8)> {
        let mut at = base.next_multiple_of(0x1000);
        let end = end & !0xFFF;
        core::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let align = if at == 0 { 63 } else { at.trailing_zeros() };
            // `end > at` here, so the difference is non-zero and has a highest bit.
            let fits = 63u32.saturating_sub(end.wrapping_sub(at).leading_zeros());
            let bits = align.min(fits).min(47) as u8;
            let block = (at, bits);
            at = at.saturating_add(1u64 << bits);
            Some(block)
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::initial::untyped_blocks;

    #[test]
    fn untyped_blocks_cover_the_range_with_aligned_powers_of_two() {
        let blocks: Vec<_> = untyped_blocks(0x4000_3000, 0x4010_0000).collect();
        let mut at = 0x4000_3000;
        for &(base, bits) in &blocks {
            assert_eq!(base, at);
            assert_eq!(base % (1 << bits), 0);
            at += 1 << bits;
        }
        assert_eq!(at, 0x4010_0000);
        assert_eq!(blocks[0], (0x4000_3000, 12));
        assert_eq!(blocks.last(), Some(&(0x4008_0000, 19)));
        assert_eq!(untyped_blocks(0x1800, 0x2800).count(), 0);
    }
}
