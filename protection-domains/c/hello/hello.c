/* The smallest C protection domain: it prints a greeting and waits for events. */
#include <microkit.h>

void init(void)
{
    microkit_dbg_puts(microkit_name);
    microkit_dbg_puts(": hello, world\n");
}

void notified(microkit_channel ch)
{
    (void)ch;
}
