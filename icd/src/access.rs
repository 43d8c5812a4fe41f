//! Access sets: the device memory that the commands of a command buffer may touch, computed at
//! record time (issue 3, coherence). Only collected when batches may run on several members.
//!
//! Recording hands every non-dispatchable handle a command names to [`touch`]: generated
//! thunks pass their scalar handles, and arrays and structs (pNext chains included) through
//! the recording `Cx` of their first target; the hand-written vkCmd* do the same. `touch`
//! resolves the handle at once, while it is alive, through the object's own
//! `ObjectBase::leads`: what a buffer or image is bound to, a view's resource, a framebuffer's
//! attachments, everything ever written into a descriptor set. Objects that lead to no memory
//! (pipelines, layouts, samplers, events, queries) add nothing. An object vkfuse cannot trace
//! to memory (a buffer or image without vkfuse memory: sparse, or bound to a swapchain's; an
//! acceleration structure) makes the set "every allocation", and so do buffer device
//! addresses (`Device::addresses_taken`).
//!
//! Each allocation in a set is read only, or may be written. Named memory counts as written
//! unless the command or descriptor is known to only read it: vertex, index and indirect
//! buffers, the sources of copies, blits and resolves (the `writes` lines of
//! `codegen/overrides.txt` name what such commands write; the rest they name is read), and
//! uniform, sampled and input-attachment descriptors. Everything else is conservative:
//! storage descriptors, attachments, barriers and what vkfuse cannot classify count as
//! written, and a descriptor set leads to everything it ever held. `exec.rs` orders batches
//! by the sets (a batch waits for the last writer of what it reads, and for the readers too of
//! what it writes), and mirrored memory (`mirror.rs`) keeps a member's copy current after a
//! batch that only read it.

use std::collections::BTreeMap;
use std::ffi::c_void;

use ash::vk;
use ash::vk::Handle as _;
use vkfuse_memory::{Range, RangeSet};

use crate::layout::slice;
use crate::object::{CommandBuffer, Device, ObjectBase};

/// How some commands use one allocation: the byte ranges they touch and those they may write
/// (ranges may reach past the allocation's end: [`Range::WHOLE`] is all of it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Use {
    pub touched: RangeSet,
    pub written: RangeSet,
}

impl Use {
    /// All of an allocation, written (for "every allocation").
    pub fn all() -> Use {
        Use {
            touched: RangeSet::of(Range::WHOLE),
            written: RangeSet::of(Range::WHOLE),
        }
    }

    /// Whether the commands may write the allocation.
    pub fn writes(&self) -> bool {
        !self.written.is_empty()
    }

    fn add(&mut self, r: Range, write: bool) {
        self.touched.insert(r);
        if write {
            self.written.insert(r);
        }
    }

    fn union(&mut self, other: &Use) {
        self.touched.union(&other.touched);
        self.written.union(&other.written);
    }
}

/// The device memory some commands may touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSet {
    /// Fused `VkDeviceMemory` handles (raw), each with how the commands use it.
    pub memory: BTreeMap<u64, Use>,
    /// Why the set is every allocation, when it is.
    pub everything: Option<&'static str>,
    /// Images copied between drivers (by handle) whose subresources (units) the commands
    /// discard before anything else touches the image: a barrier from `UNDEFINED`, or a render
    /// pass of one subpass whose attachment starts in `UNDEFINED`. No member needs their
    /// contents before such commands (`images.rs`).
    pub discards: BTreeMap<u64, RangeSet>,
    /// How many accesses were added, unions included: a split log (`split.rs`) replays its
    /// command buffer only if its own commands made all of them.
    pub fed: u64,
    /// The commands wait for events the host may set (`vkCmdWaitEvents` from the host
    /// stage, any `vkCmdWaitEvents2`): host writes made while the batch runs may be for them.
    pub host_events: bool,
}

impl AccessSet {
    pub fn add(&mut self, leads: &Leads) {
        leads.feed(self, true);
    }

    pub fn set_everything(&mut self, why: &'static str) {
        if self.everything.is_none() {
            self.everything = Some(why);
        }
    }

    /// Adds the accesses of commands recorded after these.
    pub fn union(&mut self, other: &AccessSet) {
        self.fed += other.fed;
        self.host_events |= other.host_events;
        // A later discard counts only where these commands did not touch the image.
        for (k, units) in &other.discards {
            if !self.memory.contains_key(k) {
                self.discards.entry(*k).or_default().union(units);
            }
        }
        for (m, u) in &other.memory {
            self.memory.entry(*m).or_default().union(u);
        }
        if let Some(why) = other.everything {
            self.set_everything(why);
        }
    }

    /// `N allocation(s), W written` or `every allocation (why)`, for the log.
    pub fn describe(&self) -> String {
        match self.everything {
            Some(why) => format!("every allocation ({why})"),
            None => format!(
                "{} allocation(s), {} written",
                self.memory.len(),
                self.memory.values().filter(|u| u.writes()).count()
            ),
        }
    }
}

/// What an object leads to: per allocation (fused `VkDeviceMemory`, raw), the byte ranges (a
/// buffer or image: the range it is bound to) and those that commands writing through the
/// object may write (a descriptor set's uniform buffers, say, are only read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leads {
    Memory(BTreeMap<u64, Use>),
    Everything(&'static str),
}

const UNTRACEABLE: &str =
    "a buffer or image without vkfuse memory: sparse, or bound to a swapchain's memory";

/// Where the allocations a handle leads to are collected.
pub trait Sink {
    /// The range `r` of allocation `m`, which may be written when `write`.
    fn memory(&mut self, m: u64, r: Range, write: bool);
    fn everything(&mut self, why: &'static str);
}

impl Sink for AccessSet {
    fn memory(&mut self, m: u64, r: Range, write: bool) {
        self.fed += 1;
        self.memory.entry(m).or_default().add(r, write);
    }
    fn everything(&mut self, why: &'static str) {
        self.fed += 1;
        self.set_everything(why);
    }
}

impl Sink for Leads {
    fn memory(&mut self, m: u64, r: Range, write: bool) {
        if let Leads::Memory(map) = self {
            map.entry(m).or_default().add(r, write);
        }
    }
    fn everything(&mut self, why: &'static str) {
        if !matches!(self, Leads::Everything(_)) {
            *self = Leads::Everything(why);
        }
    }
}

impl Leads {
    /// Nothing yet.
    pub fn none() -> Leads {
        Leads::Memory(BTreeMap::new())
    }

    /// The range `r` of allocation `m`, which may be written when `write`.
    pub fn one(m: u64, r: Range, write: bool) -> Leads {
        let mut out = Leads::none();
        out.memory(m, r, write);
        out
    }

    /// Hands the allocations to `sink`; none is written unless `write`.
    fn feed(&self, sink: &mut impl Sink, write: bool) {
        match self {
            Leads::Memory(map) => {
                for (m, u) in map {
                    if write {
                        for r in u.written.ranges() {
                            sink.memory(*m, *r, true);
                        }
                    }
                    for r in u.touched.ranges() {
                        sink.memory(*m, *r, false);
                    }
                }
            }
            Leads::Everything(why) => sink.everything(why),
        }
    }

    fn merge(&mut self, other: &Leads) {
        other.feed(self, true);
    }
}

/// Records what the live object `raw` leads to.
///
/// # Safety
/// `raw` is a live vkfuse object.
pub unsafe fn set(raw: u64, leads: Leads) {
    // SAFETY: caller contract.
    if let Ok(o) = unsafe { ObjectBase::get(raw) } {
        *o.leads.write() = Some(leads);
    }
}

/// Adds `leads` to what the live object `raw` leads to (descriptor sets accumulate).
///
/// # Safety
/// `raw` is a live vkfuse object.
pub unsafe fn merge(raw: u64, leads: &Leads) {
    // SAFETY: caller contract.
    if let Ok(o) = unsafe { ObjectBase::get(raw) } {
        match &mut *o.leads.write() {
            Some(l) => l.merge(leads),
            none => *none = Some(leads.clone()),
        }
    }
}

/// Hands what the live object `raw` leads to to `sink`, as written if `write` (and what the
/// object leads to may be written through it); objects that lead to no memory add nothing.
fn feed(raw: u64, sink: &mut impl Sink, write: bool) {
    if raw == 0 {
        return;
    }
    // SAFETY: non-null non-dispatchable handles the application passes are live vkfuse objects
    // (recorded commands, updates and creations name live objects).
    let Ok(o) = (unsafe { ObjectBase::get(raw) }) else {
        return;
    };
    match o.ty {
        vk::ObjectType::DEVICE_MEMORY => sink.memory(raw, Range::WHOLE, write),
        vk::ObjectType::BUFFER
        | vk::ObjectType::IMAGE
        | vk::ObjectType::IMAGE_VIEW
        | vk::ObjectType::BUFFER_VIEW => match &*o.leads.read() {
            Some(l) => l.feed(sink, write),
            None => sink.everything(UNTRACEABLE),
        },
        // Imageless framebuffers and unwritten sets lead nowhere; their attachments and
        // descriptors come with the commands that name them.
        vk::ObjectType::FRAMEBUFFER | vk::ObjectType::DESCRIPTOR_SET => {
            if let Some(l) = &*o.leads.read() {
                l.feed(sink, write);
            }
        }
        vk::ObjectType::ACCELERATION_STRUCTURE_KHR
        | vk::ObjectType::ACCELERATION_STRUCTURE_NV
        | vk::ObjectType::MICROMAP_EXT => sink.everything("an acceleration structure"),
        _ => {}
    }
}

/// Hands the part `offset..offset + size` (`vk::WHOLE_SIZE`: to its end) of the buffer `raw`
/// to `sink`, as written if `write`: a buffer leads to the one range it is bound to, so the
/// part is exact. Anything else (not a buffer, no memory) goes as [`feed`] hands it.
fn feed_part(raw: u64, offset: u64, size: u64, sink: &mut impl Sink, write: bool) {
    if raw == 0 {
        return;
    }
    // SAFETY: as in `feed`: handles the application names are live vkfuse objects.
    let Ok(o) = (unsafe { ObjectBase::get(raw) }) else {
        return;
    };
    if o.ty == vk::ObjectType::BUFFER {
        if let Some(Leads::Memory(map)) = &*o.leads.read() {
            if let (1, Some((m, u))) = (map.len(), map.iter().next()) {
                if let [r] = u.touched.ranges() {
                    let part = Range::at(r.start.saturating_add(offset), size).intersect(*r);
                    let written = write && u.writes();
                    sink.memory(*m, part, written);
                    if written {
                        // `Leads::feed` hands the touched ranges as read too.
                        sink.memory(*m, part, false);
                    }
                    return;
                }
            }
        }
    }
    feed(raw, sink, write);
}

/// The lowest offset of `regions` (for copies between buffers and images, whose buffer
/// footprint below it is not touched).
fn lowest(offsets: impl Iterator<Item = u64>) -> u64 {
    offsets.min().unwrap_or(0)
}

/// `vkCmdCopyBuffer`: the regions of both buffers, the destination's as written.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_buffer(
    cb: &CommandBuffer,
    src: vk::Buffer,
    dst: vk::Buffer,
    count: u32,
    regions: *const vk::BufferCopy,
) {
    // SAFETY: `count` regions.
    let regions = unsafe { slice(regions, count) };
    let parts = regions.iter().map(|r| (r.src_offset, r.dst_offset, r.size));
    transfer(
        cb,
        |acc| copy_parts(acc, src, dst, parts),
        || {
            Some(crate::split::Transfer::Copy {
                src: src.as_raw(),
                dst: dst.as_raw(),
                regions: regions.to_vec(),
            })
        },
    );
}

/// The parts (source offset, destination offset, size) a buffer copy reads and writes.
fn copy_parts(
    acc: &mut AccessSet,
    src: vk::Buffer,
    dst: vk::Buffer,
    parts: impl Iterator<Item = (u64, u64, u64)>,
) {
    for (from, to, size) in parts {
        feed_part(src.as_raw(), from, size, acc, false);
        feed_part(dst.as_raw(), to, size, acc, true);
    }
}

/// Whether this device splits dispatches: recorded commands then also go to the split log.
fn splitting() -> bool {
    crate::config::Config::get().splits()
}

/// A transfer (buffer copy, update, fill, copy between buffer and image or between images):
/// `feed` hands over the bytes it reads and writes; where dispatches are split, `op` is also
/// the split log's step (it runs whole, `split.rs`; `None`: the log cannot replay it).
fn transfer(
    cb: &CommandBuffer,
    feed: impl FnOnce(&mut AccessSet),
    op: impl FnOnce() -> Option<crate::split::Transfer>,
) {
    if !splitting() {
        feed(&mut cb.access.lock());
        return;
    }
    let mut own = AccessSet::default();
    feed(&mut own);
    cb.access.lock().union(&own);
    if let Some(log) = &mut cb.compute.lock().log {
        match op() {
            Some(op) => log.transfer(op, own),
            None => log.brk("a resolve, or a copy or blit with chained structures"),
        }
    }
}

/// `vkCmdCopyBuffer2`: as [`copy_buffer`].
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_buffer2(cb: &CommandBuffer, info: *const vk::CopyBufferInfo2) {
    // SAFETY: a valid copy info.
    let Some(i) = (unsafe { info.as_ref() }) else {
        return;
    };
    // SAFETY: `region_count` regions.
    let regions = unsafe { slice(i.p_regions, i.region_count) };
    let parts = || regions.iter().map(|r| (r.src_offset, r.dst_offset, r.size));
    transfer(
        cb,
        |acc| copy_parts(acc, i.src_buffer, i.dst_buffer, parts()),
        || {
            Some(crate::split::Transfer::Copy {
                src: i.src_buffer.as_raw(),
                dst: i.dst_buffer.as_raw(),
                regions: parts()
                    .map(|(src_offset, dst_offset, size)| vk::BufferCopy {
                        src_offset,
                        dst_offset,
                        size,
                    })
                    .collect(),
            })
        },
    );
}

/// `vkCmdUpdateBuffer`: the bytes it writes.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn update_buffer(
    cb: &CommandBuffer,
    dst: vk::Buffer,
    offset: vk::DeviceSize,
    size: vk::DeviceSize,
    data: *const c_void,
) {
    transfer(
        cb,
        |acc| feed_part(dst.as_raw(), offset, size, acc, true),
        || {
            Some(crate::split::Transfer::Update {
                dst: dst.as_raw(),
                offset,
                // SAFETY: `size` bytes of data (at most 65536, a multiple of 4).
                data: unsafe { slice(data.cast::<u8>(), size as u32) }.to_vec(),
            })
        },
    );
}

/// `vkCmdFillBuffer`: the bytes it writes (`VK_WHOLE_SIZE`: to the end).
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn fill_buffer(
    cb: &CommandBuffer,
    dst: vk::Buffer,
    offset: vk::DeviceSize,
    size: vk::DeviceSize,
    data: u32,
) {
    transfer(
        cb,
        |acc| feed_part(dst.as_raw(), offset, size, acc, true),
        || {
            Some(crate::split::Transfer::Fill {
                dst: dst.as_raw(),
                offset,
                size,
                data,
            })
        },
    );
}

/// The device of a command buffer.
fn device(cb: &CommandBuffer) -> &Device {
    // SAFETY: a command buffer's device outlives it.
    unsafe { &*cb.device }
}

/// Hands the subresources of image `raw` that `units` picks to `sink`, as written if `write`,
/// where the image is copied between members of different drivers: it leads to itself
/// (`images.rs`: access sets name it by its handle, its units its subresources). Any other
/// image goes as [`feed`] hands it (all of the memory it is bound to).
fn feed_image(
    d: &Device,
    raw: u64,
    units: impl FnOnce(&crate::images::Image) -> RangeSet,
    sink: &mut impl Sink,
    write: bool,
) {
    if raw == 0 {
        return;
    }
    // SAFETY: as in `feed`: handles the application names are live vkfuse objects.
    let Ok(o) = (unsafe { ObjectBase::get(raw) }) else {
        return;
    };
    let own = matches!(&*o.leads.read(), Some(Leads::Memory(map)) if map.contains_key(&raw));
    let img = own
        .then(|| d.exec.images.lock().get(&raw).cloned())
        .flatten();
    let Some(img) = img else {
        return feed(raw, sink, write);
    };
    for r in units(&img).ranges() {
        sink.memory(raw, *r, false);
        if write {
            sink.memory(raw, *r, true);
        }
    }
}

/// Notes that the commands discard the subresources `units` picks of image `raw`, where the
/// image is copied between drivers and nothing recorded before touched it (call before
/// handing the image to `acc`).
fn discard_image(
    d: &Device,
    acc: &mut AccessSet,
    raw: u64,
    units: impl FnOnce(&crate::images::Image) -> RangeSet,
) {
    if raw == 0 || acc.memory.contains_key(&raw) {
        return;
    }
    if let Some(img) = d.exec.images.lock().get(&raw).cloned() {
        acc.discards.entry(raw).or_default().union(&units(&img));
    }
}

/// The units of an image that subresource layers `layers` name together.
fn layers_units<'a>(
    img: &crate::images::Image,
    layers: impl Iterator<Item = &'a vk::ImageSubresourceLayers>,
) -> RangeSet {
    let mut out = RangeSet::new();
    for l in layers {
        out.union(&img.layers_units(l));
    }
    out
}

/// The units of an image that subresource ranges `ranges` name together.
fn range_units<'a>(
    img: &crate::images::Image,
    ranges: impl Iterator<Item = &'a vk::ImageSubresourceRange>,
) -> RangeSet {
    let mut out = RangeSet::new();
    for r in ranges {
        out.union(&img.range_units(r));
    }
    out
}

/// A region of a copy between a buffer and an image: the buffer offset and the image's
/// subresources.
trait BufferImageRegion {
    fn at(&self) -> (u64, &vk::ImageSubresourceLayers);
    /// As the region of `vkCmdCopyBufferToImage` (`None` where it extends that with a chain).
    fn v1(&self) -> Option<vk::BufferImageCopy>;
}

/// A region of a copy, blit or resolve between images: the source's and the destination's
/// subresources.
trait ImagePair: Sized {
    fn pair(&self) -> (&vk::ImageSubresourceLayers, &vk::ImageSubresourceLayers);
    /// The split log's transfer of `regions` (`filter`: a blit's), as the version 1 command
    /// takes them (`None` where a region extends that with a chain).
    fn op(regions: &[Self], filter: vk::Filter) -> Option<crate::split::ImageOp>;
}

impl BufferImageRegion for vk::BufferImageCopy {
    fn at(&self) -> (u64, &vk::ImageSubresourceLayers) {
        (self.buffer_offset, &self.image_subresource)
    }
    fn v1(&self) -> Option<vk::BufferImageCopy> {
        Some(*self)
    }
}

impl BufferImageRegion for vk::BufferImageCopy2<'_> {
    fn at(&self) -> (u64, &vk::ImageSubresourceLayers) {
        (self.buffer_offset, &self.image_subresource)
    }
    fn v1(&self) -> Option<vk::BufferImageCopy> {
        self.p_next.is_null().then_some(vk::BufferImageCopy {
            buffer_offset: self.buffer_offset,
            buffer_row_length: self.buffer_row_length,
            buffer_image_height: self.buffer_image_height,
            image_subresource: self.image_subresource,
            image_offset: self.image_offset,
            image_extent: self.image_extent,
        })
    }
}

/// [`ImagePair`] for a region type: `$op` (an `ImageOp` variant) of the regions as `$v1`
/// (the version 1 region) makes them, unchained (`$f`: the filter, for blits).
macro_rules! image_pair {
    ($t:ty, |$r:ident, $f:ident| $op:expr) => {
        impl ImagePair for $t {
            fn pair(&self) -> (&vk::ImageSubresourceLayers, &vk::ImageSubresourceLayers) {
                (&self.src_subresource, &self.dst_subresource)
            }
            fn op(regions: &[Self], $f: vk::Filter) -> Option<crate::split::ImageOp> {
                let $r = regions;
                $op
            }
        }
    };
}
use crate::split::ImageOp;
image_pair!(vk::ImageCopy, |r, _f| Some(ImageOp::Copy(r.to_vec())));
image_pair!(vk::ImageBlit, |r, f| Some(ImageOp::Blit(r.to_vec(), f)));
// Resolves break the split log: multisampled images stay on one member (`images.rs`), and
// nothing here exercises a resolve between split dispatches.
image_pair!(vk::ImageResolve, |_r, _f| None);
image_pair!(vk::ImageResolve2<'_>, |_r, _f| None);
image_pair!(vk::ImageCopy2<'_>, |r, _f| {
    let v1 = r.iter().map(|x| {
        x.p_next.is_null().then_some(vk::ImageCopy {
            src_subresource: x.src_subresource,
            src_offset: x.src_offset,
            dst_subresource: x.dst_subresource,
            dst_offset: x.dst_offset,
            extent: x.extent,
        })
    });
    Some(ImageOp::Copy(v1.collect::<Option<_>>()?))
});
image_pair!(vk::ImageBlit2<'_>, |r, f| {
    let v1 = r.iter().map(|x| {
        x.p_next.is_null().then_some(vk::ImageBlit {
            src_subresource: x.src_subresource,
            src_offsets: x.src_offsets,
            dst_subresource: x.dst_subresource,
            dst_offsets: x.dst_offsets,
        })
    });
    Some(ImageOp::Blit(v1.collect::<Option<_>>()?, f))
});

/// A copy between `buffer` and `image` with `count` `regions`: into the image when `to_image`
/// (the buffer from the lowest region offset on, read; the image's subresources the regions
/// name, written), else out of it.
///
/// # Safety
/// `regions` is null or holds `count` valid regions.
unsafe fn buffer_image<R: BufferImageRegion>(
    cb: &CommandBuffer,
    (buffer, image, layout): (vk::Buffer, vk::Image, vk::ImageLayout),
    count: u32,
    regions: *const R,
    to_image: bool,
) {
    // SAFETY: caller contract.
    let regions = unsafe { slice(regions, count) };
    let from = lowest(regions.iter().map(|r| r.at().0));
    let d = device(cb);
    transfer(
        cb,
        |acc| {
            feed_part(buffer.as_raw(), from, vk::WHOLE_SIZE, acc, !to_image);
            let units =
                |i: &crate::images::Image| layers_units(i, regions.iter().map(|r| r.at().1));
            feed_image(d, image.as_raw(), units, acc, to_image);
        },
        || {
            Some(crate::split::Transfer::BufferImage {
                buffer: buffer.as_raw(),
                image: image.as_raw(),
                layout,
                regions: regions.iter().map(R::v1).collect::<Option<_>>()?,
                to_image,
            })
        },
    );
}

/// A copy, blit or resolve from image `src` to image `dst` with `count` `regions` (`filter`:
/// a blit's; `chained`: its info extended by a chain, which the split log does not replay):
/// the source's subresources read, the destination's written.
///
/// # Safety
/// `regions` is null or holds `count` valid regions.
unsafe fn image_to_image<R: ImagePair>(
    cb: &CommandBuffer,
    (src, dst): ((vk::Image, vk::ImageLayout), (vk::Image, vk::ImageLayout)),
    (count, regions): (u32, *const R),
    (filter, chained): (vk::Filter, bool),
) {
    // SAFETY: caller contract.
    let regions = unsafe { slice(regions, count) };
    let d = device(cb);
    transfer(
        cb,
        |acc| {
            let srcs =
                |i: &crate::images::Image| layers_units(i, regions.iter().map(|r| r.pair().0));
            feed_image(d, src.0.as_raw(), srcs, acc, false);
            let dsts =
                |i: &crate::images::Image| layers_units(i, regions.iter().map(|r| r.pair().1));
            feed_image(d, dst.0.as_raw(), dsts, acc, true);
        },
        || {
            Some(crate::split::Transfer::Image {
                src: (src.0.as_raw(), src.1),
                dst: (dst.0.as_raw(), dst.1),
                op: R::op(regions, filter).filter(|_| !chained)?,
            })
        },
    );
}

/// [`image_to_image`] for a `Vk*ImageInfo2` (null: nothing), `$filter` of the info the
/// filter (blits: `i.filter`; others a filter they do not use).
///
/// # Safety
/// `$info` is null or a valid info with its regions.
macro_rules! image_to_image2 {
    ($cb:expr, $info:expr, |$i:ident| $filter:expr) => {
        if let Some($i) = $info.as_ref() {
            let ends = (
                ($i.src_image, $i.src_image_layout),
                ($i.dst_image, $i.dst_image_layout),
            );
            let how = ($filter, !$i.p_next.is_null());
            image_to_image($cb, ends, ($i.region_count, $i.p_regions), how)
        }
    };
}

/// `vkCmdCopyBufferToImage`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_buffer_to_image(
    cb: &CommandBuffer,
    src: vk::Buffer,
    dst: vk::Image,
    layout: vk::ImageLayout,
    count: u32,
    regions: *const vk::BufferImageCopy,
) {
    // SAFETY: forwarded contract.
    unsafe { buffer_image(cb, (src, dst, layout), count, regions, true) };
}

/// `vkCmdCopyBufferToImage2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_buffer_to_image2(cb: &CommandBuffer, info: *const vk::CopyBufferToImageInfo2) {
    // SAFETY: a valid copy info, with its regions.
    if let Some(i) = unsafe { info.as_ref() } {
        let ends = (i.src_buffer, i.dst_image, i.dst_image_layout);
        // SAFETY: as above.
        unsafe { buffer_image(cb, ends, i.region_count, i.p_regions, true) };
    }
}

/// `vkCmdCopyImageToBuffer`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_image_to_buffer(
    cb: &CommandBuffer,
    src: vk::Image,
    layout: vk::ImageLayout,
    dst: vk::Buffer,
    count: u32,
    regions: *const vk::BufferImageCopy,
) {
    // SAFETY: forwarded contract.
    unsafe { buffer_image(cb, (dst, src, layout), count, regions, false) };
}

/// `vkCmdCopyImageToBuffer2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_image_to_buffer2(cb: &CommandBuffer, info: *const vk::CopyImageToBufferInfo2) {
    // SAFETY: a valid copy info, with its regions.
    if let Some(i) = unsafe { info.as_ref() } {
        let ends = (i.dst_buffer, i.src_image, i.src_image_layout);
        // SAFETY: as above.
        unsafe { buffer_image(cb, ends, i.region_count, i.p_regions, false) };
    }
}

/// `vkCmdCopyImage`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_image(
    cb: &CommandBuffer,
    src: vk::Image,
    src_layout: vk::ImageLayout,
    dst: vk::Image,
    dst_layout: vk::ImageLayout,
    count: u32,
    regions: *const vk::ImageCopy,
) {
    let ends = ((src, src_layout), (dst, dst_layout));
    // SAFETY: forwarded contract.
    unsafe { image_to_image(cb, ends, (count, regions), (vk::Filter::NEAREST, false)) };
}

/// `vkCmdCopyImage2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn copy_image2(cb: &CommandBuffer, info: *const vk::CopyImageInfo2) {
    // SAFETY: forwarded contract.
    unsafe { image_to_image2!(cb, info, |i| vk::Filter::NEAREST) };
}

/// `vkCmdBlitImage`.
///
/// # Safety
/// Arguments valid for the command.
#[allow(clippy::too_many_arguments)]
pub unsafe fn blit_image(
    cb: &CommandBuffer,
    src: vk::Image,
    src_layout: vk::ImageLayout,
    dst: vk::Image,
    dst_layout: vk::ImageLayout,
    count: u32,
    regions: *const vk::ImageBlit,
    filter: vk::Filter,
) {
    let ends = ((src, src_layout), (dst, dst_layout));
    // SAFETY: forwarded contract.
    unsafe { image_to_image(cb, ends, (count, regions), (filter, false)) };
}

/// `vkCmdBlitImage2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn blit_image2(cb: &CommandBuffer, info: *const vk::BlitImageInfo2) {
    // SAFETY: forwarded contract.
    unsafe { image_to_image2!(cb, info, |i| i.filter) };
}

/// `vkCmdResolveImage`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn resolve_image(
    cb: &CommandBuffer,
    src: vk::Image,
    src_layout: vk::ImageLayout,
    dst: vk::Image,
    dst_layout: vk::ImageLayout,
    count: u32,
    regions: *const vk::ImageResolve,
) {
    let ends = ((src, src_layout), (dst, dst_layout));
    // SAFETY: forwarded contract.
    unsafe { image_to_image(cb, ends, (count, regions), (vk::Filter::NEAREST, false)) };
}

/// `vkCmdResolveImage2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn resolve_image2(cb: &CommandBuffer, info: *const vk::ResolveImageInfo2) {
    // SAFETY: forwarded contract.
    unsafe { image_to_image2!(cb, info, |i| vk::Filter::NEAREST) };
}

/// `vkCmdClearColorImage`: the ranges it clears.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn clear_color_image(
    cb: &CommandBuffer,
    image: vk::Image,
    layout: vk::ImageLayout,
    color: *const vk::ClearColorValue,
    count: u32,
    ranges: *const vk::ImageSubresourceRange,
) {
    // SAFETY: `count` ranges; the colour is null or valid.
    let (r, value) = unsafe { (slice(ranges, count), color.as_ref().copied()) };
    clear_image(
        cb,
        (image, layout),
        r,
        value.map(crate::split::Clear::Color),
    );
}

/// A clear of `ranges` of `image` (in `layout`) to `value` (`None`: the log cannot replay it):
/// the ranges written; where dispatches are split, a step of the split log (run whole).
fn clear_image(
    cb: &CommandBuffer,
    (image, layout): (vk::Image, vk::ImageLayout),
    ranges: &[vk::ImageSubresourceRange],
    value: Option<crate::split::Clear>,
) {
    let d = device(cb);
    transfer(
        cb,
        |acc| {
            feed_image(
                d,
                image.as_raw(),
                |i| range_units(i, ranges.iter()),
                acc,
                true,
            )
        },
        || {
            Some(crate::split::Transfer::Clear {
                image: image.as_raw(),
                layout,
                value: value?,
                ranges: ranges.to_vec(),
            })
        },
    );
}

/// `vkCmdClearDepthStencilImage`: the ranges it clears.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn clear_depth_stencil_image(
    cb: &CommandBuffer,
    image: vk::Image,
    layout: vk::ImageLayout,
    value: *const vk::ClearDepthStencilValue,
    count: u32,
    ranges: *const vk::ImageSubresourceRange,
) {
    // SAFETY: `count` ranges; the value is null or valid.
    let (r, value) = unsafe { (slice(ranges, count), value.as_ref().copied()) };
    clear_image(
        cb,
        (image, layout),
        r,
        value.map(crate::split::Clear::DepthStencil),
    );
}

/// The buffer and image barriers of a dependency: a buffer barrier writes nothing (the part
/// it names is read: the batch is ordered after its writers); an image barrier writes the
/// subresources it names where it changes their layout, and reads them otherwise.
fn barriers(
    cb: &CommandBuffer,
    buffers: impl Iterator<Item = (vk::Buffer, u64, u64)>,
    images: impl Iterator<
            Item = (
                vk::Image,
                (vk::ImageLayout, vk::ImageLayout),
                vk::ImageSubresourceRange,
            ),
        > + Clone,
) {
    let d = device(cb);
    let mut acc = cb.access.lock();
    let before = acc.fed;
    let for_log = images.clone();
    // Transitions from UNDEFINED discard the contents (before this command touches anything).
    for (image, (old, _), range) in images.clone() {
        if old == vk::ImageLayout::UNDEFINED {
            discard_image(d, &mut acc, image.as_raw(), |i| i.range_units(&range));
        }
    }
    for (b, offset, size) in buffers {
        feed_part(b.as_raw(), offset, size, &mut *acc, false);
    }
    for (image, (old, new), range) in images {
        let units = |i: &crate::images::Image| i.range_units(&range);
        feed_image(d, image.as_raw(), units, &mut *acc, old != new);
    }
    let fed = acc.fed - before;
    drop(acc);
    if splitting() {
        if let Some(log) = &mut cb.compute.lock().log {
            let logged = for_log
                .map(|(image, layouts, range)| crate::split::ImageBarrier {
                    image: image.as_raw(),
                    layouts,
                    range,
                })
                .collect();
            log.barrier(fed, logged);
        }
    }
}

/// The barriers of a `VkDependencyInfo`.
///
/// # Safety
/// `dep` is null or a valid dependency info.
unsafe fn dependency(cb: &CommandBuffer, dep: *const vk::DependencyInfo) {
    // SAFETY: caller contract.
    let Some(dep) = (unsafe { dep.as_ref() }) else {
        return;
    };
    // SAFETY: the counts the info gives.
    let (bufs, imgs) = unsafe {
        (
            slice(
                dep.p_buffer_memory_barriers,
                dep.buffer_memory_barrier_count,
            ),
            slice(dep.p_image_memory_barriers, dep.image_memory_barrier_count),
        )
    };
    if bufs
        .iter()
        .any(|b| b.src_queue_family_index != b.dst_queue_family_index)
        || imgs
            .iter()
            .any(|b| b.src_queue_family_index != b.dst_queue_family_index)
    {
        breaks_split_log(cb, "a queue family ownership transfer");
    }
    barriers(
        cb,
        bufs.iter().map(|b| (b.buffer, b.offset, b.size)),
        imgs.iter()
            .map(|b| (b.image, (b.old_layout, b.new_layout), b.subresource_range)),
    );
}

/// `vkCmdPipelineBarrier`.
///
/// # Safety
/// Arguments valid for the command.
#[allow(clippy::too_many_arguments)]
pub unsafe fn pipeline_barrier(
    cb: &CommandBuffer,
    _src: vk::PipelineStageFlags,
    _dst: vk::PipelineStageFlags,
    _flags: vk::DependencyFlags,
    _memory_count: u32,
    _memory: *const vk::MemoryBarrier,
    buffer_count: u32,
    buffers: *const vk::BufferMemoryBarrier,
    image_count: u32,
    images: *const vk::ImageMemoryBarrier,
) {
    // SAFETY: the counts given.
    let (bufs, imgs) = unsafe { (slice(buffers, buffer_count), slice(images, image_count)) };
    if bufs
        .iter()
        .any(|b| b.src_queue_family_index != b.dst_queue_family_index)
        || imgs
            .iter()
            .any(|b| b.src_queue_family_index != b.dst_queue_family_index)
    {
        breaks_split_log(cb, "a queue family ownership transfer");
    }
    barriers(
        cb,
        bufs.iter().map(|b| (b.buffer, b.offset, b.size)),
        imgs.iter()
            .map(|b| (b.image, (b.old_layout, b.new_layout), b.subresource_range)),
    );
}

/// `vkCmdPipelineBarrier2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn pipeline_barrier2(cb: &CommandBuffer, dep: *const vk::DependencyInfo) {
    // SAFETY: forwarded contract.
    unsafe { dependency(cb, dep) };
}

/// `vkCmdWaitEvents`: its barriers (the events lead to no memory).
///
/// # Safety
/// Arguments valid for the command.
#[allow(clippy::too_many_arguments)]
pub unsafe fn wait_events(
    cb: &CommandBuffer,
    _event_count: u32,
    _events: *const vk::Event,
    src: vk::PipelineStageFlags,
    dst: vk::PipelineStageFlags,
    memory_count: u32,
    memory: *const vk::MemoryBarrier,
    buffer_count: u32,
    buffers: *const vk::BufferMemoryBarrier,
    image_count: u32,
    images: *const vk::ImageMemoryBarrier,
) {
    breaks_split_log(cb, "an event wait");
    if src.contains(vk::PipelineStageFlags::HOST) {
        cb.access.lock().host_events = true;
    }
    // SAFETY: forwarded contract.
    unsafe {
        pipeline_barrier(
            cb,
            src,
            dst,
            vk::DependencyFlags::empty(),
            memory_count,
            memory,
            buffer_count,
            buffers,
            image_count,
            images,
        )
    };
}

/// `vkCmdWaitEvents2`: the barriers of each event's dependency.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn wait_events2(
    cb: &CommandBuffer,
    event_count: u32,
    _events: *const vk::Event,
    deps: *const vk::DependencyInfo,
) {
    breaks_split_log(cb, "an event wait");
    cb.access.lock().host_events = true;
    // SAFETY: `event_count` dependency infos.
    for dep in unsafe { slice(deps, event_count) } {
        // SAFETY: a valid dependency info.
        unsafe { dependency(cb, dep) };
    }
}

/// A render pass begins: the attachments whose contents it discards (`layout.rs`) first, then
/// what the framebuffer, or an imageless one's views, lead to.
///
/// # Safety
/// `begin` is null or a valid `VkRenderPassBeginInfo`.
unsafe fn render_pass_begins(cb: &CommandBuffer, begin: *const vk::RenderPassBeginInfo) {
    // SAFETY: caller contract.
    let Some(b) = (unsafe { begin.as_ref() }) else {
        return;
    };
    let d = device(cb);
    let mut acc = cb.access.lock();
    // SAFETY: as above.
    for (image, range) in unsafe { crate::layout::discarded_at_begin(begin) } {
        discard_image(d, &mut acc, image, |i| i.range_units(&range));
    }
    feed(b.framebuffer.as_raw(), &mut *acc, true);
    // SAFETY: a valid pNext chain, whose node of this type is a VkRenderPassAttachmentBeginInfo
    // with attachmentCount views.
    if let Some(a) = unsafe {
        crate::conv::chain_find::<vk::RenderPassAttachmentBeginInfo>(
            b.p_next,
            vk::StructureType::RENDER_PASS_ATTACHMENT_BEGIN_INFO,
        )
    } {
        // SAFETY: as above.
        for v in unsafe { slice(a.p_attachments, a.attachment_count) } {
            feed(v.as_raw(), &mut *acc, true);
        }
    }
}

/// `vkCmdBeginRenderPass`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn begin_render_pass(
    cb: &CommandBuffer,
    begin: *const vk::RenderPassBeginInfo,
    _contents: vk::SubpassContents,
) {
    // SAFETY: forwarded contract.
    unsafe { render_pass_begins(cb, begin) };
}

/// `vkCmdBeginRenderPass2`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn begin_render_pass2(
    cb: &CommandBuffer,
    begin: *const vk::RenderPassBeginInfo,
    _subpass: *const vk::SubpassBeginInfo,
) {
    // SAFETY: forwarded contract.
    unsafe { render_pass_begins(cb, begin) };
}

/// A descriptor set layout's bindings and descriptor counts, in binding order.
type Bindings = std::sync::Arc<Vec<(u32, u32)>>;

/// Descriptor set layouts (raw handle), on devices of several members.
static SET_LAYOUTS: parking_lot::RwLock<BTreeMap<u64, Bindings>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// Per descriptor set (raw handle): what each binding ever held, for dispatches, which use
/// the bindings their shader does as it does (`dispatched`).
static SET_BINDINGS: parking_lot::RwLock<BTreeMap<u64, SetBindings>> =
    parking_lot::const_rwlock(BTreeMap::new());

/// What the bindings of one descriptor set ever held.
struct SetBindings {
    /// Its layout's bindings; None: a layout vkfuse did not see.
    layout: Option<Bindings>,
    per: BTreeMap<u32, Leads>,
    /// Not known per binding (an unknown layout, a copy into the set): the set's whole leads
    /// stand for every binding.
    whole: bool,
}

/// After `vkCreateDescriptorSetLayout`: its bindings and their descriptor counts.
///
/// # Safety
/// Arguments of a successful `vkCreateDescriptorSetLayout`.
pub unsafe fn set_layout_created(
    d: &Device,
    info: *const vk::DescriptorSetLayoutCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    layout: *mut vk::DescriptorSetLayout,
) {
    if !d.exec.multi {
        return;
    }
    // SAFETY: a valid create info with bindingCount bindings, and the created layout.
    let (info, layout) = unsafe { (&*info, (*layout).as_raw()) };
    // SAFETY: as above.
    let mut list: Vec<(u32, u32)> = unsafe { slice(info.p_bindings, info.binding_count) }
        .iter()
        .map(|b| (b.binding, b.descriptor_count))
        .collect();
    list.sort_unstable();
    SET_LAYOUTS
        .write()
        .insert(layout, std::sync::Arc::new(list));
}

/// After `vkDestroyDescriptorSetLayout`.
///
/// # Safety
/// Arguments of `vkDestroyDescriptorSetLayout`.
pub unsafe fn set_layout_destroyed(
    _d: &Device,
    layout: vk::DescriptorSetLayout,
    _alloc: *const vk::AllocationCallbacks,
) {
    SET_LAYOUTS.write().remove(&layout.as_raw());
}

/// Descriptor sets `sets` were allocated with `layouts` (`descriptor.rs`).
pub fn sets_allocated(d: &Device, layouts: &[vk::DescriptorSetLayout], sets: &[u64]) {
    if !d.exec.multi {
        return;
    }
    let known = SET_LAYOUTS.read();
    let mut table = SET_BINDINGS.write();
    for (l, s) in layouts.iter().zip(sets) {
        let layout = known.get(&l.as_raw()).cloned();
        let whole = layout.is_none();
        table.insert(
            *s,
            SetBindings {
                layout,
                per: BTreeMap::new(),
                whole,
            },
        );
    }
}

/// Descriptor sets were freed (or their pool reset or destroyed).
pub fn sets_freed(sets: &[u64]) {
    let mut table = SET_BINDINGS.write();
    for s in sets {
        table.remove(s);
    }
}

/// Attributes `count` descriptors written from `binding`, element `element` on, to the
/// bindings of `set` they land in (consecutive binding updates continue into the next
/// bindings, skipping empty ones); `one(i, leads)` hands descriptor `i`'s resources over.
fn attribute(
    set: u64,
    (binding, element, count): (u32, u32, usize),
    mut one: impl FnMut(usize, &mut Leads),
) {
    let mut table = SET_BINDINGS.write();
    let Some(sb) = table.get_mut(&set) else {
        return;
    };
    let Some(layout) = sb.layout.clone().filter(|_| !sb.whole) else {
        return;
    };
    let Some(mut at) = layout.iter().position(|(b, _)| *b == binding) else {
        sb.whole = true;
        return;
    };
    let mut e = element;
    for i in 0..count {
        while at < layout.len() && e >= layout[at].1 {
            at += 1;
            e = 0;
        }
        let Some((b, _)) = layout.get(at) else {
            return;
        };
        one(i, sb.per.entry(*b).or_insert_with(Leads::none));
        e += 1;
    }
}

/// Descriptor sets were copied into `set`: no longer known per binding.
fn copied_into(set: u64) {
    if let Some(sb) = SET_BINDINGS.write().get_mut(&set) {
        sb.whole = true;
    }
}

/// After `vkUpdateDescriptorSetWithTemplate` (`descriptor.rs`): the set's bindings lead where
/// the data's resources do.
///
/// # Safety
/// `data` is laid out as `entries` describe.
pub unsafe fn template_updated(
    set: u64,
    entries: &[vk::DescriptorUpdateTemplateEntry],
    data: *const c_void,
) {
    if data.is_null() {
        return;
    }
    for e in entries {
        if e.descriptor_type == vk::DescriptorType::INLINE_UNIFORM_BLOCK {
            continue;
        }
        let at = (
            e.dst_binding,
            e.dst_array_element,
            e.descriptor_count as usize,
        );
        attribute(set, at, |i, leads| {
            // SAFETY: element i of the entry lies at offset + i * stride (caller contract).
            let p = unsafe { data.cast::<u8>().add(e.offset + i * e.stride) };
            // SAFETY: one element of the type the entry names.
            unsafe { feed_writes(e.descriptor_type, 1, (p.cast(), p.cast(), p.cast()), leads) };
        });
    }
}

/// What a command buffer has bound for dispatches: the compute pipeline's shader analysis
/// (taken at `vkCmdBindPipeline`; None: none, or not analysed) and the descriptor sets by set
/// number (0: none).
#[derive(Default)]
pub struct ComputeBinds {
    analysis: Option<std::sync::Arc<vkfuse_shader::Analysis>>,
    sets: Vec<u64>,
    /// Per set number: bound with dynamic offsets (by a bind that gave some), so that its
    /// buffer descriptors' bytes move by an offset the bindings do not record.
    dynamic: Vec<bool>,
    /// The compute commands, for replay in slices (primary command buffers of a device that
    /// splits dispatches, `split.rs`).
    pub log: Option<Box<crate::split::Log>>,
    /// What is bound for draws.
    draw: DrawBinds,
}

/// What a command buffer has bound for draws: the graphics pipeline's analysis (`None` before
/// the first graphics pipeline is bound; `Some(None)` for a pipeline not analysed) and the
/// graphics descriptor sets by set number (0: none).
///
/// Each time either changes, the bound sets are fed into the command buffer's access set as
/// the bound pipeline uses them (`drawable`): every draw runs with some pipeline and sets bound,
/// and the later of the two binds fed that pair. Sets bound before any pipeline wait for one.
#[derive(Default)]
struct DrawBinds {
    pipeline: Option<Option<std::sync::Arc<vkfuse_shader::Analysis>>>,
    sets: Vec<u64>,
}

impl ComputeBinds {
    /// The state at the start of recording; `log`: keep a split log.
    pub fn new(log: bool) -> ComputeBinds {
        ComputeBinds {
            log: log.then(Default::default),
            ..Default::default()
        }
    }
}

/// `vkCmdBindDescriptorSets`: compute sets are remembered for the dispatches, which use them
/// as their shader does; graphics sets lead where the bound graphics pipeline's shaders use
/// them (once one is bound: `DrawBinds`); other bind points' sets lead where they do, written.
///
/// # Safety
/// Arguments valid for the command.
#[allow(clippy::too_many_arguments)]
pub unsafe fn bind_descriptor_sets(
    cb: &CommandBuffer,
    bind_point: vk::PipelineBindPoint,
    layout: vk::PipelineLayout,
    first: u32,
    count: u32,
    sets: *const vk::DescriptorSet,
    dynamic_count: u32,
    dynamic: *const u32,
) {
    // SAFETY: `count` sets.
    let sets = unsafe { slice(sets, count) };
    if bind_point == vk::PipelineBindPoint::COMPUTE {
        let mut c = cb.compute.lock();
        if let Some(log) = &mut c.log {
            // SAFETY: `dynamic_count` offsets.
            let dynamic = unsafe { slice(dynamic, dynamic_count) };
            log.sets(layout.as_raw(), first, sets, dynamic);
        }
        let end = first as usize + sets.len();
        if c.sets.len() < end {
            c.sets.resize(end, 0);
            c.dynamic.resize(end, false);
        }
        for (k, s) in sets.iter().enumerate() {
            c.sets[first as usize + k] = s.as_raw();
            c.dynamic[first as usize + k] = dynamic_count > 0;
        }
        return;
    }
    if bind_point == vk::PipelineBindPoint::GRAPHICS {
        let mut c = cb.compute.lock();
        let draw = &mut c.draw;
        let end = first as usize + sets.len();
        if draw.sets.len() < end {
            draw.sets.resize(end, 0);
        }
        for (k, s) in sets.iter().enumerate() {
            draw.sets[first as usize + k] = s.as_raw();
        }
        if let Some(pipeline) = &draw.pipeline {
            let numbered = sets
                .iter()
                .enumerate()
                .map(|(k, s)| (first + k as u32, s.as_raw()));
            drawable(cb, pipeline.as_deref(), numbered);
        }
        return;
    }
    let mut acc = cb.access.lock();
    for s in sets {
        feed(s.as_raw(), &mut *acc, true);
    }
}

/// After `vkCmdBindPipeline`: the analysis of the compute pipeline the next dispatches run.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn pipeline_bound(
    cb: &CommandBuffer,
    bind_point: vk::PipelineBindPoint,
    pipeline: vk::Pipeline,
) {
    if bind_point == vk::PipelineBindPoint::COMPUTE {
        let mut c = cb.compute.lock();
        c.analysis = crate::shaders::analysis(pipeline.as_raw());
        if let Some(log) = &mut c.log {
            log.pipeline(pipeline.as_raw());
        }
    } else if bind_point == vk::PipelineBindPoint::GRAPHICS {
        let mut c = cb.compute.lock();
        let a = crate::shaders::analysis(pipeline.as_raw());
        // Most programs bind the pipeline first: no sets yet, nothing to take a lock for.
        if c.draw.sets.iter().any(|s| *s != 0) {
            let numbered = c.draw.sets.iter().enumerate().map(|(k, s)| (k as u32, *s));
            drawable(cb, a.as_deref(), numbered);
        }
        c.draw.pipeline = Some(a);
    }
}

/// Graphics sets bound with a graphics pipeline whose stages analysed as `a` (`None`: not
/// analysed): each binding the pipeline's shaders use leads where it does, written only where
/// they may write it; every binding of a set, written, where the pipeline or the set is not
/// known per binding.
fn drawable(
    cb: &CommandBuffer,
    a: Option<&vkfuse_shader::Analysis>,
    sets: impl Iterator<Item = (u32, u64)>,
) {
    let table = SET_BINDINGS.read();
    let mut acc = cb.access.lock();
    for (number, set) in sets {
        if set == 0 {
            continue;
        }
        match (a, table.get(&set)) {
            (Some(a), Some(sb)) if !sb.whole && !a.addresses => {
                for (binding, leads) in &sb.per {
                    // A binding no stage declares, or uses, is not accessed.
                    let Some(b) = a.bindings.get(&(number, *binding)) else {
                        continue;
                    };
                    if b.read || b.written || b.opaque {
                        leads.feed(&mut *acc, b.written || b.opaque);
                    }
                }
            }
            _ => feed(set, &mut *acc, true),
        }
    }
}

/// After `vkCmdPushConstants`: the split log replays push constants.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn push_constants(
    cb: &CommandBuffer,
    layout: vk::PipelineLayout,
    stages: vk::ShaderStageFlags,
    offset: u32,
    size: u32,
    values: *const std::ffi::c_void,
) {
    if !splitting() {
        return;
    }
    let mut c = cb.compute.lock();
    if let Some(log) = &mut c.log {
        // SAFETY: `size` bytes.
        let bytes = unsafe { slice(values.cast::<u8>(), size) };
        log.push_constants(layout.as_raw(), stages, offset, bytes);
    }
}

/// After `vkCmdPushDescriptorSetKHR`: not replayed by the split log.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn push_descriptor_set(
    cb: &CommandBuffer,
    _bind_point: vk::PipelineBindPoint,
    _layout: vk::PipelineLayout,
    _set: u32,
    _count: u32,
    _writes: *const vk::WriteDescriptorSet,
) {
    breaks_split_log(cb, "push descriptors");
}

/// After a command the split log cannot replay (push descriptors): the command buffer runs
/// whole.
pub fn breaks_split_log(cb: &CommandBuffer, why: &'static str) {
    if !splitting() {
        return;
    }
    if let Some(log) = &mut cb.compute.lock().log {
        log.brk(why);
    }
}

/// A dispatch: the bound compute sets' bindings that the pipeline's shader uses
/// (`shaders.rs`), written only where it writes them; every binding of a set, written, where
/// the shader or the set is not known per binding.
fn dispatched(
    cb: &CommandBuffer,
    grid: Option<([u32; 3], [u32; 3])>,
    step: impl FnOnce(
        &mut crate::split::Log,
        Option<&std::sync::Arc<vkfuse_shader::Analysis>>,
        crate::split::Touch,
    ),
) {
    let mut c = cb.compute.lock();
    let c = &mut *c;
    let (analysis, sets, dynamic) = (&c.analysis, &c.sets, &c.dynamic);
    let table = SET_BINDINGS.read();
    // For the split log, the dispatch's own set; otherwise straight into the command buffer's.
    let logging = c.log.is_some();
    let mut own = AccessSet::default();
    let mut shared = (!logging).then(|| cb.access.lock());
    let acc: &mut AccessSet = match &mut shared {
        Some(g) => g,
        None => &mut own,
    };
    // What bindings of add atomics lead to (`None` once a set is only known whole).
    let mut adds = logging.then(AccessSet::default);
    // For the split log: the bindings whose invocations access only their own bytes, and
    // what the others touch.
    let mut own_parts = Vec::new();
    let mut rest = logging.then(AccessSet::default);
    for (number, set) in sets.iter().enumerate() {
        if *set == 0 {
            continue;
        }
        match (analysis, table.get(set)) {
            (Some(a), Some(sb)) if !sb.whole && !a.addresses => {
                for (binding, leads) in &sb.per {
                    // A binding the shader does not declare, or does not use, is not
                    // accessed.
                    let Some(b) = a.bindings.get(&(number as u32, *binding)) else {
                        continue;
                    };
                    if b.read || b.written || b.opaque {
                        leads.feed(&mut *acc, b.written || b.opaque);
                        let part = rest
                            .as_ref()
                            .filter(|_| !dynamic.get(number).copied().unwrap_or(true))
                            .and_then(|_| own_part(a, b, leads, c.log.as_deref(), grid));
                        match (part, &mut rest) {
                            (Some(p), _) => own_parts.push(p),
                            (None, Some(r)) => leads.feed(r, b.written || b.opaque),
                            (None, None) => {}
                        }
                    }
                    if b.atomics == vkfuse_shader::Atomics::Add {
                        if let Some(adds) = &mut adds {
                            leads.feed(adds, true);
                        }
                    }
                }
            }
            _ => {
                feed(*set, &mut *acc, true);
                if let Some(r) = &mut rest {
                    feed(*set, r, true);
                }
                adds = None;
            }
        }
    }
    drop(shared);
    if let Some(log) = &mut c.log {
        cb.access.lock().union(&own);
        step(
            log,
            analysis.as_ref(),
            crate::split::Touch {
                access: own,
                adds,
                own: own_parts,
                rest: rest.unwrap_or_default(),
            },
        );
    }
}

/// The binding `b` of a dispatch of `a`'s shader as an [`crate::split::OwnPart`]: where the
/// shader accesses only each invocation's own bytes of it (`vkfuse_shader::Own`) and it
/// leads to one range of one allocation (a buffer descriptor without a dynamic offset); an
/// index that adds a push constant needs its value, from the split log `log`. Rows indexed by
/// a push constant width need it too, and the dispatch's grid (`grid`: base and count, none
/// for an indirect dispatch) no wider than it, so that no invocation's column reaches the
/// next row.
fn own_part(
    a: &vkfuse_shader::Analysis,
    b: &vkfuse_shader::Binding,
    leads: &Leads,
    log: Option<&crate::split::Log>,
    grid: Option<([u32; 3], [u32; 3])>,
) -> Option<crate::split::OwnPart> {
    let own = b.own.filter(|_| !b.opaque)?;
    let bytes = match own.rows {
        Some((col, at)) => {
            let width = u64::from(log?.push_word(at)?);
            let (base, count) = grid?;
            let size = a.local_size?;
            let extent = |c: usize| {
                let groups = u64::from(*base.get(c)?) + u64::from(*count.get(c)?);
                groups.checked_mul(u64::from(*size.get(c)?))
            };
            // Every column below the width, and every element index within 32 bits.
            let (cols, rows) = (extent(usize::from(col))?, extent(usize::from(own.comp))?);
            if cols > width || rows.checked_mul(width)? > 1 << 32 {
                return None;
            }
            own.bytes.checked_mul(width)?
        }
        None => own.bytes,
    };
    // The push constant moves the bytes by whole elements; a value of 2^31 or more may
    // wrap the shader's 32-bit index.
    let moved = match own.push {
        Some(at) => {
            let u = log?.push_word(at)?;
            if u >= 1 << 31 {
                return None;
            }
            u64::from(u).checked_mul(own.stride)?
        }
        None => 0,
    };
    let comp = usize::from(own.comp);
    let local = *a.local_size?.get(comp)?;
    let Leads::Memory(map) = leads else {
        return None;
    };
    let (1, Some((m, u))) = (map.len(), map.iter().next()) else {
        return None;
    };
    let [r] = u.touched.ranges() else {
        return None;
    };
    if r.end == u64::MAX {
        return None;
    }
    Some(crate::split::OwnPart {
        memory: *m,
        range: *r,
        start: r.start.checked_add(own.offset)?.checked_add(moved)?,
        bytes,
        comp,
        local,
        written: b.written && u.writes(),
    })
}

/// After `vkCmdDispatch`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn dispatch(cb: &CommandBuffer, x: u32, y: u32, z: u32) {
    dispatched(cb, Some(([0; 3], [x, y, z])), |log, a, own| {
        log.dispatch(a.map(|a| &**a), [0; 3], [x, y, z], own)
    });
}

/// After `vkCmdDispatchBase`.
///
/// # Safety
/// Arguments valid for the command.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dispatch_base(cb: &CommandBuffer, bx: u32, by: u32, bz: u32, x: u32, y: u32, z: u32) {
    dispatched(cb, Some(([bx, by, bz], [x, y, z])), |log, a, own| {
        log.dispatch(a.map(|a| &**a), [bx, by, bz], [x, y, z], own)
    });
}

/// After `vkCmdDispatchIndirect`.
///
/// # Safety
/// Arguments valid for the command.
pub unsafe fn dispatch_indirect(cb: &CommandBuffer, buffer: vk::Buffer, offset: u64) {
    dispatched(cb, None, |log, a, mut touch| {
        // The generated collection read the buffer the group counts come from.
        let mut counts = AccessSet::default();
        feed(buffer.as_raw(), &mut counts, false);
        log.own += counts.fed;
        // Where the counts lie: one range of one allocation.
        let args = match (counts.memory.len(), counts.memory.iter().next()) {
            (1, Some((m, u))) => match u.touched.ranges() {
                [r] if r.end != u64::MAX => r.start.checked_add(offset).map(|at| (*m, at)),
                _ => None,
            },
            _ => None,
        };
        let pending = a.cloned().zip(args);
        // The dispatch's own accesses stay with it only where it may become a dispatch.
        let mut own = if pending.is_some() {
            touch.access.clone()
        } else {
            std::mem::take(&mut touch.access)
        };
        own.union(&counts);
        own.fed -= counts.fed;
        let then = pending.map(|(analysis, args)| crate::split::Pending {
            analysis,
            args,
            touch,
        });
        log.indirect(buffer.as_raw(), offset, own, then)
    });
}

/// What the live objects `raws` lead to together.
fn leads_of(raws: impl IntoIterator<Item = u64>) -> Leads {
    let mut out = Leads::none();
    for raw in raws {
        feed(raw, &mut out, true);
    }
    out
}

/// Adds what the handle `raw`, named by a command recorded into `cb`, leads to (as written,
/// unless the object only leads to memory read through it).
pub fn touch(cb: &CommandBuffer, raw: u64) {
    feed(raw, &mut *cb.access.lock(), true);
}

/// Adds what the handle `raw`, named by a command recorded into `cb` that only reads it,
/// leads to (a `writes` line of `codegen/overrides.txt` names what the command writes).
pub fn touch_read(cb: &CommandBuffer, raw: u64) {
    feed(raw, &mut *cb.access.lock(), false);
}

/// `vkCmdExecuteCommands`: the secondaries' sets join the primary's, and their split logs its
/// log (`split::Log::append`).
pub fn execute_commands(cb: &CommandBuffer, secondaries: &[&CommandBuffer]) {
    if !cb.collects() {
        return;
    }
    if splitting() {
        if let Some(log) = &mut cb.compute.lock().log {
            for s in secondaries.iter().filter(|s| !std::ptr::eq(**s, cb)) {
                match &s.compute.lock().log {
                    Some(theirs) => log.append(theirs),
                    None => log.brk("a secondary command buffer without a split log"),
                }
            }
        }
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
    if d.addresses_taken.load(std::sync::atomic::Ordering::Acquire) {
        acc.set_everything("buffer device addresses");
    }
    acc
}

/// Hands the resources that descriptor writes of `ty` name, from the write's arrays, to
/// `sink`: storage descriptors as written, the others as read.
///
/// # Safety
/// The arrays that `ty` selects hold `count` valid elements.
unsafe fn feed_writes(
    ty: vk::DescriptorType,
    count: usize,
    (images, buffers, texels): (
        *const vk::DescriptorImageInfo,
        *const vk::DescriptorBufferInfo,
        *const vk::BufferView,
    ),
    sink: &mut impl Sink,
) {
    let write = matches!(
        ty,
        vk::DescriptorType::STORAGE_IMAGE
            | vk::DescriptorType::STORAGE_BUFFER
            | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC
            | vk::DescriptorType::STORAGE_TEXEL_BUFFER
    );
    for i in 0..count {
        if matches!(
            ty,
            vk::DescriptorType::UNIFORM_BUFFER | vk::DescriptorType::STORAGE_BUFFER
        ) {
            // The part of the buffer the descriptor names (dynamic descriptors move by an
            // offset given at bind time: their whole buffer, below).
            // SAFETY: caller contract: `count` buffer infos.
            let b = unsafe { &*buffers.add(i) };
            feed_part(b.buffer.as_raw(), b.offset, b.range, sink, write);
            continue;
        }
        // SAFETY: caller contract: `count` elements of the array this type reads.
        let raw = unsafe {
            match ty {
                vk::DescriptorType::SAMPLER | vk::DescriptorType::INLINE_UNIFORM_BLOCK => return,
                vk::DescriptorType::COMBINED_IMAGE_SAMPLER
                | vk::DescriptorType::SAMPLED_IMAGE
                | vk::DescriptorType::STORAGE_IMAGE
                | vk::DescriptorType::INPUT_ATTACHMENT => (*images.add(i)).image_view.as_raw(),
                vk::DescriptorType::UNIFORM_BUFFER
                | vk::DescriptorType::STORAGE_BUFFER
                | vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC
                | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC => (*buffers.add(i)).buffer.as_raw(),
                vk::DescriptorType::UNIFORM_TEXEL_BUFFER
                | vk::DescriptorType::STORAGE_TEXEL_BUFFER => (*texels.add(i)).as_raw(),
                _ => return sink.everything("a descriptor type vkfuse does not trace"),
            }
        };
        feed(raw, sink, write);
    }
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
    let (info, view) = unsafe { (&*info, (*view).as_raw()) };
    let image = info.image.as_raw();
    // The view's subresources of an image copied between drivers (`feed_image`).
    let mut leads = Leads::none();
    feed_image(
        d,
        image,
        |i| i.range_units(&info.subresource_range),
        &mut leads,
        true,
    );
    // SAFETY: the view was just created.
    unsafe { set(view, leads) };
}

/// After `vkCreateBufferView`: the view leads where its buffer does.
///
/// # Safety
/// Arguments of a successful `vkCreateBufferView`.
pub unsafe fn buffer_view_created(
    _d: &Device,
    info: *const vk::BufferViewCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    view: *mut vk::BufferView,
) {
    // SAFETY: valid create info and the created view.
    let (info, view) = unsafe { (&*info, (*view).as_raw()) };
    // The part of the buffer the view names.
    let mut leads = Leads::none();
    feed_part(
        info.buffer.as_raw(),
        info.offset,
        info.range,
        &mut leads,
        true,
    );
    // SAFETY: the view was just created.
    unsafe { set(view, leads) };
}

/// After `vkCreateFramebuffer`: the framebuffer leads where its attachments do (imageless
/// framebuffers name theirs when a render pass begins).
///
/// # Safety
/// Arguments of a successful `vkCreateFramebuffer`.
pub unsafe fn framebuffer_created(
    _d: &Device,
    info: *const vk::FramebufferCreateInfo,
    _alloc: *const vk::AllocationCallbacks,
    fb: *mut vk::Framebuffer,
) {
    // SAFETY: valid create info and the created framebuffer.
    let (info, fb) = unsafe { (&*info, (*fb).as_raw()) };
    if info.flags.contains(vk::FramebufferCreateFlags::IMAGELESS) || info.attachment_count == 0 {
        return;
    }
    // SAFETY: attachmentCount views.
    let views =
        unsafe { std::slice::from_raw_parts(info.p_attachments, info.attachment_count as usize) };
    // SAFETY: the framebuffer was just created.
    unsafe { set(fb, leads_of(views.iter().map(|v| v.as_raw()))) };
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
        // SAFETY: `write_count` valid writes whose type selects valid arrays, of live sets.
        unsafe {
            let w = &*writes.add(i);
            let mut leads = Leads::none();
            feed_writes(
                w.descriptor_type,
                w.descriptor_count as usize,
                (w.p_image_info, w.p_buffer_info, w.p_texel_buffer_view),
                &mut leads,
            );
            merge(w.dst_set.as_raw(), &leads);
            if w.descriptor_type != vk::DescriptorType::INLINE_UNIFORM_BLOCK {
                let at = (
                    w.dst_binding,
                    w.dst_array_element,
                    w.descriptor_count as usize,
                );
                attribute(w.dst_set.as_raw(), at, |k, leads| {
                    // Element k of the write's array (k < descriptorCount); the other
                    // arrays are not read for this type.
                    let one = (
                        w.p_image_info.wrapping_add(k),
                        w.p_buffer_info.wrapping_add(k),
                        w.p_texel_buffer_view.wrapping_add(k),
                    );
                    feed_writes(w.descriptor_type, 1, one, leads);
                });
            }
        }
    }
    for i in 0..copy_count as usize {
        // SAFETY: `copy_count` valid copies between live sets.
        unsafe {
            let c = &*copies.add(i);
            merge(c.dst_set.as_raw(), &leads_of([c.src_set.as_raw()]));
            copied_into(c.dst_set.as_raw());
        }
    }
}

/// Hands what the data of a descriptor update template names to `sink`.
///
/// # Safety
/// `data` is laid out as `entries` describe.
pub unsafe fn feed_template(
    entries: &[vk::DescriptorUpdateTemplateEntry],
    data: *const c_void,
    sink: &mut impl Sink,
) {
    if data.is_null() {
        return;
    }
    for e in entries {
        if e.descriptor_type == vk::DescriptorType::INLINE_UNIFORM_BLOCK {
            continue;
        }
        for i in 0..e.descriptor_count as usize {
            // SAFETY: element i of the entry lies at offset + i * stride (caller contract).
            let p = unsafe { data.cast::<u8>().add(e.offset + i * e.stride) };
            // SAFETY: one element of the type the entry names.
            unsafe { feed_writes(e.descriptor_type, 1, (p.cast(), p.cast(), p.cast()), sink) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Range = Range::WHOLE;

    /// Leads built from (allocation, range, written) triples.
    fn leads(l: &[(u64, Range, bool)]) -> Leads {
        let mut out = Leads::none();
        for (m, r, w) in l {
            out.memory(*m, *r, *w);
        }
        out
    }

    #[test]
    fn leads_merge_keeps_everything_and_unions_memory() {
        let mut a = leads(&[(1, W, true), (2, W, false)]);
        a.merge(&leads(&[(2, W, true), (3, W, false)]));
        assert_eq!(a, leads(&[(1, W, true), (2, W, true), (3, W, false)]));
        a.merge(&Leads::Everything("x"));
        assert_eq!(a, Leads::Everything("x"));
        a.merge(&leads(&[(4, W, true)]));
        assert_eq!(a, Leads::Everything("x"));
    }

    #[test]
    fn access_sets_union_and_describe() {
        let mut s = AccessSet::default();
        s.add(&leads(&[(7, W, false), (9, W, true)]));
        s.add(&leads(&[(9, W, false)]));
        assert_eq!(s.describe(), "2 allocation(s), 1 written");
        // A read in one set and a write in another: written.
        let mut r = AccessSet::default();
        r.add(&leads(&[(7, W, true)]));
        s.union(&r);
        assert_eq!(s.describe(), "2 allocation(s), 2 written");
        let mut t = AccessSet::default();
        t.add(&Leads::Everything("why"));
        t.add(&Leads::Everything("later"));
        s.union(&t);
        assert_eq!(s.describe(), "every allocation (why)");
        assert_eq!(s.memory.len(), 2);
    }

    #[test]
    fn descriptors_land_in_consecutive_bindings() {
        // Bindings 0 (2 descriptors), 1 (none) and 3 (1 descriptor).
        let set = 0x5e7;
        SET_BINDINGS.write().insert(
            set,
            SetBindings {
                layout: Some(std::sync::Arc::new(vec![(0, 2), (1, 0), (3, 1)])),
                per: BTreeMap::new(),
                whole: false,
            },
        );
        // Three descriptors from binding 0, element 1: the second goes past binding 0's
        // count, skips the empty binding 1 and lands in binding 3; the third has nowhere to go.
        attribute(set, (0, 1, 3), |i, leads| {
            leads.memory(100 + i as u64, W, true);
        });
        {
            let table = SET_BINDINGS.read();
            let per = &table[&set].per;
            assert_eq!(per.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
            assert_eq!(per[&0], leads(&[(100, W, true)]));
            assert_eq!(per[&3], leads(&[(101, W, true)]));
            assert!(!table[&set].whole);
        }
        // A binding the layout lacks, or a copy into the set: known only as a whole.
        attribute(set, (2, 0, 1), |_, _| {});
        assert!(SET_BINDINGS.read()[&set].whole);
        sets_freed(&[set]);
        assert!(SET_BINDINGS.read().get(&set).is_none());
    }

    #[test]
    fn discards_count_only_before_other_touches() {
        let units = |a, b| RangeSet::of(Range::new(a, b));
        // Earlier commands touched image 5; later ones discard parts of images 5 and 6.
        let mut s = AccessSet::default();
        s.add(&leads(&[(5, W, false)]));
        let mut later = AccessSet::default();
        later.discards.insert(5, units(0, 2));
        later.discards.insert(6, units(0, 1));
        later.add(&leads(&[(5, W, true), (6, W, true)]));
        s.union(&later);
        // Image 5 was read before its discard: its contents are needed.
        assert_eq!(s.discards.get(&5), None);
        assert_eq!(s.discards.get(&6), Some(&units(0, 1)));
        // A discard after the image was touched in the same set is not one either.
        let mut after = AccessSet::default();
        after.discards.insert(6, units(1, 3));
        s.union(&after);
        assert_eq!(s.discards.get(&6), Some(&units(0, 1)));
    }

    #[test]
    fn ranges_of_one_allocation_join() {
        let mut s = AccessSet::default();
        s.add(&leads(&[
            (5, Range::new(0, 64), false),
            (5, Range::new(128, 256), true),
        ]));
        s.add(&leads(&[(5, Range::new(64, 128), false)]));
        let u = &s.memory[&5];
        assert_eq!(u.touched.ranges(), &[Range::new(0, 256)]);
        assert_eq!(u.written.ranges(), &[Range::new(128, 256)]);
        // The same range read through one object and written through another: written.
        let mut l = leads(&[(5, Range::new(0, 64), false)]);
        l.merge(&leads(&[(5, Range::new(0, 64), true)]));
        assert_eq!(l, leads(&[(5, Range::new(0, 64), true)]));
    }

    #[test]
    fn buffer_parts_are_what_descriptors_and_copies_name() {
        let buffer = ObjectBase::new(vk::ObjectType::BUFFER).into_raw();
        // SAFETY: a live object made above, freed below.
        unsafe { set(buffer, leads(&[(9, Range::new(100, 200), true)])) };
        let part = |offset, size, write| {
            let mut l = Leads::none();
            feed_part(buffer, offset, size, &mut l, write);
            l
        };
        assert_eq!(
            part(16, 32, true),
            leads(&[(9, Range::new(116, 148), true)])
        );
        assert_eq!(
            part(50, vk::WHOLE_SIZE, false),
            leads(&[(9, Range::new(150, 200), false)])
        );
        // Clipped to the buffer's range.
        assert_eq!(
            part(90, 64, true),
            leads(&[(9, Range::new(190, 200), true)])
        );
        let info = |ty, offset, range| {
            let b = vk::DescriptorBufferInfo {
                buffer: vk::Buffer::from_raw(buffer),
                offset,
                range,
            };
            let mut l = Leads::none();
            // SAFETY: one buffer info for a buffer descriptor type.
            unsafe { feed_writes(ty, 1, (std::ptr::null(), &b, std::ptr::null()), &mut l) };
            l
        };
        // A storage buffer descriptor writes its part, a uniform one reads its part, and a
        // dynamic one (its offset moves at bind time) the whole buffer.
        assert_eq!(
            info(vk::DescriptorType::STORAGE_BUFFER, 8, 8),
            leads(&[(9, Range::new(108, 116), true)])
        );
        assert_eq!(
            info(vk::DescriptorType::UNIFORM_BUFFER, 64, vk::WHOLE_SIZE),
            leads(&[(9, Range::new(164, 200), false)])
        );
        assert_eq!(
            info(vk::DescriptorType::STORAGE_BUFFER_DYNAMIC, 8, 8),
            leads(&[(9, Range::new(100, 200), true)])
        );
        // SAFETY: made above, no longer used.
        unsafe { ObjectBase::free(buffer) };
    }

    #[test]
    fn objects_lead_where_they_were_set() {
        let buffer = ObjectBase::new(vk::ObjectType::BUFFER).into_raw();
        let uniform = ObjectBase::new(vk::ObjectType::BUFFER).into_raw();
        let set_ = ObjectBase::new(vk::ObjectType::DESCRIPTOR_SET).into_raw();
        let pipeline = ObjectBase::new(vk::ObjectType::PIPELINE).into_raw();
        // An unbound buffer cannot be traced; an unwritten set and a pipeline lead nowhere.
        assert_eq!(leads_of([buffer]), Leads::Everything(UNTRACEABLE));
        assert_eq!(leads_of([set_, pipeline]), Leads::none());
        // SAFETY: live objects made above, freed below.
        unsafe {
            set(buffer, leads(&[(7, W, true)]));
            set(uniform, leads(&[(8, W, true)]));
            merge(set_, &leads(&[(1, W, true)]));
            merge(set_, &leads_of([buffer]));
        }
        // A uniform buffer descriptor: the set only reads it.
        let info = vk::DescriptorBufferInfo {
            buffer: vk::Buffer::from_raw(uniform),
            offset: 0,
            range: vk::WHOLE_SIZE,
        };
        let mut written = Leads::none();
        // SAFETY: one buffer info for a buffer descriptor type.
        unsafe {
            feed_writes(
                vk::DescriptorType::UNIFORM_BUFFER,
                1,
                (std::ptr::null(), &info, std::ptr::null()),
                &mut written,
            );
            merge(set_, &written);
        }
        assert_eq!(
            leads_of([set_]),
            leads(&[(1, W, true), (7, W, true), (8, W, false)])
        );
        let mut acc = AccessSet::default();
        feed(set_, &mut acc, true);
        feed(pipeline, &mut acc, true);
        assert_eq!(acc.describe(), "3 allocation(s), 2 written");
        // A command that only reads the set's memory writes nothing of it.
        let mut read = AccessSet::default();
        feed(set_, &mut read, false);
        assert_eq!(read.describe(), "3 allocation(s), 0 written");
        // The same buffer as a storage descriptor: written.
        let mut storage = Leads::none();
        // SAFETY: as above.
        unsafe {
            feed_writes(
                vk::DescriptorType::STORAGE_BUFFER,
                1,
                (std::ptr::null(), &info, std::ptr::null()),
                &mut storage,
            );
        }
        assert_eq!(storage, leads(&[(8, W, true)]));
        // SAFETY: made above and not used again.
        unsafe {
            ObjectBase::free(buffer);
            ObjectBase::free(uniform);
            ObjectBase::free(set_);
            ObjectBase::free(pipeline);
        }
    }
}
