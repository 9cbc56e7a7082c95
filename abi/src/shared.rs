//! The kernel-to-kernel shared area: the only memory every replica kernel maps.
//!
//! It holds, per replica, a status record, a doorbell inbox and a log ring, one record per
//! PD of the system ([`PdRecord`]), the traffic of the first cross-replica channel words
//! ([`WordRecord`]), and after them the cross-replica channel words of the PDs
//! ([`pd_words`]). The header, the replicas' status records, the PD records and the word
//! records fill the first page alone ([`STATUS_PAGE_BYTES`]), so that a PD can be given exactly them,
//! read-only (the `microkit` tool's built-in `device="atoll_status"`), and nothing else of
//! the area; the doorbells start on the next page. Nothing here
//! is protected by a lock: each word has one writer, or is changed only by atomic
//! read-modify-write, and every reader treats what it reads as untrusted (a peer replica
//! may be faulty). The loader zeroes the area and writes the header before any replica runs.
//!
//! Protocols:
//! - **Doorbell**: a sender ORs bits into `doorbells[receiver].from[sender]` and sends the
//!   doorbell SGI only when the word was zero; the receiver, after acknowledging the SGI,
//!   swaps each word to zero (release on the OR, acquire on the take; see
//!   [`doorbell::PendingWord`] and the model check in `verification/`). No wakeup is lost: a sender that sees a
//!   non-zero word knows the receiver has not yet taken it and will.
//! - **Log ring**: single producer (the owning replica, under its own lock), single consumer
//!   (the console owner). Whole lines in fixed slots, so lines never interleave; when the
//!   ring is full a line is dropped and counted, never waited for.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

use crate::directory::MAX_DIRECTORY_PDS;
use crate::limits::{LOG_LINE_BYTES, LOG_RING_SLOTS, MAX_CORES, MAX_REPLICAS};

/// Magic at the start of the shared area.
pub const SHARED_MAGIC: [u8; 8] = *b"ATOLLSHM";
/// Shared-area layout version (2: the status records have the first page to themselves,
/// the doorbells start at [`STATUS_PAGE_BYTES`]; 3: the [`PdRecord`] and [`WordRecord`]
/// tables follow the status records on that page; 4: the [`CoreCounters`] table follows
/// them).
pub const SHARED_VERSION: u32 = 5;

/// Bytes of the status page: the first page of the shared area, which holds the
/// [`SharedHeader`], the [`ReplicaStatus`] records and the [`PdRecord`] table and nothing
/// else.
pub const STATUS_PAGE_BYTES: u64 = crate::limits::PAGE_SIZE;

/// Records in the PD table, indexed by a PD's index in the system directory
/// (`crate::directory`): one for every PD a system may have, children included.
pub const PD_RECORDS: usize = MAX_DIRECTORY_PDS;

/// Records in the channel-word table: the traffic of cross-replica channel words 0 to
/// `WORD_RECORDS - 1` ([`pd_words`]; the tool numbers a system's words from 0), counted by
/// the kernels that send and take them.
pub const WORD_RECORDS: usize = 64;

/// Where the word records end.
const WORDS_END: usize = size_of::<SharedHeader>()
    + MAX_REPLICAS * size_of::<ReplicaStatus>()
    + PD_RECORDS * size_of::<PdRecord>()
    + WORD_RECORDS * size_of::<WordRecord>();

/// Padding after the word records, so that each core's counters have a cache line of their
/// own.
const CORES_PAD_BYTES: usize = WORDS_END.next_multiple_of(64) - WORDS_END;

/// Padding after the core counters, to the end of the status page.
const STATUS_PAD_BYTES: usize = STATUS_PAGE_BYTES as usize
    - WORDS_END
    - CORES_PAD_BYTES
    - MAX_CORES * size_of::<CoreCounters>();

/// Doorbell bits the kernels use between themselves.
pub mod bell {
    /// The sender's status record changed.
    pub const STATUS: u64 = 1 << 0;
    /// The sender wrote log lines.
    pub const LOG: u64 = 1 << 1;
    /// The boot ping: pass it on to the next replica.
    pub const PING: u64 = 1 << 2;
    /// The ping could not be passed on: the next replica is down.
    pub const PING_BROKEN: u64 = 1 << 3;
}

/// A replica's life cycle, as published in its status record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ReplicaState {
    /// Not started yet (the loader zeroed the record).
    Offline = 0,
    /// Its kernel is setting up.
    Booting = 1,
    /// Running.
    Up = 2,
    /// Stopped after a fatal error; the record holds the epitaph.
    Down = 3,
    /// Being placed again by the loader's restart path, on one of its own cores, after a
    /// surviving replica started it there (`restart="true"`). The epoch is already the new
    /// one; the kernel publishes `Booting` when it starts.
    Restarting = 4,
    /// Its tick count stayed frozen longer than its `hung_after_ms`: a surviving replica
    /// published this for it, asked its cores to stop, and sends it nothing more. It goes
    /// back to `Up` if its ticks move again.
    Hung = 5,
    /// Stopped, and not restarted again: the loader could not place it, or it stopped again
    /// within a second of a restart (its own start-up fails, and a restart would repeat
    /// it), or its cores did not turn off. The record holds the last epitaph.
    Failed = 6,
}

impl ReplicaState {
    /// Decodes a raw state; anything unknown reads as `None` (a corrupt record).
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Offline),
            1 => Some(Self::Booting),
            2 => Some(Self::Up),
            3 => Some(Self::Down),
            4 => Some(Self::Restarting),
            5 => Some(Self::Hung),
            6 => Some(Self::Failed),
            _ => None,
        }
    }

    /// Lower-case name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Booting => "booting",
            Self::Up => "up",
            Self::Down => "down",
            Self::Restarting => "restarting",
            Self::Hung => "hung",
            Self::Failed => "failed",
        }
    }
}

/// A PD's life cycle, as its replica's kernel publishes it in the PD's [`PdRecord`].
///
/// A PD blocked waiting for events is `Running`: it is alive. The kernel tracks the PD's
/// thread: the boot program names it (`TCB_SetStatusIndex`) before starting it, a resume
/// or restart makes it `Running`, a fault `Faulted` until it is restarted (its monitor or
/// parent stopping it leaves it `Faulted`), and a suspension or its TCB's destruction
/// `Stopped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PdState {
    /// Nothing published: the loader zeroed the record, and no kernel has a thread for it
    /// (its replica has not reached it, or it is no PD of the system).
    Unpublished = 0,
    /// Named by the boot program, not started yet.
    Starting = 1,
    /// Started or restarted (running, ready, or blocked waiting for events).
    Running = 2,
    /// Stopped by a fault and not restarted (yet).
    Faulted = 3,
    /// Stopped on purpose (suspended), or its thread is gone.
    Stopped = 4,
}

impl PdState {
    /// Decodes a raw state; anything unknown reads as `None` (a corrupt record).
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Unpublished),
            1 => Some(Self::Starting),
            2 => Some(Self::Running),
            3 => Some(Self::Faulted),
            4 => Some(Self::Stopped),
            _ => None,
        }
    }

    /// Lower-case name for logs (the names `GET /status` shows, but `unpublished`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unpublished => "unpublished",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Faulted => "faulted",
            Self::Stopped => "stopped",
        }
    }
}

/// One PD's record in the status page's PD table, at the PD's index in the system
/// directory. Written only by the kernel of the replica whose thread the boot program
/// named with that index (`TCB_SetStatusIndex`), read by anyone who maps the status page.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct PdRecord {
    /// A [`PdState`] as `u32`.
    pub state: AtomicU32,
    /// Faults the PD's thread has taken since it was named, whatever became of them
    /// (saturating).
    pub faults: AtomicU32,
}

/// A [`PdRecord`] as read: one snapshot of its two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdView {
    /// The published state; `None` if the word is no state (a corrupt record).
    pub state: Option<PdState>,
    /// The fault count.
    pub faults: u32,
}

impl PdRecord {
    /// Publishes `state` and `faults`: the count first, then the state with release, so
    /// that a reader that sees the state (acquire) sees at least this count.
    pub fn publish(&self, state: PdState, faults: u32) {
        self.faults.store(faults, Ordering::Relaxed);
        self.state.store(state as u32, Ordering::Release);
    }

    /// Reads the record (the state with acquire, then the count).
    pub fn read(&self) -> PdView {
        let state = PdState::from_raw(self.state.load(Ordering::Acquire));
        PdView {
            state,
            faults: self.faults.load(Ordering::Relaxed),
        }
    }
}

/// The traffic of one cross-replica channel word: one receiving PD's word for one sending
/// replica (a word has one sender). The sending kernel writes `from`, `to`, `sent` and
/// `dropped`; the receiving kernel writes `received`. Counts only grow (atomic adds), and a
/// reader trusts none of it: a faulty replica may have written anything.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct WordRecord {
    /// 1 + the sending replica's index; 0 until the word is first rung.
    pub from: AtomicU32,
    /// 1 + the receiving replica's index; 0 until the word is first rung.
    pub to: AtomicU32,
    /// Notifications that set bits in the word (each a PD's notify across replicas).
    pub sent: AtomicU64,
    /// Notifications refused because the receiving replica was down.
    pub dropped: AtomicU64,
    /// Times the receiving kernel took bits from the word and signalled its PD. Notifies
    /// that arrive before the receiver takes the word coalesce, so this is at most `sent`.
    pub received: AtomicU64,
}

/// A [`WordRecord`] as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordView {
    /// The sending replica's index.
    pub from: usize,
    /// The receiving replica's index.
    pub to: usize,
    /// Notifications sent.
    pub sent: u64,
    /// Notifications refused (receiver down).
    pub dropped: u64,
    /// Times the receiver took the word.
    pub received: u64,
}

impl WordRecord {
    /// Counts a notify from replica `from` to replica `to` through this word: delivered
    /// (`sent`) or refused (`dropped`). Only the sending replica calls it.
    pub fn count_send(&self, from: usize, to: usize, delivered: bool) {
        // A word has one sending and one receiving replica: its ends are written once.
        if self.from.load(Ordering::Relaxed) == 0 {
            let tag = |r: usize| u32::try_from(r).map_or(0, |r| r.saturating_add(1));
            self.to.store(tag(to), Ordering::Relaxed);
            self.from.store(tag(from), Ordering::Relaxed);
        }
        let counter = if delivered { &self.sent } else { &self.dropped };
        // Several cores of the sending replica may notify through the word at once.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the receiving kernel taking bits from the word. Only the receiving replica's
    /// core that serves its doorbell calls it, so a plain load and store count exactly.
    pub fn count_take(&self) {
        let taken = self.received.load(Ordering::Relaxed);
        self.received
            .store(taken.wrapping_add(1), Ordering::Relaxed);
    }

    /// The record, if the word was ever rung and names two replicas of the system (fewer
    /// than `replicas`); `None` otherwise.
    pub fn read(&self, replicas: usize) -> Option<WordView> {
        let index = |tag: u32| {
            usize::try_from(tag)
                .ok()?
                .checked_sub(1)
                .filter(|&r| r < replicas.min(MAX_REPLICAS))
        };
        Some(WordView {
            from: index(self.from.load(Ordering::Relaxed))?,
            to: index(self.to.load(Ordering::Relaxed))?,
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        })
    }
}

/// Header of the shared area.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct SharedHeader {
    /// [`SHARED_MAGIC`].
    pub magic: [u8; 8],
    /// [`SHARED_VERSION`].
    pub version: u32,
    /// Replicas in the system.
    pub replica_count: u32,
    /// Reserved.
    pub reserved: [u64; 6],
}

/// One replica's status record; written by that replica, with three exceptions while it is
/// not running: the loader's restart path writes `state` (`Restarting`) and `epoch` before
/// the replica's kernel starts again, and a surviving replica that finds it hung writes
/// `state` (`Up` to `Hung` and back, by compare-and-swap).
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct ReplicaStatus {
    /// A [`ReplicaState`] as `u32`.
    pub state: AtomicU32,
    /// 1 once user space first had no thread that wanted to run: the initialiser finished
    /// its boot program and every PD it started has blocked (a thread that only waits for
    /// its budget to be refilled still wants to run). Test images power off only after
    /// every replica got there.
    pub user_settled: AtomicU32,
    /// Cores of the replica that are running (bit i = core index i).
    pub cores_online: AtomicU64,
    /// Timer ticks seen by the replica's primary core.
    pub ticks: AtomicU64,
    /// Epitaph: ESR of the fatal exception.
    pub fault_esr: AtomicU64,
    /// Epitaph: FAR of the fatal exception.
    pub fault_far: AtomicU64,
    /// Epitaph: ELR of the fatal exception.
    pub fault_elr: AtomicU64,
    /// Epitaph: core the fatal exception was taken on.
    pub fault_core: AtomicU32,
    /// How many times the replica was restarted: 0 from the first boot, one more at each
    /// restart, written by the loader's restart path before the kernel starts again. Peers
    /// tell a restarted replica from the one they knew by it.
    pub epoch: AtomicU32,
    /// The virtual counter when `user_settled` became 1; once `down`, when the replica
    /// stopped (a restart times itself from it).
    pub settled_at: AtomicU64,
}

impl ReplicaStatus {
    /// The published state (`None` if the record is corrupt).
    pub fn state(&self) -> Option<ReplicaState> {
        ReplicaState::from_raw(self.state.load(Ordering::Acquire))
    }

    /// Publishes a state, after everything written before it.
    pub fn set_state(&self, state: ReplicaState) {
        self.state.store(state as u32, Ordering::Release);
    }

    /// Moves the state from `from` to `to` if it is still `from`; whether it did.
    pub fn swap_state(&self, from: ReplicaState, to: ReplicaState) -> bool {
        self.state
            .compare_exchange(from as u32, to as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether peers may deliver to the replica: it is not down, being restarted, hung or
    /// failed.
    pub fn reachable(&self) -> bool {
        !matches!(
            self.state(),
            Some(
                ReplicaState::Down
                    | ReplicaState::Restarting
                    | ReplicaState::Hung
                    | ReplicaState::Failed
            )
        )
    }
}

/// What one core's kernel did and suffered: the interference counters. Indexed by the
/// machine's core index; written only by the kernel of the replica that owns the core, on
/// that core (a plain load and store count exactly), read by anyone who maps the status
/// page. A reader trusts none of it: a faulty replica may have written anything.
///
/// An interrupt is *foreign* to a core when it serves no thread of that core and no timer
/// of its own: [`sgis`](Self::sgis) (a doorbell from another replica, or another core of the
/// replica asking this one to choose again) and [`devices`](Self::devices) (a device's
/// interrupt). Broadcast maintenance is what a kernel executes that reaches every core of
/// the chip (an inner-shareable `tlbi`): a core suffers the sum of every other core's.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct CoreCounters {
    /// Exceptions the kernel took on this core from EL0 (system calls, faults, traps and
    /// interrupts taken while a thread ran), and interrupts it woke for while idle.
    pub entries: AtomicU64,
    /// The kernel's own timer interrupts (the virtual timer: the replica's housekeeping tick
    /// and its scheduling events).
    pub timer_irqs: AtomicU64,
    /// The virtual counter when the kernel last took the physical timer's interrupt (PPI 30,
    /// a PD's of this core): with the timer's deadline, how long the interrupt took to reach
    /// the kernel, and with the time the PD's handler starts, how long the kernel took from
    /// there.
    pub pd_timer_at: AtomicU64,
    /// Software-generated interrupts: doorbells from other replicas and reschedule requests
    /// from the replica's other cores.
    pub sgis: AtomicU64,
    /// Device interrupts (shared peripheral interrupts).
    pub devices: AtomicU64,
    /// Times the core found a kernel lock of its replica held and waited for it.
    pub lock_waits: AtomicU64,
    /// Counter ticks the core spent waiting for those locks.
    pub lock_wait_ticks: AtomicU64,
    /// Broadcast (inner-shareable) TLB maintenance instructions this core's kernel executed.
    pub broadcasts: AtomicU64,
}

/// A [`CoreCounters`] record as read: one snapshot of each counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreView {
    /// [`CoreCounters::entries`].
    pub entries: u64,
    /// [`CoreCounters::timer_irqs`].
    pub timer_irqs: u64,
    /// [`CoreCounters::pd_timer_at`].
    pub pd_timer_at: u64,
    /// [`CoreCounters::sgis`].
    pub sgis: u64,
    /// [`CoreCounters::devices`].
    pub devices: u64,
    /// [`CoreCounters::lock_waits`].
    pub lock_waits: u64,
    /// [`CoreCounters::lock_wait_ticks`].
    pub lock_wait_ticks: u64,
    /// [`CoreCounters::broadcasts`].
    pub broadcasts: u64,
}

impl CoreView {
    /// Interrupts foreign to the core: software-generated and device interrupts.
    pub fn foreign_irqs(&self) -> u64 {
        self.sgis.saturating_add(self.devices)
    }

    /// What happened between `earlier` and `self`, counter by counter (a counter that went
    /// backwards, which only a corrupt record does, counts 0); `pd_timer_at` is `self`'s.
    pub fn since(&self, earlier: &CoreView) -> CoreView {
        CoreView {
            entries: self.entries.saturating_sub(earlier.entries),
            timer_irqs: self.timer_irqs.saturating_sub(earlier.timer_irqs),
            // A time, not a count: the later one.
            pd_timer_at: self.pd_timer_at,
            sgis: self.sgis.saturating_sub(earlier.sgis),
            devices: self.devices.saturating_sub(earlier.devices),
            lock_waits: self.lock_waits.saturating_sub(earlier.lock_waits),
            lock_wait_ticks: self.lock_wait_ticks.saturating_sub(earlier.lock_wait_ticks),
            broadcasts: self.broadcasts.saturating_sub(earlier.broadcasts),
        }
    }
}

impl CoreCounters {
    /// Adds `n` to `counter`. Only the owning core's kernel counts, so a plain load and
    /// store (no atomic read-modify-write) count exactly.
    #[inline(always)]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Reads every counter.
    pub fn read(&self) -> CoreView {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CoreView {
            entries: get(&self.entries),
            timer_irqs: get(&self.timer_irqs),
            pd_timer_at: get(&self.pd_timer_at),
            sgis: get(&self.sgis),
            devices: get(&self.devices),
            lock_waits: get(&self.lock_waits),
            lock_wait_ticks: get(&self.lock_wait_ticks),
            broadcasts: get(&self.broadcasts),
        }
    }
}

/// A doorbell pending word on its own cache line.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct PendingWord {
    /// Pending bits.
    pub bits: AtomicU64,
    /// Padding to a cache line.
    pub pad: [u64; 7],
}

/// A receiver's doorbell inbox: one pending word per sending replica.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct DoorbellInbox {
    /// Indexed by sending replica.
    pub from: [PendingWord; MAX_REPLICAS],
}

/// The two atomic steps of the doorbell protocol, over any word that provides them: the
/// kernels use `AtomicU64`, the model checker in `verification/` uses loom's, so what is
/// checked is this code.
pub mod doorbell {
    use core::sync::atomic::{AtomicU64, Ordering};

    /// An atomic pending word.
    ///
    /// The sender's OR releases (publishing the payload written before it) and the
    /// receiver's take acquires (so the payload is visible). The protocol also relies on
    /// the interrupt controller keeping one pending state per interrupt that raising and
    /// acknowledging update atomically, as the GIC does: `verification/` checks the protocol
    /// over every interleaving under that model, and shows that wakeups are lost if a raise
    /// could be reordered like a plain store. The kernel puts a `dsb` before raising an SGI
    /// and a `dmb` after acknowledging one, so the word and the interrupt are seen in order.
    pub trait PendingWord {
        /// Atomically ORs `bits` in (release); returns the previous value.
        fn or_release(&self, bits: u64) -> u64;
        /// Atomically swaps in zero (acquire); returns the previous value.
        fn take_acquire(&self) -> u64;
    }

    impl PendingWord for AtomicU64 {
        fn or_release(&self, bits: u64) -> u64 {
            self.fetch_or(bits, Ordering::Release)
        }

        fn take_acquire(&self) -> u64 {
            self.swap(0, Ordering::Acquire)
        }
    }

    /// Sender: sets `bits`; returns whether the word was empty, that is, whether the sender
    /// must raise the doorbell interrupt. A sender that finds the word non-empty knows the
    /// receiver has not taken it yet, and will take these bits with it.
    pub fn ring(word: &impl PendingWord, bits: u64) -> bool {
        word.or_release(bits) == 0
    }

    /// Receiver, after acknowledging the doorbell interrupt: takes every pending bit.
    pub fn take(word: &impl PendingWord) -> u64 {
        word.take_acquire()
    }
}

impl DoorbellInbox {
    /// Sender side: sets `bits` from `sender`. Returns whether the word was empty, that is,
    /// whether the caller must send the doorbell SGI. `None` if `sender` is out of range.
    pub fn ring(&self, sender: usize, bits: u64) -> Option<bool> {
        Some(doorbell::ring(&self.from.get(sender)?.bits, bits))
    }

    /// Receiver side: takes and clears the bits pending from `sender`. It first only reads
    /// the word, and takes it only when bits are there: a wake-up that is for other words
    /// then costs a load, not an atomic swap. A bit that lands after that read finds the
    /// word empty, so its sender raises the doorbell interrupt again.
    pub fn take(&self, sender: usize) -> u64 {
        self.from
            .get(sender)
            .filter(|w| w.bits.load(Ordering::Relaxed) != 0)
            .map_or(0, |w| doorbell::take(&w.bits))
    }
}

/// One log line: word 0 holds the length, words 1.. the text.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct LogSlot {
    /// Length then text, as words so that a racing peer is never undefined behaviour.
    pub words: [AtomicU64; 1 + LOG_LINE_BYTES / 8],
}

const _: () = assert!(LOG_LINE_BYTES.is_multiple_of(8));
const _: () = assert!(size_of::<LogSlot>() == 256);

/// Producer-owned indices of a log ring, on their own cache line.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct LogProducer {
    /// Lines written (wrapping).
    pub head: AtomicU32,
    /// Lines dropped because the ring was full (the consumer swaps it to zero).
    pub dropped: AtomicU32,
    /// Padding.
    pub pad: [u32; 14],
}

/// Consumer-owned index of a log ring, on its own cache line.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C, align(64))]
pub struct LogConsumer {
    /// Lines read (wrapping).
    pub tail: AtomicU32,
    /// Padding.
    pub pad: [u32; 15],
}

/// A replica's log ring.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct LogRing {
    /// Written by the owning replica.
    pub producer: LogProducer,
    /// Written by the console owner.
    pub consumer: LogConsumer,
    /// The lines.
    pub slots: [LogSlot; LOG_RING_SLOTS],
}

/// What the consumer found in a log ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogPop {
    /// A line of this many bytes was copied out.
    Line(usize),
    /// Nothing to read.
    Empty,
    /// The indices are impossible (a corrupt or hostile producer); the consumer skipped to
    /// the producer's head, losing this many lines.
    Corrupt(u32),
}

impl LogRing {
    /// Producer side: appends one whole line (cut to [`LOG_LINE_BYTES`]). Returns `false`
    /// and counts a drop when the ring is full. Must only be called by the single producer.
    pub fn push(&self, line: &[u8]) -> bool {
        let head = self.producer.head.load(Ordering::Relaxed);
        let tail = self.consumer.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) as usize >= LOG_RING_SLOTS {
            self.producer.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Some(slot) = self.slots.get(head as usize % LOG_RING_SLOTS) else {
            return false;
        };
        let line = line.get(..LOG_LINE_BYTES).unwrap_or(line);
        let [length, text @ ..] = &slot.words;
        length.store(line.len() as u64, Ordering::Relaxed);
        for (chunk, word) in line.chunks(8).zip(text) {
            let mut bytes = [0u8; 8];
            for (b, c) in bytes.iter_mut().zip(chunk) {
                *b = *c;
            }
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        self.producer
            .head
            .store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side: copies the oldest line into `out`. Must only be called by the single
    /// consumer. Never trusts the producer's indices or lengths.
    pub fn pop(&self, out: &mut [u8; LOG_LINE_BYTES]) -> LogPop {
        let tail = self.consumer.tail.load(Ordering::Relaxed);
        let head = self.producer.head.load(Ordering::Acquire);
        let pending = head.wrapping_sub(tail);
        if pending == 0 {
            return LogPop::Empty;
        }
        if pending as usize > LOG_RING_SLOTS {
            self.consumer.tail.store(head, Ordering::Release);
            return LogPop::Corrupt(pending);
        }
        let Some(slot) = self.slots.get(tail as usize % LOG_RING_SLOTS) else {
            return LogPop::Empty;
        };
        let [length, text @ ..] = &slot.words;
        let len = usize::try_from(length.load(Ordering::Relaxed))
            .unwrap_or(LOG_LINE_BYTES)
            .min(LOG_LINE_BYTES);
        let line = out.get_mut(..len).unwrap_or_default();
        for (chunk, word) in line.chunks_mut(8).zip(text) {
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            for (c, b) in chunk.iter_mut().zip(bytes) {
                *c = b;
            }
        }
        self.consumer
            .tail
            .store(tail.wrapping_add(1), Ordering::Release);
        LogPop::Line(len)
    }

    /// Consumer side: takes the count of dropped lines.
    pub fn take_dropped(&self) -> u32 {
        self.producer.dropped.swap(0, Ordering::Relaxed)
    }
}

/// The whole shared area.
#[derive(FromBytes, IntoBytes, KnownLayout)]
#[repr(C)]
pub struct SharedArea {
    /// Header.
    pub header: SharedHeader,
    /// Status records, indexed by replica.
    pub status: [ReplicaStatus; MAX_REPLICAS],
    /// PD records, indexed by a PD's index in the system directory.
    pub pds: [PdRecord; PD_RECORDS],
    /// Traffic records of cross-replica channel words, indexed by word.
    pub words: [WordRecord; WORD_RECORDS],
    /// Zero: up to the next cache line.
    pub cores_pad: [u8; CORES_PAD_BYTES],
    /// Interference counters, indexed by core.
    pub cores: [CoreCounters; MAX_CORES],
    /// Zero: the rest of the status page, so that the doorbells start on a page of their
    /// own and the status page can be mapped alone.
    pub status_pad: [u8; STATUS_PAD_BYTES],
    /// Doorbell inboxes, indexed by receiving replica.
    pub doorbells: [DoorbellInbox; MAX_REPLICAS],
    /// Log rings, indexed by producing replica.
    pub logs: [LogRing; MAX_REPLICAS],
}

/// Bytes the shared area occupies, rounded to pages.
pub const SHARED_AREA_SIZE: u64 =
    (size_of::<SharedArea>() as u64).next_multiple_of(crate::limits::PAGE_SIZE);

const _: () = assert!(size_of::<SharedHeader>() == 64);
const _: () = assert!(size_of::<ReplicaStatus>() == 64);
const _: () = assert!(size_of::<PdRecord>() == 8);
const _: () = assert!(offset_of!(PdRecord, faults) == 4);
const _: () = assert!(size_of::<WordRecord>() == 32);
const _: () = assert!(offset_of!(WordRecord, sent) == 8);
const _: () = assert!(offset_of!(WordRecord, received) == 24);
const _: () = assert!(size_of::<PendingWord>() == 64);
const _: () = assert!(offset_of!(LogRing, consumer) == 64);
const _: () = assert!(offset_of!(LogRing, slots) == 128);
const _: () = assert!(offset_of!(SharedArea, status) == 64);
const _: () = assert!(
    size_of::<SharedHeader>()
        + MAX_REPLICAS * size_of::<ReplicaStatus>()
        + PD_RECORDS * size_of::<PdRecord>()
        + WORD_RECORDS * size_of::<WordRecord>()
        + CORES_PAD_BYTES
        + MAX_CORES * size_of::<CoreCounters>()
        <= STATUS_PAGE_BYTES as usize
);
const _: () = assert!(offset_of!(SharedArea, pds) == 64 + 64 * MAX_REPLICAS);
const _: () = assert!(offset_of!(SharedArea, words) == 64 + 64 * MAX_REPLICAS + 8 * PD_RECORDS);
const _: () = assert!(size_of::<CoreCounters>() == 64);
const _: () = assert!(offset_of!(CoreCounters, broadcasts) == 56);
const _: () = assert!(
    offset_of!(SharedArea, cores_pad)
        == 64 + 64 * MAX_REPLICAS + 8 * PD_RECORDS + 32 * WORD_RECORDS
);
const _: () = assert!(offset_of!(SharedArea, cores).is_multiple_of(64));
const _: () = assert!(CORES_PAD_BYTES < 64);
const _: () = assert!(matches!(
    offset_of!(SharedArea, cores).checked_add(64 * MAX_CORES),
    Some(end) if end == offset_of!(SharedArea, status_pad)
));
const _: () = assert!(offset_of!(SharedArea, doorbells) == STATUS_PAGE_BYTES as usize);
const _: () = assert!(STATUS_PAGE_BYTES == 4096);
const _: () = assert!(SHARED_AREA_SIZE <= crate::limits::LARGE_PAGE_SIZE);

/// The cross-replica channel words: after the shared area (page aligned), to the end of
/// the kernel shared region, one [`PendingWord`] each. The `microkit` tool gives each
/// (receiving PD, sending replica) pair one word, whose bits are the receiver's channel ids;
/// the sender's doorbell capability names the word, and the receiving replica's initialiser
/// has its kernel watch it for the PD's notification.
pub mod pd_words {
    use super::{PendingWord, SHARED_AREA_SIZE};

    /// Offset of word 0 from the start of the kernel shared region.
    pub const OFFSET: u64 = SHARED_AREA_SIZE;
    /// Bytes per word.
    pub const WORD_BYTES: u64 = size_of::<PendingWord>() as u64;

    /// How many words a kernel shared region of `region_size` bytes holds.
    pub const fn count(region_size: u64) -> u64 {
        region_size.saturating_sub(OFFSET) / WORD_BYTES
    }

    /// Offset of word `index` from the start of the region, if it lies inside a region of
    /// `region_size` bytes.
    pub const fn offset(index: u64, region_size: u64) -> Option<u64> {
        if index < count(region_size) {
            // Below the region's size, so no overflow.
            Some(OFFSET.wrapping_add(index.wrapping_mul(WORD_BYTES)))
        } else {
            None
        }
    }
}

impl SharedHeader {
    /// Whether this is the header of a shared area of this layout.
    pub fn is_current(&self) -> bool {
        self.magic == SHARED_MAGIC && self.version == SHARED_VERSION
    }
}

impl SharedArea {
    /// Whether the header is one this kernel understands.
    pub fn header_ok(&self) -> bool {
        self.header.is_current()
    }
}

/// The status page as a PD that maps it (read-only) sees it: the first
/// [`STATUS_PAGE_BYTES`] of the [`SharedArea`], its header, the status records and the PD
/// records.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct StatusPage {
    /// The shared area's header.
    pub header: SharedHeader,
    /// Status records, indexed by replica.
    pub status: [ReplicaStatus; MAX_REPLICAS],
    /// PD records, indexed by a PD's index in the system directory.
    pub pds: [PdRecord; PD_RECORDS],
    /// Traffic records of cross-replica channel words, indexed by word.
    pub words: [WordRecord; WORD_RECORDS],
    /// Zero: up to the next cache line.
    pub cores_pad: [u8; CORES_PAD_BYTES],
    /// Interference counters, indexed by core.
    pub cores: [CoreCounters; MAX_CORES],
}

impl StatusPage {
    /// Core `core`'s interference counters as read, if the page is of this layout and the
    /// index is in the table; `None` otherwise (an older page has no core table).
    pub fn core(&self, core: usize) -> Option<CoreView> {
        if !self.header.is_current() {
            return None;
        }
        self.cores.get(core).map(CoreCounters::read)
    }

    /// Broadcast maintenance executed by every core's kernel, summed: what reached every
    /// core of the chip (0 on a page of another layout).
    pub fn broadcasts(&self) -> u64 {
        if !self.header.is_current() {
            return 0;
        }
        self.cores.iter().fold(0u64, |sum, c| {
            sum.wrapping_add(c.broadcasts.load(Ordering::Relaxed))
        })
    }

    /// The records of the channel words ever rung between the page's replicas, if the page
    /// is of this layout; nothing otherwise (an older page has no word table).
    pub fn words(&self) -> impl Iterator<Item = WordView> + '_ {
        let current = self.header.is_current();
        let replicas = self.header.replica_count as usize;
        self.words
            .iter()
            .filter(move |_| current)
            .filter_map(move |w| w.read(replicas))
    }

    /// PD `index`'s record as read, if the page is of this layout ([`SharedHeader::is_current`])
    /// and the index is in the table; `None` otherwise (an older page has no PD table).
    pub fn pd(&self, index: usize) -> Option<PdView> {
        if !self.header.is_current() {
            return None;
        }
        self.pds.get(index).map(PdRecord::read)
    }
}

const _: () = assert!(offset_of!(StatusPage, status) == offset_of!(SharedArea, status));
const _: () = assert!(offset_of!(StatusPage, pds) == offset_of!(SharedArea, pds));
const _: () = assert!(offset_of!(StatusPage, words) == offset_of!(SharedArea, words));
const _: () = assert!(offset_of!(StatusPage, cores) == offset_of!(SharedArea, cores));
const _: () = assert!(size_of::<StatusPage>() as u64 <= STATUS_PAGE_BYTES);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use zerocopy::FromZeros;

    fn ring() -> Box<LogRing> {
        LogRing::new_box_zeroed().unwrap()
    }

    #[test]
    fn lines_come_out_whole_and_in_order() {
        let r = ring();
        let mut out = [0u8; LOG_LINE_BYTES];
        assert_eq!(r.pop(&mut out), LogPop::Empty);
        assert!(r.push(b"K1|INFO: hello"));
        assert!(r.push(b"K1|INFO: world, a longer line"));
        assert_eq!(r.pop(&mut out), LogPop::Line(14));
        assert_eq!(&out[..14], b"K1|INFO: hello");
        let LogPop::Line(n) = r.pop(&mut out) else {
            panic!("expected a line")
        };
        assert_eq!(&out[..n], b"K1|INFO: world, a longer line");
        assert_eq!(r.pop(&mut out), LogPop::Empty);
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let r = ring();
        for i in 0..LOG_RING_SLOTS {
            assert!(r.push(format_line(i).as_bytes()));
        }
        assert!(!r.push(b"one too many"));
        assert!(!r.push(b"two too many"));
        assert_eq!(r.take_dropped(), 2);
        assert_eq!(r.take_dropped(), 0);
        let mut out = [0u8; LOG_LINE_BYTES];
        for i in 0..LOG_RING_SLOTS {
            let LogPop::Line(n) = r.pop(&mut out) else {
                panic!("line {i} missing")
            };
            assert_eq!(&out[..n], format_line(i).as_bytes());
        }
    }

    #[test]
    fn long_lines_are_cut() {
        let r = ring();
        let long = [b'x'; 300];
        assert!(r.push(&long));
        let mut out = [0u8; LOG_LINE_BYTES];
        assert_eq!(r.pop(&mut out), LogPop::Line(LOG_LINE_BYTES));
    }

    #[test]
    fn corrupt_indices_are_reported_not_trusted() {
        let r = ring();
        r.producer.head.store(10_000, Ordering::Relaxed);
        let mut out = [0u8; LOG_LINE_BYTES];
        assert_eq!(r.pop(&mut out), LogPop::Corrupt(10_000));
        assert_eq!(r.pop(&mut out), LogPop::Empty);
        // A hostile length is clamped.
        r.slots[10_000 % LOG_RING_SLOTS].words[0].store(u64::MAX, Ordering::Relaxed);
        r.producer.head.store(10_001, Ordering::Relaxed);
        assert_eq!(r.pop(&mut out), LogPop::Line(LOG_LINE_BYTES));
    }

    #[test]
    fn doorbell_signals_only_on_empty_word() {
        let inbox = DoorbellInbox::new_box_zeroed().unwrap();
        assert_eq!(inbox.ring(1, bell::PING), Some(true));
        assert_eq!(inbox.ring(1, bell::LOG), Some(false));
        assert_eq!(inbox.ring(2, bell::LOG), Some(true));
        assert_eq!(inbox.ring(MAX_REPLICAS, bell::LOG), None);
        assert_eq!(inbox.take(1), bell::PING | bell::LOG);
        assert_eq!(inbox.take(1), 0);
        assert_eq!(inbox.ring(1, bell::STATUS), Some(true));
        assert_eq!(inbox.take(MAX_REPLICAS + 3), 0);
    }

    /// The layout `docs/boot.md` (section 5) and `docs/system-description.md` ("The
    /// status page") describe.
    #[test]
    fn layout_is_the_documented_one() {
        assert_eq!(offset_of!(SharedArea, header), 0);
        assert_eq!(offset_of!(SharedArea, status), 0x40);
        assert_eq!(offset_of!(SharedArea, pds), 0x240);
        assert_eq!(offset_of!(SharedArea, words), 0x438);
        assert_eq!(offset_of!(SharedArea, cores_pad), 0xC38);
        assert_eq!(offset_of!(SharedArea, cores), 0xC40);
        assert_eq!(offset_of!(SharedArea, status_pad), 0xE40);
        assert_eq!(PD_RECORDS, 63);
        assert_eq!(offset_of!(PdRecord, state), 0);
        assert_eq!(offset_of!(PdRecord, faults), 4);
        assert_eq!(offset_of!(SharedArea, doorbells), 0x1000);
        assert_eq!(offset_of!(SharedArea, logs), 0x2000);
        assert_eq!(size_of::<LogRing>(), 32_896);
        assert_eq!(size_of::<SharedArea>(), 0x4_2400);
        assert_eq!(SHARED_AREA_SIZE, 0x4_3000);
        assert_eq!(pd_words::OFFSET, SHARED_AREA_SIZE);
        let fields = [
            offset_of!(ReplicaStatus, state),
            offset_of!(ReplicaStatus, user_settled),
            offset_of!(ReplicaStatus, cores_online),
            offset_of!(ReplicaStatus, ticks),
            offset_of!(ReplicaStatus, fault_esr),
            offset_of!(ReplicaStatus, fault_far),
            offset_of!(ReplicaStatus, fault_elr),
            offset_of!(ReplicaStatus, fault_core),
            offset_of!(ReplicaStatus, epoch),
            offset_of!(ReplicaStatus, settled_at),
        ];
        assert_eq!(fields, [0, 4, 8, 0x10, 0x18, 0x20, 0x28, 0x30, 0x34, 0x38]);
        assert_eq!(offset_of!(SharedHeader, version), 8);
        assert_eq!(offset_of!(SharedHeader, replica_count), 12);
    }

    #[test]
    fn word_records_count_both_ends_and_refuse_foreign_replicas() {
        let mut page = StatusPage::new_box_zeroed().unwrap();
        page.header.magic = SHARED_MAGIC;
        page.header.version = SHARED_VERSION;
        page.header.replica_count = 3;
        assert_eq!(page.words().count(), 0, "no word rung yet");
        page.words[4].count_send(0, 2, true);
        page.words[4].count_send(0, 2, true);
        page.words[4].count_send(0, 2, false);
        page.words[4].count_take();
        assert_eq!(
            page.words().collect::<Vec<_>>(),
            [WordView {
                from: 0,
                to: 2,
                sent: 2,
                dropped: 1,
                received: 1
            }]
        );
        // A record naming a replica the system does not have is left out.
        page.words[9].count_send(0, 5, true);
        assert_eq!(page.words().count(), 1);
        page.header.version = SHARED_VERSION - 1;
        assert_eq!(page.words().count(), 0, "an older page has no word table");
    }

    #[test]
    fn pd_records_read_back_and_unknown_states_read_as_corrupt() {
        let mut page = StatusPage::new_box_zeroed().unwrap();
        // A zeroed page has no header yet: nothing is read from it.
        assert_eq!(page.pd(0), None);
        page.header.magic = SHARED_MAGIC;
        page.header.version = SHARED_VERSION;
        let unpublished = PdView {
            state: Some(PdState::Unpublished),
            faults: 0,
        };
        assert_eq!(page.pd(0), Some(unpublished));
        page.pds[5].publish(PdState::Faulted, 3);
        assert_eq!(
            page.pd(5),
            Some(PdView {
                state: Some(PdState::Faulted),
                faults: 3
            })
        );
        page.pds[6].state.store(99, Ordering::Relaxed);
        assert_eq!(page.pd(6).map(|v| v.state), Some(None));
        assert_eq!(page.pd(PD_RECORDS), None);
        assert_eq!(page.pd(usize::MAX), None);
        // A page of an older layout (no PD table) is not read as one.
        page.header.version = 2;
        assert_eq!(page.pd(5), None);
        for raw in 0..5 {
            let state = PdState::from_raw(raw).unwrap();
            assert_eq!(state as u32, raw);
            assert!(!state.name().is_empty());
        }
        assert_eq!(PdState::from_raw(5), None);
    }

    fn format_line(i: usize) -> std::string::String {
        std::format!("K0|INFO: line {i}")
    }

    proptest::proptest! {
        #[test]
        fn ring_is_fifo_without_loss_until_full(ops in proptest::collection::vec(proptest::option::of(0usize..200), 0..600)) {
            let r = ring();
            let mut model: std::collections::VecDeque<Vec<u8>> = Default::default();
            let mut dropped = 0u32;
            let mut out = [0u8; LOG_LINE_BYTES];
            for op in ops {
                match op {
                    Some(len) => {
                        let line: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                        if r.push(&line) {
                            model.push_back(line[..len.min(LOG_LINE_BYTES)].to_vec());
                        } else {
                            proptest::prop_assert_eq!(model.len(), LOG_RING_SLOTS);
                            dropped += 1;
                        }
                    }
                    None => match (r.pop(&mut out), model.pop_front()) {
                        (LogPop::Line(n), Some(want)) => proptest::prop_assert_eq!(&out[..n], &want[..]),
                        (LogPop::Empty, None) => {}
                        (got, want) => proptest::prop_assert!(false, "ring gave {:?}, model {:?}", got, want),
                    },
                }
            }
            proptest::prop_assert_eq!(r.take_dropped(), dropped);
        }
    }
}
