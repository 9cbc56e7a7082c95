//! The capability table's tests, and a property against a model of the derivation tree.

extern crate std;
use std::collections::BTreeSet;
use std::vec::Vec;

use super::*;
use crate::id::TableIndex;
use proptest::prelude::*;

const SLOTS: usize = 128;
const ROOTS: usize = 32;
/// The CNode runs get the 64 slots past the roots; the rest are TCB slots.
const TCB_BASE: usize = 96;
const UNTYPED_BASE: u64 = 0x4000_0000;

crate::id::table_id!(
    /// A slot of the small test table.
    TestSlot,
    SLOTS
);

type Table = CapTable<TestSlot, SLOTS, TCB_BASE>;

fn s(i: usize) -> TestSlot {
    TestSlot::new(i).unwrap()
}

fn table() -> Table {
    let mut t = Table::new(ROOTS);
    t.insert_original(
        s(0),
        Cap::Untyped {
            base: UNTYPED_BASE,
            size_bits: 16,
            watermark: 0,
            device: false,
            read_only: false,
        },
    )
    .unwrap();
    t
}

/// Frames made from read-only untyped memory (the kernels' status page) carry read rights
/// alone, and so do the frames of a smaller untyped block made from it.
#[test]
fn frames_of_read_only_memory_can_only_be_read() {
    let mut t = Table::new(ROOTS);
    t.insert_original(
        s(0),
        Cap::Untyped {
            base: UNTYPED_BASE,
            size_bits: 13,
            watermark: 0,
            device: true,
            read_only: true,
        },
    )
    .unwrap();
    let frame = RetypeKind::Frame {
        kind: ObjectKind::Frame,
        size_bits: 12,
    };
    t.retype(s(0), frame, 1, s(1)).unwrap();
    t.retype(s(0), RetypeKind::Untyped { size_bits: 12 }, 1, s(2))
        .unwrap();
    t.retype(s(2), frame, 1, s(3)).unwrap();
    for slot in [s(1), s(3)] {
        assert!(
            matches!(t.get(slot), Cap::Object { rights, .. } if rights == Rights::READ),
            "{:?}",
            t.get(slot)
        );
    }
    // Ordinary memory gives frames every right.
    let mut t = table();
    t.retype(s(0), frame, 1, s(1)).unwrap();
    assert!(matches!(t.get(s(1)), Cap::Object { rights, .. } if rights == Rights::ALL));
}

fn endpoint(t: &mut Table, dest: TestSlot) {
    t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, dest)
        .unwrap();
}

#[test]
fn retype_places_objects_aligned_and_refuses_overflow() {
    let mut t = table();
    t.retype(s(0), RetypeKind::Object(ObjectKind::Tcb), 2, s(1))
        .unwrap();
    t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, s(3))
        .unwrap();
    assert_eq!(t.get(s(1)).range(), Some((UNTYPED_BASE, 0x800)));
    assert_eq!(t.get(s(2)).range(), Some((UNTYPED_BASE + 0x800, 0x800)));
    assert_eq!(t.get(s(3)).range(), Some((UNTYPED_BASE + 0x1000, 0x10)));
    assert_eq!(
        t.retype(s(0), RetypeKind::Untyped { size_bits: 16 }, 1, s(4)),
        Err(Error::NotEnoughMemory)
    );
    assert_eq!(
        t.retype(s(0), RetypeKind::Object(ObjectKind::Endpoint), 1, s(3)),
        Err(Error::DeleteFirst)
    );
    assert_eq!(
        t.retype(s(1), RetypeKind::Object(ObjectKind::Endpoint), 1, s(5)),
        Err(Error::InvalidCapability)
    );
    assert_eq!(
        t.retype(s(9), RetypeKind::Object(ObjectKind::Endpoint), 1, s(5)),
        Err(Error::FailedLookup)
    );
    assert_eq!(
        t.retype(
            s(0),
            RetypeKind::Frame {
                kind: ObjectKind::Frame,
                size_bits: 13
            },
            1,
            s(5)
        ),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        t.retype(
            s(0),
            RetypeKind::Object(ObjectKind::Endpoint),
            2,
            s(SLOTS - 1)
        ),
        Err(Error::RangeError),
        "the second object would fall past the table's end"
    );
}

#[test]
fn mint_badges_once_and_only_ipc_objects() {
    let mut t = table();
    endpoint(&mut t, s(1));
    t.mint(s(1), s(2), Rights::WRITE, 0x42).unwrap();
    assert!(
        matches!(t.get(s(2)), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE)
    );
    assert_eq!(
        t.mint(s(2), s(3), Rights::ALL, 7),
        Err(Error::IllegalOperation),
        "badge already set"
    );
    t.copy(s(2), s(3), Rights::ALL).unwrap();
    assert!(
        matches!(t.get(s(3)), Cap::Object { badge: 0x42, rights, .. } if rights == Rights::WRITE),
        "copies never widen rights"
    );
    t.retype(s(0), RetypeKind::Object(ObjectKind::Tcb), 1, s(4))
        .unwrap();
    assert_eq!(
        t.mint(s(4), s(5), Rights::ALL, 1),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        t.copy(s(0), s(6), Rights::ALL),
        Err(Error::IllegalOperation),
        "untyped is never copied"
    );
}

#[test]
fn revoke_removes_every_descendant_and_frees_untyped() {
    let mut t = table();
    endpoint(&mut t, s(1));
    t.copy(s(1), s(2), Rights::ALL).unwrap();
    t.mint(s(2), s(3), Rights::WRITE, 9).unwrap();
    t.copy(s(3), s(4), Rights::WRITE).unwrap();
    t.revoke(s(1)).unwrap();
    assert!(!t.get(s(1)).is_null());
    for i in 2..=4 {
        assert!(t.get(s(i)).is_null(), "slot {i} survived revoke");
    }
    t.revoke(s(0)).unwrap();
    assert!(t.get(s(1)).is_null());
    assert!(matches!(t.get(s(0)), Cap::Untyped { watermark: 0, .. }));
}

#[test]
fn delete_keeps_descendants_under_the_grandparent() {
    let mut t = table();
    endpoint(&mut t, s(1));
    t.copy(s(1), s(2), Rights::ALL).unwrap();
    t.copy(s(2), s(3), Rights::ALL).unwrap();
    t.delete(s(2));
    assert_eq!(t.parent(s(3)), Some(s(1)));
    t.revoke(s(1)).unwrap();
    assert!(t.get(s(3)).is_null());
}

#[test]
fn move_keeps_the_tree() {
    let mut t = table();
    endpoint(&mut t, s(1));
    t.copy(s(1), s(2), Rights::ALL).unwrap();
    t.move_cap(s(1), s(5)).unwrap();
    assert!(t.get(s(1)).is_null());
    assert_eq!(t.parent(s(2)), Some(s(5)));
    assert_eq!(t.parent(s(5)), Some(s(0)));
    t.move_cap(s(0), s(6)).unwrap();
    assert_eq!(t.parent(s(5)), Some(s(6)));
    assert_eq!(t.move_cap(s(1), s(7)), Err(Error::FailedLookup));
    assert_eq!(t.move_cap(s(5), s(2)), Err(Error::DeleteFirst));
}

#[test]
fn guarded_lookup_through_two_levels() {
    let mut t = table();
    t.retype(s(0), RetypeKind::CNode { radix: 4 }, 1, s(1))
        .unwrap();
    t.retype(s(0), RetypeKind::CNode { radix: 3 }, 1, s(2))
        .unwrap();
    let Cap::CNode { first: top, .. } = t.get(s(1)) else {
        panic!("CNode")
    };
    let Cap::CNode { first: leaf, .. } = t.get(s(2)) else {
        panic!("CNode")
    };
    // Top level: guard 0b10 (2 bits) then 4 index bits; second level: 3 index bits.
    t.set_guard(s(1), 0b10, 2).unwrap();
    t.move_cap(s(2), s(top as usize + 5)).unwrap();
    endpoint(&mut t, s(3));
    t.move_cap(s(3), s(leaf as usize + 6)).unwrap();
    let cptr = (0b10 << 7) | (5 << 3) | 6;
    assert_eq!(t.lookup(s(1), cptr, 9), Ok(s(leaf as usize + 6)));
    assert_eq!(
        t.lookup(s(1), cptr >> 3, 6),
        Ok(s(top as usize + 5)),
        "stops at the depth asked"
    );
    assert_eq!(
        t.lookup(s(1), (0b11 << 7) | (5 << 3) | 6, 9),
        Err(LookupFault::GuardMismatch { bits_left: 9 })
    );
    assert_eq!(
        t.lookup(s(1), cptr, 4),
        Err(LookupFault::DepthMismatch { bits_left: 4 })
    );
    assert_eq!(t.lookup(s(3), cptr, 9), Err(LookupFault::InvalidRoot));
}

#[test]
fn deleting_the_last_cnode_capability_deletes_its_contents() {
    let mut t = table();
    t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(1))
        .unwrap();
    let Cap::CNode { first, .. } = t.get(s(1)) else {
        panic!("CNode")
    };
    endpoint(&mut t, s(2));
    t.move_cap(s(2), s(first as usize + 1)).unwrap();
    t.copy(s(1), s(3), Rights::ALL).unwrap();
    t.delete(s(1));
    assert!(
        !t.get(s(first as usize + 1)).is_null(),
        "a copy still names the CNode"
    );
    t.delete(s(3));
    assert!(
        t.get(s(first as usize + 1)).is_null(),
        "contents outlived their CNode"
    );
}

#[test]
fn cnode_runs_go_above_the_last_one_and_freed_runs_are_reused_once_the_top_is_reached() {
    let mut t = table();
    let first = |t: &Table, slot: usize| match t.get(s(slot)) {
        Cap::CNode { first, .. } => first as usize,
        other => panic!("slot {slot} holds {other:?}, not a CNode"),
    };
    // Four runs of 16 fill the 64 slots past the roots, in order.
    for slot in 1..=4 {
        t.retype(s(0), RetypeKind::CNode { radix: 4 }, 1, s(slot))
            .unwrap();
        assert_eq!(first(&t, slot), ROOTS + (slot - 1) * 16);
    }
    assert_eq!(
        t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(5)),
        Err(Error::NotEnoughMemory)
    );
    // The second run's slots come back and are handed out again.
    t.delete(s(2));
    t.retype(s(0), RetypeKind::CNode { radix: 2 }, 1, s(5))
        .unwrap();
    assert_eq!(first(&t, 5), ROOTS + 16);
    t.retype(s(0), RetypeKind::CNode { radix: 3 }, 1, s(6))
        .unwrap();
    assert_eq!(
        first(&t, 6),
        ROOTS + 20,
        "the first free slots, right after run 5"
    );
}

/// Operations the state machine draws from.
#[derive(Clone, Debug)]
enum Op {
    Retype {
        untyped: usize,
        kind: u8,
        count: usize,
        dest: usize,
    },
    Copy {
        src: usize,
        dest: usize,
        rights: u8,
    },
    Mint {
        src: usize,
        dest: usize,
        rights: u8,
        badge: u64,
    },
    Mutate {
        src: usize,
        dest: usize,
        badge: Option<u64>,
    },
    Move {
        src: usize,
        dest: usize,
    },
    Delete {
        slot: usize,
    },
    Revoke {
        slot: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS + 2; // a little past the end, to test range checks
    prop_oneof![
        3 => (slot.clone(), 0u8..8, 1usize..4, slot.clone()).prop_map(|(untyped, kind, count, dest)| Op::Retype { untyped, kind, count, dest }),
        2 => (slot.clone(), slot.clone(), 0u8..16).prop_map(|(src, dest, rights)| Op::Copy { src, dest, rights }),
        2 => (slot.clone(), slot.clone(), 0u8..16, 0u64..4).prop_map(|(src, dest, rights, badge)| Op::Mint { src, dest, rights, badge }),
        1 => (slot.clone(), slot.clone(), proptest::option::of(0u64..4)).prop_map(|(src, dest, badge)| Op::Mutate { src, dest, badge }),
        2 => (slot.clone(), slot.clone()).prop_map(|(src, dest)| Op::Move { src, dest }),
        2 => slot.clone().prop_map(|slot| Op::Delete { slot }),
        1 => slot.prop_map(|slot| Op::Revoke { slot }),
    ]
}

fn retype_kind(kind: u8) -> RetypeKind {
    match kind {
        0 => RetypeKind::Untyped { size_bits: 12 },
        1 => RetypeKind::CNode { radix: 2 },
        2 => RetypeKind::Object(ObjectKind::Endpoint),
        3 => RetypeKind::Object(ObjectKind::Notification),
        4 => RetypeKind::Object(ObjectKind::Tcb),
        5 => RetypeKind::Frame {
            kind: ObjectKind::Frame,
            size_bits: 12,
        },
        6 => RetypeKind::Untyped { size_bits: 10 },
        _ => RetypeKind::Object(ObjectKind::Reply),
    }
}

/// The reference model: what each slot holds and its parent, as plain vectors; the
/// tree is recomputed by scanning rather than linked.
#[derive(Clone)]
struct Model {
    caps: Vec<Cap>,
    parent: Vec<Option<usize>>,
}

impl Model {
    fn new(t: &Table) -> Self {
        Self {
            caps: (0..SLOTS).map(|i| t.get(s(i))).collect(),
            parent: std::vec![None; SLOTS],
        }
    }

    fn descendants(&self, slot: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut frontier = std::vec![slot];
        while let Some(s) = frontier.pop() {
            for (c, p) in self.parent.iter().enumerate() {
                if *p == Some(s) {
                    out.push(c);
                    frontier.push(c);
                }
            }
        }
        out
    }

    fn others_name(&self, slot: usize) -> bool {
        let object = self.caps[slot].object();
        object.is_some()
            && self
                .caps
                .iter()
                .enumerate()
                .any(|(i, c)| i != slot && c.object() == object)
    }

    fn remove(&mut self, slot: usize) {
        let mut work = std::vec![slot];
        while let Some(slot) = work.pop() {
            if self.caps[slot].is_null() {
                continue;
            }
            let last = !self.others_name(slot);
            let grand = self.parent[slot];
            for p in self.parent.iter_mut() {
                if *p == Some(slot) {
                    *p = grand;
                }
            }
            let cap = core::mem::take(&mut self.caps[slot]);
            self.parent[slot] = None;
            if let (true, Cap::CNode { first, radix, .. }) = (last, cap) {
                work.extend(
                    (first as usize..first as usize + (1 << radix))
                        .filter(|&s| !self.caps[s].is_null()),
                );
            }
        }
    }

    /// Applies an operation the table accepted, with the model's own rules for the tree.
    fn apply(&mut self, op: &Op, t: &Table) {
        match *op {
            Op::Retype {
                untyped,
                count,
                dest,
                ..
            } => {
                for d in dest..dest + count {
                    self.caps[d] = t.get(s(d)); // placement is checked by the invariants
                    self.parent[d] = Some(untyped);
                }
                self.caps[untyped] = t.get(s(untyped));
            }
            Op::Copy { src, dest, .. } | Op::Mint { src, dest, .. } => {
                self.caps[dest] = t.get(s(dest));
                self.parent[dest] = Some(src);
            }
            Op::Mutate { src, dest, .. } | Op::Move { src, dest } => {
                for p in self.parent.iter_mut() {
                    if *p == Some(src) {
                        *p = Some(dest);
                    }
                }
                self.parent[dest] = self.parent[src].take();
                self.caps[dest] = t.get(s(dest));
                self.caps[src] = Cap::Null;
            }
            Op::Delete { slot } => self.remove(slot),
            Op::Revoke { slot } => {
                // Deepest first, as a deletion of descendants in any order.
                let mut doomed = self.descendants(slot);
                doomed.reverse();
                for d in doomed {
                    if !self.caps[d].is_null() {
                        self.remove(d);
                    }
                }
                if let Cap::Untyped { watermark, .. } = &mut self.caps[slot] {
                    *watermark = 0;
                }
            }
        }
    }
}

/// Runs an operation; a slot number past the table cannot be named (as the kernel's
/// lookups refuse it before the table sees it).
fn run(t: &mut Table, op: &Op) -> Result<(), Error> {
    let id = |i: usize| TestSlot::new(i).ok_or(Error::RangeError);
    match *op {
        Op::Retype {
            untyped,
            kind,
            count,
            dest,
        } => t.retype(id(untyped)?, retype_kind(kind), count, id(dest)?),
        Op::Copy { src, dest, rights } => t.copy(id(src)?, id(dest)?, Rights::from_bits(rights)),
        Op::Mint {
            src,
            dest,
            rights,
            badge,
        } => t.mint(id(src)?, id(dest)?, Rights::from_bits(rights), badge),
        Op::Mutate { src, dest, badge } => t.mutate(id(src)?, id(dest)?, Rights::ALL, badge),
        Op::Move { src, dest } => t.move_cap(id(src)?, id(dest)?),
        Op::Delete { slot } => {
            t.delete(id(slot)?);
            Ok(())
        }
        Op::Revoke { slot } => t.revoke(id(slot)?),
    }
}

/// The invariants, computed from the table alone.
fn invariants(t: &Table) -> Result<(), std::string::String> {
    let ancestors = |i: usize| {
        let mut at = s(i);
        let mut out = Vec::new();
        while let Some(p) = t.parent(at) {
            if out.contains(&p.index()) || out.len() > SLOTS {
                return None; // a cycle
            }
            out.push(p.index());
            at = p;
        }
        Some(out)
    };
    // The tree is well formed: parents and children agree, no cycles, empty slots are
    // outside the tree.
    for i in 0..SLOTS {
        let Some(up) = ancestors(i) else {
            return Err(std::format!("cycle above slot {i}"));
        };
        if t.get(s(i)).is_null() && (t.parent(s(i)).is_some() || t.children(s(i)).next().is_some())
        {
            return Err(std::format!("empty slot {i} is in the tree"));
        }
        if let Some(&p) = up.first()
            && !t.children(s(p)).any(|c| c == s(i))
        {
            return Err(std::format!("slot {i} is not among its parent's children"));
        }
        for c in t.children(s(i)) {
            if t.parent(c) != Some(s(i)) {
                return Err(std::format!("child {c:?} of {i} disagrees"));
            }
        }
    }
    // Memory is never handed out twice: distinct objects never overlap, and every object
    // inside a live untyped block is one of its descendants below its watermark.
    let mut objects: Vec<((u64, ObjectKind), (u64, u64))> = Vec::new();
    for i in 0..SLOTS {
        let cap = t.get(s(i));
        if let (Some(object), Some(range)) = (cap.object(), cap.range())
            && !objects.iter().any(|(o, _)| *o == object)
        {
            objects.push((object, range));
        }
    }
    for (i, (a, (ab, al))) in objects.iter().enumerate() {
        for (b, (bb, bl)) in &objects[i + 1..] {
            if ab < &(bb + bl) && bb < &(ab + al) {
                return Err(std::format!("objects {a:?} and {b:?} overlap"));
            }
        }
    }
    for u in 0..SLOTS {
        let Cap::Untyped {
            base,
            size_bits,
            watermark,
            ..
        } = t.get(s(u))
        else {
            continue;
        };
        let end = base + (1u64 << size_bits);
        for i in 0..SLOTS {
            let Some((ob, ol)) = t.get(s(i)).range() else {
                continue;
            };
            if i == u || !(ob < end && base < ob + ol) {
                continue;
            }
            let below = ancestors(i).is_some_and(|a| a.contains(&u));
            if !below {
                if matches!(t.get(s(i)), Cap::Untyped { .. }) && ob <= base && end <= ob + ol {
                    continue; // an enclosing untyped block: `u` lies inside it
                }
                return Err(std::format!(
                    "slot {i} overlaps untyped {u} without deriving from it"
                ));
            }
            if t.children(s(u)).next().is_some() && ob + ol > base + watermark {
                return Err(std::format!("slot {i} lies above untyped {u}'s watermark"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Thousands of random operation sequences: after every step the table agrees with
    /// the reference model and every invariant holds; a revoke leaves no descendant.
    #[test]
    fn capability_operations_keep_every_invariant(ops in proptest::collection::vec(op(), 1..60)) {
        let mut t = table();
        let mut model = Model::new(&t);
        for op in &ops {
            let before = model.clone();
            match run(&mut t, op) {
                Ok(()) => model.apply(op, &t),
                Err(_) => model = before,
            }
            if let Op::Revoke { slot } = *op
                && slot < SLOTS
            {
                prop_assert!(t.children(s(slot)).next().is_none(), "revoke left descendants");
            }
            for i in 0..SLOTS {
                prop_assert_eq!(t.get(s(i)), model.caps[i], "slot {} after {:?}", i, op);
                prop_assert_eq!(t.parent(s(i)).map(TestSlot::index), model.parent[i], "parent of {} after {:?}", i, op);
            }
            if let Err(broken) = invariants(&t) {
                prop_assert!(false, "{} after {:?}", broken, op);
            }
        }
        // Every object still named lies in memory the root untyped covers.
        let live: BTreeSet<u64> = (0..SLOTS).filter_map(|i| t.get(s(i)).range()).map(|r| r.0).collect();
        prop_assert!(live.iter().all(|&b| (UNTYPED_BASE..UNTYPED_BASE + 0x1_0000).contains(&b)));
    }
}
