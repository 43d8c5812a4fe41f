//! Narrowed sliced indirect dispatches (issue 4).
//!
//! An indirect dispatch whose group counts the device writes during the batch is split by
//! workgroup slices (`split.rs`, `vkfuse_shader::slice`). Launching the whole grid on every
//! member, with the workgroups outside a member's slice returning at once, costs each
//! member a launch of every workgroup: on lavapipe an empty workgroup of a small kernel
//! costs about what a full one does. A narrowed dispatch launches only the slice's
//! workgroups instead:
//!
//! - at the start of the member's command buffer for the round, the counts are copied from
//!   the application's buffer (every indirect buffer a member creates may be copied from
//!   where dispatches split: `Cx::buffer_usage`) into a slot of vkfuse's own buffer
//!   ([`Scratch`]), and one invocation of vkfuse's own pipeline ([`Narrower`],
//!   `vkfuse_shader::slice::narrow_args`) writes beside them the counts with x narrowed to
//!   the member's slice (`narrowed_count`: the workgroups whose id along x, modulo 16, lies
//!   in its parts `lo..hi`);
//! - the dispatch then runs the variant with `NARROW` set, indirectly from those counts:
//!   its `WorkgroupId.x` and `GlobalInvocationId.x` are those of the workgroup it stands
//!   for.
//!
//! Every member of a round narrows or none does (the whole-grid variant cuts a different
//! dimension); a dispatch whose shader reads `gl_NumWorkGroups.x`, or whose rewrite could not
//! redirect the built-ins, runs the whole grid as before. `VKFUSE_FAULT=narrow:M` makes
//! member M fail to make its pipeline (for tests: rounds then launch the whole grid).
//! Objects are made on first use: the pipeline once per member, a scratch buffer per
//! command buffer of the split pools, destroyed with them (`exec.rs`, `Splits`).

use ash::vk;
use ash::vk::Handle as _;

use crate::object::{Device, MemberDevice};
use vkfuse_shader::slice::NARROW_SLOT_WORDS;

/// Slots of a command buffer's scratch: the sliced indirect dispatches one round narrows
/// (each is a round of its own, so one is used; more than this launch the whole grid).
pub const SLOTS: u32 = 4;

/// Bytes per slot: the counts copied in, then the narrowed counts.
const SLOT_BYTES: u64 = NARROW_SLOT_WORDS as u64 * 4;

/// Where slot `slot`'s narrowed counts are in the scratch buffer.
pub fn args_offset(slot: u32) -> u64 {
    u64::from(slot) * SLOT_BYTES + 16
}

fn check(r: vk::Result, what: &str) -> Result<(), String> {
    if r == vk::Result::SUCCESS {
        Ok(())
    } else {
        Err(format!("{what}: {r:?}"))
    }
}

/// A member's pipeline that writes narrowed group counts, and its layouts.
#[derive(Clone, Copy)]
pub struct Narrower {
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
}

impl Narrower {
    /// Makes member `md`'s pipeline.
    pub fn new(md: &MemberDevice) -> Result<Narrower, String> {
        if crate::config::Config::get().fault("narrow", md.index) {
            return Err("VKFUSE_FAULT".into());
        }
        let f = &md.fns;
        let (Some(set_f), Some(layout_f), Some(module_f), Some(pipe_f), Some(drop_module)) = (
            f.create_descriptor_set_layout,
            f.create_pipeline_layout,
            f.create_shader_module,
            f.create_compute_pipelines,
            f.destroy_shader_module,
        ) else {
            return Err("missing entry points".into());
        };
        let mut n = Narrower {
            set_layout: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
        };
        let binding = vk::DescriptorSetLayoutBinding {
            binding: 0,
            descriptor_type: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 1,
            stage_flags: vk::ShaderStageFlags::COMPUTE,
            ..Default::default()
        };
        let sci =
            vk::DescriptorSetLayoutCreateInfo::default().bindings(std::slice::from_ref(&binding));
        let made = (|| {
            // SAFETY: valid create infos on the member's device; outputs written once each.
            unsafe {
                check(
                    set_f(md.handle, &sci, std::ptr::null(), &mut n.set_layout),
                    "vkCreateDescriptorSetLayout",
                )?;
                let range = vk::PushConstantRange {
                    stage_flags: vk::ShaderStageFlags::COMPUTE,
                    offset: 0,
                    size: 12,
                };
                let lci = vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(std::slice::from_ref(&n.set_layout))
                    .push_constant_ranges(std::slice::from_ref(&range));
                check(
                    layout_f(md.handle, &lci, std::ptr::null(), &mut n.layout),
                    "vkCreatePipelineLayout",
                )?;
                let words = vkfuse_shader::slice::narrow_args();
                let mci = vk::ShaderModuleCreateInfo::default().code(&words);
                let mut module = vk::ShaderModule::null();
                check(
                    module_f(md.handle, &mci, std::ptr::null(), &mut module),
                    "vkCreateShaderModule",
                )?;
                let stage = vk::PipelineShaderStageCreateInfo::default()
                    .stage(vk::ShaderStageFlags::COMPUTE)
                    .module(module)
                    .name(c"main");
                let pci = vk::ComputePipelineCreateInfo::default()
                    .stage(stage)
                    .layout(n.layout);
                let r = pipe_f(
                    md.handle,
                    vk::PipelineCache::null(),
                    1,
                    &pci,
                    std::ptr::null(),
                    &mut n.pipeline,
                );
                drop_module(md.handle, module, std::ptr::null());
                check(r, "vkCreateComputePipelines")
            }
        })();
        match made {
            Ok(()) => Ok(n),
            Err(e) => {
                n.destroy(md);
                Err(e)
            }
        }
    }

    /// Destroys what was made (no pending work uses it).
    pub fn destroy(&self, md: &MemberDevice) {
        let f = &md.fns;
        // SAFETY: our objects on the member (null ones are ignored), no longer used.
        unsafe {
            if let (false, Some(g)) = (self.pipeline.is_null(), f.destroy_pipeline) {
                g(md.handle, self.pipeline, std::ptr::null());
            }
            if let (false, Some(g)) = (self.layout.is_null(), f.destroy_pipeline_layout) {
                g(md.handle, self.layout, std::ptr::null());
            }
            if let (false, Some(g)) = (self.set_layout.is_null(), f.destroy_descriptor_set_layout) {
                g(md.handle, self.set_layout, std::ptr::null());
            }
        }
    }
}

/// A command buffer's slots: a buffer of vkfuse's own and the descriptor set naming it.
#[derive(Clone, Copy)]
pub struct Scratch {
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    /// Where the memory is mapped (host-visible and coherent memory, mapped for good), as
    /// an address; 0 where it is not host-visible.
    mapped: usize,
}

impl Scratch {
    /// Makes a scratch buffer of [`SLOTS`] slots on member `md` for `n`'s pipeline.
    pub fn new(d: &Device, md: &MemberDevice, n: &Narrower) -> Result<Scratch, String> {
        let f = &md.fns;
        let pm = d.physical().member(md.index).ok_or("no physical device")?;
        let (
            Some(buffer_f),
            Some(req_f),
            Some(alloc_f),
            Some(bind_f),
            Some(pool_f),
            Some(sets_f),
            Some(write_f),
            Some(props_f),
        ) = (
            f.create_buffer,
            f.get_buffer_memory_requirements,
            f.allocate_memory,
            f.bind_buffer_memory,
            f.create_descriptor_pool,
            f.allocate_descriptor_sets,
            f.update_descriptor_sets,
            pm.fns.get_physical_device_memory_properties,
        )
        else {
            return Err("missing entry points".into());
        };
        let mut s = Scratch {
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            pool: vk::DescriptorPool::null(),
            set: vk::DescriptorSet::null(),
            mapped: 0,
        };
        let size = u64::from(SLOTS) * SLOT_BYTES;
        let made = (|| {
            // SAFETY: valid create infos on the member's device, its physical device's
            // properties; each output written once.
            unsafe {
                let bci = vk::BufferCreateInfo {
                    size,
                    usage: vk::BufferUsageFlags::STORAGE_BUFFER
                        | vk::BufferUsageFlags::INDIRECT_BUFFER
                        | vk::BufferUsageFlags::TRANSFER_DST,
                    ..Default::default()
                };
                check(
                    buffer_f(md.handle, &bci, std::ptr::null(), &mut s.buffer),
                    "vkCreateBuffer",
                )?;
                let mut req = vk::MemoryRequirements::default();
                req_f(md.handle, s.buffer, &mut req);
                let mut props = vk::PhysicalDeviceMemoryProperties::default();
                props_f(pm.handle, &mut props);
                // Host-visible and coherent memory where there is some (the counts are read
                // back to time the round: `group_counts`), device-local where possible.
                let allowed = |t: &u32| req.memory_type_bits & (1 << *t) != 0;
                let has = |t: u32, f: vk::MemoryPropertyFlags| {
                    props.memory_types[t as usize].property_flags.contains(f)
                };
                let host =
                    vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
                let local = vk::MemoryPropertyFlags::DEVICE_LOCAL;
                let types = 0..props.memory_type_count.min(vk::MAX_MEMORY_TYPES as u32);
                let ty = [host | local, host, local, vk::MemoryPropertyFlags::empty()]
                    .into_iter()
                    .find_map(|f| types.clone().filter(allowed).find(|t| has(*t, f)))
                    .ok_or("no memory type for a storage and indirect buffer")?;
                let ai = vk::MemoryAllocateInfo {
                    allocation_size: req.size,
                    memory_type_index: ty,
                    ..Default::default()
                };
                check(
                    alloc_f(md.handle, &ai, std::ptr::null(), &mut s.memory),
                    "vkAllocateMemory",
                )?;
                check(
                    bind_f(md.handle, s.buffer, s.memory, 0),
                    "vkBindBufferMemory",
                )?;
                if let (true, Some(map_f)) = (has(ty, host), f.map_memory) {
                    let mut p = std::ptr::null_mut();
                    let r = map_f(
                        md.handle,
                        s.memory,
                        0,
                        vk::WHOLE_SIZE,
                        vk::MemoryMapFlags::empty(),
                        &mut p,
                    );
                    if r == vk::Result::SUCCESS {
                        s.mapped = p as usize;
                    }
                }
                let size_of = vk::DescriptorPoolSize {
                    ty: vk::DescriptorType::STORAGE_BUFFER,
                    descriptor_count: 1,
                };
                let pci = vk::DescriptorPoolCreateInfo::default()
                    .max_sets(1)
                    .pool_sizes(std::slice::from_ref(&size_of));
                check(
                    pool_f(md.handle, &pci, std::ptr::null(), &mut s.pool),
                    "vkCreateDescriptorPool",
                )?;
                let sai = vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(s.pool)
                    .set_layouts(std::slice::from_ref(&n.set_layout));
                check(
                    sets_f(md.handle, &sai, &mut s.set),
                    "vkAllocateDescriptorSets",
                )?;
                let info = vk::DescriptorBufferInfo {
                    buffer: s.buffer,
                    offset: 0,
                    range: vk::WHOLE_SIZE,
                };
                let write = vk::WriteDescriptorSet::default()
                    .dst_set(s.set)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(std::slice::from_ref(&info));
                write_f(md.handle, 1, &write, 0, std::ptr::null());
                Ok::<(), String>(())
            }
        })();
        match made {
            Ok(()) => Ok(s),
            Err(e) => {
                s.destroy(md);
                Err(e)
            }
        }
    }

    /// The buffer the narrowed counts are in.
    pub fn buffer(&self) -> vk::Buffer {
        self.buffer
    }

    /// The workgroups the narrowed dispatches of slots `0..slots` ran, read back once the
    /// command buffer finished; `None` where the memory is not host-visible.
    pub fn group_counts(&self, slots: u32) -> Option<u64> {
        if self.mapped == 0 {
            return None;
        }
        let mut sum = 0u64;
        for slot in 0..slots.min(SLOTS) {
            let at = self.mapped + args_offset(slot) as usize;
            let mut c = [0u32; 3];
            for (k, v) in c.iter_mut().enumerate() {
                // SAFETY: inside the mapped buffer of SLOTS slots; coherent memory the
                // finished command buffer wrote (its writes made visible to the host).
                *v = unsafe { std::ptr::read_volatile((at as *const u32).add(k)) };
            }
            sum += c.iter().map(|n| u64::from(*n)).product::<u64>();
        }
        Some(sum)
    }

    /// Whether the counts can be read back ([`Scratch::group_counts`]).
    pub fn readable(&self) -> bool {
        self.mapped != 0
    }

    /// Destroys what was made (no pending work uses it).
    pub fn destroy(&self, md: &MemberDevice) {
        let f = &md.fns;
        // SAFETY: our objects on the member (null ones are ignored), no longer used; the set
        // goes with its pool.
        unsafe {
            if let (false, Some(g)) = (self.pool.is_null(), f.destroy_descriptor_pool) {
                g(md.handle, self.pool, std::ptr::null());
            }
            if let (false, Some(g)) = (self.buffer.is_null(), f.destroy_buffer) {
                g(md.handle, self.buffer, std::ptr::null());
            }
            // Freeing the memory unmaps it.
            if let (false, Some(g)) = (self.memory.is_null(), f.free_memory) {
                g(md.handle, self.memory, std::ptr::null());
            }
        }
    }
}

/// One dispatch a round narrows: its slot, the member's buffer and offset of its group
/// counts, and the member's parts `lo..hi`.
pub struct Narrowed {
    pub slot: u32,
    pub counts: (vk::Buffer, u64),
    pub parts: (u32, u32),
}

/// Records, into `cb` of `md`, the narrowed counts of `list` into `s`'s slots: every write
/// before made visible to the copy, the counts copied in, `n`'s pipeline run once per
/// dispatch, and its writes made visible to indirect reads. Application state bound after
/// this is not disturbed (the round's replay binds its own).
///
/// # Safety
/// `cb` is a command buffer of `md` being recorded, outside a render pass; the buffers of
/// `list` are `md`'s and live.
pub unsafe fn record_args(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    (n, s): (&Narrower, &Scratch),
    list: &[Narrowed],
) -> Result<(), vk::Result> {
    if list.is_empty() {
        return Ok(());
    }
    let f = &md.fns;
    let missing = crate::guard::missing;
    let (Some(barrier), Some(copy), Some(bind), Some(sets), Some(push), Some(dispatch)) = (
        f.cmd_pipeline_barrier,
        f.cmd_copy_buffer,
        f.cmd_bind_pipeline,
        f.cmd_bind_descriptor_sets,
        f.cmd_push_constants,
        f.cmd_dispatch,
    ) else {
        return Err(missing("the commands of a narrowed dispatch"));
    };
    let global = |src: (vk::PipelineStageFlags, vk::AccessFlags),
                  dst: (vk::PipelineStageFlags, vk::AccessFlags)| {
        let b = vk::MemoryBarrier {
            src_access_mask: src.1,
            dst_access_mask: dst.1,
            ..Default::default()
        };
        // SAFETY: caller contract; one memory barrier.
        unsafe {
            barrier(
                cb,
                src.0,
                dst.0,
                vk::DependencyFlags::empty(),
                1,
                &b,
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
            )
        }
    };
    // SAFETY: caller contract; our pipeline, layout, set and buffer.
    unsafe {
        global(
            (
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::AccessFlags::MEMORY_WRITE,
            ),
            (
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ,
            ),
        );
        for d in list {
            let region = vk::BufferCopy {
                src_offset: d.counts.1,
                dst_offset: u64::from(d.slot) * SLOT_BYTES,
                size: 12,
            };
            copy(cb, d.counts.0, s.buffer, 1, &region);
        }
        global(
            (
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
            ),
            (
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE,
            ),
        );
        bind(cb, vk::PipelineBindPoint::COMPUTE, n.pipeline);
        sets(
            cb,
            vk::PipelineBindPoint::COMPUTE,
            n.layout,
            0,
            1,
            &s.set,
            0,
            std::ptr::null(),
        );
        for d in list {
            let values = [d.slot * NARROW_SLOT_WORDS, d.parts.0, d.parts.1];
            push(
                cb,
                n.layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                12,
                values.as_ptr().cast(),
            );
            dispatch(cb, 1, 1, 1);
        }
        // To the indirect dispatches, and to the host, which reads the counts back.
        global(
            (
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::AccessFlags::SHADER_WRITE,
            ),
            (
                vk::PipelineStageFlags::DRAW_INDIRECT | vk::PipelineStageFlags::HOST,
                vk::AccessFlags::INDIRECT_COMMAND_READ | vk::AccessFlags::HOST_READ,
            ),
        );
    }
    Ok(())
}
