//! The fused device: one member device on each member it is resident on.

use std::ffi::{c_char, CStr};

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::config::Residency;
use crate::generated::dispatch::DeviceFns;
use crate::generated::translate as tr;
use crate::object::{Device, Header, MemberDevice, PhysicalDevice, Tag};

type GetDeviceProcAddr =
    unsafe extern "system" fn(vk::Device, *const c_char) -> vk::PFN_vkVoidFunction;

/// # Safety
/// Arguments valid for `vkCreateDevice`.
pub unsafe extern "system" fn create_device(
    physical: vk::PhysicalDevice,
    ci: *const vk::DeviceCreateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::Device,
) -> vk::Result {
    crate::guard::result("vkCreateDevice", || {
        // SAFETY: a live physical device (VUID-vkCreateDevice-physicalDevice-parameter).
        let p = unsafe { PhysicalDevice::resolve(physical)? };
        if ci.is_null() || out.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: valid create info.
        let info = unsafe { &*ci };
        let mut exts = Vec::new();
        for i in 0..info.enabled_extension_count as usize {
            // SAFETY: enabledExtensionCount NUL-terminated names.
            let name = unsafe { CStr::from_ptr(*info.pp_enabled_extension_names.add(i)) }
                .to_string_lossy()
                .into_owned();
            if !p
                .fused
                .extensions
                .iter()
                .any(|e| crate::instance::ext_name(e) == name)
            {
                crate::warn!("vkCreateDevice: extension {name} is not offered by the fused device");
                return Err(vk::Result::ERROR_EXTENSION_NOT_PRESENT);
            }
            exts.push(name);
        }
        let cfg = crate::config::Config::get();
        let residency = cfg.residency;
        let resident: Vec<_> = match residency {
            Residency::All => p.members.iter().collect(),
            Residency::Primary => p.members.iter().take(1).collect(),
        };
        let arena = Arena::scope();
        let mut members: Vec<MemberDevice> = Vec::new();
        let undo = |members: &[MemberDevice]| {
            for md in members {
                if let Some(d) = md.fns.destroy_device {
                    // SAFETY: a member device we created and nobody else uses.
                    unsafe { d(md.handle, alloc) };
                }
            }
        };
        for pm in resident {
            let cx = pm.cx(&arena);
            let Some(create) = pm.fns.create_device else {
                undo(&members);
                return Err(crate::guard::missing("vkCreateDevice"));
            };
            let mut dev = vk::Device::null();
            let r = if cfg.fault("device", pm.index) {
                crate::warn!(
                    "member {}: VKFUSE_FAULT makes its vkCreateDevice fail",
                    pm.index
                );
                vk::Result::ERROR_INITIALIZATION_FAILED
            } else {
                // SAFETY: the create info is translated for this member (queue family indices,
                // handles in its chain).
                unsafe {
                    create(
                        pm.handle,
                        cx.one(ci, tr::fix_device_create_info),
                        alloc,
                        &mut dev,
                    )
                }
            };
            if r != vk::Result::SUCCESS {
                crate::warn!("member {}: vkCreateDevice failed ({r:?})", pm.index);
                undo(&members);
                return Err(r);
            }
            // SAFETY: the member's vkGetDeviceProcAddr has that type.
            let gdpa: Option<GetDeviceProcAddr> = pm
                .member
                .proc_addr(pm.instance, c"vkGetDeviceProcAddr")
                .map(|f| unsafe {
                    std::mem::transmute::<crate::generated::dispatch::VoidFn, GetDeviceProcAddr>(f)
                });
            // SAFETY: the member returns pointers of each named command's type.
            let fns = unsafe {
                DeviceFns::load(&mut |name| {
                    let g = gdpa?;
                    g(dev, name.as_ptr())
                })
            };
            members.push(MemberDevice {
                index: pm.index,
                handle: dev,
                fns,
                maps: pm.maps.clone(),
            });
        }
        let api_version = p.fused.properties.api_version;
        let device = Box::new(Device {
            header: Header::new(Tag::Device),
            physical: p,
            members,
            api_version,
            enabled_extensions: exts,
            queues: parking_lot::Mutex::new(Vec::new()),
        });
        crate::info!(
            "device created on member(s) {:?}; member {} executes",
            device.members.iter().map(|m| m.index).collect::<Vec<_>>(),
            device.members[0].index
        );
        // SAFETY: valid output pointer.
        unsafe { *out = vk::Device::from_raw(Box::into_raw(device) as u64) };
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkDestroyDevice`.
pub unsafe extern "system" fn destroy_device(
    device: vk::Device,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyDevice", || {
        if device.is_null() {
            return Ok(());
        }
        // SAFETY: a live device (VUID-vkDestroyDevice-device-parameter).
        unsafe { Device::resolve(device)? };
        // SAFETY: made by Box::into_raw in create_device; no longer used by the application.
        let dev = unsafe { Box::from_raw(device.as_raw() as *mut Device) };
        for md in &dev.members {
            if let Some(d) = md.fns.destroy_device {
                // SAFETY: the member device is ours.
                unsafe { d(md.handle, alloc) };
            }
        }
        Ok(())
    })
}
