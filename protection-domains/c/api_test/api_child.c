/*
 * api_child: api_test's child 0. Each run (api_test restarts it) does one thing and leaves
 * what it saw in the shared region for api_test to check:
 *   1. reads an unmapped address: a VM fault for api_test's fault();
 *   2. seL4_Poll on its notification (nothing pending), notifies api_test, seL4_Wait for
 *      api_test's signal, notifies again; then, in notified(), counts notifications while
 *      api_test stops and resumes it;
 *   3. (started by api_test's seL4_TCB_WriteRegisters) a firmware call the kernel refuses,
 *      which microkit_arm_smc_call reports and turns into a panic fault;
 *   4. microkit_pd_stop on a child it does not have: an empty capability slot, so the
 *      kernel faults it (a capability fault, as seL4 does);
 *   5. calls api_noprot, which has no protected() entry point, and stays blocked there.
 */
#include "api_test.h"

__attribute__((constructor)) static void count_constructor(void)
{
    SHARED->ctor_runs++;
}

void init(void)
{
    seL4_Word run = SHARED->child_runs + 1;
    SHARED->child_runs = run;
    switch (run) {
    case 1: {
        volatile seL4_Word *unmapped = (volatile seL4_Word *)UNMAPPED_ADDR;
        (void)*unmapped;
        break;
    }
    case 2: {
        seL4_Word bits = 0xdead;
        seL4_Poll(INPUT_CAP, &bits);
        SHARED->poll_bits = bits;
        SHARED->poll_done = 1;
        microkit_notify(CHILD_CH_TEST);
        bits = 0xdead;
        seL4_Wait(INPUT_CAP, &bits);
        SHARED->wait_bits = bits;
        SHARED->wait_done = 1;
        microkit_notify(CHILD_CH_TEST);
        break;
    }
    case 3: {
        /* PSCI SYSTEM_OFF: a power-state call, which Atoll's kernel refuses. */
        seL4_ARM_SMCContext args = { .x0 = 0x84000008 };
        seL4_ARM_SMCContext response = { 0 };
        microkit_arm_smc_call(&args, &response);
        break;
    }
    case 4:
        microkit_pd_stop(5);
        break;
    default:
        microkit_ppcall(CHILD_CH_NOPROT, microkit_msginfo_new(7, 0));
        break;
    }
}

void notified(microkit_channel ch)
{
    SHARED->notified_ch = ch;
    SHARED->notified++;
    microkit_notify(CHILD_CH_TEST);
}
