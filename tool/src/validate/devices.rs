//! Board devices named by `device=` (Atoll extension): a `<memory_region device>` becomes
//! a fixed-address region over the device's registers, an `<irq device>` gets the device's
//! interrupt and trigger, so that one description serves every board. One name is built in
//! on every board, [`STATUS_DEVICE`]: the kernels' status page, which PDs may only read.

use atoll_boards::Device;

use super::*;
use crate::model::Trigger;
use crate::parse::IrqSource;

/// An `<irq>`'s interrupt once its device, if any, is looked up.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResolvedIrq {
    /// GIC interrupt id.
    pub(super) number: u64,
    /// Trigger mode.
    pub(super) trigger: Trigger,
    /// The `irq` or `device` attribute value.
    pub(super) span: Span,
}

/// The built-in device every board has: the status page, the first page of the kernel
/// shared area (`atoll_abi::shared::STATUS_PAGE_BYTES`), which holds the shared area's
/// header and every replica's status record, and nothing else.
pub const STATUS_DEVICE: &str = "atoll_status";

/// The status page on `board`: `(phys_addr, size)`.
pub(super) fn status_page(board: &Board) -> (u64, u64) {
    let base = crate::plan::kernel_shared_area(board).base;
    (base, atoll_abi::shared::STATUS_PAGE_BYTES)
}

/// The whole 4 KiB pages that hold `device`'s registers: `(phys_addr, size)`.
pub(super) fn device_pages(device: &Device) -> (u64, u64) {
    let base = device.regs.base - device.regs.base % PAGE_SIZE;
    let end = device.regs.end().saturating_add(PAGE_SIZE - 1);
    let end = end - end % PAGE_SIZE;
    (base, end - base)
}

impl Validator<'_> {
    /// The board's device `name` names, or `sdf::E027` (suggesting the board's devices, and
    /// for a memory region, `region`, the built-in [`STATUS_DEVICE`], which callers resolve
    /// before asking the board).
    pub(super) fn device(
        &mut self,
        name: &Spanned<String>,
        what: &str,
        region: bool,
    ) -> Option<&'static Device> {
        let board = self.board;
        if let Some(device) = board.device(&name.value) {
            return Some(device);
        }
        if name.value == STATUS_DEVICE {
            self.push(
                Diagnostic::error(
                    Code::UnknownDevice,
                    name.span,
                    format!(
                        "{what} names '{STATUS_DEVICE}', the kernels' status page, which has no \
                         interrupt"
                    ),
                )
                .with_help(format!(
                    "'{STATUS_DEVICE}' names only a memory region: <memory_region name=\"…\" \
                     device=\"{STATUS_DEVICE}\" />, mapped with perms=\"r\""
                )),
            );
            return None;
        }
        let mut names: Vec<&str> = board.devices.iter().map(|d| d.name).collect();
        if region {
            names.push(STATUS_DEVICE);
        }
        let listed = if names.is_empty() {
            format!("board '{}' names no devices", board.name)
        } else {
            format!("board '{}' has: {}", board.name, names.join(", "))
        };
        let help = match crate::diagnostics::did_you_mean(&name.value, names.iter().copied()) {
            Some(best) => format!("did you mean '{best}'? {listed}"),
            None => listed,
        };
        self.push(
            Diagnostic::error(
                Code::UnknownDevice,
                name.span,
                format!(
                    "{what} names device '{}', which board '{}' does not have",
                    name.value, board.name
                ),
            )
            .with_help(help),
        );
        None
    }

    /// Reports `sdf::E059` for a mapping of the status page that is not read-only (`perms`
    /// other than `r`) or not cached (the kernels write the page with normal, cacheable
    /// stores: a non-cacheable alias could read stale memory).
    pub(super) fn status_page_map(&mut self, map: &MapDecl, region: &MemoryRegion) {
        let read_only = map.perms.read && !map.perms.write && !map.perms.execute;
        if !read_only {
            let (span, given) = match map.perms_span {
                Some(span) => (span, ""),
                None => (
                    map.vaddr.span,
                    " (without 'perms', a mapping is read-write)",
                ),
            };
            self.push(
                Diagnostic::error(
                    Code::StatusPageMap,
                    span,
                    format!(
                        "the status page '{}' (device=\"{STATUS_DEVICE}\") may only be mapped \
                         read-only, with perms=\"r\"{given}",
                        map.mr.value
                    ),
                )
                .with_secondary(region.span, "status page declared here")
                .with_help(
                    "only the kernels write the status page, which holds every replica's status \
                     record; map it with perms=\"r\"",
                ),
            );
        }
        if !map.cached {
            self.push(
                Diagnostic::error(
                    Code::StatusPageMap,
                    map.cached_span.unwrap_or(map.vaddr.span),
                    format!(
                        "the status page '{}' (device=\"{STATUS_DEVICE}\") must be mapped cached",
                        map.mr.value
                    ),
                )
                .with_secondary(region.span, "status page declared here")
                .with_help(
                    "the status page is normal memory the kernels write through their caches; \
                     an uncached mapping could read stale values: leave out cached=\"false\"",
                ),
            );
        }
    }

    /// Every PD's `<irq>` elements with their interrupt numbers, in declaration order;
    /// `None` for one naming an unknown device (reported).
    pub(super) fn resolve_irqs(&mut self) -> Vec<Vec<Option<ResolvedIrq>>> {
        let decls = self.decls;
        decls
            .protection_domains
            .iter()
            .map(|pd| {
                pd.irqs
                    .iter()
                    .map(|irq| match &irq.source {
                        IrqSource::Number { irq, trigger } => Some(ResolvedIrq {
                            number: irq.value,
                            trigger: *trigger,
                            span: irq.span,
                        }),
                        IrqSource::Device(name) => {
                            self.device(name, "'<irq>'", false)
                                .map(|device| ResolvedIrq {
                                    number: u64::from(device.intid),
                                    trigger: match device.trigger {
                                        atoll_boards::Trigger::Level => Trigger::Level,
                                        atoll_boards::Trigger::Edge => Trigger::Edge,
                                    },
                                    span: name.span,
                                })
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use atoll_abi::spec::PhysRange;
    use atoll_boards::{DeviceKind, Trigger};

    use super::*;

    fn pages(base: u64, size: u64) -> (u64, u64) {
        device_pages(&Device {
            name: "d",
            kind: DeviceKind::VirtioMmio,
            regs: PhysRange { base, size },
            intid: 32,
            trigger: Trigger::Level,
        })
    }

    #[test]
    fn registers_round_out_to_whole_pages() {
        assert_eq!(pages(0x0a00_3e00, 0x200), (0x0a00_3000, 0x1000));
        assert_eq!(pages(0xff0e_0000, 0x1000), (0xff0e_0000, 0x1000));
        assert_eq!(pages(0x30be_0000, 0x1_0000), (0x30be_0000, 0x1_0000));
        assert_eq!(pages(0x1f00, 0x200), (0x1000, 0x2000));
        assert_eq!(pages(0x2000, 1), (0x2000, 0x1000));
    }
}
