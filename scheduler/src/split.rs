//! Splitting one dispatch into slices of workgroups, one per member (`compute_split`).
//!
//! A dispatch of `count` workgroups along its split dimension is cut into consecutive
//! ranges, one per member, sized in proportion to each member's measured throughput
//! ([`Balance`]). Pure logic: the ICD measures, records the slices with `vkCmdDispatchBase`
//! and merges their results.

/// Cuts `count` workgroups into consecutive slices, one per weight, sized in proportion to the
/// weights (largest remainders get the groups left over). Returns each slice's (first group,
/// group count); a slice may be empty. Weights that are not finite or not positive count as
/// zero; when all do, the slices are equal.
pub fn slices(count: u32, weights: &[f64]) -> Vec<(u32, u32)> {
    if weights.is_empty() {
        return Vec::new();
    }
    let clean: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 })
        .collect();
    let total: f64 = clean.iter().sum();
    let clean = if total > 0.0 {
        clean
    } else {
        vec![1.0; weights.len()]
    };
    let total: f64 = clean.iter().sum();
    let exact: Vec<f64> = clean.iter().map(|w| f64::from(count) * w / total).collect();
    let mut sizes: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = count - sizes.iter().sum::<u32>().min(count);
    // Largest remainders first; ties to the earlier member.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|a, b| {
        let ra = exact[*a] - exact[*a].floor();
        let rb = exact[*b] - exact[*b].floor();
        rb.partial_cmp(&ra).unwrap_or(std::cmp::Ordering::Equal)
    });
    for i in order.iter().cycle().take(sizes.len() * 2) {
        if left == 0 {
            break;
        }
        if clean[*i] > 0.0 {
            sizes[*i] += 1;
            left -= 1;
        }
    }
    let mut first = 0;
    sizes
        .into_iter()
        .map(|n| {
            let s = (first, n);
            first += n;
            s
        })
        .collect()
}

/// Each member's measured throughput (workgroups per nanosecond of busy time), as a moving
/// average over its slices; members not yet measured count as the mean of those measured (as
/// equal when none is).
#[derive(Clone, Debug, Default)]
pub struct Balance {
    rates: Vec<Option<f64>>,
}

impl Balance {
    /// Weight of a new measurement in the moving average.
    const NEW: f64 = 0.25;

    pub fn new(members: usize) -> Balance {
        Balance {
            rates: vec![None; members],
        }
    }

    /// Member `m` ran `groups` workgroups in `busy_ns` nanoseconds. Slices too small to time
    /// (no groups, or no time) are not counted.
    pub fn measured(&mut self, m: usize, groups: u64, busy_ns: u64) {
        if groups == 0 || busy_ns == 0 || m >= self.rates.len() {
            return;
        }
        let rate = groups as f64 / busy_ns as f64;
        let r = &mut self.rates[m];
        *r = Some(match *r {
            Some(old) => old * (1.0 - Self::NEW) + rate * Self::NEW,
            None => rate,
        });
    }

    /// Member `m`'s measured throughput (workgroups per ns), if measured.
    pub fn rate(&self, m: usize) -> Option<f64> {
        self.rates.get(m).copied().flatten()
    }

    /// `hybrid`: whether splitting `groups` workgroups over `members`, in `rounds` rounds,
    /// with `transfer_ns` of copies and merges between members, pays against running them
    /// whole on the fastest member. It pays when every member was measured, splitting (the
    /// groups at the members' summed throughput, plus the transfers) is at least `gain` times
    /// as fast as the fastest member alone, and each round would keep the members busy at
    /// least `min_round_ns` (a round costs a wait through the host). Before every member was
    /// measured it splits, to measure.
    pub fn split_pays(
        &self,
        members: &[usize],
        (groups, rounds): (u64, u64),
        transfer_ns: f64,
        gain: f64,
        min_round_ns: f64,
    ) -> Result<(), String> {
        let rates: Option<Vec<f64>> = members.iter().map(|m| self.rate(*m)).collect();
        let Some(rates) = rates else {
            return Ok(());
        };
        let total: f64 = rates.iter().sum();
        let best = rates.iter().copied().fold(0.0, f64::max);
        let whole = groups as f64 / best.max(f64::MIN_POSITIVE);
        let split = groups as f64 / total.max(f64::MIN_POSITIVE) + transfer_ns.max(0.0);
        if best <= 0.0 || whole / split < gain {
            return Err(format!(
                "splitting would be {:.2} times as fast as the fastest member alone (below {gain})",
                whole / split
            ));
        }
        let per_round = groups as f64 / rounds.max(1) as f64 / total;
        if per_round < min_round_ns {
            return Err(format!(
                "a round would keep the members busy {:.0} us (below {:.0} us)",
                per_round / 1e3,
                min_round_ns / 1e3
            ));
        }
        Ok(())
    }

    /// The weights of members `members` (indices into this balance), for [`slices`].
    pub fn weights(&self, members: &[usize]) -> Vec<f64> {
        let known: Vec<f64> = members
            .iter()
            .filter_map(|m| self.rates.get(*m).copied().flatten())
            .collect();
        let mean = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        members
            .iter()
            .map(|m| self.rates.get(*m).copied().flatten().unwrap_or(mean))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(v: &[(u32, u32)]) -> Vec<u32> {
        v.iter().map(|s| s.1).collect()
    }

    #[test]
    fn equal_weights_cut_evenly_and_cover_every_group() {
        assert_eq!(slices(10, &[1.0, 1.0]), vec![(0, 5), (5, 5)]);
        assert_eq!(sizes(&slices(7, &[1.0, 1.0, 1.0])), vec![3, 2, 2]);
        assert_eq!(slices(1, &[1.0, 1.0]), vec![(0, 1), (1, 0)]);
        for count in [0u32, 1, 2, 3, 17, 1000, 65535] {
            for w in [&[1.0, 3.0][..], &[0.2, 0.3, 0.5], &[5.0]] {
                let s = slices(count, w);
                assert_eq!(s.iter().map(|x| x.1).sum::<u32>(), count);
                let mut next = 0;
                for (first, n) in &s {
                    assert_eq!(*first, next);
                    next += n;
                }
            }
        }
    }

    #[test]
    fn slices_follow_the_weights() {
        assert_eq!(sizes(&slices(100, &[1.0, 3.0])), vec![25, 75]);
        assert_eq!(sizes(&slices(10, &[0.0, 1.0])), vec![0, 10]);
        assert_eq!(sizes(&slices(4, &[f64::NAN, -1.0])), vec![2, 2]);
        assert_eq!(slices(4, &[]), Vec::<(u32, u32)>::new());
    }

    #[test]
    fn balance_averages_and_fills_in_unmeasured_members() {
        let mut b = Balance::new(3);
        assert_eq!(b.weights(&[0, 1, 2]), vec![1.0, 1.0, 1.0]);
        b.measured(0, 100, 100);
        b.measured(1, 100, 300);
        b.measured(1, 0, 300);
        b.measured(9, 1, 1);
        let w = b.weights(&[0, 1, 2]);
        assert_eq!(w[0], 1.0);
        assert!((w[1] - 1.0 / 3.0).abs() < 1e-12);
        assert!((w[2] - 2.0 / 3.0).abs() < 1e-12);
        b.measured(0, 100, 50);
        assert!((b.weights(&[0])[0] - 1.25).abs() < 1e-12);
    }

    #[test]
    fn hybrid_splits_only_where_it_pays() {
        let mut b = Balance::new(2);
        // Not measured yet: split, to measure.
        assert!(b.split_pays(&[0, 1], (10, 1), 0.0, 1.2, 1000.0).is_ok());
        b.measured(0, 1000, 1000);
        assert!(b.split_pays(&[0, 1], (10, 1), 0.0, 1.2, 1000.0).is_ok());
        // Equal members, large rounds: pays.
        b.measured(1, 1000, 1000);
        assert!(b
            .split_pays(&[0, 1], (1_000_000, 2), 0.0, 1.2, 1000.0)
            .is_ok());
        // Unless the transfers eat the gain: 500 us of work each instead of 1 ms alone, plus
        // 400 us of copies.
        assert!(b
            .split_pays(&[0, 1], (1_000_000, 1), 400_000.0, 1.2, 1000.0)
            .is_err());
        // Rounds too short to pay for the host round trip.
        assert!(b.split_pays(&[0, 1], (1000, 2), 0.0, 1.2, 1000.0).is_err());
        // A member ten times slower adds too little.
        let mut c = Balance::new(2);
        c.measured(0, 1000, 100);
        c.measured(1, 1000, 10_000);
        assert!(c
            .split_pays(&[0, 1], (1_000_000, 1), 0.0, 1.2, 1000.0)
            .is_err());
    }
}
