//! Responses: a status, a content type, a body, and how they are written out.

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt::Write as _;

use crate::connection::Sink;

/// `Content-Type` of JSON bodies.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of the dashboard.
pub(crate) const HTML: &str = "text/html; charset=utf-8";
/// `Content-Type` of stored values, which are opaque bytes.
pub(crate) const OCTETS: &str = "application/octet-stream";

/// A response before it is written: everything but the framing headers.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code; its reason phrase comes from [`reason`].
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (sent only when the request was not `HEAD`).
    pub body: Cow<'static, [u8]>,
    /// The `Allow` header, for `405`.
    pub allow: Option<&'static str>,
}

impl Response {
    /// A response with a body.
    pub fn new(status: u16, content_type: &'static str, body: Cow<'static, [u8]>) -> Self {
        Self {
            status,
            content_type,
            body,
            allow: None,
        }
    }

    /// A `204 No Content`.
    pub fn no_content() -> Self {
        Self::new(204, JSON, Cow::Borrowed(b""))
    }

    /// A JSON error body `{"error":"<message>"}`; `message` must need no JSON escaping.
    pub fn error(status: u16, message: &'static str) -> Self {
        let mut body = String::with_capacity(message.len().saturating_add(12));
        body.push_str("{\"error\":\"");
        body.push_str(message);
        body.push_str("\"}");
        Self::new(status, JSON, Cow::Owned(body.into_bytes()))
    }

    /// Writes the status line, headers and (unless `head_only`) the body.
    ///
    /// `connection` is the `Connection` header's value, if any.
    pub fn write(&self, connection: Option<&str>, head_only: bool, out: &mut impl Sink) {
        let mut head = String::with_capacity(160);
        // Writing to a `String` cannot fail.
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        // RFC 9110 §8.6: no Content-Length (and no content) in a 1xx or 204 response.
        if self.status != 204 {
            let _ = write!(
                head,
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.len()
            );
        }
        if let Some(allow) = self.allow {
            let _ = write!(head, "Allow: {allow}\r\n");
        }
        if let Some(connection) = connection {
            let _ = write!(head, "Connection: {connection}\r\n");
        }
        head.push_str("Cache-Control: no-store\r\n\r\n");
        out.write(head.as_bytes());
        if !head_only && self.status != 204 {
            out.write(&self.body);
        }
    }
}

/// The interim response to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase of each status code this server sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "",
    }
}
