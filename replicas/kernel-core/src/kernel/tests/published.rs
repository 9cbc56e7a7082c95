//! What the kernel publishes of a PD named by TCB_SetStatusIndex (its state and fault
//! count, through `Machine::publish_pd`), as its monitor starts, restarts and stops it;
//! and that a thread without an index publishes nothing.

use atoll_abi::shared::{PD_RECORDS, PdState};

use super::*;

/// The records published since the last call, taken from the fake machine.
fn published(s: &mut Sys) -> Vec<(u32, PdState, u32)> {
    core::mem::take(&mut s.m.published)
}

/// A monitor (priority 200) receiving faults on an endpoint (its slot 1, with a reply
/// object in slot 2), and a PD (priority 100) whose faults go to it; neither started. The
/// TCB slots and threads of the monitor and the PD.
fn monitored(s: &mut Sys) -> ((u64, ThreadId), (u64, ThreadId)) {
    let ep = s.make(ObjectKind::Endpoint, 0);
    let fault_cap = s.mint(ep, rights::ALL, 7);
    let reply = s.make(ObjectKind::Reply, 0);
    let monitor = s.thread(200, false, &[ep, reply]);
    let pd = s.thread(100, false, &[]);
    s.invoke(pd.0, label::TCB_CONFIGURE, &[fault_cap, 0, 0, 0, 0])
        .unwrap();
    (monitor, pd)
}

#[test]
fn a_named_pd_publishes_starting_running_faulted_and_stopped() {
    use PdState::{Faulted, Running, Starting, Stopped};
    let mut s = boot();
    let ((monitor_tcb, monitor), (pd_tcb, pd)) = monitored(&mut s);
    s.invoke(pd_tcb, label::TCB_SET_STATUS_INDEX, &[5]).unwrap();
    assert_eq!(published(&mut s), [(5, Starting, 0)], "named, not started");
    s.start(monitor_tcb);
    assert_eq!(published(&mut s), [], "the monitor has no index");
    s.start(pd_tcb);
    assert_eq!(published(&mut s), [(5, Running, 0)]);
    let park = s.park_root();
    s.sys(monitor, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(published(&mut s), [], "blocking is no change");

    // A fault is counted and reaches the monitor; a reply with label 0 resumes the PD.
    assert_eq!(s.k.current(), Some(pd));
    s.k.user_fault(&mut s.m, fault::VM_FAULT, [0x20_0010, 0, 0, 0x9200_0007]);
    assert_eq!(published(&mut s), [(5, Faulted, 1)]);
    s.sys(monitor, syscall::REPLY_RECV, &[(0, 1), (1, 0), (6, 2)]);
    assert_eq!(published(&mut s), [(5, Running, 1)]);
    // Another fault (an unknown system call); a non-zero label leaves it faulted.
    s.sys(pd, 42, &[]);
    assert_eq!(published(&mut s), [(5, Faulted, 2)]);
    let stop = MessageInfo::new(1, 0).0;
    s.sys(monitor, syscall::REPLY_RECV, &[(0, 1), (1, stop), (6, 2)]);
    assert_eq!(published(&mut s), []);
    assert_eq!(s.k.thread_state(pd), ThreadState::Inactive);

    // What the replica's monitor does: it suspends the faulted PD (still `faulted`), then
    // restarts it from its entry point.
    s.wake_root(park);
    s.invoke(pd_tcb, label::TCB_SUSPEND, &[]).unwrap();
    assert_eq!(published(&mut s), [(5, Faulted, 2)]);
    s.start(pd_tcb);
    assert_eq!(published(&mut s), [(5, Running, 2)]);
    // Suspended on purpose: `stopped`; TCB_Resume: `running` again.
    s.invoke(pd_tcb, label::TCB_SUSPEND, &[]).unwrap();
    assert_eq!(published(&mut s), [(5, Stopped, 2)]);
    s.invoke(pd_tcb, label::TCB_RESUME, &[]).unwrap();
    assert_eq!(published(&mut s), [(5, Running, 2)]);
    // New registers without resume stop it too.
    s.invoke(pd_tcb, label::TCB_WRITE_REGISTERS, &[0, 0x20_0000, 0x1000])
        .unwrap();
    assert_eq!(published(&mut s), [(5, Stopped, 2)]);
    // Its TCB destroyed: `stopped`, and the record is no longer written.
    s.invoke(initial::CNODE, label::CNODE_REVOKE, &[pd_tcb, 64])
        .unwrap();
    s.invoke(initial::CNODE, label::CNODE_DELETE, &[pd_tcb, 64])
        .unwrap();
    assert_eq!(published(&mut s), [(5, Stopped, 2)]);
    assert!(s.k.context(pd).is_none());
}

#[test]
fn a_fault_with_no_handler_is_counted_too() {
    let mut s = boot();
    let (tcb, t) = s.thread(100, false, &[]);
    s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[0]).unwrap();
    s.start(tcb);
    s.park_root();
    assert_eq!(s.k.current(), Some(t));
    s.k.user_fault(&mut s.m, fault::USER_EXCEPTION, [0x20_0000, 0, 0, 0]);
    assert_eq!(s.m.unhandled.len(), 1, "stopped by the kernel");
    assert_eq!(
        published(&mut s),
        [
            (0, PdState::Starting, 0),
            (0, PdState::Running, 0),
            (0, PdState::Faulted, 1)
        ]
    );
}

#[test]
fn a_thread_without_an_index_publishes_nothing() {
    let mut s = boot();
    let ((monitor_tcb, monitor), (pd_tcb, pd)) = monitored(&mut s);
    s.start(monitor_tcb);
    s.start(pd_tcb);
    let park = s.park_root();
    s.sys(monitor, syscall::RECV, &[(0, 1), (6, 2)]);
    assert_eq!(s.k.current(), Some(pd));
    s.k.user_fault(&mut s.m, fault::VM_FAULT, [0x20_0010, 0, 0, 0x9200_0007]);
    s.sys(monitor, syscall::REPLY_RECV, &[(0, 1), (1, 0), (6, 2)]);
    s.wake_root(park);
    s.invoke(pd_tcb, label::TCB_SUSPEND, &[]).unwrap();
    s.invoke(pd_tcb, label::TCB_RESUME, &[]).unwrap();
    assert_eq!(published(&mut s), []);
}

#[test]
fn status_indices_are_bounded_and_set_once() {
    let mut s = boot();
    let (tcb, _) = s.thread(100, false, &[]);
    let last = PD_RECORDS as u64 - 1;
    for index in [PD_RECORDS as u64, 255, 256, u64::MAX] {
        assert_eq!(
            s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[index]),
            Err(Error::RangeError),
            "index {index}"
        );
    }
    assert_eq!(
        s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[]),
        Err(Error::TruncatedMessage)
    );
    assert_eq!(published(&mut s), [], "a refused index publishes nothing");
    s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[last]).unwrap();
    assert_eq!(published(&mut s), [(last as u32, PdState::Starting, 0)]);
    // Once only: not even the same index again.
    for index in [0, last] {
        assert_eq!(
            s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[index]),
            Err(Error::IllegalOperation)
        );
    }
    assert_eq!(published(&mut s), []);
    // Only on a TCB: a CNode refuses the label.
    assert!(
        s.invoke(initial::CNODE, label::TCB_SET_STATUS_INDEX, &[1])
            .is_err()
    );
    assert_eq!(published(&mut s), []);
}

#[test]
fn a_restart_that_fails_publishes_the_pd_stopped() {
    let mut s = boot();
    // A TCB with no spaces to run in: new registers stop it, and it cannot be restarted.
    let tcb = s.make(ObjectKind::Tcb, 0);
    s.invoke(tcb, label::TCB_SET_STATUS_INDEX, &[9]).unwrap();
    assert_eq!(
        s.invoke(tcb, label::TCB_WRITE_REGISTERS, &[1, 0x20_0000, 0x1000]),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        s.invoke(tcb, label::TCB_RESUME, &[]),
        Err(Error::IllegalOperation)
    );
    assert_eq!(
        published(&mut s),
        [(9, PdState::Starting, 0), (9, PdState::Stopped, 0)]
    );
}
