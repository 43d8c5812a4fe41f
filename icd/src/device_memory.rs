//! Device memory across members.
//!
//! When batches may run on several members (`exec.rs`), a host-visible allocation is one host
//! allocation imported into every member with `VK_EXT_external_memory_host` (the shared host
//! memory tier): every member reads and writes the same bytes, so no transfer is ever needed
//! and mapping returns the host allocation itself. Where not every member imports it (or with
//! `VKFUSE_SHARING=mirrored`), each member allocates its own copy, mapped by vkfuse for good,
//! and the allocation is **mirrored** (`mirror.rs`): the application maps a host shadow, and
//! copies before each batch keep the copies coherent. Members of one driver on one device
//! share memory that is not host-visible (and, with `VKFUSE_SHARING=device`, all memory)
//! through an opaque fd: the first member allocates and exports, the others import (shared
//! device memory); mapping goes to the first member's allocation, the same bytes. Memory that
//! is none of these is not shared yet: every later batch runs on the primary member
//! (`exec::pin_primary`), which also holds the application's mapping.
//!
//! A member that cannot allocate while the primary can is left out of that allocation (its
//! objects stay unbound and it runs no batch from then on), instead of failing the application.

use std::sync::atomic::{AtomicU64, Ordering};

use ash::vk;
use ash::vk::Handle as _;

use crate::arena::Arena;
use crate::generated::translate as tr;
use crate::object::{Device, MemberDevice, ObjectBase};

/// A fused `VkDeviceMemory`.
#[repr(C)]
pub struct Memory {
    pub base: ObjectBase,
    /// The host allocation imported into every member; null when members have their own.
    host: *mut u8,
    host_layout: std::alloc::Layout,
    /// Members have their own copies, kept coherent through a host shadow (`mirror.rs`).
    pub mirror: Option<std::sync::Arc<crate::mirror::Mirror>>,
}

impl Memory {
    /// An allocation of one handle per member (filled in by the caller), no host allocation.
    fn per_member() -> Box<Memory> {
        Box::new(Memory {
            base: ObjectBase::bare(vk::ObjectType::DEVICE_MEMORY),
            host: std::ptr::null_mut(),
            host_layout: std::alloc::Layout::new::<u8>(),
            mirror: None,
        })
    }
}

fn dev<'a>(h: vk::Device) -> Result<&'a Device, vk::Result> {
    // SAFETY: the application passes a live device.
    unsafe { Device::resolve(h) }
}

fn memory<'a>(h: vk::DeviceMemory) -> Result<&'a Memory, vk::Result> {
    if h.is_null() {
        return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
    }
    // SAFETY: every vkfuse VkDeviceMemory is a `Memory` made by allocate_memory.
    Ok(unsafe { &*(h.as_raw() as *const Memory) })
}

/// The three 32-bit words at byte `at` of the allocation `raw` (a live vkfuse
/// `VkDeviceMemory`), read on the host: from the host allocation every member imported, or
/// from a mirrored allocation's shadow where the application wrote it since the last submit
/// that touched it (it then alone holds the latest contents). `None` for other allocations
/// or out of range. The caller knows that no pending work writes the words.
pub fn host_words(raw: u64, at: u64) -> Option<[u32; 3]> {
    let m = memory(vk::DeviceMemory::from_raw(raw)).ok()?;
    let (host, size) = match &m.mirror {
        Some(mirror) if mirror.host_writes() => (mirror.shadow(), mirror.size()),
        Some(_) => return None,
        None => (m.host, m.host_layout.size() as u64),
    };
    let end = at.checked_add(12)?;
    if host.is_null() || end > size {
        return None;
    }
    let mut bytes = [0u8; 12];
    // SAFETY: 12 bytes within the host allocation or shadow, which live as long as the memory
    // object.
    unsafe { std::ptr::copy_nonoverlapping(host.add(at as usize), bytes.as_mut_ptr(), 12) };
    let word = |k: usize| u32::from_le_bytes([bytes[k], bytes[k + 1], bytes[k + 2], bytes[k + 3]]);
    Some([word(0), word(4), word(8)])
}

/// A new allocation and the members that ran out of memory for it (member, error).
type Allocated = (Box<Memory>, Vec<(usize, vk::Result)>);

/// Allocations made per member, for `VKFUSE_FAULT=alloc:M:N`.
static ALLOCS: [AtomicU64; crate::MAX_MEMBERS] = [const { AtomicU64::new(0) }; crate::MAX_MEMBERS];

/// Counts an allocation on member `m`; true when `VKFUSE_FAULT=alloc:M:N` makes it fail.
fn alloc_fault(m: usize) -> bool {
    let nth = ALLOCS[m].fetch_add(1, Ordering::Relaxed) + 1;
    let hit = crate::config::Config::get().fault_at("alloc", m, nth);
    if hit {
        crate::warn!("member {m}: VKFUSE_FAULT makes its allocation {nth} fail");
    }
    hit
}

/// After members failed to allocate (`missing`): the allocation lives on the others, and every
/// later batch runs on one of them. Errors when batches are already pinned to a member without it.
fn left_out(d: &Device, mem: &Memory, missing: &[(usize, vk::Result)]) -> Result<(), vk::Result> {
    if missing.is_empty() {
        return Ok(());
    }
    let err = missing[0].1;
    let Some(holder) = d.members.iter().find(|md| mem.base.handles[md.index] != 0) else {
        return Err(err);
    };
    for (m, r) in missing {
        crate::warn!(
            "member {m}: vkAllocateMemory failed ({r:?}); the allocation lives on member(s) {:?}",
            d.members
                .iter()
                .filter(|md| mem.base.handles[md.index] != 0)
                .map(|md| md.index)
                .collect::<Vec<_>>()
        );
    }
    if crate::exec::pin(
        d,
        holder.index,
        "a member could not allocate memory the others hold",
    ) {
        Ok(())
    } else {
        Err(err)
    }
}

fn free_members(d: &Device, base: &ObjectBase, alloc: *const vk::AllocationCallbacks) {
    for md in &d.members {
        let h = base.handles[md.index];
        if let (true, Some(f)) = (h != 0, md.fns.free_memory) {
            // SAFETY: the member's memory, no longer used.
            unsafe { f(md.handle, vk::DeviceMemory::from_raw(h), alloc) };
        }
    }
}

/// Copies the application's chain for a member, leaving out `VkMemoryDedicatedAllocateInfo`
/// (a hint on every member vkfuse runs with; an imported host allocation is not dedicated).
///
/// # Safety
/// `chain` is a valid pNext chain.
unsafe fn chain_without_dedicated(
    cx: &crate::conv::Cx,
    chain: *const std::ffi::c_void,
) -> *const std::ffi::c_void {
    // SAFETY: forwarded contract; the translated copy lives in the arena.
    let copy = unsafe { tr::chain(cx, chain) } as *mut vk::BaseOutStructure;
    let mut head = copy;
    let mut prev: *mut vk::BaseOutStructure = std::ptr::null_mut();
    let mut p = copy;
    // SAFETY: the arena copy is ours to relink.
    unsafe {
        while !p.is_null() {
            let next = (*p).p_next;
            if (*p).s_type == vk::StructureType::MEMORY_DEDICATED_ALLOCATE_INFO {
                if prev.is_null() {
                    head = next;
                } else {
                    (*prev).p_next = next;
                }
            } else {
                prev = p;
            }
            p = next;
        }
    }
    head as *const std::ffi::c_void
}

/// Why a member did not import host memory.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The member device has no `VK_EXT_external_memory_host`.
    NoExtension,
    /// No memory type (or not the one asked for) imports the pointer.
    NoType(Option<u32>, vk::Result),
    /// vkAllocateMemory refused the import.
    Result(vk::Result),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoExtension => write!(f, "no VK_EXT_external_memory_host"),
            Refused::NoType(Some(t), r) => write!(f, "cannot import it as memory type {t} ({r:?})"),
            Refused::NoType(None, r) => write!(f, "no memory type imports host pointers ({r:?})"),
            Refused::Result(r) => write!(f, "the import failed ({r:?})"),
        }
    }
}

/// Imports `size` bytes of host memory at `host` into member `md`, as memory type `t` (`None`:
/// the first type that can), with `chain` before the import info.
///
/// # Safety
/// `host` is a live allocation of `size` bytes aligned to the member's
/// minImportedHostPointerAlignment that outlives the returned memory; `chain` is null or a
/// valid pNext chain for VkMemoryAllocateInfo.
pub(crate) unsafe fn import_host(
    md: &MemberDevice,
    host: *mut u8,
    size: u64,
    t: Option<u32>,
    chain: *const std::ffi::c_void,
    alloc: *const vk::AllocationCallbacks,
) -> Result<vk::DeviceMemory, Refused> {
    let (Some(props), Some(allocate)) = (md.host_pointer_properties, md.fns.allocate_memory) else {
        return Err(Refused::NoExtension);
    };
    let mut hp = vk::MemoryHostPointerPropertiesEXT::default();
    // SAFETY: an aligned host allocation (forwarded contract).
    let r = unsafe {
        props(
            md.handle,
            vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
            host.cast(),
            &mut hp,
        )
    };
    let t = match t {
        Some(t) if r == vk::Result::SUCCESS && hp.memory_type_bits & (1 << t) != 0 => t,
        None if r == vk::Result::SUCCESS && hp.memory_type_bits != 0 => {
            hp.memory_type_bits.trailing_zeros()
        }
        _ => return Err(Refused::NoType(t, r)),
    };
    let import = vk::ImportMemoryHostPointerInfoEXT {
        p_next: chain,
        handle_type: vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
        p_host_pointer: host.cast(),
        ..Default::default()
    };
    let ai = vk::MemoryAllocateInfo {
        p_next: (&import as *const vk::ImportMemoryHostPointerInfoEXT).cast(),
        allocation_size: size,
        memory_type_index: t,
        ..Default::default()
    };
    let mut m = vk::DeviceMemory::null();
    // SAFETY: a valid import of a live host allocation (forwarded contract).
    match unsafe { allocate(md.handle, &ai, alloc, &mut m) } {
        vk::Result::SUCCESS => Ok(m),
        r => Err(Refused::Result(r)),
    }
}

/// Imports one host allocation into every member; `None` when a member refuses the import.
/// Members out of memory are listed with the allocation.
fn import_all(
    d: &Device,
    info: &vk::MemoryAllocateInfo,
    alloc: *const vk::AllocationCallbacks,
    align: u64,
) -> Option<Allocated> {
    let cfg = crate::config::Config::get();
    let size = info.allocation_size.div_ceil(align).max(1) * align;
    let layout = std::alloc::Layout::from_size_align(size as usize, align as usize).ok()?;
    // SAFETY: a non-zero size.
    let host = unsafe { std::alloc::alloc_zeroed(layout) };
    if host.is_null() {
        return None;
    }
    let mut mem = Box::new(Memory {
        base: ObjectBase::bare(vk::ObjectType::DEVICE_MEMORY),
        host,
        host_layout: layout,
        mirror: None,
    });
    let arena = Arena::scope();
    let mut missing = Vec::new();
    let fail = |mem: Box<Memory>, why: String| {
        crate::info!("host-pointer import not used for this allocation: {why}");
        free_members(d, &mem.base, alloc);
        // SAFETY: allocated above with this layout; no member holds it any more.
        unsafe { std::alloc::dealloc(mem.host, mem.host_layout) };
        None
    };
    for md in &d.members {
        let cx = md.cx(&arena);
        let t = cx.memory_type(info.memory_type_index);
        if cfg.fault("import", md.index) {
            return fail(
                mem,
                format!("VKFUSE_FAULT makes member {} refuse it", md.index),
            );
        }
        let imported = if alloc_fault(md.index) {
            Err(Refused::Result(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY))
        } else {
            // SAFETY: a live host allocation of `size` bytes, aligned to
            // minImportedHostPointerAlignment, outliving the member memory; the application's
            // chain, valid.
            unsafe {
                import_host(
                    md,
                    host,
                    size,
                    Some(t),
                    chain_without_dedicated(&cx, info.p_next),
                    alloc,
                )
            }
        };
        let m = match imported {
            Ok(m) => m,
            Err(Refused::Result(
                r @ (vk::Result::ERROR_OUT_OF_DEVICE_MEMORY | vk::Result::ERROR_OUT_OF_HOST_MEMORY),
            )) => {
                missing.push((md.index, r));
                continue;
            }
            Err(why) => return fail(mem, format!("member {}: {why}", md.index)),
        };
        mem.base.handles[md.index] = m.as_raw();
    }
    Some((mem, missing))
}

/// Whether allocations of this device may be shared through opaque fds: several executing
/// members, all of one driver on one device (equal UUIDs; across drivers an import can
/// "succeed" without sharing anything), each with `VK_KHR_external_memory_fd`.
fn fd_sharing(d: &Device) -> bool {
    d.exec.multi && d.exec.same_driver && d.members.iter().all(|md| md.memory_fd.is_some())
}

/// One allocation of the first member, exported as an opaque fd and imported into every other
/// member (same driver, same device): one storage that every member reads and writes, the
/// shared device memory tier. `None` (with one message) when a step fails; nothing is left
/// allocated then.
fn share_fd(
    d: &Device,
    info: *const vk::MemoryAllocateInfo,
    alloc: *const vk::AllocationCallbacks,
) -> Option<Box<Memory>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let arena = Arena::scope();
    let mut mem = Memory::per_member();
    let fail = |mem: &Memory, why: String| {
        crate::info!("opaque-fd sharing not used for this allocation: {why}");
        free_members(d, &mem.base, alloc);
        None
    };
    let ty = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
    let mut fd: Option<OwnedFd> = None;
    for md in &d.members {
        let cx = md.cx(&arena);
        let Some(f) = md.fns.allocate_memory else {
            return fail(&mem, format!("member {}: no vkAllocateMemory", md.index));
        };
        // SAFETY: the application's allocate info, translated into the arena for the member.
        let ai = cx.one(info, tr::fix_memory_allocate_info) as *mut vk::MemoryAllocateInfo;
        // The first member exports, the others import a duplicate of its fd.
        let mut export = vk::ExportMemoryAllocateInfo {
            handle_types: ty,
            ..Default::default()
        };
        let mut dup = None;
        let mut import = vk::ImportMemoryFdInfoKHR {
            handle_type: ty,
            ..Default::default()
        };
        // SAFETY: `ai` is the member's arena copy, ours to relink; the structs chained here
        // live until the call below returns.
        unsafe {
            match &fd {
                None => {
                    export.p_next = (*ai).p_next;
                    (*ai).p_next = (&export as *const vk::ExportMemoryAllocateInfo).cast();
                }
                Some(owned) => match owned.try_clone() {
                    Ok(c) => {
                        import.fd = c.as_raw_fd();
                        import.p_next = (*ai).p_next;
                        dup = Some(c);
                        (*ai).p_next = (&import as *const vk::ImportMemoryFdInfoKHR).cast();
                    }
                    Err(e) => return fail(&mem, format!("dup of the exported fd failed ({e})")),
                },
            }
        }
        let mut m = vk::DeviceMemory::null();
        let r = if alloc_fault(md.index) {
            vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
        } else {
            // SAFETY: a translated allocate info with an export or import chained.
            unsafe { f(md.handle, ai, alloc, &mut m) }
        };
        if r != vk::Result::SUCCESS {
            return fail(&mem, format!("member {}: vkAllocateMemory {r:?}", md.index));
        }
        // An imported fd belongs to the member now.
        if let Some(c) = dup {
            std::mem::forget(c);
        }
        mem.base.handles[md.index] = m.as_raw();
        if fd.is_none() {
            let Some(get) = md.memory_fd else {
                return fail(&mem, format!("member {}: no vkGetMemoryFdKHR", md.index));
            };
            let gi = vk::MemoryGetFdInfoKHR {
                memory: m,
                handle_type: ty,
                ..Default::default()
            };
            let mut raw = -1;
            // SAFETY: memory just allocated for export as an opaque fd.
            let r = unsafe { get(md.handle, &gi, &mut raw) };
            if r != vk::Result::SUCCESS || raw < 0 {
                return fail(&mem, format!("member {}: vkGetMemoryFdKHR {r:?}", md.index));
            }
            // SAFETY: a new fd the member handed over; ours to close.
            fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }
    crate::exec::fd_shared(d);
    Some(mem)
}

/// Allocates on every member separately. Members out of memory are listed with the allocation.
fn allocate_each(
    d: &Device,
    info: *const vk::MemoryAllocateInfo,
    alloc: *const vk::AllocationCallbacks,
) -> Result<Allocated, vk::Result> {
    let arena = Arena::scope();
    let mut missing = Vec::new();
    let mut mem = Memory::per_member();
    for md in &d.members {
        let cx = md.cx(&arena);
        let f = md
            .fns
            .allocate_memory
            .ok_or_else(|| crate::guard::missing("vkAllocateMemory"))?;
        let mut m = vk::DeviceMemory::null();
        let r = if alloc_fault(md.index) {
            vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
        } else {
            // SAFETY: the allocate info translated for the member (memory type index, chain).
            unsafe {
                f(
                    md.handle,
                    cx.one(info, tr::fix_memory_allocate_info),
                    alloc,
                    &mut m,
                )
            }
        };
        let oom = r == vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
            || r == vk::Result::ERROR_OUT_OF_HOST_MEMORY;
        if oom && d.exec.multi {
            missing.push((md.index, r));
            continue;
        }
        if r != vk::Result::SUCCESS {
            free_members(d, &mem.base, alloc);
            return Err(r);
        }
        mem.base.handles[md.index] = m.as_raw();
    }
    Ok((mem, missing))
}

/// # Safety
/// Arguments valid for `vkAllocateMemory`.
pub unsafe extern "system" fn allocate_memory(
    device: vk::Device,
    info: *const vk::MemoryAllocateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::DeviceMemory,
) -> vk::Result {
    crate::guard::result("vkAllocateMemory", || {
        let d = dev(device)?;
        // SAFETY: a valid allocate info.
        let ai = unsafe { &*info };
        let host_visible = d
            .physical()
            .fused
            .memory
            .memory_types
            .get(ai.memory_type_index as usize)
            .is_some_and(|t| {
                t.property_flags
                    .contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
            });
        let align = d.exec.import_align;
        let sharing = crate::config::Config::get().sharing;
        let staging = sharing == crate::config::Sharing::Staging;
        let mirrored = sharing == crate::config::Sharing::Mirrored || staging;
        // Memory that is not host-visible can only be shared as device memory; with
        // VKFUSE_SHARING=device, host-visible memory is shared that way too.
        let by_fd = fd_sharing(d) && (!host_visible || sharing == crate::config::Sharing::Device);
        let shared = if by_fd {
            share_fd(d, info, alloc).map(|m| (m, Vec::new()))
        } else {
            None
        };
        let shared = match shared {
            Some(m) => Some(m),
            None if d.exec.multi && align != 0 && host_visible && !mirrored => {
                import_all(d, ai, alloc, align)
            }
            None => None,
        };
        let (mem, missing) = match shared {
            Some(m) => m,
            None => {
                let (mut m, missing) = allocate_each(d, info, alloc)?;
                if d.exec.multi {
                    // Memory the members cannot map is reached through staging buffers.
                    let staged = staging || !host_visible;
                    m.mirror = mirror(d, &m, ai.allocation_size, ai.memory_type_index, staged);
                }
                if missing.is_empty() && m.mirror.is_none() {
                    crate::exec::pin_primary(
                        d,
                        if host_visible {
                            "an allocation is neither shared host memory nor mirrored (a member's copy cannot be mapped)"
                        } else {
                            "an allocation is not host-visible, cannot be shared through an opaque fd (members of different drivers) and cannot be reached through staging buffers"
                        },
                    );
                }
                (m, missing)
            }
        };
        if let Err(r) = left_out(d, &mem, &missing) {
            free_members(d, &mem.base, alloc);
            if !mem.host.is_null() {
                // SAFETY: allocated by import_all with this layout; the members' imports are freed.
                unsafe { std::alloc::dealloc(mem.host, mem.host_layout) };
            }
            return Err(r);
        }
        let mirror = mem.mirror.clone();
        let raw = Box::into_raw(mem) as u64;
        if let Some(mirror) = mirror {
            crate::exec::add_mirror(d, raw, mirror);
        }
        // SAFETY: valid output pointer.
        unsafe { *out = vk::DeviceMemory::from_raw(raw) };
        Ok(vk::Result::SUCCESS)
    })
}

/// Maps every member's copy for good (or, `staged`, binds a buffer covering it for the
/// staging tier, `staging.rs`) and makes the allocation mirrored (`mirror.rs`); `None` (with
/// the copies unmapped or uncovered again) when a member's copy cannot be reached.
fn mirror(
    d: &Device,
    m: &Memory,
    size: u64,
    fused_type: u32,
    staged: bool,
) -> Option<std::sync::Arc<crate::mirror::Mirror>> {
    let mut copies = [std::ptr::null_mut::<u8>(); crate::MAX_MEMBERS];
    let mut covers = [vk::Buffer::null(); crate::MAX_MEMBERS];
    let mut ok = true;
    let arena = Arena::scope();
    for md in &d.members {
        let h = m.base.handles[md.index];
        if h == 0 {
            continue;
        }
        if staged {
            let ty = md.cx(&arena).memory_type(fused_type);
            match d
                .staging
                .cover(d, md.index, vk::DeviceMemory::from_raw(h), size, ty)
            {
                Ok(b) => covers[md.index] = b,
                Err(why) => {
                    crate::info!(
                        "member {}: its copy cannot be reached through staging ({why}); not mirrored",
                        md.index
                    );
                    ok = false;
                    break;
                }
            }
            continue;
        }
        let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
        let r = md
            .fns
            .map_memory
            .map_or(vk::Result::ERROR_MEMORY_MAP_FAILED, |f| {
                // SAFETY: the member's own new memory, not mapped yet.
                unsafe {
                    f(
                        md.handle,
                        vk::DeviceMemory::from_raw(h),
                        0,
                        vk::WHOLE_SIZE,
                        vk::MemoryMapFlags::empty(),
                        &mut p,
                    )
                }
            });
        if r != vk::Result::SUCCESS || p.is_null() {
            crate::info!(
                "member {}: its copy cannot be mapped ({r:?}); not mirrored",
                md.index
            );
            ok = false;
            break;
        }
        copies[md.index] = p.cast();
    }
    let mirror = if ok {
        crate::mirror::Mirror::new(size, copies, covers)
    } else {
        None
    };
    if mirror.is_none() {
        unmap_copies(d, &m.base, &copies);
        uncover(d, &covers);
    }
    mirror.map(std::sync::Arc::new)
}

/// Destroys the buffers covering members' copies (`staging.rs`).
fn uncover(d: &Device, covers: &[vk::Buffer; crate::MAX_MEMBERS]) {
    for (m, b) in covers.iter().enumerate() {
        if !b.is_null() {
            d.staging.uncover(m, *b);
        }
    }
}

fn unmap_copies(d: &Device, base: &ObjectBase, copies: &[*mut u8; crate::MAX_MEMBERS]) {
    for md in &d.members {
        if copies[md.index].is_null() {
            continue;
        }
        if let Some(f) = md.fns.unmap_memory {
            // SAFETY: the member's memory, mapped by `mirror`.
            unsafe {
                f(
                    md.handle,
                    vk::DeviceMemory::from_raw(base.handles[md.index]),
                )
            };
        }
    }
}

/// # Safety
/// Arguments valid for `vkFreeMemory`.
pub unsafe extern "system" fn free_memory(
    device: vk::Device,
    mem: vk::DeviceMemory,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkFreeMemory", || {
        if mem.is_null() {
            return Ok(());
        }
        let d = dev(device)?;
        // SAFETY: made by allocate_memory; the application no longer uses it.
        let m = unsafe { Box::from_raw(mem.as_raw() as *mut Memory) };
        if let Some(mirror) = &m.mirror {
            crate::exec::remove_mirror(d, mem.as_raw());
            mirror.retire();
            let covers: [vk::Buffer; crate::MAX_MEMBERS] = std::array::from_fn(|k| mirror.cover(k));
            uncover(d, &covers);
            // Freeing a member's memory unmaps it.
        }
        free_members(d, &m.base, alloc);
        if !m.host.is_null() {
            // SAFETY: allocated with this layout; every member's import is freed above.
            unsafe { std::alloc::dealloc(m.host, m.host_layout) };
        }
        Ok(())
    })
}

/// The member that holds the application's mapping of memory that is not shared.
fn map_member<'a>(d: &'a Device, m: &Memory) -> Result<&'a MemberDevice, vk::Result> {
    d.members
        .iter()
        .find(|md| m.base.handles[md.index] != 0)
        .ok_or(vk::Result::ERROR_MEMORY_MAP_FAILED)
}

/// # Safety
/// Arguments valid for `vkMapMemory`.
pub unsafe extern "system" fn map_memory(
    device: vk::Device,
    mem: vk::DeviceMemory,
    offset: vk::DeviceSize,
    size: vk::DeviceSize,
    flags: vk::MemoryMapFlags,
    pp: *mut *mut std::ffi::c_void,
) -> vk::Result {
    crate::guard::result("vkMapMemory", || {
        let d = dev(device)?;
        let m = memory(mem)?;
        if !m.host.is_null() {
            // SAFETY: offset lies within the allocation (VUID-vkMapMemory-offset-00679).
            unsafe { *pp = m.host.add(offset as usize).cast() };
            return Ok(vk::Result::SUCCESS);
        }
        if let Some(mirror) = &m.mirror {
            // Device writes the application has synchronised with must be in the shadow.
            crate::exec::settle_finished(d);
            mirror.mapped(d, true);
            // SAFETY: offset lies within the allocation (VUID-vkMapMemory-offset-00679).
            unsafe { *pp = mirror.shadow().add(offset as usize).cast() };
            return Ok(vk::Result::SUCCESS);
        }
        let md = map_member(d, m)?;
        let f = md
            .fns
            .map_memory
            .ok_or_else(|| crate::guard::missing("vkMapMemory"))?;
        // SAFETY: the member's memory.
        let r = unsafe {
            f(
                md.handle,
                vk::DeviceMemory::from_raw(m.base.handles[md.index]),
                offset,
                size,
                flags,
                pp,
            )
        };
        if r == vk::Result::SUCCESS {
            Ok(r)
        } else {
            Err(r)
        }
    })
}

/// # Safety
/// Arguments valid for `vkUnmapMemory`.
pub unsafe extern "system" fn unmap_memory(device: vk::Device, mem: vk::DeviceMemory) {
    crate::guard::void("vkUnmapMemory", || {
        let d = dev(device)?;
        let m = memory(mem)?;
        if !m.host.is_null() {
            return Ok(());
        }
        if let Some(mirror) = &m.mirror {
            mirror.mapped(d, false);
            return Ok(());
        }
        let md = map_member(d, m)?;
        let f = md
            .fns
            .unmap_memory
            .ok_or_else(|| crate::guard::missing("vkUnmapMemory"))?;
        // SAFETY: the member's mapped memory.
        unsafe {
            f(
                md.handle,
                vk::DeviceMemory::from_raw(m.base.handles[md.index]),
            )
        };
        Ok(())
    })
}

type RangeFn =
    unsafe extern "system" fn(vk::Device, u32, *const vk::MappedMemoryRange) -> vk::Result;

/// Flush and invalidate: shared host memory is the same bytes for every member (the members
/// are host devices, or import host memory coherently); other memory goes to its mapping member.
fn ranges(
    device: vk::Device,
    count: u32,
    list: *const vk::MappedMemoryRange,
    get: impl Fn(&MemberDevice) -> Option<RangeFn>,
    name: &str,
) -> Result<vk::Result, vk::Result> {
    let d = dev(device)?;
    // SAFETY: `count` valid ranges.
    let list = unsafe { std::slice::from_raw_parts(list, count as usize) };
    for r in list {
        let m = memory(r.memory)?;
        if !m.host.is_null() {
            continue;
        }
        if m.mirror.is_some() {
            // Host writes to the shadow are copied at every submit; an invalidate is a host
            // synchronisation point for device writes.
            if name == "vkInvalidateMappedMemoryRanges" {
                crate::exec::settle_finished(d);
            }
            continue;
        }
        let md = map_member(d, m)?;
        let f = get(md).ok_or_else(|| crate::guard::missing(name))?;
        let one = vk::MappedMemoryRange {
            memory: vk::DeviceMemory::from_raw(m.base.handles[md.index]),
            ..*r
        };
        // SAFETY: the member's mapped memory.
        let res = unsafe { f(md.handle, 1, &one) };
        if res != vk::Result::SUCCESS {
            return Err(res);
        }
    }
    Ok(vk::Result::SUCCESS)
}

/// # Safety
/// Arguments valid for `vkFlushMappedMemoryRanges`.
pub unsafe extern "system" fn flush_mapped_memory_ranges(
    device: vk::Device,
    count: u32,
    list: *const vk::MappedMemoryRange,
) -> vk::Result {
    crate::guard::result("vkFlushMappedMemoryRanges", || {
        ranges(
            device,
            count,
            list,
            |md| md.fns.flush_mapped_memory_ranges,
            "vkFlushMappedMemoryRanges",
        )
    })
}

/// # Safety
/// Arguments valid for `vkInvalidateMappedMemoryRanges`.
pub unsafe extern "system" fn invalidate_mapped_memory_ranges(
    device: vk::Device,
    count: u32,
    list: *const vk::MappedMemoryRange,
) -> vk::Result {
    crate::guard::result("vkInvalidateMappedMemoryRanges", || {
        ranges(
            device,
            count,
            list,
            |md| md.fns.invalidate_mapped_memory_ranges,
            "vkInvalidateMappedMemoryRanges",
        )
    })
}

type Bind1<H> =
    unsafe extern "system" fn(vk::Device, H, vk::DeviceMemory, vk::DeviceSize) -> vk::Result;

/// `vkBindBufferMemory` and `vkBindImageMemory`: members that hold no part of the memory are
/// left out; members with memory of vkfuse's own for the object (`private`, `images.rs`) bind
/// it there.
fn bind1<H: vk::Handle + Copy>(
    d: &Device,
    object: H,
    mem: vk::DeviceMemory,
    offset: vk::DeviceSize,
    private: &[vk::DeviceMemory; crate::MAX_MEMBERS],
    get: impl Fn(&MemberDevice) -> Option<Bind1<H>>,
    name: &str,
) -> Result<vk::Result, vk::Result> {
    let m = memory(mem)?;
    for md in &d.members {
        let own = private[md.index];
        let (h, at) = if own.is_null() {
            (m.base.handles[md.index], offset)
        } else {
            (own.as_raw(), 0)
        };
        if h == 0 {
            continue;
        }
        let f = get(md).ok_or_else(|| crate::guard::missing(name))?;
        // SAFETY: the member's object and memory.
        let r = unsafe {
            f(
                md.handle,
                crate::conv::nd(object, md.index),
                vk::DeviceMemory::from_raw(h),
                at,
            )
        };
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
    }
    Ok(vk::Result::SUCCESS)
}

/// # Safety
/// Arguments valid for `vkBindBufferMemory`.
pub unsafe extern "system" fn bind_buffer_memory(
    device: vk::Device,
    buffer: vk::Buffer,
    mem: vk::DeviceMemory,
    offset: vk::DeviceSize,
) -> vk::Result {
    crate::guard::result("vkBindBufferMemory", || {
        let d = dev(device)?;
        let r = bind1(
            d,
            buffer,
            mem,
            offset,
            &[vk::DeviceMemory::null(); crate::MAX_MEMBERS],
            |md| md.fns.bind_buffer_memory,
            "vkBindBufferMemory",
        )?;
        bound(d, buffer.as_raw(), mem, offset, Bound::Buffer);
        Ok(r)
    })
}

/// # Safety
/// Arguments valid for `vkBindImageMemory`.
pub unsafe extern "system" fn bind_image_memory(
    device: vk::Device,
    image: vk::Image,
    mem: vk::DeviceMemory,
    offset: vk::DeviceSize,
) -> vk::Result {
    crate::guard::result("vkBindImageMemory", || {
        let d = dev(device)?;
        let private = crate::images::before_bind(d, image.as_raw());
        let r = bind1(
            d,
            image,
            mem,
            offset,
            &private,
            |md| md.fns.bind_image_memory,
            "vkBindImageMemory",
        )?;
        bound(d, image.as_raw(), mem, offset, Bound::Image);
        Ok(r)
    })
}

/// What was bound.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Buffer,
    Image,
    /// One plane of a disjoint image (bound once per plane).
    ImagePlane,
}

/// Records what a bound buffer or image leads to, for access sets: the range of `mem` from
/// `offset` that its memory requirements cover (for a plane of a disjoint image, the rest of
/// the memory).
fn bound(d: &Device, resource: u64, mem: vk::DeviceMemory, offset: vk::DeviceSize, what: Bound) {
    if !d.exec.multi {
        return;
    }
    if mem.is_null() {
        let leads = crate::access::Leads::Everything("an image bound to swapchain memory");
        // SAFETY: a buffer or image the application just bound: a live vkfuse object.
        unsafe { crate::access::set(resource, leads) };
        return;
    }
    let size = match what {
        Bound::Buffer => crate::memory::bound_size(d, resource, false),
        Bound::Image => crate::memory::bound_size(d, resource, true),
        Bound::ImagePlane => u64::MAX,
    };
    let range = vkfuse_memory::Range::at(offset, size);
    // An image copied between members of different drivers leads to itself: access sets name
    // it by its handle, with the subresources the commands name (`images.rs`).
    let leads = if what == Bound::Image && crate::images::bound(d, resource, mem.as_raw(), range) {
        crate::access::Leads::one(resource, vkfuse_memory::Range::WHOLE, true)
    } else {
        crate::access::Leads::one(mem.as_raw(), range, true)
    };
    // SAFETY: as above.
    unsafe {
        if what == Bound::ImagePlane {
            crate::access::merge(resource, &leads);
        } else {
            crate::access::set(resource, leads);
        }
    }
}

/// The `...2` binds: infos whose memory a member does not hold are left out for that member;
/// where `private` gives memory of vkfuse's own for info `i` on a member (`images.rs`), the
/// member's copy binds there (`place` sets memory and offset 0 in the member's copy).
#[allow(clippy::too_many_arguments)]
fn bind2<I: Copy>(
    d: &Device,
    count: u32,
    infos: *const I,
    memory_of: impl Fn(&I) -> vk::DeviceMemory,
    private: impl Fn(usize, usize) -> vk::DeviceMemory,
    place: impl Fn(&mut I, vk::DeviceMemory),
    fix: unsafe fn(&crate::conv::Cx, *mut I),
    get: impl Fn(
        &MemberDevice,
    ) -> Option<unsafe extern "system" fn(vk::Device, u32, *const I) -> vk::Result>,
    name: &str,
) -> Result<vk::Result, vk::Result> {
    // SAFETY: `count` valid infos.
    let list = unsafe { std::slice::from_raw_parts(infos, count as usize) };
    let arena = Arena::scope();
    for md in &d.members {
        let cx = md.cx(&arena);
        let mut mine = Vec::with_capacity(list.len());
        let mut own = Vec::new();
        for (k, i) in list.iter().enumerate() {
            let m = memory(memory_of(i))?;
            let p = private(k, md.index);
            if !p.is_null() {
                own.push((mine.len(), p));
                mine.push(*i);
            } else if m.base.handles[md.index] != 0 {
                mine.push(*i);
            }
        }
        if mine.is_empty() {
            continue;
        }
        let f = get(md).ok_or_else(|| crate::guard::missing(name))?;
        // The infos translated for the member, into the arena.
        let copies = cx.array(mine.as_ptr(), mine.len(), fix) as *mut I;
        for (at, p) in own {
            // SAFETY: `at` indexes the arena copy of `mine`, which is ours.
            place(unsafe { &mut *copies.add(at) }, p);
        }
        // SAFETY: the infos translated for the member.
        let r = unsafe { f(md.handle, mine.len() as u32, copies) };
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
    }
    Ok(vk::Result::SUCCESS)
}

/// # Safety
/// Arguments valid for `vkBindBufferMemory2`.
pub unsafe extern "system" fn bind_buffer_memory2(
    device: vk::Device,
    count: u32,
    infos: *const vk::BindBufferMemoryInfo,
) -> vk::Result {
    crate::guard::result("vkBindBufferMemory2", || {
        let d = dev(device)?;
        let r = bind2(
            d,
            count,
            infos,
            |i| i.memory,
            |_, _| vk::DeviceMemory::null(),
            |_, _| {},
            tr::fix_bind_buffer_memory_info,
            |md| md.fns.bind_buffer_memory2,
            "vkBindBufferMemory2",
        )?;
        for i in 0..count as usize {
            // SAFETY: `count` valid infos.
            let info = unsafe { &*infos.add(i) };
            bound(
                d,
                info.buffer.as_raw(),
                info.memory,
                info.memory_offset,
                Bound::Buffer,
            );
        }
        Ok(r)
    })
}

/// # Safety
/// Arguments valid for `vkBindImageMemory2`.
pub unsafe extern "system" fn bind_image_memory2(
    device: vk::Device,
    count: u32,
    infos: *const vk::BindImageMemoryInfo,
) -> vk::Result {
    crate::guard::result("vkBindImageMemory2", || {
        let d = dev(device)?;
        // SAFETY: `count` valid infos.
        let list = unsafe { std::slice::from_raw_parts(infos, count as usize) };
        let private: Vec<[vk::DeviceMemory; crate::MAX_MEMBERS]> = list
            .iter()
            .map(|i| crate::images::before_bind(d, i.image.as_raw()))
            .collect();
        let r = bind2(
            d,
            count,
            infos,
            |i| i.memory,
            |k, m| private[k][m],
            |i, p| {
                i.memory = p;
                i.memory_offset = 0;
            },
            tr::fix_bind_image_memory_info,
            |md| md.fns.bind_image_memory2,
            "vkBindImageMemory2",
        )?;
        for i in 0..count as usize {
            // SAFETY: `count` valid infos.
            let info = unsafe { &*infos.add(i) };
            let swapchain = crate::conv::chain_has(
                info.p_next,
                vk::StructureType::BIND_IMAGE_MEMORY_SWAPCHAIN_INFO_KHR,
            );
            let mem = if swapchain {
                vk::DeviceMemory::null()
            } else {
                info.memory
            };
            let plane = crate::conv::chain_has(
                info.p_next,
                vk::StructureType::BIND_IMAGE_PLANE_MEMORY_INFO,
            );
            let what = if plane {
                Bound::ImagePlane
            } else {
                Bound::Image
            };
            bound(d, info.image.as_raw(), mem, info.memory_offset, what);
        }
        Ok(r)
    })
}

/// `vkGetBufferDeviceAddress`: the primary's address. Shaders on other members see their own
/// addresses, so if they differ every later batch runs on the primary.
///
/// # Safety
/// Arguments valid for `vkGetBufferDeviceAddress`.
pub unsafe extern "system" fn get_buffer_device_address(
    device: vk::Device,
    info: *const vk::BufferDeviceAddressInfo,
) -> vk::DeviceAddress {
    crate::guard::value("vkGetBufferDeviceAddress", || {
        let d = dev(device)?;
        d.addresses_taken
            .store(true, std::sync::atomic::Ordering::Release);
        let arena = Arena::scope();
        let mut first = None;
        for md in &d.members {
            if !d.exec.multi && md.index != d.primary().index {
                continue;
            }
            let cx = md.cx(&arena);
            let f = md
                .fns
                .get_buffer_device_address
                .ok_or_else(|| crate::guard::missing("vkGetBufferDeviceAddress"))?;
            // SAFETY: the info translated for the member.
            let a = unsafe { f(md.handle, cx.one(info, tr::fix_buffer_device_address_info)) };
            match first {
                None => first = Some(a),
                Some(p) if p != a => {
                    crate::exec::pin_primary(d, "buffer device addresses differ between members")
                }
                Some(_) => {}
            }
        }
        Ok(first.unwrap_or(0))
    })
}
