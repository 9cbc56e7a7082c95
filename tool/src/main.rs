//! The `microkit` command: see [`atoll_tool::cli`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    atoll_tool::cli::main()
}
