//! `cross-wait`: a host thread waits for a timeline value before the batch that signals it is
//! submitted, and that batch must run where another batch set an event.
//!
//! Through vkfuse with `round_robin` on two members: batch 1 (member 0) fills a buffer, batch 2
//! (member 1) fills it again and sets an event. The host then waits for timeline value 1, which
//! nobody has submitted yet: vkfuse forwards the wait to member 0's copy. Batch 3 waits for the
//! event and signals the value; it runs on member 1, which holds the event, so vkfuse carries
//! the value over to member 0's copy once batch 3 is done. The waiting thread must wake up, and
//! the buffer must hold batch 3's fill. On one driver this is an ordinary wait-before-signal.

use std::process::ExitCode;
use std::time::Duration;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, fnv1a64, u32s_from_bytes, Args, Context, ErrorContext as _, Mismatch,
    Report, Result,
};

const NAME: &str = "cross-wait";
const USAGE: &str = "\
usage: cross-wait [--validation]

Three batches; a host thread waits for a timeline value before the batch that signals it, which
waits for an event set by the batch before, is submitted. Prints
  vkfuse-example cross-wait device=\"<name>\" result=<fnv1a64 of the buffer>
after checking that the wait ended signalled and the buffer holds the third batch's fill.

  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const WORDS: u64 = 64;
/// How long the waiting thread waits before giving up (a deadlock shows as a timeout).
const WAIT_NS: u64 = 20_000_000_000;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(args: Args) -> Result<Report> {
    args.finish()?;
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let buffer = ctx.create_buffer(
        WORDS * 4,
        vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::Readback,
    )?;
    let timeline = ctx.create_timeline_semaphore()?;
    // SAFETY: a plain create call; the event is owned once.
    let event = unsafe {
        ctx.own_created(
            d.create_event(&vk::EventCreateInfo::default(), None),
            "vkCreateEvent",
        )?
    };
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 3)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    let transfer = vk::PipelineStageFlags::TRANSFER;
    for (i, &cb) in cbs.iter().enumerate() {
        // SAFETY: fresh command buffers of this device; every handle recorded lives until the
        // idle guard above waited for the device.
        unsafe {
            d.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
                .context("vkBeginCommandBuffer")?;
            if i == 2 {
                let after_set = vk::MemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                    .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE);
                d.cmd_wait_events(cb, &[*event], transfer, transfer, &[after_set], &[], &[]);
            }
            d.cmd_fill_buffer(cb, buffer.handle, 0, WORDS * 4, 0x100 + i as u32);
            if i == 1 {
                d.cmd_set_event(cb, *event, transfer);
            }
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        }
    }
    let submit = |cb: vk::CommandBuffer, signal: bool, f: vk::Fence| -> Result<()> {
        let list = [cb];
        let sems = [*timeline];
        let values = [1u64];
        let mut timeline_info =
            vk::TimelineSemaphoreSubmitInfo::default().signal_semaphore_values(&values);
        let mut info = vk::SubmitInfo::default().command_buffers(&list);
        if signal {
            info = info.signal_semaphores(&sems).push_next(&mut timeline_info);
        }
        // SAFETY: recorded command buffers of this device, each submitted once.
        unsafe { d.queue_submit(queue.handle, &[info], f) }.context("vkQueueSubmit")
    };
    submit(cbs[0], false, vk::Fence::null())?;
    submit(cbs[1], false, vk::Fence::null())?;

    let (sems, values) = ([*timeline], [1u64]);
    let wait_info = vk::SemaphoreWaitInfo::default()
        .semaphores(&sems)
        .values(&values);
    // A first look, before the signal exists: not reached yet.
    // SAFETY: a live timeline semaphore of this device.
    let early = unsafe { d.wait_semaphores(&wait_info, 0) };
    if early != Err(vk::Result::TIMEOUT) {
        return Err(format!("vkWaitSemaphores before any signal returned {early:?}").into());
    }
    let waited = std::thread::scope(|scope| -> Result<std::result::Result<(), vk::Result>> {
        let waiter = scope.spawn(|| {
            // SAFETY: a live timeline semaphore; vkWaitSemaphores may be called from any
            // thread.
            unsafe { d.wait_semaphores(&wait_info, WAIT_NS) }
        });
        // Give the thread time to block on the wait before the signal is submitted.
        std::thread::sleep(Duration::from_millis(200));
        submit(cbs[2], true, *fence)?;
        waiter
            .join()
            .map_err(|_| "the waiting thread panicked".into())
    })?;
    ctx.wait_fence(&fence)?;
    let words = u32s_from_bytes(&buffer.read_bytes(0, (WORDS * 4) as usize)?);
    if words.iter().any(|w| *w != 0x102) {
        return Err(Mismatch(format!(
            "the buffer holds {:#x}.., not batch 3's fill 0x102",
            words[0]
        ))
        .into());
    }
    let ended = match waited {
        Ok(()) => "signalled".to_string(),
        Err(e) => format!("{e:?}"),
    };
    eprintln!("{NAME}: the host wait ended {ended}; the buffer holds batch 3's fill");
    if waited.is_err() {
        return Err(format!("the host wait for value 1 ended with {ended}").into());
    }
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&buffer.read_bytes(0, (WORDS * 4) as usize)?),
    })
}
