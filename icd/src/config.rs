//! Configuration: environment first, then `$XDG_CONFIG_HOME/vkfuse/config.json`.
//! Bad values give one clear message and the default.

use std::path::PathBuf;

use vkfuse_scheduler::Strategy;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Residency {
    /// Objects live on the executing member only.
    Primary,
    /// Every object is created, and every command recorded, on all members (debug switch).
    All,
}

/// A fault to inject, for tests. `VKFUSE_FAULT=instance:1` makes member 1's instance creation
/// fail as if the driver had refused it; `device:1` does the same for device creation;
/// `submit:1:5` makes member 1 report `VK_ERROR_DEVICE_LOST` at its 5th submission;
/// `alloc:1:3` makes member 1's 3rd memory allocation fail with
/// `VK_ERROR_OUT_OF_DEVICE_MEMORY`; `import:1` makes member 1 refuse host-pointer imports;
/// `staging:1` makes every staging buffer on member 1 fail as if out of memory; `images:1`
/// makes member 1 refuse to copy images (every image then pins placement, `images.rs`);
/// `semaphores:1` makes member 1 fail to share semaphores (`links.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub what: String,
    pub member: usize,
    /// The 1-based occurrence the fault hits (`submit`, `alloc`); 0 for the others.
    pub nth: u64,
}

/// How host-visible allocations are laid out when batches run on several members.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sharing {
    /// One host allocation imported into every member where all of them can import it
    /// (shared host memory); mirrored otherwise.
    Host,
    /// A copy per member and a host shadow that the application maps, kept coherent by copies
    /// (`VKFUSE_SHARING=mirrored`): the path members without host-pointer import take,
    /// selectable to test and measure it on members that have it.
    Mirrored,
    /// Members of one driver on one device share each allocation through an opaque fd that
    /// the first exports and the others import (`VKFUSE_SHARING=device`); other memory as
    /// `Host`.
    Device,
    /// Every allocation is mirrored, and vkfuse never maps the members' copies: bytes reach
    /// them only through host-visible staging buffers and the members' own transfer commands
    /// (`VKFUSE_SHARING=staging`). This is the path of memory that is not host-visible on
    /// members of different drivers, selectable to test and measure it on members whose memory
    /// is all host-visible.
    Staging,
}

/// When an image copied between drivers (`images.rs`) goes from the member that wrote it to
/// the host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImageCopies {
    /// Only when a batch on another member needs it: a copy out on the writer then, before
    /// that batch (`VKFUSE_IMAGE_COPIES=lazy`, the default). An image nobody else reads, a
    /// render target cleared every frame say, is never copied; a member lost while it alone
    /// holds an image's latest contents loses the device.
    Lazy,
    /// After every batch that may write it (`VKFUSE_IMAGE_COPIES=eager`): the host always
    /// holds every image's latest contents, so losing a member loses no image.
    Eager,
}

/// How a batch on one member waits for batches on another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncPath {
    /// `Shared` between members that are not CPU drivers, `Bridge` otherwise
    /// (`VKFUSE_SYNC=auto`, the default): a GPU waits for a shared semaphore without a host
    /// thread, while a CPU driver's queue thread waits on the host either way, and there the
    /// empty batch that signals the semaphore made a chain of dependent submits slower
    /// (SwiftShader: `vkfuse bench`'s `shared_semaphores_vs_bridge`).
    Auto,
    /// Members of one driver on one device wait for each other's last batch on a queue
    /// through binary semaphores they share as opaque fds (`links.rs`); the bridge thread
    /// serves the rest (`VKFUSE_SYNC=shared`).
    Shared,
    /// Every wait across members goes through the bridge thread (`VKFUSE_SYNC=bridge`): to
    /// compare the two, and a way around a driver whose shared semaphores misbehave.
    Bridge,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub icds: Option<Vec<PathBuf>>,
    pub strategy: Strategy,
    pub primary: usize,
    pub residency: Residency,
    pub mask: Option<u64>,
    pub faults: Vec<Fault>,
    pub sharing: Sharing,
    pub image_copies: ImageCopies,
    pub sync: SyncPath,
}

impl Config {
    /// The configuration, read once per process (so each bad value is reported once).
    pub fn get() -> &'static Config {
        static CONFIG: once_cell::sync::OnceCell<Config> = once_cell::sync::OnceCell::new();
        CONFIG.get_or_init(Config::load)
    }

    pub fn fault(&self, what: &str, member: usize) -> bool {
        self.faults
            .iter()
            .any(|f| f.what == what && f.member == member)
    }

    /// Whether the `nth` occurrence (1-based) of `what` on `member` is made to fail.
    pub fn fault_at(&self, what: &str, member: usize, nth: u64) -> bool {
        self.faults
            .iter()
            .any(|f| f.what == what && f.member == member && f.nth == nth)
    }

    /// Whether batches may run on more than one member: a strategy other than `single`.
    pub fn multi(&self) -> bool {
        matches!(
            self.strategy,
            Strategy::RoundRobin | Strategy::Afr | Strategy::ComputeSplit | Strategy::Hybrid
        )
    }

    /// Whether dispatches may be split across members (`compute_split`, and `hybrid` where it
    /// pays; `split.rs`).
    pub fn splits(&self) -> bool {
        matches!(self.strategy, Strategy::ComputeSplit | Strategy::Hybrid)
    }
}

fn parse_faults(v: &str) -> Vec<Fault> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let w: Vec<&str> = item.split(':').map(str::trim).collect();
        let member = w.get(1).and_then(|m| m.parse::<usize>().ok());
        let nth = w
            .get(2)
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0);
        match (w[0], member, nth, w.len()) {
            (
                what @ ("instance" | "device" | "import" | "staging" | "images" | "shaders"
                | "slices" | "narrow" | "semaphores"),
                Some(member),
                None,
                2,
            )
            | (what @ ("submit" | "alloc" | "copyout"), Some(member), Some(_), 3) => out.push(Fault {
                what: what.into(),
                member,
                nth: nth.unwrap_or(0),
            }),
            _ => crate::warn!(
                "VKFUSE_FAULT: {item:?} is not `instance:M`, `device:M`, `import:M`, `staging:M`, `images:M`, `shaders:M`, `slices:M`, `narrow:M`, `semaphores:M`, `submit:M:N`, `copyout:M:N` or `alloc:M:N`; ignored"
            ),
        }
    }
    out
}

fn config_file() -> Option<serde_json::Value> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let path = dir.join("vkfuse/config.json");
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            crate::warn!(
                "{}: not valid JSON ({e}); ignoring the config file",
                path.display()
            );
            None
        }
    }
}

fn setting(env: &[&str], file: &Option<serde_json::Value>, key: &str) -> Option<(String, String)> {
    for name in env {
        if let Ok(v) = std::env::var(name) {
            if !v.is_empty() {
                return Some((v, name.to_string()));
            }
        }
    }
    let v = file.as_ref()?.get(key)?;
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(":"),
        other => other.to_string(),
    };
    Some((s, format!("config.json \"{key}\"")))
}

fn parse_mask(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if s.contains(',') {
        return s.split(',').try_fold(0u64, |m, i| {
            i.trim()
                .parse::<u32>()
                .ok()
                .filter(|i| *i < 64)
                .map(|i| m | 1 << i)
        });
    }
    s.parse().ok()
}

impl Config {
    pub fn load() -> Config {
        let file = config_file();
        let icds = setting(&["VKFUSE_ICDS"], &file, "icds").map(|(v, _)| {
            v.split(':')
                .filter(|s| !s.trim().is_empty())
                .map(|s| PathBuf::from(s.trim()))
                .collect()
        });
        let strategy = match setting(&["VKFUSE_STRATEGY", "MVGAL_STRATEGY"], &file, "strategy") {
            None => Strategy::Single,
            Some((v, from)) => match Strategy::parse(&v) {
                Some(s) => s,
                None => {
                    crate::warn!("{from}={v:?} is not a strategy (single, round_robin, afr, sfr, compute_split, hybrid); using single");
                    Strategy::Single
                }
            },
        };
        let built = matches!(
            strategy,
            Strategy::Single
                | Strategy::RoundRobin
                | Strategy::Afr
                | Strategy::ComputeSplit
                | Strategy::Hybrid
        );
        if !built {
            crate::warn!(
                "strategy {}: not built yet (single, round_robin, afr, compute_split and hybrid are); using single",
                strategy.name()
            );
        }
        let strategy = if built { strategy } else { Strategy::Single };
        let primary = match setting(
            &["VKFUSE_PRIMARY", "VKFUSE_PRESENT_MEMBER"],
            &file,
            "primary",
        ) {
            None => 0,
            Some((v, from)) => v.trim().parse().unwrap_or_else(|_| {
                crate::warn!("{from}={v:?} is not a member index; using 0");
                0
            }),
        };
        let residency = match setting(&["VKFUSE_RESIDENCY"], &file, "residency") {
            None => Residency::Primary,
            Some((v, from)) => match v.trim() {
                "all" => Residency::All,
                "primary" | "single" => Residency::Primary,
                _ => {
                    crate::warn!("{from}={v:?} is not `primary` or `all`; using primary");
                    Residency::Primary
                }
            },
        };
        let mask = setting(&["VKFUSE_MASK", "MVGAL_GPU_MASK"], &file, "mask").and_then(|(v, from)| {
            let m = parse_mask(&v);
            if m.is_none() {
                crate::warn!("{from}={v:?} is not a mask (a number, 0x.. or a list like 0,2); using all members");
            }
            m
        });
        let sharing = match setting(&["VKFUSE_SHARING"], &file, "sharing") {
            None => Sharing::Host,
            Some((v, from)) => match v.trim() {
                "host" => Sharing::Host,
                "mirrored" => Sharing::Mirrored,
                "device" => Sharing::Device,
                "staging" => Sharing::Staging,
                _ => {
                    crate::warn!(
                        "{from}={v:?} is not `host`, `device`, `mirrored` or `staging`; using host"
                    );
                    Sharing::Host
                }
            },
        };
        let image_copies = match setting(&["VKFUSE_IMAGE_COPIES"], &file, "image_copies") {
            None => ImageCopies::Lazy,
            Some((v, from)) => match v.trim() {
                "lazy" => ImageCopies::Lazy,
                "eager" => ImageCopies::Eager,
                _ => {
                    crate::warn!("{from}={v:?} is not `lazy` or `eager`; using lazy");
                    ImageCopies::Lazy
                }
            },
        };
        let sync = match setting(&["VKFUSE_SYNC"], &file, "sync") {
            None => SyncPath::Auto,
            Some((v, from)) => match v.trim() {
                "auto" => SyncPath::Auto,
                "shared" => SyncPath::Shared,
                "bridge" => SyncPath::Bridge,
                _ => {
                    crate::warn!("{from}={v:?} is not `auto`, `shared` or `bridge`; using auto");
                    SyncPath::Auto
                }
            },
        };
        let faults = std::env::var("VKFUSE_FAULT")
            .map(|v| parse_faults(&v))
            .unwrap_or_default();
        Config {
            icds,
            strategy,
            primary,
            residency,
            mask,
            faults,
            sharing,
            image_copies,
            sync,
        }
    }
}
