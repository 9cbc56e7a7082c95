//! This replica's kernel state: what its boot spec and the devices it names give it, set
//! up once by the primary core and read by every core after.

use core::sync::atomic::{AtomicBool, AtomicU64};

use atoll_abi::limits::{MAX_CORES, MAX_REPLICAS};
use atoll_abi::shared::{CoreCounters, LogRing, ReplicaStatus, SharedArea};
use atoll_abi::spec::{PsciConduit, ReplicaSpec, layout};
use atoll_boards::gic::Gic;
use atoll_boards::uart::Uart;

use crate::sync::{InitOnce, IrqSpinLock};

/// This replica's kernel state, set up once by its primary core.
pub struct Replica {
    /// The boot spec.
    pub spec: &'static ReplicaSpec,
    /// The kernel-to-kernel shared area.
    pub shared: &'static SharedArea,
    /// This replica's index.
    pub index: usize,
    /// Its status record in the shared area.
    pub(crate) status: &'static ReplicaStatus,
    /// Its log ring in the shared area.
    pub log: &'static LogRing,
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
    /// Per core: it runs (or is about to return to) a thread at EL0. Set under the kernel
    /// lock just before the core returns to a thread; cleared at its next exception, once
    /// the thread's registers are saved.
    pub at_el0: [AtomicBool; MAX_CORES],
    /// Per core: its last exception from EL0 was a system call.
    pub entry_svc: [AtomicBool; MAX_CORES],
    /// Per core: a reschedule interrupt was sent and the core has not chosen since (kicks
    /// are coalesced: one interrupt until then).
    pub kick_pending: [AtomicBool; MAX_CORES],
}

static REPLICA: InitOnce<Replica> = InitOnce::new();

/// This replica's state; `None` only before the primary core set it up.
pub fn replica() -> Option<&'static Replica> {
    REPLICA.get()
}

/// Sets this replica's state up (the primary core, once); `None` if it was set already.
pub fn install(replica: Replica) -> Option<&'static Replica> {
    REPLICA.init(replica)
}

impl Replica {
    /// This replica's status record.
    pub fn status(&self) -> &ReplicaStatus {
        self.status
    }

    /// Replica `index`'s status record, if there is such a replica.
    pub fn status_of(&self, index: usize) -> Option<&ReplicaStatus> {
        self.shared
            .status
            .get(index)
            .filter(|_| index < self.replica_count())
    }

    /// The status records of every replica, in index order.
    pub fn statuses(&self) -> impl Iterator<Item = &ReplicaStatus> {
        self.shared.status.iter().take(self.replica_count())
    }

    /// The MPIDR of core `core` (0 for a core the spec does not name).
    pub fn core_mpidr(&self, core: u32) -> u64 {
        self.spec
            .core_mpidr
            .get(core as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Number of replicas in the system (bounded by the ABI limit).
    pub fn replica_count(&self) -> usize {
        (self.spec.replica_count as usize).min(MAX_REPLICAS)
    }

    /// Core `core`'s interference counters on the status page (this replica's kernel
    /// writes only its own cores').
    #[inline(always)]
    pub fn counters(&self, core: usize) -> Option<&CoreCounters> {
        self.shared.cores.get(core)
    }

    /// Counts one more of what `counter` picks in core `core`'s interference counters.
    #[inline(always)]
    pub fn count(&self, core: usize, counter: impl FnOnce(&CoreCounters) -> &AtomicU64) {
        if let Some(c) = self.counters(core) {
            CoreCounters::add(counter(c), 1);
        }
    }

    /// Whether the replica has one core: its address spaces are used on that core alone, so
    /// TLB maintenance for them need not reach any other core.
    pub fn single_core(&self) -> bool {
        self.spec.core_mask.count_ones() == 1
    }

    /// Whether this replica drains the log rings to the console.
    pub fn owns_console(&self) -> bool {
        self.console.is_some()
    }

    /// The kernel's view of a physical address in this replica's RAM (the linear map
    /// covers exactly the replica's RAM from `LINEAR_MAP_BASE`; callers check `pa` lies in
    /// it).
    pub fn linear(&self, pa: u64) -> *mut u8 {
        layout::LINEAR_MAP_BASE.wrapping_add(pa.wrapping_sub(self.spec.ram.base)) as *mut u8
    }
}

/// The core index of the calling core, from its MPIDR and the spec.
pub fn current_core(spec: &ReplicaSpec) -> Option<u32> {
    let affinity = atoll_boards::firmware::current_affinity();
    (0..MAX_CORES as u32).find(|&c| {
        spec.core_mask & (1 << c) != 0 && spec.core_mpidr.get(c as usize) == Some(&affinity)
    })
}
