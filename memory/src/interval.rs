//! An interval map over `0..len`: every unit has a value, stored as maximal runs of equal
//! values keyed by their first unit.

use crate::range::Range;
use std::collections::BTreeMap;

/// Values for the units `0..len`, kept as segments: key `k` holds the value of the units from
/// `k` up to the next key (or `len`).
///
/// Invariants: when `len > 0` there is a key `0`; no key is `>= len`; two consecutive
/// segments never hold equal values (they are merged).
#[derive(Clone, Debug)]
pub(crate) struct IntervalMap<V> {
    len: u64,
    map: BTreeMap<u64, V>,
}

impl<V: Copy + Eq> IntervalMap<V> {
    pub(crate) fn new(len: u64, value: V) -> Self {
        let mut map = BTreeMap::new();
        if len > 0 {
            map.insert(0, value);
        }
        IntervalMap { len, map }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The number of segments.
    pub(crate) fn segment_count(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, unit: u64) -> Option<V> {
        if unit >= self.len {
            return None;
        }
        self.map.range(..=unit).next_back().map(|(_, v)| *v)
    }

    /// The segments overlapping `r`, clipped to it.
    pub(crate) fn segments(&self, r: Range) -> impl Iterator<Item = (Range, V)> + '_ {
        let r = r.clip(self.len);
        // The segment holding r.start starts at or before it.
        let first = if r.is_empty() {
            r.end
        } else {
            self.map
                .range(..=r.start)
                .next_back()
                .map_or(r.start, |(k, _)| *k)
        };
        let mut it = self.map.range(first..r.end.max(first)).peekable();
        let len = self.len;
        std::iter::from_fn(move || {
            let (k, v) = it.next()?;
            let end = it.peek().map_or(len, |(n, _)| **n);
            Some((Range::new(*k, end).intersect(r), *v))
        })
    }

    /// Makes a segment start at `at` (no-op at 0, at or past `len`, or at an existing key).
    fn split_at(&mut self, at: u64) {
        if at == 0 || at >= self.len || self.map.contains_key(&at) {
            return;
        }
        if let Some((_, v)) = self.map.range(..at).next_back() {
            let v = *v;
            self.map.insert(at, v);
        }
    }

    /// Merges equal neighbours among the segments starting in `from..=to` and the one before.
    fn coalesce(&mut self, from: u64, to: u64) {
        let start = self.map.range(..from).next_back().map_or(from, |(k, _)| *k);
        let keys: Vec<(u64, V)> = self.map.range(start..=to).map(|(k, v)| (*k, *v)).collect();
        let mut prev: Option<V> = None;
        for (k, v) in keys {
            if prev == Some(v) {
                self.map.remove(&k);
            } else {
                prev = Some(v);
            }
        }
    }

    /// Sets every unit of `r` to `value`.
    pub(crate) fn assign(&mut self, r: Range, value: V) {
        let r = r.clip(self.len);
        if r.is_empty() {
            return;
        }
        if r.start == 0 && r.end == self.len {
            self.map.clear();
            self.map.insert(0, value);
            return;
        }
        self.split_at(r.end);
        self.split_at(r.start);
        let inner: Vec<u64> = self
            .map
            .range(r.start + 1..r.end)
            .map(|(k, _)| *k)
            .collect();
        for k in inner {
            self.map.remove(&k);
        }
        self.map.insert(r.start, value);
        self.coalesce(r.start, r.end);
    }

    /// Replaces the value `v` of every unit of `r` with `f(v)`; `seen` is called with each
    /// segment's range, old value and new value before the change.
    pub(crate) fn update(
        &mut self,
        r: Range,
        mut f: impl FnMut(V) -> V,
        mut seen: impl FnMut(Range, V, V),
    ) {
        let r = r.clip(self.len);
        if r.is_empty() {
            return;
        }
        self.split_at(r.end);
        self.split_at(r.start);
        let mut it = self.map.range_mut(r.start..r.end).peekable();
        while let Some((k, v)) = it.next() {
            let end = it.peek().map_or(r.end, |(n, _)| **n);
            let new = f(*v);
            seen(Range::new(*k, end), *v, new);
            *v = new;
        }
        // Also undoes the splits above where nothing changed.
        self.coalesce(r.start, r.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(m: &IntervalMap<u8>) -> Vec<(u64, u64, u8)> {
        m.segments(Range::WHOLE)
            .map(|(r, v)| (r.start, r.end, v))
            .collect()
    }

    #[test]
    fn assign_splits_and_merges() {
        let mut m = IntervalMap::new(10, 0u8);
        m.assign(Range::new(2, 5), 1);
        assert_eq!(segs(&m), vec![(0, 2, 0), (2, 5, 1), (5, 10, 0)]);
        m.assign(Range::new(5, 7), 1);
        assert_eq!(segs(&m), vec![(0, 2, 0), (2, 7, 1), (7, 10, 0)]);
        m.assign(Range::new(1, 8), 0);
        assert_eq!(segs(&m), vec![(0, 10, 0)]);
        m.assign(Range::new(8, 20), 3);
        assert_eq!(segs(&m), vec![(0, 8, 0), (8, 10, 3)]);
        m.assign(Range::WHOLE, 4);
        assert_eq!(segs(&m), vec![(0, 10, 4)]);
        assert_eq!(m.segment_count(), 1);
        assert_eq!(m.get(9), Some(4));
        assert_eq!(m.get(10), None);
    }

    #[test]
    fn update_and_clipped_segments() {
        let mut m = IntervalMap::new(10, 0u8);
        m.assign(Range::new(3, 6), 1);
        let mut seen = Vec::new();
        m.update(
            Range::new(4, 8),
            |v| v | 2,
            |r, old, new| seen.push((r, old, new)),
        );
        assert_eq!(
            seen,
            vec![(Range::new(4, 6), 1, 3), (Range::new(6, 8), 0, 2)]
        );
        assert_eq!(
            segs(&m),
            vec![(0, 3, 0), (3, 4, 1), (4, 6, 3), (6, 8, 2), (8, 10, 0)]
        );
        // An update that changes nothing leaves no extra split behind.
        m.update(Range::new(1, 2), |v| v, |_, _, _| {});
        assert_eq!(m.segment_count(), 5);
        let part: Vec<_> = m.segments(Range::new(5, 7)).collect();
        assert_eq!(part, vec![(Range::new(5, 6), 3), (Range::new(6, 7), 2)]);
        assert_eq!(m.segments(Range::new(7, 7)).count(), 0);
        assert_eq!(m.segments(Range::new(12, 20)).count(), 0);
        let empty = IntervalMap::new(0, 0u8);
        assert_eq!(empty.segments(Range::WHOLE).count(), 0);
    }
}
