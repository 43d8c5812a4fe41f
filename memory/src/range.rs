//! Ranges of units: bytes of a buffer, linearised subresources of an image.
//!
//! The coherence tracker sees every resource as a line of *units* `0..len`. For a buffer a
//! unit is a byte. For an image it is one subresource (plane, mip level, array layer),
//! numbered by [`SubresourceLayout`] so that the ranges Vulkan commands name
//! (`VkImageSubresourceRange`, `VkImageSubresourceLayers`) become few contiguous [`Range`]s.

use std::fmt;

/// A half-open range of units, `start..end`; empty when `end <= start`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// Every unit of a resource, whatever its length (like `VK_WHOLE_SIZE`): ranges are
    /// clipped to the resource's length, so this is the cheap way to say "the whole resource".
    pub const WHOLE: Range = Range {
        start: 0,
        end: u64::MAX,
    };

    pub const fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    /// `offset..offset + size`, saturating; `size == u64::MAX` reaches the end (`VK_WHOLE_SIZE`).
    pub const fn at(offset: u64, size: u64) -> Range {
        Range {
            start: offset,
            end: offset.saturating_add(size),
        }
    }

    pub const fn is_empty(self) -> bool {
        self.end <= self.start
    }

    pub const fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn contains(self, unit: u64) -> bool {
        self.start <= unit && unit < self.end
    }

    /// The units in both ranges (possibly empty).
    pub fn intersect(self, o: Range) -> Range {
        Range {
            start: self.start.max(o.start),
            end: self.end.min(o.end),
        }
    }

    /// This range limited to a resource of `len` units.
    pub fn clip(self, len: u64) -> Range {
        self.intersect(Range::new(0, len))
    }
}

impl From<std::ops::Range<u64>> for Range {
    fn from(r: std::ops::Range<u64>) -> Range {
        Range::new(r.start, r.end)
    }
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A set of units as sorted, disjoint, non-adjacent, non-empty ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl RangeSet {
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// The set covering `r`.
    pub fn of(r: Range) -> RangeSet {
        let mut s = RangeSet::new();
        s.insert(r);
        s
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of units in the set.
    pub fn units(&self) -> u64 {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    /// Adds `r`, merging with overlapping and adjacent ranges.
    pub fn insert(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        // First range that ends at or after r.start (touching counts), last that starts at or
        // before r.end.
        let lo = self.ranges.partition_point(|x| x.end < r.start);
        let hi = self.ranges.partition_point(|x| x.start <= r.end);
        if lo == hi {
            self.ranges.insert(lo, r);
            return;
        }
        let merged = Range::new(
            r.start.min(self.ranges[lo].start),
            r.end.max(self.ranges[hi - 1].end),
        );
        self.ranges.splice(lo..hi, std::iter::once(merged));
    }

    /// Removes `r`.
    pub fn remove(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let lo = self.ranges.partition_point(|x| x.end <= r.start);
        let hi = self.ranges.partition_point(|x| x.start < r.end);
        if lo == hi {
            return;
        }
        let mut keep = Vec::with_capacity(2);
        let first = self.ranges[lo];
        let last = self.ranges[hi - 1];
        if first.start < r.start {
            keep.push(Range::new(first.start, r.start));
        }
        if last.end > r.end {
            keep.push(Range::new(r.end, last.end));
        }
        self.ranges.splice(lo..hi, keep);
    }

    /// Removes every range of `other`.
    pub fn subtract(&mut self, other: &RangeSet) {
        for r in &other.ranges {
            self.remove(*r);
        }
    }

    pub fn contains(&self, unit: u64) -> bool {
        let i = self.ranges.partition_point(|x| x.end <= unit);
        self.ranges.get(i).is_some_and(|r| r.contains(unit))
    }

    /// Adds every range of `other`.
    pub fn union(&mut self, other: &RangeSet) {
        for r in &other.ranges {
            self.insert(*r);
        }
    }

    /// Whether the sets share a unit.
    pub fn intersects(&self, other: &RangeSet) -> bool {
        let (mut i, mut j) = (0, 0);
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            if !a.intersect(*b).is_empty() {
                return true;
            }
            if a.end <= b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// The units in both sets.
    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        let (mut i, mut j) = (0, 0);
        let mut out = RangeSet::new();
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            let both = a.intersect(*b);
            if !both.is_empty() {
                out.ranges.push(both);
            }
            if a.end <= b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    /// The units of `r` in the set.
    pub fn within(&self, r: Range) -> RangeSet {
        self.intersection(&RangeSet::of(r))
    }
}

impl FromIterator<Range> for RangeSet {
    fn from_iter<I: IntoIterator<Item = Range>>(iter: I) -> RangeSet {
        let mut s = RangeSet::new();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

/// How an image's subresources are numbered as units: plane-major, then mip level, then array
/// layer: `unit = (plane * mips + mip) * layers + layer`.
///
/// With that order a whole mip level, a run of whole mip levels, and the whole image are each
/// one range, which are the common cases (attachments, mip chains, full-image copies). A plane
/// stands for one aspect: colour images have one; depth/stencil images two (depth 0, stencil 1);
/// multi-planar formats one per plane. The ICD maps aspect bits to plane indices.
///
/// Units are whole subresources. A write that covers only part of a subresource (a copy into
/// a region, a render area smaller than the image) must be planned as a read *and* a write of
/// that subresource, so that the writing member holds the parts it did not write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubresourceLayout {
    pub planes: u32,
    pub mips: u32,
    pub layers: u32,
}

/// One run of subresources of one plane and mip level: layers `base_layer..base_layer+layers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubresourceRun {
    pub plane: u32,
    pub mip: u32,
    pub base_layer: u32,
    pub layers: u32,
}

impl SubresourceLayout {
    /// The number of units (subresources) of the image.
    pub const fn units(&self) -> u64 {
        self.planes as u64 * self.mips as u64 * self.layers as u64
    }

    /// The unit of one subresource.
    pub const fn unit(&self, plane: u32, mip: u32, layer: u32) -> u64 {
        (plane as u64 * self.mips as u64 + mip as u64) * self.layers as u64 + layer as u64
    }

    /// The units of the subresources of the planes in `plane_mask` (bit p is plane p), mip
    /// levels `base_mip..base_mip+mip_count` and layers `base_layer..base_layer+layer_count`.
    /// Counts are clipped to the image (so `u32::MAX` means `VK_REMAINING_*`).
    pub fn ranges(
        &self,
        plane_mask: u32,
        base_mip: u32,
        mip_count: u32,
        base_layer: u32,
        layer_count: u32,
    ) -> RangeSet {
        let mips = base_mip.min(self.mips)..base_mip.saturating_add(mip_count).min(self.mips);
        let layers =
            base_layer.min(self.layers)..base_layer.saturating_add(layer_count).min(self.layers);
        let mut out = RangeSet::new();
        if layers.is_empty() {
            return out;
        }
        for plane in (0..self.planes.min(32)).filter(|p| plane_mask & (1 << p) != 0) {
            for mip in mips.clone() {
                out.insert(Range::new(
                    self.unit(plane, mip, layers.start),
                    self.unit(plane, mip, layers.start) + (layers.end - layers.start) as u64,
                ));
            }
        }
        out
    }

    /// The subresources of a range of units, one run per plane and mip level, for turning a
    /// planned transfer back into `VkImageSubresourceLayers`.
    pub fn runs(&self, r: Range) -> Vec<SubresourceRun> {
        let r = r.clip(self.units());
        let mut out = Vec::new();
        let layers = u64::from(self.layers.max(1));
        let mut u = r.start;
        while u < r.end {
            let row = u / layers; // plane * mips + mip
            let layer = u % layers;
            let end = ((row + 1) * layers).min(r.end);
            let mips = u64::from(self.mips.max(1));
            out.push(SubresourceRun {
                plane: (row / mips) as u32,
                mip: (row % mips) as u32,
                base_layer: layer as u32,
                layers: (end - u) as u32,
            });
            u = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_basics() {
        let r = Range::new(2, 6);
        assert_eq!(r.len(), 4);
        assert!(r.contains(2) && r.contains(5) && !r.contains(6));
        assert!(Range::new(5, 5).is_empty() && Range::new(6, 5).is_empty());
        assert_eq!(Range::new(6, 5).len(), 0);
        assert_eq!(r.intersect(Range::new(4, 10)), Range::new(4, 6));
        assert!(r.intersect(Range::new(7, 10)).is_empty());
        assert_eq!(Range::WHOLE.clip(10), Range::new(0, 10));
        assert_eq!(
            Range::at(u64::MAX - 1, 10),
            Range::new(u64::MAX - 1, u64::MAX)
        );
        assert_eq!(Range::from(1..3), Range::new(1, 3));
        assert_eq!(format!("{r}"), "2..6");
    }

    #[test]
    fn range_set_intersection_and_union() {
        let a: RangeSet = [Range::new(0, 10), Range::new(20, 30), Range::new(40, 50)]
            .into_iter()
            .collect();
        let b: RangeSet = [Range::new(5, 25), Range::new(28, 45)]
            .into_iter()
            .collect();
        let both = a.intersection(&b);
        assert_eq!(
            both.ranges(),
            &[
                Range::new(5, 10),
                Range::new(20, 25),
                Range::new(28, 30),
                Range::new(40, 45)
            ]
        );
        assert_eq!(both, b.intersection(&a));
        assert!(a.intersection(&RangeSet::new()).is_empty());
        assert!(a.intersects(&b) && b.intersects(&a));
        assert!(!a.intersects(&RangeSet::of(Range::new(10, 20))));
        assert!(!a.intersects(&RangeSet::new()));
        assert_eq!(a.within(Range::new(8, 22)).units(), 4);
        let mut u = a.clone();
        u.union(&b);
        assert_eq!(u.ranges(), &[Range::new(0, 50)]);
    }

    #[test]
    fn range_set_merges_and_splits() {
        let mut s = RangeSet::new();
        s.insert(Range::new(10, 20));
        s.insert(Range::new(0, 5));
        s.insert(Range::new(5, 7)); // adjacent: merges
        s.insert(Range::new(30, 40));
        s.insert(Range::new(3, 3)); // empty: ignored
        assert_eq!(
            s.ranges(),
            &[Range::new(0, 7), Range::new(10, 20), Range::new(30, 40)]
        );
        s.insert(Range::new(6, 31));
        assert_eq!(s.ranges(), &[Range::new(0, 40)]);
        s.remove(Range::new(10, 20));
        assert_eq!(s.ranges(), &[Range::new(0, 10), Range::new(20, 40)]);
        s.remove(Range::new(0, 1));
        s.remove(Range::new(39, 50));
        assert_eq!(s.ranges(), &[Range::new(1, 10), Range::new(20, 39)]);
        assert_eq!(s.units(), 28);
        assert!(s.contains(1) && !s.contains(10) && s.contains(38) && !s.contains(39));
        let other: RangeSet = [Range::new(5, 25)].into_iter().collect();
        s.subtract(&other);
        assert_eq!(s.ranges(), &[Range::new(1, 5), Range::new(25, 39)]);
        s.remove(Range::new(0, 100));
        assert!(s.is_empty());
    }

    #[test]
    fn subresources_linearise_to_few_ranges() {
        let img = SubresourceLayout {
            planes: 2,
            mips: 3,
            layers: 4,
        };
        assert_eq!(img.units(), 24);
        assert_eq!(img.unit(1, 2, 3), 23);
        // Whole image: one range.
        assert_eq!(
            img.ranges(0b11, 0, u32::MAX, 0, u32::MAX).ranges(),
            &[Range::new(0, 24)]
        );
        // One mip of all layers of plane 0.
        assert_eq!(
            img.ranges(0b1, 1, 1, 0, u32::MAX).ranges(),
            &[Range::new(4, 8)]
        );
        // Two layers of two mips: one range per mip.
        assert_eq!(
            img.ranges(0b10, 0, 2, 1, 2).ranges(),
            &[Range::new(13, 15), Range::new(17, 19)]
        );
        // Out of the image: nothing.
        assert!(img.ranges(0b1, 5, 1, 0, 1).is_empty());
        assert!(img.ranges(0b1, 0, 1, 9, 1).is_empty());
        // And back.
        assert_eq!(
            img.runs(Range::new(2, 9)),
            vec![
                SubresourceRun {
                    plane: 0,
                    mip: 0,
                    base_layer: 2,
                    layers: 2
                },
                SubresourceRun {
                    plane: 0,
                    mip: 1,
                    base_layer: 0,
                    layers: 4
                },
                SubresourceRun {
                    plane: 0,
                    mip: 2,
                    base_layer: 0,
                    layers: 1
                },
            ]
        );
        for u in 0..24 {
            let runs = img.runs(Range::new(u, u + 1));
            assert_eq!(runs.len(), 1);
            let r = runs[0];
            assert_eq!(img.unit(r.plane, r.mip, r.base_layer), u);
        }
    }
}
