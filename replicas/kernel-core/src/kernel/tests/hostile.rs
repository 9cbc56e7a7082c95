//! Regression tests for the holes a hostile-PD test found (and the rules that close them):
//! capability rights on every invocation, a passive server that is notified and called,
//! no physical address outliving its capability, and no phantom message after a restart.

use super::*;

#[test]
fn binding_a_notification_needs_the_receive_right() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let send_only = s.mint(n, rights::WRITE, 1);
    let (tcb, _) = s.thread(100, false, &[]);
    assert_eq!(
        s.invoke(tcb, label::TCB_BIND_NOTIFICATION, &[send_only]),
        Err(Error::IllegalOperation),
        "a send-only capability cannot make the thread receive the notification's signals"
    );
    let receive = s.mint(n, rights::READ, 0);
    s.invoke(tcb, label::TCB_BIND_NOTIFICATION, &[receive])
        .unwrap();
    let (other, _) = s.thread(100, false, &[]);
    assert_eq!(
        s.invoke(other, label::TCB_BIND_NOTIFICATION, &[n]),
        Err(Error::IllegalOperation),
        "bound once"
    );
    let ep = s.make(ObjectKind::Endpoint, 0);
    assert_eq!(
        s.invoke(other, label::TCB_BIND_NOTIFICATION, &[ep]),
        Err(Error::IllegalOperation),
        "not a notification"
    );
}

#[test]
fn a_notification_with_waiters_cannot_be_bound() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let (waiter_tcb, waiter) = s.thread(100, false, &[n]);
    let (tcb, _) = s.thread(50, false, &[]);
    s.start(waiter_tcb);
    let park = s.park_root();
    s.sys(waiter, syscall::WAIT, &[(0, 1)]);
    s.wake_root(park);
    assert_eq!(
        s.invoke(tcb, label::TCB_BIND_NOTIFICATION, &[n]),
        Err(Error::IllegalOperation)
    );
}

#[test]
fn only_the_bound_thread_waits_on_a_bound_notification() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let (owner_tcb, _) = s.thread(100, false, &[]);
    s.invoke(owner_tcb, label::TCB_BIND_NOTIFICATION, &[n])
        .unwrap();
    // A thief with a capability to the same notification, all rights.
    let (thief_tcb, thief) = s.thread(100, false, &[n]);
    s.start(thief_tcb);
    s.park_root();
    let before = s.m.unhandled.len();
    s.sys(thief, syscall::WAIT, &[(0, 1)]);
    assert_eq!(s.m.unhandled.len(), before + 1, "a capability fault");
    assert_eq!(s.m.unhandled[before].1, fault::CAP_FAULT);
}

#[test]
fn every_kernel_signal_source_needs_the_send_right() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let read_only = s.mint(n, rights::READ, 1);
    let handler = s.slot();
    s.invoke(
        initial::IRQ_CONTROL,
        label::IRQ_CONTROL_GET,
        &[33, 0, initial::CNODE, handler, 64],
    )
    .unwrap();
    assert_eq!(
        s.invoke(handler, label::IRQ_HANDLER_SET_NOTIFICATION, &[read_only]),
        Err(Error::InvalidCapability)
    );
    s.m.words[2] = 0b1; // rung before any watch
    assert_eq!(
        s.invoke(
            initial::IRQ_CONTROL,
            label::IRQ_CONTROL_WATCH_PENDING_WORD,
            &[2, read_only]
        ),
        Err(Error::InvalidCapability)
    );
    assert_eq!(s.m.words[2], 0b1, "a refused watch takes nothing");
    let root = s.root;
    let before = s.m.unhandled.len();
    s.sys(root, syscall::SEND, &[(0, read_only)]);
    assert_eq!(
        s.m.unhandled.len(),
        before + 1,
        "signalling without the right"
    );
}

#[test]
fn a_call_needs_a_right_to_be_replied_to() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let write_only = s.mint(ep, rights::WRITE, 7);
    let (server, client) = s.serving(ep, write_only);
    let before = s.m.unhandled.len();
    s.sys(client, syscall::CALL, &[(0, 1), (1, 0)]);
    assert_eq!(s.m.unhandled.len(), before + 1);
    assert!(matches!(
        s.k.thread_state(server),
        ThreadState::Receiving(_)
    ));
}

#[test]
fn a_fault_handler_must_send_and_be_replied_through() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let write_only = s.mint(ep, rights::WRITE, 1);
    let read_grant = s.mint(ep, rights::READ | rights::GRANT, 2);
    let (tcb, _) = s.thread(100, false, &[]);
    for bad in [write_only, read_grant] {
        assert_eq!(
            s.invoke(tcb, label::TCB_CONFIGURE, &[bad, 0, 0, 0, 0]),
            Err(Error::InvalidCapability)
        );
        assert_eq!(
            s.invoke(
                tcb,
                label::TCB_SET_SCHED_PARAMS,
                &[initial::TCB, 1, 1, 0, bad]
            ),
            Err(Error::InvalidCapability)
        );
    }
    let ok = s.mint(ep, rights::WRITE | rights::GRANT_REPLY, 3);
    s.invoke(tcb, label::TCB_CONFIGURE, &[ok, 0, 0, 0, 0])
        .unwrap();
}

#[test]
fn an_ipc_buffer_is_a_frame_of_ram_the_thread_may_read_and_write() {
    let mut s = boot();
    let frame = s.make(ObjectKind::Frame, 12);
    let read_only = s.mint(frame, rights::READ, 0);
    let ep = s.make(ObjectKind::Endpoint, 0);
    let (tcb, _) = s.thread(100, false, &[]);
    let va = 0x1000_0000;
    assert_eq!(
        s.invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, va, read_only]),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        s.invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, va, ep]),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        s.invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, va + 8, frame]),
        Err(Error::AlignmentError)
    );
    // A frame outside the replica's RAM (device memory) is refused too.
    s.k.boot_insert(
        slot(initial::FIRST_UNTYPED + 1),
        Cap::Untyped {
            base: 0x900_0000,
            size_bits: 12,
            watermark: 0,
            device: true,
            read_only: false,
        },
    )
    .unwrap();
    let mmio = s.make_from(initial::FIRST_UNTYPED + 1, ObjectKind::Frame, 12);
    assert_eq!(
        s.invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, va, mmio]),
        Err(Error::IllegalOperation)
    );
    s.invoke(tcb, label::TCB_CONFIGURE, &[0, 0, 0, va, frame])
        .unwrap();
}

#[test]
fn doorbells_ring_with_the_send_right_and_are_configured_through_the_original() {
    let mut s = boot();
    let d = s.make(ObjectKind::Doorbell, 0);
    let badged = s.mint(d, rights::ALL, 1 << 3);
    assert_eq!(
        s.invoke(badged, label::DOORBELL_CONFIGURE, &[2, 3]),
        Err(Error::IllegalOperation),
        "a badged copy rings but does not decide where"
    );
    s.invoke(d, label::DOORBELL_CONFIGURE, &[2, 3]).unwrap();
    let read_only = s.mint(d, rights::READ, 1);
    let root = s.root;
    let before = s.m.unhandled.len();
    s.sys(root, syscall::SEND, &[(0, read_only)]);
    assert_eq!(s.m.unhandled.len(), before + 1);
    assert!(s.m.rung.is_empty(), "nothing rang");
}

#[test]
fn a_context_binds_to_a_notification_only_with_the_receive_right_and_when_free() {
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let send_only = s.mint(n, rights::WRITE, 1);
    let sc = s.sched_context(1000, 1000);
    let (bind, unbind) = (
        label::SCHED_CONTEXT_BIND,
        label::SCHED_CONTEXT_UNBIND_OBJECT,
    );
    assert_eq!(
        s.invoke(sc, bind, &[send_only]),
        Err(Error::InvalidCapability)
    );
    s.invoke(sc, bind, &[n]).unwrap();
    let other = s.make(ObjectKind::Notification, 0);
    assert_eq!(
        s.invoke(sc, bind, &[other]),
        Err(Error::IllegalOperation),
        "bound already"
    );
    let (tcb, _) = s.thread(50, true, &[]);
    assert_eq!(
        s.invoke(sc, bind, &[tcb]),
        Err(Error::IllegalOperation),
        "a notification's context is not a thread's own"
    );
    assert_eq!(
        s.invoke(
            tcb,
            label::TCB_SET_SCHED_PARAMS,
            &[initial::TCB, 50, 50, sc, 0]
        ),
        Err(Error::IllegalOperation)
    );
    assert_eq!(s.invoke(sc, unbind, &[other]), Err(Error::IllegalOperation));
    s.invoke(sc, unbind, &[n]).unwrap();
    s.invoke(sc, bind, &[tcb]).unwrap();
}

/// The passive server of Microkit: a thread without a context of its own, whose
/// notification has the context it had during its init. It is notified and called, in
/// both orders, many times; every call is answered and every notification handled.
#[test]
fn a_passive_server_handles_notifications_and_calls_in_any_order() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let n = s.make(ObjectKind::Notification, 0);
    let reply = s.make(ObjectKind::Reply, 0);
    let call_cap = s.mint(ep, rights::WRITE | rights::GRANT, 0x8000_0000_0000_0001);
    let signal_cap = s.mint(n, rights::WRITE, 1 << 5);
    let (server_tcb, server) = s.thread(100, true, &[ep, reply]);
    s.invoke(server_tcb, label::TCB_BIND_NOTIFICATION, &[n])
        .unwrap();
    let sc = s.sched_context(1000, 1000);
    s.invoke(
        server_tcb,
        label::TCB_SET_SCHED_PARAMS,
        &[initial::TCB, 100, 100, sc, 0],
    )
    .unwrap();
    let (client_tcb, client) = s.thread(50, false, &[call_cap, signal_cap]);
    s.start(server_tcb);
    s.start(client_tcb);
    let park = s.park_root();
    // The server finishes its init and waits; the monitor moves its context to the
    // notification, as Microkit's does.
    s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
    s.wake_root(park);
    s.invoke(sc, label::SCHED_CONTEXT_UNBIND_OBJECT, &[server_tcb])
        .unwrap();
    s.invoke(sc, label::SCHED_CONTEXT_BIND, &[n]).unwrap();
    let root = s.root;
    s.sys(root, syscall::WAIT, &[(0, park)]);
    assert!(!s.k.objects.sched.has_sc(server));
    assert_eq!(s.k.current(), Some(client));

    let call = |s: &mut Sys, i: u64| {
        s.sys(
            client,
            syscall::CALL,
            &[(0, 1), (1, MessageInfo::new(3, 1).0), (2, i)],
        );
        assert_eq!(s.k.current(), Some(server), "the call runs the server");
        let got = *s.k.context(server).unwrap();
        assert_eq!((got.x[0], got.x[2]), (0x8000_0000_0000_0001, i));
        s.sys(
            server,
            syscall::REPLY_RECV,
            &[(0, 1), (1, MessageInfo::new(0, 1).0), (2, i + 1), (6, 2)],
        );
        assert_eq!(s.k.current(), Some(client), "the reply returns the context");
        assert_eq!(s.k.context(client).unwrap().x[2], i + 1);
    };
    let notify = |s: &mut Sys| {
        s.sys(client, syscall::SEND, &[(0, 2)]);
        assert_eq!(
            s.k.current(),
            Some(server),
            "the signal runs the passive server on the notification's context"
        );
        assert_eq!(s.k.context(server).unwrap().x[0], 1 << 5);
        s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
        assert_eq!(s.k.current(), Some(client));
        assert!(!s.k.objects.sched.has_sc(server), "the context went back");
    };
    for i in 0..100 {
        if i % 2 == 0 {
            notify(&mut s);
            call(&mut s, i);
        } else {
            call(&mut s, i);
            notify(&mut s);
        }
    }
    // A signal while the server handles a call waits, and is handled next, on the
    // notification's context once the call's goes back.
    s.sys(
        client,
        syscall::CALL,
        &[(0, 1), (1, MessageInfo::new(3, 1).0), (2, 7)],
    );
    assert_eq!(s.k.current(), Some(server));
    s.signal(n, 1 << 6);
    s.sys(
        server,
        syscall::REPLY_RECV,
        &[(0, 1), (1, MessageInfo::new(0, 0).0), (6, 2)],
    );
    assert_eq!(
        s.k.current(),
        Some(server),
        "the pending bit, on its own context"
    );
    assert_eq!(s.k.context(server).unwrap().x[0], 1 << 6);
    s.sys(server, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), Some(client));
    assert_eq!(s.k.context(client).unwrap().x[1], 0, "answered");
}

/// A thread's IPC buffer is a copy of its frame capability: revoking the memory under the
/// frame takes the buffer from the thread, so a long message can never be written into
/// whatever the memory became.
#[test]
fn a_revoked_ipc_buffer_is_gone_from_the_thread() {
    let mut s = boot();
    let block = s.untyped(16);
    let frame = s.make_from(block, ObjectKind::Frame, 12);
    let old = s.base(frame);
    let ep = s.make(ObjectKind::Endpoint, 0);
    let reply = s.make(ObjectKind::Reply, 0);
    let sender_buffer = s.make(ObjectKind::Frame, 12);
    let (receiver_tcb, receiver) = s.thread(100, false, &[ep, reply]);
    let (sender_tcb, sender) = s.thread(50, false, &[ep]);
    s.invoke(
        receiver_tcb,
        label::TCB_CONFIGURE,
        &[0, 0, 0, 0x1000_0000, frame],
    )
    .unwrap();
    s.invoke(
        sender_tcb,
        label::TCB_CONFIGURE,
        &[0, 0, 0, 0x1000_0000, sender_buffer],
    )
    .unwrap();
    // The frame's own capability goes, then the memory is revoked and made a page table.
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[frame, 64])
        .unwrap();
    s.invoke(initial::CNODE, label::CNODE_REVOKE, &[block, 64])
        .unwrap();
    let table = s.make_from(block, ObjectKind::PageTable, 0);
    assert_eq!(s.base(table), old, "the same memory");
    assert_eq!(s.k.objects.tcbs[receiver].ipc_buffer, None);
    // A long message with attacker-chosen words past the registers.
    let sender_pa = s.base(sender_buffer);
    for word in &mut s.m.page(sender_pa).unwrap()[1..121] {
        *word = 0x0060_0000_4000_0FC3; // a user-writable block descriptor
    }
    s.start(receiver_tcb);
    s.start(sender_tcb);
    s.park_root();
    s.sys(receiver, syscall::RECV, &[(0, 1), (6, 2)]);
    s.sys(
        sender,
        syscall::SEND,
        &[(0, 1), (1, MessageInfo::new(0, 120).0)],
    );
    let got = s.k.context(receiver).unwrap();
    assert_eq!(
        MessageInfo(got.x[1]).length(),
        4,
        "only the registers: no buffer"
    );
    assert!(
        s.m.page(old).unwrap().iter().all(|&w| w == 0),
        "nothing was written into the page table"
    );
}

/// An unlinked page table is empty: unmapping it clears it, so mapping it again cannot
/// resurrect a mapping of a frame that has since been reused.
#[test]
fn an_unmapped_page_table_keeps_no_translation() {
    let mut s = boot();
    let vspace = s.make(ObjectKind::VSpace, 0);
    let pt1 = s.make(ObjectKind::PageTable, 0);
    let pt2 = s.make(ObjectKind::PageTable, 0);
    let pt3 = s.make(ObjectKind::PageTable, 0);
    let frame = s.make(ObjectKind::Frame, 12);
    let va = 0x1000_0000;
    assert_eq!(
        s.invoke(
            initial::CNODE,
            label::CNODE_COPY,
            &[s.next_slot, 64, initial::CNODE, pt3, 64, rights::ALL]
        ),
        Err(Error::IllegalOperation),
        "an unmapped table has one capability"
    );
    s.invoke(pt1, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt2, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt3, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(
        frame,
        label::FRAME_MAP,
        &[vspace, va, rights::ALL, vm_attr::CACHED],
    )
    .unwrap();
    let copy = s.slot();
    s.invoke(
        initial::CNODE,
        label::CNODE_COPY,
        &[copy, 64, initial::CNODE, pt3, 64, rights::ALL],
    )
    .unwrap();
    assert_eq!(
        s.invoke(pt3, label::PAGE_TABLE_UNMAP, &[]),
        Err(Error::RevokeFirst),
        "another capability names the mapping"
    );
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[copy, 64])
        .unwrap();
    assert!(
        s.m.page(s.base(pt3)).unwrap().iter().any(|&w| w != 0),
        "deleting a copy leaves the mapping"
    );
    s.invoke(pt3, label::PAGE_TABLE_UNMAP, &[]).unwrap();
    assert!(
        s.m.page(s.base(pt3)).unwrap().iter().all(|&w| w == 0),
        "the unlinked table is empty"
    );
    // The frame goes and its memory is reused; the table is linked again.
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[frame, 64])
        .unwrap();
    s.invoke(pt3, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    let root_pa = s.vspace_root(vspace);
    let mut walk = Walker(&mut s.m);
    assert_eq!(
        crate::pagetable::translate(&mut walk, crate::pagetable::Root::user(root_pa), va),
        None
    );
}

/// Deleting the last capability to a mapped page table unlinks and clears it, even when
/// its address space is gone first.
#[test]
fn a_deleted_page_table_is_cleared_whatever_went_first() {
    let mut s = boot();
    let vspace = s.make(ObjectKind::VSpace, 0);
    let pt1 = s.make(ObjectKind::PageTable, 0);
    let pt2 = s.make(ObjectKind::PageTable, 0);
    let pt3 = s.make(ObjectKind::PageTable, 0);
    let frame = s.make(ObjectKind::Frame, 12);
    let va = 0x2000_0000;
    s.invoke(pt1, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt2, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(pt3, label::PAGE_TABLE_MAP, &[vspace, va]).unwrap();
    s.invoke(frame, label::FRAME_MAP, &[vspace, va, rights::READ, 0])
        .unwrap();
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[vspace, 64])
        .unwrap();
    let base = s.base(pt3);
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[pt3, 64])
        .unwrap();
    assert!(s.m.page(base).unwrap().iter().all(|&w| w == 0));
}

/// seL4's restart: a thread taken out of a blocking system call (Resume, or Suspend then
/// Resume) makes the call again with the registers it made it with; it is never handed
/// the capability address it passed as if it were a message's badge.
#[test]
fn a_thread_resumed_from_a_blocking_call_makes_it_again() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let reply = s.make(ObjectKind::Reply, 0);
    let (tcb, t) = s.thread(100, false, &[ep, reply]);
    s.start(tcb);
    let park = s.park_root();
    // The thread's `svc` is at 0x20_0100; the saved pc is just past it.
    s.k.context_mut(t).unwrap().pc = 0x20_0104;
    s.sys(t, syscall::RECV, &[(0, 1), (6, 2)]);
    assert!(matches!(s.k.thread_state(t), ThreadState::Receiving(_)));
    s.wake_root(park);
    s.invoke(tcb, label::TCB_RESUME, &[]).unwrap();
    let c = *s.k.context(t).unwrap();
    assert_eq!(s.k.thread_state(t), ThreadState::Running);
    assert_eq!(c.pc, 0x20_0100, "back at the svc");
    assert_eq!((c.x[0], c.x[6], c.x[7]), (1, 2, syscall::RECV as u64));
    // Suspend, then resume: the same.
    let root = s.root;
    s.sys(root, syscall::WAIT, &[(0, park)]);
    s.k.context_mut(t).unwrap().pc = 0x20_0104;
    s.sys(t, syscall::RECV, &[(0, 1), (6, 2)]);
    s.wake_root(park);
    s.invoke(tcb, label::TCB_SUSPEND, &[]).unwrap();
    s.invoke(tcb, label::TCB_RESUME, &[]).unwrap();
    assert_eq!(s.k.context(t).unwrap().pc, 0x20_0100);
    // A thread that was running when suspended goes on where it was.
    s.invoke(tcb, label::TCB_SUSPEND, &[]).unwrap();
    s.invoke(tcb, label::TCB_RESUME, &[]).unwrap();
    assert_eq!(s.k.context(t).unwrap().pc, 0x20_0100);
}

#[test]
fn an_answer_reports_the_rights_errors_to_a_call() {
    // Invocation errors come back in the answer's label; a plain Send of an invocation
    // drops them (as seL4).
    let mut s = boot();
    let n = s.make(ObjectKind::Notification, 0);
    let (tcb, _) = s.thread(100, false, &[]);
    let send_only = s.mint(n, rights::WRITE, 1);
    let root = s.root;
    let c = s.sys(
        root,
        syscall::CALL,
        &[
            (0, tcb),
            (1, MessageInfo::new(label::TCB_BIND_NOTIFICATION, 1).0),
            (2, send_only),
        ],
    );
    assert_eq!(answer(&c), Error::IllegalOperation as u64);
    // A Send of the same invocation fails the same way and writes no answer.
    let tag = MessageInfo::new(label::TCB_BIND_NOTIFICATION, 1).0;
    let c = s.sys(root, syscall::SEND, &[(0, tcb), (1, tag), (2, send_only)]);
    assert_eq!(c.x[1], tag, "no answer is written");
    // Neither bound anything: the receive right binds now.
    let receive = s.mint(n, rights::READ, 0);
    s.invoke(tcb, label::TCB_BIND_NOTIFICATION, &[receive])
        .unwrap();
}

/// A thread id is reused once its thread is destroyed: the machine is told of every new
/// thread, so that nothing it keeps per thread (FP registers, a part-written debug line)
/// passes from the old thread to the new.
#[test]
fn the_machine_is_told_of_every_new_thread() {
    let mut s = boot();
    let (first_tcb, first) = s.thread(100, false, &[]);
    assert_eq!(s.m.created.last(), Some(&first));
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[first_tcb, 64])
        .unwrap();
    let (_, second) = s.thread(100, false, &[]);
    assert_eq!(second, first, "the id is reused");
    assert_eq!(s.m.created.iter().filter(|&&t| t == first).count(), 2);
}

/// A caller stopped while a passive server runs on its lent scheduling context gets the
/// context back at once (as seL4's `reply_remove`): restarted, it runs again. (The server,
/// left without a context, waits to be given one, as in seL4.)
#[test]
fn a_caller_stopped_during_its_call_takes_its_lent_context_back() {
    let mut s = boot();
    let ep = s.make(ObjectKind::Endpoint, 0);
    let (server, client) = s.passive_serving(ep);
    s.sys(client, syscall::CALL, &[(0, 1), (1, 0)]);
    assert_eq!(s.k.current(), Some(server), "on the lent context");
    s.k.objects.suspend(client);
    assert!(
        s.k.objects.sched.has_sc(client),
        "the context is the caller's again"
    );
    assert!(!s.k.objects.sched.has_sc(server));
    s.k.objects.resume(client);
    s.k.objects.schedule();
    assert_eq!(
        s.k.current(),
        Some(client),
        "it runs on its own context again"
    );
}
