//! `cargo xtask build`: compiles the loader and kernel, lays out the replicas and packs
//! the image, leaving everything needed to debug it beside the image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use atoll_abi::spec::flags;
use atoll_boards::Board;

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
    cargo_build("atoll-initialiser", release, &[], &[])?;
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
    let kernel_path = bin_dir.join("atoll-kernel");
    let kernel_elf = std::fs::read(&kernel_path).context("reading the kernel ELF")?;
    // A debug build keeps its overflow checks and may panic; a release kernel must not.
    if release {
        crate::panics::check_kernel(&kernel_path, &kernel_elf)?;
    }
    let loader_elf =
        std::fs::read(bin_dir.join("atoll-loader")).context("reading the loader ELF")?;
    let initialiser_elf =
        std::fs::read(bin_dir.join("atoll-initialiser")).context("reading the initialiser ELF")?;
    let system_path = args
        .system
        .clone()
        .unwrap_or_else(|| root.join("system.xml"));
    let text = std::fs::read_to_string(&system_path)
        .with_context(|| format!("reading {}", system_path.display()))?;
    let checked = atoll_tool::parse_and_validate(&text, board, false);
    let source =
        atoll_tool::diagnostics::Source::new(system_path.display().to_string(), text.clone());
    for d in &checked.diagnostics {
        eprint!(
            "{}",
            atoll_tool::diagnostics::render(
                d,
                &source,
                atoll_tool::diagnostics::MessageFormat::Human,
                false
            )
        );
    }
    let Some(system) = checked.system else {
        bail!("{} has errors", system_path.display());
    };

    let pd_dir = out.join("pds");
    build_programs(&system, release, &pd_dir, &args.pd_env)?;

    let mut replica_flags = vec![0u32; system.replicas.len()];
    // An API self-test image runs on, so the test can wait for the verdict.
    if args.test && args.selftest_api.is_none() {
        replica_flags[0] |= flags::EXIT_WHEN_DONE;
    }
    let selftests = [
        (
            "--selftest-fault",
            args.selftest_fault,
            flags::SELFTEST_FAULT,
        ),
        (
            "--selftest-stack-overflow",
            args.selftest_stack_overflow,
            flags::SELFTEST_STACK_OVERFLOW,
        ),
        (
            "--selftest-user-fault",
            args.selftest_user_fault,
            flags::SELFTEST_USER_FAULT,
        ),
        (
            "--selftest-api",
            args.selftest_api,
            flags::SELFTEST_KERNEL_API,
        ),
    ];
    for (option, replica, flag) in selftests {
        if let Some(r) = replica {
            let slot = replica_flags
                .get_mut(r as usize)
                .ok_or_else(|| anyhow!("{option} {r}: there is no replica {r}"))?;
            *slot |= flag;
        }
    }
    let mut search_paths = vec![pd_dir];
    if let Some(dir) = system_path.parent() {
        search_paths.push(dir.to_path_buf());
    }
    let inputs = atoll_tool::pack::Inputs {
        board,
        kernel_elf: &kernel_elf,
        loader_elf: &loader_elf,
        search_paths: &search_paths,
        replica_flags: &replica_flags,
        initialiser_elf: Some(&initialiser_elf),
    };
    let packed = atoll_tool::build(&system, &text, &inputs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!(
            "packing {} failed:\n  {}",
            system_path.display(),
            lines.join("\n  ")
        )
    })?;

    let image_path = out.join("atoll.img");
    std::fs::write(&image_path, &packed.image)?;
    std::fs::write(out.join("atoll-kernel.elf"), &kernel_elf)?;
    std::fs::write(out.join("atoll-loader.elf"), &loader_elf)?;
    std::fs::write(out.join("atoll-initialiser.elf"), &initialiser_elf)?;
    std::fs::write(
        out.join("report.txt"),
        atoll_tool::report::text(&packed.plan),
    )?;
    std::fs::write(
        out.join("report.json"),
        atoll_tool::report::json(&packed.plan),
    )?;
    std::fs::write(
        out.join("system.dot"),
        atoll_tool::report::dot(&packed.plan),
    )?;
    Ok(Built { image: image_path })
}

/// The target PD programs are built for.
pub const PD_TARGET: &str = "aarch64-unknown-none";

/// Builds the program of every PD the description names: `path="io.elf"` is the binary
/// `io` of a package under `protection-domains/`. Copies each to `dir/<name>.elf`.
fn build_programs(
    system: &atoll_tool::model::SystemDescription,
    release: bool,
    dir: &Path,
    env: &[(String, String)],
) -> Result<()> {
    let metadata = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("reading cargo metadata")?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut wanted: Vec<(String, String, String)> = Vec::new(); // (package, bin, file)
    for pd in system.protection_domains.values() {
        let file = pd.program_image.path.clone();
        let bin = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let package = packages.iter().find_map(|p| {
            let in_pds = p["manifest_path"]
                .as_str()
                .is_some_and(|m| m.contains("protection-domains"));
            let has_bin = p["targets"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t["name"] == bin.as_str() && t["kind"][0] == "bin")
            });
            (in_pds && has_bin).then(|| p["name"].as_str().unwrap_or_default().to_string())
        });
        let Some(package) = package else {
            bail!(
                "PD '{}': no binary `{bin}` under protection-domains/ builds its program image `{file}`",
                pd.name
            );
        };
        if !wanted.iter().any(|w| w.2 == file) {
            wanted.push((package, bin, file));
        }
    }
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "--target", PD_TARGET]);
    if release {
        cmd.arg("--release");
    }
    for (package, _, _) in &wanted {
        cmd.args(["-p", package]);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if !wanted.is_empty() && !cmd.status().context("building PD programs")?.success() {
        bail!("building the PD programs failed");
    }
    std::fs::create_dir_all(dir)?;
    let bin_dir = workspace_root()
        .join("target")
        .join(PD_TARGET)
        .join(if release { "release" } else { "debug" });
    for (_, bin, file) in &wanted {
        std::fs::copy(bin_dir.join(bin), dir.join(file))
            .with_context(|| format!("copying {bin}"))?;
    }
    Ok(())
}
