//! One dispatch split across members (issue 4, `compute_split`): the `kernels` example's
//! kernels give the result of lavapipe direct, with validation, and their dispatches really
//! run as slices on both members (the workgroups each member ran, from the line vkfuse logs
//! at device destruction). A kernel that slices would break (atomics) runs whole.

mod common;

use std::path::PathBuf;

use common::*;

/// Workgroups each member ran in split batches, from the line logged at device destruction.
fn split_groups(stderr: &str) -> Option<Vec<u64>> {
    let line = stderr
        .lines()
        .find(|l| l.contains("compute_split:") && l.contains("workgroups run:"))?;
    let list = line.split("workgroups run:").nth(1)?;
    Some(
        list.split(',')
            .filter_map(|p| p.rsplit(':').next()?.trim().parse().ok())
            .collect(),
    )
}

/// Runs `kernels --kernel <kernel> <args>` under `compute_split` over `members` and on
/// lavapipe directly; asserts equal results and a clean validation run.
fn check(kernel: &str, args: &[&str], members: &[PathBuf], env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = ["--kernel", kernel].iter().chain(args).copied().collect();
    check_example("kernels", &args, members, env)
}

/// [`check`] for any example program and arguments.
fn check_example(
    example_name: &str,
    args: &[&str],
    members: &[PathBuf],
    env: &[(&str, &str)],
) -> Output {
    let mut direct_cmd = direct(example(example_name), &lavapipe());
    direct_cmd.args(validation_args()).args(args);
    let reference = run_example(direct_cmd);
    let mut cmd = fused(example(example_name), members);
    cmd.args(validation_args())
        .args(args)
        .env("VKFUSE_STRATEGY", "compute_split")
        .env("VKFUSE_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let got = checked_result(&out);
    assert!(got.device.starts_with("vkfuse ("), "{}", out.dump());
    assert_eq!(
        got.result,
        reference.result,
        "{example_name} {args:?} under compute_split over {} differs from lavapipe direct:\n{}",
        icds(members),
        out.dump()
    );
    out
}

fn lvp2() -> Vec<PathBuf> {
    vec![lavapipe(), lavapipe()]
}

/// Asserts that the run split `batches` batches in `rounds` rounds (the teardown line).
fn assert_split_in(out: &Output, batches: u64, rounds: u64) {
    let line = format!("compute_split: {batches} batch(es) split in {rounds} round(s)");
    assert!(out.stderr.contains(&line), "no `{line}`:\n{}", out.dump());
}

/// lavapipe×2 with shared and with mirrored memory, and lavapipe + SwiftShader mirrored where
/// SwiftShader is installed: (members, `VKFUSE_SHARING`).
fn shared_and_mirrored(test: &str) -> Vec<(Vec<PathBuf>, &'static str)> {
    let mut runs = vec![(lvp2(), "host"), (lvp2(), "mirrored")];
    if let Some(sw) = swiftshader(test) {
        runs.push((vec![lavapipe(), sw], "mirrored"));
    }
    runs
}

/// Each kernel's dispatches run as slices on both lavapipes, `total` workgroups in all.
fn splits(kernel: &str, args: &[&str], total: u64) {
    let out = check(kernel, args, &lvp2(), &[]);
    let groups = split_groups(&out.stderr)
        .unwrap_or_else(|| panic!("{kernel}: no split batch:\n{}", out.dump()));
    assert_eq!(groups.len(), 2, "{}", out.dump());
    assert!(
        groups.iter().all(|g| *g > 0),
        "{kernel}: a member ran no slice: {groups:?}\n{}",
        out.dump()
    );
    assert_eq!(
        groups.iter().sum::<u64>(),
        total,
        "{kernel}: workgroups run {groups:?}\n{}",
        out.dump()
    );
}

#[test]
fn saxpy_splits() {
    // 65536 elements in groups of 64, submitted twice.
    splits("saxpy", &["--size", "65536", "--repeat", "2"], 2048);
}

#[test]
fn modules_are_marked_for_dispatch_base_where_dispatches_split() {
    // Every member gets the marked module under compute_split (a GPU driver's shader cache
    // must not hand its pipelines code compiled without DISPATCH_BASE), none under single.
    let marked = |strategy: &str| {
        let mut cmd = fused(example("kernels"), &lvp2());
        cmd.args(["--kernel", "saxpy", "--size", "4096"])
            .env("VKFUSE_STRATEGY", strategy)
            .env("VKFUSE_RESIDENCY", "all")
            .env("VKFUSE_LOG", "debug");
        let out = run(&mut cmd);
        assert!(out.status.success(), "{strategy}: {}", out.dump());
        (0..2)
            .map(|m| {
                let line =
                    format!("member {m}: shader module marked as compiled for vkCmdDispatchBase");
                out.stderr.lines().filter(|l| l.contains(&line)).count()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(marked("compute_split"), vec![1, 1]);
    assert_eq!(marked("single"), vec![0, 0]);
}

#[test]
fn mandelbrot_splits() {
    // 128 x 128 points in 16 x 16 groups.
    splits("mandelbrot", &["--size", "128"], 64);
}

#[test]
fn tiled_matrix_multiply_splits() {
    // 64 x 64 in 16 x 16 tiles, through shared memory.
    splits("matmul", &["--size", "64"], 16);
}

#[test]
fn image_filter_splits() {
    // 128 x 128 texels in 8 x 8 groups, storage image to storage image.
    splits("filter", &["--size", "128"], 256);
}

/// Images copied between drivers (lavapipe + SwiftShader) are one copy per member, each laid
/// out its driver's way: a filter over them splits, each member's slices going between its
/// copy and a packed copy of its own in host memory, merged on the bridge, with shared and with
/// mirrored memory, its source a storage or a sampled image; the result equals lavapipe
/// direct, with validation.
#[test]
fn images_copied_between_drivers_split() {
    let Some(sw) = swiftshader("images_copied_between_drivers_split") else {
        return;
    };
    // The source as a storage image (GENERAL) and as a sampled image
    // (SHADER_READ_ONLY_OPTIMAL: the copies move it to a transfer layout and back).
    for (sharing, sampled) in [
        ("host", false),
        ("mirrored", false),
        ("host", true),
        ("mirrored", true),
    ] {
        let mut args = vec!["--size", "128", "--repeat", "3"];
        if sampled {
            args.push("--sampled");
        }
        let out = check(
            "filter",
            &args,
            &[lavapipe(), sw.clone()],
            &[("VKFUSE_SHARING", sharing)],
        );
        let groups = split_groups(&out.stderr)
            .unwrap_or_else(|| panic!("{sharing}: no split batch:\n{}", out.dump()));
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
        assert_eq!(groups.iter().sum::<u64>(), 3 * 256, "{}", out.dump());
        let (copied, merged) = mirrored_bytes(&out.stderr)
            .unwrap_or_else(|| panic!("{sharing}: no merge line:\n{}", out.dump()));
        assert!(copied > 0 && merged > 0, "{}", out.dump());
    }
}

/// Three members (lavapipe, SwiftShader, lavapipe): saxpy's slices run on all three, with
/// shared and with mirrored memory. The two lavapipes bind one copy of an image copied to
/// SwiftShader, which their rounds would both copy into: the second sits the filter out, and
/// the first and SwiftShader split it.
#[test]
fn three_members_split() {
    let Some(sw) = swiftshader("three_members_split") else {
        return;
    };
    let members = [lavapipe(), sw.clone(), lavapipe()];
    for sharing in ["host", "mirrored"] {
        let out = check(
            "saxpy",
            &["--size", "65536", "--repeat", "2"],
            &members,
            &[("VKFUSE_SHARING", sharing)],
        );
        let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert_eq!(groups.len(), 3, "{}", out.dump());
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
        assert_eq!(groups.iter().sum::<u64>(), 2048, "{}", out.dump());
    }
    // The second lavapipe sits the filter out; the first and SwiftShader split it.
    for args in [
        &["--size", "128", "--sampled"][..],
        &["--size", "128", "--in-batch", "--clear", "--repeat", "2"],
    ] {
        let out = check("filter", args, &[lavapipe(), lavapipe(), sw.clone()], &[]);
        let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert_eq!(groups.len(), 3, "{}", out.dump());
        assert!(
            groups[0] > 0 && groups[1] == 0 && groups[2] > 0,
            "{groups:?}\n{}",
            out.dump()
        );
    }
}

/// Each step reads what another member's slice of the step before wrote: every step is a
/// round of its own, after both members' previous round.
#[test]
fn dependent_dispatches_split_in_rounds() {
    splits("chain", &["--size", "4096"], 8 * 64);
    let out = check(
        "chain",
        &["--size", "4096"],
        &lvp2(),
        &[("VKFUSE_LOG", "debug")],
    );
    assert!(
        out.stderr
            .contains("a batch in 8 round(s) on members [0, 1]"),
        "{}",
        out.dump()
    );
}

/// Dispatches that each access only their invocations' own elements (`saxpy --steps 8`:
/// every step reads the elements the step before wrote for the same invocation) and are cut
/// the same way run as one round: each member's slices of the next step read what its own
/// slices of the step before wrote, so no member waits for another and nothing is merged
/// between them. With mirrored memory the other member gets and gives back only its own
/// slices' elements, exactly (no diff), on one driver and on two.
#[test]
fn element_wise_dispatches_share_a_round() {
    let args = ["--size", "65536", "--repeat", "2", "--steps", "8"];
    let out = check("saxpy", &args, &lvp2(), &[]);
    assert_split_in(&out, 2, 2);
    let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
    assert_eq!(groups.iter().sum::<u64>(), 2 * 8 * 1024, "{}", out.dump());
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader("element_wise_dispatches_share_a_round") {
        pairs.push(vec![lavapipe(), sw]);
    }
    // x and y: 256 KiB each.
    let (x, y) = (65536u64 * 4, 65536u64 * 4);
    for members in pairs {
        let out = check("saxpy", &args, &members, &[("VKFUSE_SHARING", "mirrored")]);
        assert_split_in(&out, 2, 2);
        let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert!(
            groups.iter().all(|g| *g > 0),
            "{groups:?}
{}",
            out.dump()
        );
        // Per batch the other member gets its share of x and y once and gives back its
        // share of y: less than all of them, however the balance deals the slices.
        let (copied, merged) =
            mirrored_bytes(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert!(
            copied > 0 && copied < 2 * (x + y),
            "copied {copied}\n{}",
            out.dump()
        );
        assert!(
            merged > 0 && merged < 2 * y,
            "merged {merged}\n{}",
            out.dump()
        );
    }
}

/// Row-major outputs indexed `gid.y * width + gid.x` with a push constant width (mandelbrot's
/// iterations, matmul's product) are each invocation row's own: dispatches are cut along y and,
/// with mirrored memory, the other member gets and gives back only its rows of them, exactly
/// (no snapshot, no diff), on one driver and on two. Matmul's inputs, which every row reads
/// whole, still go whole.
#[test]
fn rows_of_row_major_outputs_merge_exactly() {
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader("rows_of_row_major_outputs_merge_exactly") {
        pairs.push(vec![lavapipe(), sw]);
    }
    // (kernel, arguments, bytes of the output, bytes of what every member reads whole)
    let kernels: [(&str, &[&str], u64, u64); 2] = [
        ("mandelbrot", &["--size", "128"], 128 * 128 * 4, 0),
        ("matmul", &["--size", "64"], 64 * 64 * 4, 2 * 64 * 64 * 4),
    ];
    for members in &pairs {
        for (kernel, args, output, inputs) in kernels {
            let env = [("VKFUSE_SHARING", "mirrored"), ("VKFUSE_LOG", "debug")];
            let out = check(kernel, args, members, &env);
            assert!(
                out.stderr.contains("(each invocation only its own row:"),
                "{kernel}: rows not proven own:\n{}",
                out.dump()
            );
            let groups = split_groups(&out.stderr)
                .unwrap_or_else(|| panic!("{kernel}: no split batch:\n{}", out.dump()));
            assert!(groups.iter().all(|g| *g > 0), "{kernel}: {groups:?}");
            let (copied, merged) = mirrored_bytes(&out.stderr)
                .unwrap_or_else(|| panic!("{kernel}: no mirrored line:\n{}", out.dump()));
            // The other member's rows only, in and back: some, not all of the output.
            assert!(
                copied > inputs && copied < inputs + output,
                "{kernel}: copied {copied}\n{}",
                out.dump()
            );
            assert!(
                merged > 0 && merged < output,
                "{kernel}: merged {merged}\n{}",
                out.dump()
            );
        }
    }
}

/// Batches that wait for and signal semaphores, several in one submit: `saxpy --batches 4`
/// submits its command buffer in 4 batches of one `vkQueueSubmit`, each waiting for a binary
/// semaphore the one before signals, and every batch splits (the waits go first and the
/// signals last, as batches of their own); `multiqueue`'s compute batches, between semaphores
/// of an upload and a readback queue, split too; and so do batches waiting for a timeline
/// value the host signals after the submit.
#[test]
fn batches_with_semaphores_split() {
    let args = [
        "--size",
        "65536",
        "--batches",
        "4",
        "--steps",
        "2",
        "--repeat",
        "2",
    ];
    for (members, sharing) in shared_and_mirrored("batches_with_semaphores_split") {
        let out = check("saxpy", &args, &members, &[("VKFUSE_SHARING", sharing)]);
        assert_split_in(&out, 8, 8);
        let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
        assert_eq!(groups.iter().sum::<u64>(), 8 * 2 * 1024, "{}", out.dump());
    }
    // multiqueue's chunks index by a push constant offset (`ints[pc.offset + gid.x]`): with
    // mirrored memory their own bytes move by it.
    for sharing in ["host", "mirrored"] {
        let out = check_example("multiqueue", &[], &lvp2(), &[("VKFUSE_SHARING", sharing)]);
        let groups = split_groups(&out.stderr).unwrap_or_else(|| panic!("{}", out.dump()));
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
    }
    // A timeline value the host signals after each submit, once it has written x (zeros
    // when the submit is made): the slices run after it, and read what the host wrote, in
    // shared and in mirrored memory.
    let args = [
        "--size",
        "65536",
        "--host-signal",
        "--steps",
        "2",
        "--repeat",
        "3",
    ];
    for (members, sharing) in shared_and_mirrored("batches_with_semaphores_split") {
        let out = check("saxpy", &args, &members, &[("VKFUSE_SHARING", sharing)]);
        assert_split_in(&out, 3, 3);
    }
}

/// `vkCmdDispatchIndirect` splits where its group counts are known at submit: written by the
/// host into memory the members share, or into a mirrored allocation's shadow (both pairs).
/// Counts that a `vkCmdUpdateBuffer` of the same command buffer writes are not: the batch
/// runs whole (the host's copy holds zeros, so reading it would run nothing).
#[test]
fn indirect_dispatches_split_where_their_counts_are_known() {
    let args = [
        "--size",
        "65536",
        "--indirect",
        "host",
        "--steps",
        "2",
        "--repeat",
        "2",
    ];
    let mut runs = vec![(lvp2(), "host"), (lvp2(), "mirrored")];
    if let Some(sw) = swiftshader("indirect_dispatches_split_where_their_counts_are_known") {
        runs.push((vec![lavapipe(), sw.clone()], "host"));
        runs.push((vec![lavapipe(), sw], "mirrored"));
    }
    for (members, sharing) in runs {
        let out = check("saxpy", &args, &members, &[("VKFUSE_SHARING", sharing)]);
        let groups = split_groups(&out.stderr)
            .unwrap_or_else(|| panic!("{sharing}: no split batch:\n{}", out.dump()));
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
        assert_eq!(groups.iter().sum::<u64>(), 2 * 2 * 1024, "{}", out.dump());
    }
}

/// Parts (of 16) of sliced indirect dispatches each member ran, and how many dispatches were
/// sliced, from the line logged at device destruction.
fn sliced_parts(stderr: &str) -> Option<(u64, Vec<u64>)> {
    let line = stderr
        .lines()
        .find(|l| l.contains("split by workgroup slices"))?;
    let count = line
        .split("compute_split: ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let list = line.split("run:").nth(1)?;
    Some((
        count,
        list.split(',')
            .filter_map(|p| p.rsplit(':').next()?.trim().parse().ok())
            .collect(),
    ))
}

/// How many sliced indirect dispatches were narrowed (each member launched only its slice's
/// workgroups), from the line logged at device destruction.
fn narrowed(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("split by workgroup slices"))?;
    line.split(" narrowed")
        .next()?
        .rsplit('(')
        .next()?
        .parse()
        .ok()
}

/// `saxpy`'s arguments for 3 indirect dispatches per submit, 2 submits, their group counts
/// written by `writer` (`--indirect`).
fn indirect_args(writer: &str) -> [&str; 8] {
    [
        "--size",
        "65536",
        "--indirect",
        writer,
        "--steps",
        "3",
        "--repeat",
        "2",
    ]
}

/// Indirect dispatches whose group counts the command buffer itself writes (a
/// `vkCmdUpdateBuffer`, or a dispatch: `--indirect gpu`) are not known at submit: under
/// `compute_split` every member runs only its slice of the workgroups, with a variant of the
/// pipeline, narrowed: dispatched from counts vkfuse computes on the device. Both pairs,
/// shared, mirrored and staged memory, against lavapipe direct with validation (and
/// mandelbrot's two-dimensional grid, shared). With a member that cannot narrow, or a shader
/// that reads `gl_NumWorkGroups.x`, every member launches the whole grid and its variant
/// returns outside the slice. `hybrid` cannot weigh them and runs them whole.
#[test]
fn indirect_dispatches_with_counts_written_in_the_batch_split_by_slices() {
    let test = "indirect_dispatches_with_counts_written_in_the_batch_split_by_slices";
    let mut runs = vec![(lvp2(), "host"), (lvp2(), "mirrored"), (lvp2(), "staging")];
    if let Some(sw) = swiftshader(test) {
        for sharing in ["host", "mirrored", "staging"] {
            runs.push((vec![lavapipe(), sw.clone()], sharing));
        }
    }
    for writer in ["gpu", "update"] {
        let args = indirect_args(writer);
        // The counts' writer dispatches one group per submit with `gpu`.
        let writers = if writer == "gpu" { 2 } else { 0 };
        for (members, sharing) in &runs {
            let out = check("saxpy", &args, members, &[("VKFUSE_SHARING", sharing)]);
            let (count, parts) = sliced_parts(&out.stderr).unwrap_or_else(|| {
                panic!("{writer} {sharing}: no sliced dispatch:\n{}", out.dump())
            });
            // Three dispatches per submit, two submits; every member a part of each.
            assert_eq!(count, 6, "{}", out.dump());
            assert!(parts.iter().all(|p| *p > 0), "{parts:?}\n{}", out.dump());
            assert_eq!(parts.iter().sum::<u64>(), 6 * 16, "{}", out.dump());
            assert_eq!(narrowed(&out.stderr), Some(6), "{}", out.dump());
            // The workgroups the members ran, read back from the narrowed counts: every
            // group of the six dispatches of 1024 once (and the groups of the dispatch that
            // writes the counts, one per submit, with `gpu`), each member some.
            let groups = split_groups(&out.stderr).unwrap_or_default();
            assert_eq!(
                groups.iter().sum::<u64>(),
                6 * 1024 + writers,
                "{}",
                out.dump()
            );
            assert!(
                groups.iter().all(|g| *g >= 1024),
                "{groups:?}\n{}",
                out.dump()
            );
        }
        // A two-dimensional grid (mandelbrot's 8 x 8 groups; narrowed, cut along x), on
        // shared memory.
        for (members, _) in runs.iter().filter(|r| r.1 == "host") {
            let args = ["--size", "128", "--indirect", writer, "--repeat", "2"];
            let out = check("mandelbrot", &args, members, &[]);
            let (count, parts) = sliced_parts(&out.stderr).unwrap_or_else(|| {
                panic!("mandelbrot {writer}: no sliced dispatch:\n{}", out.dump())
            });
            assert_eq!(count, 2, "{}", out.dump());
            assert!(parts.iter().all(|p| *p > 0), "{parts:?}\n{}", out.dump());
            assert_eq!(narrowed(&out.stderr), Some(2), "{}", out.dump());
            // 8 x 8 groups, twice (and the counts' writer, once per submit, with `gpu`).
            let groups = split_groups(&out.stderr).unwrap_or_default();
            assert_eq!(
                groups.iter().sum::<u64>(),
                2 * 64 + writers,
                "{}",
                out.dump()
            );
        }
        // A shader that reads gl_NumWorkGroups.x (`--checked`) is sliced but not narrowed: a
        // narrowed slice would see its own count and skip most of its workgroups (narrowing
        // it anyway makes the result differ).
        for (members, sharing) in runs.iter().filter(|r| r.1 != "staging") {
            let checked: Vec<&str> = args.iter().copied().chain(["--checked"]).collect();
            let out = check("saxpy", &checked, members, &[("VKFUSE_SHARING", sharing)]);
            assert_eq!(
                sliced_parts(&out.stderr).map(|s| s.0),
                Some(6),
                "{}",
                out.dump()
            );
            assert_eq!(narrowed(&out.stderr), Some(0), "{}", out.dump());
        }
        // A member that cannot narrow: one message, every member launches the whole grid.
        for (members, sharing) in runs.iter().filter(|r| r.1 != "staging") {
            let out = check(
                "saxpy",
                &args,
                members,
                &[("VKFUSE_SHARING", sharing), ("VKFUSE_FAULT", "narrow:1")],
            );
            assert_eq!(
                sliced_parts(&out.stderr).map(|s| s.0),
                Some(6),
                "{}",
                out.dump()
            );
            assert_eq!(narrowed(&out.stderr), Some(0), "{}", out.dump());
            let said = out
                .stderr
                .matches("cannot narrow indirect dispatches")
                .count();
            assert_eq!(said, 1, "{}", out.dump());
        }
        let out = check(
            "saxpy",
            &args,
            &lvp2(),
            &[
                ("VKFUSE_STRATEGY", "hybrid"),
                ("VKFUSE_SHARING", "mirrored"),
            ],
        );
        assert!(sliced_parts(&out.stderr).is_none(), "{}", out.dump());
        assert!(
            out.stderr.contains("group counts are not known at submit"),
            "{}",
            out.dump()
        );
    }
    // A member that fails to make its variant: one message, and the batches run whole.
    let args = indirect_args("gpu");
    let out = check(
        "saxpy",
        &args,
        &lvp2(),
        &[("VKFUSE_SHARING", "mirrored"), ("VKFUSE_FAULT", "slices:1")],
    );
    assert!(sliced_parts(&out.stderr).is_none(), "{}", out.dump());
    let said = out
        .stderr
        .matches("makes no variant that runs a slice of the workgroups")
        .count();
    assert_eq!(said, 1, "{}", out.dump());
}

/// Rounds of split batches, from the line logged at device destruction.
fn split_rounds(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("compute_split:") && l.contains("round(s);"))?;
    line.split(" split in ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Random sequences (`kernels --kernel mix`, four seeds) of 24 dispatches over random parts
/// of two buffers, element-wise steps and neighbour steps, submitted twice: equal to lavapipe
/// direct with shared and with mirrored memory on both pairs. Steps cut alike on the same
/// bytes share rounds (fewer rounds than dispatches); the others wait for each other.
#[test]
fn random_dispatch_sequences_match() {
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader("random_dispatch_sequences_match") {
        pairs.push(vec![lavapipe(), sw]);
    }
    for seed in ["1", "2", "3", "4"] {
        let args = ["--seed", seed, "--repeat", "2"];
        for members in &pairs {
            for sharing in ["host", "mirrored"] {
                let out = check("mix", &args, members, &[("VKFUSE_SHARING", sharing)]);
                let rounds = split_rounds(&out.stderr)
                    .unwrap_or_else(|| panic!("seed {seed}: no split batch:\n{}", out.dump()));
                assert!(
                    rounds < 2 * 24,
                    "seed {seed}: {rounds} rounds for 48 dispatches\n{}",
                    out.dump()
                );
            }
        }
    }
}

/// Slices of a histogram's `atomicAdd`s into memory two devices share would not be atomic
/// with each other: with shared memory the dispatch runs whole. With mirrored memory each
/// member adds into its own copy and the bins merge as the sum of the members' deltas.
#[test]
fn add_atomics_split_only_into_copies_of_their_own() {
    let out = check("histogram", &["--size", "65536"], &lvp2(), &[]);
    assert!(split_groups(&out.stderr).is_none(), "{}", out.dump());
    assert!(
        out.stderr
            .contains("add atomics on memory the members share"),
        "{}",
        out.dump()
    );
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader("add_atomics_split_only_into_copies_of_their_own") {
        pairs.push(vec![lavapipe(), sw]);
    }
    for members in pairs {
        let out = check(
            "histogram",
            &["--size", "65536", "--repeat", "3"],
            &members,
            &[("VKFUSE_SHARING", "mirrored")],
        );
        let groups =
            split_groups(&out.stderr).unwrap_or_else(|| panic!("no split batch:\n{}", out.dump()));
        assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
        assert_eq!(groups.iter().sum::<u64>(), 3 * 1024, "{}", out.dump());
    }
    // Bins cleared by a vkCmdFillBuffer in the same command buffer: the fill runs whole on the
    // first member (a round of its own), then the dispatch splits.
    let out = check(
        "histogram",
        &["--size", "65536", "--repeat", "3", "--clear"],
        &lvp2(),
        &[("VKFUSE_SHARING", "mirrored")],
    );
    assert_split_in(&out, 3, 6);
}

/// A dispatch that would break if split: stream compaction hands out output slots with
/// `atomicAdd` on a counter and uses the old value, so slices on two members would hand out
/// the same slots. The analysis says so (the add's result is used) and it runs whole, even
/// with mirrored memory, with the right result.
#[test]
fn a_dispatch_that_would_break_is_not_split() {
    for sharing in ["host", "mirrored"] {
        let out = check(
            "compact",
            &["--size", "65536"],
            &lvp2(),
            &[("VKFUSE_SHARING", sharing)],
        );
        assert!(split_groups(&out.stderr).is_none(), "{}", out.dump());
        assert!(
            out.stderr
                .contains("compute_split: a batch runs whole: no dispatch that splits"),
            "{}",
            out.dump()
        );
    }
}

/// Two drivers (lavapipe + SwiftShader, sharing host memory): slices run on both, with the
/// result of lavapipe direct (the kernels' arithmetic is exact on every driver).
#[test]
fn kernels_split_on_lavapipe_and_swiftshader() {
    let Some(sw) = swiftshader("kernels_split_on_lavapipe_and_swiftshader") else {
        return;
    };
    for (kernel, args, total) in [
        ("saxpy", &["--size", "65536"][..], 1024u64),
        ("mandelbrot", &["--size", "128"], 64),
        ("matmul", &["--size", "64"], 16),
        ("chain", &["--size", "4096"], 512),
    ] {
        let out = check(kernel, args, &[lavapipe(), sw.clone()], &[]);
        let groups = split_groups(&out.stderr)
            .unwrap_or_else(|| panic!("{kernel}: no split batch:\n{}", out.dump()));
        assert!(
            groups.iter().all(|g| *g > 0),
            "{kernel}: {groups:?}\n{}",
            out.dump()
        );
        assert_eq!(groups.iter().sum::<u64>(), total, "{}", out.dump());
    }
}

/// The bytes copied to other members before rounds and merged after them, from the line
/// logged at device destruction.
fn mirrored_bytes(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .find(|l| l.contains("compute_split:") && l.contains("with mirrored memory"))?;
    let mut numbers = line
        .rsplit(':')
        .next()?
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

/// Runs each of `kernels` (kernel, arguments, workgroups in all: 0 leaves the sum unchecked)
/// with `VKFUSE_SHARING=sharing` (each member a copy of its own) over lavapipe×2 and
/// lavapipe + SwiftShader (`test` names the caller): equal to lavapipe direct (`check`),
/// slices on every member, bytes copied to the other members and merged back.
fn split_into_copies_of_their_own(test: &str, sharing: &str, kernels: &[(&str, &[&str], u64)]) {
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader(test) {
        pairs.push(vec![lavapipe(), sw]);
    }
    for members in pairs {
        for (kernel, args, total) in kernels {
            let out = check(kernel, args, &members, &[("VKFUSE_SHARING", sharing)]);
            if sharing == "staging" {
                assert!(
                    out.stderr.contains("reached through staging buffers"),
                    "{kernel}: not the staging tier:\n{}",
                    out.dump()
                );
            }
            let groups = split_groups(&out.stderr)
                .unwrap_or_else(|| panic!("{kernel}: no split batch:\n{}", out.dump()));
            assert!(
                groups.iter().all(|g| *g > 0),
                "{kernel}: {groups:?}\n{}",
                out.dump()
            );
            if *total > 0 {
                assert_eq!(groups.iter().sum::<u64>(), *total, "{}", out.dump());
            }
            let (copied, merged) = mirrored_bytes(&out.stderr)
                .unwrap_or_else(|| panic!("{kernel}: no mirrored line:\n{}", out.dump()));
            assert!(copied > 0 && merged > 0, "{kernel}:\n{}", out.dump());
        }
    }
}

/// Mirrored memory (each member its own copy, `VKFUSE_SHARING=mirrored`): before a split
/// round the other members get what it touches from the first member's copy, and after it
/// the bytes each changed are merged into the first member's copy; the results equal
/// lavapipe direct, on one driver and on two.
#[test]
fn kernels_split_with_mirrored_memory() {
    split_into_copies_of_their_own(
        "kernels_split_with_mirrored_memory",
        "mirrored",
        &[
            ("saxpy", &["--size", "65536", "--repeat", "2"], 2048),
            ("mandelbrot", &["--size", "128"], 64),
            ("matmul", &["--size", "64"], 16),
            ("chain", &["--size", "4096"], 512),
        ],
    );
    // Images in mirrored memory of one driver are bytes like any other.
    let out = check(
        "filter",
        &["--size", "128"],
        &lvp2(),
        &[("VKFUSE_SHARING", "mirrored")],
    );
    assert!(split_groups(&out.stderr).is_some(), "{}", out.dump());
}

/// Members' copies reached only through staging buffers (the staging tier: the way memory
/// that is not host-visible reaches GPUs of different drivers; `VKFUSE_SHARING=staging` takes
/// it on these members): each member's rounds copy what they touch between its copy and a
/// stage of its own in host memory, merged on the bridge, the first member's copy made ready
/// and copied out into its stage before the first round and the merged stage copied back
/// into it at the join. The results equal lavapipe direct, with validation, on one driver and
/// on two: own bytes (saxpy), diffs (mandelbrot, matmul), rounds reading earlier rounds
/// (chain), add atomics with fills between rounds (histogram), random sequences (mix) and
/// semaphores between batches.
#[test]
fn kernels_split_with_staged_memory() {
    split_into_copies_of_their_own(
        "kernels_split_with_staged_memory",
        "staging",
        &[
            ("saxpy", &["--size", "65536", "--repeat", "2"], 2048),
            ("mandelbrot", &["--size", "128"], 64),
            ("matmul", &["--size", "64"], 16),
            ("chain", &["--size", "4096"], 512),
            (
                "histogram",
                &["--size", "65536", "--repeat", "3", "--clear"],
                3072,
            ),
            ("mix", &["--seed", "5"], 0),
            ("saxpy", &["--size", "65536", "--batches", "3"], 3072),
        ],
    );
}

/// Image barriers and copies between images and buffers in the command buffer of the
/// dispatch (the filter's output moved from UNDEFINED to GENERAL before it, to
/// TRANSFER_SRC_OPTIMAL after it, and copied into the readback buffer; with `--clear` its
/// source cleared first; and blitted mirrored into a third image): every member replays
/// the layout changes once, the dispatch splits and the copy runs whole on the first member,
/// a round of its own; with shared, mirrored and staged memory, on lavapipe×2 and where the
/// images are copied between drivers (lavapipe + SwiftShader: each round copies them in and
/// out in the layouts it starts and ends with, and a barrier from UNDEFINED keeps what was
/// copied in). Later submits find the output holding the previous one's result and discard
/// it. Results equal lavapipe direct, with validation.
#[test]
fn image_barriers_and_image_copies_split() {
    let mut pairs = vec![lvp2()];
    if let Some(sw) = swiftshader("image_barriers_and_image_copies_split") {
        pairs.push(vec![lavapipe(), sw]);
    }
    for members in pairs {
        for sharing in ["host", "mirrored", "staging"] {
            for sampled in [false, true] {
                let mut args = vec!["--size", "128", "--in-batch", "--repeat", "3"];
                if sampled {
                    args.push("--sampled");
                }
                let out = check("filter", &args, &members, &[("VKFUSE_SHARING", sharing)]);
                assert_split_in(&out, 3, 6);
                let groups = split_groups(&out.stderr)
                    .unwrap_or_else(|| panic!("{sharing}: no split batch:\n{}", out.dump()));
                assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
                assert_eq!(groups.iter().sum::<u64>(), 768, "{}", out.dump());
                // The source cleared in the command buffer first (`vkCmdClearColorImage`,
                // a round of its own on the first member; leaving out its replay makes
                // this fail).
                args.push("--clear");
                let out = check("filter", &args, &members, &[("VKFUSE_SHARING", sharing)]);
                assert_split_in(&out, 3, 9);
                // The output blitted mirrored into a third image, which is read back
                // (`vkCmdBlitImage`, run whole on the first member after the split dispatch;
                // leaving out its replay makes this fail).
                args.push("--blit");
                let out = check("filter", &args, &members, &[("VKFUSE_SHARING", sharing)]);
                assert_split_in(&out, 3, 12);
            }
        }
    }
}

/// Kernels recorded into a secondary command buffer that the submitted primary executes
/// (`--secondary`): the primary's split log takes over the secondary's, and the dispatches
/// split as they do recorded in the primary (shared and mirrored memory, both pairs).
#[test]
fn secondary_command_buffers_split() {
    let kernels: [(&str, &[&str], u64); 4] = [
        ("saxpy", &["--size", "65536", "--steps", "3"], 3 * 1024),
        ("mandelbrot", &["--size", "128"], 64),
        ("histogram", &["--size", "65536"], 1024),
        ("filter", &["--size", "128", "--in-batch", "--blit"], 256),
    ];
    for (members, sharing) in shared_and_mirrored("secondary_command_buffers_split") {
        for (kernel, args, groups_per_submit) in kernels {
            // Add atomics split only into copies of their own.
            if kernel == "histogram" && sharing == "host" {
                continue;
            }
            let mut args = args.to_vec();
            args.extend(["--secondary", "--repeat", "2"]);
            let out = check(kernel, &args, &members, &[("VKFUSE_SHARING", sharing)]);
            let groups = split_groups(&out.stderr)
                .unwrap_or_else(|| panic!("{kernel} {sharing}: no split batch:\n{}", out.dump()));
            assert!(groups.iter().all(|g| *g > 0), "{groups:?}\n{}", out.dump());
            assert_eq!(
                groups.iter().sum::<u64>(),
                2 * groups_per_submit,
                "{kernel}: {}",
                out.dump()
            );
        }
    }
    // The indirect saxpy whose counts a dispatch of the secondary writes.
    let args = [
        "--size",
        "65536",
        "--indirect",
        "gpu",
        "--secondary",
        "--repeat",
        "2",
    ];
    let out = check("saxpy", &args, &lvp2(), &[("VKFUSE_SHARING", "mirrored")]);
    assert!(sliced_parts(&out.stderr).is_some(), "{}", out.dump());
}

/// A member lost at a split batch's submission ran none of it: the batch runs whole on the
/// survivor, with the right result (the first submit split, the next two ran whole).
#[test]
fn member_lost_at_a_split_batch() {
    let out = check(
        "saxpy",
        &["--size", "65536", "--repeat", "3"],
        &lvp2(),
        &[("VKFUSE_FAULT", "submit:1:2")],
    );
    assert!(
        out.stderr.contains("member 1 lost"),
        "no loss:\n{}",
        out.dump()
    );
    assert_eq!(
        split_groups(&out.stderr),
        Some(vec![512, 512]),
        "{}",
        out.dump()
    );
    assert!(
        out.stderr
            .contains("batches placed: member 0: 3, member 1: 1"),
        "{}",
        out.dump()
    );
}

/// `hybrid` splits until it has measured the members, then only where splitting pays: a
/// tiny saxpy (64 workgroups, far below a millisecond a round) soon runs whole, with the
/// right result either way.
#[test]
fn hybrid_stops_splitting_where_it_does_not_pay() {
    let out = check(
        "saxpy",
        &["--size", "4096", "--repeat", "6"],
        &lvp2(),
        &[("VKFUSE_STRATEGY", "hybrid")],
    );
    assert!(out.stderr.contains("strategy hybrid"), "{}", out.dump());
    let whole: u64 = out
        .stderr
        .lines()
        .find_map(|l| {
            l.split("hybrid: ")
                .nth(1)?
                .split(" batch(es) ran whole")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no batch ran whole:\n{}", out.dump()));
    let split = split_groups(&out.stderr).unwrap_or_else(|| {
        panic!(
            "the first batch (not measured yet) did not split:\n{}",
            out.dump()
        )
    });
    assert!((1..=5).contains(&whole), "{}", out.dump());
    assert_eq!(
        split.iter().sum::<u64>(),
        (6 - whole) * 64,
        "{}",
        out.dump()
    );
}

/// Examples whose command buffers copy buffers around their dispatches (`compute`: uploads
/// and readbacks; `shared-inputs`: a slice copied before each frame's dispatch): the copies run
/// whole on the first member in rounds of their own, the dispatches split, with shared and
/// with mirrored memory; results equal lavapipe direct.
#[test]
fn copies_run_whole_between_split_dispatches() {
    for example_name in ["compute", "shared-inputs"] {
        for sharing in ["host", "mirrored"] {
            let out = check_example(example_name, &[], &lvp2(), &[("VKFUSE_SHARING", sharing)]);
            let groups = split_groups(&out.stderr)
                .unwrap_or_else(|| panic!("{example_name} {sharing}: no split:\n{}", out.dump()));
            assert!(groups.iter().all(|g| *g > 0), "{}", out.dump());
        }
    }
}

/// Split rounds on two SwiftShader members, which share semaphores with `VKFUSE_SYNC=shared`
/// (`links.rs`; not by default: a CPU driver): the waits of a
/// round and of the join for the other member's previous round go through shared semaphores,
/// not the bridge, and the kernels (with dependent dispatches in rounds, indirect dispatches
/// written in the batch, and a fence per submit) give lavapipe's result.
#[test]
fn split_rounds_wait_through_shared_semaphores() {
    let Some(sw) = swiftshader("split_rounds_wait_through_shared_semaphores") else {
        return;
    };
    let ss2 = [sw.clone(), sw];
    let linked = |out: &Output| {
        out.stderr
            .lines()
            .find(|l| l.contains("went through shared semaphores"))
            .and_then(|l| {
                l.split(" wait(s)")
                    .next()?
                    .rsplit(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let kernels: [(&str, &[&str]); 4] = [
        ("saxpy", &["--repeat", "4", "--steps", "3"]),
        ("mandelbrot", &["--size", "256", "--repeat", "2"]),
        ("chain", &["--size", "16384"]),
        ("saxpy", &["--indirect", "gpu", "--repeat", "3"]),
    ];
    for (kernel, args) in kernels {
        let out = check(kernel, args, &ss2, &[("VKFUSE_SYNC", "shared")]);
        let groups = split_groups(&out.stderr).unwrap_or_default();
        assert!(
            groups.len() == 2 && groups.iter().all(|g| *g > 0),
            "{kernel} {args:?} not split: {groups:?}\n{}",
            out.dump()
        );
        assert!(
            linked(&out) > 0,
            "{kernel} {args:?}: no wait through a shared semaphore\n{}",
            out.dump()
        );
        let bridged = check(kernel, args, &ss2, &[("VKFUSE_SYNC", "bridge")]);
        assert_eq!(linked(&bridged), 0, "{}", bridged.dump());
    }
}
