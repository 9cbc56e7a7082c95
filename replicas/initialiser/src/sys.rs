//! System calls and invocations, as the initialiser (and any thread it starts in its own
//! address space) makes them.

use atoll_abi::error::Error;
use atoll_abi::syscall::{self, MessageInfo, initial};

/// Registers a system call returns: badge, tag, and the four register message registers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reply {
    pub(crate) badge: u64,
    pub(crate) info: MessageInfo,
    pub(crate) mrs: [u64; 4],
}

/// One system call with the full register convention: `x0` capability, `x1` tag, `x2`–`x5`
/// message registers, `x6` reply capability, `x8` second capability (NBSendRecv).
#[inline(always)]
pub(crate) fn raw(number: i64, cap: u64, info: u64, mrs: [u64; 4], reply: u64) -> Reply {
    let (mut x0, mut x1, mut x2, mut x3, mut x4, mut x5) =
        (cap, info, mrs[0], mrs[1], mrs[2], mrs[3]);
    // SAFETY: `svc` enters the kernel, which changes only x0–x5 (declared) and returns here;
    // it touches no memory of this program but the IPC buffer, which Rust code does not
    // borrow across a system call.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") x0, inout("x1") x1, inout("x2") x2, inout("x3") x3,
            inout("x4") x4, inout("x5") x5, in("x6") reply, in("x7") number,
            options(nostack),
        );
    }
    Reply {
        badge: x0,
        info: MessageInfo(x1),
        mrs: [x2, x3, x4, x5],
    }
}

/// Message register `i` (4 or more) of the calling thread's IPC buffer.
fn buffer_word(i: usize) -> *mut u64 {
    (initial::IPC_BUFFER_VADDR as *mut u64).wrapping_add(syscall::ipc_buffer::MR0 + i)
}

/// Invokes `cap` with `label` and `args`; the reply's message registers, or the error.
pub(crate) fn invoke(cap: u64, label: u64, args: &[u64]) -> Result<[u64; 4], Error> {
    let mut mrs = [0u64; 4];
    for (i, &a) in args.iter().enumerate() {
        if i < 4 {
            mrs[i] = a;
        } else {
            // SAFETY: the initialiser's IPC buffer is mapped writable at its fixed address.
            unsafe { buffer_word(i).write_volatile(a) };
        }
    }
    let info = MessageInfo::new(label, args.len() as u64).0;
    let r = raw(syscall::CALL, cap, info, mrs, 0);
    match Error::from_raw(r.info.label() as u32) {
        None => Ok(r.mrs),
        Some(e) => Err(e),
    }
}

/// Sends `length` message registers with `label` on `cap` without waiting: the first four
/// zero, the rest `fill` (written into the IPC buffer).
pub(crate) fn send_long(cap: u64, label: u64, length: usize, fill: u64) {
    for i in 4..length.min(syscall::MAX_MESSAGE_REGISTERS) {
        // SAFETY: the initialiser's IPC buffer is mapped writable at its fixed address, and
        // the index stays below its 120 message registers.
        unsafe { buffer_word(i).write_volatile(fill) };
    }
    let info = MessageInfo::new(label, length as u64).0;
    raw(syscall::SEND, cap, info, [0; 4], 0);
}

/// Goes to the back of its priority's queue.
pub(crate) fn yield_now() {
    raw(syscall::YIELD, 0, 0, [0; 4], 0);
}

/// An empty Send: signals a notification, or sends an empty message on an endpoint.
pub(crate) fn signal(cap: u64) {
    raw(syscall::SEND, cap, 0, [0; 4], 0);
}

/// Wait on a notification; the bits.
pub(crate) fn wait(cap: u64) -> u64 {
    raw(syscall::WAIT, cap, 0, [0; 4], 0).badge
}

/// Call an endpoint.
pub(crate) fn call(cap: u64, label: u64, mrs: &[u64]) -> Reply {
    let mut regs = [0u64; 4];
    regs[..mrs.len().min(4)].copy_from_slice(&mrs[..mrs.len().min(4)]);
    raw(
        syscall::CALL,
        cap,
        MessageInfo::new(label, mrs.len() as u64).0,
        regs,
        0,
    )
}

/// Receive on an endpoint with a reply object.
pub(crate) fn recv(cap: u64, reply: u64) -> Reply {
    raw(syscall::RECV, cap, 0, [0; 4], reply)
}

/// Reply, then receive again.
pub(crate) fn reply_recv(cap: u64, reply: u64, label: u64, mrs: &[u64]) -> Reply {
    let mut regs = [0u64; 4];
    regs[..mrs.len().min(4)].copy_from_slice(&mrs[..mrs.len().min(4)]);
    let info = MessageInfo::new(label, mrs.len() as u64).0;
    raw(syscall::REPLY_RECV, cap, info, regs, reply)
}

/// Writes one character to the debug console.
pub(crate) fn put_char(c: u8) {
    raw(syscall::DEBUG_PUT_CHAR, u64::from(c), 0, [0; 4], 0);
}

/// Stops the calling thread for good.
pub(crate) fn halt() -> ! {
    loop {
        raw(syscall::DEBUG_HALT, 0, 0, [0; 4], 0);
    }
}

/// The virtual counter (the kernel lets EL0 read it).
pub(crate) fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nostack)) };
    v
}

/// The counter's frequency.
pub(crate) fn counter_hz() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nostack)) };
    v
}
