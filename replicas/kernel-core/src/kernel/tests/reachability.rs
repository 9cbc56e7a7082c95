//! The property behind the capability model: after any sequence of operations, no object,
//! frame or page table is reachable from a thread, a TCB field, a kernel table or a
//! translation entry once its last capability is gone, and an object dies with its last
//! capability. Thousands of random operation sequences are run through the kernel's own
//! invocations; after every step the whole state is checked against the capability table.

use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::id::{EndpointId, Table, TableIndex, TcbSlot};
use crate::pagetable::desc;

/// Test objects live in root slots from here.
const FIRST: u64 = initial::FIRST_FREE;
/// Virtual addresses the mappings use: two share a level-3 table, one needs another, and
/// one lies past 512 GiB, behind the root's second entry.
const VAS: [u64; 4] = [0x1000_0000, 0x1000_1000, 0x1020_0000, 0x80_1000_0000];

/// The layout of the test slots: each kind has slots its objects are retyped into, so that
/// random operations meet objects of the kinds they take often; copies and moves go to
/// the slots past them (`COPIES`).
const UNTYPED: [u64; 2] = [0, 1];
const TCBS: [u64; 2] = [2, 3];
const FRAMES: [u64; 3] = [4, 5, 6];
const TABLES: [u64; 4] = [7, 8, 9, 15];
const VSPACES: [u64; 1] = [10];
const NOTIFICATIONS: [u64; 1] = [11];
const ENDPOINTS: [u64; 1] = [12];
const SCHED_CONTEXTS: [u64; 1] = [13];
const CNODES: [u64; 1] = [14];
/// Where copies and moves go.
const COPIES: std::ops::Range<u64> = 17..25;

/// What a retype into slot `i` makes: (kind number, size bits).
fn kind_of(i: u64) -> (u64, u64) {
    if UNTYPED.contains(&i) {
        return (object_kind::UNTYPED, 16);
    }
    let layout: [(&[u64], ObjectKind, u64); 8] = [
        (&TCBS, ObjectKind::Tcb, 0),
        (&FRAMES, ObjectKind::Frame, 12),
        (&TABLES, ObjectKind::PageTable, 0),
        (&VSPACES, ObjectKind::VSpace, 0),
        (&NOTIFICATIONS, ObjectKind::Notification, 0),
        (&ENDPOINTS, ObjectKind::Endpoint, 0),
        (&SCHED_CONTEXTS, ObjectKind::SchedContext, 0),
        (&CNODES, ObjectKind::CNode, 2),
    ];
    let (kind, bits) = layout
        .iter()
        .find(|(slots, ..)| slots.contains(&i))
        .map_or((ObjectKind::Reply, 0), |&(_, kind, bits)| (kind, bits));
    (object_kind::number(kind), bits)
}

/// Mostly a slot of one of `kinds`, sometimes any slot (a copy or a moved capability may be
/// anywhere).
fn one_of(kinds: &[u64]) -> impl Strategy<Value = u64> + use<> {
    prop_oneof![4 => prop::sample::select(kinds.to_vec()), 1 => 0..COPIES.end]
}

fn any_slot() -> impl Strategy<Value = u64> {
    0..COPIES.end
}

#[derive(Clone, Debug)]
enum Op {
    Retype {
        from: Option<u64>,
        dest: u64,
    },
    Copy {
        src: u64,
        dest: u64,
        rights: u64,
    },
    Mint {
        src: u64,
        dest: u64,
        rights: u64,
        badge: u64,
    },
    Move {
        src: u64,
        dest: u64,
    },
    Delete(u64),
    Revoke(u64),
    RevokePool,
    Configure {
        tcb: u64,
        args: [Option<u64>; 4],
    },
    SetSchedParams {
        tcb: u64,
        sc: u64,
    },
    Bind {
        tcb: u64,
        ntfn: u64,
    },
    Unbind(u64),
    ScConfigure(u64),
    ScBind {
        sc: u64,
        object: u64,
    },
    ScUnbind {
        sc: u64,
        object: u64,
    },
    TableMap {
        table: u64,
        vspace: u64,
        va: usize,
    },
    TableUnmap(u64),
    FrameMap {
        frame: u64,
        vspace: u64,
        va: usize,
        rights: u64,
    },
    FrameUnmap(u64),
    Resume(u64),
    Suspend(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let deletable = [&FRAMES[..], &TABLES].concat();
    let deletable = [&deletable[..], &VSPACES, &NOTIFICATIONS, &ENDPOINTS].concat();
    let bindable = [&TCBS[..], &NOTIFICATIONS].concat();
    prop_oneof![
        8 => (proptest::option::weighted(0.3, prop::sample::select(UNTYPED.to_vec())), 0..COPIES.start)
            .prop_map(|(from, dest)| Op::Retype { from, dest }),
        3 => (any_slot(), COPIES, 0u64..16).prop_map(|(src, dest, rights)| Op::Copy { src, dest, rights }),
        1 => (any_slot(), COPIES, 0u64..16, 0u64..4).prop_map(|(src, dest, rights, badge)| Op::Mint { src, dest, rights, badge }),
        1 => (any_slot(), any_slot()).prop_map(|(src, dest)| Op::Move { src, dest }),
        6 => one_of(&deletable).prop_map(Op::Delete),
        2 => any_slot().prop_map(Op::Revoke),
        1 => Just(Op::RevokePool),
        5 => (
            one_of(&TCBS),
            (
                proptest::option::of(one_of(&ENDPOINTS)),
                proptest::option::of(one_of(&CNODES)),
                proptest::option::of(one_of(&VSPACES)),
                proptest::option::of(one_of(&FRAMES)),
            ),
        )
            .prop_map(|(tcb, (a, b, c, d))| Op::Configure { tcb, args: [a, b, c, d] }),
        1 => (one_of(&TCBS), one_of(&SCHED_CONTEXTS)).prop_map(|(tcb, sc)| Op::SetSchedParams { tcb, sc }),
        2 => (one_of(&TCBS), one_of(&NOTIFICATIONS)).prop_map(|(tcb, ntfn)| Op::Bind { tcb, ntfn }),
        1 => one_of(&TCBS).prop_map(Op::Unbind),
        1 => one_of(&SCHED_CONTEXTS).prop_map(Op::ScConfigure),
        2 => (one_of(&SCHED_CONTEXTS), one_of(&bindable)).prop_map(|(sc, object)| Op::ScBind { sc, object }),
        3 => (one_of(&SCHED_CONTEXTS), one_of(&bindable)).prop_map(|(sc, object)| Op::ScUnbind { sc, object }),
        8 => (one_of(&TABLES), one_of(&VSPACES), 0..VAS.len()).prop_map(|(table, vspace, va)| Op::TableMap { table, vspace, va }),
        4 => one_of(&TABLES).prop_map(Op::TableUnmap),
        8 => (one_of(&FRAMES), one_of(&VSPACES), 0..VAS.len(), 0u64..16).prop_map(|(frame, vspace, va, rights)| Op::FrameMap { frame, vspace, va, rights }),
        2 => one_of(&FRAMES).prop_map(Op::FrameUnmap),
        1 => one_of(&TCBS).prop_map(Op::Resume),
        1 => one_of(&TCBS).prop_map(Op::Suspend),
    ]
}

/// Runs one operation through the root thread's invocations: whether it succeeded. Errors
/// are expected (most random operations are refused), never a panic.
fn run(s: &mut Sys, op: &Op) -> bool {
    let at = |i: u64| FIRST + i;
    // Invoking an empty slot is a capability fault that would stop the root thread (it has
    // no fault handler): only invoke what is there and can be invoked.
    let invoked = match *op {
        Op::Retype { from, .. } => from.map_or(initial::FIRST_UNTYPED, at),
        Op::Configure { tcb: i, .. }
        | Op::SetSchedParams { tcb: i, .. }
        | Op::Bind { tcb: i, .. }
        | Op::Unbind(i)
        | Op::ScBind { sc: i, .. }
        | Op::ScUnbind { sc: i, .. }
        | Op::TableMap { table: i, .. }
        | Op::TableUnmap(i)
        | Op::FrameMap { frame: i, .. }
        | Op::FrameUnmap(i)
        | Op::Resume(i)
        | Op::Suspend(i) => at(i),
        _ => initial::CNODE,
    };
    // A call on an endpoint or notification is IPC, not an invocation: it could block the
    // root for good.
    match s.k.cap(slot(invoked)) {
        Cap::Null => return false,
        Cap::Object {
            kind: ObjectKind::Endpoint | ObjectKind::Notification,
            ..
        } => return false,
        _ => {}
    }
    let result = match *op {
        Op::Retype { from, dest } => {
            let (kind, bits) = kind_of(dest);
            let untyped = from.map_or(initial::FIRST_UNTYPED, at);
            s.invoke(
                untyped,
                label::UNTYPED_RETYPE,
                &retype_args(kind, bits, at(dest)),
            )
        }
        Op::Copy { src, dest, rights } => s.invoke(
            initial::CNODE,
            label::CNODE_COPY,
            &[at(dest), 64, initial::CNODE, at(src), 64, rights],
        ),
        Op::Mint {
            src,
            dest,
            rights,
            badge,
        } => s.invoke(
            initial::CNODE,
            label::CNODE_MINT,
            &[at(dest), 64, initial::CNODE, at(src), 64, rights, badge],
        ),
        Op::Move { src, dest } => s.invoke(
            initial::CNODE,
            label::CNODE_MOVE,
            &[at(dest), 64, initial::CNODE, at(src), 64],
        ),
        Op::Delete(i) => s.invoke(initial::CNODE, label::CNODE_DELETE, &[at(i), 64]),
        Op::Revoke(i) => s.invoke(initial::CNODE, label::CNODE_REVOKE, &[at(i), 64]),
        Op::RevokePool => s.invoke(
            initial::CNODE,
            label::CNODE_REVOKE,
            &[initial::FIRST_UNTYPED, 64],
        ),
        Op::Configure { tcb, args } => {
            let [fault, cspace, vspace, frame] = args.map(|a| a.map_or(0, at));
            s.invoke(
                at(tcb),
                label::TCB_CONFIGURE,
                &[fault, cspace, vspace, 0x3000_0000, frame],
            )
        }
        Op::SetSchedParams { tcb, sc } => s.invoke(
            at(tcb),
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, 10, 10, at(sc), 0],
        ),
        Op::Bind { tcb, ntfn } => s.invoke(at(tcb), label::TCB_BIND_NOTIFICATION, &[at(ntfn)]),
        Op::Unbind(tcb) => s.invoke(at(tcb), label::TCB_UNBIND_NOTIFICATION, &[]),
        Op::ScConfigure(sc) => s.invoke(
            initial::SCHED_CONTROL,
            label::SCHED_CONTROL_CONFIGURE,
            &[at(sc), 100, 1000],
        ),
        Op::ScBind { sc, object } => s.invoke(at(sc), label::SCHED_CONTEXT_BIND, &[at(object)]),
        Op::ScUnbind { sc, object } => {
            s.invoke(at(sc), label::SCHED_CONTEXT_UNBIND_OBJECT, &[at(object)])
        }
        Op::TableMap { table, vspace, va } => {
            s.invoke(at(table), label::PAGE_TABLE_MAP, &[at(vspace), VAS[va]])
        }
        Op::TableUnmap(i) => s.invoke(at(i), label::PAGE_TABLE_UNMAP, &[]),
        Op::FrameMap {
            frame,
            vspace,
            va,
            rights,
        } => s.invoke(
            at(frame),
            label::FRAME_MAP,
            &[at(vspace), VAS[va], rights, vm_attr::CACHED],
        ),
        Op::FrameUnmap(i) => s.invoke(at(i), label::FRAME_UNMAP, &[]),
        // Thread control; the threads never run (the root has the highest priority).
        Op::Resume(i) => s.invoke(at(i), label::TCB_RESUME, &[]),
        Op::Suspend(i) => s.invoke(at(i), label::TCB_SUSPEND, &[]),
    };
    result.is_ok()
}

/// The objects every capability in the table names.
struct Named {
    /// Table ids named, by kind.
    ids: BTreeSet<(ObjectKind, u64)>,
    /// Frames named: base to size.
    frames: BTreeMap<u64, u64>,
    /// Page tables named, with whether some capability records them mapped.
    tables: BTreeMap<u64, bool>,
}

fn named(k: &Kernel) -> Named {
    let mut n = Named {
        ids: BTreeSet::new(),
        frames: BTreeMap::new(),
        tables: BTreeMap::new(),
    };
    for slot in SlotId::all() {
        let Cap::Object {
            kind,
            base,
            size_bits,
            data,
            ..
        } = k.cap(slot)
        else {
            continue;
        };
        n.ids.insert((kind, data));
        match kind {
            ObjectKind::Frame => {
                n.frames.insert(base, 1 << size_bits);
            }
            ObjectKind::PageTable => {
                *n.tables.entry(base).or_default() |= data != 0;
            }
            _ => {}
        }
    }
    n
}

/// Every live entry of a table of live flags has a capability naming it, and every
/// named id is live.
fn ids_agree<I: TableIndex, const N: usize>(
    what: ObjectKind,
    live: &Table<I, bool, N>,
    n: &Named,
) -> Result<(), String> {
    for (id, &alive) in live.iter() {
        let named = n.ids.contains(&(what, id.index() as u64));
        if alive != named {
            return Err(std::format!(
                "{what:?} {}: live {alive}, named by a capability {named}",
                id.index()
            ));
        }
    }
    Ok(())
}

/// Walks an address space: every table linked is a live page table linked nowhere else,
/// every page a live frame.
fn walk(
    m: &mut Mem,
    n: &Named,
    (table, level): (u64, u32),
    linked: &mut BTreeSet<u64>,
) -> Result<(), String> {
    let entries = *m.page(table).expect("a table in RAM");
    for e in entries.iter().filter(|e| **e & desc::VALID != 0) {
        let pa = e & 0x0000_FFFF_FFFF_F000;
        let is_table = level < 3 && e & desc::TABLE_OR_PAGE != 0;
        if is_table {
            if !n.tables.contains_key(&pa) {
                return Err(std::format!(
                    "level-{level} entry links {pa:#x}, no page table"
                ));
            }
            if !linked.insert(pa) {
                return Err(std::format!("page table {pa:#x} is linked twice"));
            }
            walk(m, n, (pa, level + 1), linked)?;
        } else {
            let size = if level == 3 { 0x1000 } else { 0x20_0000 };
            if n.frames.get(&pa) != Some(&size) {
                return Err(std::format!(
                    "level-{level} entry maps {pa:#x}, no such frame"
                ));
            }
        }
    }
    Ok(())
}

fn check(s: &mut Sys) -> Result<(), String> {
    let n = named(&s.k);
    let o = &s.k.objects;
    // Objects live exactly while a capability names them.
    ids_agree(ObjectKind::Endpoint, &o.ep_live, &n)?;
    ids_agree(ObjectKind::Notification, &o.ntfn_live, &n)?;
    ids_agree(ObjectKind::SchedContext, &o.sc_live, &n)?;
    for t in ThreadId::all() {
        let live = o.tcbs[t].live;
        if live != n.ids.contains(&(ObjectKind::Tcb, t.data())) {
            return Err(std::format!(
                "thread {t:?}: live {live}, but named otherwise"
            ));
        }
        let own = [
            TcbSlot::CSpace,
            TcbSlot::VSpace,
            TcbSlot::IpcBuffer,
            TcbSlot::FaultHandler,
        ]
        .map(|w| s.k.cap(t.own_slot(w)));
        if !live {
            if own.iter().any(|c| !c.is_null()) || o.threads.state(t) != ThreadState::Inactive {
                return Err(std::format!(
                    "dead thread {t:?} keeps capabilities or a state"
                ));
            }
            continue;
        }
        // The IPC buffer the IPC paths use is the frame in the thread's own slot.
        let slot_buffer = match own[2] {
            Cap::Object {
                kind: ObjectKind::Frame,
                base,
                ..
            } => Some(base),
            _ => None,
        };
        if o.tcbs[t].ipc_buffer != slot_buffer {
            return Err(std::format!(
                "thread {t:?} uses IPC buffer {:?}, its slot holds {slot_buffer:?}",
                o.tcbs[t].ipc_buffer
            ));
        }
        if let Some(b) = o.tcbs[t].bound
            && (!o.ntfn_live[b] || o.ntfn_bound[b] != Some(t))
        {
            return Err(std::format!("thread {t:?} is bound to a dead notification"));
        }
    }
    for (r, reply) in o.replies.iter() {
        if reply.live != n.ids.contains(&(ObjectKind::Reply, r.data())) {
            return Err(std::format!("reply {r:?}: live and named disagree"));
        }
        for t in [reply.caller, reply.server].into_iter().flatten() {
            if !o.tcbs[t].live {
                return Err(std::format!("reply {r:?} names dead thread {t:?}"));
            }
        }
    }
    for (v, root) in o.vspaces.iter() {
        if root.is_some() != n.ids.contains(&(ObjectKind::VSpace, v.data())) {
            return Err(std::format!("address space {v:?}: live and named disagree"));
        }
    }
    for (d, bell) in o.doorbells.iter() {
        let free = *bell == super::super::doorbell::Doorbell::Free;
        if free == n.ids.contains(&(ObjectKind::Doorbell, d.data())) {
            return Err(std::format!("doorbell {d:?}: live and named disagree"));
        }
    }
    for (nid, sc) in o.ntfn_sc.iter() {
        if let Some(sc) = *sc
            && (o.sc_ntfn[sc] != Some(nid) || !o.sc_live[sc] || !o.ntfn_live[nid])
        {
            return Err(std::format!(
                "notification {nid:?} and context {sc:?} disagree"
            ));
        }
    }
    // Queued threads are live.
    for e in EndpointId::all().filter(|&e| o.ep_live[e]) {
        if o.threads.queued(&o.eps[e].queue).any(|t| !o.tcbs[t].live) {
            return Err(std::format!("endpoint {e:?} queues a dead thread"));
        }
    }
    // Translations: from every live root, only live tables and frames; an unmapped table
    // is empty.
    let roots: Vec<u64> = o.vspaces.values().flatten().copied().collect();
    let mut linked = BTreeSet::new();
    for root in roots {
        walk(&mut s.m, &n, (root, 0), &mut linked)?;
    }
    for (&table, &mapped) in &n.tables {
        if !mapped && s.m.page(table).is_some_and(|p| p.iter().any(|&e| e != 0)) {
            return Err(std::format!("unmapped page table {table:#x} holds entries"));
        }
    }
    Ok(())
}

/// Random sequences of retype, copy, mint, move, delete, revoke, thread configuration,
/// binding and mapping: after every step nothing outlives its last capability. The
/// sequences must also do things: every kind of operation succeeds some of the time.
///
/// The cases come from a fixed seed, so that the suite is reproducible and the coverage
/// assertion cannot fail by chance; `PROPTEST_RNG_SEED=<n>` explores other sequences.
#[test]
fn nothing_outlives_its_last_capability() {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    use std::cell::RefCell;

    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x41_7011),
        chosen => chosen,
    };
    let config = Config {
        cases: 500,
        source_file: Some(file!()),
        rng_seed,
        ..defaults
    };
    // How often each kind of operation succeeded, over every case.
    let succeeded: RefCell<BTreeMap<String, usize>> = RefCell::new(BTreeMap::new());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |ops| {
        let mut s = boot();
        // Every slot starts with its object, from memory of three parents (the pool and
        // the two smaller blocks), so that revoking one takes some objects and not others.
        for dest in 0..COPIES.start {
            let from = match dest {
                0 | 1 => None,
                _ => [None, Some(0), Some(1)][(dest % 3) as usize],
            };
            run(&mut s, &Op::Retype { from, dest });
            prop_assert!(
                !s.k.cap(slot(FIRST + dest)).is_null(),
                "set-up of slot {}",
                dest
            );
        }
        for op in &ops {
            if run(&mut s, op) {
                let debug = std::format!("{op:?}");
                let name = debug.split([' ', '(']).next().unwrap_or_default();
                *succeeded.borrow_mut().entry(name.into()).or_default() += 1;
            }
            if let Err(broken) = check(&mut s) {
                prop_assert!(false, "{} after {:?}", broken, op);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let succeeded = succeeded.into_inner();
    for name in [
        "Retype",
        "Copy",
        "Mint",
        "Move",
        "Delete",
        "Revoke",
        "RevokePool",
        "Configure",
        "SetSchedParams",
        "Bind",
        "Unbind",
        "ScConfigure",
        "ScBind",
        "ScUnbind",
        "TableMap",
        "TableUnmap",
        "FrameMap",
        "FrameUnmap",
        "Resume",
        "Suspend",
    ] {
        assert!(
            succeeded.get(name).is_some_and(|&n| n > 0),
            "no {name} ever succeeded: {succeeded:?}"
        );
    }
}
