//! Placement: which member runs which batch. Pure logic, no Vulkan calls.
//!
//! This file knows the strategies by name (with MVGAL's aliases) and the placement order of
//! the members; [`placement`] places whole batches by `single`, `round_robin` and `afr`
//! ([`Placer`]); [`split`] cuts one dispatch into slices per member for `compute_split` and
//! `hybrid` (which splits only where [`Balance::split_pays`]), whose batches that are not
//! split place like `single`. `sfr` is later work and places like `single` meanwhile.

pub mod placement;
pub mod split;

pub use placement::{BatchInfo, Placer};
pub use split::{chunks, Balance, Balances};

/// A placement strategy, named as `VKFUSE_STRATEGY` names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Strategy {
    Single,
    RoundRobin,
    Afr,
    Sfr,
    ComputeSplit,
    Hybrid,
}

impl Strategy {
    /// Parses a strategy name; MVGAL's spellings are accepted as aliases.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(
            match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "single" | "single_gpu" | "none" => Strategy::Single,
                "round_robin" | "roundrobin" | "rr" => Strategy::RoundRobin,
                "afr" | "alternate_frame" => Strategy::Afr,
                "sfr" | "split_frame" => Strategy::Sfr,
                "compute_split" | "compute" | "compute_offload" => Strategy::ComputeSplit,
                "hybrid" | "auto" | "adaptive" => Strategy::Hybrid,
                _ => return None,
            },
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Single => "single",
            Strategy::RoundRobin => "round_robin",
            Strategy::Afr => "afr",
            Strategy::Sfr => "sfr",
            Strategy::ComputeSplit => "compute_split",
            Strategy::Hybrid => "hybrid",
        }
    }
}

/// Orders member indices for placement: the primary first, the others after it in order,
/// restricted by `mask` (bit i keeps member i). A primary outside the mask or out of range
/// falls back to the lowest kept member.
pub fn placement_order(members: usize, primary: usize, mask: Option<u64>) -> Vec<usize> {
    let kept: Vec<usize> = (0..members)
        .filter(|i| mask.is_none_or(|m| *i < 64 && m & (1 << i) != 0))
        .collect();
    let Some(&first) = kept.iter().find(|i| **i == primary).or(kept.first()) else {
        return Vec::new();
    };
    std::iter::once(first)
        .chain(kept.into_iter().filter(|i| *i != first))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(Strategy::parse("single"), Some(Strategy::Single));
        assert_eq!(Strategy::parse("Round-Robin"), Some(Strategy::RoundRobin));
        assert_eq!(Strategy::parse("afr"), Some(Strategy::Afr));
        assert_eq!(
            Strategy::parse("compute_split"),
            Some(Strategy::ComputeSplit)
        );
        assert_eq!(Strategy::parse("bogus"), None);
        for s in [
            Strategy::Single,
            Strategy::RoundRobin,
            Strategy::Afr,
            Strategy::Sfr,
            Strategy::ComputeSplit,
            Strategy::Hybrid,
        ] {
            assert_eq!(Strategy::parse(s.name()), Some(s));
        }
    }

    #[test]
    fn primary_goes_first_and_mask_restricts() {
        assert_eq!(placement_order(3, 0, None), vec![0, 1, 2]);
        assert_eq!(placement_order(3, 2, None), vec![2, 0, 1]);
        assert_eq!(placement_order(3, 1, Some(0b101)), vec![0, 2]);
        assert_eq!(placement_order(3, 9, None), vec![0, 1, 2]);
        assert_eq!(placement_order(2, 0, Some(0)), Vec::<usize>::new());
        assert_eq!(placement_order(0, 0, None), Vec::<usize>::new());
    }
}
