//! `vkfuse install [--user] [--uninstall] [--dry-run] [--destdir DIR]`: puts libvkfuse.so and its
//! manifest where the Vulkan loader finds them (logic in the `vkfuse-manifests` crate).

use std::path::PathBuf;

use vkfuse_manifests::{InstallPlan, Scope};

use crate::args::{unknown, CliError, Parser, Token};
use crate::env;

pub const USAGE: &str = "\
vkfuse install [--user] [--uninstall] [--dry-run] [--destdir DIR]
    Copies libvkfuse.so (next to this executable, or $VKFUSE_LIBRARY) to /usr/local/lib/vkfuse/
    and writes vkfuse_icd.json into /usr/share/vulkan/icd.d/ (needs root); with --user to
    ~/.local/lib/vkfuse/ and ${XDG_DATA_HOME:-~/.local/share}/vulkan/icd.d/. Every Vulkan program
    then sees the fused device (vkfuse leaves its own manifest out of its members).
    --uninstall removes both files. --dry-run prints what would be done. --destdir stages the
    files below DIR (for packaging) while the manifest names the final path.";

pub fn main(args: Vec<String>) -> Result<i32, CliError> {
    let mut scope = Scope::System;
    let mut uninstall = false;
    let mut dry_run = false;
    let mut destdir: Option<PathBuf> = None;
    let mut p = Parser::new(args);
    while let Some(token) = p.next_token()? {
        match token {
            Token::Flag(f) => match f.as_str() {
                "--user" => scope = Scope::User,
                "--uninstall" => uninstall = true,
                "--dry-run" | "-n" => dry_run = true,
                "--destdir" => destdir = Some(PathBuf::from(p.value()?)),
                _ => return Err(unknown("install", Token::Flag(f))),
            },
            other => return Err(unknown("install", other)),
        }
    }
    let plan = InstallPlan::from_env(scope, destdir.as_deref())?;
    let actions = if uninstall {
        plan.uninstall_actions()
    } else {
        plan.install_actions(&env::library()?)?
    };
    let verb = if uninstall { "uninstall" } else { "install" };
    if actions.is_empty() {
        outln!(
            "vkfuse is not installed at {} or {}: nothing to remove",
            plan.staged(&plan.manifest).display(),
            plan.staged(&plan.library).display()
        );
        return Ok(0);
    }
    for action in &actions {
        if dry_run {
            outln!("would {action}");
        } else {
            action.apply()?;
            outln!("{action}");
        }
    }
    if !dry_run {
        if uninstall {
            outln!("vkfuse uninstalled");
        } else {
            outln!(
                "vkfuse installed: the Vulkan loader now finds {} (check with `vulkaninfo --summary`)",
                plan.manifest.display()
            );
        }
    } else {
        outln!("dry run: nothing was changed ({verb})");
    }
    Ok(0)
}
