//! Runs the example binaries on the member drivers installed on this machine (Mesa lavapipe,
//! SwiftShader) and checks that they succeed, stay validation-clean where the validation layer
//! is installed, and print the same `result=` on every driver.
//!
//! Drivers are taken from `VKFUSE_EXAMPLES_TEST_ICDS` (manifest paths separated by `:`) or
//! else from the Debian locations below; missing manifests are skipped with a note, so the
//! test passes (vacuously) on a machine without any of them.

use std::path::Path;
use std::process::{Command, Output};

const DEFAULT_ICDS: &[&str] = &[
    "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
    "/usr/lib/chromium/vk_swiftshader_icd.json",
];

const VALIDATION_MANIFEST: &str =
    "/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json";

fn icds() -> Vec<String> {
    let list: Vec<String> = match std::env::var("VKFUSE_EXAMPLES_TEST_ICDS") {
        Ok(v) => v
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => DEFAULT_ICDS.iter().map(|s| (*s).to_owned()).collect(),
    };
    list.into_iter()
        .filter(|p| {
            let present = Path::new(p).exists();
            if !present {
                eprintln!("skipping driver {p}: manifest not found");
            }
            present
        })
        .collect()
}

fn run(bin: &str, icd: &str, args: &[&str]) -> Output {
    let runtime_dir = std::env::temp_dir().join("vkfuse-examples-xdg");
    std::fs::create_dir_all(&runtime_dir).expect("create XDG_RUNTIME_DIR");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("VK_ICD_FILENAMES", icd)
        .env_remove("VK_DRIVER_FILES")
        .env_remove("VKFUSE_EXAMPLE_VALIDATION")
        .env("XDG_RUNTIME_DIR", runtime_dir);
    if Path::new(VALIDATION_MANIFEST).exists() {
        cmd.arg("--validation");
    }
    cmd.output().expect("spawn example binary")
}

fn stdout_line(bin: &str, icd: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{bin} on {icd} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{bin} on {icd}: expected one stdout line, got {lines:?}"
    );
    lines[0].to_owned()
}

/// `result=` of a hashing example, checked against the documented line format.
fn result_of(name: &str, bin: &str, icd: &str, args: &[&str]) -> String {
    let out = run(bin, icd, args);
    let line = stdout_line(bin, icd, &out);
    let prefix = format!("vkfuse-example {name} device=\"");
    assert!(line.starts_with(&prefix), "bad line {line:?}");
    let (_, result) = line
        .rsplit_once("\" result=")
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    assert_eq!(result.len(), 16, "bad line {line:?}");
    assert!(
        result
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "bad line {line:?}"
    );
    result.to_owned()
}

fn same_result_everywhere(name: &str, bin: &str, args: &[&str]) {
    let results: Vec<(String, String)> = icds()
        .into_iter()
        .map(|icd| {
            let r = result_of(name, bin, &icd, args);
            (icd, r)
        })
        .collect();
    if let Some((_, first)) = results.first() {
        assert!(
            results.iter().all(|(_, r)| r == first),
            "{name}: results differ between drivers: {results:?}"
        );
    }
}

#[test]
fn compute_is_exact_across_drivers() {
    same_result_everywhere(
        "compute",
        env!("CARGO_BIN_EXE_compute"),
        &["--elements", "50000"],
    );
    same_result_everywhere(
        "compute",
        env!("CARGO_BIN_EXE_compute"),
        &["--elements", "50000", "--force-staging"],
    );
}

#[test]
fn multiqueue_equals_compute() {
    for icd in icds() {
        let compute = result_of(
            "compute",
            env!("CARGO_BIN_EXE_compute"),
            &icd,
            &["--elements", "40000"],
        );
        let multi = result_of(
            "multiqueue",
            env!("CARGO_BIN_EXE_multiqueue"),
            &icd,
            &["--elements", "40000", "--chunks", "5"],
        );
        assert_eq!(compute, multi, "multiqueue and compute differ on {icd}");
    }
}

#[test]
fn offscreen_is_exact_across_drivers() {
    same_result_everywhere("offscreen", env!("CARGO_BIN_EXE_offscreen"), &[]);
}

#[test]
fn multithread_is_exact_across_drivers() {
    same_result_everywhere(
        "multithread",
        env!("CARGO_BIN_EXE_multithread"),
        &["--threads", "3", "--primaries", "5", "--secondaries", "7"],
    );
}

#[test]
fn image_chain_is_exact_across_drivers() {
    same_result_everywhere(
        "image-chain",
        env!("CARGO_BIN_EXE_image-chain"),
        &["--rounds", "5"],
    );
}

#[test]
fn benchmarks_print_their_json() {
    for icd in icds() {
        let bin = env!("CARGO_BIN_EXE_bench-record");
        let line = stdout_line(
            bin,
            &icd,
            &run(bin, &icd, &["--commands", "1000", "--iterations", "2"]),
        );
        assert!(
            line.starts_with(
                "{\"name\":\"bench-record\",\"commands\":1000,\"iterations\":2,\"record_ns\":["
            ),
            "{line}"
        );
        assert!(
            line.contains("],\"submit_wait_ns\":[")
                && line.contains("],\"total_ns\":[")
                && line.ends_with("]}"),
            "{line}"
        );

        let bin = env!("CARGO_BIN_EXE_bench-frame");
        let line = stdout_line(bin, &icd, &run(bin, &icd, &["--frames", "3"]));
        assert!(
            line.starts_with("{\"name\":\"bench-frame\",\"frames\":3,\"frame_ns\":["),
            "{line}"
        );
        let values = line.trim_end_matches("]}").rsplit('[').next().unwrap_or("");
        assert_eq!(
            values
                .split(',')
                .filter(|v| v.parse::<u64>().is_ok())
                .count(),
            3,
            "{line}"
        );
    }
}

#[test]
fn bad_arguments_are_rejected() {
    let out = Command::new(env!("CARGO_BIN_EXE_compute"))
        .arg("--no-such-flag")
        .output()
        .expect("spawn compute");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
    assert!(out.stdout.is_empty());
}
