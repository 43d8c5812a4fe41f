//! `image-chain`: two storage images with mip levels and array layers passed back and forth
//! between rounds, each round its own submit, plus a depth/stencil image read back and cleared
//! every round.
//!
//! Round 0 uploads every level and layer of image A from a buffer. Round r (1..=N) reads level
//! 0 of one image (A on odd rounds, B on even ones) in a compute shader and writes level 0 of
//! the other from each texel's right-hand neighbour, then copies the top-left corner of that
//! level 0 into levels 1 and 2 of the same image with `vkCmdCopyImage`; level 0 ends the round
//! in GENERAL, levels 1 and 2 in TRANSFER_SRC_OPTIMAL. The depth/stencil image is copied to a
//! host-visible buffer (depth and stencil aspects as separate regions) from round 2 on, then
//! cleared with a round-dependent value and left in DEPTH_STENCIL_ATTACHMENT_OPTIMAL. Each
//! submit has its own fence, waited for before the next submit, so under vkfuse's
//! `round_robin` or `afr` consecutive rounds run on different members and every image (each
//! of its subresources in its own layout) has to move between them.
//!
//! A last submit reads back both images (every level and layer) and the depth/stencil image.
//! Everything is checked against a CPU model: integer formats, wrapping u32 arithmetic,
//! copies and clears to exactly representable depths, so the bytes are the same on every
//! conformant implementation.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::cmd;
use vkfuse_examples::{
    example_main, shaders, u32_bytes, u32s_from_bytes, Args, Binding, Buffer, Context, Fnv1a64,
    Image, ImageDesc, Mismatch, Owned, QueueInfo, Report, Result,
};

const NAME: &str = "image-chain";
const USAGE: &str = "\
usage: image-chain [--rounds N] [--validation]

Passes two 64x48 R32_UINT storage images (3 mip levels, 2 array layers) back and forth for N
rounds (default 8), one submit and fence each: a compute dispatch writes level 0 of one image
from level 0 of the other, vkCmdCopyImage fills levels 1 and 2 from level 0, and a 32x32
depth/stencil image is read back and cleared. Checks everything against a CPU model and prints
  vkfuse-example image-chain device=\"<name>\" result=<fnv1a64 of the images, then the depth/stencil readbacks>

  --rounds N     number of rounds (1..=1024)
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;
const LEVELS: u32 = 3;
const LAYERS: u32 = 2;
const COLOR_FORMAT: vk::Format = vk::Format::R32_UINT;
const LOCAL_SIZE: u32 = 8;
const MAX_ROUNDS: u32 = 1024;
/// Side of the depth/stencil image.
const DS_SIZE: u32 = 32;
const DS_TEXELS: usize = (DS_SIZE * DS_SIZE) as usize;
/// Bytes of one depth/stencil readback: the depth aspect (one 32-bit word a texel, for both
/// formats), then the stencil aspect (one byte a texel). Both offsets are multiples of 4.
const DS_SLICE: u64 = DS_TEXELS as u64 * 5;
const DS_STENCIL_OFFSET: u64 = DS_TEXELS as u64 * 4;

/// Layouts between rounds: level 0 is a storage image, levels 1.. only take copies.
const LEVEL0_LAYOUT: vk::ImageLayout = vk::ImageLayout::GENERAL;
const MIP_LAYOUT: vk::ImageLayout = vk::ImageLayout::TRANSFER_SRC_OPTIMAL;
const DS_LAYOUT: vk::ImageLayout = vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL;

/// Compute and transfer work, the only kinds recorded.
const WORK_STAGES: vk::PipelineStageFlags = vk::PipelineStageFlags::from_raw(
    vk::PipelineStageFlags::COMPUTE_SHADER.as_raw() | vk::PipelineStageFlags::TRANSFER.as_raw(),
);
const WRITES: vk::AccessFlags = vk::AccessFlags::from_raw(
    vk::AccessFlags::SHADER_WRITE.as_raw() | vk::AccessFlags::TRANSFER_WRITE.as_raw(),
);
const TRANSFER_READ_WRITE: vk::AccessFlags = vk::AccessFlags::from_raw(
    vk::AccessFlags::TRANSFER_READ.as_raw() | vk::AccessFlags::TRANSFER_WRITE.as_raw(),
);

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

// ---------------------------------------------------------------------------------------------
// CPU model. An image's texels are held in readback order: level by level, layer by layer,
// rows top to bottom.

/// Width and height of mip `level`.
fn level_extent(level: u32) -> (u32, u32) {
    (WIDTH >> level, HEIGHT >> level)
}

/// Texels of one level, all layers.
fn level_texels(level: u32) -> usize {
    let (w, h) = level_extent(level);
    (w * h * LAYERS) as usize
}

/// Index of the first texel of `level`.
fn level_start(level: u32) -> usize {
    (0..level).map(level_texels).sum()
}

/// Texels of a whole image.
fn image_texels() -> usize {
    level_start(LEVELS)
}

fn texel_index(level: u32, layer: u32, x: u32, y: u32) -> usize {
    let (w, h) = level_extent(level);
    level_start(level) + ((layer * h + y) * w + x) as usize
}

/// Every (layer, x, y) of `level`, in readback order.
fn texels_of(level: u32) -> impl Iterator<Item = (u32, u32, u32)> {
    let (w, h) = level_extent(level);
    (0..LAYERS).flat_map(move |layer| (0..h).flat_map(move |y| (0..w).map(move |x| (layer, x, y))))
}

/// Contents of image A after round 0.
fn initial_image() -> Vec<u32> {
    (0..LEVELS)
        .flat_map(|level| {
            texels_of(level).map(move |(layer, x, y)| {
                (x * 7)
                    .wrapping_add(y * 131)
                    .wrapping_add(layer.wrapping_mul(1_000_003))
                    .wrapping_add(level.wrapping_mul(0x0100_0193))
            })
        })
        .collect()
}

/// The destination image of `round` (every level: all are overwritten) from its source.
fn chain_step(src: &[u32], round: u32) -> Vec<u32> {
    let mut dst = vec![0u32; image_texels()];
    for (layer, x, y) in texels_of(0) {
        let s = src[texel_index(0, layer, (x + 1) % WIDTH, y)];
        dst[texel_index(0, layer, x, y)] = s
            .wrapping_mul(2_654_435_761)
            .wrapping_add(round.wrapping_mul(0x9E37_79B9))
            .wrapping_add(x ^ y);
    }
    for level in 1..LEVELS {
        for (layer, x, y) in texels_of(level) {
            dst[texel_index(level, layer, x, y)] = dst[texel_index(0, layer, x, y)];
        }
    }
    dst
}

/// Depth the depth/stencil image is cleared to in `round`: a multiple of 1/16 in [0, 1]
/// (`round / 16` for rounds up to 16), exact in every depth format.
fn clear_depth(round: u32) -> f32 {
    (round % 17) as f32 / 16.0
}

/// Stencil the depth/stencil image is cleared to in `round`.
fn clear_stencil(round: u32) -> u32 {
    round.wrapping_mul(3) & 0xff
}

/// The combined depth/stencil format in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepthStencil {
    D32S8,
    D24S8,
}

impl DepthStencil {
    fn format(self) -> vk::Format {
        match self {
            Self::D32S8 => vk::Format::D32_SFLOAT_S8_UINT,
            Self::D24S8 => vk::Format::D24_UNORM_S8_UINT,
        }
    }

    /// The 32-bit word a depth aspect copy holds after a clear in `round`: the float's bits,
    /// or the 24-bit UNORM value rounded to nearest (ties up) in the low bits.
    fn depth_word(self, round: u32) -> u32 {
        match self {
            Self::D32S8 => clear_depth(round).to_bits(),
            Self::D24S8 => {
                let k = u64::from(round % 17);
                ((k * 0xFF_FFFF * 2 + 16) / 32) as u32
            }
        }
    }

    /// Whether `got` is a valid copy of the depth cleared in `round`. D24: the top 8 bits are
    /// undefined, and the conversion may round to either neighbour (spec, "Conversion from
    /// Floating-Point to Normalized Fixed-Point").
    fn depth_matches(self, got: u32, round: u32) -> bool {
        let want = self.depth_word(round);
        match self {
            Self::D32S8 => got == want,
            Self::D24S8 => (got & 0xFF_FFFF).abs_diff(want) <= 1,
        }
    }
}

/// Checks one depth/stencil readback (`DS_SLICE` bytes) against the clear of `round`.
fn check_depth_stencil(ds: DepthStencil, bytes: &[u8], round: u32) -> Result<()> {
    let (depth, stencil) = bytes.split_at(DS_STENCIL_OFFSET as usize);
    let words = u32s_from_bytes(depth);
    let bad_depth = words.iter().position(|&w| !ds.depth_matches(w, round));
    if let Some(i) = bad_depth {
        return Err(Mismatch(format!(
            "depth cleared in round {round}: texel ({},{}) holds 0x{:08x}, expected 0x{:08x} ({} in {:?})",
            i as u32 % DS_SIZE,
            i as u32 / DS_SIZE,
            words[i],
            ds.depth_word(round),
            clear_depth(round),
            ds.format(),
        ))
        .into());
    }
    let want = clear_stencil(round) as u8;
    if let Some(i) = stencil.iter().position(|&s| s != want) {
        return Err(Mismatch(format!(
            "stencil cleared in round {round}: texel ({},{}) holds {}, expected {want}",
            i as u32 % DS_SIZE,
            i as u32 / DS_SIZE,
            stencil[i],
        ))
        .into());
    }
    Ok(())
}

/// Compares a read-back image with the model; the error names the first differing texel.
fn check_image(which: &str, got: &[u32], want: &[u32]) -> Result<()> {
    let wrong = got.iter().zip(want).filter(|(g, w)| g != w).count();
    if wrong == 0 {
        return Ok(());
    }
    for level in 0..LEVELS {
        for (layer, x, y) in texels_of(level) {
            let i = texel_index(level, layer, x, y);
            if got[i] != want[i] {
                return Err(Mismatch(format!(
                    "{wrong} of {} texels of image {which} differ from the CPU model; first at level {level} layer {layer} ({x},{y}): got 0x{:08x}, expected 0x{:08x}",
                    want.len(),
                    got[i],
                    want[i],
                ))
                .into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Device side.

/// Subresource range of a colour image: `levels` (first, count), every layer.
fn color_range(levels: (u32, u32)) -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        base_mip_level: levels.0,
        level_count: levels.1,
        base_array_layer: 0,
        layer_count: LAYERS,
    }
}

/// Both aspects of the depth/stencil image.
fn ds_range() -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    }
}

fn color_layers(level: u32) -> vk::ImageSubresourceLayers {
    vk::ImageSubresourceLayers {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        mip_level: level,
        base_array_layer: 0,
        layer_count: LAYERS,
    }
}

/// Buffer ↔ image regions for every level (all layers each), tightly packed in readback order
/// from `base` bytes into the buffer.
fn level_regions(base: u64) -> Vec<vk::BufferImageCopy> {
    (0..LEVELS)
        .map(|level| {
            let (w, h) = level_extent(level);
            vk::BufferImageCopy {
                buffer_offset: base + level_start(level) as u64 * 4,
                buffer_row_length: 0,
                buffer_image_height: 0,
                image_subresource: color_layers(level),
                image_offset: vk::Offset3D::default(),
                image_extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                },
            }
        })
        .collect()
}

/// The depth aspect then the stencil aspect of the depth/stencil image, into the readback
/// slice at `offset`.
fn ds_regions(offset: u64) -> [vk::BufferImageCopy; 2] {
    let region = |aspect, at| vk::BufferImageCopy {
        buffer_offset: at,
        buffer_row_length: 0,
        buffer_image_height: 0,
        image_subresource: vk::ImageSubresourceLayers {
            aspect_mask: aspect,
            mip_level: 0,
            base_array_layer: 0,
            layer_count: 1,
        },
        image_offset: vk::Offset3D::default(),
        image_extent: vk::Extent3D {
            width: DS_SIZE,
            height: DS_SIZE,
            depth: 1,
        },
    };
    [
        region(vk::ImageAspectFlags::DEPTH, offset),
        region(vk::ImageAspectFlags::STENCIL, offset + DS_STENCIL_OFFSET),
    ]
}

/// The descriptor set's bindings: level 0 of `src` and of `dst` as storage images.
fn storage_bindings<'a>(src: &'a Image<'_>, dst: &'a Image<'_>) -> [Binding<'a>; 2] {
    [src, dst].map(|image| {
        Binding::storage_image(
            vk::ShaderStageFlags::COMPUTE,
            image,
            vk::ImageLayout::GENERAL,
        )
    })
}

/// What one round works on.
struct Round<'a> {
    index: u32,
    src: &'a Image<'a>,
    dst: &'a Image<'a>,
    /// Whether `dst` holds data (its levels are in `LEVEL0_LAYOUT` / `MIP_LAYOUT`) or is
    /// still UNDEFINED.
    dst_defined: bool,
    set: vk::DescriptorSet,
}

/// Records round `round.index`'s colour work: the dispatch into level 0 of `dst`, then the
/// copies into its levels 1 and 2.
///
/// # Safety
///
/// `cb` must be recording, outside a render pass, on a compute-capable family of `d`; the
/// images, kernel and set must be live objects of `d`, the images' subresources in the
/// layouts this example keeps between rounds.
unsafe fn record_round_images(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    kernel: &vkfuse_examples::ComputeKernel<'_>,
    round: &Round<'_>,
) {
    let (old_level0, old_mips) = if round.dst_defined {
        (LEVEL0_LAYOUT, MIP_LAYOUT)
    } else {
        (vk::ImageLayout::UNDEFINED, vk::ImageLayout::UNDEFINED)
    };
    let start = [
        // The source's level 0: written by the previous round (or round 0's upload).
        cmd::image_range_barrier(
            round.src.handle,
            color_range((0, 1)),
            (LEVEL0_LAYOUT, LEVEL0_LAYOUT),
            (WRITES, vk::AccessFlags::SHADER_READ),
        ),
        // The destination's level 0: read by the previous round (a write-after-read), or new.
        cmd::image_range_barrier(
            round.dst.handle,
            color_range((0, 1)),
            (old_level0, LEVEL0_LAYOUT),
            (WRITES, vk::AccessFlags::SHADER_WRITE),
        ),
    ];
    let before_copy = [
        cmd::image_range_barrier(
            round.dst.handle,
            color_range((0, 1)),
            (LEVEL0_LAYOUT, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
            (
                vk::AccessFlags::SHADER_WRITE,
                vk::AccessFlags::TRANSFER_READ,
            ),
        ),
        cmd::image_range_barrier(
            round.dst.handle,
            color_range((1, LEVELS - 1)),
            (old_mips, vk::ImageLayout::TRANSFER_DST_OPTIMAL),
            (WRITES, vk::AccessFlags::TRANSFER_WRITE),
        ),
    ];
    let after_copy = [
        cmd::image_range_barrier(
            round.dst.handle,
            color_range((0, 1)),
            (vk::ImageLayout::TRANSFER_SRC_OPTIMAL, LEVEL0_LAYOUT),
            (
                vk::AccessFlags::TRANSFER_READ,
                vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE,
            ),
        ),
        cmd::image_range_barrier(
            round.dst.handle,
            color_range((1, LEVELS - 1)),
            (vk::ImageLayout::TRANSFER_DST_OPTIMAL, MIP_LAYOUT),
            (
                vk::AccessFlags::TRANSFER_WRITE,
                vk::AccessFlags::TRANSFER_READ,
            ),
        ),
    ];
    let copies: Vec<vk::ImageCopy> = (1..LEVELS)
        .map(|level| {
            let (w, h) = level_extent(level);
            vk::ImageCopy {
                src_subresource: color_layers(0),
                src_offset: vk::Offset3D::default(),
                dst_subresource: color_layers(level),
                dst_offset: vk::Offset3D::default(),
                extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                },
            }
        })
        .collect();
    let push = u32_bytes(&[round.index, WIDTH, HEIGHT]);
    // SAFETY: forwarded from the caller; the barriers name subresources in their old layouts,
    // the set's views are level 0 of both images (GENERAL at the dispatch), and the copy's
    // source (level 0) and destinations (levels 1, 2) are distinct subresources.
    unsafe {
        cmd::pipeline_barrier(
            d,
            cb,
            (WORK_STAGES, vk::PipelineStageFlags::COMPUTE_SHADER),
            &[],
            &start,
        );
        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *kernel.pipeline);
        d.cmd_bind_descriptor_sets(
            cb,
            vk::PipelineBindPoint::COMPUTE,
            *kernel.layout,
            0,
            &[round.set],
            &[],
        );
        kernel.push_constants(d, cb, &push);
        d.cmd_dispatch(
            cb,
            WIDTH.div_ceil(LOCAL_SIZE),
            HEIGHT.div_ceil(LOCAL_SIZE),
            LAYERS,
        );
        cmd::pipeline_barrier(
            d,
            cb,
            (WORK_STAGES, vk::PipelineStageFlags::TRANSFER),
            &[],
            &before_copy,
        );
        d.cmd_copy_image(
            cb,
            round.dst.handle,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            round.dst.handle,
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            &copies,
        );
        cmd::pipeline_barrier(
            d,
            cb,
            (vk::PipelineStageFlags::TRANSFER, WORK_STAGES),
            &[],
            &after_copy,
        );
    }
}

/// Records round `round`'s depth/stencil work: from round 2 on, the copy of both aspects into
/// slice `round - 2` of `readback` (made visible to the host); then the clear, and the
/// transition to `DS_LAYOUT`.
///
/// # Safety
///
/// `cb` must be recording, outside a render pass, on a graphics-capable family of `d`;
/// `depth` (in `DS_LAYOUT` from round 2 on, UNDEFINED in round 1) and `readback` (holding the
/// slice) must be live objects of `d`.
unsafe fn record_round_depth(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    depth: &Image<'_>,
    readback: &Buffer<'_>,
    round: u32,
) {
    let transfer = vk::PipelineStageFlags::TRANSFER;
    let to_clear_from = if round >= 2 {
        vk::ImageLayout::TRANSFER_SRC_OPTIMAL
    } else {
        vk::ImageLayout::UNDEFINED
    };
    let to_copy = [cmd::image_range_barrier(
        depth.handle,
        ds_range(),
        (DS_LAYOUT, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
        (
            vk::AccessFlags::TRANSFER_WRITE,
            vk::AccessFlags::TRANSFER_READ,
        ),
    )];
    let to_clear = [cmd::image_range_barrier(
        depth.handle,
        ds_range(),
        (to_clear_from, vk::ImageLayout::TRANSFER_DST_OPTIMAL),
        (TRANSFER_READ_WRITE, vk::AccessFlags::TRANSFER_WRITE),
    )];
    let to_attachment = [cmd::image_range_barrier(
        depth.handle,
        ds_range(),
        (vk::ImageLayout::TRANSFER_DST_OPTIMAL, DS_LAYOUT),
        (vk::AccessFlags::TRANSFER_WRITE, TRANSFER_READ_WRITE),
    )];
    let value = vk::ClearDepthStencilValue {
        depth: clear_depth(round),
        stencil: clear_stencil(round),
    };
    // SAFETY: forwarded from the caller; every barrier names the image in its old layout,
    // the slice lies inside `readback` (the caller sized it for every round).
    unsafe {
        if round >= 2 {
            cmd::pipeline_barrier(d, cb, (transfer, transfer), &[], &to_copy);
            d.cmd_copy_image_to_buffer(
                cb,
                depth.handle,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                readback.handle,
                &ds_regions(u64::from(round - 2) * DS_SLICE),
            );
            cmd::buffer_barrier(d, cb, readback.handle, cmd::TRANSFER_WRITE, cmd::HOST_READ);
        }
        cmd::pipeline_barrier(d, cb, (transfer, transfer), &[], &to_clear);
        d.cmd_clear_depth_stencil_image(
            cb,
            depth.handle,
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            &value,
            &[ds_range()],
        );
        cmd::pipeline_barrier(d, cb, (transfer, transfer), &[], &to_attachment);
    }
}

/// Begins `cb`, lets `record` fill it, submits it with `fence` and waits for the fence.
fn submit_and_wait(
    ctx: &Context,
    queue: QueueInfo,
    cb: vk::CommandBuffer,
    fence: &Owned<'_, vk::Fence>,
    record: impl FnOnce(vk::CommandBuffer),
) -> Result<()> {
    let d = &ctx.device;
    // SAFETY: cb is a fresh primary of a pool of `queue`'s family (initial state), used once;
    // the fence is unsignaled and unused; what `record` uses is alive until the wait below
    // (the caller's borrows outlive this call, and an `IdleGuard` covers early returns).
    unsafe {
        cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        record(cb);
        cmd::end(d, cb)?;
        ctx.submit(queue.handle, &[cb], fence)?;
    }
    ctx.wait_fence(fence)
}

fn run(mut args: Args) -> Result<Report> {
    let rounds: u32 = args.value("--rounds")?.unwrap_or(8);
    args.finish()?;
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(format!("--rounds must be in 1..={MAX_ROUNDS}, got {rounds}").into());
    }

    // Depth/stencil clears and copies of a depth or stencil aspect need a graphics queue.
    let ctx = Context::with_queue(
        NAME,
        args.validation,
        vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE,
    )?;
    let queue = ctx.queue();
    let d = &ctx.device;

    // Format features for transfers exist from Vulkan 1.1 (VK_KHR_maintenance1) on; before
    // that, every supported format may be copied.
    let transfer_features = if ctx.properties.api_version >= vk::API_VERSION_1_1 {
        vk::FormatFeatureFlags::TRANSFER_SRC | vk::FormatFeatureFlags::TRANSFER_DST
    } else {
        vk::FormatFeatureFlags::empty()
    };
    let color_features = vk::FormatFeatureFlags::STORAGE_IMAGE | transfer_features;
    if !ctx.optimal_format_supports(COLOR_FORMAT, color_features) {
        return Err(format!(
            "{COLOR_FORMAT:?} does not support {color_features:?} with optimal tiling"
        )
        .into());
    }
    let ds_features = vk::FormatFeatureFlags::DEPTH_STENCIL_ATTACHMENT | transfer_features;
    let ds = [DepthStencil::D32S8, DepthStencil::D24S8]
        .into_iter()
        .find(|f| ctx.optimal_format_supports(f.format(), ds_features))
        .ok_or_else(|| {
            format!(
                "neither D32_SFLOAT_S8_UINT nor D24_UNORM_S8_UINT supports {ds_features:?} with optimal tiling"
            )
        })?;
    eprintln!(
        "{NAME}: {rounds} rounds; images {WIDTH}x{HEIGHT} {COLOR_FORMAT:?}, {LEVELS} levels, {LAYERS} layers; depth/stencil {DS_SIZE}x{DS_SIZE} {:?}",
        ds.format()
    );

    let color_desc = ImageDesc {
        format: COLOR_FORMAT,
        extent: vk::Extent2D {
            width: WIDTH,
            height: HEIGHT,
        },
        mip_levels: LEVELS,
        array_layers: LAYERS,
        usage: vk::ImageUsageFlags::STORAGE
            | vk::ImageUsageFlags::TRANSFER_SRC
            | vk::ImageUsageFlags::TRANSFER_DST,
        view_type: vk::ImageViewType::TYPE_2D_ARRAY,
        view_range: color_range((0, 1)),
        samples: vk::SampleCountFlags::TYPE_1,
    };
    let images = [
        ctx.create_image(&color_desc)?,
        ctx.create_image(&color_desc)?,
    ];
    let depth = ctx.create_image_2d(
        ds.format(),
        vk::Extent2D {
            width: DS_SIZE,
            height: DS_SIZE,
        },
        vk::ImageUsageFlags::TRANSFER_SRC
            | vk::ImageUsageFlags::TRANSFER_DST
            | vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
        vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL,
    )?;
    let image_bytes = image_texels() as u64 * 4;
    let upload = ctx.create_upload_buffer(image_bytes)?;
    let initial = initial_image();
    upload.write_bytes(0, &u32_bytes(&initial))?;
    let color_readback = ctx.create_readback_buffer(2 * image_bytes)?;
    // One slice per depth/stencil readback: rounds 2..=N read the clear of the round before,
    // the last submit the clear of round N.
    let ds_readback = ctx.create_readback_buffer(u64::from(rounds) * DS_SLICE)?;

    // One kernel; its own set reads A and writes B, the second set the other way round.
    let kernel = ctx.create_compute_kernel(
        shaders::IMAGE_CHAIN_COMP,
        12,
        &storage_bindings(&images[0], &images[1]),
    )?;
    let b_to_a = ctx.create_descriptor_set(&storage_bindings(&images[1], &images[0]))?;
    let sets = [kernel.descriptors.set, b_to_a.set];

    let submits = rounds as usize + 2;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs =
        ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, submits as u32)?;
    let fences = (0..submits)
        .map(|_| ctx.create_fence(false))
        .collect::<Result<Vec<_>>>()?;
    // Dropped first: an early return after a submit waits before anything is destroyed.
    let _idle = ctx.idle_guard();

    // Round 0: every level and layer of A from the upload buffer.
    let a = &images[0];
    submit_and_wait(&ctx, queue, cbs[0], &fences[0], |cb| {
        let to_dst = [cmd::image_range_barrier(
            a.handle,
            color_range((0, LEVELS)),
            (
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            ),
            (vk::AccessFlags::empty(), vk::AccessFlags::TRANSFER_WRITE),
        )];
        let after = [
            cmd::image_range_barrier(
                a.handle,
                color_range((0, 1)),
                (vk::ImageLayout::TRANSFER_DST_OPTIMAL, LEVEL0_LAYOUT),
                (
                    vk::AccessFlags::TRANSFER_WRITE,
                    vk::AccessFlags::SHADER_READ,
                ),
            ),
            cmd::image_range_barrier(
                a.handle,
                color_range((1, LEVELS - 1)),
                (vk::ImageLayout::TRANSFER_DST_OPTIMAL, MIP_LAYOUT),
                (
                    vk::AccessFlags::TRANSFER_WRITE,
                    vk::AccessFlags::TRANSFER_READ,
                ),
            ),
        ];
        // SAFETY: cb is recording on a graphics+compute family; A is new (UNDEFINED) and the
        // regions lie inside the upload buffer, which lives until after the wait.
        unsafe {
            cmd::pipeline_barrier(
                d,
                cb,
                (
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::TRANSFER,
                ),
                &[],
                &to_dst,
            );
            d.cmd_copy_buffer_to_image(
                cb,
                upload.handle,
                a.handle,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &level_regions(0),
            );
            cmd::pipeline_barrier(
                d,
                cb,
                (vk::PipelineStageFlags::TRANSFER, WORK_STAGES),
                &[],
                &after,
            );
        }
    })?;

    // The model: A initialised, B undefined until round 1 writes it.
    let mut model: [Option<Vec<u32>>; 2] = [Some(initial), None];
    for r in 1..=rounds {
        let (s, t) = if r % 2 == 1 { (0, 1) } else { (1, 0) };
        let round = Round {
            index: r,
            src: &images[s],
            dst: &images[t],
            dst_defined: model[t].is_some(),
            set: sets[s],
        };
        let i = r as usize;
        submit_and_wait(&ctx, queue, cbs[i], &fences[i], |cb| {
            // SAFETY: cb is recording on a graphics+compute family; every object is alive
            // until after the wait, in the layouts the previous submits left (tracked by
            // `dst_defined` and the round number).
            unsafe {
                record_round_images(d, cb, &kernel, &round);
                record_round_depth(d, cb, &depth, &ds_readback, r);
            }
        })?;
        let src = model[s]
            .as_deref()
            .ok_or("internal error: the source image has no data")?;
        model[t] = Some(chain_step(src, r));
        if r >= 2 {
            let bytes = ds_readback.read_bytes(u64::from(r - 2) * DS_SLICE, DS_SLICE as usize)?;
            check_depth_stencil(ds, &bytes, r - 1)?;
        }
    }

    // Last submit: read back both images and the depth/stencil image.
    let last = submits - 1;
    submit_and_wait(&ctx, queue, cbs[last], &fences[last], |cb| {
        let mut barriers = Vec::new();
        for image in &images {
            barriers.push(cmd::image_range_barrier(
                image.handle,
                color_range((0, 1)),
                (LEVEL0_LAYOUT, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
                (WRITES, vk::AccessFlags::TRANSFER_READ),
            ));
            barriers.push(cmd::image_range_barrier(
                image.handle,
                color_range((1, LEVELS - 1)),
                (MIP_LAYOUT, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
                (WRITES, vk::AccessFlags::TRANSFER_READ),
            ));
        }
        barriers.push(cmd::image_range_barrier(
            depth.handle,
            ds_range(),
            (DS_LAYOUT, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
            (
                vk::AccessFlags::TRANSFER_WRITE,
                vk::AccessFlags::TRANSFER_READ,
            ),
        ));
        // SAFETY: cb is recording on a graphics+compute family; both images hold data (round
        // 0 wrote A, round 1 B) in the layouts the rounds leave, the depth/stencil image is in
        // DS_LAYOUT; the regions lie inside the readback buffers, alive until after the wait.
        unsafe {
            cmd::pipeline_barrier(
                d,
                cb,
                (WORK_STAGES, vk::PipelineStageFlags::TRANSFER),
                &[],
                &barriers,
            );
            for (n, image) in images.iter().enumerate() {
                d.cmd_copy_image_to_buffer(
                    cb,
                    image.handle,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    color_readback.handle,
                    &level_regions(n as u64 * image_bytes),
                );
            }
            d.cmd_copy_image_to_buffer(
                cb,
                depth.handle,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                ds_readback.handle,
                &ds_regions(u64::from(rounds - 1) * DS_SLICE),
            );
            cmd::buffer_barrier(
                d,
                cb,
                color_readback.handle,
                cmd::TRANSFER_WRITE,
                cmd::HOST_READ,
            );
            cmd::buffer_barrier(
                d,
                cb,
                ds_readback.handle,
                cmd::TRANSFER_WRITE,
                cmd::HOST_READ,
            );
        }
    })?;

    let mut hash = Fnv1a64::new();
    for (n, (name, want)) in ["A", "B"].iter().zip(&model).enumerate() {
        let want = want
            .as_deref()
            .ok_or("internal error: an image was never written")?;
        let bytes = color_readback.read_bytes(n as u64 * image_bytes, image_bytes as usize)?;
        check_image(name, &u32s_from_bytes(&bytes), want)?;
        hash.update(&bytes);
    }
    let ds_bytes = ds_readback.read_bytes(0, (u64::from(rounds) * DS_SLICE) as usize)?;
    for (slice, round) in ds_bytes.chunks_exact(DS_SLICE as usize).zip(1..) {
        check_depth_stencil(ds, slice, round)?;
        // The depth words as the model has them (D24: the top byte is undefined and the
        // rounding may differ by one), then the stencil bytes as read.
        let words = vec![ds.depth_word(round); DS_TEXELS];
        hash.update(&u32_bytes(&words));
        hash.update(&slice[DS_STENCIL_OFFSET as usize..]);
    }
    eprintln!(
        "{NAME}: {submits} submits; images and depth/stencil readbacks match the CPU model; hash covers image A then B (levels 0..{LEVELS}, layers 0..{LAYERS}, rows top to bottom, u32 LE, {image_bytes} bytes each), then per round 1..={rounds} the cleared depth ({:?} words, u32 LE) and stencil bytes ({DS_SIZE}x{DS_SIZE})",
        ds.format()
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}
