//! Reading `system.xml` into declarations that keep the position of every attribute value.
//!
//! The parser checks what one element can check alone (known elements and attributes,
//! required attributes, numbers, booleans, enumerations) and reports every problem; an
//! element missing something it cannot do without is dropped after its error, so later rules
//! see only well-formed declarations. Cross-element rules live in `validate`.

use roxmltree::{Node, NodeType};

use crate::diagnostics::{Code, Diagnostic, Span, did_you_mean};
use crate::limits::{MAX_PDS, MAX_XML_NODES};
use crate::model::{CapKind, Perms, Trigger};

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
}

/// `<replica name cores>`.
#[derive(Debug)]
pub struct ReplicaDecl {
    /// Name.
    pub name: Spanned<String>,
    /// Core indices as written (distinct); empty when the list was invalid (already reported).
    pub cores: Spanned<Vec<u32>>,
    /// `ram`: bytes of RAM for this replica (default: an equal share of what is left).
    pub ram: Option<Spanned<u64>>,
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
    /// `replica` (Atoll extension).
    pub replica: Option<Spanned<String>>,
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
    /// `cached`.
    pub cached: bool,
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
    /// `irq`.
    pub irq: Spanned<u64>,
    /// `id`.
    pub id: Spanned<u64>,
    /// `trigger`.
    pub trigger: Trigger,
    /// `setvar_id`.
    pub setvar_id: Option<Spanned<String>>,
}

/// `<setvar>`.
#[derive(Debug)]
pub struct SetvarDecl {
    /// `symbol`.
    pub symbol: Spanned<String>,
    /// `region_paddr`.
    pub region_paddr: Spanned<String>,
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
const SYSTEM_CHILDREN: &[&str] = &["protection_domain", "memory_region", "channel", "replica"];
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
                "domains" => self.unsupported(
                    child,
                    "seL4's domain scheduler is not available: Atoll replicas schedule by \
                     priority only",
                ),
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

    fn unknown_element(&mut self, element: Element<'_, '_>, parent: &str, allowed: &[&str]) {
        let name = element.name();
        let diagnostic = self.error(
            Code::UnknownElement,
            element.tag,
            format!("'<{name}>' is not allowed inside '<{parent}>'"),
        );
        if let Some(best) = did_you_mean(name, allowed.iter().copied()) {
            diagnostic.help = Some(format!("did you mean '<{best}>'?"));
        } else if allowed.is_empty() {
            diagnostic.help = Some(format!("'<{parent}>' takes no child elements"));
        } else {
            diagnostic.help = Some(format!("'<{parent}>' may contain: {}", allowed.join(", ")));
        }
    }

    fn unsupported(&mut self, element: Element<'_, '_>, why: &str) {
        self.error(
            Code::Unsupported,
            element.tag,
            format!("'<{}>' is not supported by Atoll: {why}", element.name()),
        );
    }

    /// Reports attributes outside `allowed`.
    fn attributes(&mut self, element: Element<'_, '_>, allowed: &[&str]) {
        for attribute in element.node.attributes() {
            let name = attribute.name();
            if allowed.contains(&name) {
                continue;
            }
            let span = Span::from(attribute.range_qname());
            let message = format!("'{name}' is not an attribute of '<{}>'", element.name());
            let help = if element.name() == "irq" && UNSUPPORTED_IRQ_ATTRIBUTES.contains(&name) {
                self.error(
                    Code::Unsupported,
                    span,
                    format!("{message}: x86 interrupts are not supported by Atoll"),
                );
                continue;
            } else if name == "pp" && element.name() == "protection_domain" {
                Some(
                    "since Microkit 2.0, 'pp' goes on the calling <end> of a <channel>".to_string(),
                )
            } else if matches!(name, "id" | "setvar_id") && element.name() == "protection_domain" {
                Some(format!(
                    "only a child protection domain (one nested in another) takes '{name}'"
                ))
            } else if let Some(best) = did_you_mean(name, allowed.iter().copied()) {
                Some(format!("did you mean '{best}'?"))
            } else if allowed.is_empty() {
                Some(format!("'<{}>' takes no attributes", element.name()))
            } else {
                Some(format!(
                    "'<{}>' takes: {}",
                    element.name(),
                    allowed.join(", ")
                ))
            };
            self.error(Code::UnknownAttribute, span, message).help = help;
        }
    }

    fn string(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<String>> {
        let attribute = element.node.attributes().find(|a| a.name() == name)?;
        Some(Spanned {
            value: attribute.value().to_string(),
            span: attribute.range_value().into(),
        })
    }

    fn required_string(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<String>> {
        let value = self.string(element, name);
        if value.is_none() {
            self.missing(element, name);
        }
        value
    }

    /// A required name: also rejects the empty string.
    fn name_attribute(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<String>> {
        let value = self.required_string(element, name)?;
        if value.value.is_empty() {
            self.error(
                Code::InvalidValue,
                value.span,
                format!("'{name}' must not be empty"),
            );
            return None;
        }
        Some(value)
    }

    fn missing(&mut self, element: Element<'_, '_>, name: &str) {
        self.error(
            Code::MissingAttribute,
            element.tag,
            format!(
                "'<{}>' is missing the required attribute '{name}'",
                element.name()
            ),
        );
    }

    fn number(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<u64>> {
        let text = self.string(element, name)?;
        match parse_number(&text.value) {
            Ok(value) => Some(Spanned {
                value,
                span: text.span,
            }),
            Err(error) => {
                let message = match error {
                    NumberError::TooLarge => {
                        format!("'{name}' value '{}' does not fit in 64 bits", text.value)
                    }
                    NumberError::Empty | NumberError::Invalid => {
                        format!("'{name}' value '{}' is not a number", text.value)
                    }
                };
                self.error(Code::InvalidNumber, text.span, message).help = Some(
                    "write a decimal number or 0x-prefixed hex; '_' may separate digits".into(),
                );
                None
            }
        }
    }

    fn required_number(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<u64>> {
        if element.node.attribute(name).is_none() {
            self.missing(element, name);
            return None;
        }
        self.number(element, name)
    }

    fn boolean(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<bool>> {
        let text = self.string(element, name)?;
        let value = match text.value.as_str() {
            "true" => true,
            "false" => false,
            other => {
                self.error(
                    Code::InvalidBoolean,
                    text.span,
                    format!("'{name}' must be 'true' or 'false', not '{other}'"),
                );
                return None;
            }
        };
        Some(Spanned {
            value,
            span: text.span,
        })
    }

    fn flag(&mut self, element: Element<'_, '_>, name: &str, default: bool) -> bool {
        self.boolean(element, name).map_or(default, |b| b.value)
    }

    fn replica(&mut self, element: Element<'_, '_>) {
        if self.strict {
            self.strict_error(element.tag, "the '<replica>' element");
            return;
        }
        self.attributes(element, &["name", "cores", "ram"]);
        for child in self.children(element) {
            self.unknown_element(child, "replica", &[]);
        }
        let name = self.name_attribute(element, "name");
        let cores = self.required_string(element, "cores");
        let ram = self.number(element, "ram");
        let (Some(name), Some(cores)) = (name, cores) else {
            return;
        };
        let list = parse_cores(&cores.value).unwrap_or_else(|why| {
            self.error(
                Code::InvalidValue,
                cores.span,
                format!("invalid core list: {why}"),
            )
            .help = Some("list cores like \"0\", \"2,3\" or \"2-3\"".into());
            // Keep the replica, coreless, so PDs naming it are not reported again.
            Vec::new()
        });
        let cores = Spanned {
            value: list,
            span: cores.span,
        };
        self.decls.replicas.push(ReplicaDecl { name, cores, ram });
    }

    fn strict_error(&mut self, span: Span, what: &str) {
        self.error(
            Code::StrictExtension,
            span,
            format!("{what} is an Atoll extension, rejected by --strict"),
        )
        .help = Some(
            "drop --strict, or place PDs with 'cpu' only so upstream Microkit can load the file"
                .into(),
        );
    }

    fn protection_domain(&mut self, element: Element<'_, '_>, parent: Option<usize>) {
        self.decls.protection_domain_elements += 1;
        let pds = &self.decls.protection_domains;
        let depth = std::iter::successors(parent, |&p| pds.get(p).and_then(|pd| pd.parent)).count();
        if depth >= MAX_PDS {
            // A chain this deep already exceeds the PD limit; stop before recursion does harm.
            self.error(
                Code::PdCount,
                element.tag,
                format!("protection domains are nested more than {MAX_PDS} deep"),
            );
            return;
        }
        let mut allowed = vec![
            "name",
            "priority",
            "budget",
            "period",
            "passive",
            "restart",
            "stack_size",
            "cpu",
            "smc",
            "fpu",
            "replica",
        ];
        if parent.is_some() {
            allowed.extend(["id", "setvar_id"]);
        }
        let domain_attribute = element.node.attributes().find(|a| a.name() == "domain");
        if let Some(attribute) = domain_attribute {
            allowed.push("domain");
            self.error(
                Code::Unsupported,
                attribute.range_qname().into(),
                "'domain' is not supported by Atoll: there is no domain scheduler",
            );
        }
        self.attributes(element, &allowed);
        let name = self.name_attribute(element, "name").unwrap_or(Spanned {
            value: String::new(),
            span: element.tag,
        });
        if let Some(smc) = self.boolean(element, "smc").filter(|smc| smc.value) {
            self.error(
                Code::Unsupported,
                smc.span,
                "SMC forwarding is not supported by Atoll's kernel",
            );
        }
        let restart = match self.boolean(element, "restart") {
            Some(restart) if self.strict => {
                self.strict_error(restart.span, "the 'restart' attribute");
                false
            }
            restart => restart.is_some_and(|r| r.value),
        };
        let replica = match self.string(element, "replica") {
            Some(replica) if self.strict => {
                self.strict_error(replica.span, "the 'replica' attribute");
                None
            }
            replica => replica,
        };
        let child_id = if parent.is_some() {
            self.required_number(element, "id")
        } else {
            None
        };
        let pd = PdDecl {
            tag: element.tag,
            name,
            priority: self.number(element, "priority"),
            budget: self.number(element, "budget"),
            period: self.number(element, "period"),
            passive: self.flag(element, "passive", false),
            restart,
            stack_size: self.number(element, "stack_size"),
            cpu: self.number(element, "cpu"),
            fpu: self.flag(element, "fpu", true),
            replica,
            child_id,
            setvar_id: if parent.is_some() {
                self.string(element, "setvar_id")
            } else {
                None
            },
            parent,
            program_image: None,
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            caps: Vec::new(),
        };
        let index = self.decls.protection_domains.len();
        self.decls.protection_domains.push(pd);
        let mut program_image: Option<ProgramImageDecl> = None;
        let (mut maps, mut irqs, mut setvars, mut caps) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cspace_seen = false;
        for child in self.children(element) {
            match child.name() {
                "program_image" => {
                    let image = self.program_image(child);
                    if program_image.is_some() {
                        self.error(
                            Code::ElementCount,
                            child.tag,
                            "'<program_image>' must only be given once",
                        );
                    } else {
                        program_image = image;
                    }
                }
                "map" => maps.extend(self.map(child)),
                "irq" => irqs.extend(self.irq(child)),
                "setvar" => setvars.extend(self.setvar(child)),
                "cspace" => {
                    if cspace_seen {
                        self.error(
                            Code::ElementCount,
                            child.tag,
                            "'<cspace>' must only be given once",
                        );
                    }
                    cspace_seen = true;
                    caps.extend(self.cspace(child));
                }
                "protection_domain" => self.protection_domain(child, Some(index)),
                "virtual_machine" => self.unsupported(
                    child,
                    "virtual machines need a hypervisor kernel, and Atoll's kernel is not one",
                ),
                "ioport" => self.unsupported(child, "I/O ports exist only on x86-64"),
                _ => self.unknown_element(child, "protection_domain", PD_CHILDREN),
            }
        }
        let has_image = element
            .node
            .children()
            .any(|c| c.has_tag_name("program_image"));
        if !has_image {
            self.error(
                Code::ElementCount,
                element.tag,
                "protection domain has no '<program_image>'",
            )
            .help = Some("add <program_image path=\"….elf\" /> naming the PD's ELF".into());
        }
        let pd = &mut self.decls.protection_domains[index];
        pd.program_image = program_image;
        pd.maps = maps;
        pd.irqs = irqs;
        pd.setvars = setvars;
        pd.caps = caps;
    }

    fn program_image(&mut self, element: Element<'_, '_>) -> Option<ProgramImageDecl> {
        self.attributes(element, &["path", "path_for_symbols"]);
        self.leaf(element);
        let path = self.name_attribute(element, "path")?;
        Some(ProgramImageDecl {
            path,
            path_for_symbols: self.string(element, "path_for_symbols"),
        })
    }

    /// Reports children of an element that takes none.
    fn leaf(&mut self, element: Element<'_, '_>) {
        for child in self.children(element) {
            self.unknown_element(child, element.name(), &[]);
        }
    }

    fn map(&mut self, element: Element<'_, '_>) -> Option<MapDecl> {
        self.attributes(
            element,
            &[
                "mr",
                "vaddr",
                "perms",
                "cached",
                "setvar_vaddr",
                "setvar_size",
                "setvar_prefill_size",
            ],
        );
        self.leaf(element);
        let mr = self.required_string(element, "mr");
        let vaddr = self.required_number(element, "vaddr");
        let perms = self.perms(element).unwrap_or(Perms::READ_WRITE);
        let cached = self.flag(element, "cached", true);
        Some(MapDecl {
            mr: mr?,
            vaddr: vaddr?,
            perms,
            cached,
            setvar_vaddr: self.string(element, "setvar_vaddr"),
            setvar_size: self.string(element, "setvar_size"),
            setvar_prefill_size: self.string(element, "setvar_prefill_size"),
        })
    }

    fn perms(&mut self, element: Element<'_, '_>) -> Option<Perms> {
        let Some(text) = self.string(element, "perms") else {
            return Some(Perms::READ_WRITE);
        };
        let mut perms = Perms {
            read: false,
            write: false,
            execute: false,
        };
        for c in text.value.chars() {
            match c {
                'r' => perms.read = true,
                'w' => perms.write = true,
                'x' => perms.execute = true,
                _ => {
                    self.error(
                        Code::InvalidValue,
                        text.span,
                        format!("invalid permission '{c}' in perms"),
                    )
                    .help = Some("perms combines 'r', 'w' and 'x', e.g. \"rw\" or \"rx\"".into());
                    return None;
                }
            }
        }
        if perms
            == (Perms {
                read: false,
                write: false,
                execute: false,
            })
        {
            self.error(Code::InvalidValue, text.span, "perms must not be empty")
                .help = Some("perms combines 'r', 'w' and 'x', e.g. \"rw\" or \"rx\"".into());
            return None;
        }
        if perms
            == (Perms {
                read: false,
                write: true,
                execute: false,
            })
        {
            self.error(
                Code::WriteOnly,
                text.span,
                "write-only mappings are not allowed",
            )
            .help = Some("AArch64 cannot map a page write-only; use perms=\"rw\"".into());
            return None;
        }
        Some(perms)
    }

    fn irq(&mut self, element: Element<'_, '_>) -> Option<IrqDecl> {
        self.attributes(element, &["irq", "id", "trigger", "setvar_id"]);
        self.leaf(element);
        let x86 = element
            .node
            .attributes()
            .any(|a| UNSUPPORTED_IRQ_ATTRIBUTES.contains(&a.name()));
        if x86 {
            return None;
        }
        let irq = self.required_number(element, "irq");
        let id = self.required_number(element, "id");
        let trigger = match self.string(element, "trigger") {
            None => Trigger::Level,
            Some(t) if t.value == "level" => Trigger::Level,
            Some(t) if t.value == "edge" => Trigger::Edge,
            Some(t) => {
                self.error(
                    Code::InvalidValue,
                    t.span,
                    format!("trigger must be 'level' or 'edge', not '{}'", t.value),
                );
                Trigger::Level
            }
        };
        Some(IrqDecl {
            irq: irq?,
            id: id?,
            trigger,
            setvar_id: self.string(element, "setvar_id"),
        })
    }

    fn setvar(&mut self, element: Element<'_, '_>) -> Option<SetvarDecl> {
        self.attributes(element, &["symbol", "region_paddr"]);
        self.leaf(element);
        let symbol = self.name_attribute(element, "symbol");
        let region_paddr = self.required_string(element, "region_paddr");
        Some(SetvarDecl {
            symbol: symbol?,
            region_paddr: region_paddr?,
        })
    }

    fn cspace(&mut self, element: Element<'_, '_>) -> Vec<CapDecl> {
        self.attributes(element, &[]);
        let mut caps = Vec::new();
        for child in self.children(element) {
            let kind = match child.name() {
                "cap_tcb" => CapKind::Tcb,
                "cap_sc" => CapKind::SchedContext,
                "cap_vspace" => CapKind::VSpace,
                _ => {
                    self.unknown_element(child, "cspace", &["cap_tcb", "cap_sc", "cap_vspace"]);
                    continue;
                }
            };
            self.attributes(child, &["slot", "pd"]);
            self.leaf(child);
            let slot = self.required_number(child, "slot");
            let pd = self.required_string(child, "pd");
            if let (Some(slot), Some(pd)) = (slot, pd) {
                caps.push(CapDecl { kind, slot, pd });
            }
        }
        caps
    }

    fn memory_region(&mut self, element: Element<'_, '_>) {
        self.attributes(
            element,
            &[
                "name",
                "size",
                "page_size",
                "phys_addr",
                "prefill_path",
                "prefill_bootinfo",
            ],
        );
        self.leaf(element);
        let name = self.name_attribute(element, "name");
        let size = self.number(element, "size");
        let size_written = element.node.attribute("size").is_some();
        let page_size = self.number(element, "page_size");
        let phys_addr = self.number(element, "phys_addr");
        let prefill_path = self.string(element, "prefill_path");
        let prefill_bootinfo =
            self.string(element, "prefill_bootinfo")
                .filter(|info| match info.value.as_str() {
                    "fdt" => true,
                    x86 if x86.starts_with("x86_") => {
                        self.error(
                            Code::Unsupported,
                            info.span,
                            format!("'{x86}' boot information exists only on x86-64"),
                        );
                        false
                    }
                    other => {
                        self.error(
                            Code::InvalidValue,
                            info.span,
                            format!("unknown boot information '{other}'"),
                        )
                        .help = Some("on aarch64 the only boot information is \"fdt\"".into());
                        false
                    }
                });
        if !size_written
            && prefill_path.is_none()
            && element.node.attribute("prefill_bootinfo").is_none()
        {
            self.missing(element, "size");
        }
        if let Some(name) = name {
            self.decls.memory_regions.push(MrDecl {
                name,
                size,
                page_size,
                phys_addr,
                prefill_path,
                prefill_bootinfo,
            });
        }
    }

    fn channel(&mut self, element: Element<'_, '_>) {
        self.attributes(element, &[]);
        let mut ends = Vec::new();
        let mut count = 0;
        for child in self.children(element) {
            if child.name() != "end" {
                self.unknown_element(child, "channel", &["end"]);
                continue;
            }
            count += 1;
            ends.push(self.end(child));
        }
        if count != 2 {
            self.error(
                Code::ElementCount,
                element.tag,
                format!("a channel needs exactly two '<end>' elements, this one has {count}"),
            );
            return;
        }
        let mut ends = ends.into_iter().flatten();
        if let (Some(first), Some(second)) = (ends.next(), ends.next()) {
            self.decls.channels.push(ChannelDecl {
                tag: element.tag,
                ends: [first, second],
            });
        }
    }

    fn end(&mut self, element: Element<'_, '_>) -> Option<EndDecl> {
        self.attributes(element, &["pd", "id", "pp", "notify", "setvar_id"]);
        self.leaf(element);
        let pd = self.required_string(element, "pd");
        let id = self.required_number(element, "id");
        let pp = self.boolean(element, "pp");
        let notify = self.flag(element, "notify", true);
        Some(EndDecl {
            pd: pd?,
            id: id?,
            pp,
            notify,
            setvar_id: self.string(element, "setvar_id"),
        })
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
