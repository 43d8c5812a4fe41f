//! Presentation when batches run on several members (`exec.rs`): the swapchain lives on the
//! presenting member p (the primary), and a frame rendered on another member r lives in r's
//! stand-in image. At vkQueuePresentKHR the frame goes to p through shared host memory:
//!
//! 1. on r, after the frame's batch (its semaphores): stand-in → a staging buffer in one host
//!    allocation imported into every member (`vkCmdCopyImageToBuffer`, tightly packed rows, so
//!    the bytes are the same whichever driver lays the image out);
//! 2. the bridge thread waits for that batch and lets p go on;
//! 3. on p: staging buffer → the swapchain image, then present, waiting for that copy.
//!
//! The stand-in is returned to `PRESENT_SRC_KHR` after the copy, as the application left it; the
//! swapchain image is written whole (its old contents are discarded) and left in
//! `PRESENT_SRC_KHR`. Acquire signals its semaphore and fence on p; a batch elsewhere that waits
//! for them is ordered after p's consumption of the semaphore (`exec.rs`).

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::conv::nd;
use crate::generated::translate as tr;
use crate::object::{Device, MemberDevice, ObjectBase, Queue};
use crate::wsi::Swapchain;
use crate::MAX_MEMBERS;

/// Bytes per texel of the swapchain formats frames can be copied in; `None` for others.
pub fn texel_size(f: vk::Format) -> Option<u64> {
    use vk::Format as F;
    match f {
        F::B8G8R8A8_UNORM
        | F::B8G8R8A8_SRGB
        | F::R8G8B8A8_UNORM
        | F::R8G8B8A8_SRGB
        | F::A8B8G8R8_UNORM_PACK32
        | F::A8B8G8R8_SRGB_PACK32
        | F::A2R10G10B10_UNORM_PACK32
        | F::A2B10G10R10_UNORM_PACK32 => Some(4),
        F::R16G16B16A16_SFLOAT | F::R16G16B16A16_UNORM => Some(8),
        F::R5G6B5_UNORM_PACK16 | F::B5G6R5_UNORM_PACK16 => Some(2),
        _ => None,
    }
}

/// The copy machinery of one swapchain, made at its first frame rendered off p.
pub struct Presenter {
    host: *mut u8,
    layout: std::alloc::Layout,
    /// Bytes of one frame, and the stride between frames in the host allocation.
    frame: u64,
    stride: u64,
    /// Per member: the imported host allocation, a command pool, and per image a staging
    /// buffer and a recorded copy (out of the stand-in on members other than p, into the
    /// swapchain image on p).
    memory: [vk::DeviceMemory; MAX_MEMBERS],
    pools: [vk::CommandPool; MAX_MEMBERS],
    buffers: Vec<[vk::Buffer; MAX_MEMBERS]>,
    copies: Vec<[vk::CommandBuffer; MAX_MEMBERS]>,
    /// On p, per image: signalled by the copy in, waited for by the present.
    ready: Vec<vk::Semaphore>,
    /// On p, per image: the swapchain image copied back out into the staging buffer, for the
    /// debug check that the presented image holds the frame.
    verify: Vec<vk::CommandBuffer>,
}

// INVARIANT: the host allocation is only touched by members through their imports and by the
// debug checksum under the exec state lock.
// SAFETY: upheld by the invariant above.
unsafe impl Send for Presenter {}

impl Presenter {
    /// Frees everything on every member; the members are idle.
    pub fn destroy(&self, d: &Device) {
        for md in &d.members {
            let m = md.index;
            // SAFETY: our own objects on that member, no longer in use (the caller idled it).
            unsafe {
                if let Some(f) = md.fns.destroy_buffer {
                    for b in &self.buffers {
                        if !b[m].is_null() {
                            f(md.handle, b[m], std::ptr::null());
                        }
                    }
                }
                if let (Some(f), false) = (md.fns.destroy_command_pool, self.pools[m].is_null()) {
                    f(md.handle, self.pools[m], std::ptr::null());
                }
                if let (Some(f), false) = (md.fns.free_memory, self.memory[m].is_null()) {
                    f(md.handle, self.memory[m], std::ptr::null());
                }
                if let Some(f) = md.fns.destroy_semaphore {
                    if m == d.primary().index {
                        for s in &self.ready {
                            f(md.handle, *s, std::ptr::null());
                        }
                    }
                }
            }
        }
        // SAFETY: allocated in `new` with this layout; every import is freed above.
        unsafe { std::alloc::dealloc(self.host, self.layout) };
    }
}

fn check(r: vk::Result) -> Result<(), vk::Result> {
    if r == vk::Result::SUCCESS {
        Ok(())
    } else {
        Err(r)
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Builds the presenter of `sc` for the present queue `q`. On error, what was made is freed.
fn new_presenter(d: &Device, q: &Queue, sc: &Swapchain) -> Result<Presenter, vk::Result> {
    let info = &sc.info;
    let texel = texel_size(info.format).ok_or(vk::Result::ERROR_FORMAT_NOT_SUPPORTED)?;
    let images = sc.images.lock().clone();
    let align = d.exec.import_align.max(256);
    let frame = u64::from(info.extent.width) * u64::from(info.extent.height) * texel;
    let stride = frame.div_ceil(align) * align;
    let total = stride * images.len() as u64;
    let layout = std::alloc::Layout::from_size_align(total as usize, align as usize)
        .map_err(|_| vk::Result::ERROR_OUT_OF_HOST_MEMORY)?;
    if d.exec.import_align == 0 || total == 0 {
        return Err(vk::Result::ERROR_FEATURE_NOT_PRESENT);
    }
    // SAFETY: a non-zero size.
    let host = unsafe { std::alloc::alloc_zeroed(layout) };
    if host.is_null() {
        return Err(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
    }
    let mut p = Presenter {
        host,
        layout,
        frame,
        stride,
        memory: [vk::DeviceMemory::null(); MAX_MEMBERS],
        pools: [vk::CommandPool::null(); MAX_MEMBERS],
        buffers: vec![[vk::Buffer::null(); MAX_MEMBERS]; images.len()],
        copies: vec![[vk::CommandBuffer::null(); MAX_MEMBERS]; images.len()],
        ready: Vec::new(),
        verify: Vec::new(),
    };
    match fill(d, q, sc, &images, &mut p) {
        Ok(()) => Ok(p),
        Err(r) => {
            p.destroy(d);
            Err(r)
        }
    }
}

fn fill(
    d: &Device,
    q: &Queue,
    sc: &Swapchain,
    images: &[u64],
    p: &mut Presenter,
) -> Result<(), vk::Result> {
    let presenting = d.primary().index;
    for md in &d.members {
        let m = md.index;
        let f = &md.fns;
        let (Some(create_buffer), Some(bind), Some(create_pool), Some(alloc_cbs), Some(create_sem)) = (
            f.create_buffer,
            f.bind_buffer_memory,
            f.create_command_pool,
            f.allocate_command_buffers,
            f.create_semaphore,
        ) else {
            return Err(crate::guard::missing("presentation entry points"));
        };
        // SAFETY: the presenter's host allocation, aligned to the members' import alignment,
        // freed after every member's import (`Presenter::destroy`).
        p.memory[m] = unsafe {
            crate::device_memory::import_host(
                md,
                p.host,
                p.layout.size() as u64,
                None,
                std::ptr::null(),
                std::ptr::null(),
            )
        }
        .map_err(|e| {
            crate::warn!("member {m}: cannot share the presentation staging memory: {e}");
            vk::Result::ERROR_FEATURE_NOT_PRESENT
        })?;
        let family = md
            .maps
            .queue_family
            .get(q.family as usize)
            .copied()
            .unwrap_or(q.family);
        let pci = vk::CommandPoolCreateInfo {
            queue_family_index: family,
            ..Default::default()
        };
        // SAFETY: a valid create info.
        check(unsafe { create_pool(md.handle, &pci, std::ptr::null(), &mut p.pools[m]) })?;
        // On p, a second command buffer per image: the debug read-back.
        let per_image = if m == presenting { 2 } else { 1 };
        let mut cbs = vec![vk::CommandBuffer::null(); images.len() * per_image];
        let cai = vk::CommandBufferAllocateInfo {
            command_pool: p.pools[m],
            level: vk::CommandBufferLevel::PRIMARY,
            command_buffer_count: cbs.len() as u32,
            ..Default::default()
        };
        // SAFETY: room for one handle per image.
        check(unsafe { alloc_cbs(md.handle, &cai, cbs.as_mut_ptr()) })?;
        for (k, img) in images.iter().enumerate() {
            let bci = vk::BufferCreateInfo {
                size: p.frame,
                usage: vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                ..Default::default()
            };
            // SAFETY: a valid create info.
            check(unsafe {
                create_buffer(md.handle, &bci, std::ptr::null(), &mut p.buffers[k][m])
            })?;
            // SAFETY: the staging area of image k lies inside the imported allocation.
            check(unsafe { bind(md.handle, p.buffers[k][m], p.memory[m], k as u64 * p.stride) })?;
            // SAFETY: a live image wrapper of the swapchain.
            let image = vk::Image::from_raw(unsafe { ObjectBase::get(*img) }?.handles[m]);
            record(
                md,
                cbs[k],
                image,
                p.buffers[k][m],
                &sc.info,
                m == presenting,
            )?;
            p.copies[k][m] = cbs[k];
            if m == presenting {
                let v = cbs[images.len() + k];
                record(md, v, image, p.buffers[k][m], &sc.info, false)?;
                p.verify.push(v);
            }
        }
        if m == presenting {
            for _ in images {
                let mut s = vk::Semaphore::null();
                let sci = vk::SemaphoreCreateInfo::default();
                // SAFETY: a valid create info.
                check(unsafe { create_sem(md.handle, &sci, std::ptr::null(), &mut s) })?;
                p.ready.push(s);
            }
        }
    }
    Ok(())
}

/// Records the copy of one image: out of a stand-in into its staging buffer, or (`into`) from
/// the staging buffer into the swapchain image.
fn record(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    image: vk::Image,
    buffer: vk::Buffer,
    info: &crate::wsi::ImageShape,
    into: bool,
) -> Result<(), vk::Result> {
    let f = &md.fns;
    let (Some(begin), Some(end), Some(barrier), Some(to_buffer), Some(to_image)) = (
        f.begin_command_buffer,
        f.end_command_buffer,
        f.cmd_pipeline_barrier,
        f.cmd_copy_image_to_buffer,
        f.cmd_copy_buffer_to_image,
    ) else {
        return Err(crate::guard::missing("copy entry points"));
    };
    let range = vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    };
    let image_barrier = |old, new, src_access, dst_access| vk::ImageMemoryBarrier {
        src_access_mask: src_access,
        dst_access_mask: dst_access,
        old_layout: old,
        new_layout: new,
        src_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
        dst_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
        image,
        subresource_range: range,
        ..Default::default()
    };
    let region = vk::BufferImageCopy {
        image_subresource: vk::ImageSubresourceLayers {
            aspect_mask: vk::ImageAspectFlags::COLOR,
            mip_level: 0,
            base_array_layer: 0,
            layer_count: 1,
        },
        image_extent: vk::Extent3D {
            width: info.extent.width,
            height: info.extent.height,
            depth: 1,
        },
        ..Default::default()
    };
    let transfer = vk::PipelineStageFlags::TRANSFER;
    let all = vk::PipelineStageFlags::ALL_COMMANDS;
    let bi = vk::CommandBufferBeginInfo::default();
    // SAFETY: a fresh command buffer of the member; image and buffer are the member's, the
    // region lies inside both.
    unsafe {
        check(begin(cb, &bi))?;
        // One image barrier, no other.
        let image_only = |src, dst, b: &vk::ImageMemoryBarrier| {
            barrier(
                cb,
                src,
                dst,
                vk::DependencyFlags::empty(),
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
                1,
                b,
            )
        };
        if into {
            let pre = image_barrier(
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::AccessFlags::empty(),
                vk::AccessFlags::TRANSFER_WRITE,
            );
            image_only(all, transfer, &pre);
            to_image(
                cb,
                buffer,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                1,
                &region,
            );
            let post = image_barrier(
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::PRESENT_SRC_KHR,
                vk::AccessFlags::TRANSFER_WRITE,
                vk::AccessFlags::empty(),
            );
            image_only(transfer, all, &post);
        } else {
            let pre = image_barrier(
                vk::ImageLayout::PRESENT_SRC_KHR,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::AccessFlags::MEMORY_WRITE,
                vk::AccessFlags::TRANSFER_READ,
            );
            image_only(all, transfer, &pre);
            to_buffer(
                cb,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                buffer,
                1,
                &region,
            );
            let post = image_barrier(
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::ImageLayout::PRESENT_SRC_KHR,
                vk::AccessFlags::TRANSFER_READ,
                vk::AccessFlags::empty(),
            );
            // The staging bytes are made available to the host, whence p's copy reads them.
            let to_host = vk::MemoryBarrier {
                src_access_mask: vk::AccessFlags::TRANSFER_WRITE,
                dst_access_mask: vk::AccessFlags::HOST_READ,
                ..Default::default()
            };
            barrier(
                cb,
                transfer,
                all | vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                1,
                &to_host,
                0,
                std::ptr::null(),
                1,
                &post,
            );
        }
        check(end(cb))
    }
}

/// # Safety
/// Arguments valid for `vkAcquireNextImageKHR`.
pub unsafe extern "system" fn acquire_next_image(
    device: vk::Device,
    swapchain: vk::SwapchainKHR,
    timeout: u64,
    semaphore: vk::Semaphore,
    fence: vk::Fence,
    index: *mut u32,
) -> vk::Result {
    crate::guard::result("vkAcquireNextImageKHR", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        let md = d.primary();
        let f = md
            .fns
            .acquire_next_image_khr
            .ok_or_else(|| crate::guard::missing("vkAcquireNextImageKHR"))?;
        let m = md.index;
        // SAFETY: handles translated for the presenting member; valid output.
        let r = unsafe {
            f(
                md.handle,
                nd(swapchain, m),
                timeout,
                nd(semaphore, m),
                nd(fence, m),
                index,
            )
        };
        acquired(d, semaphore, fence, r)
    })
}

/// # Safety
/// Arguments valid for `vkAcquireNextImage2KHR`.
pub unsafe extern "system" fn acquire_next_image2(
    device: vk::Device,
    info: *const vk::AcquireNextImageInfoKHR,
    index: *mut u32,
) -> vk::Result {
    crate::guard::result("vkAcquireNextImage2KHR", || {
        // SAFETY: a live device and a valid info.
        let (d, i) = unsafe { (Device::resolve(device)?, &*info) };
        let md = d.primary();
        let f = md
            .fns
            .acquire_next_image2_khr
            .ok_or_else(|| crate::guard::missing("vkAcquireNextImage2KHR"))?;
        let arena = Arena::scope();
        let cx = md.cx(&arena);
        // SAFETY: the info translated for the presenting member; valid output.
        let r = unsafe {
            f(
                md.handle,
                cx.one(info, tr::fix_acquire_next_image_info_khr),
                index,
            )
        };
        acquired(d, i.semaphore, i.fence, r)
    })
}

/// After an acquire on the presenting member: its semaphore and fence are signalled there.
fn acquired(
    d: &Device,
    semaphore: vk::Semaphore,
    fence: vk::Fence,
    r: vk::Result,
) -> Result<vk::Result, vk::Result> {
    if r.as_raw() < 0 {
        return Err(r);
    }
    if d.exec.multi && (r == vk::Result::SUCCESS || r == vk::Result::SUBOPTIMAL_KHR) {
        for raw in [semaphore.as_raw(), fence.as_raw()] {
            // SAFETY: the application's live semaphore and fence, or null (refused by `get`).
            if let Ok(o) = unsafe { ObjectBase::get(raw) } {
                o.set_last(Some(d.primary().index));
            }
        }
    }
    Ok(r)
}

/// # Safety
/// Arguments valid for `vkQueuePresentKHR`.
pub unsafe extern "system" fn queue_present(
    queue: vk::Queue,
    info: *const vk::PresentInfoKHR,
) -> vk::Result {
    crate::guard::result("vkQueuePresentKHR", || {
        // SAFETY: a live queue and a valid present info.
        let (q, d) = unsafe { Queue::resolve(queue)? };
        let md = d.primary();
        let f = md
            .fns
            .queue_present_khr
            .ok_or_else(|| crate::guard::missing("vkQueuePresentKHR"))?;
        let arena = Arena::scope();
        let cx = md.cx(&arena);
        // SAFETY: the info translated for the presenting member (swapchains, semaphores, chain).
        let translated = cx.one(info, tr::fix_present_info_khr) as *mut vk::PresentInfoKHR;
        // Semaphores the present waits for instead, when the frames were copied over.
        let mut ready = None;
        if d.exec.multi {
            // SAFETY: a valid present info.
            ready = unsafe { crate::exec::cross_member_present(d, q, &*info)? };
        }
        if let Some(ready) = &ready {
            // SAFETY: the arena copy is ours to rewrite; `ready` outlives the call below.
            unsafe {
                (*translated).wait_semaphore_count = ready.len() as u32;
                (*translated).p_wait_semaphores = ready.as_ptr();
            }
        }
        // SAFETY: the (rewritten) translated info; the member's queue.
        let r = unsafe { f(q.handles[md.index], translated) };
        if r.as_raw() < 0 {
            Err(r)
        } else {
            Ok(r)
        }
    })
}

/// Copies the frames of `info` rendered on member `r` to the presenting member and points the
/// translated present at semaphores that the copies signal. Called under the exec state lock.
pub(crate) fn frames_from(
    d: &Device,
    q: &Queue,
    info: &vk::PresentInfoKHR,
    r: usize,
    r_waits: &[vk::Semaphore],
    mut submit: impl FnMut(
        usize,
        &[vk::Semaphore],
        &[vk::CommandBuffer],
        &[vk::Semaphore],
    ) -> Result<(), vk::Result>,
) -> Result<Vec<vk::Semaphore>, vk::Result> {
    let p = d.primary().index;
    let n = info.swapchain_count as usize;
    let mut out_cbs = Vec::with_capacity(n);
    let mut in_cbs = Vec::with_capacity(n);
    let mut ready = Vec::with_capacity(n);
    let mut checks = Vec::new();
    for i in 0..n {
        // SAFETY: swapchainCount swapchains and image indices.
        let (sc, k) = unsafe {
            (
                *info.p_swapchains.add(i),
                *info.p_image_indices.add(i) as usize,
            )
        };
        // SAFETY: a live vkfuse swapchain.
        let sc = unsafe { &*(sc.as_raw() as *const Swapchain) };
        let mut slot = sc.presenter.lock();
        if slot.is_none() {
            *slot = Some(new_presenter(d, q, sc)?);
        }
        let Some(pr) = slot.as_ref() else {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        };
        let (Some(copies), Some(s)) = (pr.copies.get(k), pr.ready.get(k)) else {
            return Err(vk::Result::ERROR_OUT_OF_DATE_KHR);
        };
        out_cbs.push(copies[r]);
        in_cbs.push(copies[p]);
        ready.push(*s);
        if crate::log::enabled(crate::log::Level::Debug) {
            // SAFETY: the staging area of image k inside the live host allocation.
            checks.push((
                pr.host as usize + k * pr.stride as usize,
                pr.frame as usize,
                pr.verify[k],
            ));
        }
    }
    submit(r, r_waits, &out_cbs, &[])?;
    submit(p, &[], &in_cbs, &ready)?;
    for (addr, len, verify) in checks {
        // Debug: the frame as copied out of member r, then as the presented image on p holds
        // it (read back into the cleared staging area), once the copies completed.
        let wait_p = || {
            if let Some(f) = d.member(p).and_then(|md| md.fns.queue_wait_idle) {
                // SAFETY: the presenting member's queue, under the exec state lock.
                let _ = unsafe { f(q.handles[p]) };
            }
        };
        wait_p();
        // SAFETY: `len` bytes of the live host allocation; every copy into them completed.
        let hash = || fnv1a64(unsafe { std::slice::from_raw_parts(addr as *const u8, len) });
        let sent = hash();
        // SAFETY: as above; no copy is pending on the staging area.
        unsafe { std::ptr::write_bytes(addr as *mut u8, 0, len) };
        submit(p, &[], &[verify], &[])?;
        wait_p();
        crate::debug!(
            "frame rendered on member {r} copied to member {p}: {len} bytes, fnv1a64 {sent:016x}; the presented image holds fnv1a64 {:016x}",
            hash()
        );
    }
    Ok(ready)
}
