//! `cargo xtask`: builds, runs and tests Atoll. Every command installs what it needs first
//! (rustup targets and components; QEMU from Debian's packages when run as root).
#![forbid(unsafe_code)]
#![allow(
    rustdoc::invalid_html_tags,
    reason = "the argument docs are clap's help texts, which print `<board>` as written"
)]

mod bench;
mod bench_http;
mod bench_kv;
mod bench_restart;
mod bench_rt;
mod build;
mod deploy;
mod fuzz;
mod hygiene;
mod inspect;
mod layers;
mod panics;
mod sdk;
mod setup;
mod test;
mod trace;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test Atoll")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the loader and kernel and pack a bootable image into target/atoll/<board>/.
    Build(BuildArgs),
    /// Build, then boot the image under QEMU (`-- <args>` passes arguments to QEMU).
    Run(RunArgs),
    /// Run the whole test suite: lints, host tests and QEMU end-to-end tests on every board.
    Test(TestArgs),
    /// The storage kill test at length: QEMU killed at 200 random moments while a client
    /// streams writes, each acknowledged write checked after every restart.
    CrashTest(CrashArgs),
    /// Fuzz the kernel's system calls from a PD, watched by a witness, a canary on another
    /// replica and a watchdog (tests/systems/fuzz.xml); fails on a kernel fault, a lost
    /// heartbeat or changed memory.
    FuzzKernel(fuzz::FuzzArgs),
    /// Measure the figures of docs/performance.md that Atoll can run today; write
    /// target/bench/results.json.
    Bench(BenchArgs),
    /// Build Atoll's SDK in Microkit's layout (bin/microkit, and per board and configuration
    /// include/, lib/libmicrokit.a, lib/microkit.ld and elf/), so Microkit Makefiles build C
    /// protection domains against it with MICROKIT_SDK pointing at it.
    Sdk(SdkArgs),
    /// Build the system for a board and write what goes on its boot medium for U-Boot:
    /// atoll.img, boot.scr (and its source boot.cmd), a FIT image atoll.itb and README.txt,
    /// into target/deploy/<board>/ (docs/deploy.md).
    Deploy(DeployArgs),
    /// Show what every replica of the running system is doing (the system `cargo xtask run`
    /// runs, read through its QMP socket target/atoll/<board>/qmp.sock): replicas, PDs,
    /// channels with pending bits, log rings and each core's interference counters.
    Inspect(inspect::InspectArgs),
    /// Build, then start QEMU halted with its GDB stub and gdb-multiarch on it, with the
    /// loader's, kernel's and initialiser's symbols and an `atoll-pd` command that loads
    /// the symbols of the PD the selected core runs (`-- <args>` passes arguments to GDB,
    /// for example `-batch -ex ...`).
    Gdb(inspect::GdbArgs),
}

#[derive(Args)]
struct DeployArgs {
    /// Board to deploy on.
    #[arg(long, default_value = "qemu_virt_aarch64")]
    board: String,
    /// The system description (default: system.xml at the repository root).
    #[arg(long)]
    system: Option<PathBuf>,
    /// Where to write the files (default target/deploy/<board>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SdkArgs {
    /// Where to write it (default target/sdk/atoll-sdk-<version>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also pack it as atoll-sdk-<version>.tar.gz beside it.
    #[arg(long)]
    tarball: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Report each figure's change against bench/baseline.json.
    #[arg(long)]
    compare: bool,
    /// Only check that the harness works (one quick boot).
    #[arg(long)]
    smoke: bool,
    /// Only check that figures are the same on an idle and on a busy host.
    #[arg(long)]
    under_load: bool,
    /// Only trace one benchmark system (a path, or a name under
    /// protection-domains/bench/systems/) and print its instructions per round by function.
    #[arg(long, value_name = "SYSTEM")]
    trace: Option<String>,
}

/// Options shared by `build` and `run`.
#[derive(Args, Clone, Debug, Default)]
pub struct BuildArgs {
    /// Board to build for.
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// The system description (default: system.xml at the repository root).
    #[arg(long)]
    pub system: Option<PathBuf>,
    /// Build with the dev profile instead of release (both keep debug info).
    #[arg(long)]
    pub debug: bool,
    /// Test build: the boot replica powers off once the boot checks finish, and a loader
    /// that refuses the image ends QEMU (with -semihosting) with status 3.
    #[arg(long)]
    pub test: bool,
    /// Self-test: make this replica fault on purpose during boot.
    #[arg(long, value_name = "REPLICA")]
    pub selftest_fault: Option<u32>,
    /// Self-test: make this replica fault on purpose 5 s after boot, its PDs at work.
    #[arg(long, value_name = "REPLICA")]
    pub selftest_fault_late: Option<u32>,
    /// Fault injection: the replica named (or numbered) REPLICA takes a deliberate fatal
    /// fault SECONDS of its own time after it is up, its PDs at work (whole seconds; the
    /// kernel's epitaph and `cargo xtask inspect` then show it down, or restarting with
    /// `restart="true"`). A comma-separated list names several replicas, as `storage:4,rt:8`.
    /// The fault comes in a replica's first life only.
    #[arg(
        long,
        value_name = "REPLICA:SECONDS[,...]",
        conflicts_with = "selftest_fault_late"
    )]
    pub inject_fault: Option<String>,
    /// Hang injection: the kernel of replica REPLICA stops its timer and loops SECONDS after
    /// it is up (interrupts still taken), so that its peers report it hung (it needs a
    /// `hung_after_ms`) and stop it. A comma-separated list names several replicas.
    #[arg(long, value_name = "REPLICA:SECONDS[,...]")]
    pub inject_hang: Option<String>,
    /// Self-test: make this replica overflow its kernel stack on purpose during boot.
    #[arg(long, value_name = "REPLICA")]
    pub selftest_stack_overflow: Option<u32>,
    /// Self-test: make this replica's initialiser fault on purpose.
    #[arg(long, value_name = "REPLICA")]
    pub selftest_user_fault: Option<u32>,
    /// Self-test: make this replica's initialiser exercise the kernel API (the image then
    /// runs on instead of powering off, so the test can wait for the verdict).
    #[arg(long, value_name = "REPLICA")]
    pub selftest_api: Option<u32>,
    /// Self-test: the loader faults on purpose, and faults again in its exception handler
    /// (a test build ends QEMU with status 4 once the second exception is reported).
    #[arg(long)]
    pub selftest_loader_fault: bool,
    /// Self-test: the loader faults on purpose when it restarts this replica (which needs
    /// `restart="true"` and a fault to restart it from): the restart is given up.
    #[arg(long, value_name = "REPLICA")]
    pub selftest_restart_fault: Option<u32>,
    /// Self-test: the loader probes PSCI through the conduit the board does not use, which
    /// no firmware answers, and refuses to boot (status 3 in a test build).
    #[arg(long)]
    pub selftest_psci_unanswered: bool,
    /// Output directory (default target/atoll/<board>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Environment variables for building the PD programs (not a command-line option:
    /// `fuzz-kernel` passes its seed and length this way).
    #[arg(skip)]
    pub pd_env: Vec<(String, String)>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// Count instructions: -icount shift=0,sleep=off (cycle counter = instructions).
    #[arg(long)]
    icount: bool,
    /// The port of 127.0.0.1 forwarded to the guest's HTTP service (port 80).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// The disk image the storage replica keeps its data on (default
    /// target/atoll/<board>/disk.img, created at 64 MiB of zeros if missing), so the data
    /// survives a restart.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// Attach no disk (the storage service then says it has none).
    #[arg(long, conflicts_with = "disk")]
    no_disk: bool,
    /// Arguments passed through to QEMU.
    #[arg(last = true)]
    qemu_args: Vec<String>,
}

#[derive(Args)]
struct CrashArgs {
    /// Boards to run it on (default: qemu_virt_aarch64).
    #[arg(long)]
    board: Vec<String>,
    /// Kill points per board.
    #[arg(long, default_value_t = 200)]
    points: usize,
}

#[derive(Args)]
struct TestArgs {
    /// Only these boards' QEMU tests (default: all).
    #[arg(long)]
    board: Vec<String>,
    /// Skip formatting and clippy checks.
    #[arg(long)]
    no_lint: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => {
            setup::rust_targets()?;
            let built = build::build(&args)?;
            println!("{}", built.image.display());
            Ok(())
        }
        Command::Run(args) => run(args),
        Command::Test(args) => test::run(&args.board, !args.no_lint),
        Command::CrashTest(args) => test::crash_test(&args.board, args.points),
        Command::Bench(args) if args.under_load => bench::steady_under_load(),
        Command::Bench(BenchArgs {
            trace: Some(system),
            ..
        }) => trace::run(&system),
        Command::Bench(args) => bench::run(args.compare, args.smoke),
        Command::FuzzKernel(args) => fuzz::run_fuzz(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Gdb(args) => inspect::gdb(args),
        Command::Deploy(args) => {
            let build = BuildArgs {
                board: args.board,
                system: args.system,
                ..BuildArgs::default()
            };
            let dir = deploy::deploy(&build, args.out)?;
            println!("{}", dir.display());
            Ok(())
        }
        Command::Sdk(args) => {
            setup::rust_targets()?;
            let out = args.out.unwrap_or_else(sdk::default_out);
            let sdk = sdk::build(&out, atoll_boards::BOARDS)?;
            println!("{}", sdk.display());
            if args.tarball {
                println!("{}", sdk::tarball(&sdk)?.display());
            }
            Ok(())
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let board = build::board(&args.build.board)?;
    setup::rust_targets()?;
    setup::qemu(&[board.qemu.machine])?;
    let built = build::build(&args.build)?;
    let forward = atoll_runner::Forward {
        host: args.http_port,
        guest: 80,
    };
    let networked = atoll_runner::nic_args(board, forward).is_some();
    let disk = run_disk(board, args.disk, args.no_disk)?;
    let image_dir = built
        .image
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", built.image.display()))?;
    let mut extra = inspect::qmp_server_args(image_dir)?;
    extra.extend(args.qemu_args);
    let options = atoll_runner::QemuOptions {
        semihosting: args.build.test,
        icount: args.icount,
        interactive: true,
        extra,
        forward: networked.then_some(forward),
        disk,
        ..atoll_runner::QemuOptions::default()
    };
    let qemu_args = atoll_runner::qemu_args(board, &built.image, &options);
    eprintln!("xtask: {} {}", atoll_runner::QEMU, qemu_args.join(" "));
    eprintln!("xtask: press Ctrl-A X to quit QEMU; `cargo xtask inspect` shows every replica");
    if !networked {
        eprintln!(
            "xtask: no network interface on {} yet: no HTTP service",
            board.name
        );
    }
    let qemu = std::process::Command::new(atoll_runner::QEMU)
        .args(&qemu_args)
        .spawn()
        .with_context(|| format!("starting {}", atoll_runner::QEMU))?;
    let qemu = std::sync::Arc::new(std::sync::Mutex::new(qemu));
    // Interrupted or terminated, xtask stops QEMU first (an interactive QEMU keeps the
    // terminal's Ctrl-C for the guest; this is for signals sent to xtask).
    let stopping = std::sync::Arc::clone(&qemu);
    ctrlc::set_handler(move || {
        let mut qemu = stopping.lock().unwrap_or_else(|e| e.into_inner());
        let _ = qemu.kill();
        let _ = qemu.wait();
        std::process::exit(130);
    })
    .context("installing the signal handler")?;
    if networked {
        let port = args.http_port;
        std::thread::spawn(move || announce_when_serving(port));
    }
    let status = loop {
        if let Some(status) = qemu
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .context("waiting for QEMU")?
        {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// The disk image `cargo xtask run` (and `gdb`) attaches: `disk`, or by default
/// target/atoll/<board>/disk.img, created if missing; none with `no_disk`.
fn run_disk(
    board: &atoll_boards::Board,
    disk: Option<PathBuf>,
    no_disk: bool,
) -> Result<Option<PathBuf>> {
    if no_disk {
        return Ok(None);
    }
    let disk = disk.unwrap_or_else(|| {
        build::workspace_root()
            .join("target")
            .join("atoll")
            .join(board.name)
            .join("disk.img")
    });
    if atoll_runner::prepare_disk(board, &disk)
        .with_context(|| format!("the disk image {}", disk.display()))?
    {
        eprintln!(
            "xtask: created the disk image {} ({} MiB of zeros)",
            disk.display(),
            atoll_runner::DISK_BYTES >> 20
        );
    }
    Ok(Some(disk))
}

/// Prints where the guest's HTTP service is once it answers a request on `port`.
fn announce_when_serving(port: u16) {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut stream| {
                stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
                stream.write_all(
                    b"GET /status HTTP/1.1\r\nHost: atoll\r\nConnection: close\r\n\r\n",
                )?;
                let mut head = [0u8; 12];
                stream.read_exact(&mut head)?;
                Ok(head.starts_with(b"HTTP/1.1 "))
            })
            .unwrap_or(false);
        if answered {
            eprintln!("Atoll is serving http://127.0.0.1:{port}/");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
