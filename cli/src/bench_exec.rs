//! The execution figures of `vkfuse bench` (issue 3): the per-submit cost of `round_robin`
//! placement against `single`, and the cost of handing data written on one member to a batch
//! on another (shared host memory) against copying it with `memcpy`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::args::CliError;
use crate::env::{self, FusedConfig, Setup};

pub const TARGET_ROUND_ROBIN: f64 = 1.10;

fn fused(member: &Path, strategy: &str) -> FusedConfig {
    FusedConfig {
        members: Some(vec![member.to_path_buf(), member.to_path_buf()]),
        strategy: Some(strategy.to_string()),
        residency: None,
        primary: Some(0),
        log: None,
    }
}

/// One loop shape measured under single and round_robin.
struct Shape<'a> {
    program: &'a str,
    args: Vec<String>,
    key: &'a str,
    /// Arguments at two sizes for callgrind, and the loop iterations per size unit.
    sized: fn(usize) -> Vec<String>,
    sizes: (usize, usize),
    per_unit: f64,
}

/// Wall-clock medians over alternating rounds, and callgrind instructions, for one shape.
fn measure(
    shape: &Shape<'_>,
    single_setup: Setup<'_>,
    rr_setup: Setup<'_>,
    runs: usize,
) -> Result<Value, CliError> {
    let program = env::program(shape.program)?;
    let args = &shape.args;
    let (mut s, mut r, mut per_round) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let (mut rs, mut rr_) = (Vec::new(), Vec::new());
        for is_rr in order {
            let (setup, label, out): (Setup<'_>, _, _) = if is_rr {
                (rr_setup, "round_robin", &mut rr_)
            } else {
                (single_setup, "single", &mut rs)
            };
            let v = super::bench::run_bench(&program, args, setup, label)?;
            *out = super::bench::all_numbers(&v, shape.key, shape.program)?;
        }
        per_round.push(super::bench::ratio(
            super::bench::median(&rr_),
            super::bench::median(&rs),
        ));
        s.extend(rs);
        r.extend(rr_);
    }
    let instructions = if Command::new("valgrind").arg("--version").output().is_ok() {
        let (ratio, single_per, rr_per) = super::bench::instruction_ratio(
            &program,
            shape.sized,
            shape.sizes,
            shape.per_unit,
            single_setup,
            rr_setup,
        )?;
        Some(
            json!({"ratio": ratio, "single_per_iteration": single_per, "round_robin_per_iteration": rr_per}),
        )
    } else {
        None
    };
    Ok(json!({
        "ratio": super::bench::ratio(super::bench::median(&r), super::bench::median(&s)),
        "single_ns_median": super::bench::median(&s),
        "round_robin_ns_median": super::bench::median(&r),
        "per_round": per_round,
        "instructions": instructions,
    }))
}

/// Per-submit figures of round_robin against single, for two loop shapes: a frame loop (each
/// submit fenced and waited for, as a paced application does) and a chain of dependent submits
/// that are not waited for (the worst case: every submit crosses members while the previous one
/// still runs).
pub fn submit_overhead(
    member: &Path,
    manifest: &Path,
    runs: usize,
    submits: usize,
    frames: usize,
) -> Result<Value, CliError> {
    let single = fused(member, "single");
    let rr = fused(member, "round_robin");
    let single_setup = |cmd: &mut Command| single.apply(cmd, manifest);
    let rr_setup = |cmd: &mut Command| rr.apply(cmd, manifest);
    let frame = measure(
        &Shape {
            program: "bench-frame",
            args: vec!["--frames".into(), frames.to_string()],
            key: "frame_ns",
            sized: |n| ["--frames", &n.to_string()].map(String::from).to_vec(),
            sizes: (10, 60),
            per_unit: 1.0,
        },
        &single_setup,
        &rr_setup,
        runs,
    )?;
    let chain = measure(
        &Shape {
            program: "bench-submit",
            args: vec![
                "--submits".into(),
                submits.to_string(),
                "--iterations".into(),
                "3".into(),
            ],
            key: "submit_ns",
            // Each run submits the chain twice (warm-up and one timed iteration).
            sized: |n| {
                ["--submits", &n.to_string(), "--iterations", "1"]
                    .map(String::from)
                    .to_vec()
            },
            sizes: (200, 1000),
            per_unit: 2.0,
        },
        &single_setup,
        &rr_setup,
        runs,
    )?;
    Ok(json!({
        "frame_loop": frame,
        "dependent_chain": chain,
        "target": TARGET_ROUND_ROBIN,
        "method": format!(
            "Through vkfuse over two members ({m} twice), VKFUSE_STRATEGY=single against \
             round_robin, {runs} rounds in alternating order, ratio of the medians. frame_loop: \
             bench-frame ({frames} frames; each frame recorded, submitted with a fence and waited \
             for, so round_robin alternates members per frame) — the submit-bound loop of a paced \
             application. dependent_chain: bench-submit ({submits} submits of one small command \
             buffer, each waiting for the previous one's timeline value, one fence at the end) — \
             the worst case, where every submit crosses members while the previous batch still \
             runs, so each goes through the bridge thread (a blocking wait, a host signal, a \
             wake-up of the other member's queue thread). Instructions: callgrind at two sizes \
             per configuration (10/60 frames, 200/1000 submits), LP_NUM_THREADS=0, all threads \
             counted, the difference divided per frame or submit.",
            m = member.display()
        ),
    }))
}

/// A chain of dependent submits under `round_robin` over two members that share semaphores
/// (`VKFUSE_SYNC=shared`, which CPU drivers take only when asked) against the same chain through the bridge thread
/// (`VKFUSE_SYNC=bridge`): the bench's member where two of it share semaphores, else
/// SwiftShader where it is installed (lavapipe exports none). `skipped` says why where no
/// member of the machine shares them.
pub fn shared_semaphores(
    member: &Path,
    manifest: &Path,
    runs: usize,
    submits: usize,
) -> Result<Value, CliError> {
    let program = env::program("bench-submit")?;
    let mut candidates = vec![member.to_path_buf()];
    if let Ok(sw) = vkfuse_manifests::resolve_member("swiftshader") {
        if sw != member {
            candidates.push(sw);
        }
    }
    let shares = |m: &Path| -> Result<bool, CliError> {
        let mut cmd = Command::new(&program);
        cmd.args(["--submits", "4", "--iterations", "1"]);
        FusedConfig {
            log: Some("info".into()),
            ..fused(m, "round_robin")
        }
        .apply(&mut cmd, manifest)?;
        cmd.env("VKFUSE_SYNC", "shared");
        let out = crate::proc::run_captured(&mut cmd, std::time::Duration::from_secs(120))?;
        Ok(out.status.success() && out.stderr.contains("share semaphores"))
    };
    let mut chosen = None;
    for m in candidates {
        if shares(&m)? {
            chosen = Some(m);
            break;
        }
    }
    let Some(m) = chosen else {
        return Ok(json!({
            "skipped": "no member of this machine shares semaphores with a second instance of itself (lavapipe exports none; SwiftShader is not installed)",
        }));
    };
    let rr = fused(&m, "round_robin");
    let setup = |sync: &'static str| {
        let rr = &rr;
        move |cmd: &mut Command| -> Result<(), CliError> {
            rr.apply(cmd, manifest)?;
            cmd.env("VKFUSE_SYNC", sync);
            Ok(())
        }
    };
    let (bridge_setup, shared_setup) = (setup("bridge"), setup("shared"));
    let args: Vec<String> = ["--submits", &submits.to_string(), "--iterations", "3"]
        .map(String::from)
        .to_vec();
    let (mut b, mut sh, mut per_round) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        let (mut rb, mut rs) = (Vec::new(), Vec::new());
        for shared in [round % 2 == 1, round % 2 == 0] {
            let v = if shared {
                super::bench::run_bench(&program, &args, &shared_setup, "shared semaphores")?
            } else {
                super::bench::run_bench(&program, &args, &bridge_setup, "bridge")?
            };
            let n = super::bench::all_numbers(&v, "submit_ns", "bench-submit")?;
            if shared {
                rs = n;
            } else {
                rb = n;
            }
        }
        per_round.push(super::bench::ratio(
            super::bench::median(&rs),
            super::bench::median(&rb),
        ));
        b.extend(rb);
        sh.extend(rs);
    }
    Ok(json!({
        "member": m.display().to_string(),
        "ratio": super::bench::ratio(super::bench::median(&sh), super::bench::median(&b)),
        "bridge_ns_median": super::bench::median(&b),
        "shared_ns_median": super::bench::median(&sh),
        "per_round": per_round,
        "method": format!(
            "bench-submit ({submits} submits of one small command buffer, each waiting for the \
             previous one's timeline value, one fence at the end; 3 timed iterations per process \
             after one warm-up) through vkfuse over two members ({m} twice), \
             VKFUSE_STRATEGY=round_robin, so every submit waits for the other member's last \
             batch: VKFUSE_SYNC=shared (a binary semaphore the members share as an opaque fd, \
             signalled by an empty batch on the other member) against VKFUSE_SYNC=bridge (the \
             bridge thread's host wait and signal), {runs} rounds in alternating order, ratio \
             shared/bridge of the medians of all samples.",
            m = m.display()
        ),
    }))
}

/// The handoff between members through both tiers built: shared host memory (nothing copied)
/// and mirrored device-local memory (`VKFUSE_SHARING=mirrored`: the writer's copy is copied into
/// the reader's before the reading batch), each against memcpy of the same bytes, and the same
/// handoff on one member directly. Returns (shared host, mirrored).
pub fn handoff(
    member: &Path,
    manifest: &Path,
    max_mib: usize,
) -> Result<(Value, Value, Value), CliError> {
    let program: PathBuf = env::program("bench-handoff")?;
    let rr = fused(member, "round_robin");
    let setup = |cmd: &mut Command| rr.apply(cmd, manifest);
    let mirrored_setup = |cmd: &mut Command| {
        rr.apply(cmd, manifest)?;
        cmd.env("VKFUSE_SHARING", "mirrored");
        Ok(())
    };
    let staging_setup = |cmd: &mut Command| {
        rr.apply(cmd, manifest)?;
        cmd.env("VKFUSE_SHARING", "staging");
        Ok(())
    };
    let direct_setup = |cmd: &mut Command| {
        env::only_driver(cmd, member);
        Ok(())
    };
    let args = [
        "--max-mib".to_string(),
        max_mib.to_string(),
        "--repeats".to_string(),
        "3".to_string(),
    ];
    let d = super::bench::run_bench(&program, &args, &direct_setup, "direct")?;
    let direct = super::bench::all_numbers(&d, "handoff_ns", "bench-handoff")?;
    let tier = |setup: env::Setup<'_>, label: &str| -> Result<Vec<Value>, CliError> {
        let v = super::bench::run_bench(&program, &args, setup, label)?;
        let sizes = super::bench::all_numbers(&v, "sizes_mib", "bench-handoff")?;
        let handoff = super::bench::all_numbers(&v, "handoff_ns", "bench-handoff")?;
        let memcpy = super::bench::all_numbers(&v, "memcpy_ns", "bench-handoff")?;
        Ok(sizes
            .iter()
            .zip(&handoff)
            .zip(&memcpy)
            .zip(&direct)
            .map(|(((s, h), m), dh)| {
                json!({
                    "mib": s,
                    "handoff_ns": h,
                    "direct_same_device_ns": dh,
                    "memcpy_ns": m,
                    "throughput_ratio": super::bench::ratio(*m, *h),
                })
            })
            .collect())
    };
    let shared = tier(&setup, "round_robin")?;
    let mirrored = tier(&mirrored_setup, "round_robin, mirrored")?;
    let staged = tier(&staging_setup, "round_robin, staging")?;
    let method = |what: &str| {
        format!(
            "bench-handoff through vkfuse over {m} twice with VKFUSE_STRATEGY=round_robin{what}: a \
             batch on one member fills S bytes of a device-local buffer (never mapped), is waited \
             for, then a batch on the other member makes all of it its input (a buffer memory \
             barrier over the whole buffer) and copies the last 16 bytes out (checked), and is \
             timed from vkQueueSubmit to its fence (handoff_ns, median of 3), which includes any \
             copy between the members. memcpy_ns: the same S bytes copied on the host in the same \
             process. throughput_ratio = (S / handoff_ns) / (S / memcpy_ns). \
             direct_same_device_ns: the same handoff on {m} directly, both batches on one device.",
            m = member.display()
        )
    };
    Ok((
        json!({
            "tier": "shared host memory",
            "bytes_copied_between_members": 0,
            "sizes": shared,
            "method": method(""),
        }),
        json!({
            "tier": "mirrored: the writer's copy copied into the reader's through both mappings \
                     (one CPU copy)",
            "sizes": mirrored,
            "method": method(
                " and VKFUSE_SHARING=mirrored (the reading member's copy is brought up to date \
                 from the writer's before the reading batch; the never-mapped path, one copy)",
            ),
        }),
        json!({
            "tier": "staging: the writer's batch copies its range into a staging buffer in host \
                     memory every member imports (vkCmdCopyBuffer, after the writer's work), the \
                     reader's batch copies it from there into its copy (vkCmdCopyBuffer, before \
                     its work); where a member imports no host memory, the CPU copies between a \
                     staging buffer of each member. The path of memory that is not host-visible \
                     on members of different drivers",
            "sizes": staged,
            "method": method(
                " and VKFUSE_SHARING=staging (vkfuse never maps the members' copies; both \
                 lavapipes import host memory, so the handoff is the reader's one transfer \
                 command from the writer's staging buffer, which lavapipe runs on the CPU)",
            ),
        }),
    ))
}

/// The image handoff between members of different drivers (`images.rs` in the ICD): lavapipe
/// and SwiftShader lay images out differently, so an image one writes reaches the other as
/// two copies through a staging buffer in host memory both import (out at the end of the
/// writing batch, in at the start of the reading one). `None` when SwiftShader is not
/// installed.
pub fn image_handoff(
    member: &Path,
    manifest: &Path,
    max_mib: usize,
) -> Result<Option<Value>, CliError> {
    let Some(sw) =
        vkfuse_manifests::known_driver("swiftshader").and_then(vkfuse_manifests::find_known)
    else {
        return Ok(None);
    };
    let program: PathBuf = env::program("bench-handoff")?;
    let rr = FusedConfig {
        members: Some(vec![member.to_path_buf(), sw.clone()]),
        ..fused(member, "round_robin")
    };
    let setup = |cmd: &mut Command| rr.apply(cmd, manifest);
    let direct_setup = |cmd: &mut Command| {
        env::only_driver(cmd, member);
        Ok(())
    };
    let args = [
        "--image".to_string(),
        "--max-mib".to_string(),
        max_mib.to_string(),
        "--repeats".to_string(),
        "3".to_string(),
    ];
    let numbers = |v: &Value, key: &str| super::bench::all_numbers(v, key, "bench-handoff");
    let d = super::bench::run_bench(&program, &args, &direct_setup, "direct, image")?;
    let f = super::bench::run_bench(&program, &args, &setup, "round_robin, image")?;
    let (d_write, d_read) = (numbers(&d, "write_ns")?, numbers(&d, "handoff_ns")?);
    let (sizes, write, read, memcpy) = (
        numbers(&f, "sizes_mib")?,
        numbers(&f, "write_ns")?,
        numbers(&f, "handoff_ns")?,
        numbers(&f, "memcpy_ns")?,
    );
    let rows: Vec<Value> = (0..sizes.len().min(d_write.len()))
        .map(|k| {
            let fused = write[k] + read[k];
            let direct = d_write[k] + d_read[k];
            let extra = (fused - direct).max(1.0);
            json!({
                "mib": sizes[k],
                "write_ns": write[k],
                "read_ns": read[k],
                "direct_write_ns": d_write[k],
                "direct_read_ns": d_read[k],
                "extra_ns": extra,
                "memcpy_ns": memcpy[k],
                "throughput_ratio": super::bench::ratio(memcpy[k], extra),
            })
        })
        .collect();
    Ok(Some(json!({
        "tier": "images copied as images between members of different drivers: out of the \
                 writer's copy into a staging buffer (vkCmdCopyImageToBuffer in a submit of its \
                 own on the writer when the reading batch is submitted: lazy copies), into the \
                 reader's copy (vkCmdCopyBufferToImage at the start of the reading batch)",
        "sizes": rows,
        "method": format!(
            "bench-handoff --image through vkfuse over {m} and {s} with \
             VKFUSE_STRATEGY=round_robin: a batch on {m} clears an R8G8B8A8_UINT image of S bytes \
             (write_ns, vkQueueSubmit to fence, median of 3), then a batch on {s} copies its \
             last texel out (read_ns, which includes the copy out on {m} and the copy in; \
             checked). The same on {m} directly (direct_write_ns, direct_read_ns: no copies). \
             extra_ns = (write_ns + read_ns) - (direct_write_ns + direct_read_ns); memcpy_ns: the \
             same S bytes copied on the host in the fused process; throughput_ratio = memcpy_ns \
             / extra_ns (two copies of S bytes, each tiling or untiling the image on the CPU \
             drivers here).",
            m = member.display(),
            s = sw.display()
        ),
    })))
}

/// What `compute_split` costs and may give (issue 4), per kernel of the `kernels` example:
/// run once on `member` directly and once through vkfuse on two such members under
/// `compute_split`, in the same `vkfuse bench` run.
///
/// - `cpu_work`: the process's CPU time over the submits (every thread, the members'
///   included), fused / direct (target <= 1.10 for compute-bound kernels);
/// - `wall`: the median wall time per submit, fused / direct;
/// - `projected_speedup`: from the members' busy time (timestamps around each member's
///   slices), the sum over members / the longest member's, over the rounds: what running the
///   members side by side on hardware of their own would give;
/// - `workgroups`: each member's share;
/// - `merge_bytes_per_dispatch`: bytes copied between members to merge slices;
/// - `hybrid`: the same kernel under `hybrid` (split only where it pays), its wall time and
///   CPU work against direct and the batches it split and ran whole; `saxpy_small` adds a
///   kernel too small to pay, and its `wall_interleaved` (alternating runs).
/// - `staged`: the same with the staging tier (`VKFUSE_SHARING=staging`).
///
/// `scale` divides the kernels' sizes (1: mandelbrot 1024², matmul 512, saxpy 4 Mi elements).
pub fn compute_split(member: &Path, manifest: &Path, scale: usize) -> Result<Value, CliError> {
    let scale = scale.max(1);
    let program: PathBuf = env::program("kernels")?;
    let split = FusedConfig {
        log: Some("info".to_string()),
        ..fused(member, "compute_split")
    };
    let fused_setup = |cmd: &mut Command| split.apply(cmd, manifest);
    let mirrored_setup = |cmd: &mut Command| {
        split.apply(cmd, manifest)?;
        cmd.env("VKFUSE_SHARING", "mirrored");
        Ok(())
    };
    let staged_setup = |cmd: &mut Command| {
        split.apply(cmd, manifest)?;
        cmd.env("VKFUSE_SHARING", "staging");
        Ok(())
    };
    let hybrid = FusedConfig {
        log: Some("info".to_string()),
        ..fused(member, "hybrid")
    };
    let hybrid_setup = |cmd: &mut Command| hybrid.apply(cmd, manifest);
    let direct_setup = |cmd: &mut Command| {
        env::only_driver(cmd, member);
        Ok(())
    };
    let run =
        |args: &[String], setup: Setup<'_>, label: &str| -> Result<(Value, String), CliError> {
            let mut cmd = Command::new(&program);
            cmd.args(args).arg("--json");
            setup(&mut cmd)?;
            let out = crate::proc::run_captured(&mut cmd, std::time::Duration::from_secs(600))?;
            if !out.status.success() {
                return Err(CliError::failure(format!(
                    "kernels ({label}) failed ({}):\n{}",
                    crate::proc::describe_status(out.status),
                    crate::proc::tail(&out.stderr, 20)
                )));
            }
            let v = crate::proc::last_json(&out.stdout).ok_or_else(|| {
                CliError::failure(format!("kernels ({label}) printed no JSON line"))
            })?;
            Ok((v, out.stderr))
        };
    // Median wall time per submit of a run.
    let wall = |v: &Value| -> Result<f64, CliError> {
        Ok(super::bench::median(&super::bench::all_numbers(
            v,
            "submit_ns",
            "kernels",
        )?))
    };
    let mut kernels = serde_json::Map::new();
    let sizes = [
        ("mandelbrot", "mandelbrot", (1024 / scale).max(16), 10),
        ("matmul", "matmul", (512 / scale / 16).max(1) * 16, 4),
        ("saxpy", "saxpy", ((1 << 22) / scale).max(64), 20),
        ("saxpy_small", "saxpy", 4096, 100),
    ];
    for (name, kernel, size, repeat) in sizes {
        let args: Vec<String> = [
            "--kernel".to_string(),
            kernel.to_string(),
            "--size".to_string(),
            size.to_string(),
            "--repeat".to_string(),
            repeat.to_string(),
        ]
        .to_vec();
        let (d, _) = run(&args, &direct_setup, "direct")?;
        let (f, log) = run(&args, &fused_setup, "compute_split")?;
        let (fm, mlog) = run(&args, &mirrored_setup, "compute_split, mirrored")?;
        let (fs, slog) = run(&args, &staged_setup, "compute_split, staging")?;
        let (fh, hlog) = run(&args, &hybrid_setup, "hybrid")?;
        if [&f, &fm, &fs, &fh]
            .iter()
            .any(|x| x["result"] != d["result"])
        {
            return Err(CliError::failure(format!(
                "kernels --kernel {kernel}: compute_split gave another result than direct"
            )));
        }
        let cpu = |v: &Value| v["cpu_ns"].as_f64().unwrap_or(f64::NAN);
        // No CPU time measured directly gives no ratio.
        let cpu_ratio = |f: &Value| {
            let direct = cpu(&d);
            (direct > 0.0).then(|| cpu(f) / direct)
        };
        // From the lines vkfuse logs at device destruction.
        let after = |key: &str| {
            log.lines()
                .find(|l| l.contains("compute_split:") && l.contains(key))
                .and_then(|l| l.split(key).nth(1))
                .map(str::to_string)
        };
        // Mirrored: the bytes copied before rounds and merged after them, per dispatch (one
        // dispatch a submit).
        let moved = |log: &str| -> Option<f64> {
            log.lines()
                .find(|l| l.contains("compute_split:") && l.contains("with mirrored memory"))
                .and_then(|l| l.rsplit(':').next())
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|w| w.parse::<f64>().ok())
                        .sum()
                })
        };
        let projected = after("projected speed-up ")
            .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
        let workgroups: Vec<u64> = after("workgroups run:")
            .map(|t| {
                t.split(',')
                    .filter_map(|p| p.rsplit(':').next()?.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // Hybrid: batches split (the teardown line) and run whole because splitting did not
        // pay.
        let count = |key: &str, line: &str| -> u64 {
            hlog.lines()
                .filter(|l| l.contains(line))
                .find_map(|l| l.split(key).nth(1))
                .and_then(|t| t.trim().split(' ').next()?.parse().ok())
                .unwrap_or(0)
        };
        let hybrid_split = count("compute_split: ", "batch(es) split in");
        let hybrid_whole = count("hybrid: ", "ran whole: splitting did not pay");
        // Kernels too small to pay: hybrid against direct again, runs alternating, the
        // median of each side's per-run medians (one pair of runs moves a lot here).
        let interleaved = if name == "saxpy_small" {
            let (mut ds, mut hs) = (vec![wall(&d)?], vec![wall(&fh)?]);
            for _ in 0..HYBRID_PAIRS - 1 {
                ds.push(wall(&run(&args, &direct_setup, "direct")?.0)?);
                hs.push(wall(&run(&args, &hybrid_setup, "hybrid")?.0)?);
            }
            Some(super::bench::median(&hs) / super::bench::median(&ds))
        } else {
            None
        };
        kernels.insert(
            name.to_string(),
            json!({
                "cpu_work": cpu_ratio(&f),
                "direct_cpu_ns": cpu(&d),
                "fused_cpu_ns": cpu(&f),
                "wall": wall(&f)? / wall(&d)?,
                "direct_submit_ns_median": wall(&d)?,
                "fused_submit_ns_median": wall(&f)?,
                "projected_speedup": projected,
                "workgroups": workgroups,
                "merge_bytes_per_dispatch": 0,
                "mirrored": {
                    "cpu_work": cpu_ratio(&fm),
                    "wall": wall(&fm)? / wall(&d)?,
                    "merge_bytes_per_dispatch": moved(&mlog).map(|b| b / f64::from(repeat)),
                },
                "staged": {
                    "cpu_work": cpu_ratio(&fs),
                    "wall": wall(&fs)? / wall(&d)?,
                    "merge_bytes_per_dispatch": moved(&slog).map(|b| b / f64::from(repeat)),
                },
                "hybrid": {
                    "cpu_work": cpu_ratio(&fh),
                    "wall": wall(&fh)? / wall(&d)?,
                    "batches_split": hybrid_split,
                    "batches_whole": hybrid_whole,
                    "wall_interleaved": interleaved,
                },
                "size": size,
                "submits": repeat,
            }),
        );
    }
    // Indirect dispatches whose group counts a dispatch of the same command buffer writes:
    // split by workgroup slices, every member launching only its slice's workgroups
    // (narrowed) with a pipeline variant.
    let sliced = |kernel: &str, size: usize, repeat: u32| -> Result<Value, CliError> {
        let args: Vec<String> = [
            "--kernel",
            kernel,
            "--indirect",
            "gpu",
            "--size",
            &size.to_string(),
            "--repeat",
            &repeat.to_string(),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let (d, _) = run(&args, &direct_setup, "direct, --indirect gpu")?;
        let (f, log) = run(&args, &fused_setup, "compute_split, --indirect gpu")?;
        if f["result"] != d["result"] {
            return Err(CliError::failure(format!(
                "kernels --kernel {kernel} --indirect gpu: compute_split gave another result than direct"
            )));
        }
        let cpu = |v: &Value| v["cpu_ns"].as_f64().unwrap_or(f64::NAN);
        let line = |key: &str| {
            log.lines()
                .find(|l| l.contains("compute_split:") && l.contains(key))
                .and_then(|l| l.split(key).nth(1))
                .map(str::to_string)
        };
        let parts: Vec<u64> = line("parts of 16 run:")
            .map(|t| {
                t.split(',')
                    .filter_map(|p| p.rsplit(':').next()?.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let narrowed: Option<u64> = line("split by workgroup slices (")
            .and_then(|t| t.split_whitespace().next()?.parse().ok());
        let projected: Option<f64> =
            line("projected speed-up ").and_then(|t| t.split_whitespace().next()?.parse().ok());
        Ok(json!({
            "cpu_work": (cpu(&d) > 0.0).then(|| cpu(&f) / cpu(&d)),
            "wall": wall(&f)? / wall(&d)?,
            "parts": parts,
            "narrowed": narrowed,
            "projected_speedup": projected,
            "size": size,
            "submits": repeat,
        }))
    };
    let sliced_saxpy = sliced("saxpy", ((1 << 22) / scale).max(64), 20)?;
    let sliced_mandelbrot = sliced("mandelbrot", (1024 / scale).max(16), 10)?;
    Ok(json!({
        "kernels": kernels,
        "sliced_indirect": sliced_saxpy,
        "sliced_indirect_mandelbrot": sliced_mandelbrot,
        "target_cpu_work": TARGET_SPLIT_CPU_WORK,
        "target_projected_speedup": TARGET_SPLIT_SPEEDUP,
        "method": format!(
            "One run each of `kernels --kernel K --size N --repeat R --json` directly on {} and \
             through vkfuse on two of it (VKFUSE_STRATEGY=compute_split), in this bench run. \
             cpu_work: the process's user + system CPU time over the submits (every thread, the \
             drivers' included; CLOCK_PROCESS_CPUTIME_ID), fused / direct. wall: median wall \
             time per submit (submit + fence wait), fused / direct; on this machine both members \
             share the same cores, so it is not a speed-up. projected_speedup: a projection, \
             not a measurement: per round, each member's busy time is measured with timestamps \
             around its slices; the sum over members divided by the longest member's, summed \
             over rounds (what the members would give running side by side, each on its own \
             hardware; contention between members sharing cores lengthens both alike). \
             merge_bytes_per_dispatch: the members share host memory, so slices write the same \
             bytes and nothing is merged. mirrored: the same with VKFUSE_SHARING=mirrored (each \
             member its own copy): its merge_bytes_per_dispatch is the bytes copied to the other \
             member before the dispatch plus those merged back after it (bytes that changed, and \
             the whole own bytes of each slice where the analysis proves them), \
             per dispatch. staged: the same with VKFUSE_SHARING=staging (each member's copy \
             reached only through staging buffers, as device-local memory between GPUs of \
             different drivers: each member's rounds copy what they touch between its copy and \
             a stage in host memory, and the first member's copy is copied out before the \
             first round and back in at the join), merge bytes counted as for mirrored. \
             hybrid: the same with VKFUSE_STRATEGY=hybrid, which splits a batch \
             only where the measured throughput and merge cost say it pays and otherwise runs \
             it whole on the member measured fastest: its wall and cpu_work against direct, and \
             the batches it split and ran whole (saxpy_small: 4096 elements, too small to pay; \
             its wall_interleaved: 5 runs each of direct and hybrid, alternating, the median of \
             hybrid's per-run medians over the median of direct's). \
             sliced_indirect: `kernels --kernel saxpy --indirect gpu` (a dispatch of the \
             command buffer writes the group counts of the indirect saxpy after it, so they are \
             not known at submit), direct and under compute_split, one run each: each member \
             copies the counts and narrows them on the device to its slice (the workgroups \
             whose id along x, modulo 16, is among its parts) and dispatches only those with a \
             variant of the pipeline that maps its workgroup ids back; cpu_work and wall as \
             above, parts: each member's parts of 16 over all sliced dispatches, narrowed: how \
             many of them were narrowed (the others launch the whole grid on every member, \
             whose workgroups outside the slice return at once); projected_speedup as above, \
             over the rounds of narrowed dispatches (each member's workgroups read back from \
             the counts it narrowed; rounds not narrowed are not timed). \
             sliced_indirect_mandelbrot: the same with `kernels --kernel mandelbrot --indirect \
             gpu` (the counts width / 16 x height / 16 written by a dispatch), whose \
             workgroups are heavy. \
             Results are checked equal to direct.",
            member.display()
        ),
    }))
}

/// Alternating runs of direct and `hybrid` for `saxpy_small`'s `wall_interleaved`.
const HYBRID_PAIRS: usize = 5;

/// `compute_split`'s targets (issue 4).
pub const TARGET_SPLIT_CPU_WORK: f64 = 1.10;
pub const TARGET_SPLIT_SPEEDUP: f64 = 1.8;
