//! `compute_split` and `hybrid`: one dispatch runs as slices of its workgroups on every
//! member (issue 4).
//!
//! - **Recording.** A command buffer of a device that splits keeps a log of its
//!   compute commands beside the member recordings: pipeline and descriptor set binds, push
//!   constants, dispatches (each with its own access set, what its add-atomic bindings lead
//!   to, and its bindings of own bytes), indirect dispatches (with what they would be as
//!   dispatches, [`Pending`]), buffer copies, updates and fills, copies between buffers and
//!   images and between images, blits, image clears (each run whole on the first member), memory
//!   barriers and image barriers ([`Step::Images`]: every member replays them once, in the
//!   round whose part of the log holds them ([`spans`]), also in whole rounds, where the
//!   others record nothing else; a layout change ends a round). A command that the log
//!   cannot replay breaks it (queue family ownership transfers, event waits, push
//!   descriptors, resolves), and so does any access the log's commands did not make
//!   (`AccessSet::fed` against [`Log::own`]): such a command buffer runs whole, as `single`
//!   places it. Secondary command buffers keep logs too, which `vkCmdExecuteCommands`
//!   appends to the primary's ([`Log::append`]).
//! - **Which dispatches split.** Those whose pipeline's shader analysis finds nothing that
//!   slices on several devices would change (`Analysis::split_refusal`: atomics other than
//!   unused 32-bit adds, opaque uses, buffer device addresses, `gl_NumWorkGroups` read
//!   whole), along the dimension with the most groups (at least two) whose
//!   `gl_NumWorkGroups` component the shader does not read; indirect dispatches where their
//!   group counts are at rest on the host at submit ([`Log::resolve`]). Under
//!   `compute_split`, indirect dispatches whose counts are not known then split by workgroup
//!   slices where their pipeline has variants for it ([`slice_indirect`]): each member
//!   dispatches only its slice's workgroups ([`parts`]), from counts it narrows on the
//!   device (`narrow.rs`), with its variant mapping their ids back; where that cannot be
//!   (the shader reads `gl_NumWorkGroups.x`, say), it dispatches the whole grid with a
//!   variant whose workgroups outside its slice return at once (`vkfuse_shader::slice`).
//!   The others run whole on the first member.
//! - **Rounds.** At submit, the log's dispatches form rounds ([`rounds`]): runs of split
//!   dispatches none of which touches what another of the run writes, or runs of whole
//!   dispatches. Bindings whose every access the shader analysis keeps to each invocation's
//!   own bytes ([`OwnPart`], `y[i] = a * x[i] + y[i]`) do not count against a run where the
//!   dispatches are cut the same way: each member's slices then touch what its own slices
//!   before touched (the merge between them is lazy: there is none). Each member records
//!   one command buffer per round (the log replayed, its slices of the round's dispatches
//!   with `vkCmdDispatchBase`, timestamps around them for the balance), and each round waits
//!   for every member's previous round.
//! - **Merge.** Where the members share the memory, the slices' writes land in the same
//!   bytes: a race-free dispatch without atomics needs no merge (add atomics into shared
//!   memory run whole). Mirrored memory is kept coherent by [`Merge`] on the bridge thread:
//!   the first member's copy is the batch's, the others get what a round touches from it
//!   before the round, and their changes (by diff, and sums of deltas for add atomics) go
//!   back into it after. A binding's own bytes ([`OwnPart`]) go exactly: each other member
//!   gets and gives back only its slices' bytes, copied whole, without a snapshot or diff.
//!   Images copied between drivers merge the same way through packed copies in host memory,
//!   one per member ([`Copies::Stages`]), which each member's rounds copy into its image
//!   before their work and back after it, in the layouts the round starts and ends with
//!   (`images::Image::round_layouts`); a barrier from `UNDEFINED` of such an image keeps what
//!   was copied in ([`Kept`]), so that every member's copy holds the same bytes. Copies reached only through staging buffers (the
//!   staging tier) get the same: a stage per member over what the batch touches
//!   ([`Copies::Mirror`]'s `staged`), which each member's rounds copy into its copy before
//!   their work and back after it ([`Merge::staged_copies`]); the first member's copy is
//!   copied out into its stage before the first round ([`Merge::staged_lead_in`]) and gets
//!   the merged stage back at the join.
//!
//! The member command buffers come from pools of vkfuse's own (`exec.rs`), one per member and
//! queue family, and are reused once their round finished.

use std::sync::Arc;

use ash::vk;
use ash::vk::Handle as _;
use vkfuse_memory::RangeSet;

use crate::access::AccessSet;
use crate::mirror::Mirror;
use crate::object::MemberDevice;

/// One command of a split log.
#[derive(Clone)]
pub enum Step {
    Pipeline(u64),
    Sets {
        layout: u64,
        first: u32,
        sets: Vec<u64>,
        dynamic: Vec<u32>,
    },
    Push {
        layout: u64,
        stages: vk::ShaderStageFlags,
        offset: u32,
        bytes: Vec<u8>,
    },
    /// A dispatch, with the dimension it splits along (`None`: it runs whole), what it
    /// touches, and what its bindings of add atomics lead to (merged as sums of deltas).
    ///
    /// `own` are its bindings whose every access the analysis keeps to each invocation's own
    /// bytes along the dimension it splits along ([`OwnPart`]); `rest` is what its other
    /// bindings touch (all of `access` but `own`).
    Dispatch {
        base: [u32; 3],
        count: [u32; 3],
        along: Option<usize>,
        access: AccessSet,
        adds: AccessSet,
        own: Vec<OwnPart>,
        rest: AccessSet,
        /// The compute pipeline bound (raw): the kind of work the balance measures.
        pipeline: u64,
    },
    /// An indirect dispatch of compute pipeline `pipeline`: it runs whole on the first member,
    /// unless its group counts are known at submit ([`Log::resolve`]: `then` is the dispatch it
    /// becomes) or it is `sliced` ([`slice_indirect`]: every member dispatches it whole with a
    /// variant of the pipeline that runs only its slice of the workgroups).
    Indirect {
        buffer: u64,
        offset: u64,
        pipeline: u64,
        access: AccessSet,
        then: Option<Box<Pending>>,
        sliced: bool,
    },
    /// A buffer transfer: it runs whole, on the first member.
    Transfer {
        op: Transfer,
        access: AccessSet,
    },
    /// A pipeline barrier without image barriers or queue family ownership transfers: replayed as
    /// a global memory barrier.
    Barrier,
    /// A pipeline barrier with image barriers (no queue family ownership transfers): replayed
    /// with each member's images, by every member once, in the round whose part of the log
    /// holds it (`record`'s `span`). One that changes a layout ends its round.
    Images(Vec<ImageBarrier>),
}

/// The image barriers from `UNDEFINED` of images copied between drivers that a round replays
/// as barriers from each subresource's layout instead (`images::RoundLayouts::kept`): by step
/// and place in the step's list, the ranges with their old and new layouts.
pub type Kept = std::collections::HashMap<(usize, usize), crate::images::KeptBarriers>;

/// An image barrier of a split log: the fused image (raw handle), its layouts before and after,
/// and the subresources.
#[derive(Clone, Copy)]
pub struct ImageBarrier {
    pub image: u64,
    pub layouts: (vk::ImageLayout, vk::ImageLayout),
    pub range: vk::ImageSubresourceRange,
}

impl Step {
    /// The images whose layouts this step changes.
    pub fn transitions(&self) -> impl Iterator<Item = u64> + '_ {
        let list: &[ImageBarrier] = match self {
            Step::Images(list) => list,
            _ => &[],
        };
        list.iter()
            .filter(|b| b.layouts.0 != b.layouts.1)
            .map(|b| b.image)
    }
}

/// An indirect dispatch whose shader allows splitting, as a dispatch once its group counts are
/// known: the shader's analysis, where the counts lie (allocation, byte offset), and what the
/// dispatch touches but for the counts.
#[derive(Clone)]
pub struct Pending {
    pub analysis: Arc<vkfuse_shader::Analysis>,
    pub args: (u64, u64),
    pub touch: Touch,
}

/// The transfers a split log replays (raw fused buffer and image handles).
#[derive(Clone)]
pub enum Transfer {
    /// `vkCmdCopyBufferToImage` (`to_image`) or `vkCmdCopyImageToBuffer`.
    BufferImage {
        buffer: u64,
        image: u64,
        layout: vk::ImageLayout,
        regions: Vec<vk::BufferImageCopy>,
        to_image: bool,
    },
    /// `vkCmdCopyImage` or `vkCmdBlitImage`.
    Image {
        src: (u64, vk::ImageLayout),
        dst: (u64, vk::ImageLayout),
        op: ImageOp,
    },
    /// `vkCmdClearColorImage` or `vkCmdClearDepthStencilImage`.
    Clear {
        image: u64,
        layout: vk::ImageLayout,
        value: Clear,
        ranges: Vec<vk::ImageSubresourceRange>,
    },
    Copy {
        src: u64,
        dst: u64,
        regions: Vec<vk::BufferCopy>,
    },
    Update {
        dst: u64,
        offset: u64,
        data: Vec<u8>,
    },
    Fill {
        dst: u64,
        offset: u64,
        size: u64,
        data: u32,
    },
}

/// What a logged transfer between images does, with its regions.
#[derive(Clone)]
pub enum ImageOp {
    Copy(Vec<vk::ImageCopy>),
    Blit(Vec<vk::ImageBlit>, vk::Filter),
}

/// The value of a logged image clear.
#[derive(Clone, Copy)]
pub enum Clear {
    Color(vk::ClearColorValue),
    DepthStencil(vk::ClearDepthStencilValue),
}

/// What one dispatch touches (`access.rs`), and what its bindings of add atomics lead to
/// (`None` where a bound set is only known whole). Of `access`, the bindings whose accesses
/// are each invocation's own bytes are also in `own`, and the others in `rest`.
#[derive(Clone, Default)]
pub struct Touch {
    pub access: AccessSet,
    pub adds: Option<AccessSet>,
    pub own: Vec<OwnPart>,
    pub rest: AccessSet,
}

/// A buffer binding of a dispatch whose invocations each access only their own bytes
/// (`vkfuse_shader::Own`): the invocation with global id `g` along `comp` only bytes
/// `start + g * bytes .. start + (g + 1) * bytes` of allocation `memory`, within `range`
/// (the descriptor's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnPart {
    pub memory: u64,
    pub range: vkfuse_memory::Range,
    pub start: u64,
    pub bytes: u64,
    pub comp: usize,
    /// The workgroup size along `comp`.
    pub local: u32,
    pub written: bool,
}

impl OwnPart {
    /// The bytes the workgroups `first..first + groups` along `comp` access.
    pub fn of_groups(&self, first: u32, groups: u32) -> vkfuse_memory::Range {
        let per = self.bytes.saturating_mul(u64::from(self.local));
        let at = |g: u32| self.start.saturating_add(per.saturating_mul(u64::from(g)));
        vkfuse_memory::Range::new(at(first), at(first.saturating_add(groups))).intersect(self.range)
    }

    /// Whether the workgroups of a dispatch access the same bytes of this binding as those
    /// of `o` (the same workgroup of both: the same bytes).
    fn same_bytes(&self, o: &OwnPart) -> bool {
        self.memory == o.memory
            && self.start == o.start
            && self.bytes.saturating_mul(u64::from(self.local))
                == o.bytes.saturating_mul(u64::from(o.local))
            && self.comp == o.comp
    }

    /// As an access set's accesses.
    fn feed(&self, acc: &mut AccessSet) {
        let u = acc.memory.entry(self.memory).or_default();
        u.touched.insert(self.range);
        if self.written {
            u.written.insert(self.range);
        }
    }
}

/// The compute commands of a command buffer, for replay in slices.
#[derive(Default)]
pub struct Log {
    pub steps: Vec<Step>,
    /// The accesses the logged commands made (`AccessSet::fed`).
    pub own: u64,
    /// Why the log cannot replay the command buffer.
    pub broken: Option<&'static str>,
    /// Dispatches that split.
    pub splits: u32,
    /// Indirect dispatches that split once their group counts are known at submit, or by
    /// workgroup slices.
    pub pending: u32,
    /// The compute pipeline bound last (raw).
    bound: u64,
    /// The push constant bytes set so far, and which are set.
    push_bytes: Vec<u8>,
    push_set: Vec<bool>,
}

impl Log {
    pub fn brk(&mut self, why: &'static str) {
        if self.broken.is_none() {
            self.broken = Some(why);
        }
        self.steps.clear();
    }

    fn push(&mut self, s: Step) {
        if self.broken.is_none() {
            self.steps.push(s);
        }
    }

    pub fn pipeline(&mut self, raw: u64) {
        self.bound = raw;
        self.push(Step::Pipeline(raw));
    }

    pub fn sets(&mut self, layout: u64, first: u32, sets: &[vk::DescriptorSet], dynamic: &[u32]) {
        self.push(Step::Sets {
            layout,
            first,
            sets: sets.iter().map(|s| s.as_raw()).collect(),
            dynamic: dynamic.to_vec(),
        });
    }

    pub fn push_constants(
        &mut self,
        layout: u64,
        stages: vk::ShaderStageFlags,
        offset: u32,
        bytes: &[u8],
    ) {
        let end = offset as usize + bytes.len();
        if self.push_bytes.len() < end {
            self.push_bytes.resize(end, 0);
            self.push_set.resize(end, false);
        }
        self.push_bytes[offset as usize..end].copy_from_slice(bytes);
        self.push_set[offset as usize..end].fill(true);
        self.push(Step::Push {
            layout,
            stages,
            offset,
            bytes: bytes.to_vec(),
        });
    }

    /// The 32-bit push constant at byte `at`, where the commands so far set it.
    pub fn push_word(&self, at: u32) -> Option<u32> {
        let at = at as usize;
        let bytes = self.push_bytes.get(at..at + 4)?;
        self.push_set[at..at + 4]
            .iter()
            .all(|s| *s)
            .then(|| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A dispatch of `analysis`'s shader that touched `touch`.
    pub fn dispatch(
        &mut self,
        analysis: Option<&vkfuse_shader::Analysis>,
        base: [u32; 3],
        count: [u32; 3],
        touch: Touch,
    ) {
        let Touch {
            access,
            adds,
            mut own,
            mut rest,
        } = touch;
        self.own += access.fed;
        // Among the dimensions whose count the shader does not read: one along which a
        // binding it writes is each invocation's own (exact merges, no diff), unless it has
        // fewer than a quarter of the groups of the widest; else the one with the most groups.
        let widest = (0..3).map(|c| count[c]).max().unwrap_or(0);
        let owned = |c: usize| {
            own.iter().any(|p| p.written && p.comp == c)
                && u64::from(count[c]) * 4 >= u64::from(widest)
        };
        let along = analysis
            .filter(|a| {
                a.split_refusal().is_none()
                    && access.everything.is_none()
                    && (!a.adds() || adds.is_some())
            })
            .and_then(|a| {
                (0..3)
                    .filter(|c| a.cuts_along(*c) && count[*c] >= 2)
                    .max_by_key(|c| (owned(*c), count[*c], 3 - *c))
            });
        if along.is_some() {
            self.splits += 1;
        }
        // Own bytes along another dimension than the cut are not a slice's own.
        own.retain(|p| {
            let keep = Some(p.comp) == along;
            if !keep {
                p.feed(&mut rest);
            }
            keep
        });
        self.push(Step::Dispatch {
            base,
            count,
            along,
            access,
            adds: adds.unwrap_or_default(),
            own,
            rest,
            pipeline: self.bound,
        });
    }

    /// A buffer transfer that touched `access`.
    pub fn transfer(&mut self, op: Transfer, access: AccessSet) {
        self.own += access.fed;
        self.push(Step::Transfer { op, access });
    }

    /// An indirect dispatch that touched `access` (its group counts included); `then`, where
    /// its shader allows splitting and its counts lie in one allocation.
    pub fn indirect(&mut self, buffer: u64, offset: u64, access: AccessSet, then: Option<Pending>) {
        self.own += access.fed;
        let then = then.filter(|p| {
            p.analysis.slice_refusal().is_none()
                && p.touch.access.everything.is_none()
                && (!p.analysis.adds() || p.touch.adds.is_some())
        });
        if then.is_some() {
            self.pending += 1;
        }
        self.push(Step::Indirect {
            buffer,
            offset,
            pipeline: self.bound,
            access,
            then: then.map(Box::new),
            sliced: false,
        });
    }

    /// The steps with the indirect dispatches whose group counts `counts` gives (from the
    /// allocation and byte offset they lie at) as dispatches, where no step before them
    /// writes the counts; `None` where none became a dispatch that splits.
    pub fn resolve(&self, counts: impl Fn(u64, u64) -> Option<[u32; 3]>) -> Option<Vec<Step>> {
        if self.pending == 0 {
            return None;
        }
        let mut written: std::collections::BTreeMap<u64, RangeSet> = Default::default();
        let mut out = Vec::with_capacity(self.steps.len());
        let mut any = false;
        for s in &self.steps {
            let mut step = s.clone();
            if let Step::Indirect {
                then: Some(p),
                pipeline,
                ..
            } = s
            {
                let (m, at) = p.args;
                let args = RangeSet::of(vkfuse_memory::Range::at(at, 12));
                let clean = written.get(&m).is_none_or(|w| !w.intersects(&args));
                if let Some(count) = counts(m, at).filter(|_| clean) {
                    let mut one = Log {
                        bound: *pipeline,
                        ..Log::default()
                    };
                    one.dispatch(Some(&p.analysis), [0; 3], count, p.touch.clone());
                    if let Some(d) = one.steps.pop() {
                        any |= one.splits > 0;
                        step = d;
                    }
                }
            }
            let access = match s {
                Step::Dispatch { access, .. }
                | Step::Indirect { access, .. }
                | Step::Transfer { access, .. } => Some(access),
                _ => None,
            };
            for (m, u) in access.into_iter().flat_map(|a| &a.memory) {
                written.entry(*m).or_default().union(&u.written);
            }
            out.push(step);
        }
        any.then_some(out)
    }

    /// After `vkCmdExecuteCommands` of a secondary whose log is `other`: its steps, in order
    /// (a secondary starts with no compute state bound, and leaves the primary's undefined, so
    /// its steps replay alike here). A broken log breaks this one.
    pub fn append(&mut self, other: &Log) {
        if let Some(why) = other.broken {
            self.brk(why);
            return;
        }
        self.own += other.own;
        self.splits += other.splits;
        self.pending += other.pending;
        if self.broken.is_none() {
            self.steps.extend(other.steps.iter().cloned());
        }
        // Nothing bound stays defined after the secondaries.
        self.push_bytes.clear();
        self.push_set.clear();
        self.bound = 0;
    }

    /// A pipeline barrier that made `fed` accesses, with image barriers `images`.
    pub fn barrier(&mut self, fed: u64, images: Vec<ImageBarrier>) {
        self.own += fed;
        self.push(if images.is_empty() {
            Step::Barrier
        } else {
            Step::Images(images)
        });
    }

    /// Whether the log replays its command buffer, whose access set is `access`.
    pub fn replays(&self, access: &AccessSet) -> Result<(), &'static str> {
        if let Some(why) = self.broken {
            return Err(why);
        }
        if access.fed != self.own {
            return Err("commands the split log does not replay");
        }
        if self.splits == 0 && self.pending == 0 {
            return Err("no dispatch that splits");
        }
        Ok(())
    }
}

/// One round: the dispatches (indices into the steps) that run together, split or whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub split: bool,
    pub dispatches: Vec<usize>,
}

/// Whether one of `a` and `b` writes what the other touches.
fn conflict(a: &AccessSet, b: &AccessSet) -> bool {
    if a.everything.is_some() || b.everything.is_some() {
        return true;
    }
    a.memory.iter().any(|(m, ua)| {
        b.memory.get(m).is_some_and(|ub| {
            ua.written.intersects(&ub.touched) || ub.written.intersects(&ua.touched)
        })
    })
}

/// Whether split dispatches `a` and `b` may not run in one round, as slices whose members are
/// not ordered with each other: one writes what the other touches, except where both access
/// only each invocation's own bytes the same way and are cut the same way (the same
/// workgroups on the same member: the member's own order, the logged barriers, keeps them
/// right, and no merge is needed between them).
fn conflicts(a: &Step, b: &Step) -> bool {
    let (
        Step::Dispatch {
            base: ab,
            count: ac,
            along: Some(ca),
            access: aa,
            own: ao,
            rest: ar,
            ..
        },
        Step::Dispatch {
            base: bb,
            count: bc,
            along: Some(cb),
            access: ba,
            own: bo,
            rest: br,
            ..
        },
    ) = (a, b)
    else {
        return true;
    };
    if conflict(ar, ba) || conflict(aa, br) {
        return true;
    }
    let same_cut = ca == cb && ab[*ca] == bb[*ca] && ac[*ca] == bc[*ca];
    ao.iter().any(|p| {
        bo.iter().any(|q| {
            p.memory == q.memory
                && (p.written || q.written)
                && !p.range.intersect(q.range).is_empty()
                && !(same_cut && p.same_bytes(q))
        })
    })
}

/// Member `pos`'s parts of dispatch `step` (base, group counts) when its slices are dealt
/// out by `weights` in `chunks` chunks per member; a dispatch that does not split is all the
/// first member's.
pub fn slices(step: &Step, weights: &[f64], chunks: u32, pos: usize) -> Vec<([u32; 3], [u32; 3])> {
    match step {
        Step::Dispatch {
            base,
            count,
            along: Some(c),
            ..
        } => vkfuse_scheduler::chunks(count[*c], weights, chunks)
            .get(pos)
            .into_iter()
            .flatten()
            .map(|(first, n)| {
                let (mut b, mut n3) = (*base, *count);
                b[*c] += first;
                n3[*c] = *n;
                (b, n3)
            })
            .collect(),
        Step::Dispatch { base, count, .. } if pos == 0 => vec![(*base, *count)],
        _ if pos == 0 => vec![([0; 3], [0; 3])],
        _ => Vec::new(),
    }
}

/// A member's variant of the pipeline of a round's sliced indirect dispatch.
#[derive(Clone, Copy)]
pub struct Variant {
    pub pipeline: vk::Pipeline,
    /// Where the dispatch is narrowed (`narrow.rs`): the member's buffer and offset of its
    /// narrowed group counts; otherwise it dispatches the whole grid.
    pub narrowed: Option<(vk::Buffer, u64)>,
}

/// A member's variants of the pipelines of a round's sliced indirect dispatches, by step.
pub type Variants = std::collections::HashMap<usize, Variant>;

/// What a member's round narrows first (`narrow::record_args`): its pipeline and scratch
/// buffer, and the dispatches.
pub type Narrowing<'a> = Option<(
    (&'a crate::narrow::Narrower, &'a crate::narrow::Scratch),
    Vec<crate::narrow::Narrowed>,
)>;

/// The indirect dispatches of `steps` that may split by workgroup slices (`can`: their
/// pipeline has slice variants; their shader allows it: `then`) marked `sliced`; `None` where
/// there are none.
pub fn slice_indirect(steps: &[Step], can: impl Fn(u64) -> bool) -> Option<Vec<Step>> {
    let sliceable = |s: &Step| matches!(s, Step::Indirect { then: Some(_), sliced: false, pipeline, .. } if can(*pipeline));
    if !steps.iter().any(sliceable) {
        return None;
    }
    Some(
        steps
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if sliceable(&s) {
                    if let Step::Indirect { sliced, .. } = &mut s {
                        *sliced = true;
                    }
                }
                s
            })
            .collect(),
    )
}

/// Each member position's slice of a sliced indirect dispatch, as parts `lo..hi` of
/// `vkfuse_shader::slice::PARTS` that tile them in order, in proportion to `weights`.
pub fn parts(weights: &[f64]) -> Vec<(u32, u32)> {
    let parts = vkfuse_shader::slice::PARTS;
    let w: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_finite() { w.max(0.0) } else { 0.0 })
        .collect();
    let total: f64 = w.iter().sum();
    let (mut at, mut lo) = (0.0, 0u32);
    w.iter()
        .enumerate()
        .map(|(i, x)| {
            at += x;
            let hi = if i + 1 == w.len() {
                parts
            } else if total > 0.0 {
                ((at / total * f64::from(parts)).round() as u32).clamp(lo, parts)
            } else {
                lo
            };
            let part = (lo, hi);
            lo = hi;
            part
        })
        .collect()
}

/// Records `op` into `cb` of member `m` (handles translated).
///
/// # Safety
/// `cb` is being recorded; the buffers and images are live.
unsafe fn transfer(
    f: &crate::generated::dispatch::DeviceFns,
    cb: vk::CommandBuffer,
    m: usize,
    op: &Transfer,
) -> Result<(), vk::Result> {
    let buf = |raw: u64| crate::conv::nd(vk::Buffer::from_raw(raw), m);
    let img = |raw: u64| crate::conv::nd(vk::Image::from_raw(raw), m);
    // The member's command `$cmd` (an error naming `$name` where it has none), called.
    macro_rules! call {
        ($cmd:ident, $name:literal, $($arg:expr),* $(,)?) => {{
            let command = f.$cmd.ok_or_else(|| crate::guard::missing($name))?;
            command(cb, $($arg),*)
        }};
    }
    // SAFETY: caller contract; the handles are the member's, the arrays live across the
    // calls.
    unsafe {
        match op {
            Transfer::BufferImage {
                buffer,
                image,
                layout,
                regions,
                to_image,
            } => {
                let (n, r) = (regions.len() as u32, regions.as_ptr());
                if *to_image {
                    call!(
                        cmd_copy_buffer_to_image,
                        "vkCmdCopyBufferToImage",
                        buf(*buffer),
                        img(*image),
                        *layout,
                        n,
                        r
                    )
                } else {
                    call!(
                        cmd_copy_image_to_buffer,
                        "vkCmdCopyImageToBuffer",
                        img(*image),
                        *layout,
                        buf(*buffer),
                        n,
                        r
                    )
                }
            }
            Transfer::Image { src, dst, op } => {
                let ends = (img(src.0), src.1, img(dst.0), dst.1);
                match op {
                    ImageOp::Copy(regions) => call!(
                        cmd_copy_image,
                        "vkCmdCopyImage",
                        ends.0,
                        ends.1,
                        ends.2,
                        ends.3,
                        regions.len() as u32,
                        regions.as_ptr()
                    ),
                    ImageOp::Blit(regions, filter) => call!(
                        cmd_blit_image,
                        "vkCmdBlitImage",
                        ends.0,
                        ends.1,
                        ends.2,
                        ends.3,
                        regions.len() as u32,
                        regions.as_ptr(),
                        *filter
                    ),
                }
            }
            Transfer::Clear {
                image,
                layout,
                value,
                ranges,
            } => {
                let (i, n, r) = (img(*image), ranges.len() as u32, ranges.as_ptr());
                match value {
                    Clear::Color(c) => {
                        call!(
                            cmd_clear_color_image,
                            "vkCmdClearColorImage",
                            i,
                            *layout,
                            c,
                            n,
                            r
                        )
                    }
                    Clear::DepthStencil(v) => call!(
                        cmd_clear_depth_stencil_image,
                        "vkCmdClearDepthStencilImage",
                        i,
                        *layout,
                        v,
                        n,
                        r
                    ),
                }
            }
            Transfer::Copy { src, dst, regions } => {
                let (n, r) = (regions.len() as u32, regions.as_ptr());
                call!(
                    cmd_copy_buffer,
                    "vkCmdCopyBuffer",
                    buf(*src),
                    buf(*dst),
                    n,
                    r
                )
            }
            Transfer::Update { dst, offset, data } => {
                let (n, d) = (data.len() as u64, data.as_ptr().cast());
                call!(
                    cmd_update_buffer,
                    "vkCmdUpdateBuffer",
                    buf(*dst),
                    *offset,
                    n,
                    d
                )
            }
            Transfer::Fill {
                dst,
                offset,
                size,
                data,
            } => call!(
                cmd_fill_buffer,
                "vkCmdFillBuffer",
                buf(*dst),
                *offset,
                *size,
                *data
            ),
        }
    }
    Ok(())
}

/// The rounds of `steps`: runs of split dispatches none of which touches what another of the
/// run writes (slices of different members are not ordered with each other) unless both
/// keep to each invocation's own bytes, cut the same way (`conflicts`), and runs of whole
/// dispatches (all on one member, in order).
///
/// A layout change between two dispatches puts them in different rounds.
pub fn rounds(steps: &[Step]) -> Vec<Round> {
    let mut out: Vec<Round> = Vec::new();
    // A layout change ends the round: members change their images' layouts between rounds.
    let mut cut = false;
    for (k, s) in steps.iter().enumerate() {
        let split = match s {
            Step::Dispatch { along, .. } => along.is_some(),
            Step::Indirect { sliced, .. } => *sliced,
            Step::Transfer { .. } => false,
            Step::Images(_) => {
                cut |= s.transitions().next().is_some();
                continue;
            }
            _ => continue,
        };
        let joins = !std::mem::take(&mut cut)
            && out.last().is_some_and(|r| {
                r.split == split
                    && (!split || r.dispatches.iter().all(|d| !conflicts(&steps[*d], s)))
            });
        if joins {
            if let Some(r) = out.last_mut() {
                r.dispatches.push(k);
            }
        } else {
            out.push(Round {
                split,
                dispatches: vec![k],
            });
        }
    }
    out
}

/// The part of the log each of `rounds` (of `steps`) replays its image barriers from: from
/// the end of the previous round's last dispatch (the start) to its own last dispatch (the
/// last round: to the end).
pub fn spans(steps: &[Step], rounds: &[Round]) -> Vec<std::ops::Range<usize>> {
    let mut at = 0;
    rounds
        .iter()
        .enumerate()
        .map(|(x, r)| {
            let end = if x + 1 == rounds.len() {
                steps.len()
            } else {
                r.dispatches.last().map_or(at, |k| k + 1)
            };
            let span = at..end.max(at);
            at = span.end;
            span
        })
        .collect()
}

/// A member's copy of an image copied between drivers and the buffer of its packed copy
/// (`Copies::Stages`), which a round copies into the image before its work (`into`, in the
/// layouts at the round's start; those marked fresh are in `UNDEFINED` until then, and go to
/// their region's layout) and back after it (`out`, in the layouts at its end).
pub struct ImageCopy {
    pub image: vk::Image,
    pub buffer: vk::Buffer,
    pub into: Vec<(crate::staging::ImageRegion, bool)>,
    pub out: Vec<crate::staging::ImageRegion>,
}

/// Records into `cb` the copies of `images` between their packed copies and the images
/// (`into`: into the images), each subresource moved from its layout to the transfer layout
/// and back, with barriers that order them after everything before them on the queue (and
/// the host's writes) and everything after them (and the host's reads) after them.
///
/// # Safety
/// `cb` is being recorded on `md`; the images and buffers are `md`'s and live, the images'
/// subresources in the layouts of their regions.
unsafe fn copy_images(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    images: &[ImageCopy],
    into: bool,
) -> Result<(), vk::Result> {
    if images.is_empty() {
        return Ok(());
    }
    let f = &md.fns;
    let missing = crate::guard::missing;
    let (xfer, xfer_access) = if into {
        (
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            vk::AccessFlags::TRANSFER_WRITE,
        )
    } else {
        (
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            vk::AccessFlags::TRANSFER_READ,
        )
    };
    let any = vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE;
    // Each image's regions this way, and (into the images) those fresh or not.
    let regions = |i: &ImageCopy, fresh: Option<bool>| -> Vec<crate::staging::ImageRegion> {
        if into {
            i.into
                .iter()
                .filter(|r| fresh.is_none_or(|f| r.1 == f))
                .map(|r| r.0)
                .collect()
        } else {
            i.out.clone()
        }
    };
    let layouts = |fresh: Option<bool>,
                   from,
                   to,
                   src,
                   dst|
     -> Vec<vk::ImageMemoryBarrier<'static>> {
        images
            .iter()
            .flat_map(|i| {
                crate::staging::region_barriers(i.image, &regions(i, fresh), (from, to), (src, dst))
            })
            .collect()
    };
    let mut to_transfer = layouts(
        if into { Some(false) } else { None },
        None,
        Some(xfer),
        vk::AccessFlags::MEMORY_WRITE,
        xfer_access,
    );
    if into {
        to_transfer.extend(layouts(
            Some(true),
            Some(vk::ImageLayout::UNDEFINED),
            Some(xfer),
            vk::AccessFlags::empty(),
            xfer_access,
        ));
    }
    let back = layouts(None, Some(xfer), None, vk::AccessFlags::TRANSFER_WRITE, any);
    // SAFETY: caller contract; member handles, the arrays live across the calls.
    unsafe {
        between_barriers(md, cb, (&to_transfer, &back), || {
            for i in images {
                let copies: Vec<vk::BufferImageCopy> =
                    regions(i, None).iter().map(|r| r.copy).collect();
                let (n, r) = (copies.len() as u32, copies.as_ptr());
                if n == 0 {
                    continue;
                }
                if into {
                    let copy = f
                        .cmd_copy_buffer_to_image
                        .ok_or_else(|| missing("vkCmdCopyBufferToImage"))?;
                    copy(cb, i.buffer, i.image, xfer, n, r);
                } else {
                    let copy = f
                        .cmd_copy_image_to_buffer
                        .ok_or_else(|| missing("vkCmdCopyImageToBuffer"))?;
                    copy(cb, i.image, xfer, i.buffer, n, r);
                }
            }
            Ok(())
        })
    }
}

/// Records `body` (transfers) into `cb` between two barriers: one that orders it after
/// everything before it on the queue and the host's writes, with the image barriers
/// `to_transfer`, and one that orders everything after it and the host's reads after it,
/// with the image barriers `back`.
///
/// # Safety
/// `cb` is being recorded on `md`; the barriers name `md`'s live images.
unsafe fn between_barriers(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    (to_transfer, back): (&[vk::ImageMemoryBarrier], &[vk::ImageMemoryBarrier]),
    body: impl FnOnce() -> Result<(), vk::Result>,
) -> Result<(), vk::Result> {
    let barrier = md
        .fns
        .cmd_pipeline_barrier
        .ok_or_else(|| crate::guard::missing("vkCmdPipelineBarrier"))?;
    let all = vk::PipelineStageFlags::ALL_COMMANDS | vk::PipelineStageFlags::HOST;
    let transfer = vk::PipelineStageFlags::TRANSFER;
    let before = vk::MemoryBarrier {
        src_access_mask: vk::AccessFlags::MEMORY_WRITE | vk::AccessFlags::HOST_WRITE,
        dst_access_mask: vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE,
        ..Default::default()
    };
    let after = vk::MemoryBarrier {
        src_access_mask: vk::AccessFlags::TRANSFER_WRITE,
        dst_access_mask: vk::AccessFlags::MEMORY_READ
            | vk::AccessFlags::MEMORY_WRITE
            | vk::AccessFlags::HOST_READ,
        ..Default::default()
    };
    let none = vk::DependencyFlags::empty();
    let (tn, tp) = (to_transfer.len() as u32, to_transfer.as_ptr());
    let (bn, bp) = (back.len() as u32, back.as_ptr());
    // SAFETY: caller contract; the arrays live across the calls.
    unsafe {
        barrier(
            cb,
            all,
            transfer,
            none,
            1,
            &before,
            0,
            std::ptr::null(),
            tn,
            tp,
        );
        body()?;
        barrier(
            cb,
            transfer,
            all,
            none,
            1,
            &after,
            0,
            std::ptr::null(),
            bn,
            bp,
        );
    }
    Ok(())
}

/// A member's copy of a mirrored allocation reached through staging (`cover`, a buffer over
/// it) and its stage for a split batch (`Copies::Mirror`'s `staged`): the regions a round
/// copies from the stage into the copy before its work (`into`) and back after it (`out`).
pub struct StagedCopy {
    pub cover: vk::Buffer,
    pub stage: vk::Buffer,
    pub into: Vec<vk::BufferCopy>,
    pub out: Vec<vk::BufferCopy>,
}

/// Records into `cb` the copies of `copies` from their stages into the covers (`into`) or
/// back, between barriers that order them after everything before them on the queue (and
/// the host's writes) and everything after them (and the host's reads) after them.
///
/// # Safety
/// `cb` is being recorded on `md`; the buffers are `md`'s and live.
unsafe fn copy_buffers(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    copies: &[StagedCopy],
    into: bool,
) -> Result<(), vk::Result> {
    let regions = |c: &StagedCopy| if into { c.into.len() } else { c.out.len() };
    if copies.iter().all(|c| regions(c) == 0) {
        return Ok(());
    }
    let copy = md
        .fns
        .cmd_copy_buffer
        .ok_or_else(|| crate::guard::missing("vkCmdCopyBuffer"))?;
    // SAFETY: caller contract; member handles, the arrays live across the calls.
    unsafe {
        between_barriers(md, cb, (&[], &[]), || {
            for c in copies {
                let (src, dst, list) = if into {
                    (c.stage, c.cover, &c.into)
                } else {
                    (c.cover, c.stage, &c.out)
                };
                if !list.is_empty() {
                    copy(cb, src, dst, list.len() as u32, list.as_ptr());
                }
            }
            Ok(())
        })
    }
}

/// Records into `cb` (begun and ended here) copies out of covers into stages
/// ([`StagedCopy::out`]): the first member's lead-in before a batch split with copies
/// reached through staging (`exec.rs`).
///
/// # Safety
/// As [`record`].
pub unsafe fn record_lead_in(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    copies: &[StagedCopy],
) -> Result<(), vk::Result> {
    // SAFETY: caller contract.
    unsafe { recorded(md, cb, || copy_buffers(md, cb, copies, false)) }
}

/// Records into `cb` (begun and ended here) the copies of `images`' packed copies into the
/// images and of `buffers`' stages into the copies: the first member's join after a batch
/// split with images or copies reached through staging (`exec.rs`).
///
/// # Safety
/// As [`record`].
pub unsafe fn record_uploads(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    images: &[ImageCopy],
    buffers: &[StagedCopy],
) -> Result<(), vk::Result> {
    // SAFETY: caller contract.
    unsafe {
        recorded(md, cb, || {
            copy_images(md, cb, images, true)?;
            copy_buffers(md, cb, buffers, true)
        })
    }
}

/// Begins `cb` of `md` (one submit), records `body` and ends it.
///
/// # Safety
/// `cb` is a command buffer of `md` in the initial state; `body` records valid commands.
unsafe fn recorded(
    md: &MemberDevice,
    cb: vk::CommandBuffer,
    body: impl FnOnce() -> Result<(), vk::Result>,
) -> Result<(), vk::Result> {
    let f = &md.fns;
    let missing = crate::guard::missing;
    let begin = f
        .begin_command_buffer
        .ok_or_else(|| missing("vkBeginCommandBuffer"))?;
    let end = f
        .end_command_buffer
        .ok_or_else(|| missing("vkEndCommandBuffer"))?;
    let bi = vk::CommandBufferBeginInfo {
        flags: vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT,
        ..Default::default()
    };
    // SAFETY: caller contract.
    let r = unsafe { begin(cb, &bi) };
    if r != vk::Result::SUCCESS {
        return Err(r);
    }
    body()?;
    // SAFETY: as above.
    let r = unsafe { end(cb) };
    if r != vk::Result::SUCCESS {
        return Err(r);
    }
    Ok(())
}

/// Every stage, the host's included: the destination of the barriers a round records.
const ALL_AND_HOST: vk::PipelineStageFlags = vk::PipelineStageFlags::from_raw(
    vk::PipelineStageFlags::ALL_COMMANDS.as_raw() | vk::PipelineStageFlags::HOST.as_raw(),
);

/// A memory barrier from every device write to every access, the host's included: each
/// barrier of the application's that a round replays (the log keeps none of its masks), and
/// the round's last.
fn everything() -> vk::MemoryBarrier<'static> {
    vk::MemoryBarrier {
        src_access_mask: vk::AccessFlags::MEMORY_WRITE,
        dst_access_mask: vk::AccessFlags::MEMORY_READ
            | vk::AccessFlags::MEMORY_WRITE
            | vk::AccessFlags::HOST_READ
            | vk::AccessFlags::HOST_WRITE,
        ..Default::default()
    }
}

/// Records round `round` of `steps` for member `md` into `cb` (begun and ended here): the
/// log replayed with member handles; of the dispatches only those of the round, each as the
/// parts `slice(step)` gives (none: not on this member); of the image barriers those in
/// `span` (every member replays each once, in order), those of `kept` as it says. Where `queries` is not null, its
/// two timestamps are written before and after the round's work. `images` are copied from
/// their packed copies into the images before the work and back after it, and so are
/// `buffers` from their stages into the copies they stage. Sliced indirect dispatches run
/// `variants`, those narrowed from the counts `narrowing` writes after the copies in.
///
/// # Safety
/// `cb` is a command buffer of `md` in the initial state, `queries` null or a query pool of
/// `md` of two timestamps that no pending work uses; the logged handles are live, and so are
/// the images and buffers of `images`, `md`'s, and the objects of `narrowing`.
pub unsafe fn record(
    md: &MemberDevice,
    (cb, queries): (vk::CommandBuffer, vk::QueryPool),
    steps: &[Step],
    (round, span, kept): (&Round, std::ops::Range<usize>, &Kept),
    slice: impl Fn(usize) -> Vec<([u32; 3], [u32; 3])>,
    (images, buffers, variants, narrowing): (&[ImageCopy], &[StagedCopy], &Variants, Narrowing),
) -> Result<(), vk::Result> {
    let f = &md.fns;
    let missing = crate::guard::missing;
    let bind = f
        .cmd_bind_pipeline
        .ok_or_else(|| missing("vkCmdBindPipeline"))?;
    let sets = f
        .cmd_bind_descriptor_sets
        .ok_or_else(|| missing("vkCmdBindDescriptorSets"))?;
    let push = f
        .cmd_push_constants
        .ok_or_else(|| missing("vkCmdPushConstants"))?;
    let base = f
        .cmd_dispatch_base
        .ok_or_else(|| missing("vkCmdDispatchBase"))?;
    let indirect = f
        .cmd_dispatch_indirect
        .ok_or_else(|| missing("vkCmdDispatchIndirect"))?;
    let barrier = f
        .cmd_pipeline_barrier
        .ok_or_else(|| missing("vkCmdPipelineBarrier"))?;
    let m = md.index;
    let nd = |raw: u64| crate::conv::nd(vk::Pipeline::from_raw(raw), m).as_raw();
    // A barrier from every write to every access, the host's included, with `images`.
    let full = |images: &[vk::ImageMemoryBarrier]| {
        let all = everything();
        // SAFETY: `cb` is being recorded; the image barriers name the member's live images.
        unsafe {
            barrier(
                cb,
                vk::PipelineStageFlags::ALL_COMMANDS,
                ALL_AND_HOST,
                vk::DependencyFlags::empty(),
                1,
                &all,
                0,
                std::ptr::null(),
                images.len() as u32,
                images.as_ptr(),
            )
        }
    };
    // SAFETY: caller contract; every handle translated to the member's.
    unsafe {
        recorded(md, cb, || {
            copy_images(md, cb, images, true)?;
            copy_buffers(md, cb, buffers, true)?;
            if let Some((objects, list)) = &narrowing {
                crate::narrow::record_args(md, cb, *objects, list)?;
            }
            let stamp = match (
                queries.is_null(),
                f.cmd_reset_query_pool,
                f.cmd_write_timestamp,
            ) {
                (false, Some(reset), Some(write)) => {
                    reset(cb, queries, 0, 2);
                    write(cb, vk::PipelineStageFlags::TOP_OF_PIPE, queries, 0);
                    Some(write)
                }
                _ => None,
            };
            for (k, s) in steps.iter().enumerate() {
                match s {
                    Step::Pipeline(p) => bind(
                        cb,
                        vk::PipelineBindPoint::COMPUTE,
                        vk::Pipeline::from_raw(nd(*p)),
                    ),
                    Step::Sets {
                        layout,
                        first,
                        sets: list,
                        dynamic,
                    } => {
                        let member: Vec<vk::DescriptorSet> = list
                            .iter()
                            .map(|s| vk::DescriptorSet::from_raw(nd(*s)))
                            .collect();
                        sets(
                            cb,
                            vk::PipelineBindPoint::COMPUTE,
                            vk::PipelineLayout::from_raw(nd(*layout)),
                            *first,
                            member.len() as u32,
                            member.as_ptr(),
                            dynamic.len() as u32,
                            dynamic.as_ptr(),
                        )
                    }
                    Step::Push {
                        layout,
                        stages,
                        offset,
                        bytes,
                    } => push(
                        cb,
                        vk::PipelineLayout::from_raw(nd(*layout)),
                        *stages,
                        *offset,
                        bytes.len() as u32,
                        bytes.as_ptr().cast(),
                    ),
                    Step::Dispatch { .. } if round.dispatches.contains(&k) => {
                        for (b, c) in slice(k) {
                            if c.iter().all(|n| *n > 0) {
                                base(cb, b[0], b[1], b[2], c[0], c[1], c[2]);
                            }
                        }
                    }
                    Step::Indirect {
                        buffer,
                        offset,
                        pipeline,
                        sliced,
                        ..
                    } if round.dispatches.contains(&k) => {
                        let args = vk::Buffer::from_raw(nd(*buffer));
                        if *sliced && round.split {
                            // This member's variant, then the pipeline the log bound again.
                            if let Some(v) = variants.get(&k) {
                                bind(cb, vk::PipelineBindPoint::COMPUTE, v.pipeline);
                                match v.narrowed {
                                    Some((buffer, at)) => indirect(cb, buffer, at),
                                    None => indirect(cb, args, *offset),
                                }
                                bind(
                                    cb,
                                    vk::PipelineBindPoint::COMPUTE,
                                    vk::Pipeline::from_raw(nd(*pipeline)),
                                );
                            }
                        } else if !slice(k).is_empty() {
                            indirect(cb, args, *offset);
                        }
                    }
                    Step::Transfer { op, .. } if round.dispatches.contains(&k) => {
                        if !slice(k).is_empty() {
                            transfer(f, cb, m, op)?;
                        }
                    }
                    Step::Dispatch { .. } | Step::Indirect { .. } | Step::Transfer { .. } => {}
                    Step::Barrier | Step::Images(_) => {
                        let list: &[ImageBarrier] = match s {
                            Step::Images(list) if span.contains(&k) => list,
                            Step::Images(_) => continue,
                            _ => &[],
                        };
                        let all = everything();
                        // Barriers from UNDEFINED of images copied between drivers keep
                        // their contents: one per subresource, from its layout (`kept`).
                        let list: Vec<vk::ImageMemoryBarrier> = list
                            .iter()
                            .enumerate()
                            .flat_map(|(n, b)| match kept.get(&(k, n)) {
                                Some(each) => each
                                    .iter()
                                    .map(|(range, old, new)| (b.image, *range, (*old, *new)))
                                    .collect(),
                                None => vec![(b.image, b.range, b.layouts)],
                            })
                            .map(|(image, range, (old, new))| vk::ImageMemoryBarrier {
                                src_access_mask: all.src_access_mask,
                                dst_access_mask: all.dst_access_mask,
                                old_layout: old,
                                new_layout: new,
                                src_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
                                dst_queue_family_index: vk::QUEUE_FAMILY_IGNORED,
                                image: crate::conv::nd(vk::Image::from_raw(image), m),
                                subresource_range: range,
                                ..Default::default()
                            })
                            .collect();
                        full(&list)
                    }
                }
            }
            // The round's writes made visible to the host before its end is signalled: the
            // host merges and reads them, and members of other drivers read shared host
            // memory. A fence or semaphore signal alone makes device writes available to the
            // device only; CPU drivers need no more, GPUs that cache the writes do.
            full(&[]);
            if let Some(write) = stamp {
                write(cb, vk::PipelineStageFlags::BOTTOM_OF_PIPE, queries, 1);
            }
            copy_buffers(md, cb, buffers, false)?;
            copy_images(md, cb, images, false)
        })
    }
}

/// The mirrored memory of a batch split into rounds, kept coherent on the bridge thread
/// around its rounds (`exec.rs` runs [`Merge::step`] `r` before round `r`, and once more
/// after the last). The first member `j` runs the batch as far as the rest of vkfuse knows:
/// its copy is made ready as for any batch on it, and holds everything the batch wrote once
/// the batch is done. Before a split round, the other members' copies get what the round
/// touches from `j`'s copy, and `j`'s copy of what it may write is kept (the snapshot); after
/// it, every byte another member's copy changed against the snapshot is copied into `j`'s copy
/// (a diff merge: exact for slices without data races and atomics, which is all that splits).
/// Bindings whose invocations access only their own bytes are exact instead: each other
/// member gets its slices' bytes before the round and gives them back after
/// ([`MergeRange::own`]).
pub struct Merge {
    j: usize,
    others: Vec<usize>,
    /// Per round: whether it is split, and per mirrored allocation what it touches and may
    /// write.
    rounds: Vec<(bool, Vec<MergeRange>)>,
    /// The snapshots of the last split round, per allocation: its written ranges one after
    /// the other, then its added ranges.
    snapshots: parking_lot::Mutex<Vec<Vec<u8>>>,
    /// Bytes copied into other members' copies, and merged into `j`'s.
    pub copied: std::sync::atomic::AtomicU64,
    pub merged: std::sync::atomic::AtomicU64,
    /// Nanoseconds the steps took.
    pub spent_ns: std::sync::atomic::AtomicU64,
}

/// One mirrored allocation in one round: what the round touches, what it may write (merged
/// by diff), and what add atomics write (merged as the sum of the members' deltas, 32-bit
/// words; not among `written`). `own` are the exact parts (bindings whose invocations
/// access only their own bytes, [`OwnPart`]): per other member, the bytes of its slices it
/// alone touches (copied to it before the round, not among `touched`) and may write (copied
/// back after, not among `written`); `own_first`, the same for the first member (which
/// keeps them in its copy: they matter only where that copy is reached through a stage).
pub struct MergeRange {
    pub mirror: Copies,
    pub touched: RangeSet,
    pub written: RangeSet,
    pub added: RangeSet,
    pub own: Vec<(usize, RangeSet, RangeSet)>,
    pub own_first: (RangeSet, RangeSet),
}

impl MergeRange {
    /// What member `m` (`first`: the first member) copies from its stage into its copy before
    /// a round of `split` (false: whole, on the first member), and back after it.
    fn staged_ranges(&self, m: usize, first: bool, split: bool) -> (RangeSet, RangeSet) {
        let mut into = self.touched.clone();
        let mut out = self.written.clone();
        out.union(&self.added);
        if !split {
            return (into, out);
        }
        if first {
            // Its own slices, and the other members' own bytes it gets after the round.
            into.union(&self.own_first.0);
            out.union(&self.own_first.1);
        } else if let Some((_, i, o)) = self.own.iter().find(|o| o.0 == m) {
            into.union(i);
            out.union(o);
        }
        (into, out)
    }
}

/// The copies, one per member, that a merge goes through: a mirrored allocation's (each
/// member's mapped copy, or, where `staged` has one for the member, a stage in host memory
/// over the bytes the batch touches, which the member's rounds copy into its copy before their
/// work and back after it, through the copy's cover: the staging tier), or the tightly packed
/// copies of an image copied between drivers (`images.rs`), a stage in host memory per member
/// (indexed by member) that each member's rounds copy its image from and back into, of `size`
/// bytes; the first's filled from `latest` before the first round.
#[derive(Clone)]
pub enum Copies {
    Mirror {
        mirror: Arc<Mirror>,
        staged: Vec<Option<Arc<crate::staging::Stage>>>,
    },
    Stages {
        stages: Vec<Option<Arc<crate::staging::Stage>>>,
        size: u64,
        latest: Option<Arc<crate::staging::Stage>>,
    },
}

impl Copies {
    /// Member `m`'s stage, where the merge goes through one for it.
    fn stage(&self, m: usize) -> Option<&Arc<crate::staging::Stage>> {
        let stages = match self {
            Copies::Mirror { staged, .. } => staged,
            Copies::Stages { stages, .. } => stages,
        };
        stages.get(m).and_then(|s| s.as_ref())
    }

    /// The host address of byte `pos` of member `m`'s copy (its stage's, where it has one):
    /// null where it is not mapped, or `pos` is not in its stage.
    pub fn at(&self, m: usize, pos: u64) -> *mut u8 {
        match (self.stage(m), self) {
            (Some(s), Copies::Mirror { .. }) => s.at(pos),
            (Some(s), Copies::Stages { .. }) if !s.base().is_null() => {
                s.base().wrapping_add(pos as usize)
            }
            (None, Copies::Mirror { mirror, .. }) => {
                let base = mirror.copy_of(m);
                if base.is_null() {
                    base
                } else {
                    base.wrapping_add(pos as usize)
                }
            }
            (_, Copies::Stages { .. }) => std::ptr::null_mut(),
        }
    }

    /// Whether the merge reaches member `m`'s copy: mapped, or through a stage.
    fn reaches(&self, m: usize) -> bool {
        match (self.stage(m), self) {
            (Some(s), _) => !s.base().is_null(),
            (None, Copies::Mirror { mirror, .. }) => !mirror.copy_of(m).is_null(),
            (None, Copies::Stages { .. }) => false,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Copies::Mirror { mirror, .. } => mirror.size(),
            Copies::Stages { size, .. } => *size,
        }
    }
}

/// The mirrored allocations of round `round` of `steps` ([`MergeRange`]), for `members` (the
/// first runs the batch) with slices dealt out by `weights` in `chunks` chunks per member;
/// `mirror` gives an allocation's copies (`None`: not mirrored).
pub fn merge_ranges(
    steps: &[Step],
    round: &Round,
    (weights, chunks): (&[f64], u32),
    members: &[usize],
    mirror: impl Fn(u64) -> Option<Copies>,
) -> Vec<MergeRange> {
    #[derive(Default)]
    struct Acc {
        touched: RangeSet,
        written: RangeSet,
        added: RangeSet,
        /// Per member position: its own bytes touched and written.
        own: Vec<(RangeSet, RangeSet)>,
    }
    let mut per: std::collections::BTreeMap<u64, Acc> = Default::default();
    for k in &round.dispatches {
        let (rest, adds, own): (_, _, &[OwnPart]) = match &steps[*k] {
            Step::Dispatch {
                rest, adds, own, ..
            } if round.split => (rest, Some(adds), own),
            Step::Dispatch { access, adds, .. } => (access, Some(adds), &[]),
            Step::Indirect {
                access,
                then,
                sliced: true,
                ..
            } if round.split => (
                access,
                then.as_ref().and_then(|p| p.touch.adds.as_ref()),
                &[],
            ),
            Step::Indirect { access, .. } | Step::Transfer { access, .. } => (access, None, &[]),
            _ => continue,
        };
        for (mem, u) in &rest.memory {
            if mirror(*mem).is_some() {
                let e = per.entry(*mem).or_default();
                e.touched.union(&u.touched);
                e.written.union(&u.written);
            }
        }
        for (mem, u) in adds.into_iter().flat_map(|a| a.memory.iter()) {
            if let Some(e) = per.get_mut(mem) {
                e.added.union(&u.written);
            }
        }
        if own.is_empty() {
            continue;
        }
        for pos in 0..members.len() {
            let parts = slices(&steps[*k], weights, chunks, pos);
            for p in own.iter().filter(|p| mirror(p.memory).is_some()) {
                let e = per.entry(p.memory).or_default();
                e.own.resize_with(members.len(), Default::default);
                for (b, n) in &parts {
                    let r = p.of_groups(b[p.comp], n[p.comp]);
                    e.own[pos].0.insert(r);
                    if p.written {
                        e.own[pos].1.insert(r);
                    }
                }
            }
        }
    }
    per.into_iter()
        .filter_map(|(mem, mut a)| {
            let mirror = mirror(mem)?;
            let all = vkfuse_memory::Range::new(0, mirror.size());
            a.written.subtract(&a.added);
            let mut own: Vec<(usize, RangeSet, RangeSet)> = a
                .own
                .into_iter()
                .enumerate()
                .map(|(pos, (mut into, mut out))| {
                    into.subtract(&a.touched);
                    out.subtract(&a.written);
                    out.subtract(&a.added);
                    (members[pos], into.within(all), out.within(all))
                })
                .collect();
            let own_first = if own.is_empty() {
                (RangeSet::new(), RangeSet::new())
            } else {
                let (_, into, out) = own.remove(0);
                (into, out)
            };
            Some(MergeRange {
                touched: a.touched.within(all),
                written: a.written.within(all),
                added: a.added.within(all),
                own,
                own_first,
                mirror,
            })
        })
        .collect()
}

impl Merge {
    pub fn new(j: usize, others: Vec<usize>, rounds: Vec<(bool, Vec<MergeRange>)>) -> Merge {
        Merge {
            j,
            others,
            rounds,
            snapshots: parking_lot::Mutex::new(Vec::new()),
            copied: Default::default(),
            merged: Default::default(),
            spent_ns: Default::default(),
        }
    }

    /// The bytes the steps go through: what split rounds touch, copied to each other member,
    /// and what they may write, compared and merged from each.
    pub fn bytes(&self) -> u64 {
        self.rounds
            .iter()
            .filter(|r| r.0)
            .flat_map(|r| &r.1)
            .map(|a| {
                (a.touched.units() + a.written.units() + a.added.units()) * self.others.len() as u64
                    + a.own.iter().map(|o| o.1.units() + o.2.units()).sum::<u64>()
            })
            .sum()
    }

    /// The bytes the members' copies reached through stages go through on the device: the
    /// lead-in, each round's copies in and out, and the join (`Merge::staged_copies`).
    pub fn staged_bytes(&self) -> u64 {
        let size = |copies: Vec<StagedCopy>| -> u64 {
            copies
                .iter()
                .flat_map(|c| c.into.iter().chain(&c.out))
                .map(|r| r.size)
                .sum()
        };
        let rounds = self.rounds.len();
        let mut all = size(self.staged_lead_in());
        for m in std::iter::once(self.j).chain(self.others.iter().copied()) {
            // The first member's join too.
            let end = if m == self.j { rounds + 1 } else { rounds };
            for r in 0..end {
                all += size(self.staged_copies(r, m));
            }
        }
        all
    }

    /// Whether the merge reaches every member's copy of every allocation (mapped or through
    /// a stage).
    pub fn reachable(&self) -> bool {
        self.rounds.iter().flat_map(|r| &r.1).all(|a| {
            std::iter::once(self.j)
                .chain(self.others.iter().copied())
                .all(|m| a.mirror.reaches(m))
        })
    }

    /// Member `m`'s copies reached through stages in round `r` (a round index, or the
    /// number of rounds for the first member's join): the copy regions from each stage
    /// into the copy before the round's work and back after it. At the join, the first
    /// member's copy gets everything the rounds may have changed.
    pub fn staged_copies(&self, r: usize, m: usize) -> Vec<StagedCopy> {
        let first = m == self.j;
        let mut per: Vec<(&MergeRange, RangeSet, RangeSet)> = Vec::new();
        let rounds: Vec<&(bool, Vec<MergeRange>)> = if r == self.rounds.len() {
            self.rounds.iter().collect()
        } else {
            self.rounds.get(r).into_iter().collect()
        };
        for (split, allocs) in rounds {
            if !*split && !first {
                continue;
            }
            for a in allocs {
                if !matches!(a.mirror, Copies::Mirror { .. }) || a.mirror.stage(m).is_none() {
                    continue;
                }
                let (mut into, mut out) = a.staged_ranges(m, first, *split);
                if first && *split && r == self.rounds.len() {
                    for (_, _, o) in &a.own {
                        out.union(o);
                    }
                }
                let key = |x: &MergeRange| x.mirror.stage(m).map(Arc::as_ptr);
                match per.iter_mut().find(|p| key(p.0) == key(a)) {
                    Some(p) => {
                        p.1.union(&into);
                        p.2.union(&out);
                    }
                    None => per.push((a, std::mem::take(&mut into), std::mem::take(&mut out))),
                }
            }
        }
        per.into_iter()
            .filter_map(|(a, into, out)| {
                let Copies::Mirror { mirror, .. } = &a.mirror else {
                    return None;
                };
                let stage = a.mirror.stage(m)?;
                let (into, out) = if r == self.rounds.len() {
                    // The join: everything changed goes into the copy; nothing back.
                    (out, RangeSet::new())
                } else {
                    (into, out)
                };
                Some(StagedCopy {
                    cover: mirror.cover(m),
                    stage: stage.buffer(m),
                    into: stage.copies(&into, true),
                    out: stage.copies(&out, false),
                })
            })
            .filter(|c| !c.cover.is_null() && !c.stage.is_null())
            .collect()
    }

    /// The first member's copies reached through stages, copied out whole into their stages
    /// before the first round (after the first member's copy was made ready): each stage
    /// then holds what the batch touches, which the rounds' copies go between.
    pub fn staged_lead_in(&self) -> Vec<StagedCopy> {
        let m = self.j;
        let mut out: Vec<StagedCopy> = Vec::new();
        for a in self.rounds.iter().flat_map(|r| &r.1) {
            let (Copies::Mirror { mirror, .. }, Some(stage)) = (&a.mirror, a.mirror.stage(m))
            else {
                continue;
            };
            let buffer = stage.buffer(m);
            if out.iter().any(|c| c.stage == buffer) || buffer.is_null() {
                continue;
            }
            out.push(StagedCopy {
                cover: mirror.cover(m),
                stage: buffer,
                into: Vec::new(),
                out: stage.copies(&stage.ranges, false),
            });
        }
        out
    }

    /// Before round `r` (after the last, with `r` the number of rounds): merges the previous
    /// round's slices into `j`'s copy, then gives the other members what round `r` touches
    /// and keeps `j`'s copy of what it may write.
    ///
    /// # Safety
    /// Every member's work before round `r` is done and none of round `r` has started; the
    /// copies are mapped ([`Merge::mapped`]).
    pub unsafe fn step(&self, r: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let start = std::time::Instant::now();
        let mut snaps = self.snapshots.lock();
        if r == 0 {
            // Images: the first member's packed copy starts as the latest contents.
            let mut filled: Vec<*mut u8> = Vec::new();
            for a in self.rounds.iter().flat_map(|r| &r.1) {
                let Copies::Stages {
                    latest: Some(latest),
                    size,
                    ..
                } = &a.mirror
                else {
                    continue;
                };
                let to = a.mirror.at(self.j, 0);
                if to.is_null() || latest.base().is_null() || filled.contains(&to) {
                    continue;
                }
                filled.push(to);
                // SAFETY: both stages are mapped and `size` bytes long (`latest` was copied
                // out as the same regions); no member uses them before the first round.
                unsafe { std::ptr::copy_nonoverlapping(latest.base(), to, *size as usize) };
            }
        }
        if let Some((true, allocs)) = r.checked_sub(1).and_then(|p| self.rounds.get(p)) {
            let mut merged = 0u64;
            for (a, snap) in allocs.iter().zip(snaps.iter()) {
                let c = &a.mirror;
                for m in &self.others {
                    let mut at = 0usize;
                    // Written ranges merge by diff, added ones as sums of deltas; the
                    // snapshot holds them in this order.
                    let parts = a.written.ranges().iter().map(|r| (r, false));
                    for (range, add) in parts.chain(a.added.ranges().iter().map(|r| (r, true))) {
                        let n = range.len() as usize;
                        let before = &snap[at..at + n];
                        at += n;
                        let (from, to) = (c.at(*m, range.start), c.at(self.j, range.start));
                        if from.is_null() || to.is_null() {
                            continue;
                        }
                        // SAFETY: both copies are mapped and hold the range (a stage holds
                        // every range the batch touches, in one piece); the caller's
                        // contract keeps them still.
                        let (src, dst) = unsafe {
                            (
                                std::slice::from_raw_parts(from, n),
                                std::slice::from_raw_parts_mut(to, n),
                            )
                        };
                        merged += if add {
                            add_deltas(dst, src, before)
                        } else {
                            diff_into(dst, src, before)
                        };
                    }
                }
                // Each member's own bytes are its alone: copied back whole.
                for (m, _, out) in &a.own {
                    // SAFETY: as above.
                    merged += unsafe { copy_ranges(c, *m, self.j, out) };
                }
            }
            self.merged.fetch_add(merged, Relaxed);
        }
        snaps.clear();
        let Some((true, allocs)) = self.rounds.get(r) else {
            self.spent_ns
                .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
            return;
        };
        let mut copied = 0u64;
        for a in allocs {
            let c = &a.mirror;
            for m in &self.others {
                // SAFETY: as above.
                copied += unsafe { copy_ranges(c, self.j, *m, &a.touched) };
            }
            for (m, into, _) in &a.own {
                // SAFETY: as above.
                copied += unsafe { copy_ranges(c, self.j, *m, into) };
            }
            let mut snap = Vec::with_capacity((a.written.units() + a.added.units()) as usize);
            for range in a.written.ranges().iter().chain(a.added.ranges()) {
                let from = c.at(self.j, range.start);
                if from.is_null() {
                    snap.resize(snap.len() + range.len() as usize, 0);
                    continue;
                }
                // SAFETY: as above.
                snap.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(from, range.len() as usize)
                });
            }
            snaps.push(snap);
        }
        self.copied.fetch_add(copied, Relaxed);
        self.spent_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    }
}

/// Copies `ranges` (byte offsets of the allocation) from member `from`'s copy of `c` into
/// member `to`'s. Returns the bytes copied.
///
/// # Safety
/// Both copies are reached ([`Copies::reaches`]) and hold every range in one piece; nothing
/// else uses those bytes meanwhile.
unsafe fn copy_ranges(c: &Copies, from: usize, to: usize, ranges: &RangeSet) -> u64 {
    let mut n = 0;
    for range in ranges.ranges() {
        let (src, dst) = (c.at(from, range.start), c.at(to, range.start));
        if src.is_null() || dst.is_null() {
            continue;
        }
        // SAFETY: caller contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, range.len() as usize) };
        n += range.len();
    }
    n
}

/// Copies into `dst` the bytes where `src` differs from `before`. Returns how many.
/// Compares 8 bytes at a time, byte by byte only within words that differ.
fn diff_into(dst: &mut [u8], src: &[u8], before: &[u8]) -> u64 {
    let mut changed = 0;
    let words = dst.len() / 8 * 8;
    for k in (0..words).step_by(8) {
        let (s, b) = (&src[k..k + 8], &before[k..k + 8]);
        if s != b {
            for i in 0..8 {
                if s[i] != b[i] {
                    dst[k + i] = s[i];
                    changed += 1;
                }
            }
        }
    }
    for k in words..dst.len() {
        if src[k] != before[k] {
            dst[k] = src[k];
            changed += 1;
        }
    }
    changed
}

/// Adds to `dst` what `src` added to `before`, 32-bit word by word (wrapping; the words of an
/// add atomic's binding); bytes past the last whole word count as diffs. Returns the bytes
/// changed in `dst`.
fn add_deltas(dst: &mut [u8], src: &[u8], before: &[u8]) -> u64 {
    let mut changed = 0;
    let words = dst.len() / 4 * 4;
    for k in (0..words).step_by(4) {
        let word = |b: &[u8]| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
        let delta = word(src).wrapping_sub(word(before));
        if delta != 0 {
            let sum = word(dst).wrapping_add(delta);
            dst[k..k + 4].copy_from_slice(&sum.to_le_bytes());
            changed += 4;
        }
    }
    changed + diff_into(&mut dst[words..], &src[words..], &before[words..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Use;
    use vkfuse_memory::{Range, RangeSet};

    fn acc(m: u64, touched: (u64, u64), written: Option<(u64, u64)>) -> AccessSet {
        let mut a = AccessSet::default();
        a.memory.insert(
            m,
            Use {
                touched: RangeSet::of(Range::new(touched.0, touched.1)),
                written: written
                    .map_or_else(RangeSet::default, |w| RangeSet::of(Range::new(w.0, w.1))),
            },
        );
        a
    }

    fn dispatch(along: Option<usize>, access: AccessSet) -> Step {
        Step::Dispatch {
            base: [0; 3],
            count: [8, 1, 1],
            along,
            rest: access.clone(),
            access,
            adds: AccessSet::default(),
            own: Vec::new(),
            pipeline: 1,
        }
    }

    fn touch(access: AccessSet) -> Touch {
        Touch {
            rest: access.clone(),
            access,
            adds: Some(AccessSet::default()),
            own: Vec::new(),
        }
    }

    #[test]
    fn diffs_copy_only_changed_bytes() {
        let before: Vec<u8> = (0..21u8).collect();
        let mut src = before.clone();
        src[3] = 99;
        src[9] = 98;
        src[20] = 97;
        let mut dst = vec![7u8; 21];
        assert_eq!(diff_into(&mut dst, &src, &before), 3);
        let mut want = vec![7u8; 21];
        want[3] = 99;
        want[9] = 98;
        want[20] = 97;
        assert_eq!(dst, want);
    }

    #[test]
    fn deltas_add_up_word_by_word() {
        let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let before = words(&[10, 0, u32::MAX, 7]);
        // `dst` is the first member's result (+1, +2, +1, +0), `src` another's (+5, 0, +1, 0).
        let mut dst = words(&[11, 2, 0, 7]);
        let src = words(&[15, 0, 0, 7]);
        assert_eq!(add_deltas(&mut dst, &src, &before), 8);
        assert_eq!(dst, words(&[16, 2, 1, 7]));
        // A tail shorter than a word is merged by diff.
        let mut dst = vec![1, 2];
        assert_eq!(add_deltas(&mut dst, &[1, 9], &[1, 2]), 1);
        assert_eq!(dst, vec![1, 9]);
    }

    #[test]
    fn rounds_break_where_slices_would_race() {
        let steps = vec![
            Step::Pipeline(1),
            // Writes 0..100 of allocation 1.
            dispatch(Some(0), acc(1, (0, 100), Some((0, 100)))),
            Step::Barrier,
            // Writes 100..200: no conflict, same round.
            dispatch(Some(0), acc(1, (100, 200), Some((100, 200)))),
            // Reads 0..100, written by the first: a new round.
            dispatch(Some(0), acc(1, (0, 100), None)),
            // Whole dispatches: a round of their own, together.
            dispatch(None, acc(1, (0, 200), Some((0, 200)))),
            Step::Indirect {
                buffer: 9,
                offset: 0,
                pipeline: 1,
                access: acc(2, (0, 4), None),
                then: None,
                sliced: false,
            },
            // Only reads allocation 2: joins nothing whole, a new split round.
            dispatch(Some(0), acc(2, (0, 4), None)),
        ];
        let r = rounds(&steps);
        assert_eq!(
            r,
            vec![
                round(true, &[1, 3]),
                round(true, &[4]),
                round(false, &[5, 6]),
                round(true, &[7]),
            ]
        );
    }

    fn round(split: bool, dispatches: &[usize]) -> Round {
        Round {
            split,
            dispatches: dispatches.to_vec(),
        }
    }

    /// An image barrier of image 5 between `from` and `to`.
    fn image_barrier(from: vk::ImageLayout, to: vk::ImageLayout) -> Step {
        Step::Images(vec![ImageBarrier {
            image: 5,
            layouts: (from, to),
            range: vk::ImageSubresourceRange::default(),
        }])
    }

    #[test]
    fn layout_changes_end_rounds_and_spans_cover_the_log_once() {
        let general = vk::ImageLayout::GENERAL;
        let steps = vec![
            image_barrier(vk::ImageLayout::UNDEFINED, general),
            dispatch(Some(0), acc(1, (0, 100), Some((0, 100)))),
            // No layout change: the next dispatch joins the round.
            image_barrier(general, general),
            dispatch(Some(0), acc(1, (100, 200), Some((100, 200)))),
            // A layout change: a new round, though nothing conflicts.
            image_barrier(general, vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
            dispatch(Some(0), acc(1, (200, 300), Some((200, 300)))),
            Step::Barrier,
            image_barrier(vk::ImageLayout::TRANSFER_SRC_OPTIMAL, general),
        ];
        let r = rounds(&steps);
        assert_eq!(r, vec![round(true, &[1, 3]), round(true, &[5]),]);
        // Every step in exactly one span, in order; the first barrier before the first round's
        // dispatches, the layout change between rounds in the second, the trailing ones too.
        assert_eq!(spans(&steps, &r), vec![0..4, 4..8]);
        assert_eq!(steps[4].transitions().collect::<Vec<_>>(), vec![5]);
        assert_eq!(steps[2].transitions().count(), 0);
    }

    /// A dispatch cut along x of `count` groups of 64 whose bindings (allocation, byte range,
    /// written) each access 4 bytes per invocation from their start.
    fn elementwise(count: u32, parts: &[(u64, (u64, u64), bool)]) -> Step {
        let own: Vec<OwnPart> = parts
            .iter()
            .map(|(m, r, written)| OwnPart {
                memory: *m,
                range: Range::new(r.0, r.1),
                start: r.0,
                bytes: 4,
                comp: 0,
                local: 64,
                written: *written,
            })
            .collect();
        let mut access = AccessSet::default();
        for p in &own {
            p.feed(&mut access);
        }
        Step::Dispatch {
            base: [0; 3],
            count: [count, 1, 1],
            along: Some(0),
            access,
            adds: AccessSet::default(),
            own,
            rest: AccessSet::default(),
            pipeline: 1,
        }
    }

    #[test]
    fn dispatches_on_their_own_bytes_cut_alike_share_a_round() {
        let x = (1, (0, 4096), false);
        let y = (1, (4096, 8192), true);
        let steps = vec![
            // y = f(x, y), then again: the same bytes per workgroup, one round.
            elementwise(16, &[x, y]),
            Step::Barrier,
            elementwise(16, &[x, y]),
            // Cut into other counts: another member may hold a workgroup's bytes.
            elementwise(8, &[x, y]),
            // y read from another start: invocation g reads what g + 16 wrote.
            elementwise(8, &[(1, (4096 + 64, 8192), false)]),
            // x written by a binding not proven its own bytes (`rest`): it does not touch y,
            // and joins the dispatch before.
            dispatch(Some(0), acc(1, (0, 4096), Some((0, 4096)))),
            // Reads only x, its own bytes again, the cut alike: it still races with the
            // dispatch before, which writes x outside its own bytes.
            elementwise(8, &[x]),
        ];
        let r: Vec<Vec<usize>> = rounds(&steps).into_iter().map(|r| r.dispatches).collect();
        assert_eq!(r, vec![vec![0, 2], vec![3], vec![4, 5], vec![6]]);
        // A workgroup's bytes, within the binding.
        let Step::Dispatch { own, .. } = &steps[0] else {
            unreachable!()
        };
        assert_eq!(own[1].of_groups(2, 3), Range::new(4096 + 512, 4096 + 1280));
        assert_eq!(own[1].of_groups(15, 4), Range::new(4096 + 3840, 8192));
    }

    #[test]
    fn slices_of_indirect_dispatches_tile_the_parts() {
        let all = vkfuse_shader::slice::PARTS;
        for w in [
            &[1.0, 1.0][..],
            &[1.0, 3.0],
            &[0.2, 0.3, 0.5],
            &[5.0],
            &[0.0, 2.0],
            &[0.0, 0.0],
            &[f64::NAN, 1.0],
            &[1.0, 1000.0],
        ] {
            let p = parts(w);
            assert_eq!(p.len(), w.len());
            let mut at = 0;
            for (lo, hi) in &p {
                assert_eq!(*lo, at, "{w:?} {p:?}");
                assert!(hi >= lo);
                at = *hi;
            }
            assert_eq!(at, all, "{w:?} {p:?}");
        }
        assert_eq!(parts(&[1.0, 3.0]), vec![(0, 4), (4, 16)]);
    }

    #[test]
    fn sliced_indirect_dispatches_are_rounds_of_their_own() {
        let analysis = Arc::new(vkfuse_shader::Analysis::default());
        let mut log = Log::default();
        log.pipeline(5);
        log.dispatch(
            Some(&analysis),
            [0; 3],
            [8, 1, 1],
            touch(acc(7, (0, 64), Some((0, 64)))),
        );
        let pending = Pending {
            analysis: analysis.clone(),
            args: (7, 0),
            touch: touch(acc(8, (0, 64), None)),
        };
        log.indirect(1, 0, acc(8, (0, 64), None), Some(pending.clone()));
        log.indirect(1, 0, acc(8, (0, 64), None), Some(pending));
        log.indirect(1, 0, acc(8, (0, 64), None), None);
        // No pipeline with variants: nothing changes.
        assert!(slice_indirect(&log.steps, |_| false).is_none());
        let steps = slice_indirect(&log.steps, |p| p == 5).unwrap();
        let sliced: Vec<bool> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Indirect {
                    sliced, pipeline, ..
                } => {
                    assert_eq!(*pipeline, 5);
                    Some(*sliced)
                }
                _ => None,
            })
            .collect();
        // The third has no shader analysis that allows it.
        assert_eq!(sliced, vec![true, true, false]);
        // Each sliced dispatch a split round of its own, even where nothing conflicts.
        assert_eq!(
            rounds(&steps),
            vec![
                round(true, &[1]),
                round(true, &[2]),
                round(true, &[3]),
                round(false, &[4]),
            ]
        );
    }

    #[test]
    fn indirect_dispatches_with_counts_at_rest_become_dispatches() {
        let analysis = Arc::new(vkfuse_shader::Analysis::default());
        let pending = |at: u64| Pending {
            analysis: analysis.clone(),
            args: (7, at),
            touch: touch(acc(1, (0, 64), Some((0, 64)))),
        };
        let mut log = Log::default();
        log.indirect(1, 0, acc(7, (0, 12), None), Some(pending(0)));
        // Counts at 16 written by a transfer before the dispatch: not known at submit.
        log.transfer(
            Transfer::Fill {
                dst: 1,
                offset: 16,
                size: 12,
                data: 3,
            },
            acc(7, (16, 28), Some((16, 28))),
        );
        log.indirect(1, 16, acc(7, (16, 28), None), Some(pending(16)));
        assert_eq!(log.pending, 2);
        assert_eq!(log.splits, 0);
        assert_eq!(log.replays(&AccessSet::default()), Ok(()));
        let Some(steps) = log.resolve(|m, at| (m == 7).then_some([at as u32 + 5, 1, 1])) else {
            panic!("the first should become a dispatch that splits");
        };
        assert!(matches!(
            steps[0],
            Step::Dispatch {
                count: [5, 1, 1],
                along: Some(0),
                ..
            }
        ));
        assert!(matches!(steps[2], Step::Indirect { .. }));
        // Counts not known (not in shared memory, or pending writes): nothing changes.
        assert!(log.resolve(|_, _| None).is_none());
        // One group: it would not split.
        assert!(log.resolve(|_, _| Some([1, 1, 1])).is_none());
    }

    #[test]
    fn logs_split_only_shaders_without_refusals() {
        let mut log = Log::default();
        let fine = vkfuse_shader::Analysis::default();
        let atomic = vkfuse_shader::Analysis {
            num_workgroups: 0b111,
            ..Default::default()
        };
        // Reads the group count along y: cut along x, though y has more groups.
        let rows = vkfuse_shader::Analysis {
            num_workgroups: 0b010,
            ..Default::default()
        };
        log.dispatch(
            Some(&fine),
            [0; 3],
            [1, 40, 2],
            touch(acc(1, (0, 4), Some((0, 4)))),
        );
        log.dispatch(
            Some(&atomic),
            [0; 3],
            [40, 1, 1],
            touch(AccessSet::default()),
        );
        log.dispatch(None, [0; 3], [40, 1, 1], touch(AccessSet::default()));
        log.dispatch(Some(&fine), [0; 3], [1, 1, 1], touch(AccessSet::default()));
        log.dispatch(Some(&rows), [0; 3], [4, 40, 1], touch(AccessSet::default()));
        let along: Vec<Option<usize>> = log
            .steps
            .iter()
            .map(|s| match s {
                Step::Dispatch { along, .. } => *along,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(along, vec![Some(1), None, None, None, Some(0)]);
        assert_eq!(log.splits, 2);
        let mut fed = acc(1, (0, 4), Some((0, 4)));
        fed.fed = log.own;
        assert_eq!(log.replays(&fed), Ok(()));
        fed.fed += 1;
        assert!(log.replays(&fed).is_err());
        log.brk("an event wait");
        assert_eq!(log.replays(&fed), Err("an event wait"));
        assert!(log.steps.is_empty());
    }
}
