//! Replays the fuzz seed corpus (`tool/fuzz/corpus/parse/`) so the normal test suite covers
//! what the fuzzer starts from: every file must check and render without panicking.
#![forbid(unsafe_code)]

use std::path::Path;

use atoll_tool::diagnostics::{MessageFormat, Source, render};

#[test]
fn fuzz_corpus_never_panics() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut files = 0;
    for entry in std::fs::read_dir(&corpus).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for strict in [false, true] {
            let checked = atoll_tool::check(&text, &atoll_boards::QEMU_VIRT_AARCH64, strict);
            let source = Source::new(path.display().to_string(), text.clone());
            for diagnostic in &checked.diagnostics {
                for format in [
                    MessageFormat::Human,
                    MessageFormat::Short,
                    MessageFormat::Json,
                ] {
                    assert!(render(diagnostic, &source, format, false).ends_with('\n'));
                }
            }
        }
        files += 1;
    }
    assert!(files >= 10, "only {files} corpus files");
}
