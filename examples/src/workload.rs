//! The compute workload shared by `compute` and `multiqueue` (`shaders/compute.comp`), with its
//! CPU reference.
//!
//! Exactness: the integer part is wrapping `u32` arithmetic. The float part multiplies and adds
//! dyadic rationals with at most 14 significant bits (inputs `k/4`, `k < 1024`; scale 1.5; steps
//! of 0.5), so every intermediate value is exactly representable in `f32`: the results are the
//! same bits on every implementation, fused multiply-add or not.

use ash::vk;

use crate::{Context, Owned, Result};

/// `local_size_x` of the shader.
pub const LOCAL_SIZE: u32 = 64;
/// Dispatches over the data, each with its own `pass` push constant.
pub const PASSES: u32 = 2;
/// Bytes of push constants (`offset`, `count`, `pass`).
pub const PUSH_CONSTANT_SIZE: u32 = 12;

/// The uniform buffer (`Params` in the shader, std140).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Mixed into every element.
    pub seed: u32,
    /// Iterations of the Collatz-like loop.
    pub rounds: u32,
    /// saxpy factor.
    pub scale: f32,
    /// saxpy step: `y = (h & 255) * half_step`.
    pub half_step: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            seed: 0x5eed_1234,
            rounds: 64,
            scale: 1.5,
            half_step: 0.5,
        }
    }
}

impl Params {
    /// Size of the uniform block.
    pub const SIZE: u64 = 16;

    /// The std140 bytes of the uniform block.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.seed.to_le_bytes());
        b[4..8].copy_from_slice(&self.rounds.to_le_bytes());
        b[8..12].copy_from_slice(&self.scale.to_le_bytes());
        b[12..16].copy_from_slice(&self.half_step.to_le_bytes());
        b
    }
}

/// Initial integer data.
pub fn initial_ints(n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| i.wrapping_mul(0x9e37_79b1) ^ 0x5bd1_e995)
        .collect()
}

/// Initial float data: `(i mod 1024) / 4`.
pub fn initial_floats(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i & 1023) as f32 * 0.25).collect()
}

/// The murmur3 32-bit finaliser.
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// One dispatch of the shader on the CPU: `ints`/`floats` hold elements `offset..offset+len`.
pub fn reference_pass(
    params: &Params,
    ints: &mut [u32],
    floats: &mut [f32],
    offset: u32,
    pass: u32,
) {
    let mix = params.seed.wrapping_add(pass.wrapping_mul(0x9e37_79b9));
    for (k, (int, float)) in ints.iter_mut().zip(floats.iter_mut()).enumerate() {
        let i = offset.wrapping_add(k as u32);
        let mut x = *int ^ mix;
        let mut steps = 0u32;
        for r in 0..params.rounds {
            x = if x & 1 != 0 {
                x.wrapping_mul(3).wrapping_add(1)
            } else {
                x >> 1
            };
            if x <= 1 {
                steps = steps.wrapping_add(1);
                x = fmix32(x.wrapping_add(r).wrapping_add(i));
            }
        }
        let h = fmix32(x);
        *int = h.wrapping_add(steps);
        let y = (h & 255) as f32 * params.half_step;
        *float = params.scale * *float + y;
    }
}

/// All passes over the whole data on the CPU.
pub fn reference(params: &Params, ints: &mut [u32], floats: &mut [f32]) {
    for pass in 0..PASSES {
        reference_pass(params, ints, floats, 0, pass);
    }
}

/// Push constant bytes for one dispatch.
pub fn push_constants(offset: u32, count: u32, pass: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&offset.to_le_bytes());
    b[4..8].copy_from_slice(&count.to_le_bytes());
    b[8..12].copy_from_slice(&pass.to_le_bytes());
    b
}

/// Workgroups needed for `count` elements.
pub fn group_count(count: u32) -> u32 {
    count.div_ceil(LOCAL_SIZE)
}

/// Checks device results against the CPU reference; the error says where they first differ.
pub fn verify(
    expected_ints: &[u32],
    expected_floats: &[f32],
    ints: &[u32],
    floats: &[f32],
) -> Result<()> {
    if ints.len() != expected_ints.len() || floats.len() != expected_floats.len() {
        return Err(crate::Mismatch(format!(
            "read back {} ints and {} floats, expected {} and {}",
            ints.len(),
            floats.len(),
            expected_ints.len(),
            expected_floats.len()
        ))
        .into());
    }
    if let Some(i) = (0..ints.len()).find(|&i| ints[i] != expected_ints[i]) {
        return Err(crate::Mismatch(format!(
            "ints[{i}] = {:#010x}, CPU reference {:#010x}",
            ints[i], expected_ints[i]
        ))
        .into());
    }
    if let Some(i) =
        (0..floats.len()).find(|&i| floats[i].to_bits() != expected_floats[i].to_bits())
    {
        return Err(crate::Mismatch(format!(
            "floats[{i}] = {}, CPU reference {}",
            floats[i], expected_floats[i]
        ))
        .into());
    }
    Ok(())
}

/// Descriptor set layout, pipeline layout, pipeline and one descriptor set for `compute.comp`.
pub struct ComputePipeline<'c> {
    /// Holds the descriptor set.
    _pool: Owned<'c, vk::DescriptorPool>,
    /// The pipeline.
    pub pipeline: Owned<'c, vk::Pipeline>,
    /// Its layout (set 0 + push constants).
    pub layout: Owned<'c, vk::PipelineLayout>,
    _set_layout: Owned<'c, vk::DescriptorSetLayout>,
    /// Set 0: binding 0 = `Params`, 1 = ints, 2 = floats.
    pub set: vk::DescriptorSet,
}

impl<'c> ComputePipeline<'c> {
    /// Builds the pipeline and points its descriptor set at `params` (whole buffer) and at
    /// `storage`, where `n` ints start at offset 0 and `n` floats at `floats_offset`.
    pub fn new(
        ctx: &'c Context,
        params: vk::Buffer,
        storage: vk::Buffer,
        n: u64,
        floats_offset: u64,
    ) -> Result<Self> {
        let bindings = [
            vk::DescriptorSetLayoutBinding::default()
                .binding(0)
                .descriptor_type(vk::DescriptorType::UNIFORM_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE),
            vk::DescriptorSetLayoutBinding::default()
                .binding(1)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE),
            vk::DescriptorSetLayoutBinding::default()
                .binding(2)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE),
        ];
        let set_layout = ctx.create_descriptor_set_layout(&bindings)?;
        let push = [vk::PushConstantRange {
            stage_flags: vk::ShaderStageFlags::COMPUTE,
            offset: 0,
            size: PUSH_CONSTANT_SIZE,
        }];
        let layout = ctx.create_pipeline_layout(&[&set_layout], &push)?;
        let module = ctx.create_shader_module(crate::shaders::COMPUTE_COMP)?;
        let pipeline = ctx.create_compute_pipeline(&layout, &module)?;
        let pool = ctx.create_descriptor_pool(
            1,
            &[
                vk::DescriptorPoolSize {
                    ty: vk::DescriptorType::UNIFORM_BUFFER,
                    descriptor_count: 1,
                },
                vk::DescriptorPoolSize {
                    ty: vk::DescriptorType::STORAGE_BUFFER,
                    descriptor_count: 2,
                },
            ],
        )?;
        let set = ctx.allocate_descriptor_set(&pool, &set_layout)?;

        let params_info = [vk::DescriptorBufferInfo {
            buffer: params,
            offset: 0,
            range: Params::SIZE,
        }];
        let ints_info = [vk::DescriptorBufferInfo {
            buffer: storage,
            offset: 0,
            range: n * 4,
        }];
        let floats_info = [vk::DescriptorBufferInfo {
            buffer: storage,
            offset: floats_offset,
            range: n * 4,
        }];
        let writes = [
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(0)
                .descriptor_type(vk::DescriptorType::UNIFORM_BUFFER)
                .buffer_info(&params_info),
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(1)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&ints_info),
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(2)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&floats_info),
        ];
        // SAFETY: the set was just allocated and is not in use; the buffers are alive (caller)
        // with UNIFORM/STORAGE usage, and floats_offset is aligned to
        // minStorageBufferOffsetAlignment by the callers.
        unsafe { ctx.device.update_descriptor_sets(&writes, &[]) };
        Ok(Self {
            _pool: pool,
            pipeline,
            layout,
            _set_layout: set_layout,
            set,
        })
    }

    /// Records the [`PASSES`] dispatches over elements `offset..offset+count`, with a
    /// compute-to-compute barrier between passes.
    ///
    /// # Safety
    ///
    /// `cb` must be a command buffer of `ctx.device` in the recording state, outside a render
    /// pass, on a queue family with compute support, and the buffers bound in the descriptor
    /// set must be alive until it completes.
    pub unsafe fn record_passes(
        &self,
        ctx: &Context,
        cb: vk::CommandBuffer,
        storage: vk::Buffer,
        offset: u32,
        count: u32,
    ) {
        let d = &ctx.device;
        // SAFETY: forwarded from the caller; pipeline, layout and set belong to this device and
        // the push constant range matches the layout.
        unsafe {
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *self.pipeline);
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                *self.layout,
                0,
                &[self.set],
                &[],
            );
            for pass in 0..PASSES {
                if pass > 0 {
                    let barrier = vk::BufferMemoryBarrier::default()
                        .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                        .dst_access_mask(
                            vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE,
                        )
                        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                        .buffer(storage)
                        .offset(0)
                        .size(vk::WHOLE_SIZE);
                    d.cmd_pipeline_barrier(
                        cb,
                        vk::PipelineStageFlags::COMPUTE_SHADER,
                        vk::PipelineStageFlags::COMPUTE_SHADER,
                        vk::DependencyFlags::empty(),
                        &[],
                        &[barrier],
                        &[],
                    );
                }
                d.cmd_push_constants(
                    cb,
                    *self.layout,
                    vk::ShaderStageFlags::COMPUTE,
                    0,
                    &push_constants(offset, count, pass),
                );
                d.cmd_dispatch(cb, group_count(count), 1, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_stay_exact() {
        // Every value after all passes must be a multiple of 1/16 below 2^10: 14 significant
        // bits, exactly representable, so no rounding happened anywhere.
        let n = 4096;
        let params = Params::default();
        let mut ints = initial_ints(n);
        let mut floats = initial_floats(n);
        reference(&params, &mut ints, &mut floats);
        for f in floats {
            assert!((0.0..1024.0).contains(&f));
            assert_eq!((f * 16.0).fract(), 0.0);
        }
    }

    #[test]
    fn split_passes_equal_whole() {
        // Chunks processed separately (multiqueue) give the same data as one dispatch (compute).
        let (n, chunk) = (1000, 300);
        let params = Params::default();
        let (mut a_i, mut a_f) = (initial_ints(n), initial_floats(n));
        reference(&params, &mut a_i, &mut a_f);
        let (mut b_i, mut b_f) = (initial_ints(n), initial_floats(n));
        for (k, (ci, cf)) in b_i.chunks_mut(chunk).zip(b_f.chunks_mut(chunk)).enumerate() {
            for pass in 0..PASSES {
                reference_pass(&params, ci, cf, (k * chunk) as u32, pass);
            }
        }
        assert_eq!(a_i, b_i);
        assert_eq!(a_f, b_f);
    }
}
