//! The protection-domain runtime, second slice: the program entry, the link map (`pd.ld`),
//! the symbols the `microkit` tool patches into every PD under Microkit's names, debug
//! output, a panic report to the monitor, and Microkit's event loop reduced to its receive:
//! after `init` the PD blocks on its input capability. The `Handler` API that dispatches
//! what it receives arrives with the PD runtime issue.
#![no_std]

use atoll_abi::microkit::slot;
use atoll_abi::syscall::{self, MessageInfo, fault};

/// Symbols the tool patches (SDF.md §2.1). They live in `.data.microkit` so they have bytes
/// in the ELF file to patch and the linker keeps them.
#[allow(
    non_upper_case_globals,
    reason = "Microkit's symbol names, which the tool patches"
)]
pub mod patched {
    /// The PD's name, NUL terminated.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_name: [u8; 64] = [0; 64];
    /// Non-zero for a passive PD.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_passive: u64 = 0;
    /// Channels this PD may notify (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_notifications: u64 = 0;
    /// Channels this PD may call (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_pps: u64 = 0;
    /// Channels that are interrupts (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_irqs: u64 = 0;
}

/// System calls, with the kernel's register convention: `x0` capability, `x1` message
/// tag, `x2`–`x5` message registers, `x6` reply capability, `x7` the call number.
pub mod sys {
    /// Makes system call `number`; returns `(x0, x1)` (badge and tag).
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub fn raw(number: i64, cap: u64, info: u64, mrs: [u64; 4], reply: u64) -> (u64, u64) {
        let (mut x0, mut x1) = (cap, info);
        // SAFETY: `svc` enters the kernel, which changes only x0–x5 (declared clobbered)
        // and returns here; it touches no memory of this program but the IPC buffer, which
        // no Rust reference spans across the call.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inout("x0") x0, inout("x1") x1,
                inout("x2") mrs[0] => _, inout("x3") mrs[1] => _,
                inout("x4") mrs[2] => _, inout("x5") mrs[3] => _,
                in("x6") reply, in("x7") number,
                options(nostack),
            );
        }
        (x0, x1)
    }

    /// Host builds (documentation, tests) have no kernel to call.
    #[cfg(not(target_arch = "aarch64"))]
    pub fn raw(_number: i64, _cap: u64, _info: u64, _mrs: [u64; 4], _reply: u64) -> (u64, u64) {
        (0, 0)
    }
}

/// Writes `text` to the debug console (a line is printed when its newline arrives).
pub fn debug_print(text: &str) {
    for byte in text.bytes() {
        sys::raw(syscall::DEBUG_PUT_CHAR, u64::from(byte), 0, [0; 4], 0);
    }
}

/// Debug output as a `core::fmt::Write` sink, for [`debug_print!`] and [`debug_println!`].
pub struct DebugOut;

impl core::fmt::Write for DebugOut {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        debug_print(text);
        Ok(())
    }
}

/// Formats to the debug console: `debug_print!("{}: {}", pd_name(), value)`.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::DebugOut, format_args!($($arg)*));
    }};
}

/// [`debug_print!`] with a newline, which prints the line.
#[macro_export]
macro_rules! debug_println {
    ($($arg:tt)*) => {{
        $crate::debug_print!($($arg)*);
        $crate::debug_print("\n");
    }};
}

/// The PD's name, as the tool patched it.
pub fn pd_name() -> &'static str {
    // SAFETY: the tool patches the name before the PD runs and nothing writes it after;
    // only shared references to it are made.
    let name: &'static [u8; 64] = unsafe { &*core::ptr::addr_of!(patched::microkit_name) };
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len]).unwrap_or("<invalid name>")
}

/// Microkit's event loop, reduced to its receive: block on the input capability for good.
pub fn event_loop() -> ! {
    loop {
        sys::raw(
            syscall::RECV,
            u64::from(slot::INPUT),
            0,
            [0; 4],
            u64::from(slot::REPLY),
        );
    }
}

/// Declares the PD's initialisation function: `atoll_microkit::entry!(init);`. The runtime
/// calls it once, then enters the event loop.
#[macro_export]
macro_rules! entry {
    ($init:path) => {
        /// Called by the runtime's `_start`.
        #[unsafe(no_mangle)]
        extern "C" fn atoll_pd_main() -> ! {
            $init();
            $crate::event_loop()
        }
    };
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    "    bl atoll_pd_main",
    "1:  b 1b",
);

/// A panic is reported to the monitor (or the parent) as a fault message, which stops the
/// PD, after its message is printed.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => debug_println!("{}: panicked at {}:{}", pd_name(), at.file(), at.line()),
        None => debug_println!("{}: panicked", pd_name()),
    }
    let pc = panic as *const () as usize as u64;
    let info = MessageInfo::new(fault::PANIC, 1).0;
    loop {
        sys::raw(
            syscall::CALL,
            u64::from(slot::FAULT_ENDPOINT),
            info,
            [pc, 0, 0, 0],
            0,
        );
    }
}
