//! The initialiser's rules for a boot program, apart from the system calls that carry them
//! out: the order it replays the invocations in and when it stops ([`Replay`]), and how its
//! monitor answers each message that reaches it ([`Monitor`]). The initialiser makes the
//! calls each step names; these types decide which.

use core::iter::Enumerate;

use super::{BootProgram, Invocation, MAX_ARGS, MAX_RESTARTS, Pd, pd_flags};

/// One invocation to make: `label` on the capability at `cap` with `args`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step<'a> {
    /// Its place in the program, from 0.
    pub index: usize,
    /// The invoked capability (a slot of the initialiser's root CNode).
    pub cap: u64,
    /// The invocation label.
    pub label: u64,
    /// The arguments: the record's first `length` message registers.
    pub args: &'a [u64],
}

/// Where a replay stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayState {
    /// Steps are left; the next is this one.
    Running(usize),
    /// Every step succeeded: the replica's PDs run.
    Done,
    /// This step failed; no later step is made.
    Failed(usize),
}

/// A replay of a boot program: every invocation in the order written, stopping at the
/// first that fails (the kernel checks each; the initialiser adds no check of its own).
#[derive(Clone, Debug)]
pub struct Replay<'a> {
    /// The steps not yet given out; emptied when one fails.
    steps: Enumerate<core::slice::Iter<'a, Invocation>>,
    /// How many steps the program has.
    total: usize,
    /// The step that failed.
    failed: Option<usize>,
}

impl<'a> Replay<'a> {
    /// A replay of `program` from its first step.
    pub fn new(program: &BootProgram<'a>) -> Self {
        let invocations = program.invocations();
        Self {
            steps: invocations.iter().enumerate(),
            total: invocations.len(),
            failed: None,
        }
    }

    /// Where it stands.
    pub fn state(&self) -> ReplayState {
        match self.failed {
            Some(index) => ReplayState::Failed(index),
            None if self.steps.len() == 0 => ReplayState::Done,
            None => ReplayState::Running(self.total.saturating_sub(self.steps.len())),
        }
    }

    /// The next step to make; `None` once every step is made or one failed.
    #[inline]
    pub fn next_step(&mut self) -> Option<Step<'a>> {
        let (index, inv) = self.steps.next()?;
        let length = usize::try_from(inv.length).map_or(MAX_ARGS, |l| l.min(MAX_ARGS));
        Some(Step {
            index,
            cap: inv.cap,
            label: u64::from(inv.label),
            args: inv.args.get(..length).unwrap_or(&[]),
        })
    }

    /// `step`, the last [`Replay::next_step`] gave, failed: the replay stops.
    pub fn fail(&mut self, step: &Step<'_>) {
        self.failed = Some(step.index);
        self.steps = [].iter().enumerate();
    }
}

/// What the monitor does after it stops a faulting PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFault {
    /// It stays stopped: it did not ask to be restarted.
    Stop,
    /// It stays stopped: it was restarted [`MAX_RESTARTS`] times already.
    RestartedTooOften,
    /// Restart it from its entry point, for the `count`th time. A passive PD first gets
    /// its scheduling context back from its notification, to run `init` on.
    Restart {
        /// Restarts so far, this one included (1 to [`MAX_RESTARTS`]).
        count: u32,
        /// Whether it is passive.
        passive: bool,
    },
}

/// How the monitor answers one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A passive PD finished `init` (label 0, badge its index plus one): take its
    /// scheduling context from its thread and bind it to its notification.
    MakePassive(&'a Pd),
    /// A "ready" message whose badge names no passive PD: ignored.
    UnknownReady,
    /// A fault whose badge no PD faults with: ignored.
    UnknownFault,
    /// A fault of `pd`: stop it, then do `then`.
    Fault {
        /// The PD.
        pd: &'a Pd,
        /// What follows.
        then: AfterFault,
    },
}

/// PDs whose restarts the monitor counts (a replica has fewer).
const COUNTED: usize = 64;

/// The replica monitor's state: how often it restarted each PD.
#[derive(Clone, Debug)]
pub struct Monitor {
    restarts: [u32; COUNTED],
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    /// No PD restarted yet.
    pub const fn new() -> Self {
        Self {
            restarts: [0; COUNTED],
        }
    }

    /// The answer to a message with `badge` and `label` on the monitor endpoint of
    /// `program`'s replica; a restart it decides on is counted.
    pub fn on_message<'a>(
        &mut self,
        program: &BootProgram<'a>,
        badge: u64,
        label: u64,
    ) -> Verdict<'a> {
        let pds = program.pds();
        if label == 0 {
            // Not a fault (their labels start at 1): a passive PD's "init is done".
            return usize::try_from(badge)
                .ok()
                .and_then(|b| b.checked_sub(1))
                .and_then(|i| pds.get(i))
                .filter(|pd| pd.flags & pd_flags::PASSIVE != 0)
                .map_or(Verdict::UnknownReady, Verdict::MakePassive);
        }
        let Some((index, pd)) = pds
            .iter()
            .enumerate()
            .find(|(_, pd)| pd.fault_badge != 0 && pd.fault_badge == badge)
        else {
            return Verdict::UnknownFault;
        };
        let counted = self
            .restarts
            .get_mut(index)
            .filter(|_| pd.flags & pd_flags::RESTART != 0);
        let then = match counted {
            Some(n) if *n < MAX_RESTARTS => {
                *n = n.saturating_add(1);
                AfterFault::Restart {
                    count: *n,
                    passive: pd.flags & pd_flags::PASSIVE != 0,
                }
            }
            Some(_) => AfterFault::RestartedTooOften,
            None => AfterFault::Stop,
        };
        Verdict::Fault { pd, then }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::bootprog::write;

    fn pd(fault_badge: u64, flags: u32) -> Pd {
        Pd {
            name: [0; 64],
            tcb: 300,
            sc: 301,
            notification: 302,
            fault_badge,
            entry: 0x20_0000,
            stack_top: 0x7F_FFFF_E000,
            flags,
            core: 0,
            init_core: 0,
        }
    }

    fn program(pds: &[Pd], invocations: &[Invocation]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, (257, 258), 300, &[], pds, invocations);
        out
    }

    fn invocation(cap: u64, length: u32) -> Invocation {
        Invocation {
            cap,
            label: 5,
            length,
            args: [1, 2, 3, 4, 5, 6, 7, 8],
        }
    }

    /// Replays `bytes`, failing step `fail`; the steps made and the final state.
    fn replay(bytes: &[u8], fail: Option<usize>) -> (Vec<(usize, u64, usize)>, ReplayState) {
        let p = BootProgram::parse(bytes).unwrap();
        let mut r = Replay::new(&p);
        let mut made = Vec::new();
        while let Some(step) = r.next_step() {
            made.push((step.index, step.cap, step.args.len()));
            if fail == Some(step.index) {
                r.fail(&step);
            }
        }
        (made, r.state())
    }

    #[test]
    fn a_replay_makes_every_step_in_order_with_its_own_arguments() {
        let bytes = program(
            &[],
            &[invocation(16, 7), invocation(17, 0), invocation(18, 8)],
        );
        let (made, state) = replay(&bytes, None);
        assert_eq!(made, [(0, 16, 7), (1, 17, 0), (2, 18, 8)]);
        assert_eq!(state, ReplayState::Done);
        let empty = program(&[], &[]);
        assert_eq!(replay(&empty, None), (Vec::new(), ReplayState::Done));
    }

    #[test]
    fn a_replay_stops_at_the_first_failure_and_makes_nothing_after() {
        let bytes = program(
            &[],
            &[invocation(16, 1), invocation(17, 1), invocation(18, 1)],
        );
        let (made, state) = replay(&bytes, Some(1));
        assert_eq!(made, [(0, 16, 1), (1, 17, 1)]);
        assert_eq!(state, ReplayState::Failed(1));
        let p = BootProgram::parse(&bytes).unwrap();
        let mut r = Replay::new(&p);
        assert_eq!(r.state(), ReplayState::Running(0));
        let first = r.next_step().unwrap();
        assert_eq!(r.state(), ReplayState::Running(1));
        r.fail(&first);
        assert_eq!((r.state(), r.next_step()), (ReplayState::Failed(0), None));
    }

    #[test]
    fn a_passive_pd_ready_message_is_named_by_its_index_plus_one() {
        let pds = [pd(1, 0), pd(2, pd_flags::PASSIVE)];
        let bytes = program(&pds, &[]);
        let p = BootProgram::parse(&bytes).unwrap();
        let mut m = Monitor::new();
        assert_eq!(m.on_message(&p, 2, 0), Verdict::MakePassive(&p.pds()[1]));
        // Badge 1 is an active PD, 0 and 3 no PD at all.
        for badge in [0, 1, 3, u64::MAX] {
            assert_eq!(m.on_message(&p, badge, 0), Verdict::UnknownReady, "{badge}");
        }
    }

    #[test]
    fn a_fault_is_matched_by_fault_badge_and_an_unknown_one_ignored() {
        // The second PD's faults go to its parent (badge 0): never the monitor's.
        let pds = [pd(1, 0), pd(0, 0)];
        let bytes = program(&pds, &[]);
        let p = BootProgram::parse(&bytes).unwrap();
        let mut m = Monitor::new();
        let stop = Verdict::Fault {
            pd: &p.pds()[0],
            then: AfterFault::Stop,
        };
        assert_eq!(m.on_message(&p, 1, 6), stop);
        assert_eq!(m.on_message(&p, 1, 6), stop);
        assert_eq!(m.on_message(&p, 0, 6), Verdict::UnknownFault);
        assert_eq!(m.on_message(&p, 2, 6), Verdict::UnknownFault);
    }

    #[test]
    fn a_restartable_pd_is_restarted_three_times_then_left_stopped() {
        let pds = [
            pd(1, pd_flags::RESTART),
            pd(2, pd_flags::RESTART | pd_flags::PASSIVE),
        ];
        let bytes = program(&pds, &[]);
        let p = BootProgram::parse(&bytes).unwrap();
        let mut m = Monitor::new();
        let then = |m: &mut Monitor, badge| match m.on_message(&p, badge, 1) {
            Verdict::Fault { then, .. } => then,
            other => panic!("{other:?}"),
        };
        for count in 1..=MAX_RESTARTS {
            let want = AfterFault::Restart {
                count,
                passive: false,
            };
            assert_eq!(then(&mut m, 1), want);
        }
        assert_eq!(then(&mut m, 1), AfterFault::RestartedTooOften);
        assert_eq!(then(&mut m, 1), AfterFault::RestartedTooOften);
        // Each PD has its own count; a passive one is restarted as passive.
        let first = AfterFault::Restart {
            count: 1,
            passive: true,
        };
        assert_eq!(then(&mut m, 2), first);
    }

    #[test]
    fn a_pd_past_the_counted_ones_is_stopped_not_restarted() {
        let mut pds: Vec<Pd> = (1..=COUNTED as u64).map(|b| pd(b, 0)).collect();
        pds.push(pd(1000, pd_flags::RESTART));
        let bytes = program(&pds, &[]);
        let p = BootProgram::parse(&bytes).unwrap();
        let got = Monitor::new().on_message(&p, 1000, 1);
        let want = Verdict::Fault {
            pd: &p.pds()[COUNTED],
            then: AfterFault::Stop,
        };
        assert_eq!(got, want);
    }
}
