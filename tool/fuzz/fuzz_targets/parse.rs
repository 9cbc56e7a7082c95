//! Fuzz target: any bytes, as a system description, must check and render without panicking.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use atoll_tool::diagnostics::{MessageFormat, Source, render};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for strict in [false, true] {
        let checked = atoll_tool::check(&text, &atoll_boards::QEMU_VIRT_AARCH64, strict);
        let source = Source::new("fuzz.xml", text.clone());
        for diagnostic in &checked.diagnostics {
            for format in [
                MessageFormat::Human,
                MessageFormat::Short,
                MessageFormat::Json,
            ] {
                let _ = render(diagnostic, &source, format, false);
            }
        }
    }
});
