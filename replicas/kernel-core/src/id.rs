//! Typed indices into the kernel's fixed tables, and the tables they index.
//!
//! Every kernel object lives in a per-replica table of fixed size. An id is made only by
//! [`TableIndex::from_index`] (or its type's `new`), which refuses anything at or past its
//! table's length, so indexing a [`Table`] with an id cannot go out of bounds. The tables'
//! lengths are powers of two and [`Table`] masks the index with `length - 1`: for every id
//! that is the identity, the compiler needs no bounds check, and the kernel has no panic
//! path on any table access. Ids of different tables are different types, so an endpoint's
//! index can never name a notification.

use core::marker::PhantomData;

/// Threads per replica.
pub const MAX_THREADS: usize = 64;
/// Most cores a board may have.
pub const MAX_CORES: usize = atoll_abi::limits::MAX_CORES;
/// Endpoints per replica.
pub const MAX_ENDPOINTS: usize = 128;
/// Notifications per replica.
pub const MAX_NOTIFICATIONS: usize = 128;
/// Reply objects per replica.
pub const MAX_REPLIES: usize = 64;
/// Scheduling contexts per replica.
pub const MAX_SCHED_CONTEXTS: usize = 64;
/// Address spaces per replica (each is also an ASID).
pub const MAX_VSPACES: usize = 32;
/// Doorbells per replica.
pub const MAX_DOORBELLS: usize = 128;
/// Interrupt ids: the GIC's SGIs, PPIs and SPIs (the special ids 1020–1023 never reach a
/// handler).
pub const MAX_IRQS: usize = 1024;
/// Capability slots per replica, the TCBs' own slots ([`TCB_SLOTS`] each) among them.
pub const CAP_SLOTS: usize = 8192;
/// Capability slots each TCB owns: its capability-space root, address space, IPC buffer
/// and fault handler (see [`TcbSlot`]).
pub const TCB_SLOTS: usize = 4;
/// The first slot of the TCBs' own slots, at the top of the table; CNodes get the slots
/// below it.
pub const TCB_SLOTS_BASE: usize = CAP_SLOTS - MAX_THREADS * TCB_SLOTS;
/// Priorities, 0 (lowest) to 255 (highest).
pub const PRIORITIES: usize = 256;

/// An index into a table of `LIMIT` entries, below `LIMIT` by construction.
pub trait TableIndex: Copy {
    /// The length of the table it indexes (a power of two).
    const LIMIT: usize;
    /// The id of entry `index`, if the table has one.
    fn from_index(index: usize) -> Option<Self>;
    /// Its position in the table.
    fn index(self) -> usize;
}

/// Defines a typed id for a table of `$limit` entries (a power of two, at most 2^15).
///
/// An id holds its index with the bit `$limit` set: never zero, so `Option<Id>` is as
/// small as the id and `None` is the zero value, and masking with `$limit - 1` (which every
/// table access does anyway) gives the index back with no extra instruction.
macro_rules! table_id {
    ($(#[$doc:meta])* $name:ident, $limit:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(core::num::NonZeroU16);

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.index())
            }
        }

        #[allow(dead_code, reason = "not every table uses every conversion")]
        impl $name {
            /// The tag bit every id of this table carries: the table's length.
            const TAG: u16 = {
                assert!(($limit as usize).is_power_of_two() && $limit <= 1 << 15);
                $limit as u16
            };

            /// The id of index `index`, which the caller has checked is below `$limit`.
            #[inline]
            const fn tagged(index: u16) -> Self {
                match core::num::NonZeroU16::new(index | Self::TAG) {
                    Some(v) => Self(v),
                    // The tag bit is set: never zero.
                    None => Self(core::num::NonZeroU16::MAX),
                }
            }

            /// The id of entry `index`, if the table has one.
            #[inline]
            pub const fn new(index: usize) -> Option<Self> {
                if index < $limit {
                    // In range of u16: every limit is at most 2^15 (checked in `TAG`).
                    Some(Self::tagged(index as u16))
                } else {
                    None
                }
            }

            /// The id of `index` modulo `$limit`.
            #[inline]
            pub const fn wrapping(index: usize) -> Self {
                Self::tagged((index & ($limit - 1)) as u16)
            }

            /// Its position in the table.
            #[inline]
            pub const fn index(self) -> usize {
                (self.0.get() & (Self::TAG - 1)) as usize
            }

            /// The id named by an object capability's kernel data, if it is in range.
            #[inline]
            pub const fn from_data(data: u64) -> Option<Self> {
                if data < $limit as u64 {
                    Some(Self::tagged(data as u16))
                } else {
                    None
                }
            }

            /// Its value as an object capability's kernel data.
            #[inline]
            pub const fn data(self) -> u64 {
                self.index() as u64
            }

            /// Every id of the table, in order.
            pub fn all() -> impl DoubleEndedIterator<Item = Self> + Clone {
                (0..$limit).map(|i: usize| Self::tagged(i as u16))
            }
        }

        impl TableIndex for $name {
            const LIMIT: usize = $name::TAG as usize;
            #[inline]
            fn from_index(index: usize) -> Option<Self> {
                Self::new(index)
            }
            #[inline]
            fn index(self) -> usize {
                $name::index(self)
            }
        }
    };
}

#[cfg(test)]
pub(crate) use table_id;

table_id!(
    /// A thread (TCB).
    ThreadId,
    MAX_THREADS
);
table_id!(
    /// A core of the board, by its index (the `cpu` of a PD, the cores of a replica).
    CoreId,
    MAX_CORES
);
impl CoreId {
    /// Core 0.
    pub const MIN: CoreId = CoreId::tagged(0);

    /// Its bit in a mask of cores.
    pub const fn bit(self) -> u32 {
        1u32 << (self.index() & 31)
    }

    /// The lowest core of a mask of cores, if any.
    pub fn first_of(mask: u32) -> Option<CoreId> {
        Self::new(mask.trailing_zeros() as usize)
    }
}

table_id!(
    /// An endpoint.
    EndpointId,
    MAX_ENDPOINTS
);
table_id!(
    /// A notification.
    NotificationId,
    MAX_NOTIFICATIONS
);
table_id!(
    /// A reply object.
    ReplyId,
    MAX_REPLIES
);
table_id!(
    /// A scheduling context.
    SchedContextId,
    MAX_SCHED_CONTEXTS
);
table_id!(
    /// An address space; its ASID is its index plus one.
    VSpaceId,
    MAX_VSPACES
);
table_id!(
    /// A doorbell.
    DoorbellId,
    MAX_DOORBELLS
);
table_id!(
    /// An interrupt id.
    IrqId,
    MAX_IRQS
);
table_id!(
    /// A slot of the capability table.
    SlotId,
    CAP_SLOTS
);

/// The slots each TCB owns, in order from its first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcbSlot {
    /// A copy of its capability-space root (a CNode).
    CSpace = 0,
    /// A copy of its address space (a VSpace).
    VSpace = 1,
    /// A copy of its IPC buffer's frame.
    IpcBuffer = 2,
    /// A copy of its fault handler (an endpoint).
    FaultHandler = 3,
}

const _: () = assert!(TCB_SLOTS == 4 && TCB_SLOTS_BASE + MAX_THREADS * TCB_SLOTS <= CAP_SLOTS);

impl ThreadId {
    /// Its slot `which` in the capability table.
    #[inline]
    pub const fn own_slot(self, which: TcbSlot) -> SlotId {
        // At most TCB_SLOTS_BASE + MAX_THREADS * TCB_SLOTS - 1, below CAP_SLOTS (above).
        SlotId::tagged(
            (TCB_SLOTS_BASE as u16)
                .wrapping_add((self.index() as u16).wrapping_mul(TCB_SLOTS as u16))
                .wrapping_add(which as u16),
        )
    }
}

impl SlotId {
    /// The thread owning this slot and which of its slots it is, if it is a TCB's.
    pub fn tcb_slot(self) -> Option<(ThreadId, TcbSlot)> {
        let offset = self.index().checked_sub(TCB_SLOTS_BASE)?;
        let thread = ThreadId::new(offset / TCB_SLOTS)?;
        let which = match offset % TCB_SLOTS {
            0 => TcbSlot::CSpace,
            1 => TcbSlot::VSpace,
            2 => TcbSlot::IpcBuffer,
            _ => TcbSlot::FaultHandler,
        };
        Some((thread, which))
    }
}

impl VSpaceId {
    /// The ASID its translations are tagged with (0 is the kernel's).
    #[inline]
    pub const fn asid(self) -> u16 {
        (self.index() as u16).wrapping_add(1)
    }
}

impl IrqId {
    /// The interrupt's GIC id.
    #[inline]
    pub const fn intid(self) -> u32 {
        self.index() as u32
    }
}

/// A priority indexes the per-priority ready queues.
impl TableIndex for u8 {
    const LIMIT: usize = PRIORITIES;
    #[inline]
    fn from_index(index: usize) -> Option<Self> {
        u8::try_from(index).ok()
    }
    #[inline]
    fn index(self) -> usize {
        usize::from(self)
    }
}

/// A fixed table of `N` entries indexed by ids of type `I` (`N` is `I::LIMIT`).
#[derive(Clone, Copy)]
pub struct Table<I, T, const N: usize> {
    items: [T; N],
    id: PhantomData<I>,
}

impl<I: TableIndex, T: Copy, const N: usize> Table<I, T, N> {
    /// Every entry `value`.
    pub const fn filled(value: T) -> Self {
        const {
            assert!(N == I::LIMIT && N.is_power_of_two());
        }
        Self {
            items: [value; N],
            id: PhantomData,
        }
    }
}

impl<I: TableIndex, T, const N: usize> Table<I, T, N> {
    /// The entries with their ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Some((I::from_index(i)?, item)))
    }

    /// The entries with their ids, in order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (I, &mut T)> {
        self.items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, item)| Some((I::from_index(i)?, item)))
    }

    /// The entries, in order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// The entries, in order, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.iter_mut()
    }

    /// The first id whose entry satisfies `want`.
    pub fn find(&self, want: impl FnMut(&T) -> bool) -> Option<I> {
        I::from_index(self.items.iter().position(want)?)
    }
}

impl<I: TableIndex, T, const N: usize> core::ops::Index<I> for Table<I, T, N> {
    type Output = T;
    #[inline]
    fn index(&self, id: I) -> &T {
        // `N` is a power of two and an id is below it (see the module's doc), so the mask
        // keeps the index as it is and no access can fail.
        #[expect(clippy::indexing_slicing, reason = "masked to the table's length")]
        &self.items[id.index() & N.wrapping_sub(1)]
    }
}

impl<I: TableIndex, T, const N: usize> core::ops::IndexMut<I> for Table<I, T, N> {
    #[inline]
    fn index_mut(&mut self, id: I) -> &mut T {
        #[expect(clippy::indexing_slicing, reason = "masked to the table's length")]
        &mut self.items[id.index() & N.wrapping_sub(1)]
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn ids_exist_only_below_their_limit() {
        assert_eq!(
            ThreadId::new(MAX_THREADS - 1).map(ThreadId::index),
            Some(63)
        );
        assert_eq!(ThreadId::new(MAX_THREADS), None);
        assert_eq!(SlotId::from_data(u64::MAX), None);
        assert_eq!(
            SlotId::from_data(CAP_SLOTS as u64 - 1).map(SlotId::data),
            Some(8191)
        );
        assert_eq!(ThreadId::all().count(), MAX_THREADS);
        assert_eq!(VSpaceId::new(0).map(VSpaceId::asid), Some(1));
        const { assert!(TCB_SLOTS_BASE + MAX_THREADS * TCB_SLOTS == CAP_SLOTS) };
    }

    #[test]
    fn every_thread_owns_its_slots_and_only_those() {
        let mut seen = std::collections::BTreeSet::new();
        for t in ThreadId::all() {
            for which in [
                TcbSlot::CSpace,
                TcbSlot::VSpace,
                TcbSlot::IpcBuffer,
                TcbSlot::FaultHandler,
            ] {
                let slot = t.own_slot(which);
                assert_eq!(slot.tcb_slot(), Some((t, which)));
                assert!(seen.insert(slot));
            }
        }
        assert_eq!(SlotId::new(TCB_SLOTS_BASE - 1).unwrap().tcb_slot(), None);
    }

    #[test]
    fn tables_index_by_id() {
        let mut t: Table<EndpointId, u32, MAX_ENDPOINTS> = Table::filled(0);
        let id = EndpointId::new(5).unwrap();
        t[id] = 7;
        assert_eq!(t[id], 7);
        assert_eq!(t.find(|&v| v == 7), Some(id));
        assert_eq!(
            t.iter().filter(|(_, v)| **v == 0).count(),
            MAX_ENDPOINTS - 1
        );
        let mut by_priority: Table<u8, u8, PRIORITIES> = Table::filled(0);
        by_priority[255] = 1;
        assert_eq!(by_priority.values().sum::<u8>(), 1);
    }
}
