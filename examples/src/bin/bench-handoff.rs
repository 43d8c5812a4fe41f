//! `bench-handoff`: what it costs for one batch to read data another batch just wrote, against
//! copying the same bytes with `memcpy`. Under vkfuse's `round_robin` the writing and the reading
//! batch run on different members; with shared host memory nothing is copied between them.

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, json_array, nanos, u32s_from_bytes, Args, Context, ErrorContext as _,
    Mismatch, Report, Result,
};

const NAME: &str = "bench-handoff";
const USAGE: &str = "\
usage: bench-handoff [--max-mib M] [--repeats R] [--validation]

For S = 1, 4, 16, .. up to M MiB (default 256): a batch fills a buffer of S bytes
(vkCmdFillBuffer) and is waited for; then a second batch copies the buffer's last 16 bytes to a
readback buffer and is timed from vkQueueSubmit to its fence (handoff_ns), and checked. The same
S bytes are also copied on the host with memcpy between two buffers (memcpy_ns). R (default 3)
repetitions per size, the medians printed as one line of JSON:
  {\"name\":\"bench-handoff\",\"sizes_mib\":[..],\"handoff_ns\":[..],\"memcpy_ns\":[..]}

  --max-mib M    1..=1024
  --repeats R    1..=100
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
    args.finish()?;
    if !(1..=1024).contains(&max_mib) || !(1..=100).contains(&repeats) {
        return Err("--max-mib must be in 1..=1024 and --repeats in 1..=100".into());
    }
    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::TRANSFER)?;
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
    let mut mib = 1;
    while mib <= max_mib {
        let size = mib << 20;
        let buffer = ctx.create_buffer(
            size,
            vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::DeviceLocal,
        )?;
        let (mut h, mut m) = (Vec::new(), Vec::new());
        let src = vec![0x5au8; size as usize];
        let mut dst = vec![0u8; size as usize];
        for r in 0..repeats {
            let value = (mib as u32) << 8 | r;
            let begin = vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            let region = vk::BufferCopy {
                src_offset: size - 16,
                dst_offset: 0,
                size: 16,
            };
            // SAFETY: command buffers of this device, not pending (their fences were waited).
            unsafe {
                d.begin_command_buffer(write_cb, &begin)
                    .context("vkBeginCommandBuffer")?;
                d.cmd_fill_buffer(write_cb, buffer.handle, 0, size, value);
                let host_and_copy = (
                    vk::PipelineStageFlags::HOST | vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::HOST_READ | vk::AccessFlags::TRANSFER_READ,
                );
                cmd::memory_barrier(d, write_cb, cmd::TRANSFER_WRITE, host_and_copy);
                d.end_command_buffer(write_cb)
                    .context("vkEndCommandBuffer")?;
                d.begin_command_buffer(read_cb, &begin)
                    .context("vkBeginCommandBuffer")?;
                d.cmd_copy_buffer(read_cb, buffer.handle, readback.handle, &[region]);
                cmd::memory_barrier(d, read_cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
                d.end_command_buffer(read_cb)
                    .context("vkEndCommandBuffer")?;
                let list = [write_cb];
                let submit = vk::SubmitInfo::default().command_buffers(&list);
                d.queue_submit(queue.handle, &[submit], *fence)
                    .context("vkQueueSubmit")?;
            }
            ctx.wait_and_reset_fence(&fence)?;
            let start = Instant::now();
            let list = [read_cb];
            let submit = vk::SubmitInfo::default().command_buffers(&list);
            // SAFETY: as above; the write batch is complete (its fence was waited).
            unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
            ctx.wait_and_reset_fence(&fence)?;
            h.push(nanos(start.elapsed()));
            let words = u32s_from_bytes(&readback.read_bytes(0, 16)?);
            if words.iter().any(|w| *w != value) {
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
        handoff.push(median(h));
        memcpy.push(median(m));
        mib *= 4;
    }
    Ok(Report::Json(format!(
        "{{\"name\":\"{NAME}\",\"repeats\":{repeats},\"sizes_mib\":{},\"handoff_ns\":{},\"memcpy_ns\":{}}}",
        json_array(&sizes),
        json_array(&handoff),
        json_array(&memcpy)
    )))
}
