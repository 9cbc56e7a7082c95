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

/// `cargo` (the one running xtask) in the workspace root.
pub(crate) fn cargo() -> Command {
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
    let release = !args.debug;
    let out = output_dir(args, board)?;
    build_boot_programs(board, release, args.test)?;
    let elfs = read_boot_elfs(release)?;
    let description = read_system(args, board)?;
    let pd_dir = out.join("pds");
    build_programs(&description.system, release, &pd_dir, &args.pd_env)?;
    let replica_flags = replica_flags(args, description.system.replicas.len())?;
    // In declaration order, which is the replicas' index order.
    let names: Vec<&str> = description
        .system
        .replicas
        .keys()
        .map(String::as_str)
        .collect();
    let fault_late_ticks = fault_late_ticks(args, &names)?;
    let hang_late_ticks = hang_late_ticks(args, &names)?;
    let packed = pack(
        board,
        &description,
        &elfs,
        pd_dir,
        &replica_flags,
        &fault_late_ticks,
        &hang_late_ticks,
    )?;
    write_outputs(&out, &elfs, &packed)
}

/// Creates the output directory: `args.out`, or `target/atoll/<board>`.
fn output_dir(args: &BuildArgs, board: &Board) -> Result<PathBuf> {
    let out = args.out.clone().unwrap_or_else(|| {
        workspace_root()
            .join("target")
            .join("atoll")
            .join(board.name)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

/// Builds the kernel, the initialiser and the loader (for `board`, and with `test-exit` in a
/// test build).
fn build_boot_programs(board: &Board, release: bool, test: bool) -> Result<()> {
    cargo_build("atoll-kernel", release, &[], &[])?;
    cargo_build("atoll-initialiser", release, &[], &[])?;
    let loader_features: &[&str] = if test { &["test-exit"] } else { &[] };
    cargo_build(
        "atoll-loader",
        release,
        loader_features,
        &[("ATOLL_BOARD", board.name)],
    )
}

/// The ELF files of the kernel, the loader and the initialiser.
pub(crate) struct BootElfs {
    pub(crate) kernel: Vec<u8>,
    pub(crate) loader: Vec<u8>,
    pub(crate) initialiser: Vec<u8>,
}

/// Builds (release profile) and reads the kernel, loader and initialiser for `board`.
pub(crate) fn boot_elfs(board: &Board) -> Result<BootElfs> {
    build_boot_programs(board, true, false)?;
    read_boot_elfs(true)
}

/// Reads the ELFs [`build_boot_programs`] built, checking that a release kernel cannot panic.
fn read_boot_elfs(release: bool) -> Result<BootElfs> {
    let bin_dir = workspace_root()
        .join("target")
        .join(KERNEL_TARGET)
        .join(if release { "release" } else { "debug" });
    let kernel_path = bin_dir.join("atoll-kernel");
    let kernel = std::fs::read(&kernel_path).context("reading the kernel ELF")?;
    // A debug build keeps its overflow checks and may panic; a release kernel must not.
    if release {
        crate::panics::check_kernel(&kernel_path, &kernel)?;
        check_no_kernel_data(&kernel)?;
    }
    let loader = std::fs::read(bin_dir.join("atoll-loader")).context("reading the loader ELF")?;
    let initialiser =
        std::fs::read(bin_dir.join("atoll-initialiser")).context("reading the initialiser ELF")?;
    Ok(BootElfs {
        kernel,
        loader,
        initialiser,
    })
}

/// A system description, read and checked.
struct Description {
    /// Where it was read from.
    path: PathBuf,
    /// Its text.
    text: String,
    /// The checked system.
    system: atoll_tool::model::SystemDescription,
}

/// Reads and checks `args.system` (or `system.xml` at the root) for `board`, printing its
/// diagnostics to stderr; fails if it has errors.
fn read_system(args: &BuildArgs, board: &Board) -> Result<Description> {
    let path = args
        .system
        .clone()
        .unwrap_or_else(|| workspace_root().join("system.xml"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let checked = atoll_tool::parse_and_validate(&text, board, false);
    let source = atoll_tool::diagnostics::Source::new(path.display().to_string(), text.clone());
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
        bail!("{} has errors", path.display());
    };
    Ok(Description { path, text, system })
}

/// Each replica's boot flags: a test image powers off when done (unless it runs the API
/// self-test, which runs on so the test can wait for the verdict), and each `--selftest-*`
/// option sets its flag on the replica it names.
fn replica_flags(args: &BuildArgs, replicas: usize) -> Result<Vec<u32>> {
    let mut replica_flags = vec![0u32; replicas];
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
        (
            "--selftest-restart-fault",
            args.selftest_restart_fault,
            flags::SELFTEST_RESTART_FAULT,
        ),
    ];
    // The loader's self-tests are read from the boot replica's spec.
    let loader_selftests = [
        (args.selftest_loader_fault, flags::SELFTEST_LOADER_FAULT),
        (
            args.selftest_psci_unanswered,
            flags::SELFTEST_PSCI_UNANSWERED,
        ),
    ];
    for (wanted, flag) in loader_selftests {
        if wanted {
            replica_flags[0] |= flag;
        }
    }
    for (option, replica, flag) in selftests {
        if let Some(r) = replica {
            let slot = replica_flags
                .get_mut(r as usize)
                .ok_or_else(|| anyhow!("{option} {r}: there is no replica {r}"))?;
            *slot |= flag;
        }
    }
    Ok(replica_flags)
}

/// Each replica's tick of a deliberate late fault (0: none): `--selftest-fault-late R` at
/// `LATE_FAULT_TICKS`, `--inject-fault REPLICA:SECONDS` at its time.
fn fault_late_ticks(args: &BuildArgs, names: &[&str]) -> Result<Vec<u32>> {
    let mut ticks = vec![0u32; names.len()];
    if let Some(r) = args.selftest_fault_late {
        let slot = ticks
            .get_mut(r as usize)
            .ok_or_else(|| anyhow!("--selftest-fault-late {r}: there is no replica {r}"))?;
        *slot = atoll_abi::spec::LATE_FAULT_TICKS;
    }
    if let Some(list) = &args.inject_fault {
        injected(&mut ticks, "--inject-fault", list, names)?;
    }
    Ok(ticks)
}

/// Each replica's tick of a deliberate hang (0: none): `--inject-hang REPLICA:SECONDS`.
fn hang_late_ticks(args: &BuildArgs, names: &[&str]) -> Result<Vec<u32>> {
    let mut ticks = vec![0u32; names.len()];
    if let Some(list) = &args.inject_hang {
        injected(&mut ticks, "--inject-hang", list, names)?;
    }
    Ok(ticks)
}

/// Fills `ticks` from `flag`'s comma-separated `REPLICA:SECONDS` list; a replica named
/// twice is refused.
fn injected(ticks: &mut [u32], flag: &str, list: &str, names: &[&str]) -> Result<()> {
    for spec in list.split(',') {
        let (replica, at) = injected_fault(flag, spec, names)?;
        if ticks[replica] != 0 {
            return Err(anyhow!(
                "{flag} {list}: replica {} is named twice",
                names[replica]
            ));
        }
        ticks[replica] = at;
    }
    Ok(())
}

/// `flag REPLICA:SECONDS` against the system's replica `names`: the replica's index and
/// the tick of the injection (at the kernel's tick rate).
fn injected_fault(flag: &str, spec: &str, names: &[&str]) -> Result<(usize, u32)> {
    let (replica, seconds) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{flag} {spec}: expected REPLICA:SECONDS, as io:5"))?;
    let index = names
        .iter()
        .position(|n| *n == replica)
        .or_else(|| replica.parse::<usize>().ok().filter(|&i| i < names.len()))
        .ok_or_else(|| {
            anyhow!(
                "{flag} {spec}: no replica {replica:?}; the system has {}",
                names.join(", ")
            )
        })?;
    let seconds: u32 = seconds
        .parse()
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| anyhow!("{flag} {spec}: SECONDS must be a whole number from 1"))?;
    let ticks = seconds
        .checked_mul(atoll_abi::spec::DEFAULT_TICK_HZ)
        .ok_or_else(|| anyhow!("{flag} {spec}: too many seconds"))?;
    Ok((index, ticks))
}

/// Packs the image, finding PD programs in `pd_dir` and then beside the description.
fn pack(
    board: &'static Board,
    description: &Description,
    elfs: &BootElfs,
    pd_dir: PathBuf,
    replica_flags: &[u32],
    fault_late_ticks: &[u32],
    hang_late_ticks: &[u32],
) -> Result<atoll_tool::pack::Packed> {
    let mut search_paths = vec![pd_dir];
    if let Some(dir) = description.path.parent() {
        search_paths.push(dir.to_path_buf());
    }
    let inputs = atoll_tool::pack::Inputs {
        board,
        kernel_elf: &elfs.kernel,
        loader_elf: &elfs.loader,
        search_paths: &search_paths,
        replica_flags,
        fault_late_ticks,
        hang_late_ticks,
        initialiser_elf: Some(&elfs.initialiser),
    };
    atoll_tool::build(&description.system, &description.text, &inputs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!(
            "packing {} failed:\n  {}",
            description.path.display(),
            lines.join("\n  ")
        )
    })
}

/// Writes the image to `out/atoll.img`, and beside it the boot ELFs and the plan's reports.
fn write_outputs(out: &Path, elfs: &BootElfs, packed: &atoll_tool::pack::Packed) -> Result<Built> {
    let image_path = out.join("atoll.img");
    std::fs::write(&image_path, &packed.image)?;
    std::fs::write(out.join("atoll-kernel.elf"), &elfs.kernel)?;
    std::fs::write(out.join("atoll-loader.elf"), &elfs.loader)?;
    std::fs::write(out.join("atoll-initialiser.elf"), &elfs.initialiser)?;
    // report.txt, report.json and system.dot, as the microkit command writes them.
    atoll_tool::report::write_all(&packed.plan, &out.join("report.txt"))?;
    Ok(Built { image: image_path })
}

/// The target PD programs are built for.
pub const PD_TARGET: &str = "aarch64-unknown-none";

/// A PD program to build.
struct Program {
    /// The package under `protection-domains/` that holds it.
    package: String,
    /// Its binary target.
    bin: String,
    /// The program image the description names (`io.elf`).
    file: String,
}

/// Builds the program of every PD the description names: `path="io.elf"` is the binary
/// `io` of a package under `protection-domains/`. Copies each to `dir/<name>.elf`.
fn build_programs(
    system: &atoll_tool::model::SystemDescription,
    release: bool,
    dir: &Path,
    env: &[(String, String)],
) -> Result<()> {
    let wanted = programs(system)?;
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "--target", PD_TARGET]);
    if release {
        cmd.arg("--release");
    }
    for program in &wanted {
        cmd.args(["-p", &program.package]);
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
    for Program { bin, file, .. } in &wanted {
        std::fs::copy(bin_dir.join(bin), dir.join(file))
            .with_context(|| format!("copying {bin}"))?;
    }
    Ok(())
}

/// The workspace's packages, as `cargo metadata` describes them.
pub(crate) fn workspace_packages() -> Result<Vec<serde_json::Value>> {
    let metadata = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()?;
    if !metadata.status.success() {
        bail!("cargo metadata failed ({})", metadata.status);
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("reading cargo metadata")?;
    Ok(metadata["packages"].as_array().cloned().unwrap_or_default())
}

/// The programs the description's PDs run, each once, found through `cargo metadata`.
fn programs(system: &atoll_tool::model::SystemDescription) -> Result<Vec<Program>> {
    let packages = workspace_packages()?;
    let mut wanted: Vec<Program> = Vec::new();
    for pd in system.protection_domains.values() {
        let file = pd.program_image.path.clone();
        let bin = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let Some(package) = pd_package_with_bin(&packages, &bin) else {
            bail!(
                "PD '{}': no binary `{bin}` under protection-domains/ builds its program image `{file}`",
                pd.name
            );
        };
        if !wanted.iter().any(|w| w.file == file) {
            wanted.push(Program { package, bin, file });
        }
    }
    Ok(wanted)
}

/// The package under `protection-domains/`, among `cargo metadata`'s `packages`, that has
/// the binary target `bin`.
fn pd_package_with_bin(packages: &[serde_json::Value], bin: &str) -> Option<String> {
    packages.iter().find_map(|p| {
        let in_pds = p["manifest_path"]
            .as_str()
            .is_some_and(|m| m.contains("protection-domains"));
        let has_bin = p["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == bin && t["kind"][0] == "bin"));
        (in_pds && has_bin).then(|| p["name"].as_str().unwrap_or_default().to_string())
    })
}

/// Refuses a kernel with initialised data: its state must start as zeros (`.bss`), which
/// the image need not carry nor the loader copy and checksum for every replica. A static
/// that is not all zeros (an `Option` whose `None` lands on a niche of non-zero value, for
/// one) moves whole tables into `.data` and adds their size to the image and the boot.
fn check_no_kernel_data(kernel: &[u8]) -> Result<()> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(kernel).context("parsing the kernel ELF")?;
    let data = file.section_by_name(".data").map_or(0, |s| s.size());
    if data != 0 {
        bail!(
            "the kernel has {data} bytes of initialised data (.data): its statics must start \
             as zeros (look for a static whose initial value is not all zero bytes, such as \
             an Option with a niche)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_injected_fault_names_a_replica_and_whole_seconds() {
        let names = ["io", "rt", "storage"];
        let f = "--inject-fault";
        assert_eq!(
            super::injected_fault(f, "storage:3", &names).unwrap(),
            (2, 300)
        );
        assert_eq!(super::injected_fault(f, "1:2", &names).unwrap(), (1, 200));
        for (bad, says) in [
            ("storage", "REPLICA:SECONDS"),
            ("disk:3", "io, rt, storage"),
            ("7:3", "no replica"),
            ("io:0", "whole number"),
            ("io:1.5", "whole number"),
            ("io:99999999", "too many"),
        ] {
            let e = super::injected_fault(f, bad, &names)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn injections_take_a_list_of_replicas_each_once() {
        let names = ["io", "rt", "storage"];
        let mut ticks = [0; 3];
        super::injected(&mut ticks, "--inject-hang", "storage:3,io:9", &names).unwrap();
        assert_eq!(ticks, [900, 0, 300]);
        let mut ticks = [0; 3];
        let e = super::injected(&mut ticks, "--inject-fault", "rt:1,1:2", &names)
            .unwrap_err()
            .to_string();
        assert!(e.contains("replica rt is named twice"), "{e}");
    }

    /// A PD program is a binary target of a package under `protection-domains/`, not a
    /// library or a package elsewhere.
    #[test]
    fn pd_package_is_found_by_its_binary() {
        let packages = [
            json!({ "name": "atoll-tool", "manifest_path": "/w/tool/Cargo.toml",
                    "targets": [{ "name": "io", "kind": ["bin"] }] }),
            json!({ "name": "pd-lib", "manifest_path": "/w/protection-domains/lib/Cargo.toml",
                    "targets": [{ "name": "io", "kind": ["lib"] }] }),
            json!({ "name": "pd-io", "manifest_path": "/w/protection-domains/io/Cargo.toml",
                    "targets": [{ "name": "pong", "kind": ["bin"] }, { "name": "io", "kind": ["bin"] }] }),
        ];
        assert_eq!(
            super::pd_package_with_bin(&packages, "io").as_deref(),
            Some("pd-io")
        );
        assert_eq!(
            super::pd_package_with_bin(&packages, "pong").as_deref(),
            Some("pd-io")
        );
        assert_eq!(super::pd_package_with_bin(&packages, "ping"), None);
    }
}
