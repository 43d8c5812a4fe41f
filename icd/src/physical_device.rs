//! The fused physical device: every answer is fused over members so that the device only
//! advertises what every member can do.

use std::ffi::{c_char, c_void, CStr};

use ash::vk;

use crate::arena::Arena;
use crate::conv::MemberMaps;
use crate::generated::entry::FORWARDED_EXTENSIONS;
use crate::generated::fuse::{self, Limited, FEATURE_STRUCTS, PROPERTY_STRUCTS};
use crate::instance::{ext_name, ext_props, fill};
use crate::object::{Header, Instance, PhysMember, PhysicalDevice, Tag};

/// vkfuse's vendor id: outside the PCI range, as Khronos ids are, so no driver workaround keyed
/// on a real vendor is applied to the fused device by mistake.
pub const VENDOR_ID: u32 = 0x1_F05E;

pub struct Fused {
    pub properties: vk::PhysicalDeviceProperties,
    pub features: vk::PhysicalDeviceFeatures,
    pub queue_families: Vec<vk::QueueFamilyProperties>,
    /// Fused family → the primary's family.
    pub family_of_primary: Vec<u32>,
    pub memory: vk::PhysicalDeviceMemoryProperties,
    /// The member whose memory types and heaps the fused ones are (`vkfuse_memory::fuse`).
    pub memory_base: usize,
    pub extensions: Vec<vk::ExtensionProperties>,
    pub extension_names: Vec<String>,
    pub limited: Vec<Limited>,
    pub device_uuid: [u8; vk::UUID_SIZE],
    pub driver_uuid: [u8; vk::UUID_SIZE],
}

fn fnv(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn uuid(parts: &[[u8; 16]]) -> [u8; 16] {
    let data: Vec<u8> = parts.iter().flatten().copied().collect();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&fnv(&data, 1).to_le_bytes());
    out[8..].copy_from_slice(&fnv(&data, 2).to_le_bytes());
    out
}

fn c_name(chars: &[c_char]) -> String {
    // SAFETY: Vulkan name arrays are NUL-terminated.
    unsafe { CStr::from_ptr(chars.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn set_name(dst: &mut [c_char], s: &str) {
    dst.fill(0);
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(s.bytes().take(n)) {
        *d = b as c_char;
    }
}

struct Probe {
    handle: vk::PhysicalDevice,
    properties: vk::PhysicalDeviceProperties,
    features: vk::PhysicalDeviceFeatures,
    families: Vec<vk::QueueFamilyProperties>,
    memory: vk::PhysicalDeviceMemoryProperties,
    extensions: Vec<vk::ExtensionProperties>,
    device_uuid: [u8; 16],
    driver_uuid: [u8; 16],
    driver_name: String,
    driver_id: vk::DriverId,
}

fn probe(mi: &crate::object::MemberInstance) -> Result<Probe, String> {
    let f = &mi.fns;
    let enumerate = f
        .enumerate_physical_devices
        .ok_or("no vkEnumeratePhysicalDevices")?;
    let mut n = 0;
    // SAFETY: two-call idiom on the member's own instance.
    let r = unsafe { enumerate(mi.handle, &mut n, std::ptr::null_mut()) };
    if r != vk::Result::SUCCESS {
        return Err(format!("vkEnumeratePhysicalDevices failed ({r:?})"));
    }
    if n == 0 {
        return Err(NO_DEVICE.into());
    }
    let mut devs = vec![vk::PhysicalDevice::null(); n as usize];
    // SAFETY: as above.
    let r = unsafe { enumerate(mi.handle, &mut n, devs.as_mut_ptr()) };
    if r.as_raw() < 0 {
        return Err(format!("vkEnumeratePhysicalDevices failed ({r:?})"));
    }
    if n > 1 {
        crate::info!(
            "member {}: using the first of its {n} physical devices",
            mi.index
        );
    }
    let pd = devs[0];
    let mut p = Probe {
        handle: pd,
        properties: Default::default(),
        features: Default::default(),
        families: Vec::new(),
        memory: Default::default(),
        extensions: Vec::new(),
        device_uuid: [0; 16],
        driver_uuid: [0; 16],
        driver_name: String::new(),
        driver_id: vk::DriverId::default(),
    };
    // SAFETY: queries on the member's physical device with valid output pointers.
    unsafe {
        (f.get_physical_device_properties
            .ok_or("no vkGetPhysicalDeviceProperties")?)(pd, &mut p.properties);
        (f.get_physical_device_features
            .ok_or("no vkGetPhysicalDeviceFeatures")?)(pd, &mut p.features);
        (f.get_physical_device_memory_properties
            .ok_or("no vkGetPhysicalDeviceMemoryProperties")?)(pd, &mut p.memory);
        let qf = f
            .get_physical_device_queue_family_properties
            .ok_or("no vkGetPhysicalDeviceQueueFamilyProperties")?;
        let mut n = 0;
        qf(pd, &mut n, std::ptr::null_mut());
        p.families = vec![Default::default(); n as usize];
        qf(pd, &mut n, p.families.as_mut_ptr());
        let ee = f
            .enumerate_device_extension_properties
            .ok_or("no vkEnumerateDeviceExtensionProperties")?;
        let mut n = 0;
        if ee(pd, std::ptr::null(), &mut n, std::ptr::null_mut()) != vk::Result::SUCCESS {
            return Err("vkEnumerateDeviceExtensionProperties failed".into());
        }
        p.extensions = vec![Default::default(); n as usize];
        if ee(pd, std::ptr::null(), &mut n, p.extensions.as_mut_ptr()).as_raw() < 0 {
            return Err("vkEnumerateDeviceExtensionProperties failed".into());
        }
        p.extensions.truncate(n as usize);
        if let Some(p2) = f.get_physical_device_properties2 {
            let mut driver = vk::PhysicalDeviceDriverProperties::default();
            // Driver properties are core in 1.2; older members need the extension.
            let has_driver = p.properties.api_version >= vk::API_VERSION_1_2
                || p.extensions
                    .iter()
                    .any(|e| ext_name(e) == "VK_KHR_driver_properties");
            let mut id = vk::PhysicalDeviceIDProperties::default();
            if has_driver {
                id.p_next = (&mut driver as *mut vk::PhysicalDeviceDriverProperties).cast();
            }
            let mut props2 = vk::PhysicalDeviceProperties2 {
                p_next: (&mut id as *mut vk::PhysicalDeviceIDProperties).cast(),
                ..Default::default()
            };
            p2(pd, &mut props2);
            p.device_uuid = id.device_uuid;
            p.driver_uuid = id.driver_uuid;
            p.driver_name = c_name(&driver.driver_name);
            p.driver_id = driver.driver_id;
        }
    }
    Ok(p)
}

/// Why a driver that loads is left out when it finds no device.
pub const NO_DEVICE: &str = "the driver finds no device on this machine";

/// Queue capabilities vkfuse forwards; video and vendor queue kinds are not offered.
const QUEUE_FLAGS: vk::QueueFlags = vk::QueueFlags::from_raw(
    vk::QueueFlags::GRAPHICS.as_raw()
        | vk::QueueFlags::COMPUTE.as_raw()
        | vk::QueueFlags::TRANSFER.as_raw()
        | vk::QueueFlags::SPARSE_BINDING.as_raw()
        | vk::QueueFlags::PROTECTED.as_raw(),
);

fn family_ok(have: vk::QueueFlags, want: vk::QueueFlags) -> bool {
    // Sparse binding and protected memory are not required of the other members' families:
    // they are features, and fused features say whether they may be used.
    let want = want & QUEUE_FLAGS & !(vk::QueueFlags::SPARSE_BINDING | vk::QueueFlags::PROTECTED);
    have.contains(want)
}

/// Builds the fused physical device from the instance's members; `None` with zero members.
pub fn build(inst: &mut Instance) -> Option<Box<PhysicalDevice>> {
    let inst_ptr: *const Instance = inst;
    let mut probes = Vec::new();
    let mut left_out = Vec::new();
    for mi in &inst.members {
        match probe(mi) {
            Ok(p) => probes.push((mi, p)),
            Err(e) => {
                // A driver without its hardware on this machine is normal, not worth a warning.
                if e == NO_DEVICE {
                    crate::info!(
                        "member {} ({}): {e}; it is left out",
                        mi.index,
                        mi.member.describe()
                    );
                } else {
                    crate::warn!(
                        "member {} ({}): {e}; it is left out",
                        mi.index,
                        mi.member.describe()
                    );
                }
                left_out.push((mi.index, e));
            }
        }
    }
    inst.left_out.extend(left_out);
    let (_, base) = probes.first()?;
    let mut limited = Vec::new();
    let mut properties = base.properties;
    let mut features = base.features;
    for (mi, p) in probes.iter().skip(1) {
        fuse::fuse_physical_device_properties(
            &mut properties,
            &p.properties,
            mi.index,
            &mut limited,
        );
        fuse::fuse_physical_device_limits(
            &mut properties.limits,
            &p.properties.limits,
            mi.index,
            &mut limited,
        );
        properties.api_version = properties.api_version.min(p.properties.api_version);
        let a = (&mut features as *mut vk::PhysicalDeviceFeatures).cast::<vk::Bool32>();
        let b = (&p.features as *const vk::PhysicalDeviceFeatures).cast::<vk::Bool32>();
        let n = std::mem::size_of::<vk::PhysicalDeviceFeatures>() / 4;
        for i in 0..n {
            // SAFETY: VkPhysicalDeviceFeatures is exactly `n` VkBool32 members.
            unsafe { *a.add(i) &= *b.add(i) };
        }
    }
    properties.api_version = properties.api_version.min(crate::instance::API_VERSION);
    // Queue families: a fused family for each primary family that every member can match.
    let mut queue_families = Vec::new();
    let mut family_of_primary = Vec::new();
    let mut qmaps: Vec<Vec<u32>> = vec![Vec::new(); probes.len()];
    // Each member family stands for at most one fused family: a device create info names a
    // family once, so two fused families may not land on one member family.
    let mut used: Vec<Vec<bool>> = probes
        .iter()
        .map(|(_, p)| vec![false; p.families.len()])
        .collect();
    for (i, fam) in base.families.iter().enumerate() {
        let mut fused = *fam;
        fused.queue_flags &= QUEUE_FLAGS;
        if (fused.queue_flags & !(vk::QueueFlags::SPARSE_BINDING | vk::QueueFlags::PROTECTED))
            .is_empty()
        {
            continue;
        }
        let mut picks = vec![i as u32];
        for (k, (_, p)) in probes.iter().enumerate().skip(1) {
            // The closest match: every wanted capability, then the fewest extra ones.
            let Some((j, other)) = p
                .families
                .iter()
                .enumerate()
                .filter(|(j, f)| !used[k][*j] && family_ok(f.queue_flags, fused.queue_flags))
                .min_by_key(|(j, f)| {
                    (
                        (f.queue_flags & !fused.queue_flags & QUEUE_FLAGS)
                            .as_raw()
                            .count_ones(),
                        *j,
                    )
                })
            else {
                break;
            };
            used[k][j] = true;
            // Sparse binding and protected submission remain only where every member has them.
            let optional = vk::QueueFlags::SPARSE_BINDING | vk::QueueFlags::PROTECTED;
            fused.queue_flags &= other.queue_flags | !optional;
            fused.queue_count = fused.queue_count.min(other.queue_count);
            fused.timestamp_valid_bits = fused.timestamp_valid_bits.min(other.timestamp_valid_bits);
            let g = &mut fused.min_image_transfer_granularity;
            let o = other.min_image_transfer_granularity;
            g.width = g.width.max(o.width);
            g.height = g.height.max(o.height);
            g.depth = g.depth.max(o.depth);
            picks.push(j as u32);
        }
        if picks.len() != probes.len() {
            continue;
        }
        for (m, p) in picks.into_iter().enumerate() {
            qmaps[m].push(p);
        }
        queue_families.push(fused);
        family_of_primary.push(i as u32);
    }
    // Memory types and heaps.
    let mem_props: Vec<vkfuse_memory::MemProps> = probes
        .iter()
        .map(|(_, p)| vkfuse_memory::MemProps {
            types: p.memory.memory_types[..p.memory.memory_type_count as usize]
                .iter()
                .map(|t| vkfuse_memory::MemType {
                    flags: t.property_flags.as_raw(),
                    heap: t.heap_index,
                })
                .collect(),
            heaps: p.memory.memory_heaps[..p.memory.memory_heap_count as usize]
                .iter()
                .map(|h| vkfuse_memory::Heap {
                    size: h.size,
                    flags: h.flags.as_raw(),
                })
                .collect(),
        })
        .collect();
    let fm = vkfuse_memory::fuse(&mem_props);
    let mut memory = vk::PhysicalDeviceMemoryProperties {
        memory_type_count: fm.props.types.len() as u32,
        memory_heap_count: fm.props.heaps.len() as u32,
        ..Default::default()
    };
    for (d, t) in memory.memory_types.iter_mut().zip(&fm.props.types) {
        *d = vk::MemoryType {
            property_flags: vk::MemoryPropertyFlags::from_raw(t.flags),
            heap_index: t.heap,
        };
    }
    for (d, h) in memory.memory_heaps.iter_mut().zip(&fm.props.heaps) {
        *d = vk::MemoryHeap {
            size: h.size,
            flags: vk::MemoryHeapFlags::from_raw(h.flags),
        };
    }
    // Extensions: the intersection, restricted to what vkfuse forwards.
    let extensions: Vec<vk::ExtensionProperties> = FORWARDED_EXTENSIONS
        .iter()
        .filter(|(_, inst)| !*inst)
        .filter_map(|(name, _)| {
            let v: Option<Vec<u32>> = probes
                .iter()
                .map(|(_, p)| {
                    p.extensions
                        .iter()
                        .find(|e| ext_name(e) == *name)
                        .map(|e| e.spec_version)
                })
                .collect();
            v.map(|v| ext_props(name, v.into_iter().min().unwrap_or(1)))
        })
        .collect();
    // Identity.
    let names: Vec<String> = probes
        .iter()
        .map(|(_, p)| c_name(&p.properties.device_name))
        .collect();
    set_name(
        &mut properties.device_name,
        &format!("vkfuse ({})", names.join(" + ")),
    );
    properties.vendor_id = VENDOR_ID;
    let ids: Vec<[u8; 16]> = probes
        .iter()
        .map(|(_, p)| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&p.properties.vendor_id.to_le_bytes());
            b[4..8].copy_from_slice(&p.properties.device_id.to_le_bytes());
            b
        })
        .collect();
    properties.device_id = u32::from_le_bytes(uuid(&ids)[..4].try_into().unwrap_or([0; 4]));
    properties.driver_version = vk::make_api_version(0, 0, 1, 0);
    let caches: Vec<[u8; 16]> = probes
        .iter()
        .map(|(_, p)| p.properties.pipeline_cache_uuid)
        .collect();
    properties.pipeline_cache_uuid = uuid(&caches);
    let device_uuid = uuid(
        &probes
            .iter()
            .map(|(_, p)| p.device_uuid)
            .collect::<Vec<_>>(),
    );
    let driver_uuid = uuid(
        &probes
            .iter()
            .map(|(_, p)| p.driver_uuid)
            .collect::<Vec<_>>(),
    );
    let members = probes
        .iter()
        .enumerate()
        .map(|(k, (mi, p))| PhysMember {
            index: mi.index,
            member: mi.member,
            handle: p.handle,
            instance: mi.handle,
            fns: mi.fns,
            maps: MemberMaps {
                queue_family: qmaps[k].clone(),
                memory_type: fm.maps[k].clone(),
                // Members are in placement order: the first executes.
                executes: k == 0,
            },
            properties: p.properties,
            extensions: p.extensions.iter().map(ext_name).collect(),
            name: names[k].clone(),
            driver_name: p.driver_name.clone(),
            driver_id: p.driver_id,
            device_uuid: p.device_uuid,
            driver_uuid: p.driver_uuid,
        })
        .collect();
    Some(Box::new(PhysicalDevice {
        header: Header::new(Tag::PhysicalDevice),
        instance: inst_ptr,
        members,
        fused: Fused {
            properties,
            features,
            queue_families,
            family_of_primary,
            memory,
            memory_base: fm.base,
            extension_names: extensions.iter().map(ext_name).collect(),
            extensions,
            limited,
            device_uuid,
            driver_uuid,
        },
    }))
}

/// Copies an output pNext chain for another member: nodes of known size are duplicated (with
/// sType, zeroed contents), unknown ones left out.
fn shadow_chain(
    arena: &Arena,
    mut p: *const c_void,
    size_of: impl Fn(vk::StructureType) -> Option<usize>,
) -> *mut c_void {
    let mut head: *mut c_void = std::ptr::null_mut();
    let mut tail: *mut vk::BaseOutStructure = std::ptr::null_mut();
    while !p.is_null() {
        // SAFETY: chain nodes start with sType/pNext.
        let base = unsafe { &*(p as *const vk::BaseOutStructure) };
        if let Some(size) = size_of(base.s_type) {
            let node = arena.alloc::<u8>(size);
            // SAFETY: fresh arena room of `size` bytes.
            unsafe {
                std::ptr::write_bytes(node, 0, size);
                let n = node as *mut vk::BaseOutStructure;
                (*n).s_type = base.s_type;
                if tail.is_null() {
                    head = n.cast();
                } else {
                    (*tail).p_next = n;
                }
                tail = n;
            }
        }
        p = base.p_next as *const c_void;
    }
    head
}

/// Walks two parallel chains made by [`shadow_chain`], calling `f` on nodes of the same type.
fn zip_chain(
    app: *mut c_void,
    shadow: *mut c_void,
    mut f: impl FnMut(vk::StructureType, *mut c_void, *const c_void),
) {
    let mut a = app as *mut vk::BaseOutStructure;
    let mut s = shadow as *mut vk::BaseOutStructure;
    while !a.is_null() && !s.is_null() {
        // SAFETY: both are valid chains; the shadow holds a subset of the app's nodes in order.
        unsafe {
            if (*a).s_type == (*s).s_type {
                f((*a).s_type, a.cast(), s.cast());
                s = (*s).p_next;
            }
            a = (*a).p_next;
        }
    }
}

fn prop_size(t: vk::StructureType) -> Option<usize> {
    PROPERTY_STRUCTS
        .iter()
        .find(|p| p.s_type == t)
        .map(|p| p.size)
}

fn feature_size(t: vk::StructureType) -> Option<usize> {
    FEATURE_STRUCTS
        .iter()
        .find(|p| p.s_type == t)
        .map(|p| p.size)
}

fn pd<'a>(h: vk::PhysicalDevice) -> Result<&'a PhysicalDevice, vk::Result> {
    // SAFETY: the application passes a live physical device (valid usage of every query).
    unsafe { PhysicalDevice::resolve(h) }
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceProperties`.
pub unsafe extern "system" fn get_properties(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceProperties", || {
        // SAFETY: valid output pointer.
        unsafe { *out = pd(h)?.fused.properties };
        Ok(())
    })
}

fn patch_identity(p: &PhysicalDevice, t: vk::StructureType, node: *mut c_void) {
    let f = &p.fused;
    let info = format!(
        "members: {}",
        p.members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    );
    // SAFETY: `node` is a struct of type `t`.
    unsafe {
        match t {
            vk::StructureType::PHYSICAL_DEVICE_ID_PROPERTIES => {
                let n = &mut *(node as *mut vk::PhysicalDeviceIDProperties);
                n.device_uuid = f.device_uuid;
                n.driver_uuid = f.driver_uuid;
                n.device_luid_valid = vk::FALSE;
                n.device_node_mask = 0;
            }
            vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES => {
                let n = &mut *(node as *mut vk::PhysicalDeviceVulkan11Properties);
                n.device_uuid = f.device_uuid;
                n.driver_uuid = f.driver_uuid;
                n.device_luid_valid = vk::FALSE;
                n.device_node_mask = 0;
            }
            vk::StructureType::PHYSICAL_DEVICE_DRIVER_PROPERTIES => {
                let n = &mut *(node as *mut vk::PhysicalDeviceDriverProperties);
                set_name(&mut n.driver_name, "vkfuse");
                set_name(&mut n.driver_info, &info);
            }
            vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES => {
                let n = &mut *(node as *mut vk::PhysicalDeviceVulkan12Properties);
                set_name(&mut n.driver_name, "vkfuse");
                set_name(&mut n.driver_info, &info);
            }
            _ => {}
        }
    }
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceProperties2`.
pub unsafe extern "system" fn get_properties2(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceProperties2,
) {
    crate::guard::void("vkGetPhysicalDeviceProperties2", || {
        let p = pd(h)?;
        let arena = Arena::scope();
        let first = &p.members[0];
        let f = first
            .fns
            .get_physical_device_properties2
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceProperties2"))?;
        // SAFETY: the application's chain only holds structs of extensions vkfuse advertises,
        // which every member offers.
        unsafe { f(first.handle, out) };
        let mut lim = Vec::new();
        for m in p.members.iter().skip(1) {
            // SAFETY: `out` is a valid chain.
            let shadow = shadow_chain(&arena, unsafe { (*out).p_next }, prop_size);
            let mut o = vk::PhysicalDeviceProperties2 {
                p_next: shadow,
                ..Default::default()
            };
            let Some(g) = m.fns.get_physical_device_properties2 else {
                continue;
            };
            // SAFETY: a chain of zeroed structs of known types.
            unsafe { g(m.handle, &mut o) };
            // SAFETY: as above.
            zip_chain(unsafe { (*out).p_next }, shadow, |t, a, b| unsafe {
                fuse::fuse_properties_node(t, a, b, m.index, &mut lim);
            });
        }
        // SAFETY: valid output.
        unsafe {
            (*out).properties = p.fused.properties;
            zip_chain((*out).p_next, (*out).p_next, |t, a, _| {
                patch_identity(p, t, a)
            });
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceFeatures`.
pub unsafe extern "system" fn get_features(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceFeatures,
) {
    crate::guard::void("vkGetPhysicalDeviceFeatures", || {
        // SAFETY: valid output pointer.
        unsafe { *out = pd(h)?.fused.features };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceFeatures2`.
pub unsafe extern "system" fn get_features2(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceFeatures2,
) {
    crate::guard::void("vkGetPhysicalDeviceFeatures2", || {
        let p = pd(h)?;
        let arena = Arena::scope();
        let first = &p.members[0];
        let f = first
            .fns
            .get_physical_device_features2
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceFeatures2"))?;
        // SAFETY: see get_properties2.
        unsafe { f(first.handle, out) };
        for m in p.members.iter().skip(1) {
            // SAFETY: `out` is a valid chain.
            let shadow = shadow_chain(&arena, unsafe { (*out).p_next }, feature_size);
            let mut o = vk::PhysicalDeviceFeatures2 {
                p_next: shadow,
                ..Default::default()
            };
            let Some(g) = m.fns.get_physical_device_features2 else {
                continue;
            };
            // SAFETY: a chain of zeroed structs of known types.
            unsafe { g(m.handle, &mut o) };
            // SAFETY: both nodes are feature structs of the same type: VkBool32s after the header.
            zip_chain(unsafe { (*out).p_next }, shadow, |t, a, b| unsafe {
                if let Some(fs) = FEATURE_STRUCTS.iter().find(|fs| fs.s_type == t) {
                    let off = std::mem::size_of::<vk::BaseOutStructure>();
                    let a = (a as *mut u8).add(off) as *mut vk::Bool32;
                    let b = (b as *const u8).add(off) as *const vk::Bool32;
                    for i in 0..fs.bools {
                        *a.add(i) &= *b.add(i);
                    }
                }
            });
        }
        // SAFETY: valid output.
        unsafe { (*out).features = p.fused.features };
        Ok(())
    })
}

/// Fused format features: AND over members.
fn format_properties(p: &PhysicalDevice, format: vk::Format) -> vk::FormatProperties {
    let mut acc: Option<vk::FormatProperties> = None;
    for m in &p.members {
        let mut fp = vk::FormatProperties::default();
        if let Some(f) = m.fns.get_physical_device_format_properties {
            // SAFETY: valid output.
            unsafe { f(m.handle, format, &mut fp) };
        }
        acc = Some(match acc {
            None => fp,
            Some(a) => vk::FormatProperties {
                linear_tiling_features: a.linear_tiling_features & fp.linear_tiling_features,
                optimal_tiling_features: a.optimal_tiling_features & fp.optimal_tiling_features,
                buffer_features: a.buffer_features & fp.buffer_features,
            },
        });
    }
    acc.unwrap_or_default()
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceFormatProperties`.
pub unsafe extern "system" fn get_format_properties(
    h: vk::PhysicalDevice,
    format: vk::Format,
    out: *mut vk::FormatProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceFormatProperties", || {
        // SAFETY: valid output pointer.
        unsafe { *out = format_properties(pd(h)?, format) };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceFormatProperties2`.
pub unsafe extern "system" fn get_format_properties2(
    h: vk::PhysicalDevice,
    format: vk::Format,
    out: *mut vk::FormatProperties2,
) {
    crate::guard::void("vkGetPhysicalDeviceFormatProperties2", || {
        let p = pd(h)?;
        let first = &p.members[0];
        let f = first
            .fns
            .get_physical_device_format_properties2
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceFormatProperties2"))?;
        // SAFETY: see get_properties2.
        unsafe { f(first.handle, format, out) };
        for m in p.members.iter().skip(1) {
            let Some(g) = m.fns.get_physical_device_format_properties2 else {
                continue;
            };
            let mut f3 = vk::FormatProperties3::default();
            let mut o = vk::FormatProperties2 {
                p_next: (&mut f3 as *mut vk::FormatProperties3).cast(),
                ..Default::default()
            };
            // SAFETY: valid chain.
            unsafe { g(m.handle, format, &mut o) };
            zip_chain(
                // SAFETY: valid chain.
                unsafe { (*out).p_next },
                (&mut f3 as *mut vk::FormatProperties3).cast(),
                // SAFETY: both nodes are VkFormatProperties3.
                |_, a, b| unsafe {
                    let a = &mut *(a as *mut vk::FormatProperties3);
                    let b = &*(b as *const vk::FormatProperties3);
                    a.linear_tiling_features &= b.linear_tiling_features;
                    a.optimal_tiling_features &= b.optimal_tiling_features;
                    a.buffer_features &= b.buffer_features;
                },
            );
        }
        // SAFETY: valid output.
        unsafe { (*out).format_properties = format_properties(p, format) };
        Ok(())
    })
}

fn fuse_image_format(a: &mut vk::ImageFormatProperties, b: &vk::ImageFormatProperties) {
    a.max_extent.width = a.max_extent.width.min(b.max_extent.width);
    a.max_extent.height = a.max_extent.height.min(b.max_extent.height);
    a.max_extent.depth = a.max_extent.depth.min(b.max_extent.depth);
    a.max_mip_levels = a.max_mip_levels.min(b.max_mip_levels);
    a.max_array_layers = a.max_array_layers.min(b.max_array_layers);
    a.sample_counts &= b.sample_counts;
    a.max_resource_size = a.max_resource_size.min(b.max_resource_size);
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceImageFormatProperties`.
pub unsafe extern "system" fn get_image_format_properties(
    h: vk::PhysicalDevice,
    format: vk::Format,
    ty: vk::ImageType,
    tiling: vk::ImageTiling,
    usage: vk::ImageUsageFlags,
    flags: vk::ImageCreateFlags,
    out: *mut vk::ImageFormatProperties,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceImageFormatProperties", || {
        let p = pd(h)?;
        let mut acc: Option<vk::ImageFormatProperties> = None;
        for m in &p.members {
            let f = m
                .fns
                .get_physical_device_image_format_properties
                .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceImageFormatProperties"))?;
            let mut o = vk::ImageFormatProperties::default();
            // SAFETY: valid output.
            let r = unsafe { f(m.handle, format, ty, tiling, usage, flags, &mut o) };
            if r != vk::Result::SUCCESS {
                // SAFETY: valid output; unsupported combinations report zeroes (vkGetPhysicalDeviceImageFormatProperties).
                unsafe { *out = vk::ImageFormatProperties::default() };
                return Err(r);
            }
            match &mut acc {
                None => acc = Some(o),
                Some(a) => fuse_image_format(a, &o),
            }
        }
        // SAFETY: valid output.
        unsafe { *out = acc.unwrap_or_default() };
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceImageFormatProperties2`.
pub unsafe extern "system" fn get_image_format_properties2(
    h: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceImageFormatInfo2,
    out: *mut vk::ImageFormatProperties2,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceImageFormatProperties2", || {
        let p = pd(h)?;
        if asks_external_handle(info) {
            // SAFETY: valid output; unsupported combinations report zeroes.
            unsafe { (*out).image_format_properties = vk::ImageFormatProperties::default() };
            return Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED);
        }
        let first = &p.members[0];
        let f = first
            .fns
            .get_physical_device_image_format_properties2
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceImageFormatProperties2"))?;
        // SAFETY: the input holds no handles or per-member indices; the output chain is the app's.
        let r = unsafe { f(first.handle, info, out) };
        if r != vk::Result::SUCCESS {
            // SAFETY: valid output; unsupported combinations report zeroes.
            unsafe { (*out).image_format_properties = vk::ImageFormatProperties::default() };
            return Err(r);
        }
        for m in p.members.iter().skip(1) {
            let g = m
                .fns
                .get_physical_device_image_format_properties2
                .ok_or_else(|| {
                    crate::guard::missing("vkGetPhysicalDeviceImageFormatProperties2")
                })?;
            let mut o = vk::ImageFormatProperties2::default();
            // SAFETY: as above, with a bare output.
            let r = unsafe { g(m.handle, info, &mut o) };
            if r != vk::Result::SUCCESS {
                // SAFETY: valid output; unsupported combinations report zeroes.
                unsafe { (*out).image_format_properties = vk::ImageFormatProperties::default() };
                return Err(r);
            }
            // SAFETY: valid output.
            fuse_image_format(
                unsafe { &mut (*out).image_format_properties },
                &o.image_format_properties,
            );
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceQueueFamilyProperties`.
pub unsafe extern "system" fn get_queue_family_properties(
    h: vk::PhysicalDevice,
    count: *mut u32,
    out: *mut vk::QueueFamilyProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceQueueFamilyProperties", || {
        // SAFETY: forwarded contract.
        let _ = unsafe { fill(&pd(h)?.fused.queue_families, count, out) };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceQueueFamilyProperties2`.
pub unsafe extern "system" fn get_queue_family_properties2(
    h: vk::PhysicalDevice,
    count: *mut u32,
    out: *mut vk::QueueFamilyProperties2,
) {
    crate::guard::void("vkGetPhysicalDeviceQueueFamilyProperties2", || {
        let p = pd(h)?;
        let fams = &p.fused.queue_families;
        // SAFETY: two-call idiom on valid pointers.
        unsafe {
            if out.is_null() {
                *count = fams.len() as u32;
                return Ok(());
            }
            let n = (*count as usize).min(fams.len());
            // The primary fills the application's extension structs of the families it maps to.
            let first = &p.members[0];
            if let Some(f) = first.fns.get_physical_device_queue_family_properties2 {
                let mut pn = 0;
                f(first.handle, &mut pn, std::ptr::null_mut());
                let mut tmp = vec![vk::QueueFamilyProperties2::default(); pn as usize];
                for i in 0..n {
                    if let Some(t) = tmp.get_mut(p.fused.family_of_primary[i] as usize) {
                        t.p_next = (*out.add(i)).p_next;
                    }
                }
                f(first.handle, &mut pn, tmp.as_mut_ptr());
            }
            for (i, fam) in fams.iter().enumerate().take(n) {
                (*out.add(i)).queue_family_properties = *fam;
            }
            *count = n as u32;
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceMemoryProperties`.
pub unsafe extern "system" fn get_memory_properties(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceMemoryProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceMemoryProperties", || {
        // SAFETY: valid output pointer.
        unsafe { *out = pd(h)?.fused.memory };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceMemoryProperties2`.
pub unsafe extern "system" fn get_memory_properties2(
    h: vk::PhysicalDevice,
    out: *mut vk::PhysicalDeviceMemoryProperties2,
) {
    crate::guard::void("vkGetPhysicalDeviceMemoryProperties2", || {
        let p = pd(h)?;
        let base = p.members.get(p.fused.memory_base).or(p.members.first());
        if let Some((f, base)) =
            base.and_then(|b| Some((b.fns.get_physical_device_memory_properties2?, b)))
        {
            // SAFETY: the member whose heaps the fused ones are fills the application's
            // extension structs (heap numbering is its own).
            unsafe { f(base.handle, out) };
        }
        // SAFETY: valid output.
        unsafe { (*out).memory_properties = p.fused.memory };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkEnumerateDeviceExtensionProperties`.
pub unsafe extern "system" fn enumerate_device_extension_properties(
    h: vk::PhysicalDevice,
    layer: *const c_char,
    count: *mut u32,
    out: *mut vk::ExtensionProperties,
) -> vk::Result {
    crate::guard::result("vkEnumerateDeviceExtensionProperties", || {
        if !layer.is_null() {
            return Err(vk::Result::ERROR_LAYER_NOT_PRESENT);
        }
        // SAFETY: forwarded contract.
        Ok(unsafe { fill(&pd(h)?.fused.extensions, count, out) })
    })
}

/// # Safety
/// Arguments valid for `vkEnumerateDeviceLayerProperties`.
pub unsafe extern "system" fn enumerate_device_layer_properties(
    _h: vk::PhysicalDevice,
    count: *mut u32,
    _out: *mut vk::LayerProperties,
) -> vk::Result {
    if count.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    // SAFETY: valid pointer.
    unsafe { *count = 0 };
    vk::Result::SUCCESS
}

/// The fused device's name, as the application sees it.
pub fn device_name(p: &PhysicalDevice) -> String {
    c_name(&p.fused.properties.device_name)
}

// External handles: vkfuse offers no external memory, semaphore or fence handle types (they
// would hand out one member's object as the fused device's; codegen/extensions.txt), so the
// core 1.1 queries answer "not supported" for every handle type instead of a member's answer.

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceExternalBufferProperties`.
pub unsafe extern "system" fn get_external_buffer_properties(
    h: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceExternalBufferInfo,
    out: *mut vk::ExternalBufferProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceExternalBufferProperties", || {
        pd(h)?;
        // SAFETY: valid input and output (VUID-vkGetPhysicalDeviceExternalBufferProperties-*).
        unsafe {
            (*out).external_memory_properties = vk::ExternalMemoryProperties {
                external_memory_features: vk::ExternalMemoryFeatureFlags::empty(),
                export_from_imported_handle_types: vk::ExternalMemoryHandleTypeFlags::empty(),
                compatible_handle_types: vk::ExternalMemoryHandleTypeFlags::from_raw(
                    (*info).handle_type.as_raw(),
                ),
            };
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceExternalFenceProperties`.
pub unsafe extern "system" fn get_external_fence_properties(
    h: vk::PhysicalDevice,
    _info: *const vk::PhysicalDeviceExternalFenceInfo,
    out: *mut vk::ExternalFenceProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceExternalFenceProperties", || {
        pd(h)?;
        // SAFETY: valid output.
        let o = unsafe { &mut *out };
        o.export_from_imported_handle_types = vk::ExternalFenceHandleTypeFlags::empty();
        o.compatible_handle_types = vk::ExternalFenceHandleTypeFlags::empty();
        o.external_fence_features = vk::ExternalFenceFeatureFlags::empty();
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceExternalSemaphoreProperties`.
pub unsafe extern "system" fn get_external_semaphore_properties(
    h: vk::PhysicalDevice,
    _info: *const vk::PhysicalDeviceExternalSemaphoreInfo,
    out: *mut vk::ExternalSemaphoreProperties,
) {
    crate::guard::void("vkGetPhysicalDeviceExternalSemaphoreProperties", || {
        pd(h)?;
        // SAFETY: valid output.
        let o = unsafe { &mut *out };
        o.export_from_imported_handle_types = vk::ExternalSemaphoreHandleTypeFlags::empty();
        o.compatible_handle_types = vk::ExternalSemaphoreHandleTypeFlags::empty();
        o.external_semaphore_features = vk::ExternalSemaphoreFeatureFlags::empty();
        Ok(())
    })
}

/// True when an image format query asks about an external handle type.
fn asks_external_handle(info: *const vk::PhysicalDeviceImageFormatInfo2) -> bool {
    // SAFETY: a valid input chain.
    let mut p = unsafe { (*info).p_next } as *const vk::BaseInStructure;
    // SAFETY: as above; each node starts with sType/pNext.
    while let Some(n) = unsafe { p.as_ref() } {
        if n.s_type == vk::StructureType::PHYSICAL_DEVICE_EXTERNAL_IMAGE_FORMAT_INFO {
            // SAFETY: the sType names the struct.
            let e = unsafe { &*(p as *const vk::PhysicalDeviceExternalImageFormatInfo) };
            if !e.handle_type.is_empty() {
                return true;
            }
        }
        p = n.p_next;
    }
    false
}
