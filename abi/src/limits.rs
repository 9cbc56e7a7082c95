//! Named limits shared by the tool, the loader and the kernels.

/// Most replicas one image may describe.
pub const MAX_REPLICAS: usize = 8;
/// Most cores a board may have (core indices are 0..MAX_CORES).
pub const MAX_CORES: usize = 8;
/// Most address-space mappings one replica's kernel spec may carry.
pub const MAX_KERNEL_MAPPINGS: usize = 16;
/// Most parts one image may carry.
pub const MAX_PARTS: usize = 64;
/// Text bytes in one kernel log line (longer lines are cut and marked).
pub const LOG_LINE_BYTES: usize = 248;
/// Lines each replica's log ring holds before new lines are dropped (and counted).
pub const LOG_RING_SLOTS: usize = 128;
/// Smallest page size.
pub const PAGE_SIZE: u64 = 0x1000;
/// Large page (level-2 block) size.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Most device interrupts one replica may own.
pub const MAX_IRQ_ROUTES: usize = 64;

/// The interrupt of each core's EL1 physical timer (a PPI). The kernels keep the virtual
/// timer for themselves; a PD alone in its replica may own this one, and then programs the
/// timer from EL0 (`CNTP_CTL_EL0`, `CNTP_CVAL_EL0`).
pub const PD_TIMER_INTID: u32 = 30;
