//! `cargo xtask gdb`'s machinery on every board: the default system under QEMU's GDB stub,
//! driven by `gdb-multiarch` in batch mode with the script the command writes
//! (`atoll_runner::gdb`).
//!
//! GDB attaches to a running system, stops at a breakpoint in the kernel on the real-time
//! job's core (where the job's timer access traps), shows the kernel's frames by name, and
//! `atoll-pd` finds the job's PD by the core's address space. A second run starts held at
//! reset, as the command does, and continues to the kernel's first interrupt.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use atoll_e2e::boot::image_of;
use atoll_e2e::service::{boot_with, free_port, fresh_disk};
use atoll_e2e::variants::RT;

/// How long GDB may take to reach its breakpoints.
const GDB_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `gdb-multiarch` in batch mode on the script for `RT`'s image of `board` and the
/// stub on `127.0.0.1:port`, with `commands` after it; returns what it printed.
fn gdb(board: &str, port: u16, label: &str, commands: &[&str]) -> String {
    let dir: PathBuf = image_of(board, &RT)
        .parent()
        .expect("the image's directory")
        .to_path_buf();
    let report = atoll_runner::inspect::plan_report(&dir).unwrap_or_else(|e| panic!("{e}"));
    let logs = atoll_runner::target_dir().join("e2e-logs");
    std::fs::create_dir_all(&logs).expect("the logs' directory");
    let script_path = logs.join(format!("{board}-{label}.gdb"));
    std::fs::write(
        &script_path,
        atoll_runner::gdb::script(&report, &dir, port).expect("the script"),
    )
    .expect("writing the script");
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "QEMU's GDB stub does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = Command::new("timeout");
    cmd.arg(GDB_TIMEOUT.as_secs().to_string())
        .arg(atoll_runner::gdb::GDB)
        .args(["-q", "-nx", "-batch", "-x"])
        .arg(&script_path);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let out = cmd.output().expect("gdb-multiarch runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gdb failed ({}):\n{text}", out.status);
    text
}

fn debug(board: &str) {
    // Attached to the running system, on the job's core (GDB's thread 2 is core 1).
    let port = free_port();
    let disk = fresh_disk(board, "gdb");
    let mut qemu = boot_with(board, &RT, "gdb", free_port(), Some(&disk), |o| {
        o.extra.extend(atoll_runner::gdb::qemu_args(port, false));
    });
    let until = Instant::now() + Duration::from_secs(120);
    while !qemu.serial().contains("rt: running at EL0") {
        assert!(qemu.is_running(), "QEMU stopped:\n{}", qemu.serial());
        assert!(
            Instant::now() < until,
            "the job never started:\n{}",
            qemu.serial()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = gdb(
        board,
        port,
        "gdb",
        &[
            "break atoll_kernel::el0::emulate_pd_timer thread 2",
            "continue",
            "bt 3",
            "atoll-pd",
            "info symbol $pc",
            "kill",
        ],
    );
    let _ = qemu.stop();
    assert!(out.contains("Breakpoint 1"), "no breakpoint:\n{out}");
    assert!(
        out.contains("atoll_kernel::el0::emulate_pd_timer"),
        "the kernel's frames by name:\n{out}"
    );
    assert!(
        out.contains("atoll-pd: rt (replica rt)"),
        "the job's PD:\n{out}"
    );

    // Held at reset, as `cargo xtask gdb` starts it, to the kernel's first interrupt.
    let port = free_port();
    let disk = fresh_disk(board, "gdb-reset");
    let qemu = boot_with(board, &RT, "gdb-reset", free_port(), Some(&disk), |o| {
        o.extra.extend(atoll_runner::gdb::qemu_args(port, true));
    });
    let out = gdb(
        board,
        port,
        "gdb-reset",
        &[
            "break atoll_kernel::irq::handle_irq",
            "continue",
            "bt 2",
            "kill",
        ],
    );
    let _ = qemu.stop();
    assert!(
        out.contains("Breakpoint 1, ") && out.contains("atoll_kernel::irq::handle_irq"),
        "no stop in the kernel:\n{out}"
    );
}

#[test]
fn qemu_virt_aarch64_gdb_stops_in_the_kernel_and_finds_the_pd() {
    debug("qemu_virt_aarch64");
}

#[test]
fn zcu102_gdb_stops_in_the_kernel_and_finds_the_pd() {
    debug("zcu102");
}

#[test]
fn imx8mp_evk_gdb_stops_in_the_kernel_and_finds_the_pd() {
    debug("imx8mp_evk");
}
