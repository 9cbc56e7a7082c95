//! The `microkit` tool: reads a Microkit system description (`system.xml`), checks it against
//! every rule of the format and Atoll's replica extension, plans every replica and writes
//! the bootable image.
//!
//! One pipeline: [`parse`] (XML → positioned declarations) → [`validate`] (cross-element
//! rules → [`model`], with [`replicas`] placing PDs on replicas) → [`plan`] (the one planner:
//! RAM, kernel objects, capabilities, then, in [`pack`], boot programs and boot specs) →
//! [`pack`] (reads the programs' ELF files, writes the image bytes, and checks them with the
//! loader's own check, `atoll_kernel_core::loadcheck`). [`check`] runs the first three; [`bootprog`]
//! encodes a replica's boot program, [`report`] prints a plan, [`diagnostics`] holds codes
//! and rendering, [`limits`] named limits, [`cli`] the command line.
//!
//! Design principles: report every problem in one run, each pointing at the offending
//! attribute value with a stable code and a hint; never panic on any input; keep document
//! order so output can be diffed.
#![forbid(unsafe_code)]

pub mod bootprog;
pub mod cli;
pub mod diagnostics;
pub mod limits;
pub mod model;
pub mod pack;
pub mod parse;
pub mod plan;
pub mod replicas;
pub mod report;
pub mod validate;

use atoll_boards::Board;

use crate::diagnostics::{Code, Diagnostic};
use crate::model::SystemDescription;

/// The result of checking one system description.
#[derive(Debug)]
pub struct Checked {
    /// The validated system, when there were no errors.
    pub system: Option<SystemDescription>,
    /// Errors, or warnings when there are no errors, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The plan: every replica's memory, objects and capabilities, when there were no errors.
    pub plan: Option<plan::Plan>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates `text` for `board`; `strict` rejects Atoll's extensions.
pub fn check(text: &str, board: &Board, strict: bool) -> Checked {
    let (decls, mut diagnostics) = parse::parse(text, strict);
    let unreadable = diagnostics
        .iter()
        .any(|d| matches!(d.code, Code::XmlSyntax | Code::NotASystem));
    let mut system = None;
    if !unreadable {
        let (validated, more) = validate::validate(&decls, board);
        diagnostics.extend(more);
        system = validated;
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        // Warnings about a broken description are mostly echoes of its errors (a region
        // "unused" because its only map was misspelled), so only clean descriptions get them.
        diagnostics.retain(Diagnostic::is_error);
        system = None;
    }
    // Planning needs no program images: whether the description fits the board is part of
    // checking it.
    let mut planned = None;
    if let Some(valid) = &system {
        match plan::plan(valid, text, board) {
            Ok(p) => planned = Some(p),
            Err(errors) => {
                diagnostics.retain(Diagnostic::is_error);
                diagnostics.extend(errors);
                system = None;
            }
        }
    }
    diagnostics.sort_by_key(|d| d.span.start);
    Checked {
        system,
        diagnostics,
        plan: planned,
    }
}
