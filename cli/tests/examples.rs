//! (b) Each example (compute, offscreen, multiqueue, multithread) with `--validation` through
//! vkfuse gives the same `result=` as directly on the first member: with one member, and with
//! two members (lavapipe×2, lavapipe + SwiftShader) and VKFUSE_RESIDENCY=all.

mod common;

use std::path::PathBuf;

use common::*;

fn check(example_name: &str, members: &[PathBuf], residency: &str) {
    let reference = direct_result(example_name, &members[0]);
    let mut cmd = fused(example(example_name), members);
    cmd.args(validation_args())
        .env("VKFUSE_RESIDENCY", residency)
        .env("VKFUSE_PRIMARY", "0");
    let got = run_example(cmd);
    assert!(
        got.device.starts_with("vkfuse ("),
        "{example_name} ran on {:?}, not on the fused device",
        got.device
    );
    assert_eq!(
        got.result,
        reference.result,
        "{example_name} through vkfuse (members {}, residency {residency}) differs from {} direct",
        icds(members),
        reference.device
    );
}

fn one_lavapipe(example_name: &str) {
    check(example_name, &[lavapipe()], "primary");
}

fn two_lavapipes_all(example_name: &str) {
    let lvp = lavapipe();
    check(example_name, &[lvp.clone(), lvp], "all");
}

fn lavapipe_swiftshader_all(example_name: &str) {
    let Some(sw) = swiftshader(&format!("{example_name} lavapipe+swiftshader")) else {
        return;
    };
    check(example_name, &[lavapipe(), sw], "all");
}

macro_rules! example_tests {
    ($($module:ident => $name:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn one_lavapipe_member() {
                super::one_lavapipe($name);
            }

            #[test]
            fn two_lavapipe_members_residency_all() {
                super::two_lavapipes_all($name);
            }

            #[test]
            fn lavapipe_and_swiftshader_residency_all() {
                super::lavapipe_swiftshader_all($name);
            }
        }
    )*};
}

example_tests! {
    compute => "compute",
    offscreen => "offscreen",
    multiqueue => "multiqueue",
    multithread => "multithread",
    ignored_handles => "ignored-handles",
    host_ring => "host-ring",
    shared_inputs => "shared-inputs",
}

/// VKFUSE_PRIMARY picks the executing member: with SwiftShader as member 1 executing, the
/// result equals SwiftShader direct.
#[test]
fn primary_selects_the_executing_member() {
    let Some(sw) = swiftshader("primary_selects_the_executing_member") else {
        return;
    };
    let reference = direct_result("compute", &sw);
    let mut cmd = fused(example("compute"), &[lavapipe(), sw]);
    cmd.args(validation_args()).env("VKFUSE_PRIMARY", "1");
    let got = run_example(cmd);
    assert_eq!(
        got.result, reference.result,
        "compute with VKFUSE_PRIMARY=1"
    );
}
