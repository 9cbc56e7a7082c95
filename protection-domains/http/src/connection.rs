//! One TCP connection's HTTP/1.1 state machine: framing, limits and persistence.

use alloc::vec::Vec;

use httparse::{Request, Status};

use crate::app::{self, App};
use crate::response::{CONTINUE, Response};
use crate::{MAX_BODY, MAX_HEAD, MAX_HEADERS};

/// Where a [`Connection`] writes its responses: bytes to send on the socket, in order.
pub trait Sink {
    /// Appends `bytes` to what is to be sent.
    fn write(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// What to do with the connection once the output is sent.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Keep it open for more requests.
    Open,
    /// Close it (after sending the output): the last response said `Connection: close`,
    /// or the input could not be framed. Further input is ignored.
    Close,
}

/// The most bytes a connection buffers: a head and a body of the largest sizes allowed.
const BUFFER_LIMIT: usize = MAX_HEAD + MAX_BODY;

/// The buffer's capacity kept between requests; a larger one (after a large body) is
/// given back.
const KEEP_CAPACITY: usize = 4 * 1024;

/// The HTTP side of one TCP connection: feed it the bytes that arrive with
/// [`receive`](Self::receive), send what it writes.
///
/// ```
/// # use atoll_http::*;
/// # struct NoApp;
/// # impl App for NoApp {
/// #     fn status(&mut self) -> SystemStatus { SystemStatus::default() }
/// #     fn rt(&mut self) -> Option<RtStats> { None }
/// #     fn kv_get(&mut self, _: &str) -> Result<Vec<u8>, KvError> { Err(KvError::NotFound) }
/// #     fn kv_put(&mut self, _: &str, _: &[u8]) -> Result<Stored, KvError> { Err(KvError::Full) }
/// #     fn kv_delete(&mut self, _: &str) -> Result<(), KvError> { Err(KvError::NotFound) }
/// # }
/// let mut connection = Connection::new();
/// let mut out = Vec::new();
/// let outcome = connection.receive(b"GET /status HTTP/1.1\r\nHo", &mut NoApp, &mut out);
/// assert_eq!((outcome, out.len()), (Outcome::Open, 0));
/// let outcome = connection.receive(b"st: x\r\n\r\n", &mut NoApp, &mut out);
/// assert_eq!(outcome, Outcome::Open);
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(out.ends_with(b"\r\n\r\n{\"replicas\":[]}"));
/// ```
#[derive(Debug, Default)]
pub struct Connection {
    /// Received bytes: from `start`, those not answered yet (the current request and
    /// whatever is pipelined behind it); before it, answered ones not dropped yet (they are
    /// dropped once per call rather than once per request). At most [`BUFFER_LIMIT`] bytes.
    buf: Vec<u8>,
    /// Where the current request starts in `buf`.
    start: usize,
    state: State,
}

#[derive(Clone, Copy, Debug, Default)]
enum State {
    /// Waiting for a complete head.
    #[default]
    Head,
    /// The head is complete and acceptable; waiting for the body.
    Body(Frame),
    /// A closing response was written; input is ignored.
    Closed,
}

/// What the head of the current request says about framing and persistence.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Bytes of the head, including the empty line.
    head_len: usize,
    /// Bytes of the whole request: head and body.
    total: usize,
    /// The `Connection` header of the response.
    connection: Option<&'static str>,
}

impl Frame {
    fn closes(&self) -> bool {
        self.connection == Some("close")
    }
}

/// What a head's bytes amount to so far.
enum Head {
    /// Not complete yet.
    Partial,
    /// Complete and acceptable.
    Complete(Frame),
    /// Refused: answer this and close.
    Refused(Response),
}

impl Connection {
    /// A connection that has received nothing yet.
    pub const fn new() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            state: State::Head,
        }
    }

    /// Takes in `bytes` received on the connection (any part of any number of requests),
    /// asks `app` to answer each request they complete and writes the responses to `out`,
    /// in order.
    ///
    /// [`Outcome::Close`] means: close the connection once `out` is sent; bytes after the
    /// request that closed it are ignored, and so is anything passed in later.
    pub fn receive(
        &mut self,
        mut bytes: &[u8],
        app: &mut impl App,
        out: &mut impl Sink,
    ) -> Outcome {
        loop {
            if matches!(self.state, State::Closed) {
                return Outcome::Close;
            }
            // Take in no more than the buffer's limit; answering frees room for the rest.
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
            let room = BUFFER_LIMIT.saturating_sub(self.buf.len());
            let (now, later) = bytes
                .split_at_checked(room.min(bytes.len()))
                .unwrap_or((bytes, &[]));
            self.buf.extend_from_slice(now);
            bytes = later;
            let progressed = self.process(app, out);
            if matches!(self.state, State::Closed) {
                return Outcome::Close;
            }
            if bytes.is_empty() {
                self.buf.drain(..self.start.min(self.buf.len()));
                self.start = 0;
                if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() <= KEEP_CAPACITY {
                    self.buf.shrink_to(KEEP_CAPACITY);
                }
                return Outcome::Open;
            }
            if !progressed && room == 0 {
                // Not reached: a full buffer holds a whole request (a head of at most
                // MAX_HEAD, a body of at most MAX_BODY) or a head that is too long.
                self.refuse(Response::error(500, "internal error"), out);
                return Outcome::Close;
            }
        }
    }

    /// Bytes of requests received and not answered yet, which this connection holds.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Bytes of heap this connection holds: its buffer's capacity, which may be up to twice
    /// what it holds.
    pub fn footprint(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the connection is closed (a closing response was written).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Answers every request complete in the buffer; says whether it did anything.
    fn process(&mut self, app: &mut impl App, out: &mut impl Sink) -> bool {
        let mut progressed = false;
        loop {
            match self.state {
                State::Closed => return true,
                State::Head => {
                    // Parsed afresh whenever bytes arrive (at most MAX_HEAD bytes), so that
                    // an error is found as soon as its bytes are here however the input is
                    // split.
                    match head(self.pending()) {
                        Head::Partial => return progressed,
                        Head::Refused(response) => {
                            self.refuse(response, out);
                            return true;
                        }
                        Head::Complete(frame) => {
                            let pending = self.pending();
                            if pending.len() < frame.total && expects_continue(pending) {
                                out.write(CONTINUE);
                            }
                            self.state = State::Body(frame);
                            progressed = true;
                        }
                    }
                }
                State::Body(frame) => {
                    if self.pending().len() < frame.total {
                        return progressed;
                    }
                    self.answer(frame, app, out);
                    progressed = true;
                }
            }
        }
    }

    /// Answers the complete request at the start of the buffer and drops its bytes.
    fn answer(&mut self, frame: Frame, app: &mut impl App, out: &mut impl Sink) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = Request::new(&mut headers);
        let pending = self.pending();
        let head = pending.get(..frame.head_len).unwrap_or_default();
        let body = pending.get(frame.head_len..frame.total).unwrap_or_default();
        let (response, head_only) = match (request.parse(head), request.method, request.path) {
            (Ok(Status::Complete(_)), Some(method), Some(target)) => {
                (app::respond(method, target, body, app), method == "HEAD")
            }
            // Not reached: the same bytes parsed as a complete head before.
            _ => (Response::error(500, "internal error"), false),
        };
        response.write(frame.connection, head_only, out);
        if frame.closes() {
            self.close();
        } else {
            self.start = self.start.saturating_add(frame.total).min(self.buf.len());
            self.state = State::Head;
        }
    }

    /// Writes `response` as the last one and closes.
    fn refuse(&mut self, response: Response, out: &mut impl Sink) {
        response.write(Some("close"), false, out);
        self.close();
    }

    /// The bytes of the current request and those after it.
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn close(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.state = State::Closed;
    }
}

/// Parses the head at the start of `buf` and decides how the request is framed.
fn head(buf: &[u8]) -> Head {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = Request::new(&mut headers);
    let head_len = match request.parse(window) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Head::Refused(Response::error(431, "request header fields too large"));
        }
        Err(_) => return Head::Refused(Response::error(400, "bad request")),
    };
    let http11 = request.version == Some(1);

    let mut content_length = None;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut hosts = 0u32;
    for header in request.headers.iter() {
        let name = header.name;
        let value = trim(header.value);
        if name.eq_ignore_ascii_case("content-length") {
            match decimal(value) {
                Some(n) if content_length.is_none_or(|c| c == n) => content_length = Some(n),
                _ => return Head::Refused(Response::error(400, "invalid content-length")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',').map(trim) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts = hosts.saturating_add(1);
        }
    }
    if transfer_encoding {
        // RFC 9112 §6.3: both is a smuggling attempt; a transfer coding this server does
        // not implement (chunked included) is 501.
        return Head::Refused(if content_length.is_some() {
            Response::error(400, "content-length with transfer-encoding")
        } else {
            Response::error(501, "transfer-encoding not implemented")
        });
    }
    if http11 && hosts != 1 {
        // RFC 9112 §3.2.
        return Head::Refused(Response::error(400, "missing or repeated host"));
    }
    let body_len = match usize::try_from(content_length.unwrap_or(0)) {
        Ok(n) if n <= MAX_BODY => n,
        _ => return Head::Refused(Response::error(413, "content too large")),
    };
    let connection = if close {
        Some("close")
    } else if http11 {
        None
    } else if keep_alive {
        Some("keep-alive")
    } else {
        Some("close")
    };
    match head_len.checked_add(body_len) {
        Some(total) => Head::Complete(Frame {
            head_len,
            total,
            connection,
        }),
        None => Head::Refused(Response::error(413, "content too large")),
    }
}

/// Whether the complete head at the start of `buf` is HTTP/1.1 and says `Expect:
/// 100-continue` (RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored).
fn expects_continue(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = Request::new(&mut headers);
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    matches!(request.parse(window), Ok(Status::Complete(_)))
        && request.version == Some(1)
        && request.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect")
                && trim(h.value).eq_ignore_ascii_case(b"100-continue")
        })
}

/// A plain decimal `Content-Length` (digits only; a value too large for `u64` reads as
/// `u64::MAX`, which is too large a body anyway). `None` if it is not plain decimal.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d.wrapping_sub(b'0'))))
            .unwrap_or(u64::MAX)
    }))
}

/// `value` without surrounding spaces and tabs (HTTP's optional whitespace).
fn trim(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i.saturating_add(1));
    value.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"00012"), Some(12));
        assert_eq!(decimal(b"18446744073709551616"), Some(u64::MAX));
        assert_eq!(decimal(&[b'9'; 100]), Some(u64::MAX));
        for bad in [&b""[..], b"+1", b"-1", b"1 2", b"0x10", b"1,1", b"1.0"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn trims_optional_whitespace() {
        assert_eq!(trim(b" \t a b\t "), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
        assert_eq!(trim(b"x"), b"x");
    }
}
