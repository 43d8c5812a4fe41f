//! Mirrored allocations: one copy per member and a host shadow, kept coherent by copies.
//!
//! This is the path for host-visible memory that is not one host allocation shared by every
//! member (a member without `VK_EXT_external_memory_host`, or `VKFUSE_SHARING=mirrored`). Each
//! member allocates its own memory, which vkfuse maps once for good; the application maps the
//! **shadow**, a host allocation of vkfuse's. Copies go through the members' mappings, so every
//! member memory type used must be host-visible (otherwise the allocation is not mirrored and
//! batches pin to one member, as before).
//!
//! Per allocation (not per range), in submission order:
//!
//! - `holders`: the members whose copy holds the latest contents. A submit that may follow host
//!   writes (the allocation is mapped, or was since the last submit) clears it: the shadow is
//!   then the only current copy.
//! - An allocation the application has never mapped cannot be written or read by the host, so
//!   the shadow is left out: a member that needs the latest contents gets them straight from
//!   the copy of the member that ran the last batch, once that batch finished (one copy). The
//!   first `vkMapMemory` brings the shadow up to date from there (waiting for that batch), and
//!   from then on the allocation goes through the shadow as below.
//! - A batch on member `j` that touches the allocation is preceded by a step on the bridge
//!   thread ([`Mirror::prepare`]): the previous batch's changes are merged into the shadow,
//!   then the shadow is copied into `j`'s copy if `j` does not hold the latest contents, and
//!   `j`'s copy as the batch will find it is kept as a **snapshot**. Every touched allocation
//!   counts as written, so afterwards `j` alone holds it.
//! - After the batch, only the bytes that differ from the snapshot are written back into the
//!   shadow ([`Mirror::settle`]). The application may write other bytes of a mapped allocation
//!   while a batch runs (a ring of uploads, say); a plain copy back would undo those writes.
//!   This is exact for every batch that does not race with the host on the same bytes.
//! - The write-back happens when something may look: the next batch that touches the
//!   allocation (on the bridge thread, after that batch's done point), and every host
//!   synchronisation that can make device writes visible to the host (fence and semaphore
//!   waits and queries, queue and device idle, `vkMapMemory`, `vkInvalidateMappedMemoryRanges`;
//!   `exec::settle_finished`).
//!
//! Batches that touch the same allocation are already ordered by their access sets
//! (`exec.rs`). The steps run in submission order per allocation (tickets handed out by
//! [`Mirror::claim`]), so the step for a batch always finds the previous batch's write-back
//! pending or done. A batch with semaphore waits gets its step only once those waits are over
//! (the host may write the shadow until it signals what the batch waits for): `exec.rs` moves
//! the waits to an empty batch before it and runs the step on a thread of its own after that
//! batch, so it holds up no other step.
//!
//! Not covered: host writes made after a batch was made ready and seen by it through an event
//! the host sets (`vkSetEvent` with a device-side `vkCmdWaitEvents`); the batch keeps the copy
//! it was given. Whole allocations are copied, not the ranges a batch touches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ash::vk;
use parking_lot::{Condvar, Mutex};

use crate::object::Device;
use crate::MAX_MEMBERS;

/// A member's done point: (member, done timeline semaphore, value).
pub type Edge = (usize, vk::Semaphore, u64);

/// The coherence state of one mirrored allocation (shared by the allocation and the device's
/// registry).
pub struct Mirror {
    size: usize,
    shadow: *mut u8,
    layout: std::alloc::Layout,
    /// Each member's persistent mapping of its copy (null where it holds none).
    copies: [*mut u8; MAX_MEMBERS],
    /// Members whose copy is current, one bit each (changed under the exec lock).
    holders: AtomicU64,
    /// The application has the shadow mapped.
    mapped: AtomicBool,
    /// The application may have written the shadow since the last submit that touched it.
    host_dirty: AtomicBool,
    /// The last ticket handed out by [`Mirror::claim`].
    tickets: AtomicU64,
    inner: Mutex<Inner>,
    /// Signalled when a [`Mirror::prepare`] is done (the next ticket's turn).
    turn: Condvar,
}

struct Inner {
    /// The last batch prepared: its member and done point (its member's copy holds the latest
    /// contents once it finished).
    last: Option<Edge>,
    /// `last`'s changes are still to be merged into the shadow (its snapshot is valid).
    pending: bool,
    /// The shadow holds the latest contents (once `pending` is merged).
    shadow_current: bool,
    /// The application has mapped the allocation at least once: the shadow takes part.
    ever_mapped: bool,
    /// The pending batch's copy as it started (reused between batches).
    snapshot: Vec<u8>,
    /// The allocation was freed: the member copies are gone.
    dead: bool,
    /// The last ticket whose [`Mirror::prepare`] is done: steps run in submission order even
    /// when they run on different threads (a batch with semaphore waits gets a thread of its
    /// own, `exec.rs`).
    served: u64,
}

// SAFETY: the raw pointers are the shadow (owned) and member mappings that live until
// `retire`; every access to them goes through `inner` or follows the ordering above.
unsafe impl Send for Mirror {}
// SAFETY: see Send.
unsafe impl Sync for Mirror {}

impl Drop for Mirror {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.shadow, self.layout) };
    }
}

/// What one [`Mirror::prepare`] copied, for the log.
#[derive(Default, Clone, Copy)]
pub struct Copied {
    /// Bytes compared and merged into the shadow.
    pub merged: usize,
    /// Bytes copied from the shadow into the member's copy.
    pub copied_in: usize,
    /// Bytes copied from another member's copy.
    pub from_member: usize,
}

impl Mirror {
    /// A mirror of `size` bytes over the members' mapped copies; `None` when the shadow cannot
    /// be allocated. Every member starts as a holder: the contents are undefined anyway.
    pub fn new(size: u64, copies: [*mut u8; MAX_MEMBERS]) -> Option<Mirror> {
        let size = usize::try_from(size).ok()?.max(1);
        // Page-aligned, as drivers map their own allocations: programs rely on the alignment
        // of mapped pointers (GL_MIN_MAP_BUFFER_ALIGNMENT through Zink).
        let layout = std::alloc::Layout::from_size_align(size, 4096).ok()?;
        // SAFETY: a non-zero size.
        let shadow = unsafe { std::alloc::alloc_zeroed(layout) };
        if shadow.is_null() {
            return None;
        }
        let holders = copies
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_null())
            .fold(0u64, |acc, (i, _)| acc | 1 << i);
        Some(Mirror {
            size,
            shadow,
            layout,
            copies,
            holders: AtomicU64::new(holders),
            mapped: AtomicBool::new(false),
            host_dirty: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                last: None,
                pending: false,
                shadow_current: true,
                ever_mapped: false,
                snapshot: Vec::new(),
                dead: false,
                served: 0,
            }),
            tickets: AtomicU64::new(0),
            turn: Condvar::new(),
        })
    }

    /// The pointer the application maps.
    pub fn shadow(&self) -> *mut u8 {
        self.shadow
    }

    /// `vkMapMemory` (`on`) or `vkUnmapMemory`. The first map brings the shadow up to date,
    /// waiting for the last batch that touched the allocation.
    pub fn mapped(&self, d: &Device, on: bool) {
        if on {
            self.first_map(d);
            self.host_dirty.store(true, Ordering::Release);
        }
        self.mapped.store(on, Ordering::Release);
    }

    fn first_map(&self, d: &Device) {
        loop {
            let last = {
                let mut inner = self.inner.lock();
                if inner.ever_mapped || inner.dead {
                    return;
                }
                match inner.last {
                    Some(last) if !inner.shadow_current => last,
                    _ => {
                        inner.ever_mapped = true;
                        return;
                    }
                }
            };
            // Wait without the lock; a batch prepared meanwhile makes this round start over.
            reached(d, last, true);
            let mut inner = self.inner.lock();
            if inner.last != Some(last) || inner.ever_mapped || inner.dead {
                continue;
            }
            let src = self.copies[last.0];
            if !src.is_null() {
                // SAFETY: the member's mapped copy, its last batch finished; the shadow holds
                // `size` bytes and the application has not mapped it yet.
                unsafe { std::ptr::copy_nonoverlapping(src, self.shadow, self.size) };
            }
            inner.shadow_current = true;
            inner.ever_mapped = true;
            return;
        }
    }

    /// A batch on member `j` touches the allocation (called in submission order, under the
    /// exec lock): whether `j`'s copy must be brought up to date first, and the ticket that
    /// orders its [`Mirror::prepare`]. `j` alone holds the latest contents afterwards.
    pub fn claim(&self, j: usize) -> (bool, u64) {
        let mapped = self.mapped.load(Ordering::Acquire);
        if self.host_dirty.swap(mapped, Ordering::AcqRel) {
            self.holders.store(0, Ordering::Release);
        }
        let need = self.holders.load(Ordering::Acquire) & (1 << j) == 0;
        self.holders.store(1 << j, Ordering::Release);
        (need, self.tickets.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Member `m` is lost: its copy no longer holds anything.
    pub fn forget(&self, m: usize) {
        self.holders.fetch_and(!(1 << m), Ordering::AcqRel);
    }

    /// Whether the changes of a batch on member `m` may not be in the shadow yet.
    pub fn pending_on(&self, m: usize) -> bool {
        let inner = self.inner.lock();
        !inner.shadow_current && inner.last.is_some_and(|p| p.0 == m)
    }

    /// Before a batch on member `j` that finishes at `done` (bridge thread). Mapped at some
    /// time: merges the previous batch's changes into the shadow (waiting for it), copies the
    /// shadow in when `copy_in`, and keeps `j`'s copy as the snapshot. Never mapped: when
    /// `copy_in`, copies the latest contents (the shadow's, or the last batch's member's once it
    /// finished) into `j`'s copy.
    pub fn prepare(&self, d: &Device, j: usize, copy_in: bool, done: Edge, ticket: u64) -> Copied {
        {
            let mut inner = self.inner.lock();
            while inner.served + 1 < ticket && !inner.dead {
                self.turn.wait(&mut inner);
            }
        }
        let out = self.prepare_in_turn(d, j, copy_in, done);
        let mut inner = self.inner.lock();
        inner.served = inner.served.max(ticket);
        self.turn.notify_all();
        out
    }

    fn prepare_in_turn(&self, d: &Device, j: usize, copy_in: bool, done: Edge) -> Copied {
        let mut out = Copied {
            merged: self.settle(d, true),
            ..Copied::default()
        };
        let last = self.inner.lock().last;
        if let Some(last) = last.filter(|l| copy_in || l.0 != j) {
            // Nothing may write `j`'s copy, or read the source, before the last batch finished
            // (on `j` itself, the queue keeps the order of batches that copy nothing).
            reached(d, last, true);
        }
        let mut inner = self.inner.lock();
        let dst = self.copies[j];
        if inner.dead || dst.is_null() {
            return out;
        }
        if !inner.ever_mapped {
            if copy_in {
                let src = match inner.last {
                    Some((k, ..)) if !inner.shadow_current && k != j => self.copies[k],
                    _ => self.shadow,
                };
                if !src.is_null() {
                    // SAFETY: two distinct mapped copies (or the shadow) of `size` bytes; the
                    // last batch finished and this one waits for this step.
                    unsafe { std::ptr::copy_nonoverlapping(src, dst, self.size) };
                    if src == self.shadow {
                        out.copied_in = self.size;
                    } else {
                        out.from_member = self.size;
                    }
                }
            }
            inner.last = Some(done);
            inner.shadow_current = false;
            return out;
        }
        let Inner { snapshot, .. } = &mut *inner;
        snapshot.resize(self.size, 0);
        // SAFETY: the shadow and `j`'s mapped copy hold `size` bytes; no batch uses `j`'s copy
        // now (the previous one finished: settled above; this one waits for this step).
        unsafe {
            if copy_in {
                std::ptr::copy_nonoverlapping(self.shadow, snapshot.as_mut_ptr(), self.size);
                std::ptr::copy_nonoverlapping(snapshot.as_ptr(), dst, self.size);
                out.copied_in = self.size;
            } else {
                std::ptr::copy_nonoverlapping(dst, snapshot.as_mut_ptr(), self.size);
            }
        }
        inner.last = Some(done);
        inner.pending = true;
        inner.shadow_current = false;
        out
    }

    /// Writes the pending batch's changes into the shadow: after waiting for it (`wait`), or
    /// only if it has finished. Returns the bytes compared (0 when nothing was pending or it
    /// has not finished).
    pub fn settle(&self, d: &Device, wait: bool) -> usize {
        let edge = {
            let inner = self.inner.lock();
            match inner.last {
                Some(e) if inner.pending => e,
                _ => return 0,
            }
        };
        // Wait without the lock: host synchronisation settles finished batches meanwhile.
        if !reached(d, edge, wait) {
            return 0;
        }
        let mut inner = self.inner.lock();
        if inner.dead || !inner.pending || inner.last != Some(edge) {
            return 0;
        }
        inner.pending = false;
        inner.shadow_current = true;
        let src = self.copies[edge.0];
        if src.is_null() || inner.snapshot.len() != self.size {
            return 0;
        }
        // SAFETY: `src` is the member's mapped copy of `size` bytes, no longer written (its
        // batch finished); the shadow holds `size` bytes.
        unsafe { merge(src, &inner.snapshot, self.shadow, self.size) };
        self.size
    }

    /// Member `m` is lost after its batches finished: what the last of them wrote is taken
    /// into the shadow (merged, or copied when never mapped) while its copy can still be read.
    pub fn rescue(&self, d: &Device, m: usize) {
        if !self.pending_on(m) {
            return;
        }
        self.settle(d, false);
        let mut inner = self.inner.lock();
        if inner.dead || inner.shadow_current || inner.last.is_none_or(|e| e.0 != m) {
            return;
        }
        let src = self.copies[m];
        if !src.is_null() {
            // SAFETY: the member's mapped copy; its batches finished; the shadow holds `size`
            // bytes and is not mapped (never-mapped allocation).
            unsafe { std::ptr::copy_nonoverlapping(src, self.shadow, self.size) };
        }
        inner.shadow_current = true;
    }

    /// The allocation is being freed: no copy is touched from now on.
    pub fn retire(&self) {
        let mut inner = self.inner.lock();
        inner.dead = true;
        inner.pending = false;
        inner.snapshot = Vec::new();
        self.turn.notify_all();
    }
}

/// Whether the done point `edge` is reached, waiting for it (blocking, no spinning) when
/// `wait`. A lost member's point counts as reached: its copy is what it is (a batch that never
/// ran left it equal to its snapshot, so nothing is merged).
fn reached(d: &Device, (m, sem, value): Edge, wait: bool) -> bool {
    let Some(md) = d.member(m) else { return true };
    if d.exec.member_lost(m) || crate::exec::counter(md, sem) >= value {
        return true;
    }
    if !wait {
        return false;
    }
    let r = crate::exec::host_wait(md, sem, value, u64::MAX);
    if r != vk::Result::SUCCESS {
        crate::warn!("member {m}: waiting for its work failed ({r:?})");
    }
    true
}

/// Waits (blocking) for the done point `edge`, unless its member is lost.
pub fn wait_point(d: &Device, edge: Edge) {
    reached(d, edge, true);
}

/// Writes into `dst` every byte where `src` differs from `base` (all `len` bytes long), and
/// no other: bytes of `dst` that the host changed meanwhile elsewhere stay.
///
/// # Safety
/// `src` and `dst` hold `len` bytes; `dst` is not `src`.
unsafe fn merge(src: *const u8, base: &[u8], dst: *mut u8, len: usize) {
    const W: usize = 8;
    let words = len / W;
    for w in 0..words {
        let o = w * W;
        // SAFETY: within `len` bytes.
        let (a, b) = unsafe {
            (
                std::ptr::read_unaligned(src.add(o) as *const u64),
                std::ptr::read_unaligned(base.as_ptr().add(o) as *const u64),
            )
        };
        let diff = a ^ b;
        if diff == 0 {
            continue;
        }
        let all = (0..W).all(|k| (diff >> (8 * k)) & 0xff != 0);
        if all {
            // SAFETY: within `len` bytes.
            unsafe { std::ptr::write_unaligned(dst.add(o) as *mut u64, a) };
        } else {
            for k in 0..W {
                let x = (a >> (8 * k)) as u8;
                if x != (b >> (8 * k)) as u8 {
                    // SAFETY: within `len` bytes.
                    unsafe { dst.add(o + k).write(x) };
                }
            }
        }
    }
    for (o, b) in base.iter().enumerate().take(len).skip(words * W) {
        // SAFETY: within `len` bytes.
        unsafe {
            let x = *src.add(o);
            if x != *b {
                dst.add(o).write(x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_writes_only_the_changed_bytes() {
        let base: Vec<u8> = (0..37u8).collect();
        let mut src = base.clone();
        // A whole word (bytes 24..32) changed, and single bytes elsewhere.
        for b in &mut src[24..32] {
            *b ^= 0xff;
        }
        src[3] = 200;
        src[16] = 201;
        src[36] = 202;
        // The host wrote bytes 4 and 17 meanwhile: they must stay.
        let mut dst = base.clone();
        dst[4] = 100;
        dst[17] = 101;
        // SAFETY: all 37 bytes long.
        unsafe { merge(src.as_ptr(), &base, dst.as_mut_ptr(), base.len()) };
        let mut want = base.clone();
        want[3] = 200;
        want[16] = 201;
        want[36] = 202;
        want[4] = 100;
        want[17] = 101;
        for b in &mut want[24..32] {
            *b ^= 0xff;
        }
        assert_eq!(dst, want);
    }

    #[test]
    fn a_claim_after_host_writes_needs_a_copy_everywhere() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let mut copies = [std::ptr::null_mut(); MAX_MEMBERS];
        copies[0] = a.as_mut_ptr();
        copies[1] = b.as_mut_ptr();
        let Some(m) = Mirror::new(16, copies) else {
            panic!("no shadow for 16 bytes");
        };
        // Page-aligned like drivers' own mappings (Zink relies on more than 64 bytes).
        assert_eq!(m.shadow() as usize % 4096, 0);
        let need = |j| m.claim(j).0;
        // Fresh: every member holds the (undefined) contents.
        assert!(!need(0));
        // Member 0 wrote last: member 1 needs a copy, then member 0 does.
        assert!(need(1));
        assert!(need(0));
        assert!(!need(0));
        // Mapped: every submit may follow host writes.
        m.mapped.store(true, Ordering::Release);
        m.host_dirty.store(true, Ordering::Release);
        assert!(need(0));
        assert!(need(0));
        // Unmapped after writes: one more copy, then none.
        m.mapped.store(false, Ordering::Release);
        assert!(need(0));
        assert!(!need(0));
        m.forget(0);
        assert!(need(0));
        // Tickets follow the claims.
        assert_eq!(m.claim(1).1, 10);
    }
}
