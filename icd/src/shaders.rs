//! Compute shaders read by the `shader` crate.
//!
//! While batches may run on several members, every shader module with compute entry points is
//! analysed as it is created (which bindings each entry point reads and writes, its atomics,
//! whether slices of a dispatch would write disjoint parts) and the analyses kept by module
//! handle until the module is destroyed; other modules are not kept. A compute pipeline takes
//! its entry point's analysis (logged at debug level) and keeps it until it is destroyed: a
//! dispatch's access set uses the bound sets' bindings as the shader does (`access.rs`), and
//! splitting dispatches (issue 4) will use it.
//!
//! Keeping every module's SPIR-V instead (the first version) made piglit's
//! `teximage-colors GL_RG16F` over Zink crash in 5 of 10 runs on lavapipe + SwiftShader under
//! `round_robin`: a null read in a lavapipe worker thread, with no compute shader in the test.
//! Only the heap's layout changed; the cause is not found (ARCHITECTURE.md, known problems).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;

use crate::object::Device;

/// What an entry point analysis gives: the analysis, or why there is none.
type Analysed = Result<Arc<vkfuse_shader::Analysis>, String>;

/// Per shader module with compute entry points (by handle, unique across devices: addresses of
/// live vkfuse objects): the analysis of each, by name. Modules without one are not kept.
static MODULES: parking_lot::RwLock<BTreeMap<u64, Vec<(String, Analysed)>>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// The analysis of each compute pipeline (raw handle) that has one.
static PIPELINES: parking_lot::RwLock<BTreeMap<u64, Arc<vkfuse_shader::Analysis>>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// Whether modules and pipelines of `d` are analysed: on devices of several members, unless
/// `VKFUSE_FAULT=shaders:M` names one of them (for tests: dispatches then use every binding
/// of their sets as written, as without analysis).
fn wanted(d: &Device) -> bool {
    let cfg = crate::config::Config::get();
    d.exec.multi && !d.members.iter().any(|md| cfg.fault("shaders", md.index))
}

/// The analysis of compute pipeline `pipeline` (raw), if it has one.
pub fn analysis(pipeline: u64) -> Option<Arc<vkfuse_shader::Analysis>> {
    if pipeline == 0 {
        return None;
    }
    PIPELINES.read().get(&pipeline).cloned()
}

/// After `vkDestroyPipeline`, before the pipeline is freed.
///
/// # Safety
/// Arguments of `vkDestroyPipeline`.
pub unsafe fn pipeline_destroyed(
    _d: &Device,
    pipeline: vk::Pipeline,
    _alloc: *const vk::AllocationCallbacks,
) {
    PIPELINES.write().remove(&pipeline.as_raw());
}

/// The words of a `VkShaderModuleCreateInfo`.
///
/// # Safety
/// `info` is a valid create info.
unsafe fn words(info: &vk::ShaderModuleCreateInfo) -> Vec<u32> {
    if info.p_code.is_null() {
        return Vec::new();
    }
    // SAFETY: codeSize bytes of SPIR-V, 4-byte aligned (VUID-VkShaderModuleCreateInfo-pCode).
    unsafe { std::slice::from_raw_parts(info.p_code, info.code_size / 4) }.to_vec()
}

/// After `vkCreateShaderModule`: keeps the module's SPIR-V.
///
/// # Safety
/// Arguments of a successful `vkCreateShaderModule`.
pub unsafe fn module_created(
    d: &Device,
    info: *const vk::ShaderModuleCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    module: *mut vk::ShaderModule,
) {
    if !wanted(d) {
        return;
    }
    // SAFETY: a valid create info and the created module.
    let (code, module) = unsafe { (words(&*info), (*module).as_raw()) };
    let entries = analyse_all(&code);
    if !entries.is_empty() {
        MODULES.write().insert(module, entries);
    }
}

/// The analysis of every compute entry point of a module's words.
fn analyse_all(code: &[u32]) -> Vec<(String, Analysed)> {
    vkfuse_shader::compute_entry_points(code)
        .into_iter()
        .map(|name| {
            let a = vkfuse_shader::analyse(code, &name)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            (name, a)
        })
        .collect()
}

/// After `vkDestroyShaderModule`, before the module is freed.
///
/// # Safety
/// Arguments of `vkDestroyShaderModule`.
pub unsafe fn module_destroyed(
    _d: &Device,
    module: vk::ShaderModule,
    _alloc: *const vk::AllocationCallbacks,
) {
    MODULES.write().remove(&module.as_raw());
}

/// After `vkCreateComputePipelines`: each pipeline's entry point analysed and logged.
///
/// # Safety
/// Arguments of a successful `vkCreateComputePipelines`.
pub unsafe fn compute_pipelines_created(
    d: &Device,
    _cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::ComputePipelineCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    pipelines: *mut vk::Pipeline,
) {
    if !wanted(d) || infos.is_null() {
        return;
    }
    for k in 0..count as usize {
        // SAFETY: `count` valid create infos and created pipelines.
        let (info, pipeline) = unsafe { (&*infos.add(k), *pipelines.add(k)) };
        if pipeline.is_null() {
            continue;
        }
        let stage = &info.stage;
        // The module's analyses, or those of a module create info chained to the stage
        // (maintenance5).
        let entries = MODULES
            .read()
            .get(&stage.module.as_raw())
            .cloned()
            .or_else(|| {
                // SAFETY: a valid pNext chain, whose node of this type is a create info.
                unsafe {
                    crate::conv::chain_find::<vk::ShaderModuleCreateInfo>(
                        stage.p_next,
                        vk::StructureType::SHADER_MODULE_CREATE_INFO,
                    )
                }
                // SAFETY: a valid create info.
                .map(|m| analyse_all(&unsafe { words(m) }))
            });
        let name = if stage.p_name.is_null() {
            String::new()
        } else {
            // SAFETY: a nul-terminated entry point name.
            unsafe { CStr::from_ptr(stage.p_name) }
                .to_string_lossy()
                .into_owned()
        };
        let found = entries.map(|list| {
            list.into_iter().find(|(n, _)| *n == name).map_or_else(
                || Err(format!("no compute entry point \"{name}\"")),
                |(_, a)| a,
            )
        });
        let what = match found {
            Some(Ok(a)) => {
                let what = if crate::log::enabled(crate::log::Level::Debug) {
                    describe(&a)
                } else {
                    String::new()
                };
                PIPELINES.write().insert(pipeline.as_raw(), a);
                what
            }
            Some(Err(e)) => format!("not analysed ({e})"),
            None => "not analysed (its module has no compute entry point)".to_string(),
        };
        crate::debug!("compute pipeline {:#x} ({name}): {what}", pipeline.as_raw());
    }
}

/// `local size 64x1x1; (0,0) read, (0,1) written (disjoint along x); slices along x write
/// disjoint parts`, for the log.
fn describe(a: &vkfuse_shader::Analysis) -> String {
    let axes = ["x", "y", "z"];
    let mut parts = Vec::new();
    if let Some([x, y, z]) = a.local_size {
        parts.push(format!("local size {x}x{y}x{z}"));
    }
    let bindings: Vec<String> = a
        .bindings
        .iter()
        .map(|((set, binding), b)| {
            let mut s = format!("({set},{binding})");
            s += match (b.read, b.written) {
                (_, true) if b.opaque => " used in ways not followed",
                (true, true) => " read and written",
                (false, true) => " written",
                (true, false) => " read",
                (false, false) => " unused",
            };
            match b.atomics {
                vkfuse_shader::Atomics::None => {}
                vkfuse_shader::Atomics::Add => s += ", integer add atomics",
                vkfuse_shader::Atomics::Other => s += ", atomics",
            }
            let along: Vec<&str> = (0..3)
                .filter(|c| b.disjoint_along & (1 << c) != 0)
                .map(|c| axes[c])
                .collect();
            if !along.is_empty() {
                s += &format!(" (disjoint along {})", along.join(", "));
            }
            if let Some(o) = b.own {
                let moved = o
                    .push
                    .map(|p| format!(" + {} * push constant at {p}", o.stride))
                    .unwrap_or_default();
                s += &format!(
                    " (each invocation only its own {} byte(s) at {}{moved} + {0} * gid.{})",
                    o.bytes,
                    o.offset,
                    axes[usize::from(o.comp).min(2)]
                );
            }
            s
        })
        .collect();
    parts.push(if bindings.is_empty() {
        "no bindings".to_string()
    } else {
        bindings.join(", ")
    });
    if a.addresses {
        parts.push("buffer device addresses".to_string());
    }
    if a.num_workgroups != 0 {
        let read: Vec<&str> = (0..3)
            .filter(|c| a.num_workgroups & (1 << c) != 0)
            .map(|c| axes[c])
            .collect();
        parts.push(format!("reads gl_NumWorkGroups.{}", read.join("")));
    }
    let splits: Vec<&str> = (0..3u8)
        .filter(|c| a.splits_along(*c))
        .map(|c| axes[c as usize])
        .collect();
    parts.push(if splits.is_empty() {
        "no slices proven to write disjoint parts".to_string()
    } else {
        format!("slices along {} write disjoint parts", splits.join(", "))
    });
    parts.join("; ")
}
