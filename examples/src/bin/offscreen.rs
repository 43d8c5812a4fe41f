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
    example_main, shaders, Args, Binding, Context, Fnv1a64, GraphicsPipelineDesc, Mismatch, Report,
    Result,
};

const NAME: &str = "offscreen";
const USAGE: &str = "\
usage: offscreen [--ppm PATH] [--force-staging] [--storage] [--msaa] [--validation]

Renders four quads (depth-tested, two textured) into a 256x256 R8G8B8A8_UINT image, checks it
against a CPU rendering and prints
  vkfuse-example offscreen device=\"<name>\" result=<fnv1a64 of the 256x256x4 image bytes>

  --ppm PATH        also write the image (RGB, alpha dropped) as a binary PPM
  --force-staging   upload vertex and index data through a staging buffer even when the
                    device-local memory type is host-visible (the texture always is)
  --storage         the fragment shader also XORs each colour with a mask it reads from a
                    read-only storage buffer the host fills with zeros (same image)
  --msaa            draw into 4-sample colour and depth attachments, submitted on its own,
                    then resolve the colour (vkCmdResolveImage) into the image in a second
                    submit that also reads it back (same image: every quad edge lies on
                    pixel edges, so a pixel's samples agree)
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
/// One interleaved vertex buffer.
const VERTEX_BINDINGS: [vk::VertexInputBindingDescription; 1] =
    [vk::VertexInputBindingDescription {
        binding: 0,
        stride: VERTEX_STRIDE,
        input_rate: vk::VertexInputRate::VERTEX,
    }];
/// The shader's inputs, locations 0..=3, in the order of the vertex layout.
const VERTEX_ATTRIBUTES: [vk::VertexInputAttributeDescription; 4] = [
    attribute(0, vk::Format::R32G32B32_SFLOAT, 0),
    attribute(1, vk::Format::R32G32_SFLOAT, 12),
    attribute(2, vk::Format::R8G8B8A8_UINT, 20),
    attribute(3, vk::Format::R32_UINT, 24),
];

/// Vertex attribute `location` of binding 0.
const fn attribute(
    location: u32,
    format: vk::Format,
    offset: u32,
) -> vk::VertexInputAttributeDescription {
    vk::VertexInputAttributeDescription {
        location,
        binding: 0,
        format,
        offset,
    }
}

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

/// Records the barrier that takes colour image `image` from `UNDEFINED` (contents discarded)
/// to `TRANSFER_DST_OPTIMAL` for a transfer write.
///
/// # Safety
/// `cb` is a command buffer of `d` recording outside a render pass; `image` a live
/// single-level, single-layer colour image of `d`.
unsafe fn to_transfer_dst(d: &ash::Device, cb: vk::CommandBuffer, image: vk::Image) {
    // SAFETY: forwarded from the caller.
    unsafe {
        cmd::image_barrier(
            d,
            cb,
            image,
            vk::ImageAspectFlags::COLOR,
            vk::ImageLayout::UNDEFINED,
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            (
                vk::PipelineStageFlags::TOP_OF_PIPE,
                vk::AccessFlags::empty(),
            ),
            cmd::TRANSFER_WRITE,
        )
    };
}

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let ppm: Option<String> = args.value("--ppm")?;
    let force_staging = args.flag("--force-staging");
    let storage = args.flag("--storage");
    let msaa = args.flag("--msaa");
    args.finish()?;
    let samples = if msaa {
        vk::SampleCountFlags::TYPE_4
    } else {
        vk::SampleCountFlags::TYPE_1
    };

    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::GRAPHICS)?;
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
    let sampler = ctx.create_nearest_sampler()?;

    // Attachments and readback. With `--msaa` the colour image is the resolve's target,
    // drawn into through a multisampled one.
    let color = if msaa {
        ctx.create_image_2d(
            COLOR_FORMAT,
            extent,
            vk::ImageUsageFlags::COLOR_ATTACHMENT
                | vk::ImageUsageFlags::TRANSFER_DST
                | vk::ImageUsageFlags::TRANSFER_SRC,
            vk::ImageAspectFlags::COLOR,
        )?
    } else {
        ctx.create_render_target(COLOR_FORMAT, extent)?
    };
    let depth = ctx.create_multisampled_2d(
        depth_format,
        extent,
        vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
        depth_aspect,
        samples,
    )?;
    let multisampled = if msaa {
        Some(ctx.create_multisampled_2d(
            COLOR_FORMAT,
            extent,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
            vk::ImageAspectFlags::COLOR,
            samples,
        )?)
    } else {
        None
    };
    let drawn = multisampled.as_ref().unwrap_or(&color);
    let image_bytes = u64::from(SIZE * SIZE * 4);
    let readback = ctx.create_readback_buffer(image_bytes)?;

    // Descriptors, render pass, pipeline.
    // Two masks of zeros (`--storage`), written by the host.
    let masks = ctx.create_buffer(
        32,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        vkfuse_examples::resources::MemoryUse::Upload,
    )?;
    masks.write_bytes(0, &[0; 32])?;
    let mut bindings = vec![Binding::combined_image_sampler(
        vk::ShaderStageFlags::FRAGMENT,
        &sampler,
        &texture,
        // upload_texture left it in this layout.
        vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
    )];
    if storage {
        bindings.push(Binding::buffer(
            vk::DescriptorType::STORAGE_BUFFER,
            vk::ShaderStageFlags::FRAGMENT,
            &masks,
            0,
            vk::WHOLE_SIZE,
        ));
    }
    let descriptors = ctx.create_descriptor_set(&bindings)?;
    let render_pass =
        ctx.create_render_pass_to_transfer_samples(COLOR_FORMAT, Some(depth_format), samples)?;
    let framebuffer = ctx.create_framebuffer(&render_pass, &[drawn, &depth], extent)?;
    let layout = ctx.create_pipeline_layout(&[&descriptors.layout], &[])?;
    let pipeline = ctx.create_graphics_pipeline(
        &GraphicsPipelineDesc {
            vertex_shader: shaders::OFFSCREEN_VERT,
            fragment_shader: if storage {
                shaders::OFFSCREEN_STORAGE_FRAG
            } else {
                shaders::OFFSCREEN_FRAG
            },
            vertex_bindings: &VERTEX_BINDINGS,
            vertex_attributes: &VERTEX_ATTRIBUTES,
            topology: vk::PrimitiveTopology::TRIANGLE_LIST,
            extent,
            depth_test: true,
            samples,
        },
        &layout,
        &render_pass,
    )?;

    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cb = ctx.allocate_primary(&pool)?;
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
    let index_count = (QUADS.len() * 6) as u32;
    // SAFETY: cb is a fresh primary of `pool` (graphics family of `queue`); all handles are
    // alive until the fence wait below. Synchronisation: the texture and geometry uploads ended
    // with barriers to their shader/vertex-input reads; the render pass's external dependencies
    // order its attachment writes before the copy (final layout TRANSFER_SRC_OPTIMAL); the
    // buffer barrier makes the copy visible to the host before the fence signals.
    unsafe {
        cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        cmd::begin_render_pass(d, cb, (*render_pass, *framebuffer), extent, &clear_values);
        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, *pipeline);
        d.cmd_bind_descriptor_sets(
            cb,
            vk::PipelineBindPoint::GRAPHICS,
            *layout,
            0,
            &[descriptors.set],
            &[],
        );
        d.cmd_bind_vertex_buffers(cb, 0, &[vertices.handle], &[0]);
        d.cmd_bind_index_buffer(cb, indices.handle, 0, vk::IndexType::UINT16);
        d.cmd_draw_indexed(cb, index_count, 1, 0, 0, 0);
        d.cmd_end_render_pass(cb);
        if let Some(ms) = &multisampled {
            // The draw alone; the resolve and readback in a second submit.
            cmd::end(d, cb)?;
            ctx.submit(queue.handle, &[cb], &fence)?;
            ctx.wait_and_reset_fence(&fence)?;
            let resolve_cb = ctx.allocate_primary(&pool)?;
            cmd::begin(d, resolve_cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            to_transfer_dst(d, resolve_cb, color.handle);
            let layers = vk::ImageSubresourceLayers {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: 0,
                base_array_layer: 0,
                layer_count: 1,
            };
            let region = vk::ImageResolve {
                src_subresource: layers,
                src_offset: vk::Offset3D::default(),
                dst_subresource: layers,
                dst_offset: vk::Offset3D::default(),
                extent: vk::Extent3D {
                    width: SIZE,
                    height: SIZE,
                    depth: 1,
                },
            };
            // The render pass left the multisampled image in TRANSFER_SRC_OPTIMAL.
            d.cmd_resolve_image(
                resolve_cb,
                ms.handle,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                color.handle,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &[region],
            );
            cmd::image_barrier(
                d,
                resolve_cb,
                color.handle,
                vk::ImageAspectFlags::COLOR,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                cmd::TRANSFER_WRITE,
                cmd::TRANSFER_READ,
            );
            cmd::copy_image_to_host(d, resolve_cb, color.handle, extent, readback.handle);
            cmd::end(d, resolve_cb)?;
            ctx.submit(queue.handle, &[resolve_cb], &fence)?;
        } else {
            cmd::copy_image_to_host(d, cb, color.handle, extent, readback.handle);
            cmd::end(d, cb)?;
            ctx.submit(queue.handle, &[cb], &fence)?;
        }
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
    let staging = ctx.create_upload_buffer(data.len() as u64)?;
    staging.write_bytes(0, data)?;
    let d = &ctx.device;
    ctx.one_time_commands(queue, |cb| {
        let copy = cmd::color_copy(vk::Offset2D::default(), texture.extent);
        // SAFETY: cb is recording outside a render pass; the image is new (UNDEFINED) and the
        // staging buffer lives until one_time_commands has waited for the submission.
        unsafe {
            to_transfer_dst(d, cb, texture.handle);
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
                cmd::TRANSFER_WRITE,
                (
                    vk::PipelineStageFlags::FRAGMENT_SHADER,
                    vk::AccessFlags::SHADER_READ,
                ),
            );
        }
        Ok(())
    })
}
