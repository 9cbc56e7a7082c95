//! `cargo xtask test`: the whole suite, as CI runs it.

use anyhow::Result;

/// Runs lints, host tests, builds the test images and runs the QEMU tests.
pub fn run(_boards: &[String], _lint: bool) -> Result<()> {
    anyhow::bail!("not yet")
}
