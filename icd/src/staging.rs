//! The staging tier: member copies that vkfuse cannot map.
//!
//! Memory that is not host-visible on a member (a discrete GPU's VRAM), held by members of
//! different drivers, can be neither one host allocation nor one device allocation shared
//! through an fd. It is mirrored (`mirror.rs`) like host-visible memory, but the bytes reach a
//! member's copy only through that member's own transfer commands: vkfuse binds a buffer
//! covering the whole allocation on the member (the **cover**), and a batch that needs bytes
//! brought in or taken out gets two command buffers of vkfuse's around its own:
//!
//! - a **prologue** that copies a host-visible staging buffer (the batch's *input*, filled by
//!   the batch's bridge step just before the bridge releases the batch) into the cover at the
//!   ranges the batch needs;
//! - an **epilogue** that copies the ranges the batch may write out of the cover into another
//!   staging buffer (its *output*), which mirrored memory then reads like a mapped copy once
//!   the batch's done point is reached (the write-back into the shadow, or the source another
//!   member's input is filled from).
//!
//! The transfers ride with the batch, not in a submit made later: a member queue executes its
//! submits in order, and the batch is already queued (waiting for the bridge) when its step
//! runs, so a copy submitted then would wait behind it. The prologue is the batch's first
//! command buffer; the epilogue is a submit of its own right after the batch, in the same
//! `vkQueueSubmit2`, waiting for the batch's completion point: a copy through the cover
//! aliases the memory of the batch's own resources, and a pipeline barrier does not order
//! that on every driver (lavapipe's buffer copy apparently does not wait for its rasterizer
//! writing an image in the same memory: dEQP blits read back on another member failed until
//! the epilogue waited for the batch). The prologue's writes wait for the member's earlier batches that
//! touched those ranges on the bridge, for the same reason.
//!
//! Staging buffers hold the ranges of a [`Stage`] packed one after the other. Where every
//! member imports host memory (`VK_EXT_external_memory_host`), a stage is host memory imported
//! into all of them (**shared**): a reader's prologue then copies a range straight from the
//! output stage of the batch that wrote it (mirror.rs keeps those in submission order), and no
//! CPU copy is made. Otherwise stages come from the member's gpu-allocator pool of
//! host-visible, coherent memory (cached for outputs, which the host reads), and the bridge
//! copies from one member's output stage into the other's input stage; an input stage of
//! [`CHUNKED`] bytes or more is filled in the order of its offsets and copied in chunks, each
//! in a submit of its own waiting for a timeline the bridge signals per chunk filled, so that
//! the member copies one chunk while the CPU fills the next. The memory of finished
//! stages is kept for later ones (fresh memory costs a page fault per page at its first
//! touch), up to [`SPARE_BYTES`]. Command buffers come from one pool per member queue family
//! and are reused once the batch that carried them is done. `VKFUSE_SHARING=staging` takes
//! this path for every allocation, to exercise and measure it on members whose memory is all
//! host-visible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;
use gpu_allocator::vulkan as ga;
use parking_lot::Mutex;
use vkfuse_memory::{Range, RangeSet};

use crate::mirror::Edge;
use crate::object::Device;
use crate::MAX_MEMBERS;

/// The staging pools of one device: per member, created at the first use.
#[derive(Default)]
pub struct Stager {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    members: [Option<Box<Member>>; MAX_MEMBERS],
    /// Memory of stages that are gone, kept for the next stages (fresh memory costs a page
    /// fault per page at its first touch): at most [`SPARE_BYTES`].
    spares: Vec<Backing>,
    spare_bytes: u64,
    /// The device is being destroyed: nothing is kept or made any more.
    closed: bool,
}

/// The most memory kept for later stages, per device.
const SPARE_BYTES: u64 = 768 << 20;

/// Stages are made in multiples of this (so that they can be reused for similar sizes).
const GRAIN: u64 = 64 << 10;

/// Where a stage's memory comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A member's gpu-allocator pool (host-visible, coherent; cached for the host to read
    /// when not `to_device`).
    Pool { member: usize, to_device: bool },
    /// A host allocation imported into every member (`VK_EXT_external_memory_host`): any
    /// member's transfer commands reach it, so the destination copies straight from the
    /// source's stage.
    Shared,
}

/// The memory of a stage and the buffers over it.
struct Backing {
    kind: Kind,
    capacity: u64,
    ptr: *mut u8,
    /// Per member, the buffer over the memory (null where the member does not reach it).
    buffers: [vk::Buffer; MAX_MEMBERS],
    res: Res,
}

enum Res {
    Pool(ga::Allocation),
    Shared {
        layout: std::alloc::Layout,
        memories: [vk::DeviceMemory; MAX_MEMBERS],
    },
}

// SAFETY: `ptr` is the backing's own mapping or host allocation; see Stage.
unsafe impl Send for Backing {}

struct Member {
    device: ash::Device,
    /// Dropped (freeing every block) in [`Stager::destroy`], before the member device goes.
    allocator: Option<ga::Allocator>,
    pools: Vec<Pool>,
    /// Command buffers of batches not known to be done, with the staging buffers they use.
    in_flight: Vec<InFlight>,
}

struct Pool {
    /// The member's queue family.
    family: u32,
    pool: vk::CommandPool,
    /// Command buffers whose batches are done (reset at their next begin).
    free: Vec<vk::CommandBuffer>,
}

struct InFlight {
    done: Edge,
    pool: usize,
    cbs: Vec<vk::CommandBuffer>,
    keep: Vec<Arc<Stage>>,
    /// The batch's chunk timeline, destroyed once it is done.
    fill: Option<vk::Semaphore>,
}

/// A staging buffer: `ranges` of an allocation, packed one after the other, on one member
/// or (shared) on every member.
pub struct Stage {
    stager: Arc<Stager>,
    backing: Option<Backing>,
    ptr: *mut u8,
    /// The ranges of the allocation it holds, in order.
    pub ranges: RangeSet,
    /// Where each range starts in the buffer.
    offsets: Vec<u64>,
    /// False once the batch meant to fill it was never submitted: it holds nothing.
    valid: AtomicBool,
}

// SAFETY: `ptr` is a persistent mapping of the stage's own allocation; readers and writers are
// ordered by the batches' done points and the bridge (see mirror.rs).
unsafe impl Send for Stage {}
// SAFETY: see Send.
unsafe impl Sync for Stage {}

impl Stage {
    /// The host address of the byte at `pos` of the allocation, which lies in one of
    /// `ranges`; the bytes after it up to the end of that range follow it.
    pub fn at(&self, pos: u64) -> *mut u8 {
        self.offset_of(pos)
            .map_or(std::ptr::null_mut(), |o| self.ptr.wrapping_add(o as usize))
    }

    /// Where the byte at `pos` of the allocation (in one of `ranges`) lies in the stage.
    pub fn offset_of(&self, pos: u64) -> Option<u64> {
        let rs = self.ranges.ranges();
        let k = rs.partition_point(|r| r.end <= pos);
        rs.get(k)
            .filter(|r| r.contains(pos))
            .map(|r| self.offsets[k] + pos - r.start)
    }

    /// The buffer over the stage on member `m` (null where `m` does not reach it).
    pub fn buffer(&self, m: usize) -> vk::Buffer {
        self.backing
            .as_ref()
            .map_or(vk::Buffer::null(), |b| b.buffers[m])
    }

    /// Whether every member's transfer commands reach the stage.
    pub fn is_shared(&self) -> bool {
        self.backing
            .as_ref()
            .is_some_and(|b| b.kind == Kind::Shared)
    }

    /// The stage's batch was not submitted: nothing will fill it.
    pub fn void(&self) {
        self.valid.store(false, Ordering::Release);
    }

    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }

    /// The copy regions from the stage into the cover for the bytes at stage offsets
    /// `lo..hi`.
    fn window(&self, lo: u64, hi: u64) -> Vec<vk::BufferCopy> {
        self.ranges
            .ranges()
            .iter()
            .zip(&self.offsets)
            .filter_map(|(r, &o)| {
                let a = o.max(lo);
                let b = (o + r.len()).min(hi);
                (a < b).then(|| vk::BufferCopy {
                    src_offset: a,
                    dst_offset: r.start + (a - o),
                    size: b - a,
                })
            })
            .collect()
    }

    /// The copy regions between the stage and the cover for `parts`, each within the stage's
    /// ranges (what lies outside them is left out): into the cover, or out of it when
    /// `into_cover` is false.
    pub fn copies(&self, parts: &RangeSet, into_cover: bool) -> Vec<vk::BufferCopy> {
        let within = parts.intersection(&self.ranges);
        self.regions(Some(within.ranges()), into_cover)
    }

    /// The address of the stage's first byte.
    pub fn base(&self) -> *mut u8 {
        self.ptr
    }

    /// The copy regions between the stage and the cover of the allocation for `parts` (each
    /// inside one of `ranges`; all of them for `None`): (stage offset, allocation offset,
    /// size), swapped when `into_cover` is false.
    fn regions(&self, parts: Option<&[Range]>, into_cover: bool) -> Vec<vk::BufferCopy> {
        let parts = parts.unwrap_or(self.ranges.ranges());
        parts
            .iter()
            .filter_map(|r| self.offset_of(r.start).map(|o| (r, o)))
            .map(|(r, o)| {
                let (src_offset, dst_offset) = if into_cover {
                    (o, r.start)
                } else {
                    (r.start, o)
                };
                vk::BufferCopy {
                    src_offset,
                    dst_offset,
                    size: r.len(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
impl Stage {
    /// A shared stage over host memory only (no member buffers), for mirror.rs's tests.
    pub fn fake_shared(ranges: RangeSet) -> Option<Arc<Stage>> {
        let size = ranges.units().max(1);
        let layout = std::alloc::Layout::from_size_align(size as usize, 64).ok()?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let mut offsets = Vec::new();
        let mut at = 0;
        for r in ranges.ranges() {
            offsets.push(at);
            at += r.len();
        }
        Some(Arc::new(Stage {
            stager: Arc::new(Stager::default()),
            backing: Some(Backing {
                kind: Kind::Shared,
                capacity: size,
                ptr,
                buffers: [vk::Buffer::null(); MAX_MEMBERS],
                res: Res::Shared {
                    layout,
                    memories: [vk::DeviceMemory::null(); MAX_MEMBERS],
                },
            }),
            ptr,
            ranges,
            offsets,
            valid: AtomicBool::new(true),
        }))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let Some(b) = self.backing.take() else { return };
        let mut inner = self.stager.inner.lock();
        // Whatever used the stage is done (the batches' in-flight records and the mirror kept
        // it alive until then): its memory serves the next stage, or goes.
        if !inner.closed && inner.spare_bytes + b.capacity <= SPARE_BYTES {
            inner.spare_bytes += b.capacity;
            inner.spares.push(b);
        } else {
            inner.release(b);
        }
    }
}

impl Inner {
    /// Frees a backing's buffers and memory (while the member devices live; after
    /// [`Stager::destroy`] only the host memory, the rest went with the devices).
    fn release(&mut self, b: Backing) {
        for (m, buf) in b.buffers.iter().enumerate() {
            if let (false, Some(mb)) = (buf.is_null(), self.members[m].as_ref()) {
                // SAFETY: the backing's own buffer, unused now.
                unsafe { mb.device.destroy_buffer(*buf, None) };
            }
        }
        match b.res {
            Res::Pool(a) => {
                let Kind::Pool { member, .. } = b.kind else {
                    return;
                };
                if let Some(alloc) = self.members[member]
                    .as_mut()
                    .and_then(|mb| mb.allocator.as_mut())
                {
                    if let Err(e) = alloc.free(a) {
                        crate::warn!("member {member}: freeing a staging buffer failed ({e})");
                    }
                }
            }
            Res::Shared { layout, memories } => {
                for (m, mem) in memories.iter().enumerate() {
                    if let (false, Some(mb)) = (mem.is_null(), self.members[m].as_ref()) {
                        // SAFETY: the member's import of the host allocation, unused now.
                        unsafe { mb.device.free_memory(*mem, None) };
                    }
                }
                // SAFETY: allocated in `new_shared` with this layout; no member imports it any
                // more (freed above, or with the member devices).
                unsafe { std::alloc::dealloc(b.ptr, layout) };
            }
        }
    }
}

/// The transfer command buffers recorded for one batch ([`Stager::record`]).
#[derive(Default)]
pub struct Recorded {
    member: usize,
    /// Run before the batch, each in a submit of its own that waits for `fill.sem` to reach
    /// its number (1, 2, ...): the chunks of the input stage into the cover.
    pub chunks: Vec<vk::CommandBuffer>,
    /// The timeline the bridge step signals as it fills the input stage chunk by chunk.
    pub fill: Option<Fill>,
    /// Runs before the batch's command buffers: stages into covers.
    pub prologue: Option<vk::CommandBuffer>,
    /// Runs after them: covers into stages.
    pub epilogue: Option<vk::CommandBuffer>,
    pool: usize,
    cbs: Vec<vk::CommandBuffer>,
    keep: Vec<Arc<Stage>>,
}

/// An input stage filled in chunks: the member copies chunk `k` (of `chunk` bytes of the
/// stage) once `sem` reaches `k + 1`, while the bridge step fills the next.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    pub sem: vk::Semaphore,
    pub chunk: u64,
    pub count: u64,
}

/// Input stages at least this large are filled and copied in chunks.
pub const CHUNKED: u64 = 8 << 20;

/// One direction of a batch's transfers: the stage and the cover it is copied to or from,
/// for `parts` of the stage's ranges (all of them for `None`).
pub struct Transfer {
    pub cover: vk::Buffer,
    pub stage: Arc<Stage>,
    pub parts: Option<Vec<Range>>,
}

/// Layout barriers of `image` for `regions`, from `from` (the region's layout when None) to
/// `to` (the region's when None), once per subresource range, with accesses `src` and `dst`.
pub fn region_barriers(
    image: vk::Image,
    regions: &[ImageRegion],
    (from, to): (Option<vk::ImageLayout>, Option<vk::ImageLayout>),
    (src_access, dst_access): (vk::AccessFlags, vk::AccessFlags),
) -> Vec<vk::ImageMemoryBarrier<'static>> {
    let mut out: Vec<vk::ImageMemoryBarrier<'static>> = Vec::new();
    for r in regions {
        let s = r.copy.image_subresource;
        let range = vk::ImageSubresourceRange {
            aspect_mask: r.barrier_aspects,
            base_mip_level: s.mip_level,
            level_count: 1,
            base_array_layer: s.base_array_layer,
            layer_count: s.layer_count,
        };
        let same = |o: &vk::ImageSubresourceRange| {
            (
                o.aspect_mask,
                o.base_mip_level,
                o.base_array_layer,
                o.layer_count,
            ) == (
                range.aspect_mask,
                range.base_mip_level,
                range.base_array_layer,
                range.layer_count,
            )
        };
        if out.iter().any(|b| same(&b.subresource_range)) {
            continue;
        }
        out.push(vk::ImageMemoryBarrier {
            src_access_mask: src_access,
            dst_access_mask: dst_access,
            old_layout: from.unwrap_or(r.layout),
            new_layout: to.unwrap_or(r.layout),
            src_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
            dst_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
            image,
            subresource_range: range,
            ..Default::default()
        });
    }
    out
}

/// One image copied between a stage and a member's copy of it: the stage's bytes at each
/// region's buffer offset are the region's subresources, which are in the region's layout
/// before and after the copy.
pub struct ImageTransfer {
    /// The member's image.
    pub image: vk::Image,
    pub stage: Arc<Stage>,
    pub regions: Vec<ImageRegion>,
}

/// A tightly packed buffer copy of one aspect of some subresources (`images.rs`).
#[derive(Clone, Copy, Debug)]
pub struct ImageRegion {
    pub copy: vk::BufferImageCopy,
    pub layout: vk::ImageLayout,
    /// The aspects the layout barriers around the copy name (both of a depth/stencil image
    /// unless their layouts differ).
    pub barrier_aspects: vk::ImageAspectFlags,
}

impl ImageTransfer {
    /// Layout barriers for the regions, from `layout` (the region's when None) to `to` (the
    /// region's when None), once per subresource range.
    fn barriers(
        &self,
        from: Option<vk::ImageLayout>,
        to: Option<vk::ImageLayout>,
        src_access: vk::AccessFlags,
        dst_access: vk::AccessFlags,
    ) -> Vec<vk::ImageMemoryBarrier<'static>> {
        region_barriers(
            self.image,
            &self.regions,
            (from, to),
            (src_access, dst_access),
        )
    }

    fn copies(&self) -> Vec<vk::BufferImageCopy> {
        self.regions.iter().map(|r| r.copy).collect()
    }
}

impl Stager {
    /// The member's pools, created on first use.
    fn member<'a>(
        d: &Device,
        slots: &'a mut [Option<Box<Member>>; MAX_MEMBERS],
        m: usize,
    ) -> Result<&'a mut Member, vk::Result> {
        if slots[m].is_none() {
            slots[m] = Some(Box::new(Self::open(d, m)?));
        }
        slots[m]
            .as_deref_mut()
            .ok_or(vk::Result::ERROR_INITIALIZATION_FAILED)
    }

    fn open(d: &Device, m: usize) -> Result<Member, vk::Result> {
        let pm = d
            .physical()
            .member(m)
            .ok_or(vk::Result::ERROR_DEVICE_LOST)?;
        let md = d.member(m).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
        let gdpa = pm
            .member
            .proc_addr(pm.instance, c"vkGetDeviceProcAddr")
            .ok_or_else(|| crate::guard::missing("vkGetDeviceProcAddr"))?;
        // SAFETY: the member's vkGetDeviceProcAddr, looked up by that name.
        let gdpa: vk::PFN_vkGetDeviceProcAddr = unsafe { std::mem::transmute(gdpa) };
        // SAFETY: the member ICD's own instance and device, and their lookup functions; every
        // pointer ash loads is the member's entry point of that name (or null).
        let (instance, device) = unsafe {
            (
                ash::Instance::load_with(
                    |name| {
                        pm.member
                            .proc_addr(pm.instance, name)
                            .map_or(std::ptr::null(), |f| f as *const std::ffi::c_void)
                    },
                    pm.instance,
                ),
                ash::Device::load_with(
                    |name| {
                        gdpa(md.handle, name.as_ptr())
                            .map_or(std::ptr::null(), |f| f as *const std::ffi::c_void)
                    },
                    md.handle,
                ),
            )
        };
        let allocator = ga::Allocator::new(&ga::AllocatorCreateDesc {
            instance,
            device: device.clone(),
            physical_device: pm.handle,
            debug_settings: Default::default(),
            buffer_device_address: false,
            // Blocks of 64 MiB (the default for host memory): larger stages get memory of
            // their own.
            allocation_sizes: Default::default(),
        })
        .map_err(|e| {
            crate::warn!("member {m}: no staging pool ({e})");
            vk::Result::ERROR_INITIALIZATION_FAILED
        })?;
        Ok(Member {
            device,
            allocator: Some(allocator),
            pools: Vec::new(),
            in_flight: Vec::new(),
        })
    }

    /// A buffer on member `m` covering all `size` bytes of its memory `memory` (of the
    /// member's memory type `ty`), for transfers: `None` when no transfer buffer can be bound
    /// there (a memory type only images use, say).
    pub fn cover(
        &self,
        d: &Device,
        m: usize,
        memory: vk::DeviceMemory,
        size: u64,
        ty: u32,
    ) -> Result<vk::Buffer, String> {
        let mut inner = self.inner.lock();
        let mb = Self::member(d, &mut inner.members, m)
            .map_err(|r| format!("no staging pool ({r:?})"))?;
        let dev = &mb.device;
        let bci = vk::BufferCreateInfo {
            size,
            usage: vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
            ..Default::default()
        };
        // SAFETY: a valid create info on the member's device.
        let b = unsafe { dev.create_buffer(&bci, None) }
            .map_err(|r| format!("vkCreateBuffer {r:?}"))?;
        // SAFETY: the buffer just created.
        let req = unsafe { dev.get_buffer_memory_requirements(b) };
        let why = if req.memory_type_bits & (1 << ty) == 0 {
            Some(format!("memory type {ty} holds no transfer buffer"))
        } else if req.size > size {
            Some(format!(
                "a buffer over {size} bytes needs {} bytes of memory",
                req.size
            ))
        } else {
            // SAFETY: the member's memory of `size` bytes and a compatible type, offset 0.
            unsafe { dev.bind_buffer_memory(b, memory, 0) }
                .err()
                .map(|r| format!("vkBindBufferMemory {r:?}"))
        };
        match why {
            None => Ok(b),
            Some(why) => {
                // SAFETY: the buffer just created, unused.
                unsafe { dev.destroy_buffer(b, None) };
                Err(why)
            }
        }
    }

    /// Destroys a cover (its allocation is being freed).
    pub fn uncover(&self, m: usize, b: vk::Buffer) {
        if let Some(mb) = self.inner.lock().members[m].as_ref() {
            // SAFETY: the cover made by `cover`; no batch uses the allocation any more.
            unsafe { mb.device.destroy_buffer(b, None) };
        }
    }

    /// A staging buffer for member `m` holding `ranges` packed: `shared` (reached by every
    /// member, `VK_EXT_external_memory_host` on all of them with imports aligned to
    /// `d.exec.import_align`), or from `m`'s pool, `to_device` when the host writes it and the
    /// member reads it. Memory of earlier stages is reused where it fits.
    pub fn stage(
        self: &Arc<Self>,
        d: &Device,
        m: usize,
        ranges: RangeSet,
        to_device: bool,
        shared: bool,
    ) -> Result<Arc<Stage>, vk::Result> {
        if crate::config::Config::get().fault("staging", m) {
            static SAID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            if SAID.fetch_or(1 << m, Ordering::Relaxed) & (1 << m) == 0 {
                crate::warn!("member {m}: VKFUSE_FAULT makes its staging buffers fail");
            }
            return Err(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY);
        }
        let mut offsets = Vec::with_capacity(ranges.ranges().len());
        let mut size = 0u64;
        for r in ranges.ranges() {
            offsets.push(size);
            size += r.len();
        }
        // Stages of finished batches become spares first (their drop takes the lock).
        let finished: Vec<Arc<Stage>> = {
            let mut inner = self.inner.lock();
            let mut finished = Vec::new();
            for mb in inner.members.iter_mut().flatten() {
                mb.reclaim(d, &mut finished);
            }
            finished
        };
        drop(finished);
        let kind = if shared {
            Kind::Shared
        } else {
            Kind::Pool {
                member: m,
                to_device,
            }
        };
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(vk::Result::ERROR_DEVICE_LOST);
        }
        // The smallest spare that fits and is not much larger.
        let spare = inner
            .spares
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind == kind && b.capacity >= size && b.capacity <= 2 * size + GRAIN)
            .min_by_key(|(_, b)| b.capacity)
            .map(|(k, _)| k);
        let backing = match spare {
            Some(k) => {
                let b = inner.spares.swap_remove(k);
                inner.spare_bytes -= b.capacity;
                b
            }
            None => {
                let capacity = size.div_ceil(GRAIN).max(1) * GRAIN;
                let made = if shared {
                    Self::new_shared(d, &mut inner, capacity)
                } else {
                    Self::new_pooled(d, &mut inner, m, capacity, to_device)
                };
                match made {
                    Ok(b) => b,
                    Err(why) => {
                        crate::warn!("member {m}: no staging buffer of {size} bytes ({why})");
                        return Err(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY);
                    }
                }
            }
        };
        Ok(Arc::new(Stage {
            stager: self.clone(),
            ptr: backing.ptr,
            backing: Some(backing),
            ranges,
            offsets,
            valid: AtomicBool::new(true),
        }))
    }

    /// A buffer over host-visible memory of member `m`'s pool.
    fn new_pooled(
        d: &Device,
        inner: &mut Inner,
        m: usize,
        capacity: u64,
        to_device: bool,
    ) -> Result<Backing, String> {
        let mb = Self::member(d, &mut inner.members, m).map_err(|r| format!("{r:?}"))?;
        let bci = vk::BufferCreateInfo {
            size: capacity,
            usage: vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
            ..Default::default()
        };
        // SAFETY: a valid create info on the member's device.
        let buffer = unsafe { mb.device.create_buffer(&bci, None) }
            .map_err(|r| format!("vkCreateBuffer {r:?}"))?;
        // SAFETY: the buffer just created.
        let requirements = unsafe { mb.device.get_buffer_memory_requirements(buffer) };
        let allocated = mb.allocator.as_mut().map(|a| {
            a.allocate(&ga::AllocationCreateDesc {
                name: "vkfuse staging",
                requirements,
                location: if to_device {
                    gpu_allocator::MemoryLocation::CpuToGpu
                } else {
                    gpu_allocator::MemoryLocation::GpuToCpu
                },
                linear: true,
                allocation_scheme: ga::AllocationScheme::GpuAllocatorManaged,
            })
        });
        let a = match allocated {
            Some(Ok(a)) => a,
            other => {
                // SAFETY: the buffer just created, unused.
                unsafe { mb.device.destroy_buffer(buffer, None) };
                return Err(match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "the pool is gone".into(),
                });
            }
        };
        let ptr = a
            .mapped_ptr()
            .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast::<u8>());
        // SAFETY: the allocation was made for this buffer's requirements.
        let bound = unsafe { mb.device.bind_buffer_memory(buffer, a.memory(), a.offset()) };
        let mut buffers = [vk::Buffer::null(); MAX_MEMBERS];
        buffers[m] = buffer;
        let b = Backing {
            kind: Kind::Pool {
                member: m,
                to_device,
            },
            capacity,
            ptr,
            buffers,
            res: Res::Pool(a),
        };
        if ptr.is_null() || bound.is_err() {
            inner.release(b);
            return Err(format!("not mapped, or bind {bound:?}"));
        }
        Ok(b)
    }

    /// A host allocation imported into every member, with a buffer over it on each.
    fn new_shared(d: &Device, inner: &mut Inner, capacity: u64) -> Result<Backing, String> {
        let align = d.exec.import_align.max(4096);
        let size = capacity.div_ceil(align) * align;
        let layout = std::alloc::Layout::from_size_align(size as usize, align as usize)
            .map_err(|e| e.to_string())?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return Err("no host memory".into());
        }
        let mut b = Backing {
            kind: Kind::Shared,
            capacity,
            ptr,
            buffers: [vk::Buffer::null(); MAX_MEMBERS],
            res: Res::Shared {
                layout,
                memories: [vk::DeviceMemory::null(); MAX_MEMBERS],
            },
        };
        for md in &d.members {
            let m = md.index;
            // SAFETY: a live host allocation of `size` bytes aligned to every member's import
            // alignment, freed only after the members' imports (`Inner::release`).
            let imported = unsafe {
                crate::device_memory::import_host(
                    md,
                    ptr,
                    size,
                    None,
                    std::ptr::null(),
                    std::ptr::null(),
                )
            };
            let mem = match imported {
                Ok(mem) => mem,
                Err(why) => {
                    inner.release(b);
                    return Err(format!("member {m} does not import it: {why}"));
                }
            };
            if let Res::Shared { memories, .. } = &mut b.res {
                memories[m] = mem;
            }
            let made = Self::member(d, &mut inner.members, m).and_then(|mb| {
                let bci = vk::BufferCreateInfo {
                    size,
                    usage: vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                    ..Default::default()
                };
                // SAFETY: a valid create info on the member's device.
                let buf = unsafe { mb.device.create_buffer(&bci, None) }?;
                // SAFETY: the member's import of `size` bytes, offset 0.
                match unsafe { mb.device.bind_buffer_memory(buf, mem, 0) } {
                    Ok(()) => Ok(buf),
                    Err(r) => {
                        // SAFETY: the buffer just created, unused.
                        unsafe { mb.device.destroy_buffer(buf, None) };
                        Err(r)
                    }
                }
            });
            match made {
                Ok(buf) => b.buffers[m] = buf,
                Err(r) => {
                    inner.release(b);
                    return Err(format!("member {m}: no buffer over the import ({r:?})"));
                }
            }
        }
        Ok(b)
    }

    /// Records the prologue (`ins`: stages into covers) and epilogue (`outs`: covers into
    /// stages) of a batch on member `m`'s queue family `family`; [`Stager::launched`] then
    /// hands them over with the batch's done point. Command buffers of batches that are done
    /// are reused.
    ///
    /// `chunked`, an input stage the bridge fills in chunks: its copies are recorded as
    /// [`Recorded::chunks`], one command buffer per chunk, with a new timeline semaphore the
    /// bridge signals per chunk filled.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        d: &Device,
        m: usize,
        family: u32,
        ins: &[Transfer],
        outs: &[Transfer],
        chunked: Option<&Transfer>,
        images: (&[ImageTransfer], &[ImageTransfer]),
    ) -> Result<Recorded, vk::Result> {
        let mut rec = Recorded {
            member: m,
            ..Recorded::default()
        };
        let (image_ins, image_outs) = images;
        if ins.is_empty()
            && outs.is_empty()
            && chunked.is_none()
            && image_ins.is_empty()
            && image_outs.is_empty()
        {
            return Ok(rec);
        }
        // Stages of finished batches are dropped after the lock (their drop takes it).
        let mut finished: Vec<Arc<Stage>> = Vec::new();
        let mut inner = self.inner.lock();
        let mb = Self::member(d, &mut inner.members, m)?;
        mb.reclaim(d, &mut finished);
        let pool = match mb.pools.iter().position(|p| p.family == family) {
            Some(p) => p,
            None => {
                let pci = vk::CommandPoolCreateInfo {
                    flags: vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
                    queue_family_index: family,
                    ..Default::default()
                };
                // SAFETY: a valid create info.
                let pool = unsafe { mb.device.create_command_pool(&pci, None) }?;
                mb.pools.push(Pool {
                    family,
                    pool,
                    free: Vec::new(),
                });
                mb.pools.len() - 1
            }
        };
        let mut cbs = Vec::new();
        let Member {
            device: dev, pools, ..
        } = mb;
        let dev: &ash::Device = dev;
        let mut take = || -> Result<vk::CommandBuffer, vk::Result> {
            let p = &mut pools[pool];
            let cb = match p.free.pop() {
                Some(cb) => cb,
                None => {
                    let ai = vk::CommandBufferAllocateInfo {
                        command_pool: p.pool,
                        level: vk::CommandBufferLevel::PRIMARY,
                        command_buffer_count: 1,
                        ..Default::default()
                    };
                    // SAFETY: a valid allocate info for one command buffer.
                    unsafe { dev.allocate_command_buffers(&ai) }?[0]
                }
            };
            cbs.push(cb);
            Ok(cb)
        };
        let begin = |cb| {
            let bi = vk::CommandBufferBeginInfo {
                flags: vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT,
                ..Default::default()
            };
            // SAFETY: a command buffer of vkfuse's pool, not pending (new, or its batch done);
            // the pool resets it at begin.
            unsafe { dev.begin_command_buffer(cb, &bi) }
        };
        let barrier = |cb, src_stage, src_access, dst_stage, dst_access| {
            let b = vk::MemoryBarrier {
                src_access_mask: src_access,
                dst_access_mask: dst_access,
                ..Default::default()
            };
            // SAFETY: a command buffer being recorded.
            unsafe {
                dev.cmd_pipeline_barrier(
                    cb,
                    src_stage,
                    dst_stage,
                    vk::DependencyFlags::empty(),
                    &[b],
                    &[],
                    &[],
                )
            };
        };
        let all = vk::PipelineStageFlags::ALL_COMMANDS;
        let any = vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE;
        // Copies the images' stages into the images (`into`) or the images into their stages,
        // each region moved to the transfer layout and back to its own layout. Copied into, a
        // member's copy is stale: what it holds is replaced (from UNDEFINED).
        let copy_images = |cb, images: &[ImageTransfer], into: bool| {
            if images.is_empty() {
                return;
            }
            let (from, xfer, src_access, xfer_access) = if into {
                (
                    Some(vk::ImageLayout::UNDEFINED),
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::AccessFlags::empty(),
                    vk::AccessFlags::TRANSFER_WRITE,
                )
            } else {
                (
                    None,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    vk::AccessFlags::MEMORY_WRITE,
                    vk::AccessFlags::TRANSFER_READ,
                )
            };
            let done_access = if into {
                vk::AccessFlags::TRANSFER_WRITE
            } else {
                vk::AccessFlags::empty()
            };
            let list = |from, to, src, dst| -> Vec<vk::ImageMemoryBarrier<'static>> {
                images
                    .iter()
                    .flat_map(|t| t.barriers(from, to, src, dst))
                    .collect()
            };
            let to_transfer = list(from, Some(xfer), src_access, xfer_access);
            let back = list(Some(xfer), None, done_access, any);
            let transfer = vk::PipelineStageFlags::TRANSFER;
            // SAFETY: a command buffer being recorded; the member's images and the stages'
            // buffers on the member, the regions inside both.
            unsafe {
                dev.cmd_pipeline_barrier(
                    cb,
                    all,
                    transfer,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &to_transfer,
                );
                for t in images {
                    if into {
                        dev.cmd_copy_buffer_to_image(
                            cb,
                            t.stage.buffer(m),
                            t.image,
                            xfer,
                            &t.copies(),
                        );
                    } else {
                        dev.cmd_copy_image_to_buffer(
                            cb,
                            t.image,
                            xfer,
                            t.stage.buffer(m),
                            &t.copies(),
                        );
                    }
                }
                dev.cmd_pipeline_barrier(
                    cb,
                    transfer,
                    all,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &back,
                );
            }
        };
        // Records copies into covers: (source buffer, cover, regions), and stages into
        // images.
        let copy_in = |cb,
                       copies: &[(vk::Buffer, vk::Buffer, Vec<vk::BufferCopy>)],
                       images: &[ImageTransfer]| {
            begin(cb)?;
            // Earlier work on the queue is done with the covers (reads and writes), and the
            // host's writes of the stages are visible.
            barrier(
                cb,
                all | vk::PipelineStageFlags::HOST,
                any | vk::AccessFlags::HOST_WRITE,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE,
            );
            for (src, cover, regions) in copies {
                // SAFETY: both buffers live; the regions lie inside them.
                unsafe { dev.cmd_copy_buffer(cb, *src, *cover, regions) };
            }
            copy_images(cb, images, true);
            barrier(
                cb,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
                all,
                any,
            );
            // SAFETY: recorded above.
            unsafe { dev.end_command_buffer(cb) }
        };
        let mut fill = None;
        let result = (|| -> Result<_, vk::Result> {
            let mut chunks = Vec::new();
            if let Some(t) = chunked {
                let size = t.stage.ranges.units();
                let chunk = size.div_ceil(16).max(4 << 20).div_ceil(GRAIN) * GRAIN;
                let count = size.div_ceil(chunk);
                let mut ti = vk::SemaphoreTypeCreateInfo {
                    semaphore_type: vk::SemaphoreType::TIMELINE,
                    ..Default::default()
                };
                let sci = vk::SemaphoreCreateInfo::default().push_next(&mut ti);
                // SAFETY: a valid create info for a timeline semaphore at 0.
                let sem = unsafe { dev.create_semaphore(&sci, None) }?;
                fill = Some(Fill { sem, chunk, count });
                for k in 0..count {
                    let cb = take()?;
                    let regions = t.stage.window(k * chunk, (k + 1) * chunk);
                    copy_in(cb, &[(t.stage.buffer(m), t.cover, regions)], &[])?;
                    chunks.push(cb);
                }
            }
            let mut pro = None;
            if !ins.is_empty() || !image_ins.is_empty() {
                let cb = take()?;
                let copies: Vec<_> = ins
                    .iter()
                    .map(|t| {
                        let regions = t.stage.regions(t.parts.as_deref(), true);
                        (t.stage.buffer(m), t.cover, regions)
                    })
                    .collect();
                copy_in(cb, &copies, image_ins)?;
                pro = Some(cb);
            }
            let mut epi = None;
            if !outs.is_empty() || !image_outs.is_empty() {
                let cb = take()?;
                begin(cb)?;
                barrier(
                    cb,
                    all,
                    vk::AccessFlags::MEMORY_WRITE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_READ,
                );
                copy_images(cb, image_outs, false);
                for t in outs {
                    // SAFETY: both buffers live; the regions lie inside them.
                    unsafe {
                        dev.cmd_copy_buffer(
                            cb,
                            t.cover,
                            t.stage.buffer(m),
                            &t.stage.regions(t.parts.as_deref(), false),
                        )
                    };
                }
                barrier(
                    cb,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                    vk::PipelineStageFlags::HOST,
                    vk::AccessFlags::HOST_READ,
                );
                // SAFETY: recorded above.
                unsafe { dev.end_command_buffer(cb) }?;
                epi = Some(cb);
            }
            Ok((chunks, pro, epi))
        })();
        match result {
            Ok((chunks, pro, epi)) => {
                rec.chunks = chunks;
                rec.fill = fill;
                rec.prologue = pro;
                rec.epilogue = epi;
                rec.pool = pool;
                rec.cbs = cbs;
                rec.keep = ins
                    .iter()
                    .chain(outs)
                    .chain(chunked)
                    .map(|t| t.stage.clone())
                    .chain(image_ins.iter().chain(image_outs).map(|t| t.stage.clone()))
                    .collect();
                Ok(rec)
            }
            Err(r) => {
                // Not submitted: the command buffers are free again.
                mb.pools[pool].free.extend(cbs);
                if let Some(f) = fill {
                    // SAFETY: the semaphore just created, unused.
                    unsafe { mb.device.destroy_semaphore(f.sem, None) };
                }
                Err(r)
            }
        }
    }

    /// The batch carrying `rec` was submitted (or its done point will be signalled anyway):
    /// its command buffers go back to the pool, and its stages may go, once `done` is reached.
    pub fn launched(&self, rec: Recorded, done: Edge) {
        if rec.cbs.is_empty() {
            return;
        }
        if let Some(mb) = self.inner.lock().members[rec.member].as_mut() {
            mb.in_flight.push(InFlight {
                done,
                pool: rec.pool,
                cbs: rec.cbs,
                keep: rec.keep,
                fill: rec.fill.map(|f| f.sem),
            });
        }
    }

    /// Frees everything (vkDestroyDevice, once the member's work is done): stages still held
    /// elsewhere free nothing when dropped later.
    pub fn destroy(&self) {
        // The batches' stages first (their drop takes the lock and keeps them as spares), then
        // the spares, then the pools.
        let mut flights: Vec<InFlight> = Vec::new();
        for mb in self.inner.lock().members.iter_mut().flatten() {
            for f in std::mem::take(&mut mb.in_flight) {
                if let Some(sem) = f.fill {
                    // SAFETY: a batch's chunk timeline; the device is idle.
                    unsafe { mb.device.destroy_semaphore(sem, None) };
                }
                flights.push(f);
            }
        }
        drop(flights);
        let mut inner = self.inner.lock();
        inner.closed = true;
        for b in std::mem::take(&mut inner.spares) {
            inner.release(b);
        }
        inner.spare_bytes = 0;
        let taken: Vec<Box<Member>> = inner.members.iter_mut().flat_map(Option::take).collect();
        drop(inner);
        for mut mb in taken {
            for p in &mb.pools {
                // SAFETY: the pool of vkfuse's command buffers; the device is idle.
                unsafe { mb.device.destroy_command_pool(p.pool, None) };
            }
            drop(mb.allocator.take());
        }
    }
}

impl Member {
    /// Puts the command buffers of batches that are done back into their pools.
    fn reclaim(&mut self, d: &Device, finished: &mut Vec<Arc<Stage>>) {
        let mut i = 0;
        while i < self.in_flight.len() {
            let (m, sem, value) = self.in_flight[i].done;
            let over = d.exec.member_lost(m)
                || d.member(m)
                    .is_none_or(|md| crate::exec::counter(md, sem) >= value);
            if over {
                let f = self.in_flight.swap_remove(i);
                self.pools[f.pool].free.extend(f.cbs);
                finished.extend(f.keep);
                if let Some(sem) = f.fill {
                    // SAFETY: the batch's chunk timeline; the batch is done.
                    unsafe { self.device.destroy_semaphore(sem, None) };
                }
            } else {
                i += 1;
            }
        }
    }
}
