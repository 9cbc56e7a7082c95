//! Keeps the docs in step with the tool: `docs/system-description.md`'s table of diagnostic
//! codes, and the module lists in the headers of `lib.rs` and `plan/mod.rs`.
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

/// The modules a source file declares (`mod x;`, `pub mod x;`), and the text of its `//!`
/// header.
fn modules_and_header(file: &str) -> (Vec<String>, String) {
    let path = format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).expect("a source file");
    let modules = source
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(String::from)
        })
        .collect();
    let header: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .collect();
    (modules, header.join("\n"))
}

/// The module a list item of a header names: `- [`x`]: …`, `1. `x`: …`.
fn listed_module(line: &str) -> Option<&str> {
    let item = line.trim_start();
    let numbered = || {
        let (number, rest) = item.split_once(". ")?;
        number.chars().all(|c| c.is_ascii_digit()).then_some(rest)
    };
    let item = item.strip_prefix("- ").or_else(numbered)?;
    let name = item.trim_start_matches('[').strip_prefix('`')?;
    let (name, rest) = name.split_once('`')?;
    rest.trim_start_matches(']')
        .starts_with(':')
        .then_some(name)
}

#[test]
fn module_lists_name_every_module_and_only_modules() {
    assert_eq!(listed_module(" 1. [`parse`]: XML"), Some("parse"));
    assert_eq!(listed_module(" - `regions`: a region"), Some("regions"));
    assert_eq!(listed_module(" `x`: not an item"), None);
    for file in ["lib.rs", "plan/mod.rs"] {
        let (modules, header) = modules_and_header(file);
        for module in &modules {
            assert!(
                header.contains(&format!("`{module}`")),
                "{file}: the header does not name module `{module}`"
            );
        }
        for line in header.lines() {
            if let Some(name) = listed_module(line) {
                assert!(
                    modules.iter().any(|m| m == name),
                    "{file}: the header lists `{name}`, which is not one of its modules"
                );
            }
        }
    }
}
