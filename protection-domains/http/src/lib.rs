//! An HTTP/1.1 server and the system's HTTP API, as a pure state machine over bytes.
//!
//! The crate runs inside a protection domain behind a TCP socket, but knows nothing about
//! sockets: the PD keeps one [`Connection`] per TCP connection, feeds it whatever bytes
//! arrived ([`Connection::receive`]), sends what it wrote to the [`Sink`], and closes the
//! connection once that is sent if the [`Outcome`] says so. The data the API serves comes
//! from an [`App`] the PD implements: the system's status, the real-time statistics and a
//! key-value store.
//!
//! # Design
//!
//! - **Framing.** Bytes are buffered until a request head (request line and headers) is
//!   complete, parsed with `httparse`, then until its body (`Content-Length` bytes) is
//!   complete; then the request is answered and its bytes dropped. Requests may arrive split
//!   at any byte and several may arrive pipelined in one call: each is answered in order.
//!   The head is parsed afresh each time bytes arrive, so what is answered (and when an
//!   error is found) does not depend on how the input was split.
//! - **Bounded memory.** A head may be at most [`MAX_HEAD`] bytes (else `431` and close), a
//!   body at most [`MAX_BODY`] (else `413` and close, decided from `Content-Length` before
//!   the body is read), so a connection buffers at most `MAX_HEAD + MAX_BODY` bytes whatever
//!   it is sent. JSON bodies are at most [`MAX_JSON`] bytes.
//! - **Never panics.** Everything derived from input is checked (`get` rather than indexing,
//!   checked arithmetic); clippy's `indexing_slicing`, `unwrap_used`, `panic` and
//!   `arithmetic_side_effects` lints are denied in the library. A property test and a
//!   cargo-fuzz target (`fuzz/`) feed it arbitrary bytes.
//! - **Memory from the heap.** The status records use `alloc`'s `Vec` and `String` rather
//!   than fixed capacities: the number of replicas, PDs and channels is the system's, not
//!   this crate's, and the PD has a global allocator anyway. The real-time statistics list
//!   only a histogram's non-empty buckets, in a `Vec` too.
//!
//! # Protocol choices
//!
//! | request | response |
//! | --- | --- |
//! | unparsable request line or header, HTTP version other than 1.0/1.1 | `400`, close |
//! | HTTP/1.1 without exactly one `Host` | `400`, close |
//! | head longer than [`MAX_HEAD`], or more than [`MAX_HEADERS`] headers | `431`, close |
//! | `Content-Length` not plain decimal, or repeated with different values | `400`, close |
//! | `Content-Length` together with `Transfer-Encoding` | `400`, close |
//! | `Transfer-Encoding` (chunked or any other; not implemented) | `501`, close |
//! | `Content-Length` above [`MAX_BODY`] | `413`, close |
//! | a method this server does not know at all (not in RFC 9110 nor `PATCH`) | `501` |
//! | a known method a known path does not allow | `405` with `Allow` |
//! | `Expect: 100-continue` with the body still to come | `100 Continue` first |
//!
//! Every response is `HTTP/1.1` with `Content-Length` and `Content-Type`, except `100
//! Continue` and `204 No Content`, which RFC 9110 (§8.6) forbids to carry `Content-Length`
//! and which have no body. A closing response says `Connection: close`; an HTTP/1.0
//! client that asked for `keep-alive` gets `Connection: keep-alive`. HTTP/1.1 connections
//! stay open unless the request says `Connection: close`; HTTP/1.0 ones close unless it
//! says `Connection: keep-alive`. After a closing response, further input is ignored.
//! `HEAD` is allowed wherever `GET` is, with the same headers and no body.
//!
//! `examples/serve.rs` serves the API on the host with made-up data, to try the dashboard in
//! a browser: `cargo run -p atoll-http --example serve`.
//!
//! # Routes
//!
//! See [`app`]: `GET /` (the dashboard), `GET /status`, `GET /rt`, `GET|PUT|DELETE
//! /kv/{key}`; anything else is `404` with a JSON error.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

pub mod app;
mod connection;
pub mod percent;
mod response;

pub use app::{
    App, ChannelStatus, KvError, PdState, PdStatus, ReplicaState, ReplicaStatus, RtDistribution,
    RtInterference, RtStats, RtWindow, Stored, SystemStatus,
};
pub use connection::{Connection, Outcome, Sink};
pub use percent::{PercentDecodeError, percent_decode};

/// The most bytes a request head (request line, headers and the empty line ending them)
/// may take; a longer one is answered `431 Request Header Fields Too Large`.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most headers a request may have; more are answered `431`.
pub const MAX_HEADERS: usize = 64;

/// The largest request body accepted; a larger `Content-Length` is answered `413 Content
/// Too Large` before the body is read.
pub const MAX_BODY: usize = 65536;

/// The largest JSON body a response may have (the status of a large system); a status
/// that does not fit is answered `500`.
pub const MAX_JSON: usize = 256 * 1024;

/// The longest key, in bytes after percent-decoding, of `/kv/{key}`.
pub const MAX_KEY: usize = 255;

/// The dashboard served at `GET /`: one self-contained page (inline CSS and JavaScript, no
/// external assets) that polls `/status` and `/rt` every second and shows one table row
/// per replica (`<tr data-replica="NAME">`) and its PDs, and the real-time statistics: a
/// table of both windows' figures and the total jitter histogram as an inline SVG
/// (`<svg id="rt-histogram">`), hidden while `/rt` answers an error.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// Writes the answer to a connection the server has no room for: `503 Service Unavailable`
/// with a JSON error, closing the connection.
pub fn write_overloaded(out: &mut impl Sink) {
    response::Response::error(503, "too many open connections").write(Some("close"), false, out);
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    #[test]
    fn the_overload_answer_is_a_closing_503_with_a_json_error() {
        let mut out = Vec::new();
        super::write_overloaded(&mut out);
        let text = core::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n{\"error\":\"too many open connections\"}"),
            "{text}"
        );
    }
}
