//! Literal setvars (Atoll extension): `<setvar symbol="…" value="…"/>` patches a number
//! (decimal or `0x` hex) or a dotted-quad IPv4 address into a PD as 8 little-endian bytes;
//! anything else is refused, it excludes `region_paddr` and `directory`, and `--strict`
//! refuses it. (The symbol's size is checked when the image is packed:
//! `tool/src/pack/program.rs`.)
#![forbid(unsafe_code)]

use atoll_tool::diagnostics::Code;
use atoll_tool::model::SetvarValue;
use atoll_tool::plan::{PatchValue, Plan};
use atoll_tool::report;

mod check;
use check::{BOARD, at, codes, errors, plan};

/// A PD `io` with `setvars` (whole `<setvar>` elements) and a region `dma` it maps.
fn io(setvars: &str) -> String {
    format!(
        r#"<system>
  <memory_region name="dma" size="0x1000" />
  <protection_domain name="io" priority="100">
    <program_image path="io.elf" />
    <map mr="dma" vaddr="0x200_0000" perms="rw" />
    {setvars}
  </protection_domain>
</system>"#
    )
}

/// The literal patches of PD `io`: (symbol, value).
fn literals(plan: &Plan) -> Vec<(String, u64)> {
    plan.replicas
        .iter()
        .flat_map(|r| &r.protection_domains)
        .filter(|pd| pd.name == "io")
        .flat_map(|pd| &pd.symbols)
        .filter_map(|s| match s.value {
            PatchValue::Literal(value) => Some((s.symbol.clone(), value)),
            _ => None,
        })
        .collect()
}

#[test]
fn decimal_hex_and_dotted_quad_values_are_parsed_into_the_model() {
    let text = io(r#"<setvar symbol="net_ipv4_address" value="10.0.2.15" />
    <setvar symbol="net_ipv4_prefix" value="24" />
    <setvar symbol="net_ipv4_gateway" value="0x0a00_0202" />
    <setvar symbol="largest" value="0xffff_ffff_ffff_ffff" />
    <setvar symbol="dma_paddr" region_paddr="dma" />"#);
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let system = checked.system.expect("model");
    let setvars: Vec<(&str, SetvarValue)> = system.protection_domains["io"]
        .setvars
        .iter()
        .map(|s| (s.symbol.as_str(), s.value))
        .collect();
    assert_eq!(
        setvars,
        [
            ("net_ipv4_address", SetvarValue::Value(0x0a00_020f)),
            ("net_ipv4_prefix", SetvarValue::Value(24)),
            ("net_ipv4_gateway", SetvarValue::Value(0x0a00_0202)),
            ("largest", SetvarValue::Value(u64::MAX)),
            ("dma_paddr", SetvarValue::RegionPaddr(0)),
        ]
    );
}

#[test]
fn the_plan_and_both_reports_carry_each_literal() {
    let text = io(r#"<setvar symbol="net_ipv4_address" value="10.0.2.15" />
    <setvar symbol="net_ipv4_prefix" value="24" />"#);
    let plan = plan(&text);
    assert_eq!(
        literals(&plan),
        [
            ("net_ipv4_address".to_string(), 0x0a00_020f),
            ("net_ipv4_prefix".to_string(), 24),
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&plan)).expect("the JSON report");
    let symbols = json["replicas"][0]["protection_domains"][0]["symbols"]
        .as_array()
        .expect("symbols");
    let address = symbols
        .iter()
        .find(|s| s["symbol"] == "net_ipv4_address")
        .expect("the address");
    assert_eq!(
        address["value"],
        serde_json::json!({ "literal": "0xa00020f" })
    );
    let text_report = report::text(&plan);
    assert!(
        text_report.contains("net_ipv4_address = 0xa00020f (setvar value)"),
        "{text_report}"
    );
}

#[test]
fn values_that_are_no_number_or_address_are_refused_at_the_value() {
    for (value, message) in [
        (
            "ten",
            "setvar value 'ten' is not a number or an IPv4 address",
        ),
        ("", "setvar value '' is not a number or an IPv4 address"),
        ("-1", "setvar value '-1' is not a number or an IPv4 address"),
        (
            "256.1.1.1",
            "setvar value '256.1.1.1' is not an IPv4 address: 256 is above 255",
        ),
        (
            "10.0.2",
            "setvar value '10.0.2' is not an IPv4 address: it has 3 parts, not 4",
        ),
        (
            "10.0.2.15/24",
            "setvar value '10.0.2.15/24' is not an IPv4 address: '15/24' is not a decimal number",
        ),
        (
            "010.0.2.15",
            "setvar value '010.0.2.15' is not an IPv4 address: '010' has a leading zero",
        ),
        (
            "0x1_0000_0000_0000_0000",
            "setvar value '0x1_0000_0000_0000_0000' does not fit in 64 bits",
        ),
        (
            "18446744073709551616",
            "setvar value '18446744073709551616' does not fit in 64 bits",
        ),
    ] {
        let text = io(&format!(r#"<setvar symbol="x" value="{value}" />"#));
        let diagnostics = errors(&text, false);
        // Only the value: nothing missing (no `region_paddr` asked for).
        assert_eq!(codes(&diagnostics), [Code::InvalidValue], "{value}");
        assert_eq!(diagnostics[0].message, message);
        assert_eq!(at(&text, &diagnostics[0]), value);
        let help = diagnostics[0].help.as_deref().expect("a help");
        assert!(help.contains("IPv4 address such as 10.0.2.15"), "{help}");
    }
}

#[test]
fn a_value_excludes_region_paddr_and_directory() {
    let text = io(r#"<setvar symbol="a" region_paddr="dma" value="1" />"#);
    let diagnostics = errors(&text, false);
    assert_eq!(codes(&diagnostics), [Code::ConflictingAttributes]);
    assert_eq!(
        diagnostics[0].message,
        "'<setvar>' takes 'value' or 'region_paddr', not both"
    );
    assert_eq!(at(&text, &diagnostics[0]), "1");
    let (span, label) = &diagnostics[0].secondary[0];
    assert_eq!(&text[span.start..span.end], "dma");
    assert_eq!(label, "the region named here");

    let text = io(r#"<setvar symbol="a" directory="system" value="1" />"#);
    let diagnostics = errors(&text, false);
    assert_eq!(codes(&diagnostics), [Code::ConflictingAttributes]);
    assert_eq!(
        diagnostics[0].message,
        "'<setvar>' takes 'value' or 'directory', not both"
    );
    assert_eq!(&text[diagnostics[0].secondary[0].0.start..][..6], "system");

    // All three: each conflict once, and a bad value as well.
    let text = io(r#"<setvar symbol="a" region_paddr="dma" directory="system" value="x" />"#);
    let diagnostics = errors(&text, false);
    assert_eq!(
        codes(&diagnostics),
        [
            Code::ConflictingAttributes,
            Code::ConflictingAttributes,
            Code::InvalidValue
        ]
    );
}

#[test]
fn strict_refuses_a_value_and_nothing_else() {
    let text = io(r#"<setvar symbol="net_ipv4_address" value="10.0.2.15" />"#);
    let diagnostics = errors(&text, true);
    assert_eq!(codes(&diagnostics), [Code::StrictExtension]);
    assert_eq!(
        diagnostics[0].message,
        "the 'value' attribute is an Atoll extension, rejected by --strict"
    );
    assert_eq!(at(&text, &diagnostics[0]), "10.0.2.15");
    let help = diagnostics[0].help.as_deref().expect("a help");
    assert!(
        help.contains("upstream Microkit patches no literal value"),
        "{help}"
    );
}

#[test]
fn a_symbol_takes_one_value() {
    let text = io(r#"<setvar symbol="a" value="1" />
    <setvar symbol="a" value="2" />"#);
    assert_eq!(codes(&errors(&text, false)), [Code::DuplicateSymbol]);
    let text = io(r#"<setvar symbol="a" value="1" />
    <setvar symbol="a" region_paddr="dma" />"#);
    assert_eq!(codes(&errors(&text, false)), [Code::DuplicateSymbol]);
}
