//! Placement of whole batches: which member runs the next batch.
//!
//! The members that may run work are the *kept* members ([`crate::placement_order`]:
//! `VKFUSE_MASK` applied, the primary first, then the others in index order). Of those, a
//! batch only goes to one that is alive: a member that returned `VK_ERROR_DEVICE_LOST` leaves
//! the placement set (DESIGN.md, Failure). The ICD passes the live members with every batch,
//! as a bit mask (bit `i` = member `i`), so the placer itself never needs to be told about a
//! loss.
//!
//! - `single`: every batch on the first live kept member (the primary while it lives).
//! - `round_robin`: each batch (each `VkSubmitInfo`) on the live kept member after the one
//!   that ran the previous batch, in placement order, wrapping around.
//! - `afr` (alternate frame rendering): all batches of one frame on one member; the batch
//!   that ends the frame still runs there, and the next frame goes to the next live kept
//!   member. A batch *ends a frame* when the ICD says so in [`BatchInfo::ends_frame`]: it is
//!   the last submit before a present on that queue, or, headless (no swapchain on the
//!   device), a submit that signals a fence. If the frame's member is lost mid-frame, the rest
//!   of the frame moves to the next live member.
//!
//! `sfr`, `compute_split` and `hybrid` split work inside a batch. The batches they do not
//! split (all of them for `sfr`, not built yet) are placed whole as `single` places them
//! ([`Placer::effective`] says so).
//!
//! Everything here is deterministic: the same sequence of batches and live sets gives the same
//! placements.

use crate::{placement_order, Strategy};

/// What the placer needs to know about one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch ends a frame (before a present; headless: it signals a fence).
    pub ends_frame: bool,
    /// The live members, bit `i` for member `i`.
    pub alive: u64,
}

impl BatchInfo {
    pub fn new(ends_frame: bool, alive: u64) -> BatchInfo {
        BatchInfo { ends_frame, alive }
    }
}

fn is_alive(alive: u64, m: usize) -> bool {
    m < 64 && alive & (1 << m) != 0
}

/// The first live member of `order`.
pub fn single(order: &[usize], alive: u64) -> Option<usize> {
    order.iter().copied().find(|m| is_alive(alive, *m))
}

/// The first live member of `order` after `after`, wrapping around (so `after` itself comes
/// last); from the start of `order` when `after` is `None` or not in `order`.
pub fn next_alive(order: &[usize], alive: u64, after: Option<usize>) -> Option<usize> {
    let start = after
        .and_then(|a| order.iter().position(|m| *m == a))
        .map_or(0, |p| p + 1);
    (0..order.len())
        .map(|i| order[(start + i) % order.len()])
        .find(|m| is_alive(alive, *m))
}

/// Places batches by strategy over the kept members. One per fused device (or per queue, if
/// the ICD wants frames counted per queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placer {
    strategy: Strategy,
    order: Vec<usize>,
    /// Round robin: the member of the previous batch. AFR: the member of the current frame.
    last: Option<usize>,
    /// AFR: the previous batch ended a frame.
    frame_ended: bool,
    frames: u64,
}

impl Placer {
    /// A placer for `members` members with `primary` first, restricted by `mask`
    /// (`VKFUSE_MASK`), as [`placement_order`] orders them.
    pub fn new(strategy: Strategy, members: usize, primary: usize, mask: Option<u64>) -> Placer {
        Placer::with_order(strategy, placement_order(members, primary, mask))
    }

    /// A placer over the members of `order`, in that order.
    pub fn with_order(strategy: Strategy, order: Vec<usize>) -> Placer {
        Placer {
            strategy,
            order,
            last: None,
            frame_ended: false,
            frames: 0,
        }
    }

    /// The strategy asked for.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The strategy that places whole batches: the one asked for, or `single` for those that
    /// split work inside a batch.
    pub fn effective(&self) -> Strategy {
        match self.strategy {
            Strategy::RoundRobin | Strategy::Afr => self.strategy,
            Strategy::Single | Strategy::Sfr | Strategy::ComputeSplit | Strategy::Hybrid => {
                Strategy::Single
            }
        }
    }

    /// The kept members in placement order.
    pub fn kept(&self) -> &[usize] {
        &self.order
    }

    /// The number of frames ended so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The member that runs `batch`; `None` when no kept member is alive (the fused device is
    /// lost).
    pub fn place(&mut self, batch: BatchInfo) -> Option<usize> {
        let alive = batch.alive;
        match self.effective() {
            Strategy::RoundRobin => {
                let m = next_alive(&self.order, alive, self.last)?;
                self.last = Some(m);
                Some(m)
            }
            Strategy::Afr => {
                let current = self.last.filter(|m| is_alive(alive, *m));
                let m = match current {
                    Some(m) if !self.frame_ended => m,
                    _ => next_alive(&self.order, alive, self.last)?,
                };
                self.last = Some(m);
                self.frame_ended = batch.ends_frame;
                if batch.ends_frame {
                    self.frames += 1;
                }
                Some(m)
            }
            _ => single(&self.order, alive),
        }
    }

    /// `batch` ran on member `m` for a reason of the ICD's (a frame being drawn there): later
    /// placements go on from it, as if this placer had chosen `m` (round robin continues after
    /// `m`; under afr the batch belongs to `m`'s frame and may end it).
    pub fn placed_on(&mut self, m: usize, batch: BatchInfo) {
        match self.effective() {
            Strategy::RoundRobin => self.last = Some(m),
            Strategy::Afr => {
                self.last = Some(m);
                self.frame_ended = batch.ends_frame;
                if batch.ends_frame {
                    self.frames += 1;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = u64::MAX;

    fn batch(alive: u64) -> BatchInfo {
        BatchInfo::new(false, alive)
    }

    fn frame_end(alive: u64) -> BatchInfo {
        BatchInfo::new(true, alive)
    }

    fn run(p: &mut Placer, batches: &[BatchInfo]) -> Vec<Option<usize>> {
        batches.iter().map(|b| p.place(*b)).collect()
    }

    #[test]
    fn helpers() {
        let order = [2, 0, 1];
        assert_eq!(single(&order, ALL), Some(2));
        assert_eq!(single(&order, 0b011), Some(0));
        assert_eq!(single(&order, 0), None);
        assert_eq!(single(&[], ALL), None);
        assert_eq!(next_alive(&order, ALL, None), Some(2));
        assert_eq!(next_alive(&order, ALL, Some(2)), Some(0));
        assert_eq!(next_alive(&order, ALL, Some(1)), Some(2));
        assert_eq!(next_alive(&order, 0b110, Some(2)), Some(1));
        assert_eq!(next_alive(&order, 0b100, Some(2)), Some(2));
        assert_eq!(next_alive(&order, ALL, Some(7)), Some(2));
        assert_eq!(next_alive(&order, 0, Some(2)), None);
        assert_eq!(next_alive(&[], ALL, None), None);
        assert_eq!(next_alive(&[70], ALL, None), None);
    }

    #[test]
    fn single_stays_on_the_primary_while_it_lives() {
        let mut p = Placer::new(Strategy::Single, 3, 1, None);
        assert_eq!(p.kept(), &[1, 0, 2]);
        assert_eq!(
            run(&mut p, &[batch(ALL), frame_end(ALL), batch(ALL)]),
            vec![Some(1); 3]
        );
        assert_eq!(p.place(batch(0b101)), Some(0));
        assert_eq!(p.place(batch(0b100)), Some(2));
        assert_eq!(p.place(batch(0)), None);
    }

    #[test]
    fn round_robin_cycles_per_submit() {
        let mut p = Placer::new(Strategy::RoundRobin, 3, 0, None);
        let got = run(&mut p, &[batch(ALL); 7]);
        assert_eq!(
            got,
            [0, 1, 2, 0, 1, 2, 0].map(Some).to_vec(),
            "frame ends do not matter"
        );
        let mut p = Placer::new(Strategy::RoundRobin, 3, 0, None);
        let got = run(&mut p, &[frame_end(ALL), batch(ALL), frame_end(ALL)]);
        assert_eq!(got, [0, 1, 2].map(Some).to_vec());
    }

    #[test]
    fn round_robin_honours_the_mask_and_skips_lost_members() {
        let mut p = Placer::new(Strategy::RoundRobin, 4, 1, Some(0b1011));
        assert_eq!(p.kept(), &[1, 0, 3]);
        assert_eq!(
            run(&mut p, &[batch(ALL); 4]),
            [1, 0, 3, 1].map(Some).to_vec()
        );
        // Member 0 is lost.
        assert_eq!(
            run(&mut p, &[batch(0b1010); 3]),
            [3, 1, 3].map(Some).to_vec()
        );
        // Member 2 is alive but not kept: never used.
        assert_eq!(p.place(batch(0b0100)), None);
    }

    #[test]
    fn placements_made_elsewhere_move_the_sequence_on() {
        let mut p = Placer::with_order(Strategy::Afr, vec![0, 1]);
        assert_eq!(p.place(batch(ALL)), Some(0));
        // The frame's last batch was placed by the ICD (on its frame's member): it ends it.
        p.placed_on(0, frame_end(ALL));
        assert_eq!(p.frames(), 1);
        assert_eq!(p.place(batch(ALL)), Some(1), "the next frame goes on");
        let mut p = Placer::with_order(Strategy::RoundRobin, vec![0, 1, 2]);
        assert_eq!(p.place(batch(ALL)), Some(0));
        p.placed_on(2, batch(ALL));
        assert_eq!(p.place(batch(ALL)), Some(0), "after member 2");
    }

    #[test]
    fn afr_keeps_a_frame_on_one_member() {
        let mut p = Placer::new(Strategy::Afr, 2, 0, None);
        let frame = [batch(ALL), batch(ALL), frame_end(ALL)];
        let mut got = Vec::new();
        for _ in 0..3 {
            got.extend(run(&mut p, &frame));
        }
        assert_eq!(got, [0, 0, 0, 1, 1, 1, 0, 0, 0].map(Some).to_vec());
        assert_eq!(p.frames(), 3);
        // Headless: every fence-signalling submit ends a frame, so it alternates per submit.
        let mut p = Placer::new(Strategy::Afr, 3, 0, None);
        assert_eq!(
            run(&mut p, &[frame_end(ALL); 4]),
            [0, 1, 2, 0].map(Some).to_vec()
        );
    }

    #[test]
    fn afr_moves_a_frame_whose_member_is_lost() {
        let mut p = Placer::new(Strategy::Afr, 3, 0, None);
        assert_eq!(p.place(batch(ALL)), Some(0));
        // Member 0 is lost mid-frame: the rest of the frame runs on 1, the next on 2.
        assert_eq!(p.place(batch(0b110)), Some(1));
        assert_eq!(p.place(frame_end(0b110)), Some(1));
        assert_eq!(p.place(batch(0b110)), Some(2));
        // The loss of another member does not move the current frame.
        assert_eq!(p.place(frame_end(0b100)), Some(2));
        assert_eq!(p.place(batch(0b100)), Some(2));
        assert_eq!(p.place(batch(0)), None);
    }

    #[test]
    fn splitting_strategies_place_like_single_for_now() {
        for s in [Strategy::Sfr, Strategy::ComputeSplit, Strategy::Hybrid] {
            let mut p = Placer::new(s, 2, 1, None);
            assert_eq!(p.strategy(), s);
            assert_eq!(p.effective(), Strategy::Single);
            assert_eq!(
                run(&mut p, &[batch(ALL), frame_end(ALL), batch(ALL)]),
                vec![Some(1); 3]
            );
        }
        assert_eq!(
            Placer::new(Strategy::Afr, 1, 0, None).effective(),
            Strategy::Afr
        );
    }

    #[test]
    fn placement_is_fair_and_deterministic() {
        // A fixed pseudo-random mix of batches and frame ends over 4 members.
        let mut x = 0x1234_5678u64;
        let batches: Vec<BatchInfo> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                BatchInfo::new(x % 3 == 1, 0b1111)
            })
            .collect();
        for s in [Strategy::RoundRobin, Strategy::Afr] {
            let mut a = Placer::new(s, 4, 0, None);
            let mut b = a.clone();
            let ra = run(&mut a, &batches);
            assert_eq!(ra, run(&mut b, &batches));
            // Round robin shares batches evenly, AFR frames (counted by their last batch).
            let mut count = [0u32; 4];
            for (m, b) in ra.iter().zip(&batches) {
                if s == Strategy::RoundRobin || b.ends_frame {
                    count[m.unwrap()] += 1;
                }
            }
            let (lo, hi) = (count.iter().min().unwrap(), count.iter().max().unwrap());
            assert!(hi - lo <= 1, "{s:?}: {count:?}");
        }
    }

    #[test]
    fn no_members_no_placement() {
        for s in [Strategy::Single, Strategy::RoundRobin, Strategy::Afr] {
            let mut p = Placer::new(s, 0, 0, None);
            assert_eq!(p.place(batch(ALL)), None);
            let mut p = Placer::new(s, 2, 0, Some(0));
            assert_eq!(p.place(batch(ALL)), None);
        }
    }
}
