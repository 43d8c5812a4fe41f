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
    example_main, fnv1a64, json_array, median, nanos, shaders, Args, Context, ErrorContext as _,
    GraphicsPipelineDesc, Report, Result,
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

    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::GRAPHICS)?;
    let queue = ctx.queue();
    let d = &ctx.device;
    if !ctx.optimal_format_supports(FORMAT, vk::FormatFeatureFlags::COLOR_ATTACHMENT) {
        return Err(format!("{FORMAT:?} is not supported as colour attachment").into());
    }

    let extent = vk::Extent2D {
        width: SIZE,
        height: SIZE,
    };
    let image = ctx.create_render_target(FORMAT, extent)?;
    let image_bytes = u64::from(SIZE * SIZE * 4);
    let readback = ctx.create_readback_buffer(image_bytes)?;
    let render_pass = ctx.create_render_pass_to_transfer(FORMAT, None)?;
    let framebuffer = ctx.create_framebuffer(&render_pass, &[&image], extent)?;
    let layout = ctx.create_pipeline_layout(
        &[],
        &[vk::PushConstantRange {
            stage_flags: vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
            offset: 0,
            size: PUSH_SIZE,
        }],
    )?;
    let pipeline = ctx.create_graphics_pipeline(
        &GraphicsPipelineDesc {
            vertex_shader: shaders::RECT_VERT,
            fragment_shader: shaders::RECT_FRAG,
            // The vertex shader makes the rectangle's corners from the push constants.
            vertex_bindings: &[],
            vertex_attributes: &[],
            topology: vk::PrimitiveTopology::TRIANGLE_STRIP,
            extent,
            depth_test: false,
            samples: vk::SampleCountFlags::TYPE_1,
        },
        &layout,
        &render_pass,
    )?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::TRANSIENT)?;
    let cb = ctx.allocate_primary(&pool)?;
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
        // SAFETY: the previous frame's fence wait completed, so the pool's command buffer is
        // not pending and may be reset and re-recorded; all handles are alive until the wait
        // below. The render pass's external dependencies order this frame's clear after the
        // previous frame's attachment writes (and the final copy's read).
        unsafe {
            d.reset_command_pool(*pool, vk::CommandPoolResetFlags::empty())
                .context("vkResetCommandPool")?;
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            cmd::begin_render_pass(d, cb, (*render_pass, *framebuffer), extent, &clear);
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
            cmd::end(d, cb)?;
            ctx.submit(queue.handle, &[cb], &fence)?;
        }
        ctx.wait_and_reset_fence(&fence)?;
        if f >= WARM_UP {
            frame_ns.push(nanos(start.elapsed()));
        }
    }

    // Read the last frame back (untimed), as a sanity check for runs through vkfuse.
    ctx.one_time_commands(queue, |cb| {
        // SAFETY: the image is in TRANSFER_SRC_OPTIMAL (the render pass's final layout) and the
        // render pass's dependency to EXTERNAL orders its writes before transfer reads on this
        // queue; the buffer holds the whole image.
        unsafe { cmd::copy_image_to_host(d, cb, image.handle, extent, readback.handle) };
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
