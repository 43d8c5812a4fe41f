//! `multithread`: several threads record command buffers at the same time, each from its own
//! command pool: primaries, and secondaries that a primary runs with `vkCmdExecuteCommands`.
//! The main thread submits them all in a fixed order in one batch.
//!
//! Every recorded unit (primary or secondary) is one dispatch of `shaders/accumulate.comp`, an
//! order-dependent update (`acc = acc * p ^ hash(seed, i)`) behind a compute-to-compute
//! barrier, so the result is deterministic and shows whether all units ran, each exactly once,
//! in submission order. The CPU replays the same sequence and compares.

use std::process::ExitCode;
use std::time::Instant;

use ash::vk;
use vkfuse_examples::cmd;
use vkfuse_examples::workload::fmix32;
use vkfuse_examples::{
    example_main, shaders, u32s_from_bytes, Args, Binding, ComputeKernel, Context,
    ErrorContext as _, Fnv1a64, Mismatch, Owned, Report, Result,
};

const NAME: &str = "multithread";
const USAGE: &str = "\
usage: multithread [--threads T] [--primaries P] [--secondaries S] [--validation]

T threads (default 4) each record, from their own command pool, P primary command buffers
(default 16) and S secondary command buffers (default 64) executed from one more primary with
vkCmdExecuteCommands. Each unit is one order-dependent dispatch over 4096 u32s. All primaries
are submitted in order (thread 0's first); the result is checked against a CPU replay and
  vkfuse-example multithread device=\"<name>\" result=<fnv1a64 of the 4096 u32s>
is printed.

  --threads T       1..=64
  --primaries P     0..=4096 per thread
  --secondaries S   0..=4096 per thread
  --validation      enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                    exit code 3 if it reports errors or warnings";

/// Elements of the accumulator.
const ELEMENTS: u32 = 4096;
/// `local_size_x` of accumulate.comp.
const LOCAL_SIZE: u32 = 64;
/// Initial value of every element (vkCmdFillBuffer).
const INITIAL: u32 = 0x811c_9dc5;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// Push constant seed of unit `k` of thread `t` (primaries are `k < P`, secondaries follow).
fn seed(thread: u32, unit: u32) -> u32 {
    thread
        .wrapping_mul(0x1_0000)
        .wrapping_add(unit)
        .wrapping_add(1)
}

/// The shader on the CPU.
fn apply(acc: &mut [u32], seed: u32) {
    for (i, a) in acc.iter_mut().enumerate() {
        *a = a.wrapping_mul(0x0100_0193)
            ^ fmix32(seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u32));
    }
}

/// What every recording thread uses (read-only, shared).
struct Shared<'c> {
    kernel: ComputeKernel<'c>,
    acc: vk::Buffer,
}

/// Records one unit: barrier after earlier dispatches, then one dispatch with `seed`.
///
/// # Safety
///
/// `cb` must be a command buffer of `d` in the recording state outside a render pass, on a
/// compute-capable family, not used by another thread; `s` must hold live objects of `d`.
unsafe fn record_unit(d: &ash::Device, cb: vk::CommandBuffer, s: &Shared<'_>, seed: u32) {
    let mut push = [0u8; 8];
    push[..4].copy_from_slice(&seed.to_le_bytes());
    push[4..].copy_from_slice(&ELEMENTS.to_le_bytes());
    // SAFETY: forwarded from the caller; the push range matches the layout.
    unsafe {
        cmd::buffer_barrier(d, cb, s.acc, cmd::COMPUTE_WRITE, cmd::COMPUTE_READ_WRITE);
        s.kernel.bind(d, cb);
        s.kernel.push_constants(d, cb, &push);
        d.cmd_dispatch(cb, ELEMENTS.div_ceil(LOCAL_SIZE), 1, 1);
    }
}

/// What one thread recorded: its pool (kept alive until the work is done) and its primaries
/// in submission order (the one executing the secondaries last).
struct Recorded<'c> {
    _pool: Owned<'c, vk::CommandPool>,
    primaries: Vec<vk::CommandBuffer>,
}

/// Body of recording thread `t`.
fn record_thread<'c>(
    ctx: &'c Context,
    s: &Shared<'_>,
    t: u32,
    primaries: u32,
    secondaries: u32,
) -> Result<Recorded<'c>> {
    let d = &ctx.device;
    let pool =
        ctx.create_command_pool(ctx.queue().family, vk::CommandPoolCreateFlags::TRANSIENT)?;
    let prim =
        ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, primaries + 1)?;
    let sec = if secondaries > 0 {
        ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::SECONDARY, secondaries)?
    } else {
        Vec::new()
    };
    let inheritance = vk::CommandBufferInheritanceInfo::default();
    let secondary_begin = vk::CommandBufferBeginInfo::default()
        .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)
        .inheritance_info(&inheritance);
    // SAFETY: the pool and its command buffers are used by this thread only until they are
    // handed back through `join`; secondaries are recorded (executable) before the primary
    // that executes them is recorded (VUID-vkCmdExecuteCommands-pCommandBuffers-00089); they
    // inherit no render pass, so the null inheritance info is complete.
    unsafe {
        for (k, &cb) in sec.iter().enumerate() {
            d.begin_command_buffer(cb, &secondary_begin)
                .context("vkBeginCommandBuffer (secondary)")?;
            record_unit(d, cb, s, seed(t, primaries + k as u32));
            d.end_command_buffer(cb)
                .context("vkEndCommandBuffer (secondary)")?;
        }
        for (k, &cb) in prim.iter().enumerate() {
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            if (k as u32) < primaries {
                record_unit(d, cb, s, seed(t, k as u32));
            } else if !sec.is_empty() {
                d.cmd_execute_commands(cb, &sec);
            }
            cmd::end(d, cb)?;
        }
    }
    Ok(Recorded {
        _pool: pool,
        primaries: prim,
    })
}

fn run(mut args: Args) -> Result<Report> {
    let threads: u32 = args.value("--threads")?.unwrap_or(4);
    let primaries: u32 = args.value("--primaries")?.unwrap_or(16);
    let secondaries: u32 = args.value("--secondaries")?.unwrap_or(64);
    args.finish()?;
    if !(1..=64).contains(&threads) || primaries > 4096 || secondaries > 4096 {
        return Err(
            "--threads must be in 1..=64, --primaries and --secondaries in 0..=4096".into(),
        );
    }

    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let queue = ctx.queue();
    let d = &ctx.device;
    let bytes = u64::from(ELEMENTS) * 4;

    let acc = ctx.create_storage_buffer(bytes)?;
    let readback = ctx.create_readback_buffer(bytes)?;
    let kernel = ctx.create_compute_kernel(
        shaders::ACCUMULATE_COMP,
        8,
        &[Binding::compute_storage(&acc, 0, vk::WHOLE_SIZE)],
    )?;
    let shared = Shared {
        kernel,
        acc: acc.handle,
    };

    // Main thread: initialisation and readback command buffers.
    let main_pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::TRANSIENT)?;
    let main_cbs = ctx.allocate_command_buffers(&main_pool, vk::CommandBufferLevel::PRIMARY, 2)?;
    let (init_cb, final_cb) = (main_cbs[0], main_cbs[1]);

    // Recording threads.
    let started = Instant::now();
    let recorded: Vec<Recorded<'_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (ctx, shared) = (&ctx, &shared);
                // Box<dyn Error> is not Send: errors cross the thread boundary as strings.
                scope.spawn(move || {
                    record_thread(ctx, shared, t, primaries, secondaries).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(result) => result.map_err(|e| e.into()),
                Err(_) => Err("a recording thread panicked".into()),
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let record_time = started.elapsed();

    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    // SAFETY: both command buffers are fresh primaries of `main_pool`, recorded on this thread;
    // the buffers are alive until the fence wait. The init barrier orders the fill before the
    // first unit's dispatch (barriers apply across command buffers in submission order); the
    // final barriers order the last dispatch before the copy and the copy before host reads.
    unsafe {
        cmd::begin(d, init_cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        d.cmd_fill_buffer(init_cb, acc.handle, 0, vk::WHOLE_SIZE, INITIAL);
        cmd::buffer_barrier(
            d,
            init_cb,
            acc.handle,
            cmd::TRANSFER_WRITE,
            cmd::COMPUTE_READ_WRITE,
        );
        cmd::end(d, init_cb)?;

        cmd::begin(d, final_cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        cmd::copy_compute_results_to_host(
            d,
            final_cb,
            acc.handle,
            readback.handle,
            &[cmd::copy_range(0, bytes)],
        );
        cmd::end(d, final_cb)?;
    }

    let mut order = vec![init_cb];
    for r in &recorded {
        order.extend_from_slice(&r.primaries);
    }
    order.push(final_cb);
    // SAFETY: every command buffer is executable (recording finished: the threads joined) and
    // belongs to the queue's family; the fence is unsignaled; everything they use is alive
    // until the fence wait.
    unsafe { ctx.submit(queue.handle, &order, &fence) }?;
    ctx.wait_fence(&fence)?;
    let out = readback.read_bytes(0, bytes as usize)?;

    let mut expected = vec![INITIAL; ELEMENTS as usize];
    for t in 0..threads {
        for k in 0..primaries + secondaries {
            apply(&mut expected, seed(t, k));
        }
    }
    let got = u32s_from_bytes(&out);
    if got.len() != expected.len() {
        return Err(Mismatch(format!(
            "read back {} u32s, expected {}",
            got.len(),
            expected.len()
        ))
        .into());
    }
    if let Some(i) = (0..expected.len()).find(|&i| got[i] != expected[i]) {
        return Err(Mismatch(format!(
            "acc[{i}] = {:#010x}, CPU replay {:#010x}",
            got[i], expected[i]
        ))
        .into());
    }

    let mut hash = Fnv1a64::new();
    hash.update(&out);
    eprintln!(
        "{NAME}: {threads} threads recorded {} primaries and {} secondaries in {:.3} ms; {} command buffers submitted in order; result matches the CPU replay; hash covers acc[0..{ELEMENTS}] (u32 LE), {bytes} bytes",
        threads * (primaries + 1),
        threads * secondaries,
        record_time.as_secs_f64() * 1e3,
        order.len(),
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_matters() {
        let mut a = vec![INITIAL; 8];
        let mut b = a.clone();
        apply(&mut a, 1);
        apply(&mut a, 2);
        apply(&mut b, 2);
        apply(&mut b, 1);
        assert_ne!(a, b);
    }
}
