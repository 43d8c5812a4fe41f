//! `compute`: the integer + float workload of `shaders/compute.comp` over a storage buffer,
//! with a uniform buffer and push constants, verified against the CPU and hashed.
//!
//! When the device-local memory type chosen for the storage buffer is not host-visible (or with
//! `--force-staging`), data goes through host-visible upload/readback buffers and
//! `vkCmdCopyBuffer`; otherwise the storage buffer is mapped directly.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::cmd;
use vkfuse_examples::workload::{self, ComputePipeline, DataLayout, Params};
use vkfuse_examples::{example_main, Args, Context, MemoryUse, Report, Result};

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
    workload::check_elements(n)?;

    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let queue = ctx.queue();
    let params = Params::default();
    let layout = DataLayout::new(&ctx, n);
    let (bytes, total) = (layout.bytes, layout.total);

    let params_buffer = workload::create_params_buffer(&ctx, &params, &[])?;
    let storage = ctx.create_storage_buffer(total)?;
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

    let input = staging.as_ref().map_or(&storage, |(upload, _)| upload);
    let initial = workload::write_initial_data(input, &layout)?;

    let pipeline = ComputePipeline::new(&ctx, &params_buffer, &storage, &layout)?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cb = ctx.allocate_primary(&pool)?;
    let fence = ctx.create_fence(false)?;
    // Dropped first: an early return after the submit waits before anything is destroyed.
    let _idle = ctx.idle_guard();

    let regions = layout
        .ranges(0, n)
        .map(|(offset, size)| cmd::copy_range(offset, size));
    let d = &ctx.device;
    // SAFETY: cb was allocated from `pool` (family of `queue`) and is in the initial state; every
    // handle recorded belongs to this device and outlives the submission (waited on below).
    // Barriers: host writes are visible to the device through vkQueueSubmit; transfer writes
    // -> shader access, shader writes -> transfer read / host read, transfer writes -> host read.
    unsafe {
        cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        if let Some((upload, _)) = &staging {
            d.cmd_copy_buffer(cb, upload.handle, storage.handle, &regions);
            cmd::buffer_barrier(
                d,
                cb,
                storage.handle,
                cmd::TRANSFER_WRITE,
                cmd::COMPUTE_READ_WRITE,
            );
        }
        pipeline.record_passes(d, cb, storage.handle, 0, n);
        if let Some((_, readback)) = &staging {
            cmd::copy_compute_results_to_host(d, cb, storage.handle, readback.handle, &regions);
        } else {
            cmd::buffer_barrier(d, cb, storage.handle, cmd::COMPUTE_WRITE, cmd::HOST_READ);
        }
        cmd::end(d, cb)?;
        ctx.submit(queue.handle, &[cb], &fence)?;
    }
    ctx.wait_fence(&fence)?;

    let output = staging.as_ref().map_or(&storage, |(_, readback)| readback);
    let hash = workload::check_results(&params, initial, output, &layout)?;
    eprintln!(
        "{NAME}: results match the CPU reference; hash covers ints[0..{n}] (u32 LE) then floats[0..{n}] (f32 LE), {} bytes",
        2 * bytes
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash,
    })
}
