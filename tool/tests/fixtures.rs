//! Fixture tests: per rule, `accept.xml` must check clean and `reject.xml` must raise that
//! rule's code; the rendered diagnostics of every rejected file are snapshots.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use atoll_tool::diagnostics::{Severity, Source, render_human};

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Rule directories, sorted: `e020_duplicate_pd_name`, ….
fn rule_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(fixtures())
        .expect("fixture directory")
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .filter(|(name, path)| path.is_dir() && name != "examples")
        .collect();
    dirs.sort();
    dirs
}

/// `e020_duplicate_pd_name` → `sdf::E020`.
fn expected_code(dir: &str) -> String {
    format!("sdf::{}", dir[..4].to_uppercase())
}

fn check(dir: &str, path: &Path) -> atoll_tool::Checked {
    let text = fs::read_to_string(path).expect("fixture text");
    atoll_tool::check(&text, BOARD, dir.contains("strict"))
}

#[test]
fn every_rule_has_both_fixtures() {
    let dirs = rule_dirs();
    assert!(dirs.len() >= 50, "only {} rule directories", dirs.len());
    for (name, path) in &dirs {
        assert!(
            path.join("accept.xml").is_file(),
            "{name}/accept.xml missing"
        );
        assert!(
            path.join("reject.xml").is_file(),
            "{name}/reject.xml missing"
        );
    }
    let covered: std::collections::HashSet<String> =
        dirs.iter().map(|(name, _)| expected_code(name)).collect();
    for code in atoll_tool::diagnostics::Code::ALL {
        assert!(covered.contains(code.as_str()), "no fixture for {code}");
    }
}

#[test]
fn accepted_fixtures_check_clean() {
    for (name, path) in rule_dirs() {
        let checked = check(&name, &path.join("accept.xml"));
        assert!(
            checked.diagnostics.is_empty(),
            "{name}/accept.xml: {:#?}",
            checked.diagnostics
        );
        assert!(checked.system.is_some(), "{name}/accept.xml has no model");
    }
}

#[test]
fn rejected_fixtures_raise_their_code() {
    for (name, path) in rule_dirs() {
        let checked = check(&name, &path.join("reject.xml"));
        let code = expected_code(&name);
        let hit = checked.diagnostics.iter().find(|d| d.code.as_str() == code);
        let Some(hit) = hit else {
            panic!(
                "{name}/reject.xml does not raise {code}: {:#?}",
                checked.diagnostics
            )
        };
        if hit.severity == Severity::Warning {
            assert!(
                !checked.has_errors(),
                "{name}/reject.xml has errors: {:#?}",
                checked.diagnostics
            );
        } else {
            assert!(checked.system.is_none());
        }
    }
}

#[test]
fn rejected_fixtures_render_stably() {
    for (name, path) in rule_dirs() {
        let file = path.join("reject.xml");
        let checked = check(&name, &file);
        let source = Source::new(
            format!("{name}/reject.xml"),
            fs::read_to_string(&file).expect("text"),
        );
        let rendered: String = checked
            .diagnostics
            .iter()
            .map(|d| render_human(d, &source, false))
            .collect();
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn every_error_is_reported_in_one_run() {
    let file = fixtures().join("many_errors.xml");
    let text = fs::read_to_string(&file).expect("text");
    let checked = atoll_tool::check(&text, BOARD, false);
    let codes: std::collections::BTreeSet<&str> = checked
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert!(codes.len() >= 15, "{codes:?}");
    let source = Source::new("many_errors.xml", text);
    let rendered: String = checked
        .diagnostics
        .iter()
        .map(|d| render_human(d, &source, false))
        .collect();
    insta::assert_snapshot!("many_errors", rendered);
}

#[test]
fn examples_check_clean() {
    let mut count = 0;
    for entry in fs::read_dir(fixtures().join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        // Beside the descriptions: the prefill files they name.
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let checked = check("examples", &path);
        assert!(
            checked.diagnostics.is_empty(),
            "{}: {:#?}",
            path.display(),
            checked.diagnostics
        );
        count += 1;
    }
    assert!(count > 0);
}
