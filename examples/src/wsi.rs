//! Window-system integration for the `present` example: a window (or none, for headless
//! surfaces), an instance with the matching surface extension, a `VkSurfaceKHR`, a device with
//! `VK_KHR_swapchain`, and host-visible buffers.
//!
//! The window-system libraries (`libxcb.so.1`, `libX11.so.6`, `libwayland-client.so.0`) are
//! loaded at run time, so the examples build and run without their development packages and a
//! missing library is an error of the one mode that needs it.
//!
//! [`crate::Context`] creates its instance and device without extensions, so this module sets
//! up its own ([`WsiContext`]), with the same validation hookup: its messenger counts into
//! [`validation_message_count`], which `present` adds to [`crate::validation_message_count`].

pub mod wayland;
pub mod xcb;
pub mod xlib;

use std::ffi::{c_char, c_void, CStr};
use std::io::Write as _;
use std::ptr::NonNull;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use ash::vk;

use crate::context::VALIDATION_LAYER;
use crate::{find_memory_type, ErrorContext as _, MemoryUse, Result};

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

/// ERROR and WARNING messages received by [`WsiContext`]'s messenger in this process.
static VALIDATION_MESSAGES: AtomicU32 = AtomicU32::new(0);

/// Number of ERROR and WARNING messages [`WsiContext`]'s validation messenger has seen.
pub fn validation_message_count() -> u32 {
    VALIDATION_MESSAGES.load(Ordering::SeqCst)
}

/// Loader, instance, messenger and surface; destroyed in reverse order on drop.
struct InstanceHolder {
    entry: ash::Entry,
    instance: ash::Instance,
    debug: Option<(ash::ext::debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
    surface_fns: ash::khr::surface::Instance,
    surface: vk::SurfaceKHR,
}

impl Drop for InstanceHolder {
    fn drop(&mut self) {
        // SAFETY: the device and every swapchain were destroyed before (WsiContext::drop runs
        // first, swapchains borrow the context) (VUID-vkDestroySurfaceKHR-surface-01266,
        // VUID-vkDestroyInstance-instance-00629); each object is destroyed once. Destroying a
        // null surface is a no-op.
        unsafe {
            self.surface_fns.destroy_surface(self.surface, None);
            if let Some((loader, messenger)) = self.debug.take() {
                loader.destroy_debug_utils_messenger(messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}

/// An instance with a surface for a [`Window`], the first physical device, and a device with
/// `VK_KHR_swapchain` and one queue that supports transfers and presentation to the surface.
///
/// Dropping it waits for the device, then destroys device, surface, messenger and instance.
pub struct WsiContext<'w> {
    /// The logical device.
    pub device: ash::Device,
    /// `VK_KHR_swapchain`'s device functions.
    pub swapchain_fns: ash::khr::swapchain::Device,
    /// The physical device (the first one enumerated).
    pub physical_device: vk::PhysicalDevice,
    /// Its properties.
    pub properties: vk::PhysicalDeviceProperties,
    /// Its memory types.
    pub memory_properties: vk::PhysicalDeviceMemoryProperties,
    /// The queue family of [`WsiContext::queue`].
    pub queue_family: u32,
    /// A queue with graphics or compute (so transfers and clears) that can present.
    pub queue: vk::Queue,
    device_name: String,
    holder: InstanceHolder,
    window: &'w Window,
}

impl Drop for WsiContext<'_> {
    fn drop(&mut self) {
        // SAFETY: children borrow `self`, so they are gone; waiting makes sure no queue still
        // uses anything (VUID-vkDestroyDevice-device-00378). An error (device lost) leaves
        // nothing better to do than destroy anyway.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
        }
    }
}

impl<'w> WsiContext<'w> {
    /// Creates instance (with validation if asked), surface, and device for `window`.
    pub fn new(name: &str, validation: bool, window: &'w Window) -> Result<Self> {
        // SAFETY: loading libvulkan runs its initialisers; `Entry` keeps it loaded and lives in
        // the holder as long as the instance.
        let entry = unsafe { ash::Entry::load() }
            .map_err(|e| format!("cannot load the Vulkan loader (libvulkan.so.1): {e}"))?;
        let kind = window.kind();
        let mut layers: Vec<*const c_char> = Vec::new();
        let mut extensions: Vec<*const c_char> =
            vec![ash::khr::surface::NAME.as_ptr(), kind.extension().as_ptr()];
        let available = instance_extensions(&entry, validation)?;
        for wanted in [ash::khr::surface::NAME, kind.extension()] {
            if !available.iter().any(|e| e.as_c_str() == wanted) {
                return Err(format!(
                    "instance extension {} is not offered (vulkaninfo lists the instance \
                     extensions of the drivers)",
                    wanted.to_string_lossy()
                )
                .into());
            }
        }
        if validation {
            if !available
                .iter()
                .any(|e| e.as_c_str() == ash::ext::debug_utils::NAME)
            {
                return Err("--validation: VK_EXT_debug_utils is not available".into());
            }
            layers.push(VALIDATION_LAYER.as_ptr());
            extensions.push(ash::ext::debug_utils::NAME.as_ptr());
        }

        let app_name = std::ffi::CString::new(format!("vkfuse-example-{name}"))?;
        let app_info = vk::ApplicationInfo::default()
            .application_name(&app_name)
            .application_version(1)
            .engine_name(c"vkfuse-examples")
            .engine_version(1)
            .api_version(vk::API_VERSION_1_0);
        // Also chained into vkCreateInstance, so messages from instance creation and
        // destruction are counted too.
        let mut instance_messenger_info = messenger_create_info();
        let mut instance_info = vk::InstanceCreateInfo::default()
            .application_info(&app_info)
            .enabled_layer_names(&layers)
            .enabled_extension_names(&extensions);
        if validation {
            instance_info = instance_info.push_next(&mut instance_messenger_info);
        }
        // SAFETY: every pointer in instance_info points to locals that outlive the call; the
        // messenger callback is a valid `extern "system"` function.
        let instance =
            unsafe { entry.create_instance(&instance_info, None) }.context("vkCreateInstance")?;
        let surface_fns = ash::khr::surface::Instance::new(&entry, &instance);
        let mut holder = InstanceHolder {
            entry,
            instance,
            debug: None,
            surface_fns,
            surface: vk::SurfaceKHR::null(),
        };
        if validation {
            let loader = ash::ext::debug_utils::Instance::new(&holder.entry, &holder.instance);
            // SAFETY: VK_EXT_debug_utils is enabled; the callback is 'static.
            let messenger =
                unsafe { loader.create_debug_utils_messenger(&messenger_create_info(), None) }
                    .context("vkCreateDebugUtilsMessengerEXT")?;
            holder.debug = Some((loader, messenger));
        }
        holder.surface = window.create_surface(&holder.entry, &holder.instance)?;

        let instance = &holder.instance;
        // SAFETY: the instance is valid.
        let physical_devices = unsafe { instance.enumerate_physical_devices() }
            .context("vkEnumeratePhysicalDevices")?;
        let Some(&physical_device) = physical_devices.first() else {
            return Err(
                "no Vulkan physical device found (check VK_ICD_FILENAMES / the ICD manifest)"
                    .into(),
            );
        };
        // SAFETY: physical_device was just enumerated from this instance.
        let (properties, memory_properties, families) = unsafe {
            (
                instance.get_physical_device_properties(physical_device),
                instance.get_physical_device_memory_properties(physical_device),
                instance.get_physical_device_queue_family_properties(physical_device),
            )
        };
        let device_name = properties
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<unnamed>".to_owned());
        eprintln!(
            "vkfuse-example {name}: {} physical device(s) enumerated; using #0 \"{device_name}\" \
             (vendor 0x{:04x}, device 0x{:04x}, {:?})",
            physical_devices.len(),
            properties.vendor_id,
            properties.device_id,
            properties.device_type,
        );

        // SAFETY: plain query on the physical device.
        let device_extensions =
            unsafe { instance.enumerate_device_extension_properties(physical_device) }
                .context("vkEnumerateDeviceExtensionProperties")?;
        if !device_extensions
            .iter()
            .any(|e| e.extension_name_as_c_str() == Ok(ash::khr::swapchain::NAME))
        {
            return Err("device extension VK_KHR_swapchain is not offered".into());
        }

        let mut queue_family = None;
        for (i, f) in families.iter().enumerate() {
            let wanted = vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE;
            if f.queue_count == 0 || !f.queue_flags.intersects(wanted) {
                continue;
            }
            let index = i as u32;
            // SAFETY: the family index exists; the surface belongs to this instance.
            let supported = unsafe {
                holder.surface_fns.get_physical_device_surface_support(
                    physical_device,
                    index,
                    holder.surface,
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
        let device = unsafe { instance.create_device(physical_device, &device_info, None) }
            .context("vkCreateDevice")?;
        // SAFETY: queue 0 of queue_family was requested above.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        let swapchain_fns = ash::khr::swapchain::Device::new(instance, &device);
        Ok(Self {
            device,
            swapchain_fns,
            physical_device,
            properties,
            memory_properties,
            queue_family,
            queue,
            device_name,
            holder,
            window,
        })
    }

    /// `VkPhysicalDeviceProperties::deviceName`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The window the surface was made for.
    pub fn window(&self) -> &Window {
        self.window
    }

    /// The surface.
    pub fn surface(&self) -> vk::SurfaceKHR {
        self.holder.surface
    }

    /// `VK_KHR_surface`'s instance functions.
    pub fn surface_fns(&self) -> &ash::khr::surface::Instance {
        &self.holder.surface_fns
    }

    /// Creates a host-visible buffer of `size` bytes for `memory` (`Upload` or `Readback`),
    /// mapped for its lifetime.
    pub fn create_host_buffer(
        &self,
        size: vk::DeviceSize,
        usage: vk::BufferUsageFlags,
        memory: MemoryUse,
    ) -> Result<HostBuffer<'_>> {
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: a plain create call with a fully initialised create info.
        let handle = unsafe { self.device.create_buffer(&info, None) }.context("vkCreateBuffer")?;
        let mut buffer = HostBuffer {
            device: &self.device,
            handle,
            memory: vk::DeviceMemory::null(),
            size,
            coherent: false,
            mapped: NonNull::dangling(),
        };
        // SAFETY: the buffer was just created from this device.
        let requirements = unsafe { self.device.get_buffer_memory_requirements(handle) };
        let memory_type = find_memory_type(
            &self.memory_properties,
            requirements.memory_type_bits,
            memory.candidates(),
        )
        .ok_or_else(|| {
            format!(
                "no memory type in 0b{:b} suits {memory:?}",
                requirements.memory_type_bits
            )
        })?;
        let flags = self.memory_properties.memory_types[memory_type as usize].property_flags;
        if !flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE) {
            return Err(
                format!("memory type {memory_type} for {memory:?} is not host-visible").into(),
            );
        }
        buffer.coherent = flags.contains(vk::MemoryPropertyFlags::HOST_COHERENT);
        let allocate = vk::MemoryAllocateInfo::default()
            .allocation_size(requirements.size)
            .memory_type_index(memory_type);
        // SAFETY: the type index comes from this device's memory properties and the buffer's
        // memoryTypeBits; the size is the buffer's requirement. Drop frees it.
        buffer.memory =
            unsafe { self.device.allocate_memory(&allocate, None) }.context("vkAllocateMemory")?;
        // SAFETY: memory allocated for this buffer's requirements, offset 0.
        unsafe { self.device.bind_buffer_memory(handle, buffer.memory, 0) }
            .context("vkBindBufferMemory")?;
        // SAFETY: host-visible memory, not mapped yet, whole range.
        let ptr = unsafe {
            self.device.map_memory(
                buffer.memory,
                0,
                vk::WHOLE_SIZE,
                vk::MemoryMapFlags::empty(),
            )
        }
        .context("vkMapMemory")?;
        buffer.mapped = NonNull::new(ptr.cast::<u8>()).ok_or("vkMapMemory returned null")?;
        Ok(buffer)
    }
}

/// A mapped host-visible buffer with its own memory.
pub struct HostBuffer<'d> {
    device: &'d ash::Device,
    /// The buffer.
    pub handle: vk::Buffer,
    memory: vk::DeviceMemory,
    /// Its size.
    pub size: vk::DeviceSize,
    coherent: bool,
    mapped: NonNull<u8>,
}

impl Drop for HostBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: both were created from `device` and are destroyed once (null memory is a
        // no-op); pending work has completed (the owner waits for its fences, or for the
        // device on error paths, before dropping). Freeing the memory also unmaps it.
        unsafe {
            self.device.destroy_buffer(self.handle, None);
            self.device.free_memory(self.memory, None);
        }
    }
}

impl HostBuffer<'_> {
    fn whole_range(&self) -> vk::MappedMemoryRange<'static> {
        // Offset 0 and WHOLE_SIZE are always multiples of nonCoherentAtomSize.
        vk::MappedMemoryRange::default()
            .memory(self.memory)
            .offset(0)
            .size(vk::WHOLE_SIZE)
    }

    /// Copies `data` to the start of the buffer (flushing non-coherent memory). The device
    /// must not be using the buffer.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        if data.len() as u64 > self.size {
            return Err(format!("{} bytes do not fit in {} bytes", data.len(), self.size).into());
        }
        // SAFETY: the whole buffer is mapped and `data` fits; the device does not access it
        // concurrently (caller's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.mapped.as_ptr(), data.len());
        }
        if !self.coherent {
            // SAFETY: mapped memory, whole range.
            unsafe {
                self.device
                    .flush_mapped_memory_ranges(&[self.whole_range()])
            }
            .context("vkFlushMappedMemoryRanges")?;
        }
        Ok(())
    }

    /// Reads the first `len` bytes (invalidating non-coherent memory first). Device writes must
    /// have been made available to the host (barrier to `HOST_READ` and a fence wait).
    pub fn read(&self, len: usize) -> Result<Vec<u8>> {
        if len as u64 > self.size {
            return Err(format!("cannot read {len} bytes of {} bytes", self.size).into());
        }
        if !self.coherent {
            // SAFETY: mapped memory, whole range.
            unsafe {
                self.device
                    .invalidate_mapped_memory_ranges(&[self.whole_range()])
            }
            .context("vkInvalidateMappedMemoryRanges")?;
        }
        let mut out = vec![0u8; len];
        // SAFETY: the range lies in the mapping; the device is done writing (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(self.mapped.as_ptr(), out.as_mut_ptr(), len) };
        Ok(out)
    }
}

/// Instance extension names offered by the drivers (and by the validation layer if asked).
fn instance_extensions(entry: &ash::Entry, validation: bool) -> Result<Vec<ExtensionName>> {
    let mut names = Vec::new();
    let mut layers = vec![None];
    if validation {
        // SAFETY: plain query on the loader.
        let available = unsafe { entry.enumerate_instance_layer_properties() }
            .context("vkEnumerateInstanceLayerProperties")?;
        if !available
            .iter()
            .any(|l| l.layer_name_as_c_str() == Ok(VALIDATION_LAYER))
        {
            return Err(format!(
                "--validation: {} is not installed (Debian: apt-get install vulkan-validationlayers)",
                VALIDATION_LAYER.to_string_lossy()
            )
            .into());
        }
        layers.push(Some(VALIDATION_LAYER));
    }
    for layer in layers {
        // SAFETY: plain query on the loader; `layer` is a NUL-terminated name.
        let list = unsafe { entry.enumerate_instance_extension_properties(layer) }
            .context("vkEnumerateInstanceExtensionProperties")?;
        names.extend(list.iter().map(|e| ExtensionName(e.extension_name)));
    }
    Ok(names)
}

/// An extension name as the loader returns it.
struct ExtensionName([c_char; vk::MAX_EXTENSION_NAME_SIZE]);

impl ExtensionName {
    fn as_c_str(&self) -> &CStr {
        // The array is NUL-terminated (VkExtensionProperties valid usage); a malformed one
        // compares as empty.
        let bytes: &[u8] =
            // SAFETY: c_char and u8 have the same size and alignment.
            unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len()) };
        CStr::from_bytes_until_nul(bytes).unwrap_or(c"")
    }
}

fn messenger_create_info() -> vk::DebugUtilsMessengerCreateInfoEXT<'static> {
    vk::DebugUtilsMessengerCreateInfoEXT::default()
        .message_severity(
            vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
                | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING,
        )
        .message_type(
            vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                | vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
        )
        .pfn_user_callback(Some(debug_messenger_callback))
}

/// Counts ERROR and WARNING messages and prints each one to stderr.
unsafe extern "system" fn debug_messenger_callback(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user_data: *mut c_void,
) -> vk::Bool32 {
    if severity.intersects(
        vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
            | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING,
    ) {
        VALIDATION_MESSAGES.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: the layer passes null or callback data valid for this call whose strings are
    // null or NUL-terminated.
    let (id, message) = match unsafe { data.as_ref() } {
        Some(d) => {
            // SAFETY: as above.
            let (id, msg) = unsafe { (d.message_id_name_as_c_str(), d.message_as_c_str()) };
            (
                id.map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                msg.map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        }
        None => (String::new(), String::new()),
    };
    // Write errors are ignored, so no panic can unwind across this extern "system" boundary.
    let _ = writeln!(
        std::io::stderr(),
        "validation [{severity:?} {types:?}] {id}: {message}"
    );
    vk::FALSE
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
