/*
 * Atoll SDK: Microkit's C API for protection domains.
 *
 * A C PD defines init() and notified(), and protected() and fault() when it takes
 * protected procedure calls or has children; libmicrokit.a provides the rest: the program
 * entry, Microkit's event loop, and the functions below. docs/c-api.md documents each
 * call and every difference from Microkit's library.
 */
#pragma once

#include <sel4/sel4.h>

typedef unsigned int microkit_channel;
typedef unsigned int microkit_child;
typedef seL4_MessageInfo_t microkit_msginfo;

/* The PD's capability slots, as Microkit's tool lays them out (Atoll's tool uses the same). */
#define MONITOR_EP 5
#define TCB_CAP 6
#define ARM_SMC_CAP 7
#define BASE_OUTPUT_NOTIFICATION_CAP 10
#define BASE_ENDPOINT_CAP 74
#define BASE_IRQ_CAP 138
#define BASE_TCB_CAP 202
#define BASE_VM_TCB_CAP 266
#define BASE_VCPU_CAP 330
#define BASE_USER_CAPS 458

#define PD_ROOT_CAP_BITS 6
#define PD_ROOT_CAP_SIZE (1ULL << PD_ROOT_CAP_BITS)

#define MICROKIT_MAX_USER_CAPS 128
#define MICROKIT_MAX_CHANNELS 62
#define MICROKIT_MAX_CHANNEL_ID (MICROKIT_MAX_CHANNELS - 1)
#define MICROKIT_PD_NAME_LENGTH 64

/* Entry points the program defines. */
void init(void);
void notified(microkit_channel ch);
microkit_msginfo protected(microkit_channel ch, microkit_msginfo msginfo);
seL4_Bool fault(microkit_child child, microkit_msginfo msginfo, microkit_msginfo *reply_msginfo);

/* The PD's name, NUL terminated, as the tool wrote it. */
extern char microkit_name[MICROKIT_PD_NAME_LENGTH];

/* A deferred signal: when microkit_have_signal is set, microkit_signal_msg is sent on
 * microkit_signal_cap together with the event loop's next receive. */
extern seL4_Bool microkit_have_signal;
extern seL4_CPtr microkit_signal_cap;
extern seL4_MessageInfo_t microkit_signal_msg;

/* The PD's channels by use, one bit per channel id, as the tool patched them. */
extern seL4_Word microkit_irqs;
extern seL4_Word microkit_notifications;
extern seL4_Word microkit_pps;

/* Debug output: a byte, a NUL-terminated string, a number in decimal. Silent in the
 * release and benchmark configurations, as Microkit's. */
void microkit_dbg_putc(int c);
void microkit_dbg_puts(const char *s);
void microkit_dbg_put8(seL4_Uint8 x);
void microkit_dbg_put32(seL4_Uint32 x);

/* Channel operations. A channel the PD does not own for that use prints
 * "<name> microkit_<call>: invalid channel given '<ch>'" and does nothing
 * (microkit_ppcall then returns an empty tag). */
void microkit_notify(microkit_channel ch);
void microkit_irq_ack(microkit_channel ch);
microkit_msginfo microkit_ppcall(microkit_channel ch, microkit_msginfo msginfo);
void microkit_deferred_notify(microkit_channel ch);
void microkit_deferred_irq_ack(microkit_channel ch);

/* Children. An id past the last child id (61) prints
 * "<name> microkit_<call>: invalid child given '<id>'" and does nothing. An id this PD has
 * no child for names an empty capability slot: the kernel stops this PD with a capability
 * fault (seL4_Fault_CapFault, as seL4 does), and nothing is printed. An operation the
 * kernel refuses on a child is reported and stops this PD (seL4_Fault_Panic). */
void microkit_pd_restart(microkit_child pd, seL4_Word entry_point);
void microkit_pd_stop(microkit_child pd);
void microkit_pd_resume(microkit_child pd);

/* Atoll extension, not in Microkit's library: moves a child to `core`, a board core index
 * of this PD's replica (the description's cpu numbering); the child runs on that core from
 * then on. Invalid and refused ids are handled as for the calls above, and so is a core
 * the kernel refuses (one that is not the replica's). */
void microkit_pd_set_affinity(microkit_child pd, seL4_Uint32 core);

/* A firmware call, for a PD whose description says smc="true". A refused call is
 * reported and stops the PD. */
void microkit_arm_smc_call(seL4_ARM_SMCContext *args, seL4_ARM_SMCContext *response);

static inline microkit_msginfo microkit_msginfo_new(seL4_Word label, seL4_Uint16 count)
{
    return seL4_MessageInfo_new(label, 0, 0, count);
}

static inline seL4_Word microkit_msginfo_get_label(microkit_msginfo msginfo)
{
    return seL4_MessageInfo_get_label(msginfo);
}

static inline seL4_Word microkit_msginfo_get_count(microkit_msginfo msginfo)
{
    return seL4_MessageInfo_get_length(msginfo);
}

static inline void microkit_mr_set(seL4_Uint8 mr, seL4_Word value)
{
    seL4_SetMR(mr, value);
}

static inline seL4_Word microkit_mr_get(seL4_Uint8 mr)
{
    return seL4_GetMR(mr);
}

/* The capability address of slot `slot` of the PD's root CNode (the extra capabilities of
 * a <cspace> element); seL4_CapNull for slot 0 or a slot past the root CNode. */
static inline seL4_CPtr microkit_cspace_root_slot_to_cptr(seL4_Word slot)
{
    if (slot == 0 || slot >= PD_ROOT_CAP_SIZE) {
        return seL4_CapNull;
    }
    return slot << (seL4_WordBits - PD_ROOT_CAP_BITS);
}
