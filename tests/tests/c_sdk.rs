//! The C SDK end to end. `cargo xtask test` builds the SDK (`ATOLL_SDK`) and, with each C
//! example's own Makefile run against it alone, the example images (`ATOLL_C_IMAGES`); these
//! tests check the SDK's layout and command line, and boot every example and check what it
//! printed.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

use atoll_e2e::boot::{Boot, in_order};
use atoll_runner::Outcome;

/// An environment variable `cargo xtask test` sets, as a path.
fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{name} is not set: run these tests through `cargo xtask test`, which builds the SDK and the C examples first")
    })
}

/// The image the `example`'s Makefile built for `board` in `config`.
fn c_image(board: &str, config: &str, example: &str) -> PathBuf {
    env_path("ATOLL_C_IMAGES")
        .join(board)
        .join(config)
        .join(example)
        .join("loader.img")
}

/// Boots `image` the way a Microkit user boots an image under QEMU, until `until` appears:
/// on `qemu_virt_aarch64` with exactly the command Microkit's manual gives (GICv2, EL2, the
/// image at 0x7000_0000 through `-device loader`); on the other boards, whose Microkit
/// manual pages give no QEMU command, through `-device loader` too, away from the image's
/// link address (`imx8mp-evk` without EL3, which it otherwise enters with no PSCI to start
/// the other cores).
fn boot_as_microkit(board: &str, label: &str, image: PathBuf, until: &str) -> Outcome {
    let boot = Boot::image(board, label, image).until(&[until]);
    match board {
        "qemu_virt_aarch64" => boot.microkit_virt(),
        "zcu102" => boot.loaded_at(0x1_0000),
        _ => boot
            .loaded_at(0x8000_0000)
            .qemu_args(&["-global", "cortex-a53-arm-cpu.has_el3=off"]),
    }
    .run()
}

/// Boots `example` (debug configuration) until `lines` have all appeared; checks they came
/// in this order.
fn boot_example(board: &str, example: &str, lines: &[&str]) -> Outcome {
    let image = c_image(board, "debug", example);
    let last = lines.last().copied().unwrap_or_default();
    let outcome = boot_as_microkit(board, &format!("c-{example}"), image, last);
    in_order(&outcome, lines);
    outcome
}

/// Fails with the log if `text` appears.
fn absent(outcome: &Outcome, text: &str) {
    assert!(
        !outcome.serial.contains(text),
        "{text:?} is in the log\nserial log saved at {}\n----\n{}",
        outcome.log_path.display(),
        outcome.serial
    );
}

/// `bin/microkit --help` offers every option of Microkit's command line.
#[test]
fn c_sdk_tool_takes_microkits_options() {
    let tool = env_path("ATOLL_SDK").join("bin").join("microkit");
    let out = Command::new(&tool)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    assert!(out.status.success(), "{} --help failed", tool.display());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "-o, --output",
        "-r, --report",
        "--image-type",
        "--override-kernel",
        "--board",
        "--config",
        "--capdl-json",
        "--viper-output",
        "--search-path",
        "-h, --help",
    ] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
    for board in ["qemu_virt_aarch64", "zcu102", "imx8mp_evk"] {
        assert!(help.contains(board), "--help does not list board {board}");
    }
}

/// The SDK's architecture line is the one Microkit's Makefiles cut out with
/// `grep 'CONFIG_SEL4_ARCH  ' | cut -d' ' -f4`, in every board and configuration (`cargo xtask
/// test` checks the rest of the layout file by file before it builds the examples).
#[test]
fn c_sdk_configurations_name_their_architecture_as_microkit_makefiles_read_it() {
    let sdk = env_path("ATOLL_SDK");
    for board in ["qemu_virt_aarch64", "zcu102", "imx8mp_evk"] {
        for config in ["debug", "release", "benchmark"] {
            let path = sdk
                .join("board")
                .join(board)
                .join(config)
                .join("include/kernel/gen_config.h");
            let config_h = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let arch = config_h
                .lines()
                .find(|l| l.contains("CONFIG_SEL4_ARCH  "))
                .and_then(|l| l.split(' ').nth(3));
            assert_eq!(arch, Some("aarch64"), "{}", path.display());
            let debug = config_h.contains("CONFIG_DEBUG_BUILD");
            assert_eq!(debug, config == "debug", "{}", path.display());
        }
    }
}

fn hello(board: &str) {
    boot_example(
        board,
        "hello",
        &["MON0|INFO: started 1 PDs: hello", "hello: hello, world"],
    );
}

fn passive_server(board: &str) {
    let outcome = boot_example(
        board,
        "passive_server",
        &[
            "server: init",
            "MON0|INFO: PD 'server' finished init and is passive",
            "client: 2 squared is 4",
            "client: 3 squared is 9",
            "client: 4 squared is 16",
            "server: notified; calls answered so far: 3",
            "client: the server answered the notification",
            "client: 12 squared is 144",
            "client: done",
        ],
    );
    absent(&outcome, "(refused)");
}

fn hierarchy(board: &str) {
    let mut lines = vec!["restarter: started".to_string()];
    for run in 1..=4 {
        lines.push(format!("crasher: run {run}, about to fault"));
        lines.push("restarter: child 0 faulted (fault label 6)".into());
    }
    lines.push("restarter: stopped it after 3 restarts".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let outcome = boot_example(board, "hierarchy", &lines);
    absent(&outcome, "MON0|ERROR");
}

fn multikernel(board: &str) {
    let mut lines = vec!["producer: on replica 'left'".to_string()];
    for round in 1..=5 {
        lines.push(format!("consumer: round {round} value {}", round * 1000));
    }
    lines.push("producer: all 5 rounds acknowledged across replicas".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let outcome = boot_example(board, "multikernel", &lines);
    in_order(&outcome, &["consumer: on replica 'right'"]);
}

/// Every call of `microkit.h` and `sel4/sel4.h`, wrong uses included, each with its
/// expected outcome (`atoll_e2e::c_api` lists them).
fn api_test(board: &str) {
    let image = c_image(board, "debug", "api_test");
    let summary = atoll_e2e::c_api::summary_line();
    let outcome = boot_as_microkit(board, "c-api_test", image, &summary);
    if let Err(e) = atoll_e2e::c_api::check_api_test(&outcome.serial) {
        panic!(
            "{e}\nserial log saved at {}\n----\n{}",
            outcome.log_path.display(),
            outcome.serial
        );
    }
}

/// The release configuration's library prints nothing for a PD's debug output (as
/// Microkit's), while the kernel's own lines still come.
fn release_is_quiet(board: &str) {
    let image = c_image(board, "release", "hello");
    let outcome = boot_as_microkit(
        board,
        "c-hello-release",
        image,
        "every PD started and waiting for events",
    );
    in_order(&outcome, &["MON0|INFO: started 1 PDs: hello"]);
    absent(&outcome, "hello, world");
}

macro_rules! board_tests {
    ($($module:ident => $board:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn c_hello_builds_from_its_makefile_and_runs() {
                super::hello($board);
            }

            #[test]
            fn c_passive_server_answers_calls_and_notifications() {
                super::passive_server($board);
            }

            #[test]
            fn c_parent_restarts_then_stops_its_faulting_child() {
                super::hierarchy($board);
            }

            #[test]
            fn c_pds_on_two_replicas_share_a_region_and_doorbells() {
                super::multikernel($board);
            }

            #[test]
            fn c_api_test_checks_every_call_and_wrong_use() {
                super::api_test($board);
            }

            #[test]
            fn c_release_configuration_is_quiet() {
                super::release_is_quiet($board);
            }
        }
    )*};
}

board_tests! {
    qemu_virt_aarch64 => "qemu_virt_aarch64",
    zcu102 => "zcu102",
    imx8mp_evk => "imx8mp_evk",
}
