//! Exceptions taken in the kernel (EL1): IRQs are served, anything else stops the replica
//! (`stop`). Also the self-tests that fault on purpose.

use atoll_kernel_core::fault::Syndrome;

use crate::entry::{Frame, KIND_IRQ, KIND_SYNC, SOURCE_EL1_SPX};
use crate::replica::{current_core, replica};
use crate::stop::{park_forever, stop_replica, stop_unexpected};
use crate::{arch, irq};

/// Common vector entry for exceptions taken in the kernel.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut Frame, kind: u64, source: u64) {
    let Some(r) = replica() else { park_forever() };
    let Some(core) = current_core(r.spec) else {
        park_forever()
    };
    if kind == KIND_IRQ && source == SOURCE_EL1_SPX {
        r.count(core as usize, |c| &c.entries);
        return irq::handle_irq(r, core);
    }
    if kind == KIND_SYNC && source == SOURCE_EL1_SPX && no_firmware_answered(frame) {
        return;
    }
    stop_unexpected(r, core);
}

/// A firmware call made for a PD (`atoll_boards::firmware::forward`) was undefined: no
/// firmware listens on the board's conduit beyond what QEMU emulates. The call answers
/// `NOT_SUPPORTED`, as firmware does for a call it does not know, and the kernel goes on
/// after the instruction. Any other exception is not this one.
fn no_firmware_answered(frame: &mut Frame) -> bool {
    const EC_UNKNOWN: u64 = 0;
    let (esr, _, _) = arch::exception_registers();
    if (esr >> 26) & 0x3F != EC_UNKNOWN
        || !atoll_boards::firmware::is_forward_instruction(frame.elr)
    {
        return false;
    }
    let [x0, ..] = &mut frame.x;
    *x0 = atoll_boards::firmware::NOT_SUPPORTED;
    frame.elr = frame.elr.wrapping_add(4);
    true
}

/// Called by `entry.S` on this core's emergency stack when an exception arrived with the
/// kernel stack nearly exhausted.
#[unsafe(no_mangle)]
extern "C" fn kernel_stack_overflow() -> ! {
    let (esr, far, elr) = arch::exception_registers();
    match replica() {
        Some(r) => {
            let core = current_core(r.spec).unwrap_or(0);
            stop_replica(
                r,
                core,
                esr,
                far,
                elr,
                format_args!(
                    "kernel stack overflow ({}) FAR {far:#x} ELR {elr:#x}",
                    Syndrome(esr)
                ),
            )
        }
        None => park_forever(),
    }
}

/// Self-test: recurses until the kernel stack runs into its guard.
#[inline(never)]
pub fn selftest_stack_overflow(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0; // never reached: the guard stops the recursion long before
    }
    let frame = core::hint::black_box([depth; 32]);
    let kept = frame.get((depth % 32) as usize).copied().unwrap_or(0);
    kept.wrapping_add(selftest_stack_overflow(core::hint::black_box(
        depth.wrapping_add(1),
    )))
}
