//! Owned device objects, buffers and images with their memory, and small creation helpers.
//!
//! Every object borrows the [`DeviceContext`] (of a [`crate::Context`] or a
//! [`crate::wsi::WsiContext`]) it was created from, so the borrow checker makes sure it is
//! destroyed before the device; local variables drop in reverse order of creation, which
//! is also the order Vulkan wants.

use std::ptr::NonNull;

use ash::vk;

use crate::{DeviceContext, ErrorContext as _, Result};

/// A device-level handle type that [`Owned`] can destroy.
pub trait DeviceObject: Copy {
    /// Destroys `self`.
    ///
    /// # Safety
    ///
    /// `self` must have been created from `device`, must not be destroyed already, and no
    /// pending command buffer may still use it.
    unsafe fn destroy(self, device: &ash::Device);
}

macro_rules! device_objects {
    ($($ty:ty => $destroy:ident,)*) => {$(
        impl DeviceObject for $ty {
            unsafe fn destroy(self, device: &ash::Device) {
                // SAFETY: forwarded from the caller (see `DeviceObject::destroy`).
                unsafe { device.$destroy(self, None) }
            }
        }
    )*};
}

device_objects! {
    vk::Fence => destroy_fence,
    vk::Semaphore => destroy_semaphore,
    vk::CommandPool => destroy_command_pool,
    vk::ShaderModule => destroy_shader_module,
    vk::DescriptorSetLayout => destroy_descriptor_set_layout,
    vk::DescriptorPool => destroy_descriptor_pool,
    vk::PipelineLayout => destroy_pipeline_layout,
    vk::Pipeline => destroy_pipeline,
    vk::RenderPass => destroy_render_pass,
    vk::Framebuffer => destroy_framebuffer,
    vk::Sampler => destroy_sampler,
    vk::ImageView => destroy_image_view,
    vk::QueryPool => destroy_query_pool,
    vk::Event => destroy_event,
    vk::DescriptorUpdateTemplate => destroy_descriptor_update_template,
}

/// A device object destroyed on drop.
pub struct Owned<'d, H: DeviceObject> {
    device: &'d ash::Device,
    handle: H,
}

impl<'d, H: DeviceObject> Owned<'d, H> {
    /// Takes ownership of `handle`.
    ///
    /// # Safety
    ///
    /// `handle` must have been created from `device` and must not be owned elsewhere.
    pub unsafe fn new(device: &'d ash::Device, handle: H) -> Self {
        Self { device, handle }
    }

    /// The handle.
    pub fn handle(&self) -> H {
        self.handle
    }
}

impl<H: DeviceObject> std::ops::Deref for Owned<'_, H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.handle
    }
}

impl<H: DeviceObject> Drop for Owned<'_, H> {
    fn drop(&mut self) {
        // SAFETY: `new` requires the handle to come from this device and to be owned only
        // here. Work using it has completed: the examples wait for their fences, and on error
        // paths an `IdleGuard` (dropped first) waits for the device.
        unsafe { self.handle.destroy(self.device) }
    }
}

/// Waits for the device to be idle when dropped.
///
/// Declared after the resources a submission uses, it is dropped before them, so an early
/// return with work in flight does not destroy objects that a queue still uses.
pub struct IdleGuard<'d>(&'d ash::Device);

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the device is valid for 'd. A failure (device lost) leaves nothing to wait for.
        let _ = unsafe { self.0.device_wait_idle() };
    }
}

/// How a buffer's memory will be used; decides which memory type is picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryUse {
    /// GPU-only data: prefer `DEVICE_LOCAL`.
    DeviceLocal,
    /// Written by the host, read by the device: `HOST_VISIBLE`, prefer `HOST_COHERENT`.
    Upload,
    /// Written by the device, read by the host: `HOST_VISIBLE`, prefer `HOST_CACHED`.
    Readback,
}

impl MemoryUse {
    /// Property flag sets to try, best first.
    pub fn candidates(self) -> &'static [vk::MemoryPropertyFlags] {
        type F = vk::MemoryPropertyFlags;
        const DL: F = F::DEVICE_LOCAL;
        const NONE: F = F::empty();
        const HV: F = F::HOST_VISIBLE;
        const HV_HC: F = F::from_raw(F::HOST_VISIBLE.as_raw() | F::HOST_COHERENT.as_raw());
        const HV_CA: F = F::from_raw(F::HOST_VISIBLE.as_raw() | F::HOST_CACHED.as_raw());
        const HV_CA_HC: F = F::from_raw(HV_CA.as_raw() | F::HOST_COHERENT.as_raw());
        match self {
            Self::DeviceLocal => &[DL, NONE],
            Self::Upload => &[HV_HC, HV],
            Self::Readback => &[HV_CA_HC, HV_CA, HV_HC, HV],
        }
    }
}

/// The first memory type allowed by `type_bits` whose flags contain the first satisfiable entry
/// of `candidates`. Memory types are listed by the implementation in order of preference
/// (Vulkan spec, "Memory Types"), so the first match is the best one.
pub fn find_memory_type(
    props: &vk::PhysicalDeviceMemoryProperties,
    type_bits: u32,
    candidates: &[vk::MemoryPropertyFlags],
) -> Option<u32> {
    let count = props.memory_type_count.min(vk::MAX_MEMORY_TYPES as u32);
    candidates.iter().find_map(|&wanted| {
        (0..count).find(|&i| {
            type_bits & (1 << i) != 0
                && props.memory_types[i as usize]
                    .property_flags
                    .contains(wanted)
        })
    })
}

/// A buffer with its own memory allocation, persistently mapped when host-visible.
pub struct Buffer<'d> {
    device: &'d ash::Device,
    /// The buffer.
    pub handle: vk::Buffer,
    memory: vk::DeviceMemory,
    /// Size requested at creation.
    pub size: vk::DeviceSize,
    /// Memory type index of the allocation.
    pub memory_type: u32,
    /// Property flags of that memory type.
    pub memory_flags: vk::MemoryPropertyFlags,
    mapped: Option<NonNull<u8>>,
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // SAFETY: both handles were created from `device` in `DeviceContext::create_buffer` and are
        // destroyed once; pending work has completed (see `Owned::drop`). Freeing the memory
        // also unmaps it.
        unsafe {
            self.device.destroy_buffer(self.handle, None);
            self.device.free_memory(self.memory, None);
        }
    }
}

impl Buffer<'_> {
    /// Whether the buffer's memory is mapped (its type is `HOST_VISIBLE`).
    pub fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// The buffer's own allocation (for programs that map it themselves).
    pub fn memory(&self) -> vk::DeviceMemory {
        self.memory
    }

    fn mapping(&self, offset: u64, len: usize) -> Result<NonNull<u8>> {
        let base = self
            .mapped
            .ok_or("buffer memory is not host-visible, so it cannot be mapped")?;
        let in_bounds = matches!(offset.checked_add(len as u64), Some(end) if end <= self.size);
        if !in_bounds {
            return Err(format!(
                "range {offset}+{len} is outside the buffer ({} bytes)",
                self.size
            )
            .into());
        }
        // SAFETY: offset + len <= size <= allocation size, and the whole allocation is mapped.
        Ok(unsafe { base.add(offset as usize) })
    }

    fn mapped_range(&self) -> vk::MappedMemoryRange<'static> {
        // Offset 0 and WHOLE_SIZE are always multiples of nonCoherentAtomSize
        // (VUID-VkMappedMemoryRange-offset-00687, -size-01390).
        vk::MappedMemoryRange::default()
            .memory(self.memory)
            .offset(0)
            .size(vk::WHOLE_SIZE)
    }

    /// Copies `data` into the mapped buffer at `offset` and flushes if the memory is not
    /// host-coherent.
    pub fn write_bytes(&self, offset: u64, data: &[u8]) -> Result<()> {
        let dst = self.mapping(offset, data.len())?;
        // SAFETY: `mapping` checked that the destination range lies inside the mapping; the
        // source is a distinct host slice. The device does not access the buffer concurrently:
        // callers write before submitting work that reads it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.as_ptr(), data.len()) };
        if !self
            .memory_flags
            .contains(vk::MemoryPropertyFlags::HOST_COHERENT)
        {
            // SAFETY: the memory is mapped and the range covers the whole mapping.
            unsafe {
                self.device
                    .flush_mapped_memory_ranges(&[self.mapped_range()])
            }
            .context("vkFlushMappedMemoryRanges")?;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` from the mapped buffer, invalidating first if the memory is
    /// not host-coherent. The caller must have made device writes available to the host
    /// (a barrier to `HOST_READ` and a fence wait).
    pub fn read_bytes(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let src = self.mapping(offset, len)?;
        if !self
            .memory_flags
            .contains(vk::MemoryPropertyFlags::HOST_COHERENT)
        {
            // SAFETY: the memory is mapped and the range covers the whole mapping.
            unsafe {
                self.device
                    .invalidate_mapped_memory_ranges(&[self.mapped_range()])
            }
            .context("vkInvalidateMappedMemoryRanges")?;
        }
        let mut out = vec![0u8; len];
        // SAFETY: `mapping` checked the range; the device is done writing (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr(), len) };
        Ok(out)
    }
}

/// A 2D image, its memory and a view.
pub struct Image<'d> {
    device: &'d ash::Device,
    /// The image.
    pub handle: vk::Image,
    /// A view: of the whole image ([`DeviceContext::create_image_2d`]) or of the range that
    /// [`ImageDesc::view_range`] names.
    pub view: vk::ImageView,
    memory: vk::DeviceMemory,
    /// Its format.
    pub format: vk::Format,
    /// Its size (of mip level 0).
    pub extent: vk::Extent2D,
    /// Its mip level count.
    pub mip_levels: u32,
    /// Its array layer count.
    pub array_layers: u32,
}

/// What [`DeviceContext::create_image`] creates: a 2D, single-sample, optimal-tiling image in
/// device-local memory, exclusive to one queue family, and a view of it.
#[derive(Clone, Copy, Debug)]
pub struct ImageDesc {
    /// The format of the image and of the view.
    pub format: vk::Format,
    /// Size of mip level 0.
    pub extent: vk::Extent2D,
    /// Mip level count.
    pub mip_levels: u32,
    /// Array layer count.
    pub array_layers: u32,
    /// Usage flags.
    pub usage: vk::ImageUsageFlags,
    /// The view's type (`TYPE_2D` or `TYPE_2D_ARRAY`).
    pub view_type: vk::ImageViewType,
    /// The aspects, levels and layers the view covers (explicit counts, not `REMAINING_*`).
    pub view_range: vk::ImageSubresourceRange,
    /// Samples per texel (`TYPE_1` but for multisampled attachments).
    pub samples: vk::SampleCountFlags,
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        // SAFETY: all three were created from `device` in `DeviceContext::create_image`, are
        // destroyed once, view before image; pending work has completed (see `Owned::drop`).
        unsafe {
            self.device.destroy_image_view(self.view, None);
            self.device.destroy_image(self.handle, None);
            self.device.free_memory(self.memory, None);
        }
    }
}

/// Converts a SPIR-V binary held as bytes (possibly unaligned) into words.
pub fn spirv_words(bytes: &[u8]) -> Result<Vec<u32>> {
    Ok(ash::util::read_spv(&mut std::io::Cursor::new(bytes))?)
}

impl DeviceContext {
    /// A guard that waits for the device to be idle when dropped; see [`IdleGuard`].
    pub fn idle_guard(&self) -> IdleGuard<'_> {
        IdleGuard(&self.device)
    }

    /// Takes ownership of `handle`.
    ///
    /// # Safety
    ///
    /// `handle` must have been created from `self.device` and must not be owned elsewhere.
    pub unsafe fn own<H: DeviceObject>(&self, handle: H) -> Owned<'_, H> {
        // SAFETY: forwarded from the caller.
        unsafe { Owned::new(&self.device, handle) }
    }

    /// Takes ownership of the handle a `vkCreate*` call on this device returned, or turns its
    /// error into `"<what> failed: <error>"`.
    ///
    /// # Safety
    ///
    /// `created` must come from a create call on `self.device`, and the handle must not be
    /// owned elsewhere.
    pub unsafe fn own_created<H: DeviceObject>(
        &self,
        created: ash::prelude::VkResult<H>,
        what: &str,
    ) -> Result<Owned<'_, H>> {
        let handle = created.context(what)?;
        // SAFETY: forwarded from the caller.
        Ok(unsafe { self.own(handle) })
    }

    /// A memory type for `type_bits` suitable for `usage`.
    pub fn memory_type_for(&self, type_bits: u32, usage: MemoryUse) -> Result<u32> {
        find_memory_type(&self.memory_properties, type_bits, usage.candidates())
            .ok_or_else(|| format!("no memory type in 0b{type_bits:b} suits {usage:?}").into())
    }

    fn allocate(
        &self,
        requirements: vk::MemoryRequirements,
        usage: MemoryUse,
    ) -> Result<(vk::DeviceMemory, u32)> {
        let memory_type = self.memory_type_for(requirements.memory_type_bits, usage)?;
        let info = vk::MemoryAllocateInfo::default()
            .allocation_size(requirements.size)
            .memory_type_index(memory_type);
        // SAFETY: the type index comes from this device's memory properties and the
        // resource's memoryTypeBits; the size is the resource's requirement.
        let memory =
            unsafe { self.device.allocate_memory(&info, None) }.context("vkAllocateMemory")?;
        Ok((memory, memory_type))
    }

    /// Creates a buffer of `size` bytes with its own memory chosen for `memory`; host-visible
    /// memory is mapped for the buffer's lifetime, unless `memory` is `DeviceLocal`.
    pub fn create_buffer(
        &self,
        size: vk::DeviceSize,
        usage: vk::BufferUsageFlags,
        memory: MemoryUse,
    ) -> Result<Buffer<'_>> {
        self.create_buffer_shared(size, usage, memory, &[])
    }

    /// A device-local storage buffer of `size` bytes that transfers can fill, copy into and copy
    /// from.
    pub fn create_storage_buffer(&self, size: vk::DeviceSize) -> Result<Buffer<'_>> {
        self.create_buffer(
            size,
            vk::BufferUsageFlags::STORAGE_BUFFER
                | vk::BufferUsageFlags::TRANSFER_SRC
                | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::DeviceLocal,
        )
    }

    /// A host-visible buffer of `size` bytes that the host writes and copies read from.
    pub fn create_upload_buffer(&self, size: vk::DeviceSize) -> Result<Buffer<'_>> {
        self.create_buffer(size, vk::BufferUsageFlags::TRANSFER_SRC, MemoryUse::Upload)
    }

    /// A host-visible buffer of `size` bytes that copies write into and the host reads.
    pub fn create_readback_buffer(&self, size: vk::DeviceSize) -> Result<Buffer<'_>> {
        self.create_buffer(
            size,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::Readback,
        )
    }

    /// Like [`DeviceContext::create_buffer`], but with `VK_SHARING_MODE_CONCURRENT` between
    /// `families` when they name more than one distinct family (exclusive otherwise).
    pub fn create_buffer_shared(
        &self,
        size: vk::DeviceSize,
        usage: vk::BufferUsageFlags,
        memory: MemoryUse,
        families: &[u32],
    ) -> Result<Buffer<'_>> {
        let memory_use = memory;
        let mut distinct = families.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        if distinct.len() > 1 {
            info = info
                .sharing_mode(vk::SharingMode::CONCURRENT)
                .queue_family_indices(&distinct);
        }
        // SAFETY: a plain create call with a fully initialised create info.
        let handle = unsafe { self.device.create_buffer(&info, None) }.context("vkCreateBuffer")?;
        // SAFETY: handle was just created from this device.
        let requirements = unsafe { self.device.get_buffer_memory_requirements(handle) };
        let (memory, memory_type) = match self.allocate(requirements, memory) {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: the buffer is unused and destroyed once.
                unsafe { self.device.destroy_buffer(handle, None) };
                return Err(e);
            }
        };
        let memory_flags = self.memory_properties.memory_types[memory_type as usize].property_flags;
        // From here on, drop destroys both.
        let mut buffer = Buffer {
            device: &self.device,
            handle,
            memory,
            size,
            memory_type,
            memory_flags,
            mapped: None,
        };
        // SAFETY: the memory was allocated for this buffer's requirements, offset 0 is aligned.
        unsafe { self.device.bind_buffer_memory(handle, memory, 0) }
            .context("vkBindBufferMemory")?;
        // Device-local data is not mapped even where it could be (on CPU devices every type is
        // host-visible), as programs for discrete GPUs do.
        if memory_use != MemoryUse::DeviceLocal
            && memory_flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
        {
            // SAFETY: host-visible memory, not mapped yet, whole range.
            let ptr = unsafe {
                self.device
                    .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
            }
            .context("vkMapMemory")?;
            buffer.mapped = NonNull::new(ptr.cast::<u8>());
        }
        Ok(buffer)
    }

    /// Creates a 2D, single-sample, optimal-tiling image in device-local memory with one mip
    /// level and one layer, with a view of `aspect`.
    pub fn create_image_2d(
        &self,
        format: vk::Format,
        extent: vk::Extent2D,
        usage: vk::ImageUsageFlags,
        aspect: vk::ImageAspectFlags,
    ) -> Result<Image<'_>> {
        self.create_multisampled_2d(format, extent, usage, aspect, vk::SampleCountFlags::TYPE_1)
    }

    /// A 2D image of `samples` samples per texel, one level and layer, and its view.
    pub fn create_multisampled_2d(
        &self,
        format: vk::Format,
        extent: vk::Extent2D,
        usage: vk::ImageUsageFlags,
        aspect: vk::ImageAspectFlags,
        samples: vk::SampleCountFlags,
    ) -> Result<Image<'_>> {
        self.create_image(&ImageDesc {
            format,
            extent,
            mip_levels: 1,
            array_layers: 1,
            usage,
            view_type: vk::ImageViewType::TYPE_2D,
            view_range: subresource_range(aspect),
            samples,
        })
    }

    /// Creates the image and view `desc` describes, in device-local memory.
    pub fn create_image(&self, desc: &ImageDesc) -> Result<Image<'_>> {
        let r = desc.view_range;
        let inside = |base: u32, count: u32, total: u32| {
            count > 0 && base.checked_add(count).is_some_and(|end| end <= total)
        };
        if !inside(r.base_mip_level, r.level_count, desc.mip_levels)
            || !inside(r.base_array_layer, r.layer_count, desc.array_layers)
        {
            return Err(format!(
                "image view range {r:?} is not inside {} levels and {} layers",
                desc.mip_levels, desc.array_layers
            )
            .into());
        }
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(desc.format)
            .extent(vk::Extent3D {
                width: desc.extent.width,
                height: desc.extent.height,
                depth: 1,
            })
            .mip_levels(desc.mip_levels)
            .array_layers(desc.array_layers)
            .samples(desc.samples)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(desc.usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        // SAFETY: a plain create call with a fully initialised create info.
        let handle = unsafe { self.device.create_image(&info, None) }.context("vkCreateImage")?;
        // SAFETY: handle was just created from this device.
        let requirements = unsafe { self.device.get_image_memory_requirements(handle) };
        let memory = match self.allocate(requirements, MemoryUse::DeviceLocal) {
            Ok((m, _)) => m,
            Err(e) => {
                // SAFETY: the image is unused and destroyed once.
                unsafe { self.device.destroy_image(handle, None) };
                return Err(e);
            }
        };
        let mut image = Image {
            device: &self.device,
            handle,
            view: vk::ImageView::null(),
            memory,
            format: desc.format,
            extent: desc.extent,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
        };
        // SAFETY: the memory was allocated for this image's requirements, offset 0.
        unsafe { self.device.bind_image_memory(handle, memory, 0) }.context("vkBindImageMemory")?;
        let view_info = vk::ImageViewCreateInfo::default()
            .image(handle)
            .view_type(desc.view_type)
            .format(desc.format)
            .subresource_range(desc.view_range);
        // SAFETY: the image is bound to memory and the view's levels and layers lie inside it
        // (checked above). Destroying a null view in `Image::drop` (if this fails) is a no-op.
        image.view = unsafe { self.device.create_image_view(&view_info, None) }
            .context("vkCreateImageView")?;
        Ok(image)
    }

    /// A device-local buffer holding `data`, for use at `dst` (stages, accesses) afterwards.
    ///
    /// If the device-local memory is host-visible and `force_staging` is false, `data` is written
    /// through the mapping (vkQueueSubmit makes host writes visible to later submissions).
    /// Otherwise it goes through a host-visible staging buffer and `vkCmdCopyBuffer` on `queue`,
    /// followed by a barrier from the copy to `dst`, which orders it before every later command
    /// on `queue`.
    pub fn create_buffer_with_data(
        &self,
        queue: crate::QueueInfo,
        usage: vk::BufferUsageFlags,
        data: &[u8],
        dst: crate::cmd::Scope,
        force_staging: bool,
    ) -> Result<Buffer<'_>> {
        let size = data.len() as u64;
        let buffer = self.create_buffer(
            size,
            usage | vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUse::DeviceLocal,
        )?;
        if buffer.is_mapped() && !force_staging {
            buffer.write_bytes(0, data)?;
            return Ok(buffer);
        }
        let staging = self.create_upload_buffer(size)?;
        staging.write_bytes(0, data)?;
        self.one_time_commands(queue, |cb| {
            // SAFETY: cb is recording outside a render pass on `queue`'s family; both buffers
            // are alive until one_time_commands has waited for the submission.
            unsafe {
                self.device.cmd_copy_buffer(
                    cb,
                    staging.handle,
                    buffer.handle,
                    &[vk::BufferCopy {
                        src_offset: 0,
                        dst_offset: 0,
                        size,
                    }],
                );
                crate::cmd::buffer_barrier(
                    &self.device,
                    cb,
                    buffer.handle,
                    crate::cmd::TRANSFER_WRITE,
                    dst,
                );
            }
            Ok(())
        })?;
        Ok(buffer)
    }

    /// A fence, signaled or not.
    pub fn create_fence(&self, signaled: bool) -> Result<Owned<'_, vk::Fence>> {
        let flags = if signaled {
            vk::FenceCreateFlags::SIGNALED
        } else {
            vk::FenceCreateFlags::empty()
        };
        let info = vk::FenceCreateInfo::default().flags(flags);
        // SAFETY: plain create call; the result is owned once.
        unsafe { self.own_created(self.device.create_fence(&info, None), "vkCreateFence") }
    }

    /// A binary semaphore.
    pub fn create_semaphore(&self) -> Result<Owned<'_, vk::Semaphore>> {
        let info = vk::SemaphoreCreateInfo::default();
        // SAFETY: plain create call; the result is owned once.
        unsafe {
            self.own_created(
                self.device.create_semaphore(&info, None),
                "vkCreateSemaphore",
            )
        }
    }

    /// A sampler of nearest texels, clamped to the edges, level 0 only.
    pub fn create_nearest_sampler(&self) -> Result<Owned<'_, vk::Sampler>> {
        let info = vk::SamplerCreateInfo::default()
            .mag_filter(vk::Filter::NEAREST)
            .min_filter(vk::Filter::NEAREST)
            .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
            .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .min_lod(0.0)
            .max_lod(0.0);
        // SAFETY: a valid create info; the sampler is owned once.
        unsafe { self.own_created(self.device.create_sampler(&info, None), "vkCreateSampler") }
    }

    /// A timeline semaphore starting at 0; the device must have been created with
    /// `ContextDesc::timeline`.
    pub fn create_timeline_semaphore(&self) -> Result<Owned<'_, vk::Semaphore>> {
        let mut type_info = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
        // SAFETY: a valid create info; callers enable timeline semaphores (documented above),
        // without which the driver rejects it with an error, not undefined behaviour.
        unsafe {
            self.own_created(
                self.device.create_semaphore(&info, None),
                "vkCreateSemaphore",
            )
        }
    }

    /// A command pool on queue family `family`.
    pub fn create_command_pool(
        &self,
        family: u32,
        flags: vk::CommandPoolCreateFlags,
    ) -> Result<Owned<'_, vk::CommandPool>> {
        let info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(family)
            .flags(flags);
        // SAFETY: plain create call; the result is owned once.
        unsafe {
            self.own_created(
                self.device.create_command_pool(&info, None),
                "vkCreateCommandPool",
            )
        }
    }

    /// Allocates `count` command buffers of `level` from `pool` (freed with the pool).
    pub fn allocate_command_buffers(
        &self,
        pool: &Owned<'_, vk::CommandPool>,
        level: vk::CommandBufferLevel,
        count: u32,
    ) -> Result<Vec<vk::CommandBuffer>> {
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool.handle())
            .level(level)
            .command_buffer_count(count);
        // SAFETY: the pool is alive (borrowed) and belongs to this device; the caller of this
        // safe helper must not use the pool from another thread at the same time, which the
        // `&Owned` borrow cannot express, so the examples keep one pool per thread.
        unsafe { self.device.allocate_command_buffers(&info) }.context("vkAllocateCommandBuffers")
    }

    /// Allocates one primary command buffer from `pool` (freed with the pool).
    pub fn allocate_primary(&self, pool: &Owned<'_, vk::CommandPool>) -> Result<vk::CommandBuffer> {
        self.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?
            .first()
            .copied()
            .ok_or_else(|| "vkAllocateCommandBuffers returned no command buffer".into())
    }

    /// A shader module from SPIR-V bytes.
    pub fn create_shader_module(&self, spirv: &[u8]) -> Result<Owned<'_, vk::ShaderModule>> {
        let words = spirv_words(spirv)?;
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        // SAFETY: `words` is SPIR-V produced by glslangValidator at build time.
        unsafe {
            self.own_created(
                self.device.create_shader_module(&info, None),
                "vkCreateShaderModule",
            )
        }
    }

    /// A descriptor set layout.
    pub fn create_descriptor_set_layout(
        &self,
        bindings: &[vk::DescriptorSetLayoutBinding<'_>],
    ) -> Result<Owned<'_, vk::DescriptorSetLayout>> {
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(bindings);
        // SAFETY: plain create call; the bindings carry no immutable samplers.
        unsafe {
            self.own_created(
                self.device.create_descriptor_set_layout(&info, None),
                "vkCreateDescriptorSetLayout",
            )
        }
    }

    /// A pipeline layout.
    pub fn create_pipeline_layout(
        &self,
        set_layouts: &[&Owned<'_, vk::DescriptorSetLayout>],
        push_constant_ranges: &[vk::PushConstantRange],
    ) -> Result<Owned<'_, vk::PipelineLayout>> {
        let sets: Vec<vk::DescriptorSetLayout> = set_layouts.iter().map(|l| l.handle()).collect();
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&sets)
            .push_constant_ranges(push_constant_ranges);
        // SAFETY: the set layouts are alive (borrowed) and belong to this device.
        unsafe {
            self.own_created(
                self.device.create_pipeline_layout(&info, None),
                "vkCreatePipelineLayout",
            )
        }
    }

    /// A descriptor pool for `max_sets` sets.
    pub fn create_descriptor_pool(
        &self,
        max_sets: u32,
        sizes: &[vk::DescriptorPoolSize],
    ) -> Result<Owned<'_, vk::DescriptorPool>> {
        let info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(max_sets)
            .pool_sizes(sizes);
        // SAFETY: plain create call; the result is owned once.
        unsafe {
            self.own_created(
                self.device.create_descriptor_pool(&info, None),
                "vkCreateDescriptorPool",
            )
        }
    }

    /// Allocates one descriptor set of `layout` from `pool` (freed with the pool).
    pub fn allocate_descriptor_set(
        &self,
        pool: &Owned<'_, vk::DescriptorPool>,
        layout: &Owned<'_, vk::DescriptorSetLayout>,
    ) -> Result<vk::DescriptorSet> {
        let layouts = [layout.handle()];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(pool.handle())
            .set_layouts(&layouts);
        // SAFETY: pool and layout are alive (borrowed) and belong to this device.
        let sets = unsafe { self.device.allocate_descriptor_sets(&info) }
            .context("vkAllocateDescriptorSets")?;
        sets.first()
            .copied()
            .ok_or_else(|| "vkAllocateDescriptorSets returned no set".into())
    }

    /// Waits for `fence` without timeout.
    pub fn wait_fence(&self, fence: &Owned<'_, vk::Fence>) -> Result<()> {
        // SAFETY: the fence is alive (borrowed) and belongs to this device.
        unsafe {
            self.device
                .wait_for_fences(&[fence.handle()], true, u64::MAX)
        }
        .context("vkWaitForFences")
    }

    /// Waits for `fence` without timeout, then resets it for the next submission.
    pub fn wait_and_reset_fence(&self, fence: &Owned<'_, vk::Fence>) -> Result<()> {
        self.wait_fence(fence)?;
        // SAFETY: the fence is alive (borrowed), belongs to this device and is signaled, so no
        // queue operation uses it any more (VUID-vkResetFences-pFences-01123).
        unsafe { self.device.reset_fences(&[fence.handle()]) }.context("vkResetFences")
    }

    /// Submits `cbs` to `queue` in one batch without semaphores; `fence` signals when they have
    /// completed.
    ///
    /// # Safety
    ///
    /// `queue` must be a queue of this device that no other thread uses during the call; `cbs`
    /// must be executable primaries of its family that are not pending; `fence` must be
    /// unsignaled and not in use; everything the command buffers use must stay alive until
    /// they complete.
    pub unsafe fn submit(
        &self,
        queue: vk::Queue,
        cbs: &[vk::CommandBuffer],
        fence: &Owned<'_, vk::Fence>,
    ) -> Result<()> {
        let submit = vk::SubmitInfo::default().command_buffers(cbs);
        // SAFETY: forwarded from the caller; `submit` points into `cbs`, which outlives the call.
        unsafe { self.device.queue_submit(queue, &[submit], fence.handle()) }
            .context("vkQueueSubmit")
    }

    /// Records commands with `record` into a fresh primary command buffer, submits it to
    /// `queue` and waits for it to complete.
    pub fn one_time_commands(
        &self,
        queue: crate::QueueInfo,
        record: impl FnOnce(vk::CommandBuffer) -> Result<()>,
    ) -> Result<()> {
        let pool = self.create_command_pool(queue.family, vk::CommandPoolCreateFlags::TRANSIENT)?;
        let cb = self.allocate_primary(&pool)?;
        let fence = self.create_fence(false)?;
        // Dropped first: an error after the submit still waits before the pool goes.
        let _idle = self.idle_guard();
        // SAFETY: cb was just allocated from a pool of this device and is in the initial state.
        unsafe {
            crate::cmd::begin(
                &self.device,
                cb,
                vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT,
            )
        }?;
        record(cb)?;
        // SAFETY: cb is recorded (end succeeds before the submit); queue belongs to this device
        // and to the pool's family; the fence is unsignaled and unused; what `record` used is
        // alive until the wait below (the caller's borrows outlive this call).
        unsafe {
            crate::cmd::end(&self.device, cb)?;
            self.submit(queue.handle, &[cb], &fence)?;
        }
        self.wait_fence(&fence)
    }
}

/// The subresource range of a single-level, single-layer image.
pub fn subresource_range(aspect: vk::ImageAspectFlags) -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange {
        aspect_mask: aspect,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    }
}

/// Rounds `value` up to a multiple of `alignment` (a power of two, or 0/1 for none).
pub fn align_up(value: u64, alignment: u64) -> u64 {
    if alignment <= 1 {
        value
    } else {
        value.div_ceil(alignment) * alignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(types: &[vk::MemoryPropertyFlags]) -> vk::PhysicalDeviceMemoryProperties {
        let mut p = vk::PhysicalDeviceMemoryProperties {
            memory_type_count: types.len() as u32,
            memory_heap_count: 1,
            ..Default::default()
        };
        for (i, &flags) in types.iter().enumerate() {
            p.memory_types[i] = vk::MemoryType {
                property_flags: flags,
                heap_index: 0,
            };
        }
        p
    }

    #[test]
    fn picks_by_flags_not_index() {
        use vk::MemoryPropertyFlags as F;
        // A discrete-GPU-like list.
        let p = props(&[
            F::DEVICE_LOCAL,
            F::HOST_VISIBLE | F::HOST_COHERENT,
            F::HOST_VISIBLE | F::HOST_COHERENT | F::HOST_CACHED,
            F::DEVICE_LOCAL | F::HOST_VISIBLE | F::HOST_COHERENT,
        ]);
        let all = 0b1111;
        assert_eq!(
            find_memory_type(&p, all, MemoryUse::DeviceLocal.candidates()),
            Some(0)
        );
        assert_eq!(
            find_memory_type(&p, all, MemoryUse::Upload.candidates()),
            Some(1)
        );
        assert_eq!(
            find_memory_type(&p, all, MemoryUse::Readback.candidates()),
            Some(2)
        );
        // Type bits restrict the choice; fall back to weaker candidates.
        assert_eq!(
            find_memory_type(&p, 0b0010, MemoryUse::Readback.candidates()),
            Some(1)
        );
        assert_eq!(
            find_memory_type(&p, 0b0001, MemoryUse::Upload.candidates()),
            None
        );
        assert_eq!(
            find_memory_type(&p, 0b0010, MemoryUse::DeviceLocal.candidates()),
            Some(1)
        );
    }

    #[test]
    fn align() {
        assert_eq!(align_up(0, 256), 0);
        assert_eq!(align_up(1, 256), 256);
        assert_eq!(align_up(256, 256), 256);
        assert_eq!(align_up(17, 0), 17);
    }
}
