//! The FFI boundary: every entry point runs its body through one of these, so that a panic
//! becomes a logged Vulkan error instead of unwinding into the application.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ash::vk;

#[cold]
#[inline(never)]
fn panicked(name: &str, p: Box<dyn std::any::Any + Send>) {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    crate::error!("internal error in {name}: {msg}");
}

/// Runs a command that returns `VkResult`.
#[inline(always)]
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

/// Runs the part of a command that could panic (handle casts) and hands back its value; `None`
/// after an error or a panic, both logged.
#[inline(always)]
pub fn catch<T>(name: &str, f: impl FnOnce() -> Result<T, vk::Result>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            failed(name, e);
            None
        }
        Err(p) => {
            panicked(name, p);
            None
        }
    }
}

#[cold]
#[inline(never)]
fn failed(name: &str, e: vk::Result) {
    crate::warn!("{name} failed: {e:?}");
}

/// Runs a command that returns nothing.
#[inline(always)]
pub fn void(name: &str, f: impl FnOnce() -> Result<(), vk::Result>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failed(name, e),
        Err(p) => panicked(name, p),
    }
}

/// Runs a command that returns a value other than `VkResult`; errors give the default value.
#[inline(always)]
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
#[cold]
#[inline(never)]
pub fn missing(name: &str) -> vk::Result {
    crate::error!("a member does not provide {name}");
    vk::Result::ERROR_EXTENSION_NOT_PRESENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let r = result("test", || -> Result<vk::Result, vk::Result> {
            panic!("boom")
        });
        assert_eq!(r, vk::Result::ERROR_UNKNOWN);
        let v: u64 = value("test", || -> Result<u64, vk::Result> { panic!("boom") });
        assert_eq!(v, 0);
        assert_eq!(
            catch("test", || -> Result<u8, vk::Result> { panic!("boom") }),
            None
        );
        void("test", || panic!("boom"));
    }

    #[test]
    fn errors_and_values_pass_through() {
        assert_eq!(
            result("t", || Err(vk::Result::ERROR_DEVICE_LOST)),
            vk::Result::ERROR_DEVICE_LOST
        );
        assert_eq!(
            result("t", || Ok(vk::Result::INCOMPLETE)),
            vk::Result::INCOMPLETE
        );
        assert_eq!(value("t", || Ok(7u32)), 7);
        assert_eq!(catch("t", || Ok(3u8)), Some(3));
        assert_eq!(catch::<u8>("t", || Err(vk::Result::ERROR_UNKNOWN)), None);
    }
}
