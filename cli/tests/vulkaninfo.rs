//! (a) `VK_ICD_FILENAMES=<vkfuse manifest> vulkaninfo --summary` lists exactly one device, named
//! after its members, for members lavapipe, lavapipe×2 and lavapipe + SwiftShader.

mod common;

use common::*;

fn check(test: &str, members: &[std::path::PathBuf], expect: &[(&str, usize)]) {
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    let mut cmd = fused(vulkaninfo, members);
    cmd.arg("--summary");
    let out = run(&mut cmd);
    out.assert_success();
    let name = assert_one_fused_device(&out, expect);
    eprintln!("{test}: {name}");
}

#[test]
fn one_lavapipe_member() {
    check("one_lavapipe_member", &[lavapipe()], &[("llvmpipe", 1)]);
}

#[test]
fn two_lavapipe_members_from_one_manifest() {
    let lvp = lavapipe();
    check(
        "two_lavapipe_members_from_one_manifest",
        &[lvp.clone(), lvp],
        &[("llvmpipe", 2)],
    );
}

#[test]
fn lavapipe_and_swiftshader() {
    let test = "lavapipe_and_swiftshader";
    let Some(sw) = swiftshader(test) else {
        return;
    };
    check(
        test,
        &[lavapipe(), sw],
        &[("llvmpipe", 1), ("SwiftShader", 1)],
    );
}

#[test]
fn fused_api_version_is_1_3() {
    let test = "fused_api_version_is_1_3";
    let Some(vulkaninfo) = vulkaninfo(test) else {
        return;
    };
    let mut cmd = fused(vulkaninfo, &[lavapipe()]);
    cmd.arg("--summary");
    let out = run(&mut cmd);
    out.assert_success();
    let api = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim() == "apiVersion")
        .map(|(_, v)| v.trim().to_string());
    assert!(
        api.as_deref().is_some_and(|v| v.starts_with("1.3")),
        "fused apiVersion {api:?}, expected 1.3.x (lavapipe is 1.3)\n{}",
        out.dump()
    );
}
