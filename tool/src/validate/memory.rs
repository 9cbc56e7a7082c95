//! Memory regions, fixed addresses and each PD's mappings.

use super::*;

impl Validator<'_> {
    pub(super) fn memory_region(&mut self, mr: &MrDecl) -> MemoryRegion {
        if let Some(name) = &mr.device {
            // The parser kept none of the attributes `device` excludes.
            let status_page = name.value == devices::STATUS_DEVICE;
            let pages = if status_page {
                Some(devices::status_page(self.board))
            } else {
                self.device(name, &format!("memory region '{}'", mr.name.value), true)
                    .map(devices::device_pages)
            };
            return MemoryRegion {
                name: mr.name.value.clone(),
                size: Some(pages.map_or(PAGE_SIZE, |(_, size)| size)),
                page_size: PAGE_SIZE,
                page_size_given: false,
                phys_addr: pages.map(|(base, _)| base),
                prefill: None,
                status_page,
                tool_allocated: false,
                replicas: Vec::new(),
                span: mr.name.span,
            };
        }
        let page_size = match &mr.page_size {
            Some(page) if page.value != PAGE_SIZE && page.value != LARGE_PAGE_SIZE => {
                self.push(
                    Diagnostic::error(
                        Code::PageSize,
                        page.span,
                        format!("page size {:#x} is not supported", page.value),
                    )
                    .with_help(format!(
                        "use {PAGE_SIZE:#x} (4 KiB) or {LARGE_PAGE_SIZE:#x} (2 MiB)"
                    )),
                );
                PAGE_SIZE
            }
            Some(page) => page.value,
            None => PAGE_SIZE,
        };
        let prefill = match (&mr.prefill_path, &mr.prefill_bootinfo) {
            (Some(path), Some(info)) => {
                self.push(
                    Diagnostic::error(
                        Code::Prefill,
                        info.span,
                        "a memory region takes 'prefill_path' or 'prefill_bootinfo', not both",
                    )
                    .with_secondary(path.span, "prefill file given here"),
                );
                Some(Prefill::File(path.value.clone()))
            }
            (Some(path), None) => Some(Prefill::File(path.value.clone())),
            (None, Some(_)) => Some(Prefill::DeviceTree),
            (None, None) => None,
        };
        let size = match &mr.size {
            Some(size) if size.value == 0 => {
                self.push(Diagnostic::error(
                    Code::RegionSize,
                    size.span,
                    "a memory region's size must not be zero",
                ));
                None
            }
            Some(size) if size.value % page_size != 0 => {
                let rounded = size.value.div_ceil(page_size).saturating_mul(page_size);
                self.push(
                    Diagnostic::error(
                        Code::RegionSize,
                        size.span,
                        format!(
                            "size {:#x} is not a multiple of the page size {page_size:#x}",
                            size.value
                        ),
                    )
                    .with_help(format!("round it up to {rounded:#x}")),
                );
                None
            }
            Some(size) => Some(size.value),
            None if prefill == Some(Prefill::DeviceTree) => Some(page_size),
            None => None,
        };
        if let Some(phys) = &mr.phys_addr {
            if phys.value % page_size != 0 {
                self.push(
                    Diagnostic::error(
                        Code::PhysAddr,
                        phys.span,
                        format!(
                            "physical address {:#x} is not a multiple of the page size \
                             {page_size:#x}",
                            phys.value
                        ),
                    )
                    .with_help("memory regions start on a page boundary"),
                );
            } else if phys.value.checked_add(size.unwrap_or(page_size)).is_none() {
                self.push(Diagnostic::error(
                    Code::PhysAddr,
                    phys.span,
                    "memory region extends beyond the 64-bit address space",
                ));
            }
        }
        MemoryRegion {
            name: mr.name.value.clone(),
            size,
            page_size,
            page_size_given: mr.page_size.is_some(),
            phys_addr: mr.phys_addr.as_ref().map(|p| p.value),
            status_page: false,
            prefill,
            tool_allocated: false,
            replicas: Vec::new(),
            span: mr.name.span,
        }
    }

    pub(super) fn fixed_overlaps(&mut self, regions: &[MemoryRegion]) {
        let decls = self.decls;
        let fixed: Vec<(usize, (u64, u64))> = regions
            .iter()
            .enumerate()
            .filter_map(|(index, mr)| {
                let base = mr.phys_addr?;
                Some((
                    index,
                    (base, base.saturating_add(mr.size.unwrap_or(mr.page_size))),
                ))
            })
            .collect();
        let ranges: Vec<(u64, u64)> = fixed.iter().map(|&(_, range)| range).collect();
        for (later, earlier) in overlapping(&ranges) {
            let ((index, (base, end)), (other, (other_base, other_end))) =
                (fixed[later], fixed[earlier]);
            let span = |i: usize| {
                let decl = &decls.memory_regions[i];
                decl.phys_addr
                    .as_ref()
                    .map(|p| p.span)
                    .or(decl.device.as_ref().map(|d| d.span))
                    .unwrap_or(regions[i].span)
            };
            self.push(
                Diagnostic::error(
                    Code::OverlappingRegions,
                    span(index),
                    format!(
                        "memory region '{}' [{base:#x}, {end:#x}) overlaps '{}' \
                         [{other_base:#x}, {other_end:#x})",
                        regions[index].name, regions[other].name
                    ),
                )
                .with_secondary(span(other), "overlapping region placed here"),
            );
        }
    }

    /// Checks one PD's mappings: region, alignment, range, overlap and setvars.
    pub(super) fn maps(
        &mut self,
        space: AddressSpace,
        decls: &[MapDecl],
        lookup: &Lookup<'_>,
        regions: &mut [MemoryRegion],
        used: &mut [bool],
    ) -> Vec<Map> {
        let mut maps: Vec<Map> = Vec::new();
        let mut extents: Vec<(u64, u64)> = Vec::new();
        let mut extent_maps: Vec<usize> = Vec::new();
        for map in decls {
            let Some(mr) = lookup.mr(&map.mr, "map", &mut self.diagnostics) else {
                continue;
            };
            used[mr] = true;
            let region = &regions[mr];
            if region.status_page {
                self.status_page_map(map, region);
            }
            if let Some(prefill_size) = &map.setvar_prefill_size
                && !matches!(region.prefill, Some(Prefill::File(_)))
            {
                self.push(
                    Diagnostic::error(
                        Code::Prefill,
                        prefill_size.span,
                        format!(
                            "'setvar_prefill_size' needs a prefilled region, and '{}' has no \
                             'prefill_path'",
                            region.name
                        ),
                    )
                    .with_secondary(region.span, "region declared here"),
                );
            }
            let (vaddr, page) = (map.vaddr.value, region.page_size);
            let size = region.size.unwrap_or(page);
            if vaddr % page != 0 {
                self.push(
                    Diagnostic::error(
                        Code::VaddrAlignment,
                        map.vaddr.span,
                        format!(
                            "vaddr {vaddr:#x} is not a multiple of the page size {page:#x} of '{}'",
                            region.name
                        ),
                    )
                    .with_help(format!("use {:#x}", vaddr - vaddr % page)),
                );
            }
            match vaddr.checked_add(size) {
                Some(end) if end <= space.stack_bottom => {
                    extents.push((vaddr, end));
                    extent_maps.push(maps.len());
                }
                _ => self.push(
                    Diagnostic::error(
                        Code::VaddrRange,
                        map.vaddr.span,
                        format!(
                            "mapping of '{}' ({size:#x} bytes at {vaddr:#x}) does not end at or \
                             below {:#x}, the bottom of the PD's stack",
                            region.name, space.stack_bottom
                        ),
                    )
                    .with_help(
                        "mappings must end at or below the bottom of the PD's stack, which sits \
                         under the IPC buffer and a guard page at the top of the 1 TiB user \
                         address space",
                    ),
                ),
            }
            if !regions[mr].replicas.contains(&space.replica) {
                regions[mr].replicas.push(space.replica);
                regions[mr].replicas.sort_unstable();
            }
            maps.push(Map {
                mr,
                vaddr,
                perms: map.perms,
                cached: map.cached,
                setvar_vaddr: self.symbol_opt(space.pd, map.setvar_vaddr.as_ref()),
                setvar_size: self.symbol_opt(space.pd, map.setvar_size.as_ref()),
                setvar_prefill_size: self.symbol_opt(space.pd, map.setvar_prefill_size.as_ref()),
                span: map.vaddr.span,
            });
        }
        for (later, earlier) in overlapping(&extents) {
            let (map, other) = (&maps[extent_maps[later]], &maps[extent_maps[earlier]]);
            let ((start, end), (other_start, other_end)) = (extents[later], extents[earlier]);
            self.push(
                Diagnostic::error(
                    Code::OverlappingMaps,
                    map.span,
                    format!(
                        "mapping of '{}' at [{start:#x}, {end:#x}) overlaps the mapping of '{}' \
                         at [{other_start:#x}, {other_end:#x})",
                        regions[map.mr].name, regions[other.mr].name
                    ),
                )
                .with_secondary(other.span, "overlapping mapping here"),
            );
        }
        maps
    }
}

/// Microkit's page-size upgrade: a region whose page size was not given gets 2 MiB pages when
/// its size, physical address and every mapping address are 2 MiB aligned.
pub(super) fn upgrade_page_size(index: usize, mr: &mut MemoryRegion, pds: &[ProtectionDomain]) {
    let aligned = |value: u64| value.is_multiple_of(LARGE_PAGE_SIZE);
    let Some(size) = mr.size else { return };
    let maps_aligned = pds
        .iter()
        .flat_map(|pd| &pd.maps)
        .filter(|map| map.mr == index)
        .all(|map| aligned(map.vaddr));
    if !mr.page_size_given && aligned(size) && mr.phys_addr.is_none_or(aligned) && maps_aligned {
        mr.page_size = LARGE_PAGE_SIZE;
    }
}

/// A PD's address space, as the mapping checks need it.
#[derive(Clone, Copy)]
pub(super) struct AddressSpace {
    pub(super) pd: usize,
    pub(super) replica: usize,
    /// Mappings must end at or below this address.
    pub(super) stack_bottom: u64,
}

/// Overlapping pairs `(later, earlier)` among half-open `ranges`, by index, in index order;
/// every range that overlaps some other is reported at least once, in O(n log n).
pub(super) fn overlapping(ranges: &[(u64, u64)]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].0, i));
    let mut reach: Option<usize> = None;
    let mut pairs = Vec::new();
    for i in order {
        match reach {
            Some(r) => {
                if ranges[i].0 < ranges[r].1 {
                    pairs.push((i.max(r), i.min(r)));
                }
                if ranges[i].1 > ranges[r].1 {
                    reach = Some(i);
                }
            }
            None => reach = Some(i),
        }
    }
    pairs.sort_unstable();
    pairs
}
