//! Pure translation between the fused device's view and one member's: handles, queue family
//! and memory type indices, and the struct copies generated code builds in the arena.

use std::ffi::c_void;

use ash::vk;
use ash::vk::Handle;

use crate::arena::Arena;
use crate::generated::translate::ChainFix;
use crate::object::{member_handle, ObjectBase};

/// Fused index → member index, for one member.
#[derive(Clone, Debug, Default)]
pub struct MemberMaps {
    pub queue_family: Vec<u32>,
    pub memory_type: Vec<u32>,
    /// This member executes (the primary): it alone writes outputs that input structs point to.
    pub executes: bool,
}

/// Translation context: which member, where copies go, and the member's index maps.
pub struct Cx<'a> {
    pub m: usize,
    arena: &'a Arena,
    maps: &'a MemberMaps,
    /// Called with every non-dispatchable handle this context translates (access sets).
    rec: Option<&'a dyn Fn(u64)>,
}

/// A dispatchable handle type that vkfuse wraps.
pub trait Dispatchable: Handle + Copy {
    const TYPE: vk::ObjectType;
}
impl Dispatchable for vk::Instance {
    const TYPE: vk::ObjectType = vk::ObjectType::INSTANCE;
}
impl Dispatchable for vk::PhysicalDevice {
    const TYPE: vk::ObjectType = vk::ObjectType::PHYSICAL_DEVICE;
}
impl Dispatchable for vk::Device {
    const TYPE: vk::ObjectType = vk::ObjectType::DEVICE;
}
impl Dispatchable for vk::Queue {
    const TYPE: vk::ObjectType = vk::ObjectType::QUEUE;
}
impl Dispatchable for vk::CommandBuffer {
    const TYPE: vk::ObjectType = vk::ObjectType::COMMAND_BUFFER;
}

/// A non-dispatchable vkfuse handle → member `m`'s handle.
#[inline(always)]
pub fn nd<H: Handle + Copy>(h: H, m: usize) -> H {
    let raw = h.as_raw();
    if raw == 0 {
        return h;
    }
    debug_assert!(m < crate::MAX_MEMBERS);
    // SAFETY: non-null non-dispatchable handles the application passes are vkfuse objects that
    // start with `ObjectBase` (valid usage: handles must be valid); member indices are below
    // MAX_MEMBERS by construction (member::discovery caps them).
    H::from_raw(unsafe { *(*(raw as *const ObjectBase)).handles.get_unchecked(m) })
}

/// A dispatchable vkfuse handle → member `m`'s handle.
#[inline]
pub fn disp<H: Dispatchable>(h: H, m: usize) -> H {
    // SAFETY: dispatchable handles the application passes are live vkfuse objects.
    H::from_raw(unsafe { member_handle(<H as Dispatchable>::TYPE, h.as_raw(), m) })
}

/// A fused queue family index → the member's.
#[inline]
pub fn queue_family(maps: &MemberMaps, v: u32) -> u32 {
    match v {
        vk::QUEUE_FAMILY_IGNORED | vk::QUEUE_FAMILY_EXTERNAL | vk::QUEUE_FAMILY_FOREIGN_EXT => v,
        _ => maps.queue_family.get(v as usize).copied().unwrap_or(v),
    }
}

impl<'a> Cx<'a> {
    pub fn new(m: usize, arena: &'a Arena, maps: &'a MemberMaps) -> Cx<'a> {
        Cx {
            m,
            arena,
            maps,
            rec: None,
        }
    }

    /// This context, also handing every non-dispatchable handle it translates to `rec`.
    pub fn recording(self, rec: Option<&'a dyn Fn(u64)>) -> Cx<'a> {
        Cx { rec, ..self }
    }

    /// A non-dispatchable vkfuse handle → this member's handle.
    #[inline]
    pub fn nd<H: Handle + Copy>(&self, h: H) -> H {
        if let Some(rec) = self.rec {
            rec(h.as_raw());
        }
        nd(h, self.m)
    }

    #[inline]
    pub fn disp<H: Dispatchable>(&self, h: H) -> H {
        disp(h, self.m)
    }

    fn map_array<T: Copy>(&self, p: *const T, n: usize, f: impl Fn(T) -> T) -> *const T {
        if p.is_null() || n == 0 {
            return p;
        }
        let out = self.arena.alloc::<T>(n);
        for i in 0..n {
            // SAFETY: `p` has `n` elements (the count member that the registry names as its
            // length); `out` has room for `n`.
            unsafe { out.add(i).write(f(p.add(i).read())) };
        }
        out
    }

    pub fn nd_array<H: Handle + Copy>(&self, p: *const H, n: usize) -> *const H {
        self.map_array(p, n, |h| self.nd(h))
    }

    pub fn disp_array<H: Dispatchable>(&self, p: *const H, n: usize) -> *const H {
        self.map_array(p, n, |h| self.disp(h))
    }

    pub fn queue_family(&self, v: u32) -> u32 {
        queue_family(self.maps, v)
    }

    pub fn queue_family_array(&self, p: *const u32, n: usize) -> *const u32 {
        self.map_array(p, n, |v| self.queue_family(v))
    }

    /// Pipeline create flags for this member: members that only record must have the pipeline,
    /// so they compile even where the application asked to fail instead
    /// (`FAIL_ON_PIPELINE_COMPILE_REQUIRED`, `EARLY_RETURN_ON_FAILURE`); the executing member's
    /// answer is the one the application gets.
    pub fn pipeline_flags(&self, f: vk::PipelineCreateFlags) -> vk::PipelineCreateFlags {
        if self.executes() {
            f
        } else {
            f & !(vk::PipelineCreateFlags::FAIL_ON_PIPELINE_COMPILE_REQUIRED
                | vk::PipelineCreateFlags::EARLY_RETURN_ON_FAILURE)
        }
    }

    /// Compute pipeline create flags for this member: as [`Cx::pipeline_flags`], and with
    /// `DISPATCH_BASE` where dispatches are split (`split.rs` records slices with
    /// `vkCmdDispatchBase`).
    pub fn compute_pipeline_flags(&self, f: vk::PipelineCreateFlags) -> vk::PipelineCreateFlags {
        let f = self.pipeline_flags(f);
        if crate::config::Config::get().splits() {
            f | vk::PipelineCreateFlags::DISPATCH_BASE
        } else {
            f
        }
    }

    /// Shader code for this member: where dispatches split, the module marked as compiled for
    /// `vkCmdDispatchBase` (`vkfuse_shader::slice::marked_for_dispatch_base`: a driver's
    /// shader cache must not hand a pipeline with `DISPATCH_BASE` code compiled without it).
    /// Returns the code size in bytes and the words.
    #[allow(clippy::not_unsafe_ptr_arg_deref)] // Reason: `code` is an application pointer under Vulkan valid usage; the generated fix function of `VkShaderModuleCreateInfo` is its only caller, under its entry point's contract.
    pub fn shader_code(&self, size: usize, code: *const u32) -> (usize, *const u32) {
        if !crate::config::Config::get().splits() || code.is_null() || size % 4 != 0 {
            return (size, code);
        }
        // SAFETY: `size` bytes of SPIR-V at `code` (VUID-VkShaderModuleCreateInfo-pCode).
        let words = unsafe { std::slice::from_raw_parts(code, size / 4) };
        let Some(marked) = vkfuse_shader::slice::marked_for_dispatch_base(words) else {
            return (size, code);
        };
        let out = self.arena.alloc::<u32>(marked.len());
        // SAFETY: room for `marked.len()` words.
        unsafe { std::ptr::copy_nonoverlapping(marked.as_ptr(), out, marked.len()) };
        crate::debug!(
            "member {}: shader module marked as compiled for vkCmdDispatchBase",
            self.m
        );
        (marked.len() * 4, out)
    }

    /// Buffer usage for this member: where dispatches split, indirect buffers may also be
    /// copied from (`TRANSFER_SRC`): a narrowed sliced indirect dispatch copies its group
    /// counts into vkfuse's own buffer (`narrow.rs`).
    pub fn buffer_usage(&self, u: vk::BufferUsageFlags) -> vk::BufferUsageFlags {
        if crate::config::Config::get().splits()
            && u.contains(vk::BufferUsageFlags::INDIRECT_BUFFER)
        {
            u | vk::BufferUsageFlags::TRANSFER_SRC
        } else {
            u
        }
    }

    /// Whether this member is the one that executes.
    pub fn executes(&self) -> bool {
        self.maps.executes
    }

    pub fn memory_type(&self, v: u32) -> u32 {
        self.maps.memory_type.get(v as usize).copied().unwrap_or(v)
    }

    /// Copies one struct into the arena and rewrites the copy.
    ///
    /// # Safety
    /// `p` is null or points to a valid `T` that `fix` may rewrite.
    pub fn one<T>(&self, p: *const T, fix: unsafe fn(&Cx, *mut T)) -> *const T {
        self.array(p, 1, fix)
    }

    /// Copies `n` structs into the arena and rewrites each copy.
    #[allow(clippy::not_unsafe_ptr_arg_deref)] // Reason: `p` is an application pointer under Vulkan valid usage; every caller is an entry point whose own contract covers it.
    pub fn array<T>(&self, p: *const T, n: usize, fix: unsafe fn(&Cx, *mut T)) -> *const T {
        if p.is_null() || n == 0 {
            return p;
        }
        let out = self.arena.alloc::<T>(n);
        // SAFETY: `p` holds `n` valid structs (registry length); `out` has room for them; the
        // fix function only rewrites members of the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(p, out, n);
            for i in 0..n {
                fix(self, out.add(i));
            }
        }
        out
    }

    /// Copies a pNext chain, rewriting every node; nodes of unknown type are dropped with a
    /// warning, since they could hold handles vkfuse cannot see.
    ///
    /// # Safety
    /// `p` is null or a valid pNext chain.
    pub unsafe fn chain(
        &self,
        p: *const c_void,
        info: fn(vk::StructureType) -> Option<(usize, Option<ChainFix>)>,
    ) -> *const c_void {
        let mut p = p;
        while !p.is_null() {
            // SAFETY: every chain node starts with sType and pNext (VUID-...-pNext-pNext).
            let base = unsafe { &*(p as *const vk::BaseInStructure) };
            if let Some((size, fix)) = info(base.s_type) {
                let out = self.arena.alloc::<u8>(size);
                // SAFETY: the node is at least `size` bytes (its sType says which struct it is).
                unsafe {
                    std::ptr::copy_nonoverlapping(p as *const u8, out, size);
                    let next = self.chain(base.p_next.cast(), info);
                    (*(out as *mut vk::BaseOutStructure)).p_next = next as *mut _;
                    if let Some(f) = fix {
                        f(self, out.cast());
                    }
                }
                return out as *const c_void;
            }
            // The loader's own structs (layer plumbing) are not for drivers; anything else
            // unknown could hold handles vkfuse cannot see, so it is left out with a warning.
            if !matches!(
                base.s_type,
                vk::StructureType::LOADER_INSTANCE_CREATE_INFO
                    | vk::StructureType::LOADER_DEVICE_CREATE_INFO
            ) {
                crate::warn!(
                    "dropping unknown struct {:?} from a pNext chain",
                    base.s_type
                );
            }
            p = base.p_next.cast();
        }
        p
    }
}

fn uses_image_info(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::SAMPLER
            | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
            | vk::DescriptorType::SAMPLED_IMAGE
            | vk::DescriptorType::STORAGE_IMAGE
            | vk::DescriptorType::INPUT_ATTACHMENT
    )
}

fn uses_buffer_info(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::UNIFORM_BUFFER
            | vk::DescriptorType::STORAGE_BUFFER
            | vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC
            | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC
    )
}

fn uses_texel_view(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::UNIFORM_TEXEL_BUFFER | vk::DescriptorType::STORAGE_TEXEL_BUFFER
    )
}

/// Translates one image descriptor; members the descriptor type ignores become null, since
/// the application may leave them as garbage (VkDescriptorImageInfo valid usage).
pub fn image_info(cx: &Cx, t: vk::DescriptorType, i: &mut vk::DescriptorImageInfo) {
    let sampler = matches!(
        t,
        vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
    );
    i.sampler = if sampler {
        cx.nd(i.sampler)
    } else {
        vk::Sampler::null()
    };
    i.image_view = if t == vk::DescriptorType::SAMPLER {
        vk::ImageView::null()
    } else {
        cx.nd(i.image_view)
    };
}

/// `VkWriteDescriptorSet`: only the array that `descriptorType` selects is read.
///
/// # Safety
/// `d` points to a writable copy of a valid `VkWriteDescriptorSet`.
pub unsafe fn fix_write_descriptor_set(cx: &Cx, d: *mut vk::WriteDescriptorSet) {
    // SAFETY: caller contract.
    let d = unsafe { &mut *d };
    // SAFETY: the chain of a valid struct.
    d.p_next = unsafe { crate::generated::translate::chain(cx, d.p_next) };
    d.dst_set = cx.nd(d.dst_set);
    let n = d.descriptor_count as usize;
    let t = d.descriptor_type;
    if uses_image_info(t) {
        if !d.p_image_info.is_null() && n > 0 {
            let out = cx.arena.alloc::<vk::DescriptorImageInfo>(n);
            for i in 0..n {
                // SAFETY: pImageInfo has descriptorCount elements for image types.
                let mut info = unsafe { d.p_image_info.add(i).read() };
                image_info(cx, t, &mut info);
                // SAFETY: `out` has room for n elements.
                unsafe { out.add(i).write(info) };
            }
            d.p_image_info = out;
        }
    } else {
        d.p_image_info = std::ptr::null();
    }
    if uses_buffer_info(t) {
        d.p_buffer_info = cx.map_array(d.p_buffer_info, n, |mut b| {
            b.buffer = cx.nd(b.buffer);
            b
        });
    } else {
        d.p_buffer_info = std::ptr::null();
    }
    if uses_texel_view(t) {
        d.p_texel_buffer_view = cx.nd_array(d.p_texel_buffer_view, n);
    } else {
        d.p_texel_buffer_view = std::ptr::null();
    }
}

/// Whether a pipeline's `basePipelineHandle` is read: it derives from a pipeline given by
/// handle rather than by index into the same call's create infos.
pub fn derives_from_handle(flags: vk::PipelineCreateFlags, base_index: i32) -> bool {
    flags.contains(vk::PipelineCreateFlags::DERIVATIVE) && base_index == -1
}

/// Graphics pipeline state that reads `layout`.
pub const SHADER_STATE: vk::GraphicsPipelineLibraryFlagsEXT =
    vk::GraphicsPipelineLibraryFlagsEXT::from_raw(
        vk::GraphicsPipelineLibraryFlagsEXT::PRE_RASTERIZATION_SHADERS.as_raw()
            | vk::GraphicsPipelineLibraryFlagsEXT::FRAGMENT_SHADER.as_raw(),
    );
/// Graphics pipeline state that reads `renderPass`.
pub const RENDER_PASS_STATE: vk::GraphicsPipelineLibraryFlagsEXT =
    vk::GraphicsPipelineLibraryFlagsEXT::from_raw(
        SHADER_STATE.as_raw()
            | vk::GraphicsPipelineLibraryFlagsEXT::FRAGMENT_OUTPUT_INTERFACE.as_raw(),
    );

/// Whether a graphics pipeline create info describes any of the `parts` of the state: all of
/// it, unless a `VkGraphicsPipelineLibraryCreateInfoEXT` in its chain names a subset.
pub fn graphics_state(
    d: &vk::GraphicsPipelineCreateInfo,
    parts: vk::GraphicsPipelineLibraryFlagsEXT,
) -> bool {
    let mut p = d.p_next;
    while !p.is_null() {
        // SAFETY: every chain node starts with sType and pNext.
        let base = unsafe { &*(p as *const vk::BaseInStructure) };
        if base.s_type == vk::StructureType::GRAPHICS_PIPELINE_LIBRARY_CREATE_INFO_EXT {
            // SAFETY: the sType says which struct this is.
            let lib = unsafe { &*(p as *const vk::GraphicsPipelineLibraryCreateInfoEXT) };
            return lib.flags.intersects(parts);
        }
        p = base.p_next.cast();
    }
    true
}

/// Whether the pNext chain at `p` (null or valid: callers pass the chains of the application's
/// valid structs) holds a struct of type `s`.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // Reason: safe as before, for its many callers.
pub fn chain_has(p: *const c_void, s: vk::StructureType) -> bool {
    // SAFETY: a valid chain (above); a node of type `s` is read only as its header.
    unsafe { chain_find::<vk::BaseInStructure>(p, s) }.is_some()
}

/// The struct of type `s` in the pNext chain at `p`, if any.
///
/// # Safety
/// `p` is null or a valid pNext chain, and a node of type `s` is a `T`.
pub unsafe fn chain_find<'a, T>(p: *const c_void, s: vk::StructureType) -> Option<&'a T> {
    let mut p = p;
    while !p.is_null() {
        // SAFETY: every chain node starts with sType and pNext.
        let base = unsafe { &*(p as *const vk::BaseInStructure) };
        if base.s_type == s {
            // SAFETY: a node of type `s` is a `T` (caller contract).
            return Some(unsafe { &*p.cast::<T>() });
        }
        p = base.p_next.cast();
    }
    None
}

/// `VkFramebufferCreateInfo`: imageless framebuffers carry no attachments to translate.
///
/// # Safety
/// `d` points to a writable copy of a valid `VkFramebufferCreateInfo`.
pub unsafe fn fix_framebuffer_create_info(cx: &Cx, d: *mut vk::FramebufferCreateInfo) {
    // SAFETY: caller contract.
    let d = unsafe { &mut *d };
    // SAFETY: the chain of a valid struct.
    d.p_next = unsafe { crate::generated::translate::chain(cx, d.p_next) };
    d.render_pass = cx.nd(d.render_pass);
    if d.flags.contains(vk::FramebufferCreateFlags::IMAGELESS) {
        d.p_attachments = std::ptr::null();
    } else {
        d.p_attachments = cx.nd_array(d.p_attachments, d.attachment_count as usize);
    }
}

/// `VkDescriptorSetLayoutBinding`: immutable samplers are read only for sampler types.
///
/// # Safety
/// `d` points to a writable copy of a valid `VkDescriptorSetLayoutBinding`.
pub unsafe fn fix_descriptor_set_layout_binding(cx: &Cx, d: *mut vk::DescriptorSetLayoutBinding) {
    // SAFETY: caller contract.
    let d = unsafe { &mut *d };
    let sampler = matches!(
        d.descriptor_type,
        vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
    );
    d.p_immutable_samplers = if sampler {
        cx.nd_array(d.p_immutable_samplers, d.descriptor_count as usize)
    } else {
        std::ptr::null()
    };
}

/// Rewrites the raw bytes of a descriptor update template's data for one member.
///
/// # Safety
/// `data` is laid out as `entries` describe (VUID-vkUpdateDescriptorSetWithTemplate-pData-01685).
pub unsafe fn template_data(
    cx: &Cx,
    entries: &[vk::DescriptorUpdateTemplateEntry],
    data: *const c_void,
) -> *const c_void {
    if data.is_null() {
        return data;
    }
    let mut size = 0usize;
    for e in entries {
        if e.descriptor_count == 0 {
            continue;
        }
        let elem = if uses_image_info(e.descriptor_type) {
            std::mem::size_of::<vk::DescriptorImageInfo>()
        } else if uses_buffer_info(e.descriptor_type) {
            std::mem::size_of::<vk::DescriptorBufferInfo>()
        } else if uses_texel_view(e.descriptor_type) {
            std::mem::size_of::<vk::BufferView>()
        } else {
            1
        };
        let count = if e.descriptor_type == vk::DescriptorType::INLINE_UNIFORM_BLOCK {
            // For inline uniform blocks descriptorCount is a byte count.
            e.offset + e.descriptor_count as usize
        } else {
            e.offset + (e.descriptor_count as usize - 1) * e.stride + elem
        };
        size = size.max(count);
    }
    let out = cx.arena.alloc::<u8>(size);
    // SAFETY: the template's entries bound the data the application passes.
    unsafe { std::ptr::copy_nonoverlapping(data as *const u8, out, size) };
    for e in entries {
        for i in 0..e.descriptor_count as usize {
            // SAFETY: each element lies inside the copied range computed above; the copy is
            // 8-byte aligned but elements may not be, hence unaligned access.
            unsafe {
                let p = out.add(e.offset + i * e.stride);
                if uses_image_info(e.descriptor_type) {
                    let p = p as *mut vk::DescriptorImageInfo;
                    let mut v = p.read_unaligned();
                    image_info(cx, e.descriptor_type, &mut v);
                    p.write_unaligned(v);
                } else if uses_buffer_info(e.descriptor_type) {
                    let p = p as *mut vk::DescriptorBufferInfo;
                    let mut v = p.read_unaligned();
                    v.buffer = cx.nd(v.buffer);
                    p.write_unaligned(v);
                } else if uses_texel_view(e.descriptor_type) {
                    let p = p as *mut vk::BufferView;
                    p.write_unaligned(cx.nd(p.read_unaligned()));
                }
            }
        }
    }
    out as *const c_void
}

/// `VkPipelineCreationFeedbackCreateInfo` points to outputs: only the executing member writes the
/// application's feedback; every other member writes into scratch room, so that its answer
/// (another driver's cache hits and timings) never overwrites the one the application sees.
///
/// # Safety
/// `d` points to a writable copy of a valid `VkPipelineCreationFeedbackCreateInfo`.
pub unsafe fn fix_pipeline_creation_feedback_create_info(
    cx: &Cx,
    d: *mut vk::PipelineCreationFeedbackCreateInfo,
) {
    // SAFETY: caller contract.
    let d = unsafe { &mut *d };
    // SAFETY: the chain of a valid struct.
    d.p_next = unsafe { crate::generated::translate::chain(cx, d.p_next) };
    if !cx.executes() {
        d.p_pipeline_creation_feedback = cx.arena.alloc::<vk::PipelineCreationFeedback>(1);
        let n = d.pipeline_stage_creation_feedback_count as usize;
        if n > 0 {
            d.p_pipeline_stage_creation_feedbacks =
                cx.arena.alloc::<vk::PipelineCreationFeedback>(n);
        }
    }
}
