//! What a PD may rely on, shared by every PD, the `microkit` tool and the replica
//! initialiser: the PD capability-space layout and badges (those of Microkit 2.3's tool) and
//! the user address space.

/// Channel ids per PD (0..62): the badge has 62 bits for them.
pub const MAX_CHANNELS: u32 = 62;
/// Bytes of a PD's patched name, including the terminating NUL.
pub const PD_NAME_LENGTH: usize = 64;
/// Badge bit marking a protected procedure call.
pub const PPC_BADGE: u64 = 1 << 63;
/// Badge bit marking a fault message.
pub const FAULT_BADGE: u64 = 1 << 62;

/// Slots in a PD's Microkit CNode (root slot 0 points at it).
pub mod slot {
    /// Input object: the PD's endpoint if it has children or receives PPCs, else its
    /// notification.
    pub const INPUT: u32 = 1;
    /// Fault endpoint (the parent's, or the monitor's).
    pub const FAULT_ENDPOINT: u32 = 2;
    /// The PD's own VSpace.
    pub const VSPACE: u32 = 3;
    /// The PD's reply object.
    pub const REPLY: u32 = 4;
    /// The monitor's endpoint (passive PDs only).
    pub const MONITOR_ENDPOINT: u32 = 5;
    /// The PD's own TCB (benchmark configuration only).
    pub const TCB: u32 = 6;
    /// The firmware-call capability of a PD with `smc="true"` (Microkit's `ARM_SMC_CAP`).
    pub const ARM_SMC: u32 = 7;
    /// First output notification capability: `+ channel id`.
    pub const OUTPUT_NOTIFICATION: u32 = 10;
    /// First output endpoint (PPC) capability: `+ channel id`.
    pub const OUTPUT_ENDPOINT: u32 = 74;
    /// First IRQ handler capability: `+ channel id`.
    pub const IRQ_HANDLER: u32 = 138;
    /// First child TCB capability: `+ child id`.
    pub const CHILD_TCB: u32 = 202;
    /// Slots in the Microkit CNode (radix 9).
    pub const CNODE_SLOTS: u32 = 512;
    /// Slots in the PD's root CNode (radix 6); slot 0 holds the Microkit CNode.
    pub const ROOT_CNODE_SLOTS: u32 = 64;
}

/// The user address space (TTBR0, 4 KiB granule, 40 bits: a four-level walk). It is the range
/// seL4 gives user space on the AArch64 boards Atoll runs on (40-bit physical addresses,
/// built with hypervisor support: `vspace_user_top` is `0xff_ffff_ffff`), with the IPC buffer
/// and stack where Microkit puts them, so every mapping Microkit accepts fits.
pub mod vspace {
    /// One past the highest user address (1 TiB).
    pub const USER_TOP: u64 = 1 << crate::spec::layout::USER_VA_BITS;
    /// The IPC buffer: the top user page, `0xff_ffff_f000`.
    pub const IPC_BUFFER: u64 = USER_TOP - 0x1000;
    /// Top of the stack, `0xff_ffff_e000`: below the IPC buffer and a 4 KiB guard page. The
    /// stack grows down from here; mappings must end at or below its bottom.
    pub const STACK_TOP: u64 = IPC_BUFFER - 0x1000;
    /// Where PD programs are linked.
    pub const PROGRAM_BASE: u64 = 0x20_0000;
}

// Microkit's addresses on these boards.
const _: () = assert!(vspace::IPC_BUFFER == 0xFF_FFFF_F000 && vspace::STACK_TOP == 0xFF_FFFF_E000);
