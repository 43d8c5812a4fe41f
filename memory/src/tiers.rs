//! Transfer tiers: how contents get from one site to another, and what that costs.
//!
//! DESIGN.md names three tiers, best first:
//!
//! 1. [`Tier::SharedDevice`]: both members come from the same driver on the same device
//!    (equal `driverUUID` and `deviceUUID`) and both export and import opaque fds: memory of
//!    one is imported into the other. Never across different drivers: such an import can
//!    "succeed" without sharing anything (seen with lavapipe → SwiftShader), so this module
//!    only ever offers the tier where the UUIDs are equal, and nothing can add it afterwards.
//! 2. [`Tier::SharedHost`]: both ends can import host memory (`VK_EXT_external_memory_host`),
//!    so one host allocation is visible to both. Between two members that is a copy by the
//!    source into imported memory and a copy by the destination out of it, with no CPU copy;
//!    between the host and a member it is one copy by the member.
//! 3. [`Tier::Staging`]: the source copies into a host-visible staging buffer of its own, the
//!    CPU copies on into the destination's staging buffer, the destination copies out, in
//!    pipelined chunks. Always available.
//!
//! A [`Topology`] holds, for every pair of sites (members and the host), the set of tiers that
//! can connect them, derived from each member's [`MemberCaps`] as the ICD probes them; the ICD
//! can take a tier away from a pair afterwards ([`Topology::disable`], e.g. when a probe
//! import fails), never add one. It also holds a [`TierCost`] per tier (bandwidth and a fixed
//! latency, defaults until the ICD measures them) and picks, for a transfer of some bytes, the
//! cheapest tier ([`Topology::route`]) and the cheapest source among the sites that hold the
//! data ([`Topology::cheapest_source`]).
//!
//! The same capabilities decide how an allocation is laid out across sites
//! ([`Topology::host_visible`], [`Topology::shared_device`], [`Topology::mirrored`]): sites
//! that share one allocation never need transfers between them at all (see
//! [`crate::coherence`]).

use crate::coherence::{Sharing, Storage};
use crate::sites::{Members, Site, Sites, MAX_MEMBERS};
use std::fmt;

/// A way to move contents between two sites, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    SharedDevice,
    SharedHost,
    Staging,
}

impl Tier {
    /// Every tier, best first.
    pub const ALL: [Tier; 3] = [Tier::SharedDevice, Tier::SharedHost, Tier::Staging];

    /// The name `vkfuse info` and `bench` print.
    pub const fn name(self) -> &'static str {
        match self {
            Tier::SharedDevice => "shared device memory",
            Tier::SharedHost => "shared host memory",
            Tier::Staging => "staging",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of tiers.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tiers(u8);

impl Tiers {
    pub const EMPTY: Tiers = Tiers(0);

    pub const fn contains(self, t: Tier) -> bool {
        self.0 & t.bit() != 0
    }

    #[must_use]
    pub const fn with(self, t: Tier) -> Tiers {
        Tiers(self.0 | t.bit())
    }

    #[must_use]
    pub const fn without(self, t: Tier) -> Tiers {
        Tiers(self.0 & !t.bit())
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tiers in the set, best first.
    pub fn iter(self) -> impl Iterator<Item = Tier> {
        Tier::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl fmt::Debug for Tiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The cost of one tier: sustained bandwidth and a fixed latency per transfer (command buffer
/// submission, synchronisation between the two ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierCost {
    pub bytes_per_s: u64,
    pub latency_ns: u64,
}

impl TierCost {
    pub const fn new(bytes_per_s: u64, latency_ns: u64) -> TierCost {
        TierCost {
            bytes_per_s,
            latency_ns,
        }
    }

    /// Nanoseconds to move `bytes`: `latency + bytes / bandwidth`, saturating; a bandwidth of
    /// zero makes the tier unusable (`u64::MAX`).
    pub fn time_ns(self, bytes: u64) -> u64 {
        if self.bytes_per_s == 0 {
            return u64::MAX;
        }
        let t = u128::from(bytes) * 1_000_000_000 / u128::from(self.bytes_per_s);
        u64::try_from(t)
            .unwrap_or(u64::MAX)
            .saturating_add(self.latency_ns)
    }
}

/// The cost of each tier.
///
/// The defaults are placeholders that only have to order the tiers sensibly until the ICD has
/// measured them (`vkfuse bench` measures all three): shared device memory 20 GB/s and 10 µs,
/// shared host memory 8 GB/s and 20 µs, staging 4 GB/s and 50 µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Costs {
    pub shared_device: TierCost,
    pub shared_host: TierCost,
    pub staging: TierCost,
}

impl Default for Costs {
    fn default() -> Costs {
        Costs {
            shared_device: TierCost::new(20_000_000_000, 10_000),
            shared_host: TierCost::new(8_000_000_000, 20_000),
            staging: TierCost::new(4_000_000_000, 50_000),
        }
    }
}

impl Costs {
    pub fn get(&self, t: Tier) -> TierCost {
        match t {
            Tier::SharedDevice => self.shared_device,
            Tier::SharedHost => self.shared_host,
            Tier::Staging => self.staging,
        }
    }

    pub fn set(&mut self, t: Tier, c: TierCost) {
        match t {
            Tier::SharedDevice => self.shared_device = c,
            Tier::SharedHost => self.shared_host = c,
            Tier::Staging => self.staging = c,
        }
    }
}

/// What the ICD knows about one member's memory sharing, from its extensions and
/// `VkPhysicalDeviceIDProperties`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberCaps {
    /// Imports host pointers (`VK_EXT_external_memory_host`) for the memory types vkfuse uses.
    pub host_import: bool,
    /// Exports and imports opaque fds (`VK_KHR_external_memory_fd`).
    pub opaque_fd: bool,
    pub driver_uuid: [u8; 16],
    pub device_uuid: [u8; 16],
}

/// The chosen way for one transfer: from `src` to `dst` by `tier`, expected to take `cost_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub src: Site,
    pub dst: Site,
    pub tier: Tier,
    pub cost_ns: u64,
}

/// The size `vkfuse info` uses to name the tier connecting a pair (the cheapest at 1 MiB).
pub const INFO_BYTES: u64 = 1 << 20;

const SITES: usize = MAX_MEMBERS + 1;

/// Tiers between every pair of sites and the cost of each tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    members: usize,
    links: [[Tiers; SITES]; SITES],
    costs: Costs,
}

impl Topology {
    /// The topology of `members` (index = member index; members past `MAX_MEMBERS` are left
    /// out) with the default costs.
    ///
    /// Between members: staging always; shared host memory where both import host memory;
    /// shared device memory where both do opaque fds and have equal driver and device UUIDs.
    /// Between the host and a member: staging always; shared host memory where the member
    /// imports host memory.
    pub fn new(members: &[MemberCaps]) -> Topology {
        let members = &members[..members.len().min(MAX_MEMBERS)];
        let mut links = [[Tiers::EMPTY; SITES]; SITES];
        let host = Site::HOST.index();
        for (a, ca) in members.iter().enumerate() {
            for (b, cb) in members.iter().enumerate() {
                if a == b {
                    continue;
                }
                let mut t = Tiers::EMPTY.with(Tier::Staging);
                if ca.host_import && cb.host_import {
                    t = t.with(Tier::SharedHost);
                }
                if ca.opaque_fd
                    && cb.opaque_fd
                    && ca.driver_uuid == cb.driver_uuid
                    && ca.device_uuid == cb.device_uuid
                {
                    t = t.with(Tier::SharedDevice);
                }
                links[a][b] = t;
            }
            let mut t = Tiers::EMPTY.with(Tier::Staging);
            if ca.host_import {
                t = t.with(Tier::SharedHost);
            }
            links[a][host] = t;
            links[host][a] = t;
        }
        Topology {
            members: members.len(),
            links,
            costs: Costs::default(),
        }
    }

    /// The number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The tiers that can connect `a` and `b` (empty for `a == b` and for members the
    /// topology does not know).
    pub fn tiers(&self, a: Site, b: Site) -> Tiers {
        self.links[a.index()][b.index()]
    }

    /// Takes `tier` away from the pair `a`, `b` (both directions), e.g. after a probe import
    /// failed. Staging stays: it is the fallback that always works.
    pub fn disable(&mut self, a: Site, b: Site, tier: Tier) {
        if tier == Tier::Staging {
            return;
        }
        let (a, b) = (a.index(), b.index());
        self.links[a][b] = self.links[a][b].without(tier);
        self.links[b][a] = self.links[b][a].without(tier);
    }

    pub fn costs(&self) -> &Costs {
        &self.costs
    }

    /// Replaces a tier's cost with a measured one.
    pub fn set_cost(&mut self, tier: Tier, cost: TierCost) {
        self.costs.set(tier, cost);
    }

    /// The cheapest tier from `src` to `dst` for `bytes` (ties go to the better tier), or
    /// `None` where no tier connects them.
    pub fn route(&self, src: Site, dst: Site, bytes: u64) -> Option<Route> {
        self.tiers(src, dst)
            .iter()
            .map(|tier| Route {
                src,
                dst,
                tier,
                cost_ns: self.costs.get(tier).time_ns(bytes),
            })
            .min_by_key(|r| (r.cost_ns, r.tier))
    }

    /// The cheapest route to `dst` from any of `sources` for `bytes`: lowest cost, then the
    /// better tier, then the lowest source (members before the host). `None` when no source
    /// is connected to `dst`.
    pub fn cheapest_source(&self, sources: Sites, dst: Site, bytes: u64) -> Option<Route> {
        sources
            .iter()
            .filter_map(|src| self.route(src, dst, bytes))
            .min_by_key(|r| (r.cost_ns, r.tier, r.src))
    }

    /// The tier that connects members `a` and `b`, as `vkfuse info` shows it: the cheapest
    /// for [`INFO_BYTES`].
    pub fn connection(&self, a: usize, b: usize) -> Option<Tier> {
        let (a, b) = (Site::member(a)?, Site::member(b)?);
        self.route(a, b, INFO_BYTES).map(|r| r.tier)
    }

    /// Every pair of members `a < b` with the tier that connects them.
    pub fn connections(&self) -> Vec<(usize, usize, Tier)> {
        let mut out = Vec::new();
        for a in 0..self.members {
            for b in a + 1..self.members {
                if let Some(t) = self.connection(a, b) {
                    out.push((a, b, t));
                }
            }
        }
        out
    }

    /// One copy per resident member, none on the host: device-local allocations.
    pub fn mirrored(&self, resident: Members) -> Sharing {
        Sharing::mirrored(resident & Members::first_n(self.members))
    }

    /// Device-local allocations shared where the tier allows: members that pairwise have
    /// shared device memory share one allocation (exported by the lowest of them, its owner);
    /// the others have copies of their own. No copy on the host.
    pub fn shared_device(&self, resident: Members) -> Sharing {
        Sharing::from_valid(self.device_groups(resident & Members::first_n(self.members)))
    }

    /// Host-visible allocations. Members that import host memory share one host allocation
    /// with the host (owned by the host: it survives the loss of any member). The others are
    /// grouped as in [`Topology::shared_device`]. When no member imports host memory, the host
    /// maps the allocation of the first group (the application's pointer is that member's
    /// mapping), so the host shares that group's copy and that group's owner owns it. With no
    /// resident member the host has a copy of its own.
    pub fn host_visible(&self, resident: Members) -> Sharing {
        let resident = resident & Members::first_n(self.members);
        let importers: Members = resident
            .iter()
            .filter(|m| {
                Site::member(*m)
                    .is_some_and(|s| self.tiers(s, Site::HOST).contains(Tier::SharedHost))
            })
            .collect();
        let mut groups = self.device_groups(resident - importers);
        if !importers.is_empty() {
            groups.push(Storage {
                sites: Sites::from(importers).with(Site::HOST),
                owner: Site::HOST,
            });
        } else if let Some(first) = groups.first_mut() {
            first.sites = first.sites.with(Site::HOST);
        } else {
            groups.push(Storage {
                sites: Sites::HOST,
                owner: Site::HOST,
            });
        }
        Sharing::from_valid(groups)
    }

    /// Groups `members` into cliques connected by shared device memory, each owned by its
    /// lowest member.
    fn device_groups(&self, members: Members) -> Vec<Storage> {
        let mut groups: Vec<Storage> = Vec::new();
        for site in members.iter().filter_map(Site::member) {
            let joined = groups.iter_mut().find(|g| {
                g.sites
                    .iter()
                    .all(|o| self.tiers(site, o).contains(Tier::SharedDevice))
            });
            match joined {
                Some(g) => g.sites = g.sites.with(site),
                None => groups.push(Storage {
                    sites: Sites::single(site),
                    owner: site,
                }),
            }
        }
        groups
    }
}

/// One line per pair of members: `0-1: shared device memory`.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (a, b, t) in self.connections() {
            writeln!(f, "{a}-{b}: {t}")?;
        }
        for m in 0..self.members {
            if let Some(s) = Site::member(m) {
                if let Some(r) = self.route(Site::HOST, s, INFO_BYTES) {
                    writeln!(f, "host-{m}: {}", r.tier)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::{lavapipe, m, swiftshader};

    #[test]
    fn tier_costs() {
        let c = TierCost::new(1_000_000_000, 100);
        assert_eq!(c.time_ns(0), 100);
        assert_eq!(c.time_ns(1000), 1100);
        assert_eq!(TierCost::new(0, 0).time_ns(1), u64::MAX);
        assert_eq!(TierCost::new(1, 5).time_ns(u64::MAX), u64::MAX);
        let mut costs = Costs::default();
        costs.set(Tier::Staging, c);
        assert_eq!(costs.get(Tier::Staging), c);
        assert!(Tier::SharedDevice < Tier::SharedHost && Tier::SharedHost < Tier::Staging);
        assert_eq!(Tier::SharedHost.to_string(), "shared host memory");
    }

    #[test]
    fn tiers_follow_capabilities() {
        let t = Topology::new(&[lavapipe(), lavapipe(), swiftshader(), swiftshader()]);
        assert_eq!(t.members(), 4);
        let all = Tiers::EMPTY
            .with(Tier::SharedDevice)
            .with(Tier::SharedHost)
            .with(Tier::Staging);
        assert_eq!(t.tiers(m(0), m(1)), all);
        // Different drivers: staging only, although both do opaque fds.
        assert_eq!(t.tiers(m(1), m(2)), Tiers::EMPTY.with(Tier::Staging));
        // Two SwiftShaders: shared device memory, no host import.
        assert_eq!(
            t.tiers(m(2), m(3)),
            Tiers::EMPTY.with(Tier::SharedDevice).with(Tier::Staging)
        );
        assert_eq!(
            t.tiers(Site::HOST, m(0)),
            Tiers::EMPTY.with(Tier::SharedHost).with(Tier::Staging)
        );
        assert_eq!(t.tiers(m(2), Site::HOST), Tiers::EMPTY.with(Tier::Staging));
        assert!(t.tiers(m(0), m(0)).is_empty());
        assert!(t.tiers(m(0), m(5)).is_empty());
        assert_eq!(t.connection(0, 1), Some(Tier::SharedDevice));
        assert_eq!(t.connection(0, 2), Some(Tier::Staging));
        assert_eq!(t.connection(2, 3), Some(Tier::SharedDevice));
        assert_eq!(t.connection(0, 9), None);
        assert_eq!(
            t.to_string(),
            "0-1: shared device memory\n0-2: staging\n0-3: staging\n1-2: staging\n\
             1-3: staging\n2-3: shared device memory\nhost-0: shared host memory\n\
             host-1: shared host memory\nhost-2: staging\nhost-3: staging\n"
        );
    }

    #[test]
    fn same_driver_on_different_devices_shares_no_device_memory() {
        let mut other = lavapipe();
        other.device_uuid = [9; 16];
        let t = Topology::new(&[lavapipe(), other]);
        assert!(!t.tiers(m(0), m(1)).contains(Tier::SharedDevice));
        let mut no_fd = lavapipe();
        no_fd.opaque_fd = false;
        let t = Topology::new(&[lavapipe(), no_fd]);
        assert!(!t.tiers(m(0), m(1)).contains(Tier::SharedDevice));
    }

    #[test]
    fn disable_removes_but_keeps_staging() {
        let mut t = Topology::new(&[lavapipe(), lavapipe()]);
        t.disable(m(1), m(0), Tier::SharedDevice);
        t.disable(m(0), m(1), Tier::Staging);
        assert_eq!(
            t.tiers(m(0), m(1)),
            Tiers::EMPTY.with(Tier::SharedHost).with(Tier::Staging)
        );
        assert_eq!(t.connection(0, 1), Some(Tier::SharedHost));
    }

    #[test]
    fn cheapest_tier_and_source_follow_costs() {
        let mut t = Topology::new(&[lavapipe(), lavapipe(), swiftshader()]);
        // Staging from 2 vs shared device from 0: 0 wins, then 1 on ties... 0 is lower.
        let r = t
            .cheapest_source(Sites::from(Members(0b111)), m(1), 4096)
            .unwrap();
        assert_eq!((r.src, r.tier), (m(0), Tier::SharedDevice));
        // Only the SwiftShader holds it: staging.
        let r = t.cheapest_source(Sites::single(m(2)), m(1), 4096).unwrap();
        assert_eq!((r.src, r.tier), (m(2), Tier::Staging));
        // The host holds it and member 1 imports host memory: one copy by member 1.
        let r = t
            .cheapest_source(Sites::HOST.with(m(2)), m(1), 4096)
            .unwrap();
        assert_eq!((r.src, r.tier), (Site::HOST, Tier::SharedHost));
        assert_eq!(t.cheapest_source(Sites::EMPTY, m(1), 1), None);
        // A measured staging path with no latency and a huge bandwidth beats everything.
        t.set_cost(Tier::Staging, TierCost::new(u64::MAX, 0));
        let r = t.route(m(0), m(1), 1 << 30).unwrap();
        assert_eq!(r.tier, Tier::Staging);
        // But small transfers with equal costs prefer the better tier.
        let same = TierCost::new(1_000_000_000, 1000);
        for tier in Tier::ALL {
            t.set_cost(tier, same);
        }
        assert_eq!(t.route(m(0), m(1), 10).unwrap().tier, Tier::SharedDevice);
        assert_eq!(t.route(m(0), m(0), 10), None);
    }

    #[test]
    fn allocation_layouts() {
        let t = Topology::new(&[lavapipe(), lavapipe(), swiftshader(), swiftshader()]);
        let all = Members(0b1111);
        let s = t.host_visible(all);
        // Lavapipes share the host allocation; SwiftShaders share device memory.
        assert_eq!(
            s.storage_of(m(0)),
            Some(Storage {
                sites: Sites::from(Members(0b11)).with(Site::HOST),
                owner: Site::HOST
            })
        );
        assert_eq!(
            s.storage_of(m(3)),
            Some(Storage {
                sites: Sites::from(Members(0b1100)),
                owner: m(2)
            })
        );
        // No importer: the host maps the first group's memory.
        let s = t.host_visible(Members(0b1100));
        assert_eq!(
            s.storage_of(Site::HOST),
            Some(Storage {
                sites: Sites::from(Members(0b1100)).with(Site::HOST),
                owner: m(2)
            })
        );
        let s = t.host_visible(Members::EMPTY);
        assert_eq!(s.storages().len(), 1);
        assert_eq!(s.storage_of(Site::HOST).map(|s| s.owner), Some(Site::HOST));
        let s = t.mirrored(Members(0b10011));
        assert_eq!(s.storages().len(), 2);
        assert_eq!(s.storage_of(Site::HOST), None);
        let s = t.shared_device(all);
        assert_eq!(s.storages().len(), 2);
        assert_eq!(s.storage_of(m(1)).map(|s| s.owner), Some(m(0)));
        // Lavapipe + SwiftShader: the usual test pair.
        let t = Topology::new(&[lavapipe(), swiftshader()]);
        let s = t.host_visible(Members(0b11));
        assert_eq!(
            s.storage_of(m(0)).map(|s| s.sites),
            Some(Sites::single(m(0)).with(Site::HOST))
        );
        assert_eq!(
            s.storage_of(m(1)).map(|s| s.sites),
            Some(Sites::single(m(1)))
        );
    }
}
