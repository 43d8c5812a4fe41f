//! (d) Bad input: a missing manifest, a malformed manifest, a manifest whose library does not
//! exist, a library that is not a Vulkan ICD, a driver without devices, a malformed config file,
//! bad settings, zero members. Each gives a clear message on stderr, no crash, and the remaining
//! members keep working.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Runs vulkaninfo and the compute example with `members` (one bad, the rest lavapipe) and
/// checks: exactly the good members form the fused device, the message names `mention`, compute
/// gives lavapipe's direct result.
fn bad_member(test: &str, members: &[PathBuf], good_lavapipes: usize, mention: &str) {
    bad_member_logged(test, members, good_lavapipes, mention, "warn");
}

/// [`bad_member`] with the message expected at `log` level (`VKFUSE_LOG`).
fn bad_member_logged(
    test: &str,
    members: &[PathBuf],
    good_lavapipes: usize,
    mention: &str,
    log: &str,
) {
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    let mut cmd = fused(vulkaninfo, members);
    cmd.arg("--summary").env("VKFUSE_LOG", log);
    let out = run(&mut cmd);
    out.assert_no_crash();
    out.assert_success();
    assert_one_fused_device(&out, &[("llvmpipe", good_lavapipes)]);
    assert!(
        out.stderr.contains(mention),
        "stderr does not mention {mention:?} (expected one clear message about the bad member)\n{}",
        out.dump()
    );

    let reference = direct_result("compute", &lavapipe());
    let mut cmd = fused(example("compute"), members);
    cmd.env("VKFUSE_RESIDENCY", "all");
    let got = run_example(cmd);
    assert_eq!(
        got.result, reference.result,
        "compute with a bad member present"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

fn manifest_for(dir: &Path, name: &str, library: &str) -> PathBuf {
    let text = serde_json::json!({
        "file_format_version": "1.0.0",
        "ICD": {"library_path": library, "api_version": "1.3.239"}
    });
    write(dir, name, &text.to_string())
}

#[test]
fn missing_manifest() {
    let dir = temp_dir("missing_manifest");
    let missing = dir.join("does-not-exist.json");
    bad_member(
        "missing_manifest",
        &[missing.clone(), lavapipe()],
        1,
        &missing.display().to_string(),
    );
}

#[test]
fn malformed_manifest() {
    let dir = temp_dir("malformed_manifest");
    let bad = write(
        &dir,
        "malformed.json",
        "{\"file_format_version\": \"1.0.0\", \"ICD\": {",
    );
    bad_member(
        "malformed_manifest",
        &[bad.clone(), lavapipe()],
        1,
        &bad.display().to_string(),
    );
}

#[test]
fn manifest_without_library_path() {
    let dir = temp_dir("manifest_without_library_path");
    let bad = write(
        &dir,
        "nolib.json",
        r#"{"file_format_version": "1.0.0", "ICD": {"api_version": "1.3.0"}}"#,
    );
    bad_member(
        "manifest_without_library_path",
        &[lavapipe(), bad.clone()],
        1,
        &bad.display().to_string(),
    );
}

#[test]
fn library_does_not_exist() {
    let dir = temp_dir("library_does_not_exist");
    let lib = dir.join("libvulkan_nothing_here.so");
    let bad = manifest_for(&dir, "nolibrary.json", &lib.display().to_string());
    bad_member(
        "library_does_not_exist",
        &[bad, lavapipe()],
        1,
        "libvulkan_nothing_here.so",
    );
}

#[test]
fn library_is_not_a_vulkan_icd() {
    let test = "library_is_not_a_vulkan_icd";
    let Some(libz) = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
        "/usr/lib/libz.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file()) else {
        skip(
            test,
            "no libz.so.1 found to stand in for a library that is not an ICD",
        );
        return;
    };
    let dir = temp_dir(test);
    let copy = dir.join("libnot_an_icd.so");
    std::fs::copy(&libz, &copy).unwrap_or_else(|e| panic!("cannot copy {}: {e}", libz.display()));
    let bad = manifest_for(&dir, "notanicd.json", &copy.display().to_string());
    bad_member(test, &[bad, lavapipe()], 1, "libnot_an_icd.so");
}

#[test]
fn bad_member_between_good_ones() {
    let dir = temp_dir("bad_member_between_good_ones");
    let bad = write(&dir, "broken.json", "not json at all");
    let lvp = lavapipe();
    bad_member(
        "bad_member_between_good_ones",
        &[lvp.clone(), bad.clone(), lvp],
        2,
        &bad.display().to_string(),
    );
}

/// A real driver that loads but finds no device here (Intel's, on a machine without Intel GPU).
/// That is normal on most machines (the default scan meets it every time), so the message is
/// expected at `info` level.
#[test]
fn driver_without_devices() {
    let test = "driver_without_devices";
    let Some(intel) = ["intel_icd.x86_64.json", "radeon_icd.x86_64.json"]
        .iter()
        .map(|n| Path::new("/usr/share/vulkan/icd.d").join(n))
        .find(|p| p.is_file())
    else {
        skip(
            test,
            "no Intel or Radeon manifest to use as a driver without devices",
        );
        return;
    };
    if Path::new("/dev/dri").exists() {
        skip(
            test,
            "/dev/dri exists: the Intel/Radeon driver may find a device here",
        );
        return;
    }
    bad_member_logged(
        test,
        &[intel.clone(), lavapipe()],
        1,
        intel.file_name().and_then(|n| n.to_str()).unwrap_or("icd"),
        "info",
    );
}

#[test]
fn zero_members() {
    let test = "zero_members";
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    let dir = temp_dir(test);
    let missing = dir.join("nothing.json");
    let mut cmd = fused(vulkaninfo, std::slice::from_ref(&missing));
    cmd.arg("--summary");
    let out = run(&mut cmd);
    out.assert_no_crash();
    let devices = vulkaninfo_devices(&out.stdout);
    assert!(
        devices.is_empty(),
        "zero members must give zero devices, got {devices:?}\n{}",
        out.dump()
    );
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "stderr does not mention {}\n{}",
        missing.display(),
        out.dump()
    );
    // A program that wants a device fails cleanly too.
    let mut cmd = fused(example("compute"), &[missing]);
    let out = run(&mut cmd);
    out.assert_no_crash();
    assert!(
        !out.status.success(),
        "compute cannot succeed without a device\n{}",
        out.dump()
    );
}

#[test]
fn malformed_config_file() {
    let test = "malformed_config_file";
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    let config_home = temp_dir(test);
    let config_dir = config_home.join("vkfuse");
    std::fs::create_dir_all(&config_dir).unwrap_or_else(|e| panic!("{e}"));
    write(&config_dir, "config.json", "{ this is not json");
    let mut cmd = fused(vulkaninfo, &[lavapipe()]);
    cmd.arg("--summary").env("XDG_CONFIG_HOME", &config_home);
    let out = run(&mut cmd);
    out.assert_no_crash();
    out.assert_success();
    assert_one_fused_device(&out, &[("llvmpipe", 1)]);
    assert!(
        out.stderr.contains("config.json"),
        "stderr does not mention the malformed config.json\n{}",
        out.dump()
    );
}

/// Unknown values of the vkfuse variables: a message naming the variable, and a working default.
#[test]
fn bad_settings_fall_back() {
    let test = "bad_settings_fall_back";
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    for (var, value) in [
        ("VKFUSE_STRATEGY", "no-such-strategy"),
        ("VKFUSE_RESIDENCY", "everywhere"),
        ("VKFUSE_PRIMARY", "7"),
        ("VKFUSE_LOG", "shout"),
        ("VKFUSE_SHARING", "telepathy"),
        ("VKFUSE_SYNC", "pigeons"),
        ("VKFUSE_IMAGE_COPIES", "sometimes"),
    ] {
        let mut cmd = fused(&vulkaninfo, &[lavapipe()]);
        cmd.arg("--summary").env(var, value);
        let out = run(&mut cmd);
        out.assert_no_crash();
        out.assert_success();
        assert_one_fused_device(&out, &[("llvmpipe", 1)]);
        assert!(
            out.stderr.contains(var),
            "{var}={value}: stderr does not name {var}\n{}",
            out.dump()
        );
    }
}
