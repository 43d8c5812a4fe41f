//! The `vkfuse` command: inspect the fused device, run programs on it, demonstrate and benchmark
//! it, install it.

use std::io::Write;

/// `print!` that never panics: when stdout is closed (`vkfuse info --json | head`) the program
/// ends quietly with the status a shell gives a SIGPIPE death (141).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that never panics (see `out!`).
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("vkfuse: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

mod args;
mod bench;
mod bench_exec;
mod demo;
mod env;
mod info;
mod install;
mod proc;
mod run;

use args::{CliError, EXIT_USAGE};

const USAGE: &str = "\
vkfuse: one Vulkan device made of all the machine's drivers

usage: vkfuse <verb> [options]
  info     members found, why any were skipped, the fused device and what each member limits
  run      run a program on the fused device without installing anything
  demo     compute and offscreen examples direct vs through vkfuse, with a PASS/FAIL report
  bench    forwarding overhead of vkfuse over one lavapipe member, fused/direct ratios
  install  put libvkfuse.so and its manifest where the Vulkan loader looks
  help     this text, or `vkfuse help <verb>`

environment read by the driver: VKFUSE_ICDS, VKFUSE_STRATEGY, VKFUSE_PRIMARY, VKFUSE_RESIDENCY,
VKFUSE_MASK, VKFUSE_LOG, $XDG_CONFIG_HOME/vkfuse/config.json (see README.md)
by this command: VKFUSE_LIBRARY (libvkfuse.so to use), VKFUSE_EXAMPLES_DIR (example programs)
";

fn verb_usage(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "info" => info::USAGE,
        "run" => run::USAGE,
        "demo" => demo::USAGE,
        "bench" => bench::USAGE,
        "install" => install::USAGE,
        _ => return None,
    })
}

fn dispatch(mut argv: Vec<String>) -> Result<i32, CliError> {
    if argv.is_empty() {
        eprint!("{USAGE}");
        return Ok(EXIT_USAGE);
    }
    let verb = argv.remove(0);
    if argv.iter().any(|a| a == "--help" || a == "-h")
        && verb != "run"
        && verb_usage(&verb).is_some()
    {
        outln!("{}", verb_usage(&verb).unwrap_or(USAGE));
        return Ok(0);
    }
    match verb.as_str() {
        "info" => info::main(argv),
        "run" => {
            // `vkfuse run --help` asks for help; `vkfuse run -- prog --help` passes it on.
            if argv.first().is_some_and(|a| a == "--help" || a == "-h") {
                outln!("{}", run::USAGE);
                return Ok(0);
            }
            run::main(argv)
        }
        "demo" => demo::main(argv),
        "bench" => bench::main(argv),
        "install" => install::main(argv),
        "help" | "--help" | "-h" => {
            match argv.first().and_then(|v| verb_usage(v)) {
                Some(text) => outln!("{text}"),
                None => out!("{USAGE}"),
            }
            Ok(0)
        }
        "--version" | "-V" | "version" => {
            outln!("vkfuse {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        other => Err(CliError::usage(format!(
            "unknown verb '{other}' (info, run, demo, bench, install, help)"
        ))),
    }
}

fn main() {
    let argv: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) => v,
        Err(bad) => {
            eprintln!("vkfuse: argument {bad:?} is not valid UTF-8");
            std::process::exit(EXIT_USAGE);
        }
    };
    let code = match dispatch(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vkfuse: {e}");
            if e.code == EXIT_USAGE {
                eprintln!("(see `vkfuse help`)");
            }
            e.code
        }
    };
    std::process::exit(code);
}
