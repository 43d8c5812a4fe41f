//! Images between members of different drivers (issue 3: coherence and transfer tiers).
//!
//! Members of different drivers lay an image's texels out differently, so the bytes of one
//! member's image mean nothing to another's, and copying the memory an image is bound to (what
//! shared host memory, mirrored memory and the staging tier do for buffers) would be wrong.
//! An image that can be copied through a buffer (optimal tiling, one sample, not sparse,
//! disjoint or external, a format whose aspects have a defined buffer layout) is instead kept
//! coherent as an image:
//!
//! - **Residency.** Members of the primary's driver (the *home* members) bind it to the
//!   application's memory as usual; every other member binds its copy to memory of vkfuse's
//!   own (the *private* binding), since the application's memory holds the home members'
//!   texel layout. Every member's copy gets `TRANSFER_SRC | TRANSFER_DST` usage.
//! - **Layouts.** Command buffers record the layout changes of their barriers and render
//!   passes (`layout.rs`); at submit, in submission order, vkfuse applies them to each image's
//!   layout per subresource (aspect, mip level, array layer). A member running a batch starts
//!   from the layouts the batch expects, since it either ran the image's last writer itself or
//!   received the image in those layouts.
//! - **Coherence.** Each image is a resource of the device's coherence tracker (the `memory`
//!   crate's, `exec.rs`), its subresources the units; the home members' copy (one, where their
//!   memory is one), every other member's copy, and the latest stage (the host) are its
//!   storages. A member's copy is stale where it is not among the holders. The batches that
//!   may write an image are those whose access set (`access.rs`) may write the range the
//!   image is bound to: commands, descriptors and barriers that name it, and conservative
//!   sets. Such a batch writes every subresource (for the tracker too), and copies the image
//!   out at its end (in the staging epilogue, `staging.rs`) into a staging buffer in host
//!   memory every member imports (tightly packed, per aspect, mip level and run of array layers
//!   in one layout): the image's *latest* copy, which the host then holds. A batch on a member
//!   whose copy is stale copies the latest copy in first (in its staging prologue), with the
//!   layouts it expects. The reader's batch is ordered after the writer's epilogue by the
//!   access sets (the writer's done point is its epilogue's). A member lost after its batches
//!   finished loses no image: the stage holds the latest of each (no copy out once placement
//!   is pinned; losing the pinned member loses the device anyway).
//! - Subresources in `UNDEFINED` (or `PREINITIALIZED`) layout hold nothing to copy.
//!
//! Where not every member imports host memory, stages come from each member's own pool
//! instead, and the bridge copies the writer's stage into the reader's before the reader's
//! batch starts (a CPU copy). Images that cannot be copied pin placement to the primary as
//! before (one log line).

use std::collections::HashMap;
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;
use parking_lot::Mutex;
use vkfuse_memory::{
    CoherenceError, Range, RangeSet, ResourceDesc, Sharing, Site, Sites, Storage, Tracker,
};

use crate::access::AccessSet;
use crate::layout::Transition;
use crate::mirror::Edge;
use crate::object::{Device, ObjectBase};
use crate::staging::{ImageRegion, ImageTransfer, Stage};
use crate::MAX_MEMBERS;

/// An image of a device whose members are of different drivers, that vkfuse can copy between
/// them.
pub struct Image {
    pub raw: u64,
    ty: vk::ImageType,
    extent: vk::Extent3D,
    mips: u32,
    layers: u32,
    /// The aspects a buffer copy names one at a time, with their copy block (bytes, width,
    /// height).
    aspects: Vec<(vk::ImageAspectFlags, (u32, u32, u32))>,
    /// Whether it can be copied between members: a multisampled image cannot (no buffer
    /// copies), so its contents stay with the member that wrote them, and a batch that needs
    /// them runs there ([`affinity`]).
    copyable: bool,
    state: Mutex<State>,
}

struct State {
    /// Per subresource (aspect, mip level, array layer): its layout after the batches
    /// submitted so far.
    layouts: Vec<vk::ImageLayout>,
    /// The latest contents, copied out by the last batch that may have written the image (or,
    /// with lazy copies, later: `held`).
    latest: Option<Latest>,
    /// Lazy copies (`VKFUSE_IMAGE_COPIES`, the default): the last batch that may have written
    /// the image left its latest contents in its member's copy alone, not copied out: that
    /// member and the batch's done point. The copy out is made when a batch on another
    /// member needs them ([`held_for`], [`published`]).
    held: Option<(usize, Edge)>,
    /// Subresources whose latest contents were lost with a member that alone held them (lazy
    /// copies): a batch that needs them loses the fused device; one that discards them
    /// (a barrier from `UNDEFINED`, a render pass starting there) defines them again.
    lost: RangeSet,
    /// The allocation (fused, raw) and range the image is bound to.
    bound: Option<(u64, Range)>,
    /// Per member: the memory of vkfuse's own its copy is bound to (null: the application's).
    private: [vk::DeviceMemory; MAX_MEMBERS],
}

#[derive(Clone)]
struct Latest {
    stage: Arc<Stage>,
    regions: Vec<ImageRegion>,
}

/// Why a multisampled image cannot be copied between members (it is tracked anyway, and
/// batches follow its contents: [`affinity`]).
const MULTISAMPLED: &str = "a multisampled image (no buffer copies)";

/// Why an image created with `ci` (valid, with a valid chain) cannot be copied between
/// members, if it cannot.
fn refusal(d: &Device, ci: &vk::ImageCreateInfo) -> Option<&'static str> {
    if let Some(md) = d
        .members
        .iter()
        .find(|md| crate::config::Config::get().fault("images", md.index))
    {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            crate::warn!(
                "member {}: VKFUSE_FAULT makes it refuse to copy images",
                md.index
            );
        }
        return Some("VKFUSE_FAULT");
    }
    if ci.tiling != vk::ImageTiling::OPTIMAL {
        return Some("an image of linear or modifier tiling");
    }
    if ci.samples != vk::SampleCountFlags::TYPE_1 {
        return Some(MULTISAMPLED);
    }
    let odd = vk::ImageCreateFlags::SPARSE_BINDING
        | vk::ImageCreateFlags::SPARSE_RESIDENCY
        | vk::ImageCreateFlags::SPARSE_ALIASED
        | vk::ImageCreateFlags::DISJOINT;
    if ci.flags.intersects(odd) {
        return Some("a sparse or disjoint image");
    }
    for s in [
        vk::StructureType::EXTERNAL_MEMORY_IMAGE_CREATE_INFO,
        vk::StructureType::IMAGE_SWAPCHAIN_CREATE_INFO_KHR,
        vk::StructureType::IMAGE_DRM_FORMAT_MODIFIER_LIST_CREATE_INFO_EXT,
        vk::StructureType::IMAGE_DRM_FORMAT_MODIFIER_EXPLICIT_CREATE_INFO_EXT,
    ] {
        if crate::conv::chain_has(ci.p_next, s) {
            return Some("an external, swapchain or modifier image");
        }
    }
    let aspects = crate::generated::formats::aspects(ci.format);
    if aspects.is_empty() {
        return Some("an image format without a buffer layout");
    }
    for a in [
        vk::ImageAspectFlags::COLOR,
        vk::ImageAspectFlags::DEPTH,
        vk::ImageAspectFlags::STENCIL,
    ] {
        if aspects.contains(a) && crate::generated::formats::copy_block(ci.format, a).is_none() {
            return Some("an image format without a buffer layout");
        }
    }
    // Every member must allow the copies' usage.
    let usage = ci.usage | vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST;
    for md in &d.members {
        let Some(pm) = d.physical().member(md.index) else {
            return Some("a member without a physical device");
        };
        let Some(f) = pm.fns.get_physical_device_image_format_properties else {
            return Some("a member without vkGetPhysicalDeviceImageFormatProperties");
        };
        let mut out = vk::ImageFormatProperties::default();
        // SAFETY: the member's physical device and a valid output.
        let r = unsafe {
            f(
                pm.handle,
                ci.format,
                ci.image_type,
                ci.tiling,
                usage,
                ci.flags,
                &mut out,
            )
        };
        if r != vk::Result::SUCCESS {
            return Some("a member cannot copy images of that format and usage");
        }
    }
    None
}

/// Pins placement to the primary because of an image that cannot be copied (logged with the
/// first reason, once per device).
fn pin_for(d: &Device, why: &str) {
    crate::exec::pin_primary(
        d,
        &format!(
            "an image has memory, the members do not see one image in it (different drivers lay texels out differently; SwiftShader keeps some beside the memory), and it cannot be copied between them ({why})"
        ),
    );
}

/// `vkCreateImage`: on devices whose members are of different drivers, an image vkfuse can
/// copy between members gets transfer usage on every member and is remembered.
///
/// # Safety
/// Arguments valid for `vkCreateImage`.
pub unsafe extern "system" fn create_image(
    device: vk::Device,
    p_create_info: *const vk::ImageCreateInfo,
    p_allocator: *const vk::AllocationCallbacks,
    p_image: *mut vk::Image,
) -> vk::Result {
    crate::guard::result("vkCreateImage", || {
        // SAFETY: the application's device.
        let d = unsafe { Device::resolve(device) }?;
        // SAFETY: a valid create info (vkCreateImage).
        let ci = unsafe { &*p_create_info };
        let mut refused = if d.exec.copies_images() {
            refusal(d, ci)
        } else {
            Some("")
        };
        // A multisampled image that would be copyable with one sample is tracked without
        // copies: batches that need its contents run where they are.
        let copyable = refused.is_none();
        if refused == Some(MULTISAMPLED) {
            let single = vk::ImageCreateInfo {
                samples: vk::SampleCountFlags::TYPE_1,
                ..*ci
            };
            if refusal(d, &single).is_none() {
                refused = None;
            }
        }
        let arena = crate::arena::Arena::scope();
        let mut obj = ObjectBase::new(vk::ObjectType::IMAGE);
        let undo = |handles: &[u64]| {
            for md in &d.members {
                if let (true, Some(f)) = (handles[md.index] != 0, md.fns.destroy_image) {
                    // SAFETY: the member image just created, unused.
                    unsafe {
                        f(
                            md.handle,
                            vk::Image::from_raw(handles[md.index]),
                            p_allocator,
                        )
                    };
                }
            }
        };
        let mut res = None;
        for md in &d.members {
            let cx = md.cx(&arena);
            let Some(f) = md.fns.create_image else {
                undo(&obj.handles);
                return Err(crate::guard::missing("vkCreateImage"));
            };
            // A valid create info, copied into the arena for the member.
            let copy = cx.one(
                p_create_info,
                crate::generated::translate::fix_image_create_info,
            ) as *mut vk::ImageCreateInfo;
            if copyable {
                let transfer =
                    vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST;
                // SAFETY: the arena copy and its copied chain are ours.
                unsafe {
                    (*copy).usage |= transfer;
                    // A separate stencil usage must allow the stencil aspect's copies too.
                    let mut p = (*copy).p_next as *mut vk::BaseOutStructure;
                    while !p.is_null() {
                        if (*p).s_type == vk::StructureType::IMAGE_STENCIL_USAGE_CREATE_INFO {
                            (*(p as *mut vk::ImageStencilUsageCreateInfo)).stencil_usage |=
                                transfer;
                        }
                        p = (*p).p_next;
                    }
                }
            }
            let mut out = vk::Image::null();
            // SAFETY: the create info translated for the member.
            let r = unsafe { f(md.handle, copy, p_allocator, &mut out) };
            if r.as_raw() < 0 {
                undo(&obj.handles);
                return Err(r);
            }
            res.get_or_insert(r);
            obj.handles[md.index] = out.as_raw();
        }
        let raw = obj.into_raw();
        if refused.is_none() {
            let aspects = [
                vk::ImageAspectFlags::COLOR,
                vk::ImageAspectFlags::DEPTH,
                vk::ImageAspectFlags::STENCIL,
            ]
            .into_iter()
            .filter(|a| crate::generated::formats::aspects(ci.format).contains(*a))
            .filter_map(|a| crate::generated::formats::copy_block(ci.format, a).map(|b| (a, b)))
            .collect::<Vec<_>>();
            let layers = if ci.image_type == vk::ImageType::TYPE_3D {
                1
            } else {
                ci.array_layers.max(1)
            };
            let mips = ci.mip_levels.max(1);
            let units = aspects.len() * mips as usize * layers as usize;
            let image = Image {
                raw,
                ty: ci.image_type,
                extent: ci.extent,
                mips,
                layers,
                aspects,
                copyable,
                state: Mutex::new(State {
                    layouts: vec![ci.initial_layout; units],
                    latest: None,
                    held: None,
                    lost: RangeSet::new(),
                    bound: None,
                    private: [vk::DeviceMemory::null(); MAX_MEMBERS],
                }),
            };
            d.exec.images.lock().insert(raw, Arc::new(image));
        } else if let Some(why) = refused.filter(|w| !w.is_empty()) {
            // Pinned once the image has memory (`before_bind`).
            d.exec.refused.lock().insert(raw, why);
        }
        // SAFETY: the application's output pointer.
        unsafe { *p_image = vk::Image::from_raw(raw) };
        Ok(res.unwrap_or(vk::Result::SUCCESS))
    })
}

/// `vkDestroyImage`: the members' copies, then vkfuse's own memory of the private ones.
///
/// # Safety
/// Arguments valid for `vkDestroyImage`.
pub unsafe extern "system" fn destroy_image(
    device: vk::Device,
    image: vk::Image,
    p_allocator: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyImage", || {
        // SAFETY: the application's device.
        let d = unsafe { Device::resolve(device) }?;
        if image.is_null() {
            return Ok(());
        }
        // SAFETY: a live image of the application's.
        let obj = unsafe { ObjectBase::get(image.as_raw()) }?;
        for md in &d.members {
            let raw = obj.handles[md.index];
            if let (true, Some(f)) = (raw != 0, md.fns.destroy_image) {
                // SAFETY: the member's image, no longer used (vkDestroyImage).
                unsafe { f(md.handle, vk::Image::from_raw(raw), p_allocator) };
            }
        }
        d.exec.refused.lock().remove(&image.as_raw());
        let gone = d.exec.images.lock().remove(&image.as_raw());
        if let Some(img) = gone {
            crate::exec::unbind_image(d, &img);
            let st = img.state.lock();
            for md in &d.members {
                let mem = st.private[md.index];
                if let (false, Some(f)) = (mem.is_null(), md.fns.free_memory) {
                    // SAFETY: vkfuse's memory of the member's copy, destroyed above.
                    unsafe { f(md.handle, mem, std::ptr::null()) };
                }
            }
        }
        // SAFETY: the object made by vkCreateImage, no longer used.
        unsafe { ObjectBase::free(image.as_raw()) };
        Ok(())
    })
}

/// Before `image` is bound: an image vkfuse copies between members gets memory of vkfuse's
/// own on every member outside the primary's driver (returned per member, null for the
/// others); any other image pins placement on a device of several drivers.
pub fn before_bind(d: &Device, image: u64) -> [vk::DeviceMemory; MAX_MEMBERS] {
    let mut out = [vk::DeviceMemory::null(); MAX_MEMBERS];
    if !d.exec.copies_images() {
        return out;
    }
    let Some(img) = d.exec.images.lock().get(&image).cloned() else {
        let why = d
            .exec
            .refused
            .lock()
            .get(&image)
            .copied()
            .unwrap_or("an image vkfuse does not know");
        pin_for(d, why);
        return out;
    };
    let home = d.exec.home;
    // SAFETY: a live image of the application's.
    let Ok(obj) = (unsafe { ObjectBase::get(image) }) else {
        return out;
    };
    let mut st = img.state.lock();
    for md in d.members.iter().filter(|md| home & (1 << md.index) == 0) {
        if !st.private[md.index].is_null() {
            out[md.index] = st.private[md.index];
            continue;
        }
        match private_memory(d, md, vk::Image::from_raw(obj.handles[md.index])) {
            Ok(mem) => {
                st.private[md.index] = mem;
                out[md.index] = mem;
            }
            Err(why) => {
                crate::warn!(
                    "member {}: no memory for its copy of an image ({why})",
                    md.index
                );
                drop(st);
                d.exec.images.lock().remove(&image);
                pin_for(d, "a member had no memory for its copy");
                return [vk::DeviceMemory::null(); MAX_MEMBERS];
            }
        }
    }
    out
}

/// Memory of member `md` for its copy `image`: device-local where it has such memory.
fn private_memory(
    d: &Device,
    md: &crate::object::MemberDevice,
    image: vk::Image,
) -> Result<vk::DeviceMemory, String> {
    let pm = d.physical().member(md.index).ok_or("no physical device")?;
    let (Some(req_f), Some(alloc_f), Some(props_f)) = (
        md.fns.get_image_memory_requirements,
        md.fns.allocate_memory,
        pm.fns.get_physical_device_memory_properties,
    ) else {
        return Err("missing entry points".into());
    };
    let mut req = vk::MemoryRequirements::default();
    // SAFETY: the member's image and a valid output.
    unsafe { req_f(md.handle, image, &mut req) };
    let mut props = vk::PhysicalDeviceMemoryProperties::default();
    // SAFETY: the member's physical device and a valid output.
    unsafe { props_f(pm.handle, &mut props) };
    let allowed = |t: u32| req.memory_type_bits & (1 << t) != 0;
    let ty = (0..props.memory_type_count)
        .filter(|&t| allowed(t))
        .find(|&t| {
            props.memory_types[t as usize]
                .property_flags
                .contains(vk::MemoryPropertyFlags::DEVICE_LOCAL)
        })
        .or_else(|| (0..props.memory_type_count).find(|&t| allowed(t)))
        .ok_or("no memory type")?;
    let ai = vk::MemoryAllocateInfo {
        allocation_size: req.size,
        memory_type_index: ty,
        ..Default::default()
    };
    let mut mem = vk::DeviceMemory::null();
    // SAFETY: a valid allocate info of the member's.
    let r = unsafe { alloc_f(md.handle, &ai, std::ptr::null(), &mut mem) };
    if r != vk::Result::SUCCESS {
        return Err(format!("vkAllocateMemory {r:?}"));
    }
    Ok(mem)
}

/// After `image` was bound at `range` of the allocation `mem` (fused, raw): whether vkfuse
/// copies it between members (then access sets name it by its own handle, and writes to that
/// range through anything else write all of it).
pub fn bound(d: &Device, image: u64, mem: u64, range: Range) -> bool {
    let Some(img) = d.exec.images.lock().get(&image).cloned() else {
        return false;
    };
    img.state.lock().bound = Some((mem, range));
    crate::exec::bind_image(d, mem, img);
    true
}

impl Image {
    /// The allocation (fused, raw) the image is bound to, once bound.
    pub fn bound_memory(&self) -> Option<u64> {
        self.state.lock().bound.map(|(m, _)| m)
    }

    /// The range of its allocation the image is bound to, where member `m`'s copy is bound to
    /// memory of vkfuse's own instead (the bytes there are not `m`'s image).
    pub fn private_range(&self, m: usize) -> Option<Range> {
        let st = self.state.lock();
        st.bound
            .filter(|_| !st.private[m].is_null())
            .map(|(_, r)| r)
    }

    /// Starts tracking the image in the coherence tracker. Its units are its subresources
    /// (aspect, mip level, array layer, as [`Image::unit`] numbers them). The members of
    /// `members` in `home` share one copy where `shared` (they bind it to one memory); every
    /// other member has a copy of its own, and the host holds the latest stage.
    pub fn track(
        &self,
        tracker: &mut Tracker,
        members: &[usize],
        home: u64,
        shared: bool,
    ) -> Result<(), CoherenceError> {
        let group: Sites = members
            .iter()
            .filter(|m| shared && home & (1 << **m) != 0)
            .filter_map(|m| Site::member(*m))
            .collect();
        let mut storages = Vec::new();
        if let Some(owner) = group.first() {
            storages.push(Storage {
                sites: group,
                owner,
            });
        }
        for s in members.iter().filter_map(|m| Site::member(*m)) {
            if !group.contains(s) {
                storages.push(Storage {
                    sites: Sites::single(s),
                    owner: s,
                });
            }
        }
        storages.push(Storage {
            sites: Sites::single(Site::HOST),
            owner: Site::HOST,
        });
        let sharing = Sharing::new(storages)?;
        let all = sharing.sites();
        let units = self.aspects.len() as u64 * u64::from(self.mips) * u64::from(self.layers);
        // The size of the first aspect's level 0, for transfer costs.
        let level0 = self.aspects.first().map_or(1, |(_, (bytes, bw, bh))| {
            u64::from(self.extent.width.div_ceil(*bw))
                * u64::from(self.extent.height.div_ceil(*bh))
                * u64::from(self.extent.depth.max(1))
                * u64::from(*bytes)
        });
        let desc = ResourceDesc {
            len: units.max(1),
            unit_bytes: level0.max(1),
            sharing,
        };
        tracker.create(self.raw, desc, all)
    }

    /// The index of subresource (aspect `a`, mip level, array layer).
    fn unit(&self, a: usize, mip: u32, layer: u32) -> usize {
        (a * self.mips as usize + mip as usize) * self.layers as usize + layer as usize
    }

    /// The subresources (units) of a subresource range as the application gave it
    /// (`VK_REMAINING_*` resolved; a 3D image's slices are one subresource).
    fn units_of(&self, r: &vk::ImageSubresourceRange) -> impl Iterator<Item = usize> + '_ {
        let count = |base: u32, n: u32, all: u32| {
            if n == vk::REMAINING_MIP_LEVELS {
                all.saturating_sub(base)
            } else {
                n.min(all.saturating_sub(base))
            }
        };
        let mips =
            r.base_mip_level..r.base_mip_level + count(r.base_mip_level, r.level_count, self.mips);
        let layers = if self.ty == vk::ImageType::TYPE_3D {
            0..1
        } else {
            r.base_array_layer
                ..r.base_array_layer + count(r.base_array_layer, r.layer_count, self.layers)
        };
        let mask = r.aspect_mask;
        self.aspects
            .iter()
            .enumerate()
            // A colour image's ranges may name plane or memory-plane aspects only for formats
            // vkfuse does not copy; depth/stencil ones name their aspects.
            .filter(move |(_, (flag, _))| {
                mask.contains(*flag) || (*flag == vk::ImageAspectFlags::COLOR && mask.is_empty())
            })
            .flat_map(move |(a, _)| {
                let layers = layers.clone();
                mips.clone()
                    .flat_map(move |mip| layers.clone().map(move |layer| (a, mip, layer)))
            })
            .map(|(a, mip, layer)| self.unit(a, mip, layer))
            .filter(|u| *u < self.units())
    }

    /// Its subresources (the units the tracker counts).
    pub fn unit_count(&self) -> u64 {
        self.units() as u64
    }

    /// The number of subresources.
    fn units(&self) -> usize {
        self.aspects.len() * self.mips as usize * self.layers as usize
    }

    /// The units of `r`, as ranges.
    pub fn range_units(&self, r: &vk::ImageSubresourceRange) -> RangeSet {
        self.units_of(r).map(|u| Range::at(u as u64, 1)).collect()
    }

    /// The units of `l` (one mip level).
    pub fn layers_units(&self, l: &vk::ImageSubresourceLayers) -> RangeSet {
        self.range_units(&vk::ImageSubresourceRange {
            aspect_mask: l.aspect_mask,
            base_mip_level: l.mip_level,
            level_count: 1,
            base_array_layer: l.base_array_layer,
            layer_count: l.layer_count,
        })
    }

    /// Applies a recorded layout change to `layouts`.
    fn apply(&self, layouts: &mut [vk::ImageLayout], t: &Transition) {
        for u in self.units_of(&t.range) {
            layouts[u] = t.layout;
        }
    }

    /// The regions of `regions` (a tightly packed copy, [`Image::regions`]) for the
    /// subresources of `units`: whole mip levels and layers, every aspect of a level and layer
    /// if one is among `units` (the regions of one run of layers share their barriers).
    fn select(&self, regions: &[ImageRegion], units: &RangeSet) -> Vec<ImageRegion> {
        let wanted = |_, mip: u32, layer: u32| {
            (0..self.aspects.len())
                .any(|a| units.contains(self.unit(a, mip, layer) as u64))
                .then_some(())
        };
        self.layer_runs(regions, wanted, |_, ()| {})
    }

    /// The regions of `packed` (a tightly packed copy, [`Image::regions`]) for the
    /// subresources that `keep` and that hold something in `layouts`, each in its layout
    /// there: split into runs of layers whose subresources share their layouts (every aspect),
    /// the buffer offsets kept.
    pub fn relayout(
        &self,
        packed: &[ImageRegion],
        layouts: &[vk::ImageLayout],
        keep: impl Fn(usize) -> bool,
    ) -> Vec<ImageRegion> {
        let all_aspects = self
            .aspects
            .iter()
            .fold(vk::ImageAspectFlags::empty(), |a, (f, _)| a | *f);
        // The layout of aspect `a` at (`mip`, `layer`) (`None`: not copied), and whether every
        // aspect there shares it.
        let key = |a: usize, mip: u32, layer: u32| {
            let u = self.unit(a, mip, layer);
            let l = layouts
                .get(u)
                .copied()
                .unwrap_or(vk::ImageLayout::UNDEFINED);
            if empty(l) || !keep(u) {
                return None;
            }
            let same =
                (0..self.aspects.len()).all(|b| layouts.get(self.unit(b, mip, layer)) == Some(&l));
            Some((l, same))
        };
        self.layer_runs(packed, key, |part, (layout, same)| {
            part.layout = layout;
            if same {
                part.barrier_aspects = all_aspects;
            } else {
                part.barrier_aspects = part.copy.image_subresource.aspect_mask;
            }
        })
    }

    /// Each region of `regions` (a tightly packed copy) cut into runs of layers of one `key`
    /// (given the aspect's index, mip level and layer; `None`: left out), each run at its
    /// first layer's bytes of the packed copy, and made what `set` makes it with its key.
    fn layer_runs<K: Copy + PartialEq>(
        &self,
        regions: &[ImageRegion],
        key: impl Fn(usize, u32, u32) -> Option<K>,
        set: impl Fn(&mut ImageRegion, K),
    ) -> Vec<ImageRegion> {
        let mut out = Vec::new();
        for r in regions {
            let s = r.copy.image_subresource;
            let Some((a, (_, (bytes, bw, bh)))) = self
                .aspects
                .iter()
                .enumerate()
                .find(|(_, (f, _))| *f == s.aspect_mask)
            else {
                continue;
            };
            let e = r.copy.image_extent;
            let layer_bytes = u64::from(e.width.div_ceil(*bw))
                * u64::from(e.height.div_ceil(*bh))
                * u64::from(e.depth)
                * u64::from(*bytes);
            let key = |layer: u32| key(a, s.mip_level, layer);
            let end = s.base_array_layer + s.layer_count;
            let mut l = s.base_array_layer;
            while l < end {
                let Some(k) = key(l) else {
                    l += 1;
                    continue;
                };
                let start = l;
                while l < end && key(l) == Some(k) {
                    l += 1;
                }
                let mut part = *r;
                part.copy.buffer_offset += u64::from(start - s.base_array_layer) * layer_bytes;
                part.copy.image_subresource.base_array_layer = start;
                part.copy.image_subresource.layer_count = l - start;
                set(&mut part, k);
                out.push(part);
            }
        }
        out
    }

    /// The layouts of the image through the rounds of a split batch, from `start` (before
    /// it), given per round whether the round copies the image in and out (`copied`) and its
    /// image barriers of the image in order (a tag, the range, old and new layout).
    ///
    /// A barrier from `UNDEFINED` may discard contents; vkfuse keeps them instead, so that
    /// every member's copy holds the same bytes (those of the packed copy): in a round that
    /// copies the image in, the subresources its barriers first take out of `UNDEFINED` are
    /// moved to their first layout before the copy (`first`), and every barrier of the image
    /// from `UNDEFINED` is replayed as barriers from each subresource's layout at that point,
    /// one per subresource (`kept`, by tag; a subresource that holds nothing and is not
    /// copied in keeps its barrier from `UNDEFINED`).
    #[allow(clippy::type_complexity)]
    pub fn round_layouts<T: Copy>(
        &self,
        start: &[vk::ImageLayout],
        rounds: &[(
            bool,
            Vec<(
                T,
                vk::ImageSubresourceRange,
                (vk::ImageLayout, vk::ImageLayout),
            )>,
        )],
    ) -> Vec<RoundLayouts<T>> {
        let mut cur = start.to_vec();
        let mut out = Vec::with_capacity(rounds.len());
        for (copied, barriers) in rounds {
            let at_start = cur.clone();
            let mut first = cur.clone();
            if *copied {
                for (_, range, (_, new)) in barriers {
                    for u in self.units_of(range) {
                        if empty(first[u]) {
                            first[u] = *new;
                        }
                    }
                }
                cur.clone_from(&first);
            }
            let mut kept = Vec::new();
            for (tag, range, (old, new)) in barriers {
                let mut each = Vec::new();
                for u in self.units_of(range) {
                    if *old == vk::ImageLayout::UNDEFINED {
                        let from = if empty(cur[u]) { *old } else { cur[u] };
                        each.push((self.unit_range(u), from, *new));
                    }
                    cur[u] = *new;
                }
                if *old == vk::ImageLayout::UNDEFINED {
                    kept.push((*tag, each));
                }
            }
            out.push(RoundLayouts {
                start: at_start,
                first,
                end: cur.clone(),
                kept,
            });
        }
        out
    }

    /// The subresource range of one unit.
    fn unit_range(&self, u: usize) -> vk::ImageSubresourceRange {
        let per_aspect = self.mips as usize * self.layers as usize;
        let (a, rest) = (u / per_aspect.max(1), u % per_aspect.max(1));
        let (mip, layer) = (
            rest / self.layers.max(1) as usize,
            rest % self.layers.max(1) as usize,
        );
        let is_3d = self.ty == vk::ImageType::TYPE_3D;
        vk::ImageSubresourceRange {
            aspect_mask: self
                .aspects
                .get(a)
                .map_or(vk::ImageAspectFlags::COLOR, |x| x.0),
            base_mip_level: mip as u32,
            level_count: 1,
            base_array_layer: if is_3d { 0 } else { layer as u32 },
            layer_count: 1,
        }
    }

    /// The regions of a tightly packed copy of every subresource that holds something, in
    /// `layouts`, and the bytes they take.
    fn regions(&self, layouts: &[vk::ImageLayout]) -> (Vec<ImageRegion>, u64) {
        let all_aspects = self
            .aspects
            .iter()
            .fold(vk::ImageAspectFlags::empty(), |a, (f, _)| a | *f);
        let mut out = Vec::new();
        let mut at = 0u64;
        for mip in 0..self.mips {
            let w = (self.extent.width >> mip).max(1);
            let h = (self.extent.height >> mip).max(1);
            let depth = if self.ty == vk::ImageType::TYPE_3D {
                (self.extent.depth >> mip).max(1)
            } else {
                1
            };
            // Runs of layers whose subresources are in the same layouts (every aspect).
            let key = |layer: u32| -> Vec<vk::ImageLayout> {
                (0..self.aspects.len())
                    .map(|a| layouts[self.unit(a, mip, layer)])
                    .collect()
            };
            let mut start = 0;
            while start < self.layers {
                let k = key(start);
                let mut end = start + 1;
                while end < self.layers && key(end) == k {
                    end += 1;
                }
                for (a, (flag, (bytes, bw, bh))) in self.aspects.iter().enumerate() {
                    let layout = k[a];
                    if empty(layout) {
                        continue;
                    }
                    // Barriers of a depth/stencil image name both aspects unless their
                    // layouts differ (separate depth/stencil layouts).
                    let barrier = if k.iter().all(|l| *l == layout) {
                        all_aspects
                    } else {
                        *flag
                    };
                    let block = u64::from(*bytes);
                    let align = lcm(block, 4);
                    at = at.div_ceil(align) * align;
                    let size = u64::from(w.div_ceil(*bw))
                        * u64::from(h.div_ceil(*bh))
                        * u64::from(depth)
                        * block
                        * u64::from(end - start);
                    out.push(ImageRegion {
                        copy: vk::BufferImageCopy {
                            buffer_offset: at,
                            buffer_row_length: 0,
                            buffer_image_height: 0,
                            image_subresource: vk::ImageSubresourceLayers {
                                aspect_mask: *flag,
                                mip_level: mip,
                                base_array_layer: start,
                                layer_count: end - start,
                            },
                            image_offset: vk::Offset3D::default(),
                            image_extent: vk::Extent3D {
                                width: w,
                                height: h,
                                depth,
                            },
                        },
                        layout,
                        barrier_aspects: barrier,
                    });
                    at += size;
                }
                start = end;
            }
        }
        (out, at)
    }
}

/// Whether a subresource in layout `l` holds nothing (`UNDEFINED`, or `PREINITIALIZED`, which
/// only linear images hold anything in; vkfuse copies optimal ones).
pub fn empty(l: vk::ImageLayout) -> bool {
    l == vk::ImageLayout::UNDEFINED || l == vk::ImageLayout::PREINITIALIZED
}

fn lcm(a: u64, b: u64) -> u64 {
    let gcd = |mut x: u64, mut y: u64| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    a / gcd(a, b).max(1) * b
}

/// What a batch on member `j` does with the images it touches: the copies in (stale copies)
/// and out (images it may write) its staging prologue and epilogue make, and what becomes of
/// each image once the batch is submitted ([`Plan::commit`]).
#[derive(Default)]
pub struct Plan {
    pub ins: Vec<ImageTransfer>,
    pub outs: Vec<ImageTransfer>,
    /// Copies the bridge makes from writers' stages into this batch's input stages, once the
    /// writers are done (members that do not share stages).
    pub fills: Vec<Fill>,
    /// The subresources the copies in take, and those the images copied in have.
    pub subresources_in: (u64, u64),
    changes: Vec<Change>,
}

/// A CPU copy of `len` bytes from a writer's output stage into a reader's input stage.
pub struct Fill {
    from: Arc<Stage>,
    to: Arc<Stage>,
    len: u64,
}

impl Fill {
    /// Copies the bytes (on the bridge, after the writer's batch completed); returns how many.
    pub fn run(&self) -> u64 {
        if !self.from.is_valid() {
            return 0;
        }
        // SAFETY: both stages are mapped and at least `len` bytes long; the writer's batch is
        // done (the bridge waited for it) and the reader's has not started (it waits for the
        // bridge).
        unsafe {
            std::ptr::copy_nonoverlapping(self.from.base(), self.to.base(), self.len as usize)
        };
        self.len
    }
}

struct Change {
    image: Arc<Image>,
    layouts: Option<Vec<vk::ImageLayout>>,
    /// The subresources whose latest contents the batch's member lacked: it is brought up to
    /// date there (copied in, where there is something defined to copy).
    stale: RangeSet,
    /// The subresources the batch may write.
    written: RangeSet,
    /// The batch may write it: its latest contents are the batch's copy out (None: nothing
    /// defined to copy, or nothing copied out), and whether the host (the stage) holds them
    /// afterwards (false when nothing is copied out: placement is pinned, or lazy copies).
    wrote: Option<(Option<Latest>, bool)>,
    /// Lazy copies: the batch's member holds the latest contents alone ([`State::held`]).
    held: bool,
    /// Lost subresources ([`State::lost`]) the batch discards, defining them again.
    revived: RangeSet,
}

/// How a batch uses an image: the subresources it touches, may write, needs the latest
/// contents of first, and discards.
struct BatchUse {
    written: RangeSet,
    needed: RangeSet,
    discarded: RangeSet,
}

/// How a batch with `access` and layout changes `transitions` uses image `img` (state `st`);
/// `None` where it does not touch the image.
fn batch_use(
    img: &Image,
    st: &State,
    access: &AccessSet,
    transitions: &[Transition],
) -> Option<BatchUse> {
    let (mem, range) = st.bound?;
    // How the batch uses the memory the image is bound to: writes there that do not name an
    // image (through a buffer or image aliasing it) change the whole image.
    let mem_use = access.memory.get(&mem);
    let all = RangeSet::of(Range::at(0, img.units() as u64));
    // The subresources the batch touches and may write: access sets name an image copied
    // between drivers by its own handle, with the subresources its views, barriers and
    // transfer commands name (`access.rs`).
    let (mut touched, mut written) = match (&access.everything, access.memory.get(&img.raw)) {
        (Some(_), _) => (all.clone(), all.clone()),
        (None, Some(u)) => (u.touched.intersection(&all), u.written.intersection(&all)),
        (None, None) => (RangeSet::new(), RangeSet::new()),
    };
    let at = RangeSet::of(range);
    let aliased = mem_use.is_some_and(|u| u.touched.intersects(&at));
    if mem_use.is_some_and(|u| u.written.intersects(&at)) {
        touched = all.clone();
        written = all.clone();
    } else if aliased {
        touched = all.clone();
    }
    for t in transitions.iter().filter(|t| t.image == img.raw) {
        let units = img.range_units(&t.range);
        touched.union(&units);
        written.union(&units);
    }
    if touched.is_empty() {
        return None;
    }
    // What the batch's member must hold first: what it touches, or, for a batch that may
    // write (whose copy out takes every subresource), all of the image, less what it
    // discards. Subresources the batch discards before touching them otherwise (a barrier
    // from UNDEFINED, a render pass starting there) need nothing copied in (not where
    // something aliasing the image's memory may have read it first).
    let mut needed = if written.is_empty() {
        touched.clone()
    } else {
        all
    };
    let mut discarded = RangeSet::new();
    if let (None, false, Some(d)) = (&access.everything, aliased, access.discards.get(&img.raw)) {
        needed.subtract(d);
        discarded = d.clone();
    }
    Some(BatchUse {
        written,
        needed,
        discarded,
    })
}

/// The images a batch with `access` and layout changes `transitions` may use: those its
/// access set names, those bound to memory it touches (through an alias), those it changes
/// the layouts of; all for "every allocation".
fn candidates(
    d: &Device,
    binds: &HashMap<u64, Vec<Arc<Image>>>,
    access: &AccessSet,
    transitions: &[Transition],
) -> Vec<Arc<Image>> {
    if access.everything.is_some() {
        return binds.values().flatten().cloned().collect();
    }
    let known = d.exec.images.lock();
    let mut wanted: std::collections::BTreeSet<u64> = transitions
        .iter()
        .map(|t| t.image)
        .chain(
            access
                .memory
                .keys()
                .filter(|k| known.contains_key(k))
                .copied(),
        )
        .collect();
    for mem in access.memory.keys() {
        wanted.extend(binds.get(mem).into_iter().flatten().map(|i| i.raw));
    }
    wanted
        .iter()
        .filter_map(|raw| known.get(raw).cloned())
        .collect()
}

/// The member a batch with `access` and layout changes `transitions` must run on because it
/// needs the contents of images that cannot be copied (multisampled), which the member that
/// last wrote them holds: `Ok(None)` where it needs none; `Err` where two members hold such
/// images it needs (it cannot run anywhere with both: why).
pub fn affinity(
    d: &Device,
    binds: &HashMap<u64, Vec<Arc<Image>>>,
    access: &AccessSet,
    transitions: &[Transition],
    alive: u64,
) -> Result<Option<usize>, &'static str> {
    if binds.is_empty() {
        return Ok(None);
    }
    let mut at: Option<usize> = None;
    for img in candidates(d, binds, access, transitions) {
        if img.copyable {
            continue;
        }
        let st = img.state.lock();
        let Some((holder, _)) = st.held else {
            continue;
        };
        let Some(u) = batch_use(&img, &st, access, transitions) else {
            continue;
        };
        if u.needed.is_empty() || alive & (1 << holder) == 0 {
            continue;
        }
        match at {
            Some(m) if m != holder => {
                return Err("it needs the contents of multisampled images that two members wrote")
            }
            _ => at = Some(holder),
        }
    }
    Ok(at)
}

/// An image whose latest contents only one member's copy holds (lazy copies: `State::held`),
/// needed where that copy is not: it is copied out on its holder first (`exec.rs`,
/// `publish_images`), then [`published`].
pub struct Held {
    pub image: Arc<Image>,
    /// The member holding the latest contents, and the done point of the batch that wrote
    /// them.
    pub holder: usize,
    pub written: Edge,
    /// The holder's copy of the image, and the copy out's regions (every subresource that
    /// holds something, in its current layout) and bytes.
    pub member_image: vk::Image,
    pub regions: Vec<ImageRegion>,
    pub size: u64,
}

/// The images a batch with `access` and layout changes `transitions` may use whose latest
/// contents only one member's copy holds and which `to` (a member, or the host for a batch
/// that splits: `for_split`) lacks.
pub fn held_for(
    d: &Device,
    tracker: &Tracker,
    binds: &HashMap<u64, Vec<Arc<Image>>>,
    access: &AccessSet,
    transitions: &[Transition],
    to: Site,
) -> Vec<Held> {
    if binds.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for img in candidates(d, binds, access, transitions) {
        if !img.copyable {
            continue;
        }
        let st = img.state.lock();
        let Some((holder, written)) = st.held else {
            continue;
        };
        if Site::member(holder) == Some(to) {
            continue;
        }
        // What the batch needs (for a batch that splits, all of the image: every member's
        // slices start from the host's packed copy).
        let needed = if to == Site::HOST {
            st.bound
                .map(|_| RangeSet::of(Range::at(0, img.units() as u64)))
        } else {
            batch_use(&img, &st, access, transitions).map(|u| u.needed)
        };
        let Some(needed) = needed else {
            continue;
        };
        if needed.is_empty()
            || tracker
                .lacks(img.raw, &needed, to)
                .is_ok_and(|l| l.is_empty())
        {
            continue;
        }
        // SAFETY: a bound image is a live object until vkDestroyImage removes it.
        let Ok(obj) = (unsafe { ObjectBase::get(img.raw) }) else {
            continue;
        };
        let (regions, size) = img.regions(&st.layouts);
        if regions.is_empty() {
            continue;
        }
        out.push(Held {
            image: img.clone(),
            holder,
            written,
            member_image: vk::Image::from_raw(obj.handles[holder]),
            regions,
            size,
        });
    }
    out
}

/// Member `m` was lost while it alone held the latest contents of `units` of `img`: they are
/// lost, and a batch that needs them loses the fused device (`State::lost`). Returns
/// whether anything is newly lost.
pub fn lose(img: &Image, m: usize, units: Range) -> bool {
    let mut st = img.state.lock();
    if st.held.is_some_and(|(i, _)| i == m) {
        st.held = None;
    }
    let before = st.lost.units();
    st.lost.insert(units);
    st.lost.units() != before
}

/// `h`'s image was copied out on its holder into `stage` (submitted): the host holds its
/// latest contents too.
pub fn published(h: Held, tracker: &mut Tracker, stage: Arc<Stage>) -> Result<(), CoherenceError> {
    let mut st = h.image.state.lock();
    st.latest = Some(Latest {
        stage,
        regions: h.regions,
    });
    st.held = None;
    let t = tracker.read_plan(h.image.raw, Range::WHOLE, Site::HOST)?;
    tracker.commit_transfers(&t)
}

/// Plans the image transfers of a batch on member `j` with `access` and layout changes
/// `transitions`, given the images bound per allocation (`binds`) and which members hold each
/// image's latest contents (`tracker`); `pinned`: every batch runs on `j` from now on, so
/// nothing is copied out (nor when `j` is the last member alive). Nothing changes until
/// [`Plan::commit`].
pub fn plan(
    d: &Device,
    tracker: &Tracker,
    binds: &HashMap<u64, Vec<Arc<Image>>>,
    access: &AccessSet,
    transitions: &[Transition],
    j: usize,
    pinned: bool,
) -> Result<Plan, vk::Result> {
    let mut plan = Plan::default();
    if binds.is_empty() {
        return Ok(plan);
    }
    // Stages in host memory every member imports; otherwise in each member's own pool, the
    // bridge copying from the writer's stage into the reader's (`Plan::fills`).
    let shared = d.exec.import_align != 0;
    let site = Site::member(j).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
    // With one member left (the others lost), no other member reads a copy either.
    let alive = d
        .members
        .iter()
        .filter(|md| !d.exec.member_lost(md.index))
        .count();
    let pinned = pinned || alive <= 1;
    let lazy = crate::config::Config::get().image_copies == crate::config::ImageCopies::Lazy;
    for img in &candidates(d, binds, access, transitions) {
        {
            let st = img.state.lock();
            let Some(BatchUse {
                written,
                needed,
                discarded,
            }) = batch_use(img, &st, access, transitions)
            else {
                continue;
            };
            if needed.intersects(&st.lost) {
                // Lazy copies: what the batch needs was lost with a member.
                crate::error!(
                    "a batch needs an image whose latest contents were lost with a member that alone held them; the fused device is lost"
                );
                d.exec.set_lost();
                return Err(vk::Result::ERROR_DEVICE_LOST);
            }
            let revived = st.lost.intersection(&discarded);
            let mine: Vec<&Transition> =
                transitions.iter().filter(|t| t.image == img.raw).collect();
            // SAFETY: a bound image is a live object until vkDestroyImage removes it.
            let Ok(obj) = (unsafe { ObjectBase::get(img.raw) }) else {
                continue;
            };
            let member_image = vk::Image::from_raw(obj.handles[j]);
            let stale = tracker.lacks(img.raw, &needed, site).unwrap_or(needed);
            if !stale.is_empty() && !img.copyable {
                // Its contents cannot move: the batch had to be placed where they are
                // (`affinity`).
                crate::debug!(
                    "member {j}: a batch needs a multisampled image whose contents are on another member"
                );
                return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
            }
            if !stale.is_empty() && st.held.is_some_and(|(i, _)| i != j) {
                // Lazy copies: another member's copy alone holds what `j` lacks, and it was
                // not copied out for this batch (`held_for`): `j` cannot take the batch.
                crate::debug!(
                    "member {j}: an image's latest contents are only on another member, not copied out for this batch"
                );
                return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
            }
            if !stale.is_empty() {
                if let Some(l) = st.latest.as_ref().filter(|l| l.stage.is_valid()) {
                    let regions = img.select(&l.regions, &stale);
                    if !regions.is_empty() {
                        let stage = if l.stage.is_shared() {
                            l.stage.clone()
                        } else {
                            let len = l.stage.ranges.units();
                            let input = d.staging.stage(
                                d,
                                j,
                                RangeSet::of(Range::at(0, len)),
                                true,
                                false,
                            )?;
                            plan.fills.push(Fill {
                                from: l.stage.clone(),
                                to: input.clone(),
                                len,
                            });
                            input
                        };
                        let taken: u32 = regions
                            .iter()
                            .map(|r| r.copy.image_subresource.layer_count)
                            .sum();
                        plan.subresources_in.0 += u64::from(taken);
                        plan.subresources_in.1 += img.units() as u64;
                        plan.ins.push(ImageTransfer {
                            image: member_image,
                            stage,
                            regions,
                        });
                    }
                }
            }
            let layouts = (!mine.is_empty()).then(|| {
                let mut l = st.layouts.clone();
                for t in &mine {
                    img.apply(&mut l, t);
                }
                l
            });
            let mut wrote = None;
            let mut held = false;
            if !written.is_empty() {
                let (regions, size) = img.regions(layouts.as_deref().unwrap_or(&st.layouts));
                // Once every batch runs on one member, no other member reads a copy. With lazy
                // copies, `j`'s copy holds the latest contents alone until another member
                // needs them.
                held = (lazy || !img.copyable) && !regions.is_empty() && !pinned;
                let latest = if regions.is_empty() || pinned || held {
                    None
                } else {
                    let stage =
                        d.staging
                            .stage(d, j, RangeSet::of(Range::at(0, size)), false, shared)?;
                    plan.outs.push(ImageTransfer {
                        image: member_image,
                        stage: stage.clone(),
                        regions: regions.clone(),
                    });
                    Some(Latest { stage, regions })
                };
                wrote = Some((latest, !pinned && !held));
            }
            drop(st);
            plan.changes.push(Change {
                image: img.clone(),
                layouts,
                stale,
                written,
                wrote,
                held,
                revived,
            });
        }
    }
    Ok(plan)
}

/// An image's layouts in one round of a split batch ([`Image::round_layouts`]): at its
/// start, once the subresources it first defines are in their first layout (where it copies
/// the image in), and at its end; and the barriers from `UNDEFINED` replayed as barriers from
/// each subresource's layout (by tag: range, old and new layout).
pub struct RoundLayouts<T> {
    pub start: Vec<vk::ImageLayout>,
    pub first: Vec<vk::ImageLayout>,
    pub end: Vec<vk::ImageLayout>,
    pub kept: Vec<(T, KeptBarriers)>,
}

/// Image barriers replayed in place of one from `UNDEFINED`: per subresource, its range and
/// its old and new layout.
pub type KeptBarriers = Vec<(vk::ImageSubresourceRange, vk::ImageLayout, vk::ImageLayout)>;

/// What a batch split across members (`split.rs`) needs of an image copied between drivers
/// that it touches: the regions of a tightly packed copy of every subresource that holds
/// something at some point of the batch (each in the first layout it has then: the copies
/// of a round use the layouts of that round, [`Image::relayout`]), their bytes, the stage
/// holding its latest contents (`None`: nothing defined yet), whether the batch may write
/// it, and its layouts before the batch.
pub struct SplitImage {
    pub image: Arc<Image>,
    pub regions: Vec<ImageRegion>,
    pub size: u64,
    pub latest: Option<Arc<Stage>>,
    pub written: bool,
    pub start: Vec<vk::ImageLayout>,
}

/// [`SplitImage`] for image `img`, which a batch with `access` touches and whose layouts its
/// image barriers change to `changes` (in order); why the batch cannot split with it
/// otherwise. Each member's slices go between the packed copy and its own copy of the image,
/// so the host must hold the latest contents (every batch that may write an image copies it
/// out, `plan`), packed as this batch packs them, and nothing else may reach the image's
/// memory.
pub fn for_split(
    tracker: &Tracker,
    img: &Arc<Image>,
    access: &AccessSet,
    changes: &[(vk::ImageSubresourceRange, vk::ImageLayout)],
) -> Result<SplitImage, &'static str> {
    if !img.copyable {
        return Err("it touches a multisampled image copied between drivers");
    }
    let st = img.state.lock();
    let Some((mem, range)) = st.bound else {
        return Err("it touches an image without memory");
    };
    if access
        .memory
        .get(&mem)
        .is_some_and(|u| u.touched.intersects(&RangeSet::of(range)))
    {
        return Err("it reaches an image copied between drivers through its memory");
    }
    // Each subresource packed in the first layout in which it holds something.
    let mut packing = st.layouts.clone();
    for (range, layout) in changes {
        for u in img.units_of(range) {
            if empty(packing[u]) {
                packing[u] = *layout;
            }
        }
    }
    let (regions, size) = img.regions(&packing);
    if regions.is_empty() {
        return Err("it touches an image copied between drivers with nothing defined");
    }
    let all = RangeSet::of(Range::at(0, img.units() as u64));
    let written = access
        .memory
        .get(&img.raw)
        .is_some_and(|u| u.written.intersects(&all));
    let host_holds = tracker
        .lacks(img.raw, &all, Site::HOST)
        .is_ok_and(|l| l.is_empty());
    let latest = match &st.latest {
        Some(l) if l.stage.is_valid() && host_holds && !l.stage.base().is_null() => {
            let same = l.regions.len() == regions.len()
                && l.regions.iter().zip(&regions).all(|(a, b)| {
                    let (x, y) = (a.copy.image_subresource, b.copy.image_subresource);
                    a.copy.buffer_offset == b.copy.buffer_offset
                        && (
                            x.aspect_mask,
                            x.mip_level,
                            x.base_array_layer,
                            x.layer_count,
                        ) == (
                            y.aspect_mask,
                            y.mip_level,
                            y.base_array_layer,
                            y.layer_count,
                        )
                        && a.copy.image_extent == b.copy.image_extent
                });
            if !same {
                return Err("its image's latest contents were copied out in other layouts");
            }
            Some(l.stage.clone())
        }
        // Nothing defined was ever copied out, and every copy holds the same (undefined)
        // contents.
        None if host_holds => None,
        _ => return Err("its image's latest contents are not on the host"),
    };
    Ok(SplitImage {
        image: img.clone(),
        regions,
        size,
        latest,
        written,
        start: st.layouts.clone(),
    })
}

/// A split batch that may write `img` finished on member `j` (submitted), leaving it in
/// `layouts`: `j`'s copy holds it, and so does `stage`, its latest contents (packed as
/// `regions`).
pub fn split_written(
    img: &Image,
    tracker: &mut Tracker,
    j: usize,
    stage: Arc<Stage>,
    (regions, layouts): (Vec<ImageRegion>, Vec<vk::ImageLayout>),
) -> Result<(), CoherenceError> {
    let mut st = img.state.lock();
    st.latest = Some(Latest { stage, regions });
    st.held = None;
    st.layouts = layouts;
    tracker.write(img.raw, Range::at(0, img.units() as u64), j)?;
    let t = tracker.read_plan(img.raw, Range::WHOLE, Site::HOST)?;
    tracker.commit_transfers(&t)
}

impl Plan {
    /// The batch was submitted on member `j`, finishing at `done`: the images' layouts and
    /// latest contents become what it leaves, and so do the holders in `tracker`: `j`'s copy
    /// holds each image it touched; one it may write, it holds alone, with the stage it copies
    /// out into (none with lazy copies: `j` holds it until another member needs it).
    pub fn commit(
        self,
        tracker: &mut Tracker,
        j: usize,
        done: Edge,
    ) -> Result<(usize, usize), CoherenceError> {
        let (copied_in, copied_out) = (self.ins.len(), self.outs.len());
        let site = Site::member(j).ok_or(CoherenceError::BadMember(j))?;
        let mut result = Ok(());
        for c in self.changes {
            let mut st = c.image.state.lock();
            if let Some(l) = c.layouts {
                st.layouts = l;
            }
            st.lost.subtract(&c.revived);
            let id = c.image.raw;
            let step = || -> Result<(), CoherenceError> {
                for r in c.stale.ranges() {
                    let t = tracker.read_plan(id, *r, site)?;
                    tracker.commit_transfers(&t)?;
                }
                if let Some((latest, out)) = c.wrote {
                    st.latest = latest;
                    st.held = c.held.then_some((j, done));
                    for r in c.written.ranges() {
                        tracker.write(id, *r, j)?;
                    }
                    if out {
                        let t = tracker.read_plan(id, Range::WHOLE, Site::HOST)?;
                        tracker.commit_transfers(&t)?;
                    }
                }
                Ok(())
            };
            if let Err(e) = step() {
                result = Err(e);
            }
        }
        result.map(|()| (copied_in, copied_out))
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(ty: vk::ImageType, extent: (u32, u32, u32), mips: u32, layers: u32) -> Image {
        let aspects = vec![
            (vk::ImageAspectFlags::DEPTH, (4, 1, 1)),
            (vk::ImageAspectFlags::STENCIL, (1, 1, 1)),
        ];
        let units = aspects.len() * (mips * layers) as usize;
        Image {
            raw: 1,
            ty,
            extent: vk::Extent3D {
                width: extent.0,
                height: extent.1,
                depth: extent.2,
            },
            mips,
            layers,
            aspects,
            copyable: true,
            state: Mutex::new(State {
                layouts: vec![vk::ImageLayout::UNDEFINED; units],
                latest: None,
                held: None,
                lost: RangeSet::new(),
                bound: None,
                private: [vk::DeviceMemory::null(); MAX_MEMBERS],
            }),
        }
    }

    /// A change of `img` by a batch: the units it brought up to date and those it wrote
    /// (copied out, or not: `wrote`).
    fn change(img: &Arc<Image>, stale: Range, written: Range, wrote: Option<bool>) -> Change {
        Change {
            image: img.clone(),
            layouts: None,
            stale: RangeSet::of(stale),
            written: RangeSet::of(written),
            wrote: wrote.map(|out| (None, out)),
            held: false,
            revived: RangeSet::new(),
        }
    }

    /// Commits change `c` as a batch on member `j` finishing at its point 1 of a null
    /// semaphore (nothing copied).
    fn commit(t: &mut Tracker, c: Change, j: usize) {
        let plan = Plan {
            changes: vec![c],
            ..Plan::default()
        };
        assert_eq!(plan.commit(t, j, (j, vk::Semaphore::null(), 1)), Ok((0, 0)));
    }

    #[test]
    fn tracked_images_follow_their_writers_and_stages() {
        // Members 0 and 1 of the primary's driver, 2 of another; the image bound to memory 0
        // and 1 share. Two aspects, 2 mip levels, 3 layers: 12 subresources.
        let mut t = Tracker::new(vkfuse_memory::Topology::new(
            &[vkfuse_memory::MemberCaps::default(); 3],
        ));
        let img = Arc::new(image(vk::ImageType::TYPE_2D, (8, 8, 1), 2, 3));
        assert_eq!(img.track(&mut t, &[0, 1, 2], 0b011, true), Ok(()));
        assert_eq!(t.resource_len(1), Ok(12));
        let m = |i| Site::member(i).unwrap();
        let home = Sites::single(m(0)).with(m(1));
        assert_eq!(
            t.sharing(1).unwrap().storage_of(m(1)).map(|s| s.sites),
            Some(home)
        );
        let all = Range::new(0, 12);
        let none = Range::new(0, 0);
        // Member 2 writes and copies out: it and the stage hold the image.
        commit(&mut t, change(&img, none, all, Some(true)), 2);
        let held = Sites::single(m(2)).with(Site::HOST);
        assert_eq!(t.segments(1), Ok(vec![(all, held)]));
        // Member 1 reads it: the home members' one copy holds it too.
        let stale = |t: &Tracker, j| {
            t.lacks(1, &RangeSet::of(all), m(j))
                .unwrap_or_else(|e| panic!("the tracker refused: {e}"))
        };
        assert_eq!(stale(&t, 0), RangeSet::of(all));
        commit(&mut t, change(&img, all, none, None), 1);
        assert_eq!(stale(&t, 0), RangeSet::new());
        // Member 2 writes the depth aspect's second level (units 3..6) only: that is all the
        // home members lack, and a copy in takes those levels and layers of both aspects.
        commit(&mut t, change(&img, none, Range::new(3, 6), Some(true)), 2);
        assert_eq!(stale(&t, 0), RangeSet::of(Range::new(3, 6)));
        let (regions, _) = img.regions(&[vk::ImageLayout::GENERAL; 12]);
        let picked = img.select(&regions, &RangeSet::of(Range::new(4, 6)));
        let got: Vec<(vk::ImageAspectFlags, u32, u32, u32, u64)> = picked
            .iter()
            .map(|r| {
                let s = r.copy.image_subresource;
                (
                    s.aspect_mask,
                    s.mip_level,
                    s.base_array_layer,
                    s.layer_count,
                    r.copy.buffer_offset,
                )
            })
            .collect();
        // Level 1 is 4x4: 64 bytes of depth and 16 of stencil per layer; level 0 (8x8, 3
        // layers) takes the first 768 + 192 bytes.
        let d = vk::ImageAspectFlags::DEPTH;
        let st = vk::ImageAspectFlags::STENCIL;
        assert_eq!(
            got,
            vec![(d, 1, 1, 2, 960 + 64), (st, 1, 1, 2, 960 + 192 + 16)]
        );
        // Losing member 2 loses nothing: the stage holds the latest contents.
        let mut after = t.clone();
        assert!(!after.lose_member(2).unwrap().data_lost());
        // Placement pinned to member 0, which brings itself up to date and writes without
        // copying out: losing it loses the image (and orphans member 1, which shared its
        // memory).
        commit(&mut t, change(&img, Range::new(3, 6), all, Some(false)), 0);
        assert_eq!(t.segments(1), Ok(vec![(all, home)]));
        let report = t.lose_member(0).unwrap();
        assert_eq!(report.lost, vec![(1, all)]);
        assert_eq!(report.orphaned, vec![(1, Sites::single(m(1)))]);
    }

    #[test]
    fn lazy_copies_leave_the_writer_holding_until_published() {
        // Member 0 of the primary's driver, 1 of another; 12 subresources.
        let mut t = Tracker::new(vkfuse_memory::Topology::new(
            &[vkfuse_memory::MemberCaps::default(); 2],
        ));
        let img = Arc::new(image(vk::ImageType::TYPE_2D, (8, 8, 1), 2, 3));
        assert_eq!(img.track(&mut t, &[0, 1], 0b01, true), Ok(()));
        let m = |i| Site::member(i).unwrap_or(Site::HOST);
        let all = Range::new(0, 12);
        // Member 1 writes without copying out: it alone holds the image, and says so.
        let written = (1, vk::Semaphore::null(), 1);
        let mut c = change(&img, Range::new(0, 0), all, Some(false));
        c.held = true;
        commit(&mut t, c, 1);
        assert_eq!(t.segments(1), Ok(vec![(all, Sites::single(m(1)))]));
        assert_eq!(img.state.lock().held, Some((1, written)));
        assert!(img.state.lock().latest.is_none());
        // Losing it now loses the image.
        assert_eq!(
            t.clone()
                .lose_member(1)
                .unwrap_or_else(|e| panic!("{e}"))
                .lost,
            vec![(1, all)]
        );
        // Copied out for a batch on member 0: the host holds it too, and nothing is held.
        let (regions, size) = img.regions(&[vk::ImageLayout::GENERAL; 12]);
        let stage = crate::staging::Stage::fake_shared(RangeSet::of(Range::at(0, size)))
            .unwrap_or_else(|| panic!("a fake stage"));
        let h = Held {
            image: img.clone(),
            holder: 1,
            written,
            member_image: vk::Image::null(),
            regions,
            size,
        };
        assert_eq!(published(h, &mut t, stage), Ok(()));
        assert_eq!(
            t.segments(1),
            Ok(vec![(all, Sites::single(m(1)).with(Site::HOST))])
        );
        assert!(img.state.lock().held.is_none());
        assert!(img.state.lock().latest.is_some());
        assert!(!t
            .clone()
            .lose_member(1)
            .unwrap_or_else(|e| panic!("{e}"))
            .data_lost());
        // Member 1 writes again and is lost while it alone holds the image: its subresources
        // are lost, and no longer held; a batch that discards some defines them again.
        let mut c = change(&img, Range::new(0, 0), all, Some(false));
        c.held = true;
        commit(&mut t, c, 1);
        let report = t.lose_member(1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.lost, vec![(1, all)]);
        assert!(lose(&img, 1, all));
        assert!(!lose(&img, 1, all), "nothing newly lost");
        assert!(img.state.lock().held.is_none());
        let mut c = change(&img, Range::new(0, 0), Range::new(0, 4), Some(false));
        c.revived = RangeSet::of(Range::new(0, 4));
        commit(&mut t, c, 0);
        assert_eq!(img.state.lock().lost, RangeSet::of(Range::new(4, 12)));
    }

    fn to(range: vk::ImageSubresourceRange, layout: vk::ImageLayout) -> Transition {
        Transition {
            image: 1,
            range,
            layout,
        }
    }

    #[test]
    fn split_rounds_keep_what_they_copy_in() {
        use vk::ImageLayout as L;
        // Depth and stencil, 1 mip level, 2 layers: units 0, 1 (depth), 2, 3 (stencil).
        let img = image(vk::ImageType::TYPE_2D, (4, 4, 1), 1, 2);
        let all = vk::ImageSubresourceRange {
            aspect_mask: vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL,
            base_mip_level: 0,
            level_count: 1,
            base_array_layer: 0,
            layer_count: 2,
        };
        let layer0 = vk::ImageSubresourceRange {
            layer_count: 1,
            ..all
        };
        // Layer 1 holds something; layer 0 does not.
        let start = vec![L::UNDEFINED, L::GENERAL, L::UNDEFINED, L::GENERAL];
        let rounds = [
            // Round 0 copies the image in: both layers to GENERAL from UNDEFINED.
            (true, vec![(7, all, (L::UNDEFINED, L::GENERAL))]),
            // Round 1 does not: layer 0 discarded into TRANSFER_SRC_OPTIMAL.
            (
                false,
                vec![(8, layer0, (L::UNDEFINED, L::TRANSFER_SRC_OPTIMAL))],
            ),
        ];
        let r = img.round_layouts(&start, &rounds);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].start, start);
        // Layer 0 is moved to GENERAL before the copy in; layer 1 was there already.
        assert_eq!(r[0].first, vec![L::GENERAL; 4]);
        assert_eq!(r[0].end, vec![L::GENERAL; 4]);
        // Replayed from GENERAL, one barrier per subresource: nothing is discarded.
        assert_eq!(r[0].kept.len(), 1);
        assert_eq!(r[0].kept[0].0, 7);
        assert_eq!(r[0].kept[0].1.len(), 4);
        assert!(r[0].kept[0]
            .1
            .iter()
            .all(|k| k.1 == L::GENERAL && k.2 == L::GENERAL));
        assert!(r[0].kept[0].1.iter().all(|k| k.0.layer_count == 1));
        assert_eq!(r[1].first, r[1].start);
        assert_eq!(
            r[1].end,
            vec![
                L::TRANSFER_SRC_OPTIMAL,
                L::GENERAL,
                L::TRANSFER_SRC_OPTIMAL,
                L::GENERAL
            ]
        );
        assert!(r[1].kept[0].1.iter().all(|k| k.1 == L::GENERAL));
        // Packed once in GENERAL (one run of 2 layers per aspect); at round 1's end the layers
        // part ways, at their offsets in the packed copy.
        let (packed, _) = img.regions(&r[0].end);
        assert_eq!(packed.len(), 2);
        let split = img.relayout(&packed, &r[1].end, |_| true);
        assert_eq!(split.len(), 4);
        let depth: Vec<(u32, u64, vk::ImageLayout)> = split
            .iter()
            .filter(|x| x.copy.image_subresource.aspect_mask == vk::ImageAspectFlags::DEPTH)
            .map(|x| {
                (
                    x.copy.image_subresource.base_array_layer,
                    x.copy.buffer_offset,
                    x.layout,
                )
            })
            .collect();
        // 4 x 4 texels of 4 bytes per layer.
        assert_eq!(
            depth,
            vec![
                (0, packed[0].copy.buffer_offset, L::TRANSFER_SRC_OPTIMAL),
                (1, packed[0].copy.buffer_offset + 64, L::GENERAL)
            ]
        );
        // Only what `keep` keeps, and nothing that holds nothing.
        assert_eq!(img.relayout(&packed, &start, |u| u != 1).len(), 1);
    }

    #[test]
    fn regions_pack_defined_subresources_by_layout_runs() {
        let img = image(vk::ImageType::TYPE_2D, (7, 5, 1), 2, 4);
        let mut l = img.state.lock().layouts.clone();
        assert!(img.regions(&l).0.is_empty(), "nothing defined yet");
        let all = vk::ImageSubresourceRange {
            aspect_mask: vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL,
            base_mip_level: 0,
            level_count: vk::REMAINING_MIP_LEVELS,
            base_array_layer: 0,
            layer_count: vk::REMAINING_ARRAY_LAYERS,
        };
        img.apply(
            &mut l,
            &to(all, vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL),
        );
        // Layers 1..3 of mip 0 move on.
        let some = vk::ImageSubresourceRange {
            level_count: 1,
            base_array_layer: 1,
            layer_count: 2,
            ..all
        };
        img.apply(&mut l, &to(some, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL));
        let (regions, size) = img.regions(&l);
        // mip 0: runs [0], [1,2], [3]; mip 1: [0..4]; two aspects each.
        assert_eq!(regions.len(), 8);
        let layers: Vec<(u32, u32, u32)> = regions
            .iter()
            .map(|r| {
                let s = r.copy.image_subresource;
                (s.mip_level, s.base_array_layer, s.layer_count)
            })
            .collect();
        assert_eq!(
            layers,
            vec![
                (0, 0, 1),
                (0, 0, 1),
                (0, 1, 2),
                (0, 1, 2),
                (0, 3, 1),
                (0, 3, 1),
                (1, 0, 4),
                (1, 0, 4)
            ]
        );
        assert!(regions.iter().all(|r| r.copy.buffer_offset % 4 == 0
            && r.barrier_aspects == vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL));
        // 7x5 depth (4 bytes) + stencil (1 byte, padded to 4) per layer at mip 0, 3x2 at mip 1.
        let d0 = 7 * 5 * 4;
        let s0: u64 = 7 * 5;
        let d1 = 3 * 2 * 4 * 4;
        let s1 = 3 * 2 * 4;
        let expect = {
            let mut at = 0u64;
            for (dsz, ssz) in [(d0, s0), (2 * d0, 2 * s0), (d0, s0), (d1, s1)] {
                at += dsz;
                at = at.div_ceil(4) * 4 + ssz;
            }
            at
        };
        assert_eq!(size, expect);
        assert_eq!(img.regions(&l).1, size);
    }

    #[test]
    fn separate_layouts_give_separate_barrier_aspects() {
        let img = image(vk::ImageType::TYPE_2D, (4, 4, 1), 1, 1);
        let mut l = img.state.lock().layouts.clone();
        let depth = vk::ImageSubresourceRange {
            aspect_mask: vk::ImageAspectFlags::DEPTH,
            base_mip_level: 0,
            level_count: 1,
            base_array_layer: 0,
            layer_count: 1,
        };
        img.apply(&mut l, &to(depth, vk::ImageLayout::DEPTH_READ_ONLY_OPTIMAL));
        let (regions, _) = img.regions(&l);
        assert_eq!(regions.len(), 1, "the stencil aspect is still undefined");
        assert_eq!(regions[0].barrier_aspects, vk::ImageAspectFlags::DEPTH);
        assert_eq!(regions[0].layout, vk::ImageLayout::DEPTH_READ_ONLY_OPTIMAL);
    }

    #[test]
    fn volumes_copy_every_slice_of_each_level() {
        let img = image(vk::ImageType::TYPE_3D, (8, 8, 8), 4, 1);
        let mut l = img.state.lock().layouts.clone();
        let all = vk::ImageSubresourceRange {
            aspect_mask: vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL,
            base_mip_level: 2,
            level_count: vk::REMAINING_MIP_LEVELS,
            base_array_layer: 0,
            layer_count: 1,
        };
        img.apply(&mut l, &to(all, vk::ImageLayout::GENERAL));
        let (regions, _) = img.regions(&l);
        let extents: Vec<(u32, u32)> = regions
            .iter()
            .map(|r| {
                (
                    r.copy.image_subresource.mip_level,
                    r.copy.image_extent.depth,
                )
            })
            .collect();
        assert_eq!(extents, vec![(2, 2), (2, 2), (3, 1), (3, 1)]);
    }
}
