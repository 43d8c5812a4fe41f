//! `vkfuse bench [--json]`: forwarding overhead of vkfuse over one lavapipe member against
//! lavapipe direct, measured in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::args::{unknown, CliError, Parser, Token};
use crate::env::{self, FusedConfig, Setup, TempManifest};
use crate::proc;

pub const USAGE: &str = "\
vkfuse bench [--json] [--runs R] [--commands N] [--iterations K] [--frames F] [--member M]
             [--submits S] [--handoff-max-mib H] [--split-scale D]
    Runs bench-record (N commands per submit, K iterations) and bench-frame (F frames)
    R times each directly on the member (default lavapipe) and through vkfuse over that one
    member, alternating the order, and prints fused/direct ratios of the medians of the
    programs' own timings: forwarding_overhead_recording (target <= 1.03) and
    forwarding_overhead_frame (target <= 1.01). Then, over two such members, round_robin
    against single: bench-frame (round_robin_submit_overhead, target <= 1.10) and bench-submit
    (a chain of dependent submits: round_robin_dependent_chain_overhead), the same chain with
    waits through semaphores two members share against the bridge thread (two of M, else
    SwiftShader: shared_semaphores_vs_bridge), and
    bench-handoff (a batch reading what a batch on the other member wrote, against memcpy,
    1..H MiB); and compute_split over two such members against one (the kernels example's
    mandelbrot, matmul and saxpy, their sizes divided by D). --json prints one JSON object.
    Defaults: R=5, N=100000, K=2, F=300, S=2000, H=256.";

const LIMIT: Duration = Duration::from_secs(600);
const TARGET_RECORDING: f64 = 1.03;
/// Recording-only repetitions per bench-record process (recorded, never submitted).
const RECORD_ONLY: u32 = 20;
const TARGET_FRAME: f64 = 1.01;

#[derive(Default)]
struct Samples {
    record_ns: Vec<f64>,
    submit_wait_ns: Vec<f64>,
    total_ns: Vec<f64>,
    frame_ns: Vec<f64>,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.record_ns.extend(other.record_ns);
        self.submit_wait_ns.extend(other.submit_wait_ns);
        self.total_ns.extend(other.total_ns);
        self.frame_ns.extend(other.frame_ns);
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// The samples of one run, without the first (warm-up: pipeline creation, first-touch of memory,
/// lazily loaded driver code) when there are more.
pub(crate) fn numbers(report: &Value, key: &str, program: &str) -> Result<Vec<f64>, CliError> {
    let all = all_numbers(report, key, program)?;
    Ok(if all.len() > 1 {
        all[1..].to_vec()
    } else {
        all
    })
}

/// Every sample of one run (for programs that leave out their own warm-up).
pub(crate) fn all_numbers(report: &Value, key: &str, program: &str) -> Result<Vec<f64>, CliError> {
    let values = report
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| CliError::failure(format!("{program} printed no \"{key}\" array")))?;
    let all: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    if all.is_empty() || all.len() != values.len() {
        return Err(CliError::failure(format!(
            "{program}: \"{key}\" must be a non-empty array of numbers"
        )));
    }
    Ok(all)
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn run_bench(
    program: &Path,
    args: &[String],
    setup: Setup<'_>,
    label: &str,
) -> Result<Value, CliError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    setup(&mut cmd)?;
    let name = proc::describe_command(&cmd);
    let out = proc::run_captured(&mut cmd, LIMIT)?;
    if !out.status.success() {
        return Err(CliError::failure(format!(
            "{name} ({label}) failed ({}):\n{}",
            proc::describe_status(out.status),
            proc::tail(&out.stderr, 20)
        )));
    }
    proc::last_json(&out.stdout).ok_or_else(|| {
        CliError::failure(format!(
            "{name} ({label}) printed no JSON line:\n{}",
            proc::tail(&out.stdout, 10)
        ))
    })
}

/// Instructions counted by callgrind for one recording-only run of bench-record.
fn callgrind_count(program: &Path, args: &[String], setup: Setup<'_>) -> Result<f64, CliError> {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]);
    cmd.arg(program);
    cmd.args(args);
    // One lavapipe thread: valgrind serialises threads anyway, and fewer make the count steadier.
    cmd.env("LP_NUM_THREADS", "0");
    setup(&mut cmd)?;
    let out = proc::run_captured(&mut cmd, LIMIT)?;
    if !out.status.success() {
        return Err(CliError::failure(format!(
            "callgrind run failed ({}):\n{}",
            proc::describe_status(out.status),
            proc::tail(&out.stderr, 10)
        )));
    }
    out.stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().replace(',', "").parse::<f64>().ok())
        .ok_or_else(|| CliError::failure("callgrind printed no instruction count"))
}

/// Overhead in instructions: callgrind counts the whole program at two sizes (`small`, `large`)
/// in each configuration; the differences cancel start-up and leave the measured loop alone.
/// Returns (fused/direct, direct per unit, fused per unit).
pub(crate) fn instruction_ratio(
    program: &Path,
    args: impl Fn(usize) -> Vec<String>,
    (small, large): (usize, usize),
    units_per_size: f64,
    direct: Setup<'_>,
    fused: Setup<'_>,
) -> Result<(f64, f64, f64), CliError> {
    let d = callgrind_count(program, &args(large), direct)?
        - callgrind_count(program, &args(small), direct)?;
    let f = callgrind_count(program, &args(large), fused)?
        - callgrind_count(program, &args(small), fused)?;
    let per = |x: f64| (x / (units_per_size * (large - small) as f64) * 10.0).round() / 10.0;
    Ok((ratio(f, d), per(d), per(f)))
}

/// Both overhead figures in instructions; `None` when valgrind is not installed.
fn instruction_figures(
    record: &Path,
    frame: &Path,
    direct: Setup<'_>,
    fused: Setup<'_>,
) -> Result<Option<Value>, CliError> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Ok(None);
    }
    let record_args = |n: usize| {
        [
            "--commands",
            &n.to_string(),
            "--iterations",
            "0",
            "--record-only",
            "3",
        ]
        .map(String::from)
        .to_vec()
    };
    let (rr, rd, rf) = instruction_ratio(record, record_args, (2_000, 12_000), 3.0, direct, fused)?;
    let frame_args = |n: usize| ["--frames", &n.to_string()].map(String::from).to_vec();
    let (fr, fd, ff) = instruction_ratio(frame, frame_args, (10, 60), 1.0, direct, fused)?;
    Ok(Some(json!({
        "recording": {"ratio": rr, "direct_per_command": rd, "fused_per_command": rf},
        "frame": {"ratio": fr, "direct_per_frame": fd, "fused_per_frame": ff},
        "method": "valgrind --tool=callgrind instruction counts (reproducible) of whole runs at two \
                   sizes in each configuration (bench-record: 2000 and 12000 commands recorded 3 \
                   times without submitting; bench-frame: 10 and 60 frames), LP_NUM_THREADS=0; \
                   ratio = (fused[large] - fused[small]) / (direct[large] - direct[small]), which \
                   cancels start-up and leaves the measured loop (application, vkfuse, lavapipe)",
    })))
}

pub(crate) fn ratio(fused: f64, direct: f64) -> f64 {
    let r = fused / direct;
    (r * 10_000.0).round() / 10_000.0
}

pub fn main(args: Vec<String>) -> Result<i32, CliError> {
    let mut as_json = false;
    let mut runs = 5usize;
    let mut commands = 100_000usize;
    let mut iterations = 2usize;
    let mut frames = 300usize;
    let mut member_spec = "lavapipe".to_string();
    let mut submits = 2000usize;
    let mut handoff_mib = 256usize;
    let mut split_scale = 1usize;
    let mut p = Parser::new(args);
    while let Some(token) = p.next_token()? {
        match token {
            Token::Flag(f) => match f.as_str() {
                "--json" => as_json = true,
                "--runs" => runs = p.count()?,
                "--commands" => commands = p.count()?,
                "--iterations" => iterations = p.count()?,
                "--frames" => frames = p.count()?,
                "--member" => member_spec = p.value()?,
                "--submits" => submits = p.count()?,
                "--handoff-max-mib" => handoff_mib = p.count()?,
                "--split-scale" => split_scale = p.count()?,
                _ => return Err(unknown("bench", Token::Flag(f))),
            },
            other => return Err(unknown("bench", other)),
        }
    }
    let library = env::library()?;
    let record = env::program("bench-record")?;
    let frame = env::program("bench-frame")?;
    let member: PathBuf = vkfuse_manifests::resolve_member(&member_spec)?;
    let member_label = vkfuse_manifests::member_label(&member);
    let manifest = TempManifest::new(&library)?;
    let fused = FusedConfig {
        members: Some(vec![member.clone()]),
        strategy: Some("single".to_string()),
        residency: Some("primary".to_string()),
        primary: Some(0),
        log: None,
    };
    let vk_manifest = manifest.manifest().to_path_buf();
    let direct_setup = |cmd: &mut Command| {
        env::only_driver(cmd, &member);
        Ok(())
    };
    let fused_setup = |cmd: &mut Command| fused.apply(cmd, &vk_manifest);
    let record_args = vec![
        "--commands".to_string(),
        commands.to_string(),
        "--iterations".to_string(),
        iterations.to_string(),
        "--record-only".to_string(),
        RECORD_ONLY.to_string(),
    ];
    let frame_args = vec!["--frames".to_string(), frames.to_string()];

    // Untimed: one short run of each program in each configuration, so that no measured run
    // pays for cold caches (page cache, the driver's shader cache).
    let warm_record = ["--commands", "1000", "--iterations", "2"].map(String::from);
    let warm_frame = ["--frames", "5"].map(String::from);
    for setup in [&direct_setup as Setup<'_>, &fused_setup] {
        run_bench(&record, &warm_record, setup, "warm-up")?;
        run_bench(&frame, &warm_frame, setup, "warm-up")?;
    }

    let mut direct = Samples::default();
    let mut through = Samples::default();
    let mut round_ratios_record = Vec::new();
    let mut round_ratios_frame = Vec::new();
    for round in 0..runs {
        if !as_json {
            eprintln!("vkfuse bench: round {}/{runs}", round + 1);
        }
        // Alternate which configuration goes first, so that drift (thermal, other load on the
        // machine) falls on both alike.
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut round_direct = Samples::default();
        let mut round_through = Samples::default();
        for through_vkfuse in order {
            let (setup, label, samples): (Setup<'_>, _, _) = if through_vkfuse {
                (&fused_setup, "through vkfuse", &mut round_through)
            } else {
                (&direct_setup, "direct", &mut round_direct)
            };
            let r = run_bench(&record, &record_args, setup, label)?;
            samples.record_ns = numbers(&r, "record_only_ns", "bench-record")?;
            samples.submit_wait_ns = numbers(&r, "submit_wait_ns", "bench-record")?;
            samples.total_ns = numbers(&r, "total_ns", "bench-record")?;
            let f = run_bench(&frame, &frame_args, setup, label)?;
            samples.frame_ns = numbers(&f, "frame_ns", "bench-frame")?;
        }
        round_ratios_record.push(ratio(
            median(&round_through.record_ns),
            median(&round_direct.record_ns),
        ));
        round_ratios_frame.push(ratio(
            median(&round_through.frame_ns),
            median(&round_direct.frame_ns),
        ));
        direct.extend(round_direct);
        through.extend(round_through);
    }

    let d_record = median(&direct.record_ns);
    let f_record = median(&through.record_ns);
    let d_frame = median(&direct.frame_ns);
    let f_frame = median(&through.frame_ns);
    let recording = ratio(f_record, d_record);
    let frame_ratio = ratio(f_frame, d_frame);
    let instructions = instruction_figures(&record, &frame, &direct_setup, &fused_setup)?;
    if !as_json {
        eprintln!("vkfuse bench: round_robin against single, and the cross-member handoff");
    }
    let submit = crate::bench_exec::submit_overhead(&member, &vk_manifest, runs, submits, frames)?;
    let semaphores = crate::bench_exec::shared_semaphores(&member, &vk_manifest, runs, submits)?;
    let (handoff, mirrored, staged) =
        crate::bench_exec::handoff(&member, &vk_manifest, handoff_mib)?;
    let image = crate::bench_exec::image_handoff(&member, &vk_manifest, handoff_mib)?;
    if !as_json {
        eprintln!("vkfuse bench: compute_split against the member directly");
    }
    let split = crate::bench_exec::compute_split(&member, &vk_manifest, split_scale)?;
    let method = format!(
        "One run of `vkfuse bench` on this machine. {runs} rounds; each round starts bench-record \
         (a command buffer of {commands} commands recorded, submitted and waited for, {iterations} \
         iterations per process) and bench-frame ({frames} frames of a render loop per process) \
         once directly on {member_label} (VK_ICD_FILENAMES={member}) and once through vkfuse with \
         {member_label} as its only member (VKFUSE_ICDS={member}, VKFUSE_STRATEGY=single, \
         VKFUSE_RESIDENCY=primary), the order alternating between rounds. Times are measured \
         inside each program; the first iteration or frame of each process is dropped as \
         warm-up; the samples of all rounds are pooled per configuration and each figure is \
         median(through vkfuse) / median(direct); per_round gives the same ratio for each round \
         alone, as a measure of the noise. An untimed warm-up run of each program in each \
         configuration comes first. forwarding_overhead_recording uses record_only_ns: after its \
         submitting iterations each bench-record process records the same {commands} commands \
         {RECORD_ONLY} more times without submitting, so that execution time on the member does \
         not drown the recording time; forwarding_overhead_frame uses frame_ns.",
        member = member.display()
    );
    let report = json!({
        "name": "vkfuse-bench",
        "forwarding_overhead_recording": recording,
        "forwarding_overhead_frame": frame_ratio,
        "forwarding_overhead_recording_instructions": instructions.as_ref().map(|i| i["recording"]["ratio"].clone()),
        "forwarding_overhead_frame_instructions": instructions.as_ref().map(|i| i["frame"]["ratio"].clone()),
        "instructions": instructions,
        "round_robin_submit_overhead": submit["frame_loop"]["ratio"].clone(),
        "round_robin_submit_overhead_instructions": submit["frame_loop"]["instructions"]["ratio"].clone(),
        "round_robin_dependent_chain_overhead": submit["dependent_chain"]["ratio"].clone(),
        "round_robin_dependent_chain_overhead_instructions": submit["dependent_chain"]["instructions"]["ratio"].clone(),
        "round_robin": submit,
        "shared_semaphores_vs_bridge": semaphores["ratio"].clone(),
        "shared_semaphores": semaphores,
        "shared_host_handoff": handoff,
        "mirrored_handoff": mirrored,
        "staging_handoff": staged,
        "image_handoff": image,
        "compute_split": split,
        "targets": {
            "forwarding_overhead_recording": TARGET_RECORDING,
            "forwarding_overhead_frame": TARGET_FRAME,
            "round_robin_submit_overhead": crate::bench_exec::TARGET_ROUND_ROBIN,
        },
        "within_target": {
            "forwarding_overhead_recording": recording <= TARGET_RECORDING,
            "forwarding_overhead_frame": frame_ratio <= TARGET_FRAME,
        },
        "direct_record_ns_median": d_record,
        "fused_record_ns_median": f_record,
        "direct_submit_wait_ns_median": median(&direct.submit_wait_ns),
        "fused_submit_wait_ns_median": median(&through.submit_wait_ns),
        "direct_total_ns_median": median(&direct.total_ns),
        "fused_total_ns_median": median(&through.total_ns),
        "direct_frame_ns_median": d_frame,
        "fused_frame_ns_median": f_frame,
        "per_round": {
            "forwarding_overhead_recording": round_ratios_record,
            "forwarding_overhead_frame": round_ratios_frame,
        },
        "samples": {
            "record": [direct.record_ns.len(), through.record_ns.len()],
            "frame": [direct.frame_ns.len(), through.frame_ns.len()],
        },
        "runs": runs,
        "commands": commands,
        "iterations": iterations,
        "frames": frames,
        "member": member.display().to_string(),
        "method": method,
    });
    if as_json {
        outln!("{report}");
        return Ok(0);
    }
    let verdict = |r: f64, t: f64| {
        if r <= t {
            "within target"
        } else {
            "ABOVE target"
        }
    };
    let ms = |ns: f64| ns / 1e6;
    outln!("vkfuse bench: forwarding overhead, vkfuse over 1 {member_label} member vs {member_label} direct");
    outln!("method: {method}");
    outln!();
    outln!(
        "  {:<34} {:>12} {:>12} {:>13}  target",
        "figure (median)",
        "direct",
        "vkfuse",
        "vkfuse/direct"
    );
    outln!(
        "  {:<34} {:>9.3} ms {:>9.3} ms {:>13.4}  <= {TARGET_RECORDING:.2}  {}",
        format!("recording {commands} commands"),
        ms(d_record),
        ms(f_record),
        recording,
        verdict(recording, TARGET_RECORDING)
    );
    outln!(
        "  {:<34} {:>9.3} ms {:>9.3} ms {:>13.4}  <= {TARGET_FRAME:.2}  {}",
        "frame",
        ms(d_frame),
        ms(f_frame),
        frame_ratio,
        verdict(frame_ratio, TARGET_FRAME)
    );
    outln!(
        "  {:<34} {:>9.3} ms {:>9.3} ms {:>13.4}",
        "submit + wait (recording bench)",
        ms(median(&direct.submit_wait_ns)),
        ms(median(&through.submit_wait_ns)),
        ratio(
            median(&through.submit_wait_ns),
            median(&direct.submit_wait_ns)
        )
    );
    outln!(
        "  {:<34} {:>9.3} ms {:>9.3} ms {:>13.4}",
        "total per iteration (recording)",
        ms(median(&direct.total_ns)),
        ms(median(&through.total_ns)),
        ratio(median(&through.total_ns), median(&direct.total_ns))
    );
    match &instructions {
        Some(i) => {
            let (r, f) = (&i["recording"], &i["frame"]);
            outln!(
                "  {:<34} {:>8} /cmd {:>8} /cmd {:>13}  <= {TARGET_RECORDING:.2}  {}",
                "recording, instructions",
                r["direct_per_command"],
                r["fused_per_command"],
                r["ratio"],
                verdict(
                    r["ratio"].as_f64().unwrap_or(f64::INFINITY),
                    TARGET_RECORDING
                )
            );
            outln!(
                "  {:<34} {:>6} /frame {:>6} /frame {:>13}  <= {TARGET_FRAME:.2}  {}",
                "frame, instructions",
                f["direct_per_frame"],
                f["fused_per_frame"],
                f["ratio"],
                verdict(f["ratio"].as_f64().unwrap_or(f64::INFINITY), TARGET_FRAME)
            );
            outln!("  instructions: {}", i["method"].as_str().unwrap_or(""));
        }
        None => outln!("  instructions: valgrind is not installed, not measured"),
    }
    let (rmin, rmax) = range(&round_ratios_record);
    let (fmin, fmax) = range(&round_ratios_frame);
    outln!(
        "  per-round ratios (noise): recording {rmin:.4}..{rmax:.4}, frame {fmin:.4}..{fmax:.4}"
    );
    outln!();
    for (label, key) in [
        ("per frame: single vs round_robin", "frame_loop"),
        ("dependent submits: single vs rr", "dependent_chain"),
    ] {
        let f = &submit[key];
        outln!(
            "  {:<34} {:>9.1} us {:>9.1} us {:>13}  <= {:.2}  (wall clock; instructions: {})",
            label,
            f["single_ns_median"].as_f64().unwrap_or(0.0) / 1e3,
            f["round_robin_ns_median"].as_f64().unwrap_or(0.0) / 1e3,
            f["ratio"],
            crate::bench_exec::TARGET_ROUND_ROBIN,
            f["instructions"]["ratio"]
        );
    }
    outln!("  round_robin: {}", submit["method"].as_str().unwrap_or(""));
    match semaphores["skipped"].as_str() {
        Some(why) => outln!("  shared semaphores: not measured: {why}"),
        None => {
            outln!(
                "  {:<34} {:>9.1} us {:>9.1} us {:>13}  (bridge, shared; per round {})",
                "dependent submits, rr: bridge vs shared",
                semaphores["bridge_ns_median"].as_f64().unwrap_or(0.0) / 1e3,
                semaphores["shared_ns_median"].as_f64().unwrap_or(0.0) / 1e3,
                semaphores["ratio"],
                semaphores["per_round"]
            );
            outln!(
                "  shared semaphores: {}",
                semaphores["method"].as_str().unwrap_or("")
            );
        }
    }
    for (title, h) in [
        (
            "shared host memory handoff (0 bytes copied between members):",
            &handoff,
        ),
        (
            "mirrored device-local memory handoff (S bytes copied between members):",
            &mirrored,
        ),
        (
            "staging tier handoff (S bytes through staging buffers, members' copies never mapped):",
            &staged,
        ),
    ] {
        outln!("  {title}");
        if let Some(rows) = h["sizes"].as_array() {
            for r in rows {
                outln!(
                    "    {:>4} MiB: handoff {:>9.1} us (same device directly {:>9.1} us), memcpy {:>10.1} us, throughput ratio {}",
                    r["mib"],
                    r["handoff_ns"].as_f64().unwrap_or(0.0) / 1e3,
                    r["direct_same_device_ns"].as_f64().unwrap_or(0.0) / 1e3,
                    r["memcpy_ns"].as_f64().unwrap_or(0.0) / 1e3,
                    r["throughput_ratio"]
                );
            }
        }
        outln!("  handoff: {}", h["method"].as_str().unwrap_or(""));
    }
    match &image {
        Some(h) => {
            outln!("  image handoff between lavapipe and SwiftShader (2 copies of S bytes):");
            for r in h["sizes"].as_array().into_iter().flatten() {
                outln!(
                    "    {:>4} MiB: write + read {:>9.1} us (lavapipe directly {:>9.1} us), extra {:>9.1} us, memcpy {:>10.1} us, throughput ratio {}",
                    r["mib"],
                    (r["write_ns"].as_f64().unwrap_or(0.0) + r["read_ns"].as_f64().unwrap_or(0.0)) / 1e3,
                    (r["direct_write_ns"].as_f64().unwrap_or(0.0)
                        + r["direct_read_ns"].as_f64().unwrap_or(0.0))
                        / 1e3,
                    r["extra_ns"].as_f64().unwrap_or(0.0) / 1e3,
                    r["memcpy_ns"].as_f64().unwrap_or(0.0) / 1e3,
                    r["throughput_ratio"]
                );
            }
            outln!("  image handoff: {}", h["method"].as_str().unwrap_or(""));
        }
        None => outln!("  image handoff: not measured (SwiftShader is not installed)"),
    }
    outln!("  compute_split over two {member_label} members against {member_label} directly:");
    for (kernel, k) in split["kernels"].as_object().into_iter().flatten() {
        outln!(
            "    {kernel:<10} cpu work {:.3} (target <= {:.2}), wall per submit {:.3}, projected speed-up {} (target >= {:.1}), workgroups {}, merge bytes per dispatch {}",
            k["cpu_work"].as_f64().unwrap_or(f64::NAN),
            crate::bench_exec::TARGET_SPLIT_CPU_WORK,
            k["wall"].as_f64().unwrap_or(f64::NAN),
            k["projected_speedup"],
            crate::bench_exec::TARGET_SPLIT_SPEEDUP,
            k["workgroups"],
            k["merge_bytes_per_dispatch"]
        );
        outln!(
            "    {:<10} mirrored: cpu work {:.3}, wall per submit {:.3}, merge bytes per dispatch {}",
            "",
            k["mirrored"]["cpu_work"].as_f64().unwrap_or(f64::NAN),
            k["mirrored"]["wall"].as_f64().unwrap_or(f64::NAN),
            k["mirrored"]["merge_bytes_per_dispatch"]
        );
        outln!(
            "    {:<10} staged: cpu work {:.3}, wall per submit {:.3}, merge bytes per dispatch {}",
            "",
            k["staged"]["cpu_work"].as_f64().unwrap_or(f64::NAN),
            k["staged"]["wall"].as_f64().unwrap_or(f64::NAN),
            k["staged"]["merge_bytes_per_dispatch"]
        );
        outln!(
            "    {:<10} hybrid: cpu work {:.3}, wall per submit {:.3}, batches split {}, run whole {}{}",
            "",
            k["hybrid"]["cpu_work"].as_f64().unwrap_or(f64::NAN),
            k["hybrid"]["wall"].as_f64().unwrap_or(f64::NAN),
            k["hybrid"]["batches_split"],
            k["hybrid"]["batches_whole"],
            k["hybrid"]["wall_interleaved"]
                .as_f64()
                .map(|w| format!(", wall per submit over alternating runs {w:.3}"))
                .unwrap_or_default()
        );
    }
    for (kernel, key) in [
        ("saxpy", "sliced_indirect"),
        ("mandelbrot", "sliced_indirect_mandelbrot"),
    ] {
        let sliced = &split[key];
        outln!(
            "    {:<10} indirect, counts written on the GPU (sliced): cpu work {:.3}, wall per submit {:.3}, projected speed-up {}, parts of 16 per member {}, narrowed {}",
            kernel,
            sliced["cpu_work"].as_f64().unwrap_or(f64::NAN),
            sliced["wall"].as_f64().unwrap_or(f64::NAN),
            sliced["projected_speedup"],
            sliced["parts"],
            sliced["narrowed"]
        );
    }
    outln!(
        "  compute_split: {}",
        split["method"].as_str().unwrap_or("")
    );
    outln!();
    outln!(
        "  forwarding_overhead_recording = {recording:.4}, forwarding_overhead_frame = {frame_ratio:.4}, round_robin_submit_overhead = {} (dependent chain {})",
        submit["frame_loop"]["ratio"],
        submit["dependent_chain"]["ratio"]
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn warm_up_is_dropped() {
        let r = json!({"record_ns": [100, 1, 2]});
        assert_eq!(numbers(&r, "record_ns", "t").unwrap(), vec![1.0, 2.0]);
        let single = json!({"record_ns": [5]});
        assert_eq!(numbers(&single, "record_ns", "t").unwrap(), vec![5.0]);
        assert!(numbers(&json!({}), "record_ns", "t").is_err());
        assert!(numbers(&json!({"record_ns": ["x"]}), "record_ns", "t").is_err());
    }

    #[test]
    fn ratios_are_rounded() {
        assert_eq!(ratio(1.012345, 1.0), 1.0123);
    }
}
