//! The FFI boundary: every entry point runs its body through one of these, so that a panic
//! becomes a logged Vulkan error instead of unwinding into the application.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ash::vk;

fn panicked(name: &str, p: Box<dyn std::any::Any + Send>) {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    crate::error!("internal error in {name}: {msg}");
}

/// Runs a command that returns `VkResult`.
pub fn result(name: &str, f: impl FnOnce() -> Result<vk::Result, vk::Result>) -> vk::Result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            crate::debug!("{name} failed: {e:?}");
            e
        }
        Err(p) => {
            panicked(name, p);
            vk::Result::ERROR_UNKNOWN
        }
    }
}

/// Runs a command that returns nothing.
pub fn void(name: &str, f: impl FnOnce() -> Result<(), vk::Result>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => crate::warn!("{name} failed: {e:?}"),
        Err(p) => panicked(name, p),
    }
}

/// Runs a command that returns a value other than `VkResult`; errors give the default value.
pub fn value<T: Default>(name: &str, f: impl FnOnce() -> Result<T, vk::Result>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            crate::warn!("{name} failed: {e:?}");
            T::default()
        }
        Err(p) => {
            panicked(name, p);
            T::default()
        }
    }
}

/// A member lacks an entry point that the fused device offers: the intersection of extensions
/// should make this impossible, so it is logged as an error.
pub fn missing(name: &str) -> vk::Result {
    crate::error!("a member does not provide {name}");
    vk::Result::ERROR_EXTENSION_NOT_PRESENT
}
