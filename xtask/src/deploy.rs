//! `cargo xtask deploy`: what goes on a board's boot medium for U-Boot to start Atoll.
//!
//! ```text
//! target/deploy/<board>/
//!   atoll.img     the image (an arm64 Image: `booti` starts it from wherever it is loaded)
//!   boot.cmd      the boot script's source, and boot.scr, the script (mkimage -T script)
//!   atoll.itb     a FIT image holding the image (for `bootm`)
//!   README.txt    how to put them on an SD card or a TFTP server
//! ```
//!
//! `docs/deploy.md` is the long form. The end-to-end tests boot the same files with Debian's
//! U-Boot for QEMU (`u-boot-qemu`) from a FAT disk ([`fat_disk`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use atoll_boards::Board;

use crate::BuildArgs;

/// Debian packages the deployment files are made with (`mkimage`), and the disks the tests
/// boot from (`mkfs.fat`, `mcopy`) with U-Boot for QEMU.
pub const PACKAGES: &[&str] = &["u-boot-tools", "u-boot-qemu", "mtools", "dosfstools"];

/// The boot script: loads `atoll.img` from the partition U-Boot found the script on and
/// starts it with `booti`, handing it U-Boot's device tree. `devtype`, `devnum` and
/// `distro_bootpart` are set by U-Boot's standard boot when it runs a `boot.scr` it found;
/// a TFTP boot sets them by hand (`docs/deploy.md`).
pub fn boot_script(board: &Board, address: &str) -> String {
    format!(
        "# Atoll for {board}: load atoll.img from the partition this script is on and start it.\n\
         echo \"Atoll: loading atoll.img from ${{devtype}} ${{devnum}}:${{distro_bootpart}} to {address}\"\n\
         load ${{devtype}} ${{devnum}}:${{distro_bootpart}} {address} atoll.img\n\
         booti {address} - ${{fdtcontroladdr}}\n",
        board = board.name,
    )
}

/// A boot script that starts the FIT image instead (its one kernel image, `kernel-1`).
///
/// `bootm` copies the image out of the FIT to its load address (the link address), so the
/// FIT is loaded 64 MiB above `kernel_addr_r`: at `kernel_addr_r` itself, a few MiB above
/// the link address on some boards (QEMU `virt`: 0x40400000 against 0x40080000), the copy
/// of an image of more than 3.5 MiB would overwrite the FIT it comes from.
pub fn fit_script(board: &Board) -> String {
    format!(
        "# Atoll for {board}: load the FIT image atoll.itb and start it with bootm.\n\
         setexpr fit_addr ${{kernel_addr_r}} + 0x4000000\n\
         echo \"Atoll: loading atoll.itb from ${{devtype}} ${{devnum}}:${{distro_bootpart}} to ${{fit_addr}}\"\n\
         load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{fit_addr}} atoll.itb\n\
         bootm ${{fit_addr}}:kernel-1 - ${{fdtcontroladdr}}\n",
        board = board.name,
    )
}

/// The README written beside the files.
fn readme(board: &Board) -> String {
    let link = board.ram.base + board.image_offset;
    format!(
        "Atoll for {name} ({description})\n\
         \n\
         atoll.img   the image: an arm64 Image that runs from wherever it is loaded\n\
         boot.scr    U-Boot script (source: boot.cmd): loads atoll.img from the partition it\n\
         \x20           is on to ${{kernel_addr_r}} and starts it with booti\n\
         atoll.itb   the same image in a FIT (load and entry {link:#x}), for bootm, loaded\n\
         \x20           well clear of that address (bootm copies the image there):\n\
         \x20           setexpr fit_addr ${{kernel_addr_r}} + 0x4000000\n\
         \x20           load <dev> <n>:<part> ${{fit_addr}} atoll.itb\n\
         \x20           bootm ${{fit_addr}}:kernel-1 - ${{fdtcontroladdr}}\n\
         \n\
         SD card: copy atoll.img and boot.scr to the FAT boot partition, beside the board's\n\
         firmware (ZCU102: BOOT.BIN with FSBL, PMUFW, TF-A and U-Boot; i.MX 8M Plus EVK:\n\
         flash.bin written at its offset). U-Boot's standard boot finds boot.scr and runs it.\n\
         \n\
         TFTP: put atoll.img on the server, then at U-Boot's prompt:\n\
         \x20   dhcp ${{kernel_addr_r}} atoll.img   (or: setenv serverip ...; tftpboot ...)\n\
         \x20   booti ${{kernel_addr_r}} - ${{fdtcontroladdr}}\n\
         \n\
         The console is the board's debug UART at 115200 8N1. docs/deploy.md in the Atoll\n\
         repository has the whole procedure.\n",
        name = board.name,
        description = board.description,
    )
}

/// Runs `cmd`, failing with its name if it does not succeed.
fn run(what: &str, cmd: &mut Command) -> Result<()> {
    let output = cmd.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Compiles U-Boot script `source` into `script` (`mkimage -T script`).
pub fn script(source: &Path, script: &Path) -> Result<()> {
    run(
        "mkimage (boot script)",
        Command::new("mkimage")
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
            .args(["-n", "Atoll boot script", "-d"])
            .arg(source)
            .arg(script),
    )
}

/// Writes the deployment files for `board` from `image` into `out`; returns `out`.
pub fn write_files(board: &Board, image: &Path, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let img = out.join("atoll.img");
    std::fs::copy(image, &img).with_context(|| format!("copying {}", image.display()))?;
    std::fs::write(out.join("boot.cmd"), boot_script(board, "${kernel_addr_r}"))?;
    script(&out.join("boot.cmd"), &out.join("boot.scr"))?;
    let link = format!("{:#x}", board.ram.base + board.image_offset);
    run(
        "mkimage (FIT image)",
        Command::new("mkimage")
            .args([
                "-f", "auto", "-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none",
            ])
            .args(["-a", &link, "-e", &link, "-n"])
            .arg(format!("Atoll for {}", board.name))
            .arg("-d")
            .arg(&img)
            .arg(out.join("atoll.itb")),
    )?;
    std::fs::write(out.join("README.txt"), readme(board))?;
    Ok(out.to_path_buf())
}

/// `cargo xtask deploy`: builds the system for `build.board` and writes its deployment
/// files into `out` (default `target/deploy/<board>`).
pub fn deploy(build: &BuildArgs, out: Option<PathBuf>) -> Result<PathBuf> {
    crate::setup::rust_targets()?;
    crate::setup::packages(PACKAGES)?;
    let board = crate::build::board(&build.board)?;
    let built = crate::build::build(build)?;
    let out = out.unwrap_or_else(|| {
        crate::build::workspace_root()
            .join("target")
            .join("deploy")
            .join(board.name)
    });
    write_files(board, &built.image, &out)
}

/// Where the tests have `booti` start the image on QEMU's `virt` besides `kernel_addr_r`
/// (0x40400000, `boot.scr`'s): one 2 MiB-aligned, one not, both far from the link address.
pub const TEST_BOOTI_ADDRESSES: [&str; 2] = ["0x44000000", "0x50210000"];

/// Bytes of the test disks: 32 MiB, one FAT partition from 1 MiB.
const DISK_BYTES: u64 = 32 << 20;
const PARTITION_START_SECTOR: u64 = 2048;

/// A master boot record with one bootable FAT32 (LBA) partition from sector 2048 to the end.
fn mbr(disk_bytes: u64) -> [u8; 512] {
    let sectors = (disk_bytes / 512 - PARTITION_START_SECTOR) as u32;
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x80; // bootable
    entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]); // CHS: use the LBA fields
    entry[4] = 0x0C; // FAT32 with LBA
    entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&(PARTITION_START_SECTOR as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

/// Writes `disk`: a partitioned disk whose one FAT partition holds `files` (name in the
/// partition, file to copy), as an SD card's boot partition would.
pub fn fat_disk(disk: &Path, files: &[(&str, &Path)]) -> Result<()> {
    if let Some(dir) = disk.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(disk).with_context(|| format!("creating {}", disk.display()))?;
    file.set_len(DISK_BYTES)?;
    drop(file);
    let mut bytes = std::fs::read(disk)?;
    bytes[..512].copy_from_slice(&mbr(DISK_BYTES));
    std::fs::write(disk, bytes)?;
    let kib = (DISK_BYTES / 512 - PARTITION_START_SECTOR) / 2;
    run(
        "mkfs.fat",
        Command::new("mkfs.fat")
            .arg(format!("--offset={PARTITION_START_SECTOR}"))
            .args(["-n", "ATOLL"])
            .arg(disk)
            .arg(kib.to_string()),
    )?;
    let partition = format!("{}@@{}", disk.display(), PARTITION_START_SECTOR * 512);
    for (name, from) in files {
        run(
            "mcopy",
            Command::new("mcopy")
                .args(["-o", "-i", &partition])
                .arg(from)
                .arg(format!("::/{name}")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mbr_describes_one_fat_partition_from_one_mebibyte() {
        let mbr = super::mbr(32 << 20);
        assert_eq!(&mbr[510..], &[0x55, 0xAA]);
        assert_eq!(mbr[446 + 4], 0x0C);
        let start = u32::from_le_bytes(mbr[454..458].try_into().expect("4 bytes"));
        let count = u32::from_le_bytes(mbr[458..462].try_into().expect("4 bytes"));
        assert_eq!(start, 2048);
        assert_eq!(u64::from(start + count) * 512, 32 << 20);
    }

    #[test]
    fn the_boot_script_loads_the_image_from_its_own_partition_and_boots_it() {
        let text = super::boot_script(&atoll_boards::ZCU102, "${kernel_addr_r}");
        assert!(
            text.contains(
                "load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} atoll.img"
            )
        );
        assert!(text.contains("booti ${kernel_addr_r} - ${fdtcontroladdr}"));
    }
}
