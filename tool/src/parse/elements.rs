//! Reading each kind of element into its declaration.

use super::*;

/// What a PD's child elements declare.
type PdChildren = (
    Option<ProgramImageDecl>,
    Vec<MapDecl>,
    Vec<IrqDecl>,
    Vec<SetvarDecl>,
    Vec<CapDecl>,
);

impl Parser<'_> {
    pub(super) fn protection_domain(&mut self, element: Element<'_, '_>, parent: Option<usize>) {
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
        let pd = self.pd_declaration(element, parent);
        let index = self.decls.protection_domains.len();
        self.decls.protection_domains.push(pd);
        let (program_image, maps, irqs, setvars, caps) = self.pd_children(element, index);
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

    /// A PD's own attributes (its children are read by [`Self::pd_children`]).
    fn pd_declaration(&mut self, element: Element<'_, '_>, parent: Option<usize>) -> PdDecl {
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
            "domain",
        ];
        if parent.is_some() {
            allowed.extend(["id", "setvar_id"]);
        }
        self.attributes(element, &allowed);
        let name = self.name_attribute(element, "name").unwrap_or(Spanned {
            value: String::new(),
            span: element.tag,
        });
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
        PdDecl {
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
            smc: self.flag(element, "smc", false),
            replica,
            domain: self.string(element, "domain"),
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
        }
    }

    /// A PD's children: its program image, maps, interrupts, setvars, capabilities and
    /// child PDs (declared after it, with `index` as their parent).
    fn pd_children(&mut self, element: Element<'_, '_>, index: usize) -> PdChildren {
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
        (program_image, maps, irqs, setvars, caps)
    }

    pub(super) fn program_image(&mut self, element: Element<'_, '_>) -> Option<ProgramImageDecl> {
        self.attributes(element, &["path", "path_for_symbols"]);
        self.leaf(element);
        let path = self.name_attribute(element, "path")?;
        Some(ProgramImageDecl {
            path,
            path_for_symbols: self.string(element, "path_for_symbols"),
        })
    }

    /// Reports children of an element that takes none.
    pub(super) fn leaf(&mut self, element: Element<'_, '_>) {
        for child in self.children(element) {
            self.unknown_element(child, element.name(), &[]);
        }
    }

    pub(super) fn map(&mut self, element: Element<'_, '_>) -> Option<MapDecl> {
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
            perms_span: self.string(element, "perms").map(|p| p.span),
            cached,
            cached_span: self.string(element, "cached").map(|c| c.span),
            setvar_vaddr: self.string(element, "setvar_vaddr"),
            setvar_size: self.string(element, "setvar_size"),
            setvar_prefill_size: self.string(element, "setvar_prefill_size"),
        })
    }

    pub(super) fn perms(&mut self, element: Element<'_, '_>) -> Option<Perms> {
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

    pub(super) fn irq(&mut self, element: Element<'_, '_>) -> Option<IrqDecl> {
        self.attributes(element, &["irq", "id", "trigger", "setvar_id", "device"]);
        self.leaf(element);
        let x86 = element
            .node
            .attributes()
            .any(|a| UNSUPPORTED_IRQ_ATTRIBUTES.contains(&a.name()));
        if x86 {
            return None;
        }
        let source = match self.device(element, &["irq", "trigger"]) {
            Some(device) => Some(IrqSource::Device(device)),
            None => {
                let irq = self.required_number(element, "irq");
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
                irq.map(|irq| IrqSource::Number { irq, trigger })
            }
        };
        let id = self.required_number(element, "id");
        Some(IrqDecl {
            source: source?,
            id: id?,
            setvar_id: self.string(element, "setvar_id"),
        })
    }

    /// The `device` attribute (Atoll extension), reporting each of `exclusive` given with it
    /// and its use under `--strict` (the device is kept, so that nothing missing is reported
    /// on top).
    fn device(&mut self, element: Element<'_, '_>, exclusive: &[&str]) -> Option<Spanned<String>> {
        let device = self.string(element, "device")?;
        if self.strict {
            self.strict_error(device.span, "the 'device' attribute")
                .help = Some(format!(
                "drop --strict, or give the {} for one board in place of 'device'",
                if element.name() == "irq" {
                    "interrupt's 'irq' and 'trigger'"
                } else {
                    "region's 'phys_addr' and 'size'"
                }
            ));
        }
        for &name in exclusive {
            let Some(other) = self.string(element, name) else {
                continue;
            };
            let diagnostic = self.error(
                Code::ConflictingAttributes,
                other.span,
                format!(
                    "'<{}>' takes '{name}' or 'device', not both",
                    element.name()
                ),
            );
            diagnostic
                .secondary
                .push((device.span, "the board's device named here".into()));
            diagnostic.help = Some(format!(
                "'device' takes {} from the board's device; drop '{name}'",
                if element.name() == "irq" {
                    "the interrupt number and trigger"
                } else {
                    "the region's physical address and size"
                }
            ));
        }
        Some(device)
    }

    pub(super) fn setvar(&mut self, element: Element<'_, '_>) -> Option<SetvarDecl> {
        self.attributes(element, &["symbol", "region_paddr", "directory", "value"]);
        self.leaf(element);
        let symbol = self.name_attribute(element, "symbol");
        let directory = self.directory(element);
        let literal = self.literal(element, directory);
        let value = match (directory, literal) {
            (Some(directory), _) => Some(SetvarSource::Directory(directory)),
            (None, Some(literal)) => literal.map(SetvarSource::Value),
            (None, None) => self
                .required_string(element, "region_paddr")
                .map(SetvarSource::RegionPaddr),
        };
        Some(SetvarDecl {
            symbol: symbol?,
            value: value?,
        })
    }

    /// The `directory` attribute of `<setvar>` (Atoll extension), whose one value is
    /// `system`, reporting `region_paddr` given with it and its use under `--strict` (the
    /// setvar is kept, so that nothing missing is reported on top). `None` when it is not
    /// given; `Some` with the value's span otherwise, even when the value is wrong (already
    /// reported), so that `region_paddr` is not asked for.
    fn directory(&mut self, element: Element<'_, '_>) -> Option<Span> {
        let directory = self.string(element, "directory")?;
        if self.strict {
            self.strict_error(directory.span, "the 'directory' attribute")
                .help = Some(
                "drop --strict, or drop the <setvar>: upstream Microkit patches no directory"
                    .into(),
            );
        }
        if directory.value != "system" {
            self.error(
                Code::InvalidValue,
                directory.span,
                format!("directory must be 'system', not '{}'", directory.value),
            )
            .help = Some(
                "the one directory is the system's: <setvar symbol=\"…\" directory=\"system\" />"
                    .into(),
            );
        }
        if let Some(region) = self.string(element, "region_paddr") {
            let diagnostic = self.error(
                Code::ConflictingAttributes,
                region.span,
                "'<setvar>' takes 'region_paddr' or 'directory', not both",
            );
            diagnostic
                .secondary
                .push((directory.span, "the directory asked for here".into()));
            diagnostic.help = Some(
                "a symbol receives one value: use a second <setvar> with another symbol".into(),
            );
        }
        Some(directory.span)
    }

    /// The `value` attribute of `<setvar>` (Atoll extension): a literal number or IPv4
    /// address (`parse_setvar_value`), so that a description can configure a PD (an
    /// address, a size) without a rebuild. Reports a value that does not parse, `directory`
    /// (`directory`, its span) or `region_paddr` given with it, and its use under
    /// `--strict`. `None` when it is not given, so that `region_paddr` is asked for;
    /// `Some(None)` when it is given but unusable (already reported), so that nothing
    /// missing is reported on top.
    fn literal(
        &mut self,
        element: Element<'_, '_>,
        directory: Option<Span>,
    ) -> Option<Option<Spanned<u64>>> {
        let text = self.string(element, "value")?;
        if self.strict {
            self.strict_error(text.span, "the 'value' attribute").help = Some(
                "drop --strict, or drop the <setvar> and set the variable in the program: \
                 upstream Microkit patches no literal value"
                    .into(),
            );
        }
        let conflict = match directory {
            Some(span) => Some(("directory", span, "the directory asked for here")),
            None => self
                .string(element, "region_paddr")
                .map(|region| ("region_paddr", region.span, "the region named here")),
        };
        if let Some((other, span, label)) = conflict {
            let diagnostic = self.error(
                Code::ConflictingAttributes,
                text.span,
                format!("'<setvar>' takes 'value' or '{other}', not both"),
            );
            diagnostic.secondary.push((span, label.into()));
            diagnostic.help = Some(
                "a symbol receives one value: use a second <setvar> with another symbol".into(),
            );
        }
        match parse_setvar_value(&text.value) {
            Ok(value) => Some(Some(Spanned {
                value,
                span: text.span,
            })),
            Err(why) => {
                self.error(
                    Code::InvalidValue,
                    text.span,
                    format!("setvar value '{}' {why}", text.value),
                )
                .help = Some(
                    "write a decimal number or 0x-prefixed hex ('_' may separate digits), at \
                     most 64 bits, or an IPv4 address such as 10.0.2.15"
                        .into(),
                );
                Some(None)
            }
        }
    }

    pub(super) fn cspace(&mut self, element: Element<'_, '_>) -> Vec<CapDecl> {
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

    pub(super) fn memory_region(&mut self, element: Element<'_, '_>) {
        const EXCLUSIVE: &[&str] = &[
            "phys_addr",
            "size",
            "page_size",
            "prefill_path",
            "prefill_bootinfo",
        ];
        self.attributes(
            element,
            &[
                "name",
                "size",
                "page_size",
                "phys_addr",
                "prefill_path",
                "prefill_bootinfo",
                "device",
            ],
        );
        self.leaf(element);
        let name = self.name_attribute(element, "name");
        if let Some(device) = self.device(element, EXCLUSIVE) {
            if let Some(name) = name {
                self.decls.memory_regions.push(MrDecl {
                    name,
                    size: None,
                    page_size: None,
                    phys_addr: None,
                    prefill_path: None,
                    prefill_bootinfo: None,
                    device: Some(device),
                });
            }
            return;
        }
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
                device: None,
            });
        }
    }

    pub(super) fn channel(&mut self, element: Element<'_, '_>) {
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

    pub(super) fn end(&mut self, element: Element<'_, '_>) -> Option<EndDecl> {
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
