//! Property tests: no input makes the connection panic or write anything but HTTP/1.1
//! responses, and how the input is split never changes what is answered.

mod common;

use atoll_http::{Connection, Outcome, percent_decode};
use common::Mock;
use proptest::prelude::*;

/// Pieces that make up plausible and implausible requests, so that random sequences get
/// past the request line often enough to reach the header and body logic.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET /status HTTP/1.1\r\n".to_vec()),
        Just(b"PUT /kv/a%20b HTTP/1.1\r\n".to_vec()),
        Just(b"DELETE /kv/a HTTP/1.0\r\n".to_vec()),
        Just(b"HEAD / HTTP/1.1\r\n".to_vec()),
        Just(b"GET /rt HTTP/1.1\r\n".to_vec()),
        Just(b"BREW /kv/%ff HTTP/1.1\r\n".to_vec()),
        Just(b"Host: a\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Content-Length: 70000\r\n".to_vec()),
        Just(b"Content-Length: x\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Connection: close\r\n".to_vec()),
        Just(b"Connection: keep-alive\r\n".to_vec()),
        Just(b"Expect: 100-continue\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"abc".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

/// Feeds `input` cut at `cuts` (positions, any order, clamped); the output and outcome.
fn run(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Outcome) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut connection = Connection::new();
    let mut app = Mock::default();
    let mut out = Vec::new();
    let mut outcome = Outcome::Open;
    let mut start = 0;
    for end in cuts.into_iter().chain([input.len()]) {
        let closed = connection.is_closed();
        let before = out.len();
        outcome = connection.receive(&input[start..end], &mut app, &mut out);
        if closed {
            assert_eq!((outcome, out.len()), (Outcome::Close, before));
        }
        start = end;
    }
    (out, outcome)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (out, _) = run(&input, &cuts);
        prop_assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "));
    }

    #[test]
    fn request_like_bytes_never_panic_and_split_anywhere(
        fragments in proptest::collection::vec(fragment(), 0..24),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = fragments.concat();
        let (whole, whole_outcome) = run(&input, &[]);
        prop_assert!(whole.is_empty() || whole.starts_with(b"HTTP/1.1 "));
        let (split, split_outcome) = run(&input, &cuts);
        prop_assert!(split.is_empty() || split.starts_with(b"HTTP/1.1 "));
        // `100 Continue` depends on whether the body came with the head; nothing else may.
        let strip = |out: &[u8]| {
            String::from_utf8_lossy(out).replace("HTTP/1.1 100 Continue\r\n\r\n", "")
        };
        prop_assert_eq!(strip(&whole), strip(&split));
        prop_assert_eq!(whole_outcome, split_outcome);
    }

    #[test]
    fn percent_decoding_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(decoded) = percent_decode(&input) {
            prop_assert!(decoded.len() <= input.len());
        }
    }
}
