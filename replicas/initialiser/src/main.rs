//! The replica initialiser: each replica's first user task, started by the kernel at EL0
//! with the replica's index in `x0`, its spec flags in `x1`, the number of untyped
//! capabilities it holds in `x2` and the size of its boot program in `x3` (its other
//! capabilities sit at the slots of `atoll_abi::syscall::initial`).
//!
//! It replays the boot program the `microkit` tool wrote for its replica, which builds and
//! starts the replica's PDs ([`boot`]), and then serves as the replica's monitor, reporting
//! each PD fault in words. In self-test images it first exercises the kernel's API with
//! threads it builds from untyped memory ([`api`]).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

mod api;
mod boot;
mod hostile;
mod sys;

core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    "    bl initialiser_main",
    "1:  b 1b",
);

/// The replica this initialiser serves, for its log prefix.
static REPLICA: AtomicU64 = AtomicU64::new(0);

fn put_str(text: &str) {
    for byte in text.bytes() {
        sys::put_char(byte);
    }
}

/// One log line, `MON<replica>|LEVEL: text`, built up and then written whole.
pub(crate) struct Out {
    buf: [u8; 200],
    len: usize,
}

impl Out {
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; 200],
            len: 0,
        }
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        for &c in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = c;
                self.len += 1;
            }
        }
        self
    }

    pub(crate) fn num(&mut self, mut value: u64) -> &mut Self {
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
        for i in (0..n).rev() {
            let d = [digits[i]];
            self.str(core::str::from_utf8(&d).unwrap_or("?"));
        }
        self
    }

    pub(crate) fn hex(&mut self, value: u64) -> &mut Self {
        self.str("0x");
        let mut started = false;
        for shift in (0..16).rev() {
            let d = ((value >> (shift * 4)) & 0xF) as usize;
            if d != 0 || started || shift == 0 {
                started = true;
                let c = [b"0123456789abcdef"[d]];
                self.str(core::str::from_utf8(&c).unwrap_or("?"));
            }
        }
        self
    }

    /// Writes the line with its prefix.
    pub(crate) fn line(&self, level: &str) {
        put_str("MON");
        let mut prefix = Out::new();
        prefix.num(REPLICA.load(Ordering::Relaxed));
        put_bytes(&prefix.buf[..prefix.len]);
        put_str("|");
        put_str(level);
        put_str(": ");
        put_bytes(&self.buf[..self.len]);
        put_str("\n");
    }
}

fn put_bytes(bytes: &[u8]) {
    for &b in bytes {
        sys::put_char(b);
    }
}

impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// An invocation error in words.
pub(crate) fn error_name(e: atoll_abi::error::Error) -> &'static str {
    use atoll_abi::error::Error;
    match e {
        Error::InvalidArgument => "invalid argument",
        Error::InvalidCapability => "invalid capability",
        Error::IllegalOperation => "illegal operation",
        Error::RangeError => "range error",
        Error::AlignmentError => "alignment error",
        Error::FailedLookup => "failed lookup",
        Error::TruncatedMessage => "truncated message",
        Error::DeleteFirst => "delete first",
        Error::RevokeFirst => "revoke first",
        Error::NotEnoughMemory => "not enough memory",
    }
}

/// Entered from `_start` at EL0 with the replica's index, its spec flags, the number of
/// untyped capabilities it holds and the size of its boot program.
#[unsafe(no_mangle)]
extern "C" fn initialiser_main(replica: u64, flags: u64, _untyped: u64, program_size: u64) -> ! {
    REPLICA.store(replica, Ordering::Relaxed);
    Out::new().str("initialiser running at EL0").line("INFO");
    if flags & u64::from(atoll_abi::spec::flags::SELFTEST_USER_FAULT) != 0 {
        Out::new()
            .str("self-test: touching unmapped memory on purpose")
            .line("INFO");
        // SAFETY: deliberately faults; the kernel stops this thread and never returns here.
        let _ = unsafe { core::ptr::read_volatile(0x7_0000_0000 as *const u64) };
    }
    let program = boot::program(program_size);
    let started = program.as_ref().is_some_and(boot::replay);
    if flags & u64::from(atoll_abi::spec::flags::SELFTEST_KERNEL_API) != 0 {
        api::run(program.as_ref());
    }
    match program {
        Some(p) if started => boot::monitor(&p),
        _ => sys::halt(),
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    Out::new().str("initialiser panicked").line("FATAL");
    sys::halt()
}
