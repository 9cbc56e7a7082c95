//! The device tree the firmware hands the loader in `x0`: finding it, reading it with
//! `atoll_boards::devicetree` (which holds every decision and is host-tested), logging what
//! it says, and copying it into the `prefill_bootinfo="fdt"` regions.
//!
//! Everything is read from the tree before the loader writes a byte outside its own range:
//! the tree may lie in what becomes a replica's memory (QEMU puts it 128 MiB into RAM).

use atoll_abi::image::{ALL_REPLICAS, ImageView, PartKind};
use atoll_abi::memory_map::{MemoryMap, Span};
use atoll_abi::placement::Specs;
use atoll_abi::spec::{PhysRange, PsciConduit};
use atoll_boards::devicetree::{self, ConduitSource, TreeError};

use crate::board::BOARD;
use crate::mem;

/// Where the tree lies.
#[derive(Clone, Copy)]
pub struct Location {
    /// Its physical address.
    pub pa: u64,
    /// Its size.
    pub len: usize,
}

/// What the loader takes from the firmware's device tree.
pub struct Firmware {
    /// The memory it reports; `None` without a tree.
    pub memory: Option<MemoryMap>,
    /// The PSCI conduit its `/psci` names.
    pub psci: Option<PsciConduit>,
    /// Where the tree lies, to copy it into `prefill_bootinfo="fdt"` regions.
    pub tree: Option<Location>,
}

impl Firmware {
    const NONE: Self = Self {
        memory: None,
        psci: None,
        tree: None,
    };
}

/// Why the loader will not go on with the tree it was handed.
pub enum TreeRefusal {
    /// The tree at this address cannot be read.
    Damaged(u64, TreeError),
    /// The tree at this address, of this size, lies outside the board's RAM.
    OutsideRam(Location),
    /// The tree (or, its size unknown, its header) overlaps the loader and its image
    /// (which moved there, over it).
    OverLoader(Location, PhysRange),
    /// The tree does not fit in the `prefill_bootinfo="fdt"` region at this address, of
    /// this size.
    RegionTooSmall(Location, u64, u64),
}

impl core::fmt::Display for TreeRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Damaged(pa, error) => write!(f, "the device tree at {pa:#x}: {error}"),
            Self::OutsideRam(tree) => write!(
                f,
                "the device tree at {:#x} ({} bytes) lies outside the board's RAM {}, where \
                 the loader cannot read it",
                tree.pa,
                tree.len,
                Span(BOARD.ram)
            ),
            Self::OverLoader(tree, loader) => write!(
                f,
                "the device tree at {:#x} overlaps the loader and its image at {}, where the \
                 loader moved itself: load the tree elsewhere",
                tree.pa,
                Span(*loader)
            ),
            Self::RegionTooSmall(tree, region, size) => write!(
                f,
                "the device tree ({} bytes) does not fit in the prefill_bootinfo=\"fdt\" region \
                 at {region:#x} ({size} bytes)",
                tree.len
            ),
        }
    }
}

/// Reads the tree at `x0` (what the firmware passed), which must not overlap `loader` (the
/// loader and its image, where they run). `x0 = 0` (QEMU's `-device loader`, Microkit's
/// way to boot) and anything that is not a tree leave the board's description in force.
pub fn read(x0: u64, loader: PhysRange) -> Result<Firmware, TreeRefusal> {
    if x0 == 0 {
        log!(
            "INFO",
            "no device tree (x0 = 0): the board's RAM {} is assumed",
            Span(BOARD.ram)
        );
        return Ok(Firmware::NONE);
    }
    let header = PhysRange { base: x0, size: 8 };
    if !x0.is_multiple_of(8) || !BOARD.ram.contains(&header) {
        log!(
            "WARN",
            "x0 = {x0:#x} is no device tree's address (not 8-byte aligned in the board's RAM \
             {}): the board's description is used",
            Span(BOARD.ram)
        );
        return Ok(Firmware::NONE);
    }
    // A tree under the loader's own bytes was overwritten when the loader moved itself
    // there: what is there now is the loader, whatever its first word says.
    if header.overlaps(&loader) {
        let at = Location { pa: x0, len: 8 };
        return Err(TreeRefusal::OverLoader(at, loader));
    }
    // SAFETY: eight bytes at an 8-byte-aligned address inside the board's RAM, which the
    // loader's identity map covers as normal memory; reading them changes nothing.
    let first = unsafe { (x0 as *const [u8; 8]).read_volatile() };
    let len = match devicetree::probe(first) {
        Ok(len) => len,
        // QEMU's -kernel without a tree on a machine that has none of its own (xlnx-zcu102,
        // imx8mp-evk) points x0 at the ATAG list it writes for 32-bit kernels: no tree was
        // passed, as with x0 = 0.
        Err(error @ TreeError::NotATree(_)) => {
            log!(
                "INFO",
                "x0 = {x0:#x}: {error}; the board's RAM {} is assumed",
                Span(BOARD.ram)
            );
            return Ok(Firmware::NONE);
        }
        Err(error) => return Err(TreeRefusal::Damaged(x0, error)),
    };
    let at = Location { pa: x0, len };
    let range = PhysRange {
        base: x0,
        size: len as u64,
    };
    if !BOARD.ram.contains(&range) {
        return Err(TreeRefusal::OutsideRam(at));
    }
    if range.overlaps(&loader) {
        return Err(TreeRefusal::OverLoader(at, loader));
    }
    // SAFETY: the tree's bytes lie in the board's RAM (checked above), identity-mapped as
    // normal memory, clear of the loader and its image; nothing writes them while this
    // slice lives (it does not outlive this function, which writes nothing).
    let bytes = unsafe { core::slice::from_raw_parts(x0 as *const u8, len) };
    let tree = devicetree::decode(bytes, x0, BOARD.ram).map_err(|e| TreeRefusal::Damaged(x0, e))?;
    log!(
        "INFO",
        "device tree at {x0:#x} ({len} bytes): RAM {}",
        tree.memory.ram_named()
    );
    for reserved in tree.memory.reserved() {
        log!(
            "INFO",
            "device tree: {} reserved ({})",
            Span(reserved.range),
            reserved.source()
        );
    }
    if let Some(path) = tree.stdout_path {
        log!("INFO", "device tree: stdout-path {path:?}");
    }
    for note in tree.notes.iter() {
        if note.is_warning() {
            log!("WARN", "device tree: {note}");
        } else {
            log!("INFO", "device tree: {note}");
        }
    }
    if tree.notes.more > 0 {
        log!("WARN", "device tree: {} more notes", tree.notes.more);
    }
    Ok(Firmware {
        memory: Some(tree.memory),
        psci: tree.psci,
        tree: Some(at),
    })
}

/// The PSCI conduit for a loader entered at `entry_el`, the tree's if it names one; the
/// choice and where it comes from are logged.
pub fn conduit(entry_el: u32, firmware: &Firmware) -> PsciConduit {
    let (conduit, source) = devicetree::psci_conduit(BOARD, entry_el, firmware.psci);
    let name = match conduit {
        PsciConduit::Smc => "SMC",
        PsciConduit::Hvc => "HVC",
    };
    match source {
        ConduitSource::DeviceTree => {
            log!("INFO", "PSCI over {name}, as the device tree's /psci says");
        }
        ConduitSource::Board => log!(
            "INFO",
            "PSCI over {name}, as {} says for entry at EL{entry_el}",
            BOARD.name
        ),
        ConduitSource::BoardOverHvcAtEl2 => log!(
            "WARN",
            "the device tree's /psci says HVC, which nothing answers below the loader's own \
             EL2: PSCI over {name}, as {} says for entry at EL2",
            BOARD.name
        ),
    }
    conduit
}

/// The `prefill_bootinfo="fdt"` regions of the image: physical address and size.
pub fn regions<'a>(
    view: &'a ImageView<'a>,
    specs: &'a Specs,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    view.parts()
        .filter(|p| p.kind == PartKind::DeviceTree)
        .filter_map(|part| {
            // `placement::check` proved that a part names a replica, or is a region at an
            // absolute address.
            let base = if part.entry.replica == ALL_REPLICAS {
                0
            } else {
                specs.get(part.entry.replica as usize)?.as_ref()?.0.ram.base
            };
            Some((base + part.entry.dest_offset, part.entry.mem_size))
        })
}

/// Fills each `prefill_bootinfo="fdt"` region with the tree and zeroes past it (with no
/// tree, zeroes it with a warning); refuses, writing nothing, if the tree does not fit in
/// one. Run after `placement::check` (which proved every region lies in RAM the firmware
/// reports and the loader may write) and before anything else is written outside the
/// loader: the tree may lie anywhere in RAM.
pub fn fill_regions(
    view: &ImageView<'_>,
    specs: &Specs,
    tree: Option<Location>,
) -> Result<(), TreeRefusal> {
    if let Some(tree) = tree
        && let Some((region, size)) = regions(view, specs).find(|&(_, s)| tree.len as u64 > s)
    {
        return Err(TreeRefusal::RegionTooSmall(tree, region, size));
    }
    let mut source = tree;
    for (region, size) in regions(view, specs) {
        let dest = region as *mut u8;
        match source {
            Some(tree) => {
                // SAFETY: the region lies in RAM the loader may write (`placement::check`),
                // identity-mapped, used by nobody yet, and holds the tree (checked above);
                // the tree lies in RAM too (`read`) and may overlap it, which `copy`
                // allows. Nothing else reads or writes either meanwhile.
                unsafe {
                    core::ptr::copy(tree.pa as *const u8, dest, tree.len);
                    mem::zero(dest.add(tree.len), (size as usize) - tree.len);
                }
                log!(
                    "INFO",
                    "device tree copied to the prefill_bootinfo=\"fdt\" region at {region:#x} \
                     ({} of {size} bytes)",
                    tree.len
                );
                // The next region copies this one: the original may lie under this region.
                source = Some(Location {
                    pa: region,
                    len: tree.len,
                });
            }
            None => {
                // SAFETY: as above, for the region alone.
                unsafe { mem::zero(dest, size as usize) };
                log!(
                    "WARN",
                    "no device tree to put in the prefill_bootinfo=\"fdt\" region at \
                     {region:#x}: it is left zeroed"
                );
            }
        }
    }
    Ok(())
}
