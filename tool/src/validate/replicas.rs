//! Placing PDs on replicas: Atoll's extension to Microkit's `cpu` attribute.
//!
//! With `<replica>` elements, a PD runs in the replica its `replica` attribute names, or else
//! in the replica that owns its `cpu` (default core 0). Without them, every distinct core in
//! use becomes its own replica, named `core<N>`. A child PD that gives neither `cpu` nor
//! `replica` stays with its parent, because a parent and its children must share a replica.
//!
//! A declared replica's `hung_after_ms` is checked here too (not 0, at most a minute, at
//! least three ticks), and so is its `restart`, which the system's only replica may not
//! have; whether a restartable replica's cross-replica words can be cleared is known only
//! once they are numbered (`plan::channels`).

use std::collections::HashMap;

use atoll_boards::Board;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::limits::{LARGE_PAGE_SIZE, MAX_HUNG_AFTER_MS, MAX_REPLICAS, MIN_HUNG_TICKS, TICK_HZ};
use crate::model::Replica;
use crate::parse::{Declarations, PdDecl, Spanned};

/// Where each PD runs.
#[derive(Debug)]
pub struct Placement {
    /// Replicas, declared ones in document order, implied ones by core; PD lists filled in.
    pub replicas: Vec<Replica>,
    /// Replica index and core of each PD (in declaration order).
    pub pds: Vec<(usize, u32)>,
}

/// Places every PD, reporting bad replicas and PDs that cannot be placed.
pub fn place(decls: &Declarations, board: &Board, diagnostics: &mut Vec<Diagnostic>) -> Placement {
    let mut replicas = declared_replicas(decls, board, diagnostics);
    let declared = !replicas.is_empty();
    let by_name: HashMap<String, usize> = replicas
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    let mut pds: Vec<(usize, u32)> = Vec::with_capacity(decls.protection_domains.len());
    for pd in &decls.protection_domains {
        let cpu = checked_cpu(pd, board, diagnostics);
        let parent = pd.parent.and_then(|p| pds.get(p).copied());
        let inherit = pd.cpu.is_none() && pd.replica.is_none();
        let placed = match parent {
            Some(parent) if inherit => parent,
            _ if declared => place_declared(pd, cpu, &replicas, &by_name, diagnostics),
            _ => {
                if let Some(wanted) = &pd.replica {
                    let help = format!(
                        "declare it: <replica name=\"{}\" cores=\"…\" />",
                        wanted.value
                    );
                    diagnostics.push(unknown_replica(wanted).with_help(help));
                }
                let core = cpu.unwrap_or(0);
                let index = implied_replica(&mut replicas, core, pd);
                (index, core)
            }
        };
        if let (Some(parent_index), Some(parent)) = (pd.parent, parent)
            && parent.0 != placed.0
        {
            let parent_pd = &decls.protection_domains[parent_index];
            diagnostics.push(cross_replica_child(
                pd, parent_pd, &replicas, placed.0, parent.0,
            ));
        }
        pds.push(placed);
    }
    if !declared {
        // Core 0 boots the machine and owns the console, so it always runs a replica, even
        // when no PD is placed on it (a Microkit description may use only other cores).
        if !replicas.iter().any(|r| r.cores == [0])
            && let Some(first) = decls.protection_domains.first()
        {
            replicas.push(Replica {
                ram: None,
                name: "core0".into(),
                cores: vec![0],
                declared: false,
                protection_domains: Vec::new(),
                restart: None,
                hung_after_ms: None,
                span: first.name.span,
            });
        }
        sort_implied(&mut replicas, &mut pds);
    }
    for (pd, &(replica, _)) in pds.iter().enumerate() {
        if let Some(replica) = replicas.get_mut(replica) {
            replica.protection_domains.push(pd);
        }
    }
    for replica in replicas
        .iter()
        .filter(|r| r.declared && r.protection_domains.is_empty())
    {
        diagnostics.push(
            Diagnostic::warning(
                Code::EmptyReplica,
                replica.span,
                format!("replica '{}' has no protection domains", replica.name),
            )
            .with_help(
                "its cores will only run the replica's monitor; remove it or place PDs on it",
            ),
        );
    }
    Placement { replicas, pds }
}

/// The error for a child placed outside its parent's replica.
fn cross_replica_child(
    pd: &PdDecl,
    parent: &PdDecl,
    replicas: &[Replica],
    replica: usize,
    parent_replica: usize,
) -> Diagnostic {
    let span = match (&pd.replica, &pd.cpu) {
        (Some(replica), _) => replica.span,
        (None, Some(cpu)) => cpu.span,
        (None, None) => pd.name.span,
    };
    let name = |index: usize| replicas.get(index).map_or("?", |r| r.name.as_str());
    let message = format!(
        "child PD '{}' runs in replica '{}' but its parent '{}' runs in replica '{}': parent and \
         child across replicas are not supported yet",
        pd.name.value,
        name(replica),
        parent.name.value,
        name(parent_replica)
    );
    Diagnostic::error(Code::CrossReplicaChild, span, message)
        .with_secondary(parent.name.span, "parent declared here")
        .with_help(
            "place the child on one of its parent's cores, or drop its 'cpu' and 'replica' to \
             inherit the parent's",
        )
}

/// The `cpu` attribute if the board has that core.
fn checked_cpu(pd: &PdDecl, board: &Board, diagnostics: &mut Vec<Diagnostic>) -> Option<u32> {
    let cpu = pd.cpu.as_ref()?;
    let cores = board.cores.len();
    match u32::try_from(cpu.value) {
        Ok(core) if (core as usize) < cores => Some(core),
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::CpuRange,
                    cpu.span,
                    format!("cpu core must be less than {cores}, got {}", cpu.value),
                )
                .with_help(format!(
                    "board '{}' has cores 0 to {}",
                    board.name,
                    cores.saturating_sub(1)
                )),
            );
            None
        }
    }
}

fn declared_replicas(
    decls: &Declarations,
    board: &Board,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = Vec::new();
    let mut owner: HashMap<u32, (usize, Span)> = HashMap::new();
    let mut names: HashMap<&str, Span> = HashMap::new();
    for decl in &decls.replicas {
        if let Some(first) = names.get(decl.name.value.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    Code::DuplicateName,
                    decl.name.span,
                    format!("duplicate replica name '{}'", decl.name.value),
                )
                .with_secondary(*first, "first defined here"),
            );
            continue;
        }
        names.insert(&decl.name.value, decl.name.span);
        if replicas.len() == MAX_REPLICAS {
            diagnostics.push(Diagnostic::error(
                Code::ReplicaCount,
                decl.name.span,
                format!("too many replicas: an image holds at most {MAX_REPLICAS}"),
            ));
        }
        let index = replicas.len();
        let mut cores = Vec::new();
        for &core in &decl.cores.value {
            if core as usize >= board.cores.len() {
                diagnostics.push(
                    Diagnostic::error(
                        Code::CoreRange,
                        decl.cores.span,
                        format!("board '{}' has no core {core}", board.name),
                    )
                    .with_help(format!(
                        "its cores are 0 to {}",
                        board.cores.len().saturating_sub(1)
                    )),
                );
            } else if let Some(&(other, span)) = owner.get(&core) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::SharedCore,
                        decl.cores.span,
                        format!(
                            "core {core} is already given to replica '{}'",
                            replicas[other].name
                        ),
                    )
                    .with_secondary(span, "first given here")
                    .with_help("each core runs exactly one replica's kernel"),
                );
            } else {
                owner.insert(core, (index, decl.cores.span));
                cores.push(core);
            }
        }
        cores.sort_unstable();
        let ram = decl.ram.as_ref().and_then(|ram| {
            let ok = ram.value > LARGE_PAGE_SIZE && ram.value.is_multiple_of(LARGE_PAGE_SIZE);
            if !ok {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        ram.span,
                        format!("replica RAM {:#x} must be a multiple of 2 MiB and more than 2 MiB", ram.value),
                    )
                    .with_help("the first 2 MiB of every replica hold its kernel; e.g. ram=\"0x1000_0000\" for 256 MiB"),
                );
            }
            ok.then_some(ram.value)
        });
        let hung_after_ms = decl
            .hung_after_ms
            .as_ref()
            .and_then(|hung| checked_hung_after_ms(hung, diagnostics));
        replicas.push(Replica {
            ram,
            name: decl.name.value.clone(),
            cores,
            declared: true,
            protection_domains: Vec::new(),
            restart: decl
                .restart
                .as_ref()
                .filter(|restart| restart.value)
                .map(|restart| restart.span),
            hung_after_ms,
            span: decl.name.span,
        });
    }
    if let [only] = replicas.as_slice()
        && let Some(restart) = only.restart
    {
        diagnostics.push(
            Diagnostic::error(
                Code::ReplicaRestart,
                restart,
                format!(
                    "replica '{}' cannot be restarted: it is the system's only replica, so none \
                     is left to restart it when it stops",
                    only.name
                ),
            )
            .with_secondary(only.span, "the only replica")
            .with_help(
                "a surviving replica restarts one that stopped: declare another <replica>, or \
                 drop restart=\"true\"",
            ),
        );
    }
    replicas
}

/// A replica's `hung_after_ms`, if it is neither 0 nor above a minute nor shorter than
/// [`MIN_HUNG_TICKS`] ticks.
fn checked_hung_after_ms(hung: &Spanned<u64>, diagnostics: &mut Vec<Diagnostic>) -> Option<u32> {
    let tick_ms = 1000 / u64::from(TICK_HZ);
    let shortest = (MIN_HUNG_TICKS * 1000).div_ceil(u64::from(TICK_HZ));
    let range = format!("give {shortest} to {MAX_HUNG_AFTER_MS} milliseconds");
    let (message, help) = match hung.value {
        0 => (
            "'hung_after_ms' must not be 0".to_string(),
            format!("leave 'hung_after_ms' out for a replica that is never checked, or {range}"),
        ),
        ms if ms > MAX_HUNG_AFTER_MS => (
            format!("hung_after_ms {ms} is above {MAX_HUNG_AFTER_MS} (one minute)"),
            range,
        ),
        ms if ms < shortest => (
            format!(
                "hung_after_ms {ms} is shorter than {MIN_HUNG_TICKS} ticks of the {TICK_HZ} Hz \
                 timer ({shortest} ms): a healthy replica could be reported hung"
            ),
            format!("a replica's tick count moves only once a tick (every {tick_ms} ms): {range}"),
        ),
        ms => return u32::try_from(ms).ok(),
    };
    diagnostics.push(Diagnostic::error(Code::InvalidValue, hung.span, message).with_help(help));
    None
}

fn place_declared(
    pd: &PdDecl,
    cpu: Option<u32>,
    replicas: &[Replica],
    by_name: &HashMap<String, usize>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (usize, u32) {
    if let Some(wanted) = &pd.replica {
        let Some(&index) = by_name.get(&wanted.value) else {
            diagnostics.push(
                unknown_replica(wanted)
                    .with_help(format!(
                        "declared replicas: {}",
                        replicas
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_suggestion(&wanted.value, replicas.iter().map(|r| r.name.as_str())),
            );
            return (0, cpu.unwrap_or(0));
        };
        let replica = &replicas[index];
        let first = replica.cores.first().copied().unwrap_or(0);
        match cpu {
            Some(core) if !replica.cores.contains(&core) && !replica.cores.is_empty() => {
                let cpu_span = pd.cpu.as_ref().map_or(wanted.span, |c| c.span);
                diagnostics.push(
                    Diagnostic::error(
                        Code::CoreWithoutReplica,
                        cpu_span,
                        format!(
                            "core {core} is not among the cores of replica '{}'",
                            replica.name
                        ),
                    )
                    .with_secondary(wanted.span, "replica chosen here")
                    .with_help(format!(
                        "replica '{}' has cores {}",
                        replica.name,
                        core_list(&replica.cores)
                    )),
                );
                (index, first)
            }
            Some(core) => (index, core),
            None => (index, first),
        }
    } else {
        let core = cpu.unwrap_or(0);
        match replicas.iter().position(|r| r.cores.contains(&core)) {
            Some(index) => (index, core),
            None => {
                let span = pd.cpu.as_ref().map_or(pd.name.span, |c| c.span);
                let reason = if pd.cpu.is_some() {
                    ""
                } else {
                    " (the default 'cpu')"
                };
                diagnostics.push(
                    Diagnostic::error(
                        Code::CoreWithoutReplica,
                        span,
                        format!(
                            "PD '{}' runs on core {core}{reason}, which belongs to no replica",
                            pd.name.value
                        ),
                    )
                    .with_help("add replica=\"…\" to the PD, or give the core to a <replica>"),
                );
                (0, core)
            }
        }
    }
}

fn implied_replica(replicas: &mut Vec<Replica>, core: u32, pd: &PdDecl) -> usize {
    if let Some(index) = replicas.iter().position(|r| r.cores == [core]) {
        return index;
    }
    replicas.push(Replica {
        ram: None,
        name: format!("core{core}"),
        cores: vec![core],
        declared: false,
        protection_domains: Vec::new(),
        restart: None,
        hung_after_ms: None,
        span: pd.cpu.as_ref().map_or(pd.name.span, |c| c.span),
    });
    replicas.len() - 1
}

/// Orders implied replicas by core and renumbers the PDs' placements.
fn sort_implied(replicas: &mut Vec<Replica>, pds: &mut [(usize, u32)]) {
    let mut order: Vec<usize> = (0..replicas.len()).collect();
    order.sort_by_key(|&i| replicas[i].cores.first().copied());
    let mut new_index = vec![0; replicas.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut sorted: Vec<Option<Replica>> = replicas.drain(..).map(Some).collect();
    replicas.extend(order.iter().filter_map(|&old| sorted[old].take()));
    for placed in pds {
        placed.0 = new_index[placed.0];
    }
}

/// A PD names a replica nobody declared (the caller adds the help that fits).
fn unknown_replica(wanted: &Spanned<String>) -> Diagnostic {
    Diagnostic::error(
        Code::UnknownReplica,
        wanted.span,
        format!("no replica is named '{}'", wanted.value),
    )
}

/// `0, 2, 3` for humans.
fn core_list(cores: &[u32]) -> String {
    cores
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
