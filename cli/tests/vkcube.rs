//! (c) vkcube under Xvfb through vkfuse exits 0 with zero validation messages: one lavapipe
//! member, and two with VKFUSE_RESIDENCY=all.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::*;

/// `xvfb-run -a` picks a free display number racily: one Xvfb at a time.
static XVFB: Mutex<()> = Mutex::new(());

fn vkcube(test: &str, members: &[PathBuf], residency: &str) {
    let (Some(xvfb_run), Some(_), Some(_)) = (which("xvfb-run"), which("Xvfb"), which("xauth"))
    else {
        skip(
            test,
            "xvfb-run, Xvfb or xauth not installed (Debian: xvfb xauth)",
        );
        return;
    };
    if which("vkcube").is_none() {
        skip(test, "vkcube not installed (Debian: vulkan-tools)");
        return;
    }
    let mut cmd = fused(&xvfb_run, members);
    cmd.args(["-a", "-s", "-screen 0 640x480x24", "vkcube", "--c", "30"])
        .env("VKFUSE_RESIDENCY", residency);
    if validation_layer_present() {
        // vkcube registers no debug messenger without --validate, so the layer logs to stdout.
        cmd.env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation");
    }
    let out = {
        let _one_at_a_time = XVFB.lock().unwrap_or_else(|p| p.into_inner());
        run(&mut cmd)
    };
    out.assert_success();
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("vkfuse ("),
        "vkcube did not select the fused device\n{}",
        out.dump()
    );
    for marker in ["Validation Error", "VUID-"] {
        assert!(
            !all.contains(marker),
            "validation messages from vkcube through vkfuse\n{}",
            out.dump()
        );
    }
}

#[test]
fn vkcube_one_lavapipe_member() {
    vkcube("vkcube_one_lavapipe_member", &[lavapipe()], "primary");
}

#[test]
fn vkcube_two_lavapipe_members_residency_all() {
    let lvp = lavapipe();
    vkcube(
        "vkcube_two_lavapipe_members_residency_all",
        &[lvp.clone(), lvp],
        "all",
    );
}
