//! What the C API test system prints (`protection-domains/c/api_test`, built with the SDK's
//! Makefile rules): [`check_api_test`] judges its serial log. The system's checker PD prints
//! one line per check, `api_test: <what>: ok` (or `api_test: <what>: FAILED (<detail>)`),
//! and `api_test: <N> checks passed` at the end; the lines it cannot check itself, because
//! the C library prints them (a wrong channel, a missing entry point) or because they are
//! what is tested (debug output), are checked here.

/// The checks `api_test` prints, each as `api_test: <what>: ok`, in the order it prints them
/// on every board (the order is not checked).
pub const CHECKS: &[&str] = &[
    // Before init: constructors, then the patched symbols and the headers' macros.
    "constructors ran before init, by priority",
    "microkit_name",
    "microkit_name is MICROKIT_PD_NAME_LENGTH bytes",
    "microkit_notifications",
    "microkit_pps",
    "microkit_irqs",
    "microkit_have_signal starts false",
    "capability slot macros",
    "limit macros",
    "seL4 constants",
    // Message tags.
    "microkit_msginfo_get_label",
    "microkit_msginfo_get_count",
    "microkit_msginfo_new layout",
    "microkit_msginfo_new keeps 52 label bits",
    "seL4_MessageInfo_new and getters",
    "seL4_MessageInfo_set_label",
    "seL4_MessageInfo_set_length",
    // Message registers, in and past range.
    "seL4_GetIPCBuffer",
    "microkit_mr_set and microkit_mr_get",
    "seL4_SetMR and seL4_GetMR",
    "microkit_mr_get past the last register reads 0",
    "microkit_mr_set past the last register is ignored",
    "seL4_GetMR out of range reads 0",
    "seL4_SetMR out of range is ignored",
    // Root CNode slots.
    "microkit_cspace_root_slot_to_cptr(0)",
    "microkit_cspace_root_slot_to_cptr past the root CNode",
    "microkit_cspace_root_slot_to_cptr(1) and (63)",
    // Cache maintenance: own range, another capability, empty range, past user space.
    "seL4_ARM_VSpace_Clean_Data on the PD's own buffer",
    "seL4_ARM_VSpace_Clean_Data with another capability",
    "seL4_ARM_VSpace_Clean_Data on an empty range",
    "seL4_ARM_VSpace_Clean_Data past the top of user space",
    "seL4_ARM_VSpace_Invalidate_Data on the PD's own buffer",
    "seL4_ARM_VSpace_Invalidate_Data with another capability",
    "seL4_ARM_VSpace_Invalidate_Data on an empty range",
    "seL4_ARM_VSpace_Invalidate_Data past the top of user space",
    "seL4_ARM_VSpace_CleanInvalidate_Data on the PD's own buffer",
    "seL4_ARM_VSpace_CleanInvalidate_Data with another capability",
    "seL4_ARM_VSpace_CleanInvalidate_Data on an empty range",
    "seL4_ARM_VSpace_CleanInvalidate_Data past the top of user space",
    "seL4_ARM_VSpace_Unify_Instruction on the PD's own buffer",
    "seL4_ARM_VSpace_Unify_Instruction with another capability",
    "seL4_ARM_VSpace_Unify_Instruction on an empty range",
    "seL4_ARM_VSpace_Unify_Instruction past the top of user space",
    "cache maintenance keeps the buffer's contents",
    // Register writes the library refuses.
    "seL4_TCB_WriteRegisters with count 8",
    "seL4_TCB_WriteRegisters with count 0",
    "seL4_TCB_WriteRegisters with arch_flags",
    "seL4_TCB_WriteRegisters without registers",
    // Firmware calls.
    "microkit_arm_smc_call PSCI_VERSION",
    "seL4_ARM_SMC_Call PSCI_VERSION",
    "seL4_ARM_SMC_Call PSCI_VERSION answer",
    "seL4_ARM_SMC_Call PSCI SYSTEM_OFF is refused",
    "seL4_ARM_SMC_Call without arguments",
    // A call on a channel without pp.
    "microkit_ppcall without pp returns an empty tag",
    "microkit_ppcall without pp leaves the registers",
    // api_server: calls both ways, and notifications of a passive server.
    "microkit_ppcall reply label",
    "microkit_ppcall reply count",
    "api_server's checks of the call and of microkit_deferred_notify",
    "microkit_ppcall reply registers",
    "120-register call: reply label and count",
    "120-register call: api_server's checks",
    "120-register call: reply registers",
    "a notified passive server answers a later microkit_ppcall",
    "seL4_NBSend signals and seL4_Call calls",
    // The interrupt channel and the deferred signal.
    "seL4_IRQHandler_Ack",
    "microkit_deferred_irq_ack sets microkit_have_signal",
    "microkit_deferred_irq_ack sets microkit_signal_cap",
    "microkit_deferred_irq_ack sets microkit_signal_msg",
    "microkit_deferred_notify replaces it",
    "wrong deferred calls leave the deferred signal",
    "the hand-set deferred signal was sent once",
    // api_child: fault, restart, poll, wait, stop, resume, suspend, register writes, refused calls.
    "api_child's VM fault reaches fault()",
    "the VM fault's address",
    "the VM fault is a data access",
    "the VM fault's registers",
    "api_child runs again after microkit_pd_restart",
    "seL4_Poll with nothing pending",
    "seL4_Recv gets the notification's badge",
    "seL4_Recv of a notification has an empty tag",
    "seL4_Wait gets seL4_Signal's badge",
    "microkit_pd_stop: the stopped child does not run",
    "microkit_pd_resume: the child gets the notification seL4_Send sent",
    "notified() gets the child's channel",
    "seL4_TCB_Suspend",
    "seL4_TCB_Resume",
    "seL4_TCB_WriteRegisters pc and sp, resuming",
    "a refused microkit_arm_smc_call stops the PD with a panic",
    "microkit_pd_stop of a child the PD lacks is a capability fault",
    "the capability fault's address",
    // api_noprot: the weak default protected(), and a reply from fault().
    "a PPC to a PD without protected() stops it with a panic",
    "the panic report carries one register",
    "fault() replying resumes the child, which reports again",
    // At the end.
    "api_child ran five times",
    "api_child's constructor ran before each run",
    "api_server's deferred notify arrived once",
    "api_child's notifications came in order",
];

/// Lines the system prints besides the checks, each exactly once: its debug output of known
/// values, the C library's messages for `api_test`'s wrong channel and child ids,
/// `api_child`'s refused firmware call, and the weak default `protected` of `api_noprot`.
pub const LINES: &[&str] = &[
    "api_test: dbg: 0 7 255 0 42 4294967295 1234567890 ABC",
    "api_test microkit_notify: invalid channel given '3'",
    "api_test microkit_notify: invalid channel given '9'",
    "api_test microkit_irq_ack: invalid channel given '1'",
    "api_test microkit_irq_ack: invalid channel given '4294967295'",
    "api_test microkit_ppcall: invalid channel given '4'",
    "api_test microkit_deferred_notify: invalid channel given '62'",
    "api_test microkit_deferred_irq_ack: invalid channel given '61'",
    "api_test microkit_pd_restart: invalid child given '62'",
    "api_test microkit_pd_stop: invalid child given '100'",
    "api_test microkit_pd_resume: invalid child given '4294967295'",
    "api_test microkit_pd_set_affinity: invalid child given '77'",
    "microkit_arm_smc_call: error making SMC call",
    "api_noprot is missing the 'protected' entry point",
];

/// Text that must not appear anywhere: a failed check, and any message about the valid
/// interrupt channel (9), whose acknowledgements must succeed silently.
pub const FORBIDDEN: &[&str] = &[
    "FAILED",
    "microkit_irq_ack: error",
    "microkit_irq_ack: invalid channel given '9'",
    "microkit_deferred_irq_ack: invalid channel given '9'",
];

/// The last line of a passing run: every check of [`CHECKS`] passed.
pub fn summary_line() -> String {
    format!("api_test: {} checks passed", CHECKS.len())
}

/// Judges the serial log of a boot of the api_test system: every check line, every line of
/// [`LINES`] and the summary exactly once, and nothing of [`FORBIDDEN`]. The error names the
/// first line missing (or the failed check's own line), repeated or forbidden.
pub fn check_api_test(serial: &str) -> Result<(), String> {
    let lines: Vec<&str> = serial.lines().map(|l| l.trim_end_matches('\r')).collect();
    let once = |wanted: &str| match lines.iter().filter(|l| **l == wanted).count() {
        1 => Ok(()),
        0 => Err(format!("missing line: {wanted:?}")),
        n => Err(format!("line printed {n} times, expected once: {wanted:?}")),
    };
    for what in CHECKS {
        let line = format!("api_test: {what}: ok");
        let failed = format!("api_test: {what}: FAILED");
        if let Some(report) = lines.iter().find(|l| l.starts_with(&failed)) {
            return Err(format!("check failed: {report:?}"));
        }
        once(&line)?;
    }
    for line in LINES {
        once(line)?;
    }
    once(&summary_line())?;
    for text in FORBIDDEN {
        if let Some(line) = lines.iter().find(|l| l.contains(text)) {
            return Err(format!("unexpected line: {line:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A passing log as a board prints it: boot lines, every expected line (CRLF line ends,
    /// as QEMU's serial gives them), other PDs' lines between them.
    fn passing_log() -> String {
        let mut log = String::from(
            "LDR|INFO: Atoll loader on qemu_virt_aarch64 (entered at EL1)\r\n\
             MON0|INFO: started 4 PDs: api_server, api_test, api_child, api_noprot\r\n",
        );
        for (i, what) in CHECKS.iter().enumerate() {
            log.push_str(&format!("api_test: {what}: ok\r\n"));
            if let Some(line) = LINES.get(i) {
                log.push_str(&format!("{line}\r\n"));
            }
        }
        log.push_str("api_test: the firmware implements PSCI 1.1\r\n");
        log.push_str("api_noprot: panicked at capi.rs:107: missing entry point 'protected'\r\n");
        log.push_str(&format!("{}\r\n", summary_line()));
        log.push_str("K0|INFO: every PD started and waiting for events at 57.501 ms\r\n");
        log
    }

    #[test]
    fn a_complete_log_passes() {
        assert_eq!(check_api_test(&passing_log()), Ok(()));
        // Line ends without carriage returns too.
        assert_eq!(check_api_test(&passing_log().replace("\r\n", "\n")), Ok(()));
    }

    #[test]
    fn the_summary_counts_every_check() {
        assert_eq!(
            summary_line(),
            format!("api_test: {} checks passed", CHECKS.len())
        );
        assert!(CHECKS.len() > 90, "every call of the C API has a check");
        let mut sorted = CHECKS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), CHECKS.len(), "check names are unique");
    }

    #[test]
    fn a_missing_check_is_named() {
        let log = passing_log().replace("api_test: seL4_Poll with nothing pending: ok\r\n", "");
        assert_eq!(
            check_api_test(&log),
            Err("missing line: \"api_test: seL4_Poll with nothing pending: ok\"".into())
        );
    }

    #[test]
    fn a_failed_check_is_reported_with_its_detail() {
        let log = passing_log().replace(
            "api_test: microkit_pps: ok",
            "api_test: microkit_pps: FAILED (got 0x0, expected 0x2)",
        );
        assert_eq!(
            check_api_test(&log),
            Err("check failed: \"api_test: microkit_pps: FAILED (got 0x0, expected 0x2)\"".into())
        );
    }

    #[test]
    fn a_missing_library_message_is_named() {
        let line = "api_test microkit_deferred_irq_ack: invalid channel given '61'";
        let log = passing_log().replace(&format!("{line}\r\n"), "");
        assert_eq!(check_api_test(&log), Err(format!("missing line: {line:?}")));
    }

    #[test]
    fn a_wrong_channel_id_in_a_message_does_not_pass() {
        let log = passing_log().replace("invalid channel given '3'", "invalid channel given '33'");
        assert_eq!(
            check_api_test(&log),
            Err("missing line: \"api_test microkit_notify: invalid channel given '3'\"".into())
        );
    }

    #[test]
    fn a_repeated_line_fails() {
        let line = "api_noprot is missing the 'protected' entry point";
        let log = format!("{}{line}\r\n", passing_log());
        assert_eq!(
            check_api_test(&log),
            Err(format!("line printed 2 times, expected once: {line:?}"))
        );
    }

    #[test]
    fn a_message_about_the_valid_interrupt_channel_fails() {
        let line = "api_test microkit_irq_ack: error 3";
        let log = format!("{}{line}\r\n", passing_log());
        assert_eq!(
            check_api_test(&log),
            Err(format!("unexpected line: {line:?}"))
        );
    }

    #[test]
    fn a_summary_of_another_count_fails() {
        let log = passing_log().replace(&summary_line(), "api_test: 12 checks passed");
        assert_eq!(
            check_api_test(&log),
            Err(format!("missing line: {:?}", summary_line()))
        );
    }

    #[test]
    fn an_empty_log_fails_at_the_first_check() {
        assert_eq!(
            check_api_test(""),
            Err(format!("missing line: \"api_test: {}: ok\"", CHECKS[0]))
        );
    }
}
