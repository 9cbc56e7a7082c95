//! `cargo xtask build`: compiles the loader and kernel, lays out the replicas and packs
//! the image, leaving everything needed to debug it beside the image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use atoll_abi::spec::flags;
use atoll_boards::Board;
use atoll_pack::plan::{LayoutRequest, PlannedReplica};

use crate::BuildArgs;

/// The target the kernel and loader are built for.
pub const KERNEL_TARGET: &str = "aarch64-unknown-none-softfloat";

/// What a build produced.
pub struct Built {
    /// The bootable image.
    pub image: PathBuf,
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Looks a board up, listing the known ones on a miss.
pub fn board(name: &str) -> Result<&'static Board> {
    atoll_boards::by_name(name).ok_or_else(|| {
        let known: Vec<_> = atoll_boards::BOARDS.iter().map(|b| b.name).collect();
        anyhow!("unknown board `{name}`; known boards: {}", known.join(", "))
    })
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn cargo_build(
    package: &str,
    release: bool,
    features: &[&str],
    env: &[(&str, &str)],
) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "-p", package, "--target", KERNEL_TARGET]);
    if release {
        cmd.arg("--release");
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running cargo build -p {package}"))?;
    if !status.success() {
        bail!("building {package} failed");
    }
    Ok(())
}

/// Builds and packs an image as `args` asks.
pub fn build(args: &BuildArgs) -> Result<Built> {
    let board = board(&args.board)?;
    let root = workspace_root();
    let release = !args.debug;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target").join("atoll").join(board.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    cargo_build("atoll-kernel", release, &[], &[])?;
    let loader_features: &[&str] = if args.test { &["test-exit"] } else { &[] };
    cargo_build(
        "atoll-loader",
        release,
        loader_features,
        &[("ATOLL_BOARD", board.name)],
    )?;

    let bin_dir =
        root.join("target")
            .join(KERNEL_TARGET)
            .join(if release { "release" } else { "debug" });
    let kernel_elf =
        std::fs::read(bin_dir.join("atoll-kernel")).context("reading the kernel ELF")?;
    let loader_elf =
        std::fs::read(bin_dir.join("atoll-loader")).context("reading the loader ELF")?;
    let kernel = atoll_pack::elf::flatten_kernel(&kernel_elf)?;
    let loader = atoll_pack::elf::flatten_loader(&loader_elf)?;

    let mut request = LayoutRequest::default_for(board);
    if let Some(text) = &args.layout {
        request.clusters = atoll_pack::plan::parse_clusters(text)?;
    }
    request.flags = vec![0; request.clusters.len()];
    if args.test {
        request.flags[0] |= flags::EXIT_WHEN_DONE;
    }
    if let Some(r) = args.selftest_fault {
        let slot = request
            .flags
            .get_mut(r as usize)
            .ok_or_else(|| anyhow!("--selftest-fault {r}: there is no replica {r}"))?;
        *slot |= flags::SELFTEST_FAULT;
    }
    let replicas = atoll_pack::plan::plan(board, &request, &kernel)?;
    let image = atoll_pack::image::bootable_image(board, &loader, &kernel, &replicas)?;

    let image_path = out.join("atoll.img");
    std::fs::write(&image_path, &image)?;
    std::fs::write(out.join("atoll-kernel.elf"), &kernel_elf)?;
    std::fs::write(out.join("atoll-loader.elf"), &loader_elf)?;
    for r in &replicas {
        std::fs::write(
            out.join(format!("replica-{}.spec", r.spec.replica)),
            zerocopy_bytes(r),
        )?;
    }
    std::fs::write(
        out.join("layout.txt"),
        describe(board, &replicas, image.len()),
    )?;
    Ok(Built { image: image_path })
}

fn zerocopy_bytes(r: &PlannedReplica) -> Vec<u8> {
    zerocopy::IntoBytes::as_bytes(&r.spec).to_vec()
}

/// A human summary of the layout, written beside the image.
fn describe(board: &Board, replicas: &[PlannedReplica], image_len: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "board {} ({})", board.name, board.description);
    if let Some(first) = replicas.first() {
        let _ = writeln!(
            s,
            "system hash {:#018x}, image {} bytes",
            first.spec.system_hash, image_len
        );
        let _ = writeln!(
            s,
            "shared area {:#x} +{:#x}",
            first.spec.shared.pa, first.spec.shared.size
        );
    }
    for r in replicas {
        let spec = &r.spec;
        let _ = writeln!(
            s,
            "K{}: cores {:#b} RAM {:#x}-{:#x} flags {:#x}",
            spec.replica,
            spec.core_mask,
            spec.ram.base,
            spec.ram.end(),
            spec.flags
        );
        for m in spec.mappings() {
            let _ = writeln!(
                s,
                "    va {:#018x} -> pa {:#012x} size {:#x} attrs {:#x}",
                m.va, m.pa, m.size, m.attrs
            );
        }
    }
    s
}
