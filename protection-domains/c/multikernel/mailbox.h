/* The shared region of the multikernel example: one message at a time, handed over by
 * notifications (the producer writes, then notifies; the consumer reads, then notifies). */
#pragma once

#include <microkit.h>

#define MAILBOX_ROUNDS 5

struct mailbox {
    seL4_Word round;
    seL4_Word value;
};
