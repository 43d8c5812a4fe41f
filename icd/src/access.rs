//! Access sets: the device memory that the commands of a command buffer may touch, computed at
//! record time (issue 3, coherence). Only collected when batches may run on several members.
//!
//! Recording hands every non-dispatchable handle a command names to [`touch`]: generated
//! thunks pass their scalar handles, and arrays and structs (pNext chains included) through
//! the recording `Cx` of their first target; the hand-written vkCmd* do the same. `touch`
//! resolves the handle at once, while it is alive, through [`Refs`]: what a buffer or image is
//! bound to, a view's resource, a framebuffer's attachments, everything ever written into a
//! descriptor set. Objects that lead to no memory (pipelines, layouts, samplers, events,
//! queries) add nothing. An object vkfuse cannot trace to memory (a buffer or image without
//! vkfuse memory: sparse, or a swapchain image; an acceleration structure) makes the set
//! "every allocation", and so do buffer device addresses (see [`Refs::addresses_taken`]).
//!
//! The sets are conservative: every allocation named counts as read and written, a descriptor
//! set leads to everything it ever held, and stale entries of freed objects only add
//! allocations. Batches still run in submission order across members; the sets are what
//! relaxing that order, the coherence tracker and transfers between members will use.

use std::collections::{BTreeSet, HashMap};
use std::ffi::c_void;

use ash::vk;
use ash::vk::Handle as _;

use crate::object::{CommandBuffer, Device, ObjectBase};

/// The device memory some commands may touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSet {
    /// Fused `VkDeviceMemory` handles (raw).
    pub memory: BTreeSet<u64>,
    /// Why the set is every allocation, when it is.
    pub everything: Option<&'static str>,
}

impl AccessSet {
    pub fn add(&mut self, leads: &Leads) {
        match leads {
            Leads::Memory(m) => self.memory.extend(m.iter().copied()),
            Leads::Everything(why) => self.set_everything(why),
        }
    }

    pub fn set_everything(&mut self, why: &'static str) {
        if self.everything.is_none() {
            self.everything = Some(why);
        }
    }

    pub fn union(&mut self, other: &AccessSet) {
        self.memory.extend(other.memory.iter().copied());
        if let Some(why) = other.everything {
            self.set_everything(why);
        }
    }

    /// `N allocation(s)` or `every allocation (why)`, for the log.
    pub fn describe(&self) -> String {
        match self.everything {
            Some(why) => format!("every allocation ({why})"),
            None => format!("{} allocation(s)", self.memory.len()),
        }
    }
}

/// What an object leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leads {
    Memory(Vec<u64>),
    Everything(&'static str),
}

impl Leads {
    fn merge(&mut self, other: &Leads) {
        match (&mut *self, other) {
            (Leads::Everything(_), _) => {}
            (_, Leads::Everything(why)) => *self = Leads::Everything(why),
            (Leads::Memory(a), Leads::Memory(b)) => {
                for m in b {
                    if !a.contains(m) {
                        a.push(*m);
                    }
                }
            }
        }
    }
}

const UNTRACEABLE: &str = "a buffer or image without vkfuse memory: sparse, or a swapchain image";

/// Per device: what each buffer, image, view, framebuffer and descriptor set leads to.
#[derive(Default)]
pub struct Refs {
    map: parking_lot::Mutex<HashMap<u64, Leads>>,
    /// The application asked for a buffer device address: shaders may reach any buffer.
    addresses: std::sync::atomic::AtomicBool,
}

impl Refs {
    pub fn set(&self, obj: u64, leads: Leads) {
        if obj != 0 {
            self.map.lock().insert(obj, leads);
        }
    }

    /// Adds `leads` to what `obj` already leads to (descriptor sets accumulate).
    pub fn merge(&self, obj: u64, leads: &Leads) {
        if obj == 0 {
            return;
        }
        self.map
            .lock()
            .entry(obj)
            .and_modify(|l| l.merge(leads))
            .or_insert_with(|| leads.clone());
    }

    pub fn get(&self, obj: u64) -> Option<Leads> {
        self.map.lock().get(&obj).cloned()
    }

    /// A view of `resource` (an image or a buffer) leads where the resource does.
    fn resource(&self, resource: u64) -> Leads {
        self.get(resource).unwrap_or(Leads::Everything(UNTRACEABLE))
    }

    pub fn take_addresses(&self) {
        self.addresses
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn addresses_taken(&self) -> bool {
        self.addresses.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// What the live object `raw` leads to, or `None` for objects that lead to no memory.
fn leads_of(d: &Device, raw: u64) -> Option<Leads> {
    if raw == 0 {
        return None;
    }
    // SAFETY: non-null non-dispatchable handles the application passes are live vkfuse objects
    // (recorded commands and updates name live objects).
    let o = unsafe { ObjectBase::get(raw) }.ok()?;
    match o.ty {
        vk::ObjectType::DEVICE_MEMORY => Some(Leads::Memory(vec![raw])),
        vk::ObjectType::BUFFER
        | vk::ObjectType::IMAGE
        | vk::ObjectType::IMAGE_VIEW
        | vk::ObjectType::BUFFER_VIEW => Some(d.refs.resource(raw)),
        // Imageless framebuffers and unwritten sets lead nowhere; their attachments and
        // descriptors come with the commands that name them.
        vk::ObjectType::FRAMEBUFFER | vk::ObjectType::DESCRIPTOR_SET => d.refs.get(raw),
        vk::ObjectType::ACCELERATION_STRUCTURE_KHR
        | vk::ObjectType::ACCELERATION_STRUCTURE_NV
        | vk::ObjectType::MICROMAP_EXT => Some(Leads::Everything("an acceleration structure")),
        _ => None,
    }
}

/// Adds what the handle `raw`, named by a command recorded into `cb`, leads to.
pub fn touch(cb: &CommandBuffer, raw: u64) {
    // SAFETY: a command buffer's device outlives it.
    let d = unsafe { &*cb.device };
    if let Some(l) = leads_of(d, raw) {
        cb.access.lock().add(&l);
    }
}

/// `vkCmdExecuteCommands`: the secondaries' sets join the primary's.
pub fn execute_commands(cb: &CommandBuffer, secondaries: &[&CommandBuffer]) {
    if !cb.collects() {
        return;
    }
    let mut acc = cb.access.lock();
    for s in secondaries {
        if std::ptr::eq(*s, cb) {
            continue;
        }
        acc.union(&s.access.lock());
    }
}

/// The access set of a submit's command buffers, and every allocation when buffer device
/// addresses were taken.
pub fn of_batches<'a>(d: &Device, cbs: impl Iterator<Item = &'a CommandBuffer>) -> AccessSet {
    let mut acc = AccessSet::default();
    for cb in cbs {
        acc.union(&cb.access.lock());
    }
    if d.refs.addresses_taken() {
        acc.set_everything("buffer device addresses");
    }
    acc
}

/// The resources that descriptor writes of `ty` name, from the write's arrays.
///
/// # Safety
/// The arrays that `ty` selects hold `count` valid elements.
unsafe fn write_leads(
    d: &Device,
    ty: vk::DescriptorType,
    count: usize,
    images: *const vk::DescriptorImageInfo,
    buffers: *const vk::DescriptorBufferInfo,
    texels: *const vk::BufferView,
) -> Leads {
    let mut out = Leads::Memory(Vec::new());
    let mut add = |raw: u64| {
        if let Some(l) = leads_of(d, raw) {
            out.merge(&l);
        }
    };
    for i in 0..count {
        // SAFETY: caller contract: `count` elements of the array this type reads.
        unsafe {
            match ty {
                vk::DescriptorType::SAMPLER => {}
                vk::DescriptorType::COMBINED_IMAGE_SAMPLER
                | vk::DescriptorType::SAMPLED_IMAGE
                | vk::DescriptorType::STORAGE_IMAGE
                | vk::DescriptorType::INPUT_ATTACHMENT => add((*images.add(i)).image_view.as_raw()),
                vk::DescriptorType::UNIFORM_BUFFER
                | vk::DescriptorType::STORAGE_BUFFER
                | vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC
                | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC => {
                    add((*buffers.add(i)).buffer.as_raw())
                }
                vk::DescriptorType::UNIFORM_TEXEL_BUFFER
                | vk::DescriptorType::STORAGE_TEXEL_BUFFER => add((*texels.add(i)).as_raw()),
                vk::DescriptorType::INLINE_UNIFORM_BLOCK => {}
                _ => return Leads::Everything("a descriptor type vkfuse does not trace"),
            }
        }
    }
    out
}

/// After `vkCreateImageView`: the view leads where its image does.
///
/// # Safety
/// Arguments of a successful `vkCreateImageView`.
pub unsafe fn image_view_created(
    d: &Device,
    info: *const vk::ImageViewCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    view: *mut vk::ImageView,
) {
    // SAFETY: valid create info and the created view.
    let (image, view) = unsafe { ((*info).image.as_raw(), (*view).as_raw()) };
    d.refs.set(view, d.refs.resource(image));
}

/// After `vkCreateBufferView`: the view leads where its buffer does.
///
/// # Safety
/// Arguments of a successful `vkCreateBufferView`.
pub unsafe fn buffer_view_created(
    d: &Device,
    info: *const vk::BufferViewCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    view: *mut vk::BufferView,
) {
    // SAFETY: valid create info and the created view.
    let (buffer, view) = unsafe { ((*info).buffer.as_raw(), (*view).as_raw()) };
    d.refs.set(view, d.refs.resource(buffer));
}

/// After `vkCreateFramebuffer`: the framebuffer leads where its attachments do (imageless
/// framebuffers name theirs when a render pass begins).
///
/// # Safety
/// Arguments of a successful `vkCreateFramebuffer`.
pub unsafe fn framebuffer_created(
    d: &Device,
    info: *const vk::FramebufferCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    fb: *mut vk::Framebuffer,
) {
    // SAFETY: valid create info and the created framebuffer.
    let (info, fb) = unsafe { (&*info, (*fb).as_raw()) };
    if info.flags.contains(vk::FramebufferCreateFlags::IMAGELESS) || info.attachment_count == 0 {
        return;
    }
    let mut leads = Leads::Memory(Vec::new());
    for i in 0..info.attachment_count as usize {
        // SAFETY: attachmentCount views.
        let view = unsafe { *info.p_attachments.add(i) };
        leads.merge(&d.refs.resource(view.as_raw()));
    }
    d.refs.set(fb, leads);
}

/// After `vkUpdateDescriptorSets`: each written set also leads where the written resources do;
/// a copied set also where its source does.
///
/// # Safety
/// Arguments of `vkUpdateDescriptorSets`.
pub unsafe fn descriptor_sets_updated(
    d: &Device,
    write_count: u32,
    writes: *const vk::WriteDescriptorSet,
    copy_count: u32,
    copies: *const vk::CopyDescriptorSet,
) {
    if !d.exec.multi {
        return;
    }
    for i in 0..write_count as usize {
        // SAFETY: `write_count` valid writes whose type selects valid arrays.
        let leads = unsafe {
            let w = &*writes.add(i);
            let l = write_leads(
                d,
                w.descriptor_type,
                w.descriptor_count as usize,
                w.p_image_info,
                w.p_buffer_info,
                w.p_texel_buffer_view,
            );
            (w.dst_set.as_raw(), l)
        };
        d.refs.merge(leads.0, &leads.1);
    }
    for i in 0..copy_count as usize {
        // SAFETY: `copy_count` valid copies.
        let c = unsafe { &*copies.add(i) };
        if let Some(l) = d.refs.get(c.src_set.as_raw()) {
            d.refs.merge(c.dst_set.as_raw(), &l);
        }
    }
}

/// What the data of a descriptor update template names.
///
/// # Safety
/// `data` is laid out as `entries` describe.
pub unsafe fn template_leads(
    d: &Device,
    entries: &[vk::DescriptorUpdateTemplateEntry],
    data: *const c_void,
) -> Leads {
    let mut out = Leads::Memory(Vec::new());
    if data.is_null() {
        return out;
    }
    for e in entries {
        for i in 0..e.descriptor_count as usize {
            // SAFETY: element i of the entry lies at offset + i * stride (caller contract).
            let p = unsafe { data.cast::<u8>().add(e.offset + i * e.stride) };
            // SAFETY: one element of the type the entry names.
            let l = unsafe { write_leads(d, e.descriptor_type, 1, p.cast(), p.cast(), p.cast()) };
            out.merge(&l);
            if e.descriptor_type == vk::DescriptorType::INLINE_UNIFORM_BLOCK {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leads_merge_keeps_everything_and_unions_memory() {
        let mut a = Leads::Memory(vec![1, 2]);
        a.merge(&Leads::Memory(vec![2, 3]));
        assert_eq!(a, Leads::Memory(vec![1, 2, 3]));
        a.merge(&Leads::Everything("x"));
        assert_eq!(a, Leads::Everything("x"));
        a.merge(&Leads::Memory(vec![4]));
        assert_eq!(a, Leads::Everything("x"));
    }

    #[test]
    fn access_sets_union_and_describe() {
        let mut s = AccessSet::default();
        s.add(&Leads::Memory(vec![7, 9]));
        s.add(&Leads::Memory(vec![9]));
        assert_eq!(s.describe(), "2 allocation(s)");
        let mut t = AccessSet::default();
        t.add(&Leads::Everything("why"));
        t.add(&Leads::Everything("later"));
        s.union(&t);
        assert_eq!(s.describe(), "every allocation (why)");
        assert_eq!(s.memory.len(), 2);
    }

    #[test]
    fn refs_merge_accumulates_and_set_replaces() {
        let r = Refs::default();
        r.merge(5, &Leads::Memory(vec![1]));
        r.merge(5, &Leads::Memory(vec![2]));
        assert_eq!(r.get(5), Some(Leads::Memory(vec![1, 2])));
        r.set(5, Leads::Memory(vec![3]));
        assert_eq!(r.get(5), Some(Leads::Memory(vec![3])));
        r.merge(0, &Leads::Memory(vec![1]));
        assert_eq!(r.get(0), None);
        assert_eq!(r.resource(6), Leads::Everything(UNTRACEABLE));
    }
}
