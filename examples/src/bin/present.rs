//! `present`: presents N frames to a window-system surface (xcb, xlib, wayland, headless)
//! through a swapchain. Each acquired image is cleared to a frame-dependent colour and gets a
//! frame-dependent 32x32 block copied in from a buffer; the last frame is copied to a host
//! buffer before it is presented, compared with a CPU reference and hashed.
//!
//! Exactness: the clear colour's components are 0.0 or 1.0, which every UNORM or sRGB 8-bit
//! format stores as exactly 0 or 255, and the block is copied byte for byte, so the image is
//! known exactly once the format's byte order (BGRA or RGBA) is known.

use std::process::ExitCode;

use ash::vk;
use vkfuse_examples::cmd::{self, image_barrier};
use vkfuse_examples::wsi::{Window, WsiContext, WsiKind};
use vkfuse_examples::{
    example_main, fnv1a64, Args, Buffer, ErrorContext as _, Mismatch, Owned, Report, Result,
};

const NAME: &str = "present";
const USAGE: &str = "\
usage: present --wsi xcb|xlib|wayland|headless [--frames N] [--split] [--validation]

Creates a surface of the given kind (a 128x128 window on $DISPLAY for xcb and xlib, an
xdg_toplevel on $WAYLAND_DISPLAY for wayland, none for headless), a swapchain with FIFO
presentation, and presents N frames (default 5). Each frame clears the acquired image to a
frame-dependent colour and copies a 32x32 frame-dependent block into it; the last frame is read
back before it is presented, checked against a CPU reference and hashed:
  vkfuse-example present device=\"<name>\" result=<fnv1a64 of the last frame's pixel bytes>

The bytes are in the swapchain format's memory order (BGRA or RGBA, stderr says which), rows
top to bottom. Without TRANSFER_SRC swapchain usage there is no readback: the hash covers no
bytes (cbf29ce484222325).

  --wsi KIND        xcb (VK_KHR_xcb_surface), xlib (VK_KHR_xlib_surface), wayland
                    (VK_KHR_wayland_surface) or headless (VK_EXT_headless_surface)
  --frames N        frames to present (1..=10000, default 5)
  --split           two submits per frame: the clear (waiting for the acquire), then the
                    block, read-back and layout change (signalling the present's semaphore
                    and the fence)
  --validation      enable VK_LAYER_KHRONOS_validation (also VKFUSE_EXAMPLE_VALIDATION=1);
                    exit code 3 if it reports errors or warnings";

/// Window size asked for, and the swapchain size where the surface leaves it to the swapchain.
const SIZE: u16 = 128;
/// Side of the block copied into every frame (smaller if the image is).
const BLOCK: u32 = 32;

fn main() -> ExitCode {
    example_main(NAME, USAGE, run)
}

fn run(mut args: Args) -> Result<Report> {
    let kind: WsiKind = args
        .value("--wsi")?
        .ok_or("--wsi xcb|xlib|wayland|headless is required (try --help)")?;
    let frames: u32 = args.value("--frames")?.unwrap_or(5);
    let split = args.flag("--split");
    args.finish()?;
    if frames == 0 || frames > 10_000 {
        return Err(format!("--frames must be in 1..=10000, got {frames}").into());
    }
    // Declared first, dropped last: the surface made for it goes with the context.
    let window = Window::open(kind, SIZE, SIZE)?;
    let ctx = WsiContext::new(NAME, args.validation, &window)?;
    let hash = present(&ctx, frames, split)?;
    Ok(Report::Hash {
        device: ctx.device_name().to_owned(),
        hash,
    })
}

/// Memory order of the four 8-bit channels of the swapchain format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Bgra,
    Rgba,
}

/// Swapchain formats this example can check exactly, best first.
const FORMATS: [(vk::Format, Order); 6] = [
    (vk::Format::B8G8R8A8_UNORM, Order::Bgra),
    (vk::Format::R8G8B8A8_UNORM, Order::Rgba),
    (vk::Format::A8B8G8R8_UNORM_PACK32, Order::Rgba),
    (vk::Format::B8G8R8A8_SRGB, Order::Bgra),
    (vk::Format::R8G8B8A8_SRGB, Order::Rgba),
    (vk::Format::A8B8G8R8_SRGB_PACK32, Order::Rgba),
];

/// The clear colour of `frame` as RGBA with components 0 or 255 (never black, always opaque).
fn clear_rgba(frame: u32) -> [u8; 4] {
    let c = frame % 7 + 1;
    let bit = |b: u32| if c >> b & 1 != 0 { 255 } else { 0 };
    [bit(0), bit(1), bit(2), 255]
}

/// The clear colour's bytes in memory order.
fn clear_bytes(frame: u32, order: Order) -> [u8; 4] {
    let [r, g, b, a] = clear_rgba(frame);
    match order {
        Order::Bgra => [b, g, r, a],
        Order::Rgba => [r, g, b, a],
    }
}

/// Memory bytes of texel (x, y) of `frame`'s block; the fourth byte (alpha in every format of
/// [`FORMATS`]) is opaque.
fn block_texel(x: u32, y: u32, frame: u32) -> [u8; 4] {
    [
        (x * 8) as u8 ^ frame as u8,
        (y * 8) as u8 ^ frame.wrapping_mul(37) as u8,
        ((x + y) * 4) as u8,
        255,
    ]
}

/// Where `frame`'s block goes and its side, for an image of `extent`.
fn block_placement(frame: u32, extent: vk::Extent2D) -> (u32, u32, u32) {
    let side = BLOCK.min(extent.width).min(extent.height);
    let x = frame * 16 % (extent.width - side + 1);
    let y = frame * 8 % (extent.height - side + 1);
    (x, y, side)
}

fn block_bytes(frame: u32, side: u32) -> Vec<u8> {
    (0..side)
        .flat_map(|y| (0..side).flat_map(move |x| block_texel(x, y, frame)))
        .collect()
}

/// The image `frame` leaves: clear colour, then the block.
fn reference_image(frame: u32, extent: vk::Extent2D, order: Order) -> Vec<u8> {
    let (bx, by, side) = block_placement(frame, extent);
    let clear = clear_bytes(frame, order);
    let mut out = Vec::with_capacity(extent.width as usize * extent.height as usize * 4);
    for y in 0..extent.height {
        for x in 0..extent.width {
            if (bx..bx + side).contains(&x) && (by..by + side).contains(&y) {
                out.extend_from_slice(&block_texel(x - bx, y - by, frame));
            } else {
                out.extend_from_slice(&clear);
            }
        }
    }
    out
}

/// The swapchain, destroyed on drop (before the surface and device, which it borrows).
struct Swapchain<'c> {
    fns: &'c ash::khr::swapchain::Device,
    handle: vk::SwapchainKHR,
}

impl Drop for Swapchain<'_> {
    fn drop(&mut self) {
        // SAFETY: created from these functions' device; the idle wait that runs before (see
        // `WaitIdle`) means no presentation or command still uses its images.
        unsafe { self.fns.destroy_swapchain(self.handle, None) };
    }
}

/// What the swapchain was created with.
struct Setup {
    format: vk::SurfaceFormatKHR,
    order: Order,
    extent: vk::Extent2D,
    image_count: u32,
    usage: vk::ImageUsageFlags,
    composite_alpha: vk::CompositeAlphaFlagsKHR,
    transform: vk::SurfaceTransformFlagsKHR,
}

fn choose(ctx: &WsiContext<'_>) -> Result<Setup> {
    let (pd, surface, fns) = (ctx.physical_device, ctx.surface(), ctx.surface_fns());
    // SAFETY: plain queries on a physical device and surface of the same instance.
    let (caps, formats, modes) = unsafe {
        (
            fns.get_physical_device_surface_capabilities(pd, surface)
                .context("vkGetPhysicalDeviceSurfaceCapabilitiesKHR")?,
            fns.get_physical_device_surface_formats(pd, surface)
                .context("vkGetPhysicalDeviceSurfaceFormatsKHR")?,
            fns.get_physical_device_surface_present_modes(pd, surface)
                .context("vkGetPhysicalDeviceSurfacePresentModesKHR")?,
        )
    };
    eprintln!(
        "vkfuse-example {NAME}: surface: current extent {}x{}, extent {}x{}..{}x{}, images {}..{}, \
         usage {:?}, {} formats, present modes {modes:?}",
        caps.current_extent.width,
        caps.current_extent.height,
        caps.min_image_extent.width,
        caps.min_image_extent.height,
        caps.max_image_extent.width,
        caps.max_image_extent.height,
        caps.min_image_count,
        caps.max_image_count,
        caps.supported_usage_flags,
        formats.len(),
    );
    let (format, order) = FORMATS
        .iter()
        .find_map(|&(f, order)| {
            formats
                .iter()
                .find(|s| s.format == f && s.color_space == vk::ColorSpaceKHR::SRGB_NONLINEAR)
                .map(|s| (*s, order))
        })
        .ok_or_else(|| {
            format!("the surface offers no 8-bit RGBA/BGRA UNORM or sRGB format: {formats:?}")
        })?;
    if !modes.contains(&vk::PresentModeKHR::FIFO) {
        return Err(
            "the surface does not offer VK_PRESENT_MODE_FIFO_KHR, which is required".into(),
        );
    }
    let extent = if caps.current_extent.width == u32::MAX {
        vk::Extent2D {
            width: u32::from(SIZE).clamp(caps.min_image_extent.width, caps.max_image_extent.width),
            height: u32::from(SIZE)
                .clamp(caps.min_image_extent.height, caps.max_image_extent.height),
        }
    } else {
        caps.current_extent
    };
    if extent.width == 0 || extent.height == 0 {
        return Err("the surface has a zero extent (minimised window?)".into());
    }
    if !caps
        .supported_usage_flags
        .contains(vk::ImageUsageFlags::TRANSFER_DST)
    {
        return Err(
            "swapchain images do not support TRANSFER_DST usage, needed to clear them".into(),
        );
    }
    let mut usage = vk::ImageUsageFlags::TRANSFER_DST;
    if caps
        .supported_usage_flags
        .contains(vk::ImageUsageFlags::TRANSFER_SRC)
    {
        usage |= vk::ImageUsageFlags::TRANSFER_SRC;
    }
    let mut image_count = caps.min_image_count + 1;
    if caps.max_image_count != 0 {
        image_count = image_count.min(caps.max_image_count);
    }
    let supported_alpha = caps.supported_composite_alpha;
    let composite_alpha = if supported_alpha.contains(vk::CompositeAlphaFlagsKHR::OPAQUE) {
        vk::CompositeAlphaFlagsKHR::OPAQUE
    } else {
        // The lowest supported bit; at least one is (VkSurfaceCapabilitiesKHR valid usage).
        vk::CompositeAlphaFlagsKHR::from_raw(
            supported_alpha.as_raw() & supported_alpha.as_raw().wrapping_neg(),
        )
    };
    Ok(Setup {
        format,
        order,
        extent,
        image_count,
        usage,
        composite_alpha,
        transform: caps.current_transform,
    })
}

/// Creates the swapchain, presents `frames` frames and returns the hash of the last one.
fn present(ctx: &WsiContext<'_>, frames: u32, split: bool) -> Result<u64> {
    let setup = choose(ctx)?;
    let readback = setup.usage.contains(vk::ImageUsageFlags::TRANSFER_SRC);
    let extent = setup.extent;
    let d = &ctx.device;

    let info = vk::SwapchainCreateInfoKHR::default()
        .surface(ctx.surface())
        .min_image_count(setup.image_count)
        .image_format(setup.format.format)
        .image_color_space(setup.format.color_space)
        .image_extent(extent)
        .image_array_layers(1)
        .image_usage(setup.usage)
        .image_sharing_mode(vk::SharingMode::EXCLUSIVE)
        .pre_transform(setup.transform)
        .composite_alpha(setup.composite_alpha)
        .present_mode(vk::PresentModeKHR::FIFO)
        .clipped(true);
    // SAFETY: the values were chosen from this surface's capabilities, formats and present
    // modes; the queue family can present to it (WsiContext checked).
    let handle = unsafe { ctx.swapchain_fns.create_swapchain(&info, None) }
        .context("vkCreateSwapchainKHR")?;
    let swapchain = Swapchain {
        fns: &ctx.swapchain_fns,
        handle,
    };
    // SAFETY: a live swapchain of this device.
    let images = unsafe { ctx.swapchain_fns.get_swapchain_images(swapchain.handle) }
        .context("vkGetSwapchainImagesKHR")?;
    eprintln!(
        "vkfuse-example {NAME}: swapchain {:?} ({:?} byte order) {}x{}, {} images (asked {}), \
         FIFO, usage {:?}, composite alpha {:?}; {}",
        setup.format.format,
        setup.order,
        extent.width,
        extent.height,
        images.len(),
        setup.image_count,
        setup.usage,
        setup.composite_alpha,
        if readback {
            "result= covers the last frame's pixel bytes"
        } else {
            "no TRANSFER_SRC usage: no readback, result= covers no bytes"
        },
    );

    let pool = ctx.create_command_pool(
        ctx.queue_family,
        vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
    )?;
    let fence = ctx.create_fence(false)?;
    let acquired = ctx.create_semaphore()?;
    // One "rendering done" semaphore per image: acquiring an image again means its previous
    // presentation, and so that wait, has completed, so the semaphore can be signalled again.
    let rendered: Vec<Owned<'_, vk::Semaphore>> = images
        .iter()
        .map(|_| ctx.create_semaphore())
        .collect::<Result<_>>()?;
    let cb = ctx.allocate_primary(&pool)?;
    // With --split, the clear goes in a submit of its own.
    let clear_cb = ctx.allocate_primary(&pool)?;

    let side = block_placement(0, extent).2;
    let upload = ctx.create_upload_buffer(u64::from(side) * u64::from(side) * 4)?;
    let image_bytes = extent.width as usize * extent.height as usize * 4;
    let readback_buffer: Option<Buffer<'_>> = if readback {
        Some(ctx.create_readback_buffer(image_bytes as u64)?)
    } else {
        None
    };
    // Dropped before everything above.
    let _idle = ctx.idle_guard();

    let color = vk::ImageAspectFlags::COLOR;
    let transfer_write = cmd::TRANSFER_WRITE;
    let mut suboptimal_seen = false;
    for frame in 0..frames {
        ctx.window().dispatch_pending();
        // SAFETY: the swapchain is live; `acquired` is unsignalled with no pending operation
        // (the previous frame's submission that waited on it has completed: fence wait below).
        let (index, suboptimal) = match unsafe {
            ctx.swapchain_fns.acquire_next_image(
                swapchain.handle,
                u64::MAX,
                *acquired,
                vk::Fence::null(),
            )
        } {
            Ok(r) => r,
            Err(vk::Result::ERROR_OUT_OF_DATE_KHR) => {
                return Err(
                    "vkAcquireNextImageKHR: the surface changed (ERROR_OUT_OF_DATE_KHR); \
                     the window must keep its size while presenting"
                        .into(),
                )
            }
            Err(e) => return Err(format!("vkAcquireNextImageKHR failed: {e}").into()),
        };
        suboptimal_seen |= suboptimal;
        let image = *images
            .get(index as usize)
            .ok_or_else(|| format!("vkAcquireNextImageKHR returned index {index}"))?;
        let (bx, by, side) = block_placement(frame, extent);
        upload.write_bytes(0, &block_bytes(frame, side))?;
        let last = frame + 1 == frames;

        // SAFETY: cb is not in use (previous submission waited for), recorded outside a render
        // pass on a graphics- or compute-capable queue family (clears and copies allowed);
        // `image` is the acquired swapchain image with TRANSFER_DST (and TRANSFER_SRC when
        // reading back) usage; regions lie inside the image and the buffers.
        unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .context("vkResetCommandBuffer")?;
            d.reset_command_buffer(clear_cb, vk::CommandBufferResetFlags::empty())
                .context("vkResetCommandBuffer")?;
            let first = if split { clear_cb } else { cb };
            cmd::begin(d, first, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            // The submission waits for `acquired` at TRANSFER, which this barrier's source
            // scope chains with; the old contents are discarded.
            image_barrier(
                d,
                first,
                image,
                color,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                (vk::PipelineStageFlags::TRANSFER, vk::AccessFlags::empty()),
                transfer_write,
            );
            let [r, g, b, a] = clear_rgba(frame).map(|c| f32::from(c) / 255.0);
            d.cmd_clear_color_image(
                first,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &vk::ClearColorValue {
                    float32: [r, g, b, a],
                },
                &[vkfuse_examples::subresource_range(color)],
            );
            if split {
                // The rest in the second submit; its barrier below orders it after the clear
                // (earlier submissions on the queue are in its first scope).
                cmd::end(d, clear_cb)?;
                cmd::begin(d, cb, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            }
            // The block overwrites part of the clear: write after write.
            image_barrier(
                d,
                cb,
                image,
                color,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                transfer_write,
                transfer_write,
            );
            d.cmd_copy_buffer_to_image(
                cb,
                upload.handle,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &[cmd::color_copy(
                    vk::Offset2D {
                        x: bx as i32,
                        y: by as i32,
                    },
                    vk::Extent2D {
                        width: side,
                        height: side,
                    },
                )],
            );
            match (&readback_buffer, last) {
                (Some(buffer), true) => {
                    image_barrier(
                        d,
                        cb,
                        image,
                        color,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        transfer_write,
                        cmd::TRANSFER_READ,
                    );
                    cmd::copy_image_to_host(d, cb, image, extent, buffer.handle);
                    // Reads before the presentation engine's access: an execution dependency
                    // is enough (write-after-read).
                    image_barrier(
                        d,
                        cb,
                        image,
                        color,
                        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                        vk::ImageLayout::PRESENT_SRC_KHR,
                        (vk::PipelineStageFlags::TRANSFER, vk::AccessFlags::empty()),
                        (
                            vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                            vk::AccessFlags::empty(),
                        ),
                    );
                }
                _ => {
                    // vkQueuePresentKHR's semaphore wait makes the writes visible to the
                    // presentation engine; no destination access is needed.
                    image_barrier(
                        d,
                        cb,
                        image,
                        color,
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        vk::ImageLayout::PRESENT_SRC_KHR,
                        transfer_write,
                        (
                            vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                            vk::AccessFlags::empty(),
                        ),
                    );
                }
            }
            cmd::end(d, cb)?;
        }

        let rendered_sem = *rendered[index as usize];
        let wait = [*acquired];
        let wait_stages = [vk::PipelineStageFlags::TRANSFER];
        let signal = [rendered_sem];
        let cbs = [cb];
        let submit = vk::SubmitInfo::default()
            .command_buffers(&cbs)
            .signal_semaphores(&signal);
        let submit = if split {
            let clear_cbs = [clear_cb];
            let clear = vk::SubmitInfo::default()
                .wait_semaphores(&wait)
                .wait_dst_stage_mask(&wait_stages)
                .command_buffers(&clear_cbs);
            // SAFETY: as below; the clear's own submit, before the rest of the frame.
            unsafe { d.queue_submit(ctx.queue, &[clear], vk::Fence::null()) }
                .context("vkQueueSubmit")?;
            submit
        } else {
            submit
                .wait_semaphores(&wait)
                .wait_dst_stage_mask(&wait_stages)
        };
        // SAFETY: the command buffers are executable; the semaphores and fence are unsignalled
        // with no pending operations; all arrays outlive the call.
        unsafe { d.queue_submit(ctx.queue, &[submit], *fence) }.context("vkQueueSubmit")?;

        let swapchains = [swapchain.handle];
        let indices = [index];
        let present_info = vk::PresentInfoKHR::default()
            .wait_semaphores(&signal)
            .swapchains(&swapchains)
            .image_indices(&indices);
        // SAFETY: the image was acquired and is transitioned to PRESENT_SRC_KHR by the
        // submission that signals the semaphore waited for here; the queue can present.
        match unsafe { ctx.swapchain_fns.queue_present(ctx.queue, &present_info) } {
            Ok(suboptimal) => suboptimal_seen |= suboptimal,
            Err(e) => return Err(format!("vkQueuePresentKHR failed: {e}").into()),
        }
        ctx.wait_and_reset_fence(&fence)?;
    }
    if suboptimal_seen {
        eprintln!("vkfuse-example {NAME}: note: the swapchain was reported suboptimal");
    }

    let bytes = match &readback_buffer {
        Some(buffer) => {
            let got = buffer.read_bytes(0, image_bytes)?;
            let want = reference_image(frames - 1, extent, setup.order);
            if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
                let pixel = i / 4;
                let bytes = pixel * 4..pixel * 4 + 4;
                return Err(Box::new(Mismatch(format!(
                    "pixel ({}, {}) of the last frame is {:?}, expected {:?}",
                    pixel % extent.width as usize,
                    pixel / extent.width as usize,
                    &got[bytes.clone()],
                    &want[bytes]
                ))));
            }
            got
        }
        None => Vec::new(),
    };
    Ok(fnv1a64(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_has_block_and_clear() {
        let extent = vk::Extent2D {
            width: 64,
            height: 40,
        };
        let img = reference_image(2, extent, Order::Bgra);
        assert_eq!(img.len(), 64 * 40 * 4);
        let (bx, by, side) = block_placement(2, extent);
        assert_eq!((bx, by, side), (32, 7, 32)); // y: 16 % (40 - 32 + 1)
                                                 // Frame 2: c = 3, red and green on, in BGRA order.
        assert_eq!(&img[..4], &[0, 255, 255, 255]);
        let at = ((by * 64 + bx) * 4) as usize;
        assert_eq!(&img[at..at + 4], &block_texel(0, 0, 2));
        assert!(clear_rgba(6) != [0, 0, 0, 255]);
    }
}
