//! `vkfuse demo`: the compute, offscreen-render and split-kernel examples run directly on a
//! member and through vkfuse with the machine's drivers as members; the results must be
//! identical.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::args::{split_list, unknown, CliError, Parser, Token};
use crate::env::{self, FusedConfig, Setup, TempDir, TempManifest};
use crate::proc::{self, ExampleLine};

pub const USAGE: &str = "\
vkfuse demo [--members M1,M2..] [--validation] [--out DIR]
    Runs the compute, offscreen and random-batches examples and four of the kernels example's
    (mandelbrot, histogram, an image filter, and saxpy whose indirect dispatches' group counts
    a dispatch before them writes) directly on member 0 (VK_ICD_FILENAMES=its manifest) and through
    vkfuse over all members (strategy single, member 0 executes; with two or more members also
    with VKFUSE_RESIDENCY=all, which creates and records everything on every member, with the
    round_robin and afr strategies, which run batches on every member: the report shows how
    many ran on each, and with compute_split, which runs one dispatch as slices on every
    member: the report shows each member's workgroups, and each member's parts of indirect
    dispatches split by workgroup slices; round_robin and compute_split also with
    VKFUSE_SHARING=mirrored, a copy of host-visible memory per member kept coherent by copies,
    and compute_split with VKFUSE_SHARING=staging, each member's copy reached only through
    staging buffers, as device-local memory between GPUs of different drivers),
    compares the results and prints a report. Members default to every ICD manifest in the
    standard directories that loads, plus SwiftShader if installed. --validation runs the examples
    with VK_LAYER_KHRONOS_validation (any message fails). --out keeps the rendered images (PPM).
    Exit code 0: PASS, 1: a result differs or a run failed.";

const LIMIT: Duration = Duration::from_secs(600);

/// (label, example program, its arguments).
const WORKLOADS: &[(&str, &str, &[&str])] = &[
    ("compute", "compute", &[]),
    ("offscreen", "offscreen", &[]),
    ("random-batches", "random-batches", &[]),
    ("mandelbrot", "kernels", &["--kernel", "mandelbrot"]),
    (
        "histogram",
        "kernels",
        &["--kernel", "histogram", "--size", "262144"],
    ),
    (
        "filter",
        "kernels",
        &["--kernel", "filter", "--size", "256", "--sampled"],
    ),
    (
        "indirect",
        "kernels",
        &[
            "--kernel",
            "saxpy",
            "--indirect",
            "gpu",
            "--steps",
            "4",
            "--size",
            "262144",
        ],
    ),
];

struct Member {
    manifest: PathBuf,
    label: String,
    device: String,
}

struct Probe {
    usable: Vec<Member>,
    skipped: Vec<(PathBuf, String)>,
    fused_name: Option<String>,
}

/// Every ICD manifest in the standard directories except vkfuse's own, then SwiftShader's if it
/// is installed elsewhere.
fn default_candidates() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = vkfuse_manifests::standard_manifests()
        .into_iter()
        .filter(|p| match vkfuse_manifests::read_manifest(p) {
            Ok(m) => !vkfuse_manifests::is_vkfuse_manifest(&m),
            // An unreadable manifest stays in: vkfuse reports why it skips it.
            Err(_) => true,
        })
        .collect();
    if let Some(sw) =
        vkfuse_manifests::known_driver("swiftshader").and_then(vkfuse_manifests::find_known)
    {
        if !found.contains(&sw) {
            found.push(sw);
        }
    }
    found
}

/// Asks the ICD (through `vkfuse info --json` in a child process, so that a driver that crashes
/// while loading cannot take the demo down) which candidates it can use.
fn probe(candidates: &[PathBuf]) -> Result<Probe, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failure(format!("cannot find the vkfuse executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(["info", "--json"])
        .env("VKFUSE_ICDS", env::join_members(candidates)?);
    let out = proc::run_captured(&mut cmd, LIMIT)?;
    if !out.status.success() {
        return Err(CliError::failure(format!(
            "`vkfuse info --json` failed ({}):\n{}",
            proc::describe_status(out.status),
            proc::tail(&out.stderr, 20)
        )));
    }
    let report: Value = serde_json::from_str(&out.stdout).map_err(|e| {
        CliError::failure(format!("`vkfuse info --json` printed no valid JSON: {e}"))
    })?;
    let mut probe = Probe {
        usable: Vec::new(),
        skipped: Vec::new(),
        fused_name: report
            .get("fused")
            .and_then(|f| f.get("device_name"))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let empty = Vec::new();
    let members = report
        .get("members")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (position, m) in members.iter().enumerate() {
        let index = m
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(position);
        let manifest = m
            .get("manifest")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .or_else(|| candidates.get(index).cloned())
            .unwrap_or_default();
        let device = m.get("device_name").and_then(Value::as_str).unwrap_or("");
        if m.get("status").and_then(Value::as_str) == Some("ok") && !device.is_empty() {
            probe.usable.push(Member {
                label: vkfuse_manifests::member_label(&manifest),
                manifest,
                device: device.to_string(),
            });
        } else {
            let reason = m
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no device")
                .to_string();
            probe.skipped.push((manifest, reason));
        }
    }
    Ok(probe)
}

struct Outcome {
    config: String,
    line: Option<ExampleLine>,
    wall: Duration,
    error: Option<String>,
    image: Option<PathBuf>,
    /// Batches placed per member, as vkfuse logged them (strategies that place batches).
    placed: Option<String>,
    /// Workgroups each member ran in split batches, as vkfuse logged them (`compute_split`).
    split: Option<String>,
    /// Each member's parts of indirect dispatches split by workgroup slices, as vkfuse logged
    /// them (`compute_split`).
    sliced: Option<String>,
}

fn run_example(
    config: &str,
    program: &Path,
    args: &[String],
    image: Option<PathBuf>,
    setup: Setup<'_>,
) -> Result<Outcome, CliError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(path) = &image {
        cmd.arg("--ppm").arg(path);
    }
    setup(&mut cmd)?;
    let mut outcome = Outcome {
        config: config.to_string(),
        line: None,
        wall: Duration::ZERO,
        error: None,
        image,
        placed: None,
        split: None,
        sliced: None,
    };
    match proc::run_captured(&mut cmd, LIMIT) {
        Ok(out) => {
            outcome.wall = out.wall;
            outcome.line = proc::parse_example(&out.stdout);
            outcome.placed = out
                .stderr
                .lines()
                .rev()
                .find_map(|l| l.split("batches placed: ").nth(1))
                .map(|p| p.trim().to_string());
            outcome.split = out
                .stderr
                .lines()
                .rev()
                .find_map(|l| l.split("workgroups run: ").nth(1))
                .map(|p| p.trim().to_string());
            outcome.sliced = out
                .stderr
                .lines()
                .rev()
                .find_map(|l| l.split("parts of 16 run: ").nth(1))
                .map(|p| p.trim().to_string());
            if !out.status.success() {
                let hint = if out.status.code() == Some(3) {
                    " (validation messages)"
                } else {
                    ""
                };
                outcome.error = Some(format!(
                    "{}{hint}:\n{}",
                    proc::describe_status(out.status),
                    proc::tail(&out.stderr, 15)
                ));
            } else if outcome.line.is_none() {
                outcome.error = Some(format!(
                    "printed no `vkfuse-example` result line:\n{}",
                    proc::tail(&out.stdout, 10)
                ));
            }
        }
        Err(e) => outcome.error = Some(e.message),
    }
    Ok(outcome)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn main(args: Vec<String>) -> Result<i32, CliError> {
    let mut members = None;
    let mut validation = false;
    let mut out_dir: Option<PathBuf> = None;
    let mut p = Parser::new(args);
    while let Some(token) = p.next_token()? {
        match token {
            Token::Flag(f) if f == "--members" => members = Some(split_list(&p.value()?)),
            Token::Flag(f) if f == "--validation" => validation = true,
            Token::Flag(f) if f == "--out" => out_dir = Some(PathBuf::from(p.value()?)),
            other => return Err(unknown("demo", other)),
        }
    }
    let library = env::library()?;
    let programs = WORKLOADS
        .iter()
        .map(|w| env::program(w.1))
        .collect::<Result<Vec<_>, _>>()?;
    let candidates = match members {
        Some(list) => {
            let mut config = FusedConfig::default();
            config.set_members(&list)?;
            config.members.unwrap_or_default()
        }
        None => default_candidates(),
    };
    if candidates.is_empty() {
        return Err(CliError::failure(
            "no Vulkan driver manifest found in the standard directories: install one \
             (Debian: scripts/deps, or apt-get install mesa-vulkan-drivers)",
        ));
    }
    let probe = probe(&candidates)?;
    outln!("vkfuse demo");
    outln!("  library   {}", library.display());
    for (i, m) in probe.usable.iter().enumerate() {
        outln!(
            "  member {i}  {:<12} {}  ({})",
            m.label,
            m.device,
            m.manifest.display()
        );
    }
    for (manifest, reason) in &probe.skipped {
        outln!("  skipped   {}: {reason}", manifest.display());
    }
    if probe.usable.is_empty() {
        return Err(CliError::failure(
            "no member driver could be used (see the reasons above)",
        ));
    }
    if let Some(name) = &probe.fused_name {
        outln!("  fused     {name}");
    }
    let member_paths: Vec<PathBuf> = probe.usable.iter().map(|m| m.manifest.clone()).collect();
    let direct_member = &probe.usable[0];
    let manifest = TempManifest::new(&library)?;
    let scratch = TempDir::new("vkfuse-demo")?;
    let image_dir = match &out_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| CliError::failure(format!("cannot create {}: {e}", d.display())))?;
            d.clone()
        }
        None => scratch.path().to_path_buf(),
    };
    let example_args: Vec<String> = if validation {
        vec!["--validation".to_string()]
    } else {
        Vec::new()
    };
    // (strategy, residency, sharing): execution on member 0, with objects on it alone or on
    // every member; then batches placed on every member, with shared host memory, mirrored and
    // (split) staged.
    let mut configs = vec![("single", "primary", None)];
    if member_paths.len() > 1 {
        configs.extend([
            ("single", "all", None),
            ("round_robin", "all", None),
            ("afr", "all", None),
            ("round_robin", "all", Some("mirrored")),
            ("compute_split", "all", None),
            ("compute_split", "all", Some("mirrored")),
            ("compute_split", "all", Some("staging")),
        ]);
    }

    let mut failures = 0usize;
    let mut details: Vec<String> = Vec::new();
    let mut fused_device: Option<String> = None;
    outln!();
    outln!(
        "  {:<14} {:<32} {:<18} {:>8}  check",
        "workload",
        "run",
        "result",
        "wall"
    );
    for ((workload, _, workload_args), program) in WORKLOADS.iter().zip(&programs) {
        let workload_args: Vec<String> = workload_args.iter().map(|a| a.to_string()).collect();
        let example_args: Vec<String> =
            workload_args.iter().chain(&example_args).cloned().collect();
        let image = |tag: &str| {
            (*workload == "offscreen").then(|| image_dir.join(format!("{workload}-{tag}.ppm")))
        };
        // An untimed run first, so that neither column pays for cold caches (page cache, the
        // driver's shader cache).
        run_example("warm-up", program, &workload_args, None, &|cmd| {
            env::only_driver(cmd, &direct_member.manifest);
            Ok(())
        })?;
        let direct = run_example(
            &format!("direct {}", direct_member.label),
            program,
            &example_args,
            image("direct"),
            &|cmd| {
                env::only_driver(cmd, &direct_member.manifest);
                Ok(())
            },
        )?;
        let mut outcomes = vec![direct];
        for (strategy, residency, sharing) in &configs {
            let config = FusedConfig {
                members: Some(member_paths.clone()),
                strategy: Some(strategy.to_string()),
                residency: Some(residency.to_string()),
                primary: Some(0),
                log: Some("info".to_string()),
            };
            let vk_manifest = manifest.manifest().to_path_buf();
            let label = match (*strategy, sharing) {
                ("single", _) => format!("vkfuse, residency={residency}"),
                (_, Some(s)) => format!("vkfuse, {strategy}, {s}"),
                (_, None) => format!("vkfuse, {strategy}"),
            };
            outcomes.push(run_example(
                &label,
                program,
                &example_args,
                image(&format!(
                    "fused-{strategy}-{residency}{}",
                    sharing.map(|s| format!("-{s}")).unwrap_or_default()
                )),
                &|cmd| {
                    config.apply(cmd, &vk_manifest)?;
                    // Set either way: a VKFUSE_SHARING of the caller's must not relabel a row.
                    cmd.env("VKFUSE_SHARING", sharing.unwrap_or("host"));
                    Ok(())
                },
            )?);
        }
        let reference = outcomes[0].line.as_ref().map(|l| l.result.clone());
        let reference_image = outcomes[0].image.clone();
        for (i, o) in outcomes.iter().enumerate() {
            let result = o.line.as_ref().map_or("-", |l| l.result.as_str());
            let check = if let Some(err) = &o.error {
                failures += 1;
                let first = err.lines().next().unwrap_or("failed");
                details.push(format!("{workload}, {}: {err}", o.config));
                format!("FAIL: {first} (details below)")
            } else if i == 0 {
                "reference".to_string()
            } else {
                let device = o.line.as_ref().map_or("", |l| l.device.as_str());
                if fused_device.is_none() {
                    fused_device = Some(device.to_string());
                }
                let same_result = reference.as_deref() == Some(result);
                let same_image = match (&reference_image, &o.image) {
                    (Some(a), Some(b)) => same_file(a, b),
                    _ => true,
                };
                if !device.starts_with("vkfuse (") {
                    failures += 1;
                    format!("FAIL: ran on \"{device}\", not on the fused device")
                } else if !same_result {
                    failures += 1;
                    "FAIL: result differs from direct".to_string()
                } else if !same_image {
                    failures += 1;
                    "FAIL: image differs from direct".to_string()
                } else if o.image.is_some() {
                    "same result, same image".to_string()
                } else {
                    "same result".to_string()
                }
            };
            let check = match (
                &o.placed,
                o.config.contains("round_robin") || o.config.contains("afr"),
            ) {
                (Some(p), true) if o.error.is_none() => format!("{check}; batches {p}"),
                _ => check,
            };
            let check = match (&o.split, o.config.contains("compute_split")) {
                (Some(w), true) if o.error.is_none() => format!("{check}; split, workgroups {w}"),
                (None, true) if o.error.is_none() => format!("{check}; not split"),
                _ => check,
            };
            let check = match &o.sliced {
                Some(p) if o.error.is_none() => {
                    format!("{check}; indirect sliced, parts of 16 {p}")
                }
                _ => check,
            };
            outln!(
                "  {:<14} {:<32} {:<18} {:>6.2} s  {check}",
                workload,
                o.config,
                result,
                o.wall.as_secs_f64()
            );
        }
    }
    outln!();
    for d in &details {
        outln!("  {d}\n");
    }
    if let Some(device) = &fused_device {
        outln!("  fused device as the examples saw it: {device}");
    }
    if out_dir.is_some() {
        outln!("  images in {}", image_dir.display());
    }
    if failures == 0 {
        outln!(
            "PASS: every fused run matches {} run directly ({} members)",
            direct_member.label,
            member_paths.len()
        );
        Ok(0)
    } else {
        outln!("FAIL: {failures} run(s) failed or differ from the direct run");
        Ok(1)
    }
}
