//! User space: the replica's kernel objects and threads on this CPU.
//!
//! The portable kernel (`atoll_kernel_core::kernel`) holds every object and decides who
//! runs; this module is its CPU side. At boot the primary core builds the initialiser from
//! boot memory (its root CNode, TCB, scheduling context, address space and IPC buffer),
//! hands it the untyped memory its boot program lists (`atoll_abi::bootprog`, written by
//! the `microkit` tool), IRQ control and scheduling control, maps the boot program
//! read-only into it, and starts it. Every exception from EL0 then saves the thread's
//! registers into its TCB, calls the kernel, and returns into whichever thread the
//! kernel chose, switching address space (by ASID) only when it changes. With nothing to
//! run, the core waits for an interrupt inside the exception.
//!
//! User threads run on the replica's primary core only; its other cores serve their own
//! interrupts. FP/SIMD registers are switched lazily: a thread's first FP instruction
//! after a switch traps, and only then are the registers saved for their owner and loaded
//! for it (the kernel itself is soft-float and never touches them).

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::bootprog::{self, BootProgram, BootProgramError};
use atoll_abi::limits::{LOG_LINE_BYTES, PAGE_SIZE, PD_TIMER_INTID};
use atoll_abi::spec::{PhysRange, attrs, layout};
use atoll_abi::syscall::{fault, initial};
use atoll_kernel_core::cap::Cap;
use atoll_kernel_core::fault::{Syndrome, exception_class};
use atoll_kernel_core::id::{Table, ThreadId};
use atoll_kernel_core::kernel::{Context, InitialiserBoot, Kernel, MAX_THREADS, Machine};
use atoll_kernel_core::line::LineBuf;
use atoll_kernel_core::pagetable::{self, ENTRIES, MapError, TableMemory};

use crate::sync::IrqSpinLock;
use crate::{Replica, arch, console, fatal, klog};

/// Top of the initialiser's stack (user virtual address).
const USER_STACK_TOP: u64 = 0x40_0000_0000;
/// Pages of user stack.
const USER_STACK_PAGES: u64 = 4;
/// The initialiser's priority: above every PD, so it finishes building before they run.
const INITIALISER_PRIORITY: u8 = 255;

/// FP/SIMD state of a thread: q0–q31, then FPSR and FPCR.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct FpState([u64; 66]);

/// The replica's kernel and the CPU-side state that goes with it, under the replica lock.
struct KernelCell {
    lock: IrqSpinLock,
    inner: UnsafeCell<Inner>,
}

/// Each thread's debug output line so far.
type Lines = Table<ThreadId, LineBuf<LOG_LINE_BYTES>, MAX_THREADS>;

struct Inner {
    kernel: Kernel,
    /// The thread this core last returned to.
    loaded: Option<ThreadId>,
    /// Its address space (root, ASID), to skip needless switches.
    space: (u64, u16),
    /// The thread whose FP/SIMD registers are in the CPU.
    fp_owner: Option<ThreadId>,
    /// Whether EL0 may use FP/SIMD now (`CPACR_EL1.FPEN`), to skip needless writes.
    fp_enabled: bool,
    fp: Table<ThreadId, FpState, MAX_THREADS>,
    lines: Lines,
    started: bool,
}

// SAFETY: `inner` is only reached through `with`, which holds `lock`.
unsafe impl Sync for KernelCell {}

static KERNEL: KernelCell = KernelCell {
    lock: IrqSpinLock::new(),
    inner: UnsafeCell::new(Inner {
        kernel: Kernel::new(),
        loaded: None,
        space: (0, 0),
        fp_owner: None,
        fp_enabled: false,
        fp: Table::filled(FpState([0; 66])),
        lines: Table::filled(LineBuf::new()),
        started: false,
    }),
};

/// Runs `f` on the replica's kernel state with the replica lock held.
fn with<T>(f: impl FnOnce(&mut Inner) -> T) -> T {
    let _guard = KERNEL.lock.lock();
    // SAFETY: the lock is held for the whole borrow, so it is the only one.
    f(unsafe { &mut *KERNEL.inner.get() })
}

/// Counter value when budgets were last charged.
static LAST_CHARGE: AtomicU64 = AtomicU64::new(0);

/// The machine as the portable kernel sees it.
struct Hw<'a> {
    r: &'a Replica,
    lines: &'a mut Lines,
    fp: &'a mut Table<ThreadId, FpState, MAX_THREADS>,
    fp_owner: &'a mut Option<ThreadId>,
}

impl Inner {
    /// The kernel and the machine it works on (this replica, and the threads' output
    /// lines), borrowed apart.
    fn kernel_and_hw<'a>(&'a mut self, r: &'a Replica) -> (&'a mut Kernel, Hw<'a>) {
        let hw = Hw {
            r,
            lines: &mut self.lines,
            fp: &mut self.fp,
            fp_owner: &mut self.fp_owner,
        };
        (&mut self.kernel, hw)
    }
}

impl Hw<'_> {
    /// The kernel's pointer to `[pa, pa + size)` if it lies in this replica's RAM.
    fn linear(&self, pa: u64, size: u64) -> Option<*mut u8> {
        let ram = self.r.spec.ram;
        let end = pa.checked_add(size)?;
        (pa >= ram.base && end <= ram.end()).then(|| linear(self.r, pa))
    }
}

impl Machine for Hw<'_> {
    fn page(&mut self, pa: u64) -> Option<&mut [u64; 512]> {
        if !pa.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        let p = self.linear(pa, PAGE_SIZE)?;
        // SAFETY: the page is replica RAM, mapped by the linear map; the kernel's objects
        // (tables, IPC buffers) are only touched under the replica lock, which is held.
        Some(unsafe { &mut *p.cast::<[u64; 512]>() })
    }

    fn zero(&mut self, pa: u64, size: u64) -> bool {
        // Only memory past the loader's area: what the loader filled keeps its contents.
        let free = self.r.spec.ram.base.saturating_add(self.r.spec.free_offset);
        if pa < free {
            return false;
        }
        let Some(p) = self.linear(pa, size) else {
            return false;
        };
        // SAFETY: free replica RAM, retyped into the object being created, which nothing
        // else uses.
        unsafe { core::ptr::write_bytes(p, 0, size as usize) };
        true
    }

    fn put_char(&mut self, thread: ThreadId, c: u8) {
        let line = &mut self.lines[thread];
        if c == b'\n' {
            console::log_raw(self.r, line.as_bytes());
            line.clear();
        } else {
            let _ = line.write_char(if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            });
        }
    }

    fn unhandled_fault(&mut self, thread: ThreadId, label: u64, mrs: &[u64; 4]) {
        let thread = thread.index();
        let [pc, a, b, c] = *mrs;
        let tail = "it is stopped, the replica goes on";
        match label {
            fault::VM_FAULT => klog!(
                "ERROR",
                "thread {thread} faulted: {} FAR {a:#x} PC {pc:#x}; {tail}",
                Syndrome(c)
            ),
            fault::USER_EXCEPTION => klog!(
                "ERROR",
                "thread {thread} faulted: {} PC {pc:#x}; {tail}",
                Syndrome(b)
            ),
            fault::CAP_FAULT => klog!(
                "ERROR",
                "thread {thread} faulted: no usable capability at address {a:#x} for system call {} PC {pc:#x}; {tail}",
                b as i64
            ),
            fault::UNKNOWN_SYSCALL => klog!(
                "ERROR",
                "thread {thread} faulted: unknown system call {} PC {pc:#x}; {tail}",
                b as i64
            ),
            _ => klog!(
                "ERROR",
                "thread {thread} faulted ({label}) PC {pc:#x}; {tail}"
            ),
        }
    }

    fn flush_tlb(&mut self, asid: u16, va: Option<u64>) {
        arch::flush_user_tlb(asid, va);
    }

    fn claim_irq(&mut self, irq: u32, _edge: bool) -> bool {
        if irq == PD_TIMER_INTID {
            // The tool puts the timer's PD alone in its replica; it programs the timer
            // from EL0 on this core, the one that runs the replica's threads.
            arch::allow_user_physical_timer();
            return true;
        }
        // The loader routed (and set the trigger of) every shared interrupt the spec gives
        // us.
        self.r
            .spec
            .irq_routes()
            .iter()
            .any(|route| route.intid == irq)
    }

    fn set_irq_enabled(&mut self, irq: u32, enabled: bool) {
        // A per-core interrupt (the PD timer) is this core's: the one that runs the
        // replica's threads. It cannot fail: this core's redistributor was found when the
        // core came up.
        let mpidr = self.r.core_mpidr(self.r.spec.primary_core());
        let _ = self.r.gic.set_enabled(irq, mpidr, enabled);
    }

    fn ring_doorbell(&mut self, replica: u32, word: u32, bits: u64) -> bool {
        crate::doorbell::ring_pd_word(self.r, replica as usize, word, bits)
    }

    fn take_pending_word(&mut self, word: u32) -> Option<u64> {
        crate::doorbell::take_pd_word(self.r, word)
    }

    fn ticks_per_us(&self) -> u64 {
        (self.r.counter_hz / 1_000_000).max(1)
    }

    fn thread_created(&mut self, thread: ThreadId) {
        // The CPU may still hold a destroyed thread's FP registers as this id's: they are
        // not the new thread's (its first FP instruction loads its own, zeroed, state).
        self.lines[thread].clear();
        self.fp[thread] = FpState([0; 66]);
        if *self.fp_owner == Some(thread) {
            *self.fp_owner = None;
        }
    }
}

/// Pages handed out from the replica's free memory at boot, before untyped memory exists.
struct BootPages<'a> {
    replica: &'a Replica,
    next: u64,
}

impl BootPages<'_> {
    /// `pages` zeroed pages: the physical address of the first.
    fn pages(&mut self, pages: u64) -> Option<u64> {
        let ram = self.replica.spec.ram;
        let offset = self.next;
        let size = pages.checked_mul(PAGE_SIZE)?;
        let next = offset.checked_add(size)?;
        if next > ram.size {
            return None;
        }
        self.next = next;
        let pa = ram.base.checked_add(offset)?;
        // SAFETY: the pages lie in this replica's free memory, which the linear map covers
        // and nothing else uses yet.
        unsafe { core::ptr::write_bytes(linear(self.replica, pa), 0, size as usize) };
        Some(pa)
    }
}

/// The kernel's view of a physical address in this replica's RAM (the linear map covers
/// exactly the replica's RAM from `LINEAR_MAP_BASE`; callers check `pa` lies in it).
fn linear(r: &Replica, pa: u64) -> *mut u8 {
    layout::LINEAR_MAP_BASE.wrapping_add(pa.wrapping_sub(r.spec.ram.base)) as *mut u8
}

impl TableMemory for BootPages<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.pages(1)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` came from `pages`, a zeroed page of this replica's free memory that
        // only these tables use.
        unsafe { &mut *linear(self.replica, pa).cast::<[u64; ENTRIES]>() }
    }
}

/// Builds the initialiser's address space (program, stack, IPC buffer page at `ipc`, the
/// boot program read-only); returns the root table's physical address.
fn build_address_space(pages: &mut BootPages<'_>, ipc: u64) -> Result<u64, MapError> {
    let r = pages.replica;
    let init = r.spec.initialiser;
    let root = pages.alloc_table().ok_or(MapError::OutOfTables)?;
    let pa = r
        .spec
        .ram
        .base
        .checked_add(init.offset)
        .ok_or(MapError::Overflow)?;
    let text = init.text_size.min(init.mem_size);
    let user = attrs::USER;
    if text != 0 {
        pagetable::map(pages, root, init.vaddr, pa, text, user | attrs::EXEC)?;
    }
    if init.mem_size > text {
        let va = init.vaddr.checked_add(text).ok_or(MapError::Overflow)?;
        let data = pa.checked_add(text).ok_or(MapError::Overflow)?;
        let size = init.mem_size.saturating_sub(text);
        pagetable::map(pages, root, va, data, size, user | attrs::WRITE)?;
    }
    let stack = pages.pages(USER_STACK_PAGES).ok_or(MapError::OutOfTables)?;
    const STACK_VA: u64 = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    pagetable::map(
        pages,
        root,
        STACK_VA,
        stack,
        USER_STACK_PAGES * PAGE_SIZE,
        user | attrs::WRITE,
    )?;
    pagetable::map(
        pages,
        root,
        initial::IPC_BUFFER_VADDR,
        ipc,
        PAGE_SIZE,
        user | attrs::WRITE,
    )?;
    let spec = &r.spec;
    if spec.boot_program_size != 0 {
        let size = spec
            .boot_program_size
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MapError::Overflow)?;
        let pa = spec
            .ram
            .base
            .checked_add(spec.boot_program_offset)
            .ok_or(MapError::Overflow)?;
        pagetable::map(pages, root, bootprog::VADDR, pa, size, user)?;
    }
    Ok(root)
}

/// The replica's boot program, checked, if the spec names one.
fn boot_program(r: &Replica) -> Result<Option<BootProgram<'static>>, BootError> {
    let spec = &r.spec;
    if spec.boot_program_size == 0 {
        return Ok(None);
    }
    // The spec check keeps the program inside the replica's RAM, past the kernel, and
    // 8-byte aligned; a page-aligned start is needed to map it.
    if !spec.boot_program_offset.is_multiple_of(PAGE_SIZE)
        || spec.boot_program_size > bootprog::MAX_SIZE
    {
        return Err(BootError::Program(BootProgramError::BadField("placement")));
    }
    let pa = spec.ram.base.wrapping_add(spec.boot_program_offset);
    // SAFETY: the loader placed the boot program in this replica's RAM, which the linear
    // map covers (the spec check keeps it inside); nothing writes it (the initialiser sees
    // it read-only).
    let bytes =
        unsafe { core::slice::from_raw_parts(linear(r, pa), spec.boot_program_size as usize) };
    BootProgram::parse(bytes)
        .map(Some)
        .map_err(BootError::Program)
}

/// Checks an untyped block of the boot program: inside this replica's RAM past the boot
/// pages (`kernel_end`), or, for device memory, wholly outside it and the kernel shared
/// area; never over the boot program itself.
fn untyped_allowed(r: &Replica, u: &bootprog::Untyped, kernel_end: u64) -> bool {
    let block = untyped_range(u);
    let spec = &r.spec;
    let program = PhysRange {
        base: spec.ram.base.saturating_add(spec.boot_program_offset),
        size: spec.boot_program_size,
    };
    let shared = PhysRange {
        base: spec.shared.pa,
        size: spec.shared.size,
    };
    let in_ram = spec.ram.contains(&block) && block.base >= kernel_end;
    let device = u.flags & bootprog::untyped_flags::DEVICE != 0
        && !spec.ram.overlaps(&block)
        && !shared.overlaps(&block);
    (in_ram || device) && !program.overlaps(&block)
}

/// The memory an untyped block of the boot program covers (its size checked to be 12 to
/// 47 bits when the program was parsed).
fn untyped_range(u: &bootprog::Untyped) -> PhysRange {
    PhysRange {
        base: u.base,
        size: 1u64.wrapping_shl(u.size_bits),
    }
}

/// Why the initialiser could not be built.
enum BootError {
    OutOfMemory,
    Map(MapError),
    Kernel(atoll_abi::error::Error),
    Program(BootProgramError),
    Untyped(u64),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("the replica's free memory is too small"),
            Self::Map(e) => write!(f, "mapping its program failed: {e:?}"),
            Self::Kernel(e) => write!(f, "the kernel refused a boot object: {e:?}"),
            Self::Program(e) => write!(f, "its {e}"),
            Self::Untyped(base) => write!(
                f,
                "its boot program lists untyped memory at {base:#x} that the replica may not hand out"
            ),
        }
    }
}

/// Builds the initialiser's objects and capabilities; returns how many untyped blocks it
/// received and their total size.
fn build_initialiser(r: &Replica, inner: &mut Inner) -> Result<(usize, u64), BootError> {
    let mut pages = BootPages {
        replica: r,
        next: r.spec.free_offset,
    };
    const CNODE_PAGES: u64 =
        (1u64 << (initial::ROOT_RADIX as u32 + atoll_abi::microkit::CNODE_SLOT_BITS)) / PAGE_SIZE;
    let cnode = pages.pages(CNODE_PAGES).ok_or(BootError::OutOfMemory)?;
    let tcb = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let sc = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let ipc = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let root = build_address_space(&mut pages, ipc).map_err(BootError::Map)?;
    // Untyped memory: exactly the blocks the boot program lists, each checked, none
    // overlapping another.
    let program = boot_program(r)?;
    let blocks = program.map_or(&[][..], |p| p.untyped());
    const LIMIT: usize = (initial::FIRST_FREE - initial::FIRST_UNTYPED) as usize;
    if blocks.len() > LIMIT {
        return Err(BootError::Program(BootProgramError::BadField(
            "untyped_count",
        )));
    }
    let kernel_end = r.spec.ram.base.saturating_add(pages.next);
    for (i, u) in blocks.iter().enumerate() {
        let before = blocks.get(..i).unwrap_or_default();
        if !untyped_allowed(r, u, kernel_end)
            || before
                .iter()
                .any(|o| untyped_range(o).overlaps(&untyped_range(u)))
        {
            return Err(BootError::Untyped(u.base));
        }
    }
    let untyped = blocks.iter().map(|u| Cap::Untyped {
        base: u.base,
        size_bits: u.size_bits as u8,
        watermark: 0,
        device: u.flags & bootprog::untyped_flags::DEVICE != 0,
    });
    let init = r.spec.initialiser;
    let mut ctx = Context {
        pc: init.entry,
        sp: USER_STACK_TOP,
        ..Context::default()
    };
    ctx.x[0] = r.index as u64;
    ctx.x[1] = u64::from(r.spec.flags);
    ctx.x[2] = blocks.len() as u64;
    ctx.x[3] = r.spec.boot_program_size;
    let layout = InitialiserBoot {
        cnode,
        tcb,
        sched_context: sc,
        vspace: root,
        ipc_buffer: ipc,
        // A budget as long as its period (a second): the initialiser is never throttled.
        budget: r.counter_hz,
        priority: INITIALISER_PRIORITY,
        ctx,
    };
    inner
        .kernel
        .boot_initialiser(&layout, untyped)
        .map_err(BootError::Kernel)?;
    let bytes = blocks
        .iter()
        .fold(0u64, |sum, u| sum.saturating_add(untyped_range(u).size));
    Ok((blocks.len(), bytes))
}

unsafe extern "C" {
    /// Returns to the thread whose saved registers are at `ctx` (entry.S); `ctx` becomes
    /// where its next exception saves them.
    fn return_to_user(ctx: *mut Context) -> !;
    /// Saves the FP/SIMD registers to `state` (528 bytes, 16-byte aligned).
    fn fp_save(state: *mut FpState);
    /// Loads the FP/SIMD registers from `state`.
    fn fp_restore(state: *const FpState);
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".section .text.fp, \"ax\"",
    ".global fp_save",
    "fp_save:",
    "    stp q0, q1, [x0, #0]",
    "    stp q2, q3, [x0, #32]",
    "    stp q4, q5, [x0, #64]",
    "    stp q6, q7, [x0, #96]",
    "    stp q8, q9, [x0, #128]",
    "    stp q10, q11, [x0, #160]",
    "    stp q12, q13, [x0, #192]",
    "    stp q14, q15, [x0, #224]",
    "    stp q16, q17, [x0, #256]",
    "    stp q18, q19, [x0, #288]",
    "    stp q20, q21, [x0, #320]",
    "    stp q22, q23, [x0, #352]",
    "    stp q24, q25, [x0, #384]",
    "    stp q26, q27, [x0, #416]",
    "    stp q28, q29, [x0, #448]",
    "    stp q30, q31, [x0, #480]",
    "    mrs x1, fpsr",
    "    mrs x2, fpcr",
    "    add x3, x0, #512",
    "    stp x1, x2, [x3]",
    "    ret",
    ".global fp_restore",
    "fp_restore:",
    "    ldp q0, q1, [x0, #0]",
    "    ldp q2, q3, [x0, #32]",
    "    ldp q4, q5, [x0, #64]",
    "    ldp q6, q7, [x0, #96]",
    "    ldp q8, q9, [x0, #128]",
    "    ldp q10, q11, [x0, #160]",
    "    ldp q12, q13, [x0, #192]",
    "    ldp q14, q15, [x0, #224]",
    "    ldp q16, q17, [x0, #256]",
    "    ldp q18, q19, [x0, #288]",
    "    ldp q20, q21, [x0, #320]",
    "    ldp q22, q23, [x0, #352]",
    "    ldp q24, q25, [x0, #384]",
    "    ldp q26, q27, [x0, #416]",
    "    ldp q28, q29, [x0, #448]",
    "    ldp q30, q31, [x0, #480]",
    "    add x3, x0, #512",
    "    ldp x1, x2, [x3]",
    "    msr fpsr, x1",
    "    msr fpcr, x2",
    "    ret",
);

/// Starts the initialiser on this (the primary) core; never returns. Without one (an image
/// that carries none), the core just serves interrupts.
pub fn start_initialiser(r: &Replica) -> ! {
    if r.spec.initialiser.mem_size == 0 {
        idle_forever();
    }
    let built = with(|inner| {
        let built = build_initialiser(r, inner);
        inner.started = built.is_ok();
        built
    });
    match built {
        Ok((count, bytes)) => klog!(
            "INFO",
            "initialiser starting with {count} untyped blocks ({} KiB)",
            bytes >> 10
        ),
        Err(e) => {
            klog!("ERROR", "cannot build the initialiser: {e}");
            idle_forever();
        }
    }
    LAST_CHARGE.store(arch::counter(), Ordering::Relaxed);
    arch::enable_low_half(0);
    arch::set_fp_enabled(false);
    let ctx = resume(r);
    // SAFETY: `ctx` is the chosen thread's saved registers, in its TCB inside the static
    // kernel state, where they stay; only this core runs user threads.
    unsafe { return_to_user(ctx) }
}

/// Serves interrupts until the machine stops.
pub fn idle_forever() -> ! {
    arch::irq_enable();
    loop {
        arch::wait_for_interrupt();
    }
}

/// Chooses the thread to return to (waiting for one if there is none) and returns its
/// saved registers.
fn resume(r: &Replica) -> *mut Context {
    loop {
        if let Some(ctx) = with(|inner| choose(r, inner)) {
            return ctx;
        }
        let status = r.status();
        // Settled: every thread is blocked, none merely out of budget until its next period
        // (the initialiser can run out of budget while it builds the PDs).
        if status.user_settled.load(Ordering::Relaxed) == 0
            && !with(|inner| inner.kernel.waiting_for_budget())
        {
            status.settled_at.store(arch::counter(), Ordering::Relaxed);
            status.user_settled.store(1, Ordering::Release);
            crate::boot::on_user_settled(r);
        }
        inner_idle(r);
    }
}

/// Loads the thread the kernel chose, if any: its address space and FP access, and the
/// timer armed for its budget. Returns its saved registers. A chosen thread without an
/// address space is stopped, and the kernel chooses again.
fn choose(r: &Replica, inner: &mut Inner) -> Option<*mut Context> {
    loop {
        let t = inner.kernel.current()?;
        let Some(space) = inner.kernel.address_space(t) else {
            let pc = inner.kernel.context(t).map_or(0, |c| c.pc);
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [pc, 0, 0, 0]);
            continue;
        };
        let ctx: *mut Context = inner.kernel.context_mut(t)?;
        if space != inner.space {
            arch::switch_user_space(space.0, space.1);
            inner.space = space;
        }
        let fp = inner.fp_owner == Some(t);
        if fp != inner.fp_enabled {
            arch::set_fp_enabled(fp);
            inner.fp_enabled = fp;
        }
        inner.loaded = Some(t);
        inner.kernel.note_loaded();
        if let Some(next) = inner.kernel.next_event() {
            let next = next.clamp(1, i64::MAX as u64) as i64;
            if next < arch::timer_remaining() {
                arch::arm_timer(next as u64);
            }
        }
        return Some(ctx);
    }
}

/// Waits for an interrupt and serves it here, interrupts still masked. A pending interrupt
/// ends `wfi` whether or not PSTATE masks it (the architecture's wake-up rule, which Linux's
/// idle loop also relies on), so the kernel reads and handles it directly instead of taking
/// the exception: no vector, no register frame, no return from exception. A spurious wake-up
/// finds nothing to acknowledge.
fn inner_idle(r: &Replica) {
    arch::wait_for_interrupt();
    // Only the primary core runs user threads, so only it gets here.
    crate::handle_irq(r, r.spec.primary_core());
}

/// An exception from EL0 (`kind` as `entry.S` numbers them), the thread's registers
/// already saved in its TCB: the kernel serves it and returns the saved registers of the
/// thread to run next.
#[unsafe(no_mangle)]
extern "C" fn handle_user_exception(kind: u64) -> *mut Context {
    let Some(r) = crate::replica() else {
        fatal::park_forever()
    };
    match kind {
        fatal::KIND_SYNC => {
            if let Some(ctx) = handle_user_sync(r) {
                return ctx;
            }
        }
        _ => {
            // Only a replica's primary core runs user threads.
            let core = r.spec.primary_core();
            if kind == fatal::KIND_IRQ {
                crate::handle_irq(r, core);
            } else {
                fatal::stop_unexpected(r, core);
            }
        }
    }
    resume(r)
}

/// A synchronous exception from EL0: a system call, an FP trap, or a fault of the thread.
/// Returns the registers of the thread to run next, chosen under the same lock, or `None`
/// when there is none.
fn handle_user_sync(r: &Replica) -> Option<*mut Context> {
    let (esr, far, elr) = arch::exception_registers();
    let class = exception_class(esr);
    with(|inner| {
        // Only a loaded thread runs at EL0, so one is.
        let Some(t) = inner.loaded else {
            return choose(r, inner);
        };
        if class == 0x07 {
            // FP/SIMD trap: hand the registers to this thread.
            arch::set_fp_enabled(true);
            inner.fp_enabled = true;
            if inner.fp_owner != Some(t) {
                if let Some(owner) = inner.fp_owner {
                    // SAFETY: FP access is enabled; the state buffer is the owner's.
                    unsafe { fp_save(&mut inner.fp[owner]) };
                }
                // SAFETY: as above; a thread's state starts zeroed (FPCR 0 is the
                // architectural default).
                unsafe { fp_restore(&inner.fp[t]) };
                inner.fp_owner = Some(t);
            }
            return choose(r, inner);
        }
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        match class {
            0x15 => {
                kernel.syscall(&mut hw);
                // The caller goes on, and nothing it runs with changed since it was loaded
                // (address space, FP access, budget timer): return to it as it is.
                if kernel.caller_goes_on(t) {
                    return kernel.context_mut(t).map(|c| c as *mut Context);
                }
            }
            0x20 | 0x24 => {
                let fetch = u64::from(class == 0x20);
                kernel.user_fault(&mut hw, fault::VM_FAULT, [elr, far, fetch, esr]);
            }
            _ => {
                let sp = kernel.context(t).map_or(0, |c| c.sp);
                kernel.user_fault(&mut hw, fault::USER_EXCEPTION, [elr, sp, esr, 0]);
            }
        }
        choose(r, inner)
    })
}

/// The timer fired on the primary core: budgets pay for the time since the last charge.
pub fn on_timer() {
    let now = arch::counter();
    let elapsed = now.saturating_sub(LAST_CHARGE.swap(now, Ordering::Relaxed));
    with(|inner| {
        if inner.started {
            inner.kernel.timer(elapsed);
        }
    });
}

/// The doorbell SGI arrived on the primary core: the PDs' cross-replica channel words are
/// taken and their notifications signalled.
pub fn on_doorbell(r: &Replica) {
    with(|inner| {
        // Before the initialiser starts nothing is watched; it takes what is pending when
        // it sets each watch up.
        if inner.started {
            let (kernel, mut hw) = inner.kernel_and_hw(r);
            kernel.doorbell(&mut hw);
        }
    });
}

/// A device interrupt owned by this replica: its handler's notification is signalled.
pub fn on_device_irq(r: &Replica, irq: u32) {
    with(|inner| {
        let (kernel, mut hw) = inner.kernel_and_hw(r);
        kernel.interrupt(&mut hw, irq);
    });
}
