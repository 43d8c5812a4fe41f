//! `independent`: a batch held back by a semaphore the host signals later, then a batch that
//! touches other memory, with a fence.
//!
//! The second batch's commands need not wait for the first: they share no memory. Its fence
//! must: a fence signals after every batch submitted before it. Through vkfuse with
//! `round_robin`, the second batch runs on the other member at once (its debug line says it
//! waits for none of the batches it depends on), and its fence moves to a batch after it that
//! waits for the first. The program checks that the fence has not signalled while the first
//! batch is held back, then releases it, waits for the fence and reads the buffers back.
//!
//! With `--chained`, batch 1 is not held back by the host but long (it fills a 64 MiB buffer
//! 16 times first), and the second submit holds two batches: the first fills B and signals a
//! binary semaphore, the second waits for it and copies B into C. A signal that a later batch
//! of the same submit waits for cannot move behind that batch: through vkfuse, that submit
//! waits for batch 1 instead (moving the signal deadlocked the submit). There is no host
//! gate here: with one, a queue of lavapipe 22.3 deadlocks in that vkQueueSubmit itself (it
//! blocks until the binary semaphore's signal is submitted to its queue thread, which is held
//! behind the gated batch).

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, fnv1a64, u32s_from_bytes, Args, Buffer, Context, ErrorContext as _,
    Mismatch, Owned, Report, Result,
};

const NAME: &str = "independent";
const USAGE: &str = "\
usage: independent [--chained] [--validation]

Batch 1 waits for a timeline value the host signals after batch 2 is submitted and fills
buffer A; batch 2 fills buffer B and signals a fence, which must not signal before batch 1
ran. Checks both buffers and prints
  vkfuse-example independent device=\"<name>\" result=<fnv1a64 of A then B>

  --chained     batch 1 is long instead of held back, and batch 2 signals a binary semaphore
                that a third batch, in the same submit, waits for; it copies B into
                buffer C (the result hashes C too)

  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const WORDS: u64 = 256;
const FILLS: [u32; 2] = [0xa1, 0xb2];

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let chained = args.flag("--chained");
    args.finish()?;
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let size = WORDS * 4;
    let usage = vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC;
    let buffers = [
        ctx.create_buffer(size, usage, MemoryUse::Readback)?,
        ctx.create_buffer(size, usage, MemoryUse::Readback)?,
        ctx.create_buffer(size, usage, MemoryUse::Readback)?,
    ];
    let chain = ctx.create_semaphore()?;
    const SCRATCH: u64 = 64 << 20;
    let scratch = if chained {
        Some(ctx.create_buffer(SCRATCH, usage, MemoryUse::DeviceLocal)?)
    } else {
        None
    };
    let gate = ctx.create_timeline_semaphore()?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 3)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    for ((&cb, b), fill) in cbs.iter().zip(&buffers).zip(FILLS) {
        // SAFETY: fresh command buffers of this device; the buffers live until the idle guard
        // waited for the device.
        unsafe {
            d.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
                .context("vkBeginCommandBuffer")?;
            if let Some(scratch) = scratch.as_ref().filter(|_| cb == cbs[0]) {
                for i in 0..16 {
                    d.cmd_fill_buffer(cb, scratch.handle, 0, SCRATCH, i);
                }
            }
            d.cmd_fill_buffer(cb, b.handle, 0, size, fill);
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        }
    }
    // SAFETY: as above.
    unsafe {
        d.begin_command_buffer(cbs[2], &vk::CommandBufferBeginInfo::default())
            .context("vkBeginCommandBuffer")?;
        d.cmd_copy_buffer(
            cbs[2],
            buffers[1].handle,
            buffers[2].handle,
            &[cmd::copy_range(0, size)],
        );
        cmd::memory_barrier(d, cbs[2], cmd::TRANSFER_WRITE, cmd::HOST_READ);
        d.end_command_buffer(cbs[2]).context("vkEndCommandBuffer")?;
    }
    let (sems, values, stages) = ([*gate], [1u64], [vk::PipelineStageFlags::TRANSFER]);
    let mut gate_value = vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
    let first = [cbs[0]];
    let gated = vk::SubmitInfo::default()
        .wait_semaphores(&sems)
        .wait_dst_stage_mask(&stages)
        .command_buffers(&first)
        .push_next(&mut gate_value);
    let (second, third, chained_sem) = ([cbs[1]], [cbs[2]], [*chain]);
    let copy_stage = [vk::PipelineStageFlags::TRANSFER];
    let free = vk::SubmitInfo::default().command_buffers(&second);
    let free_signalling = free.signal_semaphores(&chained_sem);
    let consuming = vk::SubmitInfo::default()
        .wait_semaphores(&chained_sem)
        .wait_dst_stage_mask(&copy_stage)
        .command_buffers(&third);
    if chained {
        // SAFETY: recorded command buffers of this device; the semaphore is signalled before
        // it is waited for, in submission order.
        unsafe {
            let long = vk::SubmitInfo::default().command_buffers(&first);
            d.queue_submit(queue.handle, &[long], vk::Fence::null())
                .context("vkQueueSubmit (long)")?;
            d.queue_submit(queue.handle, &[free_signalling, consuming], *fence)
                .context("vkQueueSubmit (chained)")?;
        }
        return finish(&ctx, &fence, &buffers, 3);
    }
    // SAFETY: recorded command buffers of this device; the gate is signalled below, after
    // both submits (a wait before its signal).
    unsafe {
        d.queue_submit(queue.handle, &[gated], vk::Fence::null())
            .context("vkQueueSubmit (gated)")?;
        d.queue_submit(queue.handle, &[free], *fence)
            .context("vkQueueSubmit")?;
    }
    // Time for batch 2 to run; its fence still waits for batch 1.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: a live fence of this device.
    let early = unsafe { d.get_fence_status(*fence) }.context("vkGetFenceStatus");
    // SAFETY: a timeline semaphore of this device, signalled to a higher value.
    unsafe { d.signal_semaphore(&vk::SemaphoreSignalInfo::default().semaphore(*gate).value(1)) }
        .context("vkSignalSemaphore")?;
    if early? {
        return Err(Mismatch(
            "the fence of batch 2 signalled while batch 1, submitted before it, was held back"
                .into(),
        )
        .into());
    }
    finish(&ctx, &fence, &buffers, 2)
}

/// Waits for `fence` and checks the first `checked` buffers: A and B hold their fills, C (with
/// --chained) a copy of B.
fn finish(
    ctx: &Context,
    fence: &Owned<'_, vk::Fence>,
    buffers: &[Buffer<'_>],
    checked: usize,
) -> Result<Report> {
    let size = WORDS * 4;
    ctx.wait_fence(fence)?;
    let mut bytes = Vec::new();
    for (b, fill) in buffers
        .iter()
        .zip([FILLS[0], FILLS[1], FILLS[1]])
        .take(checked)
    {
        let data = b.read_bytes(0, size as usize)?;
        if u32s_from_bytes(&data).iter().any(|w| *w != fill) {
            return Err(Mismatch(format!("a buffer does not hold its fill {fill:#x}")).into());
        }
        bytes.extend(data);
    }
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&bytes),
    })
}
