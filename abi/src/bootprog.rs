//! The boot program: what a replica's initialiser replays to build the replica's PDs.
//!
//! The `microkit` tool writes one boot program per replica and packs it into the replica's
//! RAM; the kernel reads its untyped list to hand the initialiser exactly those untyped
//! capabilities, and maps the whole program read-only into the initialiser at [`VADDR`].
//! The initialiser then makes every invocation in order, as Microkit's monitor replays the
//! tool's, and afterwards serves as the replica's monitor, naming PDs from [`Pd`] records.
//!
//! Layout, all little-endian and 8-byte aligned: a [`Header`], then `untyped_count`
//! [`Untyped`] records, then `pd_count` [`Pd`] records, then `invocation_count`
//! [`Invocation`] records. [`BootProgram::parse`] checks every count against the bytes, so
//! a reader never indexes past them.
//!
//! [`rules`] holds what the initialiser does with a checked program: the order it replays
//! the invocations in, and how its monitor answers each message.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub mod rules;

/// Magic at the start of a boot program.
pub const MAGIC: [u8; 8] = *b"ATOLLBPG";
/// Current version.
pub const VERSION: u32 = 3;
/// Where the kernel maps the boot program in the initialiser's address space (read-only).
pub const VADDR: u64 = 0x3F_E000_0000;
/// The most bytes a boot program may have (the initialiser's window for it).
pub const MAX_SIZE: u64 = 0x100_0000;
/// Message registers an invocation record carries.
pub const MAX_ARGS: usize = 8;

/// Untyped flags.
pub mod untyped_flags {
    /// Memory whose contents must survive: what the loader filled (programs, regions) or
    /// device memory. The kernel never zeroes it and only frames are made from it, as from
    /// seL4's device untyped memory.
    pub const DEVICE: u32 = 1 << 0;
    /// Memory user space may only read: every frame made from it carries read rights
    /// alone. The kernels' status page (the first page of the kernel shared area) is the
    /// only block the kernel accepts over the shared area, and only with this flag and
    /// [`DEVICE`].
    pub const READ_ONLY: u32 = 1 << 1;
}

/// PD flags.
pub mod pd_flags {
    /// Restart the PD from its entry point when it faults (`restart="true"`), up to
    /// [`super::MAX_RESTARTS`] times; otherwise it is stopped.
    pub const RESTART: u32 = 1 << 0;
    /// A passive PD (`passive="true"`): it starts on its scheduling context, and the
    /// monitor takes that context away when the PD reports that its `init` is done.
    pub const PASSIVE: u32 = 1 << 1;
}

/// How many times the monitor restarts a faulting PD before it stops it for good.
pub const MAX_RESTARTS: u32 = 3;

/// The start of a boot program.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// Total bytes, header included.
    pub size: u32,
    /// [`Untyped`] records: the initialiser's untyped capabilities, one per record, at
    /// consecutive slots from `syscall::initial::FIRST_UNTYPED`.
    pub untyped_count: u32,
    /// [`Pd`] records.
    pub pd_count: u32,
    /// [`Invocation`] records.
    pub invocation_count: u32,
    /// The first slot of the initialiser's root CNode the program leaves unused.
    pub free_slot: u32,
    /// The monitor's fault endpoint (a slot of the initialiser's root CNode); 0 if none.
    pub monitor_endpoint: u64,
    /// The monitor's reply object; 0 if none.
    pub monitor_reply: u64,
}

/// One untyped capability the kernel hands the initialiser.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Untyped {
    /// Physical base, aligned to its size.
    pub base: u64,
    /// log2 of its size (12 to 47).
    pub size_bits: u32,
    /// [`untyped_flags`].
    pub flags: u32,
}

/// A PD the initialiser starts and then watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Pd {
    /// Name, NUL padded.
    pub name: [u8; 64],
    /// Its TCB (a slot of the initialiser's root CNode).
    pub tcb: u64,
    /// Its scheduling context (a slot of the initialiser's root CNode).
    pub sc: u64,
    /// Its notification (a slot of the initialiser's root CNode): a passive PD's
    /// scheduling context is bound to it, so that the PD handles notifications on it.
    pub notification: u64,
    /// The badge its faults arrive with at the monitor endpoint; 0 when its parent, not
    /// the monitor, handles its faults.
    pub fault_badge: u64,
    /// Entry point, for a restart.
    pub entry: u64,
    /// Initial stack pointer, for a restart.
    pub stack_top: u64,
    /// [`pd_flags`].
    pub flags: u32,
    /// The core it runs on (its `cpu`; a board core index of the replica).
    pub core: u16,
    /// The core its `init` runs on: its own, but for a passive PD the replica's first core,
    /// where the monitor runs at a higher priority, so that the PD's "ready" finds the
    /// monitor waiting (as on one core). The monitor moves it to `core` when it makes it
    /// passive, and back here when it restarts it.
    pub init_core: u16,
}

impl Pd {
    /// The name as text.
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(64);
        core::str::from_utf8(self.name.get(..len).unwrap_or_default()).unwrap_or("<invalid name>")
    }
}

/// One invocation: `label` on the capability at `cap` with the first `length` of `args`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Invocation {
    /// The invoked capability (a slot of the initialiser's root CNode).
    pub cap: u64,
    /// Invocation label (`syscall::label`).
    pub label: u32,
    /// Message registers used.
    pub length: u32,
    /// The message registers.
    pub args: [u64; MAX_ARGS],
}

const _: () = {
    assert!(size_of::<Header>() == 48);
    assert!(offset_of!(Header, monitor_endpoint) == 32);
    assert!(size_of::<Untyped>() == 16);
    assert!(size_of::<Pd>() == 120);
    assert!(offset_of!(Pd, sc) == 72);
    assert!(offset_of!(Pd, notification) == 80);
    assert!(offset_of!(Pd, tcb) == 64);
    assert!(size_of::<Invocation>() == 80);
    assert!(offset_of!(Invocation, args) == 16);
};

/// Why a boot program was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProgramError {
    /// Shorter than its header or its records.
    Truncated,
    /// Wrong magic.
    BadMagic,
    /// A version this reader does not know.
    UnsupportedVersion(u32),
    /// A field is out of range.
    BadField(&'static str),
}

impl core::fmt::Display for BootProgramError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("boot program truncated"),
            Self::BadMagic => f.write_str("boot program has a bad magic"),
            Self::UnsupportedVersion(v) => write!(f, "boot program version {v} is not supported"),
            Self::BadField(what) => write!(f, "boot program field out of range: {what}"),
        }
    }
}

/// A checked view of a boot program's bytes.
#[derive(Clone, Copy, Debug)]
pub struct BootProgram<'a> {
    header: Header,
    untyped: &'a [Untyped],
    pds: &'a [Pd],
    invocations: &'a [Invocation],
}

impl<'a> BootProgram<'a> {
    /// Checks `bytes` and splits them into their records.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BootProgramError> {
        let (header, _) =
            Header::read_from_prefix(bytes).map_err(|_| BootProgramError::Truncated)?;
        if header.magic != MAGIC {
            return Err(BootProgramError::BadMagic);
        }
        if header.version != VERSION {
            return Err(BootProgramError::UnsupportedVersion(header.version));
        }
        let size = header.size as usize;
        if size > bytes.len() || u64::from(header.size) > MAX_SIZE {
            return Err(BootProgramError::Truncated);
        }
        let rest = bytes
            .get(size_of::<Header>().min(size)..size)
            .ok_or(BootProgramError::Truncated)?;
        let (untyped, rest) =
            <[Untyped]>::ref_from_prefix_with_elems(rest, header.untyped_count as usize)
                .map_err(|_| BootProgramError::Truncated)?;
        let (pds, rest) = <[Pd]>::ref_from_prefix_with_elems(rest, header.pd_count as usize)
            .map_err(|_| BootProgramError::Truncated)?;
        let (invocations, rest) =
            <[Invocation]>::ref_from_prefix_with_elems(rest, header.invocation_count as usize)
                .map_err(|_| BootProgramError::Truncated)?;
        if !rest.is_empty() {
            return Err(BootProgramError::BadField("size"));
        }
        for u in untyped {
            if !(12..=47).contains(&u.size_bits)
                || u.base & 1u64.wrapping_shl(u.size_bits).wrapping_sub(1) != 0
            {
                return Err(BootProgramError::BadField("untyped block"));
            }
        }
        if invocations.iter().any(|i| i.length as usize > MAX_ARGS) {
            return Err(BootProgramError::BadField("invocation length"));
        }
        Ok(Self {
            header,
            untyped,
            pds,
            invocations,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The untyped capabilities, in slot order.
    pub fn untyped(&self) -> &'a [Untyped] {
        self.untyped
    }

    /// The PDs.
    pub fn pds(&self) -> &'a [Pd] {
        self.pds
    }

    /// The invocations, in the order to make them.
    pub fn invocations(&self) -> &'a [Invocation] {
        self.invocations
    }
}

/// Serialises a boot program (the tool writes them; tests build hostile ones).
pub fn write(
    out: &mut impl Extend<u8>,
    monitor: (u64, u64),
    free_slot: u32,
    untyped: &[Untyped],
    pds: &[Pd],
    invocations: &[Invocation],
) {
    let size = size_of::<Header>()
        .saturating_add(size_of_val(untyped))
        .saturating_add(size_of_val(pds))
        .saturating_add(size_of_val(invocations));
    let header = Header {
        magic: MAGIC,
        version: VERSION,
        size: size as u32,
        untyped_count: untyped.len() as u32,
        pd_count: pds.len() as u32,
        invocation_count: invocations.len() as u32,
        free_slot,
        monitor_endpoint: monitor.0,
        monitor_reply: monitor.1,
    };
    out.extend(header.as_bytes().iter().copied());
    out.extend(untyped.as_bytes().iter().copied());
    out.extend(pds.as_bytes().iter().copied());
    out.extend(invocations.as_bytes().iter().copied());
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn sample() -> Vec<u8> {
        let mut name = [0u8; 64];
        name[..2].copy_from_slice(b"io");
        let pd = Pd {
            name,
            tcb: 300,
            sc: 301,
            notification: 302,
            fault_badge: 1,
            entry: 0x20_0000,
            stack_top: 0x7F_FFFF_E000,
            flags: pd_flags::RESTART,
            core: 0,
            init_core: 0,
        };
        let untyped = [Untyped {
            base: 0x4160_0000,
            size_bits: 21,
            flags: 0,
        }];
        let inv = Invocation {
            cap: 16,
            label: 1,
            length: 7,
            args: [1, 0, 1, 0, 0, 256, 1, 0],
        };
        let mut out = Vec::new();
        write(&mut out, (257, 258), 300, &untyped, &[pd], &[inv, inv]);
        out
    }

    #[test]
    fn a_written_program_parses_back() {
        let bytes = sample();
        let p = BootProgram::parse(&bytes).unwrap();
        assert_eq!(p.header().monitor_endpoint, 257);
        assert_eq!(p.untyped().len(), 1);
        assert_eq!(p.pds()[0].name(), "io");
        assert_eq!(p.invocations().len(), 2);
        assert_eq!(p.invocations()[1].args[5], 256);
    }

    #[test]
    fn every_truncation_and_bad_count_is_refused() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(BootProgram::parse(&bytes[..len]).is_err(), "length {len}");
        }
        // Counts that claim more records than the bytes hold.
        for field in [16usize, 20, 24] {
            let mut b = bytes.clone();
            b[field..field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(BootProgram::parse(&b).is_err(), "field at {field}");
        }
        let mut b = bytes.clone();
        b[0] ^= 1;
        assert_eq!(
            BootProgram::parse(&b).unwrap_err(),
            BootProgramError::BadMagic
        );
        // A misaligned untyped block.
        let mut b = bytes.clone();
        b[48..56].copy_from_slice(&0x4160_1000u64.to_le_bytes());
        assert!(BootProgram::parse(&b).is_err());
        // An invocation with too many arguments.
        let mut b = bytes;
        let at = size_of::<Header>() + size_of::<Untyped>() + size_of::<Pd>() + 12;
        b[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
        assert!(BootProgram::parse(&b).is_err());
    }
}
