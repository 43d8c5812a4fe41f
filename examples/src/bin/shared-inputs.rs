//! `shared-inputs`: frames that only read the same inputs, each writing its own output.
//!
//! A 4 MiB buffer and a 16 KiB table are uploaded once into device-local buffers through a
//! staging buffer and `vkCmdCopyBuffer`, and never mapped. Then each frame is a submit of its
//! own: it copies a 4 KiB slice of the big buffer (the copy's source: read) and runs a dispatch
//! that reads the table (a uniform buffer: read) into the frame's own output buffer. The last
//! submit has a fence; the program waits for it and checks every output against a CPU model.
//!
//! Through vkfuse with `round_robin`, the frames alternate between members. Since they only
//! read the inputs, the frames need not wait for each other, and mirrored memory copies what
//! they read of the inputs (the table, and each frame's slice: its copy's region) to each
//! member once rather than before every frame (`VKFUSE_LOG=debug` shows the bytes copied).
//!
//! With `--suballocate`, the frames' output buffers share one allocation, bound at offsets in
//! it, as suballocating programs (VMA, Zink) do: mirrored memory then copies and writes back
//! the ranges a frame's buffers are bound to, not the whole allocation.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::workload::fmix32;
use vkfuse_examples::{
    align_up, cmd, example_main, fnv1a64, pattern_bytes, u32_bytes, u32s_from_bytes, Args, Binding,
    Buffer, Context, ErrorContext as _, MemoryUse, Mismatch, Report, Result,
};

const NAME: &str = "shared-inputs";
const USAGE: &str = "\
usage: shared-inputs [--frames F] [--suballocate] [--validation]

Uploads a 4 MiB buffer and a 16 KiB uniform table once (device-local, through vkCmdCopyBuffer),
then submits F frames (default 32) one by one: each copies a 4 KiB slice of the buffer and runs
a dispatch reading the table, into the frame's own output buffer. Checks every output against
a CPU model and prints
  vkfuse-example shared-inputs device=\"<name>\" result=<fnv1a64 of the outputs>

  --frames F    1..=256
  --suballocate the output buffers share one allocation (bound at offsets in it)
  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

const BIG: u64 = 4 << 20;
const SLICE: u64 = 4096;
/// Table entries (uvec4 each, std140).
const TABLE: u32 = 1024;
/// Output words the dispatch writes per frame, after the slice.
const WORDS: u32 = 256;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// What frame `frame` writes: the slice of `big`, then the dispatch's words.
fn model(big: &[u8], table: &[u32], frame: u32) -> Vec<u8> {
    let at = slice_offset(frame) as usize;
    let mut out = big[at..at + SLICE as usize].to_vec();
    let words: Vec<u32> = (0..WORDS)
        .map(|i| {
            let e = ((i + frame * 7) % TABLE) as usize * 4;
            let t = &table[e..e + 4];
            fmix32(
                t[0] ^ t[1].wrapping_mul(3)
                    ^ t[2].wrapping_mul(5)
                    ^ t[3].wrapping_mul(7)
                    ^ frame.wrapping_mul(0x9e37_79b9),
            )
        })
        .collect();
    out.extend(u32_bytes(&words));
    out
}

/// Where frame `frame`'s slice of the big buffer starts.
fn slice_offset(frame: u32) -> u64 {
    (u64::from(frame) * 128 * 1024 + u64::from(frame % 7) * 256) % (BIG - SLICE)
}

fn run(mut args: Args) -> Result<Report> {
    let frames: u32 = args.value("--frames")?.unwrap_or(32);
    let suballocate = args.flag("--suballocate");
    args.finish()?;
    if !(1..=256).contains(&frames) {
        return Err(format!("--frames {frames}: must be 1..=256").into());
    }
    let ctx = Context::with_queue(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let big_data = pattern_bytes(0x5eed_0001, BIG as usize);
    let table_data = pattern_bytes(0x5eed_0002, TABLE as usize * 16);
    let table_words = u32s_from_bytes(&table_data);
    let read_by_copies = (
        vk::PipelineStageFlags::TRANSFER,
        vk::AccessFlags::TRANSFER_READ,
    );
    let read_by_shaders = (
        vk::PipelineStageFlags::COMPUTE_SHADER,
        vk::AccessFlags::UNIFORM_READ,
    );
    // Through staging and vkCmdCopyBuffer, even where device-local memory is host-visible:
    // the inputs are never mapped.
    let big = ctx.create_buffer_with_data(
        queue,
        vk::BufferUsageFlags::TRANSFER_SRC,
        &big_data,
        read_by_copies,
        true,
    )?;
    let table = ctx.create_buffer_with_data(
        queue,
        vk::BufferUsageFlags::UNIFORM_BUFFER,
        &table_data,
        read_by_shaders,
        true,
    )?;
    let out_size = SLICE + u64::from(WORDS) * 4;
    let usage = vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::STORAGE_BUFFER;
    let outputs = if suballocate {
        Outputs::Shared(Suballocated::new(&ctx, frames, out_size, usage)?)
    } else {
        Outputs::Own(
            (0..frames)
                .map(|_| ctx.create_buffer(out_size, usage, MemoryUse::Readback))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let bindings = |out: vk::Buffer| {
        [
            Binding::buffer(
                vk::DescriptorType::UNIFORM_BUFFER,
                vk::ShaderStageFlags::COMPUTE,
                &table,
                0,
                vk::WHOLE_SIZE,
            ),
            Binding::compute_storage_handle(out, SLICE, u64::from(WORDS) * 4),
        ]
    };
    let kernel = ctx.create_compute_kernel(
        vkfuse_examples::shaders::LOOKUP_COMP,
        8,
        &bindings(outputs.handle(0)),
    )?;
    // Frame 0 uses the kernel's own set; the others sets of identically defined layouts.
    let sets = (1..frames as usize)
        .map(|f| ctx.create_descriptor_set(&bindings(outputs.handle(f))))
        .collect::<Result<Vec<_>>>()?;
    let pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let cbs = ctx.allocate_command_buffers(&pool, vk::CommandBufferLevel::PRIMARY, frames)?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    for (f, &cb) in (0u32..).zip(&cbs) {
        let out = outputs.handle(f as usize);
        let set = match f {
            0 => kernel.descriptors.set,
            _ => sets[f as usize - 1].set,
        };
        // SAFETY: fresh command buffers of this device on a compute queue; the buffers, sets
        // and kernel live until the idle guard waited for the device.
        unsafe {
            cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            d.cmd_copy_buffer(
                cb,
                big.handle,
                out,
                &[vk::BufferCopy {
                    src_offset: slice_offset(f),
                    dst_offset: 0,
                    size: SLICE,
                }],
            );
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *kernel.pipeline);
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                *kernel.layout,
                0,
                &[set],
                &[],
            );
            kernel.push_constants(d, cb, &u32_bytes(&[f, WORDS]));
            d.cmd_dispatch(cb, WORDS.div_ceil(64), 1, 1);
            cmd::memory_barrier(d, cb, cmd::TRANSFER_WRITE, cmd::HOST_READ);
            cmd::memory_barrier(d, cb, cmd::COMPUTE_WRITE, cmd::HOST_READ);
            cmd::end(d, cb)?;
        }
    }
    for (f, cb) in cbs.iter().enumerate() {
        let last = f + 1 == cbs.len();
        let submit = vk::SubmitInfo::default().command_buffers(std::slice::from_ref(cb));
        let signal = if last { *fence } else { vk::Fence::null() };
        // SAFETY: recorded command buffers of this device, each submitted once; the fence is
        // unsignalled and covers every earlier submit.
        unsafe { d.queue_submit(queue.handle, &[submit], signal) }.context("vkQueueSubmit")?;
    }
    ctx.wait_fence(&fence)?;
    let mut bytes = Vec::new();
    for f in 0..frames {
        let got = outputs.read(f as usize, out_size as usize)?;
        if got != model(&big_data, &table_words, f) {
            return Err(Mismatch(format!("frame {f}'s output differs from the CPU model")).into());
        }
        bytes.extend(got);
    }
    eprintln!(
        "{NAME}: {frames} frames, outputs equal to the CPU model{}",
        if suballocate {
            " (outputs in one allocation)"
        } else {
            ""
        }
    );
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&bytes),
    })
}

/// The frames' output buffers: an allocation each, or all in one (`--suballocate`).
enum Outputs<'d> {
    Own(Vec<Buffer<'d>>),
    Shared(Suballocated<'d>),
}

impl Outputs<'_> {
    fn handle(&self, f: usize) -> vk::Buffer {
        match self {
            Outputs::Own(v) => v[f].handle,
            Outputs::Shared(s) => s.buffers[f],
        }
    }

    fn read(&self, f: usize, len: usize) -> Result<Vec<u8>> {
        match self {
            Outputs::Own(v) => v[f].read_bytes(0, len),
            Outputs::Shared(s) => s.read(f, len),
        }
    }
}

/// Buffers bound at offsets of one host-visible allocation, mapped for good.
struct Suballocated<'d> {
    device: &'d ash::Device,
    memory: vk::DeviceMemory,
    buffers: Vec<vk::Buffer>,
    /// Bytes between the starts of consecutive buffers.
    stride: u64,
    mapped: *const u8,
}

impl Drop for Suballocated<'_> {
    fn drop(&mut self) {
        // SAFETY: handles created from `device` and destroyed once, after the work that used
        // them completed (the idle guard); freeing null memory is a no-op, and freeing the
        // memory unmaps it.
        unsafe {
            for b in &self.buffers {
                self.device.destroy_buffer(*b, None);
            }
            self.device.free_memory(self.memory, None);
        }
    }
}

impl<'d> Suballocated<'d> {
    fn new(ctx: &'d Context, count: u32, size: u64, usage: vk::BufferUsageFlags) -> Result<Self> {
        let d = &ctx.device;
        let mut out = Suballocated {
            device: d,
            memory: vk::DeviceMemory::null(),
            buffers: Vec::new(),
            stride: 0,
            mapped: std::ptr::null(),
        };
        let info = vk::BufferCreateInfo::default().size(size).usage(usage);
        for _ in 0..count {
            // SAFETY: a plain create call with a fully initialised create info.
            let b = unsafe { d.create_buffer(&info, None) }.context("vkCreateBuffer")?;
            out.buffers.push(b);
        }
        // SAFETY: a buffer just created from this device (all have the same create info).
        let req = unsafe { d.get_buffer_memory_requirements(out.buffers[0]) };
        out.stride = align_up(req.size, req.alignment);
        let memory_type = ctx.memory_type_for(req.memory_type_bits, MemoryUse::Readback)?;
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(out.stride * u64::from(count))
            .memory_type_index(memory_type);
        // SAFETY: a type of this device allowed for the buffers; room for all of them.
        out.memory = unsafe { d.allocate_memory(&alloc, None) }.context("vkAllocateMemory")?;
        for (i, b) in (0u64..).zip(&out.buffers) {
            // SAFETY: offsets are multiples of the alignment, each buffer fits its stride.
            unsafe { d.bind_buffer_memory(*b, out.memory, i * out.stride) }
                .context("vkBindBufferMemory")?;
        }
        // SAFETY: host-visible memory (a Readback type), not mapped yet, whole range.
        let p = unsafe { d.map_memory(out.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
            .context("vkMapMemory")?;
        out.mapped = p.cast();
        Ok(out)
    }

    /// The first `len` bytes of buffer `f`, after the device wrote them.
    fn read(&self, f: usize, len: usize) -> Result<Vec<u8>> {
        let range = vk::MappedMemoryRange::default()
            .memory(self.memory)
            .offset(0)
            .size(vk::WHOLE_SIZE);
        // SAFETY: the memory is mapped; the whole range is always a valid invalidate range.
        unsafe { self.device.invalidate_mapped_memory_ranges(&[range]) }
            .context("vkInvalidateMappedMemoryRanges")?;
        // SAFETY: buffer `f` lies at `f * stride` of the mapping and holds at least `len` bytes;
        // the device finished writing it (the caller waited for the fence).
        let bytes =
            unsafe { std::slice::from_raw_parts(self.mapped.add(f * self.stride as usize), len) };
        Ok(bytes.to_vec())
    }
}
