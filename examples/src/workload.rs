//! The compute workload shared by `compute` and `multiqueue` (`shaders/compute.comp`), with its
//! CPU reference.
//!
//! Exactness: the integer part is wrapping `u32` arithmetic. The float part multiplies and adds
//! dyadic rationals with at most 14 significant bits (inputs `k/4`, `k < 1024`; scale 1.5; steps
//! of 0.5), so every intermediate value is exactly representable in `f32`: the results are the
//! same bits on every implementation, fused multiply-add or not.

use ash::vk;

use crate::cmd;
use crate::descriptors::Binding;
use crate::pipelines::ComputeKernel;
use crate::{
    align_up, f32_bytes, f32s_from_bytes, u32_bytes, u32s_from_bytes, Buffer, DeviceContext,
    Fnv1a64, MemoryUse, Result,
};

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

/// Checks `--elements N`.
pub fn check_elements(n: u32) -> Result<()> {
    if n == 0 || n > 1 << 24 {
        return Err(format!("--elements must be in 1..=16777216, got {n}").into());
    }
    Ok(())
}

/// Where the data of `n` elements lives in a buffer: `n` u32 at offset 0, then `n` f32 at
/// `floats_offset`.
#[derive(Clone, Copy, Debug)]
pub struct DataLayout {
    /// Elements.
    pub n: u32,
    /// Bytes of each array.
    pub bytes: u64,
    /// Start of the floats: `bytes` rounded up to the storage buffer offset alignment.
    pub floats_offset: u64,
    /// Bytes of the buffer.
    pub total: u64,
}

impl DataLayout {
    /// The layout of `n` elements on `ctx`'s device.
    pub fn new(ctx: &DeviceContext, n: u32) -> Self {
        let bytes = u64::from(n) * 4;
        let floats_offset = align_up(
            bytes,
            ctx.properties.limits.min_storage_buffer_offset_alignment,
        );
        Self {
            n,
            bytes,
            floats_offset,
            total: floats_offset + bytes,
        }
    }

    /// The ints' and the floats' byte ranges (offset, size) for elements `start..start+len`.
    pub fn ranges(&self, start: u32, len: u32) -> [(u64, u64); 2] {
        let (offset, size) = (u64::from(start) * 4, u64::from(len) * 4);
        [(offset, size), (self.floats_offset + offset, size)]
    }
}

/// The uniform buffer holding `params` (shared between `families` when they differ).
pub fn create_params_buffer<'d>(
    ctx: &'d DeviceContext,
    params: &Params,
    families: &[u32],
) -> Result<Buffer<'d>> {
    let buffer = ctx.create_buffer_shared(
        Params::SIZE,
        vk::BufferUsageFlags::UNIFORM_BUFFER,
        MemoryUse::Upload,
        families,
    )?;
    buffer.write_bytes(0, &params.to_bytes())?;
    Ok(buffer)
}

/// Writes the initial data into the mapped `buffer` as laid out by `layout` and returns it.
pub fn write_initial_data(
    buffer: &Buffer<'_>,
    layout: &DataLayout,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let ints = initial_ints(layout.n as usize);
    let floats = initial_floats(layout.n as usize);
    buffer.write_bytes(0, &u32_bytes(&ints))?;
    buffer.write_bytes(layout.floats_offset, &f32_bytes(&floats))?;
    Ok((ints, floats))
}

/// Reads the results from the mapped `buffer` (device writes made visible to the host), checks
/// them against the CPU reference run on the initial `ints` and `floats`, and returns the hash
/// of the ints' then the floats' bytes.
pub fn check_results(
    params: &Params,
    (mut ints, mut floats): (Vec<u32>, Vec<f32>),
    buffer: &Buffer<'_>,
    layout: &DataLayout,
) -> Result<u64> {
    let out_ints_bytes = buffer.read_bytes(0, layout.bytes as usize)?;
    let out_floats_bytes = buffer.read_bytes(layout.floats_offset, layout.bytes as usize)?;
    reference(params, &mut ints, &mut floats);
    verify(
        &ints,
        &floats,
        &u32s_from_bytes(&out_ints_bytes),
        &f32s_from_bytes(&out_floats_bytes),
    )?;
    let mut hash = Fnv1a64::new();
    hash.update(&out_ints_bytes);
    hash.update(&out_floats_bytes);
    Ok(hash.finish())
}

/// The pipeline of `compute.comp` with its descriptor set.
pub struct ComputePipeline<'c> {
    kernel: ComputeKernel<'c>,
}

impl<'c> ComputePipeline<'c> {
    /// Builds the pipeline and points its descriptor set (binding 0 = `Params`, 1 = ints, 2 =
    /// floats) at `params` (whole buffer) and at `storage`, laid out by `layout`.
    pub fn new(
        ctx: &'c DeviceContext,
        params: &Buffer<'_>,
        storage: &Buffer<'_>,
        layout: &DataLayout,
    ) -> Result<Self> {
        let [(ints_offset, range), (floats_offset, _)] = layout.ranges(0, layout.n);
        // floats_offset is aligned to minStorageBufferOffsetAlignment (DataLayout::new).
        let kernel = ctx.create_compute_kernel(
            crate::shaders::COMPUTE_COMP,
            PUSH_CONSTANT_SIZE,
            &[
                Binding::buffer(
                    vk::DescriptorType::UNIFORM_BUFFER,
                    vk::ShaderStageFlags::COMPUTE,
                    params,
                    0,
                    Params::SIZE,
                ),
                Binding::compute_storage(storage, ints_offset, range),
                Binding::compute_storage(storage, floats_offset, range),
            ],
        )?;
        Ok(Self { kernel })
    }

    /// Records the [`PASSES`] dispatches over elements `offset..offset+count`, with a
    /// compute-to-compute barrier between passes.
    ///
    /// # Safety
    ///
    /// `cb` must be a command buffer of `d` (the pipeline's device) in the recording state,
    /// outside a render pass, on a queue family with compute support, and the buffers bound in
    /// the descriptor set (`storage` among them) must be alive until it completes.
    pub unsafe fn record_passes(
        &self,
        d: &ash::Device,
        cb: vk::CommandBuffer,
        storage: vk::Buffer,
        offset: u32,
        count: u32,
    ) {
        // SAFETY: forwarded from the caller; the push constant bytes match the layout's range.
        unsafe {
            self.kernel.bind(d, cb);
            for pass in 0..PASSES {
                if pass > 0 {
                    cmd::buffer_barrier(
                        d,
                        cb,
                        storage,
                        cmd::COMPUTE_WRITE,
                        cmd::COMPUTE_READ_WRITE,
                    );
                }
                self.kernel
                    .push_constants(d, cb, &push_constants(offset, count, pass));
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
