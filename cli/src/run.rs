//! `vkfuse run [options] -- CMD ARGS`: runs a program on the fused device without installing
//! anything.

use std::process::Command;

use crate::args::{split_list, CliError, Parser, Token};
use crate::env::{self, FusedConfig, TempManifest};
use crate::proc;

pub const USAGE: &str = "\
vkfuse run [--members M1,M2..] [--strategy S] [--residency primary|all] [--primary N]
           [--log LEVEL] [--print-env] -- CMD ARGS..
    Runs CMD with the Vulkan loader pointed at vkfuse only (a manifest in a temporary
    directory naming the libvkfuse.so next to this executable, or $VKFUSE_LIBRARY).
    --members: short names (lavapipe|lvp|swiftshader) or ICD manifest paths; the same one twice
    gives two members (sets VKFUSE_ICDS; without it vkfuse scans the standard directories).
    --strategy, --residency, --primary, --log set VKFUSE_STRATEGY, VKFUSE_RESIDENCY,
    VKFUSE_PRIMARY, VKFUSE_LOG. --print-env prints the variables set. Exits with CMD's code.";

pub fn main(args: Vec<String>) -> Result<i32, CliError> {
    let mut config = FusedConfig::default();
    let mut print_env = false;
    let mut p = Parser::new(args);
    let mut command: Vec<String> = Vec::new();
    while let Some(token) = p.next_token()? {
        match token {
            Token::Flag(f) => match f.as_str() {
                "--members" => config.set_members(&split_list(&p.value()?))?,
                "--strategy" => config.set_strategy(&p.value()?)?,
                "--residency" => config.set_residency(&p.value()?)?,
                "--primary" => {
                    let v = p.value()?;
                    let n = v.parse::<usize>().map_err(|_| {
                        CliError::usage(format!("--primary needs a member index (got '{v}')"))
                    })?;
                    config.primary = Some(n);
                }
                "--log" => config.log = Some(p.value()?),
                "--print-env" => print_env = true,
                _ => return Err(CliError::usage(format!("vkfuse run: unknown option {f}"))),
            },
            Token::Separator => {
                command = p.rest();
                break;
            }
            Token::Positional(program) => {
                command.push(program);
                command.extend(p.rest());
                break;
            }
        }
    }
    let Some((program, program_args)) = command.split_first() else {
        return Err(CliError::usage(
            "vkfuse run: no command given (vkfuse run [options] -- CMD ARGS..)",
        ));
    };
    let library = env::library()?;
    let manifest = TempManifest::new(&library)?;
    let mut cmd = Command::new(program);
    cmd.args(program_args);
    config.apply(&mut cmd, manifest.manifest())?;
    if print_env {
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                eprintln!("{}={}", key.to_string_lossy(), value.to_string_lossy());
            }
        }
    }
    let status = cmd.status().map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        CliError {
            code,
            message: format!("vkfuse run: cannot run {program}: {e}"),
        }
    })?;
    // The manifest directory is removed when `manifest` drops, after the program has ended.
    drop(manifest);
    Ok(proc::exit_code(status))
}
