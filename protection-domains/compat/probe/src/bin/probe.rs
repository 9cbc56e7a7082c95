//! The API probe (`probe/system.xml`): names every public item of rust-sel4's
//! `sel4-microkit` 5.0.0 with the signature its documentation gives, so that a missing item
//! or a changed signature fails this crate's build; then checks at run time what can be
//! checked inside one PD, and handles the fault of its child `hooked`, which panics through
//! a panic hook. Written from the documented API, in upstream style: every path is
//! `sel4_microkit::…`, and the crate depends on Atoll's runtime under that name.
#![no_std]
#![no_main]
// Upstream's `MessageInfo` is `Clone` only; code written for it clones.
#![allow(
    clippy::clone_on_copy,
    reason = "written as for upstream's Clone-only MessageInfo"
)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::panic::PanicInfo;
use core::ptr::NonNull;
use core::str::Utf8Error;

use sel4_microkit::panicking::{self, PanicHook};
use sel4_microkit::{
    Channel, ChannelSet, Child, DeferredAction, DeferredActionInterface, DeferredActionSlot,
    DisplayChannelSet, Handler, Infallible, IrqAckError, MessageInfo, MessageLabel,
    MessageRegisterValue, Never, NullHandler, debug_print, debug_println, get_mr, ipc,
    memory_region_symbol, pd_is_passive, pd_name, protection_domain, set_mr, var, with_msg_bytes,
    with_msg_bytes_mut, with_msg_regs, with_msg_regs_mut,
};

/// The channel to `hooked`, a child: its faults arrive as child 0.
const HOOKED: Child = Child::new(0);
/// A channel id no description of this system uses (only named, never used).
const UNUSED: Channel = Channel::new(61);

/// Every item, coerced to the type upstream documents. Nothing here runs: the compiler
/// checks it.
#[allow(
    clippy::type_complexity,
    reason = "the types are the signatures being checked"
)]
fn signatures() {
    // Channels and children.
    let _: fn(usize) -> Channel = Channel::new;
    let _: fn(&Channel) -> usize = Channel::index;
    let _: fn(&Channel) = Channel::notify;
    let _: fn(&Channel) -> Result<(), IrqAckError> = Channel::irq_ack;
    let _: fn(&Channel, MessageInfo) -> MessageInfo = Channel::pp_call;
    let _ = (
        Channel::notification,
        Channel::irq_handler,
        Channel::endpoint,
    );
    let _: fn(usize) -> Child = Child::new;
    let _: fn(&Child) -> usize = Child::index;
    let _ = Child::tcb;
    let _: fn(&ChannelSet, Channel) -> bool = ChannelSet::contains;
    let _: fn(&ChannelSet) -> ipc::ChannelSetIter = ChannelSet::iter;
    let _: for<'a> fn(&'a ChannelSet) -> DisplayChannelSet<'a> = ChannelSet::display;
    let _: fn(&IrqAckError) -> String = |e| format!("{e} {e:?}");
    let _: fn(&IrqAckError, &IrqAckError) -> bool = PartialEq::eq;
    // Messages.
    let _: fn(MessageLabel, usize) -> MessageInfo = MessageInfo::new;
    let _: fn(&MessageInfo) -> MessageLabel = MessageInfo::label;
    let _: fn() -> usize = MessageInfo::label_width;
    let _: fn(&MessageInfo) -> usize = MessageInfo::count;
    let _: fn() -> MessageInfo = MessageInfo::default;
    let _ = (
        MessageInfo::fault,
        MessageInfo::from_inner,
        MessageInfo::inner,
        MessageInfo::into_inner,
    );
    let _: fn(usize) -> MessageRegisterValue = get_mr;
    let _: fn(usize, MessageRegisterValue) = set_mr;
    let _: fn(fn(&[MessageRegisterValue]) -> u8) -> u8 = with_msg_regs;
    let _: fn(fn(&mut [MessageRegisterValue]) -> u8) -> u8 = with_msg_regs_mut;
    let _: fn(fn(&[u8]) -> u8) -> u8 = with_msg_bytes;
    let _: fn(fn(&mut [u8]) -> u8) -> u8 = with_msg_bytes_mut;
    let _: MessageLabel = 0u64;
    let _: MessageRegisterValue = 0u64;
    // Deferred actions.
    let _: fn(Channel, DeferredActionInterface) -> DeferredAction = DeferredAction::new;
    let _: fn(Channel) -> DeferredAction = DeferredAction::new_notify;
    let _: fn(Channel) -> DeferredAction = DeferredAction::new_irq_ack;
    let _: fn(&DeferredAction) -> Channel = DeferredAction::channel;
    let _: fn(&DeferredAction) -> DeferredActionInterface = DeferredAction::interface;
    let _: fn(DeferredAction) -> Result<(), IrqAckError> = DeferredAction::execute_now;
    let _: fn() -> DeferredActionSlot = DeferredActionSlot::new;
    let _: fn(&mut DeferredActionSlot) -> Option<DeferredAction> = DeferredActionSlot::take;
    let _: fn(&mut DeferredActionSlot, DeferredAction) -> Result<(), IrqAckError> =
        DeferredActionSlot::defer;
    let _: fn(&mut DeferredActionSlot, Channel) -> Result<(), IrqAckError> =
        DeferredActionSlot::defer_notify;
    let _: fn(&mut DeferredActionSlot, Channel) -> Result<(), IrqAckError> =
        DeferredActionSlot::defer_irq_ack;
    let _ = [
        DeferredActionInterface::Notify,
        DeferredActionInterface::IrqAck,
    ];
    // Handlers and the loop underneath them.
    let _: fn() -> NullHandler = NullHandler::new;
    let _: fn(&mut NullHandler) -> Result<Never, Infallible> = <NullHandler as Handler>::run;
    let _: fn(&mut Never) -> Result<Never, Infallible> = <Never as Handler>::run;
    let _: fn(Never) -> Infallible = |never| match never {};
    let _: fn() -> ipc::Event = ipc::recv;
    let _: fn(MessageInfo) = ipc::reply;
    let _: fn(MessageInfo) -> ipc::Event = ipc::reply_recv;
    let _: fn(ipc::Event) -> u8 = |event| match event {
        ipc::Event::Notified(_channels) => 0,
        ipc::Event::Protected(_channel, _info) => 1,
        ipc::Event::Fault(_child, _info) => 2,
    };
    // Identity and panics.
    let _: fn() -> bool = pd_is_passive;
    let _: fn() -> Result<&'static str, Utf8Error> = pd_name;
    let _: fn(PanicHook) = panicking::set_hook;
    let _: PanicHook = &|_: &PanicInfo<'_>| {};
    let _: fn(fn() -> u8) -> Result<u8, ()> = panicking::catch_unwind;
}

/// What the checks found wrong.
#[derive(Debug)]
struct Failed(&'static str);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check failed: {}", self.0)
    }
}

/// Counts passed checks and stops at the first failure.
fn check(passed: &mut u32, ok: bool, what: &'static str) -> Result<(), Failed> {
    if !ok {
        return Err(Failed(what));
    }
    *passed += 1;
    Ok(())
}

/// What one PD can check about the API by itself.
fn run_checks() -> Result<u32, Failed> {
    let mut n = 0;
    let info = MessageInfo::new(0x1234, 3);
    check(&mut n, info.label() == 0x1234 && info.count() == 3, "tag")?;
    check(&mut n, MessageInfo::label_width() == 52, "label width")?;
    let back = MessageInfo::from_inner(info.clone().into_inner());
    check(&mut n, back.label() == info.inner().label(), "tag inner")?;
    check(&mut n, MessageInfo::default().count() == 0, "default tag")?;
    set_mr(0, 7);
    set_mr(119, 9);
    check(&mut n, get_mr(0) == 7 && get_mr(119) == 9, "mrs")?;
    let regs = with_msg_regs(|regs| (regs.len(), regs[0]));
    check(&mut n, regs == (120, 7), "msg regs")?;
    with_msg_bytes_mut(|bytes| bytes[8] = 0xAB);
    check(&mut n, get_mr(1) & 0xFF == 0xAB, "msg bytes little endian")?;
    with_msg_regs_mut(|regs| regs[2] = 5);
    check(&mut n, with_msg_bytes(|b| b[16]) == 5, "msg bytes view")?;
    check(&mut n, UNUSED.index() == 61 && HOOKED.index() == 0, "ids")?;
    let action = DeferredAction::new_notify(UNUSED);
    check(
        &mut n,
        action.channel() == UNUSED && action.interface() == DeferredActionInterface::Notify,
        "deferred action",
    )?;
    let mut slot = DeferredActionSlot::new();
    check(&mut n, slot.take().is_none(), "empty slot")?;
    let irq = DeferredAction::new(UNUSED, DeferredActionInterface::IrqAck);
    check(
        &mut n,
        irq == DeferredAction::new_irq_ack(UNUSED),
        "irq ack action",
    )?;
    check(&mut n, !pd_is_passive(), "active")?;
    check(&mut n, pd_name() == Ok("probe"), "name")?;
    check(
        &mut n,
        panicking::catch_unwind(|| 6 * 7) == Ok(42),
        "catch_unwind",
    )?;
    let scratch: NonNull<[u64]> = memory_region_symbol!(scratch_vaddr: *mut [u64], n = 512);
    let default: &u64 = var!(probe_default: u64 = 0x5eed);
    // SAFETY: the description maps `scratch` (4 KiB, 512 words) read-write at the address
    // the tool patched into `scratch_vaddr`, for this PD alone.
    let words = unsafe { &mut *scratch.as_ptr() };
    words[511] = *default;
    check(&mut n, words.len() == 512 && words[511] == 0x5eed, "region")?;
    Ok(n)
}

/// The probe's handler, boxed and used through `dyn Handler` (feature `alloc`).
struct Probe {
    faults: u32,
}

impl Handler for Probe {
    type Error = Failed;

    fn fault(
        &mut self,
        child: Child,
        msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        self.faults += 1;
        debug_println!(
            "{}: child {} faulted ({:?}); leaving it stopped",
            pd_name().unwrap(),
            child.index(),
            msg_info.fault()
        );
        if child != HOOKED || self.faults != 1 {
            return Err(Failed("one fault, from child 0"));
        }
        debug_println!("{}: done", pd_name().unwrap());
        Ok(None)
    }
}

#[protection_domain(heap_size = 0x4000)]
fn init() -> Box<dyn Handler<Error = Failed>> {
    signatures();
    let passed = run_checks().unwrap();
    debug_print!("{}: ", pd_name().unwrap());
    debug_println!("{passed} checks passed");
    debug_println!();
    Box::new(Probe { faults: 0 })
}
