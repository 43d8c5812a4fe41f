//! `kernels`: compute kernels whose dispatches vkfuse's `compute_split` cuts into slices.
//!
//! Each kernel records one command buffer of binds, push constants, dispatches and barriers
//! only (inputs written and outputs read through mapped memory), submits it `--repeat` times
//! with a fence and checks the output against a CPU model:
//!
//! - `saxpy`: `y = a * x + y` over N floats (exact: small integers); `--steps S` records S
//!   such dispatches with barriers between them, each reading the element the previous one
//!   wrote for the same invocation; `--batches B` submits the command buffer B times in one
//!   `vkQueueSubmit`, each batch waiting for a binary semaphore the one before signals;
//!   `--indirect host|update|gpu` dispatches with `vkCmdDispatchIndirect`, its group counts
//!   written by the host before recording, by `vkCmdUpdateBuffer` in the command buffer, or
//!   by a dispatch before them in the command buffer (`groups.comp`);
//!   `--host-signal`: x holds zeros when each submit is made, and the host writes it and then
//!   signals the timeline value the submit waits for; `--checked`: each invocation also
//!   checks that its workgroup lies inside the grid (`gl_NumWorkGroups.x`, which a slice
//!   launching only its own workgroups would see changed);
//!
//! - `mandelbrot`: escape counts of a 2D grid (one dispatch of 16x16 groups), in fixed point
//!   so that every driver gives the same counts; checked against the same arithmetic on the
//!   CPU;
//! - `matmul`: a tiled integer matrix multiply through shared memory;
//! - `histogram`: 256 bins with `atomicAdd` (the bins merge as sums of the members' deltas);
//! - `compact`: stream compaction, slots handed out by `atomicAdd` on a counter (a dispatch
//!   that must not be split: slices would hand out the same slots); the output's order
//!   depends on scheduling, so it is checked and hashed sorted;
//! - `filter`: a 3x3 box filter from one R32_UINT storage image into another (uploaded and
//!   read back by command buffers of their own); `--sampled` reads the source as a sampled
//!   image in `SHADER_READ_ONLY_OPTIMAL`; `--in-batch` moves the output's layout changes and
//!   its copy into the readback buffer into the filter's command buffer; `--blit` (with it)
//!   blits the output mirrored into a third image, which is read back instead;
//! - `chain`: S dependent dispatches, each reading its neighbour's element of the previous
//!   one's output (which another slice wrote);
//! - `mix`: a random sequence (`--seed`) of `--steps` dispatches over two buffers, each on a
//!   random part of them at random offsets: element-wise steps (`d[i] = d[i] * 3 + s[i] +
//!   step`, each invocation its own elements) and neighbour steps (`chain`'s), a barrier
//!   between each two. Steps cut alike may share a split round, others may not.
//!
//! `--secondary` records the kernel's commands into a secondary command buffer, which the
//! submitted primary executes.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::{
    cmd, example_main, f32_bytes, f32s_from_bytes, fnv1a64, nanos, u32_bytes, u32s_from_bytes,
    Args, Binding, Buffer, Context, ErrorContext as _, MemoryUse, Mismatch, Report, Result,
};

const NAME: &str = "kernels";
const USAGE: &str = "\
usage: kernels --kernel saxpy|mandelbrot|matmul|histogram|compact|filter|chain|mix [--size N]
               [--repeat R] [--steps S] [--batches B] [--indirect host|update|gpu] [--clear]
               [--seed K] [--host-signal] [--sampled] [--in-batch] [--blit]
               [--secondary] [--checked]
               [--json] [--validation]

Runs one compute kernel: one command buffer of dispatches, submitted R times (default 1) with
a fence; checks the output against a CPU model and prints
  vkfuse-example kernels device=\"<name>\" result=<fnv1a64 of the output>
and the time per submit on stderr.

  --size N      saxpy: elements (default 1048576); mandelbrot: width = height (512);
                matmul: n, a multiple of 16 (256); histogram, compact: words (1048576);
                filter: width = height (512);
                chain: elements (65536, 8 steps); mix: elements per buffer (16384)
  --repeat R    submits of the command buffer (1..=1000; saxpy accumulates)
  --steps S     saxpy: dispatches in the command buffer, a barrier between each two
                (1..=64, default 1); each reads the elements the previous one wrote;
                mix: steps (default 24)
  --seed K      mix: the sequence's seed (default 1)
  --host-signal saxpy: each submit waits for a timeline semaphore value that the host
                signals after the submit, once it has written x (zeros until then)
  --checked     saxpy: each invocation also checks that its workgroup id is below
                gl_NumWorkGroups.x (always true), so the shader reads the group count
  --sampled     filter: the source is a sampled image (texelFetch) in
                SHADER_READ_ONLY_OPTIMAL
  --in-batch    filter: the command buffer of the dispatch also moves the output from
                UNDEFINED to GENERAL before it, and to TRANSFER_SRC_OPTIMAL after it, and
                copies it into the readback buffer
  --batches B   saxpy: batches of the command buffer in each vkQueueSubmit (1..=16, default
                1), batch i + 1 waiting for a binary semaphore batch i signals
  --indirect W  saxpy, mandelbrot: vkCmdDispatchIndirect, the group counts written by the
                host (host), by vkCmdUpdateBuffer before the dispatches (update), or by a
                dispatch before them (gpu)
  --blit        filter (with --in-batch): the output is blitted mirrored left to right
                (vkCmdBlitImage) into a third image, which is copied into the readback
                buffer instead
  --secondary   the kernel's commands go into a secondary command buffer, which the
                submitted primary executes (vkCmdExecuteCommands)
  --clear       histogram: the command buffer clears the bins (vkCmdFillBuffer) before its
                dispatch, so they count one submit; filter (with --in-batch): the command
                buffer clears the source to 500 (vkCmdClearColorImage) before the dispatch
  --json        print instead one JSON line: the kernel, each submit's wall time
                (\"submit_ns\"), the process's CPU time over the submits (\"cpu_ns\", every
                thread: CLOCK_PROCESS_CPUTIME_ID) and the result hash
  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const CHAIN_STEPS: u32 = 8;
const MANDELBROT_LIMIT: u32 = 256;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// CPU time of the whole process (every thread, the driver's included) so far, in
/// nanoseconds: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`; 0 where it fails.
fn cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    /// `CLOCK_PROCESS_CPUTIME_ID` (Linux).
    const PROCESS_CPUTIME: i32 = 2;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the C library's clock_gettime with a valid clock id and a timespec to fill
    // (two 64-bit fields on 64-bit Linux).
    if unsafe { clock_gettime(PROCESS_CPUTIME, &mut t) } != 0 {
        return 0;
    }
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// A pseudo-random word.
fn mix(i: u32, seed: u32) -> u32 {
    vkfuse_examples::workload::fmix32(i.wrapping_mul(0x9e37_79b9) ^ seed)
}

fn host_buffer<'d>(ctx: &'d Context, bytes: &[u8]) -> Result<Buffer<'d>> {
    let b = ctx.create_buffer(
        bytes.len() as u64,
        vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_SRC,
        MemoryUse::Readback,
    )?;
    b.write_bytes(0, bytes)?;
    Ok(b)
}

/// All of `b` as a compute storage buffer.
fn whole<'a>(b: &'a Buffer<'_>) -> Binding<'a> {
    Binding::compute_storage(b, 0, vk::WHOLE_SIZE)
}

/// `--indirect W`: the buffer a kernel's group counts come from (written by the host at once,
/// or zero until the command buffer writes them) and, for `gpu`, the kernel that writes them
/// (`groups.comp`).
struct Indirect<'d> {
    mode: String,
    groups: [u32; 3],
    /// `groups.comp`'s push constants: n, per group, rows of groups.
    push: [u32; 3],
    buffer: Buffer<'d>,
    kernel: Option<vkfuse_examples::ComputeKernel<'d>>,
}

impl<'d> Indirect<'d> {
    fn new(ctx: &'d Context, mode: &str, groups: [u32; 3], push: [u32; 3]) -> Result<Self> {
        let buffer = ctx.create_buffer(
            12,
            vk::BufferUsageFlags::INDIRECT_BUFFER
                | vk::BufferUsageFlags::TRANSFER_DST
                | vk::BufferUsageFlags::STORAGE_BUFFER,
            MemoryUse::Readback,
        )?;
        let init = if mode == "host" { groups } else { [0; 3] };
        buffer.write_bytes(0, &u32_bytes(&init))?;
        let kernel = if mode == "gpu" {
            Some(ctx.create_compute_kernel(
                vkfuse_examples::shaders::GROUPS_COMP,
                12,
                &[whole(&buffer)],
            )?)
        } else {
            None
        };
        Ok(Indirect {
            mode: mode.to_string(),
            groups,
            push,
            buffer,
            kernel,
        })
    }

    /// Records what writes the counts (`update`, `gpu`) and the barrier before the indirect
    /// reads.
    ///
    /// # Safety
    /// `cb` is recording on `d`.
    unsafe fn record_counts(&self, d: &ash::Device, cb: vk::CommandBuffer) {
        let indirect_read = (
            vk::PipelineStageFlags::DRAW_INDIRECT,
            vk::AccessFlags::INDIRECT_COMMAND_READ,
        );
        // SAFETY: caller contract; the buffer and kernel live as long as `self`.
        unsafe {
            if self.mode == "update" {
                d.cmd_update_buffer(cb, self.buffer.handle, 0, &u32_bytes(&self.groups));
                cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, indirect_read);
            }
            if let Some(g) = &self.kernel {
                g.bind(d, cb);
                g.push_constants(d, cb, &u32_bytes(&self.push));
                d.cmd_dispatch(cb, 1, 1, 1);
                cmd::memory_barrier(d, cb, cmd::COMPUTE_WRITE, indirect_read);
            }
        }
    }

    /// Records one indirect dispatch of the bound kernel.
    ///
    /// # Safety
    /// `cb` is recording on `d`, a compute pipeline bound.
    unsafe fn dispatch(&self, d: &ash::Device, cb: vk::CommandBuffer) {
        // SAFETY: caller contract.
        unsafe { d.cmd_dispatch_indirect(cb, self.buffer.handle, 0) };
    }
}

fn run(mut args: Args) -> Result<Report> {
    let kernel: String = args.value("--kernel")?.ok_or(
        "--kernel is required (saxpy, mandelbrot, matmul, histogram, compact, filter, chain, mix)",
    )?;
    let size: Option<u32> = args.value("--size")?;
    let repeat: u32 = args.value("--repeat")?.unwrap_or(1);
    let json = args.flag("--json");
    let clear = args.flag("--clear");
    let steps: Option<u32> = args.value("--steps")?;
    let batches: Option<u32> = args.value("--batches")?;
    let indirect: Option<String> = args.value("--indirect")?;
    let seed: Option<u32> = args.value("--seed")?;
    let host_signal = args.flag("--host-signal");
    let sampled = args.flag("--sampled");
    let in_batch = args.flag("--in-batch");
    let blit = args.flag("--blit");
    let in_secondary = args.flag("--secondary");
    let checked = args.flag("--checked");
    args.finish()?;
    if checked && kernel != "saxpy" {
        return Err("--checked: saxpy only".into());
    }
    if blit && !(kernel == "filter" && in_batch) {
        return Err("--blit: filter with --in-batch".into());
    }
    if (sampled || in_batch) && kernel != "filter" {
        return Err("--sampled, --in-batch: filter only".into());
    }
    if clear && !(kernel == "histogram" || (kernel == "filter" && in_batch)) {
        return Err("--clear: histogram, or filter with --in-batch".into());
    }
    if host_signal && (kernel != "saxpy" || batches.is_some()) {
        return Err("--host-signal: saxpy only, without --batches".into());
    }
    if batches.is_some() && kernel != "saxpy" {
        return Err("--batches: saxpy only".into());
    }
    if indirect.is_some() && !matches!(kernel.as_str(), "saxpy" | "mandelbrot") {
        return Err("--indirect: saxpy and mandelbrot only".into());
    }
    if steps.is_some() && !matches!(kernel.as_str(), "saxpy" | "mix") {
        return Err("--steps: saxpy and mix only".into());
    }
    if seed.is_some() && kernel != "mix" {
        return Err("--seed: mix only".into());
    }
    let mix_steps = steps.unwrap_or(24);
    if let Some(w) = indirect
        .as_deref()
        .filter(|w| !matches!(*w, "host" | "update" | "gpu"))
    {
        return Err(format!("--indirect {w}: host, update or gpu").into());
    }
    let batches = batches.unwrap_or(1);
    if !(1..=16).contains(&batches) {
        return Err(format!("--batches {batches}: must be 1..=16").into());
    }
    let steps = steps.unwrap_or(1);
    if !(1..=64).contains(&steps) {
        return Err(format!("--steps {steps}: must be 1..=64").into());
    }
    if !(1..=1000).contains(&repeat) {
        return Err(format!("--repeat {repeat}: must be 1..=1000").into());
    }
    let ctx = if host_signal {
        Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?
    } else {
        Context::with_queue(NAME, args.validation, vk::QueueFlags::COMPUTE)?
    };
    let d = &ctx.device;
    let queue = ctx.queue();
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let primary = ctx.allocate_primary(&pool)?;
    // Where the kernel's commands go: the primary, or a secondary it executes.
    let cb = if in_secondary {
        ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::SECONDARY, 1)?
            .first()
            .copied()
            .ok_or("vkAllocateCommandBuffers returned no command buffer")?
    } else {
        primary
    };
    let fence = ctx.create_fence(false)?;
    let semaphores = (1..batches)
        .map(|_| ctx.create_semaphore())
        .collect::<Result<Vec<_>>>()?;
    let timeline = host_signal
        .then(|| ctx.create_timeline_semaphore())
        .transpose()?;

    let _idle = ctx.idle_guard();
    // Records the kernel-specific dispatches between begin and end.
    let record = |body: &dyn Fn()| -> Result<()> {
        // A command buffer in several batches of one submit is pending more than once.
        let usage = if batches > 1 {
            vk::CommandBufferUsageFlags::SIMULTANEOUS_USE
        } else {
            vk::CommandBufferUsageFlags::empty()
        };
        if in_secondary {
            let inheritance = vk::CommandBufferInheritanceInfo::default();
            let begin = vk::CommandBufferBeginInfo::default()
                .flags(usage)
                .inheritance_info(&inheritance);
            // SAFETY: a fresh secondary command buffer of this device.
            unsafe { d.begin_command_buffer(cb, &begin) }.context("vkBeginCommandBuffer")?;
            body();
            // SAFETY: as above.
            unsafe {
                cmd::end(d, cb)?;
                cmd::begin(d, primary, usage)?;
                d.cmd_execute_commands(primary, &[cb]);
            }
        } else {
            // SAFETY: a fresh command buffer of this device on a compute queue.
            unsafe { cmd::begin(d, cb, usage)? };
            body();
        }
        // SAFETY: as above.
        unsafe {
            cmd::memory_barrier(d, primary, cmd::COMPUTE_WRITE, cmd::HOST_READ);
            cmd::end(d, primary)
        }
    };
    // A command buffer of one dispatch of `k` with push constants `push`.
    let one_dispatch = |k: &vkfuse_examples::ComputeKernel<'_>, push: &[u8], groups: [u32; 3]| {
        record(&|| {
            // SAFETY: recording; the kernel and buffers live until the idle guard.
            unsafe {
                k.bind(d, cb);
                k.push_constants(d, cb, push);
                d.cmd_dispatch(cb, groups[0], groups[1], groups[2]);
            }
        })
    };
    let times = std::cell::RefCell::new((Vec::new(), 0u64));
    // `before_signal`: with `--host-signal`, what the host does after each submit before it
    // signals the timeline value the submit waits for.
    let submit_all = |before_signal: &dyn Fn() -> Result<()>| -> Result<u64> {
        let cpu = cpu_ns();
        for submit in 0..repeat {
            let start = std::time::Instant::now();
            let stage = [vk::PipelineStageFlags::COMPUTE_SHADER];
            let wait_value = [u64::from(submit) + 1];
            let mut timeline_info =
                vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&wait_value);
            let infos: Vec<vk::SubmitInfo> = (0..batches as usize)
                .map(|i| {
                    let mut info =
                        vk::SubmitInfo::default().command_buffers(std::slice::from_ref(&primary));
                    if i > 0 {
                        info = info
                            .wait_semaphores(std::slice::from_ref(&*semaphores[i - 1]))
                            .wait_dst_stage_mask(&stage);
                    }
                    if i + 1 < batches as usize {
                        info = info.signal_semaphores(std::slice::from_ref(&*semaphores[i]));
                    }
                    info
                })
                .collect();
            let mut infos = infos;
            if let Some(t) = &timeline {
                infos[0] = infos[0]
                    .wait_semaphores(std::slice::from_ref(&**t))
                    .wait_dst_stage_mask(&stage)
                    .push_next(&mut timeline_info);
            }
            // SAFETY: a recorded command buffer (simultaneous use where it is in several
            // batches), not pending otherwise (the previous submit was waited for); the fence
            // is unsignalled; each semaphore is signalled before it is waited for.
            unsafe { d.queue_submit(queue.handle, &infos, *fence) }.context("vkQueueSubmit")?;
            if let Some(t) = &timeline {
                before_signal()?;
                let info = vk::SemaphoreSignalInfo::default()
                    .semaphore(**t)
                    .value(wait_value[0]);
                // SAFETY: a live timeline semaphore of this device; the value increases.
                unsafe { d.signal_semaphore(&info) }.context("vkSignalSemaphore")?;
            }
            ctx.wait_and_reset_fence(&fence)?;
            times.borrow_mut().0.push(nanos(start.elapsed()));
        }
        let mut t = times.borrow_mut();
        t.1 = cpu_ns().saturating_sub(cpu);
        Ok(t.0.iter().sum::<u64>() / u64::from(repeat))
    };
    let (bytes, per_submit) = match kernel.as_str() {
        "saxpy" => {
            let n = size.unwrap_or(1 << 20);
            let x: Vec<f32> = (0..n).map(|i| (mix(i, 1) % 64) as f32).collect();
            let y0: Vec<f32> = (0..n).map(|i| (mix(i, 2) % 1024) as f32).collect();
            let x_first = if host_signal {
                vec![0.0; x.len()]
            } else {
                x.clone()
            };
            let (xb, yb) = (
                host_buffer(&ctx, &f32_bytes(&x_first))?,
                host_buffer(&ctx, &f32_bytes(&y0))?,
            );

            let shader = if checked {
                vkfuse_examples::shaders::SAXPY_CHECKED_COMP
            } else {
                vkfuse_examples::shaders::SAXPY_COMP
            };
            let k = ctx.create_compute_kernel(shader, 8, &[whole(&xb), whole(&yb)])?;
            let a = 3.0f32;
            let mut push = f32_bytes(&[a]);
            push.extend(u32_bytes(&[n]));
            let groups = [n.div_ceil(64), 1, 1];
            let ind = match indirect.as_deref() {
                Some(w) => Some(Indirect::new(&ctx, w, groups, [n, 64, 1])?),
                None => None,
            };
            record(&|| {
                // SAFETY: as for `one_dispatch`; the counts buffer lives as long as the kernel.
                unsafe {
                    if let Some(ind) = &ind {
                        ind.record_counts(d, cb);
                    }
                    k.bind(d, cb);
                    k.push_constants(d, cb, &push);
                    for s in 0..steps {
                        if s > 0 {
                            cmd::memory_barrier(d, cb, cmd::COMPUTE_WRITE, cmd::COMPUTE_READ_WRITE);
                        }
                        match &ind {
                            Some(ind) => ind.dispatch(d, cb),
                            None => d.cmd_dispatch(cb, groups[0], groups[1], groups[2]),
                        }
                    }
                }
            })?;
            let x_bytes = f32_bytes(&x);
            let t = submit_all(&|| {
                if host_signal {
                    xb.write_bytes(0, &x_bytes)?;
                }
                Ok(())
            })?;
            let got = yb.read_bytes(0, n as usize * 4)?;
            let want: Vec<f32> = (0..n as usize)
                .map(|i| (0..repeat * steps * batches).fold(y0[i], |y, _| a * x[i] + y))
                .collect();
            let have = f32s_from_bytes(&got);
            if have != want {
                let at = difference(&have, &want);
                return Err(Mismatch(format!("saxpy: y differs from the CPU model ({at})")).into());
            }
            (got, t)
        }
        "mandelbrot" => {
            let w = size.unwrap_or(512);
            let out = host_buffer(&ctx, &vec![0u8; w as usize * w as usize * 4])?;
            let k = ctx.create_compute_kernel(
                vkfuse_examples::shaders::MANDELBROT_COMP,
                12,
                &[whole(&out)],
            )?;
            let (push, groups) = (
                u32_bytes(&[w, w, MANDELBROT_LIMIT]),
                [w.div_ceil(16), w.div_ceil(16), 1],
            );
            // Alive until the submits below are done.
            let ind = match indirect.as_deref() {
                Some(mode) => Some(Indirect::new(&ctx, mode, groups, [w, 16, groups[1]])?),
                None => None,
            };
            match &ind {
                Some(ind) => {
                    record(&|| {
                        // SAFETY: as for `one_dispatch`; the counts buffer lives as long as
                        // the kernel.
                        unsafe {
                            ind.record_counts(d, cb);
                            k.bind(d, cb);
                            k.push_constants(d, cb, &push);
                            ind.dispatch(d, cb);
                        }
                    })?;
                }
                None => one_dispatch(&k, &push, groups)?,
            }
            let t = submit_all(&|| Ok(()))?;
            let got = out.read_bytes(0, w as usize * w as usize * 4)?;
            let counts = u32s_from_bytes(&got);
            let one = 4096i32;
            let want: Vec<u32> = (0..w * w)
                .map(|i| {
                    let (x, y) = ((i % w) as i32, (i / w) as i32);
                    let cx = -2 * one + x * 3 * one / w as i32;
                    let cy = -3 * one / 2 + y * 3 * one / w as i32;
                    let (mut zx, mut zy, mut k) = (0i32, 0i32, 0u32);
                    while k < MANDELBROT_LIMIT && zx * zx / one + zy * zy / one <= 4 * one {
                        let t = zx * zx / one - zy * zy / one + cx;
                        zy = 2 * zx * zy / one + cy;
                        zx = t;
                        k += 1;
                    }
                    k
                })
                .collect();
            if counts != want {
                let at = difference(&counts, &want);
                return Err(Mismatch(format!(
                    "mandelbrot: counts differ from the CPU model ({at})"
                ))
                .into());
            }
            (got, t)
        }
        "matmul" => {
            let n = size.unwrap_or(256);
            if n == 0 || n % 16 != 0 {
                return Err(format!("--size {n}: matmul needs a multiple of 16").into());
            }
            let a: Vec<u32> = (0..n * n).map(|i| mix(i, 3) % 100).collect();
            let b: Vec<u32> = (0..n * n).map(|i| mix(i, 4) % 100).collect();
            let (ab, bb) = (
                host_buffer(&ctx, &u32_bytes(&a))?,
                host_buffer(&ctx, &u32_bytes(&b))?,
            );
            let cbuf = host_buffer(&ctx, &vec![0u8; (n * n) as usize * 4])?;
            let k = ctx.create_compute_kernel(
                vkfuse_examples::shaders::MATMUL_COMP,
                4,
                &[whole(&ab), whole(&bb), whole(&cbuf)],
            )?;
            one_dispatch(&k, &u32_bytes(&[n]), [n / 16, n / 16, 1])?;
            let t = submit_all(&|| Ok(()))?;
            let got = cbuf.read_bytes(0, (n * n) as usize * 4)?;
            let c = u32s_from_bytes(&got);
            let n = n as usize;
            for row in 0..n {
                for col in 0..n {
                    let want = (0..n).fold(0u32, |s, k| {
                        s.wrapping_add(a[row * n + k].wrapping_mul(b[k * n + col]))
                    });
                    if c[row * n + col] != want {
                        return Err(Mismatch(format!("matmul: C[{row}][{col}] differs")).into());
                    }
                }
            }
            (got, t)
        }
        "histogram" => {
            let n = size.unwrap_or(1 << 20);
            let v: Vec<u32> = (0..n).map(|i| mix(i, 5)).collect();
            let vb = host_buffer(&ctx, &u32_bytes(&v))?;
            let hb = ctx.create_buffer(
                1024,
                vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST,
                MemoryUse::Readback,
            )?;
            hb.write_bytes(0, &[0u8; 1024])?;
            let k = ctx.create_compute_kernel(
                vkfuse_examples::shaders::HISTOGRAM_COMP,
                4,
                &[whole(&vb), whole(&hb)],
            )?;
            if clear {
                // The bins cleared by the command buffer itself, before the dispatch.
                record(&|| {
                    // SAFETY: recording; the kernel and buffers live until the idle guard.
                    unsafe {
                        d.cmd_fill_buffer(cb, hb.handle, 0, vk::WHOLE_SIZE, 0);
                        cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::COMPUTE_READ_WRITE);
                        k.bind(d, cb);
                        k.push_constants(d, cb, &u32_bytes(&[n]));
                        d.cmd_dispatch(cb, n.div_ceil(64), 1, 1);
                    }
                })?;
            } else {
                one_dispatch(&k, &u32_bytes(&[n]), [n.div_ceil(64), 1, 1])?;
            }
            let t = submit_all(&|| Ok(()))?;
            let got = hb.read_bytes(0, 1024)?;
            let mut want = [0u32; 256];
            let times = if clear { 1 } else { repeat };
            for x in &v {
                want[(x & 255) as usize] += times;
            }
            if u32s_from_bytes(&got) != want {
                return Err(Mismatch("histogram: bins differ from the CPU model".into()).into());
            }
            (got, t)
        }
        "compact" => {
            // The counter is not reset between submits.
            if repeat != 1 {
                return Err("--kernel compact runs once (--repeat 1)".into());
            }
            let n = size.unwrap_or(1 << 20);
            let v: Vec<u32> = (0..n).map(|i| mix(i, 8)).collect();
            let vb = host_buffer(&ctx, &u32_bytes(&v))?;
            let cb_count = host_buffer(&ctx, &[0u8; 4])?;
            let ob = host_buffer(&ctx, &vec![0u8; n as usize * 4])?;
            let k = ctx.create_compute_kernel(
                vkfuse_examples::shaders::COMPACT_COMP,
                4,
                &[whole(&vb), whole(&cb_count), whole(&ob)],
            )?;
            one_dispatch(&k, &u32_bytes(&[n]), [n.div_ceil(64), 1, 1])?;
            let t = submit_all(&|| Ok(()))?;
            let count = u32s_from_bytes(&cb_count.read_bytes(0, 4)?)[0] as usize;
            let mut want: Vec<u32> = v.iter().copied().filter(|x| x % 3 == 0).collect();
            if count != want.len() {
                return Err(Mismatch(format!(
                    "compact: {count} slots handed out, {} expected",
                    want.len()
                ))
                .into());
            }
            let mut got = u32s_from_bytes(&ob.read_bytes(0, count * 4)?);
            got.sort_unstable();
            want.sort_unstable();
            if got != want {
                return Err(
                    Mismatch("compact: the output differs from the CPU model".into()).into(),
                );
            }
            let mut bytes = u32_bytes(&[count as u32]);
            bytes.extend(u32_bytes(&got));
            (bytes, t)
        }
        "filter" => {
            let w = size.unwrap_or(512);
            let texels: Vec<u32> = (0..w * w).map(|i| mix(i, 7) % 1000).collect();
            // What the filter reads: the upload, or 500 everywhere once cleared.
            let read: Vec<u32> = if clear {
                vec![500; texels.len()]
            } else {
                texels.clone()
            };
            let extent = vk::Extent2D {
                width: w,
                height: w,
            };
            let usage = vk::ImageUsageFlags::STORAGE
                | vk::ImageUsageFlags::TRANSFER_SRC
                | vk::ImageUsageFlags::TRANSFER_DST;
            let color = vk::ImageAspectFlags::COLOR;
            let src_usage = if sampled {
                usage | vk::ImageUsageFlags::SAMPLED
            } else {
                usage
            };
            // The source's layout while the filter reads it.
            let src_layout = if sampled {
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL
            } else {
                vk::ImageLayout::GENERAL
            };
            let src = ctx.create_image_2d(vk::Format::R32_UINT, extent, src_usage, color)?;
            let dst = ctx.create_image_2d(vk::Format::R32_UINT, extent, usage, color)?;
            // `--blit`'s mirror image of the output.
            let mirrored = if blit {
                Some(ctx.create_image_2d(vk::Format::R32_UINT, extent, usage, color)?)
            } else {
                None
            };
            let bytes = (w * w) as u64 * 4;
            let upload = host_buffer(&ctx, &u32_bytes(&texels))?;
            let readback = ctx.create_buffer(
                bytes,
                vk::BufferUsageFlags::TRANSFER_DST,
                MemoryUse::Readback,
            )?;
            let transfer = (
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
            );
            let compute = (
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::AccessFlags::SHADER_READ,
            );
            ctx.one_time_commands(queue, |c| {
                // SAFETY: recording a fresh command buffer; the images and buffer are live.
                unsafe {
                    cmd::image_barrier(
                        d,
                        c,
                        src.handle,
                        color,
                        vk::ImageLayout::UNDEFINED,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        (
                            vk::PipelineStageFlags::TOP_OF_PIPE,
                            vk::AccessFlags::empty(),
                        ),
                        transfer,
                    );
                    d.cmd_copy_buffer_to_image(
                        c,
                        upload.handle,
                        src.handle,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        &[cmd::color_copy(vk::Offset2D::default(), extent)],
                    );
                    cmd::image_barrier(
                        d,
                        c,
                        src.handle,
                        color,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        src_layout,
                        transfer,
                        compute,
                    );
                }
                Ok(())
            })?;
            // The output from UNDEFINED to GENERAL (where `at_start`) or from GENERAL to
            // TRANSFER_SRC_OPTIMAL, and its copy into the readback buffer.
            let output_to = |c: vk::CommandBuffer, at_start: bool| {
                // SAFETY: recording `c`; the image and buffer are live.
                unsafe {
                    if at_start {
                        cmd::image_barrier(
                            d,
                            c,
                            dst.handle,
                            color,
                            vk::ImageLayout::UNDEFINED,
                            vk::ImageLayout::GENERAL,
                            (
                                vk::PipelineStageFlags::TOP_OF_PIPE,
                                vk::AccessFlags::empty(),
                            ),
                            cmd::COMPUTE_WRITE,
                        );
                        return;
                    }
                    cmd::image_barrier(
                        d,
                        c,
                        dst.handle,
                        color,
                        vk::ImageLayout::GENERAL,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        cmd::COMPUTE_WRITE,
                        (
                            vk::PipelineStageFlags::TRANSFER,
                            vk::AccessFlags::TRANSFER_READ,
                        ),
                    );
                    let Some(m) = &mirrored else {
                        cmd::copy_image_to_host(d, c, dst.handle, extent, readback.handle);
                        return;
                    };
                    let read = (
                        vk::PipelineStageFlags::TRANSFER,
                        vk::AccessFlags::TRANSFER_READ,
                    );
                    cmd::image_barrier(
                        d,
                        c,
                        m.handle,
                        color,
                        vk::ImageLayout::UNDEFINED,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        read,
                        transfer,
                    );
                    let layers = vk::ImageSubresourceLayers {
                        aspect_mask: color,
                        mip_level: 0,
                        base_array_layer: 0,
                        layer_count: 1,
                    };
                    let (wi, hi) = (w as i32, w as i32);
                    let corner = |x: i32, y: i32, z: i32| vk::Offset3D { x, y, z };
                    d.cmd_blit_image(
                        c,
                        dst.handle,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        m.handle,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        &[vk::ImageBlit {
                            src_subresource: layers,
                            src_offsets: [corner(0, 0, 0), corner(wi, hi, 1)],
                            dst_subresource: layers,
                            dst_offsets: [corner(wi, 0, 0), corner(0, hi, 1)],
                        }],
                        vk::Filter::NEAREST,
                    );
                    cmd::image_barrier(
                        d,
                        c,
                        m.handle,
                        color,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        transfer,
                        read,
                    );
                    cmd::copy_image_to_host(d, c, m.handle, extent, readback.handle);
                }
            };
            if !in_batch {
                ctx.one_time_commands(queue, |c| {
                    output_to(c, true);
                    Ok(())
                })?;
            }
            let sampler = ctx.create_nearest_sampler()?;
            let source = if sampled {
                Binding::combined_image_sampler(
                    vk::ShaderStageFlags::COMPUTE,
                    &sampler,
                    &src,
                    src_layout,
                )
            } else {
                Binding::storage_image(vk::ShaderStageFlags::COMPUTE, &src, src_layout)
            };
            let k = ctx.create_compute_kernel(
                if sampled {
                    vkfuse_examples::shaders::BLUR_SAMPLED_COMP
                } else {
                    vkfuse_examples::shaders::BLUR_COMP
                },
                4,
                &[
                    source,
                    Binding::storage_image(
                        vk::ShaderStageFlags::COMPUTE,
                        &dst,
                        vk::ImageLayout::GENERAL,
                    ),
                ],
            )?;
            record(&|| {
                if in_batch {
                    output_to(cb, true);
                }
                if clear {
                    // SAFETY: recording `cb`; the source is live, in `src_layout`.
                    unsafe {
                        let to = if sampled {
                            vk::ImageLayout::TRANSFER_DST_OPTIMAL
                        } else {
                            src_layout
                        };
                        cmd::image_barrier(
                            d, cb, src.handle, color, src_layout, to, compute, transfer,
                        );
                        d.cmd_clear_color_image(
                            cb,
                            src.handle,
                            to,
                            &vk::ClearColorValue {
                                uint32: [500, 0, 0, 0],
                            },
                            &[vk::ImageSubresourceRange {
                                aspect_mask: color,
                                base_mip_level: 0,
                                level_count: 1,
                                base_array_layer: 0,
                                layer_count: 1,
                            }],
                        );
                        cmd::image_barrier(
                            d, cb, src.handle, color, to, src_layout, transfer, compute,
                        );
                    }
                }
                // SAFETY: as for saxpy; the images are in the layouts their descriptors name.
                unsafe {
                    k.bind(d, cb);
                    d.cmd_dispatch(cb, w.div_ceil(8), w.div_ceil(8), 1);
                }
                if in_batch {
                    output_to(cb, false);
                }
            })?;
            let t = submit_all(&|| Ok(()))?;
            if !in_batch {
                // After the filter's writes (its fence was waited for).
                ctx.one_time_commands(queue, |c| {
                    output_to(c, false);
                    Ok(())
                })?;
            }
            let got = readback.read_bytes(0, bytes as usize)?;
            let w = w as i64;
            let at = |x: i64, y: i64| read[(y.clamp(0, w - 1) * w + x.clamp(0, w - 1)) as usize];
            let want: Vec<u32> = (0..w * w)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    // `--blit`: the output mirrored left to right.
                    let x = if blit { w - 1 - x } else { x };
                    let sum: u32 = (-1..=1)
                        .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                        .map(|(dx, dy)| at(x + dx, y + dy))
                        .sum();
                    sum / 9
                })
                .collect();
            let have = u32s_from_bytes(&got);
            if have != want {
                let at = difference(&have, &want);
                return Err(Mismatch(format!(
                    "filter: the image differs from the CPU model ({at})"
                ))
                .into());
            }
            (got, t)
        }
        "chain" => {
            let n = size.unwrap_or(1 << 16);
            let start: Vec<u32> = (0..n).map(|i| mix(i, 6)).collect();
            let (b0, b1) = (
                host_buffer(&ctx, &u32_bytes(&start))?,
                host_buffer(&ctx, &vec![0u8; n as usize * 4])?,
            );
            let k = ctx.create_compute_kernel(
                vkfuse_examples::shaders::NEIGHBOURS_COMP,
                8,
                &[whole(&b0), whole(&b1)],
            )?;
            let back = ctx.create_descriptor_set(&[whole(&b1), whole(&b0)])?;
            record(&|| {
                // SAFETY: as for saxpy; `back` has the kernel's set layout's definition.
                unsafe {
                    k.bind(d, cb);
                    for s in 0..CHAIN_STEPS {
                        if s % 2 == 1 {
                            d.cmd_bind_descriptor_sets(
                                cb,
                                vk::PipelineBindPoint::COMPUTE,
                                *k.layout,
                                0,
                                &[back.set],
                                &[],
                            );
                        } else if s > 0 {
                            d.cmd_bind_descriptor_sets(
                                cb,
                                vk::PipelineBindPoint::COMPUTE,
                                *k.layout,
                                0,
                                &[k.descriptors.set],
                                &[],
                            );
                        }
                        k.push_constants(d, cb, &u32_bytes(&[n, s]));
                        d.cmd_dispatch(cb, n.div_ceil(64), 1, 1);
                        cmd::memory_barrier(d, cb, cmd::COMPUTE_WRITE, cmd::COMPUTE_READ_WRITE);
                    }
                }
            })?;
            let t = submit_all(&|| Ok(()))?;
            // An even number of steps ends in b0; each submit starts from b0's contents.
            let got = b0.read_bytes(0, n as usize * 4)?;
            let mut want = start.clone();
            for _ in 0..repeat {
                for s in 0..CHAIN_STEPS {
                    want = (0..n as usize)
                        .map(|i| {
                            want[i]
                                .wrapping_mul(3)
                                .wrapping_add(want[(i + 1) % n as usize])
                                .wrapping_add(s)
                        })
                        .collect();
                }
            }
            if u32s_from_bytes(&got) != want {
                return Err(Mismatch("chain: the output differs from the CPU model".into()).into());
            }
            (got, t)
        }
        "mix" => {
            let n = size.unwrap_or(1 << 14);
            // Offsets and lengths in multiples of 64 elements (256 bytes: every driver's
            // storage buffer offset alignment).
            if n % 64 != 0 || n < 256 {
                return Err("--kernel mix: --size must be a multiple of 64, at least 256".into());
            }
            let seed = seed.unwrap_or(1);
            let start: [Vec<u32>; 2] = [
                (0..n).map(|i| mix(i, seed.wrapping_mul(7))).collect(),
                (0..n).map(|i| mix(i, seed.wrapping_mul(7) + 1)).collect(),
            ];
            let bufs = [
                host_buffer(&ctx, &u32_bytes(&start[0]))?,
                host_buffer(&ctx, &u32_bytes(&start[1]))?,
            ];
            // Each step: (element-wise, source buffer, its offset, destination, its offset,
            // elements), all in elements.
            let mut plan = Vec::new();
            let blocks = n / 64;
            for k in 0..mix_steps {
                let r = |salt: u32| mix(k, seed.wrapping_mul(131).wrapping_add(salt));
                let own = r(1) % 3 != 0;
                let src = (r(2) % 2) as usize;
                // Neighbour steps read another buffer than they write; element-wise steps may
                // read and write the same one at the same offset.
                let dst = if own && r(3) % 4 == 0 { src } else { 1 - src };
                // Lengths and offsets from few choices, so that steps are often cut alike
                // (the same length) at the same or at other offsets: whole buffers, halves
                // at three offsets, or anything.
                let (len, so, other) = match r(9) % 3 {
                    0 => (blocks, 0, 0),
                    1 => {
                        let at = |x: u32| (x % 3) * (blocks / 4);
                        (blocks / 2, at(r(5)), at(r(6)))
                    }
                    _ => {
                        let len = 1 + r(4) % blocks;
                        (len, r(5) % (blocks - len + 1), r(6) % (blocks - len + 1))
                    }
                };
                let dofs = if dst == src { so } else { other };
                // Now and then a count that is not whole workgroups.
                let elems = len * 64
                    - if len < blocks && r(7) % 4 == 0 {
                        r(8) % 64
                    } else {
                        0
                    };
                plan.push((own, src, so * 64, dst, dofs * 64, elems));
            }
            let kernels = [
                ctx.create_compute_kernel(
                    vkfuse_examples::shaders::STEP_COMP,
                    8,
                    &[whole(&bufs[0]), whole(&bufs[1])],
                )?,
                ctx.create_compute_kernel(
                    vkfuse_examples::shaders::NEIGHBOURS_COMP,
                    8,
                    &[whole(&bufs[0]), whole(&bufs[1])],
                )?,
            ];
            let sets = plan
                .iter()
                .map(|(_, src, so, dst, dofs, elems)| {
                    let part = |b: usize, at: u32| {
                        Binding::compute_storage(&bufs[b], u64::from(at) * 4, u64::from(*elems) * 4)
                    };
                    ctx.create_descriptor_set(&[part(*src, *so), part(*dst, *dofs)])
                })
                .collect::<Result<Vec<_>>>()?;
            record(&|| {
                // SAFETY: recording; the kernels, sets and buffers live until the idle guard;
                // the sets have the kernels' set layout's definition.
                unsafe {
                    for (k, ((own, ..), set)) in plan.iter().zip(&sets).enumerate() {
                        let kernel = &kernels[usize::from(!own)];
                        if k > 0 {
                            cmd::memory_barrier(d, cb, cmd::COMPUTE_WRITE, cmd::COMPUTE_READ_WRITE);
                        }
                        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *kernel.pipeline);
                        d.cmd_bind_descriptor_sets(
                            cb,
                            vk::PipelineBindPoint::COMPUTE,
                            *kernel.layout,
                            0,
                            &[set.set],
                            &[],
                        );
                        let elems = plan[k].5;
                        kernel.push_constants(d, cb, &u32_bytes(&[elems, k as u32]));
                        d.cmd_dispatch(cb, elems.div_ceil(64), 1, 1);
                    }
                }
            })?;
            let t = submit_all(&|| Ok(()))?;
            let mut got = bufs[0].read_bytes(0, n as usize * 4)?;
            got.extend(bufs[1].read_bytes(0, n as usize * 4)?);
            let mut want = start.clone();
            for _ in 0..repeat {
                for (k, (own, src, so, dst, dofs, elems)) in plan.iter().enumerate() {
                    let (so, dofs, m) = (*so as usize, *dofs as usize, *elems as usize);
                    let s: Vec<u32> = want[*src][so..so + m].to_vec();
                    let out = &mut want[*dst][dofs..dofs + m];
                    for i in 0..m {
                        out[i] = if *own {
                            out[i]
                                .wrapping_mul(3)
                                .wrapping_add(s[i])
                                .wrapping_add(k as u32)
                        } else {
                            s[i].wrapping_mul(3)
                                .wrapping_add(s[(i + 1) % m])
                                .wrapping_add(k as u32)
                        };
                    }
                }
            }
            let mut all = want[0].clone();
            all.extend(&want[1]);
            if u32s_from_bytes(&got) != all {
                return Err(Mismatch("mix: the buffers differ from the CPU model".into()).into());
            }
            (got, t)
        }
        other => return Err(format!("--kernel {other}: not a kernel").into()),
    };
    eprintln!("{NAME}: {kernel}: output equal to the CPU model; {per_submit} ns per submit (mean of {repeat})");
    if json {
        let (submits, cpu) = times.into_inner();
        return Ok(Report::Json(format!(
            "{{\"kernel\":\"{kernel}\",\"submit_ns\":{},\"cpu_ns\":{cpu},\"result\":\"{:016x}\"}}",
            vkfuse_examples::json_array(&submits),
            fnv1a64(&bytes)
        )));
    }
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&bytes),
    })
}

/// Where `got` first differs from `want`, and in how many elements, for a mismatch message.
fn difference<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T]) -> String {
    let differ =
        got.iter().zip(want).filter(|(g, w)| g != w).count() + got.len().abs_diff(want.len());
    match got.iter().zip(want).position(|(g, w)| g != w) {
        Some(i) => format!(
            "{differ} of {} element(s) differ, the first at {i}: {:?}, the CPU model {:?}",
            want.len(),
            got[i],
            want[i]
        ),
        None => format!("{} element(s), the CPU model {}", got.len(), want.len()),
    }
}
