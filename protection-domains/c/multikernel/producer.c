/* Sends MAILBOX_ROUNDS values to the consumer on the other replica, one per round. */
#include "mailbox.h"

#define CONSUMER 0

/* Patched by the tool with the region's address (setvar_vaddr). */
seL4_Word mailbox;

static seL4_Word sent;

static void send_next(void)
{
    volatile struct mailbox *box = (volatile struct mailbox *)mailbox;
    sent++;
    box->value = sent * 1000;
    box->round = sent;
    microkit_notify(CONSUMER);
}

void init(void)
{
    microkit_dbg_puts("producer: on replica 'left'\n");
    send_next();
}

void notified(microkit_channel ch)
{
    if (ch != CONSUMER) {
        return;
    }
    if (sent < MAILBOX_ROUNDS) {
        send_next();
    } else {
        microkit_dbg_puts("producer: all ");
        microkit_dbg_put32(MAILBOX_ROUNDS);
        microkit_dbg_puts(" rounds acknowledged across replicas\n");
    }
}
