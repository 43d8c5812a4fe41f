//! Small, real Vulkan programs (ash) that vkfuse's tests and benchmarks run twice: once on a
//! member driver directly and once through vkfuse, comparing the `result=` hashes (and timings).
//!
//! This library holds what the binaries in `src/bin/` share: instance/device setup with optional
//! validation ([`Context`]; [`wsi::WsiContext`] for `present`), creation helpers on the device
//! both dereference to ([`DeviceContext`]), memory type selection by property flags
//! ([`find_memory_type`]), owned objects ([`Owned`], [`Buffer`], [`Image`]), descriptor sets
//! ([`DescriptorSet`]), compute kernels and the graphics pipeline / render pass of the
//! offscreen examples ([`pipelines`]), barrier and copy recording ([`cmd`]), FNV-1a hashing
//! ([`Fnv1a64`]), argument parsing ([`Args`]), the compute workload with its CPU reference
//! ([`workload`]) and the common `main` ([`example_main`]).
//!
//! All examples use Vulkan 1.0 core only (plus `VK_EXT_debug_utils` with `--validation`), so that
//! they run on every member and through vkfuse from its first versions.

pub mod args;
pub mod cmd;
pub mod context;
pub mod descriptors;
pub mod hash;
pub mod pipelines;
pub mod resources;
pub mod shaders;
pub mod workload;
pub mod wsi;

use std::io::Write as _;
use std::process::ExitCode;

pub use args::Args;
pub use context::{
    validation_message_count, Context, ContextDesc, DeviceContext, QueueInfo, QueuePlan,
};
pub use descriptors::{Binding, DescriptorSet};
pub use hash::{fnv1a64, Fnv1a64};
pub use pipelines::{ComputeKernel, GraphicsPipelineDesc};
pub use resources::{
    align_up, find_memory_type, subresource_range, Buffer, DeviceObject, IdleGuard, Image,
    ImageDesc, MemoryUse, Owned,
};

/// The error type of the examples.
pub type Error = Box<dyn std::error::Error>;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code: the device's results differ from the CPU reference.
pub const EXIT_MISMATCH: u8 = 1;
/// Exit code: any other error (Vulkan call failed, bad arguments, ...).
pub const EXIT_ERROR: u8 = 2;
/// Exit code: the run succeeded but the validation layer reported errors or warnings.
pub const EXIT_VALIDATION: u8 = 3;

/// Results read back from the device differ from what the CPU computed.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "result mismatch: {}", self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Adds the failing call's name to an error.
pub trait ErrorContext<T> {
    /// Maps the error to `"<what> failed: <error>"`.
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> ErrorContext<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("{what} failed: {e}").into())
    }
}

/// What a successful example prints on stdout.
#[derive(Clone, Debug)]
pub enum Report {
    /// `vkfuse-example <name> device="<device>" result=<16 hex digits>`.
    Hash {
        /// `VkPhysicalDeviceProperties::deviceName`.
        device: String,
        /// FNV-1a 64 of all read-back bytes.
        hash: u64,
    },
    /// One line of JSON (benchmarks).
    Json(String),
}

/// The final stdout line of a hashing example.
pub fn result_line(name: &str, device: &str, hash: u64) -> String {
    format!("vkfuse-example {name} device=\"{device}\" result={hash:016x}")
}

/// Common `main`: parses arguments, runs `body`, prints its report and maps the outcome to the
/// exit code (0 success, [`EXIT_MISMATCH`], [`EXIT_ERROR`], [`EXIT_VALIDATION`]).
///
/// `body` creates (and drops) its [`Context`], so validation messages about leaks at device and
/// instance destruction are counted before the exit code is chosen.
pub fn example_main(
    name: &str,
    usage: &str,
    body: impl FnOnce(Args) -> Result<Report>,
) -> ExitCode {
    let args = Args::from_env();
    if args.help {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{usage}");
        return ExitCode::SUCCESS;
    }
    let outcome = body(args);
    let messages = validation_message_count();
    let code = match outcome {
        Ok(report) => {
            let line = match report {
                Report::Hash { device, hash } => result_line(name, &device, hash),
                Report::Json(json) => json,
            };
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                eprintln!("vkfuse-example {name}: error: cannot write to stdout");
                return ExitCode::from(EXIT_ERROR);
            }
            if messages > 0 {
                EXIT_VALIDATION
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("vkfuse-example {name}: error: {e}");
            if e.is::<Mismatch>() {
                EXIT_MISMATCH
            } else {
                EXIT_ERROR
            }
        }
    };
    if messages > 0 {
        eprintln!("validation: {messages} messages");
    }
    ExitCode::from(code)
}

/// `len` pseudo-random bytes from `seed` (xorshift64; the same on every machine): test data
/// that differs per writer and round.
pub fn pattern_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Little-endian bytes of `words`.
pub fn u32_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Little-endian bytes of `floats`.
pub fn f32_bytes(floats: &[f32]) -> Vec<u8> {
    floats.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// `u32`s from little-endian bytes (a trailing partial word is ignored).
pub fn u32s_from_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `f32`s from little-endian bytes (a trailing partial word is ignored).
pub fn f32s_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Nanoseconds in `d`, saturating.
pub fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `[a,b,c]` for a JSON array of integers.
pub fn json_array(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// Median of `values` (0 for none), for the human-readable summaries on stderr.
pub fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        assert_eq!(
            result_line("compute", "llvmpipe", 0xab),
            "vkfuse-example compute device=\"llvmpipe\" result=00000000000000ab"
        );
    }

    #[test]
    fn byte_round_trips() {
        let w = [1u32, 0xdead_beef];
        assert_eq!(u32s_from_bytes(&u32_bytes(&w)), w);
        let f = [1.5f32, -0.25];
        assert_eq!(f32s_from_bytes(&f32_bytes(&f)), f);
        assert_eq!(json_array(&[1, 22]), "[1,22]");
        assert_eq!(json_array(&[]), "[]");
    }
}
