//! `bench-record`: a recording-bound benchmark. One command buffer gets N cheap commands,
//! alternating `vkCmdPushConstants` and `vkCmdDispatch(1, 1, 1)` of a one-invocation kernel
//! (`shaders/counter.comp`), is submitted and waited for; K timed iterations follow one warm-up.
//!
//! Each dispatch atomically adds its push constant to a counter, which is read back and checked
//! after every iteration, so a run also proves that every recorded command executed.
//!
//! stdout: one line of JSON,
//! `{"name":"bench-record","commands":N,"iterations":K,"record_ns":[..],"submit_wait_ns":[..],"total_ns":[..]}`.

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::cmd;
use vkfuse_examples::{
    example_main, json_array, median, nanos, shaders, u32s_from_bytes, Args, Binding, Context,
    ErrorContext as _, Mismatch, Report, Result,
};

const NAME: &str = "bench-record";
const USAGE: &str = "\
usage: bench-record [--commands N] [--iterations K] [--record-only R] [--validation]

Records one command buffer with N (default 100000) commands alternating vkCmdPushConstants and
vkCmdDispatch(1,1,1), submits it and waits; one warm-up, then K (default 5) timed iterations.
Prints one line of JSON:
  {\"name\":\"bench-record\",\"commands\":N,\"iterations\":K,\"record_ns\":[..],\"submit_wait_ns\":[..],\"total_ns\":[..]}
record_ns: vkBeginCommandBuffer..vkEndCommandBuffer (N commands plus 7 fixed setup/readback
commands); submit_wait_ns: vkQueueSubmit..vkWaitForFences; total_ns: both, as one span.

  --commands N     2..=100000000
  --iterations K   0..=10000 (0: submit nothing, only the --record-only repetitions)
  --record-only R  after the timed iterations, record R more times without submitting; their
                   times go to \"record_only_ns\" (empty without the flag)
  --validation     enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                   exit code 3 if it reports errors or warnings";

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// Push constant of the `j`-th push.
fn value(j: u32) -> u32 {
    j.wrapping_mul(0x9e37_79b1)
}

fn run(mut args: Args) -> Result<Report> {
    let commands: u32 = args.value("--commands")?.unwrap_or(100_000);
    let iterations: u32 = args.value("--iterations")?.unwrap_or(5);
    let record_only: u32 = args.value("--record-only")?.unwrap_or(0);
    args.finish()?;
    if !(2..=100_000_000).contains(&commands) || iterations > 10_000 {
        return Err("--commands must be in 2..=100000000 and --iterations in 0..=10000".into());
    }

    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let queue = ctx.queue();
    let d = &ctx.device;

    let counter = ctx.create_storage_buffer(8)?;
    let readback = ctx.create_readback_buffer(8)?;
    let kernel = ctx.create_compute_kernel(
        shaders::COUNTER_COMP,
        4,
        &[Binding::compute_storage(&counter, 0, 8)],
    )?;

    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::TRANSIENT)?;
    let cb = ctx.allocate_primary(&pool)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();

    let dispatches = commands / 2;
    let expected_sum = (0..dispatches).fold(0u32, |acc, j| acc.wrapping_add(value(j)));
    let pushes: Vec<[u8; 4]> = (0..commands.div_ceil(2))
        .map(|j| value(j).to_le_bytes())
        .collect();

    // Records the benchmark's command buffer (the pool was reset by the caller).
    let record = || -> Result<()> {
        // SAFETY: cb is in the initial state after the pool reset and used by this thread only;
        // all handles are alive until the fence wait. Barriers: fill -> atomics, atomics ->
        // copy, copy -> host read. The dispatches themselves only do atomic adds on the
        // counter, so they need no barriers between one another.
        unsafe {
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            kernel.bind(d, cb);
            d.cmd_fill_buffer(cb, counter.handle, 0, 8, 0);
            cmd::buffer_barrier(
                d,
                cb,
                counter.handle,
                cmd::TRANSFER_WRITE,
                cmd::COMPUTE_READ_WRITE,
            );
            for i in 0..commands {
                if i % 2 == 0 {
                    kernel.push_constants(d, cb, &pushes[(i / 2) as usize]);
                } else {
                    d.cmd_dispatch(cb, 1, 1, 1);
                }
            }
            cmd::copy_compute_results_to_host(
                d,
                cb,
                counter.handle,
                readback.handle,
                &[cmd::copy_range(0, 8)],
            );
            cmd::end(d, cb)?;
        }
        Ok(())
    };

    let (mut record_ns, mut submit_wait_ns, mut total_ns) = (Vec::new(), Vec::new(), Vec::new());
    // With --iterations 0 nothing is submitted (recording-only runs, e.g. under callgrind).
    let submitting = if iterations == 0 { 0 } else { iterations + 1 };
    for iteration in 0..submitting {
        // SAFETY: the pool's only command buffer is not pending (the previous iteration waited
        // on its fence), so the pool may be reset (VUID-vkResetCommandPool-commandPool-00040).
        unsafe { d.reset_command_pool(*pool, vk::CommandPoolResetFlags::empty()) }
            .context("vkResetCommandPool")?;

        let start = Instant::now();
        record()?;
        let recorded = Instant::now();
        // SAFETY: cb is executable, of the queue's family; the fence is unsignaled (created so,
        // and reset after every wait); what cb uses is alive until the wait.
        unsafe { ctx.submit(queue.handle, &[cb], &fence) }?;
        ctx.wait_fence(&fence)?;
        let done = Instant::now();
        // SAFETY: the fence is signaled and no longer used by any queue operation.
        unsafe { d.reset_fences(&[*fence]) }.context("vkResetFences")?;

        let got = u32s_from_bytes(&readback.read_bytes(0, 8)?);
        if got != [expected_sum, dispatches] {
            return Err(Mismatch(format!(
                "iteration {iteration}: counter (sum, dispatches) = {got:?}, expected [{expected_sum}, {dispatches}]"
            ))
            .into());
        }
        if iteration > 0 {
            record_ns.push(nanos(recorded - start));
            submit_wait_ns.push(nanos(done - recorded));
            total_ns.push(nanos(done - start));
        }
    }

    // Recording alone, without submitting: many more recording samples per second, for a
    // forwarding-overhead ratio that execution time does not drown.
    let mut record_only_ns = Vec::new();
    for _ in 0..record_only {
        // SAFETY: nothing is pending on the pool (the last submit was waited for, and
        // record-only command buffers are never submitted).
        unsafe { d.reset_command_pool(*pool, vk::CommandPoolResetFlags::empty()) }
            .context("vkResetCommandPool")?;
        let start = Instant::now();
        record()?;
        record_only_ns.push(nanos(start.elapsed()));
    }

    eprintln!(
        "{NAME}: {commands} commands ({} pushes, {dispatches} dispatches), {iterations} iterations after 1 warm-up; median record {:.3} ms ({:.1} ns/command), submit+wait {:.3} ms, total {:.3} ms; counter checked every iteration",
        commands.div_ceil(2),
        median(&record_ns) as f64 / 1e6,
        median(&record_ns) as f64 / f64::from(commands),
        median(&submit_wait_ns) as f64 / 1e6,
        median(&total_ns) as f64 / 1e6,
    );
    Ok(Report::Json(format!(
        "{{\"name\":\"{NAME}\",\"commands\":{commands},\"iterations\":{iterations},\"record_ns\":{},\"submit_wait_ns\":{},\"total_ns\":{},\"record_only_ns\":{}}}",
        json_array(&record_ns),
        json_array(&submit_wait_ns),
        json_array(&total_ns),
        json_array(&record_only_ns),
    )))
}
