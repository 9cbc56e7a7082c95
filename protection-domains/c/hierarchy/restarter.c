/* A parent PD: its child's faults arrive at fault(). It restarts the child at its entry
 * point three times, then stops it. */
#include <microkit.h>

#define PROGRAM_ENTRY 0x200000
#define MAX_RESTARTS 3

static unsigned restarts;

void init(void)
{
    microkit_dbg_puts("restarter: started\n");
}

void notified(microkit_channel ch)
{
    (void)ch;
}

seL4_Bool fault(microkit_child child, microkit_msginfo msginfo, microkit_msginfo *reply_msginfo)
{
    (void)reply_msginfo;
    microkit_dbg_puts("restarter: child ");
    microkit_dbg_put32(child);
    microkit_dbg_puts(" faulted (fault label ");
    microkit_dbg_put32((seL4_Uint32)microkit_msginfo_get_label(msginfo));
    microkit_dbg_puts(")\n");
    if (restarts < MAX_RESTARTS) {
        restarts++;
        microkit_pd_restart(child, PROGRAM_ENTRY);
        microkit_dbg_puts("restarter: restarted it\n");
    } else {
        microkit_pd_stop(child);
        microkit_dbg_puts("restarter: stopped it after ");
        microkit_dbg_put32(MAX_RESTARTS);
        microkit_dbg_puts(" restarts\n");
    }
    /* The restart already set the child going: no reply. */
    return seL4_False;
}
