//! A child that faults on purpose (`parent/system.xml`): its parent restarts it at its
//! entry point, and its data survives a restart, so it counts its runs. Run 1 reads
//! unmapped memory, run 2 panics, run 3 tells the parent on channel 0 that it got through.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use atoll_microkit::{Channel, Handler, NullHandler, debug_println, pd_name, protection_domain};

const PARENT: Channel = Channel::new(0);
/// An address below every PD's program, which nothing maps.
const UNMAPPED: usize = 0x1000;

/// Runs so far: a restart does not reload the data, so the count carries over.
static RUNS: AtomicU32 = AtomicU32::new(0);

#[protection_domain]
fn init() -> impl Handler {
    let run = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    match run {
        1 => {
            debug_println!(
                "{}: run 1: reading unmapped memory on purpose",
                pd_name().unwrap()
            );
            // SAFETY: nothing is mapped at `UNMAPPED`, so the read faults and the kernel
            // stops this thread before any value is produced; no Rust object is involved.
            let _ = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
        }
        2 => panic!("run 2: panicking on purpose"),
        _ => {
            debug_println!("{}: run {run}: getting through", pd_name().unwrap());
            PARENT.notify();
        }
    }
    NullHandler::new()
}
