//! The `microkit` tool: reads a Microkit system description (`system.xml`), checks it against
//! every rule of the format and Atoll's replica extension, plans every replica and writes
//! the bootable image.
//!
//! One pipeline, a step a module:
//! 1. [`parse`]: XML to declarations that keep the position of every value.
//! 2. [`validate`]: the rules that span elements, giving the [`model`] (with
//!    `validate::replicas` placing PDs on replicas).
//! 3. [`files`]: for a build, the program images and prefill files the description names
//!    (ELF files are read by [`elf`]).
//! 4. [`plan`]: the one planner and every layout rule: RAM, kernel objects, capabilities,
//!    where each program goes, boot programs, boot specs.
//! 5. [`pack`]: the bytes of every placed part gathered and written as the image, which is
//!    then checked with the loader's own check (`atoll_kernel_core::loadcheck`).
//!
//! [`check`] runs steps 1, 2 and 4 without reading any file (`--check`, `--plan-only`). A
//! build runs [`parse_and_validate`], [`files::Files::read`], [`Checked::planned`] and
//! [`build_planned`], planning once; [`build`] chains the last three for a caller that
//! prints no diagnostics. Around the pipeline: [`diagnostics`] (codes and rendering), [`error`] (why
//! a build failed), [`limits`] (named limits), [`report`] (a plan as text, JSON and
//! Graphviz) and [`cli`] (the command line). `tests/docs.rs` checks that this text names
//! every module.
//!
//! Design principles: report every problem in one run, each pointing at the offending
//! attribute value with a stable code and a hint; never panic on any input; keep document
//! order so output can be diffed.
#![forbid(unsafe_code)]

pub mod cli;
pub mod diagnostics;
pub mod elf;
pub mod error;
pub mod files;
pub mod limits;
pub mod model;
pub mod pack;
pub mod parse;
pub mod plan;
pub mod report;
pub mod validate;

use atoll_boards::Board;

use crate::diagnostics::{Code, Diagnostic};
use crate::elf::Binaries;
use crate::error::PackError;
use crate::files::Files;
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

/// Parses and validates `text` for `board` (the pipeline's first two steps); `strict`
/// rejects Atoll's extensions. The result has no plan yet: see [`Checked::planned`].
pub fn parse_and_validate(text: &str, board: &Board, strict: bool) -> Checked {
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
    diagnostics.sort_by_key(|d| d.span.start);
    Checked {
        system,
        diagnostics,
        plan: None,
    }
}

impl Checked {
    /// Plans the validated system, if there is one (the pipeline's third step), knowing
    /// what `files` read of it; planning's errors join the diagnostics in place of the
    /// warnings.
    pub fn planned(mut self, text: &str, board: &Board, files: &Files) -> Self {
        if let Some(valid) = &self.system {
            match plan::plan_with_files(valid, text, board, files) {
                Ok(p) => self.plan = Some(p),
                Err(errors) => {
                    self.diagnostics.retain(Diagnostic::is_error);
                    self.diagnostics.extend(errors);
                    self.diagnostics.sort_by_key(|d| d.span.start);
                    self.system = None;
                }
            }
        }
        self
    }
}

/// Parses, validates and plans `text` for `board` without reading any file: what `--check`
/// and `--plan-only` report. Planning needs no program images: whether the description
/// fits the board is part of checking it.
pub fn check(text: &str, board: &Board, strict: bool) -> Checked {
    parse_and_validate(text, board, strict).planned(text, board, &Files::default())
}

/// The pipeline after validation, for a caller that prints no diagnostics of its own
/// (`cargo xtask build`): reads the files `system` names, plans once knowing them, and
/// packs ([`build_planned`]). Planning's errors come back as [`PackError::Layout`], after
/// any problem with a prefill file.
pub fn build(
    system: &SystemDescription,
    text: &str,
    inputs: &pack::Inputs<'_>,
) -> Result<pack::Packed, Vec<PackError>> {
    let files = Files::read(system, inputs.search_paths);
    match plan::plan_with_files(system, text, inputs.board, &files) {
        Ok(plan) => build_planned(system, plan, files, inputs),
        Err(diagnostics) => {
            let mut errors = files.errors;
            errors.extend(
                diagnostics
                    .into_iter()
                    .map(|d| PackError::Layout(d.message)),
            );
            Err(errors)
        }
    }
}

/// The end of a build, once `plan` is made knowing `files`: places each PD's program as it
/// is read and patched, plans the boot programs and boot specs, then writes the image and
/// checks it as the loader will.
pub fn build_planned(
    system: &SystemDescription,
    mut plan: plan::Plan,
    files: Files,
    inputs: &pack::Inputs<'_>,
) -> Result<pack::Packed, Vec<PackError>> {
    let Files {
        prefills,
        mut errors,
        ..
    } = files;
    let binaries = Binaries::read(inputs.kernel_elf, inputs.loader_elf, inputs.initialiser_elf)
        .map_err(|e| vec![PackError::Layout(e.to_string())])?;
    let mut programs = pack::ProgramParts::new(system, inputs.search_paths, &prefills, &mut errors);
    plan::place_programs(&mut plan, &mut programs);
    let programs = programs.into_parts();
    let mut boot_programs = Vec::new();
    if errors.is_empty() {
        let mut problems = Vec::new();
        boot_programs = plan::boot_programs(&mut plan, &mut problems);
        errors.extend(problems.into_iter().map(PackError::Layout));
    }
    let regions = pack::region_parts(system, &plan, &prefills, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let spec_inputs = plan::SpecInputs {
        board: inputs.board,
        kernel: &binaries.kernel,
        initialiser: binaries.initialiser.as_ref(),
        flags: inputs.replica_flags,
        fault_late_ticks: inputs.fault_late_ticks,
        hang_late_ticks: inputs.hang_late_ticks,
        boot_programs: &boot_programs,
    };
    let specs = plan::boot_specs(&plan, &spec_inputs)
        .map_err(|e| vec![PackError::Layout(format!("replica layout: {e}"))])?;
    let parts: Vec<pack::OwnedPart> = [programs, pack::boot_program_parts(boot_programs), regions]
        .into_iter()
        .flatten()
        .collect();
    let image = pack::write_image(inputs.board, &binaries, &specs, &parts).map_err(|e| vec![e])?;
    pack::check_image(inputs.board, &binaries.loader, &image).map_err(|e| vec![e])?;
    Ok(pack::Packed { image, plan })
}
