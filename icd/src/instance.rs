//! The fused instance: one inner instance per member.

use std::ffi::{c_char, CStr};

use ash::vk;
use ash::vk::Handle as _;
use once_cell::sync::OnceCell;

use crate::generated::dispatch::InstanceFns;
use crate::generated::entry::FORWARDED_EXTENSIONS;
use crate::member::{self, Member};
use crate::object::{Header, Instance, MemberInstance, PhysicalDevice, Tag};

/// The highest API version vkfuse implements (what codegen generated).
pub const API_VERSION: u32 = vk::make_api_version(0, 1, 3, crate::generated::HEADER_VERSION);

/// Writes a list through Vulkan's two-call idiom.
///
/// # Safety
/// `count` is valid; `out` is null or has room for `*count` elements.
pub unsafe fn fill<T: Copy>(src: &[T], count: *mut u32, out: *mut T) -> vk::Result {
    if count.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    // SAFETY: caller contract (VUID-...-pPropertyCount-parameter).
    unsafe {
        if out.is_null() {
            *count = src.len() as u32;
            return vk::Result::SUCCESS;
        }
        let n = (*count as usize).min(src.len());
        std::ptr::copy_nonoverlapping(src.as_ptr(), out, n);
        *count = n as u32;
        if n < src.len() {
            vk::Result::INCOMPLETE
        } else {
            vk::Result::SUCCESS
        }
    }
}

pub fn ext_name(p: &vk::ExtensionProperties) -> String {
    // SAFETY: extensionName is NUL-terminated (VkExtensionProperties valid usage).
    unsafe { CStr::from_ptr(p.extension_name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

pub fn ext_props(name: &str, version: u32) -> vk::ExtensionProperties {
    let mut p = vk::ExtensionProperties {
        spec_version: version,
        ..Default::default()
    };
    for (d, s) in p.extension_name.iter_mut().zip(name.bytes()) {
        *d = s as c_char;
    }
    p
}

type EnumExt =
    unsafe extern "system" fn(*const c_char, *mut u32, *mut vk::ExtensionProperties) -> vk::Result;
type EnumVersion = unsafe extern "system" fn(*mut u32) -> vk::Result;
type CreateInstance = unsafe extern "system" fn(
    *const vk::InstanceCreateInfo,
    *const vk::AllocationCallbacks,
    *mut vk::Instance,
) -> vk::Result;

/// A member's instance extensions.
pub fn member_instance_extensions(m: &Member) -> Option<Vec<vk::ExtensionProperties>> {
    let f = member::global(m, c"vkEnumerateInstanceExtensionProperties")?;
    // SAFETY: the pointer is the member's vkEnumerateInstanceExtensionProperties.
    let f: EnumExt = unsafe { std::mem::transmute(f) };
    let mut n = 0;
    // SAFETY: two-call idiom with valid pointers.
    unsafe {
        if f(std::ptr::null(), &mut n, std::ptr::null_mut()) != vk::Result::SUCCESS {
            return None;
        }
        let mut v = vec![vk::ExtensionProperties::default(); n as usize];
        let r = f(std::ptr::null(), &mut n, v.as_mut_ptr());
        if r.as_raw() < 0 {
            return None;
        }
        v.truncate(n as usize);
        Some(v)
    }
}

/// Instance extensions every member offers and vkfuse forwards.
pub fn instance_extensions() -> &'static [vk::ExtensionProperties] {
    static EXTS: OnceCell<Vec<vk::ExtensionProperties>> = OnceCell::new();
    EXTS.get_or_init(|| {
        let d = member::discovery();
        let lists: Vec<Vec<vk::ExtensionProperties>> = d
            .members
            .iter()
            .filter_map(member_instance_extensions)
            .collect();
        if lists.is_empty() {
            return Vec::new();
        }
        FORWARDED_EXTENSIONS
            .iter()
            .filter(|(_, inst)| *inst)
            .filter_map(|(name, _)| {
                let versions: Option<Vec<u32>> = lists
                    .iter()
                    .map(|l| {
                        l.iter()
                            .find(|p| ext_name(p) == *name)
                            .map(|p| p.spec_version)
                    })
                    .collect();
                versions.map(|v| ext_props(name, v.into_iter().min().unwrap_or(1)))
            })
            .collect()
    })
}

/// # Safety
/// Arguments valid for `vkEnumerateInstanceExtensionProperties`.
pub unsafe extern "system" fn enumerate_instance_extension_properties(
    layer: *const c_char,
    count: *mut u32,
    props: *mut vk::ExtensionProperties,
) -> vk::Result {
    crate::guard::result("vkEnumerateInstanceExtensionProperties", || {
        if !layer.is_null() {
            return Err(vk::Result::ERROR_LAYER_NOT_PRESENT);
        }
        // SAFETY: forwarded contract.
        Ok(unsafe { fill(instance_extensions(), count, props) })
    })
}

/// # Safety
/// Arguments valid for `vkEnumerateInstanceLayerProperties`.
pub unsafe extern "system" fn enumerate_instance_layer_properties(
    count: *mut u32,
    _props: *mut vk::LayerProperties,
) -> vk::Result {
    if count.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    // SAFETY: valid pointer (VUID-vkEnumerateInstanceLayerProperties-pPropertyCount-parameter).
    unsafe { *count = 0 };
    vk::Result::SUCCESS
}

/// The lowest instance version over members, capped at what vkfuse implements.
pub fn instance_version() -> u32 {
    member::discovery()
        .members
        .iter()
        .map(member_instance_version)
        .fold(API_VERSION, u32::min)
}

/// A member's instance version (1.0 where it cannot say).
fn member_instance_version(m: &Member) -> u32 {
    match member::global(m, c"vkEnumerateInstanceVersion") {
        // SAFETY: the pointer is the member's vkEnumerateInstanceVersion.
        Some(f) => unsafe {
            let f: EnumVersion = std::mem::transmute(f);
            let mut x = 0;
            if f(&mut x) == vk::Result::SUCCESS {
                x
            } else {
                vk::API_VERSION_1_0
            }
        },
        None => vk::API_VERSION_1_0,
    }
}

/// # Safety
/// Arguments valid for `vkEnumerateInstanceVersion`.
pub unsafe extern "system" fn enumerate_instance_version(p: *mut u32) -> vk::Result {
    crate::guard::result("vkEnumerateInstanceVersion", || {
        if p.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: valid pointer (VUID-vkEnumerateInstanceVersion-pApiVersion-parameter).
        unsafe { *p = instance_version() };
        Ok(vk::Result::SUCCESS)
    })
}

/// Creates the member instances and the fused physical device. Members that fail are left out
/// with one message each.
pub fn build(app_info: Option<&vk::ApplicationInfo>, extensions: &[String]) -> Box<Instance> {
    let cfg = crate::config::Config::get();
    let d = member::discovery();
    let order = vkfuse_scheduler::placement_order(d.members.len(), cfg.primary, cfg.mask);
    if let Some(first) = order.first() {
        if *first != cfg.primary {
            crate::warn!(
                "VKFUSE_PRIMARY={} names no usable member (there are {} members{}); member {first} executes",
                cfg.primary,
                d.members.len(),
                if cfg.mask.is_some() { " and VKFUSE_MASK applies" } else { "" }
            );
        }
    }
    let names: Vec<std::ffi::CString> = extensions.iter().map(|e| member::cstring(e)).collect();
    let ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let api_version = app_info.map_or(vk::API_VERSION_1_0, |a| {
        a.api_version.max(vk::API_VERSION_1_0)
    });
    let mut members = Vec::new();
    let mut left_out = Vec::new();
    let kept = order.clone();
    for i in (0..d.members.len()).filter(|i| !kept.contains(i)) {
        left_out.push((i, "excluded by VKFUSE_MASK".to_string()));
    }
    for i in order {
        let m = &d.members[i];
        let Some(f) = member::global(m, c"vkCreateInstance") else {
            crate::warn!(
                "member {i} ({}): no vkCreateInstance; it is left out",
                m.describe()
            );
            left_out.push((i, "no vkCreateInstance".into()));
            continue;
        };
        // SAFETY: the pointer is the member's vkCreateInstance.
        let f: CreateInstance = unsafe { std::mem::transmute(f) };
        // vkfuse itself queries members with 1.1+ commands (properties2 chains): inner instances
        // use the member's own version; what the application may use is limited by the fused
        // device's version and the application's own.
        let mut app = app_info.copied().unwrap_or_default();
        app.api_version = member_instance_version(m).max(app.api_version);
        let ci = vk::InstanceCreateInfo {
            p_application_info: &app,
            enabled_extension_count: ptrs.len() as u32,
            pp_enabled_extension_names: ptrs.as_ptr(),
            ..Default::default()
        };
        let mut inst = vk::Instance::null();
        let r = if cfg.fault("instance", i) {
            crate::warn!("member {i}: VKFUSE_FAULT makes its vkCreateInstance fail");
            vk::Result::ERROR_INITIALIZATION_FAILED
        } else {
            // SAFETY: a valid create info whose pointers live across the call.
            unsafe { f(&ci, std::ptr::null(), &mut inst) }
        };
        if r != vk::Result::SUCCESS {
            crate::warn!(
                "member {i} ({}): vkCreateInstance failed ({r:?}); it is left out",
                m.describe()
            );
            left_out.push((i, format!("vkCreateInstance failed ({r:?})")));
            continue;
        }
        // SAFETY: the member returns pointers of each named command's type.
        let fns = unsafe { InstanceFns::load(&mut |name| m.proc_addr(inst, name)) };
        members.push(MemberInstance {
            index: i,
            member: m,
            handle: inst,
            fns,
        });
    }
    let mut instance = Box::new(Instance {
        header: Header::new(Tag::Instance),
        members,
        api_version,
        enabled_extensions: extensions.to_vec(),
        physical: None,
        left_out,
    });
    instance.physical = crate::physical_device::build(&mut instance);
    instance
}

/// # Safety
/// Arguments valid for `vkCreateInstance`.
pub unsafe extern "system" fn create_instance(
    ci: *const vk::InstanceCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    out: *mut vk::Instance,
) -> vk::Result {
    crate::guard::result("vkCreateInstance", || {
        if ci.is_null() || out.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: valid create info (VUID-vkCreateInstance-pCreateInfo-parameter).
        let ci = unsafe { &*ci };
        let mut exts = Vec::new();
        for i in 0..ci.enabled_extension_count as usize {
            // SAFETY: ppEnabledExtensionNames has enabledExtensionCount NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(*ci.pp_enabled_extension_names.add(i)) }
                .to_string_lossy()
                .into_owned();
            if !instance_extensions().iter().any(|p| ext_name(p) == name) {
                crate::warn!("vkCreateInstance: extension {name} is not offered by vkfuse");
                return Err(vk::Result::ERROR_EXTENSION_NOT_PRESENT);
            }
            exts.push(name);
        }
        // SAFETY: pApplicationInfo is null or valid.
        let app = unsafe { ci.p_application_info.as_ref() };
        let inst = build(app, &exts);
        // SAFETY: `out` is valid (VUID-vkCreateInstance-pInstance-parameter).
        unsafe { *out = vk::Instance::from_raw(Box::into_raw(inst) as u64) };
        Ok(vk::Result::SUCCESS)
    })
}

/// Destroys member instances and the fused objects.
pub fn teardown(inst: Box<Instance>) {
    for m in &inst.members {
        if let Some(f) = m.fns.destroy_instance {
            // SAFETY: the member instance is ours and no longer used.
            unsafe { f(m.handle, std::ptr::null()) };
        }
    }
    drop(inst);
}

/// # Safety
/// Arguments valid for `vkDestroyInstance`.
pub unsafe extern "system" fn destroy_instance(
    instance: vk::Instance,
    _alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyInstance", || {
        if instance.is_null() {
            return Ok(());
        }
        // SAFETY: a live instance (VUID-vkDestroyInstance-instance-parameter).
        unsafe { Instance::resolve(instance)? };
        // SAFETY: made by Box::into_raw in create_instance; the application no longer uses it.
        teardown(unsafe { Box::from_raw(instance.as_raw() as *mut Instance) });
        Ok(())
    })
}

fn physical(instance: vk::Instance) -> Result<Option<vk::PhysicalDevice>, vk::Result> {
    // SAFETY: a live instance (VUID-vkEnumeratePhysicalDevices-instance-parameter).
    let inst = unsafe { Instance::resolve(instance)? };
    Ok(inst
        .physical
        .as_deref()
        .map(|p| vk::PhysicalDevice::from_raw(p as *const PhysicalDevice as u64)))
}

/// # Safety
/// Arguments valid for `vkEnumeratePhysicalDevices`.
pub unsafe extern "system" fn enumerate_physical_devices(
    instance: vk::Instance,
    count: *mut u32,
    out: *mut vk::PhysicalDevice,
) -> vk::Result {
    crate::guard::result("vkEnumeratePhysicalDevices", || {
        let list: Vec<vk::PhysicalDevice> = physical(instance)?.into_iter().collect();
        // SAFETY: forwarded contract.
        Ok(unsafe { fill(&list, count, out) })
    })
}

/// # Safety
/// Arguments valid for `vkEnumeratePhysicalDeviceGroups`.
pub unsafe extern "system" fn enumerate_physical_device_groups(
    instance: vk::Instance,
    count: *mut u32,
    out: *mut vk::PhysicalDeviceGroupProperties,
) -> vk::Result {
    crate::guard::result("vkEnumeratePhysicalDeviceGroups", || {
        let Some(pd) = physical(instance)? else {
            // SAFETY: valid count pointer.
            unsafe { *count = 0 };
            return Ok(vk::Result::SUCCESS);
        };
        if count.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: two-call idiom; `out` elements are application-initialised (sType, pNext).
        unsafe {
            if out.is_null() {
                *count = 1;
                return Ok(vk::Result::SUCCESS);
            }
            if *count == 0 {
                return Ok(vk::Result::INCOMPLETE);
            }
            let g = &mut *out;
            g.physical_device_count = 1;
            g.physical_devices = [vk::PhysicalDevice::null(); vk::MAX_DEVICE_GROUP_SIZE];
            g.physical_devices[0] = pd;
            g.subset_allocation = vk::FALSE;
            *count = 1;
        }
        Ok(vk::Result::SUCCESS)
    })
}
