/* The client: three calls to the passive server, a notification it answers, and one more
 * call after it, which shows a notified passive server still takes calls. */
#include <microkit.h>

#define SERVER 0
#define LABEL_SQUARE 1

static void call(seL4_Word x)
{
    microkit_mr_set(0, x);
    microkit_msginfo reply = microkit_ppcall(SERVER, microkit_msginfo_new(LABEL_SQUARE, 1));
    microkit_dbg_puts("client: ");
    microkit_dbg_put32((seL4_Uint32)x);
    microkit_dbg_puts(" squared is ");
    if (microkit_msginfo_get_label(reply) == LABEL_SQUARE && microkit_msginfo_get_count(reply) == 1) {
        microkit_dbg_put32((seL4_Uint32)microkit_mr_get(0));
    } else {
        microkit_dbg_puts("(refused)");
    }
    microkit_dbg_puts("\n");
}

void init(void)
{
    for (seL4_Word x = 2; x <= 4; x++) {
        call(x);
    }
    microkit_notify(SERVER);
}

void notified(microkit_channel ch)
{
    if (ch == SERVER) {
        microkit_dbg_puts("client: the server answered the notification\n");
        call(12);
        microkit_dbg_puts("client: done\n");
    }
}
