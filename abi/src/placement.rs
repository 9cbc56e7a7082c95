//! Where an image's parts may go: the layout rules the loader enforces before it writes a
//! byte, and the `microkit` tool enforces after it writes an image, so that an image the
//! tool writes is never one the loader refuses. Both apply them through the image check
//! `atoll_kernel_core::loadcheck`, which goes on to what needs the page-table builder.
//!
//! [`check`] reads the parts of an image (already parsed by [`ImageView`]) and refuses,
//! with a reason, any layout in which replicas would overlap each other, the loader, the
//! shared area or memory outside the board's RAM, in which a core belongs to two replicas,
//! or in which a PD image, region or boot program lands outside its replica's free memory.
//! Last, everything the image uses (the loader's range, the shared area, every replica's
//! RAM, every region outside the replicas) must lie in RAM the firmware reports and clear
//! of every range it reserves ([`Machine::memory`]), so that an image planned for more RAM
//! than the machine has is refused with both named before the loader writes anything.
//! It is pure: the machine is described by a [`Machine`], so the host tests it.

use core::mem::size_of;

use crate::image::{ALL_REPLICAS, Part, PartEntry, PartKind};
use crate::limits::{MAX_REPLICAS, PAGE_SIZE};
use crate::memory_map::{MemoryMap, RamNamed, Reserved, Span};
use crate::spec::{PhysRange, ReplicaSpec, attrs};

#[cfg(doc)]
use crate::image::ImageView;

/// What the checker needs to know about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The board's RAM.
    pub ram: PhysRange,
    /// The RAM the boot stub, the loader and the image occupy.
    pub loader: PhysRange,
    /// The loader's own code and data (its start to `__loader_end`), which every replica's
    /// TTBR0 maps while the replica's MMU comes on.
    pub loader_code: PhysRange,
    /// How many cores the board has.
    pub cores: usize,
    /// The core the loader runs on, by index.
    pub boot_core: u32,
    /// The interrupt controller the replicas use: the one the loader found (the board's, or
    /// the alternative it allows), or, in the tool, each the board allows in turn.
    pub gic: GicDevice,
    /// The memory as the firmware reports it: the device tree's RAM and reserved ranges
    /// when the loader was given one, otherwise the board's RAM with nothing reserved.
    pub memory: MemoryMap,
}

/// An interrupt controller as a board describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicDevice {
    /// Architecture version: 2 or 3.
    pub version: u32,
    /// Distributor.
    pub distributor: PhysRange,
    /// GICv3: redistributors (all cores); GICv2: CPU interface.
    pub cpu: PhysRange,
    /// Interrupt lines the distributor implements (`GICD_TYPER.ITLinesNumber`): shared
    /// interrupts are ids 32 up to this.
    pub lines: u32,
}

/// Why a layout was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// Something about one replica (or the image as a whole, reported as replica 0).
    Replica {
        /// The replica.
        replica: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// A region outside every replica is misplaced.
    Region(&'static str),
    /// The image uses memory the firmware does not report as RAM, or reserves.
    Memory(MemoryConflict),
}

impl core::fmt::Display for PlacementError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Replica { replica, why } => write!(f, "replica {replica}: {why}"),
            Self::Region(why) => write!(f, "{why}"),
            Self::Memory(conflict) => write!(f, "{conflict}"),
        }
    }
}

/// What an image uses a range of memory for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryUse {
    /// The loader, its image and the room the board keeps after them.
    Loader,
    /// The kernels' shared area.
    SharedArea,
    /// A replica's RAM.
    Replica(u32),
    /// A memory region outside every replica's RAM.
    Region,
}

impl core::fmt::Display for MemoryUse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Loader => f.write_str("the loader's range"),
            Self::SharedArea => f.write_str("the shared area"),
            Self::Replica(replica) => write!(f, "replica {replica}'s RAM"),
            Self::Region => f.write_str("a region outside the replicas"),
        }
    }
}

/// Why the firmware's memory does not suit an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryProblem {
    /// The range is not inside any RAM range the firmware reports (these).
    NotRam(RamNamed),
    /// The range overlaps this reserved range.
    Reserved(Reserved),
}

/// An image's use of memory the firmware does not give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConflict {
    /// Everything the image uses, from its lowest to its highest byte.
    pub needs: PhysRange,
    /// What the range in conflict is for.
    pub what: MemoryUse,
    /// The range in conflict.
    pub range: PhysRange,
    /// What is wrong with it.
    pub problem: MemoryProblem,
}

impl core::fmt::Display for MemoryConflict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (needs, what, range) = (Span(self.needs), self.what, Span(self.range));
        match &self.problem {
            MemoryProblem::NotRam(ram) => write!(
                f,
                "this image needs RAM {needs}; the firmware reports {ram}, which does not \
                 hold {what} {range}"
            ),
            MemoryProblem::Reserved(reserved) => write!(
                f,
                "this image needs RAM {needs}; the firmware reserves {} ({}), which overlaps \
                 {what} {range}",
                Span(reserved.range),
                reserved.source()
            ),
        }
    }
}

fn refuse(why: &'static str, replica: u32) -> PlacementError {
    PlacementError::Replica { replica, why }
}

/// Each replica's boot spec and where it goes in the replica's RAM, by replica index.
pub type Specs = [Option<(ReplicaSpec, u64)>; MAX_REPLICAS];

/// A checked layout: what the loader places, besides the specs [`check`] filled in.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    /// Number of replicas: the specs of replicas `0..count` are present.
    pub count: usize,
    /// The kernel every replica runs.
    pub kernel: Part<'a>,
    /// The initialiser every replica starts, if the image carries one.
    pub initialiser: Option<Part<'a>>,
}

/// Checks the layout of an image's parts on `machine`, filling `specs`, which must start
/// empty, with each replica's boot spec (a table the caller owns: the loader keeps one
/// copy on its small stack). `parts` gives the parts afresh each time it is called (for an [`ImageView`],
/// `|| view.parts()`).
pub fn check<'a, I>(
    machine: &Machine,
    parts: impl Fn() -> I,
    specs: &mut Specs,
) -> Result<Placement<'a>, PlacementError>
where
    I: Iterator<Item = Part<'a>>,
{
    let (kernel, initialiser) = collect(parts(), specs)?;
    let kernel = kernel.ok_or(refuse("image has no kernel", 0))?;
    let count = specs.iter().filter(|s| s.is_some()).count();
    if count == 0 {
        return Err(refuse("image has no replicas", 0));
    }
    check_layout(machine, specs, count, &kernel.entry)?;
    check_placed_parts(machine, parts(), specs)?;
    check_initialiser(specs, initialiser.as_ref())?;
    let first = first(specs).ok_or(refuse("replica 0 is missing", 0))?;
    check_reported_memory(machine, || memory_uses(machine, first, specs, parts()))?;
    Ok(Placement {
        count,
        kernel,
        initialiser,
    })
}

/// Replica 0's spec, if present.
pub fn first(specs: &Specs) -> Option<&ReplicaSpec> {
    specs.first()?.as_ref().map(|(spec, _)| spec)
}

type Programs<'a> = (Option<Part<'a>>, Option<Part<'a>>);

/// The kernel and the initialiser, and the specs (into `specs`, empty), each where the
/// format allows it.
fn collect<'a>(
    parts: impl Iterator<Item = Part<'a>>,
    specs: &mut Specs,
) -> Result<Programs<'a>, PlacementError> {
    let mut kernel = None;
    let mut initialiser = None;
    for part in parts {
        let replica = part.entry.replica;
        match part.kind {
            PartKind::Kernel if replica == ALL_REPLICAS => kernel = Some(part),
            PartKind::Kernel => {
                return Err(refuse("per-replica kernels are not supported", replica));
            }
            PartKind::ReplicaSpec => {
                let spec = ReplicaSpec::parse(part.bytes)
                    .map_err(|_| refuse("boot spec is malformed", replica))?;
                let slot = specs
                    .get_mut(spec.replica as usize)
                    .ok_or(refuse("replica index out of range", spec.replica))?;
                if slot.is_some() || spec.replica != replica {
                    return Err(refuse("boot spec duplicated or misfiled", spec.replica));
                }
                *slot = Some((spec, part.entry.dest_offset));
            }
            PartKind::Initialiser if replica == ALL_REPLICAS => initialiser = Some(part),
            PartKind::Initialiser => {
                return Err(refuse(
                    "per-replica initialisers are not supported",
                    replica,
                ));
            }
            // Checked once every replica's memory is known.
            PartKind::PdImage
            | PartKind::RegionData
            | PartKind::DeviceTree
            | PartKind::BootProgram => {}
        }
    }
    Ok((kernel, initialiser))
}

/// Refuses layouts that would let replicas overlap each other, the loader or the board.
fn check_layout(
    machine: &Machine,
    specs: &Specs,
    count: usize,
    kernel: &PartEntry,
) -> Result<(), PlacementError> {
    let mut cores = 0u64;
    for (i, entry) in specs.iter().enumerate() {
        let Some((spec, spec_offset)) = entry else {
            if i < count {
                return Err(refuse("replica indices are not contiguous", i as u32));
            }
            continue;
        };
        let r = spec.replica;
        if spec.replica_count as usize != count {
            return Err(refuse("replica count disagrees with the image", r));
        }
        if !machine.ram.contains(&spec.ram)
            || spec.ram.overlaps(&machine.loader)
            || !spec.ram.base.is_multiple_of(PAGE_SIZE)
        {
            return Err(refuse(
                "RAM is outside the board's RAM or overlaps the loader",
                r,
            ));
        }
        if spec.core_mask & cores != 0
            || spec.core_mask.checked_shr(machine.cores as u32) != Some(0)
        {
            return Err(refuse(
                "cores are shared with another replica or do not exist",
                r,
            ));
        }
        cores |= spec.core_mask;
        check_reserve(spec, *spec_offset, kernel)?;
        let shared = shared_area(spec);
        if shared.size < crate::shared::SHARED_AREA_SIZE
            || !machine.ram.contains(&shared)
            || shared.overlaps(&machine.loader)
        {
            return Err(refuse("shared area is too small or misplaced", r));
        }
        check_against_others(specs, spec, &shared)?;
        check_kernel_mappings(spec, &shared)?;
    }
    Ok(())
}

/// The kernel, the spec and the page tables, in that order, before the replica's free
/// memory, which lies inside its RAM.
fn check_reserve(
    spec: &ReplicaSpec,
    spec_offset: u64,
    kernel: &PartEntry,
) -> Result<(), PlacementError> {
    let r = spec.replica;
    let kernel_end = kernel.dest_offset.saturating_add(kernel.mem_size);
    if kernel_end > spec_offset
        || spec_offset.saturating_add(size_of::<ReplicaSpec>() as u64) > spec.tables_offset
        || spec.tables_offset.saturating_add(spec.tables_size) > spec.free_offset
    {
        return Err(refuse("kernel, spec and page tables overlap", r));
    }
    if spec.free_offset > spec.ram.size {
        return Err(refuse("kernel does not fit in the replica's RAM", r));
    }
    Ok(())
}

fn shared_area(spec: &ReplicaSpec) -> PhysRange {
    PhysRange {
        base: spec.shared.pa,
        size: spec.shared.size,
    }
}

/// No other replica's RAM overlaps this one's or the shared area, and all agree on it.
fn check_against_others(
    specs: &Specs,
    spec: &ReplicaSpec,
    shared: &PhysRange,
) -> Result<(), PlacementError> {
    let r = spec.replica;
    for (other, _) in specs.iter().flatten() {
        if other.replica != r && (other.ram.overlaps(&spec.ram) || other.ram.overlaps(shared)) {
            return Err(refuse("RAM overlaps another replica or the shared area", r));
        }
        if other.shared.pa != spec.shared.pa {
            return Err(refuse("replicas disagree on the shared area", r));
        }
    }
    Ok(())
}

/// Every kernel mapping of normal memory stays in the replica's RAM or the shared area.
fn check_kernel_mappings(spec: &ReplicaSpec, shared: &PhysRange) -> Result<(), PlacementError> {
    for m in spec.mappings() {
        if m.attrs & attrs::DEVICE == 0 {
            let range = PhysRange {
                base: m.pa,
                size: m.size,
            };
            if !spec.ram.contains(&range) && !shared.contains(&range) {
                return Err(refuse(
                    "a kernel mapping reaches memory the replica does not own",
                    spec.replica,
                ));
            }
        }
    }
    Ok(())
}

/// PD images, region contents and boot programs must land in their replica's free memory.
fn check_placed_parts<'a>(
    machine: &Machine,
    parts: impl Iterator<Item = Part<'a>>,
    specs: &Specs,
) -> Result<(), PlacementError> {
    for part in parts {
        if !matches!(part.kind, PartKind::PdImage | PartKind::BootProgram) && !is_region(part.kind)
        {
            continue;
        }
        let r = part.entry.replica;
        if part.kind == PartKind::DeviceTree && !part.bytes.is_empty() {
            return Err(refuse(
                "a region the loader fills with the device tree stores bytes of its own",
                r,
            ));
        }
        if is_region(part.kind) && r == ALL_REPLICAS {
            check_absolute_region(machine, &part.entry, specs)?;
            continue;
        }
        let (spec, _) = specs
            .get(r as usize)
            .and_then(Option::as_ref)
            .ok_or(refuse("a program or region part names no replica", r))?;
        let end = part.entry.dest_offset.checked_add(part.entry.mem_size);
        if part.entry.dest_offset < spec.free_offset || end.is_none_or(|e| e > spec.ram.size) {
            return Err(refuse(
                "a program or region part lies outside the replica's free memory",
                r,
            ));
        }
    }
    Ok(())
}

/// Whether a part of `kind` is a memory region's contents (at an absolute address when it
/// names no replica).
pub fn is_region(kind: PartKind) -> bool {
    matches!(kind, PartKind::RegionData | PartKind::DeviceTree)
}

/// A region outside every replica: inside the board's RAM, clear of the loader, the kernel
/// shared area and every replica's RAM.
fn check_absolute_region(
    machine: &Machine,
    entry: &PartEntry,
    specs: &Specs,
) -> Result<(), PlacementError> {
    let range = PhysRange {
        base: entry.dest_offset,
        size: entry.mem_size,
    };
    let refused = PlacementError::Region(
        "a region outside the replicas lies outside RAM or over memory it may not touch",
    );
    if range.base.checked_add(range.size).is_none()
        || !machine.ram.contains(&range)
        || range.overlaps(&machine.loader)
    {
        return Err(refused);
    }
    for (spec, _) in specs.iter().flatten() {
        if range.overlaps(&spec.ram) || range.overlaps(&shared_area(spec)) {
            return Err(refused);
        }
    }
    Ok(())
}

/// Every range the image uses, by what for: the loader's range, the shared area, each
/// replica's RAM and each region outside the replicas (the parts inside a replica lie in
/// its RAM). The rules above have checked each lies in the board's RAM.
fn memory_uses<'a>(
    machine: &Machine,
    first: &ReplicaSpec,
    specs: &Specs,
    parts: impl Iterator<Item = Part<'a>>,
) -> impl Iterator<Item = (MemoryUse, PhysRange)> {
    let replicas = specs
        .iter()
        .flatten()
        .map(|(spec, _)| (MemoryUse::Replica(spec.replica), spec.ram));
    let regions = parts
        .filter(|p| is_region(p.kind) && p.entry.replica == ALL_REPLICAS)
        .map(|p| {
            let range = PhysRange {
                base: p.entry.dest_offset,
                size: p.entry.mem_size,
            };
            (MemoryUse::Region, range)
        });
    [
        (MemoryUse::Loader, machine.loader),
        (MemoryUse::SharedArea, shared_area(first)),
    ]
    .into_iter()
    .chain(replicas)
    .chain(regions)
}

/// Every range `uses` gives lies in RAM the firmware reports and clear of what it
/// reserves.
fn check_reported_memory<U>(machine: &Machine, uses: impl Fn() -> U) -> Result<(), PlacementError>
where
    U: Iterator<Item = (MemoryUse, PhysRange)>,
{
    let lowest = uses().map(|(_, r)| r.base).min().unwrap_or(0);
    let highest = uses().map(|(_, r)| r.end()).max().unwrap_or(0);
    let needs = PhysRange {
        base: lowest,
        size: highest.saturating_sub(lowest),
    };
    let memory = &machine.memory;
    for (what, range) in uses() {
        let problem = if !memory.is_ram(&range) {
            MemoryProblem::NotRam(memory.ram_named())
        } else if let Some(reserved) = memory.reservation_over(&range) {
            MemoryProblem::Reserved(*reserved)
        } else {
            continue;
        };
        return Err(PlacementError::Memory(MemoryConflict {
            needs,
            what,
            range,
            problem,
        }));
    }
    Ok(())
}

/// Each spec places the initialiser where the image's part says, between the page tables
/// and the free memory; a spec without one names none.
fn check_initialiser(specs: &Specs, initialiser: Option<&Part<'_>>) -> Result<(), PlacementError> {
    for (spec, _) in specs.iter().flatten() {
        let declared = spec.initialiser;
        let fits = match initialiser {
            None => declared.mem_size == 0,
            Some(part) => {
                declared.offset == part.entry.dest_offset
                    && declared.mem_size == part.entry.mem_size
                    && declared.offset >= spec.tables_offset.saturating_add(spec.tables_size)
                    && declared.offset.saturating_add(declared.mem_size) <= spec.free_offset
            }
        };
        if !fits {
            return Err(refuse(
                "the initialiser's place in the spec and the image disagree",
                spec.replica,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    reason = "host tests"
)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use zerocopy::IntoBytes;

    use super::*;
    use crate::fixture::{MACHINE, MIB, SHARED, SPEC_OFFSET, ram_of, spec};
    use crate::spec::Mapping;

    fn entry(kind: PartKind, replica: u32, dest_offset: u64, mem_size: u64) -> PartEntry {
        PartEntry::new(kind, replica, 0, mem_size, dest_offset)
    }

    /// A kernel and three replicas, each with one PD image, and a region outside them.
    struct Image {
        specs: Vec<ReplicaSpec>,
        extra: Vec<PartEntry>,
    }

    impl Image {
        fn good() -> Self {
            Self {
                specs: (0..3).map(|r| spec(r, 3)).collect(),
                extra: (0..3)
                    .map(|r| entry(PartKind::PdImage, r, 4 * MIB, MIB))
                    .chain([entry(PartKind::RegionData, ALL_REPLICAS, 0x7000_0000, MIB)])
                    .collect(),
            }
        }

        fn check(&self) -> Result<usize, PlacementError> {
            self.check_on(&MACHINE)
        }

        fn check_on(&self, machine: &Machine) -> Result<usize, PlacementError> {
            let kernel = Part {
                entry: entry(PartKind::Kernel, ALL_REPLICAS, 0, 0x1_0000),
                kind: PartKind::Kernel,
                bytes: &[],
            };
            let specs = self.specs.iter().map(|s| Part {
                entry: entry(PartKind::ReplicaSpec, s.replica, SPEC_OFFSET, 0),
                kind: PartKind::ReplicaSpec,
                bytes: s.as_bytes(),
            });
            let extra = self.extra.iter().map(|e| Part {
                entry: *e,
                kind: PartKind::from_raw(e.kind).unwrap(),
                bytes: &[],
            });
            let parts: Vec<Part<'_>> = [kernel].into_iter().chain(specs).chain(extra).collect();
            let mut table: Specs = [None; MAX_REPLICAS];
            check(machine, || parts.iter().copied(), &mut table).map(|p| p.count)
        }
    }

    /// [`MACHINE`] with the firmware reporting `ram` and reserving `reserved`.
    fn reporting(ram: &[PhysRange], reserved: &[(PhysRange, &str)]) -> Machine {
        let mut memory = MemoryMap::EMPTY;
        for range in ram {
            memory.add_ram(*range).unwrap();
        }
        for (range, node) in reserved {
            let node = crate::memory_map::Label::new(node);
            memory
                .add_reserved(Reserved {
                    range: *range,
                    node,
                })
                .unwrap();
        }
        Machine { memory, ..MACHINE }
    }

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange { base, size }
    }

    fn refused(image: &Image) -> std::string::String {
        std::format!("{}", image.check().unwrap_err())
    }

    #[test]
    fn a_good_layout_is_accepted() {
        assert_eq!(Image::good().check(), Ok(3));
    }

    #[test]
    fn replicas_may_not_share_ram_or_cores() {
        let mut image = Image::good();
        image.specs[1].ram = ram_of(0);
        assert_eq!(
            refused(&image),
            "replica 0: RAM overlaps another replica or the shared area"
        );
        let mut image = Image::good();
        image.specs[2].core_mask = 0b11;
        assert_eq!(
            refused(&image),
            "replica 2: cores are shared with another replica or do not exist"
        );
        image.specs[2].core_mask = 1 << 5;
        assert_eq!(
            refused(&image),
            "replica 2: cores are shared with another replica or do not exist"
        );
    }

    #[test]
    fn replicas_stay_in_ram_and_off_the_loader() {
        let mut image = Image::good();
        image.specs[0].ram.base = MACHINE.loader.base;
        assert_eq!(
            refused(&image),
            "replica 0: RAM is outside the board's RAM or overlaps the loader"
        );
        let mut image = Image::good();
        image.specs[1].shared.size = 0x1000;
        assert_eq!(
            refused(&image),
            "replica 1: shared area is too small or misplaced"
        );
        let mut image = Image::good();
        image.specs[2].shared.pa = SHARED + 2 * MIB;
        assert_eq!(
            refused(&image),
            "replica 0: replicas disagree on the shared area"
        );
    }

    #[test]
    fn replicas_are_numbered_without_gaps() {
        let mut image = Image::good();
        image.specs.remove(1);
        image.specs[0].replica_count = 2;
        image.extra.retain(|e| e.replica != 1);
        assert_eq!(
            refused(&image),
            "replica 1: replica indices are not contiguous"
        );
        let mut image = Image::good();
        image.specs[2].replica_count = 4;
        image.specs.push(spec(3, 4));
        image.specs.push(spec(3, 4));
        assert_eq!(
            refused(&image),
            "replica 3: boot spec duplicated or misfiled"
        );
    }

    #[test]
    fn the_kernel_reserve_is_ordered() {
        let mut image = Image::good();
        image.specs[1].tables_offset = SPEC_OFFSET;
        assert_eq!(
            refused(&image),
            "replica 1: kernel, spec and page tables overlap"
        );
    }

    #[test]
    fn kernel_mappings_stay_in_owned_memory() {
        let mut image = Image::good();
        let spec = &mut image.specs[1];
        spec.mappings[0] = Mapping {
            va: 0xFFFF_0000_0000_0000,
            pa: ram_of(0).base,
            size: 0x1000,
            attrs: attrs::WRITE,
        };
        spec.mapping_count = 1;
        assert_eq!(
            refused(&image),
            "replica 1: a kernel mapping reaches memory the replica does not own"
        );
        image.specs[1].mappings[0].attrs |= attrs::DEVICE;
        assert_eq!(image.check(), Ok(3), "device mappings may go anywhere");
    }

    #[test]
    fn parts_land_in_free_memory() {
        let mut image = Image::good();
        image.extra[1].dest_offset = 0;
        assert_eq!(
            refused(&image),
            "replica 1: a program or region part lies outside the replica's free memory"
        );
        let mut image = Image::good();
        image.extra[0].replica = 6;
        assert_eq!(
            refused(&image),
            "replica 6: a program or region part names no replica"
        );
        for bad in [
            ram_of(1).base,
            MACHINE.loader.base,
            SHARED,
            0x9000_0000,
            u64::MAX,
        ] {
            let mut image = Image::good();
            image.extra[3].dest_offset = bad;
            assert_eq!(
                refused(&image),
                "a region outside the replicas lies outside RAM or over memory it may not touch",
                "region at {bad:#x}"
            );
        }
    }

    #[test]
    fn an_image_needing_more_ram_than_the_firmware_reports_is_refused_naming_both() {
        let image = Image::good();
        // The fixture's replicas end at 0x4e000000, its region at 0x70100000.
        let machine = reporting(&[r(0x4000_0000, 0x0c00_0000)], &[]);
        assert_eq!(
            std::format!("{}", image.check_on(&machine).unwrap_err()),
            "this image needs RAM 0x40080000-0x70100000; the firmware reports \
             0x40000000-0x4c000000, which does not hold replica 2's RAM 0x4a000000-0x4e000000"
        );
        // A hole under replica 1 in two banks.
        let machine = reporting(
            &[r(0x4000_0000, 0x0700_0000), r(0x4800_0000, 0x3800_0000)],
            &[],
        );
        assert_eq!(
            std::format!("{}", image.check_on(&machine).unwrap_err()),
            "this image needs RAM 0x40080000-0x70100000; the firmware reports \
             0x40000000-0x47000000, 0x48000000-0x80000000, which does not hold replica 1's \
             RAM 0x46000000-0x4a000000"
        );
        // Not even the loader's own range.
        let machine = reporting(&[r(0x4400_0000, 0x3c00_0000)], &[]);
        let refusal = std::format!("{}", image.check_on(&machine).unwrap_err());
        assert!(
            refusal.ends_with("which does not hold the loader's range 0x40080000-0x41000000"),
            "{refusal}"
        );
        let machine = reporting(&[], &[]);
        let refusal = std::format!("{}", image.check_on(&machine).unwrap_err());
        assert!(refusal.contains("the firmware reports no RAM"), "{refusal}");
        // A region outside the replicas needs RAM too.
        let machine = reporting(&[r(0x4000_0000, 0x3000_0000)], &[]);
        let refusal = std::format!("{}", image.check_on(&machine).unwrap_err());
        assert!(
            refusal.ends_with("a region outside the replicas 0x70000000-0x70100000"),
            "{refusal}"
        );
    }

    #[test]
    fn more_ram_than_the_image_needs_is_fine() {
        let image = Image::good();
        for ram in [
            &[r(0x4000_0000, 0x4000_0000)][..],
            &[r(0, 0x1_0000_0000)],
            &[r(0x4000_0000, 0x4000_0000), r(0x8_0000_0000, 0x8000_0000)],
            // Touching banks merge.
            &[r(0x4000_0000, 0x0800_0000), r(0x4800_0000, 0x3800_0000)],
        ] {
            assert_eq!(image.check_on(&reporting(ram, &[])), Ok(3), "{ram:x?}");
        }
    }

    #[test]
    fn nothing_the_image_uses_may_be_reserved() {
        let image = Image::good();
        let ram = [r(0x4000_0000, 0x4000_0000)];
        let optee = "optee@47000000";
        let machine = reporting(&ram, &[(r(0x4700_0000, 0x20_0000), optee)]);
        assert_eq!(
            std::format!("{}", image.check_on(&machine).unwrap_err()),
            "this image needs RAM 0x40080000-0x70100000; the firmware reserves \
             0x47000000-0x47200000 (/reserved-memory/optee@47000000), which overlaps \
             replica 1's RAM 0x46000000-0x4a000000"
        );
        for (used, what) in [
            (0x4100_0000, "the shared area"),
            (0x4080_0000, "the loader's range"),
            (0x7000_0000, "a region outside the replicas"),
        ] {
            let machine = reporting(&ram, &[(r(used, 0x1000), "")]);
            let refusal = std::format!("{}", image.check_on(&machine).unwrap_err());
            assert!(refusal.contains(what), "{refusal}");
            assert!(refusal.contains("(/memreserve/)"), "{refusal}");
        }
        // Reserved memory the image does not use is no obstacle: below the loader, between
        // the replicas and the region, above everything.
        let machine = reporting(
            &ram,
            &[
                (r(0x4000_0000, 0x8_0000), "low"),
                (r(0x5000_0000, 0x100_0000), "middle"),
                (r(0x7f00_0000, 0x100_0000), "high"),
            ],
        );
        assert_eq!(image.check_on(&machine), Ok(3));
    }

    #[test]
    fn a_device_tree_region_is_placed_like_a_region_and_stores_nothing() {
        let mut image = Image::good();
        image.extra[3].kind = PartKind::DeviceTree as u32;
        image.extra[1].kind = PartKind::DeviceTree as u32;
        assert_eq!(image.check(), Ok(3));
        image.extra[3].dest_offset = ram_of(1).base;
        assert_eq!(
            refused(&image),
            "a region outside the replicas lies outside RAM or over memory it may not touch"
        );
        let mut image = Image::good();
        image.extra[1].kind = PartKind::DeviceTree as u32;
        image.extra[1].dest_offset = 0;
        assert_eq!(
            refused(&image),
            "replica 1: a program or region part lies outside the replica's free memory"
        );
    }

    #[test]
    fn the_initialiser_goes_where_the_specs_say() {
        let mut image = Image::good();
        image.specs[2].initialiser.mem_size = 0x1000;
        assert_eq!(
            refused(&image),
            "replica 2: the initialiser's place in the spec and the image disagree"
        );
    }
}
