//! Percent-decoding of request paths (RFC 3986 §2.1).
//!
//! Every `%` must start an escape of exactly two hexadecimal digits (either case); other
//! bytes are copied as they are. `+` is not a space in a path, so it is kept. The result is
//! bytes: whether they must be UTF-8 is the caller's business (keys must, see [`crate::app`]).

use alloc::vec::Vec;
use core::fmt;

/// Why a path could not be percent-decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PercentDecodeError {
    /// Byte offset of the `%` that does not start a valid escape.
    pub offset: usize,
}

impl fmt::Display for PercentDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'%' at byte {} is not followed by two hexadecimal digits",
            self.offset
        )
    }
}

/// Decodes `%XX` escapes in `input`; fails on a `%` not followed by two hex digits.
///
/// ```
/// # use atoll_http::percent_decode;
/// assert_eq!(percent_decode(b"a%20b%2Fc+d").unwrap(), b"a b/c+d");
/// assert!(percent_decode(b"100%").is_err());
/// ```
pub fn percent_decode(input: &[u8]) -> Result<Vec<u8>, PercentDecodeError> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().enumerate();
    while let Some((offset, &b)) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|(_, &h)| hex(h));
        let lo = bytes.next().and_then(|(_, &l)| hex(l));
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
            _ => return Err(PercentDecodeError { offset }),
        }
    }
    Ok(out)
}

/// The value of one hexadecimal digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(b.wrapping_sub(b'a').wrapping_add(10)),
        b'A'..=b'F' => Some(b.wrapping_sub(b'A').wrapping_add(10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_either_case() {
        assert_eq!(
            percent_decode(b"%41%4a%4A%e2%82%AC").unwrap(),
            "AJJ€".as_bytes()
        );
        assert_eq!(percent_decode(b"").unwrap(), b"");
        assert_eq!(percent_decode(b"plain+text").unwrap(), b"plain+text");
    }

    #[test]
    fn rejects_bad_escapes() {
        for (input, offset) in [
            (&b"%"[..], 0),
            (b"a%4", 1),
            (b"ab%g1", 2),
            (b"%1g", 0),
            (b"%%41", 0),
        ] {
            assert_eq!(
                percent_decode(input),
                Err(PercentDecodeError { offset }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn may_decode_to_invalid_utf8() {
        assert_eq!(percent_decode(b"%ff%00").unwrap(), [0xff, 0]);
    }
}
