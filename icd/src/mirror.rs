//! Mirrored allocations: one copy per member and a host shadow, kept coherent by copies.
//!
//! This is the path for host-visible memory that is not one host allocation shared by every
//! member (a member without `VK_EXT_external_memory_host`, or `VKFUSE_SHARING=mirrored`). Each
//! member allocates its own memory, which vkfuse maps once for good; the application maps the
//! **shadow**, a host allocation of vkfuse's. Copies go through the members' mappings, so every
//! member memory type used must be host-visible (otherwise the allocation is not mirrored and
//! batches pin to one member, as before).
//!
//! Per byte range of the allocation, in submission order ([`claim_all`], under the exec lock),
//! the `memory` crate's coherence tracker (one per device, `exec.rs`) knows which sites hold
//! the latest contents: each member's copy, and the host's shadow, is a storage of its own. A
//! member's copy is **stale** where it is not among the holders: a batch on another member may
//! have written there since it was last brought up to date. A batch's access set
//! (`access.rs`) names the ranges it touches (the ranges its buffers and images are bound to)
//! and those it may write. The tracker plans a batch on member `j`: the stale part of what it
//! touches is transferred into `j` first; afterwards `j` holds it, and `j` alone holds what the
//! batch may write. Suballocating programs (one large allocation holding many buffers)
//! therefore copy what their batches use, not whole allocations. A submit that may follow host
//! writes (the allocation is mapped, or was since the last submit) is a host write of the whole
//! allocation first: the shadow is then the only holder. The tracker names a source for each
//! transfer; the copies below take the route this module's state gives (the shadow, once
//! pending write-backs are merged, or the last writer's copy or output stage), which holds the
//! same bytes.
//!
//! The copies themselves run before each batch, on the bridge thread ([`Mirror::prepare`]):
//!
//! - Mapped at some time: the pending changes of earlier batches to the ranges the batch
//!   touches are merged into the shadow (waiting for those batches; batches that wrote other
//!   ranges may still run on other members), the stale ranges are copied from the shadow into
//!   `j`'s copy, and for a
//!   batch that may write, `j`'s copy of the written ranges as the batch will find them is kept
//!   as a **snapshot**. After the batch, only the bytes that differ from the snapshot are
//!   written back into the shadow ([`Mirror::settle`]): the application may write other bytes
//!   of a mapped allocation while a batch runs (a ring of uploads, say), and a plain copy back
//!   would undo those writes. This is exact for every batch that does not race with the host
//!   on the same bytes.
//! - Never mapped (the host cannot read or write it): no shadow, no snapshot. Each written
//!   range is **owned** by the copy of the member whose batch wrote it last; a stale range is
//!   copied straight from its owner's copy once that batch finished (one copy), or from the
//!   shadow where no member owns it. The first `vkMapMemory` brings the shadow up to date from
//!   the owners (waiting for their batches), and from then on the allocation is mapped as above.
//! - A batch that only reads the allocation is only brought up to date: no snapshot, nothing
//!   to write back, and data every member reads (textures, vertex and uniform buffers) is
//!   copied once per member, not before every batch.
//!
//! The write-back happens when something may look: the next batch that touches those ranges
//! (on the bridge thread, after that batch's done point), and every host synchronisation that
//! can make device writes visible to the host (fence and semaphore waits and queries, queue
//! and device idle, `vkMapMemory`, `vkInvalidateMappedMemoryRanges`; `exec::settle_finished`).
//!
//! Batches that touch the same range of an allocation, one of them writing, are ordered by
//! their access sets (`exec.rs`). The steps run in submission order per allocation (tickets
//! handed out by [`Mirror::claim`]), so the step for a batch always finds the write-backs of
//! earlier writers of its ranges pending or done. Before ranges of `j`'s copy are copied into,
//! the batches of `j` that touched those ranges (on every queue of `j`) must have finished: a
//! batch that only read them is not ordered with later batches by the access sets. A batch with semaphore waits gets its step only once
//! those waits are over (the host may write the shadow until it signals what the batch waits
//! for): `exec.rs` moves the waits to an empty batch before it and runs the step on a thread of
//! its own after that batch, so it holds up no other step.
//!
//! Host writes made after a batch was made ready and published to it through an event the
//! host sets (`vkSetEvent`, waited for on the device by `vkCmdWaitEvents`) are copied into the
//! mapped copies of the members whose batches still run before the event is set
//! ([`Mirror::publish_host_writes`]). Not covered: copies reached through staging, whose bytes
//! only the member's own transfer commands move, queued behind the running batch.
//!
//! Ranges are the parts of buffers that commands and descriptors name, where they name them,
//! and whole bound buffers otherwise (`access.rs`); images copied between drivers are not
//! among them (`images.rs` copies those as images).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ash::vk;
use ash::vk::Handle as _;
use parking_lot::{Condvar, Mutex};
use vkfuse_memory::{
    BatchAccess, CoherenceError, Range, RangeSet, ResourceDesc, Sharing, Site, Sites, Storage,
    Ticket, Tracker,
};

use std::sync::Arc;

use crate::access::Use;
use crate::object::Device;
use crate::staging::Stage;
use crate::MAX_MEMBERS;

/// A member's done point: (member, done timeline semaphore, value).
pub type Edge = (usize, vk::Semaphore, u64);

/// The coherence state of one mirrored allocation (shared by the allocation and the device's
/// registry).
pub struct Mirror {
    size: usize,
    shadow: *mut u8,
    layout: std::alloc::Layout,
    /// Each member's persistent mapping of its copy (null where it holds none, or where the
    /// copy is reached through staging).
    copies: [*mut u8; MAX_MEMBERS],
    /// Per member whose copy is reached through staging (`staging.rs`), the buffer covering
    /// it; null elsewhere.
    covers: [vk::Buffer; MAX_MEMBERS],
    /// In submission order (claims, under the exec lock), for allocations never mapped:
    /// ranges whose latest contents are in a writer's output stage that every member's
    /// transfer commands reach (shared staging, `staging.rs`), so that a reader's prologue
    /// copies them straight from there.
    direct: Mutex<Vec<Owned>>,
    /// The application mapped the allocation at some time (from `vkMapMemory` on): no more
    /// direct copies, the shadow takes part.
    mapped_once: AtomicBool,
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

/// A batch's changes still to be merged into the shadow.
struct Pending {
    /// The batch's done point (its member's copy holds the changes once it is reached).
    edge: Edge,
    /// The ranges it may write.
    ranges: RangeSet,
    /// Those ranges of its member's copy as the batch started, one after the other.
    snapshot: Vec<u8>,
    /// Where the member's copy is reached through staging: the stage its epilogue copies
    /// those ranges into.
    out: Option<Arc<Stage>>,
}

/// A range whose latest contents are in a member's copy (never-mapped allocations).
#[derive(Clone)]
struct Owned {
    range: Range,
    /// The done point of the batch that wrote it there.
    edge: Edge,
    /// Where that member's copy is reached through staging: the batch's output stage, which
    /// holds the range once `edge` is reached.
    out: Option<Arc<Stage>>,
}

impl PartialEq for Owned {
    fn eq(&self, o: &Owned) -> bool {
        self.range == o.range && self.edge == o.edge
    }
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} by {:?}", self.range, self.edge)
    }
}

/// The staging buffers of a batch whose member's copy is reached through staging
/// (`exec.rs` allocates them and records the transfers).
#[derive(Default)]
pub struct Stages {
    /// Filled by the step with the ranges to copy in (packed); the prologue copies it in.
    pub input: Option<Arc<Stage>>,
    /// The epilogue copies the ranges the batch may write into it.
    pub output: Option<Arc<Stage>>,
    /// The done points of the writers whose output stages the prologue copies from directly.
    pub after: Vec<Edge>,
    /// The bytes the prologue copies that way.
    pub direct_bytes: u64,
    /// The input stage is filled in chunks, each signalled on this timeline of the batch's
    /// member, which copies it in meanwhile (`staging.rs`).
    pub fill: Option<crate::staging::Fill>,
}

/// Where a step's copy-in goes: `j`'s mapped copy or its input stage at once, or, for an
/// input stage filled in chunks, in the order of the stage's offsets, signalling each chunk
/// as it is complete ([`Sink::finish`]).
struct Sink<'a> {
    copy: *mut u8,
    input: Option<&'a Stage>,
    fill: Option<(crate::staging::Fill, &'a crate::object::MemberDevice)>,
    /// Queued copies for a chunked fill: (stage offset, source, length).
    ops: Vec<(u64, *const u8, u64)>,
}

impl Sink<'_> {
    /// Copies `len` bytes from `src` to byte `pos` of the allocation in the destination;
    /// returns the bytes copied (or queued).
    ///
    /// # Safety
    /// `src` is null or holds `len` bytes that stay unchanged until [`Sink::finish`]; `pos` and
    /// `len` lie within the destination (one range of an input stage).
    unsafe fn put(&mut self, src: *const u8, pos: u64, len: u64) -> usize {
        if src.is_null() {
            return 0;
        }
        match (self.input, &self.fill) {
            (Some(s), Some(_)) => match s.offset_of(pos) {
                Some(off) => {
                    self.ops.push((off, src, len));
                    len as usize
                }
                None => 0,
            },
            // SAFETY: forwarded contract.
            (Some(s), None) => unsafe { copy_bytes(src, s.at(pos), len) },
            // SAFETY: forwarded contract.
            (None, _) => unsafe { copy_bytes(src, at(self.copy, pos), len) },
        }
    }

    /// Runs the queued copies in stage order, signalling each chunk once it is complete, then
    /// the last value (whatever was not queued needs no copy).
    fn finish(mut self) {
        let (Some(s), Some((f, md))) = (self.input, self.fill) else {
            return;
        };
        self.ops.sort_by_key(|o| o.0);
        let base = s.base();
        let mut signalled = 0;
        for (off, src, len) in std::mem::take(&mut self.ops) {
            let (mut o, mut p, mut left) = (off, src, len);
            while left > 0 {
                let n = left.min((o / f.chunk + 1) * f.chunk - o);
                // SAFETY: the stage holds its ranges packed (`o` and `n` within it); the
                // source holds `len` bytes (`put`).
                unsafe { copy_bytes(p, base.wrapping_add(o as usize), n) };
                o += n;
                p = p.wrapping_add(n as usize);
                left -= n;
                while (signalled + 1) * f.chunk <= o && signalled < f.count {
                    signalled += 1;
                    signal_fill(md, f.sem, signalled);
                }
            }
        }
        if signalled < f.count {
            signal_fill(md, f.sem, f.count);
        }
    }
}

/// Signals a chunk timeline of a batch's member from the host.
pub fn signal_fill(md: &crate::object::MemberDevice, sem: vk::Semaphore, value: u64) {
    let r = crate::exec::host_signal(md, sem, value);
    if r != vk::Result::SUCCESS {
        crate::warn!(
            "member {}: signalling a filled chunk failed ({r:?})",
            md.index
        );
    }
}

/// A part of what a batch copies in that its prologue copies straight from a writer's
/// output stage.
pub struct Direct {
    pub part: Range,
    /// The writer's done point.
    pub edge: Edge,
    pub out: Arc<Stage>,
}

/// What [`Mirror::peek`] foresees for a batch.
pub struct Peek {
    /// Everything to copy in.
    pub copy_in: RangeSet,
    /// What the step copies in through the input stage.
    pub indirect: RangeSet,
    /// What the prologue copies from writers' output stages.
    pub direct: Vec<Direct>,
    /// What the batch may write.
    pub write: RangeSet,
}

struct Inner {
    /// Mapped at some time: the writing batches prepared and not merged yet, in submission
    /// order (batches whose ranges overlap finish in that order: the later waited for the
    /// earlier).
    pending: Vec<Pending>,
    /// Never mapped: disjoint ranges whose latest contents are in a member's copy, with the
    /// done point of the batch that wrote them there (everything else: in the shadow).
    owners: Vec<Owned>,
    /// Changes with every change of `owners` (the first map waits without the lock).
    owners_changed: u64,
    /// Per member queue, the ranges its batches prepared so far touch (reads too), with the
    /// last one's done point: what must finish before those ranges of that member's copy are
    /// copied into.
    uses: Vec<(Edge, RangeSet)>,
    /// The application has mapped the allocation at least once: the shadow takes part.
    ever_mapped: bool,
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
    /// Bytes the member's own transfer commands copy from another member's output stage.
    pub direct: usize,
}

/// Copies `len` bytes from `src` to `dst`; returns the bytes copied (none where either is
/// null).
///
/// # Safety
/// Non-null, both hold `len` bytes, are distinct, and nothing else writes them meanwhile.
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: u64) -> usize {
    if src.is_null() || dst.is_null() {
        return 0;
    }
    // SAFETY: caller contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len as usize) };
    len as usize
}

/// The address of byte `pos` in the mapping `base` (null stays null).
fn at(base: *mut u8, pos: u64) -> *mut u8 {
    if base.is_null() {
        base
    } else {
        base.wrapping_add(pos as usize)
    }
}

/// What a batch on one member does with a mirrored allocation ([`Mirror::claim`]), clipped to
/// the allocation.
pub struct Step {
    /// The ranges to bring up to date on the member first.
    pub copy_in: RangeSet,
    /// The ranges the batch touches.
    pub touched: RangeSet,
    /// The ranges it may write.
    pub write: RangeSet,
}

/// The end of a [`Mirror::prepare`]: the next ticket's turn, and the batch's use of its
/// member's copy.
struct Turn<'a> {
    mirror: &'a Mirror,
    ticket: u64,
    done: Edge,
    touched: &'a RangeSet,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut inner = self.mirror.inner.lock();
        inner.served = inner.served.max(self.ticket);
        inner.note_use(self.done, self.touched);
        self.mirror.turn.notify_all();
    }
}

impl Inner {
    /// The batch finishing at `done` uses `touched` of its member's copy.
    fn note_use(&mut self, done: Edge, touched: &RangeSet) {
        match self
            .uses
            .iter_mut()
            .find(|(e, _)| e.0 == done.0 && e.1 == done.1)
        {
            Some((e, r)) => {
                e.2 = e.2.max(done.2);
                r.union(touched);
            }
            None => self.uses.push((done, touched.clone())),
        }
    }
}

/// Removes `r` from the owned ranges.
fn disown(owners: &mut Vec<Owned>, r: Range) {
    let mut out = Vec::with_capacity(owners.len() + 1);
    for o in owners.drain(..) {
        let or = o.range;
        if or.intersect(r).is_empty() {
            out.push(o);
            continue;
        }
        if or.start < r.start {
            out.push(Owned {
                range: Range::new(or.start, r.start),
                ..o.clone()
            });
        }
        if r.end < or.end {
            out.push(Owned {
                range: Range::new(r.end, or.end),
                ..o
            });
        }
    }
    *owners = out;
}

impl Mirror {
    /// A mirror of `size` bytes over the members' mapped copies (or, for members whose copy
    /// is reached through staging, the buffers covering them); `None` when the shadow cannot
    /// be allocated. No member starts stale: the contents are undefined anyway.
    pub fn new(
        size: u64,
        copies: [*mut u8; MAX_MEMBERS],
        covers: [vk::Buffer; MAX_MEMBERS],
    ) -> Option<Mirror> {
        let size = usize::try_from(size).ok()?.max(1);
        // Page-aligned, as drivers map their own allocations: programs rely on the alignment
        // of mapped pointers (GL_MIN_MAP_BUFFER_ALIGNMENT through Zink).
        let layout = std::alloc::Layout::from_size_align(size, 4096).ok()?;
        // SAFETY: a non-zero size.
        let shadow = unsafe { std::alloc::alloc_zeroed(layout) };
        if shadow.is_null() {
            return None;
        }
        Some(Mirror {
            size,
            shadow,
            layout,
            copies,
            covers,
            direct: Mutex::new(Vec::new()),
            mapped_once: AtomicBool::new(false),
            mapped: AtomicBool::new(false),
            host_dirty: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                pending: Vec::new(),
                owners: Vec::new(),
                owners_changed: 0,
                uses: Vec::new(),
                ever_mapped: false,
                dead: false,
                served: 0,
            }),
            tickets: AtomicU64::new(0),
            turn: Condvar::new(),
        })
    }

    /// The allocation's size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// All of the allocation.
    fn whole(&self) -> Range {
        Range::new(0, self.size as u64)
    }

    /// The buffer covering member `m`'s copy where it is reached through staging (null
    /// where vkfuse maps it).
    pub fn cover(&self, m: usize) -> vk::Buffer {
        self.covers[m]
    }

    /// Copies the owned range `o` into the shadow.
    ///
    /// # Safety
    /// The batch that wrote it finished, and nothing writes that range of the shadow meanwhile.
    unsafe fn owned_to_shadow(&self, o: &Owned) {
        let r = o.range;
        // SAFETY: the owner's mapped copy or output stage holds `r` (or is null), the shadow
        // `size` bytes; the caller's contract.
        unsafe { copy_bytes(self.owned_at(o, r.start), at(self.shadow, r.start), r.len()) };
    }

    /// Where the bytes of `o` (from `pos` on) can be read by the host: its output stage, or
    /// its member's mapped copy; null when neither holds them.
    fn owned_at(&self, o: &Owned, pos: u64) -> *mut u8 {
        match &o.out {
            Some(s) if s.is_valid() => s.at(pos),
            Some(_) => std::ptr::null_mut(),
            None => at(self.copies[o.edge.0], pos),
        }
    }

    /// Member `m`'s persistent mapping of its copy; null where it holds none or where the copy
    /// is reached through staging.
    pub fn copy_of(&self, m: usize) -> *mut u8 {
        self.copies.get(m).copied().unwrap_or(std::ptr::null_mut())
    }

    /// The pointer the application maps.
    pub fn shadow(&self) -> *mut u8 {
        self.shadow
    }

    /// `vkMapMemory` (`on`) or `vkUnmapMemory`. The first map brings the shadow up to date,
    /// waiting for the batches that wrote the members' copies.
    pub fn mapped(&self, d: &Device, on: bool) {
        if on {
            self.mapped_once.store(true, Ordering::Release);
            self.first_map(d);
            self.host_dirty.store(true, Ordering::Release);
        }
        self.mapped.store(on, Ordering::Release);
    }

    fn first_map(&self, d: &Device) {
        loop {
            let (edges, changed) = {
                let mut inner = self.inner.lock();
                if inner.ever_mapped || inner.dead {
                    return;
                }
                if inner.owners.is_empty() {
                    inner.ever_mapped = true;
                    return;
                }
                let edges: Vec<Edge> = inner.owners.iter().map(|o| o.edge).collect();
                (edges, inner.owners_changed)
            };
            // Wait without the lock; a batch prepared meanwhile makes this round start over.
            for e in edges {
                reached(d, e, true);
            }
            let mut inner = self.inner.lock();
            if inner.owners_changed != changed || inner.ever_mapped || inner.dead {
                continue;
            }
            for o in std::mem::take(&mut inner.owners) {
                // SAFETY: the batch that wrote it finished and the application has not mapped
                // the shadow yet.
                unsafe { self.owned_to_shadow(&o) };
            }
            inner.owners_changed += 1;
            inner.ever_mapped = true;
            return;
        }
    }

    /// Whether the application may have written the shadow since the last submit that
    /// touched the allocation; from now on, only if it still has it mapped. Called in
    /// submission order, under the exec lock, before a batch's claim: when true, the shadow
    /// alone holds the latest contents (`exec.rs` tells the coherence tracker).
    pub fn take_host_writes(&self) -> bool {
        let mapped = self.mapped.load(Ordering::Acquire);
        self.host_dirty.swap(mapped, Ordering::AcqRel)
    }

    /// Whether the application may have written the shadow since the last submit that
    /// touched the allocation (nothing changes).
    pub fn host_writes(&self) -> bool {
        self.host_dirty.load(Ordering::Acquire)
    }

    /// A batch on member `j` uses the allocation as `u` says (called in submission order,
    /// under the exec lock), and `copy_in` are the ranges of `j`'s copy that do not hold the
    /// latest contents of what it touches (the coherence tracker's transfers into `j`, within
    /// the stages [`Mirror::peek`] sized): its step, and the ticket that orders its
    /// [`Mirror::prepare`]. `out` is the batch's output stage, finishing at `done`, where `j`'s
    /// copy is reached through staging.
    pub fn claim(
        &self,
        u: &Use,
        copy_in: RangeSet,
        done: Edge,
        out: Option<&Arc<Stage>>,
    ) -> (Step, u64) {
        let whole = self.whole();
        let touched = u.touched.within(whole);
        let written = u.written.within(whole);
        {
            let mut direct = self.direct.lock();
            if self.mapped_once.load(Ordering::Acquire) {
                direct.clear();
            } else {
                for w in written.ranges() {
                    disown(&mut direct, *w);
                    if let Some(out) = out.filter(|o| o.is_shared()) {
                        direct.push(Owned {
                            range: *w,
                            edge: done,
                            out: Some(out.clone()),
                        });
                    }
                }
            }
        }
        let step = Step {
            copy_in: copy_in.within(whole),
            touched,
            write: written,
        };
        (step, self.tickets.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// What [`Mirror::claim`] would give member `j` to copy in (`copy_in`: what the coherence
    /// tracker would transfer into `j`) and to write for `u`, without claiming (the sizes of
    /// the stages of a member reached through staging).
    pub fn peek(&self, j: usize, u: &Use, copy_in: RangeSet) -> Peek {
        let whole = self.whole();
        let written = u.written.within(whole);
        let copy_in = copy_in.within(whole);
        let mut direct = Vec::new();
        let mut indirect = copy_in.clone();
        if !self.mapped_once.load(Ordering::Acquire) {
            for o in self.direct.lock().iter().filter(|o| o.edge.0 != j) {
                for c in copy_in.ranges() {
                    let part = o.range.intersect(*c);
                    if let (false, Some(out)) = (part.is_empty(), &o.out) {
                        indirect.remove(part);
                        direct.push(Direct {
                            part,
                            edge: o.edge,
                            out: out.clone(),
                        });
                    }
                }
            }
        }
        Peek {
            copy_in,
            indirect,
            direct,
            write: written,
        }
    }

    /// The batches meant to fill `outs` were not submitted: readers no longer copy from them
    /// (the ranges stay with the shadow and the step's copies).
    pub fn drop_direct(&self, outs: &[Arc<Stage>]) {
        self.direct.lock().retain(|o| {
            o.out
                .as_ref()
                .is_none_or(|s| !outs.iter().any(|x| Arc::ptr_eq(x, s)))
        });
    }

    /// Member `m` is lost: readers no longer copy from its output stages (the coherence
    /// tracker forgets its copy).
    pub fn forget(&self, m: usize) {
        self.direct.lock().retain(|o| o.edge.0 != m);
    }

    /// Before a batch on member `j` that finishes at `done` (bridge thread): brings the
    /// `copy_in` ranges of `j`'s copy up to date, and prepares the write-back of the ranges the
    /// batch may write (see the module documentation).
    pub fn prepare(
        &self,
        d: &Device,
        j: usize,
        step: &Step,
        done: Edge,
        ticket: u64,
        stages: &Stages,
    ) -> Copied {
        {
            let mut inner = self.inner.lock();
            while inner.served + 1 < ticket && !inner.dead {
                self.turn.wait(&mut inner);
            }
        }
        // The writers whose output stages the prologue reads directly have finished.
        for e in &stages.after {
            reached(d, *e, true);
        }
        // The next ticket's turn comes even if this step fails (panics).
        let _turn = Turn {
            mirror: self,
            ticket,
            done,
            touched: &step.touched,
        };
        let mut c = self.prepare_in_turn(d, j, step, done, stages);
        c.direct = stages.direct_bytes as usize;
        c
    }

    fn prepare_in_turn(
        &self,
        d: &Device,
        j: usize,
        step: &Step,
        done: Edge,
        stages: &Stages,
    ) -> Copied {
        let (copy_in, write) = (&step.copy_in, &step.write);
        if copy_in.is_empty() && write.is_empty() {
            // `j` is current where the batch reads, and it writes nothing.
            self.inner.lock().note_use(done, &step.touched);
            return Copied::default();
        }
        let staged = !self.covers[j].is_null();
        // What the batch needs merged first: its copy-in comes from the shadow, and its
        // snapshot must follow earlier writes of the same ranges.
        let mut need = copy_in.clone();
        need.union(write);
        let mut out = Copied {
            merged: self.settle_some(d, Some(&need), true),
            ..Copied::default()
        };
        if !copy_in.is_empty() {
            // Nothing may write `j`'s copy while a batch that used it may still run, nor read
            // a range from another member's copy before the batch that wrote it finished. This
            // holds for a copy reached through staging too, which the batch's prologue writes:
            // a pipeline barrier does not order a copy through the buffer covering the memory
            // with earlier work on resources bound to it on every driver (lavapipe).
            let waits: Vec<Edge> = {
                let inner = self.inner.lock();
                let owned = inner.owners.iter().filter(|o| {
                    o.edge.0 != j
                        && copy_in
                            .ranges()
                            .iter()
                            .any(|c| !c.intersect(o.range).is_empty())
                });
                let uses = inner
                    .uses
                    .iter()
                    .filter(|(e, r)| e.0 == j && r.intersects(copy_in));
                owned.map(|o| o.edge).chain(uses.map(|(e, _)| *e)).collect()
            };
            for e in waits {
                reached(d, e, true);
            }
        }
        let mut inner = self.inner.lock();
        // In use from now on (after the waits above, which must not include it): host writes
        // published from here on (`publish_host_writes`) reach its copy too, and the copy
        // below takes those made before.
        inner.note_use(done, &step.touched);
        // Where the bytes copied in go: `j`'s mapped copy, or the batch's input stage.
        let input = stages.input.as_deref().filter(|_| staged);
        let mut sink = Sink {
            copy: self.copies[j],
            input,
            fill: stages.fill.zip(d.member(j)),
            ops: Vec::new(),
        };
        if inner.dead || (!staged && self.copies[j].is_null()) {
            sink.finish();
            return out;
        }
        if !inner.ever_mapped {
            for c in copy_in.ranges() {
                // From the owners' copies where members own it, else from the shadow.
                let mut from_shadow = RangeSet::of(*c);
                for o in &inner.owners {
                    let part = o.range.intersect(*c);
                    if part.is_empty() {
                        continue;
                    }
                    from_shadow.remove(part);
                    if o.edge.0 != j {
                        // SAFETY: the owner's mapped copy or output stage, and `j`'s copy or
                        // input stage, hold `part`; the batch that wrote it finished (waited
                        // above) and the one that reads `j`'s waits for this step.
                        out.from_member += unsafe {
                            sink.put(self.owned_at(o, part.start), part.start, part.len())
                        };
                    }
                }
                for r in from_shadow.ranges() {
                    // SAFETY: the shadow and `j`'s copy (or input stage) hold `r`; the shadow
                    // is not mapped (never mapped yet), and `j`'s copy is not in use (above).
                    out.copied_in +=
                        unsafe { sink.put(at(self.shadow, r.start), r.start, r.len()) };
                }
            }
            sink.finish();
            if !write.is_empty() {
                let output = stages.output.clone().filter(|_| staged);
                for w in write.ranges() {
                    disown(&mut inner.owners, *w);
                    inner.owners.push(Owned {
                        range: *w,
                        edge: done,
                        out: output.clone(),
                    });
                }
                inner.owners_changed += 1;
            }
            return out;
        }
        for c in copy_in.ranges() {
            // SAFETY: the shadow (settled above) and `j`'s mapped copy (or input stage) hold
            // `c`; no batch uses `j`'s copy now (waited for above; this one waits for this
            // step).
            out.copied_in += unsafe { sink.put(at(self.shadow, c.start), c.start, c.len()) };
        }
        sink.finish();
        if !write.is_empty() {
            // The written ranges as the batch will find them: `j`'s copy, or for a copy
            // reached through staging, the shadow, which holds the same bytes there now (they
            // were just copied in, or `j` was current and the shadow settled above).
            let from = if staged { self.shadow } else { self.copies[j] };
            let mut snapshot = Vec::with_capacity(write.units() as usize);
            for w in write.ranges() {
                // SAFETY: `from` holds `size` bytes; no batch writes it now.
                let part = unsafe {
                    std::slice::from_raw_parts(from.add(w.start as usize), w.len() as usize)
                };
                snapshot.extend_from_slice(part);
            }
            inner.pending.push(Pending {
                edge: done,
                ranges: write.clone(),
                snapshot,
                out: stages.output.clone().filter(|_| staged),
            });
        }
        out
    }

    /// Writes the pending batches' changes into the shadow: after waiting for them (`wait`),
    /// or only those that finished. Returns the bytes compared.
    pub fn settle(&self, d: &Device, wait: bool) -> usize {
        self.settle_some(d, None, wait)
    }

    /// [`Mirror::settle`] for the pending batches whose ranges meet `only` (all for `None`).
    fn settle_some(&self, d: &Device, only: Option<&RangeSet>, wait: bool) -> usize {
        let edges: Vec<Edge> = {
            let inner = self.inner.lock();
            inner
                .pending
                .iter()
                .filter(|p| only.is_none_or(|o| p.ranges.intersects(o)))
                .map(|p| p.edge)
                .collect()
        };
        let mut merged = 0;
        for edge in edges {
            // Wait without the lock: host synchronisation settles finished batches meanwhile.
            if !reached(d, edge, wait) {
                continue;
            }
            let mut inner = self.inner.lock();
            if inner.dead {
                return merged;
            }
            let Some(at) = inner.pending.iter().position(|p| p.edge == edge) else {
                continue;
            };
            let p = inner.pending.remove(at);
            let src = |pos: u64| match &p.out {
                Some(s) if s.is_valid() => s.at(pos),
                Some(_) => std::ptr::null_mut(),
                None => self::at(self.copies[edge.0], pos),
            };
            let mut off = 0;
            for r in p.ranges.ranges() {
                let len = r.len() as usize;
                let from = src(r.start);
                if !from.is_null() {
                    // SAFETY: `from` is the member's mapped copy or output stage, holding `r`
                    // and no longer written there (its batch finished); the shadow holds
                    // `size` bytes; the snapshot holds the ranges one after the other.
                    unsafe {
                        merge(
                            from,
                            &p.snapshot[off..off + len],
                            self.shadow.add(r.start as usize),
                            len,
                        )
                    };
                }
                off += len;
            }
            merged += off;
        }
        merged
    }

    /// Member `m` is lost after its batches finished: what they wrote is taken into the
    /// shadow (merged, or copied when never mapped) while its copy can still be read.
    pub fn rescue(&self, d: &Device, m: usize) {
        if self.inner.lock().pending.iter().any(|p| p.edge.0 == m) {
            self.settle(d, false);
        }
        let mut inner = self.inner.lock();
        if inner.dead {
            return;
        }
        let mut kept = Vec::new();
        for o in std::mem::take(&mut inner.owners) {
            if o.edge.0 != m {
                kept.push(o);
            } else {
                // SAFETY: its batches finished; the shadow is not mapped (never-mapped
                // allocation).
                unsafe { self.owned_to_shadow(&o) };
            }
        }
        inner.owners = kept;
        inner.owners_changed += 1;
    }

    /// Before the host sets an event (`vkSetEvent`): copies what the application wrote into
    /// the shadow since the batches still running were made ready into their members' mapped
    /// copies, so that a batch waiting for the event on the device (`vkCmdWaitEvents` from
    /// `VK_PIPELINE_STAGE_HOST_BIT`) sees the host's writes made before it was set, as it
    /// would in memory the host and the device share. Returns the bytes published.
    ///
    /// Per member copy, over what its unfinished batches touch: where one of them may write,
    /// the bytes where the shadow differs from the snapshot taken when it was made ready (the
    /// device's own writes are left alone, and the snapshot takes the host's bytes, so that
    /// the write-back does not take them for the device's); elsewhere, the bytes where the
    /// shadow differs from the copy, which the device only reads there. Finished batches'
    /// changes are merged into the shadow first, so that it holds the latest contents there.
    /// Copies reached through staging are not reached: their bytes move only by the member's
    /// own transfer commands, queued behind the running batch.
    pub fn publish_host_writes(&self, d: &Device) -> usize {
        if !self.mapped.load(Ordering::Acquire) && !self.host_dirty.load(Ordering::Acquire) {
            return 0;
        }
        self.settle(d, false);
        let mut inner = self.inner.lock();
        if inner.dead || !inner.ever_mapped {
            return 0;
        }
        let mut running: Vec<(usize, RangeSet)> = Vec::new();
        for (e, r) in &inner.uses {
            if self.copies[e.0].is_null() || reached(d, *e, false) {
                continue;
            }
            match running.iter_mut().find(|(m, _)| *m == e.0) {
                Some((_, all)) => all.union(r),
                None => running.push((e.0, r.clone())),
            }
        }
        let mut published = 0;
        for (j, mut rest) in running {
            let copy = self.copies[j];
            for p in inner.pending.iter_mut().filter(|p| p.edge.0 == j) {
                let mut off = 0;
                for r in p.ranges.ranges() {
                    let len = r.len() as usize;
                    rest.remove(*r);
                    // SAFETY: the shadow and `j`'s mapped copy hold `size` bytes, the snapshot
                    // the pending ranges one after the other; the host's writes there are
                    // ordered before the event by the application.
                    published += unsafe {
                        publish(
                            self.shadow.add(r.start as usize),
                            &mut p.snapshot[off..off + len],
                            copy.add(r.start as usize),
                        )
                    };
                    off += len;
                }
            }
            for r in rest.within(self.whole()).ranges() {
                // SAFETY: as above; the running batches of `j` only read these bytes.
                published += unsafe {
                    publish_over(
                        self.shadow.add(r.start as usize),
                        copy.add(r.start as usize),
                        r.len() as usize,
                    )
                };
            }
        }
        published
    }

    /// The allocation is being freed: no copy is touched from now on.
    pub fn retire(&self) {
        let mut inner = self.inner.lock();
        inner.dead = true;
        inner.pending.clear();
        inner.owners.clear();
        self.turn.notify_all();
    }
}

/// Starts tracking mirrored allocation `id` of `size` bytes in the coherence tracker: a copy
/// on each member of `members` and the shadow on the host, each a storage of its own, and every
/// site holding the (undefined) contents.
pub fn track(
    tracker: &mut Tracker,
    id: u64,
    size: u64,
    members: impl Iterator<Item = usize>,
) -> Result<(), CoherenceError> {
    let mut storages: Vec<Storage> = members
        .filter_map(Site::member)
        .map(|s| Storage {
            sites: Sites::single(s),
            owner: s,
        })
        .collect();
    storages.push(Storage {
        sites: Sites::single(Site::HOST),
        owner: Site::HOST,
    });
    let sharing = Sharing::new(storages)?;
    let all = sharing.sites();
    tracker.create(id, ResourceDesc::buffer(size.max(1), sharing), all)
}

/// One mirrored allocation (tracker id) a batch uses, how, and what its stages allow to copy
/// in (sized by [`Mirror::peek`]; `None`: no bound).
pub struct Claim<'a> {
    pub id: u64,
    pub mirror: &'a Mirror,
    pub u: &'a Use,
    pub limit: Option<&'a RangeSet>,
}

/// A batch on member `j` uses the mirrored allocations of `claims`: applies it to the
/// coherence tracker (in submission order, under the exec lock) and returns, per claim, the
/// ranges to copy into `j`'s copy first, with the batch's ticket.
///
/// - An allocation the application may have written since its last submit is held by the
///   shadow alone ([`Mirror::take_host_writes`]).
/// - The tracker plans the batch: transfers into `j` of the stale part of what it touches,
///   after which `j` holds it; then the writes, after which `j` alone holds what it may write.
/// - Where a claim's `limit` leaves out part of those transfers (the application mapped the
///   allocation after the stages were sized), `j` does not read that part, and stays without
///   it; what the batch writes there ends up in the shadow (the write-back merges its changes),
///   which alone holds it then.
pub fn claim_all(
    tracker: &mut Tracker,
    j: usize,
    claims: &[Claim<'_>],
) -> Result<(Vec<RangeSet>, Ticket), CoherenceError> {
    for c in claims {
        if c.mirror.take_host_writes() {
            tracker.host_write(c.id, Range::WHOLE)?;
        }
    }
    let mut beyond = vec![RangeSet::new(); claims.len()];
    // The second round leaves out what the first found beyond the limits; its transfers are
    // a part of the first's, so none reach beyond.
    for _ in 0..2 {
        let mut access = BatchAccess::new();
        for (c, b) in claims.iter().zip(&beyond) {
            let mut reads = c.u.touched.clone();
            reads.subtract(b);
            for r in reads.ranges() {
                access = access.read(c.id, *r);
            }
            for r in c.u.written.ranges() {
                access = access.write(c.id, *r);
            }
        }
        let plan = tracker.plan_batch(&access, j)?;
        let mut ins = vec![RangeSet::new(); claims.len()];
        for t in plan.transfers() {
            if let Some(i) = claims.iter().position(|c| c.id == t.id) {
                ins[i].insert(t.range);
            }
        }
        let mut again = false;
        for (i, c) in claims.iter().enumerate() {
            if let Some(limit) = c.limit {
                let mut extra = ins[i].clone();
                extra.subtract(limit);
                if !extra.is_empty() {
                    beyond[i].union(&extra);
                    again = true;
                }
            }
        }
        if again {
            continue;
        }
        let ticket = tracker.commit_batch(&plan)?;
        for (c, b) in claims.iter().zip(&beyond) {
            for r in b.intersection(&c.u.written).ranges() {
                tracker.host_write(c.id, *r)?;
            }
        }
        return Ok((ins, ticket));
    }
    Err(CoherenceError::StalePlan)
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

/// Writes into `dst` and `base` every byte where `src` differs from `base` (all
/// `base.len()` bytes long); returns the bytes written.
///
/// # Safety
/// `src` and `dst` hold `base.len()` bytes; neither overlaps `base`.
unsafe fn publish(src: *const u8, base: &mut [u8], dst: *mut u8) -> usize {
    let mut n = 0;
    for (o, b) in base.iter_mut().enumerate() {
        // SAFETY: within the caller's bounds.
        let x = unsafe { *src.add(o) };
        if x != *b {
            *b = x;
            // SAFETY: within the caller's bounds.
            unsafe { dst.add(o).write(x) };
            n += 1;
        }
    }
    n
}

/// Writes into `dst` every byte of `len` where `src` differs from it; returns the bytes
/// written.
///
/// # Safety
/// `src` and `dst` hold `len` bytes and do not overlap.
unsafe fn publish_over(src: *const u8, dst: *mut u8, len: usize) -> usize {
    let mut n = 0;
    for o in 0..len {
        // SAFETY: within the caller's bounds.
        unsafe {
            let x = *src.add(o);
            if x != *dst.add(o) {
                dst.add(o).write(x);
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host writes published to a running batch's copy: only the bytes the host changed, and
    /// the snapshot takes them, so that the write-back still finds only the device's changes.
    #[test]
    fn publishing_takes_only_the_hosts_changes() {
        let shadow = [1u8, 2, 9, 4, 8];
        let mut snapshot = vec![1u8, 2, 3, 4, 5];
        // The device wrote bytes 0 and 3 of its copy.
        let mut copy = [7u8, 2, 3, 6, 5];
        // SAFETY: five bytes each, distinct arrays.
        let n = unsafe { publish(shadow.as_ptr(), &mut snapshot, copy.as_mut_ptr()) };
        assert_eq!(n, 2);
        assert_eq!(copy, [7, 2, 9, 6, 8]);
        assert_eq!(snapshot, [1, 2, 9, 4, 8]);
        let mut read = [1u8, 2, 3];
        // SAFETY: three bytes each, distinct arrays.
        let n = unsafe { publish_over([1u8, 5, 3].as_ptr(), read.as_mut_ptr(), 3) };
        assert_eq!((n, read), (1, [1, 5, 3]));
    }

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

    /// A done point for claims that need one.
    const E0: Edge = (0, vk::Semaphore::null(), 1);

    /// A use of `r` of an allocation, written when `write`.
    fn use_of(r: std::ops::Range<u64>, write: bool) -> Use {
        let touched = RangeSet::of(r.clone().into());
        let written = if write {
            touched.clone()
        } else {
            RangeSet::new()
        };
        Use { touched, written }
    }

    /// A tracker of two members that import no host memory, with mirror `m` as resource 1.
    fn tracked(m: &Mirror) -> Tracker {
        let mut t = Tracker::new(vkfuse_memory::Topology::new(
            &[vkfuse_memory::MemberCaps::default(); 2],
        ));
        if let Err(e) = track(&mut t, 1, m.size(), 0..2) {
            panic!("tracking a mirror failed: {e}");
        }
        t
    }

    /// What a batch on `j` using `u` (within `limit`) copies in, claimed in `t`.
    fn claimed(
        t: &mut Tracker,
        m: &Mirror,
        j: usize,
        u: &Use,
        limit: Option<&RangeSet>,
    ) -> Vec<Range> {
        let c = Claim {
            id: 1,
            mirror: m,
            u,
            limit,
        };
        match claim_all(t, j, &[c]) {
            Ok((ins, _)) => ins[0].ranges().to_vec(),
            Err(e) => panic!("claim refused: {e}"),
        }
    }

    #[test]
    fn claims_follow_the_ranges_members_hold() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        let mut copies = [std::ptr::null_mut(); MAX_MEMBERS];
        copies[0] = a.as_mut_ptr();
        copies[1] = b.as_mut_ptr();
        let Some(m) = Mirror::new(64, copies, [vk::Buffer::null(); MAX_MEMBERS]) else {
            panic!("no shadow for 64 bytes");
        };
        // Page-aligned like drivers' own mappings (Zink relies on more than 64 bytes).
        assert_eq!(m.shadow() as usize % 4096, 0);
        let mut t = tracked(&m);
        let need = |t: &mut Tracker, j, r: std::ops::Range<u64>, w| -> Vec<Range> {
            claimed(t, &m, j, &use_of(r, w), None)
        };
        let none: Vec<Range> = Vec::new();
        // Fresh: every member holds the (undefined) contents.
        assert_eq!(need(&mut t, 0, 0..64, true), none);
        // Member 0 wrote everything: member 1 needs what it touches, and only that.
        assert_eq!(need(&mut t, 1, 0..16, true), vec![Range::new(0, 16)]);
        assert_eq!(need(&mut t, 1, 8..32, false), vec![Range::new(16, 32)]);
        // Member 0 is stale where member 1 wrote (0..16), not where it read.
        assert_eq!(need(&mut t, 0, 0..64, false), vec![Range::new(0, 16)]);
        // Both hold everything now: reads need nothing anywhere.
        assert_eq!(need(&mut t, 1, 0..64, false), vec![Range::new(32, 64)]);
        assert_eq!(need(&mut t, 0, 0..64, false), none);
        // Ranges past the end are clipped ("whole" uses).
        assert_eq!(need(&mut t, 0, 0..u64::MAX, true), none);
        assert_eq!(
            need(&mut t, 1, 48..u64::MAX, false),
            vec![Range::new(48, 64)]
        );
        // The step is clipped too.
        let (step, ticket) = m.claim(&use_of(32..u64::MAX, true), RangeSet::new(), E0, None);
        assert_eq!(step.touched.ranges(), &[Range::new(32, 64)]);
        assert_eq!(step.write.ranges(), &[Range::new(32, 64)]);
        assert_eq!(ticket, 1);
        // Mapped: every submit may follow host writes, so what it touches is copied again.
        m.mapped.store(true, Ordering::Release);
        m.host_dirty.store(true, Ordering::Release);
        assert_eq!(need(&mut t, 0, 4..8, false), vec![Range::new(4, 8)]);
        assert_eq!(need(&mut t, 0, 4..8, false), vec![Range::new(4, 8)]);
        // Unmapped after writes: one more copy, then none.
        m.mapped.store(false, Ordering::Release);
        assert_eq!(need(&mut t, 1, 4..8, false), vec![Range::new(4, 8)]);
        assert_eq!(need(&mut t, 1, 4..8, false), none);
        // Every claim is a batch in flight until retired.
        let flying = t.in_flight();
        assert_eq!(flying.len(), 12);
        for x in flying {
            assert_eq!(t.retire(x), Ok(()));
        }
        // A claim limited to what was peeked copies no more, and leaves the member without
        // the rest; what it writes there only the shadow holds (the write-back merges it).
        m.host_dirty.store(true, Ordering::Release);
        let limit = RangeSet::of(Range::new(0, 4));
        assert_eq!(
            claimed(&mut t, &m, 0, &use_of(0..8, true), Some(&limit)),
            vec![Range::new(0, 4)]
        );
        assert_eq!(
            t.holders(1, 2),
            Some(Sites::single(Site::member(0).unwrap()))
        );
        assert_eq!(t.holders(1, 6), Some(Sites::HOST));
        assert_eq!(
            claimed(&mut t, &m, 0, &use_of(0..8, false), None),
            vec![Range::new(4, 8)]
        );
        // Member 1 alone holds what it wrote last: losing it loses that, unless the shadow
        // got it first (`exec.rs` records the rescue as a transfer to the host).
        assert_eq!(need(&mut t, 1, 60..64, true), vec![Range::new(60, 64)]);
        let mut saved = t.clone();
        let report = t.lose_member(1).unwrap();
        assert_eq!(report.lost, vec![(1, Range::new(60, 64))]);
        let rescue = saved.read_plan(1, Range::new(60, 64), Site::HOST).unwrap();
        assert_eq!(saved.commit_transfers(&rescue), Ok(()));
        assert!(!saved.lose_member(1).unwrap().data_lost());
    }

    #[test]
    fn readers_copy_straight_from_shared_output_stages() {
        let mut covers = [vk::Buffer::null(); MAX_MEMBERS];
        covers[0] = vk::Buffer::from_raw(1);
        covers[1] = vk::Buffer::from_raw(2);
        let Some(m) = Mirror::new(64, [std::ptr::null_mut(); MAX_MEMBERS], covers) else {
            panic!("no shadow for 64 bytes");
        };
        let mut t = tracked(&m);
        let e1 = (0usize, vk::Semaphore::null(), 1);
        let e2 = (1usize, vk::Semaphore::null(), 1);
        let peek = |t: &Tracker, j, u: &Use| {
            let Some(site) = Site::member(j) else {
                panic!("no member {j}");
            };
            let Ok(copy_in) = t.lacks(1, &u.touched, site) else {
                panic!("no stale part");
            };
            m.peek(j, u, copy_in)
        };
        // Member 0 writes 0..32 into a shared output stage.
        let Some(out) = Stage::fake_shared(RangeSet::of(Range::new(0, 32))) else {
            panic!("no host memory for a stage");
        };
        let claim = |t: &mut Tracker, j, u: &Use, e, out| {
            let copy_in = RangeSet::from_iter(claimed(t, &m, j, u, None));
            m.claim(u, copy_in, e, out);
        };
        claim(&mut t, 0, &use_of(0..32, true), e1, Some(&out));
        // Member 1 reading 0..64 copies 0..32 straight from that stage, nothing through its
        // input stage (the rest is current on member 1).
        let p = peek(&t, 1, &use_of(0..64, false));
        assert_eq!(p.copy_in.ranges(), &[Range::new(0, 32)]);
        assert!(p.indirect.is_empty());
        let parts: Vec<(Range, Edge)> = p.direct.iter().map(|x| (x.part, x.edge)).collect();
        assert_eq!(parts, vec![(Range::new(0, 32), e1)]);
        // Member 0 itself never copies from its own stage.
        assert!(peek(&t, 0, &use_of(0..64, false)).direct.is_empty());
        // Member 1 reads everything, then writes 8..16 with no shared output stage: 8..16 is no
        // longer in member 0's stage's care, and member 0 gets it through its input stage.
        claim(&mut t, 1, &use_of(0..64, false), e2, None);
        claim(&mut t, 1, &use_of(8..16, true), e2, None);
        let p = peek(&t, 0, &use_of(0..64, false));
        assert_eq!(p.indirect.ranges(), &[Range::new(8, 16)]);
        assert!(p.direct.is_empty());
        // Once mapped, the shadow takes part: no direct copies.
        claim(&mut t, 0, &use_of(0..32, true), e1, Some(&out));
        m.mapped_once.store(true, Ordering::Release);
        assert!(peek(&t, 1, &use_of(0..64, false)).direct.is_empty());
    }

    #[test]
    fn owned_ranges_split_where_a_write_covers_them() {
        let e = |v| (0usize, vk::Semaphore::null(), v);
        let o = |a, b, v| Owned {
            range: Range::new(a, b),
            edge: e(v),
            out: None,
        };
        let mut owners = vec![o(0, 100, 1), o(200, 300, 2)];
        disown(&mut owners, Range::new(50, 250));
        assert_eq!(owners, vec![o(0, 50, 1), o(250, 300, 2)]);
        disown(&mut owners, Range::new(10, 20));
        assert_eq!(owners, vec![o(0, 10, 1), o(20, 50, 1), o(250, 300, 2)]);
    }
}
