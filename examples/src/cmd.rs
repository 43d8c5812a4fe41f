//! Small command-recording helpers (barriers, copies) shared by the examples.

use ash::vk;

use crate::{ErrorContext as _, Result};

/// A pipeline stage mask and the accesses made at those stages.
pub type Scope = (vk::PipelineStageFlags, vk::AccessFlags);

/// Transfer writes (copies, fills, clears).
pub const TRANSFER_WRITE: Scope = (
    vk::PipelineStageFlags::TRANSFER,
    vk::AccessFlags::TRANSFER_WRITE,
);
/// Transfer reads (the source of a copy).
pub const TRANSFER_READ: Scope = (
    vk::PipelineStageFlags::TRANSFER,
    vk::AccessFlags::TRANSFER_READ,
);
/// Host reads through a mapping.
pub const HOST_READ: Scope = (vk::PipelineStageFlags::HOST, vk::AccessFlags::HOST_READ);
/// Compute shader writes.
pub const COMPUTE_WRITE: Scope = (
    vk::PipelineStageFlags::COMPUTE_SHADER,
    vk::AccessFlags::SHADER_WRITE,
);
/// Compute shader reads and writes.
pub const COMPUTE_READ_WRITE: Scope = (
    vk::PipelineStageFlags::COMPUTE_SHADER,
    vk::AccessFlags::from_raw(
        vk::AccessFlags::SHADER_READ.as_raw() | vk::AccessFlags::SHADER_WRITE.as_raw(),
    ),
);

/// A buffer memory barrier on `offset..offset + size` of `buffer` (`size` may be
/// `VK_WHOLE_SIZE`), from `access.0` to `access.1`, transferring ownership between the queue
/// families `families` unless they are equal or `VK_QUEUE_FAMILY_IGNORED`.
pub fn buffer_range_barrier(
    buffer: vk::Buffer,
    (offset, size): (u64, u64),
    access: (vk::AccessFlags, vk::AccessFlags),
    families: (u32, u32),
) -> vk::BufferMemoryBarrier<'static> {
    vk::BufferMemoryBarrier::default()
        .src_access_mask(access.0)
        .dst_access_mask(access.1)
        .src_queue_family_index(families.0)
        .dst_queue_family_index(families.1)
        .buffer(buffer)
        .offset(offset)
        .size(size)
}

/// Records one `vkCmdPipelineBarrier` from `src` to `dst` stages with `buffers` and `images`
/// (no global memory barriers, no dependency flags).
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, the
/// barriers must name live resources of `d` (images in their `old_layout`), and the stages
/// must be supported by the command buffer's queue family.
pub unsafe fn pipeline_barrier(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    (src, dst): (vk::PipelineStageFlags, vk::PipelineStageFlags),
    buffers: &[vk::BufferMemoryBarrier<'_>],
    images: &[vk::ImageMemoryBarrier<'_>],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        d.cmd_pipeline_barrier(
            cb,
            src,
            dst,
            vk::DependencyFlags::empty(),
            &[],
            buffers,
            images,
        )
    }
}

/// An image memory barrier on `range` of `image`, from layout `layouts.0` and accesses
/// `access.0` to layout `layouts.1` and accesses `access.1` (no queue family transfer).
pub fn image_range_barrier(
    image: vk::Image,
    range: vk::ImageSubresourceRange,
    layouts: (vk::ImageLayout, vk::ImageLayout),
    access: (vk::AccessFlags, vk::AccessFlags),
) -> vk::ImageMemoryBarrier<'static> {
    vk::ImageMemoryBarrier::default()
        .src_access_mask(access.0)
        .dst_access_mask(access.1)
        .old_layout(layouts.0)
        .new_layout(layouts.1)
        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .image(image)
        .subresource_range(range)
}

/// Records a whole-buffer memory barrier from `src` to `dst` (no queue family transfer).
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, `buffer`
/// a live buffer of `d`, and the stages supported by the command buffer's queue family.
pub unsafe fn buffer_barrier(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    buffer: vk::Buffer,
    src: Scope,
    dst: Scope,
) {
    let barrier = buffer_range_barrier(
        buffer,
        (0, vk::WHOLE_SIZE),
        (src.1, dst.1),
        (vk::QUEUE_FAMILY_IGNORED, vk::QUEUE_FAMILY_IGNORED),
    );
    // SAFETY: forwarded from the caller.
    unsafe { pipeline_barrier(d, cb, (src.0, dst.0), &[barrier], &[]) }
}

/// A global memory barrier from `src` to `dst` (every resource).
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, and the
/// stages supported by the command buffer's queue family.
pub unsafe fn memory_barrier(d: &ash::Device, cb: vk::CommandBuffer, src: Scope, dst: Scope) {
    let barrier = vk::MemoryBarrier::default()
        .src_access_mask(src.1)
        .dst_access_mask(dst.1);
    // SAFETY: forwarded from the caller.
    unsafe {
        d.cmd_pipeline_barrier(
            cb,
            src.0,
            dst.0,
            vk::DependencyFlags::empty(),
            &[barrier],
            &[],
            &[],
        )
    }
}

/// Records a layout transition of the single subresource of `image` (`aspect`) from `src` to
/// `dst`.
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, `image` a
/// live single-level single-layer image of `d` currently in layout `from`, and the stages
/// supported by the command buffer's queue family.
#[allow(clippy::too_many_arguments)] // reason: mirrors VkImageMemoryBarrier's fields one to one
pub unsafe fn image_barrier(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    aspect: vk::ImageAspectFlags,
    from: vk::ImageLayout,
    to: vk::ImageLayout,
    src: Scope,
    dst: Scope,
) {
    let barrier = vk::ImageMemoryBarrier::default()
        .src_access_mask(src.1)
        .dst_access_mask(dst.1)
        .old_layout(from)
        .new_layout(to)
        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .image(image)
        .subresource_range(crate::subresource_range(aspect));
    // SAFETY: forwarded from the caller.
    unsafe { pipeline_barrier(d, cb, (src.0, dst.0), &[], &[barrier]) }
}

/// A buffer copy region of `size` bytes at `offset` in both buffers.
pub fn copy_range(offset: u64, size: u64) -> vk::BufferCopy {
    vk::BufferCopy {
        src_offset: offset,
        dst_offset: offset,
        size,
    }
}

/// A buffer ↔ image copy of the colour aspect of an image's only layer and level: the
/// `extent` region at `offset`, the buffer tightly packed from its start.
pub fn color_copy(offset: vk::Offset2D, extent: vk::Extent2D) -> vk::BufferImageCopy {
    vk::BufferImageCopy {
        buffer_offset: 0,
        buffer_row_length: 0,
        buffer_image_height: 0,
        image_subresource: vk::ImageSubresourceLayers {
            aspect_mask: vk::ImageAspectFlags::COLOR,
            mip_level: 0,
            base_array_layer: 0,
            layer_count: 1,
        },
        image_offset: vk::Offset3D {
            x: offset.x,
            y: offset.y,
            z: 0,
        },
        image_extent: vk::Extent3D {
            width: extent.width,
            height: extent.height,
            depth: 1,
        },
    }
}

/// Records a copy of the whole colour `image` (`extent`, in TRANSFER_SRC_OPTIMAL, its writes
/// already made visible to transfer reads) into `buffer`, then a barrier that makes the copy
/// visible to host reads.
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass; `image`
/// and `buffer` must be live objects of `d` with TRANSFER_SRC / TRANSFER_DST usage, and
/// `buffer` must hold `extent` tightly packed texels.
pub unsafe fn copy_image_to_host(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    extent: vk::Extent2D,
    buffer: vk::Buffer,
) {
    let region = color_copy(vk::Offset2D::default(), extent);
    // SAFETY: forwarded from the caller.
    unsafe {
        d.cmd_copy_image_to_buffer(
            cb,
            image,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            buffer,
            &[region],
        );
        buffer_barrier(d, cb, buffer, TRANSFER_WRITE, HOST_READ);
    }
}

/// Records the readback of compute results: a barrier from compute writes of `src` to transfer
/// reads, a copy of `regions` from `src` to `dst`, and a barrier that makes the copy visible to
/// host reads.
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, on a
/// compute-capable family; `src` and `dst` must be live buffers of `d` with TRANSFER_SRC /
/// TRANSFER_DST usage and the regions inside both.
pub unsafe fn copy_compute_results_to_host(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    src: vk::Buffer,
    dst: vk::Buffer,
    regions: &[vk::BufferCopy],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        buffer_barrier(d, cb, src, COMPUTE_WRITE, TRANSFER_READ);
        d.cmd_copy_buffer(cb, src, dst, regions);
        buffer_barrier(d, cb, dst, TRANSFER_WRITE, HOST_READ);
    }
}

/// Begins `render_pass` on `framebuffer` over the whole `extent`, with `clear_values` and the
/// subpass contents recorded inline.
///
/// # Safety
///
/// `cb` must be a primary command buffer of `d` in the recording state outside a render pass,
/// on a graphics-capable family; `render_pass` and `framebuffer` must be live, compatible
/// objects of `d` whose size is `extent`, with one clear value per attachment that clears.
pub unsafe fn begin_render_pass(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    (render_pass, framebuffer): (vk::RenderPass, vk::Framebuffer),
    extent: vk::Extent2D,
    clear_values: &[vk::ClearValue],
) {
    let begin = vk::RenderPassBeginInfo::default()
        .render_pass(render_pass)
        .framebuffer(framebuffer)
        .render_area(vk::Rect2D {
            offset: vk::Offset2D::default(),
            extent,
        })
        .clear_values(clear_values);
    // SAFETY: forwarded from the caller.
    unsafe { d.cmd_begin_render_pass(cb, &begin, vk::SubpassContents::INLINE) }
}

/// Begins `cb` with `flags`.
///
/// # Safety
///
/// `cb` must be a primary command buffer of `d` in the initial state (or resettable), not used by
/// another thread.
pub unsafe fn begin(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    flags: vk::CommandBufferUsageFlags,
) -> Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { d.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default().flags(flags)) }
        .context("vkBeginCommandBuffer")
}

/// Ends the recording of `cb`.
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state, outside a render pass, not
/// used by another thread.
pub unsafe fn end(d: &ash::Device, cb: vk::CommandBuffer) -> Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { d.end_command_buffer(cb) }.context("vkEndCommandBuffer")
}
