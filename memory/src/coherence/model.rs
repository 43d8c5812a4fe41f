//! Randomized test: the tracker against a reference that simulates contents.
//!
//! The reference does not track holders at all. It keeps, for every storage of every resource,
//! the *contents* of each unit as a version number, and the latest version of each unit: a
//! write stores a fresh version into the writer's storage; a transfer copies the source
//! storage's versions into the destination's; a batch that fails instead leaves a fresh
//! garbage value in every storage it wrote or transferred into, at its place in submission
//! order (the latest version of what it wrote is then held by nobody). The holders of a unit
//! are the sites of the storages whose contents equal the latest version. After every
//! operation the tracker's holders must equal those, unit by unit; every plan's transfers must
//! come from holders and cover exactly the units the reader does not hold; every loss report
//! must name exactly the units that had holders before and have none after.
//!
//! Failures are known only when a member is lost, after later batches were committed, so the
//! reference keeps a log of operations since the oldest batch in flight and replays it (with
//! the failed batches as garbage) on top of a settled state.
//!
//! Batches depend on the batches that last touched what they read; batches retire only after
//! their dependencies, and the set of failed batches is closed under dependency, as the
//! tracker requires.

use super::*;
use crate::sites::MAX_MEMBERS;
use crate::tiers::{MemberCaps, TierCost};
use std::collections::{BTreeSet, VecDeque};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize])
    }
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    version: u64,
    /// The last batch that wrote or transferred into this cell.
    by: Option<u64>,
}

#[derive(Clone, Debug)]
struct RefStorage {
    sites: Sites,
    owner: Site,
    cells: Vec<Cell>,
}

#[derive(Clone, Debug)]
struct RefResource {
    storages: Vec<RefStorage>,
    latest: Vec<u64>,
}

impl RefResource {
    fn storage(&self, site: Site) -> Option<usize> {
        self.storages.iter().position(|s| s.sites.contains(site))
    }

    fn holders(&self, u: usize) -> Sites {
        self.storages
            .iter()
            .filter(|s| s.cells[u].version == self.latest[u])
            .fold(Sites::EMPTY, |a, s| a | s.sites)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        id: u64,
        len: u64,
        storages: Vec<Storage>,
        initial: Sites,
    },
    Destroy {
        id: u64,
    },
    AddStorage {
        id: u64,
        storage: Storage,
    },
    Write {
        id: u64,
        range: Range,
        site: Site,
        ticket: Option<u64>,
    },
    Fill {
        id: u64,
        range: Range,
        src: Site,
        dst: Site,
        ticket: Option<u64>,
    },
    Loss {
        site: Site,
    },
}

impl Op {
    fn ticket(&self) -> Option<u64> {
        match self {
            Op::Write { ticket, .. } | Op::Fill { ticket, .. } => *ticket,
            _ => None,
        }
    }
}

fn units(r: Range, len: usize) -> std::ops::Range<usize> {
    let r = r.clip(len as u64);
    r.start as usize..r.end.max(r.start) as usize
}

#[derive(Clone, Debug, Default)]
struct Sim {
    res: BTreeMap<u64, RefResource>,
    next: u64,
}

impl Sim {
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn apply(&mut self, op: &Op, failed: bool) {
        match op {
            Op::Create {
                id,
                len,
                storages,
                initial,
            } => {
                let v = self.fresh();
                let len = *len as usize;
                let storages = storages
                    .iter()
                    .map(|s| {
                        let version = if s.sites.intersects(*initial) {
                            v
                        } else {
                            self.fresh()
                        };
                        RefStorage {
                            sites: s.sites,
                            owner: s.owner,
                            cells: vec![Cell { version, by: None }; len],
                        }
                    })
                    .collect();
                self.res.insert(
                    *id,
                    RefResource {
                        storages,
                        latest: vec![v; len],
                    },
                );
            }
            Op::Destroy { id } => {
                self.res.remove(id);
            }
            Op::AddStorage { id, storage } => {
                let g = self.fresh();
                if let Some(res) = self.res.get_mut(id) {
                    let len = res.latest.len();
                    res.storages.push(RefStorage {
                        sites: storage.sites,
                        owner: storage.owner,
                        cells: vec![
                            Cell {
                                version: g,
                                by: None
                            };
                            len
                        ],
                    });
                }
            }
            Op::Write {
                id,
                range,
                site,
                ticket,
            } => {
                let v = self.fresh();
                let g = self.fresh();
                let res = self.res.get_mut(id).expect("write to a known resource");
                let s = res.storage(*site).expect("write on a site with storage");
                for u in units(*range, res.latest.len()) {
                    res.latest[u] = v;
                    res.storages[s].cells[u] = Cell {
                        version: if failed { g } else { v },
                        by: *ticket,
                    };
                }
            }
            Op::Fill {
                id,
                range,
                src,
                dst,
                ticket,
            } => {
                let g = self.fresh();
                let res = self.res.get_mut(id).expect("fill of a known resource");
                let s = res.storage(*src).expect("fill from a site with storage");
                let d = res.storage(*dst).expect("fill into a site with storage");
                for u in units(*range, res.latest.len()) {
                    let version = if failed {
                        g
                    } else {
                        res.storages[s].cells[u].version
                    };
                    res.storages[d].cells[u] = Cell {
                        version,
                        by: *ticket,
                    };
                }
            }
            Op::Loss { site } => {
                for res in self.res.values_mut() {
                    res.storages.retain(|s| s.owner != *site);
                    for s in &mut res.storages {
                        s.sites = s.sites.without(*site);
                    }
                }
            }
        }
    }

    /// Every (resource, unit) without holders.
    fn lost_units(&self) -> BTreeSet<(u64, u64)> {
        let mut out = BTreeSet::new();
        for (id, res) in &self.res {
            for u in 0..res.latest.len() {
                if res.holders(u).is_empty() {
                    out.insert((*id, u as u64));
                }
            }
        }
        out
    }
}

fn expand(list: &[(u64, Range)]) -> BTreeSet<(u64, u64)> {
    list.iter()
        .flat_map(|(id, r)| (r.start..r.end).map(move |u| (*id, u)))
        .collect()
}

struct Flight {
    deps: BTreeSet<u64>,
    involves: Sites,
}

#[derive(Default, Debug)]
struct Stats {
    batches: u64,
    transfers: u64,
    host_transfers: u64,
    no_copy: u64,
    data_lost_errors: u64,
    stale: u64,
    losses: u64,
    lost_by_loss: u64,
    lost_by_failure: u64,
    failed_batches: u64,
    orphaned: u64,
    retired_out_of_order: u64,
}

struct World {
    rng: Rng,
    n: usize,
    t: Tracker,
    alive: Members,
    settled: Sim,
    log: VecDeque<Op>,
    current: Sim,
    failed: BTreeSet<u64>,
    retired: BTreeSet<u64>,
    flights: BTreeMap<u64, Flight>,
    next_id: u64,
    stats: Stats,
}

impl World {
    fn new(seed: u64, members: Option<usize>) -> World {
        let mut rng = Rng(seed);
        let n = members.unwrap_or(1 + rng.below(5) as usize);
        let caps: Vec<MemberCaps> = (0..n)
            .map(|_| {
                let driver = [1 + rng.below(2) as u8; 16];
                MemberCaps {
                    host_import: rng.chance(50),
                    opaque_fd: rng.chance(70),
                    driver_uuid: driver,
                    device_uuid: if rng.chance(90) { driver } else { [9; 16] },
                }
            })
            .collect();
        let mut topology = Topology::new(&caps);
        if rng.chance(50) {
            for tier in Tier::ALL {
                let c = TierCost::new(1 + rng.below(1 << 34), rng.below(100_000));
                topology.set_cost(tier, c);
            }
        }
        World {
            rng,
            n,
            t: Tracker::new(topology),
            alive: Members::first_n(n),
            settled: Sim::default(),
            log: VecDeque::new(),
            current: Sim::default(),
            failed: BTreeSet::new(),
            retired: BTreeSet::new(),
            flights: BTreeMap::new(),
            next_id: 1,
            stats: Stats::default(),
        }
    }

    fn push(&mut self, op: Op) {
        self.current.apply(&op, false);
        self.log.push_back(op);
        self.advance();
    }

    /// Moves decided operations from the log into the settled state.
    fn advance(&mut self) {
        while let Some(op) = self.log.front() {
            let failed = match op.ticket() {
                None => false,
                Some(t) if self.retired.contains(&t) => false,
                Some(t) if self.failed.contains(&t) => true,
                Some(_) => break,
            };
            self.settled.apply(op, failed);
            self.log.pop_front();
        }
    }

    fn replay(&mut self) {
        let mut sim = self.settled.clone();
        for op in &self.log {
            let failed = op.ticket().is_some_and(|t| self.failed.contains(&t));
            sim.apply(op, failed);
        }
        self.current = sim;
    }

    fn ids(&self) -> Vec<u64> {
        self.current.res.keys().copied().collect()
    }

    fn alive_members(&self) -> Vec<usize> {
        self.alive.iter().collect()
    }

    fn range(&mut self, id: u64) -> Range {
        let len = self
            .current
            .res
            .get(&id)
            .map_or(0, |r| r.latest.len() as u64);
        match self.rng.below(8) {
            0 => Range::WHOLE,
            1 => Range::new(len + self.rng.below(3), len + 5),
            _ => {
                let a = self.rng.below(len + 1);
                Range::new(a, a + self.rng.below(len - a + 3))
            }
        }
    }

    fn holders(&self, id: u64, u: u64) -> Sites {
        self.current.res[&id].holders(u as usize)
    }

    /// The tracker agrees with the reference on every unit, every storage, and the batches in
    /// flight.
    fn check(&self, what: &str) {
        assert_eq!(
            self.t.resources().collect::<Vec<_>>(),
            self.ids(),
            "{what}: resources"
        );
        for (id, res) in &self.current.res {
            let mut want: Vec<Storage> = res
                .storages
                .iter()
                .map(|s| Storage {
                    sites: s.sites,
                    owner: s.owner,
                })
                .collect();
            want.sort();
            assert_eq!(
                self.t.sharing(*id).unwrap().storages(),
                &want[..],
                "{what}: storages of {id}"
            );
            assert_eq!(self.t.resource_len(*id).unwrap(), res.latest.len() as u64);
            for u in 0..res.latest.len() {
                assert_eq!(
                    self.t.holders(*id, u as u64),
                    Some(res.holders(u)),
                    "{what}: holders of unit {u} of resource {id}"
                );
            }
        }
        assert_eq!(
            self.t.in_flight(),
            self.flights.keys().map(|t| Ticket(*t)).collect::<Vec<_>>(),
            "{what}: batches in flight"
        );
        assert_eq!(self.t.alive(), self.alive);
    }

    fn create(&mut self) {
        if self.current.res.len() >= 10 {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let top = self.t.topology();
        let sharing = match self.rng.below(4) {
            0 => top.mirrored(self.alive),
            1 => top.host_visible(self.alive),
            2 => top.shared_device(self.alive),
            _ => {
                // A random partition of some live sites, random owners.
                let groups = 1 + self.rng.below(3) as usize;
                let mut parts = vec![Sites::EMPTY; groups];
                for s in Sites::from(self.alive).with(Site::HOST).iter() {
                    if self.rng.chance(85) {
                        let g = self.rng.below(groups as u64) as usize;
                        parts[g] = parts[g].with(s);
                    }
                }
                let storages = parts
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let owners: Vec<Site> = p.iter().collect();
                        Storage {
                            sites: p,
                            owner: self.rng.pick(&owners).expect("non-empty"),
                        }
                    })
                    .collect();
                Sharing::new(storages).expect("a partition")
            }
        };
        let len = if self.rng.chance(3) {
            0
        } else {
            1 + self.rng.below(40)
        };
        let initial = if self.rng.chance(70) {
            Sites::all(8)
        } else {
            (0..=MAX_MEMBERS)
                .filter_map(|i| {
                    if i == MAX_MEMBERS {
                        Some(Site::HOST)
                    } else {
                        Site::member(i)
                    }
                })
                .filter(|_| self.rng.chance(40))
                .collect()
        };
        let unit_bytes = 1 + self.rng.below(4096);
        self.t
            .create(
                id,
                ResourceDesc {
                    len,
                    unit_bytes,
                    sharing: sharing.clone(),
                },
                initial,
            )
            .unwrap();
        self.push(Op::Create {
            id,
            len,
            storages: sharing.storages().to_vec(),
            initial,
        });
    }

    fn destroy(&mut self) {
        let Some(id) = self.rng.pick(&self.ids()) else {
            return;
        };
        self.t.destroy(id).unwrap();
        self.push(Op::Destroy { id });
    }

    fn random_access(&mut self) -> BatchAccess {
        let ids = self.ids();
        let mut a = BatchAccess::new();
        if ids.is_empty() {
            return a;
        }
        for _ in 0..self.rng.below(4) {
            let id = self.rng.pick(&ids).expect("ids");
            let r = self.range(id);
            a = a.read(id, r);
        }
        for _ in 0..self.rng.below(3) {
            let id = self.rng.pick(&ids).expect("ids");
            let r = self.range(id);
            a = a.write(id, r);
        }
        a
    }

    /// Per resource, the clipped union of `list`.
    fn sets(&self, list: &[(u64, Range)]) -> BTreeMap<u64, RangeSet> {
        let mut out: BTreeMap<u64, RangeSet> = BTreeMap::new();
        for (id, r) in list {
            let len = self.current.res[id].latest.len() as u64;
            out.entry(*id).or_default().insert(r.clip(len));
        }
        out
    }

    /// Checks `transfers` for reads `reads` into `to`: from holders, into `to`, disjoint, and
    /// covering exactly the units `to` does not hold.
    fn check_transfers(&self, transfers: &[Transfer], reads: &[(u64, Range)], to: Site) {
        let mut need = BTreeSet::new();
        for (id, set) in self.sets(reads) {
            for r in set.ranges() {
                for u in r.start..r.end {
                    if !self.holders(id, u).contains(to) {
                        need.insert((id, u));
                    }
                }
            }
        }
        let mut got = BTreeSet::new();
        for x in transfers {
            assert_eq!(x.dst, to);
            assert!(!x.range.is_empty());
            assert_ne!(x.src, to);
            assert!(self.t.topology().tiers(x.src, x.dst).contains(x.tier));
            for u in x.range.start..x.range.end {
                assert!(
                    self.holders(x.id, u).contains(x.src),
                    "transfer {x:?} from a site that does not hold unit {u}"
                );
                assert!(got.insert((x.id, u)), "transfers overlap at {u}");
            }
        }
        assert_eq!(got, need, "transfers cover exactly the units not held");
    }

    /// What the tracker must answer for an access on `site`: `None` for success.
    fn expected_error(&self, access: &BatchAccess, site: Site) -> Option<&'static str> {
        if let Some(m) = site.as_member() {
            if m >= self.n {
                return Some("bad member");
            }
            if !self.alive.contains(m) {
                return Some("member lost");
            }
        }
        for (id, _) in access.reads.iter().chain(&access.writes) {
            if self.current.res[id].storage(site).is_none() {
                return Some("no copy");
            }
        }
        for (id, set) in self.sets(&access.reads) {
            for r in set.ranges() {
                if (r.start..r.end).any(|u| self.holders(id, u).is_empty()) {
                    return Some("data lost");
                }
            }
        }
        None
    }

    fn classify(&mut self, e: &CoherenceError) -> &'static str {
        match e {
            CoherenceError::BadMember(_) => "bad member",
            CoherenceError::MemberLost(_) => "member lost",
            CoherenceError::NoCopy { .. } => {
                self.stats.no_copy += 1;
                "no copy"
            }
            CoherenceError::DataLost { id, range } => {
                self.stats.data_lost_errors += 1;
                for u in range.start..range.end {
                    assert!(self.holders(*id, u).is_empty());
                }
                "data lost"
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn batch(&mut self) {
        let access = self.random_access();
        let m = if self.rng.chance(5) {
            self.rng.below(self.n as u64 + 2) as usize
        } else {
            match self.rng.pick(&self.alive_members()) {
                Some(m) => m,
                None => return,
            }
        };
        let site = Site::member(m).unwrap_or(Site::HOST);
        let want = if m >= MAX_MEMBERS {
            Some("bad member")
        } else {
            self.expected_error(&access, site)
        };
        let plan = match self.t.plan_batch(&access, m) {
            Ok(p) => p,
            Err(e) => {
                let got = self.classify(&e);
                assert_eq!(Some(got), want, "plan of {access:?} on {m}");
                return;
            }
        };
        assert_eq!(want, None, "plan of {access:?} on {m} succeeded");
        self.check_transfers(plan.transfers(), &access.reads, site);
        let writes: Vec<(u64, Range)> = self
            .sets(&access.writes)
            .into_iter()
            .flat_map(|(id, s)| s.ranges().iter().map(move |r| (id, *r)).collect::<Vec<_>>())
            .collect();
        assert_eq!(plan.writes(), &writes[..]);
        if self.rng.chance(8) {
            // Dropped (the submit failed): nothing changes.
            return;
        }
        if self.rng.chance(4) {
            // Anything committed in between makes the plan stale.
            if self.current.res.len() < 10 {
                self.create();
            } else {
                self.t.topology_mut();
            }
            assert_eq!(self.t.commit_batch(&plan), Err(CoherenceError::StalePlan));
            self.stats.stale += 1;
            return;
        }
        // Dependencies: the last batch to touch each cell the batch reads.
        let mut deps = BTreeSet::new();
        for (id, set) in self.sets(&access.reads) {
            let res = &self.current.res[&id];
            for r in set.ranges() {
                for u in r.start..r.end {
                    let from = plan
                        .transfers()
                        .iter()
                        .find(|x| x.id == id && x.range.contains(u))
                        .map_or(site, |x| x.src);
                    let s = res.storage(from).expect("a storage");
                    if let Some(t) = res.storages[s].cells[u as usize].by {
                        if self.flights.contains_key(&t) {
                            deps.insert(t);
                        }
                    }
                }
            }
        }
        let involves = plan
            .transfers()
            .iter()
            .filter(|x| !x.src.is_host())
            .fold(Sites::single(site), |a, x| a.with(x.src));
        let ticket = self.t.commit_batch(&plan).unwrap().get();
        self.stats.batches += 1;
        self.stats.transfers += plan.transfers().len() as u64;
        for x in plan.transfers() {
            self.push(Op::Fill {
                id: x.id,
                range: x.range,
                src: x.src,
                dst: x.dst,
                ticket: Some(ticket),
            });
        }
        for (id, range) in plan.writes() {
            self.push(Op::Write {
                id: *id,
                range: *range,
                site,
                ticket: Some(ticket),
            });
        }
        self.flights.insert(ticket, Flight { deps, involves });
        while self.flights.len() > 10 {
            self.retire(true);
        }
    }

    fn single_write(&mut self, host: bool) {
        let Some(id) = self.rng.pick(&self.ids()) else {
            return;
        };
        let range = self.range(id);
        let site = if host {
            Site::HOST
        } else {
            match self.rng.pick(&self.alive_members()).and_then(Site::member) {
                Some(s) => s,
                None => return,
            }
        };
        let got = match site.as_member() {
            Some(m) => self.t.write(id, range, m),
            None => self.t.host_write(id, range),
        };
        if self.current.res[&id].storage(site).is_none() {
            assert_eq!(got, Err(CoherenceError::NoCopy { id, site }));
            self.stats.no_copy += 1;
            return;
        }
        got.unwrap();
        self.push(Op::Write {
            id,
            range,
            site,
            ticket: None,
        });
    }

    /// A read by the host (mapping) or a member outside a batch: the ICD waits for the work in
    /// flight first.
    fn single_read(&mut self, host: bool) {
        while !self.flights.is_empty() {
            self.retire(true);
        }
        let Some(id) = self.rng.pick(&self.ids()) else {
            return;
        };
        let range = self.range(id);
        let site = if host {
            Site::HOST
        } else {
            match self.rng.pick(&self.alive_members()).and_then(Site::member) {
                Some(s) => s,
                None => return,
            }
        };
        let access = BatchAccess::new().read(id, range);
        let want = self.expected_error(&access, site);
        let transfers = match self.t.read_plan(id, range, site) {
            Ok(x) => x,
            Err(e) => {
                let got = self.classify(&e);
                assert_eq!(Some(got), want);
                return;
            }
        };
        assert_eq!(want, None);
        self.check_transfers(&transfers, &access.reads, site);
        self.t.commit_transfers(&transfers).unwrap();
        self.stats.host_transfers += transfers.len() as u64;
        for x in transfers {
            self.push(Op::Fill {
                id: x.id,
                range: x.range,
                src: x.src,
                dst: x.dst,
                ticket: None,
            });
        }
    }

    /// Retires a batch whose dependencies have all retired (the oldest such when `oldest`).
    fn retire(&mut self, oldest: bool) {
        let ready: Vec<u64> = self
            .flights
            .iter()
            .filter(|(_, f)| f.deps.iter().all(|d| !self.flights.contains_key(d)))
            .map(|(t, _)| *t)
            .collect();
        let pick = if oldest {
            ready.first().copied()
        } else {
            self.rng.pick(&ready)
        };
        let Some(t) = pick else { return };
        if self.flights.keys().next() != Some(&t) {
            self.stats.retired_out_of_order += 1;
        }
        self.t.retire(Ticket(t)).unwrap();
        self.flights.remove(&t);
        self.retired.insert(t);
        self.advance();
    }

    /// Fails `seeds` and every batch in flight that depends on them; checks the report.
    fn fail(&mut self, seeds: BTreeSet<u64>) {
        let mut set = seeds;
        for (t, f) in &self.flights {
            if f.deps.iter().any(|d| set.contains(d)) {
                set.insert(*t);
            }
        }
        let before = self.current.lost_units();
        let list: Vec<Ticket> = set.iter().map(|t| Ticket(*t)).collect();
        let report = self.t.fail_batches(&list).unwrap();
        for t in &set {
            self.flights.remove(t);
            self.failed.insert(*t);
        }
        self.stats.failed_batches += set.len() as u64;
        self.replay();
        self.advance();
        let after = self.current.lost_units();
        let want: BTreeSet<(u64, u64)> = after.difference(&before).copied().collect();
        assert_eq!(expand(&report.lost), want, "units lost by failing {set:?}");
        assert!(before.is_subset(&after), "a failure never restores data");
        self.stats.lost_by_failure += want.len() as u64;
        assert!(report.orphaned.is_empty() && report.in_flight.is_empty());
    }

    fn lose(&mut self) {
        if self.alive.len() < 2 {
            return;
        }
        let Some(m) = self.rng.pick(&self.alive_members()) else {
            return;
        };
        let site = Site::member(m).expect("a member");
        let mut orphaned: Vec<(u64, Sites)> = Vec::new();
        for (id, res) in &self.current.res {
            for s in &res.storages {
                if s.owner == site && s.sites.without(site) != Sites::EMPTY {
                    orphaned.push((*id, s.sites.without(site)));
                }
            }
        }
        let involved: Vec<Ticket> = self
            .flights
            .iter()
            .filter(|(_, f)| f.involves.contains(site))
            .map(|(t, _)| Ticket(*t))
            .collect();
        let before = self.current.lost_units();
        let report = self.t.lose_member(m).unwrap();
        self.alive = self.alive.without(m);
        self.push(Op::Loss { site });
        let after = self.current.lost_units();
        let want: BTreeSet<(u64, u64)> = after.difference(&before).copied().collect();
        assert_eq!(expand(&report.lost), want, "units lost with member {m}");
        let mut got = report.orphaned.clone();
        got.sort();
        orphaned.sort();
        assert_eq!(got, orphaned);
        assert_eq!(report.in_flight, involved);
        self.stats.losses += 1;
        self.stats.lost_by_loss += want.len() as u64;
        self.stats.orphaned += orphaned.len() as u64;
        self.check("after loss");
        // The batches that will not complete: those involving the member, maybe others (a
        // stalled queue), and everything that depends on them.
        let mut seeds: BTreeSet<u64> = involved.iter().map(|t| t.get()).collect();
        for t in self.flights.keys() {
            if self.rng.chance(15) {
                seeds.insert(*t);
            }
        }
        self.fail(seeds);
    }

    fn add_storage(&mut self) {
        // A live site without a storage of some resource gets one.
        let mut cands = Vec::new();
        for (id, res) in &self.current.res {
            for s in Sites::from(self.alive).with(Site::HOST).iter() {
                if res.storage(s).is_none() {
                    cands.push((*id, s));
                }
            }
        }
        let Some((id, site)) = self.rng.pick(&cands) else {
            return;
        };
        let storage = Storage {
            sites: Sites::single(site),
            owner: site,
        };
        self.t.add_storage(id, storage).unwrap();
        self.push(Op::AddStorage { id, storage });
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=7 => self.create(),
            8..=9 => self.destroy(),
            10..=49 => self.batch(),
            50..=56 => self.single_write(false),
            57..=63 => self.single_write(true),
            64..=67 => self.single_read(true),
            68..=69 => self.single_read(false),
            70..=89 => self.retire(false),
            90..=91 => self.add_storage(),
            92 => {
                // A batch found failed without a loss.
                if let Some(t) = self
                    .rng
                    .pick(&self.flights.keys().copied().collect::<Vec<_>>())
                {
                    self.fail(BTreeSet::from([t]));
                }
            }
            93 if self.rng.chance(30) => self.lose(),
            _ => self.batch(),
        }
    }
}

fn run(seed: u64, members: Option<usize>, steps: usize) -> Stats {
    let mut w = World::new(seed, members);
    for i in 0..steps {
        w.step();
        w.check(&format!("seed {seed} step {i}"));
    }
    // Drain: everything completes; the tracker's record of batches empties.
    while !w.flights.is_empty() {
        w.retire(false);
    }
    w.check(&format!("seed {seed} drained"));
    assert!(w.t.window.is_empty());
    w.stats
}

#[test]
fn tracker_matches_a_reference_of_contents() {
    let mut total = Stats::default();
    for seed in 0..24u64 {
        let members = match seed {
            0 => Some(8),
            1 => Some(2),
            _ => None,
        };
        let s = run(0x5eed_0000 + seed, members, 1500);
        total.batches += s.batches;
        total.transfers += s.transfers;
        total.host_transfers += s.host_transfers;
        total.no_copy += s.no_copy;
        total.data_lost_errors += s.data_lost_errors;
        total.stale += s.stale;
        total.losses += s.losses;
        total.lost_by_loss += s.lost_by_loss;
        total.lost_by_failure += s.lost_by_failure;
        total.failed_batches += s.failed_batches;
        total.orphaned += s.orphaned;
        total.retired_out_of_order += s.retired_out_of_order;
    }
    // The run must have exercised every path it checks.
    println!("{total:?}");
    assert!(total.batches > 5000, "{total:?}");
    assert!(total.transfers > 1000, "{total:?}");
    assert!(total.host_transfers > 100, "{total:?}");
    assert!(total.no_copy > 10, "{total:?}");
    assert!(total.data_lost_errors > 10, "{total:?}");
    assert!(total.stale > 10, "{total:?}");
    assert!(total.losses > 10, "{total:?}");
    assert!(total.lost_by_loss > 0, "{total:?}");
    assert!(total.lost_by_failure > 0, "{total:?}");
    assert!(total.failed_batches > 10, "{total:?}");
    assert!(total.orphaned > 0, "{total:?}");
    assert!(total.retired_out_of_order > 100, "{total:?}");
}
