//! `compute`: the integer + float workload of `shaders/compute.comp` over a storage buffer,
//! with a uniform buffer and push constants, verified against the CPU and hashed.
//!
//! When the device-local memory type chosen for the storage buffer is not host-visible (or with
//! `--force-staging`), data goes through host-visible upload/readback buffers and
//! `vkCmdCopyBuffer`; otherwise the storage buffer is mapped directly.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::cmd::{self, buffer_barrier};
use vkfuse_examples::workload::{self, ComputePipeline, Params};
use vkfuse_examples::{
    align_up, example_main, f32_bytes, f32s_from_bytes, u32_bytes, u32s_from_bytes, Args, Context,
    ContextDesc, ErrorContext as _, Fnv1a64, MemoryUse, QueuePlan, Report, Result,
};

const NAME: &str = "compute";
const USAGE: &str = "\
usage: compute [--elements N] [--force-staging] [--validation]

Runs shaders/compute.comp (2 passes) over N elements (default 300000) of u32 and f32 data,
checks the results against a CPU reference and prints
  vkfuse-example compute device=\"<name>\" result=<fnv1a64 of ints then floats>

  --elements N      number of elements (1..=16777216)
  --force-staging   go through upload/readback buffers and vkCmdCopyBuffer even when the
                    device-local memory type is host-visible
  --validation      enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                    exit code 3 if it reports errors or warnings";

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let n: u32 = args.value("--elements")?.unwrap_or(300_000);
    let force_staging = args.flag("--force-staging");
    args.finish()?;
    if n == 0 || n > 1 << 24 {
        return Err(format!("--elements must be in 1..=16777216, got {n}").into());
    }

    let ctx = Context::new(&ContextDesc {
        name: NAME,
        validation: args.validation,
        queues: QueuePlan::One(vk::QueueFlags::COMPUTE),
    })?;
    let queue = ctx.queue();
    let params = Params::default();
    let bytes = u64::from(n) * 4;
    let alignment = ctx.properties.limits.min_storage_buffer_offset_alignment;
    let floats_offset = align_up(bytes, alignment);
    let total = floats_offset + bytes;

    let params_buffer = ctx.create_buffer(
        Params::SIZE,
        vk::BufferUsageFlags::UNIFORM_BUFFER,
        MemoryUse::Upload,
    )?;
    params_buffer.write_bytes(0, &params.to_bytes())?;
    let storage = ctx.create_buffer(
        total,
        vk::BufferUsageFlags::STORAGE_BUFFER
            | vk::BufferUsageFlags::TRANSFER_SRC
            | vk::BufferUsageFlags::TRANSFER_DST,
        MemoryUse::DeviceLocal,
    )?;
    let staging = if force_staging || !storage.is_mapped() {
        let usage = vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST;
        Some((
            ctx.create_buffer(total, usage, MemoryUse::Upload)?,
            ctx.create_buffer(total, usage, MemoryUse::Readback)?,
        ))
    } else {
        None
    };
    eprintln!(
        "{NAME}: {n} elements, storage buffer in memory type {} ({:?}), {}",
        storage.memory_type,
        storage.memory_flags,
        if staging.is_some() {
            "through upload/readback buffers and vkCmdCopyBuffer"
        } else {
            "mapped directly"
        }
    );

    let ints = workload::initial_ints(n as usize);
    let floats = workload::initial_floats(n as usize);
    let input = staging.as_ref().map_or(&storage, |(upload, _)| upload);
    input.write_bytes(0, &u32_bytes(&ints))?;
    input.write_bytes(floats_offset, &f32_bytes(&floats))?;

    let pipeline = ComputePipeline::new(
        &ctx,
        params_buffer.handle,
        storage.handle,
        u64::from(n),
        floats_offset,
    )?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cb = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let fence = ctx.create_fence(false)?;
    // Dropped first: an early return after the submit waits before anything is destroyed.
    let _idle = ctx.idle_guard();

    let regions = [
        vk::BufferCopy {
            src_offset: 0,
            dst_offset: 0,
            size: bytes,
        },
        vk::BufferCopy {
            src_offset: floats_offset,
            dst_offset: floats_offset,
            size: bytes,
        },
    ];
    let d = &ctx.device;
    // SAFETY: cb was allocated from `pool` (family of `queue`) and is in the initial state; every
    // handle recorded belongs to this device and outlives the submission (waited on below).
    // Barriers: host writes are visible to the device through vkQueueSubmit; transfer writes
    // -> shader access, shader writes -> transfer read / host read, transfer writes -> host read.
    unsafe {
        cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        if let Some((upload, _)) = &staging {
            d.cmd_copy_buffer(cb, upload.handle, storage.handle, &regions);
            buffer_barrier(
                d,
                cb,
                storage.handle,
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                ),
                (
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE,
                ),
            );
        }
        pipeline.record_passes(&ctx, cb, storage.handle, 0, n);
        if let Some((_, readback)) = &staging {
            buffer_barrier(
                d,
                cb,
                storage.handle,
                (
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::AccessFlags::SHADER_WRITE,
                ),
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_READ,
                ),
            );
            d.cmd_copy_buffer(cb, storage.handle, readback.handle, &regions);
            buffer_barrier(
                d,
                cb,
                readback.handle,
                (
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                ),
                (vk::PipelineStageFlags::HOST, vk::AccessFlags::HOST_READ),
            );
        } else {
            buffer_barrier(
                d,
                cb,
                storage.handle,
                (
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::AccessFlags::SHADER_WRITE,
                ),
                (vk::PipelineStageFlags::HOST, vk::AccessFlags::HOST_READ),
            );
        }
        d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        let cbs = [cb];
        d.queue_submit(
            queue.handle,
            &[vk::SubmitInfo::default().command_buffers(&cbs)],
            *fence,
        )
        .context("vkQueueSubmit")?;
    }
    ctx.wait_fence(&fence)?;

    let output = staging.as_ref().map_or(&storage, |(_, readback)| readback);
    let out_ints_bytes = output.read_bytes(0, bytes as usize)?;
    let out_floats_bytes = output.read_bytes(floats_offset, bytes as usize)?;

    let mut expected_ints = ints;
    let mut expected_floats = floats;
    workload::reference(&params, &mut expected_ints, &mut expected_floats);
    workload::verify(
        &expected_ints,
        &expected_floats,
        &u32s_from_bytes(&out_ints_bytes),
        &f32s_from_bytes(&out_floats_bytes),
    )?;

    let mut hash = Fnv1a64::new();
    hash.update(&out_ints_bytes);
    hash.update(&out_floats_bytes);
    eprintln!(
        "{NAME}: results match the CPU reference; hash covers ints[0..{n}] (u32 LE) then floats[0..{n}] (f32 LE), {} bytes",
        2 * bytes
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}
