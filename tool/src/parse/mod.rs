//! Reading `system.xml` into declarations that keep the position of every attribute value.
//!
//! The parser checks what one element can check alone (known elements and attributes,
//! required attributes, numbers, booleans, enumerations) and reports every problem; an
//! element missing something it cannot do without is dropped after its error, so later rules
//! see only well-formed declarations. Cross-element rules live in `validate`.

use roxmltree::{Node, NodeType};

use crate::diagnostics::{Code, Diagnostic, Span, did_you_mean};
use crate::limits::{MAX_PDS, MAX_XML_NODES};
use crate::model::{CapKind, DomainDuration, Perms, Trigger};

mod attributes;
mod domains;
mod elements;

/// A value and where its text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The parsed value.
    pub value: T,
    /// The attribute value (or element name) it came from.
    pub span: Span,
}

/// Everything declared in one `system.xml`, in document order.
#[derive(Debug, Default)]
pub struct Declarations {
    /// The `<system>` element name.
    pub system: Span,
    /// `<replica>` elements.
    pub replicas: Vec<ReplicaDecl>,
    /// PDs, depth first: each parent before its children.
    pub protection_domains: Vec<PdDecl>,
    /// How many `<protection_domain>` elements there were, usable or not.
    pub protection_domain_elements: usize,
    /// `<memory_region>` elements.
    pub memory_regions: Vec<MrDecl>,
    /// `<channel>` elements with exactly two usable ends.
    pub channels: Vec<ChannelDecl>,
    /// `<domains>` (the first, when given twice).
    pub domains: Option<DomainsDecl>,
}

/// `<domains>`: the domains of seL4's domain scheduler and their schedule.
#[derive(Debug)]
pub struct DomainsDecl {
    /// The element name.
    pub tag: Span,
    /// `<domain>` elements with a usable name.
    pub domains: Vec<DomainDecl>,
    /// `<domain_schedule>`; `None` when missing (already reported).
    pub schedule: Option<ScheduleDecl>,
}

/// `<domain name id>`.
#[derive(Debug)]
pub struct DomainDecl {
    /// `name`.
    pub name: Spanned<String>,
    /// `id` (default: the lowest id no other domain has).
    pub id: Option<Spanned<u64>>,
}

/// `<domain_schedule>`.
#[derive(Debug)]
pub struct ScheduleDecl {
    /// The element name.
    pub tag: Span,
    /// `start_index` (default 0).
    pub start_index: Option<Spanned<u64>>,
    /// `index_shift` (default 0).
    pub index_shift: Option<Spanned<u64>>,
    /// Its entries, in order.
    pub entries: Vec<EntryDecl>,
}

/// One entry of a domain schedule.
#[derive(Debug)]
pub enum EntryDecl {
    /// `<schedule_entry domain duration>`.
    Run {
        /// The element name.
        tag: Span,
        /// `domain`.
        domain: Spanned<String>,
        /// `duration`, non-zero.
        duration: DomainDuration,
    },
    /// `<schedule_end_marker>` (its element name).
    EndMarker(Span),
    /// A `<schedule_entry>` with an error (already reported); it keeps its place.
    Invalid,
}

/// `<replica name cores ram restart hung_after_ms>`.
#[derive(Debug)]
pub struct ReplicaDecl {
    /// Name.
    pub name: Spanned<String>,
    /// Core indices as written (distinct); empty when the list was invalid (already reported).
    pub cores: Spanned<Vec<u32>>,
    /// `ram`: bytes of RAM for this replica (default: an equal share of what is left).
    pub ram: Option<Spanned<u64>>,
    /// `restart` (Atoll extension): when the replica stops after a fatal fault, a surviving
    /// replica has the loader place it again (`None`: not written, or not a boolean, already
    /// reported; false).
    pub restart: Option<Spanned<bool>>,
    /// `hung_after_ms` (Atoll extension): how long its tick count may stay frozen before
    /// the others report it hung, as written (validation checks the range); `None`: never
    /// checked, or not a number (already reported).
    pub hung_after_ms: Option<Spanned<u64>>,
}

/// `<protection_domain>`.
#[derive(Debug)]
pub struct PdDecl {
    /// The element name.
    pub tag: Span,
    /// Name; empty when missing (already reported).
    pub name: Spanned<String>,
    /// `priority`.
    pub priority: Option<Spanned<u64>>,
    /// `budget`.
    pub budget: Option<Spanned<u64>>,
    /// `period`.
    pub period: Option<Spanned<u64>>,
    /// `passive`.
    pub passive: bool,
    /// `restart` (Atoll extension).
    pub restart: bool,
    /// `stack_size`.
    pub stack_size: Option<Spanned<u64>>,
    /// `cpu`.
    pub cpu: Option<Spanned<u64>>,
    /// `fpu`.
    pub fpu: bool,
    /// `smc`.
    pub smc: bool,
    /// `replica` (Atoll extension).
    pub replica: Option<Spanned<String>>,
    /// `domain`: the domain it runs in.
    pub domain: Option<Spanned<String>>,
    /// `id` (children only).
    pub child_id: Option<Spanned<u64>>,
    /// `setvar_id` (children only).
    pub setvar_id: Option<Spanned<String>>,
    /// Index of the parent in [`Declarations::protection_domains`].
    pub parent: Option<usize>,
    /// `<program_image>`; `None` when missing (already reported).
    pub program_image: Option<ProgramImageDecl>,
    /// `<map>` children.
    pub maps: Vec<MapDecl>,
    /// `<irq>` children.
    pub irqs: Vec<IrqDecl>,
    /// `<setvar>` children.
    pub setvars: Vec<SetvarDecl>,
    /// `<cspace>` entries.
    pub caps: Vec<CapDecl>,
}

/// `<program_image>`.
#[derive(Debug)]
pub struct ProgramImageDecl {
    /// `path`.
    pub path: Spanned<String>,
    /// `path_for_symbols`.
    pub path_for_symbols: Option<Spanned<String>>,
}

/// `<map>`.
#[derive(Debug)]
pub struct MapDecl {
    /// `mr`.
    pub mr: Spanned<String>,
    /// `vaddr`.
    pub vaddr: Spanned<u64>,
    /// `perms` (`rw` when invalid, after the error).
    pub perms: Perms,
    /// Where `perms` is written, if it is.
    pub perms_span: Option<Span>,
    /// `cached`.
    pub cached: bool,
    /// Where `cached` is written, if it is.
    pub cached_span: Option<Span>,
    /// `setvar_vaddr`.
    pub setvar_vaddr: Option<Spanned<String>>,
    /// `setvar_size`.
    pub setvar_size: Option<Spanned<String>>,
    /// `setvar_prefill_size`.
    pub setvar_prefill_size: Option<Spanned<String>>,
}

/// `<irq>` (ARM flavour).
#[derive(Debug)]
pub struct IrqDecl {
    /// `irq` and `trigger`, or `device`.
    pub source: IrqSource,
    /// `id`.
    pub id: Spanned<u64>,
    /// `setvar_id`.
    pub setvar_id: Option<Spanned<String>>,
}

/// Where an `<irq>`'s interrupt comes from.
#[derive(Debug)]
pub enum IrqSource {
    /// `irq`, with `trigger` (level when not given or invalid, after the error).
    Number {
        /// `irq`.
        irq: Spanned<u64>,
        /// `trigger`.
        trigger: Trigger,
    },
    /// `device` (Atoll extension): a device of the board, whose interrupt and trigger
    /// validation looks up.
    Device(Spanned<String>),
}

/// `<setvar>`.
#[derive(Debug)]
pub struct SetvarDecl {
    /// `symbol`.
    pub symbol: Spanned<String>,
    /// What the symbol receives.
    pub value: SetvarSource,
}

/// What a `<setvar>` patches into its symbol.
#[derive(Debug)]
pub enum SetvarSource {
    /// `region_paddr`: the physical address of the region it names.
    RegionPaddr(Spanned<String>),
    /// `directory="system"` (Atoll extension): the system's directory
    /// (`atoll_abi::directory::Directory`); the span of the attribute value.
    Directory(Span),
    /// `value` (Atoll extension): a literal number or IPv4 address, parsed.
    Value(Spanned<u64>),
}

/// `<cap_tcb>`, `<cap_sc>` or `<cap_vspace>` inside `<cspace>`.
#[derive(Debug)]
pub struct CapDecl {
    /// Which element.
    pub kind: CapKind,
    /// `slot`.
    pub slot: Spanned<u64>,
    /// `pd`.
    pub pd: Spanned<String>,
}

/// `<memory_region>`.
#[derive(Debug)]
pub struct MrDecl {
    /// `name`.
    pub name: Spanned<String>,
    /// `size`.
    pub size: Option<Spanned<u64>>,
    /// `page_size`.
    pub page_size: Option<Spanned<u64>>,
    /// `phys_addr`.
    pub phys_addr: Option<Spanned<u64>>,
    /// `prefill_path`.
    pub prefill_path: Option<Spanned<String>>,
    /// `prefill_bootinfo` (only `fdt` gets this far).
    pub prefill_bootinfo: Option<Spanned<String>>,
    /// `device` (Atoll extension): a device of the board whose registers the region covers;
    /// when given, the five attributes above are not (each one given was an error).
    pub device: Option<Spanned<String>>,
}

/// `<channel>`.
#[derive(Debug)]
pub struct ChannelDecl {
    /// The element name.
    pub tag: Span,
    /// The two ends.
    pub ends: [EndDecl; 2],
}

/// `<end>`.
#[derive(Debug)]
pub struct EndDecl {
    /// `pd`.
    pub pd: Spanned<String>,
    /// `id`.
    pub id: Spanned<u64>,
    /// `pp` (`None`: not written, false).
    pub pp: Option<Spanned<bool>>,
    /// `notify`.
    pub notify: bool,
    /// `setvar_id`.
    pub setvar_id: Option<Spanned<String>>,
}

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// No digits.
    Empty,
    /// A character that is not a digit of the base, nor `_`.
    Invalid,
    /// More than 64 bits.
    TooLarge,
}

/// Parses Microkit's numbers: decimal or `0x` hex, with `_` separators anywhere.
pub fn parse_number(text: &str) -> Result<u64, NumberError> {
    let (digits, radix) = match text.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let digit = c.to_digit(radix).ok_or(NumberError::Invalid)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(NumberError::TooLarge)?;
        any = true;
    }
    if any {
        Ok(value)
    } else {
        Err(NumberError::Empty)
    }
}

/// Parses a `<setvar value>` (Atoll extension): a number as [`parse_number`] reads it, or a
/// dotted-quad IPv4 address (`10.0.2.15` is `0x0a00_020f`, the address as a big-endian
/// `u32`, which is how `core::net::Ipv4Addr::from(u32)` reads it back). The error is the
/// end of a sentence that starts with the value: "is not a number or an IPv4 address".
/// Each part of an address is plain decimal, 0 to 255, without a leading zero (which some
/// tools read as octal: `010` would mean 8 there and 10 here, so it is refused).
pub fn parse_setvar_value(text: &str) -> Result<u64, String> {
    if !text.contains('.') {
        return parse_number(text).map_err(|error| match error {
            NumberError::TooLarge => "does not fit in 64 bits".to_string(),
            NumberError::Empty | NumberError::Invalid => {
                "is not a number or an IPv4 address".to_string()
            }
        });
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "is not an IPv4 address: it has {} parts, not 4",
            parts.len()
        ));
    }
    let mut address: u32 = 0;
    for part in parts {
        let byte = match part.parse::<u32>() {
            _ if part.is_empty() => return Err("is not an IPv4 address: a part is empty".into()),
            _ if !part.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!(
                    "is not an IPv4 address: '{part}' is not a decimal number"
                ));
            }
            _ if part.len() > 1 && part.starts_with('0') => {
                return Err(format!(
                    "is not an IPv4 address: '{part}' has a leading zero"
                ));
            }
            Ok(byte) if byte <= 255 => byte,
            _ => return Err(format!("is not an IPv4 address: {part} is above 255")),
        };
        address = address << 8 | byte;
    }
    Ok(u64::from(address))
}

/// Parses a replica's core list: `0`, `2,3`, `2-3`, `0, 2-3`. Cores are returned distinct,
/// in the order written.
pub fn parse_cores(text: &str) -> Result<Vec<u32>, String> {
    let mut cores: Vec<u32> = Vec::new();
    let core = |item: &str| -> Result<u32, String> {
        let item = item.trim();
        let value = parse_number(item).map_err(|_| format!("'{item}' is not a core number"))?;
        u32::try_from(value)
            .ok()
            .filter(|&core| (core as usize) < crate::limits::MAX_CORE_INDEX)
            .ok_or_else(|| format!("core {value} is out of range"))
    };
    for item in text.split(',') {
        let range = match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (core(first)?, core(last)?);
                if first > last {
                    return Err(format!("range {first}-{last} is empty"));
                }
                first..=last
            }
            None => {
                let single = core(item)?;
                single..=single
            }
        };
        for core in range {
            if cores.contains(&core) {
                return Err(format!("core {core} is listed twice"));
            }
            cores.push(core);
        }
    }
    Ok(cores)
}

/// Parses `text` as a system description; `strict` rejects Atoll's extensions.
pub fn parse(text: &str, strict: bool) -> (Declarations, Vec<Diagnostic>) {
    let mut parser = Parser {
        text,
        strict,
        diagnostics: Vec::new(),
        decls: Declarations::default(),
    };
    let options = roxmltree::ParsingOptions {
        nodes_limit: MAX_XML_NODES,
        ..Default::default()
    };
    match roxmltree::Document::parse_with_options(text, options) {
        Ok(document) => parser.document(&document),
        Err(error) => {
            let at = offset_of(text, error.pos());
            parser.diagnostics.push(Diagnostic::error(
                Code::XmlSyntax,
                Span::new(at, at),
                format!("not well-formed XML: {error}"),
            ));
        }
    }
    (parser.decls, parser.diagnostics)
}

/// Byte offset of a 1-based row and column (columns in characters).
fn offset_of(text: &str, pos: roxmltree::TextPos) -> usize {
    let mut offset = 0;
    for (row, line) in text.split_inclusive('\n').enumerate() {
        if row + 1 == pos.row as usize {
            let column = (pos.col as usize).saturating_sub(1);
            return offset
                + line
                    .char_indices()
                    .nth(column)
                    .map_or(line.len(), |(i, _)| i);
        }
        offset += line.len();
    }
    text.len()
}

/// `<irq>` attributes of Microkit's x86 flavours (IOAPIC and MSI).
const UNSUPPORTED_IRQ_ATTRIBUTES: &[&str] =
    &["pin", "vector", "ioapic", "polarity", "pcidev", "handle"];

/// Child elements of `<system>`, for suggestions.
const SYSTEM_CHILDREN: &[&str] = &[
    "protection_domain",
    "memory_region",
    "channel",
    "replica",
    "domains",
];
/// Child elements of `<protection_domain>`, for suggestions.
const PD_CHILDREN: &[&str] = &[
    "program_image",
    "map",
    "irq",
    "setvar",
    "protection_domain",
    "cspace",
];

struct Parser<'t> {
    text: &'t str,
    strict: bool,
    diagnostics: Vec<Diagnostic>,
    decls: Declarations,
}

/// An element being read: its node and the span of its name.
#[derive(Clone, Copy)]
struct Element<'a, 'input> {
    node: Node<'a, 'input>,
    tag: Span,
}

impl<'a, 'input> Element<'a, 'input> {
    fn new(node: Node<'a, 'input>) -> Self {
        let start = node.range().start + 1;
        Element {
            node,
            tag: Span::new(start, start + node.tag_name().name().len()),
        }
    }

    fn name(&self) -> &'a str {
        self.node.tag_name().name()
    }
}

impl<'t> Parser<'t> {
    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::error(code, span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    fn document(&mut self, document: &roxmltree::Document<'_>) {
        let root = Element::new(document.root_element());
        if root.name() != "system" {
            self.error(
                Code::NotASystem,
                root.tag,
                format!("the root element is '<{}>'", root.name()),
            )
            .help = Some("a system description is a single <system> element".into());
            return;
        }
        self.decls.system = root.tag;
        self.attributes(root, &[]);
        for child in self.children(root) {
            match child.name() {
                "protection_domain" => self.protection_domain(child, None),
                "memory_region" => self.memory_region(child),
                "channel" => self.channel(child),
                "replica" => self.replica(child),
                "virtual_machine" => self.unsupported(
                    child,
                    "virtual machines need a hypervisor kernel, and Atoll's kernel is not one",
                ),
                "domains" => self.domains(child),
                "io_address_space" => {
                    self.unsupported(child, "IOMMU address spaces exist only on x86-64")
                }
                _ => self.unknown_element(child, "system", SYSTEM_CHILDREN),
            }
        }
    }

    /// The element children of `element`, reporting stray text.
    fn children<'a, 'i>(&mut self, element: Element<'a, 'i>) -> Vec<Element<'a, 'i>> {
        let mut elements = Vec::new();
        for node in element.node.children() {
            match node.node_type() {
                NodeType::Element => elements.push(Element::new(node)),
                NodeType::Text if !node.text().unwrap_or("").trim().is_empty() => {
                    let range = node.range();
                    let text = self.text.get(range.clone()).unwrap_or("");
                    let lead = text.len() - text.trim_start().len();
                    let span = Span::new(range.start + lead, range.start + text.trim_end().len());
                    self.error(
                        Code::UnexpectedText,
                        span,
                        format!("unexpected text inside '<{}>'", element.name()),
                    );
                }
                _ => {}
            }
        }
        elements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("4096"), Ok(4096));
        assert_eq!(parse_number("0x200_000"), Ok(0x20_0000));
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert_eq!(parse_number("0xFFFF_FFFF_FFFF_FFFF"), Ok(u64::MAX));
        assert_eq!(
            parse_number("0x1_0000_0000_0000_0000"),
            Err(NumberError::TooLarge)
        );
        assert_eq!(
            parse_number("18446744073709551616"),
            Err(NumberError::TooLarge)
        );
        assert_eq!(parse_number(""), Err(NumberError::Empty));
        assert_eq!(parse_number("0x"), Err(NumberError::Empty));
        assert_eq!(parse_number("+5"), Err(NumberError::Invalid));
        assert_eq!(parse_number("-1"), Err(NumberError::Invalid));
        assert_eq!(parse_number("12a"), Err(NumberError::Invalid));
        assert_eq!(parse_number(" 1"), Err(NumberError::Invalid));
    }

    #[test]
    fn setvar_values() {
        assert_eq!(parse_setvar_value("24"), Ok(24));
        assert_eq!(parse_setvar_value("0x0a00_020f"), Ok(0x0a00_020f));
        assert_eq!(parse_setvar_value("10.0.2.15"), Ok(0x0a00_020f));
        assert_eq!(parse_setvar_value("0.0.0.0"), Ok(0));
        assert_eq!(parse_setvar_value("255.255.255.255"), Ok(0xffff_ffff));
        assert_eq!(parse_setvar_value("0xFFFF_FFFF_FFFF_FFFF"), Ok(u64::MAX));
        let error = |text| parse_setvar_value(text).unwrap_err();
        assert_eq!(error("18446744073709551616"), "does not fit in 64 bits");
        for garbage in ["", "ten", "-1", "10.0.2.15/24", "0x", " 1"] {
            assert!(parse_setvar_value(garbage).is_err(), "{garbage:?}");
        }
        assert_eq!(error("ten"), "is not a number or an IPv4 address");
        assert_eq!(
            error("256.1.1.1"),
            "is not an IPv4 address: 256 is above 255"
        );
        assert_eq!(
            error("99999999999.1.1.1"),
            "is not an IPv4 address: 99999999999 is above 255"
        );
        assert_eq!(
            error("10.0.2"),
            "is not an IPv4 address: it has 3 parts, not 4"
        );
        assert_eq!(
            error("10.0.2.15.1"),
            "is not an IPv4 address: it has 5 parts, not 4"
        );
        assert_eq!(error("10..2.15"), "is not an IPv4 address: a part is empty");
        assert_eq!(
            error("10.0.2.0x1"),
            "is not an IPv4 address: '0x1' is not a decimal number"
        );
        assert_eq!(
            error("10.0.+2.15"),
            "is not an IPv4 address: '+2' is not a decimal number"
        );
        assert_eq!(
            error("010.0.2.15"),
            "is not an IPv4 address: '010' has a leading zero"
        );
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("0"), Ok(vec![0]));
        assert_eq!(parse_cores("2,3"), Ok(vec![2, 3]));
        assert_eq!(parse_cores("2-3"), Ok(vec![2, 3]));
        assert_eq!(parse_cores("0, 2-3"), Ok(vec![0, 2, 3]));
        assert!(parse_cores("").is_err());
        assert!(parse_cores("3-2").is_err());
        assert!(parse_cores("1,1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(parse_cores("99999999999").is_err());
    }

    #[test]
    fn syntax_error_points_into_the_text() {
        let (_, diagnostics) = parse("<system>\n  <oops\n</system>", false);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, Code::XmlSyntax);
    }
}
