//! Debugging a system under QEMU's GDB stub with `gdb-multiarch` (`cargo xtask gdb`): the
//! QEMU arguments that start the machine halted with its stub on a TCP port of
//! `127.0.0.1`, and the GDB script that connects and loads the symbols. (GDB 13, Debian
//! bookworm's, cannot connect to a Unix socket.)
//!
//! Every replica's kernel runs at the same virtual address, so one copy of the kernel's
//! symbols serves every core; the loader runs at its physical address. The programs at EL0
//! (the initialiser and the PDs) are all linked at the same low addresses, so only one of
//! them can be loaded at a time: the script starts with the initialiser's, and its
//! `atoll-pd` command swaps in the program of the PD whose address space the selected core
//! has (its `TTBR0_EL1` against the address of each PD's top-level table in the plan
//! report).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// The GDB program (Debian's `gdb-multiarch`: the host's own `gdb` has no AArch64).
pub const GDB: &str = "gdb-multiarch";

/// The QEMU arguments that open the GDB stub on `127.0.0.1:port`, and with `halted` hold
/// every core at reset until GDB continues.
#[must_use]
pub fn qemu_args(port: u16, halted: bool) -> Vec<String> {
    let mut args = Vec::new();
    if halted {
        args.push("-S".into());
    }
    args.extend(["-gdb".into(), format!("tcp:127.0.0.1:{port}")]);
    args
}

/// One EL0 program the script may load: a PD's, found by its address space's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The PD's name.
    pub pd: String,
    /// Its replica.
    pub replica: String,
    /// The physical address of its top-level translation table.
    pub root: u64,
    /// Its ELF file.
    pub elf: String,
}

/// The PDs of the plan `report` and their programs in the image directory `dir` (its
/// `pds/` folder, where the build puts them).
///
/// # Errors
/// The report is not a plan report.
pub fn programs(report: &Value, dir: &Path) -> Result<Vec<Program>, String> {
    let mut out = Vec::new();
    let replicas = report
        .get("replicas")
        .and_then(Value::as_array)
        .ok_or("the plan report has no replicas")?;
    for r in replicas {
        let replica = r.get("name").and_then(Value::as_str).unwrap_or("?");
        let objects = r.get("objects").and_then(Value::as_array);
        for pd in r
            .get("protection_domains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(image)) = (
                pd.get("name").and_then(Value::as_str),
                pd.get("program_image").and_then(Value::as_str),
            ) else {
                return Err(format!("a PD without a name or program: {pd}"));
            };
            let vspace = format!("vspace_{name}");
            let root = objects
                .into_iter()
                .flatten()
                .find(|o| o.get("name").and_then(Value::as_str) == Some(vspace.as_str()))
                .and_then(|o| o.get("phys_addr"))
                .and_then(Value::as_str)
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                .ok_or_else(|| format!("PD {name} has no address space in the plan report"))?;
            let elf = dir.join("pds").join(image);
            out.push(Program {
                pd: name.to_string(),
                replica: replica.to_string(),
                root,
                elf: elf.display().to_string(),
            });
        }
    }
    Ok(out)
}

/// The GDB script for the image in `dir` (its ELF files and `report.json`'s plan), which
/// connects to the stub on `127.0.0.1:port`.
///
/// # Errors
/// As [`programs`].
pub fn script(report: &Value, dir: &Path, port: u16) -> Result<String, String> {
    let programs = programs(report, dir)?;
    let file = |name: &str| dir.join(name).display().to_string();
    let initialiser = file("atoll-initialiser.elf");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `cargo xtask gdb`: Atoll's symbols and the `atoll-pd` command."
    );
    s.push_str("set pagination off\nset confirm off\nset architecture aarch64\n");
    let _ = writeln!(s, "target remote 127.0.0.1:{port}");
    for elf in ["atoll-loader.elf", "atoll-kernel.elf"] {
        let _ = writeln!(s, "add-symbol-file {}", file(elf));
    }
    let _ = writeln!(s, "add-symbol-file {initialiser}");
    // Which EL0 program's symbols are loaded: 0 the initialiser's, i + 1 PD i's.
    s.push_str("set $atoll_el0 = 0\n\ndefine atoll-pd\n");
    // The table's address in TTBR0_EL1, without the ASID (bits 63:48) and CnP (bit 0).
    s.push_str("  set $atoll_root = $TTBR0_EL1 & 0x0000fffffffffffe\n");
    let _ = writeln!(
        s,
        "  if $atoll_el0 == 0\n    remove-symbol-file {initialiser}\n  end"
    );
    for (i, p) in programs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  if $atoll_el0 == {}\n    remove-symbol-file {}\n  end",
            i + 1,
            p.elf
        );
    }
    s.push_str("  set $atoll_el0 = 0\n");
    for (i, p) in programs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  if $atoll_root == {:#x}\n    add-symbol-file {}\n    set $atoll_el0 = {}\n    echo atoll-pd: {} (replica {})\\n\n  end",
            p.root,
            p.elf,
            i + 1,
            p.pd,
            p.replica
        );
    }
    let _ = writeln!(
        s,
        "  if $atoll_el0 == 0\n    add-symbol-file {initialiser}\n    echo atoll-pd: no PD's address space is current on this core: the initialiser's symbols\\n\n  end"
    );
    s.push_str("end\n");
    s.push_str(
        "document atoll-pd\nLoads the symbols of the PD whose address space the selected core has (its TTBR0_EL1), in place of the EL0 program loaded before.\nend\n",
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({ "replicas": [
            { "name": "io", "objects": [
                { "name": "vspace_io", "kind": "vspace", "phys_addr": "0x41c3e000" },
                { "name": "vspace_net_driver", "kind": "vspace", "phys_addr": "0x41c24000" } ],
              "protection_domains": [
                { "name": "net_driver", "program_image": "net_driver.elf" },
                { "name": "io", "program_image": "io.elf" } ] },
        ] })
    }

    #[test]
    fn the_script_loads_the_symbols_and_maps_each_address_space_to_its_program() {
        let dir = Path::new("/img");
        let s = script(&report(), dir, 1234).unwrap();
        assert!(s.contains("target remote 127.0.0.1:1234\n"));
        for elf in [
            "atoll-loader.elf",
            "atoll-kernel.elf",
            "atoll-initialiser.elf",
        ] {
            assert!(
                s.contains(&format!("add-symbol-file /img/{elf}\n")),
                "{elf}"
            );
        }
        assert!(s.contains(
            "  if $atoll_root == 0x41c3e000\n    add-symbol-file /img/pds/io.elf\n    set $atoll_el0 = 2\n"
        ));
        assert!(
            s.contains("  if $atoll_el0 == 1\n    remove-symbol-file /img/pds/net_driver.elf\n")
        );
        // Every `if` is closed, and the command is.
        assert_eq!(s.matches("  if ").count(), s.matches("\n  end").count());
        assert!(s.contains("\nend\ndocument atoll-pd\n"));
    }

    #[test]
    fn a_pd_without_an_address_space_is_an_error() {
        let report = json!({ "replicas": [ { "name": "io", "objects": [],
            "protection_domains": [ { "name": "io", "program_image": "io.elf" } ] } ] });
        assert!(
            programs(&report, Path::new("/img"))
                .unwrap_err()
                .contains("io")
        );
        assert!(programs(&json!({}), Path::new("/img")).is_err());
    }
}
