//! Command pools and command buffers. A fused command buffer holds one member command buffer
//! per resident member; every `vkCmd*` is recorded into each (generated code).

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::generated::translate as tr;
use crate::object::{CommandBuffer, Device, Header, ObjectBase, Tag, Target};
use crate::MAX_MEMBERS;

/// A command pool remembers its command buffers: destroying the pool frees them.
#[repr(C)]
pub struct CommandPool {
    pub base: ObjectBase,
    pub buffers: parking_lot::Mutex<Vec<u64>>,
}

fn dev<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
    // SAFETY: the application passes a live device.
    unsafe { Device::resolve(h) }
}

/// # Safety
/// Arguments valid for `vkCreateCommandPool`.
pub unsafe extern "system" fn create_command_pool(
    device: vk::Device,
    ci: *const vk::CommandPoolCreateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::CommandPool,
) -> vk::Result {
    crate::guard::result("vkCreateCommandPool", || {
        let d = dev(device)?;
        let arena = Arena::scope();
        let mut pool = Box::new(CommandPool {
            base: ObjectBase::bare(vk::ObjectType::COMMAND_POOL),
            buffers: parking_lot::Mutex::new(Vec::new()),
        });
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .create_command_pool
                .ok_or_else(|| crate::guard::missing("vkCreateCommandPool"))?;
            let mut p = vk::CommandPool::null();
            // SAFETY: create info translated for the member (queue family index).
            let r = unsafe {
                f(
                    md.handle,
                    cx.one(ci, tr::fix_command_pool_create_info),
                    alloc,
                    &mut p,
                )
            };
            if r != vk::Result::SUCCESS {
                destroy_members(d, &pool.base, alloc);
                return Err(r);
            }
            pool.base.handles[md.index] = p.as_raw();
        }
        // SAFETY: valid output pointer.
        unsafe { *out = vk::CommandPool::from_raw(Box::into_raw(pool) as u64) };
        Ok(vk::Result::SUCCESS)
    })
}

fn destroy_members(d: &Device, base: &ObjectBase, alloc: *const vk::AllocationCallbacks) {
    for md in &d.members {
        let h = base.handles[md.index];
        if h != 0 {
            if let Some(f) = md.fns.destroy_command_pool {
                // SAFETY: the member pool is ours.
                unsafe { f(md.handle, vk::CommandPool::from_raw(h), alloc) };
            }
        }
    }
}

/// # Safety
/// Arguments valid for `vkDestroyCommandPool`.
pub unsafe extern "system" fn destroy_command_pool(
    device: vk::Device,
    pool: vk::CommandPool,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyCommandPool", || {
        if pool.is_null() {
            return Ok(());
        }
        let d = dev(device)?;
        // SAFETY: made by create_command_pool; the application no longer uses it.
        let pool = unsafe { Box::from_raw(pool.as_raw() as *mut CommandPool) };
        destroy_members(d, &pool.base, alloc);
        for cb in pool.buffers.lock().drain(..) {
            // SAFETY: command buffers of the pool are freed with it (vkDestroyCommandPool).
            drop(unsafe { Box::from_raw(cb as *mut CommandBuffer) });
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkAllocateCommandBuffers`.
pub unsafe extern "system" fn allocate_command_buffers(
    device: vk::Device,
    info: *const vk::CommandBufferAllocateInfo,
    out: *mut vk::CommandBuffer,
) -> vk::Result {
    crate::guard::result("vkAllocateCommandBuffers", || {
        let d = dev(device)?;
        // SAFETY: valid allocate info.
        let ai = unsafe { &*info };
        let n = ai.command_buffer_count as usize;
        // SAFETY: the pool handle is a live vkfuse pool.
        let pool = unsafe { &*(ai.command_pool.as_raw() as *const CommandPool) };
        let arena = Arena::scope();
        let mut per: Vec<[vk::CommandBuffer; MAX_MEMBERS]> =
            vec![[vk::CommandBuffer::null(); MAX_MEMBERS]; n];
        let undo = |per: &[[vk::CommandBuffer; MAX_MEMBERS]]| {
            for md in &d.members {
                let list: Vec<vk::CommandBuffer> = per
                    .iter()
                    .map(|p| p[md.index])
                    .filter(|h| !h.is_null())
                    .collect();
                if let (Some(f), false) = (md.fns.free_command_buffers, list.is_empty()) {
                    // SAFETY: member command buffers we allocated from the member pool.
                    unsafe {
                        f(
                            md.handle,
                            vk::CommandPool::from_raw(pool.base.handles[md.index]),
                            list.len() as u32,
                            list.as_ptr(),
                        )
                    };
                }
            }
        };
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .allocate_command_buffers
                .ok_or_else(|| crate::guard::missing("vkAllocateCommandBuffers"))?;
            let mut tmp = vec![vk::CommandBuffer::null(); n];
            // SAFETY: info translated for the member; room for n handles.
            let r = unsafe {
                f(
                    md.handle,
                    cx.one(info, tr::fix_command_buffer_allocate_info),
                    tmp.as_mut_ptr(),
                )
            };
            if r != vk::Result::SUCCESS {
                undo(&per);
                return Err(r);
            }
            for (i, h) in tmp.into_iter().enumerate() {
                per[i][md.index] = h;
            }
        }
        let mut list = pool.buffers.lock();
        for (i, handles) in per.into_iter().enumerate() {
            let mut targets = [Target {
                handle: vk::CommandBuffer::null(),
                member: std::ptr::null(),
            }; MAX_MEMBERS];
            for (t, md) in targets.iter_mut().zip(&d.members) {
                *t = Target {
                    handle: handles[md.index],
                    member: md,
                };
            }
            let cb = Box::new(CommandBuffer {
                header: Header::new(Tag::CommandBuffer),
                device: d,
                handles,
                level: ai.level,
                targets,
                target_count: d.members.len(),
                notes: parking_lot::Mutex::new(Vec::new()),
                access: parking_lot::Mutex::new(crate::access::AccessSet::default()),
                transitions: parking_lot::Mutex::new(Vec::new()),
                compute: parking_lot::Mutex::new(Default::default()),
            });
            let raw = Box::into_raw(cb) as u64;
            list.push(raw);
            // SAFETY: `out` has room for commandBufferCount handles.
            unsafe { *out.add(i) = vk::CommandBuffer::from_raw(raw) };
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkFreeCommandBuffers`.
pub unsafe extern "system" fn free_command_buffers(
    device: vk::Device,
    pool: vk::CommandPool,
    n: u32,
    cbs: *const vk::CommandBuffer,
) {
    crate::guard::void("vkFreeCommandBuffers", || {
        let d = dev(device)?;
        // SAFETY: a live vkfuse pool.
        let pool = unsafe { &*(pool.as_raw() as *const CommandPool) };
        // SAFETY: `cbs` has n elements, each null or a live command buffer of the pool.
        let list: Vec<u64> = (0..n as usize)
            .map(|i| unsafe { *cbs.add(i) }.as_raw())
            .filter(|h| *h != 0)
            .collect();
        for md in &d.members {
            let members: Vec<vk::CommandBuffer> = list
                .iter()
                // SAFETY: live vkfuse command buffers.
                .map(|h| unsafe { (*(*h as *const CommandBuffer)).handles[md.index] })
                .collect();
            if let (Some(f), false) = (md.fns.free_command_buffers, members.is_empty()) {
                // SAFETY: the member's command buffers from the member's pool.
                unsafe {
                    f(
                        md.handle,
                        vk::CommandPool::from_raw(pool.base.handles[md.index]),
                        members.len() as u32,
                        members.as_ptr(),
                    )
                };
            }
        }
        let mut owned = pool.buffers.lock();
        for h in list {
            owned.retain(|x| *x != h);
            // SAFETY: made by allocate_command_buffers and no longer used.
            drop(unsafe { Box::from_raw(h as *mut CommandBuffer) });
        }
        Ok(())
    })
}

/// `vkBeginCommandBuffer`: inheritance info is read only for secondary command buffers, its
/// render pass and framebuffer only when they continue a render pass.
///
/// # Safety
/// Arguments valid for `vkBeginCommandBuffer`.
pub unsafe extern "system" fn begin_command_buffer(
    cb: vk::CommandBuffer,
    info: *const vk::CommandBufferBeginInfo,
) -> vk::Result {
    crate::guard::result("vkBeginCommandBuffer", || {
        // SAFETY: a live command buffer.
        let (c, d) = unsafe { CommandBuffer::resolve(cb)? };
        c.notes.lock().clear();
        *c.access.lock() = crate::access::AccessSet::default();
        c.transitions.lock().clear();
        // Secondaries keep a log too: the primaries that execute them take it over.
        *c.compute.lock() =
            crate::access::ComputeBinds::new(c.collects() && crate::config::Config::get().splits());
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .begin_command_buffer
                .ok_or_else(|| crate::guard::missing("vkBeginCommandBuffer"))?;
            let copy = arena.alloc::<vk::CommandBufferBeginInfo>(1);
            // SAFETY: a valid begin info copied into the arena and rewritten for the member.
            let r = unsafe {
                copy.write(*info);
                (*copy).p_next = tr::chain(&cx, (*copy).p_next);
                (*copy).p_inheritance_info = if c.level == vk::CommandBufferLevel::SECONDARY
                    && !(*copy).p_inheritance_info.is_null()
                {
                    // renderPass and framebuffer are read only inside a render pass.
                    let mut inh = *(*copy).p_inheritance_info;
                    if !(*copy)
                        .flags
                        .contains(vk::CommandBufferUsageFlags::RENDER_PASS_CONTINUE)
                    {
                        inh.render_pass = vk::RenderPass::null();
                        inh.framebuffer = vk::Framebuffer::null();
                    }
                    cx.one(&inh, tr::fix_command_buffer_inheritance_info)
                } else {
                    std::ptr::null()
                };
                f(c.handles[md.index], copy)
            };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        Ok(vk::Result::SUCCESS)
    })
}
