//! Hostile-PD test (`tests/systems/hostile.xml`): a parent that misuses what Microkit gives
//! it. It tries to bind its child to another PD's notification through the send-only
//! capability it has to notify that PD (the kernel must refuse: binding needs the receive
//! right), and resumes, then suspends and resumes, its child while the child waits for
//! notifications (the child must wait on, seeing nothing). Then it notifies the child once
//! for real, on the child's channel 3.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use atoll_abi::error::Error;
use atoll_abi::pd::slot;
use atoll_abi::syscall::label;
use atoll_microkit::{
    Channel, Handler, NullHandler, debug_println, pd_name, protection_domain, sys,
};

const CHILD_TCB: u64 = slot::CHILD_TCB as u64;
const CHILD: Channel = Channel::new(0);
/// The capability that notifies `driver` (send only).
const OTHERS_NOTIFICATION: u64 = slot::OUTPUT_NOTIFICATION as u64 + 1;

/// Invokes `cap` with `op` and `args`: the error, if any.
fn invoke(cap: u64, op: u64, args: &[u64]) -> Option<Error> {
    let e = sys::invoke(cap, op, args).err()?;
    Error::from_raw(u32::try_from(e).unwrap_or(u32::MAX))
}

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap();
    match invoke(
        CHILD_TCB,
        label::TCB_BIND_NOTIFICATION,
        &[OTHERS_NOTIFICATION],
    ) {
        Some(e) => {
            debug_println!("{name}: binding my child to another PD's notification: refused ({e:?})")
        }
        None => debug_println!("{name}: FAILED: my child now receives another PD's notifications"),
    }
    // The child (higher) waits for notifications by now.
    let resumed = invoke(CHILD_TCB, label::TCB_RESUME, &[]);
    let suspended = invoke(CHILD_TCB, label::TCB_SUSPEND, &[]);
    let again = invoke(CHILD_TCB, label::TCB_RESUME, &[]);
    debug_println!(
        "{name}: resumed, suspended and resumed my waiting child: {resumed:?} {suspended:?} {again:?}"
    );
    CHILD.notify();
    NullHandler::new()
}
