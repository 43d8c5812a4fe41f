//! Coherence: which sites hold the latest contents of every part of every resource, and the
//! transfers a batch needs before it runs on a member.
//!
//! # Model
//!
//! A *resource* (a buffer, an image, or a whole memory object if the ICD prefers to track at
//! that level) is identified by an opaque `u64` and seen as `len` units ([`crate::range`]:
//! bytes of a buffer, linearised subresources of an image). A *site* is a member or the host
//! ([`crate::sites`]).
//!
//! **Storages.** A resource has physical copies, its [`Storage`]s, described by its
//! [`Sharing`]. One storage can be seen by several sites: a host allocation imported into the
//! members that can import host pointers is one storage shared by those members *and* the
//! host; an allocation exported as an opaque fd and imported by a member of the same driver is
//! one storage shared by both; a device-local mirror is a storage of one member. Every storage
//! has an *owner*, the site whose allocation backs it: the host for imported host memory, the
//! exporting member for shared device memory, the member itself for a mirror, the mapped
//! member where the host's pointer is a member mapping. A site has at most one storage per
//! resource, or none (not resident; or its storage was owned by a member that was lost).
//!
//! **Holders.** For every unit, the tracker keeps the set of sites whose storage holds the
//! latest contents, in an interval map per resource (runs of units with equal holder sets;
//! runs split on partial overlap and merge again when equal). Because a storage is one copy,
//! a holder set is always a union of whole storages. An empty holder set means the latest
//! contents exist nowhere: the data was lost.
//!
//! - A write on member `k` (or a host write, the host being a site like any other) makes the
//!   holders exactly the sites of `k`'s storage. Host writes to memory imported into every
//!   member therefore make every member current at no cost; host writes into a shadow make
//!   only the host current.
//! - A read on site `j` that does not hold a unit needs a [`Transfer`] from a holder into
//!   `j`'s storage, by the cheapest route ([`crate::tiers::Topology::cheapest_source`]);
//!   afterwards all sites of `j`'s storage hold it.
//!
//! # Plan and commit: the logical state
//!
//! The holder sets describe the state *after all committed work has completed*, in
//! submission order, not what is finished on the GPUs right now. The ICD plans a batch at
//! submit time with [`Tracker::plan_batch`] (pure: `&self`), submits the transfers and the
//! batch, and then commits it with [`Tracker::commit_batch`] **before planning anything
//! else**. A plan can be dropped instead of committed (a submit failed, a member ran out of
//! memory): nothing changed. A plan is valid only against the state it was made from; a
//! commit after any other change fails with [`CoherenceError::StalePlan`].
//!
//! Committing at completion instead would be unsound: batch A on member 0 writes X, batch B
//! on member 1 reads X and is planned while A still runs; if A were not committed yet, B's
//! plan would see X as current on member 1 and skip the transfer. The price of the logical
//! state is that ordering is the ICD's job: a transfer's source side runs on the source's
//! queue after the work already submitted there, and the batch on the destination waits for
//! the transfer (a semaphore, or the bridge thread where members share no sync object).
//! Reads of shared storage written on another member need the same wait, which the
//! application's own synchronisation gives through virtual sync.
//!
//! Single operations ([`Tracker::write`], [`Tracker::host_write`],
//! [`Tracker::commit_transfers`]) change the state at once, for work that is complete when
//! it is committed (a host write; a read-back the ICD waits for before `vkMapMemory` returns).
//!
//! # Batches in flight and member loss
//!
//! [`Tracker::commit_batch`] returns a [`Ticket`]; the ICD calls [`Tracker::retire`] when the
//! batch has completed. While some batch is in flight the tracker keeps a record of what each
//! later operation wrote and which storages its transfers filled.
//!
//! When a member is lost, [`Tracker::lose_member`] removes it from every storage and every
//! holder set; a storage it owned is gone for all its sites (they are reported as
//! `orphaned` and hold nothing until [`Tracker::add_storage`] gives them a new one). Units
//! left without holders are reported lost. The report also lists the batches in flight that
//! involve the member (ran on it, or had a transfer from or to it).
//!
//! Batches that will never complete (those, and every batch that depends on their results,
//! for example one stalled behind them on a queue or waiting for their semaphores) must then
//! be given to [`Tracker::fail_batches`]. The set given must be closed under dependency: a
//! batch that read what a failed batch wrote or transferred must fail as well. For a failed
//! batch, the tracker assumes that each storage it wrote into or transferred into may hold
//! anything: units it wrote lose all holders, units it transferred lose that storage, except
//! where a later operation that did not fail wrote them again.
//! The ICD reports device-lost when a report says data was lost (or later, when such data is
//! read: a plan reading units without holders fails with [`CoherenceError::DataLost`]; a
//! write restores them).
//!
//! # Not modelled here
//!
//! Aliasing (two resources bound to the same memory) is the ICD's to resolve, by tracking the
//! memory object as the resource. Image layouts and queue-family ownership after a transfer,
//! and the chunking of staging transfers, are the ICD's too. The tracker is not thread-safe
//! by itself; the ICD keeps it behind one lock per device.

use crate::interval::IntervalMap;
use crate::range::{Range, RangeSet, SubresourceLayout};
use crate::sites::{Members, Site, Sites};
use crate::tiers::{Tier, Topology};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Why the tracker refused an operation. Every refusal leaves the state unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoherenceError {
    /// No resource with this id.
    UnknownResource(u64),
    /// A resource with this id exists already.
    DuplicateResource(u64),
    /// The member index is outside the topology.
    BadMember(usize),
    /// The member was lost.
    MemberLost(usize),
    /// The site has no storage of this resource.
    NoCopy { id: u64, site: Site },
    /// These units have no holder: their latest contents were lost.
    DataLost { id: u64, range: Range },
    /// The plan was made against an earlier state.
    StalePlan,
    /// The ticket is not of a batch in flight.
    UnknownTicket(Ticket),
    /// A sharing that is not a partition of live sites into storages with owners inside.
    BadSharing(&'static str),
    /// A transfer whose source does not hold the whole range, or whose destination has no
    /// storage or already shares the source's.
    BadTransfer(Transfer),
}

impl fmt::Display for CoherenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoherenceError::UnknownResource(id) => write!(f, "unknown resource {id:#x}"),
            CoherenceError::DuplicateResource(id) => write!(f, "resource {id:#x} exists already"),
            CoherenceError::BadMember(m) => write!(f, "no member {m}"),
            CoherenceError::MemberLost(m) => write!(f, "member {m} was lost"),
            CoherenceError::NoCopy { id, site } => {
                write!(f, "{site} has no copy of resource {id:#x}")
            }
            CoherenceError::DataLost { id, range } => {
                write!(f, "units {range} of resource {id:#x} were lost")
            }
            CoherenceError::StalePlan => f.write_str("plan made against an earlier state"),
            CoherenceError::UnknownTicket(t) => write!(f, "no batch {} in flight", t.0),
            CoherenceError::BadSharing(why) => write!(f, "bad sharing: {why}"),
            CoherenceError::BadTransfer(t) => write!(
                f,
                "bad transfer of units {} of resource {:#x} from {} to {}",
                t.range, t.id, t.src, t.dst
            ),
        }
    }
}

impl std::error::Error for CoherenceError {}

pub type Result<T> = std::result::Result<T, CoherenceError>;

/// One physical copy of a resource, seen by `sites`, backed by `owner`'s allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Storage {
    pub sites: Sites,
    pub owner: Site,
}

/// The storages of a resource: disjoint, non-empty, each with its owner among its sites.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sharing {
    storages: Vec<Storage>,
}

impl Sharing {
    /// Checks and sorts `storages`.
    pub fn new(storages: Vec<Storage>) -> Result<Sharing> {
        let mut seen = Sites::EMPTY;
        for s in &storages {
            if s.sites.is_empty() {
                return Err(CoherenceError::BadSharing("a storage without sites"));
            }
            if !s.sites.contains(s.owner) {
                return Err(CoherenceError::BadSharing("an owner outside its storage"));
            }
            if s.sites.intersects(seen) {
                return Err(CoherenceError::BadSharing("a site in two storages"));
            }
            seen |= s.sites;
        }
        Ok(Sharing::from_valid(storages))
    }

    /// Storages known to be valid (built by this crate).
    pub(crate) fn from_valid(mut storages: Vec<Storage>) -> Sharing {
        storages.sort();
        Sharing { storages }
    }

    /// One storage per member, owned by it; none on the host.
    pub fn mirrored(members: Members) -> Sharing {
        Sharing::from_valid(
            members
                .iter()
                .filter_map(Site::member)
                .map(|s| Storage {
                    sites: Sites::single(s),
                    owner: s,
                })
                .collect(),
        )
    }

    /// One storage seen by every site of `sites`, backed by `owner`'s allocation.
    pub fn shared(sites: Sites, owner: Site) -> Result<Sharing> {
        Sharing::new(vec![Storage { sites, owner }])
    }

    pub fn storages(&self) -> &[Storage] {
        &self.storages
    }

    /// The storage `site` sees, if any.
    pub fn storage_of(&self, site: Site) -> Option<Storage> {
        self.storages
            .iter()
            .find(|s| s.sites.contains(site))
            .copied()
    }

    /// Every site with a storage.
    pub fn sites(&self) -> Sites {
        self.storages
            .iter()
            .fold(Sites::EMPTY, |acc, s| acc | s.sites)
    }

    /// The sites of every storage that some site of `s` sees.
    pub fn close(&self, s: Sites) -> Sites {
        self.storages
            .iter()
            .filter(|st| st.sites.intersects(s))
            .fold(Sites::EMPTY, |acc, st| acc | st.sites)
    }
}

/// How a resource is created: its number of units, the approximate bytes per unit (1 for
/// buffers; for images an average subresource size, used only to compare transfer costs),
/// and its storages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDesc {
    pub len: u64,
    pub unit_bytes: u64,
    pub sharing: Sharing,
}

impl ResourceDesc {
    /// A buffer (or memory object) of `size` bytes.
    pub fn buffer(size: u64, sharing: Sharing) -> ResourceDesc {
        ResourceDesc {
            len: size,
            unit_bytes: 1,
            sharing,
        }
    }

    /// An image with `layout`'s subresources, each about `subresource_bytes` large.
    pub fn image(
        layout: SubresourceLayout,
        subresource_bytes: u64,
        sharing: Sharing,
    ) -> ResourceDesc {
        ResourceDesc {
            len: layout.units(),
            unit_bytes: subresource_bytes,
            sharing,
        }
    }
}

/// One planned copy of units `range` of resource `id` from `src`'s storage into `dst`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub range: Range,
    pub src: Site,
    pub dst: Site,
    pub tier: Tier,
    /// `range.len() * unit_bytes`.
    pub bytes: u64,
    /// The expected cost by the topology's tier costs.
    pub cost_ns: u64,
}

/// What a batch reads and writes: `(resource, units)` pairs. Ranges are clipped to the
/// resource (use [`Range::WHOLE`] for "all of it", the cheap conservative write); overlaps
/// are fine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchAccess {
    pub reads: Vec<(u64, Range)>,
    pub writes: Vec<(u64, Range)>,
}

impl BatchAccess {
    pub fn new() -> BatchAccess {
        BatchAccess::default()
    }

    pub fn read(mut self, id: u64, r: Range) -> BatchAccess {
        self.reads.push((id, r));
        self
    }

    pub fn write(mut self, id: u64, r: Range) -> BatchAccess {
        self.writes.push((id, r));
        self
    }
}

/// The transfers a batch needs before it runs on `member`, and what it writes. Made by
/// [`Tracker::plan_batch`], applied by [`Tracker::commit_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    member: usize,
    transfers: Vec<Transfer>,
    reads: Vec<(u64, Range)>,
    writes: Vec<(u64, Range)>,
    generation: u64,
}

impl BatchPlan {
    pub fn member(&self) -> usize {
        self.member
    }

    /// The transfers to run before the batch, by resource and then unit, with disjoint
    /// ranges; all into `member`'s storages.
    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    /// The batch's reads, clipped and merged per resource.
    pub fn reads(&self) -> &[(u64, Range)] {
        &self.reads
    }

    /// The batch's writes, clipped and merged per resource.
    pub fn writes(&self) -> &[(u64, Range)] {
        &self.writes
    }

    /// The expected cost of all transfers.
    pub fn cost_ns(&self) -> u64 {
        self.transfers
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.cost_ns))
    }

    /// The bytes all transfers move.
    pub fn bytes(&self) -> u64 {
        self.transfers
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bytes))
    }
}

/// A committed batch, until it is retired or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What a loss or a failure cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossReport {
    /// Units that had holders before and have none now, by resource, merged and sorted.
    pub lost: Vec<(u64, Range)>,
    /// Sites that lost their storage of a resource because the lost member owned it.
    pub orphaned: Vec<(u64, Sites)>,
    /// Batches in flight that involve the lost member: they will not complete and must be
    /// given to [`Tracker::fail_batches`] (with every batch that depends on them).
    pub in_flight: Vec<Ticket>,
}

impl LossReport {
    /// Whether the latest contents of some units exist nowhere any more.
    pub fn data_lost(&self) -> bool {
        !self.lost.is_empty()
    }
}

/// Counts for `vkfuse info` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub resources: usize,
    pub units: u64,
    /// Runs of units with equal holders, over all resources.
    pub segments: usize,
    pub lost_units: u64,
    pub in_flight: usize,
    /// Units held by each site, indexed by [`Site::index`] (the host last).
    pub held: [u64; crate::sites::MAX_MEMBERS + 1],
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resources, {} units in {} runs, {} lost, {} batches in flight; held:",
            self.resources, self.units, self.segments, self.lost_units, self.in_flight
        )?;
        for (i, n) in self.held.iter().enumerate() {
            if *n > 0 {
                match Site::member(i) {
                    Some(_) => write!(f, " {i}={n}")?,
                    None => write!(f, " host={n}")?,
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Resource {
    unit_bytes: u64,
    sharing: Sharing,
    holders: IntervalMap<Sites>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    InFlight,
    Retired,
    Failed,
}

/// What one operation did, kept while an earlier batch is in flight.
#[derive(Clone, Debug)]
struct Record {
    ticket: u64,
    state: State,
    /// Sites whose queues run part of it (its member, transfer sources); empty for single
    /// operations.
    involves: Sites,
    writes: Vec<(u64, Range)>,
    /// Transfer destinations: the storage's sites at commit.
    fills: Vec<(u64, Range, Sites)>,
}

/// The coherence tracker of one fused device.
#[derive(Clone, Debug)]
pub struct Tracker {
    topology: Topology,
    alive: Sites,
    resources: BTreeMap<u64, Resource>,
    generation: u64,
    next_ticket: u64,
    window: VecDeque<Record>,
}

impl Tracker {
    /// A tracker for the members of `topology`, all alive.
    pub fn new(topology: Topology) -> Tracker {
        Tracker {
            alive: Sites::all(topology.members()),
            topology,
            resources: BTreeMap::new(),
            generation: 0,
            next_ticket: 0,
            window: VecDeque::new(),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// For measured costs and disabled tiers; plans made before a change are stale.
    pub fn topology_mut(&mut self) -> &mut Topology {
        self.generation += 1;
        &mut self.topology
    }

    /// The members not lost.
    pub fn alive(&self) -> Members {
        self.alive.members()
    }

    fn member_site(&self, m: usize) -> Result<Site> {
        let site = Site::member(m)
            .filter(|_| m < self.topology.members())
            .ok_or(CoherenceError::BadMember(m))?;
        if !self.alive.contains(site) {
            return Err(CoherenceError::MemberLost(m));
        }
        Ok(site)
    }

    fn resource(&self, id: u64) -> Result<&Resource> {
        self.resources
            .get(&id)
            .ok_or(CoherenceError::UnknownResource(id))
    }

    fn storage(&self, id: u64, site: Site) -> Result<Storage> {
        self.resource(id)?
            .sharing
            .storage_of(site)
            .ok_or(CoherenceError::NoCopy { id, site })
    }

    /// Adds a record of a completed single operation when some batch is in flight (later
    /// failures must know what was written after them; what it transferred does not matter).
    fn record_done(&mut self, writes: Vec<(u64, Range)>) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if self.window.is_empty() {
            return;
        }
        self.window.push_back(Record {
            ticket,
            state: State::Retired,
            involves: Sites::EMPTY,
            writes,
            fills: Vec::new(),
        });
    }

    fn trim_window(&mut self) {
        while self
            .window
            .front()
            .is_some_and(|r| r.state != State::InFlight)
        {
            self.window.pop_front();
        }
    }

    /// Starts tracking resource `id`. The sites in `initial` (closed over storages, limited to
    /// live sites) hold its contents: all sites for a new resource, whose contents are
    /// undefined everywhere alike; the host alone for memory the host filled first.
    pub fn create(&mut self, id: u64, desc: ResourceDesc, initial: Sites) -> Result<()> {
        if self.resources.contains_key(&id) {
            return Err(CoherenceError::DuplicateResource(id));
        }
        if !desc.sharing.sites().is_subset(self.alive) {
            return Err(CoherenceError::BadSharing(
                "a storage on a lost or unknown site",
            ));
        }
        let holders = desc.sharing.close(initial & self.alive);
        self.resources.insert(
            id,
            Resource {
                unit_bytes: desc.unit_bytes,
                sharing: desc.sharing,
                holders: IntervalMap::new(desc.len, holders),
            },
        );
        self.generation += 1;
        Ok(())
    }

    /// Stops tracking resource `id` (records of batches in flight forget it too, so the id
    /// can be reused at once).
    pub fn destroy(&mut self, id: u64) -> Result<()> {
        self.resources
            .remove(&id)
            .ok_or(CoherenceError::UnknownResource(id))?;
        for r in &mut self.window {
            r.writes.retain(|w| w.0 != id);
            r.fills.retain(|w| w.0 != id);
        }
        self.generation += 1;
        Ok(())
    }

    /// Gives sites without a storage of `id` (orphaned by a loss, or never resident) a new,
    /// empty storage; it holds nothing until written or filled by a transfer.
    pub fn add_storage(&mut self, id: u64, storage: Storage) -> Result<()> {
        let alive = self.alive;
        let res = self
            .resources
            .get_mut(&id)
            .ok_or(CoherenceError::UnknownResource(id))?;
        if !storage.sites.is_subset(alive) {
            return Err(CoherenceError::BadSharing(
                "a storage on a lost or unknown site",
            ));
        }
        let mut all = res.sharing.storages().to_vec();
        all.push(storage);
        res.sharing = Sharing::new(all)?;
        self.generation += 1;
        Ok(())
    }

    /// Units `range` of `id` were written on `member` (work already complete or ordered by the
    /// ICD; batches use [`Tracker::plan_batch`]): the sites of its storage are now the only
    /// holders.
    pub fn write(&mut self, id: u64, range: Range, member: usize) -> Result<()> {
        let site = self.member_site(member)?;
        self.write_site(id, range, site)
    }

    /// The host wrote units `range` of `id` into its storage: the sites of that storage are
    /// now the only holders (every member importing the host allocation, or the host alone
    /// for a shadow).
    pub fn host_write(&mut self, id: u64, range: Range) -> Result<()> {
        self.write_site(id, range, Site::HOST)
    }

    fn write_site(&mut self, id: u64, range: Range, site: Site) -> Result<()> {
        let st = self.storage(id, site)?;
        let res = self
            .resources
            .get_mut(&id)
            .ok_or(CoherenceError::UnknownResource(id))?;
        let range = range.clip(res.holders.len());
        res.holders.assign(range, st.sites);
        self.generation += 1;
        self.record_done(vec![(id, range)]);
        Ok(())
    }

    /// The transfers that make `to` hold units `range` of `id`: one per run of units that
    /// `to` does not hold, from the cheapest holder (adjacent runs from the same source
    /// merged). Pure; apply with [`Tracker::commit_transfers`] once they are done.
    pub fn read_plan(&self, id: u64, range: Range, to: Site) -> Result<Vec<Transfer>> {
        if let Some(m) = to.as_member() {
            self.member_site(m)?;
        }
        self.storage(id, to)?;
        let res = self.resource(id)?;
        let mut out = Vec::new();
        self.plan_reads(id, res, range, to, &mut out)?;
        Ok(out)
    }

    fn plan_reads(
        &self,
        id: u64,
        res: &Resource,
        range: Range,
        to: Site,
        out: &mut Vec<Transfer>,
    ) -> Result<()> {
        for (seg, holders) in res.holders.segments(range) {
            if holders.contains(to) {
                continue;
            }
            if holders.is_empty() {
                return Err(CoherenceError::DataLost { id, range: seg });
            }
            let bytes = seg.len().saturating_mul(res.unit_bytes);
            let route = self
                .topology
                .cheapest_source(holders, to, bytes)
                .ok_or(CoherenceError::NoCopy { id, site: to })?;
            match out.last_mut() {
                Some(t) if t.id == id && t.src == route.src && t.range.end == seg.start => {
                    t.range.end = seg.end;
                }
                _ => out.push(Transfer {
                    id,
                    range: seg,
                    src: route.src,
                    dst: to,
                    tier: route.tier,
                    bytes,
                    cost_ns: route.cost_ns,
                }),
            }
        }
        // Merged transfers: recompute size, tier and cost for the whole range.
        for t in out.iter_mut().filter(|t| t.id == id) {
            t.bytes = t.range.len().saturating_mul(res.unit_bytes);
            if let Some(r) = self.topology.route(t.src, t.dst, t.bytes) {
                t.tier = r.tier;
                t.cost_ns = r.cost_ns;
            }
        }
        Ok(())
    }

    /// The units of `units` of `id` that `to` does not hold: what [`Tracker::read_plan`] would
    /// transfer into it, as one set. Pure.
    pub fn lacks(&self, id: u64, units: &RangeSet, to: Site) -> Result<RangeSet> {
        let mut out = RangeSet::new();
        for r in units.ranges() {
            for t in self.read_plan(id, *r, to)? {
                out.insert(t.range);
            }
        }
        Ok(out)
    }

    /// Applies completed transfers: each destination's storage now holds the range. Every
    /// transfer is checked against the current state before any is applied (its source holds
    /// the whole range, its destination has a storage); chains are not supported.
    pub fn commit_transfers(&mut self, transfers: &[Transfer]) -> Result<()> {
        let mut fills = Vec::with_capacity(transfers.len());
        for t in transfers {
            let bad = || CoherenceError::BadTransfer(*t);
            let res = self.resource(t.id)?;
            let dst = res.sharing.storage_of(t.dst).ok_or_else(bad)?;
            let src_ok = self.alive.contains(t.src)
                && self.alive.contains(t.dst)
                && !dst.sites.contains(t.src)
                && res
                    .holders
                    .segments(t.range)
                    .all(|(_, h)| h.contains(t.src));
            if !src_ok {
                return Err(bad());
            }
            fills.push((t.id, t.range.clip(res.holders.len()), dst.sites));
        }
        for (id, range, sites) in &fills {
            if let Some(res) = self.resources.get_mut(id) {
                res.holders.update(*range, |h| h | *sites, |_, _, _| {});
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Plans a batch on `member`: the transfers that make it hold everything the batch reads,
    /// and the writes that will make its storage the only holder afterwards. Pure.
    ///
    /// Fails with [`CoherenceError::NoCopy`] when the member has no storage of a resource the
    /// batch uses, and with [`CoherenceError::DataLost`] when it reads units without holders.
    pub fn plan_batch(&self, access: &BatchAccess, member: usize) -> Result<BatchPlan> {
        let site = self.member_site(member)?;
        let reads = self.normalise(&access.reads)?;
        let writes = self.normalise(&access.writes)?;
        for id in reads.keys().chain(writes.keys()) {
            self.storage(*id, site)?;
        }
        let mut transfers = Vec::new();
        for (id, set) in &reads {
            let res = self.resource(*id)?;
            for r in set.ranges() {
                self.plan_reads(*id, res, *r, site, &mut transfers)?;
            }
        }
        let flat = |m: BTreeMap<u64, RangeSet>| -> Vec<(u64, Range)> {
            m.into_iter()
                .flat_map(|(id, s)| s.ranges().iter().map(move |r| (id, *r)).collect::<Vec<_>>())
                .collect()
        };
        Ok(BatchPlan {
            member,
            transfers,
            reads: flat(reads),
            writes: flat(writes),
            generation: self.generation,
        })
    }

    fn normalise(&self, list: &[(u64, Range)]) -> Result<BTreeMap<u64, RangeSet>> {
        let mut out: BTreeMap<u64, RangeSet> = BTreeMap::new();
        for (id, r) in list {
            let len = self.resource(*id)?.holders.len();
            out.entry(*id).or_default().insert(r.clip(len));
        }
        Ok(out)
    }

    /// Applies a plan made against the current state: its transfers, then its writes. Returns
    /// the batch's ticket, to [`Tracker::retire`] when it completes.
    pub fn commit_batch(&mut self, plan: &BatchPlan) -> Result<Ticket> {
        if plan.generation != self.generation {
            return Err(CoherenceError::StalePlan);
        }
        let site = self.member_site(plan.member)?;
        let mut fills = Vec::with_capacity(plan.transfers.len());
        let mut involves = Sites::single(site);
        for t in &plan.transfers {
            let st = self.storage(t.id, t.dst)?;
            fills.push((t.id, t.range, st.sites));
            if !t.src.is_host() {
                involves = involves.with(t.src);
            }
        }
        let mut write_sites = Vec::with_capacity(plan.writes.len());
        for (id, _) in &plan.writes {
            write_sites.push(self.storage(*id, site)?.sites);
        }
        for (id, range, sites) in &fills {
            if let Some(res) = self.resources.get_mut(id) {
                res.holders.update(*range, |h| h | *sites, |_, _, _| {});
            }
        }
        for ((id, range), sites) in plan.writes.iter().zip(write_sites) {
            if let Some(res) = self.resources.get_mut(id) {
                res.holders.assign(*range, sites);
            }
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.window.push_back(Record {
            ticket,
            state: State::InFlight,
            involves,
            writes: plan.writes.clone(),
            fills,
        });
        self.generation += 1;
        Ok(Ticket(ticket))
    }

    fn find(&self, t: Ticket) -> Result<usize> {
        self.window
            .binary_search_by_key(&t.0, |r| r.ticket)
            .ok()
            .filter(|i| self.window[*i].state == State::InFlight)
            .ok_or(CoherenceError::UnknownTicket(t))
    }

    /// The batch completed.
    pub fn retire(&mut self, t: Ticket) -> Result<()> {
        let i = self.find(t)?;
        self.window[i].state = State::Retired;
        self.trim_window();
        Ok(())
    }

    /// The batches in flight, oldest first.
    pub fn in_flight(&self) -> Vec<Ticket> {
        self.window
            .iter()
            .filter(|r| r.state == State::InFlight)
            .map(|r| Ticket(r.ticket))
            .collect()
    }

    /// Member `m` was lost: it leaves every storage and holder set, storages it owned are gone
    /// for all their sites. See the module documentation.
    pub fn lose_member(&mut self, m: usize) -> Result<LossReport> {
        let site = self.member_site(m)?;
        self.alive = self.alive.without(site);
        let mut report = LossReport::default();
        for (id, res) in &mut self.resources {
            let mut dead = Sites::single(site);
            let mut kept = Vec::with_capacity(res.sharing.storages().len());
            for st in res.sharing.storages() {
                if st.owner == site {
                    dead |= st.sites;
                    let orphans = st.sites.without(site);
                    if !orphans.is_empty() {
                        report.orphaned.push((*id, orphans));
                    }
                } else {
                    kept.push(Storage {
                        sites: st.sites.without(site),
                        owner: st.owner,
                    });
                }
            }
            res.sharing = Sharing::from_valid(kept);
            let mut lost = RangeSet::new();
            res.holders.update(
                Range::WHOLE,
                |h| h - dead,
                |r, old, new| {
                    if !old.is_empty() && new.is_empty() {
                        lost.insert(r);
                    }
                },
            );
            report.lost.extend(lost.ranges().iter().map(|r| (*id, *r)));
        }
        report.in_flight = self
            .window
            .iter()
            .filter(|r| r.state == State::InFlight && r.involves.contains(site))
            .map(|r| Ticket(r.ticket))
            .collect();
        self.generation += 1;
        Ok(report)
    }

    /// The batches `tickets` will never complete. What they wrote loses all holders and the
    /// storages they transferred into stop holding, except where a later operation that did
    /// not fail wrote the units again. The set must be closed under dependency; see the module
    /// documentation.
    pub fn fail_batches(&mut self, tickets: &[Ticket]) -> Result<LossReport> {
        let mut idx = Vec::with_capacity(tickets.len());
        for t in tickets {
            idx.push(self.find(*t)?);
        }
        for i in &idx {
            self.window[*i].state = State::Failed;
        }
        idx.sort_unstable();
        idx.dedup();
        // Damage per resource: units to clear, and (range, storage) to drop.
        let mut clear: BTreeMap<u64, RangeSet> = BTreeMap::new();
        let mut unfill: Vec<(u64, Range, Sites)> = Vec::new();
        for i in idx {
            let rec = &self.window[i];
            let later: Vec<&Record> = self
                .window
                .iter()
                .skip(i + 1)
                .filter(|r| r.state != State::Failed)
                .collect();
            let rewritten = |id: u64| -> RangeSet {
                later
                    .iter()
                    .flat_map(|r| r.writes.iter())
                    .filter(|w| w.0 == id)
                    .map(|w| w.1)
                    .collect()
            };
            for (id, r) in &rec.writes {
                let mut d = RangeSet::of(*r);
                d.subtract(&rewritten(*id));
                for x in d.ranges() {
                    clear.entry(*id).or_default().insert(*x);
                }
            }
            for (id, r, sites) in &rec.fills {
                // A later fill into the same storage needs it not to hold the units, which
                // only a later write (subtracted here) can cause: fills need no subtracting.
                let mut d = RangeSet::of(*r);
                d.subtract(&rewritten(*id));
                for x in d.ranges() {
                    unfill.push((*id, *x, *sites));
                }
            }
        }
        let mut lost: BTreeMap<u64, RangeSet> = BTreeMap::new();
        let ops = unfill
            .into_iter()
            .chain(clear.into_iter().flat_map(|(id, set)| {
                set.ranges()
                    .iter()
                    .map(move |r| (id, *r, !Sites::EMPTY))
                    .collect::<Vec<_>>()
            }));
        for (id, r, gone) in ops {
            let Some(res) = self.resources.get_mut(&id) else {
                continue;
            };
            let l = lost.entry(id).or_default();
            res.holders.update(
                r,
                |h| h - gone,
                |r, old, new| {
                    if !old.is_empty() && new.is_empty() {
                        l.insert(r);
                    }
                },
            );
        }
        self.trim_window();
        self.generation += 1;
        Ok(LossReport {
            lost: lost
                .into_iter()
                .flat_map(|(id, s)| s.ranges().iter().map(move |r| (id, *r)).collect::<Vec<_>>())
                .collect(),
            orphaned: Vec::new(),
            in_flight: Vec::new(),
        })
    }

    /// The sites holding unit `unit` of `id`; `None` for an unknown resource or unit.
    pub fn holders(&self, id: u64, unit: u64) -> Option<Sites> {
        self.resources.get(&id)?.holders.get(unit)
    }

    /// The runs of units of `id` with their holders.
    pub fn segments(&self, id: u64) -> Result<Vec<(Range, Sites)>> {
        Ok(self.resource(id)?.holders.segments(Range::WHOLE).collect())
    }

    pub fn sharing(&self, id: u64) -> Result<&Sharing> {
        Ok(&self.resource(id)?.sharing)
    }

    /// The number of units of `id`.
    pub fn resource_len(&self, id: u64) -> Result<u64> {
        Ok(self.resource(id)?.holders.len())
    }

    /// The ids of all resources, in increasing order.
    pub fn resources(&self) -> impl Iterator<Item = u64> + '_ {
        self.resources.keys().copied()
    }

    /// Every run of units without holders.
    pub fn lost(&self) -> Vec<(u64, Range)> {
        self.resources
            .iter()
            .flat_map(|(id, res)| {
                res.holders
                    .segments(Range::WHOLE)
                    .filter(|(_, h)| h.is_empty())
                    .map(move |(r, _)| (*id, r))
            })
            .collect()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            resources: self.resources.len(),
            in_flight: self.in_flight().len(),
            ..Summary::default()
        };
        for res in self.resources.values() {
            s.units += res.holders.len();
            s.segments += res.holders.segment_count();
            for (r, h) in res.holders.segments(Range::WHOLE) {
                if h.is_empty() {
                    s.lost_units += r.len();
                }
                for site in h.iter() {
                    s.held[site.index()] += r.len();
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model;
