//! The bootable image: a header, a table of parts and the parts themselves.
//!
//! Layout on disk (all little-endian):
//!
//! ```text
//! [ loader binary, which starts with an arm64 Image header ]  (padded to IMAGE_ALIGN)
//! [ ImageHeader | PartEntry * part_count | part bytes ... ]   <- "the image" proper
//! ```
//!
//! The checksum is CRC-32 over the image proper (header with `checksum` read as zero, the
//! table and every part). The loader finds the image proper at the first `IMAGE_ALIGN`
//! boundary after its own end and refuses it, with a reason, if anything is off.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::crc32::Crc32;
use crate::limits::MAX_PARTS;

/// Magic at the start of the image proper.
pub const IMAGE_MAGIC: [u8; 8] = *b"ATOLLIMG";
/// Current image format version. Bumped on any incompatible change.
pub const IMAGE_VERSION: u32 = 1;
/// Alignment of the image proper after the loader, and of every part inside it.
pub const IMAGE_ALIGN: u64 = 0x1000;
/// `PartEntry::replica` value for a part every replica uses (the kernel).
pub const ALL_REPLICAS: u32 = u32::MAX;

/// The image header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ImageHeader {
    /// [`IMAGE_MAGIC`].
    pub magic: [u8; 8],
    /// [`IMAGE_VERSION`].
    pub version: u32,
    /// Number of [`PartEntry`] records following the header.
    pub part_count: u32,
    /// Bytes of the image proper, header included.
    pub image_size: u64,
    /// CRC-32 of the image proper with this field read as zero.
    pub checksum: u32,
    /// Size of this header in bytes (for forward compatibility).
    pub header_size: u32,
    /// Board name, NUL padded, so that an image for another board is refused.
    pub board: [u8; 24],
    /// Reserved, zero.
    pub reserved: u64,
}

const _: () = assert!(size_of::<ImageHeader>() == 64);
const _: () = assert!(offset_of!(ImageHeader, checksum) == 24);
const _: () = assert!(offset_of!(ImageHeader, board) == 32);

/// What a part holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PartKind {
    /// A flattened kernel: bytes from its lowest to its highest loadable address.
    Kernel = 1,
    /// A replica's [`crate::spec::ReplicaSpec`].
    ReplicaSpec = 2,
    /// A PD's program, flattened from its lowest to its highest loadable address.
    PdImage = 3,
    /// The initial contents of a memory region (`prefill_path`), zero past its stored bytes.
    /// With `replica == ALL_REPLICAS`, `dest_offset` is an absolute physical address: a
    /// region outside every replica's RAM (shared between replicas, or at a fixed address).
    RegionData = 4,
    /// The replica initialiser, flattened like the kernel: one copy for every replica.
    Initialiser = 5,
    /// A replica's boot program (`crate::bootprog`), placed in its RAM like a PD image.
    BootProgram = 6,
    /// A memory region the loader fills with the device tree the firmware handed it
    /// (`prefill_bootinfo="fdt"`), zero past the tree; placed like [`PartKind::RegionData`]
    /// and storing no bytes.
    DeviceTree = 7,
}

impl PartKind {
    /// Decodes a raw kind.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Kernel),
            2 => Some(Self::ReplicaSpec),
            3 => Some(Self::PdImage),
            4 => Some(Self::RegionData),
            5 => Some(Self::Initialiser),
            6 => Some(Self::BootProgram),
            7 => Some(Self::DeviceTree),
            _ => None,
        }
    }
}

/// One entry of the table of parts.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PartEntry {
    /// A [`PartKind`] as `u32`.
    pub kind: u32,
    /// Replica index the part belongs to, or [`ALL_REPLICAS`].
    pub replica: u32,
    /// Offset of the part's bytes from the start of the image proper.
    pub offset: u64,
    /// Bytes stored in the image.
    pub file_size: u64,
    /// Bytes the part occupies in memory (`>= file_size`; the rest is zeroed).
    pub mem_size: u64,
    /// Where the part goes, as an offset from the start of the replica's RAM.
    pub dest_offset: u64,
    /// Virtual address of the part's first byte (kernels), else zero.
    pub vaddr: u64,
    /// Entry point (kernels), else zero.
    pub entry: u64,
    /// Reserved, zero.
    pub reserved: u64,
}

const _: () = assert!(size_of::<PartEntry>() == 64);

impl PartEntry {
    /// An entry for `file_size` stored bytes that occupy `mem_size` bytes at `dest_offset`
    /// in `replica`'s RAM; its offset in the image is set when the image is written, and
    /// `vaddr` and `entry` stay zero unless the part is a program.
    pub const fn new(
        kind: PartKind,
        replica: u32,
        file_size: u64,
        mem_size: u64,
        dest_offset: u64,
    ) -> Self {
        Self {
            kind: kind as u32,
            replica,
            offset: 0,
            file_size,
            mem_size,
            dest_offset,
            vaddr: 0,
            entry: 0,
            reserved: 0,
        }
    }
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Fewer bytes than a header.
    Truncated,
    /// Wrong magic: not an Atoll image, or the loader and image were not packed together.
    BadMagic,
    /// A version this loader does not read.
    UnsupportedVersion(u32),
    /// Header fields that contradict each other or the buffer.
    BadHeader(&'static str),
    /// The checksum does not match: the image is damaged.
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u32,
        /// Checksum computed over the bytes.
        actual: u32,
    },
    /// Part `index` is inconsistent (out of bounds, unknown kind, bad sizes).
    BadPart {
        /// Index in the table of parts.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The image was packed for another board.
    WrongBoard,
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "image truncated: shorter than its header"),
            Self::BadMagic => write!(f, "no Atoll image found after the loader (bad magic)"),
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "image format version {v} is not supported (loader reads {IMAGE_VERSION})"
                )
            }
            Self::BadHeader(why) => write!(f, "image header is damaged: {why}"),
            Self::ChecksumMismatch { expected, actual } => write!(
                f,
                "image checksum mismatch: header says {expected:#010x}, contents give {actual:#010x}; the image is damaged"
            ),
            Self::BadPart { index, reason } => write!(f, "image part {index} is damaged: {reason}"),
            Self::WrongBoard => write!(f, "image was packed for another board"),
        }
    }
}

/// A checked view of an image proper.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    bytes: &'a [u8],
    header: ImageHeader,
}

/// One part of a checked image.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// Its table entry.
    pub entry: PartEntry,
    /// Its kind, decoded.
    pub kind: PartKind,
    /// Its stored bytes.
    pub bytes: &'a [u8],
}

impl<'a> ImageView<'a> {
    /// Checks `bytes` (which may extend past the image) and returns a view of the image.
    ///
    /// `board`, when given, must match the board the image was packed for.
    pub fn parse(bytes: &'a [u8], board: Option<&str>) -> Result<Self, ImageError> {
        let (header, _) =
            ImageHeader::read_from_prefix(bytes).map_err(|_| ImageError::Truncated)?;
        if header.magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic);
        }
        if header.version != IMAGE_VERSION {
            return Err(ImageError::UnsupportedVersion(header.version));
        }
        if header.header_size as usize != size_of::<ImageHeader>() {
            return Err(ImageError::BadHeader("header size is wrong"));
        }
        let image_size = usize::try_from(header.image_size)
            .map_err(|_| ImageError::BadHeader("image size does not fit in memory"))?;
        if image_size > bytes.len() {
            return Err(ImageError::BadHeader(
                "image size runs past the end of the loaded file",
            ));
        }
        let part_count = header.part_count as usize;
        if part_count > MAX_PARTS {
            return Err(ImageError::BadHeader("too many parts"));
        }
        // At most MAX_PARTS entries: no overflow.
        let table_end = size_of::<ImageHeader>()
            .saturating_add(part_count.saturating_mul(size_of::<PartEntry>()));
        if table_end > image_size {
            return Err(ImageError::BadHeader("table of parts runs past the image"));
        }
        let bytes = bytes.get(..image_size).ok_or(ImageError::BadHeader(
            "image size runs past the end of the loaded file",
        ))?;
        let actual = image_checksum(bytes);
        if actual != header.checksum {
            return Err(ImageError::ChecksumMismatch {
                expected: header.checksum,
                actual,
            });
        }
        if let Some(board) = board
            && board_name(&header.board) != board
        {
            return Err(ImageError::WrongBoard);
        }
        let view = Self { bytes, header };
        for index in 0..part_count {
            view.part(index)?;
        }
        Ok(view)
    }

    /// The header.
    pub fn header(&self) -> &ImageHeader {
        &self.header
    }

    /// The board name the image was packed for.
    pub fn board(&self) -> &str {
        board_name(&self.header.board)
    }

    /// Number of parts.
    pub fn part_count(&self) -> usize {
        self.header.part_count as usize
    }

    /// Part `index`, checked.
    pub fn part(&self, index: usize) -> Result<Part<'a>, ImageError> {
        let bad = |reason| ImageError::BadPart {
            index: index as u32,
            reason,
        };
        if index >= self.part_count() {
            return Err(bad("no such part"));
        }
        let at =
            size_of::<ImageHeader>().saturating_add(index.saturating_mul(size_of::<PartEntry>()));
        let (entry, _) = PartEntry::read_from_prefix(self.bytes.get(at..).unwrap_or_default())
            .map_err(|_| bad("truncated entry"))?;
        let kind = PartKind::from_raw(entry.kind).ok_or_else(|| bad("unknown kind"))?;
        if entry.file_size > entry.mem_size {
            return Err(bad("stored size exceeds memory size"));
        }
        if entry.offset % IMAGE_ALIGN != 0 || entry.dest_offset % IMAGE_ALIGN != 0 {
            return Err(bad("misaligned offset"));
        }
        let start = usize::try_from(entry.offset).map_err(|_| bad("offset out of range"))?;
        let len = usize::try_from(entry.file_size).map_err(|_| bad("size out of range"))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| bad("size overflows"))?;
        let bytes = self
            .bytes
            .get(start..end)
            .ok_or_else(|| bad("bytes run past the image"))?;
        Ok(Part { entry, kind, bytes })
    }

    /// The parts, in table order. Every part was checked by [`ImageView::parse`].
    pub fn parts(&self) -> impl Iterator<Item = Part<'a>> + '_ {
        (0..self.part_count()).filter_map(|i| self.part(i).ok())
    }
}

/// CRC-32 of an image proper, reading the checksum field as zero.
pub fn image_checksum(image: &[u8]) -> u32 {
    let at = offset_of!(ImageHeader, checksum);
    let mut crc = Crc32::new();
    match (image.get(..at), image.get(at.wrapping_add(4)..)) {
        (Some(before), Some(after)) => {
            crc.update(before);
            crc.update(&[0; 4]);
            crc.update(after);
        }
        _ => crc.update(image),
    }
    crc.finish()
}

/// The text of a NUL-padded board name field.
pub fn board_name(field: &[u8; 24]) -> &str {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(field.get(..len).unwrap_or_default()).unwrap_or("<invalid>")
}

/// Encodes a board name into a header field; `None` if it does not fit.
pub fn encode_board_name(name: &str) -> Option<[u8; 24]> {
    let mut field = [0u8; 24];
    if name.len() >= field.len() {
        return None;
    }
    field
        .get_mut(..name.len())?
        .copy_from_slice(name.as_bytes());
    Some(field)
}
