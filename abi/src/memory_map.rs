//! The machine's memory as the firmware reports it: the RAM ranges and the reserved
//! ranges of the device tree it hands the loader (`atoll_boards::devicetree` reads them),
//! or, without a device tree, the board's RAM and nothing reserved. The layout rules
//! (`crate::placement`) check an image against it before the loader writes a byte outside
//! its own range.
//!
//! Fixed capacity, no allocation: the loader keeps one on its stack.

use crate::spec::PhysRange;

/// RAM ranges kept (after merging touching ones); a device tree with more is read up to
/// this many, lowest first.
pub const MAX_RAM_RANGES: usize = 8;
/// Reserved ranges kept; a device tree with more is refused (ignoring one could let the
/// loader overwrite firmware).
pub const MAX_RESERVED: usize = 32;
/// Bytes of a label.
pub const LABEL_LEN: usize = 32;
/// RAM ranges a refusal names; it counts the others.
pub const RAM_NAMED: usize = 2;

/// A device-tree node's name or path: printable ASCII, NUL padded, cut at [`LABEL_LEN`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Label([u8; LABEL_LEN]);

impl Label {
    /// A label of `text`, its bytes outside printable ASCII shown as `?`, cut to fit.
    pub fn new(text: &str) -> Self {
        Self::from_parts(&[text])
    }

    /// A label of the concatenation of `parts`, as [`Label::new`] makes one.
    pub fn from_parts(parts: &[&str]) -> Self {
        let mut bytes = [0u8; LABEL_LEN];
        let mut slots = bytes.iter_mut();
        for byte in parts.iter().flat_map(|p| p.bytes()) {
            let Some(slot) = slots.next() else { break };
            *slot = if byte.is_ascii_graphic() || byte == b' ' {
                byte
            } else {
                b'?'
            };
        }
        Self(bytes)
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        // Only printable ASCII is ever stored.
        self.0
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl core::fmt::Debug for Label {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl core::fmt::Display for Label {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Label {
    /// No text.
    pub const EMPTY: Self = Self([0; LABEL_LEN]);
}

/// A range the firmware keeps for itself (or for another agent): nothing of an image may
/// lie in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The range.
    pub range: PhysRange,
    /// The `/reserved-memory` child that reserves it, by name; [`Label::EMPTY`] for an
    /// entry of the device tree's memory-reservation block.
    pub node: Label,
}

impl Reserved {
    /// Where the firmware says so, to print: `/reserved-memory/<node>` or `/memreserve/`.
    pub fn source(&self) -> ReservedBy<'_> {
        ReservedBy(self)
    }
}

/// Prints where a reservation comes from: `/reserved-memory/<node>` or `/memreserve/`.
#[derive(Clone, Copy, Debug)]
pub struct ReservedBy<'a>(&'a Reserved);

impl core::fmt::Display for ReservedBy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0.node.as_str() {
            "" => f.write_str("/memreserve/"),
            node => write!(f, "/reserved-memory/{node}"),
        }
    }
}

/// The map is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// RAM ranges, ascending, none touching another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RamList {
    ranges: [PhysRange; MAX_RAM_RANGES],
    count: usize,
}

impl RamList {
    fn ranges(&self) -> &[PhysRange] {
        self.ranges.get(..self.count).unwrap_or(&[])
    }
}

/// The first [`RAM_NAMED`] RAM ranges and how many there are, as a refusal prints them:
/// `0x0-0x80000000, 0x800000000-0x880000000 and 1 more`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamNamed {
    ranges: [PhysRange; RAM_NAMED],
    count: usize,
}

impl core::fmt::Display for RamNamed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.count == 0 {
            return f.write_str("no RAM");
        }
        let named = self.ranges.iter().take(self.count);
        for (i, range) in named.enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{}", Span(*range))?;
        }
        if self.count > RAM_NAMED {
            write!(f, " and {} more", self.count.saturating_sub(RAM_NAMED))?;
        }
        Ok(())
    }
}

/// RAM and reserved ranges, as the firmware reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    ram: RamList,
    reserved: [Reserved; MAX_RESERVED],
    reserved_count: usize,
}

const NO_RANGE: PhysRange = PhysRange { base: 0, size: 0 };
const NO_RESERVED: Reserved = Reserved {
    range: NO_RANGE,
    node: Label::EMPTY,
};

impl MemoryMap {
    /// No RAM, nothing reserved.
    pub const EMPTY: Self = Self {
        ram: RamList {
            ranges: [NO_RANGE; MAX_RAM_RANGES],
            count: 0,
        },
        reserved: [NO_RESERVED; MAX_RESERVED],
        reserved_count: 0,
    };

    /// `ram` and nothing reserved: what a board describes.
    pub const fn of_ram(ram: PhysRange) -> Self {
        let mut map = Self::EMPTY;
        map.ram.ranges[0] = ram;
        map.ram.count = if ram.size == 0 { 0 } else { 1 };
        map
    }

    /// The RAM ranges, ascending, none touching another.
    pub fn ram(&self) -> &[PhysRange] {
        self.ram.ranges()
    }

    /// The RAM ranges, to print in a refusal.
    pub fn ram_named(&self) -> RamNamed {
        let mut ranges = [NO_RANGE; RAM_NAMED];
        for (slot, range) in ranges.iter_mut().zip(self.ram()) {
            *slot = *range;
        }
        RamNamed {
            ranges,
            count: self.ram.count,
        }
    }

    /// The reserved ranges, in the order they were added.
    pub fn reserved(&self) -> &[Reserved] {
        self.reserved.get(..self.reserved_count).unwrap_or(&[])
    }

    /// Adds a RAM range, merging it with any it overlaps or touches. An empty range changes
    /// nothing; one whose end would pass 2^64 is cut there. [`Full`] when it touches none
    /// and [`MAX_RAM_RANGES`] are already kept (the map is unchanged).
    pub fn add_ram(&mut self, range: PhysRange) -> Result<(), Full> {
        if range.size == 0 {
            return Ok(());
        }
        let (mut base, mut end) = (range.base, range.end());
        // Take out every range this one overlaps or touches, widening it to cover them.
        let mut kept = [NO_RANGE; MAX_RAM_RANGES];
        let mut count = 0;
        for r in self.ram() {
            if r.base <= end && base <= r.end() {
                base = base.min(r.base);
                end = end.max(r.end());
            } else if let Some(slot) = kept.get_mut(count) {
                *slot = *r;
                count = count.saturating_add(1);
            }
        }
        let merged = PhysRange {
            base,
            size: end.saturating_sub(base),
        };
        let Some(slot) = kept.get_mut(count) else {
            return Err(Full);
        };
        *slot = merged;
        count = count.saturating_add(1);
        let sorted = kept.get_mut(..count).ok_or(Full)?;
        sorted.sort_unstable_by_key(|r| r.base);
        self.ram = RamList {
            ranges: kept,
            count,
        };
        Ok(())
    }

    /// Adds a reserved range (an empty one changes nothing).
    pub fn add_reserved(&mut self, reserved: Reserved) -> Result<(), Full> {
        if reserved.range.size == 0 {
            return Ok(());
        }
        let slot = self.reserved.get_mut(self.reserved_count).ok_or(Full)?;
        *slot = reserved;
        self.reserved_count = self.reserved_count.saturating_add(1);
        Ok(())
    }

    /// Whether `range` lies inside one RAM range.
    pub fn is_ram(&self, range: &PhysRange) -> bool {
        self.ram().iter().any(|r| r.contains(range))
    }

    /// The first reserved range `range` overlaps.
    pub fn reservation_over(&self, range: &PhysRange) -> Option<&Reserved> {
        self.reserved().iter().find(|r| r.range.overlaps(range))
    }
}

/// `base-end` (end exclusive), as refusals print a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub PhysRange);

impl core::fmt::Display for Span {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}-{:#x}", self.0.base, self.0.end())
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    reason = "host tests"
)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange { base, size }
    }

    #[test]
    fn touching_and_overlapping_ram_ranges_merge_and_stay_sorted() {
        let mut map = MemoryMap::EMPTY;
        map.add_ram(r(0x8_0000_0000, 0x8000_0000)).unwrap();
        map.add_ram(r(0x4000_0000, 0x1000_0000)).unwrap();
        map.add_ram(r(0x5000_0000, 0x1000_0000)).unwrap();
        assert_eq!(
            map.ram(),
            &[r(0x4000_0000, 0x2000_0000), r(0x8_0000_0000, 0x8000_0000)]
        );
        // One range bridging two others makes them one.
        map.add_ram(r(0x5800_0000, 0x8_0000_0000)).unwrap();
        assert_eq!(map.ram(), &[r(0x4000_0000, 0x8_4000_0000)]);
        assert!(map.is_ram(&r(0x4000_0000, 0x1000)));
        assert!(!map.is_ram(&r(0x3fff_f000, 0x2000)));
        // Empty ranges change nothing; a range past 2^64 is cut there.
        map.add_ram(r(0, 0)).unwrap();
        assert_eq!(map.ram().len(), 1);
        map.add_ram(r(u64::MAX - 0xfff, 0x2000)).unwrap();
        assert_eq!(map.ram()[1].end(), u64::MAX);
    }

    #[test]
    fn a_full_map_refuses_a_new_range_and_stays_as_it_was() {
        let mut map = MemoryMap::EMPTY;
        for i in 0..MAX_RAM_RANGES as u64 {
            map.add_ram(r(i * 0x10_0000, 0x1000)).unwrap();
        }
        let before = map;
        assert_eq!(map.add_ram(r(0x1000_0000, 0x1000)), Err(Full));
        assert_eq!(map, before);
        // A range that merges with a kept one still fits.
        map.add_ram(r(0x1000, 0x1000)).unwrap();
        assert_eq!(map.ram()[0], r(0, 0x2000));
        let reserved = Reserved {
            range: r(0, 0x1000),
            node: Label::EMPTY,
        };
        for _ in 0..MAX_RESERVED {
            map.add_reserved(reserved).unwrap();
        }
        assert_eq!(map.add_reserved(reserved), Err(Full));
        assert_eq!(map.reservation_over(&r(0xfff, 1)), Some(&reserved));
        assert_eq!(map.reservation_over(&r(0x1000, 1)), None);
    }

    #[test]
    fn labels_keep_printable_ascii_and_fit() {
        assert_eq!(
            Label::from_parts(&["/memory", "@", "0"]).as_str(),
            "/memory@0"
        );
        assert_eq!(Label::new("a\nb\u{e9}").as_str(), "a?b??");
        let long = "x".repeat(100);
        assert_eq!(Label::new(&long).as_str().len(), LABEL_LEN);
        assert_eq!(
            Span(r(0x4000_0000, 0x4000_0000)).to_string(),
            "0x40000000-0x80000000"
        );
        let mut map = MemoryMap::of_ram(r(0, 0x8000_0000));
        map.add_ram(r(0x8_0000_0000, 0x8000_0000)).unwrap();
        assert_eq!(
            map.ram_named().to_string(),
            "0x0-0x80000000, 0x800000000-0x880000000"
        );
        map.add_ram(r(0x10_0000_0000, 0x1000)).unwrap();
        map.add_ram(r(0x20_0000_0000, 0x1000)).unwrap();
        assert_eq!(
            map.ram_named().to_string(),
            "0x0-0x80000000, 0x800000000-0x880000000 and 2 more"
        );
        assert_eq!(MemoryMap::EMPTY.ram_named().to_string(), "no RAM");
        let reserved = |node| Reserved {
            range: r(0, 1),
            node,
        };
        assert_eq!(
            reserved(Label::new("optee@56000000")).source().to_string(),
            "/reserved-memory/optee@56000000"
        );
        assert_eq!(reserved(Label::EMPTY).source().to_string(), "/memreserve/");
    }
}
