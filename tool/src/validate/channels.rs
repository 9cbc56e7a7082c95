//! Interrupts and channels: numbers, routes, notifications and protected procedure calls.

use super::*;

impl Validator<'_> {
    pub(super) fn irq_numbers(&mut self, placement: &Placement) {
        let decls = self.decls;
        let board = self.board;
        let timer = u64::from(atoll_abi::limits::PD_TIMER_INTID);
        // Shared interrupts are claimed machine-wide; the per-core timer once per replica.
        let mut seen: HashMap<(u64, Option<usize>), (Span, &str)> = HashMap::new();
        let irqs = std::mem::take(&mut self.irqs);
        for (index, pd) in decls.protection_domains.iter().enumerate() {
            let replica = placement.pds.get(index).map_or(0, |p| p.0);
            for irq in irqs.get(index).into_iter().flatten().flatten() {
                let (number, span) = (irq.number, irq.span);
                let key = (number, (number == timer).then_some(replica));
                if number != timer && !(FIRST_DEVICE_IRQ..IRQ_LIMIT).contains(&number) {
                    let help = format!(
                        "device interrupts are shared GIC interrupts, ids {FIRST_DEVICE_IRQ} to {}; \
                         ids below {FIRST_DEVICE_IRQ} are per-core (the kernels' doorbells and timers), \
                         except {timer}, the core's physical timer",
                        IRQ_LIMIT - 1
                    );
                    let message = format!("IRQ {number} is not a device interrupt");
                    self.push(Diagnostic::error(Code::IrqNumber, span, message).with_help(help));
                } else if number == u64::from(board.timer_intid) {
                    let message = format!(
                        "IRQ {number} is the kernel's timer on board '{}'",
                        board.name
                    );
                    self.push(Diagnostic::error(Code::IrqNumber, span, message));
                } else if let Some(&(first, owner)) = seen.get(&key) {
                    let message = format!(
                        "duplicate irq: {number} in protection domain '{}' is already claimed \
                         by '{owner}'",
                        pd.name.value
                    );
                    self.push(
                        Diagnostic::error(Code::DuplicateIrq, span, message)
                            .with_secondary(first, "first claimed here"),
                    );
                } else {
                    seen.insert(key, (span, &pd.name.value));
                }
            }
        }
        self.irqs = irqs;
    }

    pub(super) fn channel(
        &mut self,
        tag: Span,
        ends: &[EndDecl; 2],
        placement: &Placement,
        lookup: &Lookup<'_>,
    ) -> Option<Channel> {
        let pds = ends
            .each_ref()
            .map(|end| lookup.pd(&end.pd, "channel end", &mut self.diagnostics));
        let ids = [0, 1].map(|i| match pds[i] {
            Some(pd) => Some(self.claim_id(pd, &ends[i].id, "channel")),
            None => {
                // The PD is unknown (already reported), but a bad id is an error of its own.
                self.check_id_range(&ends[i].id, "channel");
                None
            }
        });
        let setvars =
            [0, 1].map(|i| pds[i].and_then(|pd| self.symbol_opt(pd, ends[i].setvar_id.as_ref())));
        let pp = ends
            .each_ref()
            .map(|end| end.pp.as_ref().filter(|pp| pp.value));
        if let (Some(first), Some(second)) = (pp[0], pp[1]) {
            let message = "cannot ppc bidirectionally: both ends have pp=\"true\"";
            self.push(
                Diagnostic::error(Code::PpBothEnds, second.span, message)
                    .with_secondary(first.span, "other end also calls")
                    .with_help(
                        "a protected procedure call goes one way, towards the higher priority; \
                         keep 'pp' on the caller only",
                    ),
            );
        }
        let [Some(a), Some(b)] = pds else { return None };
        let replica = |pd: usize| placement.pds.get(pd).map(|p| p.0);
        let cross_replica = replica(a) != replica(b);
        match (pp[0], pp[1]) {
            (Some(pp), None) => self.ppc(pp.span, a, b, placement),
            (None, Some(pp)) => self.ppc(pp.span, b, a, placement),
            _ => {}
        }
        let [setvar_a, setvar_b] = setvars;
        let end = |pd: usize, i: usize, setvar_id: Option<String>| ChannelEnd {
            pd,
            id: ids[i].unwrap_or(0),
            pp: pp[i].is_some(),
            notify: ends[i].notify,
            setvar_id,
        };
        let ends = [end(a, 0, setvar_a), end(b, 1, setvar_b)];
        Some(Channel {
            ends,
            cross_replica,
            span: tag,
        })
    }

    /// Checks a protected procedure call from `caller` to `callee` (`pp` marks the call).
    pub(super) fn ppc(&mut self, pp: Span, caller: usize, callee: usize, placement: &Placement) {
        let decls = self.decls;
        let (caller_pd, callee_pd) = (
            &decls.protection_domains[caller],
            &decls.protection_domains[callee],
        );
        let replica = |pd: usize| {
            let index = placement.pds.get(pd).map(|p| p.0);
            index
                .and_then(|i| placement.replicas.get(i))
                .map_or("?", |r| r.name.as_str())
        };
        if replica(caller) != replica(callee) {
            let message = format!(
                "protected procedure call from '{}' (replica '{}') to '{}' (replica '{}'): PPC \
                 across replicas is not supported yet",
                caller_pd.name.value,
                replica(caller),
                callee_pd.name.value,
                replica(callee)
            );
            self.push(
                Diagnostic::error(Code::CrossReplicaPpc, pp, message)
                    .with_secondary(callee_pd.name.span, "callee declared here")
                    .with_help(
                        "place both PDs in one replica, or use notifications and a shared \
                         memory region",
                    ),
            );
            return;
        }
        let priority = |pd: &PdDecl| pd.priority.as_ref().map_or(0, |p| p.value);
        let (caller_priority, callee_priority) = (priority(caller_pd), priority(callee_pd));
        if callee_priority > caller_priority {
            return;
        }
        let callee_span = callee_pd
            .priority
            .as_ref()
            .map_or(callee_pd.name.span, |p| p.span);
        let message = format!(
            "PPCs must be to protection domains of strictly higher priorities; '{}' (priority \
             {caller_priority}) calls '{}' (priority {callee_priority})",
            caller_pd.name.value, callee_pd.name.value
        );
        let help = format!(
            "give '{}' a priority above {caller_priority}",
            callee_pd.name.value
        );
        self.push(
            Diagnostic::error(Code::PpPriority, pp, message)
                .with_secondary(callee_span, "callee declared here")
                .with_help(help),
        );
    }
}
