//! Window-system integration for the `present` example: a window (or none, for headless
//! surfaces), an instance with the matching surface extension, a `VkSurfaceKHR` and a device with
//! `VK_KHR_swapchain`.
//!
//! The window-system libraries (`libxcb.so.1`, `libX11.so.6`, `libwayland-client.so.0`) are
//! loaded at run time, so the examples build and run without their development packages and a
//! missing library is an error of the one mode that needs it.
//!
//! [`crate::Context`] creates its instance and device without extensions, so this module sets
//! up its own ([`WsiContext`]) from the same parts: the instance (with the same validation
//! hookup, counting into [`crate::validation_message_count`]), the first physical device, and
//! the [`DeviceContext`] with the creation helpers.

pub mod wayland;
pub mod xcb;
pub mod xlib;

use std::ffi::CStr;
use std::str::FromStr;

use ash::vk;

use crate::context::InstanceHolder;
use crate::{DeviceContext, ErrorContext as _, Result};

/// Which kind of surface to present to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsiKind {
    /// `VK_KHR_xcb_surface` on an X11 window made through XCB (`$DISPLAY`).
    Xcb,
    /// `VK_KHR_xlib_surface` on an X11 window made through Xlib (`$DISPLAY`).
    Xlib,
    /// `VK_KHR_wayland_surface` on an `xdg_toplevel` (`$WAYLAND_DISPLAY`).
    Wayland,
    /// `VK_EXT_headless_surface`: no window system.
    Headless,
}

impl FromStr for WsiKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xcb" => Ok(Self::Xcb),
            "xlib" => Ok(Self::Xlib),
            "wayland" => Ok(Self::Wayland),
            "headless" => Ok(Self::Headless),
            _ => Err("expected xcb, xlib, wayland or headless".into()),
        }
    }
}

impl WsiKind {
    /// The instance extension that creates this kind of surface.
    pub fn extension(self) -> &'static CStr {
        match self {
            Self::Xcb => ash::khr::xcb_surface::NAME,
            Self::Xlib => ash::khr::xlib_surface::NAME,
            Self::Wayland => ash::khr::wayland_surface::NAME,
            Self::Headless => ash::ext::headless_surface::NAME,
        }
    }
}

/// A window of the chosen window system (nothing for headless surfaces).
pub enum Window {
    /// An X11 window through XCB.
    Xcb(xcb::XcbWindow),
    /// An X11 window through Xlib.
    Xlib(xlib::XlibWindow),
    /// A Wayland toplevel.
    Wayland(wayland::WaylandWindow),
    /// No window.
    Headless,
}

impl Window {
    /// Opens a `width`x`height` window (Wayland: sized by what is presented to it).
    pub fn open(kind: WsiKind, width: u16, height: u16) -> Result<Self> {
        Ok(match kind {
            WsiKind::Xcb => Self::Xcb(xcb::XcbWindow::open(width, height)?),
            WsiKind::Xlib => {
                Self::Xlib(xlib::XlibWindow::open(u32::from(width), u32::from(height))?)
            }
            WsiKind::Wayland => Self::Wayland(wayland::WaylandWindow::open()?),
            WsiKind::Headless => Self::Headless,
        })
    }

    /// The kind of surface this window takes.
    pub fn kind(&self) -> WsiKind {
        match self {
            Self::Xcb(_) => WsiKind::Xcb,
            Self::Xlib(_) => WsiKind::Xlib,
            Self::Wayland(_) => WsiKind::Wayland,
            Self::Headless => WsiKind::Headless,
        }
    }

    /// Handles pending window-system events without blocking (Wayland pings).
    pub fn dispatch_pending(&self) {
        if let Self::Wayland(w) = self {
            w.dispatch_pending();
        }
    }

    /// Creates a surface for this window on `instance`, whose surface extension must be
    /// enabled.
    fn create_surface(
        &self,
        entry: &ash::Entry,
        instance: &ash::Instance,
    ) -> Result<vk::SurfaceKHR> {
        // In every arm: the instance was created with the arm's extension enabled
        // (WsiContext::new enables `self.kind().extension()`), the window-system handles are
        // live, and the window outlives the surface (WsiContext borrows the window)
        // (VUID-vkCreate*SurfaceKHR-*-parameter).
        let surface = match self {
            Self::Xcb(w) => {
                let info = vk::XcbSurfaceCreateInfoKHR::default()
                    .connection(w.connection())
                    .window(w.window());
                // SAFETY: see above.
                unsafe {
                    ash::khr::xcb_surface::Instance::new(entry, instance)
                        .create_xcb_surface(&info, None)
                }
                .context("vkCreateXcbSurfaceKHR")?
            }
            Self::Xlib(w) => {
                let info = vk::XlibSurfaceCreateInfoKHR::default()
                    .dpy(w.display())
                    .window(w.window());
                // SAFETY: see above.
                unsafe {
                    ash::khr::xlib_surface::Instance::new(entry, instance)
                        .create_xlib_surface(&info, None)
                }
                .context("vkCreateXlibSurfaceKHR")?
            }
            Self::Wayland(w) => {
                let info = vk::WaylandSurfaceCreateInfoKHR::default()
                    .display(w.display())
                    .surface(w.surface());
                // SAFETY: see above.
                unsafe {
                    ash::khr::wayland_surface::Instance::new(entry, instance)
                        .create_wayland_surface(&info, None)
                }
                .context("vkCreateWaylandSurfaceKHR")?
            }
            Self::Headless => {
                let info = vk::HeadlessSurfaceCreateInfoEXT::default();
                // SAFETY: see above.
                unsafe {
                    ash::ext::headless_surface::Instance::new(entry, instance)
                        .create_headless_surface(&info, None)
                }
                .context("vkCreateHeadlessSurfaceEXT")?
            }
        };
        Ok(surface)
    }
}

/// A surface, destroyed on drop (before the instance: [`WsiContext`] declares it before the
/// instance holder).
struct Surface {
    fns: ash::khr::surface::Instance,
    handle: vk::SurfaceKHR,
}

impl Drop for Surface {
    fn drop(&mut self) {
        // SAFETY: the device and every swapchain were destroyed before (WsiContext::drop runs
        // first, swapchains borrow the context) (VUID-vkDestroySurfaceKHR-surface-01266); the
        // surface is destroyed once, before its instance.
        unsafe { self.fns.destroy_surface(self.handle, None) };
    }
}

/// An instance with a surface for a [`Window`], the first physical device, and a device with
/// `VK_KHR_swapchain` and one queue that supports transfers and presentation to the surface.
///
/// It dereferences to the [`DeviceContext`] with the creation helpers. Dropping it waits for
/// the device, then destroys device, surface, messenger and instance.
pub struct WsiContext<'w> {
    base: DeviceContext,
    /// `VK_KHR_swapchain`'s device functions.
    pub swapchain_fns: ash::khr::swapchain::Device,
    /// The queue family of [`WsiContext::queue`].
    pub queue_family: u32,
    /// A queue with graphics or compute (so transfers and clears) that can present.
    pub queue: vk::Queue,
    surface: Surface,
    /// Kept for its `Drop`: instance and messenger go after the surface.
    _instance: InstanceHolder,
    window: &'w Window,
}

impl std::ops::Deref for WsiContext<'_> {
    type Target = DeviceContext;

    fn deref(&self) -> &DeviceContext {
        &self.base
    }
}

impl Drop for WsiContext<'_> {
    fn drop(&mut self) {
        // SAFETY: children borrow `self`, so they are gone; waiting makes sure no queue still
        // uses anything (VUID-vkDestroyDevice-device-00378). An error (device lost) leaves
        // nothing better to do than destroy anyway.
        unsafe {
            let _ = self.base.device.device_wait_idle();
            self.base.device.destroy_device(None);
        }
    }
}

impl<'w> WsiContext<'w> {
    /// Creates instance (with validation if asked), surface, and device for `window`.
    pub fn new(name: &str, validation: bool, window: &'w Window) -> Result<Self> {
        let kind = window.kind();
        let holder = InstanceHolder::new(
            name,
            validation,
            &[ash::khr::surface::NAME, kind.extension()],
            vk::API_VERSION_1_0,
        )?;
        let surface = Surface {
            fns: ash::khr::surface::Instance::new(&holder.entry, &holder.instance),
            handle: window.create_surface(&holder.entry, &holder.instance)?,
        };

        let physical = holder.first_physical_device()?;
        let properties = &physical.properties;
        eprintln!(
            "vkfuse-example {name}: {} physical device(s) enumerated; using #0 \"{}\" \
             (vendor 0x{:04x}, device 0x{:04x}, {:?})",
            physical.enumerated,
            physical.name,
            properties.vendor_id,
            properties.device_id,
            properties.device_type,
        );

        let instance = &holder.instance;
        // SAFETY: plain query on the physical device.
        let device_extensions =
            unsafe { instance.enumerate_device_extension_properties(physical.handle) }
                .context("vkEnumerateDeviceExtensionProperties")?;
        if !device_extensions
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(ash::khr::swapchain::NAME))
        {
            return Err("device extension VK_KHR_swapchain is not offered".into());
        }

        let mut queue_family = None;
        for (i, f) in physical.queue_families.iter().enumerate() {
            let wanted = vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE;
            if f.queue_count == 0 || !f.queue_flags.intersects(wanted) {
                continue;
            }
            let index = i as u32;
            // SAFETY: the family index exists; the surface belongs to this instance.
            let supported = unsafe {
                surface.fns.get_physical_device_surface_support(
                    physical.handle,
                    index,
                    surface.handle,
                )
            }
            .context("vkGetPhysicalDeviceSurfaceSupportKHR")?;
            if supported {
                queue_family = Some(index);
                break;
            }
        }
        let queue_family =
            queue_family.ok_or("no graphics or compute queue family can present to the surface")?;

        let priorities = [1.0f32];
        let queue_infos = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        let device_extension_names = [ash::khr::swapchain::NAME.as_ptr()];
        let device_info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queue_infos)
            .enabled_extension_names(&device_extension_names);
        // SAFETY: an existing family with one queue; VK_KHR_swapchain is offered (checked);
        // all pointers point to locals that outlive the call.
        let device = unsafe { instance.create_device(physical.handle, &device_info, None) }
            .context("vkCreateDevice")?;
        // SAFETY: queue 0 of queue_family was requested above.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        let swapchain_fns = ash::khr::swapchain::Device::new(instance, &device);
        Ok(Self {
            base: DeviceContext::new(device, &physical),
            swapchain_fns,
            queue_family,
            queue,
            surface,
            _instance: holder,
            window,
        })
    }

    /// The window the surface was made for.
    pub fn window(&self) -> &Window {
        self.window
    }

    /// The surface.
    pub fn surface(&self) -> vk::SurfaceKHR {
        self.surface.handle
    }

    /// `VK_KHR_surface`'s instance functions.
    pub fn surface_fns(&self) -> &ash::khr::surface::Instance {
        &self.surface.fns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!("xcb".parse::<WsiKind>(), Ok(WsiKind::Xcb));
        assert_eq!("headless".parse::<WsiKind>(), Ok(WsiKind::Headless));
        assert!("x11".parse::<WsiKind>().is_err());
        assert_eq!(WsiKind::Wayland.extension(), c"VK_KHR_wayland_surface");
    }
}
