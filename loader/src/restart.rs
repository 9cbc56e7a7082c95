//! Placing one replica again after it stopped (`<replica restart="true">`).
//!
//! A surviving replica's kernel claims the stopped replica (its state goes from `down` to
//! `restarting`) and starts one of the stopped replica's own cores here with PSCI `CPU_ON`,
//! the replica's index as the context (`loader_restart_entry` in `entry.S`). On that core,
//! with the loader's identity map and stack, this module redoes the loader's work for that
//! replica alone, from the image the loader was booted from, which stays where the firmware
//! put it: no replica can write the loader or the image (each kernel's boot tables map the
//! loader's code read-only, for the moment its MMU comes on; nothing maps the image). It
//!
//! 1. parses and checks the image again (its checksum proves it intact) and runs the
//!    placement rules on the machine the boot saw, which give the same specs;
//! 2. waits until every core of the replica is off (PSCI `AFFINITY_INFO`);
//! 3. clears the replica's doorbell inbox and the cross-replica channel words it receives
//!    or sends on, so no bit from before crosses the restart, and then publishes the next
//!    epoch (the epitaph of the fault stays);
//! 4. zeroes the part of the replica's RAM the loader fills, builds its kernel tables and
//!    copies its kernel, spec, initialiser, boot program and PD programs (the rest of its
//!    RAM is object memory, which its kernel zeroes as it hands it out);
//! 5. clears what the replica left in the interrupt controller (its shared interrupts'
//!    pending and active states; each core clears its own when its kernel starts);
//! 6. starts the replica's other cores at the trampoline with `CPU_ON`, and enters the
//!    kernel on this one.
//!
//! The work runs on the stopped replica's own core, not on the survivor's: the survivor's
//! cores spend only a few PSCI calls on it, and no kernel ever has a writable mapping of
//! another replica's memory. Restarts are serialised by a lock taken in `entry.S`, since
//! they share the loader's stack and records; the boot core holds it until it leaves the
//! loader. A restart that cannot be done (the image no longer checks, a core does not turn
//! off, an exception or panic in the loader) is logged, the replica published `failed` (its
//! keeper does not try again: it would fail the same way), and the lock given back as the
//! core turns off.
//!
//! What it logs goes to the replica's own log ring (`LDR|` lines), which the console's
//! owner prints; nothing here writes to the UART another replica owns.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicUsize, Ordering};

use atoll_abi::image::{ALL_REPLICAS, ImageView, PartKind};
use atoll_abi::limits::{LOG_LINE_BYTES, MAX_CORES, MAX_REPLICAS};
use atoll_abi::placement::{self, GicDevice, Machine, Placement, Specs};
use atoll_abi::shared::{ReplicaState, ReplicaStatus, SharedArea, pd_words};
use atoll_abi::spec::{PsciConduit, ReplicaSpec, flags};
use atoll_boards::firmware;
use atoll_kernel_core::line::LineBuf;
use atoll_kernel_core::loadcheck;

use crate::{BOARD, Context, CoreBoot, ReplicaTables};

/// What the boot learnt that a restart needs again: the machine the placement rules ran on
/// (the firmware's memory map among it), how to call PSCI, and the interrupt controller.
#[derive(Clone, Copy)]
pub struct BootRecord {
    pub machine: Machine,
    /// The shared area's physical address.
    pub shared: u64,
    pub conduit: PsciConduit,
    pub entry_el: u32,
    pub gic: &'static GicDevice,
}

/// Written once by the boot core before it starts any other core; read by restarts after.
static mut BOOT_RECORD: Option<BootRecord> = None;

/// Keeps what a restart needs (the boot core, before it starts the other cores).
pub fn remember(record: BootRecord) {
    // SAFETY: only the boot core runs the loader now, before any other core starts; restarts
    // read it only after a replica ran, which starts after this write (and the cache clean
    // of the loader's data in `clean_all`).
    unsafe { *core::ptr::addr_of_mut!(BOOT_RECORD) = Some(record) };
}

fn boot_record() -> Option<BootRecord> {
    // SAFETY: written once before any replica ran (`remember`), never after.
    unsafe { *core::ptr::addr_of!(BOOT_RECORD) }
}

/// How many times a core is asked whether it is off before the restart gives up on it.
const OFF_POLLS: u32 = 100_000;

/// The replica a restart is placing, while it runs (`NONE` otherwise): an exception or a
/// panic in the loader then abandons that restart ([`abandon`]).
static RESTARTING: AtomicUsize = AtomicUsize::new(NONE);
const NONE: usize = usize::MAX;

/// Whether a restart is under way on this core (the restart lock is held).
pub fn active() -> bool {
    RESTARTING.load(Ordering::Relaxed) != NONE
}

/// An exception or panic during a restart: logs `what` in the replica's ring, publishes it
/// `failed`, and turns the core off, giving the lock back.
pub fn abandon(what: core::fmt::Arguments<'_>) -> ! {
    let index = RESTARTING.load(Ordering::Relaxed);
    match boot_record() {
        Some(boot) => {
            // SAFETY: as in `loader_restart`.
            let shared: &SharedArea = unsafe { &*(boot.shared as *const SharedArea) };
            fail(shared, index, boot.conduit, what)
        }
        None => off(PsciConduit::Smc),
    }
}

/// Logs why replica `index` cannot be restarted, publishes it `failed`, and turns this
/// core off, giving the restart lock back.
fn fail(
    shared: &SharedArea,
    index: usize,
    conduit: PsciConduit,
    why: core::fmt::Arguments<'_>,
) -> ! {
    log(
        shared,
        index,
        "ERROR",
        format_args!("K{index} cannot be restarted: {why}"),
    );
    if let Some(status) = shared.status.get(index) {
        status.set_state(ReplicaState::Failed);
    }
    RESTARTING.store(NONE, Ordering::Relaxed);
    off(conduit)
}

/// Entered from `entry.S` on a core of the stopped replica `replica`, with the identity map,
/// the loader's stack and the restart lock: places the replica again and returns the boot
/// record of this core, which `entry.S` enters after releasing the lock.
#[unsafe(no_mangle)]
extern "C" fn loader_restart(replica: u64) -> *const CoreBoot {
    let index = usize::try_from(replica).unwrap_or(NONE);
    // A kernel started this core, so the boot got as far as starting cores.
    let Some(boot) = boot_record() else {
        off(PsciConduit::Smc)
    };
    // SAFETY: the boot's placement rules proved the shared area lies in RAM outside the
    // loader and every replica, identity-mapped; the loader initialised it at boot and every
    // user reaches it through atomics only.
    let shared: &SharedArea = unsafe { &*(boot.shared as *const SharedArea) };
    let Some(status) = shared.status.get(index) else {
        off(boot.conduit)
    };
    if status.state() != Some(ReplicaState::Restarting) {
        // Not claimed for a restart (a stray CPU_ON): touch nothing.
        off(boot.conduit)
    }
    RESTARTING.store(index, Ordering::Relaxed);
    crate::set_canary();
    let refuse = |why: &str| -> ! { fail(shared, index, boot.conduit, format_args!("{why}")) };
    // The image the boot checked, checked again: its checksum proves nobody wrote it.
    let Ok(view) = ImageView::parse(crate::image_bytes(), Some(BOARD.name)) else {
        refuse("the image kept in memory no longer checks")
    };
    let mut specs: Specs = [None; MAX_REPLICAS];
    let Ok(placement) = placement::check(&boot.machine, || view.parts(), &mut specs) else {
        refuse("the image kept in memory no longer passes the placement rules")
    };
    let restart = Restart {
        boot: &boot,
        view: &view,
        specs: &specs,
        placement: &placement,
        shared,
        index,
    };
    match restart.place_again() {
        Ok(_) if !crate::canary_intact() => refuse(
            "the loader's stack overflowed; the replica is not entered from possibly damaged state",
        ),
        Ok(core_boot) => {
            RESTARTING.store(NONE, Ordering::Relaxed);
            core_boot
        }
        Err(why) => refuse(why),
    }
}

/// Starts the replica's new life in its status record: no ticks, not settled, the next
/// epoch (published last).
fn new_life(status: &ReplicaStatus) -> u32 {
    status.user_settled.store(0, Ordering::Relaxed);
    status.ticks.store(0, Ordering::Relaxed);
    let epoch = status.epoch.load(Ordering::Relaxed).wrapping_add(1);
    status.epoch.store(epoch, Ordering::Release);
    epoch
}

/// Appends an `LDR|` line to replica `index`'s log ring, which only its kernel writes
/// otherwise: it is stopped, and restarts are serialised. The console's owner prints it.
fn log(shared: &SharedArea, index: usize, level: &str, args: core::fmt::Arguments<'_>) {
    let Some(ring) = shared.logs.get(index) else {
        return;
    };
    let mut line: LineBuf<LOG_LINE_BYTES> = LineBuf::new();
    let _ = write!(line, "LDR|{level}: {args}");
    ring.push(line.as_bytes());
}

unsafe extern "C" {
    /// Releases the restart lock and turns this core off (`entry.S`), using no stack.
    fn loader_restart_off(conduit: u32) -> !;
}

/// Gives the restart lock back and turns this core off for good.
fn off(conduit: PsciConduit) -> ! {
    // SAFETY: called only on the restart path, which holds the lock; the routine uses no
    // stack, so another restart may take the lock and the loader's stack at once.
    unsafe { loader_restart_off(conduit as u32) }
}

/// One restart's inputs: the boot's record, the image and its specs checked again, the
/// shared area, and the replica being placed.
struct Restart<'a> {
    boot: &'a BootRecord,
    view: &'a ImageView<'a>,
    specs: &'a Specs,
    placement: &'a Placement<'a>,
    shared: &'a SharedArea,
    index: usize,
}

impl Restart<'_> {
    fn place_again(&self) -> Result<*const CoreBoot, &'static str> {
        let (boot, index, shared) = (self.boot, self.index, self.shared);
        let Some(Some((mut spec, spec_offset))) = self.specs.get(index).copied() else {
            return Err("no such replica");
        };
        if !spec.restarts(index) {
            return Err("it is not marked restart=\"true\"");
        }
        let status = shared.status.get(index).ok_or("no status record")?;
        let this = crate::current_core().ok_or("this core is not in the board's core table")?;
        if spec.core_mask & (1 << this) == 0 {
            return Err("started on a core that is not the replica's");
        }
        wait_cores_off(boot, &spec, this)?;
        // The new life starts here: nothing rung to or by the old one crosses into it (the
        // words are cleared before the new epoch is published).
        clear_words(shared, &spec, index);
        let epoch = new_life(status);
        self.log(
            "INFO",
            format_args!("restarting K{index} on core {this} (epoch {epoch})"),
        );
        if spec.has_flag(flags::SELFTEST_RESTART_FAULT) {
            self.log(
                "INFO",
                format_args!("self-test: faulting on purpose in the restart"),
            );
            crate::selftest_restart_fault();
        }

        // Its memory, from the image. What the loader fills (below `free_offset`: kernel,
        // spec, tables, initialiser, boot program, PD programs) is zeroed whole first, gaps
        // included; the rest is the kernel's object memory, which the kernel zeroes as it
        // hands it out (a retype zeroes the new object, `Machine::zero`), so no byte of the
        // previous life is readable in the new one without zeroing all of it here (a
        // third of a GiB for each replica of the default system: 33 ms of a restart).
        let ram = spec.ram;
        let loaded = spec.free_offset.min(ram.size);
        // SAFETY: the placement rules proved the replica's RAM is its own, outside the
        // loader, the image and every other replica, identity-mapped; its cores are off.
        unsafe { crate::mem::zero(ram.base as *mut u8, loaded as usize) };
        let start = loadcheck::prepare_replica(
            &boot.machine,
            &mut spec,
            spec_offset,
            &mut ReplicaTables::of,
        )
        .map_err(|_| "its kernel tables cannot be built again")?;
        self.copy_own_parts(&spec);
        self.warn_device_tree(&spec);
        let context = Context {
            placement: self.placement,
            conduit: boot.conduit,
            entry_el: boot.entry_el,
            restarting: true,
        };
        crate::place_replica(&context, &spec, spec_offset, &start);
        crate::clean_range(ram.base, spec.free_offset);

        // What it left in the interrupt controller.
        clear_interrupts(boot, &spec);
        crate::clean_loader();

        // Its cores.
        for core in 0..MAX_CORES as u32 {
            if spec.core_mask & (1 << core) == 0 || core == this {
                continue;
            }
            let Some(&mpidr) = BOARD.cores.get(core as usize) else {
                continue;
            };
            if let Err(e) = firmware::cpu_on(
                boot.conduit,
                mpidr,
                crate::trampoline_address(),
                crate::core_boot_record(core) as u64,
            ) {
                self.log(
                    "ERROR",
                    format_args!(
                        "PSCI CPU_ON core {core} failed: {}; K{index} runs without it",
                        e.name()
                    ),
                );
            }
        }
        Ok(crate::core_boot_record(this))
    }

    /// Copies the replica's own PD programs, region contents and boot program (the parts
    /// the tool placed in its RAM), as `copy_parts` does for every replica at boot.
    fn copy_own_parts(&self, spec: &ReplicaSpec) {
        for part in self.view.parts() {
            if !matches!(
                part.kind,
                PartKind::PdImage | PartKind::RegionData | PartKind::BootProgram
            ) || part.entry.replica == ALL_REPLICAS
                || part.entry.replica as usize != self.index
            {
                continue;
            }
            let dest = spec.ram.base + part.entry.dest_offset;
            crate::copy_part(dest, part.bytes, part.entry.mem_size);
            if part.kind == PartKind::PdImage {
                crate::clean_range(dest, part.entry.mem_size);
            }
        }
    }

    /// The replica's `prefill_bootinfo="fdt"` regions inside its RAM were just zeroed, and
    /// the firmware's tree is gone: they stay zero, which is logged. (A copy outside the
    /// replica's RAM could be another replica's, written by its PDs since.)
    fn warn_device_tree(&self, spec: &ReplicaSpec) {
        let inside = |pa: u64| spec.ram.base <= pa && pa < spec.ram.end();
        if crate::devicetree::regions(self.view, self.specs).any(|(pa, _)| inside(pa)) {
            self.log(
                "WARN",
                format_args!(
                    "K{}'s prefill_bootinfo=\"fdt\" regions are left zero: the loader keeps no \
                     copy of the firmware's device tree",
                    self.index
                ),
            );
        }
    }

    /// Appends an `LDR|` line to the replica's log ring.
    fn log(&self, level: &str, args: core::fmt::Arguments<'_>) {
        log(self.shared, self.index, level, args);
    }
}

/// Waits until every core of the replica but this one is off.
fn wait_cores_off(boot: &BootRecord, spec: &ReplicaSpec, this: u32) -> Result<(), &'static str> {
    for core in 0..MAX_CORES as u32 {
        if spec.core_mask & (1 << core) == 0 || core == this {
            continue;
        }
        let Some(&mpidr) = BOARD.cores.get(core as usize) else {
            continue;
        };
        match firmware::is_off(boot.conduit, mpidr, OFF_POLLS, || {}) {
            Ok(true) => {}
            Ok(false) => return Err("one of its cores does not turn off"),
            Err(_) => return Err("PSCI AFFINITY_INFO fails for one of its cores"),
        }
    }
    Ok(())
}

/// Clears the pending and active states of the replica's shared interrupts, and routes them
/// to its cores again (the same routes as at boot).
fn clear_interrupts(boot: &BootRecord, spec: &ReplicaSpec) {
    // SAFETY: only the replica's own interrupts' registers are written, which nobody else
    // touches while it is stopped.
    let gic = unsafe { crate::distributor(boot.gic) };
    for route in spec.irq_routes() {
        let mpidr = crate::core_mpidr(route.core);
        gic.clear_spi(route.intid);
        let _ = gic.route_spi(route.intid, mpidr, route.core, route.edge != 0);
    }
}

/// Clears the replica's doorbell inbox and every cross-replica channel word it receives or
/// sends on: no bit rung before the restart reaches either side after it.
fn clear_words(shared: &SharedArea, spec: &ReplicaSpec, index: usize) {
    if let Some(inbox) = shared.doorbells.get(index) {
        for word in &inbox.from {
            word.bits.store(0, Ordering::Release);
        }
    }
    let words = spec.words_in | spec.words_out;
    let base = spec.shared.pa;
    for w in 0..64u64 {
        if words & (1 << w) == 0 {
            continue;
        }
        if let Some(offset) = pd_words::offset(w, spec.shared.size) {
            // SAFETY: the word lies inside the kernel shared region (checked by `offset`),
            // identity-mapped RAM used through atomics only.
            let word = unsafe { &*((base + offset) as *const core::sync::atomic::AtomicU64) };
            word.store(0, Ordering::Release);
        }
    }
}
