//! Installs what the build and tests need: rustup targets and components, QEMU, and the C
//! toolchain the SDK's tests build Microkit-style C programs with.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Targets the kernel, loader and PDs are built for.
pub const TARGETS: &[&str] = &["aarch64-unknown-none-softfloat", "aarch64-unknown-none"];
/// Components the test command uses.
pub const COMPONENTS: &[&str] = &["clippy", "rustfmt"];

fn toolchain() -> String {
    std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "1.95.0".into())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Adds any missing rustup target or component (rust-toolchain.toml does not, for a
/// toolchain that is already installed).
pub fn rust_targets() -> Result<()> {
    let tc = toolchain();
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed", "--toolchain", &tc]))?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        run(Command::new("rustup")
            .args(["target", "add", "--toolchain", &tc])
            .args(&missing))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &tc,
    ]))?;
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|c| {
            !components
                .lines()
                .any(|l| l.trim().starts_with(&format!("{c}-")) || l.trim() == *c)
        })
        .collect();
    if !missing.is_empty() {
        run(Command::new("rustup")
            .args(["component", "add", "--toolchain", &tc])
            .args(&missing))?;
    }
    Ok(())
}

/// Machines the installed QEMU offers, or `None` if QEMU is missing.
fn qemu_machines() -> Option<String> {
    let out = Command::new(atoll_runner::QEMU)
        .args(["-machine", "help"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn has_machines(list: &str, machines: &[&str]) -> bool {
    machines.iter().all(|m| {
        let name = m.split(',').next().unwrap_or(m);
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    })
}

/// The commands that install a QEMU with every machine Atoll boots on.
/// Debian packages QEMU needs besides itself: `ipxe-qemu` holds the option ROMs of the
/// network cards QEMU's `virt` machine adds by default (`efi-virtio.rom`), without which
/// Microkit's own QEMU command for `qemu_virt_aarch64` (no `-nic none`) will not start.
const QEMU_EXTRA: &[&str] = &["ipxe-qemu"];
/// Debian packages the C SDK's tests need: Microkit's Makefiles with `LLVM=True` compile
/// with `clang -target aarch64-none-elf` and link with `ld.lld`.
pub const C_TOOLCHAIN: &[&str] = &["clang", "lld", "make"];

/// The commands that install `packages` (and QEMU from bookworm-backports when `qemu`).
fn install_commands(qemu: bool, packages: &[&str]) -> Vec<String> {
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    let install = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends";
    let mut commands = Vec::new();
    if qemu && codename == "bookworm" {
        commands.push("echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list".into());
    }
    commands.push("apt-get update".into());
    if qemu {
        let from = if codename == "bookworm" {
            " -t bookworm-backports"
        } else {
            ""
        };
        commands.push(format!("{install}{from} qemu-system-arm"));
    }
    if !packages.is_empty() {
        commands.push(format!("{install} {}", packages.join(" ")));
    }
    commands
}

/// Whether Debian package `name` is installed.
fn installed(name: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_ok_and(|status| status.contains("install ok installed"))
}

/// Runs `commands` as root, or says how to when not root (`what` names what is missing).
fn install(what: &str, commands: &[String]) -> Result<()> {
    let is_root = output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false);
    if !is_root {
        bail!(
            "{what} is not installed. Install it as root with:\n  {}",
            commands.join("\n  ")
        );
    }
    for c in commands {
        run(Command::new("sh").args(["-c", c]))?;
    }
    Ok(())
}

/// Makes sure QEMU is installed with `machines` (and the ROM files its machines load);
/// installs it when running as root.
pub fn qemu(machines: &[&str]) -> Result<()> {
    let extra: Vec<&str> = QEMU_EXTRA
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    let has_qemu = qemu_machines().is_some_and(|list| has_machines(&list, machines));
    if has_qemu && extra.is_empty() {
        return Ok(());
    }
    let what = format!("QEMU with machines {}", machines.join(", "));
    install(&what, &install_commands(!has_qemu, &extra))?;
    match qemu_machines() {
        Some(list) if has_machines(&list, machines) => Ok(()),
        _ => bail!(
            "installed QEMU still lacks machines {}",
            machines.join(", ")
        ),
    }
}

/// Makes sure the Debian `packages` are installed; installs the missing ones when running
/// as root.
pub fn packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing.join(", "), &install_commands(false, &missing))
}

#[cfg(test)]
mod tests {
    #[test]
    fn machine_lists_are_matched_by_name() {
        let list = "Supported machines are:\nvirt                 QEMU 10.0 ARM Virtual Machine\nxlnx-zcu102          Xilinx\n";
        assert!(super::has_machines(
            list,
            &["virt,gic-version=3", "xlnx-zcu102"]
        ));
        assert!(!super::has_machines(list, &["imx8mp-evk"]));
    }
}
