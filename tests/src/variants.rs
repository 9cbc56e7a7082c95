//! The images the end-to-end tests boot: one table, read by `cargo xtask test` to build
//! them and by the tests to boot them, so a variant's name is written once.

/// One test image: the system it packs, the self-test its build runs, and whether it runs
/// on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The image's name: its directory under the images directory and its logs' label.
    pub name: &'static str,
    /// System description, relative to the workspace; `None`: the default `system.xml`.
    pub system: Option<&'static str>,
    /// Replica whose kernel faults on purpose.
    pub kernel_fault: Option<u32>,
    /// Replica whose kernel faults on purpose 5 s after boot, its PDs at work.
    pub kernel_fault_late: Option<u32>,
    /// `cargo xtask run --inject-fault REPLICA:SECONDS[,...]`: replicas, by name, whose
    /// kernels fault on purpose that long after they are up.
    pub inject_fault: Option<&'static str>,
    /// `cargo xtask run --inject-hang REPLICA:SECONDS[,...]`: replicas whose kernels hang on
    /// purpose that long after they are up.
    pub inject_hang: Option<&'static str>,
    /// Replica whose kernel stack overflows on purpose.
    pub stack_overflow: Option<u32>,
    /// Replica whose initialiser faults on purpose.
    pub initialiser_fault: Option<u32>,
    /// Replica whose restart the loader fails on purpose.
    pub restart_fault: Option<u32>,
    /// Replica whose initialiser runs the kernel-API self-test.
    pub api: Option<u32>,
    /// The loader faults on purpose, and again in its exception handler.
    pub loader_fault: bool,
    /// The loader probes PSCI through a conduit no firmware answers.
    pub psci_unanswered: bool,
    /// Not a test build: the image runs on until its test stops it (test builds power off
    /// once every check is done).
    pub runs_on: bool,
    /// The one board it is built for; `None`: every board.
    pub only_on: Option<&'static str>,
}

impl Variant {
    /// A test build of the default system that runs no self-test.
    const fn named(name: &'static str) -> Self {
        Variant {
            name,
            system: None,
            kernel_fault: None,
            restart_fault: None,
            kernel_fault_late: None,
            inject_fault: None,
            inject_hang: None,
            stack_overflow: None,
            initialiser_fault: None,
            api: None,
            loader_fault: false,
            psci_unanswered: false,
            runs_on: false,
            only_on: None,
        }
    }

    /// A build of the system described in `system`.
    const fn of(name: &'static str, system: &'static str, runs_on: bool) -> Self {
        Variant {
            system: Some(system),
            runs_on,
            ..Variant::named(name)
        }
    }

    /// Whether it is built for `board`.
    pub fn is_for(&self, board: &str) -> bool {
        self.only_on.is_none_or(|only| only == board)
    }
}

/// The virt board, which alone has a PL011 and the EL2 and stack-overflow cases.
const VIRT: &str = "qemu_virt_aarch64";

/// The default system, booted to the end of its boot checks.
pub const BOOT: Variant = Variant::named("boot");
/// Replica 2's kernel faults on purpose, in the default system with no replica restarted.
pub const FAULT: Variant = Variant {
    kernel_fault: Some(2),
    ..Variant::of("fault", "tests/systems/no-restart.xml", false)
};
/// Replica 1's initialiser runs the kernel-API self-test and its hostile cases.
pub const API: Variant = Variant {
    api: Some(1),
    ..Variant::named("api")
};
/// PDs that fault, for the monitor's reports, restarts and stops.
pub const MONITOR: Variant = Variant::of("monitor", "tests/systems/faults.xml", false);
/// Cross-replica channels; they run on until the test has seen every result.
pub const CROSS: Variant = Variant::of("cross", "tests/systems/cross.xml", true);
/// The cross-replica channels with replica 2's kernel stopped.
pub const CROSS_DOWN: Variant = Variant {
    kernel_fault: Some(2),
    ..Variant::of("cross-down", "tests/systems/cross.xml", true)
};
/// Hostile PDs, each the regression test of a hole the kernel once had.
pub const HOSTILE: Variant = Variant::of("hostile", "tests/systems/hostile.xml", true);
/// The system-call fuzzer, a short run (`cargo xtask fuzz-kernel` makes long ones).
pub const FUZZ: Variant = Variant::of("fuzz", "tests/systems/fuzz.xml", true);
/// A PD owning the physical timer's per-core interrupt; it reports after its last one.
pub const PD_TIMER: Variant =
    Variant::of("pd-timer", "protection-domains/bench/systems/irq.xml", true);
/// The same PD on the second core of a two-core replica: the interrupt is the core's own.
pub const PD_TIMER_SECOND_CORE: Variant = Variant::of(
    "pd-timer-second-core",
    "tests/systems/pd-timer-second-core.xml",
    true,
);
/// A PD reading the device tree the loader copied into its `prefill_bootinfo="fdt"`
/// region.
pub const DEVICE_TREE: Variant = Variant::of("devicetree", "tests/systems/devicetree.xml", false);
/// Replica 1's kernel stack overflows on purpose, in the default system with no replica
/// restarted.
pub const STACK: Variant = Variant {
    stack_overflow: Some(1),
    only_on: Some(VIRT),
    ..Variant::of("stack", "tests/systems/no-restart.xml", false)
};
/// The loader faults, and faults again while reporting it.
pub const LOADER_FAULT: Variant = Variant {
    loader_fault: true,
    only_on: Some(VIRT),
    ..Variant::named("loader-fault")
};
/// The loader finds no PSCI firmware on the conduit it probes.
pub const PSCI_UNANSWERED: Variant = Variant {
    psci_unanswered: true,
    only_on: Some(VIRT),
    ..Variant::named("psci-unanswered")
};
/// Replica 1's initialiser faults on purpose.
pub const USER_FAULT: Variant = Variant {
    initialiser_fault: Some(1),
    only_on: Some(VIRT),
    ..Variant::named("user-fault")
};

/// The example systems: `hello` prints and powers off.
pub const EXAMPLE_HELLO: Variant = Variant::of(
    "example-hello",
    "protection-domains/examples/hello/system.xml",
    false,
);
/// Two PDs notifying each other on one replica.
pub const EXAMPLE_PINGPONG: Variant = Variant::of(
    "example-pingpong",
    "protection-domains/examples/pingpong/system.xml",
    false,
);
/// Two PDs notifying each other across replicas; it runs on.
pub const EXAMPLE_PINGPONG_CROSS: Variant = Variant::of(
    "example-pingpong-cross",
    "protection-domains/examples/pingpong-cross/system.xml",
    true,
);
/// A protected procedure call to a passive server.
pub const EXAMPLE_PPC: Variant = Variant::of(
    "example-ppc",
    "protection-domains/examples/ppc/system.xml",
    false,
);
/// A parent PD handling its child's faults.
pub const EXAMPLE_PARENT: Variant = Variant::of(
    "example-parent",
    "protection-domains/examples/parent/system.xml",
    false,
);
/// The template a new PD starts from.
pub const EXAMPLE_TEMPLATE: Variant = Variant::of(
    "example-template",
    "protection-domains/template/system.xml",
    false,
);
/// A PL011 driver PD echoing typed lines; it waits for input for good.
pub const EXAMPLE_UART: Variant = Variant {
    only_on: Some(VIRT),
    ..Variant::of(
        "example-uart",
        "protection-domains/examples/uart/system.xml",
        true,
    )
};
/// The sel4-microkit API probe, built through a Cargo rename, and its hooked child.
pub const COMPAT_PROBE: Variant = Variant::of(
    "compat-probe",
    "protection-domains/compat/probe/system.xml",
    false,
);
/// An upstream-style passive server with a deferred action, notified and called.
pub const COMPAT_PASSIVE: Variant = Variant::of(
    "compat-passive",
    "protection-domains/compat/passive/system.xml",
    false,
);
/// An upstream-style serial driver and client over two shared regions (QEMU virt's
/// PL011).
pub const COMPAT_SERIAL: Variant = Variant {
    only_on: Some(VIRT),
    ..Variant::of(
        "compat-serial",
        "protection-domains/compat/serial/system.xml",
        true,
    )
};
/// Microkit's domain scheduler: a low-priority PD gets its domain's slots while a
/// higher-priority PD in another domain never stops spinning (it keeps the machine busy,
/// so the image runs on until the test has its lines).
pub const COMPAT_DOMAINS: Variant = Variant::of(
    "compat-domains",
    "protection-domains/compat/domains/system.xml",
    true,
);

/// PDs on both cores of one replica (issue 18): notify ping-pong, a PPC to a passive server
/// and a child moved between the cores. Its PDs keep both cores busy, so it runs on until
/// the test has every result.
pub const SMP: Variant = Variant::of("smp", "tests/systems/smp.xml", true);
/// A PD spinning for ever on one core of a replica while a higher-priority PD works on the
/// other; it runs on (a test build would wait for the spinner to stop).
pub const SMP_HOG: Variant = Variant::of("smp-hog", "tests/systems/smp-hog.xml", true);
/// A budget-limited spinner and a lower-priority one sharing a core of a two-core replica;
/// it runs on.
pub const SMP_BUDGET: Variant = Variant::of("smp-budget", "tests/systems/smp-budget.xml", true);

/// A device interrupt owned by a PD on the second core of its replica: the disk's block
/// driver on core 3 of cores 2 and 3, the store on core 2. Only on `virt`, whose disk
/// driver (virtio-blk) waits for its interrupt; the SD drivers of the other boards poll.
/// It runs on: the test stops it once the store has opened.
pub const IRQ_SECOND_CORE: Variant = Variant {
    only_on: Some(VIRT),
    ..Variant::of("irq-second-core", "tests/systems/irq-second-core.xml", true)
};

/// The default system with 640 KiB of constant data in one more PD: an image the
/// loader-relocation tests can load overlapping its own link address.
pub const BALLAST: Variant = Variant::of("ballast", "tests/systems/ballast.xml", false);

/// The default system as `cargo xtask run` builds it (not a test build): it runs on, serving
/// HTTP through the board's NIC, until the service tests stop it.
pub const SERVICE: Variant = Variant::of("service", "system.xml", true);
/// The service with a static address given by `<setvar value>` instead of DHCP; like
/// [`SERVICE`], not a test build. Only on `virt`: the address is not board-specific, and one
/// board's boot shows it.
pub const SERVICE_STATIC: Variant = Variant {
    only_on: Some(VIRT),
    ..Variant::of("service-static", "tests/systems/service-static.xml", true)
};
/// Two clients of the key-value store on replicas of their own; the writer's replica
/// stops on purpose while it writes (`tests/tests/storage.rs`). Only on `virt`: the storage
/// replica is the same on every board, and its disk's driver is tested on each by the
/// service and kill tests.
pub const STORAGE_CLIENTS: Variant = Variant {
    kernel_fault_late: Some(1),
    only_on: Some(VIRT),
    ..Variant::of("storage-clients", "tests/systems/storage-clients.xml", true)
};

/// The default system with 5,000-period windows for the real-time PD, as `cargo xtask run`
/// builds it (not a test build): the real-time tests (`tests/tests/rt.rs`) run it idle and
/// under load.
pub const RT: Variant = Variant::of("rt", "tests/systems/rt.xml", true);
/// [`RT`] with the I/O replica's kernel stopped on purpose 4 s after boot, its PDs at work,
/// as `cargo xtask run --inject-fault io:4` builds it, in a system where the I/O replica is
/// not restarted: it stays down.
pub const RT_IO_FAULT: Variant = Variant {
    inject_fault: Some("io:4"),
    ..Variant::of("rt-io-fault", "tests/systems/rt-io-down.xml", true)
};
/// [`RT`] with the storage replica's kernel stopped on purpose 4 s after boot, while
/// clients write to the store: it is restarted (`tests/tests/restart.rs`).
pub const RESTART_STORAGE: Variant = Variant {
    inject_fault: Some("storage:4"),
    ..Variant::of("restart-storage", "tests/systems/rt.xml", true)
};
/// [`RT`] with each replica stopped in turn: storage by a fault at 3 s, the boot replica by
/// a fault at 6 s, the real-time replica by a hang at 9 s, which its peers find and stop;
/// each is restarted (`tests/tests/restart.rs`).
pub const RESTART_EACH: Variant = Variant {
    inject_fault: Some("storage:3,io:6"),
    inject_hang: Some("rt:9"),
    ..Variant::of("restart-each", "tests/systems/rt.xml", true)
};

/// [`RT`] with the storage replica's kernel faulting on purpose as it comes up, in every
/// life: it is restarted once, stops again at once, and is given up (`failed`).
pub const RESTART_LOOP: Variant = Variant {
    kernel_fault: Some(2),
    ..Variant::of("restart-loop", "tests/systems/rt.xml", true)
};

/// [`RT`] with the storage replica stopped at 3 s and the real-time replica at 5 s, and
/// the loader faulting on purpose as it restarts storage: storage's restart is given up,
/// and the real-time replica's, after it, still happens (the restart lock was given back).
pub const RESTART_LOADER_FAULT: Variant = Variant {
    inject_fault: Some("storage:3,rt:5"),
    restart_fault: Some(2),
    ..Variant::of("restart-loader-fault", "tests/systems/rt.xml", true)
};

/// Every image variant, in build order.
pub const VARIANTS: &[Variant] = &[
    BOOT,
    FAULT,
    API,
    MONITOR,
    CROSS,
    CROSS_DOWN,
    HOSTILE,
    FUZZ,
    PD_TIMER,
    PD_TIMER_SECOND_CORE,
    DEVICE_TREE,
    EXAMPLE_HELLO,
    EXAMPLE_PINGPONG,
    EXAMPLE_PINGPONG_CROSS,
    EXAMPLE_PPC,
    EXAMPLE_PARENT,
    EXAMPLE_TEMPLATE,
    STACK,
    USER_FAULT,
    LOADER_FAULT,
    PSCI_UNANSWERED,
    EXAMPLE_UART,
    COMPAT_PROBE,
    COMPAT_PASSIVE,
    COMPAT_SERIAL,
    COMPAT_DOMAINS,
    SMP,
    SMP_HOG,
    SMP_BUDGET,
    IRQ_SECOND_CORE,
    BALLAST,
    SERVICE,
    SERVICE_STATIC,
    STORAGE_CLIENTS,
    RT,
    RT_IO_FAULT,
    RESTART_STORAGE,
    RESTART_EACH,
    RESTART_LOOP,
    RESTART_LOADER_FAULT,
];

/// The variants built for `board`.
pub fn for_board(board: &str) -> impl Iterator<Item = &'static Variant> {
    VARIANTS.iter().filter(move |v| v.is_for(board))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace's root.
    fn root() -> &'static std::path::Path {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
    }

    /// The element lines of a system description (trimmed, comments left out).
    fn elements(file: &str) -> Vec<String> {
        std::fs::read_to_string(root().join(file))
            .expect("readable")
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('<') && !l.starts_with("<!--"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn names_are_unique_and_systems_exist() {
        let root = root();
        for (i, v) in VARIANTS.iter().enumerate() {
            assert!(
                VARIANTS[..i].iter().all(|w| w.name != v.name),
                "{} twice",
                v.name
            );
            if let Some(system) = v.system {
                assert!(root.join(system).is_file(), "{}: no {system}", v.name);
            }
        }
    }

    #[test]
    fn virt_only_variants_are_not_built_elsewhere() {
        let names = |board| for_board(board).map(|v| v.name).collect::<Vec<_>>();
        assert!(names(VIRT).contains(&"example-uart"));
        assert!(!names("zcu102").contains(&"example-uart"));
        assert!(!names("zcu102").contains(&"stack"));
        assert!(names(VIRT).contains(&"compat-serial"));
        assert!(!names("zcu102").contains(&"compat-serial"));
        assert!(!names("imx8mp_evk").contains(&"loader-fault"));
        for board in [VIRT, "zcu102", "imx8mp_evk"] {
            assert!(names(board).contains(&"service"), "{board}");
        }
        assert!(names(VIRT).contains(&"service-static"));
        assert!(!names("imx8mp_evk").contains(&"service-static"));
        assert!(names(VIRT).contains(&"irq-second-core"));
        assert!(!names("zcu102").contains(&"irq-second-core"));
        assert_eq!(names("zcu102").len() + 9, names(VIRT).len());
    }

    /// `service-static.xml` is `system.xml` with the static address set: every element
    /// the same, in the same order, but for the address's `<setvar>`s.
    #[test]
    fn the_static_service_system_is_the_default_one_with_an_address() {
        let without_address = |file| {
            elements(file)
                .into_iter()
                .filter(|l| !l.starts_with("<setvar symbol=\"net_ipv4_"))
                .collect::<Vec<_>>()
        };
        let default = without_address("system.xml");
        assert!(default.len() > 20);
        assert_eq!(without_address("tests/systems/service-static.xml"), default);
    }

    /// `tests/systems/rt.xml` is `system.xml` with shorter windows for the real-time PD.
    #[test]
    fn the_real_time_test_system_is_the_default_one_with_short_windows() {
        let long_windows = |file| {
            elements(file)
                .into_iter()
                .map(|l| {
                    l.replace(
                        "\"rt_window\" value=\"5000\"",
                        "\"rt_window\" value=\"10000\"",
                    )
                })
                .collect::<Vec<_>>()
        };
        let default = long_windows("system.xml");
        assert!(
            default
                .iter()
                .any(|l| l.contains("\"rt_window\" value=\"10000\""))
        );
        assert_eq!(long_windows("tests/systems/rt.xml"), default);
    }

    /// `tests/systems/no-restart.xml` is `system.xml` with no replica restarted.
    #[test]
    fn the_no_restart_system_is_the_default_one_without_restarts() {
        let default: Vec<String> = elements("system.xml")
            .into_iter()
            .map(|l| l.replace(" restart=\"true\"", ""))
            .collect();
        assert!(
            elements("system.xml")
                .iter()
                .any(|l| l.contains(" restart=\"true\""))
        );
        assert_eq!(elements("tests/systems/no-restart.xml"), default);
    }

    /// `tests/systems/rt-io-down.xml` is `tests/systems/rt.xml` with the I/O replica not
    /// restarted.
    #[test]
    fn the_io_down_test_system_is_the_real_time_one_without_io_restart() {
        let restarted = elements("tests/systems/rt-io-down.xml")
            .into_iter()
            .map(|l| {
                l.replace(
                    "<replica name=\"io\" cores=\"0\" hung_after_ms",
                    "<replica name=\"io\" cores=\"0\" restart=\"true\" hung_after_ms",
                )
            })
            .collect::<Vec<_>>();
        let rt = elements("tests/systems/rt.xml");
        assert!(
            rt.iter()
                .any(|l| l.contains("name=\"io\" cores=\"0\" restart=\"true\""))
        );
        assert_eq!(restarted, rt);
    }

    /// `systems/single-kernel.xml` is `system.xml` in one replica: every element the same,
    /// in the same order, but for the replicas, the PDs' `replica` and `cpu`, and io's
    /// timer; and each PD on the core it has in the default system.
    #[test]
    fn the_single_kernel_system_is_the_default_one_in_one_replica() {
        let pd_attribute = |line: &str, name: &str| {
            let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
            let len = line.get(start..)?.find('"')?;
            line.get(start..start + len).map(str::to_string)
        };
        let read = |file: &str| {
            elements(file)
                .into_iter()
                .filter(|l| !l.starts_with("<replica "))
                .collect::<Vec<_>>()
        };
        let without_placement = |line: &String| {
            let mut line = line.clone();
            for name in ["replica", "cpu"] {
                if let Some(value) = pd_attribute(&line, name) {
                    line = line.replace(&format!(" {name}=\"{value}\""), "");
                }
            }
            line
        };
        // The one difference but the placement: io has no timer (one PD per replica may
        // own the physical timer's interrupt, and here rt does).
        let io_timer = "<irq irq=\"30\" id=\"3\" />";
        let default: Vec<String> = read("system.xml")
            .into_iter()
            .filter(|l| l != io_timer)
            .collect();
        let single = read("systems/single-kernel.xml");
        assert!(!single.iter().any(|l| l == io_timer));
        assert!(default.len() > 20);
        assert_eq!(
            single.iter().map(without_placement).collect::<Vec<_>>(),
            default.iter().map(without_placement).collect::<Vec<_>>()
        );
        // The default system's cores: a PD without `cpu` is on its replica's first core.
        let replica_cores = [("io", "0"), ("rt", "1"), ("storage", "2")];
        for (d, s) in default.iter().zip(&single) {
            if !d.starts_with("<protection_domain ") {
                continue;
            }
            let core = pd_attribute(d, "cpu").or_else(|| {
                let replica = pd_attribute(d, "replica")?;
                replica_cores
                    .iter()
                    .find(|(r, _)| *r == replica)
                    .map(|(_, c)| c.to_string())
            });
            assert_eq!(pd_attribute(s, "cpu"), core, "{s}");
            assert_eq!(pd_attribute(s, "replica").as_deref(), Some("all"), "{s}");
        }
        assert!(
            std::fs::read_to_string(root().join("systems/single-kernel.xml"))
                .unwrap()
                .contains("<replica name=\"all\" cores=\"0,1,2,3\" />")
        );
    }
}
