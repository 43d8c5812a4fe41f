//! Compiles the GLSL sources in `shaders/` to SPIR-V with `glslangValidator -V`.
//!
//! Each `shaders/<name>.<stage>` becomes `$OUT_DIR/<name>.<stage>.spv`, which `src/lib.rs`
//! includes with `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Shader stages recognised by file extension; anything else in `shaders/` is ignored.
const STAGES: &[&str] = &["comp", "vert", "frag"];

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let shader_dir = manifest_dir.join("shaders");
    let glslang =
        std::env::var_os("GLSLANG_VALIDATOR").unwrap_or_else(|| "glslangValidator".into());

    println!("cargo:rerun-if-changed={}", shader_dir.display());
    println!("cargo:rerun-if-env-changed=GLSLANG_VALIDATOR");

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&shader_dir)
        .unwrap_or_else(|e| panic!("cannot read shader directory {}: {e}", shader_dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| is_shader(p))
        .collect();
    sources.sort();

    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        let file_name = src
            .file_name()
            .expect("read_dir yields file names")
            .to_string_lossy();
        let dst = out_dir.join(format!("{file_name}.spv"));
        let output = Command::new(&glslang)
            .arg("-V")
            .arg("--target-env")
            .arg("vulkan1.0")
            .arg("-o")
            .arg(&dst)
            .arg(src)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "could not run {:?} ({e}); it compiles the example shaders to SPIR-V. \
                     Install it (Debian: `apt-get install glslang-tools`) or point \
                     GLSLANG_VALIDATOR at the binary.",
                    glslang
                )
            });
        if !output.status.success() {
            panic!(
                "{:?} failed on {}:\n{}{}",
                glslang,
                src.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn is_shader(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| STAGES.contains(&e))
}
