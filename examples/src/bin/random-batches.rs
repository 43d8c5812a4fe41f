//! `random-batches`: hundreds of dependent batches of compute and transfer work over a few
//! buffers, with host writes between them, linked by timeline and binary semaphores.
//!
//! Every batch reads what earlier batches wrote (under vkfuse's `round_robin` or `afr`, on other
//! members), so the final contents depend on every batch having seen its inputs complete.
//! A seeded generator picks, per batch, 1–3 operations among a `mix.comp` dispatch from one
//! buffer into another, a buffer copy, a fill and an update; how the batch waits for the one
//! before it (timeline value, binary semaphore, a host wait on the timeline or on a fence
//! followed by host writes into a mapped buffer, a binary semaphore signalled by an empty
//! batch that waits for a timeline value the host signals only later, or no semaphore at all:
//! submission order and a memory barrier at the start of the batch). The same steps run on the
//! CPU; the result must match, and its hash is printed. Every batch also writes a timestamp
//! query (when the queue has timestamps), checked available at every host wait; some batches
//! set an event, and the host checks that the last batch's is set.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::descriptors::Binding;
use vkfuse_examples::hash::Fnv1a64;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, shaders, u32_bytes, u32s_from_bytes, Args, Context, ContextDesc,
    ErrorContext as _, Mismatch, QueuePlan, Report, Result,
};

const NAME: &str = "random-batches";
const USAGE: &str = "\
usage: random-batches [--batches B] [--seed S] [--validation]

Runs B (default 300) dependent batches of compute and transfer work over 4 buffers of 4096
words, chosen by a generator seeded with S (default 1), with semaphores between batches and
host writes between some of them; checks against the same steps on the CPU and prints
  vkfuse-example random-batches device=\"<name>\" result=<fnv1a64 of the buffers>

  --batches B    1..=5000
  --seed S       any u64
  --validation   enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                 exit code 3 if it reports errors or warnings";

const BUFFERS: usize = 4;
const WORDS: u32 = 4096;
const LOCAL_SIZE: u32 = 64;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// xorshift64*: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pair(&mut self) -> (usize, usize) {
        let s = self.below(BUFFERS as u64) as usize;
        let d = (s + 1 + self.below(BUFFERS as u64 - 1) as usize) % BUFFERS;
        (s, d)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Mix {
        src: usize,
        dst: usize,
        seed: u32,
        rotate: u32,
    },
    Copy {
        src: usize,
        dst: usize,
        from: u32,
        to: u32,
        words: u32,
    },
    Fill {
        dst: usize,
        at: u32,
        words: u32,
        value: u32,
    },
    Update {
        dst: usize,
        at: u32,
        data: Vec<u32>,
    },
}

/// How a batch waits for the batch before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// On the GPU: the timeline value the previous batch signals.
    Timeline,
    /// On the GPU: a binary semaphore the previous batch signals.
    Binary,
    /// On the host: vkWaitSemaphores, then host writes.
    HostTimeline,
    /// On the host: the previous batch's fence, then host writes.
    HostFence,
    /// On the GPU: a binary semaphore signalled by an empty batch that waits for a value of a
    /// second timeline, submitted before the host signals that value (a wait before its
    /// signal), which the host does after submitting the previous batch.
    Early,
    /// No semaphore: the previous batch signals nothing, and this one starts with a memory
    /// barrier, which orders it after every batch submitted before it on the queue. (vkfuse
    /// must wait for the batches on other members that touched the same buffers.)
    Order,
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The operation on the CPU.
fn apply(bufs: &mut [Vec<u32>], op: &Op) {
    match op {
        Op::Mix {
            src,
            dst,
            seed,
            rotate,
        } => {
            let s = bufs[*src].clone();
            for (i, d) in bufs[*dst].iter_mut().enumerate() {
                let i = i as u32;
                let x = s[((i + rotate) % WORDS) as usize];
                *d = fmix32(*d ^ x ^ seed.wrapping_add(i.wrapping_mul(0x9e37_79b9)));
            }
        }
        Op::Copy {
            src,
            dst,
            from,
            to,
            words,
        } => {
            let s: Vec<u32> = bufs[*src][*from as usize..(*from + *words) as usize].to_vec();
            bufs[*dst][*to as usize..(*to + *words) as usize].copy_from_slice(&s);
        }
        Op::Fill {
            dst,
            at,
            words,
            value,
        } => {
            bufs[*dst][*at as usize..(*at + *words) as usize].fill(*value);
        }
        Op::Update { dst, at, data } => {
            bufs[*dst][*at as usize..*at as usize + data.len()].copy_from_slice(data);
        }
    }
}

fn random_op(rng: &mut Rng) -> Op {
    let region = |rng: &mut Rng| {
        let words = 1 + rng.below(WORDS as u64 / 2) as u32;
        let at = rng.below((WORDS - words + 1) as u64) as u32;
        (at, words)
    };
    match rng.below(4) {
        0 => {
            let (src, dst) = rng.pair();
            Op::Mix {
                src,
                dst,
                seed: rng.next() as u32,
                rotate: rng.below(WORDS as u64) as u32,
            }
        }
        1 => {
            let (src, dst) = rng.pair();
            let (from, words) = region(rng);
            let to = rng.below((WORDS - words + 1) as u64) as u32;
            Op::Copy {
                src,
                dst,
                from,
                to,
                words,
            }
        }
        2 => {
            let (_, dst) = rng.pair();
            let (at, words) = region(rng);
            Op::Fill {
                dst,
                at,
                words,
                value: rng.next() as u32,
            }
        }
        _ => {
            let (_, dst) = rng.pair();
            let words = 1 + rng.below(64) as u32;
            let at = rng.below((WORDS - words + 1) as u64) as u32;
            Op::Update {
                dst,
                at,
                data: (0..words).map(|_| rng.next() as u32).collect(),
            }
        }
    }
}

fn run(mut args: Args) -> Result<Report> {
    let batches: u32 = args.value("--batches")?.unwrap_or(300);
    let seed: u64 = args.value("--seed")?.unwrap_or(1);
    args.finish()?;
    if batches == 0 || batches > 5000 {
        return Err(format!("--batches must be in 1..=5000, got {batches}").into());
    }
    let ctx = Context::new(&ContextDesc {
        name: NAME,
        validation: args.validation,
        queues: QueuePlan::One(vk::QueueFlags::COMPUTE),
        timeline: true,
    })?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let size = u64::from(WORDS) * 4;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER
        | vk::BufferUsageFlags::TRANSFER_SRC
        | vk::BufferUsageFlags::TRANSFER_DST;
    let buffers = (0..BUFFERS)
        .map(|_| ctx.create_buffer(size, usage, MemoryUse::Upload))
        .collect::<Result<Vec<_>>>()?;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut cpu: Vec<Vec<u32>> = (0..BUFFERS)
        .map(|_| (0..WORDS).map(|_| rng.next() as u32).collect())
        .collect();
    for (b, data) in buffers.iter().zip(&cpu) {
        b.write_bytes(0, &u32_bytes(data))?;
    }

    // One kernel (pipeline and layout) and a set for every ordered pair of buffers.
    let kernel = ctx.create_compute_kernel(
        shaders::MIX_COMP,
        12,
        &[
            Binding::compute_storage(&buffers[0], 0, size),
            Binding::compute_storage(&buffers[1], 0, size),
        ],
    )?;
    let mut sets = Vec::new();
    for s in 0..BUFFERS {
        for t in 0..BUFFERS {
            if s != t {
                let set = ctx.create_descriptor_set(&[
                    Binding::compute_storage(&buffers[s], 0, size),
                    Binding::compute_storage(&buffers[t], 0, size),
                ])?;
                sets.push(((s, t), set));
            }
        }
    }
    let set_of = |s: usize, t: usize| {
        sets.iter()
            .find(|(k, _)| *k == (s, t))
            .map(|(_, set)| set.set)
            .ok_or("internal error: no descriptor set for the pair")
    };

    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, batches)?;
    let timeline = ctx.create_timeline_semaphore()?;
    let binary = [ctx.create_semaphore()?, ctx.create_semaphore()?];
    let early = [ctx.create_semaphore()?, ctx.create_semaphore()?];
    let gate = ctx.create_timeline_semaphore()?;
    let mut gates = 0u64;
    // vkQueueSubmit calls, for the summary line (vkfuse places each).
    let mut submits = 0u32;
    let fence = ctx.create_fence(false)?;
    let timestamps = ctx.queue_families[queue.family as usize].timestamp_valid_bits > 0;
    let qpi = vk::QueryPoolCreateInfo::default()
        .query_type(vk::QueryType::TIMESTAMP)
        .query_count(batches);
    // SAFETY: a valid create info.
    let queries = unsafe { ctx.own_created(d.create_query_pool(&qpi, None), "vkCreateQueryPool")? };
    // SAFETY: a valid create info.
    let event = unsafe {
        ctx.own_created(
            d.create_event(&vk::EventCreateInfo::default(), None),
            "vkCreateEvent",
        )?
    };
    let mut events = 0u32;
    // Every query starts reset, by a submit of its own.
    let reset_cb = ctx.allocate_primary(&pool)?;
    // SAFETY: a fresh command buffer of this device, waited for before the loop.
    unsafe {
        d.begin_command_buffer(reset_cb, &vk::CommandBufferBeginInfo::default())
            .context("vkBeginCommandBuffer")?;
        d.cmd_reset_query_pool(reset_cb, *queries, 0, batches);
        d.end_command_buffer(reset_cb)
            .context("vkEndCommandBuffer")?;
        let list = [reset_cb];
        d.queue_submit(
            queue.handle,
            &[vk::SubmitInfo::default().command_buffers(&list)],
            *fence,
        )
        .context("vkQueueSubmit")?;
    }
    submits += 1;
    ctx.wait_and_reset_fence(&fence)?;
    let _idle = ctx.idle_guard();

    let all_access = vk::AccessFlags::SHADER_READ
        | vk::AccessFlags::SHADER_WRITE
        | vk::AccessFlags::TRANSFER_READ
        | vk::AccessFlags::TRANSFER_WRITE;
    let stages = vk::PipelineStageFlags::COMPUTE_SHADER | vk::PipelineStageFlags::TRANSFER;
    // What the batches' commands do: every barrier between them covers it all.
    let work: cmd::Scope = (stages, all_access);
    let mut counts = [0u32; 4];
    let mut waits = [0u32; 6];
    let mut host_writes = 0u32;
    // How batch i waits for batch i-1; chosen when batch i-1 is submitted.
    let mut wait = Wait::Timeline;
    // Batch i-1 set the event: batch i waits for it and resets it.
    let mut event_set = false;
    for (i, &cb) in cbs.iter().enumerate() {
        let i = i as u64;
        if i > 0 {
            waits[wait as usize] += 1;
        }
        if i > 0 && matches!(wait, Wait::HostTimeline | Wait::HostFence) {
            if wait == Wait::HostFence {
                ctx.wait_and_reset_fence(&fence)?;
            } else {
                let sems = [*timeline];
                let values = [i];
                let w = vk::SemaphoreWaitInfo::default()
                    .semaphores(&sems)
                    .values(&values);
                // SAFETY: a timeline semaphore of this device.
                unsafe { d.wait_semaphores(&w, u64::MAX) }.context("vkWaitSemaphores")?;
            }
            // The device is idle up to batch i-1: the host writes a few words.
            let b = rng.below(BUFFERS as u64) as usize;
            let words = 1 + rng.below(256) as u32;
            let at = rng.below((WORDS - words + 1) as u64) as u32;
            let data: Vec<u32> = (0..words).map(|_| rng.next() as u32).collect();
            // Read back first: the host sees what the other members wrote.
            let seen = u32s_from_bytes(&buffers[b].read_bytes(0, size as usize)?);
            if seen != cpu[b] {
                return Err(Mismatch(format!(
                    "buffer {b} differs from the CPU reference before batch {i}"
                ))
                .into());
            }
            buffers[b].write_bytes(u64::from(at) * 4, &u32_bytes(&data))?;
            cpu[b][at as usize..(at + words) as usize].copy_from_slice(&data);
            host_writes += 1;
            if timestamps {
                // Every earlier batch has completed: its timestamp is available, on whichever
                // member it ran.
                let mut results = vec![[0u64; 2]; i as usize];
                // SAFETY: queries 0..i were written by completed batches.
                unsafe {
                    d.get_query_pool_results(
                        *queries,
                        0,
                        &mut results,
                        vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WITH_AVAILABILITY,
                    )
                }
                .context("vkGetQueryPoolResults")?;
                if let Some(q) = results.iter().position(|r| r[1] == 0) {
                    return Err(Mismatch(format!(
                        "timestamp query {q} is not available after its batch completed"
                    ))
                    .into());
                }
            }
        }
        let ops: Vec<Op> = (0..1 + rng.below(3)).map(|_| random_op(&mut rng)).collect();
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: a fresh command buffer of this thread's pool; every handle recorded belongs
        // to the device; regions lie inside the buffers (random_op).
        unsafe {
            d.begin_command_buffer(cb, &begin)
                .context("vkBeginCommandBuffer")?;
            if wait == Wait::Order {
                cmd::memory_barrier(d, cb, work, work);
            }
            for op in &ops {
                match op {
                    Op::Mix {
                        src,
                        dst,
                        seed,
                        rotate,
                    } => {
                        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *kernel.pipeline);
                        d.cmd_bind_descriptor_sets(
                            cb,
                            vk::PipelineBindPoint::COMPUTE,
                            *kernel.layout,
                            0,
                            &[set_of(*src, *dst)?],
                            &[],
                        );
                        kernel.push_constants(d, cb, &u32_bytes(&[*seed, WORDS, *rotate]));
                        d.cmd_dispatch(cb, WORDS.div_ceil(LOCAL_SIZE), 1, 1);
                        counts[0] += 1;
                    }
                    Op::Copy {
                        src,
                        dst,
                        from,
                        to,
                        words,
                    } => {
                        let region = vk::BufferCopy {
                            src_offset: u64::from(*from) * 4,
                            dst_offset: u64::from(*to) * 4,
                            size: u64::from(*words) * 4,
                        };
                        d.cmd_copy_buffer(
                            cb,
                            buffers[*src].handle,
                            buffers[*dst].handle,
                            &[region],
                        );
                        counts[1] += 1;
                    }
                    Op::Fill {
                        dst,
                        at,
                        words,
                        value,
                    } => {
                        d.cmd_fill_buffer(
                            cb,
                            buffers[*dst].handle,
                            u64::from(*at) * 4,
                            u64::from(*words) * 4,
                            *value,
                        );
                        counts[2] += 1;
                    }
                    Op::Update { dst, at, data } => {
                        d.cmd_update_buffer(
                            cb,
                            buffers[*dst].handle,
                            u64::from(*at) * 4,
                            &u32_bytes(data),
                        );
                        counts[3] += 1;
                    }
                }
                cmd::memory_barrier(d, cb, work, work);
                apply(&mut cpu, op);
            }
            if timestamps {
                d.cmd_write_timestamp(
                    cb,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    *queries,
                    i as u32,
                );
            }
            event_set = rng.below(4) == 0;
            if event_set {
                d.cmd_set_event(cb, *event, stages);
                events += 1;
            }
            cmd::memory_barrier(d, cb, work, cmd::HOST_READ);
            d.end_command_buffer(cb).context("vkEndCommandBuffer")?;
        }
        let next = match rng.below(11) {
            0..=3 => Wait::Timeline,
            4 | 5 => Wait::Binary,
            6 => Wait::HostTimeline,
            7 => Wait::HostFence,
            8 => Wait::Early,
            // The last batch signals the value the host waits for at the end.
            _ if i + 1 == u64::from(batches) => Wait::Timeline,
            _ => Wait::Order,
        };
        if next == Wait::Early {
            // Waits for a gate value the host signals after this batch is submitted.
            gates += 1;
            let sems = [*gate];
            let values = [gates];
            let signals = [*early[i as usize % 2]];
            let masks = [stages];
            let zeros = [0u64];
            let mut tl = vk::TimelineSemaphoreSubmitInfo::default()
                .wait_semaphore_values(&values)
                .signal_semaphore_values(&zeros);
            let submit = vk::SubmitInfo::default()
                .wait_semaphores(&sems)
                .wait_dst_stage_mask(&masks)
                .signal_semaphores(&signals)
                .push_next(&mut tl);
            // SAFETY: handles of this device; `early` is unsignalled (the batch after the
            // last early wait consumed it).
            unsafe { d.queue_submit(queue.handle, &[submit], vk::Fence::null()) }
                .context("vkQueueSubmit")?;
            submits += 1;
        }
        let mut wait_sems = Vec::new();
        let mut wait_values = Vec::new();
        if i > 0 {
            match wait {
                Wait::Timeline => {
                    wait_sems.push(*timeline);
                    wait_values.push(i);
                }
                Wait::Binary => {
                    wait_sems.push(*binary[(i as usize - 1) % 2]);
                    wait_values.push(0);
                }
                Wait::Early => {
                    wait_sems.push(*early[(i as usize - 1) % 2]);
                    wait_values.push(0);
                }
                Wait::HostTimeline | Wait::HostFence | Wait::Order => {}
            }
        }
        let (mut signal_sems, mut signal_values) = if next == Wait::Order {
            (Vec::new(), Vec::new())
        } else {
            (vec![*timeline], vec![i + 1])
        };
        if next == Wait::Binary {
            signal_sems.push(*binary[i as usize % 2]);
            signal_values.push(0);
        }
        let stage_masks = vec![stages; wait_sems.len()];
        let mut values = vk::TimelineSemaphoreSubmitInfo::default()
            .wait_semaphore_values(&wait_values)
            .signal_semaphore_values(&signal_values);
        let cb_list = [cb];
        let submit = vk::SubmitInfo::default()
            .wait_semaphores(&wait_sems)
            .wait_dst_stage_mask(&stage_masks)
            .command_buffers(&cb_list)
            .signal_semaphores(&signal_sems)
            .push_next(&mut values);
        let f = if next == Wait::HostFence {
            *fence
        } else {
            vk::Fence::null()
        };
        // SAFETY: every handle belongs to the device; the binary semaphore waited on was
        // signalled by the previous submit; the fence is unsignalled.
        unsafe { d.queue_submit(queue.handle, &[submit], f) }.context("vkQueueSubmit")?;
        submits += 1;
        if next == Wait::Early {
            // The batch waiting for the gate was submitted before its signal; batch i precedes
            // it in the queue, and batch i+1 waits for it.
            let info = vk::SemaphoreSignalInfo::default()
                .semaphore(*gate)
                .value(gates);
            // SAFETY: a timeline semaphore of this device, signalled to a higher value.
            unsafe { d.signal_semaphore(&info) }.context("vkSignalSemaphore")?;
        }
        wait = next;
    }
    if wait == Wait::HostFence {
        ctx.wait_and_reset_fence(&fence)?;
    }
    let sems = [*timeline];
    let values = [u64::from(batches)];
    let w = vk::SemaphoreWaitInfo::default()
        .semaphores(&sems)
        .values(&values);
    // SAFETY: a timeline semaphore of this device.
    unsafe { d.wait_semaphores(&w, u64::MAX) }.context("vkWaitSemaphores")?;
    if matches!(wait, Wait::Binary | Wait::Early) {
        // The last binary signal has no batch after it to wait for it: an empty submit does.
        let sems = if wait == Wait::Early {
            [*early[(batches as usize - 1) % 2]]
        } else {
            [*binary[(batches as usize - 1) % 2]]
        };
        let masks = [stages];
        let submit = vk::SubmitInfo::default()
            .wait_semaphores(&sems)
            .wait_dst_stage_mask(&masks);
        // SAFETY: the semaphore was signalled by the last submit.
        unsafe { d.queue_submit(queue.handle, &[submit], *fence) }.context("vkQueueSubmit")?;
        submits += 1;
        ctx.wait_and_reset_fence(&fence)?;
    }
    if event_set {
        // The last batch set the event and no batch waited: the host sees it set.
        // SAFETY: a live event; its setting batch completed.
        let set = unsafe { d.get_event_status(*event) }.context("vkGetEventStatus")?;
        if !set {
            return Err(Mismatch("the event the last batch set is not set".into()).into());
        }
    }
    let mut hash = Fnv1a64::new();
    for (b, expect) in buffers.iter().zip(&cpu) {
        let bytes = b.read_bytes(0, size as usize)?;
        if u32s_from_bytes(&bytes) != *expect {
            return Err(
                Mismatch("a buffer differs from the CPU reference at the end".into()).into(),
            );
        }
        hash.update(&bytes);
    }
    eprintln!(
        "{NAME}: {batches} batches in {submits} submits: {} dispatches, {} copies, {} fills, {} updates; waits: {} timeline, {} binary, {} host timeline, {} host fence, {} early, {} order; {host_writes} host writes; {events} events; timestamps: {timestamps}; results match the CPU reference",
        counts[0], counts[1], counts[2], counts[3], waits[0], waits[1], waits[2], waits[3], waits[4], waits[5]
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: hash.finish(),
    })
}
