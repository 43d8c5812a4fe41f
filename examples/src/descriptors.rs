//! A descriptor set built from a list of bindings: layout, a pool sized for exactly that set,
//! the set, and the writes that point it at its resources.

use std::marker::PhantomData;

use ash::vk;

use crate::{Buffer, DeviceContext, Image, Owned, Result};

/// What one descriptor points at.
#[derive(Clone, Copy, Debug)]
enum Resource {
    Buffer(vk::DescriptorBufferInfo),
    Image(vk::DescriptorImageInfo),
}

/// One binding of a [`DescriptorSet`]: a single descriptor of `ty`, visible to `stages`.
///
/// It borrows the resources it names, so they are alive when the set is written.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    ty: vk::DescriptorType,
    stages: vk::ShaderStageFlags,
    resource: Resource,
    _borrows: PhantomData<&'a ()>,
}

impl<'a> Binding<'a> {
    /// `range` bytes of `buffer` at `offset` (`range` may be `VK_WHOLE_SIZE`), as a uniform or
    /// storage buffer `ty`.
    pub fn buffer(
        ty: vk::DescriptorType,
        stages: vk::ShaderStageFlags,
        buffer: &'a Buffer<'_>,
        offset: u64,
        range: u64,
    ) -> Self {
        Self {
            ty,
            stages,
            resource: Resource::Buffer(vk::DescriptorBufferInfo {
                buffer: buffer.handle,
                offset,
                range,
            }),
            _borrows: PhantomData,
        }
    }

    /// `range` bytes at `offset` of the buffer `handle`, which the caller keeps alive while
    /// the set is written, as a storage buffer of a compute shader.
    pub fn compute_storage_handle(handle: vk::Buffer, offset: u64, range: u64) -> Self {
        Self {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            stages: vk::ShaderStageFlags::COMPUTE,
            resource: Resource::Buffer(vk::DescriptorBufferInfo {
                buffer: handle,
                offset,
                range,
            }),
            _borrows: PhantomData,
        }
    }

    /// `range` bytes of `buffer` at `offset` as a storage buffer of a compute shader.
    pub fn compute_storage(buffer: &'a Buffer<'_>, offset: u64, range: u64) -> Self {
        Self::buffer(
            vk::DescriptorType::STORAGE_BUFFER,
            vk::ShaderStageFlags::COMPUTE,
            buffer,
            offset,
            range,
        )
    }

    /// `image`'s view as a storage image, accessed in `layout` (`GENERAL`).
    pub fn storage_image(
        stages: vk::ShaderStageFlags,
        image: &'a Image<'_>,
        layout: vk::ImageLayout,
    ) -> Self {
        Self {
            ty: vk::DescriptorType::STORAGE_IMAGE,
            stages,
            resource: Resource::Image(vk::DescriptorImageInfo {
                sampler: vk::Sampler::null(),
                image_view: image.view,
                image_layout: layout,
            }),
            _borrows: PhantomData,
        }
    }

    /// `image`'s view with `sampler`, as a combined image sampler, read in `layout`.
    pub fn combined_image_sampler(
        stages: vk::ShaderStageFlags,
        sampler: &'a Owned<'_, vk::Sampler>,
        image: &'a Image<'_>,
        layout: vk::ImageLayout,
    ) -> Self {
        Self {
            ty: vk::DescriptorType::COMBINED_IMAGE_SAMPLER,
            stages,
            resource: Resource::Image(vk::DescriptorImageInfo {
                sampler: sampler.handle(),
                image_view: image.view,
                image_layout: layout,
            }),
            _borrows: PhantomData,
        }
    }
}

/// A descriptor set (set 0 of the pipelines that use it) with its layout and its own pool.
pub struct DescriptorSet<'d> {
    /// Holds the set; declared first so that it goes before the layout it was allocated with.
    _pool: Owned<'d, vk::DescriptorPool>,
    /// The set's layout, for pipeline layouts.
    pub layout: Owned<'d, vk::DescriptorSetLayout>,
    /// The set.
    pub set: vk::DescriptorSet,
}

impl DeviceContext {
    /// Creates a set layout whose binding `i` is `bindings[i]`, a pool for one such set, the
    /// set, and writes every binding's resource into it.
    pub fn create_descriptor_set(&self, bindings: &[Binding<'_>]) -> Result<DescriptorSet<'_>> {
        let layout_bindings: Vec<vk::DescriptorSetLayoutBinding<'_>> = (0u32..)
            .zip(bindings)
            .map(|(i, b)| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i)
                    .descriptor_type(b.ty)
                    .descriptor_count(1)
                    .stage_flags(b.stages)
            })
            .collect();
        let layout = self.create_descriptor_set_layout(&layout_bindings)?;
        // One pool size per descriptor type, in order of first use.
        let mut sizes: Vec<vk::DescriptorPoolSize> = Vec::new();
        for b in bindings {
            match sizes.iter_mut().find(|s| s.ty == b.ty) {
                Some(size) => size.descriptor_count += 1,
                None => sizes.push(vk::DescriptorPoolSize {
                    ty: b.ty,
                    descriptor_count: 1,
                }),
            }
        }
        let pool = self.create_descriptor_pool(1, &sizes)?;
        let set = self.allocate_descriptor_set(&pool, &layout)?;
        let writes: Vec<vk::WriteDescriptorSet<'_>> = (0u32..)
            .zip(bindings)
            .map(|(i, b)| {
                let write = vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(i)
                    .descriptor_type(b.ty);
                match &b.resource {
                    Resource::Buffer(info) => write.buffer_info(std::slice::from_ref(info)),
                    Resource::Image(info) => write.image_info(std::slice::from_ref(info)),
                }
            })
            .collect();
        // SAFETY: the set was just allocated and is not in use; every resource is alive (each
        // `Binding` borrows its own) and the callers create it with the usage its descriptor
        // type needs (images in the layout named, by the time the set is used).
        unsafe { self.device.update_descriptor_sets(&writes, &[]) };
        Ok(DescriptorSet {
            _pool: pool,
            layout,
            set,
        })
    }
}
