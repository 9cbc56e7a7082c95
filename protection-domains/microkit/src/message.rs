//! Message tags and message registers. As in seL4's user library, the message registers
//! live in the IPC buffer (word `1 + i` holds register `i`); the runtime moves the first
//! four to and from CPU registers `x2`–`x5` around each system call, and the kernel copies
//! the rest from buffer to buffer.

use atoll_abi::pd::vspace;
use atoll_abi::syscall;
use atoll_sys::IpcBuffer;

/// A message register's value.
pub type MessageRegisterValue = u64;

/// A message's label, as [`MessageInfo::new`] takes it and [`MessageInfo::label`] gives it.
pub type MessageLabel = u64;

/// Message registers a message can carry.
const MRS: usize = syscall::MAX_MESSAGE_REGISTERS;

/// A message tag: a label and how many message registers the message uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo(syscall::MessageInfo);

impl MessageInfo {
    /// A tag with `label` and `count` message registers (at most 120).
    pub const fn new(label: MessageLabel, count: usize) -> Self {
        let count = if count > MRS { MRS } else { count };
        Self(syscall::MessageInfo::new(label, count as u64))
    }

    /// The label.
    pub const fn label(&self) -> MessageLabel {
        self.0.label()
    }

    /// Bits a label may use (the tag's upper 52 bits).
    pub const fn label_width() -> usize {
        52
    }

    /// Message registers used.
    pub const fn count(&self) -> usize {
        self.0.length()
    }

    /// The kernel's tag, for support crates (as `sel4-microkit`'s, whose inner type is
    /// `sel4::MessageInfo`).
    #[doc(hidden)]
    pub const fn inner(&self) -> &syscall::MessageInfo {
        &self.0
    }

    /// The kernel's tag.
    #[doc(hidden)]
    pub const fn into_inner(self) -> syscall::MessageInfo {
        self.0
    }

    /// From the kernel's tag.
    #[doc(hidden)]
    pub const fn from_inner(inner: syscall::MessageInfo) -> Self {
        Self(inner)
    }

    /// The fault this message reports, decoded from its label and the message registers
    /// just received (in a [`crate::Handler::fault`]).
    pub fn fault(&self) -> crate::Fault {
        let mr = |i: usize| if i < self.count() { get_mr(i) } else { 0 };
        crate::Fault::from_parts(self.label(), [mr(0), mr(1), mr(2), mr(3)])
    }
}

/// This PD's IPC buffer.
// SAFETY: every PD has its IPC buffer page mapped read-write at this fixed address for its
// whole life, and only `atoll-sys`'s accessors reach it.
pub(crate) const BUFFER: IpcBuffer = unsafe { IpcBuffer::at(vspace::IPC_BUFFER) };

/// Message register `i` (panics if `i` is past the last one).
#[inline(always)]
pub fn get_mr(i: usize) -> MessageRegisterValue {
    BUFFER.mr(i)
}

/// Sets message register `i` (panics if `i` is past the last one).
#[inline(always)]
pub fn set_mr(i: usize, value: MessageRegisterValue) {
    BUFFER.set_mr(i, value);
}

/// Runs `f` on the message registers.
pub fn with_msg_regs<T>(f: impl FnOnce(&[MessageRegisterValue]) -> T) -> T {
    BUFFER.with_mrs(f)
}

/// Runs `f` on the message registers, mutably.
pub fn with_msg_regs_mut<T>(f: impl FnOnce(&mut [MessageRegisterValue]) -> T) -> T {
    BUFFER.with_mrs_mut(f)
}

/// Runs `f` on the message registers as bytes (register 0's bytes first, little endian).
pub fn with_msg_bytes<T>(f: impl FnOnce(&[u8]) -> T) -> T {
    BUFFER.with_bytes(f)
}

/// Runs `f` on the message registers as bytes, mutably.
pub fn with_msg_bytes_mut<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with_bytes_mut(f)
}

/// The first four message registers, to pass in `x2`–`x5`.
pub(crate) fn outgoing(info: MessageInfo) -> [u64; 4] {
    let mut regs = [0; 4];
    for (i, r) in regs.iter_mut().enumerate().take(info.count()) {
        *r = get_mr(i);
    }
    regs
}

/// Stores the first four message registers a system call returned in `x2`–`x5`.
pub(crate) fn incoming(info: MessageInfo, regs: [u64; 4]) {
    for (i, &r) in regs.iter().enumerate().take(info.count()) {
        set_mr(i, r);
    }
}
