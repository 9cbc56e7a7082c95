//! The real-time PD's window lines, as the tests and the benchmarks read them from the
//! serial log, two per window: `rt: window N: P periods, M missed, S skipped; jitter ns MIN
//! MEAN P99 P99.9 MAX; response ns (the same); path ns MEAN MAX`, then `rt: window N core:
//! foreign F max F; lock waits W ns T max T; broadcasts B max B; entries E`.

/// One window's line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowLine {
    /// The window's number (1 for the first).
    pub index: u64,
    /// Periods whose job ran.
    pub periods: u64,
    /// Jobs that ended after their deadline.
    pub missed: u64,
    /// Releases skipped.
    pub skipped: u64,
    /// Release jitter in ns: min, mean, p99, p99.9, max.
    pub jitter: [u64; 5],
    /// Response time in ns: min, mean, p99, p99.9, max.
    pub response: [u64; 5],
    /// The kernel path in ns (from the kernel taking the timer's interrupt to the job's
    /// start): mean, max.
    pub path: (u64, u64),
    /// Interrupts foreign to the core, and the most in one period.
    pub foreign_irqs: (u64, u64),
    /// Lock waits, their ns, and the most ns in one period.
    pub lock_waits: (u64, u64, u64),
    /// Broadcast maintenance on the chip, and the most in one period.
    pub broadcasts: (u64, u64),
    /// Kernel entries on the core.
    pub kernel_entries: u64,
}

/// What starts a window's line.
pub const MARKER: &str = "rt: window ";

impl WindowLine {
    /// Reads a window's two lines (`timing`, then `core`); `None` if they are not a whole
    /// pair of the same window.
    pub fn parse(timing: &str, core: &str) -> Option<WindowLine> {
        let numbers = |line: &str, marker: &str| -> Option<Vec<u64>> {
            let text = line.split_once(marker)?.1;
            Some(
                text.split_whitespace()
                    .map(|t| t.trim_matches(|c| ",;:".contains(c)))
                    .filter_map(|t| t.parse().ok())
                    .collect(),
            )
        };
        let t = numbers(timing, MARKER)?;
        if core
            .split_once(MARKER)?
            .1
            .split_once(' ')?
            .1
            .starts_with("core:")
        {
            let c = numbers(core, MARKER)?;
            let [
                index,
                periods,
                missed,
                skipped,
                j0,
                j1,
                j2,
                j3,
                j4,
                r0,
                r1,
                r2,
                r3,
                r4,
                pm,
                px,
            ] = t.as_slice().try_into().ok()?;
            let [same, f, fm, lw, lns, lmax, b, bm, e] = c.as_slice().try_into().ok()?;
            if same != index {
                return None;
            }
            return Some(WindowLine {
                index,
                periods,
                missed,
                skipped,
                jitter: [j0, j1, j2, j3, j4],
                response: [r0, r1, r2, r3, r4],
                path: (pm, px),
                foreign_irqs: (f, fm),
                lock_waits: (lw, lns, lmax),
                broadcasts: (b, bm),
                kernel_entries: e,
            });
        }
        None
    }

    /// Every whole window of a serial log, in order (a timing line followed, at once or
    /// later, by its window's core line).
    pub fn all(serial: &str) -> Vec<WindowLine> {
        let lines: Vec<&str> = serial.lines().filter(|l| l.contains(MARKER)).collect();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, timing)| {
                lines
                    .get(i + 1..)?
                    .iter()
                    .take(4)
                    .find_map(|core| WindowLine::parse(timing, core))
            })
            .collect()
    }

    /// Whether every period met its deadline and none was skipped.
    pub fn on_time(&self) -> bool {
        self.missed == 0 && self.skipped == 0
    }
}

/// The highest window index in `serial` (0: none yet).
pub fn last_index(serial: &str) -> u64 {
    WindowLine::all(serial).last().map_or(0, |w| w.index)
}

/// Waits up to `timeout` for window `index` in what `qemu` prints; why not, if it does not
/// come (QEMU stopped, or the time ran out).
pub fn wait_for(
    qemu: &mut atoll_runner::Running,
    index: u64,
    timeout: std::time::Duration,
) -> Result<WindowLine, String> {
    let until = std::time::Instant::now() + timeout;
    loop {
        if let Some(w) = WindowLine::all(&qemu.serial())
            .into_iter()
            .find(|w| w.index == index)
        {
            return Ok(w);
        }
        if !qemu.is_running() {
            return Err(format!("QEMU stopped before window {index}"));
        }
        if std::time::Instant::now() > until {
            return Err(format!("no window {index} within {timeout:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: &str = "rt: window 3: 10000 periods, 1 missed, 2 skipped; jitter ns 48 60 79 95 112; response ns 900 950 1023 1100 2000; path ns 610 640";
    const CORE: &str = "rt: window 3 core: foreign 4 max 1; lock waits 5 ns 600 max 300; broadcasts 7 max 2; entries 40000";

    #[test]
    fn a_window_reads_back() {
        let w = WindowLine::parse(&format!("MON1|{TIMING}"), CORE).unwrap();
        assert_eq!((w.index, w.periods, w.missed, w.skipped), (3, 10_000, 1, 2));
        assert_eq!(w.jitter, [48, 60, 79, 95, 112]);
        assert_eq!(w.response, [900, 950, 1023, 1100, 2000]);
        assert_eq!(w.path, (610, 640));
        assert_eq!(w.foreign_irqs, (4, 1));
        assert_eq!(w.lock_waits, (5, 600, 300));
        assert_eq!(w.broadcasts, (7, 2));
        assert_eq!(w.kernel_entries, 40_000);
        assert!(!w.on_time());
    }

    #[test]
    fn a_cut_or_unmatched_line_is_no_window() {
        assert_eq!(WindowLine::parse(&TIMING[..TIMING.len() - 4], CORE), None);
        assert_eq!(WindowLine::parse(TIMING, &CORE[..CORE.len() - 6]), None);
        assert_eq!(
            WindowLine::parse(TIMING, &CORE.replace("window 3", "window 4")),
            None
        );
        assert_eq!(WindowLine::parse(TIMING, TIMING), None);
        let log = format!("x\n{TIMING}\nio: hello\n{CORE}\n{TIMING}\n");
        assert_eq!(
            WindowLine::all(&log).len(),
            1,
            "the second has no core line yet"
        );
    }
}
