//! The `svc` instruction with the kernel's register convention: `x0` capability, `x1`
//! message tag, `x2`–`x5` message registers, `x6` reply capability, `x7` the call number,
//! `x8` the capability of the send half of NBSendRecv. The kernel returns the badge in
//! `x0`, the tag in `x1` and the first four message registers in `x2`–`x5`.

use atoll_abi::syscall;

/// What a system call returned: `x0` (badge), `x1` (tag) and `x2`–`x5`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Returned {
    /// The badge (or first result).
    pub badge: u64,
    /// The message tag.
    pub info: u64,
    /// The register message registers.
    pub mrs: [u64; 4],
}

impl Returned {
    /// The message tag, typed.
    #[inline(always)]
    pub const fn tag(&self) -> syscall::MessageInfo {
        syscall::MessageInfo(self.info)
    }
}

/// The `svc` instruction with `number`, `cap`, `info`, `mrs` and `reply` in their
/// registers, and `send` in `x8` when given; what it returned, as a [`Returned`].
#[cfg(target_arch = "aarch64")]
macro_rules! svc_asm {
    ($number:expr, $cap:expr, $info:expr, $mrs:expr, $reply:expr $(, $send:expr)?) => {{
        let (mut x0, mut x1) = ($cap, $info);
        let [mut x2, mut x3, mut x4, mut x5] = $mrs;
        // SAFETY: `svc` enters the kernel, which changes only x0–x5 (declared) and returns
        // here; it touches no memory of this program but the IPC buffer, which no Rust
        // reference spans across the call. The kernel reads x8 only for NBSendRecv.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inout("x0") x0, inout("x1") x1,
                inout("x2") x2, inout("x3") x3,
                inout("x4") x4, inout("x5") x5,
                in("x6") $reply, in("x7") $number, $(in("x8") $send,)?
                options(nostack),
            );
        }
        Returned {
            badge: x0,
            info: x1,
            mrs: [x2, x3, x4, x5],
        }
    }};
}

/// Makes system call `number` with every register the kernel reads (`send` is only read
/// by NBSendRecv).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn full(number: i64, cap: u64, info: u64, mrs: [u64; 4], reply: u64, send: u64) -> Returned {
    svc_asm!(number, cap, info, mrs, reply, send)
}

/// Makes system call `number` without the send-half register `x8` (every call but
/// NBSendRecv), so the caller need not set it.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn svc(number: i64, cap: u64, info: u64, mrs: [u64; 4], reply: u64) -> Returned {
    svc_asm!(number, cap, info, mrs, reply)
}

/// Host builds (documentation, tests) have no kernel to call.
#[cfg(not(target_arch = "aarch64"))]
pub fn full(
    _number: i64,
    _cap: u64,
    _info: u64,
    _mrs: [u64; 4],
    _reply: u64,
    _send: u64,
) -> Returned {
    Returned::default()
}

/// Host builds (documentation, tests) have no kernel to call.
#[cfg(not(target_arch = "aarch64"))]
pub fn svc(_number: i64, _cap: u64, _info: u64, _mrs: [u64; 4], _reply: u64) -> Returned {
    Returned::default()
}

/// Makes system call `number`; returns `(x0, x1)` (badge and tag).
#[inline(always)]
pub fn raw(number: i64, cap: u64, info: u64, mrs: [u64; 4], reply: u64) -> (u64, u64) {
    let r = svc(number, cap, info, mrs, reply);
    (r.badge, r.info)
}

/// Writes one byte to the debug console (a line is printed when its newline arrives).
#[inline(always)]
pub fn debug_put_char(c: u8) {
    svc(syscall::DEBUG_PUT_CHAR, u64::from(c), 0, [0; 4], 0);
}

/// Every replica's epoch (Atoll extension): how many replicas the system has, and each
/// one's count of restarts (zero past the count).
#[inline(always)]
pub fn replica_epochs() -> (usize, [u32; atoll_abi::limits::MAX_REPLICAS]) {
    let r = svc(syscall::REPLICA_EPOCHS, 0, 0, [0; 4], 0);
    let mut epochs = [0; atoll_abi::limits::MAX_REPLICAS];
    for (pair, register) in epochs.chunks_mut(2).zip(r.mrs) {
        for (i, epoch) in pair.iter_mut().enumerate() {
            *epoch = (register >> (32 * i)) as u32;
        }
    }
    (usize::try_from(r.badge).unwrap_or(0), epochs)
}

/// Goes to the back of its priority's queue.
#[inline(always)]
pub fn yield_now() {
    svc(syscall::YIELD, 0, 0, [0; 4], 0);
}

/// Stops the calling thread for good.
pub fn halt() -> ! {
    loop {
        svc(syscall::DEBUG_HALT, 0, 0, [0; 4], 0);
    }
}
