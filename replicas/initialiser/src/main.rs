//! The replica initialiser: each replica's first user task, started by the kernel at EL0
//! with the replica's index in `x0`.
//!
//! Today it proves the user-space path (an address space of its own, the system-call
//! entry, the debug console) and stops. Replaying the replica's spec through capability
//! invocations and serving as the replica's monitor come with the kernel's object
//! invocations.
#![no_std]
#![no_main]

use atoll_abi::syscall;

core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    "    bl initialiser_main",
    "1:  b 1b",
);

/// A system call with one argument; returns `x0`.
fn syscall1(number: i64, arg: u64) -> u64 {
    let mut x0 = arg;
    // SAFETY: `svc` enters the kernel, which preserves every register but x0 and returns
    // here; no memory of this program is touched by the call.
    unsafe {
        core::arch::asm!("svc #0", inout("x0") x0, in("x7") number, options(nostack));
    }
    x0
}

fn put_str(text: &str) {
    for byte in text.bytes() {
        syscall1(syscall::DEBUG_PUT_CHAR, u64::from(byte));
    }
}

fn put_decimal(mut value: u64) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        syscall1(syscall::DEBUG_PUT_CHAR, u64::from(d));
    }
}

/// Entered from `_start` at EL0 with the replica's index and its spec flags.
#[unsafe(no_mangle)]
extern "C" fn initialiser_main(replica: u64, flags: u64) -> ! {
    put_str("MON");
    put_decimal(replica);
    put_str("|INFO: initialiser running at EL0\n");
    if flags & u64::from(atoll_abi::spec::flags::SELFTEST_USER_FAULT) != 0 {
        put_str("MON");
        put_decimal(replica);
        put_str("|INFO: self-test: touching unmapped memory on purpose\n");
        // SAFETY: deliberately faults; the kernel stops this thread and never returns here.
        let _ = unsafe { core::ptr::read_volatile(0x7_0000_0000 as *const u64) };
    }
    loop {
        syscall1(syscall::DEBUG_HALT, 0);
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    put_str("MON?|FATAL: initialiser panicked\n");
    loop {
        syscall1(syscall::DEBUG_HALT, 0);
    }
}
