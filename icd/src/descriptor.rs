//! Descriptor pools, sets and update templates.
//!
//! A pool remembers its sets (resetting or destroying the pool frees them); a template keeps
//! its entries, because template data carries handles in raw bytes.

use std::ffi::c_void;

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::generated::translate as tr;
use crate::object::{CommandBuffer, Device, ObjectBase};
use crate::MAX_MEMBERS;

#[repr(C)]
pub struct DescriptorPool {
    pub base: ObjectBase,
    pub sets: parking_lot::Mutex<Vec<u64>>,
}

#[repr(C)]
pub struct UpdateTemplate {
    pub base: ObjectBase,
    pub entries: Vec<vk::DescriptorUpdateTemplateEntry>,
}

fn dev<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
    // SAFETY: the application passes a live device.
    unsafe { Device::resolve(h) }
}

fn base() -> ObjectBase {
    ObjectBase::bare(vk::ObjectType::DESCRIPTOR_POOL)
}

/// # Safety
/// Arguments valid for `vkCreateDescriptorPool`.
pub unsafe extern "system" fn create_descriptor_pool(
    device: vk::Device,
    ci: *const vk::DescriptorPoolCreateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::DescriptorPool,
) -> vk::Result {
    crate::guard::result("vkCreateDescriptorPool", || {
        let d = dev(device)?;
        let mut pool = Box::new(DescriptorPool {
            base: base(),
            sets: parking_lot::Mutex::new(Vec::new()),
        });
        for md in &d.members {
            let f = md
                .fns
                .create_descriptor_pool
                .ok_or_else(|| crate::guard::missing("vkCreateDescriptorPool"))?;
            let mut p = vk::DescriptorPool::null();
            // SAFETY: the create info holds no handles.
            let r = unsafe { f(md.handle, ci, alloc, &mut p) };
            if r != vk::Result::SUCCESS {
                destroy_members(d, &pool.base, alloc);
                return Err(r);
            }
            pool.base.handles[md.index] = p.as_raw();
        }
        // SAFETY: valid output pointer.
        unsafe { *out = vk::DescriptorPool::from_raw(Box::into_raw(pool) as u64) };
        Ok(vk::Result::SUCCESS)
    })
}

fn destroy_members(d: &Device, base: &ObjectBase, alloc: *const vk::AllocationCallbacks) {
    for md in &d.members {
        let h = base.handles[md.index];
        if let (Some(f), true) = (md.fns.destroy_descriptor_pool, h != 0) {
            // SAFETY: the member pool is ours.
            unsafe { f(md.handle, vk::DescriptorPool::from_raw(h), alloc) };
        }
    }
}

fn free_sets(sets: &mut Vec<u64>) {
    crate::access::sets_freed(sets);
    for s in sets.drain(..) {
        // SAFETY: set objects made by allocate_descriptor_sets; freed with their pool.
        unsafe { ObjectBase::free(s) };
    }
}

/// # Safety
/// Arguments valid for `vkDestroyDescriptorPool`.
pub unsafe extern "system" fn destroy_descriptor_pool(
    device: vk::Device,
    pool: vk::DescriptorPool,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyDescriptorPool", || {
        if pool.is_null() {
            return Ok(());
        }
        let d = dev(device)?;
        // SAFETY: made by create_descriptor_pool; no longer used.
        let pool = unsafe { Box::from_raw(pool.as_raw() as *mut DescriptorPool) };
        destroy_members(d, &pool.base, alloc);
        free_sets(&mut pool.sets.lock());
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkResetDescriptorPool`.
pub unsafe extern "system" fn reset_descriptor_pool(
    device: vk::Device,
    pool: vk::DescriptorPool,
    flags: vk::DescriptorPoolResetFlags,
) -> vk::Result {
    crate::guard::result("vkResetDescriptorPool", || {
        let d = dev(device)?;
        // SAFETY: a live vkfuse pool.
        let pool = unsafe { &*(pool.as_raw() as *const DescriptorPool) };
        for md in &d.members {
            let f = md
                .fns
                .reset_descriptor_pool
                .ok_or_else(|| crate::guard::missing("vkResetDescriptorPool"))?;
            // SAFETY: the member's pool.
            let r = unsafe {
                f(
                    md.handle,
                    vk::DescriptorPool::from_raw(pool.base.handles[md.index]),
                    flags,
                )
            };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        free_sets(&mut pool.sets.lock());
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkAllocateDescriptorSets`.
pub unsafe extern "system" fn allocate_descriptor_sets(
    device: vk::Device,
    info: *const vk::DescriptorSetAllocateInfo,
    out: *mut vk::DescriptorSet,
) -> vk::Result {
    crate::guard::result("vkAllocateDescriptorSets", || {
        let d = dev(device)?;
        // SAFETY: valid allocate info with a live pool.
        let (ai, pool) = unsafe {
            (
                &*info,
                &*((*info).descriptor_pool.as_raw() as *const DescriptorPool),
            )
        };
        let n = ai.descriptor_set_count as usize;
        let arena = Arena::scope();
        let mut per = vec![[0u64; MAX_MEMBERS]; n];
        let undo = |per: &[[u64; MAX_MEMBERS]]| {
            for md in &d.members {
                let list: Vec<vk::DescriptorSet> = per
                    .iter()
                    .map(|p| vk::DescriptorSet::from_raw(p[md.index]))
                    .filter(|h| !h.is_null())
                    .collect();
                if let (Some(f), false) = (md.fns.free_descriptor_sets, list.is_empty()) {
                    // SAFETY: member sets just allocated from the member pool (which may lack
                    // FREE_DESCRIPTOR_SET; then the pool reset by the application reclaims them).
                    let _ = unsafe {
                        f(
                            md.handle,
                            vk::DescriptorPool::from_raw(pool.base.handles[md.index]),
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
                .allocate_descriptor_sets
                .ok_or_else(|| crate::guard::missing("vkAllocateDescriptorSets"))?;
            let mut tmp = vec![vk::DescriptorSet::null(); n];
            // SAFETY: info translated for the member; room for n sets.
            let r = unsafe {
                f(
                    md.handle,
                    cx.one(info, tr::fix_descriptor_set_allocate_info),
                    tmp.as_mut_ptr(),
                )
            };
            if r != vk::Result::SUCCESS {
                undo(&per);
                return Err(r);
            }
            for (i, s) in tmp.into_iter().enumerate() {
                per[i][md.index] = s.as_raw();
            }
        }
        let mut sets = pool.sets.lock();
        let first = sets.len();
        for (i, handles) in per.into_iter().enumerate() {
            let raw = Box::new(ObjectBase {
                handles,
                ..ObjectBase::bare(vk::ObjectType::DESCRIPTOR_SET)
            })
            .into_raw();
            sets.push(raw);
            // SAFETY: room for descriptorSetCount handles.
            unsafe { *out.add(i) = vk::DescriptorSet::from_raw(raw) };
        }
        if n > 0 {
            // SAFETY: descriptorSetCount layouts (VUID-VkDescriptorSetAllocateInfo-pSetLayouts-parameter).
            let layouts = unsafe { std::slice::from_raw_parts(ai.p_set_layouts, n) };
            crate::access::sets_allocated(d, layouts, &sets[first..]);
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkFreeDescriptorSets`.
pub unsafe extern "system" fn free_descriptor_sets(
    device: vk::Device,
    pool: vk::DescriptorPool,
    n: u32,
    sets: *const vk::DescriptorSet,
) -> vk::Result {
    crate::guard::result("vkFreeDescriptorSets", || {
        let d = dev(device)?;
        // SAFETY: a live vkfuse pool; `sets` has n entries, each null or a live set of the pool.
        let pool = unsafe { &*(pool.as_raw() as *const DescriptorPool) };
        // SAFETY: `sets` has n elements (VUID-vkFreeDescriptorSets-pDescriptorSets-parameter).
        let list: Vec<u64> = (0..n as usize)
            .map(|i| unsafe { *sets.add(i) }.as_raw())
            .filter(|h| *h != 0)
            .collect();
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .free_descriptor_sets
                .ok_or_else(|| crate::guard::missing("vkFreeDescriptorSets"))?;
            let members: Vec<vk::DescriptorSet> = list
                .iter()
                .map(|h| cx.nd(vk::DescriptorSet::from_raw(*h)))
                .collect();
            // SAFETY: the member's sets of the member's pool.
            let r = unsafe {
                f(
                    md.handle,
                    vk::DescriptorPool::from_raw(pool.base.handles[md.index]),
                    members.len() as u32,
                    members.as_ptr(),
                )
            };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        crate::access::sets_freed(&list);
        let mut owned = pool.sets.lock();
        for h in list {
            owned.retain(|x| *x != h);
            // SAFETY: made by allocate_descriptor_sets; no longer used.
            unsafe { ObjectBase::free(h) };
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkCreateDescriptorUpdateTemplate`.
pub unsafe extern "system" fn create_descriptor_update_template(
    device: vk::Device,
    ci: *const vk::DescriptorUpdateTemplateCreateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::DescriptorUpdateTemplate,
) -> vk::Result {
    crate::guard::result("vkCreateDescriptorUpdateTemplate", || {
        let d = dev(device)?;
        // SAFETY: valid create info with descriptorUpdateEntryCount entries.
        let entries = unsafe {
            let c = &*ci;
            std::slice::from_raw_parts(
                c.p_descriptor_update_entries,
                c.descriptor_update_entry_count as usize,
            )
            .to_vec()
        };
        let mut t = Box::new(UpdateTemplate {
            base: ObjectBase::bare(vk::ObjectType::DESCRIPTOR_UPDATE_TEMPLATE),
            entries,
        });
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .create_descriptor_update_template
                .ok_or_else(|| crate::guard::missing("vkCreateDescriptorUpdateTemplate"))?;
            let mut h = vk::DescriptorUpdateTemplate::null();
            // SAFETY: create info translated (layouts) for the member.
            let r = unsafe {
                f(
                    md.handle,
                    cx.one(ci, tr::fix_descriptor_update_template_create_info),
                    alloc,
                    &mut h,
                )
            };
            if r != vk::Result::SUCCESS {
                destroy_template_members(d, &t.base, alloc);
                return Err(r);
            }
            t.base.handles[md.index] = h.as_raw();
        }
        // SAFETY: valid output pointer.
        unsafe { *out = vk::DescriptorUpdateTemplate::from_raw(Box::into_raw(t) as u64) };
        Ok(vk::Result::SUCCESS)
    })
}

fn destroy_template_members(d: &Device, base: &ObjectBase, alloc: *const vk::AllocationCallbacks) {
    for md in &d.members {
        let h = base.handles[md.index];
        if let (Some(f), true) = (md.fns.destroy_descriptor_update_template, h != 0) {
            // SAFETY: the member's template.
            unsafe { f(md.handle, vk::DescriptorUpdateTemplate::from_raw(h), alloc) };
        }
    }
}

/// # Safety
/// Arguments valid for `vkDestroyDescriptorUpdateTemplate`.
pub unsafe extern "system" fn destroy_descriptor_update_template(
    device: vk::Device,
    t: vk::DescriptorUpdateTemplate,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyDescriptorUpdateTemplate", || {
        if t.is_null() {
            return Ok(());
        }
        let d = dev(device)?;
        // SAFETY: made by create_descriptor_update_template; no longer used.
        let t = unsafe { Box::from_raw(t.as_raw() as *mut UpdateTemplate) };
        destroy_template_members(d, &t.base, alloc);
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkUpdateDescriptorSetWithTemplate`.
pub unsafe extern "system" fn update_descriptor_set_with_template(
    device: vk::Device,
    set: vk::DescriptorSet,
    t: vk::DescriptorUpdateTemplate,
    data: *const c_void,
) {
    crate::guard::void("vkUpdateDescriptorSetWithTemplate", || {
        let d = dev(device)?;
        // SAFETY: a live vkfuse template.
        let tpl = unsafe { &*(t.as_raw() as *const UpdateTemplate) };
        if d.exec.multi {
            let mut leads = crate::access::Leads::none();
            // SAFETY: data laid out by the template's entries; the application's live set.
            unsafe {
                crate::access::feed_template(&tpl.entries, data, &mut leads);
                crate::access::merge(set.as_raw(), &leads);
                crate::access::template_updated(set.as_raw(), &tpl.entries, data);
            }
        }
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .update_descriptor_set_with_template
                .ok_or_else(|| crate::guard::missing("vkUpdateDescriptorSetWithTemplate"))?;
            // SAFETY: data laid out by the template's entries; handles translated for the member.
            unsafe {
                f(
                    md.handle,
                    cx.nd(set),
                    cx.nd(t),
                    crate::conv::template_data(&cx, &tpl.entries, data),
                )
            };
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkCmdPushDescriptorSetWithTemplateKHR`.
pub unsafe extern "system" fn cmd_push_descriptor_set_with_template(
    cb: vk::CommandBuffer,
    t: vk::DescriptorUpdateTemplate,
    layout: vk::PipelineLayout,
    set: u32,
    data: *const c_void,
) {
    crate::guard::void("vkCmdPushDescriptorSetWithTemplateKHR", || {
        // SAFETY: a live command buffer and template.
        let (c, d) = unsafe { CommandBuffer::resolve(cb)? };
        // SAFETY: as above.
        let tpl = unsafe { &*(t.as_raw() as *const UpdateTemplate) };
        if c.collects() {
            // SAFETY: data laid out by the template's entries.
            unsafe { crate::access::feed_template(&tpl.entries, data, &mut *c.access.lock()) };
            crate::access::breaks_split_log(c, "push descriptors");
        }
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .cmd_push_descriptor_set_with_template_khr
                .ok_or_else(|| crate::guard::missing("vkCmdPushDescriptorSetWithTemplateKHR"))?;
            // SAFETY: as in update_descriptor_set_with_template.
            unsafe {
                f(
                    c.handles[md.index],
                    cx.nd(t),
                    cx.nd(layout),
                    set,
                    crate::conv::template_data(&cx, &tpl.entries, data),
                )
            };
        }
        Ok(())
    })
}
