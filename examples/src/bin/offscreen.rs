//! `offscreen`: a render pass with a depth attachment and a graphics pipeline (vertex buffer,
//! index buffer, a texture uploaded through a staging buffer and sampled with a sampler) draws
//! four axis-aligned quads into a 256x256 image, which is copied to a buffer, read back,
//! compared with a CPU rendering of the same scene and hashed.
//!
//! Exactness: quad edges lie on pixel edges (never on a pixel centre), depths are distinct
//! constants, the texture is sampled with NEAREST filtering and every texel spans whole pixels,
//! and colours are integers end to end (R8G8B8A8_UINT texture and colour attachment, flat
//! integer vertex colours, XOR in the shader, no blending), so the image is the same bytes on
//! every conformant implementation.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::cmd::{self, Scope};
use vkfuse_examples::{
    example_main, shaders, Args, Context, ContextDesc, ErrorContext as _, Fnv1a64, MemoryUse,
    Mismatch, Owned, QueuePlan, Report, Result,
};

const NAME: &str = "offscreen";
const USAGE: &str = "\
usage: offscreen [--ppm PATH] [--force-staging] [--validation]

Renders four quads (depth-tested, two textured) into a 256x256 R8G8B8A8_UINT image, checks it
against a CPU rendering and prints
  vkfuse-example offscreen device=\"<name>\" result=<fnv1a64 of the 256x256x4 image bytes>

  --ppm PATH        also write the image (RGB, alpha dropped) as a binary PPM
  --force-staging   upload vertex and index data through a staging buffer even when the
                    device-local memory type is host-visible (the texture always is)
  --validation      enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                    exit code 3 if it reports errors or warnings";

const SIZE: u32 = 256;
const TEX_SIZE: u32 = 16;
const COLOR_FORMAT: vk::Format = vk::Format::R8G8B8A8_UINT;
const CLEAR: [u32; 4] = [10, 20, 30, 255];

/// An axis-aligned quad in pixel coordinates (`x0..x1`, `y0..y1`, y down).
struct Quad {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    depth: f32,
    color: [u8; 4],
    textured: bool,
}

/// Drawn in this order. Textured quads are multiples of 16 pixels on each side, so every texel
/// covers whole pixels. B is in front of A, A in front of C; D overlaps nothing.
const QUADS: [Quad; 4] = [
    Quad {
        x0: 96,
        y0: 16,
        x1: 224,
        y1: 112,
        depth: 0.25,
        color: [200, 40, 90, 255],
        textured: false,
    },
    Quad {
        x0: 32,
        y0: 48,
        x1: 160,
        y1: 176,
        depth: 0.5,
        color: [0, 0, 0, 0],
        textured: true,
    },
    Quad {
        x0: 16,
        y0: 120,
        x1: 80,
        y1: 216,
        depth: 0.75,
        color: [0x55, 0xaa, 0x0f, 0x00],
        textured: true,
    },
    Quad {
        x0: 192,
        y0: 176,
        x1: 240,
        y1: 240,
        depth: 0.125,
        color: [10, 250, 120, 255],
        textured: false,
    },
];

/// Vertex layout: position (x, y, depth), uv, colour (R8G8B8A8_UINT), textured flag (R32_UINT).
const VERTEX_STRIDE: u32 = 28;

fn texel(s: u32, t: u32) -> [u8; 4] {
    [
        ((s * 16) ^ (t * 3)) as u8,
        (t * 16 + s) as u8,
        if (s ^ t) & 1 != 0 { 255 } else { 0 },
        (255 - s * t) as u8,
    ]
}

fn texture_bytes() -> Vec<u8> {
    (0..TEX_SIZE)
        .flat_map(|t| (0..TEX_SIZE).flat_map(move |s| texel(s, t)))
        .collect()
}

fn vertex_bytes() -> Vec<u8> {
    let ndc = |p: u32| p as f32 / (SIZE as f32 / 2.0) - 1.0; // exact: multiples of 1/128
    let mut out = Vec::new();
    for q in &QUADS {
        for (x, y, u, v) in [
            (q.x0, q.y0, 0.0f32, 0.0f32),
            (q.x1, q.y0, 1.0, 0.0),
            (q.x0, q.y1, 0.0, 1.0),
            (q.x1, q.y1, 1.0, 1.0),
        ] {
            for f in [ndc(x), ndc(y), q.depth, u, v] {
                out.extend_from_slice(&f.to_le_bytes());
            }
            out.extend_from_slice(&q.color);
            out.extend_from_slice(&u32::from(q.textured).to_le_bytes());
        }
    }
    out
}

fn index_bytes() -> Vec<u8> {
    (0..QUADS.len() as u16)
        .flat_map(|q| {
            let b = q * 4;
            [b, b + 1, b + 2, b + 2, b + 1, b + 3]
        })
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The image the GPU must produce, RGBA bytes, rows top to bottom.
fn cpu_render() -> Vec<u8> {
    let mut out = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    for py in 0..SIZE {
        for px in 0..SIZE {
            let front = QUADS
                .iter()
                .filter(|q| (q.x0..q.x1).contains(&px) && (q.y0..q.y1).contains(&py))
                .min_by(|a, b| a.depth.total_cmp(&b.depth));
            let rgba = match front {
                None => CLEAR.map(|c| c as u8),
                Some(q) if q.textured => {
                    let s = (px - q.x0) * TEX_SIZE / (q.x1 - q.x0);
                    let t = (py - q.y0) * TEX_SIZE / (q.y1 - q.y0);
                    let tx = texel(s, t);
                    [0, 1, 2, 3].map(|i| q.color[i] ^ tx[i])
                }
                Some(q) => q.color,
            };
            out.extend_from_slice(&rgba);
        }
    }
    out
}

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let ppm: Option<String> = args.value("--ppm")?;
    let force_staging = args.flag("--force-staging");
    args.finish()?;

    let ctx = Context::new(&ContextDesc {
        name: NAME,
        validation: args.validation,
        queues: QueuePlan::One(vk::QueueFlags::GRAPHICS),
    })?;
    let queue = ctx.queue();
    let d = &ctx.device;

    for (format, features, what) in [
        (
            COLOR_FORMAT,
            vk::FormatFeatureFlags::COLOR_ATTACHMENT,
            "colour attachment",
        ),
        (
            COLOR_FORMAT,
            vk::FormatFeatureFlags::SAMPLED_IMAGE,
            "sampled image",
        ),
    ] {
        if !ctx.optimal_format_supports(format, features) {
            return Err(format!("{format:?} is not supported as {what}").into());
        }
    }
    if !ctx.buffer_format_supports(
        vk::Format::R8G8B8A8_UINT,
        vk::FormatFeatureFlags::VERTEX_BUFFER,
    ) {
        return Err("R8G8B8A8_UINT is not supported as a vertex format".into());
    }
    let depth_format = [
        vk::Format::D32_SFLOAT,
        vk::Format::D16_UNORM,
        vk::Format::X8_D24_UNORM_PACK32,
        vk::Format::D24_UNORM_S8_UINT,
        vk::Format::D32_SFLOAT_S8_UINT,
    ]
    .into_iter()
    .find(|&f| ctx.optimal_format_supports(f, vk::FormatFeatureFlags::DEPTH_STENCIL_ATTACHMENT))
    .ok_or("no depth format supports DEPTH_STENCIL_ATTACHMENT")?;
    let depth_aspect = match depth_format {
        vk::Format::D24_UNORM_S8_UINT | vk::Format::D32_SFLOAT_S8_UINT => {
            vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL
        }
        _ => vk::ImageAspectFlags::DEPTH,
    };
    eprintln!("{NAME}: colour {COLOR_FORMAT:?}, depth {depth_format:?}");

    // Geometry and texture.
    let vertex_input: Scope = (
        vk::PipelineStageFlags::VERTEX_INPUT,
        vk::AccessFlags::VERTEX_ATTRIBUTE_READ,
    );
    let index_input: Scope = (
        vk::PipelineStageFlags::VERTEX_INPUT,
        vk::AccessFlags::INDEX_READ,
    );
    let vertices = ctx.create_buffer_with_data(
        queue,
        vk::BufferUsageFlags::VERTEX_BUFFER,
        &vertex_bytes(),
        vertex_input,
        force_staging,
    )?;
    let indices = ctx.create_buffer_with_data(
        queue,
        vk::BufferUsageFlags::INDEX_BUFFER,
        &index_bytes(),
        index_input,
        force_staging,
    )?;
    let extent = vk::Extent2D {
        width: SIZE,
        height: SIZE,
    };
    let texture = ctx.create_image_2d(
        COLOR_FORMAT,
        vk::Extent2D {
            width: TEX_SIZE,
            height: TEX_SIZE,
        },
        vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST,
        vk::ImageAspectFlags::COLOR,
    )?;
    upload_texture(&ctx, queue, &texture, &texture_bytes())?;
    let sampler_info = vk::SamplerCreateInfo::default()
        .mag_filter(vk::Filter::NEAREST)
        .min_filter(vk::Filter::NEAREST)
        .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
        .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .min_lod(0.0)
        .max_lod(0.0);
    // SAFETY: plain create call; the sampler is owned once.
    let sampler = unsafe {
        ctx.own(
            d.create_sampler(&sampler_info, None)
                .context("vkCreateSampler")?,
        )
    };

    // Attachments and readback.
    let color = ctx.create_image_2d(
        COLOR_FORMAT,
        extent,
        vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        vk::ImageAspectFlags::COLOR,
    )?;
    let depth = ctx.create_image_2d(
        depth_format,
        extent,
        vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
        depth_aspect,
    )?;
    let image_bytes = u64::from(SIZE * SIZE * 4);
    let readback = ctx.create_buffer(
        image_bytes,
        vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::Readback,
    )?;

    // Descriptors.
    let set_layout =
        ctx.create_descriptor_set_layout(&[vk::DescriptorSetLayoutBinding::default()
            .binding(0)
            .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::FRAGMENT)])?;
    let descriptor_pool = ctx.create_descriptor_pool(
        1,
        &[vk::DescriptorPoolSize {
            ty: vk::DescriptorType::COMBINED_IMAGE_SAMPLER,
            descriptor_count: 1,
        }],
    )?;
    let set = ctx.allocate_descriptor_set(&descriptor_pool, &set_layout)?;
    let image_info = [vk::DescriptorImageInfo {
        sampler: *sampler,
        image_view: texture.view,
        image_layout: vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
    }];
    let write = vk::WriteDescriptorSet::default()
        .dst_set(set)
        .dst_binding(0)
        .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
        .image_info(&image_info);
    // SAFETY: the set is unused; sampler and view are alive and the image will be in
    // SHADER_READ_ONLY_OPTIMAL when the set is used (upload_texture transitioned it).
    unsafe { d.update_descriptor_sets(&[write], &[]) };

    let render_pass = create_render_pass(&ctx, depth_format)?;
    let attachments = [color.view, depth.view];
    let framebuffer_info = vk::FramebufferCreateInfo::default()
        .render_pass(*render_pass)
        .attachments(&attachments)
        .width(SIZE)
        .height(SIZE)
        .layers(1);
    // SAFETY: the views are alive, match the render pass's formats and the extent.
    let framebuffer = unsafe {
        ctx.own(
            d.create_framebuffer(&framebuffer_info, None)
                .context("vkCreateFramebuffer")?,
        )
    };
    let layout = ctx.create_pipeline_layout(&[&set_layout], &[])?;
    let pipeline = create_pipeline(&ctx, &render_pass, &layout)?;

    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cb = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();

    let clear_values = [
        vk::ClearValue {
            color: vk::ClearColorValue { uint32: CLEAR },
        },
        vk::ClearValue {
            depth_stencil: vk::ClearDepthStencilValue {
                depth: 1.0,
                stencil: 0,
            },
        },
    ];
    let begin = vk::RenderPassBeginInfo::default()
        .render_pass(*render_pass)
        .framebuffer(*framebuffer)
        .render_area(vk::Rect2D {
            offset: vk::Offset2D::default(),
            extent,
        })
        .clear_values(&clear_values);
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
    let index_count = (QUADS.len() * 6) as u32;
    // SAFETY: cb is a fresh primary of `pool` (graphics family of `queue`); all handles are
    // alive until the fence wait below. Synchronisation: the texture and geometry uploads ended
    // with barriers to their shader/vertex-input reads; the render pass's external dependencies
    // order its attachment writes before the copy (final layout TRANSFER_SRC_OPTIMAL); the
    // buffer barrier makes the copy visible to the host before the fence signals.
    unsafe {
        cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        d.cmd_begin_render_pass(cb, &begin, vk::SubpassContents::INLINE);
        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, *pipeline);
        d.cmd_bind_descriptor_sets(cb, vk::PipelineBindPoint::GRAPHICS, *layout, 0, &[set], &[]);
        d.cmd_bind_vertex_buffers(cb, 0, &[vertices.handle], &[0]);
        d.cmd_bind_index_buffer(cb, indices.handle, 0, vk::IndexType::UINT16);
        d.cmd_draw_indexed(cb, index_count, 1, 0, 0, 0);
        d.cmd_end_render_pass(cb);
        d.cmd_copy_image_to_buffer(
            cb,
            color.handle,
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
    let pixels = readback.read_bytes(0, image_bytes as usize)?;

    if let Some(path) = &ppm {
        let mut file = format!("P6\n{SIZE} {SIZE}\n255\n").into_bytes();
        file.extend(pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]));
        std::fs::write(path, file).map_err(|e| format!("cannot write {path}: {e}"))?;
        eprintln!("{NAME}: wrote {path}");
    }

    let expected = cpu_render();
    let wrong: Vec<usize> = (0..pixels.len() / 4)
        .filter(|&p| pixels[p * 4..p * 4 + 4] != expected[p * 4..p * 4 + 4])
        .collect();
    if let Some(&first) = wrong.first() {
        let (x, y) = (first as u32 % SIZE, first as u32 / SIZE);
        return Err(Mismatch(format!(
            "{} of {} pixels differ from the CPU rendering; first at ({x},{y}): got {:?}, expected {:?}",
            wrong.len(),
            SIZE * SIZE,
            &pixels[first * 4..first * 4 + 4],
            &expected[first * 4..first * 4 + 4],
        ))
        .into());
    }

    let mut hash = Fnv1a64::new();
    hash.update(&pixels);
    eprintln!(
        "{NAME}: image matches the CPU rendering; hash covers the {SIZE}x{SIZE} {COLOR_FORMAT:?} colour image, rows top to bottom, RGBA, {image_bytes} bytes"
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}

/// Uploads `data` into `texture` through a staging buffer and leaves it in
/// SHADER_READ_ONLY_OPTIMAL, visible to fragment shader reads.
fn upload_texture(
    ctx: &Context,
    queue: vkfuse_examples::QueueInfo,
    texture: &vkfuse_examples::Image<'_>,
    data: &[u8],
) -> Result<()> {
    let staging = ctx.create_buffer(
        data.len() as u64,
        vk::BufferUsageFlags::TRANSFER_SRC,
        MemoryUse::Upload,
    )?;
    staging.write_bytes(0, data)?;
    let d = &ctx.device;
    ctx.one_time_commands(queue, |cb| {
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
                width: texture.extent.width,
                height: texture.extent.height,
                depth: 1,
            },
        };
        // SAFETY: cb is recording outside a render pass; the image is new (UNDEFINED) and the
        // staging buffer lives until one_time_commands has waited for the submission.
        unsafe {
            cmd::image_barrier(
                d,
                cb,
                texture.handle,
                vk::ImageAspectFlags::COLOR,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                (
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::AccessFlags::empty(),
                ),
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                ),
            );
            d.cmd_copy_buffer_to_image(
                cb,
                staging.handle,
                texture.handle,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &[copy],
            );
            cmd::image_barrier(
                d,
                cb,
                texture.handle,
                vk::ImageAspectFlags::COLOR,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                ),
                (
                    vk::PipelineStageFlags::FRAGMENT_SHADER,
                    vk::AccessFlags::SHADER_READ,
                ),
            );
        }
        Ok(())
    })
}

/// Colour (cleared, stored, ends in TRANSFER_SRC_OPTIMAL) + depth (cleared, discarded).
fn create_render_pass(
    ctx: &Context,
    depth_format: vk::Format,
) -> Result<Owned<'_, vk::RenderPass>> {
    let attachments = [
        vk::AttachmentDescription::default()
            .format(COLOR_FORMAT)
            .samples(vk::SampleCountFlags::TYPE_1)
            .load_op(vk::AttachmentLoadOp::CLEAR)
            .store_op(vk::AttachmentStoreOp::STORE)
            .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
            .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .final_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
        vk::AttachmentDescription::default()
            .format(depth_format)
            .samples(vk::SampleCountFlags::TYPE_1)
            .load_op(vk::AttachmentLoadOp::CLEAR)
            .store_op(vk::AttachmentStoreOp::DONT_CARE)
            .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
            .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .final_layout(vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL),
    ];
    let color_ref = [vk::AttachmentReference {
        attachment: 0,
        layout: vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
    }];
    let depth_ref = vk::AttachmentReference {
        attachment: 1,
        layout: vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL,
    };
    let subpass = [vk::SubpassDescription::default()
        .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
        .color_attachments(&color_ref)
        .depth_stencil_attachment(&depth_ref)];
    let attachment_stages = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT
        | vk::PipelineStageFlags::EARLY_FRAGMENT_TESTS
        | vk::PipelineStageFlags::LATE_FRAGMENT_TESTS;
    let dependencies = [
        // Earlier attachment writes and transfer reads (none in this program, but a reused image
        // would have them) happen before this pass clears and writes the attachments.
        vk::SubpassDependency {
            src_subpass: vk::SUBPASS_EXTERNAL,
            dst_subpass: 0,
            src_stage_mask: attachment_stages | vk::PipelineStageFlags::TRANSFER,
            dst_stage_mask: attachment_stages,
            src_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE
                | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE,
            dst_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE
                | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_READ
                | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE,
            dependency_flags: vk::DependencyFlags::empty(),
        },
        // Colour writes happen before the copy to the readback buffer.
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
    let vert = ctx.create_shader_module(shaders::OFFSCREEN_VERT)?;
    let frag = ctx.create_shader_module(shaders::OFFSCREEN_FRAG)?;
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
    let bindings = [vk::VertexInputBindingDescription {
        binding: 0,
        stride: VERTEX_STRIDE,
        input_rate: vk::VertexInputRate::VERTEX,
    }];
    let attributes = [
        vk::VertexInputAttributeDescription {
            location: 0,
            binding: 0,
            format: vk::Format::R32G32B32_SFLOAT,
            offset: 0,
        },
        vk::VertexInputAttributeDescription {
            location: 1,
            binding: 0,
            format: vk::Format::R32G32_SFLOAT,
            offset: 12,
        },
        vk::VertexInputAttributeDescription {
            location: 2,
            binding: 0,
            format: vk::Format::R8G8B8A8_UINT,
            offset: 20,
        },
        vk::VertexInputAttributeDescription {
            location: 3,
            binding: 0,
            format: vk::Format::R32_UINT,
            offset: 24,
        },
    ];
    let vertex_input = vk::PipelineVertexInputStateCreateInfo::default()
        .vertex_binding_descriptions(&bindings)
        .vertex_attribute_descriptions(&attributes);
    let input_assembly = vk::PipelineInputAssemblyStateCreateInfo::default()
        .topology(vk::PrimitiveTopology::TRIANGLE_LIST);
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
    let depth_stencil = vk::PipelineDepthStencilStateCreateInfo::default()
        .depth_test_enable(true)
        .depth_write_enable(true)
        .depth_compare_op(vk::CompareOp::LESS);
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
        .depth_stencil_state(&depth_stencil)
        .color_blend_state(&blend)
        .layout(**layout)
        .render_pass(**render_pass)
        .subpass(0);
    // SAFETY: every state struct outlives the call; modules, layout and render pass are alive
    // and the shaders' interfaces match the vertex input and the layout.
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
