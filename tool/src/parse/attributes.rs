//! Reading one element's attributes: known names, strings, numbers, booleans, and the
//! errors for unknown and unsupported elements.

use super::*;

impl Parser<'_> {
    pub(super) fn unknown_element(
        &mut self,
        element: Element<'_, '_>,
        parent: &str,
        allowed: &[&str],
    ) {
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

    pub(super) fn unsupported(&mut self, element: Element<'_, '_>, why: &str) {
        self.error(
            Code::Unsupported,
            element.tag,
            format!("'<{}>' is not supported by Atoll: {why}", element.name()),
        );
    }

    /// Reports attributes outside `allowed`.
    pub(super) fn attributes(&mut self, element: Element<'_, '_>, allowed: &[&str]) {
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

    pub(super) fn string(
        &mut self,
        element: Element<'_, '_>,
        name: &str,
    ) -> Option<Spanned<String>> {
        let attribute = element.node.attributes().find(|a| a.name() == name)?;
        Some(Spanned {
            value: attribute.value().to_string(),
            span: attribute.range_value().into(),
        })
    }

    pub(super) fn required_string(
        &mut self,
        element: Element<'_, '_>,
        name: &str,
    ) -> Option<Spanned<String>> {
        let value = self.string(element, name);
        if value.is_none() {
            self.missing(element, name);
        }
        value
    }

    /// A required name: also rejects the empty string.
    pub(super) fn name_attribute(
        &mut self,
        element: Element<'_, '_>,
        name: &str,
    ) -> Option<Spanned<String>> {
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

    pub(super) fn missing(&mut self, element: Element<'_, '_>, name: &str) {
        self.error(
            Code::MissingAttribute,
            element.tag,
            format!(
                "'<{}>' is missing the required attribute '{name}'",
                element.name()
            ),
        );
    }

    pub(super) fn number(&mut self, element: Element<'_, '_>, name: &str) -> Option<Spanned<u64>> {
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

    pub(super) fn required_number(
        &mut self,
        element: Element<'_, '_>,
        name: &str,
    ) -> Option<Spanned<u64>> {
        if element.node.attribute(name).is_none() {
            self.missing(element, name);
            return None;
        }
        self.number(element, name)
    }

    pub(super) fn boolean(
        &mut self,
        element: Element<'_, '_>,
        name: &str,
    ) -> Option<Spanned<bool>> {
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

    pub(super) fn flag(&mut self, element: Element<'_, '_>, name: &str, default: bool) -> bool {
        self.boolean(element, name).map_or(default, |b| b.value)
    }

    pub(super) fn replica(&mut self, element: Element<'_, '_>) {
        if self.strict {
            self.strict_error(element.tag, "the '<replica>' element");
            return;
        }
        self.attributes(
            element,
            &["name", "cores", "ram", "restart", "hung_after_ms"],
        );
        for child in self.children(element) {
            self.unknown_element(child, "replica", &[]);
        }
        let name = self.name_attribute(element, "name");
        let cores = self.required_string(element, "cores");
        let ram = self.number(element, "ram");
        let restart = self.boolean(element, "restart");
        let hung_after_ms = self.number(element, "hung_after_ms");
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
        self.decls.replicas.push(ReplicaDecl {
            name,
            cores,
            ram,
            restart,
            hung_after_ms,
        });
    }

    /// Reports an Atoll extension under `--strict`; the caller may replace the help.
    pub(super) fn strict_error(&mut self, span: Span, what: &str) -> &mut Diagnostic {
        let diagnostic = self.error(
            Code::StrictExtension,
            span,
            format!("{what} is an Atoll extension, rejected by --strict"),
        );
        diagnostic.help = Some(
            "drop --strict, or place PDs with 'cpu' only so upstream Microkit can load the file"
                .into(),
        );
        diagnostic
    }
}
