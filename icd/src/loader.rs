//! The loader–ICD interface: the three exported functions and proc-address lookup.

#![allow(non_snake_case)] // Reason: the exported names are fixed by the loader interface.

use std::ffi::{c_char, CStr};

use ash::vk;

use crate::generated::entry::{self, Level, Req};
use crate::object::{Device, Instance};

/// Interface versions vkfuse implements (DESIGN.md: 5 to 7).
const MIN_INTERFACE: u32 = 5;
const MAX_INTERFACE: u32 = 7;

/// # Safety
/// `version` points to the loader's version (loader interface documentation).
#[no_mangle]
pub unsafe extern "system" fn vk_icdNegotiateLoaderICDInterfaceVersion(
    version: *mut u32,
) -> vk::Result {
    crate::guard::result("vk_icdNegotiateLoaderICDInterfaceVersion", || {
        if version.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: valid pointer (loader contract).
        let v = unsafe { &mut *version };
        if *v < MIN_INTERFACE {
            crate::warn!("the Vulkan loader offers interface version {}; vkfuse needs {MIN_INTERFACE} or later", *v);
            return Err(vk::Result::ERROR_INCOMPATIBLE_DRIVER);
        }
        *v = (*v).min(MAX_INTERFACE);
        Ok(vk::Result::SUCCESS)
    })
}

fn satisfied(reqs: &[Req], version: u32, exts: &[String]) -> bool {
    reqs.iter().any(|r| match r {
        Req::Core(v) => *v <= version,
        Req::Ext(e) => exts.iter().any(|x| x == e),
    })
}

fn to_pfn(f: crate::generated::dispatch::VoidFn) -> vk::PFN_vkVoidFunction {
    Some(f)
}

fn loader_export(name: &[u8]) -> vk::PFN_vkVoidFunction {
    // SAFETY: casts between function pointer types; the loader calls each through its real type.
    unsafe {
        match name {
            b"vk_icdNegotiateLoaderICDInterfaceVersion" => {
                Some(std::mem::transmute::<
                    unsafe extern "system" fn(*mut u32) -> vk::Result,
                    unsafe extern "system" fn(),
                >(vk_icdNegotiateLoaderICDInterfaceVersion))
            }
            b"vk_icdGetInstanceProcAddr" => Some(std::mem::transmute::<
                unsafe extern "system" fn(vk::Instance, *const c_char) -> vk::PFN_vkVoidFunction,
                unsafe extern "system" fn(),
            >(vk_icdGetInstanceProcAddr)),
            b"vk_icdGetPhysicalDeviceProcAddr" => Some(std::mem::transmute::<
                unsafe extern "system" fn(vk::Instance, *const c_char) -> vk::PFN_vkVoidFunction,
                unsafe extern "system" fn(),
            >(
                vk_icdGetPhysicalDeviceProcAddr
            )),
            _ => None,
        }
    }
}

/// `vkGetInstanceProcAddr` (also reached as `vk_icdGetInstanceProcAddr`).
///
/// # Safety
/// `name` is a NUL-terminated string; `instance` is null or a live vkfuse instance.
pub unsafe extern "system" fn get_instance_proc_addr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    crate::guard::value("vkGetInstanceProcAddr", || {
        if name.is_null() {
            return Ok(None);
        }
        // SAFETY: caller contract.
        let name = unsafe { CStr::from_ptr(name) };
        if let f @ Some(_) = loader_export(name.to_bytes()) {
            return Ok(f);
        }
        let Some(e) = entry::lookup(name) else {
            return Ok(None);
        };
        // vkGetInstanceProcAddr itself is answered without an instance too (spec 1.2.193).
        if e.level == Level::Global || name == c"vkGetInstanceProcAddr" {
            return Ok(to_pfn(e.pfn));
        }
        if instance == vk::Instance::null() {
            return Ok(None);
        }
        // SAFETY: caller contract.
        let inst = unsafe { Instance::resolve(instance)? };
        let version = inst.api_version.max(vk::API_VERSION_1_0);
        let version = inst.physical.as_ref().map_or(version, |p| {
            version
                .min(p.fused.properties.api_version)
                .max(vk::API_VERSION_1_0)
        });
        // Device extensions count too: their physical-device commands are instance-level.
        let device_ext = |name: &str| {
            inst.physical
                .as_ref()
                .is_some_and(|p| p.fused.extension_names.iter().any(|x| x == name))
        };
        let ok = satisfied(e.reqs, version, &inst.enabled_extensions)
            || e.reqs
                .iter()
                .any(|r| matches!(r, Req::Ext(x) if device_ext(x)));
        Ok(if ok { to_pfn(e.pfn) } else { None })
    })
}

/// # Safety
/// As for [`get_instance_proc_addr`].
#[no_mangle]
pub unsafe extern "system" fn vk_icdGetInstanceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    // SAFETY: forwarded contract.
    unsafe { get_instance_proc_addr(instance, name) }
}

/// Physical-device-level commands the loader does not know itself.
///
/// # Safety
/// As for [`get_instance_proc_addr`].
#[no_mangle]
pub unsafe extern "system" fn vk_icdGetPhysicalDeviceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    crate::guard::value("vk_icdGetPhysicalDeviceProcAddr", || {
        if name.is_null() {
            return Ok(None);
        }
        // SAFETY: caller contract.
        let e = entry::lookup(unsafe { CStr::from_ptr(name) });
        Ok(match e {
            Some(e) if e.level == Level::PhysicalDevice => {
                // SAFETY: forwarded contract.
                unsafe { get_instance_proc_addr(instance, name) }
            }
            _ => None,
        })
    })
}

/// `vkGetDeviceProcAddr`: device-level commands of the device's version and enabled extensions.
///
/// # Safety
/// `device` is a live vkfuse device; `name` is NUL-terminated.
pub unsafe extern "system" fn get_device_proc_addr(
    device: vk::Device,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    crate::guard::value("vkGetDeviceProcAddr", || {
        if name.is_null() {
            return Ok(None);
        }
        // SAFETY: caller contract.
        let (dev, name) = unsafe { (Device::resolve(device)?, CStr::from_ptr(name)) };
        let Some(e) = entry::lookup(name) else {
            return Ok(None);
        };
        if e.level != Level::Device {
            return Ok(None);
        }
        Ok(
            if satisfied(e.reqs, dev.api_version, &dev.enabled_extensions) {
                to_pfn(e.pfn)
            } else {
                None
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ash::vk::Handle as _;

    #[test]
    fn negotiation_accepts_5_to_7() {
        for (offered, agreed) in [(5, 5), (6, 6), (7, 7), (9, 7)] {
            let mut v = offered;
            // SAFETY: a valid pointer.
            let r = unsafe { vk_icdNegotiateLoaderICDInterfaceVersion(&mut v) };
            assert_eq!(r, vk::Result::SUCCESS);
            assert_eq!(v, agreed);
        }
        let mut v = 4;
        // SAFETY: a valid pointer.
        let r = unsafe { vk_icdNegotiateLoaderICDInterfaceVersion(&mut v) };
        assert_eq!(r, vk::Result::ERROR_INCOMPATIBLE_DRIVER);
        // SAFETY: null is answered with an error, not a crash.
        let r = unsafe { vk_icdNegotiateLoaderICDInterfaceVersion(std::ptr::null_mut()) };
        assert_eq!(r, vk::Result::ERROR_INITIALIZATION_FAILED);
    }

    #[test]
    fn interface_7_answers_the_loader_functions_through_gipa() {
        for name in [
            c"vk_icdNegotiateLoaderICDInterfaceVersion",
            c"vk_icdGetInstanceProcAddr",
            c"vk_icdGetPhysicalDeviceProcAddr",
        ] {
            // SAFETY: a NUL-terminated name and a null instance.
            let f = unsafe { vk_icdGetInstanceProcAddr(vk::Instance::null(), name.as_ptr()) };
            assert!(f.is_some(), "{name:?}");
        }
        // Global commands resolve without an instance; others do not.
        // SAFETY: as above.
        unsafe {
            assert!(
                vk_icdGetInstanceProcAddr(vk::Instance::null(), c"vkCreateInstance".as_ptr())
                    .is_some()
            );
            assert!(vk_icdGetInstanceProcAddr(
                vk::Instance::null(),
                c"vkGetInstanceProcAddr".as_ptr()
            )
            .is_some());
            assert!(
                vk_icdGetInstanceProcAddr(vk::Instance::null(), c"vkCmdDraw".as_ptr()).is_none()
            );
            assert!(
                vk_icdGetInstanceProcAddr(vk::Instance::null(), c"vkNotACommand".as_ptr())
                    .is_none()
            );
            assert!(vk_icdGetInstanceProcAddr(vk::Instance::null(), std::ptr::null()).is_none());
            // Only physical-device commands come from vk_icdGetPhysicalDeviceProcAddr.
            assert!(
                vk_icdGetPhysicalDeviceProcAddr(vk::Instance::null(), c"vkCmdDraw".as_ptr())
                    .is_none()
            );
        }
    }

    #[test]
    fn a_wrong_handle_is_an_error_not_a_crash() {
        let mut fake = [0u64; 8];
        fake[1] = 0x1234; // not a vkfuse tag
        let h = vk::Device::from_raw(fake.as_mut_ptr() as u64);
        // SAFETY: the fake object is readable; vkfuse must reject its tag.
        assert!(unsafe { get_device_proc_addr(h, c"vkCmdDraw".as_ptr()) }.is_none());
    }
}
