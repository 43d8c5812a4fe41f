//! vkfuse's objects at the C boundary.
//!
//! Dispatchable objects (instance, physical device, device, queue, command buffer) start with
//! [`Header`]: the loader's word, then a tag checked on every handle cast. Non-dispatchable
//! handles are addresses of an [`ObjectBase`] (or of a struct that starts with one) holding one
//! real handle per member, so translation is a dereference and an index.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::conv::{Cx, MemberMaps};
use crate::generated::dispatch::{DeviceFns, InstanceFns};
use crate::member::Member;
use crate::MAX_MEMBERS;

/// `ICD_LOADER_MAGIC` from the loader's `vk_icd.h`: the loader checks it, then overwrites it.
pub const ICD_LOADER_MAGIC: usize = 0x01CD_C0DE;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Tag {
    Instance = 0x5646_0001,
    PhysicalDevice = 0x5646_0002,
    Device = 0x5646_0003,
    Queue = 0x5646_0004,
    CommandBuffer = 0x5646_0005,
}

/// First field of every dispatchable object.
#[repr(C)]
pub struct Header {
    /// Owned by the loader (its dispatch table pointer); vkfuse never reads it back.
    pub loader_data: usize,
    pub tag: Tag,
}

impl Header {
    pub fn new(tag: Tag) -> Header {
        Header {
            loader_data: ICD_LOADER_MAGIC,
            tag,
        }
    }
}

/// Casts a dispatchable handle to its object after checking null and tag.
///
/// # Safety
/// `raw` is null or a handle vkfuse returned for an object that is still alive.
#[inline(always)]
unsafe fn cast<'a, T>(raw: u64, tag: Tag) -> Result<&'a T, vk::Result> {
    if raw == 0 {
        return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
    }
    // SAFETY: every dispatchable object starts with `Header` (repr(C)); the caller promises the
    // handle came from vkfuse.
    let header = unsafe { &*(raw as *const Header) };
    if header.tag != tag {
        return Err(wrong_tag(raw, tag));
    }
    // SAFETY: the tag says the object is a `T`.
    Ok(unsafe { &*(raw as *const T) })
}

#[cold]
#[inline(never)]
fn wrong_tag(raw: u64, tag: Tag) -> vk::Result {
    crate::error!("handle {raw:#x} is not a {tag:?}");
    vk::Result::ERROR_INITIALIZATION_FAILED
}

/// One member's instance.
pub struct MemberInstance {
    pub index: usize,
    pub member: &'static Member,
    pub handle: vk::Instance,
    pub fns: InstanceFns,
}

static NO_MAPS: MemberMaps = MemberMaps {
    queue_family: Vec::new(),
    memory_type: Vec::new(),
    executes: false,
};

impl MemberInstance {
    pub fn cx<'a>(&self, arena: &'a Arena) -> Cx<'a> {
        Cx::new(self.index, arena, &NO_MAPS)
    }
}

#[repr(C)]
pub struct Instance {
    pub header: Header,
    pub members: Vec<MemberInstance>,
    pub api_version: u32,
    pub enabled_extensions: Vec<String>,
    /// The fused physical device; `None` with zero members.
    pub physical: Option<Box<PhysicalDevice>>,
    /// Members that loaded but were left out of this instance, and why.
    pub left_out: Vec<(usize, String)>,
}

impl Instance {
    /// # Safety
    /// `h` is null or a live vkfuse instance.
    pub unsafe fn resolve<'a>(h: vk::Instance) -> Result<&'a Instance, vk::Result> {
        // SAFETY: forwarded contract.
        unsafe { cast(h.as_raw(), Tag::Instance) }
    }

    pub fn primary_iter(&self) -> std::iter::Take<std::slice::Iter<'_, MemberInstance>> {
        self.members.iter().take(1)
    }

    pub fn member(&self, index: usize) -> Option<&MemberInstance> {
        self.members.iter().find(|m| m.index == index)
    }
}

/// One member's physical device, with the maps from fused indices to the member's.
pub struct PhysMember {
    pub index: usize,
    pub member: &'static Member,
    pub handle: vk::PhysicalDevice,
    pub instance: vk::Instance,
    pub fns: InstanceFns,
    pub maps: MemberMaps,
    pub properties: vk::PhysicalDeviceProperties,
    pub extensions: Vec<String>,
    pub name: String,
    pub driver_name: String,
    /// `VkPhysicalDeviceDriverProperties::driverID` (0 where the member does not say).
    pub driver_id: vk::DriverId,
    pub device_uuid: [u8; vk::UUID_SIZE],
    pub driver_uuid: [u8; vk::UUID_SIZE],
}

impl PhysMember {
    pub fn cx<'a>(&'a self, arena: &'a Arena) -> Cx<'a> {
        Cx::new(self.index, arena, &self.maps)
    }

    /// Whether this member and `other` are one driver on one device (equal driver and device
    /// UUIDs): memory one exports the other imports as the same storage.
    pub fn same_device(&self, other: &PhysMember) -> bool {
        self.driver_uuid == other.driver_uuid && self.device_uuid == other.device_uuid
    }

    /// Whether an image's contents are all in the memory bound to it, so that another device
    /// of the same driver binding the same memory sees the same image. Not so on SwiftShader:
    /// each `VkImage` keeps the decompressed texels of compressed formats and the borders of
    /// cube-compatible images on the side, refreshed only when that `VkImage` is written, so a
    /// second SwiftShader device sampling what the first wrote read stale texels (176 dEQP-VK
    /// cases, compressed formats and cube maps, failed under `round_robin` on two SwiftShader
    /// members).
    pub fn images_in_memory(&self) -> bool {
        self.driver_id != vk::DriverId::GOOGLE_SWIFTSHADER
    }
}

#[repr(C)]
pub struct PhysicalDevice {
    pub header: Header,
    pub instance: *const Instance,
    /// Members in placement order: the executing (primary) member first.
    pub members: Vec<PhysMember>,
    pub fused: crate::physical_device::Fused,
}

// INVARIANT: a physical device is immutable after creation; the instance pointer outlives it
// (the instance owns it).
// SAFETY: upheld by the invariant above.
unsafe impl Send for PhysicalDevice {}
// SAFETY: see Send.
unsafe impl Sync for PhysicalDevice {}

impl PhysicalDevice {
    /// # Safety
    /// `h` is null or a live vkfuse physical device.
    pub unsafe fn resolve<'a>(h: vk::PhysicalDevice) -> Result<&'a PhysicalDevice, vk::Result> {
        // SAFETY: forwarded contract.
        unsafe { cast(h.as_raw(), Tag::PhysicalDevice) }
    }

    pub fn primary_iter(&self) -> std::iter::Take<std::slice::Iter<'_, PhysMember>> {
        self.members.iter().take(1)
    }

    pub fn member(&self, index: usize) -> Option<&PhysMember> {
        self.members.iter().find(|m| m.index == index)
    }
}

/// One member's device.
pub struct MemberDevice {
    pub index: usize,
    pub handle: vk::Device,
    pub fns: DeviceFns,
    pub maps: MemberMaps,
    /// `vkGetMemoryHostPointerPropertiesEXT`, loaded for vkfuse's own use when the member
    /// device was created with `VK_EXT_external_memory_host` (not offered to applications).
    pub host_pointer_properties: Option<vk::PFN_vkGetMemoryHostPointerPropertiesEXT>,
    /// `vkGetMemoryFdKHR`, loaded for vkfuse's own use when the member device was created with
    /// `VK_KHR_external_memory_fd` (not offered to applications): same-driver sharing.
    pub memory_fd: Option<vk::PFN_vkGetMemoryFdKHR>,
    /// `vkGetSemaphoreFdKHR` and `vkImportSemaphoreFdKHR`, loaded for vkfuse's own use when
    /// the member device was created with `VK_KHR_external_semaphore_fd` (not offered to
    /// applications): semaphores shared between members of one driver (`links.rs`).
    pub semaphore_fd: Option<crate::links::SemaphoreFd>,
}

impl MemberDevice {
    pub fn cx<'a>(&'a self, arena: &'a Arena) -> Cx<'a> {
        Cx::new(self.index, arena, &self.maps)
    }
}

#[repr(C)]
pub struct Device {
    pub header: Header,
    pub physical: *const PhysicalDevice,
    /// Members this device is resident on, the executing member first.
    pub members: Vec<MemberDevice>,
    pub api_version: u32,
    pub enabled_extensions: Vec<String>,
    pub queues: parking_lot::Mutex<Vec<Box<Queue>>>,
    /// Placement, cross-member ordering and member loss (`exec.rs`).
    pub exec: crate::exec::Exec,
    /// Staging buffers and transfer command buffers per member (`staging.rs`).
    pub staging: std::sync::Arc<crate::staging::Stager>,
    /// The application asked for a buffer device address: shaders may reach any buffer, so
    /// every access set is every allocation (`access.rs`).
    pub addresses_taken: std::sync::atomic::AtomicBool,
}

// INVARIANT: members and their tables are immutable after creation; the queue list is behind a
// mutex; the physical device outlives the device.
// SAFETY: upheld by the invariant above.
unsafe impl Send for Device {}
// SAFETY: see Send.
unsafe impl Sync for Device {}

impl Device {
    /// # Safety
    /// `h` is null or a live vkfuse device.
    pub unsafe fn resolve<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
        // SAFETY: forwarded contract.
        unsafe { cast(h.as_raw(), Tag::Device) }
    }

    pub fn primary_iter(&self) -> std::iter::Take<std::slice::Iter<'_, MemberDevice>> {
        self.members.iter().take(1)
    }

    pub fn primary(&self) -> &MemberDevice {
        &self.members[0]
    }

    pub fn member(&self, index: usize) -> Option<&MemberDevice> {
        self.members.iter().find(|m| m.index == index)
    }

    /// The member whose copy of the object `raw` answers host queries: the one that last ran
    /// work on it, else the primary.
    pub fn executed_iter(&self, raw: u64) -> std::option::IntoIter<&MemberDevice> {
        // SAFETY: `raw` is a live non-dispatchable vkfuse handle (generated callers pass the
        // application's handle of the command's object parameter).
        let last = unsafe { ObjectBase::get(raw) }
            .ok()
            .and_then(|o| o.last_member());
        last.and_then(|m| self.member(m))
            .or_else(|| self.members.first())
            .into_iter()
    }

    pub fn physical(&self) -> &PhysicalDevice {
        // SAFETY: the physical device outlives every device created from it (VUID-vkDestroyInstance-instance-00629).
        unsafe { &*self.physical }
    }
}

#[repr(C)]
pub struct Queue {
    pub header: Header,
    pub device: *const Device,
    pub handles: [vk::Queue; MAX_MEMBERS],
    pub family: u32,
    pub index: u32,
    pub flags: vk::DeviceQueueCreateFlags,
    /// Per member: a timeline semaphore that each batch vkfuse submits to the member's queue
    /// signals with the next value; null when batches run on one member only.
    pub done: [vk::Semaphore; MAX_MEMBERS],
}

impl Queue {
    /// # Safety
    /// `h` is null or a live vkfuse queue.
    pub unsafe fn resolve<'a>(h: vk::Queue) -> Result<(&'a Queue, &'a Device), vk::Result> {
        // SAFETY: forwarded contract; a queue's device outlives it.
        unsafe {
            let q: &Queue = cast(h.as_raw(), Tag::Queue)?;
            Ok((q, &*q.device))
        }
    }
}

/// Where a command buffer's commands are recorded: a member's command buffer and its device.
#[derive(Clone, Copy)]
pub struct Target {
    pub handle: vk::CommandBuffer,
    pub member: *const MemberDevice,
}

impl Target {
    #[inline(always)]
    pub fn member(&self) -> &MemberDevice {
        // SAFETY: the member device lives in its Device, which outlives its command buffers.
        unsafe { &*self.member }
    }
}

#[repr(C)]
pub struct CommandBuffer {
    pub header: Header,
    pub device: *const Device,
    pub handles: [vk::CommandBuffer; MAX_MEMBERS],
    pub level: vk::CommandBufferLevel,
    /// The resident members' command buffers, in placement order: what recording walks.
    pub targets: [Target; MAX_MEMBERS],
    pub target_count: usize,
    /// Objects whose state the recorded commands change (events, query pools): the member
    /// that runs the command buffer takes them over (`exec::note`). Only with several targets.
    pub notes: parking_lot::Mutex<Vec<crate::exec::Note>>,
    /// The device memory the recorded commands may touch (`access.rs`). Only collected when
    /// batches may run on several members.
    pub access: parking_lot::Mutex<crate::access::AccessSet>,
    /// The image layout changes of the recorded commands, in order (`layout.rs`). Only
    /// collected when the access set is.
    pub transitions: parking_lot::Mutex<Vec<crate::layout::Transition>>,
    /// The compute pipeline's shader analysis and the descriptor sets bound so far, whose
    /// bindings a dispatch uses as its shader says (`access.rs`). Only collected when the
    /// access set is.
    pub compute: parking_lot::Mutex<crate::access::ComputeBinds>,
}

impl CommandBuffer {
    /// # Safety
    /// `h` is null or a live vkfuse command buffer.
    #[inline]
    pub unsafe fn resolve<'a>(
        h: vk::CommandBuffer,
    ) -> Result<(&'a CommandBuffer, &'a Device), vk::Result> {
        // SAFETY: forwarded contract; a command buffer's device outlives it.
        unsafe {
            let cb: &CommandBuffer = cast(h.as_raw(), Tag::CommandBuffer)?;
            Ok((cb, &*cb.device))
        }
    }

    /// The command buffer alone, for recording: no device lookup on the hot path.
    ///
    /// # Safety
    /// `h` is null or a live vkfuse command buffer.
    #[inline(always)]
    pub unsafe fn resolve_targets<'a>(
        h: vk::CommandBuffer,
    ) -> Result<&'a CommandBuffer, vk::Result> {
        // SAFETY: forwarded contract.
        unsafe { cast(h.as_raw(), Tag::CommandBuffer) }
    }

    /// Whether recorded commands collect their access set: several targets and batches that
    /// may run on several members.
    #[inline]
    pub fn collects(&self) -> bool {
        // SAFETY: a command buffer's device outlives it.
        self.target_count > 1 && unsafe { (*self.device).exec.multi }
    }

    #[inline(always)]
    pub fn targets(&self) -> &[Target] {
        &self.targets[..self.target_count.min(MAX_MEMBERS)]
    }
}

/// `ObjectBase::last` when no member has run work on the object.
pub const NO_MEMBER: u8 = 0xFF;

/// A non-dispatchable object: one real handle per member (0 where not resident).
#[repr(C)]
pub struct ObjectBase {
    pub handles: [u64; MAX_MEMBERS],
    pub ty: vk::ObjectType,
    /// The member that last ran a batch signalling or writing this object (fences, binary
    /// semaphores, events, query pools), or [`NO_MEMBER`]: host queries about the object go
    /// to that member, whose copy holds the answer.
    pub last: AtomicU8,
    /// The device memory a buffer, image, view, framebuffer or descriptor set leads to, once
    /// known (`access.rs`); freed with the object.
    pub leads: parking_lot::RwLock<Option<crate::access::Leads>>,
}

impl ObjectBase {
    pub fn bare(ty: vk::ObjectType) -> ObjectBase {
        ObjectBase {
            handles: [0; MAX_MEMBERS],
            ty,
            last: AtomicU8::new(NO_MEMBER),
            leads: parking_lot::RwLock::new(None),
        }
    }

    pub fn new(ty: vk::ObjectType) -> Box<ObjectBase> {
        Box::new(ObjectBase::bare(ty))
    }

    /// The member that last ran work on the object, if any.
    pub fn last_member(&self) -> Option<usize> {
        match self.last.load(Ordering::Acquire) {
            NO_MEMBER => None,
            m => Some(m as usize),
        }
    }

    pub fn set_last(&self, m: Option<usize>) {
        self.last
            .store(m.map_or(NO_MEMBER, |m| m as u8), Ordering::Release);
    }

    pub fn into_raw(self: Box<Self>) -> u64 {
        Box::into_raw(self) as u64
    }

    /// # Safety
    /// `raw` is a live handle made by [`ObjectBase::into_raw`] (or a struct starting with one).
    pub unsafe fn get<'a>(raw: u64) -> Result<&'a ObjectBase, vk::Result> {
        if raw == 0 {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        // SAFETY: forwarded contract.
        Ok(unsafe { &*(raw as *const ObjectBase) })
    }

    /// # Safety
    /// `raw` was made by [`ObjectBase::into_raw`] and is not used afterwards.
    pub unsafe fn free(raw: u64) {
        if raw != 0 {
            // SAFETY: forwarded contract.
            drop(unsafe { Box::from_raw(raw as *mut ObjectBase) });
        }
    }
}

/// Translates any object handle, dispatchable or not, named by `ty`, to member `m`'s handle.
///
/// # Safety
/// `raw` is null or a live vkfuse handle of type `ty`.
pub unsafe fn member_handle(ty: vk::ObjectType, raw: u64, m: usize) -> u64 {
    if raw == 0 {
        return 0;
    }
    // SAFETY: forwarded contract; each arm casts to the type `ty` names.
    unsafe {
        match ty {
            vk::ObjectType::INSTANCE => Instance::resolve(vk::Instance::from_raw(raw))
                .ok()
                .and_then(|i| i.member(m))
                .map_or(0, |mi| mi.handle.as_raw()),
            vk::ObjectType::PHYSICAL_DEVICE => {
                PhysicalDevice::resolve(vk::PhysicalDevice::from_raw(raw))
                    .ok()
                    .and_then(|p| p.member(m))
                    .map_or(0, |pm| pm.handle.as_raw())
            }
            vk::ObjectType::DEVICE => Device::resolve(vk::Device::from_raw(raw))
                .ok()
                .and_then(|d| d.members.iter().find(|md| md.index == m))
                .map_or(0, |md| md.handle.as_raw()),
            vk::ObjectType::QUEUE => {
                Queue::resolve(vk::Queue::from_raw(raw)).map_or(0, |(q, _)| q.handles[m].as_raw())
            }
            vk::ObjectType::COMMAND_BUFFER => {
                CommandBuffer::resolve(vk::CommandBuffer::from_raw(raw))
                    .map_or(0, |(c, _)| c.handles[m].as_raw())
            }
            _ => (*(raw as *const ObjectBase)).handles[m],
        }
    }
}

/// `vkSetPrivateData`: the object handle is translated per member.
///
/// # Safety
/// Arguments valid for `vkSetPrivateData`.
pub unsafe extern "system" fn set_private_data(
    device: vk::Device,
    object_type: vk::ObjectType,
    object_handle: u64,
    slot: vk::PrivateDataSlot,
    data: u64,
) -> vk::Result {
    crate::guard::result("vkSetPrivateData", || {
        // SAFETY: the application passes a live device (VUID-vkSetPrivateData-device-parameter).
        let dev = unsafe { Device::resolve(device)? };
        let arena = Arena::scope();
        for md in &dev.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .set_private_data
                .ok_or_else(|| crate::guard::missing("vkSetPrivateData"))?;
            // SAFETY: handles translated to this member's (VUID-vkSetPrivateData-objectHandle-04016).
            let r = unsafe {
                f(
                    md.handle,
                    object_type,
                    member_handle(object_type, object_handle, md.index),
                    cx.nd(slot),
                    data,
                )
            };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// `vkGetPrivateData`: read from the executing member.
///
/// # Safety
/// Arguments valid for `vkGetPrivateData`.
pub unsafe extern "system" fn get_private_data(
    device: vk::Device,
    object_type: vk::ObjectType,
    object_handle: u64,
    slot: vk::PrivateDataSlot,
    p_data: *mut u64,
) {
    crate::guard::void("vkGetPrivateData", || {
        // SAFETY: the application passes a live device.
        let dev = unsafe { Device::resolve(device)? };
        let arena = Arena::scope();
        let md = dev.primary();
        let cx = md.cx(&arena);
        let f = md
            .fns
            .get_private_data
            .ok_or_else(|| crate::guard::missing("vkGetPrivateData"))?;
        // SAFETY: handles translated to the member's; p_data is valid (VUID-vkGetPrivateData-pData-parameter).
        unsafe {
            f(
                md.handle,
                object_type,
                member_handle(object_type, object_handle, md.index),
                cx.nd(slot),
                p_data,
            )
        };
        Ok(())
    })
}

/// Untyped pointer helper for pNext walking.
pub type Chain = *const c_void;
