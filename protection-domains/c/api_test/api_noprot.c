/*
 * api_noprot: api_test's child 1, which api_child calls although it defines no protected()
 * entry point. The library's default reports "api_noprot is missing the 'protected' entry
 * point" and stops it with a panic, which reaches api_test's fault().
 */
#include "api_test.h"

void init(void)
{
}

void notified(microkit_channel ch)
{
    (void)ch;
}
