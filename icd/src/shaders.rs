//! Shaders read by the `shader` crate.
//!
//! While batches may run on several members, every shader module is analysed as it is created
//! (which bindings each entry point reads and writes, its atomics, and for compute entry points
//! whether slices of a dispatch would write disjoint parts) and the analyses kept by module
//! handle until the module is destroyed. A compute pipeline takes its entry point's analysis
//! (logged at debug level) and keeps it until it is destroyed: a dispatch's access set uses
//! the bound sets' bindings as the shader does (`access.rs`), and splitting dispatches (issue
//! 4) uses it. A graphics pipeline takes the union of its stages' analyses (what any stage
//! does with each binding), so that draws count a storage buffer or image that no stage
//! writes as read (`access.rs`, `DrawBinds`); pipeline libraries are not analysed, and their
//! draws count every binding of their sets as written.
//!
//! Where dispatches split, an entry point whose analysis allows slices that each run the
//! whole grid (`Analysis::slice_refusal`) is also kept rewritten to run only the workgroups of
//! a slice (`vkfuse_shader::slice`), and a compute pipeline of it keeps what its variants are
//! made from ([`Slices`]): indirect dispatches whose group counts are not known at submit run
//! on every member with such a variant each (`split.rs`), narrowed where [`narrowable`] says
//! so (`narrow.rs`). Variants are created on first use, one per member, slice and mode
//! (narrowed or not), and destroyed with the pipeline (or the device); once the
//! pipeline's layout is destroyed, or a member failed to make one (`VKFUSE_FAULT=slices:M`
//! for tests), no new ones are made and its indirect dispatches run whole.
//!
//! Keeping every module's SPIR-V instead (the first version) made piglit's
//! `teximage-colors GL_RG16F` over Zink crash in 5 of 10 runs on lavapipe + SwiftShader under
//! `round_robin`: a null read in a lavapipe worker thread, with no compute shader in the test.
//! Only the heap's layout changed; the cause is not found (ARCHITECTURE.md, known problems).
//! The rewritten words kept now are those of compute entry points only, and only under
//! `compute_split` and `hybrid`; graphics modules keep only their analyses.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;

use crate::object::{Device, MemberDevice};

/// What an entry point analysis gives: the analysis, or why there is none.
type Analysed = Result<Arc<vkfuse_shader::Analysis>, String>;

/// A compute entry point of a module: its name, its analysis, and where dispatches split and
/// the analysis allows it, the entry point rewritten to run one slice of the workgroups.
type Entry = (String, Analysed, Option<Arc<vkfuse_shader::slice::Sliced>>);

/// A graphics entry point of a module: its execution model (`ExecutionModel`), name and
/// analysis.
type StageEntry = (u32, String, Analysed);

/// Per shader module with graphics entry points (by handle): each one's analysis (what it does
/// with its bindings). Modules without one are not kept.
static STAGES: parking_lot::RwLock<BTreeMap<u64, Vec<StageEntry>>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// Per shader module with compute entry points (by handle, unique across devices: addresses of
/// live vkfuse objects): each entry point. Modules without one are not kept.
static MODULES: parking_lot::RwLock<BTreeMap<u64, Vec<Entry>>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// The compute pipelines (raw handle) whose variants run slices of the workgroups.
static SLICES: parking_lot::RwLock<BTreeMap<u64, Arc<Slices>>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// What a compute pipeline's variants that run slices of the workgroups are made from, and
/// those made.
pub struct Slices {
    /// The device (its address) the pipeline belongs to.
    device: usize,
    sliced: Arc<vkfuse_shader::slice::Sliced>,
    name: CString,
    /// The pipeline's layout (raw fused handle).
    layout: u64,
    /// Whether variants may be made: not once the layout is destroyed, or a member failed to
    /// make one (its indirect dispatches then run whole).
    usable: AtomicBool,
    stage_flags: vk::PipelineShaderStageCreateFlags,
    /// The application's specialization: map entries and data.
    spec: (Vec<vk::SpecializationMapEntry>, Vec<u8>),
    made: parking_lot::Mutex<Made>,
}

/// The member objects of a pipeline's slice variants.
#[derive(Default)]
struct Made {
    modules: HashMap<usize, vk::ShaderModule>,
    /// By member, slice (first and end part of `vkfuse_shader::slice::PARTS`) and whether
    /// it is narrowed (`narrow.rs`).
    pipelines: HashMap<(usize, u32, u32, bool), vk::Pipeline>,
}

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

/// Whether compute pipeline `pipeline` (raw) of `d` has variants that run slices of its
/// workgroups ([`slice_pipeline`]).
pub fn sliceable(d: &Device, pipeline: u64) -> bool {
    SLICES.read().get(&pipeline).is_some_and(|s| {
        s.device == d as *const Device as usize && s.usable.load(Ordering::Acquire)
    })
}

/// Whether sliced indirect dispatches of compute pipeline `pipeline` (raw) may be narrowed
/// (`narrow.rs`): its rewrite redirected the workgroup built-ins, and its shader does not
/// read `gl_NumWorkGroups.x`, which a narrowed dispatch changes.
pub fn narrowable(pipeline: u64) -> bool {
    let redirected = SLICES
        .read()
        .get(&pipeline)
        .is_some_and(|s| s.sliced.narrow);
    redirected && analysis(pipeline).is_some_and(|a| a.num_workgroups & 1 == 0)
}

/// Member `md`'s variant of compute pipeline `pipeline` (raw) of `d` that runs only the
/// workgroups of parts `lo..hi` of `vkfuse_shader::slice::PARTS`, made on first use:
/// `narrow`, for a dispatch of only those workgroups (`narrow.rs`), or for the whole grid.
pub fn slice_pipeline(
    d: &Device,
    md: &MemberDevice,
    pipeline: u64,
    (lo, hi): (u32, u32),
    narrow: bool,
) -> Result<vk::Pipeline, vk::Result> {
    let Some(s) = SLICES.read().get(&pipeline).cloned() else {
        return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
    };
    if s.device != d as *const Device as usize || !s.usable.load(Ordering::Acquire) {
        return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
    }
    let m = md.index;
    if crate::config::Config::get().fault("slices", m) {
        s.usable.store(false, Ordering::Release);
        crate::info!(
            "compute pipeline {pipeline:#x}: member {m} makes no variant that runs a slice of the workgroups (VKFUSE_FAULT=slices:{m}); its indirect dispatches run whole"
        );
        return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
    }
    let mut made = s.made.lock();
    if let Some(p) = made.pipelines.get(&(m, lo, hi, narrow)) {
        return Ok(*p);
    }
    let missing = crate::guard::missing;
    let module = match made.modules.get(&m) {
        Some(module) => *module,
        None => {
            let create = md
                .fns
                .create_shader_module
                .ok_or_else(|| missing("vkCreateShaderModule"))?;
            let info = vk::ShaderModuleCreateInfo::default().code(&s.sliced.words);
            let mut module = vk::ShaderModule::null();
            // SAFETY: the member's device, a valid create info.
            let r = unsafe { create(md.handle, &info, std::ptr::null(), &mut module) };
            if r != vk::Result::SUCCESS {
                s.usable.store(false, Ordering::Release);
                crate::info!(
                    "compute pipeline {pipeline:#x}: member {m} refused the module rewritten to run a slice of the workgroups ({r:?}); its indirect dispatches run whole"
                );
                return Err(r);
            }
            made.modules.insert(m, module);
            module
        }
    };
    // The application's specialization, and the slice's three constants after it.
    let (mut entries, mut data) = (s.spec.0.clone(), s.spec.1.clone());
    entries.retain(|e| !s.sliced.ids.contains(&e.constant_id));
    for (id, value) in s.sliced.ids.iter().zip([lo, hi, u32::from(narrow)]) {
        entries.push(vk::SpecializationMapEntry {
            constant_id: *id,
            offset: data.len() as u32,
            size: 4,
        });
        data.extend_from_slice(&value.to_ne_bytes());
    }
    let spec = vk::SpecializationInfo::default()
        .map_entries(&entries)
        .data(&data);
    let stage = vk::PipelineShaderStageCreateInfo::default()
        .flags(s.stage_flags)
        .stage(vk::ShaderStageFlags::COMPUTE)
        .module(module)
        .name(&s.name)
        .specialization_info(&spec);
    let info = vk::ComputePipelineCreateInfo::default()
        .stage(stage)
        .layout(crate::conv::nd(vk::PipelineLayout::from_raw(s.layout), m));
    let create = md
        .fns
        .create_compute_pipelines
        .ok_or_else(|| missing("vkCreateComputePipelines"))?;
    let mut out = vk::Pipeline::null();
    // SAFETY: the member's device; the layout is live (`usable` is false once it is
    // destroyed), the module ours.
    let r = unsafe {
        create(
            md.handle,
            vk::PipelineCache::null(),
            1,
            &info,
            std::ptr::null(),
            &mut out,
        )
    };
    if r != vk::Result::SUCCESS {
        s.usable.store(false, Ordering::Release);
        crate::info!(
            "compute pipeline {pipeline:#x}: member {m} could not make a variant that runs a slice of the workgroups ({r:?}); its indirect dispatches run whole"
        );
        return Err(r);
    }
    crate::debug!(
        "compute pipeline {pipeline:#x}: member {m}'s variant for workgroup parts {lo}..{hi} of {}{}",
        vkfuse_shader::slice::PARTS,
        if narrow { ", narrowed" } else { "" }
    );
    made.pipelines.insert((m, lo, hi, narrow), out);
    Ok(out)
}

/// Destroys the member objects of `s`'s variants, on `d`'s members.
fn destroy_slices(d: &Device, s: &Slices) {
    let made = std::mem::take(&mut *s.made.lock());
    for ((m, ..), p) in made.pipelines {
        if let Some(f) = d
            .member(m)
            .and_then(|md| md.fns.destroy_pipeline.zip(Some(md)))
        {
            // SAFETY: our pipeline on the member, no longer used: the application destroys a
            // pipeline once no pending work uses it, and the split rounds that used the
            // variant were part of such work.
            unsafe { (f.0)(f.1.handle, p, std::ptr::null()) };
        }
    }
    for (m, module) in made.modules {
        if let Some(f) = d
            .member(m)
            .and_then(|md| md.fns.destroy_shader_module.zip(Some(md)))
        {
            // SAFETY: our module on the member.
            unsafe { (f.0)(f.1.handle, module, std::ptr::null()) };
        }
    }
}

/// After `vkDestroyPipeline`, before the pipeline is freed.
///
/// # Safety
/// Arguments of `vkDestroyPipeline`.
pub unsafe fn pipeline_destroyed(
    d: &Device,
    pipeline: vk::Pipeline,
    _alloc: *const vk::AllocationCallbacks,
) {
    PIPELINES.write().remove(&pipeline.as_raw());
    let gone = SLICES.write().remove(&pipeline.as_raw());
    if let Some(s) = gone.filter(|s| s.device == d as *const Device as usize) {
        destroy_slices(d, &s);
    }
}

/// After `vkDestroyPipelineLayout`, before the layout is freed: its pipelines make no new
/// slice variants.
///
/// # Safety
/// Arguments of `vkDestroyPipelineLayout`.
pub unsafe fn layout_destroyed(
    _d: &Device,
    layout: vk::PipelineLayout,
    _alloc: *const vk::AllocationCallbacks,
) {
    for s in SLICES.read().values() {
        if s.layout == layout.as_raw() {
            s.usable.store(false, Ordering::Release);
        }
    }
}

/// Before `d`'s member devices are destroyed: the slice variants of its pipelines the
/// application did not destroy.
pub fn device_destroyed(d: &Device) {
    let mine: Vec<Arc<Slices>> = {
        let mut all = SLICES.write();
        let keys: Vec<u64> = all
            .iter()
            .filter(|(_, s)| s.device == d as *const Device as usize)
            .map(|(k, _)| *k)
            .collect();
        keys.iter().filter_map(|k| all.remove(k)).collect()
    };
    for s in mine {
        destroy_slices(d, &s);
    }
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
    let entries = analyse_all(&code, crate::config::Config::get().splits());
    if !entries.is_empty() {
        MODULES.write().insert(module, entries);
    }
    let stages = analyse_stages(&code);
    if !stages.is_empty() {
        STAGES.write().insert(module, stages);
    }
}

/// Every graphics entry point of a module's words, with its analysis.
fn analyse_stages(code: &[u32]) -> Vec<StageEntry> {
    vkfuse_shader::stage_entry_points(code)
        .into_iter()
        .map(|(model, name)| {
            let a = vkfuse_shader::analyse_stage(code, model, &name)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            (model, name, a)
        })
        .collect()
}

/// Every compute entry point of a module's words, with its analysis, and where `slices`, the
/// entry point rewritten to run one slice of the workgroups.
fn analyse_all(code: &[u32], slices: bool) -> Vec<Entry> {
    vkfuse_shader::compute_entry_points(code)
        .into_iter()
        .map(|name| {
            let a = vkfuse_shader::analyse(code, &name)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            let sliced = a
                .as_ref()
                .ok()
                .filter(|a| slices && a.slice_refusal().is_none())
                .and_then(
                    |_| match vkfuse_shader::slice::workgroup_slice(code, &name) {
                        Ok(s) => Some(Arc::new(s)),
                        Err(e) => {
                            crate::debug!("compute entry point {name}: no slice variants: {e}");
                            None
                        }
                    },
                );
            (name, a, sliced)
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
    STAGES.write().remove(&module.as_raw());
}

/// The entry points `kept` holds for `stage`'s module, or those `analyse` makes of a module
/// create info chained to the stage (maintenance5).
///
/// # Safety
/// `stage` is a valid stage create info.
unsafe fn entries_of<T: Clone>(
    kept: &parking_lot::RwLock<BTreeMap<u64, Vec<T>>>,
    stage: &vk::PipelineShaderStageCreateInfo,
    analyse: impl FnOnce(&[u32]) -> Vec<T>,
) -> Option<Vec<T>> {
    kept.read()
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
            .map(|m| analyse(&unsafe { words(m) }))
        })
}

/// The `ExecutionModel` of a graphics shader stage (`None` for stages not analysed).
fn execution_model(stage: vk::ShaderStageFlags) -> Option<u32> {
    Some(match stage {
        vk::ShaderStageFlags::VERTEX => 0,
        vk::ShaderStageFlags::TESSELLATION_CONTROL => 1,
        vk::ShaderStageFlags::TESSELLATION_EVALUATION => 2,
        vk::ShaderStageFlags::GEOMETRY => 3,
        vk::ShaderStageFlags::FRAGMENT => 4,
        vk::ShaderStageFlags::TASK_EXT => 5364,
        vk::ShaderStageFlags::MESH_EXT => 5365,
        _ => return None,
    })
}

/// The analysis of one stage of a graphics pipeline: its module's (or a module create info
/// chained to the stage), or why there is none.
///
/// # Safety
/// `stage` is a valid stage create info.
unsafe fn stage_analysis(stage: &vk::PipelineShaderStageCreateInfo) -> Analysed {
    let model = execution_model(stage.stage)
        .ok_or_else(|| format!("stage {:?} not analysed", stage.stage))?;
    if stage.p_name.is_null() {
        return Err("no entry point name".into());
    }
    // SAFETY: a nul-terminated entry point name.
    let name = unsafe { CStr::from_ptr(stage.p_name) }.to_string_lossy();
    // SAFETY: a valid stage create info.
    let entries = unsafe { entries_of(&STAGES, stage, analyse_stages) }
        .ok_or_else(|| format!("{:?}: module not analysed", stage.stage))?;
    entries
        .into_iter()
        .find(|(m, n, _)| *m == model && *n == name)
        .map_or_else(
            || Err(format!("no {:?} entry point \"{name}\"", stage.stage)),
            |(_, _, a)| a,
        )
}

/// The `count` create infos and the pipelines created from them (none where `d`'s modules
/// and pipelines are not analysed, or a pipeline was not created), each pipeline's earlier
/// analyses forgotten: a handle of a destroyed pipeline may come back, and nothing of that one
/// stays.
///
/// # Safety
/// `count` valid create infos (or null) and as many created pipelines (null where creation
/// failed), alive for `'a`.
unsafe fn created<'a, I: 'a>(
    d: &Device,
    count: u32,
    infos: *const I,
    pipelines: *const vk::Pipeline,
) -> impl Iterator<Item = (&'a I, vk::Pipeline)> {
    let n = if wanted(d) && !infos.is_null() && !pipelines.is_null() {
        count as usize
    } else {
        0
    };
    (0..n).filter_map(move |k| {
        // SAFETY: `count` valid create infos and created pipelines (caller contract).
        let (info, pipeline) = unsafe { (&*infos.add(k), *pipelines.add(k)) };
        if pipeline.is_null() {
            return None;
        }
        PIPELINES.write().remove(&pipeline.as_raw());
        SLICES.write().remove(&pipeline.as_raw());
        Some((info, pipeline))
    })
}

/// After `vkCreateGraphicsPipelines`: each pipeline's stages analysed together (what the
/// pipeline does with each binding, `Analysis::union_of`), so that draws use its bound sets'
/// bindings as its shaders do (`access.rs`). Pipelines made of or as libraries
/// (`VK_EXT_graphics_pipeline_library`) are not analysed: their draws take every binding of
/// their sets as written.
///
/// # Safety
/// Arguments of a successful `vkCreateGraphicsPipelines`.
pub unsafe fn graphics_pipelines_created(
    d: &Device,
    _cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::GraphicsPipelineCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    pipelines: *mut vk::Pipeline,
) {
    // SAFETY: forwarded contract.
    for (info, pipeline) in unsafe { created(d, count, infos, pipelines) } {
        // SAFETY: a valid pNext chain.
        let library = info.flags.contains(vk::PipelineCreateFlags::LIBRARY_KHR)
            || unsafe {
                crate::conv::chain_find::<vk::PipelineLibraryCreateInfoKHR>(
                    info.p_next,
                    vk::StructureType::PIPELINE_LIBRARY_CREATE_INFO_KHR,
                )
            }
            .is_some();
        let stages = if info.p_stages.is_null() {
            &[][..]
        } else {
            // SAFETY: `stage_count` valid stage create infos.
            unsafe { std::slice::from_raw_parts(info.p_stages, info.stage_count as usize) }
        };
        let analysed: Result<Vec<Arc<vkfuse_shader::Analysis>>, String> = if library {
            Err("a pipeline library, or made of some".into())
        } else if stages.is_empty() {
            Err("no stages".into())
        } else {
            // SAFETY: valid stage create infos.
            stages
                .iter()
                .map(|s| unsafe { stage_analysis(s) })
                .collect()
        };
        let what = match analysed {
            Ok(list) => {
                let a = Arc::new(vkfuse_shader::Analysis::union_of(
                    list.iter().map(|a| a.as_ref()),
                ));
                let what = if crate::log::enabled(crate::log::Level::Debug) {
                    describe_bindings(&a)
                } else {
                    String::new()
                };
                PIPELINES.write().insert(pipeline.as_raw(), a);
                what
            }
            Err(e) => format!("not analysed ({e})"),
        };
        crate::debug!("graphics pipeline {:#x}: {what}", pipeline.as_raw());
    }
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
    // SAFETY: forwarded contract.
    for (info, pipeline) in unsafe { created(d, count, infos, pipelines) } {
        let stage = &info.stage;
        // SAFETY: a valid stage create info.
        let entries = unsafe {
            entries_of(&MODULES, stage, |code| {
                analyse_all(code, crate::config::Config::get().splits())
            })
        };
        let name = if stage.p_name.is_null() {
            String::new()
        } else {
            // SAFETY: a nul-terminated entry point name.
            unsafe { CStr::from_ptr(stage.p_name) }
                .to_string_lossy()
                .into_owned()
        };
        let found = entries.map(|list| {
            list.into_iter().find(|(n, ..)| *n == name).map_or_else(
                || Err(format!("no compute entry point \"{name}\"")),
                |(_, a, sliced)| a.map(|a| (a, sliced)),
            )
        });
        let what = match found {
            Some(Ok((a, sliced))) => {
                if let Some(sliced) = sliced {
                    // SAFETY: a valid create info.
                    match unsafe { slices_of(d, info, sliced) } {
                        Some(s) => {
                            SLICES.write().insert(pipeline.as_raw(), Arc::new(s));
                        }
                        None => crate::debug!(
                            "compute pipeline {:#x}: no slice variants (create info extended)",
                            pipeline.as_raw()
                        ),
                    }
                }
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

/// What the slice variants of a pipeline created from `info` are made from; `None` where
/// `info` or its stage is extended by structures other than a chained module.
///
/// # Safety
/// `info` is a valid create info.
unsafe fn slices_of(
    d: &Device,
    info: &vk::ComputePipelineCreateInfo,
    sliced: Arc<vkfuse_shader::slice::Sliced>,
) -> Option<Slices> {
    let stage = &info.stage;
    if !info.p_next.is_null() || stage.p_name.is_null() {
        return None;
    }
    let mut next = stage.p_next;
    while !next.is_null() {
        // SAFETY: every chain node starts with sType and pNext.
        let base = unsafe { &*(next as *const vk::BaseInStructure) };
        if base.s_type != vk::StructureType::SHADER_MODULE_CREATE_INFO {
            return None;
        }
        next = base.p_next.cast();
    }
    let spec = if stage.p_specialization_info.is_null() {
        (Vec::new(), Vec::new())
    } else {
        // SAFETY: a valid specialization info: its entries and data.
        unsafe {
            let sp = &*stage.p_specialization_info;
            let entries = if sp.p_map_entries.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(sp.p_map_entries, sp.map_entry_count as usize).to_vec()
            };
            let data = if sp.p_data.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(sp.p_data.cast::<u8>(), sp.data_size).to_vec()
            };
            (entries, data)
        }
    };
    Some(Slices {
        device: d as *const Device as usize,
        sliced,
        // SAFETY: a nul-terminated entry point name.
        name: unsafe { CStr::from_ptr(stage.p_name) }.to_owned(),
        layout: info.layout.as_raw(),
        usable: AtomicBool::new(true),
        stage_flags: stage.flags,
        spec,
        made: Default::default(),
    })
}

/// `local size 64x1x1`, `(0,0) read, (0,1) written (disjoint along x)` and whether buffer
/// device addresses are used: the parts of the log's description of an analysis.
fn bindings_and_more(a: &vkfuse_shader::Analysis) -> Vec<String> {
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
            if let Some((o, (col, at))) = b.own.and_then(|o| Some((o, o.rows?))) {
                let (stride, offset) = (o.stride, o.offset);
                let (row, col) = (axes[usize::from(o.comp).min(2)], axes[usize::from(col).min(2)]);
                s += &format!(
                    " (each invocation only its own row: W * {stride} byte(s) at {offset} + W * {stride} * gid.{row}, W the push constant at {at}, while gid.{col} < W)"
                );
            } else if let Some(o) = b.own {
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
    parts
}

/// `(0,0) read, (0,1) read`: what a graphics pipeline's stages do with their bindings, for the
/// log.
fn describe_bindings(a: &vkfuse_shader::Analysis) -> String {
    bindings_and_more(a).join("; ")
}

/// `local size 64x1x1; (0,0) read, (0,1) written (disjoint along x); slices along x write
/// disjoint parts`: [`bindings_and_more`], then what decides the split of a compute shader's
/// dispatches, for the log.
fn describe(a: &vkfuse_shader::Analysis) -> String {
    let axes = ["x", "y", "z"];
    let mut parts = bindings_and_more(a);
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
