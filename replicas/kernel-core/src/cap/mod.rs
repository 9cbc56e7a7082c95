//! Capabilities, their slots and their derivation tree, in the style of seL4.
//!
//! A replica's capabilities live in one table of slots. A CNode object owns a run of
//! `2^radix` slots in it, handed out when the CNode is retyped; a TCB owns
//! [`TCB_SLOTS`](crate::id::TCB_SLOTS) slots at the top of the table, where the kernel keeps copies of the
//! capabilities the thread runs with (its spaces, IPC buffer and fault handler), as seL4's
//! TCB CNode does. Every capability records where it came from in the **derivation tree**:
//! retype makes object capabilities children of the untyped capability, and copy, mint and
//! mutate make the new capability a child of its source. Revoking a capability deletes
//! every descendant; deleting one keeps its descendants, which move up to its parent;
//! deleting the last capability to an object destroys the object (the slots it owns are
//! deleted with it).
//!
//! Nothing here allocates or recurses: trees are linked through slot ids, and cascades
//! (revoke, destruction of an object that owns slots) use bounded work lists. Every
//! operation checks its arguments and returns an `Error`; none panics on any input.

use atoll_abi::error::Error;
use atoll_abi::object::{CNODE_SLOT_BITS, ObjectKind};

mod table;
#[cfg(test)]
mod tests;

pub use table::{CapTable, Leaf};

/// Access rights of a capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// Receive / read.
    pub const READ: Self = Self(1);
    /// Send / write.
    pub const WRITE: Self = Self(2);
    /// Pass capabilities along with a message.
    pub const GRANT: Self = Self(4);
    /// Let the receiver reply.
    pub const GRANT_REPLY: Self = Self(8);
    /// Every right.
    pub const ALL: Self = Self(15);
    /// No right.
    pub const NONE: Self = Self(0);

    /// From raw bits (unknown bits dropped).
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 15)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every right in `other` is here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any right in `other` is here.
    pub const fn any_of(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The rights in either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The rights in both.
    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// The kernel data of an object capability whose object has no table entry yet (between
/// retype and the kernel's initialisation of the object).
pub const NO_DATA: u64 = u64::MAX;

/// A capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cap {
    /// An empty slot.
    #[default]
    Null,
    /// Untyped memory: `2^size_bits` bytes at `base`; `watermark` bytes already retyped.
    Untyped {
        /// Physical base.
        base: u64,
        /// log2 of its size.
        size_bits: u8,
        /// Bytes from `base` already handed out.
        watermark: u64,
        /// Device memory, or memory the loader filled: only frames (and smaller untyped
        /// blocks) are made from it, and the kernel never zeroes it (seL4's device untyped).
        device: bool,
        /// Frames made from it carry read rights alone (the kernels' status page).
        read_only: bool,
    },
    /// A CNode of `2^radix` slots starting at table slot `first`.
    CNode {
        /// Physical base of the object.
        base: u64,
        /// log2 of its slot count.
        radix: u8,
        /// First table slot it owns.
        first: u32,
        /// Guard value.
        guard: u64,
        /// Guard width in bits.
        guard_bits: u8,
    },
    /// Any other kernel object.
    Object {
        /// What it is.
        kind: ObjectKind,
        /// Physical base of the object.
        base: u64,
        /// log2 of its size.
        size_bits: u8,
        /// Rights.
        rights: Rights,
        /// Badge (endpoints, notifications, doorbells; an SMC capability's function id).
        badge: u64,
        /// Kernel data: the object's table index for threads, endpoints, notifications,
        /// replies, scheduling contexts, address spaces and doorbells ([`NO_DATA`] until
        /// the kernel gives it one); for a frame or page table, where this capability maps
        /// it (see the kernel), 0 when unmapped. A copy of a frame capability starts
        /// unmapped; a copy of a page-table capability names the same mapping.
        data: u64,
    },
}

impl Cap {
    /// The object this capability names (base, kind), if any; untyped memory is not an
    /// object.
    pub fn object(&self) -> Option<(u64, ObjectKind)> {
        match *self {
            Cap::CNode { base, .. } => Some((base, ObjectKind::CNode)),
            Cap::Object { kind, base, .. } => Some((base, kind)),
            Cap::Null | Cap::Untyped { .. } => None,
        }
    }

    /// Whether the slot is empty.
    pub fn is_null(&self) -> bool {
        matches!(self, Cap::Null)
    }

    /// Physical range the capability covers (untyped or object); `None` for the
    /// authorities that are not memory.
    pub fn range(&self) -> Option<(u64, u64)> {
        match *self {
            Cap::Object { kind, .. } if kind.is_authority() => None,
            Cap::Untyped {
                base, size_bits, ..
            }
            | Cap::Object {
                base, size_bits, ..
            } => Some((base, 1u64.checked_shl(u32::from(size_bits))?)),
            Cap::CNode { base, radix, .. } => Some((
                base,
                1u64.checked_shl(u32::from(radix).saturating_add(CNODE_SLOT_BITS))?,
            )),
            Cap::Null => None,
        }
    }
}

/// Why a capability lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFault {
    /// The root is not a CNode.
    InvalidRoot,
    /// A guard did not match.
    GuardMismatch {
        /// Bits left to resolve when it failed.
        bits_left: u8,
    },
    /// The address ran out of bits in the middle of a level.
    DepthMismatch {
        /// Bits left to resolve when it failed.
        bits_left: u8,
    },
}

/// What to retype untyped memory into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetypeKind {
    /// Smaller untyped blocks.
    Untyped {
        /// log2 of each block's size.
        size_bits: u8,
    },
    /// CNodes of `2^radix` slots.
    CNode {
        /// log2 of the slot count.
        radix: u8,
    },
    /// A fixed-size object (not a CNode or frame).
    Object(ObjectKind),
    /// Frames of `2^size_bits` bytes (12 or 21).
    Frame {
        /// Always `ObjectKind::Frame`.
        kind: ObjectKind,
        /// log2 of the frame size.
        size_bits: u8,
    },
}

impl RetypeKind {
    /// log2 of one object's size, or why the request is invalid.
    pub fn size_bits(self) -> Result<u8, Error> {
        match self {
            RetypeKind::Untyped { size_bits } if (4..=47).contains(&size_bits) => Ok(size_bits),
            RetypeKind::CNode { radix } if (1..=12).contains(&radix) => {
                Ok(radix.saturating_add(CNODE_SLOT_BITS as u8))
            }
            RetypeKind::Frame {
                kind: ObjectKind::Frame,
                size_bits: bits @ (12 | 21),
            } => Ok(bits),
            RetypeKind::Object(kind) => kind
                .fixed_size_bits()
                .map(|b| b as u8)
                .ok_or(Error::InvalidArgument),
            _ => Err(Error::InvalidArgument),
        }
    }
}
