//! `independent`: a batch held back by a semaphore the host signals later, then a batch that
//! touches other memory, with a fence.
//!
//! The second batch's commands need not wait for the first: they share no memory. Its fence
//! must: a fence signals after every batch submitted before it. Through vkfuse with
//! `round_robin`, the second batch runs on the other member at once (its debug line says it
//! waits for none of the batches it depends on), and its fence moves to a batch after it that
//! waits for the first. The program checks that the fence has not signalled while the first
//! batch is held back, then releases it, waits for the fence and reads the buffers back.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, fnv1a64, u32s_from_bytes, Args, Context, ErrorContext as _, Mismatch,
    Report, Result,
};

const NAME: &str = "independent";
const USAGE: &str = "\
usage: independent [--validation]

Batch 1 waits for a timeline value the host signals after batch 2 is submitted and fills
buffer A; batch 2 fills buffer B and signals a fence, which must not signal before batch 1
ran. Checks both buffers and prints
  vkfuse-example independent device=\"<name>\" result=<fnv1a64 of A then B>

  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const WORDS: u64 = 256;
const FILLS: [u32; 2] = [0xa1, 0xb2];

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(args: Args) -> Result<Report> {
    args.finish()?;
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let size = WORDS * 4;
    let buffers = [
        ctx.create_buffer(
            size,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Readback,
        )?,
        ctx.create_buffer(
            size,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Readback,
        )?,
    ];
    let gate = ctx.create_timeline_semaphore()?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 2)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    for ((&cb, b), fill) in cbs.iter().zip(&buffers).zip(FILLS) {
        // SAFETY: fresh command buffers of this device; the buffers live until the idle guard
        // waited for the device.
        unsafe {
            d.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
                .context("vkBeginCommandBuffer")?;
            d.cmd_fill_buffer(cb, b.handle, 0, size, fill);
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        }
    }
    let (sems, values, stages) = ([*gate], [1u64], [vk::PipelineStageFlags::TRANSFER]);
    let mut gate_value = vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
    let first = [cbs[0]];
    let gated = vk::SubmitInfo::default()
        .wait_semaphores(&sems)
        .wait_dst_stage_mask(&stages)
        .command_buffers(&first)
        .push_next(&mut gate_value);
    let second = [cbs[1]];
    let free = vk::SubmitInfo::default().command_buffers(&second);
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
    ctx.wait_fence(&fence)?;
    let mut bytes = Vec::new();
    for (b, fill) in buffers.iter().zip(FILLS) {
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
