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
//! The transfers ride in the batch itself, not in a submit of their own: a member queue
//! executes its submits in order, and the batch is already queued (waiting for the bridge)
//! when its step runs, so a separate copy would wait behind it. Pipeline barriers at the
//! start of the prologue and the epilogue order the copies with the work before them on the
//! queue.
//!
//! Staging buffers are suballocated per member by gpu-allocator from host-visible, coherent
//! memory (cached for outputs, which the host reads), packed: the ranges of a [`Stage`] lie one
//! after the other. Command buffers come from one pool per member queue family and are reused
//! once the batch that carried them is done. `VKFUSE_SHARING=staging` takes this path for every
//! allocation, to exercise and measure it on members whose memory is all host-visible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ash::vk;
use gpu_allocator::vulkan as ga;
use parking_lot::Mutex;
use vkfuse_memory::RangeSet;

use crate::mirror::Edge;
use crate::object::Device;
use crate::MAX_MEMBERS;

/// The staging pools of one device: per member, created at the first use.
#[derive(Default)]
pub struct Stager {
    members: Mutex<[Option<Box<Member>>; MAX_MEMBERS]>,
}

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
}

/// A staging buffer on one member: `ranges` of an allocation, packed one after the other.
pub struct Stage {
    stager: Arc<Stager>,
    member: usize,
    buffer: vk::Buffer,
    allocation: Option<ga::Allocation>,
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
        let rs = self.ranges.ranges();
        let k = rs.partition_point(|r| r.end <= pos);
        match rs.get(k) {
            // SAFETY: within the stage's mapped allocation (offset of the range plus a
            // position inside it).
            Some(r) if r.contains(pos) => unsafe {
                self.ptr.add((self.offsets[k] + pos - r.start) as usize)
            },
            _ => std::ptr::null_mut(),
        }
    }

    /// The stage's batch was not submitted: nothing will fill it.
    pub fn void(&self) {
        self.valid.store(false, Ordering::Release);
    }

    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }

    /// The copy regions between the stage and the cover of the allocation: (stage offset,
    /// allocation offset, size) per range.
    fn regions(&self, into_cover: bool) -> Vec<vk::BufferCopy> {
        self.ranges
            .ranges()
            .iter()
            .zip(&self.offsets)
            .map(|(r, &o)| {
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

impl Drop for Stage {
    fn drop(&mut self) {
        let mut members = self.stager.members.lock();
        let Some(m) = members[self.member].as_mut() else {
            return;
        };
        // SAFETY: the stage's own buffer; whatever used it is done (it was kept alive by the
        // batches' in-flight records and the mirror until then).
        unsafe { m.device.destroy_buffer(self.buffer, None) };
        if let (Some(a), Some(alloc)) = (self.allocation.take(), m.allocator.as_mut()) {
            if let Err(e) = alloc.free(a) {
                crate::warn!(
                    "member {}: freeing a staging buffer failed ({e})",
                    self.member
                );
            }
        }
    }
}

/// The transfer command buffers recorded for one batch ([`Stager::record`]).
#[derive(Default)]
pub struct Recorded {
    member: usize,
    /// Runs before the batch's command buffers: stages into covers.
    pub prologue: Option<vk::CommandBuffer>,
    /// Runs after them: covers into stages.
    pub epilogue: Option<vk::CommandBuffer>,
    pool: usize,
    cbs: Vec<vk::CommandBuffer>,
    keep: Vec<Arc<Stage>>,
}

/// One direction of a batch's transfers: the stage and the cover it is copied to or from.
pub struct Transfer {
    pub cover: vk::Buffer,
    pub stage: Arc<Stage>,
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
        let mut slots = self.members.lock();
        let mb = Self::member(d, &mut slots, m).map_err(|r| format!("no staging pool ({r:?})"))?;
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
        if let Some(mb) = self.members.lock()[m].as_ref() {
            // SAFETY: the cover made by `cover`; no batch uses the allocation any more.
            unsafe { mb.device.destroy_buffer(b, None) };
        }
    }

    /// A staging buffer on member `m` holding `ranges` packed; `to_device` when the host
    /// writes it and the member reads it.
    pub fn stage(
        self: &Arc<Self>,
        d: &Device,
        m: usize,
        ranges: RangeSet,
        to_device: bool,
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
        let mut slots = self.members.lock();
        let mb = Self::member(d, &mut slots, m)?;
        let bci = vk::BufferCreateInfo {
            size: size.max(1),
            usage: vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
            ..Default::default()
        };
        // SAFETY: a valid create info on the member's device.
        let buffer = unsafe { mb.device.create_buffer(&bci, None) }?;
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
        let fail = |mb: &mut Member, why: String| {
            crate::warn!("member {m}: no staging buffer of {size} bytes ({why})");
            // SAFETY: the buffer just created, unused.
            unsafe { mb.device.destroy_buffer(buffer, None) };
            vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
        };
        let a = match allocated {
            Some(Ok(a)) => a,
            Some(Err(e)) => return Err(fail(mb, e.to_string())),
            None => return Err(fail(mb, "the pool is gone".into())),
        };
        let ptr = a
            .mapped_ptr()
            .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast::<u8>());
        // SAFETY: the allocation was made for this buffer's requirements.
        let bound = unsafe { mb.device.bind_buffer_memory(buffer, a.memory(), a.offset()) };
        if ptr.is_null() || bound.is_err() {
            if let Some(alloc) = mb.allocator.as_mut() {
                let _ = alloc.free(a);
            }
            return Err(fail(mb, format!("not mapped, or bind {bound:?}")));
        }
        Ok(Arc::new(Stage {
            stager: self.clone(),
            member: m,
            buffer,
            allocation: Some(a),
            ptr,
            ranges,
            offsets,
            valid: AtomicBool::new(true),
        }))
    }

    /// Records the prologue (`ins`: stages into covers) and epilogue (`outs`: covers into
    /// stages) of a batch on member `m`'s queue family `family`; [`Stager::launched`] then
    /// hands them over with the batch's done point. Command buffers of batches that are done
    /// are reused.
    pub fn record(
        &self,
        d: &Device,
        m: usize,
        family: u32,
        ins: &[Transfer],
        outs: &[Transfer],
    ) -> Result<Recorded, vk::Result> {
        let mut rec = Recorded {
            member: m,
            ..Recorded::default()
        };
        if ins.is_empty() && outs.is_empty() {
            return Ok(rec);
        }
        // Stages of finished batches are dropped after the lock (their drop takes it).
        let mut finished: Vec<Arc<Stage>> = Vec::new();
        let mut slots = self.members.lock();
        let mb = Self::member(d, &mut slots, m)?;
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
        let mut take = |mb: &mut Member| -> Result<vk::CommandBuffer, vk::Result> {
            let p = &mut mb.pools[pool];
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
                    unsafe { mb.device.allocate_command_buffers(&ai) }?[0]
                }
            };
            cbs.push(cb);
            Ok(cb)
        };
        let dev = mb.device.clone();
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
        let result = (|| -> Result<_, vk::Result> {
            let mut pro = None;
            if !ins.is_empty() {
                let cb = take(mb)?;
                begin(cb)?;
                // Earlier work on the queue is done with the covers (reads and writes), and
                // the host's writes of the stages are visible.
                barrier(
                    cb,
                    all | vk::PipelineStageFlags::HOST,
                    any | vk::AccessFlags::HOST_WRITE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE,
                );
                for t in ins {
                    // SAFETY: both buffers live; the regions lie inside them.
                    unsafe {
                        dev.cmd_copy_buffer(cb, t.stage.buffer, t.cover, &t.stage.regions(true))
                    };
                }
                barrier(
                    cb,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                    all,
                    any,
                );
                // SAFETY: recorded above.
                unsafe { dev.end_command_buffer(cb) }?;
                pro = Some(cb);
            }
            let mut epi = None;
            if !outs.is_empty() {
                let cb = take(mb)?;
                begin(cb)?;
                barrier(
                    cb,
                    all,
                    vk::AccessFlags::MEMORY_WRITE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_READ,
                );
                for t in outs {
                    // SAFETY: both buffers live; the regions lie inside them.
                    unsafe {
                        dev.cmd_copy_buffer(cb, t.cover, t.stage.buffer, &t.stage.regions(false))
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
            Ok((pro, epi))
        })();
        match result {
            Ok((pro, epi)) => {
                rec.prologue = pro;
                rec.epilogue = epi;
                rec.pool = pool;
                rec.cbs = cbs;
                rec.keep = ins.iter().chain(outs).map(|t| t.stage.clone()).collect();
                Ok(rec)
            }
            Err(r) => {
                // Not submitted: the command buffers are free again.
                mb.pools[pool].free.extend(cbs);
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
        if let Some(mb) = self.members.lock()[rec.member].as_mut() {
            mb.in_flight.push(InFlight {
                done,
                pool: rec.pool,
                cbs: rec.cbs,
                keep: rec.keep,
            });
        }
    }

    /// Frees everything (vkDestroyDevice, once the member's work is done): stages still held
    /// elsewhere free nothing when dropped later.
    pub fn destroy(&self) {
        // The batches' stages first (their drop takes the lock and frees them), then the pools.
        let flights: Vec<InFlight> = self
            .members
            .lock()
            .iter_mut()
            .flatten()
            .flat_map(|mb| std::mem::take(&mut mb.in_flight))
            .collect();
        drop(flights);
        let taken: Vec<Box<Member>> = self
            .members
            .lock()
            .iter_mut()
            .flat_map(Option::take)
            .collect();
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
            } else {
                i += 1;
            }
        }
    }
}
