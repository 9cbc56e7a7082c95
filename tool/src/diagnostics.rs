//! Diagnostics: what is wrong with a system description, where, and how to fix it, rendered
//! for people (`human`, via miette), for editors (`short`) or for programs (`json`).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

/// A byte range in the system description's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }
}

impl From<std::ops::Range<usize>> for Span {
    fn from(range: std::ops::Range<usize>) -> Self {
        Span::new(range.start, range.end)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.start, span.end - span.start).into()
    }
}

/// How bad a diagnostic is. Only errors make the tool fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The description is invalid.
    Error,
    /// The description is valid but probably not what was meant.
    Warning,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $summary:literal;)*) => {
        /// A stable diagnostic code. The table is in `docs/system-description.md`; a code's
        /// meaning never changes, retired codes are never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `sdf::E020`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("sdf::", $code),)* }
            }

            /// One line saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    /// The file is not well-formed XML.
    XmlSyntax = "E001", "the file is not well-formed XML";
    /// The root element is not `<system>`.
    NotASystem = "E002", "the root element is not `<system>`";
    /// An element that does not belong where it is.
    UnknownElement = "E003", "unknown element";
    /// An attribute the element does not take.
    UnknownAttribute = "E004", "unknown attribute";
    /// A required attribute is missing.
    MissingAttribute = "E005", "missing required attribute";
    /// A number that is not decimal or `0x` hex, or does not fit.
    InvalidNumber = "E006", "invalid number";
    /// A boolean that is not `true` or `false`.
    InvalidBoolean = "E007", "invalid boolean";
    /// Text where only elements may appear.
    UnexpectedText = "E008", "unexpected text";
    /// A value outside the attribute's set (perms, trigger, cores, ...).
    InvalidValue = "E009", "invalid attribute value";
    /// An element appears too often or not often enough.
    ElementCount = "E010", "wrong number of child elements";
    /// A Microkit feature that needs hardware or kernel support Atoll lacks.
    Unsupported = "E011", "feature not supported by Atoll";
    /// Two attributes of one element that exclude each other (`device` and what it sets).
    ConflictingAttributes = "E012", "conflicting attributes";
    /// Two things of one kind share a name.
    DuplicateName = "E020", "duplicate name";
    /// The name `monitor` is reserved.
    ReservedName = "E021", "reserved name";
    /// A reference to a protection domain that does not exist.
    UnknownPd = "E022", "unknown protection domain";
    /// A reference to a memory region that does not exist.
    UnknownMr = "E023", "unknown memory region";
    /// A reference to a replica that does not exist.
    UnknownReplica = "E024", "unknown replica";
    /// No protection domain, or more than 63.
    PdCount = "E025", "wrong number of protection domains";
    /// A reference to a domain that is not declared in `<domains>`.
    UnknownDomain = "E026", "unknown domain";
    /// `device=` names no device of the board.
    UnknownDevice = "E027", "unknown board device";
    /// Priority outside 0..=254.
    PriorityRange = "E030", "priority out of range";
    /// Budget larger than period.
    BudgetExceedsPeriod = "E031", "budget exceeds period";
    /// Stack size out of range or not page aligned.
    StackSize = "E032", "invalid stack size";
    /// `cpu` names a core the board does not have.
    CpuRange = "E033", "core out of range";
    /// Channel, IRQ or child id outside 0..=61.
    IdRange = "E040", "id out of range";
    /// Two channel ends or IRQs of one PD use the same id.
    DuplicateId = "E041", "duplicate id in a protection domain";
    /// One hardware interrupt claimed twice.
    DuplicateIrq = "E042", "duplicate IRQ number";
    /// An interrupt number that no PD may claim.
    IrqNumber = "E043", "IRQ number not available";
    /// Both ends of a channel have `pp="true"`.
    PpBothEnds = "E044", "protected procedure call in both directions";
    /// A PPC towards a PD whose priority is not strictly higher.
    PpPriority = "E045", "protected procedure call to a PD of lower or equal priority";
    /// A page size other than 4 KiB or 2 MiB.
    PageSize = "E050", "unsupported page size";
    /// A memory region size that is zero or not a multiple of its page size.
    RegionSize = "E051", "invalid memory region size";
    /// A physical address that is misaligned or overflows.
    PhysAddr = "E052", "invalid physical address";
    /// A mapping address that is not a multiple of the region's page size.
    VaddrAlignment = "E053", "misaligned mapping address";
    /// A mapping that does not fit below the PD's stack.
    VaddrRange = "E054", "mapping address out of range";
    /// Two mappings of one PD overlap.
    OverlappingMaps = "E055", "overlapping mappings";
    /// Two fixed-address memory regions overlap.
    OverlappingRegions = "E056", "overlapping memory regions";
    /// A write-only mapping.
    WriteOnly = "E057", "write-only mapping";
    /// Inconsistent prefill attributes.
    Prefill = "E058", "invalid prefill";
    /// A mapping of the built-in `atoll_status` region that is not read-only and cached.
    StatusPageMap = "E059", "status page not mapped read-only and cached";
    /// One symbol patched twice in one PD.
    DuplicateSymbol = "E060", "duplicate setvar symbol";
    /// Two children of one PD share an id.
    DuplicateChildId = "E070", "duplicate child id";
    /// A `<cspace>` slot that is reserved or out of range.
    CapSlot = "E071", "invalid capability slot";
    /// Two `<cspace>` caps in one slot.
    OverlappingCaps = "E072", "overlapping capability slots";
    /// A `<cspace>` capability to a PD of another replica.
    CapAcrossReplicas = "E073", "capability across replicas";
    /// A replica core the board does not have.
    CoreRange = "E080", "replica core out of range";
    /// A core given to two replicas.
    SharedCore = "E081", "core in two replicas";
    /// More replicas than an image may carry.
    ReplicaCount = "E082", "too many replicas";
    /// A PD whose core belongs to no replica, or not to its replica.
    CoreWithoutReplica = "E083", "core outside the PD's replica";
    /// A protected procedure call between replicas.
    CrossReplicaPpc = "E084", "protected procedure call across replicas";
    /// A parent and child PD in different replicas.
    CrossReplicaChild = "E085", "parent and child in different replicas";
    /// An Atoll extension used under `--strict`.
    StrictExtension = "E086", "Atoll extension rejected by --strict";
    /// `restart="true"` on a replica that cannot be restarted: the system's only replica
    /// (no other replica survives to restart it), or one with a cross-replica channel word
    /// past the 64 its restart can clear.
    ReplicaRestart = "E087", "replica cannot be restarted";
    /// The plan does not fit the board's memory.
    OutOfMemory = "E090", "not enough memory";
    /// A region at a fixed physical address over the RAM Atoll boots from.
    FixedRegionInBootArea = "E091", "fixed region over the boot area";
    /// The first replica does not hold the boot core.
    BootCoreReplica = "E092", "boot core outside the first replica";
    /// A domain id of 16 or more, or more domains than ids.
    DomainId = "E100", "domain id out of range";
    /// Two domains share an id.
    DuplicateDomainId = "E101", "duplicate domain id";
    /// A domain schedule the kernel cannot hold or start.
    DomainSchedule = "E102", "invalid domain schedule";
    /// `<domains>` in a system with more than one core.
    DomainsMulticore = "E103", "domain scheduler on more than one core";
    /// A memory region no PD maps.
    UnusedRegion = "W001", "unused memory region";
    /// A declared replica that runs no PD.
    EmptyReplica = "W002", "replica without protection domains";
    /// A domain schedule that never gives domain 0, the monitor's, a turn.
    MonitorDomainIdle = "W003", "monitor's domain never scheduled";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a system description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The offending attribute value (or element name).
    pub span: Span,
    /// Text under the primary span, if any.
    pub label: Option<String>,
    /// Other places involved ("first defined here").
    pub secondary: Vec<(Span, String)>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, span, message.into())
    }

    /// A warning at `span`.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, span, message.into())
    }

    fn new(code: Code, severity: Severity, span: Span, message: String) -> Self {
        Diagnostic {
            code,
            severity,
            message,
            span,
            label: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Puts `text` under the primary span.
    pub fn with_label(mut self, text: impl Into<String>) -> Self {
        self.label = Some(text.into());
        self
    }

    /// Adds a second place, with its own text.
    pub fn with_secondary(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push((span, text.into()));
        self
    }

    /// Adds a hint on how to fix it (a later hint replaces an earlier one).
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds `did you mean '…'?` when `candidates` hold a close match to `wrong`.
    pub fn with_suggestion<'a>(
        self,
        wrong: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match did_you_mean(wrong, candidates) {
            Some(best) => self.with_help(format!("did you mean '{best}'?")),
            None => self,
        }
    }

    /// Whether this diagnostic fails the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate to `wrong`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(wrong, candidate), candidate))
        .filter(|&(score, candidate)| {
            // Close by similarity, or a typo or two away (swapped letters count as one).
            let edits = strsim::damerau_levenshtein(wrong, candidate);
            candidate != wrong && (score >= 0.8 || edits <= (wrong.len() / 3).max(1))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The text of a system description together with its name, for locating spans.
#[derive(Debug)]
pub struct Source {
    named: NamedSource<String>,
    line_starts: Vec<usize>,
}

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Source {
    /// Wraps `text`, read from the file called `name`.
    pub fn new(name: impl AsRef<str>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            named: NamedSource::new(name, text),
            line_starts,
        }
    }

    /// The file name as given.
    pub fn name(&self) -> &str {
        self.named.name()
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        self.named.inner()
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn locate(&self, offset: usize) -> Location {
        let text = self.text();
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let column = text[start..offset].chars().count() + 1;
        Location { line, column }
    }

    fn clamp(&self, span: Span) -> Span {
        let len = self.text().len();
        Span::new(span.start.min(len), span.end.min(len))
    }
}

/// How diagnostics are printed (`--message-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageFormat {
    /// Source snippets with labels and help.
    #[default]
    Human,
    /// One line each: `file:line:col: error[CODE]: message`.
    Short,
    /// One JSON object per line.
    Json,
}

/// Renders one diagnostic, ending with a newline.
pub fn render(
    diagnostic: &Diagnostic,
    source: &Source,
    format: MessageFormat,
    colour: bool,
) -> String {
    match format {
        MessageFormat::Human => render_human(diagnostic, source, colour),
        MessageFormat::Short => render_short(diagnostic, source),
        MessageFormat::Json => render_json(diagnostic, source),
    }
}

/// The graphical rendering, 100 columns wide; without colour it is stable for snapshots.
pub fn render_human(diagnostic: &Diagnostic, source: &Source, colour: bool) -> String {
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let report = WithSource { diagnostic, source };
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = render_short(diagnostic, source);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The one-line rendering.
pub fn render_short(diagnostic: &Diagnostic, source: &Source) -> String {
    let at = source.locate(diagnostic.span.start);
    let severity = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!(
        "{}:{}:{}: {severity}[{}]: {}\n",
        source.name(),
        at.line,
        at.column,
        diagnostic.code,
        diagnostic.message
    )
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    message: Option<&'a str>,
    primary: bool,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: Severity,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

/// The JSON rendering: one object and a newline.
pub fn render_json(diagnostic: &Diagnostic, source: &Source) -> String {
    fn label<'a>(
        source: &Source,
        span: Span,
        message: Option<&'a str>,
        primary: bool,
    ) -> JsonLabel<'a> {
        let (start, end) = (source.locate(span.start), source.locate(span.end));
        JsonLabel {
            message,
            primary,
            line: start.line,
            column: start.column,
            end_line: end.line,
            end_column: end.column,
        }
    }
    let at = source.locate(diagnostic.span.start);
    let labels = std::iter::once(label(
        source,
        diagnostic.span,
        diagnostic.label.as_deref(),
        true,
    ))
    .chain(
        diagnostic
            .secondary
            .iter()
            .map(|(span, text)| label(source, *span, Some(text.as_str()), false)),
    )
    .collect();
    let json = JsonDiagnostic {
        code: diagnostic.code.as_str(),
        severity: diagnostic.severity,
        message: &diagnostic.message,
        file: source.name(),
        line: at.line,
        column: at.column,
        labels,
        help: diagnostic.help.as_deref(),
    };
    let mut line = serde_json::to_string(&json).unwrap_or_else(|_| String::from("{}"));
    line.push('\n');
    line
}

/// A diagnostic joined with its source, as miette wants it.
#[derive(Debug)]
struct WithSource<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a Source,
}

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for WithSource<'_> {}

impl miette::Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source.named)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(
            self.diagnostic.label.clone(),
            self.source.clamp(self.diagnostic.span),
        );
        let secondary = self.diagnostic.secondary.iter().map(|(span, text)| {
            LabeledSpan::new_with_span(Some(text.clone()), self.source.clamp(*span))
        });
        Some(Box::new(std::iter::once(primary).chain(secondary)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let source = Source::new("s.xml", "ab\nçd\n".to_string());
        assert_eq!(source.locate(0), Location { line: 1, column: 1 });
        assert_eq!(source.locate(3), Location { line: 2, column: 1 });
        assert_eq!(source.locate(5), Location { line: 2, column: 2 });
        assert_eq!(source.locate(4), Location { line: 2, column: 1 });
        assert_eq!(source.locate(99), Location { line: 3, column: 1 });
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        assert!(Code::ALL.iter().all(|code| seen.insert(code.as_str())));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("uartt", ["uart", "kv"]), Some("uart"));
        assert_eq!(did_you_mean("zzz", ["uart", "kv"]), None);
        assert_eq!(did_you_mean("bfu", ["buf", "ring"]), Some("buf"));
    }
}
