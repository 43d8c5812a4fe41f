//! `host-ring`: the host writes parts of a mapped buffer while batches use other parts.
//!
//! Streaming programs do this all the time (a ring of uploads in one persistently mapped
//! allocation): Vulkan lets the host write bytes of host-coherent memory that no pending batch
//! accesses, and host writes made before signalling a semaphore from the host are seen by a
//! batch that waits for it. Each round:
//!
//! 1. copies upload area A (written before the submit) into one half and fills the rest of that
//!    half; meanwhile, after the submit, the host writes the other half;
//! 2. copies upload area B into the end of the same half, in a batch that waits for a timeline
//!    value the host signals only after it wrote area B (after that batch was submitted).
//!
//! With `--event`, step 2's batch waits for an event instead: it sets event `started`, then
//! waits (`vkCmdWaitEvents` from the host stage) for event `go`; the host waits until it sees
//! `started` set, so that the batch is surely running, writes area B and sets `go`.
//!
//! Finally a device-local buffer (host-visible on CPU devices, but not mapped by the program until
//! then) is filled by a batch and only then mapped and read, as programs reading results back
//! from memory they never mapped before do.
//!
//! After each fence, every byte must hold what its last writer put there. Through vkfuse with
//! mirrored memory (`VKFUSE_SHARING=mirrored`) step 1 needs the write-back to take only the
//! bytes the batch changed (a plain copy of the member's copy would put the host's half back as
//! it was), and step 2 needs the batch's copy of the memory made only once its wait is over,
//! or with `--event`, the host's writes published to the running batch's copy before `go` is
//! set.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, fnv1a64, Args, Context, ErrorContext as _, Mismatch, Report, Result,
};

const NAME: &str = "host-ring";
const USAGE: &str = "\
usage: host-ring [--rounds R] [--event] [--validation]

R rounds (default 12) on one mapped host-coherent buffer of two 64 KiB halves and two 4 KiB
upload areas A and B: round r copies A (host-written before the submit) into half r%2 and
fills the rest of it while the host writes half (r+1)%2; then copies B into the end of half
r%2 in a batch that waits for a timeline value the host signals after writing B (with
--event: for an event the host sets after writing B, once the running batch set another
event). Checks the
whole buffer after each batch; then fills a device-local buffer that it maps only afterwards
(where its memory is host-visible) and checks it. Prints
  vkfuse-example host-ring device=\"<name>\" result=<fnv1a64 of every check's bytes>

  --rounds R    1..=1000
  --event       step 2 waits for an event the host sets instead of a timeline value
  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const HALF: u64 = 64 * 1024;
const UPLOAD: u64 = 4096;
/// Upload areas A and B after the two halves.
const AREA_A: u64 = 2 * HALF;
const AREA_B: u64 = 2 * HALF + UPLOAD;
const SIZE: u64 = 2 * HALF + 2 * UPLOAD;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// A byte pattern for round `r` and writer `who` (0: area A, 1: the host's half, 2: area B).
fn pattern(r: u32, who: u32, len: u64) -> Vec<u8> {
    vkfuse_examples::pattern_bytes(u64::from(who) << 32 | u64::from(r), len as usize)
}

fn fill_value(r: u32) -> u32 {
    0x5a00_0000 | r
}

fn run(mut args: Args) -> Result<Report> {
    let rounds: u32 = args.value("--rounds")?.unwrap_or(12);
    let event = args.flag("--event");
    args.finish()?;
    if !(1..=1000).contains(&rounds) {
        return Err("--rounds must be 1..=1000".into());
    }
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let buffer = ctx.create_buffer(
        SIZE,
        vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::Upload,
    )?;
    let gate = ctx.create_timeline_semaphore()?;
    let create_event = || {
        // SAFETY: a valid create info.
        unsafe {
            ctx.own_created(
                d.create_event(&vk::EventCreateInfo::default(), None),
                "vkCreateEvent",
            )
        }
    };
    let (started, go) = (create_event()?, create_event()?);
    let pool = ctx.create_command_pool(
        queue.family,
        vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
    )?;
    let cbs = [ctx.allocate_primary(&pool)?, ctx.allocate_primary(&pool)?];
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    let mut hashes = Vec::new();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
    for r in 0..rounds {
        let (dev_half, host_half) = (u64::from(r % 2) * HALF, u64::from((r + 1) % 2) * HALF);
        let area_a = pattern(r, 0, UPLOAD);
        buffer.write_bytes(AREA_A, &area_a)?;
        // SAFETY: the command buffers are not pending (the last round's fences were waited
        // for); the buffer lives until the idle guard waited for the device.
        unsafe {
            cmd::begin(d, cbs[0], vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            let copy = vk::BufferCopy {
                src_offset: AREA_A,
                dst_offset: dev_half,
                size: UPLOAD,
            };
            d.cmd_copy_buffer(cbs[0], buffer.handle, buffer.handle, &[copy]);
            d.cmd_fill_buffer(
                cbs[0],
                buffer.handle,
                dev_half + UPLOAD,
                HALF - UPLOAD,
                fill_value(r),
            );
            cmd::memory_barrier(d, cbs[0], cmd::TRANSFER_WRITE, cmd::HOST_READ);
            cmd::end(d, cbs[0])?;
            cmd::begin(d, cbs[1], vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            if event {
                d.cmd_set_event(cbs[1], *started, vk::PipelineStageFlags::TOP_OF_PIPE);
                let host = vk::MemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::HOST_WRITE)
                    .dst_access_mask(vk::AccessFlags::TRANSFER_READ);
                d.cmd_wait_events(
                    cbs[1],
                    &[*go],
                    vk::PipelineStageFlags::HOST,
                    vk::PipelineStageFlags::TRANSFER,
                    &[host],
                    &[],
                    &[],
                );
            }
            let copy = vk::BufferCopy {
                src_offset: AREA_B,
                dst_offset: dev_half + HALF - UPLOAD,
                size: UPLOAD,
            };
            d.cmd_copy_buffer(cbs[1], buffer.handle, buffer.handle, &[copy]);
            cmd::memory_barrier(d, cbs[1], cmd::TRANSFER_WRITE, cmd::HOST_READ);
            cmd::end(d, cbs[1])?;
        }
        // Step 1: the host writes the other half while the batch may still run.
        let first = [cbs[0]];
        let submit = vk::SubmitInfo::default().command_buffers(&first);
        // SAFETY: a recorded command buffer of this device.
        unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
        // Let the batch get ready (through vkfuse: its mirrored memory prepared) first, as a
        // program streaming uploads would.
        pause();
        let host = pattern(r, 1, HALF);
        buffer.write_bytes(host_half, &host)?;
        ctx.wait_and_reset_fence(&fence)?;
        let fill = fill_value(r).to_le_bytes();
        let check = |got: &[u8], step: u32, tail: Option<&[u8]>| -> Result<()> {
            let dev = &got[dev_half as usize..(dev_half + HALF) as usize];
            let fill_end = (HALF - if tail.is_some() { UPLOAD } else { 0 }) as usize;
            if dev[..UPLOAD as usize] != area_a[..] {
                return Err(
                    Mismatch(format!("round {r} step {step}: area A's copy differs")).into(),
                );
            }
            if dev[UPLOAD as usize..fill_end]
                .chunks_exact(4)
                .any(|w| w != fill.as_slice())
            {
                return Err(Mismatch(format!("round {r} step {step}: the fill differs")).into());
            }
            if tail.is_some_and(|t| dev[fill_end..] != t[..]) {
                return Err(Mismatch(format!(
                    "round {r} step {step}: area B's copy differs (written by the host before it signalled the batch's wait)"
                ))
                .into());
            }
            if got[host_half as usize..(host_half + HALF) as usize] != host[..] {
                return Err(Mismatch(format!(
                    "round {r} step {step}: the half the host wrote while a batch was pending differs"
                ))
                .into());
            }
            Ok(())
        };
        let got = buffer.read_bytes(0, (2 * HALF) as usize)?;
        check(&got, 1, None)?;
        hashes.extend(fnv1a64(&got).to_le_bytes());
        // Step 2: area B is written after the submit, before the signal the batch waits for.
        if event {
            let area_b = pattern(r, 2, UPLOAD);
            let second = [cbs[1]];
            let submit = vk::SubmitInfo::default().command_buffers(&second);
            // SAFETY: a recorded command buffer of this device; `go` is set below.
            unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
            wait_for_event(&ctx, *started)?;
            buffer.write_bytes(AREA_B, &area_b)?;
            // SAFETY: events of this device; the batch waits for `go`.
            unsafe { d.set_event(*go) }.context("vkSetEvent")?;
            ctx.wait_and_reset_fence(&fence)?;
            // SAFETY: events of this device, no longer used by a pending batch.
            unsafe {
                d.reset_event(*started).context("vkResetEvent")?;
                d.reset_event(*go).context("vkResetEvent")?;
            }
            let got = buffer.read_bytes(0, (2 * HALF) as usize)?;
            check(&got, 2, Some(&area_b))?;
            hashes.extend(fnv1a64(&got).to_le_bytes());
            continue;
        }
        let (sems, values, stages) = (
            [*gate],
            [u64::from(r) + 1],
            [vk::PipelineStageFlags::TRANSFER],
        );
        let mut gate_value =
            vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
        let second = [cbs[1]];
        let submit = vk::SubmitInfo::default()
            .wait_semaphores(&sems)
            .wait_dst_stage_mask(&stages)
            .command_buffers(&second)
            .push_next(&mut gate_value);
        // SAFETY: a recorded command buffer of this device; the gate is signalled below.
        unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
        pause();
        let area_b = pattern(r, 2, UPLOAD);
        buffer.write_bytes(AREA_B, &area_b)?;
        // SAFETY: a timeline semaphore of this device, signalled to a higher value.
        unsafe {
            d.signal_semaphore(
                &vk::SemaphoreSignalInfo::default()
                    .semaphore(*gate)
                    .value(u64::from(r) + 1),
            )
        }
        .context("vkSignalSemaphore")?;
        ctx.wait_and_reset_fence(&fence)?;
        let got = buffer.read_bytes(0, (2 * HALF) as usize)?;
        check(&got, 2, Some(&area_b))?;
        hashes.extend(fnv1a64(&got).to_le_bytes());
    }
    hashes.extend(late_map(&ctx, queue, rounds)?.to_le_bytes());
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&hashes),
    })
}

/// Waits (polling, at most 60 s) until the host sees `event` set.
fn wait_for_event(ctx: &Context, event: vk::Event) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        // SAFETY: an event of this device.
        if unsafe { ctx.device.get_event_status(event) }.context("vkGetEventStatus")? {
            return Ok(());
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            return Err(Mismatch("the running batch did not set its event in 60 s".into()).into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A device-local buffer filled by a batch, mapped only afterwards: the first map must show the
/// batch's data. Returns the hash of what was read (0 where the memory is not host-visible).
fn late_map(ctx: &Context, queue: vkfuse_examples::QueueInfo, rounds: u32) -> Result<u64> {
    let d = &ctx.device;
    let buffer = ctx.create_buffer(
        HALF,
        vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::DeviceLocal,
    )?;
    if !buffer
        .memory_flags
        .contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
    {
        return Ok(0);
    }
    let value = fill_value(rounds);
    ctx.one_time_commands(queue, |cb| {
        // SAFETY: a command buffer in the recording state; the buffer outlives the wait.
        unsafe {
            d.cmd_fill_buffer(cb, buffer.handle, 0, HALF, value);
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
        }
        Ok(())
    })?;
    // SAFETY: host-visible memory of this device, not mapped; the batch that wrote it was
    // waited for.
    let ptr = unsafe {
        d.map_memory(
            buffer.memory(),
            0,
            vk::WHOLE_SIZE,
            vk::MemoryMapFlags::empty(),
        )
    }
    .context("vkMapMemory")?;
    if !buffer
        .memory_flags
        .contains(vk::MemoryPropertyFlags::HOST_COHERENT)
    {
        let range = vk::MappedMemoryRange::default()
            .memory(buffer.memory())
            .size(vk::WHOLE_SIZE);
        // SAFETY: the memory is mapped; the whole range.
        unsafe { d.invalidate_mapped_memory_ranges(&[range]) }
            .context("vkInvalidateMappedMemoryRanges")?;
    }
    // SAFETY: the mapping covers the buffer's HALF bytes.
    let got = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), HALF as usize) }.to_vec();
    // SAFETY: mapped above.
    unsafe { d.unmap_memory(buffer.memory()) };
    let fill = value.to_le_bytes();
    if got.chunks_exact(4).any(|w| w != fill.as_slice()) {
        return Err(Mismatch(
            "a device-local buffer mapped after a batch filled it does not hold the fill".into(),
        )
        .into());
    }
    Ok(fnv1a64(&got))
}
