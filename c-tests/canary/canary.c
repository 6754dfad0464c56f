/* canary.c: a program with one deliberate fault, chosen by its argument, run by
 * meson's canary suite (under valgrind in the plain build, under AddressSanitizer +
 * UndefinedBehaviorSanitizer in scripts/test.d/40-sanitizers) to prove that the checkers of the
 * C tests are awake: each fault must be reported by its checker (canary/expect_caught.py). It is
 * not a test of virtpci.
 *
 *   leak      a string returned by virtpci is never released
 *   overflow  one byte is read past the end of a string returned by virtpci
 *   ub        signed integer overflow (UBSan only)
 *   race      a thread writes an address struct while virtpci reads it on another thread
 *             (ThreadSanitizer only, scripts/test.d/45-tsan: the report needs virtpci's own
 *             reads to be instrumented, so it proves the library was built with TSan)
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "virtpci.h"

static VirtpciPciAddress shared_address = {0, 1, 2, 3};

static void *writer(void *arg)
{
    (void)arg;
    shared_address.bus = 4; /* no lock, no ordering with the reader */
    return NULL;
}

int main(int argc, char **argv)
{
    VirtpciPciAddress a = {0, 1, 2, 3};
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "leak") == 0) {
        char *s = virtpci_pci_address_format(&a);
        s = NULL; /* lost */
        return s != NULL;
    }
    if (strcmp(what, "overflow") == 0) {
        char *s = virtpci_pci_address_format(&a);
        volatile char past = s[strlen(s) + 1];
        virtpci_string_free(s);
        return past == 'x';
    }
    if (strcmp(what, "ub") == 0) {
        volatile int big = INT_MAX;
        int sum = big + argc;
        return sum == 0;
    }
    if (strcmp(what, "race") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, writer, NULL) != 0)
            return 2;
        char *s = virtpci_pci_address_format(&shared_address);
        pthread_join(t, NULL);
        virtpci_string_free(s);
        return 0;
    }
    fprintf(stderr, "usage: canary leak|overflow|ub|race\n");
    return 2;
}
