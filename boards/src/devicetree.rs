//! The flattened device tree the firmware hands the loader (its address in `x0`, as the
//! arm64 Linux boot protocol has it: QEMU's `-kernel` and U-Boot's `booti` both pass one):
//! what the loader reads of it, and nothing else.
//!
//! - `/memory` nodes (every child of `/` whose `device_type` is `memory`): their `reg`, in
//!   the root's `#address-cells` and `#size-cells`, is the RAM the machine has.
//! - `/reserved-memory`'s children (their `reg`, in that node's cells) and the
//!   memory-reservation block (`/memreserve/`): ranges nothing of an image may use. The
//!   reservation a bootloader makes of the tree itself is left out (the loader reads the
//!   tree before it writes anything), and so are children without `reg`, which ask the
//!   operating system to allocate memory (`size`, `alloc-ranges`).
//! - `/psci`'s `method` (`smc` or `hvc`), the conduit for PSCI calls; see [`psci_conduit`].
//! - `/chosen`'s `stdout-path`, which the loader only logs.
//!
//! The tree is firmware's: nothing in it is trusted. [`probe`] reads the first eight bytes
//! at the address (magic and size) before the loader reads more; [`decode`] checks the
//! header and the memory-reservation block itself, then walks the structure with the `fdt`
//! crate in its mode that returns errors instead of panicking, bounds-checking every cell
//! it reads. A damaged tree is an error that says what is wrong; a property the loader can
//! do without (an unknown PSCI method, a `stdout-path` that is not a string) is a [`Note`].
//! A fuzz target (`boards/fuzz`, and a short property test here) feeds it damaged trees.

use atoll_abi::memory_map::{Full, Label, MemoryMap, Reserved, Span};
use atoll_abi::spec::{PhysRange, PsciConduit};
use fdt::Fdt;
use fdt::helpers::UnalignedFallibleNode;
use fdt::nodes::AsNode;
use fdt::parsing::NoPanic;
use fdt::parsing::unaligned::UnalignedParser;
use fdt::{FdtError, parsing::ParseError};

use crate::Board;

/// The first word of a flattened device tree (big-endian).
pub const MAGIC: u32 = 0xd00d_feed;
/// Bytes of the header (version 17).
pub const HEADER_SIZE: usize = 40;
/// The largest tree the loader reads (Linux's limit on arm64).
pub const MAX_SIZE: usize = 0x20_0000;
/// The format version read; older versions lack the structure block's size.
const VERSION: u32 = 17;
/// A structure block holds at least the root's start, its empty name, its end and the end.
const MIN_STRUCT_SIZE: u32 = 16;

type Tree<'a> = Fdt<'a, (UnalignedParser<'a>, NoPanic)>;
type Node<'a> = UnalignedFallibleNode<'a>;

/// Why a device tree is not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeError {
    /// No device tree there: its first word is this, not [`MAGIC`].
    NotATree(u32),
    /// Larger than [`MAX_SIZE`].
    TooLarge(usize),
    /// The header contradicts itself or the tree's size.
    Header(&'static str),
    /// A format version the loader does not read (it reads 17).
    Version(u32),
    /// The structure block is damaged.
    Structure(&'static str),
    /// A node's `reg` (or its cells, or its `ranges`) cannot be read as the loader must.
    Reg {
        /// The node's path.
        node: Label,
        /// What is wrong.
        why: &'static str,
    },
    /// More reserved ranges than the loader can keep ([`atoll_abi::memory_map::MAX_RESERVED`]).
    TooManyReserved,
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotATree(magic) => write!(
                f,
                "no device tree there: its first word is {magic:#010x}, not {MAGIC:#010x}"
            ),
            Self::TooLarge(size) => write!(
                f,
                "it says it is {size} bytes, more than the {MAX_SIZE} the loader reads"
            ),
            Self::Header(why) => write!(f, "its header is damaged: {why}"),
            Self::Version(version) => write!(
                f,
                "it is of format version {version}; the loader reads {VERSION}"
            ),
            Self::Structure(why) => write!(f, "its structure is damaged: {why}"),
            Self::Reg { node, why } => write!(f, "{node}: {why}"),
            Self::TooManyReserved => write!(
                f,
                "it reserves more than {} ranges, more than the loader can check",
                atoll_abi::memory_map::MAX_RESERVED
            ),
        }
    }
}

/// Something in the tree the loader does without, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// No `/memory` node: the board's RAM is taken as the machine's.
    NoMemory,
    /// A RAM range past the most the loader keeps, left out.
    RamLeftOut(PhysRange),
    /// A node whose `status` is not `okay`, left out.
    Disabled(Label),
    /// A `/reserved-memory` child without `reg` (the operating system allocates it), left
    /// out.
    Allocated(Label),
    /// The memory-reservation block's entry for the tree itself, left out: the loader reads
    /// the tree before it writes anything.
    OwnReservation(PhysRange),
    /// `/psci` has no `method`.
    NoPsciMethod,
    /// `/psci`'s `method` is neither `smc` nor `hvc`.
    UnknownPsciMethod(Label),
    /// `/chosen`'s `stdout-path` is not a string.
    StdoutPath,
}

impl Note {
    /// Whether the loader logs it as a warning (otherwise as information).
    pub const fn is_warning(&self) -> bool {
        !matches!(
            self,
            Self::Disabled(_) | Self::Allocated(_) | Self::OwnReservation(_)
        )
    }
}

impl core::fmt::Display for Note {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMemory => f.write_str("no /memory node: the board's RAM is assumed"),
            Self::RamLeftOut(range) => write!(
                f,
                "RAM {} left out: the loader keeps {} ranges",
                Span(*range),
                atoll_abi::memory_map::MAX_RAM_RANGES
            ),
            Self::Disabled(node) => write!(f, "{node} is disabled: left out"),
            Self::Allocated(node) => write!(
                f,
                "{node} has no reg (the operating system would allocate it): left out"
            ),
            Self::OwnReservation(range) => write!(
                f,
                "the reservation of the tree itself ({}) is left out: the loader reads the \
                 tree before it writes anything",
                Span(*range)
            ),
            Self::NoPsciMethod => f.write_str("/psci has no method"),
            Self::UnknownPsciMethod(method) => {
                write!(f, "/psci's method \"{method}\" is neither smc nor hvc")
            }
            Self::StdoutPath => f.write_str("/chosen's stdout-path is not a string: ignored"),
        }
    }
}

/// Most notes kept; more are counted.
pub const MAX_NOTES: usize = 8;

/// The notes of one tree, in the order met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notes {
    notes: [Option<Note>; MAX_NOTES],
    /// Notes past [`MAX_NOTES`], not kept.
    pub more: usize,
}

impl Notes {
    fn add(&mut self, note: Note) {
        match self.notes.iter_mut().find(|n| n.is_none()) {
            Some(slot) => *slot = Some(note),
            None => self.more = self.more.saturating_add(1),
        }
    }

    /// The notes kept.
    pub fn iter(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().flatten()
    }
}

/// What the loader reads of a device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTree<'a> {
    /// The RAM (the board's, if the tree describes none: [`Note::NoMemory`]) and the
    /// reserved ranges.
    pub memory: MemoryMap,
    /// The PSCI conduit `/psci`'s `method` names.
    pub psci: Option<PsciConduit>,
    /// `/chosen`'s `stdout-path`.
    pub stdout_path: Option<&'a str>,
    /// The tree's size (its header's `totalsize`).
    pub size: usize,
    /// What was left out or ignored.
    pub notes: Notes,
}

/// The size of the tree whose first eight bytes are `first`: its magic must be [`MAGIC`]
/// ([`TreeError::NotATree`] otherwise: whatever the firmware passed is no tree) and its
/// size at least a header and at most [`MAX_SIZE`].
pub fn probe(first: [u8; 8]) -> Result<usize, TreeError> {
    let [m0, m1, m2, m3, s0, s1, s2, s3] = first;
    let magic = u32::from_be_bytes([m0, m1, m2, m3]);
    if magic != MAGIC {
        return Err(TreeError::NotATree(magic));
    }
    let size = u32::from_be_bytes([s0, s1, s2, s3]) as usize;
    if size < HEADER_SIZE {
        return Err(TreeError::Header("its size is smaller than its header"));
    }
    if size > MAX_SIZE {
        return Err(TreeError::TooLarge(size));
    }
    Ok(size)
}

/// The header fields the loader uses.
struct Header {
    size: usize,
    reservations: usize,
}

/// Big-endian word `index` of `bytes` (zero past the end: callers check lengths first).
fn word(bytes: &[u8], index: usize) -> u32 {
    let at = index.saturating_mul(4);
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Checks the header against the tree's bytes: every block inside the tree, aligned, and
/// after the header, so that nothing later reads past it.
fn header(tree: &[u8]) -> Result<Header, TreeError> {
    let first: [u8; 8] = tree
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(TreeError::Header("the tree is shorter than its header"))?;
    let size = probe(first)?;
    if tree.len() < size {
        return Err(TreeError::Header(
            "the tree is shorter than its header says",
        ));
    }
    let [
        _,
        _,
        off_struct,
        off_strings,
        off_rsvmap,
        version,
        last_compatible,
        _,
        strings_size,
        struct_size,
    ] = core::array::from_fn(|i| word(tree, i));
    if version < VERSION || last_compatible > VERSION {
        return Err(TreeError::Version(version));
    }
    let within = |offset: u32, len: u32| {
        u64::from(offset) >= HEADER_SIZE as u64
            && u64::from(offset).saturating_add(u64::from(len)) <= size as u64
    };
    if !within(off_struct, struct_size) || !off_struct.is_multiple_of(4) {
        return Err(TreeError::Header(
            "the structure block lies outside the tree",
        ));
    }
    if struct_size < MIN_STRUCT_SIZE || !struct_size.is_multiple_of(4) {
        return Err(TreeError::Header("the structure block's size is wrong"));
    }
    if !within(off_strings, strings_size) {
        return Err(TreeError::Header("the strings block lies outside the tree"));
    }
    if !within(off_rsvmap, 16) || !off_rsvmap.is_multiple_of(8) {
        return Err(TreeError::Header(
            "the memory-reservation block lies outside the tree",
        ));
    }
    Ok(Header {
        size,
        reservations: off_rsvmap as usize,
    })
}

/// The memory-reservation block's entries, up to its (0, 0) end, each checked not to wrap.
fn reservations(
    tree: &[u8],
    offset: usize,
) -> impl Iterator<Item = Result<PhysRange, TreeError>> + '_ {
    let entries = tree.get(offset..).unwrap_or(&[]).chunks_exact(16);
    let mut ended = false;
    let mut entries = entries.map(|entry| {
        let (address, size) = entry.split_at_checked(8).unwrap_or((&[], &[]));
        (number(address), number(size))
    });
    core::iter::from_fn(move || {
        if ended {
            return None;
        }
        match entries.next() {
            None => {
                ended = true;
                Some(Err(TreeError::Header(
                    "the memory-reservation block has no end",
                )))
            }
            Some((0, 0)) => {
                ended = true;
                None
            }
            Some((base, size)) if base.checked_add(size).is_none() => {
                ended = true;
                Some(Err(TreeError::Header(
                    "a memory reservation runs past the end of the address space",
                )))
            }
            Some((base, size)) => Some(Ok(PhysRange { base, size })),
        }
    })
}

/// The crate's error, as text.
fn structure(error: FdtError) -> TreeError {
    TreeError::Structure(match error {
        FdtError::ParseError(ParseError::InvalidCStrValue) => "a name is not a string",
        FdtError::ParseError(ParseError::UnexpectedEndOfData) => "it ends too early",
        FdtError::ParseError(ParseError::UnexpectedToken | ParseError::InvalidTokenValue) => {
            "an unexpected token"
        }
        FdtError::ParseError(_) => "a value cannot be read",
        FdtError::BadMagic | FdtError::BadPtr | FdtError::SliceTooSmall => {
            "the header and the blocks disagree"
        }
        _ => "a node cannot be read",
    })
}

/// Address and size cells of a node's children.
#[derive(Clone, Copy)]
struct Cells {
    address: usize,
    size: usize,
}

/// A node's own path for messages: `/` followed by each of `parts`.
fn path(parts: &[&str]) -> Label {
    match parts {
        [] => Label::new("/"),
        [a] => Label::from_parts(&["/", a]),
        [a, b, ..] => Label::from_parts(&["/", a, "/", b]),
    }
}

/// The properties the loader reads, of one node, found in one pass over its properties.
/// The crate decodes every property's name from the strings block as it passes it, so
/// passes cost: reading QEMU `virt`'s tree takes the loader about 190,000 instructions
/// this way, and took 260,000 with a pass per property looked up.
#[derive(Clone, Copy, Default)]
struct Props<'a> {
    device_type: Option<&'a [u8]>,
    compatible: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    reg: Option<&'a [u8]>,
    ranges: Option<&'a [u8]>,
    address_cells: Option<&'a [u8]>,
    size_cells: Option<&'a [u8]>,
    method: Option<&'a [u8]>,
    stdout_path: Option<&'a [u8]>,
    old_stdout_path: Option<&'a [u8]>,
}

impl<'a> Props<'a> {
    /// `node`'s properties (the first of each name).
    fn of(node: &Node<'a>) -> Result<Self, TreeError> {
        let mut props = Self::default();
        for prop in node.properties().map_err(structure)?.iter() {
            let prop = prop.map_err(structure)?;
            let slot = match prop.name {
                "device_type" => &mut props.device_type,
                "compatible" => &mut props.compatible,
                "status" => &mut props.status,
                "reg" => &mut props.reg,
                "ranges" => &mut props.ranges,
                "#address-cells" => &mut props.address_cells,
                "#size-cells" => &mut props.size_cells,
                "method" => &mut props.method,
                "stdout-path" => &mut props.stdout_path,
                "linux,stdout-path" => &mut props.old_stdout_path,
                _ => continue,
            };
            slot.get_or_insert(prop.value);
        }
        Ok(props)
    }

    /// Whether the node's `status` lets it be used (absent, `okay` or `ok`).
    fn enabled(&self) -> bool {
        matches!(
            self.status,
            None | Some(b"okay\0" | b"ok\0" | b"okay" | b"ok")
        )
    }

    /// Whether the node's `device_type` is `memory`.
    fn is_memory(&self) -> bool {
        matches!(self.device_type, Some(b"memory\0" | b"memory"))
    }

    /// Whether the node is compatible with some `arm,psci*`.
    fn is_psci(&self) -> bool {
        self.compatible
            .is_some_and(|value| value.split(|&b| b == 0).any(|c| c.starts_with(b"arm,psci")))
    }

    /// The cells the node gives its children (`defaults` where it says nothing); the
    /// loader reads addresses and sizes of one or two cells.
    fn cells(&self, defaults: Cells, label: Label) -> Result<Cells, TreeError> {
        let cell = |value: Option<&[u8]>, default: usize| match value {
            None => Ok(default),
            Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d]) as usize),
            Some(_) => Err(TreeError::Reg {
                node: label,
                why: "a #-cells property is not one cell",
            }),
        };
        let address = cell(self.address_cells, defaults.address)?;
        let size = cell(self.size_cells, defaults.size)?;
        if !(1..=2).contains(&address) || !(1..=2).contains(&size) {
            return Err(TreeError::Reg {
                node: label,
                why: "its #address-cells or #size-cells is not 1 or 2",
            });
        }
        Ok(Cells { address, size })
    }
}

/// A number of `cells` big-endian cells (one or two).
fn number(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(4)
        .fold(0, |n, c| n << 32 | u64::from(word(c, 0)))
}

/// The ranges of a `reg` value in `cells`: whole (address, size) pairs, none wrapping.
fn reg(
    value: &[u8],
    cells: Cells,
    label: Label,
) -> Result<impl Iterator<Item = PhysRange> + '_, TreeError> {
    let address_len = cells.address.saturating_mul(4);
    let entry_len = cells.address.saturating_add(cells.size).saturating_mul(4);
    let malformed = |why| TreeError::Reg { node: label, why };
    if value.is_empty() || !value.len().is_multiple_of(entry_len) {
        return Err(malformed(
            "its reg is not a whole number of (address, size) pairs",
        ));
    }
    let ranges = value.chunks_exact(entry_len).map(move |entry| {
        let (address, size) = entry.split_at(address_len.min(entry.len()));
        PhysRange {
            base: number(address),
            size: number(size),
        }
    });
    if ranges.clone().any(|r| r.base.checked_add(r.size).is_none()) {
        return Err(malformed("its reg runs past the end of the address space"));
    }
    Ok(ranges)
}

/// `node`'s name and unit address.
fn name<'a>(node: &Node<'a>) -> Result<(&'a str, Option<&'a str>), TreeError> {
    let name = node.name().map_err(structure)?;
    Ok((name.name, name.unit_address))
}

/// A child's path label: `/name@unit` under `parent` (none: the root).
fn child_label(parent: Option<&str>, child: (&str, Option<&str>)) -> Label {
    let (name, unit) = child;
    let (at, unit) = unit.map_or(("", ""), |u| ("@", u));
    match parent {
        None => Label::from_parts(&["/", name, at, unit]),
        Some(parent) => Label::from_parts(&["/", parent, "/", name, at, unit]),
    }
}

/// Reads `tree`, the device tree the firmware placed at physical address `at`. Without a
/// `/memory` node the machine's RAM is taken to be `board_ram`.
pub fn decode(tree: &[u8], at: u64, board_ram: PhysRange) -> Result<DeviceTree<'_>, TreeError> {
    let header = header(tree)?;
    let tree = tree.get(..header.size).unwrap_or(tree);
    let mut notes = Notes {
        notes: [None; MAX_NOTES],
        more: 0,
    };
    let mut memory = MemoryMap::EMPTY;
    // The tree itself, page by page, as a bootloader reserves it.
    let own = own_pages(at, header.size);
    for reservation in reservations(tree, header.reservations) {
        let range = reservation?;
        if own.is_some_and(|own| own.contains(&range)) {
            notes.add(Note::OwnReservation(range));
            continue;
        }
        memory
            .add_reserved(Reserved {
                range,
                node: Label::EMPTY,
            })
            .map_err(|Full| TreeError::TooManyReserved)?;
    }

    let fdt: Tree<'_> = Fdt::new_unaligned_fallible(tree).map_err(structure)?;
    let root = fdt.root().map_err(structure)?.as_node();
    let root_cells = Props::of(&root)?.cells(
        Cells {
            address: 2,
            size: 1,
        },
        path(&[]),
    )?;
    let mut found = Found::default();
    for child in root.children().map_err(structure)?.iter() {
        let child = child.map_err(structure)?;
        let child_name = name(&child)?;
        let props = Props::of(&child)?;
        let is_memory = props.is_memory();
        let is_psci = found.psci.is_none() && (child_name.0 == "psci" || props.is_psci());
        let is_reserved = child_name.0 == "reserved-memory";
        let is_chosen = child_name.0 == "chosen" && found.chosen.is_none();
        if !(is_memory || is_psci || is_reserved || is_chosen) {
            continue;
        }
        if !props.enabled() {
            notes.add(Note::Disabled(child_label(None, child_name)));
            continue;
        }
        if is_memory {
            found.memory = true;
            let label = child_label(None, child_name);
            for range in reg(props.reg.unwrap_or(&[]), root_cells, label)? {
                if memory.add_ram(range).is_err() {
                    notes.add(Note::RamLeftOut(range));
                }
            }
        } else if is_psci {
            found.psci = Some(props);
        } else if is_reserved {
            reserved_memory(&child, &props, root_cells, &mut memory, &mut notes)?;
        } else {
            found.chosen = Some(props);
        }
    }
    if !found.memory {
        notes.add(Note::NoMemory);
        // Only fails on a map already full of RAM, which this one cannot be.
        let _ = memory.add_ram(board_ram);
    }
    let psci = found.psci.and_then(|props| psci_method(&props, &mut notes));
    let stdout_path = found
        .chosen
        .and_then(|props| stdout_path(&props, &mut notes));
    Ok(DeviceTree {
        memory,
        psci,
        stdout_path,
        size: header.size,
        notes,
    })
}

/// What [`decode`] reads after its walk of the root's children.
#[derive(Default)]
struct Found<'a> {
    memory: bool,
    psci: Option<Props<'a>>,
    chosen: Option<Props<'a>>,
}

/// The pages the tree at `at` of `size` bytes occupies (none if they would wrap).
fn own_pages(at: u64, size: usize) -> Option<PhysRange> {
    const PAGE: u64 = 0x1000;
    let base = at & !(PAGE - 1);
    let end = at
        .checked_add(size as u64)?
        .checked_next_multiple_of(PAGE)?;
    Some(PhysRange {
        base,
        size: end.checked_sub(base)?,
    })
}

/// Adds `/reserved-memory`'s children's ranges to `memory` (`props` are the node's).
fn reserved_memory(
    node: &Node<'_>,
    props: &Props<'_>,
    root_cells: Cells,
    memory: &mut MemoryMap,
    notes: &mut Notes,
) -> Result<(), TreeError> {
    let label = path(&["reserved-memory"]);
    let cells = props.cells(root_cells, label)?;
    if props.ranges.is_some_and(|r| !r.is_empty()) {
        return Err(TreeError::Reg {
            node: label,
            why: "its ranges translates addresses, which the loader does not do",
        });
    }
    for child in node.children().map_err(structure)?.iter() {
        let child = child.map_err(structure)?;
        let (name, unit) = name(&child)?;
        let child_label = child_label(Some("reserved-memory"), (name, unit));
        let child_props = Props::of(&child)?;
        if !child_props.enabled() {
            notes.add(Note::Disabled(child_label));
            continue;
        }
        let Some(value) = child_props.reg else {
            notes.add(Note::Allocated(child_label));
            continue;
        };
        let (at, unit) = unit.map_or(("", ""), |u| ("@", u));
        let node = Label::from_parts(&[name, at, unit]);
        for range in reg(value, cells, child_label)? {
            memory
                .add_reserved(Reserved { range, node })
                .map_err(|Full| TreeError::TooManyReserved)?;
        }
    }
    Ok(())
}

/// `/psci`'s `method`.
fn psci_method(props: &Props<'_>, notes: &mut Notes) -> Option<PsciConduit> {
    match props.method {
        Some(b"smc\0" | b"smc") => Some(PsciConduit::Smc),
        Some(b"hvc\0" | b"hvc") => Some(PsciConduit::Hvc),
        Some(other) => {
            let text = core::str::from_utf8(other).unwrap_or("?");
            notes.add(Note::UnknownPsciMethod(Label::new(
                text.trim_end_matches('\0'),
            )));
            None
        }
        None => {
            notes.add(Note::NoPsciMethod);
            None
        }
    }
}

/// `/chosen`'s `stdout-path` (or its old name `linux,stdout-path`).
fn stdout_path<'a>(props: &Props<'a>, notes: &mut Notes) -> Option<&'a str> {
    let value = props.stdout_path.or(props.old_stdout_path)?;
    let text = core::ffi::CStr::from_bytes_until_nul(value)
        .ok()
        .and_then(|s| s.to_str().ok());
    if text.is_none() {
        notes.add(Note::StdoutPath);
    }
    text.filter(|t| !t.is_empty())
}

/// Where the PSCI conduit the loader uses comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConduitSource {
    /// The device tree's `/psci` `method`.
    DeviceTree,
    /// The board's description for the level the loader was entered at: the tree names
    /// none (or there is no tree).
    Board,
    /// The board's description, because the tree names HVC while the loader was entered
    /// at EL2: it drops to EL1 itself, so an HVC would reach its own EL2, where nothing
    /// answers.
    BoardOverHvcAtEl2,
}

/// The PSCI conduit to use on `board` entered at `entry_el`, given what the device tree
/// says (`tree`): the tree's, unless it names HVC at EL2, else the board's.
pub fn psci_conduit(
    board: &Board,
    entry_el: u32,
    tree: Option<PsciConduit>,
) -> (PsciConduit, ConduitSource) {
    let board_conduit = if entry_el == 2 {
        board.psci_at_el2
    } else {
        board.psci_at_el1
    };
    match tree {
        Some(PsciConduit::Hvc) if entry_el == 2 => {
            (board_conduit, ConduitSource::BoardOverHvcAtEl2)
        }
        Some(conduit) => (conduit, ConduitSource::DeviceTree),
        None => (board_conduit, ConduitSource::Board),
    }
}

#[cfg(test)]
mod tests;
