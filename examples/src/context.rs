//! Instance and device setup, validation hookup and queue selection.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use ash::vk;

use crate::{ErrorContext as _, Result};

/// The Khronos validation layer.
pub const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// ERROR and WARNING messages received by the debug messenger in this process.
static VALIDATION_MESSAGES: AtomicU32 = AtomicU32::new(0);

/// Number of ERROR and WARNING messages the validation messenger has seen so far.
pub fn validation_message_count() -> u32 {
    VALIDATION_MESSAGES.load(Ordering::SeqCst)
}

/// Which queues the device is created with.
#[derive(Clone, Copy, Debug)]
pub enum QueuePlan {
    /// One queue of the first family whose flags contain these.
    One(vk::QueueFlags),
    /// Up to `max_per_family` queues of every family that supports compute or transfer
    /// (graphics and compute families support transfer implicitly).
    AllComputeOrTransfer {
        /// Upper bound on queues created per family.
        max_per_family: u32,
    },
}

/// What [`Context::new`] sets up.
#[derive(Clone, Copy, Debug)]
pub struct ContextDesc<'a> {
    /// Example name, used in the application name and in log lines.
    pub name: &'a str,
    /// Enable `VK_LAYER_KHRONOS_validation` and a `VK_EXT_debug_utils` messenger.
    pub validation: bool,
    /// Queues to create.
    pub queues: QueuePlan,
    /// Enable timeline semaphores (`VK_KHR_timeline_semaphore` and its feature).
    pub timeline: bool,
}

/// One queue the device was created with.
#[derive(Clone, Copy, Debug)]
pub struct QueueInfo {
    /// Queue family index.
    pub family: u32,
    /// Index within the family.
    pub index: u32,
    /// The family's capabilities.
    pub flags: vk::QueueFlags,
    /// The queue.
    pub handle: vk::Queue,
}

/// Loader, instance and (optional) debug messenger; destroyed in reverse order on drop.
pub(crate) struct InstanceHolder {
    pub(crate) entry: ash::Entry,
    pub(crate) instance: ash::Instance,
    debug: Option<(ash::ext::debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
}

impl Drop for InstanceHolder {
    fn drop(&mut self) {
        if let Some((loader, messenger)) = self.debug.take() {
            // SAFETY: the messenger was created from this instance and is destroyed once; no
            // other thread uses the instance during drop (VUID-vkDestroyDebugUtilsMessengerEXT-messenger-parameter).
            unsafe { loader.destroy_debug_utils_messenger(messenger, None) };
        }
        // SAFETY: every child (device, surface, messenger) has been destroyed before this
        // point: the device by the owning context's `Drop`, which runs before its fields drop,
        // and a surface by a field declared before the holder
        // (VUID-vkDestroyInstance-instance-00629).
        unsafe { self.instance.destroy_instance(None) };
    }
}

impl InstanceHolder {
    /// Loads the Vulkan loader and creates an instance for example `name` with `extensions`
    /// (each checked to be offered) and, with `validation`, `VK_LAYER_KHRONOS_validation`,
    /// `VK_EXT_debug_utils` and a messenger counting into [`validation_message_count`].
    pub(crate) fn new(
        name: &str,
        validation: bool,
        extensions: &[&CStr],
        api_version: u32,
    ) -> Result<Self> {
        // SAFETY: loading libvulkan runs its initialisers; the loader is the system's own and
        // the library stays loaded as long as `Entry` (kept in the holder) lives.
        let entry = unsafe { ash::Entry::load() }
            .map_err(|e| format!("cannot load the Vulkan loader (libvulkan.so.1): {e}"))?;

        let mut layers: Vec<*const c_char> = Vec::new();
        let mut enabled: Vec<*const c_char> = extensions.iter().map(|e| e.as_ptr()).collect();
        if validation || !extensions.is_empty() {
            let available = instance_extensions(&entry, validation)?;
            let offered = |wanted: &CStr| available.iter().any(|e| e.as_c_str() == wanted);
            for &wanted in extensions {
                if !offered(wanted) {
                    return Err(format!(
                        "instance extension {} is not offered (vulkaninfo lists the instance \
                         extensions of the drivers)",
                        wanted.to_string_lossy()
                    )
                    .into());
                }
            }
            if validation {
                if !offered(ash::ext::debug_utils::NAME) {
                    return Err("--validation: VK_EXT_debug_utils is not available".into());
                }
                layers.push(VALIDATION_LAYER.as_ptr());
                enabled.push(ash::ext::debug_utils::NAME.as_ptr());
            }
        }

        let app_name = CString::new(format!("vkfuse-example-{name}"))?;
        let app_info = vk::ApplicationInfo::default()
            .application_name(&app_name)
            .application_version(1)
            .engine_name(c"vkfuse-examples")
            .engine_version(1)
            .api_version(api_version);
        // Also chained into vkCreateInstance, so messages from instance creation and
        // destruction are counted too.
        let mut instance_messenger_info = messenger_create_info();
        let mut instance_info = vk::InstanceCreateInfo::default()
            .application_info(&app_info)
            .enabled_layer_names(&layers)
            .enabled_extension_names(&enabled);
        if validation {
            instance_info = instance_info.push_next(&mut instance_messenger_info);
        }
        // SAFETY: every pointer in instance_info (names, app info, pNext) points to locals that
        // outlive the call; the messenger callback is a valid `extern "system"` function.
        let instance = match unsafe { entry.create_instance(&instance_info, None) } {
            Ok(instance) => instance,
            Err(vk::Result::ERROR_INCOMPATIBLE_DRIVER) => {
                return Err("vkCreateInstance failed: no usable Vulkan driver \
                            (ERROR_INCOMPATIBLE_DRIVER; check VK_ICD_FILENAMES / the ICD manifests)"
                    .into())
            }
            Err(e) => return Err(format!("vkCreateInstance failed: {e}").into()),
        };
        let mut holder = Self {
            entry,
            instance,
            debug: None,
        };

        if validation {
            let loader = ash::ext::debug_utils::Instance::new(&holder.entry, &holder.instance);
            // SAFETY: VK_EXT_debug_utils was enabled on this instance; the create info holds no
            // pointers besides the callback, which is 'static.
            let messenger =
                unsafe { loader.create_debug_utils_messenger(&messenger_create_info(), None) }
                    .context("vkCreateDebugUtilsMessengerEXT")?;
            holder.debug = Some((loader, messenger));
        }
        Ok(holder)
    }

    /// The first physical device and what the examples need to know about it.
    pub(crate) fn first_physical_device(&self) -> Result<PhysicalDevice> {
        let instance = &self.instance;
        // SAFETY: the instance is valid.
        let physical_devices = unsafe { instance.enumerate_physical_devices() }
            .context("vkEnumeratePhysicalDevices")?;
        let Some(&handle) = physical_devices.first() else {
            return Err(
                "no Vulkan physical device found (check VK_ICD_FILENAMES / the ICD manifest)"
                    .into(),
            );
        };
        // SAFETY: handle was just enumerated from this instance.
        let (properties, memory_properties, queue_families) = unsafe {
            (
                instance.get_physical_device_properties(handle),
                instance.get_physical_device_memory_properties(handle),
                instance.get_physical_device_queue_family_properties(handle),
            )
        };
        let name = properties
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<unnamed>".to_owned());
        Ok(PhysicalDevice {
            handle,
            enumerated: physical_devices.len(),
            properties,
            memory_properties,
            queue_families,
            name,
        })
    }
}

/// The physical device an example runs on (the first one enumerated).
pub(crate) struct PhysicalDevice {
    pub(crate) handle: vk::PhysicalDevice,
    /// How many physical devices were enumerated.
    pub(crate) enumerated: usize,
    pub(crate) properties: vk::PhysicalDeviceProperties,
    pub(crate) memory_properties: vk::PhysicalDeviceMemoryProperties,
    pub(crate) queue_families: Vec<vk::QueueFamilyProperties>,
    pub(crate) name: String,
}

/// A logical device and what the creation helpers (see `resources.rs`) need to know about its
/// physical device. [`Context`] and [`crate::wsi::WsiContext`] dereference to it; they destroy
/// the device.
pub struct DeviceContext {
    /// The logical device.
    pub device: ash::Device,
    /// The physical device it was created on (the first one enumerated).
    pub physical_device: vk::PhysicalDevice,
    /// Its properties.
    pub properties: vk::PhysicalDeviceProperties,
    /// Its memory types and heaps.
    pub memory_properties: vk::PhysicalDeviceMemoryProperties,
    device_name: String,
}

impl DeviceContext {
    pub(crate) fn new(device: ash::Device, physical: &PhysicalDevice) -> Self {
        Self {
            device,
            physical_device: physical.handle,
            properties: physical.properties,
            memory_properties: physical.memory_properties,
            device_name: physical.name.clone(),
        }
    }

    /// `VkPhysicalDeviceProperties::deviceName`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }
}

/// A Vulkan instance with the first physical device and a logical device on it.
///
/// Objects created from its device ([`DeviceContext::device`]) borrow the context (see [`crate::Owned`]), so they
/// are destroyed before it; dropping the context waits for the device to be idle, then destroys
/// the device, the messenger and the instance. The creation helpers come from
/// [`DeviceContext`], which it dereferences to.
pub struct Context {
    base: DeviceContext,
    /// Its queue families.
    pub queue_families: Vec<vk::QueueFamilyProperties>,
    /// The queues created, ordered by family then index.
    pub queues: Vec<QueueInfo>,
    holder: InstanceHolder,
}

impl std::ops::Deref for Context {
    type Target = DeviceContext;

    fn deref(&self) -> &DeviceContext {
        &self.base
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the device is valid until destroy_device below; waiting for idle makes sure no
        // queue still uses an object when the device goes (VUID-vkDestroyDevice-device-00378
        // is the caller's side: children borrow `self`, so they are already destroyed).
        unsafe {
            // An error here (device lost) leaves nothing better to do than destroy anyway.
            let _ = self.base.device.device_wait_idle();
            self.base.device.destroy_device(None);
        }
    }
}

impl Context {
    /// Loads the Vulkan loader, creates an instance (with validation if asked), picks the first
    /// physical device and creates a device with the queues of `desc.queues`.
    pub fn new(desc: &ContextDesc<'_>) -> Result<Self> {
        // Timeline semaphores are core in Vulkan 1.2 (with their feature enabled).
        let api_version = if desc.timeline {
            vk::API_VERSION_1_2
        } else {
            vk::API_VERSION_1_0
        };
        let holder = InstanceHolder::new(desc.name, desc.validation, &[], api_version)?;
        let physical = holder.first_physical_device()?;
        let properties = &physical.properties;
        let v = properties.api_version;
        eprintln!(
            "vkfuse-example {}: {} physical device(s) enumerated; using #0 \"{}\" (Vulkan {}.{}.{}, vendor 0x{:04x}, device 0x{:04x}, {:?})",
            desc.name,
            physical.enumerated,
            physical.name,
            vk::api_version_major(v),
            vk::api_version_minor(v),
            vk::api_version_patch(v),
            properties.vendor_id,
            properties.device_id,
            properties.device_type,
        );

        let queue_families = physical.queue_families.clone();
        let requests = plan_queues(&queue_families, desc.queues)?;
        let max_count = requests.iter().map(|r| r.1).max().unwrap_or(1) as usize;
        let priorities = vec![1.0f32; max_count];
        let queue_infos: Vec<vk::DeviceQueueCreateInfo<'_>> = requests
            .iter()
            .map(|&(family, count)| {
                vk::DeviceQueueCreateInfo::default()
                    .queue_family_index(family)
                    .queue_priorities(&priorities[..count as usize])
            })
            .collect();
        let mut timeline =
            vk::PhysicalDeviceTimelineSemaphoreFeatures::default().timeline_semaphore(true);
        let mut device_info = vk::DeviceCreateInfo::default().queue_create_infos(&queue_infos);
        if desc.timeline {
            device_info = device_info.push_next(&mut timeline);
        }
        // SAFETY: queue_infos name existing families with counts within queueCount
        // (plan_queues) and point into `priorities`, which outlives the call.
        let device = unsafe {
            holder
                .instance
                .create_device(physical.handle, &device_info, None)
        }
        .context("vkCreateDevice")?;

        let mut queues = Vec::new();
        for &(family, count) in &requests {
            for index in 0..count {
                // SAFETY: (family, index) was requested in vkCreateDevice above.
                let handle = unsafe { device.get_device_queue(family, index) };
                queues.push(QueueInfo {
                    family,
                    index,
                    flags: queue_families[family as usize].queue_flags,
                    handle,
                });
            }
        }

        Ok(Self {
            base: DeviceContext::new(device, &physical),
            queue_families,
            queues,
            holder,
        })
    }

    /// [`Context::new`] with one queue ([`QueuePlan::One`]) of the first family whose flags
    /// contain `flags`.
    pub fn with_queue(name: &str, validation: bool, flags: vk::QueueFlags) -> Result<Self> {
        Self::new(&ContextDesc {
            name,
            validation,
            timeline: false,
            queues: QueuePlan::One(flags),
        })
    }

    /// [`Context::with_queue`] on Vulkan 1.2 with timeline semaphores (see `ContextDesc`).
    pub fn with_timeline(name: &str, validation: bool, flags: vk::QueueFlags) -> Result<Self> {
        Self::new(&ContextDesc {
            name,
            validation,
            timeline: true,
            queues: QueuePlan::One(flags),
        })
    }

    /// The instance.
    pub fn instance(&self) -> &ash::Instance {
        &self.holder.instance
    }

    /// The first queue created (the only one with [`QueuePlan::One`]).
    pub fn queue(&self) -> QueueInfo {
        self.queues[0]
    }

    fn format_properties(&self, format: vk::Format) -> vk::FormatProperties {
        // SAFETY: physical_device belongs to this instance.
        unsafe {
            self.instance()
                .get_physical_device_format_properties(self.physical_device, format)
        }
    }

    /// Whether `format` supports `features` with optimal tiling.
    pub fn optimal_format_supports(
        &self,
        format: vk::Format,
        features: vk::FormatFeatureFlags,
    ) -> bool {
        self.format_properties(format)
            .optimal_tiling_features
            .contains(features)
    }

    /// Whether `format` supports `features` as a vertex buffer format.
    pub fn buffer_format_supports(
        &self,
        format: vk::Format,
        features: vk::FormatFeatureFlags,
    ) -> bool {
        self.format_properties(format)
            .buffer_features
            .contains(features)
    }
}

/// Queue family indices and queue counts to request.
fn plan_queues(families: &[vk::QueueFamilyProperties], plan: QueuePlan) -> Result<Vec<(u32, u32)>> {
    match plan {
        QueuePlan::One(flags) => families
            .iter()
            .position(|f| f.queue_count > 0 && f.queue_flags.contains(flags))
            .map(|i| vec![(i as u32, 1)])
            .ok_or_else(|| format!("no queue family supports {flags:?}").into()),
        QueuePlan::AllComputeOrTransfer { max_per_family } => {
            let wanted =
                vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE | vk::QueueFlags::TRANSFER;
            let list: Vec<(u32, u32)> = families
                .iter()
                .enumerate()
                .filter(|(_, f)| f.queue_count > 0 && f.queue_flags.intersects(wanted))
                .map(|(i, f)| (i as u32, f.queue_count.min(max_per_family.max(1))))
                .collect();
            if list.is_empty() {
                Err("no queue family supports compute or transfer".into())
            } else {
                Ok(list)
            }
        }
    }
}

/// Instance extension names offered by the drivers (and by the validation layer, which must
/// be installed, if asked).
fn instance_extensions(entry: &ash::Entry, validation: bool) -> Result<Vec<ExtensionName>> {
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
    let mut names = Vec::new();
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
    let counted = severity.intersects(
        vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
            | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING,
    );
    if counted {
        VALIDATION_MESSAGES.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: the layer passes either null or a callback data struct valid for this call
    // (VkDebugUtilsMessengerCallbackDataEXT valid usage), whose strings are NUL-terminated.
    let (id, message) = match unsafe { data.as_ref() } {
        Some(d) => {
            // SAFETY: as above; the string pointers are null or NUL-terminated.
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
    // Writing to stderr cannot panic here (write errors are ignored), so no unwind can cross
    // this extern "system" boundary.
    let _ = writeln!(
        std::io::stderr(),
        "validation [{severity:?} {types:?}] {id}: {message}"
    );
    vk::FALSE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(flags: vk::QueueFlags, count: u32) -> vk::QueueFamilyProperties {
        vk::QueueFamilyProperties {
            queue_flags: flags,
            queue_count: count,
            ..Default::default()
        }
    }

    #[test]
    fn plan_all_compute_or_transfer() {
        let fams = [
            family(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE, 16),
            family(vk::QueueFlags::SPARSE_BINDING, 1),
            family(vk::QueueFlags::TRANSFER, 2),
            family(vk::QueueFlags::COMPUTE, 0),
        ];
        let plan = plan_queues(&fams, QueuePlan::AllComputeOrTransfer { max_per_family: 4 });
        assert_eq!(plan.ok(), Some(vec![(0, 4), (2, 2)]));
    }

    #[test]
    fn plan_one() {
        let fams = [
            family(vk::QueueFlags::TRANSFER, 1),
            family(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE, 1),
        ];
        assert_eq!(
            plan_queues(&fams, QueuePlan::One(vk::QueueFlags::COMPUTE)).ok(),
            Some(vec![(1, 1)])
        );
        assert!(plan_queues(&fams[..1], QueuePlan::One(vk::QueueFlags::GRAPHICS)).is_err());
    }
}
