/* check.h: the few assertion helpers the C tests share. Each failed check prints where and why;
 * a test's main returns check_exit_status(). */
#ifndef VIRTPCI_CHECK_H
#define VIRTPCI_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        check_count++;                                                          \
        if (!(cond)) {                                                          \
            check_failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_STR(got, want)                                                    \
    do {                                                                        \
        const char *check_got_ = (got);                                         \
        const char *check_want_ = (want);                                       \
        CHECK(check_got_ && strcmp(check_got_, check_want_) == 0,               \
              "got \"%s\", want \"%s\"", check_got_ ? check_got_ : "(null)",    \
              check_want_);                                                     \
    } while (0)

static inline int check_exit_status(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
