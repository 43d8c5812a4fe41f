//! Small command-recording helpers (barriers) shared by the examples.

use ash::vk;

/// A pipeline stage mask and the accesses made at those stages.
pub type Scope = (vk::PipelineStageFlags, vk::AccessFlags);

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
    let barrier = vk::BufferMemoryBarrier::default()
        .src_access_mask(src.1)
        .dst_access_mask(dst.1)
        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .buffer(buffer)
        .offset(0)
        .size(vk::WHOLE_SIZE);
    // SAFETY: forwarded from the caller.
    unsafe {
        d.cmd_pipeline_barrier(
            cb,
            src.0,
            dst.0,
            vk::DependencyFlags::empty(),
            &[],
            &[barrier],
            &[],
        );
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
    unsafe {
        d.cmd_pipeline_barrier(
            cb,
            src.0,
            dst.0,
            vk::DependencyFlags::empty(),
            &[],
            &[],
            &[barrier],
        );
    }
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
) -> crate::Result<()> {
    use crate::ErrorContext as _;
    // SAFETY: forwarded from the caller.
    unsafe { d.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default().flags(flags)) }
        .context("vkBeginCommandBuffer")
}
