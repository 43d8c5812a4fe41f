//! Pipelines and what they render into: compute kernels with their descriptor set, the
//! graphics pipeline and render pass of the offscreen examples, framebuffers.

use ash::vk;

use crate::descriptors::{Binding, DescriptorSet};
use crate::{DeviceContext, ErrorContext as _, Image, Owned, Result};

/// A compute shader's pipeline, its layout (set 0 plus push constants) and its descriptor set.
pub struct ComputeKernel<'d> {
    /// The pipeline.
    pub pipeline: Owned<'d, vk::Pipeline>,
    /// Its layout.
    pub layout: Owned<'d, vk::PipelineLayout>,
    /// Set 0, already written.
    pub descriptors: DescriptorSet<'d>,
}

impl ComputeKernel<'_> {
    /// Records binding the pipeline and its descriptor set.
    ///
    /// # Safety
    ///
    /// `cb` must be a command buffer of `d` (this kernel's device) in the recording state, on a
    /// compute-capable queue family, not used by another thread.
    #[inline]
    pub unsafe fn bind(&self, d: &ash::Device, cb: vk::CommandBuffer) {
        // SAFETY: forwarded from the caller; pipeline, layout and set belong to `d`.
        unsafe {
            d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, *self.pipeline);
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                *self.layout,
                0,
                &[self.descriptors.set],
                &[],
            );
        }
    }

    /// Records setting the push constants from offset 0 to `bytes`.
    ///
    /// # Safety
    ///
    /// As for [`ComputeKernel::bind`]; `bytes` must fit in the kernel's push constant range.
    #[inline]
    pub unsafe fn push_constants(&self, d: &ash::Device, cb: vk::CommandBuffer, bytes: &[u8]) {
        // SAFETY: forwarded from the caller.
        unsafe { d.cmd_push_constants(cb, *self.layout, vk::ShaderStageFlags::COMPUTE, 0, bytes) }
    }
}

/// The fixed parts of the examples' graphics pipelines: one viewport and scissor covering
/// `extent`, filled triangles without culling, one sample, one colour attachment written
/// without blending, subpass 0. Optionally a depth test (LESS) with depth writes.
#[derive(Clone, Copy, Debug)]
pub struct GraphicsPipelineDesc<'a> {
    /// SPIR-V of the vertex shader (`main`).
    pub vertex_shader: &'a [u8],
    /// SPIR-V of the fragment shader (`main`).
    pub fragment_shader: &'a [u8],
    /// Vertex buffer bindings (none: the vertex shader makes its vertices).
    pub vertex_bindings: &'a [vk::VertexInputBindingDescription],
    /// Vertex attributes.
    pub vertex_attributes: &'a [vk::VertexInputAttributeDescription],
    /// Primitive topology.
    pub topology: vk::PrimitiveTopology,
    /// Viewport and scissor size.
    pub extent: vk::Extent2D,
    /// Depth test LESS with depth writes (the render pass has a depth attachment); without
    /// it, no depth/stencil state.
    pub depth_test: bool,
    /// Rasterization samples (`TYPE_1` but for multisampled attachments).
    pub samples: vk::SampleCountFlags,
}

impl DeviceContext {
    /// Owns the one pipeline a `vkCreate*Pipelines` call made for one create info.
    fn own_pipeline(
        &self,
        created: std::result::Result<Vec<vk::Pipeline>, (Vec<vk::Pipeline>, vk::Result)>,
        what: &str,
    ) -> Result<Owned<'_, vk::Pipeline>> {
        let pipelines = created.map_err(|(_, e)| e).context(what)?;
        let pipeline = pipelines
            .first()
            .copied()
            .ok_or_else(|| format!("{what} returned no pipeline"))?;
        // SAFETY: the pipeline was just created from this device and is owned once.
        Ok(unsafe { self.own(pipeline) })
    }

    /// A compute pipeline running `main` of `module`.
    pub fn create_compute_pipeline(
        &self,
        layout: &Owned<'_, vk::PipelineLayout>,
        module: &Owned<'_, vk::ShaderModule>,
    ) -> Result<Owned<'_, vk::Pipeline>> {
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module.handle())
            .name(c"main");
        let info = vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(layout.handle());
        // SAFETY: module and layout are alive (borrowed) and belong to this device; the
        // shader's interface matches the layouts built by the examples for it.
        let created = unsafe {
            self.device
                .create_compute_pipelines(vk::PipelineCache::null(), &[info], None)
        };
        self.own_pipeline(created, "vkCreateComputePipelines")
    }

    /// A compute kernel: the descriptor set of `bindings` (binding `i` is `bindings[i]`), a
    /// pipeline layout with it as set 0 and `push_constant_size` bytes of compute push
    /// constants, and a pipeline running `main` of `spirv`.
    pub fn create_compute_kernel(
        &self,
        spirv: &[u8],
        push_constant_size: u32,
        bindings: &[Binding<'_>],
    ) -> Result<ComputeKernel<'_>> {
        let descriptors = self.create_descriptor_set(bindings)?;
        let push = [vk::PushConstantRange {
            stage_flags: vk::ShaderStageFlags::COMPUTE,
            offset: 0,
            size: push_constant_size,
        }];
        let layout = self.create_pipeline_layout(&[&descriptors.layout], &push)?;
        let module = self.create_shader_module(spirv)?;
        let pipeline = self.create_compute_pipeline(&layout, &module)?;
        Ok(ComputeKernel {
            pipeline,
            layout,
            descriptors,
        })
    }

    /// A graphics pipeline for subpass 0 of `render_pass`; see [`GraphicsPipelineDesc`].
    pub fn create_graphics_pipeline(
        &self,
        desc: &GraphicsPipelineDesc<'_>,
        layout: &Owned<'_, vk::PipelineLayout>,
        render_pass: &Owned<'_, vk::RenderPass>,
    ) -> Result<Owned<'_, vk::Pipeline>> {
        let vert = self.create_shader_module(desc.vertex_shader)?;
        let frag = self.create_shader_module(desc.fragment_shader)?;
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(*vert)
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(*frag)
                .name(c"main"),
        ];
        let mut vertex_input = vk::PipelineVertexInputStateCreateInfo::default();
        if !desc.vertex_bindings.is_empty() {
            vertex_input = vertex_input
                .vertex_binding_descriptions(desc.vertex_bindings)
                .vertex_attribute_descriptions(desc.vertex_attributes);
        }
        let input_assembly =
            vk::PipelineInputAssemblyStateCreateInfo::default().topology(desc.topology);
        let viewports = [vk::Viewport {
            x: 0.0,
            y: 0.0,
            width: desc.extent.width as f32,
            height: desc.extent.height as f32,
            min_depth: 0.0,
            max_depth: 1.0,
        }];
        let scissors = [vk::Rect2D {
            offset: vk::Offset2D::default(),
            extent: desc.extent,
        }];
        let viewport = vk::PipelineViewportStateCreateInfo::default()
            .viewports(&viewports)
            .scissors(&scissors);
        let raster = vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .front_face(vk::FrontFace::COUNTER_CLOCKWISE)
            .line_width(1.0);
        let multisample =
            vk::PipelineMultisampleStateCreateInfo::default().rasterization_samples(desc.samples);
        let depth_stencil = vk::PipelineDepthStencilStateCreateInfo::default()
            .depth_test_enable(true)
            .depth_write_enable(true)
            .depth_compare_op(vk::CompareOp::LESS);
        let blend_attachments = [vk::PipelineColorBlendAttachmentState::default()
            .blend_enable(false)
            .color_write_mask(vk::ColorComponentFlags::RGBA)];
        let blend =
            vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachments);
        let mut info = vk::GraphicsPipelineCreateInfo::default()
            .stages(&stages)
            .vertex_input_state(&vertex_input)
            .input_assembly_state(&input_assembly)
            .viewport_state(&viewport)
            .rasterization_state(&raster)
            .multisample_state(&multisample);
        if desc.depth_test {
            info = info.depth_stencil_state(&depth_stencil);
        }
        let info = info
            .color_blend_state(&blend)
            .layout(**layout)
            .render_pass(**render_pass)
            .subpass(0);
        // SAFETY: every state struct outlives the call; modules, layout and render pass are
        // alive (borrowed) and belong to this device; the callers' shaders match the vertex
        // input and the layout.
        let created = unsafe {
            self.device
                .create_graphics_pipelines(vk::PipelineCache::null(), &[info], None)
        };
        self.own_pipeline(created, "vkCreateGraphicsPipelines")
    }

    /// A render pass with one subpass whose colour attachment (`color`) is cleared, stored and
    /// left in TRANSFER_SRC_OPTIMAL for a copy out, plus, with `depth`, a depth attachment
    /// that is cleared and discarded. External dependencies: earlier attachment writes and
    /// transfer reads (of a reused image) before the pass clears and writes the attachments;
    /// the colour writes before later transfer reads.
    pub fn create_render_pass_to_transfer(
        &self,
        color: vk::Format,
        depth: Option<vk::Format>,
    ) -> Result<Owned<'_, vk::RenderPass>> {
        self.create_render_pass_to_transfer_samples(color, depth, vk::SampleCountFlags::TYPE_1)
    }

    /// [`DeviceContext::create_render_pass_to_transfer`] with attachments of `samples`
    /// samples per texel (the colour attachment then resolved by `vkCmdResolveImage`, from
    /// TRANSFER_SRC_OPTIMAL).
    pub fn create_render_pass_to_transfer_samples(
        &self,
        color: vk::Format,
        depth: Option<vk::Format>,
        samples: vk::SampleCountFlags,
    ) -> Result<Owned<'_, vk::RenderPass>> {
        let mut attachments = vec![vk::AttachmentDescription::default()
            .format(color)
            .samples(samples)
            .load_op(vk::AttachmentLoadOp::CLEAR)
            .store_op(vk::AttachmentStoreOp::STORE)
            .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
            .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .final_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)];
        let color_ref = [vk::AttachmentReference {
            attachment: 0,
            layout: vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
        }];
        let depth_ref = vk::AttachmentReference {
            attachment: 1,
            layout: vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL,
        };
        let mut subpass = vk::SubpassDescription::default()
            .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
            .color_attachments(&color_ref);
        let mut attachment_stages = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT;
        let mut earlier_writes = vk::AccessFlags::COLOR_ATTACHMENT_WRITE;
        let mut pass_accesses = vk::AccessFlags::COLOR_ATTACHMENT_WRITE;
        if let Some(format) = depth {
            attachments.push(
                vk::AttachmentDescription::default()
                    .format(format)
                    .samples(samples)
                    .load_op(vk::AttachmentLoadOp::CLEAR)
                    .store_op(vk::AttachmentStoreOp::DONT_CARE)
                    .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
                    .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
                    .initial_layout(vk::ImageLayout::UNDEFINED)
                    .final_layout(vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL),
            );
            subpass = subpass.depth_stencil_attachment(&depth_ref);
            attachment_stages |= vk::PipelineStageFlags::EARLY_FRAGMENT_TESTS
                | vk::PipelineStageFlags::LATE_FRAGMENT_TESTS;
            earlier_writes |= vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE;
            pass_accesses |= vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_READ
                | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE;
        }
        let dependencies = [
            vk::SubpassDependency {
                src_subpass: vk::SUBPASS_EXTERNAL,
                dst_subpass: 0,
                src_stage_mask: attachment_stages | vk::PipelineStageFlags::TRANSFER,
                dst_stage_mask: attachment_stages,
                src_access_mask: earlier_writes,
                dst_access_mask: pass_accesses,
                dependency_flags: vk::DependencyFlags::empty(),
            },
            vk::SubpassDependency {
                src_subpass: 0,
                dst_subpass: vk::SUBPASS_EXTERNAL,
                src_stage_mask: vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT,
                dst_stage_mask: vk::PipelineStageFlags::TRANSFER,
                src_access_mask: vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
                dst_access_mask: vk::AccessFlags::TRANSFER_READ,
                dependency_flags: vk::DependencyFlags::empty(),
            },
        ];
        let subpasses = [subpass];
        let info = vk::RenderPassCreateInfo::default()
            .attachments(&attachments)
            .subpasses(&subpasses)
            .dependencies(&dependencies);
        // SAFETY: plain create call with arrays that outlive it; the result is owned once.
        unsafe {
            self.own_created(
                self.device.create_render_pass(&info, None),
                "vkCreateRenderPass",
            )
        }
    }

    /// A colour image of `format` and `extent` to render into (the colour attachment of
    /// [`DeviceContext::create_render_pass_to_transfer`]) and copy out of.
    pub fn create_render_target(
        &self,
        format: vk::Format,
        extent: vk::Extent2D,
    ) -> Result<Image<'_>> {
        self.create_image_2d(
            format,
            extent,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
            vk::ImageAspectFlags::COLOR,
        )
    }

    /// A framebuffer of `render_pass` with `attachments` (their views, in order), `extent`,
    /// one layer.
    pub fn create_framebuffer(
        &self,
        render_pass: &Owned<'_, vk::RenderPass>,
        attachments: &[&Image<'_>],
        extent: vk::Extent2D,
    ) -> Result<Owned<'_, vk::Framebuffer>> {
        let views: Vec<vk::ImageView> = attachments.iter().map(|image| image.view).collect();
        let info = vk::FramebufferCreateInfo::default()
            .render_pass(**render_pass)
            .attachments(&views)
            .width(extent.width)
            .height(extent.height)
            .layers(1);
        // SAFETY: the render pass and views are alive (borrowed) and belong to this device; the
        // callers' views match the render pass's formats and cover the extent.
        unsafe {
            self.own_created(
                self.device.create_framebuffer(&info, None),
                "vkCreateFramebuffer",
            )
        }
    }
}
