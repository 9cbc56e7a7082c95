//! Atoll's loader: the first code to run. It checks the image, places every replica in its
//! own memory, builds each replica's kernel page tables from its boot spec, sets up the
//! interrupt distributor once, starts every other core with PSCI `CPU_ON`, and finally
//! enters its own replica. It holds no policy: the layout comes from the specs in the image.
#![no_std]
#![no_main]

mod mem;

mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

use core::mem::size_of;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use atoll_abi::image::{ALL_REPLICAS, ImageError, ImageHeader, ImageView, PartKind};
use atoll_abi::limits::{MAX_CORES, MAX_REPLICAS, PAGE_SIZE};
use atoll_abi::placement::{self, GicDevice, Machine, Placement, Specs};
use atoll_abi::shared::{SHARED_MAGIC, SHARED_VERSION, SharedHeader};
use atoll_abi::spec::{PhysRange, PsciConduit, ReplicaSpec, flags};
use atoll_boards::firmware;
use atoll_boards::gic::{self, Gic};
use atoll_boards::uart::Uart;
use atoll_kernel_core::fault::Syndrome;
use atoll_kernel_core::line::CoreSet;
use atoll_kernel_core::loadcheck::{self, LoadError, ReplicaStart, Starts};
use atoll_kernel_core::pagetable::{self, ENTRIES, TableMemory};
use board::BOARD;

core::arch::global_asm!(
    include_str!(concat!(env!("OUT_DIR"), "/board.S")),
    include_str!("entry.S")
);

/// Read by `entry.S`'s stops that run without Rust (an EL3 entry, an exception while handling
/// one): whether they end QEMU through semihosting, as `halt` does in test builds.
#[unsafe(no_mangle)]
static LOADER_TEST_EXIT: u32 = cfg!(feature = "test-exit") as u32;

/// Set by `entry.S` when a firmware call (`firmware::forward`) was an undefined instruction:
/// nothing listens on that conduit.
#[unsafe(no_mangle)]
static LOADER_FIRMWARE_UNDEFINED: AtomicU32 = AtomicU32::new(0);

/// A 4 KiB-aligned translation table.
#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

/// The loader's own identity map, computed at compile time (read by `entry.S`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.pagetable")]
static LOADER_IDENTITY_TABLE: Table = Table(pagetable::identity_table_4gib(BOARD.ram));

const STACK_SIZE: usize = 0x1_0000;
/// Written at the low end of the stack at start and checked before leaving the loader.
const STACK_CANARY: u64 = 0x5AFE_57AC_CA7A_12E5;

/// The boot core's stack (its size is `LOADER_STACK_SIZE` in `entry.S`).
#[unsafe(no_mangle)]
static mut LOADER_STACK: Stack = Stack([0; STACK_SIZE]);

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// What `replica_trampoline` loads on one core. Field order is fixed by `entry.S`.
#[derive(Clone, Copy)]
#[repr(C)]
struct CoreBoot {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    sctlr: u64,
    entry: u64,
    arg0: u64,
    arg1: u64,
}

const _: () = assert!(size_of::<CoreBoot>() == 64);

/// SCTLR_EL1 for a replica kernel: MMU, data and instruction caches, stack alignment check,
/// and user-space cache maintenance by address (UCT: EL0 reads CTR_EL0; UCI: EL0 cleans and
/// invalidates by virtual address, which only ever reaches memory its own mappings allow).
/// PDs clean and invalidate their DMA buffers that way (seL4's `ARM_VSpace` cache
/// invocations in the C SDK), as Linux lets its processes do.
const KERNEL_SCTLR: u64 =
    0x30D0_0800 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 15) | (1 << 26);

unsafe extern "C" {
    static __loader_start: u8;
    static __loader_end: u8;
    fn replica_trampoline(core_boot: *const CoreBoot) -> !;
    fn loader_restart_entry() -> !;
    fn loader_enter_boot(core_boot: *const CoreBoot) -> !;
}

/// Where `CPU_ON` starts a core that enters a replica (`entry.S`).
fn trampoline_address() -> u64 {
    replica_trampoline as *const () as u64
}

fn console() -> Uart {
    // SAFETY: the board's UART is identity-mapped as device memory by the loader's table, and
    // only the boot core runs loader code, before any replica kernel owns the console.
    unsafe { Uart::new(BOARD.uart.kind, BOARD.uart.base as usize) }
}

macro_rules! log {
    ($level:literal, $($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut uart = $crate::console();
        let _ = write!(uart, concat!("LDR|", $level, ": "));
        let _ = writeln!(uart, $($arg)*);
    }};
}

mod devicetree;
mod restart;

/// Why the loader stopped.
enum Refusal {
    Image(ImageError),
    Check(LoadError),
    Layout(&'static str, u32),
    /// The interrupt distributor reports an architecture version (0: none) the board does
    /// not describe.
    Gic(u32),
    /// The interrupt controller cannot be set up.
    GicSetup(gic::GicError),
    /// No PSCI 0.2 or later answers `PSCI_VERSION` on the conduit: what it answered in `w0`,
    /// or `None` if the instruction was undefined.
    Psci(PsciConduit, Option<u32>),
    /// The firmware's device tree cannot be used.
    Tree(devicetree::TreeRefusal),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "{e}"),
            Self::Layout(why, replica) => write!(f, "replica {replica}: {why}"),
            Self::Check(e) => write!(f, "{e}"),
            Self::Tree(e) => write!(f, "{e}"),
            Self::Gic(version) => {
                write!(
                    f,
                    "the interrupt distributor at {:#x} reports GIC architecture version \
                     {version} (GICD_PIDR2); {} has ",
                    BOARD.gic.distributor.base, BOARD.name
                )?;
                for (i, gic) in BOARD.gics().enumerate() {
                    let or = if i == 0 { "" } else { " or " };
                    write!(f, "{or}GICv{}", gic.version)?;
                }
                Ok(())
            }
            Self::GicSetup(e) => write!(f, "interrupt controller: {}", e.describe()),
            Self::Psci(conduit, answer) => {
                let how = conduit_name(*conduit);
                match answer {
                    None => write!(
                        f,
                        "no firmware answers PSCI calls: {how} is an undefined instruction here"
                    )?,
                    Some(v) if *v as i32 == -1 => {
                        write!(f, "PSCI_VERSION over {how} answered NOT_SUPPORTED")?
                    }
                    Some(v) => write!(
                        f,
                        "PSCI_VERSION over {how} answered {v:#x}, not version 0.2 or later"
                    )?,
                }
                write!(
                    f,
                    "; the other cores cannot be started: boot Atoll through firmware with PSCI \
                     (TF-A, then U-Boot) or with QEMU's -kernel"
                )
            }
        }
    }
}

/// Entered from `entry.S` on the boot core at EL1 with the identity map on, with the
/// level it was entered at and what the firmware passed in `x0` (a device tree's address).
#[unsafe(no_mangle)]
extern "C" fn loader_main(entry_el: u64, x0: u64) -> ! {
    set_canary();
    console().init();
    log!(
        "INFO",
        "Atoll loader on {} (entered at EL{entry_el})",
        BOARD.name
    );
    match load(entry_el as u32, x0) {
        Ok(boot) => enter(boot),
        Err(refusal) => {
            log!("ERROR", "refusing to boot: {refusal}");
            halt(3)
        }
    }
}

/// Stops the machine after a refusal: test builds end QEMU with `code`, others wait.
fn halt(code: u32) -> ! {
    console().flush();
    if cfg!(feature = "test-exit") {
        firmware::semihosting_exit(code);
    }
    loop {
        aarch64_wfe();
    }
}

fn aarch64_wfe() {
    // SAFETY: waiting for an event has no effect on memory.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}

/// Everything needed to enter the boot core's replica.
struct Ready {
    core_boot: *const CoreBoot,
}

/// Per-core boot records, read by `replica_trampoline` (possibly with the MMU off).
static mut CORE_BOOT: [CoreBoot; MAX_CORES] = [CoreBoot {
    mair: 0,
    tcr: 0,
    ttbr0: 0,
    ttbr1: 0,
    sctlr: 0,
    entry: 0,
    arg0: 0,
    arg1: 0,
}; MAX_CORES];

fn load(entry_el: u32, x0: u64) -> Result<Ready, Refusal> {
    let image = image_bytes();
    let view = ImageView::parse(image, Some(BOARD.name)).map_err(Refusal::Image)?;
    log!(
        "INFO",
        "image ok: {} parts, {} bytes, checksum {:#010x}",
        view.part_count(),
        view.header().image_size,
        view.header().checksum
    );
    let code = loader_code();
    let running = PhysRange {
        base: code.base,
        size: code.size + view.header().image_size,
    };
    let firmware = devicetree::read(x0, running).map_err(Refusal::Tree)?;
    let conduit = devicetree::conduit(entry_el, &firmware);
    let boot_core = current_core().ok_or(Refusal::Layout(
        "boot core is not in the board's core table",
        0,
    ))?;
    let gic = find_gic()?;
    let mut machine = Machine {
        boot_core,
        ..BOARD.machine(code, *gic)
    };
    if let Some(memory) = firmware.memory {
        machine.memory = memory;
    }
    let mut specs: Specs = [None; MAX_REPLICAS];
    let mut starts: Starts = [None; MAX_REPLICAS];
    // The placement rules, the firmware's memory among them, write nothing; the device
    // tree goes into its regions before anything else is written; the rest of the check
    // writes nothing but each replica's kernel page tables, in its table area.
    let placement = placement::check(&machine, || view.parts(), &mut specs)
        .map_err(|e| Refusal::Check(e.into()))?;
    devicetree::fill_regions(&view, &specs, firmware.tree).map_err(Refusal::Tree)?;
    loadcheck::prepare(
        &machine,
        &placement,
        &mut specs,
        &mut starts,
        ReplicaTables::of,
    )
    .map_err(Refusal::Check)?;
    let first = placement::first(&specs).ok_or(Refusal::Layout("replica 0 is missing", 0))?;
    if first.has_flag(flags::SELFTEST_LOADER_FAULT) {
        selftest_fault();
    }
    probe_psci(conduit, first)?;
    log!(
        "INFO",
        "system {:#018x}: {} replicas on {} cores",
        first.system_hash,
        placement.count,
        BOARD.cores.len()
    );
    init_shared(first);
    copy_parts(&view, &specs);

    let context = Context {
        placement: &placement,
        conduit,
        entry_el,
        restarting: false,
    };
    for (entry, start) in specs.iter().zip(&starts).take(placement.count) {
        if let (Some((spec, spec_offset)), Some(start)) = (entry, start) {
            place_replica(&context, spec, *spec_offset, start);
        }
    }
    route_interrupts(gic, &specs)?;
    restart::remember(restart::BootRecord {
        machine,
        shared: first.shared.pa,
        conduit,
        entry_el,
        gic,
    });
    clean_all(&specs);
    start_cores(&specs, conduit, boot_core);
    log!("INFO", "entering K0 on core {boot_core}");
    Ok(Ready {
        core_boot: core_boot_record(boot_core),
    })
}

/// The conduit's instruction, for messages.
const fn conduit_name(conduit: PsciConduit) -> &'static str {
    match conduit {
        PsciConduit::Hvc => "HVC",
        PsciConduit::Smc => "SMC",
    }
}

/// Asks the firmware for its PSCI version (`PSCI_VERSION`, which every PSCI from 0.2 on
/// answers, as early as Atoll needs: it starts cores with the 64-bit `CPU_ON` of 0.2) before
/// relying on it, and logs it. A conduit nobody answers refuses the boot: `NOT_SUPPORTED`,
/// or an undefined instruction (no EL3 or EL2 firmware there), which the loader's exception
/// vectors turn into `NOT_SUPPORTED` (`entry.S`). Firmware that takes the call and never
/// returns cannot be caught here. The self-test `flags::SELFTEST_PSCI_UNANSWERED` probes the
/// other conduit, which no firmware answers on QEMU `virt`.
fn probe_psci(conduit: PsciConduit, boot: &ReplicaSpec) -> Result<(), Refusal> {
    let conduit = match (boot.has_flag(flags::SELFTEST_PSCI_UNANSWERED), conduit) {
        (false, c) => c,
        (true, PsciConduit::Hvc) => PsciConduit::Smc,
        (true, PsciConduit::Smc) => PsciConduit::Hvc,
    };
    LOADER_FIRMWARE_UNDEFINED.store(0, Ordering::Relaxed);
    let [x0, ..] = firmware::forward(
        conduit,
        [u64::from(firmware::function::VERSION), 0, 0, 0, 0, 0, 0, 0],
    );
    if LOADER_FIRMWARE_UNDEFINED.load(Ordering::Relaxed) != 0 {
        return Err(Refusal::Psci(conduit, None));
    }
    // An SMC32 call: the answer is w0, major version in bits 30:16, minor in 15:0.
    let version = x0 as u32;
    if version as i32 <= 1 {
        return Err(Refusal::Psci(conduit, Some(version)));
    }
    log!(
        "INFO",
        "PSCI {}.{} over {}",
        version >> 16,
        version & 0xFFFF,
        conduit_name(conduit)
    );
    Ok(())
}

/// Copies every program, region and boot-program part to its place, in one pass over the
/// image: a replica's part into its RAM, a region outside the replicas to its address. The
/// contents are written and the rest of each part's memory zeroed.
fn copy_parts(view: &ImageView<'_>, specs: &Specs) {
    for part in view.parts() {
        if !matches!(
            part.kind,
            PartKind::PdImage | PartKind::RegionData | PartKind::BootProgram
        ) {
            continue;
        }
        // `placement::check` proved that a part names a replica, or is a region at an
        // absolute address.
        let base = if part.entry.replica == ALL_REPLICAS {
            0
        } else {
            match specs.get(part.entry.replica as usize) {
                Some(Some((spec, _))) => spec.ram.base,
                _ => continue,
            }
        };
        let dest = base + part.entry.dest_offset;
        copy_part(dest, part.bytes, part.entry.mem_size);
        if part.kind == PartKind::PdImage {
            // Code: out to where instruction fetches read (see `clean_all`).
            clean_range(dest, part.entry.mem_size);
        }
    }
}

/// What placing a replica needs besides its spec.
struct Context<'a> {
    placement: &'a Placement<'a>,
    conduit: PsciConduit,
    entry_el: u32,
    /// Placing a replica again after it stopped: the console belongs to a running replica,
    /// so nothing is printed.
    restarting: bool,
}

/// Copies the kernel and the initialiser into one replica's RAM, writes its spec and fills
/// its cores' boot records with the tables and spec address the check found.
fn place_replica(
    context: &Context<'_>,
    spec: &ReplicaSpec,
    spec_offset: u64,
    start: &ReplicaStart,
) {
    let replica = spec.replica;
    let ram = spec.ram;
    let kernel = context.placement.kernel;
    if let Some(init) = &context.placement.initialiser {
        copy_part(
            ram.base + init.entry.dest_offset,
            init.bytes,
            init.entry.mem_size,
        );
    }
    copy_part(
        ram.base + kernel.entry.dest_offset,
        kernel.bytes,
        kernel.entry.mem_size,
    );
    let mut spec = *spec;
    spec.loader.psci_conduit = context.conduit as u32;
    spec.loader.entry_el = context.entry_el;
    spec.loader.trampoline = trampoline_address();
    spec.loader.restart_entry = loader_restart_entry as *const () as u64;
    copy_part(
        ram.base + spec_offset,
        zerocopy::IntoBytes::as_bytes(&spec),
        size_of::<ReplicaSpec>() as u64,
    );
    for core in 0..MAX_CORES as u32 {
        if spec.core_mask & (1 << core) == 0 {
            continue;
        }
        let record = CoreBoot {
            mair: pagetable::MAIR,
            tcr: pagetable::TCR,
            ttbr0: start.ttbr0,
            ttbr1: start.ttbr1,
            sctlr: KERNEL_SCTLR,
            entry: kernel.entry.entry,
            arg0: start.spec_va,
            arg1: u64::from(core),
        };
        // SAFETY: only one core runs the loader at a time (the boot core, or one restart
        // under the restart lock); no core reads its CORE_BOOT record until it is started,
        // after this write and a cache clean.
        unsafe { (*core::ptr::addr_of_mut!(CORE_BOOT))[core as usize] = record };
    }
    if context.restarting {
        return;
    }
    log!(
        "INFO",
        "K{replica}: cores {} RAM {:#x}-{:#x} ({} MiB), kernel entry {:#x}",
        CoreSet(spec.core_mask),
        ram.base,
        ram.end(),
        ram.size >> 20,
        kernel.entry.entry
    );
}

/// The interrupt controller the machine has, of those the board allows: the distributor's
/// architecture version tells (QEMU `virt` has a GICv2 unless asked for a GICv3). Using
/// another than the board's own, which the image was planned for, is logged.
fn find_gic() -> Result<&'static GicDevice, Refusal> {
    let distributor = BOARD.gic.distributor.base as usize;
    let frame = BOARD.gics().map(|g| g.distributor.size).max().unwrap_or(0);
    // SAFETY: every GIC the board allows has its distributor at this address (the boards'
    // tests check it), with at least `frame` bytes of registers where the version read
    // lands; the loader's table maps it as device memory.
    let version = unsafe { gic::arch_version(distributor, frame as usize) };
    let found = BOARD.gic_of_version(version).ok_or(Refusal::Gic(version))?;
    if found.version != BOARD.gic.version {
        log!(
            "INFO",
            "interrupt controller: GICv{} (distributor {:#x}, CPU interface {:#x}), not the \
             board's GICv{}: every replica uses it",
            found.version,
            found.distributor.base,
            found.cpu.base,
            BOARD.gic.version
        );
    }
    Ok(found)
}

/// Sets up the interrupt distributor of `found` (the machine's GIC) and routes each
/// replica's device interrupts.
fn route_interrupts(found: &GicDevice, specs: &Specs) -> Result<(), Refusal> {
    // SAFETY: no replica runs yet.
    let gic = unsafe { distributor(found) };
    if gic.security() == gic::Security::NonSecure {
        log!(
            "INFO",
            "interrupt controller seen from Non-secure: its groups are the firmware's, Atoll \
             uses Non-secure Group 1"
        );
    }
    gic.init_distributor().map_err(Refusal::GicSetup)?;
    for (spec, _) in specs.iter().flatten() {
        for route in spec.irq_routes() {
            let mpidr = core_mpidr(route.core);
            // The check accepted only interrupts the board's GIC has; this one has fewer.
            if !gic.route_spi(route.intid, mpidr, route.core, route.edge != 0) {
                return Err(Refusal::Layout(
                    "an interrupt cannot be routed (not a shared interrupt of this GIC)",
                    spec.replica,
                ));
            }
            let trigger = if route.edge != 0 { "edge" } else { "level" };
            log!(
                "INFO",
                "IRQ {} ({trigger}) routed to core {} for K{}",
                route.intid,
                route.core,
                spec.replica
            );
        }
    }
    Ok(())
}

/// The interrupt controller `found`, through the loader's identity map.
///
/// # Safety
///
/// Only registers nobody else uses meanwhile may be written through it: the whole
/// distributor before any replica runs, or a stopped replica's own interrupts' afterwards.
unsafe fn distributor(found: &GicDevice) -> Gic {
    // SAFETY: the distributor and CPU interfaces are identity-mapped device memory; the
    // caller keeps to the registers it may write.
    unsafe {
        Gic::new(
            found.version,
            found.distributor.base as usize,
            found.cpu.base as usize,
            found.cpu.size as usize,
        )
    }
}

/// Core `core`'s MPIDR from the board's table (`u64::MAX`, which no core has, if it has none).
fn core_mpidr(core: u32) -> u64 {
    BOARD.cores.get(core as usize).copied().unwrap_or(u64::MAX)
}

/// Starts every core but the boot core with PSCI `CPU_ON`; a core that fails to start is
/// reported and its replica runs without it.
fn start_cores(specs: &Specs, conduit: PsciConduit, boot_core: u32) {
    for (spec, _) in specs.iter().flatten() {
        for core in 0..MAX_CORES as u32 {
            if spec.core_mask & (1 << core) == 0 || core == boot_core {
                continue;
            }
            let mpidr = BOARD.cores[core as usize];
            let record = core_boot_record(core);
            match firmware::cpu_on(conduit, mpidr, trampoline_address(), record as u64) {
                Ok(()) => {}
                Err(e) => log!(
                    "ERROR",
                    "PSCI CPU_ON core {core} failed: {}; replica K{} will run without it",
                    e.name(),
                    spec.replica
                ),
            }
        }
    }
}

/// The address of core `core`'s boot record (no access is made).
fn core_boot_record(core: u32) -> *const CoreBoot {
    (&raw const CORE_BOOT)
        .cast::<CoreBoot>()
        .wrapping_add(core as usize)
}

fn canary() -> *mut u64 {
    (&raw mut LOADER_STACK).cast::<u64>()
}

fn set_canary() {
    // SAFETY: the lowest word of the loader's own stack; the stack grows down from the top
    // and is nowhere near it this early.
    unsafe { canary().write_volatile(STACK_CANARY) };
}

fn canary_intact() -> bool {
    // SAFETY: reading the word `set_canary` wrote.
    unsafe { canary().read_volatile() == STACK_CANARY }
}

fn enter(ready: Ready) -> ! {
    if !canary_intact() {
        log!(
            "FATAL",
            "loader stack overflowed; refusing to start replicas from possibly damaged state"
        );
        halt(6);
    }
    console().flush();
    // SAFETY: the record describes tables that map the kernel we copied, the trampoline's
    // own page and everything the kernel's spec lists; it never returns, and it releases
    // the restart lock only once nothing runs on the loader's stack any more.
    unsafe { loader_enter_boot(ready.core_boot) }
}

/// The bytes after the loader, up to the end of RAM.
fn image_bytes() -> &'static [u8] {
    let end = core::ptr::addr_of!(__loader_end) as usize;
    let ram_end = BOARD.ram.end() as usize;
    let header = end as *const ImageHeader;
    // SAFETY: `end` is page aligned, inside RAM and identity-mapped; the firmware loaded
    // the file there. Reading the size field of whatever is there is harmless.
    let claimed = unsafe { core::ptr::addr_of!((*header).image_size).read_volatile() } as usize;
    let len = claimed.clamp(size_of::<ImageHeader>(), ram_end - end);
    // SAFETY: `[end, end + len)` lies inside RAM, which the identity map covers; nothing
    // writes it while the loader reads it (replicas are placed above `boot_reserved`).
    unsafe { core::slice::from_raw_parts(end as *const u8, len) }
}

/// The loader's own code and data, from its start to `__loader_end`.
fn loader_code() -> PhysRange {
    let (lo, hi) = (
        core::ptr::addr_of!(__loader_start) as u64,
        core::ptr::addr_of!(__loader_end) as u64,
    );
    PhysRange {
        base: lo,
        size: hi - lo,
    }
}

/// Copies a part to physical `dest` and zeroes the rest of its memory size.
fn copy_part(dest: u64, bytes: &[u8], mem_size: u64) {
    let dest = dest as *mut u8;
    // SAFETY: `placement::check` proved the destination lies in RAM the loader may write (a
    // replica's, or a shared region's), which is identity-mapped, disjoint from the image
    // being read and not yet used by anyone.
    unsafe {
        mem::copy(dest, bytes.as_ptr(), bytes.len());
        mem::zero(dest.add(bytes.len()), mem_size as usize - bytes.len());
    }
}

/// Zeroes the shared area and writes its header.
fn init_shared(spec: &ReplicaSpec) {
    let base = spec.shared.pa as *mut u8;
    // SAFETY: `placement::check` proved the shared area lies in RAM outside the loader and
    // every replica; no replica runs yet.
    unsafe {
        mem::zero(base, spec.shared.size as usize);
        let header = &mut *(base as *mut SharedHeader);
        header.magic = SHARED_MAGIC;
        header.version = SHARED_VERSION;
        header.replica_count = spec.replica_count;
    }
}

/// Page tables carved from the replica's reserved table area (identity-mapped).
struct ReplicaTables {
    next: u64,
    end: u64,
}

impl ReplicaTables {
    /// Tables in `area`, a replica's table area (which `placement::check` proved lies in
    /// the replica's RAM).
    fn of(area: PhysRange) -> Self {
        Self {
            next: area.base,
            end: area.end(),
        }
    }
}

impl TableMemory for ReplicaTables {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.next + PAGE_SIZE > self.end {
            return None;
        }
        let pa = self.next;
        self.next += PAGE_SIZE;
        // SAFETY: the page at `pa` is in the replica's table area (checked above), which is
        // identity-mapped RAM owned by nobody else until the replica starts.
        unsafe { mem::zero(pa as *mut u8, PAGE_SIZE as usize) };
        Some(pa)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` was handed out by `alloc_table` from the replica's table area, which
        // is identity-mapped RAM owned by nobody else until the replica starts.
        unsafe { &mut *(pa as *mut [u64; ENTRIES]) }
    }
}

/// Cleans everything secondaries may read with their MMU off to the point of coherency, and
/// makes the code the loader wrote what every core fetches.
///
/// The kernel, the initialiser (both below each replica's `free_offset`) and the PD programs
/// (cleaned as they are copied, in `copy_parts`) are instructions written as data. A data
/// cache clean to the point of coherency also reaches the point of unification, where
/// instruction fetches look; what an instruction cache may still hold for those addresses
/// (U-Boot, which relocates itself to the top of RAM, runs from what becomes a replica's
/// memory) is then invalidated on every core of the inner-shareable domain with one
/// `ic ialluis`, before any core is started or the boot core enters its kernel. QEMU models
/// no instruction cache, so only hardware can show this missing.
fn clean_all(specs: &Specs) {
    for (spec, _) in specs.iter().flatten() {
        clean_range(spec.ram.base, spec.free_offset);
    }
    if let Some((spec, _)) = &specs[0] {
        clean_range(spec.shared.pa, spec.shared.size);
    }
    clean_loader();
}

/// Cleans the loader's code and data (the cores' boot records among them) to the point of
/// coherency, and invalidates every core's instruction cache (see [`clean_all`]).
fn clean_loader() {
    let code = loader_code();
    clean_range(code.base, code.size);
    // SAFETY: cache maintenance and barriers: no effect on memory contents. The `dsb` after
    // the cleans (`clean_range`) orders them before the invalidation.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack)) };
}

fn clean_range(base: u64, size: u64) {
    let ctr: u64;
    // SAFETY: reading the cache type register has no side effects.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    // CTR_EL0.DminLine: log2 of the smallest data cache line, in words.
    let line = 4u64 << ((ctr >> 16) & 0xF);
    let mut addr = base & !(line - 1);
    while addr < base + size {
        // SAFETY: cleaning a cache line by address has no architectural effect on memory
        // contents; the range is identity-mapped.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// The index of the calling core in the board's core table.
fn current_core() -> Option<u32> {
    let affinity = firmware::current_affinity();
    BOARD
        .cores
        .iter()
        .position(|&c| c == affinity)
        .map(|i| i as u32)
}

/// Set by the self-test `flags::SELFTEST_LOADER_FAULT` before it faults: the exception
/// handler then faults again.
static SELFTEST_FAULT_AGAIN: AtomicBool = AtomicBool::new(false);

/// Addresses the loader's identity map (the low 4 GiB of a 39-bit space) leaves unmapped.
const SELFTEST_FIRST_FAULT: usize = 0x7E_0000_0000;
const SELFTEST_SECOND_FAULT: usize = 0x7F_0000_0000;

/// The self-test `flags::SELFTEST_LOADER_FAULT`: a read from unmapped memory, and another
/// from the handler reporting it.
fn selftest_fault() {
    log!(
        "INFO",
        "self-test: faulting in the loader, and again in its exception handler"
    );
    SELFTEST_FAULT_AGAIN.store(true, Ordering::Relaxed);
    // SAFETY: deliberately faults; the exception handler never returns here.
    let _ = unsafe { core::ptr::read_volatile(SELFTEST_FIRST_FAULT as *const u64) };
}

/// The self-test `flags::SELFTEST_RESTART_FAULT`: a read from unmapped memory during a
/// restart, which the exception handler turns into the restart given up.
fn selftest_restart_fault() {
    // SAFETY: deliberately faults; the exception handler abandons the restart and never
    // returns here.
    let _ = unsafe { core::ptr::read_volatile(SELFTEST_FIRST_FAULT as *const u64) };
}

/// Called by the loader's exception vectors for the first exception (a second one, taken
/// while this runs, is reported by `entry.S` alone).
#[unsafe(no_mangle)]
extern "C" fn loader_exception(kind: u64) -> ! {
    let (esr, far, elr): (u64, u64, u64);
    // SAFETY: reading syndrome registers has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, esr_el1", "mrs {}, far_el1", "mrs {}, elr_el1", out(reg) esr, out(reg) far, out(reg) elr, options(nomem, nostack));
    }
    if restart::active() {
        restart::abandon(format_args!(
            "loader exception (vector {kind}): {} ESR {esr:#x} FAR {far:#x} ELR {elr:#x}",
            Syndrome(esr)
        ));
    }
    log!(
        "FATAL",
        "loader exception (vector {kind}): {} ESR {esr:#x} FAR {far:#x} ELR {elr:#x}",
        Syndrome(esr)
    );
    if SELFTEST_FAULT_AGAIN.load(Ordering::Relaxed) {
        // SAFETY: deliberately faults again (the self-test); `entry.S` reports it and stops.
        let _ = unsafe { core::ptr::read_volatile(SELFTEST_SECOND_FAULT as *const u64) };
    }
    halt(4)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if restart::active() {
        restart::abandon(format_args!("loader panic: {info}"));
    }
    log!("FATAL", "loader panic: {info}");
    halt(5)
}
