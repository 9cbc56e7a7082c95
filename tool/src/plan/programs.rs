//! Where the loader puts the parts the boot specs do not describe: each PD's program, placed
//! in its replica's free RAM once it is read; each replica's boot program; each region's
//! contents. The image writer turns each [`PartPlace`] into a table entry as it is.

use atoll_abi::image::ALL_REPLICAS;
use atoll_abi::limits::PAGE_SIZE;

use super::{ImagePlacement, PdPlan, Plan, RegionHome, RegionPlan, ReplicaPlan};

/// Where the kernel image goes in every replica's RAM: at the start of the kernel's reserve.
pub const KERNEL_OFFSET: u64 = 0;

/// Where the loader writes one part of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartPlace {
    /// The replica whose RAM receives it, or `ALL_REPLICAS`.
    pub replica: u32,
    /// For one replica, the offset in its RAM; for all replicas, what the part's kind says
    /// (`atoll_abi::image`): an offset in each replica's RAM for a program every replica
    /// runs, a physical address for a region outside the replicas.
    pub dest_offset: u64,
    /// Bytes it occupies in memory; the loader zeroes past the bytes the image carries.
    pub mem_size: u64,
}

impl PartPlace {
    /// A part of `replica`'s RAM from physical address `pa`.
    fn in_replica(replica: &ReplicaPlan, pa: u64, mem_size: u64) -> Self {
        Self {
            replica: replica.index as u32,
            dest_offset: pa - replica.ram.base,
            mem_size,
        }
    }
}

/// What placing a PD's program needs to know of it, and what the report shows.
#[derive(Clone, Debug)]
pub struct ProgramShape {
    /// Bytes from its lowest to its highest page.
    pub mem_size: u64,
    /// Entry point.
    pub entry: u64,
    /// Loadable segments: virtual address, size, permissions.
    pub segments: Vec<(u64, u64, String)>,
}

/// What placing the programs asks of the step that reads them, PD by PD in plan order.
pub trait ProgramSource {
    /// Reads (and checks) `pd`'s program; `None` when it cannot be used (the source keeps
    /// why).
    fn read(&mut self, pd: &PdPlan) -> Option<ProgramShape>;
    /// Where the program just read goes in `replica`'s RAM: `None` when it does not fit.
    fn placed(&mut self, replica: &ReplicaPlan, pd: &PdPlan, place: Option<PartPlace>);
}

/// Places each PD's program, as `source` reads it, in its replica's free RAM: in PD order,
/// each at the first page boundary past the RAM already used (kernel objects, then earlier
/// programs), if it ends within the replica's RAM. Records where in the PD's plan and takes
/// the memory from the replica's free bytes.
pub fn place_programs(plan: &mut Plan, source: &mut dyn ProgramSource) {
    for replica in &mut plan.replicas {
        for index in 0..replica.protection_domains.len() {
            let Some(program) = source.read(&replica.protection_domains[index]) else {
                continue;
            };
            let place = replica.place_program(index, program);
            source.placed(replica, &replica.protection_domains[index], place);
        }
    }
}

impl ReplicaPlan {
    /// Places the program of the replica's PD number `pd` after what is placed already;
    /// `None` when it does not fit (or there is no such PD).
    fn place_program(&mut self, pd: usize, program: ProgramShape) -> Option<PartPlace> {
        let ram_end = self.ram.base + self.ram.size;
        let next = ram_end - self.free_bytes;
        let pa = next
            .checked_next_multiple_of(PAGE_SIZE)
            .filter(|pa| pa + program.mem_size <= ram_end)?;
        let place = PartPlace::in_replica(self, pa, program.mem_size);
        self.protection_domains.get_mut(pd)?.image = Some(ImagePlacement {
            phys_addr: pa,
            size: program.mem_size,
            entry: program.entry,
            segments: program.segments,
        });
        self.free_bytes = ram_end - (pa + program.mem_size);
        Some(place)
    }
}

/// Where a replica's boot program of `len` bytes at `pa` goes.
pub(super) fn boot_program_place(replica: &ReplicaPlan, pa: u64, len: usize) -> PartPlace {
    PartPlace::in_replica(replica, pa, len.next_multiple_of(PAGE_SIZE as usize) as u64)
}

impl RegionPlan {
    /// Where the loader writes this region's contents (its prefill file, if `prefilled`,
    /// then zeroes, as Microkit zeroes RAM-backed regions): in its replica's RAM, or at its
    /// own address when it lies outside the replicas. `Ok(None)` when the loader has nothing
    /// to do (the region is unused, a device, or the status page, which the loader sets up
    /// with the kernel shared area); an error when a device region or the status page would
    /// be prefilled.
    pub fn part_place(&self, plan: &Plan, prefilled: bool) -> Result<Option<PartPlace>, String> {
        let mem_size = self
            .size
            .next_multiple_of(self.page_size)
            .max(self.page_size);
        Ok(match (&self.home, self.phys_addr) {
            (RegionHome::Replica(name), Some(pa)) => plan
                .replicas
                .iter()
                .find(|r| &r.name == name)
                .map(|replica| PartPlace::in_replica(replica, pa, mem_size)),
            (RegionHome::Shared | RegionHome::FixedRam, Some(pa)) => Some(PartPlace {
                replica: ALL_REPLICAS,
                dest_offset: pa,
                mem_size,
            }),
            (RegionHome::Device, _) if prefilled => {
                return Err(
                    "a device region (fixed physical address outside RAM) cannot be prefilled"
                        .into(),
                );
            }
            (RegionHome::Status, _) if prefilled => {
                return Err("the status page (device=\"atoll_status\") cannot be prefilled".into());
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Range;

    fn replica(free_bytes: u64) -> ReplicaPlan {
        ReplicaPlan {
            name: "r".into(),
            index: 1,
            cores: vec![1],
            restart: false,
            hung_after_ms: None,
            ram: Range {
                base: 0x4000_0000,
                size: 0x10_0000,
            },
            free_bytes,
            objects: Vec::new(),
            protection_domains: Vec::new(),
            irqs: Vec::new(),
            domain_schedule: None,
        }
    }

    fn shape(mem_size: u64) -> ProgramShape {
        ProgramShape {
            mem_size,
            entry: 0x20_0000,
            segments: Vec::new(),
        }
    }

    #[test]
    fn programs_go_page_aligned_one_after_another_until_the_ram_ends() {
        // 0x8_0800 bytes free: the first program starts at the next page boundary.
        let mut r = replica(0x8_0800);
        let first = place(&mut r, 0x3000).unwrap();
        assert_eq!(first.dest_offset, 0x8_0000);
        assert_eq!((first.replica, first.mem_size), (1, 0x3000));
        assert_eq!(r.free_bytes, 0x7_d000);
        let second = place(&mut r, 0x1000).unwrap();
        assert_eq!(second.dest_offset, 0x8_3000);
        // What does not fit is refused and takes nothing.
        assert_eq!(place(&mut r, 0x7_d000), None);
        assert_eq!(r.free_bytes, 0x7_c000);
        assert!(place(&mut r, 0x7_c000).is_some());
        assert_eq!(r.free_bytes, 0);
    }

    /// Places a program for a PD added to `r`, checking its placement is recorded.
    fn place(r: &mut ReplicaPlan, mem_size: u64) -> Option<PartPlace> {
        let pd = r.protection_domains.len();
        r.protection_domains.push(crate::plan::PdPlan {
            name: format!("pd{pd}"),
            program_image: String::new(),
            priority: 0,
            budget_us: 0,
            period_us: 0,
            passive: false,
            restart: false,
            core: 1,
            status_index: pd as u32,
            domain: None,
            parent: None,
            capabilities: Vec::new(),
            root_capabilities: Vec::new(),
            maps: Vec::new(),
            symbols: Vec::new(),
            image: None,
        });
        let place = r.place_program(pd, shape(mem_size))?;
        let image = r.protection_domains[pd].image.as_ref().unwrap();
        assert_eq!(image.phys_addr, r.ram.base + place.dest_offset);
        Some(place)
    }

    /// Programs of given sizes (`None`: unreadable), and what placing them reported.
    struct Sizes(Vec<Option<u64>>, Vec<(String, Option<PartPlace>)>);

    impl ProgramSource for Sizes {
        fn read(&mut self, _: &PdPlan) -> Option<ProgramShape> {
            self.0.remove(0).map(shape)
        }
        fn placed(&mut self, _: &ReplicaPlan, pd: &PdPlan, place: Option<PartPlace>) {
            self.1.push((pd.name.clone(), place));
        }
    }

    #[test]
    fn placing_asks_for_each_program_in_pd_order() {
        let mut plan = crate::plan::boot_tests::planned(&atoll_boards::QEMU_VIRT_AARCH64, "0;1");
        let free = plan.replicas[1].free_bytes;
        let mut sizes = Sizes(vec![None, Some(free + 1)], Vec::new());
        place_programs(&mut plan, &mut sizes);
        // An unreadable program is not placed; one larger than the free RAM does not fit.
        assert_eq!(sizes.1, [("pd1".to_string(), None)]);
        assert_eq!(plan.replicas[1].free_bytes, free);
        assert!(
            plan.replicas
                .iter()
                .all(|r| r.protection_domains[0].image.is_none())
        );
    }

    #[test]
    fn regions_go_to_their_replica_or_their_own_address() {
        let mut plan = crate::plan::boot_tests::planned(&atoll_boards::QEMU_VIRT_AARCH64, "0;1");
        let base = plan.replicas[1].ram.base;
        let region = |home, phys_addr| RegionPlan {
            name: "mr".into(),
            size: 0x1800,
            page_size: PAGE_SIZE,
            phys_addr,
            home,
            prefill: None,
        };
        let name = plan.replicas[1].name.clone();
        plan.memory_regions.clear();
        let placed = region(RegionHome::Replica(name), Some(base + 0x5000));
        assert_eq!(
            placed.part_place(&plan, true),
            Ok(Some(PartPlace {
                replica: 1,
                dest_offset: 0x5000,
                mem_size: 0x2000
            }))
        );
        let shared = region(RegionHome::Shared, Some(0x9000_0000));
        assert_eq!(
            shared
                .part_place(&plan, false)
                .unwrap()
                .unwrap()
                .dest_offset,
            0x9000_0000
        );
        let device = region(RegionHome::Device, Some(0x900_0000));
        assert_eq!(device.part_place(&plan, false), Ok(None));
        assert!(device.part_place(&plan, true).is_err());
        let status = region(RegionHome::Status, Some(plan.kernel_shared.base));
        assert_eq!(status.part_place(&plan, false), Ok(None));
        assert!(status.part_place(&plan, true).is_err());
        assert_eq!(
            region(RegionHome::Unused, None).part_place(&plan, true),
            Ok(None)
        );
    }
}
