//! Replica restart time (`<replica restart="true">`): the default system, built with every
//! replica faulting on purpose in turn (storage at 2 s, the real-time replica at 3 s, the
//! boot replica at 4 s, as `cargo xtask run --inject-fault storage:2,rt:3,io:4` builds
//! it), booted once under `-icount shift=0` with a fresh disk. Each restarted kernel logs
//! its restart time in virtual time, which under `shift=0` is the machine's instructions:
//! from the stop (the faulting core's counter, kept in its status record) to every PD of the
//! replica started, and to every PD waiting for events (which adds the PDs' own start-up:
//! the store's recovery from disk, the network stack's).

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::BuildArgs;
use crate::bench::{bench_board, bench_options};
use crate::build::{build, workspace_root};

/// The replicas the bench stops, their index, and the second of their fault.
pub(crate) const STOPPED: [(&str, usize, u32); 3] = [("storage", 2, 2), ("rt", 1, 3), ("io", 0, 4)];

/// The bench's figure names for replica `name`'s restart: to every PD started, and to
/// every PD waiting for events.
pub(crate) fn figure_names(name: &str) -> (&'static str, &'static str) {
    match name {
        "storage" => (
            "replica restart, storage: stop to every PD started",
            "replica restart, storage: stop to every PD waiting",
        ),
        "rt" => (
            "replica restart, rt: stop to every PD started",
            "replica restart, rt: stop to every PD waiting",
        ),
        _ => (
            "replica restart, io (boot replica): stop to every PD started",
            "replica restart, io (boot replica): stop to every PD waiting",
        ),
    }
}

/// One replica's restart, in virtual ns (instructions at `shift=0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Restart {
    /// The replica's name.
    pub name: &'static str,
    /// From the stop to every PD started.
    pub started: f64,
    /// From the stop to every PD waiting for events.
    pub waiting: f64,
}

/// The restart line of replica `index`: (to every PD started, to every PD waiting), in ns.
fn restart_line(serial: &str, index: usize) -> Option<(f64, f64)> {
    let marker = format!("K{index}|INFO: restart time: ");
    let line = serial.lines().find(|l| l.contains(&marker))?;
    let mut figures = line
        .split('(')
        .skip(1)
        .filter_map(|part| part.split(" ns)").next()?.parse::<f64>().ok());
    Some((figures.next()?, figures.next()?))
}

pub(crate) fn measure(out: &Path) -> Result<Vec<Restart>> {
    let board = bench_board()?;
    let faults: Vec<String> = STOPPED
        .iter()
        .map(|(name, _, at)| format!("{name}:{at}"))
        .collect();
    let args = BuildArgs {
        board: board.name.into(),
        inject_fault: Some(faults.join(",")),
        out: Some(out.join("restart")),
        ..BuildArgs::default()
    };
    let built = build(&args)?;
    let disk = out.join("restart-disk.img");
    crate::bench::fresh_disk(board, &disk)?;
    let last = STOPPED.last().map_or(0, |s| s.1);
    let until = format!("K{last}|INFO: restart time: ");
    let mut options = bench_options(true, &until, None);
    options.disk = Some(disk);
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join("restart.log");
    let outcome = atoll_runner::run(
        board,
        &built.image,
        &options,
        Duration::from_secs(300),
        &log,
    )?;
    if outcome.until_seen.is_none() {
        bail!(
            "the run did not print '{until}'; serial log {}",
            log.display()
        );
    }
    STOPPED
        .iter()
        .map(|&(name, index, _)| {
            let (started, waiting) = restart_line(&outcome.serial, index).ok_or_else(|| {
                anyhow!(
                    "no restart time for {name} (K{index}) in the serial log {}",
                    log.display()
                )
            })?;
            Ok(Restart {
                name,
                started,
                waiting,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn restart_lines_give_both_times() {
        let serial = "K2|INFO: restarted: epoch 1, kernel started 1.125 ms (1125840 ns) after the stop\n\
            K2|INFO: restart time: 2.143 ms (2143904 ns) from the stop to every PD started, \
            303.954 ms (303954992 ns) to every PD waiting for events; epoch 1\n";
        assert_eq!(
            super::restart_line(serial, 2),
            Some((2_143_904.0, 303_954_992.0))
        );
        assert_eq!(super::restart_line(serial, 1), None);
    }
}
