//! The protection-domain runtime: Microkit's programming model with the API of
//! `sel4-microkit`, so a PD written for `sel4-microkit` ports by changing the crate it
//! imports (`docs/pd-api.md` lists the differences).
//!
//! It provides the program entry and link map (`pd.ld`), `#[protection_domain]`, the
//! [`Handler`] trait and Microkit's event loop ([`run_main`]), [`Channel`], [`ChannelSet`],
//! [`Child`], [`MessageInfo`] and the message registers, deferred actions, [`var!`] and
//! [`memory_region_symbol!`] for values the tool patches, debug output, and a panic handler
//! that reports the panic to the monitor.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "c-api")]
pub mod capi;
mod channel;
mod handler;
pub mod heap;
#[doc(hidden)]
pub mod ipc;
mod message;
pub mod panicking;
pub mod smc;
#[cfg(target_arch = "aarch64")]
pub mod timer;

// A PD's panics abort: stable Rust has no way to unwind on this target (its `core` is
// built with `panic = "abort"` and catching a panic needs an unstable intrinsic). A
// `panic = "unwind"` profile setting leaves the strategy to the target, which aborts, but
// `-C panic=unwind` in RUSTFLAGS would ask for unwinding: such a PD is refused here, with
// the reason, instead of misbehaving later.
#[cfg(all(panic = "unwind", target_os = "none"))]
compile_error!(
    "this PD is compiled with `-C panic=unwind`, which Atoll does not support (stable Rust cannot unwind on aarch64-unknown-none): remove it from RUSTFLAGS. A PD's panic runs its panic hook, is reported to its monitor, and stops or restarts the PD."
);

pub use atoll_abi::fault::Fault;
pub use atoll_microkit_macros::protection_domain;
pub use channel::{Channel, ChannelSet, Child, DisplayChannelSet, IrqAckError, PeerDown};
pub use handler::{
    DeferredAction, DeferredActionInterface, DeferredActionSlot, Handler, Infallible, Never,
    NullHandler, run_main,
};
pub use message::{
    MessageInfo, MessageLabel, MessageRegisterValue, get_mr, set_mr, with_msg_bytes,
    with_msg_bytes_mut, with_msg_regs, with_msg_regs_mut,
};

/// Where every PD built with this runtime starts (`_start`, first in its text), for
/// [`Child::restart`].
pub const ENTRY_POINT: u64 = atoll_abi::pd::vspace::PROGRAM_BASE;

/// Symbols the tool patches (as Microkit's tool does). They live in `.data.microkit` so they have bytes
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

    /// Atoll extension: per replica index, this PD's channels whose other end is a PD of
    /// that replica, for replicas other than its own (bit = channel id). The runtime tells
    /// the PD when one of those replicas restarts ([`crate::Handler::peer_restarted`]).
    /// Optional: the tool patches it when the program has it.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut atoll_peer_channels: [u64; atoll_abi::limits::MAX_REPLICAS] =
        [0; atoll_abi::limits::MAX_REPLICAS];

    /// This PD's channels to another replica's PDs, per replica index.
    pub(crate) fn peer_channels() -> [u64; atoll_abi::limits::MAX_REPLICAS] {
        // SAFETY: patched by the tool in the ELF file before the PD runs, never written
        // after.
        unsafe { core::ptr::addr_of!(atoll_peer_channels).read_volatile() }
    }

    /// Reads one of the patched words above.
    pub(crate) fn read(word: *const u64) -> u64 {
        // SAFETY: `word` is one of this module's statics, which the tool patches in the
        // ELF file before the PD runs and nothing writes after.
        unsafe { word.read_volatile() }
    }
}

/// System calls, with the kernel's register convention: `x0` capability, `x1` message
/// tag, `x2`–`x5` message registers, `x6` reply capability, `x7` the call number, `x8` the
/// capability of the send half of NBSendRecv. They are `atoll-sys`'s, whose typed
/// capabilities ([`atoll_sys::Cap`]) the runtime is built on.
pub mod sys {
    pub use atoll_sys::{Returned, full, raw};

    /// Invokes the capability at `cap` with operation `op` and its arguments (the first
    /// four; an invocation of a Microkit PD takes no more): the kernel's error number if
    /// it refuses.
    pub fn invoke(cap: u64, op: u64, args: &[u64]) -> Result<(), u64> {
        atoll_sys::Cap::<atoll_sys::Any>::from_bits(cap)
            .invoke(op, args)
            .map(drop)
            .map_err(|e| e as u64)
    }
}

/// Writes `text` to the debug console (a line is printed when its newline arrives).
pub fn debug_print(text: &str) {
    for byte in text.bytes() {
        atoll_sys::debug_put_char(byte);
    }
}

/// One byte of debug output, under the link-level name rust-sel4's support crates
/// (`sel4-panicking-env`) call, so that they print through this runtime as they do
/// through `sel4-microkit`.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
#[allow(
    non_snake_case,
    reason = "the symbol name rust-sel4's crates link against"
)]
pub fn __sel4_panicking_env__debug_put_char(c: u8) {
    atoll_sys::debug_put_char(c);
}

/// Debug output as a `core::fmt::Write` sink, for [`debug_print!`] and [`debug_println!`].
pub struct DebugOut;

impl core::fmt::Write for DebugOut {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        debug_print(text);
        Ok(())
    }
}

/// Formats to the debug console: `debug_print!("{}: {}", pd_name().unwrap(), value)`.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::DebugOut, format_args!($($arg)*));
    }};
}

/// [`debug_print!`] with a newline, which prints the line; `debug_println!()` prints an
/// empty line.
#[macro_export]
macro_rules! debug_println {
    () => {
        $crate::debug_print("\n")
    };
    ($($arg:tt)*) => {{
        $crate::debug_print!($($arg)*);
        $crate::debug_print("\n");
    }};
}

/// Declares the PD's initialisation function, as `#[protection_domain]` does, which expands
/// to it: `declare_protection_domain!(init = my_init, stack_size = 0x4000, heap_size = 0x10000)`.
/// `stack_size` and `heap_size` are optional and come in that order (see
/// [`macro@protection_domain`] for what each does on Atoll).
///
/// Every path in it goes through `$crate`, so it works whatever name the PD's `Cargo.toml`
/// gives this crate (`sel4-microkit = { package = "atoll-microkit", … }` among them).
#[macro_export]
macro_rules! declare_protection_domain {
    (init = $init:expr $(, stack_size = $stack:expr)? $(, heap_size = $heap:expr)? $(,)?) => {
        $(
            #[unsafe(no_mangle)]
            #[used]
            static __atoll_stack_size: usize = $stack;
        )?
        $(
            #[global_allocator]
            static __ATOLL_HEAP: $crate::heap::Heap<{ $heap }> = $crate::heap::Heap::new();
        )?
        /// The program's entry, called by the runtime's `_start`.
        #[unsafe(no_mangle)]
        extern "C" fn atoll_pd_main() -> ! {
            $crate::run_main($init)
        }
    };
}

/// The PD's name, as the tool patched it; an error if the patched bytes are not UTF-8 (the
/// tool only writes names it checked, so that takes a damaged program). As in
/// `sel4-microkit`, PDs usually write `pd_name().unwrap()`.
pub fn pd_name() -> Result<&'static str, core::str::Utf8Error> {
    // SAFETY: the tool patches the name before the PD runs and nothing writes it after;
    // only shared references to it are made.
    let name: &'static [u8; 64] = unsafe { &*core::ptr::addr_of!(patched::microkit_name) };
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len])
}

/// The PD's name for the runtime's own messages, which must not fail (a panic report
/// among them).
pub(crate) fn name_or_placeholder() -> &'static str {
    pd_name().unwrap_or("<invalid name>")
}

/// Whether the tool made this PD passive.
pub fn pd_is_passive() -> bool {
    patched::read(&raw const patched::microkit_passive) != 0
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
/// PD, after the hook of [`panicking::set_hook`] runs or, without one, its message is
/// printed. A panic inside the hook is printed, not hooked again.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use atoll_abi::pd::slot;
    use atoll_abi::syscall::{self, fault};
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    let first = !PANICKING.swap(true, Ordering::Relaxed);
    match info.location() {
        // The C library's release configuration prints nothing, as Microkit's.
        _ if cfg!(feature = "c-api-quiet") => {}
        _ if first && let Some(hook) = panicking::hook() => hook(info),
        Some(at) => debug_println!(
            "{}: panicked at {}:{}: {}",
            name_or_placeholder(),
            at.file(),
            at.line(),
            info.message()
        ),
        None => debug_println!("{}: panicked: {}", name_or_placeholder(), info.message()),
    }
    let pc = panic as *const () as usize as u64;
    let info = syscall::MessageInfo::new(fault::PANIC, 1);
    let fault_endpoint =
        atoll_sys::Cap::<atoll_sys::Endpoint>::from_bits(slot::FAULT_ENDPOINT.into());
    loop {
        fault_endpoint.call(info, [pc, 0, 0, 0]);
    }
}

/// A value the tool patches (`<setvar>`), kept in `.data` under its own symbol name:
/// `let base: &u64 = var!(uart_base: u64 = 0);`. Returns a `&'static` to it. Attributes
/// before the name go on the static.
#[macro_export]
macro_rules! var {
    ($(#[$attr:meta])* $symbol:ident: $ty:ty = $default:expr $(,)?) => {{
        $(#[$attr])*
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".data.microkit")]
        #[used]
        static mut $symbol: $ty = $default;
        // SAFETY: the tool patches the value in the ELF file before the PD runs and
        // nothing writes it after, so shared references to it are sound (being a
        // `static mut`, its default is never folded into the code).
        let value: &'static $ty = unsafe { &*core::ptr::addr_of!($symbol) };
        value
    }};
}

/// The address of a memory region the tool maps and patches (`<setvar vaddr>`), as a
/// `NonNull`, in `sel4-microkit`'s forms: `memory_region_symbol!(ring_vaddr: *mut Ring)`;
/// `*mut T, bytes = B` (the region's size, which must hold a `T`); `*mut [T], n = N`
/// (a slice of N elements), with `, bytes = B` the region's size, which must hold them;
/// and Atoll's `*mut [T], bytes = B` (as many elements as B bytes hold). Attributes before
/// the name go on the patched static; a trailing comma is allowed. Panics if the tool did
/// not patch the symbol, or if the region is too small for what is asked.
#[macro_export]
macro_rules! memory_region_symbol {
    ($(#[$attr:meta])* $symbol:ident: *mut [$ty:ty], n = $n:expr, bytes = $bytes:expr $(,)?) => {{
        let n: usize = $n;
        assert!(
            n.checked_mul(core::mem::size_of::<$ty>()).is_some_and(|need| need <= $bytes),
            concat!("memory region `", stringify!($symbol), "` is smaller than its n elements")
        );
        let start = $crate::memory_region_symbol!($(#[$attr])* $symbol: *mut $ty);
        core::ptr::NonNull::slice_from_raw_parts(start, n)
    }};
    ($(#[$attr:meta])* $symbol:ident: *mut [$ty:ty], n = $n:expr $(,)?) => {{
        let start = $crate::memory_region_symbol!($(#[$attr])* $symbol: *mut $ty);
        core::ptr::NonNull::slice_from_raw_parts(start, $n)
    }};
    ($(#[$attr:meta])* $symbol:ident: *mut [$ty:ty], bytes = $bytes:expr $(,)?) => {{
        let start = $crate::memory_region_symbol!($(#[$attr])* $symbol: *mut $ty);
        core::ptr::NonNull::slice_from_raw_parts(start, $bytes / core::mem::size_of::<$ty>())
    }};
    ($(#[$attr:meta])* $symbol:ident: *mut $ty:ty, bytes = $bytes:expr $(,)?) => {{
        assert!(
            core::mem::size_of::<$ty>() <= $bytes,
            concat!("memory region `", stringify!($symbol), "` is smaller than its type")
        );
        $crate::memory_region_symbol!($(#[$attr])* $symbol: *mut $ty)
    }};
    ($(#[$attr:meta])* $symbol:ident: *mut $ty:ty $(,)?) => {{
        let vaddr: u64 = *$crate::var!($(#[$attr])* $symbol: u64 = 0);
        match core::ptr::NonNull::new(vaddr as usize as *mut $ty) {
            Some(p) => p,
            None => panic!(concat!("memory region symbol `", stringify!($symbol), "` was not patched by the tool")),
        }
    }};
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::String;

    /// The panic message of `f`, which must panic.
    fn panic_of(f: fn()) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("it panics");
        payload
            .downcast_ref::<&str>()
            .map(|s| String::from(*s))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    }

    #[test]
    fn var_takes_attributes_and_a_trailing_comma() {
        let value: &u64 = crate::var!(#[allow(non_upper_case_globals)] atoll_test_var: u64 = 7,);
        assert_eq!(*value, 7);
    }

    #[test]
    fn every_memory_region_symbol_form_refuses_an_unpatched_symbol() {
        let forms: [fn(); 5] = [
            || {
                let _ = crate::memory_region_symbol!(
                    #[allow(non_upper_case_globals)]
                    atoll_test_a: *mut u32
                );
            },
            || {
                let _ = crate::memory_region_symbol!(ATOLL_TEST_B: *mut u32, bytes = 4,);
            },
            || {
                let _ = crate::memory_region_symbol!(ATOLL_TEST_C: *mut [u8], n = 4);
            },
            || {
                let _ = crate::memory_region_symbol!(ATOLL_TEST_D: *mut [u8], n = 4, bytes = 8);
            },
            || {
                let _ = crate::memory_region_symbol!(ATOLL_TEST_E: *mut [u16], bytes = 8);
            },
        ];
        for form in forms {
            assert!(panic_of(form).contains("was not patched by the tool"));
        }
    }

    #[test]
    fn a_region_too_small_for_what_is_asked_is_refused() {
        let elements = || {
            let _ = crate::memory_region_symbol!(ATOLL_TEST_F: *mut [u64], n = 4, bytes = 8);
        };
        assert!(panic_of(elements).contains("smaller than its n elements"));
        let one = || {
            let _ = crate::memory_region_symbol!(ATOLL_TEST_G: *mut u64, bytes = 4);
        };
        assert!(panic_of(one).contains("smaller than its type"));
    }
}
