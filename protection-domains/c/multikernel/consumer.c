/* Receives the producer's values from the shared region and acknowledges each. */
#include "mailbox.h"

#define PRODUCER 1

/* Patched by the tool with the region's address (setvar_vaddr). */
seL4_Word mailbox;

void init(void)
{
    microkit_dbg_puts("consumer: on replica 'right'\n");
}

void notified(microkit_channel ch)
{
    if (ch != PRODUCER) {
        return;
    }
    volatile struct mailbox *box = (volatile struct mailbox *)mailbox;
    microkit_dbg_puts("consumer: round ");
    microkit_dbg_put32((seL4_Uint32)box->round);
    microkit_dbg_puts(" value ");
    microkit_dbg_put32((seL4_Uint32)box->value);
    microkit_dbg_puts("\n");
    microkit_notify(PRODUCER);
}
