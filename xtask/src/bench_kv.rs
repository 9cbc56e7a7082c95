//! The key-value store's figures for `cargo xtask bench`: instructions per durable 4 KiB
//! `PUT` and per 4 KiB `GET` through the cross-replica protocol, and the store's recovery
//! instructions per MiB of log.
//!
//! The benchmark system `protection-domains/bench/systems/kv.xml` runs one client PD,
//! `bench_kv`, on a replica of its own, and the default system's storage replica (the block
//! driver and the store, unchanged). It boots under `-icount shift=0` on a fresh disk image
//! (`target/bench/kv-disk.img`): the store formats it, `bench_kv` makes its warm-up `PUT`s,
//! then prints the average instructions of its measured `PUT`s (each a new key, durable when
//! answered) and of its `GET`s of them (`BENCH kv PUT 4 KiB durable: ...`). The same image
//! then boots again on that disk: the store recovers the log the first boot wrote (a few
//! MiB) and reports the machine's instructions its open took and the blocks of the log it
//! scanned (`storage: opened the store on a disk of ... in <ms> ms, <n> instructions: ...
//! <k> records kept in <b> blocks, ...`); the figure is their quotient per MiB.
//!
//! The counts are machine-wide, and the store waits for its disk by polling the block
//! driver's answers, so they hold the instructions its core executes while QEMU's host
//! thread carries out the disk's writes and flushes: they vary with the host's disk, a
//! little between runs, a lot between machines. They are reported, without goals.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::bench::{bench_board, bench_instructions, bench_options, build_benchmark};
use crate::build::workspace_root;

/// The figure of `bench_kv`'s measured `PUT`s.
pub(crate) const PUT: &str = "kv PUT 4 KiB durable";
/// The figure of `bench_kv`'s measured `GET`s.
pub(crate) const GET: &str = "kv GET 4 KiB";
/// The store's line once it has opened an existing store.
const OPENED: &str = "storage: opened the store on a disk of ";
/// What `bench_kv` prints when it stops on an error.
const STOPPED: &str = "; stopped";
/// Bytes of a disk block.
const BLOCK_BYTES: f64 = 512.0;

/// The key-value figures.
pub(crate) struct Kv {
    /// Instructions, machine-wide, per durable 4 KiB `PUT` of a new key.
    pub put_4k: f64,
    /// Instructions, machine-wide, per 4 KiB `GET`.
    pub get_4k: f64,
    /// Instructions, machine-wide, the store's open took on the second boot.
    pub recovery: f64,
    /// MiB of log that open scanned.
    pub log_mib: f64,
}

impl Kv {
    /// Recovery instructions per MiB of log.
    pub fn recovery_per_mib(&self) -> f64 {
        self.recovery / self.log_mib.max(f64::MIN_POSITIVE)
    }
}

/// Builds the benchmark system, boots it on a fresh disk for the `PUT` and `GET` figures,
/// and again on the same disk for the recovery figure.
pub(crate) fn measure(out: &Path) -> Result<Kv> {
    let board = bench_board()?;
    let system = workspace_root()
        .join("protection-domains")
        .join("bench")
        .join("systems")
        .join("kv.xml");
    let (built, cores) = build_benchmark(&system, &out.join("kv"))?;
    let disk = out.join("kv-disk.img");
    crate::bench::fresh_disk(board, &disk)?;

    let first = boot(board, &built.image, &disk, cores, "kv-1", &marker(GET))?;
    let figure = |name| {
        bench_instructions(&first.serial, name).ok_or_else(|| {
            anyhow!(
                "no BENCH {name} line; serial log {}",
                first.log_path.display()
            )
        })
    };
    let (put_4k, get_4k) = (figure(PUT)?, figure(GET)?);
    println!(
        "bench kv: {put_4k} instructions per PUT, {get_4k} per GET ({:.1} s wall)",
        first.elapsed.as_secs_f64()
    );

    let second = boot(board, &built.image, &disk, cores, "kv-2", OPENED)?;
    let (recovery, blocks) = recovery(&second.serial).ok_or_else(|| {
        anyhow!(
            "no recovery figures on the store's line; serial log {}",
            second.log_path.display()
        )
    })?;
    let log_mib = blocks as f64 * BLOCK_BYTES / (1024.0 * 1024.0);
    if log_mib < 1.0 {
        bail!(
            "the recovered log is {log_mib:.2} MiB, too short to measure; serial log {}",
            second.log_path.display()
        );
    }
    println!("bench kv: recovery of {log_mib:.2} MiB of log took {recovery} instructions");
    Ok(Kv {
        put_4k,
        get_4k,
        recovery: recovery as f64,
        log_mib,
    })
}

/// The start of `bench_kv`'s line for figure `name`.
fn marker(name: &str) -> String {
    format!("BENCH {name}: ")
}

/// Boots `image` under icount with `disk` attached until its output shows `until`.
fn boot(
    board: &atoll_boards::Board,
    image: &Path,
    disk: &Path,
    cores: u32,
    label: &str,
    until: &str,
) -> Result<atoll_runner::Outcome> {
    let mut options = bench_options(true, until, Some(cores));
    options.disk = Some(disk.to_path_buf());
    options.stop_on = vec![STOPPED.into()];
    let log = workspace_root()
        .join("target")
        .join("bench")
        .join(format!("{label}.log"));
    let outcome = atoll_runner::run(board, image, &options, Duration::from_secs(300), &log)?;
    if outcome.until_seen.is_none() {
        bail!(
            "the run did not print '{until}'; serial log {}",
            log.display()
        );
    }
    Ok(outcome)
}

/// The instructions the store's open took and the blocks of log it kept, from its line
/// `storage: opened the store on a disk of B blocks in T ms, N instructions: K keys;
/// generation G (...): R records kept in L blocks, ...`.
fn recovery(serial: &str) -> Option<(u64, u64)> {
    let line = serial.lines().find(|l| l.contains(OPENED))?;
    let after = line.split(OPENED).nth(1)?;
    let instructions = after
        .split(" instructions:")
        .next()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()?;
    let blocks = after
        .split(" records kept in ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((instructions, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_figures_are_read_from_the_store_line() {
        let serial = "storage: running at EL0\n\
            storage: opened the store on a disk of 131072 blocks in 412 ms, 98765432 instructions: \
            1024 keys; generation 1 (1/2 superblocks valid): 1024 records kept in 9216 blocks, \
            0 damaged dropped (0 blocks), 0 lost to 0 resyncs, 0 old torn, no torn tail\n";
        assert_eq!(recovery(serial), Some((98_765_432, 9216)));
        let kv = Kv {
            put_4k: 0.0,
            get_4k: 0.0,
            recovery: 98_765_432.0,
            log_mib: 9216.0 * 512.0 / 1048576.0,
        };
        assert_eq!(kv.recovery_per_mib(), 98_765_432.0 / 4.5);
        // A blank disk's line has neither figure.
        assert_eq!(
            recovery(
                "storage: opened the store: a new one on a blank disk of 131072 blocks, formatted in 9 ms\n"
            ),
            None
        );
    }

    #[test]
    fn the_benchmark_system_is_a_valid_description() {
        let board = bench_board().expect("board");
        let path = workspace_root().join("protection-domains/bench/systems/kv.xml");
        let xml = std::fs::read_to_string(&path).expect("kv.xml");
        let checked = atoll_tool::check(&xml, board, false);
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
        let system = checked.system.expect("a system");
        assert_eq!(system.protection_domains.len(), 3);
        assert_eq!(system.replicas.len(), 2);
    }

    #[test]
    fn the_figures_are_read_from_bench_kv_lines() {
        let serial = "bench_kv: BENCH kv PUT 4 KiB durable: 250123.45 instructions, 300000 ns virtual time, over 1000 rounds\n\
                      bench_kv: BENCH kv GET 4 KiB: 90000.00 instructions, 100000 ns virtual time, over 1000 rounds\n";
        assert_eq!(bench_instructions(serial, PUT), Some(250_123.45));
        assert_eq!(bench_instructions(serial, GET), Some(90_000.0));
    }
}
