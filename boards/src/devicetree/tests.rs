//! The device trees QEMU passes (dumped from its three machines, `boards/fixtures/devicetree`),
//! trees built here to hold what those lack, and damaged trees.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "host tests"
)]

extern crate std;

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::{IMX8MP_EVK, QEMU_VIRT_AARCH64, ZCU102};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../fixtures/devicetree/", $name))
    };
}

const VIRT_1G: &[u8] = fixture!("qemu-virt-1g.dtb");
const VIRT_2G: &[u8] = fixture!("qemu-virt-2g.dtb");
const VIRT_256M: &[u8] = fixture!("qemu-virt-256m.dtb");
const VIRT_EL2: &[u8] = fixture!("qemu-virt-el2.dtb");
const VIRT_RESERVED: &[u8] = fixture!("qemu-virt-reserved.dtb");
const ZCU102_TREE: &[u8] = fixture!("zcu102.dtb");
const ZCU102_QEMU_2G: &[u8] = fixture!("zcu102-qemu-2g.dtb");
const ZCU102_QEMU_1G: &[u8] = fixture!("zcu102-qemu-1g.dtb");
const IMX_TREE: &[u8] = fixture!("imx8mp-evk.dtb");
const IMX_QEMU_2G: &[u8] = fixture!("imx8mp-evk-qemu-2g.dtb");
const IMX_QEMU_1G: &[u8] = fixture!("imx8mp-evk-qemu-1g.dtb");

const ALL: &[&[u8]] = &[
    VIRT_1G,
    VIRT_2G,
    VIRT_256M,
    VIRT_EL2,
    VIRT_RESERVED,
    ZCU102_TREE,
    ZCU102_QEMU_2G,
    ZCU102_QEMU_1G,
    IMX_TREE,
    IMX_QEMU_2G,
    IMX_QEMU_1G,
];

/// Where QEMU puts the tree under `-kernel` on virt (RAM base + 128 MiB).
const AT: u64 = 0x4800_0000;

fn r(base: u64, size: u64) -> PhysRange {
    PhysRange { base, size }
}

fn read(tree: &[u8]) -> DeviceTree<'_> {
    decode(tree, AT, QEMU_VIRT_AARCH64.ram).unwrap()
}

fn notes(tree: &DeviceTree<'_>) -> Vec<String> {
    tree.notes.iter().map(ToString::to_string).collect()
}

#[test]
fn qemu_virt_reports_its_ram_psci_over_hvc_and_its_pl011() {
    let tree = read(VIRT_1G);
    assert_eq!(tree.memory.ram(), &[r(0x4000_0000, 0x4000_0000)]);
    assert!(tree.memory.reserved().is_empty());
    assert_eq!(tree.psci, Some(PsciConduit::Hvc));
    assert_eq!(tree.stdout_path, Some("/pl011@9000000"));
    assert_eq!(tree.size, VIRT_1G.len());
    assert!(notes(&tree).is_empty(), "{:?}", notes(&tree));
    assert_eq!(read(VIRT_2G).memory.ram(), &[r(0x4000_0000, 0x8000_0000)]);
    assert_eq!(read(VIRT_256M).memory.ram(), &[r(0x4000_0000, 0x1000_0000)]);
    // With EL2 (virtualization=on) QEMU serves PSCI over SMC.
    assert_eq!(read(VIRT_EL2).psci, Some(PsciConduit::Smc));
}

#[test]
fn zcu102_trees_report_both_banks_or_what_qemu_emulates() {
    let tree = read(ZCU102_TREE);
    assert_eq!(
        tree.memory.ram(),
        &[r(0, 0x8000_0000), r(0x8_0000_0000, 0x8000_0000)]
    );
    assert_eq!(tree.psci, Some(PsciConduit::Smc));
    assert_eq!(tree.stdout_path, Some("serial0:115200n8"));
    assert_eq!(read(ZCU102_QEMU_2G).memory.ram(), &[r(0, 0x8000_0000)]);
    assert_eq!(read(ZCU102_QEMU_1G).memory.ram(), &[r(0, 0x4000_0000)]);
}

#[test]
fn imx8mp_evk_trees_merge_touching_banks_and_leave_out_what_is_not_in_the_way() {
    let tree = read(IMX_TREE);
    // 0x4000_0000..0x1_0000_0000 and 0x1_0000_0000..0x1_c000_0000 touch: one range.
    assert_eq!(tree.memory.ram(), &[r(0x4000_0000, 0x1_8000_0000)]);
    assert!(tree.memory.reserved().is_empty());
    assert_eq!(
        notes(&tree),
        [
            "/reserved-memory/linux,cma has no reg (the operating system would allocate it): \
             left out",
            "/reserved-memory/dsp@92400000 is disabled: left out",
        ]
    );
    assert!(tree.notes.iter().all(|n| !n.is_warning()));
    assert_eq!(tree.psci, Some(PsciConduit::Smc));
    assert_eq!(
        tree.stdout_path,
        Some("/soc@0/bus@30800000/serial@30890000")
    );
    assert_eq!(
        read(IMX_QEMU_2G).memory.ram(),
        &[r(0x4000_0000, 0x8000_0000)]
    );
    assert_eq!(
        read(IMX_QEMU_1G).memory.ram(),
        &[r(0x4000_0000, 0x4000_0000)]
    );
}

#[test]
fn reserved_memory_nodes_and_the_reservation_block_are_read() {
    let tree = read(VIRT_RESERVED);
    let reserved: Vec<(PhysRange, String)> = tree
        .memory
        .reserved()
        .iter()
        .map(|r| (r.range, r.source().to_string()))
        .collect();
    assert_eq!(
        reserved,
        [
            (r(0x4000_0000, 0x1_0000), "/memreserve/".into()),
            (
                r(0x6000_0000, 0x20_0000),
                "/reserved-memory/secure-monitor@60000000".into()
            ),
        ]
    );
    assert_eq!(tree.psci, Some(PsciConduit::Hvc));
}

#[test]
fn every_fixture_reads_the_same_wherever_it_lies_unless_it_reserves_itself() {
    for tree in ALL {
        assert_eq!(
            decode(tree, 0, QEMU_VIRT_AARCH64.ram),
            decode(tree, 0x1_2345_6000, QEMU_VIRT_AARCH64.ram)
        );
    }
}

/// A flattened device tree built in the test: nodes with properties, and
/// memory-reservation entries.
#[derive(Default)]
struct Builder {
    reservations: Vec<(u64, u64)>,
    structure: Vec<u8>,
    strings: Vec<u8>,
    version: u32,
}

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            version: 17,
            ..Builder::default()
        };
        b.begin("");
        b
    }

    fn word(&mut self, w: u32) -> &mut Self {
        self.structure.extend_from_slice(&w.to_be_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    fn begin(&mut self, name: &str) -> &mut Self {
        self.word(BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Self {
        self.word(END_NODE)
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.word(PROP).word(value.len() as u32).word(offset);
        self.structure.extend_from_slice(value);
        self.pad();
        self
    }

    fn string(&mut self, name: &str, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.prop(name, &bytes)
    }

    fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }

    /// A `/memory@...` node with `reg` in two address and two size cells.
    fn memory(&mut self, ranges: &[(u64, u64)]) -> &mut Self {
        self.begin("memory@0").string("device_type", "memory");
        self.cells("reg", &two_cells(ranges)).end()
    }

    fn finish(&mut self) -> Vec<u8> {
        self.end().word(END);
        let rsv_offset = 40usize;
        let rsv_len = (self.reservations.len() + 1) * 16;
        let struct_offset = rsv_offset + rsv_len;
        let strings_offset = struct_offset + self.structure.len();
        let total = strings_offset + self.strings.len();
        let mut tree = Vec::new();
        for word in [
            MAGIC,
            total as u32,
            struct_offset as u32,
            strings_offset as u32,
            rsv_offset as u32,
            self.version,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ] {
            tree.extend_from_slice(&word.to_be_bytes());
        }
        for (base, size) in self.reservations.iter().chain([&(0, 0)]) {
            tree.extend_from_slice(&base.to_be_bytes());
            tree.extend_from_slice(&size.to_be_bytes());
        }
        tree.extend_from_slice(&self.structure);
        tree.extend_from_slice(&self.strings);
        tree
    }
}

fn two_cells(ranges: &[(u64, u64)]) -> Vec<u32> {
    ranges
        .iter()
        .flat_map(|&(b, s)| [(b >> 32) as u32, b as u32, (s >> 32) as u32, s as u32])
        .collect()
}

/// A tree of two-cell addresses and sizes with `/memory` holding `ram`.
fn with_ram(ram: &[(u64, u64)]) -> Builder {
    let mut b = Builder::new();
    b.cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.memory(ram);
    b
}

fn refusal(tree: &[u8]) -> String {
    decode(tree, AT, QEMU_VIRT_AARCH64.ram)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_built_tree_reads_as_built() {
    let tree = with_ram(&[(0x4000_0000, 0x4000_0000)]).finish();
    let read = read(&tree);
    assert_eq!(read.memory.ram(), &[r(0x4000_0000, 0x4000_0000)]);
    assert_eq!(read.psci, None);
    assert_eq!(read.stdout_path, None);
    assert!(notes(&read).is_empty());
}

#[test]
fn cells_of_one_or_two_are_read_and_others_refused() {
    // The defaults (two address cells, one size cell).
    let mut b = Builder::new();
    b.begin("memory@40000000").string("device_type", "memory");
    b.cells("reg", &[0, 0x4000_0000, 0x1000_0000, 0x1, 0, 0x1000])
        .end();
    let tree = b.finish();
    assert_eq!(
        read(&tree).memory.ram(),
        &[r(0x4000_0000, 0x1000_0000), r(0x1_0000_0000, 0x1000)]
    );
    let mut b = Builder::new();
    b.cells("#address-cells", &[1]).cells("#size-cells", &[1]);
    b.begin("memory@0").string("device_type", "memory");
    b.cells("reg", &[0x4000_0000, 0x100_0000]).end();
    assert_eq!(
        read(&b.finish()).memory.ram(),
        &[r(0x4000_0000, 0x100_0000)]
    );
    let mut b = Builder::new();
    b.cells("#address-cells", &[3]).cells("#size-cells", &[2]);
    assert_eq!(
        refusal(&b.finish()),
        "/: its #address-cells or #size-cells is not 1 or 2"
    );
    let mut b = Builder::new();
    b.prop("#size-cells", &[0, 0, 1]);
    assert_eq!(
        refusal(&b.finish()),
        "/: a #-cells property is not one cell"
    );
}

#[test]
fn a_memory_reg_that_is_not_whole_pairs_or_wraps_is_refused() {
    let mut b = with_ram(&[]);
    b.begin("memory@1").string("device_type", "memory");
    b.cells("reg", &[0, 0x4000_0000, 0]).end();
    assert_eq!(
        refusal(&b.finish()),
        "/memory@0: its reg is not a whole number of (address, size) pairs"
    );
    let tree = with_ram(&[(u64::MAX - 0xfff, 0x2000)]).finish();
    assert_eq!(
        refusal(&tree),
        "/memory@0: its reg runs past the end of the address space"
    );
}

#[test]
fn disabled_memory_is_left_out_and_no_memory_means_the_boards() {
    let mut b = with_ram(&[(0x4000_0000, 0x1000_0000)]);
    b.begin("memory@80000000")
        .string("device_type", "memory")
        .string("status", "disabled")
        .cells("reg", &two_cells(&[(0x8000_0000, 0x1000_0000)]))
        .end();
    let tree = b.finish();
    let read_tree = read(&tree);
    assert_eq!(read_tree.memory.ram(), &[r(0x4000_0000, 0x1000_0000)]);
    assert_eq!(
        notes(&read_tree),
        ["/memory@80000000 is disabled: left out"]
    );
    let mut b = Builder::new();
    b.begin("chosen").string("stdout-path", "serial0").end();
    let tree = b.finish();
    let tree = decode(&tree, AT, ZCU102.ram).unwrap();
    assert_eq!(tree.memory.ram(), &[ZCU102.ram]);
    assert_eq!(
        notes(&tree),
        ["no /memory node: the board's RAM is assumed"]
    );
    assert!(tree.notes.iter().all(Note::is_warning));
}

#[test]
fn more_ram_ranges_than_kept_are_left_out_with_a_note() {
    let ranges: Vec<(u64, u64)> = (0..10).map(|i| (i * 0x1000_0000, 0x1000)).collect();
    let tree = with_ram(&ranges).finish();
    let read = read(&tree);
    assert_eq!(read.memory.ram().len(), 8);
    assert_eq!(
        notes(&read),
        [
            "RAM 0x80000000-0x80001000 left out: the loader keeps 8 ranges",
            "RAM 0x90000000-0x90001000 left out: the loader keeps 8 ranges",
        ]
    );
}

#[test]
fn the_trees_own_reservation_is_left_out_and_others_kept() {
    let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
    b.reservations = vec![(AT, 0x2000), (0x7000_0000, 0x1000)];
    let tree = b.finish();
    // Lying at AT, the tree (less than a page) reserves AT..AT+0x2000 for itself: U-Boot
    // rounds its size up to whole pages. Here the reservation covers more than the tree's
    // pages, so it is kept.
    let kept = decode(&tree, AT, QEMU_VIRT_AARCH64.ram).unwrap();
    assert_eq!(kept.memory.reserved().len(), 2);
    // A tree of two pages at AT covers it.
    let mut big = tree.clone();
    big.resize(0x1800, 0);
    big[4..8].copy_from_slice(&0x1800u32.to_be_bytes());
    let read = decode(&big, AT + 0x10, QEMU_VIRT_AARCH64.ram).unwrap();
    assert_eq!(
        read.memory
            .reserved()
            .iter()
            .map(|r| r.range)
            .collect::<Vec<_>>(),
        [r(0x7000_0000, 0x1000)]
    );
    assert_eq!(
        notes(&read),
        [
            "the reservation of the tree itself (0x48000000-0x48002000) is left out: the \
             loader reads the tree before it writes anything"
        ]
    );
}

#[test]
fn reserved_memory_children_need_whole_regs_and_no_translation() {
    let reserved = |ranges: &[u32], child: &dyn Fn(&mut Builder)| {
        let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
        b.begin("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .cells("ranges", ranges);
        b.begin("tee@50000000");
        child(&mut b);
        b.end().end();
        b.finish()
    };
    let tree = reserved(&[], &|b| {
        b.cells("reg", &two_cells(&[(0x5000_0000, 0x10_0000)]));
    });
    assert_eq!(
        read(&tree).memory.reserved(),
        &[Reserved {
            range: r(0x5000_0000, 0x10_0000),
            node: Label::new("tee@50000000"),
        }]
    );
    let tree = reserved(&[0, 0, 0, 0x1000_0000, 0, 0x1000], &|b| {
        b.cells("reg", &two_cells(&[(0, 0x10_0000)]));
    });
    assert_eq!(
        refusal(&tree),
        "/reserved-memory: its ranges translates addresses, which the \
         loader does not do"
    );
    let tree = reserved(&[], &|b| {
        b.cells("reg", &[0, 0x5000_0000, 0]);
    });
    assert_eq!(
        refusal(&tree),
        "/reserved-memory/tee@50000000: its reg is not a whole number of \
         (address, size) pairs"
    );
}

#[test]
fn more_reserved_ranges_than_the_loader_can_check_are_refused() {
    let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
    b.reservations = (0..33)
        .map(|i| (0x4000_0000 + i * 0x1000, 0x1000))
        .collect();
    assert_eq!(
        refusal(&b.finish()),
        "it reserves more than 32 ranges, more than the loader can check"
    );
}

#[test]
fn psci_methods_are_smc_or_hvc_and_anything_else_is_a_note() {
    let psci = |node: &str, method: Option<&[u8]>, compatible: &str| {
        let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
        b.begin(node).string("compatible", compatible);
        if let Some(method) = method {
            b.prop("method", method);
        }
        b.end();
        let tree = b.finish();
        let read = read(&tree);
        (read.psci, notes(&read))
    };
    assert_eq!(
        psci("psci", Some(b"smc\0"), "arm,psci-0.2"),
        (Some(PsciConduit::Smc), vec![])
    );
    // Found by its compatible string under another name.
    assert_eq!(
        psci("firmware-psci", Some(b"hvc\0"), "arm,psci-1.0"),
        (Some(PsciConduit::Hvc), vec![])
    );
    assert_eq!(
        psci("psci", Some(b"svc\0"), "arm,psci"),
        (
            None,
            vec![String::from(
                "/psci's method \"svc\" is neither smc nor hvc"
            )]
        )
    );
    assert_eq!(
        psci("psci", None, "arm,psci"),
        (None, vec![String::from("/psci has no method")])
    );
    assert_eq!(psci("timer", Some(b"smc\0"), "arm,armv8-timer").0, None);
}

#[test]
fn a_stdout_path_that_is_not_a_string_is_a_note() {
    let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
    b.begin("chosen").prop("stdout-path", &[0xff, 0xfe]).end();
    let tree = b.finish();
    let read = read(&tree);
    assert_eq!(read.stdout_path, None);
    assert_eq!(
        notes(&read),
        ["/chosen's stdout-path is not a string: ignored"]
    );
    let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
    b.begin("chosen").string("linux,stdout-path", "/uart").end();
    assert_eq!(read_owned_stdout(&b.finish()), Some(String::from("/uart")));
}

fn read_owned_stdout(tree: &[u8]) -> Option<String> {
    read(tree).stdout_path.map(String::from)
}

#[test]
fn what_is_not_a_tree_says_so_and_a_damaged_header_is_refused() {
    assert_eq!(probe(*b"\0\0\0\0\0\0\0\0"), Err(TreeError::NotATree(0)));
    assert_eq!(
        refusal(b"ATOLLIMG and more bytes than a header, forty of them at least."),
        "no device tree there: its first word is 0x41544f4c, not 0xd00dfeed"
    );
    let good = with_ram(&[(0x4000_0000, 0x4000_0000)]).finish();
    let with = |offset: usize, value: u32| {
        let mut tree = good.clone();
        tree[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
        refusal(&tree)
    };
    assert_eq!(
        with(4, 0x30_0000),
        "it says it is 3145728 bytes, more than the 2097152 the loader reads"
    );
    assert_eq!(
        with(4, 8),
        "its header is damaged: its size is smaller than its header"
    );
    assert_eq!(
        with(4, good.len() as u32 + 4),
        "its header is damaged: the tree is shorter than its header says"
    );
    assert_eq!(
        with(20, 16),
        "it is of format version 16; the loader reads 17"
    );
    for offset in [8, 36] {
        assert_eq!(
            with(offset, 0xffff_fff0),
            "its header is damaged: the structure block lies outside the tree"
        );
    }
    assert_eq!(
        with(12, good.len() as u32),
        "its header is damaged: the strings block lies outside the tree"
    );
    assert_eq!(
        with(16, 12),
        "its header is damaged: the memory-reservation block lies outside \
         the tree"
    );
    assert_eq!(
        with(36, 6),
        "its header is damaged: the structure block's size is wrong"
    );
    // A reservation block with no (0, 0) end before the tree's: moved to its last 16
    // bytes, which are not zero.
    let mut tree = good.clone();
    tree.resize(good.len().next_multiple_of(8), 0);
    tree.extend_from_slice(&[0x01; 16]);
    let len = tree.len() as u32;
    tree[4..8].copy_from_slice(&len.to_be_bytes());
    tree[16..20].copy_from_slice(&(len - 16).to_be_bytes());
    assert_eq!(
        refusal(&tree),
        "its header is damaged: the memory-reservation block has no end"
    );
    // One whose entry wraps past the end of the address space.
    let mut wraps = good.clone();
    wraps[40..56].copy_from_slice(&[0xff; 16]);
    assert_eq!(
        refusal(&wraps),
        "its header is damaged: a memory reservation runs past the end of the address space"
    );
}

#[test]
fn a_damaged_structure_is_refused() {
    let good = with_ram(&[(0x4000_0000, 0x4000_0000)]).finish();
    let struct_offset = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    // The root's first token is not BEGIN_NODE.
    let mut tree = good.clone();
    tree[struct_offset..struct_offset + 4].copy_from_slice(&7u32.to_be_bytes());
    assert!(
        refusal(&tree).starts_with("its structure is damaged:"),
        "{}",
        refusal(&tree)
    );
    // A property whose length runs past the block.
    let mut tree = good.clone();
    let prop = struct_offset + 8;
    assert_eq!(
        u32::from_be_bytes(tree[prop..prop + 4].try_into().unwrap()),
        PROP
    );
    tree[prop + 4..prop + 8].copy_from_slice(&0x10_0000u32.to_be_bytes());
    assert!(refusal(&tree).starts_with("its structure is damaged:"));
    // A property name outside the strings block.
    let mut tree = good.clone();
    tree[prop + 8..prop + 12].copy_from_slice(&0xffffu32.to_be_bytes());
    assert!(refusal(&tree).starts_with("its structure is damaged:"));
}

#[test]
fn every_truncation_of_every_fixture_is_refused_or_read_never_a_panic() {
    for tree in ALL {
        for len in 0..tree.len() {
            let cut = &tree[..len];
            // The header says more than there is: always a refusal.
            assert!(decode(cut, AT, QEMU_VIRT_AARCH64.ram).is_err(), "{len}");
        }
        // A tree whose header size is cut too (its strings or structure then stick out).
        for len in (HEADER_SIZE..tree.len()).step_by(7) {
            let mut cut = tree[..len].to_vec();
            cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            let _ = decode(&cut, AT, QEMU_VIRT_AARCH64.ram);
        }
    }
}

#[test]
fn the_conduit_is_the_trees_unless_it_names_hvc_at_el2() {
    let virt = &QEMU_VIRT_AARCH64;
    assert_eq!(
        psci_conduit(virt, 1, Some(PsciConduit::Hvc)),
        (PsciConduit::Hvc, ConduitSource::DeviceTree)
    );
    assert_eq!(
        psci_conduit(virt, 2, Some(PsciConduit::Smc)),
        (PsciConduit::Smc, ConduitSource::DeviceTree)
    );
    assert_eq!(
        psci_conduit(virt, 2, Some(PsciConduit::Hvc)),
        (PsciConduit::Smc, ConduitSource::BoardOverHvcAtEl2)
    );
    assert_eq!(
        psci_conduit(virt, 1, None),
        (PsciConduit::Hvc, ConduitSource::Board)
    );
    assert_eq!(
        psci_conduit(&IMX8MP_EVK, 1, Some(PsciConduit::Hvc)),
        (PsciConduit::Hvc, ConduitSource::DeviceTree)
    );
    assert_eq!(
        psci_conduit(&IMX8MP_EVK, 1, None),
        (PsciConduit::Smc, ConduitSource::Board)
    );
}

/// What the fuzz target (`boards/fuzz`) checks of any input: no panic, and a tree read is
/// consistent.
fn check_any(bytes: &[u8]) {
    if let Ok(tree) = decode(bytes, AT, QEMU_VIRT_AARCH64.ram) {
        assert!(tree.size <= bytes.len());
        assert!(tree.memory.ram().windows(2).all(|w| w[0].end() < w[1].base));
        let _ = tree.notes.iter().map(ToString::to_string).count();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A short run of the fuzz target, in the suite: the fixtures with bytes overwritten.
    #[test]
    fn damaged_fixtures_are_refused_or_read_never_a_panic(
        which in 0..ALL.len(),
        writes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<Option<usize>>(),
    ) {
        let mut tree = ALL[which].to_vec();
        for (at, byte) in writes {
            let at = at % tree.len();
            tree[at] = byte;
        }
        if let Some(cut) = cut {
            tree.truncate(cut % (tree.len() + 1));
        }
        check_any(&tree);
    }

    /// Random words in a built tree's structure block, where the crate does the reading.
    #[test]
    fn damaged_structures_are_refused_or_read_never_a_panic(
        words in proptest::collection::vec((any::<usize>(), 0u32..12), 1..6),
    ) {
        let mut b = with_ram(&[(0x4000_0000, 0x4000_0000)]);
        b.begin("reserved-memory").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
        b.prop("ranges", &[]);
        b.begin("tee").cells("reg", &two_cells(&[(0x5000_0000, 0x1000)])).end().end();
        b.begin("psci").string("method", "smc").end();
        b.begin("chosen").string("stdout-path", "/uart").end();
        let mut tree = b.finish();
        let start = u32::from_be_bytes(tree[8..12].try_into().unwrap()) as usize;
        let len = u32::from_be_bytes(tree[36..40].try_into().unwrap()) as usize;
        for (at, value) in words {
            let at = start + (at % (len / 4)) * 4;
            tree[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
        check_any(&tree);
    }
}
