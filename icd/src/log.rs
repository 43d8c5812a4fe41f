//! Logging to stderr, filtered by `VKFUSE_LOG` (error, warn, info, debug; default warn).
//!
//! vkfuse runs inside other programs: it never prints anything but its own prefixed lines.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

fn parse(s: &str) -> Option<Level> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "error" | "0" | "1" => Level::Error,
        "warn" | "warning" | "2" => Level::Warn,
        "info" | "3" => Level::Info,
        "debug" | "trace" | "4" | "5" => Level::Debug,
        _ => return None,
    })
}

/// The level in force; read once from `VKFUSE_LOG`.
pub fn level() -> Level {
    let l = LEVEL.load(Ordering::Relaxed);
    if l != 0 {
        return match l {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            _ => Level::Debug,
        };
    }
    let v = std::env::var("VKFUSE_LOG").ok();
    let lvl = v.as_deref().and_then(parse).unwrap_or(Level::Warn);
    LEVEL.store(lvl as u8, Ordering::Relaxed);
    if let Some(v) = v.filter(|v| parse(v).is_none()) {
        eprintln!(
            "vkfuse: warning: VKFUSE_LOG={v:?} is not one of error, warn, info, debug; using warn"
        );
    }
    lvl
}

pub fn enabled(l: Level) -> bool {
    l <= level()
}

#[cold]
pub fn write(l: Level, msg: std::fmt::Arguments) {
    if enabled(l) {
        let tag = match l {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        // Never panics: a closed stderr must not take the application down.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "vkfuse: {tag}: {msg}");
    }
}

#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }
