//! ICD manifests for vkfuse.
//!
//! - the manifest template (`vkfuse_icd.json.in`) and [`render`], which fills in the library path;
//! - [`read_manifest`], which reads any ICD manifest the way the Vulkan loader does;
//! - the directories the loader searches on Linux ([`standard_dirs`], [`standard_manifests`]);
//! - the member drivers known by a short name (`lavapipe`, `swiftshader`: [`resolve_member`]);
//! - installing vkfuse where the loader finds it ([`InstallPlan`], [`Action`]).
//!
//! std and serde_json only: the `vkfuse` command uses this crate, and so do the integration tests.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The manifest template. `@VKFUSE_LIBRARY_PATH@` (with its quotes) is replaced by the
/// JSON-escaped absolute path of `libvkfuse.so`.
pub const TEMPLATE: &str = include_str!("../vkfuse_icd.json.in");

/// The placeholder in [`TEMPLATE`].
pub const LIBRARY_PLACEHOLDER: &str = "@VKFUSE_LIBRARY_PATH@";

/// File name of the ICD library that `cargo build -p vkfuse` produces.
pub const LIBRARY_FILE_NAME: &str = "libvkfuse.so";

/// File name of vkfuse's manifest, wherever it is written.
pub const MANIFEST_FILE_NAME: &str = "vkfuse_icd.json";

/// An error with the context a user needs to act on it (which file, what went wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    fn io(what: &str, path: &Path, err: &io::Error) -> Self {
        let hint = if err.kind() == io::ErrorKind::PermissionDenied {
            " (run as root, or use --user)"
        } else {
            ""
        };
        Error(format!("{what} {}: {err}{hint}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The manifest text for a vkfuse library at `library` (must be absolute: the loader resolves a
/// relative path against the manifest's directory, which is never what an installer means).
pub fn render(library: &Path) -> Result<String, Error> {
    if !library.is_absolute() {
        return Err(Error::new(format!(
            "library path {} is not absolute",
            library.display()
        )));
    }
    let text = library.to_str().ok_or_else(|| {
        Error::new(format!(
            "library path {} is not valid UTF-8, which a JSON manifest cannot hold",
            library.display()
        ))
    })?;
    let quoted_placeholder = format!("\"{LIBRARY_PLACEHOLDER}\"");
    if !TEMPLATE.contains(&quoted_placeholder) {
        return Err(Error::new(
            "manifest template lacks the library placeholder".to_string(),
        ));
    }
    let escaped = serde_json::Value::String(text.to_string()).to_string();
    Ok(TEMPLATE.replace(&quoted_placeholder, &escaped))
}

/// What an ICD manifest says, read the way the Vulkan loader reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcdManifest {
    /// The manifest file.
    pub path: PathBuf,
    /// `ICD.library_path` as written.
    pub library_path: String,
    /// The library as the loader would open it: a path with a `/` is relative to the manifest's
    /// directory; a bare file name is left to the dynamic linker's search.
    pub library: PathBuf,
    /// `ICD.api_version`, when present.
    pub api_version: Option<String>,
}

/// Reads and checks one ICD manifest.
pub fn read_manifest(path: &Path) -> Result<IcdManifest, Error> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, &e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{} is not valid JSON: {e}", path.display())))?;
    let icd = json
        .get("ICD")
        .ok_or_else(|| Error::new(format!("{} has no \"ICD\" object", path.display())))?;
    let library_path = icd
        .get("library_path")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            Error::new(format!(
                "{} has no string \"ICD.library_path\"",
                path.display()
            ))
        })?
        .to_string();
    let library = if library_path.contains('/') && !Path::new(&library_path).is_absolute() {
        path.parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&library_path)
    } else {
        PathBuf::from(&library_path)
    };
    let api_version = icd
        .get("api_version")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    Ok(IcdManifest {
        path: path.to_path_buf(),
        library_path,
        library,
        api_version,
    })
}

/// True when a manifest describes vkfuse itself (by file name or library name). Used to keep
/// vkfuse out of its own member list.
pub fn is_vkfuse_manifest(manifest: &IcdManifest) -> bool {
    let own_name = manifest
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("vkfuse"));
    let own_library = manifest
        .library
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libvkfuse"));
    own_name || own_library
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_list(name: &str, default: &str) -> Vec<PathBuf> {
    let value: OsString = std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(default));
    std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

/// The directories the Vulkan loader (1.3.x, Linux) searches for ICD manifests, in its order:
/// `$XDG_CONFIG_HOME`, `$XDG_CONFIG_DIRS`, `/etc`, `$XDG_DATA_HOME`, `$XDG_DATA_DIRS`, each
/// followed by `vulkan/icd.d`.
pub fn standard_dirs() -> Vec<PathBuf> {
    let home = env_path("HOME");
    let mut bases = Vec::new();
    if let Some(config_home) =
        env_path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
    {
        bases.push(config_home);
    }
    bases.extend(env_list("XDG_CONFIG_DIRS", "/etc/xdg"));
    bases.push(PathBuf::from("/etc"));
    if let Some(data_home) =
        env_path("XDG_DATA_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/share")))
    {
        bases.push(data_home);
    }
    bases.extend(env_list("XDG_DATA_DIRS", "/usr/local/share:/usr/share"));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for base in bases {
        let dir = base.join("vulkan").join("icd.d");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Every `*.json` file in [`standard_dirs`], sorted by name within a directory, without
/// duplicates (the same file reached through two directories counts once).
pub fn standard_manifests() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in standard_dirs() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            let canonical = fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if !seen.contains(&canonical) {
                seen.push(canonical);
                found.push(file);
            }
        }
    }
    found
}

/// A member driver known by a short name.
#[derive(Debug, Clone, Copy)]
pub struct KnownDriver {
    /// The canonical short name.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Manifest file-name prefixes looked for in the standard directories.
    pub file_prefixes: &'static [&'static str],
    /// Where the manifest lives when it is not in a standard directory.
    pub fallbacks: &'static [&'static str],
}

/// The drivers `--members` accepts by name.
pub const KNOWN_DRIVERS: &[KnownDriver] = &[
    KnownDriver {
        name: "lavapipe",
        aliases: &["lvp", "llvmpipe"],
        file_prefixes: &["lvp_icd"],
        fallbacks: &["/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"],
    },
    KnownDriver {
        name: "swiftshader",
        aliases: &["swsh"],
        file_prefixes: &["vk_swiftshader_icd", "swiftshader_icd"],
        // Debian's chromium-common ships SwiftShader with a manifest next to the library.
        fallbacks: &["/usr/lib/chromium/vk_swiftshader_icd.json"],
    },
];

/// The known driver called `name` (case-insensitive), if any.
pub fn known_driver(name: &str) -> Option<&'static KnownDriver> {
    let lower = name.to_ascii_lowercase();
    KNOWN_DRIVERS
        .iter()
        .find(|d| d.name == lower || d.aliases.contains(&lower.as_str()))
}

/// Finds the manifest of a known driver: a standard directory first (preferring the file for
/// this machine's architecture, e.g. `lvp_icd.x86_64.json`), then the fallbacks.
pub fn find_known(driver: &KnownDriver) -> Option<PathBuf> {
    let matching: Vec<PathBuf> = standard_manifests()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| driver.file_prefixes.iter().any(|pre| n.starts_with(pre)))
        })
        .collect();
    let arch = std::env::consts::ARCH;
    let for_arch = matching.iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(arch))
    });
    if let Some(p) = for_arch.or(matching.first()) {
        return Some(p.clone());
    }
    driver
        .fallbacks
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Resolves one `--members` entry: a manifest path (anything with a `/` or ending in `.json`),
/// or a known driver's short name. Paths are made absolute, and must exist.
pub fn resolve_member(spec: &str) -> Result<PathBuf, Error> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(Error::new("empty member name"));
    }
    if spec.contains('/') || spec.ends_with(".json") {
        let path = PathBuf::from(spec);
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| Error::new(format!("cannot read the current directory: {e}")))?
                .join(path)
        };
        if !path.is_file() {
            return Err(Error::new(format!(
                "member manifest {} does not exist",
                path.display()
            )));
        }
        return Ok(path);
    }
    let driver = known_driver(spec).ok_or_else(|| {
        let names: Vec<&str> = KNOWN_DRIVERS.iter().map(|d| d.name).collect();
        Error::new(format!(
            "unknown member '{spec}': give an ICD manifest path or one of {}",
            names.join(", ")
        ))
    })?;
    find_known(driver).ok_or_else(|| {
        let hint = match driver.name {
            "lavapipe" => " (Debian: apt-get install mesa-vulkan-drivers)",
            "swiftshader" => " (Debian: apt-get install chromium-common)",
            _ => "",
        };
        Error::new(format!("no manifest found for {}{hint}", driver.name))
    })
}

/// A short name for a member manifest, for reports: the known driver's name or the file stem.
pub fn member_label(manifest: &Path) -> String {
    let file = manifest.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    KNOWN_DRIVERS
        .iter()
        .find(|d| d.file_prefixes.iter().any(|pre| file.starts_with(pre)))
        .map(|d| d.name.to_string())
        .unwrap_or_else(|| file.trim_end_matches(".json").to_string())
}

/// Where `vkfuse install` puts things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/usr/local/lib/vkfuse/` and `/usr/share/vulkan/icd.d/` (needs root).
    System,
    /// `~/.local/lib/vkfuse/` and `${XDG_DATA_HOME:-~/.local/share}/vulkan/icd.d/`.
    User,
}

/// The two files of an installation. `library` and `manifest` are the final paths (what the
/// manifest names); with a `destdir` (staging, as `make DESTDIR=`) files are written below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    /// Installed `libvkfuse.so`.
    pub library: PathBuf,
    /// Installed manifest.
    pub manifest: PathBuf,
    /// Staging root, if any.
    pub destdir: Option<PathBuf>,
}

impl InstallPlan {
    /// The plan for `scope`, with `home` and `xdg_data_home` as given (normally from the
    /// environment: see [`InstallPlan::from_env`]).
    pub fn new(
        scope: Scope,
        home: Option<&Path>,
        xdg_data_home: Option<&Path>,
        destdir: Option<&Path>,
    ) -> Result<Self, Error> {
        let (library, manifest) = match scope {
            Scope::System => (
                PathBuf::from("/usr/local/lib/vkfuse").join(LIBRARY_FILE_NAME),
                PathBuf::from("/usr/share/vulkan/icd.d").join(MANIFEST_FILE_NAME),
            ),
            Scope::User => {
                let home = home.filter(|h| h.is_absolute()).ok_or_else(|| {
                    Error::new("--user needs HOME set to an absolute path".to_string())
                })?;
                let data_home = xdg_data_home
                    .filter(|d| d.is_absolute())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| home.join(".local/share"));
                (
                    home.join(".local/lib/vkfuse").join(LIBRARY_FILE_NAME),
                    data_home
                        .join("vulkan")
                        .join("icd.d")
                        .join(MANIFEST_FILE_NAME),
                )
            }
        };
        Ok(InstallPlan {
            library,
            manifest,
            destdir: destdir.map(Path::to_path_buf),
        })
    }

    /// [`InstallPlan::new`] with `HOME` and `XDG_DATA_HOME` from the environment.
    pub fn from_env(scope: Scope, destdir: Option<&Path>) -> Result<Self, Error> {
        let home = env_path("HOME");
        let data_home = env_path("XDG_DATA_HOME");
        InstallPlan::new(scope, home.as_deref(), data_home.as_deref(), destdir)
    }

    /// Where a final path is written (below `destdir` when staging).
    pub fn staged(&self, path: &Path) -> PathBuf {
        match &self.destdir {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// The steps that install `source` (a built `libvkfuse.so`).
    pub fn install_actions(&self, source: &Path) -> Result<Vec<Action>, Error> {
        if !source.is_file() {
            return Err(Error::new(format!(
                "{} does not exist: build it with `cargo build --release -p vkfuse`",
                source.display()
            )));
        }
        let manifest_text = render(&self.library)?;
        let mut actions = Vec::new();
        for path in [&self.library, &self.manifest] {
            if let Some(dir) = self.staged(path).parent() {
                actions.push(Action::CreateDir(dir.to_path_buf()));
            }
        }
        actions.push(Action::CopyFile {
            from: source.to_path_buf(),
            to: self.staged(&self.library),
        });
        actions.push(Action::WriteFile {
            path: self.staged(&self.manifest),
            contents: manifest_text,
        });
        Ok(actions)
    }

    /// The steps that remove an installation (only what is there).
    pub fn uninstall_actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for path in [&self.manifest, &self.library] {
            let staged = self.staged(path);
            if staged.exists() {
                actions.push(Action::RemoveFile(staged));
            }
        }
        if let Some(dir) = self.staged(&self.library).parent() {
            if dir.is_dir() {
                actions.push(Action::RemoveDirIfEmpty(dir.to_path_buf()));
            }
        }
        actions
    }
}

/// One filesystem step of an install or uninstall. `Display` says what it does, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `mkdir -p`.
    CreateDir(PathBuf),
    /// Copy through a temporary file and a rename, so that running programs keep the old file.
    CopyFile {
        /// Source.
        from: PathBuf,
        /// Destination.
        to: PathBuf,
    },
    /// Write through a temporary file and a rename.
    WriteFile {
        /// Destination.
        path: PathBuf,
        /// Contents.
        contents: String,
    },
    /// Remove a file.
    RemoveFile(PathBuf),
    /// Remove a directory if nothing is left in it.
    RemoveDirIfEmpty(PathBuf),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateDir(p) => write!(f, "create directory {}", p.display()),
            Action::CopyFile { from, to } => {
                write!(f, "copy {} -> {}", from.display(), to.display())
            }
            Action::WriteFile { path, contents } => {
                write!(f, "write {}:\n{}", path.display(), contents.trim_end())
            }
            Action::RemoveFile(p) => write!(f, "remove {}", p.display()),
            Action::RemoveDirIfEmpty(p) => write!(f, "remove directory {} if empty", p.display()),
        }
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

impl Action {
    /// Performs the step.
    pub fn apply(&self) -> Result<(), Error> {
        match self {
            Action::CreateDir(p) => {
                fs::create_dir_all(p).map_err(|e| Error::io("cannot create directory", p, &e))
            }
            Action::CopyFile { from, to } => {
                let tmp = temp_sibling(to);
                fs::copy(from, &tmp).map_err(|e| Error::io("cannot write", &tmp, &e))?;
                fs::rename(&tmp, to).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::io("cannot replace", to, &e)
                })
            }
            Action::WriteFile { path, contents } => {
                let tmp = temp_sibling(path);
                fs::write(&tmp, contents).map_err(|e| Error::io("cannot write", &tmp, &e))?;
                fs::rename(&tmp, path).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::io("cannot replace", path, &e)
                })
            }
            Action::RemoveFile(p) => {
                fs::remove_file(p).map_err(|e| Error::io("cannot remove", p, &e))
            }
            Action::RemoveDirIfEmpty(p) => match fs::read_dir(p) {
                Ok(mut entries) => {
                    if entries.next().is_none() {
                        fs::remove_dir(p).map_err(|e| Error::io("cannot remove directory", p, &e))
                    } else {
                        Ok(())
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("cannot read directory", p, &e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_valid_json_with_the_library() {
        let text = render(Path::new("/opt/a \"quoted\" dir/libvkfuse.so")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["file_format_version"], "1.0.0");
        assert_eq!(json["ICD"]["api_version"], "1.3.239");
        assert_eq!(
            json["ICD"]["library_path"],
            "/opt/a \"quoted\" dir/libvkfuse.so"
        );
    }

    #[test]
    fn relative_library_is_refused() {
        assert!(render(Path::new("libvkfuse.so")).is_err());
    }

    #[test]
    fn manifest_library_paths_resolve_like_the_loader() {
        let dir =
            std::env::temp_dir().join(format!("vkfuse-manifests-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let rel = dir.join("rel.json");
        fs::write(
            &rel,
            r#"{"file_format_version":"1.0.0","ICD":{"library_path":"./libx.so","api_version":"1.0.5"}}"#,
        )
        .unwrap();
        let m = read_manifest(&rel).unwrap();
        assert_eq!(m.library, dir.join("./libx.so"));
        assert_eq!(m.api_version.as_deref(), Some("1.0.5"));
        let bare = dir.join("bare.json");
        fs::write(&bare, r#"{"ICD":{"library_path":"libx.so"}}"#).unwrap();
        assert_eq!(
            read_manifest(&bare).unwrap().library,
            PathBuf::from("libx.so")
        );
        let bad = dir.join("bad.json");
        fs::write(&bad, "{\"ICD\": {").unwrap();
        assert!(read_manifest(&bad)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn vkfuse_manifest_is_recognised() {
        let m = IcdManifest {
            path: PathBuf::from("/tmp/x/member.json"),
            library_path: "/usr/local/lib/vkfuse/libvkfuse.so".into(),
            library: PathBuf::from("/usr/local/lib/vkfuse/libvkfuse.so"),
            api_version: None,
        };
        assert!(is_vkfuse_manifest(&m));
    }

    #[test]
    fn plans_follow_the_loader_directories() {
        let sys = InstallPlan::new(Scope::System, None, None, None).unwrap();
        assert_eq!(sys.library, Path::new("/usr/local/lib/vkfuse/libvkfuse.so"));
        assert_eq!(
            sys.manifest,
            Path::new("/usr/share/vulkan/icd.d/vkfuse_icd.json")
        );
        let user = InstallPlan::new(Scope::User, Some(Path::new("/home/u")), None, None).unwrap();
        assert_eq!(
            user.library,
            Path::new("/home/u/.local/lib/vkfuse/libvkfuse.so")
        );
        assert_eq!(
            user.manifest,
            Path::new("/home/u/.local/share/vulkan/icd.d/vkfuse_icd.json")
        );
        let xdg = InstallPlan::new(
            Scope::User,
            Some(Path::new("/home/u")),
            Some(Path::new("/data")),
            None,
        )
        .unwrap();
        assert_eq!(
            xdg.manifest,
            Path::new("/data/vulkan/icd.d/vkfuse_icd.json")
        );
        assert!(InstallPlan::new(Scope::User, None, None, None).is_err());
        let staged =
            InstallPlan::new(Scope::System, None, None, Some(Path::new("/stage"))).unwrap();
        assert_eq!(
            staged.staged(&staged.manifest),
            Path::new("/stage/usr/share/vulkan/icd.d/vkfuse_icd.json")
        );
    }

    #[test]
    fn install_and_uninstall_into_a_staging_root() {
        let root = std::env::temp_dir().join(format!("vkfuse-install-test-{}", std::process::id()));
        let src_dir = root.join("src");
        fs::create_dir_all(&src_dir).unwrap();
        let source = src_dir.join(LIBRARY_FILE_NAME);
        fs::write(&source, b"not really a library").unwrap();
        let plan = InstallPlan::new(Scope::System, None, None, Some(&root.join("stage"))).unwrap();
        for action in plan.install_actions(&source).unwrap() {
            action.apply().unwrap();
        }
        let manifest = read_manifest(&plan.staged(&plan.manifest)).unwrap();
        assert_eq!(manifest.library, plan.library);
        assert!(plan.staged(&plan.library).is_file());
        for action in plan.uninstall_actions() {
            action.apply().unwrap();
        }
        assert!(!plan.staged(&plan.manifest).exists());
        assert!(!plan.staged(&plan.library).parent().unwrap().exists());
        assert!(plan.uninstall_actions().is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn short_names() {
        assert_eq!(known_driver("LVP").map(|d| d.name), Some("lavapipe"));
        assert_eq!(
            known_driver("swiftshader").map(|d| d.name),
            Some("swiftshader")
        );
        assert!(known_driver("nvidia").is_none());
        assert!(resolve_member("nvidia")
            .unwrap_err()
            .to_string()
            .contains("unknown member"));
        assert!(resolve_member("/nonexistent/x.json").is_err());
        assert_eq!(
            member_label(Path::new("/a/lvp_icd.x86_64.json")),
            "lavapipe"
        );
        assert_eq!(member_label(Path::new("/a/other.json")), "other");
    }
}
