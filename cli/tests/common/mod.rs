//! Shared helpers of the integration tests: where the built ICD and programs are, member
//! manifests, child processes pointed at vkfuse or at a member, time limits, output parsing.
//!
//! Tests change no process-global state: every setting goes to a child's environment.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Time limit of one child program.
pub const LIMIT: Duration = Duration::from_secs(300);

/// The `vkfuse` executable cargo built for this test run.
pub fn vkfuse_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vkfuse"))
}

/// `target/<profile>`: the directory of the `vkfuse` executable, which is where cargo also puts
/// `libvkfuse.so` and the example programs (also with `CARGO_TARGET_DIR`).
pub fn profile_dir() -> PathBuf {
    let bin = vkfuse_bin();
    bin.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} has no directory", bin.display()))
}

/// The built ICD. Fails with the command to run when it is missing.
pub fn library() -> PathBuf {
    let lib = profile_dir().join("libvkfuse.so");
    assert!(
        lib.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace --all-targets`, or \
         `bash scripts/test`), then run the tests",
        lib.display()
    );
    lib
}

/// An example program (`compute`, `offscreen`, ...). Fails with the command to run when missing.
pub fn example(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "example program {} is missing: build the workspace first (`cargo build --workspace \
         --all-targets`), then run the tests",
        path.display()
    );
    path
}

/// A per-process scratch directory (removed by the OS's tmp cleaning; names carry the pid).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vkfuse-cli-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    })
}

/// A fresh directory below [`scratch`].
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// vkfuse's manifest for the built library, written once per test process.
pub fn vkfuse_manifest() -> &'static Path {
    static MANIFEST: OnceLock<PathBuf> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let lib = library();
        let path = scratch().join("vkfuse_icd.json");
        let text = vkfuse_manifests::render(&lib).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    })
}

/// Lavapipe's manifest. Lavapipe is required (scripts/deps installs it).
pub fn lavapipe() -> PathBuf {
    vkfuse_manifests::resolve_member("lavapipe")
        .unwrap_or_else(|e| panic!("{e}: the tests need Mesa lavapipe (run scripts/deps)"))
}

/// SwiftShader's manifest, or `None` after printing why the caller skips.
pub fn swiftshader(test: &str) -> Option<PathBuf> {
    match vkfuse_manifests::resolve_member("swiftshader") {
        Ok(p) => Some(p),
        Err(e) => {
            skip(test, &format!("{e}"));
            None
        }
    }
}

/// Prints that a test is skipped and why (cargo shows it with `--nocapture`; the summary counts
/// the test as passed).
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIP {test}: {reason}");
}

/// Finds a program in PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// True when the Khronos validation layer's manifest is installed.
pub fn validation_layer_present() -> bool {
    [
        "/usr/share/vulkan/explicit_layer.d",
        "/usr/local/share/vulkan/explicit_layer.d",
        "/etc/vulkan/explicit_layer.d",
    ]
    .iter()
    .any(|d| {
        Path::new(d)
            .join("VkLayer_khronos_validation.json")
            .is_file()
    })
}

/// A command with the test environment: no inherited Vulkan or vkfuse settings, an empty vkfuse
/// config directory, and a runtime directory (silences loader warnings).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("VKFUSE_")
            || k.starts_with("MVGAL_")
            || k.starts_with("VK_")
            || k == "DISABLE_LAYER"
        {
            cmd.env_remove(&key);
        }
    }
    let runtime = scratch().join("xdg-runtime");
    let config = scratch().join("xdg-config");
    let _ = std::fs::create_dir_all(&runtime);
    let _ = std::fs::create_dir_all(&config);
    cmd.env("XDG_RUNTIME_DIR", runtime)
        .env("XDG_CONFIG_HOME", config);
    cmd
}

/// `program` on one member driver directly.
pub fn direct(program: impl AsRef<OsStr>, member: &Path) -> Command {
    let mut cmd = command(program);
    cmd.env("VK_ICD_FILENAMES", member)
        .env("VK_DRIVER_FILES", member);
    cmd
}

/// `program` through vkfuse with `members` (VKFUSE_ICDS), strategy single, member 0 executing.
pub fn fused(program: impl AsRef<OsStr>, members: &[PathBuf]) -> Command {
    let manifest = vkfuse_manifest();
    let mut cmd = command(program);
    cmd.env("VK_ICD_FILENAMES", manifest)
        .env("VK_DRIVER_FILES", manifest)
        .env("VKFUSE_ICDS", icds(members))
        .env("VKFUSE_STRATEGY", "single")
        .env("VKFUSE_LOG", "warn");
    cmd
}

/// A `VKFUSE_ICDS` value.
pub fn icds(members: &[PathBuf]) -> String {
    members
        .iter()
        .map(|m| m.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// What a child left.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Output {
    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "{} ended with {}\n--- stdout (last 40 lines) ---\n{}\n--- stderr (last 40 lines) ---\n{}",
            self.what,
            status_text(self.status),
            tail(&self.stdout, 40),
            tail(&self.stderr, 40)
        )
    }

    /// Fails with the output unless the child exited with 0.
    pub fn assert_success(&self) {
        assert!(self.status.success(), "{}", self.dump());
    }

    /// Fails if the child died from a signal (a crash).
    pub fn assert_no_crash(&self) {
        assert!(self.status.signal().is_none(), "crashed: {}", self.dump());
    }
}

pub fn status_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    let env: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            let k = k.to_string_lossy();
            (k.starts_with("VK") || k.starts_with("XDG_CONFIG")).then(|| {
                format!(
                    "{k}={}",
                    v.map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            })
        })
        .collect();
    if env.is_empty() {
        s
    } else {
        format!("{} {s}", env.join(" "))
    }
}

/// Runs `cmd` with output captured; kills it and fails after [`LIMIT`].
pub fn run(cmd: &mut Command) -> Output {
    run_for(cmd, LIMIT)
}

/// [`run`] with another time limit.
pub fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_thread = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_thread = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_thread.join().unwrap_or_default();
                let stderr = err_thread.join().unwrap_or_default();
                panic!(
                    "{what} did not finish within {} s (hang?)\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    limit.as_secs(),
                    tail(&stdout, 40),
                    tail(&stderr, 40)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
        what,
    }
}

/// The `deviceName` values of `vulkaninfo --summary`.
pub fn vulkaninfo_devices(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (key, value) = l.trim().split_once('=')?;
            (key.trim() == "deviceName").then(|| value.trim().to_string())
        })
        .collect()
}

/// `vulkaninfo`, or `None` after printing why the caller skips.
pub fn vulkaninfo(test: &str) -> Option<PathBuf> {
    let found = which("vulkaninfo");
    if found.is_none() {
        skip(test, "vulkaninfo not installed (Debian: vulkan-tools)");
    }
    found
}

/// The result line of an example program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleResult {
    pub device: String,
    pub result: String,
}

/// Parses `vkfuse-example <name> device="<deviceName>" result=<16 hex>` (the last such line).
pub fn example_result(stdout: &str) -> Option<ExampleResult> {
    stdout.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("vkfuse-example ")?;
        let (_, rest) = rest.split_once(' ')?;
        let rest = rest.trim_start().strip_prefix("device=\"")?;
        let (device, rest) = rest.rsplit_once("\" result=")?;
        let result = rest.split_whitespace().next()?.to_string();
        Some(ExampleResult {
            device: device.to_string(),
            result,
        })
    })
}

/// Runs an example and returns its result; fails with the output if it did not succeed.
pub fn run_example(mut cmd: Command) -> ExampleResult {
    checked_result(&run(&mut cmd))
}

/// The result of an example's run; fails with the output if the run did not succeed (exit
/// code 3: the validation layer reported something) or printed no result line.
pub fn checked_result(out: &Output) -> ExampleResult {
    if out.status.code() == Some(3) {
        panic!("validation layer messages:\n{}", out.dump());
    }
    out.assert_success();
    example_result(&out.stdout)
        .unwrap_or_else(|| panic!("no `vkfuse-example` result line:\n{}", out.dump()))
}

/// The result of `example` run directly on `member` (with `--validation` when the layer is
/// installed), computed once per test process.
pub fn direct_result(example_name: &str, member: &Path) -> ExampleResult {
    static CACHE: OnceLock<Mutex<HashMap<(String, PathBuf), ExampleResult>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (example_name.to_string(), member.to_path_buf());
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = map.get(&key) {
        return r.clone();
    }
    let mut cmd = direct(example(example_name), member);
    cmd.args(validation_args());
    let r = run_example(cmd);
    map.insert(key, r.clone());
    r
}

/// `["--validation"]` when the validation layer is installed (else a note and nothing).
pub fn validation_args() -> Vec<&'static str> {
    if validation_layer_present() {
        vec!["--validation"]
    } else {
        eprintln!("NOTE: VK_LAYER_KHRONOS_validation not installed: running without validation");
        Vec::new()
    }
}

/// Asserts that `vulkaninfo --summary` output lists exactly one device, the fused one, and that
/// its name contains each `(token, count)` that many times. Returns the name.
pub fn assert_one_fused_device(out: &Output, expect: &[(&str, usize)]) -> String {
    let devices = vulkaninfo_devices(&out.stdout);
    assert_eq!(
        devices.len(),
        1,
        "expected exactly one device, got {devices:?}\n{}",
        out.dump()
    );
    let name = devices[0].clone();
    assert!(
        name.starts_with("vkfuse ("),
        "device name {name:?} does not start with \"vkfuse (\"\n{}",
        out.dump()
    );
    for (token, count) in expect {
        assert_eq!(
            name.matches(token).count(),
            *count,
            "device name {name:?} should name {token:?} {count} time(s)\n{}",
            out.dump()
        );
    }
    name
}
