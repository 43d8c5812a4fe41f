//! (c) vkcube under Xvfb through vkfuse exits 0 with zero validation messages: one lavapipe
//! member, and two with VKFUSE_RESIDENCY=all; two under `afr`, where frames alternate between
//! the members; lavapipe + SwiftShader under `afr`, where images cross between the drivers.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use common::*;

/// `xvfb-run -a` picks a free display number racily: one Xvfb at a time.
static XVFB: Mutex<()> = Mutex::new(());

fn vkcube(test: &str, members: &[PathBuf], residency: &str) -> Option<Output> {
    vkcube_with(test, members, residency, "single", &[])
}

fn vkcube_with(
    test: &str,
    members: &[PathBuf],
    residency: &str,
    strategy: &str,
    extra: &[&str],
) -> Option<Output> {
    vkcube_env(test, members, (residency, strategy), extra, &[])
}

/// [`vkcube_with`], with more environment variables for vkfuse.
fn vkcube_env(
    test: &str,
    members: &[PathBuf],
    (residency, strategy): (&str, &str),
    extra: &[&str],
    env: &[(&str, &str)],
) -> Option<Output> {
    let (Some(xvfb_run), Some(_), Some(_)) = (which("xvfb-run"), which("Xvfb"), which("xauth"))
    else {
        skip(
            test,
            "xvfb-run, Xvfb or xauth not installed (Debian: xvfb xauth)",
        );
        return None;
    };
    if which("vkcube").is_none() {
        skip(test, "vkcube not installed (Debian: vulkan-tools)");
        return None;
    }
    let mut cmd = fused(&xvfb_run, members);
    cmd.args(["-a", "-s", "-screen 0 640x480x24", "vkcube", "--c", "30"])
        .args(extra)
        .env("VKFUSE_RESIDENCY", residency)
        .env("VKFUSE_STRATEGY", strategy)
        .env("VKFUSE_LOG", "info")
        .envs(env.iter().copied());
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
    Some(out)
}

#[test]
fn vkcube_afr_two_lavapipe_members() {
    let lvp = lavapipe();
    let Some(out) = vkcube_with(
        "vkcube_afr_two_lavapipe_members",
        &[lvp.clone(), lvp],
        "all",
        "afr",
        &[],
    ) else {
        return;
    };
    frames_alternate(&out);
}

/// 30 frames plus vkcube's texture upload: frames alternate, each member gets about half.
fn frames_alternate(out: &Output) {
    let placed = out
        .stderr
        .lines()
        .find_map(|l| l.split("batches placed: ").nth(1))
        .unwrap_or_else(|| panic!("no placement line\n{}", out.dump()));
    let counts: Vec<u64> = placed
        .split(", ")
        .filter_map(|p| p.rsplit(": ").next()?.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "{placed}");
    assert!(
        counts.iter().all(|n| *n >= 14),
        "frames did not alternate: {placed}"
    );
}

/// Lavapipe and SwiftShader under `afr`, vkcube's texture in an optimally tiled image
/// (`--use_staging`): frames alternate, and the depth buffer and texture are images copied
/// between the drivers. The depth buffer starts every frame's render pass in `UNDEFINED`
/// (its contents discarded), so no member ever needs another's: with lazy copies (the
/// default) only the texture is copied out, once, when the second member first needs it,
/// and copied in there. With `VKFUSE_IMAGE_COPIES=eager` every frame's depth buffer is
/// copied out too, and still never in.
#[test]
fn vkcube_afr_lavapipe_swiftshader_discards_its_depth_buffer() {
    let test = "vkcube_afr_lavapipe_swiftshader_discards_its_depth_buffer";
    let Some(sw) = swiftshader(test) else {
        return;
    };
    // "<out> copied out, <in> copied in (<k> of their <t> subresource(s))"
    let copies = |out: &Output| -> Vec<u64> {
        let line = out
            .stderr
            .lines()
            .find_map(|l| l.split("images copied between members: ").nth(1))
            .unwrap_or_else(|| panic!("no image copies\n{}", out.dump()));
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(n.len() >= 2, "{line}");
        n
    };
    let members = [lavapipe(), sw];
    let Some(out) = vkcube_with(test, &members, "all", "afr", &["--use_staging"]) else {
        return;
    };
    frames_alternate(&out);
    let n = copies(&out);
    assert_eq!(
        n[..2],
        [1, 1],
        "only the texture crosses, once:\n{}",
        out.dump()
    );
    let eager = [("VKFUSE_IMAGE_COPIES", "eager")];
    let Some(out) = vkcube_env(test, &members, ("all", "afr"), &["--use_staging"], &eager) else {
        return;
    };
    frames_alternate(&out);
    let n = copies(&out);
    assert!(
        n[0] >= 14,
        "the depth buffer was not copied out per frame:\n{}",
        out.dump()
    );
    assert_eq!(n[1], 1, "only the texture is copied in:\n{}", out.dump());
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
