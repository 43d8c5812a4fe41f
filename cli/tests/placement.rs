//! Batches placed on every member (issue 3): with lavapipe×2 and lavapipe + SwiftShader, under
//! `round_robin` and `afr`, every example gives the result of lavapipe direct, with validation,
//! and the batches really go to both members. Member loss (both outcomes), a member out of
//! memory, a refused host-memory import and mapping from several threads are tested here too.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Batches placed per member, from the line vkfuse logs at device destruction.
fn placed(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.split("batches placed: ").nth(1))
        .map(|rest| {
            rest.split(", ")
                .filter_map(|p| p.rsplit(": ").next()?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn placed_cmd(example_name: &str, members: &[PathBuf], strategy: &str) -> Command {
    let mut cmd = fused(example(example_name), members);
    cmd.args(validation_args())
        .env("VKFUSE_STRATEGY", strategy)
        .env("VKFUSE_LOG", "info");
    cmd
}

/// How host-visible memory is laid out (`VKFUSE_SHARING`).
#[derive(Clone, Copy)]
enum Sharing {
    Host,
    Mirrored,
    Device,
    /// Mirrored, the members' copies reached only through staging buffers.
    Staging,
}

/// Runs `example_name` under `strategy`; checks the result against lavapipe direct. Returns the
/// batches placed per member and the run's stderr.
fn check_out(example_name: &str, members: &[PathBuf], strategy: &str) -> (Vec<u64>, String) {
    check_with(example_name, members, strategy, Sharing::Host)
}

/// `check_out` with host-visible memory laid out as `sharing` says.
fn check_with(
    example_name: &str,
    members: &[PathBuf],
    strategy: &str,
    sharing: Sharing,
) -> (Vec<u64>, String) {
    let reference = direct_result(example_name, &lavapipe());
    let mut cmd = placed_cmd(example_name, members, strategy);
    match sharing {
        Sharing::Host => {}
        Sharing::Mirrored => {
            cmd.env("VKFUSE_SHARING", "mirrored");
        }
        Sharing::Device => {
            cmd.env("VKFUSE_SHARING", "device");
        }
        Sharing::Staging => {
            cmd.env("VKFUSE_SHARING", "staging");
        }
    }
    let out = run(&mut cmd);
    let got = checked_result(&out);
    assert!(got.device.starts_with("vkfuse ("), "{}", out.dump());
    assert_eq!(
        got.result,
        reference.result,
        "{example_name} under {strategy} over {} differs from lavapipe direct:\n{}",
        icds(members),
        out.dump()
    );
    let p = placed(&out.stderr);
    assert_eq!(p.len(), members.len(), "no placement line:\n{}", out.dump());
    if let Sharing::Mirrored = sharing {
        assert!(
            out.stderr.contains("memory is mirrored per member"),
            "not mirrored:\n{}",
            out.dump()
        );
    }
    if let Sharing::Staging = sharing {
        assert!(
            out.stderr
                .contains("copies are reached through staging buffers"),
            "not staged:\n{}",
            out.dump()
        );
    }
    (p, out.stderr)
}

fn lvp2() -> Vec<PathBuf> {
    vec![lavapipe(), lavapipe()]
}

fn lvp_sw(test: &str) -> Option<Vec<PathBuf>> {
    swiftshader(test).map(|sw| vec![lavapipe(), sw])
}

/// The four member and strategy combinations of one example with host-visible memory laid out
/// as `$sharing` (`$label` tells their skip messages apart).
macro_rules! sharing_tests {
    ($name:literal, $sharing:expr, $label:literal) => {
        #[test]
        fn two_lavapipes_round_robin() {
            check_with($name, &lvp2(), "round_robin", $sharing);
        }

        #[test]
        fn two_lavapipes_afr() {
            check_with($name, &lvp2(), "afr", $sharing);
        }

        #[test]
        fn lavapipe_swiftshader_round_robin() {
            if let Some(m) = lvp_sw(concat!($name, $label, " round_robin")) {
                check_with($name, &m, "round_robin", $sharing);
            }
        }

        #[test]
        fn lavapipe_swiftshader_afr() {
            if let Some(m) = lvp_sw(concat!($name, $label, " afr")) {
                check_with($name, &m, "afr", $sharing);
            }
        }
    };
}

macro_rules! placement_tests {
    ($($module:ident => $name:literal),* $(,)?) => {$(
        mod $module {
            use super::*;

            sharing_tests!($name, Sharing::Host, "");

            /// Host-visible memory mirrored per member with a host shadow (the path of
            /// members that cannot import host memory).
            mod mirrored {
                use super::*;

                sharing_tests!($name, Sharing::Mirrored, " mirrored");
            }

            /// Mirrored memory whose member copies vkfuse never maps: every byte goes through
            /// staging buffers and the members' own transfer commands (the path of memory
            /// that is not host-visible on members of different drivers).
            mod staging {
                use super::*;

                sharing_tests!($name, Sharing::Staging, " staging");
            }
        }
    )*};
}

placement_tests! {
    compute => "compute",
    offscreen => "offscreen",
    multiqueue => "multiqueue",
    multithread => "multithread",
    random_batches => "random-batches",
    map_threads => "map-threads",
    ignored_handles => "ignored-handles",
    cross_wait => "cross-wait",
    independent => "independent",
    host_ring => "host-ring",
    shared_inputs => "shared-inputs",
    image_chain => "image-chain",
}

/// The vkQueueSubmit calls random-batches made, from its summary line.
fn submits(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.split(" batches in ").nth(1))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no submit count in:\n{stderr}"))
}

/// The randomized test really alternates members: with round_robin, each member runs about
/// half of the batches (a batch waiting for an event the batch before set follows it to its
/// member); SwiftShader first (executing) as well as lavapipe first.
#[test]
fn random_batches_split_between_members() {
    let halves = |(p, stderr): (Vec<u64>, String)| {
        assert_eq!(p.iter().sum::<u64>(), submits(&stderr), "{p:?}");
        assert!(p.iter().all(|n| *n >= 100), "not split: {p:?}");
    };
    halves(check_out("random-batches", &lvp2(), "round_robin"));
    if let Some(sw) = swiftshader("random_batches_split_between_members") {
        halves(check_out(
            "random-batches",
            &[sw.clone(), lavapipe()],
            "round_robin",
        ));
        halves(check_out("random-batches", &[lavapipe(), sw], "afr"));
    }
}

/// A different seed and more batches, on two different drivers.
#[test]
fn random_batches_other_seed() {
    let Some(m) = lvp_sw("random_batches_other_seed") else {
        return;
    };
    let mut direct_cmd = direct(example("random-batches"), &lavapipe());
    direct_cmd.args(["--seed", "7", "--batches", "600"]);
    let reference = run_example(direct_cmd);
    let mut cmd = placed_cmd("random-batches", &m, "round_robin");
    cmd.args(["--seed", "7", "--batches", "600"]);
    assert_eq!(run_example(cmd).result, reference.result);
}

fn with_fault(fault: &str, members: &[PathBuf]) -> Output {
    let mut cmd = fused(example("random-batches"), members);
    cmd.env("VKFUSE_STRATEGY", "round_robin")
        .env("VKFUSE_LOG", "info")
        .env("VKFUSE_FAULT", fault);
    run(&mut cmd)
}

/// Member 1 is lost at its 20th submission. Every allocation is shared host memory and its
/// batches had finished, so nothing is lost: the run goes on on member 0, with the same result.
#[test]
fn member_loss_survivable() {
    let reference = direct_result("random-batches", &lavapipe());
    for members in [Some(lvp2()), lvp_sw("member_loss_survivable")]
        .into_iter()
        .flatten()
    {
        let out = with_fault("submit:1:20", &members);
        assert!(out.stderr.contains("member 1 lost"), "{}", out.dump());
        survived_loss(&out, &reference, 1);
    }
}

/// The run went on after member `lost` was lost at its 20th submission: the same result as
/// `reference`, the lost member ran 19 batches, every submit was placed.
fn survived_loss(out: &Output, reference: &ExampleResult, lost: usize) {
    out.assert_success();
    assert!(out.stderr.contains("continuing on them"), "{}", out.dump());
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    let p = placed(&out.stderr);
    assert_eq!(
        p[lost],
        19,
        "member {lost} ran batches after its loss: {}",
        out.dump()
    );
    assert_eq!(
        p.iter().sum::<u64>(),
        submits(&out.stderr),
        "{}",
        out.dump()
    );
}

/// Member 1 cannot allocate the second allocation, which then lives on member 0 alone, and every
/// batch runs on member 0; losing member 0 then loses the only copy: the fused device reports
/// device loss, cleanly (an error exit, no crash, one clear message).
#[test]
fn member_loss_with_data_lost() {
    let out = with_fault("alloc:1:2,submit:0:20", &lvp2());
    out.assert_no_crash();
    assert_eq!(out.status.code(), Some(2), "{}", out.dump());
    assert!(
        out.stderr.contains("the fused device is lost"),
        "{}",
        out.dump()
    );
    assert!(out.stderr.contains("ERROR_DEVICE_LOST"), "{}", out.dump());
    assert!(example_result(&out.stdout).is_none(), "{}", out.dump());
}

/// A member runs out of memory while the other does not: the allocation lives on the other and
/// the batches follow it; the results stay right. Either member may be the one.
#[test]
fn member_out_of_memory() {
    let reference = direct_result("random-batches", &lavapipe());
    for (fault, holder) in [("alloc:1:2", 0), ("alloc:0:2", 1)] {
        let out = with_fault(fault, &lvp2());
        out.assert_success();
        assert!(
            out.stderr
                .contains("vkAllocateMemory failed (ERROR_OUT_OF_DEVICE_MEMORY)"),
            "{}",
            out.dump()
        );
        assert_eq!(
            example_result(&out.stdout).expect("result").result,
            reference.result
        );
        let p = placed(&out.stderr);
        assert_eq!(p[holder], submits(&out.stderr), "{fault}: {}", out.dump());
    }
}

/// A member that refuses host-pointer imports: host-visible allocations are mirrored, batches
/// still go to both members, results stay right.
#[test]
fn import_refused() {
    let reference = direct_result("random-batches", &lavapipe());
    let out = with_fault("import:1", &lvp2());
    out.assert_success();
    assert!(
        out.stderr.contains("memory is mirrored per member"),
        "{}",
        out.dump()
    );
    assert!(!out.stderr.contains("every later batch"), "{}", out.dump());
    assert_eq!(
        example_result(&out.stdout).expect("result").result,
        reference.result
    );
    let p = placed(&out.stderr);
    assert!(p.iter().all(|n| *n >= 100), "not split: {}", out.dump());
}

/// Member 0 is lost at its 20th submission while memory is mirrored: its finished batches'
/// changes are taken into the shadows, and the run goes on on member 1 with the same result.
#[test]
fn member_loss_with_mirrored_memory() {
    let reference = direct_result("random-batches", &lavapipe());
    let out = with_fault("import:1,submit:0:20", &lvp2());
    survived_loss(&out, &reference, 0);
}

/// The same through the staging tier: member 0's finished batches left their changes in its
/// output stages, which are taken into the shadows; the run goes on on member 1.
#[test]
fn member_loss_with_staged_memory() {
    let reference = direct_result("random-batches", &lavapipe());
    let mut cmd = fused(example("random-batches"), &lvp2());
    cmd.env("VKFUSE_STRATEGY", "round_robin")
        .env("VKFUSE_LOG", "info")
        .env("VKFUSE_SHARING", "staging")
        .env("VKFUSE_FAULT", "submit:0:20");
    let out = run(&mut cmd);
    survived_loss(&out, &reference, 0);
}

/// Same-driver members share memory through opaque fds (`VKFUSE_SHARING=device`): the first
/// exports each allocation, the other imports it, and batches on both members see the same
/// bytes with nothing copied (images included). Members of different drivers never share that
/// way: vkfuse falls back to shared host memory, and the results stay right.
#[test]
fn shared_device_memory_through_opaque_fds() {
    let device = |example_name: &str, members: &[PathBuf]| {
        let (p, stderr) = check_with(example_name, members, "round_robin", Sharing::Device);
        assert!(p.iter().all(|n| *n > 0), "not split: {p:?}\n{stderr}");
        stderr.contains("through opaque fds")
    };
    for example_name in ["random-batches", "host-ring", "offscreen"] {
        assert!(
            device(example_name, &lvp2()),
            "{example_name}: no opaque-fd sharing"
        );
    }
    if let Some(m) = lvp_sw("shared_device_memory_through_opaque_fds") {
        assert!(
            !device("random-batches", &m),
            "opaque fds shared across drivers"
        );
    }
}

/// The most allocations one submit wrote, from the `VKFUSE_LOG=debug` submit lines.
fn most_written(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("vkfuse: debug: submit on member"))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" allocation(s), ")?;
            rest.split(' ').next()?.parse().ok()
        })
        .max()
        .unwrap_or_default()
}

/// Draws use their sets as their pipeline's shaders do: `offscreen --storage`'s fragment shader
/// only reads its storage buffer, so the draw batch does not count it as written (one
/// allocation fewer than with the analysis off, `VKFUSE_FAULT=shaders:0`), and the image is
/// still the one lavapipe draws directly, with mirrored memory on both pairs.
#[test]
fn draws_count_storage_buffers_their_shaders_only_read_as_read() {
    let reference = direct_result("offscreen", &lavapipe());
    let mut pairs = vec![lvp2()];
    pairs.extend(lvp_sw(
        "draws_count_storage_buffers_their_shaders_only_read_as_read",
    ));
    for members in &pairs {
        let written = |fault: &str| {
            let mut cmd = placed_cmd("offscreen", members, "round_robin");
            cmd.arg("--storage")
                .env("VKFUSE_SHARING", "mirrored")
                .env("VKFUSE_LOG", "debug")
                .env("VKFUSE_FAULT", fault);
            let out = run(&mut cmd);
            let got = checked_result(&out);
            assert_eq!(got.result, reference.result, "{}", out.dump());
            (most_written(&out.stderr), out)
        };
        let (analysed, out) = written("");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("graphics pipeline") && l.ends_with(": (0,0) read, (0,1) read")),
            "no analysis of the graphics pipeline:\n{}",
            out.dump()
        );
        let (whole, out) = written("shaders:0");
        assert!(analysed > 0, "{}", out.dump());
        assert_eq!(analysed + 1, whole, "{}", out.dump());
    }
}

/// A running batch that waits on the device for an event the host sets sees what the host wrote
/// before setting it (`host-ring --event`: the batch sets `started`, the host waits for it,
/// writes area B, sets `go`, and the batch copies area B). With mirrored memory the batch's copy
/// was made before the host wrote: vkfuse publishes the host's bytes to the running batches'
/// copies at `vkSetEvent`. Shared host memory needs nothing. Through staging vkfuse cannot
/// reach the running batch's copy, and says so once instead of staying silent.
#[test]
fn host_set_events_see_host_writes() {
    let mut reference_cmd = direct(example("host-ring"), &lavapipe());
    reference_cmd.args(["--event", "--rounds", "6"]);
    let reference = run_example(reference_cmd);
    let mut pairs = vec![lvp2()];
    pairs.extend(lvp_sw("host_set_events_see_host_writes"));
    let fused_run = |members: &[PathBuf], sharing: &str| {
        let mut cmd = placed_cmd("host-ring", members, "round_robin");
        cmd.args(["--event", "--rounds", "6"])
            .env("VKFUSE_SHARING", sharing)
            .env("VKFUSE_LOG", "debug");
        run(&mut cmd)
    };
    for members in &pairs {
        for sharing in ["host", "mirrored"] {
            let out = fused_run(members, sharing);
            let got = checked_result(&out);
            assert_eq!(
                got.result,
                reference.result,
                "{sharing} over {}:\n{}",
                icds(members),
                out.dump()
            );
            let p = placed(&out.stderr);
            assert!(p.iter().all(|n| *n > 0), "not split: {p:?}\n{}", out.dump());
            let published: u64 = out
                .stderr
                .lines()
                .filter_map(|l| {
                    l.split("host-set event: ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            if sharing == "mirrored" {
                // Area B (4 KiB of a byte pattern) in each of the 6 rounds, but for bytes the
                // pattern happens to share with what the running batch's copy held.
                assert!(
                    published >= 6 * 4000,
                    "{published} byte(s) published:\n{}",
                    out.dump()
                );
            } else {
                assert_eq!(published, 0, "{}", out.dump());
            }
        }
        let out = fused_run(members, "staging");
        assert!(
            out.stderr
                .matches("waits for events the host may set")
                .count()
                == 1,
            "no single warning through staging:\n{}",
            out.dump()
        );
    }
}

/// The bytes `VKFUSE_LOG=debug` says mirrored memory copied, before batches and at host
/// synchronisation: (merged into shadows, copied in from shadows, copied from another member's
/// copy).
fn mirrored_bytes(stderr: &str) -> (u64, u64, u64) {
    let (m, c, f, _) = mirrored_bytes_all(stderr);
    (m, c, f)
}

/// `mirrored_bytes`, and the bytes members' transfer commands copied straight from another
/// member's staging buffer (the staging tier with shared stages).
fn mirrored_bytes_all(stderr: &str) -> (u64, u64, u64, u64) {
    let num = |s: &str, before: &str| -> u64 {
        s.split(before)
            .next()
            .and_then(|x| x.rsplit(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    stderr
        .lines()
        .filter(|l| l.contains("vkfuse: debug: mirrored memory "))
        .fold((0, 0, 0, 0), |(m, c, f, s), l| {
            (
                m + num(l, " byte(s) merged"),
                c + num(l, " byte(s) copied in"),
                f + num(l, " byte(s) from another member,"),
                s + num(l, " byte(s) by the member from another"),
            )
        })
}

/// With mirrored memory, random-batches' data really travels between the members' copies:
/// batches on both members, bytes merged into the shadows and copied into the other member;
/// and bench-handoff's never-mapped buffer goes from one member's copy to the other's.
#[test]
fn mirrored_memory_moves_between_members() {
    let mut cmd = placed_cmd("random-batches", &lvp2(), "round_robin");
    cmd.env("VKFUSE_SHARING", "mirrored")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let (merged, copied, _) = mirrored_bytes(&out.stderr);
    assert!(
        merged > 1 << 20 && copied > 1 << 20,
        "{merged} {copied}: {}",
        out.dump()
    );
    let p = placed(&out.stderr);
    assert!(p.iter().all(|n| *n >= 100), "not split: {p:?}");
    // A device-local buffer the program never maps: copied straight from the writer's copy.
    let mut cmd = placed_cmd("bench-handoff", &lvp2(), "round_robin");
    cmd.args(["--max-mib", "1", "--repeats", "1"])
        .env("VKFUSE_SHARING", "mirrored")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let (_, _, from_member) = mirrored_bytes(&out.stderr);
    assert!(from_member >= 1 << 20, "{from_member}: {}", out.dump());
}

/// Frames that only read the same inputs (a copy's source, a uniform buffer): under
/// `round_robin` they alternate members without waiting for each other, and mirrored memory
/// copies to the second member what its frames read, once: the 16 KiB table and the 4 KiB
/// slice of the big buffer each of its 16 frames copies (the copies' regions, not the 4 MiB
/// buffer). Counting every touched allocation as written, as vkfuse once did, copied the inputs
/// before every frame (about 130 MB for 32 frames) and made every frame wait for the one
/// before; counting whole buffers, it copied all 4 MiB + 16 KiB.
#[test]
fn read_only_inputs_are_copied_once_per_member() {
    let reference = direct_result("shared-inputs", &lavapipe());
    let mut cmd = placed_cmd("shared-inputs", &lvp2(), "round_robin");
    cmd.env("VKFUSE_SHARING", "mirrored")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    let p = placed(&out.stderr);
    assert!(p.iter().all(|n| *n >= 16), "not split: {p:?}");
    let (_, _, from_member) = mirrored_bytes(&out.stderr);
    let inputs = SHARED_INPUTS_READ;
    assert!(
        (inputs..2 * inputs).contains(&from_member),
        "{from_member} bytes copied between the members' copies, expected one copy of the {inputs} bytes of inputs: {}",
        out.dump()
    );
    frames_do_not_wait(&out);
}

/// Asserts that `out` ran clean (no validation messages, success) and gave `reference`'s
/// result.
fn assert_equals_direct(out: &Output, reference: &ExampleResult) {
    if out.status.code() == Some(3) {
        panic!("validation layer messages:\n{}", out.dump());
    }
    out.assert_success();
    let got =
        example_result(&out.stdout).unwrap_or_else(|| panic!("no result line: {}", out.dump()));
    assert_eq!(got.result, reference.result, "{}", out.dump());
}

/// The result of `example_name` with `args` on lavapipe directly, with validation.
fn direct_with(example_name: &str, args: &[&str]) -> ExampleResult {
    let mut cmd = direct(example(example_name), &lavapipe());
    cmd.args(validation_args()).args(args);
    run_example(cmd)
}

/// The 32 frames of `shared-inputs` write only their own outputs: none waits for another.
fn frames_do_not_wait(out: &Output) {
    let frames: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("touching 3 allocation(s), 1 written"))
        .collect();
    assert_eq!(frames.len(), 32, "{}", out.dump());
    assert!(
        frames.iter().all(|l| l.contains("(0 unfinished)")),
        "a frame waited for another: {}",
        out.dump()
    );
}

/// The frames' output buffers bound at offsets of one mapped allocation (`shared-inputs
/// --suballocate`): the frames do not wait for each other (they write disjoint ranges), and
/// mirrored memory copies in and merges back the 5 KiB a frame's buffer is bound to, not the
/// 160 KiB allocation (as it did while it tracked whole allocations: about 5 MB merged and
/// 9 MB copied in for 32 frames).
#[test]
fn suballocated_buffers_move_only_their_ranges() {
    let reference = direct_with("shared-inputs", &["--suballocate"]);
    let mut cmd = placed_cmd("shared-inputs", &lvp2(), "round_robin");
    cmd.arg("--suballocate")
        .env("VKFUSE_SHARING", "mirrored")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    let (merged, copied_in, _) = mirrored_bytes(&out.stderr);
    // One frame's buffer: 4 KiB copied plus 1 KiB written by the dispatch, 32 frames; the
    // inputs come through a 4 MiB + 16 KiB upload buffer (copied in once).
    let frames = 32 * 5120;
    assert!(
        merged > 0 && merged <= frames,
        "{merged} bytes merged: {}",
        out.dump()
    );
    assert!(
        copied_in <= (4 << 20) + (16 << 10) + frames,
        "{copied_in} bytes copied in: {}",
        out.dump()
    );
    frames_do_not_wait(&out);
}

/// What the second member's frames of `shared-inputs` read (never mapped): the 16 KiB table
/// and 16 slices of 4 KiB.
const SHARED_INPUTS_READ: u64 = (16 << 10) + 16 * (4 << 10);

/// The staging tier (`VKFUSE_SHARING=staging`: vkfuse never maps the members' copies) really
/// moves data between the members, through their transfer commands: what `shared-inputs`'
/// frames on the second member read of the inputs (the table and their slices, never mapped)
/// reaches it once, on two lavapipes and on
/// lavapipe + SwiftShader (the reader copies them straight from the writer's staging buffer,
/// host memory every member imports), and on two lavapipes of which one refuses host-memory
/// imports (the CPU copies from one member's staging buffer into the other's), with the result
/// of lavapipe direct and no frame waiting for another; and bench-handoff's never-mapped
/// buffer goes from one member to the other.
#[test]
fn staging_moves_data_between_members() {
    let reference = direct_result("shared-inputs", &lavapipe());
    let mut sets = vec![(lvp2(), None, true), (lvp2(), Some("import:1"), false)];
    sets.extend(lvp_sw("staging_moves_data_between_members").map(|m| (m, None, true)));
    for (members, fault, shared) in sets {
        let mut cmd = placed_cmd("shared-inputs", &members, "round_robin");
        cmd.env("VKFUSE_SHARING", "staging")
            .env("VKFUSE_LOG", "debug");
        if let Some(f) = fault {
            cmd.env("VKFUSE_FAULT", f);
        }
        let out = run(&mut cmd);
        out.assert_success();
        assert!(
            out.stderr
                .contains("copies are reached through staging buffers"),
            "{}",
            out.dump()
        );
        let got = example_result(&out.stdout).expect("result line");
        assert_eq!(got.result, reference.result, "{}", out.dump());
        let p = placed(&out.stderr);
        assert!(p.iter().all(|n| *n >= 16), "not split: {p:?}");
        let (_, _, by_cpu, by_member) = mirrored_bytes_all(&out.stderr);
        let inputs = SHARED_INPUTS_READ;
        let (moved, other) = if shared {
            (by_member, by_cpu)
        } else {
            (by_cpu, by_member)
        };
        assert!(
            (inputs..2 * inputs).contains(&moved) && other == 0,
            "{by_cpu} bytes went from one member's staging buffer to the other's by the CPU, {by_member} by the member, expected one copy of the {inputs} bytes of inputs: {}",
            out.dump()
        );
        frames_do_not_wait(&out);
    }
    let mut cmd = placed_cmd("bench-handoff", &lvp2(), "round_robin");
    cmd.args(["--max-mib", "1", "--repeats", "1"])
        .env("VKFUSE_SHARING", "staging")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let (_, _, _, by_member) = mirrored_bytes_all(&out.stderr);
    assert!(by_member >= 1 << 20, "{by_member}: {}", out.dump());
}

/// Inputs of 8 MiB or more cross the staging tier in pipelined chunks: the bridge fills one
/// chunk of the input stage while the member copies the previous one in. `compute` with 3
/// million elements uploads 24 MB through mapped memory (copied in from the shadow) and checks
/// every result against its CPU reference: equal to lavapipe direct, on two lavapipes and on
/// lavapipe + SwiftShader.
#[test]
fn staging_fills_large_inputs_in_chunks() {
    let args = ["--elements", "3000000"];
    let reference = direct_with("compute", &args);
    let mut sets = vec![lvp2()];
    sets.extend(lvp_sw("staging_fills_large_inputs_in_chunks"));
    for members in sets {
        let mut cmd = placed_cmd("compute", &members, "round_robin");
        cmd.args(args)
            .env("VKFUSE_SHARING", "staging")
            .env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        out.assert_success();
        let got = example_result(&out.stdout).expect("result line");
        assert_eq!(got.result, reference.result, "{}", out.dump());
        let chunks: u64 = out
            .stderr
            .lines()
            .filter_map(|l| l.split(" byte(s) is filled and copied in ").nth(1))
            .filter_map(|r| r.split(' ').next()?.parse().ok())
            .max()
            .unwrap_or(0);
        assert!(chunks >= 2, "no input copied in chunks: {}", out.dump());
    }
}

/// Member 1 cannot make staging buffers (`VKFUSE_FAULT=staging:1`, as if out of memory for
/// them): one message, and the batches that need them run on member 0, with the result of
/// lavapipe direct.
#[test]
fn staging_buffers_missing_on_one_member() {
    let reference = direct_result("random-batches", &lavapipe());
    let mut cmd = placed_cmd("random-batches", &lvp2(), "round_robin");
    cmd.env("VKFUSE_SHARING", "staging")
        .env("VKFUSE_FAULT", "staging:1");
    let out = run(&mut cmd);
    out.assert_success();
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    assert_eq!(
        out.stderr.matches("no staging buffers for a batch").count(),
        1,
        "{}",
        out.dump()
    );
    assert!(
        out.stderr.contains("ran on another member than placed"),
        "{}",
        out.dump()
    );
}

/// VKFUSE_MASK restricts the members batches may run on: with member 0 masked out of two
/// lavapipes, every batch of random-batches runs on the one member left (the fused device has one
/// member), with the same result.
#[test]
fn mask_restricts_members() {
    let reference = direct_result("random-batches", &lavapipe());
    let mut cmd = placed_cmd("random-batches", &lvp2(), "round_robin");
    cmd.env("VKFUSE_MASK", "0x2");
    let out = run(&mut cmd);
    out.assert_success();
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    assert!(
        got.device.starts_with("vkfuse (") && !got.device.contains(" + "),
        "the mask left more than one member: {}",
        got.device
    );
    assert!(
        out.stderr
            .contains("one member, every batch runs on member"),
        "{}",
        out.dump()
    );
}

/// lavapipe (Mesa 22.3) may still be finishing a submit that waits on a semaphore when that
/// submit's fence signals: destroying the semaphore then crashes it, or a later
/// vkDeviceWaitIdle hangs (about one run in eight of this loop, direct, when its output goes to
/// /dev/null; timing matters: with its output on a pipe it almost never happens). vkfuse gives
/// such a fence a submit of its own on lavapipe members, under every strategy; without that,
/// forty runs in a row almost never all pass.
#[test]
fn fence_on_a_waiting_submit_survives_lavapipe() {
    for strategy in ["single", "round_robin"] {
        for i in 0..40 {
            let mut cmd = fused(example("bench-submit"), &lvp2());
            cmd.args(["--submits", "50", "--iterations", "3", "--fence-with-last"])
                .env("VKFUSE_STRATEGY", strategy)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = cmd.spawn().expect("cannot start bench-submit");
            let start = Instant::now();
            let status = loop {
                match child.try_wait().expect("cannot wait for bench-submit") {
                    Some(status) => break status,
                    None if start.elapsed() > Duration::from_secs(60) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("{strategy}, run {i}: bench-submit hangs");
                    }
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            };
            assert!(
                status.success(),
                "{strategy}, run {i}: bench-submit {status}"
            );
        }
    }
}

/// A host wait forwarded to member 0's copy of a timeline semaphore before any signal exists,
/// then the signalling batch placed on member 1 because it waits for an event member 1 set:
/// vkfuse carries the value over to member 0's copy, the waiting thread wakes up, and the
/// result equals lavapipe direct.
#[test]
fn timeline_value_carried_to_a_forwarded_host_wait() {
    let mut sets = vec![lvp2()];
    if let Some(m) = lvp_sw("timeline_value_carried_to_a_forwarded_host_wait") {
        sets.push(m.iter().rev().cloned().collect());
        sets.push(m);
    }
    let reference = direct_result("cross-wait", &lavapipe());
    for members in sets {
        let mut cmd = placed_cmd("cross-wait", &members, "round_robin");
        cmd.env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        out.assert_success();
        let got = example_result(&out.stdout)
            .unwrap_or_else(|| panic!("no result line:\n{}", out.dump()));
        assert_eq!(got.result, reference.result, "{}", out.dump());
        assert!(
            out.stderr
                .contains("timeline value 1 carried to member 0's copy"),
            "no carry over {}:\n{}",
            icds(&members),
            out.dump()
        );
        assert_eq!(placed(&out.stderr), vec![1, 2], "{}", out.dump());
    }
}

/// The allocations a submit touches, per submit with command buffers, from vkfuse's debug log.
fn touched(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("submit on member") && !l.contains(" 0 command buffer(s)"))
        .filter_map(|l| l.split("touching ").nth(1)?.split(", ").next())
        .map(str::to_string)
        .collect()
}

/// Access sets: ignored-handles' only batch names its two buffers only through descriptor sets
/// (one written with a template, one with vkUpdateDescriptorSets) bound in a secondary command
/// buffer, so exactly those two allocations are traced.
#[test]
fn access_sets_trace_descriptor_sets_in_secondaries() {
    let mut cmd = placed_cmd("ignored-handles", &lvp2(), "round_robin");
    cmd.env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    assert_eq!(touched(&out.stderr), ["2 allocation(s)"], "{}", out.dump());
}

/// Every resource the examples' batches name is traced to its allocation: no submit's access
/// set falls back to every allocation, and the randomized batches touch between none (the
/// query reset) and all four of their buffers.
#[test]
fn access_sets_trace_every_example_resource() {
    for name in [
        "compute",
        "offscreen",
        "multiqueue",
        "multithread",
        "random-batches",
        "map-threads",
        "cross-wait",
    ] {
        let mut cmd = placed_cmd(name, &lvp2(), "round_robin");
        cmd.env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        out.assert_success();
        let sets = touched(&out.stderr);
        assert!(!sets.is_empty(), "{name}: no access sets\n{}", out.dump());
        for s in &sets {
            let n: usize = s
                .strip_suffix(" allocation(s)")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: a submit touches {s}\n{}", out.dump()));
            assert!(n <= 6, "{name}: {n} allocations\n{}", out.dump());
        }
    }
}

/// One submit whose second batch waits for a binary semaphore its first batch signals, placed
/// on member 1 while a long batch still runs on member 0 (`independent --chained`): the
/// signal stays before the wait (the submit waits for the long batch instead of moving its
/// signals behind it, which deadlocked: dEQP-VK's `binary_semaphore` cases hung now and then).
/// Same result as lavapipe direct, three runs.
#[test]
fn signal_then_wait_in_one_submit_keeps_its_order() {
    let reference = direct_with("independent", &["--chained"]);
    for _ in 0..3 {
        let mut cmd = placed_cmd("independent", &lvp2(), "round_robin");
        cmd.arg("--chained").env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        out.assert_success();
        let got = example_result(&out.stdout).expect("result line");
        assert_eq!(got.result, reference.result, "{}", out.dump());
        assert!(
            out.stderr.contains("submit on member 1: 2 batch(es)"),
            "{}",
            out.dump()
        );
    }
}

/// A batch waits only for the batches that touched the same memory; its signals wait for
/// every earlier batch. The second batch of `independent` runs on member 1 while the first, on
/// member 0, still waits for a semaphore the host signals later; its fence moves to a tail
/// batch after the first (the example checks that it has not signalled meanwhile).
#[test]
fn unrelated_batches_do_not_wait_for_each_other() {
    let mut cmd = placed_cmd("independent", &lvp2(), "round_robin");
    cmd.env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    out.assert_success();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("submit on member"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.dump());
    assert!(lines[0].contains("submit on member 0") && lines[0].contains("1 wait(s)"));
    assert!(
        lines[1].contains("submit on member 1")
            && lines[1].contains(
                "ordered after the batches it depends on, its signals after every earlier batch (0 unfinished)"
            ),
        "{}",
        out.dump()
    );
}

/// The image copies counted at device destruction: (copied out, copied in).
fn image_copies(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.split("images copied between members: ").nth(1))
        .unwrap_or("");
    let mut n = line
        .split(", ")
        .filter_map(|p| p.split(' ').next()?.parse::<u64>().ok());
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// The subresources the image copies in took, and those the images copied in have, counted
/// at device destruction.
fn image_subresources(stderr: &str) -> (u64, u64) {
    let part = stderr
        .lines()
        .rev()
        .find_map(|l| l.split(" copied in (").nth(1))
        .unwrap_or("");
    let mut n = part.split(' ').filter_map(|w| w.parse::<u64>().ok());
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// Batches ran on every member, and images were copied out of one member and into another.
fn images_crossed(out: &Output) {
    let p = placed(&out.stderr);
    assert!(
        p.iter().all(|n| *n >= 1),
        "not split: {p:?}: {}",
        out.dump()
    );
    let (copied_out, copied_in) = image_copies(&out.stderr);
    assert!(
        copied_out >= 1 && copied_in >= 1,
        "no image crossed members: {}",
        out.dump()
    );
}

/// Lavapipe and SwiftShader lay an image's texels out differently. `offscreen` uploads its
/// texture in one submit and renders (colour and depth) in the next; `image-chain` ping-pongs
/// two storage images (3 mip levels, 2 layers, levels left in different layouts) and a
/// depth/stencil image (read back and cleared every round) through one submit per round. Under
/// `round_robin` and `afr` each image written on one member is copied out through a staging
/// buffer in shared host memory and into the other member's own copy (bound to memory of
/// vkfuse's); the results equal lavapipe direct with validation, and nothing pins. A round of
/// `image-chain` under `round_robin` reads level 0 of the image the previous round wrote on
/// the other member: only those subresources are copied in. With a
/// member refusing host imports the stages come from each member's pool and the CPU copies
/// between them; with a member that cannot copy images (`VKFUSE_FAULT=images:1`) batches pin
/// to the primary, with one message. The results are lavapipe's every time.
#[test]
fn images_move_between_drivers() {
    let Some(members) = lvp_sw("images_move_between_drivers") else {
        return;
    };
    for (example_name, strategy) in [
        ("offscreen", "round_robin"),
        ("offscreen", "afr"),
        ("image-chain", "round_robin"),
        ("image-chain", "afr"),
    ] {
        let reference = direct_result(example_name, &lavapipe());
        let out = run(placed_cmd(example_name, &members, strategy).env("VKFUSE_LOG", "debug"));
        assert_equals_direct(&out, &reference);
        assert!(!out.stderr.contains("every later batch"), "{}", out.dump());
        images_crossed(&out);
        let (taken, of) = image_subresources(&out.stderr);
        assert!(taken >= 1 && taken <= of, "{taken} of {of}: {}", out.dump());
        if (example_name, strategy) == ("image-chain", "round_robin") {
            assert!(
                taken < of,
                "every copy in took all subresources ({taken} of {of}): {}",
                out.dump()
            );
        }
    }
    // A member refusing host imports: the stages come from each member's own pool and the
    // bridge copies between them.
    let reference = direct_result("image-chain", &lavapipe());
    let mut cmd = placed_cmd("image-chain", &members, "round_robin");
    cmd.env("VKFUSE_FAULT", "import:1")
        .env("VKFUSE_LOG", "debug");
    let out = run(&mut cmd);
    assert_equals_direct(&out, &reference);
    assert!(!out.stderr.contains("every later batch"), "{}", out.dump());
    assert!(
        out.stderr
            .contains("copied by the CPU from other members' staging buffers"),
        "{}",
        out.dump()
    );
    assert!(image_copies(&out.stderr).1 >= 1, "{}", out.dump());
    // A member that cannot copy images: every batch pins to the primary, with one message.
    let reference = direct_result("offscreen", &lavapipe());
    let mut cmd = placed_cmd("offscreen", &members, "round_robin");
    cmd.env("VKFUSE_FAULT", "images:1");
    let out = run(&mut cmd);
    assert_equals_direct(&out, &reference);
    assert_eq!(
        out.stderr.matches("cannot be copied between them").count(),
        1,
        "{}",
        out.dump()
    );
    assert_eq!(image_copies(&out.stderr), (0, 0), "{}", out.dump());
}

/// Images between drivers survive the loss of either member: `image-chain` on lavapipe +
/// SwiftShader under `round_robin`, with member 1 lost at its 3rd submission and, in another
/// run, member 0 (the primary) at its 4th. With lazy copies (the default) each image a
/// finished batch of the lost member wrote had been copied out for the other member's next
/// round, which reads it; with `VKFUSE_IMAGE_COPIES=eager` every one was copied out into host
/// memory. Either way the run goes on on the other member with the result of lavapipe direct.
#[test]
fn member_loss_with_images() {
    let Some(members) = lvp_sw("member_loss_with_images") else {
        return;
    };
    let reference = direct_result("image-chain", &lavapipe());
    let runs = [
        ("submit:1:3", 1, "lazy"),
        ("submit:0:4", 0, "lazy"),
        ("submit:1:3", 1, "eager"),
        ("submit:0:4", 0, "eager"),
    ];
    for (fault, lost, copies) in runs {
        let mut cmd = placed_cmd("image-chain", &members, "round_robin");
        cmd.env("VKFUSE_FAULT", fault)
            .env("VKFUSE_IMAGE_COPIES", copies);
        let out = run(&mut cmd);
        if out.status.code() == Some(3) {
            panic!("validation layer messages:\n{}", out.dump());
        }
        out.assert_success();
        assert!(
            out.stderr.contains(&format!("member {lost} lost"))
                && out.stderr.contains("continuing on them"),
            "{}",
            out.dump()
        );
        let got = example_result(&out.stdout).expect("result line");
        assert_eq!(got.result, reference.result, "{fault}: {}", out.dump());
        let (_, copied_in) = image_copies(&out.stderr);
        assert!(copied_in >= 1, "no image crossed: {}", out.dump());
    }
}

/// Multisampled images cannot be copied between drivers (no buffer copies), and no longer pin
/// placement: `offscreen --msaa` on lavapipe + SwiftShader draws into 4-sample attachments in
/// one submit and resolves them in the next, which needs the drawing member's contents and
/// runs there; the other submits still go to both members. Under `round_robin` and `afr` the
/// image equals lavapipe direct's, with validation. With the member holding the
/// multisampled image lost at the resolve's submission, the resolve that needs it loses the
/// fused device cleanly.
#[test]
fn multisampled_images_keep_batches_where_their_contents_are() {
    let Some(members) = lvp_sw("multisampled_images_keep_batches_where_their_contents_are") else {
        return;
    };
    let reference = direct_with("offscreen", &["--msaa"]);
    for strategy in ["round_robin", "afr"] {
        let mut cmd = placed_cmd("offscreen", &members, strategy);
        cmd.arg("--msaa").env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        assert_equals_direct(&out, &reference);
        assert!(!out.stderr.contains("every later batch"), "{}", out.dump());
        let p = placed(&out.stderr);
        assert!(p.iter().all(|n| *n >= 1), "{p:?}: {}", out.dump());
        // The draw and the resolve (the last two submits) on one member.
        let on: Vec<&str> = out
            .stderr
            .lines()
            .filter_map(|l| l.split("submit on member ").nth(1)?.split(':').next())
            .collect();
        assert!(on.len() >= 2, "{}", out.dump());
        assert_eq!(on[on.len() - 1], on[on.len() - 2], "{}", out.dump());
    }
    // Under `round_robin` the draw is member 1's 2nd submission: lost at its 3rd, the resolve.
    let mut cmd = placed_cmd("offscreen", &members, "round_robin");
    cmd.arg("--msaa").env("VKFUSE_FAULT", "submit:1:3");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", out.dump());
    assert_eq!(
        out.stderr
            .matches("a batch needs an image whose latest contents were lost")
            .count(),
        1,
        "{}",
        out.dump()
    );
}

/// Lazy image copies: an image's latest contents stay in the copy of the member that wrote
/// them until another member needs them. `offscreen` on lavapipe + SwiftShader under
/// `round_robin` uploads its texture on member 0 and draws on member 1, so member 0 copies
/// the texture out first. Lost at that copy (`VKFUSE_FAULT=copyout:0:1`), it takes the only
/// copy of the texture with it: the draw that needs it loses the fused device, with one
/// message and a clean `VK_ERROR_DEVICE_LOST`, no crash. With `VKFUSE_IMAGE_COPIES=eager`
/// the upload copied the texture out at once, no copy out is made later, and the run equals
/// lavapipe direct.
#[test]
fn lazy_image_copies_lose_the_device_only_for_images_needed() {
    let Some(members) = lvp_sw("lazy_image_copies_lose_the_device_only_for_images_needed") else {
        return;
    };
    let mut cmd = placed_cmd("offscreen", &members, "round_robin");
    cmd.env("VKFUSE_FAULT", "copyout:0:1");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", out.dump());
    assert!(
        out.stderr
            .contains("lost (VKFUSE_FAULT: VK_ERROR_DEVICE_LOST at its copy out 1)"),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.stderr
            .matches("a batch needs an image whose latest contents were lost")
            .count(),
        1,
        "{}",
        out.dump()
    );
    assert!(
        out.stderr.contains("device has been lost"),
        "{}",
        out.dump()
    );
    let reference = direct_result("offscreen", &lavapipe());
    let mut cmd = placed_cmd("offscreen", &members, "round_robin");
    cmd.env("VKFUSE_FAULT", "copyout:0:1")
        .env("VKFUSE_IMAGE_COPIES", "eager");
    let out = run(&mut cmd);
    assert_equals_direct(&out, &reference);
    assert!(!out.stderr.contains("lost"), "{}", out.dump());
}

/// Compute pipelines are analysed as they are created (with debug logging, on several
/// members): the examples' kernels read and write the bindings they use, and slices of their
/// dispatches write disjoint parts where each invocation writes its own elements or texels
/// (`compute`: `ints[pc.offset + gid.x]`; `image-chain`: `imageStore(dst, ivec3(gid))`), but not
/// where invocations add into shared counters with atomics (`bench-record`).
#[test]
fn compute_pipelines_are_analysed() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "compute",
            &[],
            "local size 64x1x1; (0,0) read, (0,1) read and written (disjoint along x) (each invocation only its own 4 byte(s) at 0 + 4 * push constant at 0 + 4 * gid.x), (0,2) read and written (disjoint along x) (each invocation only its own 4 byte(s) at 0 + 4 * push constant at 0 + 4 * gid.x); slices along x write disjoint parts",
        ),
        (
            "shared-inputs",
            &["--frames", "2"],
            "(0,0) read, (0,1) written (disjoint along x) (each invocation only its own 4 byte(s) at 0 + 4 * gid.x); slices along x write disjoint parts",
        ),
        (
            "image-chain",
            &["--rounds", "1"],
            "local size 8x8x1; (0,0) read, (0,1) written (disjoint along x, y, z); slices along x, y, z write disjoint parts",
        ),
        (
            "bench-record",
            &["--commands", "10", "--iterations", "1"],
            "(0,0) read and written, integer add atomics; no slices proven to write disjoint parts",
        ),
    ];
    for (example_name, args, expected) in cases {
        let mut cmd = placed_cmd(example_name, &lvp2(), "round_robin");
        cmd.args(args).env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        out.assert_success();
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("compute pipeline") && l.contains(expected)),
            "{example_name}: no analysis `{expected}`: {}",
            out.dump()
        );
    }
}

/// The sum of the allocations batches may write, over the submits the debug log describes.
fn written_total(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split(" allocation(s), ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A dispatch uses the bound sets' bindings as its pipeline's shader does: `random-batches`'
/// kernel declares its source `readonly`, so its batches no longer count the source buffer as
/// written (fewer write-backs and waits), and the result is still lavapipe's. With the
/// analysis refused (`VKFUSE_FAULT=shaders:0`) every storage binding counts as written, as
/// before.
#[test]
fn dispatches_write_only_what_their_shader_writes() {
    let reference = direct_result("random-batches", &lavapipe());
    let mut totals = Vec::new();
    for fault in [None, Some("shaders:0")] {
        let mut cmd = placed_cmd("random-batches", &lvp2(), "round_robin");
        cmd.env("VKFUSE_LOG", "debug")
            .env("VKFUSE_SHARING", "mirrored");
        if let Some(f) = fault {
            cmd.env("VKFUSE_FAULT", f);
        }
        let out = run(&mut cmd);
        out.assert_success();
        let got = example_result(&out.stdout)
            .unwrap_or_else(|| panic!("no result line:\n{}", out.dump()));
        assert_eq!(got.result, reference.result, "{}", out.dump());
        assert_eq!(
            out.stderr.contains("compute pipeline"),
            fault.is_none(),
            "{}",
            out.dump()
        );
        totals.push(written_total(&out.stderr));
    }
    assert!(
        totals[0] < totals[1],
        "allocations written with and without shader analysis: {totals:?}"
    );
}

/// Semaphores shared wherever members can share them, CPU drivers too.
const SHARED: &[(&str, &str)] = &[("VKFUSE_SYNC", "shared")];

/// The waits that went through semaphores shared between members, from the teardown line
/// (0 without one).
fn linked_waits(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.split(" wait(s) for another member's batch went through shared semaphores")
                .next()
                .filter(|_| l.contains("went through shared semaphores"))?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `example_name` under `strategy` over `members` with `envs`, with validation: the result of
/// lavapipe direct, and batches on every member. Returns the run's stderr.
fn check_env(
    example_name: &str,
    members: &[PathBuf],
    strategy: &str,
    envs: &[(&str, &str)],
) -> String {
    let reference = direct_with(example_name, &[]);
    let mut cmd = placed_cmd(example_name, members, strategy);
    cmd.envs(envs.iter().copied());
    let out = run(&mut cmd);
    assert_equals_direct(&out, &reference);
    let p = placed(&out.stderr);
    assert!(
        p.len() == members.len() && p.iter().all(|n| *n > 0),
        "{example_name}: not placed on every member: {p:?}\n{}",
        out.dump()
    );
    out.stderr
}

/// Two SwiftShader members (one driver on one device, binary semaphores exported and imported
/// as opaque fds) share semaphores with `VKFUSE_SYNC=shared`: a batch waits for the other
/// member's last batch on its queue through one, not through the bridge thread. Every example
/// that waits across members gives lavapipe's result with validation clean, and
/// `random-batches`' waits really went through them; by default (`auto`: SwiftShader is a CPU
/// driver) and with `bridge` none do, with the same results. Lavapipe exports no semaphores,
/// and members of different drivers never share them.
#[test]
fn shared_semaphores_between_members_of_one_driver() {
    let Some(sw) = swiftshader("shared_semaphores_between_members_of_one_driver") else {
        return;
    };
    let ss2 = [sw.clone(), sw.clone()];
    for example_name in [
        "random-batches",
        "cross-wait",
        "multiqueue",
        "host-ring",
        "image-chain",
    ] {
        let stderr = check_env(example_name, &ss2, "round_robin", SHARED);
        assert!(
            stderr.contains("members 0 and 1 share semaphores (opaque fds)"),
            "{example_name}: no sharing:\n{stderr}"
        );
        // Whether a batch finds the other member's last one unfinished depends on timing:
        // among hundreds of dependent batches, some do.
        if example_name == "random-batches" {
            assert!(
                linked_waits(&stderr) > 0,
                "{example_name}: no wait went through a shared semaphore:\n{stderr}"
            );
        }
        for sync in ["auto", "bridge"] {
            let bridged = check_env(example_name, &ss2, "round_robin", &[("VKFUSE_SYNC", sync)]);
            assert!(
                !bridged.contains("share semaphores") && linked_waits(&bridged) == 0,
                "{example_name}: shared semaphores with VKFUSE_SYNC={sync}:\n{bridged}"
            );
        }
    }
    let stderr = check_env("random-batches", &ss2, "afr", SHARED);
    assert!(stderr.contains("share semaphores"), "{stderr}");
    for members in [lvp2(), vec![lavapipe(), sw]] {
        let stderr = check_env("random-batches", &members, "round_robin", SHARED);
        assert!(
            !stderr.contains("share semaphores") && linked_waits(&stderr) == 0,
            "{}",
            stderr
        );
    }
}

/// A member that fails to share a semaphore (`VKFUSE_FAULT=semaphores:1`): one message, and its
/// waits go through the bridge thread with the same results.
#[test]
fn shared_semaphore_refused() {
    let Some(sw) = swiftshader("shared_semaphore_refused") else {
        return;
    };
    let stderr = check_env(
        "random-batches",
        &[sw.clone(), sw],
        "round_robin",
        &[("VKFUSE_FAULT", "semaphores:1"), ("VKFUSE_SYNC", "shared")],
    );
    let said = stderr
        .lines()
        .filter(|l| l.contains("cannot share a semaphore"))
        .count();
    assert_eq!(said, 1, "{stderr}");
    assert!(
        stderr.contains("members 0 and 1: cannot share a semaphore (member 1: VKFUSE_FAULT)"),
        "{stderr}"
    );
    assert_eq!(linked_waits(&stderr), 0, "{stderr}");
}

/// Member 1 of two SwiftShader members is lost at its 20th submission while waits between them
/// go through shared semaphores: the run goes on on member 0 with the same result.
#[test]
fn member_loss_with_shared_semaphores() {
    let Some(sw) = swiftshader("member_loss_with_shared_semaphores") else {
        return;
    };
    let reference = direct_result("random-batches", &lavapipe());
    let mut cmd = fused(example("random-batches"), &[sw.clone(), sw]);
    cmd.env("VKFUSE_STRATEGY", "round_robin")
        .env("VKFUSE_LOG", "info")
        .env("VKFUSE_FAULT", "submit:1:20")
        .env("VKFUSE_SYNC", "shared");
    let out = run(&mut cmd);
    assert!(out.stderr.contains("member 1 lost"), "{}", out.dump());
    assert!(out.stderr.contains("share semaphores"), "{}", out.dump());
    survived_loss(&out, &reference, 1);
}

/// Two SwiftShader members do not share images through their memory: a SwiftShader image keeps
/// the decompressed texels of compressed formats and the borders of cube maps beside it,
/// refreshed only when that `VkImage` is written, and a second SwiftShader device sampling what
/// the first wrote read stale texels (dEQP-VK: 176 cases of compressed formats and cube maps
/// failed under `round_robin`). Images are copied between them as between drivers: `offscreen`
/// (a texture uploaded in one submit and sampled in the next) and `image-chain` under
/// `round_robin` equal lavapipe direct with validation, images crossing members; two lavapipes
/// still share theirs (nothing copied).
#[test]
fn swiftshader_members_copy_images() {
    let Some(sw) = swiftshader("swiftshader_members_copy_images") else {
        return;
    };
    for example_name in ["offscreen", "image-chain"] {
        let reference = direct_result(example_name, &lavapipe());
        let out = run(&mut placed_cmd(
            example_name,
            &[sw.clone(), sw.clone()],
            "round_robin",
        ));
        assert_equals_direct(&out, &reference);
        images_crossed(&out);
        let lvp = run(&mut placed_cmd(example_name, &lvp2(), "round_robin"));
        assert_equals_direct(&lvp, &reference);
        assert_eq!(image_copies(&lvp.stderr), (0, 0), "{}", lvp.dump());
    }
}

/// Two SwiftShader members: one driver on one device that shares memory through opaque fds but
/// copies images between its devices (`swiftshader_members_copy_images`), a combination no
/// other pair has. Examples under `round_robin` with every layout of host-visible memory equal
/// lavapipe direct with validation.
#[test]
fn two_swiftshaders_with_every_sharing() {
    let Some(sw) = swiftshader("two_swiftshaders_with_every_sharing") else {
        return;
    };
    let ss2 = [sw.clone(), sw];
    for example_name in [
        "random-batches",
        "offscreen",
        "image-chain",
        "host-ring",
        "shared-inputs",
    ] {
        for sharing in [
            Sharing::Host,
            Sharing::Device,
            Sharing::Mirrored,
            Sharing::Staging,
        ] {
            check_with(example_name, &ss2, "round_robin", sharing);
        }
    }
}
