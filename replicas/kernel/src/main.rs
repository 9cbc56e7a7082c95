//! The Atoll replica kernel for aarch64.
//!
//! One copy of this kernel runs per replica (a cluster of cores), linked at the same
//! virtual address in every replica and mapped onto that replica's own memory. It reads
//! everything it needs from its boot spec and holds no board data and no policy.
//!
//! Design principles:
//! - Nothing is shared between replicas but the shared area, used only through the
//!   lock-free protocols in `atoll_abi::shared`: status records, log rings and doorbells.
//! - Within a replica, state lives in this image's statics; several cores of one replica
//!   synchronise through replica-local locks only.
//! - A fault in the kernel stops only this replica ([`fatal`]); the others carry on.
//!
//! Modules: [`arch`] (registers), [`sync`] (replica-local locks), [`console`] (log lines and
//! the console drain), [`doorbell`] (inter-replica signals), [`boot`] (the boot protocol
//! and ping ring), [`fatal`] (exceptions that stop the replica).
#![no_std]
// Nothing a thread, a peer replica, a device or the firmware controls may panic a kernel:
// the constructs that can panic are refused (exceptions are marked `#[expect]` or
// `#[allow]` with their reason). This crate has no host tests, so the rule has no
// exception for them, unlike the libraries'.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]
#![no_main]

mod arch;
mod boot;
mod console;
mod doorbell;
mod fatal;
mod sync;
mod user;

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::limits::{MAX_CORES, MAX_REPLICAS, PD_TIMER_INTID};
use atoll_abi::shared::{ReplicaState, SharedArea, bell};
use atoll_abi::spec::{PsciConduit, ReplicaSpec, UartKind, flags};
use atoll_boards::gic::Gic;
use atoll_boards::uart::Uart;
use atoll_kernel_core::line::CoreSet;

use crate::sync::{InitOnce, IrqSpinLock};

core::arch::global_asm!(include_str!("entry.S"));

/// Per-core stacks used only to report a kernel stack overflow (`entry.S`). The kernel
/// stacks themselves lie in their own guarded slots (`atoll_abi::spec::layout`).
#[unsafe(no_mangle)]
static mut EMERGENCY_STACKS: EmergencyStacks = EmergencyStacks([[0; 4096]; MAX_CORES]);

#[repr(C, align(16))]
struct EmergencyStacks([[u8; 4096]; MAX_CORES]);

/// How long a replica's primary waits for its other cores before reporting without them.
const CORE_START_TIMEOUT_MS: u64 = 1000;

/// This replica's kernel state, set up once by its primary core.
pub struct Replica {
    /// The boot spec.
    pub spec: &'static ReplicaSpec,
    /// The kernel-to-kernel shared area.
    pub shared: &'static SharedArea,
    /// This replica's index.
    pub index: usize,
    /// Its status record in the shared area.
    status: &'static atoll_abi::shared::ReplicaStatus,
    /// Its log ring in the shared area.
    pub log: &'static atoll_abi::shared::LogRing,
    /// The interrupt controller.
    pub gic: Gic,
    /// The console, if this replica owns it.
    pub console: Option<Uart>,
    /// How to call PSCI.
    pub psci: PsciConduit,
    /// Counter ticks between timer interrupts.
    pub tick_interval: u64,
    /// Counter frequency.
    pub counter_hz: u64,
    /// Serialises this replica's log ring producer side.
    pub log_lock: IrqSpinLock,
    /// Serialises console output among this replica's cores.
    pub console_lock: IrqSpinLock,
    /// Timer ticks per core (index = core index).
    pub core_ticks: [AtomicU64; MAX_CORES],
    /// Counter value of each core's next housekeeping tick.
    pub next_tick: [AtomicU64; MAX_CORES],
}

static REPLICA: InitOnce<Replica> = InitOnce::new();

/// This replica's state; `None` only before the primary core set it up.
pub fn replica() -> Option<&'static Replica> {
    REPLICA.get()
}

impl Replica {
    /// This replica's status record.
    pub fn status(&self) -> &atoll_abi::shared::ReplicaStatus {
        self.status
    }

    /// Replica `index`'s status record, if there is such a replica.
    pub fn status_of(&self, index: usize) -> Option<&atoll_abi::shared::ReplicaStatus> {
        self.shared
            .status
            .get(index)
            .filter(|_| index < self.replica_count())
    }

    /// The MPIDR of core `core` (0 for a core the spec does not name).
    pub fn core_mpidr(&self, core: u32) -> u64 {
        self.spec
            .core_mpidr
            .get(core as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The replica after `i` on the ping ring (the last one's is replica 0).
    pub fn next_replica(&self, i: usize) -> usize {
        let next = i.saturating_add(1);
        if next < self.replica_count() { next } else { 0 }
    }

    /// The replica before `i` on the ping ring (replica 0's is the last one).
    pub fn previous_replica(&self, i: usize) -> usize {
        i.checked_sub(1)
            .unwrap_or(self.replica_count().saturating_sub(1))
    }

    /// Number of replicas in the system (bounded by the ABI limit).
    pub fn replica_count(&self) -> usize {
        (self.spec.replica_count as usize).min(MAX_REPLICAS)
    }

    /// Whether this replica drains the log rings to the console.
    pub fn owns_console(&self) -> bool {
        self.console.is_some()
    }
}

/// First Rust code on every core of the replica (see `entry.S`).
#[unsafe(no_mangle)]
extern "C" fn kernel_main(spec_va: usize, core: usize) -> ! {
    arch::disable_low_half();
    // SAFETY: the loader passes the virtual address of this replica's spec, which its page
    // tables map; the spec is never written after boot.
    let spec: &'static ReplicaSpec = unsafe { &*(spec_va as *const ReplicaSpec) };
    let core = core as u32;
    if spec.check().is_err() || core as usize >= MAX_CORES || spec.core_mask & (1 << core) == 0 {
        // Nothing trustworthy to report with: stop this core quietly.
        fatal::park_forever();
    }
    if core == spec.primary_core() {
        init_replica(spec);
    }
    let r = loop {
        match replica() {
            Some(r) => break r,
            None => arch::wait_for_event(),
        }
    };
    init_core(r, core);
    if core == spec.primary_core() {
        primary_up(r);
    }
    doorbell::service(r);
    if core == spec.primary_core() {
        user::start_initialiser(r);
    }
    user::idle_forever()
}

fn init_replica(spec: &'static ReplicaSpec) {
    // SAFETY: the spec's shared window maps the shared area read-write in our tables, the
    // loader zeroed it and wrote its header, and it is only used through atomics.
    let shared: &'static SharedArea = unsafe { &*(spec.shared.va as *const SharedArea) };
    let console = UartKind::from_raw(spec.console.kind).map(|kind| {
        // SAFETY: the spec maps the console's registers as device memory, and only the
        // replica that owns the console gets them.
        let uart = unsafe { Uart::new(kind, spec.console.va as usize) };
        uart.init();
        uart
    });
    // SAFETY: the spec maps the distributor and this replica's CPU interfaces or
    // redistributors as device memory.
    let gic = unsafe {
        Gic::new(
            spec.gic.version,
            spec.gic.distributor.va as usize,
            spec.gic.cpu.va as usize,
            spec.gic.cpu.size as usize,
        )
    };
    let counter_hz = arch::counter_frequency().max(1);
    let index = spec.replica as usize;
    // The spec check keeps the index below the shared area's replica count.
    let (Some(status), Some(log)) = (shared.status.get(index), shared.logs.get(index)) else {
        fatal::park_forever();
    };
    let replica = Replica {
        spec,
        shared,
        index,
        status,
        log,
        gic,
        console,
        psci: PsciConduit::from_raw(spec.loader.psci_conduit).unwrap_or(PsciConduit::Smc),
        tick_interval: counter_hz
            .checked_div(u64::from(spec.tick_hz))
            .unwrap_or(counter_hz)
            .max(1),
        counter_hz,
        log_lock: IrqSpinLock::new(),
        console_lock: IrqSpinLock::new(),
        core_ticks: [const { AtomicU64::new(0) }; MAX_CORES],
        next_tick: [const { AtomicU64::new(0) }; MAX_CORES],
    };
    if !shared.header_ok() {
        fatal::park_forever();
    }
    let Some(r) = REPLICA.init(replica) else {
        fatal::park_forever(); // set up twice: only the primary core gets here, once
    };
    r.status().set_state(ReplicaState::Booting);
    klog!(
        "INFO",
        "replica {} of {} booting on cores {}: RAM {:#x}-{:#x} ({} MiB), GICv{}, timer {} kHz, tick {} Hz",
        r.index,
        r.replica_count(),
        CoreSet(spec.core_mask),
        spec.ram.base,
        spec.ram.end(),
        spec.ram.size >> 20,
        spec.gic.version,
        counter_hz / 1000,
        spec.tick_hz
    );
}

fn init_core(r: &Replica, core: u32) {
    let mpidr = r.core_mpidr(core);
    let enabled = r.gic.init_cpu(mpidr).and_then(|()| {
        r.gic.enable_local(mpidr, r.spec.gic.doorbell_sgi)?;
        r.gic.enable_local(mpidr, r.spec.gic.stop_sgi)?;
        r.gic.enable_local(mpidr, r.spec.gic.timer_intid)
    });
    if let Err(e) = enabled {
        klog!(
            "ERROR",
            "core {core}: interrupt controller set-up failed: {e:?}; core stopped"
        );
        fatal::stop_this_core(r, core);
    }
    arch::allow_user_counter();
    arch::start_instruction_counter();
    arch::arm_timer(r.tick_interval);
    r.status()
        .cores_online
        .fetch_or(1 << core, Ordering::AcqRel);
    arch::send_event();
    arch::irq_enable();
}

/// The primary core, with its own interrupts live: wait for the replica's other cores, then
/// report the replica up (or, in the fault self-test, fault on purpose).
fn primary_up(r: &Replica) {
    let deadline =
        arch::counter().saturating_add(r.counter_hz.saturating_mul(CORE_START_TIMEOUT_MS) / 1000);
    let all = r.spec.core_mask;
    while r.status().cores_online.load(Ordering::Acquire) & all != all && arch::counter() < deadline
    {
        arch::wait_for_event();
    }
    let online = r.status().cores_online.load(Ordering::Acquire) & all;
    if online != all {
        klog!(
            "WARN",
            "cores {} did not start; running on {}",
            CoreSet(all & !online),
            CoreSet(online)
        );
    }
    if r.spec.has_flag(flags::SELFTEST_STACK_OVERFLOW) {
        klog!("INFO", "self-test: overflowing the kernel stack on purpose");
        fatal::selftest_stack_overflow(0);
    }
    if r.spec.has_flag(flags::SELFTEST_FAULT) {
        klog!(
            "INFO",
            "self-test: faulting on purpose to show only this replica stops"
        );
        fatal::selftest_fault();
    }
    klog!("INFO", "up on cores {}", CoreSet(online));
    r.status().set_state(ReplicaState::Up);
    doorbell::ring(r, 0, bell::STATUS);
}

/// IRQ entry, from the vectors.
pub fn handle_irq(r: &Replica, core: u32) {
    while let Some(acked) = r.gic.acknowledge() {
        let intid = acked.intid;
        if intid == r.spec.gic.stop_sgi {
            r.gic.end_of_interrupt(acked);
            fatal::stop_this_core(r, core);
        }
        if intid == r.spec.gic.timer_intid {
            tick(r, core);
        } else if intid == r.spec.gic.doorbell_sgi {
            doorbell::service(r);
            if core == r.spec.primary_core() {
                user::on_doorbell(r);
            }
        } else if (intid >= 32 || intid == PD_TIMER_INTID) && core == r.spec.primary_core() {
            user::on_device_irq(r, intid);
        } else {
            klog!("WARN", "core {core}: unexpected interrupt {intid}");
        }
        r.gic.end_of_interrupt(acked);
    }
}

/// The timer fired: budgets are charged on the primary core (the timer may fire early for
/// a budget), and once per tick interval the housekeeping runs.
fn tick(r: &Replica, core: u32) {
    let primary = core == r.spec.primary_core();
    if primary {
        user::on_timer();
    }
    let now = arch::counter();
    let (Some(due), Some(core_ticks)) = (
        r.next_tick.get(core as usize),
        r.core_ticks.get(core as usize),
    ) else {
        return;
    };
    let deadline = due.load(Ordering::Relaxed);
    if now < deadline {
        arch::arm_timer(deadline.wrapping_sub(now));
        return;
    }
    due.store(now.saturating_add(r.tick_interval), Ordering::Relaxed);
    arch::arm_timer(r.tick_interval);
    core_ticks.fetch_add(1, Ordering::Relaxed);
    if !primary {
        return;
    }
    let ticks = r
        .status()
        .ticks
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    if r.owns_console() {
        console::drain(r);
    }
    if r.index == 0 {
        boot::on_tick(r, ticks);
    }
}

/// The core index of the calling core, from its MPIDR and the spec.
pub fn current_core(spec: &ReplicaSpec) -> Option<u32> {
    let affinity = atoll_boards::firmware::current_affinity();
    (0..MAX_CORES as u32).find(|&c| {
        spec.core_mask & (1 << c) != 0 && spec.core_mpidr.get(c as usize) == Some(&affinity)
    })
}
