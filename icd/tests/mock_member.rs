//! Members with different queue family layouts. The Khronos mock ICD (shipped in Debian's
//! chromium-common) offers three queue families but executes nothing; lavapipe offers one.
//! Through vkfuse, multiqueue must stay validation-clean across both layouts, and with lavapipe
//! executing and the mock recording (VKFUSE_RESIDENCY=all) give lavapipe's result.

mod common;

use std::path::Path;
use std::process::Command;

const MOCK_LIB: &str = "/usr/lib/chromium/libVkICD_mock_icd.so";

fn mock_manifest() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vkfuse-mock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("mock_icd.json");
    let text = format!("{{\"file_format_version\":\"1.0.0\",\"ICD\":{{\"library_path\":\"{MOCK_LIB}\",\"api_version\":\"1.3.239\"}}}}");
    std::fs::write(&path, text).expect("manifest");
    path
}

fn multiqueue(env: &[(&str, &str)]) -> (i32, String, String) {
    let exe = common::target_dir().join("multiqueue");
    assert!(
        exe.exists(),
        "{} is missing: build the workspace first",
        exe.display()
    );
    let mut cmd = Command::new(exe);
    cmd.arg("--validation")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run multiqueue");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn result(stdout: &str) -> Option<String> {
    stdout.split("result=").nth(1).map(|r| r.trim().to_string())
}

#[test]
fn queue_families_translate_between_different_layouts() {
    if !Path::new(MOCK_LIB).exists() {
        println!("SKIP: {MOCK_LIB} is not installed (package chromium-common)");
        return;
    }
    let vkfuse = common::vkfuse_manifest();
    let vkfuse = vkfuse.to_string_lossy();
    let mock = mock_manifest();
    let mock = mock.to_string_lossy();

    let (code, out, err) = multiqueue(&[("VK_ICD_FILENAMES", common::LAVAPIPE)]);
    assert_eq!(code, 0, "lavapipe direct: {err}");
    let direct = result(&out).expect("direct result");

    // lavapipe executes, the mock (three families) records everything too.
    let both = format!("{}:{mock}", common::LAVAPIPE);
    let (code, out, err) = multiqueue(&[
        ("VK_ICD_FILENAMES", &vkfuse),
        ("VKFUSE_ICDS", &both),
        ("VKFUSE_RESIDENCY", "all"),
    ]);
    assert_eq!(code, 0, "lavapipe + mock through vkfuse: {err}");
    assert_eq!(result(&out).as_deref(), Some(direct.as_str()));

    // The mock alone: three fused families, ownership transfers between them. The mock computes
    // nothing, so the program reports a result mismatch (exit 1), never a validation message (3).
    let (code, _, err) = multiqueue(&[("VK_ICD_FILENAMES", &vkfuse), ("VKFUSE_ICDS", &mock)]);
    assert!(
        err.contains("ownership transfers: yes"),
        "expected several families: {err}"
    );
    assert_eq!(
        code, 1,
        "mock through vkfuse must fail only on the result: {err}"
    );
    assert!(!err.contains("validation:"), "{err}");
}
