//! One way to boot an image in a test: [`Boot`] names the image and how QEMU runs it, and
//! [`Boot::run`] boots it with the tests' timeout and saves the serial log.

use std::path::PathBuf;
use std::time::Duration;

use atoll_boards::QemuMachine;
use atoll_runner::{Load, Outcome, QemuOptions, run, target_dir};

use crate::variants::Variant;

/// How long one boot may take before QEMU is stopped.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Where `cargo xtask test` built the variants' images (`ATOLL_E2E_IMAGES`).
pub fn images() -> PathBuf {
    std::env::var_os("ATOLL_E2E_IMAGES").map(PathBuf::from).unwrap_or_else(|| {
        panic!("ATOLL_E2E_IMAGES is not set: run these tests through `cargo xtask test`, which builds the images first")
    })
}

/// The image of `variant` built for `board`.
pub fn image_of(board: &str, variant: &Variant) -> PathBuf {
    images().join(board).join(variant.name).join("atoll.img")
}

/// One boot of one image on one board.
#[derive(Clone, Debug)]
pub struct Boot {
    board: String,
    label: String,
    image: PathBuf,
    options: QemuOptions,
    timeout: Duration,
}

impl Boot {
    /// Boots the image `cargo xtask test` built of `variant` for `board`; the log is saved
    /// under the variant's name.
    pub fn variant(board: &str, variant: &Variant) -> Self {
        Boot::image(board, variant.name, image_of(board, variant))
    }

    /// Boots `image`; the serial log is saved as `target/e2e-logs/<board>-<label>.log`.
    /// Semihosting is on, so that a test build can exit with its status.
    pub fn image(board: &str, label: &str, image: PathBuf) -> Self {
        Boot {
            board: board.into(),
            label: label.into(),
            image,
            options: QemuOptions {
                semihosting: true,
                ..QemuOptions::default()
            },
            timeout: TIMEOUT,
        }
    }

    /// Stops QEMU once the output shows every one of `texts` (for images that run on).
    pub fn until(mut self, texts: &[&str]) -> Self {
        self.options.until = texts.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Runs QEMU under `-icount shift=0,sleep=off`: virtual time is the guest's instruction
    /// count (one nanosecond each), so a measurement in counter ticks does not depend on
    /// how busy the host is.
    pub fn icount(mut self) -> Self {
        self.options.icount = true;
        self
    }

    /// Allows the boot `timeout` instead of [`TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Types `input` into the serial port.
    pub fn typing(mut self, input: &[u8]) -> Self {
        self.options.input = input.to_vec();
        self
    }

    /// Passes `args` on to QEMU.
    pub fn qemu_args(mut self, args: &[&str]) -> Self {
        self.options.extra = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Attaches the raw image `disk` as the board's `disk0`.
    pub fn disk(mut self, disk: &std::path::Path) -> Self {
        self.options.disk = Some(disk.to_path_buf());
        self
    }

    /// Loads the image with `-device loader` at `addr` and starts core 0 there, instead of
    /// `-kernel`.
    pub fn loaded_at(mut self, addr: u64) -> Self {
        self.options.load = Load::Device { addr };
        self
    }

    /// Boots U-Boot as the firmware with the image as its disk (`Load::UBootDisk`).
    pub fn from_u_boot_disk(mut self) -> Self {
        self.options.load = Load::UBootDisk;
        self
    }

    /// Emulates `machine` instead of the board's QEMU machine.
    pub fn machine(mut self, machine: QemuMachine) -> Self {
        self.options.machine = Some(machine);
        self
    }

    /// Boots with Microkit's QEMU command line for `qemu_virt_aarch64`, exactly
    /// ([`QemuOptions::microkit_virt`]): no semihosting, so a test build's refusal waits
    /// instead of exiting with a status.
    pub fn microkit_virt(mut self) -> Self {
        self.options = QemuOptions {
            until: self.options.until,
            stop_on: self.options.stop_on,
            ..QemuOptions::microkit_virt()
        };
        self
    }

    /// Stops QEMU as soon as the output shows any of `texts` (a failure).
    pub fn stop_on(mut self, texts: &[&str]) -> Self {
        self.options.stop_on = texts.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Boots it and waits for QEMU to exit, for every `until` text, or for its timeout.
    pub fn run(self) -> Outcome {
        let board = atoll_boards::by_name(&self.board)
            .unwrap_or_else(|| panic!("no board named {}", self.board));
        let log = target_dir()
            .join("e2e-logs")
            .join(format!("{}-{}.log", self.board, self.label));
        let outcome = run(board, &self.image, &self.options, self.timeout, &log)
            .unwrap_or_else(|e| panic!("QEMU does not run: {e}"));
        eprintln!(
            "{}/{}: {:?} in {:.2?}, serial log {}",
            self.board,
            self.label,
            outcome.status,
            outcome.elapsed,
            outcome.log_path.display()
        );
        outcome
    }
}

/// Fails with the log unless every line of `lines` appears in `outcome`'s serial output,
/// each after the one before.
pub fn in_order(outcome: &Outcome, lines: &[&str]) {
    let mut from = 0;
    for line in lines {
        match outcome.serial.get(from..).and_then(|rest| rest.find(line)) {
            Some(at) => from += at + line.len(),
            None => panic!(
                "missing from the log (in this order): {line:?}\nserial log saved at {}\n----\n{}",
                outcome.log_path.display(),
                outcome.serial
            ),
        }
    }
}
