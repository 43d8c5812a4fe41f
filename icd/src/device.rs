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
        let multi = cfg.multi() && p.members.len() > 1;
        let residency = if multi { Residency::All } else { cfg.residency };
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
                let info = cx.one(ci, tr::fix_device_create_info) as *mut vk::DeviceCreateInfo;
                let mut extra = Extra::default();
                if multi {
                    // SAFETY: the arena copy is ours to extend.
                    unsafe { extra.apply(&arena, pm, info) };
                }
                // SAFETY: the create info is translated for this member (queue family indices,
                // handles in its chain); what `extra` chains lives until the call returns.
                unsafe { create(pm.handle, info, alloc, &mut dev) }
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
            let host_pointer_properties = if multi && pm.extensions.iter().any(|e| e == HOST_EXT) {
                gdpa.and_then(|g| {
                    // SAFETY: the member device is live; the name is NUL-terminated.
                    let f = unsafe { g(dev, c"vkGetMemoryHostPointerPropertiesEXT".as_ptr()) };
                    // SAFETY: the member returns the command's own type for this name.
                    f.map(|f| unsafe {
                        std::mem::transmute::<
                            unsafe extern "system" fn(),
                            vk::PFN_vkGetMemoryHostPointerPropertiesEXT,
                        >(f)
                    })
                })
            } else {
                None
            };
            let memory_fd = if multi && pm.extensions.iter().any(|e| e == FD_EXT) {
                gdpa.and_then(|g| {
                    // SAFETY: the member device is live; the name is NUL-terminated.
                    let f = unsafe { g(dev, c"vkGetMemoryFdKHR".as_ptr()) };
                    // SAFETY: the member returns the command's own type for this name.
                    f.map(|f| unsafe {
                        std::mem::transmute::<unsafe extern "system" fn(), vk::PFN_vkGetMemoryFdKHR>(
                            f,
                        )
                    })
                })
            } else {
                None
            };
            let semaphore_fd = if multi && crate::links::offers_fd(pm) {
                gdpa.and_then(|g| {
                    // SAFETY: the member device is live; the names are NUL-terminated.
                    let (get, import) = unsafe {
                        (
                            g(dev, c"vkGetSemaphoreFdKHR".as_ptr())?,
                            g(dev, c"vkImportSemaphoreFdKHR".as_ptr())?,
                        )
                    };
                    // SAFETY: the member returns each command's own type for its name.
                    Some(unsafe {
                        crate::links::SemaphoreFd {
                            get: std::mem::transmute::<
                                unsafe extern "system" fn(),
                                vk::PFN_vkGetSemaphoreFdKHR,
                            >(get),
                            import: std::mem::transmute::<
                                unsafe extern "system" fn(),
                                vk::PFN_vkImportSemaphoreFdKHR,
                            >(import),
                        }
                    })
                })
            } else {
                None
            };
            members.push(MemberDevice {
                index: pm.index,
                handle: dev,
                fns,
                maps: pm.maps.clone(),
                host_pointer_properties,
                memory_fd,
                semaphore_fd,
            });
        }
        let import_align = if multi {
            import_alignment(p, &members)
        } else {
            0
        };
        // The members of the primary's driver on the primary's device (`same_driver` where
        // that is all of them), and of those the ones that bind images to the application's
        // memory (one bit each): the primary, and the others where an image is all in its
        // memory.
        let primary = &p.members[0];
        let same_device =
            |md: &MemberDevice| p.member(md.index).filter(|pm| pm.same_device(primary));
        let same_driver = members.iter().all(|md| same_device(md).is_some());
        let home = members
            .iter()
            .filter(|md| {
                same_device(md).is_some_and(|pm| pm.index == primary.index || pm.images_in_memory())
            })
            .fold(0u64, |bits, md| bits | 1 << md.index);
        let fence_apart = members
            .iter()
            .filter(|md| {
                p.member(md.index)
                    .is_some_and(|pm| pm.driver_name == "llvmpipe")
            })
            .fold(0u64, |bits, md| bits | 1 << md.index);
        // The tiers between the members, by member index, for the coherence tracker: host
        // memory shared only where every member imports it (`import_align`), as allocations do.
        let mut caps = Vec::new();
        for md in &members {
            let Some(pm) = p.member(md.index) else {
                continue;
            };
            if caps.len() <= md.index {
                caps.resize(md.index + 1, vkfuse_memory::MemberCaps::default());
            }
            caps[md.index] = vkfuse_memory::MemberCaps {
                host_import: import_align != 0,
                opaque_fd: md.memory_fd.is_some(),
                driver_uuid: pm.driver_uuid,
                device_uuid: pm.device_uuid,
            };
        }
        let links = crate::links::Links::new(&members, |m| p.member(m));
        let exec = crate::exec::setup(
            &members,
            import_align,
            (same_driver, home),
            fence_apart,
            (vkfuse_memory::Topology::new(&caps), links),
        );
        let api_version = p.fused.properties.api_version;
        let device = Box::new(Device {
            header: Header::new(Tag::Device),
            physical: p,
            members,
            api_version,
            enabled_extensions: exts,
            queues: parking_lot::Mutex::new(Vec::new()),
            exec,
            staging: Default::default(),
            addresses_taken: std::sync::atomic::AtomicBool::new(false),
        });
        crate::exec::start(&device);
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
        crate::exec::teardown(&dev);
        crate::shaders::device_destroyed(&dev);
        for md in &dev.members {
            if let Some(d) = md.fns.destroy_device {
                // SAFETY: the member device is ours.
                unsafe { d(md.handle, alloc) };
            }
        }
        Ok(())
    })
}

const HOST_EXT: &str = "VK_EXT_external_memory_host";
const FD_EXT: &str = "VK_KHR_external_memory_fd";

/// What vkfuse adds to a member's device create info when batches run on several members:
/// timeline semaphores and synchronization2 (cross-member order, `exec.rs`), host query reset
/// (queries reset on another member, `exec.rs`), host-pointer import (shared host memory,
/// `device_memory.rs`), opaque-fd memory (shared device memory, same file) and semaphores
/// (`links.rs`), each where the member offers it.
#[derive(Default)]
struct Extra {
    v12: vk::PhysicalDeviceTimelineSemaphoreFeatures<'static>,
    v13: vk::PhysicalDeviceSynchronization2Features<'static>,
    reset: vk::PhysicalDeviceHostQueryResetFeatures<'static>,
}

impl Extra {
    /// # Safety
    /// `info` is an arena copy of a valid create info; `self` outlives its use.
    unsafe fn apply(
        &mut self,
        arena: &Arena,
        pm: &crate::object::PhysMember,
        info: *mut vk::DeviceCreateInfo,
    ) {
        // SAFETY: forwarded contract; the chain was copied into the arena and may be rewritten.
        unsafe {
            let info = &mut *info;
            let (mut timeline, mut sync2, mut host_reset) = (false, false, false);
            let mut p = info.p_next as *mut vk::BaseOutStructure;
            while !p.is_null() {
                match (*p).s_type {
                    vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_FEATURES => {
                        let f = &mut *(p as *mut vk::PhysicalDeviceVulkan12Features);
                        f.timeline_semaphore = vk::TRUE;
                        f.host_query_reset = vk::TRUE;
                        timeline = true;
                        host_reset = true;
                    }
                    vk::StructureType::PHYSICAL_DEVICE_HOST_QUERY_RESET_FEATURES => {
                        (*(p as *mut vk::PhysicalDeviceHostQueryResetFeatures)).host_query_reset =
                            vk::TRUE;
                        host_reset = true;
                    }
                    vk::StructureType::PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES => {
                        (*(p as *mut vk::PhysicalDeviceTimelineSemaphoreFeatures))
                            .timeline_semaphore = vk::TRUE;
                        timeline = true;
                    }
                    vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_3_FEATURES => {
                        (*(p as *mut vk::PhysicalDeviceVulkan13Features)).synchronization2 =
                            vk::TRUE;
                        sync2 = true;
                    }
                    vk::StructureType::PHYSICAL_DEVICE_SYNCHRONIZATION_2_FEATURES => {
                        (*(p as *mut vk::PhysicalDeviceSynchronization2Features))
                            .synchronization2 = vk::TRUE;
                        sync2 = true;
                    }
                    _ => {}
                }
                p = (*p).p_next;
            }
            if !timeline {
                self.v12.timeline_semaphore = vk::TRUE;
                self.v12.p_next = info.p_next as *mut _;
                info.p_next =
                    (&self.v12 as *const vk::PhysicalDeviceTimelineSemaphoreFeatures).cast();
            }
            if !host_reset {
                self.reset.host_query_reset = vk::TRUE;
                self.reset.p_next = info.p_next as *mut _;
                info.p_next =
                    (&self.reset as *const vk::PhysicalDeviceHostQueryResetFeatures).cast();
            }
            if !sync2 {
                self.v13.synchronization2 = vk::TRUE;
                self.v13.p_next = info.p_next as *mut _;
                info.p_next =
                    (&self.v13 as *const vk::PhysicalDeviceSynchronization2Features).cast();
            }
            let mut names: Vec<*const c_char> = (0..info.enabled_extension_count as usize)
                .map(|i| *info.pp_enabled_extension_names.add(i))
                .collect();
            for (ext, cname) in [
                (HOST_EXT, c"VK_EXT_external_memory_host"),
                (FD_EXT, c"VK_KHR_external_memory_fd"),
                (
                    crate::links::SEMAPHORE_FD_EXT,
                    c"VK_KHR_external_semaphore_fd",
                ),
            ] {
                let has = names
                    .iter()
                    .any(|n| CStr::from_ptr(*n).to_bytes() == ext.as_bytes());
                if !has && pm.extensions.iter().any(|e| e == ext) {
                    names.push(cname.as_ptr());
                }
            }
            let arr = arena.alloc::<*const c_char>(names.len());
            std::ptr::copy_nonoverlapping(names.as_ptr(), arr, names.len());
            info.enabled_extension_count = names.len() as u32;
            info.pp_enabled_extension_names = arr;
        }
    }
}

/// The alignment for host allocations every member imports, after a probe on each member:
/// a host page imported, mapped and read back. 0 when a member cannot (one message).
fn import_alignment(p: &PhysicalDevice, members: &[MemberDevice]) -> u64 {
    let mut align = 4096u64;
    for md in members {
        let Some(pm) = p.member(md.index) else {
            return 0;
        };
        let Some(props2) = pm.fns.get_physical_device_properties2 else {
            return 0;
        };
        let mut host = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
        let mut pr = vk::PhysicalDeviceProperties2 {
            p_next: (&mut host as *mut vk::PhysicalDeviceExternalMemoryHostPropertiesEXT).cast(),
            ..Default::default()
        };
        // SAFETY: the member's physical device; a valid output chain.
        unsafe { props2(pm.handle, &mut pr) };
        align = align.max(host.min_imported_host_pointer_alignment);
    }
    for md in members {
        if let Err(why) = probe_import(md, align) {
            crate::info!(
                "member {}: host memory cannot be shared with it ({why}); allocations are per member",
                md.index
            );
            return 0;
        }
    }
    align
}

/// Imports a host page into the member, maps it and checks that the member sees the bytes.
fn probe_import(md: &MemberDevice, align: u64) -> Result<(), String> {
    if crate::config::Config::get().fault("import", md.index) {
        return Err("VKFUSE_FAULT".into());
    }
    let (Some(map), Some(unmap), Some(free)) =
        (md.fns.map_memory, md.fns.unmap_memory, md.fns.free_memory)
    else {
        return Err("no vkMapMemory".into());
    };
    let layout = std::alloc::Layout::from_size_align(align as usize, align as usize)
        .map_err(|e| e.to_string())?;
    // SAFETY: a non-zero size.
    let host = unsafe { std::alloc::alloc_zeroed(layout) };
    if host.is_null() {
        return Err("out of host memory".into());
    }
    let pattern: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    // SAFETY: `host` has `align` ≥ 64 bytes.
    unsafe { std::ptr::copy_nonoverlapping(pattern.as_ptr(), host, pattern.len()) };
    let result = (|| {
        // SAFETY: `host` is `align` bytes, aligned to `align`, freed after the member memory.
        let mem = unsafe {
            crate::device_memory::import_host(
                md,
                host,
                align,
                None,
                std::ptr::null(),
                std::ptr::null(),
            )
        }
        .map_err(|e| e.to_string())?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the imported memory, host-visible by its type.
        let r = unsafe {
            map(
                md.handle,
                mem,
                0,
                vk::WHOLE_SIZE,
                vk::MemoryMapFlags::empty(),
                &mut ptr,
            )
        };
        let same = r == vk::Result::SUCCESS
            // SAFETY: a mapping of at least 64 bytes.
            && unsafe { std::slice::from_raw_parts(ptr as *const u8, pattern.len()) } == &pattern[..];
        // SAFETY: unmapped and freed before the host allocation is.
        unsafe {
            if r == vk::Result::SUCCESS {
                unmap(md.handle, mem);
            }
            free(md.handle, mem, std::ptr::null());
        }
        if same {
            Ok(())
        } else {
            Err(format!("the member does not see the host bytes ({r:?})"))
        }
    })();
    // SAFETY: allocated above; the member's import is freed.
    unsafe { std::alloc::dealloc(host, layout) };
    result
}
