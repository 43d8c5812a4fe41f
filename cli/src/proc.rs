//! Running child programs: captured output, a time limit, exit statuses in words, and the result
//! lines the example programs print.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::CliError;

/// What a finished child left.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub wall: Duration,
}

fn reader(stream: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_limit(child: &mut Child, limit: Duration, what: &str) -> Result<ExitStatus, CliError> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CliError::failure(format!(
                    "{what} did not finish within {} s and was killed",
                    limit.as_secs()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(CliError::failure(format!("cannot wait for {what}: {e}"))),
        }
    }
}

/// Runs `cmd` with stdout and stderr captured; kills it after `limit`.
pub fn run_captured(cmd: &mut Command, limit: Duration) -> Result<Captured, CliError> {
    let what = describe_command(cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::failure(format!("cannot run {what}: {e}")))?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_with_limit(&mut child, limit, &what);
    let wall = start.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = status
        .map_err(|e| CliError::failure(format!("{}\nstderr:\n{}", e.message, tail(&stderr, 20))))?;
    Ok(Captured {
        status,
        stdout,
        stderr,
        wall,
    })
}

/// The program name of `cmd`, for messages.
pub fn describe_command(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string())
}

/// The exit code a shell would report: the code, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// An exit status in words.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        (None, None) => "unknown exit status".to_string(),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// The final line of an example program:
/// `vkfuse-example <name> device="<deviceName>" result=<16 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleLine {
    pub name: String,
    pub device: String,
    pub result: String,
}

/// Finds the last example result line in `stdout`.
pub fn parse_example(stdout: &str) -> Option<ExampleLine> {
    stdout.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("vkfuse-example ")?;
        let (name, rest) = rest.split_once(' ')?;
        let rest = rest.trim_start().strip_prefix("device=\"")?;
        let (device, rest) = rest.rsplit_once("\" result=")?;
        let result = rest.split_whitespace().next()?;
        Some(ExampleLine {
            name: name.to_string(),
            device: device.to_string(),
            result: result.to_string(),
        })
    })
}

/// The last line of `stdout` that is a JSON object.
pub fn last_json(stdout: &str) -> Option<serde_json::Value> {
    stdout.lines().rev().find_map(|line| {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .filter(serde_json::Value::is_object)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_lines() {
        let out = "warming up\nvkfuse-example compute device=\"vkfuse (llvmpipe (LLVM 15.0.6, 256 bits))\" result=0123456789abcdef\n";
        let line = parse_example(out).unwrap();
        assert_eq!(line.name, "compute");
        assert_eq!(line.device, "vkfuse (llvmpipe (LLVM 15.0.6, 256 bits))");
        assert_eq!(line.result, "0123456789abcdef");
        assert!(parse_example("nothing here").is_none());
    }

    #[test]
    fn json_lines() {
        let v = last_json("log\n{\"name\":\"bench-frame\",\"frames\":3}\n").unwrap();
        assert_eq!(v["frames"], 3);
        assert!(last_json("[1,2]").is_none());
    }

    #[test]
    fn statuses() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(11)), 139);
        assert_eq!(
            describe_status(ExitStatus::from_raw(11)),
            "killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
