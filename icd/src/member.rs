//! Members: discovery of the machine's Vulkan drivers and loading them as a loader would,
//! through `vk_icdNegotiateLoaderICDInterfaceVersion` and `vk_icdGetInstanceProcAddr`,
//! never through libvulkan (which would find vkfuse again).

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};

use ash::vk;
use once_cell::sync::OnceCell;

use crate::generated::dispatch::VoidFn;

pub type Gipa = unsafe extern "system" fn(vk::Instance, *const c_char) -> vk::PFN_vkVoidFunction;
type Negotiate = unsafe extern "system" fn(*mut u32) -> vk::Result;

/// A loaded member driver.
pub struct Member {
    pub index: usize,
    pub manifest: PathBuf,
    pub library: PathBuf,
    pub interface_version: u32,
    gipa: Gipa,
    gpdpa: Option<Gipa>,
    _lib: libloading::Library,
}

/// A manifest that did not become a member, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub manifest: PathBuf,
    pub reason: String,
}

pub struct Discovery {
    pub members: Vec<Member>,
    pub skipped: Vec<Skipped>,
}

/// The interface version vkfuse negotiates with members, as their loader.
const LOADER_INTERFACE: u32 = 5;

impl Member {
    /// Looks a command up as the loader would for this ICD.
    pub fn proc_addr(&self, instance: vk::Instance, name: &CStr) -> Option<VoidFn> {
        // SAFETY: `gipa` is the member's exported vk_icdGetInstanceProcAddr; `name` is a
        // NUL-terminated command name.
        let f = unsafe { (self.gipa)(instance, name.as_ptr()) };
        if f.is_some() {
            return f;
        }
        let g = self.gpdpa?;
        // SAFETY: as above, for vk_icdGetPhysicalDeviceProcAddr (interface version ≥ 4).
        unsafe { g(instance, name.as_ptr()) }
    }

    pub fn describe(&self) -> String {
        self.manifest.display().to_string()
    }
}

/// The manifests in the directories the loader searches, vkfuse's own left out.
fn standard_manifests() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let xdg_config = std::env::var("XDG_CONFIG_DIRS").unwrap_or_else(|_| "/etc/xdg".into());
    let xdg_data =
        std::env::var("XDG_DATA_DIRS").unwrap_or_else(|_| "/usr/local/share:/usr/share".into());
    if let Ok(home) = std::env::var("XDG_CONFIG_HOME") {
        dirs.push(PathBuf::from(home));
    } else if let Ok(home) = std::env::var("HOME") {
        dirs.push(PathBuf::from(home).join(".config"));
    }
    dirs.extend(xdg_config.split(':').map(PathBuf::from));
    dirs.push(PathBuf::from("/etc"));
    if let Ok(home) = std::env::var("XDG_DATA_HOME") {
        dirs.push(PathBuf::from(home));
    } else if let Ok(home) = std::env::var("HOME") {
        dirs.push(PathBuf::from(home).join(".local/share"));
    }
    dirs.extend(xdg_data.split(':').map(PathBuf::from));
    let mut out = Vec::new();
    for d in dirs {
        let d = d.join("vulkan/icd.d");
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// The path of vkfuse's own library, to keep it out of its members.
fn own_library() -> Option<PathBuf> {
    let mut info: libc_dl::DlInfo = libc_dl::DlInfo::default();
    // SAFETY: dladdr only reads the address of one of our own functions.
    let ok = unsafe { libc_dl::dladdr(own_library as *const () as *const _, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returns a NUL-terminated path that lives as long as the library.
    let p = unsafe { CStr::from_ptr(info.dli_fname) };
    std::fs::canonicalize(p.to_string_lossy().as_ref()).ok()
}

mod libc_dl {
    use std::ffi::{c_char, c_int, c_void};
    #[repr(C)]
    pub struct DlInfo {
        pub dli_fname: *const c_char,
        pub dli_fbase: *mut c_void,
        pub dli_sname: *const c_char,
        pub dli_saddr: *mut c_void,
    }
    impl Default for DlInfo {
        fn default() -> Self {
            DlInfo {
                dli_fname: std::ptr::null(),
                dli_fbase: std::ptr::null_mut(),
                dli_sname: std::ptr::null(),
                dli_saddr: std::ptr::null_mut(),
            }
        }
    }
    extern "C" {
        pub fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
    }
}

struct Manifest {
    library: PathBuf,
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the manifest: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    let lib = v
        .get("ICD")
        .and_then(|i| i.get("library_path"))
        .and_then(|l| l.as_str())
        .ok_or("the manifest has no ICD.library_path")?;
    let lib = PathBuf::from(lib);
    // Relative paths with a separator are relative to the manifest; bare names go to the
    // dynamic linker's search path, as the loader does it.
    let library = if lib.is_absolute() || lib.components().count() == 1 {
        lib
    } else {
        path.parent().unwrap_or(Path::new(".")).join(lib)
    };
    Ok(Manifest { library })
}

fn load(index: usize, manifest: &Path, own: Option<&Path>) -> Result<Member, String> {
    let m = read_manifest(manifest)?;
    if let (Some(own), Ok(lib)) = (own, std::fs::canonicalize(&m.library)) {
        if lib == own {
            return Err("this is vkfuse itself".into());
        }
    }
    if m.library
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("vkfuse"))
    {
        return Err("this is vkfuse itself".into());
    }
    // SAFETY: loading a Vulkan driver runs its initialisers, exactly as the Vulkan loader would.
    let lib = unsafe { libloading::Library::new(&m.library) }
        .map_err(|e| format!("cannot load {}: {e}", m.library.display()))?;
    // SAFETY: symbol types are those of the loader–ICD interface (vk_icd.h).
    let gipa: Gipa = unsafe { lib.get::<Gipa>(b"vk_icdGetInstanceProcAddr\0") }
        .map(|s| *s)
        .map_err(|_| {
            format!(
                "{} is not a Vulkan driver (no vk_icdGetInstanceProcAddr)",
                m.library.display()
            )
        })?;
    let mut version = 1;
    // SAFETY: as above.
    if let Ok(neg) = unsafe { lib.get::<Negotiate>(b"vk_icdNegotiateLoaderICDInterfaceVersion\0") }
    {
        version = LOADER_INTERFACE;
        // SAFETY: the driver writes the version it supports into `version`.
        let r = unsafe { neg(&mut version) };
        if r != vk::Result::SUCCESS {
            return Err(format!("interface negotiation failed ({r:?})"));
        }
    }
    if version < 2 {
        return Err(format!(
            "loader interface version {version} is too old (vkfuse needs 2 or later)"
        ));
    }
    let gpdpa = if version >= 4 {
        // SAFETY: as above.
        unsafe { lib.get::<Gipa>(b"vk_icdGetPhysicalDeviceProcAddr\0") }
            .ok()
            .map(|s| *s)
    } else {
        None
    };
    Ok(Member {
        index,
        manifest: manifest.to_path_buf(),
        library: m.library,
        interface_version: version,
        gipa,
        gpdpa,
        _lib: lib,
    })
}

static DISCOVERY: OnceCell<Discovery> = OnceCell::new();

/// Finds and loads the members once per process.
pub fn discovery() -> &'static Discovery {
    DISCOVERY.get_or_init(|| {
        let cfg = crate::config::Config::get();
        let own = own_library();
        let manifests = cfg.icds.clone().unwrap_or_else(standard_manifests);
        let mut members = Vec::new();
        let mut skipped = Vec::new();
        for manifest in manifests {
            if members.len() == crate::MAX_MEMBERS {
                skipped.push(Skipped {
                    manifest,
                    reason: format!("vkfuse supports at most {} members", crate::MAX_MEMBERS),
                });
                continue;
            }
            match load(members.len(), &manifest, own.as_deref()) {
                Ok(m) => {
                    crate::info!(
                        "member {}: {} ({})",
                        m.index,
                        manifest.display(),
                        m.library.display()
                    );
                    members.push(m);
                }
                Err(reason) => {
                    if reason != "this is vkfuse itself" {
                        crate::warn!("skipping member {}: {reason}", manifest.display());
                    }
                    skipped.push(Skipped { manifest, reason });
                }
            }
        }
        Discovery { members, skipped }
    })
}

/// Calls a global command of a member (`vkCreateInstance`, `vkEnumerateInstance*`).
pub fn global(m: &Member, name: &CStr) -> Option<VoidFn> {
    m.proc_addr(vk::Instance::null(), name)
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}
