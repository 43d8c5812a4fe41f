//! `bench-frame`: a headless frame loop. Every frame resets the command pool, records a render
//! pass that clears a 256x256 image and draws 16 push-constant rectangles, submits it with a
//! fence and waits for the fence, reusing the same command buffer, fence and image each frame.
//!
//! stdout: one line of JSON, `{"name":"bench-frame","frames":F,"frame_ns":[..]}`, where each
//! entry spans record + submit + fence wait of one frame (after 3 untimed warm-up frames).

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::cmd;
use vkfuse_examples::{
    example_main, fnv1a64, json_array, median, nanos, shaders, Args, Context, ContextDesc,
    ErrorContext as _, MemoryUse, Owned, QueuePlan, Report, Result,
};

const NAME: &str = "bench-frame";
const USAGE: &str = "\
usage: bench-frame [--frames F] [--validation]

Headless frame loop: per frame, record a render pass (clear + 16 rectangles) into a 256x256
R8G8B8A8_UNORM image, submit with a fence, wait, reuse. 3 untimed warm-up frames, then F
(default 200) timed frames. Prints one line of JSON:
  {\"name\":\"bench-frame\",\"frames\":F,\"frame_ns\":[..]}
frame_ns: vkResetCommandPool..vkWaitForFences of each frame.

  --frames F     1..=1000000
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

const SIZE: u32 = 256;
const FORMAT: vk::Format = vk::Format::R8G8B8A8_UNORM;
const WARM_UP: u32 = 3;
const RECTS: u32 = 16;
/// Push constants: rect (x0, y0, x1, y1 in NDC) and colour, vec4 each.
const PUSH_SIZE: u32 = 32;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// Push constants of rectangle `r` in frame `f`: a 4x4 grid of 48x48-pixel cells moving with
/// the frame number, edges on pixel edges, colour components 0 or 1 (exact in UNORM).
fn rect_push(f: u32, r: u32) -> [u8; 32] {
    let cell = |i: u32| ((i * 56 + 16 + f % 8) as f32) / (SIZE as f32 / 2.0) - 1.0;
    let (cx, cy) = (r % 4, r / 4);
    let bits = (r + f) % 7 + 1;
    let values = [
        cell(cx),
        cell(cy),
        cell(cx) + 48.0 / (SIZE as f32 / 2.0),
        cell(cy) + 48.0 / (SIZE as f32 / 2.0),
        (bits & 1) as f32,
        ((bits >> 1) & 1) as f32,
        ((bits >> 2) & 1) as f32,
        1.0,
    ];
    let mut out = [0u8; 32];
    for (chunk, v) in out.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn run(mut args: Args) -> Result<Report> {
    let frames: u32 = args.value("--frames")?.unwrap_or(200);
    args.finish()?;
    if !(1..=1_000_000).contains(&frames) {
        return Err(format!("--frames must be in 1..=1000000, got {frames}").into());
    }

    let ctx = Context::new(&ContextDesc {
        name: NAME,
        validation: args.validation,
        queues: QueuePlan::One(vk::QueueFlags::GRAPHICS),
    })?;
    let queue = ctx.queue();
    let d = &ctx.device;
    if !ctx.optimal_format_supports(FORMAT, vk::FormatFeatureFlags::COLOR_ATTACHMENT) {
        return Err(format!("{FORMAT:?} is not supported as colour attachment").into());
    }

    let extent = vk::Extent2D {
        width: SIZE,
        height: SIZE,
    };
    let image = ctx.create_image_2d(
        FORMAT,
        extent,
        vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        vk::ImageAspectFlags::COLOR,
    )?;
    let image_bytes = u64::from(SIZE * SIZE * 4);
    let readback = ctx.create_buffer(
        image_bytes,
        vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::Readback,
    )?;
    let render_pass = create_render_pass(&ctx)?;
    let views = [image.view];
    let framebuffer_info = vk::FramebufferCreateInfo::default()
        .render_pass(*render_pass)
        .attachments(&views)
        .width(SIZE)
        .height(SIZE)
        .layers(1);
    // SAFETY: the view is alive and matches the render pass's format and the extent.
    let framebuffer = unsafe {
        ctx.own(
            d.create_framebuffer(&framebuffer_info, None)
                .context("vkCreateFramebuffer")?,
        )
    };
    let layout = ctx.create_pipeline_layout(
        &[],
        &[vk::PushConstantRange {
            stage_flags: vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
            offset: 0,
            size: PUSH_SIZE,
        }],
    )?;
    let pipeline = create_pipeline(&ctx, &render_pass, &layout)?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::TRANSIENT)?;
    let cb = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();

    let mut frame_ns = Vec::with_capacity(frames as usize);
    for f in 0..WARM_UP + frames {
        let start = Instant::now();
        let clear = [vk::ClearValue {
            color: vk::ClearColorValue {
                float32: [0.0, 0.0, if f % 2 == 0 { 0.0 } else { 1.0 }, 1.0],
            },
        }];
        let begin = vk::RenderPassBeginInfo::default()
            .render_pass(*render_pass)
            .framebuffer(*framebuffer)
            .render_area(vk::Rect2D {
                offset: vk::Offset2D::default(),
                extent,
            })
            .clear_values(&clear);
        // SAFETY: the previous frame's fence wait completed, so the pool's command buffer is
        // not pending and may be reset and re-recorded; all handles are alive until the wait
        // below. The render pass's external dependencies order this frame's clear after the
        // previous frame's attachment writes (and the final copy's read).
        unsafe {
            d.reset_command_pool(*pool, vk::CommandPoolResetFlags::empty())
                .context("vkResetCommandPool")?;
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            d.cmd_begin_render_pass(cb, &begin, vk::SubpassContents::INLINE);
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, *pipeline);
            for r in 0..RECTS {
                d.cmd_push_constants(
                    cb,
                    *layout,
                    vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
                    0,
                    &rect_push(f, r),
                );
                d.cmd_draw(cb, 4, 1, 0, 0);
            }
            d.cmd_end_render_pass(cb);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
            let cbs = [cb];
            d.queue_submit(
                queue.handle,
                &[vk::SubmitInfo::default().command_buffers(&cbs)],
                *fence,
            )
            .context("vkQueueSubmit")?;
        }
        ctx.wait_fence(&fence)?;
        // SAFETY: the fence is signaled and no longer used by a queue operation.
        unsafe { d.reset_fences(&[*fence]) }.context("vkResetFences")?;
        if f >= WARM_UP {
            frame_ns.push(nanos(start.elapsed()));
        }
    }

    // Read the last frame back (untimed), as a sanity check for runs through vkfuse.
    let copy = vk::BufferImageCopy {
        buffer_offset: 0,
        buffer_row_length: 0,
        buffer_image_height: 0,
        image_subresource: vk::ImageSubresourceLayers {
            aspect_mask: vk::ImageAspectFlags::COLOR,
            mip_level: 0,
            base_array_layer: 0,
            layer_count: 1,
        },
        image_offset: vk::Offset3D::default(),
        image_extent: vk::Extent3D {
            width: SIZE,
            height: SIZE,
            depth: 1,
        },
    };
    ctx.one_time_commands(queue, |cb| {
        // SAFETY: the image is in TRANSFER_SRC_OPTIMAL (the render pass's final layout) and the
        // render pass's dependency to EXTERNAL orders its writes before transfer reads on this
        // queue; the barrier makes the copy visible to the host.
        unsafe {
            d.cmd_copy_image_to_buffer(
                cb,
                image.handle,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                readback.handle,
                &[copy],
            );
            cmd::buffer_barrier(
                d,
                cb,
                readback.handle,
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                ),
                (vk::PipelineStageFlags::HOST, vk::AccessFlags::HOST_READ),
            );
        }
        Ok(())
    })?;
    let pixels = readback.read_bytes(0, image_bytes as usize)?;

    eprintln!(
        "{NAME}: {frames} frames after {WARM_UP} warm-up, {RECTS} rectangles each; median frame {:.3} ms, min {:.3} ms, max {:.3} ms; last frame image fnv1a64 {:016x}",
        median(&frame_ns) as f64 / 1e6,
        frame_ns.iter().copied().min().unwrap_or(0) as f64 / 1e6,
        frame_ns.iter().copied().max().unwrap_or(0) as f64 / 1e6,
        fnv1a64(&pixels),
    );
    Ok(Report::Json(format!(
        "{{\"name\":\"{NAME}\",\"frames\":{frames},\"frame_ns\":{}}}",
        json_array(&frame_ns)
    )))
}

fn create_render_pass(ctx: &Context) -> Result<Owned<'_, vk::RenderPass>> {
    let attachments = [vk::AttachmentDescription::default()
        .format(FORMAT)
        .samples(vk::SampleCountFlags::TYPE_1)
        .load_op(vk::AttachmentLoadOp::CLEAR)
        .store_op(vk::AttachmentStoreOp::STORE)
        .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
        .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
        .initial_layout(vk::ImageLayout::UNDEFINED)
        .final_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)];
    let color_ref = [vk::AttachmentReference {
        attachment: 0,
        layout: vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
    }];
    let subpass = [vk::SubpassDescription::default()
        .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
        .color_attachments(&color_ref)];
    let dependencies = [
        // The previous frame's colour writes (and the readback's transfer read) before this
        // frame's clear and writes.
        vk::SubpassDependency {
            src_subpass: vk::SUBPASS_EXTERNAL,
            dst_subpass: 0,
            src_stage_mask: vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT
                | vk::PipelineStageFlags::TRANSFER,
            dst_stage_mask: vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT,
            src_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
            dst_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
            dependency_flags: vk::DependencyFlags::empty(),
        },
        // This frame's colour writes before a later copy out of the image.
        vk::SubpassDependency {
            src_subpass: 0,
            dst_subpass: vk::SUBPASS_EXTERNAL,
            src_stage_mask: vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT,
            dst_stage_mask: vk::PipelineStageFlags::TRANSFER,
            src_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
            dst_access_mask: vk::AccessFlags::TRANSFER_READ,
            dependency_flags: vk::DependencyFlags::empty(),
        },
    ];
    let info = vk::RenderPassCreateInfo::default()
        .attachments(&attachments)
        .subpasses(&subpass)
        .dependencies(&dependencies);
    // SAFETY: plain create call with arrays that outlive it; the result is owned once.
    unsafe {
        Ok(ctx.own(
            ctx.device
                .create_render_pass(&info, None)
                .context("vkCreateRenderPass")?,
        ))
    }
}

fn create_pipeline<'c>(
    ctx: &'c Context,
    render_pass: &Owned<'c, vk::RenderPass>,
    layout: &Owned<'c, vk::PipelineLayout>,
) -> Result<Owned<'c, vk::Pipeline>> {
    let vert = ctx.create_shader_module(shaders::RECT_VERT)?;
    let frag = ctx.create_shader_module(shaders::RECT_FRAG)?;
    let stages = [
        vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::VERTEX)
            .module(*vert)
            .name(c"main"),
        vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::FRAGMENT)
            .module(*frag)
            .name(c"main"),
    ];
    let vertex_input = vk::PipelineVertexInputStateCreateInfo::default();
    let input_assembly = vk::PipelineInputAssemblyStateCreateInfo::default()
        .topology(vk::PrimitiveTopology::TRIANGLE_STRIP);
    let viewports = [vk::Viewport {
        x: 0.0,
        y: 0.0,
        width: SIZE as f32,
        height: SIZE as f32,
        min_depth: 0.0,
        max_depth: 1.0,
    }];
    let scissors = [vk::Rect2D {
        offset: vk::Offset2D::default(),
        extent: vk::Extent2D {
            width: SIZE,
            height: SIZE,
        },
    }];
    let viewport = vk::PipelineViewportStateCreateInfo::default()
        .viewports(&viewports)
        .scissors(&scissors);
    let raster = vk::PipelineRasterizationStateCreateInfo::default()
        .polygon_mode(vk::PolygonMode::FILL)
        .cull_mode(vk::CullModeFlags::NONE)
        .front_face(vk::FrontFace::COUNTER_CLOCKWISE)
        .line_width(1.0);
    let multisample = vk::PipelineMultisampleStateCreateInfo::default()
        .rasterization_samples(vk::SampleCountFlags::TYPE_1);
    let blend_attachments = [vk::PipelineColorBlendAttachmentState::default()
        .blend_enable(false)
        .color_write_mask(vk::ColorComponentFlags::RGBA)];
    let blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachments);
    let info = vk::GraphicsPipelineCreateInfo::default()
        .stages(&stages)
        .vertex_input_state(&vertex_input)
        .input_assembly_state(&input_assembly)
        .viewport_state(&viewport)
        .rasterization_state(&raster)
        .multisample_state(&multisample)
        .color_blend_state(&blend)
        .layout(**layout)
        .render_pass(**render_pass)
        .subpass(0);
    // SAFETY: every state struct outlives the call; modules, layout and render pass are alive
    // and the shaders' push constant block matches the layout's range.
    unsafe {
        let pipelines = ctx
            .device
            .create_graphics_pipelines(vk::PipelineCache::null(), &[info], None)
            .map_err(|(_, e)| e)
            .context("vkCreateGraphicsPipelines")?;
        let pipeline = pipelines
            .first()
            .copied()
            .ok_or("vkCreateGraphicsPipelines returned no pipeline")?;
        Ok(ctx.own(pipeline))
    }
}
