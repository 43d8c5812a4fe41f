//! vkfuse-codegen: reads vk.xml and writes `icd/src/generated/`.
//!
//! `cargo run -p vkfuse-codegen` regenerates; `--check` regenerates into a temporary directory and
//! fails when the checked-in files differ (CI runs it). `VK_XML` overrides the registry path.

mod emit;
mod registry;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let xml = std::env::var_os("VK_XML")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/vulkan/registry/vk.xml"));
    let reg = match registry::Registry::load(&xml) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vkfuse-codegen: cannot read {}: {e}", xml.display());
            return ExitCode::FAILURE;
        }
    };
    let policy = match emit::Policy::load(&root.join("codegen")) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vkfuse-codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match emit::generate(&reg, &policy) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vkfuse-codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out_dir = root.join("icd/src/generated");
    let target = if check {
        std::env::temp_dir().join(format!("vkfuse-codegen-check-{}", std::process::id()))
    } else {
        out_dir.clone()
    };
    if let Err(e) = std::fs::create_dir_all(&target) {
        eprintln!("vkfuse-codegen: {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    let mut paths = Vec::new();
    for (name, text) in &files {
        let p = target.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("vkfuse-codegen: {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
        paths.push(p);
    }
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(&paths)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("vkfuse-codegen: rustfmt failed on the generated files");
        return ExitCode::FAILURE;
    }
    if !check {
        eprintln!(
            "vkfuse-codegen: wrote {} files to {} from vk.xml {}",
            files.len(),
            out_dir.display(),
            reg.header_version
        );
        return ExitCode::SUCCESS;
    }
    let mut drift = false;
    for (name, _) in &files {
        let new = std::fs::read(target.join(name)).unwrap_or_default();
        let old = std::fs::read(out_dir.join(name)).unwrap_or_default();
        if new != old {
            eprintln!("vkfuse-codegen: icd/src/generated/{name} is out of date");
            drift = true;
        }
    }
    let _ = std::fs::remove_dir_all(&target);
    if drift {
        eprintln!("vkfuse-codegen: run `cargo run -p vkfuse-codegen` and commit the result");
        ExitCode::FAILURE
    } else {
        eprintln!(
            "vkfuse-codegen: generated code is up to date (vk.xml {})",
            reg.header_version
        );
        ExitCode::SUCCESS
    }
}
