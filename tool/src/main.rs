//! The `microkit` command: see [`microkit::cli`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    microkit::cli::main()
}
