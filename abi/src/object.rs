//! Atoll's kernel object kinds, as retype names them, and their sizes.

/// Atoll kernel object kinds and their sizes (log2 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// Thread control block.
    Tcb,
    /// Scheduling context.
    SchedContext,
    /// Capability node; its size depends on its radix.
    CNode,
    /// Synchronous IPC endpoint.
    Endpoint,
    /// Notification word.
    Notification,
    /// Reply object.
    Reply,
    /// Top-level translation table of a user address space.
    VSpace,
    /// Intermediate or last-level translation table.
    PageTable,
    /// A 4 KiB or 2 MiB frame.
    Frame,
    /// Send-only signal to a notification in another replica.
    Doorbell,
    /// The authority to create IRQ handlers (one per replica, handed to the initialiser).
    IrqControl,
    /// The authority over one interrupt (its `base` is the interrupt id).
    IrqHandler,
    /// The authority to give scheduling contexts budgets (one per replica).
    SchedControl,
    /// The authority to call the firmware (seL4's `ARM_SMC` capability): one per
    /// replica, handed to the initialiser; a badge limits it to one function id.
    Smc,
    /// The authority over the replica's domain scheduler (seL4's `DomainSet`): one per
    /// replica, handed to the initialiser.
    DomainSet,
}

impl ObjectKind {
    /// Fixed size of the object (log2 bytes); `None` for CNodes and frames, whose size
    /// depends on their radix or page size, and for the authorities that are not memory
    /// (IRQ control and handlers, scheduling control, firmware calls), which are never
    /// retyped.
    pub const fn fixed_size_bits(self) -> Option<u32> {
        match self {
            Self::Tcb => Some(11),
            Self::SchedContext => Some(8),
            Self::Endpoint | Self::Doorbell => Some(4),
            Self::Notification => Some(6),
            Self::Reply => Some(5),
            Self::VSpace | Self::PageTable => Some(12),
            Self::CNode | Self::Frame => None,
            Self::IrqControl
            | Self::IrqHandler
            | Self::SchedControl
            | Self::Smc
            | Self::DomainSet => None,
        }
    }

    /// Whether it is an authority that is not memory (IRQ control and handlers,
    /// scheduling control, firmware calls): never retyped, covering no physical range.
    pub const fn is_authority(self) -> bool {
        matches!(
            self,
            Self::IrqControl | Self::IrqHandler | Self::SchedControl | Self::Smc | Self::DomainSet
        )
    }

    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcb => "tcb",
            Self::SchedContext => "sched_context",
            Self::CNode => "cnode",
            Self::Endpoint => "endpoint",
            Self::Notification => "notification",
            Self::Reply => "reply",
            Self::VSpace => "vspace",
            Self::PageTable => "page_table",
            Self::Frame => "frame",
            Self::Doorbell => "doorbell",
            Self::IrqControl => "irq_control",
            Self::IrqHandler => "irq_handler",
            Self::SchedControl => "sched_control",
            Self::Smc => "smc",
            Self::DomainSet => "domain_set",
        }
    }
}

/// Bytes per CNode slot (log2).
pub const CNODE_SLOT_BITS: u32 = 5;
