//! The QEMU runner: boots Atoll images for `cargo xtask run`, `cargo xtask bench`,
//! `cargo xtask fuzz-kernel` and the end-to-end tests.
//!
//! [`qemu_args`] builds the command line for a board; [`run`] boots an image with a
//! timeout, collects the serial output and saves it under `target/` so a failing run can
//! point at it. An image boots as QEMU's `-kernel` (the default) or, as Microkit's manual
//! boots its images, with `-device loader` at any address ([`Load`], and
//! [`QemuOptions::microkit_virt`] for Microkit's whole command line on `virt`).
//!
//! [`qmp`] reads a running QEMU's guest memory through its machine protocol, and
//! [`inspect`] decodes from it what every replica is doing (`cargo xtask inspect`); [`gdb`]
//! starts a machine halted for `gdb-multiarch` with Atoll's symbols (`cargo xtask gdb`);
//! [`coreclock`] loads the bench's QEMU plugin and reads its records.
#![forbid(unsafe_code)]

pub mod coreclock;
pub mod gdb;
pub mod inspect;
pub mod qmp;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use atoll_boards::{Board, QemuMachine};

/// The QEMU binary for every board.
pub const QEMU: &str = "qemu-system-aarch64";

/// How QEMU puts the image in memory and starts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Load {
    /// `-kernel IMAGE`: QEMU reads the arm64 `Image` header and loads the file at RAM base +
    /// `text_offset`, where the loader is linked.
    #[default]
    Kernel,
    /// `-device loader,file=IMAGE,addr=ADDR,cpu-num=0`: the file's bytes at `ADDR`, and core
    /// 0 started there with the MMU off, at the machine's highest exception level; the
    /// other cores wait for PSCI `CPU_ON`. The loader copies itself to its link address
    /// first.
    Device {
        /// Where the file is loaded and core 0 starts.
        addr: u64,
    },
    /// U-Boot as the firmware (`-bios`, Debian's `u-boot-qemu` build for `virt`), and the
    /// image is a disk on a virtio block device: U-Boot's standard boot finds a `boot.scr`
    /// on it and runs it, as on a board booting from an SD card. The disk is read-only, so
    /// that several boots may share it (QEMU locks a writable image).
    UBootDisk,
}

/// Debian's U-Boot for QEMU's AArch64 `virt` machine (package `u-boot-qemu`).
pub const U_BOOT_QEMU_ARM64: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Microkit's QEMU machine for `qemu_virt_aarch64` (its manual's command line): `virt` with
/// EL2 and QEMU's default interrupt controller, a GICv2, and 2 GiB of RAM.
pub const MICROKIT_QEMU_VIRT: QemuMachine = QemuMachine {
    machine: "virt,virtualization=on",
    cpu: Some("cortex-a53"),
    memory: "size=2G",
    smp: Some(4),
    extra: &[],
    console_serial: 0,
};

/// Where Microkit's manual loads the image on `qemu_virt_aarch64`.
pub const MICROKIT_QEMU_VIRT_ADDR: u64 = 0x7000_0000;

/// Options for one QEMU run.
#[derive(Clone, Debug, Default)]
pub struct QemuOptions {
    /// Enable semihosting (test builds exit through it on loader errors).
    pub semihosting: bool,
    /// Run with `-icount shift=0,sleep=off`: one instruction per virtual nanosecond.
    pub icount: bool,
    /// Serial on stdio with the monitor multiplexed (interactive runs).
    pub interactive: bool,
    /// Further arguments passed through.
    pub extra: Vec<String>,
    /// Stop QEMU as soon as the serial output's complete lines contain every one of these
    /// texts (for images that run on); empty: wait for QEMU to exit or the timeout.
    pub until: Vec<String>,
    /// Stop QEMU as soon as the serial output's complete lines contain any of these texts
    /// (a failure that makes waiting any longer pointless).
    pub stop_on: Vec<String>,
    /// Bytes typed into the serial port: written to QEMU's standard input at the start
    /// (QEMU holds them until the UART has room), which stays open until QEMU stops.
    pub input: Vec<u8>,
    /// How the image is loaded.
    pub load: Load,
    /// The machine to emulate instead of the board's (`-machine`, `-cpu`, `-smp`, `-m` and
    /// the further options).
    pub machine: Option<QemuMachine>,
    /// The board's network interface on QEMU's user networking, with a host port forwarded
    /// to the guest ([`nic_args`]).
    pub forward: Option<Forward>,
    /// A raw disk image attached as the board's `disk0` ([`disk_args`]), read and written
    /// in place.
    pub disk: Option<PathBuf>,
}

/// The QEMU arguments that bound every core's turn under `-icount` to `turn_us` µs of
/// virtual time. QEMU runs the cores one after another, giving each at most a share of the
/// time to the next event on its clocks; a `filter-buffer` on the network back-end `net0`
/// arms a timer every `interval` µs (it only holds the back-end's outgoing packets that
/// long, and touches no guest state), so every turn ends at least that often. Without it a
/// core whose interrupt falls due waits for the others' turns, up to milliseconds. With
/// `has_nic` false (no `net0` from [`nic_args`]), an unconnected back-end is added.
#[must_use]
pub fn bounded_turns(has_nic: bool, turn_us: u32) -> Vec<String> {
    let mut args = Vec::new();
    if !has_nic {
        args.extend(["-netdev".into(), "user,id=net0".into()]);
    }
    args.extend([
        "-object".into(),
        format!("filter-buffer,id=turns,netdev=net0,queue=tx,interval={turn_us}"),
    ]);
    args
}

/// A TCP port of the host's loopback forwarded to a port of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The port on `127.0.0.1`.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

/// The guest's address on QEMU's user network (its DHCP server hands out this one first).
pub const GUEST_ADDRESS: &str = "10.0.2.15";

/// The QEMU options that give `board` its network interface on QEMU's user networking
/// (`-netdev user`: no privileges, no host configuration; the guest reaches nothing but
/// QEMU's own DHCP and DNS), with `forward` from the host's loopback into the guest.
///
/// On `virt` the interface is a virtio-net device on the virtio-mmio transport the board's
/// `net0` names (the last one, at 0x0a00_3e00), so that it never shares a page of registers
/// with the disk. On `zcu102` it is GEM3, the board's Ethernet port: the machine hands the
/// NICs of the command line to GEM0 to GEM3 in order, so GEM3 gets the fourth and the other
/// three share a hub of their own that leads nowhere (QEMU warns so, once).
/// On `imx8mp-evk` it is ENET1, which the machine always has and wires to
/// the first NIC given. The other boards' interfaces are not supported yet: `None`.
pub fn nic_args(board: &Board, forward: Forward) -> Option<Vec<String>> {
    let netdev = format!(
        "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:{}",
        forward.host, forward.guest
    );
    match board.name {
        "qemu_virt_aarch64" => Some(vec![
            "-netdev".into(),
            netdev,
            "-device".into(),
            format!("virtio-net-device,netdev=net0,bus={VIRT_NET_BUS}"),
        ]),
        // `xlnx-zcu102` creates its four GEMs itself and hands each, GEM0 first, the next NIC
        // of the command line (`qemu_configure_nic_device`); the board's port is GEM3. QEMU
        // takes all `-nic`s before any `-net nic`, so the four are `-net nic`, in order. The
        // first three name no netdev: QEMU puts them on hub 0 and nothing else, so GEM0-2
        // lead nowhere. QEMU warns once ("hub 0 is not connected to host network"), and no
        // form avoids a warning: a NIC without a peer is warned about one by one, and no
        // NIC entry comes without a netdev or a hub port, so only a real backend (another
        // `user` network) would silence it.
        "zcu102" => {
            let unused = "nic,model=cadence_gem".to_string();
            Some(vec![
                "-netdev".into(),
                netdev,
                "-net".into(),
                unused.clone(),
                "-net".into(),
                unused.clone(),
                "-net".into(),
                unused,
                "-net".into(),
                "nic,netdev=net0,model=cadence_gem".into(),
            ])
        }
        // `fsl-imx8mp` creates its one ENET (ENET1, `imx.enet`) itself and hands it the
        // first NIC of the command line (`qemu_configure_nic_device`), so it takes a
        // `-net nic` bound to the user netdev rather than a `-device`; `model=imx.enet`
        // names the only model the machine accepts.
        "imx8mp_evk" => Some(vec![
            "-netdev".into(),
            netdev,
            "-net".into(),
            "nic,netdev=net0,model=imx.enet".into(),
        ]),
        _ => None,
    }
}

/// The QEMU options that attach the raw image `disk` as `board`'s `disk0`, the disk the
/// storage replica keeps its data on; `None` for a board without one.
///
/// On `virt` it is a virtio-blk device on the transport `blk0` names (`virtio-mmio-bus.23`,
/// a page of registers apart from the NIC's; virtio 1.0, which [`qemu_args`] asks for once
/// for the NIC and the disk). On `zcu102` it is the SD
/// card in SD1, the board's card slot (`xlnx-zcu102` gives SD controller `n` the drive
/// `if=sd,index=n`); on `imx8mp-evk` the card in uSDHC2, the EVK's slot (`fsl-imx8mp`
/// gives uSDHC `n` the drive `if=sd,bus=n`). QEMU's SD cards take only images whose size
/// is a power of two. Every form writes through to the file as the guest writes (QEMU's
/// default `cache=writeback` keeps written data in the host's page cache, which a killed
/// QEMU does not lose), and a guest flush reaches the host's disk (`fdatasync`).
pub fn disk_args(board: &Board, disk: &Path) -> Option<Vec<String>> {
    let file = disk.display();
    match board.name {
        "qemu_virt_aarch64" => Some(vec![
            "-drive".into(),
            format!("if=none,id=disk0,file={file},format=raw"),
            "-device".into(),
            format!("virtio-blk-device,drive=disk0,bus={VIRT_DISK_BUS}"),
        ]),
        "zcu102" => Some(vec![
            "-drive".into(),
            format!("if=sd,index=1,file={file},format=raw"),
        ]),
        "imx8mp_evk" => Some(vec![
            "-drive".into(),
            format!("if=sd,bus=1,file={file},format=raw"),
        ]),
        _ => None,
    }
}

/// Bytes of a disk image [`prepare_disk`] creates: 64 MiB.
pub const DISK_BYTES: u64 = 64 * 1024 * 1024;

/// Makes sure the disk image at `path` can be `board`'s `disk0`: creates it (zeros,
/// [`DISK_BYTES`], with its directory) if it does not exist, and checks an existing one is
/// a whole number of 512-byte blocks and, on the boards with an SD card, a power of two in
/// size (QEMU refuses other SD card images). Says whether it created it.
pub fn prepare_disk(board: &Board, path: &Path) -> std::io::Result<bool> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let created = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(invalid(format!("{} is not a file", path.display())));
        }
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::File::create_new(path)?.set_len(DISK_BYTES)?;
            true
        }
        Err(e) => return Err(e),
    };
    let size = std::fs::metadata(path)?.len();
    let sd = board.device("disk0").is_some_and(|d| {
        matches!(
            d.kind,
            atoll_boards::DeviceKind::Sdhci | atoll_boards::DeviceKind::ImxUsdhc
        )
    });
    if size == 0 || !size.is_multiple_of(512) {
        return Err(invalid(format!(
            "{}: {size} bytes is not a whole number of 512-byte blocks",
            path.display()
        )));
    }
    if sd && !size.is_power_of_two() {
        return Err(invalid(format!(
            "{}: {size} bytes: {}'s disk is an SD card, and QEMU takes only SD card images \
             whose size is a power of two (truncate -s 64M makes one)",
            path.display(),
            board.name
        )));
    }
    Ok(created)
}

/// QEMU's name of the virtio-mmio transport at 0x0a00_2e00 on `virt`, the board's `blk0`.
const VIRT_DISK_BUS: &str = "virtio-mmio-bus.23";

/// QEMU's name of the virtio-mmio transport at 0x0a00_3e00 on `virt` (QEMU numbers the
/// transports' buses from the lowest address).
const VIRT_NET_BUS: &str = "virtio-mmio-bus.31";

impl QemuOptions {
    /// Microkit's QEMU command line for `qemu_virt_aarch64`, as its manual gives it:
    ///
    /// ```text
    /// qemu-system-aarch64 -machine virt,virtualization=on -cpu cortex-a53 -serial mon:stdio \
    ///   -device loader,file=IMAGE,addr=0x70000000,cpu-num=0 -m size=2G -nographic -smp 4
    /// ```
    ///
    /// ([`qemu_args`] adds `-no-reboot`, which changes nothing unless the machine resets.)
    pub fn microkit_virt() -> Self {
        QemuOptions {
            interactive: true,
            load: Load::Device {
                addr: MICROKIT_QEMU_VIRT_ADDR,
            },
            machine: Some(MICROKIT_QEMU_VIRT),
            ..QemuOptions::default()
        }
    }
}

/// QEMU arguments to boot `image` on `board`.
pub fn qemu_args(board: &Board, image: &Path, options: &QemuOptions) -> Vec<String> {
    let q = options.machine.as_ref().unwrap_or(&board.qemu);
    let mut args: Vec<String> = vec!["-machine".into(), q.machine.into()];
    if let Some(cpu) = q.cpu {
        args.extend(["-cpu".into(), cpu.into()]);
    }
    if let Some(smp) = q.smp {
        args.extend(["-smp".into(), smp.to_string()]);
    }
    args.extend(["-m".into(), q.memory.into()]);
    args.extend(q.extra.iter().map(|s| s.to_string()));
    // The machine's serial ports before the console's go nowhere.
    for _ in 0..q.console_serial {
        args.extend(["-serial".into(), "null".into()]);
    }
    if options.interactive {
        args.extend(["-nographic".into(), "-serial".into(), "mon:stdio".into()]);
    } else {
        args.extend([
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-serial".into(),
            "stdio".into(),
        ]);
    }
    args.push("-no-reboot".into());
    match options.load {
        Load::Kernel => args.extend(["-kernel".into(), image.display().to_string()]),
        Load::Device { addr } => args.extend([
            "-device".into(),
            format!("loader,file={},addr={addr:#x},cpu-num=0", image.display()),
        ]),
        Load::UBootDisk => args.extend([
            "-bios".into(),
            U_BOOT_QEMU_ARM64.into(),
            "-drive".into(),
            format!(
                "if=none,file={},format=raw,readonly=on,id=boot",
                image.display()
            ),
            "-device".into(),
            "virtio-blk-device,drive=boot".into(),
        ]),
    }
    if options.semihosting {
        args.extend([
            "-semihosting-config".into(),
            "enable=on,target=native".into(),
        ]);
    }
    if options.icount {
        args.extend(["-icount".into(), "shift=0,sleep=off".into()]);
    }
    let nic = options.forward.and_then(|forward| nic_args(board, forward));
    let disk = options
        .disk
        .as_ref()
        .and_then(|disk| disk_args(board, disk));
    if board.name == "qemu_virt_aarch64" && (nic.is_some() || disk.is_some()) {
        // Virtio 1.0 over MMIO, not QEMU's default legacy interface for `virt`, for the
        // NIC and the disk alike.
        args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
    }
    args.extend(nic.into_iter().flatten());
    args.extend(disk.into_iter().flatten());
    args.extend(options.extra.iter().cloned());
    args
}

/// What one boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` if it was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// Everything the guest printed on its serial port (and QEMU on stderr, appended).
    pub serial: String,
    /// Where the serial log was saved.
    pub log_path: PathBuf,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Wall time from starting QEMU until it first printed something (to within the 5 ms
    /// the runner polls at).
    pub first_output: Option<Duration>,
    /// Wall time from starting QEMU until every `until` line had appeared (to within 5 ms).
    pub until_seen: Option<Duration>,
}

impl Outcome {
    /// QEMU's exit code, if it exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Boots `image` on `board`, waiting at most `timeout`; saves the serial log to `log_path`.
pub fn run(
    board: &Board,
    image: &Path,
    options: &QemuOptions,
    timeout: Duration,
    log_path: &Path,
) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let stdin = if options.input.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let child = start_qemu(board, image, options, stdin)?;
    let watched = watch(child, options, timeout, start)?;
    let Watched {
        status,
        mut serial,
        errors,
        first_output,
        until_seen,
    } = watched;
    if !errors.trim().is_empty() {
        serial.push_str("\n--- qemu stderr ---\n");
        serial.push_str(&errors);
    }
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(log_path, &serial)?;
    Ok(Outcome {
        status,
        serial,
        log_path: log_path.to_path_buf(),
        elapsed: start.elapsed(),
        first_output,
        until_seen,
    })
}

/// Starts QEMU on `image` with its output piped for [`collect`].
fn start_qemu(
    board: &Board,
    image: &Path,
    options: &QemuOptions,
    stdin: Stdio,
) -> std::io::Result<std::process::Child> {
    Command::new(QEMU)
        .args(qemu_args(board, image, options))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {QEMU}: {e} (run `cargo xtask test`, which installs it)"),
            )
        })
}

/// A QEMU started by [`spawn`], for tests that talk to the guest while it runs.
pub struct Running {
    child: std::process::Child,
    stdout: Option<Collected>,
    stderr: Option<Collected>,
    start: Instant,
    log_path: PathBuf,
}

/// Starts `image` on `board` and returns at once; [`Running::stop`] ends it and saves its
/// serial log at `log_path`. Dropping a [`Running`] also stops QEMU.
pub fn spawn(
    board: &Board,
    image: &Path,
    options: &QemuOptions,
    log_path: &Path,
) -> std::io::Result<Running> {
    let mut child = start_qemu(board, image, options, Stdio::null())?;
    Ok(Running {
        stdout: child.stdout.take().map(|s| collect(Box::new(s))),
        stderr: child.stderr.take().map(|s| collect(Box::new(s))),
        child,
        start: Instant::now(),
        log_path: log_path.to_path_buf(),
    })
}

impl Running {
    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What QEMU has printed on the serial port so far (complete or not).
    pub fn serial(&self) -> String {
        self.stdout
            .as_ref()
            .map(|(buffer, _)| {
                String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|e| e.into_inner()))
                    .replace('\r', "")
            })
            .unwrap_or_default()
    }

    /// Stops QEMU (if it still runs), saves the serial log and returns what it printed.
    pub fn stop(mut self) -> std::io::Result<Outcome> {
        let status = match self.child.try_wait()? {
            Some(status) => Some(status),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                None
            }
        };
        let mut serial = finish(self.stdout.take());
        let errors = finish(self.stderr.take());
        if !errors.trim().is_empty() {
            serial.push_str("\n--- qemu stderr ---\n");
            serial.push_str(&errors);
        }
        if let Some(dir) = self.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.log_path, &serial)?;
        Ok(Outcome {
            status,
            serial,
            log_path: self.log_path.clone(),
            elapsed: self.start.elapsed(),
            first_output: None,
            until_seen: None,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What [`watch`] saw of a running QEMU (or any child that prints the same way).
struct Watched {
    status: Option<ExitStatus>,
    serial: String,
    errors: String,
    first_output: Option<Duration>,
    until_seen: Option<Duration>,
}

/// Feeds `options.input` to `child`, watches its output until every `options.until` line
/// has appeared, a `stop_on` line appears, it exits or `timeout` passes (then it is
/// stopped), and returns what it printed, from `start`.
fn watch(
    mut child: std::process::Child,
    options: &QemuOptions,
    timeout: Duration,
    start: Instant,
) -> std::io::Result<Watched> {
    // Kept until QEMU has stopped: closing it would be an end of input on the serial port.
    let mut stdin = child.stdin.take();
    if let Some(input) = stdin.as_mut() {
        input.write_all(&options.input)?;
        input.flush()?;
    }
    let stdout = child.stdout.take().map(|s| collect(Box::new(s)));
    let stderr = child.stderr.take().map(|s| collect(Box::new(s)));
    let (mut first_output, mut until_seen) = (None, None);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let now = start.elapsed();
        // Only whole lines count: a line still being printed could match a prefix of an
        // awaited text, and QEMU would be stopped before the rest of it arrives.
        let (printed, all_seen, failed) =
            stdout.as_ref().map_or((false, false, false), |(o, _)| {
                let out = o.lock().unwrap_or_else(|e| e.into_inner());
                let whole = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let lines = String::from_utf8_lossy(&out[..whole]);
                let all =
                    !options.until.is_empty() && options.until.iter().all(|u| lines.contains(u));
                let failed = options.stop_on.iter().any(|s| lines.contains(s));
                (!out.is_empty(), all, failed)
            });
        if first_output.is_none() && printed {
            first_output = Some(now);
        }
        if now > timeout || all_seen || failed {
            until_seen = all_seen.then_some(now);
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    drop(stdin);
    // QEMU has exited, so its pipes are closed: the readers finish with everything it wrote.
    let serial = finish(stdout);
    // QEMU may exit (a test build powers off) between two polls, with the awaited lines
    // printed just before: they count, seen when it exited.
    if until_seen.is_none()
        && status.is_some()
        && !options.until.is_empty()
        && options.until.iter().all(|u| serial.contains(u.as_str()))
    {
        until_seen = Some(start.elapsed());
    }
    let errors = finish(stderr);
    Ok(Watched {
        status,
        serial,
        errors,
        first_output,
        until_seen,
    })
}

/// A stream being read on a thread into a buffer the caller can watch grow.
type Collected = (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>);

/// Everything a collected stream held once it ended (its writer has exited), as text.
fn finish(stream: Option<Collected>) -> String {
    stream
        .map(|(buffer, reader)| {
            let _ = reader.join();
            String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|e| e.into_inner()))
                .replace('\r', "")
        })
        .unwrap_or_default()
}

/// Reads a stream on a thread into a shared buffer, so the caller can watch it grow.
fn collect(mut stream: Box<dyn Read + Send>) -> Collected {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let reader = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buffer, reader)
}

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new(".."))
                .join("target")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &QemuOptions) -> Vec<String> {
        let board = atoll_boards::by_name("qemu_virt_aarch64").expect("the virt board");
        qemu_args(board, Path::new("atoll.img"), options)
    }

    /// The pair `flag value` in `args`.
    fn has(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    /// U-Boot boots from the image as a virtio disk: no `-kernel`, no loader device.
    #[test]
    fn a_u_boot_disk_is_a_virtio_drive_under_u_boot_as_firmware() {
        let a = args(&QemuOptions {
            load: Load::UBootDisk,
            ..QemuOptions::default()
        });
        assert!(has(&a, "-bios", U_BOOT_QEMU_ARM64));
        assert!(has(
            &a,
            "-drive",
            "if=none,file=atoll.img,format=raw,readonly=on,id=boot"
        ));
        assert!(has(&a, "-device", "virtio-blk-device,drive=boot"));
        assert!(!a.iter().any(|x| x == "-kernel"));
    }

    /// Each board's disk goes where its `disk0` is: the virtio transport of `blk0` on
    /// `virt`, the card slot's SD controller on the boards.
    #[test]
    fn a_disk_is_attached_as_each_boards_disk0() {
        let disk = Some(PathBuf::from("disk.img"));
        let a = args(&QemuOptions {
            disk: disk.clone(),
            ..QemuOptions::default()
        });
        assert!(has(
            &a,
            "-drive",
            "if=none,id=disk0,file=disk.img,format=raw"
        ));
        assert!(has(
            &a,
            "-device",
            "virtio-blk-device,drive=disk0,bus=virtio-mmio-bus.23"
        ));
        // The transport `blk0` names: bus n sits at 0x0a00_0000 + 0x200 n.
        let blk0 = atoll_boards::by_name("qemu_virt_aarch64")
            .and_then(|b| b.device("blk0"))
            .expect("blk0");
        assert_eq!(0x0A00_0000 + 0x200 * 23, blk0.regs.base);
        for (board, drive) in [
            ("zcu102", "if=sd,index=1,file=disk.img,format=raw"),
            ("imx8mp_evk", "if=sd,bus=1,file=disk.img,format=raw"),
        ] {
            let board = atoll_boards::by_name(board).expect("board");
            let a = qemu_args(
                board,
                Path::new("atoll.img"),
                &QemuOptions {
                    disk: disk.clone(),
                    ..QemuOptions::default()
                },
            );
            assert!(has(&a, "-drive", drive), "{a:?}");
        }
        assert!(!args(&QemuOptions::default()).iter().any(|x| x == "-drive"));
        // `virt`'s transports speak virtio 1.0, said once for the NIC and the disk.
        let both = args(&QemuOptions {
            disk: disk.clone(),
            forward: Some(Forward {
                host: 8080,
                guest: 80,
            }),
            ..QemuOptions::default()
        });
        let modern = both
            .windows(2)
            .filter(|w| w[0] == "-global" && w[1] == "virtio-mmio.force-legacy=false")
            .count();
        assert_eq!(modern, 1, "{both:?}");
    }

    /// A missing image is made at 64 MiB of zeros; a bad size is refused, naming it.
    #[test]
    fn a_disk_image_is_created_once_and_bad_sizes_are_refused() {
        let dir = std::env::temp_dir().join(format!("atoll-disk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let virt = atoll_boards::by_name("qemu_virt_aarch64").expect("virt");
        let zcu = atoll_boards::by_name("zcu102").expect("zcu102");
        let path = dir.join("sub").join("disk.img");
        assert!(prepare_disk(virt, &path).expect("created"));
        assert_eq!(std::fs::metadata(&path).expect("made").len(), DISK_BYTES);
        std::fs::write(&path, b"kept").expect("write");
        let odd = prepare_disk(virt, &path).expect_err("4 bytes");
        assert!(odd.to_string().contains("512-byte blocks"), "{odd}");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(3 * 512))
            .expect("resize");
        assert!(!prepare_disk(virt, &path).expect("virtio takes any size"));
        let sd = prepare_disk(zcu, &path).expect_err("not a power of two");
        assert!(sd.to_string().contains("power of two"), "{sd}");
        assert!(prepare_disk(virt, &dir).is_err(), "a directory");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A child that prints the awaited line and exits at once: the line counts even when
    /// the exit is noticed before the output is (the race a test build's power-off made).
    #[test]
    fn lines_printed_just_before_an_exit_are_seen() {
        let options = QemuOptions {
            until: vec!["every PD started".into()],
            ..QemuOptions::default()
        };
        for _ in 0..20 {
            let child = Command::new("sh")
                .args(["-c", "printf 'boot\\nevery PD started at 1 ms\\n'"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sh");
            let watched =
                watch(child, &options, Duration::from_secs(10), Instant::now()).expect("watched");
            // The child exits by itself, or is stopped once the line was seen: which comes
            // first is the race this test is about (a stopped child has no status).
            assert!(watched.status.is_none_or(|s| s.success()));
            assert!(watched.serial.contains("every PD started at 1 ms"));
            assert!(watched.until_seen.is_some(), "the line was printed");
        }
    }

    #[test]
    fn a_board_boots_its_machine_with_the_image_as_kernel() {
        let a = args(&QemuOptions::default());
        assert!(has(&a, "-kernel", "atoll.img"));
        assert!(has(&a, "-serial", "stdio"));
        assert!(has(&a, "-monitor", "none"));
        assert!(a.iter().any(|x| x.starts_with("virt")), "{a:?}");
        assert!(
            !a.iter()
                .any(|x| x == "-icount" || x == "-semihosting-config")
        );
    }

    #[test]
    fn an_image_loads_as_a_kernel_unless_a_device_loader_address_is_given() {
        let a = args(&QemuOptions {
            load: Load::Device { addr: 0x4010_0000 },
            ..QemuOptions::default()
        });
        assert!(has(
            &a,
            "-device",
            "loader,file=atoll.img,addr=0x40100000,cpu-num=0"
        ));
        assert!(!a.iter().any(|x| x == "-kernel"));
        // The board's machine stays.
        assert!(has(&a, "-machine", "virt,gic-version=3"));
        assert!(has(&a, "-m", "1G"));
    }

    /// Microkit's manual's command line, option by option (the order of QEMU's options does
    /// not matter), and nothing else but `-no-reboot`.
    #[test]
    fn microkits_command_line_is_reproduced() {
        let microkit = "-machine virt,virtualization=on -cpu cortex-a53 -serial mon:stdio \
             -device loader,file=atoll.img,addr=0x70000000,cpu-num=0 -m size=2G -nographic \
             -smp 4 -no-reboot";
        let options = |args: Vec<String>| {
            let mut options = Vec::new();
            let mut args = args.into_iter().peekable();
            while let Some(flag) = args.next() {
                let value = args.next_if(|a| !a.starts_with('-'));
                options.push((flag, value));
            }
            options.sort();
            options
        };
        let wanted = options(microkit.split_whitespace().map(String::from).collect());
        assert_eq!(options(args(&QemuOptions::microkit_virt())), wanted);
    }

    /// The i.MX 8M Plus EVK's console is UART2, QEMU's second serial port: the first goes
    /// nowhere and the second is the console, in both kinds of run.
    #[test]
    fn the_console_is_the_boards_serial_port() {
        let board = atoll_boards::by_name("imx8mp_evk").expect("the EVK");
        for interactive in [false, true] {
            let options = QemuOptions {
                interactive,
                ..QemuOptions::default()
            };
            let a = qemu_args(board, Path::new("atoll.img"), &options);
            let serials: Vec<&str> = a
                .windows(2)
                .filter(|w| w[0] == "-serial")
                .map(|w| w[1].as_str())
                .collect();
            let console = if interactive { "mon:stdio" } else { "stdio" };
            assert_eq!(serials, ["null", console], "{a:?}");
        }
        let virt = args(&QemuOptions::default());
        assert_eq!(virt.iter().filter(|x| *x == "-serial").count(), 1);
    }

    #[test]
    fn options_add_their_arguments_and_extra_ones_come_last() {
        let a = args(&QemuOptions {
            semihosting: true,
            icount: true,
            interactive: true,
            extra: vec!["-s".into()],
            ..QemuOptions::default()
        });
        assert!(has(&a, "-icount", "shift=0,sleep=off"));
        assert!(has(&a, "-semihosting-config", "enable=on,target=native"));
        assert!(has(&a, "-serial", "mon:stdio"));
        assert_eq!(a.last().map(String::as_str), Some("-s"));
    }
}
