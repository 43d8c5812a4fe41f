//! `ignored-handles`: handle members that Vulkan ignores in the state the application gives,
//! filled with values that are not handles. A driver must not read them, and neither may a
//! layer or vkfuse translating handles for its members:
//!
//! - `VkDescriptorUpdateTemplateCreateInfo::pipelineLayout` of a descriptor-set template;
//! - `VkComputePipelineCreateInfo::basePipelineHandle` without `DERIVATIVE`;
//! - `VkCommandBufferInheritanceInfo::renderPass`/`framebuffer` without
//!   `RENDER_PASS_CONTINUE`;
//! - `VkWriteDescriptorSet::pImageInfo`/`pTexelBufferView` for a buffer descriptor;
//! - `VkDescriptorSetLayoutBinding::pImmutableSamplers` of a storage-buffer binding.
//!
//! Two descriptor sets (one written through the template, one with vkUpdateDescriptorSets)
//! point at two zeroed buffers that `shaders/accumulate.comp` updates, from a secondary
//! command buffer; the primary names no buffer. The buffers are checked against the CPU and
//! hashed.

use std::process::ExitCode;

use ash::vk;
use ash::vk::Handle as _;
use vkfuse_examples::hash::fnv1a64;
use vkfuse_examples::resources::MemoryUse;
use vkfuse_examples::{
    cmd, example_main, shaders, u32s_from_bytes, Args, Context, ErrorContext as _, Mismatch,
    Report, Result,
};

const NAME: &str = "ignored-handles";
const USAGE: &str = "\
usage: ignored-handles [--validation]

Creates objects whose ignored handle members hold values that are not handles, runs
shaders/accumulate.comp over two buffers through them, checks the results against the CPU and
prints
  vkfuse-example ignored-handles device=\"<name>\" result=<fnv1a64 of both buffers>

  --validation  enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                exit code 3 if it reports errors or warnings";

/// Not a handle: odd, so not even a pointer a driver could follow by accident.
const NOT_A_HANDLE: u64 = 0xdead_beef_0bad_f00d;
const ELEMENTS: u32 = 256;
const SEEDS: [u32; 2] = [17, 29];

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

/// `accumulate.comp` on the CPU, one dispatch over zeroed data.
fn reference(seed: u32) -> Vec<u32> {
    let fmix = |mut h: u32| {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    };
    (0..ELEMENTS)
        .map(|i| fmix(seed.wrapping_mul(0x9e37_79b9).wrapping_add(i)))
        .collect()
}

fn run(args: Args) -> Result<Report> {
    args.finish()?;
    // Vulkan 1.2 (`timeline`): descriptor update templates are core from 1.1.
    let ctx = Context::with_timeline(NAME, args.validation, vk::QueueFlags::COMPUTE)?;
    let d = &ctx.device;
    let queue = ctx.queue();
    let size = u64::from(ELEMENTS) * 4;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST;
    let buffers = [
        ctx.create_buffer(size, usage, MemoryUse::Readback)?,
        ctx.create_buffer(size, usage, MemoryUse::Readback)?,
    ];
    for b in &buffers {
        b.write_bytes(0, &vec![0; size as usize])?;
    }

    let not_samplers = [vk::Sampler::from_raw(NOT_A_HANDLE)];
    let binding = vk::DescriptorSetLayoutBinding {
        binding: 0,
        descriptor_type: vk::DescriptorType::STORAGE_BUFFER,
        descriptor_count: 1,
        stage_flags: vk::ShaderStageFlags::COMPUTE,
        // Read only for sampler descriptors.
        p_immutable_samplers: not_samplers.as_ptr(),
        ..Default::default()
    };
    let set_layout = ctx.create_descriptor_set_layout(&[binding])?;
    let push = [vk::PushConstantRange {
        stage_flags: vk::ShaderStageFlags::COMPUTE,
        offset: 0,
        size: 8,
    }];
    let layout = ctx.create_pipeline_layout(&[&set_layout], &push)?;
    let module = ctx.create_shader_module(shaders::ACCUMULATE_COMP)?;
    let stage = vk::PipelineShaderStageCreateInfo::default()
        .stage(vk::ShaderStageFlags::COMPUTE)
        .module(module.handle())
        .name(c"main");
    let info = vk::ComputePipelineCreateInfo {
        stage,
        layout: layout.handle(),
        // Read only with VK_PIPELINE_CREATE_DERIVATIVE_BIT.
        base_pipeline_handle: vk::Pipeline::from_raw(NOT_A_HANDLE),
        base_pipeline_index: -1,
        ..Default::default()
    };
    // SAFETY: module and layout belong to this device; basePipelineHandle is ignored.
    let created = unsafe { d.create_compute_pipelines(vk::PipelineCache::null(), &[info], None) }
        .map_err(|(_, e)| e)
        .context("vkCreateComputePipelines")?;
    let pipeline = created
        .first()
        .copied()
        .ok_or("vkCreateComputePipelines returned no pipeline")?;
    // SAFETY: created above, owned once.
    let pipeline = unsafe { ctx.own(pipeline) };

    let pool = ctx.create_descriptor_pool(
        2,
        &[vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 2,
        }],
    )?;
    let sets = [
        ctx.allocate_descriptor_set(&pool, &set_layout)?,
        ctx.allocate_descriptor_set(&pool, &set_layout)?,
    ];

    // Set 0 through a descriptor-set template: its pipelineLayout is read only for push
    // descriptor templates.
    let entry = vk::DescriptorUpdateTemplateEntry {
        dst_binding: 0,
        dst_array_element: 0,
        descriptor_count: 1,
        descriptor_type: vk::DescriptorType::STORAGE_BUFFER,
        offset: 0,
        stride: std::mem::size_of::<vk::DescriptorBufferInfo>(),
    };
    let template_info = vk::DescriptorUpdateTemplateCreateInfo {
        descriptor_update_entry_count: 1,
        p_descriptor_update_entries: &entry,
        template_type: vk::DescriptorUpdateTemplateType::DESCRIPTOR_SET,
        descriptor_set_layout: set_layout.handle(),
        pipeline_bind_point: vk::PipelineBindPoint::COMPUTE,
        pipeline_layout: vk::PipelineLayout::from_raw(NOT_A_HANDLE),
        set: 0,
        ..Default::default()
    };
    // SAFETY: the set layout belongs to this device; pipelineLayout is ignored.
    let template = unsafe { d.create_descriptor_update_template(&template_info, None) }
        .context("vkCreateDescriptorUpdateTemplate")?;
    // SAFETY: created above, owned once.
    let template = unsafe { ctx.own(template) };
    let info0 = vk::DescriptorBufferInfo {
        buffer: buffers[0].handle,
        offset: 0,
        range: vk::WHOLE_SIZE,
    };
    // SAFETY: the data is laid out as the template's one entry says.
    unsafe {
        d.update_descriptor_set_with_template(
            sets[0],
            template.handle(),
            (&info0 as *const vk::DescriptorBufferInfo).cast(),
        )
    };

    // Set 1 with vkUpdateDescriptorSets: pImageInfo and pTexelBufferView are read only for
    // image and texel buffer descriptors.
    let info1 = vk::DescriptorBufferInfo {
        buffer: buffers[1].handle,
        offset: 0,
        range: vk::WHOLE_SIZE,
    };
    let write = vk::WriteDescriptorSet {
        dst_set: sets[1],
        dst_binding: 0,
        descriptor_count: 1,
        descriptor_type: vk::DescriptorType::STORAGE_BUFFER,
        p_image_info: NOT_A_HANDLE as usize as *const vk::DescriptorImageInfo,
        p_buffer_info: &info1,
        p_texel_buffer_view: NOT_A_HANDLE as usize as *const vk::BufferView,
        ..Default::default()
    };
    // SAFETY: set and buffer belong to this device; the other arrays are ignored.
    unsafe { d.update_descriptor_sets(&[write], &[]) };

    let cmd_pool = ctx.create_command_pool(queue.family, vk::CommandPoolCreateFlags::empty())?;
    let primary = ctx.allocate_primary(&cmd_pool)?;
    let secondary = ctx
        .allocate_command_buffers(&cmd_pool, vk::CommandBufferLevel::SECONDARY, 1)?
        .first()
        .copied()
        .ok_or("vkAllocateCommandBuffers returned no command buffer")?;
    let fence = ctx.create_fence(false)?;
    let _idle = ctx.idle_guard();
    // renderPass and framebuffer are read only with RENDER_PASS_CONTINUE.
    let inheritance = vk::CommandBufferInheritanceInfo {
        render_pass: vk::RenderPass::from_raw(NOT_A_HANDLE),
        framebuffer: vk::Framebuffer::from_raw(NOT_A_HANDLE),
        ..Default::default()
    };
    let begin = vk::CommandBufferBeginInfo {
        flags: vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT,
        p_inheritance_info: &inheritance,
        ..Default::default()
    };
    // SAFETY: command buffers of this device in the initial state; every handle recorded lives
    // until the fence below signalled.
    unsafe {
        d.begin_command_buffer(secondary, &begin)
            .context("vkBeginCommandBuffer (secondary)")?;
        d.cmd_bind_pipeline(secondary, vk::PipelineBindPoint::COMPUTE, pipeline.handle());
        for (set, seed) in sets.iter().zip(SEEDS) {
            d.cmd_bind_descriptor_sets(
                secondary,
                vk::PipelineBindPoint::COMPUTE,
                layout.handle(),
                0,
                &[*set],
                &[],
            );
            let pc = [seed, ELEMENTS];
            let bytes: Vec<u8> = pc.iter().flat_map(|v| v.to_le_bytes()).collect();
            d.cmd_push_constants(
                secondary,
                layout.handle(),
                vk::ShaderStageFlags::COMPUTE,
                0,
                &bytes,
            );
            d.cmd_dispatch(secondary, ELEMENTS.div_ceil(64), 1, 1);
        }
        d.end_command_buffer(secondary)
            .context("vkEndCommandBuffer (secondary)")?;
        // The primary names no buffer: the buffers reach the batch only through the
        // descriptor sets bound in the secondary (what vkfuse's access sets must trace).
        cmd::begin(d, primary, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        d.cmd_execute_commands(primary, &[secondary]);
        cmd::memory_barrier(d, primary, cmd::COMPUTE_WRITE, cmd::HOST_READ);
        cmd::end(d, primary)?;
        ctx.submit(queue.handle, &[primary], &fence)?;
    }
    ctx.wait_fence(&fence)?;

    let mut all = Vec::new();
    for (b, seed) in buffers.iter().zip(SEEDS) {
        let bytes = b.read_bytes(0, size as usize)?;
        let got = u32s_from_bytes(&bytes);
        let want = reference(seed);
        if got != want {
            return Err(Mismatch(format!(
                "buffer of seed {seed}: {:?}.. instead of {:?}..",
                &got[..4],
                &want[..4]
            ))
            .into());
        }
        all.extend(bytes);
    }
    eprintln!("{NAME}: both buffers match the CPU reference");
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash: fnv1a64(&all),
    })
}
