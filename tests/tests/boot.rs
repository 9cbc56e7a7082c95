//! End-to-end boot tests: real images under QEMU on every board, checked by their serial
//! log and exit status. `cargo xtask test` builds the images and sets `ATOLL_E2E_IMAGES`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use atoll_boards::QemuMachine;
use atoll_e2e::boot::{Boot, image_of, images};
use atoll_e2e::fuzz::{FUZZ_END, fuzz_verdict};
use atoll_e2e::variants::{self, Variant};
use atoll_runner::{Outcome, target_dir};

/// Boots the `variant` image built by `cargo xtask test` for `board`, which must power off
/// by itself with status 0 and print only whole lines.
fn self_test(board: &str, variant: &Variant) -> Outcome {
    let outcome = Boot::variant(board, variant).run();
    check(
        &outcome,
        outcome.exit_code() == Some(0),
        "QEMU did not power off by itself with status 0",
    );
    check_lines_whole(&outcome);
    outcome
}

/// Fails the test with the reason and the saved serial log's path.
fn check(outcome: &Outcome, ok: bool, what: &str) {
    assert!(
        ok,
        "{what}\nserial log saved at {}\n----\n{}",
        outcome.log_path.display(),
        outcome.serial
    );
}

/// No check failed and no kernel stopped: otherwise `what` went wrong.
fn check_nothing_failed(outcome: &Outcome, what: &str) {
    check(
        outcome,
        !outcome.serial.contains("FAILED") && !outcome.serial.contains("FATAL"),
        what,
    );
}

/// The guest's whole output lines. A last line without its newline is left out: QEMU was
/// stopped while a replica printed it (the harness stops QEMU once it has seen its `until`
/// texts, and another replica may be in the middle of a line then), so it is not the
/// guest's to judge.
fn guest_lines(outcome: &Outcome) -> Vec<&str> {
    let guest = outcome
        .serial
        .split("\n--- qemu stderr ---")
        .next()
        .unwrap_or("");
    let whole = guest.rfind('\n').map_or("", |end| &guest[..end]);
    whole.lines().filter(|l| !l.is_empty()).collect()
}

/// A line QEMU was stopped in the middle of is not a guest line; every whole one is, also
/// with QEMU's stderr appended.
#[test]
fn a_line_cut_off_by_stopping_qemu_is_not_judged() {
    let outcome = |serial: &str| Outcome {
        status: None,
        serial: serial.to_string(),
        log_path: PathBuf::new(),
        elapsed: std::time::Duration::ZERO,
        first_output: None,
        until_seen: None,
    };
    let cut = outcome("K0|INFO: up\nMON1|INFO: done\nK0|INFO:");
    assert_eq!(guest_lines(&cut), ["K0|INFO: up", "MON1|INFO: done"]);
    let whole = outcome("K0|INFO: up\nio: hello\n\n--- qemu stderr ---\nqemu: warning\n");
    assert_eq!(guest_lines(&whole), ["K0|INFO: up", "io: hello"]);
    let cut_before_stderr = outcome("K0|INFO: up\nK1|IN\n--- qemu stderr ---\nqemu: x\n");
    assert_eq!(guest_lines(&cut_before_stderr), ["K0|INFO: up"]);
}

/// Every line carries exactly one source prefix and a level, or is a PD's own debug output
/// with none: nothing interleaved mid-line.
fn check_lines_whole(outcome: &Outcome) {
    for line in guest_lines(outcome) {
        let (source, rest) = line.split_once('|').unwrap_or(("", ""));
        let numbered = |prefix: &str| {
            source
                .strip_prefix(prefix)
                .is_some_and(|n| n.parse::<u8>().is_ok())
        };
        let known_source = source == "LDR" || numbered("K") || numbered("MON");
        let level_ok = ["INFO: ", "WARN: ", "ERROR: ", "FATAL: "]
            .iter()
            .any(|l| rest.starts_with(l));
        let prefixes = line.matches("|INFO: ").count()
            + line.matches("|WARN: ").count()
            + line.matches("|ERROR: ").count()
            + line.matches("|FATAL: ").count();
        let system_line = known_source && level_ok && prefixes == 1;
        let pd_line = !known_source && prefixes == 0;
        check(
            outcome,
            system_line || pd_line,
            &format!("malformed or interleaved log line: {line:?}"),
        );
    }
}

fn position(outcome: &Outcome, needle: &str) -> usize {
    let at = outcome.serial.find(needle);
    check(
        outcome,
        at.is_some(),
        &format!("missing from the log: {needle:?}"),
    );
    at.unwrap_or(0)
}

/// Where `needle` first appears at or after byte `from` of the log.
fn position_after(outcome: &Outcome, from: usize, needle: &str) -> usize {
    let at = outcome
        .serial
        .get(from..)
        .and_then(|rest| rest.find(needle));
    check(
        outcome,
        at.is_some(),
        &format!("missing from the log after byte {from}: {needle:?}"),
    );
    at.map_or(0, |a| from + a)
}

/// Ticks reported for replica `k` in the summary line that contains `which`.
fn summary_ticks(outcome: &Outcome, which: &str, k: usize) -> u64 {
    let line = guest_lines(outcome)
        .into_iter()
        .find(|l| l.contains(which))
        .unwrap_or("");
    let field = format!("K{k} ");
    let part = line
        .split(['|', ':'])
        .find(|p| p.trim_start().starts_with(&field))
        .unwrap_or("");
    part.split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            check(
                outcome,
                false,
                &format!("no tick count for K{k} in the {which:?} summary"),
            );
            0
        })
}

fn normal_boot(board: &str) {
    check_normal_boot(board, &Boot::variant(board, &variants::BOOT).run());
}

fn check_normal_boot(board: &str, outcome: &Outcome) {
    check_boot_of(
        board,
        outcome,
        [&["net_driver", "io"], &["rt"], &["storage", "blk_driver"]],
    );
}

/// [`check_normal_boot`] for the default system with other PDs on its replicas (`pds`,
/// replica by replica, in the order each replica starts them).
fn check_boot_of(board: &str, outcome: &Outcome, pds: [&[&str]; 3]) {
    check(
        outcome,
        outcome.exit_code() == Some(0),
        "QEMU did not power off by itself with status 0",
    );
    check_lines_whole(outcome);
    for line in guest_lines(outcome) {
        check(
            outcome,
            !line.contains("|WARN: ") && !line.contains("|ERROR: ") && !line.contains("|FATAL: "),
            &format!("unexpected problem: {line}"),
        );
    }
    position(outcome, &format!("LDR|INFO: Atoll loader on {board}"));
    position(outcome, "LDR|INFO: image ok:");
    // The loader asked the firmware (QEMU's PSCI) for its version before relying on it.
    position(outcome, "LDR|INFO: PSCI ");
    position(outcome, "K0|INFO: up on cores {0}");
    position(outcome, "K1|INFO: up on cores {1}");
    position(outcome, "K2|INFO: up on cores {2,3}");
    let summary = position(outcome, "K0|INFO: multikernel (all replicas settled");
    position(outcome, "K0 up {0} ticks");
    position(outcome, "K1 up {1} ticks");
    position(outcome, "K2 up {2,3} ticks");
    let start = position(outcome, "K0|INFO: ping ring: sending to K1");
    let hop1 = position(outcome, "K1|INFO: ping from K0, passing to K2");
    position(outcome, "K2|INFO: ping from K1, passing to K0");
    let done = position(outcome, "K0|INFO: ping ring complete: K0 -> K1 -> K2 -> K0");
    // Replica 0 prints its own lines at once and the others' when it drains their log
    // rings, so lines of two other replicas, or another replica's line and a later one of
    // replica 0, may come out in either order. What is ordered: replica 0's own lines, and
    // K1's hop after the line replica 0 printed before ringing it. The completion line
    // shows that the ping came back from K2.
    check(
        outcome,
        summary < start && start < hop1 && start < done,
        "the ping ring happened out of order",
    );
    let off = position(outcome, "K0|INFO: boot checks done; powering off");
    // Test images power off only once every PD has started, and that is logged first. (The
    // PDs' own lines need not come before it: other replicas' output reaches the console
    // through the log ring, later.)
    let started = position(
        outcome,
        "K0|INFO: every PD started and waiting for events at ",
    );
    check(
        outcome,
        started < off,
        "'every PD started' was not logged before power-off",
    );
    // Every replica's initialiser runs in user space and starts its PDs there; the storage
    // replica runs one on each of its cores, `storage` on core 2 and `blk_driver` on core 3.
    for (replica, pds) in pds.iter().enumerate() {
        position(
            outcome,
            &format!("MON{replica}|INFO: initialiser running at EL0"),
        );
        position(
            outcome,
            &format!(
                "MON{replica}|INFO: started {} PDs: {}",
                pds.len(),
                pds.join(", ")
            ),
        );
        for pd in *pds {
            position(outcome, &format!("{pd}: running at EL0"));
        }
    }
    // The two storage PDs' start-up handshake: `blk_driver` set up the block queues and
    // told `storage`, which found that the test boots no disk and says so.
    position(
        outcome,
        "storage: no disk: the key-value store is unavailable",
    );
}

/// A PD that owns the core's physical timer (IRQ 30, a per-core interrupt) programs it from
/// EL0 and gets each of its interrupts: the interrupt benchmark PD sets it 10,100 times,
/// acknowledging each interrupt, and reports only after the last one.
fn pd_timer(board: &str) {
    let outcome = Boot::variant(board, &variants::PD_TIMER)
        .until(&["bench_irq: BENCH interrupt to PD: "])
        .run();
    position(&outcome, "MON0|INFO: started 1 PDs: bench_irq");
    position(&outcome, "over 10000 rounds");
    check(
        &outcome,
        !outcome.serial.contains("|ERROR") && !outcome.serial.contains("irq_ack failed"),
        "the timer PD faulted or could not acknowledge its interrupt",
    );
}

/// The same PD on core 3, the second core of its replica
/// (`tests/systems/pd-timer-second-core.xml`): it programs core 3's timer, the kernel
/// enables the interrupt on core 3 when the PD acknowledges it there, and core 3 takes
/// and delivers each one. A kernel that served device interrupts only on a replica's first
/// core (and enabled the timer's there) never woke the PD.
fn pd_timer_second_core(board: &str) {
    let outcome = Boot::variant(board, &variants::PD_TIMER_SECOND_CORE)
        .until(&["bench_irq: BENCH interrupt to PD: "])
        .stop_on(&["unexpected interrupt"])
        .run();
    position(&outcome, "MON1|INFO: started 1 PDs: bench_irq");
    position(&outcome, "over 10000 rounds");
    check(
        &outcome,
        !outcome.serial.contains("|ERROR")
            && !outcome.serial.contains("irq_ack failed")
            && !outcome.serial.contains("unexpected interrupt"),
        "the timer PD faulted, could not acknowledge its interrupt, or an interrupt was dropped",
    );
}

/// The monitor reports each PD fault with the PD's name and the fault in words, restarts
/// the PD that asks for it (a bounded number of times) and stops the others; a PD of the
/// same replica and the other replica keep running.
fn monitor(board: &str) {
    let outcome = Boot::variant(board, &variants::MONITOR).run();
    check(
        &outcome,
        outcome.exit_code() == Some(0),
        "QEMU did not power off by itself with status 0",
    );
    check_lines_whole(&outcome);
    position(
        &outcome,
        "MON0|INFO: started 3 PDs: crasher, panicker, steady",
    );
    position(&outcome, "MON1|INFO: started 2 PDs: far_crasher, stray");
    let fault = "read from 0x7000000000, which its address space does not allow at pc 0x";
    let mut last = 0;
    for n in 1..=3 {
        let report = format!("MON0|ERROR: PD 'crasher' {fault}");
        let at = position_after(&outcome, last, &report);
        last = position_after(&outcome, at, &format!("restarted ({n} of 3)"));
    }
    let starts = outcome
        .serial
        .matches("crasher: starting, about to touch unmapped memory")
        .count();
    check(
        &outcome,
        starts == 4 + 1,
        &format!("crasher and far_crasher started {starts} times, not 4 + 1"),
    );
    let stopped = position(&outcome, "restarted too often, stopped");
    let panicked = position(&outcome, "MON0|ERROR: PD 'panicker' panicked at pc 0x");
    let steady = position(&outcome, "steady: still running after the others faulted");
    check(
        &outcome,
        last < stopped && stopped < panicked && panicked < steady,
        "the faults were not handled in priority order before the bystander ran",
    );
    position(&outcome, &format!("MON1|ERROR: PD 'far_crasher' {fault}"));
    // Using the runtime wrongly gets a message naming the PD and the channel, then the
    // monitor stops the PD; the kernel is undisturbed.
    let stray = position(&outcome, "stray: panicked at ");
    let stray = position_after(
        &outcome,
        stray,
        ": notify on channel 7, which is not a notification channel of this PD",
    );
    position_after(&outcome, stray, "MON1|ERROR: PD 'stray' panicked at pc 0x");
    check_nothing_failed(&outcome, "a PD went on past its fault or a kernel stopped");
    position(&outcome, "K0|INFO: boot checks done; powering off");
}

/// Boots an example system, which must print `expected` lines in order, with no PD fault.
/// A test build must then power off by itself; an example that runs on (its PDs keep
/// several replicas busy, so a test build's power-off would cut it short) is booted until
/// its last expected line.
fn example(board: &str, variant: &Variant, expected: &[&str]) {
    let outcome = if variant.runs_on {
        let last = expected.last().copied().unwrap_or_default();
        Boot::variant(board, variant).until(&[last]).run()
    } else {
        self_test(board, variant)
    };
    let outcome = &outcome;
    let mut at = 0;
    for line in expected {
        at = position_after(outcome, at, line);
    }
    let panics = |text: &str| text.matches("panicked").count();
    check(
        outcome,
        !outcome.serial.contains("|ERROR")
            && panics(&outcome.serial) == expected.iter().map(|l| panics(l)).sum::<usize>(),
        "a PD of the example faulted",
    );
}

/// The sel4-microkit compatibility suite (`protection-domains/compat/`): the API probe,
/// whose child panics through a panic hook, and the passive server that is notified and
/// called.
fn compat(board: &str) {
    let outcome = self_test(board, &variants::COMPAT_PROBE);
    let mut at = position(&outcome, "MON0|INFO: started 2 PDs: probe, hooked");
    for line in [
        "probe: 16 checks passed",
        "hooked: hook: on purpose, after setting a hook",
        "probe: child 0 faulted (Panic",
        "probe: done",
    ] {
        at = position_after(&outcome, at, line);
    }
    check(
        &outcome,
        !outcome.serial.contains("panicked") && !outcome.serial.contains("|ERROR"),
        "the hook did not replace the panic message, or a PD faulted to the monitor",
    );
    // Domains: the worker, of lower priority, runs in its domain's 2 ms slots although
    // the spinner never stops; it sees the spinner's slots as gaps in time.
    let outcome = Boot::variant(board, &variants::COMPAT_DOMAINS)
        .until(&["domain_worker: gaps of "])
        .run();
    // The spinner's line and the worker's report may come in either order: on a loaded
    // host, QEMU can let the spinner's slots pass before it has run far enough to print.
    position(&outcome, "domain_spinner: spinning for ever");
    let at = position(
        &outcome,
        "domain_worker: ran in 4 slots of its domain while a higher-priority PD spins in another",
    );
    position_after(&outcome, at, "domain_worker: gaps of ");
    check_nothing_failed(&outcome, "a PD of the domains example faulted");
    example(
        board,
        &variants::COMPAT_PASSIVE,
        &[
            "MON0|INFO: started 2 PDs: passive_client, passive_server",
            "passive_server: ready (passive: true)",
            "MON0|INFO: PD 'passive_server' finished init and is passive",
            "passive_client: round 1: notified back, then the call answered 2",
            "passive_client: round 2: notified back, then the call answered 4",
            "passive_client: round 3: notified back, then the call answered 6",
            "passive_client: the passive server answered 3 notifications and 3 calls",
        ],
    );
}

fn examples(board: &str) {
    example(
        board,
        &variants::EXAMPLE_HELLO,
        &["MON0|INFO: started 1 PDs: hello", "hello: hello, world"],
    );
    example(
        board,
        &variants::EXAMPLE_PINGPONG,
        &[
            "MON0|INFO: started 2 PDs: ping, pong",
            "ping: sending 100 pings",
            "ping: 100 round trips done",
        ],
    );
    example(
        board,
        &variants::EXAMPLE_PPC,
        &[
            "MON0|INFO: started 3 PDs: client, server, active_server",
            "server: ready",
            "MON0|INFO: PD 'server' finished init and is passive",
            "active_server: ready",
            "client: passive server added 6 values: 21 (label 0, 1 register)",
            "client: passive server answered an unknown operation with label 1",
            "client: active server added 6 values: 42 (label 0, 1 register)",
            "client: active server answered an unknown operation with label 1",
        ],
    );
    example(
        board,
        &variants::EXAMPLE_PARENT,
        &[
            "MON0|INFO: started 2 PDs: parent, child",
            "child: run 1: reading unmapped memory on purpose",
            "parent: child 0 read from 0x1000, which its address space does not allow at pc 0x",
            "; restarting it (1 of 3)",
            "child: panicked at protection-domains/examples/src/bin/child.rs:",
            "run 2: panicking on purpose",
            "parent: child 0 panicked at pc 0x",
            "; restarting it (2 of 3)",
            "child: run 3: getting through",
            "parent: the child got through after 2 restarts",
        ],
    );
    example(
        board,
        &variants::EXAMPLE_PINGPONG_CROSS,
        &[
            "MON0|INFO: started 1 PDs: ping",
            "ping: sending 100 pings",
            "ping: 100 round trips done",
        ],
    );
    example(
        board,
        &variants::EXAMPLE_TEMPLATE,
        &["MON0|INFO: started 1 PDs: template", "template: ready"],
    );
}

/// The UART receive driver example: what is typed into the PL011 reaches the driver PD
/// through its receive interrupt, acknowledged after every drain, and comes out as lines.
/// The input is longer than the receive FIFO, so it takes many interrupts.
#[test]
fn qemu_virt_aarch64_the_uart_driver_receives_typed_lines() {
    let board = "qemu_virt_aarch64";
    uart_driver_receives_typed_lines(Boot::variant(board, &variants::EXAMPLE_UART));
}

/// The same under Microkit's QEMU command line, whose `virt` has a GICv2: the UART's shared
/// interrupt reaches the driver there too (Atoll owns the GICv2's groups there and puts its
/// interrupts in the group it enables).
#[test]
fn qemu_virt_aarch64_the_uart_driver_receives_typed_lines_through_a_gicv2() {
    let board = "qemu_virt_aarch64";
    let boot = Boot::image(
        board,
        "example-uart-gicv2",
        image_of(board, &variants::EXAMPLE_UART),
    )
    .microkit_virt();
    uart_driver_receives_typed_lines(boot);
}

fn uart_driver_receives_typed_lines(boot: Boot) {
    let long = "x".repeat(100);
    let input = format!("hello, atoll\r\nsecond line\n{long}\nlast\n");
    let outcome = boot
        .typing(input.as_bytes())
        .until(&["uart_driver: line 4: last"])
        .run();
    let mut at = position(&outcome, "MON0|INFO: started 1 PDs: uart_driver");
    for line in [
        "uart_driver: listening",
        "uart_driver: line 1: hello, atoll",
        "uart_driver: line 2: second line",
        &format!("uart_driver: line 3: {}...", &long[..80]),
        "uart_driver: line 4: last",
    ] {
        at = position_after(&outcome, at, line);
    }
    check(
        &outcome,
        !outcome.serial.contains("|ERROR") && !outcome.serial.contains("receive error"),
        "the driver faulted or saw a receive error",
    );
}

/// The upstream-style serial driver and client: typed lines come back as `echo: <LINE>`,
/// written by the driver from what the client queued in the shared ring.
#[test]
fn qemu_virt_aarch64_the_upstream_style_serial_pair_echoes_typed_lines() {
    let board = "qemu_virt_aarch64";
    let long = "y".repeat(90);
    // Thirty more lines than the rings hold messages, so both rings wrap and a slow
    // client makes the driver hold input back rather than drop it.
    let many: Vec<String> = (0..30)
        .map(|i| format!("line {i:02} {}", "z".repeat(40)))
        .collect();
    let input = format!("hello, atoll\r\n{long}\n{}\nlast one\n", many.join("\n"));
    let outcome = Boot::variant(board, &variants::COMPAT_SERIAL)
        .typing(input.as_bytes())
        .until(&["echo: LAST ONE"])
        .run();
    let mut at = position(
        &outcome,
        "MON0|INFO: started 2 PDs: serial_driver, serial_client",
    );
    let mut expected = vec![
        "echo: HELLO, ATOLL".to_string(),
        format!("echo: {}", "Y".repeat(80)),
    ];
    expected.extend(many.iter().map(|l| format!("echo: {}\n", l.to_uppercase())));
    expected.push("echo: LAST ONE".into());
    for line in &expected {
        at = position_after(&outcome, at, line);
    }
    check(
        &outcome,
        !outcome.serial.contains(&"Y".repeat(81)),
        "a line longer than the client keeps was not cut at 80 bytes",
    );
    check_nothing_failed(&outcome, "a PD of the serial pair faulted");
}

/// The lines a healthy run of `tests/systems/cross.xml` ends with.
const CROSS_DONE: [&str; 3] = [
    "fanin: flood over: channel 60 delivered ",
    "producer: sent 2000 messages",
    "consumer: received 2000 messages",
];

/// Cross-replica channels (`tests/systems/cross.xml`): 60 channels crossing between two
/// replicas all delivered; a flood while the receiver is slow loses no coalesced bit; a
/// stream through a ring in a shared region arrives whole (same checksum on both sides).
fn cross_replica_channels(board: &str) {
    let mut until = CROSS_DONE.to_vec();
    until.extend([
        "prober: 50 notifies delivered",
        "victim: notified on {0}",
        // The kernels report the traffic once it has been quiet for a second: prober's
        // 50 notifies, all delivered.
        "channel traffic K0 -> K2: dropped 0, sent 50, ",
    ]);
    let outcome = Boot::variant(board, &variants::CROSS).until(&until).run();
    check_cross(&outcome);
    position(&outcome, "victim: notified on {0}");
    position(&outcome, "prober: 50 notifies delivered");
    // The kernels counted the traffic on the status page: fanout's channels and flood and
    // producer's ring from a to b, prober's notifies from a to c, in the report that shows
    // all 50 of those. Notifies coalesce until the receiver takes them: received is at
    // most sent.
    let report = position(&outcome, "channel traffic K0 -> K2: dropped 0, sent 50, ");
    let (sent, received, dropped) = traffic(&outcome, report, 0, 2);
    check(
        &outcome,
        sent == 50 && (1..=50).contains(&received) && dropped == 0,
        "the a -> c traffic was not counted",
    );
    // The same report's a -> b line, just before.
    let block = outcome.serial[..report]
        .rfind("channel traffic K0 -> K1: ")
        .unwrap_or(report);
    let (sent, received, dropped) = traffic(&outcome, block, 0, 1);
    check(
        &outcome,
        sent >= 1 && (1..=sent).contains(&received) && dropped == 0,
        "the a -> b traffic was not counted",
    );
}

/// The traffic the boot replica reported from replica `from` to `to`, in its first report
/// at or after byte `after` of the log: sent, received and dropped notifies (`channel
/// traffic K0 -> K1: dropped 0, sent 62, received 9`).
fn traffic(outcome: &Outcome, after: usize, from: usize, to: usize) -> (u64, u64, u64) {
    let at = position_after(
        outcome,
        after,
        &format!("channel traffic K{from} -> K{to}: "),
    );
    let line = outcome.serial[at..].lines().next().unwrap_or("");
    let count = |what: &str| {
        line.split(", ")
            .find_map(|part| {
                part.rsplit_once(&format!("{what} "))
                    .map(|(_, n)| n.to_string())
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    (count("sent"), count("received"), count("dropped"))
}

/// With replica c stopped on purpose, a notify towards its PD is a no-op the sender is
/// told about, and everything between the other replicas still works.
fn cross_replica_peer_down(board: &str) {
    // The prober's first notify that finds replica 2 down. Usually its first, but the
    // prober may start before replica 2 has stopped (the cores run in host time), and the
    // notifies before that are delivered: which attempt it is does not matter, only that
    // the sender is told and carries on.
    let mut until = CROSS_DONE.to_vec();
    // The prober stops at the first notify refused: the report after it shows that one.
    until.extend(["prober: notify ", "channel traffic K0 -> K2: dropped 1, "]);
    let outcome = Boot::variant(board, &variants::CROSS_DOWN)
        .until(&until)
        .run();
    // The refused notify was counted as dropped (those before replica c stopped, if any,
    // as sent), and nothing was received.
    let report = position(&outcome, "channel traffic K0 -> K2: dropped 1, ");
    let (_, received, dropped) = traffic(&outcome, report, 0, 2);
    check(
        &outcome,
        dropped == 1 && received != u64::MAX,
        "the notify towards the stopped replica was not counted as dropped",
    );
    position(&outcome, "K0|ERROR: K2 is down");
    let told = position(&outcome, "prober: notify ");
    check(
        &outcome,
        outcome.serial[told..].lines().next().is_some_and(|line| {
            line.ends_with(
                ": the notification on channel 0 was not delivered: the peer's replica is \
                 down; carrying on",
            )
        }),
        "the prober was not told that the peer's replica is down",
    );
    check_cross(&outcome);
    check(
        &outcome,
        !outcome.serial.contains("victim:"),
        "the stopped replica's PD ran",
    );
}

/// What both cross-replica runs check.
fn check_cross(outcome: &Outcome) {
    let spread = position(outcome, "fanin: all 60 channels delivered");
    let flood = position_after(outcome, spread, "fanin: flood over: channel 60 delivered ");
    position_after(outcome, flood, "; no bit lost");
    let figure = |who: &str| {
        let at = position(outcome, &format!("{who} 2000 messages, "));
        outcome.serial[at..]
            .lines()
            .next()
            .unwrap_or("")
            .split(", ")
            .skip(1)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (sent, received) = (figure("producer: sent"), figure("consumer: received"));
    check(
        outcome,
        !sent.is_empty() && sent == received,
        &format!("the stream arrived changed: sent {sent:?}, received {received:?}"),
    );
    check(
        outcome,
        !outcome.serial.contains("FAILED") && !outcome.serial.contains("panicked"),
        "a cross-replica test PD failed",
    );
}

fn fault_isolation(board: &str) {
    let outcome = self_test(board, &variants::FAULT);
    position(
        &outcome,
        "K2|FATAL: data abort (EC 0x25): translation fault at level 1 on a read FAR 0xffffffee00000000 ELR 0xffffffff",
    );
    position(&outcome, "on core 2 of replica 2; replica stopped");
    position(&outcome, "K0|ERROR: K2 is down: data abort (EC 0x25)");
    position(&outcome, "K2 down {} ticks");
    position(&outcome, "K1|WARN: cannot pass the ping: K2 is down");
    position(&outcome, "K0|WARN: ping ring broken after K1: K2 is down");
    check(
        &outcome,
        outcome
            .serial
            .contains("MON0|INFO: initialiser running at EL0")
            && outcome
                .serial
                .contains("MON1|INFO: initialiser running at EL0")
            && !outcome.serial.contains("MON2|"),
        "initialisers: K0 and K1 should run theirs, stopped K2 not",
    );
    check(
        &outcome,
        !outcome.serial.contains("K2|INFO: up on"),
        "the faulting replica reported up",
    );
    // The other replicas keep running: their tick counts grow after K2 stopped.
    let settled = (
        summary_ticks(&outcome, "all replicas settled", 0),
        summary_ticks(&outcome, "all replicas settled", 1),
    );
    let last = (
        summary_ticks(&outcome, "final status", 0),
        summary_ticks(&outcome, "final status", 1),
    );
    check(
        &outcome,
        last.0 > settled.0 && last.1 > settled.1,
        &format!("K0/K1 stopped ticking: {settled:?} then {last:?}"),
    );
    check(
        &outcome,
        summary_ticks(&outcome, "final status", 2)
            == summary_ticks(&outcome, "all replicas settled", 2),
        "K2 kept ticking after it stopped",
    );
}

fn damaged_image(board: &str) {
    let good = std::fs::read(image_of(board, &variants::BOOT)).expect("boot image built");
    let start = good
        .windows(8)
        .position(|w| w == b"ATOLLIMG")
        .expect("image proper present");
    let mut bad = good.clone();
    bad[start + 0x2000] ^= 0x55;
    let path = target_dir()
        .join("e2e-logs")
        .join(format!("{board}-damaged.img"));
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("log dir");
    std::fs::write(&path, &bad).expect("write damaged image");
    let outcome = Boot::image(board, "damaged", path).run();
    check(
        &outcome,
        outcome.exit_code() == Some(3),
        "the loader did not refuse the image with status 3",
    );
    position(
        &outcome,
        "LDR|ERROR: refusing to boot: image checksum mismatch",
    );
    position(&outcome, "the image is damaged");
    check(
        &outcome,
        !outcome.serial.contains("K0|"),
        "a kernel ran from a damaged image",
    );
}

/// Replica 1's initialiser builds threads from untyped memory and exercises the kernel's
/// API, hostile cases included; each fault reaches it as a message, and the other replicas
/// are undisturbed.
fn kernel_api(board: &str) {
    let outcome = Boot::variant(board, &variants::API)
        .until(&["kernel API self-test"])
        .run();
    for expected in [
        "MON1|INFO: TEST retyping more than the untyped holds: not enough memory",
        "MON1|INFO: TEST retyping into an occupied slot: delete first",
        "MON1|INFO: TEST mapping over an existing mapping: delete first",
        "MON1|INFO: TEST claiming a per-core interrupt: range error",
        "MON1|INFO: fault from thread 1 (invoking an empty slot): invoked a capability it does not hold (address 0x3e8)",
        "MON1|INFO: TEST invoking an empty slot",
        "MON1|INFO: fault from thread 2 (sending without the write right): invoked a capability it does not hold",
        "MON1|INFO: fault from thread 3 (touching unmapped memory): read from 0x6000000000, which its address space does not allow",
        "MON1|INFO: fault from thread 4 (an undefined instruction): raised an undefined instruction",
        "MON1|INFO: TEST call and reply carry the badge and message registers",
        "MON1|INFO: fault from thread 5 (writing the PMU control register): raised an undefined instruction",
        "MON1|INFO: TEST writing the PMU control register",
        "MON1|INFO: TEST signal and wait ping-pong",
        "MON1|INFO: TEST a spinning high-priority thread keeps to its budget",
        // The hostile cases that need an initialiser's authority.
        "MON1|INFO: TEST retyping an unknown object kind: invalid argument",
        "MON1|INFO: TEST retyping past the end of the CNode: range error",
        "MON1|INFO: TEST mapping a frame at a kernel address: invalid argument",
        "MON1|INFO: TEST mapping a page table above user space: invalid argument",
        "MON1|INFO: TEST copying an unmapped page table: illegal operation",
        "MON1|INFO: TEST binding a notification through a send-only capability: illegal operation",
        "MON1|INFO: TEST watching a channel word for a receive-only notification: invalid capability",
        "MON1|INFO: TEST binding a scheduling context to a notification without the receive right: invalid capability",
        "MON1|INFO: TEST a fault handler that cannot be replied through: invalid capability",
        "MON1|INFO: TEST an IPC buffer the thread may not write: illegal operation",
        "MON1|INFO: TEST configuring a doorbell through a badged copy: illegal operation",
        "MON1|INFO: TEST a priority above the authority's maximum: range error",
        "MON1|INFO: TEST a maximum priority above the authority's: range error",
        "MON1|INFO: TEST scheduling parameters above the authority's maximum: range error",
        "MON1|INFO: TEST deleting an endpoint a thread waits on: its receive fails",
        "MON1|INFO: TEST a revoked IPC buffer is gone from its thread: a long message keeps only its registers",
        "MON1|INFO: TEST unmapping a page table another capability names: revoke first",
        "MON1|INFO: TEST an unmapped page table is empty when it is linked again: a read faults",
        "MON1|INFO: TEST a thread whose pc is a kernel address: a fault",
        "MON1|INFO: TEST a thread whose stack pointer is a kernel address: a fault",
        "MON1|INFO: TEST a thread reading kernel memory: a fault",
        "MON1|INFO: TEST resuming a thread blocked in a receive: it receives again, no phantom message",
        "MON1|INFO: TEST a passive server notified and called in both orders: every call answered",
        "MON1|INFO: kernel API self-test passed (35 checks)",
        "K0|INFO: ping ring complete: K0 -> K1 -> K2 -> K0",
    ] {
        position(&outcome, expected);
    }
    check_nothing_failed(&outcome, "a check failed or a kernel stopped");
    check_lines_whole(&outcome);
}

/// The hostile PDs of `tests/systems/hostile.xml`: each attack is refused or contained, and
/// the kernels and the console go on.
fn hostile_pds(board: &str) {
    let driver = "driver: 100 calls answered and 100 notifications handled by the passive server";
    // The echo runs on the other replica, which may come up after the rest has finished:
    // its line is awaited too.
    let echo = "echo: heard the chatter on {0}";
    let firmware = "firmware: still running";
    let outcome = Boot::variant(board, &variants::HOSTILE)
        .until(&[driver, "sleeper: notified on {3}", echo, firmware])
        .run();
    // A PD allowed to call the firmware: PSCI's version query answers; the calls that
    // would switch off the machine or cores are refused, and the machine stays up.
    let mut at = position(&outcome, "firmware: PSCI_VERSION answered ");
    for line in [
        "firmware: SMCCC_VERSION answered Ok(",
        "firmware: SYSTEM_OFF: Err(IllegalOperation)",
        "firmware: CPU_OFF: Err(IllegalOperation)",
        "firmware: CPU_ON: Err(IllegalOperation)",
        firmware,
    ] {
        at = position_after(&outcome, at, line);
    }
    // A full line cut in place, the writer still running, and the other replica's line
    // printed by the console owner afterwards.
    let cut = format!("{}~", "a".repeat(atoll_abi::limits::LOG_LINE_BYTES - 1));
    let at = position(&outcome, &cut);
    let still = position_after(&outcome, at, "chatter: still here after a 1249 byte line");
    // A PD's bytes reach the console as it wrote them, but the escape byte, which could
    // change the console for every replica's lines after it.
    position_after(
        &outcome,
        still,
        "chatter: bytes \u{4}\t\u{e9} pass, an escape does not: ?[2J",
    );
    position(&outcome, echo);
    position(
        &outcome,
        "MON0|INFO: PD 'pserver' finished init and is passive",
    );
    position(&outcome, driver);
    position(
        &outcome,
        "meddler: binding my child to another PD's notification: refused (IllegalOperation)",
    );
    let waiting = position(&outcome, "sleeper: waiting");
    let resumed = position(
        &outcome,
        "meddler: resumed, suspended and resumed my waiting child: None None None",
    );
    let real = position(&outcome, "sleeper: notified on {3}");
    check(
        &outcome,
        waiting < resumed && resumed < real,
        "the child's lines are out of order",
    );
    check(
        &outcome,
        outcome.serial.matches("sleeper: notified on").count() == 1,
        "the resumed child reported a notification nobody sent",
    );
    check_nothing_failed(&outcome, "an attack succeeded or a kernel stopped");
    check_lines_whole(&outcome);
}

/// A short run of the system-call fuzzer (`cargo xtask fuzz-kernel` makes long ones): no
/// kernel fault, no lost heartbeat, no changed memory.
fn fuzz(board: &str) {
    let outcome = Boot::variant(board, &variants::FUZZ)
        .until(&[FUZZ_END])
        .run();
    // The fuzzer's default length (atoll_test_pds::fuzz::DEFAULT_CALLS).
    if let Err(e) = fuzz_verdict(&outcome.serial, 20_000) {
        check(&outcome, false, &format!("the fuzz run failed: {e}"));
    }
}

/// What a run of an SMP system stops on at once: a PD's own failure report, a fault the
/// monitor reports, a kernel stopped.
const SMP_FAILURES: [&str; 3] = ["FAILED", "|ERROR: ", "|FATAL: "];

/// PDs on both cores of one replica (`tests/systems/smp.xml`, issue 18): a notify ping-pong
/// between the replica's cores 2 and 3, 100,000 round trips; 1000 protected procedure calls
/// from core 2 to a passive server placed on core 3, every answer checked; a parent that
/// moves its child between the cores and sees it run beside it on core 3 and wait for it on
/// core 2; and a ping-pong across replicas with a PD on the second core.
fn smp(board: &str) {
    let ping = "smp_ping: 100000 round trips with smp_pong on the other core in ";
    let client = "smp_client: 1000 calls to the passive server on core 3 answered right";
    let mover = "smp_mover: moved my child 9 times between cores 2 and 3: it ran beside me \
                 in 25 rounds on core 3 and waited for me in 25 rounds on core 2";
    let moved = "smp_moved: answered all 50 notifications while moved between cores";
    let far = "smp_far: 100 round trips done";
    let outcome = Boot::variant(board, &variants::SMP)
        .timeout(std::time::Duration::from_secs(300))
        .until(&[ping, client, mover, moved, far])
        .stop_on(&SMP_FAILURES)
        .run();
    position(&outcome, "MON0|INFO: started 1 PDs: smp_far");
    position(
        &outcome,
        "MON1|INFO: started 7 PDs: smp_near, smp_ping, smp_pong, smp_client, smp_server, smp_mover, smp_moved",
    );
    let ready = position(
        &outcome,
        "MON1|INFO: PD 'smp_server' finished init and is passive",
    );
    position_after(&outcome, ready, client);
    for line in [ping, mover, moved, far] {
        position(&outcome, line);
    }
    let at = position(&outcome, ping);
    eprintln!(
        "{board}: {}",
        outcome.serial[at..].lines().next().unwrap_or_default()
    );
    check_smp_clean(&outcome);
}

/// No PD failed or faulted, and no kernel stopped.
fn check_smp_clean(outcome: &Outcome) {
    check_nothing_failed(outcome, "an SMP test PD failed or a kernel stopped");
    check(
        outcome,
        !outcome.serial.contains("|ERROR") && !outcome.serial.contains("panicked"),
        "a PD of the SMP system faulted",
    );
    check_lines_whole(outcome);
}

/// A PD spinning for ever on core 2 (`tests/systems/smp-hog.xml`), below the other PDs
/// of its core, holds up nothing on core 3: the highest-priority PD there computes and
/// prints (the checksum is the one the test computes), then makes 1000 notify round trips
/// with a PD that runs on the hog's core above it; a PD on core 3 below the hog's priority
/// runs too (on the hog's core it never would); and a PD on another replica's core makes
/// 100 round trips with a PD on the hog's core.
fn smp_hog(board: &str) {
    let computed =
        "smp_worker: computed 0x65e685e6bd8043cc on core 3 while smp_hog spins on core 2";
    let trips = "smp_worker: 1000 round trips with smp_partner on the hog's core in ";
    let low = "smp_low: notified on {3}";
    let far = "smp_far: 100 round trips done";
    let outcome = Boot::variant(board, &variants::SMP_HOG)
        .until(&[computed, trips, low, far])
        .stop_on(&SMP_FAILURES)
        .run();
    let spinning = position(&outcome, "smp_hog: spinning for ever on core 2");
    position_after(&outcome, spinning, low);
    let at = position_after(&outcome, spinning, computed);
    let at = position_after(&outcome, at, trips);
    eprintln!(
        "{board}: {}",
        outcome.serial[at..].lines().next().unwrap_or_default()
    );
    position(&outcome, far);
    check_smp_clean(&outcome);
}

/// The figures on the line `smp_budgeted` prints after its 100 periods: the counter ticks
/// it ran, the ticks the periods spanned, the ticks the lower-priority spinner ran, and
/// the counter's frequency.
fn budget_figures(outcome: &Outcome) -> [u64; 4] {
    let marker = "smp_budgeted: 100 periods: ran ";
    let at = position(outcome, marker);
    let line = outcome.serial[at..].lines().next().unwrap_or_default();
    let number = |after: &str| {
        line.split(after)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let figures = [
        number(marker),
        number(" ticks of "),
        number("the lower-priority spinner "),
        number("counter at "),
    ];
    check(
        outcome,
        figures.iter().all(Option::is_some),
        &format!("cannot read the figures of {line:?}"),
    );
    figures.map(Option::unwrap_or_default)
}

/// A spinner with a budget of 2 ms every 10 ms on core 3 of a two-core replica
/// (`tests/systems/smp-budget.xml`) gets 20% of the core, measured by itself with the
/// counter over 100 periods against the time they spanned, and a lower-priority spinner
/// on the same core gets the rest. Under `-icount`, so time is the guest's.
///
/// The tolerance: the kernel charges a budget exactly, at every kernel entry, and arms the
/// core's timer for the moment it runs out; what the spinner does not see of its budget,
/// or sees beyond it, is the time from the timer's interrupt to the switch away, and from
/// the refill to its first counter read on its way back: a kernel entry and exit each
/// period, well under `ENTRY_US` microseconds under icount (an interrupt reaches a PD in
/// about 480 instructions, `docs/performance.md`). A period starts when the spinner starts
/// to use its refilled budget (seL4's sporadic servers), one such latency after the
/// refill. So over 100 periods its time lies within 100 entries' time of 100 budgets, the
/// periods span 100 periods to within as much, and the lower-priority spinner has the rest
/// but for the kernel's switches, two a period.
fn smp_budget(board: &str) {
    const PERIODS: u64 = 100;
    const BUDGET_US: u64 = 2000;
    const PERIOD_US: u64 = 10_000;
    const ENTRY_US: u64 = 10;
    let outcome = Boot::variant(board, &variants::SMP_BUDGET)
        .icount()
        .until(&["smp_budgeted: 100 periods: "])
        .stop_on(&SMP_FAILURES)
        .run();
    let [ran, wall, background, hz] = budget_figures(&outcome);
    let us = |ticks: u64| ticks as f64 * 1e6 / hz.max(1) as f64;
    let (ran_us, wall_us, background_us) = (us(ran), us(wall), us(background));
    eprintln!(
        "{board}: the budgeted spinner ran {ran_us:.1} us of {wall_us:.1} us ({:.3}%), the \
         lower-priority one {background_us:.1} us",
        ran_us * 100.0 / wall_us
    );
    let slack = (PERIODS * ENTRY_US) as f64;
    check(
        &outcome,
        (wall_us - (PERIODS * PERIOD_US) as f64).abs() <= slack,
        &format!("the 100 periods spanned {wall_us:.1} us, not 1 s"),
    );
    check(
        &outcome,
        (ran_us - (PERIODS * BUDGET_US) as f64).abs() <= slack,
        &format!(
            "the budgeted spinner ran {ran_us:.1} us in 100 periods, not 200,000 us to within \
             {slack} us"
        ),
    );
    // The rest of the core went to the lower-priority spinner, less the kernel's switches.
    check(
        &outcome,
        ran_us + background_us <= wall_us && ran_us + background_us >= wall_us - 2.0 * slack,
        &format!("the spinners ran {ran_us:.1} us and {background_us:.1} us of {wall_us:.1} us"),
    );
    check_smp_clean(&outcome);
}

macro_rules! board_tests {
    ($($module:ident => $board:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn boots_all_replicas_and_completes_the_ping_ring() {
                super::normal_boot($board);
            }

            #[test]
            fn a_faulting_replica_stops_alone() {
                super::fault_isolation($board);
            }

            #[test]
            fn a_damaged_image_is_refused() {
                super::damaged_image($board);
            }

            #[test]
            fn the_kernel_api_works_and_hostile_threads_are_contained() {
                super::kernel_api($board);
            }

            #[test]
            fn the_monitor_names_faulting_pds_and_restarts_or_stops_them() {
                super::monitor($board);
            }

            #[test]
            fn the_example_systems_run() {
                super::examples($board);
            }

            #[test]
            fn the_sel4_microkit_compatibility_suite_runs() {
                super::compat($board);
            }

            #[test]
            fn cross_replica_channels_deliver_every_bit_and_stream_a_ring() {
                super::cross_replica_channels($board);
            }

            #[test]
            fn a_notify_towards_a_stopped_replica_is_a_no_op_the_sender_sees() {
                super::cross_replica_peer_down($board);
            }

            #[test]
            fn hostile_pds_are_refused_or_contained() {
                super::hostile_pds($board);
            }

            #[test]
            fn a_short_system_call_fuzz_run_leaves_every_kernel_and_pd_intact() {
                super::fuzz($board);
            }

            #[test]
            fn a_pd_owning_the_physical_timer_gets_its_interrupts() {
                super::pd_timer($board);
            }

            #[test]
            fn a_pd_on_a_replicas_second_core_owning_the_physical_timer_gets_its_interrupts() {
                super::pd_timer_second_core($board);
            }

            #[test]
            fn pds_run_on_both_cores_of_a_replica_notify_call_and_move() {
                super::smp($board);
            }

            #[test]
            fn a_pd_spinning_on_one_core_of_a_replica_holds_up_nothing() {
                super::smp_hog($board);
            }

            #[test]
            fn a_budget_limited_pd_gets_its_share_of_its_core() {
                super::smp_budget($board);
            }
        }
    )*};
}

/// With virtualization on, QEMU enters the loader at EL2: it must drop to EL1 and use the
/// SMC conduit for PSCI on every core.
#[test]
fn qemu_virt_aarch64_entered_at_el2() {
    let board = "qemu_virt_aarch64";
    let outcome = Boot::image(board, "el2", image_of(board, &variants::BOOT))
        .qemu_args(&["-machine", "virtualization=on"])
        .run();
    position(
        &outcome,
        "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL2)",
    );
    check_normal_boot(board, &outcome);
}

/// A boot's lines as comparable between two ways of booting the same image: sorted (other
/// replicas' lines reach the console in no fixed order), without the lines that give times
/// or tick counts, name the interrupt controller the loader found, or say what the device
/// tree (there is none under `-device loader`) and the PSCI conduit are, and with the entry
/// level and GIC version in the others made alike.
fn comparable_lines(outcome: &Outcome) -> Vec<String> {
    let mut lines: Vec<String> = guest_lines(outcome)
        .into_iter()
        .filter(|l| {
            !l.contains(" ns")
                && !l.contains(" ticks ")
                && !l.contains("interrupt controller:")
                && !l.contains("device tree")
                && !l.starts_with("LDR|INFO: PSCI ")
        })
        .map(|l| {
            l.replace("(entered at EL2)", "(entered at EL1)")
                .replace("GICv2", "GICv3")
        })
        .collect();
    lines.sort();
    lines
}

/// Microkit's QEMU command line for `qemu_virt_aarch64`, exactly as its manual gives it
/// (`-device loader` at 0x7000_0000, well above the link address 0x4008_0000, on a `virt`
/// with EL2 and QEMU's default GICv2), boots the default system as `-kernel` does on the
/// board's own `virt,gic-version=3`: the loader moves itself to its link address, finds the
/// GICv2 and gives it to every replica, and the boot prints the same lines.
#[test]
fn qemu_virt_aarch64_boots_with_microkits_qemu_command_line() {
    let board = "qemu_virt_aarch64";
    let image = image_of(board, &variants::BOOT);
    let outcome = Boot::image(board, "microkit-virt", image.clone())
        .microkit_virt()
        .stop_on(&["|ERROR: ", "|FATAL: "])
        .run();
    position(
        &outcome,
        "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL2)",
    );
    position(
        &outcome,
        "LDR|INFO: interrupt controller: GICv2 (distributor 0x8000000, CPU interface 0x8010000), \
         not the board's GICv3: every replica uses it",
    );
    for k in 0..3 {
        let line = guest_lines(&outcome)
            .into_iter()
            .find(|l| l.starts_with(&format!("K{k}|INFO: replica {k} of 3 booting")))
            .unwrap_or_default();
        check(
            &outcome,
            line.contains(", GICv2, "),
            &format!("replica {k} does not drive the GICv2: {line:?}"),
        );
    }
    check_normal_boot(board, &outcome);
    let reference = Boot::image(board, "microkit-virt-reference", image).run();
    check_normal_boot(board, &reference);
    check(
        &outcome,
        comparable_lines(&outcome) == comparable_lines(&reference),
        &format!(
            "the boot printed other lines than with -kernel (log {})",
            reference.log_path.display()
        ),
    );
}

/// The size of the image `variant` built for `board`.
fn image_size(board: &str, variant: &Variant) -> u64 {
    std::fs::metadata(image_of(board, variant))
        .expect("the image is built")
        .len()
}

/// Loaded just above where QEMU's `virt` keeps its device tree for a guest without a kernel
/// (0x4000_0000 to 0x4010_0000, which the link address 0x4008_0000 lies in: QEMU refuses to
/// load the image there, or below), an image of more than 512 KiB (the ballast system's)
/// overlaps its link address from above: the loader moves itself down over itself and boots
/// as from `-kernel`, on the board's GICv3.
#[test]
fn qemu_virt_aarch64_boots_loaded_half_a_mebibyte_above_its_link_address() {
    let board = "qemu_virt_aarch64";
    let (link, addr) = (0x4008_0000, 0x4010_0000);
    assert!(
        image_size(board, &variants::BALLAST) > addr - link,
        "the image no longer overlaps its link address from there"
    );
    let outcome = Boot::image(board, "loaded-above", image_of(board, &variants::BALLAST))
        .loaded_at(addr)
        .run();
    check(
        &outcome,
        !outcome.serial.contains("interrupt controller:"),
        "the loader did not keep the board's GICv3",
    );
    check_ballast_boot(board, &outcome);
}

/// The ballast system (`variants::BALLAST`) booted normally, its ballast intact.
fn check_ballast_boot(board: &str, outcome: &Outcome) {
    check_boot_of(
        board,
        outcome,
        [&["io", "ballast"], &["rt"], &["storage", "blk_driver"]],
    );
    position(
        outcome,
        "ballast: running at EL0, 655360 bytes of ballast intact",
    );
}

/// With an interrupt controller the board does not describe (a GICv4 here), the loader
/// refuses to boot, saying what it found, instead of hanging.
#[test]
fn qemu_virt_aarch64_an_unknown_gic_is_refused() {
    let board = "qemu_virt_aarch64";
    let outcome = Boot::image(board, "gicv4", image_of(board, &variants::BOOT))
        .machine(QemuMachine {
            machine: "virt,gic-version=4,virtualization=on",
            ..atoll_boards::QEMU_VIRT_AARCH64.qemu
        })
        .run();
    check(
        &outcome,
        outcome.exit_code() == Some(3),
        "the loader did not refuse the machine with status 3",
    );
    position(
        &outcome,
        "LDR|ERROR: refusing to boot: the interrupt distributor at 0x8000000 reports GIC \
         architecture version 4 (GICD_PIDR2); qemu_virt_aarch64 has GICv3 or GICv2",
    );
    check(&outcome, !outcome.serial.contains("K0|"), "a kernel ran");
}

/// The ZCU102's RAM starts at 0, and `-m 2G` gives `xlnx-zcu102` no more than the 2 GiB
/// Atoll uses: nothing lies above the replicas. So the image goes below its link address
/// (0x8_0000), at 0x1_0000, inside the 16 MiB the board keeps for the boot stub, loader and
/// image: the ballast system's image overlaps its link address from below and the loader
/// moves itself up over itself. Then 0x40 above the link address: a move too short to make
/// in one step (the code doing it would be overwritten), made through a place below.
#[test]
fn zcu102_boots_from_a_device_loader_below_and_just_above_its_link_address() {
    let board = "zcu102";
    assert!(image_size(board, &variants::BALLAST) > 0x8_0000 - 0x1_0000);
    for addr in [0x1_0000, 0x8_0040] {
        let label = format!("loaded-at-{addr:#x}");
        let outcome = Boot::image(board, &label, image_of(board, &variants::BALLAST))
            .loaded_at(addr)
            .run();
        check_ballast_boot(board, &outcome);
    }
}

/// `imx8mp-evk` cannot start the image from `-device loader` as it is: its Cortex-A53s
/// have EL3 and the machine has no option to remove it, so without `-kernel` QEMU starts
/// core 0 at EL3 and, as there is no firmware, turns its own PSCI off (it serves PSCI only
/// to code below EL3). The loader then has no way to start the other cores and stops at
/// EL3, saying so (`imx8mp_evk_entered_at_el3_says_it_needs_firmware`). Without EL3 (`-global cortex-a53-arm-cpu.has_el3=off`) core 0 starts at
/// EL2 with PSCI over SMC, as under `-kernel`, and the image boots from 0x8000_0000: 1 GiB
/// into RAM, in what becomes a replica's memory, which is safe because the loader writes
/// nothing outside its link address's range before it has moved there.
#[test]
fn imx8mp_evk_boots_from_a_device_loader_without_el3() {
    let board = "imx8mp_evk";
    let outcome = Boot::image(board, "loaded-no-el3", image_of(board, &variants::BOOT))
        .loaded_at(0x8000_0000)
        .qemu_args(&["-global", "cortex-a53-arm-cpu.has_el3=off"])
        .run();
    position(
        &outcome,
        "LDR|INFO: Atoll loader on imx8mp_evk (entered at EL2)",
    );
    check_normal_boot(board, &outcome);
}

/// Entered at EL3 (`imx8mp-evk` under `-device loader`, with the EL3 its cores have), the
/// loader says on the EVK's console, UART2, that it needs firmware below it, from assembly
/// with the MMU off, and stops: a test build ends QEMU with a refusal's status 3.
#[test]
fn imx8mp_evk_entered_at_el3_says_it_needs_firmware() {
    let board = "imx8mp_evk";
    let boot = Boot::image(board, "loaded-el3", image_of(board, &variants::BOOT));
    let outcome = loader_stops(boot.loaded_at(0x8000_0000), 3);
    check(
        &outcome,
        guest_lines(&outcome)
            == [
                "LDR|ERROR: entered at EL3: Atoll needs firmware (TF-A) below it; boot it from \
                 U-Boot or with QEMU's -kernel",
            ],
        "the EL3 message is not the only output",
    );
}

/// The loader faults on purpose and its exception handler, reporting it, faults again: the
/// first exception is reported as usual, the second by assembly alone (no Rust, no stack)
/// with its syndrome, return address and fault address, and the loader stops (status 4 in a
/// test build) instead of recursing or hanging.
#[test]
fn qemu_virt_aarch64_a_second_loader_exception_is_reported_without_rust() {
    let board = "qemu_virt_aarch64";
    let outcome = loader_stops(Boot::variant(board, &variants::LOADER_FAULT), 4);
    check_lines_whole(&outcome);
    let first = position(
        &outcome,
        "LDR|FATAL: loader exception (vector 4): data abort",
    );
    position_after(&outcome, first, "FAR 0x7e00000000 ELR ");
    let second = position_after(
        &outcome,
        first,
        "LDR|FATAL: exception while handling a loader exception: ESR 0x0000000096",
    );
    position_after(&outcome, second, " FAR 0x0000007f00000000; loader stopped");
}

/// Probing PSCI through a conduit nobody answers (the self-test asks for SMC on a `virt`
/// entered at EL1, which has neither EL3 nor QEMU's PSCI there: the instruction is
/// undefined), the loader refuses to boot with the reason instead of hanging.
#[test]
fn qemu_virt_aarch64_a_conduit_without_psci_is_refused() {
    let board = "qemu_virt_aarch64";
    let outcome = loader_stops(Boot::variant(board, &variants::PSCI_UNANSWERED), 3);
    position(
        &outcome,
        "LDR|ERROR: refusing to boot: no firmware answers PSCI calls: SMC is an undefined \
         instruction here; the other cores cannot be started",
    );
}

/// Boots `boot`, whose loader must stop before any kernel runs, ending QEMU (a test build,
/// with semihosting) with `status`.
fn loader_stops(boot: Boot, status: i32) -> Outcome {
    let outcome = boot.run();
    check(
        &outcome,
        outcome.exit_code() == Some(status),
        &format!("the loader did not stop with status {status}"),
    );
    check(&outcome, !outcome.serial.contains("K0|"), "a kernel ran");
    outcome
}

/// A device-tree fixture (`boards/fixtures/devicetree/`).
fn device_tree(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("boards/fixtures/devicetree")
        .join(name)
}

/// `boot` with the QEMU options that make the firmware hand `board`'s loader a device tree
/// under `-kernel`: `virt` makes its own; `xlnx-zcu102` and `imx8mp-evk` have none, and
/// pass the one given with `-dtb`, its `/memory` rewritten to the RAM they emulate.
fn with_tree(boot: Boot, board: &str) -> Boot {
    let tree = match board {
        "zcu102" => "zcu102.dtb",
        "imx8mp_evk" => "imx8mp-evk.dtb",
        _ => return boot,
    };
    boot.qemu_args(&["-dtb", &device_tree(tree).display().to_string()])
}

/// The default system's image for `board`, booted with a device tree and `memory` of RAM
/// instead of the board's.
fn boot_with_memory(board: &str, memory: &'static str) -> Outcome {
    let machine = QemuMachine {
        memory,
        ..atoll_boards::by_name(board).expect("a board").qemu
    };
    let boot = Boot::image(
        board,
        &format!("ram-{memory}"),
        image_of(board, &variants::BOOT),
    );
    with_tree(boot.machine(machine), board).run()
}

/// The loader refused the image (status 3, no kernel) with `refusal`, and `detail` after it.
fn check_refused(outcome: &Outcome, refusal: &str, detail: &str) {
    check(
        outcome,
        outcome.exit_code() == Some(3),
        "the loader did not refuse the image with status 3",
    );
    let at = position(outcome, &format!("LDR|ERROR: refusing to boot: {refusal}"));
    position_after(outcome, at, detail);
    check(outcome, !outcome.serial.contains("K0|"), "a kernel ran");
}

/// Booted with less RAM than its image needs (`memory`, which the device tree reports as
/// `reported`), the loader refuses with both named, writing nothing: status 3, no kernel,
/// no fault (the image's replicas would lie partly where no RAM is).
fn too_little_ram(board: &str, memory: &'static str, reported: &str) {
    check_refused(
        &boot_with_memory(board, memory),
        "this image needs RAM 0x",
        &format!("; the firmware reports {reported}, which does not hold replica "),
    );
}

/// With more RAM than its image needs the board boots as with its own.
fn more_ram(board: &str, memory: &'static str, reported: &str) {
    let outcome = boot_with_memory(board, memory);
    position(&outcome, &format!(" bytes): RAM {reported}"));
    check_normal_boot(board, &outcome);
}

#[test]
fn qemu_virt_aarch64_with_too_little_ram_is_refused_naming_both() {
    too_little_ram("qemu_virt_aarch64", "512M", "0x40000000-0x60000000");
}

#[test]
fn zcu102_with_too_little_ram_is_refused_naming_both() {
    too_little_ram("zcu102", "1G", "0x0-0x40000000");
}

#[test]
fn imx8mp_evk_with_too_little_ram_is_refused_naming_both() {
    too_little_ram("imx8mp_evk", "1G", "0x40000000-0x80000000");
}

#[test]
fn qemu_virt_aarch64_with_more_ram_boots() {
    more_ram("qemu_virt_aarch64", "2G", "0x40000000-0xc0000000");
}

#[test]
fn zcu102_with_more_ram_boots() {
    more_ram("zcu102", "4G", "0x0-0x100000000");
}

#[test]
fn imx8mp_evk_with_more_ram_boots() {
    more_ram("imx8mp_evk", "3G", "0x40000000-0x100000000");
}

/// A device tree that reserves memory the image's replica 1 uses (`-dtb`, on `virt`) is
/// refused, naming the reservation.
#[test]
fn qemu_virt_aarch64_memory_the_firmware_reserves_is_refused_naming_it() {
    let board = "qemu_virt_aarch64";
    let tree = device_tree("qemu-virt-reserved.dtb").display().to_string();
    let outcome = Boot::image(board, "reserved", image_of(board, &variants::BOOT))
        .qemu_args(&["-dtb", &tree])
        .run();
    position(
        &outcome,
        "LDR|INFO: device tree: 0x40000000-0x40010000 reserved (/memreserve/)",
    );
    check_refused(
        &outcome,
        "this image needs RAM 0x",
        "; the firmware reserves 0x60000000-0x60200000 \
         (/reserved-memory/secure-monitor@60000000), which overlaps replica 1's RAM ",
    );
}

/// A `prefill_bootinfo="fdt"` region holds the firmware's device tree: its PD reads the
/// magic and the size, and zeroes after the tree.
fn device_tree_region(board: &str) {
    let outcome = with_tree(Boot::variant(board, &variants::DEVICE_TREE), board).run();
    check(
        &outcome,
        outcome.exit_code() == Some(0),
        "QEMU did not power off by itself with status 0",
    );
    let copied = position(
        &outcome,
        "LDR|INFO: device tree copied to the prefill_bootinfo=\"fdt\" region at 0x",
    );
    position_after(
        &outcome,
        copied,
        "devicetree: device tree magic 0xd00dfeed, ",
    );
    check_nothing_failed(&outcome, "the device-tree PD failed");
}

#[test]
fn qemu_virt_aarch64_a_device_tree_region_holds_the_firmwares_tree() {
    device_tree_region("qemu_virt_aarch64");
}

#[test]
fn zcu102_a_device_tree_region_holds_the_firmwares_tree() {
    device_tree_region("zcu102");
}

#[test]
fn imx8mp_evk_a_device_tree_region_holds_the_firmwares_tree() {
    device_tree_region("imx8mp_evk");
}

/// Without a device tree (`xlnx-zcu102` has none of its own), the region is zeroed, with a
/// warning; with one too large for it, the loader refuses, naming both sizes.
#[test]
fn zcu102_a_device_tree_region_without_a_tree_or_too_small_for_it() {
    let board = "zcu102";
    let image = image_of(board, &variants::DEVICE_TREE);
    let outcome = Boot::image(board, "devicetree-none", image.clone()).run();
    check(
        &outcome,
        outcome.exit_code() == Some(0),
        "QEMU did not power off by itself with status 0",
    );
    position(
        &outcome,
        "LDR|WARN: no device tree to put in the prefill_bootinfo=\"fdt\" region at 0x",
    );
    position(
        &outcome,
        "devicetree: no device tree: the region is all zero",
    );
    // The zcu102 fixture padded to 576 KiB, which QEMU gives room to grow, twice its size
    // and some more: more than the region's 1 MiB, less than the 2 MiB the loader reads.
    let mut tree = std::fs::read(device_tree("zcu102.dtb")).expect("the fixture");
    let size = 0x9_0000u32;
    tree.resize(size as usize, 0);
    tree[4..8].copy_from_slice(&size.to_be_bytes());
    let path = target_dir().join("e2e-logs").join("zcu102-large.dtb");
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("log dir");
    std::fs::write(&path, &tree).expect("write the tree");
    let outcome = Boot::image(board, "devicetree-large", image)
        .qemu_args(&["-dtb", &path.display().to_string()])
        .run();
    check_refused(
        &outcome,
        "the device tree (",
        "bytes) does not fit in the prefill_bootinfo=\"fdt\" region at 0x",
    );
}

board_tests! {
    qemu_virt_aarch64 => "qemu_virt_aarch64",
    zcu102 => "zcu102",
    imx8mp_evk => "imx8mp_evk",
}

/// The `microkit` command line packs the default system from the kernel, loader and PD
/// programs that `cargo xtask build` made, byte for byte the same twice, and that image boots.
#[test]
fn qemu_virt_aarch64_microkit_tool_packs_a_bootable_image() {
    let board = "qemu_virt_aarch64";
    let env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{name} is not set: run through `cargo xtask test`"))
    };
    let (tool, system) = (env("ATOLL_MICROKIT"), env("ATOLL_SYSTEM_XML"));
    let built = images().join(board).join(variants::BOOT.name);
    let work = target_dir().join("e2e-logs").join("microkit-cli");
    let sdk = make_sdk(board, &built, &work);
    let pack = |n: u32| {
        let (image, report) = (
            work.join(format!("atoll-{n}.img")),
            work.join(format!("report-{n}/report.txt")),
        );
        let out = microkit(
            &tool,
            &system,
            board,
            &sdk,
            &built.join("pds"),
            &image,
            &["-r".as_ref(), report.as_os_str()],
        );
        assert!(
            out.status.success(),
            "microkit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (image, report)
    };
    let (image, report) = pack(1);
    let (image2, report2) = pack(2);
    let read = |p: &PathBuf| std::fs::read(p).expect("output written");
    assert_eq!(
        read(&image),
        read(&image2),
        "the same input gave different images"
    );
    for name in ["report.txt", "report.json", "system.dot"] {
        assert_eq!(
            read(&report.with_file_name(name)),
            read(&report2.with_file_name(name)),
            "{name} differs"
        );
    }
    let json = String::from_utf8(read(&report.with_file_name("report.json"))).expect("utf-8");
    for replica in ["\"io\"", "\"rt\"", "\"storage\""] {
        assert!(
            json.contains(replica),
            "report.json lacks replica {replica}"
        );
    }
    let outcome = Boot::image(board, "microkit-cli", image.clone())
        .until(&["ping ring complete"])
        .run();
    // The loader checked the image the command line packed, whatever its parts.
    position(&outcome, "LDR|INFO: image ok: ");
    position(&outcome, "K2|INFO: up on cores {2,3}");
    position(
        &outcome,
        "K0|INFO: ping ring complete: K0 -> K1 -> K2 -> K0",
    );
}

/// Runs the `microkit` command line on `system` for `board`, with the given SDK, PD program
/// directory and output image, plus `extra` arguments.
fn microkit(
    tool: &std::path::Path,
    system: &std::path::Path,
    board: &str,
    sdk: &std::path::Path,
    programs: &std::path::Path,
    image: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> std::process::Output {
    std::process::Command::new(tool)
        .arg(system)
        .args(["--board", board, "--sdk"])
        .arg(sdk)
        .arg("--search-path")
        .arg(programs)
        .arg("-o")
        .arg(image)
        .args(extra)
        .output()
        .expect("microkit runs")
}

/// An SDK directory for the `microkit` tool (`<work>/sdk/<board>/atoll-{kernel,loader}.elf`)
/// made from what `cargo xtask build` left in `built`.
fn make_sdk(board: &str, built: &std::path::Path, work: &std::path::Path) -> PathBuf {
    let sdk = work.join("sdk");
    std::fs::create_dir_all(sdk.join(board)).expect("sdk dir");
    for elf in ["atoll-kernel.elf", "atoll-loader.elf"] {
        std::fs::copy(built.join(elf), sdk.join(board).join(elf)).expect("copy ELF");
    }
    sdk
}

/// The value of `symbol` in the packed program of PD `pd` (in description order) of
/// `replica`: the PD part of the image holds the program flattened from its lowest page, so
/// the symbol sits at `address - part.vaddr`.
fn patched_bytes(image: &[u8], (replica, pd): (u32, usize), elf: &[u8], symbol: &str) -> Vec<u8> {
    use atoll_abi::image::{ImageView, PartKind};
    use object::{Object, ObjectSymbol};
    let start = image
        .windows(8)
        .position(|w| w == b"ATOLLIMG")
        .expect("image proper");
    let view = ImageView::parse(&image[start..], None).expect("valid image");
    let part = view
        .parts()
        .filter(|p| p.kind == PartKind::PdImage && p.entry.replica == replica)
        .nth(pd)
        .expect("PD part");
    let file = object::File::parse(elf).expect("ELF");
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .expect("symbol in the program");
    let at = (sym.address() - part.entry.vaddr) as usize;
    part.bytes[at..at + sym.size() as usize].to_vec()
}

/// The tool patched each PD's Microkit symbols as the plan says (checked in the real
/// programs `cargo xtask build` made), and a `setvar` naming a symbol the program lacks
/// fails with a message naming both.
#[test]
fn qemu_virt_aarch64_microkit_patches_program_symbols() {
    let board = "qemu_virt_aarch64";
    let built = images().join(board).join(variants::BOOT.name);
    let image = std::fs::read(built.join("atoll.img")).expect("image");
    let io = std::fs::read(built.join("pds").join("io.elf")).expect("io.elf");
    let rt = std::fs::read(built.join("pds").join("rt.elf")).expect("rt.elf");
    // io is the second PD of replica 0, after the network driver.
    let name = patched_bytes(&image, (0, 1), &io, "microkit_name");
    assert_eq!(&name[..3], b"io\0");
    assert!(name.iter().skip(2).all(|&b| b == 0), "name not NUL padded");
    // io notifies storage on channel 0, rt on channel 1 and the network driver on 2.
    assert_eq!(
        patched_bytes(&image, (0, 1), &io, "microkit_notifications"),
        0b111u64.to_le_bytes()
    );
    assert_eq!(
        patched_bytes(&image, (0, 1), &io, "microkit_pps"),
        0u64.to_le_bytes()
    );
    // rt's end of its channel has notify="false": it may notify nobody.
    assert_eq!(
        &patched_bytes(&image, (1, 0), &rt, "microkit_name")[..3],
        b"rt\0"
    );
    assert_eq!(
        patched_bytes(&image, (1, 0), &rt, "microkit_notifications"),
        0u64.to_le_bytes()
    );

    let tool = std::env::var_os("ATOLL_MICROKIT")
        .map(PathBuf::from)
        .expect("ATOLL_MICROKIT set by cargo xtask test");
    let work = target_dir().join("e2e-logs").join("microkit-patch");
    let sdk = make_sdk(board, &built, &work);
    let xml = work.join("system.xml");
    std::fs::write(
        &xml,
        r#"<system>
  <memory_region name="buffer" size="0x1000" />
  <protection_domain name="io" priority="10">
    <program_image path="io.elf" />
    <map mr="buffer" vaddr="0x1000_0000" setvar_vaddr="buffer_base" />
  </protection_domain>
</system>"#,
    )
    .expect("write description");
    let out = microkit(
        &tool,
        &xml,
        board,
        &sdk,
        &built.join("pds"),
        &work.join("atoll.img"),
        &["--message-format".as_ref(), "short".as_ref()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not patch symbol 'buffer_base' in 'io': not found in the program"),
        "{stderr}"
    );
    assert!(
        !work.join("atoll.img").exists(),
        "an image was written despite the error"
    );
}

/// A device interrupt declared in the description is routed by the loader to the core of the
/// PD that owns it (here the PL011's SPI 33, owned by a PD on core 1), before any replica runs.
#[test]
fn qemu_virt_aarch64_device_interrupts_are_routed_to_their_pd() {
    let board = "qemu_virt_aarch64";
    let tool = std::env::var_os("ATOLL_MICROKIT")
        .map(PathBuf::from)
        .expect("ATOLL_MICROKIT set by cargo xtask test");
    let built = images().join(board).join(variants::BOOT.name);
    let work = target_dir().join("e2e-logs").join("microkit-irq");
    let sdk = make_sdk(board, &built, &work);
    let xml = work.join("system.xml");
    std::fs::write(
        &xml,
        r#"<system>
  <replica name="boot" cores="0" />
  <replica name="serial" cores="1" ram="0x400_0000" />
  <memory_region name="dma" size="0x1000" phys_addr="0x6000_0000" />
  <protection_domain name="io" priority="10" replica="boot">
    <program_image path="io.elf" />
  </protection_domain>
  <protection_domain name="uart" priority="20" replica="serial">
    <program_image path="rt.elf" />
    <irq irq="33" id="0" trigger="level" />
    <map mr="dma" vaddr="0x2000_0000" />
  </protection_domain>
</system>"#,
    )
    .expect("write description");
    let image = work.join("atoll.img");
    let report = work.join("report.txt");
    let out = microkit(
        &tool,
        &xml,
        board,
        &sdk,
        &built.join("pds"),
        &image,
        &["-r".as_ref(), report.as_os_str()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = Boot::image(board, "irq-route", image.clone())
        .until(&["ping ring complete"])
        .run();
    let routed = position(&outcome, "LDR|INFO: IRQ 33 (level) routed to core 1 for K1");
    let entered = position(&outcome, "LDR|INFO: entering K0");
    check(
        &outcome,
        routed < entered,
        "the interrupt was routed after a replica started",
    );
    position(&outcome, "K0|INFO: ping ring complete: K0 -> K1 -> K0");
    // The explicit share, and the fixed region kept out of every replica.
    position(&outcome, "RAM 0x");
    check(
        &outcome,
        outcome.serial.contains("(64 MiB)"),
        "replica 'serial' did not get its 64 MiB",
    );
    let report = std::fs::read_to_string(work.join("report.json")).expect("report.json");
    check(
        &outcome,
        report.contains("\"home\": \"fixed_ram\""),
        "the fixed region is not planned outside the replicas",
    );
}

/// A well-formed, correctly checksummed image whose shared-region part points into a
/// replica's RAM is refused by the loader before anything is copied.
#[test]
fn qemu_virt_aarch64_loader_refuses_a_region_over_a_replica() {
    use atoll_abi::image::{ALL_REPLICAS, ImageHeader, PartEntry, PartKind, image_checksum};
    use zerocopy::{FromBytes, IntoBytes};
    let board = "qemu_virt_aarch64";
    let mut image = std::fs::read(image_of(board, &variants::BOOT)).expect("image");
    let start = image
        .windows(8)
        .position(|w| w == b"ATOLLIMG")
        .expect("image proper");
    let (header, _) = ImageHeader::read_from_prefix(&image[start..]).expect("header");
    let table = start + std::mem::size_of::<ImageHeader>();
    let mut found = false;
    for i in 0..header.part_count as usize {
        let at = table + i * std::mem::size_of::<PartEntry>();
        let (mut entry, _) = PartEntry::read_from_prefix(&image[at..]).expect("entry");
        if entry.kind == PartKind::RegionData as u32 && entry.replica == ALL_REPLICAS {
            entry.dest_offset = 0x4200_0000; // inside replica 0's RAM on QEMU virt
            image[at..at + std::mem::size_of::<PartEntry>()].copy_from_slice(entry.as_bytes());
            found = true;
        }
    }
    assert!(found, "the default system has a shared region");
    let end = start + header.image_size as usize;
    let checksum = image_checksum(&image[start..end]);
    let at = start + std::mem::offset_of!(ImageHeader, checksum);
    image[at..at + 4].copy_from_slice(&checksum.to_le_bytes());
    let path = target_dir()
        .join("e2e-logs")
        .join(format!("{board}-hostile-region.img"));
    std::fs::write(&path, &image).expect("write image");
    let outcome = Boot::image(board, "hostile-region", path).run();
    check(
        &outcome,
        outcome.exit_code() == Some(3),
        "the loader did not refuse the image with status 3",
    );
    position(&outcome, "LDR|INFO: image ok");
    position(
        &outcome,
        "LDR|ERROR: refusing to boot: a region outside the replicas lies outside RAM or over memory it may not touch",
    );
    check(&outcome, !outcome.serial.contains("K0|"), "a kernel ran");
}

/// A kernel stack overflow runs into the unmapped guard below the stack; the vectors notice
/// before touching the stack, report from an emergency stack, and stop only that replica.
#[test]
fn qemu_virt_aarch64_kernel_stack_overflow_stops_only_its_replica() {
    let board = "qemu_virt_aarch64";
    let outcome = self_test(board, &variants::STACK);
    position(
        &outcome,
        "K1|INFO: self-test: overflowing the kernel stack on purpose",
    );
    let fatal = position(
        &outcome,
        "K1|FATAL: kernel stack overflow (data abort (EC 0x25): translation fault at level 3 on a write) FAR 0xffffffffc000b",
    );
    position(&outcome, "on core 1 of replica 1; replica stopped");
    let summary = position(&outcome, "K1 down {} ticks");
    check(
        &outcome,
        fatal < summary,
        "the summary came before the overflow was reported",
    );
    position(&outcome, "K2 up {2,3}");
    position(&outcome, "K0|INFO: boot checks done; powering off");
}

/// A fault in user space (the initialiser touching unmapped memory) is reported and stops
/// that thread only: its replica keeps ticking and passes the ping on.
#[test]
fn qemu_virt_aarch64_a_user_fault_stops_only_the_thread() {
    let board = "qemu_virt_aarch64";
    let outcome = self_test(board, &variants::USER_FAULT);
    let fault = position(
        &outcome,
        "K1|ERROR: thread 0 faulted: data abort from a lower level (EC 0x24): translation fault at level 1 on a read FAR 0x700000000",
    );
    position(&outcome, "it is stopped, the replica goes on");
    let hop = position(&outcome, "K1|INFO: ping from K0, passing to K2");
    position(
        &outcome,
        "K0|INFO: ping ring complete: K0 -> K1 -> K2 -> K0",
    );
    check(
        &outcome,
        fault < hop || outcome.serial.contains("K1 up {1}"),
        "replica 1 did not go on",
    );
    check(
        &outcome,
        !outcome.serial.contains("FATAL"),
        "a user fault stopped a kernel",
    );
    let last = summary_ticks(&outcome, "final status", 1);
    check(&outcome, last > 0, "replica 1 stopped ticking");
}

/// A PD on the second core of its replica gets the device interrupt it owns
/// (`tests/systems/irq-second-core.xml`): the disk's block driver runs on core 3 of the
/// storage replica's cores 2 and 3, and the store on core 2 formats a fresh disk, each of
/// its block requests completing only when the disk's interrupt reaches the driver. The
/// loader routes the interrupt to the driver's core; a kernel that serves device
/// interrupts only on a replica's first core drops it there ("unexpected interrupt") and
/// the store's requests time out. Under the board's GICv3 (routing by `GICD_IROUTER`).
#[test]
fn qemu_virt_aarch64_a_pd_on_a_replicas_second_core_gets_its_device_interrupts() {
    device_irq_on_a_second_core(None, "irq-second-core");
}

/// The same under `virt`'s default GICv2 (routing by `GICD_ITARGETSR`).
#[test]
fn qemu_virt_aarch64_a_pd_on_a_replicas_second_core_gets_its_device_interrupts_through_a_gicv2() {
    let gicv2 = QemuMachine {
        machine: "virt",
        ..atoll_boards::QEMU_VIRT_AARCH64.qemu
    };
    device_irq_on_a_second_core(Some(gicv2), "irq-second-core-gicv2");
}

fn device_irq_on_a_second_core(machine: Option<QemuMachine>, label: &str) {
    let board = "qemu_virt_aarch64";
    let disk = atoll_e2e::service::fresh_disk(board, label);
    let image = image_of(board, &variants::IRQ_SECOND_CORE);
    let mut boot = Boot::image(board, label, image)
        .disk(&disk)
        .until(&["storage: opened the store"])
        .stop_on(&[
            "unexpected interrupt",
            "storage: the store could not be opened",
        ]);
    if let Some(machine) = machine {
        boot = boot.machine(machine);
    }
    let outcome = boot.run();
    // virtio-blk's interrupt on virt: SPI 39, edge-triggered.
    let routed = position(&outcome, "LDR|INFO: IRQ 71 (edge) routed to core 3 for K1");
    let started = position_after(
        &outcome,
        routed,
        "MON1|INFO: started 2 PDs: storage, blk_driver",
    );
    position_after(
        &outcome,
        started,
        &format!(
            "storage: opened the store: a new one on a blank disk of {} blocks",
            atoll_e2e::service::TEST_DISK_BYTES / 512
        ),
    );
    check(
        &outcome,
        !outcome.serial.contains("unexpected interrupt")
            && !outcome.serial.contains("|ERROR")
            && !outcome.serial.contains("device error"),
        "the disk's interrupt was dropped, or a PD failed",
    );
}
