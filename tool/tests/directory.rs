//! The system directory (Atoll extension): `<setvar symbol="…" directory="system"/>`
//! patches an `atoll_abi::directory::Directory` naming every replica, its cores and its
//! PDs into a PD; it excludes `region_paddr`, takes no other value, is refused by
//! `--strict`, and needs names that fit the directory.
#![forbid(unsafe_code)]

use atoll_abi::directory::{Directory, PdEntry, ReplicaEntry, pd_flags};
use atoll_tool::diagnostics::Code;
use atoll_tool::model::SetvarValue;
use atoll_tool::plan::{PatchValue, Plan};

mod check;
use check::{BOARD, at, codes, errors, plan};

/// The shape of the repository's `system.xml`.
const EXAMPLE: &str = include_str!("fixtures/examples/directory.xml");

/// A PD that asks for the directory with `setvar`'s attributes, and a region.
fn reporter(setvar: &str) -> String {
    format!(
        r#"<system>
  <memory_region name="dma" size="0x1000" />
  <protection_domain name="reporter" priority="100">
    <program_image path="reporter.elf" />
    <map mr="dma" vaddr="0x200_0000" perms="rw" />
    <setvar symbol="atoll_directory" {setvar} />
  </protection_domain>
</system>"#
    )
}

/// Every directory patch of the plan: (PD, symbol, decoded directory).
fn directories(plan: &Plan) -> Vec<(String, String, Directory)> {
    let mut found = Vec::new();
    for pd in plan.replicas.iter().flat_map(|r| &r.protection_domains) {
        for symbol in &pd.symbols {
            if let PatchValue::Directory(patch) = &symbol.value {
                let directory = Directory::read(&patch.bytes).expect("a valid directory");
                assert_eq!(patch.bytes.len(), size_of::<Directory>());
                assert_eq!(
                    (patch.replicas, patch.pds),
                    (directory.replica_count, directory.pd_count)
                );
                found.push((pd.name.clone(), symbol.symbol.clone(), directory));
            }
        }
    }
    found
}

fn pd_names<'a>(pds: impl Iterator<Item = &'a PdEntry>) -> Vec<&'a str> {
    pds.map(PdEntry::name).collect()
}

#[test]
fn directory_system_is_parsed_into_the_model() {
    let checked = atoll_tool::check(EXAMPLE, BOARD, false);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let system = checked.system.expect("model");
    let setvars = &system.protection_domains["io"].setvars;
    assert_eq!(setvars.len(), 1);
    assert_eq!(setvars[0].symbol, "atoll_directory");
    assert_eq!(setvars[0].value, SetvarValue::Directory);
    // Beside a `region_paddr` setvar of the same PD.
    let text = reporter(r#"directory="system" /><setvar symbol="dma_paddr" region_paddr="dma""#);
    let system = atoll_tool::check(&text, BOARD, false)
        .system
        .expect("model");
    let values: Vec<SetvarValue> = system.protection_domains["reporter"]
        .setvars
        .iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(
        values,
        [SetvarValue::Directory, SetvarValue::RegionPaddr(0)]
    );
}

#[test]
fn the_plan_patches_the_directory_into_the_pd_that_asks_for_it() {
    let plan = plan(EXAMPLE);
    let found = directories(&plan);
    assert_eq!(found.len(), 1, "only io asks");
    let (pd, symbol, directory) = &found[0];
    assert_eq!((pd.as_str(), symbol.as_str()), ("io", "atoll_directory"));
    // Replicas in index order, as the plan (and the kernels' status page) numbers them.
    let replicas: Vec<(&str, u64)> = directory.replicas().map(|r| (r.name(), r.cores)).collect();
    assert_eq!(replicas, [("io", 0b1), ("rt", 0b10), ("storage", 0b1100)]);
    for (index, replica) in plan.replicas.iter().enumerate() {
        let listed = &directory.replicas[index];
        assert_eq!(listed.name(), replica.name);
        let cores: Vec<u32> = listed.core_indices().collect();
        assert_eq!(cores, replica.cores);
        let planned: Vec<&str> = replica
            .protection_domains
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(pd_names(directory.pds_of(index)), planned);
    }
    // PDs grouped by replica, each replica's in document order.
    assert_eq!(pd_names(directory.pds_of(0)), ["net_driver", "io"]);
    assert_eq!(pd_names(directory.pds_of(1)), ["rt"]);
    assert_eq!(pd_names(directory.pds_of(2)), ["storage", "storage_blk"]);
    let pds: Vec<(&str, u32, u32, u32)> = directory
        .pds()
        .map(|p| (p.name(), p.replica, p.core, p.priority))
        .collect();
    assert_eq!(
        pds,
        [
            ("net_driver", 0, 0, 200),
            ("io", 0, 0, 150),
            ("rt", 1, 1, 200),
            ("storage", 2, 2, 100),
            ("storage_blk", 2, 3, 110),
        ]
    );
    let firsts: Vec<(u32, u32)> = directory
        .replicas()
        .map(|r| (r.first_pd, r.pd_count))
        .collect();
    assert_eq!(firsts, [(0, 2), (2, 1), (3, 2)]);
}

#[test]
fn pds_are_grouped_by_replica_whatever_the_document_order() {
    // Replicas implied by `cpu`, PDs interleaved across them, a passive PD with a child.
    let text = r#"<system>
  <protection_domain name="b1" cpu="1" passive="true">
    <program_image path="b.elf" />
    <protection_domain name="b1_child" id="0">
      <program_image path="c.elf" />
    </protection_domain>
  </protection_domain>
  <protection_domain name="a0" priority="10">
    <program_image path="a.elf" />
    <setvar symbol="dir" directory="system" />
  </protection_domain>
  <protection_domain name="b2" cpu="1">
    <program_image path="b.elf" />
    <setvar symbol="also_dir" directory="system" />
  </protection_domain>
</system>"#;
    let plan = plan(text);
    let found = directories(&plan);
    let asked: Vec<(&str, &str)> = found
        .iter()
        .map(|(pd, symbol, _)| (pd.as_str(), symbol.as_str()))
        .collect();
    assert_eq!(asked, [("a0", "dir"), ("b2", "also_dir")]);
    assert_eq!(found[0].2, found[1].2, "one directory for the system");
    let directory = &found[0].2;
    let replicas: Vec<&str> = directory.replicas().map(ReplicaEntry::name).collect();
    assert_eq!(replicas, ["core0", "core1"]);
    assert_eq!(pd_names(directory.pds_of(0)), ["a0"]);
    assert_eq!(pd_names(directory.pds_of(1)), ["b1", "b1_child", "b2"]);
    let flags: Vec<u32> = directory.pds_of(1).map(|p| p.flags).collect();
    assert_eq!(flags, [pd_flags::PASSIVE, pd_flags::CHILD, 0]);
}

#[test]
fn the_reports_summarise_the_directory() {
    let plan = plan(EXAMPLE);
    let json = atoll_tool::report::json(&plan);
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let io = value["replicas"][0]["protection_domains"]
        .as_array()
        .expect("PDs")
        .iter()
        .find(|pd| pd["name"] == "io")
        .expect("io");
    let symbol = io["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .find(|s| s["symbol"] == "atoll_directory")
        .expect("the directory symbol");
    let summary = &symbol["value"]["directory"];
    assert_eq!(summary["replicas"], 3);
    assert_eq!(summary["pds"], 5);
    assert_eq!(summary["size"], 5440);
    assert!(
        summary["crc32"]
            .as_str()
            .is_some_and(|c| c.starts_with("0x"))
    );
    let text = atoll_tool::report::text(&plan);
    assert!(
        text.contains("atoll_directory = the system directory: 3 replicas, 5 PDs (5440 bytes)"),
        "{text}"
    );
}

#[test]
fn directory_excludes_region_paddr() {
    let text = reporter(r#"region_paddr="dma" directory="system""#);
    let diagnostics = errors(&text, false);
    assert_eq!(codes(&diagnostics), [Code::ConflictingAttributes]);
    let diagnostic = &diagnostics[0];
    assert_eq!(at(&text, diagnostic), "dma");
    assert!(diagnostic.message.contains("'region_paddr' or 'directory'"));
    let (span, label) = &diagnostic.secondary[0];
    assert_eq!(&text[span.start..span.end], "system");
    assert!(label.contains("directory"), "{label}");
}

#[test]
fn directory_takes_only_system() {
    for value in ["", "System", "replicas"] {
        let text = reporter(&format!(r#"directory="{value}""#));
        let diagnostics = errors(&text, false);
        assert_eq!(codes(&diagnostics), [Code::InvalidValue], "{value:?}");
        assert_eq!(at(&text, &diagnostics[0]), value);
        assert!(diagnostics[0].message.contains("'system'"));
    }
    // Neither attribute: `region_paddr` is what Microkit requires.
    let diagnostics = errors(&reporter(""), false);
    assert_eq!(codes(&diagnostics), [Code::MissingAttribute]);
    assert!(diagnostics[0].message.contains("'region_paddr'"));
}

#[test]
fn directory_is_an_extension_rejected_by_strict() {
    let text = reporter(r#"directory="system""#);
    let diagnostics = errors(&text, true);
    assert_eq!(codes(&diagnostics), [Code::StrictExtension]);
    assert_eq!(at(&text, &diagnostics[0]), "system");
    assert!(diagnostics[0].message.contains("'directory'"));
    // Nothing else is reported about the setvar.
    let text = reporter(r#"region_paddr="dma""#);
    assert!(atoll_tool::check(&text, BOARD, true).diagnostics.is_empty());
}

#[test]
fn the_directory_symbol_counts_as_a_setvar_symbol() {
    let text =
        reporter(r#"directory="system" /><setvar symbol="atoll_directory" region_paddr="dma""#);
    assert_eq!(codes(&errors(&text, false)), [Code::DuplicateSymbol]);
}

#[test]
fn names_must_fit_the_directory_only_when_it_is_asked_for() {
    let long_replica = "r".repeat(32);
    let long_pd = "p".repeat(64);
    let text = format!(
        r#"<system>
  <replica name="{long_replica}" cores="0" />
  <protection_domain name="{long_pd}">
    <program_image path="a.elf" />
    SETVAR
  </protection_domain>
</system>"#
    );
    let without = text.replace("SETVAR", "");
    assert!(
        atoll_tool::check(&without, BOARD, false)
            .diagnostics
            .is_empty()
    );
    let with = text.replace("SETVAR", r#"<setvar symbol="dir" directory="system" />"#);
    let diagnostics = errors(&with, false);
    assert_eq!(
        codes(&diagnostics),
        [Code::InvalidValue, Code::InvalidValue]
    );
    assert_eq!(at(&with, &diagnostics[0]), long_replica);
    assert!(diagnostics[0].message.contains("32 bytes"));
    assert!(diagnostics[0].message.contains("at most 31 bytes"));
    assert_eq!(at(&with, &diagnostics[1]), long_pd);
    assert!(diagnostics[1].message.contains("at most 63 bytes"));
    for diagnostic in &diagnostics {
        let (span, _) = &diagnostic.secondary[0];
        assert_eq!(&with[span.start..span.end], "system");
    }
}
