//! `bench-handoff`: what it costs for one batch to read data another batch just wrote, against
//! copying the same bytes with `memcpy`. Under vkfuse's `round_robin` the writing and the reading
//! batch run on different members; with shared host memory nothing is copied between them.
//! With `--image` the data is an image (members of different drivers copy it as an image: out
//! at the end of the writing batch, in at the start of the reading one).

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::resources::{subresource_range, MemoryUse};
use vkfuse_examples::{
    cmd, example_main, json_array, nanos, u32s_from_bytes, Args, Context, ErrorContext as _,
    ImageDesc, Mismatch, Report, Result,
};

const NAME: &str = "bench-handoff";
const USAGE: &str = "\
usage: bench-handoff [--max-mib M] [--repeats R] [--image] [--validation]

For S = 1, 4, 16, .. up to M MiB (default 256): a batch fills a buffer of S bytes
(vkCmdFillBuffer) and is waited for, timed from vkQueueSubmit to its fence (write_ns); then a
second batch copies the buffer's last 16 bytes to a readback buffer and is timed the same way
(handoff_ns), and checked; a buffer memory barrier over the whole buffer first makes all S
bytes the batch's input (vkfuse moves only the parts of a buffer a batch names). The same S bytes are also copied on the host with memcpy between two
buffers (memcpy_ns). R (default 3) repetitions per size, the medians printed as one line of
JSON:
  {\"name\":\"bench-handoff\",\"sizes_mib\":[..],\"write_ns\":[..],\"handoff_ns\":[..],\"memcpy_ns\":[..]}

  --max-mib M    1..=1024
  --repeats R    1..=100
  --image        an R8G8B8A8_UINT image of 8192 x S/32768 texels instead of the buffer (sizes
                 up to maxImageDimension2D rows): the first batch clears it
                 (vkCmdClearColorImage, then TRANSFER_SRC_OPTIMAL), the second copies its last
                 texel out
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn run(mut args: Args) -> Result<Report> {
    let max_mib: u64 = args.value("--max-mib")?.unwrap_or(256);
    let repeats: u32 = args.value("--repeats")?.unwrap_or(3);
    let image = args.flag("--image");
    args.finish()?;
    if !(1..=1024).contains(&max_mib) || !(1..=100).contains(&repeats) {
        return Err("--max-mib must be in 1..=1024 and --repeats in 1..=100".into());
    }
    // Clearing an image needs a compute (or graphics) queue.
    let flags = if image {
        vk::QueueFlags::COMPUTE
    } else {
        vk::QueueFlags::TRANSFER
    };
    let ctx = Context::with_queue(NAME, args.validation, flags)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let readback = ctx.create_readback_buffer(16)?;
    let pool = ctx.create_command_pool(
        queue.family,
        vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
    )?;
    let write_cb = ctx.allocate_primary(&pool)?;
    let read_cb = ctx.allocate_primary(&pool)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    let (mut sizes, mut handoff, mut memcpy) = (Vec::new(), Vec::new(), Vec::new());
    let mut write = Vec::new();
    if image {
        let rows = (max_mib << 20) / (4 * u64::from(IMAGE_WIDTH));
        let limit = ctx.properties.limits.max_image_dimension2_d;
        if rows > u64::from(limit) {
            return Err(format!(
                "--image --max-mib {max_mib}: {rows} rows of {IMAGE_WIDTH} texels exceed maxImageDimension2D ({limit})"
            )
            .into());
        }
    }
    let mut mib = 1;
    while mib <= max_mib {
        let size = mib << 20;
        let target = if image {
            Target::Image(ctx.create_image(&image_desc(size))?)
        } else {
            Target::Buffer(ctx.create_buffer(
                size,
                vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                MemoryUse::DeviceLocal,
            )?)
        };
        let (mut h, mut m, mut w) = (Vec::new(), Vec::new(), Vec::new());
        let src = vec![0x5au8; size as usize];
        let mut dst = vec![0u8; size as usize];
        for r in 0..repeats {
            let value = (mib as u32) << 8 | r;
            let begin = vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            // SAFETY: command buffers of this device, not pending (their fences were waited).
            unsafe {
                d.begin_command_buffer(write_cb, &begin)
                    .context("vkBeginCommandBuffer")?;
                record_write(d, write_cb, &target, size, value);
                d.end_command_buffer(write_cb)
                    .context("vkEndCommandBuffer")?;
                d.begin_command_buffer(read_cb, &begin)
                    .context("vkBeginCommandBuffer")?;
                record_read(d, read_cb, &target, size, readback.handle);
                cmd::memory_barrier(d, read_cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
                d.end_command_buffer(read_cb)
                    .context("vkEndCommandBuffer")?;
            }
            let start = Instant::now();
            let list = [write_cb];
            let submit = vk::SubmitInfo::default().command_buffers(&list);
            // SAFETY: as above.
            unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
            ctx.wait_and_reset_fence(&fence)?;
            w.push(nanos(start.elapsed()));
            let start = Instant::now();
            let list = [read_cb];
            let submit = vk::SubmitInfo::default().command_buffers(&list);
            // SAFETY: as above; the write batch is complete (its fence was waited).
            unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
            ctx.wait_and_reset_fence(&fence)?;
            h.push(nanos(start.elapsed()));
            let words = u32s_from_bytes(&readback.read_bytes(0, 16)?);
            let expect = |k: usize| match target {
                Target::Buffer(_) => value,
                // One R8G8B8A8_UINT texel: the clear's four components, 8 bits each.
                Target::Image(_) => {
                    if k == 0 {
                        u32::from_le_bytes(texel(value))
                    } else {
                        0
                    }
                }
            };
            if words.iter().enumerate().any(|(k, w)| *w != expect(k)) {
                return Err(Mismatch(format!(
                    "{mib} MiB: read {words:x?}, the writing batch wrote {value:#x}"
                ))
                .into());
            }
            let start = Instant::now();
            dst.copy_from_slice(&src);
            std::hint::black_box(&mut dst);
            m.push(nanos(start.elapsed()));
        }
        sizes.push(mib);
        write.push(median(w));
        handoff.push(median(h));
        memcpy.push(median(m));
        mib *= 4;
    }
    Ok(Report::Json(format!(
        "{{\"name\":\"{NAME}\",\"repeats\":{repeats},\"image\":{image},\"sizes_mib\":{},\"write_ns\":{},\"handoff_ns\":{},\"memcpy_ns\":{}}}",
        json_array(&sizes),
        json_array(&write),
        json_array(&handoff),
        json_array(&memcpy)
    )))
}

/// What the batches write and read.
enum Target<'d> {
    Buffer(vkfuse_examples::Buffer<'d>),
    Image(vkfuse_examples::Image<'d>),
}

const IMAGE_WIDTH: u32 = 8192;
const IMAGE_FORMAT: vk::Format = vk::Format::R8G8B8A8_UINT;

/// An image of `size` bytes: 8192 texels of 4 bytes per row.
fn image_desc(size: u64) -> ImageDesc {
    ImageDesc {
        format: IMAGE_FORMAT,
        extent: vk::Extent2D {
            width: IMAGE_WIDTH,
            height: (size / (4 * u64::from(IMAGE_WIDTH))) as u32,
        },
        mip_levels: 1,
        array_layers: 1,
        // Sampled too: the example crate's images come with a view.
        usage: vk::ImageUsageFlags::TRANSFER_SRC
            | vk::ImageUsageFlags::TRANSFER_DST
            | vk::ImageUsageFlags::SAMPLED,
        view_type: vk::ImageViewType::TYPE_2D,
        view_range: subresource_range(vk::ImageAspectFlags::COLOR),
        samples: vk::SampleCountFlags::TYPE_1,
    }
}

/// The clear colour of the image for `value`: its four bytes, one per component.
fn texel(value: u32) -> [u8; 4] {
    value.to_le_bytes()
}

/// Records the writing batch: the buffer filled with `value`, or the image cleared to it.
///
/// # Safety
/// `cb` is being recorded; `target` is `size` bytes of this device.
unsafe fn record_write(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    target: &Target<'_>,
    size: u64,
    value: u32,
) {
    let host_and_copy = (
        vk::PipelineStageFlags::HOST | vk::PipelineStageFlags::TRANSFER,
        vk::AccessFlags::HOST_READ | vk::AccessFlags::TRANSFER_READ,
    );
    match target {
        Target::Buffer(b) => {
            // SAFETY: caller contract.
            unsafe { d.cmd_fill_buffer(cb, b.handle, 0, size, value) };
        }
        Target::Image(i) => {
            let range = subresource_range(vk::ImageAspectFlags::COLOR);
            let to_dst = cmd::image_range_barrier(
                i.handle,
                range,
                (
                    vk::ImageLayout::UNDEFINED,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                ),
                (vk::AccessFlags::empty(), vk::AccessFlags::TRANSFER_WRITE),
            );
            let color = vk::ClearColorValue {
                uint32: texel(value).map(u32::from),
            };
            let to_src = cmd::image_range_barrier(
                i.handle,
                range,
                (
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                ),
                (
                    vk::AccessFlags::TRANSFER_WRITE,
                    vk::AccessFlags::TRANSFER_READ,
                ),
            );
            // SAFETY: caller contract.
            unsafe {
                d.cmd_pipeline_barrier(
                    cb,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_dst],
                );
                d.cmd_clear_color_image(
                    cb,
                    i.handle,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &color,
                    &[range],
                );
                d.cmd_pipeline_barrier(
                    cb,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_src],
                );
            }
            return;
        }
    }
    // SAFETY: caller contract.
    unsafe { cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, host_and_copy) };
}

/// Records the reading batch: the last 16 bytes of the buffer, or the last texel of the image,
/// into `readback`.
///
/// # Safety
/// As [`record_write`]; `readback` holds 16 bytes.
unsafe fn record_read(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    target: &Target<'_>,
    size: u64,
    readback: vk::Buffer,
) {
    match target {
        Target::Buffer(b) => {
            let region = vk::BufferCopy {
                src_offset: size - 16,
                dst_offset: 0,
                size: 16,
            };
            // SAFETY: caller contract. The barrier names all of the buffer: every byte is the
            // batch's input, as for a kernel reading all of it.
            unsafe {
                cmd::buffer_barrier(d, cb, b.handle, cmd::TRANSFER_WRITE, cmd::TRANSFER_READ);
                d.cmd_copy_buffer(cb, b.handle, readback, &[region])
            };
        }
        Target::Image(i) => {
            let extent = image_desc(size).extent;
            let region = cmd::color_copy(
                vk::Offset2D {
                    x: extent.width as i32 - 1,
                    y: extent.height as i32 - 1,
                },
                vk::Extent2D {
                    width: 1,
                    height: 1,
                },
            );
            // SAFETY: caller contract; the image is in TRANSFER_SRC_OPTIMAL (the writing batch
            // left it there) and the readback's 16 bytes were zeroed.
            unsafe {
                d.cmd_fill_buffer(cb, readback, 0, 16, 0);
                cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::TRANSFER_WRITE);
                d.cmd_copy_image_to_buffer(
                    cb,
                    i.handle,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    readback,
                    &[region],
                )
            };
        }
    }
}
