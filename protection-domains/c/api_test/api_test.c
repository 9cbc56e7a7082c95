/*
 * api_test: calls every function and macro of microkit.h and every seL4_* call of
 * sel4/sel4.h, wrong uses included, and checks what each does. It prints one line per
 * check, "api_test: <what>: ok" or "api_test: <what>: FAILED (<detail>)", and at the end
 * "api_test: <N> checks passed" when all passed, else "api_test: FAILED".
 *
 * The wrong uses the library reports by printing (a channel the PD does not own, a child
 * id past the last) cannot be seen from here: the harness checks those lines in the serial
 * output (tests/src/c_api.rs), as it checks the dbg line below and api_noprot's message.
 *
 * The order of events: init() runs the checks that need nobody else, then calls api_server;
 * the event loop then delivers api_server's deferred notify, api_child's faults and
 * notifications (each run of api_child does one thing, see api_child.c), and at last
 * api_noprot's two panic reports, after which the summary is printed.
 */
#include "api_test.h"

/* PSCI function ids (SMC calling convention, 32-bit). */
#define PSCI_VERSION 0x84000000ull
#define PSCI_SYSTEM_OFF 0x84000008ull

static unsigned passed;
static unsigned failed;

static void put_hex(seL4_Word value)
{
    int shift = 60;
    while (shift > 0 && ((value >> shift) & 0xf) == 0) {
        shift -= 4;
    }
    microkit_dbg_puts("0x");
    for (; shift >= 0; shift -= 4) {
        microkit_dbg_putc("0123456789abcdef"[(value >> shift) & 0xf]);
    }
}

/* One check, named `what` followed by `more`: `got` must be `want`. */
static void check_named(const char *what, const char *more, seL4_Word got, seL4_Word want)
{
    microkit_dbg_puts("api_test: ");
    microkit_dbg_puts(what);
    microkit_dbg_puts(more);
    if (got == want) {
        microkit_dbg_puts(": ok\n");
        passed++;
        return;
    }
    microkit_dbg_puts(": FAILED (got ");
    put_hex(got);
    microkit_dbg_puts(", expected ");
    put_hex(want);
    microkit_dbg_puts(")\n");
    failed++;
}

static void check_eq(const char *what, seL4_Word got, seL4_Word want)
{
    check_named(what, "", got, want);
}

/* A condition: the detail of a failure is "got 0x0, expected 0x1". */
static void check(const char *what, int ok)
{
    check_eq(what, ok != 0, 1);
}

/* Constructors run before init, lowest priority number first, those without one last. */
static seL4_Word constructor_order;

__attribute__((constructor(1000))) static void second_constructor(void)
{
    constructor_order = constructor_order * 10 + 2;
}

__attribute__((constructor(101))) static void first_constructor(void)
{
    constructor_order = constructor_order * 10 + 1;
}

__attribute__((constructor)) static void last_constructor(void)
{
    constructor_order = constructor_order * 10 + 3;
}

static void check_startup(void)
{
    check_eq("constructors ran before init, by priority", constructor_order, 123);
    check("microkit_name", str_eq(microkit_name, "api_test"));
    check("microkit_name is MICROKIT_PD_NAME_LENGTH bytes",
          sizeof(microkit_name) == MICROKIT_PD_NAME_LENGTH && microkit_name[MICROKIT_PD_NAME_LENGTH - 1] == '\0');
    check_eq("microkit_notifications", microkit_notifications, (1ull << TEST_CH_SERVER) | (1ull << TEST_CH_CHILD));
    check_eq("microkit_pps", microkit_pps, 1ull << TEST_CH_SERVER);
    check_eq("microkit_irqs", microkit_irqs, 1ull << TEST_CH_IRQ);
    check_eq("microkit_have_signal starts false", (seL4_Word)microkit_have_signal, seL4_False);
    check("capability slot macros", MONITOR_EP == 5 && TCB_CAP == 6 && ARM_SMC_CAP == 7
                                        && BASE_OUTPUT_NOTIFICATION_CAP == 10 && BASE_ENDPOINT_CAP == 74
                                        && BASE_IRQ_CAP == 138 && BASE_TCB_CAP == 202 && BASE_VM_TCB_CAP == 266
                                        && BASE_VCPU_CAP == 330 && BASE_USER_CAPS == 458);
    check("limit macros", PD_ROOT_CAP_BITS == 6 && PD_ROOT_CAP_SIZE == 64 && MICROKIT_MAX_USER_CAPS == 128
                              && MICROKIT_MAX_CHANNELS == 62 && MICROKIT_MAX_CHANNEL_ID == 61
                              && MICROKIT_PD_NAME_LENGTH == 64);
    check("seL4 constants", seL4_True == 1 && seL4_False == 0 && seL4_Null == (void *)0 && seL4_CapNull == 0
                                && seL4_WordBits == 64 && seL4_PageBits == 12 && seL4_MsgMaxLength == 120
                                && seL4_UserVSpaceTop == 0x10000000000ull && IRQAckIRQ == 41
                                && sizeof(seL4_Word) == 8 && sizeof(seL4_IPCBuffer) == 121 * 8);
}

/* Debug output of known values, which the harness checks as one whole line. */
static void print_known_values(void)
{
    microkit_dbg_puts("api_test: dbg: ");
    microkit_dbg_put8(0);
    microkit_dbg_putc(' ');
    microkit_dbg_put8(7);
    microkit_dbg_putc(' ');
    microkit_dbg_put8(255);
    microkit_dbg_putc(' ');
    microkit_dbg_put32(0);
    microkit_dbg_putc(' ');
    microkit_dbg_put32(42);
    microkit_dbg_putc(' ');
    microkit_dbg_put32(4294967295u);
    microkit_dbg_putc(' ');
    microkit_dbg_put32(1234567890);
    microkit_dbg_putc(' ');
    microkit_dbg_putc('A');
    microkit_dbg_putc(0x100 + 'B'); /* only the low 8 bits print */
    seL4_DebugPutChar('C');
    microkit_dbg_puts(seL4_Null); /* prints nothing */
    microkit_dbg_puts("\n");
}

static void check_msginfo(void)
{
    microkit_msginfo info = microkit_msginfo_new(0x123456789abcdull, seL4_MsgMaxLength);
    check_eq("microkit_msginfo_get_label", microkit_msginfo_get_label(info), 0x123456789abcdull);
    check_eq("microkit_msginfo_get_count", microkit_msginfo_get_count(info), seL4_MsgMaxLength);
    check_eq("microkit_msginfo_new layout", info.words[0], (0x123456789abcdull << 12) | seL4_MsgMaxLength);
    check_eq("microkit_msginfo_new keeps 52 label bits",
             microkit_msginfo_get_label(microkit_msginfo_new((1ull << 52) | 5, 0)), 5);

    seL4_MessageInfo_t tag = seL4_MessageInfo_new(9, 5, 2, 3);
    check("seL4_MessageInfo_new and getters",
          seL4_MessageInfo_get_label(tag) == 9 && seL4_MessageInfo_get_capsUnwrapped(tag) == 5
              && seL4_MessageInfo_get_extraCaps(tag) == 2 && seL4_MessageInfo_get_length(tag) == 3);
    seL4_MessageInfo_t relabelled = seL4_MessageInfo_set_label(tag, 0x77);
    check("seL4_MessageInfo_set_label", seL4_MessageInfo_get_label(relabelled) == 0x77
                                            && (relabelled.words[0] & 0xfff) == (tag.words[0] & 0xfff));
    seL4_MessageInfo_t resized = seL4_MessageInfo_set_length(tag, 100);
    check("seL4_MessageInfo_set_length", seL4_MessageInfo_get_length(resized) == 100
                                             && (resized.words[0] >> 7) == (tag.words[0] >> 7));
}

static void check_message_registers(void)
{
    volatile seL4_Word *words = (volatile seL4_Word *)seL4_GetIPCBuffer();
    check_eq("seL4_GetIPCBuffer", (seL4_Word)seL4_GetIPCBuffer(), seL4_UserVSpaceTop - 0x1000);

    microkit_mr_set(0, 0x1111);
    microkit_mr_set(seL4_MsgMaxLength - 1, 0x2222);
    check("microkit_mr_set and microkit_mr_get",
          microkit_mr_get(0) == 0x1111 && microkit_mr_get(seL4_MsgMaxLength - 1) == 0x2222);
    seL4_SetMR(5, 0x3333);
    check("seL4_SetMR and seL4_GetMR",
          seL4_GetMR(5) == 0x3333 && seL4_GetIPCBuffer()->msg[5] == 0x3333 && words[1 + 5] == 0x3333);

    /* The word after the last register, and the tag before the first, hold markers that an
     * unchecked index would read or overwrite. */
    words[1 + seL4_MsgMaxLength] = 0xfeed;
    words[0] = 0xbeef;
    check("microkit_mr_get past the last register reads 0",
          microkit_mr_get(seL4_MsgMaxLength) == 0 && microkit_mr_get(255) == 0);
    microkit_mr_set(seL4_MsgMaxLength, 0x4444);
    microkit_mr_set(255, 0x4444);
    check_eq("microkit_mr_set past the last register is ignored", words[1 + seL4_MsgMaxLength], 0xfeed);
    check("seL4_GetMR out of range reads 0", seL4_GetMR(-1) == 0 && seL4_GetMR(seL4_MsgMaxLength) == 0);
    seL4_SetMR(-1, 0x5555);
    seL4_SetMR(seL4_MsgMaxLength, 0x5555);
    check("seL4_SetMR out of range is ignored", words[0] == 0xbeef && words[1 + seL4_MsgMaxLength] == 0xfeed);
}

static void check_cspace(void)
{
    check_eq("microkit_cspace_root_slot_to_cptr(0)", microkit_cspace_root_slot_to_cptr(0), seL4_CapNull);
    check("microkit_cspace_root_slot_to_cptr past the root CNode",
          microkit_cspace_root_slot_to_cptr(PD_ROOT_CAP_SIZE) == seL4_CapNull
              && microkit_cspace_root_slot_to_cptr(1000) == seL4_CapNull);
    check("microkit_cspace_root_slot_to_cptr(1) and (63)",
          microkit_cspace_root_slot_to_cptr(1) == 1ull << 58 && microkit_cspace_root_slot_to_cptr(63) == 63ull << 58);
}

static char cache_buffer[512] __attribute__((aligned(64)));

static void check_cache(void)
{
    static const struct {
        const char *name;
        seL4_Error (*op)(seL4_CPtr, seL4_Word, seL4_Word);
    } ops[] = {
        { "seL4_ARM_VSpace_Clean_Data", seL4_ARM_VSpace_Clean_Data },
        { "seL4_ARM_VSpace_Invalidate_Data", seL4_ARM_VSpace_Invalidate_Data },
        { "seL4_ARM_VSpace_CleanInvalidate_Data", seL4_ARM_VSpace_CleanInvalidate_Data },
        { "seL4_ARM_VSpace_Unify_Instruction", seL4_ARM_VSpace_Unify_Instruction },
    };
    for (unsigned i = 0; i < sizeof(cache_buffer); i++) {
        cache_buffer[i] = (char)i;
    }
    seL4_Word start = (seL4_Word)cache_buffer;
    seL4_Word end = start + sizeof(cache_buffer);
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        check_named(ops[i].name, " on the PD's own buffer", ops[i].op(VSPACE_CAP, start + 3, end - 5), seL4_NoError);
        check_named(ops[i].name, " with another capability", ops[i].op(REPLY_CAP, start, end),
                    seL4_InvalidCapability);
        check_named(ops[i].name, " on an empty range", ops[i].op(VSPACE_CAP, start, start), seL4_InvalidArgument);
        check_named(ops[i].name, " past the top of user space",
                    ops[i].op(VSPACE_CAP, seL4_UserVSpaceTop - 0x1000, seL4_UserVSpaceTop + 0x1000), seL4_RangeError);
    }
    int same = 1;
    for (unsigned i = 0; i < sizeof(cache_buffer); i++) {
        same &= cache_buffer[i] == (char)i;
    }
    check("cache maintenance keeps the buffer's contents", same);
}

static void check_wrong_register_writes(void)
{
    seL4_UserContext regs = { 0 };
    seL4_CPtr tcb = BASE_TCB_CAP + CHILD_ID;
    check_eq("seL4_TCB_WriteRegisters with count 8", seL4_TCB_WriteRegisters(tcb, seL4_False, 0, 8, &regs),
             seL4_InvalidArgument);
    check_eq("seL4_TCB_WriteRegisters with count 0", seL4_TCB_WriteRegisters(tcb, seL4_False, 0, 0, &regs),
             seL4_InvalidArgument);
    check_eq("seL4_TCB_WriteRegisters with arch_flags", seL4_TCB_WriteRegisters(tcb, seL4_False, 1, 2, &regs),
             seL4_InvalidArgument);
    check_eq("seL4_TCB_WriteRegisters without registers", seL4_TCB_WriteRegisters(tcb, seL4_False, 0, 2, seL4_Null),
             seL4_InvalidArgument);
}

static void check_smc(void)
{
    seL4_ARM_SMCContext args = { .x0 = PSCI_VERSION };
    seL4_ARM_SMCContext response = { .x0 = 0xffffffffull };
    microkit_arm_smc_call(&args, &response);
    seL4_Word version = response.x0;
    /* A PSCI version (major << 16 | minor, at least 0.2); NOT_SUPPORTED is -1. */
    check("microkit_arm_smc_call PSCI_VERSION", version >= 2 && version < 0x80000000ull);
    microkit_dbg_puts("api_test: the firmware implements PSCI ");
    microkit_dbg_put32((seL4_Uint32)(version >> 16));
    microkit_dbg_putc('.');
    microkit_dbg_put32((seL4_Uint32)(version & 0xffff));
    microkit_dbg_putc('\n');

    response.x0 = 0xffffffffull;
    check_eq("seL4_ARM_SMC_Call PSCI_VERSION", seL4_ARM_SMC_Call(ARM_SMC_CAP, &args, &response), seL4_NoError);
    check_eq("seL4_ARM_SMC_Call PSCI_VERSION answer", response.x0, version);
    seL4_ARM_SMCContext off = { .x0 = PSCI_SYSTEM_OFF };
    check_eq("seL4_ARM_SMC_Call PSCI SYSTEM_OFF is refused", seL4_ARM_SMC_Call(ARM_SMC_CAP, &off, &response),
             seL4_IllegalOperation);
    check_eq("seL4_ARM_SMC_Call without arguments", seL4_ARM_SMC_Call(ARM_SMC_CAP, seL4_Null, &response),
             seL4_InvalidArgument);
}

/* Wrong channels and children: each prints its message (checked by the harness) and does
 * nothing. */
static void check_wrong_channels(void)
{
    microkit_notify(3);
    microkit_notify(TEST_CH_IRQ);
    microkit_irq_ack(TEST_CH_SERVER);
    microkit_irq_ack(4294967295u);
    microkit_mr_set(0, 0x6666);
    microkit_msginfo answer = microkit_ppcall(TEST_CH_CHILD, microkit_msginfo_new(5, 1));
    microkit_pd_restart(MICROKIT_MAX_CHANNELS, PROGRAM_ENTRY);
    microkit_pd_stop(100);
    microkit_pd_resume(4294967295u);
    microkit_pd_set_affinity(77, 0);
    check_eq("microkit_ppcall without pp returns an empty tag", answer.words[0], 0);
    check_eq("microkit_ppcall without pp leaves the registers", microkit_mr_get(0), 0x6666);
}

static seL4_Word query_server(void)
{
    microkit_msginfo answer = microkit_ppcall(TEST_CH_SERVER, microkit_msginfo_new(LABEL_QUERY, 0));
    if (microkit_msginfo_get_label(answer) != LABEL_QUERY + REPLY_OFFSET || microkit_mr_get(0) != 0) {
        return 0xbad;
    }
    return microkit_mr_get(1);
}

/* Counts the registers 1..count-1 that do not hold ~pattern(i). */
static seL4_Word reply_mismatches(unsigned count)
{
    seL4_Word wrong = 0;
    for (unsigned i = 1; i < count; i++) {
        wrong += microkit_mr_get((seL4_Uint8)i) != ~pattern(i);
    }
    return wrong;
}

static void check_server(void)
{
    for (unsigned i = 0; i < ECHO_COUNT; i++) {
        microkit_mr_set((seL4_Uint8)i, pattern(i));
    }
    microkit_msginfo answer = microkit_ppcall(TEST_CH_SERVER, microkit_msginfo_new(LABEL_ECHO, ECHO_COUNT));
    check_eq("microkit_ppcall reply label", microkit_msginfo_get_label(answer), LABEL_ECHO + REPLY_OFFSET);
    check_eq("microkit_ppcall reply count", microkit_msginfo_get_count(answer), ECHO_COUNT);
    check_eq("api_server's checks of the call and of microkit_deferred_notify", microkit_mr_get(0), 0);
    check_eq("microkit_ppcall reply registers", reply_mismatches(ECHO_COUNT), 0);

    for (unsigned i = 0; i < seL4_MsgMaxLength; i++) {
        seL4_SetMR((int)i, pattern(i));
    }
    answer = microkit_ppcall(TEST_CH_SERVER, microkit_msginfo_new(LABEL_BIG, seL4_MsgMaxLength));
    check("120-register call: reply label and count",
          microkit_msginfo_get_label(answer) == LABEL_BIG + REPLY_OFFSET
              && microkit_msginfo_get_count(answer) == seL4_MsgMaxLength);
    check_eq("120-register call: api_server's checks", microkit_mr_get(0), 0);
    check_eq("120-register call: reply registers", reply_mismatches(seL4_MsgMaxLength), 0);

    /* The server is passive: a notification runs it on the notification's scheduling
     * context, and it still answers calls afterwards. */
    microkit_notify(TEST_CH_SERVER);
    check_eq("a notified passive server answers a later microkit_ppcall", query_server(), 1);
    seL4_NBSend(BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_SERVER, seL4_MessageInfo_new(0, 0, 0, 0));
    seL4_MessageInfo_t tag = seL4_Call(BASE_ENDPOINT_CAP + TEST_CH_SERVER, seL4_MessageInfo_new(LABEL_QUERY, 0, 0, 0));
    check("seL4_NBSend signals and seL4_Call calls",
          seL4_MessageInfo_get_label(tag) == LABEL_QUERY + REPLY_OFFSET && seL4_GetMR(0) == 0 && seL4_GetMR(1) == 2);
}

static void check_irq_and_deferred(void)
{
    /* A valid acknowledgement prints nothing (the harness checks). */
    microkit_irq_ack(TEST_CH_IRQ);
    check_eq("seL4_IRQHandler_Ack", seL4_IRQHandler_Ack(BASE_IRQ_CAP + TEST_CH_IRQ), seL4_NoError);

    microkit_deferred_irq_ack(TEST_CH_IRQ);
    check_eq("microkit_deferred_irq_ack sets microkit_have_signal", (seL4_Word)microkit_have_signal, seL4_True);
    check_eq("microkit_deferred_irq_ack sets microkit_signal_cap", microkit_signal_cap, BASE_IRQ_CAP + TEST_CH_IRQ);
    check_eq("microkit_deferred_irq_ack sets microkit_signal_msg", microkit_signal_msg.words[0],
             seL4_MessageInfo_new(IRQAckIRQ, 0, 0, 0).words[0]);
    microkit_deferred_notify(TEST_CH_SERVER);
    check("microkit_deferred_notify replaces it",
          microkit_have_signal && microkit_signal_cap == BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_SERVER
              && microkit_signal_msg.words[0] == 0);
    microkit_deferred_notify(MICROKIT_MAX_CHANNEL_ID + 1);
    microkit_deferred_irq_ack(MICROKIT_MAX_CHANNEL_ID);
    check("wrong deferred calls leave the deferred signal",
          microkit_have_signal && microkit_signal_cap == BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_SERVER
              && microkit_signal_msg.words[0] == 0);

    /* The same signal set by hand: it goes out with the event loop's first receive, and
     * api_server counts it (checked in notified()). */
    microkit_have_signal = seL4_False;
    microkit_signal_cap = BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_SERVER;
    microkit_signal_msg = microkit_msginfo_new(0, 0);
    microkit_have_signal = seL4_True;
}

void init(void)
{
    check_startup();
    print_known_values();
    check_msginfo();
    check_message_registers();
    check_cspace();
    check_cache();
    check_wrong_register_writes();
    check_smc();
    check_wrong_channels();
    check_server();
    check_irq_and_deferred();
}

static unsigned server_notifications;
/* What api_test expects of api_child's next notification. */
static unsigned child_phase;
static unsigned noprot_faults;

static void finish(void)
{
    check_eq("api_child ran five times", SHARED->child_runs, 5);
    check_eq("api_child's constructor ran before each run", SHARED->ctor_runs, 5);
    check_eq("api_server's deferred notify arrived once", server_notifications, 1);
    check_eq("api_child's notifications came in order", child_phase, 2);
    if (failed == 0) {
        microkit_dbg_puts("api_test: ");
        microkit_dbg_put32(passed);
        microkit_dbg_puts(" checks passed\n");
    } else {
        microkit_dbg_puts("api_test: ");
        microkit_dbg_put32(failed);
        microkit_dbg_puts(" of ");
        microkit_dbg_put32(passed + failed);
        microkit_dbg_puts(" checks failed\napi_test: FAILED\n");
    }
}

static void child_notified(void)
{
    switch (child_phase) {
    case 0: {
        /* Run 2 polled its notification, then notified: signal it, then take its answer
         * with seL4_Recv outside the event loop. */
        check_eq("api_child runs again after microkit_pd_restart", SHARED->child_runs, 2);
        check_eq("seL4_Poll with nothing pending", SHARED->poll_done ? SHARED->poll_bits : 0xdead, 0);
        seL4_Signal(BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_CHILD);
        seL4_Word badge = 0;
        seL4_MessageInfo_t tag = seL4_Recv(INPUT_CAP, &badge, REPLY_CAP);
        check_eq("seL4_Recv gets the notification's badge", badge, 1ull << TEST_CH_CHILD);
        check_eq("seL4_Recv of a notification has an empty tag", tag.words[0], 0);
        check_eq("seL4_Wait gets seL4_Signal's badge", SHARED->wait_done ? SHARED->wait_bits : 0xdead,
                 1ull << CHILD_CH_TEST);
        /* Stopped, a child does not take the notification (it has the higher priority, so
         * it would run at once); resumed, it does. */
        microkit_pd_stop(CHILD_ID);
        seL4_Send(BASE_OUTPUT_NOTIFICATION_CAP + TEST_CH_CHILD, seL4_MessageInfo_new(0, 0, 0, 0));
        for (int i = 0; i < 3; i++) {
            seL4_Yield();
        }
        check_eq("microkit_pd_stop: the stopped child does not run", SHARED->notified, 0);
        microkit_pd_resume(CHILD_ID);
        child_phase = 1;
        break;
    }
    case 1: {
        check_eq("microkit_pd_resume: the child gets the notification seL4_Send sent", SHARED->notified, 1);
        check_eq("notified() gets the child's channel", SHARED->notified_ch, CHILD_CH_TEST);
        seL4_CPtr tcb = BASE_TCB_CAP + CHILD_ID;
        check_eq("seL4_TCB_Suspend", seL4_TCB_Suspend(tcb), seL4_NoError);
        check_eq("seL4_TCB_Resume", seL4_TCB_Resume(tcb), seL4_NoError);
        /* Starts run 3, whose fault comes to fault(). */
        seL4_UserContext regs = { 0 };
        regs.pc = PROGRAM_ENTRY;
        regs.sp = STACK_TOP;
        check_eq("seL4_TCB_WriteRegisters pc and sp, resuming", seL4_TCB_WriteRegisters(tcb, seL4_True, 0, 2, &regs),
                 seL4_NoError);
        child_phase = 2;
        break;
    }
    default:
        check("an expected notification from api_child", 0);
        break;
    }
}

void notified(microkit_channel ch)
{
    switch (ch) {
    case TEST_CH_SERVER:
        server_notifications++;
        /* The first is api_server's deferred notify from protected(); finish() checks
         * that no other comes. */
        if (server_notifications == 1) {
            check_eq("the hand-set deferred signal was sent once", query_server(), 3);
        }
        break;
    case TEST_CH_CHILD:
        child_notified();
        break;
    default:
        check_eq("notified() on a known channel", ch, TEST_CH_SERVER);
        break;
    }
}

static seL4_Bool child_fault(microkit_msginfo msginfo)
{
    seL4_Word label = microkit_msginfo_get_label(msginfo);
    switch (SHARED->child_runs) {
    case 1:
        check_eq("api_child's VM fault reaches fault()", label, seL4_Fault_VMFault);
        check_eq("the VM fault's address", seL4_GetMR(seL4_VMFault_Addr), UNMAPPED_ADDR);
        check_eq("the VM fault is a data access", seL4_GetMR(seL4_VMFault_PrefetchFault), 0);
        check_eq("the VM fault's registers", microkit_msginfo_get_count(msginfo), seL4_VMFault_Length);
        break;
    case 3:
        check_eq("a refused microkit_arm_smc_call stops the PD with a panic", label, seL4_Fault_Panic);
        break;
    case 4:
        check_eq("microkit_pd_stop of a child the PD lacks is a capability fault", label, seL4_Fault_CapFault);
        check_eq("the capability fault's address", seL4_GetMR(seL4_CapFault_Addr), BASE_TCB_CAP + 5);
        break;
    default:
        check_eq("an expected fault of api_child", SHARED->child_runs, 1);
        return seL4_False;
    }
    microkit_pd_restart(CHILD_ID, PROGRAM_ENTRY);
    return seL4_False;
}

seL4_Bool fault(microkit_child child, microkit_msginfo msginfo, microkit_msginfo *reply_msginfo)
{
    if (child == CHILD_ID) {
        return child_fault(msginfo);
    }
    if (child != NOPROT_ID) {
        check_eq("fault() of a known child", child, NOPROT_ID);
        return seL4_False;
    }
    noprot_faults++;
    seL4_Word label = microkit_msginfo_get_label(msginfo);
    if (noprot_faults == 1) {
        check_eq("a PPC to a PD without protected() stops it with a panic", label, seL4_Fault_Panic);
        check_eq("the panic report carries one register", microkit_msginfo_get_count(msginfo), 1);
        /* An acknowledgement that rides on the reply. */
        microkit_deferred_irq_ack(TEST_CH_IRQ);
        *reply_msginfo = microkit_msginfo_new(0, 0);
        return seL4_True;
    }
    check_eq("fault() replying resumes the child, which reports again", label, seL4_Fault_Panic);
    microkit_pd_stop(NOPROT_ID);
    finish();
    return seL4_False;
}
