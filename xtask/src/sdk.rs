//! `cargo xtask sdk`: Atoll's SDK in Microkit's layout, so that a Microkit user's Makefile
//! builds C protection domains against it by pointing `MICROKIT_SDK` at it.
//!
//! ```text
//! atoll-sdk-<version>/
//!   VERSION
//!   bin/microkit                         Atoll's tool, with Microkit's command line
//!   example/<name>/                      the C examples, each with its Makefile
//!   board/<board>/<config>/              config: debug, release, benchmark
//!     include/microkit.h, include/sel4/sel4.h, include/kernel/gen_config.h
//!     lib/libmicrokit.a, lib/microkit.ld
//!     elf/atoll-loader.elf, elf/atoll-kernel.elf, elf/atoll-initialiser.elf
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use atoll_boards::Board;

use crate::build::{PD_TARGET, workspace_root};

/// The configurations an SDK holds, as Microkit's.
pub const CONFIGS: &[&str] = &["debug", "release", "benchmark"];

/// The files every board and configuration directory holds, relative to it.
pub const CONFIG_FILES: &[&str] = &[
    "include/microkit.h",
    "include/sel4/sel4.h",
    "include/kernel/gen_config.h",
    "lib/libmicrokit.a",
    "lib/microkit.ld",
    "elf/atoll-loader.elf",
    "elf/atoll-kernel.elf",
    "elf/atoll-initialiser.elf",
];

/// The C examples shipped in the SDK (`protection-domains/c/<name>`).
pub const EXAMPLES: &[&str] = &[
    "hello",
    "passive_server",
    "hierarchy",
    "multikernel",
    "api_test",
];

/// Where the C library's sources are.
fn libmicrokit_dir() -> PathBuf {
    workspace_root()
        .join("protection-domains")
        .join("libmicrokit")
}

/// Where the C examples are.
pub fn examples_dir() -> PathBuf {
    workspace_root().join("protection-domains").join("c")
}

/// The SDK's name, with the workspace's version.
pub fn name() -> String {
    format!("atoll-sdk-{}", env!("CARGO_PKG_VERSION"))
}

/// The default output: `target/sdk/atoll-sdk-<version>`.
pub fn default_out() -> PathBuf {
    workspace_root().join("target").join("sdk").join(name())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write(to: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))
}

/// Builds `libmicrokit.a` (quiet: with its debug output silenced) and returns its bytes.
fn libmicrokit(quiet: bool) -> Result<Vec<u8>> {
    let mut cmd = crate::build::cargo();
    cmd.args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "atoll-libmicrokit",
        "--target",
        PD_TARGET,
    ]);
    if quiet {
        cmd.args(["--features", "quiet"]);
    }
    let status = cmd
        .status()
        .context("running cargo build -p atoll-libmicrokit")?;
    if !status.success() {
        bail!("building libmicrokit.a failed");
    }
    let path = workspace_root()
        .join("target")
        .join(PD_TARGET)
        .join("release")
        .join("libmicrokit.a");
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// The tool, built with the release profile.
fn tool() -> Result<PathBuf> {
    let status = crate::build::cargo()
        .args(["build", "--quiet", "--release", "-p", "atoll-tool"])
        .status()
        .context("running cargo build -p atoll-tool")?;
    if !status.success() {
        bail!("building the microkit tool failed");
    }
    Ok(workspace_root()
        .join("target")
        .join("release")
        .join("microkit"))
}

/// seL4's name of the board's platform configuration.
fn platform(board: &Board) -> &'static str {
    match board.name {
        "qemu_virt_aarch64" => "CONFIG_PLAT_QEMU_ARM_VIRT",
        "zcu102" => "CONFIG_PLAT_ZYNQMP_ZCU102",
        "imx8mp_evk" => "CONFIG_PLAT_IMX8MP_EVK",
        _ => "CONFIG_PLAT_UNKNOWN",
    }
}

/// `include/kernel/gen_config.h` for `board` and `config`, written as seL4's (two spaces
/// between name and value: Microkit's Makefiles cut the architecture out of it by field).
pub fn gen_config(board: &Board, config: &str) -> String {
    let mut defines = vec![
        ("CONFIG_SEL4_ARCH", "aarch64".to_string()),
        ("CONFIG_ARCH_AARCH64", "1".into()),
        ("CONFIG_ARCH_ARM", "1".into()),
        ("CONFIG_WORD_SIZE", "64".into()),
        ("CONFIG_KERNEL_MCS", "1".into()),
        ("CONFIG_ALLOW_SMC_CALLS", "1".into()),
        ("CONFIG_MAX_NUM_NODES", board.cores.len().to_string()),
        (platform(board), "1".into()),
        ("CONFIG_ATOLL", "1".into()),
    ];
    if config == "debug" {
        defines.push(("CONFIG_DEBUG_BUILD", "1".into()));
        defines.push(("CONFIG_PRINTING", "1".into()));
    }
    if config == "benchmark" {
        defines.push(("CONFIG_ENABLE_BENCHMARKS", "1".into()));
    }
    let mut text = format!(
        "/* Atoll SDK: kernel configuration for {}, {config} (written by cargo xtask sdk). */\n#pragma once\n\n",
        board.name
    );
    for (name, value) in defines {
        text.push_str(&format!("#define {name}  {value}\n"));
    }
    text
}

/// Copies the C examples (sources, descriptions, Makefiles) into `to`.
fn copy_examples(to: &Path) -> Result<()> {
    copy(&examples_dir().join("common.mk"), &to.join("common.mk"))?;
    for example in EXAMPLES {
        let from = examples_dir().join(example);
        for entry in
            std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                copy(&entry.path(), &to.join(example).join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

/// Builds the SDK into `out` (replacing what is there) for `boards`; returns `out`.
pub fn build(out: &Path, boards: &[&'static Board]) -> Result<PathBuf> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    eprintln!("xtask sdk: building the SDK into {}", out.display());
    copy(&tool()?, &out.join("bin").join("microkit"))?;
    write(
        &out.join("VERSION"),
        format!("{}\n", env!("CARGO_PKG_VERSION")).as_bytes(),
    )?;
    let loud = libmicrokit(false)?;
    let quiet = libmicrokit(true)?;
    let lib = libmicrokit_dir();
    for board in boards {
        let elfs = crate::build::boot_elfs(board)?;
        for config in CONFIGS {
            let dir = out.join("board").join(board.name).join(config);
            copy(
                &lib.join("include/microkit.h"),
                &dir.join("include/microkit.h"),
            )?;
            copy(
                &lib.join("include/sel4/sel4.h"),
                &dir.join("include/sel4/sel4.h"),
            )?;
            write(
                &dir.join("include/kernel/gen_config.h"),
                gen_config(board, config).as_bytes(),
            )?;
            let archive = if *config == "debug" { &loud } else { &quiet };
            write(&dir.join("lib/libmicrokit.a"), archive)?;
            copy(&lib.join("microkit.ld"), &dir.join("lib/microkit.ld"))?;
            write(&dir.join("elf/atoll-loader.elf"), &elfs.loader)?;
            write(&dir.join("elf/atoll-kernel.elf"), &elfs.kernel)?;
            write(&dir.join("elf/atoll-initialiser.elf"), &elfs.initialiser)?;
        }
    }
    copy_examples(&out.join("example"))?;
    Ok(out.to_path_buf())
}

/// Packs `sdk` as `<name>.tar.gz` beside it; returns the archive's path.
pub fn tarball(sdk: &Path) -> Result<PathBuf> {
    let parent = sdk.parent().context("the SDK directory has no parent")?;
    let dir_name = sdk.file_name().context("the SDK directory has no name")?;
    let archive = parent.join(format!("{}.tar.gz", dir_name.to_string_lossy()));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(parent)
        .arg(dir_name)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar failed to write {}", archive.display());
    }
    Ok(archive)
}

/// Checks an SDK's layout file by file for `boards`: the reason if something is missing.
pub fn check_layout(sdk: &Path, boards: &[&Board]) -> Result<()> {
    let mut missing = Vec::new();
    let mut expect = |path: PathBuf| {
        if !path.is_file() {
            missing.push(path.display().to_string());
        }
    };
    expect(sdk.join("bin/microkit"));
    expect(sdk.join("VERSION"));
    expect(sdk.join("example/common.mk"));
    for example in EXAMPLES {
        expect(sdk.join("example").join(example).join("Makefile"));
    }
    for board in boards {
        for config in CONFIGS {
            for file in CONFIG_FILES {
                expect(sdk.join("board").join(board.name).join(config).join(file));
            }
        }
    }
    if !missing.is_empty() {
        bail!("the SDK at {} lacks: {}", sdk.display(), missing.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn gen_config_names_the_architecture_as_microkit_makefiles_cut_it() {
        let text = super::gen_config(&atoll_boards::QEMU_VIRT_AARCH64, "debug");
        // `grep 'CONFIG_SEL4_ARCH  ' | cut -d' ' -f4`
        let line = text
            .lines()
            .find(|l| l.contains("CONFIG_SEL4_ARCH  "))
            .expect("the line");
        assert_eq!(line.split(' ').nth(3), Some("aarch64"));
        assert!(text.contains("CONFIG_DEBUG_BUILD"));
        let release = super::gen_config(&atoll_boards::ZCU102, "release");
        assert!(
            !release.contains("CONFIG_PRINTING") && release.contains("CONFIG_PLAT_ZYNQMP_ZCU102")
        );
    }
}
