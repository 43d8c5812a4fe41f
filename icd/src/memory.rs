//! Memory requirements of the fused device: the largest size and alignment over resident
//! members, and the fused memory types every member allows.

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::generated::translate as tr;
use crate::object::Device;

fn dev<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
    // SAFETY: the application passes a live device.
    unsafe { Device::resolve(h) }
}

/// Fuses per-member requirements: (member index, requirements).
fn fuse(d: &Device, per: &[(usize, vk::MemoryRequirements)]) -> vk::MemoryRequirements {
    let maps: Vec<Vec<u32>> = {
        let p = d.physical();
        let n = per.iter().map(|(m, _)| *m).max().unwrap_or(0) + 1;
        let mut maps = vec![Vec::new(); n];
        for (m, _) in per {
            if let Some(pm) = p.member(*m) {
                maps[*m] = pm.maps.memory_type.clone();
            }
        }
        maps
    };
    let bits: Vec<(usize, u32)> = per.iter().map(|(m, r)| (*m, r.memory_type_bits)).collect();
    let mut out = vk::MemoryRequirements {
        memory_type_bits: vkfuse_memory::fused_type_bits_indexed(
            &maps,
            &bits,
            d.physical().fused.memory.memory_type_count as usize,
        ),
        ..Default::default()
    };
    for (_, r) in per {
        out.size = out.size.max(r.size);
        out.alignment = out.alignment.max(r.alignment);
    }
    out
}

/// Runs `query` on every resident member and fuses the answers.
fn each(
    d: &Device,
    mut query: impl FnMut(
        &crate::object::MemberDevice,
        &Arena,
    ) -> Result<vk::MemoryRequirements, vk::Result>,
) -> Result<vk::MemoryRequirements, vk::Result> {
    let arena = Arena::scope();
    let mut per = Vec::new();
    for md in &d.members {
        per.push((md.index, query(md, &arena)?));
    }
    Ok(fuse(d, &per))
}

/// The fused requirements of a live buffer.
fn buffer_requirements(
    d: &Device,
    buffer: vk::Buffer,
) -> Result<vk::MemoryRequirements, vk::Result> {
    each(d, |md, arena| {
        let f = md
            .fns
            .get_buffer_memory_requirements
            .ok_or_else(|| crate::guard::missing("vkGetBufferMemoryRequirements"))?;
        let mut r = vk::MemoryRequirements::default();
        // SAFETY: the member's buffer; valid output.
        unsafe { f(md.handle, md.cx(arena).nd(buffer), &mut r) };
        Ok(r)
    })
}

/// The fused requirements of a live image that is not disjoint.
fn image_requirements(d: &Device, image: vk::Image) -> Result<vk::MemoryRequirements, vk::Result> {
    each(d, |md, arena| {
        let f = md
            .fns
            .get_image_memory_requirements
            .ok_or_else(|| crate::guard::missing("vkGetImageMemoryRequirements"))?;
        let mut r = vk::MemoryRequirements::default();
        // SAFETY: the member's image; valid output.
        unsafe { f(md.handle, md.cx(arena).nd(image), &mut r) };
        Ok(r)
    })
}

/// The bytes a buffer, or an image that is not disjoint, occupies from the offset it is bound
/// at: the size the application was told (the largest over the members); `u64::MAX` (up to
/// the end of the memory) when a member cannot say.
pub(crate) fn bound_size(d: &Device, raw: u64, image: bool) -> u64 {
    let r = if image {
        image_requirements(d, vk::Image::from_raw(raw))
    } else {
        buffer_requirements(d, vk::Buffer::from_raw(raw))
    };
    r.map_or(u64::MAX, |r| r.size)
}

/// # Safety
/// Arguments valid for `vkGetBufferMemoryRequirements`.
pub unsafe extern "system" fn get_buffer_memory_requirements(
    device: vk::Device,
    buffer: vk::Buffer,
    out: *mut vk::MemoryRequirements,
) {
    crate::guard::void("vkGetBufferMemoryRequirements", || {
        let r = buffer_requirements(dev(device)?, buffer)?;
        // SAFETY: valid output pointer.
        unsafe { *out = r };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetImageMemoryRequirements`.
pub unsafe extern "system" fn get_image_memory_requirements(
    device: vk::Device,
    image: vk::Image,
    out: *mut vk::MemoryRequirements,
) {
    crate::guard::void("vkGetImageMemoryRequirements", || {
        let r = image_requirements(dev(device)?, image)?;
        // SAFETY: valid output pointer.
        unsafe { *out = r };
        Ok(())
    })
}

/// The `...2` queries: the primary fills the application's chain (dedicated requirements), every
/// member answers the core struct, and the core struct is fused.
fn query2<I>(
    d: &Device,
    info: *const I,
    out: *mut vk::MemoryRequirements2,
    fix: unsafe fn(&crate::conv::Cx, *mut I),
    get: impl Fn(
        &crate::object::MemberDevice,
    ) -> Option<
        unsafe extern "system" fn(vk::Device, *const I, *mut vk::MemoryRequirements2),
    >,
    name: &str,
) -> Result<(), vk::Result> {
    let mut first = true;
    let r = each(d, |md, arena| {
        let f = get(md).ok_or_else(|| crate::guard::missing(name))?;
        let cx = md.cx(arena);
        let info = cx.one(info, fix);
        if std::mem::take(&mut first) {
            // SAFETY: translated info; the application's output chain.
            unsafe {
                f(md.handle, info, out);
                Ok((*out).memory_requirements)
            }
        } else {
            let mut o = vk::MemoryRequirements2::default();
            // SAFETY: translated info; a bare output.
            unsafe { f(md.handle, info, &mut o) };
            Ok(o.memory_requirements)
        }
    })?;
    // SAFETY: valid output.
    unsafe { (*out).memory_requirements = r };
    Ok(())
}

/// # Safety
/// Arguments valid for `vkGetBufferMemoryRequirements2`.
pub unsafe extern "system" fn get_buffer_memory_requirements2(
    device: vk::Device,
    info: *const vk::BufferMemoryRequirementsInfo2,
    out: *mut vk::MemoryRequirements2,
) {
    crate::guard::void("vkGetBufferMemoryRequirements2", || {
        query2(
            dev(device)?,
            info,
            out,
            tr::fix_buffer_memory_requirements_info2,
            |md| md.fns.get_buffer_memory_requirements2,
            "vkGetBufferMemoryRequirements2",
        )
    })
}

/// # Safety
/// Arguments valid for `vkGetImageMemoryRequirements2`.
pub unsafe extern "system" fn get_image_memory_requirements2(
    device: vk::Device,
    info: *const vk::ImageMemoryRequirementsInfo2,
    out: *mut vk::MemoryRequirements2,
) {
    crate::guard::void("vkGetImageMemoryRequirements2", || {
        query2(
            dev(device)?,
            info,
            out,
            tr::fix_image_memory_requirements_info2,
            |md| md.fns.get_image_memory_requirements2,
            "vkGetImageMemoryRequirements2",
        )
    })
}

/// # Safety
/// Arguments valid for `vkGetDeviceBufferMemoryRequirements`.
pub unsafe extern "system" fn get_device_buffer_memory_requirements(
    device: vk::Device,
    info: *const vk::DeviceBufferMemoryRequirements,
    out: *mut vk::MemoryRequirements2,
) {
    crate::guard::void("vkGetDeviceBufferMemoryRequirements", || {
        query2(
            dev(device)?,
            info,
            out,
            tr::fix_device_buffer_memory_requirements,
            |md| md.fns.get_device_buffer_memory_requirements,
            "vkGetDeviceBufferMemoryRequirements",
        )
    })
}

/// # Safety
/// Arguments valid for `vkGetDeviceImageMemoryRequirements`.
pub unsafe extern "system" fn get_device_image_memory_requirements(
    device: vk::Device,
    info: *const vk::DeviceImageMemoryRequirements,
    out: *mut vk::MemoryRequirements2,
) {
    crate::guard::void("vkGetDeviceImageMemoryRequirements", || {
        query2(
            dev(device)?,
            info,
            out,
            tr::fix_device_image_memory_requirements,
            |md| md.fns.get_device_image_memory_requirements,
            "vkGetDeviceImageMemoryRequirements",
        )
    })
}
