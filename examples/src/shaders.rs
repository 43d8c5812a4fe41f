//! SPIR-V of the shaders in `examples/shaders/`, compiled by `build.rs`.
//!
//! `include_bytes!` data is only byte-aligned; [`crate::resources::spirv_words`] copies it into
//! a `Vec<u32>` before it reaches Vulkan.

macro_rules! spirv {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".spv"))
    };
}

/// `compute.comp`: the integer + float workload of `compute` and `multiqueue`.
pub const COMPUTE_COMP: &[u8] = spirv!("compute.comp");
/// `accumulate.comp`: the order-dependent update of `multithread`.
pub const ACCUMULATE_COMP: &[u8] = spirv!("accumulate.comp");
/// `mix.comp`: one dependent step of `random-batches`.
pub const MIX_COMP: &[u8] = spirv!("mix.comp");
/// `lookup.comp`: one frame of `shared-inputs`, reading a uniform table.
pub const LOOKUP_COMP: &[u8] = spirv!("lookup.comp");
/// `image-chain.comp`: one round of `image-chain`, storage image to storage image.
pub const IMAGE_CHAIN_COMP: &[u8] = spirv!("image-chain.comp");
/// `counter.comp`: the atomic counter of `bench-record`.
pub const COUNTER_COMP: &[u8] = spirv!("counter.comp");
/// `offscreen.vert`.
pub const OFFSCREEN_VERT: &[u8] = spirv!("offscreen.vert");
/// `offscreen.frag`.
pub const OFFSCREEN_FRAG: &[u8] = spirv!("offscreen.frag");
/// `offscreen-storage.frag`: `offscreen --storage`, colour masks from a read-only storage
/// buffer.
pub const OFFSCREEN_STORAGE_FRAG: &[u8] = spirv!("offscreen-storage.frag");
/// `rect.vert`: push-constant rectangle of `bench-frame`.
pub const RECT_VERT: &[u8] = spirv!("rect.vert");
/// `rect.frag`: push-constant colour of `bench-frame`.
pub const RECT_FRAG: &[u8] = spirv!("rect.frag");
/// `saxpy.comp`: `kernels --kernel saxpy`.
pub const SAXPY_COMP: &[u8] = spirv!("saxpy.comp");
/// `saxpy-checked.comp`: `kernels --kernel saxpy --checked` (reads `gl_NumWorkGroups.x`).
pub const SAXPY_CHECKED_COMP: &[u8] = spirv!("saxpy-checked.comp");
/// `mandelbrot.comp`: `kernels --kernel mandelbrot`.
pub const MANDELBROT_COMP: &[u8] = spirv!("mandelbrot.comp");
/// `matmul.comp`: `kernels --kernel matmul` (shared memory tiles).
pub const MATMUL_COMP: &[u8] = spirv!("matmul.comp");
/// `histogram.comp`: `kernels --kernel histogram` (atomics).
pub const HISTOGRAM_COMP: &[u8] = spirv!("histogram.comp");
/// `neighbours.comp`: one step of `kernels --kernel chain`.
pub const NEIGHBOURS_COMP: &[u8] = spirv!("neighbours.comp");
/// `step.comp`: an element-wise step of `kernels --kernel mix`.
pub const STEP_COMP: &[u8] = spirv!("step.comp");
/// `blur.comp`: `kernels --kernel filter` (storage image to storage image).
pub const BLUR_COMP: &[u8] = spirv!("blur.comp");
/// `blur-sampled.comp`: `kernels --kernel filter --sampled` (sampled image to storage image).
pub const BLUR_SAMPLED_COMP: &[u8] = spirv!("blur-sampled.comp");
/// `groups.comp`: the group counts of `kernels --kernel saxpy --indirect gpu`.
pub const GROUPS_COMP: &[u8] = spirv!("groups.comp");
/// `compact.comp`: `kernels --kernel compact` (slots handed out by atomics).
pub const COMPACT_COMP: &[u8] = spirv!("compact.comp");
