//! Building the initialiser, the replica's first thread, at boot.
//!
//! The primary core builds it from boot memory just past the kernel (its root CNode, TCB,
//! scheduling context, address space and IPC buffer), hands it the untyped memory its boot
//! program lists (`atoll_abi::bootprog`, written by the `microkit` tool), IRQ control and
//! scheduling control, and maps the boot program read-only into it. What may be handed out
//! is decided by `atoll_kernel_core::bootcheck`; this module reads the spec and memory.

use atoll_abi::bootprog::{self, BootProgram, BootProgramError};
use atoll_abi::limits::PAGE_SIZE;
use atoll_abi::spec::{PhysRange, attrs};
use atoll_abi::syscall::initial;
use atoll_kernel_core::bootcheck::{self, UntypedRefusal, UntypedRules};
use atoll_kernel_core::cap::Cap;
use atoll_kernel_core::kernel::{Context, InitialiserBoot};
use atoll_kernel_core::pagetable::{self, ENTRIES, MapError, Root, TableMemory};

use crate::console::klog;
use crate::machine::{self, Inner};
use crate::replica::Replica;

/// Top of the initialiser's stack (user virtual address).
const USER_STACK_TOP: u64 = 0x40_0000_0000;
/// Pages of user stack.
const USER_STACK_PAGES: u64 = 4;
/// The initialiser's priority: above every PD, so it finishes building before they run.
const INITIALISER_PRIORITY: u8 = 255;

/// Builds the initialiser, if the image carries one; `false` (reported) when there is none
/// or it cannot be built, and the core then only serves interrupts.
pub fn build(r: &Replica) -> bool {
    if r.spec.initialiser.mem_size == 0 {
        return false;
    }
    let built = machine::with(|inner| {
        let built = build_initialiser(r, inner);
        inner.started = built.is_ok();
        built
    });
    match built {
        Ok((count, bytes)) => {
            klog!(
                "INFO",
                "initialiser starting with {count} untyped blocks ({} KiB)",
                bytes >> 10
            );
            true
        }
        Err(e) => {
            klog!("ERROR", "cannot build the initialiser: {e}");
            false
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
        unsafe { core::ptr::write_bytes(self.replica.linear(pa), 0, size as usize) };
        Some(pa)
    }
}

impl TableMemory for BootPages<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.pages(1)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` came from `pages`, a zeroed page of this replica's free memory that
        // only these tables use.
        unsafe { &mut *self.replica.linear(pa).cast::<[u64; ENTRIES]>() }
    }
}

/// Builds the initialiser's address space (program, stack, IPC buffer page at `ipc`, the
/// boot program read-only); returns the root table's physical address.
fn build_address_space(pages: &mut BootPages<'_>, ipc: u64) -> Result<u64, MapError> {
    let r = pages.replica;
    let init = r.spec.initialiser;
    let root = Root::user(pages.alloc_table().ok_or(MapError::OutOfTables)?);
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
    let writable = user | attrs::WRITE;
    let stack_size = USER_STACK_PAGES * PAGE_SIZE;
    pagetable::map(pages, root, STACK_VA, stack, stack_size, writable)?;
    pagetable::map(
        pages,
        root,
        initial::IPC_BUFFER_VADDR,
        ipc,
        PAGE_SIZE,
        writable,
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
    Ok(root.pa())
}

/// Why the initialiser could not be built.
enum BootError {
    OutOfMemory,
    Map(MapError),
    Kernel(atoll_abi::error::Error),
    Program(BootProgramError),
    Untyped(u64),
}

impl From<UntypedRefusal> for BootError {
    fn from(refusal: UntypedRefusal) -> Self {
        match refusal {
            UntypedRefusal::TooMany => Self::Program(BootProgramError::BadField("untyped_count")),
            UntypedRefusal::NotAllowed(base) => Self::Untyped(base),
        }
    }
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
        (1u64 << (initial::ROOT_RADIX as u32 + atoll_abi::object::CNODE_SLOT_BITS)) / PAGE_SIZE;
    let cnode = pages.pages(CNODE_PAGES).ok_or(BootError::OutOfMemory)?;
    let tcb = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let sc = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let ipc = pages.pages(1).ok_or(BootError::OutOfMemory)?;
    let root = build_address_space(&mut pages, ipc).map_err(BootError::Map)?;
    // Untyped memory: exactly the blocks the boot program lists, each checked.
    let spec = &r.spec;
    let placed = bootcheck::program_range(
        spec.ram.base,
        spec.boot_program_offset,
        spec.boot_program_size,
    )
    .map_err(BootError::Program)?;
    let program = match placed {
        Some(range) => {
            // SAFETY: the loader placed the boot program in this replica's RAM, which the
            // linear map covers (the spec check keeps it inside); nothing writes it (the
            // initialiser sees it read-only).
            let bytes =
                unsafe { core::slice::from_raw_parts(r.linear(range.base), range.size as usize) };
            Some(BootProgram::parse(bytes).map_err(BootError::Program)?)
        }
        None => None,
    };
    let blocks = program.map_or(&[][..], |p| p.untyped());
    let rules = UntypedRules {
        ram: spec.ram,
        kernel_end: spec.ram.base.saturating_add(pages.next),
        program: placed.unwrap_or_default(),
        shared: PhysRange {
            base: spec.shared.pa,
            size: spec.shared.size,
        },
    };
    let bytes = rules.check(blocks)?;
    let untyped = blocks.iter().map(|u| Cap::Untyped {
        base: u.base,
        size_bits: u.size_bits as u8,
        watermark: 0,
        device: u.flags & bootprog::untyped_flags::DEVICE != 0,
        read_only: u.flags & bootprog::untyped_flags::READ_ONLY != 0,
    });
    let mut ctx = Context {
        pc: spec.initialiser.entry,
        sp: USER_STACK_TOP,
        ..Context::default()
    };
    ctx.x[0] = r.index as u64;
    ctx.x[1] = u64::from(spec.flags);
    ctx.x[2] = blocks.len() as u64;
    ctx.x[3] = spec.boot_program_size;
    let layout = InitialiserBoot {
        cnode,
        tcb,
        sched_context: sc,
        vspace: root,
        ipc_buffer: ipc,
        // A budget as long as its period (a second): the initialiser is never throttled.
        budget: r.counter_hz,
        priority: INITIALISER_PRIORITY,
        // Cores are below `MAX_CORES` (8): the mask fits.
        cores: (r.spec.core_mask & 0xff) as u32,
        // Two microseconds, about twice the cost of a kernel entry: a budget refill
        // smaller than this would not pay for the entry that starts it.
        min_budget: (r.counter_hz / 500_000).max(1),
        ctx,
    };
    inner
        .kernel
        .boot_initialiser(&layout, untyped)
        .map_err(BootError::Kernel)?;
    Ok((blocks.len(), bytes))
}
