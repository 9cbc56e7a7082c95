//! The `microkit` binary end to end: exit codes, the three message formats, `--strict`, and
//! that `--check` writes nothing.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn microkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microkit"))
        .args(args)
        .output()
        .expect("run microkit")
}

/// `--check` of a fixture, with the fixture's own directory as the search path (where its
/// prefill files are).
fn check(path: &str, extra: &[&str]) -> Output {
    let file = fixture(path);
    let dir = file.parent().expect("a fixture directory").to_path_buf();
    let (file, dir) = (
        file.to_str().expect("utf-8 path"),
        dir.to_str().expect("utf-8 path"),
    );
    let mut args = vec![
        file,
        "--board",
        "qemu_virt_aarch64",
        "--check",
        "--search-path",
        dir,
    ];
    args.extend_from_slice(extra);
    microkit(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn valid_description_exits_zero() {
    let out = check("examples/sdf_reference.xml", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ok: 2 replica(s), 4 protection domain(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("(1 cross-replica)"), "{stdout}");
}

#[test]
fn invalid_description_exits_one_with_human_diagnostics() {
    let out = check("e045_pp_priority/reject.xml", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("sdf::E045"), "{stderr}");
    assert!(stderr.contains("callee declared here"), "{stderr}");
    assert!(stderr.contains("1 error(s); nothing written"), "{stderr}");
}

#[test]
fn short_format_is_one_line_per_diagnostic() {
    let out = check("e071_cap_slot/reject.xml", &["--message-format", "short"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    for line in lines {
        assert!(line.contains("e071_cap_slot/reject.xml:"), "{line}");
        assert!(line.contains(": error[sdf::E071]: "), "{line}");
    }
    assert!(
        stderr.contains("reject.xml:9:22: error[sdf::E071]: slot 0 is reserved"),
        "{stderr}"
    );
}

#[test]
fn json_format_is_one_object_per_line_on_stdout() {
    let out = check("e022_unknown_pd/reject.xml", &["--message-format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("valid JSON"))
        .collect();
    assert_eq!(objects.len(), 1, "{stdout}");
    let object = &objects[0];
    assert_eq!(object["code"], "sdf::E022");
    assert_eq!(object["severity"], "error");
    assert_eq!(object["line"], 11);
    assert_eq!(object["column"], 14);
    assert_eq!(object["help"], "did you mean 'server'?");
    assert!(
        object["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("reject.xml"))
    );
    assert_eq!(object["labels"][0]["primary"], true);
    assert_eq!(object["labels"][0]["end_column"], 19);
    assert!(
        object["message"]
            .as_str()
            .is_some_and(|m| m.contains("'sever'"))
    );
}

#[test]
fn warnings_do_not_fail() {
    for format in ["human", "short", "json"] {
        let out = check(
            "w001_unused_region/reject.xml",
            &["--message-format", format],
        );
        assert_eq!(out.status.code(), Some(0), "{format}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains("W001"), "{format}: {all}");
    }
}

#[test]
fn strict_rejects_the_replica_extension() {
    let path = "e081_shared_core/accept.xml";
    assert_eq!(check(path, &[]).status.code(), Some(0));
    let out = check(path, &["--strict", "--message-format", "short"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("sdf::E086"));
}

#[test]
fn packing_without_a_kernel_says_where_it_looked() {
    let dir = std::env::temp_dir().join(format!("microkit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let image = dir.join("atoll.img");
    let file = fixture("examples/sdf_reference.xml");
    let args = [
        file.to_str().expect("path"),
        "--board",
        "qemu_virt_aarch64",
        "--config",
        "release",
        "--sdk",
        dir.to_str().expect("path"),
        "--search-path",
        "build",
        "other",
        "-o",
        image.to_str().expect("path"),
    ];
    let out = microkit(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("qemu_virt_aarch64/atoll-kernel.elf"),
        "{stderr}"
    );
    assert!(!image.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("microkit-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (image, report) = (dir.join("x.img"), dir.join("r.txt"));
    let file = fixture("examples/sdf_reference.xml");
    let out = microkit(&[
        file.to_str().expect("path"),
        "--board",
        "imx8mp_evk",
        "--check",
        "--search-path",
        fixture("examples").to_str().expect("path"),
        "-o",
        image.to_str().expect("path"),
        "-r",
        report.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!image.exists() && !report.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_one() {
    let file = fixture("examples/sdf_reference.xml");
    let file = file.to_str().expect("path");
    let out = microkit(&[file, "--board", "nonesuch", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("qemu_virt_aarch64"));
    assert_eq!(microkit(&[file, "--check"]).status.code(), Some(1));
    assert_eq!(microkit(&["--help"]).status.code(), Some(0));
}

#[test]
fn tool_errors_follow_the_message_format() {
    let file = fixture("examples/sdf_reference.xml");
    let file = file.to_str().expect("path");
    let sdk = "/nonexistent-sdk";
    let out = microkit(&[
        file,
        "--board",
        "qemu_virt_aarch64",
        "--sdk",
        sdk,
        "--message-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let object: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(object["code"], "microkit::read");
    assert!(
        object["message"]
            .as_str()
            .is_some_and(|m| m
                .starts_with("cannot read '/nonexistent-sdk/qemu_virt_aarch64/atoll-kernel.elf'")),
        "{object}"
    );
    let out = microkit(&[
        file,
        "--board",
        "qemu_virt_aarch64",
        "--sdk",
        sdk,
        "--message-format",
        "short",
    ]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[microkit::read]: cannot read '/nonexistent-sdk/qemu_virt_aarch64/atoll-kernel.elf'"),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_exits_one() {
    let out = microkit(&[
        "/nonexistent/system.xml",
        "--board",
        "qemu_virt_aarch64",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read '/nonexistent/system.xml'"));
}

/// A prefill file is part of the description: `--check` refuses one it cannot find, or one
/// that is empty, as a build does (and as Microkit does).
#[test]
fn check_refuses_a_missing_or_empty_prefill_file() {
    let dir = std::env::temp_dir().join(format!("microkit-prefill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let xml = dir.join("system.xml");
    std::fs::write(
        &xml,
        r#"<system>
  <memory_region name="blob" prefill_path="blob.bin" />
  <protection_domain name="p" priority="10">
    <program_image path="p.elf" />
    <map mr="blob" vaddr="0x1000_0000" perms="r" />
  </protection_domain>
</system>"#,
    )
    .expect("write description");
    let run = || {
        microkit(&[
            xml.to_str().expect("path"),
            "--board",
            "qemu_virt_aarch64",
            "--check",
            "--search-path",
            dir.to_str().expect("path"),
        ])
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing prefill file was accepted"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("prefill file of region 'blob' 'blob.bin' was not found"),
        "{stderr}"
    );
    std::fs::write(dir.join("blob.bin"), b"").expect("empty file");
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an empty prefill file was accepted"
    );
    assert!(
        text(&out.stderr).contains("'blob.bin' is empty"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.join("blob.bin"), b"contents").expect("file");
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
