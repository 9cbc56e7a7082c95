//! Microkit's C API (feature `c-api`): what `libmicrokit.a` of Atoll's SDK exports to C
//! protection domains written against `microkit.h`, over this runtime's system calls.
//!
//! The C program defines `init` and `notified` (and `protected` and `fault` when it takes
//! calls or has children; the defaults below report the missing entry point and stop the
//! PD, as Microkit's do). The library owns `_start`, Microkit's event loop, the symbols the
//! tool patches, and the `microkit_*` and `seL4_*` functions `microkit.h` and `sel4/sel4.h`
//! declare. `docs/c-api.md` documents them and every difference from Microkit's library.
//!
//! Wrong uses are reported the way Microkit's library reports them: a channel the PD does
//! not own prints `<name> microkit_<call>: invalid channel given '<ch>'` and the call does
//! nothing; a child id past the last prints `<name> microkit_<call>: invalid child given
//! '<id>'` and the call does nothing; a child the kernel refuses to restart or stop prints
//! the error and stops the PD (reported to its parent or monitor as a panic fault). A child
//! id the PD has no child for is an empty capability slot, which the kernel answers with a
//! capability fault, as seL4 does: that stops the PD before the library sees an error.
#![allow(
    non_upper_case_globals,
    non_snake_case,
    reason = "the C names of Microkit's API and seL4's user library"
)]

use core::ffi::{c_char, c_int};

use atoll_abi::error::Error;
use atoll_abi::pd::{MAX_CHANNELS, slot, vspace};
use atoll_abi::syscall::{self, MessageInfo as Tag, label};
use atoll_sys::{Any, Cap, Endpoint, IrqHandler, Notification, Smc, Tcb};

use crate::channel::{irqs, notifications, pps};
use crate::ipc::{self, Event};
use crate::message::{BUFFER, incoming, outgoing};

/// `seL4_MessageInfo_t`: one word, seL4's layout (label in bits 12 and up, length in
/// bits 0–6), which is also the kernel's tag.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeL4MessageInfo {
    words: [u64; 1],
}

impl SeL4MessageInfo {
    fn tag(self) -> Tag {
        Tag(self.words[0])
    }

    fn from_tag(tag: Tag) -> Self {
        Self { words: [tag.0] }
    }
}

/// `seL4_Bool`.
type Bool = i8;

/// `seL4_ARM_SMCContext`: registers `x0`–`x7`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SmcContext {
    regs: [u64; 8],
}

const _: () = assert!(core::mem::size_of::<SeL4MessageInfo>() == 8);
const _: () = assert!(core::mem::size_of::<SmcContext>() == 64);

unsafe extern "C" {
    /// The PD's initialisation.
    fn init();
    /// A notification (or interrupt) on channel `ch`.
    fn notified(ch: u32);
    /// A protected procedure call on `ch` (weak default below).
    fn protected(ch: u32, msginfo: SeL4MessageInfo) -> SeL4MessageInfo;
    /// A fault of child `child` (weak default below); true replies with `*reply_msginfo`.
    fn fault(child: u32, msginfo: SeL4MessageInfo, reply_msginfo: *mut SeL4MessageInfo) -> Bool;
}

// Weak defaults of the entry points a PD may leave out: a C definition replaces them.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".weak protected",
    ".type protected, %function",
    "protected:",
    "    b atoll_c_missing_protected",
    ".weak fault",
    ".type fault, %function",
    "fault:",
    "    b atoll_c_missing_fault",
);

#[unsafe(no_mangle)]
extern "C" fn atoll_c_missing_protected(_ch: u32, _msginfo: SeL4MessageInfo) -> SeL4MessageInfo {
    missing("protected")
}

#[unsafe(no_mangle)]
extern "C" fn atoll_c_missing_fault(
    _child: u32,
    _msginfo: SeL4MessageInfo,
    _reply: *mut SeL4MessageInfo,
) -> Bool {
    missing("fault")
}

/// A message arrived for an entry point the program does not define: report and stop.
fn missing(entry: &str) -> ! {
    say(format_args!(
        "{} is missing the '{entry}' entry point\n",
        name()
    ));
    panic!("missing entry point '{entry}'");
}

/// Set by `microkit_deferred_notify` and `microkit_deferred_irq_ack` (or by the program):
/// `microkit_signal_msg` is sent on `microkit_signal_cap` together with the next receive.
#[unsafe(no_mangle)]
pub static mut microkit_have_signal: Bool = 0;
/// The capability of the deferred signal.
#[unsafe(no_mangle)]
pub static mut microkit_signal_cap: u64 = 0;
/// The tag of the deferred signal.
#[unsafe(no_mangle)]
pub static mut microkit_signal_msg: SeL4MessageInfo = SeL4MessageInfo { words: [0] };
/// seL4's pointer to the thread's IPC buffer, which C code may read (`seL4_GetIPCBuffer`).
#[unsafe(no_mangle)]
pub static mut __sel4_ipc_buffer: u64 = vspace::IPC_BUFFER;

/// The deferred signal, taken (cleared) if one is set.
fn take_signal() -> Option<(u64, Tag)> {
    // SAFETY: a PD is one thread; these statics are only touched by it, through the
    // accessors here and the C program's own reads and writes, never concurrently.
    unsafe {
        if core::ptr::read_volatile(&raw const microkit_have_signal) == 0 {
            return None;
        }
        core::ptr::write_volatile(&raw mut microkit_have_signal, 0);
        let cap = core::ptr::read_volatile(&raw const microkit_signal_cap);
        let msg = core::ptr::read_volatile(&raw const microkit_signal_msg);
        Some((cap, msg.tag()))
    }
}

/// Sets the deferred signal (a second one replaces the first, as in Microkit).
fn set_signal(cap: u64, tag: Tag) {
    // SAFETY: as in `take_signal`.
    unsafe {
        core::ptr::write_volatile(&raw mut microkit_signal_cap, cap);
        core::ptr::write_volatile(&raw mut microkit_signal_msg, SeL4MessageInfo::from_tag(tag));
        core::ptr::write_volatile(&raw mut microkit_have_signal, 1);
    }
}

/// Sends a deferred signal now (before a `ReplyRecv`, which has no send half of its own).
fn flush_signal() {
    if let Some((cap, tag)) = take_signal() {
        Cap::<Any>::from_bits(cap).send(tag, [0; 4]);
    }
}

unsafe extern "C" {
    static __init_array_start: [Option<unsafe extern "C" fn()>; 0];
    static __init_array_end: [Option<unsafe extern "C" fn()>; 0];
}

/// Runs the C program's constructors (`__attribute__((constructor))`), in order.
fn run_constructors() {
    let start = (&raw const __init_array_start).cast::<Option<unsafe extern "C" fn()>>();
    let end = (&raw const __init_array_end).cast::<Option<unsafe extern "C" fn()>>();
    let count = (end as usize).saturating_sub(start as usize) / core::mem::size_of::<usize>();
    for i in 0..count {
        // SAFETY: `microkit.ld` places every `.init_array` entry between the two symbols,
        // so the `count` words from `start` are the program's constructor pointers.
        let constructor = unsafe { start.add(i).read() };
        if let Some(f) = constructor {
            // SAFETY: a constructor the C compiler emitted, which takes nothing.
            unsafe { f() };
        }
    }
}

/// The program's entry, called by the runtime's `_start`: constructors, `init`, then
/// Microkit's event loop over the C entry points.
#[unsafe(no_mangle)]
extern "C" fn atoll_pd_main() -> ! {
    run_constructors();
    // SAFETY: the C program's `init`, which takes nothing.
    unsafe { init() };
    if crate::pd_is_passive() {
        // The "ready" to the monitor rides on the first receive; a signal `init` deferred
        // goes first.
        flush_signal();
        set_signal(slot::MONITOR_ENDPOINT.into(), Tag(0));
    }
    crate::handler::ack_every_irq();
    let mut reply: Option<Tag> = None;
    loop {
        let event = match reply.take() {
            Some(tag) => {
                flush_signal();
                ipc::reply_recv(crate::MessageInfo::from_inner(tag))
            }
            None => match take_signal() {
                Some((cap, tag)) => ipc::nb_send_recv(Cap::from_bits(cap), tag),
                None => ipc::recv(),
            },
        };
        match event {
            Event::Notified(channels) => {
                for channel in channels.iter() {
                    // SAFETY: the C program's `notified`.
                    unsafe { notified(channel.index() as u32) };
                }
            }
            Event::Protected(channel, info) => {
                let msginfo = SeL4MessageInfo::from_tag(info.into_inner());
                // SAFETY: the C program's (or the default) `protected`.
                let answer = unsafe { protected(channel.index() as u32, msginfo) };
                reply = Some(answer.tag());
            }
            Event::Fault(child, info) => {
                let msginfo = SeL4MessageInfo::from_tag(info.into_inner());
                let mut answer = SeL4MessageInfo::default();
                // SAFETY: the C program's (or the default) `fault`, given a valid pointer
                // to a tag it may write.
                let replies = unsafe { fault(child.index() as u32, msginfo, &raw mut answer) };
                if replies != 0 {
                    reply = Some(answer.tag());
                }
            }
        }
    }
}

// Debug output. The release and benchmark configurations of the SDK build the library
// with `c-api-quiet`: as with Microkit's, those print nothing.

fn put_char(c: u8) {
    if cfg!(not(feature = "c-api-quiet")) {
        atoll_sys::debug_put_char(c);
    }
}

/// The library's output: debug output unless the configuration is quiet.
struct Out;

impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(put_char);
        Ok(())
    }
}

/// Prints `text` through [`Out`].
fn say(text: core::fmt::Arguments<'_>) {
    let _ = core::fmt::Write::write_fmt(&mut Out, text);
}

fn name() -> &'static str {
    crate::name_or_placeholder()
}

/// `microkit_dbg_putc`: one byte (the low 8 bits of `c`).
#[unsafe(no_mangle)]
pub extern "C" fn microkit_dbg_putc(c: c_int) {
    put_char(c as u8);
}

/// `microkit_dbg_puts`: a NUL-terminated string; a null pointer prints nothing.
///
/// # Safety
///
/// `s` is null or points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microkit_dbg_puts(s: *const c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let text = unsafe { core::ffi::CStr::from_ptr(s) };
    text.to_bytes().iter().copied().for_each(put_char);
}

/// `microkit_dbg_put8`: an 8-bit number in decimal.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_dbg_put8(x: u8) {
    say(format_args!("{x}"));
}

/// `microkit_dbg_put32`: a 32-bit number in decimal.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_dbg_put32(x: u32) {
    say(format_args!("{x}"));
}

/// Whether `ch` is one of the channels in `mask`; otherwise prints Microkit's message for
/// `call` and returns false.
fn channel_ok(ch: u32, mask: u64, call: &str) -> bool {
    let ok = ch < MAX_CHANNELS && mask & (1 << ch) != 0;
    if !ok {
        say(format_args!(
            "{} {call}: invalid channel given '{ch}'\n",
            name()
        ));
    }
    ok
}

/// Whether `child` is a child id at all; otherwise prints a message for `call`.
fn child_ok(child: u32, call: &str) -> bool {
    let ok = child < MAX_CHANNELS;
    if !ok {
        say(format_args!(
            "{} {call}: invalid child given '{child}'\n",
            name()
        ));
    }
    ok
}

/// Reports a refused operation on a child and stops this PD, as Microkit's library does.
fn child_refused(call: &str, child: u32, error: Error) -> ! {
    say(format_args!("{call}: error on child '{child}'\n"));
    panic!("{call}: child {child}: error {}", error as u32);
}

fn notification(ch: u32) -> Cap<Notification> {
    Cap::from_bits(u64::from(slot::OUTPUT_NOTIFICATION + ch))
}

fn irq_handler(ch: u32) -> Cap<IrqHandler> {
    Cap::from_bits(u64::from(slot::IRQ_HANDLER + ch))
}

fn child_tcb(child: u32) -> Cap<Tcb> {
    Cap::from_bits(u64::from(slot::CHILD_TCB + child))
}

/// `microkit_notify`.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_notify(ch: u32) {
    if channel_ok(ch, notifications(), "microkit_notify") {
        notification(ch).signal();
    }
}

/// `microkit_irq_ack`.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_irq_ack(ch: u32) {
    if channel_ok(ch, irqs(), "microkit_irq_ack")
        && let Err(e) = irq_handler(ch).ack()
    {
        say(format_args!(
            "{} microkit_irq_ack: error {}\n",
            name(),
            e as u64
        ));
    }
}

/// `microkit_deferred_notify`: the notify rides on the next receive.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_deferred_notify(ch: u32) {
    if channel_ok(ch, notifications(), "microkit_deferred_notify") {
        set_signal(notification(ch).bits(), Tag(0));
    }
}

/// `microkit_deferred_irq_ack`: the acknowledgement rides on the next receive.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_deferred_irq_ack(ch: u32) {
    if channel_ok(ch, irqs(), "microkit_deferred_irq_ack") {
        set_signal(irq_handler(ch).bits(), Tag::new(label::IRQ_HANDLER_ACK, 0));
    }
}

/// `microkit_ppcall`: the reply's tag (its registers replace the message registers), or
/// an empty tag when the PD may not call on `ch`.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_ppcall(ch: u32, msginfo: SeL4MessageInfo) -> SeL4MessageInfo {
    if !channel_ok(ch, pps(), "microkit_ppcall") {
        return SeL4MessageInfo::default();
    }
    seL4_Call(u64::from(slot::OUTPUT_ENDPOINT + ch), msginfo)
}

/// `microkit_pd_restart`: starts child `child` again at `entry_point`, its stack pointer
/// back at the top of its stack.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_pd_restart(child: u32, entry_point: u64) {
    if child_ok(child, "microkit_pd_restart")
        && let Err(e) = child_tcb(child).restart_at(entry_point, vspace::STACK_TOP)
    {
        child_refused("microkit_pd_restart", child, e);
    }
}

/// `microkit_pd_stop`.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_pd_stop(child: u32) {
    if child_ok(child, "microkit_pd_stop")
        && let Err(e) = child_tcb(child).suspend()
    {
        child_refused("microkit_pd_stop", child, e);
    }
}

/// `microkit_pd_resume`.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_pd_resume(child: u32) {
    if child_ok(child, "microkit_pd_resume")
        && let Err(e) = child_tcb(child).resume()
    {
        child_refused("microkit_pd_resume", child, e);
    }
}

/// `microkit_pd_set_affinity` (an Atoll extension): moves child `child` to `core`, a
/// board core index of this PD's replica.
#[unsafe(no_mangle)]
pub extern "C" fn microkit_pd_set_affinity(child: u32, core: u32) {
    if child_ok(child, "microkit_pd_set_affinity")
        && let Err(e) = child_tcb(child).set_affinity(u64::from(core))
    {
        child_refused("microkit_pd_set_affinity", child, e);
    }
}

/// `microkit_arm_smc_call`: a firmware call for a PD with `smc="true"`; a refused call
/// is reported and stops the PD, as in Microkit.
///
/// # Safety
///
/// `args` and `response` point to valid `seL4_ARM_SMCContext`s (they may be the same).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn microkit_arm_smc_call(args: *const SmcContext, response: *mut SmcContext) {
    // SAFETY: forwarded from the caller.
    let error = unsafe { seL4_ARM_SMC_Call(slot::ARM_SMC.into(), args, response) };
    if error != 0 {
        say(format_args!(
            "microkit_arm_smc_call: error making SMC call\n"
        ));
        panic!("microkit_arm_smc_call: error {error}");
    }
}

// seL4's user library, the part `microkit.h` and Microkit's programs use. Message
// registers live in the IPC buffer, as in seL4's; the first four travel in CPU registers.

fn status(result: Result<(), Error>) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e as c_int,
    }
}

/// `seL4_Send`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_Send(dest: u64, msginfo: SeL4MessageInfo) {
    let info = crate::MessageInfo::from_inner(msginfo.tag());
    Cap::<Any>::from_bits(dest).send(msginfo.tag(), outgoing(info));
}

/// `seL4_NBSend`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_NBSend(dest: u64, msginfo: SeL4MessageInfo) {
    let info = crate::MessageInfo::from_inner(msginfo.tag());
    atoll_sys::full(
        syscall::NB_SEND,
        dest,
        msginfo.tag().0,
        outgoing(info),
        0,
        0,
    );
}

/// `seL4_Call`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_Call(dest: u64, msginfo: SeL4MessageInfo) -> SeL4MessageInfo {
    let info = crate::MessageInfo::from_inner(msginfo.tag());
    let r = Cap::<Endpoint>::from_bits(dest).call(msginfo.tag(), outgoing(info));
    let answer = crate::MessageInfo::from_inner(r.tag());
    incoming(answer, r.mrs);
    SeL4MessageInfo::from_tag(r.tag())
}

/// `seL4_Recv` (MCS: with the reply object to fill).
///
/// # Safety
///
/// `sender` is null or points to a word the badge may be written to.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seL4_Recv(src: u64, sender: *mut u64, reply: u64) -> SeL4MessageInfo {
    let r = Cap::<Endpoint>::from_bits(src).recv(Cap::from_bits(reply));
    incoming(crate::MessageInfo::from_inner(r.tag()), r.mrs);
    if !sender.is_null() {
        // SAFETY: the caller passes a writable word.
        unsafe { sender.write(r.badge) };
    }
    SeL4MessageInfo::from_tag(r.tag())
}

/// `seL4_Signal`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_Signal(dest: u64) {
    Cap::<Notification>::from_bits(dest).signal();
}

/// Stores a notification's bits for `seL4_Wait` and `seL4_Poll`.
fn notification_word(sender: *mut u64, bits: u64) -> SeL4MessageInfo {
    if !sender.is_null() {
        // SAFETY: the callers' contract: `sender` is null or writable.
        unsafe { sender.write(bits) };
    }
    SeL4MessageInfo::default()
}

/// `seL4_Wait` on a notification: its bits go to `*sender`.
///
/// # Safety
///
/// `sender` is null or points to a writable word.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seL4_Wait(src: u64, sender: *mut u64) -> SeL4MessageInfo {
    notification_word(sender, Cap::<Notification>::from_bits(src).wait())
}

/// `seL4_Poll` on a notification: its bits (0 if none) go to `*sender`.
///
/// # Safety
///
/// `sender` is null or points to a writable word.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seL4_Poll(src: u64, sender: *mut u64) -> SeL4MessageInfo {
    notification_word(sender, Cap::<Notification>::from_bits(src).poll())
}

/// `seL4_Yield`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_Yield() {
    atoll_sys::yield_now();
}

/// `seL4_DebugPutChar` (printing in every configuration, as the kernel call does).
#[unsafe(no_mangle)]
#[allow(
    clippy::unnecessary_cast,
    reason = "c_char is u8 on aarch64 but i8 on the hosts the runtime's tests run on"
)]
pub extern "C" fn seL4_DebugPutChar(c: c_char) {
    atoll_sys::debug_put_char(c as u8);
}

/// `seL4_TCB_Suspend`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_TCB_Suspend(service: u64) -> c_int {
    status(Cap::<Tcb>::from_bits(service).suspend())
}

/// `seL4_TCB_Resume`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_TCB_Resume(service: u64) -> c_int {
    status(Cap::<Tcb>::from_bits(service).resume())
}

/// `seL4_UserContext` on AArch64, in seL4's order.
#[repr(C)]
pub struct UserContext {
    pc: u64,
    sp: u64,
    spsr: u64,
    x: [u64; 31],
    tpidr_el0: u64,
    tpidrro_el0: u64,
}

/// `seL4_TCB_WriteRegisters`: the first `count` registers of `regs` in seL4's order. The
/// kernel sets a thread's pc, sp and x0–x3: a count that reaches past x3 is refused with
/// `seL4_InvalidArgument`; spsr (third) is not settable and is ignored; a count of 1 keeps
/// the thread's stack pointer. `arch_flags` must be 0.
///
/// # Safety
///
/// `regs` points to a valid `seL4_UserContext`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seL4_TCB_WriteRegisters(
    service: u64,
    resume_target: Bool,
    arch_flags: u8,
    count: u64,
    regs: *const UserContext,
) -> c_int {
    const SETTABLE: u64 = 7; // pc, sp, spsr (ignored), x0-x3
    if arch_flags != 0 || count == 0 || count > SETTABLE || regs.is_null() {
        return Error::InvalidArgument as c_int;
    }
    // SAFETY: the caller passes a valid context.
    let regs = unsafe { &*regs };
    let tcb = Cap::<Tcb>::from_bits(service);
    let sp = if count >= 2 {
        regs.sp
    } else {
        match tcb.invoke(label::TCB_READ_REGISTERS, &[]) {
            Ok(current) => current[1],
            Err(e) => return e as c_int,
        }
    };
    let x = |i: u64| if count > 3 + i { regs.x[i as usize] } else { 0 };
    let args = [
        u64::from(resume_target != 0),
        regs.pc,
        sp,
        x(0),
        x(1),
        x(2),
        x(3),
    ];
    let result = tcb.invoke_long(BUFFER, label::TCB_WRITE_REGISTERS, &args);
    status(result.map(drop))
}

/// `seL4_IRQHandler_Ack`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_IRQHandler_Ack(service: u64) -> c_int {
    status(Cap::<IrqHandler>::from_bits(service).ack())
}

/// `seL4_ARM_SMC_Call`.
///
/// # Safety
///
/// `args` and `response` point to valid `seL4_ARM_SMCContext`s (they may be the same).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seL4_ARM_SMC_Call(
    service: u64,
    args: *const SmcContext,
    response: *mut SmcContext,
) -> c_int {
    if args.is_null() || response.is_null() {
        return Error::InvalidArgument as c_int;
    }
    // SAFETY: the caller passes a valid context.
    let regs = unsafe { (*args).regs };
    match Cap::<Smc>::from_bits(service).call(BUFFER, regs) {
        Ok(out) => {
            // SAFETY: the caller passes a valid, writable context.
            unsafe { (*response).regs = out };
            0
        }
        Err(e) => e as c_int,
    }
}

/// A data or instruction cache operation over a range of this PD's own addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CacheOp {
    Clean,
    CleanInvalidate,
    Unify,
}

/// seL4's `ARM_VSpace` cache invocations, done from user space: the kernel lets EL0 clean
/// and invalidate by address (SCTLR_EL1.UCI), which covers the PD's own VSpace (slot 3),
/// the only one a Microkit PD holds. Another capability is refused with
/// `seL4_InvalidCapability`, an empty or wrapping range with `seL4_InvalidArgument`, a
/// range past user space with `seL4_RangeError`. An unmapped address faults the PD
/// (seL4 returns `seL4_FailedLookup`).
fn vspace_cache(vspace: u64, start: u64, end: u64, op: CacheOp) -> c_int {
    if vspace != u64::from(slot::VSPACE) {
        return Error::InvalidCapability as c_int;
    }
    if end <= start {
        return Error::InvalidArgument as c_int;
    }
    if end > vspace::USER_TOP {
        return Error::RangeError as c_int;
    }
    cache_range(start, end, op);
    0
}

#[cfg(target_arch = "aarch64")]
fn cache_range(start: u64, end: u64, op: CacheOp) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0, which the kernel lets EL0 read (SCTLR_EL1.UCT).
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let dline = 4u64 << ((ctr >> 16) & 0xF);
    let iline = 4u64 << (ctr & 0xF);
    let mut at = start & !(dline - 1);
    while at < end {
        // SAFETY: cache maintenance by address on the PD's own mapping; it changes no
        // memory contents a program can observe except by cleaning them to memory.
        unsafe {
            match op {
                CacheOp::Clean => core::arch::asm!("dc cvac, {}", in(reg) at, options(nostack)),
                CacheOp::CleanInvalidate => {
                    core::arch::asm!("dc civac, {}", in(reg) at, options(nostack))
                }
                CacheOp::Unify => core::arch::asm!("dc cvau, {}", in(reg) at, options(nostack)),
            }
        }
        at += dline;
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
    if op == CacheOp::Unify {
        let mut at = start & !(iline - 1);
        while at < end {
            // SAFETY: instruction cache invalidation by address on the PD's own mapping.
            unsafe { core::arch::asm!("ic ivau, {}", in(reg) at, options(nostack)) };
            at += iline;
        }
        // SAFETY: barriers.
        unsafe { core::arch::asm!("dsb ish", "isb", options(nostack)) };
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn cache_range(_start: u64, _end: u64, _op: CacheOp) {}

/// `seL4_ARM_VSpace_Clean_Data`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_ARM_VSpace_Clean_Data(vspace: u64, start: u64, end: u64) -> c_int {
    vspace_cache(vspace, start, end, CacheOp::Clean)
}

/// `seL4_ARM_VSpace_Invalidate_Data`: cleans as it invalidates (EL0 cannot discard a
/// dirty line without writing it back), which is what DMA buffers need.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_ARM_VSpace_Invalidate_Data(vspace: u64, start: u64, end: u64) -> c_int {
    vspace_cache(vspace, start, end, CacheOp::CleanInvalidate)
}

/// `seL4_ARM_VSpace_CleanInvalidate_Data`.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_ARM_VSpace_CleanInvalidate_Data(vspace: u64, start: u64, end: u64) -> c_int {
    vspace_cache(vspace, start, end, CacheOp::CleanInvalidate)
}

/// `seL4_ARM_VSpace_Unify_Instruction`: new code in the range becomes visible to
/// instruction fetch.
#[unsafe(no_mangle)]
pub extern "C" fn seL4_ARM_VSpace_Unify_Instruction(vspace: u64, start: u64, end: u64) -> c_int {
    vspace_cache(vspace, start, end, CacheOp::Unify)
}
