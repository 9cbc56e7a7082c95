//! `cargo xtask inspect`: what every replica of the system `cargo xtask run` is running is
//! doing, read through QEMU's machine protocol from guest memory (no cooperation from the
//! guest, so a replica that has stopped is read as well as one that runs); and
//! `cargo xtask gdb`: the system under QEMU's GDB stub, with its symbols.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::BuildArgs;
use crate::build::workspace_root;

/// The QMP socket `cargo xtask run` opens, beside the image in `dir`.
pub(crate) fn qmp_socket(dir: &Path) -> PathBuf {
    dir.join("qmp.sock")
}

/// The longest path a Unix socket may have (`sun_path`, less its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// The QEMU arguments that open the QMP socket for the image in `dir` (an old socket file
/// is removed first; QEMU creates it anew).
pub(crate) fn qmp_server_args(dir: &Path) -> Result<Vec<String>> {
    let socket = qmp_socket(dir);
    if socket.as_os_str().len() > SOCKET_PATH_MAX {
        anyhow::bail!(
            "the QMP socket's path {} is longer than a Unix socket's {SOCKET_PATH_MAX} bytes: build into a shorter directory",
            socket.display()
        );
    }
    let _ = std::fs::remove_file(&socket);
    Ok(atoll_runner::qmp::server_args(&socket))
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The board `cargo xtask run` runs.
    #[arg(long, default_value = "qemu_virt_aarch64")]
    board: String,
    /// The image's directory (default target/atoll/<board>/), where its plan report and
    /// QMP socket are.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Print again every second until interrupted.
    #[arg(long)]
    watch: bool,
}

/// Runs `cargo xtask inspect`.
pub(crate) fn run(args: &InspectArgs) -> Result<()> {
    let board = crate::build::board(&args.board)?;
    let dir = args.dir.clone().unwrap_or_else(|| {
        workspace_root()
            .join("target")
            .join("atoll")
            .join(board.name)
    });
    let report = atoll_runner::inspect::plan_report(&dir)
        .map_err(|e| anyhow!("{e} (run `cargo xtask run` first)"))?;
    let mut qmp = atoll_runner::qmp::Qmp::connect(&qmp_socket(&dir), Duration::ZERO)
        .map_err(|e| anyhow!(e))?;
    let scratch = dir.join("inspect.mem");
    loop {
        let snapshot =
            atoll_runner::inspect::snapshot(&report, &mut qmp, &scratch).map_err(|e| anyhow!(e))?;
        if args.json {
            println!("{}", snapshot.to_json());
        } else {
            if args.watch {
                // Clear the terminal and go home.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", snapshot.table());
        }
        if !args.watch {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[derive(Args)]
pub(crate) struct GdbArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// The port of 127.0.0.1 forwarded to the guest's HTTP service (port 80).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// The port of 127.0.0.1 QEMU's GDB stub listens on.
    #[arg(long, default_value_t = 1234)]
    gdb_port: u16,
    /// The disk image (as for `cargo xtask run`).
    #[arg(long)]
    disk: Option<PathBuf>,
    /// Attach no disk.
    #[arg(long, conflicts_with = "disk")]
    no_disk: bool,
    /// Arguments passed through to GDB.
    #[arg(last = true)]
    gdb_args: Vec<String>,
}

/// Runs `cargo xtask gdb`: QEMU held at reset with its stub on `127.0.0.1:<gdb port>` (and
/// QMP on target/atoll/<board>/qmp.sock), its serial output in serial.log beside the
/// image, and GDB in the foreground; QEMU stops when GDB exits.
pub(crate) fn gdb(args: GdbArgs) -> Result<()> {
    let board = crate::build::board(&args.build.board)?;
    crate::setup::rust_targets()?;
    crate::setup::qemu(&[board.qemu.machine])?;
    crate::setup::packages(&[atoll_runner::gdb::GDB])?;
    let built = crate::build::build(&args.build)?;
    let dir = built
        .image
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", built.image.display()))?
        .to_path_buf();
    let report = atoll_runner::inspect::plan_report(&dir).map_err(|e| anyhow!(e))?;
    let script = dir.join("atoll.gdb");
    std::fs::write(
        &script,
        atoll_runner::gdb::script(&report, &dir, args.gdb_port).map_err(|e| anyhow!(e))?,
    )
    .with_context(|| format!("writing {}", script.display()))?;

    let forward = atoll_runner::Forward {
        host: args.http_port,
        guest: 80,
    };
    let mut extra = atoll_runner::gdb::qemu_args(args.gdb_port, true);
    extra.extend(qmp_server_args(&dir)?);
    let options = atoll_runner::QemuOptions {
        extra,
        forward: atoll_runner::nic_args(board, forward).map(|_| forward),
        disk: crate::run_disk(board, args.disk, args.no_disk)?,
        ..atoll_runner::QemuOptions::default()
    };
    let log = dir.join("serial.log");
    let qemu = atoll_runner::spawn(board, &built.image, &options, &log)
        .with_context(|| format!("starting {}", atoll_runner::QEMU))?;
    // The stub listens once QEMU has set it up.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", args.gdb_port)).is_err()
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "xtask: QEMU is held at reset; its serial output goes to {} when it stops",
        log.display()
    );
    let status = std::process::Command::new(atoll_runner::gdb::GDB)
        .arg("-q")
        .arg("-x")
        .arg(&script)
        .args(&args.gdb_args)
        .status()
        .with_context(|| format!("starting {}", atoll_runner::gdb::GDB));
    let outcome = qemu.stop();
    let status = status?;
    if let Ok(outcome) = outcome {
        eprintln!("xtask: serial log {}", outcome.log_path.display());
    }
    if !status.success() {
        anyhow::bail!("{} exited with {status}", atoll_runner::gdb::GDB);
    }
    Ok(())
}
