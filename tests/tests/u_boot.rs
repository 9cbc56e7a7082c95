//! Booting as boards boot: Debian's U-Boot for QEMU (`u-boot-qemu`) as the firmware of
//! QEMU's `virt`, reading a FAT partition on a virtio disk as a board reads its SD card.
//! `cargo xtask test` writes the disks (`ATOLL_U_BOOT_DISKS`) from the files `cargo xtask
//! deploy` makes for the `boot` test image, which powers off once its boot checks pass.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use atoll_boards::QemuMachine;
use atoll_e2e::boot::{Boot, in_order};
use atoll_runner::Outcome;

const BOARD: &str = "qemu_virt_aarch64";

fn disk(name: &str) -> PathBuf {
    std::env::var_os("ATOLL_U_BOOT_DISKS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("ATOLL_U_BOOT_DISKS is not set: run these tests through `cargo xtask test`, which writes the disks first")
        })
        .join(name)
}

/// Boots U-Boot from `disk` (on `machine`, default the board's) until the image powers off.
fn u_boot(label: &str, disk_name: &str, machine: Option<QemuMachine>) -> Outcome {
    let boot = Boot::image(BOARD, label, disk(disk_name)).from_u_boot_disk();
    match machine {
        Some(machine) => boot.machine(machine),
        None => boot,
    }
    .run()
}

/// `lines` appear in this order (U-Boot's, then U-Boot's "Starting kernel ...", then the
/// loader's first line), the image reached every PD and powered off by itself.
fn booted(outcome: &Outcome, lines: &[&str]) {
    let every = [
        "LDR|INFO: image ok:",
        "K0|INFO: ping ring complete",
        "K0|INFO: every PD started and waiting for events",
        "K0|INFO: boot checks done; powering off",
    ];
    let all: Vec<&str> = lines.iter().chain(every.iter()).copied().collect();
    in_order(outcome, &all);
    assert!(
        outcome.exit_code() == Some(0) && !outcome.serial.contains("|ERROR"),
        "the image did not power off cleanly\nserial log saved at {}\n----\n{}",
        outcome.log_path.display(),
        outcome.serial
    );
}

/// The deployed `boot.scr`, found by U-Boot's standard boot, loads `atoll.img` to
/// `kernel_addr_r` and starts it with `booti`; U-Boot runs at EL1 and so does the loader.
#[test]
fn qemu_virt_aarch64_u_boot_runs_the_deployed_boot_script_at_el1() {
    let outcome = u_boot("u-boot-el1", "deploy.img", None);
    booted(
        &outcome,
        &[
            "Found U-Boot script /boot.scr",
            "Atoll: loading atoll.img from virtio 0:1 to 0x40400000",
            "Starting kernel ...",
            "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL1)",
        ],
    );
}

/// The same with the machine's EL2: U-Boot starts the image at EL2.
#[test]
fn qemu_virt_aarch64_u_boot_runs_the_deployed_boot_script_at_el2() {
    let machine = QemuMachine {
        machine: "virt,gic-version=3,virtualization=on",
        ..atoll_boards::QEMU_VIRT_AARCH64.qemu
    };
    let outcome = u_boot("u-boot-el2", "deploy.img", Some(machine));
    booted(
        &outcome,
        &[
            "Found U-Boot script /boot.scr",
            "Starting kernel ...",
            "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL2)",
        ],
    );
}

/// `booti` from other addresses than `kernel_addr_r` (the deploy disk's): the image runs
/// from wherever U-Boot puts it.
#[test]
fn qemu_virt_aarch64_u_boot_booti_starts_the_image_from_other_addresses() {
    for address in ["0x44000000", "0x50210000"] {
        let outcome = u_boot(
            &format!("u-boot-booti-{address}"),
            &format!("booti-{address}.img"),
            None,
        );
        booted(
            &outcome,
            &[&format!(
                "Atoll: loading atoll.img from virtio 0:1 to {address}"
            )],
        );
    }
}

/// `bootm` of the FIT image `cargo xtask deploy` writes: U-Boot checks its hash, copies the
/// image to its load address and starts it.
#[test]
fn qemu_virt_aarch64_u_boot_bootm_starts_the_fit_image() {
    let outcome = u_boot("u-boot-fit", "fit.img", None);
    booted(
        &outcome,
        &[
            "Atoll: loading atoll.itb",
            "Trying 'kernel-1' kernel subimage",
            "Verifying Hash Integrity ... crc32+ OK",
            "Starting kernel ...",
            "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL1)",
        ],
    );
}
