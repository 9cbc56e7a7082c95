//! Reports of a plan: `report.txt` for people, `report.json` for tools and tests (the same
//! content), and `system.dot`, a Graphviz picture of replicas, PDs and channels. Every
//! output is a pure function of the plan, so the same description gives identical files.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::plan::{PatchValue, PdPlan, Plan, ReplicaPlan, SchedulePlan, Unit};

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write '{}': {source}", path.display())]
pub struct WriteError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Writes every report of `plan`: the text report at `report`, the JSON report beside it
/// (the same name with `.json`) and `system.dot` in the same directory, which is created
/// if need be.
pub fn write_all(plan: &Plan, report: &Path) -> Result<(), WriteError> {
    if let Some(dir) = report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| WriteError {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    for (path, contents) in [
        (report.to_path_buf(), text(plan)),
        (report.with_extension("json"), json(plan)),
        (report.with_file_name("system.dot"), dot(plan)),
    ] {
        std::fs::write(&path, contents).map_err(|source| WriteError { path, source })?;
    }
    Ok(())
}

/// The JSON report.
pub fn json(plan: &Plan) -> String {
    let mut text =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The human report.
pub fn text(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Atoll system report");
    let _ = writeln!(
        s,
        "board {}, system hash {:#018x}",
        plan.board, plan.system_hash
    );
    let _ = writeln!(
        s,
        "kernel shared area {:#x} +{:#x}",
        plan.kernel_shared.base, plan.kernel_shared.size
    );
    let _ = writeln!(
        s,
        "shared region pool {:#x} +{:#x}",
        plan.shared_pool.base, plan.shared_pool.size
    );
    memory_regions(&mut s, plan);
    for replica in &plan.replicas {
        replica_text(&mut s, replica);
    }
    channels(&mut s, plan);
    s
}

/// The memory regions: size, page size, where each is and where its memory comes from.
fn memory_regions(s: &mut String, plan: &Plan) {
    let _ = writeln!(s, "\n== Memory regions");
    for r in &plan.memory_regions {
        let at = r
            .phys_addr
            .map_or("not placed".to_string(), |pa| format!("{pa:#x}"));
        let home = match &r.home {
            crate::plan::RegionHome::Device => "device".to_string(),
            crate::plan::RegionHome::FixedRam => "fixed, in RAM".to_string(),
            crate::plan::RegionHome::Replica(name) => format!("replica {name}"),
            crate::plan::RegionHome::Shared => "shared pool".to_string(),
            crate::plan::RegionHome::Status => "status page, read-only".to_string(),
            crate::plan::RegionHome::Unused => "unused".to_string(),
        };
        let _ = writeln!(
            s,
            "  {:<20} size {:#10x} page {:#8x} at {at:<12} ({home})",
            r.name, r.size, r.page_size
        );
    }
}

/// One replica: its cores and RAM, its PDs, interrupts and kernel objects.
fn replica_text(s: &mut String, replica: &ReplicaPlan) {
    let cores: Vec<String> = replica.cores.iter().map(u32::to_string).collect();
    let restart = if replica.restart {
        ", restarted when it stops"
    } else {
        ""
    };
    let hung = replica
        .hung_after_ms
        .map_or(String::new(), |ms| format!(", hung after {ms} ms frozen"));
    let _ = writeln!(
        s,
        "\n== Replica {} (K{}): cores {{{}}}, RAM {:#x} +{:#x}, {} KiB left free{restart}{hung}",
        replica.name,
        replica.index,
        cores.join(","),
        replica.ram.base,
        replica.ram.size,
        replica.free_bytes >> 10
    );
    if let Some(schedule) = &replica.domain_schedule {
        domain_schedule(s, schedule);
    }
    for pd in &replica.protection_domains {
        protection_domain(s, pd);
    }
    if !replica.irqs.is_empty() {
        let _ = writeln!(s, "\n  IRQs:");
        for irq in &replica.irqs {
            let _ = writeln!(
                s,
                "    irq {} ({}) -> core {}, {} channel {}",
                irq.irq, irq.trigger, irq.core, irq.pd, irq.id
            );
        }
    }
    let _ = writeln!(s, "\n  kernel objects:");
    for o in &replica.objects {
        let pa = o.phys_addr.map_or("-".to_string(), |pa| format!("{pa:#x}"));
        let count = if o.count == 1 {
            String::new()
        } else {
            format!(" x{}", o.count)
        };
        let detail = o
            .detail
            .as_ref()
            .map_or(String::new(), |d| format!("  ({d})"));
        let _ = writeln!(
            s,
            "    {:<14} {:<32} 2^{:<2}{count:<6} at {pa}{detail}",
            o.kind, o.name, o.size_bits
        );
    }
}

/// The domains (the monitor is in domain 0) and the kernel's schedule entries.
fn domain_schedule(s: &mut String, schedule: &SchedulePlan) {
    let domains: Vec<String> = schedule
        .domains
        .iter()
        .map(|d| format!("{} ({})", d.name, d.id))
        .collect();
    let _ = writeln!(
        s,
        "\n  domains: {}; the monitor runs in domain 0",
        domains.join(", ")
    );
    let _ = writeln!(
        s,
        "  domain schedule, starting at entry {}:",
        schedule.start
    );
    for e in &schedule.entries {
        let name = schedule
            .domains
            .iter()
            .find(|d| d.id == e.domain)
            .map_or("?", |d| d.name.as_str());
        let unit = match e.unit {
            Unit::EndMarker => "",
            Unit::Us => "us",
            Unit::Ticks => "ticks",
        };
        let what = match e.unit {
            Unit::EndMarker => "end marker: back to the start entry".to_string(),
            _ => format!("{name} ({}) for {} {unit}", e.domain, e.duration),
        };
        let _ = writeln!(s, "    entry {:>2}: {what}", e.index);
    }
}

/// One PD: its scheduling, program, mappings, capabilities and symbols.
fn protection_domain(s: &mut String, pd: &PdPlan) {
    let parent = pd
        .parent
        .as_ref()
        .map_or(String::new(), |(p, id)| format!(", child {id} of {p}"));
    let domain = pd
        .domain
        .as_ref()
        .map_or(String::new(), |d| format!(", domain {} ({})", d.name, d.id));
    let _ = writeln!(
        s,
        "\n  PD {}: priority {}, budget {} us, period {} us{}{}, core {}{domain}{parent}, image {}",
        pd.name,
        pd.priority,
        pd.budget_us,
        pd.period_us,
        if pd.passive { ", passive" } else { "" },
        if pd.restart {
            ", restarted on fault"
        } else {
            ""
        },
        pd.core,
        pd.program_image
    );
    if let Some(image) = &pd.image {
        let _ = writeln!(
            s,
            "    program at pa {:#x} +{:#x}, entry {:#x}",
            image.phys_addr, image.size, image.entry
        );
        for (vaddr, size, perms) in &image.segments {
            let _ = writeln!(s, "      segment {vaddr:#x} +{size:#x} {perms}");
        }
    }
    let _ = writeln!(s, "    maps:");
    for m in &pd.maps {
        let pa = m.phys_addr.map_or("(allocated at load)".to_string(), |pa| {
            format!("pa {pa:#x}")
        });
        let _ = writeln!(
            s,
            "      {:#14x} +{:#9x} {} {} {:<12} {pa}",
            m.vaddr,
            m.size,
            m.perms,
            if m.cached { "cached  " } else { "uncached" },
            m.what
        );
    }
    let _ = writeln!(s, "    capabilities (Microkit CNode):");
    for c in &pd.capabilities {
        let _ = writeln!(
            s,
            "      slot {:>3}: {:<32} rights {:<4} badge {:#x}",
            c.slot, c.object, c.rights, c.badge
        );
    }
    let _ = writeln!(s, "    symbols:");
    for sym in &pd.symbols {
        let value = match &sym.value {
            PatchValue::Word(w) => format!("{w:#x}"),
            PatchValue::Bytes(b) => format!("{b:?}"),
            PatchValue::PrefillSize(region) => format!("length of {region}'s prefill file"),
            PatchValue::Directory(directory) => directory.to_string(),
            PatchValue::Literal(value) => format!("{value:#x} (setvar value)"),
            PatchValue::Words(words) => {
                let words: Vec<String> = words.iter().map(|w| format!("{w:#x}")).collect();
                format!("[{}]", words.join(", "))
            }
        };
        let optional = if sym.optional {
            " (if the program has it)"
        } else {
            ""
        };
        let _ = writeln!(s, "      {} = {value}{optional}", sym.symbol);
    }
}

/// The channels and their doorbells.
fn channels(s: &mut String, plan: &Plan) {
    let _ = writeln!(s, "\n== Channels");
    for c in &plan.channels {
        let [(a, ai), (b, bi)] = &c.ends;
        let pp = match c.pp_caller {
            Some(0) => format!(", {a} calls {b}"),
            Some(_) => format!(", {b} calls {a}"),
            None => String::new(),
        };
        let cross = if c.cross_replica {
            ", cross-replica"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {a}:{ai} <-> {b}:{bi} (notify {}/{}{pp}{cross})",
            c.notify[0], c.notify[1]
        );
        for d in &c.doorbells {
            let _ = writeln!(
                s,
                "    doorbell {} -> {} bit {} via pending word {:#x}",
                d.from, d.to, d.bit, d.pending_word
            );
        }
    }
}

/// A Graphviz quoted string; line breaks become `\n`.
fn quoted(name: &str) -> String {
    let escaped = name
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The Graphviz picture: replicas as clusters, PDs as nodes, notifications as arrows, PPCs
/// as bold arrows, cross-replica channels dashed.
pub fn dot(plan: &Plan) -> String {
    let mut s =
        String::from("digraph atoll {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for replica in &plan.replicas {
        let cores: Vec<String> = replica.cores.iter().map(u32::to_string).collect();
        let _ = writeln!(s, "  subgraph cluster_{} {{", replica.index);
        let _ = writeln!(
            s,
            "    label={};",
            quoted(&format!(
                "K{} {} (cores {})",
                replica.index,
                replica.name,
                cores.join(",")
            ))
        );
        for pd in &replica.protection_domains {
            let _ = writeln!(
                s,
                "    {} [label={}];",
                quoted(&pd.name),
                quoted(&format!("{}\nprio {}", pd.name, pd.priority))
            );
        }
        let _ = writeln!(s, "  }}");
    }
    for c in &plan.channels {
        let [(a, _), (b, _)] = &c.ends;
        let style = if c.cross_replica { "dashed" } else { "solid" };
        if c.notify[0] {
            let _ = writeln!(s, "  {} -> {} [style={style}];", quoted(a), quoted(b));
        }
        if c.notify[1] {
            let _ = writeln!(s, "  {} -> {} [style={style}];", quoted(b), quoted(a));
        }
        if let Some(caller) = c.pp_caller {
            let (from, to) = if caller == 0 { (a, b) } else { (b, a) };
            let _ = writeln!(
                s,
                "  {} -> {} [style=bold, label=\"pp\"];",
                quoted(from),
                quoted(to)
            );
        }
    }
    s.push_str("}\n");
    s
}
