//! Memory of the fused device. Pure logic: the ICD queries the members, asks this crate, and
//! acts on the answer; nothing here calls Vulkan.
//!
//! - This file: which member memory type stands for each fused type ([`fuse`],
//!   [`fused_type_bits`]).
//! - [`sites`]: members and the host as sites that hold copies ([`Members`], [`Sites`]).
//! - [`range`]: units of a resource (bytes, linearised image subresources) and their ranges.
//! - [`tiers`]: transfer tiers between sites, their costs, and allocation layouts.
//! - [`coherence`]: the tracker of which sites hold the latest contents of every unit, the
//!   transfers a batch needs, and what a member loss costs.

pub mod coherence;
mod interval;
pub mod range;
pub mod sites;
pub mod tiers;

#[cfg(test)]
mod test_support;

pub use coherence::{
    BatchAccess, BatchPlan, CoherenceError, LossReport, ResourceDesc, Sharing, Storage, Ticket,
    Tracker, Transfer,
};
pub use range::{Range, RangeSet, SubresourceLayout};
pub use sites::{Members, Site, Sites, MAX_MEMBERS};
pub use tiers::{MemberCaps, Tier, TierCost, Topology};

/// One memory type: Vulkan property flags and heap index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemType {
    pub flags: u32,
    pub heap: u32,
}

/// One memory heap: size in bytes and Vulkan heap flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    pub size: u64,
    pub flags: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemProps {
    pub types: Vec<MemType>,
    pub heaps: Vec<Heap>,
}

/// The fused memory properties and, per member, the member type index of each fused type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fused {
    pub props: MemProps,
    pub maps: Vec<Vec<u32>>,
    /// The member whose types and heaps the fused ones are (heap numbering is its own).
    pub base: usize,
}

/// Picks the member type that offers at least `want`'s property flags with the fewest extra
/// flags (lowest index on ties), and a heap with at least `want_heap_flags`.
fn pick(member: &MemProps, want: MemType, want_heap_flags: u32) -> Option<u32> {
    member
        .types
        .iter()
        .enumerate()
        .filter(|(_, t)| t.flags & want.flags == want.flags)
        .filter(|(_, t)| {
            member
                .heaps
                .get(t.heap as usize)
                .is_some_and(|h| h.flags & want_heap_flags == want_heap_flags)
        })
        .min_by_key(|(i, t)| ((t.flags & !want.flags).count_ones(), *i))
        .map(|(i, _)| i as u32)
}

/// Fuses the memory properties of members. The fused types are one member's (the base): each
/// of its types survives where every other member has a type with at least its property
/// flags; heaps keep the base's numbering and shrink to the smallest mapped heap (objects are
/// mirrored).
///
/// The base is the member that keeps the most types, the first on ties (the primary where it
/// keeps all). A CPU driver's one type, device-local, host-visible, coherent and cached at
/// once, has no match on a discrete GPU, while each of the GPU's types finds the CPU driver's:
/// with the CPU driver first the fused device would have no memory type at all.
pub fn fuse(members: &[MemProps]) -> Fused {
    (0..members.len())
        .map(|b| fuse_onto(members, b))
        .fold(None, |best: Option<Fused>, f| match best {
            Some(b) if b.props.types.len() >= f.props.types.len() => Some(b),
            _ => Some(f),
        })
        .unwrap_or_default()
}

/// [`fuse`] with member `base`'s types and heaps.
fn fuse_onto(members: &[MemProps], base: usize) -> Fused {
    let Some(from) = members.get(base) else {
        return Fused::default();
    };
    let mut out = Fused {
        props: MemProps {
            types: Vec::new(),
            heaps: from.heaps.clone(),
        },
        maps: vec![Vec::new(); members.len()],
        base,
    };
    for (i, t) in from.types.iter().enumerate() {
        let heap_flags = from.heaps.get(t.heap as usize).map_or(0, |h| h.flags);
        let picks: Option<Vec<u32>> = members
            .iter()
            .enumerate()
            .map(|(m, props)| {
                if m == base {
                    Some(i as u32)
                } else {
                    pick(props, *t, heap_flags)
                }
            })
            .collect();
        let Some(picks) = picks else { continue };
        for (m, p) in picks.iter().enumerate() {
            let member = &members[m];
            if let (Some(mt), Some(h)) = (
                member.types.get(*p as usize),
                out.props.heaps.get_mut(t.heap as usize),
            ) {
                if let Some(mh) = member.heaps.get(mt.heap as usize) {
                    h.size = h.size.min(mh.size);
                }
            }
            out.maps[m].push(*p);
        }
        out.props.types.push(*t);
    }
    out
}

/// Fused `memoryTypeBits`: fused type i is allowed when every member allows its mapped type.
/// `member_bits[m]` is member m's `memoryTypeBits` for the same resource.
pub fn fused_type_bits(maps: &[Vec<u32>], member_bits: &[(usize, u32)]) -> u32 {
    fused_type_bits_indexed(maps, member_bits, maps.first().map_or(0, Vec::len))
}

/// [`fused_type_bits`] for a fused device with `count` memory types, where `maps` is indexed by
/// member index (members not listed in `member_bits` may have empty maps).
pub fn fused_type_bits_indexed(
    maps: &[Vec<u32>],
    member_bits: &[(usize, u32)],
    count: usize,
) -> u32 {
    let mut bits = 0u32;
    for i in 0..count.min(32) {
        if member_bits.iter().all(|(m, b)| {
            maps.get(*m)
                .and_then(|map| map.get(i))
                .is_some_and(|t| b & (1 << t) != 0)
        }) {
            bits |= 1 << i;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE_LOCAL: u32 = 1;
    const HOST_VISIBLE: u32 = 2;
    const HOST_COHERENT: u32 = 4;
    const HOST_CACHED: u32 = 8;
    const HEAP_DEVICE_LOCAL: u32 = 1;

    fn gpu() -> MemProps {
        MemProps {
            types: vec![
                MemType {
                    flags: DEVICE_LOCAL,
                    heap: 0,
                },
                MemType {
                    flags: HOST_VISIBLE | HOST_COHERENT,
                    heap: 1,
                },
                MemType {
                    flags: HOST_VISIBLE | HOST_COHERENT | HOST_CACHED,
                    heap: 1,
                },
            ],
            heaps: vec![
                Heap {
                    size: 8 << 30,
                    flags: HEAP_DEVICE_LOCAL,
                },
                Heap {
                    size: 16 << 30,
                    flags: 0,
                },
            ],
        }
    }

    fn cpu() -> MemProps {
        MemProps {
            types: vec![MemType {
                flags: DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT | HOST_CACHED,
                heap: 0,
            }],
            heaps: vec![Heap {
                size: 4 << 30,
                flags: HEAP_DEVICE_LOCAL,
            }],
        }
    }

    #[test]
    fn identical_members_map_identically() {
        let f = fuse(&[gpu(), gpu()]);
        assert_eq!(f.props, gpu());
        assert_eq!(f.maps, vec![vec![0, 1, 2], vec![0, 1, 2]]);
    }

    #[test]
    fn cpu_member_serves_every_type_with_its_one_type() {
        let f = fuse(&[gpu(), cpu()]);
        // Host-visible types need a heap without flags: the CPU's only heap is device-local,
        // which has the flags asked for (none), so every type maps to the CPU's type 0.
        assert_eq!(f.base, 0);
        assert_eq!(f.maps[1], vec![0, 0, 0]);
        assert_eq!(f.props.heaps[0].size, 4 << 30);
        assert_eq!(f.props.heaps[1].size, 4 << 30);
        // With the CPU driver first its one type, which needs all four flags, has no match on
        // the GPU: the GPU's types are the fused ones, mapped the same way.
        let g = fuse(&[cpu(), gpu()]);
        assert_eq!(g.base, 1);
        assert_eq!(g.props, f.props);
        assert_eq!(g.maps, vec![vec![0, 0, 0], vec![0, 1, 2]]);
    }

    #[test]
    fn type_bits_need_every_member() {
        let maps = vec![vec![0, 1, 2], vec![0, 0, 0]];
        assert_eq!(fused_type_bits(&maps, &[(0, 0b111), (1, 0b1)]), 0b111);
        assert_eq!(fused_type_bits(&maps, &[(0, 0b110), (1, 0b1)]), 0b110);
        assert_eq!(fused_type_bits(&maps, &[(0, 0b111), (1, 0b0)]), 0);
    }

    #[test]
    fn no_members_fuse_to_nothing() {
        assert_eq!(fuse(&[]), Fused::default());
    }
}
