//! The system directory: the replicas of the system and the PDs of each, by name, as the
//! description gives them.
//!
//! Only `system.xml` names the replicas, their cores and their PDs; the kernels' status
//! page ([`crate::shared`]) carries numbers alone. A PD that reports on the whole system
//! (the I/O PD's `GET /status`) asks the `microkit` tool for the names with
//! `<setvar symbol="atoll_directory" directory="system"/>` (an Atoll extension), declares
//! the symbol as a [`Directory`] with the default [`Directory::EMPTY`], and the tool
//! patches the encoded directory into it as it patches any setvar.
//!
//! Layout, little-endian, every field naturally aligned (offsets are checked at compile
//! time): a header of four `u32` (`magic`, `version`, `replica_count`, `pd_count`), then
//! [`MAX_REPLICAS`] [`ReplicaEntry`] records, then [`MAX_DIRECTORY_PDS`] [`PdEntry`]
//! records; records past the counts are zero. The PDs are grouped by replica, replicas in
//! index order (the order of `ReplicaPlan`s and status records), each replica's PDs in
//! document order, children included: replica `r`'s PDs are
//! `pds[first_pd .. first_pd + pd_count]`.
//!
//! The symbol lives in the PD's own memory, written once by the tool, yet readers check it
//! before trusting a count ([`Directory::check`]), and the accessors never index past the
//! arrays whatever the bytes say.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::limits::MAX_REPLICAS;

/// Magic at the start of a directory: the bytes `ATDR`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"ATDR");
/// Current version.
pub const VERSION: u32 = 1;
/// Most PDs a directory lists: the tool's limit of PDs in one system, children included
/// (`microkit` refuses more, `sdf::E025`).
pub const MAX_DIRECTORY_PDS: usize = 63;
/// Bytes of a replica's name field. A name is at most one byte shorter, so that a NUL
/// always follows it; the tool refuses a longer one.
pub const REPLICA_NAME_BYTES: usize = 32;
/// Bytes of a PD's name field (as the boot program's and `microkit_name`,
/// [`crate::pd::PD_NAME_LENGTH`]). A name is at most one byte shorter, so that a NUL always
/// follows it; the tool refuses a longer one.
pub const PD_NAME_BYTES: usize = crate::pd::PD_NAME_LENGTH;

/// What a reader shows for a name that is not UTF-8.
pub const INVALID_NAME: &str = "<invalid name>";

/// [`PdEntry::flags`].
pub mod pd_flags {
    /// A passive PD (`passive="true"`).
    pub const PASSIVE: u32 = 1 << 0;
    /// Restarted by its monitor when it faults (`restart="true"`).
    pub const RESTART: u32 = 1 << 1;
    /// A child PD: its faults go to its parent, not to the monitor.
    pub const CHILD: u32 = 1 << 2;
}

/// One replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ReplicaEntry {
    /// Name, UTF-8, NUL padded (at most [`REPLICA_NAME_BYTES`] - 1 bytes).
    pub name: [u8; REPLICA_NAME_BYTES],
    /// The replica's cores: bit `i` is core index `i` of the board, as the description
    /// numbers them.
    pub cores: u64,
    /// Index of its first PD in [`Directory::pds`].
    pub first_pd: u32,
    /// How many PDs it runs.
    pub pd_count: u32,
}

/// One protection domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PdEntry {
    /// Name, UTF-8, NUL padded (at most [`PD_NAME_BYTES`] - 1 bytes).
    pub name: [u8; PD_NAME_BYTES],
    /// Index of the replica it runs in.
    pub replica: u32,
    /// The core its thread runs on (its `cpu`; a board core index of the replica).
    pub core: u32,
    /// Its priority, 0 to 254.
    pub priority: u32,
    /// [`pd_flags`].
    pub flags: u32,
}

/// The directory of a system, as the tool patches it into a PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Directory {
    /// [`MAGIC`]; zero in [`Directory::EMPTY`], the default of a symbol not patched.
    pub magic: u32,
    /// [`VERSION`].
    pub version: u32,
    /// Replicas listed: the first `replica_count` of [`Self::replicas`].
    pub replica_count: u32,
    /// PDs listed: the first `pd_count` of [`Self::pds`].
    pub pd_count: u32,
    /// The replicas in index order; zero past `replica_count`.
    pub replicas: [ReplicaEntry; MAX_REPLICAS],
    /// The PDs, grouped by replica; zero past `pd_count`.
    pub pds: [PdEntry; MAX_DIRECTORY_PDS],
}

const _: () = {
    assert!(size_of::<ReplicaEntry>() == 48);
    assert!(offset_of!(ReplicaEntry, cores) == 32);
    assert!(offset_of!(ReplicaEntry, first_pd) == 40);
    assert!(offset_of!(ReplicaEntry, pd_count) == 44);
    assert!(size_of::<PdEntry>() == 80);
    assert!(offset_of!(PdEntry, replica) == 64);
    assert!(offset_of!(PdEntry, core) == 68);
    assert!(offset_of!(PdEntry, priority) == 72);
    assert!(offset_of!(PdEntry, flags) == 76);
    assert!(offset_of!(Directory, version) == 4);
    assert!(offset_of!(Directory, replica_count) == 8);
    assert!(offset_of!(Directory, pd_count) == 12);
    assert!(offset_of!(Directory, replicas) == 16);
    assert!(offset_of!(Directory, pds) == 400);
    assert!(size_of::<Directory>() == 5440);
    // The bytes the tool writes are the ones a reader checks.
    assert!(MAGIC.to_le_bytes()[0] == b'A' && MAGIC.to_le_bytes()[3] == b'R');
};

/// Why a directory was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryError {
    /// Fewer bytes than a directory.
    Truncated,
    /// Wrong magic: most likely the symbol's default, never patched.
    BadMagic,
    /// A version this reader does not know.
    UnsupportedVersion(u32),
    /// More replicas than [`MAX_REPLICAS`].
    TooManyReplicas(u32),
    /// More PDs than [`MAX_DIRECTORY_PDS`].
    TooManyPds(u32),
    /// This replica's PD range runs past `pd_count`.
    ReplicaPds(u32),
    /// This PD names a replica that is not listed, or lies outside its replica's range.
    PdReplica(u32),
}

impl core::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("directory truncated"),
            Self::BadMagic => f.write_str("directory has a bad magic (not patched?)"),
            Self::UnsupportedVersion(v) => write!(f, "directory version {v} is not supported"),
            Self::TooManyReplicas(n) => write!(f, "directory lists {n} replicas"),
            Self::TooManyPds(n) => write!(f, "directory lists {n} PDs"),
            Self::ReplicaPds(r) => write!(f, "directory replica {r}: PD range out of bounds"),
            Self::PdReplica(p) => write!(f, "directory PD {p}: not in its replica's range"),
        }
    }
}

/// The text of a NUL-padded name field: up to the first NUL (or the whole field), or
/// [`INVALID_NAME`] if that is not UTF-8.
fn name_of(field: &[u8]) -> &str {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(field.get(..len).unwrap_or_default()).unwrap_or(INVALID_NAME)
}

/// A name field holding `name`, NUL padded; `None` if `name` is empty, contains a NUL, or
/// has `N` bytes or more (a NUL always follows a name).
pub fn encode_name<const N: usize>(name: &str) -> Option<[u8; N]> {
    let mut field = [0u8; N];
    if name.is_empty() || name.len() >= N || name.as_bytes().contains(&0) {
        return None;
    }
    field
        .get_mut(..name.len())?
        .copy_from_slice(name.as_bytes());
    Some(field)
}

impl ReplicaEntry {
    /// All zero.
    pub const EMPTY: Self = Self {
        name: [0; REPLICA_NAME_BYTES],
        cores: 0,
        first_pd: 0,
        pd_count: 0,
    };

    /// The name as text ([`INVALID_NAME`] if it is not UTF-8).
    pub fn name(&self) -> &str {
        name_of(&self.name)
    }

    /// The replica's core indices, ascending.
    pub fn core_indices(&self) -> impl Iterator<Item = u32> + '_ {
        (0..u64::BITS).filter(|&i| self.cores & 1u64.wrapping_shl(i) != 0)
    }
}

impl PdEntry {
    /// All zero.
    pub const EMPTY: Self = Self {
        name: [0; PD_NAME_BYTES],
        replica: 0,
        core: 0,
        priority: 0,
        flags: 0,
    };

    /// The name as text ([`INVALID_NAME`] if it is not UTF-8).
    pub fn name(&self) -> &str {
        name_of(&self.name)
    }

    /// Whether the PD is passive.
    pub fn passive(&self) -> bool {
        self.flags & pd_flags::PASSIVE != 0
    }
}

impl Default for Directory {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Directory {
    /// All zero: the default a PD gives the symbol the tool patches. It fails
    /// [`Self::check`] (its magic is zero) and lists nothing.
    pub const EMPTY: Self = Self {
        magic: 0,
        version: 0,
        replica_count: 0,
        pd_count: 0,
        replicas: [ReplicaEntry::EMPTY; MAX_REPLICAS],
        pds: [PdEntry::EMPTY; MAX_DIRECTORY_PDS],
    };

    /// A directory with no replica yet, with the magic and version: what
    /// [`Self::push_replica`] and [`Self::push_pd`] fill.
    pub const fn new() -> Self {
        Self {
            magic: MAGIC,
            version: VERSION,
            ..Self::EMPTY
        }
    }

    /// A copy of the directory at the start of `bytes`, checked.
    pub fn read(bytes: &[u8]) -> Result<Self, DirectoryError> {
        let (directory, _) =
            Self::read_from_prefix(bytes).map_err(|_| DirectoryError::Truncated)?;
        directory.check()?;
        Ok(directory)
    }

    /// Checks the magic, the version, the counts, that every listed replica's PDs are
    /// listed PDs, and that every listed PD lies in the range of the replica it names.
    pub fn check(&self) -> Result<(), DirectoryError> {
        if self.magic != MAGIC {
            return Err(DirectoryError::BadMagic);
        }
        if self.version != VERSION {
            return Err(DirectoryError::UnsupportedVersion(self.version));
        }
        if self.replica_count as usize > MAX_REPLICAS {
            return Err(DirectoryError::TooManyReplicas(self.replica_count));
        }
        if self.pd_count as usize > MAX_DIRECTORY_PDS {
            return Err(DirectoryError::TooManyPds(self.pd_count));
        }
        for (index, replica) in self.replicas().enumerate() {
            if Self::range(replica).is_none_or(|(_, end)| end > self.pd_count) {
                return Err(DirectoryError::ReplicaPds(index as u32));
            }
        }
        for (index, pd) in self.pds().enumerate() {
            let index = index as u32;
            let inside = self
                .replicas()
                .nth(pd.replica as usize)
                .and_then(Self::range)
                .is_some_and(|(first, end)| (first..end).contains(&index));
            if !inside {
                return Err(DirectoryError::PdReplica(index));
            }
        }
        Ok(())
    }

    /// A replica's PD range `first..end`, if it does not overflow.
    fn range(replica: &ReplicaEntry) -> Option<(u32, u32)> {
        let end = replica.first_pd.checked_add(replica.pd_count)?;
        Some((replica.first_pd, end))
    }

    /// The listed replicas, in index order (at most [`MAX_REPLICAS`], whatever
    /// `replica_count` says).
    pub fn replicas(&self) -> impl Iterator<Item = &ReplicaEntry> + '_ {
        self.replicas.iter().take(self.replica_count as usize)
    }

    /// The listed PDs, grouped by replica (at most [`MAX_DIRECTORY_PDS`], whatever
    /// `pd_count` says).
    pub fn pds(&self) -> impl Iterator<Item = &PdEntry> + '_ {
        self.pds.iter().take(self.pd_count as usize)
    }

    /// The PDs of replica `replica` (an index), in document order; none for a replica
    /// that is not listed, and only listed PDs whatever its range says.
    pub fn pds_of(&self, replica: usize) -> impl Iterator<Item = &PdEntry> + '_ {
        let (first, end) = self
            .replicas()
            .nth(replica)
            .and_then(Self::range)
            .map_or((0, 0), |(first, end)| (first as usize, end as usize));
        self.pds().take(end).skip(first)
    }

    /// Appends a replica with no PDs yet; `None` if the directory is full or the name
    /// does not fit ([`encode_name`]).
    pub fn push_replica(&mut self, name: &str, cores: u64) -> Option<()> {
        let entry = self.replicas.get_mut(self.replica_count as usize)?;
        *entry = ReplicaEntry {
            name: encode_name(name)?,
            cores,
            first_pd: self.pd_count,
            pd_count: 0,
        };
        self.replica_count = self.replica_count.checked_add(1)?;
        Some(())
    }

    /// Appends a PD to the last replica pushed (so push each replica's PDs right after
    /// it); `None` if there is no replica, the directory is full or the name does not
    /// fit ([`encode_name`]).
    pub fn push_pd(&mut self, name: &str, core: u32, priority: u32, flags: u32) -> Option<()> {
        let replica_index = self.replica_count.checked_sub(1)?;
        let name = encode_name(name)?;
        let entry = self.pds.get_mut(self.pd_count as usize)?;
        *entry = PdEntry {
            name,
            replica: replica_index,
            core,
            priority,
            flags,
        };
        let replica = self.replicas.get_mut(replica_index as usize)?;
        replica.pd_count = replica.pd_count.checked_add(1)?;
        self.pd_count = self.pd_count.checked_add(1)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the default `system.xml`: io (core 0), rt (core 1), storage (2, 3).
    fn sample() -> Directory {
        let mut d = Directory::new();
        d.push_replica("io", 0b1).unwrap();
        d.push_pd("net_driver", 0, 200, 0).unwrap();
        d.push_pd("io", 0, 150, 0).unwrap();
        d.push_replica("rt", 0b10).unwrap();
        d.push_pd("rt", 1, 200, 0).unwrap();
        d.push_replica("storage", 0b1100).unwrap();
        d.push_pd("storage", 2, 100, 0).unwrap();
        d.push_pd("storage_blk", 3, 110, pd_flags::PASSIVE).unwrap();
        d
    }

    fn names<'a>(pds: impl Iterator<Item = &'a PdEntry>) -> Vec<&'a str> {
        pds.map(PdEntry::name).collect()
    }

    extern crate std;
    use std::vec::Vec;

    #[test]
    fn a_built_directory_checks_and_reads_back() {
        let d = sample();
        assert_eq!(d.check(), Ok(()));
        let replicas: Vec<&str> = d.replicas().map(ReplicaEntry::name).collect();
        assert_eq!(replicas, ["io", "rt", "storage"]);
        assert_eq!(names(d.pds_of(0)), ["net_driver", "io"]);
        assert_eq!(names(d.pds_of(1)), ["rt"]);
        assert_eq!(names(d.pds_of(2)), ["storage", "storage_blk"]);
        assert_eq!(d.pds_of(3).count(), 0);
        assert_eq!(d.pds_of(usize::MAX).count(), 0);
        let storage: Vec<u32> = d.replicas[2].core_indices().collect();
        assert_eq!(storage, [2, 3]);
        assert!(d.pds[4].passive() && !d.pds[3].passive());
        // Through bytes, as the tool writes it.
        let bytes = d.as_bytes();
        assert_eq!(&bytes[..4], b"ATDR");
        assert_eq!(Directory::read(bytes), Ok(d));
        for len in [0, 16, bytes.len() - 1] {
            assert_eq!(
                Directory::read(&bytes[..len]),
                Err(DirectoryError::Truncated)
            );
        }
    }

    #[test]
    fn the_empty_directory_is_refused_and_lists_nothing() {
        let d = Directory::EMPTY;
        assert_eq!(d.check(), Err(DirectoryError::BadMagic));
        assert!(d.as_bytes().iter().all(|&b| b == 0));
        assert_eq!(d.replicas().count() + d.pds().count(), 0);
        assert_eq!(Directory::default(), d);
        assert_eq!(Directory::new().check(), Ok(()));
    }

    #[test]
    fn every_corruption_is_refused() {
        let spoil = |f: &dyn Fn(&mut Directory)| {
            let mut d = sample();
            f(&mut d);
            d.check()
        };
        assert_eq!(spoil(&|d| d.magic ^= 1), Err(DirectoryError::BadMagic));
        assert_eq!(
            spoil(&|d| d.version = 2),
            Err(DirectoryError::UnsupportedVersion(2))
        );
        assert_eq!(
            spoil(&|d| d.replica_count = 9),
            Err(DirectoryError::TooManyReplicas(9))
        );
        assert_eq!(
            spoil(&|d| d.pd_count = u32::MAX),
            Err(DirectoryError::TooManyPds(u32::MAX))
        );
        // A range past the listed PDs, an overflowing one, and one a PD falls out of.
        assert_eq!(
            spoil(&|d| d.replicas[2].pd_count = 3),
            Err(DirectoryError::ReplicaPds(2))
        );
        assert_eq!(
            spoil(&|d| d.replicas[1].first_pd = u32::MAX),
            Err(DirectoryError::ReplicaPds(1))
        );
        assert_eq!(
            spoil(&|d| d.replicas[0].pd_count = 1),
            Err(DirectoryError::PdReplica(1))
        );
        // A PD naming a replica that is not listed, or another replica than its range's.
        assert_eq!(
            spoil(&|d| d.pds[2].replica = 7),
            Err(DirectoryError::PdReplica(2))
        );
        assert_eq!(
            spoil(&|d| d.pds[0].replica = 1),
            Err(DirectoryError::PdReplica(0))
        );
        // Fewer PDs listed than the ranges claim.
        assert_eq!(
            spoil(&|d| d.pd_count = 4),
            Err(DirectoryError::ReplicaPds(2))
        );
    }

    #[test]
    fn accessors_stay_in_bounds_whatever_the_counts() {
        let mut d = sample();
        d.replica_count = u32::MAX;
        d.pd_count = u32::MAX;
        d.replicas[2].first_pd = u32::MAX - 1;
        d.replicas[2].pd_count = 1;
        assert_eq!(d.replicas().count(), MAX_REPLICAS);
        assert_eq!(d.pds().count(), MAX_DIRECTORY_PDS);
        assert_eq!(d.pds_of(2).count(), 0);
        assert_eq!(d.pds_of(MAX_REPLICAS - 1).count(), 0);
        // A name without a NUL, and one that is not UTF-8.
        d.replicas[0].name = [b'x'; REPLICA_NAME_BYTES];
        assert_eq!(d.replicas[0].name().len(), REPLICA_NAME_BYTES);
        d.pds[0].name[0] = 0xff;
        assert_eq!(d.pds[0].name(), INVALID_NAME);
    }

    #[test]
    fn names_must_leave_room_for_a_nul() {
        assert!(encode_name::<4>("abc").is_some());
        assert!(encode_name::<4>("abcd").is_none());
        assert!(encode_name::<4>("").is_none());
        assert!(encode_name::<4>("a\0").is_none());
        let mut d = Directory::new();
        assert_eq!(d.push_pd("orphan", 0, 0, 0), None);
        assert_eq!(d.push_replica(&"r".repeat(REPLICA_NAME_BYTES), 1), None);
        for i in 0..MAX_REPLICAS {
            assert_eq!(d.push_replica("r", 1 << i), Some(()));
        }
        assert_eq!(d.push_replica("r", 1), None);
        for _ in 0..MAX_DIRECTORY_PDS {
            assert_eq!(d.push_pd("p", 7, 1, 0), Some(()));
        }
        assert_eq!(d.push_pd("p", 7, 1, 0), None);
        assert_eq!(d.check(), Ok(()));
        assert_eq!(d.pds_of(MAX_REPLICAS - 1).count(), MAX_DIRECTORY_PDS);
    }
}
