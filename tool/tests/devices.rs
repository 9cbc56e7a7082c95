//! Board devices by name (Atoll extension): `<memory_region device>` and `<irq device>`
//! resolve to each board's registers and interrupt, exclude the attributes they replace,
//! and name only devices the board has.
#![forbid(unsafe_code)]

use atoll_boards::{BOARDS, Board};
use atoll_tool::diagnostics::{Code, Diagnostic};
use atoll_tool::model::Trigger;

/// A driver PD mapping `device`'s registers and taking its interrupt.
fn driver(device: &str) -> String {
    format!(
        r#"<system>
  <memory_region name="regs" device="{device}" />
  <protection_domain name="driver" priority="200">
    <program_image path="driver.elf" />
    <map mr="regs" vaddr="0x200_0000" perms="rw" cached="false" setvar_vaddr="regs" />
    <irq device="{device}" id="0" />
  </protection_domain>
</system>"#
    )
}

fn errors(text: &str, board: &Board, strict: bool) -> Vec<Diagnostic> {
    let checked = atoll_tool::check(text, board, strict);
    assert!(checked.system.is_none());
    checked.diagnostics
}

fn codes(diagnostics: &[Diagnostic]) -> Vec<Code> {
    diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn every_device_of_every_board_resolves_to_its_pages_and_interrupt() {
    let mut count = 0;
    for board in BOARDS {
        for device in board.devices {
            let checked = atoll_tool::check(&driver(device.name), board, false);
            let what = (board.name, device.name);
            assert!(
                checked.diagnostics.is_empty(),
                "{what:?}: {:#?}",
                checked.diagnostics
            );
            assert!(checked.plan.is_some(), "{what:?}");
            let system = checked.system.expect("model");
            let region = &system.memory_regions["regs"];
            let base = device.regs.base & !0xfff;
            let end = (device.regs.base + device.regs.size).next_multiple_of(0x1000);
            assert_eq!(region.phys_addr, Some(base), "{what:?}");
            assert_eq!(region.size, Some(end - base), "{what:?}");
            assert_eq!(region.page_size, 0x1000, "{what:?}");
            assert!(
                region.prefill.is_none() && !region.tool_allocated,
                "{what:?}"
            );
            let irq = &system.protection_domains["driver"].irqs[0];
            assert_eq!(irq.number, device.intid, "{what:?}");
            let trigger = match device.trigger {
                atoll_boards::Trigger::Level => Trigger::Level,
                atoll_boards::Trigger::Edge => Trigger::Edge,
            };
            assert_eq!(irq.trigger, trigger, "{what:?}");
            count += 1;
        }
    }
    assert!(count >= 3);
}

#[test]
fn the_boards_devices_are_where_qemu_puts_them() {
    let resolved = |board: &Board, device: &str| {
        let system = atoll_tool::check(&driver(device), board, false)
            .system
            .expect("model");
        let region = &system.memory_regions["regs"];
        let irq = &system.protection_domains["driver"].irqs[0];
        (region.phys_addr, region.size, irq.number, irq.trigger)
    };
    let virt = &atoll_boards::QEMU_VIRT_AARCH64;
    let (zcu, imx) = (&atoll_boards::ZCU102, &atoll_boards::IMX8MP_EVK);
    // The NIC and the disk of `virt` are in different pages.
    assert_eq!(
        resolved(virt, "net0"),
        (Some(0x0a00_3000), Some(0x1000), 79, Trigger::Edge)
    );
    assert_eq!(
        resolved(virt, "blk0"),
        (Some(0x0a00_2000), Some(0x1000), 71, Trigger::Edge)
    );
    assert_eq!(
        resolved(zcu, "net0"),
        (Some(0xff0e_0000), Some(0x1000), 95, Trigger::Level)
    );
    assert_eq!(
        resolved(zcu, "sd1"),
        (Some(0xff17_0000), Some(0x1000), 81, Trigger::Level)
    );
    assert_eq!(
        resolved(imx, "net0"),
        (Some(0x30be_0000), Some(0x1_0000), 150, Trigger::Level)
    );
    assert_eq!(
        resolved(imx, "sd1"),
        (Some(0x30b5_0000), Some(0x1_0000), 55, Trigger::Level)
    );
}

#[test]
fn one_description_checks_clean_on_every_board() {
    let text = include_str!("fixtures/examples/devices.xml");
    for board in BOARDS {
        let checked = atoll_tool::check(text, board, false);
        assert!(
            checked.diagnostics.is_empty(),
            "{}: {:#?}",
            board.name,
            checked.diagnostics
        );
        assert!(checked.plan.is_some(), "{}", board.name);
    }
}

#[test]
fn device_excludes_what_it_sets() {
    let board = &atoll_boards::QEMU_VIRT_AARCH64;
    for (attribute, value) in [
        ("phys_addr", "0xa003000"),
        ("size", "0x1000"),
        ("page_size", "0x1000"),
        ("prefill_path", "regs.bin"),
        ("prefill_bootinfo", "fdt"),
    ] {
        let text = driver("net0").replace(
            r#"device="net0" />"#,
            &format!(r#"device="net0" {attribute}="{value}" />"#),
        );
        let diagnostics = errors(&text, board, false);
        assert_eq!(
            codes(&diagnostics),
            [Code::ConflictingAttributes],
            "{attribute}"
        );
        let diagnostic = &diagnostics[0];
        assert_eq!(&text[diagnostic.span.start..diagnostic.span.end], value);
        assert!(diagnostic.message.contains(&format!("'{attribute}'")));
        assert_eq!(diagnostic.secondary.len(), 1);
    }
    for (attribute, value) in [("irq", "79"), ("trigger", "edge")] {
        let text = driver("net0").replace(
            r#"id="0" />"#,
            &format!(r#"id="0" {attribute}="{value}" />"#),
        );
        let diagnostics = errors(&text, board, false);
        assert_eq!(
            codes(&diagnostics),
            [Code::ConflictingAttributes],
            "{attribute}"
        );
        assert_eq!(
            &text[diagnostics[0].span.start..diagnostics[0].span.end],
            value
        );
    }
}

#[test]
fn unknown_devices_are_named_with_the_boards_devices() {
    let zcu = &atoll_boards::ZCU102;
    let text = driver("nte0");
    let diagnostics = errors(&text, zcu, false);
    assert_eq!(
        codes(&diagnostics),
        [Code::UnknownDevice, Code::UnknownDevice]
    );
    for diagnostic in &diagnostics {
        assert_eq!(&text[diagnostic.span.start..diagnostic.span.end], "nte0");
        let help = diagnostic.help.as_deref().unwrap_or_default();
        assert!(help.contains("did you mean 'net0'?"), "{help}");
        assert!(help.contains("net0, sd0, sd1"), "{help}");
    }
    // A device of another board: no close name, but the list.
    let diagnostics = errors(&driver("blk0"), zcu, false);
    assert_eq!(
        codes(&diagnostics),
        [Code::UnknownDevice, Code::UnknownDevice]
    );
    let help = diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(!help.contains("did you mean"), "{help}");
    assert!(
        help.contains("board 'zcu102' has: net0, sd0, sd1"),
        "{help}"
    );
}

#[test]
fn device_is_an_extension_rejected_by_strict() {
    let diagnostics = errors(&driver("net0"), &atoll_boards::QEMU_VIRT_AARCH64, true);
    assert_eq!(
        codes(&diagnostics),
        [Code::StrictExtension, Code::StrictExtension]
    );
}

#[test]
fn a_device_in_two_regions_overlaps() {
    let text = driver("net0").replace(
        r#"<memory_region name="regs" device="net0" />"#,
        r#"<memory_region name="regs" device="net0" />
  <memory_region name="again" device="net0" />"#,
    );
    let diagnostics = errors(&text, &atoll_boards::QEMU_VIRT_AARCH64, false);
    assert!(
        codes(&diagnostics).contains(&Code::OverlappingRegions),
        "{diagnostics:#?}"
    );
}

#[test]
fn a_device_interrupt_claimed_twice_is_a_duplicate() {
    let text = driver("net0").replace(
        r#"<irq device="net0" id="0" />"#,
        r#"<irq device="net0" id="0" />
    <irq irq="79" id="1" />"#,
    );
    let diagnostics = errors(&text, &atoll_boards::QEMU_VIRT_AARCH64, false);
    assert_eq!(codes(&diagnostics), [Code::DuplicateIrq]);
}

/// A PD on replica `io` reading the status page, with `map` as its `<map>`'s extra
/// attributes.
fn status_reader(map: &str) -> String {
    format!(
        r#"<system>
  <memory_region name="replica_status" device="atoll_status" />
  <protection_domain name="io" priority="150">
    <program_image path="io.elf" />
    <map mr="replica_status" vaddr="0x1000_0000" {map} setvar_vaddr="replica_status" />
  </protection_domain>
</system>"#
    )
}

#[test]
fn the_status_page_is_the_first_page_of_every_boards_kernel_shared_area() {
    let expected = [
        ("qemu_virt_aarch64", 0x4100_0000),
        ("zcu102", 0x0100_0000),
        ("imx8mp_evk", 0x4100_0000),
    ];
    assert_eq!(BOARDS.len(), expected.len());
    for (board, (name, base)) in BOARDS.iter().zip(expected) {
        assert_eq!(board.name, name);
        assert_eq!(atoll_tool::plan::kernel_shared_area(board).base, base);
        let checked = atoll_tool::check(&status_reader(r#"perms="r""#), board, false);
        assert!(
            checked.diagnostics.is_empty(),
            "{name}: {:#?}",
            checked.diagnostics
        );
        let system = checked.system.expect("model");
        let region = &system.memory_regions["replica_status"];
        assert!(region.status_page, "{name}");
        assert_eq!(region.phys_addr, Some(base), "{name}");
        assert_eq!(
            region.size,
            Some(atoll_abi::shared::STATUS_PAGE_BYTES),
            "{name}"
        );
        assert_eq!(region.page_size, 0x1000, "{name}");
        let plan = checked.plan.expect("plan");
        assert_eq!(plan.kernel_shared.base, base, "{name}");
        let planned = &plan.memory_regions[0];
        assert_eq!(planned.home, atoll_tool::plan::RegionHome::Status, "{name}");
        assert_eq!(planned.phys_addr, Some(base), "{name}");
        assert_eq!(planned.size, 0x1000, "{name}");
        // Mapped as it was asked: read-only, normal cacheable memory, not a device.
        let pd = &plan.replicas[0].protection_domains[0];
        let map = pd
            .maps
            .iter()
            .find(|m| m.what == "replica_status")
            .expect("the mapping");
        assert_eq!(
            (map.vaddr, map.phys_addr, map.size),
            (0x1000_0000, Some(base), 0x1000),
            "{name}"
        );
        assert_eq!(map.perms, "r--", "{name}");
        assert!(map.cached, "{name}");
        // Nothing of it is carved out of the RAM split: the pool stays empty.
        assert_eq!(plan.shared_pool.size, 0, "{name}");
    }
}

#[test]
fn the_status_page_is_built_in_and_only_a_memory_region() {
    for board in BOARDS {
        assert!(
            board.device("atoll_status").is_none(),
            "{} has a device of the built-in name",
            board.name
        );
    }
    let board = &atoll_boards::QEMU_VIRT_AARCH64;
    // Not an interrupt.
    let text = status_reader(r#"perms="r""#).replace(
        "<map ",
        r#"<irq device="atoll_status" id="0" />
    <map "#,
    );
    let diagnostics = errors(&text, board, false);
    assert_eq!(codes(&diagnostics), [Code::UnknownDevice]);
    assert!(
        diagnostics[0]
            .message
            .contains("status page, which has no interrupt"),
        "{}",
        diagnostics[0].message
    );
    // A close name is suggested for a region, beside the board's devices.
    let text = status_reader(r#"perms="r""#)
        .replace(r#"device="atoll_status""#, r#"device="atoll_stats""#);
    let diagnostics = errors(&text, board, false);
    assert_eq!(codes(&diagnostics), [Code::UnknownDevice]);
    let help = diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("did you mean 'atoll_status'?"), "{help}");
    assert!(help.contains("net0, blk0, atoll_status"), "{help}");
    // It is an extension.
    let diagnostics = errors(&status_reader(r#"perms="r""#), board, true);
    assert_eq!(codes(&diagnostics), [Code::StrictExtension]);
    // One page, so two regions over it overlap.
    let text = status_reader(r#"perms="r""#).replace(
        r#"<memory_region name="replica_status" device="atoll_status" />"#,
        r#"<memory_region name="replica_status" device="atoll_status" />
  <memory_region name="again" device="atoll_status" />"#,
    );
    let diagnostics = errors(&text, board, false);
    assert!(
        codes(&diagnostics).contains(&Code::OverlappingRegions),
        "{diagnostics:#?}"
    );
}

#[test]
fn the_status_page_may_only_be_mapped_read_only_and_cached() {
    let board = &atoll_boards::QEMU_VIRT_AARCH64;
    for (map, at) in [
        (r#"perms="rw""#, "rw"),
        (r#"perms="rx""#, "rx"),
        (r#"perms="rwx""#, "rwx"),
        // Without perms a mapping is read-write: the error points at the mapping.
        ("", "0x1000_0000"),
        (r#"perms="r" cached="false""#, "false"),
    ] {
        let text = status_reader(map);
        let diagnostics = errors(&text, board, false);
        assert_eq!(codes(&diagnostics), [Code::StatusPageMap], "{map}");
        let diagnostic = &diagnostics[0];
        assert_eq!(
            &text[diagnostic.span.start..diagnostic.span.end],
            at,
            "{map}"
        );
        assert!(
            diagnostic.message.contains("'replica_status'"),
            "{}",
            diagnostic.message
        );
        assert_eq!(diagnostic.secondary.len(), 1, "{map}");
    }
    let diagnostics = errors(&status_reader(r#"perms="rw" cached="false""#), board, false);
    assert_eq!(
        codes(&diagnostics),
        [Code::StatusPageMap, Code::StatusPageMap]
    );
    assert!(diagnostics[0].message.contains("read-only"));
    assert!(diagnostics[1].message.contains("cached"));
    // Any other region may still be mapped writable and uncached.
    assert!(
        atoll_tool::check(&driver("net0"), board, false)
            .diagnostics
            .is_empty()
    );
}

#[test]
fn the_status_page_is_read_by_pds_of_several_replicas_on_every_board() {
    let text = include_str!("fixtures/examples/status_page.xml");
    for board in BOARDS {
        let checked = atoll_tool::check(text, board, false);
        assert!(
            checked.diagnostics.is_empty(),
            "{}: {:#?}",
            board.name,
            checked.diagnostics
        );
        let system = checked.system.expect("model");
        assert_eq!(system.memory_regions["replica_status"].replicas, [0, 1]);
        let plan = checked.plan.expect("plan");
        let base = plan.kernel_shared.base;
        let region = &plan.memory_regions[0];
        // Mapped in two replicas, yet not a shared-pool region: it stays where it is.
        assert_eq!(region.home, atoll_tool::plan::RegionHome::Status);
        assert_eq!(region.phys_addr, Some(base));
        assert_eq!(plan.shared_pool.size, 0);
        for replica in &plan.replicas {
            let map = &replica.protection_domains[0].maps[0];
            assert_eq!(
                (map.phys_addr, map.perms.as_str(), map.cached),
                (Some(base), "r--", true)
            );
        }
    }
}
