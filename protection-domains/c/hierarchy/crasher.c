/* A child that faults as soon as it starts, by writing to address 0. Its data is not
 * reloaded when its parent restarts it, so the run count carries over. */
#include <microkit.h>

static seL4_Uint32 runs;

void init(void)
{
    runs++;
    microkit_dbg_puts("crasher: run ");
    microkit_dbg_put32(runs);
    microkit_dbg_puts(", about to fault\n");
    *(volatile int *)0 = 0;
}

void notified(microkit_channel ch)
{
    (void)ch;
}
