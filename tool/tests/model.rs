//! The validated model: defaults, replica placement, cross-replica marking, page-size upgrade.
#![forbid(unsafe_code)]

use atoll_tool::model::{Perms, Prefill, SystemDescription, Trigger};

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;

fn model(text: &str) -> SystemDescription {
    let checked = atoll_tool::check(text, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    checked.system.expect("model")
}

#[test]
fn reference_example_model() {
    let system = model(include_str!("fixtures/examples/sdf_reference.xml"));
    let replicas: Vec<(&str, &[u32])> = system
        .replicas
        .values()
        .map(|r| (r.name.as_str(), r.cores.as_slice()))
        .collect();
    assert_eq!(replicas, [("core0", &[0][..]), ("core1", &[1][..])]);
    assert!(system.replicas.values().all(|r| !r.declared));
    let names: Vec<&str> = system
        .protection_domains
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["uart", "kv", "app", "plugin"]);
    let uart = &system.protection_domains["uart"];
    assert_eq!((uart.priority, uart.core, uart.replica), (200, 1, 1));
    assert_eq!(
        (uart.budget, uart.period, uart.stack_size),
        (1000, 1000, 0x2000)
    );
    assert!(uart.fpu && !uart.passive);
    assert_eq!(uart.irqs[0].number, 33);
    assert_eq!(uart.irqs[0].trigger, Trigger::Level);
    assert!(!uart.maps[0].cached);
    assert_eq!(
        uart.maps[1].perms,
        Perms {
            read: true,
            write: false,
            execute: false
        }
    );
    let kv = &system.protection_domains["kv"];
    assert!(kv.passive);
    assert_eq!(kv.stack_size, 0x4000);
    let app = &system.protection_domains["app"];
    assert_eq!((app.budget, app.period), (2000, 10000));
    let plugin = &system.protection_domains["plugin"];
    assert_eq!(plugin.parent, Some((2, 0)));
    assert_eq!(system.replicas["core0"].protection_domains, [1, 2, 3]);
    assert_eq!(system.replicas["core1"].protection_domains, [0]);
    let [notify, ppc] = &system.channels[..] else {
        panic!("two channels")
    };
    assert!(notify.cross_replica && !ppc.cross_replica);
    assert_eq!(notify.ends[1].setvar_id.as_deref(), Some("uart_ch"));
    assert!(ppc.ends[1].pp && !ppc.ends[0].pp && !ppc.ends[1].notify);
    let tx_ring = &system.memory_regions["tx_ring"];
    assert_eq!(tx_ring.replicas, [0, 1]);
    let cfg = &system.memory_regions["cfg_blob"];
    assert_eq!(
        (cfg.size, &cfg.prefill),
        (None, &Some(Prefill::File("cfg.bin".into())))
    );
    assert_eq!(system.irqs().count(), 1);
}

#[test]
fn declared_replicas_place_by_attribute_then_cpu() {
    let system = model(
        r#"<system>
  <replica name="io" cores="0" />
  <replica name="rt" cores="2-3, 1" />
  <protection_domain name="a" replica="rt"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="b" cpu="3">
    <program_image path="b.elf" />
    <protection_domain name="c" id="1"><program_image path="c.elf" /></protection_domain>
  </protection_domain>
  <protection_domain name="d"><program_image path="d.elf" /></protection_domain>
</system>"#,
    );
    assert_eq!(system.replicas["rt"].cores, [1, 2, 3]);
    let place = |name: &str| {
        let pd = &system.protection_domains[name];
        (pd.replica, pd.core)
    };
    assert_eq!(place("a"), (1, 1));
    assert_eq!(place("b"), (1, 3));
    assert_eq!(
        place("c"),
        (1, 3),
        "a child without cpu or replica stays with its parent"
    );
    assert_eq!(place("d"), (0, 0));
}

#[test]
fn page_size_upgrades_only_when_everything_is_aligned() {
    let system = model(
        r#"<system>
  <memory_region name="big" size="0x400000" />
  <memory_region name="odd" size="0x400000" />
  <memory_region name="given" size="0x400000" page_size="0x1000" />
  <protection_domain name="a">
    <program_image path="a.elf" />
    <map mr="big" vaddr="0x4000_0000" />
    <map mr="odd" vaddr="0x5000_1000" />
    <map mr="given" vaddr="0x6000_0000" />
  </protection_domain>
</system>"#,
    );
    let page = |name: &str| system.memory_regions[name].page_size;
    assert_eq!(
        (page("big"), page("odd"), page("given")),
        (0x20_0000, 0x1000, 0x1000)
    );
}

#[test]
fn setvar_region_paddr_marks_tool_allocated() {
    let system = model(
        r#"<system>
  <memory_region name="dma" size="0x1000" />
  <memory_region name="fixed" size="0x1000" phys_addr="0x1000_0000" />
  <protection_domain name="a">
    <program_image path="a.elf" />
    <map mr="dma" vaddr="0x1000_0000" />
    <map mr="fixed" vaddr="0x2000_0000" />
    <setvar symbol="dma_paddr" region_paddr="dma" />
    <setvar symbol="fixed_paddr" region_paddr="fixed" />
  </protection_domain>
</system>"#,
    );
    assert!(system.memory_regions["dma"].tool_allocated);
    assert!(!system.memory_regions["fixed"].tool_allocated);
    assert_eq!(system.protection_domains["a"].setvars.len(), 2);
}

#[test]
fn numbers_accept_microkit_spellings() {
    let system = model(
        r#"<system>
  <memory_region name="m" size="0x200_000" page_size="2_097_152" />
  <protection_domain name="a" priority="0x0_F" budget="1_000" period="0x3E8">
    <program_image path="a.elf" />
    <map mr="m" vaddr="0x4000_0000" perms="rwx" />
    <irq irq="0x21" id="0x3d" trigger="edge" />
  </protection_domain>
</system>"#,
    );
    let a = &system.protection_domains["a"];
    assert_eq!((a.priority, a.budget, a.period), (15, 1000, 1000));
    assert_eq!((a.irqs[0].number, a.irqs[0].id), (33, 61));
    assert_eq!(system.memory_regions["m"].size, Some(0x20_0000));
}

/// The diagnostics' codes and messages for a PD with a stack of `stack_size` bytes that maps
/// a region of `size` bytes at `vaddr`.
fn vaddr_diagnostics(vaddr: u64, size: u64, stack_size: u64) -> Vec<(String, String)> {
    let text = format!(
        r#"<system>
  <memory_region name="dma" size="{size:#x}" page_size="{page:#x}" />
  <protection_domain name="driver" stack_size="{stack_size:#x}">
    <program_image path="driver.elf" />
    <map mr="dma" vaddr="{vaddr:#x}" perms="rw" />
  </protection_domain>
</system>"#,
        page = if size.is_multiple_of(0x20_0000) {
            0x20_0000
        } else {
            0x1000
        },
    );
    atoll_tool::check(&text, BOARD, false)
        .diagnostics
        .iter()
        .map(|d| (d.code.as_str().to_string(), d.message.clone()))
        .collect()
}

/// A PD may map anything that ends at or below its stack's bottom in the 1 TiB user address
/// space, as Microkit allows on AArch64: its stack top is `0xff_ffff_e000`, under a guard
/// page and the IPC buffer.
#[test]
fn mappings_may_fill_the_user_address_space_up_to_the_stack() {
    // 2 MiB at 512 GiB, as rust-sel4's http-server example maps `virtio_blk_driver_dma`.
    assert_eq!(vaddr_diagnostics(0x80_0000_0000, 0x20_0000, 0x2000), []);
    // Right up to the stack's bottom, for two stack sizes; 2 MiB pages as high as they go.
    assert_eq!(vaddr_diagnostics(0xff_ffff_b000, 0x1000, 0x2000), []);
    assert_eq!(vaddr_diagnostics(0xff_fff5_e000, 0x6_0000, 0x4_0000), []);
    assert_eq!(vaddr_diagnostics(0xff_ffa0_0000, 0x20_0000, 0x1000), []);
    // One page further.
    assert_eq!(
        vaddr_diagnostics(0xff_ffff_c000, 0x1000, 0x2000),
        [(
            "sdf::E054".to_string(),
            "mapping of 'dma' (0x1000 bytes at 0xffffffc000) does not end at or below \
             0xffffffc000, the bottom of the PD's stack"
                .to_string()
        )]
    );
    assert_eq!(
        vaddr_diagnostics(0xff_fff5_e000, 0x6_1000, 0x4_0000)
            .iter()
            .map(|(code, _)| code.as_str())
            .collect::<Vec<_>>(),
        ["sdf::E054"]
    );
    // Past the top of the user address space.
    for vaddr in [0xff_ffff_f000, 0x100_0000_0000] {
        let codes = vaddr_diagnostics(vaddr, 0x1000, 0x2000);
        assert_eq!(codes.len(), 1, "{vaddr:#x}: {codes:?}");
        assert_eq!(codes[0].0, "sdf::E054");
    }
}
