//! Splitting one dispatch into slices of workgroups, one per member (`compute_split`).
//!
//! A dispatch of `count` workgroups along its split dimension is cut into chunks dealt out to
//! the members, interleaved, in proportion to each member's measured throughput
//! ([`Balance`]). Pure logic: the ICD measures, records the slices with `vkCmdDispatchBase`
//! and merges their results.

/// Cuts `count` workgroups into up to `per_member` chunks per weight, of equal size (within
/// one group), and deals them out in proportion to the weights, interleaved: a smooth
/// weighted round robin (each turn the member furthest behind its share takes the next
/// chunk). Interleaving evens out work that varies along the dimension (the rows of a
/// fractal near its set cost more than those far from it). Returns per weight its ranges of
/// groups (first, count), adjacent chunks joined; a weight may get none. Weights that are not
/// finite or not positive count as zero; when all do, the shares are equal.
pub fn chunks(count: u32, weights: &[f64], per_member: u32) -> Vec<Vec<(u32, u32)>> {
    let mut out: Vec<Vec<(u32, u32)>> = vec![Vec::new(); weights.len()];
    if weights.is_empty() || count == 0 {
        return out;
    }
    let clean: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 })
        .collect();
    let clean = if clean.iter().sum::<f64>() > 0.0 {
        clean
    } else {
        vec![1.0; weights.len()]
    };
    let total: f64 = clean.iter().sum();
    let k = (per_member.max(1) as usize * weights.len()).min(count as usize) as u32;
    let mut current = vec![0.0f64; clean.len()];
    for c in 0..k {
        let first = (u64::from(count) * u64::from(c) / u64::from(k)) as u32;
        let end = (u64::from(count) * u64::from(c + 1) / u64::from(k)) as u32;
        for (cur, w) in current.iter_mut().zip(&clean) {
            *cur += w;
        }
        let m = (0..clean.len())
            .max_by(|a, b| {
                current[*a]
                    .partial_cmp(&current[*b])
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(b.cmp(a))
            })
            .unwrap_or(0);
        current[m] -= total;
        match out[m].last_mut() {
            Some(last) if last.0 + last.1 == first => last.1 += end - first,
            _ => out[m].push((first, end - first)),
        }
    }
    out
}

/// Each member's measured throughput (workgroups per nanosecond of busy time), as a moving
/// average over its slices (`hybrid`'s estimates), and its speed relative to the others in
/// the same rounds, as a moving average over rounds (the weights slices are dealt out by:
/// rounds of different kernels, whose workgroups cost differently, compare alike); members not
/// yet measured count as the mean of those measured (as equal when none is).
///
/// A member whose share falls below one chunk would never be measured again: every
/// [`Balance::EXPLORE`]th call of [`Balance::weights`] gives each member at least a chunk
/// or so, so that its speed is measured anew; a member so slow that this share would take
/// longer than a whole balanced round, proportionally more rarely.
#[derive(Clone, Debug, Default)]
pub struct Balance {
    rates: Vec<Option<f64>>,
    speeds: Vec<Option<f64>>,
    calls: u64,
    /// Each member's expected speed before any member was measured (1 where not given).
    priors: Vec<f64>,
}

impl Balance {
    /// Weight of a new measurement in the moving average.
    const NEW: f64 = 0.25;

    /// One call of [`Balance::weights`] in this many gives every member a share.
    pub const EXPLORE: u64 = 16;

    pub fn new(members: usize) -> Balance {
        Balance {
            rates: vec![None; members],
            speeds: vec![None; members],
            calls: 0,
            priors: Vec::new(),
        }
    }

    /// The speeds members are expected to have relative to each other before any of them was
    /// measured (by default equal): the weights of the first rounds, so that a CPU driver
    /// beside a GPU is not first given half of a grid.
    pub fn with_priors(mut self, priors: Vec<f64>) -> Balance {
        self.priors = priors;
        self
    }

    /// The slices of one round, each (member, workgroups, busy nanoseconds), all measured:
    /// their throughputs ([`Balance::measured`]) and, where two or more ran something, each
    /// one's speed relative to their mean.
    pub fn round(&mut self, slices: &[(usize, u64, u64)]) {
        for (m, groups, ns) in slices {
            self.measured(*m, *groups, *ns);
        }
        let ran: Vec<(usize, f64)> = slices
            .iter()
            .filter(|(m, g, ns)| *g > 0 && *ns > 0 && *m < self.speeds.len())
            .map(|(m, g, ns)| (*m, *g as f64 / *ns as f64))
            .collect();
        if ran.len() < 2 {
            return;
        }
        let mean = ran.iter().map(|r| r.1).sum::<f64>() / ran.len() as f64;
        for (m, rate) in ran {
            let speed = rate / mean;
            let s = &mut self.speeds[m];
            *s = Some(match *s {
                Some(old) => old * (1.0 - Self::NEW) + speed * Self::NEW,
                None => speed,
            });
        }
    }

    /// Member `m`'s speed relative to the others, once measured.
    pub fn speed(&self, m: usize) -> Option<f64> {
        self.speeds.get(m).copied().flatten()
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

    /// The fastest of `members` by measured speed relative to the others, once every one of
    /// them was measured.
    pub fn fastest(&self, members: &[usize]) -> Option<usize> {
        let rates: Option<Vec<f64>> = members
            .iter()
            .map(|m| self.speeds.get(*m).copied().flatten())
            .collect();
        let rates = rates?;
        members
            .iter()
            .zip(rates)
            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
            .map(|(m, _)| *m)
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

    /// The weights of members `members` (indices into this balance), for [`chunks`] of
    /// `per_member` chunks per member: their relative speeds. Every [`Balance::EXPLORE`]th
    /// call, no weight is below two chunks' share of their sum (for a member that share
    /// would keep busy longer than a balanced round, proportionally more rarely).
    pub fn weights(&mut self, members: &[usize], per_member: u32) -> Vec<f64> {
        self.calls += 1;
        let known: Vec<f64> = members
            .iter()
            .filter_map(|m| self.speeds.get(*m).copied().flatten())
            .collect();
        let mean = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let prior = |m: usize| match self.priors.get(m) {
            Some(p) if p.is_finite() && *p > 0.0 => *p,
            _ => 1.0,
        };
        let mut w: Vec<f64> = members
            .iter()
            .map(|m| match self.speeds.get(*m).copied().flatten() {
                Some(s) => s,
                None if known.is_empty() => prior(*m),
                None => mean,
            })
            .collect();
        let sum: f64 = w.iter().sum();
        let share = 2.0 / (f64::from(per_member.max(1)) * members.len().max(1) as f64);
        let floor = share * sum;
        for x in &mut w {
            // The member's time for the floor share, in rounds as balanced: a CPU driver
            // beside a GPU may take many rounds' time for two chunks. Such a member is
            // explored that many times more rarely, so that exploring costs about one round
            // in EXPLORE on average, whatever the members' speeds.
            let cost = if *x > 0.0 { floor / *x } else { f64::INFINITY };
            let every = if cost <= 1.0 {
                Self::EXPLORE
            } else if cost.is_finite() && cost < 1e6 {
                Self::EXPLORE * cost.ceil() as u64
            } else {
                u64::MAX
            };
            if self.calls % every == 0 {
                *x = x.max(floor);
            }
        }
        w
    }
}

/// A [`Balance`] per kind of work (a key the caller chooses: the compute pipeline of a batch's
/// first split dispatch), beside the one over every kind (`all`, which `hybrid`'s estimates
/// use): members' speeds relative to each other differ between kernels (a GPU against a CPU
/// driver gains more on arithmetic than on memory traffic). A kind's weights are its own
/// once it has measured every member's speed, and `all`'s until then.
#[derive(Clone, Debug, Default)]
pub struct Balances {
    pub all: Balance,
    kinds: std::collections::HashMap<u64, Balance>,
    members: usize,
}

impl Balances {
    /// Kinds kept at most: past it, the kinds are forgotten and measured anew.
    pub const KINDS: usize = 256;

    pub fn new(members: usize) -> Balances {
        Balances {
            all: Balance::new(members),
            kinds: Default::default(),
            members,
        }
    }

    /// [`Balances::new`] with expected relative speeds before any measurement (see
    /// [`Balance::with_priors`]).
    pub fn with_priors(members: usize, priors: Vec<f64>) -> Balances {
        Balances {
            all: Balance::new(members).with_priors(priors),
            kinds: Default::default(),
            members,
        }
    }

    /// The weights of `members` for work of `kind` (see [`Balance::weights`]).
    pub fn weights(&mut self, kind: u64, members: &[usize], per_member: u32) -> Vec<f64> {
        match self.kinds.get_mut(&kind) {
            Some(b) if members.iter().all(|m| b.speed(*m).is_some()) => {
                b.weights(members, per_member)
            }
            _ => self.all.weights(members, per_member),
        }
    }

    /// `hybrid`: whether splitting work of `kind` pays (see [`Balance::split_pays`]), from the
    /// throughput measured on that kind once every member of `members` ran some of it, and
    /// from the throughput over every kind before: a workgroup of one kernel may cost many
    /// times what one of another does.
    pub fn split_pays(
        &self,
        kind: u64,
        members: &[usize],
        work: (u64, u64),
        transfer_ns: f64,
        gain: f64,
        min_round_ns: f64,
    ) -> Result<(), String> {
        let balance = match self.kinds.get(&kind) {
            Some(b) if members.iter().all(|m| b.rate(*m).is_some()) => b,
            _ => &self.all,
        };
        balance.split_pays(members, work, transfer_ns, gain, min_round_ns)
    }

    /// The slices of one round of work of `kind` (see [`Balance::round`]).
    pub fn round(&mut self, kind: u64, slices: &[(usize, u64, u64)]) {
        self.all.round(slices);
        if !self.kinds.contains_key(&kind) && self.kinds.len() >= Self::KINDS {
            self.kinds.clear();
        }
        let members = self.members;
        self.kinds
            .entry(kind)
            .or_insert_with(|| Balance::new(members))
            .round(slices);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(v: &[(u32, u32)]) -> u32 {
        v.iter().map(|r| r.1).sum()
    }

    #[test]
    fn kinds_keep_their_own_relative_speeds() {
        let mut b = Balances::new(2);
        // Member 1 is 3 times as fast on kind 7, and as fast as member 0 on kind 8.
        for _ in 0..40 {
            b.round(7, &[(0, 100, 1000), (1, 300, 1000)]);
            b.round(8, &[(0, 100, 1000), (1, 100, 1000)]);
        }
        let ratio = |w: Vec<f64>| w[1] / w[0];
        let seven = ratio(b.weights(7, &[0, 1], 8));
        let eight = ratio(b.weights(8, &[0, 1], 8));
        assert!((seven - 3.0).abs() < 0.05, "{seven}");
        assert!((eight - 1.0).abs() < 0.05, "{eight}");
        // A kind not measured yet takes the speeds over every kind (between the two).
        let other = ratio(b.weights(9, &[0, 1], 8));
        assert!(other > 1.2 && other < 2.8, "{other}");
        // Past `KINDS` kinds, they are forgotten and measured anew.
        for k in 100..100 + Balances::KINDS as u64 {
            b.round(k, &[(0, 100, 1000), (1, 100, 1000)]);
        }
        assert!(b.kinds.len() <= Balances::KINDS);
    }

    /// `hybrid` weighs each kind of work by its own throughput: the same number of workgroups
    /// of a costly kernel pays to split where those of a cheap one do not.
    #[test]
    fn kinds_keep_their_own_throughput_for_hybrid() {
        let mut b = Balances::new(2);
        for _ in 0..40 {
            // Kind 1: 100 groups per microsecond; kind 2: one group per 100 microseconds.
            b.round(1, &[(0, 100_000, 1000), (1, 100_000, 1000)]);
            b.round(2, &[(0, 10, 1_000_000), (1, 10, 1_000_000)]);
        }
        let pays = |kind| b.split_pays(kind, &[0, 1], (10_000, 1), 0.0, 1.2, 100_000.0);
        // 10000 groups of kind 2 keep each member busy 500 ms: splitting pays.
        assert!(pays(2).is_ok(), "{:?}", pays(2));
        // Of kind 1, 50 us: below the round's minimum.
        assert!(pays(1).is_err());
        // A kind not measured yet is weighed by the throughput over every kind.
        assert_eq!(
            pays(3),
            b.all.split_pays(&[0, 1], (10_000, 1), 0.0, 1.2, 100_000.0)
        );
    }

    #[test]
    fn chunks_cover_every_group_once_in_proportion() {
        for count in [0u32, 1, 2, 3, 17, 64, 1000, 65535] {
            for w in [
                &[1.0, 1.0][..],
                &[1.0, 3.0],
                &[0.2, 0.3, 0.5],
                &[5.0],
                &[0.0, 2.0],
            ] {
                let c = chunks(count, w, 8);
                assert_eq!(c.len(), w.len());
                let mut all: Vec<(u32, u32)> = c.iter().flatten().copied().collect();
                all.sort();
                let mut next = 0;
                for (first, n) in all {
                    assert_eq!(first, next, "{count} {w:?} {c:?}");
                    assert!(n > 0);
                    next += n;
                }
                assert_eq!(next, count);
                // Within two chunks' worth of its share.
                let sum: f64 = w.iter().sum();
                let chunk = f64::from(count) / (8 * w.len()).min(count.max(1) as usize) as f64;
                for (mine, wi) in c.iter().zip(w) {
                    let share = f64::from(count) * wi / sum;
                    assert!((f64::from(total(mine)) - share).abs() <= 2.0 * chunk + 1.0);
                }
            }
        }
    }

    #[test]
    fn chunks_interleave() {
        // Two equal members, 16 groups in 8 chunks each way: alternating pairs of groups.
        let c = chunks(16, &[1.0, 1.0], 4);
        assert_eq!(c[0], vec![(0, 2), (4, 2), (8, 2), (12, 2)]);
        assert_eq!(c[1], vec![(2, 2), (6, 2), (10, 2), (14, 2)]);
        // One member three times as fast takes three chunks of every four.
        let c = chunks(8, &[1.0, 3.0], 4);
        assert_eq!(total(&c[0]), 2);
        assert_eq!(total(&c[1]), 6);
        // Invalid weights: equal shares.
        let c = chunks(4, &[f64::NAN, -1.0], 1);
        assert_eq!((total(&c[0]), total(&c[1])), (2, 2));
        assert!(chunks(4, &[], 4).is_empty());
    }

    #[test]
    fn balance_averages_and_fills_in_unmeasured_members() {
        let mut b = Balance::new(3);
        assert_eq!(b.weights(&[0, 1, 2], 8), vec![1.0, 1.0, 1.0]);
        // Member 1 runs at a third of member 0's rate; a slice without groups and a member
        // out of range count for nothing.
        b.round(&[(0, 100, 100), (1, 100, 300), (9, 1, 1)]);
        b.round(&[(1, 0, 300)]);
        let w = b.weights(&[0, 1, 2], 8);
        assert!((w[0] / w[1] - 3.0).abs() < 1e-12, "{w:?}");
        // Member 2, not measured: the mean.
        assert!((w[2] - (w[0] + w[1]) / 2.0).abs() < 1e-12);
        assert!((b.rate(0).unwrap_or(0.0) - 1.0).abs() < 1e-12);
        // A round of another kernel, 100 times as costly per workgroup, at the same ratio:
        // the weights stay, though the rates change.
        b.round(&[(0, 100, 10_000), (1, 100, 30_000)]);
        let v = b.weights(&[0, 1, 2], 8);
        assert!((v[0] / v[1] - 3.0).abs() < 1e-9, "{v:?}");
        assert!(b.rate(0).unwrap_or(1.0) < 1.0);
    }

    #[test]
    fn a_member_left_without_share_is_measured_again() {
        // A member 100 or 1000 times slower than the other gets no chunk of 16. Its two
        // chunks' share (1/8) would take 12.6 or 125.1 balanced rounds' time: it is explored
        // once in 13 or 126 times EXPLORE calls, where a member whose share costs less than a
        // round is explored once in EXPLORE.
        for (slow, every) in [(100u64, 13), (1000, 126)] {
            let mut b = Balance::new(2);
            for _ in 0..8 {
                b.round(&[(0, 1000, 1000), (1, 1000 / slow, 1000)]);
            }
            let mut shares = Vec::new();
            for _ in 0..every * Balance::EXPLORE {
                let w = b.weights(&[0, 1], 8);
                shares.push(total(&chunks(1600, &w, 8)[1]));
            }
            let explored: Vec<usize> = (0..shares.len()).filter(|i| shares[*i] > 0).collect();
            assert_eq!(explored.len(), 1, "{slow}: {explored:?}");
            // The last call: at least a chunk (100 groups).
            assert!(shares.last().is_some_and(|s| *s >= 100), "{slow}");
            // Measured anew at the same speed, it gains its share back.
            for _ in 0..20 {
                b.round(&[(0, 1000, 1000), (1, 1000, 1000)]);
            }
            let w = b.weights(&[0, 1], 8);
            assert!((w[0] / w[1] - 1.0).abs() < 0.01, "{w:?}");
        }
    }

    #[test]
    fn priors_weigh_the_first_rounds_only() {
        // A discrete GPU (16) beside a CPU driver (1): the CPU driver's first share is one
        // chunk of 16, not half of the grid.
        let mut b = Balances::with_priors(2, vec![16.0, 1.0]);
        let w = b.weights(7, &[0, 1], 8);
        assert_eq!(chunks(1600, &w, 8)[1], vec![(800, 100)], "{w:?}");
        // Measured, the speeds decide: here they are equal.
        b.round(7, &[(0, 100, 1000), (1, 100, 1000)]);
        let w = b.weights(7, &[0, 1], 8);
        assert!((w[0] / w[1] - 1.0).abs() < 1e-9, "{w:?}");
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
        // A member ten times slower adds too little; the faster takes whole batches.
        let mut c = Balance::new(2);
        assert_eq!(c.fastest(&[0, 1]), None);
        c.round(&[(1, 1000, 10_000)]);
        assert_eq!(c.fastest(&[0, 1]), None);
        c.round(&[(0, 1000, 100), (1, 1000, 10_000)]);
        assert_eq!(c.fastest(&[0, 1]), Some(0));
        assert_eq!(c.fastest(&[1]), Some(1));
        assert!(c
            .split_pays(&[0, 1], (1_000_000, 1), 0.0, 1.2, 1000.0)
            .is_err());
    }
}
