//! Limits of the system description format, named once.
//!
//! Microkit's own limits come from its kernel ABI: badges carry a 62-bit notification mask,
//! and the monitor runs at priority 255. Those the kernel and PDs share live in
//! `atoll_abi::pd` and are re-exported here.

pub use atoll_abi::limits::{LARGE_PAGE_SIZE, MAX_CORES, MAX_REPLICAS, PAGE_SIZE};

/// Channel, IRQ and child ids are `0..CHANNEL_ID_COUNT` (62: badge bits 62 and 63 mark
/// PPC and fault).
pub const CHANNEL_ID_COUNT: u64 = atoll_abi::pd::MAX_CHANNELS as u64;
/// Highest PD priority (the monitor runs above, at 255).
pub const MAX_PRIORITY: u64 = 254;
/// Most protection domains in one system, children included.
pub const MAX_PDS: usize = 63;
/// Default scheduling budget and period, in microseconds.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Default PD stack size.
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// Smallest PD stack.
pub const MIN_STACK_SIZE: u64 = 0x1000;
/// Largest PD stack (16 MiB).
pub const MAX_STACK_SIZE: u64 = 0x100_0000;
/// First address above a PD's user address space (40 bits, as Microkit on AArch64).
pub const USER_VSPACE_TOP: u64 = atoll_abi::pd::vspace::USER_TOP;
/// Pages at the top of a PD's address space above its stack: the IPC buffer and a guard page.
pub const PAGES_ABOVE_STACK: u64 = 2;
/// `<cspace>` slots are `1..CAP_SLOT_COUNT`, the PD's root CNode (slot 0 holds the Microkit
/// CNode). Microkit's tool accepts slots up to 127, but its root CNode, like Atoll's, has 64.
pub const CAP_SLOT_COUNT: u64 = atoll_abi::pd::slot::ROOT_CNODE_SLOTS as u64;
/// GIC interrupt ids below this are SGIs (the kernels' doorbells) and per-core PPIs (timers);
/// a PD's device interrupt is a shared peripheral interrupt, which the loader routes to one
/// core.
pub const FIRST_DEVICE_IRQ: u64 = 32;
/// GIC interrupt ids from this on are special or reserved.
pub const IRQ_LIMIT: u64 = 1020;
/// Highest core index a core list may mention (before the board is consulted).
pub const MAX_CORE_INDEX: usize = 64;
/// The timer tick rate every replica's boot spec gets (`ReplicaSpec::tick_hz`).
pub const TICK_HZ: u32 = atoll_abi::spec::DEFAULT_TICK_HZ;
/// `<replica hung_after_ms>` may be at most this many milliseconds (one minute).
pub const MAX_HUNG_AFTER_MS: u64 = 60_000;
/// `<replica hung_after_ms>` must cover at least this many ticks of [`TICK_HZ`]: a
/// replica's tick count moves only once a tick, and its peers look at it on their own
/// ticks, so a shorter time could report a healthy replica hung.
pub const MIN_HUNG_TICKS: u64 = 3;
/// Cross-replica channel words a restart can clear: it clears a replica's words by the
/// 64-bit masks of its boot spec (`ReplicaSpec::words_in`, `words_out`), so a restartable
/// replica's words must all be below this.
pub const RESTART_WORDS: u64 = atoll_abi::shared::WORD_RECORDS as u64;
/// Largest number of XML nodes read (bounds memory on hostile input).
pub const MAX_XML_NODES: u32 = 1_000_000;

// The stack's top as the tool computes it is where the PD runtime puts it.
const _: () =
    assert!(USER_VSPACE_TOP - PAGES_ABOVE_STACK * PAGE_SIZE == atoll_abi::pd::vspace::STACK_TOP);

// The system directory (`<setvar directory="system">`) lists every PD of a system.
const _: () = assert!(MAX_PDS <= atoll_abi::directory::MAX_DIRECTORY_PDS);

// A restart mask has a bit per replica, and word masks a bit per word.
const _: () = assert!(MAX_REPLICAS <= u32::BITS as usize && RESTART_WORDS <= u64::BITS as u64);
