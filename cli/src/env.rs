//! Where vkfuse's files are, and the environment that points a program at vkfuse (with chosen
//! members) or directly at one member driver.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::args::CliError;

/// Prepares a child's environment (direct on a member, or through vkfuse).
pub type Setup<'a> = &'a dyn Fn(&mut Command) -> Result<(), CliError>;

/// The strategies the ICD understands (`VKFUSE_STRATEGY`).
pub const STRATEGIES: &[&str] = &[
    "single",
    "round_robin",
    "afr",
    "sfr",
    "compute_split",
    "hybrid",
];

/// The residency modes the ICD understands (`VKFUSE_RESIDENCY`).
pub const RESIDENCIES: &[&str] = &["primary", "all"];

/// The directory of the running `vkfuse` executable.
pub fn exe_dir() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failure(format!("cannot find the vkfuse executable: {e}")))?;
    let exe = fs::canonicalize(&exe).unwrap_or(exe);
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| CliError::failure("the vkfuse executable has no directory"))
}

/// `libvkfuse.so`: `$VKFUSE_LIBRARY`, else next to the running `vkfuse` (as cargo builds them).
pub fn library() -> Result<PathBuf, CliError> {
    if let Some(path) = std::env::var_os("VKFUSE_LIBRARY").filter(|v| !v.is_empty()) {
        let path = absolute(PathBuf::from(path))?;
        if !path.is_file() {
            return Err(CliError::failure(format!(
                "VKFUSE_LIBRARY={} does not exist",
                path.display()
            )));
        }
        return Ok(path);
    }
    let dir = exe_dir()?;
    let path = dir.join(vkfuse_manifests::LIBRARY_FILE_NAME);
    if path.is_file() {
        Ok(path)
    } else {
        Err(CliError::failure(format!(
            "{} not found next to the vkfuse executable in {}: build it \
             (`cargo build -p vkfuse`, same profile) or set VKFUSE_LIBRARY",
            vkfuse_manifests::LIBRARY_FILE_NAME,
            dir.display()
        )))
    }
}

/// One of the example programs (`compute`, `offscreen`, `bench-record`, ...):
/// `$VKFUSE_EXAMPLES_DIR/<name>`, else next to the running `vkfuse`.
pub fn program(name: &str) -> Result<PathBuf, CliError> {
    let dir = match std::env::var_os("VKFUSE_EXAMPLES_DIR").filter(|v| !v.is_empty()) {
        Some(d) => absolute(PathBuf::from(d))?,
        None => exe_dir()?,
    };
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(CliError::failure(format!(
            "example program {} not found: build the examples (`cargo build -p vkfuse-examples`, \
             same profile as vkfuse) or set VKFUSE_EXAMPLES_DIR",
            path.display()
        )))
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, CliError> {
    if path.is_absolute() {
        return Ok(path);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failure(format!("cannot read the current directory: {e}")))?;
    Ok(cwd.join(path))
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self, CliError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let dir = base.join(format!(
                "{prefix}-{}-{nanos:x}-{attempt}",
                std::process::id()
            ));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(CliError::failure(format!(
                        "cannot create a temporary directory in {}: {e}",
                        base.display()
                    )))
                }
            }
        }
        Err(CliError::failure(format!(
            "cannot create a temporary directory in {}",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A vkfuse manifest written into a temporary directory, pointing at a `libvkfuse.so`; it lives
/// as long as this value.
pub struct TempManifest {
    // Held for its Drop: the directory goes when the manifest is no longer needed.
    _dir: TempDir,
    manifest: PathBuf,
}

impl TempManifest {
    pub fn new(library: &Path) -> Result<Self, CliError> {
        let dir = TempDir::new("vkfuse-run")?;
        let manifest = dir.path().join(vkfuse_manifests::MANIFEST_FILE_NAME);
        let text = vkfuse_manifests::render(library)?;
        fs::write(&manifest, text)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", manifest.display())))?;
        Ok(TempManifest {
            _dir: dir,
            manifest,
        })
    }

    pub fn manifest(&self) -> &Path {
        &self.manifest
    }
}

/// Makes `cmd` see exactly the driver(s) of `manifests` through the Vulkan loader.
/// `VK_DRIVER_FILES` is the loader's newer name and wins over `VK_ICD_FILENAMES` when both are
/// set, so both are set; `VK_ADD_DRIVER_FILES` would add drivers, so it is removed.
pub fn only_driver(cmd: &mut Command, manifest: &Path) {
    cmd.env("VK_ICD_FILENAMES", manifest)
        .env("VK_DRIVER_FILES", manifest)
        .env_remove("VK_ADD_DRIVER_FILES");
}

/// Joins member manifests into a `VKFUSE_ICDS` value.
pub fn join_members(members: &[PathBuf]) -> Result<OsString, CliError> {
    for m in members {
        if m.to_string_lossy().contains(':') {
            return Err(CliError::usage(format!(
                "member manifest path {} contains ':', which VKFUSE_ICDS uses as separator",
                m.display()
            )));
        }
    }
    std::env::join_paths(members).map_err(|e| CliError::usage(format!("bad member list: {e}")))
}

/// The vkfuse settings of one run; `None` leaves the variable as the environment has it.
#[derive(Debug, Clone, Default)]
pub struct FusedConfig {
    pub members: Option<Vec<PathBuf>>,
    pub strategy: Option<String>,
    pub residency: Option<String>,
    pub primary: Option<usize>,
    pub log: Option<String>,
}

impl FusedConfig {
    /// Resolves a `--members` value (short names or manifest paths).
    pub fn set_members(&mut self, list: &[String]) -> Result<(), CliError> {
        if list.is_empty() {
            return Err(CliError::usage("--members needs at least one member"));
        }
        let resolved = list
            .iter()
            .map(|m| {
                vkfuse_manifests::resolve_member(m).map_err(|e| CliError::usage(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.members = Some(resolved);
        Ok(())
    }

    pub fn set_strategy(&mut self, s: &str) -> Result<(), CliError> {
        if !STRATEGIES.contains(&s) {
            return Err(CliError::usage(format!(
                "unknown strategy '{s}': one of {}",
                STRATEGIES.join(", ")
            )));
        }
        self.strategy = Some(s.to_string());
        Ok(())
    }

    pub fn set_residency(&mut self, r: &str) -> Result<(), CliError> {
        if !RESIDENCIES.contains(&r) {
            return Err(CliError::usage(format!(
                "unknown residency '{r}': one of {}",
                RESIDENCIES.join(", ")
            )));
        }
        self.residency = Some(r.to_string());
        Ok(())
    }

    /// Points `cmd` at vkfuse (through `vkfuse_manifest`) with these settings.
    pub fn apply(&self, cmd: &mut Command, vkfuse_manifest: &Path) -> Result<(), CliError> {
        only_driver(cmd, vkfuse_manifest);
        if let Some(members) = &self.members {
            cmd.env("VKFUSE_ICDS", join_members(members)?);
        }
        if let Some(s) = &self.strategy {
            cmd.env("VKFUSE_STRATEGY", s);
        }
        if let Some(r) = &self.residency {
            cmd.env("VKFUSE_RESIDENCY", r);
        }
        if let Some(p) = self.primary {
            cmd.env("VKFUSE_PRIMARY", p.to_string());
        }
        if let Some(l) = &self.log {
            cmd.env("VKFUSE_LOG", l);
        }
        Ok(())
    }
}
