//! The `microkit` tool (work in progress; see issue 3).
fn main() {}
