//! `multiqueue`: the `compute` workload split into chunks that flow through several queues.
//!
//! The device is created with every queue family that supports compute or transfer (up to four
//! queues each). Per chunk: an upload on the transfer queue, the compute passes on one of the
//! compute queues (chunks are dealt round-robin), and a readback on the transfer queue again,
//! linked by binary semaphores. Where the transfer and compute families differ, the chunk's
//! buffer ranges are handed over with queue family ownership transfers (release + acquire).
//!
//! The data and results are the same as `compute --elements N` (same shader, same CPU
//! reference), whatever the queue topology, so `result=` equals `compute`'s for the same N.

use std::collections::BTreeMap;
use std::process::ExitCode;

use ash::vk;
use ash::vk::PipelineStageFlags as Stage;
use vkfuse_examples::cmd;
use vkfuse_examples::workload::{self, ComputePipeline, DataLayout, Params};
use vkfuse_examples::{
    example_main, Args, Context, ContextDesc, ErrorContext as _, Owned, QueueInfo, QueuePlan,
    Report, Result,
};

const NAME: &str = "multiqueue";
const USAGE: &str = "\
usage: multiqueue [--elements N] [--chunks C] [--validation]

Runs the `compute` workload over N elements (default 300000) in C chunks (default 8): upload
on a transfer-capable queue, compute on the compute queues (round-robin), readback on the
transfer queue, with semaphores between them and queue family ownership transfers where the
families differ. Checks against the CPU reference and prints
  vkfuse-example multiqueue device=\"<name>\" result=<fnv1a64 of ints then floats>
(equal to `compute --elements N`).

  --elements N   number of elements (1..=16777216)
  --chunks C     number of chunks (1..=64); does not change the result
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

/// Queues created per family at most.
const MAX_QUEUES_PER_FAMILY: u32 = 4;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// The transfer queue (upload and readback) and the compute queues.
fn choose_queues(queues: &[QueueInfo]) -> Result<(QueueInfo, Vec<QueueInfo>)> {
    let compute: Vec<QueueInfo> = queues
        .iter()
        .copied()
        .filter(|q| q.flags.contains(vk::QueueFlags::COMPUTE))
        .collect();
    let first_compute = *compute.first().ok_or("no queue family supports compute")?;
    let same = |a: &QueueInfo, b: &QueueInfo| a.family == b.family && a.index == b.index;
    // A dedicated transfer family first, then any queue of another family, then a second queue
    // of the compute family, then the only queue.
    let transfer = queues
        .iter()
        .copied()
        .find(|q| {
            !q.flags
                .intersects(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE)
        })
        .or_else(|| {
            queues
                .iter()
                .copied()
                .find(|q| q.family != first_compute.family)
        })
        .or_else(|| compute.iter().copied().skip(1).last())
        .unwrap_or(first_compute);
    let mut workers: Vec<QueueInfo> = compute
        .iter()
        .copied()
        .filter(|q| !same(q, &transfer))
        .collect();
    if workers.is_empty() {
        workers.push(transfer);
    }
    Ok((transfer, workers))
}

fn run(mut args: Args) -> Result<Report> {
    let n: u32 = args.value("--elements")?.unwrap_or(300_000);
    let chunks: u32 = args.value("--chunks")?.unwrap_or(8);
    args.finish()?;
    workload::check_elements(n)?;
    if chunks == 0 || chunks > 64 || chunks > n {
        return Err(
            format!("--chunks must be in 1..=64 and at most --elements, got {chunks}").into(),
        );
    }

    let ctx = Context::new(&ContextDesc {
        name: NAME,
        validation: args.validation,
        queues: QueuePlan::AllComputeOrTransfer {
            max_per_family: MAX_QUEUES_PER_FAMILY,
        },
        timeline: false,
    })?;
    let d = &ctx.device;
    let (transfer, workers) = choose_queues(&ctx.queues)?;
    let describe = |q: &QueueInfo| format!("f{}q{}", q.family, q.index);
    eprintln!(
        "{NAME}: queues created: {}; transfer queue {}; compute queues [{}]; ownership transfers: {}",
        ctx.queues
            .iter()
            .map(|q| format!("{} {:?}", describe(q), q.flags))
            .collect::<Vec<_>>()
            .join(", "),
        describe(&transfer),
        workers.iter().map(describe).collect::<Vec<_>>().join(", "),
        if workers.iter().any(|w| w.family != transfer.family) {
            "yes"
        } else {
            "none (one family)"
        },
    );

    let params = Params::default();
    let layout = DataLayout::new(&ctx, n);
    let worker_families: Vec<u32> = workers.iter().map(|q| q.family).collect();

    // Read by every compute family and written only by the host: concurrent sharing.
    let params_buffer = workload::create_params_buffer(&ctx, &params, &worker_families)?;
    // Exclusive: chunks change hands with ownership transfers.
    let storage = ctx.create_storage_buffer(layout.total)?;
    let upload = ctx.create_upload_buffer(layout.total)?;
    let readback = ctx.create_readback_buffer(layout.total)?;
    let initial = workload::write_initial_data(&upload, &layout)?;

    let pipeline = ComputePipeline::new(&ctx, &params_buffer, &storage, &layout)?;

    // One pool per family in use.
    let mut pools: BTreeMap<u32, Owned<'_, vk::CommandPool>> = BTreeMap::new();
    for family in std::iter::once(transfer.family).chain(worker_families.iter().copied()) {
        if let std::collections::btree_map::Entry::Vacant(slot) = pools.entry(family) {
            slot.insert(ctx.create_command_pool(family, vk::CommandPoolCreateFlags::empty())?);
        }
    }
    let pool_of = |family: u32| {
        pools
            .get(&family)
            .ok_or("internal error: no pool for family")
    };

    struct Chunk {
        start: u32,
        len: u32,
        worker: QueueInfo,
        upload_cb: vk::CommandBuffer,
        compute_cb: vk::CommandBuffer,
        readback_cb: vk::CommandBuffer,
    }
    let mut plan = Vec::new();
    for c in 0..chunks {
        let start = (u64::from(c) * u64::from(n) / u64::from(chunks)) as u32;
        let end = (u64::from(c + 1) * u64::from(n) / u64::from(chunks)) as u32;
        let worker = workers[c as usize % workers.len()];
        let transfer_cbs = ctx.allocate_command_buffers(
            pool_of(transfer.family)?,
            vk::CommandBufferLevel::PRIMARY,
            2,
        )?;
        let compute_cb = ctx.allocate_command_buffers(
            pool_of(worker.family)?,
            vk::CommandBufferLevel::PRIMARY,
            1,
        )?[0];
        plan.push(Chunk {
            start,
            len: end - start,
            worker,
            upload_cb: transfer_cbs[0],
            compute_cb,
            readback_cb: transfer_cbs[1],
        });
    }
    let uploaded: Vec<Owned<'_, vk::Semaphore>> = (0..chunks)
        .map(|_| ctx.create_semaphore())
        .collect::<Result<_>>()?;
    let computed: Vec<Owned<'_, vk::Semaphore>> = (0..chunks)
        .map(|_| ctx.create_semaphore())
        .collect::<Result<_>>()?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();

    for chunk in &plan {
        let ranges = layout.ranges(chunk.start, chunk.len);
        let regions = ranges.map(|(offset, size)| cmd::copy_range(offset, size));
        let handover = chunk.worker.family != transfer.family;
        let ownership = |access, families| {
            ranges.map(|r| cmd::buffer_range_barrier(storage.handle, r, access, families))
        };
        let (tf, wf) = (transfer.family, chunk.worker.family);
        let none = vk::AccessFlags::empty();
        // SAFETY: each command buffer is fresh, from the pool of the family it is submitted to,
        // and recorded on this thread only; all handles outlive the fence wait below.
        // Synchronisation per chunk: upload --(semaphore `uploaded`)--> compute --(semaphore
        // `computed`)--> readback. Semaphores carry the memory dependency; where the families
        // differ, release barriers (dst stage BOTTOM_OF_PIPE, no dst access) precede the signal
        // and acquire barriers (src stage = the wait stage, no src access) follow the wait.
        unsafe {
            let cb = chunk.upload_cb;
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            d.cmd_copy_buffer(cb, upload.handle, storage.handle, &regions);
            if handover {
                cmd::pipeline_barrier(
                    d,
                    cb,
                    (Stage::TRANSFER, Stage::BOTTOM_OF_PIPE),
                    &ownership((vk::AccessFlags::TRANSFER_WRITE, none), (tf, wf)),
                    &[],
                );
            }
            cmd::end(d, cb)?;

            let cb = chunk.compute_cb;
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            if handover {
                cmd::pipeline_barrier(
                    d,
                    cb,
                    (Stage::COMPUTE_SHADER, Stage::COMPUTE_SHADER),
                    &ownership((none, cmd::COMPUTE_READ_WRITE.1), (tf, wf)),
                    &[],
                );
            }
            pipeline.record_passes(d, cb, storage.handle, chunk.start, chunk.len);
            if handover {
                cmd::pipeline_barrier(
                    d,
                    cb,
                    (Stage::COMPUTE_SHADER, Stage::BOTTOM_OF_PIPE),
                    &ownership((vk::AccessFlags::SHADER_WRITE, none), (wf, tf)),
                    &[],
                );
            }
            cmd::end(d, cb)?;

            let cb = chunk.readback_cb;
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            if handover {
                cmd::pipeline_barrier(
                    d,
                    cb,
                    (Stage::TRANSFER, Stage::TRANSFER),
                    &ownership((none, vk::AccessFlags::TRANSFER_READ), (wf, tf)),
                    &[],
                );
            }
            d.cmd_copy_buffer(cb, storage.handle, readback.handle, &regions);
            let to_host = ranges.map(|r| {
                cmd::buffer_range_barrier(
                    readback.handle,
                    r,
                    (vk::AccessFlags::TRANSFER_WRITE, vk::AccessFlags::HOST_READ),
                    (vk::QUEUE_FAMILY_IGNORED, vk::QUEUE_FAMILY_IGNORED),
                )
            });
            cmd::pipeline_barrier(d, cb, (Stage::TRANSFER, Stage::HOST), &to_host, &[]);
            cmd::end(d, cb)?;
        }
    }

    // Submission order makes every semaphore signal precede its wait
    // (VUID-vkQueueSubmit-pWaitSemaphores-03238): all uploads, then the compute queues, then
    // the readbacks.
    let cbs: Vec<[vk::CommandBuffer; 3]> = plan
        .iter()
        .map(|c| [c.upload_cb, c.compute_cb, c.readback_cb])
        .collect();
    let uploaded_h: Vec<[vk::Semaphore; 1]> = uploaded.iter().map(|s| [s.handle()]).collect();
    let computed_h: Vec<vk::Semaphore> = computed.iter().map(|s| s.handle()).collect();
    let compute_wait_stage = [vk::PipelineStageFlags::COMPUTE_SHADER];
    let upload_submits: Vec<vk::SubmitInfo<'_>> = (0..plan.len())
        .map(|c| {
            vk::SubmitInfo::default()
                .command_buffers(&cbs[c][0..1])
                .signal_semaphores(&uploaded_h[c])
        })
        .collect();
    // SAFETY: the command buffers are executable and belong to the transfer family; the
    // semaphores are unsignaled with no pending operations.
    unsafe { d.queue_submit(transfer.handle, &upload_submits, vk::Fence::null()) }
        .context("vkQueueSubmit (upload)")?;
    for worker in &workers {
        let submits: Vec<vk::SubmitInfo<'_>> = plan
            .iter()
            .enumerate()
            .filter(|(_, chunk)| {
                chunk.worker.family == worker.family && chunk.worker.index == worker.index
            })
            .map(|(c, _)| {
                vk::SubmitInfo::default()
                    .wait_semaphores(&uploaded_h[c])
                    .wait_dst_stage_mask(&compute_wait_stage)
                    .command_buffers(&cbs[c][1..2])
                    .signal_semaphores(std::slice::from_ref(&computed_h[c]))
            })
            .collect();
        // SAFETY: as above, for this worker's family; every waited semaphore has its signal
        // submitted already.
        unsafe { d.queue_submit(worker.handle, &submits, vk::Fence::null()) }
            .context("vkQueueSubmit (compute)")?;
    }
    let readback_cbs: Vec<vk::CommandBuffer> = cbs.iter().map(|c| c[2]).collect();
    let readback_wait_stages = vec![vk::PipelineStageFlags::TRANSFER; computed_h.len()];
    let readback_submit = vk::SubmitInfo::default()
        .wait_semaphores(&computed_h)
        .wait_dst_stage_mask(&readback_wait_stages)
        .command_buffers(&readback_cbs);
    // SAFETY: as above; the fence is unsignaled and signals once every readback (and so every
    // chunk's whole chain) has completed.
    unsafe { d.queue_submit(transfer.handle, &[readback_submit], *fence) }
        .context("vkQueueSubmit (readback)")?;
    ctx.wait_fence(&fence)?;

    let hash = workload::check_results(&params, initial, &readback, &layout)?;
    eprintln!(
        "{NAME}: {chunks} chunks over {} compute queue(s), results match the CPU reference; hash covers ints[0..{n}] (u32 LE) then floats[0..{n}] (f32 LE), {} bytes",
        workers.len(),
        2 * layout.bytes
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(family: u32, index: u32, flags: vk::QueueFlags) -> QueueInfo {
        QueueInfo {
            family,
            index,
            flags,
            handle: vk::Queue::null(),
        }
    }

    const GCT: vk::QueueFlags = vk::QueueFlags::from_raw(0b111);

    #[test]
    fn single_queue_does_everything() {
        let Ok((t, w)) = choose_queues(&[q(0, 0, GCT)]) else {
            panic!("no choice")
        };
        assert_eq!((t.family, t.index), (0, 0));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn dedicated_transfer_family_is_preferred() {
        let qs = [
            q(0, 0, GCT),
            q(0, 1, GCT),
            q(1, 0, vk::QueueFlags::TRANSFER),
            q(2, 0, vk::QueueFlags::COMPUTE),
        ];
        let Ok((t, w)) = choose_queues(&qs) else {
            panic!("no choice")
        };
        assert_eq!(t.family, 1);
        assert_eq!(
            w.iter().map(|q| (q.family, q.index)).collect::<Vec<_>>(),
            vec![(0, 0), (0, 1), (2, 0)]
        );
    }

    #[test]
    fn second_queue_of_one_family() {
        let qs = [q(0, 0, GCT), q(0, 1, GCT), q(0, 2, GCT)];
        let Ok((t, w)) = choose_queues(&qs) else {
            panic!("no choice")
        };
        assert_eq!((t.family, t.index), (0, 2));
        assert_eq!(w.len(), 2);
    }
}
