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
//! - A fault in the kernel stops only this replica ([`stop`]); the others carry on.
//! - Rules that need no hardware (the initialiser's boot checks, the ping ring's protocol,
//!   the objects and system calls) live in `atoll_kernel_core`, tested on the host; the
//!   modules here read registers, memory and the spec and act on what those rules decide.
//!
//! The modules form layers; each uses only those listed before it (no module imports one
//! of its users, so there is no import circle; a host test in `xtask/src/layers.rs`
//! fails on one):
//!
//! 1. [`arch`] (registers) and [`entry`] (`entry.S`: vectors, frames, stacks);
//! 2. [`fp`] (lazy FP/SIMD switching on each core, and saving a core's registers when
//!    another core asks);
//! 3. [`sync`] (replica-local locks; a core waiting for one serves those requests);
//! 4. [`replica`], this replica's state, set up once;
//! 5. [`doorbell`], ringing peers and taking pending words, with no action on a bell;
//! 6. [`console`], log lines (`klog!`) and the console drain;
//! 7. [`ping_ring`], the boot protocol and ping ring between replicas;
//! 8. [`restart`], watching the other replicas: restarting, hung, back;
//! 9. [`inbox`], what the kernels' own bells mean, and ringing this replica itself;
//! 10. [`stop`], stopping a core or the replica, and the panic handler;
//! 11. [`machine`], the portable kernel under the replica lock, and the machine it sees;
//! 12. [`initialiser`], building the first thread;
//! 13. [`irq`], interrupts;
//! 14. [`el0`] (exceptions from user threads, and returning to them) and [`el1`]
//!     (exceptions taken in the kernel);
//! 15. this file: the entry from `entry.S`, and bringing the replica and its cores up.
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
mod console;
mod doorbell;
mod el0;
mod el1;
mod entry;
mod fp;
mod inbox;
mod initialiser;
mod irq;
mod machine;
mod ping_ring;
mod replica;
mod restart;
mod stop;
mod sync;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_abi::limits::MAX_CORES;
use atoll_abi::shared::{ReplicaState, SharedArea, bell};
use atoll_abi::spec::{PsciConduit, ReplicaSpec, UartKind, flags};
use atoll_boards::gic::Gic;
use atoll_boards::uart::Uart;
use atoll_kernel_core::line::CoreSet;

use crate::console::klog;
use crate::replica::{Replica, replica};
use crate::stop::{park_forever, stop_this_core};
use crate::sync::IrqSpinLock;

/// How long a replica's primary waits for its other cores before reporting without them.
const CORE_START_TIMEOUT_MS: u64 = 1000;

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
        park_forever();
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
    inbox::service(r);
    if core == spec.primary_core() {
        el0::run_initialiser(r);
    }
    el0::run(r, core as usize)
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
        park_forever();
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
        at_el0: [const { AtomicBool::new(false) }; MAX_CORES],
        entry_svc: [const { AtomicBool::new(false) }; MAX_CORES],
        kick_pending: [const { AtomicBool::new(false) }; MAX_CORES],
    };
    if !shared.header_ok() {
        park_forever();
    }
    let Some(r) = replica::install(replica) else {
        park_forever(); // set up twice: only the primary core gets here, once
    };
    // Each core of the replica counts its lock waits in its interference counters.
    for (core, counters) in r.shared.cores.iter().enumerate() {
        if spec.core_mask & (1 << core) != 0 {
            sync::count_waits_in(core, counters);
        }
    }
    r.status().set_state(ReplicaState::Booting);
    restart::on_start(r);
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
            "core {core}: interrupt controller set-up failed: {}; core stopped",
            e.describe()
        );
        stop_this_core(r, core);
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
        el1::selftest_stack_overflow(0);
    }
    if r.spec.has_flag(flags::SELFTEST_FAULT) {
        klog!(
            "INFO",
            "self-test: faulting on purpose to show only this replica stops"
        );
        stop::selftest_fault();
    }
    klog!("INFO", "up on cores {}", CoreSet(online));
    r.status().set_state(ReplicaState::Up);
    inbox::ring(r, 0, bell::STATUS);
    restart::announce(r);
}
