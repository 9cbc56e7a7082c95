//! The kernel driven as the aarch64 kernel drives it: a root thread set up as the boot code
//! sets up the initialiser, which builds threads with ordinary invocations; threads "run"
//! by having their registers set and a system call made.

extern crate std;
use std::boxed::Box;
use std::vec::Vec;

use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::syscall::{self, MessageInfo, fault, initial, label, object_kind, rights, vm_attr};

use super::fake::FakeMachine;
use super::*;
use crate::id::{CoreId, NotificationId, SlotId, ThreadId, VSpaceId};

const RAM: (u64, u64) = (0x4000_0000, 0x5000_0000);
const POOL: u64 = 0x4100_0000;
const POOL_BITS: u8 = 24;

/// The fake machine as these tests use it: RAM from `RAM.0` to `RAM.1`, the object pool
/// zeroable, interrupt 33 claimable, replica 7 down, eight channel words.
type Mem = FakeMachine;

fn machine() -> Mem {
    let mut m = FakeMachine::default();
    m.ram = RAM.0..RAM.1;
    m.object_memory = POOL..POOL + (1 << POOL_BITS);
    m.claimable = Some(std::vec![33]);
    m.down_replica = Some(7);
    m.words = std::vec![0; 8];
    m
}

struct Walker<'a>(&'a mut Mem);

impl crate::pagetable::TableMemory for Walker<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }
    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        self.0.page(pa).unwrap()
    }
}

struct Sys {
    k: Box<Kernel>,
    m: Mem,
    root: ThreadId,
    ipc_pa: u64,
    next_slot: u64,
}

/// Root slot `s` of the initialiser's CNode (which owns table slots from 0).
fn slot(s: u64) -> SlotId {
    SlotId::from_data(s).unwrap()
}

/// Boot objects live in RAM below the pool, as the kernel's boot memory does.
const BOOT: u64 = 0x4000_0000;

fn boot() -> Sys {
    let mut k = Box::new(Kernel::new());
    let layout = InitialiserBoot {
        cnode: BOOT,
        tcb: BOOT + 0x1000,
        vspace: BOOT + 0x2000,
        sched_context: BOOT + 0x3000,
        ipc_buffer: BOOT + 0x4000,
        budget: 1_000_000,
        priority: 255,
        cores: 0b11,
        min_budget: 0,
        ctx: Context::default(),
    };
    let pool = Cap::Untyped {
        base: POOL,
        size_bits: POOL_BITS,
        watermark: 0,
        device: false,
        read_only: false,
    };
    let root = k.boot_initialiser(&layout, [pool]).unwrap();
    assert_eq!(k.current(), Some(root));
    Sys {
        k,
        m: machine(),
        root,
        ipc_pa: BOOT + 0x4000,
        next_slot: initial::FIRST_FREE,
    }
}

impl Sys {
    /// Core 0's timer fires at counter time `now`.
    fn at(&mut self, now: u64) {
        self.k.enter(CoreId::MIN, now);
        self.k.timer();
    }

    /// Makes the current thread perform system call `number` with registers `regs`
    /// (x0, x1, x2.., x6); returns its registers afterwards.
    fn sys(&mut self, thread: ThreadId, number: i64, regs: &[(usize, u64)]) -> Context {
        let now = self.k.objects.sched.now();
        self.sys_at(thread, number, regs, now)
    }

    /// [`Sys::sys`] at counter time `now`.
    fn sys_at(
        &mut self,
        thread: ThreadId,
        number: i64,
        regs: &[(usize, u64)],
        now: u64,
    ) -> Context {
        assert_eq!(
            self.k.current(),
            Some(thread),
            "thread {thread:?} is not the one running"
        );
        let ctx = self.k.context_mut(thread).unwrap();
        for &(r, v) in regs {
            ctx.x[r] = v;
        }
        ctx.x[7] = number as u64;
        // As the CPU side enters, for the thread it last loaded.
        let core = self.k.core();
        self.k.objects.loaded[core] = Some(thread);
        self.k.syscall_entry(&mut self.m, core, now);
        // As the CPU side arms the core's timer when it loads the next thread.
        if self.k.timer_changed() {
            let _ = self.k.keep_next_event();
        }
        *self.k.context(thread).unwrap_or(&Context::default())
    }

    /// The root thread invokes `cptr` with `label` and `args`: the result label and MRs.
    fn invoke(&mut self, cptr: u64, op: u64, args: &[u64]) -> Result<[u64; 4], Error> {
        let mut regs = std::vec![(0, cptr), (1, MessageInfo::new(op, args.len() as u64).0)];
        for (i, &a) in args.iter().enumerate() {
            if i < 4 {
                regs.push((2 + i, a));
            } else {
                self.m.page(self.ipc_pa).unwrap()[1 + i] = a;
            }
        }
        let c = self.sys(self.root, syscall::CALL, &regs);
        match Error::from_raw(answer(&c) as u32) {
            None => Ok([c.x[2], c.x[3], c.x[4], c.x[5]]),
            Some(e) => Err(e),
        }
    }

    fn slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot - 1
    }

    /// Retypes one object into a fresh root slot.
    fn make(&mut self, kind: ObjectKind, size_bits: u64) -> u64 {
        self.make_from(initial::FIRST_UNTYPED, kind, size_bits)
    }

    /// Retypes one object from the untyped memory in root slot `untyped` into a fresh
    /// root slot.
    fn make_from(&mut self, untyped: u64, kind: ObjectKind, size_bits: u64) -> u64 {
        self.retype(untyped, object_kind::number(kind), size_bits)
    }

    /// Retypes one object of kind number `kind` from the untyped memory in root slot
    /// `untyped` into a fresh root slot.
    fn retype(&mut self, untyped: u64, kind: u64, size_bits: u64) -> u64 {
        let s = self.slot();
        self.invoke(
            untyped,
            label::UNTYPED_RETYPE,
            &retype_args(kind, size_bits, s),
        )
        .unwrap_or_else(|e| panic!("retype kind {kind}: {e:?}"));
        s
    }

    fn mint(&mut self, src: u64, rights: u64, badge: u64) -> u64 {
        let d = self.slot();
        self.invoke(
            initial::CNODE,
            label::CNODE_MINT,
            &[d, 64, initial::CNODE, src, 64, rights, badge],
        )
        .unwrap();
        d
    }

    /// A new CNode of radix 4 with a guard of 60 zero bits, so that it resolves a whole
    /// 64-bit address in one level (a thread's capability-space root); its slot.
    fn guarded_cnode(&mut self) -> u64 {
        let cnode = self.make(ObjectKind::CNode, 4);
        let guarded = self.slot();
        self.invoke(
            initial::CNODE,
            label::CNODE_MUTATE,
            &[
                guarded,
                64,
                initial::CNODE,
                cnode,
                64,
                rights::ALL,
                60 << 58,
            ],
        )
        .unwrap();
        guarded
    }

    /// A thread with its own CNode (radix 4, guarded to depth 64), address space and
    /// scheduling context (none when `passive`), at `priority`, not yet started. Its
    /// capabilities are copied into its slots `1..` from `caps` (root slots).
    fn thread(&mut self, priority: u64, passive: bool, caps: &[u64]) -> (u64, ThreadId) {
        let budget = (!passive).then_some((1000, 1000));
        self.thread_with_budget(priority, budget, caps)
    }

    /// [`Sys::thread`] with a context of `(budget, period)` of its own, or passive.
    fn thread_with_budget(
        &mut self,
        priority: u64,
        budget: Option<(u64, u64)>,
        caps: &[u64],
    ) -> (u64, ThreadId) {
        let tcb = self.make(ObjectKind::Tcb, 0);
        let guarded = self.guarded_cnode();
        let vspace = self.make(ObjectKind::VSpace, 0);
        for (i, &c) in caps.iter().enumerate() {
            // Copy into the thread's CNode at index i + 1 (its guard makes depth 64).
            self.invoke(
                guarded,
                label::CNODE_COPY,
                &[i as u64 + 1, 64, initial::CNODE, c, 64, rights::ALL],
            )
            .unwrap();
        }
        self.invoke(tcb, label::TCB_CONFIGURE, &[0, guarded, vspace, 0, 0])
            .unwrap();
        let sc = match budget {
            None => 0,
            Some((budget, period)) => self.sched_context(budget, period),
        };
        self.invoke(
            tcb,
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, priority, priority, sc, 0],
        )
        .unwrap();
        (tcb, self.thread_id(tcb))
    }

    /// A server (priority 100) waiting on endpoint `ep` (its slot 1, with a reply object
    /// in slot 2) and a started client (priority 50) holding `client_cap` in its slot 1;
    /// the root thread is parked, so the client runs next.
    fn serving(&mut self, ep: u64, client_cap: u64) -> (ThreadId, ThreadId) {
        let reply = self.make(ObjectKind::Reply, 0);
        let (server_tcb, server) = self.thread(100, false, &[ep, reply]);
        let (client_tcb, client) = self.thread(50, false, &[client_cap]);
        self.start(server_tcb);
        self.start(client_tcb);
        self.park_root();
        // The server runs first (higher priority) and waits: Recv(ep = slot 1, reply = slot 2).
        self.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
        (server, client)
    }

    /// [`Sys::serving`] with a passive server: it is started on a context of its own,
    /// reaches its receive and loses the context (as Microkit's monitor makes a passive
    /// PD), so it runs only on what a caller lends it.
    fn passive_serving(&mut self, ep: u64) -> (ThreadId, ThreadId) {
        let reply = self.make(ObjectKind::Reply, 0);
        let (server_tcb, server) = self.thread(100, true, &[ep, reply]);
        let (client_tcb, client) = self.thread(50, false, &[ep]);
        let sc = self.sched_context(1000, 1000);
        self.invoke(
            server_tcb,
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, 100, 100, sc, 0],
        )
        .unwrap();
        self.start(server_tcb);
        self.start(client_tcb);
        self.park_root();
        self.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
        self.k.objects.sched.unbind(server);
        (server, client)
    }

    /// The thread whose TCB capability is in root slot `tcb`.
    fn thread_id(&self, tcb: u64) -> ThreadId {
        match self.k.cap(slot(tcb)) {
            Cap::Object { data, .. } => ThreadId::from_data(data).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn start(&mut self, tcb: u64) {
        self.invoke(
            tcb,
            label::TCB_WRITE_REGISTERS,
            &[1, 0x20_0000, 0x1000_0000],
        )
        .unwrap();
    }

    /// The root thread waits on a fresh notification, so lower priorities run.
    fn park_root(&mut self) -> u64 {
        let n = self.make(ObjectKind::Notification, 0);
        let root = self.root;
        self.sys(root, syscall::WAIT, &[(0, n)]);
        n
    }

    /// Signals the notification in root slot `n` with `bits`, as an interrupt would.
    fn signal(&mut self, n: u64, bits: u64) {
        let Cap::Object { data, .. } = self.k.cap(slot(n)) else {
            panic!("slot {n} holds no notification");
        };
        self.k
            .objects
            .signal(NotificationId::from_data(data).unwrap(), bits);
    }

    /// Wakes the root thread parked on `park` (as an interrupt would), so it can invoke.
    fn wake_root(&mut self, park: u64) {
        self.signal(park, 1);
        self.k.objects.schedule();
        assert_eq!(self.k.current(), Some(self.root));
    }

    /// Retypes a block of `2^bits` bytes of untyped memory into a fresh root slot.
    fn untyped(&mut self, bits: u64) -> u64 {
        self.retype(initial::FIRST_UNTYPED, object_kind::UNTYPED, bits)
    }

    /// A scheduling context configured with `budget` per `period` (microseconds).
    fn sched_context(&mut self, budget: u64, period: u64) -> u64 {
        let sc = self.make(ObjectKind::SchedContext, 0);
        self.invoke(
            initial::SCHED_CONTROL,
            label::SCHED_CONTROL_CONFIGURE,
            &[sc, budget, period],
        )
        .unwrap();
        sc
    }

    /// The root table of the address space in root slot `s`.
    fn vspace_root(&self, s: u64) -> u64 {
        match self.k.cap(slot(s)) {
            Cap::Object {
                kind: ObjectKind::VSpace,
                data,
                ..
            } => self.k.objects.vspaces[VSpaceId::from_data(data).unwrap()].unwrap(),
            other => panic!("slot {s} holds {other:?}"),
        }
    }

    /// The physical address of the object in root slot `s`.
    fn base(&self, s: u64) -> u64 {
        match self.k.cap(slot(s)) {
            Cap::Object { base, .. } | Cap::CNode { base, .. } | Cap::Untyped { base, .. } => base,
            Cap::Null => panic!("slot {s} is empty"),
        }
    }
}

/// UntypedRetype's arguments: one object of kind number `kind` into root slot `dest`.
fn retype_args(kind: u64, size_bits: u64, dest: u64) -> [u64; 7] {
    [kind, size_bits, initial::CNODE, 0, 0, dest, 1]
}

/// The label of a call's answer (0 when it succeeded, else the error or fault kind).
fn answer(c: &Context) -> u64 {
    MessageInfo(c.x[1]).label()
}

#[test]
fn call_and_reply_recv_carry_badges_and_message_registers() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let badged = s.mint(ep, rights::ALL, 0x8000_0000_0000_0005);
    let (server, client) = s.serving(ep, badged);
    assert_eq!(s.k.current(), Some(client));
    // The client calls with label 9 and three message registers.
    s.sys(
        client,
        syscall::CALL,
        &[
            (0, 1),
            (1, MessageInfo::new(9, 3).0),
            (2, 10),
            (3, 20),
            (4, 30),
        ],
    );
    assert_eq!(s.k.current(), Some(server));
    let got = *s.k.context(server).unwrap();
    assert_eq!(
        got.x[0], 0x8000_0000_0000_0005,
        "the badge of the client's capability"
    );
    assert_eq!(MessageInfo(got.x[1]), MessageInfo::new(9, 3));
    assert_eq!(&got.x[2..5], &[10, 20, 30]);
    // The server replies with one register and waits again.
    s.sys(
        server,
        syscall::REPLY_RECV,
        &[(0, 1), (1, MessageInfo::new(0, 1).0), (2, 99), (6, 2)],
    );
    assert_eq!(s.k.current(), Some(client));
    let back = *s.k.context(client).unwrap();
    assert_eq!(MessageInfo(back.x[1]), MessageInfo::new(0, 1));
    assert_eq!(back.x[2], 99);
    assert!(matches!(
        s.k.thread_state(server),
        ThreadState::Receiving(_)
    ));
}

#[test]
fn sending_on_a_reply_object_answers_the_call_and_the_server_runs_on() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let (server, client) = s.serving(ep, ep);
    s.sys(
        client,
        syscall::CALL,
        &[(0, 1), (1, MessageInfo::new(4, 0).0)],
    );
    assert_eq!(s.k.current(), Some(server));
    // The server answers through its reply object (slot 2) with Send, not ReplyRecv.
    s.sys(
        server,
        syscall::SEND,
        &[(0, 2), (1, MessageInfo::new(0, 1).0), (2, 77)],
    );
    let back = *s.k.context(client).unwrap();
    assert_eq!(MessageInfo(back.x[1]), MessageInfo::new(0, 1));
    assert_eq!(back.x[2], 77);
    assert_eq!(
        s.k.thread_state(client),
        ThreadState::Running,
        "the client no longer waits for its reply"
    );
    assert_eq!(
        s.k.thread_state(server),
        ThreadState::Running,
        "a reply never blocks its sender"
    );
    // The reply object is empty now: a second send answers nobody and changes nothing.
    s.sys(
        server,
        syscall::SEND,
        &[(0, 2), (1, MessageInfo::new(0, 1).0), (2, 78)],
    );
    assert_eq!(s.k.context(client).unwrap().x[2], 77);
}

#[test]
fn a_passive_server_runs_on_its_callers_scheduling_context() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let (server, client) = s.passive_serving(ep);
    assert_eq!(s.k.current(), Some(client));
    s.sys(
        client,
        syscall::CALL,
        &[(0, 1), (1, MessageInfo::new(1, 0).0)],
    );
    assert_eq!(
        s.k.current(),
        Some(server),
        "the server runs on the lent context"
    );
    s.sys(server, syscall::REPLY_RECV, &[(0, 1), (1, 0), (6, 2)]);
    assert_eq!(s.k.current(), Some(client), "the context went back");
    assert!(!s.k.objects.sched.has_sc(server));
}

#[test]
fn scheduling_contexts_bind_and_unbind_by_invocation() {
    let mut s = boot();
    let (active_tcb, active) = s.thread(50, false, &[]);
    let (passive_tcb, passive) = s.thread(60, true, &[]);
    let sc = s.make(ObjectKind::SchedContext, 0);
    let (bind, unbind) = (
        label::SCHED_CONTEXT_BIND,
        label::SCHED_CONTEXT_UNBIND_OBJECT,
    );
    assert_eq!(
        s.invoke(sc, bind, &[passive_tcb]),
        Err(Error::InvalidCapability),
        "an unconfigured context cannot be bound"
    );
    s.invoke(
        initial::SCHED_CONTROL,
        label::SCHED_CONTROL_CONFIGURE,
        &[sc, 1000, 1000],
    )
    .unwrap();
    assert_eq!(
        s.invoke(sc, unbind, &[passive_tcb]),
        Err(Error::IllegalOperation),
        "the context is not bound to that thread"
    );
    assert_eq!(
        s.invoke(sc, bind, &[active_tcb]),
        Err(Error::IllegalOperation),
        "the thread has a context of its own"
    );
    assert_eq!(s.invoke(sc, bind, &[sc]), Err(Error::InvalidCapability));
    assert_eq!(s.invoke(sc, bind, &[]), Err(Error::TruncatedMessage));
    s.invoke(sc, bind, &[passive_tcb]).unwrap();
    assert!(s.k.objects.sched.has_own_sc(passive));
    assert_eq!(
        s.invoke(sc, bind, &[passive_tcb]),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        s.invoke(sc, unbind, &[active_tcb]),
        Err(Error::IllegalOperation),
        "the active thread's context is another one"
    );
    s.invoke(sc, unbind, &[passive_tcb]).unwrap();
    assert!(!s.k.objects.sched.has_own_sc(passive));
    assert!(s.k.objects.sched.has_own_sc(active));
    // Unbound, the context serves another thread.
    let (other_tcb, other) = s.thread(70, true, &[]);
    s.invoke(sc, bind, &[other_tcb]).unwrap();
    assert!(s.k.objects.sched.has_own_sc(other));
}

#[test]
fn signal_and_wait_deliver_coalesced_badges() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let a = s.mint(n, rights::ALL, 0b01);
    let b = s.mint(n, rights::ALL, 0b10);
    let park = s.make(ObjectKind::Notification, 0);
    let (waiter_tcb, waiter) = s.thread(100, false, &[n]);
    let (sender_tcb, sender) = s.thread(50, false, &[a, b, park]);
    s.start(waiter_tcb);
    s.start(sender_tcb);
    s.park_root();
    // The waiter blocks; one signal wakes it with exactly that badge, preempting the sender.
    s.sys(waiter, syscall::WAIT, &[(0, 1)]);
    assert_eq!(s.k.current(), Some(sender));
    s.sys(sender, syscall::SEND, &[(0, 1)]);
    assert_eq!(s.k.current(), Some(waiter));
    assert_eq!(s.k.context(waiter).unwrap().x[0], 0b01);
    // While the waiter is busy (it yields to nobody: it is higher), signals coalesce.
    s.k.objects.suspend(waiter);
    s.k.objects.schedule();
    s.sys(sender, syscall::SEND, &[(0, 1)]);
    s.sys(sender, syscall::SEND, &[(0, 2)]);
    s.sys(sender, syscall::SEND, &[(0, 1)]);
    s.k.objects.resume(waiter);
    s.k.objects.schedule();
    assert_eq!(s.k.current(), Some(waiter));
    s.sys(waiter, syscall::WAIT, &[(0, 1)]);
    assert_eq!(s.k.context(waiter).unwrap().x[0], 0b11, "both bits, once");
    s.sys(waiter, syscall::NB_WAIT, &[(0, 1)]);
    assert_eq!(s.k.context(waiter).unwrap().x[0], 0, "nothing pending");
}

/// A thread's lookups keep the CNode level they ended in (`Kernel::resolve`); a change to
/// its capability space, here a new root, is seen at its very next lookup.
#[test]
fn a_changed_capability_space_is_seen_by_the_next_lookup() {
    let mut s = boot();
    let n1 = s.make(ObjectKind::Notification, 0);
    let n2 = s.make(ObjectKind::Notification, 0);
    let n1_badged = s.mint(n1, rights::ALL, 0b01);
    let n2_badged = s.mint(n2, rights::ALL, 0b10);
    // Another root, guarded to depth 64 as the thread's own, with n2 where n1 was.
    let guarded = s.guarded_cnode();
    s.invoke(
        guarded,
        label::CNODE_COPY,
        &[1, 64, initial::CNODE, n2_badged, 64, rights::ALL],
    )
    .unwrap();
    let (tcb, t) = s.thread(100, false, &[n1_badged, n2_badged]);
    s.start(tcb);
    let park = s.park_root();
    s.sys(t, syscall::SEND, &[(0, 1)]);
    s.sys(t, syscall::SEND, &[(0, 2)]);
    assert_eq!(
        s.sys(t, syscall::NB_WAIT, &[(0, 1)]).x[0],
        0b01,
        "n1 through slot 1"
    );
    // Pending again in n1; n2's bits wait too.
    s.sys(t, syscall::SEND, &[(0, 1)]);
    // The thread's root becomes the other CNode, where slot 1 is n2.
    s.wake_root(park);
    s.invoke(tcb, label::TCB_CONFIGURE, &[0, guarded, 0, 0, 0])
        .unwrap();
    s.park_root();
    assert_eq!(
        s.sys(t, syscall::NB_WAIT, &[(0, 1)]).x[0],
        0b10,
        "slot 1 in the new root"
    );
}

/// After calls that only signal, wait or pass messages, the caller goes on as the machine
/// loaded it; after an invocation or a fault it does not, until the machine loads a thread
/// again.
#[test]
fn the_caller_goes_on_as_loaded_until_an_invocation_or_a_fault() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let sc = s.make(ObjectKind::SchedContext, 0);
    let (tcb, t) = s.thread(100, false, &[n, sc]);
    s.start(tcb);
    s.park_root();
    s.k.note_loaded();
    s.sys(t, syscall::NB_WAIT, &[(0, 1)]);
    assert!(s.k.caller_goes_on(t), "a wait with nothing pending");
    s.sys(t, syscall::SEND, &[(0, 1)]);
    assert!(s.k.caller_goes_on(t), "a signal");
    // An invocation (of an operation the context does not have: an error answer, but an
    // invocation all the same).
    s.sys(t, syscall::CALL, &[(0, 2), (1, MessageInfo::new(99, 0).0)]);
    assert!(!s.k.caller_goes_on(t), "an invocation");
    s.sys(t, syscall::NB_WAIT, &[(0, 1)]);
    assert!(!s.k.caller_goes_on(t), "still not loaded again");
    s.k.note_loaded();
    s.sys(t, syscall::NB_WAIT, &[(0, 1)]);
    assert!(s.k.caller_goes_on(t));
    // A capability fault: an empty slot.
    s.sys(t, syscall::NB_WAIT, &[(0, 60)]);
    assert!(!s.k.caller_goes_on(t), "a capability fault");
}

#[test]
fn hostile_invocations_get_errors_not_panics() {
    let mut s = boot();
    // An empty slot.
    let root = s.root;
    let before = s.m.unhandled.len();
    s.sys(
        root,
        syscall::CALL,
        &[(0, 3000), (1, MessageInfo::new(label::TCB_RESUME, 0).0)],
    );
    assert_eq!(
        s.m.unhandled.len(),
        before + 1,
        "a cap fault, unhandled: no fault endpoint"
    );
    assert_eq!(s.m.unhandled[before].1, fault::CAP_FAULT);
    assert_eq!(s.k.current(), None, "the faulting root thread stopped");
}

#[test]
fn invocation_errors() {
    let mut s = boot();
    // Retyping more than the untyped holds.
    let d = s.slot();
    assert_eq!(
        s.invoke(
            initial::FIRST_UNTYPED,
            label::UNTYPED_RETYPE,
            &[
                object_kind::number(ObjectKind::Frame),
                21,
                initial::CNODE,
                0,
                0,
                d,
                9
            ]
        ),
        Err(Error::NotEnoughMemory)
    );
    // A slot that is not empty.
    assert_eq!(
        s.invoke(
            initial::FIRST_UNTYPED,
            label::UNTYPED_RETYPE,
            &[
                object_kind::number(ObjectKind::Endpoint),
                0,
                initial::CNODE,
                0,
                0,
                initial::TCB,
                1
            ]
        ),
        Err(Error::DeleteFirst)
    );
    // Too few arguments.
    assert_eq!(
        s.invoke(initial::FIRST_UNTYPED, label::UNTYPED_RETYPE, &[1, 2]),
        Err(Error::TruncatedMessage)
    );
    // A capability without the right: a read-only copy of an endpoint cannot be minted
    // into one that sends... but it can be minted with fewer rights; sending on it faults.
    let ep = s.make(ObjectKind::Endpoint, 0);
    let ro = s.mint(ep, rights::READ, 1);
    let before = s.m.unhandled.len();
    let root = s.root;
    s.sys(root, syscall::SEND, &[(0, ro), (1, 0)]);
    assert_eq!(s.m.unhandled.len(), before + 1);
    let _ = vm_attr::CACHED;
}

#[test]
fn frames_map_once_and_mapping_over_a_mapping_fails() {
    let mut s = boot();
    let vspace = s.make(ObjectKind::VSpace, 0);
    let pt1 = s.make(ObjectKind::PageTable, 0);
    let pt2 = s.make(ObjectKind::PageTable, 0);
    let pt3 = s.make(ObjectKind::PageTable, 0);
    let frame = s.make(ObjectKind::Frame, 12);
    let other = s.make(ObjectKind::Frame, 12);
    let va = 0x1000_0000;
    // No table yet: the lookup fails.
    assert_eq!(
        s.invoke(
            frame,
            label::FRAME_MAP,
            &[vspace, va, rights::ALL, vm_attr::CACHED]
        ),
        Err(Error::FailedLookup)
    );
    s.invoke(pt1, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt2, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt3, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    assert_eq!(
        s.invoke(pt3, label::PAGE_TABLE_MAP, &[vspace, va]),
        Err(Error::IllegalOperation),
        "already mapped"
    );
    s.invoke(
        frame,
        label::FRAME_MAP,
        &[vspace, va, rights::ALL, vm_attr::CACHED],
    )
    .unwrap();
    assert_eq!(
        s.invoke(
            other,
            label::FRAME_MAP,
            &[vspace, va, rights::ALL, vm_attr::CACHED]
        ),
        Err(Error::DeleteFirst),
        "mapping over an existing mapping"
    );
    let pa = s.invoke(frame, label::FRAME_GET_ADDRESS, &[]).unwrap()[0];
    let root_pa = s.vspace_root(vspace);
    let mut walk = Walker(&mut s.m);
    assert_eq!(
        crate::pagetable::translate(&mut walk, crate::pagetable::Root::user(root_pa), va)
            .map(|t| t.0),
        Some(pa)
    );
    // Deleting the frame capability unmaps it; the other frame then maps.
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[frame, 64])
        .unwrap();
    s.invoke(other, label::FRAME_MAP, &[vspace, va, rights::READ, 0])
        .unwrap();
}

/// User space is 1 TiB: tables and frames map past 512 GiB up to the last page (where a
/// PD's IPC buffer goes), and nothing maps at or above 1 TiB.
#[test]
fn user_space_reaches_one_tib_and_stops_there() {
    use atoll_abi::pd::vspace::{IPC_BUFFER, USER_TOP};
    let mut s = boot();
    let vspace = s.make(ObjectKind::VSpace, 0);
    let map = |s: &mut Sys, frame: u64, va: u64| {
        s.invoke(
            frame,
            label::FRAME_MAP,
            &[vspace, va, rights::ALL, vm_attr::CACHED],
        )
    };
    for va in [1 << 39, IPC_BUFFER] {
        let frame = s.make(ObjectKind::Frame, 12);
        assert_eq!(map(&mut s, frame, va), Err(Error::FailedLookup));
        // Level 1 (once for both: they share the root's second entry), level 2, level 3.
        let first = va == 1 << 39;
        for _ in 0..if first { 3 } else { 2 } {
            let table = s.make(ObjectKind::PageTable, 0);
            s.invoke(table, label::PAGE_TABLE_MAP, &[vspace, va])
                .unwrap();
        }
        let spare = s.make(ObjectKind::PageTable, 0);
        assert_eq!(
            s.invoke(spare, label::PAGE_TABLE_MAP, &[vspace, va]),
            Err(Error::DeleteFirst),
            "the walk to {va:#x} is complete"
        );
        map(&mut s, frame, va).unwrap();
        let pa = s.invoke(frame, label::FRAME_GET_ADDRESS, &[]).unwrap()[0];
        let root_pa = s.vspace_root(vspace);
        let mut walk = Walker(&mut s.m);
        let root = crate::pagetable::Root::user(root_pa);
        assert_eq!(
            crate::pagetable::translate(&mut walk, root, va + 8).map(|t| t.0),
            Some(pa + 8)
        );
    }
    // The root's entries past the second stay empty: nothing is reachable above 1 TiB.
    let root_pa = s.vspace_root(vspace);
    assert!(s.m.page(root_pa).unwrap()[2..].iter().all(|&e| e == 0));
    let table = s.make(ObjectKind::PageTable, 0);
    for va in [USER_TOP, USER_TOP + (1 << 39), !0xFFF] {
        assert_eq!(
            s.invoke(table, label::PAGE_TABLE_MAP, &[vspace, va]),
            Err(Error::InvalidArgument),
            "a table at {va:#x}"
        );
        let frame = s.make(ObjectKind::Frame, 12);
        assert_eq!(
            map(&mut s, frame, va),
            Err(Error::InvalidArgument),
            "a frame at {va:#x}"
        );
    }
}

#[test]
fn revoking_an_untyped_destroys_threads_and_releases_waiters() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let reply = s.make(ObjectKind::Reply, 0);
    let (server_tcb, server) = s.thread(100, false, &[ep, reply]);
    s.start(server_tcb);
    // The root waits on a notification that a cross-replica channel word signals.
    let n = s.make(ObjectKind::Notification, 0);
    s.invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_WATCH_PENDING_WORD,
        &[0, n],
    )
    .unwrap();
    let root = s.root;
    s.sys(root, syscall::WAIT, &[(0, n)]);
    s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), None);
    // Wake the root from outside: a peer replica rings the word.
    s.m.words[0] |= 1;
    s.k.doorbell(&mut s.m);
    assert_eq!(s.k.current(), Some(s.root));
    // Delete the endpoint (every copy): the server's receive fails and it runs again.
    s.invoke(initial::CNODE, label::CNODE_REVOKE, &[ep, 64])
        .unwrap();
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[ep, 64])
        .unwrap();
    assert_eq!(s.k.thread_state(server), ThreadState::Running);
    let c = s.k.context(server).unwrap();
    assert_eq!(answer(c), Error::InvalidCapability as u64);
    // Revoke the untyped: every object goes, the root's own objects (boot memory) stay.
    s.invoke(
        initial::CNODE,
        label::CNODE_REVOKE,
        &[initial::FIRST_UNTYPED, 64],
    )
    .unwrap();
    assert!(s.k.context(server).is_none(), "the server's TCB is gone");
    // The memory can be retyped again from the start.
    let again = s.make(ObjectKind::Frame, 12);
    assert_eq!(
        s.invoke(again, label::FRAME_GET_ADDRESS, &[]).unwrap()[0],
        POOL
    );
}

#[test]
fn faults_go_to_the_fault_endpoint_and_a_reply_restarts() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let fault_cap = s.mint(ep, rights::ALL, 0x4000_0000_0000_0003);
    let reply = s.make(ObjectKind::Reply, 0);
    let (monitor_tcb, monitor) = s.thread(200, false, &[ep, reply]);
    let (pd_tcb, pd) = s.thread(100, false, &[]);
    s.invoke(pd_tcb, label::TCB_CONFIGURE, &[fault_cap, 0, 0, 0, 0])
        .unwrap();
    s.start(monitor_tcb);
    s.start(pd_tcb);
    s.park_root();
    s.sys(monitor, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), Some(pd));
    s.k.user_fault(
        &mut s.m,
        fault::VM_FAULT,
        [0x20_0010, 0xdead_0000, 0, 0x92000007],
    );
    assert_eq!(s.k.current(), Some(monitor));
    let c = *s.k.context(monitor).unwrap();
    assert_eq!(c.x[0], 0x4000_0000_0000_0003);
    assert_eq!(answer(&c), fault::VM_FAULT);
    assert_eq!(c.x[2], 0x20_0010);
    assert_eq!(c.x[3], 0xdead_0000);
    // An unknown system call is a fault too, once the PD runs again.
    s.sys(monitor, syscall::REPLY_RECV, &[(0, 1), (1, 0), (6, 2)]);
    assert_eq!(s.k.current(), Some(pd), "label 0 restarts the thread");
    s.sys(pd, 42, &[]);
    assert_eq!(s.k.current(), Some(monitor));
    assert_eq!(
        answer(s.k.context(monitor).unwrap()),
        fault::UNKNOWN_SYSCALL
    );
    // A non-zero label leaves it stopped.
    s.sys(
        monitor,
        syscall::REPLY_RECV,
        &[(0, 1), (1, MessageInfo::new(1, 0).0), (6, 2)],
    );
    assert_eq!(s.k.thread_state(pd), ThreadState::Inactive);
    assert_eq!(s.k.current(), None);
}

#[test]
fn writing_registers_with_resume_restarts_a_thread_stopped_on_a_fault() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let fault_cap = s.mint(ep, rights::ALL, 0x4000_0000_0000_0005);
    let reply = s.make(ObjectKind::Reply, 0);
    let (child_tcb, child) = s.thread(100, false, &[]);
    s.invoke(child_tcb, label::TCB_CONFIGURE, &[fault_cap, 0, 0, 0, 0])
        .unwrap();
    let (parent_tcb, parent) = s.thread(200, false, &[ep, reply, child_tcb]);
    s.start(parent_tcb);
    s.start(child_tcb);
    s.park_root();
    s.sys(parent, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), Some(child));
    s.k.user_fault(&mut s.m, fault::VM_FAULT, [0x20_0040, 0, 0, 0x92000007]);
    assert_eq!(s.k.current(), Some(parent));
    assert_eq!(
        s.k.thread_state(child),
        ThreadState::WaitingForReply(parent)
    );
    // The parent restarts the child without replying (Microkit's `microkit_pd_restart`).
    let c = s.sys(
        parent,
        syscall::CALL,
        &[
            (0, 3),
            (1, MessageInfo::new(label::TCB_WRITE_REGISTERS, 3).0),
            (2, 1),
            (3, 0x20_0000),
            (4, 0x7000),
        ],
    );
    assert_eq!(answer(&c), 0, "the restart succeeds");
    assert_eq!(s.k.thread_state(child), ThreadState::Running);
    // The parent's reply object no longer names the child, so it can wait with it again.
    s.sys(parent, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), Some(child));
    let ctx = *s.k.context(child).unwrap();
    assert_eq!((ctx.pc, ctx.sp), (0x20_0000, 0x7000));
    s.sys(child, 42, &[]);
    assert_eq!(s.k.current(), Some(parent), "a second fault arrives too");
    assert_eq!(answer(s.k.context(parent).unwrap()), fault::UNKNOWN_SYSCALL);
}

#[test]
fn a_budget_stops_a_spinning_thread_until_its_period_refills() {
    let mut s = boot();
    let (hog_tcb, hog) = s.thread(200, false, &[]);
    let (low_tcb, low) = s.thread(10, false, &[]);
    let sc = s.sched_context(300, 1000);
    s.invoke(
        hog_tcb,
        label::TCB_SET_SCHED_PARAMS,
        &[initial::TCB, 200, 200, sc, 0],
    )
    .unwrap();
    s.start(hog_tcb);
    s.start(low_tcb);
    s.park_root();
    assert_eq!(s.k.current(), Some(hog));
    assert_eq!(s.k.next_event(), Some(300));
    s.at(300);
    assert_eq!(s.k.current(), Some(low), "the hog spent its budget");
    assert_eq!(s.k.next_event(), Some(1000), "its refill");
    s.at(1000);
    assert_eq!(s.k.current(), Some(hog), "its period refilled");
}

#[test]
fn interrupts_signal_their_notification_until_acknowledged() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let badged = s.mint(n, rights::ALL, 1 << 4);
    let handler = s.slot();
    assert_eq!(
        s.invoke(
            initial::IRQ_CONTROL,
            label::IRQ_CONTROL_GET,
            &[34, 0, initial::CNODE, handler, 64]
        ),
        Err(Error::RangeError),
        "not this replica's interrupt"
    );
    s.invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_GET,
        &[33, 0, initial::CNODE, handler, 64],
    )
    .unwrap();
    let dup = s.slot();
    assert_eq!(
        s.invoke(
            initial::IRQ_CONTROL,
            label::IRQ_CONTROL_GET,
            &[33, 0, initial::CNODE, dup, 64]
        ),
        Err(Error::RevokeFirst)
    );
    s.invoke(handler, label::IRQ_HANDLER_SET_NOTIFICATION, &[badged])
        .unwrap();
    assert_eq!(s.m.irqs.get(&33), Some(&true));
    let root = s.root;
    s.sys(root, syscall::WAIT, &[(0, n)]);
    assert_eq!(s.k.current(), None);
    s.k.interrupt(&mut s.m, 33);
    assert_eq!(s.m.irqs.get(&33), Some(&false), "masked until acknowledged");
    assert_eq!(s.k.current(), Some(root));
    assert_eq!(s.k.context(root).unwrap().x[0], 1 << 4);
    s.invoke(handler, label::IRQ_HANDLER_ACK, &[]).unwrap();
    assert_eq!(s.m.irqs.get(&33), Some(&true));
}

#[test]
fn the_physical_timer_is_programmable_only_by_the_thread_that_acknowledged_it() {
    let mut s = boot();
    s.m.claimable = Some(std::vec![30]);
    let n = s.make(ObjectKind::Notification, 0);
    let badged = s.mint(n, rights::ALL, 1 << 3);
    let handler = s.slot();
    s.invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_GET,
        &[30, 0, initial::CNODE, handler, 64],
    )
    .unwrap();
    s.invoke(handler, label::IRQ_HANDLER_SET_NOTIFICATION, &[badged])
        .unwrap();
    let root = s.root;
    assert!(
        !s.k.handles_pd_timer(root),
        "setting the notification claims nothing"
    );
    s.invoke(handler, label::IRQ_HANDLER_ACK, &[]).unwrap();
    assert!(
        s.k.handles_pd_timer(root),
        "the acknowledging thread owns it"
    );
    s.invoke(handler, label::IRQ_HANDLER_CLEAR, &[]).unwrap();
    assert!(!s.k.handles_pd_timer(root), "cleared: nobody owns it");
    s.invoke(handler, label::IRQ_HANDLER_ACK, &[]).unwrap();
    assert!(s.k.handles_pd_timer(root));
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[handler, 64])
        .unwrap();
    assert!(
        !s.k.handles_pd_timer(root),
        "the handler's last capability went: nobody owns the timer"
    );
}

#[test]
fn doorbells_ring_their_replica_with_their_badge() {
    let mut s = boot();
    let d = s.make(ObjectKind::Doorbell, 0);
    assert_eq!(
        s.invoke(d, label::DOORBELL_CONFIGURE, &[2]),
        Err(Error::TruncatedMessage)
    );
    s.invoke(d, label::DOORBELL_CONFIGURE, &[2, 3]).unwrap();
    assert_eq!(
        s.invoke(d, label::DOORBELL_CONFIGURE, &[3, 3]),
        Err(Error::IllegalOperation),
        "configured once"
    );
    let badged = s.mint(d, rights::WRITE, 1 << 5);
    let root = s.root;
    s.sys(root, syscall::SEND, &[(0, badged)]);
    assert_eq!(s.m.rung, [(2, 3, 1 << 5)]);
    assert_eq!(s.m.words[3], 1 << 5);
    // A call answers whether the bits went through: to a replica that is down they do not,
    // and nothing is set.
    let c = s.sys(root, syscall::CALL, &[(0, badged), (1, 0)]);
    assert_eq!(answer(&c), 0, "delivered");
    let down = s.make(ObjectKind::Doorbell, 0);
    s.invoke(down, label::DOORBELL_CONFIGURE, &[7, 4]).unwrap();
    let down = s.mint(down, rights::WRITE, 1);
    let c = s.sys(root, syscall::CALL, &[(0, down), (1, 0)]);
    assert_eq!(answer(&c), Error::IllegalOperation as u64, "not delivered");
    assert_eq!(s.m.words[4], 0);
    // An unconfigured doorbell delivers nothing either.
    let raw = s.make(ObjectKind::Doorbell, 0);
    let raw = s.mint(raw, rights::WRITE, 1);
    let c = s.sys(root, syscall::CALL, &[(0, raw), (1, 0)]);
    assert_eq!(answer(&c), Error::IllegalOperation as u64);
}

#[test]
fn watched_words_signal_their_notification_once_per_coalesced_ring() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let watch = |s: &mut Sys, word: u64, n: u64| {
        s.invoke(
            initial::IRQ_CONTROL,
            label::IRQ_CONTROL_WATCH_PENDING_WORD,
            &[word, n],
        )
    };
    assert_eq!(watch(&mut s, 8, n), Err(Error::RangeError), "no word 8");
    assert_eq!(
        watch(&mut s, 1, initial::TCB),
        Err(Error::InvalidCapability)
    );
    // Bits rung before the watch began are delivered when it begins.
    s.m.words[1] = 0b100;
    watch(&mut s, 1, n).unwrap();
    assert_eq!(s.m.words[1], 0, "taken");
    assert_eq!(
        watch(&mut s, 1, n),
        Err(Error::IllegalOperation),
        "one watcher"
    );
    let root = s.root;
    let c = s.sys(root, syscall::NB_WAIT, &[(0, n)]);
    assert_eq!(c.x[0], 0b100);
    // Several rings before the doorbell is handled coalesce into one signal with every bit.
    for bit in [0, 3, 61] {
        s.m.words[1] |= 1 << bit;
    }
    s.k.doorbell(&mut s.m);
    let c = s.sys(root, syscall::NB_WAIT, &[(0, n)]);
    assert_eq!(c.x[0], (1 << 0) | (1 << 3) | (1 << 61));
    // Nothing pending: the next handling signals nothing.
    s.k.doorbell(&mut s.m);
    let c = s.sys(root, syscall::NB_WAIT, &[(0, n)]);
    assert_eq!(c.x[0], 0);
    // Deleting the notification ends the watch: the word's bits stay for a new watcher.
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[n, 64])
        .unwrap();
    s.m.words[1] = 1;
    s.k.doorbell(&mut s.m);
    assert_eq!(s.m.words[1], 1, "nobody took it");
    let again = s.make(ObjectKind::Notification, 0);
    watch(&mut s, 1, again).unwrap();
    let c = s.sys(root, syscall::NB_WAIT, &[(0, again)]);
    assert_eq!(c.x[0], 1);
}

#[test]
fn debug_put_char_reaches_the_console() {
    let mut s = boot();
    let root = s.root;
    for c in b"hi" {
        s.sys(root, syscall::DEBUG_PUT_CHAR, &[(0, u64::from(*c))]);
    }
    assert_eq!(s.m.out, b"hi");
}

#[test]
fn replica_epochs_come_back_two_a_register() {
    let mut s = boot();
    s.m.epochs = [0, 3, 1].to_vec();
    let root = s.root;
    s.sys(root, syscall::REPLICA_EPOCHS, &[]);
    let x = s.k.objects.tcbs[root].ctx.x;
    assert_eq!(x[0], 3, "the replica count");
    assert_eq!(x[2], 3 << 32, "replicas 0 and 1");
    assert_eq!(x[3], 1, "replica 2, and no replica 3");
    assert_eq!((x[4], x[5]), (0, 0));
    assert_eq!(s.k.current(), Some(root), "the caller runs on");
}

#[test]
fn an_unbadged_signal_is_not_lost() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let root = s.root;
    s.sys(root, syscall::SEND, &[(0, n)]);
    s.sys(root, syscall::WAIT, &[(0, n)]);
    assert_eq!(
        s.k.current(),
        Some(root),
        "the wait found the signal pending"
    );
    s.sys(root, syscall::NB_WAIT, &[(0, n)]);
    assert_eq!(s.k.current(), Some(root));
    s.sys(root, syscall::WAIT, &[(0, n)]);
    assert_eq!(s.k.current(), None, "taken once");
}

#[test]
fn device_untyped_makes_only_frames_and_keeps_their_contents() {
    let mut s = boot();
    // Loader-filled memory (a program image, say) in memory the machine would zero, as
    // the top of the pool; the ordinary untyped never reaches it in this test.
    let filled = POOL + (1 << POOL_BITS) - 0x1_0000;
    s.k.boot_insert(
        slot(initial::FIRST_UNTYPED + 1),
        Cap::Untyped {
            base: filled,
            size_bits: 16,
            watermark: 0,
            device: true,
            read_only: false,
        },
    )
    .unwrap();
    s.m.page(filled).unwrap()[0] = 0xC0DE;
    let device = initial::FIRST_UNTYPED + 1;
    let tcb_slot = s.slot();
    let retype = |kind: ObjectKind, bits: u64, dest: u64| {
        [
            object_kind::number(kind),
            bits,
            initial::CNODE,
            0,
            0,
            dest,
            1,
        ]
    };
    assert_eq!(
        s.invoke(
            device,
            label::UNTYPED_RETYPE,
            &retype(ObjectKind::Tcb, 0, tcb_slot)
        ),
        Err(Error::InvalidArgument),
        "only frames come from device memory"
    );
    let frame = s.slot();
    s.invoke(
        device,
        label::UNTYPED_RETYPE,
        &retype(ObjectKind::Frame, 12, frame),
    )
    .unwrap();
    assert_eq!(
        s.invoke(frame, label::FRAME_GET_ADDRESS, &[]).unwrap()[0],
        filled
    );
    assert_eq!(s.m.page(filled).unwrap()[0], 0xC0DE, "contents kept");
    // A frame from ordinary untyped memory starts zeroed.
    let fresh = s.make(ObjectKind::Frame, 12);
    let pa = s.invoke(fresh, label::FRAME_GET_ADDRESS, &[]).unwrap()[0];
    assert_eq!(s.m.page(pa).unwrap()[0], 0);
}

/// Two client/server systems built the same way, one with the fast path off: every
/// system call sequence must leave both in the same state.
mod fastpath_agrees_with_the_general_path {
    use super::*;
    use proptest::prelude::*;

    /// A system: (system, [server, client] thread indices).
    /// `tight`: the client's context is a sporadic one that runs out within a few calls
    /// (300 of every 1,000 ticks), so calls meet a spent budget and its refills.
    fn system(passive: bool, tight: bool, fastpath: bool) -> (Sys, [ThreadId; 2]) {
        let mut s = boot();
        s.k.set_fastpath(fastpath);
        let ep = s.make(ObjectKind::Endpoint, 0);
        let badged = s.mint(ep, rights::ALL, 0x77);
        let n = s.make(ObjectKind::Notification, 0);
        let n_badged = s.mint(n, rights::ALL, 0b100);
        let server_reply = s.make(ObjectKind::Reply, 0);
        let client_reply = s.make(ObjectKind::Reply, 0);
        // Slots 1 endpoint, 2 reply, 3 notification, 4 endpoint without rights to send.
        let ep_read = s.mint(ep, rights::READ, 0);
        let (server_tcb, server) = s.thread(100, false, &[ep, server_reply, n, ep_read]);
        let budget = if tight { (300, 1000) } else { (1000, 1000) };
        let (client_tcb, client) =
            s.thread_with_budget(50, Some(budget), &[badged, client_reply, n_badged, ep_read]);
        s.start(server_tcb);
        s.start(client_tcb);
        s.park_root();
        if passive {
            // The server reaches its receive, then loses its own context.
            s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
            s.k.objects.sched.unbind(server);
            s.k.objects.schedule();
        }
        (s, [server, client])
    }

    #[derive(Clone, Debug)]
    struct Op {
        number: i64,
        cptr: u64,
        label: u64,
        len: u64,
        mrs: [u64; 4],
        reply: u64,
        /// Counter ticks since the previous call.
        dt: u64,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            // Calls and replies most often, so that calls meet servers, and servers the
            // calls they reply to.
            prop_oneof![
                3 => Just(syscall::CALL),
                3 => Just(syscall::REPLY_RECV),
                4 => prop::sample::select(std::vec![
                syscall::CALL,
                syscall::REPLY_RECV,
                syscall::RECV,
                syscall::SEND,
                syscall::NB_SEND,
                syscall::WAIT,
                syscall::NB_WAIT,
                syscall::YIELD,
            ]),
            ],
            // Mostly the endpoint and the reply object, so that calls meet servers.
            prop_oneof![3 => Just(1u64), 1 => 0u64..6],
            0u64..4,
            0u64..7,
            any::<[u64; 4]>(),
            prop_oneof![3 => Just(2u64), 1 => 0u64..4],
            // Mostly short steps; now and then a long one, which spends a tight budget
            // or passes its refill.
            prop_oneof![4 => 0u64..40, 1 => 0u64..400],
        )
            .prop_map(|(number, cptr, label, len, mrs, reply, dt)| Op {
                number,
                cptr,
                label,
                len,
                mrs,
                reply,
                dt,
            })
    }

    fn state(s: &Sys, threads: [ThreadId; 2]) -> Vec<(ThreadState, Option<Context>, bool)> {
        threads
            .iter()
            .map(|&t| {
                (
                    s.k.thread_state(t),
                    s.k.context(t).copied(),
                    s.k.objects.sched.has_sc(t),
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn every_sequence_ends_in_the_same_state(
            passive in any::<bool>(),
            tight in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let (mut fast, threads) = system(passive, tight, true);
            let (mut general, _) = system(passive, tight, false);
            let mut now = fast.k.objects.sched.now();
            for op in ops {
                prop_assert_eq!(fast.k.current(), general.k.current());
                let Some(t) = fast.k.current().filter(|t| threads.contains(t)) else {
                    break;
                };
                let regs = [
                    (0, op.cptr),
                    (1, MessageInfo::new(op.label, op.len).0),
                    (2, op.mrs[0]),
                    (3, op.mrs[1]),
                    (4, op.mrs[2]),
                    (5, op.mrs[3]),
                    (6, op.reply),
                ];
                now += op.dt;
                let a = fast.sys_at(t, op.number, &regs, now);
                let b = general.sys_at(t, op.number, &regs, now);
                // A call served before the accounting (a light call) can leave the core's
                // next event behind it, when the time it charges later spends the budget:
                // then the timer's interrupt is pending, and the core takes it at once.
                for s in [&mut fast, &mut general] {
                    if s.k.next_event().is_some_and(|due| due <= now) {
                        let core = s.k.core();
                        s.k.enter(core, now);
                        s.k.timer();
                    }
                }
                prop_assert_eq!(a, b, "registers of the caller after {:?}", op);
                prop_assert_eq!(state(&fast, threads), state(&general, threads), "after {:?}", op);
                // Time a fast path left uncharged is charged at the next entry: the core's
                // next event is the same either way.
                prop_assert_eq!(fast.k.next_event(), general.k.next_event(), "after {:?}", op);
            }
        }
    }
}

mod hostile;
mod published;
mod reachability;
mod smp;

#[test]
fn firmware_calls_pass_eight_registers_each_way_and_power_calls_are_refused() {
    let mut s = boot();
    // SMCCC_VERSION with seven more arguments: all eight reach the firmware, and the
    // eight it returns come back (the last four through the IPC buffer).
    let args = [0x8000_0000, 1, 2, 3, 4, 5, 6, 7];
    let first = s.invoke(initial::SMC, label::ARM_SMC_CALL, &args).unwrap();
    assert_eq!(s.m.firmware_calls, [args]);
    assert_eq!(first, [0x8000_0001, 2, 3, 4]);
    let c = *s.k.context(s.root).unwrap();
    assert_eq!(MessageInfo(c.x[1]).length(), 8);
    let buffer = s.m.page(s.ipc_pa).unwrap();
    assert_eq!(&buffer[1 + 4..1 + 8], &[5, 6, 7, 8]);
    // PSCI's power-state calls never reach the firmware; its version query does.
    for off in [0x8400_0008u64, 0xC400_0003, 0x8400_0002] {
        let mut call = args;
        call[0] = off;
        let refused = s.invoke(initial::SMC, label::ARM_SMC_CALL, &call);
        assert_eq!(refused, Err(Error::IllegalOperation), "{off:#x}");
    }
    let mut version = args;
    version[0] = 0x8400_0000;
    assert!(
        s.invoke(initial::SMC, label::ARM_SMC_CALL, &version)
            .is_ok()
    );
    assert_eq!(s.m.firmware_calls.len(), 2);
    // A short message, another operation, and a badge naming another function.
    assert_eq!(
        s.invoke(initial::SMC, label::ARM_SMC_CALL, &args[..7]),
        Err(Error::TruncatedMessage)
    );
    assert_eq!(
        s.invoke(initial::SMC, label::IRQ_HANDLER_ACK, &args),
        Err(Error::IllegalOperation)
    );
    let only_sip = s.mint(initial::SMC, rights::ALL, 0xC200_0001);
    assert_eq!(
        s.invoke(only_sip, label::ARM_SMC_CALL, &args),
        Err(Error::InvalidArgument)
    );
    let mut sip = args;
    sip[0] = 0xC200_0001;
    assert!(s.invoke(only_sip, label::ARM_SMC_CALL, &sip).is_ok());
    assert_eq!(s.m.firmware_calls.len(), 3);
    // It is no memory: it cannot be retyped into, and nothing else becomes one.
    assert_eq!(
        s.invoke(
            initial::FIRST_UNTYPED,
            label::UNTYPED_RETYPE,
            &retype_args(object_kind::number(ObjectKind::Smc), 0, 300)
        ),
        Err(Error::InvalidArgument)
    );
}

#[test]
fn a_domain_schedule_runs_each_domains_threads_only_in_its_slots() {
    use atoll_abi::syscall::domains::{COUNTER_TICKS, MICROSECONDS};
    let mut s = boot();
    let (a_tcb, a) = s.thread(100, false, &[]);
    let (b_tcb, b) = s.thread(200, false, &[]);
    let set =
        |s: &mut Sys, args: &[u64]| s.invoke(initial::DOMAIN_SET, label::DOMAIN_SET_SET, args);
    let configure = |s: &mut Sys, args: &[u64]| {
        s.invoke(
            initial::DOMAIN_SET,
            label::DOMAIN_SET_SCHEDULE_CONFIGURE,
            args,
        )
    };
    set(&mut s, &[1, b_tcb]).unwrap();
    assert_eq!(set(&mut s, &[16, b_tcb]), Err(Error::InvalidArgument));
    assert_eq!(
        set(&mut s, &[1, initial::CNODE]),
        Err(Error::InvalidCapability)
    );
    // Domain 0 (a, and the root) for 100 ticks, then domain 1 (b) for 50, then again.
    configure(&mut s, &[0, 0, 100, COUNTER_TICKS]).unwrap();
    configure(&mut s, &[1, 1, 50, COUNTER_TICKS]).unwrap();
    assert_eq!(
        configure(&mut s, &[99, 1, 5, MICROSECONDS]),
        Err(Error::RangeError)
    );
    assert_eq!(
        configure(&mut s, &[2, 1, 0, MICROSECONDS]),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        configure(&mut s, &[2, 1, 5, 7]),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        configure(&mut s, &[2, 16, 5, MICROSECONDS]),
        Err(Error::RangeError)
    );
    let start = |s: &mut Sys, index: u64| {
        s.invoke(
            initial::DOMAIN_SET,
            label::DOMAIN_SET_SCHEDULE_START,
            &[index],
        )
    };
    assert_eq!(
        start(&mut s, 2),
        Err(Error::InvalidArgument),
        "an end marker"
    );
    s.start(a_tcb);
    s.start(b_tcb);
    start(&mut s, 0).unwrap();
    s.park_root();
    assert_eq!(
        s.k.current(),
        Some(a),
        "b has the higher priority but not the domain"
    );
    assert_eq!(s.k.next_event(), Some(100), "the domain's slot ends first");
    s.at(100);
    assert_eq!(s.k.current(), Some(b), "domain 1's slot");
    s.at(150);
    assert_eq!(
        s.k.current(),
        Some(a),
        "the schedule came round to domain 0 again"
    );
}
