//! System calls and invocations, as the initialiser (and any thread it starts in its own
//! address space) makes them: `atoll-sys`'s, on capabilities held as plain slots of the
//! root CNode (the boot program and the self-test's tables hold them so), with the
//! initialiser's IPC buffer for invocations of more than four arguments.

use atoll_abi::error::Error;
use atoll_abi::syscall::{MessageInfo, initial};
use atoll_sys::{Any, Cap, Endpoint, IpcBuffer, Notification};

pub(crate) use atoll_sys::counter::{counter, counter_frequency};
pub(crate) use atoll_sys::{Returned as Reply, debug_put_char as put_char, halt, yield_now};

/// The initialiser's IPC buffer.
// SAFETY: the kernel maps the initialiser's IPC buffer page read-write at this address for
// its whole life; the threads it starts share it, and only `atoll-sys` reaches it.
const BUFFER: IpcBuffer = unsafe { IpcBuffer::at(initial::IPC_BUFFER_VADDR) };

/// The capability at `slot`, as a capability of kind `K`.
#[inline(always)]
pub(crate) const fn cap<K: atoll_sys::CapKind>(slot: u64) -> Cap<K> {
    Cap::from_bits(slot)
}

/// Invokes `cap` with `label` and `args`; the reply's message registers, or the error.
pub(crate) fn invoke(cap: u64, label: u64, args: &[u64]) -> Result<[u64; 4], Error> {
    Cap::<Any>::from_bits(cap).invoke_long(BUFFER, label, args)
}

/// Sends `length` message registers with `label` on `cap` without waiting: the first four
/// zero, the rest `fill` (written into the IPC buffer).
pub(crate) fn send_long(cap: u64, label: u64, length: usize, fill: u64) {
    for i in 4..length.min(atoll_abi::syscall::MAX_MESSAGE_REGISTERS) {
        BUFFER.set_mr(i, fill);
    }
    Cap::<Any>::from_bits(cap).send(MessageInfo::new(label, length as u64), [0; 4]);
}

/// An empty Send: signals a notification, or sends an empty message on an endpoint.
pub(crate) fn signal(cap: u64) {
    Cap::<Any>::from_bits(cap).send(MessageInfo(0), [0; 4]);
}

/// Waits on a notification; the bits.
pub(crate) fn wait(cap: u64) -> u64 {
    self::cap::<Notification>(cap).wait()
}

/// The first four of `mrs` as registers, and the tag for `label` and all of them.
fn message(label: u64, mrs: &[u64]) -> (MessageInfo, [u64; 4]) {
    let mut regs = [0u64; 4];
    for (r, m) in regs.iter_mut().zip(mrs) {
        *r = *m;
    }
    (MessageInfo::new(label, mrs.len() as u64), regs)
}

/// Calls an endpoint.
pub(crate) fn call(cap: u64, label: u64, mrs: &[u64]) -> Reply {
    let (info, regs) = message(label, mrs);
    self::cap::<Endpoint>(cap).call(info, regs)
}

/// Receives on an endpoint with a reply object.
pub(crate) fn recv(cap: u64, reply: u64) -> Reply {
    self::cap::<Endpoint>(cap).recv(self::cap(reply))
}

/// Replies, then receives again.
pub(crate) fn reply_recv(cap: u64, reply: u64, label: u64, mrs: &[u64]) -> Reply {
    let (info, regs) = message(label, mrs);
    self::cap::<Endpoint>(cap).reply_recv(self::cap(reply), info, regs)
}
