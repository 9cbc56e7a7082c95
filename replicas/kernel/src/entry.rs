//! The Rust side of `entry.S`: the kernel's entry point and exception vectors, the numbers
//! they pass, the frame they save, and the stacks they use.
//!
//! The vectors call `handle_user_exception` (`el0`) for exceptions from EL0 (a user
//! thread), `handle_exception` (`el1`) for exceptions taken in the kernel, and
//! `kernel_stack_overflow` (`el1`) when the kernel stack is nearly exhausted; all three
//! are found by their symbol names.

use atoll_abi::limits::MAX_CORES;
use atoll_kernel_core::kernel::Context;

core::arch::global_asm!(include_str!("entry.S"));

/// Exception kinds, as `entry.S` numbers them: synchronous.
pub const KIND_SYNC: u64 = 0;
/// An IRQ. (FIQ is 2 and SError 3; the kernel expects neither.)
pub const KIND_IRQ: u64 = 1;
/// Exception sources, as `entry.S` numbers them: EL1 on its own stack pointer (SP_EL1).
/// (Exceptions from EL0 have their own entry.)
pub const SOURCE_EL1_SPX: u64 = 1;

/// Bytes `entry.S` reserves on the stack for a [`Frame`] (`FRAME_SIZE` there).
pub const FRAME_SIZE: u64 = 288;
const _: () = assert!(core::mem::size_of::<Frame>() as u64 <= FRAME_SIZE);

/// Registers saved by an exception taken in the kernel, laid out by `entry.S`.
#[derive(Default)]
#[repr(C)]
pub struct Frame {
    /// x0-x30.
    pub x: [u64; 31],
    /// Exception return address.
    pub elr: u64,
    /// Saved program status.
    pub spsr: u64,
    pad: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 272);

/// Per-core stacks used only to report a kernel stack overflow (`entry.S`). The kernel
/// stacks themselves lie in their own guarded slots (`atoll_abi::spec::layout`).
#[unsafe(no_mangle)]
static mut EMERGENCY_STACKS: EmergencyStacks = EmergencyStacks([[0; 4096]; MAX_CORES]);

#[repr(C, align(16))]
struct EmergencyStacks([[u8; 4096]; MAX_CORES]);

unsafe extern "C" {
    /// Returns to the thread whose saved registers are at `ctx` (entry.S); `ctx` becomes
    /// where its next exception saves them.
    pub fn return_to_user(ctx: *mut Context) -> !;
}
