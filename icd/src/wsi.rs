//! Window-system integration. Surfaces are created on every member's instance (generated code);
//! a swapchain lives on the presenting member only (the primary), and every other resident
//! member gets stand-in images of the same format, extent and usage, so that command buffers
//! recorded against swapchain images translate on every member.

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::generated::translate as tr;
use crate::object::{Device, ObjectBase};

#[repr(C)]
pub struct Swapchain {
    pub base: ObjectBase,
    pub info: ImageShape,
    /// Wrapped images, made on the first vkGetSwapchainImagesKHR.
    pub images: parking_lot::Mutex<Vec<u64>>,
    /// Stand-in images and their memory on non-presenting members: (member, image, memory).
    pub stand_ins: parking_lot::Mutex<Vec<(usize, vk::Image, vk::DeviceMemory)>>,
    /// Copies of frames rendered on other members (`present.rs`), made when first needed.
    pub presenter: parking_lot::Mutex<Option<crate::present::Presenter>>,
}

/// What a stand-in image must match of the swapchain's images.
#[derive(Clone)]
pub struct ImageShape {
    pub format: vk::Format,
    pub extent: vk::Extent2D,
    pub layers: u32,
    pub usage: vk::ImageUsageFlags,
    /// Image create flags that the swapchain's flags imply (mutable format, protected).
    pub flags: vk::ImageCreateFlags,
    /// The formats views may use (`VkImageFormatListCreateInfo` of a mutable-format swapchain).
    pub view_formats: Vec<vk::Format>,
}

fn dev<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
    // SAFETY: the application passes a live device.
    unsafe { Device::resolve(h) }
}

/// # Safety
/// Arguments valid for `vkCreateSwapchainKHR`.
pub unsafe extern "system" fn create_swapchain(
    device: vk::Device,
    ci: *const vk::SwapchainCreateInfoKHR,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::SwapchainKHR,
) -> vk::Result {
    crate::guard::result("vkCreateSwapchainKHR", || {
        let d = dev(device)?;
        let md = d.primary();
        let arena = Arena::scope();
        let cx = md.cx(&arena);
        let f = md
            .fns
            .create_swapchain_khr
            .ok_or_else(|| crate::guard::missing("vkCreateSwapchainKHR"))?;
        // SAFETY: a valid create info.
        let c = unsafe { &*ci };
        // Frames rendered on other members are copied into the swapchain images
        // (`present.rs`): they need transfer usage there, and in the stand-ins.
        let mut copyable = d.exec.multi
            && d.exec.import_align != 0
            && crate::present::texel_size(c.image_format).is_some()
            && c.image_array_layers == 1;
        let mut sc = vk::SwapchainKHR::null();
        let mut r = vk::Result::ERROR_INITIALIZATION_FAILED;
        if copyable {
            let info =
                cx.one(ci, tr::fix_swapchain_create_info_khr) as *mut vk::SwapchainCreateInfoKHR;
            // SAFETY: the arena copy is ours to rewrite; translated for the member.
            r = unsafe {
                (*info).image_usage |= vk::ImageUsageFlags::TRANSFER_DST;
                f(md.handle, info, alloc, &mut sc)
            };
            copyable = r.as_raw() >= 0;
        }
        if !copyable {
            // SAFETY: create info translated (surface, old swapchain, queue families) for the
            // member.
            r = unsafe {
                f(
                    md.handle,
                    cx.one(ci, tr::fix_swapchain_create_info_khr),
                    alloc,
                    &mut sc,
                )
            };
            if r.as_raw() >= 0 {
                crate::exec::pin_primary(
                    d,
                    "a swapchain exists whose frames cannot be copied between members (format, layers or no shared host memory)",
                );
            }
        }
        if r.as_raw() < 0 {
            return Err(r);
        }
        // SAFETY: valid create info (VUID-vkCreateSwapchainKHR-pCreateInfo-parameter).
        let info = unsafe {
            let c = &*ci;
            let mut flags = vk::ImageCreateFlags::empty();
            if c.flags
                .contains(vk::SwapchainCreateFlagsKHR::MUTABLE_FORMAT)
            {
                flags |=
                    vk::ImageCreateFlags::MUTABLE_FORMAT | vk::ImageCreateFlags::EXTENDED_USAGE;
            }
            if c.flags.contains(vk::SwapchainCreateFlagsKHR::PROTECTED) {
                flags |= vk::ImageCreateFlags::PROTECTED;
            }
            // The format list of a mutable-format swapchain (VUID-VkSwapchainCreateInfoKHR-flags-03168).
            let mut view_formats = Vec::new();
            let mut next = c.p_next as *const vk::BaseInStructure;
            while let Some(n) = next.as_ref() {
                if n.s_type == vk::StructureType::IMAGE_FORMAT_LIST_CREATE_INFO {
                    let list = &*(next as *const vk::ImageFormatListCreateInfo);
                    if list.view_format_count > 0 && !list.p_view_formats.is_null() {
                        view_formats = std::slice::from_raw_parts(
                            list.p_view_formats,
                            list.view_format_count as usize,
                        )
                        .to_vec();
                    }
                }
                next = n.p_next;
            }
            ImageShape {
                format: c.image_format,
                extent: c.image_extent,
                layers: c.image_array_layers,
                usage: if copyable {
                    c.image_usage | vk::ImageUsageFlags::TRANSFER_SRC
                } else {
                    c.image_usage
                },
                flags,
                view_formats,
            }
        };
        let mut base = ObjectBase::bare(vk::ObjectType::SWAPCHAIN_KHR);
        base.handles[md.index] = sc.as_raw();
        let s = Box::new(Swapchain {
            base,
            info,
            images: parking_lot::Mutex::new(Vec::new()),
            presenter: parking_lot::Mutex::new(None),
            stand_ins: parking_lot::Mutex::new(Vec::new()),
        });
        // SAFETY: valid output pointer.
        unsafe { *out = vk::SwapchainKHR::from_raw(Box::into_raw(s) as u64) };
        Ok(r)
    })
}

/// # Safety
/// Arguments valid for `vkDestroySwapchainKHR`.
pub unsafe extern "system" fn destroy_swapchain(
    device: vk::Device,
    sc: vk::SwapchainKHR,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroySwapchainKHR", || {
        if sc.is_null() {
            return Ok(());
        }
        let d = dev(device)?;
        // SAFETY: made by create_swapchain; no longer used.
        let s = unsafe { Box::from_raw(sc.as_raw() as *mut Swapchain) };
        if let Some(p) = s.presenter.lock().take() {
            // The copies may still run: every member idles first.
            for md in &d.members {
                if let Some(f) = md.fns.device_wait_idle {
                    // SAFETY: the member device.
                    let _ = unsafe { f(md.handle) };
                }
            }
            p.destroy(d);
        }
        for (m, image, memory) in s.stand_ins.lock().drain(..) {
            if let Some(md) = d.members.iter().find(|md| md.index == m) {
                // SAFETY: stand-ins we made on that member.
                unsafe {
                    if let Some(f) = md.fns.destroy_image {
                        f(md.handle, image, std::ptr::null());
                    }
                    if let Some(f) = md.fns.free_memory {
                        f(md.handle, memory, std::ptr::null());
                    }
                }
            }
        }
        for img in s.images.lock().drain(..) {
            crate::exec::forget_swapchain_image(d, img);
            // SAFETY: image wrappers made by get_swapchain_images.
            unsafe { ObjectBase::free(img) };
        }
        let md = d.primary();
        if let Some(f) = md.fns.destroy_swapchain_khr {
            // SAFETY: the member swapchain is ours.
            unsafe {
                f(
                    md.handle,
                    vk::SwapchainKHR::from_raw(s.base.handles[md.index]),
                    alloc,
                )
            };
        }
        Ok(())
    })
}

fn stand_in(
    md: &crate::object::MemberDevice,
    info: &ImageShape,
) -> Result<(vk::Image, vk::DeviceMemory), vk::Result> {
    let list = vk::ImageFormatListCreateInfo {
        view_format_count: info.view_formats.len() as u32,
        p_view_formats: info.view_formats.as_ptr(),
        ..Default::default()
    };
    let ici = vk::ImageCreateInfo {
        p_next: if info.view_formats.is_empty() {
            std::ptr::null()
        } else {
            (&list as *const vk::ImageFormatListCreateInfo).cast()
        },
        flags: info.flags,
        image_type: vk::ImageType::TYPE_2D,
        format: info.format,
        extent: vk::Extent3D {
            width: info.extent.width,
            height: info.extent.height,
            depth: 1,
        },
        mip_levels: 1,
        array_layers: info.layers,
        samples: vk::SampleCountFlags::TYPE_1,
        tiling: vk::ImageTiling::OPTIMAL,
        usage: info.usage,
        sharing_mode: vk::SharingMode::EXCLUSIVE,
        initial_layout: vk::ImageLayout::UNDEFINED,
        ..Default::default()
    };
    let f = &md.fns;
    let (Some(create), Some(reqs), Some(alloc), Some(bind)) = (
        f.create_image,
        f.get_image_memory_requirements,
        f.allocate_memory,
        f.bind_image_memory,
    ) else {
        return Err(crate::guard::missing("image entry points"));
    };
    let mut image = vk::Image::null();
    // SAFETY: plain create info; valid outputs.
    unsafe {
        let r = create(md.handle, &ici, std::ptr::null(), &mut image);
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
        let mut mr = vk::MemoryRequirements::default();
        reqs(md.handle, image, &mut mr);
        let ai = vk::MemoryAllocateInfo {
            allocation_size: mr.size,
            memory_type_index: mr.memory_type_bits.trailing_zeros(),
            ..Default::default()
        };
        let mut mem = vk::DeviceMemory::null();
        let r = alloc(md.handle, &ai, std::ptr::null(), &mut mem);
        if r != vk::Result::SUCCESS {
            if let Some(d) = f.destroy_image {
                d(md.handle, image, std::ptr::null());
            }
            return Err(r);
        }
        let r = bind(md.handle, image, mem, 0);
        if r != vk::Result::SUCCESS {
            if let Some(d) = f.destroy_image {
                d(md.handle, image, std::ptr::null());
            }
            if let Some(fr) = f.free_memory {
                fr(md.handle, mem, std::ptr::null());
            }
            return Err(r);
        }
        Ok((image, mem))
    }
}

/// # Safety
/// Arguments valid for `vkGetSwapchainImagesKHR`.
pub unsafe extern "system" fn get_swapchain_images(
    device: vk::Device,
    sc: vk::SwapchainKHR,
    count: *mut u32,
    out: *mut vk::Image,
) -> vk::Result {
    crate::guard::result("vkGetSwapchainImagesKHR", || {
        let d = dev(device)?;
        // SAFETY: a live vkfuse swapchain.
        let s = unsafe { &*(sc.as_raw() as *const Swapchain) };
        let mut images = s.images.lock();
        if images.is_empty() {
            let md = d.primary();
            let f = md
                .fns
                .get_swapchain_images_khr
                .ok_or_else(|| crate::guard::missing("vkGetSwapchainImagesKHR"))?;
            let msc = vk::SwapchainKHR::from_raw(s.base.handles[md.index]);
            let mut n = 0;
            // SAFETY: two-call idiom on the member's swapchain.
            let r = unsafe { f(md.handle, msc, &mut n, std::ptr::null_mut()) };
            if r.as_raw() < 0 {
                return Err(r);
            }
            let mut real = vec![vk::Image::null(); n as usize];
            // SAFETY: as above.
            let r = unsafe { f(md.handle, msc, &mut n, real.as_mut_ptr()) };
            if r.as_raw() < 0 {
                return Err(r);
            }
            let mut stand_ins = s.stand_ins.lock();
            for img in real.into_iter().take(n as usize) {
                let mut base = ObjectBase::bare(vk::ObjectType::IMAGE);
                base.handles[md.index] = img.as_raw();
                for other in d.members.iter().skip(1) {
                    let (image, memory) = stand_in(other, &s.info)?;
                    base.handles[other.index] = image.as_raw();
                    stand_ins.push((other.index, image, memory));
                }
                let raw = Box::new(base).into_raw();
                if d.exec.multi {
                    // Batches that draw into it are ordered by it and kept on one member
                    // until it is presented (`exec::swapchain_image`).
                    let leads = crate::access::Leads::one(raw, vkfuse_memory::Range::WHOLE, true);
                    // SAFETY: the live image wrapper just made.
                    unsafe { crate::access::set(raw, leads) };
                    crate::exec::swapchain_image(d, raw);
                }
                images.push(raw);
            }
        }
        let list: Vec<vk::Image> = images.iter().map(|h| vk::Image::from_raw(*h)).collect();
        // SAFETY: forwarded contract.
        Ok(unsafe { crate::instance::fill(&list, count, out) })
    })
}

fn pd<'a>(h: vk::PhysicalDevice) -> Result<&'a crate::object::PhysicalDevice, vk::Result> {
    // SAFETY: the application passes a live physical device.
    unsafe { crate::object::PhysicalDevice::resolve(h) }
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfaceSupportKHR`.
pub unsafe extern "system" fn get_surface_support(
    h: vk::PhysicalDevice,
    family: u32,
    surface: vk::SurfaceKHR,
    out: *mut vk::Bool32,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfaceSupportKHR", || {
        let p = pd(h)?;
        let arena = Arena::scope();
        let mut all = vk::TRUE;
        for m in &p.members {
            let cx = m.cx(&arena);
            let f = m
                .fns
                .get_physical_device_surface_support_khr
                .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceSurfaceSupportKHR"))?;
            let mut s = vk::FALSE;
            // SAFETY: family and surface translated for the member; valid output.
            let r = unsafe { f(m.handle, cx.queue_family(family), cx.nd(surface), &mut s) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
            all &= s;
        }
        // SAFETY: valid output pointer.
        unsafe { *out = all };
        Ok(vk::Result::SUCCESS)
    })
}

fn fuse_caps(a: &mut vk::SurfaceCapabilitiesKHR, b: &vk::SurfaceCapabilitiesKHR) {
    a.min_image_count = a.min_image_count.max(b.min_image_count);
    a.max_image_count = match (a.max_image_count, b.max_image_count) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    a.min_image_extent.width = a.min_image_extent.width.max(b.min_image_extent.width);
    a.min_image_extent.height = a.min_image_extent.height.max(b.min_image_extent.height);
    a.max_image_extent.width = a.max_image_extent.width.min(b.max_image_extent.width);
    a.max_image_extent.height = a.max_image_extent.height.min(b.max_image_extent.height);
    a.max_image_array_layers = a.max_image_array_layers.min(b.max_image_array_layers);
    a.supported_transforms &= b.supported_transforms;
    a.supported_composite_alpha &= b.supported_composite_alpha;
    a.supported_usage_flags &= b.supported_usage_flags;
}

fn caps(
    p: &crate::object::PhysicalDevice,
    surface: vk::SurfaceKHR,
) -> Result<vk::SurfaceCapabilitiesKHR, vk::Result> {
    let arena = Arena::scope();
    let mut acc: Option<vk::SurfaceCapabilitiesKHR> = None;
    for m in &p.members {
        let cx = m.cx(&arena);
        let f = m
            .fns
            .get_physical_device_surface_capabilities_khr
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceSurfaceCapabilitiesKHR"))?;
        let mut c = vk::SurfaceCapabilitiesKHR::default();
        // SAFETY: surface translated for the member; valid output.
        let r = unsafe { f(m.handle, cx.nd(surface), &mut c) };
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
        match &mut acc {
            None => acc = Some(c),
            Some(a) => fuse_caps(a, &c),
        }
    }
    acc.ok_or(vk::Result::ERROR_INITIALIZATION_FAILED)
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfaceCapabilitiesKHR`.
pub unsafe extern "system" fn get_surface_capabilities(
    h: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    out: *mut vk::SurfaceCapabilitiesKHR,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfaceCapabilitiesKHR", || {
        let c = caps(pd(h)?, surface)?;
        // SAFETY: valid output pointer.
        unsafe { *out = c };
        Ok(vk::Result::SUCCESS)
    })
}

/// The primary fills the application's chain; the core capabilities are fused.
///
/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfaceCapabilities2KHR`.
pub unsafe extern "system" fn get_surface_capabilities2(
    h: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceSurfaceInfo2KHR,
    out: *mut vk::SurfaceCapabilities2KHR,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfaceCapabilities2KHR", || {
        let p = pd(h)?;
        let arena = Arena::scope();
        let first = &p.members[0];
        let cx = first.cx(&arena);
        let f = first
            .fns
            .get_physical_device_surface_capabilities2_khr
            .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceSurfaceCapabilities2KHR"))?;
        // SAFETY: info translated (surface, chain) for the member; the application's output.
        let r = unsafe {
            f(
                first.handle,
                cx.one(
                    info,
                    crate::generated::translate::fix_physical_device_surface_info2_khr,
                ),
                out,
            )
        };
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
        // SAFETY: valid info.
        let c = caps(p, unsafe { (*info).surface })?;
        // SAFETY: valid output.
        unsafe { (*out).surface_capabilities = c };
        Ok(vk::Result::SUCCESS)
    })
}

/// The surface formats every member offers, in the primary's order.
/// Reads a list through the two-call idiom from one member.
fn two_call<T: Default + Clone>(
    mut f: impl FnMut(*mut u32, *mut T) -> vk::Result,
) -> Result<Vec<T>, vk::Result> {
    let mut n = 0;
    let r = f(&mut n, std::ptr::null_mut());
    if r != vk::Result::SUCCESS {
        return Err(r);
    }
    let mut v = vec![T::default(); n as usize];
    let r = f(&mut n, v.as_mut_ptr());
    if r.as_raw() < 0 {
        return Err(r);
    }
    v.truncate(n as usize);
    Ok(v)
}

/// The elements of a per-member list that every member offers, in the primary's order.
fn intersect<T: Default + Clone>(
    p: &crate::object::PhysicalDevice,
    mut query: impl FnMut(&crate::object::PhysMember, &Arena) -> Result<Vec<T>, vk::Result>,
    same: impl Fn(&T, &T) -> bool,
) -> Result<Vec<T>, vk::Result> {
    let arena = Arena::scope();
    let mut acc: Option<Vec<T>> = None;
    for m in &p.members {
        let list = query(m, &arena)?;
        acc = Some(match acc {
            None => list,
            Some(a) => a
                .into_iter()
                .filter(|x| list.iter().any(|y| same(x, y)))
                .collect(),
        });
    }
    Ok(acc.unwrap_or_default())
}

/// The surface formats every member offers, in the primary's order.
fn formats(
    p: &crate::object::PhysicalDevice,
    surface: vk::SurfaceKHR,
) -> Result<Vec<vk::SurfaceFormatKHR>, vk::Result> {
    intersect(
        p,
        |m, arena| {
            let f = m
                .fns
                .get_physical_device_surface_formats_khr
                .ok_or_else(|| crate::guard::missing("vkGetPhysicalDeviceSurfaceFormatsKHR"))?;
            let s = m.cx(arena).nd(surface);
            // SAFETY: two-call idiom on the member's surface.
            two_call(|n, out| unsafe { f(m.handle, s, n, out) })
        },
        |x, y| x.format == y.format && x.color_space == y.color_space,
    )
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfaceFormatsKHR`.
pub unsafe extern "system" fn get_surface_formats(
    h: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    count: *mut u32,
    out: *mut vk::SurfaceFormatKHR,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfaceFormatsKHR", || {
        let list = formats(pd(h)?, surface)?;
        // SAFETY: forwarded contract.
        Ok(unsafe { crate::instance::fill(&list, count, out) })
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfaceFormats2KHR`.
pub unsafe extern "system" fn get_surface_formats2(
    h: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceSurfaceInfo2KHR,
    count: *mut u32,
    out: *mut vk::SurfaceFormat2KHR,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfaceFormats2KHR", || {
        // SAFETY: valid info.
        let list = formats(pd(h)?, unsafe { (*info).surface })?;
        if count.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: two-call idiom; the application's elements keep their sType and pNext.
        unsafe {
            if out.is_null() {
                *count = list.len() as u32;
                return Ok(vk::Result::SUCCESS);
            }
            let n = (*count as usize).min(list.len());
            for (i, f) in list.iter().enumerate().take(n) {
                (*out.add(i)).surface_format = *f;
            }
            *count = n as u32;
            Ok(if n < list.len() {
                vk::Result::INCOMPLETE
            } else {
                vk::Result::SUCCESS
            })
        }
    })
}

/// # Safety
/// Arguments valid for `vkGetPhysicalDeviceSurfacePresentModesKHR`.
pub unsafe extern "system" fn get_surface_present_modes(
    h: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    count: *mut u32,
    out: *mut vk::PresentModeKHR,
) -> vk::Result {
    crate::guard::result("vkGetPhysicalDeviceSurfacePresentModesKHR", || {
        let modes = intersect(
            pd(h)?,
            |m, arena| {
                let f = m
                    .fns
                    .get_physical_device_surface_present_modes_khr
                    .ok_or_else(|| {
                        crate::guard::missing("vkGetPhysicalDeviceSurfacePresentModesKHR")
                    })?;
                let s = m.cx(arena).nd(surface);
                // SAFETY: two-call idiom on the member's surface.
                two_call(|n, out| unsafe { f(m.handle, s, n, out) })
            },
            |x, y| x == y,
        )?;
        // SAFETY: forwarded contract.
        Ok(unsafe { crate::instance::fill(&modes, count, out) })
    })
}
