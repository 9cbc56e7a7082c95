//! Installs what the build and tests need: rustup targets and components, and QEMU.

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
fn install_commands() -> Vec<String> {
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    if codename == "bookworm" {
        vec![
            "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list".into(),
            "apt-get update".into(),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-arm".into(),
        ]
    } else {
        vec![
            "apt-get update".into(),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-arm".into(),
        ]
    }
}

/// Makes sure QEMU is installed with `machines`; installs it when running as root.
pub fn qemu(machines: &[&str]) -> Result<()> {
    if qemu_machines().is_some_and(|list| has_machines(&list, machines)) {
        return Ok(());
    }
    let commands = install_commands();
    let is_root = output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false);
    if !is_root {
        bail!(
            "QEMU with machines {} is not installed. Install it as root with:\n  {}",
            machines.join(", "),
            commands.join("\n  ")
        );
    }
    for c in &commands {
        run(Command::new("sh").args(["-c", c]))?;
    }
    match qemu_machines() {
        Some(list) if has_machines(&list, machines) => Ok(()),
        _ => bail!(
            "installed QEMU still lacks machines {}",
            machines.join(", ")
        ),
    }
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
