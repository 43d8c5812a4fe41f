//! Window-system integration through vkfuse: `present --validation` on each surface type gives
//! the same `result=` (the last presented frame, read back) through vkfuse as on the member
//! directly, with exit code 0.
//!
//! - xcb and xlib: under an Xvfb started here (`-displayfd`, so no display number is guessed),
//!   lavapipe as the member, and two lavapipes with `VKFUSE_RESIDENCY=all`; xcb also with
//!   lavapipe + SwiftShader (SwiftShader has no VK_KHR_xlib_surface).
//! - headless (VK_EXT_headless_surface): SwiftShader as the member (lavapipe 22.3 lacks the
//!   extension, so with lavapipe + SwiftShader vkfuse must not offer it).
//! - wayland: under `weston --backend=headless-backend.so` started here on a private socket in
//!   a private XDG_RUNTIME_DIR; plus `vkcube-wayland --c 30` through vkfuse.
//!
//! Servers are killed when the test ends, also on failure. A test skips (prints `SKIP`) only
//! when a system tool (Xvfb, weston, vkcube-wayland, SwiftShader) is missing.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long a server may take to come up.
const SERVER_START: Duration = Duration::from_secs(30);

/// A server process, killed (and reaped) on drop, so it never outlives its test.
struct Server {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Server {
    /// The server's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "--- {} log {} (last 30 lines) ---\n{}",
            self.what,
            self.log.display(),
            tail(&text, 30)
        )
    }

    /// Fails with the log if the server has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {}\n{}",
                self.what,
                status_text(status),
                self.log_tail()
            );
        }
    }
}

extern "C" {
    /// libc's `kill(2)`: std's `Child::kill` only sends SIGKILL.
    fn kill(pid: i32, sig: i32) -> i32;
}

/// `SIGTERM` on Linux.
const SIGTERM: i32 = 15;

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first, so that weston shuts down its helper clients (weston-desktop-shell,
        // weston-keyboard) instead of orphaning them; SIGKILL if it is not gone in 5 s.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child,
            // not yet reaped (only `wait` below reaps it), so it names no other process.
            unsafe { kill(pid, SIGTERM) };
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match self.child.try_wait() {
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a child sends its stderr (and stdout) while it runs as a server.
fn log_file(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

/// An X server (Xvfb) on a display it picked itself, or `None` after printing why the test
/// skips.
struct Xvfb {
    server: Server,
    display: String,
}

fn start_xvfb(test: &str) -> Option<Xvfb> {
    let Some(xvfb) = which("Xvfb") else {
        skip(test, "Xvfb not installed (Debian: xvfb)");
        return None;
    };
    let log = temp_dir(&format!("{test}-xvfb")).join("xvfb.log");
    // -displayfd: Xvfb picks a free display number and writes it to fd 1 once it accepts
    // connections. No -auth: local clients are accepted without a cookie.
    let mut child = Command::new(&xvfb)
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "640x480x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(&log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", xvfb.display()));
    let stdout = child.stdout.take();
    let mut server = Server {
        child,
        what: "Xvfb",
        log,
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep the pipe open (and drained) while Xvfb runs, so it never gets SIGPIPE.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let number = match rx.recv_timeout(SERVER_START) {
        Ok(line) if !line.trim().is_empty() => line.trim().to_string(),
        _ => {
            server.assert_running();
            panic!(
                "Xvfb reported no display number within {} s\n{}",
                SERVER_START.as_secs(),
                server.log_tail()
            );
        }
    };
    assert!(
        number.bytes().all(|b| b.is_ascii_digit()),
        "Xvfb -displayfd wrote {number:?}\n{}",
        server.log_tail()
    );
    Some(Xvfb {
        server,
        display: format!(":{number}"),
    })
}

/// A headless weston on a private socket in a private runtime directory, or `None` after
/// printing why the test skips.
struct Weston {
    server: Server,
    runtime_dir: PathBuf,
    socket: String,
}

fn start_weston(test: &str) -> Option<Weston> {
    let Some(weston) = which("weston") else {
        skip(test, "weston not installed (Debian: weston)");
        return None;
    };
    // Socket paths are limited to 107 bytes (sockaddr_un), so the names are short; the
    // directory is private to this test, so the socket name need not be unique.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let runtime_dir = temp_dir(&format!("wl{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", runtime_dir.display()));
    eprintln!("{test}: weston in {}", runtime_dir.display());
    let socket = "wayland-vkfuse".to_string();
    let log = runtime_dir.join("weston.log");
    let mut cmd = Command::new(&weston);
    cmd.args([
        "--backend=headless-backend.so",
        "--use-pixman",
        "--no-config",
        "--idle-time=0",
    ])
    .arg(format!("--socket={socket}"))
    .env("XDG_RUNTIME_DIR", &runtime_dir)
    .env_remove("WAYLAND_DISPLAY")
    .env_remove("WAYLAND_SOCKET")
    .env_remove("DISPLAY")
    .stdin(Stdio::null())
    .stdout(log_file(&log))
    .stderr(log_file(&runtime_dir.join("weston.stderr")));
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", weston.display()));
    let mut server = Server {
        child,
        what: "weston",
        log,
    };
    let start = Instant::now();
    let path = runtime_dir.join(&socket);
    while !path.exists() {
        server.assert_running();
        assert!(
            start.elapsed() < SERVER_START,
            "weston created no socket {} within {} s\n{}",
            path.display(),
            SERVER_START.as_secs(),
            server.log_tail()
        );
        thread::sleep(Duration::from_millis(50));
    }
    Some(Weston {
        server,
        runtime_dir,
        socket,
    })
}

/// Where `present` finds its window system.
enum Display<'a> {
    X(&'a Xvfb),
    Wayland(&'a Weston),
    Headless,
}

impl Display<'_> {
    fn apply(&self, cmd: &mut Command) {
        cmd.env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("WAYLAND_SOCKET");
        match self {
            Display::X(x) => {
                cmd.env("DISPLAY", &x.display);
            }
            Display::Wayland(w) => {
                cmd.env("XDG_RUNTIME_DIR", &w.runtime_dir)
                    .env("WAYLAND_DISPLAY", &w.socket);
            }
            Display::Headless => {}
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Display::X(x) => x.server.log_tail(),
            Display::Wayland(w) => w.server.log_tail(),
            Display::Headless => String::new(),
        }
    }
}

/// Runs `present`; fails (with the server's log) unless it exits with 0 and a result line.
fn run_present(mut cmd: Command, display: &Display<'_>) -> ExampleResult {
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{}\n{}\n(exit code 3: validation messages; 2: an error, see stderr)",
        out.dump(),
        display.log_tail()
    );
    example_result(&out.stdout).unwrap_or_else(|| {
        panic!(
            "no `vkfuse-example` result line:\n{}\n{}",
            out.dump(),
            display.log_tail()
        )
    })
}

fn present_args(wsi: &str) -> Vec<String> {
    let mut args = vec!["--wsi".to_string(), wsi.to_string()];
    args.extend(validation_args().into_iter().map(str::to_string));
    args
}

/// `present --wsi <wsi>` directly on `member`, once per test process and (wsi, member): the
/// image does not depend on which server instance shows it.
fn direct_present(wsi: &str, member: &Path, display: &Display<'_>) -> ExampleResult {
    type Cache = Mutex<HashMap<(String, PathBuf), ExampleResult>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (wsi.to_string(), member.to_path_buf());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(r) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return r.clone();
    }
    let mut cmd = direct(example("present"), member);
    cmd.args(present_args(wsi));
    display.apply(&mut cmd);
    let r = run_present(cmd, display);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, r.clone());
    r
}

/// `present --wsi <wsi> --validation` through vkfuse with `members` equals the first member
/// run directly.
fn compare(wsi: &str, members: &[PathBuf], residency: &str, display: &Display<'_>) {
    let reference = direct_present(wsi, &members[0], display);
    assert!(
        !reference.device.starts_with("vkfuse ("),
        "the direct run used vkfuse: {reference:?}"
    );
    let mut cmd = fused(example("present"), members);
    cmd.args(present_args(wsi))
        .env("VKFUSE_RESIDENCY", residency)
        .env("VKFUSE_PRIMARY", "0");
    display.apply(&mut cmd);
    let got = run_present(cmd, display);
    assert!(
        got.device.starts_with("vkfuse ("),
        "present --wsi {wsi} ran on {:?}, not on the fused device",
        got.device
    );
    assert_eq!(
        got.result,
        reference.result,
        "present --wsi {wsi} through vkfuse (members {}, residency {residency}) differs from {} \
         direct",
        icds(members),
        reference.device
    );
    eprintln!(
        "present --wsi {wsi}: {} = {} direct: result={}",
        got.device, reference.device, got.result
    );
}

fn x11(test: &str, wsi: &str, members: &[PathBuf], residency: &str) {
    let Some(xvfb) = start_xvfb(test) else {
        return;
    };
    compare(wsi, members, residency, &Display::X(&xvfb));
}

fn wayland(test: &str, members: &[PathBuf], residency: &str) {
    let Some(weston) = start_weston(test) else {
        return;
    };
    compare("wayland", members, residency, &Display::Wayland(&weston));
}

#[test]
fn xcb_one_lavapipe_member() {
    x11("xcb_one_lavapipe_member", "xcb", &[lavapipe()], "primary");
}

#[test]
fn xcb_two_lavapipe_members_residency_all() {
    let lvp = lavapipe();
    x11(
        "xcb_two_lavapipe_members_residency_all",
        "xcb",
        &[lvp.clone(), lvp],
        "all",
    );
}

#[test]
fn xcb_lavapipe_swiftshader_residency_all() {
    let test = "xcb_lavapipe_swiftshader_residency_all";
    let Some(sw) = swiftshader(test) else {
        return;
    };
    x11(test, "xcb", &[lavapipe(), sw], "all");
}

#[test]
fn xlib_one_lavapipe_member() {
    x11("xlib_one_lavapipe_member", "xlib", &[lavapipe()], "primary");
}

#[test]
fn xlib_two_lavapipe_members_residency_all() {
    let lvp = lavapipe();
    x11(
        "xlib_two_lavapipe_members_residency_all",
        "xlib",
        &[lvp.clone(), lvp],
        "all",
    );
}

#[test]
fn headless_one_swiftshader_member() {
    let Some(sw) = swiftshader("headless_one_swiftshader_member") else {
        return;
    };
    compare("headless", &[sw], "primary", &Display::Headless);
}

#[test]
fn headless_two_swiftshader_members_residency_all() {
    let Some(sw) = swiftshader("headless_two_swiftshader_members_residency_all") else {
        return;
    };
    compare("headless", &[sw.clone(), sw], "all", &Display::Headless);
}

/// Lavapipe 22.3 lacks VK_EXT_headless_surface: with lavapipe + SwiftShader, vkfuse offers only
/// the intersection, so `present --wsi headless` ends with a clear error (exit code 2).
#[test]
fn headless_not_offered_unless_every_member_has_it() {
    let Some(sw) = swiftshader("headless_not_offered_unless_every_member_has_it") else {
        return;
    };
    let mut cmd = fused(example("present"), &[lavapipe(), sw]);
    cmd.args(present_args("headless"));
    Display::Headless.apply(&mut cmd);
    let out = run(&mut cmd);
    out.assert_no_crash();
    assert_eq!(out.status.code(), Some(2), "{}", out.dump());
    assert!(
        out.stderr
            .contains("instance extension VK_EXT_headless_surface is not offered"),
        "{}",
        out.dump()
    );
}

#[test]
fn wayland_one_lavapipe_member() {
    wayland("wayland_one_lavapipe_member", &[lavapipe()], "primary");
}

#[test]
fn wayland_two_lavapipe_members_residency_all() {
    let lvp = lavapipe();
    wayland(
        "wayland_two_lavapipe_members_residency_all",
        &[lvp.clone(), lvp],
        "all",
    );
}

/// `vkcube-wayland --c 30` through vkfuse exits 0, on the fused device, without validation
/// messages.
fn vkcube_wayland(test: &str, members: &[PathBuf], residency: &str) {
    let Some(vkcube) = which("vkcube-wayland") else {
        skip(test, "vkcube-wayland not installed (Debian: vulkan-tools)");
        return;
    };
    let Some(weston) = start_weston(test) else {
        return;
    };
    let display = Display::Wayland(&weston);
    let mut cmd = fused(&vkcube, members);
    cmd.args(["--c", "30"]).env("VKFUSE_RESIDENCY", residency);
    if validation_layer_present() {
        // vkcube registers no debug messenger without --validate, so the layer logs to stdout.
        cmd.env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation");
    }
    display.apply(&mut cmd);
    let out = run(&mut cmd);
    if !out.status.success() {
        // Tell a vkfuse failure from an environment one: the same on the member directly.
        let mut direct_cmd = direct(&vkcube, &members[0]);
        direct_cmd.args(["--c", "30"]);
        display.apply(&mut direct_cmd);
        let direct_out = run(&mut direct_cmd);
        panic!(
            "vkcube-wayland through vkfuse failed\n{}\n--- the same directly on the member: \
             {} ---\n{}\n{}",
            out.dump(),
            status_text(direct_out.status),
            direct_out.dump(),
            display.log_tail()
        );
    }
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("vkfuse ("),
        "vkcube-wayland did not select the fused device\n{}",
        out.dump()
    );
    for marker in ["Validation Error", "VUID-"] {
        assert!(
            !all.contains(marker),
            "validation messages from vkcube-wayland through vkfuse\n{}",
            out.dump()
        );
    }
}

#[test]
fn vkcube_wayland_one_lavapipe_member() {
    vkcube_wayland(
        "vkcube_wayland_one_lavapipe_member",
        &[lavapipe()],
        "primary",
    );
}

#[test]
fn vkcube_wayland_two_lavapipe_members_residency_all() {
    let lvp = lavapipe();
    vkcube_wayland(
        "vkcube_wayland_two_lavapipe_members_residency_all",
        &[lvp.clone(), lvp],
        "all",
    );
}

/// The helpers above must not leave servers behind: a dropped [`Server`] is reaped.
#[test]
fn server_guard_kills_on_drop() {
    let Some(sleep) = which("sleep") else {
        skip("server_guard_kills_on_drop", "sleep not found");
        return;
    };
    let log = temp_dir("server_guard").join("sleep.log");
    let child = Command::new(sleep)
        .arg("600")
        .stdout(Stdio::null())
        .stderr(log_file(&log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sleep: {e}"));
    let pid = child.id();
    drop(Server {
        child,
        what: "sleep",
        log,
    });
    // Reaped: /proc has no entry for the pid (or a different process reused it, which a
    // freshly reaped pid practically never is this soon).
    let mut stat = String::new();
    let alive = File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read_to_string(&mut stat))
        .is_ok()
        && stat.contains("(sleep)");
    assert!(!alive, "sleep {pid} still runs after its guard was dropped");
}

/// AFR with a swapchain (issue 3): `present --frames 4` under `afr` alternates frames between
/// the members; frames rendered on member 1 are copied into the swapchain of member 0. The
/// result equals lavapipe direct, the split happened, and (VKFUSE_LOG=debug) both the bytes
/// copied out of member 1 and the presented image read back on member 0 hash to the last
/// frame's result.
fn afr_present(test: &str, members: &[PathBuf]) {
    let Some(xvfb) = start_xvfb(test) else {
        return;
    };
    let display = Display::X(&xvfb);
    let mut direct_cmd = direct(example("present"), &lavapipe());
    direct_cmd.args(present_args("xcb")).args(["--frames", "4"]);
    display.apply(&mut direct_cmd);
    let reference = run_present(direct_cmd, &display);
    let mut cmd = fused(example("present"), members);
    cmd.args(present_args("xcb"))
        .args(["--frames", "4"])
        .env("VKFUSE_STRATEGY", "afr")
        .env("VKFUSE_LOG", "debug");
    display.apply(&mut cmd);
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{}\n{}",
        out.dump(),
        display.log_tail()
    );
    let got = example_result(&out.stdout).expect("result line");
    assert_eq!(got.result, reference.result, "{}", out.dump());
    assert!(
        out.stderr
            .contains("batches placed: member 0: 2, member 1: 2"),
        "{}",
        out.dump()
    );
    let copied: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("copied to member 0"))
        .collect();
    assert_eq!(copied.len(), 2, "{}", out.dump());
    let last = copied[1];
    assert!(
        last.contains(&format!(
            "fnv1a64 {}; the presented image holds fnv1a64 {}",
            got.result, got.result
        )),
        "the last frame, copied from member 1, is not what the application rendered: {last}\n{}",
        out.dump()
    );
}

#[test]
fn xcb_afr_two_lavapipes() {
    let lvp = lavapipe();
    afr_present("xcb_afr_two_lavapipes", &[lvp.clone(), lvp]);
}

#[test]
fn xcb_afr_lavapipe_swiftshader() {
    let test = "xcb_afr_lavapipe_swiftshader";
    let Some(sw) = swiftshader(test) else {
        return;
    };
    afr_present(test, &[lavapipe(), sw]);
}

/// A frame drawn by two submits (`present --split`: the clear, then the block and the layout
/// change). Under `round_robin` the second submit would go to the other member, whose image
/// holds no clear: vkfuse keeps every batch drawing into an acquired swapchain image on the
/// frame's member until it is presented, and the next frame goes on from there. Under
/// `round_robin` and `afr`, on two lavapipes and on lavapipe + SwiftShader, the last frame
/// equals lavapipe direct and both members drew frames.
fn split_frames(test: &str, members: &[PathBuf]) {
    let Some(xvfb) = start_xvfb(test) else {
        return;
    };
    let display = Display::X(&xvfb);
    let args = ["--frames", "6", "--split"];
    let mut direct_cmd = direct(example("present"), &lavapipe());
    direct_cmd.args(present_args("xcb")).args(args);
    display.apply(&mut direct_cmd);
    let reference = run_present(direct_cmd, &display);
    for strategy in ["round_robin", "afr"] {
        let mut cmd = fused(example("present"), members);
        cmd.args(present_args("xcb"))
            .args(args)
            .env("VKFUSE_STRATEGY", strategy)
            .env("VKFUSE_LOG", "info");
        display.apply(&mut cmd);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "{strategy}: {}\n{}",
            out.dump(),
            display.log_tail()
        );
        let got = example_result(&out.stdout).expect("result line");
        assert_eq!(got.result, reference.result, "{strategy}: {}", out.dump());
        assert!(
            out.stderr
                .contains("batches placed: member 0: 6, member 1: 6"),
            "{strategy}: frames did not alternate, two submits each: {}",
            out.dump()
        );
    }
}

#[test]
fn xcb_split_frames_two_lavapipes() {
    let lvp = lavapipe();
    split_frames("xcb_split_frames_two_lavapipes", &[lvp.clone(), lvp]);
}

#[test]
fn xcb_split_frames_lavapipe_swiftshader() {
    let test = "xcb_split_frames_lavapipe_swiftshader";
    let Some(sw) = swiftshader(test) else {
        return;
    };
    split_frames(test, &[lavapipe(), sw]);
}
