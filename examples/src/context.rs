//! Instance and device setup, validation hookup and queue selection.

use std::ffi::{c_void, CStr, CString};
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
struct InstanceHolder {
    entry: ash::Entry,
    instance: ash::Instance,
    debug: Option<(ash::ext::debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
}

impl Drop for InstanceHolder {
    fn drop(&mut self) {
        if let Some((loader, messenger)) = self.debug.take() {
            // SAFETY: the messenger was created from this instance and is destroyed once; no
            // other thread uses the instance during drop (VUID-vkDestroyDebugUtilsMessengerEXT-messenger-parameter).
            unsafe { loader.destroy_debug_utils_messenger(messenger, None) };
        }
        // SAFETY: every child (device, messenger) has been destroyed before this point: the
        // device by `Context::drop`, which runs before its fields drop
        // (VUID-vkDestroyInstance-instance-00629).
        unsafe { self.instance.destroy_instance(None) };
    }
}

/// A Vulkan instance with the first physical device and a logical device on it.
///
/// Objects created from [`Context::device`] borrow the context (see [`crate::Owned`]), so they
/// are destroyed before it; dropping the context waits for the device to be idle, then destroys
/// the device, the messenger and the instance.
pub struct Context {
    /// The logical device.
    pub device: ash::Device,
    /// The physical device it was created on (the first one enumerated).
    pub physical_device: vk::PhysicalDevice,
    /// Its properties.
    pub properties: vk::PhysicalDeviceProperties,
    /// Its memory types and heaps.
    pub memory_properties: vk::PhysicalDeviceMemoryProperties,
    /// Its queue families.
    pub queue_families: Vec<vk::QueueFamilyProperties>,
    /// The queues created, ordered by family then index.
    pub queues: Vec<QueueInfo>,
    device_name: String,
    holder: InstanceHolder,
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the device is valid until destroy_device below; waiting for idle makes sure no
        // queue still uses an object when the device goes (VUID-vkDestroyDevice-device-00378
        // is the caller's side: children borrow `self`, so they are already destroyed).
        unsafe {
            // An error here (device lost) leaves nothing better to do than destroy anyway.
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
        }
    }
}

impl Context {
    /// Loads the Vulkan loader, creates an instance (with validation if asked), picks the first
    /// physical device and creates a device with the queues of `desc.queues`.
    pub fn new(desc: &ContextDesc<'_>) -> Result<Self> {
        // SAFETY: loading libvulkan runs its initialisers; the loader is the system's own and
        // the library stays loaded as long as `Entry` (kept in the holder) lives.
        let entry = unsafe { ash::Entry::load() }
            .map_err(|e| format!("cannot load the Vulkan loader (libvulkan.so.1): {e}"))?;

        let mut layers: Vec<*const std::ffi::c_char> = Vec::new();
        let mut extensions: Vec<*const std::ffi::c_char> = Vec::new();
        if desc.validation {
            check_validation_available(&entry)?;
            layers.push(VALIDATION_LAYER.as_ptr());
            extensions.push(ash::ext::debug_utils::NAME.as_ptr());
        }

        let app_name = CString::new(format!("vkfuse-example-{}", desc.name))?;
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
        if desc.validation {
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
        let mut holder = InstanceHolder {
            entry,
            instance,
            debug: None,
        };

        if desc.validation {
            let loader = ash::ext::debug_utils::Instance::new(&holder.entry, &holder.instance);
            // SAFETY: VK_EXT_debug_utils was enabled on this instance; the create info holds no
            // pointers besides the callback, which is 'static.
            let messenger =
                unsafe { loader.create_debug_utils_messenger(&messenger_create_info(), None) }
                    .context("vkCreateDebugUtilsMessengerEXT")?;
            holder.debug = Some((loader, messenger));
        }

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
        let (properties, memory_properties, queue_families) = unsafe {
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
        let v = properties.api_version;
        eprintln!(
            "vkfuse-example {}: {} physical device(s) enumerated; using #0 \"{}\" (Vulkan {}.{}.{}, vendor 0x{:04x}, device 0x{:04x}, {:?})",
            desc.name,
            physical_devices.len(),
            device_name,
            vk::api_version_major(v),
            vk::api_version_minor(v),
            vk::api_version_patch(v),
            properties.vendor_id,
            properties.device_id,
            properties.device_type,
        );

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
        let device_info = vk::DeviceCreateInfo::default().queue_create_infos(&queue_infos);
        // SAFETY: queue_infos name existing families with counts within queueCount
        // (plan_queues) and point into `priorities`, which outlives the call.
        let device = unsafe { instance.create_device(physical_device, &device_info, None) }
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
            device,
            physical_device,
            properties,
            memory_properties,
            queue_families,
            queues,
            device_name,
            holder,
        })
    }

    /// The instance.
    pub fn instance(&self) -> &ash::Instance {
        &self.holder.instance
    }

    /// `VkPhysicalDeviceProperties::deviceName`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The first queue created (the only one with [`QueuePlan::One`]).
    pub fn queue(&self) -> QueueInfo {
        self.queues[0]
    }

    /// Whether `format` supports `features` with optimal tiling.
    pub fn optimal_format_supports(
        &self,
        format: vk::Format,
        features: vk::FormatFeatureFlags,
    ) -> bool {
        // SAFETY: physical_device belongs to this instance.
        let props = unsafe {
            self.instance()
                .get_physical_device_format_properties(self.physical_device, format)
        };
        props.optimal_tiling_features.contains(features)
    }

    /// Whether `format` supports `features` as a vertex buffer format.
    pub fn buffer_format_supports(
        &self,
        format: vk::Format,
        features: vk::FormatFeatureFlags,
    ) -> bool {
        // SAFETY: physical_device belongs to this instance.
        let props = unsafe {
            self.instance()
                .get_physical_device_format_properties(self.physical_device, format)
        };
        props.buffer_features.contains(features)
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

fn check_validation_available(entry: &ash::Entry) -> Result<()> {
    // SAFETY: plain queries on the loader.
    let layers = unsafe { entry.enumerate_instance_layer_properties() }
        .context("vkEnumerateInstanceLayerProperties")?;
    if !layers
        .iter()
        .any(|l| l.layer_name_as_c_str() == Ok(VALIDATION_LAYER))
    {
        return Err(format!(
            "--validation: {} is not installed (Debian: apt-get install vulkan-validationlayers)",
            VALIDATION_LAYER.to_string_lossy()
        )
        .into());
    }
    let mut extensions = Vec::new();
    for layer in [None, Some(VALIDATION_LAYER)] {
        // SAFETY: plain query on the loader; `layer` is a NUL-terminated name.
        extensions.extend(
            unsafe { entry.enumerate_instance_extension_properties(layer) }
                .context("vkEnumerateInstanceExtensionProperties")?,
        );
    }
    if !extensions
        .iter()
        .any(|e| e.extension_name_as_c_str() == Ok(ash::ext::debug_utils::NAME))
    {
        return Err("--validation: VK_EXT_debug_utils is not available".into());
    }
    Ok(())
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
