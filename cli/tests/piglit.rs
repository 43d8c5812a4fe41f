//! OpenGL through Zink on vkfuse: cts/piglit/run runs a 463-test piglit subset on lavapipe
//! directly and through vkfuse, and fails when a test passes directly but not through vkfuse
//! (unless cts/piglit/zink-expected-differences.txt gives the cause). Once with one lavapipe
//! member, once with two and every object and command on both (VKFUSE_RESIDENCY=all).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// `xvfb-run -a` picks a free display number racily: two at once may pick the same one, and
/// one run's server then goes away under the other's tests (XOpenDisplay failures seen in CI).
/// The tests of this file start one Xvfb at a time.
static XVFB: Mutex<()> = Mutex::new(());

fn run(members: &str) {
    let _one_xvfb = XVFB.lock().unwrap_or_else(|p| p.into_inner());
    let test = format!("piglit_{members}");
    if common::which("piglit").is_none() || common::which("xvfb-run").is_none() {
        common::skip(
            &test,
            "piglit or xvfb-run is not installed (scripts/deps installs them)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = common::temp_dir(&test);
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("cts/piglit/run"))
        .args(["--members", members])
        .arg(&out_dir)
        .env("VKFUSE_LIBRARY", common::library());
    let out = common::run(&mut cmd);
    let stdout = &out.stdout;
    let stderr = &out.stderr;
    assert!(
        !stdout.contains("SKIP:"),
        "cts/piglit/run skipped: {stdout}"
    );
    assert!(
        out.status.success(),
        "piglit over Zink, members {members}: regressions through vkfuse\n{}\n{}",
        common::tail(stdout, 40),
        common::tail(stderr, 20)
    );
    assert!(
        stdout.contains("vkfuse      463"),
        "expected 463 tests through vkfuse:\n{stdout}"
    );
    eprintln!("{}", common::tail(stdout, 12));
}

/// Zink on vkfuse offers OpenGL 4.6, as on lavapipe directly.
#[test]
fn zink_reports_gl_4_6_on_vkfuse() {
    let test = "zink_reports_gl_4_6_on_vkfuse";
    if common::which("glxinfo").is_none() || common::which("xvfb-run").is_none() {
        common::skip(
            test,
            "glxinfo or xvfb-run is not installed (scripts/deps installs them)",
        );
        return;
    }
    let _one_xvfb = XVFB.lock().unwrap_or_else(|p| p.into_inner());
    let lvp = common::lavapipe();
    for members in [vec![lvp.clone()], vec![lvp.clone(), lvp.clone()]] {
        let mut cmd = common::fused("xvfb-run", &members);
        cmd.args(["-a", "glxinfo", "-B"])
            .env("GALLIUM_DRIVER", "zink")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env(
                "VKFUSE_RESIDENCY",
                if members.len() > 1 { "all" } else { "primary" },
            );
        let out = common::run(&mut cmd);
        out.assert_success();
        assert!(
            out.stdout
                .contains("OpenGL renderer string: zink (vkfuse ("),
            "{}",
            out.dump()
        );
        assert!(
            out.stdout
                .contains("OpenGL core profile version string: 4.6"),
            "{}",
            out.dump()
        );
    }
}

/// One test, so that the two runs (each about two minutes on two cores) do not compete.
#[test]
fn piglit_over_zink_matches_lavapipe() {
    run("lvp");
    run("lvp2");
}
