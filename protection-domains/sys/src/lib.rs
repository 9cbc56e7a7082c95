//! The user side of Atoll's system calls, as rust-sel4's `sel4` crate is under
//! `sel4-microkit`: the one place a user program enters the kernel. The PD runtime
//! (`atoll-microkit`), the replica initialiser and the benchmark PDs make every system call
//! through it.
//!
//! - [`call`]: the `svc` itself, with the kernel's register convention, and the debug calls.
//! - [`Cap`]: a capability address typed by the kind of object it names ([`Endpoint`],
//!   [`Notification`], [`Tcb`], …), with that kind's invocations; an invocation the kernel
//!   refuses returns its [`Error`].
//! - [`IpcBuffer`]: the message registers past the first four, which live in the calling
//!   thread's IPC buffer.
//! - `counter` (aarch64 only): the counters and the timer EL0 may read or program.
//!
//! On a host build (documentation, host tests of crates above it) a system call does
//! nothing and returns zeros.
#![no_std]

pub mod call;
mod cap;
#[cfg(target_arch = "aarch64")]
pub mod counter;
mod ipc_buffer;

pub use atoll_abi::error::Error;
pub use atoll_abi::syscall::MessageInfo;
pub use call::{Returned, debug_put_char, full, halt, raw, svc, yield_now};
pub use cap::{
    Any, Cap, CapKind, Endpoint, IrqHandler, Notification, Reply, SchedContext, Smc, Tcb, decode,
};
pub use ipc_buffer::IpcBuffer;
