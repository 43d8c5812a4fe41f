//! Members and sites: who can hold a copy of a resource.
//!
//! A *member* is one driver behind the fused device, numbered `0..MAX_MEMBERS` as the ICD
//! numbers them. A *site* is a member or the host: the host is a pseudo-member, site
//! [`Site::HOST`], because a host-visible allocation can have a copy that only the CPU sees
//! (a shadow, or a member's allocation that the application maps). [`Members`] is a set of
//! members (one bit each in a `u8`); [`Sites`] is a set of sites (members in bits 0–7, the host
//! in bit 8 of a `u16`).

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not, Sub, SubAssign};

/// The most members a fused device has; the ICD's `MAX_MEMBERS` is the same.
pub const MAX_MEMBERS: usize = 8;

/// A set of members, bit `i` standing for member `i`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Members(pub u8);

impl Members {
    /// No member.
    pub const EMPTY: Members = Members(0);

    /// Members `0..n` (all eight when `n >= MAX_MEMBERS`).
    pub const fn first_n(n: usize) -> Members {
        if n >= MAX_MEMBERS {
            Members(u8::MAX)
        } else {
            Members(((1u16 << n) - 1) as u8)
        }
    }

    /// The set holding only member `m`; empty when `m >= MAX_MEMBERS`.
    pub const fn single(m: usize) -> Members {
        if m < MAX_MEMBERS {
            Members(1 << m)
        } else {
            Members(0)
        }
    }

    /// The members whose bits are set in `mask` (bits from `MAX_MEMBERS` up are ignored), as
    /// `VKFUSE_MASK` gives them.
    pub const fn from_mask(mask: u64) -> Members {
        Members((mask & 0xff) as u8)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, m: usize) -> bool {
        m < MAX_MEMBERS && self.0 & (1 << m) != 0
    }

    /// This set with member `m` added (unchanged when `m >= MAX_MEMBERS`).
    #[must_use]
    pub const fn with(self, m: usize) -> Members {
        Members(self.0 | Members::single(m).0)
    }

    /// This set with member `m` removed.
    #[must_use]
    pub const fn without(self, m: usize) -> Members {
        Members(self.0 & !Members::single(m).0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The lowest member in the set.
    pub fn first(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    pub const fn is_subset(self, other: Members) -> bool {
        self.0 & !other.0 == 0
    }

    pub const fn intersects(self, other: Members) -> bool {
        self.0 & other.0 != 0
    }

    /// The members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_MEMBERS).filter(move |m| self.contains(*m))
    }
}

impl FromIterator<usize> for Members {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Members {
        iter.into_iter().fold(Members::EMPTY, Members::with)
    }
}

/// A site: one member, or the host.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site(u8);

impl Site {
    /// The host (CPU memory that no member sees unless it shares it).
    pub const HOST: Site = Site(MAX_MEMBERS as u8);

    /// Member `m`, or `None` when `m >= MAX_MEMBERS`.
    pub const fn member(m: usize) -> Option<Site> {
        if m < MAX_MEMBERS {
            Some(Site(m as u8))
        } else {
            None
        }
    }

    /// The member index, `None` for the host.
    pub const fn as_member(self) -> Option<usize> {
        if self.is_host() {
            None
        } else {
            Some(self.0 as usize)
        }
    }

    pub const fn is_host(self) -> bool {
        self.0 as usize == MAX_MEMBERS
    }

    /// Index in `0..=MAX_MEMBERS`, the host last: usable for tables and tie-breaks.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_member() {
            Some(m) => write!(f, "member {m}"),
            None => f.write_str("host"),
        }
    }
}

/// A set of sites: members in bits 0–7, the host in bit 8.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sites(u16);

impl Sites {
    pub const EMPTY: Sites = Sites(0);
    pub const HOST: Sites = Sites(1 << MAX_MEMBERS);

    /// Members `0..n` and the host.
    pub const fn all(n: usize) -> Sites {
        Sites(Members::first_n(n).0 as u16 | Sites::HOST.0)
    }

    pub const fn single(s: Site) -> Sites {
        Sites(1 << s.0)
    }

    pub const fn from_members(m: Members) -> Sites {
        Sites(m.0 as u16)
    }

    /// The members in the set (without the host).
    pub const fn members(self) -> Members {
        Members((self.0 & 0xff) as u8)
    }

    pub const fn has_host(self) -> bool {
        self.0 & Sites::HOST.0 != 0
    }

    pub const fn contains(self, s: Site) -> bool {
        self.0 & (1 << s.0) != 0
    }

    #[must_use]
    pub const fn with(self, s: Site) -> Sites {
        Sites(self.0 | 1 << s.0)
    }

    #[must_use]
    pub const fn without(self, s: Site) -> Sites {
        Sites(self.0 & !(1 << s.0))
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub const fn intersects(self, other: Sites) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_subset(self, other: Sites) -> bool {
        self.0 & !other.0 == 0
    }

    /// The lowest site (members before the host).
    pub fn first(self) -> Option<Site> {
        (self.0 != 0).then(|| Site(self.0.trailing_zeros() as u8))
    }

    /// The sites in increasing order, the host last.
    pub fn iter(self) -> impl Iterator<Item = Site> {
        (0..=MAX_MEMBERS as u8)
            .map(Site)
            .filter(move |s| self.contains(*s))
    }
}

impl From<Site> for Sites {
    fn from(s: Site) -> Sites {
        Sites::single(s)
    }
}

impl From<Members> for Sites {
    fn from(m: Members) -> Sites {
        Sites::from_members(m)
    }
}

impl FromIterator<Site> for Sites {
    fn from_iter<I: IntoIterator<Item = Site>>(iter: I) -> Sites {
        iter.into_iter().fold(Sites::EMPTY, Sites::with)
    }
}

macro_rules! set_ops {
    ($t:ident, $mask:expr) => {
        impl BitOr for $t {
            type Output = $t;
            fn bitor(self, o: $t) -> $t {
                $t(self.0 | o.0)
            }
        }
        impl BitAnd for $t {
            type Output = $t;
            fn bitand(self, o: $t) -> $t {
                $t(self.0 & o.0)
            }
        }
        /// Set difference.
        impl Sub for $t {
            type Output = $t;
            fn sub(self, o: $t) -> $t {
                $t(self.0 & !o.0)
            }
        }
        /// Complement within the representable members (and host, for sites).
        impl Not for $t {
            type Output = $t;
            fn not(self) -> $t {
                $t(!self.0 & $mask)
            }
        }
        impl BitOrAssign for $t {
            fn bitor_assign(&mut self, o: $t) {
                self.0 |= o.0;
            }
        }
        impl BitAndAssign for $t {
            fn bitand_assign(&mut self, o: $t) {
                self.0 &= o.0;
            }
        }
        impl SubAssign for $t {
            fn sub_assign(&mut self, o: $t) {
                self.0 &= !o.0;
            }
        }
    };
}

set_ops!(Members, u8::MAX);
set_ops!(Sites, 0x1ff);

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `{0,2}`; `{}` when empty.
impl fmt::Display for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `{0,2,host}`; `{}` when empty.
impl fmt::Display for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match s.as_member() {
                Some(m) => write!(f, "{m}")?,
                None => f.write_str("host")?,
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_sets() {
        let a: Members = [0, 2, 7].into_iter().collect();
        assert_eq!(a.bits(), 0b1000_0101);
        assert!(a.contains(2) && !a.contains(1) && !a.contains(8));
        assert_eq!(a.len(), 3);
        assert_eq!(a.first(), Some(0));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 2, 7]);
        assert_eq!(a.without(0).first(), Some(2));
        assert_eq!(a.with(9), a);
        assert_eq!(Members::single(8), Members::EMPTY);
        assert_eq!(Members::first_n(3), Members(0b111));
        assert_eq!(Members::first_n(8), Members(0xff));
        assert_eq!(Members::first_n(20), Members(0xff));
        assert_eq!(Members::from_mask(0x1_05), Members(0b101));
        let b = Members(0b110);
        assert_eq!(a | b, Members(0b1000_0111));
        assert_eq!(a & b, Members(0b100));
        assert_eq!(a - b, Members(0b1000_0001));
        assert_eq!(!Members(0b1), Members(0xfe));
        assert!(Members(0b100).is_subset(a) && !b.is_subset(a));
        assert_eq!(format!("{a}"), "{0,2,7}");
        assert_eq!(format!("{}", Members::EMPTY), "{}");
    }

    #[test]
    fn sites_and_host() {
        assert_eq!(Site::member(8), None);
        let m1 = Site::member(1).unwrap();
        assert_eq!(m1.as_member(), Some(1));
        assert_eq!(Site::HOST.as_member(), None);
        assert!(Site::HOST.is_host() && !m1.is_host());
        let s = Sites::single(m1).with(Site::HOST);
        assert!(s.has_host() && s.contains(m1));
        assert_eq!(s.members(), Members(0b10));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![m1, Site::HOST]);
        assert_eq!(s.first(), Some(m1));
        assert_eq!(Sites::all(2).len(), 3);
        assert_eq!(!Sites::EMPTY, Sites::all(8));
        assert_eq!(format!("{s}"), "{1,host}");
        assert_eq!(format!("{m1} {}", Site::HOST), "member 1 host");
        assert_eq!(Sites::from(Members(0b11)) - Sites::single(m1), Sites(1));
    }
}
