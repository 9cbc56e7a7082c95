/*
 * api_server: a passive server api_test calls. It checks what each call brings (channel,
 * label, count, message registers), answers with known values, defers a notify back to its
 * caller from protected(), and counts the notifications it receives (which run on the
 * notification's scheduling context, since it has none of its own). Its failed checks go
 * back to api_test as bits of message register 0 of every reply.
 */
#include "api_test.h"

static seL4_Word errors;
static seL4_Word notifications;

enum {
    ERR_NAME = 1 << 0,
    ERR_MASKS = 1 << 1,
    ERR_NOTIFIED_CH = 1 << 2,
    ERR_PROTECTED_CH = 1 << 3,
    ERR_ECHO_COUNT = 1 << 4,
    ERR_ECHO_MRS = 1 << 5,
    ERR_DEFERRED = 1 << 6,
    ERR_BIG_COUNT = 1 << 7,
    ERR_BIG_MRS = 1 << 8,
    ERR_QUERY_COUNT = 1 << 9,
};

void init(void)
{
    if (!str_eq(microkit_name, "api_server")) {
        errors |= ERR_NAME;
    }
    if (microkit_notifications != (1ull << SERVER_CH_TEST) || microkit_pps != 0 || microkit_irqs != 0) {
        errors |= ERR_MASKS;
    }
}

void notified(microkit_channel ch)
{
    if (ch != SERVER_CH_TEST) {
        errors |= ERR_NOTIFIED_CH;
    }
    notifications++;
}

/* Checks that message registers 0..count-1 hold pattern(i), then answers ~pattern(i) in
 * registers 1..count-1 (register 0 gets the error bits). */
static microkit_msginfo echo(seL4_Word label, seL4_Word count, seL4_Word want_count, seL4_Word count_error,
                             seL4_Word mrs_error)
{
    if (count != want_count) {
        errors |= count_error;
    }
    for (unsigned i = 0; i < want_count; i++) {
        if (microkit_mr_get((seL4_Uint8)i) != pattern(i)) {
            errors |= mrs_error;
        }
    }
    for (unsigned i = 1; i < want_count; i++) {
        microkit_mr_set((seL4_Uint8)i, ~pattern(i));
    }
    return microkit_msginfo_new(label + REPLY_OFFSET, (seL4_Uint16)want_count);
}

microkit_msginfo protected(microkit_channel ch, microkit_msginfo msginfo)
{
    if (ch != SERVER_CH_TEST) {
        errors |= ERR_PROTECTED_CH;
    }
    seL4_Word label = microkit_msginfo_get_label(msginfo);
    seL4_Word count = microkit_msginfo_get_count(msginfo);
    microkit_msginfo reply;
    switch (label) {
    case LABEL_ECHO:
        reply = echo(label, count, ECHO_COUNT, ERR_ECHO_COUNT, ERR_ECHO_MRS);
        /* The notify goes out with the reply, once this returns. */
        microkit_deferred_notify(SERVER_CH_TEST);
        if (!microkit_have_signal || microkit_signal_cap != BASE_OUTPUT_NOTIFICATION_CAP + SERVER_CH_TEST
            || microkit_msginfo_get_label(microkit_signal_msg) != 0
            || microkit_msginfo_get_count(microkit_signal_msg) != 0) {
            errors |= ERR_DEFERRED;
        }
        break;
    case LABEL_BIG:
        reply = echo(label, count, seL4_MsgMaxLength, ERR_BIG_COUNT, ERR_BIG_MRS);
        break;
    case LABEL_QUERY:
        if (count != 0) {
            errors |= ERR_QUERY_COUNT;
        }
        microkit_mr_set(1, notifications);
        reply = microkit_msginfo_new(label + REPLY_OFFSET, 2);
        break;
    default:
        return microkit_msginfo_new(LABEL_UNKNOWN, 0);
    }
    microkit_mr_set(0, errors);
    return reply;
}
