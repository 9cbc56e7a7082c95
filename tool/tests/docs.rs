//! Keeps `docs/system-description.md`'s table of diagnostic codes in step with the tool.
#![forbid(unsafe_code)]

use atoll_tool::diagnostics::Code;

#[test]
fn every_code_is_documented_with_its_summary() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/system-description.md");
    let docs = std::fs::read_to_string(path).expect("docs/system-description.md");
    for code in Code::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.summary());
        assert!(docs.contains(&row), "docs lack the row starting {row}");
    }
    let rows = docs
        .lines()
        .filter(|line| line.starts_with("| `sdf::"))
        .count();
    assert_eq!(
        rows,
        Code::ALL.len(),
        "docs list codes the tool does not have"
    );
}
