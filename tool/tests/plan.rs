//! Planning and reports: a golden JSON report, deterministic outputs, and the plan's
//! Microkit capability layout checked on a known system.
#![forbid(unsafe_code)]

use std::path::Path;

use atoll_tool::report;

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;

fn reference() -> (String, atoll_tool::plan::Plan) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/sdf_reference.xml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    (text, plan)
}

#[test]
fn json_report_of_the_reference_system() {
    let (_, plan) = reference();
    insta::assert_snapshot!(report::json(&plan));
}

#[test]
fn text_report_and_diagram_of_the_reference_system() {
    let (_, plan) = reference();
    insta::assert_snapshot!(report::text(&plan));
    insta::assert_snapshot!(report::dot(&plan));
}

#[test]
fn outputs_are_identical_for_identical_input() {
    let (text, first) = reference();
    let again = atoll_tool::check(&text, BOARD, false).plan.expect("a plan");
    assert_eq!(report::json(&first), report::json(&again));
    assert_eq!(report::text(&first), report::text(&again));
    assert_eq!(report::dot(&first), report::dot(&again));
}

#[test]
fn microkit_capability_layout_and_badges() {
    use atoll_abi::pd::{FAULT_BADGE, PPC_BADGE};
    let (_, plan) = reference();
    let pd = |name: &str| {
        plan.replicas
            .iter()
            .flat_map(|r| &r.protection_domains)
            .find(|p| p.name == name)
            .expect("pd")
    };
    let cap = |pd_name: &str, slot: u32| {
        pd(pd_name)
            .capabilities
            .iter()
            .find(|c| c.slot == slot)
            .cloned()
    };
    // app calls kv over channel end 4 (kv's end id 0): slot 74 + 4, badge PPC | 0.
    let ppc = cap("app", 78).expect("PPC capability");
    assert_eq!((ppc.object.as_str(), ppc.badge), ("endpoint_kv", PPC_BADGE));
    // kv receives PPCs, so its input object is an endpoint; plugin's is a notification.
    assert_eq!(cap("kv", 1).expect("input").object, "endpoint_kv");
    assert_eq!(
        cap("plugin", 1).expect("input").object,
        "notification_plugin"
    );
    // plugin is child 0 of app: its faults go to app's endpoint with FAULT | 0, and app
    // holds its TCB at 202 + 0.
    let fault = cap("plugin", 2).expect("fault endpoint");
    assert_eq!(
        (fault.object.as_str(), fault.badge),
        ("endpoint_app", FAULT_BADGE)
    );
    assert_eq!(cap("app", 202).expect("child TCB").object, "tcb_plugin");
    // kv is passive: it holds the monitor endpoint at slot 5.
    assert_eq!(
        cap("kv", 5).expect("monitor endpoint").object,
        "monitor_endpoint"
    );
    // uart (core 1) and app (core 0) are on different replicas: app's notify is a doorbell
    // that sets bit 1 (uart's end id) in uart's pending word.
    let bell = cap("app", 13).expect("output notification");
    assert!(bell.object.starts_with("doorbell_"), "{bell:?}");
    assert_eq!(bell.badge, 1 << 1);
    let channel = plan
        .channels
        .iter()
        .find(|c| c.cross_replica)
        .expect("cross-replica channel");
    assert_eq!(channel.doorbells.len(), 2, "both ends notify");
    // The IRQ is routed to uart's core.
    let irq = plan
        .replicas
        .iter()
        .flat_map(|r| &r.irqs)
        .find(|i| i.irq == 33)
        .expect("irq 33");
    assert_eq!((irq.pd.as_str(), irq.core, irq.id), ("uart", 1, 0));
}

/// The default system at the repository root, planned for QEMU virt: the golden report.
#[test]
fn json_report_of_the_default_system() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../system.xml");
    let text = std::fs::read_to_string(path).expect("system.xml at the repository root");
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    let names: Vec<&str> = plan.replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["io", "rt", "storage"]);
    insta::assert_snapshot!(report::json(&plan));
}

/// `<replica ram>` gives a replica exactly that much RAM; the others share the rest.
#[test]
fn explicit_replica_ram() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/replica_ram.xml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    let sizes: Vec<u64> = plan.replicas.iter().map(|r| r.ram.size).collect();
    assert_eq!(sizes[1], 0x400_0000);
    assert_eq!(sizes[0], sizes[2]);
    assert!(sizes[0] > sizes[1]);
    // An odd size is refused at the attribute.
    let odd = text.replace("ram=\"0x400_0000\"", "ram=\"0x30_0000\"");
    let checked = atoll_tool::check(&odd, BOARD, false);
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("multiple of 2 MiB")),
        "{:#?}",
        checked.diagnostics
    );
}

/// A region at a fixed address inside RAM stays there and no replica's RAM covers it.
#[test]
fn fixed_region_in_ram_is_outside_every_replica() {
    let text = r#"<system>
  <memory_region name="buffer" size="0x1000" phys_addr="0x5000_0000" />
  <protection_domain name="app" priority="10">
    <program_image path="app.elf" />
    <map mr="buffer" vaddr="0x500_0000" />
  </protection_domain>
</system>"#;
    let checked = atoll_tool::check(text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    let region = &plan.memory_regions[0];
    assert_eq!(region.phys_addr, Some(0x5000_0000));
    assert_eq!(region.home, atoll_tool::plan::RegionHome::FixedRam);
    for replica in &plan.replicas {
        let (base, end) = (replica.ram.base, replica.ram.base + replica.ram.size);
        assert!(
            end <= 0x5000_0000 || base >= 0x5000_1000,
            "replica {} covers the region",
            replica.name
        );
    }
}

/// `setvar_prefill_size` is planned as the length of the region's prefill file, patched in
/// once the file is read (it was once planned as placeholder text, which no 8-byte symbol
/// could take).
#[test]
fn a_prefill_size_symbol_is_the_length_of_the_regions_file() {
    let (_, plan) = reference();
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&plan)).expect("the JSON report");
    let mut found = Vec::new();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("symbol").and_then(|s| s.as_str()) == Some("cfg_len") {
                    found.push(map["value"].clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert_eq!(
        found,
        vec![serde_json::json!({ "prefill_size": "cfg_blob" })],
        "cfg_len's patch"
    );
}

/// A PD with `smc="true"` holds the replica's SMC capability in Microkit's slot 7; a PD
/// without it has nothing there.
#[test]
fn an_smc_pd_holds_the_firmware_capability_in_slot_seven() {
    use atoll_abi::pd::slot;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/smc.xml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    let at_slot = |name: &str| {
        plan.replicas
            .iter()
            .flat_map(|r| &r.protection_domains)
            .find(|p| p.name == name)
            .expect("pd")
            .capabilities
            .iter()
            .find(|c| c.slot == slot::ARM_SMC)
            .map(|c| c.object.clone())
    };
    assert_eq!(at_slot("firmware_client").as_deref(), Some("smc"));
    assert_eq!(at_slot("plain"), None);
}

/// The status page (`device="atoll_status"`) in the reports: its home is `status`, at the
/// kernel shared area's base, and each PD maps it read-only and cached.
#[test]
fn the_status_page_has_a_home_of_its_own_in_the_reports() {
    let text = include_str!("fixtures/examples/status_page.xml");
    let checked = atoll_tool::check(text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let plan = checked.plan.expect("a plan");
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&plan)).expect("the JSON report");
    assert_eq!(json["kernel_shared"]["base"], "0x41000000");
    assert_eq!(
        json["memory_regions"],
        serde_json::json!([{
            "name": "replica_status",
            "size": "0x1000",
            "page_size": "0x1000",
            "phys_addr": "0x41000000",
            "home": "status",
            "prefill": null,
        }])
    );
    for replica in json["replicas"].as_array().expect("replicas") {
        let map = &replica["protection_domains"][0]["maps"][0];
        assert_eq!(
            *map,
            serde_json::json!({
                "what": "replica_status",
                "vaddr": "0x10000000",
                "phys_addr": "0x41000000",
                "size": "0x1000",
                "perms": "r--",
                "cached": true,
            })
        );
    }
    let text = report::text(&plan);
    assert!(
        text.contains("at 0x41000000   (status page, read-only)"),
        "{text}"
    );
}
