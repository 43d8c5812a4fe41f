//! The `vkfuse` command: (e) `info --json`, (f) `run`, and `install`, `demo`, `bench`, usage
//! errors.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn vkfuse() -> std::process::Command {
    // `run`, `install`, `demo` and `bench` use the libvkfuse.so next to `vkfuse`.
    library();
    command(vkfuse_bin())
}

fn info_json(members: &[PathBuf]) -> (Output, Value) {
    let mut cmd = vkfuse();
    cmd.args(["info", "--json"])
        .env("VKFUSE_ICDS", icds(members));
    let out = run(&mut cmd);
    out.assert_success();
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("`vkfuse info --json` is not JSON ({e})\n{}", out.dump()));
    (out, json)
}

#[test]
fn info_json_lists_members_and_the_fused_device() {
    let dir = temp_dir("info_json");
    let missing = dir.join("missing.json");
    let (out, json) = info_json(&[lavapipe(), missing.clone()]);
    let members = json["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members array\n{}", out.dump()));
    assert_eq!(members.len(), 2, "{}", out.dump());
    assert_eq!(members[0]["status"], "ok", "{}", out.dump());
    assert!(
        members[0]["device_name"]
            .as_str()
            .is_some_and(|n| n.contains("llvmpipe")),
        "{}",
        out.dump()
    );
    assert_eq!(members[1]["status"], "skipped", "{}", out.dump());
    assert!(
        members[1]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a skipped member needs a reason\n{}",
        out.dump()
    );
    assert!(
        members[1]["manifest"]
            .as_str()
            .is_some_and(|m| m == missing.display().to_string()),
        "{}",
        out.dump()
    );
    let fused = &json["fused"];
    assert!(
        fused["device_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("vkfuse (") && n.contains("llvmpipe")),
        "{}",
        out.dump()
    );
    assert!(fused["api_version"].as_str().is_some(), "{}", out.dump());
    assert!(fused["device_extensions"].is_array(), "{}", out.dump());
    assert!(fused["limited_by"].is_array(), "{}", out.dump());
}

#[test]
fn info_json_two_vendors() {
    let Some(sw) = swiftshader("info_json_two_vendors") else {
        return;
    };
    let (out, json) = info_json(&[lavapipe(), sw]);
    let members = json["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2, "{}", out.dump());
    for m in &members {
        assert_eq!(m["status"], "ok", "{}", out.dump());
    }
    let name = json["fused"]["device_name"].as_str().unwrap_or_default();
    assert!(
        name.contains("llvmpipe") && name.contains("SwiftShader"),
        "fused name {name:?}\n{}",
        out.dump()
    );
    // Different drivers: memory that is not host-visible goes through staging buffers, and
    // images are copied as images (both import host memory).
    assert_eq!(
        json["fused"]["transfer_tiers"][0]["not_host_visible"],
        "staging",
        "{}",
        out.dump()
    );
    assert_eq!(
        json["fused"]["transfer_tiers"][0]["images"],
        "copied as images through staging buffers",
        "{}",
        out.dump()
    );
}

/// Two instances of one driver share device and driver UUIDs: their capabilities allow shared
/// device memory (opaque fds); what vkfuse uses between them for host-visible memory is shared
/// host memory (shared device memory with `VKFUSE_SHARING=device`, mirrored memory with
/// `VKFUSE_SHARING=mirrored`). `vkfuse info` says both per pair.
#[test]
fn info_json_transfer_tiers() {
    let (out, json) = info_json(&[lavapipe(), lavapipe()]);
    let tiers = json["fused"]["transfer_tiers"]
        .as_array()
        .unwrap_or_else(|| panic!("no transfer_tiers\n{}", out.dump()));
    assert_eq!(tiers.len(), 1, "{}", out.dump());
    assert_eq!(tiers[0]["a"], 0, "{}", out.dump());
    assert_eq!(tiers[0]["b"], 1, "{}", out.dump());
    assert_eq!(tiers[0]["tier"], "shared host memory", "{}", out.dump());
    assert_eq!(tiers[0]["best"], "shared device memory", "{}", out.dump());
    assert_eq!(
        tiers[0]["not_host_visible"],
        "shared device memory",
        "{}",
        out.dump()
    );
    assert_eq!(
        tiers[0]["images"],
        "with their memory (same texel layout)",
        "{}",
        out.dump()
    );
    for (sharing, tier) in [
        (
            "mirrored",
            "mirrored (copies through the members' mappings)",
        ),
        ("device", "shared device memory"),
        ("staging", "staging"),
    ] {
        let mut cmd = vkfuse();
        cmd.args(["info", "--json"])
            .env("VKFUSE_ICDS", icds(&[lavapipe(), lavapipe()]))
            .env("VKFUSE_SHARING", sharing);
        let out = run(&mut cmd);
        out.assert_success();
        let json: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
        assert_eq!(
            json["fused"]["transfer_tiers"][0]["tier"],
            tier,
            "{}",
            out.dump()
        );
    }
    let (out, json) = info_json(&[lavapipe()]);
    assert_eq!(
        json["fused"]["transfer_tiers"].as_array().map(Vec::len),
        Some(0),
        "{}",
        out.dump()
    );
}

/// How a batch waits for another member's: lavapipe exports no semaphores (the bridge thread,
/// between two lavapipes too), two SwiftShader members share them (binary, opaque fds) with
/// `VKFUSE_SYNC=shared`, not by default (`auto`: a CPU driver) or with `bridge`; members of
/// different drivers never do.
#[test]
fn info_json_waits_between_members() {
    let waits = |members: &[std::path::PathBuf], sync: &str| {
        let mut cmd = vkfuse();
        cmd.args(["info", "--json"])
            .env("VKFUSE_ICDS", icds(members))
            .env("VKFUSE_SYNC", sync);
        let out = run(&mut cmd);
        out.assert_success();
        let json: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
        json["fused"]["transfer_tiers"]
            .as_array()
            .map(|t| t.iter().map(|p| p["waits"].to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no transfer_tiers\n{}", out.dump()))
    };
    let bridge = "\"bridge thread\"";
    let shared = "\"shared semaphores (opaque fds)\"";
    assert_eq!(waits(&[lavapipe(), lavapipe()], "shared"), [bridge]);
    let Some(sw) = swiftshader("info_json_waits_between_members") else {
        return;
    };
    assert_eq!(
        waits(&[sw.clone(), lavapipe(), sw.clone()], "shared"),
        [bridge, shared, bridge]
    );
    for sync in ["auto", "bridge"] {
        assert_eq!(waits(&[sw.clone(), sw.clone()], sync), [bridge]);
    }
    // SwiftShader keeps decompressed and cube-border texels beside an image's memory: images
    // are copied between two SwiftShader members as between drivers.
    let (out, json) = info_json(&[sw.clone(), sw]);
    assert_eq!(
        json["fused"]["transfer_tiers"][0]["images"],
        "copied as images through staging buffers",
        "{}",
        out.dump()
    );
}

#[test]
fn info_json_zero_members() {
    let dir = temp_dir("info_zero");
    let (out, json) = info_json(&[dir.join("none.json")]);
    assert!(
        json["fused"].is_null(),
        "zero members: fused must be null\n{}",
        out.dump()
    );
}

#[test]
fn info_text() {
    let mut cmd = vkfuse();
    cmd.args(["info", "--members", "lavapipe"]);
    let out = run(&mut cmd);
    out.assert_success();
    assert!(out.stdout.contains("llvmpipe"), "{}", out.dump());
    assert!(out.stdout.contains("Fused device"), "{}", out.dump());
    assert!(out.stdout.contains("vkfuse ("), "{}", out.dump());
}

#[test]
fn run_vulkaninfo() {
    let Some(vulkaninfo) = vulkaninfo("run_vulkaninfo") else {
        return;
    };
    let mut cmd = vkfuse();
    cmd.args(["run", "--members", "lvp,lvp", "--"])
        .arg(vulkaninfo)
        .arg("--summary");
    let out = run(&mut cmd);
    out.assert_success();
    assert_one_fused_device(&out, &[("llvmpipe", 2)]);
}

#[test]
fn run_compute_matches_direct() {
    let reference = direct_result("compute", &lavapipe());
    let mut cmd = vkfuse();
    cmd.args([
        "run",
        "--members",
        "lavapipe,lavapipe",
        "--strategy",
        "single",
        "--residency",
        "all",
        "--",
    ])
    .arg(example("compute"))
    .args(validation_args());
    let got = run_example(cmd);
    assert!(got.device.starts_with("vkfuse ("), "{got:?}");
    assert_eq!(got.result, reference.result);
}

#[test]
fn run_sets_the_environment_and_cleans_up() {
    let mut cmd = vkfuse();
    cmd.args([
        "run",
        "--members",
        "lvp",
        "--residency",
        "all",
        "--primary",
        "0",
        "--",
        "sh",
        "-c",
        "echo \"$VK_ICD_FILENAMES\"; echo \"$VKFUSE_ICDS\"; echo \"$VKFUSE_RESIDENCY\"; \
         echo \"$VKFUSE_PRIMARY\"; cat \"$VK_ICD_FILENAMES\"",
    ]);
    let out = run(&mut cmd);
    out.assert_success();
    let mut lines = out.stdout.lines();
    let manifest = PathBuf::from(lines.next().unwrap_or_default());
    assert_eq!(
        lines.next(),
        Some(lavapipe().display().to_string().as_str())
    );
    assert_eq!(lines.next(), Some("all"));
    assert_eq!(lines.next(), Some("0"));
    let text: String = lines.collect::<Vec<_>>().join("\n");
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the run manifest is not JSON ({e})\n{}", out.dump()));
    assert_eq!(
        json["ICD"]["library_path"].as_str(),
        Some(library().display().to_string().as_str())
    );
    assert!(
        !manifest.exists(),
        "the temporary manifest {} was left behind",
        manifest.display()
    );
}

#[test]
fn run_returns_the_exit_code() {
    let mut cmd = vkfuse();
    cmd.args(["run", "--members", "lvp", "--", "sh", "-c", "exit 7"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(7), "{}", out.dump());
}

#[test]
fn usage_errors_are_clear() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run"], 2, "no command"),
        (
            &["run", "--strategy", "fastest", "--", "true"],
            2,
            "unknown strategy",
        ),
        (
            &["run", "--residency", "some", "--", "true"],
            2,
            "unknown residency",
        ),
        (
            &["run", "--members", "nvidia-9000", "--", "true"],
            2,
            "unknown member",
        ),
        (
            &["run", "--members", "/nonexistent/x.json", "--", "true"],
            2,
            "does not exist",
        ),
        (&["run", "--", "/nonexistent/program"], 127, "cannot run"),
        (&["info", "--frobnicate"], 2, "unknown option"),
        (&["bench", "--runs", "0"], 2, "positive integer"),
        (&["no-such-verb"], 2, "unknown verb"),
    ];
    for (args, code, message) in cases {
        let mut cmd = vkfuse();
        cmd.args(*args);
        let out = run(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "vkfuse {args:?}\n{}",
            out.dump()
        );
        assert!(
            out.stderr.contains(message),
            "vkfuse {args:?}: expected {message:?}\n{}",
            out.dump()
        );
    }
    let mut cmd = vkfuse();
    cmd.arg("help");
    let out = run(&mut cmd);
    out.assert_success();
    for verb in ["info", "run", "demo", "bench", "install"] {
        assert!(
            out.stdout.contains(verb),
            "help lacks {verb}\n{}",
            out.dump()
        );
    }
}

fn user_install(home: &Path, args: &[&str]) -> Output {
    let mut cmd = vkfuse();
    cmd.arg("install")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME");
    run(&mut cmd)
}

#[test]
fn install_user_dry_run_changes_nothing() {
    let home = temp_dir("install_dry_run");
    let out = user_install(&home, &["--user", "--dry-run"]);
    out.assert_success();
    let lib = home.join(".local/lib/vkfuse/libvkfuse.so");
    let manifest = home.join(".local/share/vulkan/icd.d/vkfuse_icd.json");
    assert!(
        out.stdout.contains(&lib.display().to_string()),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout.contains(&manifest.display().to_string()),
        "{}",
        out.dump()
    );
    assert!(!lib.exists() && !manifest.exists(), "--dry-run wrote files");
}

#[test]
fn install_user_is_found_by_the_loader_and_uninstalls() {
    let test = "install_user_is_found_by_the_loader_and_uninstalls";
    let home = temp_dir(test);
    let out = user_install(&home, &["--user"]);
    out.assert_success();
    let lib = home.join(".local/lib/vkfuse/libvkfuse.so");
    let manifest = home.join(".local/share/vulkan/icd.d/vkfuse_icd.json");
    assert!(lib.is_file(), "{}", out.dump());
    let m = vkfuse_manifests::read_manifest(&manifest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.library, lib);

    if let Some(vulkaninfo) = vulkaninfo(test) {
        // No VK_ICD_FILENAMES: the loader searches its directories, ~/.local/share among them.
        let mut cmd = command(vulkaninfo);
        cmd.arg("--summary")
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .env("VKFUSE_ICDS", lavapipe());
        let out = run(&mut cmd);
        out.assert_no_crash();
        let devices = vulkaninfo_devices(&out.stdout);
        assert!(
            devices.iter().any(|d| d.starts_with("vkfuse (")),
            "the loader did not find the user-installed vkfuse: {devices:?}\n{}",
            out.dump()
        );
    }

    let out = user_install(&home, &["--user", "--uninstall"]);
    out.assert_success();
    assert!(
        !lib.exists() && !manifest.exists(),
        "uninstall left files\n{}",
        out.dump()
    );
    assert!(
        !home.join(".local/lib/vkfuse").exists(),
        "uninstall left the directory"
    );
    let out = user_install(&home, &["--user", "--uninstall"]);
    out.assert_success();
    assert!(out.stdout.contains("not installed"), "{}", out.dump());
}

#[test]
fn install_system_into_a_staging_root() {
    let stage = temp_dir("install_destdir");
    let mut cmd = vkfuse();
    cmd.args(["install", "--destdir"]).arg(&stage);
    let out = run(&mut cmd);
    out.assert_success();
    let manifest = stage.join("usr/share/vulkan/icd.d/vkfuse_icd.json");
    let m = vkfuse_manifests::read_manifest(&manifest)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert_eq!(m.library, Path::new("/usr/local/lib/vkfuse/libvkfuse.so"));
    assert!(stage.join("usr/local/lib/vkfuse/libvkfuse.so").is_file());
}

#[test]
fn demo_with_lavapipe_passes() {
    let mut cmd = vkfuse();
    cmd.args(["demo", "--members", "lavapipe,lavapipe"]);
    let out = run(&mut cmd);
    out.assert_success();
    assert!(out.stdout.contains("PASS"), "{}", out.dump());
    assert!(out.stdout.contains("vkfuse ("), "{}", out.dump());
    // Every workload also runs with mirrored memory, and matches.
    let mirrored: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("vkfuse, round_robin, mirrored"))
        .collect();
    assert_eq!(mirrored.len(), 7, "{}", out.dump());
    assert!(
        mirrored.iter().all(|l| l.contains("same result")),
        "{}",
        out.dump()
    );
    // The kernels split under compute_split, with shared, mirrored and staged memory (the
    // histogram's add atomics only into copies of each member's own).
    for (workload, config, split) in [
        ("mandelbrot", "vkfuse, compute_split ", true),
        ("mandelbrot", "vkfuse, compute_split, mirrored", true),
        ("histogram", "vkfuse, compute_split ", false),
        ("histogram", "vkfuse, compute_split, mirrored", true),
        ("filter", "vkfuse, compute_split ", true),
        ("filter", "vkfuse, compute_split, mirrored", true),
        ("mandelbrot", "vkfuse, compute_split, staging", true),
        ("histogram", "vkfuse, compute_split, staging", true),
        ("filter", "vkfuse, compute_split, staging", true),
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(workload) && l.contains(config))
            .unwrap_or_else(|| panic!("no {workload} {config} row:\n{}", out.dump()));
        assert!(line.contains("same result"), "{line}\n{}", out.dump());
        assert_eq!(line.contains("split, workgroups"), split, "{line}");
    }
    // The indirect saxpy whose group counts a dispatch writes splits by workgroup slices.
    for config in [
        "compute_split ",
        "compute_split, mirrored",
        "compute_split, staging",
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("indirect") && l.contains(config))
            .unwrap_or_else(|| panic!("no indirect {config} row:\n{}", out.dump()));
        assert!(line.contains("same result"), "{line}\n{}", out.dump());
        assert!(line.contains("indirect sliced, parts of 16"), "{line}");
    }
}

#[test]
fn demo_with_the_machines_drivers_passes() {
    let mut cmd = vkfuse();
    cmd.arg("demo");
    let out = run(&mut cmd);
    out.assert_success();
    assert!(out.stdout.contains("PASS"), "{}", out.dump());
    // With SwiftShader beside lavapipe, the filter's images are copied between drivers and its
    // dispatch still splits.
    if swiftshader("demo_with_the_machines_drivers_passes").is_some() {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("filter") && l.contains("compute_split "))
            .unwrap_or_else(|| panic!("no filter compute_split row:\n{}", out.dump()));
        assert!(line.contains("split, workgroups"), "{line}\n{}", out.dump());
    }
}

/// The numbers of a JSON array (none where `v` is not one).
fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

#[test]
fn bench_json_smoke() {
    let mut cmd = vkfuse();
    cmd.args([
        "bench",
        "--json",
        "--runs",
        "1",
        "--commands",
        "1000",
        "--iterations",
        "3",
        "--frames",
        "10",
        "--submits",
        "50",
        "--handoff-max-mib",
        "4",
        "--split-scale",
        "8",
    ]);
    // About 2.5 minutes alone in a debug build here; more beside the other tests.
    let out = run_for(&mut cmd, std::time::Duration::from_secs(900));
    out.assert_success();
    let json: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "`vkfuse bench --json` is not one JSON object ({e})\n{}",
            out.dump()
        )
    });
    for key in [
        "forwarding_overhead_recording",
        "forwarding_overhead_frame",
        "round_robin_submit_overhead",
        "round_robin_dependent_chain_overhead",
    ] {
        let v = json[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v}\n{}", out.dump());
    }
    assert!(json["method"]
        .as_str()
        .is_some_and(|m| m.contains("median")));
    // Two SwiftShader members share semaphores (lavapipe, the bench's member, exports none).
    let sem = &json["shared_semaphores"];
    if swiftshader("bench shared_semaphores").is_some() {
        let r = json["shared_semaphores_vs_bridge"]
            .as_f64()
            .unwrap_or(f64::NAN);
        assert!(r.is_finite() && r > 0.0, "{sem}\n{}", out.dump());
        assert!(
            sem["member"]
                .as_str()
                .is_some_and(|m| m.contains("swiftshader")),
            "{sem}"
        );
    } else {
        assert!(sem["skipped"].is_string(), "{sem}");
    }
    let mut tiers = vec!["shared_host_handoff", "mirrored_handoff", "staging_handoff"];
    if swiftshader("bench image_handoff").is_some() {
        tiers.push("image_handoff");
    }
    for tier in tiers {
        let sizes = json[tier]["sizes"]
            .as_array()
            .unwrap_or_else(|| panic!("no {tier} sizes\n{}", out.dump()));
        assert_eq!(sizes.len(), 2, "1 and 4 MiB\n{}", out.dump());
        for s in sizes {
            let r = s["throughput_ratio"].as_f64().unwrap_or(f64::NAN);
            assert!(r.is_finite() && r > 0.0, "{tier}: {s}\n{}", out.dump());
        }
    }
    // Under hybrid every submit's batch either split or ran whole because splitting did not
    // pay; 4096 elements never pay for long.
    for kernel in ["mandelbrot", "matmul", "saxpy", "saxpy_small"] {
        let k = &json["compute_split"]["kernels"][kernel];
        let h = &k["hybrid"];
        let wall = h["wall"].as_f64().unwrap_or(f64::NAN);
        assert!(
            wall.is_finite() && wall > 0.0,
            "{kernel}: {h}\n{}",
            out.dump()
        );
        assert_eq!(
            h["batches_split"].as_u64().unwrap_or(0) + h["batches_whole"].as_u64().unwrap_or(0),
            k["submits"].as_u64().unwrap_or(u64::MAX),
            "{kernel}: {k}\n{}",
            out.dump()
        );
    }
    let small = &json["compute_split"]["kernels"]["saxpy_small"]["hybrid"];
    assert!(
        small["batches_whole"].as_u64().unwrap_or(0) > 0,
        "{}",
        out.dump()
    );
    let interleaved = small["wall_interleaved"].as_f64().unwrap_or(f64::NAN);
    assert!(
        interleaved.is_finite() && interleaved > 0.0,
        "{small}\n{}",
        out.dump()
    );
    for kernel in ["mandelbrot", "matmul", "saxpy"] {
        let k = &json["compute_split"]["kernels"][kernel];
        let groups = u64s(&k["workgroups"]);
        assert!(
            groups.len() == 2 && groups.iter().all(|g| *g > 0),
            "{kernel}: the dispatches did not split: {k}\n{}",
            out.dump()
        );
        for sharing in ["mirrored", "staged"] {
            assert!(
                k[sharing]["merge_bytes_per_dispatch"]
                    .as_f64()
                    .unwrap_or(0.0)
                    > 0.0,
                "{kernel} {sharing}: {k}\n{}",
                out.dump()
            );
        }
    }
    // The indirect saxpy and mandelbrot whose counts a dispatch writes: both members ran
    // parts of each.
    for key in ["sliced_indirect", "sliced_indirect_mandelbrot"] {
        let sliced = &json["compute_split"][key];
        let parts = u64s(&sliced["parts"]);
        assert!(
            parts.len() == 2 && parts.iter().all(|p| *p > 0),
            "{key}: {sliced}\n{}",
            out.dump()
        );
        let cpu = sliced["cpu_work"].as_f64().unwrap_or(f64::NAN);
        assert!(
            cpu.is_finite() && cpu > 0.0,
            "{key}: {sliced}\n{}",
            out.dump()
        );
    }
}
