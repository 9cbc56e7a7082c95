/* A passive server: it squares the number in message register 0. A notification from the
 * client asks it to say how many calls it answered; it answers with a deferred notify, which
 * the event loop sends together with its next receive. */
#include <microkit.h>

#define CLIENT 1
#define LABEL_SQUARE 1

static seL4_Word calls;

void init(void)
{
    microkit_dbg_puts("server: init\n");
}

microkit_msginfo protected(microkit_channel ch, microkit_msginfo msginfo)
{
    if (ch != CLIENT || microkit_msginfo_get_label(msginfo) != LABEL_SQUARE
        || microkit_msginfo_get_count(msginfo) != 1) {
        return microkit_msginfo_new(0, 0);
    }
    seL4_Word x = microkit_mr_get(0);
    calls++;
    microkit_mr_set(0, x * x);
    return microkit_msginfo_new(LABEL_SQUARE, 1);
}

void notified(microkit_channel ch)
{
    if (ch == CLIENT) {
        microkit_dbg_puts("server: notified; calls answered so far: ");
        microkit_dbg_put32((seL4_Uint32)calls);
        microkit_dbg_puts("\n");
        microkit_deferred_notify(CLIENT);
    }
}
