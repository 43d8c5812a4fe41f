//! `map-threads`: several threads allocate, map, write, copy on the device, read back, unmap
//! and free host-visible buffers at the same time; one queue, shared under a lock.
//!
//! Under vkfuse's `round_robin` the copies land on different members; every thread checks what
//! it reads against what it wrote.

use std::process::ExitCode;
use std::sync::Mutex;

use ash::vk;
use vkfuse_examples::hash::Fnv1a64;
use vkfuse_examples::{
    cmd, example_main, Args, Context, ErrorContext as _, Mismatch, Report, Result,
};

const NAME: &str = "map-threads";
const USAGE: &str = "\
usage: map-threads [--threads T] [--rounds R] [--validation]

T threads (default 4) each run R rounds (default 25): create an upload and a readback buffer of
a size between 4 KiB and 1 MiB (each allocation mapped), write a pattern, copy it on the device,
wait, read back and compare, then free both (unmapping them). Prints
  vkfuse-example map-threads device=\"<name>\" result=<fnv1a64 of every pattern, in order>

  --threads T    1..=32
  --rounds R     1..=1000
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn pattern(thread: u32, round: u32, len: usize) -> Vec<u8> {
    vkfuse_examples::pattern_bytes(u64::from(thread) << 32 | u64::from(round), len)
}

fn run(mut args: Args) -> Result<Report> {
    let threads: u32 = args.value("--threads")?.unwrap_or(4);
    let rounds: u32 = args.value("--rounds")?.unwrap_or(25);
    args.finish()?;
    if !(1..=32).contains(&threads) || !(1..=1000).contains(&rounds) {
        return Err("--threads must be in 1..=32 and --rounds in 1..=1000".into());
    }
    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::TRANSFER)?;
    let queue = ctx.queue();
    let queue_lock = Mutex::new(());
    let _idle = ctx.idle_guard();
    // Errors cross threads as text (the examples' error type is not Send); a mismatch is marked.
    let results: Vec<std::result::Result<(), (bool, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ctx = &ctx;
                let queue_lock = &queue_lock;
                scope.spawn(move || {
                    round_trips(ctx, queue, queue_lock, t, rounds)
                        .map_err(|e| (e.is::<Mismatch>(), e.to_string()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((false, "a thread panicked".into())))
            })
            .collect()
    });
    for r in results {
        match r {
            Ok(()) => {}
            Err((true, e)) => return Err(Mismatch(e).into()),
            Err((false, e)) => return Err(e.into()),
        }
    }
    let mut hash = Fnv1a64::new();
    for t in 0..threads {
        for r in 0..rounds {
            hash.update(&pattern(t, r, 4096 << ((t + r) % 9)));
        }
    }
    eprintln!("{NAME}: {threads} threads x {rounds} rounds: every read-back matched");
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}

/// One thread's rounds.
fn round_trips(
    ctx: &Context,
    queue: vkfuse_examples::QueueInfo,
    queue_lock: &Mutex<()>,
    t: u32,
    rounds: u32,
) -> Result<()> {
    {
        let d = &ctx.device;
        let pool = ctx.create_command_pool(
            queue.family,
            vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
        )?;
        let cb = ctx.allocate_primary(&pool)?;
        let fence = ctx.create_fence(false)?;
        for r in 0..rounds {
            let len = 4096 << ((t + r) % 9);
            let data = pattern(t, r, len);
            let upload = ctx.create_upload_buffer(len as u64)?;
            let readback = ctx.create_readback_buffer(len as u64)?;
            upload.write_bytes(0, &data)?;
            let begin = vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            let region = vk::BufferCopy {
                src_offset: 0,
                dst_offset: 0,
                size: len as u64,
            };
            // SAFETY: this thread's command buffer and buffers; the queue is used
            // under `queue_lock` only.
            unsafe {
                d.begin_command_buffer(cb, &begin)
                    .context("vkBeginCommandBuffer")?;
                d.cmd_copy_buffer(cb, upload.handle, readback.handle, &[region]);
                cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
                d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
                let list = [cb];
                let submit = vk::SubmitInfo::default().command_buffers(&list);
                let _q = queue_lock.lock().map_err(|_| "queue lock poisoned")?;
                d.queue_submit(queue.handle, &[submit], *fence)
                    .context("vkQueueSubmit")?;
            }
            ctx.wait_and_reset_fence(&fence)?;
            if readback.read_bytes(0, len)? != data {
                return Err(Mismatch(format!(
                    "thread {t} round {r}: {len} bytes read back differ from those written"
                ))
                .into());
            }
        }
    }
    Ok(())
}
