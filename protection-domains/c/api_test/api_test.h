/*
 * What the programs of the api_test system share: channel ids (from each end, all
 * different so that a mix-up shows), the labels and contents of api_server's calls, and
 * the memory region in which api_child leaves what it saw for api_test to check.
 */
#pragma once

#include <microkit.h>

/* Microkit's slots that microkit.h does not name (its library keeps them in main.c). */
#define INPUT_CAP 1
#define VSPACE_CAP 3
#define REPLY_CAP 4

/* api_test -> api_server, protected procedure calls (and notifications both ways). */
#define TEST_CH_SERVER 1
#define SERVER_CH_TEST 2
/* api_test <-> api_child, notifications. */
#define TEST_CH_CHILD 4
#define CHILD_CH_TEST 5
/* api_test's interrupt channel (irq 60, which no board device of Atoll's uses). */
#define TEST_CH_IRQ 9
/* api_child -> api_noprot, protected procedure calls. */
#define CHILD_CH_NOPROT 0
#define NOPROT_CH_CHILD 3

/* api_test's children. */
#define CHILD_ID 0
#define NOPROT_ID 1

/* Where every C program starts, and the top of a PD's stack (Microkit's addresses). */
#define PROGRAM_ENTRY 0x200000ull
#define STACK_TOP 0xffffffe000ull

/* An address api_child reads on purpose, once: nothing is mapped there. */
#define UNMAPPED_ADDR 0x1000ull

/* api_server's calls; each reply's label is the call's plus REPLY_OFFSET, and its message
 * register 0 holds the server's failed self-checks (one bit each, 0 when all passed). */
#define LABEL_ECHO 0x1001ull  /* ECHO_COUNT registers pattern(i); replies ~pattern(i) in 1.. */
#define LABEL_BIG 0x1002ull   /* seL4_MsgMaxLength registers; replies ~pattern(i) in 1.. */
#define LABEL_QUERY 0x1003ull /* no registers; replies the notifications it received in 1 */
#define REPLY_OFFSET 0x1000ull
#define LABEL_UNKNOWN 0xbadull
#define ECHO_COUNT 6

static inline seL4_Word pattern(unsigned i)
{
    return 0x0123456789abcdefull ^ ((seL4_Word)i * 0x0001000100010001ull);
}

/* The region api_test and api_child map; the loader zeroes it. */
#define SHARED_VADDR 0x2000000ull
struct api_shared {
    seL4_Word child_runs;  /* api_child's init counts its runs */
    seL4_Word poll_done;   /* run 2: seL4_Poll returned ... */
    seL4_Word poll_bits;   /* ... these bits */
    seL4_Word wait_done;   /* run 2: seL4_Wait returned ... */
    seL4_Word wait_bits;   /* ... these bits */
    seL4_Word notified;    /* notified() calls */
    seL4_Word notified_ch; /* the channel of the last one */
    seL4_Word ctor_runs;   /* api_child's constructor runs, over all its runs */
};
#define SHARED ((volatile struct api_shared *)SHARED_VADDR)

static inline int str_eq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}
