//! Panics, as `sel4-microkit`'s `panicking` module offers them: [`set_hook`] replaces what
//! a panic prints, and [`catch_unwind`] runs a closure.
//!
//! A PD panics with `panic = "abort"`, the only strategy stable Rust offers on
//! `aarch64-unknown-none` (its `core` is built that way, and catching an unwinding panic
//! needs an unstable intrinsic); a PD built with `panic = "unwind"` is refused at compile
//! time with a message saying so. A panic therefore runs the hook, then is reported to the
//! monitor (or the parent) as a fault, which stops the PD or restarts it; it never returns
//! into the PD. [`catch_unwind`] only ever returns `Ok`, as `sel4-microkit`'s does under
//! the same strategy.

use core::cell::UnsafeCell;
use core::panic::{PanicInfo, UnwindSafe};
use core::sync::atomic::{AtomicU8, Ordering};

/// What a panic hook is: called with the panic's information before the panic is
/// reported.
pub type PanicHook = &'static (dyn Fn(&PanicInfo<'_>) + Send + Sync);

/// The hook, written once by [`set_hook`] (`STATE` says when).
struct HookCell(UnsafeCell<Option<PanicHook>>);

// SAFETY: the cell is written once, while `STATE` is `WRITING`, by the one caller that
// moved `STATE` from `EMPTY`; it is read only after `STATE` is `SET` (acquire, pairing
// with the release that published the write), and never written again.
unsafe impl Sync for HookCell {}

static HOOK: HookCell = HookCell(UnsafeCell::new(None));
static STATE: AtomicU8 = AtomicU8::new(EMPTY);
const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const SET: u8 = 2;

/// Makes `hook` what every later panic of the PD calls instead of printing its message.
/// It may be set once; a second call panics, as `sel4-microkit`'s does.
pub fn set_hook(hook: PanicHook) {
    if STATE
        .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        panic!("the panic hook is already set");
    }
    // SAFETY: this caller moved `STATE` from `EMPTY` to `WRITING`, so it is the only
    // writer, and no reader looks at the cell before `STATE` is `SET`.
    unsafe { *HOOK.0.get() = Some(hook) };
    STATE.store(SET, Ordering::Release);
}

/// The hook [`set_hook`] set, if any.
#[cfg_attr(
    not(target_os = "none"),
    allow(dead_code, reason = "the panic handler is the target's only")
)]
pub(crate) fn hook() -> Option<PanicHook> {
    if STATE.load(Ordering::Acquire) != SET {
        return None;
    }
    // SAFETY: `STATE` is `SET`, so the write is finished and published, and the cell is
    // never written again.
    unsafe { *HOOK.0.get() }
}

/// Runs `f` and returns its result. With the abort strategy a panic in `f` does not come
/// back here (it is reported and the PD stops), so the result is always `Ok`.
#[allow(
    clippy::result_unit_err,
    reason = "sel4-microkit's signature, which PDs match on"
)]
pub fn catch_unwind<R, F: FnOnce() -> R + UnwindSafe>(f: F) -> Result<R, ()> {
    Ok(f())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::sync::atomic::AtomicUsize;

    use super::*;

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    fn count(_: &PanicInfo<'_>) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn the_hook_is_set_once_and_catch_unwind_returns_the_result() {
        assert!(hook().is_none());
        set_hook(&count);
        assert!(hook().is_some());
        let again = std::panic::catch_unwind(|| set_hook(&count));
        assert!(again.is_err(), "a second hook is refused");
        assert_eq!(catch_unwind(|| 41 + 1), Ok(42));
        assert_eq!(
            CALLS.load(Ordering::Relaxed),
            0,
            "nothing panicked through it"
        );
    }
}
