//! `bench-submit`: a submit-bound loop. Each submit carries one small command buffer (a 256-byte
//! vkCmdFillBuffer) and waits for the one before it through a timeline semaphore; one fence at
//! the end. Used by `vkfuse bench` to compare the per-submit cost of vkfuse's `round_robin`
//! placement with `single`.

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, json_array, nanos, u32s_from_bytes, Args, Context, ErrorContext as _,
    Mismatch, Report, Result,
};

const NAME: &str = "bench-submit";
const USAGE: &str = "\
usage: bench-submit [--submits N] [--iterations K] [--fence-with-last] [--validation]

Submits N (default 2000) batches, each one vkCmdFillBuffer of 256 bytes with the batch's number,
each waiting for the previous batch's timeline value, then a fence after the last; one warm-up
iteration, then K (default 5) timed ones. Checks that the buffer holds the last batch's number.
Prints one line of JSON:
  {\"name\":\"bench-submit\",\"submits\":N,\"iterations\":K,\"submit_ns\":[..]}
submit_ns: per iteration, (first vkQueueSubmit .. the last batch complete) / N.

  --submits N      1..=1000000
  --iterations K   1..=10000
  --fence-with-last  the fence on the last batch, which waits on the semaphore, instead of on a
                   submit of its own, and a fresh timeline per iteration, destroyed once the
                   fence signalled (lavapipe, Mesa 22.3, crashes or hangs on this direct)
  --validation     enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                   exit code 3 if it reports errors or warnings";

const WORDS: u64 = 64;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let submits: u32 = args.value("--submits")?.unwrap_or(2000);
    let iterations: u32 = args.value("--iterations")?.unwrap_or(5);
    let fence_with_last = args.flag("--fence-with-last");
    args.finish()?;
    if !(1..=1_000_000).contains(&submits) || !(1..=10_000).contains(&iterations) {
        return Err("--submits must be in 1..=1000000 and --iterations in 1..=10000".into());
    }
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let buffer = ctx.create_buffer(
        WORDS * 4,
        vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::Readback,
    )?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, submits)?;
    for (i, &cb) in cbs.iter().enumerate() {
        let begin = vk::CommandBufferBeginInfo::default();
        // SAFETY: command buffers of this device, recorded once and resubmitted after the
        // previous iteration completed.
        unsafe {
            d.begin_command_buffer(cb, &begin)
                .context("vkBeginCommandBuffer")?;
            d.cmd_fill_buffer(cb, buffer.handle, 0, WORDS * 4, i as u32 + 1);
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        }
    }
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    let mut times = Vec::new();
    // One timeline for every iteration, its values continuing from one iteration to the next
    // (with --fence-with-last: a fresh one per iteration, destroyed once the fence signalled).
    let shared = ctx.create_timeline_semaphore()?;
    for iteration in 0..=iterations {
        let fresh = match fence_with_last {
            true => Some(ctx.create_timeline_semaphore()?),
            false => None,
        };
        let (timeline, base) = match &fresh {
            Some(t) => (t, 0),
            None => (&shared, u64::from(iteration) * u64::from(submits)),
        };
        let start = Instant::now();
        for (i, &cb) in cbs.iter().enumerate() {
            let first = i == 0;
            let i = i as u64 + base;
            let wait_values = [i];
            let signal_values = [i + 1];
            let sems = [**timeline];
            let stages = [vk::PipelineStageFlags::TRANSFER];
            let mut values = vk::TimelineSemaphoreSubmitInfo::default()
                .wait_semaphore_values(&wait_values)
                .signal_semaphore_values(&signal_values);
            let list = [cb];
            let waits: &[vk::Semaphore] = if first { &[] } else { &sems };
            let submit = vk::SubmitInfo::default()
                .wait_semaphores(waits)
                .wait_dst_stage_mask(&stages[..waits.len()])
                .command_buffers(&list)
                .signal_semaphores(&sems)
                .push_next(&mut values);
            let last = fence_with_last && i + 1 == base + u64::from(submits);
            let f = if last { *fence } else { vk::Fence::null() };
            // SAFETY: handles of this device; each command buffer's previous use completed.
            unsafe { d.queue_submit(queue.handle, &[submit], f) }.context("vkQueueSubmit")?;
        }
        // By default the fence is on a submit of its own, which signals after every batch
        // before it. On the last batch, with its semaphore wait, lavapipe (Mesa 22.3) may
        // still be finishing that submit when the fence signals: destroying the semaphore
        // then crashes it (18 of 60 direct runs of 4 iterations), and vkDeviceWaitIdle may
        // hang. vkfuse works around it (`Exec::fence_apart`).
        if !fence_with_last {
            // SAFETY: the fence is unsignaled and not in use.
            unsafe { d.queue_submit(queue.handle, &[], *fence) }.context("vkQueueSubmit")?;
        }
        ctx.wait_and_reset_fence(&fence)?;
        let elapsed = nanos(start.elapsed());
        let words = u32s_from_bytes(&buffer.read_bytes(0, (WORDS * 4) as usize)?);
        if words.iter().any(|w| *w != submits) {
            return Err(Mismatch(format!(
                "the buffer holds {:?}.., not the last batch's number {submits}",
                &words[..2]
            ))
            .into());
        }
        if iteration > 0 {
            times.push(elapsed / u64::from(submits));
        }
    }
    Ok(Report::Json(format!(
        "{{\"name\":\"{NAME}\",\"submits\":{submits},\"iterations\":{iterations},\"submit_ns\":{}}}",
        json_array(&times)
    )))
}
