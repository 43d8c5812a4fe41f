//! Semaphores shared between members of one driver on one device (issue 3): a wait of a batch
//! on member `j` for the last batch of member `i` on the same fused queue goes through a binary
//! semaphore that `i` exports as an opaque fd and `j` imports (a link), instead of the bridge
//! thread's host wait and signal. `exec.rs` submits an empty batch on `i` that signals the
//! link (its first scope holds every batch submitted before it on `i`'s queue) and adds the
//! link to the waits of `j`'s batch. Lavapipe exports no semaphores; SwiftShader exports and
//! imports binary ones only (not timeline ones), so links are binary, one signal and one wait
//! each, used again once the batch that waited for one completed.
//!
//! A pair whose export or import fails gets one message and goes through the bridge from
//! then on. By default (`VKFUSE_SYNC=auto`) only members that are not CPU drivers use links: a
//! GPU waits for a semaphore without a host thread, while a CPU driver's queue thread waits on
//! the host either way, and on SwiftShader the empty signalling batch made a chain of
//! dependent submits slower than the bridge. `VKFUSE_SYNC=shared` uses them wherever members
//! can (the tests, on two SwiftShader members), `bridge` nowhere; `VKFUSE_FAULT=semaphores:M`
//! makes member M's links fail.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use ash::vk;

use crate::object::{Device, MemberDevice, PhysMember};
use crate::MAX_MEMBERS;

/// A member's done point (`exec.rs`).
type Edge = crate::mirror::Edge;

/// The extension links need, enabled on member devices by `device.rs`.
pub const SEMAPHORE_FD_EXT: &str = "VK_KHR_external_semaphore_fd";

/// `vkGetSemaphoreFdKHR` and `vkImportSemaphoreFdKHR` of a member device created with
/// `VK_KHR_external_semaphore_fd` (not offered to applications).
#[derive(Clone, Copy)]
pub struct SemaphoreFd {
    pub get: vk::PFN_vkGetSemaphoreFdKHR,
    pub import: vk::PFN_vkImportSemaphoreFdKHR,
}

/// Whether the member offers the extension links need (vkfuse enables it on member devices
/// when batches run on several members, `device.rs`).
pub fn offers_fd(pm: &PhysMember) -> bool {
    pm.extensions.iter().any(|e| e == SEMAPHORE_FD_EXT)
}

/// Whether members `a` and `b` share binary semaphores through opaque fds under the
/// configuration (`VKFUSE_SYNC`): they can (`shareable`), and with `auto` neither is a CPU
/// driver.
pub fn shared(a: &PhysMember, b: &PhysMember) -> bool {
    use crate::config::SyncPath;
    let cpu = |m: &PhysMember| m.properties.device_type == vk::PhysicalDeviceType::CPU;
    match crate::config::Config::get().sync {
        SyncPath::Bridge => false,
        SyncPath::Shared => shareable(a, b),
        SyncPath::Auto => !cpu(a) && !cpu(b) && shareable(a, b),
    }
}

/// Whether members `a` and `b` can share binary semaphores through opaque fds, both ways: one
/// driver on one device (equal driver and device UUIDs), `VK_KHR_external_semaphore_fd` on
/// both, and each exports and imports binary semaphores of that handle type.
pub fn shareable(a: &PhysMember, b: &PhysMember) -> bool {
    a.same_device(b)
        && offers_fd(a)
        && offers_fd(b)
        && opaque_fd_both_ways(a)
        && opaque_fd_both_ways(b)
}

/// Whether the member exports and imports binary semaphores as opaque fds.
fn opaque_fd_both_ways(pm: &PhysMember) -> bool {
    let Some(query) = pm.fns.get_physical_device_external_semaphore_properties else {
        return false;
    };
    let ty = vk::SemaphoreTypeCreateInfo {
        semaphore_type: vk::SemaphoreType::BINARY,
        ..Default::default()
    };
    let info = vk::PhysicalDeviceExternalSemaphoreInfo {
        p_next: (&ty as *const vk::SemaphoreTypeCreateInfo).cast(),
        handle_type: vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD,
        ..Default::default()
    };
    let mut props = vk::ExternalSemaphoreProperties::default();
    // SAFETY: the member's physical device; valid input and output structures.
    unsafe { query(pm.handle, &info, &mut props) };
    let both = vk::ExternalSemaphoreFeatureFlags::EXPORTABLE
        | vk::ExternalSemaphoreFeatureFlags::IMPORTABLE;
    props.external_semaphore_features.contains(both)
        && props
            .compatible_handle_types
            .contains(vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD)
}

/// One shared binary semaphore: `signal` is member `from`'s (exported), `wait` member `to`'s
/// (imported, the same payload).
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub from: usize,
    pub to: usize,
    pub signal: vk::Semaphore,
    pub wait: vk::Semaphore,
}

/// A device's links, kept under its execution state's lock.
#[derive(Default)]
pub struct Links {
    /// Per member `j`: the members whose links `j` may wait for (one bit each).
    pub from: [u64; MAX_MEMBERS],
    /// Every link made, destroyed with the device.
    all: Vec<Link>,
    free: Vec<Link>,
    /// Links signalled, with the done point of the batch that waited for each, oldest first.
    busy: std::collections::VecDeque<(Link, Edge)>,
    /// Waits that went through links, for the teardown line.
    pub waits: u64,
}

impl Links {
    /// The pairs of `members` that share semaphores (`shared`): per member, the bits of the
    /// others. `phys` finds a member's physical device.
    pub fn new<'a>(
        members: &[MemberDevice],
        phys: impl Fn(usize) -> Option<&'a PhysMember>,
    ) -> Links {
        let mut links = Links::default();
        for a in members {
            for b in members {
                if a.index == b.index || a.semaphore_fd.is_none() || b.semaphore_fd.is_none() {
                    continue;
                }
                if let (Some(pa), Some(pb)) = (phys(a.index), phys(b.index)) {
                    if shared(pa, pb) {
                        links.from[b.index] |= 1 << a.index;
                    }
                }
            }
        }
        links
    }

    /// A link from `i` to `j`: a free one, one whose waiting batch completed, or a new one.
    /// `None` when none can be made (the pair then uses the bridge, said once). The caller
    /// signals it, and hands it to `submitted` once the batch waiting for it was submitted;
    /// a link not handed back may hold a signal no wait consumes, and is never used again.
    pub fn take(&mut self, d: &Device, i: usize, j: usize) -> Option<Link> {
        let pair = |l: &Link| l.from == i && l.to == j;
        if let Some(p) = self.free.iter().position(pair) {
            return Some(self.free.swap_remove(p));
        }
        // Links whose waiting batch completed, oldest first, up to the first that has not
        // (later ones wait: at most one counter read per link in flight, not a scan of all
        // of them per take).
        let done = |e: &Edge| {
            d.member(e.0)
                .is_some_and(|md| crate::exec::counter(md, e.1) >= e.2)
        };
        while let Some((l, e)) = self.busy.front().copied() {
            if !done(&e) {
                break;
            }
            self.busy.pop_front();
            self.free.push(l);
        }
        if let Some(p) = self.free.iter().position(pair) {
            return Some(self.free.swap_remove(p));
        }
        match create(d, i, j) {
            Ok(l) => {
                self.all.push(l);
                Some(l)
            }
            Err(why) => {
                crate::warn!(
                    "members {} and {}: cannot share a semaphore ({why}); waits between them go through the bridge thread",
                    i.min(j),
                    i.max(j)
                );
                self.from[j] &= !(1 << i);
                self.from[i] &= !(1 << j);
                None
            }
        }
    }

    /// The batch that waits for `links` (signalled) was submitted and completes at `done`.
    pub fn submitted(&mut self, links: &[Link], done: Edge) {
        self.busy.extend(links.iter().map(|l| (*l, done)));
        self.waits += links.len() as u64;
    }

    /// How many links were made.
    pub fn made(&self) -> usize {
        self.all.len()
    }

    /// Destroys every link; the device is idle (vkDestroyDevice).
    pub fn destroy(&mut self, d: &Device) {
        self.free.clear();
        self.busy.clear();
        for l in self.all.drain(..) {
            destroy(d, l.from, l.signal);
            destroy(d, l.to, l.wait);
        }
    }
}

fn destroy(d: &Device, m: usize, s: vk::Semaphore) {
    if let Some(md) = d.member(m) {
        crate::exec::destroy_member_semaphore(md, s, std::ptr::null());
    }
}

/// Creates a binary semaphore on `md`, exportable as an opaque fd when `export`.
fn binary(md: &MemberDevice, export: bool) -> Result<vk::Semaphore, String> {
    let ex = vk::ExportSemaphoreCreateInfo {
        handle_types: vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD,
        ..Default::default()
    };
    let chain = if export {
        (&ex as *const vk::ExportSemaphoreCreateInfo).cast()
    } else {
        std::ptr::null()
    };
    // SAFETY: null or an export structure of a handle type the member exports (`shareable`),
    // alive until the call returns.
    unsafe { crate::exec::member_semaphore(md, chain) }
        .map_err(|r| format!("member {}: vkCreateSemaphore {r:?}", md.index))
}

/// A new link from `i` to `j`: a semaphore made on `i`, exported, imported into one made on
/// `j`.
fn create(d: &Device, i: usize, j: usize) -> Result<Link, String> {
    let cfg = crate::config::Config::get();
    if let Some(m) = [i, j].into_iter().find(|m| cfg.fault("semaphores", *m)) {
        return Err(format!("member {m}: VKFUSE_FAULT"));
    }
    let (Some(a), Some(b)) = (d.member(i), d.member(j)) else {
        return Err("a member is gone".into());
    };
    let (Some(fa), Some(fb)) = (a.semaphore_fd, b.semaphore_fd) else {
        return Err("VK_KHR_external_semaphore_fd is not enabled".into());
    };
    let signal = binary(a, true)?;
    let made = (|| {
        let gi = vk::SemaphoreGetFdInfoKHR {
            semaphore: signal,
            handle_type: vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD,
            ..Default::default()
        };
        let mut raw = -1;
        // SAFETY: a semaphore just created exportable as an opaque fd.
        let r = unsafe { (fa.get)(a.handle, &gi, &mut raw) };
        if r != vk::Result::SUCCESS || raw < 0 {
            return Err(format!("member {i}: vkGetSemaphoreFdKHR {r:?}"));
        }
        // SAFETY: a new fd the member handed over; ours until an import takes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let wait = binary(b, false)?;
        let ii = vk::ImportSemaphoreFdInfoKHR {
            semaphore: wait,
            handle_type: vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD,
            fd: fd.into_raw_fd(),
            ..Default::default()
        };
        // SAFETY: a semaphore of `j` with no pending operation; a valid opaque fd of the same
        // driver on the same device.
        let r = unsafe { (fb.import)(b.handle, &ii) };
        if r != vk::Result::SUCCESS {
            // A failed import leaves the fd with the caller.
            // SAFETY: the fd given above, not taken by the member.
            drop(unsafe { OwnedFd::from_raw_fd(ii.fd) });
            destroy(d, j, wait);
            return Err(format!("member {j}: vkImportSemaphoreFdKHR {r:?}"));
        }
        Ok(wait)
    })();
    match made {
        Ok(wait) => Ok(Link {
            from: i,
            to: j,
            signal,
            wait,
        }),
        Err(e) => {
            destroy(d, i, signal);
            Err(e)
        }
    }
}

/// Submits on `queue` of member `md` (`i`, the link's `from`) an empty batch that signals
/// `link`: after every batch submitted before it there.
pub fn signal(md: &MemberDevice, queue: vk::Queue, link: &Link) -> Result<(), vk::Result> {
    let submit2 = md
        .fns
        .queue_submit2
        .ok_or_else(|| crate::guard::missing("vkQueueSubmit2"))?;
    let s = [vk::SemaphoreSubmitInfo {
        semaphore: link.signal,
        stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
        ..Default::default()
    }];
    let info = vk::SubmitInfo2 {
        signal_semaphore_info_count: 1,
        p_signal_semaphore_infos: s.as_ptr(),
        ..Default::default()
    };
    // SAFETY: the member's queue of the fused queue being submitted to (externally synchronised
    // with it); a binary semaphore of the member with no pending signal.
    let r = unsafe { submit2(queue, 1, &info, vk::Fence::null()) };
    if r == vk::Result::SUCCESS {
        Ok(())
    } else {
        Err(r)
    }
}
