//! Record-time image layouts: the layout changes a command buffer makes, in recording order, so
//! that at submit time vkfuse knows the layout each image subresource is in after the command
//! buffer ran (for copying images between members). Only collected on devices that copy
//! images between members (batches on several members of different drivers,
//! `Exec::copies_images`): other devices pay nothing beyond one test per hooked command.
//!
//! Layouts change at:
//! - image memory barriers of `vkCmdPipelineBarrier(2)` and `vkCmdWaitEvents(2)`: the barrier's
//!   `newLayout`, unless it equals `oldLayout` (then it is no transition);
//! - render passes (`vkCmdBeginRenderPass(2)`): every attachment ends the render pass in its
//!   `finalLayout` (its stencil aspect in `stencilFinalLayout` where a render pass made with
//!   `vkCreateRenderPass2` chains `VkAttachmentDescriptionStencilLayout` to the attachment).
//!   They are recorded when the render pass begins: no batch boundary falls inside a render
//!   pass, and barriers inside one cannot change layouts. Every attachment is recorded, even
//!   where its final layout is the one it was already in (the consumer skips no-ops).
//!
//! Dynamic rendering changes no layouts. The subresources of an attachment are those of its
//! image view, as created (a 2D view of a 3D image names depth slices as array layers; the
//! consumer resolves ranges against the image).
//!
//! The hooks are `after` lines of `codegen/overrides.txt`: the creation of image views, render
//! passes and framebuffers fills side tables here (only on devices that copy images), their
//! destruction empties them (before the object is freed, so a handle
//! value is never reused while its entry stands), and the recorded commands above append
//! [`Transition`]s to the command buffer. Handles are only keys here, never dereferenced: an
//! unknown one (an invalid handle, or a view whose creation vkfuse did not see) is skipped.
//! `exec.rs` joins secondaries' transitions at `vkCmdExecuteCommands` ([`execute_commands`])
//! and reads a submit's with [`of_batches`].

use std::collections::BTreeMap;

use ash::vk;
use ash::vk::Handle as _;

use crate::object::{CommandBuffer, Device};

/// A layout change recorded in a command buffer, in recording order.
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    /// The fused image (raw vkfuse handle, as the application passed it).
    pub image: u64,
    /// The subresources, as the application gave them (VK_REMAINING_MIP_LEVELS /
    /// VK_REMAINING_ARRAY_LAYERS left as they are; the consumer resolves them against the image).
    pub range: vk::ImageSubresourceRange,
    /// The layout they are in afterwards.
    pub layout: vk::ImageLayout,
}

// `vk::ImageSubresourceRange` does not implement `PartialEq`: compare it field by field.
impl PartialEq for Transition {
    fn eq(&self, o: &Transition) -> bool {
        let (a, b) = (&self.range, &o.range);
        self.image == o.image
            && self.layout == o.layout
            && a.aspect_mask == b.aspect_mask
            && a.base_mip_level == b.base_mip_level
            && a.level_count == b.level_count
            && a.base_array_layer == b.base_array_layer
            && a.layer_count == b.layer_count
    }
}

impl Eq for Transition {}

/// The transitions of `cbs` in order (each command buffer's list, concatenated).
pub fn of_batches<'a>(cbs: impl Iterator<Item = &'a CommandBuffer>) -> Vec<Transition> {
    let mut out = Vec::new();
    for cb in cbs {
        out.extend_from_slice(&cb.transitions.lock());
    }
    out
}

/// vkCmdExecuteCommands: appends each secondary's transitions to the primary's, in order (skip a
/// secondary that is the primary itself).
pub fn execute_commands(cb: &CommandBuffer, secondaries: &[&CommandBuffer]) {
    if cb.collects() && tracked(cb) {
        append(cb, secondaries);
    }
}

/// Whether `cb` (which collects) records layouts: only images of members of different drivers
/// are copied between members (`images.rs`), so only their devices need them.
fn tracked(cb: &CommandBuffer) -> bool {
    // SAFETY: a command buffer that collects has its device, which outlives it.
    unsafe { &*cb.device }.exec.copies_images()
}

fn append(cb: &CommandBuffer, secondaries: &[&CommandBuffer]) {
    let mut t = cb.transitions.lock();
    for s in secondaries {
        if !std::ptr::eq(*s, cb) {
            t.extend_from_slice(&s.transitions.lock());
        }
    }
}

/// An image view: its image and subresources.
#[derive(Clone, Copy, Debug)]
struct View {
    image: u64,
    range: vk::ImageSubresourceRange,
}

/// The layouts a render pass attachment ends in: `layout` for its aspects, or only for those
/// other than stencil when `stencil` gives the stencil aspect's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Final {
    layout: vk::ImageLayout,
    stencil: Option<vk::ImageLayout>,
    /// The render pass has one subpass and the attachment starts in `UNDEFINED`: its
    /// contents are discarded as the render pass begins (aspects other than stencil, and the
    /// stencil aspect, whose initial layout `VkAttachmentDescriptionStencilLayout` may give
    /// apart).
    discarded: (bool, bool),
}

/// What the creation of views, render passes and framebuffers told, by raw handle.
struct Tables {
    views: BTreeMap<u64, View>,
    render_passes: BTreeMap<u64, Vec<Final>>,
    /// Framebuffers with image views (imageless ones name theirs at begin).
    framebuffers: BTreeMap<u64, Vec<u64>>,
}

/// Handles are addresses of live vkfuse objects, unique across devices: one table serves all.
static TABLES: parking_lot::RwLock<Tables> = parking_lot::const_rwlock(Tables {
    views: BTreeMap::new(),
    render_passes: BTreeMap::new(),
    framebuffers: BTreeMap::new(),
});

/// `n` elements at `p`, or none when `p` is null (`access.rs` uses it too).
///
/// # Safety
/// `p` is null or points to `n` valid elements that outlive the slice.
pub(crate) unsafe fn slice<'a, T>(p: *const T, n: u32) -> &'a [T] {
    if p.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: caller contract.
    unsafe { std::slice::from_raw_parts(p, n as usize) }
}

/// Appends the transition of an image barrier, unless it keeps the layout (or names no image).
fn barrier(
    out: &mut Vec<Transition>,
    image: u64,
    range: vk::ImageSubresourceRange,
    old: vk::ImageLayout,
    new: vk::ImageLayout,
) {
    if old != new && image != 0 {
        out.push(Transition {
            image,
            range,
            layout: new,
        });
    }
}

/// Appends the transitions of `count` barriers at `barriers`.
///
/// # Safety
/// `barriers` is null or points to `count` valid barriers.
unsafe fn barriers(out: &mut Vec<Transition>, count: u32, barriers: *const vk::ImageMemoryBarrier) {
    // SAFETY: caller contract.
    for b in unsafe { slice(barriers, count) } {
        barrier(
            out,
            b.image.as_raw(),
            b.subresource_range,
            b.old_layout,
            b.new_layout,
        );
    }
}

/// Appends the transitions of the image barriers of `infos`.
///
/// # Safety
/// `infos` holds valid dependency infos.
unsafe fn dependencies(out: &mut Vec<Transition>, infos: &[vk::DependencyInfo]) {
    for info in infos {
        // SAFETY: a valid dependency info's image barrier array (caller contract).
        let bs = unsafe {
            slice(
                info.p_image_memory_barriers,
                info.image_memory_barrier_count,
            )
        };
        for b in bs {
            barrier(
                out,
                b.image.as_raw(),
                b.subresource_range,
                b.old_layout,
                b.new_layout,
            );
        }
    }
}

/// After `vkCmdPipelineBarrier` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdPipelineBarrier`.
#[allow(clippy::too_many_arguments)] // Reason: the command's own parameters (an `after` hook).
pub unsafe fn pipeline_barrier(
    cb: &CommandBuffer,
    _src: vk::PipelineStageFlags,
    _dst: vk::PipelineStageFlags,
    _flags: vk::DependencyFlags,
    _memory_count: u32,
    _memory: *const vk::MemoryBarrier,
    _buffer_count: u32,
    _buffer: *const vk::BufferMemoryBarrier,
    image_count: u32,
    images: *const vk::ImageMemoryBarrier,
) {
    if tracked(cb) {
        // SAFETY: `image_count` valid image barriers (caller contract).
        unsafe { barriers(&mut cb.transitions.lock(), image_count, images) };
    }
}

/// After `vkCmdPipelineBarrier2` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdPipelineBarrier2`.
pub unsafe fn pipeline_barrier2(cb: &CommandBuffer, info: *const vk::DependencyInfo) {
    if tracked(cb) {
        // SAFETY: one valid dependency info (caller contract).
        unsafe { dependencies(&mut cb.transitions.lock(), slice(info, 1)) };
    }
}

/// After `vkCmdWaitEvents` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdWaitEvents`.
#[allow(clippy::too_many_arguments)] // Reason: the command's own parameters (an `after` hook).
pub unsafe fn wait_events(
    cb: &CommandBuffer,
    _event_count: u32,
    _events: *const vk::Event,
    _src: vk::PipelineStageFlags,
    _dst: vk::PipelineStageFlags,
    _memory_count: u32,
    _memory: *const vk::MemoryBarrier,
    _buffer_count: u32,
    _buffer: *const vk::BufferMemoryBarrier,
    image_count: u32,
    images: *const vk::ImageMemoryBarrier,
) {
    if tracked(cb) {
        // SAFETY: `image_count` valid image barriers (caller contract).
        unsafe { barriers(&mut cb.transitions.lock(), image_count, images) };
    }
}

/// After `vkCmdWaitEvents2` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdWaitEvents2`.
pub unsafe fn wait_events2(
    cb: &CommandBuffer,
    event_count: u32,
    _events: *const vk::Event,
    infos: *const vk::DependencyInfo,
) {
    // SAFETY: one valid dependency info per event (caller contract).
    unsafe { dependencies(&mut cb.transitions.lock(), slice(infos, event_count)) };
}

/// Appends the final layouts of the attachments of render pass `rp` whose views are `views`
/// (in attachment order). Attachments whose view or render pass vkfuse does not know are left
/// out.
fn attachments(
    tables: &Tables,
    rp: u64,
    views: impl Iterator<Item = u64>,
    out: &mut Vec<Transition>,
) {
    let Some(finals) = tables.render_passes.get(&rp) else {
        return;
    };
    let stencil = vk::ImageAspectFlags::STENCIL;
    for (f, view) in finals.iter().zip(views) {
        let Some(v) = tables.views.get(&view) else {
            continue;
        };
        match f.stencil {
            Some(s) if v.range.aspect_mask.contains(stencil) => {
                let rest = v.range.aspect_mask & !stencil;
                for (aspect_mask, layout) in [(rest, f.layout), (stencil, s)] {
                    if !aspect_mask.is_empty() {
                        out.push(Transition {
                            image: v.image,
                            range: vk::ImageSubresourceRange {
                                aspect_mask,
                                ..v.range
                            },
                            layout,
                        });
                    }
                }
            }
            _ => out.push(Transition {
                image: v.image,
                range: v.range,
                layout: f.layout,
            }),
        }
    }
}

/// A render pass begins: every attachment ends it in its final layout. The views are the
/// framebuffer's, or those `VkRenderPassAttachmentBeginInfo` names for an imageless one.
///
/// # Safety
/// `begin` is null or points to a valid `VkRenderPassBeginInfo`.
unsafe fn render_pass_begun(cb: &CommandBuffer, begin: *const vk::RenderPassBeginInfo) {
    if begin.is_null() {
        return;
    }
    // SAFETY: caller contract.
    let begin = unsafe { &*begin };
    let rp = begin.render_pass.as_raw();
    let tables = TABLES.read();
    // SAFETY: a valid begin info.
    let views = unsafe { begin_views(&tables, begin) };
    attachments(&tables, rp, views.into_iter(), &mut cb.transitions.lock());
}

/// The subresources of attachments whose contents a render pass discards as it begins (one
/// subpass, initial layout `UNDEFINED`): (image, subresources) per attachment, for
/// `access.rs`, which calls this before it hands the attachments to the access set.
///
/// # Safety
/// `begin` is null or points to a valid `VkRenderPassBeginInfo`.
pub unsafe fn discarded_at_begin(
    begin: *const vk::RenderPassBeginInfo,
) -> Vec<(u64, vk::ImageSubresourceRange)> {
    // SAFETY: caller contract.
    let Some(begin) = (unsafe { begin.as_ref() }) else {
        return Vec::new();
    };
    let tables = TABLES.read();
    let Some(finals) = tables.render_passes.get(&begin.render_pass.as_raw()) else {
        return Vec::new();
    };
    // SAFETY: as in `render_pass_begun`.
    let views = unsafe { begin_views(&tables, begin) };
    let stencil = vk::ImageAspectFlags::STENCIL;
    let mut out = Vec::new();
    for (f, view) in finals.iter().zip(views) {
        let Some(v) = tables.views.get(&view) else {
            continue;
        };
        let mut aspects = vk::ImageAspectFlags::empty();
        if f.discarded.0 {
            aspects |= v.range.aspect_mask & !stencil;
        }
        if f.discarded.1 {
            aspects |= v.range.aspect_mask & stencil;
        }
        if !aspects.is_empty() {
            out.push((
                v.image,
                vk::ImageSubresourceRange {
                    aspect_mask: aspects,
                    ..v.range
                },
            ));
        }
    }
    out
}

/// The attachments' views of a render pass begin: the framebuffer's, or those
/// `VkRenderPassAttachmentBeginInfo` names for an imageless one.
///
/// # Safety
/// `begin` is a valid `VkRenderPassBeginInfo`.
unsafe fn begin_views(tables: &Tables, begin: &vk::RenderPassBeginInfo) -> Vec<u64> {
    // SAFETY: a valid pNext chain, whose node of this type is a VkRenderPassAttachmentBeginInfo.
    let imageless = unsafe {
        crate::conv::chain_find::<vk::RenderPassAttachmentBeginInfo>(
            begin.p_next,
            vk::StructureType::RENDER_PASS_ATTACHMENT_BEGIN_INFO,
        )
    }
    .filter(|a| a.attachment_count > 0);
    match imageless {
        // SAFETY: attachmentCount views (VUID-VkRenderPassAttachmentBeginInfo-pAttachments-parameter).
        Some(a) => unsafe { slice(a.p_attachments, a.attachment_count) }
            .iter()
            .map(|v| v.as_raw())
            .collect(),
        None => tables
            .framebuffers
            .get(&begin.framebuffer.as_raw())
            .cloned()
            .unwrap_or_default(),
    }
}

/// After `vkCmdBeginRenderPass` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdBeginRenderPass`.
pub unsafe fn begin_render_pass(
    cb: &CommandBuffer,
    begin: *const vk::RenderPassBeginInfo,
    _contents: vk::SubpassContents,
) {
    if tracked(cb) {
        // SAFETY: caller contract.
        unsafe { render_pass_begun(cb, begin) };
    }
}

/// After `vkCmdBeginRenderPass2` (only when `cb` collects).
///
/// # Safety
/// Arguments of a valid `vkCmdBeginRenderPass2`.
pub unsafe fn begin_render_pass2(
    cb: &CommandBuffer,
    begin: *const vk::RenderPassBeginInfo,
    _subpass: *const vk::SubpassBeginInfo,
) {
    if tracked(cb) {
        // SAFETY: caller contract.
        unsafe { render_pass_begun(cb, begin) };
    }
}

/// After `vkCreateImageView`: the view's image and subresources.
///
/// # Safety
/// Arguments of a successful `vkCreateImageView`.
pub unsafe fn image_view_created(
    d: &Device,
    info: *const vk::ImageViewCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    view: *mut vk::ImageView,
) {
    if !d.exec.copies_images() {
        return;
    }
    // SAFETY: a valid create info and the created view.
    let (info, view) = unsafe { (&*info, (*view).as_raw()) };
    TABLES.write().views.insert(
        view,
        View {
            image: info.image.as_raw(),
            range: info.subresource_range,
        },
    );
}

/// After `vkDestroyImageView`, before the view is freed.
///
/// # Safety
/// Arguments of `vkDestroyImageView`.
pub unsafe fn image_view_destroyed(
    d: &Device,
    view: vk::ImageView,
    _alloc: *const vk::AllocationCallbacks,
) {
    if d.exec.copies_images() {
        TABLES.write().views.remove(&view.as_raw());
    }
}

/// The final layouts of a `VkRenderPassCreateInfo`'s attachments.
///
/// # Safety
/// `info` is a valid `VkRenderPassCreateInfo`.
unsafe fn finals(info: &vk::RenderPassCreateInfo) -> Vec<Final> {
    let one = info.subpass_count == 1;
    // SAFETY: attachmentCount descriptions (caller contract).
    unsafe { slice(info.p_attachments, info.attachment_count) }
        .iter()
        .map(|a| {
            let undefined = one && a.initial_layout == vk::ImageLayout::UNDEFINED;
            Final {
                layout: a.final_layout,
                stencil: None,
                discarded: (undefined, undefined),
            }
        })
        .collect()
}

/// The final layouts of a `VkRenderPassCreateInfo2`'s attachments, with their stencil aspects'
/// where `VkAttachmentDescriptionStencilLayout` gives them.
///
/// # Safety
/// `info` is a valid `VkRenderPassCreateInfo2`.
unsafe fn finals2(info: &vk::RenderPassCreateInfo2) -> Vec<Final> {
    let one = info.subpass_count == 1;
    let undefined = |l: vk::ImageLayout| one && l == vk::ImageLayout::UNDEFINED;
    // SAFETY: attachmentCount descriptions (caller contract).
    unsafe { slice(info.p_attachments, info.attachment_count) }
        .iter()
        .map(|a| {
            // SAFETY: a valid description's pNext chain, whose node of this type is a
            // VkAttachmentDescriptionStencilLayout.
            let s = unsafe {
                crate::conv::chain_find::<vk::AttachmentDescriptionStencilLayout>(
                    a.p_next,
                    vk::StructureType::ATTACHMENT_DESCRIPTION_STENCIL_LAYOUT,
                )
            };
            Final {
                layout: a.final_layout,
                stencil: s.map(|s| s.stencil_final_layout),
                discarded: (
                    undefined(a.initial_layout),
                    undefined(s.map_or(a.initial_layout, |s| s.stencil_initial_layout)),
                ),
            }
        })
        .collect()
}

/// After `vkCreateRenderPass`: the attachments' final layouts.
///
/// # Safety
/// Arguments of a successful `vkCreateRenderPass`.
pub unsafe fn render_pass_created(
    d: &Device,
    info: *const vk::RenderPassCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    rp: *mut vk::RenderPass,
) {
    // SAFETY: a valid create info (caller contract).
    unsafe { remember_render_pass(d, rp, || finals(&*info)) };
}

/// After `vkCreateRenderPass2`: the attachments' final layouts, stencil ones included.
///
/// # Safety
/// Arguments of a successful `vkCreateRenderPass2`.
pub unsafe fn render_pass2_created(
    d: &Device,
    info: *const vk::RenderPassCreateInfo2,
    _alloc: *const vk::AllocationCallbacks,
    rp: *mut vk::RenderPass,
) {
    // SAFETY: a valid create info (caller contract).
    unsafe { remember_render_pass(d, rp, || finals2(&*info)) };
}

/// Remembers the final layouts of the render pass just created at `rp`.
///
/// # Safety
/// `rp` points to the created render pass.
unsafe fn remember_render_pass(
    d: &Device,
    rp: *mut vk::RenderPass,
    finals: impl FnOnce() -> Vec<Final>,
) {
    if d.exec.copies_images() {
        // SAFETY: caller contract.
        let rp = unsafe { (*rp).as_raw() };
        TABLES.write().render_passes.insert(rp, finals());
    }
}

/// After `vkDestroyRenderPass`, before the render pass is freed.
///
/// # Safety
/// Arguments of `vkDestroyRenderPass`.
pub unsafe fn render_pass_destroyed(
    d: &Device,
    rp: vk::RenderPass,
    _alloc: *const vk::AllocationCallbacks,
) {
    if d.exec.copies_images() {
        TABLES.write().render_passes.remove(&rp.as_raw());
    }
}

/// After `vkCreateFramebuffer`: the attachments' views (imageless framebuffers name theirs when
/// a render pass begins).
///
/// # Safety
/// Arguments of a successful `vkCreateFramebuffer`.
pub unsafe fn framebuffer_created(
    d: &Device,
    info: *const vk::FramebufferCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    fb: *mut vk::Framebuffer,
) {
    if !d.exec.copies_images() {
        return;
    }
    // SAFETY: a valid create info and the created framebuffer.
    let (info, fb) = unsafe { (&*info, (*fb).as_raw()) };
    if info.flags.contains(vk::FramebufferCreateFlags::IMAGELESS) {
        return;
    }
    // SAFETY: attachmentCount views (VUID-VkFramebufferCreateInfo-flags-02778).
    let views = unsafe { slice(info.p_attachments, info.attachment_count) };
    let views = views.iter().map(|v| v.as_raw()).collect();
    TABLES.write().framebuffers.insert(fb, views);
}

/// After `vkDestroyFramebuffer`, before the framebuffer is freed.
///
/// # Safety
/// Arguments of `vkDestroyFramebuffer`.
pub unsafe fn framebuffer_destroyed(
    d: &Device,
    fb: vk::Framebuffer,
    _alloc: *const vk::AllocationCallbacks,
) {
    if d.exec.copies_images() {
        TABLES.write().framebuffers.remove(&fb.as_raw());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::formats::{aspects, copy_block};
    use crate::object::{Header, Tag, Target};
    use crate::MAX_MEMBERS;

    fn range(aspect_mask: vk::ImageAspectFlags) -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange {
            aspect_mask,
            base_mip_level: 0,
            level_count: vk::REMAINING_MIP_LEVELS,
            base_array_layer: 2,
            layer_count: 1,
        }
    }

    fn tr(image: u64, aspect: vk::ImageAspectFlags, layout: vk::ImageLayout) -> Transition {
        Transition {
            image,
            range: range(aspect),
            layout,
        }
    }

    /// A command buffer with one target, which never collects (no device behind it).
    fn command_buffer() -> CommandBuffer {
        CommandBuffer {
            header: Header::new(Tag::CommandBuffer),
            device: std::ptr::null(),
            handles: [vk::CommandBuffer::null(); MAX_MEMBERS],
            level: vk::CommandBufferLevel::PRIMARY,
            targets: [Target {
                handle: vk::CommandBuffer::null(),
                member: std::ptr::null(),
            }; MAX_MEMBERS],
            target_count: 1,
            notes: parking_lot::Mutex::new(Vec::new()),
            access: parking_lot::Mutex::new(crate::access::AccessSet::default()),
            transitions: parking_lot::Mutex::new(Vec::new()),
            compute: parking_lot::Mutex::new(Default::default()),
        }
    }

    const COLOR: vk::ImageAspectFlags = vk::ImageAspectFlags::COLOR;
    const DEPTH: vk::ImageAspectFlags = vk::ImageAspectFlags::DEPTH;
    const STENCIL: vk::ImageAspectFlags = vk::ImageAspectFlags::STENCIL;

    #[test]
    fn barriers_record_new_layouts_that_differ() {
        let b = |image: u64, old, new| vk::ImageMemoryBarrier {
            image: vk::Image::from_raw(image),
            old_layout: old,
            new_layout: new,
            subresource_range: range(COLOR),
            ..Default::default()
        };
        let bs = [
            b(
                1,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            ),
            // The same layout on both sides (a queue transfer, a barrier inside a render
            // pass): no transition.
            b(2, vk::ImageLayout::GENERAL, vk::ImageLayout::GENERAL),
            b(0, vk::ImageLayout::UNDEFINED, vk::ImageLayout::GENERAL),
            b(
                3,
                vk::ImageLayout::GENERAL,
                vk::ImageLayout::PRESENT_SRC_KHR,
            ),
        ];
        let mut out = Vec::new();
        // SAFETY: four valid barriers; a null array with a count is skipped.
        unsafe {
            barriers(&mut out, 4, bs.as_ptr());
            barriers(&mut out, 3, std::ptr::null());
        }
        assert_eq!(
            out,
            [
                tr(1, COLOR, vk::ImageLayout::TRANSFER_DST_OPTIMAL),
                tr(3, COLOR, vk::ImageLayout::PRESENT_SRC_KHR),
            ]
        );

        let b2 = |image: u64, old, new| vk::ImageMemoryBarrier2 {
            image: vk::Image::from_raw(image),
            old_layout: old,
            new_layout: new,
            subresource_range: range(DEPTH),
            ..Default::default()
        };
        let first = [
            b2(
                4,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL,
            ),
            b2(5, vk::ImageLayout::GENERAL, vk::ImageLayout::GENERAL),
        ];
        let second = [b2(
            4,
            vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
        )];
        let infos = [
            vk::DependencyInfo::default().image_memory_barriers(&first),
            vk::DependencyInfo::default(),
            vk::DependencyInfo::default().image_memory_barriers(&second),
        ];
        let mut out = Vec::new();
        // SAFETY: valid dependency infos.
        unsafe { dependencies(&mut out, &infos) };
        assert_eq!(
            out,
            [
                tr(4, DEPTH, vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL),
                tr(4, DEPTH, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL),
            ]
        );
    }

    #[test]
    fn render_pass_attachments_end_in_their_final_layouts() {
        let color = vk::AttachmentDescription2 {
            final_layout: vk::ImageLayout::PRESENT_SRC_KHR,
            ..Default::default()
        };
        let mut stencil = vk::AttachmentDescriptionStencilLayout {
            stencil_final_layout: vk::ImageLayout::STENCIL_READ_ONLY_OPTIMAL,
            ..Default::default()
        };
        let depth = vk::AttachmentDescription2 {
            final_layout: vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL,
            ..Default::default()
        }
        .push_next(&mut stencil);
        let descs = [color, depth, depth];
        let info = vk::RenderPassCreateInfo2::default().attachments(&descs);
        // SAFETY: a valid create info.
        let f2 = unsafe { finals2(&info) };
        assert_eq!(f2[0].stencil, None);
        assert_eq!(
            f2[1],
            Final {
                layout: vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL,
                stencil: Some(vk::ImageLayout::STENCIL_READ_ONLY_OPTIMAL),
                discarded: (false, false),
            }
        );
        // One subpass: attachments starting in UNDEFINED are discarded as the pass begins
        // (the stencil aspect by its own initial layout).
        let sub = [vk::SubpassDescription2::default()];
        let mut keep_stencil = vk::AttachmentDescriptionStencilLayout {
            stencil_initial_layout: vk::ImageLayout::STENCIL_ATTACHMENT_OPTIMAL,
            ..Default::default()
        };
        let kept = vk::AttachmentDescription2::default().push_next(&mut keep_stencil);
        let descs1 = [vk::AttachmentDescription2::default(), kept];
        let info = vk::RenderPassCreateInfo2::default()
            .attachments(&descs1)
            .subpasses(&sub);
        // SAFETY: a valid create info.
        let one = unsafe { finals2(&info) };
        assert_eq!(one[0].discarded, (true, true));
        assert_eq!(one[1].discarded, (true, false));
        let v1 = [vk::AttachmentDescription {
            final_layout: vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            ..Default::default()
        }];
        // SAFETY: a valid create info.
        let f1 = unsafe { finals(&vk::RenderPassCreateInfo::default().attachments(&v1)) };
        assert_eq!(
            f1,
            [Final {
                layout: vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                stencil: None,
                discarded: (false, false),
            }]
        );

        let view = |image: u64, aspect| View {
            image,
            range: range(aspect),
        };
        let mut tables = Tables {
            views: BTreeMap::new(),
            render_passes: BTreeMap::new(),
            framebuffers: BTreeMap::new(),
        };
        tables.views.insert(10, view(1, COLOR));
        tables.views.insert(11, view(2, DEPTH | STENCIL));
        // A depth-only view: the stencil layout does not concern it.
        tables.views.insert(12, view(3, DEPTH));
        tables.render_passes.insert(20, f2);
        let mut out = Vec::new();
        attachments(&tables, 20, [10, 11, 12].into_iter(), &mut out);
        assert_eq!(
            out,
            [
                tr(1, COLOR, vk::ImageLayout::PRESENT_SRC_KHR),
                tr(2, DEPTH, vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL),
                tr(2, STENCIL, vk::ImageLayout::STENCIL_READ_ONLY_OPTIMAL),
                tr(3, DEPTH, vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL),
            ]
        );
        // Unknown views and render passes add nothing; views past the attachments are ignored.
        let mut out = Vec::new();
        attachments(&tables, 20, [99, 12, 10, 10].into_iter(), &mut out);
        assert_eq!(
            out,
            [
                tr(3, DEPTH, vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL),
                tr(1, COLOR, vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL),
            ]
        );
        attachments(&tables, 21, [10].into_iter(), &mut Vec::new());
    }

    #[test]
    fn begun_render_passes_and_secondaries_append_in_order() {
        // Keys of the global tables that no other test uses.
        let (rp, fb, color, depth) = (0x5_0001, 0x5_0002, 0x5_0003, 0x5_0004);
        {
            let mut t = TABLES.write();
            t.views.insert(
                color,
                View {
                    image: 7,
                    range: range(COLOR),
                },
            );
            t.views.insert(
                depth,
                View {
                    image: 8,
                    range: range(DEPTH),
                },
            );
            let f = |layout| Final {
                layout,
                stencil: None,
                discarded: (false, false),
            };
            t.render_passes.insert(
                rp,
                vec![
                    f(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL),
                    f(vk::ImageLayout::DEPTH_READ_ONLY_OPTIMAL),
                ],
            );
            t.framebuffers.insert(fb, vec![color, depth]);
        }
        let expected = [
            tr(7, COLOR, vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL),
            tr(8, DEPTH, vk::ImageLayout::DEPTH_READ_ONLY_OPTIMAL),
        ];
        let primary = command_buffer();
        let begin = vk::RenderPassBeginInfo {
            render_pass: vk::RenderPass::from_raw(rp),
            framebuffer: vk::Framebuffer::from_raw(fb),
            ..Default::default()
        };
        // SAFETY: a valid begin info.
        unsafe { render_pass_begun(&primary, &begin) };
        assert_eq!(*primary.transitions.lock(), expected);

        // An imageless framebuffer: the views come with the begin info (here swapped; each
        // keeps its own range).
        let secondary = command_buffer();
        let views = [
            vk::ImageView::from_raw(depth),
            vk::ImageView::from_raw(color),
        ];
        let mut named = vk::RenderPassAttachmentBeginInfo::default().attachments(&views);
        let begin = vk::RenderPassBeginInfo {
            render_pass: vk::RenderPass::from_raw(rp),
            framebuffer: vk::Framebuffer::from_raw(0x5_0005),
            ..Default::default()
        }
        .push_next(&mut named);
        // SAFETY: a valid begin info.
        unsafe { render_pass_begun(&secondary, &begin) };
        let swapped = [
            tr(8, DEPTH, vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL),
            tr(7, COLOR, vk::ImageLayout::DEPTH_READ_ONLY_OPTIMAL),
        ];
        assert_eq!(*secondary.transitions.lock(), swapped);

        // Without collection, vkCmdExecuteCommands adds nothing; appending skips the primary.
        execute_commands(&primary, &[&secondary]);
        assert_eq!(primary.transitions.lock().len(), 2);
        append(&primary, &[&secondary, &primary]);
        let all: Vec<Transition> = expected.iter().chain(&swapped).copied().collect();
        assert_eq!(*primary.transitions.lock(), all);
        let batches = of_batches([&secondary, &primary].into_iter());
        assert_eq!(batches.len(), 6);
        assert_eq!(batches[..2], swapped);
        assert_eq!(batches[2..], all[..]);

        let mut t = TABLES.write();
        t.views.remove(&color);
        t.views.remove(&depth);
        t.render_passes.remove(&rp);
        t.framebuffers.remove(&fb);
    }

    /// The texel-block table generated from vk.xml (`generated/formats.rs`), which image copies
    /// between members read beside these transitions.
    #[test]
    fn copy_blocks_follow_the_registry() {
        use vk::Format as F;
        assert_eq!(copy_block(F::R8G8B8A8_UNORM, COLOR), Some((4, 1, 1)));
        assert_eq!(copy_block(F::R16G16B16A16_SFLOAT, COLOR), Some((8, 1, 1)));
        assert_eq!(copy_block(F::BC1_RGB_UNORM_BLOCK, COLOR), Some((8, 4, 4)));
        assert_eq!(copy_block(F::BC7_SRGB_BLOCK, COLOR), Some((16, 4, 4)));
        assert_eq!(copy_block(F::ASTC_8X8_UNORM_BLOCK, COLOR), Some((16, 8, 8)));
        assert_eq!(
            copy_block(F::ASTC_10X5_SRGB_BLOCK, COLOR),
            Some((16, 10, 5))
        );
        // _422 formats copy as 2×1 blocks.
        assert_eq!(copy_block(F::G8B8G8R8_422_UNORM, COLOR), Some((4, 2, 1)));
        assert_eq!(copy_block(F::D24_UNORM_S8_UINT, DEPTH), Some((4, 1, 1)));
        assert_eq!(copy_block(F::D24_UNORM_S8_UINT, STENCIL), Some((1, 1, 1)));
        assert_eq!(copy_block(F::D24_UNORM_S8_UINT, COLOR), None);
        assert_eq!(copy_block(F::D24_UNORM_S8_UINT, DEPTH | STENCIL), None);
        assert_eq!(copy_block(F::X8_D24_UNORM_PACK32, DEPTH), Some((4, 1, 1)));
        assert_eq!(copy_block(F::D32_SFLOAT_S8_UINT, DEPTH), Some((4, 1, 1)));
        assert_eq!(copy_block(F::D32_SFLOAT_S8_UINT, STENCIL), Some((1, 1, 1)));
        assert_eq!(copy_block(F::D16_UNORM, DEPTH), Some((2, 1, 1)));
        assert_eq!(copy_block(F::D16_UNORM, STENCIL), None);
        assert_eq!(copy_block(F::S8_UINT, STENCIL), Some((1, 1, 1)));
        assert_eq!(copy_block(F::R8G8B8A8_UNORM, DEPTH), None);
        assert_eq!(copy_block(F::G8_B8R8_2PLANE_420_UNORM, COLOR), None);
        assert_eq!(
            copy_block(F::G8_B8R8_2PLANE_420_UNORM, vk::ImageAspectFlags::PLANE_0),
            None
        );
        assert_eq!(copy_block(F::UNDEFINED, COLOR), None);
        assert_eq!(copy_block(F::from_raw(0x7fff_0000), COLOR), None);

        assert_eq!(aspects(F::B8G8R8A8_SRGB), COLOR);
        assert_eq!(aspects(F::ETC2_R8G8B8_UNORM_BLOCK), COLOR);
        assert_eq!(aspects(F::D24_UNORM_S8_UINT), DEPTH | STENCIL);
        assert_eq!(aspects(F::D32_SFLOAT), DEPTH);
        assert_eq!(aspects(F::S8_UINT), STENCIL);
        assert_eq!(
            aspects(F::G8_B8R8_2PLANE_420_UNORM),
            vk::ImageAspectFlags::empty()
        );
        assert_eq!(aspects(F::UNDEFINED), vk::ImageAspectFlags::empty());
    }
}
