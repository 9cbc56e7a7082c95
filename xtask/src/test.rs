//! `cargo xtask test`: the whole suite, as CI runs it — lints, host tests (unit, property,
//! snapshot), then QEMU end-to-end tests on every board.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::BuildArgs;
use crate::build::{KERNEL_TARGET, board, build, workspace_root};
use crate::setup;

fn cargo(args: &[&str]) -> Command {
    let mut cmd = crate::build::cargo();
    cmd.args(args);
    cmd
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask test: {name}");
    let status = cmd.status().with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// A PD compiled for unwinding (`-C panic=unwind`, which stable Rust cannot honour on the
/// PD target) must be refused by the runtime with its own message, not fail later in an
/// obscure way. Checked in a target directory of its own, so the flags do not invalidate
/// the suite's other builds.
fn unwinding_is_refused() -> Result<()> {
    eprintln!("xtask test: a PD compiled with -C panic=unwind is refused");
    let out = cargo(&[
        "check",
        "--quiet",
        "-p",
        "atoll-microkit",
        "--target",
        crate::build::PD_TARGET,
    ])
    .env("RUSTFLAGS", "-C panic=unwind")
    .env(
        "CARGO_TARGET_DIR",
        workspace_root().join("target").join("unwind-check"),
    )
    .output()
    .context("running cargo check")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("which Atoll does not support") {
        bail!(
            "a PD compiled with -C panic=unwind was not refused with the runtime's message:\n{stderr}"
        );
    }
    Ok(())
}

/// Clippy on `packages` for `target`, every warning an error.
fn clippy(name: &str, packages: &[&str], target: &str) -> Result<()> {
    let mut args = vec!["clippy", "--quiet"];
    for p in packages {
        args.extend(["-p", p]);
    }
    args.extend(["--target", target, "--", "-D", "warnings"]);
    step(name, &mut cargo(&args))
}

/// Formatting, clippy on every target and rustdoc.
fn lints() -> Result<()> {
    step("rustfmt", &mut cargo(&["fmt", "--all", "--check"]))?;
    step(
        "clippy (host crates)",
        &mut cargo(&["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]),
    )?;
    // Not a default member (its tests need the images `cargo xtask test` builds).
    step(
        "clippy (end-to-end tests)",
        &mut cargo(&[
            "clippy",
            "--quiet",
            "-p",
            "atoll-e2e",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let pd = crate::build::PD_TARGET;
    clippy(
        "clippy (protection domains)",
        &[
            "atoll-microkit",
            "atoll-pd-io",
            "atoll-pd-net",
            "atoll-pd-blk",
            "atoll-pd-rt",
            "atoll-pd-storage",
            "atoll-pd-template",
            "atoll-bench-pds",
            "atoll-test-pds",
            "atoll-examples",
            "atoll-compat",
        ],
        pd,
    )?;
    // On its own: its `full` feature links `alloc`, which would then ask every PD checked
    // with it for a heap.
    clippy(
        "clippy (the sel4-microkit API probe)",
        &["atoll-compat-probe"],
        pd,
    )?;
    // On its own: the runtime's `c-api` feature defines the program entry Rust PDs define.
    clippy(
        "clippy (the C SDK's libmicrokit)",
        &["atoll-libmicrokit"],
        pd,
    )?;
    clippy(
        "clippy (aarch64 crates)",
        &["atoll-kernel", "atoll-loader", "atoll-initialiser"],
        KERNEL_TARGET,
    )?;
    // Broken intra-doc links and stale names in the host crates' documentation.
    let mut doc = cargo(&["doc", "--quiet", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    step("rustdoc (host crates)", &mut doc)
}

/// Debian packages of the clients the HTTP service's end-to-end tests run on the host.
const SERVICE_CLIENTS: &[&str] = &["curl", "chromium", "wrk"];

/// Builds the SDK (every board) and checks its layout, then builds each C example for
/// `boards` with its own Makefile against the SDK alone (clang and ld.lld, as Microkit's
/// `LLVM=True`): the debug configuration, and `hello` also in release. Returns the SDK's
/// directory and where the images are (`<board>/<config>/<example>/loader.img`).
fn c_sdk(boards: &[&'static atoll_boards::Board]) -> Result<(PathBuf, PathBuf)> {
    setup::packages(setup::C_TOOLCHAIN)?;
    let sdk = crate::sdk::build(&crate::sdk::default_out(), atoll_boards::BOARDS)?;
    crate::sdk::check_layout(&sdk, atoll_boards::BOARDS)?;
    let images = workspace_root().join("target").join("atoll").join("c");
    for board in boards {
        let builds = crate::sdk::EXAMPLES
            .iter()
            .map(|e| (*e, "debug"))
            .chain([("hello", "release")]);
        for (example, config) in builds {
            let build_dir = images.join(board.name).join(config).join(example);
            if build_dir.exists() {
                std::fs::remove_dir_all(&build_dir)?;
            }
            let mut make = Command::new("make");
            make.arg("-s")
                .arg("-C")
                .arg(sdk.join("example").join(example))
                .arg(format!("BUILD_DIR={}", build_dir.display()))
                .arg(format!("MICROKIT_SDK={}", sdk.display()))
                .arg(format!("MICROKIT_BOARD={}", board.name))
                .arg(format!("MICROKIT_CONFIG={config}"))
                .arg("LLVM=True");
            step(
                &format!(
                    "building the C example {example} ({config}) for {}",
                    board.name
                ),
                &mut make,
            )?;
        }
    }
    Ok((sdk, images))
}

/// The disks the U-Boot tests boot QEMU's `virt` from, with Debian's U-Boot as firmware:
/// `cargo xtask deploy`'s files for the `boot` test image (`deploy.img`: its `boot.scr` and
/// `atoll.img`), the same image started by `booti` from two other addresses
/// (`booti-<address>.img`), and its FIT image started by `bootm` (`fit.img`).
fn u_boot_disks(images: &std::path::Path) -> Result<PathBuf> {
    use crate::deploy::{fat_disk, fit_script, script, write_files};
    setup::packages(crate::deploy::PACKAGES)?;
    eprintln!("xtask test: U-Boot disks");
    let board = &atoll_boards::QEMU_VIRT_AARCH64;
    let dir = workspace_root().join("target").join("atoll").join("u-boot");
    let image = images.join(board.name).join("boot").join("atoll.img");
    let files = write_files(board, &image, &dir.join("files"))?;
    let img = files.join("atoll.img");
    fat_disk(
        &dir.join("deploy.img"),
        &[("atoll.img", &img), ("boot.scr", &files.join("boot.scr"))],
    )?;
    // A script of its own for each disk, compiled beside it.
    let scripted = |name: &str, text: String, payload: (&str, &std::path::Path)| -> Result<()> {
        let source = dir.join(format!("{name}.cmd"));
        std::fs::write(&source, text)?;
        let compiled = dir.join(format!("{name}.scr"));
        script(&source, &compiled)?;
        fat_disk(
            &dir.join(format!("{name}.img")),
            &[payload, ("boot.scr", &compiled)],
        )
    };
    for address in crate::deploy::TEST_BOOTI_ADDRESSES {
        let text = crate::deploy::boot_script(board, address);
        scripted(&format!("booti-{address}"), text, ("atoll.img", &img))?;
    }
    scripted(
        "fit",
        fit_script(board),
        ("atoll.itb", &files.join("atoll.itb")),
    )?;
    Ok(dir)
}

/// Where the end-to-end tests' images are built: `<board>/<variant>/` under it.
fn e2e_images() -> PathBuf {
    workspace_root().join("target").join("atoll").join("e2e")
}

/// Builds the image of variant `v` for board `b` under `images`.
fn build_variant(
    b: &atoll_boards::Board,
    v: &atoll_e2e::variants::Variant,
    images: &std::path::Path,
) -> Result<()> {
    eprintln!("xtask test: building the {} image for {}", v.name, b.name);
    let args = BuildArgs {
        board: b.name.into(),
        test: !v.runs_on,
        selftest_fault: v.kernel_fault,
        selftest_restart_fault: v.restart_fault,
        selftest_fault_late: v.kernel_fault_late,
        inject_fault: v.inject_fault.map(str::to_string),
        inject_hang: v.inject_hang.map(str::to_string),
        selftest_stack_overflow: v.stack_overflow,
        selftest_user_fault: v.initialiser_fault,
        selftest_api: v.api,
        selftest_loader_fault: v.loader_fault,
        selftest_psci_unanswered: v.psci_unanswered,
        system: v.system.map(|s| workspace_root().join(s)),
        out: Some(images.join(b.name).join(v.name)),
        ..BuildArgs::default()
    };
    build(&args)?;
    Ok(())
}

/// `cargo xtask crash-test`: the storage kill test (`tests/tests/storage.rs`) with `points`
/// kill points on each of `boards`, one board after the other.
pub fn crash_test(boards: &[String], points: usize) -> Result<()> {
    let started = Instant::now();
    let boards: Vec<&'static atoll_boards::Board> = if boards.is_empty() {
        vec![&atoll_boards::QEMU_VIRT_AARCH64]
    } else {
        boards.iter().map(|b| board(b)).collect::<Result<_>>()?
    };
    setup::rust_targets()?;
    let machines: Vec<&str> = boards.iter().map(|b| b.qemu.machine).collect();
    setup::qemu(&machines)?;
    let images = e2e_images();
    for b in &boards {
        build_variant(b, &atoll_e2e::variants::SERVICE, &images)?;
        let mut kill = cargo(&["test", "-p", "atoll-e2e", "--test", "storage", "--"]);
        kill.args([b.name, "--nocapture", "--test-threads=1"])
            .env("ATOLL_E2E_IMAGES", &images)
            .env("ATOLL_CRASH_POINTS", points.to_string());
        step(&format!("{points} kill points on {}", b.name), &mut kill)?;
    }
    eprintln!("xtask crash-test: all passed in {:.1?}", started.elapsed());
    Ok(())
}

/// Runs the suite; `boards` limits the QEMU tests (empty = all boards).
pub fn run(boards: &[String], lint: bool) -> Result<()> {
    let started = Instant::now();
    let boards: Vec<&'static atoll_boards::Board> = if boards.is_empty() {
        atoll_boards::BOARDS.to_vec()
    } else {
        boards.iter().map(|b| board(b)).collect::<Result<_>>()?
    };
    setup::rust_targets()?;
    let machines: Vec<&str> = boards.iter().map(|b| b.qemu.machine).collect();
    setup::qemu(&machines)?;

    if lint {
        lints()?;
    }
    step("host tests", &mut cargo(&["test"]))?;
    // The driver and service PDs' device-independent logic, tested on the host (their
    // programs are built for the PD target only).
    step(
        "PD crates' host tests",
        &mut cargo(&[
            "test",
            "--quiet",
            "-p",
            "atoll-pd-net",
            "-p",
            "atoll-pd-blk",
            "-p",
            "atoll-pd-storage",
            "-p",
            "atoll-pd-rt",
            "--lib",
        ]),
    )?;
    step(
        "PD runtime with all its features",
        &mut cargo(&[
            "test",
            "--quiet",
            "-p",
            "atoll-microkit",
            "--features",
            "full",
            "--lib",
        ]),
    )?;
    unwinding_is_refused()?;
    step(
        "end-to-end tests' own unit tests",
        &mut cargo(&["test", "--quiet", "-p", "atoll-e2e", "--lib"]),
    )?;

    let images = e2e_images();
    for b in &boards {
        for v in atoll_e2e::variants::for_board(b.name) {
            build_variant(b, v, &images)?;
        }
    }
    step(
        "building the microkit tool",
        &mut cargo(&["build", "--quiet", "-p", "atoll-tool"]),
    )?;
    step(
        "building the bench's QEMU plugin",
        &mut cargo(&["build", "--quiet", "-p", "atoll-coreclock"]),
    )?;
    let microkit = workspace_root()
        .join("target")
        .join("debug")
        .join("microkit");
    let (sdk, c_images) = c_sdk(&boards)?;
    let u_boot_disks = if boards.iter().any(|b| b.name == "qemu_virt_aarch64") {
        u_boot_disks(&images)?
    } else {
        PathBuf::new()
    };
    // The HTTP service's tests drive the guest with real clients; the debugger's tests run
    // GDB.
    setup::packages(SERVICE_CLIENTS)?;
    setup::packages(&[atoll_runner::gdb::GDB])?;
    let mut filters: Vec<String> = boards.iter().map(|b| b.name.to_string()).collect();
    filters.push("c_sdk_".into());
    let mut e2e = cargo(&["test", "-p", "atoll-e2e", "--"]);
    e2e.args(&filters)
        .env("ATOLL_E2E_IMAGES", &images)
        .env("ATOLL_SDK", &sdk)
        .env("ATOLL_C_IMAGES", &c_images)
        .env("ATOLL_U_BOOT_DISKS", &u_boot_disks)
        .env("ATOLL_MICROKIT", &microkit)
        .env("ATOLL_SYSTEM_XML", workspace_root().join("system.xml"));
    step("QEMU end-to-end tests", &mut e2e)?;
    if boards.iter().any(|b| b.name == "qemu_virt_aarch64") {
        eprintln!("xtask test: benchmark harness smoke test");
        crate::bench::run(false, true)?;
        eprintln!("xtask test: benchmarks on a busy host");
        crate::bench::steady_under_load()?;
    }
    eprintln!("xtask test: all passed in {:.1?}", started.elapsed());
    Ok(())
}
