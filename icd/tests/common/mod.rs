//! Shared helpers of the ICD's integration tests: they load the built ICD through the real
//! Vulkan loader with real member drivers.

#![allow(dead_code)] // Reason: each test binary uses a subset of these helpers.

use std::path::{Path, PathBuf};

pub const LAVAPIPE: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
pub const SWIFTSHADER: &str = "/usr/lib/chromium/vk_swiftshader_icd.json";

/// target/<profile>, found from the test executable's path (target/<profile>/deps/<test>).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Writes a manifest for the built libvkfuse.so into a fresh temporary directory.
pub fn vkfuse_manifest() -> PathBuf {
    let lib = target_dir().join("libvkfuse.so");
    assert!(
        lib.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        lib.display()
    );
    let dir = std::env::temp_dir().join(format!("vkfuse-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("vkfuse_icd.json");
    let text = format!(
        "{{\"file_format_version\":\"1.0.0\",\"ICD\":{{\"library_path\":\"{}\",\"api_version\":\"1.3.239\"}}}}",
        lib.display()
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Runs this test executable again as a child with extra environment, running only `test`.
pub fn run_child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd.env("VKFUSE_TEST_CHILD", "1");
    cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn child test")
}

pub fn is_child() -> bool {
    std::env::var_os("VKFUSE_TEST_CHILD").is_some()
}

/// True when SwiftShader is installed; otherwise prints why the caller skips.
pub fn swiftshader_present() -> bool {
    let present = Path::new(SWIFTSHADER).exists();
    if !present {
        println!("SKIP: SwiftShader is not installed (package chromium-common)");
    }
    present
}
