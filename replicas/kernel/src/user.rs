//! User space: the replica's initialiser at EL0, its address space, and the system-call
//! entry.
//!
//! The primary core builds the initialiser's address space from the replica's free memory
//! (text executable and read-only, data and stack writable and never executable), then
//! enters it at EL0. System calls arrive as SVC exceptions from EL0. Today they are the debug
//! console and halt; capability invocations come next. A fault in user code is reported and
//! stops that thread, never the kernel or the replica.

use core::cell::UnsafeCell;
use core::fmt::Write;

use atoll_abi::error::Error;
use atoll_abi::limits::{LOG_LINE_BYTES, PAGE_SIZE};
use atoll_abi::spec::{attrs, layout};
use atoll_abi::syscall;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::LineBuf;
use atoll_kernel_core::pagetable::{self, ENTRIES, MapError, TableMemory};

use crate::fatal::Frame;
use crate::sync::IrqSpinLock;
use crate::{Replica, arch, console, klog};

/// Top of the initialiser's stack (user virtual address).
const USER_STACK_TOP: u64 = 0x40_0000_0000;
/// Pages of user stack.
const USER_STACK_PAGES: u64 = 4;

/// Pages handed out from the replica's free memory, before untyped memory exists.
struct BootPages<'a> {
    replica: &'a Replica,
    next: u64,
}

impl BootPages<'_> {
    /// A zeroed page: its physical address.
    fn page(&mut self) -> Option<u64> {
        let ram = self.replica.spec.ram;
        let offset = self.next;
        if offset.checked_add(PAGE_SIZE)? > ram.size {
            return None;
        }
        self.next += PAGE_SIZE;
        let pa = ram.base + offset;
        // SAFETY: the page lies in this replica's free memory, which the linear map covers
        // and nothing else uses yet.
        unsafe { core::ptr::write_bytes(linear(self.replica, pa), 0, PAGE_SIZE as usize) };
        Some(pa)
    }
}

/// The kernel's view of a physical address in this replica's RAM.
fn linear(r: &Replica, pa: u64) -> *mut u8 {
    (layout::LINEAR_MAP_BASE + (pa - r.spec.ram.base)) as *mut u8
}

impl TableMemory for BootPages<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.page()
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` came from `page`, a zeroed page of this replica's free memory that
        // only these tables use.
        unsafe { &mut *linear(self.replica, pa).cast::<[u64; ENTRIES]>() }
    }
}

/// Builds the initialiser's address space; returns the root table's physical address.
fn build_address_space(r: &Replica) -> Result<u64, MapError> {
    let init = r.spec.initialiser;
    let mut pages = BootPages {
        replica: r,
        next: r.spec.free_offset,
    };
    let root = pages.alloc_table().ok_or(MapError::OutOfTables)?;
    let pa = r.spec.ram.base + init.offset;
    let text = init.text_size.min(init.mem_size);
    if text != 0 {
        pagetable::map(
            &mut pages,
            root,
            init.vaddr,
            pa,
            text,
            attrs::USER | attrs::EXEC,
        )?;
    }
    if init.mem_size > text {
        pagetable::map(
            &mut pages,
            root,
            init.vaddr + text,
            pa + text,
            init.mem_size - text,
            attrs::USER | attrs::WRITE,
        )?;
    }
    for i in 0..USER_STACK_PAGES {
        let page = pages.page().ok_or(MapError::OutOfTables)?;
        let va = USER_STACK_TOP - (USER_STACK_PAGES - i) * PAGE_SIZE;
        pagetable::map(
            &mut pages,
            root,
            va,
            page,
            PAGE_SIZE,
            attrs::USER | attrs::WRITE,
        )?;
    }
    Ok(root)
}

/// Starts the initialiser on this (the primary) core; never returns. Without one (an image
/// that carries none), the core just serves interrupts.
pub fn start_initialiser(r: &Replica, core: u32) -> ! {
    if r.spec.initialiser.mem_size == 0 {
        idle_forever();
    }
    let root = match build_address_space(r) {
        Ok(root) => root,
        Err(e) => {
            klog!(
                "ERROR",
                "cannot build the initialiser's address space: {e:?}"
            );
            idle_forever();
        }
    };
    arch::enable_low_half(root);
    let stack_top = layout::KERNEL_STACKS_BASE + (u64::from(core) + 1) * layout::KERNEL_STACK_SLOT;
    // SAFETY: the address space maps the initialiser's text at its entry and its stack below
    // USER_STACK_TOP; `stack_top` is this core's kernel stack, which nothing on it needs
    // any more (this function never returns).
    unsafe {
        arch::enter_user(
            r.spec.initialiser.entry,
            USER_STACK_TOP,
            r.index as u64,
            u64::from(r.spec.flags),
            stack_top,
        )
    }
}

/// Serves interrupts until the machine stops.
pub fn idle_forever() -> ! {
    arch::irq_enable();
    loop {
        arch::wait_for_interrupt();
    }
}

/// The user console line, shared by the replica's cores under its lock.
struct UserLine {
    lock: IrqSpinLock,
    line: UnsafeCell<LineBuf<LOG_LINE_BYTES>>,
}

// SAFETY: `line` is only touched with `lock` held.
unsafe impl Sync for UserLine {}

static USER_LINE: UserLine = UserLine {
    lock: IrqSpinLock::new(),
    line: UnsafeCell::new(LineBuf::new()),
};

fn put_char(r: &Replica, c: u8) {
    let _guard = USER_LINE.lock.lock();
    // SAFETY: the lock is held.
    let line = unsafe { &mut *USER_LINE.line.get() };
    if c == b'\n' {
        console::log_raw(r, line.as_bytes());
        line.clear();
    } else {
        let _ = line.write_char(if c.is_ascii_graphic() || c == b' ' {
            c as char
        } else {
            '?'
        });
    }
}

/// A synchronous exception from EL0: a system call, or a fault of the user program.
pub fn handle_user_sync(r: &Replica, frame: &mut Frame) {
    let (esr, far, elr) = arch::exception_registers();
    if atoll_kernel_core::fault::exception_class(esr) != 0x15 {
        klog!(
            "ERROR",
            "initialiser faulted: {} FAR {far:#x} ELR {elr:#x}; it is stopped, the replica goes on",
            Syndrome(esr)
        );
        idle_forever();
    }
    match frame.x[7] as i64 {
        syscall::DEBUG_PUT_CHAR => {
            put_char(r, frame.x[0] as u8);
            frame.x[0] = 0;
        }
        syscall::DEBUG_HALT => idle_forever(),
        other => {
            klog!("WARN", "initialiser made unknown system call {other}");
            frame.x[0] = Error::IllegalOperation as u64;
        }
    }
}
