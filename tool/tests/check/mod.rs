//! What several of the tool's integration tests share: checking a description on the
//! `virt` board, and reading what came of it.
#![allow(
    dead_code,
    reason = "each test file that includes this module uses a part of it"
)]

use atoll_tool::diagnostics::{Code, Diagnostic};
use atoll_tool::plan::Plan;

/// The board the descriptions are checked for.
pub const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;

/// The diagnostics of a description that must be refused (`strict`: warnings refuse too).
pub fn errors(text: &str, strict: bool) -> Vec<Diagnostic> {
    let checked = atoll_tool::check(text, BOARD, strict);
    assert!(checked.system.is_none(), "{text}");
    assert!(checked.plan.is_none(), "{text}");
    checked.diagnostics
}

/// The diagnostics' codes, in order.
pub fn codes(diagnostics: &[Diagnostic]) -> Vec<Code> {
    diagnostics.iter().map(|d| d.code).collect()
}

/// The text a diagnostic points at.
pub fn at<'t>(text: &'t str, diagnostic: &Diagnostic) -> &'t str {
    &text[diagnostic.span.start..diagnostic.span.end]
}

/// The plan of a description that must be accepted without a diagnostic.
pub fn plan(text: &str) -> Plan {
    let checked = atoll_tool::check(text, BOARD, false);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    checked.plan.expect("a plan")
}
