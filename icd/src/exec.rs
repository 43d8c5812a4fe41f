//! Execution across members: which member runs each submitted batch (`scheduler`'s `Placer`),
//! the order between members, virtual fences and semaphores, the bridge thread, member loss.
//!
//! Order: a batch placed on member j first waits until the batches of other members it depends
//! on have completed: those that touched the same memory and those that signal what it waits
//! for (every earlier batch for an event setter; its fence and semaphore signals wait for every
//! earlier batch, in a tail batch when needed: `submit_multi`). The wait is a timeline
//! semaphore of member j (`bridge`) that the bridge thread signals from the host after it has
//! waited, blocking, on the other members' per-queue `done` timelines (lavapipe exports no sync
//! object another driver could import). Because of that order, a semaphore signalled on member
//! i and waited on member j is already satisfied when j's batch starts: the wait is dropped on
//! j, and a binary semaphore is consumed on i by an empty batch so that its state stays valid
//! there.
//!
//! Memory needs no transfers in this order while every allocation is shared host memory
//! (`device_memory.rs`). Mirrored allocations (`mirror.rs`) are made ready on the bridge thread
//! before each batch that touches them (a `Prep` in the batch's bridge job); host
//! synchronisation settles their write-backs (`settle_finished`). What can be neither pins
//! placement to the primary member (`pin`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;
use parking_lot::Mutex;
use vkfuse_memory::{Range, RangeSet, Site, Sites, Tracker};
use vkfuse_scheduler::placement::{BatchInfo, Placer};

use crate::arena::Arena;
use crate::conv::nd;
use crate::generated::translate as tr;
use crate::mirror::Mirror;
use crate::object::{CommandBuffer, Device, MemberDevice, ObjectBase, Queue, NO_MEMBER};
use crate::MAX_MEMBERS;

/// Per-device execution state.
pub struct Exec {
    /// Batches may run on more than one member (strategy round_robin or afr, two or more
    /// members, every member able to order work with timeline semaphores).
    pub multi: bool,
    state: Mutex<State>,
    /// Per member: the timeline semaphore the bridge thread signals (null unless `multi`).
    bridge_sem: [vk::Semaphore; MAX_MEMBERS],
    bridge: Mutex<Option<Bridge>>,
    /// Threads running bridge jobs that wait for a batch's own semaphore waits (`gate`):
    /// joined at device destruction.
    gated: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Data was lost with a member: the fused device is lost.
    lost: AtomicBool,
    /// Members whose device is lost, one bit each.
    lost_members: AtomicU64,
    /// Alignment of host allocations imported into every member (shared host memory);
    /// 0 when not every member imports host memory.
    pub import_align: u64,
    /// Every member is the same driver on the same device (equal driver and device UUIDs):
    /// memory is shared through opaque fds (`device_memory.rs`).
    pub same_driver: bool,
    /// The members that bind images to the application's memory (one bit each): the primary,
    /// and the members of its driver on its device where an image is all in its memory
    /// (`PhysMember::images_in_memory`; `images.rs`).
    pub home: u64,
    /// Every member binds images to the application's memory (`home`): images in shared
    /// memory are the same images on every member.
    pub images_shared: bool,
    /// Members (one bit each) given an application's fence on a submit of its own after a
    /// batch that waits: lavapipe (Mesa 22.3) corrupts memory when the fence of a submit with
    /// semaphore waits is waited for and reset while its queue thread still finishes the
    /// submit (a crash or hang about one run in three of a chain of such submits, direct or
    /// through vkfuse). The fence still covers the batch: it signals after every earlier
    /// submission on the queue. vkfuse's own submits that wait (consuming a semaphore) signal
    /// from a submit of their own after the waiting one on these members, for the same reason.
    pub fence_apart: u64,
    /// Images vkfuse copies between members of different drivers (fused handle, raw):
    /// `images.rs`.
    pub images: Mutex<HashMap<u64, Arc<crate::images::Image>>>,
    /// Images it cannot copy between them, with the reason (placement pins once they have
    /// memory).
    pub refused: Mutex<HashMap<u64, &'static str>>,
}

struct State {
    placer: Placer,
    /// Every batch goes to this member, for the reason logged when it was set.
    pin: Option<usize>,
    /// Batches submitted per member (`VKFUSE_FAULT=submit:M:N`).
    submits: [u64; MAX_MEMBERS],
    /// Lazy image copies out made per member for another member (`VKFUSE_FAULT=copyout:M:N`).
    copyouts: [u64; MAX_MEMBERS],
    /// Images whose latest contents the last member lost took with it (`tracker_loses`).
    poisoned: usize,
    /// Per member: the last value handed out for its bridge semaphore.
    bridge_next: [u64; MAX_MEMBERS],
    /// Semaphores shared between members of one driver, waited for in place of the bridge
    /// (`links.rs`, `link`).
    links: crate::links::Links,
    /// Per fused queue (address): its done semaphores and the last value signalled on each.
    points: Vec<(usize, [vk::Semaphore; MAX_MEMBERS], [u64; MAX_MEMBERS])>,
    /// Timeline semaphores (fused handle) and what is known of their signals.
    timelines: HashMap<u64, Timeline>,
    /// Batches placed per member, for the report at device destruction.
    placed: [u64; MAX_MEMBERS],
    /// The member of the last batch placed.
    last_placed: Option<usize>,
    /// Query pools (fused handle): the member holding each query's state (`NO_MEMBER`: none).
    queries: HashMap<u64, Vec<u8>>,
    /// Per allocation (fused `VkDeviceMemory`): the batches that touched which ranges.
    touched: HashMap<u64, Touch>,
    /// The done point of the last batch that may have touched every allocation.
    touched_all: Option<Edge>,
    /// Mirrored allocations (fused `VkDeviceMemory`), `mirror.rs`.
    mirrors: HashMap<u64, Arc<Mirror>>,
    /// Per member queue, the done point of the last submitted batch that waits for events the
    /// host may set (`AccessSet::host_events`): only while one of them runs does a host
    /// `vkSetEvent` publish host writes to mirrored copies (`publish_host_writes`). An earlier
    /// such batch on the same queue finished before it, so the last one says whether any runs.
    host_event_batches: Vec<Edge>,
    /// A mirrored allocation was made (logged once).
    mirrored_any: bool,
    /// A mirrored allocation reached through staging was logged.
    staged_any: bool,
    /// Members (one bit each) that could not make a batch's staging buffers (logged once).
    staging_short: u64,
    /// Batches that went to another member for want of staging buffers.
    placed_elsewhere: u64,
    /// An allocation was shared through an opaque fd (logged once).
    fd_shared_any: bool,
    /// Per allocation (fused, raw): the images `images.rs` copies between members that are
    /// bound to it.
    image_binds: HashMap<u64, Vec<Arc<crate::images::Image>>>,
    /// Image copies made between members: (in, out, subresources the copies in took, the
    /// subresources of the images copied in), for the report at device destruction.
    image_copies: (u64, u64, u64, u64),
    /// Swapchain images (fused, raw): access sets name each as an allocation of its own.
    swapchain_images: std::collections::HashSet<u64>,
    /// Per swapchain image acquired and drawn into but not yet presented: the member its
    /// batches run on. A frame is drawn on one member (its stand-in image there, or the
    /// swapchain image itself on the presenting member), however many submits draw it.
    frame_owner: HashMap<u64, usize>,
    /// A batch drawing into a swapchain image had to run elsewhere than the frame's member
    /// (logged once).
    frame_split_logged: bool,
    /// Which sites (members, and the host: a mirror's shadow, an image's latest stage) hold
    /// the latest contents of every range of every mirrored allocation and every subresource
    /// of every image `images.rs` copies (the `memory` crate's tracker, in submission order).
    coherence: Tracker,
    /// The tracker's batches not known to be complete, with their done points.
    tickets: Vec<(vkfuse_memory::Ticket, Edge)>,
    /// The tracker refused an operation (logged once).
    coherence_failed: bool,
    /// `compute_split`'s pools and figures.
    split: Splits,
}

#[derive(Default)]
struct Timeline {
    /// (value, member) of submitted signals, by value (`insert_by_value`: in submission order
    /// where values grow with it, as they do on one queue).
    signals: Vec<(u64, usize)>,
    /// The done point of each signal's batch, by value: what a batch on another member that
    /// waits for the value must wait for.
    signal_points: Vec<(u64, Edge)>,
    /// (value, member): waits forwarded to a member's copy before any signal of the value was
    /// submitted. A later signal of such a value is placed on that member.
    waiters: Vec<(u64, usize)>,
}

/// A member's done point: (member, its done timeline semaphore of a queue, value).
type Edge = crate::mirror::Edge;

/// Inserts `item` into `list`, kept in ascending order of value, after the entries of equal
/// value: a push where values grow in submission order, so that a deep queue of signals of one
/// timeline costs no scan per submit.
fn insert_by_value<T>(list: &mut Vec<(u64, T)>, item: (u64, T)) {
    if list.last().is_none_or(|l| l.0 <= item.0) {
        list.push(item);
    } else {
        let at = list.partition_point(|e| e.0 <= item.0);
        list.insert(at, item);
    }
}

/// In a list in ascending order of value, the first entry at or above `value`.
fn at_or_above<T: Copy>(list: &[(u64, T)], value: u64) -> Option<T> {
    list.get(list.partition_point(|e| e.0 < value)).map(|e| e.1)
}

/// The batches that touched one allocation: per member queue, the ranges its batches may have
/// written and those they only read, with the done point of the last such batch (a done point
/// covers every batch before it on its queue). A range a batch may write is taken out of the
/// entries before it: that batch waited for them, so waiting for it covers them.
#[derive(Default)]
struct Touch {
    entries: Vec<TouchEntry>,
}

struct TouchEntry {
    ranges: RangeSet,
    write: bool,
    done: Edge,
}

impl Touch {
    /// A batch finishing at `done` used the allocation as `u` says.
    fn add(&mut self, done: Edge, u: &crate::access::Use) {
        if u.writes() {
            for e in &mut self.entries {
                e.ranges.subtract(&u.written);
            }
            self.entries.retain(|e| !e.ranges.is_empty());
        }
        let mut read = u.touched.clone();
        read.subtract(&u.written);
        for (ranges, write) in [(&u.written, true), (&read, false)] {
            if ranges.is_empty() {
                continue;
            }
            let same =
                |e: &&mut TouchEntry| e.write == write && e.done.0 == done.0 && e.done.1 == done.1;
            match self.entries.iter_mut().find(same) {
                Some(e) => {
                    e.ranges.union(ranges);
                    e.done.2 = e.done.2.max(done.2);
                }
                None => self.entries.push(TouchEntry {
                    ranges: ranges.clone(),
                    write,
                    done,
                }),
            }
        }
    }

    /// What a batch using the allocation as `u` says must wait for: the batches that may have
    /// written what it touches, and those that read what it may write.
    fn before<'a>(&'a self, u: &'a crate::access::Use) -> impl Iterator<Item = Edge> + 'a {
        self.entries
            .iter()
            .filter(move |e| {
                let theirs = if e.write { &u.touched } else { &u.written };
                e.ranges.intersects(theirs)
            })
            .map(|e| e.done)
    }

    /// Forgets the batches that are over (`running` says which are not).
    fn prune(&mut self, running: impl Fn(&Edge) -> bool) {
        self.entries.retain(|e| running(&e.done));
    }
}

/// A mirrored allocation to make ready on `member` before a batch that finishes at `done`.
struct Prep {
    mirror: Arc<Mirror>,
    member: usize,
    step: crate::mirror::Step,
    done: Edge,
    ticket: u64,
    /// The batch's staging buffers where `member`'s copy is reached through staging.
    stages: crate::mirror::Stages,
}

struct Job {
    waits: Vec<(usize, vk::Semaphore, u64)>,
    /// The bridge semaphore value to signal once the waits are over.
    signal: Option<(usize, vk::Semaphore, u64)>,
    /// Timeline values to carry to other members' copies once the waits are over: (member,
    /// its copy, value), for waits forwarded to a copy that this batch's member did not signal.
    carry: Vec<(usize, vk::Semaphore, u64)>,
    /// Mirrored allocations to make ready once the waits are over.
    prep: Vec<Prep>,
    /// Images to copy from writers' staging buffers into the batch's, once the waits are over
    /// (members that share no staging buffers, `images.rs`).
    fills: Vec<crate::images::Fill>,
    /// The mirrored memory of a split batch to keep coherent before round `.1` (`split.rs`),
    /// after `prep` and before the signals.
    merge: Option<(Arc<crate::split::Merge>, usize)>,
}

enum Msg {
    Job(Job),
    Flush(std::sync::mpsc::Sender<()>),
}

struct Bridge {
    tx: std::sync::mpsc::Sender<Msg>,
    thread: std::thread::JoinHandle<()>,
}

/// A device pointer the bridge thread may hold: the device joins the thread before it is freed.
struct DevPtr(*const Device);
// SAFETY: `Device` is Sync; the pointer outlives the thread (destroy joins it first).
unsafe impl Send for DevPtr {}

impl Exec {
    /// Execution on one member: submits are forwarded unchanged.
    pub fn single(primary: usize) -> Exec {
        Exec {
            multi: false,
            state: Mutex::new(State::new(
                Placer::with_order(vkfuse_scheduler::Strategy::Single, vec![primary]),
                vkfuse_memory::Topology::new(&[]),
            )),
            bridge_sem: [vk::Semaphore::null(); MAX_MEMBERS],
            bridge: Mutex::new(None),
            gated: Mutex::new(Vec::new()),
            lost: AtomicBool::new(false),
            lost_members: AtomicU64::new(0),
            import_align: 0,
            same_driver: true,
            images_shared: true,
            home: 1 << primary,
            fence_apart: 0,
            images: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Whether images are copied between members (`images.rs`): batches may run on several
    /// members, not all of which bind images to the application's memory (of different
    /// drivers, or SwiftShader).
    pub fn copies_images(&self) -> bool {
        self.multi && !self.images_shared
    }

    /// Whether member `m` was lost.
    pub fn member_lost(&self, m: usize) -> bool {
        self.lost_members.load(Ordering::Acquire) & (1 << m) != 0
    }

    /// The fused device is lost (data it needs was lost with a member: `images.rs`).
    pub fn set_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// Whether the fused device is lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    fn check(&self) -> Result<(), vk::Result> {
        if self.is_lost() {
            Err(vk::Result::ERROR_DEVICE_LOST)
        } else {
            Ok(())
        }
    }
}

impl State {
    fn new(placer: Placer, topology: vkfuse_memory::Topology) -> State {
        State {
            placer,
            pin: None,
            submits: [0; MAX_MEMBERS],
            copyouts: [0; MAX_MEMBERS],
            poisoned: 0,
            bridge_next: [0; MAX_MEMBERS],
            links: crate::links::Links::default(),
            points: Vec::new(),
            timelines: HashMap::new(),
            placed: [0; MAX_MEMBERS],
            last_placed: None,
            queries: HashMap::new(),
            touched: HashMap::new(),
            touched_all: None,
            mirrors: HashMap::new(),
            host_event_batches: Vec::new(),
            mirrored_any: false,
            staged_any: false,
            staging_short: 0,
            placed_elsewhere: 0,
            fd_shared_any: false,
            image_binds: HashMap::new(),
            image_copies: (0, 0, 0, 0),
            swapchain_images: std::collections::HashSet::new(),
            frame_owner: HashMap::new(),
            frame_split_logged: false,
            coherence: Tracker::new(topology),
            tickets: Vec::new(),
            coherence_failed: false,
            split: Splits::default(),
        }
    }
}

fn timeline_type_info() -> vk::SemaphoreTypeCreateInfo<'static> {
    vk::SemaphoreTypeCreateInfo {
        semaphore_type: vk::SemaphoreType::TIMELINE,
        initial_value: 0,
        ..Default::default()
    }
}

/// Creates a timeline semaphore on a member for vkfuse's own use.
pub fn member_timeline(md: &MemberDevice) -> Result<vk::Semaphore, vk::Result> {
    let ty = timeline_type_info();
    // SAFETY: a timeline type; the member enables timelineSemaphore whenever `multi`
    // (device.rs).
    unsafe { member_semaphore(md, (&ty as *const vk::SemaphoreTypeCreateInfo).cast()) }
}

/// Creates a semaphore on a member for vkfuse's own use, `p_next` chained to its create info.
///
/// # Safety
/// `p_next` is null or a valid chain of semaphore create structures the member supports.
pub(crate) unsafe fn member_semaphore(
    md: &MemberDevice,
    p_next: *const std::ffi::c_void,
) -> Result<vk::Semaphore, vk::Result> {
    let f = md
        .fns
        .create_semaphore
        .ok_or_else(|| crate::guard::missing("vkCreateSemaphore"))?;
    let ci = vk::SemaphoreCreateInfo {
        p_next,
        ..Default::default()
    };
    let mut s = vk::Semaphore::null();
    // SAFETY: a valid create info (the caller's chain).
    let r = unsafe { f(md.handle, &ci, std::ptr::null(), &mut s) };
    if r == vk::Result::SUCCESS {
        Ok(s)
    } else {
        Err(r)
    }
}

pub(crate) fn destroy_member_semaphore(
    md: &MemberDevice,
    s: vk::Semaphore,
    alloc: *const vk::AllocationCallbacks,
) {
    if let (false, Some(f)) = (s.is_null(), md.fns.destroy_semaphore) {
        // SAFETY: a semaphore of this member (vkfuse's own, or the member's copy of the
        // application's) that no pending work uses any more.
        unsafe { f(md.handle, s, alloc) };
    }
}

/// The counter of a timeline semaphore of member `md` (`u64::MAX` when it cannot be read).
pub(crate) fn counter(md: &MemberDevice, s: vk::Semaphore) -> u64 {
    let mut v = 0;
    if let Some(f) = md.fns.get_semaphore_counter_value {
        // SAFETY: a live timeline semaphore of this member.
        if unsafe { f(md.handle, s, &mut v) } != vk::Result::SUCCESS {
            return u64::MAX;
        }
    }
    v
}

/// Waits on the host, blocking (no spinning), until timeline `sem` of member `md` reaches
/// `value` or `timeout_ns` passed.
pub(crate) fn host_wait(
    md: &MemberDevice,
    sem: vk::Semaphore,
    value: u64,
    timeout_ns: u64,
) -> vk::Result {
    let Some(wait) = md.fns.wait_semaphores else {
        return crate::guard::missing("vkWaitSemaphores");
    };
    let info = vk::SemaphoreWaitInfo {
        semaphore_count: 1,
        p_semaphores: &sem,
        p_values: &value,
        ..Default::default()
    };
    // SAFETY: a live timeline semaphore of this member (callers' contract).
    unsafe { wait(md.handle, &info, timeout_ns) }
}

/// Signals timeline `sem` of member `md` to `value` from the host. The caller knows the value
/// is ahead of the counter and of no pending signal (a host signal must not pass one).
pub(crate) fn host_signal(md: &MemberDevice, sem: vk::Semaphore, value: u64) -> vk::Result {
    let Some(signal) = md.fns.signal_semaphore else {
        return crate::guard::missing("vkSignalSemaphore");
    };
    let info = vk::SemaphoreSignalInfo {
        semaphore: sem,
        value,
        ..Default::default()
    };
    // SAFETY: a live timeline semaphore of this member (callers' contract).
    unsafe { signal(md.handle, &info) }
}

/// Sets up execution for a new device. Returns `Exec::single` (with one message) when batches
/// cannot run on several members. `import_align`, `same_driver`, `home`, `fence_apart`: see
/// [`Exec`]; `topology`: the transfer tiers between the members (indexed by member index), for
/// the coherence tracker; `links`: the pairs of members that share semaphores.
pub fn setup(
    members: &[MemberDevice],
    import_align: u64,
    (same_driver, home): (bool, u64),
    fence_apart: u64,
    (topology, links): (vkfuse_memory::Topology, crate::links::Links),
) -> Exec {
    let cfg = crate::config::Config::get();
    let primary = members.first().map_or(0, |m| m.index);
    if !cfg.multi() || members.len() < 2 {
        if cfg.multi() {
            crate::info!(
                "strategy {}: one member, every batch runs on member {primary}",
                cfg.strategy.name()
            );
        }
        return Exec {
            fence_apart,
            ..Exec::single(primary)
        };
    }
    let mut sems = [vk::Semaphore::null(); MAX_MEMBERS];
    for md in members {
        let usable = md.fns.queue_submit2.is_some()
            && md.fns.signal_semaphore.is_some()
            && md.fns.wait_semaphores.is_some()
            && md.fns.get_semaphore_counter_value.is_some();
        match usable.then(|| member_timeline(md)) {
            Some(Ok(s)) => sems[md.index] = s,
            other => {
                crate::warn!(
                    "member {}: no timeline semaphores or vkQueueSubmit2 ({:?}); every batch runs on member {primary}",
                    md.index,
                    other.map(|r| r.err())
                );
                for m in members {
                    destroy_member_semaphore(m, sems[m.index], std::ptr::null());
                }
                return Exec {
                    fence_apart,
                    ..Exec::single(primary)
                };
            }
        }
    }
    let order: Vec<usize> = members.iter().map(|m| m.index).collect();
    crate::info!(
        "strategy {}: batches placed over members {order:?}",
        cfg.strategy.name()
    );
    let pairs: Vec<String> = order
        .iter()
        .flat_map(|&j| {
            order
                .iter()
                .filter(move |&&i| i < j && links.from[j] & (1 << i) != 0)
                .map(move |i| format!("{i} and {j}"))
        })
        .collect();
    if !pairs.is_empty() {
        crate::info!(
            "members {} share semaphores (opaque fds): a batch waits for the other's last batch on its queue without the bridge thread",
            pairs.join(", ")
        );
    }
    let mut state = State::new(Placer::with_order(cfg.strategy, order), topology);
    state.links = links;
    Exec {
        multi: true,
        state: Mutex::new(state),
        bridge_sem: sems,
        bridge: Mutex::new(None),
        gated: Mutex::new(Vec::new()),
        lost: AtomicBool::new(false),
        lost_members: AtomicU64::new(0),
        import_align,
        same_driver,
        images_shared: members.iter().all(|m| home & (1 << m.index) != 0),
        home,
        fence_apart,
        images: Mutex::new(HashMap::new()),
        refused: Mutex::new(HashMap::new()),
    }
}

/// Starts the bridge thread of a device that was just given its final address.
pub fn start(d: &Device) {
    if !d.exec.multi {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let ptr = DevPtr(d);
    let thread = std::thread::Builder::new()
        .name("vkfuse-bridge".into())
        .spawn(move || {
            let ptr = ptr;
            // SAFETY: destroy_device joins this thread before it frees the device.
            let d = unsafe { &*ptr.0 };
            bridge_loop(d, rx)
        });
    match thread {
        Ok(thread) => *d.exec.bridge.lock() = Some(Bridge { tx, thread }),
        Err(e) => {
            crate::warn!("cannot start the bridge thread ({e}); every batch runs on the primary");
            d.exec.state.lock().pin = d.members.first().map(|m| m.index);
        }
    }
}

fn bridge_loop(d: &Device, rx: std::sync::mpsc::Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Job(j) => run_job(d, &j),
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Runs one bridge job: its waits (blocking), mirrored memory, timeline carries, its signal.
fn run_job(d: &Device, job: &Job) {
    for (m, sem, value) in &job.waits {
        let Some(md) = d.member(*m) else { continue };
        let r = host_wait(md, *sem, *value, u64::MAX);
        if r != vk::Result::SUCCESS {
            crate::warn!("member {m}: waiting for its work failed ({r:?}); it is lost");
            d.exec.lost_members.fetch_or(1 << m, Ordering::AcqRel);
        }
    }
    if !job.fills.is_empty() {
        let bytes: u64 = job.fills.iter().map(|f| f.run()).sum();
        crate::debug!(
            "images: {bytes} byte(s) copied by the CPU from other members' staging buffers"
        );
    }
    if !job.prep.is_empty() {
        let mut total = crate::mirror::Copied::default();
        for p in &job.prep {
            // An internal error here must not take the application down with this thread:
            // the member cannot be trusted with the batch and is lost.
            let Some(c) = crate::guard::catch("making mirrored memory ready", || {
                Ok(p.mirror
                    .prepare(d, p.member, &p.step, p.done, p.ticket, &p.stages))
            }) else {
                crate::error!(
                    "member {}: its mirrored memory is not ready; it is lost",
                    p.member
                );
                d.exec
                    .lost_members
                    .fetch_or(1 << p.member, Ordering::AcqRel);
                continue;
            };
            total.merged += c.merged;
            total.copied_in += c.copied_in;
            total.from_member += c.from_member;
            total.direct += c.direct;
        }
        // A chunked fill that stopped early (a step that failed) still lets the member go on.
        for p in &job.prep {
            if let (Some(f), Some(md)) = (p.stages.fill, d.member(p.member)) {
                if counter(md, f.sem) < f.count {
                    crate::mirror::signal_fill(md, f.sem, f.count);
                }
            }
        }
        crate::debug!(
            "mirrored memory for member {}: {} allocation(s), {} byte(s) merged into the shadow, {} byte(s) copied in, {} byte(s) from another member, {} byte(s) by the member from another member's staging buffer",
            job.prep[0].member,
            job.prep.len(),
            total.merged,
            total.copied_in,
            total.from_member,
            total.direct
        );
    }
    if let Some((merge, r)) = &job.merge {
        // SAFETY: the job waited for every member's work before round `r`, whose command
        // buffers wait for this job's signals; `submit_split` checked the copies are mapped.
        unsafe { merge.step(*r) };
    }
    for (m, sem, value) in &job.carry {
        let Some(md) = d.member(*m) else { continue };
        if counter(md, *sem) >= *value {
            continue;
        }
        // The member's copy of an application timeline semaphore, behind the value, which a
        // batch of another member has signalled.
        match host_signal(md, *sem, *value) {
            vk::Result::SUCCESS => {
                crate::debug!("timeline value {value} carried to member {m}'s copy")
            }
            r => crate::warn!("member {m}: carrying a timeline value failed ({r:?})"),
        }
    }
    if let Some((m, sem, value)) = job.signal {
        // The member's bridge semaphore, values handed out in increasing order and signalled
        // in that order by the bridge thread; or the own semaphore of a gated job
        // (`bridge_gated`), signalled once.
        if let Some(md) = d.member(m) {
            let r = host_signal(md, sem, value);
            if r != vk::Result::SUCCESS {
                crate::warn!("member {m}: the bridge could not signal ({r:?})");
            }
        }
    }
}

/// Waits until the bridge thread has run every job sent so far.
fn flush(d: &Device) {
    let rx = {
        let b = d.exec.bridge.lock();
        let Some(b) = b.as_ref() else { return };
        let (tx, rx) = std::sync::mpsc::channel();
        if b.tx.send(Msg::Flush(tx)).is_err() {
            return;
        }
        rx
    };
    let _ = rx.recv();
}

/// Stops the bridge thread and frees vkfuse's semaphores; called by vkDestroyDevice.
pub fn teardown(d: &Device) {
    if let Some(b) = d.exec.bridge.lock().take() {
        drop(b.tx);
        let _ = b.thread.join();
    }
    for t in std::mem::take(&mut *d.exec.gated.lock()) {
        let _ = t.join();
    }
    // Allocations the application did not free: their stages go before the staging pools.
    for m in std::mem::take(&mut d.exec.state.lock().mirrors).into_values() {
        m.retire();
    }
    d.staging.destroy();
    {
        // The device is idle: every round finished and is timed.
        let mut st = d.exec.state.lock();
        st.split.reclaim(d);
        st.split.destroy(d);
    }
    let (linked, made) = {
        let mut st = d.exec.state.lock();
        let made = st.links.made();
        st.links.destroy(d);
        (st.links.waits, made)
    };
    if linked > 0 {
        crate::info!(
            "{linked} wait(s) for another member's batch went through shared semaphores ({made} made)"
        );
    }
    for md in &d.members {
        destroy_member_semaphore(md, d.exec.bridge_sem[md.index], std::ptr::null());
    }
    for q in d.queues.lock().iter() {
        for md in &d.members {
            destroy_member_semaphore(md, q.done[md.index], std::ptr::null());
        }
    }
    if d.exec.multi {
        let st = d.exec.state.lock();
        let placed: Vec<String> = d
            .members
            .iter()
            .map(|m| format!("member {}: {}", m.index, st.placed[m.index]))
            .collect();
        crate::info!("batches placed: {}", placed.join(", "));
        if st.placed_elsewhere > 0 {
            crate::info!(
                "{} batch(es) ran on another member than placed: no staging buffers",
                st.placed_elsewhere
            );
        }
        if st.split.whole_by_hybrid > 0 {
            crate::info!(
                "hybrid: {} batch(es) ran whole: splitting did not pay",
                st.split.whole_by_hybrid
            );
        }
        if st.split.batches > 0 {
            let groups: Vec<String> = d
                .members
                .iter()
                .map(|m| format!("member {}: {}", m.index, st.split.groups[m.index]))
                .collect();
            crate::info!(
                "compute_split: {} batch(es) split in {} round(s); workgroups run: {}",
                st.split.batches,
                st.split.rounds,
                groups.join(", ")
            );
            if st.split.sliced > 0 {
                let parts: Vec<String> = d
                    .members
                    .iter()
                    .map(|m| format!("member {}: {}", m.index, st.split.sliced_parts[m.index]))
                    .collect();
                crate::info!(
                    "compute_split: {} indirect dispatch(es) with group counts not known at submit split by workgroup slices ({} narrowed: each member launched only its slice's workgroups); parts of {} run: {}",
                    st.split.sliced,
                    st.split.narrowed,
                    vkfuse_shader::slice::PARTS,
                    parts.join(", ")
                );
            }
            if st.split.mirrored > 0 {
                crate::info!(
                    "compute_split: {} batch(es) with mirrored memory or images copied between drivers: {} byte(s) copied to other members before rounds, {} byte(s) merged after them",
                    st.split.mirrored,
                    st.split.copied_bytes,
                    st.split.merged_bytes
                );
            }
            let busy: Vec<String> = d
                .members
                .iter()
                .map(|m| {
                    format!(
                        "member {}: {} ns in {} slice(s)",
                        m.index, st.split.busy[m.index], st.split.timed[m.index]
                    )
                })
                .collect();
            if st.split.round_max > 0 {
                crate::info!(
                    "compute_split: busy time (timestamps): {}; projected speed-up {:.3} (members' busy time summed / the longest member's, over the rounds timed on every member; a projection, not a measurement)",
                    busy.join(", "),
                    st.split.round_sum as f64 / st.split.round_max as f64
                );
            }
        }
        let (copied_in, copied_out, taken, of) = st.image_copies;
        if copied_in + copied_out > 0 {
            crate::info!(
                "images copied between members: {copied_out} copied out, {copied_in} copied in ({taken} of their {of} subresource(s))"
            );
        }
    }
}

/// Pins every later batch to the primary member, with the reason (logged once per device).
pub fn pin_primary(d: &Device, reason: &str) {
    pin(d, d.primary().index, reason);
}

/// Pins every later batch to member `m`, with the reason (logged once per device). False when
/// batches are already pinned to another member.
pub fn pin(d: &Device, m: usize, reason: &str) -> bool {
    if !d.exec.multi {
        return m == d.primary().index;
    }
    let mut st = d.exec.state.lock();
    match st.pin {
        None => {
            crate::info!("every later batch runs on member {m}: {reason}");
            st.pin = Some(m);
            true
        }
        Some(p) => p == m,
    }
}

/// How a recorded command uses an event or queries (`note`, `note-read`, `note-rw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// Sets the state (an event set or reset; queries reset, begun, ended, written).
    Write,
    /// Reads the state (waits for an event, copies query results): the batch runs where the
    /// state is, unless the submit wrote it first.
    Read,
    /// Needs queries in their reset state (begin, timestamp): where another member reset them,
    /// vkfuse resets the running member's copy from the host.
    NeedsReset,
}

/// What a recorded command does to an event or query pool (`note` in overrides.txt).
#[derive(Clone, Copy, Debug)]
pub struct Note {
    pub raw: u64,
    /// Queries `first..first + count` of a query pool; `count` 0: the whole object.
    pub first: u32,
    pub count: u32,
    pub kind: NoteKind,
}

impl Note {
    fn covers(&self, o: &Note) -> bool {
        self.raw == o.raw
            && (self.count == 0
                || (o.count != 0
                    && self.first <= o.first
                    && o.first as u64 + o.count as u64 <= self.first as u64 + self.count as u64))
    }
}

/// Record-time note: the member that runs the command buffer takes over `raw` (an event, or
/// queries of a query pool), so host queries about it go to that member; a `read` pulls the
/// batch to the member holding the state, unless the submit wrote it first.
#[inline]
pub fn note(cb: &CommandBuffer, raw: u64, first: u32, count: u32, kind: NoteKind) {
    if cb.target_count > 1 && raw != 0 {
        cb.notes.lock().push(Note {
            raw,
            first,
            count,
            kind,
        });
    }
}

/// The notes of the command buffers of `batches`, in submission order.
fn batch_notes(batches: &[Batch]) -> Vec<Note> {
    let mut out = Vec::new();
    for b in batches {
        for c in &b.cbs {
            // SAFETY: the application submits live vkfuse command buffers.
            if let Ok((cb, _)) = unsafe { CommandBuffer::resolve(c.command_buffer) } {
                out.extend(cb.notes.lock().iter().copied());
            }
        }
    }
    out
}

/// Whether a note of the submit before `notes[i]` wrote what it names.
fn written_before(notes: &[Note], i: usize) -> bool {
    notes[..i]
        .iter()
        .any(|w| w.kind == NoteKind::Write && w.covers(&notes[i]))
}

/// Queries the batch begins or writes that another member reset: the running member `j`'s
/// copies are reset from the host first (members run with hostQueryReset), so they are in
/// the state the application left them in.
fn reset_queries(d: &Device, st: &State, notes: &[Note], j: usize) {
    let Some(md) = d.member(j) else { return };
    let Some(reset) = md.fns.reset_query_pool else {
        return;
    };
    for (i, n) in notes.iter().enumerate() {
        if n.kind != NoteKind::NeedsReset || written_before(notes, i) {
            continue;
        }
        let Some(owners) = st.queries.get(&n.raw) else {
            continue;
        };
        let first = n.first as usize;
        let count = if n.count == 0 { 1 } else { n.count as usize };
        let elsewhere = owners
            .get(first..(first + count).min(owners.len()))
            .is_some_and(|r| r.iter().any(|m| *m != NO_MEMBER && usize::from(*m) != j));
        if elsewhere {
            // SAFETY: the member's copy of the pool; no batch of member j uses these queries now
            // (batches run in submission order across members).
            unsafe {
                reset(
                    md.handle,
                    nd(vk::QueryPool::from_raw(n.raw), j),
                    n.first,
                    count as u32,
                )
            };
        }
    }
}

/// The member whose copy of an event or of queries a read in the batch needs, if another one
/// than the batch might run on: the first read that no earlier note of the submit wrote.
fn read_affinity(st: &State, notes: &[Note], alive: u64) -> Option<usize> {
    for (i, n) in notes.iter().enumerate() {
        if n.kind != NoteKind::Read || written_before(notes, i) {
            continue;
        }
        let holder = match st.queries.get(&n.raw) {
            Some(owners) => {
                let end = if n.count == 0 {
                    owners.len()
                } else {
                    (n.first as usize + n.count as usize).min(owners.len())
                };
                owners
                    .get(n.first as usize..end)
                    .and_then(|r| r.iter().find(|m| **m != NO_MEMBER).copied())
                    .map(usize::from)
            }
            // SAFETY: noted handles are live objects while the command buffer is pending.
            None => unsafe { ObjectBase::get(n.raw) }
                .ok()
                .and_then(|o| o.last_member()),
        };
        if let Some(m) = holder.filter(|m| alive & (1 << m) != 0) {
            return Some(m);
        }
    }
    None
}

fn alive_mask(d: &Device) -> u64 {
    let lost = d.exec.lost_members.load(Ordering::Acquire);
    d.members
        .iter()
        .filter(|m| lost & (1 << m.index) == 0)
        .fold(0, |a, m| a | 1 << m.index)
}

/// Member `m` is lost. The fused device lives on when no batch of `m` was still running (every
/// allocation is shared host memory or lives on the pinned member, so finished work survives),
/// and `m` is not the pinned member.
fn lose_member(d: &Device, st: &mut State, m: usize, why: &str) -> Result<(), vk::Result> {
    d.exec.lost_members.fetch_or(1 << m, Ordering::AcqRel);
    let mut unfinished = false;
    if let Some(md) = d.member(m) {
        for (_, sems, points) in &st.points {
            if points[m] == 0 {
                continue;
            }
            // The member's done semaphore; a bounded wait (1 s).
            if host_wait(md, sems[m], points[m], 1_000_000_000) != vk::Result::SUCCESS {
                unfinished = true;
            }
        }
    }
    let survivors: Vec<usize> = d
        .members
        .iter()
        .map(|x| x.index)
        .filter(|x| alive_mask(d) & (1 << x) != 0)
        .collect();
    let mut lost_data = None;
    st.poisoned = 0;
    if !unfinished {
        // Its finished batches' changes to mirrored memory are read from its copies while they
        // can be: the shadows hold what it alone held.
        for mirror in st.mirrors.values() {
            mirror.rescue(d, m);
            mirror.forget(m);
        }
        lost_data = tracker_loses(d, st, m);
    }
    let data_lost = st.pin == Some(m) || unfinished || survivors.is_empty() || lost_data.is_some();
    if data_lost {
        let what = if st.pin == Some(m) {
            "it held the only copy of memory that is not shared between members".to_string()
        } else if unfinished {
            "work it had not finished is lost".to_string()
        } else if let Some(what) = lost_data {
            what
        } else {
            "no member is left".to_string()
        };
        crate::error!("member {m} lost ({why}): {what}; the fused device is lost");
        d.exec.lost.store(true, Ordering::Release);
        return Err(vk::Result::ERROR_DEVICE_LOST);
    }
    if std::mem::take(&mut st.poisoned) > 0 {
        crate::warn!("member {m} lost ({why}); every resource but those images survives on members {survivors:?}; continuing on them");
    } else {
        crate::warn!("member {m} lost ({why}); every resource survives on members {survivors:?}; continuing on them");
    }
    Ok(())
}

/// Member `m`, whose batches all finished, is lost: tells the coherence tracker, after
/// recording that the shadows now hold what `m` alone held of mirrored memory (`rescue`).
/// Returns what was lost, if the latest contents of something existed only on `m` (an image
/// it wrote and did not copy out, say).
fn tracker_loses(d: &Device, st: &mut State, m: usize) -> Option<String> {
    retire_finished(d, st, true);
    let site = Site::member(m)?;
    if !st.coherence.alive().contains(m) {
        // Lost before (the pinned member, found lost at a later submit).
        return None;
    }
    let others = Sites::from_members(st.coherence.alive()).without(site);
    let mut rescued = Vec::new();
    for raw in st.mirrors.keys() {
        for (r, holders) in st.coherence.segments(*raw).unwrap_or_default() {
            if holders.contains(site) && !holders.intersects(others) {
                rescued.extend(
                    st.coherence
                        .read_plan(*raw, r, Site::HOST)
                        .unwrap_or_default(),
                );
            }
        }
    }
    if let Err(e) = st.coherence.commit_transfers(&rescued) {
        crate::warn!("member {m}: the coherence tracker refused the rescue of its copies ({e})");
    }
    let report = match st.coherence.lose_member(m) {
        Ok(r) => r,
        Err(e) => {
            crate::warn!("member {m}: the coherence tracker refused its loss ({e})");
            return None;
        }
    };
    // Sites that shared a storage `m` owned (same-driver members binding an image to
    // memory `m` exported) get one of their own, empty: they copy the latest in when they
    // next use it.
    for (id, sites) in &report.orphaned {
        for s in sites.iter() {
            let _ = st.coherence.add_storage(
                *id,
                vkfuse_memory::Storage {
                    sites: Sites::single(s),
                    owner: s,
                },
            );
        }
    }
    for t in &report.in_flight {
        // Finished (`retire_finished` found its done point unreached only if it raced).
        let _ = st.coherence.retire(*t);
    }
    if !report.data_lost() {
        crate::debug!(
            "coherence after losing member {m}: {}",
            st.coherence.summary()
        );
        return None;
    }
    let (mirrored, images): (Vec<_>, Vec<_>) = report
        .lost
        .iter()
        .partition(|(id, _)| st.mirrors.contains_key(id));
    // Images copied between drivers whose latest contents only `m` held (lazy copies): lost,
    // but only a batch that needs them loses the device; one that discards them (a render
    // target cleared every frame, say) goes on (`images::lose`).
    let known = d.exec.images.lock();
    let mut poisoned = std::collections::BTreeSet::new();
    let mut other = Vec::new();
    for (id, r) in images {
        match known.get(&id) {
            Some(img) => {
                crate::images::lose(img, m, r);
                poisoned.insert(id);
            }
            None => other.push(id),
        }
    }
    drop(known);
    st.poisoned = poisoned.len();
    if !poisoned.is_empty() {
        crate::warn!(
            "member {m} alone held the latest contents of {} image(s): they are lost, and a batch that needs them before discarding them loses the fused device",
            poisoned.len()
        );
    }
    if mirrored.is_empty() && other.is_empty() {
        return None;
    }
    Some(format!(
        "it alone held the latest contents of {} range(s) of mirrored memory and {} image(s)",
        mirrored.len(),
        other
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    ))
}

/// One batch, with fused handles, as vkQueueSubmit2 describes it.
struct Batch {
    waits: Vec<vk::SemaphoreSubmitInfo<'static>>,
    cbs: Vec<vk::CommandBufferSubmitInfo<'static>>,
    signals: Vec<vk::SemaphoreSubmitInfo<'static>>,
    flags: vk::SubmitFlags,
    /// The application's pNext chain (vkQueueSubmit2 only; translated per member).
    p_next: *const std::ffi::c_void,
}

/// # Safety
/// `s` is a valid VkSubmitInfo.
unsafe fn batch_from_submit(s: &vk::SubmitInfo) -> Batch {
    let mut wait_values: &[u64] = &[];
    let mut signal_values: &[u64] = &[];
    let mut flags = vk::SubmitFlags::empty();
    let mut p = s.p_next as *const vk::BaseInStructure;
    // SAFETY: a valid pNext chain of the application.
    unsafe {
        while !p.is_null() {
            match (*p).s_type {
                vk::StructureType::TIMELINE_SEMAPHORE_SUBMIT_INFO => {
                    let t = &*(p as *const vk::TimelineSemaphoreSubmitInfo);
                    if !t.p_wait_semaphore_values.is_null() {
                        wait_values = std::slice::from_raw_parts(
                            t.p_wait_semaphore_values,
                            t.wait_semaphore_value_count as usize,
                        );
                    }
                    if !t.p_signal_semaphore_values.is_null() {
                        signal_values = std::slice::from_raw_parts(
                            t.p_signal_semaphore_values,
                            t.signal_semaphore_value_count as usize,
                        );
                    }
                }
                vk::StructureType::PROTECTED_SUBMIT_INFO
                    if (*(p as *const vk::ProtectedSubmitInfo)).protected_submit != 0 =>
                {
                    flags |= vk::SubmitFlags::PROTECTED;
                }
                _ => {}
            }
            p = (*p).p_next;
        }
    }
    let slice = |ptr: *const vk::Semaphore, n: u32| -> &[vk::Semaphore] {
        if ptr.is_null() || n == 0 {
            &[]
        } else {
            // SAFETY: n valid elements (VkSubmitInfo).
            unsafe { std::slice::from_raw_parts(ptr, n as usize) }
        }
    };
    let waits = slice(s.p_wait_semaphores, s.wait_semaphore_count)
        .iter()
        .enumerate()
        .map(|(i, sem)| vk::SemaphoreSubmitInfo {
            semaphore: *sem,
            value: wait_values.get(i).copied().unwrap_or(0),
            // SAFETY: one stage mask per wait semaphore.
            stage_mask: vk::PipelineStageFlags2::from_raw(unsafe {
                (*s.p_wait_dst_stage_mask.add(i)).as_raw() as u64
            }),
            ..Default::default()
        })
        .collect();
    let signals = slice(s.p_signal_semaphores, s.signal_semaphore_count)
        .iter()
        .enumerate()
        .map(|(i, sem)| vk::SemaphoreSubmitInfo {
            semaphore: *sem,
            value: signal_values.get(i).copied().unwrap_or(0),
            stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
            ..Default::default()
        })
        .collect();
    let cbs = (0..s.command_buffer_count as usize)
        .map(|i| vk::CommandBufferSubmitInfo {
            // SAFETY: commandBufferCount handles.
            command_buffer: unsafe { *s.p_command_buffers.add(i) },
            ..Default::default()
        })
        .collect();
    Batch {
        waits,
        cbs,
        signals,
        flags,
        p_next: std::ptr::null(),
    }
}

/// # Safety
/// `s` is a valid VkSubmitInfo2.
unsafe fn batch_from_submit2(s: &vk::SubmitInfo2) -> Batch {
    // SAFETY: counts and arrays of a valid VkSubmitInfo2.
    let v = |p: *const vk::SemaphoreSubmitInfo, n: u32| unsafe {
        if p.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p, n as usize)
                .iter()
                .map(|x| vk::SemaphoreSubmitInfo {
                    semaphore: x.semaphore,
                    value: x.value,
                    stage_mask: x.stage_mask,
                    device_index: x.device_index,
                    ..Default::default()
                })
                .collect()
        }
    };
    Batch {
        waits: v(s.p_wait_semaphore_infos, s.wait_semaphore_info_count),
        // SAFETY: as above.
        cbs: unsafe {
            if s.p_command_buffer_infos.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(
                    s.p_command_buffer_infos,
                    s.command_buffer_info_count as usize,
                )
                .iter()
                .map(|x| vk::CommandBufferSubmitInfo {
                    command_buffer: x.command_buffer,
                    device_mask: x.device_mask,
                    ..Default::default()
                })
                .collect()
            }
        },
        signals: v(s.p_signal_semaphore_infos, s.signal_semaphore_info_count),
        flags: s.flags,
        p_next: s.p_next,
    }
}

fn sem_obj<'a>(s: vk::Semaphore) -> Option<&'a ObjectBase> {
    // SAFETY: the application passes live vkfuse semaphores.
    unsafe { ObjectBase::get(s.as_raw()) }.ok()
}

/// Places the batches of one submit; returns the member.
fn place(
    d: &Device,
    st: &mut State,
    batches: &[Batch],
    notes: &[Note],
    (access, transitions): (&crate::access::AccessSet, &[crate::layout::Transition]),
    fence: bool,
) -> Result<usize, vk::Result> {
    loop {
        let alive = alive_mask(d);
        // Multisampled images copied between drivers cannot move: a batch that needs their
        // contents runs on the member that wrote them.
        let held = match crate::images::affinity(d, &st.image_binds, access, transitions, alive) {
            Ok(m) => m,
            Err(why) => {
                crate::error!(
                    "a batch cannot run: {why}, and such images cannot be copied between members; the fused device is lost"
                );
                d.exec.lost.store(true, Ordering::Release);
                return Err(vk::Result::ERROR_DEVICE_LOST);
            }
        };
        // A signal of a timeline value that a forwarded wait is waiting for goes to the
        // waiter's member.
        let forced = batches.iter().flat_map(|b| &b.signals).find_map(|s| {
            st.timelines.get(&s.semaphore.as_raw()).and_then(|t| {
                t.waiters
                    .iter()
                    .find(|(v, m)| *v <= s.value && alive & (1 << m) != 0)
                    .map(|(_, m)| *m)
            })
        });
        let affinity = read_affinity(st, notes, alive);
        let frame = frame_affinity(st, access, alive);
        if let (Some(a), Some(f)) = (affinity, frame) {
            if a != f && !st.frame_split_logged {
                st.frame_split_logged = true;
                crate::warn!(
                    "a batch drawing a frame on member {f} reads an event or queries that member {a} holds: it runs on member {a}, and the frame's earlier drawing there is not in its image"
                );
            }
        }
        let m = match (st.pin, affinity.or(held).or(frame).or(forced)) {
            (Some(p), _) => Some(p),
            (None, Some(f)) => {
                if affinity.is_none() && held.is_none() && frame == Some(f) {
                    // Part of a frame placed earlier: the placer counts it (an afr frame
                    // ends with its fence-signalling submit).
                    st.placer.placed_on(f, BatchInfo::new(fence, alive));
                }
                Some(f)
            }
            (None, None) => {
                let placed = st.placer.place(BatchInfo::new(fence, alive));
                // `hybrid`: batches it runs whole go to the member measured fastest.
                match (st.placer.strategy(), &st.split.balance) {
                    (vkfuse_scheduler::Strategy::Hybrid, Some(b)) => {
                        b.all.fastest(&live_kept(st, alive)).or(placed)
                    }
                    _ => placed,
                }
            }
        };
        let Some(m) = m else {
            d.exec.lost.store(true, Ordering::Release);
            return Err(vk::Result::ERROR_DEVICE_LOST);
        };
        if alive & (1 << m) == 0 {
            // The pinned member is lost.
            lose_member(d, st, m, "lost earlier")?;
            continue;
        }
        if let Some(why) = injected_loss(st, m) {
            lose_member(d, st, m, &why)?;
            continue;
        }
        return Ok(m);
    }
}

/// Counts a submission on member `m`; `VKFUSE_FAULT=submit:M:N` makes it lost there: the
/// reason, logged.
fn injected_loss(st: &mut State, m: usize) -> Option<String> {
    st.submits[m] += 1;
    if !crate::config::Config::get().fault_at("submit", m, st.submits[m]) {
        return None;
    }
    let why = format!(
        "VKFUSE_FAULT: VK_ERROR_DEVICE_LOST at its submission {}",
        st.submits[m]
    );
    crate::warn!("member {m}: {why}");
    Some(why)
}

/// The kept members (placement order) that are alive.
fn live_kept(st: &State, alive: u64) -> Vec<usize> {
    st.placer
        .kept()
        .iter()
        .copied()
        .filter(|m| alive & (1 << m) != 0)
        .collect()
}

/// What a submit on member `j`'s queue with done semaphore `own` must wait for: the unfinished
/// last batches of other members, and of `j`'s other queues.
fn edges(d: &Device, st: &State, j: usize, own: vk::Semaphore) -> Vec<Edge> {
    let mut out = Vec::new();
    let lost = d.exec.lost_members.load(Ordering::Acquire);
    for (_, sems, points) in &st.points {
        for md in &d.members {
            let i = md.index;
            if ordered_by_queue((i, sems[i]), j, own) || points[i] == 0 || lost & (1 << i) != 0 {
                continue;
            }
            if counter(md, sems[i]) < points[i] {
                out.push((i, sems[i], points[i]));
            }
        }
    }
    out
}

struct Placed {
    /// Binary semaphores signalled on another member, to consume there: (member, handle).
    consume: Vec<(usize, vk::Semaphore)>,
    /// Done points of the batches on other members that signal the timeline values waited
    /// for: the dropped waits become these edges.
    signalled_by: Vec<Edge>,
}

/// Rewrites the semaphore operations of the batches for member `j` (drops waits that other
/// members' batches signal: they become edges) and records what they signal, at `done`, the
/// done point of this submit.
fn sync_ops(d: &Device, st: &mut State, batches: &mut [Batch], j: usize, done: Edge) -> Placed {
    let mut consume = Vec::new();
    let mut signalled_by = Vec::new();
    for b in batches.iter_mut() {
        let mut kept = Vec::with_capacity(b.waits.len());
        for w in b.waits.drain(..) {
            let raw = w.semaphore.as_raw();
            if let Some(t) = st.timelines.get_mut(&raw) {
                match at_or_above(&t.signals, w.value) {
                    Some(m) if m == j => kept.push(w),
                    Some(_) => {
                        signalled_by.extend(at_or_above(&t.signal_points, w.value));
                    }
                    None => {
                        if highest_copy(d, w.semaphore) < w.value {
                            t.waiters.push((w.value, j));
                            kept.push(w);
                        }
                    }
                }
                continue;
            }
            let Some(obj) = sem_obj(w.semaphore) else {
                continue;
            };
            match obj.last_member() {
                Some(i) if i != j => consume.push((i, w.semaphore)),
                _ => kept.push(w),
            }
            obj.set_last(None);
        }
        b.waits = kept;
        for s in &b.signals {
            let raw = s.semaphore.as_raw();
            if let Some(t) = st.timelines.get_mut(&raw) {
                insert_by_value(&mut t.signals, (s.value, j));
                insert_by_value(&mut t.signal_points, (s.value, done));
                t.waiters.retain(|(v, m)| !(*m == j && *v <= s.value));
                if t.signals.len() > 64 {
                    prune(d, raw, t);
                }
            } else if let Some(obj) = sem_obj(s.semaphore) {
                obj.set_last(Some(j));
            }
        }
    }
    Placed {
        consume,
        signalled_by,
    }
}

/// Forgets timeline signals every member's copy has passed.
fn prune(d: &Device, raw: u64, t: &mut Timeline) {
    let reached = highest_copy(d, vk::Semaphore::from_raw(raw));
    // Both lists are in ascending order of value: what was reached is a prefix.
    let k = t.signals.partition_point(|e| e.0 <= reached);
    t.signals.drain(..k);
    let k = t.signal_points.partition_point(|e| e.0 <= reached);
    t.signal_points.drain(..k);
}

/// The highest value the members' copies of a timeline semaphore have reached (copies that
/// cannot be read are left out).
fn highest_copy(d: &Device, sem: vk::Semaphore) -> u64 {
    d.members
        .iter()
        .map(|md| counter(md, nd(sem, md.index)))
        .filter(|v| *v != u64::MAX)
        .max()
        .unwrap_or(0)
}

/// Member `j` takes over what the submit's commands wrote (events, queries).
fn take_over(st: &mut State, notes: &[Note], j: usize) {
    for n in notes.iter().filter(|n| n.kind == NoteKind::Write) {
        // SAFETY: noted handles are live objects while the command buffer is pending.
        let Ok(o) = (unsafe { ObjectBase::get(n.raw) }) else {
            continue;
        };
        o.set_last(Some(j));
        if o.ty == vk::ObjectType::QUERY_POOL {
            let owners = st.queries.entry(n.raw).or_default();
            let end = if n.count == 0 {
                owners.len()
            } else {
                n.first as usize + n.count as usize
            };
            if owners.len() < end {
                owners.resize(end, NO_MEMBER);
            }
            owners[n.first as usize..end].fill(j as u8);
        }
    }
}

fn queue_entry<'s>(
    st: &'s mut State,
    q: &Queue,
) -> &'s mut (usize, [vk::Semaphore; MAX_MEMBERS], [u64; MAX_MEMBERS]) {
    let key = q as *const Queue as usize;
    let pos = match st.points.iter().position(|e| e.0 == key) {
        Some(p) => p,
        None => {
            st.points.push((key, q.done, [0; MAX_MEMBERS]));
            st.points.len() - 1
        }
    };
    &mut st.points[pos]
}

/// If another member's last batch has not completed, hands member `j` a bridge value to wait
/// for: the bridge thread signals it once those batches completed.
fn bridge_to(
    d: &Device,
    st: &mut State,
    j: usize,
    own: vk::Semaphore,
) -> Result<Option<(vk::Semaphore, u64)>, vk::Result> {
    let waits = edges(d, st, j, own);
    bridge_on(d, st, j, waits)
}

/// The done points of the batches that a batch with `access` (which names no "every
/// allocation") must follow: per allocation, those that may have written a range it touches,
/// and those that read a range it may write; and the last that may have touched every
/// allocation. Batches that only read the same memory, or use disjoint ranges of it (buffers
/// bound at different offsets), do not wait for each other.
fn data_edges(st: &State, access: &crate::access::AccessSet) -> Vec<Edge> {
    let mut out: Vec<Edge> = st.touched_all.into_iter().collect();
    for (m, u) in &access.memory {
        if let Some(t) = st.touched.get(m) {
            out.extend(t.before(u));
        }
    }
    out
}

/// Whether work that finishes at a done point on `(member, done semaphore)` is ordered before a
/// batch on member `j`'s queue whose done semaphore is `own` by that queue's order alone: the
/// same member queue. A batch on another queue of the same member is not (Vulkan orders
/// nothing between two queues), so it is waited for like another member's.
fn ordered_by_queue((i, sem): (usize, vk::Semaphore), j: usize, own: vk::Semaphore) -> bool {
    i == j && sem == own
}

/// The edges not over yet that a batch on `j`'s queue with done semaphore `own` must wait for
/// (other members', and those of `j`'s other queues), the highest value per done semaphore.
fn unfinished(d: &Device, j: usize, own: vk::Semaphore, edges: Vec<Edge>) -> Vec<Edge> {
    let lost = d.exec.lost_members.load(Ordering::Acquire);
    let mut out: Vec<Edge> = Vec::new();
    for (i, sem, value) in edges {
        if ordered_by_queue((i, sem), j, own) || lost & (1 << i) != 0 {
            continue;
        }
        match out.iter_mut().find(|e| e.0 == i && e.1 == sem) {
            Some(e) => e.2 = e.2.max(value),
            None => out.push((i, sem, value)),
        }
    }
    out.retain(|(i, sem, value)| d.member(*i).is_some_and(|md| counter(md, *sem) < *value));
    out
}

/// The mirrored allocations a batch on member `j` with `access` touches, with how (all of
/// them, written, for "every allocation"), less the ranges of images whose copy on `j` is
/// bound to memory of vkfuse's own (`images.rs` keeps those coherent; `j`'s copy of the
/// allocation holds nothing of theirs).
fn touched_mirrors<'a>(
    mirrors: &'a HashMap<u64, Arc<Mirror>>,
    image_binds: &'a HashMap<u64, Vec<Arc<crate::images::Image>>>,
    access: &'a crate::access::AccessSet,
    j: usize,
) -> Vec<(
    u64,
    &'a Arc<Mirror>,
    std::borrow::Cow<'a, crate::access::Use>,
)> {
    if mirrors.is_empty() {
        return Vec::new();
    }
    let all: Vec<(u64, &Arc<Mirror>, std::borrow::Cow<'a, crate::access::Use>)> =
        if access.everything.is_some() {
            mirrors
                .iter()
                .map(|(raw, m)| (*raw, m, std::borrow::Cow::Owned(crate::access::Use::all())))
                .collect()
        } else {
            access
                .memory
                .iter()
                .filter_map(|(raw, u)| {
                    mirrors
                        .get(raw)
                        .map(|m| (*raw, m, std::borrow::Cow::Borrowed(u)))
                })
                .collect()
        };
    all.into_iter()
        .filter_map(|(raw, m, u)| {
            let private: Vec<Range> = image_binds
                .get(&raw)
                .into_iter()
                .flatten()
                .filter_map(|img| img.private_range(j))
                .collect();
            if private.is_empty() {
                return Some((raw, m, u));
            }
            let mut u = u.into_owned();
            for r in private {
                u.touched.remove(r);
                u.written.remove(r);
            }
            (!u.touched.is_empty()).then_some((raw, m, std::borrow::Cow::Owned(u)))
        })
        .collect()
}

/// The staging buffers of a batch on member `j`, for the mirrored allocations it touches
/// whose copy on `j` is reached through staging (`staging.rs`): sized by what the claims will
/// copy in and what the batch may write, with the transfer command buffers around the batch.
/// Nothing is claimed yet, so a failure leaves no trace. Without `chunks`, no input stage is
/// filled in chunks.
/// Whether the warning about host-set events and staged copies was given (once per process).
static HOST_EVENTS_STAGED: AtomicBool = AtomicBool::new(false);

fn stage_for(
    d: &Device,
    st: &State,
    q: &Queue,
    (access, transitions): (&crate::access::AccessSet, &[crate::layout::Transition]),
    j: usize,
    chunks: bool,
) -> Result<StagedBatch, vk::Result> {
    let mut stages = HashMap::new();
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    // Output stages every member reaches (host memory imported into all of them), so that
    // the next reader copies straight from them.
    let shared = d.exec.import_align != 0;
    let mut chunked: Option<(u64, crate::staging::Transfer)> = None;
    for (raw, m, u) in touched_mirrors(&st.mirrors, &st.image_binds, access, j) {
        let cover = m.cover(j);
        if cover.is_null() {
            continue;
        }
        if access.host_events && !HOST_EVENTS_STAGED.swap(true, Ordering::Relaxed) {
            crate::warn!(
                "a batch on member {j} waits for events the host may set, and mirrored memory reaches that member through staging: what the host writes into mapped memory after the submit is not seen by the batch (host-set events publish host writes only to copies vkfuse maps)"
            );
        }
        let copy_in = if m.host_writes() {
            u.touched.clone()
        } else {
            Site::member(j)
                .and_then(|site| st.coherence.lacks(raw, &u.touched, site).ok())
                .unwrap_or_else(|| u.touched.clone())
        };
        let peek = m.peek(j, &u, copy_in);
        let mut s = Staged {
            limit: peek.copy_in,
            direct: RangeSet::new(),
            stages: crate::mirror::Stages::default(),
        };
        if !peek.indirect.is_empty() {
            let large = peek.indirect.units() >= crate::staging::CHUNKED;
            let stage = d.staging.stage(d, j, peek.indirect, true, false)?;
            let t = crate::staging::Transfer {
                cover,
                stage: stage.clone(),
                parts: None,
            };
            // One large input per batch is filled and copied in chunks, pipelined.
            if large && chunks && chunked.is_none() {
                chunked = Some((raw, t));
            } else {
                ins.push(t);
            }
            s.stages.input = Some(stage);
        }
        for x in peek.direct {
            s.direct.insert(x.part);
            s.stages.after.push(x.edge);
            s.stages.direct_bytes += x.part.len();
            ins.push(crate::staging::Transfer {
                cover,
                stage: x.out,
                parts: Some(vec![x.part]),
            });
        }
        if !peek.write.is_empty() {
            let stage = d.staging.stage(d, j, peek.write, false, shared)?;
            outs.push(crate::staging::Transfer {
                cover,
                stage: stage.clone(),
                parts: None,
            });
            s.stages.output = Some(stage);
        }
        stages.insert(raw, s);
    }
    // Images copied between members of different drivers (`images.rs`).
    let images = crate::images::plan(
        d,
        &st.coherence,
        &st.image_binds,
        access,
        transitions,
        j,
        st.pin.is_some(),
    )?;
    let md = d.member(j).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
    let family = crate::conv::queue_family(&md.maps, q.family);
    let rec = d.staging.record(
        d,
        j,
        family,
        &ins,
        &outs,
        chunked.as_ref().map(|c| &c.1),
        (&images.ins, &images.outs),
    )?;
    if let (Some((raw, t)), Some(fill)) = (&chunked, rec.fill) {
        crate::debug!(
            "member {j}: an input stage of {} byte(s) is filled and copied in {} chunk(s)",
            t.stage.ranges.units(),
            fill.count
        );
        if let Some(s) = stages.get_mut(raw) {
            s.stages.fill = Some(fill);
        }
    }
    Ok((stages, rec, images))
}

/// Lazy image copies (`images.rs`): copies out, on their holders, the images `held` (whose
/// latest contents only the holder's copy has) that a batch needs elsewhere. Per holder one
/// command buffer (its staging epilogue) in a submit of its own on the holder's queue of `q`,
/// after the batches that wrote them (through the bridge where one ran on another queue of
/// the holder); the images' latest contents are then on the host as well, as if their writers
/// had copied them out. Returns the copies' done points, which the batch must wait for.
fn publish_images(
    d: &Device,
    st: &mut State,
    q: &Queue,
    held: Vec<crate::images::Held>,
) -> Result<Vec<Edge>, vk::Result> {
    let shared = d.exec.import_align != 0;
    let mut by_holder: Vec<(usize, Vec<crate::images::Held>)> = Vec::new();
    for h in held {
        match by_holder.iter_mut().find(|(m, _)| *m == h.holder) {
            Some((_, list)) => list.push(h),
            None => by_holder.push((h.holder, vec![h])),
        }
    }
    let mut done_points = Vec::new();
    for (i, list) in by_holder {
        // `VKFUSE_FAULT=copyout:M:N`: the holder is lost at its Nth copy out, with the
        // images it alone holds (a batch that needs them then loses the device).
        st.copyouts[i] += 1;
        if crate::config::Config::get().fault_at("copyout", i, st.copyouts[i]) {
            let why = format!(
                "VKFUSE_FAULT: VK_ERROR_DEVICE_LOST at its copy out {}",
                st.copyouts[i]
            );
            crate::warn!("member {i}: {why}");
            lose_member(d, st, i, &why)?;
            continue;
        }
        let md = d.member(i).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
        let family = crate::conv::queue_family(&md.maps, q.family);
        let mut outs = Vec::new();
        for h in &list {
            let stage = d
                .staging
                .stage(d, i, RangeSet::of(Range::at(0, h.size)), false, shared)?;
            outs.push(crate::staging::ImageTransfer {
                image: h.member_image,
                stage,
                regions: h.regions.clone(),
            });
        }
        let rec = d
            .staging
            .record(d, i, family, &[], &[], None, (&[], &outs))?;
        let Some(cb) = rec.epilogue else {
            continue;
        };
        let writers: Vec<Edge> = list.iter().map(|h| h.written).collect();
        let waits = unfinished(d, i, q.done[i], writers);
        let bridge = bridge_on(d, st, i, waits)?;
        if let Err(r) = submit_internal_bridged(d, st, q, i, &[], bridge, &[cb], &[]) {
            d.staging.launched(rec, (i, q.done[i], 0));
            return Err(r);
        }
        let done: Edge = (i, q.done[i], queue_entry(st, q).2[i]);
        d.staging.launched(rec, done);
        // Every later batch that touches the images waits for the copy, as for a batch that
        // wrote them: one that copies them in reads its stage, and a later writer on another
        // queue of the holder must not change them under it.
        let mut access = crate::access::AccessSet::default();
        for h in &list {
            let all = RangeSet::of(Range::at(0, h.image.unit_count()));
            access.memory.insert(
                h.image.raw,
                crate::access::Use {
                    touched: all.clone(),
                    written: all,
                },
            );
        }
        record_touches(d, st, &access, done);
        let count = list.len();
        for (h, out) in list.into_iter().zip(outs) {
            if let Err(e) = crate::images::published(h, &mut st.coherence, out.stage) {
                if !st.coherence_failed {
                    st.coherence_failed = true;
                    crate::warn!(
                        "member {i}: the coherence tracker refused an image's copy out ({e})"
                    );
                }
            }
        }
        st.image_copies.1 += count as u64;
        crate::debug!("member {i}: {count} image(s) copied out for a batch on another member");
        done_points.push(done);
    }
    Ok(done_points)
}

/// What [`stage_for`] made for a batch: per mirrored allocation its stages, the transfer
/// command buffers, and the images' transfers.
type StagedBatch = (
    HashMap<u64, Staged>,
    crate::staging::Recorded,
    crate::images::Plan,
);

/// What [`stage_for`] made for one allocation: the stages, what the claim may copy in, and
/// what of that the prologue copies straight from writers' output stages.
struct Staged {
    limit: RangeSet,
    direct: RangeSet,
    stages: crate::mirror::Stages,
}

/// The mirrored allocations a batch on member `j` finishing at `done` touches, claimed for
/// `j` in submission order (with the batch's stages, `stage_for`): the coherence tracker says
/// what `j`'s copies lack (`mirror::claim_all`).
fn mirrors_for(
    d: &Device,
    st: &mut State,
    access: &crate::access::AccessSet,
    j: usize,
    done: Edge,
    mut staged: HashMap<u64, Staged>,
) -> Vec<Prep> {
    retire_finished(d, st, false);
    let list = touched_mirrors(&st.mirrors, &st.image_binds, access, j);
    if list.is_empty() {
        return Vec::new();
    }
    let parts: Vec<(Option<RangeSet>, RangeSet, crate::mirror::Stages)> = list
        .iter()
        .map(|(raw, _, _)| match staged.remove(raw) {
            Some(s) => (Some(s.limit), s.direct, s.stages),
            None => (None, RangeSet::new(), Default::default()),
        })
        .collect();
    let claims: Vec<crate::mirror::Claim<'_>> = list
        .iter()
        .zip(&parts)
        .map(|((raw, m, u), (limit, _, _))| crate::mirror::Claim {
            id: *raw,
            mirror: m,
            u,
            limit: limit.as_ref(),
        })
        .collect();
    let ins = match crate::mirror::claim_all(&mut st.coherence, j, &claims) {
        Ok((ins, ticket)) => {
            st.tickets.push((ticket, done));
            ins
        }
        Err(e) => {
            // Not expected; stay correct: `j` copies in all it touches (within its stages)
            // and then holds that, and what it may write, alone.
            if !st.coherence_failed {
                st.coherence_failed = true;
                crate::warn!(
                    "member {j}: the coherence tracker refused a batch ({e}); its mirrored memory is copied in whole"
                );
            }
            claims
                .iter()
                .map(|c| {
                    let copy_in = match c.limit {
                        Some(l) => c.u.touched.intersection(l),
                        None => c.u.touched.clone(),
                    };
                    let mut held = copy_in.clone();
                    held.union(&c.u.written);
                    for r in held.ranges() {
                        let _ = st.coherence.write(c.id, *r, j);
                    }
                    copy_in
                })
                .collect()
        }
    };
    drop(claims);
    list.into_iter()
        .zip(parts)
        .zip(ins)
        .map(|(((_, m, u), (_, direct, stages)), copy_in)| {
            let (mut step, ticket) = m.claim(&u, copy_in, done, stages.output.as_ref());
            // The prologue copies those parts itself.
            step.copy_in.subtract(&direct);
            Prep {
                step,
                mirror: m.clone(),
                member: j,
                done,
                ticket,
                stages,
            }
        })
        .collect()
}

/// Retires the coherence tracker's batches that are complete: every one when `all`, otherwise
/// only once enough are waiting (a semaphore query each).
fn retire_finished(d: &Device, st: &mut State, all: bool) {
    if !all && st.tickets.len() < 64 {
        return;
    }
    let State {
        tickets, coherence, ..
    } = st;
    // One query per done semaphore.
    let mut reached: HashMap<(usize, u64), u64> = HashMap::new();
    tickets.retain(|(t, (m, sem, value))| {
        let done = d.member(*m).is_none_or(|md| {
            d.exec.member_lost(*m)
                || *reached
                    .entry((*m, sem.as_raw()))
                    .or_insert_with(|| counter(md, *sem))
                    >= *value
        });
        if done {
            let _ = coherence.retire(*t);
        }
        !done
    });
}

/// Whether a batch of `batches` waits for a semaphore that an earlier batch of them signals
/// (one submit that signals a binary semaphore and then consumes it, say).
fn waits_within(batches: &[Batch]) -> bool {
    batches.iter().enumerate().any(|(k, b)| {
        b.waits.iter().any(|w| {
            batches[..k]
                .iter()
                .any(|e| e.signals.iter().any(|s| s.semaphore == w.semaphore))
        })
    })
}

/// The timeline signals of `batches` were recorded at done point `from`; they are at `to`.
fn move_signal_points(st: &mut State, batches: &[Batch], from: Edge, to: Edge) {
    for s in batches.iter().flat_map(|b| &b.signals) {
        if let Some(t) = st.timelines.get_mut(&s.semaphore.as_raw()) {
            if let Some(p) = t
                .signal_points
                .iter_mut()
                .rev()
                .find(|p| p.0 == s.value && p.1 == from)
            {
                p.1 = to;
            }
        }
    }
}

/// Whether a batch with `access` touches mirrored memory.
fn touches_mirrors(st: &State, access: &crate::access::AccessSet) -> bool {
    !st.mirrors.is_empty()
        && (access.everything.is_some() || access.memory.keys().any(|m| st.mirrors.contains_key(m)))
}

/// Registers a mirrored allocation (`device_memory.rs`).
pub fn add_mirror(d: &Device, raw: u64, m: Arc<Mirror>) {
    let mut st = d.exec.state.lock();
    let staged = d.members.iter().any(|md| !m.cover(md.index).is_null());
    if staged && !st.staged_any {
        st.staged_any = true;
        crate::info!(
            "memory is mirrored per member, and the members' copies are reached through staging buffers ({})",
            if crate::config::Config::get().sharing == crate::config::Sharing::Staging {
                "VKFUSE_SHARING=staging"
            } else {
                "memory the members cannot map, of different drivers"
            }
        );
    } else if !staged && !st.mirrored_any {
        st.mirrored_any = true;
        crate::info!(
            "host-visible memory is mirrored per member, with a host shadow the application maps ({})",
            if crate::config::Config::get().sharing == crate::config::Sharing::Mirrored {
                "VKFUSE_SHARING=mirrored"
            } else {
                "not every member imports host memory"
            }
        );
    }
    let members = d
        .members
        .iter()
        .map(|md| md.index)
        .filter(|i| !d.exec.member_lost(*i));
    if let Err(e) = crate::mirror::track(&mut st.coherence, raw, m.size(), members) {
        crate::warn!("the coherence tracker refused a mirrored allocation ({e})");
    }
    st.mirrors.insert(raw, m);
}

/// An allocation is shared through an opaque fd (`device_memory.rs`): logged once per device.
pub fn fd_shared(d: &Device) {
    let mut st = d.exec.state.lock();
    if !st.fd_shared_any {
        st.fd_shared_any = true;
        crate::info!(
            "memory is shared between the members through opaque fds (one driver, one device: shared device memory)"
        );
    }
}

/// Forgets a mirrored allocation that is being freed.
pub fn remove_mirror(d: &Device, raw: u64) {
    let mut st = d.exec.state.lock();
    st.mirrors.remove(&raw);
    let _ = st.coherence.destroy(raw);
}

/// An image `images.rs` copies between members was bound to the allocation `mem` (raw); an
/// image is bound once.
pub fn bind_image(d: &Device, mem: u64, img: Arc<crate::images::Image>) {
    let mut st = d.exec.state.lock();
    let members: Vec<usize> = d
        .members
        .iter()
        .map(|md| md.index)
        .filter(|i| !d.exec.member_lost(*i))
        .collect();
    // The home members share one copy unless the allocation is mirrored.
    let shared = !st.mirrors.contains_key(&mem);
    if let Err(e) = img.track(&mut st.coherence, &members, d.exec.home, shared) {
        crate::warn!("the coherence tracker refused an image ({e})");
    }
    st.image_binds.entry(mem).or_default().push(img);
}

/// A swapchain image (its wrapper, raw) is known to the application.
pub fn swapchain_image(d: &Device, raw: u64) {
    d.exec.state.lock().swapchain_images.insert(raw);
}

/// A swapchain image's wrapper is being freed.
pub fn forget_swapchain_image(d: &Device, raw: u64) {
    let mut st = d.exec.state.lock();
    st.swapchain_images.remove(&raw);
    st.frame_owner.remove(&raw);
}

/// The member drawing the frame in a swapchain image a batch with `access` draws into, if
/// one is (for "every allocation", any frame being drawn).
fn frame_affinity(st: &State, access: &crate::access::AccessSet, alive: u64) -> Option<usize> {
    if st.frame_owner.is_empty() {
        return None;
    }
    let owner = if access.everything.is_some() {
        st.frame_owner.values().next().copied()
    } else {
        access
            .memory
            .keys()
            .find_map(|k| st.frame_owner.get(k).copied())
    };
    owner.filter(|m| alive & (1 << m) != 0)
}

/// Forgets an image that is being destroyed.
pub fn unbind_image(d: &Device, img: &Arc<crate::images::Image>) {
    let Some(mem) = img.bound_memory() else {
        return;
    };
    let mut st = d.exec.state.lock();
    let _ = st.coherence.destroy(img.raw);
    if let Some(list) = st.image_binds.get_mut(&mem) {
        list.retain(|i| !Arc::ptr_eq(i, img));
        if list.is_empty() {
            st.image_binds.remove(&mem);
        }
    }
}

/// The host saw timeline values of `sems`: waits for the done points of the batches that
/// signalled them. A batch signals its done point after the application's semaphores, so
/// those points are reached at once (or a moment later); mirrored memory the batches wrote is
/// then settled by [`settle_finished`]. Only batches whose value the semaphore has reached are
/// waited for: a host signal can only pass values already signalled.
fn signalled_batches_done(d: &Device, sems: &[vk::Semaphore]) {
    let edges: Vec<Edge> = {
        let st = d.exec.state.lock();
        if st.mirrors.is_empty() {
            return;
        }
        sems.iter()
            .filter_map(|s| st.timelines.get(&s.as_raw()).map(|t| (s, t)))
            .flat_map(|(s, t)| {
                let reached = highest_copy(d, *s);
                t.signal_points
                    .iter()
                    .filter(move |(v, _)| *v <= reached)
                    .map(|(_, e)| *e)
            })
            .collect()
    };
    for e in edges {
        crate::mirror::wait_point(d, e);
    }
}

/// A host synchronisation returned: the changes of every finished batch to mirrored memory are
/// written into the shadows the application maps (`mirror.rs`).
pub fn settle_finished(d: &Device) {
    let list: Vec<Arc<Mirror>> = {
        let st = d.exec.state.lock();
        if st.mirrors.is_empty() {
            return;
        }
        st.mirrors.values().cloned().collect()
    };
    let merged: usize = list.iter().map(|m| m.settle(d, false)).sum();
    if merged > 0 {
        crate::debug!(
            "mirrored memory at a host synchronisation: {merged} byte(s) merged into the shadow"
        );
    }
}

/// Remembers that the batch finishing at `done` touched `access`.
fn record_touches(d: &Device, st: &mut State, access: &crate::access::AccessSet, done: Edge) {
    if st.touched.len() > 4096 {
        // Freed allocations leave entries: forget the batches that are over.
        let running =
            |(i, sem, value): &Edge| d.member(*i).is_some_and(|md| counter(md, *sem) < *value);
        st.touched.retain(|_, t| {
            t.prune(running);
            !t.entries.is_empty()
        });
    }
    if access.everything.is_some() {
        // It waited for every earlier batch: waiting for it covers them.
        st.touched.clear();
        st.touched_all = Some(done);
        return;
    }
    for (m, u) in &access.memory {
        st.touched.entry(*m).or_default().add(done, u);
    }
}

/// Hands member `j` a bridge value that the bridge thread signals once `waits` are over.
fn bridge_on(
    d: &Device,
    st: &mut State,
    j: usize,
    waits: Vec<Edge>,
) -> Result<Option<(vk::Semaphore, u64)>, vk::Result> {
    bridge_with(d, st, j, waits, Vec::new(), Vec::new())
}

/// What a batch of vkfuse's waits for on its member before its work: a bridge value, and
/// semaphores shared with other members (`link`), handed to `Links::submitted` once the batch
/// was submitted.
#[derive(Default)]
struct Waits {
    bridge: Option<(vk::Semaphore, u64)>,
    links: Vec<crate::links::Link>,
}

impl Waits {
    fn bridged(bridge: Option<(vk::Semaphore, u64)>) -> Waits {
        Waits {
            bridge,
            links: Vec::new(),
        }
    }

    fn infos(&self) -> Vec<vk::SemaphoreSubmitInfo<'static>> {
        self.bridge
            .into_iter()
            .chain(self.links.iter().map(|l| (l.wait, 0)))
            .map(|(semaphore, value)| vk::SemaphoreSubmitInfo {
                semaphore,
                value,
                stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
                ..Default::default()
            })
            .collect()
    }
}

/// The waits of one batch on member `j`'s queue of `q` for `waits`: shared semaphores where
/// they can stand for them (`link`), the bridge for the rest.
fn link_or_bridge(
    d: &Device,
    st: &mut State,
    q: &Queue,
    j: usize,
    waits: Vec<Edge>,
) -> Result<Waits, vk::Result> {
    let (rest, links) = link(d, st, q, j, waits);
    Ok(Waits {
        bridge: bridge_on(d, st, j, rest)?,
        links,
    })
}

/// Takes out of `waits` (those of a batch about to be submitted on member `j`'s queue of `q`)
/// the done points that a semaphore shared with `j` can stand for (`links.rs`): the last
/// batch of a member of `j`'s driver on the same fused queue. For each, an empty batch on
/// that member signals a link (after every batch before it there); the batch on `j` waits for
/// the links returned, and hands them to `Links::submitted` once submitted. Only the last
/// batch: an empty batch behind later ones would make `j` wait for those too, which may wait
/// for the host. Other queues' members are not touched (another thread may submit to them).
fn link(
    d: &Device,
    st: &mut State,
    q: &Queue,
    j: usize,
    waits: Vec<Edge>,
) -> (Vec<Edge>, Vec<crate::links::Link>) {
    if st.links.from[j] == 0 || waits.is_empty() {
        return (waits, Vec::new());
    }
    let last = queue_entry(st, q).2;
    let mut rest = Vec::new();
    let mut linked = Vec::new();
    for e in waits {
        let (i, sem, value) = e;
        let shares = st.links.from[j] & (1 << i) != 0 && sem == q.done[i] && last[i] == value;
        let Some(md) = d.member(i).filter(|_| shares) else {
            rest.push(e);
            continue;
        };
        let Some(l) = st.links.take(d, i, j) else {
            rest.push(e);
            continue;
        };
        match crate::links::signal(md, q.handles[i], &l) {
            Ok(()) => linked.push(l),
            Err(r) => {
                // The link is not handed back: it is never used again.
                crate::warn!("member {i}: signalling a shared semaphore failed ({r:?}); the bridge waits instead");
                rest.push(e);
            }
        }
    }
    (rest, linked)
}

/// [`bridge_on`], with mirrored allocations to make ready after the waits.
fn bridge_with(
    d: &Device,
    st: &mut State,
    j: usize,
    waits: Vec<Edge>,
    prep: Vec<Prep>,
    fills: Vec<crate::images::Fill>,
) -> Result<Option<(vk::Semaphore, u64)>, vk::Result> {
    if waits.is_empty() && prep.is_empty() && fills.is_empty() {
        return Ok(None);
    }
    st.bridge_next[j] += 1;
    let value = st.bridge_next[j];
    let sem = d.exec.bridge_sem[j];
    let job = Job {
        waits,
        signal: Some((j, sem, value)),
        carry: Vec::new(),
        prep,
        fills,
        merge: None,
    };
    if send(d, job) {
        Ok(Some((sem, value)))
    } else {
        Err(vk::Result::ERROR_DEVICE_LOST)
    }
}

/// A bridge job for a batch on member `j` whose mirrored memory must be made ready only after
/// the batch's own semaphore waits (`waits` include the done point of a batch on `j` that waits
/// for them; they may be signalled by the host much later). It runs on a thread of its own, so
/// that it holds up no other job, and signals a timeline semaphore of its own (values of the
/// shared bridge semaphore must be signalled in order). The thread frees the semaphore once the
/// batch that waits for it (`work`) finished.
fn bridge_gated(
    d: &Device,
    j: usize,
    waits: Vec<Edge>,
    (prep, fills): (Vec<Prep>, Vec<crate::images::Fill>),
    work: Edge,
) -> Result<(vk::Semaphore, u64), vk::Result> {
    let md = d.member(j).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
    let sem = member_timeline(md)?;
    let job = Job {
        waits,
        signal: Some((j, sem, 1)),
        carry: Vec::new(),
        prep,
        fills,
        merge: None,
    };
    let ptr = DevPtr(d);
    let shared = Arc::new(job);
    let mine = shared.clone();
    let thread = std::thread::Builder::new()
        .name("vkfuse-gate".into())
        .spawn(move || {
            let ptr = ptr;
            // SAFETY: destroy_device joins this thread (teardown) before it frees the device.
            let d = unsafe { &*ptr.0 };
            run_job(d, &mine);
            let (m, done, value) = work;
            if let Some(md) = d.member(m) {
                crate::mirror::wait_point(d, (m, done, value));
                destroy_member_semaphore(md, sem, std::ptr::null());
            }
        });
    match thread {
        Ok(t) => {
            let mut list = d.exec.gated.lock();
            list.retain(|t| !t.is_finished());
            list.push(t);
            Ok((sem, 1))
        }
        Err(e) => {
            // The claims are made: the job must run. The bridge thread runs it in turn (it may
            // then hold up later jobs until the batch's waits are over); the semaphore stays.
            crate::warn!(
                "cannot start a thread for a gated batch ({e}); the bridge thread runs its step"
            );
            let Ok(job) = Arc::try_unwrap(shared) else {
                return Err(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
            };
            if send(d, job) {
                Ok((sem, 1))
            } else {
                Err(vk::Result::ERROR_DEVICE_LOST)
            }
        }
    }
}

fn send(d: &Device, job: Job) -> bool {
    d.exec
        .bridge
        .lock()
        .as_ref()
        .map(|b| b.tx.send(Msg::Job(job)).is_ok())
        .unwrap_or(false)
}

/// Timeline values this submit on member `j` signals that waits forwarded to other members'
/// copies need (possible when placement was pinned): the bridge carries them over once the
/// batch completed.
fn carry_timelines(
    d: &Device,
    st: &mut State,
    batches: &[Batch],
    j: usize,
    done: (vk::Semaphore, u64),
) {
    let mut carry = Vec::new();
    for s in batches.iter().flat_map(|b| &b.signals) {
        let raw = s.semaphore.as_raw();
        let Some(t) = st.timelines.get_mut(&raw) else {
            continue;
        };
        t.waiters.retain(|(v, m)| {
            let take = *m != j && *v <= s.value;
            if take {
                carry.push((*m, nd(vk::Semaphore::from_raw(raw), *m), s.value));
            }
            !take
        });
    }
    if !carry.is_empty() {
        let job = Job {
            waits: vec![(j, done.0, done.1)],
            signal: None,
            carry,
            prep: Vec::new(),
            fills: Vec::new(),
            merge: None,
        };
        if !send(d, job) {
            crate::warn!("the bridge thread is gone: a timeline value is not carried over");
        }
    }
}

/// Submits vkfuse's own batch to member `m`'s queue of `q`: waits for the member's binary
/// semaphores `waits` and for `bridge`, runs `cbs` (member handles), signals `signal` (a binary
/// semaphore of the member) and the queue's next done point on the member.
fn submit_internal(
    d: &Device,
    st: &mut State,
    q: &Queue,
    m: usize,
    waits: &[vk::Semaphore],
    cbs: &[vk::CommandBuffer],
    signals: &[vk::Semaphore],
) -> Result<(), vk::Result> {
    submit_internal_bridged(d, st, q, m, waits, None, cbs, signals)
}

#[allow(clippy::too_many_arguments)]
fn submit_internal_bridged(
    d: &Device,
    st: &mut State,
    q: &Queue,
    m: usize,
    waits: &[vk::Semaphore],
    bridge: Option<(vk::Semaphore, u64)>,
    cbs: &[vk::CommandBuffer],
    signals: &[vk::Semaphore],
) -> Result<(), vk::Result> {
    let md = d.member(m).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
    let submit2 = md
        .fns
        .queue_submit2
        .ok_or_else(|| crate::guard::missing("vkQueueSubmit2"))?;
    let stage = vk::PipelineStageFlags2::ALL_COMMANDS;
    let mut w: Vec<vk::SemaphoreSubmitInfo> = waits
        .iter()
        .map(|s| vk::SemaphoreSubmitInfo {
            semaphore: *s,
            stage_mask: stage,
            ..Default::default()
        })
        .collect();
    if let Some((semaphore, value)) = bridge {
        w.push(vk::SemaphoreSubmitInfo {
            semaphore,
            value,
            stage_mask: stage,
            ..Default::default()
        });
    }
    let c: Vec<vk::CommandBufferSubmitInfo> = cbs
        .iter()
        .map(|cb| vk::CommandBufferSubmitInfo {
            command_buffer: *cb,
            ..Default::default()
        })
        .collect();
    let entry = queue_entry(st, q);
    entry.2[m] += 1;
    let mut sig = vec![vk::SemaphoreSubmitInfo {
        semaphore: q.done[m],
        value: entry.2[m],
        stage_mask: stage,
        ..Default::default()
    }];
    for s in signals {
        sig.push(vk::SemaphoreSubmitInfo {
            semaphore: *s,
            stage_mask: stage,
            ..Default::default()
        });
    }
    // On lavapipe, whoever sees these signals may destroy the semaphores waited for at once
    // (the application, after the batch this one unblocks), while the member's queue thread
    // still finishes the waiting submit: the signals go to a submit of their own after it,
    // which the queue thread starts only once that one is done (see `Exec::fence_apart`).
    let apart = d.exec.fence_apart & (1 << m) != 0 && !w.is_empty();
    let (first_sig, second_sig): (&[vk::SemaphoreSubmitInfo], &[vk::SemaphoreSubmitInfo]) =
        if apart { (&[], &sig) } else { (&sig, &[]) };
    let infos = [
        submit_info2(&w, &c, first_sig),
        submit_info2(&[], &[], second_sig),
    ];
    let count = if apart { 2 } else { 1 };
    // SAFETY: the member's queue of this fused queue (externally synchronised with it) and the
    // member's own handles; the arrays live until the call returns.
    let r = unsafe { submit2(q.handles[m], count, infos.as_ptr(), vk::Fence::null()) };
    if r == vk::Result::SUCCESS {
        Ok(())
    } else {
        Err(r)
    }
}

/// A `VkSubmitInfo2` over the three arrays (which must outlive its use).
fn submit_info2<'a>(
    waits: &'a [vk::SemaphoreSubmitInfo<'a>],
    cbs: &'a [vk::CommandBufferSubmitInfo<'a>],
    signals: &'a [vk::SemaphoreSubmitInfo<'a>],
) -> vk::SubmitInfo2<'a> {
    vk::SubmitInfo2 {
        wait_semaphore_info_count: waits.len() as u32,
        p_wait_semaphore_infos: waits.as_ptr(),
        command_buffer_info_count: cbs.len() as u32,
        p_command_buffer_infos: cbs.as_ptr(),
        signal_semaphore_info_count: signals.len() as u32,
        p_signal_semaphore_infos: signals.as_ptr(),
        ..Default::default()
    }
}

/// `compute_split` (`split.rs`): pools, command buffers and figures of split batches.
#[derive(Default)]
struct Splits {
    /// Per (member, member queue family): a pool and its free command buffers, each with a
    /// query pool of two timestamps (null where the member does not time compute queues).
    pools: Vec<(usize, u32, vk::CommandPool, Vec<Timed>)>,
    /// Command buffers of rounds that may still run: (done point, pool index, buffer, the
    /// round's number, the workgroups it runs, the slots of its scratch buffer whose
    /// narrowed dispatches' workgroups are read back once it is done).
    pending: Vec<(Edge, usize, Timed, u64, u64, u32)>,
    balance: Option<vkfuse_scheduler::Balances>,
    /// Batches split, their rounds, and workgroups run per member.
    batches: u64,
    rounds: u64,
    groups: [u64; MAX_MEMBERS],
    /// Per member: nanoseconds its slices ran (timestamps), and the slices timed.
    busy: [u64; MAX_MEMBERS],
    timed: [u64; MAX_MEMBERS],
    /// Rounds being timed: (round number, members left, sum and longest of their busy time,
    /// the slices timed so far, the kind of work: `Balances`).
    open: Vec<(u64, usize, u64, u64, Vec<TimedSlice>, u64)>,
    /// Over the rounds timed on every member: the sum of members' busy time and of the
    /// longest member's.
    round_sum: u64,
    round_max: u64,
    /// Why batches did not split, logged once each.
    refused: Vec<&'static str>,
    /// Batches `hybrid` ran whole because splitting did not pay.
    whole_by_hybrid: u64,
    /// Indirect dispatches split by workgroup slices, and per member the parts (of
    /// `vkfuse_shader::slice::PARTS`) of them it ran.
    sliced: u64,
    sliced_parts: [u64; MAX_MEMBERS],
    /// Of those, the ones narrowed (`narrow.rs`: each member launched only its slice's
    /// workgroups).
    narrowed: u64,
    /// Per member: its pipeline that narrows group counts, or `None` where it could not be
    /// made (logged once; its rounds then launch the whole grid).
    narrowers: Vec<(usize, Option<crate::narrow::Narrower>)>,
    /// The mirrored memory of split batches whose bridge jobs may not all have run.
    merges: Vec<Arc<crate::split::Merge>>,
    /// Split batches with mirrored memory, and the bytes their jobs copied into other members'
    /// copies before rounds and merged into the first member's after them.
    mirrored: u64,
    copied_bytes: u64,
    merged_bytes: u64,
    /// Over the merges done: nanoseconds their steps took and the bytes they went through
    /// (`Merge::bytes`): what `hybrid` expects a batch's merges to cost.
    merge_ns: u64,
    merge_through: u64,
}

/// Chunks per member a split dispatch is cut into, dealt out interleaved
/// (`scheduler::chunks`): work that varies along the dimension evens out.
const SPLIT_CHUNKS: u32 = 8;

/// `hybrid` splits a batch only if the members together are at least this many times as fast
/// as the fastest alone (measured throughput)...
const HYBRID_GAIN: f64 = 1.2;
/// ...and each round keeps them busy at least this long (a round costs a wait through the
/// host: the bridge thread).
const HYBRID_MIN_ROUND_NS: f64 = 1_000_000.0;

/// A command buffer of `Splits`' pools, the query pool that times it, and its scratch
/// buffer for narrowed dispatches (`narrow.rs`; made on first use).
#[derive(Clone, Copy)]
struct Timed {
    cb: vk::CommandBuffer,
    queries: vk::QueryPool,
    scratch: Option<crate::narrow::Scratch>,
}

impl Splits {
    fn refused(&mut self, why: &'static str) {
        if !self.refused.contains(&why) {
            self.refused.push(why);
            crate::info!("compute_split: a batch runs whole: {why} (logged once)");
        }
    }

    /// Command buffers whose rounds finished go back to their pools, their busy time
    /// measured.
    fn reclaim(&mut self, d: &Device) {
        // Merges whose jobs ran (the jobs hold the other references).
        let (copied, merged) = (&mut self.copied_bytes, &mut self.merged_bytes);
        let (spent, through) = (&mut self.merge_ns, &mut self.merge_through);
        self.merges.retain(|m| {
            if Arc::strong_count(m) > 1 {
                return true;
            }
            *copied += m.copied.load(Ordering::Relaxed);
            *merged += m.merged.load(Ordering::Relaxed);
            *spent += m.spent_ns.load(Ordering::Relaxed);
            *through += m.bytes();
            false
        });
        let mut done = Vec::new();
        self.pending.retain(|e| {
            let ((m, sem, value), ..) = *e;
            let over = d.member(m).is_none_or(|md| counter(md, sem) >= value);
            if over {
                done.push(*e);
            }
            !over
        });
        for ((m, ..), p, t, round, groups, reads) in done {
            // Narrowed dispatches: the workgroups they ran, read back.
            let narrowed = match (reads, t.scratch) {
                (1.., Some(s)) => s.group_counts(reads).unwrap_or(0),
                _ => 0,
            };
            self.groups[m] += narrowed;
            let groups = groups + narrowed;
            self.pools[p].3.push(t);
            let busy = d.member(m).and_then(|md| busy_ns(d, md, t.queries));
            let Some(k) = self.open.iter().position(|o| o.0 == round) else {
                continue;
            };
            match busy {
                Some(ns) => {
                    self.busy[m] += ns;
                    self.timed[m] += 1;
                    let o = &mut self.open[k];
                    o.1 -= 1;
                    o.2 += ns;
                    o.3 = o.3.max(ns);
                    o.4.push((m, groups, ns));
                    if o.1 == 0 {
                        self.round_sum += o.2;
                        self.round_max += o.3;
                        let o = self.open.swap_remove(k);
                        // Every member's slice of the round timed: the balance compares them.
                        self.balance
                            .get_or_insert_with(|| speed_priors(d))
                            .round(o.5, &o.4);
                    }
                }
                // A slice not timed: the round does not count for the projection.
                None => {
                    self.open.swap_remove(k);
                }
            }
        }
    }

    /// A command buffer of member `md` for queue family `family` (of the member).
    fn take(
        &mut self,
        d: &Device,
        md: &MemberDevice,
        family: u32,
    ) -> Result<(usize, Timed), vk::Result> {
        let p = match self
            .pools
            .iter()
            .position(|p| p.0 == md.index && p.1 == family)
        {
            Some(p) => p,
            None => {
                let f = md
                    .fns
                    .create_command_pool
                    .ok_or_else(|| crate::guard::missing("vkCreateCommandPool"))?;
                let ci = vk::CommandPoolCreateInfo {
                    flags: vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER,
                    queue_family_index: family,
                    ..Default::default()
                };
                let mut pool = vk::CommandPool::null();
                // SAFETY: a valid create info for the member's device.
                let r = unsafe { f(md.handle, &ci, std::ptr::null(), &mut pool) };
                if r != vk::Result::SUCCESS {
                    return Err(r);
                }
                self.pools.push((md.index, family, pool, Vec::new()));
                self.pools.len() - 1
            }
        };
        if let Some(t) = self.pools[p].3.pop() {
            return Ok((p, t));
        }
        let f = md
            .fns
            .allocate_command_buffers
            .ok_or_else(|| crate::guard::missing("vkAllocateCommandBuffers"))?;
        let ai = vk::CommandBufferAllocateInfo {
            command_pool: self.pools[p].2,
            level: vk::CommandBufferLevel::PRIMARY,
            command_buffer_count: 1,
            ..Default::default()
        };
        let mut cb = vk::CommandBuffer::null();
        // SAFETY: one command buffer from vkfuse's pool.
        let r = unsafe { f(md.handle, &ai, &mut cb) };
        if r != vk::Result::SUCCESS {
            return Err(r);
        }
        Ok((
            p,
            Timed {
                cb,
                queries: timestamps(d, md),
                scratch: None,
            },
        ))
    }

    /// Member `md`'s pipeline that narrows group counts, made on first use (`None` where it
    /// cannot be made).
    fn narrower(&mut self, md: &MemberDevice) -> Option<crate::narrow::Narrower> {
        if let Some((_, n)) = self.narrowers.iter().find(|n| n.0 == md.index) {
            return *n;
        }
        let n = match crate::narrow::Narrower::new(md) {
            Ok(n) => Some(n),
            Err(e) => {
                crate::info!(
                    "compute_split: member {} cannot narrow indirect dispatches ({e}); sliced ones launch the whole grid on every member",
                    md.index
                );
                None
            }
        };
        self.narrowers.push((md.index, n));
        n
    }

    /// Destroys the pools (the device is idle).
    fn destroy(&mut self, d: &Device) {
        for (m, n) in self.narrowers.drain(..) {
            if let (Some(md), Some(n)) = (d.member(m), n) {
                n.destroy(md);
            }
        }
        for (m, _, pool, timed) in self.pools.drain(..) {
            let Some(md) = d.member(m) else { continue };
            for s in timed.iter().filter_map(|t| t.scratch.as_ref()) {
                s.destroy(md);
            }
            if let Some(f) = md.fns.destroy_query_pool {
                for t in timed.iter().filter(|t| !t.queries.is_null()) {
                    // SAFETY: vkfuse's query pool, no longer used.
                    unsafe { f(md.handle, t.queries, std::ptr::null()) };
                }
            }
            if let Some(f) = md.fns.destroy_command_pool {
                // SAFETY: vkfuse's pool; none of its command buffers is pending any more.
                unsafe { f(md.handle, pool, std::ptr::null()) };
            }
        }
        self.pending.clear();
    }
}

/// A member's command buffer of a split round, recorded: member, pool index, the buffer,
/// the workgroups it runs (known at record time), and the slots of its scratch buffer whose
/// narrowed workgroups are read back when it is done.
type Planned = (usize, usize, Timed, u64, u32);

/// A slice of a round timed: member, workgroups, busy nanoseconds.
type TimedSlice = (usize, u64, u64);

/// A balance whose first rounds weigh members by their kind of device (discrete GPU 16,
/// integrated or virtual GPU 4, CPU and others 1) until their speeds are measured: a CPU
/// driver beside a GPU first gets a sixteenth of a grid, not half.
fn speed_priors(d: &Device) -> vkfuse_scheduler::Balances {
    let priors = (0..MAX_MEMBERS)
        .map(|m| {
            // SAFETY: a device's physical device outlives it.
            let pm = unsafe { (*d.physical).member(m) };
            match pm.map(|pm| pm.properties.device_type) {
                Some(vk::PhysicalDeviceType::DISCRETE_GPU) => 16.0,
                Some(
                    vk::PhysicalDeviceType::INTEGRATED_GPU | vk::PhysicalDeviceType::VIRTUAL_GPU,
                ) => 4.0,
                _ => 1.0,
            }
        })
        .collect();
    vkfuse_scheduler::Balances::with_priors(MAX_MEMBERS, priors)
}

/// A query pool of two timestamps on member `md`, or null where its graphics and compute
/// queues do not time work (`timestampComputeAndGraphics`) or the pool cannot be made.
fn timestamps(d: &Device, md: &MemberDevice) -> vk::QueryPool {
    // SAFETY: a device's physical device outlives it.
    let pm = unsafe { (*d.physical).member(md.index) };
    if pm.is_none_or(|pm| pm.properties.limits.timestamp_compute_and_graphics == vk::FALSE) {
        return vk::QueryPool::null();
    }
    let Some(f) = md.fns.create_query_pool else {
        return vk::QueryPool::null();
    };
    let ci = vk::QueryPoolCreateInfo {
        query_type: vk::QueryType::TIMESTAMP,
        query_count: 2,
        ..Default::default()
    };
    let mut pool = vk::QueryPool::null();
    // SAFETY: a valid create info for the member's device.
    let r = unsafe { f(md.handle, &ci, std::ptr::null(), &mut pool) };
    if r == vk::Result::SUCCESS {
        pool
    } else {
        vk::QueryPool::null()
    }
}

/// Nanoseconds between the two timestamps of `queries` (a finished round), if both are
/// available.
fn busy_ns(d: &Device, md: &MemberDevice, queries: vk::QueryPool) -> Option<u64> {
    if queries.is_null() {
        return None;
    }
    let f = md.fns.get_query_pool_results?;
    let mut ticks = [0u64; 2];
    // SAFETY: the pool's two queries, written by a finished command buffer; room for both.
    let r = unsafe {
        f(
            md.handle,
            queries,
            0,
            2,
            16,
            ticks.as_mut_ptr().cast(),
            8,
            vk::QueryResultFlags::TYPE_64,
        )
    };
    if r != vk::Result::SUCCESS || ticks[1] < ticks[0] {
        return None;
    }
    // SAFETY: a device's physical device outlives it.
    let period = unsafe { (*d.physical).member(md.index) }?
        .properties
        .limits
        .timestamp_period;
    Some(((ticks[1] - ticks[0]) as f64 * f64::from(period)) as u64)
}

/// `compute_split`: runs a batch whose command buffers' split logs replay them as rounds of
/// slices on every live kept member (`split.rs`). `None` when the batch does not split: it
/// then runs whole, placed as usual.
///
/// The batch's semaphore waits go first, as a batch without command buffers placed as usual
/// (the gate), whose done point the first round waits for; its signals go last, as a batch
/// without command buffers after the join (it waits for every earlier batch, as any signal
/// does), with the fence.
fn submit_split(
    q: &Queue,
    d: &Device,
    b: &Batch,
    fence: vk::Fence,
) -> Option<Result<vk::Result, vk::Result>> {
    if b.cbs.is_empty() {
        return None;
    }
    let cbs: Vec<&CommandBuffer> = b
        .cbs
        .iter()
        .map(|c| {
            // SAFETY: the application's live command buffers.
            unsafe { CommandBuffer::resolve(c.command_buffer) }
                .ok()
                .map(|x| x.0)
        })
        .collect::<Option<_>>()?;
    let logs: Vec<_> = cbs.iter().map(|c| c.compute.lock()).collect();
    let mut why = None;
    for (c, g) in cbs.iter().zip(&logs) {
        let Some(log) = &g.log else {
            return None;
        };
        if !c.notes.lock().is_empty() {
            why = Some("its commands use events or queries");
        } else if let Err(w) = log.replays(&c.access.lock()) {
            why = Some(w);
        }
    }
    let access = crate::access::of_batches(d, cbs.iter().copied());
    let mut st = d.exec.state.lock();
    // Images copied between drivers (keys of their own, `access.rs`): each member's slices go
    // between its copy and a packed copy of its own in host memory, merged on the bridge.
    let mut split_images: Vec<crate::images::SplitImage> = Vec::new();
    // Lazy image copies: images whose latest contents only one member holds go to the host
    // first (each member's slices start from a packed copy there); the first round waits for
    // those copies.
    let mut published: Vec<Edge> = Vec::new();
    if why.is_none() && d.exec.import_align != 0 {
        let held =
            crate::images::held_for(d, &st.coherence, &st.image_binds, &access, &[], Site::HOST);
        if !held.is_empty() {
            match publish_images(d, &mut st, q, held) {
                Ok(e) => published = e,
                Err(r) => {
                    why = Some(if r == vk::Result::ERROR_DEVICE_LOST {
                        "a member holding an image it touches is lost"
                    } else {
                        "an image it touches could not be copied out of the member holding it"
                    })
                }
            }
        }
    }
    // Members left out of the batch: they share another member's copy of an image.
    let mut sharing_copies: Vec<usize> = Vec::new();
    if why.is_none() {
        let mut image_why = None;
        {
            let images = d.exec.images.lock();
            for k in access.memory.keys() {
                if st.image_binds.contains_key(k) || st.swapchain_images.contains(k) {
                    image_why =
                        Some("it reaches an image through its memory, or a swapchain image");
                } else if let Some(img) = images.get(k) {
                    if d.exec.import_align == 0 {
                        image_why = Some(
                            "it touches an image copied between drivers, and not every member imports host memory",
                        );
                    } else {
                        // The layouts the batch's image barriers give it, in order.
                        let changes: Vec<(vk::ImageSubresourceRange, vk::ImageLayout)> = logs
                            .iter()
                            .filter_map(|g| g.log.as_ref())
                            .flat_map(|l| &l.steps)
                            .flat_map(|s| match s {
                                crate::split::Step::Images(list) => &list[..],
                                _ => &[],
                            })
                            .filter(|b| b.image == *k)
                            .map(|b| (b.range, b.layouts.1))
                            .collect();
                        match crate::images::for_split(&st.coherence, img, &access, &changes) {
                            Ok(si) => {
                                // Members that bind the application's memory share one copy:
                                // their rounds would copy into it at once. The first of them
                                // takes part, the others sit the batch out.
                                let home: Vec<usize> = live_kept(&st, alive_mask(d))
                                    .into_iter()
                                    .filter(|m| img.private_range(*m).is_none())
                                    .collect();
                                sharing_copies.extend(home.iter().skip(1));
                                split_images.push(si);
                            }
                            Err(w) => image_why = Some(w),
                        }
                    }
                }
            }
        }
        why = if access.everything.is_some() {
            Some("it may touch every allocation")
        } else if image_why.is_some() {
            image_why
        } else if st.pin.is_some() {
            Some("batches are pinned to one member")
        } else {
            None
        };
    }
    if let Some(w) = why {
        crate::debug!("compute_split: a batch runs whole: {w}");
        st.split.refused(w);
        return None;
    }
    let members: Vec<usize> = live_kept(&st, alive_mask(d))
        .into_iter()
        .filter(|m| !sharing_copies.contains(m))
        .collect();
    if !sharing_copies.is_empty() {
        crate::debug!(
            "compute_split: members {sharing_copies:?} sit a batch out: they share another member's copy of an image copied between drivers"
        );
    }
    if members.len() < 2 {
        let w = "members share one copy of an image copied between drivers, and fewer than two copies remain";
        crate::debug!("compute_split: a batch runs whole: {w}");
        st.split.refused(w);
        return None;
    }
    st.split.reclaim(d);
    // Indirect dispatches whose group counts are at rest on the host become dispatches: in
    // memory every member shares, or in a mirrored allocation's shadow where the application
    // wrote it and the coherence tracker says it holds the latest contents; with no pending
    // work touching them (a finished batch's copies into the shadow are done), nothing before
    // them in the batch writing them, and no semaphore wait before the batch (the host may
    // signal it after writing them).
    let at_rest = |m: u64, at: u64| -> Option<[u32; 3]> {
        if !b.waits.is_empty() {
            return None;
        }
        let range = RangeSet::of(vkfuse_memory::Range::at(at, 12));
        if st.mirrors.contains_key(&m)
            && st
                .coherence
                .lacks(m, &range, Site::HOST)
                .map_or(true, |lacks| !lacks.is_empty())
        {
            return None;
        }
        let mut args = crate::access::AccessSet::default();
        args.memory.insert(
            m,
            crate::access::Use {
                touched: range.clone(),
                written: range,
            },
        );
        if !unfinished(d, usize::MAX, vk::Semaphore::null(), data_edges(&st, &args)).is_empty() {
            return None;
        }
        crate::device_memory::host_words(m, at)
    };
    // Under `compute_split`, the indirect dispatches whose counts are not known then split by
    // workgroup slices where their pipelines have variants for it (`split::slice_indirect`);
    // `hybrid` cannot weigh work whose size it does not know, and runs them whole.
    let slicing = st.placer.strategy() == vkfuse_scheduler::Strategy::ComputeSplit;
    let sliceable = |p: u64| slicing && crate::shaders::sliceable(d, p);
    let steps: Vec<std::borrow::Cow<'_, [crate::split::Step]>> = logs
        .iter()
        .map(|g| match &g.log {
            Some(log) => {
                let resolved = log.resolve(at_rest);
                let base = resolved.as_deref().unwrap_or(&log.steps[..]);
                match crate::split::slice_indirect(base, sliceable) {
                    Some(v) => std::borrow::Cow::Owned(v),
                    None => resolved.map_or(std::borrow::Cow::Borrowed(&log.steps[..]), |v| {
                        std::borrow::Cow::Owned(v)
                    }),
                }
            }
            None => std::borrow::Cow::Borrowed(&[][..]),
        })
        .collect();
    // Each command buffer's rounds, once.
    let per_log: Vec<Vec<crate::split::Round>> =
        steps.iter().map(|s| crate::split::rounds(s)).collect();
    // The part of its log each round replays image barriers from (`split::spans`).
    let round_spans: Vec<std::ops::Range<usize>> = steps
        .iter()
        .zip(&per_log)
        .flat_map(|(s, r)| crate::split::spans(s, r))
        .collect();
    // A command buffer with layout changes and no dispatch or transfer has no round to
    // replay them in.
    let unreplayed = steps
        .iter()
        .zip(&per_log)
        .any(|(s, r)| r.is_empty() && s.iter().any(|x| x.transitions().next().is_some()));
    // The rounds of every command buffer, in order: (log, round).
    let all_rounds: Vec<(usize, crate::split::Round)> = per_log
        .into_iter()
        .enumerate()
        .flat_map(|(i, rs)| rs.into_iter().map(move |r| (i, r)))
        .collect();
    // Layout changes: every member replays them, in whole rounds too (with no work).
    let transitioned: Vec<u64> = steps
        .iter()
        .flat_map(|s| s.iter().flat_map(|x| x.transitions()))
        .collect();
    if !all_rounds.iter().any(|r| r.1.split) {
        let w = "its indirect dispatches' group counts are not known at submit";
        crate::debug!("compute_split: a batch runs whole: {w}");
        st.split.refused(w);
        return None;
    }
    // Per round: the images it touches and may write (indices into `split_images`).
    let round_images: Vec<Vec<(usize, bool)>> = all_rounds
        .iter()
        .map(|(i, r)| {
            let mut out: Vec<(usize, bool)> = Vec::new();
            for k in &r.dispatches {
                let access = match &steps[*i][*k] {
                    crate::split::Step::Dispatch { access, .. }
                    | crate::split::Step::Indirect { access, .. }
                    | crate::split::Step::Transfer { access, .. } => access,
                    _ => continue,
                };
                for (x, si) in split_images.iter().enumerate() {
                    if let Some(u) = access.memory.get(&si.image.raw) {
                        match out.iter_mut().find(|o| o.0 == x) {
                            Some(o) => o.1 |= u.writes(),
                            None => out.push((x, u.writes())),
                        }
                    }
                }
            }
            out
        })
        .collect();
    if unreplayed {
        let w = "a command buffer of it changes layouts and has no dispatch";
        crate::debug!("compute_split: a batch runs whole: {w}");
        st.split.refused(w);
        return None;
    }
    // Per image copied between drivers, per round: its layouts (`Image::round_layouts`), and
    // per round the barriers from UNDEFINED that its rounds replay from each subresource's
    // layout instead (by step and place in the step's list).
    let mut image_layouts: Vec<Vec<crate::images::RoundLayouts<(usize, usize)>>> = Vec::new();
    let mut kept: Vec<crate::split::Kept> = vec![HashMap::new(); all_rounds.len()];
    for (x, si) in split_images.iter().enumerate() {
        let per_round: Vec<(bool, Vec<_>)> = all_rounds
            .iter()
            .zip(&round_spans)
            .zip(&round_images)
            .map(|(((i, _), span), imgs)| {
                let barriers = span
                    .clone()
                    .flat_map(|k| match &steps[*i][k] {
                        crate::split::Step::Images(list) => list
                            .iter()
                            .enumerate()
                            .map(|(n, b)| ((k, n), b))
                            .collect::<Vec<_>>(),
                        _ => Vec::new(),
                    })
                    .filter(|(_, b)| b.image == si.image.raw)
                    .map(|(tag, b)| (tag, b.range, b.layouts))
                    .collect();
                (imgs.iter().any(|c| c.0 == x), barriers)
            })
            .collect();
        let layouts = si.image.round_layouts(&si.start, &per_round);
        for (r, l) in layouts.iter().enumerate() {
            for (tag, list) in &l.kept {
                kept[r].insert(*tag, list.clone());
            }
        }
        image_layouts.push(layouts);
    }
    // Add atomics merge as sums of deltas only where each member adds into its own copy.
    let shared_adds = all_rounds.iter().filter(|r| r.1.split).any(|(i, r)| {
        r.dispatches.iter().any(|k| {
            let adds = match &steps[*i][*k] {
                crate::split::Step::Dispatch { adds, .. } => Some(adds),
                crate::split::Step::Indirect {
                    then: Some(p),
                    sliced: true,
                    ..
                } => p.touch.adds.as_ref(),
                _ => None,
            };
            adds.is_some_and(|a| a.memory.keys().any(|m| !st.mirrors.contains_key(m)))
        })
    });
    if shared_adds {
        let w = "add atomics on memory the members share (each needs its own copy to add into)";
        crate::debug!("compute_split: a batch runs whole: {w}");
        st.split.refused(w);
        return None;
    }
    // The kind of work the balance weighs: the pipeline of the batch's first split dispatch.
    let kind = all_rounds
        .iter()
        .filter(|r| r.1.split)
        .flat_map(|(i, r)| {
            let log = &steps[*i];
            r.dispatches.iter().map(move |k| &log[*k])
        })
        .find_map(|s| match s {
            crate::split::Step::Dispatch { pipeline, .. } => Some(*pipeline),
            _ => None,
        })
        .unwrap_or(0);
    let weights = st
        .split
        .balance
        .get_or_insert_with(|| speed_priors(d))
        .weights(kind, &members, SPLIT_CHUNKS);
    // Each member's slice of sliced indirect dispatches.
    let parts = crate::split::parts(&weights);
    // Images: a packed copy per member in host memory every member imports.
    let mut image_stages: Vec<Vec<Option<Arc<crate::staging::Stage>>>> = Vec::new();
    for si in &split_images {
        let mut per = vec![None; MAX_MEMBERS];
        for &m in &members {
            let range = RangeSet::of(vkfuse_memory::Range::at(0, si.size));
            match d.staging.stage(d, m, range, false, true) {
                Ok(stage) => per[m] = Some(stage),
                Err(r) => {
                    crate::debug!(
                        "compute_split: a batch runs whole: no staging buffer for an image ({r:?})"
                    );
                    st.split
                        .refused("no staging buffer for an image copied between drivers");
                    return None;
                }
            }
        }
        image_stages.push(per);
    }
    // Mirrored memory whose copies are reached through staging buffers (the staging tier):
    // each such member gets a stage over what the batch touches, which its rounds copy into
    // its copy before their work and back after it (`split::Copies::Mirror`).
    let mut staged: HashMap<u64, Vec<Option<Arc<crate::staging::Stage>>>> = HashMap::new();
    for (mem, u) in &access.memory {
        let Some(mirror) = st.mirrors.get(mem) else {
            continue;
        };
        let ranges = u
            .touched
            .within(vkfuse_memory::Range::new(0, mirror.size()));
        if ranges.is_empty() || members.iter().all(|m| mirror.cover(*m).is_null()) {
            continue;
        }
        let mut per = vec![None; MAX_MEMBERS];
        for &m in members.iter().filter(|m| !mirror.cover(**m).is_null()) {
            match d
                .staging
                .stage(d, m, ranges.clone(), false, d.exec.import_align != 0)
            {
                Ok(stage) => per[m] = Some(stage),
                Err(r) => {
                    crate::debug!(
                        "compute_split: a batch runs whole: no staging buffer for mirrored memory ({r:?})"
                    );
                    st.split
                        .refused("no staging buffer for mirrored memory reached through staging");
                    return None;
                }
            }
        }
        staged.insert(*mem, per);
    }
    // Mirrored memory and images: kept coherent around the rounds by the bridge
    // (`split::Merge`).
    let merge = if touches_mirrors(&st, &access) || !split_images.is_empty() {
        let j = members[0];
        let rounds = all_rounds
            .iter()
            .zip(&round_images)
            .map(|((i, r), imgs)| {
                let mut allocs = crate::split::merge_ranges(
                    &steps[*i],
                    r,
                    (&weights, SPLIT_CHUNKS),
                    &members,
                    |mem| {
                        Some(crate::split::Copies::Mirror {
                            mirror: st.mirrors.get(&mem)?.clone(),
                            staged: staged.get(&mem).cloned().unwrap_or_default(),
                        })
                    },
                );
                for (x, written) in imgs {
                    let si = &split_images[*x];
                    let all = RangeSet::of(vkfuse_memory::Range::at(0, si.size));
                    allocs.push(crate::split::MergeRange {
                        mirror: crate::split::Copies::Stages {
                            stages: image_stages[*x].clone(),
                            size: si.size,
                            latest: si.latest.clone(),
                        },
                        touched: all.clone(),
                        written: if *written { all } else { RangeSet::new() },
                        added: RangeSet::new(),
                        own: Vec::new(),
                        own_first: (RangeSet::new(), RangeSet::new()),
                    });
                }
                (r.split, allocs)
            })
            .collect();
        let m = crate::split::Merge::new(j, members[1..].to_vec(), rounds);
        if !m.reachable() {
            let w = "a member's copy of its mirrored memory is neither mapped nor staged";
            crate::debug!("compute_split: a batch runs whole: {w}");
            st.split.refused(w);
            return None;
        }
        Some(Arc::new(m))
    } else {
        None
    };
    if st.placer.strategy() == vkfuse_scheduler::Strategy::Hybrid {
        // Split only where it pays against the fastest member alone.
        let (mut groups, mut rounds) = (0u64, 0u64);
        for (i, r) in all_rounds.iter().filter(|r| r.1.split) {
            rounds += 1;
            for k in &r.dispatches {
                if let crate::split::Step::Dispatch { count, .. } = &steps[*i][*k] {
                    groups += count.iter().map(|n| u64::from(*n)).product::<u64>();
                }
            }
        }
        // Mirrored memory: its copies and merges at the rate measured so far (1 byte per ns
        // before any), and the copies between stages and members' copies reached through
        // them (the staging tier) at the same rate.
        let transfer_ns = merge.as_ref().map_or(0.0, |m| {
            let rate = if st.split.merge_ns > 0 {
                st.split.merge_through as f64 / st.split.merge_ns as f64
            } else {
                1.0
            };
            (m.bytes() + m.staged_bytes()) as f64 / rate
        });
        let pays = st.split.balance.as_ref().map_or(Ok(()), |b| {
            b.split_pays(
                kind,
                &members,
                (groups, rounds),
                transfer_ns,
                HYBRID_GAIN,
                HYBRID_MIN_ROUND_NS,
            )
        });
        if let Err(why) = pays {
            crate::debug!("hybrid: a batch runs whole: {why}");
            st.split.refused("hybrid: splitting does not pay");
            st.split.whole_by_hybrid += 1;
            return None;
        }
    }
    // Injected faults count this batch as a submission on every member; a member lost here
    // ran nothing of it, and the batch runs whole on the survivors.
    for &m in &members {
        if let Some(why) = injected_loss(&mut st, m) {
            if let Err(e) = lose_member(d, &mut st, m, &why) {
                return Some(Err(e));
            }
            return None;
        }
    }
    // The first member's copies reached through staging: made ready as for any batch on it
    // (its prologue, input and output stages: `stage_for`, without chunks), then copied out
    // into its split stages before the first round (the lead-in), and the merged stages
    // copied back in at the join, before its epilogue.
    let lead_copies = merge
        .as_ref()
        .map(|m| m.staged_lead_in())
        .unwrap_or_default();
    let mut lead: Option<(crate::staging::Recorded, HashMap<u64, Staged>)> = None;
    if !lead_copies.is_empty() {
        let mut mirrored = access.clone();
        mirrored.memory.retain(|m, _| st.mirrors.contains_key(m));
        match stage_for(d, &st, q, (&mirrored, &[]), members[0], false) {
            Ok((stages, rec, _)) => lead = Some((rec, stages)),
            Err(r) => {
                crate::debug!(
                    "compute_split: a batch runs whole: no staging for its first member ({r:?})"
                );
                st.split
                    .refused("no staging buffer for mirrored memory reached through staging");
                return None;
            }
        }
    }
    // Every round's command buffer per member, recorded before anything is submitted: a
    // failure leaves the batch to run whole.
    let mut groups = [0u64; MAX_MEMBERS];
    // Per member: the parts (of `vkfuse_shader::slice::PARTS`) of sliced indirect dispatches
    // it runs.
    let mut sliced = [0u64; MAX_MEMBERS];
    // Sliced indirect dispatches narrowed (`narrow.rs`).
    let mut narrowed_dispatches = 0u64;
    let mut plan: Vec<Vec<Planned>> = Vec::new();
    // Per round: whether it may be timed although it has sliced dispatches (all narrowed,
    // their workgroups read back).
    let mut timed_narrow: Vec<bool> = Vec::new();
    let mut taken: Vec<(usize, Timed)> = Vec::new();
    let mut failed = None;
    // Member `m`'s copies of the images of `imgs` and its packed copies of them, in round
    // `r` (the number of rounds: the join, into the images in their layouts at the end).
    let image_copies =
        |m: usize, imgs: &[(usize, bool)], r: usize| -> Vec<crate::split::ImageCopy> {
            imgs.iter()
                .filter_map(|(x, _)| {
                    let si = &split_images[*x];
                    let img = &si.image;
                    let buffer = image_stages[*x][m].as_ref()?.buffer(m);
                    // SAFETY: the image is live while the batch's command buffers are.
                    let obj = unsafe { ObjectBase::get(img.raw) }.ok()?;
                    let image = vk::Image::from_raw(obj.handles[m]);
                    let layouts = &image_layouts[*x];
                    let Some(l) = layouts.get(r) else {
                        let end = &layouts.last()?.end;
                        let into = img.relayout(&si.regions, end, |_| true);
                        return Some(crate::split::ImageCopy {
                            image,
                            buffer,
                            into: into.into_iter().map(|r| (r, false)).collect(),
                            out: Vec::new(),
                        });
                    };
                    let fresh = |u: usize| crate::images::empty(l.start[u]);
                    let mut into: Vec<(crate::staging::ImageRegion, bool)> = img
                        .relayout(&si.regions, &l.first, |u| !fresh(u))
                        .into_iter()
                        .map(|r| (r, false))
                        .collect();
                    into.extend(
                        img.relayout(&si.regions, &l.first, fresh)
                            .into_iter()
                            .map(|r| (r, true)),
                    );
                    Some(crate::split::ImageCopy {
                        image,
                        buffer,
                        into,
                        out: img.relayout(&si.regions, &l.end, |_| true),
                    })
                })
                .collect()
        };
    // Per round, its sliced indirect dispatches. Their rounds are not timed unless narrowed:
    // each member's busy time includes launching every workgroup of the grid, and the
    // workgroups each ran are not known (the balance and the projection would take them for
    // work divided). Narrowed ones launch only their slice's, read back when done.
    let sliced_rounds: Vec<u64> = all_rounds
        .iter()
        .map(|(i, r)| {
            r.dispatches
                .iter()
                .filter(|k| {
                    r.split
                        && matches!(
                            &steps[*i][**k],
                            crate::split::Step::Indirect { sliced: true, .. }
                        )
                })
                .count() as u64
        })
        .collect();
    let sliced_dispatches: u64 = sliced_rounds.iter().sum();
    'record: for (r_index, (i, round)) in all_rounds.iter().enumerate() {
        let log = &steps[*i];
        {
            let targets: &[usize] = if round.split || !transitioned.is_empty() {
                &members
            } else {
                &members[..1]
            };
            // The round's sliced indirect dispatches that are narrowed (`narrow.rs`): where
            // the shader allows it and every member running a part of them can.
            let mut narrow: Vec<usize> = round
                .dispatches
                .iter()
                .copied()
                .filter(|k| {
                    round.split
                        && matches!(&log[*k], crate::split::Step::Indirect {
                            pipeline,
                            sliced: true,
                            ..
                        } if crate::shaders::narrowable(*pipeline))
                })
                .take(crate::narrow::SLOTS as usize)
                .collect();
            for (pos, &m) in targets.iter().enumerate() {
                let (lo, hi) = parts.get(pos).copied().unwrap_or_default();
                let can = lo >= hi || d.member(m).and_then(|md| st.split.narrower(md)).is_some();
                if !can {
                    narrow.clear();
                }
            }
            let mut this = Vec::new();
            // Whether every member taking part can read its narrowed workgroups back.
            let mut readable = true;
            let narrowed_here = narrow.len();
            for (pos, &m) in targets.iter().enumerate() {
                let Some(md) = d.member(m) else {
                    failed = Some(vk::Result::ERROR_DEVICE_LOST);
                    break 'record;
                };
                let family = crate::conv::queue_family(&md.maps, q.family);
                let (p, mut t) = match st.split.take(d, md, family) {
                    Ok(x) => x,
                    Err(r) => {
                        failed = Some(r);
                        break 'record;
                    }
                };
                // The scratch buffer of a command buffer that narrows, made on first use.
                let (lo, hi) = parts.get(pos).copied().unwrap_or_default();
                let narrower = (!narrow.is_empty() && lo < hi)
                    .then(|| st.split.narrower(md))
                    .flatten();
                if let (Some(n), None) = (&narrower, t.scratch) {
                    match crate::narrow::Scratch::new(d, md, n) {
                        Ok(s) => t.scratch = Some(s),
                        Err(e) => {
                            crate::info!("compute_split: member {m}: no buffer to narrow indirect dispatches in ({e})");
                            taken.push((p, t));
                            failed = Some(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY);
                            break 'record;
                        }
                    }
                }
                taken.push((p, t));
                // This member's parts of step `k`: (base, group counts) each.
                let slice = |k: usize| crate::split::slices(&log[k], &weights, SPLIT_CHUNKS, pos);
                let mut these = 0;
                for k in &round.dispatches {
                    let parts = slice(*k);
                    crate::debug!("compute_split: member {m}, step {k}: (base, groups) {parts:?}");
                    for (_, c) in parts {
                        these += c.iter().map(|n| u64::from(*n)).product::<u64>();
                    }
                }
                groups[m] += these;
                let images = image_copies(m, &round_images[r_index], r_index);
                let buffers = merge
                    .as_ref()
                    .map(|mg| mg.staged_copies(r_index, m))
                    .unwrap_or_default();
                // This member's variants of the round's sliced indirect dispatches, and the
                // counts of those narrowed.
                let mut variants = crate::split::Variants::new();
                let mut narrowed = Vec::new();
                for k in round.dispatches.iter().filter(|_| round.split && lo < hi) {
                    if let crate::split::Step::Indirect {
                        pipeline,
                        sliced: true,
                        buffer,
                        offset,
                        ..
                    } = &log[*k]
                    {
                        let slot = narrow.iter().position(|n| n == k).map(|s| s as u32);
                        let scratch = t.scratch.filter(|_| narrower.is_some());
                        let at = slot.zip(scratch);
                        match crate::shaders::slice_pipeline(
                            d,
                            md,
                            *pipeline,
                            (lo, hi),
                            at.is_some(),
                        ) {
                            Ok(v) => {
                                let buffer = crate::conv::nd(vk::Buffer::from_raw(*buffer), m);
                                if let Some((slot, _)) = at {
                                    narrowed.push(crate::narrow::Narrowed {
                                        slot,
                                        counts: (buffer, *offset),
                                        parts: (lo, hi),
                                    });
                                }
                                variants.insert(
                                    *k,
                                    crate::split::Variant {
                                        pipeline: v,
                                        narrowed: at.map(|(slot, s)| {
                                            (s.buffer(), crate::narrow::args_offset(slot))
                                        }),
                                    },
                                );
                                sliced[m] += u64::from(hi - lo);
                            }
                            Err(r) => {
                                failed = Some(r);
                                break 'record;
                            }
                        }
                    }
                }
                let reads = if t.scratch.is_some_and(|s| s.readable()) {
                    narrowed.len() as u32
                } else {
                    0
                };
                // SAFETY: a command buffer of vkfuse's pool, not pending, and its query pool;
                // the log's handles are live while the application's command buffer is, and
                // so are the images and their packed copies, and the covers and stages.
                let r = unsafe {
                    crate::split::record(
                        md,
                        (t.cb, t.queries),
                        log,
                        (round, round_spans[r_index].clone(), &kept[r_index]),
                        slice,
                        (
                            &images,
                            &buffers,
                            &variants,
                            narrower
                                .as_ref()
                                .zip(t.scratch.as_ref())
                                .map(|o| (o, narrowed)),
                        ),
                    )
                };
                if let Err(r) = r {
                    failed = Some(r);
                    break 'record;
                }
                readable &= lo >= hi || reads as usize == narrowed_here;
                this.push((m, p, t, these, reads));
            }
            narrowed_dispatches += narrow.len() as u64;
            // A round is timed where its sliced dispatches were all narrowed and every
            // member's workgroups can be read back.
            timed_narrow.push(sliced_rounds[r_index] == narrow.len() as u64 && readable);
            plan.push(this);
        }
    }
    // The join on the first member brings the images the batch may write up to date there
    // (their packed copy, merged, into its copy), and its copies reached through staging
    // (their stages, merged, into them). The lead-in copies those copies out into their
    // stages.
    let mut join_cb: Option<(usize, Timed)> = None;
    let mut lead_cb: Option<(usize, Timed)> = None;
    let written_images: Vec<(usize, bool)> = split_images
        .iter()
        .enumerate()
        .filter(|(_, si)| si.written)
        .map(|(x, _)| (x, true))
        .collect();
    let join_buffers = merge
        .as_ref()
        .map(|mg| mg.staged_copies(all_rounds.len(), members[0]))
        .unwrap_or_default();
    // One command buffer of vkfuse's pool on the first member, recorded by `body`.
    let own_cb = |st: &mut State,
                  taken: &mut Vec<(usize, Timed)>,
                  body: &dyn Fn(&MemberDevice, vk::CommandBuffer) -> Result<(), vk::Result>|
     -> Result<(usize, Timed), vk::Result> {
        let md = d.member(members[0]).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
        let family = crate::conv::queue_family(&md.maps, q.family);
        let (p, t) = st.split.take(d, md, family)?;
        taken.push((p, t));
        body(md, t.cb)?;
        Ok((p, t))
    };
    if failed.is_none() && (!written_images.is_empty() || !join_buffers.is_empty()) {
        let copies = image_copies(members[0], &written_images, all_rounds.len());
        // SAFETY: a command buffer of vkfuse's pool, not pending; the images, covers and
        // stages are the first member's and live.
        let body = |md: &MemberDevice, cb| unsafe {
            crate::split::record_uploads(md, cb, &copies, &join_buffers)
        };
        match own_cb(&mut st, &mut taken, &body) {
            Ok(x) => join_cb = Some(x),
            Err(r) => failed = Some(r),
        }
    }
    if failed.is_none() && !lead_copies.is_empty() {
        // SAFETY: as above.
        let body =
            |md: &MemberDevice, cb| unsafe { crate::split::record_lead_in(md, cb, &lead_copies) };
        match own_cb(&mut st, &mut taken, &body) {
            Ok(x) => lead_cb = Some(x),
            Err(r) => failed = Some(r),
        }
    }
    if let Some(r) = failed {
        for (p, t) in taken {
            st.split.pools[p].3.push(t);
        }
        if let Some((rec, _)) = lead {
            // Nothing was submitted: its command buffers and stages may go at once.
            let j = members[0];
            d.staging
                .launched(rec, (j, q.done[j], queue_entry(&mut st, q).2[j]));
        }
        crate::warn!("compute_split: recording a batch's slices failed ({r:?}); it runs whole");
        return None;
    }
    drop(steps);
    drop(logs);
    // The gate: the batch's waits, placed as usual; every member's latest point after it
    // covers its done point.
    let mut gate: Vec<Edge> = Vec::new();
    if !b.waits.is_empty() {
        let before = queue_entry(&mut st, q).2;
        drop(st);
        let r = submit_multi(
            q,
            d,
            vec![Batch {
                waits: b.waits.clone(),
                cbs: Vec::new(),
                signals: Vec::new(),
                flags: vk::SubmitFlags::empty(),
                p_next: std::ptr::null(),
            }],
            vk::Fence::null(),
        );
        st = d.exec.state.lock();
        if let Err(e) = r {
            for (_, p, t, ..) in plan.into_iter().flatten() {
                st.split.pools[p].3.push(t);
            }
            for (p, t) in join_cb.into_iter().chain(lead_cb) {
                st.split.pools[p].3.push(t);
            }
            if let Some((rec, _)) = lead {
                let j = members[0];
                d.staging
                    .launched(rec, (j, q.done[j], queue_entry(&mut st, q).2[j]));
            }
            return Some(Err(e));
        }
        let after = queue_entry(&mut st, q).2;
        for m in &d.members {
            if after[m.index] > before[m.index] {
                gate.push((m.index, q.done[m.index], after[m.index]));
            }
        }
    }
    let signals = !b.signals.is_empty();
    let join_fence = if signals { vk::Fence::null() } else { fence };
    // Round by round: each waits for the batches the whole batch depends on (the first) or
    // for every member's previous round; a join on the first member waits for the last round
    // and carries the fence.
    let submit_one = |md: &MemberDevice,
                      queue: vk::Queue,
                      wait: &Waits,
                      cbs: &[vk::CommandBuffer],
                      signal: (vk::Semaphore, u64),
                      fence: vk::Fence|
     -> vk::Result {
        let Some(submit2) = md.fns.queue_submit2 else {
            return crate::guard::missing("vkQueueSubmit2");
        };
        let w: Vec<vk::SemaphoreSubmitInfo> = wait.infos();
        let c: Vec<vk::CommandBufferSubmitInfo> = cbs
            .iter()
            .map(|command_buffer| vk::CommandBufferSubmitInfo {
                command_buffer: *command_buffer,
                ..Default::default()
            })
            .collect();
        let s = [vk::SemaphoreSubmitInfo {
            semaphore: signal.0,
            value: signal.1,
            stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
            ..Default::default()
        }];
        let info = submit_info2(&w, &c, &s);
        let apart = !fence.is_null() && d.exec.fence_apart & (1 << md.index) != 0 && !w.is_empty();
        // SAFETY: member handles; the arrays live until the call returns.
        let r = unsafe {
            submit2(
                queue,
                1,
                &info,
                if apart { vk::Fence::null() } else { fence },
            )
        };
        if r == vk::Result::SUCCESS && apart {
            // SAFETY: a submit of no batches that only signals the member's fence.
            return unsafe { submit2(queue, 0, std::ptr::null(), fence) };
        }
        r
    };
    // One submit on member `md` after `wait` (a bridge point), signalling its next done point:
    // the result and the point's value.
    let point = |st: &mut State,
                 md: &MemberDevice,
                 wait: Waits,
                 cbs: &[vk::CommandBuffer],
                 fence: vk::Fence|
     -> (vk::Result, u64) {
        let m = md.index;
        let entry = queue_entry(st, q);
        entry.2[m] += 1;
        let value = entry.2[m];
        let r = submit_one(md, q.handles[m], &wait, cbs, (q.done[m], value), fence);
        if r == vk::Result::SUCCESS {
            st.links.submitted(&wait.links, (m, q.done[m], value));
        }
        (r, value)
    };
    let j = members[0];
    let md_j = d.member(j)?;
    let rounds = plan.len();
    // Mirrored memory: `j` runs the batch as far as mirrored memory knows (it takes part in
    // every round), finishing at the join; its copy is made ready before the first round.
    let base_j = queue_entry(&mut st, q).2[j];
    let join_value = base_j + rounds as u64 + 1 + u64::from(lead.is_some());
    // The first member's staging transfers: its prologue goes with the lead-in, its epilogue
    // with the join; their command buffers and stages are kept until the join is done.
    let (lead_stages, prologue, epilogue) = match lead {
        Some((rec, stages)) => {
            let (pro, epi) = (rec.prologue, rec.epilogue);
            d.staging.launched(rec, (j, q.done[j], join_value));
            (stages, pro, epi)
        }
        None => (HashMap::new(), None, None),
    };
    let mut prep = match &merge {
        Some(_) => mirrors_for(
            d,
            &mut st,
            &access,
            j,
            (j, q.done[j], join_value),
            lead_stages,
        ),
        None => Vec::new(),
    };
    // A job of the bridge before round `r` (mirrored memory): it waits for `waits`, makes the
    // memory coherent and signals every member of the round. Returns each member's point.
    let sync = |st: &mut State,
                waits: Vec<Edge>,
                prep: Vec<Prep>,
                r: Option<usize>,
                targets: &[usize]|
     -> Result<Vec<(vk::Semaphore, u64)>, vk::Result> {
        let signals: Vec<(usize, vk::Semaphore, u64)> = targets
            .iter()
            .map(|m| {
                st.bridge_next[*m] += 1;
                (*m, d.exec.bridge_sem[*m], st.bridge_next[*m])
            })
            .collect();
        let job = Job {
            waits,
            signal: signals.first().copied(),
            carry: signals.iter().skip(1).copied().collect(),
            prep,
            fills: Vec::new(),
            merge: r.and_then(|r| Some((merge.clone()?, r))),
        };
        if send(d, job) {
            Ok(signals.iter().map(|s| (s.1, s.2)).collect())
        } else {
            Err(vk::Result::ERROR_DEVICE_LOST)
        }
    };
    let mut prev: Vec<Edge> = data_edges(&st, &access);
    prev.extend(published.iter().copied());
    prev.extend(gate.iter().copied());
    if merge.is_some() {
        // Every member's copies are written before the first round: after all earlier work.
        for (_, sems, points) in &st.points {
            for m in &d.members {
                if points[m.index] > 0 {
                    prev.push((m.index, sems[m.index], points[m.index]));
                }
            }
        }
    }
    // On a failure part way, mirrored memory still expects `j`'s join point: it is signalled
    // from the host once `j`'s rounds so far are over.
    let fail = |st: &mut State, r: vk::Result| -> Option<Result<vk::Result, vk::Result>> {
        if merge.is_some() {
            let entry = queue_entry(st, q);
            let before = entry.2[j];
            entry.2[j] = join_value;
            release_points(md_j, (q.done[j], join_value), before);
        }
        Some(Err(r))
    };
    if let Some((p, t)) = lead_cb {
        // The lead-in: `j`'s copies made ready (the bridge fills its input stages, its
        // prologue copies them in), then copied out into its split stages, which the first
        // round's merge step starts from.
        let wait = match sync(
            &mut st,
            std::mem::take(&mut prev),
            std::mem::take(&mut prep),
            None,
            &[j],
        ) {
            Ok(w) => Waits::bridged(w.first().copied()),
            Err(e) => {
                st.split.pools[p].3.push(t);
                return fail(&mut st, e);
            }
        };
        let cbs: Vec<vk::CommandBuffer> = prologue.into_iter().chain([t.cb]).collect();
        let (r, value) = point(&mut st, md_j, wait, &cbs, vk::Fence::null());
        if r != vk::Result::SUCCESS {
            st.split.pools[p].3.push(t);
            release_points(md_j, (q.done[j], value), value - 1);
            return fail(&mut st, r);
        }
        // Not a round: back to the pool once done, not timed.
        st.split
            .pending
            .push(((j, q.done[j], value), p, t, u64::MAX, 0, 0));
        prev = vec![(j, q.done[j], value)];
    }
    for (r, this) in plan.into_iter().enumerate() {
        st.split.rounds += 1;
        let round = st.split.rounds;
        // Whole rounds on every member (layout changes only, elsewhere) are not timed, nor
        // are rounds of sliced indirect dispatches that were not narrowed.
        if all_rounds[r].1.split
            && (sliced_rounds[r] == 0 || timed_narrow.get(r) == Some(&true))
            && this.iter().all(|x| !x.2.queries.is_null())
        {
            st.split
                .open
                .push((round, this.len(), 0, 0, Vec::new(), kind));
        }
        let targets: Vec<usize> = this.iter().map(|x| x.0).collect();
        let waits: Vec<Waits> = if merge.is_some() {
            let p = if r == 0 {
                std::mem::take(&mut prep)
            } else {
                Vec::new()
            };
            match sync(&mut st, std::mem::take(&mut prev), p, Some(r), &targets) {
                Ok(w) => w.into_iter().map(|x| Waits::bridged(Some(x))).collect(),
                Err(e) => return fail(&mut st, e),
            }
        } else {
            let mut w = Vec::new();
            for m in &targets {
                let mut waits = unfinished(d, *m, q.done[*m], prev.clone());
                if r == 0 {
                    // The gate on this member too: its waits hold back only its own (empty)
                    // batch, not the later ones on the same queue.
                    waits.extend(gate.iter().filter(|g| {
                        g.0 == *m && d.member(*m).is_some_and(|md| counter(md, g.1) < g.2)
                    }));
                }
                match link_or_bridge(d, &mut st, q, *m, waits) {
                    Ok(x) => w.push(x),
                    Err(e) => return fail(&mut st, e),
                }
            }
            w
        };
        let mut next = Vec::new();
        for ((m, p, t, these, reads), wait) in this.into_iter().zip(waits) {
            let Some(md) = d.member(m) else {
                return fail(&mut st, vk::Result::ERROR_DEVICE_LOST);
            };
            let (r, value) = point(&mut st, md, wait, &[t.cb], vk::Fence::null());
            if r != vk::Result::SUCCESS {
                st.split.pools[p].3.push(t);
                release_points(md, (q.done[m], value), value - 1);
                if r == vk::Result::ERROR_DEVICE_LOST {
                    let _ = lose_member(
                        d,
                        &mut st,
                        m,
                        "vkQueueSubmit2 returned VK_ERROR_DEVICE_LOST",
                    );
                    crate::error!("member {m} lost during a split batch: its slices did not run; the fused device is lost");
                    d.exec.lost.store(true, Ordering::Release);
                }
                return fail(&mut st, r);
            }
            st.split
                .pending
                .push(((m, q.done[m], value), p, t, round, these, reads));
            st.placed[m] += 1;
            next.push((m, q.done[m], value));
        }
        prev = next;
    }
    if !join_fence.is_null() {
        // A fence covers every earlier batch of every member.
        prev.extend(edges(d, &st, j, q.done[j]));
    }
    let wait = if merge.is_some() {
        // The last round's slices merged into `j`'s copy.
        match sync(&mut st, prev, Vec::new(), Some(rounds), &[j]) {
            Ok(w) => Waits::bridged(w.first().copied()),
            Err(e) => return fail(&mut st, e),
        }
    } else {
        match link_or_bridge(d, &mut st, q, j, unfinished(d, j, q.done[j], prev)) {
            Ok(w) => w,
            Err(e) => return fail(&mut st, e),
        }
    };
    let join_cbs: Vec<vk::CommandBuffer> = join_cb
        .map(|x| x.1.cb)
        .into_iter()
        .chain(epilogue)
        .collect();
    let (r, value) = point(
        &mut st,
        md_j,
        wait,
        &join_cbs,
        crate::conv::nd(join_fence, j),
    );
    if r != vk::Result::SUCCESS {
        if let Some((p, t)) = join_cb {
            st.split.pools[p].3.push(t);
        }
        release_points(md_j, (q.done[j], value), value - 1);
        return Some(Err(r));
    }
    if let Some((p, t)) = join_cb {
        // Not a round: back to the pool once done, not timed.
        st.split
            .pending
            .push(((j, q.done[j], value), p, t, u64::MAX, 0, 0));
    }
    // The images the batch may write: `j`'s copy holds them, and so does their packed copy
    // there, now their latest contents.
    for (x, _) in &written_images {
        let si = &split_images[*x];
        let Some(stage) = image_stages[*x][j].clone() else {
            continue;
        };
        let Some(end) = image_layouts[*x].last().map(|l| &l.end) else {
            continue;
        };
        let packed = (si.image.relayout(&si.regions, end, |_| true), end.clone());
        if let Err(e) = crate::images::split_written(&si.image, &mut st.coherence, j, stage, packed)
        {
            if !st.coherence_failed {
                st.coherence_failed = true;
                crate::warn!(
                    "member {j}: the coherence tracker refused a split batch's image ({e})"
                );
            }
        }
    }
    debug_assert!(merge.is_none() || value == join_value);
    if let Some(m) = &merge {
        st.split.merges.push(m.clone());
        st.split.mirrored += 1;
    }
    record_touches(d, &mut st, &access, (j, q.done[j], value));
    st.last_placed = Some(j);
    st.split.batches += 1;
    for m in &members {
        st.split.groups[*m] += groups[*m];
        st.split.sliced_parts[*m] += sliced[*m];
    }
    st.split.sliced += sliced_dispatches;
    st.split.narrowed += narrowed_dispatches;
    crate::debug!(
        "compute_split: a batch in {rounds} round(s) on members {members:?}, workgroups {}",
        members
            .iter()
            .map(|m| format!("member {m}: {}", groups[*m]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if signals {
        // The signals (and the fence), after the join: a signal covers every earlier batch.
        drop(st);
        return Some(submit_multi(
            q,
            d,
            vec![Batch {
                waits: Vec::new(),
                cbs: Vec::new(),
                signals: b.signals.clone(),
                flags: vk::SubmitFlags::empty(),
                p_next: std::ptr::null(),
            }],
            fence,
        ));
    }
    // SAFETY: a live fence of the application (or null, refused by `get`).
    if let Ok(f) = unsafe { ObjectBase::get(join_fence.as_raw()) } {
        f.set_last(Some(j));
    }
    Some(Ok(vk::Result::SUCCESS))
}

/// Whether a command buffer of `b` has a split log that may split it (`compute_split`).
fn may_split(b: &Batch) -> bool {
    b.cbs.iter().any(|c| {
        // SAFETY: the application's live command buffers.
        unsafe { CommandBuffer::resolve(c.command_buffer) }.is_ok_and(|(cb, _)| {
            cb.compute
                .lock()
                .log
                .as_ref()
                .is_some_and(|l| l.broken.is_none() && (l.splits > 0 || l.pending > 0))
        })
    })
}

/// Submits `batches` to the placed member with the bridge wait and the done signal.
fn submit_multi(
    q: &Queue,
    d: &Device,
    mut batches: Vec<Batch>,
    fence: vk::Fence,
) -> Result<vk::Result, vk::Result> {
    d.exec.check()?;
    let splits = crate::config::Config::get().splits();
    if batches.len() == 1 && splits {
        if let Some(r) = submit_split(q, d, &batches[0], fence) {
            return r;
        }
    }
    let mut st = d.exec.state.lock();
    if batches.len() > 1
        && (!st.mirrors.is_empty()
            || !st.image_binds.is_empty()
            || (splits && batches.iter().any(may_split)))
    {
        // Mirrored memory is made ready per batch, after the batch's own waits (`gated`
        // below), which may depend on earlier batches of the same submit: one batch at a time,
        // as if the application had submitted them one by one. The fence goes with the last.
        // So do batches that may split (`submit_split` takes one batch).
        drop(st);
        let n = batches.len();
        for (i, b) in batches.into_iter().enumerate() {
            let f = if i + 1 == n { fence } else { vk::Fence::null() };
            let _ = submit_multi(q, d, vec![b], f)?;
        }
        return Ok(vk::Result::SUCCESS);
    }
    let notes = batch_notes(&batches);
    let access = crate::access::of_batches(
        d,
        batches.iter().flat_map(|b| &b.cbs).filter_map(|c| {
            // SAFETY: the application's live command buffers.
            unsafe { CommandBuffer::resolve(c.command_buffer) }
                .ok()
                .map(|(cb, _)| cb)
        }),
    );
    let transitions = if st.image_binds.is_empty() {
        Vec::new()
    } else {
        crate::layout::of_batches(batches.iter().flat_map(|b| &b.cbs).filter_map(|c| {
            // SAFETY: the application's live command buffers.
            unsafe { CommandBuffer::resolve(c.command_buffer) }
                .ok()
                .map(|(cb, _)| cb)
        }))
    };
    let j = place(
        d,
        &mut st,
        &batches,
        &notes,
        (&access, &transitions),
        !fence.is_null(),
    )?;
    // Copies of mirrored memory on `j` reached through staging: stages and transfer command
    // buffers first, so that a member short of memory for them leaves no trace. Another
    // member then takes the batch, unless it must run on `j`.
    // Lazy image copies: images whose latest contents only another member holds are copied
    // out there first; the batch waits for those copies.
    let held = match Site::member(j) {
        Some(site) => crate::images::held_for(
            d,
            &st.coherence,
            &st.image_binds,
            &access,
            &transitions,
            site,
        ),
        None => Vec::new(),
    };
    let published = if held.is_empty() {
        Vec::new()
    } else {
        publish_images(d, &mut st, q, held)?
    };
    let (j, (stages, transfers, images)) = match stage_for(
        d,
        &st,
        q,
        (&access, &transitions),
        j,
        true,
    ) {
        Ok(x) => (j, x),
        // Data the batch needs was lost with a member (`images.rs`): said there.
        Err(r) if r == vk::Result::ERROR_DEVICE_LOST && d.exec.is_lost() => return Err(r),
        Err(r) => {
            let alive = alive_mask(d);
            let bound = st.pin.is_some()
                || read_affinity(&st, &notes, alive).is_some()
                || frame_affinity(&st, &access, alive).is_some();
            let other = d
                .members
                .iter()
                .map(|md| md.index)
                .filter(|&k| k != j && !bound && alive & (1 << k) != 0)
                .find_map(|k| {
                    stage_for(d, &st, q, (&access, &transitions), k, true)
                        .ok()
                        .map(|x| (k, x))
                });
            let first = st.staging_short & (1 << j) == 0;
            st.staging_short |= 1 << j;
            match other {
                Some((k, x)) => {
                    if first {
                        crate::warn!(
                            "member {j}: no staging buffers for a batch ({r:?}); such batches run on another member (member {k} now)"
                        );
                    }
                    st.placed_elsewhere += 1;
                    (k, x)
                }
                None => {
                    crate::warn!(
                        "member {j}: no staging buffers for a batch ({r:?}) and no other member can take it; the submit fails"
                    );
                    return Err(if r == vk::Result::ERROR_DEVICE_LOST {
                        r
                    } else {
                        vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
                    });
                }
            }
        }
    };
    reset_queries(d, &st, &notes, j);
    let outputs: Vec<Arc<crate::staging::Stage>> = stages
        .values()
        .filter_map(|s| s.stages.output.clone())
        .collect();
    let base = queue_entry(&mut st, q).2[j];
    let placed = sync_ops(d, &mut st, &mut batches, j, (j, q.done[j], base + 1));
    // A batch with semaphore waits left on its member (after those of other members became
    // bridge waits above) that touches mirrored memory: the memory is made ready only once the
    // waits are over (the host may write it until it signals what the batch waits for), so
    // the waits move to an empty batch before it (the gate) whose done point the bridge job
    // waits for. The batch's own done point is then the next one.
    let gated = touches_mirrors(&st, &access) && batches.iter().any(|b| !b.waits.is_empty());
    let gate_point: Edge = (j, q.done[j], base + 1);
    // A staging epilogue is a batch of its own after the batch (`epilogue` below): the batch
    // signals the point before, and the epilogue the batch's done point.
    let epilogue = transfers.epilogue.is_some();
    let work_point = base + 1 + u64::from(gated);
    let next_done: Edge = (
        j,
        q.done[j],
        base + 1 + u64::from(gated) + u64::from(epilogue),
    );
    if next_done != gate_point {
        move_signal_points(&mut st, &batches, gate_point, next_done);
    }
    let mut explicit = placed.signalled_by;
    explicit.extend(published);
    // Binary semaphores signalled elsewhere are consumed where they were signalled, by a batch
    // that also signals that member's done point, which this batch then waits for.
    for (i, sem) in &placed.consume {
        let member_sem = nd(*sem, *i);
        if let Err(r) = submit_internal(d, &mut st, q, *i, &[member_sem], &[], &[]) {
            crate::warn!("member {i}: consuming a semaphore failed ({r:?})");
        }
        explicit.push((*i, q.done[*i], queue_entry(&mut st, q).2[*i]));
    }
    // A fence, semaphore or event signal covers every command submitted before it, on every
    // member. An event is set inside the commands: its batch waits for every earlier batch
    // before it starts, and so does a batch that may touch every allocation. Any other batch
    // waits only for the batches that touched the same memory and those that signal what it
    // waits for; its fence and semaphore signals, if any, move to a batch of their own after
    // it that waits for every earlier batch (when some have not finished). (Timestamps written
    // meanwhile on another member come from another clock anyway.) Signals that a later batch
    // of the same submit waits for cannot move behind it: such a submit waits for every
    // earlier batch before it starts, like an event setter.
    let strict = notes.iter().any(|n| {
        // SAFETY: noted handles are live objects while the command buffer is pending.
        unsafe { ObjectBase::get(n.raw) }.is_ok_and(|o| o.ty == vk::ObjectType::EVENT)
    }) || access.everything.is_some()
        || waits_within(&batches);
    let signalling = !fence.is_null() || batches.iter().any(|b| !b.signals.is_empty());
    // The last unfinished batch of every other member, on every queue, covers the explicit
    // edges too: each is at or after them in its member's queue.
    let all_earlier = || edges(d, &st, j, q.done[j]);
    let (waits, tail_waits) = if strict {
        (all_earlier(), Vec::new())
    } else {
        explicit.extend(data_edges(&st, &access));
        let waits = unfinished(d, j, q.done[j], explicit);
        let rest: Vec<Edge> = if signalling {
            all_earlier()
                .into_iter()
                .filter(|e| !waits.iter().any(|w| w.0 == e.0 && w.1 == e.1 && w.2 >= e.2))
                .collect()
        } else {
            Vec::new()
        };
        (waits, rest)
    };
    let split = !tail_waits.is_empty();
    let edge_count = waits.len();
    let prep = mirrors_for(d, &mut st, &access, j, next_done, stages);
    if access.host_events && !st.mirrors.is_empty() {
        let (m, sem, value) = next_done;
        match st
            .host_event_batches
            .iter_mut()
            .find(|e| e.0 == m && e.1 == sem)
        {
            Some(e) => e.2 = e.2.max(value),
            None => st.host_event_batches.push(next_done),
        }
    }
    let mut images = images;
    let fills = std::mem::take(&mut images.fills);
    // Waits for members that share semaphores with `j` skip the bridge (`link`), where the
    // bridge job has nothing else to do after them and one batch waits (a binary semaphore is
    // waited for once).
    let linkable =
        batches.len() <= 1 && prep.is_empty() && fills.is_empty() && transfers.chunks.is_empty();
    let (bridge_wait, linked) = if gated {
        let mut waits = waits;
        waits.push(gate_point);
        (
            Some(bridge_gated(d, j, waits, (prep, fills), next_done)?),
            Vec::new(),
        )
    } else {
        let (waits, linked) = if linkable {
            link(d, &mut st, q, j, waits)
        } else {
            (waits, Vec::new())
        };
        (bridge_with(d, &mut st, j, waits, prep, fills)?, linked)
    };
    let tail = link_or_bridge(d, &mut st, q, j, tail_waits)?;
    let md = d.member(j).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
    let arena = Arena::scope();
    let cx = md.cx(&arena);
    let entry = queue_entry(&mut st, q);
    entry.2[j] += 1 + u64::from(gated) + u64::from(epilogue);
    debug_assert_eq!(entry.2[j], next_done.2);
    let done = vk::SemaphoreSubmitInfo {
        semaphore: q.done[j],
        value: entry.2[j],
        stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
        ..Default::default()
    };
    // The done point of the batches' work, and of their signals (later when split).
    let done_point = (q.done[j], entry.2[j]);
    if split {
        entry.2[j] += 1;
    }
    let signal_point = (q.done[j], entry.2[j]);
    let before = Waits {
        bridge: bridge_wait,
        links: linked,
    };
    let bw = before.infos();
    let tr_sem = |s: &vk::SemaphoreSubmitInfo<'static>| vk::SemaphoreSubmitInfo {
        semaphore: nd(s.semaphore, j),
        device_index: 0,
        ..*s
    };
    let chunk_store: Vec<(
        [vk::SemaphoreSubmitInfo; 1],
        [vk::CommandBufferSubmitInfo; 1],
    )> = transfers
        .chunks
        .iter()
        .enumerate()
        .filter_map(|(k, cb)| {
            let f = transfers.fill?;
            Some((
                [vk::SemaphoreSubmitInfo {
                    semaphore: f.sem,
                    value: k as u64 + 1,
                    stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
                    ..Default::default()
                }],
                [vk::CommandBufferSubmitInfo {
                    command_buffer: *cb,
                    ..Default::default()
                }],
            ))
        })
        .collect();
    let mut infos: Vec<vk::SubmitInfo2> = Vec::with_capacity(batches.len() + 2 + chunk_store.len());
    let mut keep: Vec<(
        Vec<vk::SemaphoreSubmitInfo>,
        Vec<vk::CommandBufferSubmitInfo>,
        Vec<vk::SemaphoreSubmitInfo>,
    )> = Vec::with_capacity(batches.len() + 1);
    // The gate: the batch's waits, then the gate's done point.
    let gate: Option<(Vec<vk::SemaphoreSubmitInfo>, [vk::SemaphoreSubmitInfo; 1])> =
        gated.then(|| {
            (
                batches.iter().flat_map(|b| &b.waits).map(tr_sem).collect(),
                [vk::SemaphoreSubmitInfo {
                    semaphore: q.done[j],
                    value: gate_point.2,
                    stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
                    ..Default::default()
                }],
            )
        });
    if let Some((w, s)) = &gate {
        infos.push(submit_info2(w, &[], s));
    }
    // The chunks of a large input stage, each once the bridge has filled it.
    for (w, c) in &chunk_store {
        infos.push(submit_info2(w, c, &[]));
    }
    for b in &batches {
        let mut w: Vec<_> = if gated {
            Vec::new()
        } else {
            b.waits.iter().map(tr_sem).collect()
        };
        w.extend(bw.iter().copied());
        // With mirrored memory a submit holds one batch: the staging transfers go around it.
        let own = |cb: Option<vk::CommandBuffer>| {
            cb.map(|command_buffer| vk::CommandBufferSubmitInfo {
                command_buffer,
                ..Default::default()
            })
        };
        let c: Vec<_> = own(transfers.prologue)
            .into_iter()
            .chain(b.cbs.iter().map(|c| vk::CommandBufferSubmitInfo {
                command_buffer: cx.disp(c.command_buffer),
                device_mask: 0,
                ..*c
            }))
            .collect();
        let s: Vec<_> = if split {
            Vec::new()
        } else {
            b.signals.iter().map(tr_sem).collect()
        };
        if let Some(e) = own(transfers.epilogue) {
            // The epilogue reads the member's copy where the batch wrote it, through a buffer
            // aliasing the memory of the batch's own resources: a pipeline barrier does not
            // order that on every driver (lavapipe's copy does not wait for rendering into an
            // aliased image), a semaphore wait for the batch's completion does. The
            // application's signals go with it.
            let point = |value| vk::SemaphoreSubmitInfo {
                semaphore: q.done[j],
                value,
                stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
                ..Default::default()
            };
            keep.push((w, c, vec![point(work_point)]));
            keep.push((vec![point(work_point)], vec![e], s));
        } else {
            keep.push((w, c, s));
        }
    }
    // The done signal rides with the last batch (a batch of its own when there is none): a
    // signal's first scope holds every command submitted before it on the queue.
    // It goes last: once it is reached, so are the application's signals (members signal in
    // order), which waits on it from other members rely on (the host may signal the next value
    // at once, and a host signal must not pass a pending one).
    match keep.last_mut() {
        Some(last) => last.2.push(done),
        None => keep.push((bw.clone(), Vec::new(), vec![done])),
    }
    if split {
        // The application's signals, after every earlier batch of every member.
        let mut s: Vec<_> = batches
            .iter()
            .flat_map(|b| &b.signals)
            .map(tr_sem)
            .collect();
        s.push(vk::SemaphoreSubmitInfo {
            semaphore: q.done[j],
            value: signal_point.1,
            stage_mask: vk::PipelineStageFlags2::ALL_COMMANDS,
            ..Default::default()
        });
        keep.push((tail.infos(), Vec::new(), s));
    }
    for (i, (w, c, s)) in keep.iter().enumerate() {
        let (flags, p_next) = batches
            .get(i)
            // SAFETY: the application's chain, translated into the arena for the member.
            .map(|b| (b.flags, unsafe { tr::chain(&cx, b.p_next) }))
            .unwrap_or((vk::SubmitFlags::empty(), std::ptr::null()));
        infos.push(vk::SubmitInfo2 {
            p_next,
            flags,
            ..submit_info2(w, c, s)
        });
    }
    let submit2 = md
        .fns
        .queue_submit2
        .ok_or_else(|| crate::guard::missing("vkQueueSubmit2"))?;
    let apart = d.exec.fence_apart & (1 << j) != 0
        && (keep.iter().any(|k| !k.0.is_empty()) || !chunk_store.is_empty());
    debug_assert_eq!(
        infos.len(),
        keep.len() + usize::from(gated) + chunk_store.len()
    );
    let (batch_fence, own_fence) = if apart {
        (vk::Fence::null(), cx.nd(fence))
    } else {
        (cx.nd(fence), vk::Fence::null())
    };
    // SAFETY: every handle translated to member j's; arrays live until the call returns.
    let mut r = unsafe {
        submit2(
            q.handles[j],
            infos.len() as u32,
            infos.as_ptr(),
            batch_fence,
        )
    };
    if r == vk::Result::SUCCESS && own_fence != vk::Fence::null() {
        // SAFETY: a submit of no batches that only signals the member's fence.
        r = unsafe { submit2(q.handles[j], 0, std::ptr::null(), own_fence) };
    }
    d.staging.launched(transfers, next_done);
    if r != vk::Result::SUCCESS {
        // The batches did not run: their output stages hold nothing, and no reader may copy
        // from them.
        for s in &outputs {
            s.void();
        }
        if !outputs.is_empty() {
            for m in st.mirrors.values() {
                m.drop_direct(&outputs);
            }
        }
    }
    if r == vk::Result::ERROR_DEVICE_LOST {
        lose_member(
            d,
            &mut st,
            j,
            "vkQueueSubmit2 returned VK_ERROR_DEVICE_LOST",
        )?;
        return Err(vk::Result::ERROR_DEVICE_LOST);
    }
    if r != vk::Result::SUCCESS {
        // The done points handed out will never be signalled by the member: signal them from
        // the host, so that nothing (later batches' bridge waits, mirrored memory) waits for
        // them forever. The batches did not run; what they would have written is unchanged.
        release_points(md, signal_point, base);
        return Err(r);
    }
    st.links
        .submitted(&before.links, (j, q.done[j], done_point.1));
    st.links
        .submitted(&tail.links, (j, q.done[j], signal_point.1));
    if split {
        // The signals' done point is the tail's.
        for s in batches.iter().flat_map(|b| &b.signals) {
            if let Some(t) = st.timelines.get_mut(&s.semaphore.as_raw()) {
                if let Some(p) = t.signal_points.iter_mut().rev().find(|p| p.0 == s.value) {
                    p.1 = (j, signal_point.0, signal_point.1);
                }
            }
        }
    }
    carry_timelines(d, &mut st, &batches, j, signal_point);
    record_touches(d, &mut st, &access, (j, done_point.0, done_point.1));
    if !images.is_empty() {
        let (taken, of) = images.subresources_in;
        let done = (j, done_point.0, done_point.1);
        let (copied_in, copied_out) = match images.commit(&mut st.coherence, j, done) {
            Ok(n) => n,
            Err(e) => {
                if !st.coherence_failed {
                    st.coherence_failed = true;
                    crate::warn!(
                        "member {j}: the coherence tracker refused an image's change ({e})"
                    );
                }
                (0, 0)
            }
        };
        st.image_copies.0 += copied_in as u64;
        st.image_copies.1 += copied_out as u64;
        st.image_copies.2 += taken;
        st.image_copies.3 += of;
        if copied_in + copied_out > 0 {
            crate::debug!(
                "member {j}: {copied_in} image(s) copied in from another member ({taken} of their {of} subresource(s)), {copied_out} copied out"
            );
        }
    }
    if crate::log::enabled(crate::log::Level::Debug) {
        crate::debug!(
            "submit on member {j}: {} batch(es), {} command buffer(s), touching {}, ordered after {} ({} unfinished), {} wait(s), {} signal(s), {} consumed elsewhere, bridge {}, {} shared semaphore(s)",
            batches.len(),
            batches.iter().map(|b| b.cbs.len()).sum::<usize>(),
            access.describe(),
            match (strict, split) {
                (true, _) => "every earlier batch",
                (false, false) => "the batches it depends on",
                (false, true) => "the batches it depends on, its signals after every earlier batch",
            },
            edge_count,
            batches.iter().map(|b| b.waits.len()).sum::<usize>(),
            batches.iter().map(|b| b.signals.len()).sum::<usize>(),
            placed.consume.len(),
            bridge_wait.map_or("no".to_string(), |(_, v)| format!("value {v}")),
            before.links.len() + tail.links.len()
        );
    }
    st.placed[j] += 1;
    st.last_placed = Some(j);
    if !st.swapchain_images.is_empty() {
        // The frames it draws stay on `j` until presented.
        let drawn: Vec<u64> = access
            .memory
            .keys()
            .filter(|k| st.swapchain_images.contains(k))
            .copied()
            .collect();
        for k in drawn {
            st.frame_owner.insert(k, j);
        }
    }
    // SAFETY: a live fence of the application (or null, refused by `get`).
    if let Ok(f) = unsafe { ObjectBase::get(fence.as_raw()) } {
        f.set_last(Some(j));
    }
    take_over(&mut st, &notes, j);
    Ok(vk::Result::SUCCESS)
}

/// Signals member `md`'s done timeline `point` from the host (a submit that failed), once the
/// batches before it (up to `before`) completed: a host signal must not pass pending ones.
fn release_points(md: &MemberDevice, (sem, value): (vk::Semaphore, u64), before: u64) {
    if counter(md, sem) >= value {
        return;
    }
    if host_wait(md, sem, before, 10_000_000_000) != vk::Result::SUCCESS {
        crate::warn!(
            "member {}: earlier batches did not finish; done points not released",
            md.index
        );
        return;
    }
    let r = host_signal(md, sem, value);
    if r != vk::Result::SUCCESS {
        crate::warn!(
            "member {}: releasing the done points of a failed submit failed ({r:?})",
            md.index
        );
    }
}

type SubmitFn<I> = unsafe extern "system" fn(vk::Queue, u32, *const I, vk::Fence) -> vk::Result;

/// A submit on one executing member: translated and forwarded as it is.
#[allow(clippy::too_many_arguments)]
fn forward_single<I>(
    q: &Queue,
    d: &Device,
    count: u32,
    submits: *const I,
    fence: vk::Fence,
    fix: unsafe fn(&crate::conv::Cx, *mut I),
    get: impl Fn(&MemberDevice) -> Option<SubmitFn<I>>,
    waits: impl Fn(&I) -> bool,
    name: &str,
) -> Result<vk::Result, vk::Result> {
    d.exec.check()?;
    let md = d.primary();
    let arena = Arena::scope();
    let cx = md.cx(&arena);
    let f = get(md).ok_or_else(|| crate::guard::missing(name))?;
    let apart = !fence.is_null()
        && d.exec.fence_apart & (1 << md.index) != 0
        // SAFETY: `count` valid submit infos.
        && (0..count as usize).any(|i| waits(unsafe { &*submits.add(i) }));
    let (batch_fence, own_fence) = if apart {
        (vk::Fence::null(), cx.nd(fence))
    } else {
        (cx.nd(fence), vk::Fence::null())
    };
    // SAFETY: submits translated for the member.
    let mut r = unsafe {
        f(
            q.handles[md.index],
            count,
            cx.array(submits, count as usize, fix),
            batch_fence,
        )
    };
    if r == vk::Result::SUCCESS && own_fence != vk::Fence::null() {
        // SAFETY: a submit of no batches that only signals the fence (see `Exec::fence_apart`).
        r = unsafe { f(q.handles[md.index], 0, std::ptr::null(), own_fence) };
    }
    if r.as_raw() < 0 {
        Err(r)
    } else {
        Ok(r)
    }
}

/// `vkQueueSubmit` and `vkQueueSubmit2`: forwarded as they are to the executing member, or
/// placed and rewritten by `submit_multi`.
///
/// # Safety
/// `count` valid submit infos of the command `name`.
#[allow(clippy::too_many_arguments)]
unsafe fn submit<I>(
    name: &'static str,
    queue: vk::Queue,
    count: u32,
    submits: *const I,
    fence: vk::Fence,
    fix: unsafe fn(&crate::conv::Cx, *mut I),
    get: impl Fn(&MemberDevice) -> Option<SubmitFn<I>>,
    waits: impl Fn(&I) -> bool,
    batch: unsafe fn(&I) -> Batch,
) -> vk::Result {
    crate::guard::result(name, || {
        // SAFETY: a live queue.
        let (q, d) = unsafe { Queue::resolve(queue)? };
        if !d.exec.multi {
            return forward_single(q, d, count, submits, fence, fix, get, waits, name);
        }
        let batches = (0..count as usize)
            // SAFETY: `count` valid submit infos.
            .map(|i| unsafe { batch(&*submits.add(i)) })
            .collect();
        submit_multi(q, d, batches, fence)
    })
}

/// # Safety
/// Arguments valid for `vkQueueSubmit`.
pub unsafe extern "system" fn queue_submit(
    queue: vk::Queue,
    count: u32,
    submits: *const vk::SubmitInfo,
    fence: vk::Fence,
) -> vk::Result {
    // SAFETY: forwarded contract.
    unsafe {
        submit(
            "vkQueueSubmit",
            queue,
            count,
            submits,
            fence,
            tr::fix_submit_info,
            |md| md.fns.queue_submit,
            |s| s.wait_semaphore_count != 0,
            batch_from_submit,
        )
    }
}

/// # Safety
/// Arguments valid for `vkQueueSubmit2`.
pub unsafe extern "system" fn queue_submit2(
    queue: vk::Queue,
    count: u32,
    submits: *const vk::SubmitInfo2,
    fence: vk::Fence,
) -> vk::Result {
    // SAFETY: forwarded contract.
    unsafe {
        submit(
            "vkQueueSubmit2",
            queue,
            count,
            submits,
            fence,
            tr::fix_submit_info2,
            |md| md.fns.queue_submit2,
            |s| s.wait_semaphore_info_count != 0,
            batch_from_submit2,
        )
    }
}

/// `vkCmdExecuteCommands`: forwarded; the secondaries' notes join the primary's.
///
/// # Safety
/// Arguments valid for `vkCmdExecuteCommands`.
pub unsafe extern "system" fn cmd_execute_commands(
    command_buffer: vk::CommandBuffer,
    count: u32,
    cbs: *const vk::CommandBuffer,
) {
    crate::guard::void("vkCmdExecuteCommands", || {
        // SAFETY: a live command buffer.
        let obj = unsafe { CommandBuffer::resolve_targets(command_buffer)? };
        let arena = Arena::scope();
        if obj.target_count > 1 {
            let mut notes = obj.notes.lock();
            let mut secondaries = Vec::with_capacity(count as usize);
            for i in 0..count as usize {
                // SAFETY: `count` live secondary command buffers.
                if let Ok((s, _)) = unsafe { CommandBuffer::resolve(*cbs.add(i)) } {
                    notes.extend(s.notes.lock().iter().copied());
                    secondaries.push(s);
                }
            }
            crate::access::execute_commands(obj, &secondaries);
            crate::layout::execute_commands(obj, &secondaries);
        }
        for t in obj.targets() {
            let md = t.member();
            let cx = md.cx(&arena);
            let f = md
                .fns
                .cmd_execute_commands
                .ok_or_else(|| crate::guard::missing("vkCmdExecuteCommands"))?;
            // SAFETY: the member's secondaries.
            unsafe { f(t.handle, count, cx.disp_array(cbs, count as usize)) };
        }
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkQueueWaitIdle`.
pub unsafe extern "system" fn queue_wait_idle(queue: vk::Queue) -> vk::Result {
    crate::guard::result("vkQueueWaitIdle", || {
        // SAFETY: a live queue.
        let (q, d) = unsafe { Queue::resolve(queue)? };
        d.exec.check()?;
        let members: Vec<&MemberDevice> = if d.exec.multi {
            d.members.iter().collect()
        } else {
            vec![d.primary()]
        };
        for md in members {
            if d.exec.lost_members.load(Ordering::Acquire) & (1 << md.index) != 0 {
                continue;
            }
            let f = md
                .fns
                .queue_wait_idle
                .ok_or_else(|| crate::guard::missing("vkQueueWaitIdle"))?;
            // SAFETY: the member's queue.
            let r = unsafe { f(q.handles[md.index]) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        settle_finished(d);
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkDeviceWaitIdle`.
pub unsafe extern "system" fn device_wait_idle(device: vk::Device) -> vk::Result {
    crate::guard::result("vkDeviceWaitIdle", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        d.exec.check()?;
        for md in &d.members {
            if d.exec.lost_members.load(Ordering::Acquire) & (1 << md.index) != 0 {
                continue;
            }
            let f = md
                .fns
                .device_wait_idle
                .ok_or_else(|| crate::guard::missing("vkDeviceWaitIdle"))?;
            // SAFETY: the member device.
            let r = unsafe { f(md.handle) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        flush(d);
        settle_finished(d);
        Ok(vk::Result::SUCCESS)
    })
}

/// `vkGetFenceStatus`: asked of the member that ran the fence's last submit; a signalled fence
/// is a host synchronisation (mirrored memory is settled).
///
/// # Safety
/// Arguments valid for `vkGetFenceStatus`.
pub unsafe extern "system" fn get_fence_status(device: vk::Device, fence: vk::Fence) -> vk::Result {
    crate::guard::result("vkGetFenceStatus", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        let md = d
            .member(waiter_member(d, fence.as_raw()))
            .ok_or(vk::Result::ERROR_DEVICE_LOST)?;
        let f = md
            .fns
            .get_fence_status
            .ok_or_else(|| crate::guard::missing("vkGetFenceStatus"))?;
        // SAFETY: the member's fence.
        synced(d, unsafe { f(md.handle, nd(fence, md.index)) })
    })
}

/// The result of a host wait or query: a success settles mirrored memory (the host may now
/// read what finished batches wrote); an error is returned as one.
fn synced(d: &Device, r: vk::Result) -> Result<vk::Result, vk::Result> {
    if r == vk::Result::SUCCESS {
        settle_finished(d);
    }
    if r.as_raw() < 0 {
        Err(r)
    } else {
        Ok(r)
    }
}

/// The member whose copy of `raw` a host wait uses.
fn waiter_member(d: &Device, raw: u64) -> usize {
    // SAFETY: a live vkfuse object.
    unsafe { ObjectBase::get(raw) }
        .ok()
        .and_then(|o| o.last_member())
        .unwrap_or(d.primary().index)
}

fn now_ns() -> u64 {
    static START: once_cell::sync::Lazy<std::time::Instant> =
        once_cell::sync::Lazy::new(std::time::Instant::now);
    START.elapsed().as_nanos() as u64
}

/// Host waits over groups of objects on different members. `wait(member, items, timeout)`
/// waits on one member. `all`: every group in turn with what is left of the timeout; else the
/// groups are polled with short blocking waits (1 ms) until one is done.
fn wait_groups<T: Copy>(
    groups: &[(usize, Vec<T>)],
    all: bool,
    timeout: u64,
    mut wait: impl FnMut(usize, &[T], u64) -> vk::Result,
) -> vk::Result {
    if groups.len() == 1 {
        return wait(groups[0].0, &groups[0].1, timeout);
    }
    let deadline = now_ns().saturating_add(timeout);
    if all {
        for (m, items) in groups {
            let left = deadline.saturating_sub(now_ns());
            let r = wait(*m, items, if timeout == u64::MAX { u64::MAX } else { left });
            if r != vk::Result::SUCCESS {
                return r;
            }
        }
        return vk::Result::SUCCESS;
    }
    loop {
        for (m, items) in groups {
            let r = wait(*m, items, 0);
            if r != vk::Result::TIMEOUT {
                return r;
            }
        }
        let left = deadline.saturating_sub(now_ns());
        if left == 0 {
            return vk::Result::TIMEOUT;
        }
        let (m, items) = &groups[0];
        let r = wait(*m, items, left.min(1_000_000));
        if r != vk::Result::TIMEOUT {
            return r;
        }
    }
}

fn group<T>(items: impl Iterator<Item = (usize, T)>) -> Vec<(usize, Vec<T>)> {
    let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
    for (m, x) in items {
        match groups.iter_mut().find(|g| g.0 == m) {
            Some(g) => g.1.push(x),
            None => groups.push((m, vec![x])),
        }
    }
    groups
}

/// # Safety
/// Arguments valid for `vkWaitForFences`.
pub unsafe extern "system" fn wait_for_fences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
    wait_all: vk::Bool32,
    timeout: u64,
) -> vk::Result {
    crate::guard::result("vkWaitForFences", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        d.exec.check()?;
        // SAFETY: `count` fences.
        let list = unsafe { std::slice::from_raw_parts(fences, count as usize) };
        let groups = group(list.iter().map(|f| (waiter_member(d, f.as_raw()), *f)));
        let r = wait_groups(&groups, wait_all != 0, timeout, |m, fs, t| {
            let Some(md) = d.member(m) else {
                return vk::Result::ERROR_DEVICE_LOST;
            };
            let Some(f) = md.fns.wait_for_fences else {
                return crate::guard::missing("vkWaitForFences");
            };
            let member: Vec<vk::Fence> = fs.iter().map(|x| nd(*x, m)).collect();
            // SAFETY: the member's fences.
            unsafe { f(md.handle, member.len() as u32, member.as_ptr(), wait_all, t) }
        });
        synced(d, r)
    })
}

/// # Safety
/// Arguments valid for `vkResetFences`.
pub unsafe extern "system" fn reset_fences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
) -> vk::Result {
    crate::guard::result("vkResetFences", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        let arena = Arena::scope();
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .reset_fences
                .ok_or_else(|| crate::guard::missing("vkResetFences"))?;
            // SAFETY: the member's fences.
            let r = unsafe { f(md.handle, count, cx.nd_array(fences, count as usize)) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        for i in 0..count as usize {
            // SAFETY: `count` live fences.
            if let Ok(o) = unsafe { ObjectBase::get((*fences.add(i)).as_raw()) } {
                o.set_last(None);
            }
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// Arguments valid for `vkCreateSemaphore`.
pub unsafe extern "system" fn create_semaphore(
    device: vk::Device,
    ci: *const vk::SemaphoreCreateInfo,
    alloc: *const vk::AllocationCallbacks,
    out: *mut vk::Semaphore,
) -> vk::Result {
    crate::guard::result("vkCreateSemaphore", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        let arena = Arena::scope();
        let mut obj = ObjectBase::new(vk::ObjectType::SEMAPHORE);
        let undo = |obj: &ObjectBase| {
            for md in &d.members {
                destroy_member_semaphore(md, vk::Semaphore::from_raw(obj.handles[md.index]), alloc);
            }
        };
        for md in &d.members {
            let cx = md.cx(&arena);
            let f = md
                .fns
                .create_semaphore
                .ok_or_else(|| crate::guard::missing("vkCreateSemaphore"))?;
            let mut s = vk::Semaphore::null();
            // SAFETY: a valid create info; its chain translated for the member.
            let r = unsafe {
                let mut copy = *ci;
                copy.p_next = tr::chain(&cx, copy.p_next);
                f(md.handle, &copy, alloc, &mut s)
            };
            if r != vk::Result::SUCCESS {
                undo(&obj);
                return Err(r);
            }
            obj.handles[md.index] = s.as_raw();
        }
        let raw = obj.into_raw();
        // SAFETY: a valid create info chain.
        if d.exec.multi && unsafe { is_timeline(ci) } {
            d.exec
                .state
                .lock()
                .timelines
                .insert(raw, Timeline::default());
        }
        // SAFETY: valid output pointer.
        unsafe { *out = vk::Semaphore::from_raw(raw) };
        Ok(vk::Result::SUCCESS)
    })
}

/// # Safety
/// `ci` is a valid VkSemaphoreCreateInfo.
unsafe fn is_timeline(ci: *const vk::SemaphoreCreateInfo) -> bool {
    // SAFETY: a valid chain.
    unsafe {
        let mut p = (*ci).p_next as *const vk::BaseInStructure;
        while !p.is_null() {
            if (*p).s_type == vk::StructureType::SEMAPHORE_TYPE_CREATE_INFO {
                return (*(p as *const vk::SemaphoreTypeCreateInfo)).semaphore_type
                    == vk::SemaphoreType::TIMELINE;
            }
            p = (*p).p_next;
        }
    }
    false
}

/// # Safety
/// Arguments valid for `vkDestroySemaphore`.
pub unsafe extern "system" fn destroy_semaphore(
    device: vk::Device,
    sem: vk::Semaphore,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroySemaphore", || {
        if sem.is_null() {
            return Ok(());
        }
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        if d.exec.multi {
            d.exec.state.lock().timelines.remove(&sem.as_raw());
            // A carried timeline value may still name this semaphore.
            flush(d);
        }
        for md in &d.members {
            destroy_member_semaphore(md, nd(sem, md.index), alloc);
        }
        // SAFETY: made by create_semaphore; no longer used.
        unsafe { ObjectBase::free(sem.as_raw()) };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkWaitSemaphores`.
pub unsafe extern "system" fn wait_semaphores(
    device: vk::Device,
    info: *const vk::SemaphoreWaitInfo,
    timeout: u64,
) -> vk::Result {
    crate::guard::result("vkWaitSemaphores", || {
        // SAFETY: a live device and a valid wait info.
        let (d, info) = unsafe { (Device::resolve(device)?, &*info) };
        d.exec.check()?;
        // SAFETY: semaphoreCount semaphores and values.
        let (sems, values) = unsafe {
            (
                std::slice::from_raw_parts(info.p_semaphores, info.semaphore_count as usize),
                std::slice::from_raw_parts(info.p_values, info.semaphore_count as usize),
            )
        };
        let primary = d.primary().index;
        let items: Vec<(usize, (vk::Semaphore, u64))> = if d.exec.multi {
            let mut st = d.exec.state.lock();
            sems.iter()
                .zip(values)
                .map(|(s, v)| {
                    let t = st.timelines.entry(s.as_raw()).or_default();
                    let m = at_or_above(&t.signals, *v);
                    let m = m.unwrap_or_else(|| {
                        t.waiters.push((*v, primary));
                        primary
                    });
                    (m, (*s, *v))
                })
                .collect()
        } else {
            sems.iter()
                .zip(values)
                .map(|(s, v)| (primary, (*s, *v)))
                .collect()
        };
        let groups = group(items.into_iter());
        let any = info.flags.contains(vk::SemaphoreWaitFlags::ANY);
        let r = wait_groups(&groups, !any, timeout, |m, list, t| {
            let Some(md) = d.member(m) else {
                return vk::Result::ERROR_DEVICE_LOST;
            };
            let Some(f) = md.fns.wait_semaphores else {
                return crate::guard::missing("vkWaitSemaphores");
            };
            let s: Vec<vk::Semaphore> = list.iter().map(|(x, _)| nd(*x, m)).collect();
            let v: Vec<u64> = list.iter().map(|(_, v)| *v).collect();
            let w = vk::SemaphoreWaitInfo {
                flags: info.flags,
                semaphore_count: s.len() as u32,
                p_semaphores: s.as_ptr(),
                p_values: v.as_ptr(),
                ..Default::default()
            };
            // SAFETY: the member's semaphores.
            unsafe { f(md.handle, &w, t) }
        });
        if r == vk::Result::SUCCESS {
            signalled_batches_done(d, sems);
        }
        synced(d, r)
    })
}

/// `vkSignalSemaphore`: every member's copy that is behind is signalled.
///
/// # Safety
/// Arguments valid for `vkSignalSemaphore`.
pub unsafe extern "system" fn signal_semaphore(
    device: vk::Device,
    info: *const vk::SemaphoreSignalInfo,
) -> vk::Result {
    crate::guard::result("vkSignalSemaphore", || {
        // SAFETY: a live device and a valid signal info.
        let (d, info) = unsafe { (Device::resolve(device)?, &*info) };
        let mut st = d.exec.state.lock();
        let raw = info.semaphore.as_raw();
        if let Some(t) = st.timelines.get_mut(&raw) {
            t.waiters.retain(|(v, _)| *v > info.value);
        }
        for md in &d.members {
            let s = nd(vk::Semaphore::from_raw(raw), md.index);
            if d.exec.multi && counter(md, s) >= info.value {
                continue;
            }
            let f = md
                .fns
                .signal_semaphore
                .ok_or_else(|| crate::guard::missing("vkSignalSemaphore"))?;
            let mi = vk::SemaphoreSignalInfo {
                semaphore: s,
                ..*info
            };
            // SAFETY: the member's copy, behind the value.
            let r = unsafe { f(md.handle, &mi) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
        }
        Ok(vk::Result::SUCCESS)
    })
}

/// `vkSetEvent` from the host: first the host's writes into mirrored memory since the running
/// batches were made ready reach their members' copies (`Mirror::publish_host_writes`: a batch
/// may wait for the event on the device and then read them), then every member's copy of the
/// event is set.
///
/// # Safety
/// Arguments valid for `vkSetEvent`.
pub unsafe extern "system" fn set_event(device: vk::Device, event: vk::Event) -> vk::Result {
    crate::guard::result("vkSetEvent", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        publish_host_writes(d);
        let mut res = vk::Result::SUCCESS;
        for md in &d.members {
            let f = md
                .fns
                .set_event
                .ok_or_else(|| crate::guard::missing("vkSetEvent"))?;
            // SAFETY: the member's copy of the application's event.
            let r = unsafe { f(md.handle, nd(event, md.index)) };
            if r.as_raw() < 0 {
                return Err(r);
            }
            if md.index == d.members[0].index {
                res = r;
            }
        }
        Ok(res)
    })
}

/// Publishes the host's writes into every mirrored allocation to the members' copies that
/// running batches use (before the host sets an event), while some batch that waits for events
/// the host may set has not finished: no other batch can be waiting for this one.
fn publish_host_writes(d: &Device) {
    let list: Vec<Arc<Mirror>> = {
        let mut st = d.exec.state.lock();
        st.host_event_batches
            .retain(|(m, sem, value)| d.member(*m).is_some_and(|md| counter(md, *sem) < *value));
        if st.mirrors.is_empty() || st.host_event_batches.is_empty() {
            return;
        }
        st.mirrors.values().cloned().collect()
    };
    let published: usize = list.iter().map(|m| m.publish_host_writes(d)).sum();
    if published > 0 {
        crate::debug!(
            "mirrored memory at a host-set event: {published} byte(s) the host wrote published to running batches"
        );
    }
}

/// `vkGetSemaphoreCounterValue`: the highest value of the members' copies (each copy has seen
/// a subset of the signals, in order).
///
/// # Safety
/// Arguments valid for `vkGetSemaphoreCounterValue`.
pub unsafe extern "system" fn get_semaphore_counter_value(
    device: vk::Device,
    sem: vk::Semaphore,
    out: *mut u64,
) -> vk::Result {
    crate::guard::result("vkGetSemaphoreCounterValue", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        d.exec.check()?;
        let members: Vec<&MemberDevice> = if d.exec.multi {
            d.members.iter().collect()
        } else {
            vec![d.primary()]
        };
        let mut best = 0;
        for md in members {
            let f = md
                .fns
                .get_semaphore_counter_value
                .ok_or_else(|| crate::guard::missing("vkGetSemaphoreCounterValue"))?;
            let mut v = 0;
            // SAFETY: the member's copy.
            let r = unsafe { f(md.handle, nd(sem, md.index), &mut v) };
            if r != vk::Result::SUCCESS {
                return Err(r);
            }
            best = best.max(v);
        }
        signalled_batches_done(d, std::slice::from_ref(&sem));
        settle_finished(d);
        // SAFETY: valid output pointer.
        unsafe { *out = best };
        Ok(vk::Result::SUCCESS)
    })
}

/// vkQueuePresentKHR with batches on several members: the frame was rendered on the member
/// whose batch signalled the present's wait semaphores (else the member of the last batch). If
/// that is not the presenting member, the frame is copied over (`present.rs`) and the returned
/// semaphores, signalled by the copy on the presenting member, replace the present's waits.
///
/// # Safety
/// `info` is a valid present info.
pub(crate) unsafe fn cross_member_present(
    d: &Device,
    q: &Queue,
    info: &vk::PresentInfoKHR,
) -> Result<Option<Vec<vk::Semaphore>>, vk::Result> {
    d.exec.check()?;
    let p = d.primary().index;
    let mut st = d.exec.state.lock();
    // The frames are drawn: the next ones in these images may go to any member.
    for i in 0..info.swapchain_count as usize {
        // SAFETY: swapchainCount live vkfuse swapchains and image indices.
        let (sc, index) = unsafe { (*info.p_swapchains.add(i), *info.p_image_indices.add(i)) };
        // SAFETY: a vkfuse swapchain is a `Swapchain` made by vkCreateSwapchainKHR.
        let s = unsafe { &*(sc.as_raw() as *const crate::wsi::Swapchain) };
        if let Some(raw) = s.images.lock().get(index as usize) {
            st.frame_owner.remove(raw);
        }
    }
    let waits: &[vk::Semaphore] = if info.p_wait_semaphores.is_null() {
        &[]
    } else {
        // SAFETY: waitSemaphoreCount semaphores.
        unsafe {
            std::slice::from_raw_parts(info.p_wait_semaphores, info.wait_semaphore_count as usize)
        }
    };
    let mut on_p = Vec::new();
    let mut others: Vec<(usize, vk::Semaphore)> = Vec::new();
    for s in waits {
        let Some(o) = sem_obj(*s) else { continue };
        let m = o.last_member().unwrap_or(p);
        o.set_last(None);
        let h = vk::Semaphore::from_raw(o.handles[m]);
        if m == p {
            on_p.push(h);
        } else {
            others.push((m, h));
        }
    }
    let r = others
        .first()
        .map(|x| x.0)
        .or_else(|| {
            if waits.is_empty() {
                st.last_placed
            } else {
                None
            }
        })
        .filter(|m| *m != p);
    let Some(r) = r else {
        return Ok(None);
    };
    for (m, h) in &others {
        if *m != r {
            submit_internal(d, &mut st, q, *m, &[*h], &[], &[])?;
        }
    }
    let r_waits: Vec<vk::Semaphore> = others
        .iter()
        .filter(|(m, _)| *m == r)
        .map(|(_, h)| *h)
        .collect();
    let ready = crate::present::frames_from(d, q, info, r, &r_waits, |m, w, cbs, sigs| {
        if m == p {
            let bridge = bridge_to(d, &mut st, p, q.done[p])?;
            submit_internal_bridged(d, &mut st, q, m, &on_p, bridge, cbs, sigs)
        } else {
            submit_internal(d, &mut st, q, m, w, cbs, sigs)
        }
    })?;
    Ok(Some(ready))
}

/// `vkGetQueryPoolResults`: each query is answered by the member that ran it (runs of queries
/// on one member in one call).
///
/// # Safety
/// Arguments valid for `vkGetQueryPoolResults`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn get_query_pool_results(
    device: vk::Device,
    pool: vk::QueryPool,
    first: u32,
    count: u32,
    size: usize,
    data: *mut std::ffi::c_void,
    stride: vk::DeviceSize,
    flags: vk::QueryResultFlags,
) -> vk::Result {
    crate::guard::result("vkGetQueryPoolResults", || {
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        d.exec.check()?;
        let primary = d.primary().index;
        // The owners of the queries asked for, read once.
        let owners: Vec<u8> = if d.exec.multi {
            let st = d.exec.state.lock();
            st.queries.get(&pool.as_raw()).map_or(Vec::new(), |o| {
                o.iter()
                    .skip(first as usize)
                    .take(count as usize)
                    .copied()
                    .collect()
            })
        } else {
            Vec::new()
        };
        let owner = |q: u32| -> usize {
            owners
                .get((q - first) as usize)
                .filter(|m| **m != NO_MEMBER)
                .map_or(primary, |m| usize::from(*m))
        };
        let mut res = vk::Result::SUCCESS;
        let mut q = first;
        while q < first + count {
            let m = owner(q);
            let mut end = q + 1;
            while end < first + count && owner(end) == m {
                end += 1;
            }
            let md = d.member(m).ok_or(vk::Result::ERROR_DEVICE_LOST)?;
            let f = md
                .fns
                .get_query_pool_results
                .ok_or_else(|| crate::guard::missing("vkGetQueryPoolResults"))?;
            let offset = (q - first) as usize * stride as usize;
            let len = if end == first + count {
                size.saturating_sub(offset)
            } else {
                (end - q) as usize * stride as usize
            };
            // SAFETY: the member's pool; a sub-range of the application's output, `stride`
            // apart as the application laid it out.
            let r = unsafe {
                f(
                    md.handle,
                    nd(pool, m),
                    q,
                    end - q,
                    len,
                    data.cast::<u8>().add(offset).cast(),
                    stride,
                    flags,
                )
            };
            if r.as_raw() < 0 {
                return Err(r);
            }
            if r != vk::Result::SUCCESS {
                res = r;
            }
            q = end;
        }
        Ok(res)
    })
}

/// # Safety
/// Arguments valid for `vkDestroyQueryPool`.
pub unsafe extern "system" fn destroy_query_pool(
    device: vk::Device,
    pool: vk::QueryPool,
    alloc: *const vk::AllocationCallbacks,
) {
    crate::guard::void("vkDestroyQueryPool", || {
        if pool.is_null() {
            return Ok(());
        }
        // SAFETY: a live device.
        let d = unsafe { Device::resolve(device)? };
        d.exec.state.lock().queries.remove(&pool.as_raw());
        for md in &d.members {
            let h = nd(pool, md.index);
            if let (false, Some(f)) = (h.is_null(), md.fns.destroy_query_pool) {
                // SAFETY: the member's pool, no longer used.
                unsafe { f(md.handle, h, alloc) };
            }
        }
        // SAFETY: made by the generated vkCreateQueryPool; no longer used.
        unsafe { ObjectBase::free(pool.as_raw()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(first: u32, count: u32, read: bool) -> Note {
        Note {
            raw: 7,
            first,
            count,
            kind: if read {
                NoteKind::Read
            } else {
                NoteKind::Write
            },
        }
    }

    #[test]
    fn a_write_covers_the_queries_inside_it() {
        assert!(note(0, 0, false).covers(&note(3, 2, true)));
        assert!(note(2, 4, false).covers(&note(3, 2, true)));
        assert!(note(3, 2, false).covers(&note(3, 2, true)));
        assert!(!note(3, 1, false).covers(&note(3, 2, true)));
        assert!(!note(4, 4, false).covers(&note(3, 2, true)));
        // A read of the whole object is covered only by a write of the whole object.
        assert!(!note(0, 100, false).covers(&note(0, 0, true)));
        let other = Note {
            raw: 8,
            ..note(0, 0, false)
        };
        assert!(!other.covers(&note(3, 2, true)));
    }

    /// Fake members: `done[m]` says whether a wait on member m succeeds at once.
    fn fake(done: &[bool]) -> impl FnMut(usize, &[u32], u64) -> vk::Result + '_ {
        move |m, _items, _timeout| {
            if done[m] {
                vk::Result::SUCCESS
            } else {
                vk::Result::TIMEOUT
            }
        }
    }

    #[test]
    fn waiting_for_all_needs_every_member() {
        let groups = vec![(0, vec![1]), (1, vec![2])];
        assert_eq!(
            wait_groups(&groups, true, 1_000, fake(&[true, true])),
            vk::Result::SUCCESS
        );
        assert_eq!(
            wait_groups(&groups, true, 1_000, fake(&[true, false])),
            vk::Result::TIMEOUT
        );
    }

    #[test]
    fn waiting_for_any_needs_one_member_and_times_out() {
        let groups = vec![(0, vec![1]), (1, vec![2])];
        assert_eq!(
            wait_groups(&groups, false, 1_000_000, fake(&[false, true])),
            vk::Result::SUCCESS
        );
        let start = std::time::Instant::now();
        assert_eq!(
            wait_groups(&groups, false, 3_000_000, fake(&[false, false])),
            vk::Result::TIMEOUT
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn groups_keep_members_apart() {
        let g = group([(1, 'a'), (0, 'b'), (1, 'c')].into_iter());
        assert_eq!(g, vec![(1, vec!['a', 'c']), (0, vec!['b'])]);
    }
    /// Signals kept by value answer "the first signal at or above" as the scan over every
    /// signal did, in submission order or not, equal values keeping their order.
    #[test]
    fn signals_by_value() {
        let mut list: Vec<(u64, usize)> = Vec::new();
        for (v, m) in [(2, 0), (4, 1), (3, 0), (9, 1), (4, 0), (1, 1)] {
            insert_by_value(&mut list, (v, m));
        }
        assert_eq!(list, [(1, 1), (2, 0), (3, 0), (4, 1), (4, 0), (9, 1)]);
        let scan = |value: u64| {
            list.iter()
                .filter(|(v, _)| *v >= value)
                .min_by_key(|(v, _)| *v)
                .map(|(_, m)| *m)
        };
        for value in 0..11 {
            assert_eq!(at_or_above(&list, value), scan(value), "value {value}");
        }
        assert_eq!(at_or_above(&list, 4), Some(1));
        assert_eq!(at_or_above(&list, 10), None);
    }
}
